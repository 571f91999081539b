//! `poolpilot status` against a running daemon (the built binary, a fake Spark master): the
//! table shows each pool's size → desired, mode, reason and signal age; `-o json` is the
//! daemon's `/status` document; an unreachable daemon is exit 1 with the URL named.

mod support;

use std::process::Command;
use std::time::Duration;

use support::daemon::{Daemon, held_pool_policy};
use support::spark::FakeSparkMaster;

fn status(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_poolpilot"))
        .arg("status")
        .args(args)
        .env_remove("POOLPILOT_URL")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_every_pool_of_a_running_daemon() {
    let master = FakeSparkMaster::start().await;
    master.set(|m| m.waiting_apps = 3);
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    for (pool, mode) in [("etl-a", "shadow"), ("etl-b", "paused")] {
        // No kubeconfig there: the actuator cannot be set up, so the pool is held (and says why).
        std::fs::write(
            policies.join(format!("{pool}.yaml")),
            held_pool_policy(pool, mode, &master.url),
        )
        .unwrap();
    }
    let daemon = Daemon::start_ready(dir.path(), &policies).await;
    let url = daemon.url("");

    let (code, table, err) = status(&["--url", &url]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("single instance, "), "{table}");
    assert!(lines[1].starts_with("POOL "), "{table}");
    let row = |pool: &str| {
        *lines
            .iter()
            .find(|l| l.starts_with(pool))
            .unwrap_or_else(|| panic!("no row for {pool}:\n{table}"))
    };
    // 3 waiting apps × 2 cores / 2 per worker = 3 workers; the size itself is unknown.
    for cell in ["shadow", "? → 3", "spark "] {
        assert!(
            row("etl-a").contains(cell),
            "{cell} not in {:?}",
            row("etl-a")
        );
    }
    assert!(row("etl-b").contains("paused"), "{table}");
    assert!(
        table.contains("etl-a: held: ") && table.contains("/nonexistent/kubeconfig"),
        "the held reason is shown:\n{table}"
    );

    let (code, json, err) = status(&["--url", &url, "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let pools: Vec<&str> = doc["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pool"].as_str().unwrap())
        .collect();
    assert_eq!(pools, ["etl-a", "etl-b"]);

    assert!(daemon.stop().await.success());
    let (code, _, err) = status(&["--url", &url]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("{url}/status")), "{err}");
}

#[test]
fn watch_redraws_until_interrupted() {
    // Against a closed port `--watch` keeps trying (and says so) instead of exiting.
    let port = support::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_poolpilot"))
        .args(["status", "--watch", "--interval", "100ms", "--url"])
        .arg(format!("http://127.0.0.1:{port}"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(child.try_wait().unwrap().is_none(), "--watch exited");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.matches("cannot read").count() >= 2,
        "expected several redraws: {text}"
    );
}
