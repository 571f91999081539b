//! Removal models: how each engine's workers are removed when no autoscaler-side drain exists.
//!
//! One closed enum, [`Engine`], one variant per engine a scenario's workers run. Every fact the
//! simulator needs about removing that engine's workers is answered here and nowhere else:
//! which worker the platform picks ([`Engine::stock`]'s victim order), what SIGTERM does to
//! the work on it (the stock removal), what a killed worker's work loses ([`Engine::kill`]),
//! and what poolpilot does instead ([`Engine::idle_first`]). `simulations/README.md` lists the
//! sources of each fact; adding an engine is a change to this file and that table.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::pool::{KillEffect, Removal, ScaleDown, VictimOrder};

/// The engine a pool's workers run, which decides how they die.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// Airflow/Superset Celery workers on Kubernetes (Airflow chart).
    Celery,
    /// Trino workers on Kubernetes (Trino chart, no preStop hook).
    Trino,
    /// Spark standalone workers on an EC2 Auto Scaling group.
    Spark,
    /// YARN NodeManagers on an EC2 Auto Scaling group.
    Yarn,
    /// Any other process in a Kubernetes Deployment (pod spec defaults).
    Generic,
}

/// A reversible removal that never times out: "go when idle", nothing is ever killed.
pub const NEVER_MS: i64 = i64::MAX / 4;

/// Spark/YARN tasks are assumed this long (traces have no task boundaries): a killed executor
/// loses the time since its current task began, at most this much per core.
pub const TASK_MS: i64 = 60_000;

/// Kubernetes' default `terminationGracePeriodSeconds` (pod spec).
pub const KUBERNETES_DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// The Airflow chart's `workers.terminationGracePeriodSeconds` for Celery workers.
pub const AIRFLOW_CHART_GRACE: Duration = Duration::from_secs(600);

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Celery => "celery",
            Engine::Trino => "trino",
            Engine::Spark => "spark",
            Engine::Yarn => "yarn",
            Engine::Generic => "generic",
        }
    }

    /// The termination grace the engine's stock deployment sets, when SIGTERM leaves the work
    /// running at all (`None`: the work dies with the signal).
    pub fn default_grace(self) -> Option<Duration> {
        match self {
            Engine::Celery => Some(AIRFLOW_CHART_GRACE),
            Engine::Generic => Some(KUBERNETES_DEFAULT_GRACE),
            Engine::Trino | Engine::Spark | Engine::Yarn => None,
        }
    }

    /// Stock removal, without poolpilot: the platform's victim choice and what SIGTERM does.
    /// `grace` overrides [`Engine::default_grace`] where the engine has one.
    pub fn stock(self, grace: Option<Duration>) -> ScaleDown {
        let grace_ms = grace.or(self.default_grace()).map(|g| g.as_millis() as i64);
        match self {
            // ReplicaSet downscale order; SIGTERM = warm shutdown: no new tasks, running ones
            // finish, SIGKILL at the grace.
            Engine::Celery | Engine::Generic => ScaleDown {
                order: VictimOrder::Newest,
                removal: Removal::Drain {
                    timeout_ms: Some(grace_ms.unwrap_or(0)),
                },
            },
            // ReplicaSet downscale order; the worker exits on SIGTERM without a preStop hook.
            Engine::Trino => ScaleDown {
                order: VictimOrder::Newest,
                removal: Removal::Kill,
            },
            // EC2 Auto Scaling default termination policy; the instance is terminated, the
            // worker and its executors (or NodeManager and containers) die with it.
            Engine::Spark | Engine::Yarn => ScaleDown {
                order: VictimOrder::ClosestToNextHour,
                removal: Removal::Kill,
            },
        }
    }

    /// poolpilot's removal with nothing killed: idle workers first; busy Celery workers keep
    /// working and go once idle (reversible), busy Trino/Spark/YARN/generic workers drain
    /// one-way (no new work, released when empty), with no timeout.
    pub fn idle_first(self) -> ScaleDown {
        let removal = match self {
            Engine::Celery => Removal::WhenIdle {
                timeout_ms: NEVER_MS,
                force: false,
            },
            _ => Removal::Drain { timeout_ms: None },
        };
        ScaleDown {
            order: VictimOrder::IdleFirst,
            removal,
        }
    }

    /// What a killed worker's work loses.
    pub fn kill(self) -> KillEffect {
        match self {
            // Celery: the task is re-run from zero (acks_late redelivery / Airflow retry);
            // Trino: every query with a task on the worker fails and is resubmitted.
            Engine::Celery | Engine::Trino | Engine::Generic => KillEffect::Restart,
            // Spark/YARN: the lost executors' running tasks rerun elsewhere; finished tasks
            // are kept and the application goes on.
            Engine::Spark | Engine::Yarn => KillEffect::KeepFinishedTasks { task_ms: TASK_MS },
        }
    }
}

/// A short text of a removal model for reports: victim order, what happens to busy victims,
/// and what a kill costs (only when something can be killed).
pub fn describe(scale_down: ScaleDown, kill: KillEffect) -> String {
    let order = match scale_down.order {
        VictimOrder::IdleFirst => "idle first",
        VictimOrder::Newest => "newest first",
        VictimOrder::ClosestToNextHour => "closest to next hour",
    };
    let (busy, kills) = match scale_down.removal {
        Removal::Kill => ("killed at once".to_string(), true),
        Removal::Drain { timeout_ms: None } => ("drained".to_string(), false),
        Removal::Drain {
            timeout_ms: Some(ms),
        } => (format!("drained, killed at {}", seconds(ms)), true),
        Removal::WhenIdle { timeout_ms, .. } if timeout_ms >= NEVER_MS => {
            ("go when idle".to_string(), false)
        }
        Removal::WhenIdle {
            timeout_ms,
            force: true,
        } => (
            format!("go when idle, killed at {}", seconds(timeout_ms)),
            true,
        ),
        Removal::WhenIdle {
            timeout_ms,
            force: false,
        } => (
            format!("go when idle, kept after {}", seconds(timeout_ms)),
            false,
        ),
    };
    if !kills {
        return format!("{order}; busy {busy}; nothing killed");
    }
    let effect = match kill {
        KillEffect::Restart => "work rerun from zero",
        KillEffect::KeepFinishedTasks { .. } => "in-flight tasks rerun",
    };
    format!("{order}; busy {busy}; {effect}")
}

fn seconds(ms: i64) -> String {
    let s = ms / 1000;
    if s >= 3600 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s >= 60 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::pool::billing::Billing;
    use crate::sim::pool::workers::JobModel;
    use crate::sim::pool::{Pool, PoolConfig, PoolTotals};
    use crate::sim::trace::Job;
    use crate::time::Timestamp;

    /// C = 4 units, instant boot, per-second billing without a minimum.
    fn config(engine: Engine) -> PoolConfig {
        PoolConfig {
            capacity: 400,
            boot_ms: 0,
            model: JobModel::Slot,
            billing: Billing::PerSecond {
                minimum: Duration::ZERO,
            },
            kill: engine.kill(),
        }
    }

    fn job(arrival_s: i64, units: u64, runtime_s: i64) -> Job {
        Job {
            arrival: Timestamp::from_secs(arrival_s),
            width: units * 100,
            runtime_ms: runtime_s * 1000,
        }
    }

    fn run_until(pool: &mut Pool, until: i64) {
        while let Some(at) = pool.next_event() {
            if at > until {
                break;
            }
            pool.advance(at);
        }
    }

    /// One 8-unit app on two workers, the newer/closer-to-its-hour worker removed at 150 s
    /// by the engine's stock removal and replaced at once; returns the totals at 1000 s.
    fn lose_one_of_two_workers(engine: Engine) -> PoolTotals {
        let jobs = [job(0, 8, 300)];
        let mut pool = Pool::new(config(engine), &jobs, 2, 0);
        pool.advance(0);
        pool.scale_to(1, engine.stock(None), 150_000);
        pool.scale_to(2, engine.stock(None), 150_000);
        run_until(&mut pool, 1_000_000);
        pool.finish(1_000_000)
    }

    #[test]
    fn a_spark_app_keeps_its_finished_tasks() {
        let totals = lose_one_of_two_workers(Engine::Spark);
        assert_eq!(totals.restarts, 1);
        // 150 s in with 60 s tasks: the lost worker's 4 cores were 30 s into their tasks.
        let lost_unit_s = 4.0 * 30.0;
        assert!((totals.work_lost_worker_hours - lost_unit_s / 4.0 / 3600.0).abs() < 1e-9);
        // 2400 unit·s of work, 1200 done, 120 of it lost: 1320 left on 8 units = 165 s.
        let outcome = totals.outcomes[0];
        assert_eq!(outcome.wait_ms, 0, "the app never went back to the queue");
        assert_eq!(outcome.runtime_ms, 315_000);
    }

    #[test]
    fn a_trino_query_on_a_killed_worker_restarts_from_zero() {
        let totals = lose_one_of_two_workers(Engine::Trino);
        assert_eq!(totals.restarts, 1);
        let lost_unit_s = 8.0 * 150.0; // every unit of the query, since it started
        assert!((totals.work_lost_worker_hours - lost_unit_s / 4.0 / 3600.0).abs() < 1e-9);
        let outcome = totals.outcomes[0];
        assert_eq!(
            (outcome.wait_ms, outcome.runtime_ms),
            (150_000, 300_000),
            "resubmitted at 150 s, runs its full 300 s again"
        );
        // The worker dies at once: billed 150 s, not a grace period more.
        assert_eq!(totals.ledger.accounted_ms, 150_000 + 1_000_000 + 850_000);
    }

    #[test]
    fn a_celery_task_finishing_inside_the_grace_is_not_lost() {
        // Two tasks on one worker: one ends 300 s after the SIGTERM (inside the 600 s grace),
        // the other would need 1000 s more and is killed at the grace and rerun from zero.
        let jobs = [job(0, 1, 400), job(0, 1, 1100)];
        let celery = Engine::Celery;
        let mut pool = Pool::new(config(celery), &jobs, 1, 0);
        pool.advance(0);
        pool.scale_to(0, celery.stock(None), 100_000);
        run_until(&mut pool, 400_000);
        assert_eq!(
            pool.sample(400_000).billed_workers,
            1,
            "warm shutdown goes on"
        );
        run_until(&mut pool, 700_000);
        let sample = pool.sample(700_000);
        assert_eq!(
            (sample.billed_workers, sample.queued_units),
            (0, 100),
            "killed at the grace, the long task is queued again"
        );
        pool.scale_to(1, celery.stock(None), 700_000);
        run_until(&mut pool, 2_000_000);
        let totals = pool.finish(2_000_000);
        assert_eq!(totals.restarts, 1, "only the long task");
        assert_eq!(
            totals.outcomes[0].wait_ms, 0,
            "the short task finished once"
        );
        assert_eq!(totals.outcomes[1].wait_ms, 700_000);
        assert!((totals.work_lost_worker_hours - 700.0 / 4.0 / 3600.0).abs() < 1e-9);
        // billed through the grace: 0–700 s, then the replacement 700–2000 s.
        assert_eq!(totals.ledger.accounted_ms, 700_000 + 1_300_000);
    }

    #[test]
    fn idle_first_kills_nothing() {
        for engine in [Engine::Celery, Engine::Trino, Engine::Spark] {
            let jobs = [job(0, 8, 300)];
            let mut pool = Pool::new(config(engine), &jobs, 2, 0);
            pool.advance(0);
            pool.scale_to(0, engine.idle_first(), 150_000);
            run_until(&mut pool, 1_000_000);
            let totals = pool.finish(1_000_000);
            assert_eq!(totals.restarts, 0, "{engine:?}");
            assert_eq!(totals.work_lost_worker_hours, 0.0);
            assert_eq!(totals.outcomes[0].runtime_ms, 300_000);
            assert_eq!(
                totals.ledger.accounted_ms,
                2 * 300_000,
                "{engine:?}: released at 300 s"
            );
        }
    }

    #[test]
    fn every_engine_has_a_stock_and_an_idle_first_model() {
        for engine in [
            Engine::Celery,
            Engine::Trino,
            Engine::Spark,
            Engine::Yarn,
            Engine::Generic,
        ] {
            let stock = describe(engine.stock(None), engine.kill());
            let idle = describe(engine.idle_first(), engine.kill());
            assert!(!stock.contains("nothing killed"), "{engine:?}: {stock}");
            assert!(idle.ends_with("nothing killed"), "{engine:?}: {idle}");
        }
        assert_eq!(
            describe(Engine::Celery.stock(None), Engine::Celery.kill()),
            "newest first; busy drained, killed at 10m; work rerun from zero"
        );
        assert_eq!(
            describe(Engine::Spark.stock(None), Engine::Spark.kill()),
            "closest to next hour; busy killed at once; in-flight tasks rerun"
        );
        assert_eq!(
            Engine::Generic.stock(Some(Duration::from_secs(90))).removal,
            Removal::Drain {
                timeout_ms: Some(90_000)
            }
        );
    }
}
