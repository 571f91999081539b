//! The AWS Auto Scaling actuator: the real query-protocol wire through moto (tests/peers/moto.sh),
//! and a fault-injecting fake (`asg_fake` below) for what moto never produces
//! (throttling, ScalingActivityInProgress, ResourceContention, validation, access denied, a failing
//! EC2 DescribeInstances).

mod support;

use std::time::Duration;

use asg_fake::{AsgFake, Reply};
use aws_sdk_autoscaling::Client;
use poolpilot::actuators::aws_asg::{AsgConnection, AwsAsgActuator, RetryPolicy};
use poolpilot::actuators::{Actuator, ActuatorError, Member, pause_marks};
use poolpilot::engine::{Pause, PauseKind, PauseSource};
use poolpilot::policy::model::AwsAsgTarget;
use support::moto::{GroupShape, asg_client as client_for, ec2_client as ec2_client_for};

const FAST_RETRY: RetryPolicy = RetryPolicy {
    min_delay: Duration::from_millis(1),
    max_delay: Duration::from_millis(5),
    max_retries: 3,
};

// ---------------------------------------------------------------- moto: the real wire

/// A fresh group of `desired` instances in moto; returns the setup client and the actuator,
/// built the way the daemon builds it (policy target, standard credential chain from env).
async fn moto_group(name: &str, desired: i32) -> Option<(Client, AwsAsgActuator)> {
    let endpoint = support::peer("POOLPILOT_TEST_AWS_ENDPOINT")?;
    let client = client_for(&endpoint);
    let _ = client
        .delete_auto_scaling_group()
        .auto_scaling_group_name(name)
        .force_delete(true)
        .send()
        .await;
    let _ = client
        .delete_launch_configuration()
        .launch_configuration_name(name)
        .send()
        .await;
    client
        .create_launch_configuration()
        .launch_configuration_name(name)
        .image_id("ami-12c6146b")
        .instance_type("t3.micro")
        .send()
        .await
        .unwrap();
    client
        .create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_configuration_name(name)
        .min_size(0)
        .max_size(10)
        .desired_capacity(desired)
        .availability_zones("us-east-1a")
        .send()
        .await
        .unwrap();
    let target = AwsAsgTarget {
        group: name.into(),
        region: "us-east-1".into(),
        endpoint_url: Some(endpoint),
    };
    Some((client, AwsAsgActuator::from_target(&target).await))
}

fn ids(members: &[Member]) -> Vec<String> {
    members.iter().map(|m| m.id.clone()).collect()
}

#[tokio::test]
async fn moto_describe_reports_bounds_members_and_protection() {
    let Some((client, asg)) = moto_group("pp-describe", 3).await else {
        return;
    };
    let before = asg.status().await.unwrap();
    let protected_id = before.members[0].id.clone();
    client
        .set_instance_protection()
        .auto_scaling_group_name("pp-describe")
        .instance_ids(&protected_id)
        .protected_from_scale_in(true)
        .send()
        .await
        .unwrap();
    let status = asg.status().await.unwrap();
    assert_eq!(
        (status.desired, status.min, status.max),
        (3, Some(0), Some(10))
    );
    assert_eq!(status.members.len(), 3);
    let protected: Vec<_> = status
        .members
        .iter()
        .filter(|m| m.protected)
        .map(|m| m.id.clone())
        .collect();
    assert_eq!(protected, [protected_id]);
    assert!(status.members.iter().all(|m| m.state == "InService"));
}

/// Pause tags come back with the status read (DescribeAutoScalingGroups' `Tags`), no extra call.
#[tokio::test]
async fn moto_pause_tags_are_read_with_the_status() {
    let Some((_client, asg)) = moto_group("pp-paused", 2).await else {
        return;
    };
    let endpoint = support::peer("POOLPILOT_TEST_AWS_ENDPOINT").unwrap();
    assert!(asg.status().await.unwrap().pause_marks.is_empty());
    let tag = |k: &'static str, v: Option<&'static str>| {
        support::moto::tag_group(&endpoint, "pp-paused", k, v)
    };
    tag("poolpilot.io/paused-replicas", Some("4")).await;
    tag("poolpilot.io/paused-until", Some("2030-01-01T00:00:00Z")).await;
    tag("team", Some("data")).await;
    let status = asg.status().await.unwrap();
    let (pauses, problems) = pause_marks::parse(&status.pause_marks, PauseSource::AsgTag);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        pauses,
        vec![Pause {
            kind: PauseKind::Pin { replicas: 4 },
            until: poolpilot::time::Timestamp::parse_rfc3339("2030-01-01T00:00:00Z").ok(),
            source: PauseSource::AsgTag,
        }]
    );
    assert_eq!(
        status.pause_marks.len(),
        2,
        "only pause keys: {:?}",
        status.pause_marks
    );
    tag("poolpilot.io/paused-replicas", None).await;
    tag("poolpilot.io/paused-until", None).await;
    assert!(asg.status().await.unwrap().pause_marks.is_empty());
}

#[tokio::test]
async fn moto_scale_up_then_terminate_exactly_the_drained_instances() {
    let Some((_client, asg)) = moto_group("pp-scale", 2).await else {
        return;
    };
    asg.scale_to(5, &[]).await.unwrap();
    let grown = asg.status().await.unwrap();
    assert_eq!((grown.desired, grown.members.len()), (5, 5));

    let victims = vec![grown.members[1].clone(), grown.members[3].clone()];
    asg.scale_to(3, &victims).await.unwrap();
    let after = asg.status().await.unwrap();
    assert_eq!(after.desired, 3);
    let left = ids(&after.members);
    let expected: Vec<String> = ids(&grown.members)
        .into_iter()
        .filter(|id| !ids(&victims).contains(id))
        .collect();
    assert_eq!(
        left, expected,
        "exactly the named instances went; AWS picked nobody"
    );

    asg.scale_to(3, &victims).await.unwrap(); // repeated call: victims already gone, nothing to do
    assert_eq!(asg.status().await.unwrap().desired, 3);
}

#[tokio::test]
async fn moto_protected_victims_and_out_of_bounds_targets_are_refused_before_writing() {
    let Some((client, asg)) = moto_group("pp-protect", 3).await else {
        return;
    };
    let members = asg.status().await.unwrap().members;
    client
        .set_instance_protection()
        .auto_scaling_group_name("pp-protect")
        .instance_ids(&members[2].id)
        .protected_from_scale_in(true)
        .send()
        .await
        .unwrap();
    let victim = asg.status().await.unwrap().members[2].clone();
    let err = asg
        .scale_to(2, std::slice::from_ref(&victim))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ActuatorError::Protected {
            member: victim.id.clone()
        }
    );
    // moto itself would terminate a protected instance and accept 11 > max: the checks are ours.
    assert_eq!(
        asg.scale_to(11, &[]).await.unwrap_err().label(),
        "validation"
    );
    let err = asg.scale_to(2, &[]).await.unwrap_err();
    assert!(
        err.to_string().contains("never lets the group pick"),
        "{err}"
    );
    let status = asg.status().await.unwrap();
    assert_eq!(
        (status.desired, status.members.len()),
        (3, 3),
        "nothing was written"
    );
}

/// Members carry the private IPv4 that EC2 itself reports for the instance (group built from a
/// launch template, the common production set-up).
#[tokio::test]
async fn moto_members_carry_the_private_ip_that_ec2_reports() {
    let Some(endpoint) = support::peer("POOLPILOT_TEST_AWS_ENDPOINT") else {
        return;
    };
    let ec2 = ec2_client_for(&endpoint);
    let name = "pp-addresses";
    let shape = GroupShape {
        min: 0,
        max: 10,
        desired: 3,
        subnet: None,
    };
    support::moto::template_group(&endpoint, name, shape).await;
    let target = AwsAsgTarget {
        group: name.into(),
        region: "us-east-1".into(),
        endpoint_url: Some(endpoint),
    };
    let status = AwsAsgActuator::from_target(&target)
        .await
        .status()
        .await
        .unwrap();
    assert_eq!(status.members.len(), 3);
    let described = ec2
        .describe_instances()
        .set_instance_ids(Some(ids(&status.members)))
        .send()
        .await
        .unwrap();
    let ec2_ips: std::collections::HashMap<String, String> = described
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            let ip = i
                .private_ip_address()
                .expect("moto gives every instance a private IP");
            (i.instance_id().unwrap().to_owned(), ip.to_owned())
        })
        .collect();
    assert_eq!(ec2_ips.len(), 3);
    for member in &status.members {
        assert_eq!(
            member.address.as_ref(),
            Some(&ec2_ips[&member.id]),
            "{}",
            member.id
        );
    }
    let distinct: std::collections::HashSet<_> = ec2_ips.values().collect();
    assert_eq!(distinct.len(), 3, "each instance has its own address");
}

/// The daemon's pools share one connection per region: their concurrent status reads become
/// one batched Describe, and each pool still gets exactly its own group back.
#[tokio::test]
async fn moto_concurrent_reads_of_one_connection_each_get_their_own_group() {
    let Some((_, _)) = moto_group("pp-batch-a", 1).await else {
        return;
    };
    let Some((_, _)) = moto_group("pp-batch-b", 2).await else {
        return;
    };
    let endpoint = support::peer("POOLPILOT_TEST_AWS_ENDPOINT").unwrap();
    let connection = AsgConnection::load("us-east-1", Some(&endpoint)).await;
    let (a, b, missing) = (
        connection.actuator("pp-batch-a"),
        connection.actuator("pp-batch-b"),
        connection.actuator("pp-batch-missing"),
    );
    let (a, b, missing) = tokio::join!(a.status(), b.status(), missing.status());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.desired, a.members.len()), (1, 1));
    assert_eq!((b.desired, b.members.len()), (2, 2));
    assert!(
        ids(&a.members)
            .iter()
            .all(|id| !ids(&b.members).contains(id))
    );
    assert!(
        a.members
            .iter()
            .chain(&b.members)
            .all(|m| m.address.is_some()),
        "addresses from the batched DescribeInstances"
    );
    assert_eq!(missing.unwrap_err().label(), "not_found");
}

// ---------------------------------------------------------------- fault-injecting fake

async fn fake_asg(fake: &AsgFake) -> AwsAsgActuator {
    AwsAsgActuator::new(
        client_for(&fake.url()),
        ec2_client_for(&fake.url()),
        "spark-workers",
        FAST_RETRY,
    )
}

#[tokio::test]
async fn fake_concurrent_reads_cost_one_describe_of_each_kind() {
    let fake = AsgFake::start().await;
    let connection = AsgConnection::new(
        client_for(&fake.url()),
        ec2_client_for(&fake.url()),
        FAST_RETRY,
    );
    let names = ["spark-workers", "pool-b", "pool-c"];
    let actuators: Vec<_> = names.iter().map(|n| connection.actuator(n)).collect();
    let statuses = futures::future::join_all(actuators.iter().map(|a| a.status())).await;
    assert_eq!(statuses[0].as_ref().unwrap().desired, 2);
    assert_eq!(statuses[1].as_ref().unwrap_err().label(), "not_found");
    let describes = fake.requests("DescribeAutoScalingGroups");
    assert_eq!(describes.len(), 1, "{describes:?}");
    assert!(
        names.iter().all(|n| describes[0].contains(n)),
        "{}",
        describes[0]
    );
    assert_eq!(fake.requests("DescribeInstances").len(), 1);
}

/// A status read runs inside the daemon's tick: even under the default policy (6 retries for
/// writes, up to 20 s apart) a failing read gives up after 2 quick retries, so one broken group
/// cannot hold back every pool's decision.
#[tokio::test]
async fn a_failing_status_read_gives_up_after_two_quick_retries() {
    let fake = AsgFake::start().await;
    fake.script(
        "DescribeAutoScalingGroups",
        vec![Reply::error(503, "InternalFailure", "down"); 10],
    );
    let asg = AwsAsgActuator::new(
        client_for(&fake.url()),
        ec2_client_for(&fake.url()),
        "spark-workers",
        RetryPolicy::default(),
    );
    let error = tokio::time::timeout(Duration::from_secs(3), asg.status())
        .await
        .expect("bounded well below the write budget")
        .unwrap_err();
    assert_eq!(error.label(), "server_error");
    assert_eq!(fake.requests("DescribeAutoScalingGroups").len(), 3);
}

/// An endpoint that accepts connections and never answers: the status read is given up on at
/// the batch deadline and its connection closed, so no stuck task or socket is left behind per
/// tick (a caller's own timeout cannot cancel a batch that serves other pools too).
#[tokio::test]
async fn a_hung_endpoint_is_given_up_on_and_its_connection_closed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        let (mut socket, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        while matches!(socket.read(&mut buf), Ok(n) if n > 0) {} // the request, then EOF
        let _ = closed_tx.send(());
    });
    let asg = AwsAsgActuator::new(client_for(&url), ec2_client_for(&url), "g", FAST_RETRY);
    let error = tokio::time::timeout(Duration::from_secs(30), asg.status())
        .await
        .expect("the read is bounded")
        .unwrap_err();
    assert_eq!(error.label(), "unreachable", "{error}");
    closed_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the hung connection is closed");
}

#[tokio::test]
async fn fake_describe_parses_recorded_aws_xml() {
    let fake = AsgFake::start().await;
    let status = fake_asg(&fake).await.status().await.unwrap();
    assert_eq!(
        (status.desired, status.min, status.max, status.ready),
        (2, Some(1), Some(4), 2)
    );
    assert_eq!(
        ids(&status.members),
        ["i-0aaa0000000000001", "i-0bbb0000000000002"],
        "Terminating:Wait left out"
    );
    assert!(status.members[1].protected);
    let addresses: Vec<_> = status.members.iter().map(|m| m.address.clone()).collect();
    assert_eq!(
        addresses,
        [Some("10.0.1.11".to_owned()), Some("10.0.2.22".to_owned())],
        "private IPs from EC2 DescribeInstances"
    );
    let lookup = &fake.requests("DescribeInstances")[0];
    assert!(
        lookup.contains("Filter.1.Name=instance-id")
            && lookup.contains("i-0aaa0000000000001")
            && !lookup.contains("i-0ccc0000000000003"),
        "only members are looked up, by filter: {lookup}"
    );
}

#[tokio::test]
async fn a_failing_describe_instances_leaves_members_without_address_but_status_works() {
    let fake = AsgFake::start().await;
    fake.script(
        "DescribeInstances",
        [Reply::ec2_error(
            403,
            "UnauthorizedOperation",
            "You are not authorized to perform this operation.",
        )],
    );
    let status = fake_asg(&fake).await.status().await.unwrap();
    assert_eq!((status.desired, status.members.len()), (2, 2));
    assert!(status.members.iter().all(|m| m.address.is_none()));
    assert_eq!(
        fake.requests("DescribeInstances").len(),
        1,
        "access errors are not retried"
    );

    // Transient failures are retried within the read budget, and then given up on the same way.
    let read_attempts = 1 + FAST_RETRY.for_reads().max_retries;
    fake.script(
        "DescribeInstances",
        vec![Reply::ec2_error(503, "Unavailable", "try later"); read_attempts],
    );
    let status = fake_asg(&fake).await.status().await.unwrap();
    assert!(status.members.iter().all(|m| m.address.is_none()));
    assert_eq!(fake.requests("DescribeInstances").len(), 1 + read_attempts);
}

#[tokio::test]
async fn throttling_is_retried_with_backoff_until_it_passes() {
    let fake = AsgFake::start().await;
    fake.script(
        "SetDesiredCapacity",
        vec![Reply::error(400, "Throttling", "Rate exceeded"); 2],
    );
    fake_asg(&fake).await.scale_to(3, &[]).await.unwrap();
    assert_eq!(
        fake.actions(),
        [
            "DescribeAutoScalingGroups",
            "SetDesiredCapacity",
            "SetDesiredCapacity",
            "SetDesiredCapacity"
        ]
    );
    let sent = fake.requests("SetDesiredCapacity");
    assert!(
        sent[0].contains("DesiredCapacity=3") && sent[0].contains("HonorCooldown=false"),
        "{}",
        sent[0]
    );
}

#[tokio::test]
async fn activity_in_progress_and_contention_are_retried_on_terminate() {
    let fake = AsgFake::start().await;
    fake.script(
        "TerminateInstanceInAutoScalingGroup",
        [
            Reply::error(
                400,
                "ScalingActivityInProgress",
                "Scaling activity 1234 is in progress",
            ),
            Reply::error(
                500,
                "ResourceContention",
                "You already have a pending update",
            ),
        ],
    );
    fake_asg(&fake)
        .await
        .scale_to(1, &[Member::new("i-0aaa0000000000001")])
        .await
        .unwrap();
    let terminates = fake.requests("TerminateInstanceInAutoScalingGroup");
    assert_eq!(terminates.len(), 3);
    assert!(
        terminates
            .iter()
            .all(|r| r.contains("InstanceId=i-0aaa0000000000001")
                && r.contains("ShouldDecrementDesiredCapacity=true"))
    );
}

#[tokio::test]
async fn validation_errors_are_never_retried() {
    let fake = AsgFake::start().await;
    let message = "New SetDesiredCapacity value 3 is above max value 2 for the AutoScalingGroup.";
    fake.script(
        "SetDesiredCapacity",
        [Reply::error(400, "ValidationError", message)],
    );
    let err = fake_asg(&fake).await.scale_to(3, &[]).await.unwrap_err();
    assert_eq!(err.label(), "validation");
    assert!(err.to_string().contains(message), "{err}");
    assert_eq!(fake.requests("SetDesiredCapacity").len(), 1);
}

#[tokio::test]
async fn retries_stop_after_the_budget_with_the_last_error() {
    let fake = AsgFake::start().await;
    fake.script(
        "SetDesiredCapacity",
        vec![Reply::error(400, "Throttling", "Rate exceeded"); 10],
    );
    let err = fake_asg(&fake).await.scale_to(4, &[]).await.unwrap_err();
    assert_eq!(err.label(), "throttled");
    assert_eq!(
        fake.requests("SetDesiredCapacity").len(),
        1 + FAST_RETRY.max_retries
    );
}

#[tokio::test]
async fn access_denied_names_the_missing_iam_action() {
    let fake = AsgFake::start().await;
    fake.script(
        "TerminateInstanceInAutoScalingGroup",
        [Reply::error(
            403,
            "AccessDenied",
            "User is not authorized to perform: autoscaling:TerminateInstanceInAutoScalingGroup",
        )],
    );
    let err = fake_asg(&fake)
        .await
        .scale_to(1, &[Member::new("i-0aaa0000000000001")])
        .await
        .unwrap_err();
    match err {
        ActuatorError::Forbidden { verb, resource, .. } => {
            assert_eq!(verb, "autoscaling:TerminateInstanceInAutoScalingGroup");
            assert_eq!(resource, "autoScalingGroupName/spark-workers");
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
    assert_eq!(
        fake.requests("TerminateInstanceInAutoScalingGroup").len(),
        1
    );
}

#[tokio::test]
async fn an_unknown_group_is_not_found() {
    let fake = AsgFake::start().await;
    fake.script(
        "DescribeAutoScalingGroups",
        [Reply::fixture(200, "describe_none.xml")],
    );
    assert_eq!(
        fake_asg(&fake).await.status().await.unwrap_err().label(),
        "not_found"
    );
}

/// An ASG endpoint that answers with recorded AWS XML (tests/fixtures/aws/) and, per action,
/// first plays any scripted replies (errors moto never produces). Records every request body.
mod asg_fake {
    use std::collections::{HashMap, VecDeque};
    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::{IntoResponse, Response};

    #[derive(Debug, Clone)]
    pub struct Reply {
        status: u16,
        body: String,
    }

    impl Reply {
        /// A query-protocol `ErrorResponse`.
        pub fn error(status: u16, code: &str, message: &str) -> Reply {
            let body = fixture("error.xml")
                .replace("{code}", code)
                .replace("{message}", message);
            Reply { status, body }
        }

        /// An EC2 error (`<Response><Errors>…`, not the Auto Scaling `ErrorResponse`).
        pub fn ec2_error(status: u16, code: &str, message: &str) -> Reply {
            let body = fixture("ec2_error.xml")
                .replace("{code}", code)
                .replace("{message}", message);
            Reply { status, body }
        }

        pub fn fixture(status: u16, name: &str) -> Reply {
            Reply {
                status,
                body: fixture(name),
            }
        }
    }

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/aws/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[derive(Clone, Default)]
    struct Shared {
        script: Arc<Mutex<HashMap<String, VecDeque<Reply>>>>,
        log: Arc<Mutex<Vec<(String, String)>>>,
    }

    pub struct AsgFake {
        url: String,
        shared: Shared,
    }

    impl AsgFake {
        pub async fn start() -> AsgFake {
            let shared = Shared::default();
            let app = axum::Router::new()
                .fallback(handle)
                .with_state(shared.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            AsgFake { url, shared }
        }

        pub fn url(&self) -> String {
            self.url.clone()
        }

        /// The next calls of `action` get these replies, in order; then the recorded success.
        pub fn script(&self, action: &str, replies: impl IntoIterator<Item = Reply>) {
            self.shared
                .script
                .lock()
                .unwrap()
                .entry(action.to_owned())
                .or_default()
                .extend(replies);
        }

        pub fn actions(&self) -> Vec<String> {
            self.shared
                .log
                .lock()
                .unwrap()
                .iter()
                .map(|(a, _)| a.clone())
                .collect()
        }

        /// Raw form bodies of every `action` request.
        pub fn requests(&self, action: &str) -> Vec<String> {
            self.shared
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|(a, _)| a == action)
                .map(|(_, b)| b.clone())
                .collect()
        }
    }

    async fn handle(State(shared): State<Shared>, headers: HeaderMap, body: String) -> Response {
        if !headers.contains_key(header::AUTHORIZATION) {
            let reply = Reply::error(
                400,
                "MissingAuthenticationToken",
                "Request is missing Authentication Token",
            );
            return (StatusCode::BAD_REQUEST, reply.body).into_response();
        }
        let action = body
            .split('&')
            .find_map(|kv| kv.strip_prefix("Action="))
            .unwrap_or_default()
            .to_owned();
        shared.log.lock().unwrap().push((action.clone(), body));
        let scripted = shared
            .script
            .lock()
            .unwrap()
            .get_mut(&action)
            .and_then(VecDeque::pop_front);
        let reply = scripted.unwrap_or_else(|| match action.as_str() {
            "DescribeAutoScalingGroups" => Reply::fixture(200, "describe_group.xml"),
            "SetDesiredCapacity" => Reply::fixture(200, "set_desired_capacity.xml"),
            "TerminateInstanceInAutoScalingGroup" => Reply::fixture(200, "terminate_instance.xml"),
            "DescribeInstances" => Reply::fixture(200, "describe_instances.xml"),
            other => Reply::error(400, "InvalidAction", &format!("unknown action {other}")),
        });
        let status = StatusCode::from_u16(reply.status).unwrap();
        (status, [(header::CONTENT_TYPE, "text/xml")], reply.body).into_response()
    }
}
