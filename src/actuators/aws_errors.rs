//! AWS Auto Scaling (and EC2 `DescribeInstances`) errors → [`ActuatorError`], and the retry policy
//! around them.
//!
//! The SDK's own retries are switched off for this client so that one place decides: throttling,
//! `ScalingActivityInProgress`, `ResourceContention` and 5xx are retried with exponential backoff
//! and full jitter (`backon`); validation and permission errors never are.

use std::time::Duration;

use aws_sdk_autoscaling::config::http::HttpResponse;
use aws_sdk_autoscaling::error::{ProvideErrorMetadata, SdkError};

use super::ActuatorError;
use crate::telemetry::names;

/// Codes the SDK's own classifier treats as throttling (smithy-rs `THROTTLING_ERRORS`).
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Backoff for transient AWS errors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Retries after the first attempt.
    pub max_retries: usize,
}

impl Default for RetryPolicy {
    /// 0.5 s doubling to 20 s, 6 retries: rides out a scaling activity of ~1 minute.
    fn default() -> Self {
        RetryPolicy {
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            max_retries: 6,
        }
    }
}

impl RetryPolicy {
    /// The budget for the status reads of a tick: at most 2 retries within ~0.6 s. A read runs
    /// inside the tick, where a long backoff for one group would hold back every pool's
    /// decision; the next tick is the read's real retry.
    pub fn for_reads(&self) -> RetryPolicy {
        RetryPolicy {
            min_delay: self.min_delay.min(Duration::from_millis(100)),
            max_delay: self.max_delay.min(Duration::from_millis(500)),
            max_retries: self.max_retries.min(2),
        }
    }

    pub(crate) fn backoff(&self) -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries)
            .with_jitter()
    }
}

/// Runs `call` (one AWS request of `action`), retrying transient errors with `policy`'s backoff.
pub(crate) async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    action: &'static str,
    call: F,
) -> Result<T, ActuatorError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ActuatorError>>,
{
    use backon::Retryable;
    call.retry(policy.backoff())
        .when(ActuatorError::is_transient)
        .notify(|e, d| note_retry(action, e, d))
        .await
}

/// Counts and logs one retry of `action` (the `notify` hook of the backoff).
pub(crate) fn note_retry(action: &'static str, error: &ActuatorError, delay: Duration) {
    let key = format!("aws {action} {error}");
    if let Some(suppressed) = crate::telemetry::warn_allowed(&key) {
        tracing::warn!(action, reason = error.label(), delay_ms = delay.as_millis() as u64, %error, suppressed, "AWS call failed; retrying (identical warnings at most every 5 min; `suppressed` since the last)");
    }
    metrics::counter!(names::ACTUATOR_RETRIES_TOTAL, "platform" => "aws_asg", "op" => action, "reason" => error.label())
        .increment(1);
}

/// Maps a failed SDK call of `action` (e.g. `SetDesiredCapacity`) on `group`.
pub(crate) fn map_sdk_error<E>(
    err: SdkError<E, HttpResponse>,
    action: &str,
    group: &str,
) -> ActuatorError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let e = ctx.err();
            classify(
                e.code(),
                e.message().unwrap_or_default(),
                status,
                action,
                group,
            )
        }
        SdkError::ResponseError(ctx) => {
            let status = ctx.raw().status().as_u16();
            ActuatorError::Server {
                status,
                message: format!("{action}: unparseable response (HTTP {status})"),
            }
        }
        SdkError::ConstructionFailure(e) => ActuatorError::Config {
            message: format!("{action}: {e:?}"),
        },
        other => ActuatorError::Unreachable {
            message: format!("{action}: {}", error_chain(&other)),
        },
    }
}

pub(crate) fn classify(
    code: Option<&str>,
    message: &str,
    status: u16,
    action: &str,
    group: &str,
) -> ActuatorError {
    let message = match code {
        Some(code) => format!("{action} ({code}): {message}"),
        None => format!("{action} (HTTP {status}): {message}"),
    };
    match code.unwrap_or_default() {
        c if THROTTLING_CODES.contains(&c) => ActuatorError::Throttled { message },
        "ScalingActivityInProgress" | "ResourceContention" => ActuatorError::Busy { message },
        "ValidationError"
        | "InvalidParameterValue"
        | "InvalidParameterCombination"
        | "LimitExceeded" => ActuatorError::Validation { message },
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => {
            let (verb, resource) = iam_names(action, group);
            ActuatorError::Forbidden {
                verb,
                resource,
                message,
            }
        }
        "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "UnrecognizedClientException" => ActuatorError::Config { message },
        _ if status == 429 => ActuatorError::Throttled { message },
        _ if status >= 500 => ActuatorError::Server { status, message },
        _ => ActuatorError::Validation { message },
    }
}

/// The IAM action and resource to grant for a denied `action`. EC2 `Describe*` actions have no
/// resource-level permissions, hence `*`.
fn iam_names(action: &str, group: &str) -> (String, String) {
    if action.starts_with("DescribeInstances") {
        (format!("ec2:{action}"), "*".to_owned())
    } else {
        (
            format!("autoscaling:{action}"),
            format!("autoScalingGroupName/{group}"),
        )
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_codes_are_transient_and_validation_is_not() {
        let c = |code, status| classify(Some(code), "m", status, "SetDesiredCapacity", "g");
        assert_eq!(c("Throttling", 400).label(), "throttled");
        assert_eq!(c("ScalingActivityInProgress", 400).label(), "busy");
        assert_eq!(c("ResourceContention", 500).label(), "busy");
        assert!(c("ResourceContention", 500).is_transient());
        assert_eq!(c("ValidationError", 400).label(), "validation");
        assert!(!c("ValidationError", 400).is_transient());
        assert_eq!(c("InternalFailure", 503).label(), "server_error");
        assert!(c("InternalFailure", 503).is_transient());
    }

    #[test]
    fn access_denied_names_the_iam_action() {
        let e = classify(
            Some("AccessDenied"),
            "no",
            403,
            "TerminateInstanceInAutoScalingGroup",
            "spark",
        );
        assert_eq!(
            e,
            ActuatorError::Forbidden {
                verb: "autoscaling:TerminateInstanceInAutoScalingGroup".into(),
                resource: "autoScalingGroupName/spark".into(),
                message: "TerminateInstanceInAutoScalingGroup (AccessDenied): no".into(),
            }
        );
        let ec2 = classify(
            Some("UnauthorizedOperation"),
            "no",
            403,
            "DescribeInstances",
            "spark",
        );
        assert!(
            matches!(&ec2, ActuatorError::Forbidden { verb, resource, .. } if verb == "ec2:DescribeInstances" && resource == "*"),
            "{ec2:?}"
        );
    }
}
