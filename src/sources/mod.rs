//! Metric sources (DESIGN.md §5): one per policy signal. Each is a thin async fetch plus a pure
//! `parse_*(&[u8])`; every failure is a typed [`SourceError`] that becomes
//! [`Signal::Missing`] for the engine, which then applies the policy's missing-signal rule.
//! A source never decides anything, so a dead or lying source cannot cause a scale-down.

pub mod airflow;
pub mod airflow_auth;
pub mod airflow_db;
pub mod celery;
pub mod celery_broker;
pub mod error;
pub mod http;
pub mod presto;
pub mod prometheus;
pub mod resp;
pub mod secret;
pub mod spark;
pub mod trino;
pub mod yarn;

use async_trait::async_trait;
use serde::Serialize;

pub use error::SourceError;

use crate::engine::Signal;
use crate::policy::signals::{
    AirflowDbSignal, AirflowSignal, CelerySignal, PrestoSignal, PrometheusSignal, SignalSpec,
    SparkSignal, TrinoSignal, YarnSignal,
};
use crate::policy::source::SourceBuilder;
use crate::time::Timestamp;

/// One good poll: demand in the signal's units plus the raw numbers it came from (for
/// `poolpilot probe` and `/status`), in a fixed order per source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    pub demand: f64,
    pub raw: Vec<(&'static str, f64)>,
    /// Labels of what was read, where the source has them (a Prometheus series).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<(String, String)>,
}

impl Reading {
    pub fn raw_value(&self, name: &str) -> Option<f64> {
        self.raw.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

#[async_trait]
pub trait MetricSource: Send + Sync {
    async fn poll(&self) -> Result<Reading, SourceError>;
    /// Engine and endpoint, for logs and `probe` (no credentials).
    fn name(&self) -> &str;
}

/// The source for one policy signal. Never fails: a signal that names no single engine
/// (rejected by validation anyway) or a broken client setup yields a source whose polls
/// report the problem.
pub fn build(spec: &SignalSpec) -> Box<dyn MetricSource> {
    match spec.source() {
        Ok(source) => source.build(&Builder, spec.per_worker),
        Err(_) => Box::new(Unconfigured),
    }
}

/// One constructor per signal kind (`policy::source` dispatches).
struct Builder;

impl SourceBuilder for Builder {
    type Out = Box<dyn MetricSource>;
    fn trino(&self, s: &TrinoSignal) -> Self::Out {
        Box::new(trino::TrinoSource::new(s))
    }
    fn presto(&self, s: &PrestoSignal) -> Self::Out {
        Box::new(presto::PrestoSource::new(s))
    }
    fn airflow(&self, s: &AirflowSignal) -> Self::Out {
        Box::new(airflow::AirflowSource::new(s))
    }
    fn airflow_db(&self, s: &AirflowDbSignal, per_worker: f64) -> Self::Out {
        Box::new(airflow_db::AirflowDbSource::new(s, per_worker))
    }
    fn spark(&self, s: &SparkSignal) -> Self::Out {
        Box::new(spark::SparkSource::new(s))
    }
    fn prometheus(&self, s: &PrometheusSignal) -> Self::Out {
        Box::new(prometheus::PrometheusSource::new(s))
    }
    fn yarn(&self, s: &YarnSignal) -> Self::Out {
        Box::new(yarn::YarnSource::new(s))
    }
    fn celery(&self, s: &CelerySignal) -> Self::Out {
        Box::new(celery::CelerySource::new(s))
    }
}

struct Unconfigured;

#[async_trait]
impl MetricSource for Unconfigured {
    async fn poll(&self) -> Result<Reading, SourceError> {
        Err(SourceError::malformed(
            "signal",
            "the signal does not name exactly one engine",
        ))
    }

    fn name(&self) -> &str {
        "unconfigured signal"
    }
}

/// Turns a poll result into what the engine sees. `missing_since` is when the current failure
/// streak began (`None` after a good reading); returns the signal and the updated streak start.
pub fn to_signal(
    result: &Result<Reading, SourceError>,
    now: Timestamp,
    missing_since: Option<Timestamp>,
) -> (Signal, Option<Timestamp>) {
    match result {
        Ok(reading) => (
            Signal::Value {
                demand: reading.demand,
                observed_at: now,
            },
            None,
        ),
        Err(e) => {
            let since = missing_since.unwrap_or(now);
            (
                Signal::Missing {
                    since,
                    fault: e.fault(),
                },
                Some(since),
            )
        }
    }
}

/// A captured response body, `path` relative to `tests/fixtures/` (e.g. `spark/idle.json`).
#[cfg(test)]
pub(crate) fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("fixture {full}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SignalFault;

    #[test]
    fn a_failure_streak_keeps_its_start() {
        let err: Result<Reading, SourceError> = Err(SourceError::malformed("t", "x"));
        let (first, since) = to_signal(&err, Timestamp(1_000), None);
        assert_eq!(
            first,
            Signal::Missing {
                since: Timestamp(1_000),
                fault: SignalFault::Malformed
            }
        );
        let (second, since) = to_signal(&err, Timestamp(5_000), since);
        assert_eq!(
            second,
            Signal::Missing {
                since: Timestamp(1_000),
                fault: SignalFault::Malformed
            }
        );
        let ok = Ok(Reading {
            labels: Vec::new(),
            demand: 3.0,
            raw: vec![],
        });
        let (value, since) = to_signal(&ok, Timestamp(9_000), since);
        assert_eq!(
            value,
            Signal::Value {
                demand: 3.0,
                observed_at: Timestamp(9_000)
            }
        );
        assert_eq!(since, None);
    }

    #[tokio::test]
    async fn a_signal_without_engine_polls_to_an_error() {
        let spec = SignalSpec {
            trino: None,
            presto: None,
            airflow: None,
            airflow_db: None,
            spark: None,
            prometheus: None,
            yarn: None,
            celery: None,
            per_worker: 1.0,
        };
        let err = build(&spec).poll().await.unwrap_err();
        assert_eq!(err.fault(), SignalFault::Malformed);
    }
}
