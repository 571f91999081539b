//! Leader election with a Kubernetes Lease (kube-lease-manager): only the holder actuates;
//! the others keep computing (as followers) so a failover starts warm. Without
//! `leader_election` in the settings this instance is always the leader.
//!
//! The lease is renewed `grace` seconds before it expires, so a killed leader is replaced
//! after at most `lease_duration`; a leader shutting down releases it at once. The flag this
//! module keeps can be stale (a frozen leader's is, until its next renewal fails), so
//! destructive calls ask [`Leadership::fence`] instead, which reads the Lease itself.

use std::sync::Arc;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::controller::WallClock;
use super::lease_fence::{KubeLease, LeaseFence};
use crate::fence::{Fence, Unfenced};
use crate::settings::{LeaderElection, LeaderMode};

/// What [`wanted`] decided: elect with these settings, or run alone (and why, when it is worth
/// a log line).
#[derive(Debug, PartialEq)]
pub enum Election<'a> {
    On(&'a LeaderElection),
    Off(Option<String>),
}

/// Whether this instance elects a leader: the flag over the settings' `mode`; `auto` elects
/// only where a Lease can be reached (inside a cluster, or through an explicit kubeconfig), so
/// `poolpilot run` works from a checkout. Pure: `in_cluster` is `KUBERNETES_SERVICE_HOST` set.
pub fn wanted(
    settings: Option<&LeaderElection>,
    flag: Option<LeaderMode>,
    in_cluster: bool,
) -> Result<Election<'_>, String> {
    let Some(s) = settings else {
        return match flag {
            Some(LeaderMode::On) => Err("--leader-election on needs a `leader_election` block in \
                 the settings (namespace, lease_name; see deploy/poolpilot.yaml)"
                .into()),
            _ => Ok(Election::Off(None)),
        };
    };
    match (flag, flag.unwrap_or(s.mode)) {
        (_, LeaderMode::On) => Ok(Election::On(s)),
        (Some(_), LeaderMode::Off) => Ok(Election::Off(Some(
            "leader election off (--leader-election off): this instance actuates alone".into(),
        ))),
        (None, LeaderMode::Off) => Ok(Election::Off(Some(
            "leader election off (leader_election.mode: off): this instance actuates alone".into(),
        ))),
        (_, LeaderMode::Auto) if in_cluster || s.kubeconfig.is_some() => Ok(Election::On(s)),
        (_, LeaderMode::Auto) => Ok(Election::Off(Some(
            "leader election off: not inside a Kubernetes cluster (KUBERNETES_SERVICE_HOST is \
             unset) and no leader_election.kubeconfig, so this instance actuates alone; \
             `--leader-election on` (or leader_election.mode: on) requires the Lease"
                .into(),
        ))),
    }
}

pub enum Leadership {
    Always,
    Lease {
        identity: String,
        state: watch::Receiver<bool>,
        task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
        fence: Arc<dyn Fence>,
    },
}

impl Leadership {
    pub async fn start(election: Election<'_>) -> anyhow::Result<Leadership> {
        let s = match election {
            Election::On(s) => s,
            Election::Off(why) => {
                if let Some(why) = why {
                    tracing::info!("{why}");
                }
                return Ok(Leadership::Always);
            }
        };
        let config = match &s.kubeconfig {
            Some(path) => {
                Config::from_custom_kubeconfig(
                    Kubeconfig::read_from(path)?,
                    &KubeConfigOptions::default(),
                )
                .await?
            }
            None => Config::incluster()?,
        };
        let client = Client::try_from(config)?;
        let identity = s
            .identity
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| format!("poolpilot-{}", std::process::id()));
        let duration = s.lease_duration.as_secs().max(3);
        let lease = KubeLease::new(client.clone(), &s.namespace, &s.lease_name);
        let manager = LeaseManagerBuilder::new(client, &s.lease_name)
            .with_namespace(&s.namespace)
            .with_identity(&identity)
            .with_duration(duration)
            .with_grace((duration / 3).max(1))
            .build()
            .await?;
        let (state, task) = manager.watch().await;
        let fence = Arc::new(LeaseFence::new(
            identity.clone(),
            state.clone(),
            Box::new(lease),
            Arc::new(WallClock),
        ));
        tracing::info!(%identity, lease = %s.lease_name, namespace = %s.namespace, "leader election on: actuating only while holding the lease");
        Ok(Leadership::Lease {
            identity,
            state,
            task,
            fence,
        })
    }

    /// What destructive calls ask first: always yes without election, else the Lease itself.
    pub fn fence(&self) -> Arc<dyn Fence> {
        match self {
            Leadership::Always => Arc::new(Unfenced),
            Leadership::Lease { fence, .. } => fence.clone(),
        }
    }

    pub fn enabled(&self) -> bool {
        matches!(self, Leadership::Lease { .. })
    }

    pub fn is_leader(&self) -> bool {
        match self {
            Leadership::Always => true,
            Leadership::Lease { state, .. } => *state.borrow(),
        }
    }

    /// Resolves when leadership may have changed (never without election).
    pub async fn changed(&mut self) {
        match self {
            Leadership::Always => std::future::pending().await,
            Leadership::Lease { state, .. } => {
                if state.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// Gives the lease up (closing the channel makes the manager release it), so a standby
    /// takes over without waiting for expiry.
    pub async fn release(self) {
        if let Leadership::Lease {
            identity,
            state,
            task,
            fence,
        } = self
        {
            drop(state);
            drop(fence); // holds a clone of the state: the manager sees the channel close
            match tokio::time::timeout(Duration::from_secs(5), task).await {
                Ok(Ok(Ok(_))) => tracing::info!(%identity, "lease released"),
                Ok(Ok(Err(e))) => {
                    tracing::warn!(%identity, error = %e, "could not release the lease; it expires by itself")
                }
                _ => tracing::warn!(%identity, "lease release timed out; it expires by itself"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(mode: LeaderMode, kubeconfig: bool) -> LeaderElection {
        LeaderElection {
            mode,
            namespace: "data".into(),
            lease_name: "poolpilot".into(),
            identity: None,
            lease_duration: Duration::from_secs(15),
            kubeconfig: kubeconfig.then(|| "/etc/kube/config".into()),
        }
    }

    #[test]
    fn auto_elects_only_where_a_lease_can_be_reached() {
        let b = block(LeaderMode::Auto, false);
        assert_eq!(wanted(Some(&b), None, true), Ok(Election::On(&b)));
        let outside = wanted(Some(&b), None, false).unwrap();
        assert!(
            matches!(&outside, Election::Off(Some(why)) if why.contains("KUBERNETES_SERVICE_HOST")),
            "{outside:?}"
        );
        let with_config = block(LeaderMode::Auto, true);
        assert_eq!(
            wanted(Some(&with_config), None, false),
            Ok(Election::On(&with_config))
        );
    }

    #[test]
    fn the_flag_overrides_the_settings() {
        let on = block(LeaderMode::On, false);
        assert_eq!(wanted(Some(&on), None, false), Ok(Election::On(&on)));
        let off = wanted(Some(&on), Some(LeaderMode::Off), true).unwrap();
        assert!(matches!(&off, Election::Off(Some(why)) if why.contains("--leader-election off")));
        let settings_off = block(LeaderMode::Off, true);
        assert!(matches!(
            wanted(Some(&settings_off), None, true),
            Ok(Election::Off(Some(_)))
        ));
        assert_eq!(
            wanted(Some(&settings_off), Some(LeaderMode::On), false),
            Ok(Election::On(&settings_off))
        );
    }

    #[test]
    fn without_a_block_there_is_nothing_to_elect() {
        assert_eq!(wanted(None, None, true), Ok(Election::Off(None)));
        assert_eq!(
            wanted(None, Some(LeaderMode::Auto), true),
            Ok(Election::Off(None))
        );
        let error = wanted(None, Some(LeaderMode::On), true).unwrap_err();
        assert!(error.contains("needs a `leader_election` block"), "{error}");
    }
}
