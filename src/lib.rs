//! poolpilot: an autoscaler for the worker pools of batch data engines.
//!
//! A control loop reads queue depth from Trino/Presto coordinators, Airflow and the Spark
//! standalone master, and sizes Kubernetes workloads or AWS Auto Scaling groups. The decision
//! logic is one pure function ([`engine::step`]) shared by the daemon and the simulator.
//!
//! Module map:
//! - [`time`]       `Timestamp`; the one place allowed to read the wall clock
//! - [`policy`]     policy files: serde model, YAML loading with positions, validation, schema
//! - [`settings`]   daemon settings (YAML file + `POOLPILOT_*` env, validated like policies)
//! - [`engine`]     PURE decision pipeline: `step`, `decide`, `Decision`, `Reason`, `Memory`
//! - [`sources`]    metric sources (Trino, Presto, Airflow REST/DB, Spark, Celery brokers,
//!   Prometheus, YARN RM): fetch + pure parse
//! - [`actuators`]  worker-pool actuators (Kubernetes, AWS ASG) + dry-run/metrics/Events decorators
//! - [`drain`]      engine-aware drains (Trino, Spark, Celery broker/idle-first, YARN) and victim
//!   choice
//! - [`fence`]      the leadership check before every destructive call (`Fence`, `judge`)
//! - [`daemon`]     tokio control loop, HTTP endpoints, state store, reload, leader lease
//! - [`sim`]        simulator: traces, virtual pool, baselines, oracle, metrics, report, `tune`
//! - [`telemetry`]  tracing setup and every metric name
//! - [`cli`]        the `poolpilot` command line (one file per subcommand, `status` included)

pub mod actuators;
pub mod cli;
pub mod daemon;
pub mod drain;
pub mod engine;
pub mod fence;
pub mod policy;
pub mod settings;
pub mod sim;
pub mod sources;
pub mod telemetry;
pub mod time;
