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
//!
//! IAM needed: `autoscaling:DescribeAutoScalingGroups`, `autoscaling:SetDesiredCapacity`,
//! `autoscaling:TerminateInstanceInAutoScalingGroup`, `ec2:DescribeInstances` (see
//! `deploy/aws/iam-policy.json`).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_autoscaling::Client;
use aws_sdk_autoscaling::config::retry::RetryConfig;
use aws_sdk_autoscaling::types::{AutoScalingGroup, Instance};
use aws_sdk_ec2::types::Filter;
use backon::Retryable;

use super::aws_errors::{map_sdk_error, note_retry};
use super::{Actuator, ActuatorError, Member, PoolStatus};
use crate::policy::model::AwsAsgTarget;
use crate::telemetry::names;

pub use super::aws_errors::RetryPolicy;

/// Instance ids per `DescribeInstances` call: AWS caps a filter at 200 values.
const IDS_PER_LOOKUP: usize = 200;

pub struct AwsAsgActuator {
    client: Client,
    ec2: aws_sdk_ec2::Client,
    group: String,
    retry: RetryPolicy,
}

impl AwsAsgActuator {
    /// Both clients should have the SDK's own retries disabled (as
    /// [`AwsAsgActuator::from_target`] does); this actuator retries itself with `retry`.
    pub fn new(
        client: Client,
        ec2: aws_sdk_ec2::Client,
        group: &str,
        retry: RetryPolicy,
    ) -> AwsAsgActuator {
        AwsAsgActuator {
            client,
            ec2,
            group: group.to_owned(),
            retry,
        }
    }

    /// Standard credential chain (env, profile, web identity, ECS, IMDS) and the target's region;
    /// `endpoint_url` overrides the endpoint (tests, VPC endpoints).
    pub async fn from_target(target: &AwsAsgTarget) -> AwsAsgActuator {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(target.region.clone()));
        if let Some(url) = &target.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let sdk_config = loader.load().await;
        let config = aws_sdk_autoscaling::config::Builder::from(&sdk_config)
            .retry_config(RetryConfig::disabled())
            .build();
        let ec2_config = aws_sdk_ec2::config::Builder::from(&sdk_config)
            .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
            .build();
        AwsAsgActuator::new(
            Client::from_conf(config),
            aws_sdk_ec2::Client::from_conf(ec2_config),
            &target.group,
            RetryPolicy::default(),
        )
    }

    /// The group's status with member addresses filled in where EC2 knows them.
    async fn status_with_addresses(&self) -> Result<PoolStatus, ActuatorError> {
        let mut status = group_status(&self.describe().await?);
        let ids: Vec<String> = status.members.iter().map(|m| m.id.clone()).collect();
        let outcome = match self.private_addresses(&ids).await {
            Ok(addresses) => {
                for member in &mut status.members {
                    member.address = addresses.get(&member.id).cloned();
                }
                "ok"
            }
            Err(e) => {
                tracing::warn!(group = %self.group, error = %e, "DescribeInstances failed; members have no address, so Trino/Spark drains will keep them");
                e.label()
            }
        };
        metrics::counter!(names::ACTUATOR_CALLS_TOTAL, "platform" => "aws_asg", "op" => "describe_instances", "outcome" => outcome)
            .increment(1);
        Ok(status)
    }

    /// Instance id → private IPv4 (else private DNS name). A filter rather than `InstanceIds`,
    /// because an id EC2 does not know yet (or any more) would fail the whole call.
    async fn private_addresses(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, String>, ActuatorError> {
        const ACTION: &str = "DescribeInstances";
        let mut addresses = HashMap::new();
        for chunk in ids.chunks(IDS_PER_LOOKUP) {
            let filter = Filter::builder()
                .name("instance-id")
                .set_values(Some(chunk.to_vec()))
                .build();
            let mut next_token: Option<String> = None;
            loop {
                let call = || async {
                    self.ec2
                        .describe_instances()
                        .filters(filter.clone())
                        .set_next_token(next_token.clone())
                        .send()
                        .await
                        .map_err(|e| map_sdk_error(e, ACTION, &self.group))
                };
                let page = call
                    .retry(self.retry.backoff())
                    .when(ActuatorError::is_transient)
                    .notify(|e, d| note_retry(ACTION, e, d))
                    .await?;
                let instances = page.reservations().iter().flat_map(|r| r.instances());
                for instance in instances {
                    if let (Some(id), Some(address)) =
                        (instance.instance_id(), instance_address(instance))
                    {
                        addresses.insert(id.to_owned(), address);
                    }
                }
                next_token = page
                    .next_token()
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned);
                if next_token.is_none() {
                    break;
                }
            }
        }
        Ok(addresses)
    }

    async fn describe(&self) -> Result<AutoScalingGroup, ActuatorError> {
        const ACTION: &str = "DescribeAutoScalingGroups";
        let call = || async {
            self.client
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(&self.group)
                .send()
                .await
                .map_err(|e| map_sdk_error(e, ACTION, &self.group))
        };
        let output = call
            .retry(self.retry.backoff())
            .when(ActuatorError::is_transient)
            .notify(|e, d| note_retry(ACTION, e, d))
            .await?;
        output
            .auto_scaling_groups()
            .iter()
            .find(|g| g.auto_scaling_group_name() == Some(self.group.as_str()))
            .cloned()
            .ok_or_else(|| ActuatorError::NotFound {
                message: format!("Auto Scaling group {} does not exist", self.group),
            })
    }

    async fn set_desired(&self, target: u32) -> Result<(), ActuatorError> {
        const ACTION: &str = "SetDesiredCapacity";
        let call = || async {
            self.client
                .set_desired_capacity()
                .auto_scaling_group_name(&self.group)
                .desired_capacity(target as i32)
                .honor_cooldown(false)
                .send()
                .await
                .map_err(|e| map_sdk_error(e, ACTION, &self.group))
        };
        call.retry(self.retry.backoff())
            .when(ActuatorError::is_transient)
            .notify(|e, d| note_retry(ACTION, e, d))
            .await
            .map(|_| ())
    }

    async fn terminate(&self, instance_id: &str) -> Result<(), ActuatorError> {
        const ACTION: &str = "TerminateInstanceInAutoScalingGroup";
        let call = || async {
            self.client
                .terminate_instance_in_auto_scaling_group()
                .instance_id(instance_id)
                .should_decrement_desired_capacity(true)
                .send()
                .await
                .map_err(|e| map_sdk_error(e, ACTION, &self.group))
        };
        call.retry(self.retry.backoff())
            .when(ActuatorError::is_transient)
            .notify(|e, d| note_retry(ACTION, e, d))
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
        self.status_with_addresses().await
    }

    async fn scale_to(&self, target: u32, victims: &[Member]) -> Result<(), ActuatorError> {
        let status = group_status(&self.describe().await?);
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

fn group_status(group: &AutoScalingGroup) -> PoolStatus {
    let members: Vec<Member> = group
        .instances()
        .iter()
        .filter_map(instance_member)
        .collect();
    let to_u32 = |v: Option<i32>| v.map(|n| n.max(0) as u32);
    PoolStatus {
        desired: to_u32(group.desired_capacity()).unwrap_or(0),
        ready: members.iter().filter(|m| m.ready).count() as u32,
        min: to_u32(group.min_size()),
        max: to_u32(group.max_size()),
        members,
    }
}

/// The address an engine knows an instance by: its private IPv4, else its private DNS name.
fn instance_address(instance: &aws_sdk_ec2::types::Instance) -> Option<String> {
    let non_empty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
    non_empty(instance.private_ip_address()).or_else(|| non_empty(instance.private_dns_name()))
}

/// An instance as a pool member; `None` for instances leaving the group or parked in a warm pool.
fn instance_member(instance: &Instance) -> Option<Member> {
    let state = instance
        .lifecycle_state()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default();
    if state.starts_with("Terminat") || state.starts_with("Detach") || state.starts_with("Warmed:")
    {
        return None;
    }
    Some(Member {
        id: instance.instance_id()?.to_owned(),
        address: None,
        ready: state == "InService" && instance.health_status() == Some("Healthy"),
        protected: instance.protected_from_scale_in().unwrap_or(false),
        state,
    })
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

    #[test]
    fn address_is_the_private_ip_else_the_private_dns_name() {
        use aws_sdk_ec2::types::Instance as Ec2Instance;
        let both = Ec2Instance::builder()
            .private_ip_address("10.0.3.7")
            .private_dns_name("ip-10-0-3-7.ec2.internal")
            .build();
        assert_eq!(instance_address(&both).as_deref(), Some("10.0.3.7"));
        let dns_only = Ec2Instance::builder()
            .private_ip_address("")
            .private_dns_name("ip-10-0-3-8.ec2.internal")
            .build();
        assert_eq!(
            instance_address(&dns_only).as_deref(),
            Some("ip-10-0-3-8.ec2.internal")
        );
        assert_eq!(instance_address(&Ec2Instance::builder().build()), None);
    }

    #[test]
    fn leaving_and_warm_instances_are_not_members() {
        use aws_sdk_autoscaling::types::LifecycleState;
        let instance = |state: LifecycleState| {
            Instance::builder()
                .instance_id("i-1")
                .lifecycle_state(state)
                .health_status("Healthy")
                .build()
        };
        assert!(instance_member(&instance(LifecycleState::TerminatingWait)).is_none());
        assert!(instance_member(&instance(LifecycleState::WarmedRunning)).is_none());
        let pending = instance_member(&instance(LifecycleState::Pending)).unwrap();
        assert!(!pending.ready);
        assert!(
            instance_member(&instance(LifecycleState::InService))
                .unwrap()
                .ready
        );
    }
}
