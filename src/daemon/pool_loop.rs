//! What the control loop keeps about one pool between ticks, besides the engine's memory and
//! the state file: the scale-down under way, and what was last seen, sent, shown and logged.
//! Kept by pool name so it survives a policy reload that rebuilds the pool's I/O objects.

use std::collections::HashMap;

use super::actuation::DrainTask;
use super::status::ActuationView;

#[derive(Default)]
pub struct PoolLoop {
    drain: Option<DrainTask>,
    /// Last (current, desired) sent through `DryRun`, so a held shadow decision logs once.
    last_would: Option<(u32, u32)>,
    /// Requested size seen last tick, to notice changes made by someone else (the leader).
    last_seen: Option<u32>,
    last_actuation: Option<ActuationView>,
    /// Last logged (desired, reason labels): one log line per change of decision.
    last_logged: Option<(u32, Vec<&'static str>)>,
}

impl PoolLoop {
    pub fn drain(&self) -> Option<&DrainTask> {
        self.drain.as_ref()
    }

    pub fn drain_mut(&mut self) -> Option<&mut DrainTask> {
        self.drain.as_mut()
    }

    pub fn start_drain(&mut self, task: DrainTask) {
        self.drain = Some(task);
    }

    /// The scale-down under way, if it has finished (taken out).
    pub fn take_finished_drain(&mut self) -> Option<DrainTask> {
        match &self.drain {
            Some(t) if t.handle.is_finished() => self.drain.take(),
            _ => None,
        }
    }

    pub fn take_drain(&mut self) -> Option<DrainTask> {
        self.drain.take()
    }

    /// `true` (and remembered) when (current, desired) differs from the last would-be send.
    pub fn would_changed(&mut self, current: u32, desired: u32) -> bool {
        let changed = self.last_would != Some((current, desired));
        self.last_would = Some((current, desired));
        changed
    }

    pub fn forget_would(&mut self) {
        self.last_would = None;
    }

    /// Remembers this tick's requested size; returns last tick's.
    pub fn seen(&mut self, requested: u32) -> Option<u32> {
        self.last_seen.replace(requested)
    }

    pub fn last_seen(&self) -> Option<u32> {
        self.last_seen
    }

    pub fn note_actuation(&mut self, view: ActuationView) {
        self.last_actuation = Some(view);
    }

    pub fn last_actuation(&self) -> Option<&ActuationView> {
        self.last_actuation.as_ref()
    }

    /// `true` (and remembered) when the decision differs from the last logged one.
    pub fn log_changed(&mut self, desired: u32, labels: Vec<&'static str>) -> bool {
        let key = Some((desired, labels));
        let changed = self.last_logged != key;
        self.last_logged = key;
        changed
    }
}

/// Every pool's loop state, by pool name.
#[derive(Default)]
pub struct PoolLoops(HashMap<String, PoolLoop>);

impl PoolLoops {
    pub fn get(&self, pool: &str) -> Option<&PoolLoop> {
        self.0.get(pool)
    }

    pub fn of(&mut self, pool: &str) -> &mut PoolLoop {
        if !self.0.contains_key(pool) {
            self.0.insert(pool.to_string(), PoolLoop::default());
        }
        self.0.get_mut(pool).expect("inserted above")
    }

    /// Forgets pools no longer configured, except those with a scale-down still under way.
    pub fn retain(&mut self, names: &[&str]) {
        self.0
            .retain(|name, l| names.contains(&name.as_str()) || l.drain.is_some());
    }

    pub fn draining(&self, pool: &str) -> bool {
        self.get(pool).is_some_and(|l| l.drain.is_some())
    }

    pub fn drains(&self) -> impl Iterator<Item = &DrainTask> {
        self.0.values().filter_map(|l| l.drain.as_ref())
    }

    pub fn drains_mut(&mut self) -> impl Iterator<Item = &mut DrainTask> {
        self.0.values_mut().filter_map(|l| l.drain.as_mut())
    }

    /// Pools whose scale-down has finished, with the task taken out.
    pub fn take_finished_drains(&mut self) -> Vec<(String, DrainTask)> {
        self.0
            .iter_mut()
            .filter_map(|(name, l)| l.take_finished_drain().map(|t| (name.clone(), t)))
            .collect()
    }

    /// Every scale-down still under way, taken out (shutdown).
    pub fn take_all_drains(&mut self) -> Vec<(String, DrainTask)> {
        self.0
            .iter_mut()
            .filter_map(|(name, l)| l.take_drain().map(|t| (name.clone(), t)))
            .collect()
    }
}
