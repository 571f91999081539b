//! `Instrumented<A>`: metrics for any actuator, kept out of the actuators themselves.
//! Every call records its duration and outcome (`ok` or the error's [`ActuatorError::label`]).

use async_trait::async_trait;

use super::{Actuator, ActuatorError, Member, PoolStatus};
use crate::telemetry::names;
use crate::time::Timestamp;

pub struct Instrumented<A> {
    inner: A,
}

impl<A: Actuator> Instrumented<A> {
    pub fn new(inner: A) -> Instrumented<A> {
        Instrumented { inner }
    }

    pub fn inner(&self) -> &A {
        &self.inner
    }

    fn record<T>(&self, op: &'static str, started: Timestamp, result: &Result<T, ActuatorError>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => e.label(),
        };
        let labels = [
            ("platform", self.inner.platform()),
            ("op", op),
            ("outcome", outcome),
        ];
        metrics::histogram!(names::ACTUATOR_CALL_DURATION_SECONDS, &labels)
            .record(Timestamp::now().since(started).as_secs_f64());
        metrics::counter!(names::ACTUATOR_CALLS_TOTAL, &labels).increment(1);
    }
}

#[async_trait]
impl<A: Actuator> Actuator for Instrumented<A> {
    fn platform(&self) -> &'static str {
        self.inner.platform()
    }

    async fn status(&self) -> Result<PoolStatus, ActuatorError> {
        let started = Timestamp::now();
        let result = self.inner.status().await;
        self.record("status", started, &result);
        result
    }

    async fn scale_to(&self, target: u32, victims: &[Member]) -> Result<(), ActuatorError> {
        let started = Timestamp::now();
        let result = self.inner.scale_to(target, victims).await;
        self.record("scale_to", started, &result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actuators::RecordingActuator;
    use metrics_exporter_prometheus::PrometheusBuilder;

    #[test]
    fn counts_outcomes_and_times_calls() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        metrics::with_local_recorder(&recorder, || {
            runtime.block_on(async {
                let actuator = Instrumented::new(RecordingActuator::with_size(2));
                actuator.inner().fail_next([ActuatorError::Throttled {
                    message: "rate".into(),
                }]);
                assert!(actuator.scale_to(3, &[]).await.is_err());
                actuator.scale_to(3, &[]).await.unwrap();
                actuator.status().await.unwrap();
            })
        });
        let text = handle.render();
        let line = |needle: &str| {
            text.lines()
                .find(|l| l.starts_with(needle))
                .map(str::to_owned)
        };
        let calls = |op: &str, outcome: &str| {
            line(&format!(
                "{}{{platform=\"recording\",op=\"{op}\",outcome=\"{outcome}\"}}",
                names::ACTUATOR_CALLS_TOTAL
            ))
        };
        assert!(
            calls("scale_to", "throttled").unwrap().ends_with(" 1"),
            "{text}"
        );
        assert!(calls("scale_to", "ok").unwrap().ends_with(" 1"), "{text}");
        assert!(calls("status", "ok").unwrap().ends_with(" 1"), "{text}");
        assert!(
            text.contains(names::ACTUATOR_CALL_DURATION_SECONDS),
            "{text}"
        );
    }
}
