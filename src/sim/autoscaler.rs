//! What sizes the simulated pool each tick: the real engine with a policy (the policies under
//! test, and the HPA baseline as a built-in policy with HPA defaults), KEDA's 0↔1 logic in
//! front of that HPA, or a static size.

use crate::engine::{
    self, PoolMemory, PoolObservation, PoolRules, Recommendation, Signal, WorkerCounts, World,
};
use crate::policy::{DrainMethod, Mode, OnDrainTimeout, Policy};
use crate::time::Timestamp;

use super::pool::{Removal, ScaleDown, VictimOrder};

/// Settled for as long as demand and workers stay as they are.
pub const UNTIL_CHANGE: Timestamp = Timestamp(i64::MAX);

/// A size change the controller wants, with how removed workers are emptied.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub desired: u32,
    pub scale_down: ScaleDown,
    /// Short reason chain (`raw>scale_down_stabilized`) for timelines.
    pub reason: String,
}

/// What sizes the simulated pool: the engine with a policy, a modelled HPA/KEDA, a fixed size.
/// (The daemon's tick is `daemon::controller::Controller`; this is not that.)
pub trait Autoscaler {
    /// Time between decisions (the daemon's tick, the HPA's sync period, KEDA's polling).
    fn period_ms(&self) -> i64;
    /// Workers ready when the replay starts.
    fn initial_workers(&self) -> u32;
    /// One decision; `None` keeps the size.
    fn decide(
        &mut self,
        now: Timestamp,
        demand_units: f64,
        workers: WorkerCounts,
    ) -> Option<Action>;
    /// The pool applied a change (feeds cooldowns and rate limits).
    fn actuated(&mut self, from: u32, to: u32, now: Timestamp);
    /// Asked after a `decide` that returned `None`: until when would every later tick return
    /// `None` too while demand and workers stay as they are? The replay skips ticks up to the
    /// pool's next event or that time. `None` (tick through) is always correct;
    /// [`UNTIL_CHANGE`] means as long as the pool does not change.
    fn settled_until(&self) -> Option<Timestamp> {
        None
    }
    /// The replay did not call `decide` at the ticks from `from` up to (not including) `to`,
    /// all while settled: bring memory to where those calls would have left it.
    fn skipped(&mut self, _from: Timestamp, _to: Timestamp) {}
}

/// The engine with one pool's rules. The daemon calls `engine::step`, which is
/// `engine::decide` per pool plus the global budget across pools; a simulated pool has no
/// global budget, so this calls `decide` on the pool's own memory (no name lookups).
pub struct EngineAutoscaler {
    rules: Vec<PoolRules>,
    world: World,
    memory: PoolMemory,
    period_ms: i64,
    scale_down: ScaleDown,
    /// Set by a `decide` after which the engine holds until its inputs change (or a time):
    /// the size it recommended (and would record at each later tick), and until when.
    settled: Option<(u32, Timestamp)>,
}

impl EngineAutoscaler {
    /// Scale-down follows the policy, like `drain::scale_down` in the daemon: idle workers
    /// first; busy ones per drain method — Trino/Spark drains are one-way (no new work,
    /// released when empty; YARN's decommission likewise), Celery's is reversible (the
    /// worker keeps working and goes when idle); at the timeout `force` kills and `keep` keeps; `method: none` kills at once.
    /// The drain method is the one the daemon resolves (`PoolRules::drain`), so the
    /// simulator models exactly the drains the daemon performs.
    pub fn new(policy: &Policy, period_ms: i64) -> EngineAutoscaler {
        let rules = PoolRules::compile(policy);
        let drain = rules.drain;
        let timeout_ms = drain.timeout.as_millis() as i64;
        let force = drain.on_timeout == OnDrainTimeout::Force;
        let removal = match drain.method {
            DrainMethod::None | DrainMethod::Auto => Removal::Kill,
            DrainMethod::Celery => Removal::WhenIdle { timeout_ms, force },
            // YARN's DECOMMISSIONING takes no new containers either; poolpilot can recommission
            // it when demand returns, which the simulated pool does not model (it keeps the
            // drain, as for Trino/Spark).
            DrainMethod::Trino | DrainMethod::Spark | DrainMethod::Yarn => Removal::Drain {
                timeout_ms: force.then_some(timeout_ms),
            },
        };
        let scale_down = ScaleDown {
            order: VictimOrder::IdleFirst,
            removal,
        };
        EngineAutoscaler::with_scale_down(rules, period_ms, scale_down)
    }

    pub fn with_scale_down(
        rules: PoolRules,
        period_ms: i64,
        scale_down: ScaleDown,
    ) -> EngineAutoscaler {
        let signals = rules.per_worker.len();
        let world = World {
            pools: vec![PoolObservation {
                pauses: Vec::new(),
                signals: vec![
                    Signal::Value {
                        demand: 0.0,
                        observed_at: Timestamp(0)
                    };
                    signals
                ],
                workers: WorkerCounts::default(),
            }],
            global_budget_per_hour: None,
        };
        EngineAutoscaler {
            rules: vec![rules],
            world,
            memory: PoolMemory::default(),
            period_ms,
            scale_down,
            settled: None,
        }
    }

    pub fn rules(&self) -> &PoolRules {
        &self.rules[0]
    }

    /// How this controller's removed workers go (for the report's `removal` column).
    pub fn scale_down(&self) -> ScaleDown {
        self.scale_down
    }
}

impl Autoscaler for EngineAutoscaler {
    fn period_ms(&self) -> i64 {
        self.period_ms
    }

    fn initial_workers(&self) -> u32 {
        self.rules[0].bounds.min
    }

    fn decide(
        &mut self,
        now: Timestamp,
        demand_units: f64,
        workers: WorkerCounts,
    ) -> Option<Action> {
        let observation = &mut self.world.pools[0];
        // Every signal of the policy reads the pool's demand (the simulated pool has one queue).
        for signal in &mut observation.signals {
            *signal = Signal::Value {
                demand: demand_units,
                observed_at: now,
            };
        }
        observation.workers = workers;
        self.settled = None;
        let decision = engine::decide(&self.rules[0], &self.world.pools[0], &mut self.memory, now);
        // Shadow policies are simulated as if enforced: that is what a dry run is for.
        if decision.mode == Mode::Paused || decision.desired == decision.current {
            self.settled = self.settled_at(now, decision.current, decision.mode);
            return None;
        }
        let reason = decision
            .reasons
            .iter()
            .map(|r| r.label())
            .collect::<Vec<_>>()
            .join(">");
        Some(Action {
            desired: decision.desired,
            scale_down: self.scale_down,
            reason,
        })
    }

    fn actuated(&mut self, from: u32, to: u32, now: Timestamp) {
        self.memory.record_actuation(from, to, now);
        self.settled = None;
    }

    fn settled_until(&self) -> Option<Timestamp> {
        self.settled.map(|(_, until)| until)
    }

    fn skipped(&mut self, from: Timestamp, to: Timestamp) {
        let Some((workers, _)) = self.settled.take() else {
            return;
        };
        if self.rules[0].mode == Mode::Paused {
            return;
        }
        // Each skipped tick would have recorded the same recommendation; only those the
        // stabilization windows can still see at `to` matter.
        let keep = self.rules[0]
            .scale_up
            .stabilization
            .max(self.rules[0].scale_down.stabilization);
        let oldest = to.0 - keep.as_millis() as i64 - self.period_ms;
        let first = if from.0 > oldest {
            from.0
        } else {
            from.0
                + ((oldest - from.0) as u64).div_ceil(self.period_ms as u64) as i64 * self.period_ms
        };
        let memory = &mut self.memory;
        for at in (first..to.0).step_by(self.period_ms.max(1) as usize) {
            memory.recommendations.push_back(Recommendation {
                at: Timestamp(at),
                workers,
            });
        }
        memory
            .backlog
            .skipped_until(Timestamp(to.0 - self.period_ms));
    }
}

impl EngineAutoscaler {
    /// The engine holds at every later tick with the same demand and workers when nothing in
    /// the pipeline depends on the clock alone: the recommendation it just recorded is the
    /// current size (then stabilization returns the current size whatever the window holds,
    /// and cooldowns, rate limits, the flap budget and boot-awareness only ever hold), no
    /// schedule can change the floor, and a backlog target's estimates stay as they are; a
    /// forecast floor holds until its next slot. A paused pool always holds.
    fn settled_at(&self, now: Timestamp, current: u32, mode: Mode) -> Option<(u32, Timestamp)> {
        if mode == Mode::Paused {
            return Some((current, UNTIL_CHANGE));
        }
        let rules = &self.rules[0];
        if !rules.schedules.is_empty() {
            return None;
        }
        let memory = &self.memory;
        if let Some(within) = rules.clear_backlog_within
            && !memory.backlog.settled(now, within)
        {
            return None;
        }
        // The forecast floor moves at slot boundaries only.
        let until = rules.prewarm_season.map_or(UNTIL_CHANGE, |season| {
            memory.forecast.next_change(season, rules.boot_time, now)
        });
        let last = memory.recommendations.back()?;
        (last.at == now && last.workers == current).then_some((current, until))
    }
}

/// HPA sync period.
pub const HPA_SYNC_MS: i64 = 15_000;

/// How Kubernetes removes pods without poolpilot: the ReplicaSet's choice (newest first,
/// busy or not), SIGTERM, and SIGKILL after the termination grace period.
pub fn kubernetes_scale_down(grace_ms: i64) -> ScaleDown {
    ScaleDown {
        order: VictimOrder::Newest,
        removal: Removal::Drain {
            timeout_ms: Some(grace_ms),
        },
    }
}

/// KEDA with the Airflow chart's trigger (anchors §1.5): metric `ceil(count / concurrency)`
/// with target 1, polled every 5 s; 0→1 when the metric is > 0, 1→0 after 30 s without
/// activity, and between 1 and N the HPA (defaults, 15 s sync) on the same metric.
pub struct KedaAutoscaler {
    hpa: EngineAutoscaler,
    concurrency: f64,
    last_active: Option<Timestamp>,
    next_hpa_sync: Timestamp,
    scale_down: ScaleDown,
}

pub const KEDA_POLLING_MS: i64 = 5_000;
pub const KEDA_COOLDOWN_MS: i64 = 30_000;

impl KedaAutoscaler {
    pub fn new(concurrency: f64, max: u32, scale_down: ScaleDown) -> KedaAutoscaler {
        let hpa = EngineAutoscaler::with_scale_down(
            PoolRules::hpa("keda-airflow-chart", 1.0, 1, max),
            HPA_SYNC_MS,
            scale_down,
        );
        KedaAutoscaler {
            hpa,
            concurrency,
            last_active: None,
            next_hpa_sync: Timestamp(i64::MIN),
            scale_down,
        }
    }
}

impl Autoscaler for KedaAutoscaler {
    fn period_ms(&self) -> i64 {
        KEDA_POLLING_MS
    }

    fn initial_workers(&self) -> u32 {
        0
    }

    fn decide(
        &mut self,
        now: Timestamp,
        demand_units: f64,
        workers: WorkerCounts,
    ) -> Option<Action> {
        let metric = (demand_units / self.concurrency - 1e-9).ceil().max(0.0);
        let active = metric > 0.0;
        if active {
            self.last_active = Some(now);
        }
        let action = |desired: u32, reason: &str| Action {
            desired,
            scale_down: self.scale_down,
            reason: reason.into(),
        };
        if workers.requested == 0 {
            return active.then(|| action(1, "keda_activate"));
        }
        let cooled = self
            .last_active
            .is_none_or(|at| now.0 - at.0 >= KEDA_COOLDOWN_MS);
        if !active && cooled {
            return Some(action(0, "keda_cooldown"));
        }
        if now < self.next_hpa_sync {
            return None;
        }
        self.next_hpa_sync = Timestamp(now.0 + HPA_SYNC_MS);
        self.hpa.decide(now, metric, workers)
    }

    fn actuated(&mut self, from: u32, to: u32, now: Timestamp) {
        self.hpa.actuated(from, to, now);
    }
}

/// A fixed size, ready from the start (the static-peak baseline).
pub struct StaticAutoscaler {
    pub workers: u32,
    pub period_ms: i64,
}

impl Autoscaler for StaticAutoscaler {
    fn period_ms(&self) -> i64 {
        self.period_ms
    }

    fn initial_workers(&self) -> u32 {
        self.workers
    }

    fn decide(&mut self, _: Timestamp, _: f64, _: WorkerCounts) -> Option<Action> {
        None
    }

    fn actuated(&mut self, _: u32, _: u32, _: Timestamp) {}

    fn settled_until(&self) -> Option<Timestamp> {
        Some(UNTIL_CHANGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(requested: u32, ready: u32) -> WorkerCounts {
        WorkerCounts { requested, ready }
    }

    #[test]
    fn hpa_scales_up_at_most_max_100_percent_or_4_pods() {
        let mut hpa = EngineAutoscaler::with_scale_down(
            PoolRules::hpa("h", 4.0, 1, 100),
            HPA_SYNC_MS,
            kubernetes_scale_down(1),
        );
        let action = hpa.decide(Timestamp(0), 400.0, counts(1, 1)).unwrap();
        assert_eq!(action.desired, 5, "max(2·1, 1+4)");
        hpa.actuated(1, 5, Timestamp(0));
        let action = hpa.decide(Timestamp(15_000), 400.0, counts(5, 5)).unwrap();
        assert_eq!(action.desired, 10, "max(2·5, 5+4)");
    }

    #[test]
    fn hpa_waits_out_the_down_window_and_ignores_small_changes() {
        let mut hpa = EngineAutoscaler::with_scale_down(
            PoolRules::hpa("h", 4.0, 1, 100),
            HPA_SYNC_MS,
            kubernetes_scale_down(1),
        );
        assert!(hpa.decide(Timestamp(0), 40.0, counts(10, 10)).is_none());
        assert!(
            hpa.decide(Timestamp(15_000), 38.0, counts(10, 10))
                .is_none(),
            "within tolerance"
        );
        assert!(
            hpa.decide(Timestamp(30_000), 4.0, counts(10, 10)).is_none(),
            "stabilized"
        );
        assert!(
            hpa.decide(Timestamp(301_000), 4.0, counts(10, 10))
                .is_none(),
            "15 s reading still in window"
        );
        let action = hpa.decide(Timestamp(316_000), 4.0, counts(10, 10)).unwrap();
        assert_eq!(action.desired, 1);
    }

    #[test]
    fn keda_activates_cools_down_and_hands_over_to_hpa() {
        let mut keda = KedaAutoscaler::new(4.0, 50, kubernetes_scale_down(1));
        assert!(keda.decide(Timestamp(0), 0.0, counts(0, 0)).is_none());
        assert_eq!(
            keda.decide(Timestamp(5_000), 9.0, counts(0, 0))
                .unwrap()
                .desired,
            1
        );
        keda.actuated(0, 1, Timestamp(5_000));
        let action = keda.decide(Timestamp(10_000), 9.0, counts(1, 1)).unwrap();
        assert_eq!(action.desired, 3, "HPA on ceil(9 / 4) with target 1");
        keda.actuated(1, 3, Timestamp(10_000));
        assert!(
            keda.decide(Timestamp(15_000), 0.0, counts(3, 3)).is_none(),
            "inside the 30 s cooldown"
        );
        assert_eq!(
            keda.decide(Timestamp(40_000), 0.0, counts(3, 3))
                .unwrap()
                .desired,
            0
        );
    }
}
