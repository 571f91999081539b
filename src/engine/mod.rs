//! The decision engine: PURE. No I/O, no clock, no randomness, no metrics. `now` is an
//! argument, so the daemon (real clock) and the simulator (virtual clock) run the same code.
//! A test in this module fails if any engine file imports an I/O crate or reads the clock.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod backlog;
mod budget;
mod decide;
pub mod forecast;
mod limits;
pub mod memory;
pub mod pause;
pub mod reason;
pub mod rules;
pub mod signal;
pub mod world;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use decide::decide;
pub use memory::{Memory, PoolMemory, Recommendation};
pub use pause::{Pause, PauseKind, PauseSource};
pub use reason::{Direction, MissingAction, Reason};
pub use rules::PoolRules;
pub use signal::{Signal, SignalFault};
pub use world::{PoolObservation, WorkerCounts, World};

use crate::policy::{DrainMethod, Mode, OnDrainTimeout};
use crate::time::Timestamp;

/// What one pool should be sized to, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub pool: String,
    pub mode: Mode,
    /// Workers requested before this decision.
    pub current: u32,
    /// Absolute target (actuators are told a size, never a delta).
    pub desired: u32,
    /// One entry per stage that shaped the number, in pipeline order.
    pub reasons: Vec<Reason>,
    /// Present when `desired < current`: how the removed workers are emptied.
    pub drain: Option<DrainPlan>,
}

impl Decision {
    pub fn direction(&self) -> Option<Direction> {
        match self.desired.cmp(&self.current) {
            std::cmp::Ordering::Greater => Some(Direction::Up),
            std::cmp::Ordering::Less => Some(Direction::Down),
            std::cmp::Ordering::Equal => None,
        }
    }

    /// The stage that had the last word (for the `reason` metric label).
    pub fn final_reason(&self) -> &'static str {
        self.reasons.last().map_or("none", Reason::label)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DrainPlan {
    pub remove: u32,
    pub method: DrainMethod,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub on_timeout: OnDrainTimeout,
}

/// One tick for every pool: per-pool pipeline, then the global budget across pools.
/// `world.pools` is aligned with `rules`; a missing observation counts as never polled.
pub fn step(
    rules: &[PoolRules],
    world: &World,
    memory: &mut Memory,
    now: Timestamp,
) -> Vec<Decision> {
    let empty = PoolObservation::default();
    let mut decisions: Vec<Decision> = rules
        .iter()
        .enumerate()
        .map(|(i, pool)| {
            let obs = world.pools.get(i).unwrap_or(&empty);
            decide(pool, obs, memory.pool_mut(&pool.name), now)
        })
        .collect();
    if let Some(budget) = world.global_budget_per_hour {
        let floors: Vec<Option<u32>> = decisions
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let pauses = world.pools.get(i).map_or(&[][..], |o| &o.pauses[..]);
                pause::Active::of(pauses, now).budget_floor(d.current, d.desired)
            })
            .collect();
        budget::apply(rules, &mut decisions, budget, &floors);
    }
    decisions
}

#[cfg(test)]
mod hpa_upstream;
#[cfg(test)]
mod pause_tests;
#[cfg(test)]
mod tests;
