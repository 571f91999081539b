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
    /// Changes not sent because the fence refused (this replica lost or could not confirm the lease).
    pub const FENCED_TOTAL: &str = "poolpilot_fenced_actions_total";
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
    /// Gauge 1/0 per `pool`, `kind` (`hold`|`pin`|`scale_in`|`scale_out`): a run-time pause
    /// of that kind is active (annotation, ASG tag or admin endpoint).
    pub const POOL_PAUSED: &str = "poolpilot_pool_paused";
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

/// What a metric is, for its `# TYPE`-matching description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The `# HELP` text of every metric in [`names`]; a test fails when a name has none.
pub const DESCRIPTIONS: &[(&str, Kind, &str)] = {
    use Kind::*;
    use names::*;
    &[
        (
            POOL_DESIRED_WORKERS,
            Gauge,
            "Workers the engine decided the pool should have.",
        ),
        (
            POOL_CURRENT_WORKERS,
            Gauge,
            "Workers the platform reports as requested.",
        ),
        (
            POOL_READY_WORKERS,
            Gauge,
            "Workers the platform reports as ready.",
        ),
        (
            POOL_MIN_WORKERS,
            Gauge,
            "The policy's lower bound (bounds.min).",
        ),
        (
            POOL_MAX_WORKERS,
            Gauge,
            "The policy's upper bound (bounds.max).",
        ),
        (
            POOL_DEMAND_WORKERS,
            Gauge,
            "Workers the fresh signals ask for: max(demand / per_worker).",
        ),
        (
            POOL_SPEND_PER_HOUR,
            Gauge,
            "The pool's size times its price per worker-hour.",
        ),
        (
            POOL_MAX_SPEND_PER_HOUR,
            Gauge,
            "The pool's cost cap (cost.max_per_hour).",
        ),
        (
            FENCED_TOTAL,
            Counter,
            "Changes not sent because the fence refused them (lease lost, taken, expired or unreadable), by pool and reason.",
        ),
        (
            EVENTS_TOTAL,
            Counter,
            "Kubernetes Events about scaled objects, by reason and outcome.",
        ),
        (
            POOL_SPEND_TOTAL,
            Gauge,
            "Money spent on the pool's workers since the state began (policy currency).",
        ),
        (
            DECISIONS_TOTAL,
            Counter,
            "Engine decisions, by pool and the reason that set the number.",
        ),
        (
            SOURCE_ERRORS_TOTAL,
            Counter,
            "Failed or timed-out signal polls, by pool, source and fault.",
        ),
        (SOURCE_POLL_SECONDS, Histogram, "Time one signal poll took."),
        (
            SIGNAL_DEMAND,
            Gauge,
            "Demand the signal reported at the last good poll, in its units.",
        ),
        (
            ACTUATIONS_TOTAL,
            Counter,
            "Pool size changes sent to the platform, by outcome.",
        ),
        (
            ACTUATION_SECONDS,
            Histogram,
            "Time one pool size change took.",
        ),
        (
            DRAINS_TOTAL,
            Counter,
            "Drains (scale-downs with work on the victims), by method and outcome.",
        ),
        (
            DRAIN_DURATION_SECONDS,
            Histogram,
            "Time from the start of a drain to its outcome.",
        ),
        (
            ACTUATOR_CALL_DURATION_SECONDS,
            Histogram,
            "Time one platform call took, by platform, op and outcome.",
        ),
        (
            ACTUATOR_CALLS_TOTAL,
            Counter,
            "Platform calls, by platform, op and outcome.",
        ),
        (
            ACTUATOR_RETRIES_TOTAL,
            Counter,
            "Platform calls retried, by platform, op and error.",
        ),
        (
            BUDGET_SPEND_PER_HOUR,
            Gauge,
            "Current pool sizes times prices, across pools.",
        ),
        (
            BUDGET_LIMIT_PER_HOUR,
            Gauge,
            "The global budget per hour from the settings.",
        ),
        (TICK_SECONDS, Histogram, "Time one control-loop tick took."),
        (
            POLICY_RELOADS_TOTAL,
            Counter,
            "Policy directory reloads, by outcome.",
        ),
        (
            LEADER,
            Gauge,
            "1 when this replica may actuate (always 1 without leader election).",
        ),
        (
            SIGNAL_UP,
            Gauge,
            "1 when the signal's last poll answered, 0 when it failed.",
        ),
        (
            POOL_STATUS_UP,
            Gauge,
            "1 when the pool's size could be read this tick (0: the pool is held).",
        ),
        (
            POOL_PAUSED,
            Gauge,
            "1 when a run-time pause of this kind (hold, pin, scale_in, scale_out) is active on the pool.",
        ),
        (
            POOL_STATUS_ERRORS_TOTAL,
            Counter,
            "Failed reads of a pool's size, by error kind.",
        ),
        (
            POOL_DRAINS_IN_FLIGHT,
            Gauge,
            "Drains under way for the pool.",
        ),
        (
            STATE_LOADS_TOTAL,
            Counter,
            "State file loads at start, by outcome (ok, missing, corrupt).",
        ),
        (STATE_SAVES_TOTAL, Counter, "State file writes, by outcome."),
        (
            POLICY_ERRORS_TOTAL,
            Counter,
            "Individual policy errors found by rejected reloads.",
        ),
        (
            LAST_TICK_TIMESTAMP_SECONDS,
            Gauge,
            "Unix time of the last complete tick.",
        ),
        (
            SHADOW_WORKERS,
            Gauge,
            "Workers a shadow or dry-run pool would run if it enforced.",
        ),
        (
            SHADOW_COST_PER_HOUR,
            Gauge,
            "What the would-be pool costs per hour.",
        ),
        (
            SHADOW_EST_QUEUE_WAIT_SECONDS,
            Gauge,
            "Estimated wait of newly queued work on the would-be pool.",
        ),
    ]
};

/// Registers every description with the installed recorder, so `/metrics` carries a
/// `# HELP` line for each metric.
pub fn describe_metrics() {
    for &(name, kind, help) in DESCRIPTIONS {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

/// Identical warnings (same key) are logged at most once per [`WARN_EVERY`]; the ones held back
/// are counted and the next one logged says how many. Missing AWS credentials otherwise log
/// the same retry warning for every pool on every tick.
pub const WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Per key: when it was last logged and how many were held back since.
#[derive(Debug, Default)]
pub struct WarnThrottle {
    seen: std::sync::Mutex<std::collections::HashMap<String, (crate::time::Timestamp, u64)>>,
}

impl WarnThrottle {
    /// Keys kept at most; past that the table starts over (a burst of distinct errors must
    /// not grow memory without bound).
    const MAX_KEYS: usize = 1024;

    /// `Some(held back since the last one)` when a warning with `key` should be logged at `now`.
    pub fn check(&self, key: &str, now: crate::time::Timestamp) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= Self::MAX_KEYS && !seen.contains_key(key) {
            seen.clear();
        }
        match seen.get_mut(key) {
            Some((last, held)) if now.since(*last) < WARN_EVERY => {
                *held += 1;
                None
            }
            Some((last, held)) => {
                let suppressed = *held;
                (*last, *held) = (now, 0);
                Some(suppressed)
            }
            None => {
                seen.insert(key.to_string(), (now, 0));
                Some(0)
            }
        }
    }
}

/// The process-wide throttle, on the wall clock.
pub fn warn_allowed(key: &str) -> Option<u64> {
    static THROTTLE: std::sync::LazyLock<WarnThrottle> = std::sync::LazyLock::new(Default::default);
    THROTTLE.check(key, crate::time::Timestamp::now())
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

/// `info`, except the AWS SDK's credential chain: it warns once per provider per API call
/// ("provider failed to provide credentials", every pool, every tick, outside EC2), and the
/// same failure already reaches the operator through the actuator's error, throttled
/// ([`warn_allowed`]), on `/status` and in `poolpilot_pool_status_errors_total`.
pub const DEFAULT_LOG_FILTER: &str = "info,aws_config::meta::credentials::chain=error";

/// The filter (`RUST_LOG`, else [`DEFAULT_LOG_FILTER`]) on a plain-text subscriber.
fn subscriber_builder() -> tracing_subscriber::fmt::SubscriberBuilder<
    tracing_subscriber::fmt::format::DefaultFields,
    tracing_subscriber::fmt::format::Format,
    tracing_subscriber::EnvFilter,
> {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    tracing_subscriber::fmt().with_env_filter(filter)
}

/// Installs the global tracing subscriber: JSON lines for the daemon, plain text for the CLI.
/// `RUST_LOG` overrides the default level (`info`).
pub fn init_tracing(json: bool) {
    let builder = subscriber_builder().with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outside EC2 the SDK's credential chain warns on every call; the default filter keeps it
    /// out, and everything else at `info` in.
    #[test]
    fn the_default_filter_mutes_only_the_credential_chain() {
        #[derive(Clone, Default)]
        struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Captured {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        if std::env::var_os("RUST_LOG").is_some() {
            return; // the filter under test is the default one; RUST_LOG replaces it
        }
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = subscriber_builder()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "aws_config::meta::credentials::chain", "provider failed to provide credentials");
            tracing::error!(target: "aws_config::meta::credentials::chain", "chain error kept");
            tracing::warn!(target: "aws_config::profile", "profile warning kept");
            tracing::info!(target: "poolpilot::daemon", "own info kept");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("provider failed"), "{text}");
        for kept in ["chain error kept", "profile warning kept", "own info kept"] {
            assert!(text.contains(kept), "{kept}: {text}");
        }
    }

    #[test]
    fn identical_warnings_are_held_back_and_counted() {
        use crate::time::Timestamp;
        let throttle = WarnThrottle::default();
        let t = |s| Timestamp::from_secs(s);
        assert_eq!(throttle.check("aws: no credentials", t(0)), Some(0));
        for s in 1..10 {
            assert_eq!(throttle.check("aws: no credentials", t(s * 10)), None);
        }
        assert_eq!(throttle.check("other", t(50)), Some(0), "keys are apart");
        assert_eq!(throttle.check("aws: no credentials", t(300)), Some(9));
        assert_eq!(throttle.check("aws: no credentials", t(301)), None);
    }

    #[test]
    fn every_metric_name_has_help() {
        let source = include_str!("telemetry.rs");
        let module = &source[..source.find("/// What a metric is").unwrap()];
        let declared: Vec<&str> = module
            .lines()
            .filter_map(|l| l.split("&str = \"").nth(1))
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert!(declared.len() >= 30, "{declared:?}");
        let recorder = prometheus_builder().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe_metrics();
            for &(name, kind, _) in DESCRIPTIONS {
                match kind {
                    Kind::Counter => metrics::counter!(name).increment(1),
                    Kind::Gauge => metrics::gauge!(name).set(1.0),
                    Kind::Histogram => metrics::histogram!(name).record(1.0),
                }
            }
        });
        let text = handle.render();
        for name in declared {
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no # HELP for {name} (add it to DESCRIPTIONS)"
            );
        }
    }

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
