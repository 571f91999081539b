//! Shadow pools as counterfactuals. A shadow (or `--dry-run`) pool is decided as if its
//! earlier would-be moves had happened: the engine sees the would-be size, and each would-be
//! change is remembered like a real actuation, so cooldowns, stabilization, rate limits, the
//! flap budget and boot-awareness accrue exactly as they would in `enforce`. What `/status`
//! and `poolpilot_shadow_*` then show is what enforcing the policy would have done.
//!
//! Simplifications, stated: a would-be worker is ready `boot_time` after it was ordered; a
//! would-be scale-down takes effect at once (no drain time), removing booting workers first.

use serde::{Deserialize, Serialize};

use crate::engine::{PoolRules, WorkerCounts};
use crate::time::Timestamp;

/// One counterfactual pool, persisted with the state so a restart keeps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShadowPool {
    /// Would-be requested size.
    pub workers: u32,
    /// Would-be workers still booting: (ordered at, count), oldest first.
    pub boots: Vec<(Timestamp, u32)>,
}

impl ShadowPool {
    /// Starts from the real pool's size (all ready).
    pub fn start(real: u32) -> ShadowPool {
        ShadowPool {
            workers: real,
            boots: Vec::new(),
        }
    }

    /// What the engine is told about the would-be pool at `now`.
    pub fn counts(&mut self, rules: &PoolRules, now: Timestamp) -> WorkerCounts {
        self.boots
            .retain(|(at, _)| now.since(*at) < rules.boot_time);
        let booting: u32 = self.boots.iter().map(|(_, n)| n).sum();
        WorkerCounts {
            requested: self.workers,
            ready: self.workers.saturating_sub(booting),
        }
    }

    /// The would-be change happened.
    pub fn resize(&mut self, to: u32, now: Timestamp) {
        if to > self.workers {
            self.boots.push((now, to - self.workers));
        } else {
            let mut remove = self.workers - to;
            // Booting workers go first (the newest), as a ReplicaSet removes unready pods first.
            while remove > 0 {
                let Some(last) = self.boots.last_mut() else {
                    break;
                };
                let n = last.1.min(remove);
                last.1 -= n;
                remove -= n;
                if last.1 == 0 {
                    self.boots.pop();
                }
            }
        }
        self.workers = to;
    }
}

/// A rough estimate of how long newly queued work waits for capacity, in seconds: 0 when
/// ready workers cover the demand; the time until enough booting workers are ready when the
/// ordered size covers it (boots of unknown age count a whole `boot_time`); `None` when even
/// the ordered size falls short (the wait then grows with the backlog).
pub fn estimated_wait_seconds(
    needed: f64,
    counts: WorkerCounts,
    boots: &[(Timestamp, u32)],
    rules: &PoolRules,
    now: Timestamp,
) -> Option<f64> {
    let needed = (needed - 1e-9).ceil().max(0.0);
    if f64::from(counts.ready) >= needed {
        return Some(0.0);
    }
    if f64::from(counts.requested) < needed {
        return None;
    }
    let boot = rules.boot_time.as_secs_f64();
    let known: u32 = boots.iter().map(|(_, n)| n).sum();
    let unknown = counts
        .requested
        .saturating_sub(counts.ready)
        .saturating_sub(known);
    let mut ready = f64::from(counts.ready);
    let mut ordered: Vec<(f64, u32)> = boots
        .iter()
        .map(|(at, n)| ((boot - now.since(*at).as_secs_f64()).max(0.0), *n))
        .collect();
    ordered.push((boot, unknown));
    ordered.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (left, n) in ordered {
        ready += f64::from(n);
        if ready >= needed {
            return Some(left);
        }
    }
    Some(boot)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rules() -> PoolRules {
        let mut r = PoolRules::hpa("p", 4.0, 1, 20);
        r.boot_time = Duration::from_secs(60);
        r
    }

    #[test]
    fn would_be_workers_boot_then_become_ready_and_booting_ones_go_first() {
        let r = rules();
        let mut s = ShadowPool::start(2);
        s.resize(5, Timestamp::from_secs(0));
        let c = s.counts(&r, Timestamp::from_secs(30));
        assert_eq!((c.requested, c.ready), (5, 2));
        s.resize(4, Timestamp::from_secs(30));
        assert_eq!(
            s.counts(&r, Timestamp::from_secs(31)).ready,
            2,
            "a booting one went"
        );
        assert_eq!(s.counts(&r, Timestamp::from_secs(60)).ready, 4);
    }

    #[test]
    fn the_wait_is_zero_when_ready_covers_the_boot_left_when_ordered_covers_else_unbounded() {
        let r = rules();
        let mut s = ShadowPool::start(1);
        s.resize(3, Timestamp::from_secs(0));
        let now = Timestamp::from_secs(20);
        let c = s.counts(&r, now);
        assert_eq!(estimated_wait_seconds(1.0, c, &s.boots, &r, now), Some(0.0));
        assert_eq!(
            estimated_wait_seconds(2.5, c, &s.boots, &r, now),
            Some(40.0)
        );
        assert_eq!(estimated_wait_seconds(3.5, c, &s.boots, &r, now), None);
    }
}
