//! One scenario, end to end: load the workload, replay every policy and baseline on the same
//! jobs and pool, solve the oracle, and measure everything the same way.

use std::io::IsTerminal;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use super::autoscaler::{
    Autoscaler, EngineAutoscaler, HPA_SYNC_MS, KedaAutoscaler, StaticAutoscaler,
};
use super::metrics;
use super::oracle;
use super::pool::PoolConfig;
use super::pool::workers::JobModel;
use super::removal;
use super::report::{CONVENTIONS, Header, Report, Row, RowInputs, RowKind, attribution};
use super::run::{Actuation, Clock, GIVE_UP_AFTER_LAST_ARRIVAL_MS, RunResult, replay_with};
use super::scenario::{Baseline, LoadedScenario};
use super::timeline::Timeline;
use super::trace::{self, ReadOptions, TraceFormat, Workload, to_centi};
use crate::engine::PoolRules;

/// A finished experiment: the report plus each row's curves and actuations (for `--out` and
/// golden timelines), in row order.
pub struct Experiment {
    pub report: Report,
    pub timelines: Vec<Timeline>,
    pub actuations: Vec<Vec<Actuation>>,
}

/// Loads the scenario's workload (trace or generator), first `max_jobs` only if set.
pub fn load_workload(loaded: &LoadedScenario) -> anyhow::Result<Workload> {
    let spec = &loaded.scenario.workload;
    let mut workload = match (&spec.generate, &spec.trace) {
        (Some(generator), _) => trace::generate::generate(generator)?,
        (None, Some(trace_spec)) => {
            let path = loaded.resolve(&trace_spec.path);
            let format = trace_spec
                .format
                .or_else(|| TraceFormat::from_path(&path))
                .with_context(|| {
                    format!(
                        "cannot tell the format of {}; set trace.format",
                        path.display()
                    )
                })?;
            let options = ReadOptions {
                kappa: trace_spec.kappa.unwrap_or(1.0),
                pool: trace_spec.pool.clone(),
            };
            trace::read_trace(&path, format, options)?
        }
        (None, None) => anyhow::bail!("workload: give exactly one of `generate` or `trace`"),
    };
    if let Some(max) = spec.max_jobs {
        workload.jobs.truncate(max);
    }
    Ok(workload)
}

/// Most controller ticks one replay row may take: about 1.5 years at a 10 s tick. A replay
/// visits every tick, so this, with the trace's job limit, bounds a simulation's cost by the
/// trace's size rather than by how far apart its timestamps are.
pub const MAX_REPLAY_TICKS: i64 = 5_000_000;

/// Refuses a workload whose replay would take more than [`MAX_REPLAY_TICKS`]: from the first
/// arrival to the last, plus the time a replay waits for the last jobs to finish.
pub fn check_replay_ticks(workload: &Workload, tick: std::time::Duration) -> anyhow::Result<()> {
    let (Some(first), Some(last)) = (workload.jobs.first(), workload.jobs.last()) else {
        return Ok(());
    };
    let span_ms = (last.arrival.0 - first.arrival.0).saturating_add(GIVE_UP_AFTER_LAST_ARRIVAL_MS);
    let period_ms = (tick.as_millis() as i64).clamp(1, HPA_SYNC_MS);
    let ticks = span_ms / period_ms;
    anyhow::ensure!(
        ticks <= MAX_REPLAY_TICKS,
        "{}: the jobs arrive over {} (plus up to 30 days to finish): {ticks} ticks of {}, more \
         than the {MAX_REPLAY_TICKS} a replay allows; replay part of it (`max_jobs`) or use a \
         longer tick",
        workload.source,
        humantime::format_duration(std::time::Duration::from_secs(
            ((last.arrival.0 - first.arrival.0) / 1000).max(0) as u64
        )),
        humantime::format_duration(std::time::Duration::from_millis(period_ms as u64)),
    );
    Ok(())
}

/// Runs the whole scenario. `progress`: draw bars (only ever on a terminal).
pub fn run(loaded: &LoadedScenario, progress: bool) -> anyhow::Result<Experiment> {
    run_with(loaded, progress, Clock::SkipQuiet)
}

/// [`run`] with a chosen replay clock (tests compare both).
pub fn run_with(
    loaded: &LoadedScenario,
    progress: bool,
    clock: Clock,
) -> anyhow::Result<Experiment> {
    let policies = loaded.load_policies()?;
    let workload = load_workload(loaded)?;
    run_on(loaded, policies, workload, progress, clock)
}

/// [`run`] on policies and a workload the caller already has (a recording's pools).
pub fn run_on(
    loaded: &LoadedScenario,
    policies: Vec<crate::policy::Policy>,
    workload: Workload,
    progress: bool,
    clock: Clock,
) -> anyhow::Result<Experiment> {
    check_replay_ticks(&workload, loaded.scenario.tick)?;
    let stage = Stage::new(loaded, &policies, workload);
    let mut controllers: Vec<Entry> = Vec::new();
    for policy in &policies {
        let (controller, removal) = stage.policy_row(policy);
        let name = unique_name(policy.name(), &controllers);
        controllers.push((name, RowKind::Policy, Box::new(controller), removal));
    }
    controllers.extend(stage.baseline_rows(&loaded.scenario.baselines));

    let workload = &stage.workload;
    let span_s = match (workload.jobs.first(), workload.jobs.last()) {
        (Some(first), Some(last)) => ((last.arrival.0 - first.arrival.0) / 1000).max(1) as u64,
        _ => 1,
    };
    let show = progress && std::io::stderr().is_terminal();
    let mut rows = Vec::new();
    let mut timelines = Vec::new();
    let mut actuations = Vec::new();
    for (name, kind, mut controller, removal) in controllers {
        let bar = if show {
            bar(span_s, &name)
        } else {
            ProgressBar::hidden()
        };
        let (row, result) = stage.replay(name, kind, controller.as_mut(), removal, clock, &bar);
        bar.finish_and_clear();
        rows.push(row);
        timelines.push(result.timeline);
        actuations.push(result.actuations);
    }
    if loaded.scenario.baselines.contains(&Baseline::Oracle) {
        for (row, timeline) in stage.oracle_rows() {
            rows.push(row);
            timelines.push(timeline);
            actuations.push(Vec::new());
        }
    }
    Ok(Experiment {
        report: Report {
            header: stage.header(loaded),
            attribution: attribution(&rows),
            rows,
        },
        timelines,
        actuations,
    })
}

/// A scenario's pool with its workload, ready to replay rows on: the same pool model, prices,
/// oracle and baselines for every row (and for every variant `tune` tries).
pub struct Stage {
    pub workload: Workload,
    config: PoolConfig,
    engine: removal::Engine,
    worker_capacity: f64,
    max_workers: u32,
    capped: u64,
    tick_ms: i64,
    price: f64,
    baseline_settings: super::scenario::BaselineSettings,
    solved: oracle::OracleResult,
    oracle_hours: f64,
}

impl Stage {
    /// Prepares the scenario's pool for `workload`; `max_workers` defaults to the largest
    /// policy maximum (else the oracle's peak), and job widths are capped to it.
    pub fn new(
        loaded: &LoadedScenario,
        policies: &[crate::policy::Policy],
        mut workload: Workload,
    ) -> Stage {
        let scenario = &loaded.scenario;
        let pool_spec = &scenario.pool;
        let capacity = to_centi(pool_spec.worker_capacity).max(1);
        let config = PoolConfig {
            capacity,
            boot_ms: pool_spec.boot_time.as_millis() as i64,
            model: pool_spec.job_model,
            billing: pool_spec.billing,
            kill: pool_spec.engine.kill(),
        };
        let max_workers = match pool_spec
            .max_workers
            .or_else(|| policies.iter().map(|p| p.spec.bounds.max).max())
        {
            Some(max) => max,
            None => peak_workers(&oracle::solve(&workload.jobs, capacity, 0).timeline),
        }
        .max(1);
        let capped = workload.cap_widths(
            capacity * u64::from(max_workers),
            pool_spec.job_model == JobModel::Moldable,
        );
        let solved = oracle::solve(&workload.jobs, capacity, config.boot_ms);
        Stage {
            oracle_hours: solved.worker_hours(),
            solved,
            workload,
            config,
            engine: pool_spec.engine,
            worker_capacity: pool_spec.worker_capacity,
            max_workers,
            capped,
            tick_ms: scenario.tick.as_millis() as i64,
            price: pool_spec.price_per_worker_hour,
            baseline_settings: scenario.baseline_settings.clone(),
        }
    }

    /// The engine with `policy`, and how it removes workers (text).
    pub fn policy_row(&self, policy: &crate::policy::Policy) -> (EngineAutoscaler, String) {
        let controller = EngineAutoscaler::new(policy, self.tick_ms);
        let text = removal::describe(controller.scale_down(), self.engine.kill());
        (controller, text)
    }

    /// The replayed baselines among `baselines` (the oracle is a bound, not a replay).
    pub fn baseline_rows(&self, baselines: &[Baseline]) -> Vec<Entry> {
        let engine = self.engine;
        let per_worker = self.worker_capacity;
        let max_workers = self.max_workers;
        let tick_ms = self.tick_ms;
        let stock = engine.stock(self.baseline_settings.termination_grace);
        let idle_first = engine.idle_first();
        let describe = |down| removal::describe(down, engine.kill());
        let concurrency = self
            .baseline_settings
            .keda_concurrency
            .unwrap_or(per_worker);
        let hpa = |down| {
            let policy = PoolRules::hpa("hpa", per_worker, 1, max_workers);
            Box::new(EngineAutoscaler::with_scale_down(policy, HPA_SYNC_MS, down))
        };
        let mut rows: Vec<Entry> = Vec::new();
        for baseline in baselines {
            let (controller, text): (Box<dyn Autoscaler>, String) = match baseline {
                Baseline::Oracle => continue,
                Baseline::StaticPeak => {
                    let peak = peak_workers(&self.solved.timeline).min(max_workers);
                    let controller = StaticAutoscaler {
                        workers: peak,
                        period_ms: tick_ms,
                    };
                    (Box::new(controller), "never removes".into())
                }
                Baseline::Hpa => (hpa(stock), describe(stock)),
                Baseline::HpaIdleFirst => (hpa(idle_first), describe(idle_first)),
                Baseline::KedaAirflowChart => (
                    Box::new(KedaAutoscaler::new(concurrency, max_workers, stock)),
                    describe(stock),
                ),
                Baseline::KedaIdleFirst => (
                    Box::new(KedaAutoscaler::new(concurrency, max_workers, idle_first)),
                    describe(idle_first),
                ),
            };
            let text = match baseline {
                Baseline::Hpa | Baseline::KedaAirflowChart => {
                    format!("{} stock: {text}", engine.name())
                }
                _ => text,
            };
            rows.push((
                baseline.name().to_string(),
                RowKind::Baseline,
                controller,
                text,
            ));
        }
        rows
    }

    /// Replays one row and measures it.
    pub fn replay(
        &self,
        name: String,
        kind: RowKind,
        controller: &mut dyn Autoscaler,
        removal: String,
        clock: Clock,
        bar: &ProgressBar,
    ) -> (Row, RunResult) {
        let result = replay_with(&self.workload.jobs, self.config, controller, bar, clock);
        let inputs = RowInputs {
            name,
            kind,
            accounted_hours: result.totals.ledger.accounted_hours(),
            charged_hours: result.totals.ledger.charged_hours(),
            price_per_worker_hour: self.price,
            oracle_hours: self.oracle_hours,
            jobs: metrics::job_stats(&result.totals.outcomes),
            pool: metrics::pool_stats(&result.timeline, self.worker_capacity),
            elasticity: metrics::elasticity(&result.timeline, self.tick_ms),
            scale_ups: result.scale_ups(),
            scale_downs: result.scale_downs(),
            launches: result.totals.ledger.launches,
            unfinished: result.totals.unfinished,
            restarts: result.totals.restarts,
            work_lost_worker_hours: result.totals.work_lost_worker_hours,
            removal,
        };
        (inputs.finish(), result)
    }

    /// The oracle's rows (and the max-capped bound when max binds) with their curves.
    pub fn oracle_rows(&self) -> Vec<(Row, Timeline)> {
        let bound = OracleBound {
            workload: &self.workload,
            price: self.price,
            capacity: self.worker_capacity,
            tick_ms: self.tick_ms,
            oracle_hours: self.oracle_hours,
        };
        let mut rows = vec![(
            bound.row(
                "oracle",
                &self.solved,
                "none: fluid lower bound OPT(B), zero wait; no max, no packing, no billing minimum"
                    .into(),
            ),
            self.solved.timeline.clone(),
        )];
        let capacity = self.config.capacity;
        if let Some(capped) = oracle::solve_capped(
            &self.workload.jobs,
            capacity,
            self.config.boot_ms,
            self.max_workers,
        ) {
            let text = format!(
                "none: fluid bound within max {} workers (excess deferred); \
                 no waits, packing or billing minimum",
                self.max_workers
            );
            rows.push((bound.row("oracle-capped", &capped, text), capped.timeline));
        }
        rows
    }

    pub fn header(&self, loaded: &LoadedScenario) -> Header {
        let pool_spec = &loaded.scenario.pool;
        let workload = &self.workload;
        Header {
            scenario: loaded.name.clone(),
            workload: workload.source.clone(),
            trace_sha256: workload.sha256.clone(),
            jobs: workload.jobs.len(),
            records: workload.records,
            dropped_records: workload.dropped,
            capped_jobs: self.capped,
            engine: self.engine.name().to_string(),
            worker_capacity: self.worker_capacity,
            boot_time_s: pool_spec.boot_time.as_secs_f64(),
            max_workers: self.max_workers,
            job_model: format!("{:?}", pool_spec.job_model).to_lowercase(),
            billing: pool_spec.billing.describe(),
            price_per_worker_hour: self.price,
            tick_s: self.tick_ms as f64 / 1000.0,
            conventions: CONVENTIONS,
        }
    }
}

/// A row to replay: name, kind, what sizes it, how it removes workers (text).
pub type Entry = (String, RowKind, Box<dyn Autoscaler>, String);

fn unique_name(name: &str, taken: &[Entry]) -> String {
    let mut candidate = name.to_string();
    let mut n = 2;
    while taken.iter().any(|(existing, ..)| *existing == candidate) {
        candidate = format!("{name}-{n}");
        n += 1;
    }
    candidate
}

fn peak_workers(timeline: &Timeline) -> u32 {
    timeline
        .samples
        .iter()
        .map(|s| s.demand_workers)
        .max()
        .unwrap_or(1)
        .max(1)
}

/// What an oracle row needs besides its solution.
struct OracleBound<'a> {
    workload: &'a Workload,
    price: f64,
    capacity: f64,
    tick_ms: i64,
    /// OPT(B), the denominator of every row's `cost_vs_oracle`.
    oracle_hours: f64,
}

impl OracleBound<'_> {
    /// A bound's row: zero wait by construction, x(t) as supply.
    fn row(&self, name: &str, solved: &oracle::OracleResult, removal: String) -> Row {
        let outcomes: Vec<_> = self
            .workload
            .jobs
            .iter()
            .map(|job| super::pool::JobOutcome {
                wait_ms: 0,
                runtime_ms: job.runtime_ms,
            })
            .collect();
        let samples = &solved.timeline.samples;
        let ups = samples
            .windows(2)
            .filter(|w| w[1].billed_workers > w[0].billed_workers)
            .count();
        let downs = samples
            .windows(2)
            .filter(|w| w[1].billed_workers < w[0].billed_workers)
            .count();
        let hours = solved.worker_hours();
        RowInputs {
            name: name.into(),
            kind: RowKind::Oracle,
            accounted_hours: hours,
            charged_hours: hours,
            price_per_worker_hour: self.price,
            oracle_hours: self.oracle_hours,
            jobs: metrics::job_stats(&outcomes),
            pool: metrics::pool_stats(&solved.timeline, self.capacity),
            elasticity: metrics::elasticity(&solved.timeline, self.tick_ms),
            scale_ups: ups,
            scale_downs: downs,
            launches: solved.launches,
            unfinished: 0,
            restarts: 0,
            work_lost_worker_hours: 0.0,
            removal,
        }
        .finish()
    }
}

fn bar(span_s: u64, name: &str) -> ProgressBar {
    let bar = ProgressBar::new(span_s);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>20} [{bar:40}] {percent:>3}% simulated, eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(name.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::trace::Job;
    use crate::time::Timestamp;

    #[test]
    fn a_replay_costs_what_the_trace_spans_at_most() {
        let job = |secs: i64| Job {
            arrival: Timestamp::from_secs(secs),
            width: 100,
            runtime_ms: 1000,
        };
        let tick = std::time::Duration::from_secs(10);
        let year = 366 * 86_400;
        let one_year = Workload::new(vec![job(0), job(year)], "a.swf".into());
        assert!(check_replay_ticks(&one_year, tick).is_ok());
        let nine_years = Workload::new(vec![job(0), job(9 * year)], "b.swf".into());
        let error = check_replay_ticks(&nine_years, tick)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("b.swf") && error.contains("max_jobs"),
            "{error}"
        );
    }
}
