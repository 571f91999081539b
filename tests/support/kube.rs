//! The real kube-apiserver (tests/peers/kube.sh): a client from a kubeconfig, a namespace with a
//! `workers` Deployment, a policy for it, and the scene the daemon tests share.

use std::path::PathBuf;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::spark::FakeSparkMaster;

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
    kube_policy_draining(
        master,
        namespace,
        kubeconfig,
        max,
        up_cooldown,
        "{ method: none }",
    )
}

/// [`kube_policy`] with the scale-down's `drain:` block given.
pub fn kube_policy_draining(
    master: &str,
    namespace: &str,
    kubeconfig: &str,
    max: u32,
    up_cooldown: &str,
    drain: &str,
) -> String {
    format!(
        "pool: k8s-pool\nsignals:\n  - spark: {{ master: \"{master}\", cores_per_waiting_app: 2, http: {{ timeout: 1s }} }}\n    per_worker: 2\n\
         workers:\n  kubernetes: {{ namespace: {namespace}, deployment: workers, kubeconfig: \"{kubeconfig}\" }}\n\
         bounds: {{ min: 1, max: {max} }}\nboot_time: 1s\n\
         scale_up: {{ stabilization: 0s, cooldown: {up_cooldown}, max_step: {{ workers: 10, period: 1s }} }}\n\
         scale_down: {{ stabilization: 3s, cooldown: 0s, max_step: {{ workers: 10, period: 1s }}, drain: {drain} }}\n\
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

    /// A policy directory of its own (`policies-<view>/`) whose Spark signal and drain use the
    /// fake master's `view` (see `FakeSparkMaster`), with the scale-down's `drain` block.
    pub fn policies_for_view(&self, view: &str, drain: &str) -> PathBuf {
        let dir = self.dir.path().join(format!("policies-{view}"));
        std::fs::create_dir_all(&dir).unwrap();
        let master = format!("{}/{view}", self.master.url);
        let policy =
            kube_policy_draining(&master, &self.namespace, &self.kubeconfig, 8, "2s", drain);
        std::fs::write(dir.join("pool.yaml"), policy).unwrap();
        dir
    }

    /// [`KubeScene::settings`] with another policy directory.
    pub fn settings_with(&self, state: &str, policies: &std::path::Path) -> String {
        format!(
            "tick: 1s\npolicy_dir: {}\nstate_path: {}\n",
            policies.display(),
            self.dir.path().join(state).display()
        )
    }

    /// The `workers` pods not being deleted, by name.
    pub async fn live_pods(&self) -> Vec<Pod> {
        let client = kube_client(&self.kubeconfig).await;
        let mut pods: Vec<Pod> = Api::<Pod>::namespaced(client, &self.namespace)
            .list(&ListParams::default().labels("app=workers"))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        pods
    }

    /// Plays kubelet: every live pod Running and Ready with an IP (`10.1.0.<n>`, n from 1 in
    /// name order, kept if already set). Returns (pod, IP) pairs.
    pub async fn run_pods(&self) -> Vec<(String, String)> {
        let client = kube_client(&self.kubeconfig).await;
        let api = Api::<Pod>::namespaced(client, &self.namespace);
        let mut out = Vec::new();
        for (n, pod) in self.live_pods().await.into_iter().enumerate() {
            let name = pod.metadata.name.clone().unwrap();
            let ip = pod
                .status
                .and_then(|s| s.pod_ip)
                .unwrap_or_else(|| format!("10.1.0.{}", n + 1));
            let status = serde_json::json!({"status": {"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}]}});
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                .await
                .unwrap();
            out.push((name, ip));
        }
        out
    }
}

/// `kubectl annotate deployment/workers KEY=VALUE` (`None`: `KEY-`, removed), as a merge patch.
pub async fn annotate(api: &Api<Deployment>, key: &str, value: Option<&str>) {
    let patch = serde_json::json!({ "metadata": { "annotations": { key: value } } });
    api.patch(
        "workers",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .unwrap();
}
