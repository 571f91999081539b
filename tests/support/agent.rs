//! A small Spark-on-EC2 world for tests/daemon_spark_moto.rs: an "instance agent" that plays EC2
//! user-data for a moto Auto Scaling group whose instances get loopback private IPs
//! ([`super::moto::loopback_group`]: VPC 127.0.0.0/16, all of 127.0.0.0/8 is local on Linux):
//! each InService instance boots a real Spark worker bound to its private IP for the test's own
//! [`SparkMaster`], and a terminated instance's worker dies with it. Every process started here
//! is killed on drop, by its handle.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poolpilot::time::Timestamp;

use super::free_port;
use super::moto::{asg_client, ec2_client};
use super::spark::{Proc, SparkMaster, master_json, spark_class, worker_state};

/// What the agent saw, for the test's assertions.
#[derive(Debug, Default, Clone)]
pub struct AgentLog {
    /// The group's desired capacity, one entry per change, with when it was first seen.
    pub desired: Vec<(Timestamp, i32)>,
    /// Instances that booted a worker: (instance id, private IP), in boot order.
    pub booted: Vec<(String, String)>,
    /// Instances that left the group (their worker was killed), with the state the master
    /// showed for their worker just before.
    pub terminated: Vec<(String, String)>,
    /// Every worker state the master showed per host (ALIVE, DECOMMISSIONED, DEAD).
    pub master_states: HashMap<String, BTreeSet<String>>,
}

impl AgentLog {
    pub fn desired_now(&self) -> i32 {
        self.desired.last().map_or(-1, |d| d.1)
    }

    pub fn ip_of(&self, id: &str) -> Option<&str> {
        self.booted
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, ip)| ip.as_str())
    }
}

struct World {
    endpoint: String,
    group: String,
    spark_home: String,
    master_url: String,
    master_web: String,
    dir: PathBuf,
}

/// Plays EC2 for the group's instances every 500 ms until dropped.
pub struct InstanceAgent {
    pub log: Arc<Mutex<AgentLog>>,
    workers: Arc<Mutex<HashMap<String, Proc>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl InstanceAgent {
    pub fn start(
        endpoint: &str,
        group: &str,
        spark_home: &str,
        master: &SparkMaster,
        dir: &Path,
    ) -> InstanceAgent {
        let world = World {
            endpoint: endpoint.to_owned(),
            group: group.to_owned(),
            spark_home: spark_home.to_owned(),
            master_url: master.url.clone(),
            master_web: master.web.clone(),
            dir: dir.to_owned(),
        };
        let log = Arc::new(Mutex::new(AgentLog::default()));
        let workers = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run(world, log.clone(), workers.clone(), stop.clone()));
        InstanceAgent {
            log,
            workers,
            stop,
            task,
        }
    }

    pub fn snapshot(&self) -> AgentLog {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for InstanceAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.abort();
        self.workers.lock().unwrap().clear(); // each Proc kills its worker
    }
}

async fn run(
    world: World,
    log: Arc<Mutex<AgentLog>>,
    workers: Arc<Mutex<HashMap<String, Proc>>>,
    stop: Arc<AtomicBool>,
) {
    let (asg, ec2) = (asg_client(&world.endpoint), ec2_client(&world.endpoint));
    let http = reqwest::Client::new();
    while !stop.load(Ordering::SeqCst) {
        if let Ok(out) = asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&world.group)
            .send()
            .await
            && let Some(group) = out.auto_scaling_groups().first()
        {
            observe_group(&world, &ec2, &http, group, &log, &workers).await;
        }
        if let Some(state) = master_json(&http, &world.master_web).await {
            let mut log = log.lock().unwrap();
            for w in state["workers"].as_array().into_iter().flatten() {
                if let (Some(host), Some(s)) = (w["host"].as_str(), w["state"].as_str()) {
                    log.master_states
                        .entry(host.to_owned())
                        .or_default()
                        .insert(s.to_owned());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn observe_group(
    world: &World,
    ec2: &aws_sdk_ec2::Client,
    http: &reqwest::Client,
    group: &aws_sdk_autoscaling::types::AutoScalingGroup,
    log: &Arc<Mutex<AgentLog>>,
    workers: &Arc<Mutex<HashMap<String, Proc>>>,
) {
    let desired = group.desired_capacity().unwrap_or(-1);
    let in_service = super::moto::in_service_ids(group);
    {
        let mut log = log.lock().unwrap();
        if log.desired_now() != desired {
            log.desired.push((Timestamp::now(), desired));
        }
    }
    // Terminated: the machine (and its worker) is gone.
    let gone: Vec<String> = workers
        .lock()
        .unwrap()
        .keys()
        .filter(|id| !in_service.contains(id))
        .cloned()
        .collect();
    for id in gone {
        let ip = log
            .lock()
            .unwrap()
            .ip_of(&id)
            .unwrap_or_default()
            .to_owned();
        let state = worker_state(http, &world.master_web, &ip).await;
        workers.lock().unwrap().remove(&id);
        log.lock().unwrap().terminated.push((id, state));
    }
    let seen: Vec<String> = {
        let log = log.lock().unwrap();
        log.booted.iter().map(|(id, _)| id.clone()).collect()
    };
    let new: Vec<String> = in_service
        .into_iter()
        .filter(|id| !seen.contains(id))
        .collect();
    if new.is_empty() {
        return;
    }
    let Ok(described) = ec2
        .describe_instances()
        .set_instance_ids(Some(new))
        .send()
        .await
    else {
        return;
    };
    for instance in described.reservations().iter().flat_map(|r| r.instances()) {
        let (Some(id), Some(ip)) = (instance.instance_id(), instance.private_ip_address()) else {
            continue;
        };
        let worker = boot_worker(world, id, ip);
        workers.lock().unwrap().insert(id.to_owned(), worker);
        log.lock()
            .unwrap()
            .booted
            .push((id.to_owned(), ip.to_owned()));
    }
}

/// The instance's user-data: a 1-core Spark worker on its private IP.
fn boot_worker(world: &World, id: &str, ip: &str) -> Proc {
    let work_dir = world.dir.join(format!("work-{id}"));
    std::fs::create_dir_all(&work_dir).unwrap();
    let ui = free_port().to_string();
    let args = [
        "org.apache.spark.deploy.worker.Worker",
        "--host",
        ip,
        "--cores",
        "1",
        "--memory",
        "1g",
        "--webui-port",
        &ui,
        &world.master_url,
    ];
    let work = work_dir.to_string_lossy().into_owned();
    let env = [
        ("SPARK_LOCAL_IP", ip),
        ("SPARK_WORKER_DIR", work.as_str()),
        ("SPARK_WORKER_OPTS", "-Dspark.decommission.enabled=true"),
    ];
    spark_class(
        &world.spark_home,
        &world.dir,
        &format!("worker-{id}"),
        &args,
        &env,
    )
}
