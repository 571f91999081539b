//! Replay speed: the whole KTH-SP2 trace (11 months, 28,467 jobs) at 10 s ticks through one
//! policy (`simulations/policies/kth-sp2.yaml`), trace already parsed. Target ≤ 0.1 s with the
//! default clock (quiet stretches skipped); the every-tick clock is measured beside it.
//! `cargo bench --bench simulate`. Needs ../shared/traces beside the clone; without it the
//! bench says so and measures nothing.

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use indicatif::ProgressBar;
use poolpilot::sim::autoscaler::EngineAutoscaler;
use poolpilot::sim::pool::PoolConfig;
use poolpilot::sim::pool::billing::Billing;
use poolpilot::sim::pool::workers::JobModel;
use poolpilot::sim::removal::Engine;
use poolpilot::sim::run::{Clock, replay_with};
use poolpilot::sim::trace::{CENTI, ReadOptions, TraceFormat, read_trace};

fn kth_one_policy(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let trace = root.join("../shared/traces/KTH-SP2-1996-2.1-cln.swf.gz");
    if !trace.exists() {
        eprintln!("NOTE: {} is absent; nothing measured", trace.display());
        return;
    }
    let workload = read_trace(&trace, TraceFormat::Swf, ReadOptions::default()).expect("KTH trace");
    let policy = poolpilot::policy::load_file(&root.join("simulations/policies/kth-sp2.yaml"))
        .expect("policy");
    let config = PoolConfig {
        capacity: 4 * CENTI,
        boot_ms: 60_000,
        model: JobModel::Slot,
        billing: Billing::default(),
        kill: Engine::Spark.kill(),
    };
    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    for (name, clock) in [
        (
            "kth-sp2 whole trace, 10 s ticks, one policy (skip quiet)",
            Clock::SkipQuiet,
        ),
        (
            "kth-sp2 whole trace, 10 s ticks, one policy (every tick)",
            Clock::EveryTick,
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut controller = EngineAutoscaler::new(&policy, 10_000);
                let result = replay_with(
                    &workload.jobs,
                    config,
                    &mut controller,
                    &ProgressBar::hidden(),
                    clock,
                );
                assert_eq!(result.totals.unfinished, 0);
                result
            })
        });
    }
    group.finish();
}

criterion_group!(benches, kth_one_policy);
criterion_main!(benches);
