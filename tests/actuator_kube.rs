//! The Kubernetes actuator against a real kube-apiserver v1.20.2 + controller-manager
//! (tests/peers/kube.sh). Each test works in its own namespace.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use poolpilot::actuators::kubernetes::{
    KubernetesActuator, POD_DELETION_COST, VICTIM_DELETION_COST, WorkloadKind,
};
use poolpilot::actuators::{Actuator, ActuatorError, Member};
use poolpilot::policy::model::KubernetesTarget;
use serde_json::json;

const RESTRICTED_USER: &str = "poolpilot-restricted";

fn kubeconfig_path() -> Option<String> {
    support::peer("POOLPILOT_TEST_KUBECONFIG")
}

async fn admin_client(path: &str) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// A fresh namespace named after the test.
async fn namespace(client: &Client, name: &str) -> String {
    let api: Api<Namespace> = Api::all(client.clone());
    let _ = api.delete(name, &Default::default()).await;
    for _ in 0..120 {
        match api
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
            )
            .await
        {
            Ok(_) => return name.to_owned(),
            Err(kube::Error::Api(s)) if s.is_already_exists() || s.code == 409 => {
                tokio::time::sleep(Duration::from_millis(500)).await; // still terminating from a previous run
            }
            Err(e) => panic!("create namespace {name}: {e}"),
        }
    }
    panic!("namespace {name} never became creatable");
}

fn pod_template(app: &str) -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "worker", "image": "registry.invalid/worker:1"}]}
    })
}

async fn create_deployment(client: &Client, ns: &str, name: &str, replicas: i32) {
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": pod_template(name)}
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
}

/// Polls `status()` until the pool has `n` members (the controller-manager creates/deletes pods).
async fn wait_members(actuator: &dyn Actuator, n: usize) -> Vec<Member> {
    let mut last = Vec::new();
    for _ in 0..200 {
        last = actuator.status().await.unwrap().members;
        if last.len() == n {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expected {n} members, have {}: {last:?}", last.len());
}

/// Plays kubelet for one pod: Running and Ready.
async fn mark_ready(client: &Client, ns: &str, pod: &str) {
    let status = json!({"status": {"phase": "Running", "podIP": "10.1.0.7", "conditions": [
        {"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}]}});
    Api::<Pod>::namespaced(client.clone(), ns)
        .patch_status(pod, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

#[tokio::test]
async fn deployment_scales_and_marks_victims_with_deletion_cost() {
    let Some(path) = kubeconfig_path() else {
        return;
    };
    let client = admin_client(&path).await;
    let ns = namespace(&client, "pp-deploy").await;
    create_deployment(&client, &ns, "trino-worker", 3).await;
    let actuator = KubernetesActuator::new(
        client.clone(),
        &ns,
        WorkloadKind::Deployment,
        "trino-worker",
    );

    let members = wait_members(&actuator, 3).await;
    mark_ready(&client, &ns, &members[1].id).await;
    let status = actuator.status().await.unwrap();
    assert_eq!((status.desired, status.ready), (3, 1));
    let ready = status.members.iter().find(|m| m.ready).unwrap();
    assert_eq!(
        (ready.id.as_str(), ready.address.as_deref()),
        (members[1].id.as_str(), Some("10.1.0.7"))
    );

    actuator.scale_to(5, &[]).await.unwrap();
    assert_eq!(
        actuator.get_scale().await.unwrap().spec.unwrap().replicas,
        Some(5)
    );
    let members = wait_members(&actuator, 5).await;

    let victim = members[3].clone();
    actuator
        .scale_to(2, std::slice::from_ref(&victim))
        .await
        .unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let annotated: Vec<String> = pods
        .list(&ListParams::default().labels("app=trino-worker"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| {
            p.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(POD_DELETION_COST))
        })
        .map(|p| p.metadata.name.unwrap())
        .collect();
    // The victim is either still terminating (and annotated) or already gone; nobody else is marked.
    assert!(
        annotated.iter().all(|p| *p == victim.id),
        "only the victim is marked: {annotated:?}"
    );
    if let Ok(pod) = pods.get(&victim.id).await {
        let cost = pod.metadata.annotations.unwrap()[POD_DELETION_COST].clone();
        assert_eq!(cost, VICTIM_DELETION_COST.to_string());
    }
    assert_eq!(
        actuator.get_scale().await.unwrap().spec.unwrap().replicas,
        Some(2)
    );
    wait_members(&actuator, 2).await;

    actuator.scale_to(2, &[]).await.unwrap(); // idempotent
    actuator.scale_to(0, &[]).await.unwrap();
    let scale = actuator.get_scale().await.unwrap();
    assert_eq!(
        scale.spec.and_then(|s| s.replicas).unwrap_or(0),
        0,
        "a scale of 0 is `spec: {{}}`"
    );
    assert_eq!(actuator.status().await.unwrap().desired, 0);
}

#[tokio::test]
async fn a_stale_scale_is_a_conflict_that_is_reread_and_retried() {
    let Some(path) = kubeconfig_path() else {
        return;
    };
    let client = admin_client(&path).await;
    let ns = namespace(&client, "pp-conflict").await;
    create_deployment(&client, &ns, "spark-worker", 1).await;
    let actuator = KubernetesActuator::new(
        client.clone(),
        &ns,
        WorkloadKind::Deployment,
        "spark-worker",
    );

    let observed = actuator.get_scale().await.unwrap();
    // Someone else writes the Deployment after we read it: our resourceVersion is now stale.
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .patch(
            "spark-worker",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"touched-by": "another-writer"}}})),
        )
        .await
        .unwrap();
    actuator.scale_from(observed, 4, &[]).await.unwrap();
    assert_eq!(
        actuator.conflicts_retried(),
        1,
        "the stale write got a 409 and was retried once"
    );
    assert_eq!(
        actuator.get_scale().await.unwrap().spec.unwrap().replicas,
        Some(4)
    );
}

#[tokio::test]
async fn statefulset_only_loses_its_highest_ordinals() {
    let Some(path) = kubeconfig_path() else {
        return;
    };
    let client = admin_client(&path).await;
    let ns = namespace(&client, "pp-sts").await;
    let set: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "serviceName": "web", "podManagementPolicy": "Parallel",
                 "selector": {"matchLabels": {"app": "web"}}, "template": pod_template("web")}
    }))
    .unwrap();
    Api::<StatefulSet>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &set)
        .await
        .unwrap();
    let actuator = KubernetesActuator::new(client.clone(), &ns, WorkloadKind::StatefulSet, "web");

    let members = wait_members(&actuator, 3).await;
    let ids: Vec<_> = members.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["web-0", "web-1", "web-2"], "members in ordinal order");

    let refused = actuator
        .scale_to(2, &[Member::new("web-0")])
        .await
        .unwrap_err();
    assert_eq!(refused.label(), "validation", "{refused}");
    assert_eq!(
        actuator.get_scale().await.unwrap().spec.unwrap().replicas,
        Some(3),
        "nothing was written"
    );

    actuator.scale_to(2, &[Member::new("web-2")]).await.unwrap();
    assert_eq!(
        actuator.get_scale().await.unwrap().spec.unwrap().replicas,
        Some(2)
    );
    let left: Vec<_> = wait_members(&actuator, 2)
        .await
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(left, ["web-0", "web-1"]);
}

/// Grants `verbs` on `resource` (in `group`) to the restricted user, then waits until RBAC sees it.
async fn grant(client: &Client, ns: &str, name: &str, group: &str, resource: &str, verbs: &[&str]) {
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": name},
        "rules": [{"apiGroups": [group], "resources": [resource], "verbs": verbs}]
    }))
    .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": RESTRICTED_USER}]
    }))
    .unwrap();
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}

/// Retries `call` while it is still Forbidden for `previous` (RBAC caches converge in ms).
async fn after_grant<F, Fut>(previous: &str, mut call: F) -> Result<(), ActuatorError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), ActuatorError>>,
{
    for _ in 0..50 {
        match call().await {
            Err(ActuatorError::Forbidden {
                ref resource,
                ref verb,
                ..
            }) if format!("{verb} {resource}") == previous => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
    call().await
}

fn forbidden(result: Result<(), ActuatorError>) -> String {
    match result {
        Err(ActuatorError::Forbidden {
            verb,
            resource,
            message,
        }) => {
            assert!(
                message.contains(RESTRICTED_USER),
                "the apiserver's message is kept: {message}"
            );
            format!("{verb} {resource}")
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn rbac_errors_name_the_missing_verb_and_resource() {
    let Some(path) = kubeconfig_path() else {
        return;
    };
    let admin_token = support::peer("POOLPILOT_TEST_KUBE_ADMIN_TOKEN").unwrap();
    let restricted_token = support::peer("POOLPILOT_TEST_KUBE_RESTRICTED_TOKEN").unwrap();
    let client = admin_client(&path).await;
    let ns = namespace(&client, "pp-rbac").await;
    create_deployment(&client, &ns, "celery-worker", 2).await;

    let dir = tempfile::tempdir().unwrap();
    let restricted_path = dir.path().join("kubeconfig");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&admin_token, &restricted_token);
    std::fs::write(&restricted_path, text).unwrap();
    let target = KubernetesTarget {
        namespace: ns.clone(),
        deployment: Some("celery-worker".into()),
        statefulset: None,
        kubeconfig: Some(restricted_path),
        context: None,
    };
    let restricted = KubernetesActuator::from_target(&target).await.unwrap();
    let status = || async { restricted.status().await.map(|_| ()) };

    let missing = forbidden(status().await);
    assert_eq!(missing, "get deployments.apps/scale");
    grant(
        &client,
        &ns,
        "scale-read",
        "apps",
        "deployments/scale",
        &["get"],
    )
    .await;
    let missing = forbidden(after_grant(&missing, status).await);
    assert_eq!(missing, "list pods");
    grant(&client, &ns, "pods-list", "", "pods", &["list"]).await;
    after_grant(&missing, status).await.unwrap();
    // Without `get` on the Deployment the pool is still sized; the pause annotations are
    // unread and the status says which permission is missing.
    let unread = restricted.status().await.unwrap().pause_marks_error;
    assert!(
        unread
            .as_deref()
            .is_some_and(|e| e.contains("`get` on `deployments.apps`")),
        "{unread:?}"
    );
    grant(
        &client,
        &ns,
        "workload-read",
        "apps",
        "deployments",
        &["get"],
    )
    .await;
    assert!(
        support::wait_until(std::time::Duration::from_secs(10), || async {
            restricted
                .status()
                .await
                .unwrap()
                .pause_marks_error
                .is_none()
        })
        .await
    );

    let up = || async { restricted.scale_to(4, &[]).await };
    let missing = forbidden(up().await);
    assert_eq!(missing, "patch deployments.apps/scale");
    grant(
        &client,
        &ns,
        "scale-write",
        "apps",
        "deployments/scale",
        &["patch"],
    )
    .await;
    after_grant(&missing, up).await.unwrap();

    let victim = wait_members(&restricted, 4).await.remove(0);
    let down = || async { restricted.scale_to(3, std::slice::from_ref(&victim)).await };
    assert_eq!(forbidden(down().await), "patch pods");
    assert_eq!(
        restricted.get_scale().await.unwrap().spec.unwrap().replicas,
        Some(4),
        "no scale-down unmarked"
    );
    grant(&client, &ns, "pods-patch", "", "pods", &["patch"]).await;
    after_grant("patch pods", down).await.unwrap();
    assert_eq!(
        restricted.get_scale().await.unwrap().spec.unwrap().replicas,
        Some(3)
    );
}
