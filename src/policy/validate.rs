//! From a parsed YAML document to a [`Policy`], collecting every error: structural ones (serde,
//! retried after removing each offending node so later errors surface too) and semantic ones.

use std::collections::{BTreeMap, HashSet};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Policy;
use super::checks::check_file;
use super::errors::{PolicyError, PolicyErrors};
use super::model::PolicyFile;
use super::yaml::Document;

pub(crate) fn deserialize_and_validate(
    doc: &Document,
    origin: &str,
) -> Result<Policy, PolicyErrors> {
    let (file, mut errors) = deserialize_all::<PolicyFile>(doc, origin);
    let Some(file) = file else {
        return Err(PolicyErrors(errors));
    };
    let (schedules, semantic) = check_file(&file);
    errors.extend(located(doc, origin, semantic));
    if errors.is_empty() {
        Ok(Policy {
            origin: origin.to_string(),
            spec: file,
            schedules,
        })
    } else {
        Err(PolicyErrors(errors))
    }
}

/// Deserializes `doc` as a `T`, collecting every structural error: each serde error is
/// reported (with line, column and a did-you-mean for unknown keys and values), the node is
/// removed and deserialization retried, so later errors surface too. The value comes back
/// whenever what is left deserializes, so semantic checks can run on it as well; it is valid
/// only when there is no error. Shared by policies, settings and scenarios.
pub(crate) fn deserialize_all<T: DeserializeOwned>(
    doc: &Document,
    origin: &str,
) -> (Option<T>, Vec<PolicyError>) {
    if doc.value.is_null() {
        return (
            None,
            vec![PolicyError::whole_file(
                origin,
                "the file is empty (no YAML document)".into(),
            )],
        );
    }
    let mut value = doc.value.clone();
    let mut errors = Vec::new();
    let mut removed: HashSet<String> = HashSet::new();
    loop {
        match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(parsed) => return (Some(parsed), errors),
            Err(err) => {
                let path = path_string(err.path());
                let message = err.inner().to_string();
                let (field, text, hint) = describe(&path, &message);
                if text.starts_with("missing field") && removed.contains(&field) {
                    return (None, errors); // already reported why that field was dropped
                }
                errors.extend(located(doc, origin, vec![(field.clone(), text, hint)]));
                if errors.len() > 64 || !remove_path(&mut value, &field) {
                    return (None, errors);
                }
                removed.insert(field);
            }
        }
    }
}

/// Problems (field, message, hint) with the file and the field's line and column.
pub(crate) fn located(
    doc: &Document,
    origin: &str,
    problems: Vec<(String, String, Option<String>)>,
) -> Vec<PolicyError> {
    problems
        .into_iter()
        .map(|(field, message, hint)| {
            let pos = doc.position(&field);
            PolicyError {
                file: origin.to_string(),
                line: pos.map(|p| p.line),
                column: pos.map(|p| p.column),
                field,
                message,
                hint,
            }
        })
        .collect()
}

fn path_string(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Turns serde's message into (field path, message, hint).
fn describe(path: &str, message: &str) -> (String, String, Option<String>) {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or("");
        let expected = backticked(rest.split_once("expected").map_or("", |x| x.1));
        let field = if path.ends_with(name) {
            path.to_string()
        } else {
            join(path, name)
        };
        let hint = removed_field(name).map(str::to_string);
        return (
            field,
            format!("unknown field `{name}`"),
            hint.or_else(|| suggestion(name, &expected)),
        );
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let name = rest.split('`').next().unwrap_or("");
        let expected = backticked(rest.split_once("expected").map_or("", |x| x.1));
        let hint = suggestion(name, &expected).or_else(|| {
            (!expected.is_empty()).then(|| format!("expected one of: {}", expected.join(", ")))
        });
        return (path.to_string(), format!("unknown value `{name}`"), hint);
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or("");
        return (join(path, name), format!("missing field `{name}`"), None);
    }
    let hint = message
        .contains("expected a duration")
        .then(|| "durations look like `90s`, `5m`, `1h 30m`".to_string());
    (path.to_string(), message.to_string(), hint)
}

fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// `did you mean `x`?` for the closest of `expected`, when one is close.
pub(crate) fn suggestion(name: &str, expected: &[String]) -> Option<String> {
    expected
        .iter()
        .map(|e| (strsim::jaro_winkler(name, e), e))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, e)| format!("did you mean `{e}`?"))
}

/// Fields earlier versions accepted, and what to do instead.
fn removed_field(name: &str) -> Option<&'static str> {
    match name {
        "stale_after" => Some(
            "`stale_after` was removed: every reading is taken in the tick that uses it, and a \
             failed or timed-out poll already counts as missing; delete the line",
        ),
        _ => None,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Removes the node at a dotted/indexed path; false when there is nothing to remove.
fn remove_path(value: &mut Value, path: &str) -> bool {
    let mut parts: Vec<Seg> = Vec::new();
    for dotted in path.split('.') {
        let mut rest = dotted;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                parts.push(Seg::Key(rest[..i].to_string()));
            }
            rest = &rest[i..];
            while let Some(end) = rest.find(']') {
                parts.push(Seg::Index(rest[1..end].parse().unwrap_or(usize::MAX)));
                rest = &rest[end + 1..];
            }
        } else if !rest.is_empty() {
            parts.push(Seg::Key(rest.to_string()));
        }
    }
    let Some(last) = parts.pop() else {
        return false;
    };
    let mut node = value;
    for p in &parts {
        node = match (p, node) {
            (Seg::Key(k), Value::Object(m)) => match m.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Seg::Index(i), Value::Array(a)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, node) {
        (Seg::Key(k), Value::Object(m)) => m.remove(&k).is_some(),
        (Seg::Index(i), Value::Array(a)) if i < a.len() => {
            a[i] = Value::Null;
            true
        }
        _ => false,
    }
}

enum Seg {
    Key(String),
    Index(usize),
}

/// Cross-file checks over a whole set.
pub(crate) fn check_set(
    policies: &[Policy],
    global_budget_per_hour: Option<f64>,
) -> Vec<PolicyError> {
    let mut errors = Vec::new();
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for p in policies {
        if let Some(first) = seen.insert(p.name(), &p.origin) {
            errors.push(PolicyError {
                file: p.origin.clone(),
                line: None,
                column: None,
                field: "pool".into(),
                message: format!("pool name `{}` is already used by {first}", p.name()),
                hint: Some("pool names must be unique across the policy directory".into()),
            });
        }
    }
    if let Some(budget) = global_budget_per_hour {
        let floor: f64 = policies
            .iter()
            .map(|p| f64::from(p.spec.bounds.min) * p.price_per_worker_hour())
            .sum();
        if floor > budget + 1e-9 {
            errors.push(PolicyError::whole_file(
                "<policy set>",
                format!("the pools' minimums cost {floor:.2}/h, more than the global budget of {budget:.2}/h"),
            ));
        }
    }
    errors
}
