//! What `/status` shows: per pool current, desired, mode, the last reason chain, signal
//! freshness, spend, and why a pool is held. Built from data the loop already has; never holds
//! a credential (source names and errors are credential-free by construction in `sources`).
//! Times are RFC 3339 UTC (`2026-11-25T09:00:00.000Z`), for people and dashboards.

use std::time::Duration;

use serde::Serialize;

use crate::time::Timestamp;

#[derive(Debug, Clone, Default, Serialize)]
pub struct DaemonStatus {
    /// This instance may actuate (always true without leader election).
    pub leader: bool,
    pub leader_election: bool,
    pub dry_run: bool,
    #[serde(with = "humantime_serde")]
    pub tick_interval: Duration,
    pub ticks: u64,
    #[serde(serialize_with = "crate::time::rfc3339_opt")]
    pub last_tick_at: Option<Timestamp>,
    pub policies: PolicySetStatus,
    pub state: StateStatus,
    pub budget: Option<BudgetStatus>,
    pub pools: Vec<PoolView>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PolicySetStatus {
    #[serde(serialize_with = "crate::time::rfc3339_opt")]
    pub loaded_at: Option<Timestamp>,
    pub pools: usize,
    /// Errors of the last rejected reload (empty when the last attempt succeeded).
    pub last_rejected: Vec<String>,
    #[serde(serialize_with = "crate::time::rfc3339_opt")]
    pub last_rejected_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StateStatus {
    pub path: String,
    /// `ok`, `missing` or `corrupt` at start.
    pub loaded: String,
    pub load_detail: Option<String>,
    #[serde(serialize_with = "crate::time::rfc3339_opt")]
    pub last_saved_at: Option<Timestamp>,
    pub last_save_error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BudgetStatus {
    pub limit_per_hour: f64,
    /// Current sizes × prices.
    pub spend_per_hour: f64,
    /// Desired sizes × prices (after the budget).
    pub desired_per_hour: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PoolView {
    pub pool: String,
    pub mode: String,
    /// How a change is applied now: `actuate`, `shadow`, `dry_run`, `follower` or `paused`.
    pub actuation: String,
    pub platform: Option<String>,
    pub current: Option<u32>,
    pub ready: Option<u32>,
    pub desired: Option<u32>,
    /// Why the pool is not actuated this tick (status unreadable, actuator not set up).
    pub held_because: Option<String>,
    pub reasons: Vec<ReasonView>,
    pub signals: Vec<SignalView>,
    pub spend: SpendView,
    /// Shadow and dry-run pools: the would-be pool beside the real one.
    pub shadow: Option<ShadowView>,
    pub last_actuation: Option<ActuationView>,
    pub drain_in_flight: Option<DrainView>,
    /// The run-time pause in force (a pin, else a hold, else a direction), if any.
    pub paused: Option<PauseView>,
    /// Every active pause from every source (annotation, ASG tag, admin).
    pub pauses: Vec<PauseView>,
    /// Pause marks that could not be read (not applied as written; no scale-down meanwhile).
    pub pause_problems: Vec<String>,
}

/// A run-time pause as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PauseView {
    /// `hold`, `pin`, `scale_in` or `scale_out`.
    pub kind: &'static str,
    /// The pinned size (`pin` only).
    pub replicas: Option<u32>,
    /// `in` or `out` (direction pauses only).
    pub direction: Option<&'static str>,
    /// When it lapses by itself; `null` = until removed.
    #[serde(serialize_with = "crate::time::rfc3339_opt")]
    pub until: Option<Timestamp>,
    /// `annotation`, `asg_tag` or `admin`.
    pub source: &'static str,
}

impl PauseView {
    pub fn of(p: &crate::engine::Pause) -> PauseView {
        PauseView {
            kind: p.kind.label(),
            replicas: match p.kind {
                crate::engine::PauseKind::Pin { replicas } => Some(replicas),
                _ => None,
            },
            direction: p.kind.direction(),
            until: p.until,
            source: p.source.label(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReasonView {
    pub stage: &'static str,
    pub text: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SignalView {
    pub index: usize,
    /// The signal kind (`trino`, `spark`, …).
    pub kind: &'static str,
    pub source: String,
    /// `fresh` or `missing`.
    pub state: &'static str,
    pub demand: Option<f64>,
    #[serde(serialize_with = "crate::time::rfc3339_opt")]
    pub observed_at: Option<Timestamp>,
    pub age_seconds: Option<f64>,
    #[serde(serialize_with = "crate::time::rfc3339_opt")]
    pub missing_since: Option<Timestamp>,
    pub fault: Option<&'static str>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SpendView {
    pub money_total: f64,
    pub worker_hours_total: f64,
    pub price_per_worker_hour: f64,
    pub per_hour_now: f64,
    pub max_per_hour: Option<f64>,
}

/// What enforcing the policy would have run, beside what really runs. Queue-wait estimates
/// are rough: 0 when ready workers cover the demand, the boot time left when the ordered size
/// covers it, `null` when even the ordered size falls short (the wait then grows with the
/// backlog). The real pool's booting workers count a whole `boot_time` (their age is unknown).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShadowView {
    pub would_be_workers: u32,
    pub would_be_ready: u32,
    pub would_be_cost_per_hour: f64,
    pub would_be_est_queue_wait_seconds: Option<f64>,
    pub real_workers: Option<u32>,
    pub real_cost_per_hour: Option<f64>,
    pub real_est_queue_wait_seconds: Option<f64>,
    /// `max(demand / per_worker)` over the fresh signals.
    pub demand_in_workers: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActuationView {
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub at: Timestamp,
    pub from: u32,
    pub to: u32,
    /// `ok`, `dry_run`, or the actuator error label.
    pub outcome: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrainView {
    pub from: u32,
    pub to: u32,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub since: Timestamp,
    pub aborting: bool,
}

impl DaemonStatus {
    /// Ready once the policies are loaded and a first tick has completed, and not when the
    /// loop has stalled for more than three tick intervals. (A sidecar deployment probes
    /// liveness only, so this never takes its host pod out of a Service.)
    pub fn readiness(&self, now: Timestamp) -> Result<(), String> {
        if self.policies.loaded_at.is_none() {
            return Err("policies not loaded yet".into());
        }
        let Some(last) = self.last_tick_at else {
            return Err("no complete tick yet".into());
        };
        let stalled = now.since(last);
        if stalled > self.tick_interval * 3 {
            return Err(format!(
                "the control loop has not completed a tick for {} (tick {})",
                humantime::format_duration(Duration::from_secs(stalled.as_secs())),
                humantime::format_duration(self.tick_interval)
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        let s = DaemonStatus {
            last_tick_at: Some(Timestamp::parse_rfc3339("2026-11-25T09:00:00.250Z").unwrap()),
            ..DaemonStatus::default()
        };
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["last_tick_at"], "2026-11-25T09:00:00.250Z");
        assert!(json["policies"]["loaded_at"].is_null());
    }

    #[test]
    fn ready_after_a_tick_until_the_loop_stalls_three_ticks() {
        let mut s = DaemonStatus {
            tick_interval: Duration::from_secs(5),
            ..DaemonStatus::default()
        };
        assert!(s.readiness(Timestamp::from_secs(100)).is_err());
        s.last_tick_at = Some(Timestamp::from_secs(100));
        let why = s.readiness(Timestamp::from_secs(101)).unwrap_err();
        assert!(why.contains("policies not loaded"), "{why}");
        s.policies.loaded_at = Some(Timestamp::from_secs(99));
        assert!(s.readiness(Timestamp::from_secs(115)).is_ok());
        let why = s.readiness(Timestamp::from_secs(116)).unwrap_err();
        assert!(why.contains("16s"), "{why}");
    }
}
