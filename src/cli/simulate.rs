//! `poolpilot simulate`: replay a workload through the engine and compare with baselines.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::sim::expect;
use crate::sim::experiment;
use crate::sim::plot;
use crate::sim::pool::workers::JobModel;
use crate::sim::removal::Engine;
use crate::sim::scenario::{
    self, Baseline, LoadedScenario, PoolSpec, Scenario, TraceSpec, WorkloadSpec,
};
use crate::sim::trace::TraceFormat;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Scenario YAML, or `builtin:trino` (the default when neither a scenario nor --trace is given).
    pub scenario: Option<String>,
    /// Same as the positional SCENARIO.
    #[arg(
        long = "scenario",
        value_name = "SCENARIO",
        conflicts_with = "scenario"
    )]
    pub scenario_option: Option<String>,
    /// Policy files under test (replace the scenario's).
    #[arg(long = "policy", value_name = "FILE")]
    pub policies: Vec<PathBuf>,
    /// `table` (one row per policy and baseline) or `json` (the whole report).
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
    /// Table: every column (waits, elasticity), not only the ones that fit 120 columns.
    #[arg(long)]
    pub wide: bool,
    /// The engine the workers run, which decides how baselines remove them (default: the
    /// scenario's; `generic` without a scenario).
    #[arg(long, value_enum)]
    pub engine: Option<Engine>,
    /// Also write timeline.csv, plot.svg and report.json here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replay this trace instead of the scenario's workload.
    #[arg(long, value_name = "PATH")]
    pub trace: Option<PathBuf>,
    /// Format of --trace (guessed from the file name when absent).
    #[arg(long, value_enum)]
    pub trace_format: Option<TraceFormat>,
    /// Demand units per worker (default 1 without a scenario).
    #[arg(long, value_name = "N")]
    pub worker_capacity: Option<f64>,
    /// Worker boot delay, e.g. `90s` (default 60s without a scenario).
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    pub boot_time: Option<Duration>,
    /// Price of one worker for one hour, for the cost columns (default 0 without a scenario).
    #[arg(long, value_name = "X")]
    pub price_per_worker_hour: Option<f64>,
    /// The policies' decision period, e.g. `10s`.
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    pub tick: Option<Duration>,
    /// How a job uses workers: `slot`, `gang` or `moldable` (default: the scenario's, `slot`).
    #[arg(long, value_enum)]
    pub job_model: Option<JobModel>,
    /// Physical cap of the pool, also the baselines' max (default: the policies' largest max).
    #[arg(long, value_name = "N")]
    pub max_workers: Option<u32>,
    /// Baselines to run (comma-separated); default: the scenario's, or all.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub baselines: Option<Vec<Baseline>>,
    /// Replay only the first N jobs.
    #[arg(long, value_name = "N")]
    pub max_jobs: Option<usize>,
    /// Exit with 1 when the scenario's `expect:` ranges or `expect_beats:` do not hold.
    #[arg(long)]
    pub check: bool,
    /// Never draw progress bars (they are only drawn on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
    /// Recording: replay only this pool (default: every pool in the recording).
    #[arg(long, value_name = "NAME")]
    pub pool: Option<String>,
    /// Recording: replay the recorded observations through the engine and compare every
    /// tick's decision with the recorded one; exit 1 on any mismatch.
    #[arg(long)]
    pub check_decisions: bool,
}

/// Runs the command; the exit code is 1 only for failed `--check` expectations.
/// The recording to replay when the command names one (`--trace` of format recording, and no
/// scenario): the CLI hands that to `simulate_recording`.
pub fn recording_of(args: &SimulateArgs) -> Option<&Path> {
    let scenario_given = args.scenario.is_some() || args.scenario_option.is_some();
    let trace = args.trace.as_deref()?;
    let format = args.trace_format.or_else(|| TraceFormat::from_path(trace));
    (!scenario_given && format == Some(TraceFormat::Recording)).then_some(trace)
}

pub fn run(args: SimulateArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(
        !args.check_decisions && args.pool.is_none(),
        "--check-decisions and --pool need a recording: --trace FILE --trace-format recording"
    );
    let loaded = scenario_for(&args)?;
    let experiment = experiment::run(&loaded, !args.no_progress)?;
    match args.format {
        OutputFormat::Table => out!("{}", experiment.report.table(args.wide)),
        OutputFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&experiment.report.to_json())?
        ),
    }
    if let Some(dir) = &args.out {
        plot::write_outputs(dir, &experiment)?;
        eprintln!(
            "wrote {}/timeline.csv, plot.svg, report.json",
            dir.display()
        );
    }
    if args.check {
        let failures = expect::failures(&loaded.scenario, &experiment.report);
        for failure in &failures {
            eprintln!("expectation failed: {failure}");
        }
        if !failures.is_empty() {
            return Ok(1);
        }
    }
    Ok(0)
}

/// The scenario named on the command line (or the built-in one, or one made from --trace),
/// with every override applied.
pub fn scenario_for(args: &SimulateArgs) -> anyhow::Result<LoadedScenario> {
    let name = args.scenario.as_ref().or(args.scenario_option.as_ref());
    let mut loaded = match (name, &args.trace) {
        (Some(name), _) => match name.strip_prefix("builtin:") {
            Some(builtin) => scenario::builtin(builtin)?,
            None => scenario::load_file(Path::new(name))?,
        },
        (None, Some(trace)) => from_trace(trace, args.baselines.clone()),
        (None, None) => scenario::builtin("trino")?,
    };
    let s = &mut loaded.scenario;
    if let Some(trace) = &args.trace {
        let path =
            std::path::absolute(trace).with_context(|| format!("resolving {}", trace.display()))?;
        s.workload = WorkloadSpec {
            generate: None,
            trace: Some(TraceSpec {
                path,
                format: args.trace_format,
                kappa: None,
                pool: None,
            }),
            max_jobs: s.workload.max_jobs,
        };
        s.golden = false;
    } else if let (Some(format), Some(trace)) = (args.trace_format, s.workload.trace.as_mut()) {
        trace.format = Some(format);
    }
    if !args.policies.is_empty() {
        let absolute: anyhow::Result<Vec<PathBuf>> = args
            .policies
            .iter()
            .map(|p| std::path::absolute(p).with_context(|| p.display().to_string()))
            .collect();
        s.policies = absolute?;
        loaded.embedded_policies.clear();
    }
    let pool = &mut s.pool;
    if let Some(engine) = args.engine {
        pool.engine = engine;
    }
    if let Some(capacity) = args.worker_capacity {
        anyhow::ensure!(capacity > 0.0, "--worker-capacity must be > 0");
        pool.worker_capacity = capacity;
    }
    if let Some(boot) = args.boot_time {
        pool.boot_time = boot;
    }
    if let Some(price) = args.price_per_worker_hour {
        pool.price_per_worker_hour = price;
    }
    if let Some(model) = args.job_model {
        pool.job_model = model;
    }
    if args.max_workers.is_some() {
        pool.max_workers = args.max_workers;
    }
    if let Some(tick) = args.tick {
        anyhow::ensure!(!tick.is_zero(), "--tick must be longer than 0s");
        s.tick = tick;
    }
    if let Some(baselines) = &args.baselines {
        s.baselines = baselines.clone();
    }
    if args.max_jobs.is_some() {
        s.workload.max_jobs = args.max_jobs;
    }
    scenario::check_values(s).context("with the command-line options applied")?;
    Ok(loaded)
}

pub(super) fn from_trace(trace: &Path, baselines: Option<Vec<Baseline>>) -> LoadedScenario {
    let scenario = Scenario {
        name: None,
        description: None,
        workload: WorkloadSpec {
            generate: None,
            trace: None,
            max_jobs: None,
        },
        pool: PoolSpec {
            engine: Engine::Generic,
            worker_capacity: 1.0,
            job_model: JobModel::Slot,
            boot_time: Duration::from_secs(60),
            price_per_worker_hour: 0.0,
            billing: Default::default(),
            max_workers: None,
        },
        tick: Duration::from_secs(10),
        policies: Vec::new(),
        baselines: baselines.unwrap_or_else(scenario::all_baselines),
        baseline_settings: Default::default(),
        expect: Default::default(),
        expect_beats: Default::default(),
        golden: false,
    };
    let name = trace
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trace".into());
    LoadedScenario {
        scenario,
        name,
        base_dir: PathBuf::from("."),
        embedded_policies: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    fn parse(argv: &[&str]) -> SimulateArgs {
        Cli::try_parse_from(std::iter::once("simulate").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn no_arguments_means_the_builtin_trino_scenario() {
        let loaded = scenario_for(&parse(&[])).unwrap();
        assert_eq!(loaded.name, "trino-generated");
        assert_eq!(
            scenario_for(&parse(&["--scenario", "builtin:trino"]))
                .unwrap()
                .name,
            "trino-generated"
        );
    }

    #[test]
    fn overrides_apply_to_the_scenario() {
        let args = parse(&[
            "--worker-capacity",
            "8",
            "--boot-time",
            "3m",
            "--price-per-worker-hour",
            "1.5",
            "--tick",
            "30s",
            "--baselines",
            "oracle,hpa",
            "--max-jobs",
            "100",
            "--job-model",
            "gang",
            "--engine",
            "spark",
        ]);
        let s = scenario_for(&args).unwrap().scenario;
        assert_eq!(s.pool.worker_capacity, 8.0);
        assert_eq!(s.pool.boot_time, Duration::from_secs(180));
        assert_eq!(s.pool.price_per_worker_hour, 1.5);
        assert_eq!(s.tick, Duration::from_secs(30));
        assert_eq!(s.baselines, vec![Baseline::Oracle, Baseline::Hpa]);
        assert_eq!(s.workload.max_jobs, Some(100));
        assert_eq!(s.pool.job_model, JobModel::Gang);
        assert_eq!(s.pool.engine, Engine::Spark);
        let args = parse(&["--baselines", "hpa,hpa+idle-first,keda+idle-first"]);
        assert_eq!(
            scenario_for(&args).unwrap().scenario.baselines,
            vec![
                Baseline::Hpa,
                Baseline::HpaIdleFirst,
                Baseline::KedaIdleFirst
            ]
        );
    }

    #[test]
    fn a_trace_alone_makes_a_scenario() {
        let args = parse(&[
            "--trace",
            "some/LCG.swf.gz",
            "--trace-format",
            "swf",
            "--worker-capacity",
            "8",
        ]);
        let loaded = scenario_for(&args).unwrap();
        let trace = loaded.scenario.workload.trace.unwrap();
        assert!(trace.path.is_absolute() && trace.path.ends_with("some/LCG.swf.gz"));
        assert_eq!(trace.format, Some(TraceFormat::Swf));
        assert_eq!(loaded.scenario.pool.worker_capacity, 8.0);
        assert!(loaded.scenario.policies.is_empty());
    }
}
