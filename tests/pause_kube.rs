//! Pauses set on the real kube-apiserver (tests/peers/kube.sh) as `kubectl annotate` sets them:
//! `poolpilot.io/paused-replicas` pins the Deployment, `poolpilot.io/paused` holds it against
//! more demand, an unreadable value blocks scale-down and shows on /status, and removing the
//! annotations resumes scaling.

mod support;

use std::time::Duration;

use support::daemon::Daemon;
use support::kube::{KubeScene, annotate};
use support::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_pin_hold_and_release_a_deployment() {
    let Some(kubeconfig) = support::peer("POOLPILOT_TEST_KUBECONFIG") else {
        return;
    };
    let scene = KubeScene::start(kubeconfig, "pp-pause", 6, "0s").await;
    let (api, master) = (&scene.api, &scene.master);
    master.set(|m| m.waiting_apps = 2); // 2 workers of demand
    let mut daemon = Daemon::start(
        scene.dir.path(),
        "daemon",
        &scene.settings("state.json"),
        &[],
    );
    daemon.wait_ready(Duration::from_secs(30)).await;
    let sc = &scene;
    let at = move |n: i32| async move {
        wait_until(Duration::from_secs(20), || async move {
            sc.replicas().await == n
        })
        .await
    };
    assert!(at(2).await, "log:\n{}", daemon.log_text());

    // Pin at 5 (above the demand).
    annotate(api, "poolpilot.io/paused-replicas", Some("5")).await;
    assert!(at(5).await, "log:\n{}", daemon.log_text());
    assert!(
        wait_until(Duration::from_secs(10), || async {
            let pool = &daemon.status().await["pools"][0];
            pool["paused"]["kind"] == "pin" && pool["paused"]["source"] == "annotation"
        })
        .await,
        "{}",
        daemon.status().await
    );

    // Hold instead of pin; more demand must not move it.
    annotate(api, "poolpilot.io/paused-replicas", None).await;
    annotate(api, "poolpilot.io/paused", Some("true")).await;
    master.set(|m| m.waiting_apps = 6);
    assert!(
        wait_until(Duration::from_secs(10), || async {
            daemon.status().await["pools"][0]["paused"]["kind"] == "hold"
        })
        .await
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(scene.replicas().await, 5, "held against the demand of 6");

    // An unreadable value: not applied as written, shown, and no scale-down meanwhile.
    annotate(api, "poolpilot.io/paused", None).await;
    annotate(api, "poolpilot.io/paused-replicas", Some("abc")).await;
    master.set(|m| m.waiting_apps = 1);
    assert!(
        wait_until(Duration::from_secs(10), || async {
            let pool = &daemon.status().await["pools"][0];
            pool["pause_problems"]
                .to_string()
                .contains("\\\"abc\\\" is not a replica count")
        })
        .await,
        "{}",
        daemon.status().await
    );
    tokio::time::sleep(Duration::from_secs(5)).await; // beyond the 3 s down window
    assert_eq!(
        scene.replicas().await,
        5,
        "a malformed mark never scales down"
    );

    // All gone: scaling resumes (down to the demand of 1 after the window).
    annotate(api, "poolpilot.io/paused-replicas", None).await;
    assert!(at(1).await, "log:\n{}", daemon.log_text());
    assert!(daemon.status().await["pools"][0]["paused"].is_null());
    assert!(daemon.stop().await.success());
}
