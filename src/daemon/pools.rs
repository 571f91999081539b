//! Per-pool runtime: the policy plus the I/O objects built from it (sources, actuator,
//! drainer). Building goes through the narrow [`Wiring`] trait so the control loop runs against
//! fakes in tests and against the real engines and platforms in production ([`RealWiring`]).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::pool_metrics::{PoolMetrics, SignalMetrics};
use crate::actuators::aws_asg::AsgConnection;
use crate::actuators::events::kube::KubeEvents;
use crate::actuators::events::{Evented, limit};
use crate::actuators::kubernetes::KubernetesActuator;
use crate::actuators::{Actuator, ActuatorError, Instrumented, PoolStatus};
use crate::drain::{self, Drainer};
use crate::engine::{Pause, WorkerCounts};
use crate::policy::{Policy, SignalSpec};
use crate::sources::{self, MetricSource, Reading};
use crate::time::Timestamp;

/// Builds the I/O objects of a pool.
#[async_trait]
pub trait Wiring: Send + Sync {
    fn source(&self, spec: &SignalSpec) -> Arc<dyn MetricSource>;
    /// May fail (no kubeconfig, bad region); the loop retries every tick and reports why.
    async fn actuator(&self, policy: &Policy) -> Result<Arc<dyn Actuator>, ActuatorError>;
    fn drainer(&self, policy: &Policy) -> Arc<dyn Drainer>;
}

/// One policy signal and what the loop remembers about it.
pub struct SignalRuntime {
    pub spec: SignalSpec,
    pub source: Arc<dyn MetricSource>,
    /// Start of the current failure streak (`None` after a good reading).
    pub missing_since: Option<Timestamp>,
    pub last_good: Option<(Timestamp, Reading)>,
    pub last_error: Option<String>,
    pub metrics: SignalMetrics,
}

pub struct PoolRuntime {
    pub policy: Policy,
    pub signals: Vec<SignalRuntime>,
    pub actuator: Option<Arc<dyn Actuator>>,
    pub actuator_error: Option<String>,
    pub drainer: Arc<dyn Drainer>,
    /// The platform's answer this tick; `None` when it could not be read.
    pub status: Option<PoolStatus>,
    pub status_error: Option<String>,
    /// Last counts the platform reported (kept when a read fails, for spend accounting only).
    pub last_counts: Option<WorkerCounts>,
    pub metrics: PoolMetrics,
    /// Pauses set by annotations or ASG tags at the last successful status read.
    pub platform_pauses: Vec<Pause>,
    /// Pause marks that could not be read (shown on `/status`, warned about).
    pub pause_problems: Vec<String>,
}

impl PoolRuntime {
    pub fn name(&self) -> &str {
        self.policy.name()
    }
}

/// Rebuilds the pool set for `policies`, reusing what did not change: a signal with the same
/// spec keeps its source and failure streak, a pool with the same `workers` keeps its actuator.
pub async fn rebuild(
    wiring: &dyn Wiring,
    old: Vec<PoolRuntime>,
    policies: Vec<Policy>,
) -> Vec<PoolRuntime> {
    let mut old = old;
    let mut pools = Vec::with_capacity(policies.len());
    for policy in policies {
        let previous = old
            .iter()
            .position(|p| p.name() == policy.name())
            .map(|i| old.swap_remove(i));
        pools.push(build_one(wiring, previous, policy).await);
    }
    pools
}

async fn build_one(
    wiring: &dyn Wiring,
    previous: Option<PoolRuntime>,
    policy: Policy,
) -> PoolRuntime {
    let (mut old_signals, old_actuator, old_counts) = match previous {
        Some(p) if p.policy.spec.workers == policy.spec.workers => {
            (p.signals, p.actuator, p.last_counts)
        }
        Some(p) => (p.signals, None, None),
        None => (Vec::new(), None, None),
    };
    let name = policy.name();
    let signals = policy
        .spec
        .signals
        .iter()
        .enumerate()
        .map(|(index, spec)| {
            // Handles made anew: a kept signal may have moved to another index.
            let metrics = SignalMetrics::new(name, index, spec.kind_name());
            match old_signals.iter().position(|s| s.spec == *spec) {
                Some(i) => SignalRuntime {
                    metrics,
                    ..old_signals.swap_remove(i)
                },
                None => SignalRuntime {
                    spec: spec.clone(),
                    source: wiring.source(spec),
                    missing_since: None,
                    last_good: None,
                    last_error: None,
                    metrics,
                },
            }
        })
        .collect();
    let metrics = PoolMetrics::new(name);
    let drainer = wiring.drainer(&policy);
    let mut pool = PoolRuntime {
        policy,
        signals,
        actuator: old_actuator,
        actuator_error: None,
        drainer,
        status: None,
        status_error: None,
        last_counts: old_counts,
        metrics,
        platform_pauses: Vec::new(),
        pause_problems: Vec::new(),
    };
    ensure_actuator(wiring, &mut pool).await;
    pool
}

/// Builds the actuator if it is missing (first start, or a previous attempt failed).
pub async fn ensure_actuator(wiring: &dyn Wiring, pool: &mut PoolRuntime) {
    if pool.actuator.is_some() {
        return;
    }
    match wiring.actuator(&pool.policy).await {
        Ok(a) => {
            pool.actuator = Some(a);
            pool.actuator_error = None;
        }
        Err(e) => {
            if pool.actuator_error.as_deref() != Some(&e.to_string()) {
                tracing::warn!(pool = pool.name(), error = %e, "cannot set up the pool's actuator; retrying every tick");
            }
            pool.actuator_error = Some(e.to_string());
        }
    }
}

/// The production wiring: HTTP/SQL sources, Kubernetes/AWS actuators, engine drainers.
/// Every actuator is timed and counted (`actuators::Instrumented`); Kubernetes actuators also
/// write Events about the objects they scale (`actuators::events`).
///
/// Pools share clients: one AWS connection per region and endpoint (one connection pool,
/// credentials cache and status batch), where a client per pool would cost ~0.5 MiB and two
/// Describe calls a tick each.
pub struct RealWiring {
    http: reqwest::Client,
    aws: tokio::sync::Mutex<HashMap<(String, Option<String>), AsgConnection>>,
    /// Kubernetes Events' `reportingInstance`: the pod name, as for the Lease identity.
    instance: String,
}

impl RealWiring {
    pub fn new() -> RealWiring {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let instance = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "poolpilot".into());
        RealWiring {
            http,
            aws: tokio::sync::Mutex::default(),
            instance,
        }
    }
}

impl Default for RealWiring {
    fn default() -> Self {
        RealWiring::new()
    }
}

#[async_trait]
impl Wiring for RealWiring {
    fn source(&self, spec: &SignalSpec) -> Arc<dyn MetricSource> {
        Arc::from(sources::build(spec))
    }

    async fn actuator(&self, policy: &Policy) -> Result<Arc<dyn Actuator>, ActuatorError> {
        let workers = &policy.spec.workers;
        if let Some(target) = &workers.kubernetes {
            let actuator = KubernetesActuator::from_target(target).await?;
            let events = KubeEvents::for_actuator(&actuator, &self.instance);
            return Ok(Arc::new(Evented::new(
                Instrumented::new(actuator),
                events,
                limit::DEFAULT_WINDOW,
            )));
        }
        if let Some(target) = &workers.aws_asg {
            let key = (target.region.clone(), target.endpoint_url.clone());
            let mut connections = self.aws.lock().await;
            let connection = match connections.get(&key) {
                Some(c) => c.clone(),
                None => {
                    let c =
                        AsgConnection::load(&target.region, target.endpoint_url.as_deref()).await;
                    connections.insert(key, c.clone());
                    c
                }
            };
            return Ok(Arc::new(Instrumented::new(
                connection.actuator(&target.group),
            )));
        }
        Err(ActuatorError::Config {
            message: "workers: neither `kubernetes` nor `aws_asg` is set".into(),
        })
    }

    fn drainer(&self, policy: &Policy) -> Arc<dyn Drainer> {
        drain::for_policy(
            policy.spec.scale_down.drain.method,
            &policy.spec.signals,
            self.http.clone(),
        )
    }
}
