//! `DryRun<A>`: shadow mode for actuators. Reads go to the real platform (so decisions see the
//! real pool); writes are logged and recorded, never sent.

use std::sync::Mutex;

use async_trait::async_trait;

use super::{Actuator, ActuatorError, Member, PoolStatus, ScaleCall};

pub struct DryRun<A> {
    inner: A,
    would_have: Mutex<Vec<ScaleCall>>,
}

impl<A: Actuator> DryRun<A> {
    pub fn new(inner: A) -> DryRun<A> {
        DryRun {
            inner,
            would_have: Mutex::new(Vec::new()),
        }
    }

    /// Every `scale_to` that was suppressed, oldest first.
    pub fn would_have(&self) -> Vec<ScaleCall> {
        self.would_have
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn inner(&self) -> &A {
        &self.inner
    }
}

#[async_trait]
impl<A: Actuator> Actuator for DryRun<A> {
    fn platform(&self) -> &'static str {
        self.inner.platform()
    }

    async fn status(&self) -> Result<PoolStatus, ActuatorError> {
        self.inner.status().await
    }

    async fn scale_to(&self, target: u32, victims: &[Member]) -> Result<(), ActuatorError> {
        let victim_ids: Vec<String> = victims.iter().map(|v| v.id.clone()).collect();
        tracing::info!(
            platform = self.inner.platform(),
            target,
            victims = ?victim_ids,
            "dry run: would scale the pool (nothing sent)"
        );
        self.would_have
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(ScaleCall {
                target,
                victims: victim_ids,
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actuators::RecordingActuator;

    #[tokio::test]
    async fn records_but_never_writes() {
        let dry = DryRun::new(RecordingActuator::with_size(3));
        dry.scale_to(1, &[Member::new("worker-2")]).await.unwrap();
        assert_eq!(
            dry.would_have(),
            [ScaleCall {
                target: 1,
                victims: vec!["worker-2".into()]
            }]
        );
        assert!(
            dry.inner().calls().is_empty(),
            "the wrapped actuator must not be written to"
        );
        assert_eq!(dry.status().await.unwrap().desired, 3, "reads pass through");
    }
}
