//! Observation: every signal of a pool is polled and its actuator's status read, concurrently,
//! each bounded by a deadline, so one hung source or API server cannot stall the tick.

use std::time::Duration;

use futures::future::join_all;

use super::pools::PoolRuntime;
use crate::actuators::{PoolStatus, pause_marks};
use crate::engine::{PauseSource, PoolObservation, Signal, WorkerCounts};
use crate::sources::{self, SourceError};
use crate::telemetry::{self, names};
use crate::time::Timestamp;

/// Upper bound on one actuator status read.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

/// Polls every signal and reads the status of one pool, concurrently, each bounded.
pub(super) async fn observe(pool: &mut PoolRuntime, now: Timestamp) -> PoolObservation {
    let name = pool.name().to_string();
    let status = async {
        match &pool.actuator {
            Some(a) => Some(tokio::time::timeout(STATUS_TIMEOUT, a.status()).await),
            None => None,
        }
    };
    let polls = pool.signals.iter().map(|s| {
        let source = s.source.clone();
        let deadline = poll_deadline(&s.spec);
        async move {
            let started = Timestamp::now();
            let result = match tokio::time::timeout(deadline, source.poll()).await {
                Ok(r) => r,
                Err(_) => Err(SourceError::Timeout {
                    target: source.name().to_string(),
                    after: deadline,
                }),
            };
            (result, Timestamp::now().since(started))
        }
    });
    let (status, polls) = futures::join!(status, join_all(polls));

    match status {
        Some(Ok(Ok(s))) => {
            pool.last_counts = Some(WorkerCounts {
                requested: s.desired,
                ready: s.ready,
            });
            read_pause_marks(pool, &s, &name);
            pool.status = Some(s);
            pool.status_error = None;
        }
        Some(Ok(Err(e))) => {
            metrics::counter!(names::POOL_STATUS_ERRORS_TOTAL, "pool" => name.clone(), "kind" => e.label()).increment(1);
            pool.status = None;
            pool.status_error = Some(format!("cannot read the pool's size: {e}"));
        }
        Some(Err(_)) => {
            metrics::counter!(names::POOL_STATUS_ERRORS_TOTAL, "pool" => name.clone(), "kind" => "timeout").increment(1);
            pool.status = None;
            pool.status_error = Some(format!(
                "the platform did not answer a status read within {}s",
                STATUS_TIMEOUT.as_secs()
            ));
        }
        None => {
            pool.status = None;
            pool.status_error = Some(format!(
                "actuator not set up: {}",
                pool.actuator_error.as_deref().unwrap_or("unknown")
            ));
        }
    }
    pool.metrics
        .status_up
        .set(if pool.status.is_some() { 1.0 } else { 0.0 });

    let mut signals = Vec::with_capacity(polls.len());
    for (index, (signal, (result, took))) in pool.signals.iter_mut().zip(polls).enumerate() {
        let kind_name = signal.spec.kind_name();
        signal.metrics.poll_seconds.record(took.as_secs_f64());
        let (value, since) = sources::to_signal(&result, now, signal.missing_since);
        signal.missing_since = since;
        match result {
            Ok(reading) => {
                signal.metrics.demand.set(reading.demand);
                signal.last_good = Some((now, reading));
                signal.last_error = None;
            }
            Err(e) => {
                let kind = e.fault().label();
                metrics::counter!(names::SOURCE_ERRORS_TOTAL, "pool" => name.clone(), "source" => kind_name, "kind" => kind).increment(1);
                if signal.last_error.is_none() {
                    tracing::warn!(pool = %name, signal = index, source = kind_name, kind, error = %e, "signal lost; the policy's missing-signal rule applies (no scale-down on missing data)");
                }
                signal.last_error = Some(e.to_string());
            }
        }
        let up = matches!(value, Signal::Value { .. });
        signal.metrics.up.set(if up { 1.0 } else { 0.0 });
        signals.push(value);
    }
    PoolObservation {
        pauses: pool.platform_pauses.clone(),
        signals,
        workers: pool.last_counts.unwrap_or_default(),
    }
}

/// Pause annotations (Kubernetes) or tags (ASG) from this status read. Kept until the next
/// successful read, as the counts are; an unreadable mark is warned about (rate-limited).
fn read_pause_marks(pool: &mut PoolRuntime, status: &PoolStatus, name: &str) {
    let source = match pool.actuator.as_ref().map(|a| a.platform()) {
        Some("aws_asg") => PauseSource::AsgTag,
        _ => PauseSource::Annotation,
    };
    let (pauses, mut problems) = pause_marks::parse(&status.pause_marks, source);
    problems.extend(status.pause_marks_error.clone());
    for problem in &problems {
        if let Some(held) = telemetry::warn_allowed(&format!("pause:{name}:{problem}")) {
            tracing::warn!(pool = name, source = source.label(), problem = %problem, suppressed = held, "pause mark not applied as written");
        }
    }
    pool.platform_pauses = pauses;
    pool.pause_problems = problems;
}

/// The source's own timeout plus a little slack: the bound that holds even if a source
/// forgets its own deadline.
fn poll_deadline(spec: &crate::policy::SignalSpec) -> Duration {
    let own = spec
        .source()
        .map_or(Duration::from_secs(10), |s| s.poll_timeout());
    own + Duration::from_secs(1)
}
