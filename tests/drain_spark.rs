//! Spark worker decommission against the real Spark standalone master (tests/peers/spark.sh).
//! The test starts its own worker on 127.0.0.9 (the shared workers stay untouched for other
//! tests), runs an app with an executor on it, decommissions it through the master and waits
//! until its executors are gone.

mod support;

use std::time::Duration;

use poolpilot::actuators::Member;
use poolpilot::drain::spark::SparkDrainer;
use poolpilot::drain::{DrainError, DrainOutcome, Drainer, drain_member};
use poolpilot::time::Timestamp;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use support::spark::worker_state;

const HOST: &str = "127.0.0.9";
const WEBUI_PORT: u16 = 8089;

async fn executors_on_worker(http: &reqwest::Client) -> usize {
    let url = format!("http://{HOST}:{WEBUI_PORT}/json/");
    match http.get(url).send().await {
        Ok(r) => r
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["executors"].as_array().map(Vec::len))
            .unwrap_or(0),
        Err(_) => 0,
    }
}

/// Polls `check` until it is true; fails the test after `secs` seconds.
async fn wait_for<F, Fut>(what: &str, secs: u64, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let done = support::wait_until(Duration::from_secs(secs), check).await;
    assert!(done, "{what} did not happen within {secs}s");
}

fn start_worker(spark_home: &str, master_url: &str, dir: &std::path::Path) -> Child {
    Command::new(format!("{spark_home}/bin/spark-class"))
        .args([
            "org.apache.spark.deploy.worker.Worker",
            "--host",
            HOST,
            "--cores",
            "1",
            "--memory",
            "2g",
        ])
        .args(["--webui-port", &WEBUI_PORT.to_string(), master_url])
        .env("SPARK_LOCAL_IP", HOST)
        .env("SPARK_WORKER_DIR", dir)
        .env("SPARK_WORKER_OPTS", "-Dspark.decommission.enabled=true")
        .env("SPARK_LOG_DIR", dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spark-class starts")
}

#[tokio::test]
async fn a_decommissioned_worker_is_drained_once_its_executors_are_gone() {
    let Some(master) = support::peer("SPARK_MASTER_WEB") else {
        return;
    };
    let master_url = support::peer("SPARK_MASTER_URL").unwrap();
    let spark_home = support::peer("SPARK_HOME").unwrap();
    let submit = support::peer("SPARK_SUBMIT").unwrap();
    let app = support::peer("SPARK_SLEEPY_APP").unwrap();
    let python = support::peer("SPARK_PYTHON").unwrap();
    let http = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();

    let mut worker = start_worker(&spark_home, &master_url, dir.path());
    wait_for("our worker registering", 90, || async {
        worker_state(&http, &master, HOST).await == "ALIVE"
    })
    .await;

    let drainer = SparkDrainer::new(http.clone(), &master);
    let stranger = Member::new("nobody").with_address("127.0.0.250");
    assert!(matches!(
        drainer.begin(&stranger).await,
        Err(DrainError::UnknownWorker { .. })
    ));

    // An app that takes every core in the cluster, so one executor lands on our worker.
    let mut job = Command::new(&submit)
        .args([
            "--master",
            &master_url,
            "--conf",
            "spark.cores.max=64",
            "--conf",
            "spark.executor.cores=1",
        ])
        .args([
            "--conf",
            "spark.executor.memory=512m",
            &app,
            "poolpilot-drain-test",
            "4",
            "8",
        ])
        .env("PYSPARK_PYTHON", &python)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for("an executor on our worker", 120, || async {
        executors_on_worker(&http).await > 0
    })
    .await;

    let member = Member::new("spark-worker-9").with_address(HOST);
    let (_tx, abort) = watch::channel(false);
    let started = Timestamp::now();
    let outcome = drain_member(
        &drainer,
        &member,
        Duration::from_secs(120),
        Duration::from_millis(250),
        abort,
    )
    .await;
    let took = Timestamp::now().since(started);
    assert_eq!(outcome, DrainOutcome::Drained, "after {took:?}");
    assert_eq!(worker_state(&http, &master, HOST).await, "DECOMMISSIONED");
    assert_eq!(executors_on_worker(&http).await, 0);
    eprintln!("spark drain with a running executor took {took:?}");

    let _ = job.kill().await;
    let _ = worker.kill().await; // "then remove it": the actuator's part, played here by the test
}
