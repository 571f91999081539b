//! A PromQL instant query: `GET <url>/api/v1/query?query=…&timeout=…` (Prometheus HTTP API,
//! <https://prometheus.io/docs/prometheus/latest/querying/api/#instant-queries>). The answer's
//! one value is the demand:
//!
//! - `resultType: scalar` → `result: [<unix_time>, "<value>"]`;
//! - `resultType: vector` with exactly one sample → `result: [{"metric": {…}, "value": [<t>, "<v>"]}]`.
//!
//! Everything else is an error, never a reading, so the engine holds: `status: error`
//! (`errorType`, `error`), no series (an absent metric is not "zero demand"), several series
//! (wrap the query in `sum(…)`), a `matrix` or `string` result, NaN, ±Inf or a negative value.
//! Prometheus answers query errors with 400 (`bad_data`), 422 (`execution`) or 503 (`timeout`,
//! `canceled`) and the same JSON envelope; those become `HttpStatus` with its `error` text.

use async_trait::async_trait;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::error::{ParseError, SourceError, parse_json};
use super::http::{Credentials, HttpClient, check_status, join, redact};
use super::{MetricSource, Reading};
use crate::policy::PrometheusSignal;

/// The one value a query answered, and the series' labels (empty for a scalar).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryValue {
    pub value: f64,
    pub labels: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    metric: std::collections::BTreeMap<String, String>,
    value: (f64, String),
}

/// Parses an instant-query answer (any HTTP status: error bodies share the envelope).
pub fn parse_query(body: &[u8]) -> Result<QueryValue, ParseError> {
    let envelope: Envelope = parse_json(body)?;
    if envelope.status != "success" {
        return Err(ParseError(format!(
            "query failed: {} ({})",
            envelope.error.as_deref().unwrap_or("no `error` given"),
            envelope.error_type.as_deref().unwrap_or("no `errorType`"),
        )));
    }
    let data = envelope
        .data
        .ok_or_else(|| ParseError("`data` is missing".into()))?;
    let (raw_value, labels) = match data.result_type.as_str() {
        "scalar" => {
            let (_, v): (f64, String) = serde_json::from_value(data.result)
                .map_err(|e| ParseError(format!("scalar result is not [time, \"value\"]: {e}")))?;
            (v, Vec::new())
        }
        "vector" => {
            let mut series: Vec<Series> = serde_json::from_value(data.result).map_err(|e| {
                ParseError(format!(
                    "vector result is not [{{metric, value: [time, \"value\"]}}]: {e}"
                ))
            })?;
            match series.len() {
                1 => {
                    let one = series.remove(0);
                    (one.value.1, one.metric.into_iter().collect())
                }
                0 => {
                    return Err(ParseError(
                        "the query returned no series (an absent metric is not zero demand; \
                         add `or vector(0)` if absence really means zero)"
                            .into(),
                    ));
                }
                n => {
                    let first: Vec<String> = series[0]
                        .metric
                        .iter()
                        .map(|(k, v)| format!("{k}={v:?}"))
                        .collect();
                    return Err(ParseError(format!(
                        "the query returned {n} series, expected one (aggregate it, e.g. `sum(…)`); \
                         the first is {{{}}}",
                        first.join(", ")
                    )));
                }
            }
        }
        other => {
            return Err(ParseError(format!(
                "the query returned a {other}, expected a scalar or a one-series vector"
            )));
        }
    };
    // Prometheus writes sample values as strings: "NaN", "+Inf", "-Inf" included.
    let value: f64 = raw_value
        .parse()
        .map_err(|_| ParseError(format!("sample value {raw_value:?} is not a number")))?;
    if !value.is_finite() || value < 0.0 {
        return Err(ParseError(format!(
            "the query's value is {raw_value}, expected a finite number >= 0"
        )));
    }
    Ok(QueryValue { value, labels })
}

pub struct PrometheusSource {
    name: String,
    spec: PrometheusSignal,
    http: HttpClient,
}

impl PrometheusSource {
    pub fn new(spec: &PrometheusSignal) -> PrometheusSource {
        PrometheusSource {
            name: format!("prometheus {} `{}`", spec.url, spec.query),
            spec: spec.clone(),
            http: HttpClient::new(&spec.http),
        }
    }

    /// The query URL: the expression, and our timeout so Prometheus gives up evaluating when we
    /// stop waiting (its `timeout` parameter, a Prometheus duration such as `2000ms`; the real
    /// server refuses `2.000s`).
    fn url(&self) -> Result<reqwest::Url, SourceError> {
        let mut url = join(&self.spec.url, "/api/v1/query")?;
        url.query_pairs_mut()
            .append_pair("query", &self.spec.query)
            .append_pair(
                "timeout",
                &format!("{}ms", self.spec.http.timeout.as_millis().max(1)),
            );
        Ok(url)
    }
}

#[async_trait]
impl MetricSource for PrometheusSource {
    async fn poll(&self) -> Result<Reading, SourceError> {
        let url = self.url()?;
        let body = self
            .http
            .send(
                Method::GET,
                &url,
                HeaderMap::new(),
                Credentials::Options,
                None,
            )
            .await?;
        let status = body.status;
        let target = redact(&join(&self.spec.url, "/api/v1/query")?);
        if matches!(status.as_u16(), 400 | 422 | 503)
            && let Err(ParseError(detail)) = parse_query(&body.bytes)
            && detail.starts_with("query failed")
        {
            return Err(SourceError::HttpStatus {
                target,
                status: status.as_u16(),
                body_excerpt: detail,
            });
        }
        let bytes = check_status(&url, body).map_err(|e| match e {
            // the URL carries the query: name the endpoint only
            SourceError::HttpStatus {
                status,
                body_excerpt,
                ..
            } => SourceError::HttpStatus {
                target: target.clone(),
                status,
                body_excerpt,
            },
            SourceError::Auth { detail, .. } => SourceError::Auth {
                target: target.clone(),
                detail,
            },
            other => other,
        })?;
        let answer = parse_query(&bytes).map_err(|e| e.at(&target))?;
        Ok(Reading {
            demand: answer.value,
            raw: vec![("value", answer.value)],
            labels: answer.labels,
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
    fn one_series_vector_gives_its_value_and_labels() {
        let v = parse_query(&fixture("prometheus/vector-one.json")).unwrap();
        assert_eq!(v.value, 17.0);
        assert_eq!(
            v.labels,
            [
                ("__name__".to_string(), "queue_depth".to_string()),
                ("queue".to_string(), "etl".to_string())
            ]
        );
    }

    #[test]
    fn scalar_gives_its_value_without_labels() {
        let v = parse_query(&fixture("prometheus/scalar.json")).unwrap();
        assert_eq!((v.value, v.labels.len()), (2.5, 0));
    }

    #[test]
    fn every_answer_that_is_not_one_number_is_an_error() {
        let cases: [(&str, &str); 9] = [
            ("prometheus/vector-empty.json", "no series"),
            ("prometheus/vector-two.json", "2 series"),
            ("prometheus/error-bad-data.json", "bad_data"),
            ("prometheus/matrix.json", "matrix"),
            ("prometheus/vector-nan.json", "NaN"),
            ("prometheus/vector-inf.json", "+Inf"),
            ("prometheus/vector-negative.json", ">= 0"),
            ("prometheus/wrong-types.json", "not [{metric"),
            ("prometheus/string.json", "string"),
        ];
        for (file, why) in cases {
            let err = parse_query(&fixture(file)).unwrap_err().0;
            assert!(err.contains(why), "{file}: {err}");
        }
        assert_eq!(parse_query(b"").unwrap_err().0, "empty body");
        assert!(parse_query(br#"{"status":"success"}"#).is_err());
    }
}
