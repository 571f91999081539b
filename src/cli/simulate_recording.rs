//! `poolpilot simulate --trace REC --trace-format recording`: every pool of a daemon recording
//! replayed with the price, per-worker capacity, boot time and policy the daemon ran (a
//! `--policy` replaces the pool of the same name), or, with `--check-decisions`, every
//! recorded decision checked against the engine.

use std::path::Path;

use super::simulate::{OutputFormat, SimulateArgs, from_trace};
use crate::policy::{self, Policy};
use crate::sim::recording::{self, RecordLine, RecordedPool, Recording};
use crate::sim::run::Clock;
use crate::sim::{experiment, parity, plot, trace};

/// Mismatches shown in full; the rest are counted.
const SHOWN_MISMATCHES: usize = 5;

pub fn run(args: &SimulateArgs, path: &Path) -> anyhow::Result<i32> {
    let origin = path.display().to_string();
    let text = trace::read_text(path)?;
    let rec = recording::parse(&text, &origin)?;
    for warning in &rec.warnings {
        eprintln!("warning: {warning}");
    }
    if args.check_decisions {
        anyhow::ensure!(
            args.pool.is_none() && args.policies.is_empty(),
            "--check-decisions replays every pool with its recorded policy; drop --pool and --policy"
        );
        return check(&rec, &origin);
    }
    if let Some(capacity) = args.worker_capacity {
        anyhow::ensure!(capacity > 0.0, "--worker-capacity must be > 0");
    }
    let pools = rec.pools();
    let names = || {
        pools
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut overrides: Vec<Policy> = Vec::new();
    for file in &args.policies {
        let p = policy::load_file(file).map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(
            pools.iter().any(|r| r.name == p.name()),
            "{}: pool `{}` is not in {origin} (it has: {}); a --policy replaces the recorded pool of the same name",
            file.display(),
            p.name(),
            names()
        );
        overrides.push(p);
    }
    let selected: Vec<&RecordedPool> = match &args.pool {
        Some(name) => vec![*pools.iter().find(|p| &p.name == name).ok_or_else(|| {
            anyhow::anyhow!(
                "--pool {name}: no such pool in {origin} (it has: {})",
                names()
            )
        })?],
        None => pools.clone(),
    };
    let mut reports = Vec::new();
    let mut skipped = 0;
    for pool in selected {
        let workload = match trace::recording::pool_workload(&rec, pool, &origin) {
            Ok((w, warnings)) => {
                for warning in warnings {
                    eprintln!("warning: {warning}");
                }
                w
            }
            Err(e) => {
                eprintln!("pool {}: skipped: {e}", pool.name);
                skipped += 1;
                continue;
            }
        };
        let policy = match overrides.iter().find(|p| p.name() == pool.name) {
            Some(p) => p.clone(),
            None => pool.load_policy(&origin)?,
        };
        let mut loaded = pool_scenario(path, &rec, pool, args.baselines.clone());
        let s = &mut loaded.scenario;
        if let Some(capacity) = args.worker_capacity {
            s.pool.worker_capacity = capacity;
        }
        if let Some(boot) = args.boot_time {
            s.pool.boot_time = boot;
        }
        if let Some(price) = args.price_per_worker_hour {
            s.pool.price_per_worker_hour = price;
        }
        s.pool.max_workers = args.max_workers;
        if let Some(model) = args.job_model {
            s.pool.job_model = model;
        }
        if let Some(tick) = args.tick {
            s.tick = tick;
        }
        let heading = format!(
            "== pool {} ({}): {} units/worker, boot {}, {}/worker-hour, tick {}",
            pool.name,
            pool.mode.as_str(),
            s.pool.worker_capacity,
            humantime::format_duration(s.pool.boot_time),
            s.pool.price_per_worker_hour,
            humantime::format_duration(s.tick),
        );
        let experiment = experiment::run_on(
            &loaded,
            vec![policy],
            workload,
            !args.no_progress,
            Clock::SkipQuiet,
        )?;
        if let Some(dir) = &args.out {
            plot::write_outputs(&dir.join(&pool.name), &experiment)?;
        }
        reports.push((pool.name.clone(), heading, experiment.report));
    }
    anyhow::ensure!(
        !reports.is_empty(),
        "{origin}: no pool could be replayed ({skipped} skipped, see above)"
    );
    match args.format {
        OutputFormat::Table => {
            for (_, heading, report) in &reports {
                outln!("{heading}");
                out!("{}", report.table(args.wide));
                outln!();
            }
        }
        OutputFormat::Json => {
            let pools: Vec<serde_json::Value> = reports
                .iter()
                .map(|(name, _, report)| serde_json::json!({ "pool": name, "report": report.to_json() }))
                .collect();
            let doc = serde_json::json!({ "recording": origin, "pools": pools });
            outln!("{}", serde_json::to_string_pretty(&doc)?);
        }
    }
    Ok(0)
}

fn check(rec: &Recording, origin: &str) -> anyhow::Result<i32> {
    let report = parity::check(rec, origin)?;
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    outln!("{}", report.summary());
    for m in report.mismatches.iter().take(SHOWN_MISMATCHES) {
        outln!("{}", parity::describe(m, origin));
    }
    if report.mismatches.len() > SHOWN_MISMATCHES {
        outln!(
            "... and {} more",
            report.mismatches.len() - SHOWN_MISMATCHES
        );
    }
    Ok(if report.mismatches.is_empty() { 0 } else { 1 })
}

/// One recorded pool as a scenario: its recorded capacity (the first signal's `per_worker`),
/// boot time, price and tick (`tune` replays recordings through this too).
pub(super) fn pool_scenario(
    path: &Path,
    rec: &Recording,
    pool: &RecordedPool,
    baselines: Option<Vec<crate::sim::scenario::Baseline>>,
) -> crate::sim::scenario::LoadedScenario {
    let mut loaded = from_trace(path, baselines);
    loaded.name = format!("{} / {}", loaded.name, pool.name);
    let s = &mut loaded.scenario;
    s.pool.worker_capacity = pool.signals[0].per_worker;
    s.pool.boot_time = pool.boot_time;
    s.pool.price_per_worker_hour = pool.price_per_worker_hour;
    s.tick = tick_of(rec, &pool.name);
    loaded
}

/// The daemon's tick, as the median gap between a pool's recorded ticks (10 s when unknown).
fn tick_of(rec: &Recording, pool: &str) -> std::time::Duration {
    let times: Vec<i64> = rec
        .lines
        .iter()
        .filter_map(|(_, l)| match l {
            RecordLine::Tick(t) if t.pool == pool => Some(t.at.0),
            _ => None,
        })
        .collect();
    let mut gaps: Vec<i64> = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|g| *g > 0)
        .collect();
    gaps.sort_unstable();
    let median = gaps.get(gaps.len() / 2).copied().unwrap_or(10_000);
    std::time::Duration::from_millis(median.max(1) as u64)
}
