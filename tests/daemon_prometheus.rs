//! A real Prometheus (Debian package, tests/peers/prometheus.sh) scrapes a running daemon and
//! its query API returns `poolpilot_pool_desired_workers` for every pool: the exposition
//! format, names and labels are what a real scraper accepts.

mod support;

use std::time::Duration;

use support::daemon::Daemon;
use support::spark::FakeSparkMaster;
use support::wait_until;

fn policy(pool: &str, master: &str, max: u32) -> String {
    // The actuator cannot be set up (no kubeconfig there): the pool is held, yet decided and
    // exported, which is what a scrape must show.
    format!(
        "pool: {pool}\nmode: shadow\nsignals:\n  - spark: {{ master: \"{master}\", cores_per_waiting_app: 2, http: {{ timeout: 1s }} }}\n    per_worker: 2\n\
         workers:\n  kubernetes: {{ namespace: ns, deployment: {pool}, kubeconfig: /nonexistent/kubeconfig }}\n\
         bounds: {{ min: 1, max: {max} }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_desired_workers_for_every_pool() {
    let Some(prometheus) = support::peer("PROMETHEUS_URL") else {
        return;
    };
    let Some(sd_dir) = support::peer("PROMETHEUS_FILE_SD_DIR") else {
        return;
    };
    let master = FakeSparkMaster::start().await;
    master.set(|m| m.waiting_apps = 3);
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    for (pool, max) in [("etl-a", 2), ("etl-b", 9)] {
        std::fs::write(
            policies.join(format!("{pool}.yaml")),
            policy(pool, &master.url, max),
        )
        .unwrap();
    }
    let daemon = Daemon::start_ready(dir.path(), &policies).await;

    let job = format!("poolpilot-test-{}", std::process::id());
    let target = std::path::Path::new(&sd_dir).join(format!("{job}.json"));
    std::fs::write(
        &target,
        format!(
            r#"[{{"targets":["{}"],"labels":{{"test":"{job}"}}}}]"#,
            daemon.addr
        ),
    )
    .unwrap();

    let query = format!("{prometheus}/api/v1/query");
    let http = reqwest::Client::new();
    let last = std::sync::Arc::new(std::sync::Mutex::new(serde_json::Value::Null));
    let found = wait_until(Duration::from_secs(45), || {
        let request = http.get(&query).query(&[(
            "query",
            format!("poolpilot_pool_desired_workers{{test=\"{job}\"}}"),
        )]);
        let last = last.clone();
        async move {
            let Ok(r) = request.send().await else {
                return false;
            };
            let Ok(body) = r.json::<serde_json::Value>().await else {
                return false;
            };
            let both = body["data"]["result"]
                .as_array()
                .is_some_and(|rows| rows.len() == 2);
            *last.lock().unwrap() = body;
            both
        }
    })
    .await;
    let last = last.lock().unwrap().clone();
    let _ = std::fs::remove_file(&target);
    assert!(
        found,
        "Prometheus did not return both pools; last answer: {last}"
    );
    let mut rows: Vec<(String, String)> = last["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"]["pool"].as_str().unwrap().to_string(),
                r["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rows.sort();
    // 3 waiting apps × 2 cores / 2 per worker = 3 workers, capped by each pool's max.
    assert_eq!(
        rows,
        [
            ("etl-a".to_string(), "2".to_string()),
            ("etl-b".to_string(), "3".to_string())
        ]
    );
    assert!(daemon.stop().await.success());
}
