//! `--record FILE`: appends every tick's observations and decisions in the recording format the
//! simulator replays (`poolpilot simulate --trace FILE --trace-format recording`). The types
//! are the simulator's own ([`crate::sim::recording`]), so the two cannot drift apart.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::engine::{Decision, World};
use crate::sim::recording::{
    self, RecordLine, RecordedDecision, RecordedTick, RecordedWorkers, RecordingHeader,
};
use crate::time::Timestamp;

pub struct Recorder {
    path: PathBuf,
    out: BufWriter<File>,
    failed: bool,
}

impl Recorder {
    /// Opens `path` for appending (a restart continues the same file, after a new header).
    pub fn open(path: &Path) -> std::io::Result<Recorder> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Recorder {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            failed: false,
        })
    }

    /// A header line: at start and whenever the pool set changes.
    pub fn header(&mut self, now: Timestamp, pools: Vec<String>) {
        let line = RecordLine::Header(RecordingHeader::new(now, pools));
        self.write(&[line]);
    }

    /// One `tick` line per pool (aligned: `world.pools[i]`, `decisions[i]`, `pools[i]`).
    pub fn tick(
        &mut self,
        now: Timestamp,
        pools: &[String],
        world: &World,
        decisions: &[Decision],
    ) {
        let lines: Vec<RecordLine> = pools
            .iter()
            .zip(&world.pools)
            .enumerate()
            .map(|(i, (pool, obs))| {
                RecordLine::Tick(RecordedTick {
                    at: now,
                    pool: pool.clone(),
                    signals: obs.signals.clone(),
                    workers: RecordedWorkers {
                        requested: obs.workers.requested,
                        ready: obs.workers.ready,
                    },
                    decision: decisions.get(i).map(|d| RecordedDecision {
                        current: d.current,
                        desired: d.desired,
                        reasons: d
                            .reasons
                            .iter()
                            .filter_map(|r| serde_json::to_value(r).ok())
                            .collect(),
                    }),
                })
            })
            .collect();
        self.write(&lines);
    }

    fn write(&mut self, lines: &[RecordLine]) {
        let result = lines
            .iter()
            .try_for_each(|l| recording::write_line(&mut self.out, l))
            .and_then(|()| self.out.flush());
        match result {
            Ok(()) => self.failed = false,
            Err(e) if !self.failed => {
                self.failed = true;
                tracing::error!(path = %self.path.display(), error = %e, "cannot append to the recording; the daemon keeps running");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{PoolObservation, Signal, WorkerCounts};
    use crate::policy::Mode;

    #[test]
    fn appends_lines_the_simulator_parses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.jsonl");
        let world = World {
            pools: vec![PoolObservation {
                signals: vec![Signal::Value {
                    demand: 7.0,
                    observed_at: Timestamp(1_000),
                }],
                workers: WorkerCounts {
                    requested: 2,
                    ready: 2,
                },
            }],
            global_budget_per_hour: None,
        };
        let decision = Decision {
            pool: "p".into(),
            mode: Mode::Enforce,
            current: 2,
            desired: 4,
            reasons: vec![],
            drain: None,
        };
        for round in 0..2 {
            let mut r = Recorder::open(&path).unwrap();
            r.header(Timestamp(round), vec!["p".into()]);
            r.tick(
                Timestamp(1_000 + round),
                &["p".into()],
                &world,
                std::slice::from_ref(&decision),
            );
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines = recording::parse(&text).unwrap();
        assert_eq!(lines.len(), 4, "a restart appends");
        let RecordLine::Tick(t) = &lines[3] else {
            panic!()
        };
        assert_eq!(
            (t.workers.requested, t.decision.as_ref().unwrap().desired),
            (2, 4)
        );
        let workload = crate::sim::trace::recording::workload_from_text(&text, "rec", 0).unwrap();
        assert_eq!(workload.records, 2);
    }
}
