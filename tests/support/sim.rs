//! The simulator tests' side: the shared public traces and a relative error.

use std::path::PathBuf;

/// The public traces live beside the clone (`../shared/traces`), never inside it.
/// `POOLPILOT_TRACES_DIR` overrides the location.
pub fn traces_dir() -> PathBuf {
    match std::env::var_os("POOLPILOT_TRACES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/traces"),
    }
}

/// The path of a shared trace file, or `None` (after saying so) when the folder is absent
/// locally. With `CI=true` a missing trace is a failure, never a skip.
pub fn trace(file: &str) -> Option<PathBuf> {
    let path = traces_dir().join(file);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{} is missing: CI must have ../shared/traces",
            path.display()
        );
    }
    eprintln!(
        "NOTE: {} is absent; this trace test did not run",
        path.display()
    );
    None
}

/// Relative difference |a − b| / |b|.
pub fn relative_error(actual: f64, expected: f64) -> f64 {
    (actual - expected).abs() / expected.abs()
}
