//! After each tick: one log line per non-trivial decision (written for an operator), the
//! metrics, the `/status` document and the recording.

use super::actuation::Actuation;
use super::controller::Controller;
use super::pool_metrics::PoolMetrics;
use super::shadow::{self, ShadowPool};
use super::status::{
    BudgetStatus, DrainView, PauseView, PoolView, ReasonView, ShadowView, SignalView, SpendView,
};
use crate::actuators::PoolStatus;
use crate::engine::signal::demand_in_workers;
use crate::engine::{Decision, PauseKind, PoolRules, Signal, WorkerCounts, World, pause};
use crate::policy::Mode;
use crate::telemetry::names;
use crate::time::Timestamp;

impl Controller {
    pub(super) fn report(
        &mut self,
        world: &World,
        decisions: &[Decision],
        now: Timestamp,
        leader: bool,
    ) {
        let mut views = Vec::with_capacity(decisions.len());
        let (mut spend_per_hour, mut desired_per_hour) = (0.0, 0.0);
        for (i, d) in decisions.iter().enumerate() {
            let pool = &mut self.pools[i];
            let rules = &self.rules[i];
            let actuation = Actuation::of(d.mode, self.cfg.dry_run, leader);
            let draining = self.loops.draining(&d.pool);
            let held_because = pool
                .status_error
                .clone()
                .or_else(|| draining.then(|| "a scale-down (drain) is under way".into()));
            let labels: Vec<&'static str> = d.reasons.iter().map(|r| r.label()).collect();
            if self.loops.of(&d.pool).log_changed(d.desired, labels) {
                log_decision(d, actuation, held_because.as_deref());
            }

            let price = rules.cost.per_worker_hour;
            let known = pool.status.as_ref();
            let shadow = self
                .shadows
                .get(&d.pool)
                .map(|sh| shadow_view(sh, rules, known, &world.pools[i].signals, price, now));
            if let Some(v) = &shadow {
                metrics::gauge!(names::SHADOW_WORKERS, &[("pool", d.pool.clone())])
                    .set(f64::from(v.would_be_workers));
                metrics::gauge!(names::SHADOW_COST_PER_HOUR, &[("pool", d.pool.clone())])
                    .set(v.would_be_cost_per_hour);
                if let Some(wait) = v.would_be_est_queue_wait_seconds {
                    metrics::gauge!(
                        names::SHADOW_EST_QUEUE_WAIT_SECONDS,
                        &[("pool", d.pool.clone())]
                    )
                    .set(wait);
                }
            }
            // The budget counts what really runs: a shadow pool's real size, never its would-be.
            if rules.mode == Mode::Shadow {
                spend_per_hour += f64::from(known.map_or(0, |s| s.desired)) * price;
            } else {
                spend_per_hour += f64::from(d.current) * price;
                desired_per_hour += f64::from(d.desired) * price;
            }
            let m = &mut pool.metrics;
            m.desired.set(f64::from(d.desired));
            if let Some(s) = known {
                m.current.set(f64::from(s.desired));
                m.ready.set(f64::from(s.ready));
            }
            let direction = d.direction().map_or("hold", |x| x.as_str());
            m.decision(direction, d.final_reason()).increment(1);
            let spend = self
                .memory
                .pools
                .get(&d.pool)
                .map(|m| m.spend)
                .unwrap_or_default();
            m.spend_total.set(spend.money);
            m.drains_in_flight.set(if draining { 1.0 } else { 0.0 });
            bounds_and_demand_metrics(m, rules, &world.pools[i].signals, known, price);
            let pauses = pause::in_force(&world.pools[i].pauses, now);
            for (kind, gauge) in PauseKind::LABELS.iter().zip(&m.paused) {
                let on = pauses.iter().any(|p| p.kind.label() == *kind);
                gauge.set(if on { 1.0 } else { 0.0 });
            }
            let pauses: Vec<PauseView> = pauses.iter().map(PauseView::of).collect();

            let signals = pool
                .signals
                .iter()
                .zip(&world.pools[i].signals)
                .enumerate()
                .map(|(index, (rt, signal))| {
                    let mut v = SignalView {
                        index,
                        kind: rt.spec.kind_name(),
                        source: rt.source.name().to_string(),
                        ..SignalView::default()
                    };
                    match signal {
                        Signal::Value {
                            demand,
                            observed_at,
                        } => {
                            v.state = "fresh";
                            v.demand = Some(*demand);
                            v.observed_at = Some(*observed_at);
                            v.age_seconds = Some(now.since(*observed_at).as_secs_f64());
                        }
                        Signal::Missing { since, fault } => {
                            v.state = "missing";
                            v.missing_since = Some(*since);
                            v.fault = Some(fault.label());
                            v.error = rt.last_error.clone();
                            if let Some((at, reading)) = &rt.last_good {
                                v.demand = Some(reading.demand);
                                v.observed_at = Some(*at);
                                v.age_seconds = Some(now.since(*at).as_secs_f64());
                            }
                        }
                    }
                    v
                })
                .collect();
            views.push(PoolView {
                pool: d.pool.clone(),
                mode: d.mode.as_str().to_string(),
                actuation: actuation.as_str().to_string(),
                platform: pool.actuator.as_ref().map(|a| a.platform().to_string()),
                current: known.map(|s| s.desired),
                ready: known.map(|s| s.ready),
                desired: Some(d.desired),
                held_because,
                reasons: d
                    .reasons
                    .iter()
                    .map(|r| ReasonView {
                        stage: r.label(),
                        text: r.to_string(),
                    })
                    .collect(),
                signals,
                spend: SpendView {
                    money_total: spend.money,
                    worker_hours_total: spend.worker_seconds / 3600.0,
                    price_per_worker_hour: price,
                    per_hour_now: f64::from(d.current) * price,
                    max_per_hour: rules.cost.max_per_hour,
                },
                shadow,
                last_actuation: self
                    .loops
                    .get(&d.pool)
                    .and_then(|l| l.last_actuation())
                    .cloned(),
                drain_in_flight: self.loops.get(&d.pool).and_then(|l| l.drain()).map(|t| {
                    DrainView {
                        from: t.from,
                        to: t.to,
                        since: t.since,
                        aborting: t.aborting,
                    }
                }),
                paused: pauses.first().cloned(),
                pauses,
                pause_problems: pool.pause_problems.clone(),
            });
        }
        metrics::gauge!(names::BUDGET_SPEND_PER_HOUR).set(spend_per_hour);
        if let Some(limit) = self.cfg.global_budget_per_hour {
            metrics::gauge!(names::BUDGET_LIMIT_PER_HOUR).set(limit);
        }
        metrics::gauge!(names::LEADER).set(if leader { 1.0 } else { 0.0 });
        metrics::gauge!(names::LAST_TICK_TIMESTAMP_SECONDS).set(now.as_secs_f64());

        let mut b = self.board.write().unwrap_or_else(|p| p.into_inner());
        b.leader = leader;
        b.ticks = self.ticks;
        b.last_tick_at = Some(now);
        b.budget = self.cfg.global_budget_per_hour.map(|limit| BudgetStatus {
            limit_per_hour: limit,
            spend_per_hour,
            desired_per_hour,
        });
        b.pools = views;
    }
}

/// The would-be pool (after this tick's would-be change) beside the real one.
fn shadow_view(
    shadow: &ShadowPool,
    rules: &PoolRules,
    real: Option<&PoolStatus>,
    signals: &[Signal],
    price: f64,
    now: Timestamp,
) -> ShadowView {
    let needed = demand_in_workers(&rules.per_worker, signals);
    let mut would_be = shadow.clone();
    let counts = would_be.counts(rules, now);
    let real_counts = real.map(|s| WorkerCounts {
        requested: s.desired,
        ready: s.ready,
    });
    let wait = |c: WorkerCounts, boots: &[(Timestamp, u32)]| {
        needed.and_then(|n| shadow::estimated_wait_seconds(n, c, boots, rules, now))
    };
    ShadowView {
        would_be_workers: shadow.workers,
        would_be_ready: counts.ready,
        would_be_cost_per_hour: f64::from(shadow.workers) * price,
        would_be_est_queue_wait_seconds: wait(counts, &would_be.boots),
        real_workers: real_counts.map(|c| c.requested),
        real_cost_per_hour: real_counts.map(|c| f64::from(c.requested) * price),
        real_est_queue_wait_seconds: real_counts.and_then(|c| wait(c, &[])),
        demand_in_workers: needed,
    }
}

/// Logs a decision when it differs from the pool's last logged one (size or reason chain), so a
/// steady pool stays quiet and every change is explained once.
fn log_decision(d: &Decision, actuation: Actuation, held_because: Option<&str>) {
    let trivial = d.desired == d.current
        && d.reasons.iter().all(|r| {
            matches!(
                r.label(),
                "raw"
                    | "within_tolerance"
                    | "backlog"
                    | "backlog_unknown"
                    | "forecast"
                    | "forecast_off"
            )
        });
    if trivial {
        return;
    }
    let why = d
        .reasons
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    let verb = match d.direction() {
        Some(dir) => format!(
            "wants scale-{} {} -> {}",
            dir.as_str(),
            d.current,
            d.desired
        ),
        None => format!("holds at {}", d.current),
    };
    tracing::info!(
        pool = %d.pool,
        current = d.current,
        desired = d.desired,
        mode = d.mode.as_str(),
        actuation = actuation.as_str(),
        reason = d.final_reason(),
        held_because = held_because.unwrap_or(""),
        "pool {} {verb}: {why}",
        d.pool
    );
}

/// What the dashboard and the alerts compare a pool's size with: its bounds, the demand in
/// workers, and its spend rate against its cost cap (`deploy/grafana`, `deploy/prometheus`).
fn bounds_and_demand_metrics(
    m: &PoolMetrics,
    rules: &PoolRules,
    signals: &[Signal],
    known: Option<&PoolStatus>,
    price: f64,
) {
    m.min.set(f64::from(rules.bounds.min));
    m.max.set(f64::from(rules.bounds.max));
    if let Some(needed) = demand_in_workers(&rules.per_worker, signals) {
        m.demand.set(needed);
    }
    if let Some(s) = known {
        m.spend_per_hour.set(f64::from(s.desired) * price);
    }
    if let Some(cap) = rules.cost.max_per_hour {
        m.max_spend_per_hour.set(cap);
    }
}
