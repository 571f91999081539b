//! Helpers for the end-to-end daemon tests: run the built `poolpilot run` binary, read its
//! HTTP endpoints, signal it, and serve a Spark master `/json/` whose demand the test sets.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A free loopback port (bound, then released for the daemon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `poolpilot run --config <dir>/<name>.yaml` with `settings` written there.
    pub fn start(dir: &Path, name: &str, settings: &str, extra: &[&str]) -> Daemon {
        Daemon::start_with_env(dir, name, settings, extra, &[])
    }

    /// [`Daemon::start`] with extra environment variables (e.g. AWS credentials for moto).
    pub fn start_with_env(
        dir: &Path,
        name: &str,
        settings: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let port = free_port();
        let config = dir.join(format!("{name}.yaml"));
        std::fs::write(
            &config,
            format!("listen: 127.0.0.1:{port}\nlog_format: json\n{settings}"),
        )
        .unwrap();
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_poolpilot"));
        // The test's own POOLPILOT_TEST_* variables would read as settings overrides.
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("POOLPILOT_")) {
            command.env_remove(key);
        }
        let child = command
            .arg("run")
            .arg("--config")
            .arg(&config)
            .args(extra)
            .env("RUST_LOG", "info,kube_lease_manager=warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("the poolpilot binary starts");
        Daemon {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let r = reqwest::Client::new()
            .get(self.url(path))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .ok()?;
        let code = r.status().as_u16();
        Some((code, r.text().await.ok()?))
    }

    pub async fn status(&self) -> serde_json::Value {
        let (_, body) = self.get("/status").await.expect("/status answers");
        serde_json::from_str(&body).unwrap()
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.expect("/metrics answers").1
    }

    /// Polls until `/readyz` says 200 (the first tick completed).
    pub async fn wait_ready(&mut self, within: Duration) {
        let log = self.log.clone();
        let ok = wait_until(within, || async {
            matches!(self.get("/readyz").await, Some((200, _)))
        })
        .await;
        if !ok {
            panic!(
                "daemon not ready within {within:?}; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// SIGTERM and wait for the exit status.
    pub async fn stop(mut self) -> ExitStatus {
        self.signal("TERM");
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.child.kill();
        panic!(
            "daemon did not exit within 30s of SIGTERM; log:\n{}",
            self.log_text()
        );
    }

    /// kill -9: no chance to persist anything beyond what each tick wrote.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `check` every 200 ms until it is true or `within` passes.
pub async fn wait_until<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    // Counted sleeps rather than clock reads (the clock is read only in src/time.rs).
    let rounds = (within.as_millis() / 200).max(1);
    for _ in 0..rounds {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    check().await
}

/// What the fake master answers: `None` = HTTP 503 (the source is down).
#[derive(Clone, Default)]
pub struct MasterState {
    pub waiting_apps: u32,
    pub cores_used: u32,
    pub down: bool,
}

/// A Spark master `/json/` (the exact field set of Spark 4.3, see tests/fixtures/spark) whose
/// demand the test controls, for tests whose real peer is the platform, not the engine.
pub struct FakeSparkMaster {
    pub url: String,
    pub state: Arc<Mutex<MasterState>>,
}

impl FakeSparkMaster {
    pub async fn start() -> FakeSparkMaster {
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        let state = Arc::new(Mutex::new(MasterState::default()));
        let shared = state.clone();
        let app = axum::Router::new().route(
            "/json/",
            axum::routing::get(move || {
                let s = shared.lock().unwrap().clone();
                async move {
                    if s.down {
                        return (StatusCode::SERVICE_UNAVAILABLE, "down".to_string()).into_response();
                    }
                    let apps: Vec<String> = (0..s.waiting_apps)
                        .map(|i| format!(r#"{{"id":"app-{i}","name":"a{i}","cores":0,"state":"WAITING"}}"#))
                        .collect();
                    let body = format!(
                        r#"{{"url":"spark://127.0.0.1:7077","workers":[],"aliveworkers":1,"cores":4,"coresused":{},"memory":2048,"memoryused":0,"activeapps":[{}],"completedapps":[],"activedrivers":[],"completeddrivers":[],"status":"ALIVE"}}"#,
                        s.cores_used,
                        apps.join(",")
                    );
                    ([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeSparkMaster { url, state }
    }

    pub fn set(&self, f: impl FnOnce(&mut MasterState)) {
        f(&mut self.state.lock().unwrap());
    }
}

/// The value of a metric line `name{labels} value` whose label set contains every `label`.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

// --- the real kube-apiserver (tests/peers/kube.sh) ---

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

pub async fn kube_client(kubeconfig: &str) -> Client {
    let config = Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    Client::try_from(config).unwrap()
}

/// A namespace with a one-replica Deployment `workers` (pods stay Pending: no kubelet).
pub async fn deployment(client: &Client, namespace: &str) -> Api<Deployment> {
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}})).unwrap();
    let _ = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await;
    let api = Api::<Deployment>::namespaced(client.clone(), namespace);
    let d: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "workers"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "workers"}},
            "template": {"metadata": {"labels": {"app": "workers"}}, "spec": {"containers": [{"name": "w", "image": "example.invalid/worker:1"}]}}
        }
    }))
    .unwrap();
    api.create(&PostParams::default(), &d).await.unwrap();
    api
}

pub async fn replicas(api: &Api<Deployment>) -> i32 {
    api.get("workers")
        .await
        .unwrap()
        .spec
        .and_then(|s| s.replicas)
        .unwrap_or(-1)
}

/// A policy for the `workers` Deployment in `namespace`, fed by the fake master.
pub fn kube_policy(
    master: &str,
    namespace: &str,
    kubeconfig: &str,
    max: u32,
    up_cooldown: &str,
) -> String {
    format!(
        "pool: k8s-pool\nsignals:\n  - spark: {{ master: \"{master}\", cores_per_waiting_app: 2, http: {{ timeout: 1s }} }}\n    per_worker: 2\n\
         workers:\n  kubernetes: {{ namespace: {namespace}, deployment: workers, kubeconfig: \"{kubeconfig}\" }}\n\
         bounds: {{ min: 1, max: {max} }}\nboot_time: 1s\n\
         scale_up: {{ stabilization: 0s, cooldown: {up_cooldown}, max_step: {{ workers: 10, period: 1s }} }}\n\
         scale_down: {{ stabilization: 3s, cooldown: 0s, max_step: {{ workers: 10, period: 1s }}, drain: {{ method: none }} }}\n\
         on_missing_signal: {{ hold_for: 10m }}\n"
    )
}

/// The set-up the kube-apiserver daemon tests share: a namespace of their own with the
/// `workers` Deployment, a fake Spark master as its demand, and a directory holding
/// `policies/pool.yaml` (from [`kube_policy`]) for the daemons the test starts.
pub struct KubeScene {
    pub kubeconfig: String,
    pub namespace: String,
    pub api: Api<Deployment>,
    pub master: FakeSparkMaster,
    pub dir: tempfile::TempDir,
    /// The text of `policies/pool.yaml`.
    pub policy: String,
}

impl KubeScene {
    /// `name` prefixes the namespace (made unique per process).
    pub async fn start(kubeconfig: String, name: &str, max: u32, up_cooldown: &str) -> KubeScene {
        let client = kube_client(&kubeconfig).await;
        let namespace = format!("{name}-{}", std::process::id());
        let api = deployment(&client, &namespace).await;
        let master = FakeSparkMaster::start().await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        let policy = kube_policy(&master.url, &namespace, &kubeconfig, max, up_cooldown);
        std::fs::write(dir.path().join("policies/pool.yaml"), &policy).unwrap();
        KubeScene {
            kubeconfig,
            namespace,
            api,
            master,
            dir,
            policy,
        }
    }

    pub fn policies(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    /// Daemon settings: 1 s tick, the scene's policies, state at `state` (relative to the scene).
    pub fn settings(&self, state: &str) -> String {
        format!(
            "tick: 1s\npolicy_dir: {}\nstate_path: {}\n",
            self.policies().display(),
            self.dir.path().join(state).display()
        )
    }

    pub async fn replicas(&self) -> i32 {
        replicas(&self.api).await
    }
}
