//! `poolpilot pause POOL [--replicas N] [--for 2h] [--direction in|out]` and
//! `poolpilot resume POOL`: the daemon's admin endpoint (`daemon::admin`), for an incident
//! without a policy edit. The daemon answers loopback callers, or any caller with the bearer
//! token its settings name (`admin_token_env`), sent here from `POOLPILOT_ADMIN_TOKEN`.

use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::Value;

use super::daemon_url::DaemonUrl;
use crate::daemon::admin::PauseRequest;

/// Where the daemon listens, and the token if it is not on this host.
#[derive(Debug, Args)]
pub struct Target {
    #[command(flatten)]
    pub daemon: DaemonUrl,
    /// Bearer token for a daemon on another host (its settings' `admin_token_env` variable).
    #[arg(long, env = "POOLPILOT_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The pool (its policy's `pool:` name).
    pub pool: String,
    /// Pin the pool to this many workers (KEDA's paused-replicas), even outside its bounds.
    #[arg(long, conflicts_with = "direction")]
    pub replicas: Option<u32>,
    /// Lapse by itself after this long (30m, 2h, 1d); without it, until `poolpilot resume`.
    #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub for_: Option<Duration>,
    /// Pause one direction only: `in` (no scale-down) or `out` (no scale-up).
    #[arg(long, value_enum)]
    pub direction: Option<PauseDirection>,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PauseDirection {
    /// No scale-down (KEDA's paused-scale-in).
    In,
    /// No scale-up (KEDA's paused-scale-out).
    Out,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The pool to resume (removes the pause set with `poolpilot pause`).
    pub pool: String,
    #[command(flatten)]
    pub target: Target,
}

/// Exit 0 when the daemon accepted, 1 otherwise (its message on stderr).
pub async fn pause(args: PauseArgs) -> anyhow::Result<i32> {
    let body = PauseRequest {
        replicas: args.replicas,
        for_: args.for_.map(|d| humantime::format_duration(d).to_string()),
        direction: args.direction.map(|d| match d {
            PauseDirection::In => "in".to_string(),
            PauseDirection::Out => "out".to_string(),
        }),
    };
    let answer = post(&args.target, &args.pool, "pause", &body).await?;
    let Some(doc) = answer else { return Ok(1) };
    let p = &doc["paused"];
    let mut line = format!("{}: paused ({}", args.pool, text(&p["kind"]));
    if let Some(n) = p["replicas"].as_u64() {
        line += &format!(" at {n}");
    }
    if let Some(d) = p["direction"].as_str() {
        line += &format!(", scale-{d} only");
    }
    match p["until"].as_str() {
        Some(until) => line += &format!(") until {until}"),
        None => line += ") until `poolpilot resume`",
    }
    outln!("{line}");
    if let Some(note) = doc["note"].as_str() {
        outln!("note: {note}");
    }
    Ok(0)
}

pub async fn resume(args: ResumeArgs) -> anyhow::Result<i32> {
    let answer = post(&args.target, &args.pool, "resume", &serde_json::json!({})).await?;
    let Some(doc) = answer else { return Ok(1) };
    if doc["resumed"].as_bool() == Some(true) {
        outln!("{}: resumed", args.pool);
    } else {
        outln!("{}: had no pause set with `poolpilot pause`", args.pool);
    }
    if let Some(note) = doc["note"].as_str() {
        outln!("note: {note}");
    }
    Ok(0)
}

/// The daemon's JSON answer, or `None` after printing its refusal.
async fn post(
    target: &Target,
    pool: &str,
    verb: &str,
    body: &impl serde::Serialize,
) -> anyhow::Result<Option<Value>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!("{}/admin/pools/{pool}/{verb}", target.daemon.resolve()?);
    let mut request = http.post(&url).json(body);
    if let Some(token) = &target.token {
        request = request.bearer_auth(token);
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot reach {url}: {e}");
            return Ok(None);
        }
    };
    let status = response.status();
    let doc: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let why = doc["error"].as_str().unwrap_or("no message");
        eprintln!("error: {verb} {pool}: {status}: {why}");
        return Ok(None);
    }
    Ok(Some(doc))
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| "-".into(), str::to_owned)
}
