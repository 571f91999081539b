//! One pool's metric handles, registered when the pool is built (start, reload) and kept.
//!
//! `metrics::gauge!(name, labels)` finds its series by hashing and comparing the whole key (name
//! and every label) in the recorder's registry; a tick made a dozen such lookups per pool, plus
//! label strings cloned for each. With 1,000 pools that was most of a tick (the soak bench,
//! `benches/soak.rs`); a handle is one atomic store.

use std::collections::HashMap;

use metrics::{Counter, Gauge, Histogram};

use crate::engine::PauseKind;
use crate::telemetry::names;

/// The per-pool series the report and the observation write every tick.
pub struct PoolMetrics {
    pool: String,
    pub desired: Gauge,
    pub current: Gauge,
    pub ready: Gauge,
    pub status_up: Gauge,
    pub spend_total: Gauge,
    pub spend_per_hour: Gauge,
    pub max_spend_per_hour: Gauge,
    pub drains_in_flight: Gauge,
    pub min: Gauge,
    pub max: Gauge,
    pub demand: Gauge,
    /// `pool_paused` by kind, in [`PauseKind::LABELS`] order.
    pub paused: [Gauge; 4],
    /// `decisions_total` by (direction, reason): registered on first use.
    decisions: HashMap<(&'static str, &'static str), Counter>,
}

impl PoolMetrics {
    pub fn new(pool: &str) -> PoolMetrics {
        let pl = [("pool", pool.to_string())];
        PoolMetrics {
            pool: pool.to_string(),
            desired: metrics::gauge!(names::POOL_DESIRED_WORKERS, &pl),
            current: metrics::gauge!(names::POOL_CURRENT_WORKERS, &pl),
            ready: metrics::gauge!(names::POOL_READY_WORKERS, &pl),
            status_up: metrics::gauge!(names::POOL_STATUS_UP, &pl),
            spend_total: metrics::gauge!(names::POOL_SPEND_TOTAL, &pl),
            spend_per_hour: metrics::gauge!(names::POOL_SPEND_PER_HOUR, &pl),
            max_spend_per_hour: metrics::gauge!(names::POOL_MAX_SPEND_PER_HOUR, &pl),
            drains_in_flight: metrics::gauge!(names::POOL_DRAINS_IN_FLIGHT, &pl),
            min: metrics::gauge!(names::POOL_MIN_WORKERS, &pl),
            max: metrics::gauge!(names::POOL_MAX_WORKERS, &pl),
            demand: metrics::gauge!(names::POOL_DEMAND_WORKERS, &pl),
            paused: PauseKind::LABELS.map(|kind| {
                metrics::gauge!(names::POOL_PAUSED, "pool" => pool.to_string(), "kind" => kind)
            }),
            decisions: HashMap::new(),
        }
    }

    /// The `decisions_total` counter of this pool for `direction` and `reason`.
    pub fn decision(&mut self, direction: &'static str, reason: &'static str) -> &Counter {
        let pool = &self.pool;
        self.decisions
            .entry((direction, reason))
            .or_insert_with(|| {
                metrics::counter!(names::DECISIONS_TOTAL, "pool" => pool.clone(), "direction" => direction, "reason" => reason)
            })
    }
}

/// One signal's series, labelled with its position and kind in the pool's policy.
pub struct SignalMetrics {
    pub poll_seconds: Histogram,
    pub demand: Gauge,
    pub up: Gauge,
}

impl SignalMetrics {
    pub fn new(pool: &str, index: usize, kind: &'static str) -> SignalMetrics {
        let labels = [
            ("pool", pool.to_string()),
            ("signal", index.to_string()),
            ("source", kind.to_string()),
        ];
        SignalMetrics {
            poll_seconds: metrics::histogram!(names::SOURCE_POLL_SECONDS, &labels),
            demand: metrics::gauge!(names::SIGNAL_DEMAND, &labels),
            up: metrics::gauge!(names::SIGNAL_UP, &labels),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The handles write the same series the macros did: same names, same labels.
    #[test]
    fn handles_write_the_labelled_series() {
        let recorder = crate::telemetry::prometheus_builder().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let mut m = PoolMetrics::new("etl");
            m.desired.set(4.0);
            m.decision("up", "bound_max").increment(1);
            m.decision("up", "bound_max").increment(1);
            SignalMetrics::new("etl", 1, "spark").up.set(1.0);
        });
        let text = handle.render();
        for line in [
            format!("{}{{pool=\"etl\"}} 4", names::POOL_DESIRED_WORKERS),
            format!(
                "{}{{pool=\"etl\",direction=\"up\",reason=\"bound_max\"}} 2",
                names::DECISIONS_TOTAL
            ),
            format!(
                "{}{{pool=\"etl\",signal=\"1\",source=\"spark\"}} 1",
                names::SIGNAL_UP
            ),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }
}
