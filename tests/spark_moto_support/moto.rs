//! The moto side: SDK clients with dummy credentials and an Auto Scaling group in a loopback
//! subnet, so that instance private IPs are bindable on this machine.

use crate::common::moto::{GroupShape, asg_client, ec2_client, template_group};

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
