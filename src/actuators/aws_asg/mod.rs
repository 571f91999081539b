//! EC2 Auto Scaling actuator.
//!
//! - Scale-up: `SetDesiredCapacity(HonorCooldown=false)`.
//! - Scale-down never lets AWS pick: each chosen (already drained) instance is removed with
//!   `TerminateInstanceInAutoScalingGroup(ShouldDecrementDesiredCapacity=true)`. Lowering
//!   DesiredCapacity instead would let the group's termination policy pick a busy worker.
//! - Scale-in protection is respected: a protected victim is refused, never terminated.
//! - Bounds are checked against the group's MinSize/MaxSize before any write, so the error says
//!   what is wrong instead of a late ValidationError (or, with moto, no error at all).
//!
//! - Member addresses (the private IPv4, else the private DNS name) come from EC2
//!   `DescribeInstances`, so Trino/Spark drains can find the instance's engine worker. That lookup
//!   is best effort: when it fails, members have no address (those drains then keep the worker)
//!   but the status itself still succeeds, because sizing does not need addresses.
//! - Status reads of the groups sharing one [`AsgConnection`] are batched ([`describe`]): the
//!   daemon's 20 pools cost two Describe calls a tick, not forty.
//!
//! IAM needed: `autoscaling:DescribeAutoScalingGroups`, `autoscaling:SetDesiredCapacity`,
//! `autoscaling:TerminateInstanceInAutoScalingGroup`, `ec2:DescribeInstances` (see
//! `deploy/aws/iam-policy.json`).

mod describe;

use std::sync::Arc;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_autoscaling::Client;
use aws_sdk_autoscaling::config::retry::RetryConfig;

use super::aws_errors::{map_sdk_error, with_retries};
use super::{Actuator, ActuatorError, Member, PoolStatus};
use describe::{StatusBatcher, describe_one};

pub use super::aws_errors::RetryPolicy;

/// The AWS clients (one HTTP connection pool, one credentials cache) and the status batcher
/// shared by every group reached through one region and endpoint.
#[derive(Clone)]
pub struct AsgConnection {
    client: Client,
    retry: RetryPolicy,
    batcher: Arc<StatusBatcher>,
}

impl AsgConnection {
    /// Both clients should have the SDK's own retries disabled (as [`AsgConnection::load`]
    /// does); the actuators retry writes with `retry`, and status reads with its short
    /// [`RetryPolicy::for_reads`] form.
    pub fn new(client: Client, ec2: aws_sdk_ec2::Client, retry: RetryPolicy) -> AsgConnection {
        AsgConnection {
            batcher: Arc::new(StatusBatcher::new(client.clone(), ec2, retry.for_reads())),
            client,
            retry,
        }
    }

    /// Standard credential chain (env, profile, web identity, ECS, IMDS) and `region`;
    /// `endpoint_url` overrides the endpoint (tests, VPC endpoints).
    pub async fn load(region: &str, endpoint_url: Option<&str>) -> AsgConnection {
        let mut loader =
            aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.to_owned()));
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let sdk_config = loader.load().await;
        let config = aws_sdk_autoscaling::config::Builder::from(&sdk_config)
            .retry_config(RetryConfig::disabled())
            .build();
        let ec2_config = aws_sdk_ec2::config::Builder::from(&sdk_config)
            .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
            .build();
        AsgConnection::new(
            Client::from_conf(config),
            aws_sdk_ec2::Client::from_conf(ec2_config),
            RetryPolicy::default(),
        )
    }

    /// The actuator of one group.
    pub fn actuator(&self, group: &str) -> AwsAsgActuator {
        AwsAsgActuator {
            connection: self.clone(),
            group: group.to_owned(),
        }
    }
}

pub struct AwsAsgActuator {
    connection: AsgConnection,
    group: String,
}

impl AwsAsgActuator {
    /// An actuator with clients of its own (see [`AsgConnection::new`]); the daemon shares one
    /// connection between the groups of a region instead.
    pub fn new(
        client: Client,
        ec2: aws_sdk_ec2::Client,
        group: &str,
        retry: RetryPolicy,
    ) -> AwsAsgActuator {
        AsgConnection::new(client, ec2, retry).actuator(group)
    }

    /// An actuator with clients of its own for `target`'s region and endpoint.
    pub async fn from_target(target: &crate::policy::model::AwsAsgTarget) -> AwsAsgActuator {
        AsgConnection::load(&target.region, target.endpoint_url.as_deref())
            .await
            .actuator(&target.group)
    }

    async fn set_desired(&self, target: u32) -> Result<(), ActuatorError> {
        const ACTION: &str = "SetDesiredCapacity";
        with_retries(&self.connection.retry, ACTION, || async {
            self.connection
                .client
                .set_desired_capacity()
                .auto_scaling_group_name(&self.group)
                .desired_capacity(target as i32)
                .honor_cooldown(false)
                .send()
                .await
                .map_err(|e| map_sdk_error(e, ACTION, &self.group))
        })
        .await
        .map(|_| ())
    }

    async fn terminate(&self, instance_id: &str) -> Result<(), ActuatorError> {
        const ACTION: &str = "TerminateInstanceInAutoScalingGroup";
        with_retries(&self.connection.retry, ACTION, || async {
            self.connection
                .client
                .terminate_instance_in_auto_scaling_group()
                .instance_id(instance_id)
                .should_decrement_desired_capacity(true)
                .send()
                .await
                .map_err(|e| map_sdk_error(e, ACTION, &self.group))
        })
        .await
        .map(|_| ())
    }
}

#[async_trait]
impl Actuator for AwsAsgActuator {
    fn platform(&self) -> &'static str {
        "aws_asg"
    }

    async fn status(&self) -> Result<PoolStatus, ActuatorError> {
        self.connection.batcher.status(&self.group).await
    }

    async fn scale_to(&self, target: u32, victims: &[Member]) -> Result<(), ActuatorError> {
        let status =
            describe_one(&self.connection.client, &self.connection.retry, &self.group).await?;
        let (min, max) = (status.min.unwrap_or(0), status.max.unwrap_or(u32::MAX));
        if target > max || target < min {
            return Err(ActuatorError::Validation {
                message: format!(
                    "target {target} is outside the group's bounds [{min}, {max}] ({})",
                    self.group
                ),
            });
        }
        if target >= status.desired {
            if target > status.desired {
                self.set_desired(target).await?;
            }
            return Ok(());
        }
        let chosen = choose_terminations(&status, target, victims)?;
        for id in &chosen {
            tracing::info!(group = %self.group, instance = %id, "terminating drained instance (decrementing desired)");
            self.terminate(id).await?;
        }
        Ok(())
    }
}

/// The instances to terminate so that desired drops to `target`: victims still in the group, in
/// the caller's order. Fails on a protected victim or on too few victims (AWS must not choose).
fn choose_terminations(
    status: &PoolStatus,
    target: u32,
    victims: &[Member],
) -> Result<Vec<String>, ActuatorError> {
    let needed = (status.desired - target) as usize;
    let mut chosen = Vec::with_capacity(needed);
    for victim in victims {
        if chosen.len() == needed {
            break;
        }
        let Some(member) = status.members.iter().find(|m| m.id == victim.id) else {
            continue; // already gone: a repeated call must not fail
        };
        if member.protected {
            return Err(ActuatorError::Protected {
                member: member.id.clone(),
            });
        }
        chosen.push(member.id.clone());
    }
    if chosen.len() < needed {
        return Err(ActuatorError::Validation {
            message: format!(
                "scale-down to {target} needs {needed} instance(s) named for termination, {} given are in the group; \
                 poolpilot never lets the group pick which worker to stop",
                chosen.len()
            ),
        });
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(ids: &[(&str, bool)]) -> PoolStatus {
        let members: Vec<Member> = ids
            .iter()
            .map(|(id, p)| Member {
                protected: *p,
                ..Member::new(*id)
            })
            .collect();
        PoolStatus {
            desired: members.len() as u32,
            ready: members.len() as u32,
            members,
            ..PoolStatus::default()
        }
    }

    #[test]
    fn terminates_only_named_victims_still_in_the_group() {
        let s = status(&[("i-1", false), ("i-2", false), ("i-3", false)]);
        let victims = [
            Member::new("i-gone"),
            Member::new("i-3"),
            Member::new("i-1"),
        ];
        assert_eq!(
            choose_terminations(&s, 1, &victims).unwrap(),
            ["i-3", "i-1"]
        );
        assert_eq!(choose_terminations(&s, 2, &victims).unwrap(), ["i-3"]);
    }

    #[test]
    fn refuses_protected_victims_and_missing_victims() {
        let s = status(&[("i-1", true), ("i-2", false)]);
        assert_eq!(
            choose_terminations(&s, 1, &[Member::new("i-1")])
                .unwrap_err()
                .label(),
            "protected"
        );
        assert_eq!(
            choose_terminations(&s, 0, &[Member::new("i-2")])
                .unwrap_err()
                .label(),
            "validation"
        );
    }
}
