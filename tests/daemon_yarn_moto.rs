//! End to end: the built `poolpilot run` binary sizes a YARN NodeManager pool on a moto Auto
//! Scaling group (tests/peers/moto.sh) from the ResourceManager fixture
//! (tests/support/yarn_fixture.rs; no Hadoop is installable here):
//!
//! 1. pending vcores beyond capacity scale the group up to `max`;
//! 2. when the pending work is gone, the idle NodeManagers are gracefully decommissioned
//!    (exclude file + refresh, DECOMMISSIONING → DECOMMISSIONED) and only then terminated;
//!    the busy NodeManager is never decommissioned and its instance stays;
//! 3. the exclude file is empty again afterwards, and the daemon exits 0 on SIGTERM.
//!
//! A small agent plays EC2 here: each InService instance "boots" a NodeManager registered in
//! the fixture under its private IP (moto hands out loopback IPs, see `loopback_group`), and a
//! terminated instance's NodeManager leaves the RM's list.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::daemon::{Daemon, tick_settings};
use support::moto::{
    AWS_ENV, asg_client, delete_group, desired_capacity, ec2_client, loopback_group,
};
use support::wait_until;
use support::yarn_fixture::YarnRm;

const VCORES: u64 = 4;

fn policy(rm: &YarnRm, group: &str, endpoint: &str) -> String {
    let command: Vec<String> = rm
        .refresh_command()
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect();
    format!(
        "pool: yarn-moto\n\
         signals:\n  - yarn:\n      resource_manager: \"{}\"\n      demand: vcores\n      user: poolpilot\n      \
         decommission: {{ exclude_file: \"{}\", refresh_command: [{}] }}\n      http: {{ timeout: 2s }}\n    per_worker: {VCORES}\n\
         workers:\n  aws_asg: {{ group: {group}, region: us-east-1, endpoint_url: \"{endpoint}\" }}\n\
         bounds: {{ min: 1, max: 3 }}\nboot_time: 2s\n\
         scale_up: {{ stabilization: 0s, cooldown: 0s }}\n\
         scale_down: {{ stabilization: 8s, cooldown: 0s, drain: {{ method: yarn, timeout: 3m, on_timeout: keep }} }}\n\
         on_missing_signal: {{ hold_for: 10m }}\n",
        rm.url,
        rm.exclude_file.display(),
        command.join(", ")
    )
}

/// Plays EC2 for the group: InService instance → NodeManager in the fixture; gone → removed.
/// Returns instance id → private IP of every instance it booted.
fn agent(
    endpoint: String,
    group: String,
    rm_state: Arc<YarnRm>,
) -> (
    Arc<Mutex<BTreeMap<String, String>>>,
    tokio::task::JoinHandle<()>,
) {
    let booted = Arc::new(Mutex::new(BTreeMap::<String, String>::new()));
    let log = booted.clone();
    let task = tokio::spawn(async move {
        let (asg, ec2) = (asg_client(&endpoint), ec2_client(&endpoint));
        let mut live: BTreeMap<String, String> = BTreeMap::new();
        loop {
            if let Ok(out) = asg
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(&group)
                .send()
                .await
                && let Some(g) = out.auto_scaling_groups().first()
            {
                let in_service: Vec<String> = g
                    .instances()
                    .iter()
                    .filter(|i| i.lifecycle_state().map(|s| s.as_str()) == Some("InService"))
                    .filter_map(|i| i.instance_id().map(str::to_owned))
                    .collect();
                for (id, ip) in live.clone() {
                    if !in_service.contains(&id) {
                        rm_state.remove_node(&ip);
                        live.remove(&id);
                    }
                }
                let new: Vec<String> = in_service
                    .into_iter()
                    .filter(|id| !live.contains_key(id))
                    .collect();
                if !new.is_empty()
                    && let Ok(d) = ec2
                        .describe_instances()
                        .set_instance_ids(Some(new))
                        .send()
                        .await
                {
                    for i in d.reservations().iter().flat_map(|r| r.instances()) {
                        if let (Some(id), Some(ip)) = (i.instance_id(), i.private_ip_address()) {
                            rm_state.add_node(ip, VCORES, 0);
                            live.insert(id.to_owned(), ip.to_owned());
                            log.lock().unwrap().insert(id.to_owned(), ip.to_owned());
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    (booted, task)
}

fn running(rm: &YarnRm) -> usize {
    rm.state
        .lock()
        .unwrap()
        .nodes
        .iter()
        .filter(|n| n.state == "RUNNING")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_pool_scales_up_on_pending_vcores_and_decommissions_only_idle_nodemanagers() {
    let Some(endpoint) = support::peer("POOLPILOT_TEST_AWS_ENDPOINT") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    let octet = (10 + (pid + 113) % 240) as u8;
    let group = format!("pp-yarn-moto-{pid}");
    let rm = Arc::new(YarnRm::start(&dir.path().join("yarn.exclude.xml")).await);
    loopback_group(&endpoint, &group, octet, 3).await;
    let (booted, agent_task) = agent(endpoint.clone(), group.clone(), rm.clone());
    assert!(
        wait_until(Duration::from_secs(60), || async { running(&rm) == 1 }).await,
        "the first instance's NodeManager registers"
    );
    let (busy_id, busy_ip) = booted
        .lock()
        .unwrap()
        .iter()
        .next()
        .map(|(a, b)| (a.clone(), b.clone()))
        .unwrap();
    assert!(busy_ip.starts_with(&format!("127.0.{octet}.")), "{busy_ip}");
    // The first NodeManager is full (4 containers = 4 vcores) for the whole test.
    rm.set_containers(&busy_ip, VCORES);

    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("yarn.yaml"), policy(&rm, &group, &endpoint)).unwrap();
    let settings = tick_settings(&policies, &dir.path().join("state/state.json"));
    let mut daemon = Daemon::start_with_env(dir.path(), "daemon", &settings, &[], &AWS_ENV);
    daemon.wait_ready(Duration::from_secs(30)).await;

    // 1. 8 containers pending: demand 4 + 8 = 12 vcores = 3 NodeManagers (max).
    rm.set_pending(8, 2);
    assert!(
        wait_until(Duration::from_secs(60), || async { running(&rm) == 3 }).await,
        "scaled up to 3 NodeManagers; desired {}; log:\n{}",
        desired_capacity(&endpoint, &group).await,
        daemon.log_text()
    );
    assert_eq!(desired_capacity(&endpoint, &group).await, 3);

    // 2. The pending work is gone (say, another cluster took it): demand 4 = 1 NodeManager.
    rm.set_pending(0, 0);
    assert!(
        wait_until(Duration::from_secs(90), || async {
            desired_capacity(&endpoint, &group).await == 1 && running(&rm) == 1
        })
        .await,
        "scaled down to the busy NodeManager; log:\n{}",
        daemon.log_text()
    );
    let idle: Vec<String> = booted
        .lock()
        .unwrap()
        .iter()
        .filter(|(id, _)| **id != busy_id)
        .map(|(_, ip)| ip.clone())
        .collect();
    assert_eq!(idle.len(), 2, "{:?}", booted.lock().unwrap());
    // The group's capacity drops when the daemon's call returns; the instances' NodeManagers
    // leave the RM a moment later (the test's agent stops them): wait for that, not race it.
    assert!(
        wait_until(Duration::from_secs(30), || async {
            idle.iter().all(|ip| rm.node_state(ip).is_none())
        })
        .await,
        "the idle NodeManagers' instances were not terminated; log:\n{}",
        daemon.log_text()
    );
    let transitions = rm.transitions();
    for ip in &idle {
        for state in ["DECOMMISSIONING", "DECOMMISSIONED"] {
            assert!(
                transitions.contains(&(ip.clone(), state.to_string())),
                "{ip} was not {state} before removal: {transitions:?}"
            );
        }
        assert_eq!(rm.node_state(ip), None, "{ip}'s instance is terminated");
    }
    assert!(
        !transitions.iter().any(|(ip, _)| *ip == busy_ip),
        "the busy NodeManager was touched: {transitions:?}"
    );
    assert_eq!(rm.node_state(&busy_ip).as_deref(), Some("RUNNING"));
    assert!(
        poolpilot::drain::yarn::read_excluded(&rm.exclude_file)
            .unwrap()
            .is_empty()
    );
    assert!(rm.users().iter().all(|u| u == "poolpilot"));

    // 3. SIGTERM: exit 0.
    assert!(daemon.stop().await.success());
    agent_task.abort();
    delete_group(&endpoint, &group).await;
}
