//! The alert rules (deploy/prometheus/): `promtool check rules` accepts them, the unit tests
//! beside them (`promtool test rules`) pass, and every metric they name is one the daemon
//! exports (`telemetry::names` in src/telemetry.rs), so a renamed metric cannot silence an
//! alert.

mod support;

use std::path::Path;
use std::process::Command;

use support::prometheus::metric_names;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(root().join("deploy/prometheus"))
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool did not start ({e}): install it with `bash tests/peers/prometheus.sh install`")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn promtool_checks_the_rules() {
    let out = promtool(&["check", "rules", "poolpilot.rules.yaml"]);
    assert!(out.contains("SUCCESS: 9 rules found"), "{out}");
}

#[test]
fn promtool_unit_tests_pass() {
    let out = promtool(&["test", "rules", "poolpilot.rules.test.yaml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn every_metric_in_the_rules_is_exported() {
    let exported = metric_names(&std::fs::read_to_string(root().join("src/telemetry.rs")).unwrap());
    let rules =
        std::fs::read_to_string(root().join("deploy/prometheus/poolpilot.rules.yaml")).unwrap();
    let used = metric_names(&rules);
    assert!(used.len() >= 8, "{used:?}");
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(unknown.is_empty(), "not in telemetry::names: {unknown:?}");
}
