//! The end-to-end daemon tests' side: run the built `poolpilot run` binary, read its HTTP
//! endpoints and metrics, signal it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::{free_port, wait_until};

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

    /// The daemon on the policies in `policies` with a 1 s tick and its state file in `dir`,
    /// started and ready (the common start of the tests that need no platform).
    pub async fn start_ready(dir: &Path, policies: &Path) -> Daemon {
        let settings = tick_settings(policies, &dir.join("state.json"));
        let mut daemon = Daemon::start(dir, "daemon", &settings, &[]);
        daemon.wait_ready(Duration::from_secs(30)).await;
        daemon
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

/// Settings for a test daemon: a 1 s tick, `policies`, the state file at `state`.
pub fn tick_settings(policies: &Path, state: &Path) -> String {
    format!(
        "tick: 1s\npolicy_dir: {}\nstate_path: {}\n",
        policies.display(),
        state.display()
    )
}

/// The value of a metric line `name{labels} value` whose label set contains every `label`.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Runs `poolpilot ARGS` (the CLI, not the daemon) with `POOLPILOT_*` cleared and `env` set:
/// (exit code, stdout, stderr).
pub fn cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_poolpilot"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("POOLPILOT_")) {
        command.env_remove(key);
    }
    let out = command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A policy whose actuator cannot be set up (no kubeconfig there): no peer needed, the pool
/// is held (and says why) but still decided on the Spark master at `master`
/// (`cores_per_waiting_app: 2`, `per_worker: 2`: one worker per waiting app).
pub fn held_pool_policy(pool: &str, mode: &str, master: &str) -> String {
    format!(
        "pool: {pool}\nmode: {mode}\nsignals:\n  - spark: {{ master: \"{master}\", cores_per_waiting_app: 2, http: {{ timeout: 1s }} }}\n    per_worker: 2\n\
         workers:\n  kubernetes: {{ namespace: ns, deployment: {pool}, kubeconfig: /nonexistent/kubeconfig }}\n\
         bounds: {{ min: 1, max: 9 }}\n"
    )
}
