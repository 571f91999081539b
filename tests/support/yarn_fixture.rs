//! A YARN ResourceManager fixture: no Hadoop can be installed here (real-peers.md), so this
//! serves the RM REST API's documented JSON for what poolpilot reads, and plays the RM's side of
//! graceful decommission. Sources followed:
//!
//! - `ResourceManagerRest.md` (Hadoop 3.3+,
//!   <https://hadoop.apache.org/docs/stable/hadoop-yarn/hadoop-yarn-site/ResourceManagerRest.html>):
//!   "Cluster Metrics API" (`clusterMetrics`), "Cluster Scheduler API" (Capacity Scheduler
//!   `schedulerInfo` with `queues.queue[]`), "Cluster Nodes API" (`nodes.node[]`, `?states=`);
//!   the 3.x fields `pendingMB`, `pendingVirtualCores`, `decommissioningNodes` from
//!   `ClusterMetricsInfo.java`, the queue's `pendingContainers` and
//!   `resources.resourceUsagesByPartition[].pending` from `CapacitySchedulerQueueInfo.java`.
//! - `GracefulDecommission.md` (<https://hadoop.apache.org/docs/stable/hadoop-yarn/hadoop-yarn-site/GracefulDecommission.html>):
//!   on refresh, excluded RUNNING nodes go DECOMMISSIONING, DECOMMISSIONING/DECOMMISSIONED
//!   nodes no longer excluded are recommissioned; a DECOMMISSIONING node with no running
//!   containers becomes DECOMMISSIONED (DecommissioningNodeWatcher).
//!
//! What differs from a real RM: `yarn rmadmin -refreshNodes` speaks Hadoop RPC to the RM's admin
//! port (8033), which the fixture does not; the tests' refresh command is
//! `curl -X POST <fixture>/fixture/refresh-nodes` instead, and the fixture then reads the same
//! XML exclude file the RM would. The fixture moves DECOMMISSIONING → DECOMMISSIONED at once
//! when containers reach 0 (a real RM waits for the next NM heartbeat and also for the node's
//! applications to finish, `WAIT_APP`); it has one leaf queue `etl` mirroring the cluster; every
//! container is 1 vcore and 2048 MB; `user.name` is recorded, never checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub const CONTAINER_MB: u64 = 2048;

#[derive(Debug, Clone)]
pub struct FixtureNode {
    pub host: String,
    pub vcores: u64,
    pub containers: u64,
    pub state: String,
}

#[derive(Debug, Default)]
pub struct RmState {
    pub nodes: Vec<FixtureNode>,
    pub pending_containers: u64,
    pub apps_pending: u64,
    pub refreshes: u32,
    /// Every `user.name` a request carried.
    pub users: Vec<String>,
    /// (host, new state) in the order transitions happened.
    pub transitions: Vec<(String, String)>,
}

impl RmState {
    fn settle(&mut self) {
        for n in &mut self.nodes {
            if n.state == "DECOMMISSIONING" && n.containers == 0 {
                n.state = "DECOMMISSIONED".into();
                self.transitions.push((n.host.clone(), n.state.clone()));
            }
        }
    }

    fn active(&self) -> impl Iterator<Item = &FixtureNode> {
        self.nodes
            .iter()
            .filter(|n| matches!(n.state.as_str(), "RUNNING" | "DECOMMISSIONING"))
    }

    fn allocated(&self) -> u64 {
        self.active().map(|n| n.containers).sum()
    }

    fn metrics(&self) -> Value {
        let allocated = self.allocated();
        let running: Vec<&FixtureNode> =
            self.nodes.iter().filter(|n| n.state == "RUNNING").collect();
        let total_vcores: u64 = running.iter().map(|n| n.vcores).sum::<u64>()
            + self
                .nodes
                .iter()
                .filter(|n| n.state == "DECOMMISSIONING")
                .map(|n| n.containers)
                .sum::<u64>();
        let available = total_vcores.saturating_sub(allocated);
        let count = |s: &str| self.nodes.iter().filter(|n| n.state == s).count();
        json!({"clusterMetrics": {
            "appsSubmitted": 0, "appsCompleted": 0, "appsPending": self.apps_pending, "appsRunning": 0,
            "appsFailed": 0, "appsKilled": 0,
            "reservedMB": 0, "availableMB": available * CONTAINER_MB, "allocatedMB": allocated * CONTAINER_MB,
            "pendingMB": self.pending_containers * CONTAINER_MB,
            "reservedVirtualCores": 0, "availableVirtualCores": available, "allocatedVirtualCores": allocated,
            "pendingVirtualCores": self.pending_containers,
            "containersAllocated": allocated, "containersReserved": 0, "containersPending": self.pending_containers,
            "totalMB": total_vcores * CONTAINER_MB, "totalVirtualCores": total_vcores,
            "totalNodes": self.nodes.len(), "lostNodes": 0, "unhealthyNodes": 0,
            "decommissioningNodes": count("DECOMMISSIONING"), "decommissionedNodes": count("DECOMMISSIONED"),
            "rebootedNodes": 0, "activeNodes": count("RUNNING"), "shutdownNodes": 0
        }})
    }

    fn scheduler(&self) -> Value {
        let allocated = self.allocated();
        let pending = self.pending_containers;
        json!({"scheduler": {"schedulerInfo": {
            "type": "capacityScheduler", "capacity": 100.0, "usedCapacity": 0.0, "maxCapacity": 100.0,
            "queueName": "root",
            "queues": {"queue": [{
                "type": "capacitySchedulerLeafQueueInfo", "queueName": "etl",
                "capacity": 100.0, "usedCapacity": 0.0, "maxCapacity": 100.0,
                "absoluteCapacity": 100.0, "absoluteMaxCapacity": 100.0, "absoluteUsedCapacity": 0.0,
                "numApplications": 0, "state": "RUNNING",
                "resourcesUsed": {"memory": allocated * CONTAINER_MB, "vCores": allocated},
                "allocatedContainers": allocated, "reservedContainers": 0, "pendingContainers": pending,
                "resources": {"resourceUsagesByPartition": [{
                    "partitionName": "",
                    "used": {"memory": allocated * CONTAINER_MB, "vCores": allocated},
                    "reserved": {"memory": 0, "vCores": 0},
                    "pending": {"memory": pending * CONTAINER_MB, "vCores": pending}
                }]},
                "numActiveApplications": 0, "numPendingApplications": self.apps_pending, "numContainers": allocated
            }]}
        }}})
    }

    fn nodes_json(&self, states: Option<&str>) -> Value {
        let wanted: Option<Vec<&str>> = states.map(|s| s.split(',').map(str::trim).collect());
        let list: Vec<Value> = self
            .nodes
            .iter()
            .filter(|n| match &wanted {
                Some(w) => w.iter().any(|s| s.eq_ignore_ascii_case(&n.state)),
                // the RM's default lists the active nodes
                None => matches!(n.state.as_str(), "NEW" | "RUNNING" | "UNHEALTHY" | "DECOMMISSIONING"),
            })
            .map(|n| {
                json!({
                    "rack": "/default-rack", "state": n.state, "id": format!("{}:45454", n.host),
                    "nodeHostName": n.host, "nodeHTTPAddress": format!("{}:8042", n.host),
                    "lastHealthUpdate": 1_764_766_000_000u64, "version": "3.3.6", "healthReport": "",
                    "numContainers": n.containers, "usedMemoryMB": n.containers * CONTAINER_MB,
                    "availMemoryMB": n.vcores.saturating_sub(n.containers) * CONTAINER_MB,
                    "usedVirtualCores": n.containers,
                    "availableVirtualCores": n.vcores.saturating_sub(n.containers),
                    "healthStatus": "Healthy"
                })
            })
            .collect();
        if list.is_empty() {
            json!({"nodes": null})
        } else {
            json!({"nodes": {"node": list}})
        }
    }

    /// NodesListManager's rules on refresh (GracefulDecommission.md, `-g` given).
    fn refresh(&mut self, excluded: &[String]) {
        self.refreshes += 1;
        for n in &mut self.nodes {
            let out = excluded.iter().any(|h| h.eq_ignore_ascii_case(&n.host));
            let next = match (n.state.as_str(), out) {
                ("RUNNING", true) => Some("DECOMMISSIONING"),
                ("DECOMMISSIONING" | "DECOMMISSIONED", false) => Some("RUNNING"),
                _ => None,
            };
            if let Some(next) = next {
                n.state = next.into();
                self.transitions.push((n.host.clone(), next.into()));
            }
        }
        self.settle();
    }
}

pub struct YarnRm {
    pub url: String,
    pub state: Arc<Mutex<RmState>>,
    pub exclude_file: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for YarnRm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct App {
    state: Arc<Mutex<RmState>>,
    exclude_file: PathBuf,
}

fn record_user(app: &App, q: &BTreeMap<String, String>) {
    if let Some(u) = q.get("user.name") {
        app.state.lock().unwrap().users.push(u.clone());
    }
}

/// Host names in the XML exclude file (`<name>a, b</name>`).
pub fn excluded_hosts(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    for part in text.split("<name>").skip(1) {
        if let Some((names, _)) = part.split_once("</name>") {
            out.extend(
                names
                    .split(',')
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty()),
            );
        }
    }
    out
}

impl YarnRm {
    pub async fn start(exclude_file: &Path) -> YarnRm {
        let state = Arc::new(Mutex::new(RmState::default()));
        let app = App {
            state: state.clone(),
            exclude_file: exclude_file.to_path_buf(),
        };
        let router = axum::Router::new()
            .route(
                "/ws/v1/cluster/metrics",
                get(
                    |State(app): State<App>, Query(q): Query<BTreeMap<String, String>>| async move {
                        record_user(&app, &q);
                        axum::Json(app.state.lock().unwrap().metrics())
                    },
                ),
            )
            .route(
                "/ws/v1/cluster/scheduler",
                get(
                    |State(app): State<App>, Query(q): Query<BTreeMap<String, String>>| async move {
                        record_user(&app, &q);
                        axum::Json(app.state.lock().unwrap().scheduler())
                    },
                ),
            )
            .route(
                "/ws/v1/cluster/nodes",
                get(
                    |State(app): State<App>, Query(q): Query<BTreeMap<String, String>>| async move {
                        record_user(&app, &q);
                        let body = app
                            .state
                            .lock()
                            .unwrap()
                            .nodes_json(q.get("states").map(String::as_str));
                        axum::Json(body)
                    },
                ),
            )
            .route(
                "/fixture/refresh-nodes",
                post(|State(app): State<App>| async move {
                    let excluded = excluded_hosts(&app.exclude_file);
                    app.state.lock().unwrap().refresh(&excluded);
                    "refreshed"
                }),
            )
            .with_state(app);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        YarnRm {
            url,
            state,
            exclude_file: exclude_file.to_path_buf(),
            task,
        }
    }

    /// The refresh command a policy points at this fixture (stands for `yarn rmadmin -refreshNodes`).
    pub fn refresh_command(&self) -> Vec<String> {
        ["curl", "-fsS", "-X", "POST"]
            .map(String::from)
            .into_iter()
            .chain([format!("{}/fixture/refresh-nodes", self.url)])
            .collect()
    }

    pub fn add_node(&self, host: &str, vcores: u64, containers: u64) {
        let mut s = self.state.lock().unwrap();
        s.nodes
            .retain(|n| n.host != host || n.state == "DECOMMISSIONED");
        s.nodes.push(FixtureNode {
            host: host.into(),
            vcores,
            containers,
            state: "RUNNING".into(),
        });
    }

    pub fn remove_node(&self, host: &str) {
        self.state.lock().unwrap().nodes.retain(|n| n.host != host);
    }

    /// Sets the running containers of `host`'s live node (the containers finishing).
    pub fn set_containers(&self, host: &str, containers: u64) {
        let mut s = self.state.lock().unwrap();
        for n in s
            .nodes
            .iter_mut()
            .filter(|n| n.host == host && n.state != "DECOMMISSIONED")
        {
            n.containers = containers;
        }
        s.settle();
    }

    pub fn set_pending(&self, containers: u64, apps: u64) {
        let mut s = self.state.lock().unwrap();
        s.pending_containers = containers;
        s.apps_pending = apps;
    }

    pub fn node_state(&self, host: &str) -> Option<String> {
        let s = self.state.lock().unwrap();
        s.nodes
            .iter()
            .rev()
            .find(|n| n.host == host)
            .map(|n| n.state.clone())
    }

    pub fn transitions(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().transitions.clone()
    }

    pub fn users(&self) -> Vec<String> {
        self.state.lock().unwrap().users.clone()
    }
}
