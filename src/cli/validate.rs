//! `poolpilot validate PATH...`: every error at once; exit 0 when valid, 1 when not.

use std::path::PathBuf;

use clap::Args;

use crate::policy;
use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Policy files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Daemon settings file, to check the pools' minimums against the global budget.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: ValidateArgs) -> anyhow::Result<i32> {
    let budget = match &args.config {
        Some(path) => match Settings::load(Some(path)) {
            Ok(loaded) => {
                for warning in &loaded.warnings {
                    eprintln!("warning: {warning}");
                }
                loaded.settings.global_budget_per_hour()
            }
            Err(errors) => {
                for e in errors {
                    eprintln!("error: {e}");
                }
                return Ok(1);
            }
        },
        None => None,
    };
    match policy::load_set(&args.paths, budget) {
        Ok(policies) => {
            for p in &policies {
                outln!(
                    "ok: {} (pool `{}`, {} signal(s), mode {})",
                    p.origin,
                    p.name(),
                    p.spec.signals.len(),
                    p.spec.mode.as_str()
                );
            }
            Ok(0)
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            eprintln!("{} error(s)", errors.0.len());
            Ok(1)
        }
    }
}
