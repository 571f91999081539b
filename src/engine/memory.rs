//! What the engine remembers between ticks: plain, serialisable data, so the daemon can persist
//! it (a restart never resets a cooldown) and the simulator can snapshot it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::backlog::BacklogMemory;
use super::forecast::ForecastMemory;
use super::reason::Direction;
use crate::time::Timestamp;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Memory {
    /// Keyed by pool name. A hash map because `step` looks every pool up each tick; written
    /// sorted so state files are stable.
    #[serde(serialize_with = "sorted")]
    pub pools: HashMap<String, PoolMemory>,
}

fn sorted<S: serde::Serializer>(
    pools: &HashMap<String, PoolMemory>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let ordered: BTreeMap<&String, &PoolMemory> = pools.iter().collect();
    serde::Serialize::serialize(&ordered, s)
}

impl Memory {
    pub fn pool_mut(&mut self, name: &str) -> &mut PoolMemory {
        if !self.pools.contains_key(name) {
            self.pools.insert(name.to_string(), PoolMemory::default());
        }
        self.pools.get_mut(name).expect("inserted above")
    }

    /// Records a change the actuator made (called after it succeeded; the simulator calls it
    /// for every applied change). Feeds cooldowns, rate limits and the flap budget.
    pub fn record_actuation(&mut self, pool: &str, from: u32, to: u32, now: Timestamp) {
        if from == to {
            return;
        }
        self.pool_mut(pool).record_actuation(from, to, now);
    }

    /// For a start without trustworthy state: every pool in `names` blocks scale-down until
    /// `until` (the longest down window from now), so windows refill before anything shrinks.
    pub fn start_conservatively<'a>(
        &mut self,
        names: impl IntoIterator<Item = (&'a str, Duration)>,
        now: Timestamp,
    ) {
        for (name, window) in names {
            self.pool_mut(name).hold_scale_down_until = Some(now + window);
        }
    }

    /// Drops memory of pools no longer configured.
    pub fn retain_pools(&mut self, names: &[&str]) {
        self.pools.retain(|k, _| names.contains(&k.as_str()));
    }
}

/// Hard bound on the remembered scale events; `decide` already forgets those older than any
/// rate-limit period and the flap hour (`limits::forget_old_events`).
const MAX_EVENTS: usize = 256;

/// `#[serde(default)]`: a state file written before a field existed still loads (the new
/// field starts empty), so adding memory never costs a restart its cooldowns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolMemory {
    /// Recommendations (after bounds) inside the longest stabilization window.
    pub recommendations: VecDeque<Recommendation>,
    pub scale_events: VecDeque<ScaleEvent>,
    pub last_scale_up: Option<Timestamp>,
    pub last_scale_down: Option<Timestamp>,
    pub hold_scale_down_until: Option<Timestamp>,
    pub spend: SpendLedger,
    /// Turnover and demand history for `clear_backlog_within`.
    pub backlog: BacklogMemory,
    /// Slot peaks for `target.prewarm` (fixed size).
    pub forecast: ForecastMemory,
}

impl PoolMemory {
    /// [`Memory::record_actuation`] for a pool's own memory.
    pub fn record_actuation(&mut self, from: u32, to: u32, now: Timestamp) {
        if from == to {
            return;
        }
        if to > from {
            self.last_scale_up = Some(now);
        } else {
            self.last_scale_down = Some(now);
        }
        // Kept in time order (rate limits walk back from the newest), even if a wall
        // clock stepped back.
        let at = self.scale_events.partition_point(|e| e.at <= now);
        self.scale_events
            .insert(at, ScaleEvent { at: now, from, to });
        while self.scale_events.len() > MAX_EVENTS {
            self.scale_events.pop_front();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommendation {
    pub at: Timestamp,
    pub workers: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleEvent {
    pub at: Timestamp,
    pub from: u32,
    pub to: u32,
}

impl ScaleEvent {
    pub fn direction(&self) -> Direction {
        if self.to > self.from {
            Direction::Up
        } else {
            Direction::Down
        }
    }
}

/// Money and worker-time spent, accrued each tick from the requested size and the price.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpendLedger {
    pub worker_seconds: f64,
    pub money: f64,
    pub last_at: Option<Timestamp>,
}

impl SpendLedger {
    pub fn accrue(&mut self, workers: u32, price_per_hour: f64, now: Timestamp) {
        if let Some(last) = self.last_at {
            let secs = now.since(last).as_secs_f64();
            self.worker_seconds += f64::from(workers) * secs;
            self.money += f64::from(workers) * secs / 3600.0 * price_per_hour;
        }
        if self.last_at.is_none_or(|l| now > l) {
            self.last_at = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_accrues_and_ignores_backwards_time() {
        let mut l = SpendLedger::default();
        l.accrue(2, 1.0, Timestamp::from_secs(0));
        l.accrue(2, 1.0, Timestamp::from_secs(1800));
        assert!((l.money - 1.0).abs() < 1e-9);
        l.accrue(2, 1.0, Timestamp::from_secs(100));
        assert!((l.money - 1.0).abs() < 1e-9);
        assert_eq!(l.worker_seconds, 3600.0);
    }

    /// A pool's memory as an earlier version wrote it (no `spend`, no `hold_scale_down_until`,
    /// no `recommendations`): it loads, and what it has is kept.
    #[test]
    fn memory_written_before_a_field_existed_still_loads() {
        let old = r#"{"pools":{"etl":{"scale_events":[{"at":10000,"from":1,"to":3}],
            "last_scale_up":10000,"last_scale_down":null}}}"#;
        let m: Memory = serde_json::from_str(old).expect("forward compatible");
        assert_eq!(m.pools["etl"].last_scale_up, Some(Timestamp::from_secs(10)));
        assert_eq!(m.pools["etl"].scale_events.len(), 1);
        assert_eq!(m.pools["etl"].spend, SpendLedger::default());
    }

    #[test]
    fn memory_round_trips_through_json() {
        let mut m = Memory::default();
        m.record_actuation("a", 1, 3, Timestamp::from_secs(10));
        let back: Memory = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        assert_eq!(
            back.pools["a"].last_scale_up,
            Some(Timestamp::from_secs(10))
        );
    }
}
