//! Trino coordinator (engine-apis.md §1). Three endpoints, chosen by policy:
//! - `/v1/query` (REST auth, `X-Trino-User`): every query's state; the only place that shows
//!   `WAITING_FOR_RESOURCES`, which is what a pool at zero workers has to see to scale up;
//! - `/ui/api/stats` (UI auth: works with `web-ui.authentication.type=fixed` or HTTPS + Basic);
//! - `/metrics` (OpenMetrics, REST auth): `QueryManager` queued/running gauges, no blocked count.

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;

use super::error::{ParseError, SourceError, optional, parse_json, required};
use super::http::{Credentials, HttpClient, join};
use super::{MetricSource, Reading};
use crate::policy::{TrinoEndpoint, TrinoSignal};

/// Query counts by what they mean for capacity.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueryCounts {
    /// `QUEUED` (and Presto's `WAITING_FOR_PREREQUISITES`).
    pub queued: f64,
    /// `WAITING_FOR_RESOURCES`: admitted but no workers to run on (zero-worker pools).
    pub waiting_for_resources: f64,
    /// `DISPATCHING`, `PLANNING`, `STARTING`: about to need workers.
    pub starting: f64,
    /// `RUNNING` not fully blocked, and `FINISHING`.
    pub running: f64,
    /// `RUNNING` with `queryStats.fullyBlocked`.
    pub blocked: f64,
}

impl QueryCounts {
    pub fn demand(&self, include_blocked: bool) -> f64 {
        let blocked = if include_blocked { self.blocked } else { 0.0 };
        self.queued + self.waiting_for_resources + self.starting + self.running + blocked
    }

    fn raw(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("queued", self.queued),
            ("waiting_for_resources", self.waiting_for_resources),
            ("starting", self.starting),
            ("running", self.running),
            ("blocked", self.blocked),
        ]
    }
}

#[derive(Deserialize)]
struct RawQuery {
    state: Option<String>,
    #[serde(rename = "queryStats")]
    query_stats: Option<RawQueryStats>,
}

#[derive(Deserialize)]
struct RawQueryStats {
    #[serde(rename = "fullyBlocked")]
    fully_blocked: Option<bool>,
}

/// Parses `GET /v1/query` (an array of BasicQueryInfo, Trino or Presto dialect).
pub fn parse_query_list(body: &[u8]) -> Result<QueryCounts, ParseError> {
    let queries: Vec<RawQuery> = parse_json(body)?;
    let mut counts = QueryCounts::default();
    for (i, query) in queries.iter().enumerate() {
        let state = query
            .state
            .as_deref()
            .ok_or_else(|| ParseError(format!("query #{i} has no `state`")))?;
        match state {
            "QUEUED" | "WAITING_FOR_PREREQUISITES" => counts.queued += 1.0,
            "WAITING_FOR_RESOURCES" => counts.waiting_for_resources += 1.0,
            "DISPATCHING" | "PLANNING" | "STARTING" => counts.starting += 1.0,
            "RUNNING" if query.query_stats.as_ref().and_then(|s| s.fully_blocked) == Some(true) => {
                counts.blocked += 1.0
            }
            "RUNNING" | "FINISHING" => counts.running += 1.0,
            // FINISHED, FAILED, and states a newer server may add: no capacity needed.
            _ => {}
        }
    }
    Ok(counts)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawClusterStats {
    queued_queries: Option<f64>,
    running_queries: Option<f64>,
    blocked_queries: Option<f64>,
    active_workers: Option<f64>,
}

/// Counters shared by Trino `/ui/api/stats` and Presto `/v1/cluster` (same handler code).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClusterStats {
    pub counts: QueryCounts,
    pub active_workers: f64,
}

/// Parses the cluster stats body. Queued and running are required: a body without them (a
/// proxy's `{}`) must not read as zero demand.
pub fn parse_cluster_stats(body: &[u8]) -> Result<ClusterStats, ParseError> {
    let raw: RawClusterStats = parse_json(body)?;
    Ok(ClusterStats {
        counts: QueryCounts {
            queued: required("queuedQueries", raw.queued_queries)?,
            running: required("runningQueries", raw.running_queries)?,
            blocked: optional("blockedQueries", raw.blocked_queries)?,
            ..QueryCounts::default()
        },
        active_workers: optional("activeWorkers", raw.active_workers)?,
    })
}

pub const METRIC_QUEUED: &str = "trino_execution_name_QueryManager_QueuedQueries";
pub const METRIC_RUNNING: &str = "trino_execution_name_QueryManager_RunningQueries";

/// Parses Prometheus text exposition for the two `QueryManager` gauges (both required). A full
/// exposition parser is not needed for two unlabelled gauges; labels, if any, are ignored.
pub fn parse_metrics(body: &[u8]) -> Result<QueryCounts, ParseError> {
    let text =
        std::str::from_utf8(body).map_err(|_| ParseError("metrics body is not UTF-8".into()))?;
    let (mut queued, mut running) = (None, None);
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (name_part, rest) =
            split_sample(line).ok_or_else(|| ParseError(format!("bad metrics line: {line}")))?;
        let name = name_part.split('{').next().unwrap_or(name_part);
        let slot = match name {
            METRIC_QUEUED => &mut queued,
            METRIC_RUNNING => &mut running,
            _ => continue,
        };
        let value = rest.split_whitespace().next().unwrap_or("");
        let value: f64 = value
            .parse()
            .map_err(|_| ParseError(format!("{name} has a non-numeric value `{value}`")))?;
        *slot = Some(value);
    }
    Ok(QueryCounts {
        queued: required(METRIC_QUEUED, queued)?,
        running: required(METRIC_RUNNING, running)?,
        ..QueryCounts::default()
    })
}

/// Splits `name{labels} value [ts]` after the name (labels may contain spaces inside quotes).
fn split_sample(line: &str) -> Option<(&str, &str)> {
    let end = match line.find('{') {
        Some(open) if line[..open].find(char::is_whitespace).is_none() => {
            open + line[open..].rfind('}')? + 1
        }
        _ => line.find(char::is_whitespace)?,
    };
    Some((&line[..end], line[end..].trim_start()))
}

pub struct TrinoSource {
    name: String,
    spec: TrinoSignal,
    http: HttpClient,
}

impl TrinoSource {
    pub fn new(spec: &TrinoSignal) -> TrinoSource {
        let path = endpoint_path(spec.endpoint);
        TrinoSource {
            name: format!("trino {}{path}", spec.coordinator),
            spec: spec.clone(),
            http: HttpClient::new(&spec.http),
        }
    }
}

fn endpoint_path(endpoint: TrinoEndpoint) -> &'static str {
    match endpoint {
        TrinoEndpoint::Query => "/v1/query",
        TrinoEndpoint::UiStats => "/ui/api/stats",
        TrinoEndpoint::Metrics => "/metrics",
    }
}

/// The user header; a user name that is not a valid header value is a config error.
pub fn user_header(name: &'static str, user: &str, target: &str) -> Result<HeaderMap, SourceError> {
    let value = HeaderValue::from_str(user).map_err(|_| SourceError::Auth {
        target: target.to_string(),
        detail: format!("user `{user}` is not a valid {name} header"),
    })?;
    let mut headers = HeaderMap::new();
    headers.insert(name, value);
    Ok(headers)
}

#[async_trait]
impl MetricSource for TrinoSource {
    async fn poll(&self) -> Result<Reading, SourceError> {
        let url = join(&self.spec.coordinator, endpoint_path(self.spec.endpoint))?;
        let headers = user_header("X-Trino-User", &self.spec.user, url.as_str())?;
        let body = self
            .http
            .get_ok(&url, headers, Credentials::Options)
            .await?;
        let (counts, extra) = match self.spec.endpoint {
            TrinoEndpoint::Query => (
                parse_query_list(&body).map_err(|e| e.at(url.as_str()))?,
                None,
            ),
            TrinoEndpoint::Metrics => (parse_metrics(&body).map_err(|e| e.at(url.as_str()))?, None),
            TrinoEndpoint::UiStats => {
                let stats = parse_cluster_stats(&body).map_err(|e| e.at(url.as_str()))?;
                (stats.counts, Some(("active_workers", stats.active_workers)))
            }
        };
        let mut raw = counts.raw();
        raw.extend(extra);
        Ok(Reading {
            labels: Vec::new(),
            demand: counts.demand(self.spec.include_blocked),
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
    fn query_list_counts_every_capacity_state() {
        let c = parse_query_list(&fixture("trino/v1-query-mixed.json")).unwrap();
        assert_eq!(
            c,
            QueryCounts {
                queued: 2.0,
                waiting_for_resources: 1.0,
                starting: 1.0,
                running: 2.0,
                blocked: 1.0
            }
        );
        assert_eq!(c.demand(true), 7.0);
        assert_eq!(c.demand(false), 6.0);
    }

    #[test]
    fn presto_query_list_counts_waiting_for_prerequisites_as_queued() {
        let c = parse_query_list(&fixture("presto/v1-query.json")).unwrap();
        assert_eq!((c.queued, c.running), (2.0, 1.0));
    }

    #[test]
    fn empty_query_list_is_zero_demand_but_a_query_without_state_is_malformed() {
        assert_eq!(parse_query_list(b"[]").unwrap().demand(true), 0.0);
        assert!(parse_query_list(br#"[{"queryId":"q"}]"#).is_err());
        assert!(parse_query_list(br#"{"state":"QUEUED"}"#).is_err());
    }

    #[test]
    fn ui_stats_sample_parses_with_reserved_memory_as_double() {
        let s = parse_cluster_stats(&fixture("trino/ui-api-stats.json")).unwrap();
        assert_eq!(
            (
                s.counts.queued,
                s.counts.running,
                s.counts.blocked,
                s.active_workers
            ),
            (7.0, 3.0, 1.0, 4.0)
        );
    }

    #[test]
    fn stats_without_counters_or_with_strings_are_malformed() {
        assert!(parse_cluster_stats(b"{}").is_err());
        assert!(parse_cluster_stats(br#"{"queuedQueries":"7","runningQueries":1}"#).is_err());
    }

    #[test]
    fn metrics_text_yields_queued_and_running() {
        let c = parse_metrics(&fixture("trino/metrics.txt")).unwrap();
        assert_eq!((c.queued, c.running, c.blocked), (5.0, 2.0, 0.0));
    }

    #[test]
    fn metrics_missing_a_gauge_or_with_garbage_value_is_malformed() {
        assert!(parse_metrics(format!("{METRIC_QUEUED} 3\n").as_bytes()).is_err());
        assert!(
            parse_metrics(format!("{METRIC_QUEUED} x\n{METRIC_RUNNING} 1\n").as_bytes()).is_err()
        );
        let labelled = format!("{METRIC_QUEUED}{{a=\"b c\"}} 4 1700000000\n{METRIC_RUNNING} 1\n");
        assert_eq!(parse_metrics(labelled.as_bytes()).unwrap().queued, 4.0);
    }
}
