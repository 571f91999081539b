//! Replaying a poolpilot recording: the recorded demand curve becomes unit-width jobs.
//!
//! A recording holds demand (queued + running units) per tick, not jobs. It is turned into jobs
//! by the same layer decomposition the oracle uses: each unit level k of ⌈demand⌉ is on over
//! intervals, and each interval becomes one job of width 1 that arrives when the level comes on
//! and runs for as long as it stayed on. Replayed with ample capacity this reproduces the
//! recorded curve exactly; with less, the work queues, as it would have. The recorded demand
//! already includes the queueing of the recorded system, so treat results as an approximation.
//! A missing reading holds the last good value.

use super::{CENTI, Job, Workload, limits};
use crate::engine::signal::{Signal, demand_in_workers};
use crate::sim::recording::{self, RecordLine, RecordedPool, Recording};
use crate::time::Timestamp;

/// Reads pool `pool` of a recording (the first pool when `None`): see [`pool_workload`].
pub fn workload_from_text(text: &str, name: &str, pool: Option<&str>) -> anyhow::Result<Workload> {
    let (workload, warnings) = pool_workload_from_text(text, name, pool)?;
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    Ok(workload)
}

fn pool_workload_from_text(
    text: &str,
    name: &str,
    pool: Option<&str>,
) -> anyhow::Result<(Workload, Vec<String>)> {
    let rec = recording::parse(text, name)?;
    let pools = rec.pools();
    let chosen = match pool {
        Some(p) => pools.iter().find(|x| x.name == p).ok_or_else(|| {
            anyhow::anyhow!(
                "{name}: no pool `{p}` in the recording (it has: {})",
                pools
                    .iter()
                    .map(|x| x.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?,
        None => pools
            .first()
            .ok_or_else(|| anyhow::anyhow!("{name}: the recording names no pool"))?,
    };
    let (workload, mut warnings) = pool_workload(&rec, chosen, name)?;
    warnings.splice(0..0, rec.warnings.iter().cloned());
    Ok((workload, warnings))
}

/// The demand of one recorded pool as unit jobs, in units of its first signal: each tick's
/// demand is the largest need over its fresh signals (`demand_i / per_worker_i`, in workers),
/// converted back with the first signal's `per_worker`, so the replayed pool (one queue,
/// `per_worker` of signal 0 per worker) needs as many workers as the daemon's pool did. A
/// missing reading holds the last good value. Errors when the pool has no tick or never a
/// reading; warns (second value) about a signal that never had one.
pub fn pool_workload(
    rec: &Recording,
    pool: &RecordedPool,
    name: &str,
) -> anyhow::Result<(Workload, Vec<String>)> {
    let per_worker: Vec<f64> = pool.signals.iter().map(|s| s.per_worker).collect();
    let unit = per_worker
        .first()
        .copied()
        .filter(|p| *p > 0.0)
        .ok_or_else(|| {
            anyhow::anyhow!("{name}: pool `{}` has no signal in the header", pool.name)
        })?;
    let mut curve: Vec<(Timestamp, u64)> = Vec::new();
    let mut last_level = 0u64;
    let mut readings = 0usize;
    let mut per_signal = vec![0usize; per_worker.len()];
    let mut rises = 0u64;
    for (number, line) in &rec.lines {
        let RecordLine::Tick(tick) = line else {
            continue;
        };
        if tick.pool != pool.name {
            continue;
        }
        check_time(
            name,
            *number,
            tick.at,
            curve.first().map(|c| c.0),
            curve.last().map(|c| c.0),
        )?;
        for (i, s) in tick.signals.iter().enumerate().take(per_signal.len()) {
            if matches!(s, Signal::Value { .. }) {
                per_signal[i] += 1;
            }
        }
        let need = demand_in_workers(&per_worker, &tick.signals);
        if let Some(workers) = need {
            readings += 1;
            let level = (workers * unit - 1e-9).ceil().max(0.0);
            limits::check(
                name,
                *number,
                "demand (in units of signal 0)",
                level,
                0.0,
                limits::MAX_WIDTH_UNITS,
            )?;
            rises += (level as u64).saturating_sub(last_level);
            last_level = level as u64;
            limits::check_jobs(name, rises as usize)?;
        }
        curve.push((tick.at, last_level));
    }
    anyhow::ensure!(
        !curve.is_empty(),
        "{name}: pool `{}` has no tick lines",
        pool.name
    );
    anyhow::ensure!(
        readings > 0,
        "{name}: pool `{}` has {} ticks but not one good reading (every signal was missing)",
        pool.name,
        curve.len()
    );
    let jobs = jobs_from_levels(&curve);
    let kinds: Vec<&str> = pool.signals.iter().map(|s| s.kind.as_str()).collect();
    let mut workload = Workload::new(
        jobs,
        format!(
            "{name} (poolpilot recording, pool {}, signals {}, unit jobs from demand layers in units of signal 0)",
            pool.name,
            kinds.join("+")
        ),
    );
    workload.records = curve.len() as u64;
    let warnings = per_signal
        .iter()
        .enumerate()
        .filter(|(_, n)| **n == 0)
        .map(|(i, _)| {
            format!(
                "{name}: pool `{}` signal {i} ({}) has no good reading in {} ticks; the replay uses the other signals",
                pool.name,
                pool.signals[i].kind,
                curve.len()
            )
        })
        .collect();
    Ok((workload, warnings))
}

/// A tick's `at`: not before 1970, never back in time, within [`limits::MAX_SPAN_SECS`] of
/// the pool's first tick (a replay's cost follows its span).
fn check_time(
    name: &str,
    line: usize,
    at: Timestamp,
    first: Option<Timestamp>,
    previous: Option<Timestamp>,
) -> anyhow::Result<()> {
    anyhow::ensure!(at.0 >= 0, "{name}:{line}: at {} is before 1970", at.0);
    if let Some(previous) = previous {
        anyhow::ensure!(
            at >= previous,
            "{name}:{line}: at {} goes back in time (the pool's previous tick is at {})",
            at.0,
            previous.0
        );
    }
    if let Some(first) = first {
        let span_s = (at.0 - first.0) / 1000;
        anyhow::ensure!(
            span_s <= limits::MAX_SPAN_SECS,
            "{name}:{line}: at {} is {span_s} s after the pool's first tick, more than a trace may span ({} s)",
            at.0,
            limits::MAX_SPAN_SECS
        );
    }
    Ok(())
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

    fn one_pool(ticks: &[(i64, f64)]) -> String {
        let mut text = String::from(
            r#"{"record":"header","format":"poolpilot-recording","version":2,"started_at":0,"pools":[{"name":"a","mode":"enforce","price_per_worker_hour":1.0,"boot_time":"1m","signals":[{"kind":"spark","per_worker":1.0}],"policy":{}}]}"#,
        );
        for (at, demand) in ticks {
            text.push_str(&format!(
                "\n{{\"record\":\"tick\",\"at\":{at},\"pool\":\"a\",\"signals\":[{{\"kind\":\"value\",\"demand\":{demand},\"observed_at\":{at}}}],\"workers\":{{\"requested\":1,\"ready\":1}}}}"
            ));
        }
        text + "\n"
    }

    #[test]
    fn impossible_ticks_are_refused_with_file_line_and_field() {
        let error = |ticks: &[(i64, f64)]| {
            format!(
                "{:#}",
                workload_from_text(&one_pool(ticks), "r.jsonl", None).unwrap_err()
            )
        };
        let e = error(&[(0, 1.0), (1000, 1e7)]);
        assert!(e.contains("r.jsonl:3: demand"), "{e}");
        let e = error(&[(4_294_967_296, 1.0), (1000, 1.0)]);
        assert!(e.contains("r.jsonl:3: at 1000 goes back in time"), "{e}");
        let e = error(&[(-5, 1.0)]);
        assert!(e.contains("r.jsonl:2: at -5 is before 1970"), "{e}");
        let e = error(&[(0, 1.0), (999_999_999_999_999, 1.0)]);
        assert!(e.contains("r.jsonl:3: at 999999999999999"), "{e}");
        assert!(
            workload_from_text(
                &one_pool(&[(0, 2.0), (4_294_967_296, 1.0)]),
                "r.jsonl",
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn reads_the_chosen_pool_across_signals_and_holds_missing_values() {
        let pool = |name: &str| {
            format!(
                r#"{{"name":"{name}","mode":"enforce","price_per_worker_hour":1.0,"boot_time":"1m","signals":[{{"kind":"spark","per_worker":2.0}},{{"kind":"trino","per_worker":1.0}}],"policy":{{}}}}"#
            )
        };
        let text = format!(
            r#"{{"record":"header","format":"poolpilot-recording","version":2,"started_at":0,"pools":[{},{}]}}
{{"record":"tick","at":0,"pool":"a","signals":[{{"kind":"value","demand":3,"observed_at":0}},{{"kind":"value","demand":1,"observed_at":0}}],"workers":{{"requested":1,"ready":1}}}}
{{"record":"tick","at":0,"pool":"b","signals":[{{"kind":"value","demand":9,"observed_at":0}},{{"kind":"value","demand":0,"observed_at":0}}],"workers":{{"requested":1,"ready":1}}}}
{{"record":"tick","at":1000,"pool":"a","signals":[{{"kind":"missing","since":900,"fault":"timeout"}},{{"kind":"missing","since":900,"fault":"timeout"}}],"workers":{{"requested":1,"ready":1}}}}
{{"record":"tick","at":2000,"pool":"a","signals":[{{"kind":"value","demand":0,"observed_at":2000}},{{"kind":"value","demand":0,"observed_at":2000}}],"workers":{{"requested":1,"ready":1}}}}
"#,
            pool("a"),
            pool("b")
        );
        let workload = workload_from_text(&text, "r.jsonl", Some("a")).unwrap();
        assert_eq!(
            workload.jobs.len(),
            3,
            "max(3/2, 1/1) workers = 1.5 × 2 units = 3 levels"
        );
        assert!(
            workload.jobs.iter().all(|job| job.runtime_ms == 2000),
            "held through the missing tick"
        );
        let e = workload_from_text(&text, "r.jsonl", Some("zz"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no pool `zz` in the recording (it has: a, b)"),
            "{e}"
        );
        let none = text.replace(
            r#""kind":"value","demand":9"#,
            r#""kind":"missing","since":0,"fault":"timeout""#,
        );
        let none = none.replace(
            r#"{"kind":"value","demand":0,"observed_at":0}],"workers":{"requested":1,"ready":1}}
{"record":"tick","at":1000"#,
            r#"{"kind":"missing","since":0,"fault":"timeout"}],"workers":{"requested":1,"ready":1}}
{"record":"tick","at":1000"#,
        );
        let e = workload_from_text(&none, "r.jsonl", Some("b"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not one good reading"), "{e}");
    }

    #[test]
    fn a_signal_without_any_reading_is_warned_about() {
        let text = r#"{"record":"header","format":"poolpilot-recording","version":2,"started_at":0,"pools":[{"name":"p","mode":"enforce","price_per_worker_hour":1.0,"boot_time":"1m","signals":[{"kind":"spark","per_worker":1.0},{"kind":"trino","per_worker":1.0}],"policy":{}}]}
{"record":"tick","at":0,"pool":"p","signals":[{"kind":"value","demand":2,"observed_at":0},{"kind":"missing","since":0,"fault":"auth"}],"workers":{"requested":1,"ready":1}}
{"record":"tick","at":1000,"pool":"p","signals":[{"kind":"value","demand":0,"observed_at":1000},{"kind":"missing","since":0,"fault":"auth"}],"workers":{"requested":1,"ready":1}}
"#;
        let (workload, warnings) = pool_workload_from_text(text, "r.jsonl", None).unwrap();
        assert_eq!(workload.jobs.len(), 2);
        assert_eq!(
            warnings,
            [
                "r.jsonl: pool `p` signal 1 (trino) has no good reading in 2 ticks; the replay uses the other signals"
            ]
        );
    }
}
