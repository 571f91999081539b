//! The Celery drainer against the real Airflow 3 peer (tests/peers/airflow.sh: CeleryExecutor,
//! PostgreSQL, Redis). The test starts one Celery worker on the `drain_probe` queue, whose task
//! instances record the hostname of a StatefulSet pod (`worker-0.workers…`), triggers the
//! `drain_probe` DAG (2 tasks of 15 s) and checks, while the tasks really run on that worker, that
//! the drainer never picks it while idle workers exist, that its drain times out while it works,
//! and that it counts as drained only once its tasks have finished. Takes about 30-40 s.

mod support;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use poolpilot::actuators::{Member, RecordingActuator};
use poolpilot::drain::celery::{
    AirflowDbRunningTasks, AirflowRunningTasks, CeleryDrainer, RunningTasks,
};
use poolpilot::drain::{DrainError, DrainOutcome, choose_victims, drain_member, scale_down};
use poolpilot::engine::DrainPlan;
use poolpilot::fence::Unfenced;
use poolpilot::policy::model::{DrainMethod, OnDrainTimeout};
use poolpilot::policy::{
    AirflowApiVersion, AirflowDbSignal, AirflowSignal, HttpAuth, HttpOptions, SecretRef,
};
use serde_json::{Value, json};
use tokio::sync::watch;

const QUEUE: &str = "drain_probe";
const DAG: &str = "drain_probe";
/// The Celery worker's task hostname: the FQDN of StatefulSet pod `worker-0`.
const WORKER_FQDN: &str = "worker-0.workers.airflow.svc.cluster.local";
const POLL: Duration = Duration::from_millis(250);

struct Api {
    url: String,
    user: String,
    password: String,
    http: reqwest::Client,
}

impl Api {
    /// A fresh JWT from `POST /auth/token`.
    async fn token(&self) -> String {
        let token: Value = self
            .http
            .post(format!("{}/auth/token", self.url))
            .json(&json!({"username": self.user, "password": self.password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        token["access_token"].as_str().unwrap().to_owned()
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}/api/v2{path}", self.url))
            .bearer_auth(self.token().await);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {value}");
        value
    }

    /// `(state, hostname)` of every task instance of `run`.
    async fn task_instances(&self, run: &str) -> Vec<(String, String)> {
        let path = format!("/dags/{DAG}/dagRuns/{run}/taskInstances");
        let body = self.call(reqwest::Method::GET, &path, None).await;
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        body["task_instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ti| (text(&ti["state"]), text(&ti["hostname"])))
            .collect()
    }
}

fn signal(api: &Api, password: SecretRef) -> AirflowSignal {
    AirflowSignal {
        api: api.url.clone(),
        version: AirflowApiVersion::V3,
        pool: None,
        queues: Vec::new(),
        include_scheduled: false,
        http: HttpOptions {
            auth: Some(HttpAuth::Basic {
                username: api.user.clone(),
                password,
            }),
            ..HttpOptions::default()
        },
    }
}

/// A Celery worker started by this test, stopped (its whole process group) on drop.
struct Worker {
    child: Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Worker {
    fn start() -> Worker {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pp_worker_host.py"),
            format!("def name():\n    return {WORKER_FQDN:?}\n"),
        )
        .unwrap();
        let log = dir.path().join("worker.log");
        let out = std::fs::File::create(&log).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/airflow.sh");
        let child = Command::new("bash")
            .args([script, "celery-worker", QUEUE])
            .env("PYTHONPATH", dir.path())
            .env("AIRFLOW__CORE__HOSTNAME_CALLABLE", "pp_worker_host.name")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap();
        Worker {
            child,
            log,
            _dir: dir,
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let kill = |sig: &str| {
            let _ = Command::new("kill").args([sig, "--", &group]).status();
        };
        kill("-TERM");
        for _ in 0..120 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(POLL);
        }
        kill("-KILL");
        let _ = self.child.wait();
    }
}

async fn wait_until<F, Fut>(what: &str, worker: &Worker, tries: u32, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..tries {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{what}; worker log:\n{}", worker.log_tail());
}

#[tokio::test]
async fn busy_celery_worker_is_kept_until_its_tasks_finish() {
    let (Some(url), Some(user), Some(password)) = (
        support::peer("AIRFLOW_API_URL"),
        support::peer("AIRFLOW_API_USER"),
        support::peer("AIRFLOW_API_PASSWORD"),
    ) else {
        return;
    };
    let api = Api {
        url,
        user,
        password,
        http: reqwest::Client::new(),
    };
    let worker = Worker::start();
    // The DAG file comes with `airflow.sh install`; a running peer picks it up within seconds.
    let dag_path = format!("{}/api/v2/dags/{DAG}", api.url);
    wait_until(
        "the drain_probe DAG never appeared",
        &worker,
        120,
        || async {
            let answer = api
                .http
                .get(&dag_path)
                .bearer_auth(api.token().await)
                .send()
                .await
                .unwrap();
            answer.status().is_success()
        },
    )
    .await;
    let run = api
        .call(
            reqwest::Method::POST,
            &format!("/dags/{DAG}/dagRuns"),
            Some(json!({"logical_date": null})),
        )
        .await;
    let run = run["dag_run_id"].as_str().unwrap().to_owned();
    wait_until(
        "the tasks never ran on the Celery worker",
        &worker,
        180,
        || async {
            let tis = api.task_instances(&run).await;
            tis.len() == 2
                && tis
                    .iter()
                    .all(|(state, host)| state == "running" && host == WORKER_FQDN)
        },
    )
    .await;

    // Page size 1: the two running task instances come on two pages.
    let password = SecretRef::Env("AIRFLOW_API_PASSWORD".into());
    let tasks = AirflowRunningTasks::new(&signal(&api, password.clone()), 1);
    let by_host = tasks.running_by_host().await.unwrap();
    assert_eq!(by_host.get(WORKER_FQDN), Some(&2), "{by_host:?}");
    // The same from the metadata DB, as `airflow_db` pools drain: the same hosts and counts.
    let db_url = support::peer("AIRFLOW_DB_URL").expect("set with the Airflow peer");
    assert!(db_url.starts_with("postgresql://"));
    let db: AirflowDbSignal =
        serde_json::from_value(json!({ "connection": { "env": "AIRFLOW_DB_URL" } })).unwrap();
    let from_db = AirflowDbRunningTasks::new(&db)
        .running_by_host()
        .await
        .unwrap();
    assert_eq!(from_db, by_host, "metadata DB vs REST");
    let drainer = CeleryDrainer::new(AirflowRunningTasks::new(&signal(&api, password), 1));

    // Victims: the idle pods, never the busy one while idle ones exist.
    let pool = RecordingActuator::with_size(3);
    let members = pool.current().members;
    let victims = choose_victims(&drainer, &members, 2).await.unwrap();
    let victim_ids: Vec<&str> = victims.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(victim_ids, ["worker-1", "worker-2"]);
    let plan = DrainPlan {
        remove: 2,
        method: DrainMethod::Celery,
        timeout: Duration::from_secs(5),
        on_timeout: OnDrainTimeout::Keep,
    };
    let (_abort_tx, abort) = watch::channel(false);
    let report = scale_down(&pool, &drainer, &Unfenced, &plan, 1, POLL, abort.clone())
        .await
        .unwrap();
    assert_eq!(report.removed, ["worker-1", "worker-2"]);
    assert_eq!(pool.current().desired, 1);
    // Down to zero under `keep`: the busy worker times out and stays.
    let report = scale_down(&pool, &drainer, &Unfenced, &plan, 0, POLL, abort.clone())
        .await
        .unwrap();
    assert_eq!(
        report.drains,
        [("worker-0".to_owned(), DrainOutcome::TimedOut)]
    );
    assert!(report.removed.is_empty());
    assert_eq!(pool.current().desired, 1, "a busy worker is never removed");

    // Given time, the drain ends exactly when the tasks have finished on the worker.
    let busy = Member::new("worker-0");
    let outcome = drain_member(&drainer, &busy, Duration::from_secs(90), POLL, abort).await;
    assert_eq!(outcome, DrainOutcome::Drained, "{}", worker.log_tail());
    let tis = api.task_instances(&run).await;
    assert!(
        tis.iter().all(|(state, _)| state == "success"),
        "drained only once its tasks are done: {tis:?}"
    );

    // Wrong credentials: the drainer says what is wrong instead of calling the worker idle.
    let mut wrong = tempfile::NamedTempFile::new().unwrap();
    write!(wrong, "not-the-password").unwrap();
    let refused = AirflowRunningTasks::new(
        &signal(&api, SecretRef::File(wrong.path().to_path_buf())),
        100,
    );
    let err = refused.running_by_host().await.unwrap_err();
    assert!(matches!(err, DrainError::Forbidden { .. }), "{err:?}");

    // Leave nothing running for the tests that read the same Airflow.
    let state_path = format!("/dags/{DAG}/dagRuns/{run}");
    wait_until("the DAG run never finished", &worker, 60, || async {
        let body = api.call(reqwest::Method::GET, &state_path, None).await;
        body["state"] == "success"
    })
    .await;
}
