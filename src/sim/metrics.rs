//! Elasticity and job metrics (traces-and-metrics §3 and §6).
//!
//! Conventions (printed in the report header too):
//! - d(t) = ⌈(queued + running units) / C⌉, endogenous to the run; s(t) = ready workers
//!   (draining ones included: they still serve their work); ε = 1 worker;
//! - θ, τ, a and utilisation integrate exactly over the step segments of the timeline;
//! - υ, k, k′ compare sgn(Δs) with sgn(Δd) between consecutive samples on a regular grid
//!   (the controller's tick), as in the discrete SPEC RG definition;
//! - jitter = (supply changes − demand changes) per minute, every change-point one event;
//! - bounded slowdown uses τ = 10 s.

use serde::Serialize;

use super::pool::JobOutcome;
use super::timeline::Timeline;
use super::trace::CENTI;

const EPSILON_WORKERS: f64 = 1.0;
const BOUNDED_SLOWDOWN_TAU_MS: i64 = 10_000;

/// Elasticity metrics of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Elasticity {
    /// θ_U, θ_O in percent.
    pub accuracy_under: f64,
    pub accuracy_over: f64,
    /// Mean under-/over-provisioned workers (BUNGEE's un-normalised area / T).
    pub under_workers_mean: f64,
    pub over_workers_mean: f64,
    /// τ_U, τ_O in percent of time.
    pub timeshare_under: f64,
    pub timeshare_over: f64,
    /// υ = k + k′, in percent.
    pub instability: f64,
    pub instability_k: f64,
    pub instability_k_prime: f64,
    /// Adaptations per minute, supply minus demand.
    pub jitter: f64,
}

/// Computes the SPEC RG metrics of a timeline, instability sampled every `grid_ms`.
pub fn elasticity(timeline: &Timeline, grid_ms: i64) -> Elasticity {
    let total_ms = timeline.duration_ms();
    if total_ms <= 0 {
        return Elasticity::default();
    }
    let mut sums = [0.0f64; 6]; // θU θO aU aO τU τO, each Σ x·Δt
    for (sample, length) in timeline.segments() {
        let (d, s) = (sample.demand_workers as f64, sample.ready_workers as f64);
        let dt = length as f64;
        let under = (d - s).max(0.0);
        let over = (s - d).max(0.0);
        sums[0] += under / d.max(EPSILON_WORKERS) * dt;
        sums[1] += over / d.max(EPSILON_WORKERS) * dt;
        sums[2] += under * dt;
        sums[3] += over * dt;
        sums[4] += if under > 0.0 { dt } else { 0.0 };
        sums[5] += if over > 0.0 { dt } else { 0.0 };
    }
    let total = total_ms as f64;
    let (k, k_prime) = instability(timeline, grid_ms);
    let supply_events = changes(timeline, |s| s.ready_workers);
    let demand_events = changes(timeline, |s| s.demand_workers);
    Elasticity {
        accuracy_under: 100.0 * sums[0] / total,
        accuracy_over: 100.0 * sums[1] / total,
        under_workers_mean: sums[2] / total,
        over_workers_mean: sums[3] / total,
        timeshare_under: 100.0 * sums[4] / total,
        timeshare_over: 100.0 * sums[5] / total,
        instability: k + k_prime,
        instability_k: k,
        instability_k_prime: k_prime,
        jitter: (supply_events as f64 - demand_events as f64) / (total / 60_000.0),
    }
}

fn changes(timeline: &Timeline, value: impl Fn(&super::timeline::Sample) -> u32) -> usize {
    timeline
        .samples
        .windows(2)
        .filter(|pair| value(&pair[0]) != value(&pair[1]))
        .count()
}

/// (k, k′) in percent over the grid points t0, t0 + grid, … ≤ end.
fn instability(timeline: &Timeline, grid_ms: i64) -> (f64, f64) {
    let Some(first) = timeline.samples.first() else {
        return (0.0, 0.0);
    };
    let grid_ms = grid_ms.max(1);
    let steps = timeline.duration_ms() / grid_ms;
    if steps < 1 {
        return (0.0, 0.0);
    }
    let mut index = 0;
    let mut previous = (first.ready_workers, first.demand_workers);
    let (mut k, mut k_prime) = (0u64, 0u64);
    for step in 1..=steps {
        let at = first.at + step * grid_ms;
        while index + 1 < timeline.samples.len() && timeline.samples[index + 1].at <= at {
            index += 1;
        }
        let sample = &timeline.samples[index];
        let current = (sample.ready_workers, sample.demand_workers);
        let ds = sign(current.0, previous.0);
        let dd = sign(current.1, previous.1);
        k += (ds - dd).clamp(0, 1) as u64;
        k_prime += (dd - ds).clamp(0, 1) as u64;
        previous = current;
    }
    (
        100.0 * k as f64 / steps as f64,
        100.0 * k_prime as f64 / steps as f64,
    )
}

fn sign(now: u32, before: u32) -> i32 {
    (now as i64 - before as i64).signum() as i32
}

/// Queue-wait and slowdown statistics of the finished jobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct JobStats {
    pub jobs: usize,
    pub wait_mean_s: f64,
    pub wait_p50_s: f64,
    pub wait_p95_s: f64,
    pub wait_p99_s: f64,
    pub wait_max_s: f64,
    pub bounded_slowdown_mean: f64,
    pub bounded_slowdown_p95: f64,
    pub waiting_over_60s_pct: f64,
    pub waiting_over_300s_pct: f64,
}

/// Exact percentiles (nearest rank) over all jobs.
pub fn job_stats(outcomes: &[JobOutcome]) -> JobStats {
    if outcomes.is_empty() {
        return JobStats::default();
    }
    let mut waits: Vec<i64> = outcomes.iter().map(|o| o.wait_ms).collect();
    waits.sort_unstable();
    let mut slowdowns: Vec<f64> = outcomes
        .iter()
        .map(|o| {
            ((o.wait_ms + o.runtime_ms) as f64 / o.runtime_ms.max(BOUNDED_SLOWDOWN_TAU_MS) as f64)
                .max(1.0)
        })
        .collect();
    slowdowns.sort_unstable_by(f64::total_cmp);
    let n = outcomes.len();
    let share =
        |limit_ms: i64| 100.0 * waits.iter().filter(|&&w| w > limit_ms).count() as f64 / n as f64;
    JobStats {
        jobs: n,
        wait_mean_s: waits.iter().map(|&w| w as f64).sum::<f64>() / n as f64 / 1000.0,
        wait_p50_s: nearest_rank(&waits, 0.50) as f64 / 1000.0,
        wait_p95_s: nearest_rank(&waits, 0.95) as f64 / 1000.0,
        wait_p99_s: nearest_rank(&waits, 0.99) as f64 / 1000.0,
        wait_max_s: *waits.last().unwrap_or(&0) as f64 / 1000.0,
        bounded_slowdown_mean: slowdowns.iter().sum::<f64>() / n as f64,
        bounded_slowdown_p95: nearest_rank(&slowdowns, 0.95),
        waiting_over_60s_pct: share(60_000),
        waiting_over_300s_pct: share(300_000),
    }
}

fn nearest_rank<T: Copy>(sorted: &[T], quantile: f64) -> T {
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Pool-side averages: utilisation = ∫running / ∫(C · ready); queue means and max.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PoolStats {
    pub utilization: f64,
    pub queued_units_mean: f64,
    pub queued_units_max: f64,
    pub ready_workers_max: u32,
}

pub fn pool_stats(timeline: &Timeline, capacity_units: f64) -> PoolStats {
    let (mut running, mut supply, mut queued) = (0.0f64, 0.0f64, 0.0f64);
    let (mut queued_max, mut ready_max) = (0u64, 0u32);
    for (sample, length) in timeline.segments() {
        let dt = length as f64;
        running += sample.running_units as f64 / CENTI as f64 * dt;
        supply += capacity_units * sample.ready_workers as f64 * dt;
        queued += sample.queued_units as f64 / CENTI as f64 * dt;
        queued_max = queued_max.max(sample.queued_units);
        ready_max = ready_max.max(sample.ready_workers);
    }
    let total = timeline.duration_ms().max(1) as f64;
    PoolStats {
        utilization: if supply > 0.0 { running / supply } else { 0.0 },
        queued_units_mean: queued / total,
        queued_units_max: queued_max as f64 / CENTI as f64,
        ready_workers_max: ready_max,
    }
}

#[cfg(test)]
mod tests;
