//! Celery workers.
//!
//! - [`BrokerDrainer`] (pools with a `celery:` signal, Superset's or Airflow's workers): the drain
//!   done right, through the broker's remote control. Idle first (fewest tasks held, from
//!   `inspect active` + `reserved`); on the victim only, `cancel_consumer` for each of the
//!   pool's queues, so it takes no new task; drained once its `active` and `reserved` are
//!   empty; a victim that stays (abandoned, kept after a timeout) gets `add_consumer` back.
//! - [`CeleryDrainer`] (Airflow pools read through the Airflow API or DB, broker unknown):
//!   idle first only, described below.
//!
//! Member ↔ worker: a Celery node is `name@host` (Celery's default `celery@<hostname>`; the
//! Helm charts run one worker per pod, so `host` is the pod name, or an EC2 instance's
//! hostname); the node whose host part is the member's id, starts with `<id>.`, is the
//! member's address, or is the EC2 IP-based name of that address is the member's worker
//! (the same matching as for Airflow's task-instance hostnames).
//!
//! [`CeleryDrainer`], Airflow Celery workers without a known broker: with no broker to send
//! `cancel_consumer` through, the drain is the choice itself:
//! workers running no task instance go first; a busy victim is left alone until it is idle or
//! the drain timeout passes (then the policy's `on_timeout` decides); meanwhile the victim may
//! still take new tasks. Nothing is one-way, so a drain is abandonable until the worker is
//! removed. Busy-ness comes from the running task
//! instances' `hostname` (Airflow REST, or the metadata DB for `airflow_db` pools), matched
//! against the member's id (pod name) or address.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::{DrainError, Drainer, names_member};
use crate::actuators::Member;
use crate::policy::{AirflowDbSignal, AirflowSignal};
use crate::sources::SourceError;
use crate::sources::airflow::AirflowSource;
use crate::sources::airflow_db::AirflowDbSource;
use crate::sources::celery::{Command, Reply, node_host, tasks_per_node};
use crate::sources::celery_broker::Broker;

/// Running task instances per worker hostname.
#[async_trait]
pub trait RunningTasks: Send + Sync {
    async fn running_by_host(&self) -> Result<HashMap<String, u32>, DrainError>;
}

/// `GET <api>/api/v{1,2}/dags/~/dagRuns/~/taskInstances?state=running`, page by page.
///
/// Built on the signal's [`AirflowSource`], so the drain authenticates exactly like the demand
/// signal: on Airflow 3 a JWT from `POST /auth/token` (cached, renewed on expiry or 401), on
/// Airflow 2 the policy's Basic or bearer credentials.
pub struct AirflowRunningTasks {
    source: AirflowSource,
    page_size: u32,
}

#[derive(Deserialize)]
struct TaskInstances {
    task_instances: Vec<TaskInstance>,
    total_entries: u64,
}

#[derive(Deserialize)]
struct TaskInstance {
    #[serde(default)]
    hostname: Option<String>,
}

impl AirflowRunningTasks {
    /// `page_size` task instances per request. Airflow caps a page at `[api]
    /// maximum_page_limit` (100 by default) whatever is asked, so every page is read: a busy
    /// worker missing from a truncated listing would look idle.
    pub fn new(spec: &AirflowSignal, page_size: u32) -> AirflowRunningTasks {
        AirflowRunningTasks {
            source: AirflowSource::new(spec),
            page_size: page_size.max(1),
        }
    }

    async fn page(&self, offset: u64) -> Result<TaskInstances, SourceError> {
        let (limit, offset) = (self.page_size.to_string(), offset.to_string());
        let url = self.source.url(
            &["dags", "~", "dagRuns", "~", "taskInstances"],
            &[
                ("state", "running"),
                ("limit", limit.as_str()),
                ("offset", offset.as_str()),
            ],
        )?;
        let body = self.source.get(&url).await?;
        serde_json::from_slice(&body).map_err(|e| SourceError::Malformed {
            target: url.to_string(),
            detail: e.to_string(),
        })
    }
}

/// Credentials problems say what to configure; anything else may pass and is polled again.
fn drain_error(error: SourceError) -> DrainError {
    match error {
        SourceError::Auth { .. } => DrainError::Forbidden {
            message: error.to_string(),
        },
        other => DrainError::Unreachable {
            message: other.to_string(),
        },
    }
}

#[async_trait]
impl RunningTasks for AirflowRunningTasks {
    async fn running_by_host(&self) -> Result<HashMap<String, u32>, DrainError> {
        let mut by_host = HashMap::new();
        let mut seen = 0u64;
        loop {
            let page = self.page(seen).await.map_err(drain_error)?;
            let count = page.task_instances.len() as u64;
            for hostname in page
                .task_instances
                .into_iter()
                .filter_map(|t| t.hostname)
                .filter(|h| !h.is_empty())
            {
                *by_host.entry(hostname).or_insert(0) += 1;
            }
            seen += count;
            if count == 0 || seen >= page.total_entries {
                return Ok(by_host);
            }
        }
    }
}

/// The same, from the Airflow metadata DB (`task_instance.hostname` of running rows), for
/// pools sized by an `airflow_db` signal.
pub struct AirflowDbRunningTasks {
    source: AirflowDbSource,
}

impl AirflowDbRunningTasks {
    pub fn new(spec: &AirflowDbSignal) -> AirflowDbRunningTasks {
        AirflowDbRunningTasks {
            source: AirflowDbSource::new(spec, 1.0),
        }
    }
}

#[async_trait]
impl RunningTasks for AirflowDbRunningTasks {
    async fn running_by_host(&self) -> Result<HashMap<String, u32>, DrainError> {
        let rows = self.source.running_by_host().await.map_err(drain_error)?;
        Ok(rows
            .into_iter()
            .map(|(host, n)| (host, u32::try_from(n).unwrap_or(u32::MAX)))
            .collect())
    }
}

pub struct CeleryDrainer<R> {
    tasks: R,
}

impl<R: RunningTasks> CeleryDrainer<R> {
    pub fn new(tasks: R) -> CeleryDrainer<R> {
        CeleryDrainer { tasks }
    }
}

/// Tasks running on `member`: its hostname is the pod name or instance id, an FQDN starting with
/// it, the member's address, or the EC2 IP-based name of that address (`ip-10-0-3-7.ec2.internal`,
/// what `socket.getfqdn()` gives on an instance by default).
fn running_on(member: &Member, by_host: &HashMap<String, u32>) -> u32 {
    by_host
        .iter()
        .filter(|(host, _)| names_member(host, member))
        .map(|(_, n)| n)
        .sum()
}

/// The drain through the broker's remote control (module docs).
pub struct BrokerDrainer {
    broker: Result<Arc<dyn Broker>, String>,
    queues: Vec<String>,
    window: Duration,
    /// Victims whose consumers were cancelled: member id → node name.
    cancelled: Mutex<HashMap<String, String>>,
}

impl BrokerDrainer {
    pub fn new(
        broker: Result<Arc<dyn Broker>, String>,
        queues: Vec<String>,
        window: Duration,
    ) -> BrokerDrainer {
        BrokerDrainer {
            broker,
            queues,
            window,
            cancelled: Mutex::new(HashMap::new()),
        }
    }

    fn broker(&self) -> Result<&Arc<dyn Broker>, DrainError> {
        self.broker
            .as_ref()
            .map_err(|e| DrainError::Rejected { message: e.clone() })
    }

    /// Tasks held (active + reserved) per node that answered; `destination` narrows the ask.
    async fn held(
        &self,
        destination: Option<Vec<String>>,
    ) -> Result<HashMap<String, u64>, DrainError> {
        let cmds = ["active", "reserved"].map(|method| Command {
            destination: destination.clone(),
            ..Command::new(method)
        });
        let replies = self
            .broker()?
            .control(&cmds, self.window)
            .await
            .map_err(drain_error)?;
        let mut held = HashMap::new();
        for per_cmd in &replies {
            let counts = tasks_per_node(per_cmd).map_err(|e| DrainError::Unreachable {
                message: e.to_string(),
            })?;
            for (node, n) in counts {
                *held.entry(node).or_insert(0) += n;
            }
        }
        Ok(held)
    }

    /// Sends `method` (`cancel_consumer`/`add_consumer`) for every pool queue to `node` only,
    /// and checks each answer (`{"ok": …}`; `{"error": …}` is a refusal).
    async fn consumers(&self, method: &'static str, node: &str) -> Result<(), DrainError> {
        let cmds: Vec<Command> = self
            .queues
            .iter()
            .map(|queue| Command {
                method,
                arguments: serde_json::json!({ "queue": queue }),
                destination: Some(vec![node.to_string()]),
            })
            .collect();
        let replies = self
            .broker()?
            .control(&cmds, self.window)
            .await
            .map_err(drain_error)?;
        for (queue, answers) in self.queues.iter().zip(&replies) {
            check_consumer_answer(method, node, queue, answers)?;
        }
        Ok(())
    }
}

/// One node's answer to `cancel_consumer`/`add_consumer` for `queue`.
fn check_consumer_answer(
    method: &str,
    node: &str,
    queue: &str,
    answers: &[Reply],
) -> Result<(), DrainError> {
    match answers.iter().find(|(n, _)| n == node) {
        None => Err(DrainError::Unreachable {
            message: format!("{node} did not answer {method} {queue}"),
        }),
        Some((_, answer)) if answer.get("ok").is_some() => Ok(()),
        Some((_, answer)) => Err(DrainError::Rejected {
            message: format!("{node} refused {method} {queue}: {answer}"),
        }),
    }
}

/// The node among `nodes` that is `member`'s worker.
fn node_of<'a>(member: &Member, nodes: impl IntoIterator<Item = &'a String>) -> Option<String> {
    nodes
        .into_iter()
        .find(|node| names_member(node_host(node), member))
        .cloned()
}

#[async_trait]
impl Drainer for BrokerDrainer {
    fn method(&self) -> &'static str {
        "celery"
    }

    fn one_way(&self) -> bool {
        false
    }

    /// Not ready first, then fewest tasks held (idle first).
    async fn rank(&self, mut members: Vec<Member>) -> Result<Vec<Member>, DrainError> {
        let held = self.held(None).await?;
        let of = |m: &Member| -> u64 {
            held.iter()
                .filter(|(node, _)| names_member(node_host(node), m))
                .map(|(_, n)| n)
                .sum()
        };
        members.sort_by_key(|m| (m.ready, of(m)));
        Ok(members)
    }

    /// Stops the victim's consumers; a member with no worker online has nothing to stop.
    async fn begin(&self, member: &Member) -> Result<(), DrainError> {
        let held = self.held(None).await?;
        if let Some(node) = node_of(member, held.keys()) {
            // Recorded first: a cancel that reached some queues and then failed is still
            // undone by `restore` (`add_consumer` on a consumed queue is harmless).
            self.cancelled
                .lock()
                .unwrap()
                .insert(member.id.clone(), node.clone());
            self.consumers("cancel_consumer", &node).await?;
        }
        Ok(())
    }

    /// Drained when the victim's worker holds no task. Its worker not answering is transient
    /// (asked again until the drain timeout); a member that never had a worker online (it
    /// cannot hold a task of this broker) is drained — known only when every worker online
    /// answered (the broker errs otherwise), so a silent busy worker is never taken for one.
    async fn is_drained(&self, member: &Member) -> Result<bool, DrainError> {
        let known = self.cancelled.lock().unwrap().get(&member.id).cloned();
        match known {
            Some(node) => {
                let held = self.held(Some(vec![node.clone()])).await?;
                match held.get(&node) {
                    Some(n) => Ok(*n == 0),
                    None => Err(DrainError::Unreachable {
                        message: format!("{node} did not answer inspect active/reserved"),
                    }),
                }
            }
            None => {
                let held = self.held(None).await?;
                match node_of(member, held.keys()) {
                    None => Ok(true),
                    // Came online since `begin`: stop it now, wait for it next time.
                    Some(node) => {
                        self.cancelled
                            .lock()
                            .unwrap()
                            .insert(member.id.clone(), node.clone());
                        self.consumers("cancel_consumer", &node).await?;
                        Ok(false)
                    }
                }
            }
        }
    }

    /// Gives a victim that stays its consumers back (`add_consumer`).
    async fn restore(&self, member: &Member) -> Result<(), DrainError> {
        let node = self.cancelled.lock().unwrap().remove(&member.id);
        match node {
            Some(node) => self.consumers("add_consumer", &node).await,
            None => Ok(()),
        }
    }
}

#[async_trait]
impl<R: RunningTasks> Drainer for CeleryDrainer<R> {
    fn method(&self) -> &'static str {
        "celery"
    }

    fn one_way(&self) -> bool {
        false
    }

    /// Not ready first, then fewest running tasks (idle first).
    async fn rank(&self, mut members: Vec<Member>) -> Result<Vec<Member>, DrainError> {
        let by_host = self.tasks.running_by_host().await?;
        members.sort_by_key(|m| (m.ready, running_on(m, &by_host)));
        Ok(members)
    }

    async fn begin(&self, _member: &Member) -> Result<(), DrainError> {
        Ok(())
    }

    async fn is_drained(&self, member: &Member) -> Result<bool, DrainError> {
        Ok(running_on(member, &self.tasks.running_by_host().await?) == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_match_pod_names_fqdns_and_addresses() {
        let by_host: HashMap<String, u32> = [
            ("worker-0".to_owned(), 2),
            ("worker-1.workers.airflow.svc.cluster.local".to_owned(), 1),
            ("10.0.0.7".to_owned(), 3),
            ("worker-10".to_owned(), 5),
        ]
        .into();
        assert_eq!(running_on(&Member::new("worker-0"), &by_host), 2);
        assert_eq!(
            running_on(&Member::new("worker-1"), &by_host),
            1,
            "FQDN prefix"
        );
        assert_eq!(
            running_on(&Member::new("worker-2").with_address("10.0.0.7"), &by_host),
            3
        );
        assert_eq!(running_on(&Member::new("worker-3"), &by_host), 0);
    }

    #[test]
    fn ec2_hostnames_match_instance_members() {
        let by_host: HashMap<String, u32> = [
            ("ip-10-0-3-7.ec2.internal".to_owned(), 2),
            ("i-0abc.us-west-2.compute.internal".to_owned(), 1),
            ("ip-10-0-3-70.ec2.internal".to_owned(), 4),
        ]
        .into();
        let by_ip = Member::new("i-0def").with_address("10.0.3.7");
        assert_eq!(running_on(&by_ip, &by_host), 2, "IP-based name");
        assert_eq!(
            running_on(&Member::new("i-0abc"), &by_host),
            1,
            "resource-based name"
        );
    }

    #[test]
    fn only_credential_problems_are_reported_as_forbidden() {
        let auth = SourceError::Auth {
            target: "http://airflow/auth/token".into(),
            detail: "HTTP 401".into(),
        };
        assert_eq!(drain_error(auth).label(), "forbidden");
        let down = SourceError::HttpStatus {
            target: "http://airflow".into(),
            status: 503,
            body_excerpt: String::new(),
        };
        assert!(drain_error(down).is_transient());
    }
}

#[cfg(test)]
mod broker_tests {
    use super::*;
    use crate::sources::SourceError;
    use serde_json::{Value, json};

    /// A broker whose workers hold scripted task counts; records every command sent.
    #[derive(Default)]
    struct FakeBroker {
        /// node → (tasks held, consuming)
        nodes: Mutex<HashMap<String, (u64, bool)>>,
        sent: Mutex<Vec<(String, Option<Vec<String>>)>>,
    }

    impl FakeBroker {
        fn with(nodes: &[(&str, u64)]) -> Arc<FakeBroker> {
            let b = FakeBroker::default();
            *b.nodes.lock().unwrap() = nodes
                .iter()
                .map(|(n, t)| (n.to_string(), (*t, true)))
                .collect();
            Arc::new(b)
        }
        fn set_held(&self, node: &str, n: u64) {
            self.nodes.lock().unwrap().get_mut(node).unwrap().0 = n;
        }
        fn consuming(&self, node: &str) -> bool {
            self.nodes.lock().unwrap()[node].1
        }
        fn sent(&self) -> Vec<(String, Option<Vec<String>>)> {
            self.sent.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl Broker for FakeBroker {
        async fn waiting(&self, queues: &[String]) -> Result<Vec<u64>, SourceError> {
            Ok(vec![0; queues.len()])
        }
        async fn control(
            &self,
            commands: &[Command],
            _window: Duration,
        ) -> Result<Vec<Vec<Reply>>, SourceError> {
            let mut out = Vec::new();
            for cmd in commands {
                self.sent
                    .lock()
                    .unwrap()
                    .push((cmd.method.to_string(), cmd.destination.clone()));
                let mut nodes = self.nodes.lock().unwrap();
                let mut replies = Vec::new();
                for (node, (held, consuming)) in nodes.iter_mut() {
                    if cmd.destination.as_ref().is_some_and(|d| !d.contains(node)) {
                        continue;
                    }
                    let answer: Value = match cmd.method {
                        // Split held tasks: all "active", none "reserved".
                        "active" => json!(vec![json!({}); *held as usize]),
                        "reserved" => json!([]),
                        "cancel_consumer" => {
                            *consuming = false;
                            json!({"ok": "no longer consuming"})
                        }
                        "add_consumer" => {
                            *consuming = true;
                            json!({"ok": "add consumer"})
                        }
                        other => panic!("unexpected {other}"),
                    };
                    replies.push((node.clone(), answer));
                }
                out.push(replies);
            }
            Ok(out)
        }
        fn target(&self) -> &str {
            "fake"
        }
    }

    fn drainer(broker: &Arc<FakeBroker>) -> BrokerDrainer {
        let b: Arc<dyn Broker> = broker.clone();
        BrokerDrainer::new(Ok(b), vec!["superset".into()], Duration::from_millis(10))
    }

    #[tokio::test]
    async fn idle_first_and_only_the_victim_stops_consuming() {
        let broker = FakeBroker::with(&[("celery@w0", 2), ("celery@w1", 0), ("celery@w2", 1)]);
        let d = drainer(&broker);
        let ranked = d
            .rank(vec![
                Member::new("w0"),
                Member::new("w1"),
                Member::new("w2"),
            ])
            .await
            .unwrap();
        let ids: Vec<&str> = ranked.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["w1", "w2", "w0"]);

        let busy = Member::new("w2");
        d.begin(&busy).await.unwrap();
        assert!(!broker.consuming("celery@w2"));
        assert!(broker.consuming("celery@w0") && broker.consuming("celery@w1"));
        let cancel: Vec<_> = broker
            .sent()
            .into_iter()
            .filter(|(m, _)| m == "cancel_consumer")
            .collect();
        assert_eq!(
            cancel,
            [(
                "cancel_consumer".to_string(),
                Some(vec!["celery@w2".to_string()])
            )]
        );
        assert!(!d.is_drained(&busy).await.unwrap(), "still running a task");
        broker.set_held("celery@w2", 0);
        assert!(d.is_drained(&busy).await.unwrap());
    }

    #[tokio::test]
    async fn a_victim_that_stays_consumes_again() {
        let broker = FakeBroker::with(&[("celery@w0", 1)]);
        let d = drainer(&broker);
        let m = Member::new("w0");
        d.begin(&m).await.unwrap();
        assert!(!broker.consuming("celery@w0"));
        d.restore(&m).await.unwrap();
        assert!(broker.consuming("celery@w0"));
        let last = broker.sent().last().cloned().unwrap();
        assert_eq!(
            last,
            (
                "add_consumer".to_string(),
                Some(vec!["celery@w0".to_string()])
            )
        );
        // Nothing to undo twice.
        d.restore(&m).await.unwrap();
        assert_eq!(broker.sent().len(), 4);
    }

    #[tokio::test]
    async fn a_member_without_a_worker_online_is_drained_and_a_silent_victim_is_not() {
        let broker = FakeBroker::with(&[("celery@w0", 1)]);
        let d = drainer(&broker);
        let ghost = Member::new("w9");
        d.begin(&ghost).await.unwrap();
        assert!(d.is_drained(&ghost).await.unwrap());
        let m = Member::new("w0");
        d.begin(&m).await.unwrap();
        broker.nodes.lock().unwrap().clear(); // its worker stops answering
        let err = d.is_drained(&m).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
    }

    #[test]
    fn consumer_answers_are_checked() {
        let ok = vec![("celery@a".to_string(), json!({"ok": "x"}))];
        assert!(check_consumer_answer("cancel_consumer", "celery@a", "q", &ok).is_ok());
        let refused = vec![("celery@a".to_string(), json!({"error": "nope"}))];
        assert_eq!(
            check_consumer_answer("cancel_consumer", "celery@a", "q", &refused)
                .unwrap_err()
                .label(),
            "rejected"
        );
        assert!(
            check_consumer_answer("cancel_consumer", "celery@b", "q", &ok)
                .unwrap_err()
                .is_transient()
        );
        let nodes = [
            "celery@w1.pods.svc".to_string(),
            "celery@ip-10-0-0-7".to_string(),
        ];
        assert_eq!(
            node_of(&Member::new("w1"), &nodes).as_deref(),
            Some("celery@w1.pods.svc")
        );
        assert_eq!(
            node_of(&Member::new("i-1").with_address("10.0.0.7"), &nodes).as_deref(),
            Some("celery@ip-10-0-0-7")
        );
    }
}
