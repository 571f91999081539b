//! Pre-warming (`target: { prewarm: { season: daily } }`): learn the pool's daily or weekly
//! rhythm from its own demand and raise the floor one boot time ahead of a predicted rise.
//!
//! Like EC2 predictive scaling (anchors §3: needs ≥ 24 h of data, never scales in on the
//! forecast, launches a scheduling buffer ahead): the season is cut into [`BUCKETS`] slots;
//! each slot remembers the smoothed peak demand (in workers) of its past occurrences. The
//! floor now is the highest slot peak between now and one boot time ahead, so capacity is
//! ready when the rise comes. Until one whole season has been seen the forecaster is off and
//! the reason chain says so. It only ever raises (a floor), and everything after the floor
//! stage — bounds, cost caps, the global budget — still applies. Memory is fixed-size.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Slots per season: 5 min for a day, 35 min for a week. Fixed, so memory is bounded.
pub const BUCKETS: usize = 288;
/// Weight of the newest occurrence of a slot in its smoothed peak.
const SMOOTHING: f64 = 0.5;

/// What the forecaster remembers. Plain data, persisted with the pool's memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForecastMemory {
    /// The season length these slots were learned for (a changed season starts afresh).
    pub season_s: u64,
    /// Smoothed peak per slot; `None` for a slot never seen.
    pub peaks: Vec<Option<f64>>,
    /// When learning began.
    pub since: Option<Timestamp>,
    /// The slot occurrence under way: its absolute index and the peak so far.
    pub open: Option<(i64, f64)>,
}

/// A forecast floor, for the reason chain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Forecast {
    /// Demand of `demand` workers expected within `lead`: floor `workers`.
    Floor { workers: u32, demand: f64 },
    /// Too little history yet.
    Off { history_s: u64, needed_s: u64 },
}

impl ForecastMemory {
    fn slot_ms(season: Duration) -> i64 {
        (season.as_millis() as i64 / BUCKETS as i64).max(1)
    }

    /// Takes this tick's demand (in workers) into the slot it falls in.
    pub fn observe(&mut self, demand: f64, season: Duration, now: Timestamp) {
        if self.season_s != season.as_secs() || self.peaks.len() != BUCKETS {
            *self = ForecastMemory {
                season_s: season.as_secs(),
                peaks: vec![None; BUCKETS],
                since: Some(now),
                open: None,
            };
        }
        let slot = now.0.div_euclid(Self::slot_ms(season));
        match &mut self.open {
            Some((open, peak)) if *open == slot => *peak = peak.max(demand),
            _ => {
                self.close();
                self.open = Some((slot, demand));
            }
        }
    }

    /// Folds the finished slot occurrence into its slot's smoothed peak.
    fn close(&mut self) {
        let Some((slot, peak)) = self.open.take() else {
            return;
        };
        let i = slot.rem_euclid(BUCKETS as i64) as usize;
        self.peaks[i] = Some(match self.peaks[i] {
            Some(old) => old + SMOOTHING * (peak - old),
            None => peak,
        });
    }

    /// The floor for the next `lead`, or why there is none.
    pub fn floor(&self, season: Duration, lead: Duration, now: Timestamp) -> Option<Forecast> {
        let needed = season.as_secs();
        let history = self.since.map_or(0, |s| now.since(s).as_secs());
        if self.season_s != needed || self.peaks.len() != BUCKETS || history < needed {
            return Some(Forecast::Off {
                history_s: history,
                needed_s: needed,
            });
        }
        let slot_ms = Self::slot_ms(season);
        let first = now.0.div_euclid(slot_ms);
        let last = (now.0 + lead.as_millis() as i64).div_euclid(slot_ms);
        let demand = (first..=last)
            .filter_map(|s| self.peaks[s.rem_euclid(BUCKETS as i64) as usize])
            .fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.max(p))))?;
        Some(Forecast::Floor {
            workers: (demand - 1e-9).ceil().clamp(0.0, f64::from(u32::MAX)) as u32,
            demand,
        })
    }

    /// When the floor can next change with demand held steady: when now or now + `lead`
    /// crosses a slot boundary, or the end of the learning period if that comes first (the
    /// simulator's fast clock uses it).
    pub fn next_change(&self, season: Duration, lead: Duration, now: Timestamp) -> Timestamp {
        let slot_ms = Self::slot_ms(season);
        let lead = lead.as_millis() as i64;
        let boundary = ((now.0.div_euclid(slot_ms) + 1) * slot_ms)
            .min(((now.0 + lead).div_euclid(slot_ms) + 1) * slot_ms - lead);
        let learned = self
            .since
            .map_or(i64::MAX, |s| s.0 + season.as_millis() as i64);
        Timestamp(if learned > now.0 {
            boundary.min(learned)
        } else {
            boundary
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);
    const LEAD: Duration = Duration::from_secs(300);

    /// Demand 2 all day except 40 from 09:00 to 10:00, ticked every minute for `days`.
    fn learn(days: i64) -> ForecastMemory {
        let mut m = ForecastMemory::default();
        for minute in 0..days * 1440 {
            let hour = (minute % 1440) / 60;
            let demand = if hour == 9 { 40.0 } else { 2.0 };
            m.observe(demand, DAY, Timestamp::from_secs(minute * 60));
        }
        m
    }

    #[test]
    fn off_until_a_whole_season_was_seen() {
        let m = learn(0);
        assert_eq!(
            m.floor(DAY, LEAD, Timestamp(0)),
            Some(Forecast::Off {
                history_s: 0,
                needed_s: 86_400
            })
        );
        let m = learn(1);
        let now = Timestamp::from_secs(86_400 - 60);
        assert!(matches!(
            m.floor(DAY, LEAD, now),
            Some(Forecast::Off { .. })
        ));
    }

    #[test]
    fn raises_the_floor_one_lead_ahead_of_the_daily_rise() {
        let m = learn(3);
        let day3 = 3 * 86_400;
        // 08:50: the rise is 10 minutes away, beyond the 5-minute lead: the quiet level.
        let quiet = m.floor(DAY, LEAD, Timestamp::from_secs(day3 + 8 * 3600 + 50 * 60));
        assert_eq!(
            quiet,
            Some(Forecast::Floor {
                workers: 2,
                demand: 2.0
            })
        );
        // 08:56: within one lead of 09:00: the peak.
        let ahead = m.floor(DAY, LEAD, Timestamp::from_secs(day3 + 8 * 3600 + 56 * 60));
        assert_eq!(
            ahead,
            Some(Forecast::Floor {
                workers: 40,
                demand: 40.0
            })
        );
    }

    #[test]
    fn memory_is_bounded_and_a_new_season_starts_afresh() {
        let mut m = learn(10);
        assert_eq!(m.peaks.len(), BUCKETS);
        m.observe(1.0, DAY * 7, Timestamp::from_secs(10 * 86_400));
        assert_eq!(m.season_s, 7 * 86_400);
        assert!(m.peaks.iter().all(Option::is_none));
    }
}
