//! YARN ResourceManager REST API (Hadoop 3.3+, `ResourceManagerRest.md`:
//! <https://hadoop.apache.org/docs/stable/hadoop-yarn/hadoop-yarn-site/ResourceManagerRest.html>).
//!
//! - `GET /ws/v1/cluster/metrics` → `clusterMetrics`: `allocatedVirtualCores`,
//!   `pendingVirtualCores`, `allocatedMB`, `pendingMB`, `containersAllocated`,
//!   `containersPending`, `availableMB`, `availableVirtualCores`, `appsPending`, `activeNodes`,
//!   `decommissioningNodes` (field names as `ClusterMetricsInfo` serialises them in 3.x; the
//!   `pending*` resource fields are absent before 3.0, which is an error for the demand that
//!   needs them, never a zero).
//! - With `queue`: `GET /ws/v1/cluster/scheduler` (Capacity Scheduler only) → the leaf queue's
//!   `resourcesUsed {memory, vCores}`, `allocatedContainers`, `pendingContainers`, and the
//!   default partition's `resources.resourceUsagesByPartition[].pending {memory, vCores}`
//!   (`CapacitySchedulerQueueInfo`, `ResourcesInfo`, `PartitionResourcesInfo`).
//! - For the drain: `GET /ws/v1/cluster/nodes?states=…` → `nodes.node[]` (`id`, `nodeHostName`,
//!   `nodeHTTPAddress`, `state`, `numContainers`), parsed here by [`parse_nodes`].
//!
//! Demand = allocated + pending, in vcores, MB or containers as the policy says. Simple auth
//! sends `user.name=<user>` on every request; Kerberos/SPNEGO is out of scope. A standby RM
//! answers with a redirect (not followed) and is an error, so the pool holds.

use async_trait::async_trait;
use reqwest::Url;
use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::error::{ParseError, SourceError, optional, parse_json, required};
use super::http::{Credentials, HttpClient, join, redact};
use super::{MetricSource, Reading};
use crate::policy::{YarnDemand, YarnSignal};

/// Allocated and pending figures of the cluster or one queue.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    pub allocated_vcores: f64,
    pub pending_vcores: f64,
    pub allocated_mb: f64,
    pub pending_mb: f64,
    pub allocated_containers: f64,
    pub pending_containers: f64,
}

impl Usage {
    pub fn demand(&self, demand: YarnDemand) -> f64 {
        match demand {
            YarnDemand::Vcores => self.allocated_vcores + self.pending_vcores,
            YarnDemand::Memory => self.allocated_mb + self.pending_mb,
            YarnDemand::Containers => self.allocated_containers + self.pending_containers,
        }
    }
}

/// `clusterMetrics`, reduced to what the autoscaler reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClusterMetrics {
    pub usage: Usage,
    pub available_vcores: f64,
    pub available_mb: f64,
    pub apps_pending: f64,
    pub active_nodes: f64,
    pub decommissioning_nodes: f64,
}

#[derive(Deserialize)]
struct MetricsBody {
    #[serde(rename = "clusterMetrics")]
    cluster_metrics: Option<RawMetrics>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMetrics {
    apps_pending: Option<f64>,
    #[serde(rename = "allocatedMB")]
    allocated_mb: Option<f64>,
    #[serde(rename = "pendingMB")]
    pending_mb: Option<f64>,
    #[serde(rename = "availableMB")]
    available_mb: Option<f64>,
    allocated_virtual_cores: Option<f64>,
    pending_virtual_cores: Option<f64>,
    available_virtual_cores: Option<f64>,
    containers_allocated: Option<f64>,
    containers_pending: Option<f64>,
    active_nodes: Option<f64>,
    decommissioning_nodes: Option<f64>,
}

/// Parses `/ws/v1/cluster/metrics`. Counters the demand needs are required; `pending*`
/// resources only for their own demand kind (a 2.x RM lacks them).
pub fn parse_metrics(body: &[u8], demand: YarnDemand) -> Result<ClusterMetrics, ParseError> {
    let raw = parse_json::<MetricsBody>(body)?
        .cluster_metrics
        .ok_or_else(|| ParseError("`clusterMetrics` is missing".into()))?;
    let need = |name: &str, v: Option<f64>, wanted: bool| {
        if wanted {
            required(name, v)
        } else {
            optional(name, v)
        }
    };
    let vcores = demand == YarnDemand::Vcores;
    let memory = demand == YarnDemand::Memory;
    let containers = demand == YarnDemand::Containers;
    Ok(ClusterMetrics {
        usage: Usage {
            allocated_vcores: need("allocatedVirtualCores", raw.allocated_virtual_cores, vcores)?,
            pending_vcores: need("pendingVirtualCores", raw.pending_virtual_cores, vcores)?,
            allocated_mb: need("allocatedMB", raw.allocated_mb, memory)?,
            pending_mb: need("pendingMB", raw.pending_mb, memory)?,
            allocated_containers: need(
                "containersAllocated",
                raw.containers_allocated,
                containers,
            )?,
            pending_containers: need("containersPending", raw.containers_pending, containers)?,
        },
        available_vcores: optional("availableVirtualCores", raw.available_virtual_cores)?,
        available_mb: optional("availableMB", raw.available_mb)?,
        apps_pending: required("appsPending", raw.apps_pending)?,
        active_nodes: optional("activeNodes", raw.active_nodes)?,
        decommissioning_nodes: optional("decommissioningNodes", raw.decommissioning_nodes)?,
    })
}

#[derive(Deserialize)]
struct SchedulerBody {
    scheduler: Option<SchedulerWrap>,
}

#[derive(Deserialize)]
struct SchedulerWrap {
    #[serde(rename = "schedulerInfo")]
    info: Option<RawQueue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawQueue {
    #[serde(rename = "type")]
    kind: Option<String>,
    queue_name: Option<String>,
    #[serde(default)]
    queues: Option<QueueList>,
    resources_used: Option<RawResource>,
    allocated_containers: Option<f64>,
    pending_containers: Option<f64>,
    num_pending_applications: Option<f64>,
    resources: Option<RawResources>,
}

#[derive(Deserialize)]
struct QueueList {
    #[serde(default)]
    queue: Vec<RawQueue>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct RawResource {
    memory: Option<f64>,
    v_cores: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawResources {
    #[serde(default)]
    resource_usages_by_partition: Vec<RawPartition>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPartition {
    #[serde(default)]
    partition_name: String,
    pending: Option<RawResource>,
}

/// One leaf queue's figures from `/ws/v1/cluster/scheduler`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueFigures {
    pub path: String,
    pub usage: Usage,
    pub apps_pending: f64,
}

/// Finds `queue` (a leaf name such as `etl`, or a path such as `root.etl`) in a Capacity
/// Scheduler answer. Another scheduler, an unknown or ambiguous name, or a parent queue is an
/// error.
pub fn parse_queue(body: &[u8], queue: &str) -> Result<QueueFigures, ParseError> {
    let root = parse_json::<SchedulerBody>(body)?
        .scheduler
        .and_then(|s| s.info)
        .ok_or_else(|| ParseError("`scheduler.schedulerInfo` is missing".into()))?;
    match root.kind.as_deref() {
        Some("capacityScheduler") => {}
        other => {
            return Err(ParseError(format!(
                "queue figures need the Capacity Scheduler; the RM runs {}",
                other.unwrap_or("an unnamed scheduler")
            )));
        }
    }
    let mut found: Vec<(String, &RawQueue)> = Vec::new();
    let root_name = root.queue_name.clone().unwrap_or_else(|| "root".into());
    collect(&root, &root_name, queue, &mut found);
    let (path, q) = match found.len() {
        1 => found.remove(0),
        0 => return Err(ParseError(format!("the scheduler has no queue `{queue}`"))),
        _ => {
            let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
            return Err(ParseError(format!(
                "queue `{queue}` is ambiguous ({}); give its path",
                paths.join(", ")
            )));
        }
    };
    if q.queues.as_ref().is_some_and(|l| !l.queue.is_empty()) {
        return Err(ParseError(format!(
            "queue `{path}` is a parent queue; name a leaf queue"
        )));
    }
    let used = q
        .resources_used
        .ok_or_else(|| ParseError(format!("queue `{path}`: `resourcesUsed` is missing")))?;
    let pending = q
        .resources
        .as_ref()
        .and_then(|r| {
            r.resource_usages_by_partition
                .iter()
                .find(|p| p.partition_name.is_empty())
        })
        .and_then(|p| p.pending)
        .ok_or_else(|| {
            ParseError(format!(
                "queue `{path}`: the default partition's `pending` resources are missing"
            ))
        })?;
    Ok(QueueFigures {
        usage: Usage {
            allocated_vcores: required("resourcesUsed.vCores", used.v_cores)?,
            pending_vcores: required("pending.vCores", pending.v_cores)?,
            allocated_mb: required("resourcesUsed.memory", used.memory)?,
            pending_mb: required("pending.memory", pending.memory)?,
            allocated_containers: required("allocatedContainers", q.allocated_containers)?,
            pending_containers: required("pendingContainers", q.pending_containers)?,
        },
        apps_pending: optional("numPendingApplications", q.num_pending_applications)?,
        path,
    })
}

fn collect<'a>(q: &'a RawQueue, path: &str, wanted: &str, out: &mut Vec<(String, &'a RawQueue)>) {
    let name = q.queue_name.as_deref().unwrap_or_default();
    if name == wanted || path == wanted {
        out.push((path.to_string(), q));
    }
    for child in q.queues.iter().flat_map(|l| &l.queue) {
        let child_name = child.queue_name.as_deref().unwrap_or_default();
        collect(child, &format!("{path}.{child_name}"), wanted, out);
    }
}

/// One NodeManager as `/ws/v1/cluster/nodes` lists it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// `host:port` of the NM's RPC endpoint.
    pub id: String,
    pub node_host_name: String,
    #[serde(rename = "nodeHTTPAddress", default)]
    pub node_http_address: String,
    /// NEW, RUNNING, UNHEALTHY, DECOMMISSIONING, DECOMMISSIONED, LOST, REBOOTED, SHUTDOWN.
    pub state: String,
    #[serde(default)]
    pub num_containers: u32,
}

#[derive(Deserialize)]
struct NodesBody {
    /// `null` when the RM knows no node.
    nodes: Option<NodeList>,
}

#[derive(Deserialize)]
struct NodeList {
    #[serde(default)]
    node: Vec<Node>,
}

/// Every node state, for `?states=`: the default list leaves out inactive (DECOMMISSIONED)
/// nodes in some releases, and the drain must see them.
pub const ALL_NODE_STATES: &str =
    "NEW,RUNNING,UNHEALTHY,DECOMMISSIONING,DECOMMISSIONED,LOST,REBOOTED,SHUTDOWN";

pub fn parse_nodes(body: &[u8]) -> Result<Vec<Node>, ParseError> {
    let parsed: NodesBody = parse_json(body)?;
    Ok(parsed.nodes.map(|l| l.node).unwrap_or_default())
}

/// `base` + `path` with `user.name` when simple auth is configured.
pub fn rm_url(base: &str, path: &str, user: Option<&str>) -> Result<Url, SourceError> {
    let mut url = join(base, path)?;
    if let Some(user) = user {
        url.query_pairs_mut().append_pair("user.name", user);
    }
    Ok(url)
}

pub struct YarnSource {
    name: String,
    spec: YarnSignal,
    http: HttpClient,
}

impl YarnSource {
    pub fn new(spec: &YarnSignal) -> YarnSource {
        let scope = spec
            .queue
            .as_deref()
            .map_or(String::new(), |q| format!(" queue {q}"));
        YarnSource {
            name: format!("yarn {}{scope}", spec.resource_manager),
            spec: spec.clone(),
            http: HttpClient::new(&spec.http),
        }
    }

    async fn get(&self, path: &str) -> Result<(Vec<u8>, String), SourceError> {
        let url = rm_url(&self.spec.resource_manager, path, self.spec.user.as_deref())?;
        let body = self
            .http
            .get_ok(&url, HeaderMap::new(), Credentials::Options)
            .await?;
        Ok((body, redact(&url)))
    }
}

#[async_trait]
impl MetricSource for YarnSource {
    async fn poll(&self) -> Result<Reading, SourceError> {
        let (body, target) = self.get("/ws/v1/cluster/metrics").await?;
        let cluster = parse_metrics(&body, self.spec.demand).map_err(|e| e.at(&target))?;
        let mut raw = vec![
            ("apps_pending", cluster.apps_pending),
            ("allocated_vcores", cluster.usage.allocated_vcores),
            ("pending_vcores", cluster.usage.pending_vcores),
            ("available_vcores", cluster.available_vcores),
            ("allocated_mb", cluster.usage.allocated_mb),
            ("pending_mb", cluster.usage.pending_mb),
            ("available_mb", cluster.available_mb),
            ("containers_allocated", cluster.usage.allocated_containers),
            ("containers_pending", cluster.usage.pending_containers),
            ("active_nodes", cluster.active_nodes),
            ("decommissioning_nodes", cluster.decommissioning_nodes),
        ];
        let Some(queue) = &self.spec.queue else {
            return Ok(Reading {
                demand: cluster.usage.demand(self.spec.demand),
                raw,
                labels: Vec::new(),
            });
        };
        let (body, target) = self.get("/ws/v1/cluster/scheduler").await?;
        let q = parse_queue(&body, queue).map_err(|e| e.at(&target))?;
        raw.extend([
            ("queue_apps_pending", q.apps_pending),
            ("queue_allocated_vcores", q.usage.allocated_vcores),
            ("queue_pending_vcores", q.usage.pending_vcores),
            ("queue_allocated_mb", q.usage.allocated_mb),
            ("queue_pending_mb", q.usage.pending_mb),
            ("queue_containers_allocated", q.usage.allocated_containers),
            ("queue_containers_pending", q.usage.pending_containers),
        ]);
        Ok(Reading {
            demand: q.usage.demand(self.spec.demand),
            raw,
            labels: vec![("queue".into(), q.path)],
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::fixture;

    #[test]
    fn documented_metrics_example_parses() {
        // The JSON example of ResourceManagerRest.md (2.x fields only): enough for containers,
        // not for vcores (no `pendingVirtualCores` there).
        let body = fixture("yarn/metrics-docs-example.json");
        let m = parse_metrics(&body, YarnDemand::Containers).unwrap();
        assert_eq!((m.available_mb, m.available_vcores), (17408.0, 7.0));
        assert_eq!(m.usage.demand(YarnDemand::Containers), 0.0);
        let err = parse_metrics(&body, YarnDemand::Vcores).unwrap_err().0;
        assert!(err.contains("pendingVirtualCores"), "{err}");
    }

    #[test]
    fn busy_cluster_demand_is_allocated_plus_pending() {
        let m = parse_metrics(&fixture("yarn/metrics-busy.json"), YarnDemand::Vcores).unwrap();
        assert_eq!(m.usage.demand(YarnDemand::Vcores), 12.0 + 20.0);
        assert_eq!(m.usage.demand(YarnDemand::Memory), 24576.0 + 40960.0);
        assert_eq!(m.usage.demand(YarnDemand::Containers), 6.0 + 10.0);
        assert_eq!((m.apps_pending, m.active_nodes), (3.0, 3.0));
    }

    #[test]
    fn queue_figures_by_name_or_path() {
        let body = fixture("yarn/scheduler-capacity.json");
        let q = parse_queue(&body, "etl").unwrap();
        assert_eq!(q.path, "root.etl");
        assert_eq!(q.usage.demand(YarnDemand::Vcores), 8.0 + 16.0);
        assert_eq!(q.usage.demand(YarnDemand::Memory), 16384.0 + 32768.0);
        assert_eq!(q.usage.demand(YarnDemand::Containers), 4.0 + 8.0);
        assert_eq!(parse_queue(&body, "root.etl").unwrap().usage, q.usage);
        assert_eq!(
            parse_queue(&body, "root.adhoc.a1")
                .unwrap()
                .usage
                .pending_vcores,
            0.0
        );
    }

    #[test]
    fn bad_queue_choices_are_errors() {
        let body = fixture("yarn/scheduler-capacity.json");
        for (queue, why) in [
            ("nosuch", "no queue"),
            ("adhoc", "parent queue"),
            ("root", "parent queue"),
        ] {
            let err = parse_queue(&body, queue).unwrap_err().0;
            assert!(err.contains(why), "{queue}: {err}");
        }
        let fifo = br#"{"scheduler":{"schedulerInfo":{"type":"fifoScheduler","capacity":1.0}}}"#;
        assert!(
            parse_queue(fifo, "etl")
                .unwrap_err()
                .0
                .contains("fifoScheduler")
        );
    }

    #[test]
    fn wrong_types_and_missing_counters_are_malformed() {
        assert!(
            parse_metrics(
                br#"{"clusterMetrics":{"appsPending":"1"}}"#,
                YarnDemand::Containers
            )
            .is_err()
        );
        assert!(parse_metrics(br#"{"clusterMetrics":null}"#, YarnDemand::Vcores).is_err());
        assert!(parse_metrics(br#"{"clusterMetrics":{"appsPending":0,"allocatedVirtualCores":-1,"pendingVirtualCores":0}}"#, YarnDemand::Vcores).is_err());
        assert!(parse_metrics(b"[]", YarnDemand::Vcores).is_err());
    }

    #[test]
    fn nodes_list_parses_and_empty_is_null() {
        let nodes = parse_nodes(&fixture("yarn/nodes.json")).unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].node_host_name, "127.0.10.11");
        assert_eq!(
            (nodes[0].state.as_str(), nodes[0].num_containers),
            ("RUNNING", 2)
        );
        assert!(parse_nodes(br#"{"nodes":null}"#).unwrap().is_empty());
    }
}
