//! Fencing against the real kube-apiserver: two daemons share one Lease; the leader starts a
//! Spark-decommission scale-down that stays busy, is frozen (SIGSTOP) past its lease, the
//! follower takes over and adopts the same victims, and the old leader is resumed (SIGCONT)
//! while its own view of the drain says "done". It must send nothing (its flag is stale at
//! that moment; the Lease is not), report `fenced`, and leave the removal to the new leader,
//! which removes exactly the victims the old one began draining.
//!
//! Each daemon reads the fake Spark master through a view of its own (`<url>/a`, `<url>/b`),
//! so the test can show the old leader a finished drain while the new leader's is still busy:
//! without fencing the resumed replica would lower the replicas itself.

mod support;

use std::time::Duration;

use support::daemon::{Daemon, metric};
use support::kube::KubeScene;
use support::spark::FakeWorker;
use support::wait_until;

const DRAIN: &str = "{ method: spark, timeout: 5m, on_timeout: keep }";

fn scale_calls(metrics: &str) -> f64 {
    metric(
        metrics,
        "poolpilot_actuator_calls_total",
        &["op=\"scale_to\"", "outcome=\"ok\""],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_deposed_leader_sends_nothing_and_the_new_leader_finishes_its_drain() {
    let Some(kubeconfig) = support::peer("POOLPILOT_TEST_KUBECONFIG") else {
        return;
    };
    let scene = KubeScene::start(kubeconfig, "pp-fence", 8, "2s").await;
    let master = &scene.master;
    let settings = |id: &str| {
        let policies = scene.policies_for_view(id, DRAIN);
        format!(
            "{}leader_election: {{ namespace: {}, lease_name: poolpilot, identity: {id}, lease_duration: 4s, kubeconfig: \"{}\" }}\n",
            scene.settings_with(&format!("state-{id}.json"), &policies),
            scene.namespace,
            scene.kubeconfig
        )
    };
    let mut a = Daemon::start(scene.dir.path(), "a", &settings("a"), &[]);
    let mut b = Daemon::start(scene.dir.path(), "b", &settings("b"), &[]);
    a.wait_ready(Duration::from_secs(30)).await;
    b.wait_ready(Duration::from_secs(30)).await;
    let leads = |d: serde_json::Value| d["leader"].as_bool().unwrap_or(false);
    assert!(
        wait_until(Duration::from_secs(20), || async {
            leads(a.status().await) != leads(b.status().await)
        })
        .await
    );
    let (old, new, old_view, new_view) = if leads(a.status().await) {
        (a, b, "a", "b")
    } else {
        (b, a, "b", "a")
    };

    // Three running workers, each also a Spark worker busy in both views.
    master.set(|m| m.waiting_apps = 3);
    assert!(
        wait_until(Duration::from_secs(20), || async {
            scene.replicas().await == 3 && scene.live_pods().await.len() == 3
        })
        .await,
        "{}",
        old.log_text()
    );
    let pods = scene.run_pods().await;
    master.set(|m| {
        m.workers = pods
            .iter()
            .map(|(_, ip)| FakeWorker {
                host: ip.clone(),
                decommissioned: false,
                busy_for: vec!["a".into(), "b".into()],
            })
            .collect()
    });

    // Demand gone: the leader decommissions two victims and waits for them.
    master.set(|m| m.waiting_apps = 0);
    assert!(
        wait_until(Duration::from_secs(30), || async {
            master.kills(old_view).len() == 2
        })
        .await,
        "{}",
        old.log_text()
    );
    let victims = master.kills(old_view);
    let calls_before = scale_calls(&old.metrics().await);
    assert_eq!(calls_before, 1.0, "the scale-up only");

    // Frozen past its lease: the follower takes over and adopts the same victims.
    old.signal("STOP");
    assert!(
        wait_until(Duration::from_secs(30), || async {
            leads(new.status().await)
        })
        .await,
        "the follower did not take over:\n{}",
        new.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(20), || async {
            master.kills(new_view).len() >= 2
        })
        .await,
        "the new leader did not resume the scale-down:\n{}",
        new.log_text()
    );
    let mut adopted = master.kills(new_view);
    adopted.sort();
    let mut expected = victims.clone();
    expected.sort();
    assert_eq!(
        adopted, expected,
        "the new leader finishes the old one's victims instead of choosing others"
    );
    assert_eq!(scene.replicas().await, 3);

    // The old leader's view of its drain now says "done"; then it resumes with a stale flag.
    master.set(|m| {
        m.workers
            .iter_mut()
            .for_each(|w| w.busy_for.retain(|v| v != old_view))
    });
    old.signal("CONT");
    assert!(
        wait_until(Duration::from_secs(20), || async {
            let s = old.status().await;
            !leads(s.clone()) && s["pools"][0]["last_actuation"]["outcome"] == "fenced"
        })
        .await,
        "the resumed replica did not report its drain fenced: {}\n{}",
        old.status().await,
        old.log_text()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        scene.replicas().await,
        3,
        "the deposed replica lowered the replicas:\n{}",
        old.log_text()
    );
    let old_metrics = old.metrics().await;
    assert_eq!(
        scale_calls(&old_metrics),
        calls_before,
        "a scale call from the deposed replica after it resumed:\n{}",
        old.log_text()
    );
    assert!(
        metric(&old_metrics, "poolpilot_fenced_actions_total", &[]).unwrap_or(0.0) >= 1.0,
        "{old_metrics}"
    );
    assert!(!old.log_text().contains("scaled the pool down"));

    // The new leader's drain finishes: exactly the adopted victims go.
    master.set(|m| m.workers.iter_mut().for_each(|w| w.busy_for.clear()));
    assert!(
        wait_until(Duration::from_secs(20), || async {
            scene.replicas().await == 1
        })
        .await,
        "{}",
        new.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(10), || async {
            new.log_text()
                .contains("scaled the pool down after draining")
        })
        .await,
        "{}",
        new.log_text()
    );
    // The victims handed to the actuator (pod-deletion-cost; a v1.20 ReplicaSet controller
    // ignores it, so which pods the controller deletes is not asserted).
    let line = new
        .log_text()
        .lines()
        .find(|l| l.contains("scaled the pool down after draining"))
        .unwrap()
        .to_owned();
    for (pod, ip) in &pods {
        assert_eq!(
            line.contains(pod.as_str()),
            victims.contains(ip),
            "{pod} ({ip}) removed iff decommissioned by the old leader: {line}"
        );
    }
    assert_eq!(scale_calls(&old.metrics().await), calls_before);
    assert!(new.stop().await.success());
    assert!(old.stop().await.success());
}
