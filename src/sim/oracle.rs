//! The offline optimum: the cheapest pool that never makes a job wait (traces-and-metrics §5).
//!
//! n(t) = ⌈D(t) / C⌉ where D(t) is the zero-wait demand (every job runs from its arrival, slot
//! model). Cost(x) = ∫x dt + B · launches, minimised per level k of 1[x ≥ k]: a gap g between
//! two on-intervals of a level is bridged (the worker idles through it, cost g) when g < B, and
//! otherwise the worker stops and a relaunch costs B (ski rental at the break-even B). Levels
//! nest, so the per-level answers stack into one optimal x(t). One sweep over the change-points.

use super::timeline::{Sample, Timeline};
use super::trace::{Centi, Job};

/// The oracle's cost and the curves it implies.
#[derive(Debug, Clone, PartialEq)]
pub struct OracleResult {
    /// ∫ n(t) dt, in worker-milliseconds.
    pub busy_worker_ms: u128,
    /// Idle time kept through bridged gaps, in worker-milliseconds.
    pub bridged_worker_ms: u128,
    /// Number of worker launches (level up-crossings that were not bridged).
    pub launches: u64,
    /// B · launches, in worker-milliseconds.
    pub boot_worker_ms: u128,
    /// Demand n(t) = ready supply is the minimum; `timeline` has x(t) as ready workers and
    /// x(t) + booting as billed workers.
    pub timeline: Timeline,
}

impl OracleResult {
    /// OPT(B) in worker-hours.
    pub fn worker_hours(&self) -> f64 {
        (self.busy_worker_ms + self.bridged_worker_ms + self.boot_worker_ms) as f64 / 3_600_000.0
    }
}

/// Zero-wait demand change-points: (time, Σ widths running from that time on).
pub fn zero_wait_demand(jobs: &[Job]) -> Vec<(i64, Centi)> {
    let mut deltas: Vec<(i64, i128)> = Vec::with_capacity(jobs.len() * 2);
    for job in jobs {
        deltas.push((job.arrival.0, job.width as i128));
        deltas.push((job.arrival.0 + job.runtime_ms, -(job.width as i128)));
    }
    deltas.sort_unstable_by_key(|&(at, _)| at);
    let mut curve: Vec<(i64, Centi)> = Vec::new();
    let mut level: i128 = 0;
    for (at, delta) in deltas {
        level += delta;
        match curve.last_mut() {
            Some(last) if last.0 == at => last.1 = level as Centi,
            _ => curve.push((at, level as Centi)),
        }
    }
    curve
}

/// Solves OPT(B) for workers of `capacity` centi-units and boot delay `boot_ms`.
pub fn solve(jobs: &[Job], capacity: Centi, boot_ms: i64) -> OracleResult {
    solve_curve(&zero_wait_demand(jobs), capacity, boot_ms)
}

/// The same bound for a pool of at most `max_workers`: the zero-wait demand above
/// `max_workers · C` is deferred (a fluid FIFO backlog served at the cap as soon as there is
/// room), then the same layer decomposition. `None` when the cap never binds (the figure is
/// OPT(B) itself). Still fluid: no packing, no billing minimum.
pub fn solve_capped(
    jobs: &[Job],
    capacity: Centi,
    boot_ms: i64,
    max_workers: u32,
) -> Option<OracleResult> {
    let cap = capacity.max(1) * u64::from(max_workers.max(1));
    let curve = capped_demand(&zero_wait_demand(jobs), cap)?;
    Some(solve_curve(&curve, capacity, boot_ms))
}

/// Served-demand change-points when at most `cap` units run at once; `None` if never capped.
pub fn capped_demand(demand: &[(i64, Centi)], cap: Centi) -> Option<Vec<(i64, Centi)>> {
    if demand.iter().all(|&(_, units)| units <= cap) || cap == 0 {
        return None;
    }
    let mut out: Vec<(i64, Centi)> = Vec::with_capacity(demand.len() + 8);
    let mut push = |at: i64, units: Centi| match out.last_mut() {
        Some(last) if last.0 == at => last.1 = units,
        Some(last) if last.1 == units => {}
        _ => out.push((at, units)),
    };
    let mut backlog: u128 = 0; // centi-unit-ms of deferred work
    for (i, &(at, units)) in demand.iter().enumerate() {
        let until = demand.get(i + 1).map(|&(next, _)| next);
        // Over the cap, or a backlog that outlasts the segment: at the cap throughout.
        let saturated = units >= cap
            || until.is_some_and(|u| {
                backlog > 0 && backlog >= (cap - units) as u128 * (u - at) as u128
            });
        if saturated {
            push(at, cap);
            if let Some(u) = until {
                let span = (u - at) as u128;
                if units >= cap {
                    backlog += (units - cap) as u128 * span;
                } else {
                    backlog -= (cap - units) as u128 * span;
                }
            }
        } else if backlog > 0 {
            // The backlog clears inside this segment (or after the last change-point).
            let clear = backlog.div_ceil((cap - units) as u128) as i64;
            push(at, cap);
            push(at + clear, units);
            backlog = 0;
        } else {
            push(at, units);
        }
    }
    Some(out)
}

/// OPT(B) over a demand curve of (time, units) change-points.
pub fn solve_curve(demand: &[(i64, Centi)], capacity: Centi, boot_ms: i64) -> OracleResult {
    let demand = demand.to_vec();
    let workers = |units: Centi| units.div_ceil(capacity.max(1)) as usize;
    let mut off_since: Vec<Option<i64>> = Vec::new(); // index k-1 for level k; None = never on
    let mut events: Vec<(i64, Event)> = Vec::new();
    let (mut busy, mut bridged, mut launches) = (0u128, 0u128, 0u64);
    let mut previous: Option<(i64, usize)> = None;
    for &(at, units) in &demand {
        let n = workers(units);
        let before = previous.map_or(0, |(since, level)| {
            busy += (at - since) as u128 * level as u128;
            level
        });
        if n > before {
            for level in before + 1..=n {
                if off_since.len() < level {
                    off_since.resize(level, None);
                }
                match off_since[level - 1] {
                    Some(off) if at - off < boot_ms => {
                        bridged += (at - off) as u128;
                        events.push((off, Event::Idle(1)));
                        events.push((at, Event::Idle(-1)));
                    }
                    _ => {
                        launches += 1;
                        events.push((at - boot_ms, Event::Booting(1)));
                        events.push((at, Event::Booting(-1)));
                    }
                }
            }
        } else {
            for slot in off_since.iter_mut().take(before).skip(n) {
                *slot = Some(at);
            }
        }
        events.push((at, Event::Demand(n as u32, units)));
        previous = Some((at, n));
    }
    let end = demand.last().map_or(0, |&(at, _)| at);
    OracleResult {
        busy_worker_ms: busy,
        bridged_worker_ms: bridged,
        launches,
        boot_worker_ms: launches as u128 * boot_ms.max(0) as u128,
        timeline: build_timeline(events, end),
    }
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Demand(u32, Centi),
    Idle(i32),
    Booting(i32),
}

/// Folds the events into x(t) (ready) and x(t) + booting (billed).
fn build_timeline(mut events: Vec<(i64, Event)>, end: i64) -> Timeline {
    events.sort_by_key(|&(at, _)| at);
    let mut timeline = Timeline {
        samples: Vec::new(),
        end,
    };
    let (mut demand, mut running, mut idle, mut booting) = (0u32, 0 as Centi, 0i64, 0i64);
    let mut index = 0;
    while index < events.len() {
        let at = events[index].0;
        while index < events.len() && events[index].0 == at {
            match events[index].1 {
                Event::Demand(n, units) => (demand, running) = (n, units),
                Event::Idle(delta) => idle += delta as i64,
                Event::Booting(delta) => booting += delta as i64,
            }
            index += 1;
        }
        let ready = demand + idle.max(0) as u32;
        timeline.push(Sample {
            at,
            demand_workers: demand,
            ready_workers: ready,
            billed_workers: ready + booting.max(0) as u32,
            queued_units: 0,
            running_units: running,
        });
    }
    timeline
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn job(arrival_s: i64, width: u64, runtime_s: i64) -> Job {
        Job {
            arrival: Timestamp::from_secs(arrival_s),
            width: width * 100,
            runtime_ms: runtime_s * 1000,
        }
    }

    #[test]
    fn the_capped_bound_defers_work_above_the_cap() {
        // 8 units for 100 s on C = 4 with at most 1 worker: 400 units over the cap are
        // deferred and served at 4 units from 100 s to 200 s.
        let jobs = [job(0, 8, 100)];
        assert!(
            solve_capped(&jobs, 400, 0, 2).is_none(),
            "the cap never binds"
        );
        let curve = capped_demand(&zero_wait_demand(&jobs), 400).unwrap();
        assert_eq!(curve, vec![(0, 400), (200_000, 0)]);
        let capped = solve_capped(&jobs, 400, 0, 1).unwrap();
        assert_eq!(capped.busy_worker_ms, 200_000);
        assert_eq!(
            solve(&jobs, 400, 0).busy_worker_ms,
            200_000,
            "same work, fluid"
        );
        // 6 units for 100 s, then 2 units for 200 s, cap 4: the 200 unit·s deferred clear at
        // (4 − 2) units from 100 s, so by 200 s.
        let jobs = [job(0, 6, 100), job(100, 2, 200)];
        let curve = capped_demand(&zero_wait_demand(&jobs), 400).unwrap();
        assert_eq!(curve, vec![(0, 400), (200_000, 200), (300_000, 0)]);
    }

    #[test]
    fn zero_boot_is_the_integral_of_ceil_demand() {
        // widths 3 and 2 on C = 4: one worker, then two while both run, then one.
        let jobs = [job(0, 3, 100), job(50, 2, 100)];
        let result = solve(&jobs, 400, 0);
        assert_eq!(result.busy_worker_ms, (50 + 50 * 2 + 50) * 1000);
        assert_eq!(result.launches, 2);
        assert_eq!(result.bridged_worker_ms, 0);
    }

    #[test]
    fn short_gaps_are_bridged_and_long_gaps_relaunched() {
        // on 0–10 s, off 10–40 s (gap 30 s), on 40–50 s, off 50–150 s, on 150–160 s.
        let jobs = [job(0, 1, 10), job(40, 1, 10), job(150, 1, 10)];
        let result = solve(&jobs, 100, 60_000);
        assert_eq!(
            result.bridged_worker_ms, 30_000,
            "the 30 s gap is cheaper than a 60 s boot"
        );
        assert_eq!(result.launches, 2, "the 100 s gap is not");
        let expected_hours = (30.0 + 30.0 + 2.0 * 60.0) / 3600.0;
        assert!((result.worker_hours() - expected_hours).abs() < 1e-12);
        let curve: Vec<(i64, u32, u32, u32)> = result
            .timeline
            .samples
            .iter()
            .map(|s| {
                (
                    s.at / 1000,
                    s.demand_workers,
                    s.ready_workers,
                    s.billed_workers,
                )
            })
            .collect();
        assert_eq!(
            curve,
            vec![
                (-60, 0, 0, 1),
                (0, 1, 1, 1),
                (10, 0, 1, 1),
                (40, 1, 1, 1),
                (50, 0, 0, 0),
                (90, 0, 0, 1),
                (150, 1, 1, 1),
                (160, 0, 0, 0)
            ]
        );
    }
}
