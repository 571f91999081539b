//! Worker-pool actuators: the narrow write side of the daemon.
//!
//! An [`Actuator`] reports the pool ([`PoolStatus`]) and sets it to an absolute size. Sizes are
//! absolute, not deltas, so a retried or repeated call is harmless. Scale-down names its victims:
//! the caller (`drain::scale_down`) has already drained them, and the actuator makes sure the
//! platform removes exactly those (pod-deletion-cost on Kubernetes Deployments, targeted
//! termination on AWS) instead of letting the platform pick a busy worker.
//!
//! - [`kubernetes`]: Deployments and StatefulSets through the scale subresource
//! - [`aws_asg`]: EC2 Auto Scaling groups
//! - [`dry_run`] / [`instrumented`]: decorators that wrap any actuator
//! - [`events`]: a decorator that writes Kubernetes Events for actuations and refusals
//! - [`recording`]: an in-memory fake for other modules' tests
//! - [`pause_marks`]: pause annotations and ASG tags read along with the status

pub mod aws_asg;
mod aws_errors;
pub mod dry_run;
pub mod events;
pub mod instrumented;
pub mod kubernetes;
pub mod pause_marks;
pub mod recording;

use async_trait::async_trait;
use serde::Serialize;

pub use dry_run::DryRun;
pub use instrumented::Instrumented;
pub use recording::{RecordingActuator, ScaleCall};

/// One worker of the pool: a pod or an EC2 instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// Pod name or instance id.
    pub id: String,
    /// Network address the engine knows the worker by (pod IP, instance private IP), used to map
    /// a Trino node or Spark worker onto this member. `None` when the platform did not say.
    pub address: Option<String>,
    /// Counts as serving capacity (pod Ready; instance InService and Healthy).
    pub ready: bool,
    /// Must not be removed (AWS scale-in protection).
    pub protected: bool,
    /// Platform state, for logs and explain output (pod phase, ASG lifecycle state).
    pub state: String,
}

impl Member {
    pub fn new(id: impl Into<String>) -> Member {
        Member {
            id: id.into(),
            address: None,
            ready: true,
            protected: false,
            state: String::new(),
        }
    }

    pub fn with_address(mut self, address: impl Into<String>) -> Member {
        self.address = Some(address.into());
        self
    }
}

/// What the platform says about the pool right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct PoolStatus {
    /// The size the platform is converging to (replicas, DesiredCapacity).
    pub desired: u32,
    /// Members that serve work now.
    pub ready: u32,
    /// Platform-side bounds when it has them (ASG MinSize/MaxSize).
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub members: Vec<Member>,
    /// Pause annotations or tags on the workload or group (`pause_marks`); empty when none.
    pub pause_marks: std::collections::BTreeMap<String, String>,
    /// Why the pause marks could not be read (e.g. RBAC lacks `get` on the workload); the pool
    /// is still sized, and `/status` shows this.
    pub pause_marks_error: Option<String>,
}

/// Why an actuator call failed. Variant names double as metric labels ([`ActuatorError::label`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActuatorError {
    /// Optimistic-concurrency conflict that survived the re-read-and-retry budget.
    #[error("conflict: {message}")]
    Conflict { message: String },
    /// The credentials lack a permission; `verb` and `resource` name exactly what to grant.
    #[error("forbidden: missing permission `{verb}` on `{resource}`: {message}")]
    Forbidden {
        verb: String,
        resource: String,
        message: String,
    },
    /// The platform rate-limited us (HTTP 429, AWS Throttling).
    #[error("throttled: {message}")]
    Throttled { message: String },
    /// The platform is busy with another change (AWS ScalingActivityInProgress, ResourceContention).
    #[error("busy: {message}")]
    Busy { message: String },
    /// The request is invalid and retrying will not help (422, AWS ValidationError, bad victims).
    #[error("invalid request: {message}")]
    Validation { message: String },
    /// The workload or group does not exist.
    #[error("not found: {message}")]
    NotFound { message: String },
    /// A victim is protected from scale-in.
    #[error("member {member} is protected from scale-in")]
    Protected { member: String },
    /// The platform failed (5xx).
    #[error("server error {status}: {message}")]
    Server { status: u16, message: String },
    /// No answer (connection, DNS, TLS, timeout).
    #[error("unreachable: {message}")]
    Unreachable { message: String },
    /// Client set-up failed (kubeconfig, credentials, region).
    #[error("configuration: {message}")]
    Config { message: String },
}

impl ActuatorError {
    /// Low-cardinality label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ActuatorError::Conflict { .. } => "conflict",
            ActuatorError::Forbidden { .. } => "forbidden",
            ActuatorError::Throttled { .. } => "throttled",
            ActuatorError::Busy { .. } => "busy",
            ActuatorError::Validation { .. } => "validation",
            ActuatorError::NotFound { .. } => "not_found",
            ActuatorError::Protected { .. } => "protected",
            ActuatorError::Server { .. } => "server_error",
            ActuatorError::Unreachable { .. } => "unreachable",
            ActuatorError::Config { .. } => "config",
        }
    }

    /// Transient: the same call may succeed later (with backoff).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ActuatorError::Conflict { .. }
                | ActuatorError::Throttled { .. }
                | ActuatorError::Busy { .. }
                | ActuatorError::Server { .. }
                | ActuatorError::Unreachable { .. }
        )
    }
}

/// The write side of one worker pool.
#[async_trait]
pub trait Actuator: Send + Sync {
    /// Platform name for logs and metric labels (`kubernetes`, `aws_asg`, ...).
    fn platform(&self) -> &'static str;

    async fn status(&self) -> Result<PoolStatus, ActuatorError>;

    /// Makes the pool converge to `target` members. On scale-down, `victims` are the (already
    /// drained) members to remove; an actuator that cannot honour the choice fails rather than
    /// removing someone else. Calling it again with the same target is a no-op.
    async fn scale_to(&self, target: u32, victims: &[Member]) -> Result<(), ActuatorError>;
}

#[async_trait]
impl<A: Actuator + ?Sized> Actuator for std::sync::Arc<A> {
    fn platform(&self) -> &'static str {
        (**self).platform()
    }
    async fn status(&self) -> Result<PoolStatus, ActuatorError> {
        (**self).status().await
    }
    async fn scale_to(&self, target: u32, victims: &[Member]) -> Result<(), ActuatorError> {
        (**self).scale_to(target, victims).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_and_snake_case() {
        let errors = [
            ActuatorError::Conflict {
                message: String::new(),
            },
            ActuatorError::Forbidden {
                verb: "patch".into(),
                resource: "x".into(),
                message: String::new(),
            },
            ActuatorError::Throttled {
                message: String::new(),
            },
            ActuatorError::Busy {
                message: String::new(),
            },
            ActuatorError::Validation {
                message: String::new(),
            },
            ActuatorError::NotFound {
                message: String::new(),
            },
            ActuatorError::Protected {
                member: String::new(),
            },
            ActuatorError::Server {
                status: 500,
                message: String::new(),
            },
            ActuatorError::Unreachable {
                message: String::new(),
            },
            ActuatorError::Config {
                message: String::new(),
            },
        ];
        let labels: std::collections::BTreeSet<_> = errors.iter().map(|e| e.label()).collect();
        assert_eq!(labels.len(), errors.len());
        assert!(
            labels
                .iter()
                .all(|l| l.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
    }

    #[test]
    fn forbidden_message_names_the_missing_permission() {
        let e = ActuatorError::Forbidden {
            verb: "patch".into(),
            resource: "deployments/scale".into(),
            message: "denied".into(),
        };
        assert!(e.to_string().contains("`patch` on `deployments/scale`"));
        assert!(!e.is_transient());
        assert!(
            ActuatorError::Busy {
                message: String::new()
            }
            .is_transient()
        );
    }
}
