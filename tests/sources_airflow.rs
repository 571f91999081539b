//! Airflow sources against a REAL Airflow 3 (tests/peers/airflow.sh: CeleryExecutor with no
//! worker, so tasks stay queued): DAG runs with more parallel tasks than pool slots, then
//! poolpilot's REST and metadata-DB numbers must equal what the server reports itself — its
//! REST pool JSON and SQL run directly on its database, including the Helm chart's KEDA query.

mod support;

use std::time::Duration;

use poolpilot::policy::{
    AirflowApiVersion, AirflowDbSignal, AirflowExecutor, AirflowSignal, HttpAuth, HttpOptions,
    SecretRef,
};
use poolpilot::sources::airflow::AirflowSource;
use poolpilot::sources::airflow_db::AirflowDbSource;
use poolpilot::sources::{MetricSource, Reading};
use serde_json::{Value, json};
use tokio_postgres::NoTls;

struct Peer {
    api: String,
    db: String,
    pool: String,
    slots: f64,
    concurrency: f64,
}

fn peer() -> Option<Peer> {
    Some(Peer {
        api: support::peer("AIRFLOW_API_URL")?,
        db: support::peer("AIRFLOW_DB_URL")?,
        pool: support::peer("AIRFLOW_TEST_POOL")?,
        slots: support::peer("AIRFLOW_TEST_POOL_SLOTS")?.parse().unwrap(),
        concurrency: support::peer("AIRFLOW_WORKER_CONCURRENCY")?
            .parse()
            .unwrap(),
    })
}

async fn token(api: &str) -> String {
    let user = std::env::var("AIRFLOW_API_USER").unwrap();
    let password = std::env::var("AIRFLOW_API_PASSWORD").unwrap();
    let body: Value = reqwest::Client::new()
        .post(format!("{api}/auth/token"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

async fn rest(api: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut req = reqwest::Client::new()
        .request(method, format!("{api}/api/v2{path}"))
        .bearer_auth(token(api).await);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap()
}

async fn sql_f64(db: &str, sql: &str) -> f64 {
    let (client, conn) = tokio_postgres::connect(db, NoTls).await.unwrap();
    let driver = tokio::spawn(conn);
    let row = client
        .query_one(&format!("SELECT ({sql})::float8"), &[])
        .await
        .unwrap();
    driver.abort();
    row.get::<_, Option<f64>>(0).unwrap_or(0.0)
}

fn rest_source(
    p: &Peer,
    pool: Option<&str>,
    queues: &[&str],
    include_scheduled: bool,
) -> AirflowSource {
    AirflowSource::new(&AirflowSignal {
        api: p.api.clone(),
        version: AirflowApiVersion::V3,
        pool: pool.map(String::from),
        queues: queues.iter().map(|q| q.to_string()).collect(),
        include_scheduled,
        http: HttpOptions {
            auth: Some(HttpAuth::Basic {
                username: std::env::var("AIRFLOW_API_USER").unwrap(),
                password: SecretRef::Env("AIRFLOW_API_PASSWORD".into()),
            }),
            ..HttpOptions::default()
        },
    })
}

fn db_source(
    p: &Peer,
    executor: AirflowExecutor,
    kubernetes_queue: &str,
    queues: &[&str],
) -> AirflowDbSource {
    AirflowDbSource::new(
        &AirflowDbSignal {
            connection: SecretRef::Env("AIRFLOW_DB_URL".into()),
            executor,
            kubernetes_queue: kubernetes_queue.into(),
            queues: queues.iter().map(|q| q.to_string()).collect(),
            timeout: Duration::from_secs(5),
        },
        p.concurrency,
    )
}

/// Slot sums per state straight from `task_instance` (what Airflow's Pool model sums).
async fn slots_by_state(db: &str, filter: &str) -> Vec<(&'static str, f64)> {
    let mut out = Vec::new();
    for state in ["running", "queued", "scheduled"] {
        let sql = format!(
            "SELECT COALESCE(SUM(pool_slots), 0) FROM task_instance WHERE state = '{state}' {filter}"
        );
        out.push((state, sql_f64(db, &sql).await));
    }
    out
}

/// Polls between two identical DB snapshots, so the comparison is not racing the scheduler.
async fn consistent(db: &str, src: &dyn MetricSource) -> Reading {
    for _ in 0..30 {
        let before = slots_by_state(db, "").await;
        let reading = src
            .poll()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", src.name()));
        if before == slots_by_state(db, "").await {
            return reading;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("task_instance never held still for one poll");
}

async fn wait_for_backlog(p: &Peer) {
    for _ in 0..240 {
        let pool = rest(
            &p.api,
            reqwest::Method::GET,
            &format!("/pools/{}", p.pool),
            None,
        )
        .await;
        let other = sql_f64(
            &p.db,
            "SELECT COUNT(*) FROM task_instance WHERE state='queued' AND queue='other'",
        )
        .await;
        if pool["queued_slots"].as_f64() == Some(p.slots)
            && pool["scheduled_slots"].as_f64().unwrap_or(0.0) >= 1.0
            && other >= 5.0
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!(
        "the DAG runs never filled pool {} (no queued backlog after 120 s)",
        p.pool
    );
}

#[tokio::test]
async fn rest_and_db_sources_equal_the_servers_own_numbers() {
    let Some(p) = peer() else { return };
    for dag in ["fanout", "fanout_other_queue"] {
        rest(
            &p.api,
            reqwest::Method::POST,
            &format!("/dags/{dag}/dagRuns"),
            Some(json!({"logical_date": null})),
        )
        .await;
    }
    wait_for_backlog(&p).await;

    // 1. One pool, from GET /pools/{pool}: equals the server's pool JSON and the DB slot sums.
    let src = rest_source(&p, Some(&p.pool), &[], false);
    let reading = consistent(&p.db, &src).await;
    let pool_json = rest(
        &p.api,
        reqwest::Method::GET,
        &format!("/pools/{}", p.pool),
        None,
    )
    .await;
    let truth = slots_by_state(&p.db, &format!("AND pool = '{}'", p.pool)).await;
    for (state, value) in &truth {
        assert_eq!(
            reading.raw_value(state),
            Some(*value),
            "pool {state} vs SQL"
        );
        assert_eq!(
            pool_json[format!("{state}_slots")].as_f64(),
            Some(*value),
            "pool JSON {state} vs SQL"
        );
    }
    assert_eq!(reading.demand, truth[0].1 + truth[1].1);
    assert!(reading.demand >= p.slots, "the pool is full: {reading:?}");
    let with_scheduled = consistent(&p.db, &rest_source(&p, Some(&p.pool), &[], true)).await;
    assert_eq!(
        with_scheduled.demand,
        truth.iter().map(|(_, v)| v).sum::<f64>()
    );

    // 2. A queue filter, from task-instance counts.
    let reading = consistent(&p.db, &rest_source(&p, None, &["other"], false)).await;
    let queued_other = sql_f64(
        &p.db,
        "SELECT COUNT(*) FROM task_instance WHERE state='queued' AND queue='other'",
    )
    .await;
    let running_other = sql_f64(
        &p.db,
        "SELECT COUNT(*) FROM task_instance WHERE state='running' AND queue='other'",
    )
    .await;
    assert_eq!(
        (reading.raw_value("queued"), reading.raw_value("running")),
        (Some(queued_other), Some(running_other))
    );
    assert_eq!(reading.demand, queued_other + running_other);

    // 3. All pools.
    let reading = consistent(&p.db, &rest_source(&p, None, &[], false)).await;
    let all = slots_by_state(&p.db, "").await;
    assert_eq!(
        (reading.raw_value("running"), reading.raw_value("queued")),
        (Some(all[0].1), Some(all[1].1))
    );

    // 4. Metadata DB: the chart's KEDA query, run here verbatim, against poolpilot's numbers.
    let keda = |filter: &str| {
        format!(
            "SELECT ceil(COUNT(*)::decimal / {}) FROM task_instance WHERE (state='running' OR state='queued'){filter}",
            p.concurrency
        )
    };
    let count = |filter: &str| {
        format!(
            "SELECT COUNT(*) FROM task_instance WHERE (state='running' OR state='queued'){filter}"
        )
    };
    let cases: [(AirflowDbSource, &str); 3] = [
        (
            db_source(&p, AirflowExecutor::Celery, "kubernetes", &[]),
            "",
        ),
        (
            db_source(&p, AirflowExecutor::CeleryKubernetes, "other", &[]),
            " AND queue != 'other'",
        ),
        (
            db_source(&p, AirflowExecutor::Celery, "kubernetes", &["other"]),
            " AND queue IN ('other')",
        ),
    ];
    for (src, filter) in &cases {
        let reading = consistent(&p.db, src).await;
        let (want_count, want_keda) = (
            sql_f64(&p.db, &count(filter)).await,
            sql_f64(&p.db, &keda(filter)).await,
        );
        assert_eq!(reading.demand, want_count, "count with filter `{filter}`");
        assert_eq!(
            reading.raw_value("keda_workers"),
            Some(want_keda),
            "KEDA value with filter `{filter}`"
        );
        assert!(want_count > 0.0, "filter `{filter}` should see the backlog");
    }
}
