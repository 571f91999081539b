//! A pause tag on a moto Auto Scaling group (tests/peers/moto.sh), as the AWS console sets it,
//! holds the built daemon's pool against demand; `/status` names the tag as the source; the
//! tag removed, the group follows its demand again. (The tag's wire shape is checked at the
//! actuator level in tests/actuator_aws.rs.)

mod support;

use std::time::Duration;

use support::daemon::Daemon;
use support::moto::{
    AWS_ENV, GroupShape, delete_group, desired_capacity, tag_group, template_group,
};
use support::spark::FakeSparkMaster;
use support::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asg_tag_holds_the_pool_until_removed() {
    let Some(endpoint) = support::peer("POOLPILOT_TEST_AWS_ENDPOINT") else {
        return;
    };
    let group = format!("pp-pause-moto-{}", std::process::id());
    let shape = GroupShape {
        min: 1,
        max: 4,
        desired: 1,
        subnet: None,
    };
    template_group(&endpoint, &group, shape).await;
    tag_group(&endpoint, &group, "poolpilot.io/paused", Some("true")).await;
    let master = FakeSparkMaster::start().await;
    master.set(|m| m.waiting_apps = 3); // 3 workers of demand
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/pool.yaml"),
        format!(
            "pool: asg-pool\nsignals:\n  - spark: {{ master: \"{}\", cores_per_waiting_app: 2, http: {{ timeout: 1s }} }}\n    per_worker: 2\n\
             workers:\n  aws_asg: {{ group: {group}, region: us-east-1, endpoint_url: \"{endpoint}\" }}\n\
             bounds: {{ min: 1, max: 4 }}\nscale_up: {{ stabilization: 0s, cooldown: 0s }}\n\
             scale_down: {{ drain: {{ method: none }} }}\n",
            master.url
        ),
    )
    .unwrap();
    let settings = format!(
        "tick: 1s\npolicy_dir: {}\nstate_path: {}\n",
        dir.path().join("policies").display(),
        dir.path().join("state.json").display()
    );
    let mut daemon = Daemon::start_with_env(dir.path(), "daemon", &settings, &[], &AWS_ENV);
    daemon.wait_ready(Duration::from_secs(30)).await;

    assert!(
        wait_until(Duration::from_secs(10), || async {
            let pool = &daemon.status().await["pools"][0];
            pool["paused"]["kind"] == "hold" && pool["paused"]["source"] == "asg_tag"
        })
        .await,
        "{}",
        daemon.status().await
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        desired_capacity(&endpoint, &group).await,
        1,
        "held against a demand of 3; log:\n{}",
        daemon.log_text()
    );

    tag_group(&endpoint, &group, "poolpilot.io/paused", None).await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            desired_capacity(&endpoint, &group).await == 3
        })
        .await,
        "log:\n{}",
        daemon.log_text()
    );
    assert!(daemon.status().await["pools"][0]["paused"].is_null());
    assert!(daemon.stop().await.success());
    delete_group(&endpoint, &group).await;
}
