//! End to end with a real Spark standalone cluster on a moto Auto Scaling group
//! (tests/peers/spark.sh for Spark itself, tests/peers/moto.sh): the built `poolpilot run` binary
//!
//! 1. scales the group up for apps beyond capacity, one worker per step and never past `max`;
//! 2. after a `kill -9` and a restart on the same state file, keeps the scale-up cooldown (no
//!    extra actuation) and the spend it had accrued;
//! 3. once the short apps finish, scales down after stabilization by decommissioning and
//!    terminating the idle workers, never the one running the long app, which completes;
//! 4. exits 0 on SIGTERM;
//! 5. decision parity: a second pool in shadow mode rides along, everything goes to `--record`,
//!    and `poolpilot simulate --check-decisions` replays the recording through the engine with
//!    0 mismatches (both pools, across the `kill -9`); the replay shows both pools' prices.
//!
//! The instance agent in tests/support/agent.rs plays EC2: instances boot Spark workers on their
//! (loopback) private IPs, terminated ones take their worker with them.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use poolpilot::time::Timestamp;
use support::agent::InstanceAgent;
use support::daemon::{Daemon, tick_settings};
use support::moto::{AWS_ENV, loopback_group};
use support::spark::{SparkMaster, master_json, submit_sleepy};
use support::wait_until;

const SCALE_UP_COOLDOWN_SECS: u64 = 20;
/// Long enough to outlive the short apps, the stabilization window and the drains.
const LONG_APP_SECS: u32 = 190;
const SHORT_APP_SECS: u32 = 20;

fn policy(master_web: &str, group: &str, endpoint: &str) -> String {
    format!(
        "pool: spark-moto\n\
         signals:\n  - spark: {{ master: \"{master_web}\", cores_per_waiting_app: 2, http: {{ timeout: 2s }} }}\n    per_worker: 1\n\
         workers:\n  aws_asg: {{ group: {group}, region: us-east-1, endpoint_url: \"{endpoint}\" }}\n\
         bounds: {{ min: 1, max: 3 }}\nboot_time: 5s\n\
         scale_up: {{ stabilization: 0s, cooldown: {SCALE_UP_COOLDOWN_SECS}s, max_step: {{ workers: 1, period: 1s, select: min }} }}\n\
         scale_down: {{ stabilization: 15s, cooldown: 0s, drain: {{ method: spark, timeout: 3m, on_timeout: keep }} }}\n\
         cost: {{ per_worker_hour: 3600 }}\n\
         on_missing_signal: {{ hold_for: 10m }}\n"
    )
}

/// The same group, in shadow mode, with other rules: decided on its would-be pool, never written.
fn shadow_policy(master_web: &str, group: &str, endpoint: &str) -> String {
    format!(
        "pool: spark-shadow\nmode: shadow\n\
         signals:\n  - spark: {{ master: \"{master_web}\", cores_per_waiting_app: 2, http: {{ timeout: 2s }} }}\n    per_worker: 1\n\
         workers:\n  aws_asg: {{ group: {group}, region: us-east-1, endpoint_url: \"{endpoint}\" }}\n\
         bounds: {{ min: 1, max: 6 }}\nboot_time: 30s\n\
         scale_up: {{ cooldown: 5s }}\n\
         scale_down: {{ stabilization: 10s, drain: {{ method: spark }} }}\n\
         cost: {{ per_worker_hour: 1.5 }}\n"
    )
}

/// The state of the active app named `name` at the master.
async fn app_state(http: &reqwest::Client, web: &str, name: &str) -> Option<String> {
    let json = master_json(http, web).await?;
    json["activeapps"]
        .as_array()?
        .iter()
        .find(|a| a["name"] == name)
        .and_then(|a| a["state"].as_str().map(str::to_owned))
}

async fn alive_workers(http: &reqwest::Client, web: &str) -> usize {
    master_json(http, web)
        .await
        .and_then(|j| j["aliveworkers"].as_u64())
        .unwrap_or(0) as usize
}

/// Executors on the worker whose host is `host`, from the worker's own UI (found at the master).
async fn executors_on(http: &reqwest::Client, web: &str, host: &str) -> usize {
    let Some(json) = master_json(http, web).await else {
        return 0;
    };
    let Some(ui) = json["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|w| w["host"] == host && w["state"] == "ALIVE")
        .and_then(|w| w["webuiaddress"].as_str().map(str::to_owned))
    else {
        return 0;
    };
    match master_json(http, &ui).await {
        Some(w) => w["executors"].as_array().map_or(0, Vec::len),
        None => 0,
    }
}

fn money(status: &serde_json::Value) -> f64 {
    status["pools"][0]["spend"]["money_total"].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_on_an_asg_scales_up_survives_kill9_and_drains_only_idle_workers() {
    let peers = [
        "POOLPILOT_TEST_AWS_ENDPOINT",
        "SPARK_HOME",
        "SPARK_SUBMIT",
        "SPARK_SLEEPY_APP",
        "SPARK_PYTHON",
    ]
    .map(support::peer);
    let [
        Some(endpoint),
        Some(spark_home),
        Some(submit),
        Some(app),
        Some(python),
    ] = peers
    else {
        return;
    };
    let started = Timestamp::now();
    let http = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    // 127.0.0.x is the shared Spark workers'; one /24 per run so reruns never collide.
    let octet = (10 + pid % 240) as u8;
    let group = format!("pp-spark-moto-{pid}");

    let master = SparkMaster::start(&spark_home, dir.path()).await;
    loopback_group(&endpoint, &group, octet, 3).await;
    let agent = InstanceAgent::start(&endpoint, &group, &spark_home, &master, dir.path());
    assert!(
        wait_until(Duration::from_secs(120), || async {
            alive_workers(&http, &master.web).await == 1
        })
        .await,
        "the first instance's worker registers"
    );
    let (busy_id, busy_ip) = agent.snapshot().booted[0].clone();
    assert!(busy_ip.starts_with(&format!("127.0.{octet}.")), "{busy_ip}");

    // The long app takes the only core: its executor runs on the first instance.
    let submit_app = |name: &str, secs| {
        submit_sleepy(&submit, &app, &python, &master.url, dir.path(), name, secs)
    };
    let mut long = submit_app("pp-long", LONG_APP_SECS);
    assert!(
        wait_until(Duration::from_secs(120), || async {
            executors_on(&http, &master.web, &busy_ip).await == 1
        })
        .await,
        "the long app's executor starts on {busy_ip}"
    );
    let long_started = Timestamp::now();
    assert_eq!(
        app_state(&http, &master.web, "pp-long").await.as_deref(),
        Some("RUNNING")
    );

    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("pool.yaml"),
        policy(&master.web, &group, &endpoint),
    )
    .unwrap();
    std::fs::write(
        policies.join("shadow.yaml"),
        shadow_policy(&master.web, &group, &endpoint),
    )
    .unwrap();
    let recording = dir.path().join("traffic.jsonl");
    let record_args = ["--record", recording.to_str().unwrap()];
    let validate = std::process::Command::new(env!("CARGO_BIN_EXE_poolpilot"))
        .arg("validate")
        .arg(&policies)
        .output()
        .unwrap();
    assert!(validate.status.success(), "{validate:?}");
    let settings = tick_settings(&policies, &dir.path().join("state/state.json"));
    let start_daemon =
        || Daemon::start_with_env(dir.path(), "daemon", &settings, &record_args, &AWS_ENV);

    // 1. Demand 1 core in use: the group stays at 1.
    let mut daemon = start_daemon();
    daemon.wait_ready(Duration::from_secs(30)).await;
    let status = daemon.status().await;
    assert_eq!(status["pools"][0]["current"], 1, "{status}");
    assert_eq!(status["pools"][0]["signals"][0]["demand"], 1.0, "{status}");

    // 2. Two more apps wait: demand 1 + 2×2 = 5 > max 3; one worker per step.
    let mut shorts = [
        submit_app("pp-short-a", SHORT_APP_SECS),
        submit_app("pp-short-b", SHORT_APP_SECS),
    ];
    assert!(
        wait_until(Duration::from_secs(90), || async {
            agent.snapshot().desired_now() == 2
        })
        .await,
        "scale-up to 2: {:?}\n{}",
        agent.snapshot(),
        daemon.log_text()
    );
    let two_at = agent.snapshot().desired.last().unwrap().0;
    assert!(
        wait_until(Duration::from_secs(30), || async {
            let status = daemon.status().await;
            status["pools"][0]["reasons"]
                .to_string()
                .contains("bound_max")
        })
        .await,
        "both apps waiting: demand 5 is bounded by max 3: {}",
        daemon.status().await
    );
    let status = daemon.status().await;
    assert_eq!(status["pools"][0]["last_actuation"]["outcome"], "ok");
    let spent_before = money(&status);
    assert!(spent_before > 0.0, "{status}");

    // 3. kill -9 inside the cooldown, restart on the same state file: no extra actuation until
    //    the cooldown (counted from before the crash) has passed; the spend carries over.
    daemon.kill9();
    let mut daemon = start_daemon();
    daemon.wait_ready(Duration::from_secs(30)).await;
    let status = daemon.status().await;
    assert_eq!(status["state"]["loaded"], "ok", "{status}");
    assert!(money(&status) >= spent_before, "spend restored: {status}");
    let reasons = status["pools"][0]["reasons"].to_string();
    assert!(
        reasons.contains("cooldown"),
        "the restored cooldown holds: {reasons}"
    );
    assert_eq!(
        agent.snapshot().desired_now(),
        2,
        "no extra actuation after the restart"
    );
    assert!(
        wait_until(Duration::from_secs(90), || async {
            agent.snapshot().desired_now() == 3
        })
        .await,
        "scale-up to 3 after the cooldown: {}",
        daemon.log_text()
    );
    let three_at = agent.snapshot().desired.last().unwrap().0;
    let waited = three_at.since(two_at);
    assert!(
        waited >= Duration::from_secs(SCALE_UP_COOLDOWN_SECS - 2),
        "the second step waited out the cooldown across the restart: {waited:?}"
    );
    assert!(
        wait_until(Duration::from_secs(120), || async {
            alive_workers(&http, &master.web).await == 3
        })
        .await,
        "the new instances' workers register"
    );

    // 4. The short apps finish; after the 15 s stabilization the idle workers are drained
    //    (decommissioned at the master) and exactly their instances terminated.
    for short in &mut shorts {
        let exit = tokio::time::timeout(Duration::from_secs(180), short.wait())
            .await
            .expect("a short app finishes")
            .unwrap();
        assert!(exit.success(), "short app exit {exit:?}");
    }
    let shorts_done = Timestamp::now().since(long_started);
    assert!(
        wait_until(Duration::from_secs(120), || async {
            agent.snapshot().desired_now() == 1
        })
        .await,
        "scale-down to 1: {:?}\n{}",
        agent.snapshot(),
        daemon.log_text()
    );
    let down_after = Timestamp::now().since(long_started);
    assert!(
        wait_until(Duration::from_secs(10), || async {
            agent.snapshot().terminated.len() == 2
        })
        .await,
        "{:?}",
        agent.snapshot()
    );
    let log = agent.snapshot();
    let drains: Vec<String> = daemon
        .log_text()
        .lines()
        .filter(|l| l.contains("drain finished") || l.contains("terminating"))
        .map(str::to_owned)
        .collect();
    let terminated: BTreeSet<&String> = log.terminated.iter().map(|(id, _)| id).collect();
    assert!(
        !log.master_states[&busy_ip].contains("DECOMMISSIONED") && !terminated.contains(&busy_id),
        "the busy worker {busy_id} ({busy_ip}) was never touched: {log:?}\n{drains:#?}"
    );
    let idle: BTreeSet<&String> = log.booted[1..].iter().map(|(id, _)| id).collect();
    assert_eq!(terminated, idle, "exactly the idle instances went: {log:?}");
    assert!(
        log.terminated
            .iter()
            .all(|(_, state)| state == "DECOMMISSIONED"),
        "each was decommissioned at the master before its instance was terminated: {log:?}"
    );
    assert!(
        long.try_wait().unwrap().is_none(),
        "the long app still runs after the scale-down (else this test proves nothing)"
    );
    assert_eq!(executors_on(&http, &master.web, &busy_ip).await, 1);
    assert!(
        log.desired.iter().all(|(_, d)| *d <= 3),
        "never past max: {log:?}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || async {
            daemon.log_text().contains("scaled the pool down")
        })
        .await,
        "{}",
        daemon.log_text()
    );

    // 5. The long app completes on its untouched worker; the group stays at its minimum.
    let exit = tokio::time::timeout(Duration::from_secs(240), long.wait())
        .await
        .expect("the long app finishes")
        .unwrap();
    assert!(exit.success(), "long app exit {exit:?}");
    let status = daemon.status().await;
    assert_eq!(status["pools"][0]["current"], 1, "{status}");
    let desired: Vec<i32> = agent.snapshot().desired.iter().map(|d| d.1).collect();
    let timeline: Vec<String> = agent
        .snapshot()
        .desired
        .iter()
        .map(|(at, d)| format!("{d}@{:.0}s", at.as_secs_f64() - long_started.as_secs_f64()))
        .collect();
    assert_eq!(desired.first(), Some(&1));
    assert_eq!(desired.iter().max(), Some(&3), "{desired:?}");

    // 6. SIGTERM: clean exit.
    let status = daemon.status().await;
    let shadow = &status["pools"][1];
    assert_eq!(shadow["actuation"], "shadow", "{status}");
    assert!(shadow["shadow"]["would_be_workers"].is_u64(), "{status}");
    let exit = daemon.stop().await;
    assert!(exit.success(), "exit {exit:?}");

    // 7. Decision parity: every recorded decision of both pools, replayed, is the same.
    let simulate = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_poolpilot"))
            .args(["simulate", "--no-progress", "--trace"])
            .arg(&recording)
            .args(["--trace-format", "recording"])
            .args(extra)
            .output()
            .unwrap()
    };
    let check = simulate(&["--check-decisions"]);
    let out = String::from_utf8_lossy(&check.stdout).into_owned();
    let parity = out.lines().next().unwrap_or("").to_string();
    assert!(
        check.status.success() && parity.ends_with(", 2 pools, 0 mismatches"),
        "{parity}\n{out}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let ticks: usize = parity
        .trim_start_matches("decision parity: ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(ticks >= 100, "{parity}");
    let replay = simulate(&[]);
    let text = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(
        text.contains("== pool spark-moto (enforce): 1 units/worker, boot 5s, 3600/worker-hour")
            && text.contains(
                "== pool spark-shadow (shadow): 1 units/worker, boot 30s, 1.5/worker-hour"
            ),
        "{text}"
    );
    drop(agent);
    support::moto::delete_group(&endpoint, &group).await;
    eprintln!("daemon_spark_moto: {parity}");
    eprintln!(
        "daemon_spark_moto: desired {timeline:?} (from the long app's start), cooldown step {waited:?}, short apps done at {shorts_done:?}, scaled down {down_after:?} \
         into the {LONG_APP_SECS}s long app, whole test {:?}",
        Timestamp::now().since(started)
    );
}
