//! The typed reason chain: one entry per pipeline stage that shaped the number. The same
//! values feed logs, the `reason` metric label, `/status`, `poolpilot explain` and the
//! simulator's timelines.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::pause::{Pause, PauseKind};
use super::signal::SignalFault;
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// What the missing-signal rule did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingAction {
    /// Some signals still answer: scale-up allowed, scale-down not.
    NoScaleDown,
    /// No signal answers: keep the current size.
    Hold,
    /// No signal answered for `hold_for`: raised to the fallback size.
    Fallback,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Reason {
    /// `mode: paused` (`by: None`: nothing changes), or a run-time pause (annotation, ASG tag,
    /// admin endpoint; see `engine::pause`) that decided or changed the number.
    Paused {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Pause>,
    },
    /// One or more signals are missing or stale.
    SignalMissing {
        missing: usize,
        since: Timestamp,
        fault: SignalFault,
        action: MissingAction,
    },
    /// Demand converted to workers: max over signals of `ceil(demand / per_worker)`.
    Raw {
        workers: u32,
        demand: f64,
        per_worker: f64,
        signal: usize,
    },
    /// `clear_backlog_within`: the size that starts the waiting work within the deadline,
    /// counting the turnover measured online (engine::backlog has the arithmetic).
    Backlog {
        workers: u32,
        /// Demand in workers (max over signals of demand / per_worker).
        demand: f64,
        rise_per_s: f64,
        turnover_per_s: f64,
        within_s: u64,
        boot_s: u64,
        current: u32,
    },
    /// `clear_backlog_within` set but the turnover is not measured yet: proportional target.
    BacklogUnknown {
        samples: u32,
        needed: u32,
    },
    /// Demand within `tolerance` of what the current size carries: keep the current size.
    WithinTolerance {
        ratio: f64,
        tolerance: f64,
    },
    /// Scale-to-zero: demand not above the activation threshold.
    BelowActivation {
        demand: f64,
        threshold: f64,
    },
    ScheduleFloor {
        min: u32,
        schedule: usize,
    },
    /// `target.prewarm`: the learned rhythm expects `demand` workers within `lead_s`.
    Forecast {
        workers: u32,
        demand: f64,
        lead_s: u64,
    },
    /// `target.prewarm` is on but has not seen a whole season yet.
    ForecastOff {
        history_s: u64,
        needed_s: u64,
    },
    BoundMin {
        min: u32,
    },
    BoundMax {
        max: u32,
    },
    /// State was lost or is new: no scale-down until the down window has refilled.
    ConservativeStart {
        until: Timestamp,
    },
    /// Scale-up uses the lowest recommendation of the window (HPA).
    ScaleUpStabilized {
        window_s: u64,
        from: u32,
        to: u32,
    },
    /// Scale-down uses the highest recommendation of the window (HPA).
    ScaleDownStabilized {
        window_s: u64,
        from: u32,
        to: u32,
    },
    Cooldown {
        direction: Direction,
        remaining_s: u64,
    },
    /// `max_step` per period (HPA Pods/Percent policies).
    RateLimit {
        direction: Direction,
        limit: u32,
    },
    FlapBudget {
        reversals_last_hour: u32,
        max: u32,
    },
    /// The flap budget is spent, but the load needs `needed` workers (work is queued beyond
    /// what the pool carries, or the backlog deadline asks for them): the scale-up goes ahead,
    /// up to `needed`.
    FlapBudgetNeeded {
        reversals_last_hour: u32,
        max: u32,
        needed: u32,
    },
    /// Workers ordered recently are still booting: no scale-down until they are ready.
    Booting {
        booting: u32,
    },
    CostCap {
        max_workers: u32,
        max_per_hour: f64,
    },
    GlobalBudget {
        allowed: u32,
        budget_per_hour: f64,
    },
    /// The pools' minimums alone exceed the global budget; minimums are kept.
    BudgetBelowMinimums {
        minimums_per_hour: f64,
        budget_per_hour: f64,
    },
}

impl Reason {
    /// Low-cardinality label for the `reason` metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Reason::Paused { .. } => "paused",
            Reason::SignalMissing { .. } => "signal_missing",
            Reason::Raw { .. } => "raw",
            Reason::Backlog { .. } => "backlog",
            Reason::BacklogUnknown { .. } => "backlog_unknown",
            Reason::WithinTolerance { .. } => "within_tolerance",
            Reason::BelowActivation { .. } => "below_activation",
            Reason::ScheduleFloor { .. } => "schedule_floor",
            Reason::Forecast { .. } => "forecast",
            Reason::ForecastOff { .. } => "forecast_off",
            Reason::BoundMin { .. } => "bound_min",
            Reason::BoundMax { .. } => "bound_max",
            Reason::ConservativeStart { .. } => "conservative_start",
            Reason::ScaleUpStabilized { .. } => "scale_up_stabilized",
            Reason::ScaleDownStabilized { .. } => "scale_down_stabilized",
            Reason::Cooldown { .. } => "cooldown",
            Reason::RateLimit { .. } => "rate_limit",
            Reason::FlapBudget { .. } => "flap_budget",
            Reason::FlapBudgetNeeded { .. } => "flap_budget_needed",
            Reason::Booting { .. } => "booting",
            Reason::CostCap { .. } => "cost_cap",
            Reason::GlobalBudget { .. } => "global_budget",
            Reason::BudgetBelowMinimums { .. } => "budget_below_minimums",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Paused { by: None } => write!(f, "pool is paused: size left as it is"),
            Reason::Paused { by: Some(p) } => {
                match p.kind {
                    PauseKind::Hold => write!(f, "paused: size left as it is")?,
                    PauseKind::Pin { replicas } => write!(f, "paused at {replicas} replicas")?,
                    PauseKind::ScaleIn => write!(f, "scale-in paused: no scale-down")?,
                    PauseKind::ScaleOut => write!(f, "scale-out paused: no scale-up")?,
                }
                write!(f, " (set by {}", p.source.label())?;
                match p.until {
                    Some(until) => write!(f, ", until {until})"),
                    None => write!(f, ", until removed)"),
                }
            }
            Reason::SignalMissing {
                missing,
                since,
                fault,
                action,
            } => {
                write!(
                    f,
                    "{missing} signal(s) missing since {since} ({}): ",
                    fault.label()
                )?;
                match action {
                    MissingAction::NoScaleDown => write!(f, "scale-up allowed, scale-down blocked"),
                    MissingAction::Hold => write!(f, "holding the current size"),
                    MissingAction::Fallback => {
                        write!(f, "hold_for passed: raised to the fallback size")
                    }
                }
            }
            Reason::Raw {
                workers,
                demand,
                per_worker,
                signal,
            } => {
                write!(
                    f,
                    "signal {signal}: demand {demand} / {per_worker} per worker = {workers} workers"
                )
            }
            Reason::Backlog {
                workers,
                demand,
                rise_per_s,
                turnover_per_s,
                within_s,
                boot_s,
                current,
            } => {
                let work = demand + rise_per_s * *boot_s as f64;
                let t = *within_s as f64;
                let placed = f64::from(*current) * (1.0 + turnover_per_s * t);
                write!(
                    f,
                    "backlog: demand {demand:.2} + rise {rise_per_s:.4}/s x boot {boot_s}s = {work:.2} worker-loads; \
                     {current} workers place {current} x (1 + {turnover_per_s:.5}/s x {within_s}s) = {placed:.2} within {within_s}s"
                )?;
                if work > placed {
                    let per_new = 1.0 + turnover_per_s * (t - *boot_s as f64).max(0.0);
                    write!(f, "; each new worker places {per_new:.2}")?;
                }
                write!(f, " = {workers} workers")
            }
            Reason::BacklogUnknown { samples, needed } => write!(
                f,
                "backlog: turnover not measured yet ({samples} of {needed} drains seen): proportional target"
            ),
            Reason::WithinTolerance { ratio, tolerance } => {
                write!(
                    f,
                    "load ratio {ratio:.3} is within the {tolerance} tolerance of target: keep current size"
                )
            }
            Reason::BelowActivation { demand, threshold } => {
                write!(
                    f,
                    "demand {demand} is not above the activation threshold {threshold}: stay at zero"
                )
            }
            Reason::ScheduleFloor { min, schedule } => {
                write!(f, "schedule {schedule} is active: at least {min}")
            }
            Reason::Forecast {
                workers,
                demand,
                lead_s,
            } => write!(
                f,
                "forecast: the learned rhythm expects {demand:.2} workers of demand within {lead_s}s (boot time): at least {workers}"
            ),
            Reason::ForecastOff {
                history_s,
                needed_s,
            } => write!(
                f,
                "forecast off: {:.1} h of history, needs {:.0} h (one whole season)",
                *history_s as f64 / 3600.0,
                *needed_s as f64 / 3600.0
            ),
            Reason::BoundMin { min } => write!(f, "raised to bounds.min {min}"),
            Reason::BoundMax { max } => write!(f, "capped at bounds.max {max}"),
            Reason::ConservativeStart { until } => {
                write!(f, "state was missing or new: no scale-down until {until}")
            }
            Reason::ScaleUpStabilized { window_s, from, to } => {
                write!(
                    f,
                    "scale-up stabilization ({window_s}s window): {from} -> {to}"
                )
            }
            Reason::ScaleDownStabilized { window_s, from, to } => {
                write!(
                    f,
                    "scale-down stabilization ({window_s}s window, highest recent recommendation): {from} -> {to}"
                )
            }
            Reason::Cooldown {
                direction,
                remaining_s,
            } => {
                write!(
                    f,
                    "scale-{} cooldown: {remaining_s}s left",
                    direction.as_str()
                )
            }
            Reason::RateLimit { direction, limit } => write!(
                f,
                "scale-{} rate limit: at most {limit} now",
                direction.as_str()
            ),
            Reason::FlapBudget {
                reversals_last_hour,
                max,
            } => {
                write!(
                    f,
                    "flap budget spent: {reversals_last_hour} reversals in the last hour (max {max})"
                )
            }
            Reason::FlapBudgetNeeded {
                reversals_last_hour,
                max,
                needed,
            } => write!(
                f,
                "flap budget spent ({reversals_last_hour} reversals in the last hour, max {max}), \
                 but the load needs {needed} workers: scale up anyway"
            ),
            Reason::Booting { booting } => write!(
                f,
                "{booting} worker(s) still booting: scale-down waits for them"
            ),
            Reason::CostCap {
                max_workers,
                max_per_hour,
            } => {
                write!(
                    f,
                    "pool cost cap {max_per_hour}/h allows {max_workers} workers"
                )
            }
            Reason::GlobalBudget {
                allowed,
                budget_per_hour,
            } => {
                write!(
                    f,
                    "global budget {budget_per_hour}/h (shared by priority) allows {allowed} workers"
                )
            }
            Reason::BudgetBelowMinimums {
                minimums_per_hour,
                budget_per_hour,
            } => write!(
                f,
                "pool minimums cost {minimums_per_hour:.2}/h, above the global budget {budget_per_hour:.2}/h: minimums kept"
            ),
        }
    }
}
