//! Leader election against the real kube-apiserver: two daemons share one Lease; exactly one
//! actuates while the other computes (and remembers the leader's changes); `kill -9` of the
//! leader makes the other take over and actuate; the two never lead at the same time.

mod support;

use std::time::Duration;

use support::daemon::Daemon;
use support::kube::{KubeScene, replicas};
use support::wait_until;

async fn leader_flags(a: &Daemon, b: &Daemon) -> (bool, bool) {
    let flag = |v: serde_json::Value| v["leader"].as_bool().unwrap_or(false);
    (flag(a.status().await), flag(b.status().await))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_actuates_and_a_follower_takes_over_warm() {
    let Some(kubeconfig) = support::peer("POOLPILOT_TEST_KUBECONFIG") else {
        return;
    };
    let scene = KubeScene::start(kubeconfig, "pp-leader", 8, "2s").await;
    let (api, master, dir) = (&scene.api, &scene.master, &scene.dir);
    let settings = |id: &str| {
        format!(
            "{}leader_election: {{ namespace: {}, lease_name: poolpilot, identity: {id}, lease_duration: 4s, kubeconfig: \"{}\" }}\n",
            scene.settings(&format!("state-{id}.json")),
            scene.namespace,
            scene.kubeconfig
        )
    };
    let mut a = Daemon::start(dir.path(), "a", &settings("a"), &[]);
    let mut b = Daemon::start(dir.path(), "b", &settings("b"), &[]);
    a.wait_ready(Duration::from_secs(30)).await;
    b.wait_ready(Duration::from_secs(30)).await;

    assert!(
        wait_until(Duration::from_secs(20), || async {
            matches!(leader_flags(&a, &b).await, (true, false) | (false, true))
        })
        .await
    );
    for _ in 0..10 {
        assert_ne!(
            leader_flags(&a, &b).await,
            (true, true),
            "two leaders at once"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (a_leads, _) = leader_flags(&a, &b).await;
    let (leader, follower) = if a_leads { (a, b) } else { (b, a) };
    assert_eq!(follower.status().await["pools"][0]["actuation"], "follower");

    master.set(|m| m.waiting_apps = 3);
    assert!(
        wait_until(Duration::from_secs(20), || async {
            replicas(api).await == 3
        })
        .await,
        "{}",
        leader.log_text()
    );
    // The log line is written after the call returns: the apiserver can show the new size
    // first, so wait for it rather than read it once.
    assert!(
        wait_until(Duration::from_secs(10), || async {
            leader.log_text().contains("scaled the pool up")
        })
        .await,
        "{}",
        leader.log_text()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !follower.log_text().contains("scaled the pool up"),
        "a follower never actuates:\n{}",
        follower.log_text()
    );
    assert!(
        follower.log_text().contains("resized by another instance"),
        "the follower remembers the leader's change:\n{}",
        follower.log_text()
    );

    leader.kill9();
    assert!(
        wait_until(Duration::from_secs(20), || async {
            follower.status().await["leader"] == true
        })
        .await,
        "the follower did not take over:\n{}",
        follower.log_text()
    );
    master.set(|m| m.waiting_apps = 5);
    assert!(
        wait_until(Duration::from_secs(20), || async {
            replicas(api).await == 5
        })
        .await,
        "{}",
        follower.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(10), || async {
            follower.log_text().contains("scaled the pool up")
        })
        .await,
        "{}",
        follower.log_text()
    );
    assert!(follower.stop().await.success());
}
