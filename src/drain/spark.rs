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
    fn engine(&self) -> &'static str {
        "spark"
    }

    fn one_way(&self) -> bool {
        true
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
