//! poolpilot's own recording format: what the daemon saw and decided, one JSON object per line.
//!
//! The daemon writes it with `--record FILE`; the simulator replays it (`--trace-format
//! recording`). Lines are tagged by `record`:
//!
//! ```json
//! {"record":"header","format":"poolpilot-recording","version":1,"started_at":1764061200000,"pools":["trino-etl"]}
//! {"record":"tick","at":1764061210000,"pool":"trino-etl",
//!  "signals":[{"kind":"value","demand":12.0,"observed_at":1764061209850}],
//!  "workers":{"requested":4,"ready":3},
//!  "decision":{"current":4,"desired":6,"reasons":[...]}}
//! ```
//!
//! Times are milliseconds since the Unix epoch. One `tick` line per pool per tick. `signals` is
//! the engine's [`Signal`] list in policy order; `decision` is absent when the engine produced
//! none for the pool; `reasons` are the engine's reason chain as JSON (kept opaque here so the
//! format does not break when a reason variant is added). Unknown keys are ignored by readers
//! so newer daemons can add fields.

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::engine::signal::Signal;
use crate::time::Timestamp;

/// Written as `format` in the header, checked by readers.
pub const FORMAT_NAME: &str = "poolpilot-recording";
/// Bumped on an incompatible change.
pub const FORMAT_VERSION: u32 = 1;

/// One line of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum RecordLine {
    Header(RecordingHeader),
    Tick(RecordedTick),
}

/// First line: what wrote the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingHeader {
    pub format: String,
    pub version: u32,
    pub started_at: Timestamp,
    /// Pool names, in policy order.
    pub pools: Vec<String>,
}

impl RecordingHeader {
    pub fn new(started_at: Timestamp, pools: Vec<String>) -> RecordingHeader {
        RecordingHeader {
            format: FORMAT_NAME.to_string(),
            version: FORMAT_VERSION,
            started_at,
            pools,
        }
    }
}

/// One pool at one tick: the observation the engine got and the decision it returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedTick {
    pub at: Timestamp,
    pub pool: String,
    pub signals: Vec<Signal>,
    pub workers: RecordedWorkers,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<RecordedDecision>,
}

/// Worker counts as the actuator reported them.
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

/// Writes one line (JSON + `\n`). The caller owns buffering and flushing.
pub fn write_line(out: &mut impl Write, line: &RecordLine) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")
}

/// Parses a whole recording. Errors name the line.
pub fn parse(text: &str) -> anyhow::Result<Vec<RecordLine>> {
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: RecordLine = serde_json::from_str(line)
            .map_err(|error| anyhow::anyhow!("recording line {}: {error}", index + 1))?;
        if let RecordLine::Header(header) = &record {
            anyhow::ensure!(
                header.format == FORMAT_NAME && header.version <= FORMAT_VERSION,
                "recording line {}: format {} v{} is not {FORMAT_NAME} v≤{FORMAT_VERSION}",
                index + 1,
                header.format,
                header.version
            );
        }
        lines.push(record);
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let tick = RecordLine::Tick(RecordedTick {
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
            decision: Some(RecordedDecision {
                current: 2,
                desired: 3,
                reasons: vec![],
            }),
        });
        let header = RecordLine::Header(RecordingHeader::new(Timestamp(0), vec!["p".into()]));
        let mut out = Vec::new();
        write_line(&mut out, &header).unwrap();
        write_line(&mut out, &tick).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("{\"record\":\"header\""), "{text}");
        assert_eq!(parse(&text).unwrap(), vec![header, tick]);
    }

    #[test]
    fn wrong_format_and_bad_line_are_errors() {
        let bad = r#"{"record":"header","format":"other","version":1,"started_at":0,"pools":[]}"#;
        assert!(parse(bad).is_err());
        let error = parse("\n{nope").unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
    }
}
