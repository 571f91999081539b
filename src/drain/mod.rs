//! Engine-aware drains: empty a worker before the actuator removes it, so scale-down never kills
//! a worker that is still working (the top complaint about KEDA/HPA on batch pools).
//!
//! - [`Drainer`]: one per engine ([`trino`], [`spark`], [`celery`], [`yarn`]; [`NoDrain`] for `method: none`).
//!   It ranks candidates (cheapest to remove first), starts the drain and says when it is done.
//! - [`drain_member`]: runs one drain, bounded by the policy timeout, abandonable, observable.
//! - [`scale_down::scale_down`]: choose victims → drain them → hand the drained ones to the actuator.

pub mod celery;
pub mod scale_down;
pub mod spark;
pub mod trino;
pub mod yarn;

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::actuators::Member;
use crate::telemetry::names;
use crate::time::Timestamp;

pub use scale_down::{ScaleDownReport, scale_down};

use std::sync::Arc;

use crate::policy::{DrainMethod, DrainTarget, SignalSpec, source};

/// The drainer a policy's scale-downs use: `method` resolved against the signals (`auto` =
/// the first signal's kind), built on the first signal that can carry it out. Validation
/// refuses a method no signal can carry out, so `NoDrain` here means `none` was meant.
pub fn for_policy(
    method: DrainMethod,
    signals: &[SignalSpec],
    http: reqwest::Client,
) -> Arc<dyn Drainer> {
    match source::drain_target(method, signals) {
        Some(DrainTarget::Coordinator { url, user, presto }) => {
            let flavor = if presto {
                trino::Flavor::Presto
            } else {
                trino::Flavor::Trino
            };
            Arc::new(trino::TrinoDrainer::new(
                http,
                url,
                port_of(url),
                user,
                flavor,
            ))
        }
        Some(DrainTarget::SparkMaster { master }) => {
            Arc::new(spark::SparkDrainer::new(http, master))
        }
        Some(DrainTarget::Yarn(y)) => Arc::new(yarn::YarnDrainer::new(y)),
        Some(DrainTarget::Airflow(a)) => Arc::new(celery::CeleryDrainer::new(
            celery::AirflowRunningTasks::new(a, 100),
        )),
        Some(DrainTarget::AirflowDb(d)) => Arc::new(celery::CeleryDrainer::new(
            celery::AirflowDbRunningTasks::new(d),
        )),
        Some(DrainTarget::CeleryBroker(c)) => Arc::new(celery::BrokerDrainer::new(
            crate::sources::celery_broker::build_broker(c),
            c.queues.clone(),
            c.reply_window,
        )),
        None => Arc::new(NoDrain),
    }
}

/// The explicit or scheme-default port of a base URL.
fn port_of(url: &str) -> u16 {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.port_or_known_default())
        .unwrap_or(8080)
}

/// Why a drain call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrainError {
    /// The engine refused for lack of permission; the message says what to configure.
    #[error("forbidden: {message}")]
    Forbidden { message: String },
    /// The engine refused the request itself (e.g. an invalid state transition).
    #[error("rejected: {message}")]
    Rejected { message: String },
    /// The engine does not know this worker.
    #[error("unknown worker: {message}")]
    UnknownWorker { message: String },
    /// The member has no address to find it by in the engine.
    #[error("member {member} has no address to match an engine worker")]
    NoAddress { member: String },
    /// No answer, or an answer we could not read; may pass.
    #[error("unreachable: {message}")]
    Unreachable { message: String },
}

impl DrainError {
    pub fn label(&self) -> &'static str {
        match self {
            DrainError::Forbidden { .. } => "forbidden",
            DrainError::Rejected { .. } => "rejected",
            DrainError::UnknownWorker { .. } => "unknown_worker",
            DrainError::NoAddress { .. } => "no_address",
            DrainError::Unreachable { .. } => "unreachable",
        }
    }

    /// Worth polling again before the timeout.
    pub fn is_transient(&self) -> bool {
        matches!(self, DrainError::Unreachable { .. })
    }
}

/// A transport failure (connect, timeout, unreadable body) as a transient drain error.
pub(crate) fn unreachable(url: &str, err: reqwest::Error) -> DrainError {
    DrainError::Unreachable {
        message: format!("{url}: {err}"),
    }
}

/// The host part of `address` (`10.0.0.5`, `10.0.0.5:8080`, `http://10.0.0.5:8080/v1/status`).
pub(crate) fn host_of(address: &str) -> &str {
    let rest = address.split_once("://").map_or(address, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
}

/// Whether `host` — a worker's name for itself (a Celery node's host part, a NodeManager's
/// host) — is `member`: the member's id or its address's host, or a DNS name whose first
/// labels are one of those or the EC2 private name of the address (`ip-10-0-3-7`,
/// `ip-10-0-3-7.ec2.internal`). Case-insensitive, as DNS names are (RFC 4343).
pub(crate) fn names_member(host: &str, member: &Member) -> bool {
    let host = host.to_ascii_lowercase();
    let leads = |name: &str| {
        host.strip_prefix(name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    };
    [
        Some(member.id.as_str()),
        member.address.as_deref().map(host_of),
    ]
    .into_iter()
    .flatten()
    .filter(|k| !k.is_empty())
    .map(str::to_ascii_lowercase)
    .any(|k| leads(&k) || leads(&format!("ip-{}", k.replace('.', "-"))))
}

/// One engine's way of emptying a worker.
#[async_trait]
pub trait Drainer: Send + Sync {
    /// The drain (`trino`, `presto`, `spark`, `celery`, `yarn`, `none`) for logs and the `method` label.
    fn method(&self) -> &'static str;

    /// `true` when [`Drainer::begin`] cannot be undone (the worker will leave whatever happens),
    /// so a drain is only abandonable before it.
    fn one_way(&self) -> bool;

    /// Orders candidates cheapest-to-remove first. The default puts members that serve nothing
    /// (not ready) first and otherwise keeps the platform's order.
    async fn rank(&self, mut members: Vec<Member>) -> Result<Vec<Member>, DrainError> {
        members.sort_by_key(|m| m.ready);
        Ok(members)
    }

    /// Starts draining `member` (may be a no-op when the engine has nothing to tell).
    async fn begin(&self, member: &Member) -> Result<(), DrainError>;

    /// Whether `member` has no work left and can be removed.
    async fn is_drained(&self, member: &Member) -> Result<bool, DrainError>;

    /// Undoes [`Drainer::begin`] for a victim that stays in the pool (its drain was abandoned,
    /// failed, or timed out under `on_timeout: keep`, or the removal did not happen), so it
    /// takes work again: Celery re-adds the consumer, YARN recommissions the node. Not called
    /// by a fenced replica. The default has nothing to undo (a Spark decommission is one way).
    async fn restore(&self, _member: &Member) -> Result<(), DrainError> {
        Ok(())
    }

    /// After the platform removed `member`: clear what the drain left in the engine (YARN's
    /// exclude-file entry). Default: nothing.
    async fn forget(&self, _member: &Member) -> Result<(), DrainError> {
        Ok(())
    }
}

/// `drain.method: none`: workers are removed as they are (stateless or interruptible work).
pub struct NoDrain;

#[async_trait]
impl Drainer for NoDrain {
    fn method(&self) -> &'static str {
        "none"
    }
    fn one_way(&self) -> bool {
        false
    }
    async fn begin(&self, _member: &Member) -> Result<(), DrainError> {
        Ok(())
    }
    async fn is_drained(&self, _member: &Member) -> Result<bool, DrainError> {
        Ok(true)
    }
}

/// How one drain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainOutcome {
    Drained,
    /// Still busy when the policy timeout passed; the policy's `on_timeout` decides.
    TimedOut,
    /// The pool wanted capacity again before the one-way call (or during a reversible drain).
    Abandoned,
    Failed(DrainError),
}

impl DrainOutcome {
    pub fn label(&self) -> &'static str {
        match self {
            DrainOutcome::Drained => "drained",
            DrainOutcome::TimedOut => "timed_out",
            DrainOutcome::Abandoned => "abandoned",
            DrainOutcome::Failed(_) => "failed",
        }
    }
}

/// [`choose_victims`], falling back to the platform's order when the engine cannot rank (its
/// API is down): the drains themselves still go through the engine and keep a busy worker.
pub async fn choose_victims_or_platform_order(
    drainer: &dyn Drainer,
    members: &[Member],
    count: usize,
) -> Vec<Member> {
    match choose_victims(drainer, members, count).await {
        Ok(victims) => victims,
        Err(e) => {
            tracing::warn!(method = drainer.method(), error = %e, "could not rank workers; using the platform's order");
            choose_victims(&NoDrain, members, count)
                .await
                .unwrap_or_default()
        }
    }
}

/// Picks `count` victims: unprotected members in the drainer's order.
pub async fn choose_victims(
    drainer: &dyn Drainer,
    members: &[Member],
    count: usize,
) -> Result<Vec<Member>, DrainError> {
    let candidates: Vec<Member> = members.iter().filter(|m| !m.protected).cloned().collect();
    let mut ranked = drainer.rank(candidates).await?;
    ranked.truncate(count);
    Ok(ranked)
}

/// Drains one member: begin, then poll `is_drained` every `poll` until done or `timeout`.
/// `abort` turning `true` means the pool needs capacity again: the drain is abandoned if the
/// one-way call has not happened yet (or at any point for a reversible drainer).
pub async fn drain_member(
    drainer: &dyn Drainer,
    member: &Member,
    timeout: Duration,
    poll: Duration,
    mut abort: watch::Receiver<bool>,
) -> DrainOutcome {
    let started = Timestamp::now();
    let outcome = run_drain(drainer, member, timeout, poll, &mut abort).await;
    let elapsed = Timestamp::now().since(started);
    let labels = [("method", drainer.method()), ("outcome", outcome.label())];
    metrics::counter!(names::DRAINS_TOTAL, &labels).increment(1);
    metrics::histogram!(names::DRAIN_DURATION_SECONDS, &labels).record(elapsed.as_secs_f64());
    let reason = match &outcome {
        DrainOutcome::Failed(e) => e.to_string(),
        DrainOutcome::TimedOut => {
            format!("still busy after {}", humantime::format_duration(timeout))
        }
        DrainOutcome::Abandoned => "the pool needs the capacity again".to_owned(),
        DrainOutcome::Drained => "no work left".to_owned(),
    };
    tracing::info!(
        method = drainer.method(),
        member = %member.id,
        outcome = outcome.label(),
        elapsed_ms = elapsed.as_millis() as u64,
        %reason,
        "drain finished"
    );
    outcome
}

async fn run_drain(
    drainer: &dyn Drainer,
    member: &Member,
    timeout: Duration,
    poll: Duration,
    abort: &mut watch::Receiver<bool>,
) -> DrainOutcome {
    if *abort.borrow_and_update() {
        return DrainOutcome::Abandoned;
    }
    if let Err(e) = drainer.begin(member).await {
        return DrainOutcome::Failed(e);
    }
    let mut abandonable = !drainer.one_way();
    let wait = async {
        loop {
            match drainer.is_drained(member).await {
                Ok(true) => return DrainOutcome::Drained,
                Ok(false) => {}
                Err(e) if e.is_transient() => {
                    tracing::debug!(member = %member.id, error = %e, "drain status unavailable; polling again");
                }
                Err(e) => return DrainOutcome::Failed(e),
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                changed = abort.changed(), if abandonable => match changed {
                    Ok(()) if *abort.borrow() => return DrainOutcome::Abandoned,
                    Ok(()) => {}
                    Err(_) => abandonable = false, // nobody can ask any more
                }
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .unwrap_or(DrainOutcome::TimedOut)
}

#[cfg(test)]
pub(crate) mod tests;
