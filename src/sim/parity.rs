//! Decision parity: replays a daemon recording's observations through the engine and compares
//! every tick's decision with the one the daemon recorded. Same rules (the recorded policies,
//! compiled as the daemon compiles them), same memory (restored from each header, then fed the
//! recorded actuations in order), same inputs: any difference is a bug in poolpilot.

use std::collections::BTreeSet;

use crate::engine::{self, Memory, PoolObservation, PoolRules, WorkerCounts, World};
use crate::time::Timestamp;

use super::recording::{RecordLine, RecordedDecision, RecordedTick, Recording};

/// One tick of one pool whose replayed decision differs from the recorded one.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// Line of the recorded tick.
    pub line: usize,
    pub at: Timestamp,
    pub pool: String,
    pub recorded: RecordedDecision,
    pub replayed: RecordedDecision,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParityReport {
    /// Pool decisions compared.
    pub decisions: usize,
    /// Engine ticks replayed.
    pub ticks: usize,
    pub pools: BTreeSet<String>,
    pub mismatches: Vec<Mismatch>,
    /// What was not compared, and why (a last tick cut short by a crash).
    pub warnings: Vec<String>,
}

impl ParityReport {
    /// `decision parity: <ticks> ticks, <pools> pools, <n> mismatches`.
    pub fn summary(&self) -> String {
        format!(
            "decision parity: {} ticks, {} pools, {} mismatches",
            self.ticks,
            self.pools.len(),
            self.mismatches.len()
        )
    }
}

/// The state a header sets up.
struct Segment {
    names: Vec<String>,
    rules: Vec<PoolRules>,
    budget: Option<f64>,
}

/// Replays `recording` (origin names it in errors) and compares decisions.
pub fn check(recording: &Recording, origin: &str) -> anyhow::Result<ParityReport> {
    let mut report = ParityReport::default();
    let mut memory = Memory::default();
    let mut segment: Option<Segment> = None;
    let lines = &recording.lines;
    let mut i = 0;
    while i < lines.len() {
        let (number, line) = &lines[i];
        match line {
            RecordLine::Header(h) => {
                let rules = h
                    .pools
                    .iter()
                    .map(|p| {
                        p.load_policy(&format!("{origin}:{number}"))
                            .map(|policy| PoolRules::compile(&policy))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                memory = h.memory.clone();
                segment = Some(Segment {
                    names: h.pools.iter().map(|p| p.name.clone()).collect(),
                    rules,
                    budget: h.global_budget_per_hour,
                });
                i += 1;
            }
            RecordLine::Actuation(a) => {
                memory.record_actuation(&a.pool, a.from, a.to, a.at);
                i += 1;
            }
            RecordLine::Tick(first) => {
                let seg = segment.as_ref().ok_or_else(|| {
                    anyhow::anyhow!("{origin}:{number}: a tick before any header")
                })?;
                // One engine tick = the run of tick lines with the same time.
                let mut batch: Vec<(usize, &RecordedTick)> = Vec::new();
                while let Some((n, RecordLine::Tick(t))) = lines.get(i) {
                    if t.at != first.at {
                        break;
                    }
                    batch.push((*n, t));
                    i += 1;
                }
                let last = i >= lines.len();
                replay_tick(
                    seg,
                    &batch,
                    &mut memory,
                    first.at,
                    origin,
                    last,
                    &mut report,
                )?;
            }
        }
    }
    Ok(report)
}

fn replay_tick(
    seg: &Segment,
    batch: &[(usize, &RecordedTick)],
    memory: &mut Memory,
    at: Timestamp,
    origin: &str,
    last: bool,
    report: &mut ParityReport,
) -> anyhow::Result<()> {
    let mut pools = Vec::with_capacity(seg.names.len());
    for name in &seg.names {
        let Some((_, t)) = batch.iter().find(|(_, t)| &t.pool == name) else {
            if last {
                report.warnings.push(format!(
                    "{origin}:{}: the last tick has no line for pool `{name}` (cut short by a stop); not compared",
                    batch[0].0
                ));
                return Ok(());
            }
            anyhow::bail!(
                "{origin}:{}: the tick at {at} has no line for pool `{name}` (the file is incomplete)",
                batch[0].0
            );
        };
        pools.push(PoolObservation {
            pauses: t.pauses.clone(),
            signals: t.signals.clone(),
            workers: WorkerCounts {
                requested: t.workers.requested,
                ready: t.workers.ready,
            },
        });
    }
    if let Some((n, t)) = batch.iter().find(|(_, t)| !seg.names.contains(&t.pool)) {
        anyhow::bail!("{origin}:{n}: pool `{}` is not in the header", t.pool);
    }
    let world = World {
        pools,
        global_budget_per_hour: seg.budget,
    };
    let decisions = engine::step(&seg.rules, &world, memory, at);
    report.ticks += 1;
    for (name, decision) in seg.names.iter().zip(&decisions) {
        let (line, t) = batch
            .iter()
            .find(|(_, t)| &t.pool == name)
            .expect("checked above");
        report.pools.insert(name.clone());
        let Some(recorded) = &t.decision else {
            continue;
        };
        report.decisions += 1;
        let replayed = RecordedDecision::of(decision);
        if !same_decision(&replayed, recorded) {
            report.mismatches.push(Mismatch {
                line: *line,
                at,
                pool: name.clone(),
                recorded: recorded.clone(),
                replayed,
            });
        }
    }
    Ok(())
}

/// Equal sizes and reason chains; numbers within a relative 1e-12, because a float written to
/// JSON and read back may differ in its last bit (serde_json's default float parsing).
fn same_decision(a: &RecordedDecision, b: &RecordedDecision) -> bool {
    a.current == b.current
        && a.desired == b.desired
        && a.reasons.len() == b.reasons.len()
        && a.reasons.iter().zip(&b.reasons).all(|(x, y)| close(x, y))
}

fn close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| close(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        _ => a == b,
    }
}

/// Text for one mismatch: both sizes and both reason chains.
pub fn describe(m: &Mismatch, origin: &str) -> String {
    let chain = |d: &RecordedDecision| {
        d.reasons
            .iter()
            .map(|r| {
                r.get("stage")
                    .and_then(|s| s.as_str())
                    .map_or_else(|| r.to_string(), String::from)
            })
            .collect::<Vec<_>>()
            .join(" > ")
    };
    format!(
        "{origin}:{}: pool {} at {}\n  recorded: {} -> {}  [{}]\n    {}\n  replayed: {} -> {}  [{}]\n    {}",
        m.line,
        m.pool,
        m.at,
        m.recorded.current,
        m.recorded.desired,
        chain(&m.recorded),
        serde_json::to_string(&m.recorded.reasons).unwrap_or_default(),
        m.replayed.current,
        m.replayed.desired,
        chain(&m.replayed),
        serde_json::to_string(&m.replayed.reasons).unwrap_or_default(),
    )
}
