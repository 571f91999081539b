//! The step curves one simulated run produces, the input of every metric and plot.
//!
//! A sample holds until the next sample (or the timeline's end). Only change-points are stored,
//! so an 11-month replay stays small and the metrics integrate exactly over the segments.

use super::trace::Centi;

/// The pool's state from `at` until the next sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    /// Demand in workers, d(t) = ⌈(queued + running units) / C⌉ (endogenous, traces-and-metrics §3.1).
    pub demand_workers: u32,
    /// Supply s(t): workers that are ready (booted), including ones draining their last work.
    pub ready_workers: u32,
    /// Workers being paid for: booting + ready + draining.
    pub billed_workers: u32,
    /// Units waiting in the queue.
    pub queued_units: Centi,
    /// Units running.
    pub running_units: Centi,
}

/// Change-points of one run, from the first arrival to `end`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    pub samples: Vec<Sample>,
    /// End of the last segment (ms since epoch).
    pub end: i64,
}

impl Timeline {
    /// Appends a sample unless nothing changed; a sample at the same instant replaces the
    /// previous one (several events at one time are one change-point).
    pub fn push(&mut self, sample: Sample) {
        if let Some(last) = self.samples.last_mut() {
            if last.at == sample.at {
                *last = sample;
                if self.samples.len() >= 2 {
                    let previous = self.samples[self.samples.len() - 2];
                    if same_state(&previous, &sample) {
                        self.samples.pop();
                    }
                }
                return;
            }
            if same_state(last, &sample) {
                return;
            }
        }
        self.samples.push(sample);
    }

    pub fn start(&self) -> i64 {
        self.samples.first().map_or(self.end, |s| s.at)
    }

    /// Total duration in ms.
    pub fn duration_ms(&self) -> i64 {
        (self.end - self.start()).max(0)
    }

    /// Each sample with the length of its segment (ms).
    pub fn segments(&self) -> impl Iterator<Item = (&Sample, i64)> {
        let ends = self
            .samples
            .iter()
            .skip(1)
            .map(|s| s.at)
            .chain(std::iter::once(self.end));
        self.samples
            .iter()
            .zip(ends)
            .map(|(sample, end)| (sample, (end - sample.at).max(0)))
    }
}

fn same_state(a: &Sample, b: &Sample) -> bool {
    a.demand_workers == b.demand_workers
        && a.ready_workers == b.ready_workers
        && a.billed_workers == b.billed_workers
        && a.queued_units == b.queued_units
        && a.running_units == b.running_units
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: i64, demand: u32) -> Sample {
        Sample {
            at,
            demand_workers: demand,
            ready_workers: 1,
            billed_workers: 1,
            queued_units: 0,
            running_units: 0,
        }
    }

    #[test]
    fn push_keeps_only_change_points() {
        let mut timeline = Timeline::default();
        timeline.push(sample(0, 1));
        timeline.push(sample(5, 1));
        timeline.push(sample(10, 2));
        timeline.push(sample(10, 1));
        timeline.push(sample(20, 3));
        timeline.end = 30;
        let points: Vec<(i64, u32, i64)> = timeline
            .segments()
            .map(|(s, length)| (s.at, s.demand_workers, length))
            .collect();
        assert_eq!(points, vec![(0, 1, 20), (20, 3, 10)]);
        assert_eq!(timeline.duration_ms(), 30);
    }
}
