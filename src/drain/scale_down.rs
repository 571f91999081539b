//! Drain-aware scale-down: choose victims, drain them concurrently, then have the actuator remove
//! exactly the ones that are empty (or, with `on_timeout: force`, that timed out). The fence is
//! asked before the drains begin (a one-way drain is the first destructive step) and again
//! right before the removal, which comes minutes later: a replica deposed in between (or frozen
//! and resumed) stops there and sends nothing.

use std::time::Duration;

use tokio::sync::watch;

use super::{DrainOutcome, Drainer, choose_victims_or_platform_order, drain_member};
use crate::actuators::{Actuator, ActuatorError, Member};
use crate::engine::DrainPlan;
use crate::fence::{Fence, Fenced};
use crate::policy::model::OnDrainTimeout;

/// What a scale-down did, member by member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleDownReport {
    /// The size the engine asked for.
    pub requested: u32,
    /// The size sent to the actuator; `None` when nothing was sent.
    pub applied: Option<u32>,
    /// Every chosen victim and how its drain ended.
    pub drains: Vec<(String, DrainOutcome)>,
    /// The members handed to the actuator for removal.
    pub removed: Vec<String>,
    /// The fence refused a step: nothing was sent from there on.
    pub fenced: Option<Fenced>,
}

impl ScaleDownReport {
    /// Reached the requested size.
    pub fn complete(&self) -> bool {
        self.applied == Some(self.requested)
    }
}

/// Scales the pool down to `target` following `plan`. `abort` turning `true` (the pool needs
/// capacity again) abandons drains that can still be abandoned, and then removes only workers
/// whose one-way drain already began. `poll` is how often drain progress is checked. `fence`
/// must allow the drains' start and the removal (see the module docs).
pub async fn scale_down(
    actuator: &dyn Actuator,
    drainer: &dyn Drainer,
    fence: &dyn Fence,
    plan: &DrainPlan,
    target: u32,
    poll: Duration,
    abort: watch::Receiver<bool>,
) -> Result<ScaleDownReport, ActuatorError> {
    let status = actuator.status().await?;
    let mut report = ScaleDownReport {
        requested: target,
        applied: None,
        drains: Vec::new(),
        removed: Vec::new(),
        fenced: None,
    };
    if status.desired <= target {
        return Ok(report);
    }
    let count = (status.desired - target) as usize;
    let victims = choose_victims_or_platform_order(drainer, &status.members, count).await;
    if let Err(fenced) = fence.may_act().await {
        report.fenced = Some(fenced);
        return Ok(report);
    }
    let drains = victims
        .iter()
        .map(|victim| drain_member(drainer, victim, plan.timeout, poll, abort.clone()));
    let outcomes = futures::future::join_all(drains).await;

    let aborted = *abort.borrow();
    let result = remove_drained(
        actuator,
        drainer,
        fence,
        plan,
        &victims,
        outcomes,
        target,
        aborted,
        &mut report,
    )
    .await;
    // Victims that stay (abandoned, failed, kept after a timeout, or not removed after all)
    // take work again. A fenced replica sends nothing more.
    if report.fenced.is_none() {
        for victim in victims.iter().filter(|v| !report.removed.contains(&v.id)) {
            if let Err(e) = drainer.restore(victim).await {
                tracing::warn!(method = drainer.method(), member = %victim.id, error = %e, "could not undo the drain of a worker that stays");
            }
        }
    }
    result.map(|()| report)
}

/// The second half of [`scale_down`]: hands the drained victims to the actuator.
#[allow(clippy::too_many_arguments)]
async fn remove_drained(
    actuator: &dyn Actuator,
    drainer: &dyn Drainer,
    fence: &dyn Fence,
    plan: &DrainPlan,
    victims: &[Member],
    outcomes: Vec<DrainOutcome>,
    target: u32,
    aborted: bool,
    report: &mut ScaleDownReport,
) -> Result<(), ActuatorError> {
    let mut removable: Vec<Member> = Vec::new();
    for (victim, outcome) in victims.iter().zip(outcomes) {
        let remove = match &outcome {
            DrainOutcome::Drained => !aborted || drainer.one_way(),
            DrainOutcome::TimedOut => {
                plan.on_timeout == OnDrainTimeout::Force && (!aborted || drainer.one_way())
            }
            DrainOutcome::Abandoned | DrainOutcome::Failed(_) => false,
        };
        if remove {
            removable.push(victim.clone());
        }
        report.drains.push((victim.id.clone(), outcome));
    }
    if removable.is_empty() {
        return Ok(());
    }
    // Drains take minutes: size from what the platform says now, not from before.
    let fresh = actuator.status().await?;
    removable.retain(|v| fresh.members.iter().any(|m| m.id == v.id));
    let applied = fresh
        .desired
        .saturating_sub(removable.len() as u32)
        .max(target);
    removable.truncate(fresh.desired.saturating_sub(applied) as usize);
    if applied < fresh.desired {
        if let Err(fenced) = fence.may_act().await {
            report.fenced = Some(fenced);
            return Ok(());
        }
        actuator.scale_to(applied, &removable).await?;
        for member in &removable {
            if let Err(e) = drainer.forget(member).await {
                tracing::warn!(method = drainer.method(), member = %member.id, error = %e, "could not clear the removed worker from the engine");
            }
        }
        report.applied = Some(applied);
        report.removed = removable.into_iter().map(|m| m.id).collect();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actuators::RecordingActuator;
    use crate::drain::tests::ScriptedDrainer;
    use crate::fence::{RecordingFence, Unfenced};
    use crate::policy::model::DrainMethod;

    fn plan(on_timeout: OnDrainTimeout) -> DrainPlan {
        DrainPlan {
            remove: 2,
            method: DrainMethod::Celery,
            timeout: Duration::from_millis(200),
            on_timeout,
        }
    }

    /// Scales `pool` down to `target`, polling drains every 10 ms.
    async fn run(
        pool: &RecordingActuator,
        drainer: &ScriptedDrainer,
        on_timeout: OnDrainTimeout,
        target: u32,
        abort: watch::Receiver<bool>,
    ) -> ScaleDownReport {
        let plan = plan(on_timeout);
        scale_down(
            pool,
            drainer,
            &Unfenced,
            &plan,
            target,
            Duration::from_millis(10),
            abort,
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn removes_idle_workers_first_and_keeps_busy_ones_on_timeout() {
        let pool = RecordingActuator::with_size(4);
        let drainer = ScriptedDrainer::busy(&["worker-0", "worker-1"]);
        let (_tx, abort) = watch::channel(false);
        let report = run(&pool, &drainer, OnDrainTimeout::Keep, 2, abort).await;
        assert_eq!(
            report.removed,
            ["worker-2", "worker-3"],
            "idle workers are the victims"
        );
        assert_eq!(pool.current().desired, 2);
        assert!(report.complete());
    }

    #[tokio::test]
    async fn busy_victims_are_kept_or_forced_per_policy() {
        let drainer = ScriptedDrainer::busy(&["worker-0", "worker-1", "worker-2"]);
        let (_tx, abort) = watch::channel(false);
        let keep = RecordingActuator::with_size(3);
        let report = run(&keep, &drainer, OnDrainTimeout::Keep, 1, abort.clone()).await;
        assert!(
            report
                .drains
                .iter()
                .all(|(_, o)| *o == DrainOutcome::TimedOut)
        );
        assert!(
            keep.calls().is_empty(),
            "a busy worker is never removed under `keep`"
        );
        assert!(!report.complete());

        let force = RecordingActuator::with_size(3);
        let report = run(&force, &drainer, OnDrainTimeout::Force, 1, abort).await;
        assert_eq!(report.applied, Some(1));
        assert_eq!(force.calls()[0].victims.len(), 2);
    }

    #[tokio::test]
    async fn abort_before_the_one_way_call_sends_nothing() {
        let pool = RecordingActuator::with_size(3);
        let drainer = ScriptedDrainer::busy(&[]).one_way();
        let (tx, abort) = watch::channel(false);
        tx.send(true).unwrap();
        let report = run(&pool, &drainer, OnDrainTimeout::Force, 1, abort).await;
        assert!(
            report
                .drains
                .iter()
                .all(|(_, o)| *o == DrainOutcome::Abandoned)
        );
        assert_eq!(
            drainer.begun(),
            Vec::<String>::new(),
            "the one-way call was never made"
        );
        assert!(pool.calls().is_empty());
    }

    #[tokio::test]
    async fn abort_during_a_reversible_drain_keeps_the_worker() {
        let pool = RecordingActuator::with_size(2);
        let drainer = ScriptedDrainer::busy(&["worker-0", "worker-1"]);
        let (tx, abort) = watch::channel(false);
        let force = plan(OnDrainTimeout::Force);
        let run = scale_down(
            &pool,
            &drainer,
            &Unfenced,
            &force,
            1,
            Duration::from_millis(10),
            abort,
        );
        let (report, _) = tokio::join!(run, async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            tx.send(true).unwrap();
        });
        let report = report.unwrap();
        assert_eq!(report.drains[0].1, DrainOutcome::Abandoned);
        assert!(pool.calls().is_empty());
    }

    #[tokio::test]
    async fn a_fence_refusing_before_the_drains_begin_sends_nothing_at_all() {
        let pool = RecordingActuator::with_size(3);
        let drainer = ScriptedDrainer::busy(&[]).one_way();
        let fence = RecordingFence::answering([Err(Fenced::NotLeader)]);
        let (_tx, abort) = watch::channel(false);
        let force = plan(OnDrainTimeout::Force);
        let report = scale_down(
            &pool,
            &drainer,
            &fence,
            &force,
            1,
            Duration::from_millis(10),
            abort,
        )
        .await
        .unwrap();
        assert_eq!(report.fenced, Some(Fenced::NotLeader));
        assert_eq!(drainer.begun(), Vec::<String>::new(), "no one-way call");
        assert!(pool.calls().is_empty());
    }

    #[tokio::test]
    async fn a_fence_refusing_after_the_drains_stops_before_the_removal() {
        // Leader when the drains began; deposed (another holder) by the time they finished.
        let pool = RecordingActuator::with_size(3);
        let drainer = ScriptedDrainer::busy(&[]).one_way();
        let taken = Fenced::HeldByOther {
            holder: Some("b".into()),
        };
        let fence = RecordingFence::answering([Ok(()), Err(taken.clone())]);
        let (_tx, abort) = watch::channel(false);
        let force = plan(OnDrainTimeout::Force);
        let report = scale_down(
            &pool,
            &drainer,
            &fence,
            &force,
            1,
            Duration::from_millis(10),
            abort,
        )
        .await
        .unwrap();
        assert_eq!(drainer.begun().len(), 2, "the drains ran");
        assert_eq!(fence.checks(), 2);
        assert_eq!(report.fenced, Some(taken));
        assert!(pool.calls().is_empty(), "no removal after the refusal");
        assert_eq!(report.applied, None);
        assert_eq!(pool.current().desired, 3);
    }
}
