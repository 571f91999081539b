//! The global budget: money per hour across all pools. Minimums (and paused pools' current
//! sizes) are funded first; the rest goes to pools by priority (higher first; ties keep policy
//! order, i.e. file-name order). A pool never gets more than its own decision asked for.
//! Shadow pools run nothing, so they neither count against the budget nor are cut by it.

use super::Decision;
use super::reason::Reason;
use super::rules::PoolRules;
use crate::policy::Mode;

/// `pause_floors[i]`: the least a run-time pause lets the budget cut pool `i` to.
pub(super) fn apply(
    rules: &[PoolRules],
    decisions: &mut [Decision],
    budget: f64,
    pause_floors: &[Option<u32>],
) {
    let shadow = |i: usize| rules[i].mode == Mode::Shadow;
    let price = |i: usize| {
        if shadow(i) {
            0.0
        } else {
            rules[i].cost.per_worker_hour
        }
    };
    let asked: f64 = decisions
        .iter()
        .enumerate()
        .map(|(i, d)| f64::from(d.desired) * price(i))
        .sum();
    if asked <= budget + 1e-9 {
        return;
    }
    // Fixed spend first: paused pools keep their size (a scale-in pause at least the current
    // one); every other pool keeps its minimum.
    let floor = |i: usize, d: &Decision| -> u32 {
        let min = rules[i].bounds.min.min(d.desired);
        if d.mode == Mode::Paused || shadow(i) {
            d.desired
        } else {
            pause_floors
                .get(i)
                .copied()
                .flatten()
                .map_or(min, |f| f.max(min))
        }
    };
    let fixed: f64 = decisions
        .iter()
        .enumerate()
        .map(|(i, d)| f64::from(floor(i, d)) * price(i))
        .sum();
    if fixed > budget + 1e-9 {
        for (i, d) in decisions
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| !shadow(*i))
        {
            let allowed = floor(i, d);
            if allowed < d.desired {
                set(rules, i, d, allowed);
            }
            d.reasons.push(Reason::BudgetBelowMinimums {
                minimums_per_hour: fixed,
                budget_per_hour: budget,
            });
        }
        return;
    }
    let mut remaining = budget - fixed;
    let mut order: Vec<usize> = (0..decisions.len()).collect();
    // Stable sort: equal priorities keep policy order.
    order.sort_by_key(|&i| std::cmp::Reverse(rules[i].cost.priority));
    for i in order {
        let d = &mut decisions[i];
        let base = floor(i, d);
        let wanted = d.desired - base;
        let p = price(i);
        let extra = if p <= 0.0 {
            wanted
        } else {
            ((remaining + 1e-9) / p).floor().min(f64::from(wanted)) as u32
        };
        remaining -= f64::from(extra) * p;
        let allowed = base + extra;
        if allowed < d.desired {
            set(rules, i, d, allowed);
            d.reasons.push(Reason::GlobalBudget {
                allowed,
                budget_per_hour: budget,
            });
        }
    }
}

fn set(rules: &[PoolRules], i: usize, d: &mut Decision, allowed: u32) {
    *d = super::decide::finish(
        &rules[i],
        d.current,
        allowed,
        std::mem::take(&mut d.reasons),
    );
}
