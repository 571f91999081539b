//! The state file: engine memory plus actuations that were under way, written atomically (temp
//! file in the same directory, fsync, rename, fsync of the directory) so a crash leaves either
//! the old or the new file, never half of one.
//!
//! Actuations are written *ahead*: an [`Pending`] entry is persisted before the platform is
//! called and removed once the outcome is known. After a crash the next start compares each
//! pending entry with what the platform reports (see `Controller::reconcile`), so an actuation
//! that happened is remembered (its cooldown holds) and one that did not is simply dropped.

use std::io::Write;
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::shadow::ShadowPool;
use crate::engine::Memory;
use crate::time::Timestamp;

/// Written as `format`, checked on load.
pub const STATE_FORMAT: &str = "poolpilot-state";
pub const STATE_VERSION: u32 = 1;

/// Everything the daemon must not forget across a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistedState {
    pub format: String,
    pub version: u32,
    pub saved_at: Timestamp,
    pub memory: Memory,
    /// Actuations sent (or being drained) whose outcome was not yet recorded in `memory`.
    #[serde(default)]
    pub pending: Vec<Pending>,
    /// Would-be pools of shadow and dry-run pools.
    #[serde(default)]
    pub shadows: BTreeMap<String, ShadowPool>,
}

impl PersistedState {
    pub fn new(
        saved_at: Timestamp,
        memory: Memory,
        pending: Vec<Pending>,
        shadows: BTreeMap<String, ShadowPool>,
    ) -> PersistedState {
        PersistedState {
            format: STATE_FORMAT.into(),
            version: STATE_VERSION,
            saved_at,
            memory,
            pending,
            shadows,
        }
    }
}

/// An actuation whose outcome is not in memory yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub pool: String,
    pub from: u32,
    pub to: u32,
    pub since: Timestamp,
    pub kind: PendingKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingKind {
    /// A `scale_to` call (scale-up, or scale-down without drain bookkeeping).
    Scale,
    /// A drain followed by a scale-down; may take minutes.
    Drain,
}

/// What was found at the state path.
#[derive(Debug)]
pub enum Loaded {
    Ok(PersistedState),
    Missing,
    /// Unreadable, not JSON, or another format/version; the text says which.
    Corrupt(String),
}

impl Loaded {
    /// Metric label and `/status` value.
    pub fn label(&self) -> &'static str {
        match self {
            Loaded::Ok(_) => "ok",
            Loaded::Missing => "missing",
            Loaded::Corrupt(_) => "corrupt",
        }
    }
}

pub fn load(path: &Path) -> Loaded {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
        Err(e) => return Loaded::Corrupt(format!("cannot read {}: {e}", path.display())),
    };
    match serde_json::from_slice::<PersistedState>(&bytes) {
        Ok(s) if s.format == STATE_FORMAT && s.version == STATE_VERSION => Loaded::Ok(s),
        Ok(s) => Loaded::Corrupt(format!(
            "{}: format {} v{} is not {STATE_FORMAT} v{STATE_VERSION}",
            path.display(),
            s.format,
            s.version
        )),
        Err(e) => Loaded::Corrupt(format!("{}: {e}", path.display())),
    }
}

/// Writes `state` to `path` atomically and durably.
pub fn save(path: &Path, state: &PersistedState) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    // Same directory, so the rename is atomic; the pid keeps two daemons' temp files apart.
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        serde_json::to_writer(&mut file, state)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PersistedState {
        let mut memory = Memory::default();
        memory.record_actuation("etl", 2, 5, Timestamp::from_secs(100));
        let pending = vec![Pending {
            pool: "etl".into(),
            from: 5,
            to: 3,
            since: Timestamp::from_secs(200),
            kind: PendingKind::Drain,
        }];
        PersistedState::new(Timestamp::from_secs(300), memory, pending, BTreeMap::new())
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        save(&path, &sample()).unwrap();
        match load(&path) {
            Loaded::Ok(s) => assert_eq!(s, sample()),
            other => panic!("expected Ok, got {other:?}"),
        }
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
    }

    #[test]
    fn missing_corrupt_and_foreign_files_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(load(&path).label(), "missing");
        std::fs::write(&path, "{\"format\":\"poolpilot-state\",\"vers").unwrap();
        assert_eq!(load(&path).label(), "corrupt");
        let mut other = sample();
        other.version = 99;
        std::fs::write(&path, serde_json::to_vec(&other).unwrap()).unwrap();
        match load(&path) {
            Loaded::Corrupt(why) => assert!(why.contains("v99"), "{why}"),
            l => panic!("{l:?}"),
        }
    }

    /// A state file as version 0.1.0 wrote it before `spend` and `hold_scale_down_until`
    /// existed: it loads, and its cooldown survives.
    #[test]
    fn a_state_file_written_before_a_field_existed_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(
            &path,
            r#"{"format":"poolpilot-state","version":1,"saved_at":300000,
                "memory":{"pools":{"etl":{"recommendations":[],"scale_events":[],
                "last_scale_up":100000,"last_scale_down":null}}}}"#,
        )
        .unwrap();
        match load(&path) {
            Loaded::Ok(s) => assert_eq!(
                s.memory.pools["etl"].last_scale_up,
                Some(Timestamp::from_secs(100))
            ),
            other => panic!("expected Ok, got {other:?}"),
        }
    }

    #[test]
    fn a_save_replaces_the_previous_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "x".repeat(100_000)).unwrap();
        save(&path, &sample()).unwrap();
        assert!(matches!(load(&path), Loaded::Ok(_)));
    }
}
