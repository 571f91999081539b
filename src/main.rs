//! The `poolpilot` binary: CLI parsing only; everything else lives in the library.

use clap::Parser;

fn main() {
    let cli = poolpilot::cli::Cli::parse();
    // The daemon sets up its own logging (JSON or text, from its settings).
    if !matches!(cli.command, poolpilot::cli::Command::Run(_)) {
        poolpilot::telemetry::init_tracing(false);
    }
    match poolpilot::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) if poolpilot::cli::is_broken_pipe(&e) => std::process::exit(0),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
