//! `poolpilot tune`: search a policy's numeric parameters on a workload. Each variant is the
//! given policy with some knobs changed, written as policy text and loaded through the same
//! validation as a file (so whatever `tune` writes passes `validate`), replayed on the tuning
//! part of the workload; the front of cost against p95 wait is what the operator chooses on,
//! and the cheapest variant that meets the service level is checked on the held-out rest.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::ProgressBar;
use serde_json::Value;

use super::experiment::Stage;
use super::report::{Row, RowKind};
use super::run::Clock;
use super::trace::Workload;
use crate::policy::{self, Policy};

/// One knob `tune` turns: a field path in the policy file and the values it tries. `None`
/// removes the field (its default applies).
struct Knob {
    path: &'static str,
    values: Values,
}

enum Values {
    /// Multiples of the given policy's value (every signal's `per_worker`).
    Scale(&'static [f64]),
    Numbers(&'static [f64]),
    Durations(&'static [Option<&'static str>]),
    /// JSON values (`None` removes the field).
    Json(&'static [Option<&'static str>]),
}

/// The search space. Windows and periods stay inside the HPA's API limits, so every variant
/// validates; boot time, bounds, prices and drains are facts of the pool, not knobs.
const KNOBS: &[Knob] = &[
    Knob {
        path: "signals[].per_worker",
        values: Values::Scale(&[0.8, 0.9, 1.0, 1.1, 1.25, 1.5]),
    },
    Knob {
        path: "tolerance",
        values: Values::Numbers(&[0.0, 0.05, 0.1]),
    },
    Knob {
        path: "scale_up.stabilization",
        values: Values::Durations(&[Some("0s"), Some("10s"), Some("30s"), Some("60s")]),
    },
    Knob {
        path: "scale_up.cooldown",
        values: Values::Durations(&[Some("0s"), Some("15s"), Some("30s"), Some("60s")]),
    },
    Knob {
        path: "scale_up.max_step.percent",
        values: Values::Numbers(&[50.0, 100.0, 200.0, 400.0]),
    },
    Knob {
        path: "scale_down.stabilization",
        values: Values::Durations(&[
            Some("0s"),
            Some("30s"),
            Some("60s"),
            Some("2m"),
            Some("5m"),
            Some("10m"),
        ]),
    },
    Knob {
        path: "scale_down.cooldown",
        values: Values::Durations(&[Some("0s"), Some("30s"), Some("1m"), Some("5m")]),
    },
    Knob {
        path: "scale_down.max_step.percent",
        values: Values::Numbers(&[10.0, 25.0, 50.0, 100.0]),
    },
    Knob {
        path: "target.clear_backlog_within",
        values: Values::Durations(&[
            None,
            Some("30s"),
            Some("1m"),
            Some("2m"),
            Some("5m"),
            Some("10m"),
        ]),
    },
    Knob {
        path: "target.prewarm",
        values: Values::Json(&[None, Some(r#"{"season":"daily"}"#)]),
    },
];

/// One point of the search: the policy and what it changed.
#[derive(Debug, Clone)]
pub struct Variant {
    /// 0 is the given policy, unchanged.
    pub id: usize,
    pub policy: Policy,
    /// The policy file text (what `--out` writes, under a header).
    pub text: String,
    /// `field: old -> new` for each knob that differs from the given policy.
    pub changes: Vec<String>,
}

/// A variant's figures on one part of the workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub cost_vs_oracle: f64,
    pub cost: f64,
    pub wait_p95_s: f64,
    pub unfinished: usize,
}

impl Score {
    pub fn of(row: &Row) -> Score {
        Score {
            cost_vs_oracle: row.cost_vs_oracle,
            cost: row.cost,
            wait_p95_s: row.wait_p95_s,
            unfinished: row.unfinished_jobs,
        }
    }

    /// Meets the level: every job ran and the p95 wait is within it.
    pub fn meets(&self, p95_wait: Duration) -> bool {
        self.unfinished == 0 && self.wait_p95_s <= p95_wait.as_secs_f64()
    }
}

/// `count` variants of `base` (the first is `base` itself), drawn without repeats from the
/// knobs' grid with a seeded generator, so a run is reproducible.
pub fn variants(base: &Policy, count: usize, seed: u64) -> anyhow::Result<Vec<Variant>> {
    let base_value = serde_json::to_value(&base.spec)?;
    let mut out = vec![Variant {
        id: 0,
        policy: base.clone(),
        text: to_yaml(&strip_nulls(base_value.clone())),
        changes: Vec::new(),
    }];
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut seen = std::collections::HashSet::new();
    seen.insert(out[0].text.clone());
    let mut attempts = 0;
    while out.len() < count.max(1) && attempts < count.max(1) * 50 {
        attempts += 1;
        let mut value = base_value.clone();
        let mut changes = Vec::new();
        for knob in KNOBS {
            // Each knob changes with probability ½, so variants stay near the given policy
            // as well as exploring far from it.
            if rng.bool() {
                continue;
            }
            if let Some(change) = turn(knob, &mut value, &mut rng) {
                changes.push(change);
            }
        }
        let value = strip_nulls(value);
        let text = to_yaml(&value);
        if !seen.insert(text.clone()) {
            continue;
        }
        let origin = format!("tune variant {}", out.len());
        // A knob combination validation refuses (e.g. a window over a limit) is skipped.
        let Ok(policy) = policy::load_str(&text, &origin) else {
            continue;
        };
        out.push(Variant {
            id: out.len(),
            policy,
            text,
            changes,
        });
    }
    Ok(out)
}

/// Sets one knob to a random value of its grid; the change as text, if it changed anything.
fn turn(knob: &Knob, value: &mut Value, rng: &mut fastrand::Rng) -> Option<String> {
    let (parent_path, field) = knob.path.rsplit_once('.').unwrap_or(("", knob.path));
    let describe = |old: &Value, new: &Value| {
        let show = |v: &Value| match v {
            Value::Null => "default".to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        (old != new).then(|| format!("{}: {} -> {}", knob.path, show(old), show(new)))
    };
    match &knob.values {
        Values::Scale(factors) => {
            let factor = factors[rng.usize(..factors.len())];
            let signals = value.get_mut("signals")?.as_array_mut()?;
            let mut change = None;
            for signal in signals {
                let old = signal.get(field)?.clone();
                let new = Value::from(round3(old.as_f64()? * factor));
                change = change.or_else(|| describe(&old, &new));
                signal[field] = new;
            }
            change
        }
        Values::Numbers(options) => {
            let new = Value::from(options[rng.usize(..options.len())]);
            let parent = object_at(value, parent_path)?;
            let old = parent.get(field).cloned().unwrap_or(Value::Null);
            parent.insert(field.to_string(), new.clone());
            describe(&old, &new)
        }
        Values::Durations(options) => {
            let new = options[rng.usize(..options.len())].map_or(Value::Null, Value::from);
            let parent = object_at(value, parent_path)?;
            let old = parent.get(field).cloned().unwrap_or(Value::Null);
            parent.insert(field.to_string(), new.clone());
            describe(&normalize_duration(&old), &new)
        }
        Values::Json(options) => {
            let new = options[rng.usize(..options.len())].map_or(Value::Null, |text| {
                serde_json::from_str(text).expect("valid knob JSON")
            });
            let parent = object_at(value, parent_path)?;
            let old = parent.get(field).cloned().unwrap_or(Value::Null);
            parent.insert(field.to_string(), new.clone());
            describe(&old, &new)
        }
    }
}

/// The object at a dotted path, created (as `{}`) where absent or null.
fn object_at<'a>(
    value: &'a mut Value,
    path: &str,
) -> Option<&'a mut serde_json::Map<String, Value>> {
    let mut here = value;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let object = here.as_object_mut()?;
        let slot = object
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
        if slot.is_null() {
            *slot = Value::Object(Default::default());
        }
        here = slot;
    }
    here.as_object_mut()
}

/// `humantime_serde` writes `1m 30s`-style text; compare durations by their value.
fn normalize_duration(v: &Value) -> Value {
    match v.as_str().and_then(|s| humantime::parse_duration(s).ok()) {
        Some(d) => Value::from(humantime::format_duration(d).to_string()),
        None => v.clone(),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Drops null fields (the defaults apply) so the written policy reads like a hand-written one.
fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// Keys in the order a person writes a policy file.
const KEY_ORDER: &[&str] = &[
    "pool",
    "mode",
    "signals",
    "per_worker",
    "workers",
    "bounds",
    "min",
    "max",
    "scale_to_zero",
    "tolerance",
    "boot_time",
    "target",
    "scale_up",
    "scale_down",
    "stabilization",
    "cooldown",
    "max_step",
    "drain",
    "cost",
    "schedules",
    "on_missing_signal",
    "flap_budget",
];

/// Block-style YAML of a JSON value (through `yaml-rust2`'s emitter).
pub fn to_yaml(value: &Value) -> String {
    use yaml_rust2::{Yaml, YamlEmitter, yaml::Hash};
    fn convert(v: &Value) -> Yaml {
        match v {
            Value::Null => Yaml::Null,
            Value::Bool(b) => Yaml::Boolean(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Yaml::Integer(i),
                None => Yaml::Real(n.to_string()),
            },
            Value::String(s) => Yaml::String(s.clone()),
            Value::Array(items) => Yaml::Array(items.iter().map(convert).collect()),
            Value::Object(map) => {
                // The policy file's own order for known keys (as policies/README.md lists
                // them), the rest alphabetically after them.
                let rank = |k: &str| KEY_ORDER.iter().position(|o| *o == k).unwrap_or(usize::MAX);
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort_by_key(|k| (rank(k), k.as_str()));
                let mut hash = Hash::new();
                for k in keys {
                    hash.insert(Yaml::String(k.clone()), convert(&map[k]));
                }
                Yaml::Hash(hash)
            }
        }
    }
    let mut out = String::new();
    let mut emitter = YamlEmitter::new(&mut out);
    emitter.dump(&convert(value)).expect("writing to a String");
    let body = out.strip_prefix("---\n").unwrap_or(&out);
    format!("{body}\n")
}

/// Replays every variant on `stage`, on all cores, one progress tick per variant.
pub fn score_all(stage: &Stage, variants: &[Variant], bar: &ProgressBar) -> Vec<Score> {
    let next = AtomicUsize::new(0);
    let scores = Mutex::new(vec![None; variants.len()]);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..threads.min(variants.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(variant) = variants.get(i) else {
                        break;
                    };
                    let score = score_policy(stage, &variant.policy);
                    scores.lock().expect("no panics while held")[i] = Some(score);
                    bar.inc(1);
                }
            });
        }
    });
    scores
        .into_inner()
        .expect("no panics while held")
        .into_iter()
        .map(|s| s.expect("every variant scored"))
        .collect()
}

/// One policy's figures on `stage`.
pub fn score_policy(stage: &Stage, policy: &Policy) -> Score {
    let (mut controller, removal) = stage.policy_row(policy);
    let (row, _) = stage.replay(
        policy.name().to_string(),
        RowKind::Policy,
        &mut controller,
        removal,
        Clock::SkipQuiet,
        &ProgressBar::hidden(),
    );
    Score::of(&row)
}

/// Indices of the Pareto front (lower cost, lower p95 wait), cheapest first. Variants with
/// unfinished jobs are never on it.
pub fn front(scores: &[Score]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len())
        .filter(|&i| scores[i].unfinished == 0)
        .collect();
    order.sort_by(|&a, &b| {
        scores[a]
            .cost_vs_oracle
            .total_cmp(&scores[b].cost_vs_oracle)
            .then(scores[a].wait_p95_s.total_cmp(&scores[b].wait_p95_s))
            .then(a.cmp(&b))
    });
    let mut out = Vec::new();
    let mut best_wait = f64::INFINITY;
    for i in order {
        if scores[i].wait_p95_s < best_wait {
            best_wait = scores[i].wait_p95_s;
            out.push(i);
        }
    }
    out
}

/// The cheapest variant that meets the level.
pub fn best(scores: &[Score], p95_wait: Duration) -> Option<usize> {
    (0..scores.len())
        .filter(|&i| scores[i].meets(p95_wait))
        .min_by(|&a, &b| {
            scores[a]
                .cost_vs_oracle
                .total_cmp(&scores[b].cost_vs_oracle)
                .then(scores[a].wait_p95_s.total_cmp(&scores[b].wait_p95_s))
        })
}

/// Splits a workload by arrival time: the first `1 − holdout` of its span to tune on, the
/// rest to check on (empty when `holdout` is 0).
pub fn split(workload: &Workload, holdout: f64) -> (Workload, Workload) {
    let (Some(first), Some(last)) = (workload.jobs.first(), workload.jobs.last()) else {
        return (workload.clone(), Workload::new(Vec::new(), String::new()));
    };
    let span = (last.arrival.0 - first.arrival.0) as f64;
    let cut = first.arrival.0 + (span * (1.0 - holdout)).round() as i64;
    let at = if holdout <= 0.0 {
        workload.jobs.len()
    } else {
        workload.jobs.partition_point(|j| j.arrival.0 < cut)
    };
    let part = |jobs: &[super::trace::Job], what: &str| {
        let mut w = workload.clone();
        w.jobs = jobs.to_vec();
        w.source = format!("{} ({what})", workload.source);
        w
    };
    (
        part(&workload.jobs[..at], "tuning part"),
        part(&workload.jobs[at..], "holdout"),
    )
}

/// The policy file `tune` writes: a header with the figures, then the policy.
pub fn policy_file_text(header: &[String], variant: &Variant) -> String {
    let mut out = String::new();
    for line in header {
        out.push_str(&format!("# {line}\n"));
    }
    out.push_str(&variant.text);
    out
}

/// Parses the written policy back (used by the CLI before writing and by tests).
pub fn reparse(text: &str, origin: &str) -> Result<Policy, policy::PolicyErrors> {
    policy::load_str(text, origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
pool: p
signals:
  - spark: { master: "http://spark:8080", cores_per_waiting_app: 4 }
    per_worker: 4
workers:
  kubernetes: { namespace: ns, deployment: w }
bounds: { min: 1, max: 50 }
schedules:
  - { cron: "0 8 * * 1-5", timezone: Europe/Berlin, min: 2, for: 10h }
"#;

    fn base() -> Policy {
        policy::load_str(BASE, "base.yaml").unwrap()
    }

    #[test]
    fn every_variant_validates_and_the_first_is_the_given_policy() {
        let vs = variants(&base(), 60, 7).unwrap();
        assert_eq!(vs.len(), 60);
        assert!(vs[0].changes.is_empty());
        assert_eq!(vs[0].policy.spec, base().spec);
        for v in &vs {
            let back = reparse(&v.text, "written").unwrap_or_else(|e| panic!("{e}\n{}", v.text));
            assert_eq!(back.spec, v.policy.spec, "the text is the policy");
            assert_eq!(back.spec.schedules, base().spec.schedules, "non-knobs kept");
        }
        assert!(vs[1..].iter().all(|v| !v.changes.is_empty()));
        let again = variants(&base(), 60, 7).unwrap();
        assert!(
            vs.iter().zip(&again).all(|(a, b)| a.text == b.text),
            "seeded"
        );
    }

    fn score(cost: f64, wait: f64) -> Score {
        Score {
            cost_vs_oracle: cost,
            cost,
            wait_p95_s: wait,
            unfinished: 0,
        }
    }

    #[test]
    fn front_keeps_only_points_nothing_beats() {
        let scores = [
            score(1.2, 50.0),
            score(1.1, 80.0),
            score(1.3, 60.0),
            score(1.0, 300.0),
            Score {
                unfinished: 1,
                ..score(0.5, 1.0)
            },
        ];
        assert_eq!(front(&scores), vec![3, 1, 0]);
        assert_eq!(best(&scores, Duration::from_secs(100)), Some(1));
        assert_eq!(best(&scores, Duration::from_secs(10)), None);
    }

    #[test]
    fn split_cuts_by_arrival_time() {
        use crate::sim::trace::Job;
        use crate::time::Timestamp;
        let jobs = (0..10)
            .map(|i| Job {
                arrival: Timestamp(i * 1000),
                width: 100,
                runtime_ms: 1,
            })
            .collect();
        let w = Workload::new(jobs, "t".into());
        let (a, b) = split(&w, 0.3);
        assert_eq!((a.jobs.len(), b.jobs.len()), (7, 3));
        let (a, b) = split(&w, 0.0);
        assert_eq!((a.jobs.len(), b.jobs.len()), (10, 0));
    }
}
