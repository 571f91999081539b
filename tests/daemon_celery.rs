//! End to end: the built `poolpilot run` binary sizes two Celery pools — one on Redis, one on
//! RabbitMQ (tests/peers/redis.sh, rabbitmq.sh) — each a moto Auto Scaling group
//! (tests/peers/moto.sh) whose instances run real Celery 5 workers (`celery@<instance id>`,
//! concurrency 2, tests/peers/celery.sh) started by [`CeleryAgent`]. For each pool:
//!
//! 1. a long task runs on the only worker; a backlog of short tasks arrives: the pool scales up
//!    to `max` (demand = waiting + running, 2 per worker);
//! 2. once the backlog is done the pool scales back down to 1 through the Celery drain
//!    (cancel_consumer on the victims, wait for their active/reserved to empty), and the
//!    worker running the long task survives: it is never terminated, the long task finishes
//!    on it;
//! 3. no task is lost or run twice: the ledger shows every task started once and done once.

mod support;

use std::path::Path;
use std::time::Duration;

use support::celery::{AgentSpec, CeleryAgent, CeleryPeers, enqueue, ledger_path, read_ledger};
use support::daemon::{Daemon, tick_settings};
use support::moto::{AWS_ENV, delete_group, loopback_group};
use support::wait_until;

const LONG_TASK_SECS: f64 = 75.0;
const SHORT_TASKS: usize = 10;
const SHORT_TASK_SECS: f64 = 4.0;

fn policy(name: &str, celery: &str, group: &str, endpoint: &str) -> String {
    format!(
        "pool: {name}\n\
         signals:\n  - celery: {celery}\n    per_worker: 2\n\
         workers:\n  aws_asg: {{ group: {group}, region: us-east-1, endpoint_url: \"{endpoint}\" }}\n\
         bounds: {{ min: 1, max: 3 }}\nboot_time: 5s\n\
         scale_up: {{ stabilization: 0s, cooldown: 3s }}\n\
         scale_down: {{ stabilization: 8s, cooldown: 0s, drain: {{ method: celery, timeout: 2m, on_timeout: keep }} }}\n\
         on_missing_signal: {{ hold_for: 10m }}\n"
    )
}

struct Pool {
    label: &'static str,
    agent: CeleryAgent,
    broker: String,
    queue: String,
    ledger: std::path::PathBuf,
    group: String,
}

async fn setup_pool(
    label: &'static str,
    peers: &CeleryPeers,
    endpoint: &str,
    broker: String,
    octet: u8,
    dir: &Path,
) -> Pool {
    let pid = std::process::id();
    let group = format!("pp-celery-{label}-{pid}");
    let queue = format!("pp-{label}-{pid}");
    let ledger = ledger_path(dir, label);
    loopback_group(endpoint, &group, octet, 3).await;
    let agent = CeleryAgent::start(AgentSpec {
        endpoint: endpoint.to_string(),
        group: group.clone(),
        peers: peers.clone(),
        broker: broker.clone(),
        queue: queue.clone(),
        concurrency: 2,
        ledger: ledger.clone(),
        dir: dir.to_path_buf(),
    });
    Pool {
        label,
        agent,
        broker,
        queue,
        ledger,
        group,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn celery_pools_on_redis_and_rabbitmq_scale_up_and_down_keeping_the_busy_worker() {
    let Some(peers) = CeleryPeers::get() else {
        return;
    };
    let Some(endpoint) = support::peer("POOLPILOT_TEST_AWS_ENDPOINT") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    let octet = (10 + pid % 200) as u8;
    let secret = dir.path().join("rabbit-pw");
    std::fs::write(&secret, &peers.rabbit_password).unwrap();

    let redis_broker = format!("{}/2", peers.redis);
    let pools = [
        setup_pool(
            "redis",
            &peers,
            &endpoint,
            redis_broker.clone(),
            octet,
            dir.path(),
        )
        .await,
        setup_pool(
            "rabbitmq",
            &peers,
            &endpoint,
            peers.amqp.clone(),
            octet + 1,
            dir.path(),
        )
        .await,
    ];
    let celery_of = |p: &Pool| match p.label {
        "redis" => format!(
            "{{ broker: \"{redis_broker}\", queues: [{}], timeout: 5s }}",
            p.queue
        ),
        _ => format!(
            "{{ broker: \"{}\", queues: [{}], management: \"{}\", password: {{ file: \"{}\" }}, timeout: 5s }}",
            peers.amqp_without_password(),
            p.queue,
            peers.management,
            secret.display()
        ),
    };

    // The first instance's worker runs the long task.
    for p in &pools {
        assert!(
            wait_until(Duration::from_secs(60), || async {
                p.agent.snapshot().booted.len() == 1
            })
            .await,
            "{}: the first instance boots a worker",
            p.label
        );
        enqueue(
            &peers,
            &p.broker,
            &p.queue,
            &[format!("{}-long", p.label)],
            LONG_TASK_SECS,
        );
    }
    let mut busy = Vec::new();
    for p in &pools {
        let first = p.agent.snapshot().booted[0].clone();
        assert!(
            wait_until(Duration::from_secs(60), || async {
                read_ledger(&p.ledger)
                    .started
                    .contains_key(&format!("{}-long", p.label))
            })
            .await,
            "{}: the long task starts",
            p.label
        );
        let on = read_ledger(&p.ledger).started[&format!("{}-long", p.label)].clone();
        assert_eq!(on, [format!("celery@{first}")], "{}", p.label);
        busy.push(first);
    }

    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    for p in &pools {
        std::fs::write(
            policies.join(format!("{}.yaml", p.label)),
            policy(
                &format!("celery-{}", p.label),
                &celery_of(p),
                &p.group,
                &endpoint,
            ),
        )
        .unwrap();
    }
    let validate = std::process::Command::new(env!("CARGO_BIN_EXE_poolpilot"))
        .arg("validate")
        .arg(&policies)
        .output()
        .unwrap();
    assert!(validate.status.success(), "{validate:?}");
    let settings = tick_settings(&policies, &dir.path().join("state/state.json"));
    let mut daemon = Daemon::start_with_env(dir.path(), "daemon", &settings, &[], &AWS_ENV);
    daemon.wait_ready(Duration::from_secs(30)).await;

    // 1. A backlog: scale up to max.
    for p in &pools {
        let tags: Vec<String> = (0..SHORT_TASKS)
            .map(|i| format!("{}-s{i}", p.label))
            .collect();
        enqueue(&peers, &p.broker, &p.queue, &tags, SHORT_TASK_SECS);
    }
    for p in &pools {
        assert!(
            wait_until(Duration::from_secs(60), || async {
                p.agent.snapshot().desired_now() == 3
            })
            .await,
            "{}: scale-up to 3: {:?}\n{}",
            p.label,
            p.agent.snapshot(),
            daemon.log_text()
        );
    }

    // 2. The backlog done, back to 1: the busy worker stays.
    for p in &pools {
        assert!(
            wait_until(Duration::from_secs(150), || async {
                let s = p.agent.snapshot();
                s.desired_now() == 1 && s.terminated.len() >= 2
            })
            .await,
            "{}: scale-down to 1: {:?}\n{}",
            p.label,
            p.agent.snapshot(),
            daemon.log_text()
        );
    }
    for (p, busy) in pools.iter().zip(&busy) {
        let s = p.agent.snapshot();
        assert!(
            !s.terminated.contains(busy),
            "{}: the worker running the long task survives: {s:?}",
            p.label
        );
        let l = read_ledger(&p.ledger);
        assert!(
            !l.done.contains_key(&format!("{}-long", p.label)),
            "{}: the scale-down happened while the long task ran (make LONG_TASK_SECS longer): {l:?}",
            p.label
        );
    }
    let log = daemon.log_text();
    assert!(
        log.contains("\"outcome\":\"drained\""),
        "drains went through the Celery drain: {log}"
    );
    // The victims were told to stop consuming (Celery logs `Canceling queue <q>` from
    // `Consumer.cancel_task_queue`, celery/worker/consumer/consumer.py); the busy worker never.
    for (p, busy) in pools.iter().zip(&busy) {
        let worker_log = |id: &str| {
            std::fs::read_to_string(dir.path().join(format!("worker-{id}.log"))).unwrap()
        };
        for victim in &p.agent.snapshot().terminated {
            assert!(
                worker_log(victim).contains(&format!("Canceling queue {}", p.queue)),
                "{}: victim {victim} got cancel_consumer before it was removed",
                p.label
            );
        }
        assert!(
            !worker_log(busy).contains("Canceling queue"),
            "{}: the busy worker kept consuming",
            p.label
        );
    }

    // 3. The long tasks finish where they started; every task ran exactly once.
    for (p, busy) in pools.iter().zip(&busy) {
        let long = format!("{}-long", p.label);
        assert!(
            wait_until(Duration::from_secs(90), || async {
                read_ledger(&p.ledger).done.contains_key(&long)
            })
            .await,
            "{}: the long task finishes",
            p.label
        );
        let l = read_ledger(&p.ledger);
        assert_eq!(l.done[&long], [format!("celery@{busy}")], "{}", p.label);
        assert_eq!(l.started.len(), SHORT_TASKS + 1, "{}: {l:?}", p.label);
        assert_eq!(
            l.done.len(),
            SHORT_TASKS + 1,
            "{}: nothing lost: {l:?}",
            p.label
        );
        for (tag, nodes) in l.started.iter().chain(l.done.iter()) {
            assert_eq!(nodes.len(), 1, "{}: {tag} ran once: {nodes:?}", p.label);
        }
    }
    assert!(daemon.stop().await.success());
    for p in &pools {
        delete_group(&endpoint, &p.group).await;
    }
}
