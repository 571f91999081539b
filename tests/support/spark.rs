//! Spark for the tests: a fake master `/json/` whose demand the test sets (for tests whose real
//! peer is the platform, not the engine), and real Spark processes of a test's own: a master,
//! workers (started by the instance agent) and `spark-submit` drivers, each killed on drop by
//! its handle.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::free_port;

/// What the fake master answers: `down` = HTTP 503 (the source is down).
#[derive(Clone, Default)]
pub struct MasterState {
    pub waiting_apps: u32,
    pub cores_used: u32,
    pub down: bool,
    /// Workers listed in `/json/` (none unless a drain test adds them).
    pub workers: Vec<FakeWorker>,
    /// Every `POST /<view>/workers/kill/?host=` so far, as (view, host).
    pub kills: Vec<(String, String)>,
}

/// A worker of the fake master. A kill marks it DECOMMISSIONED; its own `/json/` lists an
/// executor for each *view* in `busy_for`, so two daemons (each given the master URL of its
/// own view, `<url>/<view>`) can be shown a drain as finished at different moments.
#[derive(Clone, Default)]
pub struct FakeWorker {
    pub host: String,
    pub decommissioned: bool,
    pub busy_for: Vec<String>,
}

/// A Spark master `/json/` (the exact field set of Spark 4.3, see tests/fixtures/spark) whose
/// demand the test controls, for tests whose real peer is the platform, not the engine. Also
/// served under `/<view>/`, with `/<view>/workers/kill/` (decommission) and each worker's UI
/// at `/<view>/worker/<host>/json/`.
pub struct FakeSparkMaster {
    pub url: String,
    pub state: Arc<Mutex<MasterState>>,
}

fn master_body(s: &MasterState, base: &str, view: &str) -> String {
    let apps: Vec<String> = (0..s.waiting_apps)
        .map(|i| format!(r#"{{"id":"app-{i}","name":"a{i}","cores":0,"state":"WAITING"}}"#))
        .collect();
    let workers: Vec<String> = s
        .workers
        .iter()
        .map(|w| {
            let state = if w.decommissioned { "DECOMMISSIONED" } else { "ALIVE" };
            format!(
                r#"{{"id":"worker-{h}","host":"{h}","port":7078,"webuiaddress":"{base}/{view}/worker/{h}","cores":2,"coresused":0,"coresfree":2,"memory":1024,"memoryused":0,"memoryfree":1024,"state":"{state}","lastheartbeat":0}}"#,
                h = w.host
            )
        })
        .collect();
    format!(
        r#"{{"url":"spark://127.0.0.1:7077","workers":[{}],"aliveworkers":1,"cores":4,"coresused":{},"memory":2048,"memoryused":0,"activeapps":[{}],"completedapps":[],"activedrivers":[],"completeddrivers":[],"status":"ALIVE"}}"#,
        workers.join(","),
        s.cores_used,
        apps.join(",")
    )
}

impl FakeSparkMaster {
    pub async fn start() -> FakeSparkMaster {
        use axum::extract::{Path, Query};
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        use axum::routing::{get, post};
        let state = Arc::new(Mutex::new(MasterState::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let json = |state: Arc<Mutex<MasterState>>, base: String, view: String| {
            let s = state.lock().unwrap().clone();
            if s.down {
                return (StatusCode::SERVICE_UNAVAILABLE, "down".to_string()).into_response();
            }
            let body = master_body(&s, &base, &view);
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        };
        let (s1, s2, s3, s4) = (state.clone(), state.clone(), state.clone(), state.clone());
        let (b1, b2) = (url.clone(), url.clone());
        let app = axum::Router::new()
            .route("/json/", get(move || async move { json(s1, b1, String::new()) }))
            .route(
                "/{view}/json/",
                get(move |Path(view): Path<String>| async move { json(s2, b2, view) }),
            )
            .route(
                "/{view}/workers/kill/",
                post(
                    move |Path(view): Path<String>,
                          Query(q): Query<std::collections::HashMap<String, String>>| async move {
                        let host = q.get("host").cloned().unwrap_or_default();
                        let mut s = s3.lock().unwrap();
                        s.kills.push((view, host.clone()));
                        match s.workers.iter_mut().find(|w| w.host == host) {
                            Some(w) => {
                                w.decommissioned = true;
                                StatusCode::OK
                            }
                            None => StatusCode::NOT_FOUND,
                        }
                    },
                ),
            )
            .route(
                "/{view}/worker/{host}/json/",
                get(move |Path((view, host)): Path<(String, String)>| async move {
                    let s = s4.lock().unwrap();
                    let busy = s
                        .workers
                        .iter()
                        .any(|w| w.host == host && w.busy_for.contains(&view));
                    let executors = if busy { r#"[{"id":0}]"# } else { "[]" };
                    format!(r#"{{"id":"worker-{host}","executors":{executors}}}"#)
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeSparkMaster { url, state }
    }

    pub fn set(&self, f: impl FnOnce(&mut MasterState)) {
        f(&mut self.state.lock().unwrap());
    }

    /// Hosts killed through `view`, in order.
    pub fn kills(&self, view: &str) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.kills
            .iter()
            .filter(|(v, _)| v == view)
            .map(|(_, h)| h.clone())
            .collect()
    }
}

/// A child process killed (SIGKILL, like a terminated machine) and reaped on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `spark-class <class> <args>` with `env`, output to `<dir>/<name>.log`.
pub fn spark_class(
    spark_home: &str,
    dir: &Path,
    name: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Proc {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new(format!("{spark_home}/bin/spark-class"))
        .args(args)
        .envs(env.iter().copied())
        .env("SPARK_LOG_DIR", dir)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("spark-class starts");
    Proc(child)
}

pub async fn master_json(http: &reqwest::Client, web: &str) -> Option<serde_json::Value> {
    http.get(format!("{web}/json/"))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// The test's own master (decommission enabled, as in tests/peers/spark.sh), ready.
pub struct SparkMaster {
    pub web: String,
    pub url: String,
    _proc: Proc,
}

impl SparkMaster {
    pub async fn start(spark_home: &str, dir: &Path) -> SparkMaster {
        let (port, ui) = (free_port(), free_port());
        let (port_s, ui_s) = (port.to_string(), ui.to_string());
        let args = [
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            &port_s,
            "--webui-port",
            &ui_s,
        ];
        let opts =
            "-Dspark.decommission.enabled=true -Dspark.master.ui.decommission.allow.mode=LOCAL";
        let env = [("SPARK_LOCAL_IP", "127.0.0.1"), ("SPARK_MASTER_OPTS", opts)];
        let master = SparkMaster {
            web: format!("http://127.0.0.1:{ui}"),
            url: format!("spark://127.0.0.1:{port}"),
            _proc: spark_class(spark_home, dir, "master", &args, &env),
        };
        let http = reqwest::Client::new();
        for _ in 0..180 {
            if let Some(j) = master_json(&http, &master.web).await
                && j["status"] == "ALIVE"
            {
                return master;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!(
            "spark master not ALIVE within 90s; see {}",
            dir.join("master.log").display()
        );
    }
}

/// The master's state of the (not DEAD) worker on `host`; `none` when it lists none.
pub async fn worker_state(http: &reqwest::Client, web: &str, host: &str) -> String {
    let json = master_json(http, web).await.unwrap_or_default();
    json["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["host"] == host && w["state"] != "DEAD")
        .find_map(|w| w["state"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "none".to_owned())
}

/// `spark-submit` of the sleepy app (`name`, `secs` per task, one task) on `master_url`: a
/// 1-core, 512 MiB executor, client-mode driver. Output to `<dir>/<name>.log`.
pub fn submit_sleepy(
    submit: &str,
    app: &str,
    python: &str,
    master_url: &str,
    dir: &Path,
    name: &str,
    secs: u32,
) -> tokio::process::Child {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    tokio::process::Command::new(submit)
        .args(["--master", master_url])
        .args([
            "--conf",
            "spark.cores.max=1",
            "--conf",
            "spark.executor.cores=1",
        ])
        .args([
            "--conf",
            "spark.executor.memory=512m",
            "--conf",
            "spark.driver.memory=512m",
        ])
        .args([app, name, &secs.to_string(), "1"])
        .env("PYSPARK_PYTHON", python)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("spark-submit starts")
}
