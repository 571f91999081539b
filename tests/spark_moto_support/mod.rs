//! A small Spark-on-EC2 world for tests/daemon_spark_moto.rs: a real Spark master of the test's
//! own, a moto Auto Scaling group whose instances get loopback private IPs (VPC 127.0.0.0/16,
//! all of 127.0.0.0/8 is local on Linux), and an "instance agent" that plays EC2 user-data: each
//! InService instance boots a real Spark worker bound to its private IP, and a terminated
//! instance's worker dies with it. Every process started here is killed on drop, by its handle.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_autoscaling::config::{BehaviorVersion, Credentials, Region};
use poolpilot::time::Timestamp;

/// A child process killed (SIGKILL, like a terminated machine) and reaped on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `spark-class <class> <args>` with `env`, output to `<dir>/<name>.log`.
fn spark_class(
    spark_home: &str,
    dir: &Path,
    name: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Proc {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new(format!("{spark_home}/bin/spark-class"))
        .args(args)
        .envs(env.iter().copied())
        .env("SPARK_LOG_DIR", dir)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("spark-class starts");
    Proc(child)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn master_json(http: &reqwest::Client, web: &str) -> Option<serde_json::Value> {
    http.get(format!("{web}/json/"))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// The test's own master (decommission enabled, as in tests/peers/spark.sh), ready.
pub struct SparkMaster {
    pub web: String,
    pub url: String,
    _proc: Proc,
}

impl SparkMaster {
    pub async fn start(spark_home: &str, dir: &Path) -> SparkMaster {
        let (port, ui) = (free_port(), free_port());
        let (port_s, ui_s) = (port.to_string(), ui.to_string());
        let args = [
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            &port_s,
            "--webui-port",
            &ui_s,
        ];
        let opts =
            "-Dspark.decommission.enabled=true -Dspark.master.ui.decommission.allow.mode=LOCAL";
        let env = [("SPARK_LOCAL_IP", "127.0.0.1"), ("SPARK_MASTER_OPTS", opts)];
        let master = SparkMaster {
            web: format!("http://127.0.0.1:{ui}"),
            url: format!("spark://127.0.0.1:{port}"),
            _proc: spark_class(spark_home, dir, "master", &args, &env),
        };
        let http = reqwest::Client::new();
        for _ in 0..180 {
            if let Some(j) = master_json(&http, &master.web).await
                && j["status"] == "ALIVE"
            {
                return master;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!(
            "spark master not ALIVE within 90s; see {}",
            dir.join("master.log").display()
        );
    }
}

fn aws_creds() -> Credentials {
    Credentials::new("testing", "testing", None, None, "tests")
}

pub fn asg_client(endpoint: &str) -> aws_sdk_autoscaling::Client {
    let config = aws_sdk_autoscaling::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_creds())
        .build();
    aws_sdk_autoscaling::Client::from_conf(config)
}

pub fn ec2_client(endpoint: &str) -> aws_sdk_ec2::Client {
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_creds())
        .build();
    aws_sdk_ec2::Client::from_conf(config)
}

/// A group `name` (min 1, max `max`, desired 1) in a fresh VPC 127.0.0.0/16, subnet
/// 127.0.`octet`.0/24: moto hands out private IPs from the subnet, so they are bindable here.
pub async fn loopback_group(endpoint: &str, name: &str, octet: u8, max: i32) {
    let (asg, ec2) = (asg_client(endpoint), ec2_client(endpoint));
    let vpc = ec2
        .create_vpc()
        .cidr_block("127.0.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block(format!("127.0.{octet}.0/24"))
        .availability_zone("us-east-1a")
        .send()
        .await
        .unwrap();
    let subnet_id = subnet
        .subnet()
        .and_then(|s| s.subnet_id())
        .unwrap()
        .to_owned();
    let _ = ec2
        .delete_launch_template()
        .launch_template_name(name)
        .send()
        .await;
    ec2.create_launch_template()
        .launch_template_name(name)
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id("ami-12c6146b")
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let _ = asg
        .delete_auto_scaling_group()
        .auto_scaling_group_name(name)
        .force_delete(true)
        .send()
        .await;
    asg.create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_template(
            aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                .launch_template_name(name)
                .build(),
        )
        .min_size(1)
        .max_size(max)
        .desired_capacity(1)
        .vpc_zone_identifier(subnet_id)
        .send()
        .await
        .unwrap();
}

/// Best-effort removal of the group and its launch template (moto outlives the test).
pub async fn delete_group(endpoint: &str, name: &str) {
    let _ = asg_client(endpoint)
        .delete_auto_scaling_group()
        .auto_scaling_group_name(name)
        .force_delete(true)
        .send()
        .await;
    let _ = ec2_client(endpoint)
        .delete_launch_template()
        .launch_template_name(name)
        .send()
        .await;
}

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
    let in_service: Vec<String> = group
        .instances()
        .iter()
        .filter(|i| i.lifecycle_state().map(|s| s.as_str()) == Some("InService"))
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect();
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

/// The master's state of the (not DEAD) worker on `host`; `none` when it lists none.
async fn worker_state(http: &reqwest::Client, web: &str, host: &str) -> String {
    let json = master_json(http, web).await.unwrap_or_default();
    json["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["host"] == host && w["state"] != "DEAD")
        .find_map(|w| w["state"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "none".to_owned())
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

/// `spark-submit` of the sleepy app (`name`, `secs` per task, one task) on `master_url`: a
/// 1-core, 512 MiB executor, client-mode driver. Output to `<dir>/<name>.log`.
pub fn submit_sleepy(
    submit: &str,
    app: &str,
    python: &str,
    master_url: &str,
    dir: &Path,
    name: &str,
    secs: u32,
) -> tokio::process::Child {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    tokio::process::Command::new(submit)
        .args(["--master", master_url])
        .args([
            "--conf",
            "spark.cores.max=1",
            "--conf",
            "spark.executor.cores=1",
        ])
        .args([
            "--conf",
            "spark.executor.memory=512m",
            "--conf",
            "spark.driver.memory=512m",
        ])
        .args([app, name, &secs.to_string(), "1"])
        .env("PYSPARK_PYTHON", python)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("spark-submit starts")
}
