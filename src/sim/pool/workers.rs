//! The workers of a simulated pool and how work is placed on them.
//!
//! Slots are pinned: a job's units sit on specific workers until it ends, so removing a busy
//! worker means draining it (no new work; released when empty) or killing its work.

use serde::{Deserialize, Serialize};

use crate::sim::trace::Centi;

/// How a job uses workers (traces-and-metrics §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum JobModel {
    /// Celery/Airflow/Spark tasks, Trino splits: `width` units on any workers (best fit).
    #[default]
    Slot,
    /// MPI-like: ⌈width / C⌉ whole idle workers at once, exclusively.
    Gang,
    /// Spreads up to `width`: starts once half its width is free (all of it when narrower
    /// than a worker), takes what is free up to `width`, and runs `work / allocated` long.
    /// (Starting on any sliver would let a huge job crawl for months.)
    Moldable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    Booting {
        ready_at: i64,
    },
    Ready,
    /// Takes no new work; released when empty, or at `force_at` (its work is killed).
    Draining {
        force_at: Option<i64>,
    },
    Released,
}

#[derive(Debug, Clone)]
pub struct Worker {
    pub launched_at: i64,
    pub state: WorkerState,
    /// Units in use (a gang job marks the whole worker used).
    pub used: Centi,
    /// Running jobs with units here (job indices).
    pub jobs: Vec<u32>,
    /// A reversible removal waiting for the worker to be idle: (deadline, kill at deadline).
    pub pending_removal: Option<(i64, bool)>,
}

impl Worker {
    pub fn accepts_work(&self) -> bool {
        self.state == WorkerState::Ready
    }
}

/// Where a running job's units are: (worker slot index, units).
pub type Placement = Vec<(usize, Centi)>;

/// Chooses workers for `width` units under `model`, or `None` when they don't fit now.
/// `active` are indices into `workers` of workers not yet released.
pub fn place(
    model: JobModel,
    width: Centi,
    capacity: Centi,
    workers: &[Worker],
    active: &[usize],
) -> Option<(Placement, Centi)> {
    match model {
        JobModel::Slot => {
            fill(width, capacity, workers, active).map(|placement| (placement, width))
        }
        JobModel::Moldable => {
            let free = free_units(capacity, workers, active);
            let allocated = width.min(free);
            let needed = if width <= capacity {
                width
            } else {
                width.div_ceil(2).max(capacity)
            };
            (allocated > 0 && allocated >= needed)
                .then(|| {
                    fill(allocated, capacity, workers, active)
                        .map(|placement| (placement, allocated))
                })
                .flatten()
        }
        JobModel::Gang => {
            let needed = width.div_ceil(capacity.max(1)) as usize;
            let idle: Vec<usize> = active
                .iter()
                .copied()
                .filter(|&index| workers[index].accepts_work() && workers[index].used == 0)
                .take(needed)
                .collect();
            (idle.len() == needed).then(|| {
                let placement = idle.into_iter().map(|index| (index, capacity)).collect();
                (placement, width)
            })
        }
    }
}

/// Free units on workers that accept work.
pub fn free_units(capacity: Centi, workers: &[Worker], active: &[usize]) -> Centi {
    active
        .iter()
        .map(|&index| &workers[index])
        .filter(|worker| worker.accepts_work())
        .map(|worker| capacity.saturating_sub(worker.used))
        .sum()
}

/// Best fit: fullest workers first, so idle workers stay idle and can be removed cheaply.
fn fill(units: Centi, capacity: Centi, workers: &[Worker], active: &[usize]) -> Option<Placement> {
    let mut candidates: Vec<(Centi, usize)> = active
        .iter()
        .filter(|&&index| workers[index].accepts_work() && workers[index].used < capacity)
        .map(|&index| (capacity - workers[index].used, index))
        .collect();
    let free: Centi = candidates.iter().map(|c| c.0).sum();
    if free < units {
        return None;
    }
    // Fullest first; among equals the oldest worker (lowest index) for determinism.
    candidates.sort_unstable();
    let mut placement = Vec::new();
    let mut left = units;
    for (free, index) in candidates {
        if left == 0 {
            break;
        }
        let take = free.min(left);
        placement.push((index, take));
        left -= take;
    }
    Some(placement)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(used: Centi, state: WorkerState) -> Worker {
        Worker {
            launched_at: 0,
            state,
            used,
            jobs: Vec::new(),
            pending_removal: None,
        }
    }

    #[test]
    fn slot_fills_fullest_workers_first() {
        let workers = vec![
            worker(0, WorkerState::Ready),
            worker(300, WorkerState::Ready),
            worker(100, WorkerState::Ready),
        ];
        let (placement, allocated) = place(JobModel::Slot, 200, 400, &workers, &[0, 1, 2]).unwrap();
        assert_eq!(allocated, 200);
        assert_eq!(
            placement,
            vec![(1, 100), (2, 100)],
            "idle worker 0 stays idle"
        );
        assert!(place(JobModel::Slot, 900, 400, &workers, &[0, 1, 2]).is_none());
    }

    #[test]
    fn draining_and_booting_workers_take_no_work() {
        let workers = vec![
            worker(0, WorkerState::Draining { force_at: None }),
            worker(0, WorkerState::Booting { ready_at: 5 }),
        ];
        assert!(place(JobModel::Slot, 100, 400, &workers, &[0, 1]).is_none());
        assert_eq!(free_units(400, &workers, &[0, 1]), 0);
    }

    #[test]
    fn gang_needs_whole_idle_workers() {
        let workers = vec![
            worker(100, WorkerState::Ready),
            worker(0, WorkerState::Ready),
            worker(0, WorkerState::Ready),
        ];
        assert!(
            place(JobModel::Gang, 900, 400, &workers, &[0, 1, 2]).is_none(),
            "needs 3 idle, has 2"
        );
        let (placement, _) = place(JobModel::Gang, 500, 400, &workers, &[0, 1, 2]).unwrap();
        assert_eq!(placement, vec![(1, 400), (2, 400)]);
    }

    #[test]
    fn moldable_starts_narrower_when_half_its_width_is_free() {
        let workers = vec![
            worker(0, WorkerState::Ready),
            worker(200, WorkerState::Ready),
        ];
        let (_, allocated) = place(JobModel::Moldable, 1000, 400, &workers, &[0, 1]).unwrap();
        assert_eq!(allocated, 600);
        assert!(
            place(JobModel::Moldable, 1400, 400, &workers, &[0, 1]).is_none(),
            "600 free < 700"
        );
        let busy = vec![worker(200, WorkerState::Ready)];
        assert!(
            place(JobModel::Moldable, 1000, 400, &busy, &[0]).is_none(),
            "200 free < half of 1000"
        );
        assert_eq!(
            place(JobModel::Moldable, 100, 400, &busy, &[0]).unwrap().1,
            100
        );
    }
}
