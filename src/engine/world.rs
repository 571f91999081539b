//! What the engine is told each tick: per pool, its signals and its worker counts.

use serde::{Deserialize, Serialize};

use super::pause::Pause;
use super::signal::Signal;

/// Everything observed this tick, aligned with the policy slice given to [`super::step`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct World {
    pub pools: Vec<PoolObservation>,
    /// Money per hour across all pools (daemon settings); `None` = no global budget.
    pub global_budget_per_hour: Option<f64>,
}

/// One pool's observation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolObservation {
    /// One entry per policy signal, same order. Fewer entries = the rest were never polled.
    pub signals: Vec<Signal>,
    pub workers: WorkerCounts,
    /// Run-time pauses from every source, expired ones included (the engine compares them
    /// with `now`). Empty for nearly every pool, so left out of recordings when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pauses: Vec<Pause>,
}

/// The pool as its actuator reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerCounts {
    /// Workers asked for (the actuator's desired/replicas): the engine's "current".
    pub requested: u32,
    /// Workers ready to take work; `requested - ready` are booting.
    pub ready: u32,
}
