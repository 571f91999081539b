//! The Kubernetes sink: each Event is an `events.k8s.io/v1` Event in the object's namespace,
//! `regarding` the Deployment or StatefulSet, so `kubectl describe` lists it with the object's
//! own events (kubectl matches on the object's uid, read once from the scale subresource).
//!
//! RBAC: `events.k8s.io` `events` `create` in each pool's namespace
//! (`deploy/kubernetes/pool-access/role.yaml`). Field limits are the API server's
//! (`kubernetes/kubernetes: pkg/apis/core/validation/events.go`: note ≤ 1024 bytes,
//! reportingController a qualified name, eventTime required).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

use super::{EventSink, PoolEvent};
use crate::actuators::kubernetes::{KubernetesActuator, WorkloadKind};
use crate::time::Timestamp;

/// `reportingController`: who wrote the Event (a qualified name, as the API requires).
pub const REPORTING_CONTROLLER: &str = "poolpilot.io/poolpilot";
const NOTE_LIMIT: usize = 1024;

pub struct KubeEvents {
    /// Reads the object's uid (the scale subresource carries the object's metadata).
    scale: KubernetesActuator,
    instance: String,
    uid: Mutex<Option<String>>,
    seq: AtomicU32,
}

impl KubeEvents {
    /// Events about the object `actuator` scales; `instance` tells replicas apart (pod name).
    pub fn for_actuator(actuator: &KubernetesActuator, instance: &str) -> KubeEvents {
        KubeEvents {
            scale: KubernetesActuator::new(
                actuator.client(),
                actuator.namespace(),
                actuator.kind(),
                actuator.name(),
            ),
            instance: instance.chars().take(128).collect(),
            uid: Mutex::new(None),
            seq: AtomicU32::new(0),
        }
    }

    /// The object's uid; `None` (and tried again next time) when it cannot be read.
    async fn uid(&self) -> Option<String> {
        if let Some(uid) = self.uid.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Some(uid);
        }
        let uid = self.scale.get_scale().await.ok()?.metadata.uid?;
        *self.uid.lock().unwrap_or_else(|p| p.into_inner()) = Some(uid.clone());
        Some(uid)
    }

    fn event(&self, e: &PoolEvent, uid: Option<String>, now: Timestamp) -> Event {
        let kind = match self.scale.kind() {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
        };
        // client-go names Events `<object>.<unique hex>`; a sequence keeps two Events of
        // the same millisecond apart.
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) % 0x10000;
        let mut note = e.note.clone();
        if note.len() > NOTE_LIMIT {
            let mut cut = NOTE_LIMIT - 3;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
            note.push_str("...");
        }
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{}.{:x}{seq:04x}", self.scale.name(), now.0)),
                namespace: Some(self.scale.namespace().to_owned()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(
                k8s_openapi::jiff::Timestamp::from_millisecond(now.0).unwrap_or_default(),
            )),
            type_: Some(e.type_.as_str().to_owned()),
            reason: Some(e.reason.to_owned()),
            action: Some(e.action.to_owned()),
            note: Some(note),
            reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
            reporting_instance: Some(self.instance.clone()),
            regarding: Some(ObjectReference {
                api_version: Some("apps/v1".into()),
                kind: Some(kind.into()),
                name: Some(self.scale.name().to_owned()),
                namespace: Some(self.scale.namespace().to_owned()),
                uid,
                ..ObjectReference::default()
            }),
            ..Event::default()
        }
    }
}

#[async_trait]
impl EventSink for KubeEvents {
    async fn publish(&self, e: &PoolEvent) -> Result<(), String> {
        let uid = self.uid().await;
        let event = self.event(e, uid, Timestamp::now());
        Api::<Event>::namespaced(self.scale.client(), self.scale.namespace())
            .create(&PostParams::default(), &event)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
