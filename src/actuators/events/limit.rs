//! Rate limit for Events: an identical Event (same type, reason and note) about the same object
//! is published at most once per window; the next one after the window says how many were
//! dropped. client-go's recorder does the same job with its EventCorrelator (aggregation of
//! similar events within `defaultAggregateIntervalInSeconds = 600`, and a spam filter of 25
//! per object refilled every 5 min: `kubernetes/client-go: tools/record/events_cache.go`); a
//! pool's events are few and repetitive (one failure every tick), so one window per event is
//! enough. Time is an argument: the caller reads the clock.

use std::collections::HashMap;
use std::time::Duration;

use super::PoolEvent;
use crate::time::Timestamp;

/// client-go's aggregation interval.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(600);

#[derive(Debug)]
pub struct Window {
    window: Duration,
    /// Last publication and how many identical events were dropped since.
    seen: HashMap<PoolEvent, (Timestamp, u32)>,
}

impl Window {
    pub fn new(window: Duration) -> Window {
        Window {
            window,
            seen: HashMap::new(),
        }
    }

    /// `Some(dropped since the last one)` when `event` may be published at `now`, else `None`.
    pub fn admit(&mut self, event: &PoolEvent, now: Timestamp) -> Option<u32> {
        let window = self.window;
        // Forget what limits nothing and has nothing to report, so the map stays small; a
        // count of dropped events waits for the event's return, but not forever.
        self.seen.retain(|_, (at, dropped)| {
            let age = now.since(*at);
            age < window || (*dropped > 0 && age < window * 10)
        });
        match self.seen.get_mut(event) {
            Some((at, dropped)) if now.since(*at) < window => {
                *dropped += 1;
                None
            }
            Some((at, dropped)) => {
                let reported = std::mem::take(dropped);
                *at = now;
                Some(reported)
            }
            None => {
                self.seen.insert(event.clone(), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actuators::events::EventType;

    fn event(note: &str) -> PoolEvent {
        PoolEvent {
            type_: EventType::Warning,
            reason: "FailedGetScale",
            action: "GetScale",
            note: note.into(),
        }
    }

    #[test]
    fn identical_events_once_per_window_distinct_ones_always() {
        let mut w = Window::new(Duration::from_secs(600));
        let t = Timestamp::from_secs(1_000);
        assert_eq!(w.admit(&event("a"), t), Some(0));
        assert_eq!(w.admit(&event("a"), Timestamp::from_secs(1_300)), None);
        assert_eq!(w.admit(&event("b"), Timestamp::from_secs(1_300)), Some(0));
        assert_eq!(w.admit(&event("a"), Timestamp::from_secs(1_599)), None);
        assert_eq!(w.admit(&event("a"), Timestamp::from_secs(1_600)), Some(2));
        assert_eq!(w.admit(&event("b"), Timestamp::from_secs(1_900)), Some(0));
    }
}
