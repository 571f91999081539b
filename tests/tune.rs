//! `poolpilot tune` from the command line: what it writes validates and carries its figures;
//! a level no variant meets writes nothing and exits 1.

use std::path::Path;
use std::process::Command;

fn poolpilot(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_poolpilot"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run poolpilot");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tune(out: &Path, level: &str) -> (i32, String, String) {
    poolpilot(&[
        "tune",
        "simulations/trino-generated.yaml",
        "--p95-wait",
        level,
        "--variants",
        "24",
        "--holdout",
        "30%",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn tune_writes_a_policy_that_validates_with_its_figures() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tuned.yaml");
    let (code, stdout, stderr) = tune(&out, "2m");
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Pareto front on the tuning part"),
        "{stdout}"
    );
    assert!(stdout.contains("hpa+idle-first"), "{stdout}");
    assert!(stdout.contains("checked on the holdout"), "{stdout}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with(
            "# Tuned by `poolpilot tune simulations/trino-generated.yaml --p95-wait 2m"
        ),
        "{text}"
    );
    assert!(
        text.contains("# tuned "),
        "the figures are in the header: {text}"
    );
    let (code, stdout, stderr) = poolpilot(&["validate", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // The written policy is the one that was scored: a replay of it meets the level.
    let (code, stdout, stderr) = poolpilot(&[
        "simulate",
        "simulations/trino-generated.yaml",
        "--policy",
        out.to_str().unwrap(),
        "--format",
        "json",
        "--no-progress",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let row = &report["rows"][0];
    assert_eq!(row["kind"], "policy", "{row}");
    assert_eq!(row["unfinished_jobs"], 0, "{row}");
}

#[test]
fn a_level_no_variant_meets_writes_nothing_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tuned.yaml");
    let (code, stdout, stderr) = tune(&out, "1ms");
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("no variant meets p95 wait <= 1ms"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Pareto front"),
        "shows the closest front: {stdout}"
    );
    assert!(!out.exists(), "nothing written");
}

#[test]
fn a_bad_holdout_is_refused() {
    let (code, _, stderr) = poolpilot(&[
        "tune",
        "builtin:trino",
        "--p95-wait",
        "1m",
        "--holdout",
        "150%",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("between 0% and 90%"), "{stderr}");
}
