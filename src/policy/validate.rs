//! From a parsed YAML document to a [`Policy`], collecting every error: structural ones (serde,
//! retried after removing each offending node so later errors surface too) and semantic ones.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::Policy;
use super::errors::{PolicyError, PolicyErrors};
use super::model::*;
use super::schedule::Schedule;
use super::yaml::Document;

/// Longest accepted stabilization window and rate-limit period (the HPA's API limits).
const MAX_WINDOW_SECS: u64 = 3600;
const MAX_PERIOD_SECS: u64 = 1800;

pub(crate) fn deserialize_and_validate(
    doc: &Document,
    origin: &str,
) -> Result<Policy, PolicyErrors> {
    let mut value = doc.value.clone();
    let mut errors = Vec::new();
    let mut removed: HashSet<String> = HashSet::new();
    let file = loop {
        match serde_path_to_error::deserialize::<_, PolicyFile>(&value) {
            Ok(file) => break Some(file),
            Err(err) => {
                let path = path_string(err.path());
                let message = err.inner().to_string();
                let (field, text, hint) = describe(&path, &message);
                if text.starts_with("missing field") && removed.contains(&field) {
                    break None; // already reported why that field was dropped
                }
                let pos = doc.position(&field);
                errors.push(PolicyError {
                    file: origin.to_string(),
                    line: pos.map(|p| p.line),
                    column: pos.map(|p| p.column),
                    field: field.clone(),
                    message: text,
                    hint,
                });
                if errors.len() > 64 || !remove_path(&mut value, &field) {
                    break None;
                }
                removed.insert(field);
            }
        }
    };
    let Some(file) = file else {
        return Err(PolicyErrors(errors));
    };
    let (schedules, semantic) = check_file(&file);
    for (field, message, hint) in semantic {
        let pos = doc.position(&field);
        errors.push(PolicyError {
            file: origin.to_string(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            field,
            message,
            hint,
        });
    }
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
        return (
            field,
            format!("unknown field `{name}`"),
            suggestion(name, &expected),
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

fn suggestion(name: &str, expected: &[String]) -> Option<String> {
    expected
        .iter()
        .map(|e| (strsim::jaro_winkler(name, e), e))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, e)| format!("did you mean `{e}`?"))
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

type Problem = (String, String, Option<String>);

fn problem(field: impl Into<String>, message: impl Into<String>) -> Problem {
    (field.into(), message.into(), None)
}

/// Semantic checks of one file; returns compiled schedules and every problem found.
fn check_file(f: &PolicyFile) -> (Vec<Schedule>, Vec<Problem>) {
    let mut out = Vec::new();
    if f.pool.is_empty()
        || !f
            .pool
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        out.push(problem("pool", "must be non-empty and use only letters, digits, `-`, `_`, `.` (it becomes a metric label)"));
    }
    if f.signals.is_empty() {
        out.push(problem("signals", "at least one signal is required"));
    }
    for (i, s) in f.signals.iter().enumerate() {
        check_signal(&format!("signals[{i}]"), s, &mut out);
    }
    check_workers(&f.workers, &mut out);
    let b = f.bounds;
    if b.min > b.max {
        out.push((
            "bounds.min".to_string(),
            format!("min ({}) is greater than max ({})", b.min, b.max),
            None,
        ));
    }
    if b.max == 0 {
        out.push(problem("bounds.max", "must be at least 1"));
    }
    if b.min == 0 && f.scale_to_zero.is_none() {
        out.push((
            "bounds.min".into(),
            "0 allows scale-to-zero, which must be enabled explicitly".into(),
            Some("add `scale_to_zero: { activation_threshold: 0 }`".into()),
        ));
    }
    if let Some(z) = f.scale_to_zero
        && !(z.activation_threshold >= 0.0 && z.activation_threshold.is_finite())
    {
        out.push(problem(
            "scale_to_zero.activation_threshold",
            "must be a finite number >= 0",
        ));
    }
    if !(0.0..1.0).contains(&f.tolerance) {
        out.push(problem(
            "tolerance",
            "must be >= 0 and < 1 (a ratio, HPA default 0.1)",
        ));
    }
    check_step(
        "scale_up",
        &f.scale_up.max_step,
        f.scale_up.stabilization,
        &mut out,
    );
    check_step(
        "scale_down",
        &f.scale_down.max_step,
        f.scale_down.stabilization,
        &mut out,
    );
    if f.scale_down.drain.timeout.is_zero() {
        out.push(problem(
            "scale_down.drain.timeout",
            "must be longer than 0s",
        ));
    }
    check_drain_method(f, &mut out);
    if let Some(c) = &f.cost {
        if !(c.per_worker_hour >= 0.0 && c.per_worker_hour.is_finite()) {
            out.push(problem(
                "cost.per_worker_hour",
                "must be a finite number >= 0",
            ));
        }
        if let Some(max) = c.max_per_hour {
            if !(max > 0.0 && max.is_finite()) {
                out.push(problem("cost.max_per_hour", "must be a finite number > 0"));
            } else if c.per_worker_hour > 0.0 {
                let cap = (max / c.per_worker_hour + 1e-9).floor() as u64;
                if cap < u64::from(b.min) {
                    out.push((
                        "cost.max_per_hour".into(),
                        format!("allows only {cap} workers, below bounds.min ({})", b.min),
                        Some(format!(
                            "raise it to at least {:.2}",
                            f64::from(b.min) * c.per_worker_hour
                        )),
                    ));
                }
            }
        }
    }
    let mut schedules = Vec::new();
    for (i, s) in f.schedules.iter().enumerate() {
        match Schedule::compile(&s.cron, &s.timezone, s.duration, s.min) {
            Ok(compiled) => schedules.push(compiled),
            Err(errs) => out.extend(
                errs.into_iter()
                    .map(|(field, m)| problem(format!("schedules[{i}].{field}"), m)),
            ),
        }
        if s.min > b.max {
            out.push(problem(
                format!("schedules[{i}].min"),
                format!("{} is above bounds.max ({})", s.min, b.max),
            ));
        }
    }
    let m = &f.on_missing_signal;
    if m.stale_after.is_zero() {
        out.push(problem(
            "on_missing_signal.stale_after",
            "must be longer than 0s",
        ));
    }
    if let Some(n) = m.then_workers
        && n > b.max
    {
        out.push(problem(
            "on_missing_signal.then_workers",
            format!("{n} is above bounds.max ({})", b.max),
        ));
    }
    if let Some(fb) = f.flap_budget
        && fb.max_reversals_per_hour == 0
    {
        out.push((
            "flap_budget.max_reversals_per_hour".into(),
            "0 would freeze the pool after its first move".into(),
            Some("use at least 1, or remove `flap_budget`".into()),
        ));
    }
    (schedules, out)
}

fn check_signal(path: &str, s: &SignalSpec, out: &mut Vec<Problem>) {
    let kinds = [
        s.trino.is_some(),
        s.presto.is_some(),
        s.airflow.is_some(),
        s.airflow_db.is_some(),
        s.spark.is_some(),
    ];
    match kinds.iter().filter(|k| **k).count() {
        1 => {}
        0 => out.push((
            path.to_string(),
            "names no engine".into(),
            Some("add exactly one of `trino`, `presto`, `airflow`, `airflow_db`, `spark`".into()),
        )),
        _ => out.push(problem(
            path,
            "names more than one engine; use one list entry per signal",
        )),
    }
    if !(s.per_worker > 0.0 && s.per_worker.is_finite()) {
        out.push(problem(
            format!("{path}.per_worker"),
            "must be a number > 0",
        ));
    }
    let http_checks = |field: &str, url: &str, http: &HttpOptions, out: &mut Vec<Problem>| {
        check_url(&format!("{path}.{field}"), url, out);
        if http.timeout.is_zero() {
            out.push(problem(
                format!("{path}.http.timeout"),
                "must be longer than 0s",
            ));
        }
        if http.max_body_bytes == 0 {
            out.push(problem(
                format!("{path}.http.max_body_bytes"),
                "must be > 0",
            ));
        }
    };
    if let Some(t) = &s.trino {
        http_checks("trino.coordinator", &t.coordinator, &t.http, out);
        if t.user.is_empty() {
            out.push(problem(format!("{path}.trino.user"), "must not be empty"));
        }
    }
    if let Some(p) = &s.presto {
        http_checks("presto.coordinator", &p.coordinator, &p.http, out);
    }
    if let Some(a) = &s.airflow {
        http_checks("airflow.api", &a.api, &a.http, out);
    }
    if let Some(d) = &s.airflow_db {
        if d.timeout.is_zero() {
            out.push(problem(
                format!("{path}.airflow_db.timeout"),
                "must be longer than 0s",
            ));
        }
        if d.executor == AirflowExecutor::CeleryKubernetes && d.kubernetes_queue.is_empty() {
            out.push(problem(
                format!("{path}.airflow_db.kubernetes_queue"),
                "must not be empty",
            ));
        }
    }
    if let Some(sp) = &s.spark {
        http_checks("spark.master", &sp.master, &sp.http, out);
        if sp.cores_per_waiting_app == 0 {
            out.push(problem(
                format!("{path}.spark.cores_per_waiting_app"),
                "must be at least 1",
            ));
        }
    }
}

fn check_url(field: &str, url: &str, out: &mut Vec<Problem>) {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            if !u.username().is_empty() || u.password().is_some() {
                out.push((
                    field.to_string(),
                    "credentials inside the URL are inline secrets".into(),
                    Some("use `http.auth` with `{ env: VAR }` or `{ file: /path }`".into()),
                ));
            }
        }
        _ => out.push((
            field.to_string(),
            format!("`{url}` is not an http(s) URL"),
            Some("e.g. `http://trino:8080`".into()),
        )),
    }
}

fn check_workers(w: &WorkersSpec, out: &mut Vec<Problem>) {
    match (&w.kubernetes, &w.aws_asg) {
        (Some(k), None) => {
            if k.namespace.is_empty() {
                out.push(problem("workers.kubernetes.namespace", "must not be empty"));
            }
            match (&k.deployment, &k.statefulset) {
                (Some(n), None) | (None, Some(n)) if !n.is_empty() => {}
                (Some(_), Some(_)) => out.push(problem(
                    "workers.kubernetes",
                    "give `deployment` or `statefulset`, not both",
                )),
                _ => out.push(problem(
                    "workers.kubernetes",
                    "needs `deployment: NAME` or `statefulset: NAME`",
                )),
            }
        }
        (None, Some(a)) => {
            if a.group.is_empty() {
                out.push(problem("workers.aws_asg.group", "must not be empty"));
            }
            if a.region.is_empty() {
                out.push(problem("workers.aws_asg.region", "must not be empty"));
            }
            if let Some(url) = &a.endpoint_url {
                check_url("workers.aws_asg.endpoint_url", url, out);
            }
        }
        (Some(_), Some(_)) => out.push(problem(
            "workers",
            "give `kubernetes` or `aws_asg`, not both",
        )),
        (None, None) => out.push(problem("workers", "needs `kubernetes` or `aws_asg`")),
    }
}

fn check_step(dir: &str, s: &MaxStep, window: std::time::Duration, out: &mut Vec<Problem>) {
    if window.as_secs() > MAX_WINDOW_SECS {
        out.push(problem(
            format!("{dir}.stabilization"),
            "must be at most 1h (HPA limit)",
        ));
    }
    if s.select != SelectPolicy::Disabled && s.workers.is_none() && s.percent.is_none() {
        out.push((
            format!("{dir}.max_step"),
            "needs `workers` and/or `percent`".into(),
            Some("or `select: disabled` to forbid this direction".into()),
        ));
    }
    if s.workers == Some(0) || s.percent == Some(0) {
        out.push((
            format!("{dir}.max_step"),
            "a step of 0 forbids scaling".into(),
            Some("use `select: disabled` to say so".into()),
        ));
    }
    if s.period.is_zero() || s.period.as_secs() > MAX_PERIOD_SECS {
        out.push(problem(
            format!("{dir}.max_step.period"),
            "must be > 0s and at most 30m (HPA limit)",
        ));
    }
}

fn check_drain_method(f: &PolicyFile, out: &mut Vec<Problem>) {
    let has = |pred: fn(&SignalSpec) -> bool| f.signals.iter().any(pred);
    let field = "scale_down.drain.method";
    match f.scale_down.drain.method {
        DrainMethod::Trino if !has(|s| s.trino.is_some() || s.presto.is_some()) => {
            out.push(problem(
                field,
                "`trino` drain needs a `trino` or `presto` signal (its coordinator is used)",
            ))
        }
        DrainMethod::Spark if !has(|s| s.spark.is_some()) => out.push(problem(
            field,
            "`spark` drain needs a `spark` signal (its master is used)",
        )),
        _ => {}
    }
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
