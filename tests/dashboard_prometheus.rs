//! The Grafana dashboard (deploy/grafana/poolpilot.json) against a real Prometheus
//! (tests/peers/prometheus.sh) scraping a running daemon that sizes a real Deployment
//! (tests/peers/kube.sh): after a scale-up held by a cost cap, a scale-down with its drain, a
//! source outage, an unreadable pool and a rejected reload, EVERY PromQL expression in the
//! dashboard (panels and template variables) returns data for this daemon. The alert rules'
//! expressions are valid PromQL on the same server, and both name only exported metrics.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::daemon::Daemon;
use support::kube::KubeScene;
use support::prometheus::{Target, metric_names, query};
use support::spark::FakeSparkMaster;
use support::wait_until;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `expr` of every panel target, and each template variable's metric selector
/// (`label_values(SELECTOR, label)`), with the panel title for messages.
fn expressions(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            out.push((
                panel["title"].as_str().unwrap().to_string(),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    for v in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["definition"].as_str() {
            let selector = q
                .strip_prefix("label_values(")
                .and_then(|s| s.rsplit_once(','))
                .map(|(sel, _)| sel.to_string())
                .unwrap_or_else(|| panic!("variable {}: {q}", v["name"]));
            out.push((format!("variable {}", v["name"]), selector));
        }
    }
    out
}

/// Grafana's variables as this test's daemon: its own instance, every job and pool.
fn bind(expr: &str, instance: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$instance", instance)
        .replace("$job", ".*")
        .replace("$pool", ".*")
}

#[test]
fn the_dashboard_names_only_exported_metrics_and_covers_the_issue() {
    let text = std::fs::read_to_string(root().join("deploy/grafana/poolpilot.json")).unwrap();
    let exported = metric_names(&std::fs::read_to_string(root().join("src/telemetry.rs")).unwrap());
    let used = metric_names(&text);
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(unknown.is_empty(), "not in telemetry::names: {unknown:?}");
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let titles: BTreeSet<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for needed in [
        "Size: current, desired, demand, bounds",
        "Decisions by final reason",
        "Spend per hour vs cap",
        "Signal up",
        "Drains by outcome",
        "Tick latency",
    ] {
        assert!(titles.contains(needed), "no panel {needed:?}: {titles:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_for_a_running_daemon() {
    let Some(kubeconfig) = support::peer("POOLPILOT_TEST_KUBECONFIG") else {
        return;
    };
    let Some(prometheus) = support::peer("PROMETHEUS_URL") else {
        return;
    };
    let Some(sd_dir) = support::peer("PROMETHEUS_FILE_SD_DIR") else {
        return;
    };
    let scene = KubeScene::start(kubeconfig.clone(), "pp-dash", 4, "0s").await;
    // 0.5/worker-hour with a 1.0/h cap: demand for 3 workers is held at 2 (reason cost_cap).
    std::fs::write(
        scene.policies().join("pool.yaml"),
        format!(
            "{}cost: {{ per_worker_hour: 0.5, max_per_hour: 1.0 }}\n",
            scene.policy
        ),
    )
    .unwrap();
    // A shadow pool whose source is down, and one whose Deployment does not exist.
    let down = FakeSparkMaster::start().await;
    down.set(|m| m.down = true);
    let shadow = |pool: &str, master: &str, deployment: &str| {
        format!(
            "pool: {pool}\nmode: shadow\nsignals:\n  - spark: {{ master: \"{master}\", cores_per_waiting_app: 2, http: {{ timeout: 1s }} }}\n    per_worker: 2\n\
             workers:\n  kubernetes: {{ namespace: {}, deployment: {deployment}, kubeconfig: \"{kubeconfig}\" }}\n\
             bounds: {{ min: 1, max: 4 }}\ncost: {{ per_worker_hour: 0.1 }}\n",
            scene.namespace
        )
    };
    std::fs::write(
        scene.policies().join("outage.yaml"),
        shadow("dash-outage", &down.url, "workers"),
    )
    .unwrap();
    std::fs::write(
        scene.policies().join("ghost.yaml"),
        shadow("dash-ghost", &scene.master.url, "ghost"),
    )
    .unwrap();
    let settings = format!(
        "{}global_budget: {{ max_per_hour: 10 }}\n",
        scene.settings("state.json")
    );
    let mut daemon = Daemon::start(scene.dir.path(), "daemon", &settings, &[]);
    daemon.wait_ready(Duration::from_secs(30)).await;
    let job = format!("poolpilot-dash-{}", std::process::id());
    let _target = Target::scrape(&sd_dir, &job, daemon.addr);

    // Scale up (held at 2 by the cost cap), then down through a drain.
    scene.master.set(|m| m.waiting_apps = 3);
    assert!(
        wait_until(Duration::from_secs(30), || async {
            scene.replicas().await == 2
        })
        .await,
        "no scale-up to 2: {}",
        daemon.log_text()
    );
    scene.master.set(|m| m.waiting_apps = 0);
    assert!(
        wait_until(Duration::from_secs(30), || async {
            scene.replicas().await == 1
        })
        .await,
        "no scale-down to 1: {}",
        daemon.log_text()
    );
    // A rejected reload (the last good set stays), then the set as it was.
    std::fs::write(scene.policies().join("bad.yaml"), "pool: [\n").unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || async {
            daemon.metrics().await.contains("outcome=\"rejected\"")
        })
        .await
    );
    std::fs::remove_file(scene.policies().join("bad.yaml")).unwrap();

    let text = std::fs::read_to_string(root().join("deploy/grafana/poolpilot.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let exprs = expressions(&dashboard);
    assert!(exprs.len() >= 30, "{} expressions", exprs.len());
    let http = reqwest::Client::new();
    let instance = daemon.addr.to_string();
    let empty = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let all_answer = wait_until(Duration::from_secs(60), || {
        let (http, exprs, empty, prometheus, instance) =
            (&http, &exprs, empty.clone(), &prometheus, &instance);
        async move {
            let mut missing = Vec::new();
            for (title, expr) in exprs {
                let promql = bind(expr, instance);
                match query(http, prometheus, &promql).await {
                    Ok(rows) if !rows.is_empty() => {}
                    Ok(_) => missing.push(format!("{title}: no data: {promql}")),
                    Err(e) => missing.push(format!("{title}: {e}: {promql}")),
                }
            }
            let done = missing.is_empty();
            *empty.lock().unwrap() = missing;
            done
        }
    })
    .await;
    assert!(
        all_answer,
        "dashboard queries without data:\n{}",
        empty.lock().unwrap().join("\n")
    );

    // The alert rules' expressions are valid PromQL on the same server.
    let rules =
        std::fs::read_to_string(root().join("deploy/prometheus/poolpilot.rules.yaml")).unwrap();
    let rules = poolpilot::policy::yaml::parse(&rules).unwrap().value;
    for rule in rules["groups"][0]["rules"].as_array().unwrap() {
        let expr = rule["expr"].as_str().unwrap();
        if let Err(e) = query(&http, &prometheus, expr).await {
            panic!("{}: {e}", rule["alert"]);
        }
    }
    assert!(daemon.stop().await.success());
}
