//! Dry-run simulator: replays a workload through the engine on a virtual clock.
//!
//! - [`trace`]      workloads: SWF, Alibaba 2017, recordings, seeded generators
//! - [`recording`]  the JSONL recording format the daemon writes with `--record`
//! - [`parity`]     `--check-decisions`: a recording's decisions replayed through the engine
//! - [`timeline`]   step curves of one run (demand, supply, billed, queue)
//! - [`oracle`]     offline optimum (layer decomposition with gap bridging)
//! - [`autoscaler`] what sizes the pool: the engine with a policy, HPA, KEDA, static
//! - [`run`]        the replay loop on a virtual clock
//! - [`metrics`]    SPEC RG elasticity, job waits and slowdown, utilisation
//! - [`scenario`]   scenario files (YAML) and the built-in scenario
//! - [`experiment`] one scenario end to end: every policy and baseline on the same jobs
//! - [`report`]     rows, table, JSON
//! - [`expect`]     `expect:` checks and golden actuation timelines
//! - [`plot`]       `--out`: CSV timeline, SVG plot, JSON report
//! - [`pool`]       the virtual pool: boot, FIFO placement per job model, drains, billing
//! - [`removal`]    per-engine removal models: victim order, SIGTERM, what a kill loses
//! - [`tune`]       `poolpilot tune`: policy variants, Pareto front, holdout check

pub mod autoscaler;
pub mod expect;
pub mod experiment;
pub mod metrics;
pub mod oracle;
pub mod parity;
pub mod plot;
pub mod pool;
pub mod recording;
pub mod removal;
pub mod report;
pub mod run;
pub mod scenario;
pub mod timeline;
pub mod trace;
pub mod tune;
