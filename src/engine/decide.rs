//! The per-pool pipeline (DESIGN.md §4). Each stage may change the number and then appends a
//! [`Reason`]. Where it overlaps the Kubernetes HPA (tolerance, stabilization windows,
//! Pods/Percent rate limits with `selectPolicy`) it follows `horizontal.go` exactly.

use std::time::Duration;

use super::memory::{PoolMemory, Recommendation};
use super::reason::{Direction, MissingAction, Reason};
use super::signal::{Signal, SignalFault};
use super::world::PoolObservation;
use super::{Decision, DrainPlan};
use crate::policy::{MaxStep, Mode, Policy, SelectPolicy};
use crate::time::Timestamp;

/// Decides one pool. Pure: same inputs, same output; `memory` is updated with this tick's
/// recommendation and spend (actuations are recorded by the caller once they happen).
pub fn decide(
    policy: &Policy,
    obs: &PoolObservation,
    memory: &mut PoolMemory,
    now: Timestamp,
) -> Decision {
    let spec = &policy.spec;
    let current = obs.workers.requested;
    memory
        .spend
        .accrue(current, policy.price_per_worker_hour(), now);
    let mut reasons = Vec::new();
    if spec.mode == Mode::Paused {
        reasons.push(Reason::Paused);
        return finish(policy, current, current, reasons);
    }

    // 1 + 2. Signals → raw recommendation.
    let readings = read_signals(policy, obs, now);
    let mut no_scale_down = false;
    let mut desired = match readings.raw(policy, current, &mut reasons) {
        Some(raw) => raw,
        None => current,
    };
    if let Some(missing) = readings.missing {
        let all_missing = readings.fresh == 0;
        let action = if !all_missing {
            MissingAction::NoScaleDown
        } else {
            match spec.on_missing_signal.then_workers {
                Some(n) if now.since(missing.since) >= spec.on_missing_signal.hold_for => {
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
    if let Some((i, s)) = policy
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
    desired = clamp_bounds(policy, desired, &mut reasons);

    // 4. Stabilization (only real recommendations enter the history).
    if readings.fresh > 0 {
        desired = stabilize(policy, memory, current, desired, now, &mut reasons);
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
    desired = cooldowns(policy, memory, current, desired, now, &mut reasons);

    // 6. Rate limits and flap budget.
    desired = rate_limit(policy, memory, current, desired, now, &mut reasons);
    desired = flap_budget(policy, memory, current, desired, now, &mut reasons);

    // 7. Boot-awareness: don't judge capacity that was just ordered and is not ready yet.
    let booting = current.saturating_sub(obs.workers.ready);
    if desired < current
        && booting > 0
        && memory
            .last_scale_up
            .is_some_and(|t| now.since(t) < spec.boot_time)
    {
        desired = current;
        reasons.push(Reason::Booting { booting });
    }

    // Bounds win over the holds above (e.g. a lowered max after a policy edit).
    desired = clamp_bounds(policy, desired, &mut reasons);

    // 8a. Pool cost cap (the global budget is applied across pools in `step`).
    if let (Some(cap), Some(cost)) = (policy.cost_cap_workers(), spec.cost.as_ref()) {
        let cap = cap.max(spec.bounds.min);
        if desired > cap {
            desired = cap;
            reasons.push(Reason::CostCap {
                max_workers: cap,
                max_per_hour: cost.max_per_hour.unwrap_or_default(),
            });
        }
    }
    if no_scale_down && desired < current && desired < spec.bounds.max.min(current) {
        desired = current.min(spec.bounds.max);
    }
    finish(policy, current, desired, reasons)
}

pub(super) fn finish(
    policy: &Policy,
    current: u32,
    desired: u32,
    reasons: Vec<Reason>,
) -> Decision {
    let drain = (desired < current).then(|| DrainPlan::from_policy(policy, current - desired));
    Decision {
        pool: policy.name().to_string(),
        mode: policy.spec.mode,
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

fn read_signals(policy: &Policy, obs: &PoolObservation, now: Timestamp) -> Readings {
    let stale_after = policy.spec.on_missing_signal.stale_after;
    let mut values = Vec::with_capacity(policy.spec.signals.len());
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
    for i in 0..policy.spec.signals.len() {
        match obs.signals.get(i) {
            Some(Signal::Value {
                demand,
                observed_at,
            }) => {
                if !(demand.is_finite() && *demand >= 0.0) {
                    note(*observed_at, SignalFault::Malformed);
                } else if now.since(*observed_at) > stale_after {
                    note(*observed_at, SignalFault::Stale);
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

impl Readings {
    /// HPA AverageValue per signal (`ceil(demand / per_worker)`, current size kept inside the
    /// tolerance band), max over signals, plus KEDA-style activation at zero.
    fn raw(&self, policy: &Policy, current: u32, reasons: &mut Vec<Reason>) -> Option<u32> {
        let spec = &policy.spec;
        let mut best: Option<(u32, Reason, Option<Reason>)> = None;
        for &(i, demand) in &self.values {
            let per_worker = spec.signals[i].per_worker;
            let exact = demand / per_worker;
            let workers = ceil_workers(exact);
            let mut proposal = workers;
            let mut tolerance_reason = None;
            if current > 0 {
                let ratio = exact / f64::from(current);
                if (1.0 - ratio).abs() <= spec.tolerance {
                    proposal = current;
                    tolerance_reason = Some(Reason::WithinTolerance {
                        ratio,
                        tolerance: spec.tolerance,
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
        let (mut proposal, raw, tolerance) = best?;
        reasons.push(raw);
        reasons.extend(tolerance);
        if let Some(z) = spec.scale_to_zero {
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

fn clamp_bounds(policy: &Policy, desired: u32, reasons: &mut Vec<Reason>) -> u32 {
    let b = policy.spec.bounds;
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

/// HPA `stabilizeRecommendationWithBehaviors`: up = min over the up window, down = max over the
/// down window, both including this tick's recommendation; then record it.
fn stabilize(
    policy: &Policy,
    memory: &mut PoolMemory,
    current: u32,
    desired: u32,
    now: Timestamp,
    reasons: &mut Vec<Reason>,
) -> u32 {
    let up_window = policy.spec.scale_up.stabilization;
    let down_window = policy.spec.scale_down.stabilization;
    let (mut up, mut down) = (desired, desired);
    for rec in &memory.recommendations {
        if rec.at > now - up_window && rec.at <= now {
            up = up.min(rec.workers);
        }
        if rec.at > now - down_window && rec.at <= now {
            down = down.max(rec.workers);
        }
    }
    let keep = up_window.max(down_window);
    // Keep the window; drop entries "from the future" (the clock went backwards).
    memory
        .recommendations
        .retain(|r| r.at > now - keep && r.at <= now);
    memory.recommendations.push_back(Recommendation {
        at: now,
        workers: desired,
    });

    let stabilized = current.max(up).min(down);
    if stabilized < desired {
        reasons.push(Reason::ScaleUpStabilized {
            window_s: up_window.as_secs(),
            from: desired,
            to: stabilized,
        });
    } else if stabilized > desired {
        reasons.push(Reason::ScaleDownStabilized {
            window_s: down_window.as_secs(),
            from: desired,
            to: stabilized,
        });
    }
    stabilized
}

fn cooldowns(
    policy: &Policy,
    memory: &PoolMemory,
    current: u32,
    desired: u32,
    now: Timestamp,
    reasons: &mut Vec<Reason>,
) -> u32 {
    let remaining = |last: Option<Timestamp>, cooldown: Duration| -> Option<u64> {
        let left = cooldown.saturating_sub(now.since(last?));
        (!left.is_zero()).then(|| left.as_secs().max(1))
    };
    if desired > current {
        if let Some(s) = remaining(memory.last_scale_up, policy.spec.scale_up.cooldown) {
            reasons.push(Reason::Cooldown {
                direction: Direction::Up,
                remaining_s: s,
            });
            return current;
        }
    } else if desired < current {
        let last = memory.last_scale_up.max(memory.last_scale_down);
        if let Some(s) = remaining(last, policy.spec.scale_down.cooldown) {
            reasons.push(Reason::Cooldown {
                direction: Direction::Down,
                remaining_s: s,
            });
            return current;
        }
    }
    desired
}

/// HPA `calculateScaleUpLimitWithScalingRules` / `calculateScaleDownLimitWithBehaviors`.
fn rate_limit(
    policy: &Policy,
    memory: &PoolMemory,
    current: u32,
    desired: u32,
    now: Timestamp,
    reasons: &mut Vec<Reason>,
) -> u32 {
    let changes_in = |period: Duration| -> (i64, i64) {
        let (mut added, mut removed) = (0i64, 0i64);
        for e in memory
            .scale_events
            .iter()
            .filter(|e| e.at > now - period && e.at <= now)
        {
            let delta = i64::from(e.to) - i64::from(e.from);
            if delta > 0 {
                added += delta
            } else {
                removed -= delta
            }
        }
        (added, removed)
    };
    let cur = i64::from(current);
    if desired > current {
        let limit = up_limit(
            &policy.spec.scale_up.max_step,
            cur,
            changes_in(policy.spec.scale_up.max_step.period),
        )
        .max(cur);
        if i64::from(desired) > limit {
            let limit = limit.clamp(0, i64::from(u32::MAX)) as u32;
            reasons.push(Reason::RateLimit {
                direction: Direction::Up,
                limit,
            });
            return limit;
        }
    } else if desired < current {
        let limit = down_limit(
            &policy.spec.scale_down.max_step,
            cur,
            changes_in(policy.spec.scale_down.max_step.period),
        )
        .min(cur);
        if i64::from(desired) < limit {
            let limit = limit.clamp(0, i64::from(u32::MAX)) as u32;
            reasons.push(Reason::RateLimit {
                direction: Direction::Down,
                limit,
            });
            return limit;
        }
    }
    desired
}

fn up_limit(step: &MaxStep, current: i64, (added, removed): (i64, i64)) -> i64 {
    if step.select == SelectPolicy::Disabled {
        return current;
    }
    let start = current - added + removed;
    let proposals = step
        .workers
        .map(|w| start + i64::from(w))
        .into_iter()
        .chain(
            step.percent
                .map(|p| (start as f64 * (1.0 + f64::from(p) / 100.0)).ceil() as i64),
        );
    match step.select {
        SelectPolicy::Min => proposals.min().unwrap_or(current),
        _ => proposals.max().unwrap_or(current),
    }
}

fn down_limit(step: &MaxStep, current: i64, (added, removed): (i64, i64)) -> i64 {
    if step.select == SelectPolicy::Disabled {
        return current;
    }
    let start = current + removed - added;
    let proposals = step
        .workers
        .map(|w| start - i64::from(w))
        .into_iter()
        .chain(
            step.percent
                .map(|p| (start as f64 * (1.0 - f64::from(p) / 100.0)) as i64),
        );
    // `max` selects the largest change, i.e. the lowest count.
    match step.select {
        SelectPolicy::Min => proposals.max().unwrap_or(current),
        _ => proposals.min().unwrap_or(current),
    }
}

fn flap_budget(
    policy: &Policy,
    memory: &PoolMemory,
    current: u32,
    desired: u32,
    now: Timestamp,
    reasons: &mut Vec<Reason>,
) -> u32 {
    let (Some(budget), Some(last)) = (policy.spec.flap_budget, memory.scale_events.back()) else {
        return desired;
    };
    if desired == current {
        return desired;
    }
    let proposed = if desired > current {
        Direction::Up
    } else {
        Direction::Down
    };
    if proposed == last.direction() {
        return desired;
    }
    let hour_ago = now - Duration::from_secs(3600);
    let recent: Vec<_> = memory
        .scale_events
        .iter()
        .filter(|e| e.at > hour_ago && e.at <= now)
        .collect();
    let reversals = recent
        .windows(2)
        .filter(|w| w[0].direction() != w[1].direction())
        .count() as u32;
    if reversals >= budget.max_reversals_per_hour {
        reasons.push(Reason::FlapBudget {
            reversals_last_hour: reversals,
            max: budget.max_reversals_per_hour,
        });
        return current;
    }
    desired
}

impl DrainPlan {
    fn from_policy(policy: &Policy, remove: u32) -> DrainPlan {
        let d = &policy.spec.scale_down.drain;
        DrainPlan {
            remove,
            method: d.method,
            timeout: d.timeout,
            on_timeout: d.on_timeout,
        }
    }
}
