//! Reading groups: `DescribeAutoScalingGroups` plus EC2 `DescribeInstances` for member addresses,
//! batched across pools.
//!
//! Every pool's status is read each tick. Asking AWS once per group would spend 2 × pools calls
//! a tick against the account's shared Describe rate limit; instead, status reads that arrive
//! together (the daemon polls all pools concurrently) are coalesced into one
//! `DescribeAutoScalingGroups` for all their groups and one `DescribeInstances` for all their
//! instances. Only concurrent reads are merged: nothing is cached, so every read is fresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_autoscaling::Client;
use aws_sdk_autoscaling::types::{AutoScalingGroup, Instance};
use aws_sdk_ec2::types::Filter;
use tokio::sync::oneshot;

use super::super::aws_errors::{RetryPolicy, map_sdk_error, with_retries};
use super::super::{ActuatorError, Member, PoolStatus, pause_marks};
use crate::telemetry::names;

/// Instance ids per `DescribeInstances` call: AWS caps a filter at 200 values.
const IDS_PER_LOOKUP: usize = 200;
/// Group names per `DescribeAutoScalingGroups` call (the API's page size is at most 100).
const GROUPS_PER_LOOKUP: usize = 50;
/// How long the first read of a batch waits for the others of the same tick to join it.
const GATHER: Duration = Duration::from_millis(2);
/// A batch runs in its own task, so a caller's timeout no longer drops the request: without a
/// deadline of its own, an endpoint that accepts connections and never answers would leave one
/// stuck task (and connection) behind per tick. Under the daemon's 10 s status timeout.
const BATCH_DEADLINE: Duration = Duration::from_secs(9);

type Reply = oneshot::Sender<Result<PoolStatus, ActuatorError>>;

/// Coalesces concurrent status reads of groups reached through the same clients.
pub(super) struct StatusBatcher {
    client: Client,
    ec2: aws_sdk_ec2::Client,
    retry: RetryPolicy,
    waiting: Mutex<Vec<(String, Reply)>>,
}

impl StatusBatcher {
    pub(super) fn new(client: Client, ec2: aws_sdk_ec2::Client, retry: RetryPolicy) -> Self {
        StatusBatcher {
            client,
            ec2,
            retry,
            waiting: Mutex::new(Vec::new()),
        }
    }

    /// The group's status with member addresses filled in where EC2 knows them. The read runs
    /// in a task of its own, so a caller that gives up (timeout) does not cancel the others'.
    pub(super) async fn status(self: &Arc<Self>, group: &str) -> Result<PoolStatus, ActuatorError> {
        let (reply, answer) = oneshot::channel();
        let first = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            waiting.push((group.to_owned(), reply));
            waiting.len() == 1
        };
        if first {
            let batcher = Arc::clone(self);
            tokio::spawn(async move {
                tokio::time::sleep(GATHER).await;
                let batch =
                    std::mem::take(&mut *batcher.waiting.lock().unwrap_or_else(|p| p.into_inner()));
                // On the deadline the replies are dropped with the batch: callers get the error below.
                let _ = tokio::time::timeout(BATCH_DEADLINE, batcher.serve(batch)).await;
            });
        }
        answer.await.unwrap_or_else(|_| {
            Err(ActuatorError::Unreachable {
                message: format!(
                    "no answer to DescribeAutoScalingGroups for {group} within {}s",
                    BATCH_DEADLINE.as_secs()
                ),
            })
        })
    }

    async fn serve(&self, batch: Vec<(String, Reply)>) {
        let mut names: Vec<String> = batch.iter().map(|(g, _)| g.clone()).collect();
        names.sort();
        names.dedup();
        let mut statuses = match self.describe_groups(&names).await {
            Ok(groups) => groups,
            Err(e) => {
                for (_, reply) in batch {
                    let _ = reply.send(Err(e.clone()));
                }
                return;
            }
        };
        let ids: Vec<String> = statuses
            .values()
            .flat_map(|s| s.members.iter().map(|m| m.id.clone()))
            .collect();
        let outcome = match self.private_addresses(&ids, &names).await {
            Ok(addresses) => {
                for member in statuses.values_mut().flat_map(|s| s.members.iter_mut()) {
                    member.address = addresses.get(&member.id).cloned();
                }
                "ok"
            }
            Err(e) => {
                if let Some(suppressed) =
                    crate::telemetry::warn_allowed(&format!("aws DescribeInstances {e}"))
                {
                    tracing::warn!(groups = ?names, error = %e, suppressed, "DescribeInstances failed; members have no address, so Trino/Spark drains will keep them");
                }
                e.label()
            }
        };
        metrics::counter!(names::ACTUATOR_CALLS_TOTAL, "platform" => "aws_asg", "op" => "describe_instances", "outcome" => outcome)
            .increment(1);
        for (group, reply) in batch {
            let _ =
                reply.send(
                    statuses
                        .get(&group)
                        .cloned()
                        .ok_or_else(|| ActuatorError::NotFound {
                            message: format!("Auto Scaling group {group} does not exist"),
                        }),
                );
        }
    }

    /// Group name → status (without addresses) for the groups that exist.
    async fn describe_groups(
        &self,
        names: &[String],
    ) -> Result<HashMap<String, PoolStatus>, ActuatorError> {
        let mut statuses = HashMap::with_capacity(names.len());
        for chunk in names.chunks(GROUPS_PER_LOOKUP) {
            let mut next_token: Option<String> = None;
            loop {
                let page = describe_page(&self.client, &self.retry, chunk, next_token).await?;
                for group in page.auto_scaling_groups() {
                    if let Some(name) = group.auto_scaling_group_name() {
                        statuses.insert(name.to_owned(), group_status(group));
                    }
                }
                next_token = non_empty(page.next_token());
                if next_token.is_none() {
                    break;
                }
            }
        }
        Ok(statuses)
    }

    /// Instance id → private IPv4 (else private DNS name). A filter rather than `InstanceIds`,
    /// because an id EC2 does not know yet (or any more) would fail the whole call.
    async fn private_addresses(
        &self,
        ids: &[String],
        groups: &[String],
    ) -> Result<HashMap<String, String>, ActuatorError> {
        const ACTION: &str = "DescribeInstances";
        let context = groups.join(",");
        let mut addresses = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_LOOKUP) {
            let filter = Filter::builder()
                .name("instance-id")
                .set_values(Some(chunk.to_vec()))
                .build();
            let mut next_token: Option<String> = None;
            loop {
                let page = with_retries(&self.retry, ACTION, || async {
                    self.ec2
                        .describe_instances()
                        .filters(filter.clone())
                        .set_next_token(next_token.clone())
                        .send()
                        .await
                        .map_err(|e| map_sdk_error(e, ACTION, &context))
                })
                .await?;
                let instances = page.reservations().iter().flat_map(|r| r.instances());
                for instance in instances {
                    if let (Some(id), Some(address)) =
                        (instance.instance_id(), instance_address(instance))
                    {
                        addresses.insert(id.to_owned(), address);
                    }
                }
                next_token = non_empty(page.next_token());
                if next_token.is_none() {
                    break;
                }
            }
        }
        Ok(addresses)
    }
}

/// One page of `DescribeAutoScalingGroups` for `names`.
async fn describe_page(
    client: &Client,
    retry: &RetryPolicy,
    names: &[String],
    next_token: Option<String>,
) -> Result<
    aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput,
    ActuatorError,
> {
    const ACTION: &str = "DescribeAutoScalingGroups";
    with_retries(retry, ACTION, || async {
        client
            .describe_auto_scaling_groups()
            .set_auto_scaling_group_names(Some(names.to_vec()))
            .max_records(100)
            .set_next_token(next_token.clone())
            .send()
            .await
            .map_err(|e| map_sdk_error(e, ACTION, &names.join(",")))
    })
    .await
}

/// One group read on its own (the fresh read before a write).
pub(super) async fn describe_one(
    client: &Client,
    retry: &RetryPolicy,
    group: &str,
) -> Result<PoolStatus, ActuatorError> {
    let names = [group.to_owned()];
    let page = describe_page(client, retry, &names, None).await?;
    page.auto_scaling_groups()
        .iter()
        .find(|g| g.auto_scaling_group_name() == Some(group))
        .map(group_status)
        .ok_or_else(|| ActuatorError::NotFound {
            message: format!("Auto Scaling group {group} does not exist"),
        })
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_owned)
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
        // DescribeAutoScalingGroups returns the group's `Tags` (TagDescription: Key, Value,
        // ResourceId, ResourceType, PropagateAtLaunch), docs.aws.amazon.com/autoscaling/ec2/
        // APIReference/API_AutoScalingGroup.html: no extra call for the pause tags.
        pause_marks: pause_marks::select(
            group
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?, t.value().unwrap_or("")))),
        ),
        pause_marks_error: None,
    }
}

/// The address an engine knows an instance by: its private IPv4, else its private DNS name.
fn instance_address(instance: &aws_sdk_ec2::types::Instance) -> Option<String> {
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
