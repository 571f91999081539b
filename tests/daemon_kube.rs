//! End to end against the real kube-apiserver (tests/peers/kube.sh): the built `poolpilot run`
//! binary scales a Deployment up within the policy's bounds, keeps its cooldown across a
//! `kill -9` (no extra actuation after the restart), holds the pool while its source is down
//! (and says why on /status and /metrics), rejects a broken policy on SIGHUP while the last good
//! set stays in force, scales down after stabilization, and exits 0 on SIGTERM.
//!
//! The source is a Spark master `/json/` served by the test (the platform is the real peer
//! here; tests/daemon_spark_moto.rs uses the real Spark master).

mod support;

use std::time::Duration;

use support::daemon::{Daemon, metric};
use support::kube::{KubeScene, kube_policy, replicas};
use support::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_drives_a_real_deployment_through_a_day() {
    let Some(kubeconfig) = support::peer("POOLPILOT_TEST_KUBECONFIG") else {
        return;
    };
    let scene = KubeScene::start(kubeconfig, "pp-daemon", 4, "20s").await;
    let (api, master, dir, policies) = (&scene.api, &scene.master, &scene.dir, scene.policies());
    let settings = scene.settings("state/state.json");

    // 1. Demand beyond the maximum: scaled up to max, never past it.
    let mut daemon = Daemon::start(dir.path(), "daemon", &settings, &[]);
    daemon.wait_ready(Duration::from_secs(30)).await;
    master.set(|m| m.waiting_apps = 5); // 10 cores = 5 workers > max 4
    assert!(
        wait_until(Duration::from_secs(20), || async {
            replicas(api).await == 4
        })
        .await,
        "log:\n{}",
        daemon.log_text()
    );
    // The apiserver shows the new size as soon as the patch lands; /status is published once the
    // actuator's call has returned, a moment later (a fresh-clone CI run under load saw 1 here).
    assert!(
        wait_until(Duration::from_secs(10), || async {
            let status = daemon.status().await;
            let pool = &status["pools"][0];
            pool["desired"] == 4 && pool["last_actuation"]["outcome"] == "ok"
        })
        .await,
        "{}",
        daemon.status().await
    );
    let status = daemon.status().await;
    let pool = &status["pools"][0];
    assert_eq!(pool["desired"], 4);
    assert_eq!(pool["last_actuation"]["outcome"], "ok");
    assert!(
        pool["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["stage"] == "bound_max"),
        "{pool}"
    );
    let text = daemon.metrics().await;
    assert_eq!(
        metric(
            &text,
            "poolpilot_pool_desired_workers",
            &["pool=\"k8s-pool\""]
        ),
        Some(4.0),
        "{text}"
    );

    // 2. kill -9 inside the 20 s scale-up cooldown, raise max and demand, restart: no actuation
    //    until the cooldown (from the state file) has passed.
    daemon.kill9();
    std::fs::write(
        policies.join("pool.yaml"),
        kube_policy(&master.url, &scene.namespace, &scene.kubeconfig, 6, "20s"),
    )
    .unwrap();
    master.set(|m| m.waiting_apps = 6);
    let mut daemon = Daemon::start(dir.path(), "daemon", &settings, &[]);
    daemon.wait_ready(Duration::from_secs(30)).await;
    let status = daemon.status().await;
    assert_eq!(status["state"]["loaded"], "ok", "{status}");
    let reasons = status["pools"][0]["reasons"].to_string();
    assert!(
        reasons.contains("cooldown"),
        "the restored cooldown holds: {reasons}"
    );
    assert_eq!(
        replicas(api).await,
        4,
        "no extra actuation after the restart"
    );
    assert!(
        wait_until(Duration::from_secs(30), || async {
            replicas(api).await == 6
        })
        .await,
        "after the cooldown: {}",
        daemon.log_text()
    );

    // 3. The source goes down: the pool holds; /status and metrics say why.
    master.set(|m| m.down = true);
    assert!(
        wait_until(Duration::from_secs(10), || async {
            daemon.status().await["pools"][0]["signals"][0]["state"] == "missing"
        })
        .await
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(replicas(api).await, 6, "no scale-down on missing data");
    let status = daemon.status().await;
    let signal = &status["pools"][0]["signals"][0];
    assert_eq!(signal["fault"], "http_status", "{signal}");
    assert!(
        signal["error"].as_str().unwrap().contains("503"),
        "{signal}"
    );
    let text = daemon.metrics().await;
    assert_eq!(
        metric(&text, "poolpilot_signal_up", &["pool=\"k8s-pool\""]),
        Some(0.0),
        "{text}"
    );
    assert!(
        metric(
            &text,
            "poolpilot_source_errors_total",
            &["kind=\"http_status\""]
        )
        .unwrap()
            >= 1.0
    );

    // 4. A broken policy on SIGHUP is rejected; the last good set stays in force.
    std::fs::write(
        policies.join("broken.yaml"),
        "pool: broken\nbounds: { min: 3, max: 1 }\n",
    )
    .unwrap();
    daemon.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(10), || async {
            !daemon.status().await["policies"]["last_rejected"]
                .as_array()
                .unwrap()
                .is_empty()
        })
        .await
    );
    assert_eq!(daemon.status().await["pools"].as_array().unwrap().len(), 1);
    assert!(
        metric(
            &daemon.metrics().await,
            "poolpilot_policy_errors_total",
            &[]
        )
        .unwrap()
            >= 1.0
    );
    std::fs::remove_file(policies.join("broken.yaml")).unwrap();

    // 5. Demand gone: scale down to min after the 3 s stabilization window.
    master.set(|m| {
        m.down = false;
        m.waiting_apps = 0;
    });
    assert!(
        wait_until(Duration::from_secs(30), || async {
            replicas(api).await == 1
        })
        .await,
        "{}",
        daemon.log_text()
    );
    // The finished drain is harvested (logged, remembered) on the next tick.
    assert!(
        wait_until(Duration::from_secs(5), || async {
            daemon
                .log_text()
                .contains("scaled the pool down after draining")
        })
        .await,
        "{}",
        daemon.log_text()
    );

    // 6. SIGTERM: clean exit, state persisted.
    let exit = daemon.stop().await;
    assert!(exit.success(), "exit {exit:?}");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("state/state.json")).unwrap(),
    )
    .unwrap();
    assert!(
        state["memory"]["pools"]["k8s-pool"]["last_scale_down"].is_number(),
        "{state}"
    );
}
