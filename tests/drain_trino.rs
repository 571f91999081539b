//! Trino graceful-shutdown drains against a fixture coordinator (`GET /v1/node`) and fixture
//! workers bound to their own loopback addresses (`PUT /v1/info/state`), so that worker ↔ member
//! mapping by address is exercised. No Trino server exists here; the wire formats follow
//! ../shared/reference/engine-apis.md §1.3–1.4.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};
use poolpilot::actuators::{Member, RecordingActuator};
use poolpilot::drain::trino::{Flavor, TrinoDrainer};
use poolpilot::drain::{DrainError, DrainOutcome, drain_member, scale_down};
use poolpilot::engine::DrainPlan;
use poolpilot::fence::Unfenced;
use poolpilot::policy::model::{DrainMethod, OnDrainTimeout};
use poolpilot::time::Timestamp;
use serde_json::json;
use tokio::sync::watch;

const WORKERS: [&str; 2] = ["127.0.0.2", "127.0.0.3"];
const POLL: Duration = Duration::from_millis(20);

/// How a fixture worker answers the shutdown request.
#[derive(Clone, Copy)]
enum Behaviour {
    /// 200, then leaves the coordinator's active nodes after this long (the grace periods).
    LeavesAfter(Duration),
    /// 200, but never leaves (long-running tasks).
    StaysBusy,
    /// The `default` access control: 403 "Management only resource".
    Forbidden,
}

#[derive(Clone)]
struct Cluster {
    active: Arc<Mutex<Vec<String>>>,
    puts: Arc<Mutex<Vec<(String, String)>>>,
    port: u16,
}

struct Fixture {
    coordinator: String,
    cluster: Cluster,
}

async fn start(behaviour: Behaviour) -> Fixture {
    // Workers share one port on different addresses, as Trino workers do on different hosts.
    let (listeners, port) = 'bind: loop {
        let first = tokio::net::TcpListener::bind((WORKERS[0], 0))
            .await
            .unwrap();
        let port = first.local_addr().unwrap().port();
        if let Ok(second) = tokio::net::TcpListener::bind((WORKERS[1], port)).await {
            break 'bind (vec![first, second], port);
        }
    };
    let cluster = Cluster {
        active: Arc::new(Mutex::new(WORKERS.iter().map(|w| w.to_string()).collect())),
        puts: Arc::new(Mutex::new(Vec::new())),
        port,
    };
    for (listener, host) in listeners.into_iter().zip(WORKERS) {
        let state = (cluster.clone(), host.to_owned(), behaviour);
        let app = axum::Router::new()
            .route("/v1/info/state", put(worker_state))
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }
    let app = axum::Router::new()
        .route("/v1/node", get(nodes))
        .with_state(cluster.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let coordinator = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Fixture {
        coordinator,
        cluster,
    }
}

async fn nodes(State(cluster): State<Cluster>) -> axum::Json<serde_json::Value> {
    let active = cluster.active.lock().unwrap().clone();
    let stats: Vec<_> = active
        .iter()
        .map(|host| {
            json!({"age": "3.25m", "uri": format!("http://{host}:{}/v1/status", cluster.port),
                   "recentFailures": 0.0, "recentSuccesses": 58.1, "recentRequests": 58.1,
                   "recentFailureRatio": 0.0, "lastRequestTime": "2024-01-01T12:00:00.000Z",
                   "lastResponseTime": "2024-01-01T12:00:00.010Z", "lastFailureInfo": null,
                   "recentFailuresByType": {}})
        })
        .collect();
    axum::Json(json!(stats))
}

async fn worker_state(
    State((cluster, host, behaviour)): State<(Cluster, String, Behaviour)>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json")
        || headers.get("x-trino-user").is_none()
    {
        return (
            StatusCode::BAD_REQUEST,
            "expected a JSON body and X-Trino-User".into(),
        );
    }
    if body != "\"SHUTTING_DOWN\"" {
        return (
            StatusCode::BAD_REQUEST,
            format!("Unrecognized token '{body}'"),
        );
    }
    cluster.puts.lock().unwrap().push((host.clone(), body));
    match behaviour {
        Behaviour::Forbidden => (StatusCode::FORBIDDEN, "Management only resource".into()),
        Behaviour::StaysBusy => (StatusCode::OK, String::new()),
        Behaviour::LeavesAfter(grace) => {
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                cluster.active.lock().unwrap().retain(|h| *h != host);
            });
            (StatusCode::OK, String::new())
        }
    }
}

fn drainer(f: &Fixture) -> TrinoDrainer {
    TrinoDrainer::new(
        reqwest::Client::new(),
        &f.coordinator,
        f.cluster.port,
        "poolpilot",
        Flavor::Trino,
    )
}

fn member(i: usize) -> Member {
    Member::new(format!("trino-worker-{i}")).with_address(WORKERS[i])
}

#[tokio::test]
async fn a_shut_down_worker_is_drained_once_it_leaves_the_coordinator() {
    let f = start(Behaviour::LeavesAfter(Duration::from_millis(300))).await;
    let (_tx, abort) = watch::channel(false);
    let started = Timestamp::now();
    let outcome = drain_member(
        &drainer(&f),
        &member(1),
        Duration::from_secs(10),
        POLL,
        abort,
    )
    .await;
    let took = Timestamp::now().since(started);
    assert_eq!(outcome, DrainOutcome::Drained);
    assert!(
        took >= Duration::from_millis(300),
        "waited for the worker to leave, took {took:?}"
    );
    assert_eq!(
        *f.cluster.puts.lock().unwrap(),
        [(WORKERS[1].to_owned(), "\"SHUTTING_DOWN\"".to_owned())]
    );
    assert_eq!(
        *f.cluster.active.lock().unwrap(),
        [WORKERS[0]],
        "the other worker was not touched"
    );
}

#[tokio::test]
async fn a_worker_that_never_leaves_times_out_at_the_policy_bound() {
    let f = start(Behaviour::StaysBusy).await;
    let (_tx, abort) = watch::channel(false);
    let started = Timestamp::now();
    let outcome = drain_member(
        &drainer(&f),
        &member(0),
        Duration::from_millis(400),
        POLL,
        abort,
    )
    .await;
    let took = Timestamp::now().since(started);
    assert_eq!(outcome, DrainOutcome::TimedOut);
    assert!(
        took < Duration::from_secs(3),
        "bounded by the timeout, took {took:?}"
    );
}

#[tokio::test]
async fn the_default_access_control_refusal_says_what_to_configure() {
    let f = start(Behaviour::Forbidden).await;
    let (_tx, abort) = watch::channel(false);
    match drain_member(
        &drainer(&f),
        &member(0),
        Duration::from_secs(5),
        POLL,
        abort,
    )
    .await
    {
        DrainOutcome::Failed(DrainError::Forbidden { message }) => {
            assert!(message.contains("access control"), "{message}")
        }
        other => panic!("expected a forbidden failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_drain_abandoned_before_the_one_way_call_sends_nothing() {
    let f = start(Behaviour::LeavesAfter(Duration::ZERO)).await;
    let (tx, abort) = watch::channel(false);
    tx.send(true).unwrap();
    let outcome = drain_member(
        &drainer(&f),
        &member(0),
        Duration::from_secs(5),
        POLL,
        abort,
    )
    .await;
    assert_eq!(outcome, DrainOutcome::Abandoned);
    assert!(
        f.cluster.puts.lock().unwrap().is_empty(),
        "no SHUTTING_DOWN was sent"
    );
}

#[tokio::test]
async fn scale_down_shuts_down_the_victim_then_removes_exactly_it() {
    let f = start(Behaviour::LeavesAfter(Duration::from_millis(100))).await;
    let pool = RecordingActuator::with_members(vec![
        member(0),
        Member {
            ready: false,
            ..member(1)
        },
    ]);
    let plan = DrainPlan {
        remove: 1,
        method: DrainMethod::Trino,
        timeout: Duration::from_secs(10),
        on_timeout: OnDrainTimeout::Keep,
    };
    let (_tx, abort) = watch::channel(false);
    let report = scale_down(&pool, &drainer(&f), &Unfenced, &plan, 1, POLL, abort)
        .await
        .unwrap();
    assert_eq!(
        report.removed,
        ["trino-worker-1"],
        "the not-ready worker is the victim"
    );
    assert!(report.complete());
    assert_eq!(pool.calls()[0].target, 1);
    assert_eq!(f.cluster.puts.lock().unwrap()[0].0, WORKERS[1]);
}
