//! `poolpilot run --config FILE [--dry-run] [--record FILE] [--leader-election MODE]`: the daemon.

use std::path::PathBuf;

use crate::daemon::{self, RunOptions};
use crate::settings::{LeaderMode, Settings};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Daemon settings (YAML); `POOLPILOT_*` environment variables override it.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Decide, log and record, but never change a pool (every pool acts as `mode: shadow`).
    #[arg(long)]
    pub dry_run: bool,
    /// Append every tick's observations and decisions to FILE, in the recording format
    /// `poolpilot simulate --trace FILE --trace-format recording` replays.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Elect a leader through the settings' Kubernetes Lease: `auto` (the settings' default)
    /// only inside a cluster or with `leader_election.kubeconfig`; `on`; `off` (actuate alone).
    /// Overrides `leader_election.mode`.
    #[arg(long, value_name = "MODE", value_enum)]
    pub leader_election: Option<LeaderMode>,
}

/// Loads the settings, sets up logging and runs the daemon on a small tokio runtime until
/// SIGTERM/SIGINT. Exit code 0 after a clean stop, 2 on a start-up error.
pub fn run(args: RunArgs) -> anyhow::Result<i32> {
    let loaded = match Settings::load(args.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            return Ok(2);
        }
    };
    let settings = loaded.settings;
    crate::telemetry::init_tracing(settings.log_format == "json");
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    crate::daemon::heap::bound_heap_growth();
    // Two worker threads: the loop, the HTTP server and drains are all I/O-bound.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let options = RunOptions {
        dry_run: args.dry_run,
        record: args.record,
        leader_election: args.leader_election,
    };
    match runtime.block_on(daemon::run(settings, options)) {
        Ok(()) => Ok(0),
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "poolpilot daemon cannot start");
            Ok(2)
        }
    }
}
