//! The `poolpilot` command line: one file per subcommand.

pub mod completions;
pub mod explain;
pub mod man;
pub mod probe;
pub mod run;
pub mod schema;
pub mod simulate;
mod simulate_recording;
pub mod status;
pub mod tune;
pub mod validate;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "poolpilot",
    version,
    about = "Autoscaler for the worker pools of Trino/Presto, Airflow and Spark"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check policy files (files or directories); prints every error with file:line:column.
    Validate(validate::ValidateArgs),
    /// Run one decision from a hypothetical state and print the reason chain.
    Explain(explain::ExplainArgs),
    /// Print the JSON Schema of policy files (for editor completion and checking).
    Schema,
    /// Replay a workload through the engine (dry-run simulation) and report against baselines.
    Simulate(simulate::SimulateArgs),
    /// Search a policy's knobs on a scenario for a p95-wait service level; print the Pareto
    /// front against the baselines and write the cheapest policy that meets it.
    Tune(tune::TuneArgs),
    /// Poll every signal of the given policies once; print demand, raw numbers, latency or the error.
    Probe(probe::ProbeArgs),
    /// Run the daemon: the control loop, /metrics /healthz /readyz /status, reload on SIGHUP.
    Run(run::RunArgs),
    /// Show a running daemon's pools: size → desired, mode, reason, signal ages, spend.
    Status(status::StatusArgs),
    /// Print a shell completion script (bash, zsh or fish).
    Completions(completions::CompletionsArgs),
    /// Print the man page (or write one page per command with --dir).
    Man(man::ManArgs),
}

/// Runs a parsed command; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Schema => schema::run(),
        Command::Simulate(args) => match simulate::recording_of(&args) {
            Some(recording) => simulate_recording::run(&args, recording),
            None => simulate::run(args),
        },
        Command::Tune(args) => tune::run(args),
        Command::Run(args) => run::run(args),
        Command::Probe(args) => current_thread()?.block_on(probe::run(args)),
        Command::Status(args) => current_thread()?.block_on(status::run(args)),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
    }
}

fn current_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
