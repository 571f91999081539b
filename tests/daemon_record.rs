//! `poolpilot run --record FILE` → `poolpilot simulate --trace FILE --trace-format recording`,
//! end to end with the built binary: the daemon drives a Deployment on the real kube-apiserver
//! (tests/peers/kube.sh) through a burst while recording; the simulator then replays that traffic
//! against the same policy (and agrees with what the daemon did) and against a changed one (a
//! lower maximum: fewer workers, longer waits).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::daemon::Daemon;
use support::kube::{KubeScene, replicas};
use support::wait_until;

/// Runs `poolpilot simulate` on the recording with `policy` and returns its JSON report.
fn replay(recording: &Path, policy: &Path) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_poolpilot"))
        .arg("simulate")
        .arg("--trace")
        .arg(recording)
        .args(["--trace-format", "recording", "--policy"])
        .arg(policy)
        .args([
            "--worker-capacity",
            "2",
            "--tick",
            "1s",
            "--boot-time",
            "1s",
        ])
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "simulate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["pools"].as_array().map(Vec::len), Some(1), "{doc}");
    doc["pools"][0]["report"].clone()
}

fn policy_row(report: &serde_json::Value) -> &serde_json::Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "policy")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_traffic_replays_through_the_simulator_against_a_changed_policy() {
    let Some(kubeconfig) = support::peer("POOLPILOT_TEST_KUBECONFIG") else {
        return;
    };
    let scene = KubeScene::start(kubeconfig, "pp-record", 6, "0s").await;
    let (api, master, dir, policy) = (&scene.api, &scene.master, &scene.dir, &scene.policy);
    let settings = scene.settings("state.json");
    let recording = dir.path().join("traffic.jsonl");

    // Record a burst: 4 waiting apps × 2 cores = 8 cores = 4 workers, then back to nothing.
    let mut daemon = Daemon::start(
        dir.path(),
        "daemon",
        &settings,
        &["--record", recording.to_str().unwrap()],
    );
    daemon.wait_ready(Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // a few quiet ticks first
    master.set(|m| m.waiting_apps = 4);
    assert!(
        wait_until(Duration::from_secs(20), || async {
            replicas(api).await == 4
        })
        .await,
        "no scale-up to 4; log:\n{}",
        daemon.log_text()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    master.set(|m| m.waiting_apps = 0);
    assert!(
        wait_until(Duration::from_secs(30), || async {
            replicas(api).await == 1
        })
        .await,
        "no scale-down to 1; log:\n{}",
        daemon.log_text()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(daemon.stop().await.success());

    // The recording holds what the daemon saw and decided.
    let text = std::fs::read_to_string(&recording).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["record"], "header");
    assert_eq!(lines[0]["format"], "poolpilot-recording");
    let ticks: Vec<&serde_json::Value> = lines.iter().filter(|l| l["record"] == "tick").collect();
    assert!(ticks.len() >= 10, "{} tick lines", ticks.len());
    let demands: Vec<f64> = ticks
        .iter()
        .filter_map(|t| t["signals"][0]["demand"].as_f64())
        .collect();
    assert_eq!(demands.iter().cloned().fold(0.0, f64::max), 8.0);
    assert_eq!(demands.last(), Some(&0.0));
    let most_desired = ticks
        .iter()
        .filter_map(|t| t["decision"]["desired"].as_u64())
        .max();
    assert_eq!(most_desired, Some(4));

    // Every recorded decision, replayed through the engine, is the same.
    let check = Command::new(env!("CARGO_BIN_EXE_poolpilot"))
        .args([
            "simulate",
            "--trace-format",
            "recording",
            "--check-decisions",
            "--trace",
        ])
        .arg(&recording)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && out.contains(", 1 pools, 0 mismatches"),
        "{out}"
    );

    // Replayed against the same policy, the simulator does what the daemon did.
    let same = dir.path().join("same.yaml");
    std::fs::write(&same, policy).unwrap();
    let report = replay(&recording, &same);
    assert_eq!(report["header"]["jobs"], 8, "8 demand units, each one job");
    let same_row = policy_row(&report);
    assert_eq!(same_row["peak_ready_workers"], 4);

    // A changed policy (max 2) on the same traffic: fewer workers, the burst waits longer.
    let lower = dir.path().join("lower-max.yaml");
    std::fs::write(&lower, policy.replace("max: 6", "max: 2")).unwrap();
    let report = replay(&recording, &lower);
    let lower_row = policy_row(&report);
    assert_eq!(lower_row["peak_ready_workers"], 2);
    assert!(
        lower_row["wait_p95_s"].as_f64().unwrap() > same_row["wait_p95_s"].as_f64().unwrap(),
        "same: {same_row}\nlower: {lower_row}"
    );

    // `tune` takes the recording too: the recorded pool's policy is the one it starts from,
    // and what it writes validates.
    let tuned = dir.path().join("tuned.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_poolpilot"))
        .arg("tune")
        .arg(&recording)
        .args([
            "--p95-wait",
            "10m",
            "--holdout",
            "0%",
            "--variants",
            "12",
            "--no-progress",
            "--out",
        ])
        .arg(&tuned)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("12 variants of `"), "{stdout}");
    let written = poolpilot::policy::load_file(&tuned).unwrap_or_else(|e| panic!("{e}"));
    let recorded = poolpilot::policy::load_str(policy, "recorded").unwrap();
    assert_eq!(written.name(), recorded.name());
}
