//! One `engine::step` over 10,000 pools (target: ≤ 1 µs per pool decision on one core).
//! Run: `cargo bench --bench engine`; the per-pool figure is the reported time / 10,000.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use poolpilot::engine::{self, Memory, PoolObservation, Signal, WorkerCounts, World};
use poolpilot::time::Timestamp;

const POOLS: usize = 10_000;

fn bench_step(c: &mut Criterion) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/spark.yaml"))
        .unwrap();
    let template = poolpilot::policy::load_str(&text, "spark.yaml").unwrap();
    let policies: Vec<_> = (0..POOLS)
        .map(|i| {
            let mut p = engine::PoolRules::compile(&template);
            p.name = format!("pool-{i:05}");
            p
        })
        .collect();
    let mut memory = Memory::default();
    let tick = std::cell::Cell::new(0i64);
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(POOLS as u64));
    group.bench_function("step_10000_pools", |b| {
        // The world is built outside the measured part; only `step` is timed.
        let setup = || {
            tick.set(tick.get() + 1);
            let tick = tick.get();
            let now = Timestamp::from_secs(1_800_000_000 + tick * 10);
            // Demand varies per pool and tick so every stage does real work.
            let world = World {
                pools: (0..POOLS)
                    .map(|i| PoolObservation {
                        pauses: Vec::new(),
                        signals: vec![Signal::Value {
                            demand: ((i as i64 * 7 + tick * 13) % 240) as f64,
                            observed_at: now,
                        }],
                        workers: WorkerCounts {
                            requested: 1 + (i % 29) as u32,
                            ready: 1 + (i % 29) as u32,
                        },
                    })
                    .collect(),
                global_budget_per_hour: Some(50_000.0),
            };
            (world, now)
        };
        b.iter_batched(
            setup,
            |(world, now)| std::hint::black_box(engine::step(&policies, &world, &mut memory, now)),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_step);
criterion_main!(benches);
