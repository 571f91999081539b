//! Backlog-deadline sizing (`target: { clear_backlog_within: 2m }`): size the pool so that the
//! work waiting now starts within the deadline, counting what the pool's own workers free up
//! in that time. The engine measures online, from the demand it is given each tick:
//!
//! - **turnover** μ (1/s): how fast one busy worker frees its load — the drain rate of demand
//!   while the pool was saturated, per ready worker, smoothed. Arrivals during a sample hide
//!   part of the drain, so μ is a lower bound: the size errs on the side of more workers.
//! - **rise** g (workers/s): demand now minus demand one deadline ago, over the deadline; only
//!   a rise counts, for the work that arrives while a new worker boots.
//!
//! With demand D (in workers: the max over signals of demand / per_worker), C workers asked
//! for, boot time b and deadline T, the work to place is `W = D + g⁺·b`. The C workers place
//! `C·(1 + μ·T)` of it within T (their free slots, then what they finish); each new worker
//! places `1 + μ·(T − b)⁺`. So the size is
//! `max(⌈min(D, C)⌉, ⌈W / (1 + μT)⌉)` when `W ≤ C·(1 + μT)` (never below the running work),
//! else `C + ⌈(W − C·(1 + μT)) / (1 + μ·(T − b)⁺)⌉`.
//! A queue that the pool clears by itself within T buys no worker (the HPA buys one per
//! queued `per_worker`, often arriving after the queue is gone); a rising queue buys its
//! workers a boot time early. Until μ is measured ([`MIN_SAMPLES`] drains) the proportional
//! target applies and the reason chain says so.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Drain samples before the turnover is trusted.
pub const MIN_SAMPLES: u32 = 3;
/// Weight of a new drain sample in the smoothed turnover.
const SMOOTHING: f64 = 0.3;
/// Bound on the remembered demand change-points (a deadline at a 1 s tick needs far fewer
/// than this; the oldest beyond the deadline are dropped first).
const MAX_POINTS: usize = 1024;

/// What the engine remembers for backlog sizing. Plain data, persisted with the pool's memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BacklogMemory {
    /// Smoothed turnover (1/s) and how many drain samples it has seen.
    pub turnover: f64,
    pub samples: u32,
    /// The previous tick: time, demand in workers, ready workers.
    pub last: Option<LastTick>,
    /// Demand change-points (time, demand in workers), oldest first; the first may be older
    /// than the deadline (it is the demand one deadline ago).
    pub points: VecDeque<(Timestamp, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LastTick {
    pub at: Timestamp,
    pub demand: f64,
    pub ready: u32,
}

/// The arithmetic behind one backlog size, for the reason chain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BacklogSize {
    pub workers: u32,
    pub demand: f64,
    pub rise_per_s: f64,
    pub turnover_per_s: f64,
}

impl BacklogMemory {
    /// Takes this tick's demand (in workers) and ready count into the estimates.
    pub fn observe(&mut self, demand: f64, ready: u32, within: Duration, now: Timestamp) {
        if let Some(last) = self.last
            && now > last.at
        {
            let dt = now.since(last.at).as_secs_f64();
            let saturated = last.ready > 0 && last.demand >= f64::from(last.ready);
            if saturated && demand < last.demand {
                let sample = (last.demand - demand) / dt / f64::from(last.ready);
                self.turnover = if self.samples == 0 {
                    sample
                } else {
                    self.turnover + SMOOTHING * (sample - self.turnover)
                };
                self.samples = self.samples.saturating_add(1);
            }
        }
        if self.points.back().is_none_or(|&(_, d)| d != demand) {
            self.points.push_back((now, demand));
        }
        let horizon = now - within;
        while self.points.len() > 1
            && (self.points[1].0 <= horizon || self.points.len() > MAX_POINTS)
        {
            self.points.pop_front();
        }
        self.last = Some(LastTick {
            at: now,
            demand,
            ready,
        });
    }

    /// The replay skipped ticks while nothing changed; `at` was the last of them.
    pub fn skipped_until(&mut self, at: Timestamp) {
        if let Some(last) = &mut self.last
            && at > last.at
        {
            last.at = at;
        }
    }

    /// Rise of demand over the last deadline (workers/s), 0 when it fell.
    fn rise(&self, now: Timestamp, within: Duration) -> f64 {
        let (Some(&(_, then)), Some(&(_, latest))) = (self.points.front(), self.points.back())
        else {
            return 0.0;
        };
        let secs = within.as_secs_f64();
        if secs <= 0.0 || self.points.front().is_some_and(|p| p.0 > now) {
            return 0.0;
        }
        ((latest - then) / secs).max(0.0)
    }

    /// True when the size can only change with demand or workers: the turnover is fixed and
    /// no change-point is inside the deadline (the rise stays what it is).
    pub fn settled(&self, now: Timestamp, within: Duration) -> bool {
        let horizon = now - within;
        match self.points.len() {
            0 | 1 => true,
            _ => self.points.back().is_some_and(|p| p.0 <= horizon),
        }
    }

    /// The deadline size, or `None` while the turnover is not yet measured.
    pub fn size(
        &self,
        demand: f64,
        current: u32,
        within: Duration,
        boot: Duration,
        now: Timestamp,
    ) -> Option<BacklogSize> {
        if self.samples < MIN_SAMPLES || !(self.turnover.is_finite() && self.turnover > 0.0) {
            return None;
        }
        let mu = self.turnover;
        let t = within.as_secs_f64();
        let b = boot.as_secs_f64();
        let rise = self.rise(now, within);
        let work = demand + rise * b;
        let c = f64::from(current);
        let placed_by_current = c * (1.0 + mu * t);
        let workers = if work <= placed_by_current {
            let running = ceil(demand.min(c));
            running.max(ceil(work / (1.0 + mu * t)))
        } else {
            let per_new = 1.0 + mu * (t - b).max(0.0);
            current.saturating_add(ceil((work - placed_by_current) / per_new))
        };
        Some(BacklogSize {
            workers,
            demand,
            rise_per_s: rise,
            turnover_per_s: mu,
        })
    }
}

/// `ceil` that forgives float noise and saturates.
fn ceil(x: f64) -> u32 {
    (x - 1e-9).ceil().clamp(0.0, f64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(120);
    const B: Duration = Duration::from_secs(60);

    fn at(s: i64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    /// A saturated pool of 10 whose demand falls 1 worker-load per 10 s: μ = 0.01/s.
    fn measured() -> BacklogMemory {
        let mut m = BacklogMemory::default();
        for i in 0..5 {
            m.observe(20.0 - i as f64, 10, T, at(i * 10));
        }
        m
    }

    #[test]
    fn unknown_turnover_gives_no_size() {
        let mut m = BacklogMemory::default();
        m.observe(20.0, 10, T, at(0));
        m.observe(20.0, 10, T, at(10));
        assert_eq!(m.size(20.0, 10, T, B, at(10)), None, "no drain seen yet");
        m.observe(19.0, 10, T, at(20));
        m.observe(18.0, 10, T, at(30));
        assert_eq!(m.samples, 2);
        assert_eq!(
            m.size(18.0, 10, T, B, at(30)),
            None,
            "two samples are not enough"
        );
    }

    #[test]
    fn turnover_is_the_drain_rate_per_ready_worker() {
        let m = measured();
        assert_eq!(m.samples, 4);
        assert!((m.turnover - 0.01).abs() < 1e-12, "{}", m.turnover);
    }

    #[test]
    fn a_queue_the_pool_clears_by_itself_buys_no_worker() {
        let mut m = measured();
        // Let the fall age out of the deadline: the rise is 0 and the size depends on μ only.
        m.observe(16.0, 10, T, at(300));
        // 10 workers place 10 · (1 + 0.01 · 120) = 22 worker-loads within 2 minutes.
        let size = m.size(16.0, 10, T, B, at(300)).unwrap();
        assert_eq!(size.workers, 10);
        assert_eq!(size.rise_per_s, 0.0);
    }

    #[test]
    fn a_queue_beyond_the_deadline_buys_workers_that_count_their_turnover() {
        let mut m = measured();
        m.observe(40.0, 10, T, at(300));
        m.observe(40.0, 10, T, at(500));
        // 40 − 22 = 18 left; a new worker places 1 + 0.01 · (120 − 60) = 1.6 → 12 more.
        let size = m.size(40.0, 10, T, B, at(500)).unwrap();
        assert_eq!(size.workers, 22);
    }

    #[test]
    fn a_rising_demand_buys_its_workers_a_boot_time_early() {
        let mut m = measured();
        m.observe(16.0, 10, T, at(300));
        m.observe(40.0, 10, T, at(310));
        // Rise over the deadline: (40 − 16) / 120 = 0.2/s; 0.2 · 60 s = 12 more to place.
        let size = m.size(40.0, 10, T, B, at(310)).unwrap();
        assert!((size.rise_per_s - 0.2).abs() < 1e-12);
        assert_eq!(size.workers, 10 + ((52.0f64 - 22.0) / 1.6).ceil() as u32);
        assert!(!m.settled(at(310), T), "the rise will change as it ages");
        m.observe(40.0, 10, T, at(440));
        assert!(m.settled(at(440), T));
    }

    #[test]
    fn never_below_the_running_work() {
        let mut m = measured();
        m.observe(6.0, 10, T, at(300));
        let size = m.size(6.0, 10, T, B, at(300)).unwrap();
        assert_eq!(size.workers, 6);
    }

    #[test]
    fn points_stay_bounded() {
        let mut m = measured();
        for i in 0..10_000 {
            m.observe(
                f64::from(i % 7),
                3,
                Duration::from_secs(86_400),
                at(100 + i64::from(i)),
            );
        }
        assert!(m.points.len() <= MAX_POINTS);
    }
}
