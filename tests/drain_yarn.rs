//! YARN NodeManager graceful decommission and the YARN source against the ResourceManager
//! fixture (tests/support/yarn_fixture.rs: no Hadoop is installable here; the fixture follows
//! ResourceManagerRest.md and GracefulDecommission.md, cited there). What these prove:
//!
//! - victims are the idle NodeManagers; a busy one is never chosen while idle ones exist;
//! - a drain waits for DECOMMISSIONED (containers finished) before the member is removed;
//! - at the timeout with `on_timeout: keep` the busy node stays and is recommissioned (RUNNING,
//!   out of the exclude file); an abandoned drain is recommissioned too;
//! - after removal the host leaves the exclude file (a reused address is not refused later);
//! - the source reads cluster and queue demand from the same fixture, with `user.name`.

mod support;

use std::time::Duration;

use poolpilot::actuators::{Member, RecordingActuator};
use poolpilot::drain::yarn::{YarnDrainer, read_excluded};
use poolpilot::drain::{DrainOutcome, Drainer, drain_member, scale_down};
use poolpilot::engine::DrainPlan;
use poolpilot::fence::Unfenced;
use poolpilot::policy::{
    DrainMethod, HttpOptions, OnDrainTimeout, YarnDecommission, YarnDemand, YarnSignal,
};
use poolpilot::sources::MetricSource;
use poolpilot::sources::yarn::YarnSource;
use poolpilot::time::Timestamp;
use support::yarn_fixture::YarnRm;
use tokio::sync::watch;

fn signal(rm: &YarnRm, queue: Option<&str>) -> YarnSignal {
    YarnSignal {
        resource_manager: rm.url.clone(),
        demand: YarnDemand::Vcores,
        queue: queue.map(String::from),
        user: Some("poolpilot".into()),
        decommission: Some(YarnDecommission {
            exclude_file: rm.exclude_file.clone(),
            refresh_command: rm.refresh_command(),
        }),
        http: HttpOptions {
            timeout: Duration::from_secs(2),
            ..HttpOptions::default()
        },
    }
}

fn member(i: u8) -> Member {
    Member::new(format!("i-{i}")).with_address(format!("127.0.10.{i}"))
}

fn plan(timeout_ms: u64, on_timeout: OnDrainTimeout) -> DrainPlan {
    DrainPlan {
        remove: 0,
        method: DrainMethod::Yarn,
        timeout: Duration::from_millis(timeout_ms),
        on_timeout,
    }
}

async fn fixture() -> (tempfile::TempDir, YarnRm) {
    let dir = tempfile::tempdir().unwrap();
    let rm = YarnRm::start(&dir.path().join("yarn.exclude.xml")).await;
    (dir, rm)
}

#[tokio::test]
async fn idle_nodemanagers_are_decommissioned_and_removed_never_the_busy_one() {
    let (_dir, rm) = fixture().await;
    rm.add_node("127.0.10.1", 4, 3); // busy
    rm.add_node("127.0.10.2", 4, 0);
    rm.add_node("127.0.10.3", 4, 0);
    let pool = RecordingActuator::with_members(vec![member(1), member(2), member(3)]);
    let drainer = YarnDrainer::new(&signal(&rm, None));
    let (_tx, abort) = watch::channel(false);
    let report = scale_down(
        &pool,
        &drainer,
        &Unfenced,
        &plan(10_000, OnDrainTimeout::Force),
        1,
        Duration::from_millis(50),
        abort,
    )
    .await
    .unwrap();
    let mut removed = report.removed.clone();
    removed.sort();
    assert_eq!(removed, ["i-2", "i-3"], "{report:?}");
    assert_eq!(rm.node_state("127.0.10.1").as_deref(), Some("RUNNING"));
    for host in ["127.0.10.2", "127.0.10.3"] {
        assert!(
            rm.transitions()
                .contains(&(host.to_string(), "DECOMMISSIONED".to_string())),
            "{:?}",
            rm.transitions()
        );
    }
    // forget: the removed hosts left the exclude file
    assert!(read_excluded(&rm.exclude_file).unwrap().is_empty());
    assert!(rm.users().iter().all(|u| u == "poolpilot") && !rm.users().is_empty());
}

#[tokio::test]
async fn a_drain_waits_for_decommissioned_before_it_counts() {
    let (_dir, rm) = fixture().await;
    rm.add_node("127.0.10.4", 4, 2);
    let drainer = YarnDrainer::new(&signal(&rm, None));
    let (_tx, abort) = watch::channel(false);
    let started = Timestamp::now();
    let drain = tokio::spawn(async move {
        let outcome = drain_member(
            &drainer,
            &member(4),
            Duration::from_secs(20),
            Duration::from_millis(50),
            abort,
        )
        .await;
        (outcome, drainer)
    });
    assert!(
        support::wait_until(Duration::from_secs(5), || async {
            rm.node_state("127.0.10.4").as_deref() == Some("DECOMMISSIONING")
        })
        .await
    );
    let text = std::fs::read_to_string(&rm.exclude_file).unwrap();
    assert!(
        text.contains("<host><name>127.0.10.4</name><timeout>-1</timeout></host>"),
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!drain.is_finished(), "drained while 2 containers still run");
    rm.set_containers("127.0.10.4", 0);
    let (outcome, _drainer) = drain.await.unwrap();
    assert_eq!(outcome, DrainOutcome::Drained);
    assert_eq!(
        rm.node_state("127.0.10.4").as_deref(),
        Some("DECOMMISSIONED")
    );
    assert!(Timestamp::now().since(started) >= Duration::from_millis(600));
}

#[tokio::test]
async fn at_the_timeout_a_kept_node_is_recommissioned() {
    let (_dir, rm) = fixture().await;
    rm.add_node("127.0.10.5", 4, 1);
    rm.add_node("127.0.10.6", 4, 2);
    let pool = RecordingActuator::with_members(vec![member(5), member(6)]);
    let drainer = YarnDrainer::new(&signal(&rm, None));
    let (_tx, abort) = watch::channel(false);
    let report = scale_down(
        &pool,
        &drainer,
        &Unfenced,
        &plan(700, OnDrainTimeout::Keep),
        1,
        Duration::from_millis(50),
        abort,
    )
    .await
    .unwrap();
    assert_eq!(
        report.drains,
        [("i-5".to_string(), DrainOutcome::TimedOut)],
        "the node with fewer containers is the victim"
    );
    assert!(report.removed.is_empty() && pool.calls().is_empty());
    assert!(
        rm.transitions()
            .contains(&("127.0.10.5".to_string(), "DECOMMISSIONING".to_string()))
    );
    assert_eq!(rm.node_state("127.0.10.5").as_deref(), Some("RUNNING"));
    assert!(read_excluded(&rm.exclude_file).unwrap().is_empty());
}

#[tokio::test]
async fn at_the_timeout_a_forced_node_is_removed_and_stays_excluded() {
    let (_dir, rm) = fixture().await;
    rm.add_node("127.0.10.5", 4, 1);
    rm.add_node("127.0.10.6", 4, 2);
    let pool = RecordingActuator::with_members(vec![member(5), member(6)]);
    let drainer = YarnDrainer::new(&signal(&rm, None));
    let (_tx, abort) = watch::channel(false);
    let report = scale_down(
        &pool,
        &drainer,
        &Unfenced,
        &plan(700, OnDrainTimeout::Force),
        1,
        Duration::from_millis(50),
        abort,
    )
    .await
    .unwrap();
    assert_eq!(report.drains, [("i-5".to_string(), DrainOutcome::TimedOut)]);
    assert_eq!(report.removed, ["i-5"]);
    // not recommissioned: a dead node must not take containers
    assert_eq!(
        rm.node_state("127.0.10.5").as_deref(),
        Some("DECOMMISSIONING")
    );
    assert!(
        read_excluded(&rm.exclude_file)
            .unwrap()
            .contains("127.0.10.5")
    );
}

#[tokio::test]
async fn forget_clears_the_exclude_file_even_after_the_rm_dropped_the_node() {
    let (_dir, rm) = fixture().await;
    rm.add_node("127.0.10.9", 4, 0);
    let drainer = YarnDrainer::new(&signal(&rm, None));
    drainer.begin(&member(9)).await.unwrap();
    assert!(drainer.is_drained(&member(9)).await.unwrap());
    assert!(!read_excluded(&rm.exclude_file).unwrap().is_empty());
    rm.remove_node("127.0.10.9"); // the instance is gone and the RM forgot it
    drainer.forget(&member(9)).await.unwrap();
    assert!(read_excluded(&rm.exclude_file).unwrap().is_empty());
}

#[tokio::test]
async fn an_abandoned_drain_is_recommissioned() {
    let (_dir, rm) = fixture().await;
    rm.add_node("127.0.10.7", 4, 1);
    let pool = RecordingActuator::with_members(vec![member(7), member(8)]);
    rm.add_node("127.0.10.8", 4, 3);
    let drainer = YarnDrainer::new(&signal(&rm, None));
    let (tx, abort) = watch::channel(false);
    let aborter = tokio::spawn({
        let state = rm.state.clone();
        async move {
            // abandon once the victim is DECOMMISSIONING (the pool needs capacity again)
            for _ in 0..100 {
                let draining = state
                    .lock()
                    .unwrap()
                    .nodes
                    .iter()
                    .any(|n| n.state == "DECOMMISSIONING");
                if draining {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tx.send(true).unwrap();
            tx
        }
    });
    let report = scale_down(
        &pool,
        &drainer,
        &Unfenced,
        &plan(10_000, OnDrainTimeout::Force),
        1,
        Duration::from_millis(50),
        abort,
    )
    .await
    .unwrap();
    let _tx = aborter.await.unwrap();
    assert_eq!(
        report.drains,
        [("i-7".to_string(), DrainOutcome::Abandoned)]
    );
    assert!(pool.calls().is_empty());
    assert_eq!(rm.node_state("127.0.10.7").as_deref(), Some("RUNNING"));
    assert!(read_excluded(&rm.exclude_file).unwrap().is_empty());
}

#[tokio::test]
async fn a_member_the_rm_does_not_know_is_kept_and_nothing_is_excluded() {
    let (_dir, rm) = fixture().await;
    rm.add_node("127.0.10.1", 4, 0);
    let drainer = YarnDrainer::new(&signal(&rm, None));
    let stranger = Member::new("i-99").with_address("127.0.10.99");
    let err = drainer.begin(&stranger).await.unwrap_err();
    assert_eq!(err.label(), "unknown_worker", "{err}");
    assert!(read_excluded(&rm.exclude_file).unwrap().is_empty());
    assert_eq!(rm.state.lock().unwrap().refreshes, 0);
}

#[tokio::test]
async fn the_source_reads_cluster_and_queue_demand_from_the_rm() {
    let (_dir, rm) = fixture().await;
    rm.add_node("127.0.10.1", 4, 3);
    rm.add_node("127.0.10.2", 4, 1);
    rm.set_pending(6, 2);
    for queue in [None, Some("etl"), Some("root.etl")] {
        let source = YarnSource::new(&signal(&rm, queue));
        let mut latencies = Vec::new();
        for _ in 0..20 {
            let started = Timestamp::now();
            let r = source.poll().await.unwrap();
            latencies.push(Timestamp::now().since(started).as_millis());
            assert_eq!(r.demand, 4.0 + 6.0, "{queue:?}: {r:?}");
            assert_eq!(r.raw_value("apps_pending"), Some(2.0));
        }
        latencies.sort();
        eprintln!(
            "yarn poll latency ({queue:?}) over 20 polls: median {} ms, max {} ms",
            latencies[10], latencies[19]
        );
    }
    let mut memory = signal(&rm, Some("etl"));
    memory.demand = YarnDemand::Memory;
    let r = YarnSource::new(&memory).poll().await.unwrap();
    assert_eq!(r.demand, (4.0 + 6.0) * 2048.0);
    assert_eq!(r.labels, [("queue".to_string(), "root.etl".to_string())]);
    let missing = YarnSource::new(&signal(&rm, Some("nosuch")))
        .poll()
        .await
        .unwrap_err();
    assert!(
        missing.to_string().contains("no queue `nosuch`"),
        "{missing}"
    );

    // `poolpilot probe` shows the demand, the raw figures and the queue.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("yarn.yaml");
    std::fs::write(
        &policy,
        format!(
            "pool: yarn\nsignals:\n  - yarn: {{ resource_manager: \"{}\", queue: etl, user: poolpilot }}\n    per_worker: 4\n\
             workers:\n  aws_asg: {{ group: g, region: us-east-1 }}\nbounds: {{ min: 1, max: 9 }}\nscale_down: {{ drain: {{ method: none }} }}\n",
            rm.url
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_poolpilot"))
        .arg("probe")
        .arg(&policy)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("demand   10 (per_worker 4 → 3 workers"),
        "{text}"
    );
    assert!(text.contains("queue_pending_vcores=6"), "{text}");
    assert!(text.contains("labels   {queue=\"root.etl\"}"), "{text}");
    eprintln!("{text}");
}
