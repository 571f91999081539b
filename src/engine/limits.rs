//! Pipeline stages 4–6: stabilization windows, cooldowns, rate limits and the flap budget.
//! These follow the Kubernetes HPA's `horizontal.go` where they overlap.

use std::time::Duration;

use super::memory::{PoolMemory, Recommendation};
use super::reason::{Direction, Reason};
use super::rules::{PoolRules, RateKind, RateRules};
use crate::policy::SelectPolicy;
use crate::time::Timestamp;

/// The flap budget counts reversals over the last hour.
const FLAP_WINDOW: Duration = Duration::from_secs(3600);

/// Forgets the scale events nothing reads any more: older than the longest rate-limit period
/// and, with a flap budget, the flap hour. The newest is always kept (the flap budget reads its
/// direction). As the HPA's `storeScaleEvent` drops events past `getLongestPolicyPeriod`
/// (`pkg/controller/podautoscaler/horizontal.go`). Without it the events only stop at
/// `MAX_EVENTS` per pool, which a pool resizing a few times a day reaches after weeks, and the
/// state file grows until then.
pub(super) fn forget_old_events(rules: &PoolRules, memory: &mut PoolMemory, now: Timestamp) {
    let lookback = [&rules.scale_up.rate, &rules.scale_down.rate]
        .into_iter()
        .flat_map(|r| r.policies.iter().map(|p| p.period))
        .chain(rules.flap_budget.map(|_| FLAP_WINDOW))
        .max()
        .unwrap_or(Duration::ZERO);
    let since = now - lookback;
    while memory.scale_events.len() > 1
        && memory.scale_events.front().is_some_and(|e| e.at <= since)
    {
        memory.scale_events.pop_front();
    }
}

/// HPA `stabilizeRecommendationWithBehaviors`: up = min over the up window, down = max over the
/// down window, both including this tick's recommendation; then record it.
pub(super) fn stabilize(
    rules: &PoolRules,
    memory: &mut PoolMemory,
    current: u32,
    desired: u32,
    now: Timestamp,
    reasons: &mut Vec<Reason>,
) -> u32 {
    let up_window = rules.scale_up.stabilization;
    let down_window = rules.scale_down.stabilization;
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
    // Keep the window (oldest first, so pop from the front); drop entries "from the future"
    // only when the clock went backwards.
    let recs = &mut memory.recommendations;
    while recs.front().is_some_and(|r| r.at <= now - keep) {
        recs.pop_front();
    }
    if recs.back().is_some_and(|r| r.at > now) {
        recs.retain(|r| r.at <= now);
    }
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

pub(super) fn cooldowns(
    rules: &PoolRules,
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
        if let Some(s) = remaining(memory.last_scale_up, rules.scale_up.cooldown) {
            reasons.push(Reason::Cooldown {
                direction: Direction::Up,
                remaining_s: s,
            });
            return current;
        }
    } else if desired < current {
        let last = memory.last_scale_up.max(memory.last_scale_down);
        if let Some(s) = remaining(last, rules.scale_down.cooldown) {
            reasons.push(Reason::Cooldown {
                direction: Direction::Down,
                remaining_s: s,
            });
            return current;
        }
    }
    desired
}

/// HPA `calculateScaleUpLimitWithScalingRules` / `calculateScaleDownLimitWithBehaviors`
/// (`horizontal.go`): every policy proposes a limit from the size at the start of its own
/// period (changes inside the period undone); `selectPolicy` picks the largest change (`Max`),
/// the smallest (`Min`) or none (`Disabled`). A limit past the current size in the wrong
/// direction holds the current size, as `convertDesiredReplicasWithBehaviorRate` does.
pub(super) fn rate_limit(
    rules: &PoolRules,
    memory: &PoolMemory,
    current: u32,
    desired: u32,
    now: Timestamp,
    reasons: &mut Vec<Reason>,
) -> u32 {
    // HPA `getReplicasChangePerPeriod` over scaleUpEvents and scaleDownEvents.
    let changes_in = |period: Duration| -> (i64, i64) {
        let (mut added, mut removed) = (0i64, 0i64);
        // Events are kept in time order: walk back from the newest, stop at the period.
        let since = now - period;
        for e in memory
            .scale_events
            .iter()
            .rev()
            .take_while(|e| e.at > since)
            .filter(|e| e.at <= now)
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
        let limit = up_limit(&rules.scale_up.rate, cur, changes_in).max(cur);
        if i64::from(desired) > limit {
            let limit = limit.clamp(0, i64::from(u32::MAX)) as u32;
            reasons.push(Reason::RateLimit {
                direction: Direction::Up,
                limit,
            });
            return limit;
        }
    } else if desired < current {
        let limit = down_limit(&rules.scale_down.rate, cur, changes_in).min(cur);
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

/// HPA `calculateScaleUpLimitWithScalingRules`.
fn up_limit(rate: &RateRules, current: i64, changes_in: impl Fn(Duration) -> (i64, i64)) -> i64 {
    if rate.select == SelectPolicy::Disabled {
        return current;
    }
    let proposals = rate.policies.iter().map(|p| {
        let (added, removed) = changes_in(p.period);
        let start = current - added + removed;
        match p.kind {
            RateKind::Workers(w) => start + i64::from(w),
            // Rounded up, "because the proposed change might not increase the replica count".
            RateKind::Percent(pc) => (start as f64 * (1.0 + f64::from(pc) / 100.0)).ceil() as i64,
        }
    });
    match rate.select {
        SelectPolicy::Min => proposals.min().unwrap_or(current),
        _ => proposals.max().unwrap_or(current),
    }
}

/// HPA `calculateScaleDownLimitWithBehaviors`.
fn down_limit(rate: &RateRules, current: i64, changes_in: impl Fn(Duration) -> (i64, i64)) -> i64 {
    if rate.select == SelectPolicy::Disabled {
        return current;
    }
    let proposals = rate.policies.iter().map(|p| {
        let (added, removed) = changes_in(p.period);
        let start = current - added + removed;
        match p.kind {
            RateKind::Workers(w) => start - i64::from(w),
            // `int32(float64(start) * (1 - value/100))`: truncated toward zero.
            RateKind::Percent(pc) => (start as f64 * (1.0 - f64::from(pc) / 100.0)) as i64,
        }
    });
    // `Max` selects the largest change, i.e. the lowest count.
    match rate.select {
        SelectPolicy::Min => proposals.max().unwrap_or(current),
        _ => proposals.min().unwrap_or(current),
    }
}

/// At most `max_reversals_per_hour` direction reversals, except that a scale-up the load
/// needs is never held: when the signals (or the backlog deadline) ask for more workers than
/// the pool has, outside the tolerance band, the pool grows to that size (`needed_up`).
/// Only the part of a reversal no load asks for (a forecast or schedule floor, a scale-down)
/// is held.
pub(super) fn flap_budget(
    rules: &PoolRules,
    memory: &PoolMemory,
    current: u32,
    desired: u32,
    needed_up: Option<u32>,
    now: Timestamp,
    reasons: &mut Vec<Reason>,
) -> u32 {
    let (Some(budget), Some(last)) = (rules.flap_budget, memory.scale_events.back()) else {
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
    let hour_ago = now - FLAP_WINDOW;
    let mut recent = memory
        .scale_events
        .iter()
        .rev()
        .take_while(|e| e.at > hour_ago)
        .filter(|e| e.at <= now)
        .map(|e| e.direction());
    let mut reversals = 0u32;
    if let Some(mut later) = recent.next() {
        for earlier in recent {
            reversals += u32::from(earlier != later);
            later = earlier;
        }
    }
    if reversals < budget.max_reversals_per_hour {
        return desired;
    }
    if proposed == Direction::Up
        && let Some(needed) = needed_up.filter(|&n| n > current)
    {
        let to = desired.min(needed);
        reasons.push(Reason::FlapBudgetNeeded {
            reversals_last_hour: reversals,
            max: budget.max_reversals_per_hour,
            needed,
        });
        return to;
    }
    reasons.push(Reason::FlapBudget {
        reversals_last_hour: reversals,
        max: budget.max_reversals_per_hour,
    });
    current
}
