//! The per-pool pipeline (DESIGN.md §4). Each stage may change the number and then appends a
//! [`Reason`]. Where it overlaps the Kubernetes HPA (tolerance, stabilization windows,
//! Pods/Percent rate limits with `selectPolicy`) it follows `horizontal.go` exactly.

use super::backlog::BacklogSize;
use super::forecast::Forecast;
use super::limits::{cooldowns, flap_budget, forget_old_events, rate_limit, stabilize};
use super::memory::PoolMemory;
use super::pause::Active;
use super::reason::{MissingAction, Reason};
use super::rules::PoolRules;
use super::signal::{Signal, SignalFault};
use super::world::PoolObservation;
use super::{Decision, DrainPlan};
use crate::policy::Mode;
use crate::time::Timestamp;

/// Decides one pool. Pure: same inputs, same output; `memory` is updated with this tick's
/// recommendation and spend (actuations are recorded by the caller once they happen).
pub fn decide(
    rules: &PoolRules,
    obs: &PoolObservation,
    memory: &mut PoolMemory,
    now: Timestamp,
) -> Decision {
    let current = obs.workers.requested;
    memory
        .spend
        .accrue(current, rules.cost.per_worker_hour, now);
    let mut reasons = Vec::new();
    if rules.mode == Mode::Paused {
        reasons.push(Reason::Paused { by: None });
        return finish(rules, current, current, reasons);
    }

    // 1 + 2. Signals → raw recommendation (backlog-deadline size when the policy has one).
    let readings = read_signals(rules, obs, now);
    let backlog = readings.backlog(rules, obs, memory, now);
    let mut no_scale_down = false;
    let mut desired = match readings.raw(rules, current, backlog, &mut reasons) {
        Some(raw) => raw,
        None => current,
    };
    // What the load itself asks for (proportional or backlog-deadline size, outside the
    // tolerance band): a scale-up to it is needed, so the flap budget never holds it.
    let needed_up = (readings.fresh > 0 && desired > current).then_some(desired);
    if let Some(missing) = &readings.missing {
        let all_missing = readings.fresh == 0;
        let action = if !all_missing {
            MissingAction::NoScaleDown
        } else {
            match rules.on_missing_signal.then_workers {
                Some(n) if now.since(missing.since) >= rules.on_missing_signal.hold_for => {
                    desired = current.max(n);
                    MissingAction::Fallback
                }
                _ => MissingAction::Hold,
            }
        };
        no_scale_down = true;
        reasons.push(Reason::SignalMissing {
            missing: missing.count,
            since: missing.since,
            fault: missing.fault,
            action,
        });
    }

    // 3. Schedule floor and bounds.
    if let Some((i, s)) = rules
        .schedules
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_active(now))
        .max_by_key(|(_, s)| s.min)
        && desired < s.min
    {
        desired = s.min;
        reasons.push(Reason::ScheduleFloor {
            min: s.min,
            schedule: i,
        });
    }
    if let Some(forecast) = readings.forecast(rules, memory, now) {
        match forecast {
            Forecast::Floor { workers, demand } if workers > desired => {
                desired = workers;
                reasons.push(Reason::Forecast {
                    workers,
                    demand,
                    lead_s: rules.boot_time.as_secs(),
                });
            }
            Forecast::Floor { .. } => {}
            Forecast::Off {
                history_s,
                needed_s,
            } => reasons.push(Reason::ForecastOff {
                history_s,
                needed_s,
            }),
        }
    }
    desired = clamp_bounds(rules, desired, &mut reasons);

    // 4. Stabilization (only real recommendations enter the history).
    if readings.fresh > 0 {
        desired = stabilize(rules, memory, current, desired, now, &mut reasons);
    } else if desired < current {
        desired = current;
    }
    if desired < current
        && let Some(until) = memory.hold_scale_down_until.filter(|u| now < *u)
    {
        desired = current;
        reasons.push(Reason::ConservativeStart { until });
    }

    // 5. Cooldowns.
    desired = cooldowns(rules, memory, current, desired, now, &mut reasons);

    // 6. Rate limits and flap budget.
    forget_old_events(rules, memory, now);
    desired = rate_limit(rules, memory, current, desired, now, &mut reasons);
    desired = flap_budget(
        rules,
        memory,
        current,
        desired,
        needed_up,
        now,
        &mut reasons,
    );

    // 7. Boot-awareness: don't judge capacity that was just ordered and is not ready yet.
    let booting = current.saturating_sub(obs.workers.ready);
    if desired < current
        && booting > 0
        && memory
            .last_scale_up
            .is_some_and(|t| now.since(t) < rules.boot_time)
    {
        desired = current;
        reasons.push(Reason::Booting { booting });
    }

    // Bounds win over the holds above (e.g. a lowered max after a policy edit).
    desired = clamp_bounds(rules, desired, &mut reasons);

    // 8a. Pool cost cap (the global budget is applied across pools in `step`).
    if let Some(cap) = rules.cost_cap_workers() {
        let cap = cap.max(rules.bounds.min);
        if desired > cap {
            desired = cap;
            reasons.push(Reason::CostCap {
                max_workers: cap,
                max_per_hour: rules.cost.max_per_hour.unwrap_or_default(),
            });
        }
    }
    if no_scale_down && desired < current && desired < rules.bounds.max.min(current) {
        desired = current.min(rules.bounds.max);
    }

    // 9. Run-time pauses have the last word (engine::pause).
    desired = Active::of(&obs.pauses, now).apply(current, desired, &mut reasons);
    finish(rules, current, desired, reasons)
}

pub(super) fn finish(
    rules: &PoolRules,
    current: u32,
    desired: u32,
    reasons: Vec<Reason>,
) -> Decision {
    let drain = (desired < current).then(|| DrainPlan::from_rules(rules, current - desired));
    Decision {
        pool: rules.name.as_str().to_string(),
        mode: rules.mode,
        current,
        desired,
        reasons,
        drain,
    }
}

struct Missing {
    count: usize,
    since: Timestamp,
    fault: SignalFault,
}

struct Readings {
    /// (signal index, demand) of every fresh reading.
    values: Vec<(usize, f64)>,
    fresh: usize,
    missing: Option<Missing>,
}

fn read_signals(rules: &PoolRules, obs: &PoolObservation, now: Timestamp) -> Readings {
    let mut values = Vec::with_capacity(rules.per_worker.len());
    let mut missing: Option<Missing> = None;
    let mut note = |since: Timestamp, fault: SignalFault| {
        let m = missing.get_or_insert(Missing {
            count: 0,
            since,
            fault,
        });
        m.count += 1;
        if since < m.since {
            m.since = since;
            m.fault = fault;
        }
    };
    for i in 0..rules.per_worker.len() {
        match obs.signals.get(i) {
            Some(Signal::Value {
                demand,
                observed_at,
            }) => {
                if !(demand.is_finite() && *demand >= 0.0) {
                    note(*observed_at, SignalFault::Malformed);
                } else {
                    values.push((i, *demand));
                }
            }
            Some(Signal::Missing { since, fault }) => note(*since, *fault),
            None => note(now, SignalFault::NotPolled),
        }
    }
    Readings {
        fresh: values.len(),
        values,
        missing,
    }
}

/// What backlog sizing says this tick.
enum Backlog {
    Sized(BacklogSize),
    Unknown { samples: u32 },
}

impl Readings {
    /// With `clear_backlog_within` and every signal fresh: feed the estimates, then size.
    /// A tick with a missing signal leaves the estimates alone (its demand is partial).
    fn backlog(
        &self,
        rules: &PoolRules,
        obs: &PoolObservation,
        memory: &mut PoolMemory,
        now: Timestamp,
    ) -> Option<Backlog> {
        let within = rules.clear_backlog_within?;
        if self.missing.is_some() || self.values.is_empty() {
            return None;
        }
        let demand = self.in_workers(rules);
        let estimate = &mut memory.backlog;
        estimate.observe(demand, obs.workers.ready, within, now);
        let current = obs.workers.requested;
        Some(
            match estimate.size(demand, current, within, rules.boot_time, now) {
                Some(size) => Backlog::Sized(size),
                None => Backlog::Unknown {
                    samples: estimate.samples,
                },
            },
        )
    }

    /// Demand in workers: max over signals of demand / per_worker.
    fn in_workers(&self, rules: &PoolRules) -> f64 {
        self.values
            .iter()
            .map(|&(i, d)| d / rules.per_worker[i])
            .fold(0.0, f64::max)
    }

    /// With `target.prewarm`: learn from this tick's demand (only when every signal is fresh)
    /// and forecast the floor for the next boot time.
    fn forecast(
        &self,
        rules: &PoolRules,
        memory: &mut PoolMemory,
        now: Timestamp,
    ) -> Option<Forecast> {
        let season = rules.prewarm_season?;
        if self.missing.is_none() && !self.values.is_empty() {
            memory.forecast.observe(self.in_workers(rules), season, now);
        }
        memory.forecast.floor(season, rules.boot_time, now)
    }

    /// HPA AverageValue per signal (`GetExternalPerPodMetricReplicas`: ratio
    /// `demand / (per_worker * current)`; `ceil(demand / per_worker)` unless the ratio is
    /// inside the tolerance band, then the current size), max over signals, plus KEDA-style
    /// activation at zero. A backlog size replaces the proportional one (same band).
    fn raw(
        &self,
        rules: &PoolRules,
        current: u32,
        backlog: Option<Backlog>,
        reasons: &mut Vec<Reason>,
    ) -> Option<u32> {
        let mut best: Option<(u32, Reason, Option<Reason>)> = None;
        for &(i, demand) in &self.values {
            let per_worker = rules.per_worker[i];
            let exact = demand / per_worker;
            let workers = ceil_workers(exact);
            let mut proposal = workers;
            let mut tolerance_reason = None;
            if current > 0 {
                // The HPA's order of operations, so the band edge falls where HPA puts it.
                let ratio = demand / (per_worker * f64::from(current));
                if rules.tolerance.within(ratio) {
                    proposal = current;
                    tolerance_reason = Some(Reason::WithinTolerance {
                        ratio,
                        tolerance: rules.tolerance.toward(ratio),
                    });
                }
            }
            let raw = Reason::Raw {
                workers,
                demand,
                per_worker,
                signal: i,
            };
            if best.as_ref().is_none_or(|b| proposal > b.0) {
                best = Some((proposal, raw, tolerance_reason));
            }
        }
        let (mut proposal, raw, mut tolerance) = best?;
        reasons.push(raw);
        match backlog {
            Some(Backlog::Sized(size)) => {
                reasons.push(Reason::Backlog {
                    workers: size.workers,
                    demand: size.demand,
                    rise_per_s: size.rise_per_s,
                    turnover_per_s: size.turnover_per_s,
                    within_s: rules.clear_backlog_within.unwrap_or_default().as_secs(),
                    boot_s: rules.boot_time.as_secs(),
                    current,
                });
                proposal = size.workers;
                tolerance = None;
                if current > 0 {
                    let ratio = f64::from(size.workers) / f64::from(current);
                    if rules.tolerance.within(ratio) && size.workers != current {
                        proposal = current;
                        tolerance = Some(Reason::WithinTolerance {
                            ratio,
                            tolerance: rules.tolerance.toward(ratio),
                        });
                    }
                }
            }
            Some(Backlog::Unknown { samples }) => reasons.push(Reason::BacklogUnknown {
                samples,
                needed: super::backlog::MIN_SAMPLES,
            }),
            None => {}
        }
        reasons.extend(tolerance);
        if let Some(z) = rules.scale_to_zero {
            let active = self.values.iter().any(|&(_, d)| d > z.activation_threshold);
            if !active && proposal > 0 {
                let demand = self.values.iter().map(|v| v.1).fold(0.0, f64::max);
                reasons.push(Reason::BelowActivation {
                    demand,
                    threshold: z.activation_threshold,
                });
                proposal = 0;
            } else if active && proposal == 0 {
                proposal = 1;
            }
        }
        Some(proposal)
    }
}

/// `ceil` that forgives float noise (4.0000000001 workers is 4) and saturates.
fn ceil_workers(x: f64) -> u32 {
    (x - 1e-9).ceil().clamp(0.0, f64::from(u32::MAX)) as u32
}

fn clamp_bounds(rules: &PoolRules, desired: u32, reasons: &mut Vec<Reason>) -> u32 {
    let b = rules.bounds;
    if desired < b.min {
        reasons.push(Reason::BoundMin { min: b.min });
        b.min
    } else if desired > b.max {
        reasons.push(Reason::BoundMax { max: b.max });
        b.max
    } else {
        desired
    }
}

impl DrainPlan {
    fn from_rules(rules: &PoolRules, remove: u32) -> DrainPlan {
        let d = &rules.drain;
        DrainPlan {
            remove,
            method: d.method,
            timeout: d.timeout,
            on_timeout: d.on_timeout,
        }
    }
}
