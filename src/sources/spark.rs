//! Spark standalone master `GET /json/` (engine-apis.md §3). Demand in cores: cores in use on
//! alive workers + WAITING apps × `cores_per_waiting_app` + SUBMITTED drivers ×
//! `cores_per_submitted_driver`. The policy gives the per-app number because the master only
//! publishes *granted* cores (a WAITING app shows `cores: 0`).

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::error::{ParseError, SourceError, optional, parse_json, required};
use super::http::{Credentials, HttpClient, join};
use super::{MetricSource, Reading};
use crate::policy::SparkSignal;

/// What `/json/` says, reduced to the numbers the autoscaler uses.
#[derive(Debug, Clone, PartialEq)]
pub struct MasterState {
    pub cores: f64,
    pub cores_used: f64,
    pub waiting_apps: u32,
    pub running_apps: u32,
    pub submitted_drivers: u32,
    pub alive_workers: u32,
    pub decommissioned_workers: u32,
    pub dead_workers: u32,
}

impl MasterState {
    pub fn cores_free(&self) -> f64 {
        (self.cores - self.cores_used).max(0.0)
    }

    pub fn demand(&self, cores_per_waiting_app: u32, cores_per_submitted_driver: u32) -> f64 {
        self.cores_used
            + f64::from(self.waiting_apps) * f64::from(cores_per_waiting_app)
            + f64::from(self.submitted_drivers) * f64::from(cores_per_submitted_driver)
    }
}

#[derive(Deserialize)]
struct RawMaster {
    status: Option<String>,
    cores: Option<f64>,
    coresused: Option<f64>,
    /// Absent in old releases: counted from `workers[]` then.
    aliveworkers: Option<f64>,
    #[serde(default)]
    workers: Option<Vec<RawWorker>>,
    activeapps: Option<Vec<RawApp>>,
    /// Absent in old releases: no cluster-mode drivers then.
    #[serde(default)]
    activedrivers: Option<Vec<RawApp>>,
}

#[derive(Deserialize)]
struct RawWorker {
    state: Option<String>,
}

#[derive(Deserialize)]
struct RawApp {
    state: Option<String>,
}

/// Parses the master's `/json/` body. A master that is not `ALIVE` (a standby in an HA pair)
/// knows no apps, so its zeros would read as "no demand": that is an error, not a reading.
pub fn parse_master(body: &[u8]) -> Result<MasterState, ParseError> {
    let raw: RawMaster = parse_json(body)?;
    match raw.status.as_deref() {
        Some("ALIVE") => {}
        Some(other) => {
            return Err(ParseError(format!(
                "master status is {other}, not ALIVE (standby or recovering)"
            )));
        }
        None => return Err(ParseError("master `status` is missing".into())),
    }
    let apps = raw
        .activeapps
        .ok_or_else(|| ParseError("`activeapps` is missing".into()))?;
    let count = |items: &[RawApp], state: &str| {
        items
            .iter()
            .filter(|a| a.state.as_deref() == Some(state))
            .count() as u32
    };
    let drivers = raw.activedrivers.unwrap_or_default();
    let workers = raw.workers.unwrap_or_default();
    let workers_in = |state: &str| {
        workers
            .iter()
            .filter(|w| w.state.as_deref() == Some(state))
            .count() as u32
    };
    Ok(MasterState {
        cores: required("cores", raw.cores)?,
        cores_used: required("coresused", raw.coresused)?,
        waiting_apps: count(&apps, "WAITING"),
        running_apps: count(&apps, "RUNNING"),
        submitted_drivers: count(&drivers, "SUBMITTED"),
        alive_workers: match raw.aliveworkers {
            Some(n) => optional("aliveworkers", Some(n))? as u32,
            None => workers_in("ALIVE"),
        },
        decommissioned_workers: workers_in("DECOMMISSIONED"),
        dead_workers: workers_in("DEAD"),
    })
}

pub struct SparkSource {
    name: String,
    spec: SparkSignal,
    http: HttpClient,
}

impl SparkSource {
    pub fn new(spec: &SparkSignal) -> SparkSource {
        SparkSource {
            name: format!("spark {}", spec.master),
            spec: spec.clone(),
            http: HttpClient::new(&spec.http),
        }
    }
}

#[async_trait]
impl MetricSource for SparkSource {
    async fn poll(&self) -> Result<Reading, SourceError> {
        // `/json` without the slash answers 301 (real-peers.md §1).
        let url = join(&self.spec.master, "/json/")?;
        let body = self
            .http
            .get_ok(&url, HeaderMap::new(), Credentials::Options)
            .await?;
        let state = parse_master(&body).map_err(|e| e.at(url.as_str()))?;
        Ok(Reading {
            labels: Vec::new(),
            demand: state.demand(
                self.spec.cores_per_waiting_app,
                self.spec.cores_per_submitted_driver,
            ),
            raw: vec![
                ("cores_used", state.cores_used),
                ("cores_free", state.cores_free()),
                ("cores_total", state.cores),
                ("waiting_apps", f64::from(state.waiting_apps)),
                ("running_apps", f64::from(state.running_apps)),
                ("submitted_drivers", f64::from(state.submitted_drivers)),
                ("alive_workers", f64::from(state.alive_workers)),
                (
                    "decommissioned_workers",
                    f64::from(state.decommissioned_workers),
                ),
                ("dead_workers", f64::from(state.dead_workers)),
            ],
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
    fn idle_master_with_two_workers() {
        let s = parse_master(&fixture("spark/idle-2-workers.json")).unwrap();
        assert_eq!((s.cores, s.cores_used, s.cores_free()), (4.0, 0.0, 4.0));
        assert_eq!(
            (s.waiting_apps, s.submitted_drivers, s.alive_workers),
            (0, 0, 2)
        );
        assert_eq!(s.demand(2, 1), 0.0);
    }

    #[test]
    fn busy_master_counts_waiting_apps_and_submitted_drivers() {
        let s = parse_master(&fixture("spark/busy-waiting-apps-submitted-driver.json")).unwrap();
        assert_eq!((s.cores, s.cores_used, s.cores_free()), (4.0, 4.0, 0.0));
        assert_eq!(
            (s.running_apps, s.waiting_apps, s.submitted_drivers),
            (1, 1, 1)
        );
        // 4 in use + 1 waiting app × 2 + 1 submitted driver × 8
        assert_eq!(s.demand(2, 8), 14.0);
    }

    #[test]
    fn decommissioned_worker_leaves_the_totals() {
        let s = parse_master(&fixture("spark/one-worker-decommissioned.json")).unwrap();
        assert_eq!(
            (s.alive_workers, s.decommissioned_workers, s.dead_workers),
            (1, 1, 0)
        );
        assert_eq!((s.cores, s.cores_used), (2.0, 2.0));
    }

    #[test]
    fn old_master_without_drivers_and_unknown_fields_parses() {
        let body = br#"{"status":"ALIVE","cores":8,"coresused":3,"activeapps":[{"state":"WAITING","x":1}],"new":{}}"#;
        let s = parse_master(body).unwrap();
        assert_eq!(
            (s.submitted_drivers, s.waiting_apps, s.alive_workers),
            (0, 1, 0)
        );
    }

    #[test]
    fn standby_master_is_an_error_not_zero_demand() {
        let body = br#"{"status":"STANDBY","cores":0,"coresused":0,"activeapps":[]}"#;
        assert!(parse_master(body).unwrap_err().0.contains("STANDBY"));
    }

    #[test]
    fn wrong_types_and_missing_counters_are_malformed() {
        assert!(
            parse_master(br#"{"status":"ALIVE","cores":"4","coresused":0,"activeapps":[]}"#)
                .is_err()
        );
        assert!(parse_master(br#"{"status":"ALIVE","cores":4,"activeapps":[]}"#).is_err());
        assert!(parse_master(br#"{"status":"ALIVE","cores":4,"coresused":0}"#).is_err());
        assert!(parse_master(br#"[]"#).is_err());
    }
}
