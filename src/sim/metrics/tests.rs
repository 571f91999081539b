//! The anchors of traces-and-metrics §4.5 (3), from BUNGEE's definitions.

use super::*;
use crate::sim::timeline::Sample;

/// A timeline from (demand, supply) pairs, one per `step_ms`.
fn timeline(points: &[(u32, u32)], step_ms: i64) -> Timeline {
    let mut timeline = Timeline::default();
    for (i, &(demand, supply)) in points.iter().enumerate() {
        timeline.push(Sample {
            at: i as i64 * step_ms,
            demand_workers: demand,
            ready_workers: supply,
            billed_workers: supply,
            queued_units: 0,
            running_units: demand as u64 * 100,
        });
    }
    timeline.end = points.len() as i64 * step_ms;
    timeline
}

const DEMAND: [u32; 8] = [0, 1, 3, 2, 5, 5, 1, 4];

#[test]
fn supply_equal_to_demand_is_perfect() {
    let points: Vec<(u32, u32)> = DEMAND.iter().map(|&d| (d, d)).collect();
    let metrics = elasticity(&timeline(&points, 10_000), 10_000);
    assert_eq!(metrics, Elasticity::default());
}

#[test]
fn supply_one_above_demand_is_always_over() {
    let points: Vec<(u32, u32)> = DEMAND.iter().map(|&d| (d, d + 1)).collect();
    let metrics = elasticity(&timeline(&points, 10_000), 10_000);
    let expected = 100.0
        * DEMAND
            .iter()
            .map(|&d| 1.0 / f64::from(d).max(1.0))
            .sum::<f64>()
        / DEMAND.len() as f64;
    assert!(
        (metrics.accuracy_over - expected).abs() < 1e-9,
        "{} vs {expected}",
        metrics.accuracy_over
    );
    assert_eq!(metrics.timeshare_over, 100.0);
    assert_eq!(
        (metrics.accuracy_under, metrics.timeshare_under),
        (0.0, 0.0)
    );
    assert_eq!(metrics.instability, 0.0, "supply moves with demand");
    assert_eq!(metrics.over_workers_mean, 1.0);
}

#[test]
fn lagging_staircase_is_k_prime_not_k() {
    // Demand climbs one step per sample from 0; supply follows one sample late: s(t) = d(t − 1).
    let points: Vec<(u32, u32)> = (0u32..10).map(|i| (i, i.saturating_sub(1))).collect();
    let metrics = elasticity(&timeline(&points, 10_000), 10_000);
    assert_eq!(metrics.instability_k, 0.0);
    assert!(metrics.instability_k_prime > 0.0);
    assert_eq!(
        metrics.instability,
        metrics.instability_k + metrics.instability_k_prime
    );
    assert_eq!(
        metrics.timeshare_under, 90.0,
        "under everywhere but the first sample"
    );
}

#[test]
fn thrashing_supply_is_k_and_positive_jitter() {
    let points: Vec<(u32, u32)> = (0..10).map(|i| (2, 2 + i % 2)).collect();
    let metrics = elasticity(&timeline(&points, 60_000), 60_000);
    assert!(metrics.instability_k > 0.0 && metrics.instability_k_prime > 0.0);
    // 9 supply changes, 0 demand changes, over 10 minutes.
    assert!((metrics.jitter - 0.9).abs() < 1e-9, "{}", metrics.jitter);
}

#[test]
fn job_stats_percentiles_and_bounded_slowdown() {
    let outcomes: Vec<JobOutcome> = (1..=100)
        .map(|i| JobOutcome {
            wait_ms: i * 1000,
            runtime_ms: if i == 1 { 1000 } else { 100_000 },
        })
        .collect();
    let stats = job_stats(&outcomes);
    assert_eq!(
        (
            stats.wait_p50_s,
            stats.wait_p95_s,
            stats.wait_p99_s,
            stats.wait_max_s
        ),
        (50.0, 95.0, 99.0, 100.0)
    );
    assert_eq!(stats.wait_mean_s, 50.5);
    assert_eq!(stats.waiting_over_60s_pct, 40.0);
    assert_eq!(stats.waiting_over_300s_pct, 0.0);
    // job 1: (1 + 1) s / max(1 s, 10 s) = 0.2 → bounded to 1.
    let first = ((1000.0 + 1000.0) / 10_000.0f64).max(1.0);
    assert_eq!(first, 1.0);
    assert!(stats.bounded_slowdown_mean > 1.0);
}

#[test]
fn utilisation_is_running_over_ready_capacity() {
    let timeline = timeline(&[(1, 2), (2, 2)], 1000);
    let stats = pool_stats(&timeline, 1.0);
    // running units = demand: 1 + 2 over 2 + 2 unit-capacity.
    assert!((stats.utilization - 0.75).abs() < 1e-12);
    assert_eq!(stats.ready_workers_max, 2);
}
