//! Spark standalone worker decommission.
//!
//! `POST <master>/workers/kill/?host=<ip>` (one-way; needs `spark.decommission.enabled=true` on
//! the master, and `spark.master.ui.decommission.allow.mode=ALLOW` unless poolpilot calls from
//! the master host). The master marks the worker DECOMMISSIONED so nothing new lands there; the
//! worker process keeps running. It is drained when the master no longer lists it as ALIVE and
//! its own `/json/` shows no executors (or it is gone); then the actuator removes it.
//!
//! Adoption after a failover: a worker the master already shows DECOMMISSIONED (a deposed
//! leader began its drain and was fenced before removing it) ranks first, and beginning its
//! drain again counts as begun even where the master answers 404 for it, so the new leader's
//! next scale-down finishes it instead of choosing another victim.

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

impl MasterState {
    /// A (not DEAD) worker on `host` is DECOMMISSIONED: its drain already began.
    fn decommissioned(&self, host: &str) -> bool {
        self.workers
            .iter()
            .any(|w| w.host.eq_ignore_ascii_case(host) && w.state == "DECOMMISSIONED")
    }
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

    /// The master shows the worker on `host` DECOMMISSIONED (someone began its drain before).
    async fn already_decommissioned(&self, host: &str) -> bool {
        self.get_json::<MasterState>(&format!("{}/json/", self.master))
            .await
            .is_ok_and(|m| m.decommissioned(host))
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

    /// Workers already DECOMMISSIONED first (they serve nothing and leave anyway: adopted),
    /// then not-ready members, then by the cores the master has granted on the member's host:
    /// the decommission is one way (its executors are lost), so the idle workers must be the
    /// victims and a worker running an app only when no idle one is left.
    async fn rank(&self, mut members: Vec<Member>) -> Result<Vec<Member>, DrainError> {
        let master: MasterState = self.get_json(&format!("{}/json/", self.master)).await?;
        let decommissioned = |member: &Member| -> bool {
            member
                .address
                .as_deref()
                .map(host_of)
                .is_some_and(|host| master.decommissioned(host))
        };
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
        members.sort_by_cached_key(|m| (!decommissioned(m), m.ready, cores_used(m)));
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
            StatusCode::NOT_FOUND if self.already_decommissioned(host).await => Ok(()),
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

    /// A master `/json/` with a busy worker on .2, an idle one on .3, a dead busy one on .4 and
    /// a decommissioned (draining) busy one on .5; `/workers/kill/` answers 404 (as for a
    /// worker it no longer counts as active).
    async fn master() -> String {
        let body = r#"{"workers":[
            {"host":"10.0.0.2","webuiaddress":"http://10.0.0.2:8081","state":"ALIVE","coresused":1},
            {"host":"10.0.0.3","webuiaddress":"http://10.0.0.3:8081","state":"ALIVE","coresused":0},
            {"host":"10.0.0.4","webuiaddress":"http://10.0.0.4:8081","state":"DEAD","coresused":2},
            {"host":"10.0.0.5","webuiaddress":"http://10.0.0.5:8081","state":"DECOMMISSIONED","coresused":1}
        ],"status":"ALIVE"}"#;
        let app = axum::Router::new()
            .route("/json/", axum::routing::get(move || async move { body }))
            .route(
                "/workers/kill/",
                axum::routing::post(|| async { axum::http::StatusCode::NOT_FOUND }),
            );
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
            member("draining", Some("10.0.0.5")),
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
            [
                "draining",
                "idle",
                "dead-worker",
                "unregistered",
                "busy",
                "no-address"
            ]
        );
    }

    #[tokio::test]
    async fn a_worker_already_decommissioned_is_adopted_not_refused() {
        let drainer = SparkDrainer::new(reqwest::Client::new(), &master().await);
        let draining = Member::new("draining").with_address("10.0.0.5");
        assert_eq!(drainer.begin(&draining).await, Ok(()));
        let unknown = Member::new("unregistered").with_address("10.0.0.9");
        assert_eq!(
            drainer.begin(&unknown).await.unwrap_err().label(),
            "unknown_worker"
        );
    }
}
