//! Airflow REST (engine-apis.md §2): Airflow 3 `/api/v2` with a JWT, Airflow 2 `/api/v1` with
//! Basic auth. Demand is task slots: running + queued (+ scheduled when the policy says so).
//! - a `pool` and no `queues`: `GET pools/{pool}`, whose slot sums honour `pool_slots`;
//! - `queues` set (with or without `pool`): task-instance counts per state, filtered by queue
//!   (and pool), read from `total_entries` (counts task instances, not slots);
//! - neither: the sum over every pool.

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::airflow_auth::{CachedToken, fetch_token};
use super::error::{ParseError, SourceError, optional, parse_json, required};
use super::http::{Credentials, HttpClient, check_status, join};
use super::{MetricSource, Reading};
use crate::policy::{AirflowApiVersion, AirflowSignal};
use crate::time::Timestamp;

/// One pool's slot sums.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Slots {
    pub running: f64,
    pub queued: f64,
    pub scheduled: f64,
    pub deferred: f64,
}

impl Slots {
    pub fn demand(&self, include_scheduled: bool) -> f64 {
        self.running
            + self.queued
            + if include_scheduled {
                self.scheduled
            } else {
                0.0
            }
    }

    fn add(self, other: Slots) -> Slots {
        Slots {
            running: self.running + other.running,
            queued: self.queued + other.queued,
            scheduled: self.scheduled + other.scheduled,
            deferred: self.deferred + other.deferred,
        }
    }
}

#[derive(Deserialize)]
struct RawPool {
    running_slots: Option<f64>,
    queued_slots: Option<f64>,
    scheduled_slots: Option<f64>,
    deferred_slots: Option<f64>,
}

impl RawPool {
    fn slots(&self) -> Result<Slots, ParseError> {
        Ok(Slots {
            running: required("running_slots", self.running_slots)?,
            queued: required("queued_slots", self.queued_slots)?,
            scheduled: required("scheduled_slots", self.scheduled_slots)?,
            // Not declared by some 2.x versions (engine-apis.md §2.2).
            deferred: optional("deferred_slots", self.deferred_slots)?,
        })
    }
}

/// Parses `GET pools/{name}`.
pub fn parse_pool(body: &[u8]) -> Result<Slots, ParseError> {
    parse_json::<RawPool>(body)?.slots()
}

#[derive(Deserialize)]
struct RawPools {
    pools: Option<Vec<RawPool>>,
    total_entries: Option<f64>,
}

/// Parses `GET pools`: the page's summed slots, the number of pools on it, and `total_entries`.
pub fn parse_pools(body: &[u8]) -> Result<(Slots, usize, f64), ParseError> {
    let raw: RawPools = parse_json(body)?;
    let pools = raw
        .pools
        .ok_or_else(|| ParseError("`pools` is missing".into()))?;
    let mut sum = Slots::default();
    for pool in &pools {
        sum = sum.add(pool.slots()?);
    }
    Ok((
        sum,
        pools.len(),
        required("total_entries", raw.total_entries)?,
    ))
}

#[derive(Deserialize)]
struct RawCount {
    total_entries: Option<f64>,
}

/// Parses a task-instance listing for its `total_entries` (counted before the page limit).
pub fn parse_task_instance_count(body: &[u8]) -> Result<f64, ParseError> {
    required("total_entries", parse_json::<RawCount>(body)?.total_entries)
}

const PAGE: usize = 100;

pub struct AirflowSource {
    name: String,
    spec: AirflowSignal,
    http: HttpClient,
    token: Mutex<Option<CachedToken>>,
}

impl AirflowSource {
    pub fn new(spec: &AirflowSignal) -> AirflowSource {
        let scope = match (&spec.pool, spec.queues.is_empty()) {
            (Some(pool), true) => format!("pool {pool}"),
            (pool, false) => format!(
                "queues {:?}{}",
                spec.queues,
                pool.as_ref()
                    .map(|p| format!(" in pool {p}"))
                    .unwrap_or_default()
            ),
            (None, true) => "all pools".into(),
        };
        AirflowSource {
            name: format!("airflow {} ({scope})", spec.api),
            spec: spec.clone(),
            http: HttpClient::new(&spec.http),
            token: Mutex::new(None),
        }
    }

    fn base(&self) -> &'static str {
        match self.spec.version {
            AirflowApiVersion::V3 => "/api/v2",
            AirflowApiVersion::V2 => "/api/v1",
        }
    }

    pub(crate) fn url(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Url, SourceError> {
        let mut url = join(&self.spec.api, self.base())?;
        url.path_segments_mut()
            .map_err(|_| SourceError::Unreachable {
                target: self.spec.api.clone(),
                detail: "URL cannot take a path".into(),
            })?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// GET with the version's auth; on Airflow 3 a 401 drops the token and retries once.
    pub(crate) async fn get(&self, url: &Url) -> Result<Vec<u8>, SourceError> {
        if self.spec.version == AirflowApiVersion::V2 {
            return self
                .http
                .get_ok(url, HeaderMap::new(), Credentials::Options)
                .await;
        }
        let mut retried = false;
        loop {
            let token = self.token().await?;
            let body = self
                .http
                .send(
                    Method::GET,
                    url,
                    HeaderMap::new(),
                    Credentials::Bearer(&token),
                    None,
                )
                .await?;
            if body.status == StatusCode::UNAUTHORIZED && !retried {
                retried = true;
                self.token.lock().await.take();
                continue;
            }
            return check_status(url, body);
        }
    }

    async fn token(&self) -> Result<String, SourceError> {
        let mut cached = self.token.lock().await;
        let now = Timestamp::now();
        if let Some(token) = cached.as_ref().filter(|t| t.is_fresh(now)) {
            return Ok(token.token.clone());
        }
        let fresh = fetch_token(&self.http, &self.spec.api).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    async fn pool_slots(&self, pool: &str) -> Result<Slots, SourceError> {
        let url = self.url(&["pools", pool], &[])?;
        parse_pool(&self.get(&url).await?).map_err(|e| e.at(url.as_str()))
    }

    async fn all_pools_slots(&self) -> Result<Slots, SourceError> {
        let mut sum = Slots::default();
        let mut offset = 0usize;
        loop {
            let (limit, off) = (PAGE.to_string(), offset.to_string());
            let url = self.url(&["pools"], &[("limit", &limit), ("offset", &off)])?;
            let (page, count, total) =
                parse_pools(&self.get(&url).await?).map_err(|e| e.at(url.as_str()))?;
            sum = sum.add(page);
            offset += count;
            if count == 0 || offset as f64 >= total {
                return Ok(sum);
            }
        }
    }

    /// Task instances in `state` matching the queue (and pool) filters.
    async fn count(&self, state: &str) -> Result<f64, SourceError> {
        // v2 counts with limit=0 (verified on 3.3.2); v1's minimum is not documented, so 1.
        let limit = if self.spec.version == AirflowApiVersion::V3 {
            "0"
        } else {
            "1"
        };
        let mut query = vec![("state", state), ("limit", limit)];
        query.extend(self.spec.queues.iter().map(|q| ("queue", q.as_str())));
        if let Some(pool) = &self.spec.pool {
            query.push(("pool", pool.as_str()));
        }
        let url = self.url(&["dags", "~", "dagRuns", "~", "taskInstances"], &query)?;
        parse_task_instance_count(&self.get(&url).await?).map_err(|e| e.at(url.as_str()))
    }

    async fn task_instance_slots(&self) -> Result<Slots, SourceError> {
        Ok(Slots {
            running: self.count("running").await?,
            queued: self.count("queued").await?,
            scheduled: if self.spec.include_scheduled {
                self.count("scheduled").await?
            } else {
                0.0
            },
            deferred: 0.0,
        })
    }
}

#[async_trait]
impl MetricSource for AirflowSource {
    async fn poll(&self) -> Result<Reading, SourceError> {
        let slots = match (&self.spec.pool, self.spec.queues.is_empty()) {
            (Some(pool), true) => self.pool_slots(pool).await?,
            (_, false) => self.task_instance_slots().await?,
            (None, true) => self.all_pools_slots().await?,
        };
        let mut raw = vec![("running", slots.running), ("queued", slots.queued)];
        if self.spec.include_scheduled || self.spec.queues.is_empty() {
            raw.push(("scheduled", slots.scheduled));
        }
        if self.spec.queues.is_empty() {
            raw.push(("deferred", slots.deferred));
        }
        Ok(Reading {
            labels: Vec::new(),
            demand: slots.demand(self.spec.include_scheduled),
            raw,
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::fixture;

    #[test]
    fn pool_item_captured_from_airflow_3() {
        let s = parse_pool(&fixture("airflow/v2-pool-item-queued.json")).unwrap();
        assert_eq!((s.running, s.queued, s.scheduled), (0.0, 4.0, 8.0));
        assert_eq!(s.demand(false), 4.0);
        assert_eq!(s.demand(true), 12.0);
    }

    #[test]
    fn pools_collection_sums_every_pool() {
        let (idle, n, total) = parse_pools(&fixture("airflow/v2-pools-idle.json")).unwrap();
        assert_eq!((idle, n, total), (Slots::default(), 2, 2.0));
        let (busy, _, _) =
            parse_pools(&fixture("airflow/v2-pools-running-and-queued.json")).unwrap();
        assert_eq!((busy.running, busy.queued, busy.scheduled), (2.0, 7.0, 8.0));
    }

    #[test]
    fn airflow_2_pool_without_deferred_and_with_sorted_keys_parses() {
        let body = br#"{"description": null, "name": "autoscale_pool", "occupied_slots": 2, "open_slots": 0, "queued_slots": 1, "running_slots": 1, "scheduled_slots": 8, "slots": 2}"#;
        assert_eq!(
            parse_pool(body).unwrap(),
            Slots {
                running: 1.0,
                queued: 1.0,
                scheduled: 8.0,
                deferred: 0.0
            }
        );
    }

    #[test]
    fn task_instance_count_reads_total_entries() {
        assert_eq!(
            parse_task_instance_count(&fixture("airflow/v2-ti-count-queue-other.json")).unwrap(),
            5.0
        );
        assert_eq!(
            parse_task_instance_count(&fixture("airflow/v2-ti-queued-limit1.json")).unwrap(),
            9.0
        );
    }

    #[test]
    fn error_bodies_and_wrong_types_are_malformed() {
        assert!(parse_pool(&fixture("airflow/v2-401.json")).is_err());
        assert!(parse_task_instance_count(&fixture("airflow/v2-ti-bad-state-422.json")).is_err());
        assert!(
            parse_pool(br#"{"running_slots":"1","queued_slots":0,"scheduled_slots":0}"#).is_err()
        );
        assert!(parse_pools(br#"{"total_entries":1}"#).is_err());
    }
}
