//! The virtual pool: workers that boot, take work FIFO, drain and get billed.
//!
//! Event-driven between the controller's ticks: job arrivals, job completions, workers
//! becoming ready and drain deadlines are processed at their exact millisecond. Jobs start
//! strictly FIFO (no backfilling) into free capacity of ready workers. Scale-down picks
//! victims in the controller's order and drains or kills busy ones; killed work is requeued at
//! the head of the queue and restarts from scratch, or (Spark/YARN) keeps its finished tasks
//! ([`KillEffect`]; the engines' facts are in `sim::removal`).

pub mod billing;
pub mod workers;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use billing::{Billing, Ledger};
use workers::{JobModel, Placement, Worker, WorkerState, place};

use super::timeline::Sample;
use super::trace::{Centi, Job};

/// The physical pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolConfig {
    /// Units one worker carries.
    pub capacity: Centi,
    /// Launch request → ready, billed.
    pub boot_ms: i64,
    pub model: JobModel,
    pub billing: Billing,
    /// What a killed worker's work loses (the engine's, `sim::removal::Engine::kill`).
    pub kill: KillEffect,
}

/// What killing a worker does to the jobs running on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KillEffect {
    /// The whole job fails and runs again from zero (Celery task, Trino query).
    #[default]
    Restart,
    /// Spark/YARN: only the killed worker's in-flight tasks are lost (tasks `task_ms` long,
    /// back to back from the job's start); finished work is kept and the job resumes at the
    /// head of the queue with what is left. Its wait stays that of its first start.
    KeepFinishedTasks { task_ms: i64 },
}

/// Which workers go first on scale-down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VictimOrder {
    /// poolpilot: booting, then idle, then the least-loaded busy workers.
    IdleFirst,
    /// Kubernetes ReplicaSet default (no deletion cost set): not-ready, then newest, busy or not.
    Newest,
    /// EC2 Auto Scaling default termination policy in one zone with one launch template: the
    /// instance closest to its next billing hour, booting or ready, busy or not (ties: newest).
    ClosestToNextHour,
}

/// What happens to a busy victim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// One-way drain (Trino `SHUTTING_DOWN`, Spark worker kill): no new work; released when
    /// empty, or its work is killed after `timeout_ms`.
    Drain { timeout_ms: Option<i64> },
    /// Reversible (Celery, idle-first): the victim keeps working and is removed the moment it
    /// is idle; at the timeout it is killed (`force`) or kept. A scale-up cancels it first.
    WhenIdle { timeout_ms: i64, force: bool },
    /// Kill its work now (requeued) and release it.
    Kill,
}

/// The scale-down semantics a controller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleDown {
    pub order: VictimOrder,
    pub removal: Removal,
}

/// Wait and runtime of a finished job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobOutcome {
    pub wait_ms: i64,
    pub runtime_ms: i64,
}

#[derive(Debug, Clone)]
struct Running {
    placement: Placement,
    allocated: Centi,
}

/// Event kinds, in processing order at equal times (a completion frees capacity before a
/// deadline would kill anything).
const COMPLETION: u8 = 0;
const READY: u8 = 1;
const DRAIN_DEADLINE: u8 = 2;
const IDLE_DEADLINE: u8 = 3;

pub struct Pool<'a> {
    config: PoolConfig,
    jobs: &'a [Job],
    next_arrival: usize,
    queue: VecDeque<u32>,
    queued_units: Centi,
    running_units: Centi,
    running: Vec<Option<Running>>,
    generation: Vec<u32>,
    outcomes: Vec<Option<JobOutcome>>,
    started_at: Vec<i64>,
    /// Work kept from killed runs (centi-unit-ms), for `KillEffect::KeepFinishedTasks`.
    kept: Vec<u128>,
    /// Wait at a job's first start, kept across resumptions.
    first_wait: Vec<Option<i64>>,
    /// Work thrown away by kills, in centi-unit-ms.
    lost: u128,
    workers: Vec<Worker>,
    active: Vec<usize>,
    booting: u32,
    ready: u32,
    draining: u32,
    /// Ready workers waiting to be idle to be removed (a subset of `ready`).
    pending: u32,
    events: BinaryHeap<Reverse<(i64, u8, u32, u32)>>,
    ledger: Ledger,
    restarts: u64,
    finished: usize,
    dirty: bool,
}

impl<'a> Pool<'a> {
    /// A pool for `jobs` (sorted by arrival) with `initial_ready` workers ready at `start`.
    pub fn new(config: PoolConfig, jobs: &'a [Job], initial_ready: u32, start: i64) -> Pool<'a> {
        let mut pool = Pool {
            config,
            jobs,
            next_arrival: 0,
            queue: VecDeque::new(),
            queued_units: 0,
            running_units: 0,
            running: vec![None; jobs.len()],
            generation: vec![0; jobs.len()],
            outcomes: vec![None; jobs.len()],
            started_at: vec![0; jobs.len()],
            kept: vec![0; jobs.len()],
            first_wait: vec![None; jobs.len()],
            lost: 0,
            workers: Vec::new(),
            active: Vec::new(),
            booting: 0,
            ready: 0,
            draining: 0,
            pending: 0,
            events: BinaryHeap::new(),
            ledger: Ledger::default(),
            restarts: 0,
            finished: 0,
            dirty: false,
        };
        for _ in 0..initial_ready {
            pool.launch(start, true);
        }
        pool
    }

    /// The next time something happens inside the pool (arrival, completion, ready, deadline).
    pub fn next_event(&self) -> Option<i64> {
        let arrival = self.jobs.get(self.next_arrival).map(|job| job.arrival.0);
        let event = self.events.peek().map(|Reverse((at, ..))| *at);
        match (arrival, event) {
            (Some(a), Some(e)) => Some(a.min(e)),
            (a, e) => a.or(e),
        }
    }

    /// Processes every event at or before `now`, then starts what fits.
    pub fn advance(&mut self, now: i64) {
        while let Some(&Reverse((at, kind, id, generation))) = self.events.peek() {
            if at > now {
                break;
            }
            self.events.pop();
            match kind {
                COMPLETION => self.complete(id, generation, at),
                READY => self.became_ready(id as usize),
                DRAIN_DEADLINE => self.deadline(id as usize, at),
                _ => self.idle_deadline(id as usize, at),
            }
        }
        while let Some(job) = self.jobs.get(self.next_arrival) {
            if job.arrival.0 > now {
                break;
            }
            self.queue.push_back(self.next_arrival as u32);
            self.queued_units += job.width;
            self.next_arrival += 1;
            self.dirty = true;
        }
        self.schedule(now);
    }

    /// Demand units the engine sees: queued + running (Trino queued+running queries, Airflow
    /// queued+running task slots, Spark cores in use + wanted).
    pub fn demand_units(&self) -> Centi {
        self.queued_units + self.running_units
    }

    /// Workers asked for (booting + ready, not draining): the engine's "current". Victims
    /// waiting to be idle still count: the actuator removes them only once they are.
    pub fn requested(&self) -> u32 {
        self.booting + self.ready
    }

    pub fn ready(&self) -> u32 {
        self.ready
    }

    /// True once every job has arrived and finished.
    pub fn done(&self) -> bool {
        self.finished == self.jobs.len()
    }

    pub fn all_arrived(&self) -> bool {
        self.next_arrival == self.jobs.len()
    }

    pub fn sample(&self, at: i64) -> Sample {
        Sample {
            at,
            demand_workers: self.demand_units().div_ceil(self.config.capacity.max(1)) as u32,
            ready_workers: self.ready + self.draining,
            billed_workers: self.booting + self.ready + self.draining,
            queued_units: self.queued_units,
            running_units: self.running_units,
        }
    }

    /// Resizes to `desired` requested workers (absolute, like an actuator).
    pub fn scale_to(&mut self, desired: u32, scale_down: ScaleDown, now: i64) {
        let staying = self.requested() - self.pending;
        if desired > staying {
            let mut missing = desired - staying;
            // Reversible removals are cancelled before anything new is launched.
            for &index in &self.active {
                if missing == 0 {
                    break;
                }
                if self.workers[index].pending_removal.take().is_some() {
                    self.pending -= 1;
                    missing -= 1;
                }
            }
            for _ in 0..missing {
                self.launch(now, self.config.boot_ms <= 0);
            }
            self.schedule(now);
        } else if desired < staying {
            self.remove((staying - desired) as usize, scale_down, now);
        }
    }

    /// Releases every worker at `now` (end of the replay) and returns the totals.
    pub fn finish(mut self, now: i64) -> PoolTotals {
        for index in std::mem::take(&mut self.active) {
            let worker = &mut self.workers[index];
            worker.state = WorkerState::Released;
            self.ledger
                .release(self.config.billing, now - worker.launched_at);
        }
        let capacity = self.config.capacity.max(1) as f64;
        PoolTotals {
            ledger: self.ledger,
            restarts: self.restarts,
            work_lost_worker_hours: self.lost as f64 / capacity / 3_600_000.0,
            unfinished: self.jobs.len() - self.finished,
            outcomes: self.outcomes.into_iter().flatten().collect(),
        }
    }

    fn launch(&mut self, now: i64, ready_now: bool) {
        let index = self.workers.len();
        let state = if ready_now {
            WorkerState::Ready
        } else {
            WorkerState::Booting {
                ready_at: now + self.config.boot_ms,
            }
        };
        self.workers.push(Worker {
            launched_at: now,
            state,
            used: 0,
            jobs: Vec::new(),
            pending_removal: None,
        });
        self.active.push(index);
        self.ledger.launches += 1;
        if ready_now {
            self.ready += 1;
            self.dirty = true;
        } else {
            self.booting += 1;
            self.events
                .push(Reverse((now + self.config.boot_ms, READY, index as u32, 0)));
        }
    }

    fn became_ready(&mut self, index: usize) {
        if let WorkerState::Booting { .. } = self.workers[index].state {
            self.workers[index].state = WorkerState::Ready;
            self.booting -= 1;
            self.ready += 1;
            self.dirty = true;
        }
    }

    fn schedule(&mut self, now: i64) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        while let Some(&id) = self.queue.front() {
            let job = self.jobs[id as usize];
            let Some((placement, allocated)) = place(
                self.config.model,
                job.width,
                self.config.capacity,
                &self.workers,
                &self.active,
            ) else {
                break;
            };
            self.queue.pop_front();
            self.queued_units -= job.width;
            self.running_units += allocated;
            let kept = self.kept[id as usize];
            let runtime_ms = match self.config.model {
                JobModel::Slot | JobModel::Gang if kept == 0 => job.runtime_ms,
                _ => (job
                    .work()
                    .saturating_sub(kept)
                    .div_ceil(allocated.max(1) as u128) as i64)
                    .max(1),
            };
            for &(worker, units) in &placement {
                let worker = &mut self.workers[worker];
                worker.used += if self.config.model == JobModel::Gang {
                    self.config.capacity
                } else {
                    units
                };
                worker.jobs.push(id);
            }
            self.running[id as usize] = Some(Running {
                placement,
                allocated,
            });
            self.started_at[id as usize] = now;
            // A resumed job (finished tasks kept) never stopped from its user's point of view:
            // its wait is that of its first start, the pause shows in its runtime.
            let outcome = match self.first_wait[id as usize] {
                Some(wait_ms) if self.config.kill != KillEffect::Restart => JobOutcome {
                    wait_ms,
                    runtime_ms: now + runtime_ms - (job.arrival.0 + wait_ms),
                },
                _ => JobOutcome {
                    wait_ms: now - job.arrival.0,
                    runtime_ms,
                },
            };
            self.first_wait[id as usize].get_or_insert(outcome.wait_ms);
            self.outcomes[id as usize] = Some(outcome);
            self.events.push(Reverse((
                now + runtime_ms,
                COMPLETION,
                id,
                self.generation[id as usize],
            )));
        }
    }

    fn complete(&mut self, id: u32, generation: u32, now: i64) {
        if self.generation[id as usize] != generation {
            return; // killed and requeued since
        }
        self.stop_job(id, now);
        self.finished += 1;
    }

    /// Frees a running job's units; releases draining workers it leaves empty.
    fn stop_job(&mut self, id: u32, now: i64) {
        let Some(running) = self.running[id as usize].take() else {
            return;
        };
        self.running_units -= running.allocated;
        for (index, units) in running.placement {
            let worker = &mut self.workers[index];
            worker.used -= if self.config.model == JobModel::Gang {
                self.config.capacity
            } else {
                units
            };
            worker.jobs.retain(|&job| job != id);
            if worker.used == 0
                && (matches!(worker.state, WorkerState::Draining { .. })
                    || worker.pending_removal.is_some())
            {
                self.release(index, now);
            }
        }
        self.dirty = true;
    }

    fn deadline(&mut self, index: usize, now: i64) {
        if matches!(self.workers[index].state, WorkerState::Draining { force_at: Some(at) } if at <= now)
        {
            self.kill(index, now);
        }
    }

    fn idle_deadline(&mut self, index: usize, now: i64) {
        let worker = &self.workers[index];
        let Some((at, force)) = worker.pending_removal else {
            return;
        };
        if at > now || worker.state != WorkerState::Ready {
            return;
        }
        if force {
            self.kill(index, now);
        } else {
            self.workers[index].pending_removal = None;
            self.pending -= 1;
        }
    }

    /// Kills a worker's work (requeued at the head, in arrival order) and releases it.
    fn kill(&mut self, index: usize, now: i64) {
        let mut victims = std::mem::take(&mut self.workers[index].jobs);
        victims.sort_unstable();
        for &id in victims.iter().rev() {
            self.account_kill(id, index, now);
            self.stop_job(id, now);
            self.generation[id as usize] += 1;
            self.outcomes[id as usize] = None;
            self.queue.push_front(id);
            self.queued_units += self.jobs[id as usize].width;
            self.restarts += 1;
        }
        if self.workers[index].state != WorkerState::Released {
            self.release(index, now);
        }
    }

    /// Books what killing worker `index` costs job `id`: all work of this run (restart), or
    /// only the in-flight tasks of the units on that worker (the rest is kept).
    fn account_kill(&mut self, id: u32, index: usize, now: i64) {
        let Some(running) = &self.running[id as usize] else {
            return;
        };
        let elapsed = (now - self.started_at[id as usize]).max(0) as u128;
        let done = running.allocated as u128 * elapsed;
        match self.config.kill {
            KillEffect::Restart => self.lost += done,
            KillEffect::KeepFinishedTasks { task_ms } => {
                let here: Centi = running
                    .placement
                    .iter()
                    .filter(|(worker, _)| *worker == index)
                    .map(|(_, units)| *units)
                    .sum();
                let in_flight = elapsed % task_ms.max(1) as u128;
                let lost = (here as u128 * in_flight).min(done);
                self.lost += lost;
                let work = self.jobs[id as usize].work();
                let kept = &mut self.kept[id as usize];
                *kept = (*kept + done - lost).min(work.saturating_sub(1));
            }
        }
    }

    fn release(&mut self, index: usize, now: i64) {
        let worker = &mut self.workers[index];
        match worker.state {
            WorkerState::Booting { .. } => self.booting -= 1,
            WorkerState::Ready => self.ready -= 1,
            WorkerState::Draining { .. } => self.draining -= 1,
            WorkerState::Released => return,
        }
        worker.state = WorkerState::Released;
        if worker.pending_removal.take().is_some() {
            self.pending -= 1;
        }
        self.ledger
            .release(self.config.billing, now - worker.launched_at);
        if let Some(position) = self.active.iter().position(|&i| i == index) {
            self.active.swap_remove(position);
        }
    }

    fn remove(&mut self, count: usize, scale_down: ScaleDown, now: i64) {
        let mut candidates: Vec<(u8, i64, i64, Reverse<usize>)> = self
            .active
            .iter()
            .filter_map(|&index| {
                let worker = &self.workers[index];
                let newest_first = -worker.launched_at;
                let key = Reverse(index); // later launches first among equal times
                if worker.pending_removal.is_some() {
                    return None;
                }
                let into_hour = (now - worker.launched_at).rem_euclid(3_600_000);
                match (worker.state, scale_down.order) {
                    (
                        WorkerState::Booting { .. } | WorkerState::Ready,
                        VictimOrder::ClosestToNextHour,
                    ) => Some((1, -into_hour, newest_first, key)),
                    (WorkerState::Booting { .. }, _) => Some((0, newest_first, 0, key)),
                    (WorkerState::Ready, VictimOrder::IdleFirst) if worker.used == 0 => {
                        Some((1, newest_first, 0, key))
                    }
                    (WorkerState::Ready, VictimOrder::IdleFirst) => {
                        Some((2, worker.used as i64, newest_first, key))
                    }
                    (WorkerState::Ready, VictimOrder::Newest) => Some((1, newest_first, 0, key)),
                    _ => None,
                }
            })
            .collect();
        candidates.sort_unstable();
        for (_, _, _, Reverse(index)) in candidates.into_iter().take(count) {
            let worker = &self.workers[index];
            if worker.used == 0 {
                self.release(index, now);
                continue;
            }
            match scale_down.removal {
                Removal::Kill => self.kill(index, now),
                Removal::WhenIdle { timeout_ms, force } => {
                    self.workers[index].pending_removal = Some((now + timeout_ms, force));
                    self.pending += 1;
                    self.events
                        .push(Reverse((now + timeout_ms, IDLE_DEADLINE, index as u32, 0)));
                }
                Removal::Drain { timeout_ms } => {
                    let force_at = timeout_ms.map(|timeout| now + timeout);
                    self.workers[index].state = WorkerState::Draining { force_at };
                    self.ready -= 1;
                    self.draining += 1;
                    if let Some(at) = force_at {
                        self.events
                            .push(Reverse((at, DRAIN_DEADLINE, index as u32, 0)));
                    }
                }
            }
        }
        self.schedule(now);
    }
}

/// What a finished replay leaves behind.
#[derive(Debug, Clone)]
pub struct PoolTotals {
    pub ledger: Ledger,
    /// Times a running job was stopped by a kill and had to run (some of) its work again.
    pub restarts: u64,
    /// Work thrown away by kills, in worker-hours (unit-hours ÷ C).
    pub work_lost_worker_hours: f64,
    pub unfinished: usize,
    pub outcomes: Vec<JobOutcome>,
}

#[cfg(test)]
mod tests;
