//! Daemon settings: one YAML file plus `POOLPILOT_*` environment overrides (config crate).
//! Nested keys use `__`: `POOLPILOT_GLOBAL_BUDGET__MAX_PER_HOUR=40`. Credentials are never
//! here; policies reference them by env var name or file path.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Control-loop period.
    #[serde(default = "defaults::tick", with = "humantime_serde")]
    pub tick: Duration,
    /// HTTP listen address for /metrics, /healthz, /readyz, /status.
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// Directory (or file) of pool policies.
    #[serde(default = "defaults::policy_dir")]
    pub policy_dir: PathBuf,
    /// Where memory (cooldowns, history, spend) is persisted between restarts.
    #[serde(default = "defaults::state_path")]
    pub state_path: PathBuf,
    #[serde(default)]
    pub leader_election: Option<LeaderElection>,
    #[serde(default)]
    pub global_budget: Option<GlobalBudget>,
    /// `json` (default, for log collectors) or `text`.
    #[serde(default = "defaults::log_format")]
    pub log_format: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderElection {
    pub namespace: String,
    #[serde(default = "defaults::lease_name")]
    pub lease_name: String,
    /// Defaults to the pod name (`HOSTNAME`).
    #[serde(default)]
    pub identity: Option<String>,
    #[serde(default = "defaults::lease_duration", with = "humantime_serde")]
    pub lease_duration: Duration,
    /// Kubeconfig path; in-cluster config when absent.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalBudget {
    /// Money per hour across all pools (same currency as the policies' prices).
    pub max_per_hour: f64,
}

mod defaults {
    use super::*;
    pub fn tick() -> Duration {
        Duration::from_secs(10)
    }
    pub fn listen() -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 9464))
    }
    pub fn policy_dir() -> PathBuf {
        PathBuf::from("/etc/poolpilot/policies")
    }
    pub fn state_path() -> PathBuf {
        PathBuf::from("/var/lib/poolpilot/state.json")
    }
    pub fn log_format() -> String {
        "json".into()
    }
    pub fn lease_name() -> String {
        "poolpilot".into()
    }
    pub fn lease_duration() -> Duration {
        Duration::from_secs(15)
    }
}

/// Top-level settings keys; `POOLPILOT_*` variables naming anything else (test harness
/// variables, `POOLPILOT_CACHE`, …) are not settings and are left alone.
const KEYS: [&str; 7] = [
    "tick",
    "listen",
    "policy_dir",
    "state_path",
    "leader_election",
    "global_budget",
    "log_format",
];

/// The `POOLPILOT_*` variables that override settings.
fn settings_env(
    vars: impl Iterator<Item = (String, String)>,
) -> std::collections::HashMap<String, String> {
    vars.filter(|(name, _)| {
        name.strip_prefix("POOLPILOT_")
            .and_then(|rest| rest.split("__").next())
            .is_some_and(|top| KEYS.contains(&top.to_ascii_lowercase().as_str()))
    })
    .collect()
}

impl Settings {
    /// Reads `file` (optional) and the environment; every problem is reported.
    pub fn load(file: Option<&Path>) -> Result<Settings, Vec<String>> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            if !path.exists() {
                return Err(vec![format!("{}: no such settings file", path.display())]);
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Yaml));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("POOLPILOT")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(settings_env(std::env::vars()))),
        );
        let origin = file.map_or("environment".to_string(), |p| p.display().to_string());
        let settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| vec![format!("{origin}: {e}")])?;
        let mut errors = Vec::new();
        if settings.tick.is_zero() {
            errors.push(format!("{origin}: tick: must be longer than 0s"));
        }
        if let Some(b) = settings.global_budget
            && !(b.max_per_hour > 0.0 && b.max_per_hour.is_finite())
        {
            errors.push(format!(
                "{origin}: global_budget.max_per_hour: must be a number > 0"
            ));
        }
        if !matches!(settings.log_format.as_str(), "json" | "text") {
            errors.push(format!("{origin}: log_format: must be `json` or `text`"));
        }
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(errors)
        }
    }

    pub fn global_budget_per_hour(&self) -> Option<f64> {
        self.global_budget.map(|b| b.max_per_hour)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("poolpilot.yaml");
        std::fs::write(
            &path,
            "tick: 5s\npolicy_dir: /p\nglobal_budget: { max_per_hour: 40 }\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path)).unwrap();
        assert_eq!(s.tick, Duration::from_secs(5));
        assert_eq!(s.policy_dir, PathBuf::from("/p"));
        assert_eq!(s.global_budget_per_hour(), Some(40.0));
    }

    #[test]
    fn only_settings_keys_are_taken_from_the_environment() {
        let vars = [
            ("POOLPILOT_TICK", "5s"),
            ("POOLPILOT_GLOBAL_BUDGET__MAX_PER_HOUR", "40"),
            ("POOLPILOT_TEST_KUBECONFIG", "/tmp/k"),
            ("POOLPILOT_CACHE", "/c"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let mut kept: Vec<_> = settings_env(vars.into_iter()).into_keys().collect();
        kept.sort();
        assert_eq!(
            kept,
            ["POOLPILOT_GLOBAL_BUDGET__MAX_PER_HOUR", "POOLPILOT_TICK"]
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("poolpilot.yaml");
        std::fs::write(&path, "tik: 5s\n").unwrap();
        let err = Settings::load(Some(&path)).unwrap_err();
        assert!(err[0].contains("tik"), "{err:?}");
        std::fs::write(&path, "tick: 0s\nlog_format: xml\n").unwrap();
        assert_eq!(Settings::load(Some(&path)).unwrap_err().len(), 2);
    }
}
