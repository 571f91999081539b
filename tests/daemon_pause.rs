//! `poolpilot pause` / `resume` against the built daemon, no peer needed (a fake Spark master,
//! a pool whose actuator cannot be set up, so it is decided but never actuated): a pin with
//! an expiry shows on `/status` (kind, replicas, until, source), in the decision and its
//! `paused` reason, and in `poolpilot_pool_paused`; it survives a restart (state file);
//! `resume` lifts it. Errors: unknown pool (404 naming the known ones), a bad `--for`.

mod support;

use std::time::Duration;

use support::daemon::{Daemon, cli, held_pool_policy, metric};
use support::spark::FakeSparkMaster;
use support::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_survives_a_restart_and_resume_lifts_it() {
    let master = FakeSparkMaster::start().await;
    master.set(|m| m.waiting_apps = 3); // 3 workers of demand
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("etl.yaml"),
        held_pool_policy("etl", "enforce", &master.url),
    )
    .unwrap();
    let daemon = Daemon::start_ready(dir.path(), &policies).await;
    let url = daemon.url("");
    assert!(
        wait_until(Duration::from_secs(10), || async {
            daemon.status().await["pools"][0]["desired"] == 3
        })
        .await,
        "{}",
        daemon.status().await
    );

    // Errors a user would expect.
    let (code, _, err) = cli(&["pause", "nope", "--url", &url], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("404") && err.contains("known pools: etl"),
        "{err}"
    );
    let (code, _, err) = cli(&["pause", "etl", "--for", "soon", "--url", &url], &[]);
    assert_eq!(code, 2, "clap refuses a bad --for: {err}");
    assert!(err.contains("--for"), "{err}");

    // Pin at 2 for an hour (2 is inside bounds 1..9, below the demand of 3).
    let (code, out, err) = cli(
        &[
            "pause",
            "etl",
            "--replicas",
            "2",
            "--for",
            "1h",
            "--url",
            &url,
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("etl: paused (pin at 2) until 20"), "{out}");
    let pinned = |doc: &serde_json::Value| {
        let pool = &doc["pools"][0];
        pool["desired"] == 2
            && pool["paused"]["kind"] == "pin"
            && pool["paused"]["replicas"] == 2
            && pool["paused"]["source"] == "admin"
            && pool["paused"]["until"]
                .as_str()
                .is_some_and(|u| u.ends_with('Z'))
            && pool["reasons"].as_array().unwrap().last().unwrap()["stage"] == "paused"
    };
    assert!(
        wait_until(Duration::from_secs(10), || async {
            pinned(&daemon.status().await)
        })
        .await,
        "{}",
        daemon.status().await
    );
    let until = daemon.status().await["pools"][0]["paused"]["until"].clone();
    let text = daemon.metrics().await;
    assert_eq!(
        metric(
            &text,
            "poolpilot_pool_paused",
            &["pool=\"etl\"", "kind=\"pin\""]
        ),
        Some(1.0),
        "{text}"
    );
    let (code, table, _) = cli(&["status", "--url", &url], &[]);
    assert_eq!(code, 0);
    assert!(
        table.contains("etl: paused: kind=pin replicas=2"),
        "{table}"
    );

    // A restart keeps it (the state file holds the admin pause), expiry unchanged.
    assert!(daemon.stop().await.success());
    let daemon = Daemon::start_ready(dir.path(), &policies).await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            pinned(&daemon.status().await)
        })
        .await,
        "{}",
        daemon.status().await
    );
    assert_eq!(daemon.status().await["pools"][0]["paused"]["until"], until);

    // Resume: the pool follows its demand again.
    // Without --url: the daemon's address comes from its settings file.
    let settings = dir.path().join("daemon.yaml");
    let settings = settings.to_str().unwrap();
    let (code, out, err) = cli(&["resume", "etl", "--config", settings], &[]);
    assert_eq!((code, out.trim()), (0, "etl: resumed"), "{err}");
    assert!(
        wait_until(Duration::from_secs(10), || async {
            let doc = daemon.status().await;
            doc["pools"][0]["paused"].is_null() && doc["pools"][0]["desired"] == 3
        })
        .await,
        "{}",
        daemon.status().await
    );
    assert!(daemon.stop().await.success());
}
