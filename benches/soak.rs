//! Soak: 1,000 pools on fake sources and a fake actuator, ticking through a simulated day at a
//! 10 s tick (8,640 ticks) through the daemon's real `Controller` (engine, status board, the
//! state file and `/status` written every tick, metrics into a Prometheus recorder rendered once
//! per simulated minute). Prints the resident set at start, after a one-hour warm-up (when every
//! stabilization window, rate-limit period and flap budget has filled) and at the end, and the
//! tick and scrape time percentiles.
//!
//! `cargo bench --bench soak` (optimised build). `SOAK_POOLS` and `SOAK_HOURS` change the size.
//! A bench, not a test: the figures go into the README's performance table.

// Measures wall time (and times out children): the one thing the clock ban is not about.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use poolpilot::actuators::{Actuator, ActuatorError, Member, PoolStatus};
use poolpilot::daemon::controller::{Clock, Controller, ControllerConfig};
use poolpilot::daemon::pools::Wiring;
use poolpilot::daemon::status::DaemonStatus;
use poolpilot::drain::{Drainer, NoDrain};
use poolpilot::policy::{self, Policy, SignalSpec};
use poolpilot::sources::{MetricSource, Reading, SourceError};
use poolpilot::time::Timestamp;

const TICK_SECS: i64 = 10;
const START: i64 = 1_800_000_000;
/// One `/metrics` render per minute of simulated time.
const SCRAPE_EVERY_TICKS: i64 = 60 / TICK_SECS;

/// The simulated time, shared by the clock and the sources.
struct SimClock(AtomicI64);

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::Relaxed))
    }
}

/// Demand of pool `index`: a daily wave with its own phase and size, plus a burst every few hours.
struct WaveSource {
    index: u64,
    clock: Arc<SimClock>,
    name: String,
}

#[async_trait]
impl MetricSource for WaveSource {
    async fn poll(&self) -> Result<Reading, SourceError> {
        let secs = self.clock.now().0 as f64 / 1000.0;
        let phase = (self.index % 24) as f64 / 24.0;
        let day = (secs / 86_400.0 + phase) * std::f64::consts::TAU;
        let base = 4.0 + (self.index % 7) as f64 * 3.0;
        let burst = if (secs as i64 / 600 + self.index as i64) % 17 == 0 {
            base
        } else {
            0.0
        };
        Ok(Reading {
            labels: Vec::new(),
            demand: (base * (1.0 + 0.8 * day.sin()) + burst).max(0.0),
            raw: vec![],
        })
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// Resizes done by every pool, so the run shows it really scaled.
static SCALE_CALLS: AtomicU64 = AtomicU64::new(0);

/// A pool that becomes whatever size it is told, at once, and remembers nothing else.
struct InstantPool(AtomicU32);

#[async_trait]
impl Actuator for InstantPool {
    fn platform(&self) -> &'static str {
        "fake"
    }
    async fn status(&self) -> Result<PoolStatus, ActuatorError> {
        let size = self.0.load(Ordering::Relaxed);
        Ok(PoolStatus {
            desired: size,
            ready: size,
            min: None,
            max: None,
            members: Vec::new(),
            ..PoolStatus::default()
        })
    }
    async fn scale_to(&self, target: u32, _victims: &[Member]) -> Result<(), ActuatorError> {
        self.0.store(target, Ordering::Relaxed);
        SCALE_CALLS.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

struct FakeWiring {
    clock: Arc<SimClock>,
}

#[async_trait]
impl Wiring for FakeWiring {
    fn source(&self, spec: &SignalSpec) -> Arc<dyn MetricSource> {
        let master = spec.spark.as_ref().map_or("", |s| s.master.as_str());
        let index = master
            .trim_start_matches("http://pool-")
            .trim_end_matches(":8080")
            .parse()
            .unwrap_or(0);
        Arc::new(WaveSource {
            index,
            clock: self.clock.clone(),
            name: format!("wave {master}"),
        })
    }
    async fn actuator(&self, _policy: &Policy) -> Result<Arc<dyn Actuator>, ActuatorError> {
        Ok(Arc::new(InstantPool(AtomicU32::new(2))))
    }
    fn drainer(&self, _policy: &Policy) -> Arc<dyn Drainer> {
        Arc::new(NoDrain)
    }
}

fn policies(n: usize) -> Vec<Policy> {
    (0..n)
        .map(|i| {
            let text = format!(
                "pool: pool-{i}\nsignals:\n  - spark: {{ master: \"http://pool-{i}:8080\", cores_per_waiting_app: 2 }}\n    per_worker: 2\n\
                 workers:\n  kubernetes: {{ namespace: ns, deployment: pool-{i} }}\n\
                 bounds: {{ min: 1, max: 40 }}\nscale_up: {{ cooldown: 30s }}\n\
                 scale_down: {{ stabilization: 5m, cooldown: 1m, drain: {{ method: none }} }}\n\
                 cost: {{ per_worker_hour: 0.5 }}\nflap_budget: {{ max_reversals_per_hour: 6 }}\n"
            );
            policy::load_str(&text, &format!("pool-{i}.yaml")).expect("valid policy")
        })
        .collect()
}

/// Resident set in KiB, from /proc/self/status.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this once without it: then
    // a small smoke run (20 pools, 2 h) that must still scale.
    let bench = std::env::args().any(|a| a == "--bench");
    let (default_pools, default_hours) = if bench { (1000, 24) } else { (20, 2) };
    let pools: usize = std::env::var("SOAK_POOLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_pools);
    let hours: i64 = std::env::var("SOAK_HOURS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_hours);
    // As `poolpilot run` does before its runtime starts.
    if std::env::var_os("SOAK_DEFAULT_MALLOC").is_none() {
        poolpilot::daemon::heap::bound_heap_growth();
    }
    let handle = poolpilot::telemetry::prometheus_builder()
        .install_recorder()
        .expect("the metrics recorder");
    poolpilot::telemetry::describe_metrics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temp dir");
    runtime.block_on(async {
        let clock = Arc::new(SimClock(AtomicI64::new(START * 1000)));
        let cfg = ControllerConfig {
            dry_run: false,
            global_budget_per_hour: None,
            state_path: dir.path().join("state.json"),
            tick: Duration::from_secs(TICK_SECS as u64),
            leader_election: false,
        };
        let board = Arc::new(RwLock::new(DaemonStatus::default()));
        let wiring = Arc::new(FakeWiring { clock: clock.clone() });
        let mut controller =
            Controller::start(cfg, wiring, clock.clone(), policies(pools), None, board.clone()).await;
        let ticks = hours * 3600 / TICK_SECS;
        let warm_up = 3600 / TICK_SECS;
        let mut durations = Vec::with_capacity(ticks as usize);
        let mut scrapes = Vec::new();
        let (mut rss_start, mut rss_warm) = (0, 0);
        let wall = Instant::now();
        for tick in 0..ticks {
            let now = Timestamp((START + tick * TICK_SECS) * 1000);
            clock.0.store(now.0, Ordering::Relaxed);
            let started = Instant::now();
            controller.tick(now, true).await;
            durations.push(started.elapsed());
            // A scrape at Prometheus's default `scrape_interval` (1m, prometheus.io/docs/
            // prometheus/latest/configuration/configuration/), timed on its own; a /status
            // read every tick.
            if tick % SCRAPE_EVERY_TICKS == 0 {
                let started = Instant::now();
                let _ = handle.render();
                scrapes.push(started.elapsed());
            }
            let _ = serde_json::to_vec(&*board.read().unwrap());
            if tick == 0 {
                rss_start = rss_kib();
            }
            if tick == warm_up {
                rss_warm = rss_kib();
            }
            // The curve, not only its ends: a bounded structure filling up levels off, a leak
            // does not.
            // With it, what could hold the growth: the metric series (pools × label values
            // seen so far) and the engine memory (the state file is all of it).
            if tick > 0 && (tick == warm_up || tick % (6 * 3600 / TICK_SECS) == 0) {
                let series = handle
                    .render()
                    .lines()
                    .filter(|l| !l.starts_with('#'))
                    .count();
                let state = std::fs::metadata(dir.path().join("state.json")).map_or(0, |m| m.len());
                println!(
                    "  {:>3} h: RSS {:.1} MiB, {series} metric series, state file {:.1} MiB",
                    tick * TICK_SECS / 3600,
                    rss_kib() as f64 / 1024.0,
                    state as f64 / (1024.0 * 1024.0)
                );
            }
        }
        let rss_end = rss_kib();
        durations.sort();
        let growth = |from: u64| (rss_end as f64 - from as f64) / from.max(1) as f64 * 100.0;
        println!(
            "soak: {pools} pools, {ticks} ticks of {TICK_SECS}s ({hours} h simulated) in {:.0} s wall",
            wall.elapsed().as_secs_f64()
        );
        println!(
            "RSS: {:.1} MiB after the first tick, {:.1} MiB after 1 h warm-up, {:.1} MiB at the end",
            rss_start as f64 / 1024.0,
            rss_warm as f64 / 1024.0,
            rss_end as f64 / 1024.0
        );
        println!(
            "RSS growth: {:+.2} % since warm-up, {:+.2} % since the first tick",
            growth(rss_warm),
            growth(rss_start)
        );
        println!(
            "tick: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(&durations, 0.5).as_secs_f64() * 1e3,
            percentile(&durations, 0.99).as_secs_f64() * 1e3,
            durations.last().unwrap().as_secs_f64() * 1e3
        );
        scrapes.sort();
        println!(
            "/metrics render ({} scrapes, one per simulated minute): p50 {:.1} ms, p99 {:.1} ms",
            scrapes.len(),
            percentile(&scrapes, 0.5).as_secs_f64() * 1e3,
            percentile(&scrapes, 0.99).as_secs_f64() * 1e3
        );
        let resizes = SCALE_CALLS.load(Ordering::Relaxed);
        println!("resizes: {resizes} ({:.1} per pool)", resizes as f64 / pools as f64);
        assert!(resizes >= pools as u64, "the pools did not follow their demand");
        controller.shutdown(Duration::from_secs(1)).await;
    });
}
