//! Every shipped policy validates; every file in tests/fixtures/invalid-policies fails with the
//! messages its `# expect:` lines name; the CLI's validate/explain/schema behave for operators.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_policy_validates() {
    let files = yaml_files(&root().join("policies"));
    assert!(
        files.len() >= 6,
        "expected the example policies, found {files:?}"
    );
    let policies = poolpilot::policy::load_set(&[root().join("policies")], None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(policies.len(), files.len());
}

#[test]
fn every_invalid_fixture_fails_with_its_expected_messages() {
    let dir = root().join("tests/fixtures/invalid-policies");
    let files = yaml_files(&dir);
    assert!(files.len() >= 10);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no `# expect:` line",
            file.display()
        );
        let name = file.file_name().unwrap().to_str().unwrap();
        let errors = poolpilot::policy::load_str(&text, name)
            .expect_err(name)
            .to_string();
        for want in expected {
            assert!(
                errors.contains(want),
                "{name}: expected `{want}` in:\n{errors}"
            );
        }
    }
}

#[test]
fn duplicate_pool_names_and_budget_floor_are_set_errors() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("policies/trino.yaml")).unwrap();
    std::fs::write(dir.path().join("a.yaml"), &text).unwrap();
    std::fs::write(dir.path().join("b.yaml"), &text).unwrap();
    // Hidden entries (ConfigMap `..data`) are skipped.
    std::fs::write(dir.path().join("..data.yaml"), "not: a policy").unwrap();
    let errors = poolpilot::policy::load_set(&[dir.path().to_path_buf()], Some(0.5))
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("pool name `trino-etl` is already used by"),
        "{errors}"
    );
    assert!(
        errors.contains("more than the global budget of 0.50/h"),
        "{errors}"
    );
}

fn poolpilot(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_poolpilot"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn validate_exit_codes_and_every_error() {
    let (code, out, _) = poolpilot(&["validate", "policies"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("ok: policies/trino.yaml (pool `trino-etl`"),
        "{out}"
    );
    let (code, _, err) = poolpilot(&[
        "validate",
        "policies/trino.yaml",
        "tests/fixtures/invalid-policies",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("did you mean `cooldown`?"), "{err}");
    assert!(
        err.contains("many-errors.yaml") && err.contains("boot_tme"),
        "{err}"
    );
    let (code, _, err) = poolpilot(&["validate", "no/such/dir"]);
    assert_eq!(
        (code, err.contains("no such file or directory")),
        (1, true),
        "{err}"
    );
}

/// `explain` of the Trino policy at 100 queued queries, 4 workers, a Saturday noon (no schedule active).
const EXPLAIN_TRINO_AT_100: [&str; 9] = [
    "explain",
    "--policy",
    "policies/trino.yaml",
    "--demand",
    "100",
    "--current",
    "4",
    "--at",
    "2026-11-28T12:00:00Z",
];

#[test]
fn explain_prints_the_reason_chain() {
    let args = EXPLAIN_TRINO_AT_100;
    let (code, out, err) = poolpilot(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("current 4 -> desired 12"), "{out}");
    assert!(
        out.contains("[raw] signal 0: demand 100 / 4 per worker = 25 workers"),
        "{out}"
    );
    assert!(
        out.contains("[rate_limit] scale-up rate limit: at most 12 now"),
        "{out}"
    );
    let mut json_args = args.to_vec();
    json_args.extend(["--format", "json"]);
    let (_, out, _) = poolpilot(&json_args);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["desired"], 12);
    assert_eq!(v["reasons"][0]["stage"], "raw");
    // Weekday morning in London: the schedule floor (10) applies to a quiet cluster.
    let (_, out, _) = poolpilot(&[
        "explain",
        "--policy",
        "policies/trino.yaml",
        "--demand",
        "0",
        "--current",
        "10",
        "--at",
        "2026-11-25T08:00:00Z",
    ]);
    assert!(
        out.contains("[schedule_floor] schedule 0 is active: at least 10"),
        "{out}"
    );
}

/// `explain --state` reads the daemon's own state file, so live cooldowns show.
#[test]
fn explain_reads_the_daemons_state_file() {
    use poolpilot::daemon::state::{self, PersistedState};
    use poolpilot::engine::Memory;
    use poolpilot::time::Timestamp;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let at = Timestamp::parse_rfc3339("2026-11-28T12:00:00Z").unwrap();
    let mut memory = Memory::default();
    memory.record_actuation("trino-etl", 2, 4, Timestamp(at.0 - 10_000));
    state::save(
        &path,
        &PersistedState::new(at, memory, vec![], Default::default()).view(),
    )
    .unwrap();
    let mut args = EXPLAIN_TRINO_AT_100.to_vec();
    args.extend(["--state", path.to_str().unwrap()]);
    let (code, out, err) = poolpilot(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("current 4 -> desired 4"), "{out}");
    assert!(
        out.contains("[cooldown]"),
        "the scale-up 10 s ago holds: {out}"
    );
    std::fs::write(&path, "{}").unwrap();
    let (code, _, err) = poolpilot(&[
        "explain",
        "--policy",
        "policies/trino.yaml",
        "--demand",
        "1",
        "--current",
        "4",
        "--state",
        path.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("not a poolpilot state file"), "{err}");
}

#[test]
fn schema_is_json_schema_of_the_policy_file() {
    let (code, out, _) = poolpilot(&["schema"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["title"], "PolicyFile");
    assert!(v["properties"]["scale_down"].is_object());
    assert!(
        v["required"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "pool")
    );
}

/// A reader that goes away (`poolpilot schema | head -1`) ends the command quietly with exit 0:
/// the pipe's read end is closed before the command writes, so every write fails with EPIPE.
#[test]
fn a_closed_stdout_is_exit_0_without_a_word() {
    let runs: [&[&str]; 3] = [
        &["schema"],
        &["simulate", "--format", "json", "--no-progress"],
        &["validate", "policies"],
    ];
    for args in runs {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_poolpilot"))
            .args(args)
            .current_dir(root())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("error"),
            "{args:?}: {stderr}"
        );
    }
}

/// The committed schema that the example policies point editors at
/// (`# yaml-language-server: $schema=./poolpilot.schema.json`) is exactly what `poolpilot
/// schema` prints, so it never drifts from the types; regenerate with
/// `poolpilot schema > policies/poolpilot.schema.json`.
#[test]
fn committed_schema_matches_the_binary_and_every_example_points_at_it() {
    let (code, out, _) = poolpilot(&["schema"]);
    assert_eq!(code, 0);
    let committed = std::fs::read_to_string(root().join("policies/poolpilot.schema.json")).unwrap();
    assert!(
        committed == out,
        "policies/poolpilot.schema.json is stale: run `poolpilot schema > policies/poolpilot.schema.json`"
    );
    for file in yaml_files(&root().join("policies")) {
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            text.lines().next(),
            Some("# yaml-language-server: $schema=./poolpilot.schema.json"),
            "{} does not point editors at the schema",
            file.display()
        );
    }
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = poolpilot(&["completions", shell]);
        assert_eq!(code, 0, "{err}");
        for sub in ["validate", "explain", "status", "completions", "man"] {
            assert!(out.contains(sub), "{shell}: no {sub}");
        }
    }
    let (code, _, err) = poolpilot(&["completions", "tcsh"]);
    assert_ne!(code, 0);
    assert!(err.contains("bash"), "{err}");
    let (code, page, _) = poolpilot(&["man"]);
    assert_eq!(code, 0);
    assert!(page.contains(".TH poolpilot 1"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = poolpilot(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for page in ["poolpilot.1", "poolpilot-status.1", "poolpilot-run.1"] {
        assert!(dir.path().join(page).is_file(), "{page} not written");
    }
}
