//! Daemon settings: one YAML file plus `POOLPILOT_*` environment overrides. Nested keys use
//! `__`: `POOLPILOT_GLOBAL_BUDGET__MAX_PER_HOUR=40`. Credentials are never here; policies
//! reference them by env var name or file path. Read and validated with the policy machinery
//! (`policy::yaml`, `policy::validate`): the same limits, every error at once with line and
//! column, did-you-mean for unknown keys and for unknown `POOLPILOT_*` variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::policy::{names, validate, yaml};

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
    /// Name of the environment variable holding the bearer token that lets non-loopback
    /// callers use the admin endpoint (`poolpilot pause`/`resume`). Unset: loopback only.
    #[serde(default)]
    pub admin_token_env: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderElection {
    /// Whether to elect at all; `poolpilot run --leader-election` overrides it.
    #[serde(default)]
    pub mode: LeaderMode,
    /// Namespace of the Lease; required unless `mode: off`.
    #[serde(default)]
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

/// When a `leader_election` block takes effect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LeaderMode {
    /// On inside a Kubernetes cluster (`KUBERNETES_SERVICE_HOST` set) or with `kubeconfig`;
    /// off elsewhere (a laptop, a checkout), said in one log line.
    #[default]
    Auto,
    /// Always: a start-up error when the API server cannot be reached.
    On,
    /// Never: this instance actuates alone.
    Off,
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

/// Top-level settings keys: `POOLPILOT_<KEY>` (nested: `POOLPILOT_<KEY>__<FIELD>`) sets one.
const KEYS: [&str; 8] = [
    "tick",
    "listen",
    "policy_dir",
    "state_path",
    "leader_election",
    "global_budget",
    "log_format",
    "admin_token_env",
];

/// `POOLPILOT_*` variables that are not settings but are read on purpose elsewhere (the test
/// harness): no warning for these.
const NOT_SETTINGS: [&str; 4] = [
    "POOLPILOT_PEERS",
    "POOLPILOT_TEST_",
    // Read by the CLI (`status`, `pause`, `resume`), not by the daemon.
    "POOLPILOT_URL",
    "POOLPILOT_ADMIN_TOKEN",
];

/// Settings, and warnings for the operator (unknown `POOLPILOT_*` variables). The daemon
/// logs the warnings once logging is set up, which needs the settings first.
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub warnings: Vec<String>,
}

impl Settings {
    /// Reads `file` (optional) and the environment; every problem is reported, each naming
    /// the file, line and column, or the environment variable.
    /// Where the daemon listens when its settings do not say (`listen`).
    pub fn default_listen() -> SocketAddr {
        defaults::listen()
    }

    pub fn load(file: Option<&Path>) -> Result<Loaded, Vec<String>> {
        load_from(file, std::env::vars())
    }

    pub fn global_budget_per_hour(&self) -> Option<f64> {
        self.global_budget.map(|b| b.max_per_hour)
    }

    /// The admin endpoint's bearer token, read from the variable `admin_token_env` names.
    /// Named but unset or empty is an error: the operator meant to allow remote callers.
    pub fn admin_token(&self) -> Result<Option<String>, String> {
        let Some(var) = &self.admin_token_env else {
            return Ok(None);
        };
        match std::env::var(var) {
            Ok(token) if !token.trim().is_empty() => Ok(Some(token.trim().to_string())),
            _ => Err(format!(
                "the variable {var} is not set or empty; set it to the token, or remove admin_token_env (loopback callers only)"
            )),
        }
    }
}

fn load_from(
    file: Option<&Path>,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<Loaded, Vec<String>> {
    let origin = file.map_or("<environment>".to_string(), |p| p.display().to_string());
    let mut doc = match file {
        Some(path) => {
            let text = yaml::read_file(path).map_err(|m| vec![format!("{origin}: {m}")])?;
            yaml::parse(&text).map_err(|e| {
                vec![format!(
                    "{origin}:{}:{}: {}",
                    e.position.line, e.position.column, e.message
                )]
            })?
        }
        None => yaml::Document {
            value: Value::Null,
            positions: Default::default(),
        },
    };
    if doc.value.is_null() {
        doc.value = Value::Object(Map::new()); // no file, or one of comments only: defaults
    }
    let (from_env, warnings) = overlay_env(&mut doc.value, vars);
    let (settings, mut errors) = validate::deserialize_all::<Settings>(&doc, &origin);
    if let Some(s) = &settings {
        errors.extend(validate::located(&doc, &origin, check(s)));
    }
    for error in &mut errors {
        let set_by = from_env
            .iter()
            .find(|(path, _)| error.field == *path || error.field.starts_with(&format!("{path}.")));
        if let Some((_, var)) = set_by {
            error.file = format!("environment variable {var}");
            (error.line, error.column) = (None, None);
        }
    }
    match settings {
        Some(settings) if errors.is_empty() => Ok(Loaded { settings, warnings }),
        _ => Err(errors.iter().map(ToString::to_string).collect()),
    }
}

/// Writes each settings variable into `value` at its field path; returns (path, variable)
/// for every one applied and a warning for each `POOLPILOT_*` variable that is no setting.
/// The `config` crate's `Environment` source reads the variables (prefix, `__` nesting,
/// lower-cased keys); they are laid over the located YAML document rather than merged by
/// `config` so that every error still names its file, line and column, or its variable.
fn overlay_env(
    value: &mut Value,
    vars: impl Iterator<Item = (String, String)>,
) -> (Vec<(String, String)>, Vec<String>) {
    use config::Source as _;
    let mut applied = Vec::new();
    let mut warnings = Vec::new();
    let source: config::Map<String, String> = vars
        .filter(|(name, _)| name.starts_with("POOLPILOT_"))
        .collect();
    let environment = config::Environment::with_prefix("POOLPILOT")
        .prefix_separator("_")
        .separator("__")
        .source(Some(source));
    let mut collected: Vec<(String, String)> = match environment.collect() {
        Ok(map) => map
            .into_iter()
            .map(|(key, v)| (key, v.into_string().unwrap_or_default()))
            .collect(),
        Err(e) => {
            warnings.push(format!("environment variables POOLPILOT_* not read: {e}"));
            Vec::new()
        }
    };
    collected.sort();
    for (key, text) in collected {
        let path: Vec<String> = key.split('.').map(str::to_string).collect();
        let name = format!("POOLPILOT_{}", path.join("__").to_ascii_uppercase());
        if !KEYS.contains(&path[0].as_str()) {
            if !NOT_SETTINGS.iter().any(|n| name.starts_with(n)) {
                warnings.push(unknown_variable(&name, &path[0]));
            }
            continue;
        }
        let mut node = &mut *value;
        for key in &path[..path.len() - 1] {
            let Value::Object(map) = node else { break };
            node = map
                .entry(key.clone())
                .and_modify(|v| {
                    if !v.is_object() {
                        *v = Value::Object(Map::new());
                    }
                })
                .or_insert_with(|| Value::Object(Map::new()));
        }
        if let Value::Object(map) = node {
            map.insert(path[path.len() - 1].clone(), yaml::scalar(&text));
        }
        applied.push((path.join("."), name));
    }
    (applied, warnings)
}

fn unknown_variable(name: &str, key: &str) -> String {
    let keys: Vec<String> = KEYS.iter().map(|k| k.to_string()).collect();
    let hint = match validate::suggestion(key, &keys) {
        Some(_) => {
            let closest = keys
                .iter()
                .max_by(|a, b| {
                    strsim::jaro_winkler(key, a).total_cmp(&strsim::jaro_winkler(key, b))
                })
                .map(|k| format!("POOLPILOT_{}", k.to_ascii_uppercase()))
                .unwrap_or_default();
            format!("did you mean `{closest}`?")
        }
        None => format!(
            "settings variables are {}",
            keys.iter()
                .map(|k| format!("POOLPILOT_{}", k.to_ascii_uppercase()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!("environment variable {name} is not a setting and is ignored ({hint})")
}

/// Semantic checks: (field, message, hint), like a policy's.
fn check(s: &Settings) -> Vec<(String, String, Option<String>)> {
    let mut out = Vec::new();
    let mut push = |field: &str, message: String| out.push((field.to_string(), message, None));
    let (second, hour) = (Duration::from_secs(1), Duration::from_secs(3600));
    if s.tick < second || s.tick > hour {
        push("tick", "must be from 1s to 1h".into());
    }
    if let Some(b) = s.global_budget
        && !(b.max_per_hour > 0.0 && b.max_per_hour <= 1e12)
    {
        push(
            "global_budget.max_per_hour",
            "must be a number > 0 (and at most 1e12)".into(),
        );
    }
    if !matches!(s.log_format.as_str(), "json" | "text") {
        push("log_format", "must be `json` or `text`".into());
    }
    if let Err(why) = crate::daemon::state::check_path(&s.state_path) {
        push("state_path", why);
    }
    if let Some(l) = &s.leader_election {
        if l.mode != LeaderMode::Off
            && let Err(why) = names::dns_label(&l.namespace)
        {
            push(
                "leader_election.namespace",
                if l.namespace.is_empty() {
                    "required unless `mode: off` (the namespace of the Lease)".into()
                } else {
                    why
                },
            );
        }
        if let Err(why) = names::dns_subdomain(&l.lease_name) {
            push("leader_election.lease_name", why);
        }
        if l.identity
            .as_ref()
            .is_some_and(|i| i.is_empty() || i.len() > 253)
        {
            push(
                "leader_election.identity",
                "must be 1 to 253 characters".into(),
            );
        }
        if l.lease_duration < Duration::from_secs(2) || l.lease_duration > hour {
            push(
                "leader_election.lease_duration",
                "must be from 2s to 1h".into(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("poolpilot.yaml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn file_then_env_overrides() {
        let (_dir, path) = write("tick: 5s\npolicy_dir: /p\nglobal_budget: { max_per_hour: 40 }\n");
        let s = load_from(Some(&path), env(&[])).unwrap().settings;
        assert_eq!(s.tick, Duration::from_secs(5));
        assert_eq!(s.policy_dir, PathBuf::from("/p"));
        assert_eq!(s.global_budget_per_hour(), Some(40.0));
        let vars = env(&[
            ("POOLPILOT_TICK", "7s"),
            ("POOLPILOT_GLOBAL_BUDGET__MAX_PER_HOUR", "12.5"),
            ("PATH", "/bin"),
        ]);
        let s = load_from(Some(&path), vars).unwrap().settings;
        assert_eq!(s.tick, Duration::from_secs(7));
        assert_eq!(s.global_budget_per_hour(), Some(12.5));
    }

    /// Leader election can be switched off by the environment, with or without a block in the
    /// file; a namespace is needed only when it may be on.
    #[test]
    fn leader_election_mode_from_the_file_or_the_environment() {
        let (_dir, path) = write("leader_election: { namespace: data }\n");
        let s = load_from(Some(&path), env(&[])).unwrap().settings;
        assert_eq!(s.leader_election.unwrap().mode, LeaderMode::Auto);
        let off = env(&[("POOLPILOT_LEADER_ELECTION__MODE", "off")]);
        let s = load_from(Some(&path), off).unwrap().settings;
        assert_eq!(s.leader_election.unwrap().mode, LeaderMode::Off);
        let off = env(&[("POOLPILOT_LEADER_ELECTION__MODE", "off")]);
        assert!(load_from(None, off).is_ok(), "no block in the file");
        let (_dir, path) = write("leader_election: { mode: on }\n");
        let errors = load_from(Some(&path), env(&[])).unwrap_err();
        assert!(
            errors.iter().any(
                |e| e.contains("leader_election.namespace") && e.contains("unless `mode: off`")
            ),
            "{errors:?}"
        );
        let (_dir, path) = write("leader_election: { namespace: data, mode: sometimes }\n");
        assert!(load_from(Some(&path), env(&[])).is_err());
    }

    /// What ships loads as it is: the in-cluster settings and the checkout's.
    #[test]
    fn the_shipped_settings_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for file in ["deploy/poolpilot.yaml", "examples/local.yaml"] {
            let loaded = load_from(Some(&root.join(file)), env(&[]));
            assert!(loaded.is_ok(), "{file}: {:?}", loaded.err());
        }
    }

    #[test]
    fn unknown_variables_are_warned_with_the_closest_setting() {
        let vars = env(&[
            ("POOLPILOT_TIK", "5s"),
            ("POOLPILOT_COLOUR", "red"),
            ("POOLPILOT_PEERS", "kube"),
            ("POOLPILOT_TEST_KUBECONFIG", "/tmp/k"),
        ]);
        let loaded = load_from(None, vars).unwrap();
        assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
        assert!(
            loaded.warnings.iter().any(
                |w| w.contains("POOLPILOT_TIK") && w.contains("did you mean `POOLPILOT_TICK`?")
            ),
            "{:?}",
            loaded.warnings
        );
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.contains("POOLPILOT_COLOUR"))
        );
    }

    #[test]
    fn every_error_at_once_with_line_column_and_did_you_mean() {
        let (_dir, path) = write("tik: 5s\nlog_format: xml\nglobal_budget: { max_per_hour: -1 }\n");
        let errors = load_from(Some(&path), env(&[])).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].contains("poolpilot.yaml:1:1: tik: unknown field `tik`"),
            "{errors:?}"
        );
        assert!(errors[0].contains("did you mean `tick`?"), "{errors:?}");
        let (_dir, path) =
            write("tick: 1ns\nlog_format: xml\nglobal_budget: { max_per_hour: -1 }\n");
        let errors = load_from(Some(&path), env(&[])).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors
                .iter()
                .any(|e| e.contains("poolpilot.yaml:2:1: log_format")),
            "{errors:?}"
        );
    }

    #[test]
    fn an_environment_error_names_the_variable() {
        let vars = env(&[("POOLPILOT_TICK", "18446744073709551615s")]);
        let errors = load_from(None, vars).unwrap_err();
        assert!(
            errors[0].starts_with("environment variable POOLPILOT_TICK: tick:"),
            "{errors:?}"
        );
        let vars = env(&[("POOLPILOT_GLOBAL_BUDGET__MAX_PR_HOUR", "3")]);
        let errors = load_from(None, vars).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("POOLPILOT_GLOBAL_BUDGET__MAX_PR_HOUR")
                    && e.contains("did you mean `max_per_hour`?")),
            "{errors:?}"
        );
    }

    #[test]
    fn durations_names_and_the_state_path_have_ranges() {
        let (_dir, path) = write(
            "tick: 18446744073709551615s\nstate_path: /dev/null\n\
             leader_election: { namespace: Not A Valid NS!, lease_name: -poolpilot, lease_duration: 1ns }\n",
        );
        let errors = load_from(Some(&path), env(&[])).unwrap_err().join("\n");
        for field in [
            "tick",
            "state_path",
            "leader_election.namespace",
            "leader_election.lease_name",
            "leader_election.lease_duration",
        ] {
            assert!(
                errors.contains(&format!(": {field}: ")),
                "{field}: {errors}"
            );
        }
        let (_dir, path) = write("state_path: /\n");
        assert!(load_from(Some(&path), env(&[])).is_err());
    }

    #[test]
    fn alias_bombs_second_documents_and_huge_files_are_refused() {
        let mut bomb = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
        for (name, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
            .iter()
            .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
        {
            bomb.push_str(&format!("{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        }
        let (_dir, path) = write(&bomb);
        let errors = load_from(Some(&path), env(&[])).unwrap_err();
        assert!(errors[0].contains("expands to more than"), "{errors:?}");
        let (_dir, path) = write("tick: 5s\n---\ntick: 6s\n");
        let errors = load_from(Some(&path), env(&[])).unwrap_err();
        assert!(
            errors[0].contains(":2:1: a second YAML document"),
            "{errors:?}"
        );
        let (_dir, path) = write(&format!("tick: 5s\n#{}\n", "x".repeat(2 << 20)));
        let errors = load_from(Some(&path), env(&[])).unwrap_err();
        assert!(errors[0].contains("larger than 1024 KiB"), "{errors:?}");
    }

    #[test]
    fn an_empty_file_means_defaults() {
        let (_dir, path) = write("# all from the environment\n");
        let s = load_from(Some(&path), env(&[])).unwrap().settings;
        assert_eq!(s.tick, Duration::from_secs(10));
    }
}
