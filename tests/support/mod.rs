//! Helpers shared by the integration tests, one module for all of them: each `tests/*.rs`
//! says `mod support;` and uses the parts it needs.
//!
//! - here: [`peer`] (a real peer's setting from `tests/run-all.sh`), [`free_port`], [`wait_until`]
//! - [`daemon`]: the built `poolpilot run` binary, its endpoints and metrics
//! - [`kube`]: the real kube-apiserver (tests/peers/kube.sh): clients, a Deployment, a scene
//! - [`moto`]: moto (tests/peers/moto.sh): SDK clients, groups from a launch template
//! - [`spark`]: a fake Spark master `/json/`, and real Spark processes of a test's own
//! - [`agent`]: an instance agent that plays EC2 for a moto group with real Spark workers
//! - [`prometheus`]: the real Prometheus (scrape a daemon, query) and metric names in a file
//! - [`faulty_http`]: a raw-TCP server that misbehaves on purpose
//! - [`trino_fixture`]: a Trino / Presto coordinator fixture
//! - [`yarn_fixture`]: a YARN ResourceManager fixture (REST metrics, scheduler, nodes; decommission)
//! - [`sim`]: the shared traces of the simulator tests
//! - [`celery`]: real Celery workers, tasks and their ledger (Redis / RabbitMQ brokers)
//!
//! Every test binary compiles all of it and uses a part, so unused items are not warned about
//! here (`dead_code` is allowed for the whole module tree).
#![allow(dead_code)]

pub mod agent;
pub mod celery;
pub mod daemon;
pub mod faulty_http;
pub mod kube;
pub mod moto;
pub mod prometheus;
pub mod sim;
pub mod spark;
pub mod trino_fixture;
pub mod yarn_fixture;

use std::time::Duration;

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

/// A free loopback port (bound, then released for the process the test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 200 ms until it is true or `within` passes.
pub async fn wait_until<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    // Counted sleeps rather than clock reads (the clock is read only in src/time.rs).
    let rounds = (within.as_millis() / 200).max(1);
    for _ in 0..rounds {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    check().await
}
