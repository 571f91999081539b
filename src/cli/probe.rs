//! `poolpilot probe POLICY...`: polls every signal of every policy once and prints what it saw
//! (demand, the raw numbers behind it, latency) or the exact error with its fault kind. What
//! ops run first when wiring a new pool. Exit 0 when every poll succeeded, 1 when one failed,
//! 2 when a policy does not load.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use crate::policy;
use crate::sources::{self, Reading, SourceError};
use crate::time::Timestamp;

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Policy files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// One JSON object per signal (JSON Lines) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One signal's probe result.
pub struct Probe {
    pub pool: String,
    /// 1-based position in the policy's `signals`.
    pub index: usize,
    pub source: String,
    pub per_worker: f64,
    pub result: Result<Reading, SourceError>,
    pub latency_ms: i64,
}

pub async fn run(args: ProbeArgs) -> anyhow::Result<i32> {
    let policies = match policy::load_set(&args.paths, None) {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            return Ok(2);
        }
    };
    let polls = policies.iter().flat_map(|p| {
        p.spec
            .signals
            .iter()
            .enumerate()
            .map(move |(i, spec)| async move {
                let source = sources::build(spec);
                let started = Timestamp::now();
                let result = source.poll().await;
                Probe {
                    pool: p.name().to_string(),
                    index: i + 1,
                    source: source.name().to_string(),
                    per_worker: spec.per_worker,
                    result,
                    latency_ms: Timestamp::now().0 - started.0,
                }
            })
    });
    let probes = futures::future::join_all(polls).await;
    let mut out = std::io::stdout().lock();
    for probe in &probes {
        if args.json {
            writeln!(out, "{}", to_json(probe))?;
        } else {
            write!(out, "{}", to_text(probe))?;
        }
    }
    Ok(if probes.iter().all(|p| p.result.is_ok()) {
        0
    } else {
        1
    })
}

/// Human-readable block for one signal.
pub fn to_text(p: &Probe) -> String {
    let mut s = format!("pool `{}` signal {}: {}\n", p.pool, p.index, p.source);
    match &p.result {
        Ok(r) => {
            let workers = if p.per_worker > 0.0 {
                (r.demand / p.per_worker).ceil()
            } else {
                0.0
            };
            s.push_str(&format!(
                "  demand   {} (per_worker {} → {} workers before policy limits)\n",
                r.demand, p.per_worker, workers
            ));
            let raw: Vec<String> = r.raw.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("  raw      {}\n", raw.join(" ")));
            if !r.labels.is_empty() {
                let labels: Vec<String> =
                    r.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                s.push_str(&format!("  labels   {{{}}}\n", labels.join(", ")));
            }
        }
        Err(e) => s.push_str(&format!("  ERROR    [{}] {e}\n", e.fault().label())),
    }
    s.push_str(&format!("  latency  {} ms\n", p.latency_ms));
    s
}

pub fn to_json(p: &Probe) -> serde_json::Value {
    let mut v =
        json!({"pool": p.pool, "signal": p.index, "source": p.source, "latency_ms": p.latency_ms});
    let obj = v.as_object_mut().expect("object literal");
    match &p.result {
        Ok(r) => {
            obj.insert("ok".into(), json!(true));
            obj.insert("demand".into(), json!(r.demand));
            let raw: serde_json::Map<String, serde_json::Value> = r
                .raw
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            obj.insert("raw".into(), raw.into());
            if !r.labels.is_empty() {
                let labels: serde_json::Map<String, serde_json::Value> = r
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect();
                obj.insert("labels".into(), labels.into());
            }
        }
        Err(e) => {
            obj.insert("ok".into(), json!(false));
            obj.insert("fault".into(), json!(e.fault().label()));
            obj.insert("error".into(), json!(e.to_string()));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(result: Result<Reading, SourceError>) -> Probe {
        Probe {
            pool: "etl".into(),
            index: 1,
            source: "spark http://m:8080".into(),
            per_worker: 2.0,
            result,
            latency_ms: 12,
        }
    }

    #[test]
    fn text_shows_demand_raw_numbers_and_latency() {
        let text = to_text(&probe(Ok(Reading {
            labels: Vec::new(),
            demand: 5.0,
            raw: vec![("cores_used", 4.0), ("waiting_apps", 1.0)],
        })));
        assert!(
            text.contains("demand   5 (per_worker 2 → 3 workers"),
            "{text}"
        );
        assert!(
            text.contains("raw      cores_used=4 waiting_apps=1"),
            "{text}"
        );
        assert!(text.contains("latency  12 ms"), "{text}");
        assert!(!text.contains("labels"), "{text}");
    }

    #[test]
    fn a_series_prints_its_labels_in_text_and_json() {
        let reading = || Reading {
            demand: 17.0,
            raw: vec![("value", 17.0)],
            labels: vec![("queue".into(), "etl".into())],
        };
        let text = to_text(&probe(Ok(reading())));
        assert!(text.contains("labels   {queue=\"etl\"}"), "{text}");
        let v = to_json(&probe(Ok(reading())));
        assert_eq!(v["labels"]["queue"].as_str(), Some("etl"));
    }

    #[test]
    fn errors_print_their_fault_kind_and_message() {
        let err = SourceError::HttpStatus {
            target: "http://m:8080/json/".into(),
            status: 503,
            body_excerpt: "down".into(),
        };
        let text = to_text(&probe(Err(err.clone())));
        assert!(
            text.contains("ERROR    [http_status] http://m:8080/json/ answered HTTP 503: down"),
            "{text}"
        );
        let v = to_json(&probe(Err(err)));
        assert_eq!(
            (v["ok"].as_bool(), v["fault"].as_str()),
            (Some(false), Some("http_status"))
        );
    }

    #[tokio::test]
    async fn a_policy_whose_source_is_down_exits_1_and_an_invalid_one_exits_2() {
        let dir = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let good = format!(
            "pool: p\nsignals:\n  - spark: {{ master: 'http://{addr}', cores_per_waiting_app: 1, http: {{ timeout: 300ms }} }}\n    per_worker: 1\n\
             workers:\n  kubernetes: {{ namespace: n, deployment: d }}\nbounds: {{ min: 1, max: 2 }}\n"
        );
        std::fs::write(dir.path().join("p.yaml"), good).unwrap();
        let args = ProbeArgs {
            paths: vec![dir.path().join("p.yaml")],
            json: true,
        };
        assert_eq!(run(args).await.unwrap(), 1);
        std::fs::write(dir.path().join("bad.yaml"), "pool: [").unwrap();
        let args = ProbeArgs {
            paths: vec![dir.path().join("bad.yaml")],
            json: false,
        };
        assert_eq!(run(args).await.unwrap(), 2);
    }
}
