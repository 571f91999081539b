//! The Celery drain through the broker against real workers (tests/peers/redis.sh,
//! rabbitmq.sh, celery.sh), on a BUSY victim — the case the daemon test's idle-first choice
//! avoids:
//!
//! 1. `begin` on the worker running a task: `cancel_consumer` reaches that node only; tasks
//!    sent afterwards all run on the other worker;
//! 2. `is_drained` is false while its task runs, true once it finished (active and reserved
//!    empty), and that task finished on the victim (not lost, not rerun);
//! 3. `restore` (`add_consumer`): the victim takes tasks again.

mod support;

use std::time::Duration;

use poolpilot::actuators::Member;
use poolpilot::drain::Drainer;
use poolpilot::drain::celery::BrokerDrainer;
use poolpilot::policy::CelerySignal;
use poolpilot::sources::celery_broker::build_broker;
use support::celery::{CeleryPeers, Worker, enqueue, ledger_path, read_ledger};
use support::wait_until;

async fn busy_victim(peers: CeleryPeers, label: &str, signal: CelerySignal, worker_broker: &str) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_path(dir.path(), label);
    let queue = signal.queues[0].clone();
    let drainer = BrokerDrainer::new(
        build_broker(&signal),
        signal.queues.clone(),
        signal.reply_window,
    );
    let victim_id = format!("{label}-victim");
    let other_id = format!("{label}-other");
    let _victim = Worker::start(
        &peers,
        worker_broker,
        &victim_id,
        &queue,
        1,
        &ledger,
        dir.path(),
    );
    // The victim alone at first, so the long task is surely its.
    enqueue(
        &peers,
        worker_broker,
        &queue,
        &[format!("{label}-long")],
        8.0,
    );
    assert!(
        wait_until(Duration::from_secs(40), || async {
            read_ledger(&ledger)
                .started
                .contains_key(&format!("{label}-long"))
        })
        .await,
        "{label}: the victim starts the long task"
    );
    let _other = Worker::start(
        &peers,
        worker_broker,
        &other_id,
        &queue,
        1,
        &ledger,
        dir.path(),
    );
    let victim = Member::new(&victim_id);
    // Both online (the other one answers the broadcast) before the drain begins.
    assert!(
        wait_until(Duration::from_secs(40), || async {
            drainer
                .rank(vec![Member::new(&other_id), victim.clone()])
                .await
                .is_ok_and(|r| r[0].id == other_id)
        })
        .await,
        "{label}: the idle worker ranks first"
    );

    drainer.begin(&victim).await.expect("cancel_consumer");
    assert!(!drainer.is_drained(&victim).await.unwrap(), "{label}: busy");
    let tags: Vec<String> = (0..4).map(|i| format!("{label}-after{i}")).collect();
    enqueue(&peers, worker_broker, &queue, &tags, 0.5);
    assert!(
        wait_until(Duration::from_secs(40), || async {
            drainer.is_drained(&victim).await.unwrap_or(false)
        })
        .await,
        "{label}: drained once the long task is done"
    );
    assert!(
        wait_until(Duration::from_secs(30), || async {
            tags.iter()
                .all(|t| read_ledger(&ledger).done.contains_key(t))
        })
        .await,
        "{label}: the later tasks run: {:?}",
        read_ledger(&ledger)
    );
    let l = read_ledger(&ledger);
    assert_eq!(
        l.done[&format!("{label}-long")],
        [format!("celery@{victim_id}")],
        "{label}: the long task finished on the victim"
    );
    for t in &tags {
        assert_eq!(
            l.started[t],
            [format!("celery@{other_id}")],
            "{label}: {t} ran once, on the other worker only"
        );
    }

    // An abandoned drain: the victim consumes again.
    drainer.restore(&victim).await.expect("add_consumer");
    let more: Vec<String> = (0..6).map(|i| format!("{label}-back{i}")).collect();
    enqueue(&peers, worker_broker, &queue, &more, 1.0);
    assert!(
        wait_until(Duration::from_secs(40), || async {
            let l = read_ledger(&ledger);
            more.iter().all(|t| l.done.contains_key(t))
        })
        .await,
        "{label}: the restored tasks run"
    );
    let l = read_ledger(&ledger);
    assert!(
        more.iter()
            .any(|t| l.started[t] == [format!("celery@{victim_id}")]),
        "{label}: after add_consumer the victim takes tasks again: {l:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_busy_victim_stops_consuming_finishes_and_can_come_back() {
    let Some(peers) = CeleryPeers::get() else {
        return;
    };
    let broker = format!("{}/5", peers.redis);
    let signal: CelerySignal = serde_json::from_value(serde_json::json!({
        "broker": broker, "queues": [format!("pp-drain-{}", std::process::id())]
    }))
    .unwrap();
    busy_victim(peers, "redis", signal, &broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_busy_victim_stops_consuming_finishes_and_can_come_back() {
    let Some(peers) = CeleryPeers::get() else {
        return;
    };
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), &peers.rabbit_password).unwrap();
    let signal: CelerySignal = serde_json::from_value(serde_json::json!({
        "broker": peers.amqp_without_password(),
        "queues": [format!("pp-drain-{}", std::process::id())],
        "management": peers.management, "password": {"file": secret.path()}
    }))
    .unwrap();
    let amqp = peers.amqp.clone();
    busy_victim(peers, "rabbitmq", signal, &amqp).await;
}
