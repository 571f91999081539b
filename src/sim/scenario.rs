//! Scenario files: what to replay, on which pool, against which policies and baselines, and
//! which results to expect (simulations/README.md documents every field).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::pool::billing::Billing;
use super::pool::workers::JobModel;
use super::removal::Engine;
use super::trace::TraceFormat;
use super::trace::generate::GeneratorSpec;
use crate::policy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Defaults to the file stem.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub workload: WorkloadSpec,
    pub pool: PoolSpec,
    /// The policies' decision period (the daemon's tick).
    #[serde(default = "default_tick", with = "humantime_serde")]
    pub tick: Duration,
    /// Policy files under test, relative to the scenario file.
    #[serde(default)]
    pub policies: Vec<PathBuf>,
    #[serde(default = "all_baselines")]
    pub baselines: Vec<Baseline>,
    #[serde(default)]
    pub baseline_settings: BaselineSettings,
    /// `row name → metric key → [low, high]` (inclusive), checked by `tests/simulations.rs`.
    #[serde(default)]
    pub expect: BTreeMap<String, BTreeMap<String, [f64; 2]>>,
    /// `row name → rows it must beat`: lower cost at an equal or lower p95 wait.
    #[serde(default)]
    pub expect_beats: BTreeMap<String, Vec<String>>,
    /// Compare the actuation timeline with `golden/<name>.csv`.
    #[serde(default)]
    pub golden: bool,
}

fn default_tick() -> Duration {
    Duration::from_secs(10)
}

/// Every baseline, in report order.
pub fn all_baselines() -> Vec<Baseline> {
    vec![
        Baseline::Hpa,
        Baseline::HpaIdleFirst,
        Baseline::KedaAirflowChart,
        Baseline::KedaIdleFirst,
        Baseline::StaticPeak,
        Baseline::Oracle,
    ]
}

/// Exactly one of `generate` or `trace`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    #[serde(default)]
    pub generate: Option<GeneratorSpec>,
    #[serde(default)]
    pub trace: Option<TraceSpec>,
    /// Replay only the first N jobs (by arrival).
    #[serde(default)]
    pub max_jobs: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSpec {
    /// Relative to the scenario file.
    pub path: PathBuf,
    /// Guessed from the file name when absent.
    #[serde(default)]
    pub format: Option<TraceFormat>,
    /// Alibaba: de-rating factor κ on task work (default 1).
    #[serde(default)]
    pub kappa: Option<f64>,
    /// Recording: which pool to replay (default: the first).
    #[serde(default)]
    pub pool: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// The engine the workers run: decides how the baselines remove them and what a killed
    /// worker's work loses (`sim::removal`).
    pub engine: Engine,
    /// Demand units one worker carries (cores, task slots, queries).
    pub worker_capacity: f64,
    #[serde(default)]
    pub job_model: JobModel,
    /// Launch request → ready; billed.
    #[serde(with = "humantime_serde")]
    pub boot_time: Duration,
    #[serde(default)]
    pub price_per_worker_hour: f64,
    #[serde(default)]
    pub billing: Billing,
    /// Physical cap of the pool (also the baselines' max). Default: the largest `bounds.max`
    /// of the policies, else the oracle's peak. Wider jobs are capped to it.
    #[serde(default)]
    pub max_workers: Option<u32>,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    Oracle,
    StaticPeak,
    /// HPA sizing, the engine's stock removal.
    Hpa,
    /// HPA sizing, poolpilot's removal (idle first, drained, nothing killed).
    #[serde(rename = "hpa+idle-first")]
    #[value(name = "hpa+idle-first")]
    HpaIdleFirst,
    /// KEDA + Airflow chart sizing, the engine's stock removal.
    KedaAirflowChart,
    /// KEDA + Airflow chart sizing, poolpilot's removal.
    #[serde(rename = "keda+idle-first")]
    #[value(name = "keda+idle-first")]
    KedaIdleFirst,
}

impl Baseline {
    pub fn name(self) -> &'static str {
        match self {
            Baseline::Oracle => "oracle",
            Baseline::StaticPeak => "static-peak",
            Baseline::Hpa => "hpa",
            Baseline::HpaIdleFirst => "hpa+idle-first",
            Baseline::KedaAirflowChart => "keda-airflow-chart",
            Baseline::KedaIdleFirst => "keda+idle-first",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineSettings {
    /// How long Kubernetes lets a removed pod finish before killing it, for engines whose
    /// workers keep running after SIGTERM (`celery`: default 600 s, the Airflow chart's;
    /// `generic`: 30 s, the pod spec default). Applies to `hpa` and `keda-airflow-chart`.
    #[serde(default, with = "humantime_serde")]
    pub termination_grace: Option<Duration>,
    /// KEDA query divisor (`worker_concurrency`); default: the worker capacity.
    #[serde(default)]
    pub keda_concurrency: Option<f64>,
}

/// A scenario plus where its relative paths point.
#[derive(Debug, Clone)]
pub struct LoadedScenario {
    pub scenario: Scenario,
    pub name: String,
    /// Directory relative paths are resolved against.
    pub base_dir: PathBuf,
    /// Policy texts by relative path, for built-in scenarios (no file system).
    pub embedded_policies: BTreeMap<PathBuf, &'static str>,
}

impl LoadedScenario {
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// Loads and validates the policies under test.
    pub fn load_policies(&self) -> anyhow::Result<Vec<policy::Policy>> {
        self.scenario
            .policies
            .iter()
            .map(|path| {
                let loaded = match self.embedded_policies.get(path) {
                    Some(text) => policy::load_str(text, &path.display().to_string()),
                    None => policy::load_file(&self.resolve(path)),
                };
                loaded.map_err(|errors| anyhow::anyhow!("{errors}"))
            })
            .collect()
    }
}

/// Parses scenario YAML; every error names the file, the field and its line and column.
pub fn parse(text: &str, origin: &str) -> anyhow::Result<Scenario> {
    let document = policy::yaml::parse(text).map_err(|error| {
        anyhow::anyhow!(
            "{origin}:{}:{}: {}",
            error.position.line,
            error.position.column,
            error.message
        )
    })?;
    let (scenario, mut errors) = policy::validate::deserialize_all::<Scenario>(&document, origin);
    if let Some(scenario) = &scenario {
        errors.extend(policy::validate::located(
            &document,
            origin,
            check(scenario),
        ));
    }
    match scenario {
        Some(scenario) if errors.is_empty() => Ok(scenario),
        _ => bail!("{}", policy::PolicyErrors(errors)),
    }
}

/// [`check`] for a scenario changed after parsing (command-line overrides): every problem,
/// by field, no position.
pub fn check_values(scenario: &Scenario) -> anyhow::Result<()> {
    let problems = check(scenario);
    if problems.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = problems
        .into_iter()
        .map(|(field, message, _)| format!("{field}: {message}"))
        .collect();
    bail!("{}", lines.join("\n"))
}

/// Semantic checks: (field, message, hint). Every number within a range a simulation can
/// mean, so no scenario makes a replay hang or exhaust memory.
fn check(scenario: &Scenario) -> Vec<(String, String, Option<String>)> {
    let mut out = Vec::new();
    let mut push = |field: &str, message: String| out.push((field.to_string(), message, None));
    match (&scenario.workload.generate, &scenario.workload.trace) {
        (Some(_), Some(_)) | (None, None) => push(
            "workload",
            "give exactly one of `generate` or `trace`".into(),
        ),
        (Some(generator), None) => {
            if let Err(why) = generator.validate() {
                push("workload.generate", format!("{why:#}"));
            }
        }
        (None, Some(trace)) => {
            if trace.kappa.is_some_and(|k| !(k > 0.0 && k <= 1.0)) {
                push("workload.trace.kappa", "must be in (0, 1]".into());
            }
        }
    }
    let (second, hour, day) = (
        Duration::from_secs(1),
        Duration::from_secs(3600),
        Duration::from_secs(86_400),
    );
    if scenario.tick < second || scenario.tick > hour {
        push("tick", "must be from 1s to 1h".into());
    }
    let pool = &scenario.pool;
    if !(pool.worker_capacity > 0.0 && pool.worker_capacity <= 1e6) {
        push(
            "pool.worker_capacity",
            "must be a number > 0 and at most 1e6".into(),
        );
    }
    if pool.boot_time > day {
        push("pool.boot_time", "must be at most 1 day".into());
    }
    if !(pool.price_per_worker_hour >= 0.0 && pool.price_per_worker_hour <= 1e9) {
        push(
            "pool.price_per_worker_hour",
            "must be a number from 0 to 1e9".into(),
        );
    }
    if pool
        .max_workers
        .is_some_and(|m| m == 0 || m > policy::ranges::MAX_WORKERS)
    {
        push(
            "pool.max_workers",
            format!("must be from 1 to {}", policy::ranges::MAX_WORKERS),
        );
    }
    let settings = &scenario.baseline_settings;
    if settings.termination_grace.is_some_and(|g| g > day) {
        push(
            "baseline_settings.termination_grace",
            "must be at most 1 day".into(),
        );
    }
    if settings
        .keda_concurrency
        .is_some_and(|c| !(c > 0.0 && c <= 1e6))
    {
        push(
            "baseline_settings.keda_concurrency",
            "must be a number > 0 and at most 1e6".into(),
        );
    }
    for (row, metrics) in &scenario.expect {
        for (metric, [low, high]) in metrics {
            if !(low.is_finite() && high.is_finite() && low <= high) {
                push(
                    &format!("expect.{row}.{metric}"),
                    format!("[{low}, {high}] is not a range (low <= high, both finite)"),
                );
            }
        }
    }
    if scenario.policies.is_empty() && scenario.baselines.is_empty() {
        push(
            "baselines",
            "nothing to simulate: no policies and no baselines".into(),
        );
    }
    out
}

/// Reads a scenario file.
pub fn load_file(path: &Path) -> anyhow::Result<LoadedScenario> {
    let text = policy::yaml::read_file(path)
        .map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))?;
    let scenario = parse(&text, &path.display().to_string())?;
    let name = scenario.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(LoadedScenario {
        scenario,
        name,
        base_dir,
        embedded_policies: BTreeMap::new(),
    })
}

/// The scenario `poolpilot simulate` runs with no arguments: needs nothing outside the binary.
pub const BUILTIN_TRINO: &str = include_str!("../../simulations/trino-generated.yaml");
const BUILTIN_TRINO_POLICY_PATH: &str = "policies/trino-sim.yaml";
const BUILTIN_TRINO_POLICY: &str = include_str!("../../simulations/policies/trino-sim.yaml");

/// `builtin:trino`.
pub fn builtin(name: &str) -> anyhow::Result<LoadedScenario> {
    match name {
        "trino" => {
            let scenario = parse(BUILTIN_TRINO, "builtin:trino")?;
            let embedded = BTreeMap::from([(
                PathBuf::from(BUILTIN_TRINO_POLICY_PATH),
                BUILTIN_TRINO_POLICY,
            )]);
            anyhow::ensure!(
                scenario.policies.iter().all(|p| embedded.contains_key(p)),
                "builtin:trino names a policy that is not embedded"
            );
            Ok(LoadedScenario {
                name: scenario
                    .name
                    .clone()
                    .unwrap_or_else(|| "trino-generated".into()),
                scenario,
                base_dir: PathBuf::from("."),
                embedded_policies: embedded,
            })
        }
        other => bail!("unknown built-in scenario {other:?} (known: trino)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "\
workload:
  trace: { path: ../x.swf }
pool: { engine: generic, worker_capacity: 4, boot_time: 60s }
";

    #[test]
    fn minimal_scenario_gets_defaults() {
        let scenario = parse(MINIMAL, "m.yaml").unwrap();
        assert_eq!(scenario.tick, Duration::from_secs(10));
        assert_eq!(scenario.baselines.len(), 6);
        assert_eq!(scenario.pool.engine, Engine::Generic);
        assert_eq!(scenario.pool.job_model, JobModel::Slot);
        assert_eq!(scenario.pool.billing, Billing::default());
        assert_eq!(scenario.baseline_settings.termination_grace, None);
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let text = format!("{MINIMAL}tikc: 5s\n");
        let error = parse(&text, "m.yaml").unwrap_err().to_string();
        assert!(
            error.contains("m.yaml") && error.contains("tikc"),
            "{error}"
        );
        let text = MINIMAL.replace("boot_time: 60s", "boot_time: 60s, colour: red");
        let error = parse(&text, "m.yaml").unwrap_err().to_string();
        assert!(
            error.contains("m.yaml:3:") && error.contains("colour"),
            "{error}"
        );
    }

    #[test]
    fn workload_needs_exactly_one_source() {
        let text = MINIMAL.replace("  trace: { path: ../x.swf }\n", "  max_jobs: 3\n");
        assert!(format!("{:#}", parse(&text, "m.yaml").unwrap_err()).contains("exactly one"));
    }

    #[test]
    fn out_of_range_values_are_every_one_reported_with_file_and_line() {
        let text = format!(
            "{}tick: 1ns\nexpect: {{ hpa: {{ cost: [2, 1] }} }}\n",
            MINIMAL.replace(
                "boot_time: 60s",
                "boot_time: 60s, price_per_worker_hour: -1"
            )
        );
        let error = parse(&text, "m.yaml").unwrap_err().to_string();
        assert!(
            error.contains("m.yaml:3:") && error.contains("pool.price_per_worker_hour"),
            "{error}"
        );
        assert!(
            error.contains("m.yaml:4:1: tick: must be from 1s to 1h"),
            "{error}"
        );
        assert!(
            error.contains("expect.hpa.cost: [2, 1] is not a range"),
            "{error}"
        );
        let generated = "workload:\n  generate:\n    seed: 1\n    duration: 100000d\n    \
            arrivals_per_hour: 1e9\n    diurnal: { peak_to_mean: 1.5, peak_hour: 25 }\n    \
            runtime: { median: 1m }\n    width: 1\npool: { engine: generic, worker_capacity: 4, boot_time: 60s }\n";
        let error = parse(generated, "g.yaml").unwrap_err().to_string();
        assert!(
            error.contains("g.yaml:2:3: workload.generate: duration must be at most 366d"),
            "{error}"
        );
        let error = parse(&generated.replace("100000d", "1d"), "g.yaml")
            .unwrap_err()
            .to_string();
        assert!(error.contains("more than 2000000 jobs"), "{error}");
        let error = parse(
            &generated.replace("100000d", "1d").replace("1e9", "10"),
            "g.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("peak_hour must be in [0, 24]"), "{error}");
    }

    #[test]
    fn builtin_trino_parses_and_its_policy_loads() {
        let loaded = builtin("trino").unwrap();
        assert!(loaded.scenario.workload.generate.is_some());
        assert_eq!(loaded.load_policies().unwrap().len(), 1);
        assert!(builtin("nope").is_err());
    }
}
