//! Pipeline stages 4–6: stabilization windows, cooldowns, rate limits and the flap budget.
//! These follow the Kubernetes HPA's `horizontal.go` where they overlap.

use std::time::Duration;

use super::memory::{PoolMemory, Recommendation};
use super::reason::{Direction, Reason};
use super::rules::PoolRules;
use crate::policy::{MaxStep, SelectPolicy};
use crate::time::Timestamp;

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

/// HPA `calculateScaleUpLimitWithScalingRules` / `calculateScaleDownLimitWithBehaviors`.
pub(super) fn rate_limit(
    rules: &PoolRules,
    memory: &PoolMemory,
    current: u32,
    desired: u32,
    now: Timestamp,
    reasons: &mut Vec<Reason>,
) -> u32 {
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
        let limit = up_limit(
            &rules.scale_up.max_step,
            cur,
            changes_in(rules.scale_up.max_step.period),
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
            &rules.scale_down.max_step,
            cur,
            changes_in(rules.scale_down.max_step.period),
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

pub(super) fn flap_budget(
    rules: &PoolRules,
    memory: &PoolMemory,
    current: u32,
    desired: u32,
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
    let hour_ago = now - Duration::from_secs(3600);
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
    if reversals >= budget.max_reversals_per_hour {
        reasons.push(Reason::FlapBudget {
            reversals_last_hour: reversals,
            max: budget.max_reversals_per_hour,
        });
        return current;
    }
    desired
}
