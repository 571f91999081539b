//! `poolpilot status [--url URL] [--watch] [-o table|json]`: what a running daemon is doing,
//! read from its `/status` (`daemon::status::DaemonStatus`). The document is read as loose JSON,
//! so a daemon one version ahead or behind (a field added or gone) still renders.

use std::fmt::Write as _;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::Value;

use super::daemon_url::DaemonUrl;
use crate::time::Timestamp;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub daemon: DaemonUrl,
    /// Redraw every `--interval` until interrupted.
    #[arg(long, short = 'w')]
    pub watch: bool,
    /// Time between redraws with `--watch`.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// `table` for people, `json` for scripts (the daemon's document as it came).
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// Exit 0 after a successful read, 1 when the daemon cannot be read.
pub async fn run(args: StatusArgs) -> anyhow::Result<i32> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let url = format!("{}/status", args.daemon.resolve()?);
    loop {
        let text = match fetch(&http, &url).await {
            Ok(doc) => match args.output {
                Output::Json => serde_json::to_string_pretty(&doc)? + "\n",
                Output::Table => render(&doc, Timestamp::now()),
            },
            Err(e) if !args.watch => {
                eprintln!("error: cannot read {url}: {e:#}");
                return Ok(1);
            }
            Err(e) => format!("cannot read {url}: {e:#}\n"),
        };
        if !args.watch {
            out!("{text}");
            return Ok(0);
        }
        // Clear the screen and home the cursor, as `watch` does.
        out!("\x1b[2J\x1b[H{text}");
        tokio::time::sleep(args.interval).await;
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let response = http.get(url).send().await?.error_for_status()?;
    Ok(response.json().await?)
}

/// The table: one header line for the daemon, one row per pool, then held pools' reasons.
pub fn render(doc: &Value, now: Timestamp) -> String {
    let mut out = String::new();
    let last_tick = at(&doc["last_tick_at"])
        .map(|t| format!("{} ago", age(now.since(t))))
        .unwrap_or_else(|| "never".into());
    let role = match (doc["leader_election"].as_bool(), doc["leader"].as_bool()) {
        (Some(true), Some(true)) => "leader",
        (Some(true), _) => "follower",
        _ => "single instance",
    };
    let _ = write!(
        out,
        "{role}{}, {} ticks, last tick {last_tick}",
        if doc["dry_run"].as_bool() == Some(true) {
            ", --dry-run"
        } else {
            ""
        },
        doc["ticks"].as_u64().unwrap_or(0),
    );
    if let Some(b) = doc["budget"].as_object() {
        let _ = write!(
            out,
            ", budget {}/h of {}/h",
            money(&b["spend_per_hour"]),
            money(&b["limit_per_hour"])
        );
    }
    out.push('\n');
    if let Some(n) = doc["policies"]["last_rejected"]
        .as_array()
        .filter(|e| !e.is_empty())
    {
        let _ = writeln!(
            out,
            "policy reload rejected ({} errors): the last good set stays",
            n.len()
        );
    }

    let header = [
        "POOL",
        "MODE",
        "ACTUATION",
        "SIZE",
        "READY",
        "REASON",
        "SIGNALS",
        "SPEND/H",
        "SPENT",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    let mut notes = Vec::new();
    for p in doc["pools"].as_array().into_iter().flatten() {
        let pool = text(&p["pool"]);
        let size = match (p["current"].as_u64(), p["desired"].as_u64()) {
            (Some(c), Some(d)) if c == d => c.to_string(),
            (Some(c), Some(d)) => format!("{c} → {d}"),
            (None, Some(d)) => format!("? → {d}"),
            _ => "?".into(),
        };
        let reason = p["reasons"]
            .as_array()
            .and_then(|r| r.last())
            .map(|r| text(&r["stage"]))
            .unwrap_or_else(|| "-".into());
        let signals: Vec<String> = p["signals"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| signal_cell(s, now))
            .collect();
        let spend = &p["spend"];
        let per_hour = match spend["max_per_hour"].as_f64() {
            Some(_) => format!(
                "{} / {}",
                money(&spend["per_hour_now"]),
                money(&spend["max_per_hour"])
            ),
            None => money(&spend["per_hour_now"]),
        };
        rows.push(vec![
            pool.clone(),
            text(&p["mode"]),
            text(&p["actuation"]),
            size,
            p["ready"]
                .as_u64()
                .map_or_else(|| "?".into(), |r| r.to_string()),
            reason,
            if signals.is_empty() {
                "-".into()
            } else {
                signals.join(", ")
            },
            per_hour,
            money(&spend["money_total"]),
        ]);
        if let Some(why) = p["held_because"].as_str() {
            notes.push(format!("{pool}: held: {why}"));
        }
        if let Some(pause) = p
            .get("paused")
            .or_else(|| p.get("pause"))
            .filter(|v| !v.is_null())
        {
            notes.push(format!("{pool}: paused: {}", pause_text(pause)));
        }
        for problem in p["pause_problems"].as_array().into_iter().flatten() {
            notes.push(format!("{pool}: pause mark: {}", text(problem)));
        }
        if let Some(d) = p["drain_in_flight"].as_object() {
            notes.push(format!(
                "{pool}: draining {} → {}{}",
                d["from"],
                d["to"],
                if d["aborting"].as_bool() == Some(true) {
                    " (aborting: capacity needed again)"
                } else {
                    ""
                }
            ));
        }
        if let Some(last) = p["last_actuation"].as_object() {
            let at = at(&last["at"]).map_or_else(|| "?".into(), |t| age(now.since(t)));
            let outcome = text(&last["outcome"]);
            if outcome != "ok" && outcome != "dry_run" {
                notes.push(format!(
                    "{pool}: last actuation {} → {} {at} ago failed: {}",
                    last["from"],
                    last["to"],
                    last["error"].as_str().unwrap_or(&outcome)
                ));
            }
        }
    }
    table(&mut out, &rows);
    for n in notes {
        let _ = writeln!(out, "  {n}");
    }
    out
}

/// A `/status` time: RFC 3339 (`DaemonStatus` writes them so; `crate::time::rfc3339`).
fn at(v: &Value) -> Option<Timestamp> {
    v.as_str().and_then(|t| Timestamp::parse_rfc3339(t).ok())
}

fn signal_cell(s: &Value, now: Timestamp) -> String {
    let kind = text(&s["kind"]);
    match s["state"].as_str() {
        Some("fresh") => match s["age_seconds"].as_f64() {
            Some(a) => format!("{kind} {}", age(Duration::from_secs_f64(a.max(0.0)))),
            None => kind,
        },
        _ => {
            let since = at(&s["missing_since"]).map(|t| age(now.since(t)));
            let fault = s["fault"].as_str().unwrap_or("missing");
            match since {
                Some(a) => format!("{kind} {fault} {a}"),
                None => format!("{kind} {fault}"),
            }
        }
    }
}

/// A pause is shown as the daemon describes it: a string, or an object's `until`/`reason`.
fn pause_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| "-".into(), str::to_owned)
}

fn money(v: &Value) -> String {
    v.as_f64().map_or_else(|| "-".into(), |m| format!("{m:.2}"))
}

/// `42s`, `3m`, `2h5m`: seconds precision is noise in a table.
fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        _ => format!("{}h{}m", s / 3600, s % 3600 / 60),
    }
}

fn table(out: &mut String, rows: &[Vec<String>]) {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell}{}", " ".repeat(w - cell.chars().count())))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "leader": true, "leader_election": true, "dry_run": false, "tick_interval": "10s",
            "ticks": 42, "last_tick_at": "1970-01-01T00:16:40Z",
            "policies": { "pools": 2, "last_rejected": [] },
            "budget": { "limit_per_hour": 40.0, "spend_per_hour": 12.5, "desired_per_hour": 14.0 },
            "pools": [
                {
                    "pool": "trino-etl", "mode": "enforce", "actuation": "actuate",
                    "current": 3, "ready": 3, "desired": 5,
                    "reasons": [ { "stage": "raw", "text": "…" }, { "stage": "cooldown", "text": "…" } ],
                    "signals": [ { "index": 0, "kind": "trino", "state": "fresh", "age_seconds": 4.2 } ],
                    "spend": { "money_total": 3.25, "per_hour_now": 1.152, "max_per_hour": 12.0 },
                    "drain_in_flight": null,
                    "last_actuation": { "at": "1970-01-01T00:16:30Z", "from": 2, "to": 3, "outcome": "conflict", "error": "conflict: 409" }
                },
                {
                    "pool": "spark", "mode": "paused", "actuation": "paused",
                    "current": null, "ready": null, "desired": 2,
                    "held_because": "cannot read the pool's size: unreachable",
                    "reasons": [],
                    "signals": [ { "index": 0, "kind": "spark", "state": "missing", "missing_since": "1970-01-01T00:14:40Z", "fault": "timeout" } ],
                    "spend": { "money_total": 0.0, "per_hour_now": 0.0, "max_per_hour": null },
                    "pause": { "until": "2026-12-03T14:00:00Z", "reason": "maintenance" }
                }
            ]
        })
    }

    #[test]
    fn renders_one_row_per_pool_with_sizes_reasons_signals_and_spend() {
        let out = render(&doc(), Timestamp::from_secs(1_000));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "leader, 42 ticks, last tick 0s ago, budget 12.50/h of 40.00/h"
        );
        assert!(lines[1].starts_with("POOL "), "{out}");
        let etl = lines.iter().find(|l| l.starts_with("trino-etl")).unwrap();
        for cell in [
            "enforce",
            "actuate",
            "3 → 5",
            "cooldown",
            "trino 4s",
            "1.15 / 12.00",
            "3.25",
        ] {
            assert!(etl.contains(cell), "{cell} missing in {etl:?}");
        }
        let spark = lines.iter().find(|l| l.starts_with("spark")).unwrap();
        for cell in ["paused", "? → 2", "spark timeout 2m"] {
            assert!(spark.contains(cell), "{cell} missing in {spark:?}");
        }
        assert!(
            out.contains("spark: held: cannot read the pool's size"),
            "{out}"
        );
        assert!(
            out.contains("spark: paused: reason=maintenance until=2026-12-03T14:00:00Z"),
            "{out}"
        );
        assert!(
            out.contains("trino-etl: last actuation 2 → 3 10s ago failed: conflict: 409"),
            "{out}"
        );
    }

    #[test]
    fn a_run_time_pause_and_unreadable_marks_are_noted() {
        let mut d = doc();
        d["pools"][0]["paused"] = json!({
            "kind": "pin", "replicas": 4, "direction": null,
            "until": "2026-12-03T14:00:00.000Z", "source": "admin"
        });
        d["pools"][0]["pause_problems"] =
            json!(["poolpilot.io/paused-replicas: \"abc\" is not a replica count"]);
        let out = render(&d, Timestamp::from_secs(1_000));
        assert!(
            out.contains(
                "trino-etl: paused: kind=pin replicas=4 source=admin until=2026-12-03T14:00:00.000Z"
            ),
            "{out}"
        );
        assert!(
            out.contains("trino-etl: pause mark: poolpilot.io/paused-replicas"),
            "{out}"
        );
    }

    #[test]
    fn columns_line_up() {
        let out = render(&doc(), Timestamp::from_secs(1_000));
        let lines: Vec<&str> = out.lines().skip(1).take(3).collect();
        let col = |l: &str| {
            l.find("MODE")
                .or_else(|| l.find("enforce"))
                .or_else(|| l.find("paused"))
        };
        assert_eq!(col(lines[0]), col(lines[1]));
        assert_eq!(col(lines[1]), col(lines[2]));
    }

    /// The document as the daemon really writes it, so the two cannot drift apart (they did:
    /// `/status` moved to RFC 3339 times and this table kept reading epoch milliseconds).
    #[test]
    fn reads_the_times_the_daemon_writes() {
        let board = crate::daemon::status::DaemonStatus {
            ticks: 7,
            last_tick_at: Some(Timestamp::from_secs(990)),
            ..Default::default()
        };
        let doc = serde_json::to_value(&board).unwrap();
        let out = render(&doc, Timestamp::from_secs(1_000));
        assert!(out.contains("7 ticks, last tick 10s ago"), "{out}");
    }

    #[test]
    fn follower_and_no_tick_yet() {
        let out = render(
            &json!({ "leader": false, "leader_election": true, "ticks": 0, "pools": [] }),
            Timestamp::from_secs(5),
        );
        assert!(
            out.starts_with("follower, 0 ticks, last tick never\n"),
            "{out}"
        );
    }
}
