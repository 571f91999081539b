//! Signal sections of a policy file: which engine to read, how to reach it, and secrets by
//! reference only (an inline secret is a validation error).

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::defaults;

/// One demand signal: exactly one engine key plus `per_worker`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalSpec {
    #[serde(default)]
    pub trino: Option<TrinoSignal>,
    #[serde(default)]
    pub presto: Option<PrestoSignal>,
    #[serde(default)]
    pub airflow: Option<AirflowSignal>,
    #[serde(default)]
    pub airflow_db: Option<AirflowDbSignal>,
    #[serde(default)]
    pub spark: Option<SparkSignal>,
    #[serde(default)]
    pub prometheus: Option<PrometheusSignal>,
    #[serde(default)]
    pub yarn: Option<YarnSignal>,
    #[serde(default)]
    pub celery: Option<CelerySignal>,
    /// Demand units one worker carries at target load (queries, task slots, cores). > 0.
    pub per_worker: f64,
}

/// Which Trino endpoint to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrinoEndpoint {
    /// `/v1/query` (REST auth): sees `WAITING_FOR_RESOURCES`, needed to scale from zero.
    #[default]
    Query,
    /// `/ui/api/stats` (UI auth).
    UiStats,
    /// `/metrics` (OpenMetrics).
    Metrics,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrinoSignal {
    /// Coordinator base URL, e.g. `http://trino:8080`.
    pub coordinator: String,
    /// Sent as `X-Trino-User`.
    #[serde(default = "defaults::user")]
    pub user: String,
    #[serde(default)]
    pub endpoint: TrinoEndpoint,
    /// Count BLOCKED queries as demand too.
    #[serde(default = "defaults::yes")]
    pub include_blocked: bool,
    #[serde(default)]
    pub http: HttpOptions,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrestoSignal {
    /// Coordinator (or resource manager) base URL.
    pub coordinator: String,
    /// Sent as `X-Presto-User`.
    #[serde(default = "defaults::user")]
    pub user: String,
    #[serde(default)]
    pub http: HttpOptions,
}

/// Airflow major version: `3` (`/api/v2`, JWT from `POST /auth/token`) or `2` (`/api/v1`,
/// basic auth). Written as a plain number in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AirflowApiVersion {
    #[default]
    V3,
    V2,
}

impl Serialize for AirflowApiVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(match self {
            AirflowApiVersion::V3 => 3,
            AirflowApiVersion::V2 => 2,
        })
    }
}

impl<'de> Deserialize<'de> for AirflowApiVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) if n.as_u64() == Some(3) => Ok(AirflowApiVersion::V3),
            serde_json::Value::Number(n) if n.as_u64() == Some(2) => Ok(AirflowApiVersion::V2),
            serde_json::Value::String(s) if s == "3" => Ok(AirflowApiVersion::V3),
            serde_json::Value::String(s) if s == "2" => Ok(AirflowApiVersion::V2),
            other => Err(serde::de::Error::custom(format!(
                "unknown Airflow version {other}; expected 2 or 3"
            ))),
        }
    }
}

impl JsonSchema for AirflowApiVersion {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AirflowApiVersion".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "enum": [2, 3], "description": "Airflow major version" })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AirflowSignal {
    /// API server base URL, e.g. `http://airflow-api:8080`.
    pub api: String,
    #[serde(default)]
    pub version: AirflowApiVersion,
    /// Count only task instances in this Airflow pool.
    #[serde(default)]
    pub pool: Option<String>,
    /// Count only task instances in these Celery queues (empty = all).
    #[serde(default)]
    pub queues: Vec<String>,
    /// Also count `scheduled` task instances (they become queued shortly).
    #[serde(default)]
    pub include_scheduled: bool,
    #[serde(default)]
    pub http: HttpOptions,
}

/// Which executor filter the chart's KEDA query applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AirflowExecutor {
    #[default]
    Celery,
    CeleryKubernetes,
    Kubernetes,
    Edge,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AirflowDbSignal {
    /// PostgreSQL connection string (`postgresql://user:pass@host/db`), from env or file.
    pub connection: SecretRef,
    #[serde(default)]
    pub executor: AirflowExecutor,
    /// Queue excluded for `celery_kubernetes` (chart default `kubernetes`).
    #[serde(default = "defaults::kubernetes_queue")]
    pub kubernetes_queue: String,
    /// Restrict to these queues (`AND queue IN (...)`); empty = no queue filter.
    #[serde(default)]
    pub queues: Vec<String>,
    #[serde(default = "defaults::timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SparkSignal {
    /// Master web UI base URL, e.g. `http://spark-master:8080` (reads `/json/`).
    pub master: String,
    /// Cores a WAITING application wants (the master only publishes granted cores).
    pub cores_per_waiting_app: u32,
    /// Cores a SUBMITTED driver wants.
    #[serde(default = "defaults::one")]
    pub cores_per_submitted_driver: u32,
    #[serde(default)]
    pub http: HttpOptions,
}

/// A PromQL instant query (`GET /api/v1/query`, Prometheus HTTP API) whose one value is the
/// demand: a scalar, or a vector with exactly one series. No series, several series, NaN,
/// ±Inf or a negative value is a source error (the pool holds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSignal {
    /// Base URL of the query API, e.g. `http://prometheus:9090` (a path prefix such as
    /// `http://thanos/prefix` is kept; `/api/v1/query` is appended).
    pub url: String,
    /// The PromQL expression, evaluated at the poll's time.
    pub query: String,
    /// Timeout, auth (bearer/basic, from env or file), CA file and body cap.
    #[serde(default)]
    pub http: HttpOptions,
}

/// What a YARN pool's demand counts, in the units of `per_worker` (one NodeManager's share).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum YarnDemand {
    /// Allocated + pending virtual cores (`per_worker` = a NodeManager's vcores).
    #[default]
    Vcores,
    /// Allocated + pending memory in MB (`per_worker` = a NodeManager's MB).
    Memory,
    /// Allocated + pending containers.
    Containers,
}

/// YARN ResourceManager REST API (`/ws/v1/cluster/metrics`, `/ws/v1/cluster/scheduler`).
/// Kerberos (SPNEGO) is not supported: simple auth (`user.name`) and TLS only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct YarnSignal {
    /// ResourceManager web address, e.g. `http://rm:8088`.
    pub resource_manager: String,
    #[serde(default)]
    pub demand: YarnDemand,
    /// A Capacity Scheduler leaf queue's figures instead of the cluster's (its name, e.g. `etl`,
    /// or its path, e.g. `root.etl`).
    #[serde(default)]
    pub queue: Option<String>,
    /// Sent as the `user.name` query parameter (Hadoop simple authentication).
    #[serde(default)]
    pub user: Option<String>,
    /// How `drain: { method: yarn }` decommissions a NodeManager gracefully.
    #[serde(default)]
    pub decommission: Option<YarnDecommission>,
    #[serde(default)]
    pub http: HttpOptions,
}

/// Graceful decommission as the Hadoop docs give it (GracefulDecommission.md): the host goes
/// into the ResourceManager's exclude file (`yarn.resourcemanager.nodes.exclude-path`, XML
/// format) and `yarn rmadmin -refreshNodes -g … -server` makes the RM read it; removing it and
/// refreshing again recommissions the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct YarnDecommission {
    /// The RM's exclude file in XML format (must end in `.xml`; only that format carries a
    /// per-host timeout). poolpilot owns its content.
    pub exclude_file: PathBuf,
    /// The command that makes the RM re-read the file; no shell, run as given.
    #[serde(default = "defaults::yarn_refresh_command")]
    pub refresh_command: Vec<String>,
}

/// A Celery broker (Superset's workers, Airflow's CeleryExecutor, any Celery app): demand =
/// messages waiting in `queues` + tasks the workers have taken (running or reserved), in task
/// slots; `per_worker` is the workers' concurrency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CelerySignal {
    /// `redis://host:port/db` or `amqp://user@host:port/vhost` (`//` = vhost `/`), no password
    /// in the URL: the password goes in `password`.
    pub broker: String,
    /// The Celery queues the pool's workers consume (`-Q`); at least one.
    pub queues: Vec<String>,
    /// RabbitMQ management API base URL, e.g. `http://rabbitmq:15672` (required for `amqp://`:
    /// queue depths and remote control go through it; user from the broker URL, password from
    /// `password`).
    #[serde(default)]
    pub management: Option<String>,
    /// Redis AUTH password or RabbitMQ management password, by reference.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// How long to collect the workers' replies to `inspect active`/`reserved` (Celery's own
    /// default is 1 s); the wait ends early once every worker that got the request answered.
    #[serde(default = "defaults::celery_reply_window", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub reply_window: Duration,
    /// Deadline of one whole poll (queue depths + remote control).
    #[serde(default = "defaults::timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// Management API answers larger than this are rejected (bytes).
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: u64,
}

/// Connection options shared by the HTTP sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpOptions {
    #[serde(default)]
    pub auth: Option<HttpAuth>,
    /// PEM file with extra CA certificates.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "defaults::timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// Responses larger than this are rejected (bytes).
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: u64,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            auth: None,
            ca_file: None,
            timeout: defaults::timeout(),
            max_body_bytes: defaults::max_body_bytes(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum HttpAuth {
    Basic {
        username: String,
        password: SecretRef,
    },
    Bearer {
        token: SecretRef,
    },
}

/// A secret, referenced by environment variable name or file path; never written inline.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

/// What the file may contain where a secret goes; inline strings are refused with a hint.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSecret {
    Ref(SecretRefMap),
    Inline(#[allow(dead_code)] serde_json::Value),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretRefMap {
    env: Option<String>,
    file: Option<PathBuf>,
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        SecretRef::try_from(RawSecret::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<RawSecret> for SecretRef {
    type Error = String;
    fn try_from(raw: RawSecret) -> Result<Self, String> {
        match raw {
            RawSecret::Ref(SecretRefMap { env: Some(v), file: None }) => Ok(SecretRef::Env(v)),
            RawSecret::Ref(SecretRefMap { env: None, file: Some(p) }) => Ok(SecretRef::File(p)),
            RawSecret::Ref(_) => Err("a secret reference needs exactly one of `env` or `file`".into()),
            RawSecret::Inline(_) => Err(
                "inline secrets are not allowed; reference one with `{ env: VAR_NAME }` or `{ file: /path }`"
                    .into(),
            ),
        }
    }
}
