//! Engine tests: HPA formula tables, each pipeline stage, the global budget, properties, and
//! the purity rule.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::policy;

const BASE: &str = r#"
pool: p
signals:
  - trino: { coordinator: "http://trino:8080" }
    per_worker: 1
workers:
  kubernetes: { namespace: ns, deployment: w }
bounds: { min: 1, max: 100 }
"#;

pub(super) fn policy(extra: &str) -> PoolRules {
    let text = format!("{BASE}{extra}");
    PoolRules::compile(&policy::load_str(&text, "test.yaml").unwrap_or_else(|e| panic!("{e}")))
}

pub(super) fn at(secs: i64) -> Timestamp {
    Timestamp::from_secs(1_800_000_000 + secs)
}

pub(super) fn obs(demand: f64, current: u32, now: Timestamp) -> PoolObservation {
    PoolObservation {
        pauses: Vec::new(),
        signals: vec![Signal::Value {
            demand,
            observed_at: now,
        }],
        workers: WorkerCounts {
            requested: current,
            ready: current,
        },
    }
}

fn one(p: &PoolRules, memory: &mut Memory, demand: f64, current: u32, now: Timestamp) -> Decision {
    let world = World {
        pools: vec![obs(demand, current, now)],
        global_budget_per_hour: None,
    };
    step(std::slice::from_ref(p), &world, memory, now).remove(0)
}

pub(super) fn labels(d: &Decision) -> Vec<&'static str> {
    d.reasons.iter().map(Reason::label).collect()
}

/// HPA AverageValue: desired = ceil(metric / target) outside the 0.1 band, else current.
/// Rows: (demand, per_worker, current, expected) with HPA default behaviour and fresh history.
#[test]
fn hpa_average_value_table() {
    let rows: &[(f64, f64, u32, u32)] = &[
        (40.0, 4.0, 10, 10),  // ratio 1.0
        (43.0, 4.0, 10, 10),  // 1.075 within 0.1
        (43.6, 4.0, 10, 10),  // 1.09 within (<=)
        (44.0, 4.0, 10, 10),  // 1.1: HPA `isWithin` keeps it ((1 + 0.1) == 44 / 40 in float64)
        (44.4, 4.0, 10, 12),  // 1.11 → ceil(11.1) = 12
        (36.0, 4.0, 10, 10),  // 0.9 within
        (35.6, 4.0, 10, 9),   // 0.89 is below 1 - 0.1: ceil(8.9) (fresh history)
        (80.0, 4.0, 10, 20),  // doubles, within the 100 % / 15 s up limit
        (200.0, 4.0, 10, 20), // 50 wanted, max(100 %, +4) per 15 s → 20
        (9.0, 4.0, 2, 3),     // 2.25/2 = 1.125 → ceil(2.25) = 3
        (0.0, 4.0, 0, 1),     // nothing to do, bounds.min = 1
    ];
    for &(demand, per_worker, current, expected) in rows {
        let mut p = policy("tolerance: 0.1\n");
        p.per_worker[0] = per_worker;
        let d = one(&p, &mut Memory::default(), demand, current, at(0));
        assert_eq!(
            d.desired, expected,
            "demand {demand} per {per_worker} current {current}: {:?}",
            d.reasons
        );
    }
}

#[test]
fn hpa_scale_up_limit_counts_changes_inside_the_period() {
    // Up policies max(100 %, +4)/15 s. From 2: limit max(4, 6) = 6.
    let p = policy("");
    let mut m = Memory::default();
    let d = one(&p, &mut m, 50.0, 2, at(0));
    assert_eq!(d.desired, 6);
    assert!(labels(&d).contains(&"rate_limit"));
    m.record_actuation("p", 2, 6, at(0));
    // 5 s later the period still started at 2: limit stays 6.
    let d = one(&p, &mut m, 50.0, 6, at(5));
    assert_eq!(d.desired, 6);
    // After the 15 s period: from 6, max(12, 10) = 12.
    let d = one(&p, &mut m, 50.0, 6, at(16));
    assert_eq!(d.desired, 12);
}

#[test]
fn hpa_scale_down_uses_the_highest_recommendation_of_the_window() {
    let p = policy("");
    let mut m = Memory::default();
    assert_eq!(one(&p, &mut m, 20.0, 20, at(0)).desired, 20);
    // Demand drops: the 300 s window still holds 20.
    let d = one(&p, &mut m, 5.0, 20, at(60));
    assert_eq!(d.desired, 20);
    assert!(labels(&d).contains(&"scale_down_stabilized"));
    // Window passed: scale down (100 %/15 s allows it in one step).
    let d = one(&p, &mut m, 5.0, 20, at(301));
    assert_eq!(d.desired, 5);
    assert_eq!(d.drain.unwrap().remove, 15);
}

#[test]
fn scale_up_window_uses_the_lowest_recommendation() {
    let p = policy("scale_up: { stabilization: 60s }\n");
    let mut m = Memory::default();
    assert_eq!(one(&p, &mut m, 2.0, 2, at(0)).desired, 2);
    let d = one(&p, &mut m, 6.0, 2, at(30));
    assert_eq!(d.desired, 2, "{:?}", d.reasons);
    assert!(labels(&d).contains(&"scale_up_stabilized"));
    assert_eq!(one(&p, &mut m, 6.0, 2, at(61)).desired, 6);
}

#[test]
fn percent_down_limit_floors_and_select_min_takes_smaller_change() {
    let p = policy(
        "scale_down: { stabilization: 0s, max_step: { percent: 50, workers: 3, select: min } }\n",
    );
    let mut m = Memory::default();
    // From 10: percent → floor(5) = 5, workers → 7; `min` = smaller change → 7.
    let d = one(&p, &mut m, 1.0, 10, at(0));
    assert_eq!(d.desired, 7);
    let p = policy("scale_down: { stabilization: 0s, max_step: { percent: 50, workers: 3 } }\n");
    assert_eq!(one(&p, &mut Memory::default(), 1.0, 9, at(0)).desired, 4); // floor(4.5)
}

#[test]
fn disabled_direction_never_moves() {
    let p = policy("scale_down: { stabilization: 0s, max_step: { select: disabled } }\n");
    let d = one(&p, &mut Memory::default(), 1.0, 10, at(0));
    assert_eq!(d.desired, 10);
}

#[test]
fn cooldowns_block_per_direction() {
    let p =
        policy("scale_up: { cooldown: 60s }\nscale_down: { stabilization: 0s, cooldown: 120s }\n");
    let mut m = Memory::default();
    m.record_actuation("p", 2, 4, at(0));
    let d = one(&p, &mut m, 8.0, 4, at(30));
    assert_eq!(d.desired, 4);
    assert!(matches!(
        d.reasons.last(),
        Some(Reason::Cooldown {
            direction: Direction::Up,
            remaining_s: 30
        })
    ));
    assert_eq!(one(&p, &mut m, 8.0, 4, at(61)).desired, 8);
    // Scale-down cooldown counts from the last actuation of either direction.
    let d = one(&p, &mut m, 1.0, 4, at(100));
    assert_eq!(d.desired, 4);
    assert_eq!(one(&p, &mut m, 1.0, 4, at(121)).desired, 1);
}

#[test]
fn bounds_and_schedule_floor() {
    let p = policy("schedules:\n  - { cron: \"0 7 * * *\", for: 2h, min: 10, timezone: UTC }\n");
    let morning = Timestamp::parse_rfc3339("2027-01-05T07:30:00Z").unwrap();
    let d = one(&p, &mut Memory::default(), 2.0, 10, morning);
    assert_eq!(d.desired, 10);
    assert!(labels(&d).contains(&"schedule_floor"));
    let d = one(&p, &mut Memory::default(), 500.0, 100, at(0));
    assert_eq!(d.desired, 100);
    assert!(labels(&d).contains(&"bound_max"));
    let d = one(&p, &mut Memory::default(), 0.0, 1, at(3 * 3600));
    assert_eq!(d.desired, 1, "{:?}", d.reasons);
}

#[test]
fn scale_to_zero_needs_demand_above_activation() {
    let p = policy("scale_to_zero: { activation_threshold: 2 }\n").with_min(0);
    let d = one(&p, &mut Memory::default(), 2.0, 0, at(0));
    assert_eq!(d.desired, 0);
    assert!(labels(&d).contains(&"below_activation"));
    let d = one(&p, &mut Memory::default(), 3.0, 0, at(0));
    assert_eq!(d.desired, 3);
    let d = one(&p, &mut Memory::default(), 0.5, 0, at(0)).desired;
    assert_eq!(d, 0);
}

#[test]
fn missing_signal_holds_then_falls_back_but_never_scales_down() {
    let p = policy(
        "on_missing_signal: { hold_for: 5m, then_workers: 8 }\nscale_down: { stabilization: 0s }\n",
    );
    let mut m = Memory::default();
    let missing = |current: u32| PoolObservation {
        pauses: Vec::new(),
        signals: vec![Signal::Missing {
            since: at(0),
            fault: SignalFault::Timeout,
        }],
        workers: WorkerCounts {
            requested: current,
            ready: current,
        },
    };
    let run = |m: &mut Memory, current: u32, now: Timestamp| {
        let world = World {
            pools: vec![missing(current)],
            global_budget_per_hour: None,
        };
        step(std::slice::from_ref(&p), &world, m, now).remove(0)
    };
    let d = run(&mut m, 20, at(60));
    assert_eq!(d.desired, 20);
    assert!(matches!(
        d.reasons[0],
        Reason::SignalMissing {
            action: MissingAction::Hold,
            ..
        }
    ));
    let d = run(&mut m, 5, at(301));
    assert_eq!(d.desired, 8);
    assert!(matches!(
        d.reasons[0],
        Reason::SignalMissing {
            action: MissingAction::Fallback,
            ..
        }
    ));
    assert_eq!(
        run(&mut m, 20, at(3600)).desired,
        20,
        "fallback never lowers"
    );
}

#[test]
fn partial_signals_allow_scale_up_only() {
    let mut p = policy("scale_down: { stabilization: 0s }\n");
    p.per_worker.push(p.per_worker[0]);
    let world = |demand: f64| World {
        pools: vec![PoolObservation {
            pauses: Vec::new(),
            signals: vec![
                Signal::Value {
                    demand,
                    observed_at: at(0),
                },
                Signal::Missing {
                    since: at(0),
                    fault: SignalFault::Unreachable,
                },
            ],
            workers: WorkerCounts {
                requested: 10,
                ready: 10,
            },
        }],
        global_budget_per_hour: None,
    };
    let s = std::slice::from_ref(&p);
    assert_eq!(
        step(s, &world(30.0), &mut Memory::default(), at(0))[0].desired,
        20
    );
    assert_eq!(
        step(s, &world(1.0), &mut Memory::default(), at(0))[0].desired,
        10
    );
}

#[test]
fn booting_workers_block_scale_down() {
    let p = policy("boot_time: 2m\nscale_down: { stabilization: 0s }\n");
    let mut m = Memory::default();
    m.record_actuation("p", 2, 10, at(0));
    let world = World {
        pools: vec![PoolObservation {
            pauses: Vec::new(),
            signals: vec![Signal::Value {
                demand: 3.0,
                observed_at: at(60),
            }],
            workers: WorkerCounts {
                requested: 10,
                ready: 4,
            },
        }],
        global_budget_per_hour: None,
    };
    let d = step(std::slice::from_ref(&p), &world, &mut m, at(60)).remove(0);
    assert_eq!(d.desired, 10);
    assert!(matches!(
        d.reasons.last(),
        Some(Reason::Booting { booting: 6 })
    ));
}

const FLAPPY: &str =
    "scale_down: { stabilization: 0s }\nflap_budget: { max_reversals_per_hour: 1 }\n";

/// The trace that used to stall (issue 15, item 3): up 2→6, down 6→3 (one reversal, the whole
/// budget), then work queues far beyond 3 workers. The old rule held every reversal for up to
/// an hour, so the pool sat at 3 with 9 workers' worth of work until t = 3600 s. Now the
/// scale-up the load needs goes ahead (rate limits still apply), and reaches 9 in two ticks.
#[test]
fn flap_budget_never_holds_a_needed_scale_up() {
    let p = policy(FLAPPY);
    let mut m = Memory::default();
    m.record_actuation("p", 2, 6, at(0));
    m.record_actuation("p", 6, 3, at(100));
    let d = one(&p, &mut m, 9.0, 3, at(200));
    // The budget is spent: this is exactly where the old engine returned 3.
    assert!(
        matches!(
            d.reasons.last(),
            Some(Reason::FlapBudgetNeeded {
                reversals_last_hour: 1,
                max: 1,
                needed: 9
            })
        ),
        "{:?}",
        d.reasons
    );
    // HPA rate limit from 3: max(3 + 4, 3 × 2) = 7.
    assert_eq!(d.desired, 7);
    // The same stage without the need (the old rule, which never asked) holds the pool at 3.
    let mut old = Vec::new();
    let held = super::limits::flap_budget(&p, m.pool_mut("p"), 3, 7, None, at(200), &mut old);
    assert_eq!(held, 3);
    assert_eq!(old.last().map(Reason::label), Some("flap_budget"));
    m.record_actuation("p", 3, 7, at(200));
    // Same direction as the last move: no reversal, the pool reaches what the work needs.
    let d = one(&p, &mut m, 9.0, 7, at(215));
    assert_eq!(d.desired, 9);
    assert!(!labels(&d).contains(&"flap_budget"));
}

/// Reversals no load asks for are still limited: a schedule floor raising the pool above
/// what the work needs, and a scale-down after the needed scale-up.
#[test]
fn flap_budget_still_holds_unneeded_reversals() {
    // A floor of 8 from an always-on schedule, demand for only 3 workers.
    let p = policy(&format!(
        "{FLAPPY}schedules: [{{ cron: \"* * * * *\", for: 2m, min: 8 }}]\n"
    ));
    let mut m = Memory::default();
    m.record_actuation("p", 8, 12, at(0));
    m.record_actuation("p", 12, 3, at(100));
    let d = one(&p, &mut m, 3.0, 3, at(200));
    assert_eq!(d.desired, 3, "{:?}", d.reasons);
    assert!(labels(&d).contains(&"flap_budget"));

    // Needed up 3 → 7, then demand collapses: scaling down would be a second reversal.
    let p = policy(FLAPPY);
    let mut m = Memory::default();
    m.record_actuation("p", 2, 6, at(0));
    m.record_actuation("p", 6, 3, at(100));
    m.record_actuation("p", 3, 7, at(200));
    let d = one(&p, &mut m, 1.0, 7, at(300));
    assert_eq!(d.desired, 7);
    assert!(labels(&d).contains(&"flap_budget"));
    // Same direction as the last move is fine.
    assert_eq!(one(&p, &mut m, 9.0, 7, at(300)).desired, 9);
}

/// Scale events older than every rate-limit period and the flap hour are forgotten (the newest
/// stays), so a pool's memory and the state file stop growing; the decisions are unchanged
/// (the flap and rate-limit tests above run with it).
#[test]
fn old_scale_events_are_forgotten() {
    let mut m = Memory::default();
    for k in 0..40 {
        let (from, to) = if k % 2 == 0 { (4, 5) } else { (5, 4) };
        m.record_actuation("p", from, to, at(k * 600));
    }
    // Rate limits of 15 s only (the default): the newest event alone is kept.
    let p = policy("");
    one(&p, &mut m, 4.0, 4, at(40 * 600));
    assert_eq!(m.pools["p"].scale_events.len(), 1);
    assert_eq!(m.pools["p"].scale_events[0].at, at(39 * 600));

    // With a flap budget: the last hour's events.
    let mut m = Memory::default();
    for k in 0..40 {
        let (from, to) = if k % 2 == 0 { (4, 5) } else { (5, 4) };
        m.record_actuation("p", from, to, at(k * 600));
    }
    let p = policy(FLAPPY);
    one(&p, &mut m, 4.0, 4, at(40 * 600));
    let kept: Vec<i64> = m.pools["p"].scale_events.iter().map(|e| e.at.0).collect();
    let expected: Vec<i64> = (35..40).map(|k| at(k * 600).0).collect();
    assert_eq!(kept, expected);
}

/// Only the needed part of a reversal goes through: with the forecast/schedule floor above
/// the load, the pool grows to what the work needs, not to the floor.
#[test]
fn a_needed_scale_up_goes_only_as_far_as_the_load() {
    let p = policy(&format!(
        "{FLAPPY}scale_up: {{ max_step: {{ workers: 100 }} }}\n\
         schedules: [{{ cron: \"* * * * *\", for: 2m, min: 20 }}]\n"
    ));
    let mut m = Memory::default();
    m.record_actuation("p", 20, 30, at(0));
    m.record_actuation("p", 30, 3, at(100));
    let d = one(&p, &mut m, 9.0, 3, at(200));
    assert_eq!(d.desired, 9, "{:?}", d.reasons);
    assert_eq!(d.final_reason(), "flap_budget_needed");
}

/// With `target.clear_backlog_within` the deadline size decides what is needed: 20 queued
/// on 10 workers is "beyond per_worker" but the pool starts it within the deadline (no
/// reversal), 40 is not and the scale-up goes ahead with the budget spent.
#[test]
fn flap_budget_uses_the_backlog_deadline_when_the_policy_has_one() {
    let p = policy(&format!(
        "{FLAPPY}tolerance: 0\nboot_time: 60s\ntarget: {{ clear_backlog_within: 2m }}\n\
         scale_up: {{ max_step: {{ workers: 100 }} }}\n"
    ));
    let mut m = Memory::default();
    // A saturated pool of 10 draining 1 load per 10 s (backlog_target_sizes_from_measured_turnover).
    for i in 0..5 {
        one(&p, &mut m, 24.0 - i as f64, 10, at(i * 10));
    }
    m.record_actuation("p", 10, 14, at(50));
    m.record_actuation("p", 14, 10, at(60));
    let d = one(&p, &mut m, 20.0, 10, at(300));
    assert_eq!(d.desired, 10, "{:#?}", d.reasons);
    assert!(labels(&d).contains(&"backlog"));
    let d = one(&p, &mut m, 40.0, 10, at(600));
    let needed = 10 + ((50.0f64 - 22.0) / 1.6).ceil() as u32;
    assert_eq!(d.desired, needed, "{:#?}", d.reasons);
    assert_eq!(d.final_reason(), "flap_budget_needed");
}

#[test]
fn pool_cost_cap() {
    let p = policy("cost: { per_worker_hour: 0.5, max_per_hour: 5 }\n");
    let d = one(&p, &mut Memory::default(), 80.0, 8, at(0));
    assert_eq!(d.desired, 10);
    assert!(labels(&d).contains(&"cost_cap"));
}

/// A shadow pool runs nothing: it is neither counted against the budget nor cut by it.
#[test]
fn the_global_budget_counts_only_pools_that_really_run() {
    let real = policy("cost: { per_worker_hour: 1 }\n").named("real");
    let mut shadow = policy("cost: { per_worker_hour: 1, priority: 99 }\n").named("shadow");
    shadow.mode = crate::policy::Mode::Shadow;
    let world = World {
        pools: vec![obs(10.0, 1, at(0)), obs(10.0, 1, at(0))],
        global_budget_per_hour: Some(4.0),
    };
    let ds = step(&[real, shadow], &world, &mut Memory::default(), at(0));
    assert_eq!(ds[0].desired, 4, "the real pool gets the whole budget");
    assert_eq!(
        ds[1].desired, 5,
        "the shadow pool is sized as if alone (rate limit only)"
    );
    assert!(
        !ds[1].reasons.iter().any(|r| r.label().contains("budget")),
        "{:?}",
        ds[1].reasons
    );
}

#[test]
fn global_budget_by_priority_minimums_first() {
    let hi = policy("cost: { per_worker_hour: 1, priority: 10 }\n").named("hi");
    let lo = policy("cost: { per_worker_hour: 1, priority: 1 }\n").named("lo");
    let world = World {
        pools: vec![obs(8.0, 8, at(0)), obs(8.0, 8, at(0))],
        global_budget_per_hour: Some(12.0),
    };
    let ds = step(
        &[lo.clone(), hi.clone()],
        &world,
        &mut Memory::default(),
        at(0),
    );
    let (lo_d, hi_d) = (&ds[0], &ds[1]);
    assert_eq!(hi_d.desired, 8);
    assert_eq!(lo_d.desired, 4);
    assert!(matches!(
        lo_d.reasons.last(),
        Some(Reason::GlobalBudget { allowed: 4, .. })
    ));
    assert!(lo_d.drain.is_some());
    // Minimums alone above the budget: minimums kept and reported.
    let world = World {
        pools: vec![obs(8.0, 8, at(0)), obs(8.0, 8, at(0))],
        global_budget_per_hour: Some(1.0),
    };
    let ds = step(
        &[lo.with_min(1), hi.with_min(1)],
        &world,
        &mut Memory::default(),
        at(0),
    );
    assert!(
        ds.iter()
            .all(|d| d.desired == 1 && labels(d).contains(&"budget_below_minimums"))
    );
}

#[test]
fn paused_pool_keeps_its_size() {
    let p = policy("mode: paused\n");
    let d = one(&p, &mut Memory::default(), 80.0, 3, at(0));
    assert_eq!((d.desired, labels(&d)), (3, vec!["paused"]));
}

#[test]
fn conservative_start_blocks_scale_down_until_window_refills() {
    let p = policy("scale_down: { stabilization: 0s }\n");
    let mut m = Memory::default();
    m.start_conservatively([("p", Duration::from_secs(300))], at(0));
    assert_eq!(one(&p, &mut m, 1.0, 10, at(10)).desired, 10);
    assert_eq!(
        one(&p, &mut m, 30.0, 10, at(20)).desired,
        20,
        "scale-up still allowed"
    );
    assert_eq!(one(&p, &mut m, 1.0, 10, at(301)).desired, 1);
}

#[test]
fn reasons_serialise_to_json() {
    let d = one(&policy(""), &mut Memory::default(), 50.0, 2, at(0));
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["reasons"][0]["stage"], "raw");
    assert_eq!(json["reasons"][1]["stage"], "rate_limit");
    assert_eq!(json["desired"], 6);
}

impl PoolRules {
    fn with_min(mut self, min: u32) -> PoolRules {
        self.bounds.min = min;
        self
    }
    fn named(mut self, name: &str) -> PoolRules {
        self.name = name.into();
        self
    }
}

#[test]
fn the_built_in_hpa_matches_the_policy_language_with_hpa_defaults() {
    let text = "pool: h\n\
         signals:\n  - spark: { master: \"http://spark:8080\", cores_per_waiting_app: 1 }\n    per_worker: 4\n\
         workers: { kubernetes: { namespace: ns, deployment: h } }\n\
         bounds: { min: 1, max: 10 }\n\
         boot_time: 0s\n\
         scale_down: { drain: { method: none } }\n";
    let policy = policy::load_str(text, "<test>").expect("valid");
    assert_eq!(PoolRules::compile(&policy), PoolRules::hpa("h", 4.0, 1, 10));
}

#[test]
fn auto_drain_resolves_from_the_first_signal_as_the_daemon_drains() {
    for (signal, method) in [
        (
            "spark: { master: \"http://s:8080\", cores_per_waiting_app: 1 }",
            DrainMethod::Spark,
        ),
        (
            "presto: { coordinator: \"http://p:8080\" }",
            DrainMethod::Trino,
        ),
        (
            "airflow_db: { connection: { env: DB } }",
            DrainMethod::Celery,
        ),
    ] {
        let text = format!(
            "pool: p\nsignals:\n  - {signal}\n    per_worker: 4\n\
             workers: {{ kubernetes: {{ namespace: ns, deployment: p }} }}\nbounds: {{ min: 1, max: 10 }}\n"
        );
        let policy = policy::load_str(&text, "<test>").expect("valid");
        assert_eq!(PoolRules::compile(&policy).drain.method, method, "{signal}");
    }
}

/// The engine must stay pure: no I/O crate, no clock, no randomness in any engine file.
#[test]
fn engine_files_import_no_io_and_read_no_clock() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine");
    let banned = [
        "tokio",
        "reqwest",
        "kube",
        "aws_",
        "metrics::",
        "std::fs",
        "std::net",
        "SystemTime",
        "Instant",
        "Utc::now",
        "rand::",
        "Timestamp::now",
    ];
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        // Test-only modules (the upstream tables cite the `kubernetes` repository).
        if ["tests.rs", "hpa_upstream.rs"].contains(&path.file_name().unwrap().to_str().unwrap()) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for word in banned {
            assert!(!text.contains(word), "{} mentions `{word}`", path.display());
        }
    }
}

fn arb_memory_events() -> impl Strategy<Value = Vec<(i64, u32, u32)>> {
    prop::collection::vec((-600i64..600, 0u32..200, 0u32..200), 0..8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn bounds_always_hold(demand in 0.0f64..1e7, current in 0u32..500, min in 0u32..20, span in 1u32..100, t in -1000i64..1000, events in arb_memory_events()) {
        let p = policy("scale_to_zero: {}\n").with_min(min);
        let mut p = p;
        p.bounds.max = min + span;
        let mut m = Memory::default();
        for (dt, a, b) in events { m.record_actuation("p", a, b, at(dt)); }
        let d = one(&p, &mut m, demand, current, at(t));
        prop_assert!(d.desired >= min && d.desired <= min + span, "{:?}", d);
    }

    #[test]
    fn no_move_inside_a_cooldown(demand in 0.0f64..1000.0, current in 1u32..100, since in 0i64..59) {
        let p = policy("scale_up: { cooldown: 60s }\nscale_down: { cooldown: 60s, stabilization: 0s }\n");
        let mut m = Memory::default();
        m.record_actuation("p", current / 2, current, at(0));
        let d = one(&p, &mut m, demand, current, at(since));
        prop_assert_eq!(d.desired, current);
    }

    #[test]
    fn step_never_exceeds_max_step(demand in 0.0f64..10_000.0, current in 1u32..100) {
        let p = policy("scale_up: { max_step: { workers: 5 } }\nscale_down: { stabilization: 0s, max_step: { workers: 3 } }\n");
        let d = one(&p, &mut Memory::default(), demand, current, at(0));
        prop_assert!(d.desired <= current + 5 && d.desired + 3 >= current, "{:?}", d);
    }

    #[test]
    fn desired_is_monotone_in_demand(a in 0.0f64..5000.0, b in 0.0f64..5000.0, current in 0u32..100) {
        let p = policy("");
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let d_lo = one(&p, &mut Memory::default(), lo, current, at(0)).desired;
        let d_hi = one(&p, &mut Memory::default(), hi, current, at(0)).desired;
        prop_assert!(d_lo <= d_hi, "demand {lo} -> {d_lo}, {hi} -> {d_hi}");
    }

    #[test]
    fn global_budget_holds_unless_minimums_demand_it(d1 in 0.0f64..200.0, d2 in 0.0f64..200.0, budget in 1.0f64..100.0, price in 0.1f64..3.0) {
        let a = policy(&format!("cost: {{ per_worker_hour: {price}, priority: 2 }}\n")).named("a");
        let b = policy(&format!("cost: {{ per_worker_hour: {price}, priority: 1 }}\n")).named("b");
        let world = World { pools: vec![obs(d1, 10, at(0)), obs(d2, 10, at(0))], global_budget_per_hour: Some(budget) };
        let ds = step(&[a, b], &world, &mut Memory::default(), at(0));
        let spend: f64 = ds.iter().map(|d| f64::from(d.desired) * price).sum();
        let over_by_minimums = ds.iter().any(|d| d.reasons.iter().any(|r| r.label() == "budget_below_minimums"));
        prop_assert!(spend <= budget + 1e-6 || over_by_minimums, "spend {spend} budget {budget}: {ds:?}");
    }

    #[test]
    fn no_panic_on_extreme_inputs_or_backwards_time(demand in prop::num::f64::ANY, current in any::<u32>(), t1 in any::<i32>(), t2 in any::<i32>()) {
        let p = policy("cost: { per_worker_hour: 1e9, max_per_hour: 1e12 }\nflap_budget: { max_reversals_per_hour: 2 }\n");
        let mut m = Memory::default();
        one(&p, &mut m, demand, current, Timestamp(i64::from(t1) * 1000));
        m.record_actuation("p", current, current / 2, Timestamp(i64::from(t1) * 1000));
        one(&p, &mut m, demand, current, Timestamp(i64::from(t2) * 1000));
    }
}

/// `clear_backlog_within` without a measured turnover keeps the proportional target and says so.
#[test]
fn backlog_target_falls_back_to_proportional_while_turnover_is_unknown() {
    let p = policy("tolerance: 0\ntarget: { clear_backlog_within: 2m }\n");
    let mut m = Memory::default();
    let d = one(&p, &mut m, 30.0, 10, at(0));
    assert_eq!(d.desired, 20, "rate limit: 100 % of 10 per 15 s");
    assert_eq!(labels(&d)[..2], ["raw", "backlog_unknown"]);
    assert!(d.reasons[1].to_string().contains("0 of 3 drains seen"));
}

/// Once drains were seen, a queue the pool clears by itself within the deadline buys no
/// worker (the proportional target would add 10), and the arithmetic is in the chain.
#[test]
fn backlog_target_sizes_from_measured_turnover() {
    let p = policy(
        "tolerance: 0\nboot_time: 60s\ntarget: { clear_backlog_within: 2m }\n\
         scale_up: { max_step: { workers: 100 } }\nscale_down: { stabilization: 0s }\n",
    );
    let mut m = Memory::default();
    // A saturated pool of 10 draining 1 load per 10 s: turnover 0.01/s.
    for i in 0..5 {
        one(&p, &mut m, 24.0 - i as f64, 10, at(i * 10));
    }
    let d = one(&p, &mut m, 20.0, 10, at(300));
    assert_eq!(d.desired, 10, "{:#?}", d.reasons);
    assert_eq!(labels(&d)[..2], ["raw", "backlog"]);
    let text = d.reasons[1].to_string();
    assert!(
        text.contains("10 workers place 10 x (1 + 0.01000/s x 120s) = 22.00"),
        "{text}"
    );
    // A jump: the rise over the deadline (20 / 120 s) times the boot time is placed too.
    let d = one(&p, &mut m, 40.0, 10, at(600));
    assert_eq!(
        d.desired,
        10 + ((50.0f64 - 22.0) / 1.6).ceil() as u32,
        "{:#?}",
        d.reasons
    );
    // A steady backlog beyond what the pool clears buys workers that count their turnover.
    let d = one(&p, &mut m, 40.0, 10, at(800));
    assert_eq!(
        d.desired,
        10 + ((40.0f64 - 22.0) / 1.6).ceil() as u32,
        "{:#?}",
        d.reasons
    );
}

/// Pre-warming: off (and said so) until a whole day was seen; then the floor rises one boot
/// time ahead of the learned 09:00 peak.
#[test]
fn prewarm_raises_the_floor_ahead_of_the_learned_rise() {
    let p = policy(
        "boot_time: 5m\ntarget: { prewarm: { season: daily } }\n\
         scale_down: { stabilization: 0s }\n",
    );
    let mut m = Memory::default();
    let day = |d: i64, h: i64, min: i64| Timestamp::from_secs(d * 86_400 + h * 3600 + min * 60);
    let first = one(&p, &mut m, 2.0, 2, day(0, 0, 0));
    assert!(
        labels(&first).contains(&"forecast_off"),
        "{:?}",
        first.reasons
    );
    for d in 0..2 {
        for minute in (0..1440).step_by(5) {
            let demand = if minute / 60 == 9 { 40.0 } else { 2.0 };
            one(&p, &mut m, demand, 2, day(d, 0, minute));
        }
    }
    let early = one(&p, &mut m, 2.0, 2, day(2, 8, 50));
    assert_eq!(early.desired, 2, "{:?}", early.reasons);
    let ahead = one(&p, &mut m, 2.0, 2, day(2, 8, 56));
    assert!(labels(&ahead).contains(&"forecast"), "{:?}", ahead.reasons);
    assert_eq!(
        ahead.desired, 6,
        "forecast floor 40, then the default rate limit (2 + 4 pods)"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A forecast only ever raises: with the same observations, the pool with pre-warming
    /// never wants fewer workers than the same policy without it, and never more than its
    /// cost cap allows.
    #[test]
    fn a_forecast_never_lowers_the_size(levels in proptest::collection::vec(0.0f64..60.0, 24), currents in proptest::collection::vec(1u32..40, 24)) {
        let common = "boot_time: 10m\ncost: { per_worker_hour: 1, max_per_hour: 30 }\n";
        let plain = policy(common);
        let warm = policy(&format!("{common}target: {{ prewarm: {{ season: daily }} }}\n"));
        let (mut a, mut b) = (Memory::default(), Memory::default());
        for tick in 0..(3 * 288) {
            let hour = (tick / 12) % 24;
            let demand = levels[hour as usize];
            let current = currents[(tick as usize * 7) % 24];
            let now = Timestamp::from_secs(tick * 300);
            let d_plain = one(&plain, &mut a, demand, current, now);
            let d_warm = one(&warm, &mut b, demand, current, now);
            prop_assert!(d_warm.desired >= d_plain.desired, "{d_warm:?} vs {d_plain:?}");
            prop_assert!(d_warm.desired <= 30, "cost cap: {d_warm:?}");
        }
    }
}

/// The policy language says what HPA `behavior` says: per-direction tolerance (KEP-4951,
/// the top-level `tolerance` as default) and several rate policies per direction, each with
/// its own period, next to the `workers`/`percent` shorthand (old files keep their meaning).
#[test]
fn per_direction_tolerance_and_rate_policy_lists_compile() {
    use super::rules::{RateKind, RatePolicy, Tolerance};
    let p = policy(
        "tolerance: 0.2\n\
         scale_up:\n  tolerance: 0.05\n  max_step:\n    workers: 4\n    period: 30s\n    \
         policies: [{ percent: 50, period: 2m }, { workers: 10 }]\n    select: min\n",
    );
    assert_eq!(
        p.tolerance,
        Tolerance {
            down: 0.2,
            up: 0.05
        }
    );
    let s = |secs| Duration::from_secs(secs);
    assert_eq!(
        p.scale_up.rate.policies,
        vec![
            RatePolicy {
                kind: RateKind::Workers(4),
                period: s(30)
            },
            RatePolicy {
                kind: RateKind::Percent(50),
                period: s(120)
            },
            RatePolicy {
                kind: RateKind::Workers(10),
                period: s(30)
            },
        ]
    );
    assert_eq!(p.scale_up.rate.select, policy::SelectPolicy::Min);
    // select: min over the three from 10 with no history: min(14, 15, 20) = 14.
    let d = one(&p, &mut Memory::default(), 100.0, 10, at(0));
    assert_eq!(d.desired, 14);
    // Up uses its own 0.05: 1.04 stays, 1.06 scales.
    assert_eq!(one(&p, &mut Memory::default(), 10.4, 10, at(0)).desired, 10);
    assert_eq!(one(&p, &mut Memory::default(), 10.6, 10, at(0)).desired, 11);
    // Down uses the top-level 0.2: 0.85 stays (0.85 >= 0.8).
    let p = policy("tolerance: 0.2\nscale_down: { stabilization: 0s }\n");
    assert_eq!(one(&p, &mut Memory::default(), 8.5, 10, at(0)).desired, 10);
    assert_eq!(one(&p, &mut Memory::default(), 7.9, 10, at(0)).desired, 8);
}
