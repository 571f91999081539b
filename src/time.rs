//! Time as a value. `Timestamp` is milliseconds since the Unix epoch; the engine and simulator
//! only ever receive it as an argument. [`Timestamp::now`] is the single place that reads the
//! wall clock (allowed by `clippy.toml` here and nowhere else).

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const EPOCH: Timestamp = Timestamp(0);

    /// The wall clock. Only the daemon's edges call this.
    #[allow(clippy::disallowed_methods, clippy::disallowed_types)]
    pub fn now() -> Timestamp {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(since.as_millis() as i64)
    }

    pub fn from_secs(secs: i64) -> Timestamp {
        Timestamp(secs.saturating_mul(1000))
    }

    pub fn from_secs_f64(secs: f64) -> Timestamp {
        Timestamp((secs * 1000.0).round() as i64)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Time elapsed since `earlier`; zero when the clock went backwards.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0).max(0) as u64)
    }

    /// As a `chrono` UTC date-time (for cron schedules and display).
    pub fn to_utc(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(self.0).unwrap_or_default()
    }

    pub fn from_utc(t: chrono::DateTime<chrono::Utc>) -> Timestamp {
        Timestamp(t.timestamp_millis())
    }

    /// Parses RFC 3339 (`2026-11-25T09:00:00Z`).
    pub fn parse_rfc3339(s: &str) -> Result<Timestamp, chrono::ParseError> {
        Ok(Timestamp::from_utc(
            chrono::DateTime::parse_from_rfc3339(s)?.with_timezone(&chrono::Utc),
        ))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(d.as_millis().min(i64::MAX as u128) as i64),
        )
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_sub(d.as_millis().min(i64::MAX as u128) as i64),
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_utc().format("%Y-%m-%dT%H:%M:%S%.3fZ"))
    }
}

/// Serializes a [`Timestamp`] as RFC 3339 UTC with milliseconds (`2026-11-25T09:00:00.000Z`),
/// for what people and dashboards read (`/status`); files poolpilot reads back keep
/// milliseconds. `#[serde(serialize_with = "crate::time::rfc3339")]`.
pub fn rfc3339<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(t)
}

/// [`rfc3339`] for an optional timestamp (`null` when absent).
pub fn rfc3339_opt<S: serde::Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.collect_str(t),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_zero_when_clock_goes_backwards() {
        assert_eq!(Timestamp(1_000).since(Timestamp(5_000)), Duration::ZERO);
        assert_eq!(
            Timestamp(5_000).since(Timestamp(1_000)),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn rfc3339_round_trip() {
        let t = Timestamp::parse_rfc3339("2026-11-25T09:00:00Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-25T09:00:00.000Z");
    }
}
