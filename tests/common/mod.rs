//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod moto;

/// The address (or other setting) of a real peer started by `tests/run-all.sh`, read from `var`.
///
/// - set: returns it;
/// - unset with `CI=true`: the test FAILS (a peer that did not start is never a skip in CI);
/// - unset with `POOLPILOT_SKIP_PEERS=1`: returns `None` after saying so on stderr;
/// - unset otherwise: the test fails and says how to start the peers.
pub fn peer(var: &str) -> Option<String> {
    if let Ok(value) = std::env::var(var) {
        return Some(value);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{var} is not set: the peer did not start (CI=true makes this a failure)");
    }
    if std::env::var("POOLPILOT_SKIP_PEERS").as_deref() == Ok("1") {
        eprintln!("NOTE: {var} unset and POOLPILOT_SKIP_PEERS=1: this real-peer test did not run");
        return None;
    }
    panic!(
        "{var} is not set: run `bash tests/run-all.sh` (starts the peers) or set POOLPILOT_SKIP_PEERS=1"
    );
}
