//! Dry-run simulator: replays a workload through the engine on a virtual clock.
//!
//! - [`trace`]      workloads: SWF, Alibaba 2017, recordings, seeded generators
//! - [`recording`]  the JSONL recording format the daemon writes with `--record`
//! - [`timeline`]   step curves of one run (demand, supply, billed, queue)
//! - [`oracle`]     offline optimum (layer decomposition with gap bridging)
//! - [`controller`] what sizes the pool: the engine with a policy, HPA, KEDA, static
//! - [`run`]        the replay loop on a virtual clock
//! - [`metrics`]    SPEC RG elasticity, job waits and slowdown, utilisation
//! - [`pool`]       the virtual pool: boot, FIFO placement per job model, drains, billing

pub mod controller;
pub mod metrics;
pub mod oracle;
pub mod pool;
pub mod recording;
pub mod run;
pub mod timeline;
pub mod trace;
