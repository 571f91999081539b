//! Kubernetes actuator: Deployments and StatefulSets through the `scale` subresource.
//!
//! - Reads: `get_scale` (replicas, label selector) and the pods behind the selector.
//! - Writes: a merge patch of `spec.replicas` that carries the observed `resourceVersion`, so a
//!   concurrent change is a 409 instead of a silent overwrite; a 409 is re-read and retried.
//! - Deployment scale-down: victims get `controller.kubernetes.io/pod-deletion-cost` set to the
//!   lowest value *before* replicas drop, so the ReplicaSet controller removes them first
//!   (best effort, Kubernetes >= 1.22; older servers store and ignore it).
//! - StatefulSet scale-down always removes the highest ordinals, so a victim list naming any
//!   other pod is refused rather than silently ignored.
//!
//! - Pause annotations (`pause_marks`): a metadata-only GET of the workload each status read,
//!   concurrent with the pod list.
//!
//! RBAC needed (least privilege, see `deploy/kubernetes/pool-access/role.yaml`): `apps`
//! `deployments/scale` or `statefulsets/scale`: get, patch; `deployments` or `statefulsets`:
//! get (pause annotations; without it the pool still scales and `/status` says so); core
//! `pods`: list, patch.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;

use super::{Actuator, ActuatorError, Member, PoolStatus, pause_marks};
use crate::policy::model::KubernetesTarget;

/// Annotation the ReplicaSet controller reads to rank pods for deletion (lower goes first).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
/// Cost given to chosen victims: the lowest int32, so nothing outranks them.
pub const VICTIM_DELETION_COST: i32 = i32::MIN;
/// Re-read-and-retry budget for 409 Conflicts on the scale patch.
const MAX_CONFLICT_RETRIES: u32 = 5;

/// Which kind of workload is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
}

impl WorkloadKind {
    /// The scale subresource as `kubectl auth can-i` and RBAC errors name it.
    fn scale_resource(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployments.apps/scale",
            WorkloadKind::StatefulSet => "statefulsets.apps/scale",
        }
    }

    /// The workload itself (its annotations carry pauses).
    fn workload_resource(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployments.apps",
            WorkloadKind::StatefulSet => "statefulsets.apps",
        }
    }
}

pub struct KubernetesActuator {
    client: Client,
    namespace: String,
    kind: WorkloadKind,
    name: String,
    conflicts_retried: AtomicU32,
}

impl KubernetesActuator {
    pub fn new(
        client: Client,
        namespace: &str,
        kind: WorkloadKind,
        name: &str,
    ) -> KubernetesActuator {
        KubernetesActuator {
            client,
            namespace: namespace.to_owned(),
            kind,
            name: name.to_owned(),
            conflicts_retried: AtomicU32::new(0),
        }
    }

    /// Builds the client from the policy target: its kubeconfig (and context) when given,
    /// in-cluster service-account config otherwise.
    pub async fn from_target(
        target: &KubernetesTarget,
    ) -> Result<KubernetesActuator, ActuatorError> {
        let (kind, name) = match (&target.deployment, &target.statefulset) {
            (Some(d), None) => (WorkloadKind::Deployment, d),
            (None, Some(s)) => (WorkloadKind::StatefulSet, s),
            _ => {
                return Err(ActuatorError::Config {
                    message:
                        "workers.kubernetes needs exactly one of `deployment` or `statefulset`"
                            .into(),
                });
            }
        };
        let config_error = |e: &dyn std::fmt::Display| ActuatorError::Config {
            message: e.to_string(),
        };
        let config = match &target.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path).map_err(|e| config_error(&e))?;
                let options = KubeConfigOptions {
                    context: target.context.clone(),
                    ..Default::default()
                };
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| config_error(&e))?
            }
            None => Config::incluster().map_err(|e| config_error(&e))?,
        };
        let client = Client::try_from(config).map_err(|e| config_error(&e))?;
        Ok(KubernetesActuator::new(
            client,
            &target.namespace,
            kind,
            name,
        ))
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn kind(&self) -> WorkloadKind {
        self.kind
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many 409 Conflicts were absorbed by re-reading (for tests and logs).
    pub fn conflicts_retried(&self) -> u32 {
        self.conflicts_retried.load(Ordering::Relaxed)
    }

    /// The current Scale object (replicas, selector, resourceVersion).
    pub async fn get_scale(&self) -> Result<Scale, ActuatorError> {
        let result = match self.kind {
            WorkloadKind::Deployment => self.api::<Deployment>().get_scale(&self.name).await,
            WorkloadKind::StatefulSet => self.api::<StatefulSet>().get_scale(&self.name).await,
        };
        result.map_err(|e| map_kube_error(e, "get", self.kind.scale_resource()))
    }

    /// Scales starting from an already observed Scale; a stale observation costs one 409 and
    /// a re-read. `scale_to` is `get_scale` followed by this.
    pub async fn scale_from(
        &self,
        observed: Scale,
        target: u32,
        victims: &[Member],
    ) -> Result<(), ActuatorError> {
        let current = replicas(&observed);
        if target == current {
            return Ok(());
        }
        if target < current {
            match self.kind {
                WorkloadKind::StatefulSet => self.check_highest_ordinals(target, victims)?,
                WorkloadKind::Deployment => self.mark_victims(victims).await?,
            }
        }
        let mut resource_version = observed.metadata.resource_version.unwrap_or_default();
        let mut attempt = 0;
        loop {
            match self.patch_replicas(&resource_version, target).await {
                Ok(()) => return Ok(()),
                Err(ActuatorError::Conflict { .. }) if attempt < MAX_CONFLICT_RETRIES => {
                    attempt += 1;
                    self.conflicts_retried.fetch_add(1, Ordering::Relaxed);
                    let fresh = self.get_scale().await?;
                    tracing::debug!(workload = %self.name, attempt, "scale patch conflicted; re-read and retrying");
                    if replicas(&fresh) == target {
                        return Ok(());
                    }
                    resource_version = fresh.metadata.resource_version.unwrap_or_default();
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn patch_replicas(
        &self,
        resource_version: &str,
        target: u32,
    ) -> Result<(), ActuatorError> {
        let patch = Patch::Merge(json!({
            "metadata": { "resourceVersion": resource_version },
            "spec": { "replicas": target },
        }));
        let params = PatchParams::default();
        let result = match self.kind {
            WorkloadKind::Deployment => {
                self.api::<Deployment>()
                    .patch_scale(&self.name, &params, &patch)
                    .await
            }
            WorkloadKind::StatefulSet => {
                self.api::<StatefulSet>()
                    .patch_scale(&self.name, &params, &patch)
                    .await
            }
        };
        result
            .map(|_| ())
            .map_err(|e| map_kube_error(e, "patch", self.kind.scale_resource()))
    }

    /// Sets the deletion cost on every victim; a victim that is already gone is skipped.
    async fn mark_victims(&self, victims: &[Member]) -> Result<(), ActuatorError> {
        let pods = self.api::<Pod>();
        let patch = Patch::Merge(json!({
            "metadata": { "annotations": { POD_DELETION_COST: VICTIM_DELETION_COST.to_string() } }
        }));
        for victim in victims {
            match pods
                .patch(&victim.id, &PatchParams::default(), &patch)
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.is_not_found() => {
                    tracing::debug!(pod = %victim.id, "victim already gone; nothing to mark");
                }
                Err(e) => return Err(map_kube_error(e, "patch", "pods")),
            }
        }
        Ok(())
    }

    fn check_highest_ordinals(&self, target: u32, victims: &[Member]) -> Result<(), ActuatorError> {
        for victim in victims {
            let ordinal = statefulset_ordinal(&self.name, &victim.id);
            if ordinal.is_none_or(|o| o < target) {
                return Err(ActuatorError::Validation {
                    message: format!(
                        "StatefulSet {} removes ordinals >= {target} on scale-down; {} is not one of them \
                         (drain the highest ordinals instead)",
                        self.name, victim.id
                    ),
                });
            }
        }
        Ok(())
    }

    /// The workload's pause annotations (`pause_marks`), from a metadata-only GET
    /// (`PartialObjectMetadata`): the scale subresource carries no annotations.
    async fn annotations(&self) -> Result<BTreeMap<String, String>, ActuatorError> {
        let metadata = match self.kind {
            WorkloadKind::Deployment => self
                .api::<Deployment>()
                .get_metadata(&self.name)
                .await
                .map(|m| m.metadata),
            WorkloadKind::StatefulSet => self
                .api::<StatefulSet>()
                .get_metadata(&self.name)
                .await
                .map(|m| m.metadata),
        }
        .map_err(|e| map_kube_error(e, "get", self.kind.workload_resource()))?;
        Ok(pause_marks::select(
            metadata
                .annotations
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        ))
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
}

#[async_trait]
impl Actuator for KubernetesActuator {
    fn platform(&self) -> &'static str {
        "kubernetes"
    }

    async fn status(&self) -> Result<PoolStatus, ActuatorError> {
        let scale = self.get_scale().await?;
        let selector = scale
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        if selector.is_empty() {
            return Err(ActuatorError::Validation {
                message: format!(
                    "{} {} reports no label selector on its scale subresource",
                    self.kind.scale_resource(),
                    self.name
                ),
            });
        }
        // The pause annotations come from their own GET (the scale subresource does not carry
        // the workload's annotations, and the pool must keep scaling without `get` on the
        // workload): issued beside the pod list, so a status read costs two round trips.
        let pods_params = ListParams::default().labels(&selector);
        let pods_api = self.api::<Pod>();
        let (pods, annotations) = tokio::join!(pods_api.list(&pods_params), self.annotations());
        let pods = pods.map_err(|e| map_kube_error(e, "list", "pods"))?;
        let mut members: Vec<Member> = pods.items.iter().filter_map(pod_member).collect();
        match self.kind {
            WorkloadKind::StatefulSet => {
                members.sort_by_key(|m| statefulset_ordinal(&self.name, &m.id))
            }
            WorkloadKind::Deployment => members.sort_by(|a, b| a.id.cmp(&b.id)),
        }
        let ready = members.iter().filter(|m| m.ready).count() as u32;
        let (pause_marks, pause_marks_error) = match annotations {
            Ok(marks) => (marks, None),
            Err(e) => (
                Default::default(),
                Some(format!("cannot read the pause annotations: {e}")),
            ),
        };
        Ok(PoolStatus {
            desired: replicas(&scale),
            ready,
            min: None,
            max: None,
            members,
            pause_marks,
            pause_marks_error,
        })
    }

    async fn scale_to(&self, target: u32, victims: &[Member]) -> Result<(), ActuatorError> {
        let observed = self.get_scale().await?;
        self.scale_from(observed, target, victims).await
    }
}

/// `spec.replicas` is `omitempty`: a missing value means 0.
fn replicas(scale: &Scale) -> u32 {
    scale
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(0)
        .max(0) as u32
}

/// A pod as a pool member; `None` for pods already being deleted (they are leaving the pool).
fn pod_member(pod: &Pod) -> Option<Member> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    Some(Member {
        id: pod.metadata.name.clone()?,
        address: status.and_then(|s| s.pod_ip.clone()),
        ready,
        protected: false,
        state: status.and_then(|s| s.phase.clone()).unwrap_or_default(),
    })
}

/// `web-3` of StatefulSet `web` has ordinal 3.
fn statefulset_ordinal(set: &str, pod: &str) -> Option<u32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

/// Maps a kube error for `verb` on `resource` to an [`ActuatorError`] that says what to fix.
pub(crate) fn map_kube_error(err: kube::Error, verb: &str, resource: &str) -> ActuatorError {
    match err {
        kube::Error::Api(status) => {
            let message = status.message.clone();
            match status.code {
                403 => ActuatorError::Forbidden {
                    verb: verb.into(),
                    resource: resource.into(),
                    message,
                },
                401 => ActuatorError::Config {
                    message: format!("credentials rejected (401): {message}"),
                },
                404 => ActuatorError::NotFound { message },
                409 => ActuatorError::Conflict { message },
                400 | 422 => ActuatorError::Validation { message },
                429 => ActuatorError::Throttled { message },
                code => ActuatorError::Server {
                    status: code,
                    message,
                },
            }
        }
        kube::Error::InferConfig(e) => ActuatorError::Config {
            message: e.to_string(),
        },
        other => ActuatorError::Unreachable {
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    #[test]
    fn ordinals_parse_only_for_the_set() {
        assert_eq!(statefulset_ordinal("web", "web-12"), Some(12));
        assert_eq!(statefulset_ordinal("web", "webx-1"), None);
        assert_eq!(statefulset_ordinal("web", "web-a"), None);
    }

    #[test]
    fn api_errors_map_to_actionable_variants() {
        let api = |code: u16| {
            kube::Error::Api(Box::new(Status {
                code,
                message: "m".into(),
                ..Status::default()
            }))
        };
        assert_eq!(
            map_kube_error(api(403), "patch", "pods"),
            ActuatorError::Forbidden {
                verb: "patch".into(),
                resource: "pods".into(),
                message: "m".into()
            }
        );
        assert_eq!(map_kube_error(api(409), "patch", "x").label(), "conflict");
        assert_eq!(map_kube_error(api(422), "patch", "x").label(), "validation");
        assert_eq!(map_kube_error(api(429), "get", "x").label(), "throttled");
        assert_eq!(map_kube_error(api(503), "get", "x").label(), "server_error");
    }

    #[test]
    fn terminating_pods_are_not_members() {
        let pod = |extra: serde_json::Value| -> Pod {
            let mut meta = json!({ "name": "w-1" });
            meta.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            serde_json::from_value(json!({ "metadata": meta, "status": { "podIP": "10.0.0.9" } }))
                .unwrap()
        };
        let member = pod_member(&pod(json!({}))).unwrap();
        assert_eq!(
            (member.id.as_str(), member.address.as_deref()),
            ("w-1", Some("10.0.0.9"))
        );
        assert!(pod_member(&pod(json!({ "deletionTimestamp": "2024-01-01T00:00:00Z" }))).is_none());
    }
}
