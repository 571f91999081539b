//! Airflow Celery workers: idle first.
//!
//! Celery has no drain call poolpilot can make over HTTP, so the drain is the choice itself:
//! workers running no task instance go first; a busy victim is left alone until it is idle or
//! the drain timeout passes (then the policy's `on_timeout` decides). Nothing is one-way, so a
//! drain is abandonable until the worker is removed. Busy-ness comes from the running task
//! instances' `hostname` (Airflow REST), matched against the member's id (pod name) or address.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::Deserialize;

use super::{DrainError, Drainer, unreachable};
use crate::actuators::Member;

/// Running task instances per worker hostname.
#[async_trait]
pub trait RunningTasks: Send + Sync {
    async fn running_by_host(&self) -> Result<HashMap<String, u32>, DrainError>;
}

/// How to authenticate to the Airflow API.
#[derive(Debug, Clone)]
pub enum AirflowAuth {
    None,
    Basic {
        username: String,
        password: String,
    },
    /// A bearer token (Airflow 3 JWT).
    Bearer(String),
}

/// `GET <api>/api/v{1,2}/dags/~/dagRuns/~/taskInstances?state=running`.
pub struct AirflowRunningTasks {
    http: reqwest::Client,
    url: String,
    auth: AirflowAuth,
}

#[derive(Deserialize)]
struct TaskInstances {
    task_instances: Vec<TaskInstance>,
}

#[derive(Deserialize)]
struct TaskInstance {
    #[serde(default)]
    hostname: Option<String>,
}

impl AirflowRunningTasks {
    /// `api_version` is 1 (Airflow 2) or 2 (Airflow 3). Asks for up to `limit` running tasks.
    pub fn new(
        http: reqwest::Client,
        api: &str,
        api_version: u8,
        auth: AirflowAuth,
        limit: u32,
    ) -> AirflowRunningTasks {
        let url = format!(
            "{}/api/v{api_version}/dags/~/dagRuns/~/taskInstances?state=running&limit={limit}",
            api.trim_end_matches('/')
        );
        AirflowRunningTasks { http, url, auth }
    }
}

#[async_trait]
impl RunningTasks for AirflowRunningTasks {
    async fn running_by_host(&self) -> Result<HashMap<String, u32>, DrainError> {
        let request = match &self.auth {
            AirflowAuth::None => self.http.get(&self.url),
            AirflowAuth::Basic { username, password } => self
                .http
                .get(&self.url)
                .basic_auth(username, Some(password)),
            AirflowAuth::Bearer(token) => self.http.get(&self.url).bearer_auth(token),
        };
        let response = request
            .send()
            .await
            .map_err(|e| unreachable(&self.url, e))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(DrainError::Forbidden {
                message: format!("{} answered {status}", self.url),
            });
        }
        if !status.is_success() {
            return Err(DrainError::Unreachable {
                message: format!("{} answered {status}", self.url),
            });
        }
        let body: TaskInstances = response
            .json()
            .await
            .map_err(|e| unreachable(&self.url, e))?;
        let mut by_host = HashMap::new();
        for hostname in body
            .task_instances
            .into_iter()
            .filter_map(|t| t.hostname)
            .filter(|h| !h.is_empty())
        {
            *by_host.entry(hostname).or_insert(0) += 1;
        }
        Ok(by_host)
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

/// Tasks running on `member`: its hostname is the pod name, an FQDN starting with it, or its IP.
fn running_on(member: &Member, by_host: &HashMap<String, u32>) -> u32 {
    by_host
        .iter()
        .filter(|(host, _)| {
            *host == &member.id
                || host
                    .strip_prefix(member.id.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
                || member.address.as_deref() == Some(host.as_str())
        })
        .map(|(_, n)| n)
        .sum()
}

#[async_trait]
impl<R: RunningTasks> Drainer for CeleryDrainer<R> {
    fn engine(&self) -> &'static str {
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
}
