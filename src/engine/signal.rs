//! What the engine is told about each signal: a fresh value, or typed missing data.
//! Sources never decide; a failed poll is data, and the policy's missing-signal rule applies.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// One observation of one policy signal, in demand units (queries, task slots, cores).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signal {
    /// A good reading taken at `observed_at`.
    Value { demand: f64, observed_at: Timestamp },
    /// No good reading since `since` (the time of the first failure in the current streak).
    Missing {
        since: Timestamp,
        fault: SignalFault,
    },
}

/// Why a signal is missing. Variant names are the `kind` metric label (low cardinality).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalFault {
    /// Connection refused, DNS failure, TLS failure.
    Unreachable,
    /// Connect or read timeout, or a body that trickled in too slowly.
    Timeout,
    /// Any non-success HTTP status other than auth (5xx, 404, 503 from a Presto resource manager).
    HttpStatus,
    /// 401/403, or a token that could not be obtained.
    Auth,
    /// Body or SQL result that does not parse, or has wrong field types.
    Malformed,
    /// Body larger than the response size cap.
    Oversized,
    /// Never polled yet (daemon start).
    NotPolled,
}

impl SignalFault {
    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            SignalFault::Unreachable => "unreachable",
            SignalFault::Timeout => "timeout",
            SignalFault::HttpStatus => "http_status",
            SignalFault::Auth => "auth",
            SignalFault::Malformed => "malformed",
            SignalFault::Oversized => "oversized",
            SignalFault::NotPolled => "not_polled",
        }
    }
}

/// Workers the demand needs now, unrounded: the largest `demand / per_worker` over the good
/// readings (`per_worker` aligned with `signals`); `None` without any.
pub fn demand_in_workers(per_worker: &[f64], signals: &[Signal]) -> Option<f64> {
    signals
        .iter()
        .zip(per_worker)
        .filter_map(|(s, per)| match s {
            Signal::Value { demand, .. } if demand.is_finite() && *demand >= 0.0 && *per > 0.0 => {
                Some(demand / per)
            }
            _ => None,
        })
        .reduce(f64::max)
}
