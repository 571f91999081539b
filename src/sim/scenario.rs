//! Scenario files: what to replay, on which pool, against which policies and baselines, and
//! which results to expect (simulations/README.md documents every field).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
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

/// Parses scenario YAML; errors name the field and its line.
pub fn parse(text: &str, origin: &str) -> anyhow::Result<Scenario> {
    let document = policy::yaml::parse(text).map_err(|error| {
        anyhow::anyhow!(
            "{origin}:{}:{}: {}",
            error.position.line,
            error.position.column,
            error.message
        )
    })?;
    let scenario: Scenario =
        serde_path_to_error::deserialize(&document.value).map_err(|error| {
            let path = error.path().to_string();
            let at = document
                .position(&path)
                .map(|p| format!(":{}:{}", p.line, p.column))
                .unwrap_or_default();
            anyhow::anyhow!("{origin}{at}: {path}: {}", error.inner())
        })?;
    check(&scenario).with_context(|| origin.to_string())?;
    Ok(scenario)
}

fn check(scenario: &Scenario) -> anyhow::Result<()> {
    match (&scenario.workload.generate, &scenario.workload.trace) {
        (Some(_), Some(_)) | (None, None) => {
            bail!("workload: give exactly one of `generate` or `trace`")
        }
        _ => {}
    }
    anyhow::ensure!(
        scenario.pool.worker_capacity > 0.0,
        "pool.worker_capacity must be > 0"
    );
    anyhow::ensure!(!scenario.tick.is_zero(), "tick must be longer than 0s");
    anyhow::ensure!(
        !scenario.policies.is_empty() || !scenario.baselines.is_empty(),
        "nothing to simulate: no policies and no baselines"
    );
    Ok(())
}

/// Reads a scenario file.
pub fn load_file(path: &Path) -> anyhow::Result<LoadedScenario> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading scenario {}", path.display()))?;
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
    fn builtin_trino_parses_and_its_policy_loads() {
        let loaded = builtin("trino").unwrap();
        assert!(loaded.scenario.workload.generate.is_some());
        assert_eq!(loaded.load_policies().unwrap().len(), 1);
        assert!(builtin("nope").is_err());
    }
}
