//! Applying decisions. Scale-ups are sent at once (concurrently across pools); scale-downs run
//! as background drain tasks (`drain::scale_down`: choose victims, drain, remove exactly those)
//! because a drain can take minutes and must not stall the loop. Shadow pools and `--dry-run`
//! go through [`DryRun`]; a follower computes but never calls the platform.
//!
//! Every real actuation is written ahead to the state file before the platform is called, and
//! allowed by the fence (`crate::fence`) right before it: scale-ups here, scale-downs inside
//! their task, so a replica that lost the Lease sends nothing even while its flag is stale.

use std::time::Duration;

use futures::future::join_all;
use tokio::sync::watch;

use super::actuation::{Actuation, DrainTask};
use super::controller::Controller;
use super::state::{Pending, PendingKind};
use super::status::ActuationView;
use crate::actuators::{Actuator, ActuatorError, DryRun};
use crate::drain;
use crate::engine::{Decision, DrainPlan};
use crate::fence::Fenced;
use crate::policy::{DrainMethod, OnDrainTimeout};
use crate::telemetry::names;
use crate::time::Timestamp;

/// Upper bound on one scale-up call (the actuators retry inside it).
pub const ACTUATION_TIMEOUT: Duration = Duration::from_secs(60);

impl Controller {
    pub(super) async fn actuate(&mut self, decisions: &[Decision], now: Timestamp, leader: bool) {
        let mut ups = Vec::new();
        let mut downs = Vec::new();
        for (i, d) in decisions.iter().enumerate() {
            let actuation = Actuation::of(d.mode, self.cfg.dry_run, leader);
            if matches!(actuation, Actuation::Shadow | Actuation::DryRun) {
                // Decided on the would-be pool: never touches a real drain or the platform.
                if d.desired == d.current {
                    self.loops.of(&d.pool).forget_would();
                } else {
                    self.would(i, d, now).await;
                }
                continue;
            }
            if let Some(task) = self.loops.of(&d.pool).drain_mut() {
                if d.desired >= task.from && !task.aborting {
                    task.aborting = true;
                    let _ = task.abort.send(true);
                    tracing::info!(pool = %d.pool, desired = d.desired, "capacity is needed again: stopping the scale-down's drains where they can still be stopped");
                }
                continue;
            }
            if d.desired == d.current {
                self.loops.of(&d.pool).forget_would();
                continue;
            }
            if self.pools[i].status.is_none() {
                continue; // current size unknown: never actuate blind (shown on /status)
            }
            match actuation {
                Actuation::Paused | Actuation::Follower | Actuation::Shadow | Actuation::DryRun => {
                }
                Actuation::Actuate if d.desired > d.current => ups.push(i),
                Actuation::Actuate => downs.push(i),
            }
        }
        if !ups.is_empty()
            && let Err(fenced) = self.fence.may_act().await
        {
            for &i in &ups {
                self.note_fenced(&decisions[i].pool, decisions[i].current, &fenced, now);
            }
            ups.clear();
        }
        if ups.is_empty() && downs.is_empty() {
            return;
        }
        for &i in ups.iter().chain(&downs) {
            let d = &decisions[i];
            let kind = if d.desired > d.current {
                PendingKind::Scale
            } else {
                PendingKind::Drain
            };
            self.pending.push(Pending {
                pool: d.pool.clone(),
                from: d.current,
                to: d.desired,
                since: now,
                kind,
            });
        }
        self.persist(now); // write-ahead: a crash from here on is reconciled at the next start

        let calls = ups.iter().map(|&i| {
            let actuator = self.pools[i].actuator.clone();
            let target = decisions[i].desired;
            async move {
                let Some(actuator) = actuator else {
                    return Err(ActuatorError::Config {
                        message: "actuator not set up".into(),
                    });
                };
                tokio::time::timeout(ACTUATION_TIMEOUT, actuator.scale_to(target, &[]))
                    .await
                    .unwrap_or_else(|_| {
                        Err(ActuatorError::Unreachable {
                            message: format!("no answer within {}s", ACTUATION_TIMEOUT.as_secs()),
                        })
                    })
            }
        });
        let results = join_all(calls).await;
        for (i, result) in ups.into_iter().zip(results) {
            let d = &decisions[i];
            self.finish_scale(d, result, now);
        }
        for i in downs {
            self.start_drain(i, &decisions[i], now);
        }
    }

    fn finish_scale(&mut self, d: &Decision, result: Result<(), ActuatorError>, now: Timestamp) {
        let outcome = match &result {
            Ok(()) => "ok",
            Err(e) => e.label(),
        };
        match &result {
            Ok(()) => {
                self.remember_actuation(&d.pool, d.current, d.desired, now);
                self.pending
                    .retain(|p| !(p.pool == d.pool && p.kind == PendingKind::Scale));
                tracing::info!(pool = %d.pool, from = d.current, to = d.desired, because = %d.reasons.last().map(ToString::to_string).unwrap_or_default(), "scaled the pool up");
            }
            // The write-ahead entry stays: the next observation tells whether it took effect.
            Err(e) => {
                tracing::warn!(pool = %d.pool, from = d.current, to = d.desired, kind = e.label(), error = %e, "scale-up failed; the next tick decides again")
            }
        }
        let view = ActuationView {
            at: now,
            from: d.current,
            to: d.desired,
            outcome: outcome.to_string(),
            error: result.err().map(|e| e.to_string()),
        };
        self.note_actuation(&d.pool, view);
    }

    /// A change the fence stopped: counted, logged and shown as the pool's last actuation
    /// (`fenced`, from = to = the size before).
    pub(super) fn note_fenced(&mut self, pool: &str, from: u32, fenced: &Fenced, now: Timestamp) {
        metrics::counter!(names::FENCED_TOTAL, "pool" => pool.to_owned(), "reason" => fenced.label())
            .increment(1);
        tracing::warn!(%pool, reason = fenced.label(), why = %fenced, "fenced: this instance may no longer actuate, so the change was not sent (the lease holder decides)");
        let view = ActuationView {
            at: now,
            from,
            to: from,
            outcome: "fenced".into(),
            error: Some(fenced.to_string()),
        };
        self.note_actuation(pool, view);
    }

    /// Counts an actuation by outcome and shows it on `/status` as the pool's last one.
    fn note_actuation(&mut self, pool: &str, view: ActuationView) {
        metrics::counter!(names::ACTUATIONS_TOTAL, "pool" => pool.to_owned(), "outcome" => view.outcome.clone())
            .increment(1);
        self.loops.of(pool).note_actuation(view);
    }

    fn start_drain(&mut self, i: usize, d: &Decision, now: Timestamp) {
        let pool = &self.pools[i];
        let Some(actuator) = pool.actuator.clone() else {
            return;
        };
        let drainer = pool.drainer.clone();
        let fence = self.fence.clone();
        let clock = self.clock.clone();
        let plan = d.drain.unwrap_or(DrainPlan {
            remove: d.current - d.desired,
            method: DrainMethod::None,
            timeout: Duration::from_secs(600),
            on_timeout: OnDrainTimeout::Keep,
        });
        let poll = (self.cfg.tick / 2).clamp(Duration::from_millis(200), Duration::from_secs(5));
        let target = d.desired;
        let (abort, abort_rx) = watch::channel(false);
        tracing::info!(pool = %d.pool, from = d.current, to = target, method = drainer.method(), timeout = %humantime::format_duration(plan.timeout), because = %d.reasons.last().map(ToString::to_string).unwrap_or_default(), "scaling the pool down: draining the chosen workers first");
        let handle = tokio::spawn(async move {
            let report = drain::scale_down(
                &*actuator, &*drainer, &*fence, &plan, target, poll, abort_rx,
            )
            .await;
            (report, clock.now())
        });
        self.loops.of(&d.pool).start_drain(DrainTask {
            from: d.current,
            to: target,
            since: now,
            abort,
            aborting: false,
            fenced: false,
            handle,
        });
    }

    /// Harvests finished scale-downs: records what was removed, reports what was kept.
    pub(super) async fn collect_drains(&mut self, now: Timestamp) {
        for (pool, task) in self.loops.take_finished_drains() {
            let (outcome, to, error) = match task.handle.await {
                Ok((Ok(report), at))
                    if report.applied.is_none() && (report.fenced.is_some() || task.fenced) =>
                {
                    self.pending
                        .retain(|p| !(p.pool == pool && p.kind == PendingKind::Drain));
                    let fenced = report.fenced.unwrap_or(Fenced::NotLeader);
                    self.note_fenced(&pool, task.from, &fenced, at);
                    continue;
                }
                Ok((Ok(report), at)) => {
                    self.pending
                        .retain(|p| !(p.pool == pool && p.kind == PendingKind::Drain));
                    if let Some(applied) = report.applied {
                        self.remember_actuation(&pool, task.from, applied, at);
                    }
                    let kept: Vec<String> = report
                        .drains
                        .iter()
                        .filter(|(id, _)| !report.removed.contains(id))
                        .map(|(id, o)| format!("{id}: {}", o.label()))
                        .collect();
                    let outcome = if report.complete() {
                        "ok"
                    } else if report.applied.is_some() {
                        "partial"
                    } else {
                        "nothing_removed"
                    };
                    if report.complete() {
                        tracing::info!(%pool, from = task.from, to = task.to, removed = ?report.removed, "scaled the pool down after draining");
                    } else {
                        tracing::warn!(%pool, from = task.from, wanted = task.to, applied = ?report.applied, removed = ?report.removed, kept = ?kept, "scale-down incomplete: workers that were still busy (or could not be drained) were kept");
                    }
                    (outcome, report.applied.unwrap_or(task.from), None)
                }
                Ok((Err(e), _)) => {
                    tracing::warn!(%pool, from = task.from, to = task.to, kind = e.label(), error = %e, "scale-down failed; the next tick decides again");
                    (e.label(), task.from, Some(e.to_string()))
                }
                Err(e) => {
                    tracing::error!(%pool, error = %e, "the scale-down task ended abnormally");
                    ("task_failed", task.from, Some(e.to_string()))
                }
            };
            let view = ActuationView {
                at: now,
                from: task.from,
                to,
                outcome: outcome.to_string(),
                error,
            };
            self.note_actuation(&pool, view);
        }
    }

    /// Shadow and dry-run: the would-be pool takes the change (and the engine remembers it,
    /// as it would a real one); what would be sent goes through `DryRun`, logged once per change.
    async fn would(&mut self, i: usize, d: &Decision, now: Timestamp) {
        if let Some(shadow) = self.shadows.get_mut(&d.pool) {
            shadow.resize(d.desired, now);
            self.remember_actuation(&d.pool, d.current, d.desired, now);
        }
        if self.pools[i].status.is_none()
            || !self.loops.of(&d.pool).would_changed(d.current, d.desired)
        {
            return; // the platform's members are unknown, or this was already shown
        }
        let pool = &self.pools[i];
        let Some(actuator) = pool.actuator.clone() else {
            return;
        };
        let victims = match (&pool.status, d.desired < d.current) {
            (Some(status), true) => {
                let count = (d.current - d.desired) as usize;
                drain::choose_victims_or_platform_order(&*pool.drainer, &status.members, count)
                    .await
            }
            _ => Vec::new(),
        };
        let _ = DryRun::new(actuator).scale_to(d.desired, &victims).await;
        let view = ActuationView {
            at: now,
            from: d.current,
            to: d.desired,
            outcome: "dry_run".into(),
            error: None,
        };
        self.note_actuation(&d.pool, view);
    }
}
