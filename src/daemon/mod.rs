//! The daemon (`poolpilot run`): a tokio control loop around the pure engine.
//!
//! - [`controller`]: one tick — observe, `engine::step`, actuate, report, persist; generic over
//!   the narrow I/O traits ([`pools::Wiring`], [`controller::Clock`]) so tests use fakes
//! - `observe`: all sources and statuses polled concurrently, each bounded
//! - [`actuate`]: scale-ups, background drains for scale-downs, shadow/dry-run/follower paths
//! - [`actuation`]: how a decision is carried out (actuate/shadow/dry-run/follower/paused) and
//!   the scale-downs under way
//! - [`report`]: operator log lines, metrics, the `/status` document, the recording
//! - [`pool_loop`]: what the loop keeps per pool between ticks (drain under way, last seen/sent/logged)
//! - [`pools`]: per-pool runtime and the production wiring (sources, actuators, drainers)
//! - [`state`]: the atomically written state file with write-ahead actuation entries
//! - [`reload`]: policy reload on SIGHUP and on content change (ConfigMap symlink swaps too)
//! - [`record`]: `--record FILE` in the simulator's recording format
//! - [`shadow`]: shadow and dry-run pools decided on a would-be (counterfactual) pool
//! - [`leader`]: Kubernetes Lease leader election; [`lease_fence`]: the Lease read before
//!   every destructive call (`crate::fence`)
//! - [`http`] + [`status`]: `/metrics`, `/healthz`, `/readyz`, `/status`
//! - [`admin`]: `POST /admin/pools/{pool}/pause|resume` (`poolpilot pause`/`resume`)
//! - [`heap`]: glibc malloc settings that keep the resident set flat over months
//! - [`pool_metrics`]: each pool's metric handles, registered when the pool is built

pub mod actuate;
pub mod actuation;
pub mod admin;
pub mod controller;
pub mod heap;
pub mod http;
pub mod leader;
pub mod lease_fence;
pub mod observe;
pub mod pool_loop;
pub mod pool_metrics;
pub mod pools;
pub mod record;
pub mod reload;
mod report;
pub mod shadow;
pub mod state;
pub mod status;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::pin::pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::signal::unix::{SignalKind, signal};

use controller::{Clock, Controller, ControllerConfig, WallClock};
use leader::Leadership;
use pools::{RealWiring, Wiring};
use record::Recorder;
use reload::{PolicyWatcher, Reload};
use status::DaemonStatus;

use crate::settings::Settings;
use crate::telemetry::names;
use crate::time::Timestamp;

/// How long SIGTERM waits for the tick in progress, and then for drains, before persisting.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a replica that lost the lease lets its drains stop where they can before cutting
/// them off (the fence already refuses their removals; this only tidies up).
pub const FENCE_GRACE: Duration = Duration::from_secs(2);

/// Command-line options of `poolpilot run` beyond the settings file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Decide and log, never actuate (every pool behaves as `mode: shadow`).
    pub dry_run: bool,
    /// Append observations and decisions here in the recording format.
    pub record: Option<PathBuf>,
    /// `--leader-election`: overrides the settings' `leader_election.mode`.
    pub leader_election: Option<crate::settings::LeaderMode>,
}

/// Runs the daemon until SIGTERM/SIGINT. Fails at start when the policy set is invalid, the
/// listen address is taken, or leader election cannot reach the API server.
pub async fn run(settings: Settings, options: RunOptions) -> anyhow::Result<()> {
    let prometheus = crate::telemetry::prometheus_builder()
        .install_recorder()
        .context("installing the metrics recorder")?;
    crate::telemetry::describe_metrics();
    let wiring: Arc<dyn Wiring> = Arc::new(RealWiring::new());
    run_with(settings, options, wiring, Some(prometheus)).await
}

/// [`run`] with the I/O wiring given (tests pass fakes).
pub async fn run_with(
    settings: Settings,
    options: RunOptions,
    wiring: Arc<dyn Wiring>,
    prometheus: Option<PrometheusHandle>,
) -> anyhow::Result<()> {
    // Settings::load checks this too; settings built in code must not bypass it.
    state::check_path(&settings.state_path).map_err(|why| anyhow::anyhow!("state_path: {why}"))?;
    if !settings.policy_dir.exists() {
        anyhow::bail!(
            "policy_dir {} does not exist: set `policy_dir` in the settings file (or \
             POOLPILOT_POLICY_DIR); from a checkout, `poolpilot run --config examples/local.yaml` \
             reads examples/policies/",
            settings.policy_dir.display()
        );
    }
    let clock: Arc<dyn Clock> = Arc::new(WallClock);
    let board = Arc::new(RwLock::new(DaemonStatus::default()));
    let mut watcher = PolicyWatcher::new(
        vec![settings.policy_dir.clone()],
        settings.global_budget_per_hour(),
    );
    let policies = match watcher.check(true) {
        Reload::Loaded(set) => set,
        Reload::Rejected(errors) => {
            for e in &errors.0 {
                tracing::error!(error = %e, "policy error");
            }
            anyhow::bail!(
                "{} policy error(s) in {}; nothing started",
                errors.0.len(),
                settings.policy_dir.display()
            );
        }
        Reload::Unchanged => unreachable!("a forced check always loads"),
    };

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let admin_token = settings
        .admin_token()
        .map_err(|why| anyhow::anyhow!("admin_token_env: {why}"))?;
    let admin = admin::AdminPauses::default();
    let admin_changed = admin.changed.clone();
    let app = http::router(http::HttpState {
        board: board.clone(),
        clock: clock.clone(),
        prometheus: prometheus.clone(),
        admin: admin.clone(),
        admin_token,
    });
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        // The peer address lets the admin endpoint accept loopback callers without a token.
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            http_stopped.await.ok();
        })
        .await
    });
    tracing::info!(listen = %settings.listen, pools = policies.len(), tick = %humantime::format_duration(settings.tick), dry_run = options.dry_run, "poolpilot daemon starting");

    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some_and(|v| !v.is_empty());
    let election = leader::wanted(
        settings.leader_election.as_ref(),
        options.leader_election,
        in_cluster,
    )
    .map_err(anyhow::Error::msg)?;
    let mut leadership = Leadership::start(election).await.context(
        "starting leader election (to run without it: --leader-election off, or \
         POOLPILOT_LEADER_ELECTION__MODE=off)",
    )?;
    let recorder = match &options.record {
        Some(path) => Some(
            Recorder::open(path)
                .with_context(|| format!("opening the recording {}", path.display()))?,
        ),
        None => None,
    };
    let cfg = ControllerConfig {
        dry_run: options.dry_run,
        global_budget_per_hour: settings.global_budget_per_hour(),
        state_path: settings.state_path.clone(),
        tick: settings.tick,
        leader_election: leadership.enabled(),
    };
    let mut controller =
        Controller::start(cfg, wiring, clock.clone(), policies, recorder, board).await;
    controller.share_admin_pauses(admin);
    controller.set_fence(leadership.fence());

    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut interval = tokio::time::interval(settings.tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_leader = None;
    let stop_signal = loop {
        let mut forced = false;
        tokio::select! {
            _ = interval.tick() => {}
            _ = hup.recv() => forced = true,
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = leadership.changed() => {}
            _ = admin_changed.notified() => {
                // A pause or resume through the admin endpoint: on disk before the next tick.
                controller.persist(clock.now());
                continue;
            }
        }
        let now = clock.now();
        reload(&mut controller, &mut watcher, forced, now).await;
        let leader = leadership.is_leader();
        if was_leader != Some(leader) {
            if leadership.enabled() {
                tracing::info!(
                    leader,
                    "{}",
                    if leader {
                        "this instance holds the lease: it actuates"
                    } else {
                        "another instance holds the lease: computing only (follower)"
                    }
                );
            }
            if was_leader == Some(true) && !leader {
                controller.fence_drains(FENCE_GRACE).await;
            }
            was_leader = Some(leader);
        }
        if forced {
            continue; // SIGHUP reloads; the next tick runs on schedule
        }
        let started = Timestamp::now();
        let mut tick = pin!(controller.tick(now, leader));
        let interrupted = tokio::select! {
            _ = &mut tick => None,
            _ = term.recv() => Some("SIGTERM"),
            _ = int.recv() => Some("SIGINT"),
        };
        if let Some(sig) = interrupted {
            tracing::info!(signal = sig, "stopping: finishing the tick in progress");
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut tick)
                .await
                .is_err()
            {
                tracing::warn!(
                    "the tick did not finish in time and was abandoned; write-ahead entries are checked at the next start"
                );
            }
            break sig;
        }
        metrics::histogram!(names::TICK_SECONDS)
            .record(Timestamp::now().since(started).as_secs_f64());
        if let Some(p) = &prometheus {
            p.run_upkeep();
        }
    };
    tracing::info!(signal = stop_signal, "stopping: persisting state");
    controller.shutdown(SHUTDOWN_GRACE).await;
    drop(controller); // its fence holds a receiver of the election state; release needs all closed
    leadership.release().await;
    let _ = stop_http.send(());
    let _ = server.await;
    tracing::info!("poolpilot daemon stopped");
    Ok(())
}

async fn reload(
    controller: &mut Controller,
    watcher: &mut PolicyWatcher,
    forced: bool,
    now: Timestamp,
) {
    match watcher.check(forced) {
        Reload::Unchanged => {}
        Reload::Loaded(set) => {
            let pools: Vec<String> = set.iter().map(|p| p.name().to_string()).collect();
            controller.apply_policies(set, now).await;
            metrics::counter!(names::POLICY_RELOADS_TOTAL, "outcome" => "ok").increment(1);
            tracing::info!(?pools, "policies reloaded");
        }
        Reload::Rejected(errors) => {
            for e in &errors.0 {
                tracing::error!(error = %e, "policy error");
            }
            metrics::counter!(names::POLICY_RELOADS_TOTAL, "outcome" => "rejected").increment(1);
            metrics::counter!(names::POLICY_ERRORS_TOTAL).increment(errors.0.len() as u64);
            tracing::error!(
                errors = errors.0.len(),
                "policy reload rejected: the last good set stays in force"
            );
            controller.note_rejected(errors.0.iter().map(ToString::to_string).collect(), now);
        }
    }
}
