//! The `celery:` source against real brokers and real Celery 5 workers
//! (tests/peers/redis.sh, rabbitmq.sh, celery.sh):
//!
//! 1. with no worker online, the demand is exactly the enqueued backlog (waiting only, running
//!    0, no worker answered), including on Redis a task sent with priority 9 (kombu's
//!    `queue\x06\x169` list);
//! 2. with a worker of concurrency 2 online, it answers `inspect active`: running tasks show up
//!    (running 2, one worker) while the demand never exceeds the backlog (on RabbitMQ, by at
//!    most the tasks the worker holds: `messages_ready` lags by the statistics interval);
//! 3. every task then runs exactly once (the ledger), and the drained queue reads 0.
//!
//! 4. Superset's own Celery worker (apache-superset from PyPI) is read the same way.
//!
//! Each poll's latency is printed (`--nocapture`) for the closing note.

mod support;

use std::os::unix::process::CommandExt;
use std::time::Duration;

use poolpilot::policy::CelerySignal;
use poolpilot::sources::MetricSource;
use poolpilot::sources::celery::CelerySource;
use poolpilot::time::Timestamp;
use support::celery::{CeleryPeers, Worker, enqueue, ledger_path, read_ledger};
use support::wait_until;

struct Case {
    label: &'static str,
    /// What poolpilot reads.
    signal: CelerySignal,
    /// What the workers and the producer connect to.
    worker_broker: String,
}

fn signal(json: serde_json::Value) -> CelerySignal {
    serde_json::from_value(json).unwrap()
}

async fn timed_poll(source: &CelerySource) -> (poolpilot::sources::Reading, Duration) {
    let t0 = Timestamp::now();
    let reading = source.poll().await.unwrap_or_else(|e| panic!("poll: {e}"));
    (reading, Timestamp::now().since(t0))
}

/// Polls every 500 ms (at most `rounds` times) until `done` holds; the last reading and its
/// latency.
async fn poll_until(
    source: &CelerySource,
    rounds: u32,
    mut done: impl FnMut(&poolpilot::sources::Reading) -> bool,
) -> (bool, (poolpilot::sources::Reading, Duration)) {
    let mut last = timed_poll(source).await;
    for _ in 0..rounds {
        if done(&last.0) {
            return (true, last);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        last = timed_poll(source).await;
    }
    (done(&last.0), last)
}

async fn backlog_then_worker(peers: CeleryPeers, case: Case, priority_task: bool) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_path(dir.path(), case.label);
    let queue = case.signal.queues[0].clone();
    let source = CelerySource::new(&case.signal);

    let tags: Vec<String> = (0..5).map(|i| format!("{}-t{i}", case.label)).collect();
    enqueue(&peers, &case.worker_broker, &queue, &tags, 2.0);
    let mut expected = 5.0;
    if priority_task {
        let script = format!(
            "import celery_app\ncelery_app.sleep.apply_async(('{}-prio', 0.5), queue={queue:?}, priority=9)\n",
            case.label
        );
        let ok = std::process::Command::new(&peers.python)
            .args(["-c", &script])
            .current_dir(&peers.app_dir)
            .env("CELERY_BROKER", &case.worker_broker)
            .env("CELERY_LEDGER", "/dev/null")
            .status()
            .unwrap()
            .success();
        assert!(ok);
        expected += 1.0;
    }

    // 1. Zero workers: the backlog alone. (RabbitMQ's figures lag up to its stats interval.)
    let (ok, (reading, took)) = poll_until(&source, 40, |r| r.demand == expected).await;
    assert!(ok, "{}: demand equals the backlog: {reading:?}", case.label);
    assert_eq!(reading.raw_value("waiting"), Some(expected));
    assert_eq!(
        reading.raw_value(&format!("waiting:{queue}")),
        Some(expected)
    );
    assert_eq!(reading.raw_value("running"), Some(0.0));
    assert_eq!(reading.raw_value("workers"), Some(0.0));
    println!(
        "{}: poll with no worker took {} ms: {:?}",
        case.label,
        took.as_millis(),
        reading.raw
    );

    // 2. One worker, concurrency 2: it answers, and runs tasks.
    let _worker = Worker::start(
        &peers,
        &case.worker_broker,
        &format!("{}-w1", case.label),
        &queue,
        2,
        &ledger,
        dir.path(),
    );
    // RabbitMQ's `messages_ready` lags by up to its statistics interval (5 s) while the
    // workers' answers are live, so for a moment a task can count as waiting and as held:
    // at most the worker's 2 running + 2 prefetched more than the backlog.
    let slack = if case.label == "rabbitmq" { 4.0 } else { 0.0 };
    let (ok, (reading, took)) = poll_until(&source, 60, |r| {
        assert!(
            r.demand <= expected + slack,
            "demand {} above the backlog: {:?}",
            r.demand,
            r.raw
        );
        r.raw_value("running") == Some(2.0) && r.raw_value("workers") == Some(1.0)
    })
    .await;
    assert!(
        ok,
        "{}: the worker's running tasks are seen: {reading:?}",
        case.label
    );
    println!(
        "{}: poll with one busy worker took {} ms: {:?}",
        case.label,
        took.as_millis(),
        reading.raw
    );

    // 3. Everything runs exactly once, then the demand is 0 (workers still answer).
    assert!(
        wait_until(Duration::from_secs(40), || async {
            read_ledger(&ledger).done.len() == expected as usize
        })
        .await,
        "{}: all tasks finish: {:?}",
        case.label,
        read_ledger(&ledger)
    );
    let l = read_ledger(&ledger);
    for (tag, nodes) in &l.started {
        assert_eq!(nodes.len(), 1, "{tag} started once: {nodes:?}");
    }
    assert!(
        wait_until(Duration::from_secs(20), || async {
            source.poll().await.is_ok_and(|r| r.demand == 0.0)
        })
        .await,
        "{}: an empty queue and idle worker read 0",
        case.label
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_backlog_then_a_real_worker() {
    let Some(peers) = CeleryPeers::get() else {
        return;
    };
    let queue = format!("pp-src-{}", std::process::id());
    let broker = format!("{}/1", peers.redis);
    let case = Case {
        label: "redis",
        signal: signal(serde_json::json!({
            "broker": broker, "queues": [queue], "timeout": "5s", "reply_window": "1s"
        })),
        worker_broker: broker.clone(),
    };
    backlog_then_worker(peers, case, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_backlog_then_a_real_worker() {
    let Some(peers) = CeleryPeers::get() else {
        return;
    };
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), &peers.rabbit_password).unwrap();
    let queue = format!("pp-src-{}", std::process::id());
    let case = Case {
        label: "rabbitmq",
        signal: signal(serde_json::json!({
            "broker": peers.amqp_without_password(), "queues": [queue],
            "management": peers.management, "password": {"file": secret.path()},
            "timeout": "5s", "reply_window": "1s"
        })),
        worker_broker: peers.amqp.clone(),
    };
    backlog_then_worker(peers, case, false).await;
}

/// Superset's own Celery worker (`celery --app=superset.tasks.celery_app:app worker`, from
/// `pip install apache-superset`, tests/peers/superset.sh) on Redis: with no worker, Superset
/// tasks sent by name wait in its default queue `celery` and are the demand; once the worker
/// is up it answers `inspect active`/`reserved` (one worker) and empties the queue. (The tasks
/// themselves fail on the test's empty SQLite metadata DB; only their passage through the
/// broker matters here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn superset_worker_on_redis() {
    let Some(peers) = CeleryPeers::get() else {
        return;
    };
    let vars = ["SUPERSET_PYTHON", "SUPERSET_CONFIG_PATH"].map(support::peer);
    let [Some(python), Some(config)] = vars else {
        return;
    };
    let broker = format!("{}/4", peers.redis);
    let source = CelerySource::new(&signal(serde_json::json!({
        "broker": broker, "queues": ["celery"], "timeout": "5s", "reply_window": "1s"
    })));
    let config_dir = std::path::Path::new(&config)
        .parent()
        .unwrap()
        .to_path_buf();
    let run = |args: &[&str]| {
        let mut c = std::process::Command::new(&python);
        c.args(args)
            .current_dir(&config_dir)
            .env("SUPERSET_CONFIG_PATH", &config)
            .env("CELERY_BROKER", &broker);
        c
    };
    let sent = run(&[
        "-c",
        "from superset.tasks.celery_app import app\nfor _ in range(3): app.send_task('prune_logs', queue='celery')\n",
    ])
    .status()
    .unwrap();
    assert!(sent.success());
    let (ok, (reading, took)) = poll_until(&source, 20, |r| r.demand == 3.0).await;
    assert!(ok, "three Superset tasks wait: {reading:?}");
    assert_eq!(reading.raw_value("workers"), Some(0.0));
    println!("superset: poll with no worker took {} ms", took.as_millis());

    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("superset-worker.log")).unwrap();
    let child = run(&[
        "-m",
        "celery",
        "--app=superset.tasks.celery_app:app",
        "worker",
        "-n",
        "celery@superset-w1",
        "-Q",
        "celery",
        "-c",
        "1",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
    ])
    .stdout(log.try_clone().unwrap())
    .stderr(log)
    .process_group(0)
    .spawn()
    .unwrap();
    let _worker = KillGroup(child);
    let (ok, (reading, took)) = poll_until(&source, 120, |r| {
        r.raw_value("workers") == Some(1.0) && r.raw_value("waiting") == Some(0.0)
    })
    .await;
    assert!(
        ok,
        "Superset's worker answers and empties its queue: {reading:?}\n{}",
        std::fs::read_to_string(dir.path().join("superset-worker.log")).unwrap_or_default()
    );
    println!(
        "superset: poll with Superset's worker took {} ms: {:?}",
        took.as_millis(),
        reading.raw
    );
}

/// Kills a child's whole process group on drop.
struct KillGroup(std::process::Child);

impl Drop for KillGroup {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the child's own process group (process_group(0)).
        unsafe {
            libc::kill(-(self.0.id() as i32), libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}
