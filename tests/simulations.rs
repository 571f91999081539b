//! Every shipped scenario (`simulations/*.yaml`) runs here: its `expect:` ranges and
//! `expect_beats:` claims must hold, and scenarios with `golden: true` must reproduce
//! `simulations/golden/<name>.csv` (every actuation of every row) byte for byte.
//! Each also runs with the replay ticking through every tick, and must be identical to the
//! default clock that skips quiet stretches.
//! Regenerate goldens with `POOLPILOT_BLESS=1 cargo test --test simulations`.
//! Trace scenarios need `../shared/traces` beside the clone (CI has it; CI=true makes a
//! missing trace a failure).

mod support;

use std::path::PathBuf;

use poolpilot::sim::run::Clock;
use poolpilot::sim::{expect, experiment, scenario};

fn simulations_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("simulations")
}

fn run_scenario(file: &str) {
    let path = simulations_dir().join(file);
    let loaded = scenario::load_file(&path).unwrap_or_else(|e| panic!("{file}: {e:#}"));
    if let Some(trace) = &loaded.scenario.workload.trace {
        let trace_path = loaded.resolve(&trace.path);
        let name = trace_path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let Some(found) = support::sim::trace(&name) else {
            return;
        };
        assert_eq!(
            found.canonicalize().ok(),
            trace_path.canonicalize().ok(),
            "{file} reads {}",
            trace_path.display()
        );
    }
    let experiment = experiment::run(&loaded, false).unwrap_or_else(|e| panic!("{file}: {e:#}"));
    println!("{}", experiment.report.table(true));
    let failures = expect::failures(&loaded.scenario, &experiment.report);
    assert!(failures.is_empty(), "{file}:\n  {}", failures.join("\n  "));
    if loaded.scenario.golden {
        check_golden(&loaded.name, &expect::golden_csv(&experiment));
    }
    // The fast clock skips quiet ticks; ticking through every one must give the same run.
    let reference = experiment::run_with(&loaded, false, Clock::EveryTick)
        .unwrap_or_else(|e| panic!("{file}: {e:#}"));
    assert_eq!(
        expect::golden_csv(&experiment),
        expect::golden_csv(&reference),
        "{file}: skipping quiet ticks changed an actuation"
    );
    assert!(
        experiment.timelines == reference.timelines,
        "{file}: skipping quiet ticks changed a timeline"
    );
    assert_eq!(
        experiment.report.table(true),
        reference.report.table(true),
        "{file}: skipping quiet ticks changed the report"
    );
}

fn check_golden(name: &str, actual: &str) {
    let path = simulations_dir().join("golden").join(format!("{name}.csv"));
    if std::env::var("POOLPILOT_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, actual).unwrap();
        eprintln!("blessed {}", path.display());
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with POOLPILOT_BLESS=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b);
        panic!(
            "{} differs (first different line {:?}: expected {:?}, got {:?}; {} vs {} lines). \
             If the change is intended, rerun with POOLPILOT_BLESS=1.",
            path.display(),
            first.map(|i| i + 1),
            first.and_then(|i| expected.lines().nth(i)),
            first.and_then(|i| actual.lines().nth(i)),
            expected.lines().count(),
            actual.lines().count()
        );
    }
}

/// Each scenario is its own test so they run in parallel; `every_scenario_is_tested` keeps
/// this list complete.
const SCENARIOS: &[&str] = &[
    "trino-generated.yaml",
    "airflow-generated.yaml",
    "spark-generated.yaml",
    "kth-sp2.yaml",
    "lcg.yaml",
    "alibaba-2017.yaml",
    "yarn-generated.yaml",
    "prometheus-generated.yaml",
    "superset-celery-generated.yaml",
];

#[test]
fn trino_generated() {
    run_scenario("trino-generated.yaml");
}

#[test]
fn airflow_generated() {
    run_scenario("airflow-generated.yaml");
}

#[test]
fn spark_generated() {
    run_scenario("spark-generated.yaml");
}

#[test]
fn superset_celery_generated() {
    run_scenario("superset-celery-generated.yaml");
}

#[test]
fn kth_sp2() {
    run_scenario("kth-sp2.yaml");
}

#[test]
fn lcg() {
    run_scenario("lcg.yaml");
}

#[test]
fn alibaba_2017() {
    run_scenario("alibaba-2017.yaml");
}

#[test]
fn yarn_generated() {
    run_scenario("yarn-generated.yaml");
}

#[test]
fn prometheus_generated() {
    run_scenario("prometheus-generated.yaml");
}

#[test]
fn every_scenario_is_tested() {
    let mut files: Vec<String> = std::fs::read_dir(simulations_dir())
        .unwrap()
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = SCENARIOS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        files, listed,
        "add new scenarios to SCENARIOS and give them a #[test]"
    );
}
