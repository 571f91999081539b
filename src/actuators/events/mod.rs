//! `Evented<A, S>`: a Kubernetes Event on the scaled object for every actuation and refusal,
//! so `kubectl describe deployment/<pool>` and `kubectl get events` show what poolpilot did,
//! as they show the HPA's. A decorator, like [`super::Instrumented`]: the actuator stays small.
//!
//! Reasons and notes follow the HPA controller (`kubernetes/kubernetes:
//! pkg/controller/podautoscaler/horizontal.go`): `SuccessfulRescale` (Normal, "New size: %d"),
//! `FailedRescale` (Warning, "New size: %d; ...; error: %v") when the platform refuses or fails
//! a scale, `FailedGetScale` (Warning) when the size cannot be read, which holds the pool.
//! The HPA's note also carries its reason; ours does not (the actuator sees a target, not the
//! decision), and the reason chain is on `/status` and in `poolpilot status` instead.
//!
//! Identical events are rate-limited ([`limit::Window`]), and publishing is best effort: an
//! Event that cannot be written is logged and counted, never an actuation failure.
//!
//! - [`kube`]: the sink that writes `events.k8s.io/v1` Events
//! - [`RecordingEvents`]: an in-memory sink for tests

pub mod kube;
pub mod limit;

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{Actuator, ActuatorError, Member, PoolStatus};
use crate::telemetry::names;
use crate::time::Timestamp;

/// Upper bound on one Event write: the actuation already happened and must not wait long.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// `Normal` or `Warning`, the two Event types Kubernetes knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One Event about the pool's scaled object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolEvent {
    pub type_: EventType,
    /// CamelCase reason (`SuccessfulRescale`, ...).
    pub reason: &'static str,
    /// What was attempted (`Scale`, `GetScale`): events.k8s.io/v1's `action`.
    pub action: &'static str,
    pub note: String,
}

/// Where Events go. One call per Event; the sink knows which object they regard.
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn publish(&self, event: &PoolEvent) -> Result<(), String>;
}

/// See the module docs.
pub struct Evented<A, S> {
    inner: A,
    sink: S,
    window: Mutex<limit::Window>,
    /// The size the platform last reported, for the note's "old size".
    last_size: Mutex<Option<u32>>,
}

impl<A: Actuator, S: EventSink> Evented<A, S> {
    /// Identical events are published at most once per `window`.
    pub fn new(inner: A, sink: S, window: Duration) -> Evented<A, S> {
        Evented {
            inner,
            sink,
            window: Mutex::new(limit::Window::new(window)),
            last_size: Mutex::new(None),
        }
    }

    pub fn inner(&self) -> &A {
        &self.inner
    }

    pub fn sink(&self) -> &S {
        &self.sink
    }

    async fn emit(&self, mut event: PoolEvent) {
        let verdict = self
            .window
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(&event, Timestamp::now());
        let Some(suppressed) = verdict else {
            count(&event, "suppressed");
            return;
        };
        if suppressed > 0 {
            event.note = format!("{} ({suppressed} identical suppressed)", event.note);
        }
        let outcome = match tokio::time::timeout(PUBLISH_TIMEOUT, self.sink.publish(&event)).await {
            Ok(Ok(())) => "published",
            Ok(Err(e)) => {
                tracing::warn!(reason = event.reason, error = %e, "cannot write the Kubernetes Event (the actuation is unaffected)");
                "failed"
            }
            Err(_) => {
                tracing::warn!(
                    reason = event.reason,
                    "the Kubernetes Event write timed out (the actuation is unaffected)"
                );
                "failed"
            }
        };
        count(&event, outcome);
    }
}

fn count(event: &PoolEvent, outcome: &'static str) {
    metrics::counter!(names::EVENTS_TOTAL, "reason" => event.reason, "outcome" => outcome)
        .increment(1);
}

/// The note of a scale event: the HPA's "New size: N", then what it was and who was removed.
fn scale_note(target: u32, old: Option<u32>, victims: &[Member]) -> String {
    let mut note = format!("New size: {target}");
    if let Some(old) = old {
        note += &format!("; old size: {old}");
    }
    if !victims.is_empty() {
        let ids: Vec<&str> = victims.iter().map(|v| v.id.as_str()).collect();
        note += &format!("; removed after drain: {}", ids.join(", "));
    }
    note
}

#[async_trait]
impl<A: Actuator, S: EventSink> Actuator for Evented<A, S> {
    fn platform(&self) -> &'static str {
        self.inner.platform()
    }

    async fn status(&self) -> Result<PoolStatus, ActuatorError> {
        let result = self.inner.status().await;
        match &result {
            Ok(s) => *self.last_size.lock().unwrap_or_else(|p| p.into_inner()) = Some(s.desired),
            Err(e) => {
                self.emit(PoolEvent {
                    type_: EventType::Warning,
                    reason: "FailedGetScale",
                    action: "GetScale",
                    note: format!("cannot read the size; the pool is held: {e}"),
                })
                .await
            }
        }
        result
    }

    async fn scale_to(&self, target: u32, victims: &[Member]) -> Result<(), ActuatorError> {
        let old = *self.last_size.lock().unwrap_or_else(|p| p.into_inner());
        let result = self.inner.scale_to(target, victims).await;
        let note = scale_note(target, old, victims);
        let event = match &result {
            // Same size again: the platform call was a no-op, there is nothing to report.
            Ok(()) if old == Some(target) => None,
            Ok(()) => Some(PoolEvent {
                type_: EventType::Normal,
                reason: "SuccessfulRescale",
                action: "Scale",
                note,
            }),
            Err(e) => Some(PoolEvent {
                type_: EventType::Warning,
                reason: "FailedRescale",
                action: "Scale",
                note: format!("{note}; error: {e}"),
            }),
        };
        if result.is_ok() {
            *self.last_size.lock().unwrap_or_else(|p| p.into_inner()) = Some(target);
        }
        if let Some(event) = event {
            self.emit(event).await;
        }
        result
    }
}

/// An in-memory sink that keeps every published Event; `fail` makes publishing fail.
#[derive(Debug, Default)]
pub struct RecordingEvents {
    events: Mutex<Vec<PoolEvent>>,
    fail: Mutex<bool>,
}

impl RecordingEvents {
    pub fn events(&self) -> Vec<PoolEvent> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn fail(&self, fail: bool) {
        *self.fail.lock().unwrap_or_else(|p| p.into_inner()) = fail;
    }
}

#[async_trait]
impl EventSink for RecordingEvents {
    async fn publish(&self, event: &PoolEvent) -> Result<(), String> {
        if *self.fail.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err("recording sink told to fail".into());
        }
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event.clone());
        Ok(())
    }
}

#[async_trait]
impl<S: EventSink + ?Sized> EventSink for std::sync::Arc<S> {
    async fn publish(&self, event: &PoolEvent) -> Result<(), String> {
        (**self).publish(event).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::actuators::RecordingActuator;

    fn evented(size: u32) -> Evented<RecordingActuator, Arc<RecordingEvents>> {
        Evented::new(
            RecordingActuator::with_size(size),
            Arc::new(RecordingEvents::default()),
            Duration::from_secs(600),
        )
    }

    fn reasons(
        e: &Evented<RecordingActuator, Arc<RecordingEvents>>,
    ) -> Vec<(&'static str, String)> {
        e.sink()
            .events()
            .into_iter()
            .map(|e| (e.reason, e.note))
            .collect()
    }

    #[tokio::test]
    async fn every_scale_is_an_event_with_old_and_new_size() {
        let a = evented(2);
        a.status().await.unwrap();
        a.scale_to(4, &[]).await.unwrap();
        a.scale_to(3, &[Member::new("worker-1")]).await.unwrap();
        a.scale_to(3, &[]).await.unwrap(); // no-op: no event
        assert_eq!(
            reasons(&a),
            [
                ("SuccessfulRescale", "New size: 4; old size: 2".to_string()),
                (
                    "SuccessfulRescale",
                    "New size: 3; old size: 4; removed after drain: worker-1".to_string()
                ),
            ]
        );
        assert_eq!(a.sink().events()[0].type_, EventType::Normal);
    }

    #[tokio::test]
    async fn refusals_and_unreadable_sizes_are_warnings() {
        let a = evented(2);
        a.inner().fail_next([
            ActuatorError::Protected {
                member: "i-1".into(),
            },
            ActuatorError::Unreachable {
                message: "no route".into(),
            },
        ]);
        assert!(a.scale_to(1, &[Member::new("i-1")]).await.is_err());
        assert!(a.status().await.is_err());
        let events = a.sink().events();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(
            (events[0].type_, events[0].reason, events[0].note.as_str()),
            (
                EventType::Warning,
                "FailedRescale",
                "New size: 1; removed after drain: i-1; error: member i-1 is protected from scale-in"
            )
        );
        assert_eq!(
            (events[1].type_, events[1].reason),
            (EventType::Warning, "FailedGetScale")
        );
        assert!(events[1].note.contains("no route"), "{:?}", events[1]);
    }

    #[tokio::test]
    async fn an_identical_failure_every_tick_is_published_once_per_window() {
        let a = evented(2);
        for _ in 0..5 {
            a.inner().fail_next([ActuatorError::Unreachable {
                message: "no route".into(),
            }]);
            assert!(a.status().await.is_err());
        }
        assert_eq!(a.sink().events().len(), 1);
    }

    #[tokio::test]
    async fn a_sink_failure_never_fails_the_actuation() {
        let a = evented(2);
        a.sink().fail(true);
        a.scale_to(5, &[]).await.unwrap();
        assert_eq!(a.inner().status().await.unwrap().desired, 5);
    }
}
