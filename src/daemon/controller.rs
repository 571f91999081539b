//! One control-loop tick, generic over the narrow I/O traits (sources, actuators, drainers,
//! clock) so tests drive it with fakes and explicit times:
//!
//! finished drains → observe (all sources and statuses concurrently, each bounded) → reconcile
//! write-ahead entries → `engine::step` → actuate → logs, metrics, `/status`, recording →
//! persist.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::future::join_all;

use super::actuation::Actuation;
use super::admin::AdminPauses;
use super::observe::observe;
use super::pool_loop::PoolLoops;
use super::pools::{self, PoolRuntime, Wiring};
use super::record::Recorder;
use super::shadow::ShadowPool;
use super::state::{self, Loaded, Pending, PendingKind, StateView};
use super::status::DaemonStatus;
use crate::engine::{self, Memory, PoolRules, WorkerCounts, World};
use crate::fence::{Fence, Fenced, Unfenced};
use crate::policy::Policy;
use crate::telemetry::names;
use crate::time::Timestamp;

/// Reads the time at the daemon's edges; tests pass a manual clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
pub struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

pub struct ControllerConfig {
    pub dry_run: bool,
    pub global_budget_per_hour: Option<f64>,
    pub state_path: PathBuf,
    pub tick: Duration,
    pub leader_election: bool,
}

pub struct Controller {
    pub(super) cfg: ControllerConfig,
    pub(super) wiring: Arc<dyn Wiring>,
    pub(super) clock: Arc<dyn Clock>,
    /// Asked before every destructive call ([`Unfenced`] unless [`Controller::set_fence`]).
    pub(super) fence: Arc<dyn Fence>,
    /// What the engine runs, compiled once per policy set (aligned with `pools`).
    pub(super) rules: Vec<PoolRules>,
    pub(super) pools: Vec<PoolRuntime>,
    pub(super) memory: Memory,
    /// Shadow and dry-run pools: the would-be pool each is decided on.
    pub(super) shadows: BTreeMap<String, ShadowPool>,
    /// Write-ahead entries: actuations whose outcome is not in `memory` yet.
    pub(super) pending: Vec<Pending>,
    /// Per pool: the scale-down under way, and what was last seen, sent, shown and logged.
    pub(super) loops: PoolLoops,
    pub(super) recorder: Option<Recorder>,
    pub(super) board: Arc<RwLock<DaemonStatus>>,
    pub(super) ticks: u64,
    /// Pauses set through the admin endpoint (shared with the HTTP handlers; persisted).
    pub(super) admin: AdminPauses,
}

impl Controller {
    /// Loads the state file (reporting a missing or corrupt one and starting conservatively),
    /// builds every pool and publishes an initial `/status`.
    pub async fn start(
        cfg: ControllerConfig,
        wiring: Arc<dyn Wiring>,
        clock: Arc<dyn Clock>,
        policies: Vec<Policy>,
        recorder: Option<Recorder>,
        board: Arc<RwLock<DaemonStatus>>,
    ) -> Controller {
        let now = clock.now();
        let loaded = state::load(&cfg.state_path);
        let label = loaded.label();
        metrics::counter!(names::STATE_LOADS_TOTAL, "outcome" => label).increment(1);
        let admin = AdminPauses::default();
        let (memory, pending, shadows, detail) = match loaded {
            Loaded::Ok(s) => {
                tracing::info!(path = %cfg.state_path.display(), saved_at = %s.saved_at, pending = s.pending.len(), admin_pauses = s.admin_pauses.len(), "state restored: cooldowns, history and spend continue");
                admin.restore(s.admin_pauses);
                (s.memory, s.pending, s.shadows, None)
            }
            ref other => {
                let detail = match other {
                    Loaded::Corrupt(why) => why.clone(),
                    _ => format!("{} does not exist", cfg.state_path.display()),
                };
                tracing::warn!(path = %cfg.state_path.display(), outcome = other.label(), %detail, "no trustworthy state: starting conservatively (no scale-down until each pool's down window has refilled)");
                let mut memory = Memory::default();
                memory.start_conservatively(
                    policies
                        .iter()
                        .map(|p| (p.name(), p.spec.scale_down.stabilization)),
                    now,
                );
                (memory, Vec::new(), BTreeMap::new(), Some(detail))
            }
        };
        {
            let mut b = board.write().unwrap_or_else(|p| p.into_inner());
            b.tick_interval = cfg.tick;
            b.dry_run = cfg.dry_run;
            b.leader_election = cfg.leader_election;
            b.state.path = cfg.state_path.display().to_string();
            b.state.loaded = label.to_string();
            b.state.load_detail = detail;
        }
        let pools = pools::rebuild(&*wiring, Vec::new(), policies.clone()).await;
        let mut controller = Controller {
            cfg,
            wiring,
            clock,
            fence: Arc::new(Unfenced),
            rules: Vec::new(),
            pools,
            memory,
            shadows,
            pending,
            loops: PoolLoops::default(),
            recorder,
            board,
            ticks: 0,
            admin,
        };
        controller.set_policies(policies, now);
        controller
    }

    /// With leader election: the Lease-backed fence (`daemon::lease_fence`).
    pub fn set_fence(&mut self, fence: Arc<dyn Fence>) {
        self.fence = fence;
    }

    /// Swaps in a new valid policy set. Memory of kept pools survives; a new pool starts
    /// conservatively; memory of removed pools is dropped.
    pub async fn apply_policies(&mut self, policies: Vec<Policy>, now: Timestamp) {
        let old = std::mem::take(&mut self.pools);
        let added: Vec<(String, Duration)> = policies
            .iter()
            .filter(|p| !self.memory.pools.contains_key(p.name()))
            .map(|p| (p.name().to_string(), p.spec.scale_down.stabilization))
            .collect();
        self.memory
            .start_conservatively(added.iter().map(|(n, w)| (n.as_str(), *w)), now);
        self.pools = pools::rebuild(&*self.wiring, old, policies.clone()).await;
        self.set_policies(policies, now);
    }

    fn set_policies(&mut self, policies: Vec<Policy>, now: Timestamp) {
        let names: Vec<&str> = policies.iter().map(Policy::name).collect();
        self.memory.retain_pools(&names);
        self.pending
            .retain(|p| names.contains(&p.pool.as_str()) || self.loops.draining(&p.pool));
        self.loops.retain(&names);
        let rules: Vec<PoolRules> = policies.iter().map(PoolRules::compile).collect();
        self.admin.set_pools(
            rules
                .iter()
                .map(|r| (r.name.clone(), (r.bounds.min, r.bounds.max)))
                .collect(),
            self.cfg.leader_election,
        );
        let dry_run = self.cfg.dry_run;
        // A pool that turns from real to would-be (or back) must not inherit the other's
        // history: it starts conservatively, as a new pool does.
        let switched: Vec<(&str, Duration)> = rules
            .iter()
            .filter(|r| {
                self.memory.pools.contains_key(&r.name)
                    && self.shadows.contains_key(&r.name) != counterfactual(r, dry_run)
            })
            .map(|r| (r.name.as_str(), r.down_window()))
            .collect();
        for (name, _) in &switched {
            self.memory.pools.remove(*name);
            tracing::info!(
                pool = name,
                "the pool switched between shadow and real: its memory starts afresh (conservatively)"
            );
        }
        self.memory.start_conservatively(switched, now);
        self.shadows.retain(|name, _| {
            rules
                .iter()
                .any(|r| &r.name == name && counterfactual(r, dry_run))
        });
        if let Some(recorder) = &mut self.recorder {
            recorder.header(
                now,
                &policies,
                self.cfg.global_budget_per_hour,
                &self.memory,
            );
        }
        let mut b = self.board.write().unwrap_or_else(|p| p.into_inner());
        b.policies.loaded_at = Some(now);
        b.policies.pools = policies.len();
        b.policies.last_rejected.clear();
        drop(b);
        self.rules = rules;
    }

    /// Records a rejected reload on `/status` (the caller logged and counted each error).
    pub fn note_rejected(&self, errors: Vec<String>, now: Timestamp) {
        let mut b = self.board.write().unwrap_or_else(|p| p.into_inner());
        b.policies.last_rejected = errors;
        b.policies.last_rejected_at = Some(now);
    }

    /// One tick. `leader` = this instance may actuate.
    pub async fn tick(&mut self, now: Timestamp, leader: bool) {
        self.collect_drains(now).await;
        for pool in &mut self.pools {
            pools::ensure_actuator(&*self.wiring, pool).await;
        }
        let mut observations = join_all(self.pools.iter_mut().map(|pool| observe(pool, now))).await;
        self.reconcile(now);
        if !leader {
            self.infer_external_changes(now);
        }
        for pool in &self.pools {
            if let Some(s) = &pool.status {
                self.loops.of(pool.name()).seen(s.desired);
            }
        }
        self.admin.prune(now);
        for (obs, rules) in observations.iter_mut().zip(&self.rules) {
            if let Some(p) = self.admin.get(&rules.name) {
                obs.pauses.insert(0, p);
            }
        }
        let real = self.substitute_shadows(&mut observations, now);
        let world = World {
            pools: observations,
            global_budget_per_hour: self.cfg.global_budget_per_hour,
        };
        let decisions = engine::step(&self.rules, &world, &mut self.memory, now);
        if let Some(recorder) = &mut self.recorder {
            let names: Vec<&str> = self.rules.iter().map(|r| r.name.as_str()).collect();
            recorder.tick(now, &names, &world, &decisions, &real);
        }
        self.actuate(&decisions, now, leader).await;
        self.ticks += 1;
        self.report(&world, &decisions, now, leader);
        self.persist(now);
    }

    /// Write-ahead entries against what the platform now says: an actuation that took effect
    /// is remembered (its cooldown holds across a crash); one that did not is dropped.
    fn reconcile(&mut self, now: Timestamp) {
        let mut keep = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            if self.loops.draining(&p.pool) {
                keep.push(p); // a live drain: its task reports the outcome
                continue;
            }
            let dry_run = self.cfg.dry_run;
            if self
                .rules
                .iter()
                .any(|r| r.name == p.pool && counterfactual(r, dry_run))
            {
                tracing::info!(pool = %p.pool, "a real actuation from before the pool turned shadow is not remembered: its memory is the would-be pool's");
                continue;
            }
            let Some(observed) = self
                .pools
                .iter()
                .find(|x| x.name() == p.pool)
                .and_then(|x| x.status.as_ref())
                .map(|s| s.desired)
            else {
                if self.rules.iter().any(|x| x.name == p.pool) {
                    keep.push(p); // not observable yet
                }
                continue;
            };
            let took_effect = match p.kind {
                PendingKind::Scale => observed == p.to,
                PendingKind::Drain => observed < p.from,
            };
            if took_effect {
                let at = if p.kind == PendingKind::Scale {
                    p.since
                } else {
                    now
                };
                self.remember_actuation(&p.pool, p.from, observed, at);
                tracing::info!(pool = %p.pool, from = p.from, to = observed, "an actuation sent before a restart or failed call took effect; its cooldown counts from then");
            } else {
                tracing::info!(pool = %p.pool, from = p.from, to = p.to, observed, "an actuation sent before a restart or failed call did not take effect; the engine decides again");
            }
        }
        self.pending = keep;
    }

    /// As a follower: a change of the requested size was made by someone else (normally the
    /// leader). Remembering it as an actuation keeps cooldowns right when this instance takes over.
    fn infer_external_changes(&mut self, now: Timestamp) {
        let mut changes = Vec::new();
        for (pool, rules) in self.pools.iter().zip(&self.rules) {
            if counterfactual(rules, self.cfg.dry_run) {
                continue; // its memory is the would-be pool's, not the platform's
            }
            let (Some(status), Some(before)) = (
                &pool.status,
                self.loops.get(pool.name()).and_then(|l| l.last_seen()),
            ) else {
                continue;
            };
            if status.desired != before {
                changes.push((pool.name().to_string(), before, status.desired));
                tracing::info!(
                    pool = pool.name(),
                    from = before,
                    to = status.desired,
                    "the pool was resized by another instance (leader); remembered for cooldowns"
                );
            }
        }
        for (pool, from, to) in changes {
            self.remember_actuation(&pool, from, to, now);
        }
    }

    /// Every change the engine must remember goes through here: into memory (cooldowns, rate
    /// limits, flap budget) and into the recording, so a replay rebuilds the same memory.
    pub(super) fn remember_actuation(&mut self, pool: &str, from: u32, to: u32, at: Timestamp) {
        if from == to {
            return;
        }
        self.memory.record_actuation(pool, from, to, at);
        if let Some(recorder) = &mut self.recorder {
            recorder.actuation(at, pool, from, to);
        }
    }

    /// Shadow and dry-run pools are decided on their would-be pool: their observed counts are
    /// replaced by the counterfactual's (started from the platform's size). Returns the real
    /// counts of the pools so replaced (for the recording).
    fn substitute_shadows(
        &mut self,
        observations: &mut [engine::PoolObservation],
        now: Timestamp,
    ) -> Vec<Option<WorkerCounts>> {
        let mut real = vec![None; observations.len()];
        for (i, rules) in self.rules.iter().enumerate() {
            if !counterfactual(rules, self.cfg.dry_run) {
                continue;
            }
            // The platform's size is needed only to start the would-be pool.
            let shadow = match (self.shadows.get_mut(&rules.name), &self.pools[i].status) {
                (Some(shadow), _) => shadow,
                (None, Some(status)) => self
                    .shadows
                    .entry(rules.name.clone())
                    .or_insert_with(|| ShadowPool::start(status.desired)),
                (None, None) => continue,
            };
            real[i] = Some(observations[i].workers);
            observations[i].workers = shadow.counts(rules, now);
        }
        real
    }

    /// Persists memory and write-ahead entries; a failure is logged, counted and shown.
    pub(super) fn persist(&mut self, now: Timestamp) {
        let snapshot = StateView::new(
            now,
            &self.memory,
            &self.pending,
            &self.shadows,
            self.admin.snapshot(),
        );
        let result = state::save(&self.cfg.state_path, &snapshot);
        metrics::counter!(names::STATE_SAVES_TOTAL, "outcome" => if result.is_ok() { "ok" } else { "error" }).increment(1);
        let mut b = self.board.write().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {
                b.state.last_saved_at = Some(now);
                b.state.last_save_error = None;
            }
            Err(e) => {
                tracing::error!(path = %self.cfg.state_path.display(), error = %e, "cannot write the state file; a restart now would forget this tick");
                b.state.last_save_error = Some(e.to_string());
            }
        }
    }

    /// SIGTERM: ask drains to stop where they still can, wait up to `grace` for them, persist.
    pub async fn shutdown(&mut self, grace: Duration) {
        for (pool, task) in self.stop_drains(grace).await {
            task.handle.abort();
            tracing::warn!(%pool, "drain still under way at shutdown; it stays in the state file and is checked at the next start");
        }
        self.persist(self.clock.now());
    }

    /// This replica lost the lease: the drains it started are asked to stop where they still
    /// can (the SIGTERM path), given `grace` to do so, and then cut off; every one is reported
    /// `fenced`. Their removals never happen here (the fence refuses them anyway); the new
    /// holder adopts the victims whose one-way drain began (see `drain::Drainer::rank`).
    pub async fn fence_drains(&mut self, grace: Duration) {
        if self.loops.drains().next().is_none() {
            return;
        }
        for task in self.loops.drains_mut() {
            task.fenced = true;
        }
        let now = self.clock.now();
        for (pool, task) in self.stop_drains(grace).await {
            task.handle.abort();
            self.pending
                .retain(|p| !(p.pool == pool && p.kind == PendingKind::Drain));
            tracing::warn!(%pool, from = task.from, to = task.to, "lease lost: the scale-down under way was stopped before removing anyone; the new leader finishes it");
            self.note_fenced(&pool, task.from, &Fenced::NotLeader, now);
        }
        self.persist(now);
    }

    /// Asks every drain to stop where it still can, waits up to `grace`, harvests those that
    /// ended and returns the rest (taken out, still running).
    async fn stop_drains(&mut self, grace: Duration) -> Vec<(String, super::actuation::DrainTask)> {
        for task in self.loops.drains_mut() {
            task.aborting = true;
            let _ = task.abort.send(true);
        }
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        while self.loops.drains().any(|t| !t.handle.is_finished()) {
            tokio::select! {
                _ = &mut deadline => break,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        self.collect_drains(self.clock.now()).await;
        self.loops.take_all_drains()
    }

    /// The admin endpoint's pauses (the HTTP state holds a clone).
    pub fn admin_pauses(&self) -> AdminPauses {
        self.admin.clone()
    }

    /// Makes `shared` (the HTTP handlers' copy, created before the controller) the one the
    /// controller reads, with what the state file restored.
    pub fn share_admin_pauses(&mut self, shared: AdminPauses) {
        shared.adopt(&self.admin);
        self.admin = shared;
    }

    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    pub fn pending(&self) -> &[Pending] {
        &self.pending
    }

    pub fn shadows(&self) -> &BTreeMap<String, ShadowPool> {
        &self.shadows
    }
}

/// A pool decided on a would-be pool: `mode: shadow`, or any non-paused pool under `--dry-run`.
pub(super) fn counterfactual(rules: &PoolRules, dry_run: bool) -> bool {
    matches!(
        Actuation::of(rules.mode, dry_run, true),
        Actuation::Shadow | Actuation::DryRun
    )
}
