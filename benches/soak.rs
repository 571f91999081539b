//! Soak: 1,000 pools on fake sources and a fake actuator, ticking at 10 s through the daemon's
//! real `Controller` (engine, status board, the state file and `/status` written every tick,
//! metrics into a Prometheus recorder rendered once per simulated minute).
//!
//! The run has a warm-up, then the measured simulated day (8,640 ticks). The warm-up is one
//! period of the fake workload (a day, `SOAK_WARM_UP_HOURS`): by then every pool has met every
//! phase of its demand, so every decision path it will take exists. A pool's first scale-down,
//! first cooldown, first rate limit each create state that then lives as long as the pool (an
//! `actuations_total` or `decisions_total` series for the new outcome or reason, its last
//! actuation on `/status`): memory that fills once is not growth. The figure after one hour is
//! printed as well. RSS is printed at the first tick, after one hour,
//! at the end of the warm-up and every few hours of the day, with glibc's own account of the
//! heap (live bytes, free bytes kept in the arenas, mmapped bytes) and the metric series count,
//! which together tell a leak from a structure filling up. Then the tick and scrape percentiles.
//!
//! `cargo bench --bench soak` (optimised build). `SOAK_POOLS`, `SOAK_HOURS` and `SOAK_WARM_UP_HOURS`
//! change the size.
//! A bench, not a test: the figures go into the README's performance table.

// Measures wall time (and times out children): the one thing the clock ban is not about.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
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
/// Pools that have scaled up at least once, and down at least once (the warm-up's end).
static SCALED_UP: AtomicU64 = AtomicU64::new(0);
static SCALED_DOWN: AtomicU64 = AtomicU64::new(0);

/// A pool that becomes whatever size it is told, at once (members `w0`..), and remembers
/// whether it has grown and shrunk yet.
#[derive(Default)]
struct InstantPool {
    size: AtomicU32,
    grown: AtomicBool,
    shrunk: AtomicBool,
}

#[async_trait]
impl Actuator for InstantPool {
    fn platform(&self) -> &'static str {
        "fake"
    }
    async fn status(&self) -> Result<PoolStatus, ActuatorError> {
        let size = self.size.load(Ordering::Relaxed);
        Ok(PoolStatus {
            desired: size,
            ready: size,
            min: None,
            max: None,
            // Named members, as a real platform lists them: without them a scale-down has no
            // victim to remove and would never happen.
            members: (0..size).map(|k| Member::new(format!("w{k}"))).collect(),
            ..PoolStatus::default()
        })
    }
    async fn scale_to(&self, target: u32, _victims: &[Member]) -> Result<(), ActuatorError> {
        let before = self.size.swap(target, Ordering::Relaxed);
        SCALE_CALLS.fetch_add(1, Ordering::Relaxed);
        let (flag, count) = if target > before {
            (&self.grown, &SCALED_UP)
        } else {
            (&self.shrunk, &SCALED_DOWN)
        };
        if target != before && !flag.swap(true, Ordering::Relaxed) {
            count.fetch_add(1, Ordering::Relaxed);
        }
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
        let pool = InstantPool::default();
        pool.size.store(2, Ordering::Relaxed);
        Ok(Arc::new(pool))
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

/// glibc's own account (mallinfo2(3)): bytes in live blocks, free bytes kept inside the arenas
/// (fragmentation), and bytes in mmapped blocks; tells a leak from a fragmented heap.
fn heap_breakdown() -> String {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let m = unsafe { libc::mallinfo2() };
        let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
        format!(
            "heap: {:.1} MiB live, {:.1} MiB free in arenas, {:.1} MiB mmapped",
            mib(m.uordblks),
            mib(m.fordblks),
            mib(m.hblkhd)
        )
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    String::from("heap: n/a")
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
        let hour = 3600 / TICK_SECS;
        let day_ticks = hours * hour;
        let mut durations = Vec::with_capacity(day_ticks as usize);
        let mut scrapes = Vec::new();
        let (mut rss_start, mut rss_hour) = (0, 0);
        // Set at the warm-up's end: (its tick, RSS).
        let mut warm: Option<(i64, u64)> = None;
        let mut day_wall = None;
        let wall = Instant::now();
        let mut tick = 0;
        let warm_up_hours: i64 = std::env::var("SOAK_WARM_UP_HOURS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if bench { 24 } else { 1 });
        let warm_up = warm_up_hours.max(1) * hour;
        loop {
            if let Some((from, _)) = warm
                && tick >= from + day_ticks
            {
                break;
            }
            let now = Timestamp((START + tick * TICK_SECS) * 1000);
            clock.0.store(now.0, Ordering::Relaxed);
            let started = Instant::now();
            controller.tick(now, true).await;
            if warm.is_some() {
                durations.push(started.elapsed());
            }
            // A scrape at Prometheus's default `scrape_interval` (1m, prometheus.io/docs/
            // prometheus/latest/configuration/configuration/), timed on its own; a /status
            // read every tick.
            if tick % SCRAPE_EVERY_TICKS == 0 {
                let started = Instant::now();
                let _ = handle.render();
                if warm.is_some() {
                    scrapes.push(started.elapsed());
                }
            }
            let _ = serde_json::to_vec(&*board.read().unwrap());
            if tick == 0 {
                rss_start = rss_kib();
            }
            if tick == hour {
                rss_hour = rss_kib();
            }
            let label = match warm {
                None if tick == warm_up => {
                    warm = Some((tick, rss_kib()));
                    day_wall = Some(Instant::now());
                    Some(format!(
                        "warm-up over at {warm_up_hours} h ({} pools have scaled up, {} down)",
                        SCALED_UP.load(Ordering::Relaxed),
                        SCALED_DOWN.load(Ordering::Relaxed)
                    ))
                }
                Some((from, _)) if (tick - from) % (6 * hour) == 0 && tick > from => {
                    Some(format!("day + {:>2} h", (tick - from) / hour))
                }
                None if tick == hour => Some("1 h".to_string()),
                _ => None,
            };
            // The curve, not only its ends: a bounded structure filling up levels off, a leak
            // does not. With it, what could hold the growth: the metric series (pools × label
            // values seen so far), the engine memory (the state file is all of it) and the heap.
            if let Some(label) = label {
                let series = handle
                    .render()
                    .lines()
                    .filter(|l| !l.starts_with('#'))
                    .count();
                let state = std::fs::metadata(dir.path().join("state.json")).map_or(0, |m| m.len());
                println!(
                    "  {label}: RSS {:.1} MiB ({}), {series} metric series, state file {:.1} MiB",
                    rss_kib() as f64 / 1024.0,
                    heap_breakdown(),
                    state as f64 / (1024.0 * 1024.0)
                );
            }
            tick += 1;
        }
        let rss_end = rss_kib();
        let (warm_tick, rss_warm) = warm.expect("the loop ends only after the warm-up");
        durations.sort();
        let growth = |from: u64| (rss_end as f64 - from as f64) / from.max(1) as f64 * 100.0;
        println!(
            "soak: {pools} pools; warm-up {:.1} h simulated, then {day_ticks} ticks of {TICK_SECS}s ({hours} h simulated) in {:.0} s wall ({:.0} s in all)",
            warm_tick as f64 / hour as f64,
            day_wall.map_or(0.0, |w| w.elapsed().as_secs_f64()),
            wall.elapsed().as_secs_f64()
        );
        println!(
            "RSS: {:.1} MiB after the first tick, {:.1} MiB after 1 h, {:.1} MiB after the warm-up, {:.1} MiB at the end",
            rss_start as f64 / 1024.0,
            rss_hour as f64 / 1024.0,
            rss_warm as f64 / 1024.0,
            rss_end as f64 / 1024.0
        );
        println!(
            "RSS growth over the day: {:+.2} % (since 1 h: {:+.2} %, since the first tick: {:+.2} %)",
            growth(rss_warm),
            growth(rss_hour),
            growth(rss_start)
        );
        println!(
            "tick (the day): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
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
        let (up, down) = (SCALED_UP.load(Ordering::Relaxed), SCALED_DOWN.load(Ordering::Relaxed));
        println!(
            "resizes: {resizes} ({:.1} per pool); {up} pools scaled up, {down} down",
            resizes as f64 / pools as f64
        );
        assert!(
            up >= pools as u64 && down >= pools as u64 / 2,
            "the pools did not follow their demand both ways"
        );
        controller.shutdown(Duration::from_secs(1)).await;
    });
}
