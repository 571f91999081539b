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
    /// Counter; labels `engine`, `outcome` (`drained`|`timed_out`|`abandoned`|`failed`).
    pub const DRAINS_TOTAL: &str = "poolpilot_drains_total";
    /// Histogram, seconds; labels `engine`, `outcome`.
    pub const DRAIN_DURATION_SECONDS: &str = "poolpilot_drain_duration_seconds";
    /// Histogram, seconds; labels `platform`, `op` (`status`|`scale_to`), `outcome`.
    pub const ACTUATOR_CALL_DURATION_SECONDS: &str = "poolpilot_actuator_call_duration_seconds";
    /// Counter; labels `platform`, `op`, `outcome`.
    pub const ACTUATOR_CALLS_TOTAL: &str = "poolpilot_actuator_calls_total";
    /// Counter; labels `platform`, `op`, `reason` (error label); retried attempts only.
    pub const ACTUATOR_RETRIES_TOTAL: &str = "poolpilot_actuator_retries_total";
    pub const BUDGET_SPEND_PER_HOUR: &str = "poolpilot_budget_spend_per_hour";
    pub const BUDGET_LIMIT_PER_HOUR: &str = "poolpilot_budget_limit_per_hour";
    pub const TICK_SECONDS: &str = "poolpilot_tick_duration_seconds";
    pub const POLICY_RELOADS_TOTAL: &str = "poolpilot_policy_reloads_total";
    pub const LEADER: &str = "poolpilot_leader";
    // Daemon (src/daemon/): why a pool is held, the state file, reloads.
    /// Gauge 1/0 per `pool`, `signal` (index), `source` (engine): the last poll answered.
    pub const SIGNAL_UP: &str = "poolpilot_signal_up";
    /// Gauge 1/0 per `pool`: the actuator's status could be read this tick (0 = pool held).
    pub const POOL_STATUS_UP: &str = "poolpilot_pool_status_up";
    /// Counter per `pool`, `kind` (actuator error label): status reads that failed.
    pub const POOL_STATUS_ERRORS_TOTAL: &str = "poolpilot_pool_status_errors_total";
    /// Gauge per `pool`: drains (scale-downs) under way.
    pub const POOL_DRAINS_IN_FLIGHT: &str = "poolpilot_pool_drains_in_flight";
    /// Counter per `outcome` (`ok`|`missing`|`corrupt`): state file loads at start.
    pub const STATE_LOADS_TOTAL: &str = "poolpilot_state_loads_total";
    /// Counter per `outcome` (`ok`|`error`): state file writes.
    pub const STATE_SAVES_TOTAL: &str = "poolpilot_state_saves_total";
    /// Counter: individual policy errors found by rejected reloads.
    pub const POLICY_ERRORS_TOTAL: &str = "poolpilot_policy_errors_total";
    /// Gauge: Unix time of the last complete tick.
    pub const LAST_TICK_TIMESTAMP_SECONDS: &str = "poolpilot_last_tick_timestamp_seconds";
}

/// Installs the global tracing subscriber: JSON lines for the daemon, plain text for the CLI.
/// `RUST_LOG` overrides the default level (`info`).
pub fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
