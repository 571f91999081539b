//! Tracing setup and every metric name (`poolpilot_<subsystem>_<name>_<unit>`). Labels come
//! only from enums and configured names: never URLs, error text or ids.

/// Metric names, in one place.
pub mod names {
    pub const POOL_DESIRED_WORKERS: &str = "poolpilot_pool_desired_workers";
    pub const POOL_CURRENT_WORKERS: &str = "poolpilot_pool_current_workers";
    pub const POOL_READY_WORKERS: &str = "poolpilot_pool_ready_workers";
    pub const POOL_SPEND_TOTAL: &str = "poolpilot_pool_spend_total";
    /// Gauges per `pool`: the policy's bounds (`bounds.min`, `bounds.max`).
    pub const POOL_MIN_WORKERS: &str = "poolpilot_pool_min_workers";
    pub const POOL_MAX_WORKERS: &str = "poolpilot_pool_max_workers";
    /// Gauge per `pool`: `max(demand / per_worker)` over the fresh signals (kept at its last
    /// value while every signal is missing).
    pub const POOL_DEMAND_WORKERS: &str = "poolpilot_pool_demand_workers";
    /// Gauge per `pool`: the platform's size × price per worker-hour.
    pub const POOL_SPEND_PER_HOUR: &str = "poolpilot_pool_spend_per_hour";
    /// Gauge per `pool` with `cost.max_per_hour`: the pool's cost cap.
    pub const POOL_MAX_SPEND_PER_HOUR: &str = "poolpilot_pool_max_spend_per_hour";
    pub const DECISIONS_TOTAL: &str = "poolpilot_decisions_total";
    pub const SOURCE_ERRORS_TOTAL: &str = "poolpilot_source_errors_total";
    pub const SOURCE_POLL_SECONDS: &str = "poolpilot_source_poll_duration_seconds";
    pub const SIGNAL_DEMAND: &str = "poolpilot_signal_demand";
    pub const ACTUATIONS_TOTAL: &str = "poolpilot_actuations_total";
    pub const ACTUATION_SECONDS: &str = "poolpilot_actuation_duration_seconds";
    /// Counter; labels `method`, `outcome` (`drained`|`timed_out`|`abandoned`|`failed`).
    pub const DRAINS_TOTAL: &str = "poolpilot_drains_total";
    /// Histogram, seconds; labels `method`, `outcome`.
    pub const DRAIN_DURATION_SECONDS: &str = "poolpilot_drain_duration_seconds";
    /// Histogram, seconds; labels `platform`, `op` (`status`|`scale_to`), `outcome`.
    pub const ACTUATOR_CALL_DURATION_SECONDS: &str = "poolpilot_actuator_call_duration_seconds";
    /// Counter; labels `platform`, `op`, `outcome`.
    pub const ACTUATOR_CALLS_TOTAL: &str = "poolpilot_actuator_calls_total";
    /// Counter; labels `reason` (Event reason), `outcome` (`published`|`suppressed`|`failed`):
    /// Kubernetes Events about scaled objects (`actuators::events`).
    pub const EVENTS_TOTAL: &str = "poolpilot_events_total";
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
    /// Shadow (and `--dry-run`) pools: the counterfactual pool enforcing would have run.
    pub const SHADOW_WORKERS: &str = "poolpilot_shadow_workers";
    pub const SHADOW_COST_PER_HOUR: &str = "poolpilot_shadow_cost_per_hour";
    /// Estimated wait of newly queued work on the would-be pool (absent when unbounded).
    pub const SHADOW_EST_QUEUE_WAIT_SECONDS: &str = "poolpilot_shadow_est_queue_wait_seconds";
}

/// Upper bounds (seconds) of every duration histogram: 5 ms (a local poll) to 1 h (a long drain).
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// The Prometheus exporter as the daemon uses it: durations as bucketed histograms, not the
/// exporter's default summaries. Buckets aggregate across pods in PromQL
/// (`histogram_quantile`), and a fixed array per series costs a few hundred bytes, where a
/// summary's rolling sketches held ~0.3 MiB per pool (measured with heaptrack, 20 pools).
pub fn prometheus_builder() -> metrics_exporter_prometheus::PrometheusBuilder {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(DURATION_BUCKETS)
        .expect("the bucket list is not empty")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_render_as_bucketed_histograms() {
        let recorder = prometheus_builder().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::histogram!(names::TICK_SECONDS).record(0.2);
        });
        let text = handle.render();
        let bucket = |le: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("{}_bucket{{le=\"{le}\"}}", names::TICK_SECONDS)))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        assert_eq!(bucket("0.1").as_deref(), Some("0"), "{text}");
        assert_eq!(bucket("0.25").as_deref(), Some("1"), "{text}");
        assert_eq!(bucket("+Inf").as_deref(), Some("1"), "{text}");
        assert!(!text.contains("quantile="), "no summaries: {text}");
    }
}
