//! Scheduled floors: a cron start, a duration and a minimum, in an IANA time zone.

use std::str::FromStr;
use std::time::Duration;

use chrono_tz::Tz;
use croner::Cron;

use crate::time::Timestamp;

#[derive(Debug, Clone)]
pub struct Schedule {
    pub cron: Cron,
    pub timezone: Tz,
    pub duration: Duration,
    pub min: u32,
}

/// Equal when written the same (the compiled cron compares by its pattern text).
impl PartialEq for Schedule {
    fn eq(&self, other: &Schedule) -> bool {
        self.cron.pattern.to_string() == other.cron.pattern.to_string()
            && self.timezone == other.timezone
            && self.duration == other.duration
            && self.min == other.min
    }
}

impl Schedule {
    /// Compiles a schedule; errors are (field, message).
    pub fn compile(
        cron: &str,
        timezone: &str,
        duration: Duration,
        min: u32,
    ) -> Result<Schedule, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let parsed = Cron::from_str(cron)
            .map_err(|e| errors.push(("cron", format!("invalid cron `{cron}`: {e}"))));
        let tz = Tz::from_str(timezone).map_err(|_| {
            errors.push((
                "timezone",
                format!(
                    "unknown time zone `{timezone}` (use an IANA name such as `Europe/London`)"
                ),
            ))
        });
        if duration.is_zero() {
            errors.push(("for", "must be longer than 0s".into()));
        }
        if let Ok(cron) = &parsed
            && !fires(cron)
        {
            errors.push((
                "cron",
                format!("`{cron}` never fires (no such date within {NEVER_YEARS} years)"),
            ));
        }
        match (parsed, tz) {
            (Ok(cron), Ok(timezone)) if errors.is_empty() => Ok(Schedule {
                cron,
                timezone,
                duration,
                min,
            }),
            _ => Err(errors),
        }
    }

    /// Whether the floor holds at `now`: the latest start at or before `now` is less than
    /// `duration` ago.
    pub fn is_active(&self, now: Timestamp) -> bool {
        let local = now.to_utc().with_timezone(&self.timezone);
        match self.cron.find_previous_occurrence(&local, true) {
            Ok(start) => {
                let start = Timestamp::from_utc(start.with_timezone(&chrono::Utc));
                now.since(start) < self.duration
            }
            Err(_) => false,
        }
    }
}

/// A cron that cannot fire within this many years of 2026-01-01 is refused: it is a mistake
/// (`0 0 30 2 *`), and each tick would search centuries for its previous start.
const NEVER_YEARS: i64 = 30;

fn fires(cron: &Cron) -> bool {
    let from = chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default(); // 2026-01-01
    cron.find_next_occurrence(&from, true)
        .is_ok_and(|next| next.signed_duration_since(from).num_days() <= NEVER_YEARS * 366)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn office_hours_in_london() {
        let s = Schedule::compile(
            "0 7 * * MON-FRI",
            "Europe/London",
            Duration::from_secs(3 * 3600),
            10,
        )
        .unwrap();
        // Wednesday 2026-11-25, London = UTC in winter.
        assert!(s.is_active(Timestamp::parse_rfc3339("2026-11-25T07:00:00Z").unwrap()));
        assert!(s.is_active(Timestamp::parse_rfc3339("2026-11-25T09:59:00Z").unwrap()));
        assert!(!s.is_active(Timestamp::parse_rfc3339("2026-11-25T10:00:00Z").unwrap()));
        assert!(!s.is_active(Timestamp::parse_rfc3339("2026-11-25T06:59:00Z").unwrap()));
        // Saturday.
        assert!(!s.is_active(Timestamp::parse_rfc3339("2026-11-28T08:00:00Z").unwrap()));
    }

    #[test]
    fn summer_time_is_respected() {
        let s =
            Schedule::compile("0 7 * * *", "Europe/London", Duration::from_secs(3600), 1).unwrap();
        // 2026-07-01 07:00 BST = 06:00 UTC.
        assert!(s.is_active(Timestamp::parse_rfc3339("2026-07-01T06:30:00Z").unwrap()));
        assert!(!s.is_active(Timestamp::parse_rfc3339("2026-07-01T07:30:00Z").unwrap()));
    }

    #[test]
    fn bad_cron_and_zone_are_both_reported() {
        let errs = Schedule::compile("61 * * *", "Mars/Base", Duration::ZERO, 1).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.0).collect();
        assert_eq!(fields, ["cron", "timezone", "for"]);
    }

    #[test]
    fn a_cron_that_never_fires_is_refused_but_leap_days_are_fine() {
        let hour = Duration::from_secs(3600);
        let errs = Schedule::compile("0 0 30 2 *", "UTC", hour, 1).unwrap_err();
        assert!(errs[0].1.contains("never fires"), "{errs:?}");
        assert!(Schedule::compile("0 0 29 2 *", "UTC", hour, 1).is_ok());
    }
}
