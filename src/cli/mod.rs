//! The `poolpilot` command line: one file per subcommand.

/// `println!` that returns the write error instead of panicking, so a reader that goes away
/// (`poolpilot schema | head -1`) ends the command quietly: `main` exits 0 on a broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

/// `print!` with the same contract as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)?
    }};
}

pub mod completions;
pub mod daemon_url;
pub mod explain;
pub mod man;
pub mod pause;
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
    /// Pause a pool of a running daemon: hold its size, pin it (--replicas) or block one
    /// direction (--direction), until `resume` or for a while (--for).
    Pause(pause::PauseArgs),
    /// Resume a pool paused with `poolpilot pause`.
    Resume(pause::ResumeArgs),
    /// Print a shell completion script (bash, zsh or fish).
    Completions(completions::CompletionsArgs),
    /// Print the man page (or write one page per command with --dir).
    Man(man::ManArgs),
}

/// Whether `error` comes from writing to a pipe whose reader has gone (`| head`): not a
/// failure of the command, which then exits 0 without a word.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
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
        Command::Pause(args) => current_thread()?.block_on(pause::pause(args)),
        Command::Resume(args) => current_thread()?.block_on(pause::resume(args)),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
    }
}

fn current_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every flag and positional of every subcommand says what it does in `--help`.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                if !builtin && help.trim().is_empty() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub
                    .get_about()
                    .is_none_or(|a| a.to_string().trim().is_empty())
                {
                    missing.push(format!("{path} {} (the subcommand)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "poolpilot", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }
}
