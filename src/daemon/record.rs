//! `--record FILE`: appends every tick's observations and decisions in the recording format the
//! simulator replays (`poolpilot simulate --trace FILE --trace-format recording`). The types
//! are the simulator's own ([`crate::sim::recording`]), so the two cannot drift apart.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::engine::{Decision, Memory, WorkerCounts, World};
use crate::policy::Policy;
use crate::sim::recording::{
    self, RecordLine, RecordedActuation, RecordedDecision, RecordedPool, RecordedTick,
    RecordedWorkers, RecordingHeader,
};
use crate::time::Timestamp;

pub struct Recorder {
    path: PathBuf,
    out: BufWriter<File>,
    failed: bool,
}

impl Recorder {
    /// Opens `path` for appending (a restart continues the same file, after a new header).
    /// A file another version wrote is moved aside (`<path>.v<N>`), never appended to; a last
    /// line cut short by a crash is ended first, so the new header starts a line of its own.
    pub fn open(path: &Path) -> std::io::Result<Recorder> {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Some(version) = recording::foreign_version(&text) {
                let aside = PathBuf::from(format!("{}.v{version}", path.display()));
                std::fs::rename(path, &aside)?;
                tracing::warn!(path = %path.display(), moved_to = %aside.display(), version, "the recording was written by another poolpilot version; moved aside, a new one starts");
            } else if !text.is_empty() && !text.ends_with('\n') {
                OpenOptions::new()
                    .append(true)
                    .open(path)?
                    .write_all(b"\n")?;
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Recorder {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            failed: false,
        })
    }

    /// A header line: at start and whenever the pool set changes, with the policies the engine
    /// runs from now on and its memory at this moment.
    pub fn header(
        &mut self,
        now: Timestamp,
        policies: &[Policy],
        global_budget_per_hour: Option<f64>,
        memory: &Memory,
    ) {
        let pools = policies.iter().map(RecordedPool::of).collect();
        let line = RecordLine::Header(RecordingHeader::new(
            now,
            pools,
            global_budget_per_hour,
            memory.clone(),
        ));
        self.write(&[line]);
    }

    /// One `tick` line per pool, aligned: `world.pools[i]`, `decisions[i]`, `pools[i]`,
    /// `real[i]` (the platform's counts where the engine was told a would-be pool).
    pub fn tick(
        &mut self,
        now: Timestamp,
        pools: &[&str],
        world: &World,
        decisions: &[Decision],
        real: &[Option<WorkerCounts>],
    ) {
        let lines: Vec<RecordLine> = pools
            .iter()
            .zip(&world.pools)
            .enumerate()
            .map(|(i, (pool, obs))| {
                RecordLine::Tick(RecordedTick {
                    at: now,
                    pool: pool.to_string(),
                    signals: obs.signals.clone(),
                    pauses: obs.pauses.clone(),
                    workers: workers(obs.workers),
                    real_workers: real.get(i).copied().flatten().map(workers),
                    decision: decisions.get(i).map(RecordedDecision::of),
                })
            })
            .collect();
        self.write(&lines);
    }

    /// A change the engine's memory recorded.
    pub fn actuation(&mut self, at: Timestamp, pool: &str, from: u32, to: u32) {
        self.write(&[RecordLine::Actuation(RecordedActuation {
            at,
            pool: pool.to_string(),
            from,
            to,
        })]);
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

fn workers(c: WorkerCounts) -> RecordedWorkers {
    RecordedWorkers {
        requested: c.requested,
        ready: c.ready,
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
                pauses: Vec::new(),
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
        let policy = crate::policy::load_file(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies/spark.yaml"
        )))
        .unwrap();
        let name = policy.name().to_string();
        for round in 0..2 {
            let mut r = Recorder::open(&path).unwrap();
            r.header(
                Timestamp(round),
                std::slice::from_ref(&policy),
                None,
                &Memory::default(),
            );
            r.tick(
                Timestamp(1_000 + round),
                &[name.as_str()],
                &world,
                std::slice::from_ref(&decision),
                &[None],
            );
            r.actuation(Timestamp(1_001 + round), &name, 2, 4);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let rec = recording::parse(&text, "rec.jsonl").unwrap();
        assert_eq!(rec.lines.len(), 6, "a restart appends");
        let RecordLine::Tick(t) = &rec.lines[4].1 else {
            panic!()
        };
        assert_eq!(
            (t.workers.requested, t.decision.as_ref().unwrap().desired),
            (2, 4)
        );
        assert_eq!(rec.pools()[0].name, name);
    }

    /// A crash mid-line, then a restart: the recording still reads (the cut line is a
    /// warning); a file of another version is moved aside, never appended to.
    #[test]
    fn a_cut_line_and_a_foreign_file_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.jsonl");
        let policy = crate::policy::load_file(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies/spark.yaml"
        )))
        .unwrap();
        let mut r = Recorder::open(&path).unwrap();
        r.header(
            Timestamp(0),
            std::slice::from_ref(&policy),
            None,
            &Memory::default(),
        );
        r.actuation(Timestamp(1), policy.name(), 1, 2);
        drop(r);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() - 7]).unwrap(); // killed mid-line
        let mut r = Recorder::open(&path).unwrap();
        r.header(
            Timestamp(2),
            std::slice::from_ref(&policy),
            None,
            &Memory::default(),
        );
        drop(r);
        let rec = recording::parse(&std::fs::read_to_string(&path).unwrap(), "rec.jsonl").unwrap();
        assert_eq!(rec.lines.len(), 2, "two headers");
        assert!(
            rec.warnings[0].starts_with("rec.jsonl:2: a line cut short before a restart"),
            "{:?}",
            rec.warnings
        );

        let old = r#"{"record":"header","format":"poolpilot-recording","version":1,"started_at":0,"pools":["p"]}"#;
        std::fs::write(&path, format!("{old}\n")).unwrap();
        let mut r = Recorder::open(&path).unwrap();
        r.header(
            Timestamp(3),
            std::slice::from_ref(&policy),
            None,
            &Memory::default(),
        );
        drop(r);
        assert!(recording::parse(&std::fs::read_to_string(&path).unwrap(), "rec.jsonl").is_ok());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("rec.jsonl.v1")).unwrap(),
            format!("{old}\n")
        );
    }
}
