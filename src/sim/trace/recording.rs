//! Replaying a poolpilot recording: the recorded demand curve becomes unit-width jobs.
//!
//! A recording holds demand (queued + running units) per tick, not jobs. It is turned into jobs
//! by the same layer decomposition the oracle uses: each unit level k of ⌈demand⌉ is on over
//! intervals, and each interval becomes one job of width 1 that arrives when the level comes on
//! and runs for as long as it stayed on. Replayed with ample capacity this reproduces the
//! recorded curve exactly; with less, the work queues, as it would have. The recorded demand
//! already includes the queueing of the recorded system, so treat results as an approximation.
//! A missing reading holds the last good value.

use super::{CENTI, Job, Workload};
use crate::engine::signal::Signal;
use crate::sim::recording::{self, RecordLine};
use crate::time::Timestamp;

/// Reads the first pool of the recording (the first `tick` line's pool) and its signal
/// `signal_index`.
pub fn workload_from_text(text: &str, name: &str, signal_index: usize) -> anyhow::Result<Workload> {
    let lines = recording::parse(text)?;
    let mut pool: Option<String> = None;
    let mut curve: Vec<(Timestamp, u64)> = Vec::new();
    let mut last_level = 0u64;
    for line in &lines {
        let RecordLine::Tick(tick) = line else {
            continue;
        };
        let pool_name = pool.get_or_insert_with(|| tick.pool.clone());
        if *pool_name != tick.pool {
            continue;
        }
        if let Some(Signal::Value { demand, .. }) = tick.signals.get(signal_index) {
            last_level = if demand.is_finite() && *demand > 0.0 {
                demand.ceil() as u64
            } else {
                0
            };
        }
        curve.push((tick.at, last_level));
    }
    let Some(pool) = pool else {
        anyhow::bail!("{name}: the recording has no tick lines");
    };
    let jobs = jobs_from_levels(&curve);
    let mut workload = Workload::new(
        jobs,
        format!(
            "{name} (poolpilot recording, pool {pool}, signal {signal_index}, unit jobs from demand layers)"
        ),
    );
    workload.records = curve.len() as u64;
    Ok(workload)
}

/// Layer decomposition of a step curve (value held until the next point; the last point ends
/// the curve) into unit jobs.
fn jobs_from_levels(curve: &[(Timestamp, u64)]) -> Vec<Job> {
    let mut on_since: Vec<Timestamp> = Vec::new();
    let mut jobs = Vec::new();
    let mut close = |on_since: &mut Vec<Timestamp>, level: u64, at: Timestamp| {
        while on_since.len() as u64 > level {
            let since = on_since.pop().unwrap_or(at);
            if at.0 > since.0 {
                jobs.push(Job {
                    arrival: since,
                    width: CENTI,
                    runtime_ms: at.0 - since.0,
                });
            }
        }
    };
    for &(at, level) in curve {
        close(&mut on_since, level, at);
        while (on_since.len() as u64) < level {
            on_since.push(at);
        }
    }
    if let Some(&(end, _)) = curve.last() {
        close(&mut on_since, 0, end);
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_become_unit_jobs() {
        let curve = [
            (Timestamp(0), 2),
            (Timestamp(10), 3),
            (Timestamp(20), 1),
            (Timestamp(40), 1),
        ];
        let mut jobs = jobs_from_levels(&curve);
        jobs.sort_by_key(|job| (job.arrival, job.runtime_ms));
        let spans: Vec<(i64, i64)> = jobs
            .iter()
            .map(|job| (job.arrival.0, job.runtime_ms))
            .collect();
        assert_eq!(spans, vec![(0, 20), (0, 40), (10, 10)]);
    }

    #[test]
    fn reads_first_pool_and_holds_missing_values() {
        let text = r#"{"record":"tick","at":0,"pool":"a","signals":[{"kind":"value","demand":1.5,"observed_at":0}],"workers":{"requested":1,"ready":1}}
{"record":"tick","at":1000,"pool":"b","signals":[{"kind":"value","demand":9,"observed_at":0}],"workers":{"requested":1,"ready":1}}
{"record":"tick","at":1000,"pool":"a","signals":[{"kind":"missing","since":900,"fault":"timeout"}],"workers":{"requested":1,"ready":1}}
{"record":"tick","at":2000,"pool":"a","signals":[{"kind":"value","demand":0,"observed_at":2000}],"workers":{"requested":1,"ready":1}}
"#;
        let workload = workload_from_text(text, "r.jsonl", 0).unwrap();
        assert_eq!(
            workload.jobs.len(),
            2,
            "two levels (⌈1.5⌉) held through the missing tick"
        );
        assert!(workload.jobs.iter().all(|job| job.runtime_ms == 2000));
    }
}
