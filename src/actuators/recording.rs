//! An in-memory actuator that records every call, for other modules' tests (daemon, drains).
//! It behaves like an ideal platform: `scale_to` applies at once, removing the named victims
//! first and then the last members, and adding numbered members on scale-up.

use std::sync::Mutex;

use async_trait::async_trait;

use super::{Actuator, ActuatorError, Member, PoolStatus};

/// One recorded `scale_to` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleCall {
    pub target: u32,
    pub victims: Vec<String>,
}

#[derive(Debug, Default)]
struct State {
    status: PoolStatus,
    calls: Vec<ScaleCall>,
    status_reads: u32,
    failures: Vec<ActuatorError>,
    next_id: u32,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct RecordingActuator {
    state: Mutex<State>,
}

impl RecordingActuator {
    /// A pool of `size` ready members named `worker-0..`.
    pub fn with_size(size: u32) -> RecordingActuator {
        let members = (0..size)
            .map(|i| Member::new(format!("worker-{i}")))
            .collect();
        RecordingActuator::with_members(members)
    }

    pub fn with_members(members: Vec<Member>) -> RecordingActuator {
        let n = members.len() as u32;
        let status = PoolStatus {
            desired: n,
            ready: n,
            min: None,
            max: None,
            members,
            ..PoolStatus::default()
        };
        RecordingActuator {
            state: Mutex::new(State {
                status,
                next_id: n,
                ..State::default()
            }),
        }
    }

    /// The next calls (status or scale_to) fail with these errors, in order.
    pub fn fail_next(&self, errors: impl IntoIterator<Item = ActuatorError>) {
        self.lock().failures.extend(errors);
    }

    pub fn calls(&self) -> Vec<ScaleCall> {
        self.lock().calls.clone()
    }

    pub fn status_reads(&self) -> u32 {
        self.lock().status_reads
    }

    /// Sets the pause annotations/tags the next status reads report.
    pub fn set_pause_marks(&self, marks: &[(&str, &str)]) {
        self.lock().status.pause_marks = super::pause_marks::select(marks.iter().copied());
    }

    pub fn current(&self) -> PoolStatus {
        self.lock().status.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Actuator for RecordingActuator {
    fn platform(&self) -> &'static str {
        "recording"
    }

    async fn status(&self) -> Result<PoolStatus, ActuatorError> {
        let mut state = self.lock();
        state.status_reads += 1;
        if !state.failures.is_empty() {
            return Err(state.failures.remove(0));
        }
        Ok(state.status.clone())
    }

    async fn scale_to(&self, target: u32, victims: &[Member]) -> Result<(), ActuatorError> {
        let mut state = self.lock();
        state.calls.push(ScaleCall {
            target,
            victims: victims.iter().map(|v| v.id.clone()).collect(),
        });
        if !state.failures.is_empty() {
            return Err(state.failures.remove(0));
        }
        if let Some(p) = victims.iter().find(|v| v.protected) {
            return Err(ActuatorError::Protected {
                member: p.id.clone(),
            });
        }
        let members = &mut state.status.members;
        for victim in victims {
            if (members.len() as u32) > target {
                members.retain(|m| m.id != victim.id);
            }
        }
        members.truncate(target as usize);
        while (state.status.members.len() as u32) < target {
            let id = format!("worker-{}", state.next_id);
            state.next_id += 1;
            state.status.members.push(Member::new(id));
        }
        state.status.desired = target;
        state.status.ready = target;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scale_down_removes_the_named_victims_first() {
        let fake = RecordingActuator::with_size(4);
        fake.scale_to(2, &[Member::new("worker-1")]).await.unwrap();
        let ids: Vec<_> = fake.current().members.into_iter().map(|m| m.id).collect();
        assert_eq!(ids, ["worker-0", "worker-2"]);
        fake.scale_to(3, &[]).await.unwrap();
        assert_eq!(fake.current().members.last().unwrap().id, "worker-4");
        assert_eq!(fake.calls().len(), 2);
    }

    #[tokio::test]
    async fn injected_failures_come_back_in_order() {
        let fake = RecordingActuator::with_size(1);
        fake.fail_next([ActuatorError::Throttled {
            message: "slow down".into(),
        }]);
        assert_eq!(fake.status().await.unwrap_err().label(), "throttled");
        assert_eq!(fake.status().await.unwrap().desired, 1);
    }
}
