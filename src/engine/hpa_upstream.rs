//! The Kubernetes HPA's own test tables, transcribed row by row and run through
//! [`engine::step`](super::step). Upstream: `kubernetes/kubernetes`,
//! `pkg/controller/podautoscaler/replica_calculator_test.go` (stored version with
//! `Tolerances`, KEP-4951) and `pkg/controller/podautoscaler/horizontal_test.go`
//! (`TestScalingWithRules`, `TestNormalizeDesiredReplicas`,
//! `TestNormalizeDesiredReplicasWithBehavior`, `TestCalculateScaleUpLimitWithScalingRules`,
//! `TestCalculateScaleDownLimitWithBehaviors`).
//!
//! Rows poolpilot has no counterpart for are left out, each family with its reason, in
//! `policies/README.md` ("HPA conformance").

use std::time::Duration;

use super::rules::{RateKind, RatePolicy, RateRules, Tolerance};
use super::*;
use crate::policy::{Bounds, ScaleToZero, SelectPolicy};

const POOL: &str = "p";

fn at(secs: i64) -> Timestamp {
    Timestamp::from_secs(1_800_000_000 + secs)
}

fn now() -> Timestamp {
    at(0)
}

/// One tick with `demand` on a pool of `current` ready workers.
fn tick(rules: &PoolRules, memory: &mut Memory, demand: f64, current: u32) -> Decision {
    let world = World {
        pools: vec![PoolObservation {
            pauses: Vec::new(),
            signals: vec![Signal::Value {
                demand,
                observed_at: now(),
            }],
            workers: WorkerCounts {
                requested: current,
                ready: current,
            },
        }],
        global_budget_per_hour: None,
    };
    step(std::slice::from_ref(rules), &world, memory, now()).remove(0)
}

// ---------------------------------------------------------------------------------------------
// replica_calculator_test.go
// ---------------------------------------------------------------------------------------------

/// One replica-calculator row: `levels` summed, per-pod target, tolerances `{down, up}`.
struct CalcRow {
    test: &'static str,
    current: u32,
    usage: f64,
    per_pod_target: f64,
    tolerances: (f64, f64),
    expected: u32,
}

const DEFAULT_TOL: f64 = 0.1; // defaultTestingTolerance

/// AverageValue rows: `externalPerPodMetric` (`GetExternalPerPodMetricReplicas`) and
/// `objectPerPodMetric` (`GetObjectPerPodMetricReplicas`), which share the formula poolpilot
/// uses. Milli-values kept as upstream writes them, so the float64 arithmetic is HPA's.
const AVERAGE_VALUE_ROWS: &[CalcRow] = &[
    CalcRow {
        test: "TestReplicaCalcScaleUpPerPodCMExternal",
        current: 3,
        usage: 8600.0,
        per_pod_target: 2150.0,
        tolerances: (DEFAULT_TOL, DEFAULT_TOL),
        expected: 4,
    },
    CalcRow {
        test: "TestReplicaCalcScaleDownPerPodCMExternal",
        current: 5,
        usage: 8600.0,
        per_pod_target: 2867.0,
        tolerances: (DEFAULT_TOL, DEFAULT_TOL),
        expected: 3,
    },
    CalcRow {
        test: "TestReplicaCalcTolerancePerPodCMExternal",
        current: 3,
        usage: 8600.0,
        per_pod_target: 2900.0,
        tolerances: (DEFAULT_TOL, DEFAULT_TOL),
        expected: 3,
    },
    CalcRow {
        test: "TestReplicaCalcConfigurableTolerancePerPodCMExternal",
        current: 3,
        usage: 8600.0,
        per_pod_target: 2800.0,
        tolerances: (DEFAULT_TOL, 0.01),
        expected: 4,
    },
    CalcRow {
        test: "TestReplicaCalcTolerancePerPodCMObject",
        current: 4,
        usage: 20166.0,
        per_pod_target: 5000.0,
        tolerances: (DEFAULT_TOL, DEFAULT_TOL),
        expected: 4,
    },
    CalcRow {
        test: "TestReplicaCalcConfigurableTolerancePerPodCMObject",
        current: 4,
        usage: 20208.0,
        per_pod_target: 5000.0,
        tolerances: (DEFAULT_TOL, 0.01),
        expected: 5,
    },
];

/// `TestReplicaCalcConfigurableTolerance`'s five sub-tests are CPU utilization with every pod
/// ready and reporting, where HPA computes `ceil(ratio * readyPods)` with
/// `ratio = utilization / target` (integer percent). The same ratio on an AverageValue
/// signal is `demand = utilization * current`, `per_worker = target`; the band decision and
/// the count are then HPA's (`ceil(1.95)`, `ceil(3.03)`, `ceil(3.27)` sit far from integers).
const CONFIGURABLE_TOLERANCE_ROWS: &[CalcRow] = &[
    CalcRow {
        test: "TestReplicaCalcConfigurableTolerance/Outside of a 0% tolerance",
        current: 3,
        usage: 101.0 * 3.0,
        per_pod_target: 100.0,
        tolerances: (0.0, 0.0),
        expected: 4,
    },
    CalcRow {
        test: "TestReplicaCalcConfigurableTolerance/Within a 200% scale-up tolerance",
        current: 3,
        usage: 190.0 * 3.0,
        per_pod_target: 100.0,
        tolerances: (DEFAULT_TOL, 2.0),
        expected: 3,
    },
    CalcRow {
        test: "TestReplicaCalcConfigurableTolerance/Outside 8% scale-up tolerance (and superfuous scale-down tolerance)",
        current: 3,
        usage: 109.0 * 3.0,
        per_pod_target: 100.0,
        tolerances: (2.0, 0.08),
        expected: 4,
    },
    CalcRow {
        test: "TestReplicaCalcConfigurableTolerance/Within a 36% scale-down tolerance",
        current: 3,
        usage: 65.0 * 3.0,
        per_pod_target: 100.0,
        tolerances: (0.36, DEFAULT_TOL),
        expected: 3,
    },
    CalcRow {
        test: "TestReplicaCalcConfigurableTolerance/Outside a 34% scale-down tolerance",
        current: 3,
        usage: 65.0 * 3.0,
        per_pod_target: 100.0,
        tolerances: (0.34, DEFAULT_TOL),
        expected: 2,
    },
];

fn run_calc_rows(rows: &[CalcRow]) -> usize {
    for row in rows {
        let mut rules = PoolRules::hpa(POOL, row.per_pod_target, 1, 1000);
        rules.tolerance = Tolerance {
            down: row.tolerances.0,
            up: row.tolerances.1,
        };
        let d = tick(&rules, &mut Memory::default(), row.usage, row.current);
        assert_eq!(d.desired, row.expected, "{}: {:?}", row.test, d.reasons);
    }
    rows.len()
}

#[test]
fn replica_calculator_average_value_rows() {
    assert_eq!(run_calc_rows(AVERAGE_VALUE_ROWS), 6);
}

#[test]
fn replica_calculator_configurable_tolerance_rows() {
    assert_eq!(run_calc_rows(CONFIGURABLE_TOLERANCE_ROWS), 5);
}

/// The band edge exactly as `Tolerances.isWithin` has it: `(1 - down) <= ratio <= (1 + up)`
/// in float64. 44 / (4 × 10) is the float64 nearest 1.1, and so is 1.0 + 0.1, so HPA keeps
/// the size; the old `|1 - ratio| <= tol` test scaled (1.1 - 1.0 > 0.1 in float64).
#[test]
fn tolerance_edges_fall_where_hpa_puts_them() {
    let t = Tolerance::both(0.1);
    assert!(t.within(44.0 / (4.0 * 10.0)));
    assert!(
        (1.0f64 - 44.0 / 40.0).abs() > 0.1,
        "the old test disagreed here"
    );
    assert!(t.within(36.0 / (4.0 * 10.0)));
    assert!(!t.within(35.6 / (4.0 * 10.0)));
    assert!(!t.within(44.4 / (4.0 * 10.0)));
    let rules = PoolRules::hpa(POOL, 4.0, 1, 100);
    assert_eq!(tick(&rules, &mut Memory::default(), 44.0, 10).desired, 10);
    assert_eq!(tick(&rules, &mut Memory::default(), 36.0, 10).desired, 10);
    let rules = {
        let mut r = rules;
        r.scale_down.stabilization = Duration::ZERO;
        r
    };
    assert_eq!(tick(&rules, &mut Memory::default(), 35.6, 10).desired, 9);
}

// ---------------------------------------------------------------------------------------------
// horizontal_test.go: TestScalingWithRules
// ---------------------------------------------------------------------------------------------

/// `generateScalingRules(pods, podsPeriod, percent, percentPeriod, _)`: Pods then Percent,
/// `selectPolicy: Max`; a zero value leaves the policy out. (Its stabilization argument is not
/// read by `convertDesiredReplicasWithBehaviorRate`, so it is not transcribed.)
fn generate(pods: u32, pods_period: u64, percent: u32, percent_period: u64) -> RateRules {
    let mut policies = Vec::new();
    if pods != 0 {
        policies.push(RatePolicy {
            kind: RateKind::Workers(pods),
            period: Duration::from_secs(pods_period),
        });
    }
    if percent != 0 {
        policies.push(RatePolicy {
            kind: RateKind::Percent(percent),
            period: Duration::from_secs(percent_period),
        });
    }
    RateRules {
        policies,
        select: SelectPolicy::Max,
    }
}

/// `generateEventsUniformDistribution(changes, periodSeconds)`: event `i` lies at the middle
/// of segment `i` of the last `periodSeconds`, oldest first. Returns (seconds ago, change).
fn uniform(changes: &[u32], period: u64) -> Vec<(f64, u32)> {
    let segment = period as f64 / changes.len() as f64;
    changes
        .iter()
        .enumerate()
        .map(|(i, &c)| (period as f64 - segment * (i + 1) as f64 + segment / 2.0, c))
        .collect()
}

struct RulesRow {
    name: &'static str,
    up_events: Vec<(f64, u32)>,
    down_events: Vec<(f64, u32)>,
    min: u32,
    max: u32,
    up: Option<RateRules>,
    down: Option<RateRules>,
    current: u32,
    prenormalized: u32,
    expected: u32,
    condition: &'static str,
}

/// HPA's condition from poolpilot's reason chain: the last of the stages that can bind.
fn condition(d: &Decision) -> &'static str {
    match d
        .reasons
        .iter()
        .rev()
        .find(|r| matches!(r.label(), "rate_limit" | "bound_min" | "bound_max"))
    {
        Some(Reason::RateLimit {
            direction: Direction::Up,
            ..
        }) => "ScaleUpLimit",
        Some(Reason::RateLimit { .. }) => "ScaleDownLimit",
        Some(Reason::BoundMax { .. }) => "TooManyReplicas",
        Some(Reason::BoundMin { .. }) => "TooFewReplicas",
        _ => "DesiredWithinRange",
    }
}

fn scaling_with_rules_rows() -> Vec<RulesRow> {
    let row = |name, min, max, current, prenormalized, expected, condition| RulesRow {
        name,
        up_events: Vec::new(),
        down_events: Vec::new(),
        min,
        max,
        up: None,
        down: None,
        current,
        prenormalized,
        expected,
        condition,
    };
    let up = |mut r: RulesRow, rules: RateRules| {
        r.up = Some(rules);
        r
    };
    let down = |mut r: RulesRow, rules: RateRules| {
        r.down = Some(rules);
        r
    };
    let up_ev = |mut r: RulesRow, e: Vec<(f64, u32)>| {
        r.up_events = e;
        r
    };
    let down_ev = |mut r: RulesRow, e: Vec<(f64, u32)>| {
        r.down_events = e;
        r
    };
    let ev = |c: &[u32]| uniform(c, 120);
    vec![
        row(
            "prenormalized desired replicas within range",
            3,
            8,
            5,
            7,
            7,
            "DesiredWithinRange",
        ),
        row(
            "prenormalized desired replicas < minReplicas",
            2,
            8,
            3,
            1,
            2,
            "TooFewReplicas",
        ),
        row(
            "prenormalized desired replicas within range when minReplicas is 0",
            0,
            10,
            1,
            0,
            0,
            "DesiredWithinRange",
        ),
        row(
            "maxReplicas is the limit because maxReplicas < scaleUpLimit",
            1,
            10,
            20,
            1000,
            10,
            "TooManyReplicas",
        ),
        row(
            "desired replica count is more than the maximum replica count",
            100,
            150,
            100,
            1000,
            150,
            "TooManyReplicas",
        ),
        up(
            row(
                "scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies",
                1,
                2000,
                3,
                1000,
                4,
                "ScaleUpLimit",
            ),
            generate(0, 0, 1, 60),
        ),
        // Upstream marks this row `testThis: true`, which skips it; it passes here.
        down(
            row(
                "scaleDownLimit is the limit because scaleDownLimit > minReplicas with user defined policies",
                3,
                2000,
                1000,
                3,
                980,
                "ScaleDownLimit",
            ),
            generate(20, 60, 0, 0),
        ),
        row(
            "scaleUp with default behavior",
            1,
            1000,
            10,
            50,
            20,
            "ScaleUpLimit",
        ),
        up(
            row(
                "scaleUp with pods policy larger than percent policy",
                1,
                1000,
                10,
                500,
                110,
                "ScaleUpLimit",
            ),
            generate(100, 60, 100, 60),
        ),
        up(
            row(
                "scaleUp with percent policy larger than pods policy",
                1,
                1000,
                10,
                500,
                20,
                "ScaleUpLimit",
            ),
            generate(2, 60, 100, 60),
        ),
        up(
            row(
                "scaleUp with spec MaxReplicas limitation with large pod policy",
                1,
                1000,
                10,
                50,
                50,
                "DesiredWithinRange",
            ),
            generate(100, 60, 0, 0),
        ),
        up(
            row(
                "scaleUp with spec MaxReplicas limitation with large percent policy",
                1,
                1000,
                10,
                50,
                50,
                "DesiredWithinRange",
            ),
            generate(10000, 60, 0, 0),
        ),
        up(
            row(
                "scaleUp with pod policy limitation",
                1,
                1000,
                10,
                50,
                40,
                "ScaleUpLimit",
            ),
            generate(30, 60, 0, 0),
        ),
        up(
            row(
                "scaleUp with percent policy limitation",
                1,
                1000,
                10,
                50,
                30,
                "ScaleUpLimit",
            ),
            generate(0, 0, 200, 60),
        ),
        down(
            row(
                "scaleDown with percent policy larger than pod policy",
                1,
                1000,
                100,
                2,
                80,
                "ScaleDownLimit",
            ),
            generate(20, 60, 1, 60),
        ),
        down(
            row(
                "scaleDown with pod policy larger than percent policy",
                1,
                1000,
                100,
                2,
                98,
                "ScaleDownLimit",
            ),
            generate(2, 60, 1, 60),
        ),
        down(
            row(
                "scaleDown with spec MinReplicas=nil limitation with large pod policy",
                1,
                1000,
                10,
                0,
                1,
                "TooFewReplicas",
            ),
            generate(100, 60, 0, 0),
        ),
        down(
            row(
                "scaleDown with spec MinReplicas limitation with large pod policy",
                1,
                1000,
                10,
                0,
                1,
                "TooFewReplicas",
            ),
            generate(100, 60, 0, 0),
        ),
        down(
            row(
                "scaleDown with spec MinReplicas limitation with large percent policy",
                5,
                1000,
                10,
                2,
                5,
                "TooFewReplicas",
            ),
            generate(0, 0, 100, 60),
        ),
        down(
            row(
                "scaleDown with pod policy limitation",
                1,
                1000,
                10,
                2,
                5,
                "ScaleDownLimit",
            ),
            generate(5, 60, 0, 0),
        ),
        down(
            row(
                "scaleDown with percent policy limitation",
                1,
                1000,
                10,
                5,
                5,
                "DesiredWithinRange",
            ),
            generate(0, 0, 50, 60),
        ),
        up_ev(
            up(
                row(
                    "scaleUp with spec MaxReplicas limitation with large pod policy and events",
                    1,
                    200,
                    100,
                    500,
                    200,
                    "TooManyReplicas",
                ),
                generate(300, 60, 0, 0),
            ),
            ev(&[1, 5, 9]),
        ),
        up_ev(
            up(
                row(
                    "scaleUp with spec MaxReplicas limitation with large percent policy and events",
                    1,
                    200,
                    100,
                    500,
                    200,
                    "TooManyReplicas",
                ),
                generate(0, 0, 10000, 60),
            ),
            ev(&[1, 5, 9]),
        ),
        up_ev(
            up(
                row(
                    "scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent scale up events",
                    1,
                    1000,
                    100,
                    500,
                    100,
                    "ScaleUpLimit",
                ),
                generate(5, 120, 0, 0),
            ),
            ev(&[1, 5, 9]),
        ),
        up_ev(
            up(
                row(
                    "scaleUp with pod policy and previous scale up events",
                    1,
                    1000,
                    100,
                    500,
                    235,
                    "ScaleUpLimit",
                ),
                generate(150, 120, 0, 0),
            ),
            ev(&[1, 5, 9]),
        ),
        up_ev(
            up(
                row(
                    "scaleUp with percent policy and previous scale up events",
                    1,
                    1000,
                    100,
                    500,
                    255,
                    "ScaleUpLimit",
                ),
                generate(0, 0, 200, 120),
            ),
            ev(&[1, 5, 9]),
        ),
        down_ev(
            row(
                "scaleDown with default policy and previous events",
                1,
                1000,
                10,
                5,
                5,
                "DesiredWithinRange",
            ),
            ev(&[1, 5, 9]),
        ),
        down_ev(
            down(
                row(
                    "scaleDown with spec MinReplicas=nil limitation with large pod policy and previous events",
                    1,
                    1000,
                    100,
                    0,
                    1,
                    "TooFewReplicas",
                ),
                generate(115, 120, 0, 0),
            ),
            ev(&[1, 5, 9]),
        ),
        down_ev(
            down(
                row(
                    "scaleDown with spec MinReplicas limitation with large pod policy and previous events",
                    5,
                    1000,
                    100,
                    0,
                    5,
                    "TooFewReplicas",
                ),
                generate(130, 120, 0, 0),
            ),
            ev(&[1, 5, 9]),
        ),
        down_ev(
            down(
                row(
                    "scaleDown with spec MinReplicas limitation with large percent policy and previous events",
                    5,
                    1000,
                    100,
                    2,
                    5,
                    "TooFewReplicas",
                ),
                generate(0, 0, 100, 120),
            ),
            ev(&[1, 5, 9]),
        ),
        down_ev(
            down(
                row(
                    "scaleDown with pod policy limitation and previous events",
                    1,
                    1000,
                    100,
                    2,
                    100,
                    "ScaleDownLimit",
                ),
                generate(5, 120, 0, 0),
            ),
            ev(&[1, 5, 9]),
        ),
        down_ev(
            down(
                row(
                    "scaleDown with percent policy limitation and previous events",
                    1,
                    1000,
                    100,
                    0,
                    56,
                    "ScaleDownLimit",
                ),
                generate(0, 0, 50, 120),
            ),
            ev(&[2, 4, 6]),
        ),
        down_ev(
            down(
                row(
                    "scaleDown with previous events preventing further scale down",
                    1,
                    1000,
                    100,
                    0,
                    100,
                    "ScaleDownLimit",
                ),
                generate(0, 0, 10, 120),
            ),
            ev(&[10, 10, 10]),
        ),
        down_ev(
            down(
                row(
                    "scaleDown with with previous events still allowing more scale down",
                    1,
                    1000,
                    10,
                    5,
                    5,
                    "DesiredWithinRange",
                ),
                generate(0, 0, 1000, 120),
            ),
            ev(&[10, 10, 10]),
        ),
        up_ev(
            up(
                row(
                    "check 'outdated' flag for events for one behavior for up",
                    1,
                    1000,
                    100,
                    200,
                    200,
                    "DesiredWithinRange",
                ),
                generate(1000, 60, 0, 0),
            ),
            ev(&[8, 12, 9, 11]),
        ),
        up_ev(
            up(
                row(
                    "check that events were not marked 'outdated' for two different policies in the behavior for up",
                    1,
                    1000,
                    100,
                    200,
                    200,
                    "DesiredWithinRange",
                ),
                generate(1000, 120, 100, 60),
            ),
            ev(&[8, 12, 9, 11]),
        ),
        up_ev(
            up(
                row(
                    "check that events were marked 'outdated' for two different policies in the behavior for up",
                    1,
                    1000,
                    100,
                    200,
                    200,
                    "DesiredWithinRange",
                ),
                generate(1000, 30, 100, 60),
            ),
            ev(&[8, 12, 9, 11]),
        ),
        down_ev(
            down(
                row(
                    "check 'outdated' flag for events for one behavior for down",
                    1,
                    1000,
                    100,
                    5,
                    5,
                    "DesiredWithinRange",
                ),
                generate(1000, 60, 0, 0),
            ),
            ev(&[8, 12, 9, 11]),
        ),
        down_ev(
            down(
                row(
                    "check that events were not marked 'outdated' for two different policies in the behavior for down",
                    1,
                    1000,
                    100,
                    5,
                    5,
                    "DesiredWithinRange",
                ),
                generate(1000, 120, 100, 60),
            ),
            ev(&[8, 12, 9, 11]),
        ),
        down_ev(
            down(
                row(
                    "check that events were marked 'outdated' for two different policies in the behavior for down",
                    1,
                    1000,
                    100,
                    5,
                    5,
                    "DesiredWithinRange",
                ),
                generate(1000, 30, 100, 60),
            ),
            ev(&[8, 12, 9, 11]),
        ),
    ]
}

/// `convertDesiredReplicasWithBehaviorRate` on `prenormalizedDesiredReplicas`: the engine gets
/// exactly that demand (per_worker 1, tolerance 0, no stabilization, as the upstream call
/// has none), HPA defaults (`GenerateHPAScaleUpRules(nil)`) where a row gives no rules.
#[test]
fn scaling_with_rules_table() {
    let rows = scaling_with_rules_rows();
    assert_eq!(rows.len(), 40);
    for r in rows {
        let mut rules = PoolRules::hpa(POOL, 1.0, 1, 1000);
        rules.bounds = Bounds {
            min: r.min,
            max: r.max,
        };
        if r.min == 0 {
            // minReplicas 0 is HPAScaleToZero; poolpilot says so explicitly.
            rules.scale_to_zero = Some(ScaleToZero::default());
        }
        rules.tolerance = Tolerance::both(0.0);
        rules.scale_down.stabilization = Duration::ZERO;
        if let Some(up) = r.up {
            rules.scale_up.rate = up;
        }
        if let Some(down) = r.down {
            rules.scale_down.rate = down;
        }
        let mut memory = Memory::default();
        let pool = memory.pool_mut(POOL);
        let ms = |ago: f64| Timestamp::from_secs_f64(1_800_000_000.0 - ago);
        for &(ago, change) in &r.up_events {
            pool.record_actuation(1000, 1000 + change, ms(ago));
        }
        for &(ago, change) in &r.down_events {
            pool.record_actuation(1000, 1000 - change, ms(ago));
        }
        let d = tick(&rules, &mut memory, f64::from(r.prenormalized), r.current);
        assert_eq!(d.desired, r.expected, "{}: {:?}", r.name, d.reasons);
        assert_eq!(condition(&d), r.condition, "{}: {:?}", r.name, d.reasons);
    }
}

/// `TestCalculateScaleUpLimitWithScalingRules` and `TestCalculateScaleDownLimitWithBehaviors`:
/// `selectPolicy: Min` over Pods 2/60s and Percent 50/60s.
#[test]
fn select_policy_min_limits() {
    let min_rules = RateRules {
        select: SelectPolicy::Min,
        ..generate(2, 60, 50, 60)
    };
    let mut rules = PoolRules::hpa(POOL, 1.0, 1, 1000);
    rules.tolerance = Tolerance::both(0.0);
    rules.scale_down.stabilization = Duration::ZERO;
    rules.scale_up.rate = min_rules.clone();
    rules.scale_down.rate = min_rules;
    // Up from 1: min(1 + 2, ceil(1 × 1.5)) = 2.
    assert_eq!(tick(&rules, &mut Memory::default(), 100.0, 1).desired, 2);
    // Down from 5: the smaller change of (5 − 2, floor(5 × 0.5)) = 3.
    assert_eq!(tick(&rules, &mut Memory::default(), 1.0, 5).desired, 3);
}

// ---------------------------------------------------------------------------------------------
// horizontal_test.go: TestNormalizeDesiredReplicas(WithBehavior)
// ---------------------------------------------------------------------------------------------

struct StabilizeRow {
    test: &'static str,
    /// (workers, seconds ago)
    recommendations: &'static [(u32, i64)],
    current: u32,
    prenormalized: u32,
    expected: u32,
    up_window: u64,
    down_window: u64,
}

const MIN: i64 = 60;

const STABILIZE_ROWS: &[StabilizeRow] = &[
    // TestNormalizeDesiredReplicas (no behavior: a 5-minute down window only; the old
    // `stabilizeRecommendation` ignores the current size, so every row scales down from 100).
    StabilizeRow {
        test: "TestNormalizeDesiredReplicas/empty log",
        recommendations: &[],
        current: 100,
        prenormalized: 5,
        expected: 5,
        up_window: 0,
        down_window: 300,
    },
    StabilizeRow {
        test: "TestNormalizeDesiredReplicas/stabilize",
        recommendations: &[(4, 2 * MIN), (5, MIN)],
        current: 100,
        prenormalized: 3,
        expected: 5,
        up_window: 0,
        down_window: 300,
    },
    StabilizeRow {
        test: "TestNormalizeDesiredReplicas/no stabilize",
        recommendations: &[(1, 2 * MIN), (2, MIN)],
        current: 100,
        prenormalized: 3,
        expected: 3,
        up_window: 0,
        down_window: 300,
    },
    StabilizeRow {
        test: "TestNormalizeDesiredReplicas/no stabilize - old recommendations",
        recommendations: &[(10, 10 * MIN), (9, 9 * MIN)],
        current: 100,
        prenormalized: 3,
        expected: 3,
        up_window: 0,
        down_window: 300,
    },
    StabilizeRow {
        test: "TestNormalizeDesiredReplicas/stabilize - old recommendations",
        recommendations: &[(10, 10 * MIN), (4, MIN), (5, 2 * MIN), (9, 9 * MIN)],
        current: 100,
        prenormalized: 3,
        expected: 5,
        up_window: 0,
        down_window: 300,
    },
    // TestNormalizeDesiredReplicasWithBehavior (windows as the row sets them, else 0).
    StabilizeRow {
        test: "TestNormalizeDesiredReplicasWithBehavior/empty recommendations for scaling down",
        recommendations: &[],
        current: 100,
        prenormalized: 5,
        expected: 5,
        up_window: 0,
        down_window: 0,
    },
    StabilizeRow {
        test: "TestNormalizeDesiredReplicasWithBehavior/simple scale down stabilization",
        recommendations: &[(4, 2 * MIN), (5, MIN)],
        current: 100,
        prenormalized: 3,
        expected: 5,
        up_window: 0,
        down_window: 180,
    },
    StabilizeRow {
        test: "TestNormalizeDesiredReplicasWithBehavior/simple scale up stabilization",
        recommendations: &[(4, 2 * MIN), (5, MIN)],
        current: 1,
        prenormalized: 7,
        expected: 4,
        up_window: 300,
        down_window: 0,
    },
    StabilizeRow {
        test: "TestNormalizeDesiredReplicasWithBehavior/no scale down stabilization",
        recommendations: &[(1, 2 * MIN), (2, MIN)],
        current: 100,
        prenormalized: 3,
        expected: 3,
        up_window: 300,
        down_window: 0,
    },
    StabilizeRow {
        test: "TestNormalizeDesiredReplicasWithBehavior/no scale up stabilization",
        recommendations: &[(4, 2 * MIN), (5, MIN)],
        current: 1,
        prenormalized: 3,
        expected: 3,
        up_window: 0,
        down_window: 300,
    },
    StabilizeRow {
        test: "TestNormalizeDesiredReplicasWithBehavior/no scale down stabilization, reuse recommendation element",
        recommendations: &[(10, 10 * MIN), (9, 9 * MIN)],
        current: 100,
        prenormalized: 3,
        expected: 3,
        up_window: 0,
        down_window: 0,
    },
    StabilizeRow {
        test: "TestNormalizeDesiredReplicasWithBehavior/no scale up stabilization, reuse recommendation element",
        recommendations: &[(10, 10 * MIN), (9, 9 * MIN)],
        current: 1,
        prenormalized: 100,
        expected: 100,
        up_window: 0,
        down_window: 0,
    },
    StabilizeRow {
        test: "TestNormalizeDesiredReplicasWithBehavior/scale down stabilization, reuse one of obsolete recommendation element",
        recommendations: &[(10, 10 * MIN), (4, MIN), (5, 2 * MIN), (9, 9 * MIN)],
        current: 100,
        prenormalized: 3,
        expected: 5,
        up_window: 0,
        down_window: 180,
    },
    StabilizeRow {
        test: "TestNormalizeDesiredReplicasWithBehavior/scale up stabilization, reuse one of obsolete recommendation element",
        recommendations: &[(10, 100 * MIN), (6, MIN), (5, 2 * MIN), (9, 3 * MIN)],
        current: 1,
        prenormalized: 100,
        expected: 5,
        up_window: 300,
        down_window: 0,
    },
];

/// `stabilizeRecommendation(WithBehaviors)`: rate limits wide open so only the windows act.
#[test]
fn normalize_desired_replicas_tables() {
    for row in STABILIZE_ROWS {
        let mut rules = PoolRules::hpa(POOL, 1.0, 1, 1000);
        rules.tolerance = Tolerance::both(0.0);
        rules.scale_up.stabilization = Duration::from_secs(row.up_window);
        rules.scale_down.stabilization = Duration::from_secs(row.down_window);
        rules.scale_up.rate = generate(10_000, 15, 0, 0);
        let mut memory = Memory::default();
        let pool = memory.pool_mut(POOL);
        for &(workers, ago) in row.recommendations {
            pool.recommendations.push_back(Recommendation {
                at: at(-ago),
                workers,
            });
        }
        let d = tick(
            &rules,
            &mut memory,
            f64::from(row.prenormalized),
            row.current,
        );
        assert_eq!(d.desired, row.expected, "{}: {:?}", row.test, d.reasons);
    }
    assert_eq!(STABILIZE_ROWS.len(), 14);
}
