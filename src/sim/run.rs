//! The replay loop: one controller, one pool, a virtual clock. Plain and synchronous; the
//! clock jumps from event to event (arrivals, completions, boots, drain deadlines) and to every
//! controller tick, so results do not depend on how fast the machine is. A tick after which the
//! autoscaler is settled (it would hold at every later tick until the pool changes) is followed
//! by the first tick at or after the pool's next event: quiet stretches cost nothing, and the
//! results are those of ticking through them (`Clock::EveryTick`; a test compares both on
//! every shipped scenario).

use indicatif::ProgressBar;

use super::autoscaler::Autoscaler;
use super::pool::{Pool, PoolConfig, PoolTotals};
use super::timeline::Timeline;
use super::trace::{Job, from_centi};
use crate::engine::WorkerCounts;
use crate::time::Timestamp;

/// A replay gives up this long after the last arrival (a policy that never scales up would
/// otherwise loop forever); jobs still unfinished are reported.
pub const GIVE_UP_AFTER_LAST_ARRIVAL_MS: i64 = 30 * 86_400_000;

/// One applied size change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actuation {
    pub at: i64,
    pub from: u32,
    pub to: u32,
    pub reason: String,
}

/// Everything one replay produced.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub timeline: Timeline,
    pub totals: PoolTotals,
    pub actuations: Vec<Actuation>,
}

impl RunResult {
    pub fn scale_ups(&self) -> usize {
        self.actuations.iter().filter(|a| a.to > a.from).count()
    }

    pub fn scale_downs(&self) -> usize {
        self.actuations.iter().filter(|a| a.to < a.from).count()
    }
}

/// How the replay's clock visits controller ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// Skip the ticks of quiet stretches (same results, far fewer ticks).
    #[default]
    SkipQuiet,
    /// Call the controller at every tick (the reference the fast clock is tested against).
    EveryTick,
}

/// Replays `jobs` (sorted by arrival) through `controller`. The first tick is at the first
/// arrival; the replay ends when the last job finishes.
pub fn replay(
    jobs: &[Job],
    config: PoolConfig,
    controller: &mut dyn Autoscaler,
    progress: &ProgressBar,
) -> RunResult {
    replay_with(jobs, config, controller, progress, Clock::SkipQuiet)
}

/// [`replay`] with a chosen clock.
pub fn replay_with(
    jobs: &[Job],
    config: PoolConfig,
    controller: &mut dyn Autoscaler,
    progress: &ProgressBar,
    clock: Clock,
) -> RunResult {
    let start = jobs.first().map_or(0, |job| job.arrival.0);
    let last_arrival = jobs.last().map_or(0, |job| job.arrival.0);
    let give_up_at = last_arrival + GIVE_UP_AFTER_LAST_ARRIVAL_MS;
    let period = controller.period_ms().max(1);
    let mut pool = Pool::new(config, jobs, controller.initial_workers(), start);
    let mut timeline = Timeline::default();
    let mut actuations = Vec::new();
    let mut next_tick = start;
    let mut ticks = 0u64;
    let mut now = start;
    let mut requested = pool.requested();
    // First tick the controller was not called for, while a skip is under way.
    let mut skipped_from: Option<i64> = None;
    while !pool.done() {
        now = pool
            .next_event()
            .map_or(next_tick, |event| event.min(next_tick));
        if now > give_up_at {
            now = give_up_at;
            break;
        }
        pool.advance(now);
        if now == next_tick {
            // Victims that became idle were removed by the pool since the last tick: that is
            // an actuation too (the daemon records it when its drain completes).
            if pool.requested() < requested {
                controller.actuated(requested, pool.requested(), Timestamp(now));
                actuations.push(Actuation {
                    at: now,
                    from: requested,
                    to: pool.requested(),
                    reason: "drained".into(),
                });
            }
            let workers = WorkerCounts {
                requested: pool.requested(),
                ready: pool.ready(),
            };
            let demand = from_centi(pool.demand_units());
            if let Some(skipped_from) = skipped_from.take() {
                controller.skipped(Timestamp(skipped_from), Timestamp(now));
            }
            let action = controller.decide(Timestamp(now), demand, workers);
            let settled = match clock {
                Clock::SkipQuiet if action.is_none() => controller.settled_until(),
                _ => None,
            };
            if let Some(action) = action {
                pool.scale_to(action.desired, action.scale_down, now);
                let to = pool.requested();
                if to != workers.requested {
                    controller.actuated(workers.requested, to, Timestamp(now));
                    actuations.push(Actuation {
                        at: now,
                        from: workers.requested,
                        to,
                        reason: action.reason,
                    });
                }
            }
            requested = pool.requested();
            next_tick += period;
            if let Some(until) = settled {
                // Nothing changes before the pool's next event (or the controller's own next
                // change): resume at the first tick at or after it, or past the give-up time
                // when nothing is left to happen.
                let resume = pool.next_event().unwrap_or(give_up_at + 1).min(until.0);
                let ahead = (resume - next_tick).max(0);
                let resume_tick =
                    next_tick + (ahead as u64).div_ceil(period as u64) as i64 * period;
                if resume_tick > next_tick {
                    skipped_from = Some(next_tick);
                    next_tick = resume_tick;
                }
            }
            ticks += 1;
            if ticks.is_multiple_of(65_536) {
                progress.set_position(((now - start).max(0) / 1000) as u64);
            }
        }
        timeline.push(pool.sample(now));
    }
    timeline.end = now;
    progress.set_position(((now - start).max(0) / 1000) as u64);
    RunResult {
        timeline,
        totals: pool.finish(now),
        actuations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::PoolRules;
    use crate::sim::autoscaler::{EngineAutoscaler, StaticAutoscaler, kubernetes_scale_down};
    use crate::sim::pool::billing::Billing;
    use crate::sim::pool::workers::JobModel;

    fn jobs() -> Vec<Job> {
        (0..40)
            .map(|i| Job {
                arrival: Timestamp(i * 30_000),
                width: 100 * (1 + (i as u64 % 3)),
                runtime_ms: 200_000,
            })
            .collect()
    }

    fn config() -> PoolConfig {
        PoolConfig {
            capacity: 400,
            boot_ms: 60_000,
            model: JobModel::Slot,
            billing: Billing::default(),
            kill: Default::default(),
        }
    }

    #[test]
    fn static_pool_runs_everything_without_actuating() {
        let jobs = jobs();
        let mut controller = StaticAutoscaler {
            workers: 10,
            period_ms: 10_000,
        };
        let result = replay(&jobs, config(), &mut controller, &ProgressBar::hidden());
        assert_eq!(result.totals.unfinished, 0);
        assert!(result.actuations.is_empty());
        assert!(result.totals.outcomes.iter().all(|o| o.wait_ms == 0));
        assert_eq!(result.timeline.end, 39 * 30_000 + 200_000);
    }

    /// The fast clock on the targets whose estimates move with time: a backlog deadline (its
    /// rise ages out) and pre-warming (its floor moves per slot), over three days of a daily
    /// rhythm with quiet nights, against ticking through every tick.
    #[test]
    fn skipping_quiet_ticks_changes_nothing_with_backlog_and_prewarm_targets() {
        let mut jobs = Vec::new();
        for day in 0..3i64 {
            for i in 0..120i64 {
                jobs.push(Job {
                    arrival: Timestamp(day * 86_400_000 + 9 * 3_600_000 + i * 20_000),
                    width: 100 * (1 + (i as u64 % 4)),
                    runtime_ms: 90_000 + (i % 5) * 30_000,
                });
            }
        }
        let text = "pool: p\nsignals:\n  - spark: { master: \"http://s:8080\", cores_per_waiting_app: 4 }\n    per_worker: 4\n\
                    workers: { kubernetes: { namespace: n, deployment: d } }\nbounds: { min: 0, max: 30 }\n\
                    scale_to_zero: { activation_threshold: 0 }\nboot_time: 60s\n\
                    target: { clear_backlog_within: 2m, prewarm: { season: daily } }\n";
        let policy = crate::policy::load_str(text, "t.yaml").unwrap();
        let run = |clock| {
            let mut controller = EngineAutoscaler::new(&policy, 10_000);
            replay_with(
                &jobs,
                config(),
                &mut controller,
                &ProgressBar::hidden(),
                clock,
            )
        };
        let (fast, every) = (run(Clock::SkipQuiet), run(Clock::EveryTick));
        assert_eq!(fast.totals.unfinished, 0);
        assert!(
            fast.actuations
                .iter()
                .any(|a| a.reason.contains("forecast")),
            "{:?}",
            fast.actuations
        );
        assert!(fast.actuations.iter().any(|a| a.reason.contains("backlog")));
        assert_eq!(fast.actuations, every.actuations);
        assert_eq!(fast.timeline, every.timeline);
    }

    #[test]
    fn engine_controller_scales_and_is_deterministic() {
        let jobs = jobs();
        let run = || {
            let policy = PoolRules::hpa("h", 4.0, 1, 20);
            let mut controller =
                EngineAutoscaler::with_scale_down(policy, 15_000, kubernetes_scale_down(600_000));
            replay(&jobs, config(), &mut controller, &ProgressBar::hidden())
        };
        let (a, b) = (run(), run());
        assert_eq!(a.totals.unfinished, 0);
        assert!(a.scale_ups() > 0 && a.scale_downs() > 0);
        assert_eq!(a.actuations, b.actuations);
        assert_eq!(a.timeline, b.timeline);
    }

    #[test]
    fn a_pool_that_never_grows_gives_up() {
        let jobs = jobs();
        let mut controller = StaticAutoscaler {
            workers: 0,
            period_ms: 3_600_000,
        };
        let result = replay(&jobs, config(), &mut controller, &ProgressBar::hidden());
        assert_eq!(result.totals.unfinished, 40);
        assert_eq!(
            result.timeline.end,
            39 * 30_000 + GIVE_UP_AFTER_LAST_ARRIVAL_MS
        );
    }
}
