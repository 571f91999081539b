//! Airflow Celery workers: idle first.
//!
//! Celery has no drain call poolpilot can make over HTTP, so the drain is the choice itself:
//! workers running no task instance go first; a busy victim is left alone until it is idle or
//! the drain timeout passes (then the policy's `on_timeout` decides). Nothing is one-way, so a
//! drain is abandonable until the worker is removed. Busy-ness comes from the running task
//! instances' `hostname` (Airflow REST, or the metadata DB for `airflow_db` pools), matched
//! against the member's id (pod name) or address.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::Deserialize;

use super::{DrainError, Drainer};
use crate::actuators::Member;
use crate::policy::{AirflowDbSignal, AirflowSignal};
use crate::sources::SourceError;
use crate::sources::airflow::AirflowSource;
use crate::sources::airflow_db::AirflowDbSource;

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
    let ec2_name = member
        .address
        .as_deref()
        .map(|ip| format!("ip-{}", ip.replace('.', "-")));
    let is_label_of = |host: &str, name: &str| {
        host.strip_prefix(name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    };
    by_host
        .iter()
        .filter(|(host, _)| {
            is_label_of(host, &member.id)
                || member.address.as_deref() == Some(host.as_str())
                || ec2_name
                    .as_deref()
                    .is_some_and(|name| is_label_of(host, name))
        })
        .map(|(_, n)| n)
        .sum()
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
