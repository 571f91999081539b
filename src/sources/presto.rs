//! PrestoDB coordinator `GET /v1/cluster` with `X-Presto-User` (engine-apis.md §1.1). With a
//! resource manager, the coordinator proxies this call and answers 503 while none is known:
//! that is an `HttpStatus` fault (missing data), never zero demand.

use async_trait::async_trait;

use super::error::SourceError;
use super::http::{Credentials, HttpClient, join};
use super::trino::{parse_cluster_stats, user_header};
use super::{MetricSource, Reading};
use crate::policy::PrestoSignal;

pub struct PrestoSource {
    name: String,
    spec: PrestoSignal,
    http: HttpClient,
}

impl PrestoSource {
    pub fn new(spec: &PrestoSignal) -> PrestoSource {
        PrestoSource {
            name: format!("presto {}/v1/cluster", spec.coordinator),
            spec: spec.clone(),
            http: HttpClient::new(&spec.http),
        }
    }
}

#[async_trait]
impl MetricSource for PrestoSource {
    async fn poll(&self) -> Result<Reading, SourceError> {
        let url = join(&self.spec.coordinator, "/v1/cluster")?;
        let headers = user_header("X-Presto-User", &self.spec.user, url.as_str())?;
        let body = self
            .http
            .get_ok(&url, headers, Credentials::Options)
            .await?;
        let stats = parse_cluster_stats(&body).map_err(|e| e.at(url.as_str()))?;
        let c = stats.counts;
        Ok(Reading {
            labels: Vec::new(),
            // Blocked queries hold workers like running ones.
            demand: c.queued + c.running + c.blocked,
            raw: vec![
                ("queued", c.queued),
                ("running", c.running),
                ("blocked", c.blocked),
                ("active_workers", stats.active_workers),
            ],
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::super::trino::parse_cluster_stats;
    use crate::sources::fixture;

    #[test]
    fn current_and_old_presto_cluster_bodies_parse() {
        let new = parse_cluster_stats(&fixture("presto/v1-cluster.json")).unwrap();
        assert_eq!(
            (new.counts.queued, new.counts.running, new.counts.blocked),
            (7.0, 3.0, 1.0)
        );
        let old = parse_cluster_stats(&fixture("presto/v1-cluster-old.json")).unwrap();
        assert_eq!(
            (old.counts.queued, old.counts.running, old.active_workers),
            (2.0, 5.0, 3.0)
        );
    }
}
