//! Seeded workload generators, so shipped scenarios need no external file.
//!
//! Arrivals are a Poisson process with a base rate, optionally modulated by a daily cycle
//! (cosine peaking at `peak_hour` UTC, weekends scaled) and overlaid with periodic bursts.
//! Runtimes are log-normal (median + sigma, capped); widths are fixed or drawn from weighted
//! choices. The RNG is `fastrand`'s wyrand seeded from the scenario: same seed, same jobs.

use std::f64::consts::PI;
use std::time::Duration;

use chrono::{Datelike, Timelike};
use serde::{Deserialize, Serialize};

use super::{Job, Workload, to_centi};
use crate::time::Timestamp;

/// A Monday, so weekly shapes start on a weekday.
pub const DEFAULT_START: Timestamp = Timestamp(1_767_571_200_000); // 2026-01-05T00:00:00Z

/// Generator settings (scenario `workload.generate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSpec {
    /// Seed of the RNG. Required: randomness is never unseeded.
    pub seed: u64,
    /// Length of the arrival window.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Wall-clock instant of the first possible arrival (RFC 3339); default 2026-01-05T00:00Z.
    #[serde(default)]
    pub start: Option<String>,
    /// Mean arrival rate of the base process (before the daily cycle and bursts).
    pub arrivals_per_hour: f64,
    #[serde(default)]
    pub diurnal: Option<DiurnalSpec>,
    #[serde(default)]
    pub bursts: Option<BurstSpec>,
    pub runtime: RuntimeSpec,
    pub width: WidthSpec,
}

/// Daily cycle: rate(t) = base · (1 + (peak_to_mean − 1) · cos(2π (hour − peak_hour) / 24)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiurnalSpec {
    /// Peak rate over mean rate, in [1, 2] (2 makes the night trough zero).
    pub peak_to_mean: f64,
    /// Hour of the peak, UTC, 0–24.
    pub peak_hour: f64,
    /// Rate multiplier on Saturdays and Sundays (1 = no weekly cycle).
    #[serde(default = "one")]
    pub weekend_factor: f64,
}

/// `jobs` extra arrivals spread uniformly over `within`, once every `every`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstSpec {
    #[serde(with = "humantime_serde")]
    pub every: Duration,
    pub jobs: u32,
    #[serde(with = "humantime_serde")]
    pub within: Duration,
}

/// Log-normal runtime: median · exp(sigma · N(0, 1)), clamped to [1 s, max].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSpec {
    #[serde(with = "humantime_serde")]
    pub median: Duration,
    #[serde(default = "one")]
    pub sigma: f64,
    #[serde(default, with = "humantime_serde")]
    pub max: Option<Duration>,
}

/// A fixed width, or weighted choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WidthSpec {
    Fixed(f64),
    Choices { choices: Vec<WeightedWidth> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedWidth {
    pub width: f64,
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

impl GeneratorSpec {
    /// Checks the numbers a generator cannot work with.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.arrivals_per_hour >= 0.0,
            "arrivals_per_hour must be ≥ 0"
        );
        anyhow::ensure!(!self.duration.is_zero(), "duration must be > 0");
        // Bounds so a generator's cost follows what it is asked for, within reason.
        let max_duration = Duration::from_secs(366 * 86_400);
        anyhow::ensure!(
            self.duration <= max_duration,
            "duration must be at most 366d"
        );
        let hours = self.duration.as_secs_f64() / 3600.0;
        let max_jobs = super::limits::MAX_JOBS as f64;
        anyhow::ensure!(
            self.arrivals_per_hour * self.max_shape().max(1.0) * hours <= max_jobs,
            "arrivals_per_hour × duration (at the peak rate) asks for more than {max_jobs} jobs"
        );
        if let Some(diurnal) = &self.diurnal {
            anyhow::ensure!(
                (0.0..=24.0).contains(&diurnal.peak_hour),
                "diurnal.peak_hour must be in [0, 24]"
            );
            anyhow::ensure!(
                diurnal.weekend_factor <= 10.0,
                "diurnal.weekend_factor must be at most 10"
            );
        }
        if let Some(bursts) = &self.bursts {
            let count = self.duration.as_secs_f64() / bursts.every.as_secs_f64().max(1e-3);
            anyhow::ensure!(
                f64::from(bursts.jobs) * count <= max_jobs,
                "bursts ask for more than {max_jobs} jobs"
            );
        }
        let max_runtime = Duration::from_secs(super::limits::MAX_RUNTIME_SECS as u64);
        anyhow::ensure!(
            self.runtime.median <= max_runtime && self.runtime.max.is_none_or(|m| m <= max_runtime),
            "runtime.median and runtime.max must be at most 366d"
        );
        anyhow::ensure!(
            self.runtime.sigma <= 10.0,
            "runtime.sigma must be at most 10"
        );
        let widths: Vec<f64> = match &self.width {
            WidthSpec::Fixed(w) => vec![*w],
            WidthSpec::Choices { choices } => choices.iter().map(|c| c.width).collect(),
        };
        anyhow::ensure!(
            widths.iter().all(|w| *w <= super::limits::MAX_WIDTH_UNITS),
            "widths must be at most {}",
            super::limits::MAX_WIDTH_UNITS
        );
        if let Some(diurnal) = &self.diurnal {
            anyhow::ensure!(
                (1.0..=2.0).contains(&diurnal.peak_to_mean),
                "diurnal.peak_to_mean must be in [1, 2]"
            );
            anyhow::ensure!(
                diurnal.weekend_factor >= 0.0,
                "diurnal.weekend_factor must be ≥ 0"
            );
        }
        if let Some(bursts) = &self.bursts {
            anyhow::ensure!(!bursts.every.is_zero(), "bursts.every must be > 0");
        }
        anyhow::ensure!(self.runtime.sigma >= 0.0, "runtime.sigma must be ≥ 0");
        anyhow::ensure!(!self.runtime.median.is_zero(), "runtime.median must be > 0");
        match &self.width {
            WidthSpec::Fixed(width) => anyhow::ensure!(*width > 0.0, "width must be > 0"),
            WidthSpec::Choices { choices } => anyhow::ensure!(
                !choices.is_empty()
                    && choices.iter().all(|c| c.width > 0.0 && c.weight >= 0.0)
                    && choices.iter().any(|c| c.weight > 0.0),
                "width.choices needs positive widths and at least one positive weight"
            ),
        }
        Ok(())
    }

    fn start(&self) -> anyhow::Result<Timestamp> {
        match &self.start {
            Some(text) => Timestamp::parse_rfc3339(text)
                .map_err(|error| anyhow::anyhow!("generate.start {text:?}: {error}")),
            None => Ok(DEFAULT_START),
        }
    }

    /// Rate multiplier at `at` (1 without a daily cycle).
    fn shape(&self, at: Timestamp) -> f64 {
        let Some(diurnal) = &self.diurnal else {
            return 1.0;
        };
        let utc = at.to_utc();
        let hour = utc.hour() as f64 + utc.minute() as f64 / 60.0;
        let daily = 1.0
            + (diurnal.peak_to_mean - 1.0) * (2.0 * PI * (hour - diurnal.peak_hour) / 24.0).cos();
        let weekend = utc.weekday().num_days_from_monday() >= 5;
        daily * if weekend { diurnal.weekend_factor } else { 1.0 }
    }

    fn max_shape(&self) -> f64 {
        self.diurnal
            .as_ref()
            .map_or(1.0, |d| d.peak_to_mean * d.weekend_factor.max(1.0))
    }
}

/// Generates the jobs. Deterministic for a given spec.
pub fn generate(spec: &GeneratorSpec) -> anyhow::Result<Workload> {
    spec.validate()?;
    let start = spec.start()?;
    let end = start + spec.duration;
    let mut rng = fastrand::Rng::with_seed(spec.seed);
    let mut arrivals: Vec<Timestamp> = Vec::new();
    // Non-homogeneous Poisson by thinning against the peak rate.
    let peak_per_ms = spec.arrivals_per_hour * spec.max_shape() / 3_600_000.0;
    if peak_per_ms > 0.0 {
        let mut at = start.0 as f64;
        loop {
            at += -(1.0 - rng.f64()).ln() / peak_per_ms;
            if at >= end.0 as f64 {
                break;
            }
            let when = Timestamp(at as i64);
            if rng.f64() * spec.max_shape() < spec.shape(when) {
                arrivals.push(when);
            }
        }
    }
    if let Some(bursts) = &spec.bursts {
        let every = bursts.every.as_millis() as i64;
        let within = bursts.within.as_millis().max(1) as i64;
        let mut burst_start = start.0 + every / 2;
        while burst_start < end.0 {
            for _ in 0..bursts.jobs {
                arrivals.push(Timestamp(burst_start + rng.i64(0..within)));
            }
            burst_start += every;
        }
    }
    arrivals.sort();
    let jobs = arrivals
        .into_iter()
        .map(|arrival| Job {
            arrival,
            width: sample_width(&spec.width, &mut rng),
            runtime_ms: sample_runtime(&spec.runtime, &mut rng),
        })
        .collect();
    Ok(Workload::new(
        jobs,
        format!("generated (seed {})", spec.seed),
    ))
}

fn sample_runtime(spec: &RuntimeSpec, rng: &mut fastrand::Rng) -> i64 {
    // Box–Muller; 1 − u keeps the logarithm finite.
    let normal = (-2.0 * (1.0 - rng.f64()).ln()).sqrt() * (2.0 * PI * rng.f64()).cos();
    let seconds = spec.median.as_secs_f64() * (spec.sigma * normal).exp();
    let max = spec.max.map_or(f64::INFINITY, |max| max.as_secs_f64());
    (seconds.clamp(1.0, max.max(1.0)) * 1000.0).round() as i64
}

fn sample_width(spec: &WidthSpec, rng: &mut fastrand::Rng) -> u64 {
    match spec {
        WidthSpec::Fixed(width) => to_centi(*width),
        WidthSpec::Choices { choices } => {
            let total: f64 = choices.iter().map(|c| c.weight).sum();
            let mut pick = rng.f64() * total;
            for choice in choices {
                if pick < choice.weight {
                    return to_centi(choice.width);
                }
                pick -= choice.weight;
            }
            to_centi(choices.last().map_or(1.0, |c| c.width))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seed: u64) -> GeneratorSpec {
        GeneratorSpec {
            seed,
            duration: Duration::from_secs(7 * 86_400),
            start: None,
            arrivals_per_hour: 60.0,
            diurnal: Some(DiurnalSpec {
                peak_to_mean: 2.0,
                peak_hour: 14.0,
                weekend_factor: 0.5,
            }),
            bursts: Some(BurstSpec {
                every: Duration::from_secs(6 * 3600),
                jobs: 50,
                within: Duration::from_secs(60),
            }),
            runtime: RuntimeSpec {
                median: Duration::from_secs(60),
                sigma: 1.0,
                max: Some(Duration::from_secs(3600)),
            },
            width: WidthSpec::Choices {
                choices: vec![
                    WeightedWidth {
                        width: 1.0,
                        weight: 3.0,
                    },
                    WeightedWidth {
                        width: 0.5,
                        weight: 1.0,
                    },
                ],
            },
        }
    }

    #[test]
    fn same_seed_same_jobs_other_seed_other_jobs() {
        let a = generate(&spec(7)).unwrap();
        assert_eq!(a.jobs, generate(&spec(7)).unwrap().jobs);
        assert_ne!(a.jobs, generate(&spec(8)).unwrap().jobs);
    }

    #[test]
    fn rates_shapes_and_bounds_hold() {
        let workload = generate(&spec(1)).unwrap();
        let jobs = &workload.jobs;
        // 5 weekdays at 60/h (7,200) + 2 weekend days at 30/h (1,440) + 28 bursts of 50 (1,400).
        assert!((9_500..10_600).contains(&jobs.len()), "{}", jobs.len());
        let hour = |job: &Job| job.arrival.to_utc().hour();
        let afternoon = jobs
            .iter()
            .filter(|job| (13..16).contains(&hour(job)))
            .count();
        let night = jobs
            .iter()
            .filter(|job| (1..4).contains(&hour(job)))
            .count();
        assert!(
            afternoon > 5 * night,
            "afternoon {afternoon} vs night {night}"
        );
        assert!(
            jobs.iter()
                .all(|job| (1000..=3_600_000).contains(&job.runtime_ms))
        );
        assert!(jobs.iter().all(|job| job.width == 100 || job.width == 50));
        assert!(
            jobs.windows(2)
                .all(|pair| pair[0].arrival <= pair[1].arrival)
        );
    }

    #[test]
    fn invalid_specs_are_rejected() {
        let mut bad = spec(1);
        bad.diurnal.as_mut().unwrap().peak_to_mean = 3.0;
        assert!(generate(&bad).is_err());
        let mut bad = spec(1);
        bad.width = WidthSpec::Fixed(0.0);
        assert!(generate(&bad).is_err());
    }
}
