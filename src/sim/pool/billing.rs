//! Billing: accounted worker-time and charged worker-time (traces-and-metrics §4.3, §6).
//!
//! A worker is billed from its launch request (boot included) until it is released.
//! Accounted = the exact lifetime; charged = the lifetime rounded by the billing model.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a worker's lifetime is rounded into a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Billing {
    /// Per second, rounded up, with a minimum charge (EC2 Linux on-demand: 60 s).
    PerSecond {
        #[serde(with = "humantime_serde", default = "default_minimum")]
        minimum: Duration,
    },
    /// Every started hour is charged in full ("charged cost" of Ilyushkin et al.).
    PerHour,
}

fn default_minimum() -> Duration {
    Duration::from_secs(60)
}

impl Default for Billing {
    fn default() -> Self {
        Billing::PerSecond {
            minimum: default_minimum(),
        }
    }
}

impl Billing {
    /// The charged milliseconds for a lifetime of `lifetime_ms`.
    pub fn charge_ms(self, lifetime_ms: i64) -> i64 {
        let lifetime_ms = lifetime_ms.max(0);
        match self {
            Billing::PerSecond { minimum } => {
                let rounded = (lifetime_ms as u64).div_ceil(1000) as i64 * 1000;
                rounded.max(minimum.as_millis() as i64)
            }
            Billing::PerHour => (lifetime_ms as u64).div_ceil(3_600_000).max(1) as i64 * 3_600_000,
        }
    }

    pub fn describe(self) -> String {
        match self {
            Billing::PerSecond { minimum } => format!("per second, {}s minimum", minimum.as_secs()),
            Billing::PerHour => "per started hour".to_string(),
        }
    }
}

/// Running totals over released workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ledger {
    pub accounted_ms: u128,
    pub charged_ms: u128,
    pub launches: u64,
}

impl Ledger {
    pub fn release(&mut self, billing: Billing, lifetime_ms: i64) {
        self.accounted_ms += lifetime_ms.max(0) as u128;
        self.charged_ms += billing.charge_ms(lifetime_ms) as u128;
    }

    pub fn accounted_hours(&self) -> f64 {
        self.accounted_ms as f64 / 3_600_000.0
    }

    pub fn charged_hours(&self) -> f64 {
        self.charged_ms as f64 / 3_600_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_second_rounds_up_with_minimum() {
        let billing = Billing::default();
        assert_eq!(billing.charge_ms(1), 60_000);
        assert_eq!(billing.charge_ms(60_001), 61_000);
        assert_eq!(
            billing.charge_ms(0),
            60_000,
            "a launch is charged even if released at once"
        );
    }

    #[test]
    fn per_hour_charges_started_hours() {
        assert_eq!(Billing::PerHour.charge_ms(1), 3_600_000);
        assert_eq!(Billing::PerHour.charge_ms(3_600_001), 7_200_000);
    }

    #[test]
    fn ledger_sums_both() {
        let mut ledger = Ledger::default();
        ledger.release(Billing::PerHour, 1_800_000);
        ledger.release(Billing::PerHour, 1_800_000);
        assert_eq!(ledger.accounted_hours(), 1.0);
        assert_eq!(ledger.charged_hours(), 2.0);
    }
}
