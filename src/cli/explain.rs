//! `poolpilot explain`: one tick of the real engine from a hypothetical state, printed as the
//! reason chain an operator reads (or JSON).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::daemon::state;
use crate::engine::{self, Memory, PoolObservation, Signal, WorkerCounts, World};
use crate::policy;
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The pool's policy file.
    #[arg(long)]
    pub policy: PathBuf,
    /// Demand per signal (repeat for several signals; the last value fills the rest).
    #[arg(long, required = true)]
    pub demand: Vec<f64>,
    /// Workers currently requested.
    #[arg(long)]
    pub current: u32,
    /// Workers ready (default: all of `--current`).
    #[arg(long)]
    pub ready: Option<u32>,
    /// Evaluation time, RFC 3339 (default: now). Matters for schedules.
    #[arg(long)]
    pub at: Option<String>,
    /// The daemon's state file (`settings.state_path`), so cooldowns and windows are the live ones.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// `text` (the reason chain, one stage a line) or `json` (the whole decision).
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

pub fn run(args: ExplainArgs) -> anyhow::Result<i32> {
    let policy = match policy::load_file(&args.policy) {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(1);
        }
    };
    let now = match &args.at {
        Some(at) => Timestamp::parse_rfc3339(at).map_err(|e| anyhow::anyhow!("--at {at}: {e}"))?,
        None => Timestamp::now(),
    };
    let mut memory = match &args.state {
        Some(path) => match state::load(path) {
            state::Loaded::Ok(s) => s.memory,
            state::Loaded::Missing => anyhow::bail!("{}: no such state file", path.display()),
            state::Loaded::Corrupt(why) => anyhow::bail!("not a poolpilot state file: {why}"),
        },
        None => Memory::default(),
    };
    let last = *args.demand.last().expect("clap requires one");
    let signals = (0..policy.spec.signals.len())
        .map(|i| Signal::Value {
            demand: args.demand.get(i).copied().unwrap_or(last),
            observed_at: now,
        })
        .collect();
    let world = World {
        pools: vec![PoolObservation {
            pauses: Vec::new(),
            signals,
            workers: WorkerCounts {
                requested: args.current,
                ready: args.ready.unwrap_or(args.current),
            },
        }],
        global_budget_per_hour: None,
    };
    let decision = engine::step(
        &[engine::PoolRules::compile(&policy)],
        &world,
        &mut memory,
        now,
    )
    .remove(0);
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&decision)?),
        Format::Text => {
            outln!(
                "pool {} ({}) at {now}",
                decision.pool,
                decision.mode.as_str()
            );
            outln!(
                "  current {} -> desired {}",
                decision.current,
                decision.desired
            );
            for (i, r) in decision.reasons.iter().enumerate() {
                outln!("  {}. [{}] {r}", i + 1, r.label());
            }
            if let Some(d) = &decision.drain {
                outln!(
                    "  drain: remove {} worker(s) via {:?}, timeout {}, on timeout {:?}",
                    d.remove,
                    d.method,
                    humantime::format_duration(d.timeout),
                    d.on_timeout
                );
            }
        }
    }
    Ok(0)
}
