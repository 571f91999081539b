//! What the engine runs: a pool's rules, compiled once from a validated [`Policy`] (or built in
//! code, as the simulator's HPA/KEDA baselines are). The engine never reads a policy file's
//! model, so the daemon, the simulator and `explain` all decide from the same compiled form.

use std::time::Duration;

use crate::policy::{
    self, Bounds, DrainMethod, FlapBudget, MaxStep, MissingSignalRule, Mode, OnDrainTimeout,
    Policy, ScaleToZero, Schedule, SelectPolicy,
};

/// One pool's decision rules.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolRules {
    pub name: String,
    pub mode: Mode,
    /// Demand units one worker carries, one entry per signal (same order as observations).
    pub per_worker: Vec<f64>,
    pub bounds: Bounds,
    /// HPA tolerance band around the current size, per direction.
    pub tolerance: Tolerance,
    pub boot_time: Duration,
    pub scale_to_zero: Option<ScaleToZero>,
    pub schedules: Vec<Schedule>,
    pub scale_up: StepRules,
    pub scale_down: StepRules,
    pub drain: DrainRule,
    pub on_missing_signal: MissingSignalRule,
    pub flap_budget: Option<FlapBudget>,
    pub cost: CostRule,
    /// `target.clear_backlog_within`: size to start waiting work within this deadline.
    pub clear_backlog_within: Option<Duration>,
    /// `target.prewarm`: the season length the forecaster learns.
    pub prewarm_season: Option<Duration>,
}

/// The dead band of HPA `Tolerances` (`replica_calculator.go`): no change while
/// `1 - down <= ratio <= 1 + up`. Compared exactly as HPA compares, so a ratio of exactly
/// 1.1 (in float64) stays inside a 0.1 band, as it does for the HPA.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    pub down: f64,
    pub up: f64,
}

impl Tolerance {
    /// Both directions the same (the HPA's `--horizontal-pod-autoscaler-tolerance`).
    pub fn both(t: f64) -> Tolerance {
        Tolerance { down: t, up: t }
    }

    /// HPA `Tolerances.isWithin`.
    pub fn within(self, ratio: f64) -> bool {
        (1.0 - self.down) <= ratio && ratio <= (1.0 + self.up)
    }

    /// The side of the band `ratio` is on (for the reason chain).
    pub fn toward(self, ratio: f64) -> f64 {
        if ratio > 1.0 { self.up } else { self.down }
    }
}

/// Stabilization, cooldown and rate limits of one direction.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRules {
    pub stabilization: Duration,
    pub cooldown: Duration,
    pub rate: RateRules,
}

/// HPA `HPAScalingRules.policies` + `selectPolicy`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateRules {
    pub policies: Vec<RatePolicy>,
    pub select: SelectPolicy,
}

/// One HPA `HPAScalingPolicy`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatePolicy {
    pub kind: RateKind,
    pub period: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateKind {
    /// HPA `Pods`: this many workers per period.
    Workers(u32),
    /// HPA `Percent`: this percentage of the period-start size per period.
    Percent(u32),
}

impl RateRules {
    /// `workers` and `percent` over `period` (in that order), then each `policies` entry.
    pub fn compile(step: &MaxStep) -> RateRules {
        let shared = |kind| RatePolicy {
            kind,
            period: step.period,
        };
        let legacy = step
            .workers
            .map(|w| shared(RateKind::Workers(w)))
            .into_iter()
            .chain(step.percent.map(|p| shared(RateKind::Percent(p))));
        let listed = step.policies.iter().filter_map(|p| {
            let kind = match (p.workers, p.percent) {
                (Some(w), None) => RateKind::Workers(w),
                (None, Some(pc)) => RateKind::Percent(pc),
                _ => return None, // refused by validation
            };
            Some(RatePolicy {
                kind,
                period: p.period.unwrap_or(step.period),
            })
        });
        RateRules {
            policies: legacy.chain(listed).collect(),
            select: step.select,
        }
    }
}

/// How removed workers are emptied; `method` is resolved (never `auto`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DrainRule {
    pub method: DrainMethod,
    pub timeout: Duration,
    pub on_timeout: OnDrainTimeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CostRule {
    pub per_worker_hour: f64,
    /// The pool cap in money per hour, if any.
    pub max_per_hour: Option<f64>,
    /// Higher wins when the global budget binds.
    pub priority: i32,
}

impl PoolRules {
    /// Compiles a validated policy.
    pub fn compile(policy: &Policy) -> PoolRules {
        let spec = &policy.spec;
        let drain = &spec.scale_down.drain;
        PoolRules {
            name: spec.pool.clone(),
            mode: spec.mode,
            per_worker: spec.signals.iter().map(|s| s.per_worker).collect(),
            bounds: spec.bounds,
            tolerance: Tolerance {
                down: spec.scale_down.tolerance.unwrap_or(spec.tolerance),
                up: spec.scale_up.tolerance.unwrap_or(spec.tolerance),
            },
            boot_time: spec.boot_time,
            scale_to_zero: spec.scale_to_zero,
            schedules: policy.schedules.clone(),
            scale_up: StepRules {
                stabilization: spec.scale_up.stabilization,
                cooldown: spec.scale_up.cooldown,
                rate: RateRules::compile(&spec.scale_up.max_step),
            },
            scale_down: StepRules {
                stabilization: spec.scale_down.stabilization,
                cooldown: spec.scale_down.cooldown,
                rate: RateRules::compile(&spec.scale_down.max_step),
            },
            drain: DrainRule {
                method: policy::source::resolve_drain(drain.method, &spec.signals),
                timeout: drain.timeout,
                on_timeout: drain.on_timeout,
            },
            on_missing_signal: spec.on_missing_signal.clone(),
            flap_budget: spec.flap_budget,
            cost: spec
                .cost
                .as_ref()
                .map_or_else(CostRule::default, |c| CostRule {
                    per_worker_hour: c.per_worker_hour,
                    max_per_hour: c.max_per_hour,
                    priority: c.priority,
                }),
            clear_backlog_within: spec.target.as_ref().and_then(|t| t.clear_backlog_within),
            prewarm_season: spec
                .target
                .as_ref()
                .and_then(|t| t.prewarm)
                .map(|p| p.season.length()),
        }
    }

    /// The Kubernetes HPA with its defaults (anchors §2; `pkg/apis/autoscaling/v2/defaults.go`)
    /// on one AverageValue metric: target `per_worker`, tolerance 0.1, scale-up
    /// max(100 %, 4 pods) per 15 s with no window, scale-down 100 % per 15 s after a 300 s
    /// window, `minReplicas` at least 1. No cooldowns, no boot-awareness (the HPA has none for
    /// external metrics), no cost rules; removal is the platform's (`DrainMethod::None`).
    pub fn hpa(name: &str, per_worker: f64, min: u32, max: u32) -> PoolRules {
        let min = min.max(1);
        let every_15s = |kind| RatePolicy {
            kind,
            period: Duration::from_secs(15),
        };
        PoolRules {
            name: name.to_string(),
            mode: Mode::Enforce,
            per_worker: vec![per_worker],
            bounds: Bounds {
                min,
                max: max.max(min),
            },
            tolerance: Tolerance::both(0.1),
            boot_time: Duration::ZERO,
            scale_to_zero: None,
            schedules: Vec::new(),
            scale_up: StepRules {
                stabilization: Duration::ZERO,
                cooldown: Duration::ZERO,
                rate: RateRules {
                    policies: vec![
                        every_15s(RateKind::Workers(4)),
                        every_15s(RateKind::Percent(100)),
                    ],
                    select: SelectPolicy::Max,
                },
            },
            scale_down: StepRules {
                stabilization: Duration::from_secs(300),
                cooldown: Duration::ZERO,
                rate: RateRules {
                    policies: vec![every_15s(RateKind::Percent(100))],
                    select: SelectPolicy::Max,
                },
            },
            drain: DrainRule {
                method: DrainMethod::None,
                timeout: Duration::from_secs(600),
                on_timeout: OnDrainTimeout::Keep,
            },
            on_missing_signal: MissingSignalRule::default(),
            flap_budget: None,
            cost: CostRule::default(),
            clear_backlog_within: None,
            prewarm_season: None,
        }
    }

    /// Largest worker count the pool's own cost cap allows, if it has one.
    pub fn cost_cap_workers(&self) -> Option<u32> {
        let max = self.cost.max_per_hour?;
        if self.cost.per_worker_hour <= 0.0 {
            return None;
        }
        Some(
            (max / self.cost.per_worker_hour + 1e-9)
                .floor()
                .clamp(0.0, u32::MAX as f64) as u32,
        )
    }

    /// The longest window a conservative start waits out before the first scale-down.
    pub fn down_window(&self) -> Duration {
        self.scale_down.stabilization
    }
}
