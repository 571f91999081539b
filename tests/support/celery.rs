//! Real Celery workers and tasks for the Celery tests (tests/peers/celery.sh installs Celery 5;
//! tests/peers/redis.sh and rabbitmq.sh start the brokers): start `celery worker` processes
//! named `celery@<name>`, enqueue tasks of tests/peers/celery_app.py, and read the ledger the
//! tasks write (`start <tag> <node>` / `done <tag> <node>`).

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What the Celery tests need from the peers; `None` when the peers did not start and
/// `POOLPILOT_SKIP_PEERS=1` (with `CI=true` a missing peer fails in [`super::peer`]).
#[derive(Debug, Clone)]
pub struct CeleryPeers {
    pub python: String,
    pub app_dir: String,
    /// `redis://127.0.0.1:16389` (no db: tests pick one each so runs never share queues).
    pub redis: String,
    /// `amqp://user:pw@127.0.0.1:15682//` for the workers (Celery takes the password inline).
    pub amqp: String,
    pub management: String,
    pub rabbit_user: String,
    pub rabbit_password: String,
}

impl CeleryPeers {
    pub fn get() -> Option<CeleryPeers> {
        let vars = [
            "CELERY_PYTHON",
            "CELERY_APP_DIR",
            "CELERY_REDIS_URL",
            "CELERY_AMQP_URL",
            "RABBITMQ_MGMT_URL",
            "RABBITMQ_USER",
            "RABBITMQ_PASSWORD",
        ]
        .map(super::peer);
        let [
            Some(python),
            Some(app_dir),
            Some(redis),
            Some(amqp),
            Some(management),
            Some(rabbit_user),
            Some(rabbit_password),
        ] = vars
        else {
            return None;
        };
        Some(CeleryPeers {
            python,
            app_dir,
            redis,
            amqp,
            management,
            rabbit_user,
            rabbit_password,
        })
    }

    /// The AMQP URL as poolpilot takes it: the user only (the password is a SecretRef).
    pub fn amqp_without_password(&self) -> String {
        let mut url = reqwest::Url::parse(&self.amqp).unwrap();
        url.set_password(None).unwrap();
        url.to_string()
    }
}

/// A running `celery worker`, killed (its whole process group) on drop.
pub struct Worker {
    pub node: String,
    child: Child,
}

impl Worker {
    /// `celery worker -n celery@<name> -Q <queues> -c <concurrency>` against `broker`, tasks
    /// writing to `ledger`; output in `<dir>/worker-<name>.log`.
    pub fn start(
        peers: &CeleryPeers,
        broker: &str,
        name: &str,
        queues: &str,
        concurrency: u32,
        ledger: &Path,
        dir: &Path,
    ) -> Worker {
        let log = std::fs::File::create(dir.join(format!("worker-{name}.log"))).unwrap();
        let node = format!("celery@{name}");
        let child = Command::new(&peers.python)
            .args([
                "-m",
                "celery",
                "-A",
                "celery_app",
                "worker",
                "-n",
                &node,
                "-Q",
                queues,
            ])
            .args(["-c", &concurrency.to_string(), "-O", "fair", "-l", "info"])
            .args([
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ])
            .current_dir(&peers.app_dir)
            .env("CELERY_BROKER", broker)
            .env("CELERY_LEDGER", ledger)
            .env("CELERY_QUEUE", queues.split(',').next().unwrap())
            .env("PYTHONUNBUFFERED", "1")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("celery worker starts");
        Worker { node, child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the worker process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the worker's own process group (it leads it: process_group(0)).
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Enqueues `tags` as `pp.sleep(tag, seconds)` on `queue` through `broker` (one Python process).
pub fn enqueue(peers: &CeleryPeers, broker: &str, queue: &str, tags: &[String], seconds: f64) {
    let script = format!(
        "import celery_app\nfor tag in {tags:?}:\n    celery_app.sleep.apply_async((tag, {seconds}), queue={queue:?})\n"
    );
    let status = Command::new(&peers.python)
        .args(["-c", &script])
        .current_dir(&peers.app_dir)
        .env("CELERY_BROKER", broker)
        .env("CELERY_LEDGER", "/dev/null")
        .status()
        .expect("python runs");
    assert!(status.success(), "enqueue {tags:?} on {queue}");
}

/// The ledger: per tag, the nodes it started and finished on.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    pub started: BTreeMap<String, Vec<String>>,
    pub done: BTreeMap<String, Vec<String>>,
}

pub fn read_ledger(path: &Path) -> Ledger {
    let mut ledger = Ledger::default();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for line in text.lines() {
        let mut parts = line.split(' ');
        let (Some(event), Some(tag), Some(node)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let map = match event {
            "start" => &mut ledger.started,
            "done" => &mut ledger.done,
            _ => continue,
        };
        map.entry(tag.to_string())
            .or_default()
            .push(node.to_string());
    }
    ledger
}

pub fn ledger_path(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.ledger"));
    std::fs::write(&path, "").unwrap();
    path
}

/// What a [`CeleryAgent`] saw.
#[derive(Debug, Default, Clone)]
pub struct CeleryAgentLog {
    /// The group's desired capacity, one entry per change.
    pub desired: Vec<i32>,
    /// Instances that booted a worker (node `celery@<instance id>`), in boot order.
    pub booted: Vec<String>,
    /// Instances that left the group; their worker was killed like the machine.
    pub terminated: Vec<String>,
}

impl CeleryAgentLog {
    pub fn desired_now(&self) -> i32 {
        self.desired.last().copied().unwrap_or(-1)
    }
}

/// Plays EC2 user-data for a moto Auto Scaling group: every InService instance runs a real
/// `celery worker -n celery@<instance id>` against the test's broker; a terminated instance's
/// worker is SIGKILLed (a machine going away, no warm shutdown). Stops every worker on drop.
pub struct CeleryAgent {
    pub log: std::sync::Arc<std::sync::Mutex<CeleryAgentLog>>,
    task: tokio::task::JoinHandle<()>,
    workers: std::sync::Arc<std::sync::Mutex<BTreeMap<String, Worker>>>,
}

pub struct AgentSpec {
    pub endpoint: String,
    pub group: String,
    pub peers: CeleryPeers,
    pub broker: String,
    pub queue: String,
    pub concurrency: u32,
    pub ledger: PathBuf,
    pub dir: PathBuf,
}

impl CeleryAgent {
    pub fn start(spec: AgentSpec) -> CeleryAgent {
        use std::sync::{Arc, Mutex};
        let log = Arc::new(Mutex::new(CeleryAgentLog::default()));
        let workers: Arc<Mutex<BTreeMap<String, Worker>>> = Arc::default();
        let (log2, workers2) = (log.clone(), workers.clone());
        let task = tokio::spawn(async move {
            let asg = super::moto::asg_client(&spec.endpoint);
            loop {
                if let Ok(out) = asg
                    .describe_auto_scaling_groups()
                    .auto_scaling_group_names(&spec.group)
                    .send()
                    .await
                    && let Some(group) = out.auto_scaling_groups().first()
                {
                    let desired = group.desired_capacity().unwrap_or(-1);
                    let in_service = super::moto::in_service_ids(group);
                    let mut log = log2.lock().unwrap();
                    if log.desired_now() != desired {
                        log.desired.push(desired);
                    }
                    let mut workers = workers2.lock().unwrap();
                    let gone: Vec<String> = workers
                        .keys()
                        .filter(|id| !in_service.contains(id))
                        .cloned()
                        .collect();
                    for id in gone {
                        workers.remove(&id);
                        log.terminated.push(id);
                    }
                    for id in in_service {
                        if !log.booted.contains(&id) {
                            let w = Worker::start(
                                &spec.peers,
                                &spec.broker,
                                &id,
                                &spec.queue,
                                spec.concurrency,
                                &spec.ledger,
                                &spec.dir,
                            );
                            workers.insert(id.clone(), w);
                            log.booted.push(id);
                        }
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        });
        CeleryAgent { log, task, workers }
    }

    pub fn snapshot(&self) -> CeleryAgentLog {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for CeleryAgent {
    fn drop(&mut self) {
        self.task.abort();
        self.workers.lock().unwrap().clear();
    }
}
