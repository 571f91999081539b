//! Spark standalone worker decommission.
//!
//! `POST <master>/workers/kill/?host=<ip>` (one-way; needs `spark.decommission.enabled=true` on
//! the master, and `spark.master.ui.decommission.allow.mode=ALLOW` unless poolpilot calls from
//! the master host). The master marks the worker DECOMMISSIONED so nothing new lands there; the
//! worker process keeps running. It is drained when the master no longer lists it as ALIVE and
//! its own `/json/` shows no executors (or it is gone); then the actuator removes it.

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;

use super::{DrainError, Drainer, host_of, unreachable};
use crate::actuators::Member;

pub struct SparkDrainer {
    http: reqwest::Client,
    master: String,
}

#[derive(Deserialize)]
struct MasterState {
    #[serde(default)]
    workers: Vec<WorkerInfo>,
}

#[derive(Deserialize)]
struct WorkerInfo {
    host: String,
    #[serde(default)]
    webuiaddress: String,
    state: String,
    #[serde(default)]
    coresused: u32,
}

#[derive(Deserialize)]
struct WorkerState {
    #[serde(default)]
    executors: Vec<serde_json::Value>,
}

impl SparkDrainer {
    /// `master` is the master web UI base URL, e.g. `http://spark-master:8080`.
    pub fn new(http: reqwest::Client, master: &str) -> SparkDrainer {
        SparkDrainer {
            http,
            master: master.trim_end_matches('/').to_owned(),
        }
    }

    fn host(member: &Member) -> Result<&str, DrainError> {
        member
            .address
            .as_deref()
            .map(host_of)
            .ok_or_else(|| DrainError::NoAddress {
                member: member.id.clone(),
            })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, DrainError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| unreachable(url, e))?;
        if !response.status().is_success() {
            return Err(DrainError::Unreachable {
                message: format!("{url} answered {}", response.status()),
            });
        }
        response.json().await.map_err(|e| unreachable(url, e))
    }

    /// Executors still running on the worker, from its own UI; `None` when it does not answer
    /// (the process is gone, so nothing runs there).
    async fn running_executors(&self, webui: &str) -> Option<usize> {
        let url = format!("{}/json/", webui.trim_end_matches('/'));
        self.get_json::<WorkerState>(&url)
            .await
            .ok()
            .map(|w| w.executors.len())
    }
}

#[async_trait]
impl Drainer for SparkDrainer {
    fn method(&self) -> &'static str {
        "spark"
    }

    fn one_way(&self) -> bool {
        true
    }

    /// Not-ready members first, then by the cores the master has granted on the member's host:
    /// the decommission is one way (its executors are lost), so the idle workers must be the
    /// victims and a worker running an app only when no idle one is left.
    async fn rank(&self, mut members: Vec<Member>) -> Result<Vec<Member>, DrainError> {
        let master: MasterState = self.get_json(&format!("{}/json/", self.master)).await?;
        let cores_used = |member: &Member| -> u32 {
            let Some(host) = member.address.as_deref().map(host_of) else {
                return u32::MAX; // cannot be drained (no address): the last resort
            };
            master
                .workers
                .iter()
                .filter(|w| w.host.eq_ignore_ascii_case(host) && w.state != "DEAD")
                .map(|w| w.coresused)
                .sum()
        };
        members.sort_by_cached_key(|m| (m.ready, cores_used(m)));
        Ok(members)
    }

    async fn begin(&self, member: &Member) -> Result<(), DrainError> {
        let host = Self::host(member)?;
        let url = format!("{}/workers/kill/", self.master);
        let response = self
            .http
            .post(&url)
            .query(&[("host", host)])
            .send()
            .await
            .map_err(|e| unreachable(&url, e))?;
        match response.status() {
            StatusCode::OK => Ok(()),
            StatusCode::NOT_FOUND => Err(DrainError::UnknownWorker {
                message: format!(
                    "the master has no worker on host {host} (or runs without spark.decommission.enabled=true)"
                ),
            }),
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::FORBIDDEN => Err(DrainError::Forbidden {
                message: format!(
                    "{url} refused ({}): set spark.master.ui.decommission.allow.mode=ALLOW on the master, \
                     or call from the master host",
                    response.status()
                ),
            }),
            status => Err(DrainError::Unreachable {
                message: format!("{url} answered {status}"),
            }),
        }
    }

    async fn is_drained(&self, member: &Member) -> Result<bool, DrainError> {
        let host = Self::host(member)?;
        let master: MasterState = self.get_json(&format!("{}/json/", self.master)).await?;
        let live: Vec<&WorkerInfo> = master
            .workers
            .iter()
            .filter(|w| w.host.eq_ignore_ascii_case(host) && w.state != "DEAD")
            .collect();
        if live.iter().any(|w| w.state == "ALIVE") {
            return Ok(false); // the decommission has not reached the master yet
        }
        for worker in live {
            if self
                .running_executors(&worker.webuiaddress)
                .await
                .unwrap_or(0)
                > 0
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A master `/json/` with a busy worker on .2, an idle one on .3 and a dead busy one on .4.
    async fn master() -> String {
        let body = r#"{"workers":[
            {"host":"10.0.0.2","webuiaddress":"http://10.0.0.2:8081","state":"ALIVE","coresused":1},
            {"host":"10.0.0.3","webuiaddress":"http://10.0.0.3:8081","state":"ALIVE","coresused":0},
            {"host":"10.0.0.4","webuiaddress":"http://10.0.0.4:8081","state":"DEAD","coresused":2}
        ],"status":"ALIVE"}"#;
        let app =
            axum::Router::new().route("/json/", axum::routing::get(move || async move { body }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    #[tokio::test]
    async fn idle_workers_rank_before_busy_ones_and_unaddressed_last() {
        let drainer = SparkDrainer::new(reqwest::Client::new(), &master().await);
        let member = |id: &str, address: Option<&str>| Member {
            address: address.map(str::to_owned),
            ready: true,
            ..Member::new(id)
        };
        let members = vec![
            member("busy", Some("10.0.0.2")),
            member("no-address", None),
            member("idle", Some("10.0.0.3:7078")),
            member("dead-worker", Some("10.0.0.4")),
            member("unregistered", Some("10.0.0.9")),
        ];
        let ranked: Vec<String> = drainer
            .rank(members)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(
            ranked,
            ["idle", "dead-worker", "unregistered", "busy", "no-address"]
        );
    }
}
