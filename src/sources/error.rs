//! What can go wrong while polling a source, as typed data. Messages name the endpoint (without
//! any userinfo) and never carry a credential: they end up in logs, `/status` and `probe` output.

use std::time::Duration;

use crate::engine::SignalFault;

/// A failed poll. [`SourceError::fault`] is the engine-facing kind (and metric label).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// Connection refused, DNS, TLS, or a connection dropped mid-response.
    #[error("cannot reach {target}: {detail}")]
    Unreachable { target: String, detail: String },
    /// No complete answer within the deadline (includes a body that trickles in too slowly).
    #[error("no complete answer from {target} within {}", humantime::format_duration(*.after))]
    Timeout { target: String, after: Duration },
    /// A non-success status other than 401/403.
    #[error("{target} answered HTTP {status}{}", excerpt_suffix(.body_excerpt))]
    HttpStatus {
        target: String,
        status: u16,
        body_excerpt: String,
    },
    /// 401/403, a refused token request, a refused database login, or a secret that cannot be read.
    #[error("authentication failed for {target}: {detail}")]
    Auth { target: String, detail: String },
    /// Body or SQL result that does not parse, lacks a required counter, or has wrong types.
    #[error("unexpected answer from {target}: {detail}")]
    Malformed { target: String, detail: String },
    /// Body larger than the configured cap (reading stopped there).
    #[error("answer from {target} exceeds the {limit}-byte cap")]
    Oversized { target: String, limit: u64 },
}

fn excerpt_suffix(excerpt: &str) -> String {
    if excerpt.is_empty() {
        String::new()
    } else {
        format!(": {excerpt}")
    }
}

impl SourceError {
    pub fn fault(&self) -> SignalFault {
        match self {
            SourceError::Unreachable { .. } => SignalFault::Unreachable,
            SourceError::Timeout { .. } => SignalFault::Timeout,
            SourceError::HttpStatus { .. } => SignalFault::HttpStatus,
            SourceError::Auth { .. } => SignalFault::Auth,
            SourceError::Malformed { .. } => SignalFault::Malformed,
            SourceError::Oversized { .. } => SignalFault::Oversized,
        }
    }

    pub fn malformed(target: &str, detail: impl Into<String>) -> SourceError {
        SourceError::Malformed {
            target: target.to_string(),
            detail: detail.into(),
        }
    }
}

/// A parse failure from a pure `parse_*` function, before the endpoint is known.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub fn at(self, target: &str) -> SourceError {
        SourceError::malformed(target, self.0)
    }
}

impl From<serde_json::Error> for ParseError {
    fn from(e: serde_json::Error) -> Self {
        if e.is_eof() && e.line() == 1 && e.column() == 0 {
            return ParseError("empty body".into());
        }
        ParseError(format!("invalid JSON: {e}"))
    }
}

/// Parses JSON into `T` leniently (unknown fields ignored by the serde models themselves).
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ParseError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError("empty body".into()));
    }
    Ok(serde_json::from_slice(body)?)
}

/// A counter that must be present, finite and non-negative.
pub fn required(name: &str, value: Option<f64>) -> Result<f64, ParseError> {
    match value {
        None => Err(ParseError(format!(
            "required counter `{name}` is missing or null"
        ))),
        Some(v) => non_negative(name, v),
    }
}

/// A counter whose absence is harmless (older servers), treated as 0.
pub fn optional(name: &str, value: Option<f64>) -> Result<f64, ParseError> {
    non_negative(name, value.unwrap_or(0.0))
}

fn non_negative(name: &str, v: f64) -> Result<f64, ParseError> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(ParseError(format!(
            "counter `{name}` is {v}, expected a finite number >= 0"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_maps_to_its_fault() {
        let t = || "http://x".to_string();
        let cases = [
            (
                SourceError::Unreachable {
                    target: t(),
                    detail: "refused".into(),
                },
                SignalFault::Unreachable,
            ),
            (
                SourceError::Timeout {
                    target: t(),
                    after: Duration::from_secs(1),
                },
                SignalFault::Timeout,
            ),
            (
                SourceError::HttpStatus {
                    target: t(),
                    status: 503,
                    body_excerpt: String::new(),
                },
                SignalFault::HttpStatus,
            ),
            (
                SourceError::Auth {
                    target: t(),
                    detail: "401".into(),
                },
                SignalFault::Auth,
            ),
            (
                SourceError::malformed("http://x", "bad"),
                SignalFault::Malformed,
            ),
            (
                SourceError::Oversized {
                    target: t(),
                    limit: 10,
                },
                SignalFault::Oversized,
            ),
        ];
        for (err, fault) in cases {
            assert_eq!(err.fault(), fault, "{err}");
        }
    }

    #[test]
    fn empty_and_blank_bodies_say_so() {
        assert_eq!(
            parse_json::<serde_json::Value>(b"").unwrap_err().0,
            "empty body"
        );
        assert_eq!(
            parse_json::<serde_json::Value>(b" \n").unwrap_err().0,
            "empty body"
        );
        assert!(
            parse_json::<serde_json::Value>(b"{")
                .unwrap_err()
                .0
                .starts_with("invalid JSON")
        );
    }

    #[test]
    fn counters_reject_negative_and_missing() {
        assert!(required("x", None).is_err());
        assert!(required("x", Some(-1.0)).is_err());
        assert!(required("x", Some(f64::NAN)).is_err());
        assert_eq!(optional("x", None).unwrap(), 0.0);
        assert_eq!(required("x", Some(3.0)).unwrap(), 3.0);
    }
}
