//! Kubernetes Events (`actuators::events`) on a real kube-apiserver v1.20.2
//! (tests/peers/kube.sh): a scale writes `SuccessfulRescale` regarding the Deployment (with its
//! uid, so `kubectl describe` lists it), a refused scale writes `FailedRescale`, an unreadable
//! size `FailedGetScale` once however often it repeats (rate limit); and the Role shipped in
//! deploy/kubernetes/pool-access is all a pool needs, Events included.

mod support;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use poolpilot::actuators::events::kube::{KubeEvents, REPORTING_CONTROLLER};
use poolpilot::actuators::events::{Evented, limit};
use poolpilot::actuators::kubernetes::{KubernetesActuator, WorkloadKind};
use poolpilot::actuators::{Actuator, Member};
use poolpilot::policy::model::KubernetesTarget;
use serde_json::json;

fn evented(
    client: &Client,
    ns: &str,
    kind: WorkloadKind,
    name: &str,
) -> Evented<KubernetesActuator, KubeEvents> {
    let actuator = KubernetesActuator::new(client.clone(), ns, kind, name);
    let events = KubeEvents::for_actuator(&actuator, "events-test");
    Evented::new(actuator, events, limit::DEFAULT_WINDOW)
}

/// poolpilot's Events in `ns` (the controller-manager writes its own there too).
async fn events_of(client: &Client, ns: &str) -> Vec<Event> {
    let mut list: Vec<Event> = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reporting_controller.as_deref() == Some(REPORTING_CONTROLLER))
        .collect();
    list.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    list
}

#[tokio::test]
async fn actuations_and_refusals_are_events_on_the_scaled_object() {
    let Some(kubeconfig) = support::peer("POOLPILOT_TEST_KUBECONFIG") else {
        return;
    };
    let client = support::kube::kube_client(&kubeconfig).await;
    let ns = format!("pp-events-{}", std::process::id());
    let deployments = support::kube::deployment(&client, &ns).await;
    let uid = deployments.get("workers").await.unwrap().metadata.uid;

    // A scale-up: one Normal SuccessfulRescale regarding the Deployment.
    let pool = evented(&client, &ns, WorkloadKind::Deployment, "workers");
    assert_eq!(pool.status().await.unwrap().desired, 1);
    pool.scale_to(3, &[]).await.unwrap();
    assert_eq!(support::kube::replicas(&deployments).await, 3);
    let written = events_of(&client, &ns).await;
    assert_eq!(written.len(), 1, "{written:#?}");
    let e = &written[0];
    assert_eq!(e.type_.as_deref(), Some("Normal"));
    assert_eq!(e.reason.as_deref(), Some("SuccessfulRescale"));
    assert_eq!(e.action.as_deref(), Some("Scale"));
    assert_eq!(e.note.as_deref(), Some("New size: 3; old size: 1"));
    let regarding = e.regarding.clone().unwrap();
    assert_eq!(
        (regarding.kind.as_deref(), regarding.name.as_deref()),
        (Some("Deployment"), Some("workers"))
    );
    assert_eq!(regarding.uid, uid, "kubectl describe matches on the uid");

    // The same Event through the core/v1 API, selected as `kubectl describe` selects them.
    let described = Api::<CoreEvent>::namespaced(client.clone(), &ns)
        .list(&ListParams::default().fields(&format!(
            "involvedObject.kind=Deployment,involvedObject.name=workers,involvedObject.uid={}",
            uid.clone().unwrap()
        )))
        .await
        .unwrap()
        .items;
    let described: Vec<CoreEvent> = described
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("SuccessfulRescale"))
        .collect();
    assert_eq!(described.len(), 1);
    assert_eq!(
        described[0].message.as_deref(),
        Some("New size: 3; old size: 1")
    );

    // A refusal: a StatefulSet only loses its highest ordinals, so naming db-0 is refused.
    let set: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 3, "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "w", "image": "example.invalid/db:1"}]}}
        }
    }))
    .unwrap();
    Api::<StatefulSet>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &set)
        .await
        .unwrap();
    let db = evented(&client, &ns, WorkloadKind::StatefulSet, "db");
    assert_eq!(db.status().await.unwrap().desired, 3);
    assert!(db.scale_to(2, &[Member::new("db-0")]).await.is_err());
    let refused: Vec<Event> = events_of(&client, &ns)
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("FailedRescale"))
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].type_.as_deref(), Some("Warning"));
    let note = refused[0].note.clone().unwrap();
    assert!(
        note.starts_with("New size: 2; old size: 3; removed after drain: db-0; error: "),
        "{note}"
    );
    assert_eq!(
        refused[0].regarding.as_ref().unwrap().kind.as_deref(),
        Some("StatefulSet")
    );

    // An unreadable size, every tick for a while: one FailedGetScale.
    let ghost = evented(&client, &ns, WorkloadKind::Deployment, "ghost");
    for _ in 0..4 {
        assert!(ghost.status().await.is_err());
    }
    let failed: Vec<Event> = events_of(&client, &ns)
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("FailedGetScale"))
        .collect();
    assert_eq!(failed.len(), 1, "rate-limited: {failed:#?}");
    assert!(
        failed[0].note.as_deref().unwrap().contains("not found"),
        "{:?}",
        failed[0].note
    );
}

/// The Role shipped in deploy/kubernetes/pool-access is enough for everything a pool needs,
/// Events included: a user bound to exactly its rules reads, scales and writes the Event.
#[tokio::test]
async fn the_shipped_pool_role_is_enough_to_scale_and_write_events() {
    let Some(kubeconfig) = support::peer("POOLPILOT_TEST_KUBECONFIG") else {
        return;
    };
    let admin_token = support::peer("POOLPILOT_TEST_KUBE_ADMIN_TOKEN").unwrap();
    let restricted_token = support::peer("POOLPILOT_TEST_KUBE_RESTRICTED_TOKEN").unwrap();
    let client = support::kube::kube_client(&kubeconfig).await;
    let ns = format!("pp-events-rbac-{}", std::process::id());
    let deployments = support::kube::deployment(&client, &ns).await;

    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/kubernetes/pool-access/role.yaml"),
    )
    .unwrap();
    let mut role = shipped
        .split("\n---\n")
        .map(|doc| poolpilot::policy::yaml::parse(doc).unwrap().value)
        .find(|o| o["kind"] == "Role")
        .unwrap();
    role["metadata"]["namespace"] = json!(ns);
    let role: Role = serde_json::from_value(role).unwrap();
    Api::<Role>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "poolpilot-pools"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "poolpilot-pools"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "poolpilot-restricted"}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let restricted_path = dir.path().join("kubeconfig");
    let text = std::fs::read_to_string(&kubeconfig)
        .unwrap()
        .replace(&admin_token, &restricted_token);
    std::fs::write(&restricted_path, text).unwrap();
    let target = KubernetesTarget {
        namespace: ns.clone(),
        deployment: Some("workers".into()),
        statefulset: None,
        kubeconfig: Some(restricted_path),
        context: None,
    };
    let actuator = KubernetesActuator::from_target(&target).await.unwrap();
    let events = KubeEvents::for_actuator(&actuator, "rbac-test");
    let pool = Evented::new(actuator, events, limit::DEFAULT_WINDOW);
    // RBAC caches converge within milliseconds of the binding.
    let mut status = pool.status().await;
    for _ in 0..50 {
        if status.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        status = pool.inner().status().await;
    }
    assert_eq!(status.unwrap().desired, 1);
    pool.scale_to(2, &[]).await.unwrap();
    assert_eq!(support::kube::replicas(&deployments).await, 2);
    let written: Vec<Event> = events_of(&client, &ns)
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("SuccessfulRescale"))
        .collect();
    assert_eq!(written.len(), 1, "the Role lets poolpilot write its Event");
    assert_eq!(written[0].note.as_deref(), Some("New size: 2; old size: 1"));
}
