//! poolpilot's own recording format: what the daemon saw and decided, one JSON object per line.
//!
//! The daemon writes it with `--record FILE`; the simulator replays it (`--trace-format
//! recording`) and checks it (`--check-decisions`). Lines are tagged by `record`:
//!
//! ```json
//! {"record":"header","format":"poolpilot-recording","version":2,"poolpilot":"0.1.0",
//!  "started_at":1764061200000,"global_budget_per_hour":null,
//!  "pools":[{"name":"trino-etl","mode":"enforce","price_per_worker_hour":0.5,"boot_time":"1m",
//!            "signals":[{"kind":"trino","per_worker":4.0}],"policy":{...}}],
//!  "memory":{"pools":{...}}}
//! {"record":"tick","at":1764061210000,"pool":"trino-etl",
//!  "signals":[{"kind":"value","demand":12.0,"observed_at":1764061209850}],
//!  "workers":{"requested":4,"ready":3},
//!  "decision":{"current":4,"desired":6,"reasons":[...]}}
//! {"record":"actuation","at":1764061210040,"pool":"trino-etl","from":4,"to":6}
//! ```
//!
//! Times are milliseconds since the Unix epoch. A header is written at start and whenever the
//! policy set changes; it carries every pool's policy (as the daemon runs it), the global
//! budget and the engine memory at that moment. Then, per tick, one `tick` line per pool in
//! header order with exactly what the engine was given (`workers` is the would-be pool for
//! shadow pools; `real_workers` the platform's) and what it decided; and one `actuation` line
//! per change the engine's memory records (real, drained, reconciled, a leader's, or a shadow
//! pool's would-be move), in the order they happened. Replaying the lines in order through
//! the engine therefore reproduces every decision (`--check-decisions`).

use std::io::Write;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::signal::Signal;
use crate::engine::{Memory, Pause};
use crate::policy::{Mode, Policy};
use crate::time::Timestamp;

/// Written as `format` in the header, checked by readers.
pub const FORMAT_NAME: &str = "poolpilot-recording";
/// Bumped on an incompatible change (2: per-pool policies, memory, actuation lines).
pub const FORMAT_VERSION: u32 = 2;

/// One line of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum RecordLine {
    Header(RecordingHeader),
    Tick(RecordedTick),
    Actuation(RecordedActuation),
}

/// Written at start and on every policy change: what the engine runs from here on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingHeader {
    pub format: String,
    pub version: u32,
    /// The poolpilot version that wrote it.
    #[serde(default)]
    pub poolpilot: String,
    pub started_at: Timestamp,
    /// Every pool, in policy order (the order of the tick lines).
    pub pools: Vec<RecordedPool>,
    #[serde(default)]
    pub global_budget_per_hour: Option<f64>,
    /// The engine memory at this moment (restored state, conservative-start holds).
    #[serde(default)]
    pub memory: Memory,
}

impl RecordingHeader {
    pub fn new(
        started_at: Timestamp,
        pools: Vec<RecordedPool>,
        global_budget_per_hour: Option<f64>,
        memory: Memory,
    ) -> RecordingHeader {
        RecordingHeader {
            format: FORMAT_NAME.to_string(),
            version: FORMAT_VERSION,
            poolpilot: env!("CARGO_PKG_VERSION").to_string(),
            started_at,
            pools,
            global_budget_per_hour,
            memory,
        }
    }
}

/// One pool as the daemon ran it: the facts a replay needs, and the whole policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedPool {
    pub name: String,
    pub mode: Mode,
    pub price_per_worker_hour: f64,
    #[serde(with = "humantime_serde")]
    pub boot_time: Duration,
    pub signals: Vec<RecordedSignal>,
    /// The policy file's content with every default filled in (a valid policy document).
    pub policy: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedSignal {
    pub kind: String,
    pub per_worker: f64,
}

impl RecordedPool {
    pub fn of(policy: &Policy) -> RecordedPool {
        let spec = &policy.spec;
        RecordedPool {
            name: spec.pool.clone(),
            mode: spec.mode,
            price_per_worker_hour: policy.price_per_worker_hour(),
            boot_time: spec.boot_time,
            signals: spec
                .signals
                .iter()
                .map(|s| RecordedSignal {
                    kind: s.kind_name().to_string(),
                    per_worker: s.per_worker,
                })
                .collect(),
            policy: serde_json::to_value(spec).unwrap_or_default(),
        }
    }

    /// The recorded policy, validated again (JSON is YAML, so the policy loader reads it).
    pub fn load_policy(&self, origin: &str) -> anyhow::Result<Policy> {
        crate::policy::load_str(&self.policy.to_string(), origin).map_err(|e| {
            anyhow::anyhow!(
                "the recorded policy of pool `{}` does not load: {e}",
                self.name
            )
        })
    }
}

/// One pool at one tick: the observation the engine got and the decision it returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedTick {
    pub at: Timestamp,
    pub pool: String,
    pub signals: Vec<Signal>,
    /// What the engine was told (the would-be pool for shadow and dry-run pools).
    pub workers: RecordedWorkers,
    /// Run-time pauses the engine was given (`engine::pause`); absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pauses: Vec<Pause>,
    /// The platform's counts, when they differ from `workers` (shadow and dry-run pools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_workers: Option<RecordedWorkers>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<RecordedDecision>,
}

/// Worker counts as the engine saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedWorkers {
    pub requested: u32,
    pub ready: u32,
}

/// The engine's decision for the pool at that tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedDecision {
    pub current: u32,
    pub desired: u32,
    #[serde(default)]
    pub reasons: Vec<serde_json::Value>,
}

impl RecordedDecision {
    pub fn of(d: &crate::engine::Decision) -> RecordedDecision {
        RecordedDecision {
            current: d.current,
            desired: d.desired,
            reasons: d
                .reasons
                .iter()
                .filter_map(|r| serde_json::to_value(r).ok())
                .collect(),
        }
    }
}

/// A change the engine's memory recorded (`Memory::record_actuation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedActuation {
    pub at: Timestamp,
    pub pool: String,
    pub from: u32,
    pub to: u32,
}

/// Writes one line (JSON + `\n`). The caller owns buffering and flushing.
pub fn write_line(out: &mut impl Write, line: &RecordLine) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")
}

/// A parsed recording: its lines with their line numbers, and what was skipped.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    pub lines: Vec<(usize, RecordLine)>,
    /// Problems that did not stop the read (a line cut short by a crash), naming file:line.
    pub warnings: Vec<String>,
}

impl Recording {
    /// Every pool named by any header, in first-seen order.
    pub fn pools(&self) -> Vec<&RecordedPool> {
        let mut seen: Vec<&RecordedPool> = Vec::new();
        for (_, line) in &self.lines {
            if let RecordLine::Header(h) = line {
                for p in &h.pools {
                    match seen.iter().position(|s| s.name == p.name) {
                        Some(i) => seen[i] = p,
                        None => seen.push(p),
                    }
                }
            }
        }
        seen
    }
}

/// Parses a whole recording. Errors and warnings name `origin` and the line. A last line
/// without its newline that does not parse was cut short by a crash: a warning, not an error.
pub fn parse(text: &str, origin: &str) -> anyhow::Result<Recording> {
    let mut out = Recording::default();
    let count = text.lines().count();
    let mut seen_header = false;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let record: RecordLine = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(error) if number == count && !text.ends_with('\n') => {
                out.warnings.push(format!(
                    "{origin}:{number}: the last line is cut short (the daemon stopped while writing it); ignored ({error})"
                ));
                continue;
            }
            Err(error) if next_is_header(text, index) && seen_header => {
                out.warnings.push(format!(
                    "{origin}:{number}: a line cut short before a restart (the daemon stopped while writing it); ignored ({error})"
                ));
                continue;
            }
            Err(error) => {
                if let Some(version) = other_version(line) {
                    anyhow::bail!(
                        "{origin}:{number}: written by another poolpilot version (recording format v{version}); this one reads v{FORMAT_VERSION}: record again with this version"
                    );
                }
                anyhow::bail!("{origin}:{number}: not a recording line: {error}");
            }
        };
        match &record {
            RecordLine::Header(header) => {
                anyhow::ensure!(
                    header.format == FORMAT_NAME,
                    "{origin}:{number}: format `{}` is not {FORMAT_NAME}",
                    header.format
                );
                anyhow::ensure!(
                    header.version == FORMAT_VERSION,
                    "{origin}:{number}: written by another poolpilot version (recording format v{}); this one reads v{FORMAT_VERSION}: record again with this version",
                    header.version
                );
                seen_header = true;
            }
            _ => anyhow::ensure!(
                seen_header,
                "{origin}:{number}: a `{}` line before any header: not the start of a recording (was the file cut at the front?)",
                if matches!(record, RecordLine::Tick(_)) {
                    "tick"
                } else {
                    "actuation"
                }
            ),
        }
        out.lines.push((number, record));
    }
    anyhow::ensure!(
        seen_header,
        "{origin}: no header line: not a poolpilot recording, or empty"
    );
    Ok(out)
}

/// Whether the next non-empty line after line `index` (0-based) is a header.
fn next_is_header(text: &str, index: usize) -> bool {
    text.lines()
        .skip(index + 1)
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.starts_with("{\"record\":\"header\""))
}

/// The version of a recording whose first line is a header of another version (`None` for
/// this version's files, or text that is no recording at all).
pub fn foreign_version(text: &str) -> Option<u64> {
    other_version(text.lines().next()?)
}

/// The version of a header line that does not parse as this version's header.
fn other_version(line: &str) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    (value.get("record")?.as_str()? == "header")
        .then(|| value.get("version")?.as_u64())
        .flatten()
        .filter(|v| *v != u64::from(FORMAT_VERSION))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> RecordedPool {
        let text = "pool: p\nsignals:\n  - spark: { master: \"http://spark:8080\", cores_per_waiting_app: 2 }\n    per_worker: 4\nworkers: { kubernetes: { namespace: ns, deployment: w } }\nbounds: { min: 1, max: 9 }\ncost: { per_worker_hour: 0.5 }\n";
        RecordedPool::of(&crate::policy::load_str(text, "p.yaml").unwrap())
    }

    fn sample() -> String {
        let header = RecordLine::Header(RecordingHeader::new(
            Timestamp(0),
            vec![pool()],
            Some(10.0),
            Memory::default(),
        ));
        let tick = RecordLine::Tick(RecordedTick {
            pauses: Vec::new(),
            at: Timestamp(10_000),
            pool: "p".into(),
            signals: vec![Signal::Value {
                demand: 3.5,
                observed_at: Timestamp(9_900),
            }],
            workers: RecordedWorkers {
                requested: 2,
                ready: 1,
            },
            real_workers: None,
            decision: Some(RecordedDecision {
                current: 2,
                desired: 3,
                reasons: vec![],
            }),
        });
        let actuation = RecordLine::Actuation(RecordedActuation {
            at: Timestamp(10_010),
            pool: "p".into(),
            from: 2,
            to: 3,
        });
        let mut out = Vec::new();
        for line in [header, tick, actuation] {
            write_line(&mut out, &line).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lines_round_trip_with_their_numbers() {
        let text = sample();
        assert!(text.starts_with("{\"record\":\"header\""), "{text}");
        let rec = parse(&text, "r.jsonl").unwrap();
        assert_eq!(
            rec.lines.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(rec.warnings.is_empty());
        let pools = rec.pools();
        assert_eq!(pools[0].price_per_worker_hour, 0.5);
        assert_eq!(pools[0].signals[0].kind, "spark");
    }

    #[test]
    fn the_recorded_policy_loads_back_as_the_same_policy() {
        let p = pool();
        let back = p.load_policy("rec").unwrap();
        assert_eq!(serde_json::to_value(&back.spec).unwrap(), p.policy);
    }

    #[test]
    fn a_cut_last_line_warns_other_versions_and_headless_files_fail() {
        let text = sample();
        let cut = &text[..text.len() - 10];
        let rec = parse(cut, "r.jsonl").unwrap();
        assert_eq!(rec.lines.len(), 2);
        assert!(
            rec.warnings[0].starts_with("r.jsonl:3: the last line is cut short"),
            "{:?}",
            rec.warnings
        );

        let old = r#"{"record":"header","format":"poolpilot-recording","version":1,"started_at":0,"pools":["p"]}"#;
        let e = parse(&format!("{old}\n"), "old.jsonl")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("old.jsonl:1: written by another poolpilot version (recording format v1)"),
            "{e}"
        );

        let headless: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
        let e = parse(&headless, "h.jsonl").unwrap_err().to_string();
        assert!(
            e.contains("h.jsonl:1: a `tick` line before any header"),
            "{e}"
        );
        let e = parse("\n{nope\n", "b.jsonl").unwrap_err().to_string();
        assert!(e.contains("b.jsonl:2: not a recording line"), "{e}");
        assert!(
            parse("", "e.jsonl")
                .unwrap_err()
                .to_string()
                .contains("no header")
        );
    }
}
