//! Fault matrix: every HTTP source × every way a server can fail → the typed `SignalFault`,
//! and the engine, given that `Signal::Missing`, does not shrink the pool (now, and after
//! `hold_for` has run out). The database source's cells and the Celery Redis broker's (a fake
//! RESP server) are at the end.

mod support;

use std::time::Duration;

use poolpilot::engine::{self, PoolMemory, PoolObservation, Signal, SignalFault, WorkerCounts};
use poolpilot::policy::{self, Policy, SignalSpec};
use poolpilot::sources::{self, MetricSource};
use poolpilot::time::Timestamp;
use support::faulty_http::{Behavior, FaultyServer, refused_base};

const TIMEOUT_MS: u64 = 600;
const CAP: u64 = 4096;
const TOKEN_VAR: &str = "POOLPILOT_FAULTS_TEST_TOKEN";

/// One source kind: its policy YAML (pointing at `{base}`) and a body with wrong field types.
struct Kind {
    label: &'static str,
    signal_yaml: &'static str,
    wrong_types: &'static str,
}

const KINDS: &[Kind] = &[
    Kind {
        label: "trino /v1/query",
        signal_yaml: "trino: { coordinator: '{base}', endpoint: query, http: {http} }",
        wrong_types: r#"[{"state": 7}]"#,
    },
    Kind {
        label: "trino /ui/api/stats",
        signal_yaml: "trino: { coordinator: '{base}', endpoint: ui_stats, http: {http} }",
        wrong_types: r#"{"queuedQueries": "7", "runningQueries": 1}"#,
    },
    Kind {
        label: "trino /metrics",
        signal_yaml: "trino: { coordinator: '{base}', endpoint: metrics, http: {http} }",
        wrong_types: "trino_execution_name_QueryManager_QueuedQueries seven\ntrino_execution_name_QueryManager_RunningQueries 1\n",
    },
    Kind {
        label: "presto /v1/cluster",
        signal_yaml: "presto: { coordinator: '{base}', http: {http} }",
        wrong_types: r#"{"queuedQueries": [], "runningQueries": 1, "blockedQueries": 0}"#,
    },
    Kind {
        label: "airflow 3 pool",
        signal_yaml: "airflow: { api: '{base}', version: '3', pool: p, http: {bearer_http} }",
        wrong_types: r#"{"running_slots": "2", "queued_slots": 1, "scheduled_slots": 0}"#,
    },
    Kind {
        label: "airflow 3 queues",
        signal_yaml: "airflow: { api: '{base}', version: '3', queues: [default], http: {bearer_http} }",
        wrong_types: r#"{"task_instances": [], "total_entries": "five"}"#,
    },
    Kind {
        label: "airflow 2 all pools",
        signal_yaml: "airflow: { api: '{base}', version: '2', http: {http} }",
        wrong_types: r#"{"pools": {"name": "x"}, "total_entries": 1}"#,
    },
    Kind {
        label: "celery rabbitmq management",
        signal_yaml: "celery: { broker: 'amqp://pp@127.0.0.1//', queues: [q], management: '{base}', timeout: 600ms, reply_window: 100ms, max_body_bytes: 4096 }",
        wrong_types: r#"{"name": "q", "messages_ready": "7", "messages_unacknowledged": 0}"#,
    },
    Kind {
        label: "spark /json/",
        signal_yaml: "spark: { master: '{base}', cores_per_waiting_app: 2, http: {http} }",
        wrong_types: r#"{"status": "ALIVE", "cores": 4, "coresused": "4", "activeapps": []}"#,
    },
    Kind {
        label: "prometheus /api/v1/query",
        signal_yaml: "prometheus: { url: '{base}', query: 'sum(queue_depth)', http: {bearer_http} }",
        wrong_types: r#"{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": "7"}]}}"#,
    },
    Kind {
        label: "yarn /ws/v1/cluster/metrics",
        signal_yaml: "yarn: { resource_manager: '{base}', demand: vcores, user: poolpilot, decommission: { exclude_file: /nonexistent/exclude.xml }, http: {http} }",
        wrong_types: r#"{"clusterMetrics": {"appsPending": 1, "allocatedVirtualCores": "4", "pendingVirtualCores": 2}}"#,
    },
    Kind {
        label: "yarn queue (metrics + scheduler)",
        signal_yaml: "yarn: { resource_manager: '{base}', demand: memory, queue: etl, decommission: { exclude_file: /nonexistent/exclude.xml }, http: {bearer_http} }",
        wrong_types: r#"{"clusterMetrics": {"appsPending": 1, "allocatedMB": 4096, "pendingMB": [2048]}}"#,
    },
];

fn http_yaml(bearer: bool) -> String {
    let auth = if bearer {
        format!(", auth: {{ bearer: {{ token: {{ env: {TOKEN_VAR} }} }} }}")
    } else {
        String::new()
    };
    format!("{{ timeout: {TIMEOUT_MS}ms, max_body_bytes: {CAP}{auth} }}")
}

fn policy_for(signal_yaml: &str, base: &str) -> Policy {
    let signal = signal_yaml
        .replace("{base}", base)
        .replace("{bearer_http}", &http_yaml(true))
        .replace("{http}", &http_yaml(false));
    let text = format!(
        "pool: faults\nsignals:\n  - {signal}\n    per_worker: 2\nworkers:\n  kubernetes: {{ namespace: ns, deployment: w }}\n\
         bounds: {{ min: 1, max: 50 }}\non_missing_signal: {{ hold_for: 5m, then_workers: 3 }}\n"
    );
    policy::load_str(&text, "faults.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn signal_spec(policy: &Policy) -> &SignalSpec {
    &policy.spec.signals[0]
}

/// The engine's half of a cell: with the signal missing, a pool of 8 never goes below 8, both
/// inside `hold_for` and long after it (where `then_workers: 3` may only raise, never lower).
fn assert_engine_holds(policy: &Policy, signal: Signal, cell: &str) {
    let Signal::Missing { since, .. } = signal else {
        panic!("{cell}: expected a missing signal, got {signal:?}")
    };
    for now in [since, since + Duration::from_secs(3600)] {
        let obs = PoolObservation {
            pauses: Vec::new(),
            signals: vec![signal],
            workers: WorkerCounts {
                requested: 8,
                ready: 8,
            },
        };
        let decision = engine::decide(
            &engine::PoolRules::compile(policy),
            &obs,
            &mut PoolMemory::default(),
            now,
        );
        assert!(
            decision.desired >= 8,
            "{cell}: engine shrank the pool to {} at {now}: {:?}",
            decision.desired,
            decision.reasons
        );
    }
}

async fn check_cell(kind: &Kind, base: &str, fault_name: &str, expected: SignalFault) {
    let policy = policy_for(kind.signal_yaml, base);
    let source = sources::build(signal_spec(&policy));
    let started = Timestamp::now();
    let result = source.poll().await;
    let took = Timestamp::now().since(started);
    let cell = format!("{} × {fault_name}", kind.label);
    let err = match &result {
        Ok(r) => panic!("{cell}: expected {expected:?}, got a reading {r:?}"),
        Err(e) => e,
    };
    assert_eq!(err.fault(), expected, "{cell}: {err}");
    assert!(
        !err.to_string().contains("fault-matrix-secret"),
        "{cell}: the token leaked into: {err}"
    );
    assert!(
        took < Duration::from_millis(TIMEOUT_MS * 3),
        "{cell}: took {took:?}"
    );
    let now = Timestamp::from_secs(1_800_000_000);
    let (signal, _) = sources::to_signal(&result, now, None);
    assert_engine_holds(&policy, signal, &cell);
}

fn fault_behaviors(kind: &Kind) -> Vec<(&'static str, Behavior, SignalFault)> {
    vec![
        (
            "HTTP 500",
            Behavior::json(500, r#"{"error":"boom"}"#),
            SignalFault::HttpStatus,
        ),
        (
            "HTTP 503",
            Behavior::json(503, "No resource manager available"),
            SignalFault::HttpStatus,
        ),
        (
            "HTTP 404",
            Behavior::json(404, "not found"),
            SignalFault::HttpStatus,
        ),
        (
            "HTTP 401",
            Behavior::json(401, r#"{"detail":"Not authenticated"}"#),
            SignalFault::Auth,
        ),
        (
            "HTTP 403",
            Behavior::json(403, r#"{"detail":"Forbidden"}"#),
            SignalFault::Auth,
        ),
        (
            "malformed JSON",
            Behavior::json(200, r#"{"queuedQueries": 3, "#),
            SignalFault::Malformed,
        ),
        (
            "empty body",
            Behavior::json(200, ""),
            SignalFault::Malformed,
        ),
        (
            "wrong field types",
            Behavior::json(200, kind.wrong_types),
            SignalFault::Malformed,
        ),
        (
            "oversized (Content-Length)",
            Behavior::Respond {
                status: 200,
                content_type: "application/json",
                body: vec![b' '; CAP as usize + 1],
            },
            SignalFault::Oversized,
        ),
        (
            "oversized (chunked stream)",
            Behavior::HugeChunked {
                bytes: 10 * CAP as usize,
            },
            SignalFault::Oversized,
        ),
        ("never answers", Behavior::NeverAnswer, SignalFault::Timeout),
        (
            "slow trickle",
            Behavior::Trickle {
                body: br#"{"queuedQueries": 1, "runningQueries": 1}"#.to_vec(),
                every: Duration::from_millis(100),
            },
            SignalFault::Timeout,
        ),
    ]
}

#[tokio::test]
async fn every_http_source_maps_every_fault_and_the_engine_holds() {
    // SAFETY: set once before any source reads it; no other test in this binary touches it.
    unsafe { std::env::set_var(TOKEN_VAR, "fault-matrix-secret") };
    let mut cells = 0;
    for kind in KINDS {
        check_cell(
            kind,
            &refused_base().await,
            "connection refused",
            SignalFault::Unreachable,
        )
        .await;
        cells += 1;
        for (name, behavior, expected) in fault_behaviors(kind) {
            let server = FaultyServer::start(behavior).await;
            check_cell(kind, &server.base, name, expected).await;
            cells += 1;
        }
    }
    assert_eq!(cells, KINDS.len() * 13);
}

#[tokio::test]
async fn unset_secret_is_an_auth_fault_naming_the_variable() {
    let server = FaultyServer::start(Behavior::json(200, "{}")).await;
    let yaml = "trino: { coordinator: '{base}', http: { auth: { bearer: { token: { env: POOLPILOT_SURELY_UNSET } } } } }";
    let policy = policy_for(yaml, &server.base);
    let err = sources::build(signal_spec(&policy))
        .poll()
        .await
        .unwrap_err();
    assert_eq!(err.fault(), SignalFault::Auth);
    assert!(err.to_string().contains("POOLPILOT_SURELY_UNSET"), "{err}");
}

#[tokio::test]
async fn userinfo_in_a_url_never_reaches_error_text() {
    // Policy validation refuses such URLs; the source must still not echo them if built directly.
    let spec = poolpilot::policy::SparkSignal {
        master: refused_base()
            .await
            .replace("http://", "http://admin:hunter2@"),
        cores_per_waiting_app: 1,
        cores_per_submitted_driver: 1,
        http: Default::default(),
    };
    let err = poolpilot::sources::spark::SparkSource::new(&spec)
        .poll()
        .await
        .unwrap_err();
    assert_eq!(err.fault(), SignalFault::Unreachable);
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

fn db_policy(connection_var: &str) -> Policy {
    let text = format!(
        "pool: db\nsignals:\n  - airflow_db: {{ connection: {{ env: {connection_var} }}, timeout: {TIMEOUT_MS}ms }}\n    per_worker: 2\n\
         workers:\n  kubernetes: {{ namespace: ns, deployment: w }}\nbounds: {{ min: 1, max: 50 }}\n"
    );
    policy::load_str(&text, "db.yaml").unwrap_or_else(|e| panic!("{e}"))
}

async fn check_db_cell(connection: &str, var: &str, expected: SignalFault, cell: &str) {
    // SAFETY: each cell uses its own variable name.
    unsafe { std::env::set_var(var, connection) };
    let policy = db_policy(var);
    let result = sources::build(signal_spec(&policy)).poll().await;
    let err = result.as_ref().expect_err(cell);
    assert_eq!(err.fault(), expected, "{cell}: {err}");
    assert!(
        !err.to_string().contains("pw-in-conn-string"),
        "{cell}: connection string leaked: {err}"
    );
    let (signal, _) = sources::to_signal(&result, Timestamp::from_secs(1_800_000_000), None);
    assert_engine_holds(&policy, signal, cell);
}

#[tokio::test]
async fn database_source_faults_without_a_database() {
    let refused = refused_base().await.replace("http://", "");
    let conn = format!("postgresql://airflow:pw-in-conn-string@{refused}/airflow");
    check_db_cell(
        &conn,
        "POOLPILOT_FAULTS_DB_REFUSED",
        SignalFault::Unreachable,
        "db × connection refused",
    )
    .await;
    let silent = FaultyServer::start(Behavior::NeverAnswer).await;
    let conn = format!(
        "postgresql://airflow:pw-in-conn-string@{}/airflow",
        silent.base.replace("http://", "")
    );
    check_db_cell(
        &conn,
        "POOLPILOT_FAULTS_DB_SILENT",
        SignalFault::Timeout,
        "db × never answers",
    )
    .await;
    check_db_cell(
        "not a connection string at all",
        "POOLPILOT_FAULTS_DB_GARBAGE",
        SignalFault::Unreachable,
        "db × bad conn string",
    )
    .await;
}

#[tokio::test]
async fn database_source_faults_against_real_postgres() {
    let Some(url) = support::peer("AIRFLOW_DB_URL") else {
        return;
    };
    // Trust auth accepts any password, but not an unknown role: SQLSTATE 28000.
    let unknown_role = url.replacen("airflow:airflow@", "nosuchrole:pw-in-conn-string@", 1);
    check_db_cell(
        &unknown_role,
        "POOLPILOT_FAULTS_DB_ROLE",
        SignalFault::Auth,
        "db × unknown role",
    )
    .await;
    // A database without Airflow's schema: `task_instance` does not exist (42P01).
    let no_schema = format!("{}/postgres", url.rsplit_once('/').unwrap().0);
    check_db_cell(
        &no_schema,
        "POOLPILOT_FAULTS_DB_SCHEMA",
        SignalFault::Malformed,
        "db × no task_instance table",
    )
    .await;
}

/// Control for `assert_engine_holds`: the same policy and pool with a good reading of zero
/// demand does shrink, so "never below 8" above is a property of the missing signal.
#[test]
fn control_a_zero_reading_does_shrink_the_pool() {
    let policy = policy_for(KINDS[0].signal_yaml, "http://127.0.0.1:1");
    let now = Timestamp::from_secs(1_800_000_000);
    let obs = PoolObservation {
        pauses: Vec::new(),
        signals: vec![Signal::Value {
            demand: 0.0,
            observed_at: now,
        }],
        workers: WorkerCounts {
            requested: 8,
            ready: 8,
        },
    };
    let decision = engine::decide(
        &engine::PoolRules::compile(&policy),
        &obs,
        &mut PoolMemory::default(),
        now,
    );
    assert!(decision.desired < 8, "{:?}", decision.reasons);
}

/// A Redis stand-in on loopback that answers every command with `reply` (or never answers).
async fn fake_redis(reply: Option<&'static [u8]>) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    if let Some(reply) = reply {
                        let _ = socket.write_all(reply).await;
                    }
                }
            });
        }
    });
    (format!("redis://127.0.0.1:{port}/0"), task)
}

fn celery_redis_policy(broker: &str) -> Policy {
    let text = format!(
        "pool: faults\nsignals:\n  - celery: {{ broker: '{broker}', queues: [q], timeout: 600ms, reply_window: 100ms }}\n    per_worker: 2\n\
         workers:\n  kubernetes: {{ namespace: ns, deployment: w }}\n\
         bounds: {{ min: 1, max: 50 }}\non_missing_signal: {{ hold_for: 5m, then_workers: 3 }}\n"
    );
    policy::load_str(&text, "faults.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[tokio::test]
async fn celery_redis_broker_faults_hold_the_pool() {
    let refused = refused_base().await.replace("http://", "redis://");
    // (cell, the server: none = refused, Some(None) = silent, Some(Some(reply)), fault)
    type Server = Option<Option<&'static [u8]>>;
    let cells: Vec<(&str, Server, SignalFault)> = vec![
        ("connection refused", None, SignalFault::Unreachable),
        ("never answers", Some(None), SignalFault::Timeout),
        (
            "WRONGTYPE (the queue key is not a list)",
            Some(Some(
                b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            )),
            SignalFault::Malformed,
        ),
        (
            "NOAUTH (a password is required)",
            Some(Some(b"-NOAUTH Authentication required.\r\n")),
            SignalFault::Auth,
        ),
        (
            "not RESP",
            Some(Some(b"HTTP/1.1 400 Bad Request\r\n\r\n")),
            SignalFault::Malformed,
        ),
        (
            "wrong reply type (a string for LLEN)",
            Some(Some(b"$3\r\nabc\r\n")),
            SignalFault::Malformed,
        ),
    ];
    for (name, server, expected) in cells {
        let (broker, _task) = match server {
            None => (refused.clone(), None),
            Some(reply) => {
                let (url, task) = fake_redis(reply).await;
                (url, Some(task))
            }
        };
        let policy = celery_redis_policy(&broker);
        let source = sources::build(signal_spec(&policy));
        let started = Timestamp::now();
        let result = source.poll().await;
        let took = Timestamp::now().since(started);
        let cell = format!("celery redis × {name}");
        let err = result
            .as_ref()
            .err()
            .unwrap_or_else(|| panic!("{cell}: got {result:?}"));
        assert_eq!(err.fault(), expected, "{cell}: {err}");
        assert!(
            took < Duration::from_millis(TIMEOUT_MS * 3),
            "{cell}: took {took:?}"
        );
        let (signal, _) = sources::to_signal(&result, Timestamp::from_secs(1_800_000_000), None);
        assert_engine_holds(&policy, signal, &cell);
    }
}
