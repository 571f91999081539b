//! The state file: engine memory plus actuations that were under way, written atomically (temp
//! file in the same directory, fsync, rename, fsync of the directory) so a crash leaves either
//! the old or the new file, never half of one.
//!
//! Actuations are written *ahead*: an [`Pending`] entry is persisted before the platform is
//! called and removed once the outcome is known. After a crash the next start compares each
//! pending entry with what the platform reports (see `Controller::reconcile`), so an actuation
//! that happened is remembered (its cooldown holds) and one that did not is simply dropped.
//!
//! The path is checked before every write ([`check_path`]): the file is only ever a regular
//! file, so a `state_path` naming `/dev/null`, a directory or a symlink out of its directory is
//! refused instead of being renamed over (a daemon running as root once replaced the host's
//! `/dev/null`).

use std::io::Write;
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::shadow::ShadowPool;
use crate::engine::{Memory, Pause};
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
    /// Pauses set through the admin endpoint, by pool (platform pauses live on the platform).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub admin_pauses: BTreeMap<String, Pause>,
}

/// [`PersistedState`] borrowed, for writing: the daemon saves every tick, and cloning the whole
/// memory to save it cost more than writing it (the soak bench, 1,000 pools). Serialises to the
/// same document ([`PersistedState::view`]; a unit test round-trips it).
#[derive(Debug, Serialize)]
pub struct StateView<'a> {
    format: &'static str,
    version: u32,
    saved_at: Timestamp,
    memory: &'a Memory,
    pending: &'a [Pending],
    shadows: &'a BTreeMap<String, ShadowPool>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    admin_pauses: BTreeMap<String, Pause>,
}

impl<'a> StateView<'a> {
    pub fn new(
        saved_at: Timestamp,
        memory: &'a Memory,
        pending: &'a [Pending],
        shadows: &'a BTreeMap<String, ShadowPool>,
        admin_pauses: BTreeMap<String, Pause>,
    ) -> StateView<'a> {
        StateView {
            format: STATE_FORMAT,
            version: STATE_VERSION,
            saved_at,
            memory,
            pending,
            shadows,
            admin_pauses,
        }
    }
}

impl PersistedState {
    /// This state borrowed, as [`save`] takes it.
    pub fn view(&self) -> StateView<'_> {
        StateView::new(
            self.saved_at,
            &self.memory,
            &self.pending,
            &self.shadows,
            self.admin_pauses.clone(),
        )
    }

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
            admin_pauses: BTreeMap::new(),
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

/// A state file larger than this is not one poolpilot wrote (a few KiB per pool).
const MAX_STATE_BYTES: u64 = 256 << 20;

pub fn load(path: &Path) -> Loaded {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.len() > MAX_STATE_BYTES
    {
        return Loaded::Corrupt(format!(
            "{}: {} bytes, more than a state file can hold ({MAX_STATE_BYTES})",
            path.display(),
            meta.len()
        ));
    }
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

/// Why `path` cannot hold the state file, or the file to write: `path` itself, or the target
/// of a symlink that stays in the same directory. The file may be missing (it is created);
/// when it exists it must be a regular file, because each save renames a new file over it.
pub fn check_path(path: &Path) -> Result<PathBuf, String> {
    check(path, 0)
}

/// `hops`: symlinks followed so far (a loop of links is refused).
fn check(path: &Path, hops: u32) -> Result<PathBuf, String> {
    if path.file_name().is_none() {
        return Err(format!(
            "`{}` names no file; give a file path such as /var/lib/poolpilot/state.json",
            path.display()
        ));
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match path.parent().map(std::fs::metadata) {
                Some(Ok(parent)) if !parent.is_dir() => Err(format!(
                    "`{}`: its parent is not a directory",
                    path.display()
                )),
                _ => Ok(path.to_path_buf()),
            };
        }
        Err(e) => return Err(format!("`{}`: cannot inspect: {e}", path.display())),
    };
    let kind = meta.file_type();
    if kind.is_file() {
        Ok(path.to_path_buf())
    } else if kind.is_dir() {
        Err(format!(
            "`{}` is a directory; name a file in it, e.g. `{}`",
            path.display(),
            path.join("state.json").display()
        ))
    } else if kind.is_symlink() {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let link = std::fs::read_link(path)
            .map_err(|e| format!("`{}`: cannot read the link: {e}", path.display()))?;
        let target = dir.join(link);
        let inside = match (target.parent(), target.file_name()) {
            (Some(parent), Some(_)) => {
                std::fs::canonicalize(parent).ok() == std::fs::canonicalize(dir).ok()
            }
            _ => false,
        };
        if !inside || hops >= 8 {
            return Err(format!(
                "`{}` is a symbolic link to `{}`, outside its directory; the state file must \
                 live in a directory the daemon owns",
                path.display(),
                target.display()
            ));
        }
        check(&target, hops + 1)
    } else {
        Err(format!(
            "`{}` is not a regular file (a device, socket or FIFO); each save replaces the \
             state file, so it must name a regular file or none",
            path.display()
        ))
    }
}

/// Writes `state` to `path` atomically and durably, after [`check_path`] (so nothing but a
/// regular file is ever replaced).
pub fn save(path: &Path, state: &StateView<'_>) -> std::io::Result<()> {
    let path = &check_path(path).map_err(std::io::Error::other)?;
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
        // Serialised whole, then one write: `to_writer` on a bare `File` made a system call
        // per JSON token (the soak bench saw 900 million writes for 1,000 pools in a day).
        let mut text = serde_json::to_vec(state)?;
        text.push(b'\n');
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&text)?;
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
        save(&path, &sample().view()).unwrap();
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
    fn devices_directories_and_outward_symlinks_are_refused_before_any_write() {
        // Only inspected: check_path refuses before save would open anything.
        let why = check_path(Path::new("/dev/null")).unwrap_err();
        assert!(why.contains("not a regular file"), "{why}");
        assert!(
            check_path(Path::new("/"))
                .unwrap_err()
                .contains("names no file")
        );
        let dir = tempfile::tempdir().unwrap();
        let why = check_path(dir.path()).unwrap_err();
        assert!(why.contains("is a directory"), "{why}");
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("elsewhere.json");
        std::fs::write(&target, "{}").unwrap();
        let link = dir.path().join("state.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let why = check_path(&link).unwrap_err();
        assert!(why.contains("outside its directory"), "{why}");
        assert!(save(&link, &sample().view()).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "{}", "untouched");
    }

    #[test]
    fn a_save_never_replaces_a_non_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("state.json");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let error = save(&socket, &sample().view()).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
        let meta = std::fs::symlink_metadata(&socket).unwrap();
        assert!(!meta.is_file(), "the socket is still there");
    }

    #[test]
    fn a_symlink_inside_its_directory_is_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("state-real.json");
        let link = dir.path().join("state.json");
        std::os::unix::fs::symlink("state-real.json", &link).unwrap();
        assert_eq!(check_path(&link).unwrap(), real);
        save(&link, &sample().view()).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(matches!(load(&real), Loaded::Ok(_)));
    }

    #[test]
    fn a_save_replaces_the_previous_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "x".repeat(100_000)).unwrap();
        save(&path, &sample().view()).unwrap();
        assert!(matches!(load(&path), Loaded::Ok(_)));
    }
}
