//! Leader election with a Kubernetes Lease (kube-lease-manager): only the holder actuates;
//! the others keep computing (as followers) so a failover starts warm. Without
//! `leader_election` in the settings this instance is always the leader.
//!
//! The lease is renewed `grace` seconds before it expires, so a killed leader is replaced
//! after at most `lease_duration`; a leader shutting down releases it at once.

use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::settings::LeaderElection;

pub enum Leadership {
    Always,
    Lease {
        identity: String,
        state: watch::Receiver<bool>,
        task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
    },
}

impl Leadership {
    pub async fn start(settings: Option<&LeaderElection>) -> anyhow::Result<Leadership> {
        let Some(s) = settings else {
            return Ok(Leadership::Always);
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
        let manager = LeaseManagerBuilder::new(client, &s.lease_name)
            .with_namespace(&s.namespace)
            .with_identity(&identity)
            .with_duration(duration)
            .with_grace((duration / 3).max(1))
            .build()
            .await?;
        let (state, task) = manager.watch().await;
        tracing::info!(%identity, lease = %s.lease_name, namespace = %s.namespace, "leader election on: actuating only while holding the lease");
        Ok(Leadership::Lease {
            identity,
            state,
            task,
        })
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
        } = self
        {
            drop(state);
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
