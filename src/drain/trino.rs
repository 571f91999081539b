//! Trino / PrestoDB graceful shutdown.
//!
//! `PUT http://<worker>/v1/info/state` with the JSON string `"SHUTTING_DOWN"` (one-way): the
//! worker stops taking tasks, finishes its running ones (2 × `shutdown.grace-period` + task time)
//! and exits. It is drained once it has left the coordinator's active nodes (`GET /v1/node`).
//! Workers map onto pods/instances by address: the host of the node's `uri` is the member's IP.
//!
//! The `default` Trino access control refuses the PUT (403): workers need `allow-all` or
//! file-based access control that allows system information writes.
//!
//! Adoption after a failover: workers whose `GET /v1/info/state` already says `SHUTTING_DOWN`
//! (a deposed leader began their shutdown and was fenced before removing them) rank first, so
//! the new leader's next scale-down removes those rather than shutting down others.

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;

use super::{DrainError, Drainer, host_of, unreachable};
use crate::actuators::Member;

/// Which dialect's user header to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Trino,
    Presto,
}

pub struct TrinoDrainer {
    http: reqwest::Client,
    coordinator: String,
    worker_scheme: String,
    worker_port: u16,
    user: String,
    flavor: Flavor,
}

#[derive(Deserialize)]
struct NodeStats {
    uri: String,
}

impl TrinoDrainer {
    /// `coordinator` is its base URL; workers are reached at `<scheme>://<member address>:<port>`
    /// with the coordinator's scheme and `worker_port` (usually the same HTTP port).
    pub fn new(
        http: reqwest::Client,
        coordinator: &str,
        worker_port: u16,
        user: &str,
        flavor: Flavor,
    ) -> TrinoDrainer {
        let coordinator = coordinator.trim_end_matches('/').to_owned();
        let worker_scheme = coordinator
            .split_once("://")
            .map_or("http", |(s, _)| s)
            .to_owned();
        TrinoDrainer {
            http,
            coordinator,
            worker_scheme,
            worker_port,
            user: user.to_owned(),
            flavor,
        }
    }

    fn user_header(&self) -> &'static str {
        match self.flavor {
            Flavor::Trino => "X-Trino-User",
            Flavor::Presto => "X-Presto-User",
        }
    }

    fn address<'m>(&self, member: &'m Member) -> Result<&'m str, DrainError> {
        member
            .address
            .as_deref()
            .ok_or_else(|| DrainError::NoAddress {
                member: member.id.clone(),
            })
    }

    fn state_url(&self, host: &str) -> String {
        format!(
            "{}://{host}:{}/v1/info/state",
            self.worker_scheme, self.worker_port
        )
    }

    /// The worker says `SHUTTING_DOWN`; any failure to tell counts as no.
    async fn shutting_down(&self, member: &Member) -> bool {
        let Ok(address) = self.address(member) else {
            return false;
        };
        let response = self
            .http
            .get(self.state_url(host_of(address)))
            .header(self.user_header(), &self.user)
            .send()
            .await;
        match response {
            Ok(r) if r.status().is_success() => r
                .json::<String>()
                .await
                .is_ok_and(|state| state == "SHUTTING_DOWN"),
            _ => false,
        }
    }

    /// Hosts of the coordinator's active nodes.
    async fn active_hosts(&self) -> Result<Vec<String>, DrainError> {
        let url = format!("{}/v1/node", self.coordinator);
        let response = self
            .http
            .get(&url)
            .header(self.user_header(), &self.user)
            .send()
            .await
            .map_err(|e| unreachable(&url, e))?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(DrainError::Forbidden {
                    message: format!(
                        "{url} answered {}: the user needs management read access",
                        response.status()
                    ),
                });
            }
            status => {
                return Err(DrainError::Unreachable {
                    message: format!("{url} answered {status}"),
                });
            }
        }
        let nodes: Vec<NodeStats> = response.json().await.map_err(|e| unreachable(&url, e))?;
        Ok(nodes.iter().map(|n| host_of(&n.uri).to_owned()).collect())
    }
}

#[async_trait]
impl Drainer for TrinoDrainer {
    fn method(&self) -> &'static str {
        match self.flavor {
            Flavor::Trino => "trino",
            Flavor::Presto => "presto",
        }
    }

    fn one_way(&self) -> bool {
        true
    }

    /// Workers already shutting down first (adopted), then not-ready members, then the
    /// platform's order. One state read per member, concurrently.
    async fn rank(&self, members: Vec<Member>) -> Result<Vec<Member>, DrainError> {
        let states = futures::future::join_all(members.iter().map(|m| self.shutting_down(m))).await;
        let mut ranked: Vec<(bool, Member)> = states.into_iter().zip(members).collect();
        ranked.sort_by_key(|(shutting_down, m)| (!shutting_down, m.ready));
        Ok(ranked.into_iter().map(|(_, m)| m).collect())
    }

    async fn begin(&self, member: &Member) -> Result<(), DrainError> {
        let host = host_of(self.address(member)?);
        let url = self.state_url(host);
        let response = self
            .http
            .put(&url)
            .header(self.user_header(), &self.user)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body("\"SHUTTING_DOWN\"")
            .send()
            .await
            .map_err(|e| unreachable(&url, e))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        match status {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(DrainError::Forbidden {
                message: format!(
                    "{url} answered {status}: graceful shutdown needs worker access control that allows \
                     system information writes (the `default` access control refuses it)"
                ),
            }),
            StatusCode::BAD_REQUEST => Err(DrainError::Rejected {
                message: format!("{url}: {}", body.trim()),
            }),
            _ => Err(DrainError::Unreachable {
                message: format!("{url} answered {status}: {}", body.trim()),
            }),
        }
    }

    async fn is_drained(&self, member: &Member) -> Result<bool, DrainError> {
        let host = host_of(self.address(member)?);
        Ok(!self.active_hosts().await?.iter().any(|h| h == host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker at 127.0.0.1 that says `SHUTTING_DOWN`; returns its port.
    async fn shutting_down_worker() -> u16 {
        let app = axum::Router::new().route(
            "/v1/info/state",
            axum::routing::get(|| async { axum::Json("SHUTTING_DOWN") }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        port
    }

    #[tokio::test]
    async fn a_worker_already_shutting_down_ranks_first() {
        let port = shutting_down_worker().await;
        let drainer = TrinoDrainer::new(
            reqwest::Client::new(),
            "http://127.0.0.1:1",
            port,
            "poolpilot",
            Flavor::Trino,
        );
        let booting = Member {
            ready: false,
            ..Member::new("booting")
        };
        let adopted = Member::new("adopted").with_address("127.0.0.1");
        let ranked: Vec<String> = drainer
            .rank(vec![booting, adopted])
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(
            ranked,
            ["adopted", "booting"],
            "before even a not-ready member"
        );
    }
}
