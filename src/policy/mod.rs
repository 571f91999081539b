//! Policy files: the ops-facing YAML model ([`model`]), loading with source positions
//! ([`yaml`]), and validation that reports every error at once ([`validate`]). The result is a
//! [`Policy`]: the file's content plus compiled schedules, ready for the engine.

mod checks;
pub mod errors;
pub mod model;
pub mod names;
mod problem;
pub mod ranges;
pub mod schedule;
pub mod signals;
pub mod source;
pub mod validate;
pub mod yaml;

use std::path::{Path, PathBuf};

pub use errors::{PolicyError, PolicyErrors};
pub use model::*;
pub use schedule::Schedule;
pub use source::{DrainTarget, SourceKind, SourceSpec};

/// A validated pool policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Where it came from (file path or `<inline>`), for messages.
    pub origin: String,
    pub spec: PolicyFile,
    /// `spec.schedules`, compiled (same order).
    pub schedules: Vec<Schedule>,
}

impl Policy {
    pub fn name(&self) -> &str {
        &self.spec.pool
    }

    pub fn price_per_worker_hour(&self) -> f64 {
        self.spec.cost.as_ref().map_or(0.0, |c| c.per_worker_hour)
    }
}

/// Loads and validates one policy from YAML text. `origin` names it in errors.
pub fn load_str(text: &str, origin: &str) -> Result<Policy, PolicyErrors> {
    let doc = yaml::parse(text).map_err(|e| {
        PolicyErrors(vec![PolicyError {
            file: origin.to_string(),
            line: Some(e.position.line),
            column: Some(e.position.column),
            field: String::new(),
            message: e.message,
            hint: None,
        }])
    })?;
    validate::deserialize_and_validate(&doc, origin)
}

/// Loads and validates one policy file.
pub fn load_file(path: &Path) -> Result<Policy, PolicyErrors> {
    let origin = path.display().to_string();
    let text = yaml::read_file(path)
        .map_err(|message| PolicyErrors(vec![PolicyError::whole_file(&origin, message)]))?;
    load_str(&text, &origin)
}

/// The `.yaml`/`.yml` files named by `paths` (files as given, directories one level deep,
/// sorted; hidden entries such as Kubernetes ConfigMap `..data` links skipped).
pub fn policy_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, PolicyErrors> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.is_dir() {
            match std::fs::read_dir(path) {
                Ok(entries) => {
                    let mut found: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| is_policy_file(p))
                        .collect();
                    found.sort();
                    files.extend(found);
                }
                Err(e) => errors.push(PolicyError::whole_file(
                    &path.display().to_string(),
                    format!("cannot list: {e}"),
                )),
            }
        } else if path.exists() {
            files.push(path.clone());
        } else {
            errors.push(PolicyError::whole_file(
                &path.display().to_string(),
                "no such file or directory".into(),
            ));
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(PolicyErrors(errors))
    }
}

fn is_policy_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml")) && p.is_file()
}

/// Loads a whole policy set: every file, then cross-file checks (unique pool names, the sum
/// of minimums' cost within `global_budget_per_hour`). Every error of every file is returned.
pub fn load_set(
    paths: &[PathBuf],
    global_budget_per_hour: Option<f64>,
) -> Result<Vec<Policy>, PolicyErrors> {
    let files = policy_files(paths)?;
    let mut policies = Vec::new();
    let mut errors = Vec::new();
    for file in &files {
        match load_file(file) {
            Ok(p) => policies.push(p),
            Err(e) => errors.extend(e.0),
        }
    }
    errors.extend(validate::check_set(&policies, global_budget_per_hour));
    if errors.is_empty() {
        Ok(policies)
    } else {
        Err(PolicyErrors(errors))
    }
}

/// The JSON Schema of a policy file (for editors).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(PolicyFile)).unwrap_or_default()
}
