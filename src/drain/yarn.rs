//! YARN NodeManager graceful decommission, as Hadoop 3.3+ documents it
//! (`GracefulDecommission.md`,
//! <https://hadoop.apache.org/docs/stable/hadoop-yarn/hadoop-yarn-site/GracefulDecommission.html>).
//! The RM REST API has no call that changes a node's state (`RMWSConsts` lists none), so the
//! documented path is the one used:
//!
//! 1. **begin**: add the NM's host to the RM's exclude file
//!    (`yarn.resourcemanager.nodes.exclude-path`, XML format, `<timeout>-1</timeout>`: the RM
//!    never forces it, poolpilot's drain timeout decides), then run the refresh command
//!    (default `yarn rmadmin -refreshNodes -g -1 -server`: server-side tracking, non-blocking).
//!    The RM moves the node to DECOMMISSIONING: no new containers land there.
//! 2. **is_drained**: `GET /ws/v1/cluster/nodes?states=…` shows the node DECOMMISSIONED (its
//!    containers and applications finished), or the RM no longer lists it, or it is LOST/SHUTDOWN.
//! 3. **restore** (abandoned, or timed out with `on_timeout: keep`): remove the host from the file
//!    and refresh again — "Recommission DECOMMISSIONED or DECOMMISSIONING nodes that are no
//!    longer excluded" (same page). So the drain is reversible until removal.
//! 4. **forget** (after the platform removed the instance): remove the host from the file and
//!    refresh, so a later instance that reuses the address is not refused — only once the node
//!    is DECOMMISSIONED: a node forced out while DECOMMISSIONING stays excluded.
//!
//! Mapping a pool member to an NM: the member's address (instance private IP, pod IP) or id is
//! compared, case-insensitively, with each node's `nodeHostName`, the host of its `id`
//! (`host:port`) and of its `nodeHTTPAddress`, and with EC2's IP-based private DNS name
//! (`ip-10-0-0-5.…` for 10.0.0.5). An NM registered under another name is not found: its
//! drain fails as `unknown_worker` and the member is kept (never removed blind).
//!
//! The RM must read the same exclude file poolpilot writes (a shared volume, or poolpilot on
//! the RM host), and the refresh command must reach the RM's admin port with admin rights.
//! Known limits from the docs: the per-host timeout is not persisted, so an RM restart or
//! failover decommissions DECOMMISSIONING nodes at once (YARN-5464).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderMap;

use super::{DrainError, Drainer, host_of, names_member};
use crate::actuators::Member;
use crate::policy::YarnSignal;
use crate::sources::http::{Credentials, HttpClient, redact};
use crate::sources::yarn::{ALL_NODE_STATES, Node, parse_nodes, rm_url};

/// Longest the refresh command may run.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(60);

pub struct YarnDrainer {
    http: HttpClient,
    rm: String,
    user: Option<String>,
    exclude_file: Option<PathBuf>,
    refresh_command: Vec<String>,
    /// One edit of the exclude file (and its refresh) at a time.
    edit: tokio::sync::Mutex<()>,
}

/// Node states after which nothing of YARN runs on the node any more.
fn gone(state: &str) -> bool {
    matches!(state, "DECOMMISSIONED" | "LOST" | "SHUTDOWN")
}

impl YarnDrainer {
    pub fn new(signal: &YarnSignal) -> YarnDrainer {
        let (exclude_file, refresh_command) = match &signal.decommission {
            Some(d) => (Some(d.exclude_file.clone()), d.refresh_command.clone()),
            None => (None, Vec::new()),
        };
        YarnDrainer {
            http: HttpClient::new(&signal.http),
            rm: signal.resource_manager.clone(),
            user: signal.user.clone(),
            exclude_file,
            refresh_command,
            edit: tokio::sync::Mutex::new(()),
        }
    }

    /// Every node the RM knows, in every state.
    pub async fn nodes(&self) -> Result<Vec<Node>, DrainError> {
        let mut url =
            rm_url(&self.rm, "/ws/v1/cluster/nodes", self.user.as_deref()).map_err(|e| {
                DrainError::Unreachable {
                    message: e.to_string(),
                }
            })?;
        url.query_pairs_mut().append_pair("states", ALL_NODE_STATES);
        let body = self
            .http
            .get_ok(&url, HeaderMap::new(), Credentials::Options)
            .await
            .map_err(|e| match e.fault() {
                crate::engine::SignalFault::Auth => DrainError::Forbidden {
                    message: e.to_string(),
                },
                _ => DrainError::Unreachable {
                    message: e.to_string(),
                },
            })?;
        parse_nodes(&body).map_err(|e| DrainError::Unreachable {
            message: format!("{}: {e}", redact(&url)),
        })
    }

    /// The nodes of `member` (an old DECOMMISSIONED entry and a new RUNNING one may share a host).
    fn nodes_of<'n>(member: &Member, nodes: &'n [Node]) -> Vec<&'n Node> {
        nodes
            .iter()
            .filter(|n| {
                [
                    n.node_host_name.as_str(),
                    host_of(&n.id),
                    host_of(&n.node_http_address),
                ]
                .into_iter()
                .any(|h| names_member(h, member))
            })
            .collect()
    }

    fn exclude_file(&self) -> Result<&Path, DrainError> {
        self.exclude_file
            .as_deref()
            .ok_or_else(|| DrainError::Rejected {
                message: "the yarn signal has no `decommission.exclude_file`".into(),
            })
    }

    /// Adds (`add`) or removes hosts in the exclude file, then refreshes the RM. On a failed
    /// refresh the file is put back, so file and RM never disagree for long.
    async fn edit_and_refresh(&self, add: &[String], remove: &[String]) -> Result<(), DrainError> {
        let path = self.exclude_file()?;
        let _guard = self.edit.lock().await;
        let before = read_excluded(path)?;
        let mut after = before.clone();
        for host in add {
            after.insert(host.clone());
        }
        for host in remove {
            after.remove(host);
        }
        // Nothing to tell the RM (a victim that stays without ever being excluded): no
        // `rmadmin` run, which takes seconds.
        if after == before {
            return Ok(());
        }
        write_excluded(path, &after)?;
        if let Err(e) = self.refresh().await {
            let _ = write_excluded(path, &before);
            return Err(e);
        }
        Ok(())
    }

    async fn refresh(&self) -> Result<(), DrainError> {
        let Some((program, args)) = self.refresh_command.split_first() else {
            return Err(DrainError::Rejected {
                message: "`decommission.refresh_command` is empty".into(),
            });
        };
        let run = tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let shown = self.refresh_command.join(" ");
        let output = tokio::time::timeout(REFRESH_TIMEOUT, run)
            .await
            .map_err(|_| DrainError::Unreachable {
                message: format!("`{shown}` did not finish within {REFRESH_TIMEOUT:?}"),
            })?
            .map_err(|e| DrainError::Rejected {
                message: format!("cannot run `{shown}`: {e}"),
            })?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let excerpt: String = stderr.trim().chars().take(300).collect();
        Err(DrainError::Unreachable {
            message: format!("`{shown}` failed ({}): {excerpt}", output.status),
        })
    }

    /// The RM's names of `member`'s nodes; `UnknownWorker` when it has none.
    async fn names_of(&self, member: &Member) -> Result<Vec<String>, DrainError> {
        let nodes = self.nodes().await?;
        let names: Vec<String> = Self::nodes_of(member, &nodes)
            .into_iter()
            .map(|n| n.node_host_name.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if names.is_empty() {
            return Err(DrainError::UnknownWorker {
                message: format!(
                    "the ResourceManager lists no NodeManager for member {} (address {})",
                    member.id,
                    member.address.as_deref().unwrap_or("none")
                ),
            });
        }
        Ok(names)
    }
}

/// Host names in an XML exclude file (`<name>a, b</name>` lists several); a missing file is empty.
pub fn read_excluded(path: &Path) -> Result<BTreeSet<String>, DrainError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => {
            return Err(DrainError::Rejected {
                message: format!("cannot read exclude file {}: {e}", path.display()),
            });
        }
    };
    let mut hosts = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("<name>") {
        let after = &rest[start + "<name>".len()..];
        let Some(end) = after.find("</name>") else {
            break;
        };
        for host in after[..end].split(',') {
            let host = host.trim();
            if !host.is_empty() {
                hosts.insert(host.to_string());
            }
        }
        rest = &after[end..];
    }
    Ok(hosts)
}

/// Writes the exclude file whole (temp file + rename), each host with `<timeout>-1</timeout>`.
pub fn write_excluded(path: &Path, hosts: &BTreeSet<String>) -> Result<(), DrainError> {
    let mut text = String::from(
        "<?xml version=\"1.0\"?>\n<!-- written by poolpilot (drain method yarn); edits are overwritten -->\n<hosts>\n",
    );
    for host in hosts {
        let host = host
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        text.push_str(&format!(
            "  <host><name>{host}</name><timeout>-1</timeout></host>\n"
        ));
    }
    text.push_str("</hosts>\n");
    let tmp = path.with_extension("xml.poolpilot-tmp");
    let fail = |e: std::io::Error| DrainError::Rejected {
        message: format!("cannot write exclude file {}: {e}", path.display()),
    };
    std::fs::write(&tmp, text).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

#[async_trait]
impl Drainer for YarnDrainer {
    fn method(&self) -> &'static str {
        "yarn"
    }

    /// Reversible: [`Drainer::restore`] recommissions the node.
    fn one_way(&self) -> bool {
        false
    }

    /// NMs already DECOMMISSIONING or DECOMMISSIONED first (adopted: they take no work), then
    /// not-ready members, then by running containers, fewest first; members the RM does not
    /// know run nothing of YARN's (0), members without address or id match last of all only
    /// when they cannot be told apart from busy ones.
    async fn rank(&self, mut members: Vec<Member>) -> Result<Vec<Member>, DrainError> {
        let nodes = self.nodes().await?;
        members.sort_by_cached_key(|m| {
            let mine = Self::nodes_of(m, &nodes);
            let begun = mine
                .iter()
                .any(|n| matches!(n.state.as_str(), "DECOMMISSIONING" | "DECOMMISSIONED"));
            let containers: u32 = mine
                .iter()
                .filter(|n| !gone(&n.state))
                .map(|n| n.num_containers)
                .sum();
            (!begun, m.ready, containers)
        });
        Ok(members)
    }

    async fn begin(&self, member: &Member) -> Result<(), DrainError> {
        let names = self.names_of(member).await?;
        self.edit_and_refresh(&names, &[]).await
    }

    async fn is_drained(&self, member: &Member) -> Result<bool, DrainError> {
        let nodes = self.nodes().await?;
        let mine = Self::nodes_of(member, &nodes);
        // DECOMMISSIONED (or otherwise gone) everywhere the member is known; a node the RM
        // dropped from its lists runs nothing either.
        Ok(mine.iter().all(|n| gone(&n.state)))
    }

    async fn restore(&self, member: &Member) -> Result<(), DrainError> {
        let names = self.names_of(member).await?;
        self.edit_and_refresh(&[], &names).await
    }

    /// Takes the removed member's host out of the exclude file once the RM shows its node
    /// DECOMMISSIONED (or gone). A node removed while still DECOMMISSIONING (`on_timeout:
    /// force`) stays excluded: taking it out would recommission a dead node, which the RM
    /// would schedule on until its heartbeat expires.
    async fn forget(&self, member: &Member) -> Result<(), DrainError> {
        let nodes = self.nodes().await?;
        let mine = Self::nodes_of(member, &nodes);
        if !mine.iter().all(|n| gone(&n.state)) {
            return Ok(());
        }
        // The RM may already have dropped the node: match the file's entries themselves.
        let names: Vec<String> = read_excluded(self.exclude_file()?)?
            .into_iter()
            .filter(|h| names_member(h, member))
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        self.edit_and_refresh(&[], &names).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, state: &str, containers: u32) -> Node {
        Node {
            id: format!("{host}:45454"),
            node_host_name: host.to_string(),
            node_http_address: format!("{host}:8042"),
            state: state.to_string(),
            num_containers: containers,
        }
    }

    #[test]
    fn members_match_by_address_id_or_ec2_ip_name() {
        let nodes = vec![
            node("10.0.0.5", "RUNNING", 1),
            node("ip-10-0-0-6.ec2.internal", "RUNNING", 0),
            node("ip-10-0-0-60.ec2.internal", "RUNNING", 0),
            node("worker-7", "RUNNING", 0),
        ];
        let hosts = |m: &Member| -> Vec<String> {
            YarnDrainer::nodes_of(m, &nodes)
                .into_iter()
                .map(|n| n.node_host_name.clone())
                .collect()
        };
        assert_eq!(
            hosts(&Member::new("i-1").with_address("10.0.0.5")),
            ["10.0.0.5"]
        );
        assert_eq!(
            hosts(&Member::new("i-2").with_address("10.0.0.6")),
            ["ip-10-0-0-6.ec2.internal"]
        );
        assert_eq!(hosts(&Member::new("WORKER-7")), ["worker-7"]);
        assert!(hosts(&Member::new("i-9").with_address("10.0.0.9")).is_empty());
    }

    #[test]
    fn exclude_file_round_trips_and_reads_the_documented_example() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exclude.xml");
        assert!(read_excluded(&path).unwrap().is_empty());
        // GracefulDecommission.md's sample file
        std::fs::write(
            &path,
            "<?xml version=\"1.0\"?>\n<hosts>\n  <host><name>host1</name></host>\n  <host><name>host2</name><timeout>123</timeout></host>\n  <host><name>host3</name><timeout>-1</timeout></host>\n  <host><name>host4, host5,host6</name><timeout>1800</timeout></host>\n</hosts>\n",
        )
        .unwrap();
        let hosts = read_excluded(&path).unwrap();
        assert_eq!(
            hosts.iter().map(String::as_str).collect::<Vec<_>>(),
            ["host1", "host2", "host3", "host4", "host5", "host6"]
        );
        write_excluded(&path, &hosts).unwrap();
        assert_eq!(read_excluded(&path).unwrap(), hosts);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("<host><name>host2</name><timeout>-1</timeout></host>"),
            "{text}"
        );
    }
}
