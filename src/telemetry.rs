//! Tracing setup and every metric name (`poolpilot_<subsystem>_<name>_<unit>`). Labels come
//! only from enums and configured names: never URLs, error text or ids.

/// Metric names, in one place.
pub mod names {
    pub const POOL_DESIRED_WORKERS: &str = "poolpilot_pool_desired_workers";
    pub const POOL_CURRENT_WORKERS: &str = "poolpilot_pool_current_workers";
    pub const POOL_READY_WORKERS: &str = "poolpilot_pool_ready_workers";
    pub const POOL_SPEND_TOTAL: &str = "poolpilot_pool_spend_total";
    pub const DECISIONS_TOTAL: &str = "poolpilot_decisions_total";
    pub const SOURCE_ERRORS_TOTAL: &str = "poolpilot_source_errors_total";
    pub const SOURCE_POLL_SECONDS: &str = "poolpilot_source_poll_duration_seconds";
    pub const SIGNAL_DEMAND: &str = "poolpilot_signal_demand";
    pub const ACTUATIONS_TOTAL: &str = "poolpilot_actuations_total";
    pub const ACTUATION_SECONDS: &str = "poolpilot_actuation_duration_seconds";
    pub const DRAINS_TOTAL: &str = "poolpilot_drains_total";
    pub const BUDGET_SPEND_PER_HOUR: &str = "poolpilot_budget_spend_per_hour";
    pub const BUDGET_LIMIT_PER_HOUR: &str = "poolpilot_budget_limit_per_hour";
    pub const TICK_SECONDS: &str = "poolpilot_tick_duration_seconds";
    pub const POLICY_RELOADS_TOTAL: &str = "poolpilot_policy_reloads_total";
    pub const LEADER: &str = "poolpilot_leader";
}

/// Installs the global tracing subscriber: JSON lines for the daemon, plain text for the CLI.
/// `RUST_LOG` overrides the default level (`info`).
pub fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.try_init() };
}
