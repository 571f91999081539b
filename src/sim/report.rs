//! Report rows (one per policy and baseline) and their renderings: a table for people, JSON for
//! tools. `--out` files (CSV timeline, SVG plot) are in `plot.rs`.

use std::fmt::Write as _;

use serde::Serialize;

use super::metrics::{Elasticity, JobStats, PoolStats};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    Policy,
    Baseline,
    Oracle,
}

/// One line of the report. The first keys are the contract of `--format json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub name: String,
    pub kind: RowKind,
    /// Accounted worker-hours: ∫ billed workers dt, booting included.
    pub worker_hours: f64,
    /// Charged money: billed worker-hours (rounded by the billing model) × price.
    pub cost: f64,
    /// Charged worker-hours ÷ OPT(B) worker-hours.
    pub cost_vs_oracle: f64,
    pub wait_mean_s: f64,
    pub wait_p50_s: f64,
    pub wait_p95_s: f64,
    pub wait_p99_s: f64,
    pub wait_max_s: f64,
    pub bounded_slowdown_mean: f64,
    pub jobs_waiting_over_60s_pct: f64,
    pub jobs_waiting_over_300s_pct: f64,
    pub utilization: f64,
    pub scale_up_events: usize,
    pub scale_down_events: usize,
    pub accuracy_under: f64,
    pub accuracy_over: f64,
    pub timeshare_under: f64,
    pub timeshare_over: f64,
    pub instability: f64,
    pub jitter: f64,
    // Beyond the contract.
    pub charged_worker_hours: f64,
    pub bounded_slowdown_p95: f64,
    pub instability_k: f64,
    pub instability_k_prime: f64,
    pub under_workers_mean: f64,
    pub over_workers_mean: f64,
    pub queued_units_mean: f64,
    pub queued_units_max: f64,
    pub peak_ready_workers: u32,
    pub launches: u64,
    pub jobs: usize,
    pub unfinished_jobs: usize,
    pub restarted_jobs: u64,
}

/// The measured parts of a row; `finish` adds the ratios.
pub struct RowInputs {
    pub name: String,
    pub kind: RowKind,
    pub accounted_hours: f64,
    pub charged_hours: f64,
    pub price_per_worker_hour: f64,
    pub oracle_hours: f64,
    pub jobs: JobStats,
    pub pool: PoolStats,
    pub elasticity: Elasticity,
    pub scale_ups: usize,
    pub scale_downs: usize,
    pub launches: u64,
    pub unfinished: usize,
    pub restarts: u64,
}

impl RowInputs {
    pub fn finish(self) -> Row {
        let (jobs, pool, e) = (self.jobs, self.pool, self.elasticity);
        Row {
            name: self.name,
            kind: self.kind,
            worker_hours: self.accounted_hours,
            cost: self.charged_hours * self.price_per_worker_hour,
            cost_vs_oracle: if self.oracle_hours > 0.0 {
                self.charged_hours / self.oracle_hours
            } else {
                0.0
            },
            wait_mean_s: jobs.wait_mean_s,
            wait_p50_s: jobs.wait_p50_s,
            wait_p95_s: jobs.wait_p95_s,
            wait_p99_s: jobs.wait_p99_s,
            wait_max_s: jobs.wait_max_s,
            bounded_slowdown_mean: jobs.bounded_slowdown_mean,
            jobs_waiting_over_60s_pct: jobs.waiting_over_60s_pct,
            jobs_waiting_over_300s_pct: jobs.waiting_over_300s_pct,
            utilization: pool.utilization,
            scale_up_events: self.scale_ups,
            scale_down_events: self.scale_downs,
            accuracy_under: e.accuracy_under,
            accuracy_over: e.accuracy_over,
            timeshare_under: e.timeshare_under,
            timeshare_over: e.timeshare_over,
            instability: e.instability,
            jitter: e.jitter,
            charged_worker_hours: self.charged_hours,
            bounded_slowdown_p95: jobs.bounded_slowdown_p95,
            instability_k: e.instability_k,
            instability_k_prime: e.instability_k_prime,
            under_workers_mean: e.under_workers_mean,
            over_workers_mean: e.over_workers_mean,
            queued_units_mean: pool.queued_units_mean,
            queued_units_max: pool.queued_units_max,
            peak_ready_workers: pool.ready_workers_max,
            launches: self.launches,
            jobs: jobs.jobs,
            unfinished_jobs: self.unfinished,
            restarted_jobs: self.restarts,
        }
    }
}

/// What the report header states about the run (traces-and-metrics §7 conventions).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Header {
    pub scenario: String,
    pub workload: String,
    pub trace_sha256: Option<String>,
    pub jobs: usize,
    pub records: u64,
    pub dropped_records: u64,
    pub capped_jobs: u64,
    pub worker_capacity: f64,
    pub boot_time_s: f64,
    pub max_workers: u32,
    pub job_model: String,
    pub billing: String,
    pub price_per_worker_hour: f64,
    pub tick_s: f64,
    pub conventions: &'static str,
}

pub const CONVENTIONS: &str = "d(t)=ceil((queued+running units)/C) endogenous; s(t)=ready workers (draining included); \
eps=1 worker; theta/tau/utilisation exact over step segments; instability on the tick grid; \
cost billed from launch request; oracle = fluid zero-wait OPT(B), per-second billing";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub header: Header,
    pub rows: Vec<Row>,
}

impl Report {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The terminal table.
    pub fn table(&self) -> String {
        let h = &self.header;
        let mut out = String::new();
        let _ = writeln!(out, "scenario {}: {}", h.scenario, h.workload);
        let _ = writeln!(
            out,
            "{} jobs ({} records, {} dropped by the filter, {} capped to the pool); C = {} units/worker, boot {} s, \
             max {} workers, {} model, billing {} at {}/worker-h, tick {} s",
            h.jobs,
            h.records,
            h.dropped_records,
            h.capped_jobs,
            h.worker_capacity,
            h.boot_time_s,
            h.max_workers,
            h.job_model,
            h.billing,
            h.price_per_worker_hour,
            h.tick_s
        );
        if let Some(sha) = &h.trace_sha256 {
            let _ = writeln!(out, "trace sha256 {sha}");
        }
        let _ = writeln!(out, "conventions: {CONVENTIONS}\n");
        let headings = [
            "row",
            "kind",
            "worker-h",
            "cost",
            "x opt",
            "wait mean",
            "p50",
            "p95",
            "p99",
            "max",
            "bsld",
            ">60s%",
            ">300s%",
            "util%",
            "ups",
            "downs",
            "thetaU%",
            "thetaO%",
            "tauU%",
            "tauO%",
            "instab%",
            "jitter/min",
        ];
        let mut lines: Vec<Vec<String>> = vec![headings.iter().map(|s| s.to_string()).collect()];
        for row in &self.rows {
            lines.push(vec![
                row.name.clone(),
                format!("{:?}", row.kind).to_lowercase(),
                format!("{:.1}", row.worker_hours),
                format!("{:.2}", row.cost),
                format!("{:.3}", row.cost_vs_oracle),
                format!("{:.1}", row.wait_mean_s),
                format!("{:.0}", row.wait_p50_s),
                format!("{:.0}", row.wait_p95_s),
                format!("{:.0}", row.wait_p99_s),
                format!("{:.0}", row.wait_max_s),
                format!("{:.2}", row.bounded_slowdown_mean),
                format!("{:.2}", row.jobs_waiting_over_60s_pct),
                format!("{:.2}", row.jobs_waiting_over_300s_pct),
                format!("{:.1}", row.utilization * 100.0),
                row.scale_up_events.to_string(),
                row.scale_down_events.to_string(),
                format!("{:.1}", row.accuracy_under),
                format!("{:.1}", row.accuracy_over),
                format!("{:.1}", row.timeshare_under),
                format!("{:.1}", row.timeshare_over),
                format!("{:.1}", row.instability),
                format!("{:.3}", row.jitter),
            ]);
        }
        let widths: Vec<usize> = (0..headings.len())
            .map(|c| {
                lines
                    .iter()
                    .map(|l| l[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for line in &lines {
            let cells: Vec<String> = line
                .iter()
                .enumerate()
                .map(|(c, cell)| {
                    if c < 2 {
                        format!("{cell:<w$}", w = widths[c])
                    } else {
                        format!("{cell:>w$}", w = widths[c])
                    }
                })
                .collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        }
        for row in self.rows.iter().filter(|r| r.unfinished_jobs > 0) {
            let _ = writeln!(
                out,
                "\nWARNING: {} left {} jobs unfinished (gave up 30 days after the last arrival)",
                row.name, row.unfinished_jobs
            );
        }
        out
    }
}
