//! moto (tests/peers/moto.sh) set-up shared by the AWS tests: SDK clients with dummy
//! credentials and the SDK's retries off, groups built from a launch template, and groups in a
//! loopback subnet, so that instance private IPs are bindable on this machine.

use aws_sdk_autoscaling::config::retry::RetryConfig;
use aws_sdk_autoscaling::config::{BehaviorVersion, Credentials, Region};

fn credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "tests")
}

pub fn asg_client(endpoint: &str) -> aws_sdk_autoscaling::Client {
    let config = aws_sdk_autoscaling::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(credentials())
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_autoscaling::Client::from_conf(config)
}

pub fn ec2_client(endpoint: &str) -> aws_sdk_ec2::Client {
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(credentials())
        .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_ec2::Client::from_conf(config)
}

/// The size and placement of a group made by [`template_group`].
pub struct GroupShape<'a> {
    pub min: i32,
    pub max: i32,
    pub desired: i32,
    /// A subnet id (its CIDR decides the instances' private IPs); `None` = us-east-1a.
    pub subnet: Option<&'a str>,
}

/// A fresh group `name` launched from a fresh launch template of the same name (the common
/// production set-up); an older group or template of that name is deleted first.
pub async fn template_group(endpoint: &str, name: &str, shape: GroupShape<'_>) {
    let (asg, ec2) = (asg_client(endpoint), ec2_client(endpoint));
    let _ = asg
        .delete_auto_scaling_group()
        .auto_scaling_group_name(name)
        .force_delete(true)
        .send()
        .await;
    let _ = ec2
        .delete_launch_template()
        .launch_template_name(name)
        .send()
        .await;
    ec2.create_launch_template()
        .launch_template_name(name)
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id("ami-12c6146b")
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let group = asg
        .create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_template(
            aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                .launch_template_name(name)
                .build(),
        )
        .min_size(shape.min)
        .max_size(shape.max)
        .desired_capacity(shape.desired);
    let group = match shape.subnet {
        Some(subnet) => group.vpc_zone_identifier(subnet),
        None => group.availability_zones("us-east-1a"),
    };
    group.send().await.unwrap();
}

/// A group `name` (min 1, max `max`, desired 1) in a fresh VPC 127.0.0.0/16, subnet
/// 127.0.`octet`.0/24: moto hands out private IPs from the subnet, so they are bindable here.
pub async fn loopback_group(endpoint: &str, name: &str, octet: u8, max: i32) {
    let ec2 = ec2_client(endpoint);
    let vpc = ec2
        .create_vpc()
        .cidr_block("127.0.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block(format!("127.0.{octet}.0/24"))
        .availability_zone("us-east-1a")
        .send()
        .await
        .unwrap();
    let subnet_id = subnet
        .subnet()
        .and_then(|s| s.subnet_id())
        .unwrap()
        .to_owned();
    let shape = GroupShape {
        min: 1,
        max,
        desired: 1,
        subnet: Some(&subnet_id),
    };
    template_group(endpoint, name, shape).await;
}

/// Best-effort removal of the group and its launch template (moto outlives the test).
pub async fn delete_group(endpoint: &str, name: &str) {
    let _ = asg_client(endpoint)
        .delete_auto_scaling_group()
        .auto_scaling_group_name(name)
        .force_delete(true)
        .send()
        .await;
    let _ = ec2_client(endpoint)
        .delete_launch_template()
        .launch_template_name(name)
        .send()
        .await;
}

/// Sets (`Some`) or deletes (`None`) tag `key` on group `name`, as the console or
/// `aws autoscaling create-or-update-tags` / `delete-tags` do (Tag: ResourceId, ResourceType
/// `auto-scaling-group`, Key, Value, PropagateAtLaunch; docs.aws.amazon.com/autoscaling/ec2/
/// APIReference/API_CreateOrUpdateTags.html).
pub async fn tag_group(endpoint: &str, name: &str, key: &str, value: Option<&str>) {
    let tag = aws_sdk_autoscaling::types::Tag::builder()
        .resource_id(name)
        .resource_type("auto-scaling-group")
        .key(key)
        .set_value(value.map(str::to_owned))
        .propagate_at_launch(false)
        .build();
    let asg = asg_client(endpoint);
    if value.is_some() {
        asg.create_or_update_tags().tags(tag).send().await.unwrap();
    } else {
        asg.delete_tags().tags(tag).send().await.unwrap();
    }
}

/// The environment a daemon needs to talk to moto with the standard credential chain.
pub const AWS_ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// The group's DesiredCapacity as moto reports it.
pub async fn desired_capacity(endpoint: &str, name: &str) -> i32 {
    asg_client(endpoint)
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .unwrap()
        .auto_scaling_groups()
        .first()
        .and_then(|g| g.desired_capacity())
        .unwrap_or(-1)
}

/// The group's InService instance ids (what a test agent boots a worker on, and what it stops
/// once an instance leaves).
pub fn in_service_ids(group: &aws_sdk_autoscaling::types::AutoScalingGroup) -> Vec<String> {
    group
        .instances()
        .iter()
        .filter(|i| i.lifecycle_state().map(|s| s.as_str()) == Some("InService"))
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect()
}
