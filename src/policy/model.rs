//! The policy file as ops write it: one pool per YAML file. Strict (`deny_unknown_fields`),
//! human durations (`90s`, `5m`), defaults that follow the Kubernetes HPA where the two overlap.
//! `policies/README.md` documents every field; `poolpilot schema` prints the JSON Schema of
//! [`PolicyFile`]. Semantic checks live in `validate.rs`, not here.

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::signals::*;

/// One pool's policy file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Unique pool name; used in metrics labels, state and logs.
    pub pool: String,
    /// `enforce` (actuate), `shadow` (decide + record + explain, never actuate), `paused`.
    #[serde(default)]
    pub mode: Mode,
    /// One or more demand signals; desired workers = max over signals (HPA semantics).
    pub signals: Vec<SignalSpec>,
    /// The worker pool poolpilot resizes.
    pub workers: WorkersSpec,
    pub bounds: Bounds,
    /// Allows `bounds.min: 0`; the pool leaves zero only when demand exceeds the threshold.
    #[serde(default)]
    pub scale_to_zero: Option<ScaleToZero>,
    /// Dead band around the current size, as a ratio (HPA default 0.1): no change while
    /// `1 - scale_down.tolerance <= load ratio <= 1 + scale_up.tolerance` (HPA
    /// `Tolerances.isWithin`). The default of both directions.
    #[serde(default = "defaults::tolerance")]
    pub tolerance: f64,
    /// Time from a launch request until a worker takes work; booting capacity counts as coming.
    #[serde(default = "defaults::boot_time", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub boot_time: Duration,
    #[serde(default = "defaults::scale_up")]
    pub scale_up: ScaleRule,
    #[serde(default = "defaults::scale_down")]
    pub scale_down: ScaleDownRule,
    #[serde(default)]
    pub cost: Option<CostSpec>,
    /// Scheduled minimum sizes (e.g. office hours).
    #[serde(default)]
    pub schedules: Vec<ScheduleSpec>,
    #[serde(default)]
    pub on_missing_signal: MissingSignalRule,
    /// Limits direction reversals (up→down or down→up) to damp flapping.
    #[serde(default)]
    pub flap_budget: Option<FlapBudget>,
    /// Service-level targets that size the pool beyond `demand / per_worker`.
    #[serde(default)]
    pub target: Option<TargetSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Enforce,
    Shadow,
    Paused,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
            Mode::Paused => "paused",
        }
    }
}

/// The pool to resize: exactly one of `kubernetes` or `aws_asg`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkersSpec {
    #[serde(default)]
    pub kubernetes: Option<KubernetesTarget>,
    #[serde(default)]
    pub aws_asg: Option<AwsAsgTarget>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesTarget {
    pub namespace: String,
    /// Name of a Deployment (exclusive with `statefulset`).
    #[serde(default)]
    pub deployment: Option<String>,
    /// Name of a StatefulSet (scale-down always removes the highest ordinals).
    #[serde(default)]
    pub statefulset: Option<String>,
    /// Kubeconfig path; in-cluster config when absent.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    #[serde(default)]
    pub context: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsAsgTarget {
    /// Auto Scaling group name.
    pub group: String,
    pub region: String,
    /// Endpoint override (tests, VPC endpoints); standard AWS endpoint when absent.
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ScaleToZero {
    /// Demand must be strictly greater than this to leave zero workers (KEDA semantics).
    #[serde(default)]
    pub activation_threshold: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleRule {
    /// Scale-up: act on the minimum recommendation inside this window (HPA).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "String")]
    pub stabilization: Duration,
    /// No scale-up sooner than this after the previous scale-up.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "String")]
    pub cooldown: Duration,
    /// Scale up only when the load ratio exceeds `1 + tolerance` (HPA 1.33
    /// `behavior.scaleUp.tolerance`, KEP-4951); the top-level `tolerance` when absent.
    #[serde(default)]
    pub tolerance: Option<f64>,
    #[serde(default = "defaults::up_step")]
    pub max_step: MaxStep,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleDownRule {
    /// Scale-down: act on the maximum recommendation inside this window (HPA, default 5m).
    #[serde(default = "defaults::down_window", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub stabilization: Duration,
    /// No scale-down sooner than this after any actuation.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "String")]
    pub cooldown: Duration,
    /// Scale down only when the load ratio is below `1 - tolerance` (HPA 1.33
    /// `behavior.scaleDown.tolerance`, KEP-4951); the top-level `tolerance` when absent.
    #[serde(default)]
    pub tolerance: Option<f64>,
    #[serde(default = "defaults::down_step")]
    pub max_step: MaxStep,
    #[serde(default)]
    pub drain: DrainSpec,
}

/// Rate limit per period, HPA `policies` + `selectPolicy`. `workers` and `percent` are two
/// policies over `period`; `policies` adds any number more, each with its own period (HPA
/// `behavior.scaleUp.policies: [{type: Pods|Percent, value, periodSeconds}]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaxStep {
    /// At most this many workers per period (HPA `Pods` policy).
    #[serde(default)]
    pub workers: Option<u32>,
    /// At most this percentage of the period-start size per period (HPA `Percent` policy).
    #[serde(default)]
    pub percent: Option<u32>,
    /// The period of `workers` and `percent`, and of each entry of `policies` without one.
    #[serde(default = "defaults::period", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub period: Duration,
    /// More rate policies, each `{workers: N}` or `{percent: N}` with an optional `period`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<RatePolicySpec>,
    /// `max` (the larger step wins, HPA default), `min`, or `disabled` (no scaling this way).
    #[serde(default)]
    pub select: SelectPolicy,
}

/// One entry of `max_step.policies`: exactly one of `workers` (HPA `Pods`) or `percent` (HPA
/// `Percent`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RatePolicySpec {
    #[serde(default)]
    pub workers: Option<u32>,
    #[serde(default)]
    pub percent: Option<u32>,
    /// Defaults to `max_step.period`.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub period: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SelectPolicy {
    #[default]
    Max,
    Min,
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrainSpec {
    /// How busy workers are emptied before removal; `auto` picks from the first signal's engine.
    #[serde(default)]
    pub method: DrainMethod,
    /// Longest a drain may take.
    #[serde(default = "defaults::drain_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// What happens to a worker still busy at the timeout.
    #[serde(default)]
    pub on_timeout: OnDrainTimeout,
}

impl Default for DrainSpec {
    fn default() -> Self {
        DrainSpec {
            method: DrainMethod::default(),
            timeout: defaults::drain_timeout(),
            on_timeout: OnDrainTimeout::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DrainMethod {
    #[default]
    Auto,
    /// Trino `PUT /v1/info/state "SHUTTING_DOWN"`.
    Trino,
    /// Spark master `POST /workers/kill/?host=`.
    Spark,
    /// Celery: idle workers first, busy ones wait.
    Celery,
    /// YARN NodeManager graceful decommission (exclude file + `rmadmin -refreshNodes -g`),
    /// removed once the RM shows it DECOMMISSIONED.
    Yarn,
    /// Remove without draining (stateless, interruptible work only).
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnDrainTimeout {
    /// Keep the busy worker; the scale-down is reported as incomplete.
    #[default]
    Keep,
    /// Remove it anyway.
    Force,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CostSpec {
    /// Price of one worker for one hour (any currency, used consistently).
    pub per_worker_hour: f64,
    /// Pool cap: never run more than `max_per_hour / per_worker_hour` workers.
    #[serde(default)]
    pub max_per_hour: Option<f64>,
    /// Higher wins when the global budget binds.
    #[serde(default)]
    pub priority: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Five-field cron (`min hour day month weekday`), e.g. `0 7 * * MON-FRI`.
    pub cron: String,
    /// How long the floor holds after each start.
    #[serde(rename = "for", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub duration: Duration,
    /// Minimum workers while active.
    pub min: u32,
    /// IANA zone, e.g. `Europe/London` (default UTC).
    #[serde(default = "defaults::utc")]
    pub timezone: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MissingSignalRule {
    /// Hold the current size this long while a signal is missing.
    #[serde(default = "defaults::hold_for", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub hold_for: Duration,
    /// After `hold_for`, raise the pool to at least this size (never lowers it).
    #[serde(default)]
    pub then_workers: Option<u32>,
}

impl Default for MissingSignalRule {
    fn default() -> Self {
        MissingSignalRule {
            hold_for: defaults::hold_for(),
            then_workers: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlapBudget {
    /// At most this many direction reversals in any hour.
    pub max_reversals_per_hour: u32,
}

/// Service-level sizing (policies/README.md, "Sizing for a service level").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// Size the pool so the work waiting now starts within this time, counting what the
    /// pool's workers finish meanwhile (turnover measured online) and the boot time. Until
    /// the turnover is measured the proportional target (`per_worker`) applies.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub clear_backlog_within: Option<Duration>,
    /// Learn the pool's daily or weekly rhythm and raise the floor one boot time ahead of a
    /// predicted rise (never lowers the size; off until one whole season was seen).
    #[serde(default)]
    pub prewarm: Option<PrewarmSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrewarmSpec {
    /// The rhythm to learn.
    #[serde(default)]
    pub season: Season,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Season {
    #[default]
    Daily,
    Weekly,
}

impl Season {
    pub fn length(self) -> Duration {
        match self {
            Season::Daily => Duration::from_secs(86_400),
            Season::Weekly => Duration::from_secs(7 * 86_400),
        }
    }
}

/// Defaults, named so the schema and `policies/README.md` can cite them.
pub mod defaults {
    use super::*;

    pub fn tolerance() -> f64 {
        0.1
    }
    pub fn boot_time() -> Duration {
        Duration::from_secs(60)
    }
    pub fn period() -> Duration {
        Duration::from_secs(15)
    }
    pub fn down_window() -> Duration {
        Duration::from_secs(300)
    }
    pub fn up_step() -> MaxStep {
        MaxStep {
            workers: Some(4),
            percent: Some(100),
            period: period(),
            policies: Vec::new(),
            select: SelectPolicy::Max,
        }
    }
    pub fn down_step() -> MaxStep {
        MaxStep {
            workers: None,
            percent: Some(100),
            period: period(),
            policies: Vec::new(),
            select: SelectPolicy::Max,
        }
    }
    pub fn scale_up() -> ScaleRule {
        ScaleRule {
            stabilization: Duration::ZERO,
            cooldown: Duration::ZERO,
            tolerance: None,
            max_step: up_step(),
        }
    }
    pub fn scale_down() -> ScaleDownRule {
        ScaleDownRule {
            stabilization: down_window(),
            cooldown: Duration::ZERO,
            tolerance: None,
            max_step: down_step(),
            drain: DrainSpec::default(),
        }
    }
    pub fn drain_timeout() -> Duration {
        Duration::from_secs(600)
    }
    pub fn hold_for() -> Duration {
        Duration::from_secs(300)
    }
    pub fn timeout() -> Duration {
        Duration::from_secs(5)
    }
    pub fn celery_reply_window() -> Duration {
        Duration::from_secs(1)
    }
    pub fn max_body_bytes() -> u64 {
        8 * 1024 * 1024
    }
    pub fn user() -> String {
        "poolpilot".into()
    }
    pub fn kubernetes_queue() -> String {
        "kubernetes".into()
    }
    pub fn utc() -> String {
        "UTC".into()
    }
    pub fn yes() -> bool {
        true
    }
    pub fn one() -> u32 {
        1
    }
    /// Server-side tracking (non-blocking) with no RM deadline: poolpilot's drain timeout is
    /// the deadline (GracefulDecommission.md, "Client or server side timeout").
    pub fn yarn_refresh_command() -> Vec<String> {
        ["yarn", "rmadmin", "-refreshNodes", "-g", "-1", "-server"]
            .map(String::from)
            .to_vec()
    }
}
