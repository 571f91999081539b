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
    /// How this row removes workers (`sim::removal::describe`), or what the bound assumes.
    pub removal: String,
    /// Times a running job was stopped by a removal and had to run (some of) its work again.
    pub jobs_restarted: u64,
    /// Work thrown away by those kills, in worker-hours.
    pub work_lost_worker_hours: f64,
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
    pub work_lost_worker_hours: f64,
    pub removal: String,
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
            removal: self.removal,
            jobs_restarted: self.restarts,
            work_lost_worker_hours: self.work_lost_worker_hours,
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
    /// The engine the workers run (`pool.engine`): its removal model is the stock baselines'.
    pub engine: String,
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
cost billed from launch request; oracle = fluid zero-wait OPT(B): no max, no packing, no billing minimum";

/// Where a policy's cost difference with a baseline comes from: the baseline's stock row vs
/// the same sizing with poolpilot's removal (`…+idle-first`) is what removal is worth; that
/// row vs the policy is what sizing is worth. Percentages of the stock baseline's cost; they
/// add up to `cost_change_pct`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attribution {
    pub policy: String,
    pub baseline: String,
    pub idle_first: String,
    pub cost_change_pct: f64,
    pub removal_pct: f64,
    pub sizing_pct: f64,
    pub wait_p95_s: f64,
    pub baseline_wait_p95_s: f64,
    pub idle_first_wait_p95_s: f64,
}

/// (stock baseline, same sizing with poolpilot's removal).
pub const PAIRS: &[(&str, &str)] = &[
    ("hpa", "hpa+idle-first"),
    ("keda-airflow-chart", "keda+idle-first"),
];

impl Attribution {
    /// One line: `vs hpa: −31 % cost, of which removal −29 %, sizing −2 %; p95 wait …`, prefixed
    /// with the policy's name when `named` (several policies in one report).
    pub fn line(&self, named: bool) -> String {
        let prefix = if named {
            format!("{} ", self.policy)
        } else {
            String::new()
        };
        format!(
            "{prefix}vs {}: {} cost, of which removal {}, sizing {}; p95 wait {:.0} s vs {:.0} s (+idle-first {:.0} s)",
            self.baseline,
            percent(self.cost_change_pct),
            percent(self.removal_pct),
            percent(self.sizing_pct),
            self.wait_p95_s,
            self.baseline_wait_p95_s,
            self.idle_first_wait_p95_s,
        )
    }
}

fn percent(value: f64) -> String {
    let sign = if value < 0.0 { "−" } else { "+" };
    if value.abs() >= 10.0 {
        format!("{sign}{:.0} %", value.abs())
    } else {
        format!("{sign}{:.1} %", value.abs())
    }
}

/// Every policy row against every (baseline, +idle-first) pair present.
pub fn attribution(rows: &[Row]) -> Vec<Attribution> {
    let find = |name: &str| rows.iter().find(|r| r.name == name);
    let mut out = Vec::new();
    for policy in rows.iter().filter(|r| r.kind == RowKind::Policy) {
        for (stock, idle) in PAIRS {
            let (Some(stock), Some(idle)) = (find(stock), find(idle)) else {
                continue;
            };
            if stock.cost <= 0.0 {
                continue;
            }
            let pct = |value: f64| value / stock.cost * 100.0;
            out.push(Attribution {
                policy: policy.name.clone(),
                baseline: stock.name.clone(),
                idle_first: idle.name.clone(),
                cost_change_pct: pct(policy.cost - stock.cost),
                removal_pct: pct(idle.cost - stock.cost),
                sizing_pct: pct(policy.cost - idle.cost),
                wait_p95_s: policy.wait_p95_s,
                baseline_wait_p95_s: stock.wait_p95_s,
                idle_first_wait_p95_s: idle.wait_p95_s,
            });
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub header: Header,
    pub rows: Vec<Row>,
    pub attribution: Vec<Attribution>,
}

/// One column: heading, whether it is in the default (narrow) table, and its cell.
type Column = (&'static str, bool, fn(&Row) -> String);

const COLUMNS: &[Column] = &[
    ("row", true, |r| r.name.clone()),
    ("kind", false, |r| format!("{:?}", r.kind).to_lowercase()),
    ("worker-h", true, |r| format!("{:.1}", r.worker_hours)),
    ("cost", true, |r| format!("{:.2}", r.cost)),
    ("x opt", true, |r| format!("{:.3}", r.cost_vs_oracle)),
    ("wait mean", false, |r| format!("{:.1}", r.wait_mean_s)),
    ("p50", true, |r| format!("{:.0}", r.wait_p50_s)),
    ("p95", true, |r| format!("{:.0}", r.wait_p95_s)),
    ("p99", true, |r| format!("{:.0}", r.wait_p99_s)),
    ("max", false, |r| format!("{:.0}", r.wait_max_s)),
    ("bsld", false, |r| format!("{:.2}", r.bounded_slowdown_mean)),
    (">60s%", false, |r| {
        format!("{:.2}", r.jobs_waiting_over_60s_pct)
    }),
    (">300s%", true, |r| {
        format!("{:.2}", r.jobs_waiting_over_300s_pct)
    }),
    ("util%", true, |r| format!("{:.1}", r.utilization * 100.0)),
    ("ups", false, |r| r.scale_up_events.to_string()),
    ("downs", false, |r| r.scale_down_events.to_string()),
    ("thetaU%", false, |r| format!("{:.1}", r.accuracy_under)),
    ("thetaO%", false, |r| format!("{:.1}", r.accuracy_over)),
    ("tauU%", false, |r| format!("{:.1}", r.timeshare_under)),
    ("tauO%", false, |r| format!("{:.1}", r.timeshare_over)),
    ("instab%", false, |r| format!("{:.1}", r.instability)),
    ("jitter/min", false, |r| format!("{:.3}", r.jitter)),
    ("restarts", true, |r| r.jobs_restarted.to_string()),
    ("lost w-h", true, |r| {
        format!("{:.1}", r.work_lost_worker_hours)
    }),
];

/// One line per column group.
const LEGEND: &[(bool, &str)] = &[
    (
        true,
        "cost: worker-h accounted (boot included); cost = charged worker-h x price; x opt = charged / OPT(B)",
    ),
    (
        true,
        "wait (s): p50/p95/p99 queue wait (a rerun job's wait runs to the start that finished); >300s% jobs waiting > 5 min",
    ),
    (true, "pool: util% = running units / ready capacity"),
    (
        true,
        "kills: restarts = jobs stopped by a removal that ran (part of) their work again; lost w-h = work thrown away",
    ),
    (
        false,
        "elasticity (SPEC RG): thetaU/O% under/over-provisioning accuracy, tauU/O% time share, instab% sign mismatch",
    ),
];

impl Report {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The terminal table: ≤ 120 columns; `wide` adds every elasticity and wait column.
    pub fn table(&self, wide: bool) -> String {
        let h = &self.header;
        let mut out = String::new();
        let _ = writeln!(out, "scenario {}: {}", h.scenario, h.workload);
        let _ = writeln!(
            out,
            "{} jobs ({} records, {} dropped by the filter, {} capped to the pool)",
            h.jobs, h.records, h.dropped_records, h.capped_jobs,
        );
        let _ = writeln!(
            out,
            "pool: C = {} units/worker, boot {} s, max {} workers, {} model, {} engine",
            h.worker_capacity, h.boot_time_s, h.max_workers, h.job_model, h.engine,
        );
        let _ = writeln!(
            out,
            "billing {} at {}/worker-h, tick {} s",
            h.billing, h.price_per_worker_hour, h.tick_s
        );
        if let Some(sha) = &h.trace_sha256 {
            let _ = writeln!(out, "trace sha256 {sha}");
        }
        if wide {
            let _ = writeln!(out, "conventions: {CONVENTIONS}");
        }
        let _ = writeln!(out);
        let columns: Vec<&Column> = COLUMNS.iter().filter(|c| wide || c.1).collect();
        let mut lines: Vec<Vec<String>> = vec![columns.iter().map(|c| c.0.to_string()).collect()];
        for row in &self.rows {
            lines.push(columns.iter().map(|c| (c.2)(row)).collect());
        }
        let widths: Vec<usize> = (0..columns.len())
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
                    if columns[c].0 == "row" || columns[c].0 == "kind" {
                        format!("{cell:<w$}", w = widths[c])
                    } else {
                        format!("{cell:>w$}", w = widths[c])
                    }
                })
                .collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        }
        let _ = writeln!(out);
        for (in_narrow, text) in LEGEND {
            if wide || *in_narrow {
                let _ = writeln!(out, "{text}");
            }
        }
        let name_width = self
            .rows
            .iter()
            .map(|r| r.name.chars().count())
            .max()
            .unwrap_or(0);
        let _ = writeln!(out, "removal:");
        for row in &self.rows {
            let _ = writeln!(out, "  {:<name_width$}  {}", row.name, row.removal);
        }
        if !self.attribution.is_empty() {
            let _ = writeln!(out);
            let policies = self
                .rows
                .iter()
                .filter(|r| r.kind == RowKind::Policy)
                .count();
            for attribution in &self.attribution {
                let _ = writeln!(out, "{}", attribution.line(policies > 1));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, kind: RowKind, charged_hours: f64, restarts: u64) -> Row {
        RowInputs {
            name: name.into(),
            kind,
            accounted_hours: charged_hours * 1000.0,
            charged_hours: charged_hours * 1000.0,
            price_per_worker_hour: 3.072,
            oracle_hours: 1000.0,
            jobs: Default::default(),
            pool: Default::default(),
            elasticity: Default::default(),
            scale_ups: 12345,
            scale_downs: 12345,
            launches: 0,
            unfinished: 0,
            restarts,
            work_lost_worker_hours: 12345.6,
            removal: "closest to next hour; busy killed at once; in-flight tasks rerun".into(),
        }
        .finish()
    }

    fn report() -> Report {
        let rows = vec![
            row("a-long-policy-name", RowKind::Policy, 100.0, 0),
            row("hpa", RowKind::Baseline, 200.0, 1_234_567),
            row("hpa+idle-first", RowKind::Baseline, 150.0, 0),
            row("keda-airflow-chart", RowKind::Baseline, 200.0, 1_234_567),
            row("keda+idle-first", RowKind::Baseline, 90.0, 0),
            row("oracle", RowKind::Oracle, 1.0, 0),
        ];
        let header = Header {
            scenario: "s".into(),
            workload: "w".into(),
            trace_sha256: None,
            jobs: 1_000_000,
            records: 1_000_000,
            dropped_records: 1_000_000,
            capped_jobs: 1_000_000,
            engine: "spark".into(),
            worker_capacity: 64.0,
            boot_time_s: 120.0,
            max_workers: 5000,
            job_model: "moldable".into(),
            billing: "per second, 60s minimum".into(),
            price_per_worker_hour: 3.072,
            tick_s: 10.0,
            conventions: CONVENTIONS,
        };
        Report {
            header,
            attribution: attribution(&rows),
            rows,
        }
    }

    #[test]
    fn the_default_table_fits_120_columns_and_wide_has_everything() {
        let report = report();
        let narrow = report.table(false);
        for line in narrow.lines() {
            assert!(line.chars().count() <= 120, "{} chars: {line}", line.len());
        }
        let wide = report.table(true);
        assert!(wide.contains("thetaU%") && !narrow.contains("thetaU%"));
        assert!(narrow.contains("restarts") && narrow.contains("lost w-h"));
        assert!(narrow.contains("removal:"));
    }

    #[test]
    fn attribution_splits_the_cost_change_into_removal_and_sizing() {
        let report = report();
        let [hpa, keda] = &report.attribution[..] else {
            panic!("{:?}", report.attribution)
        };
        let close = |a: (f64, f64, f64), b: (f64, f64, f64)| {
            (a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9 && (a.2 - b.2).abs() < 1e-9
        };
        let split = |a: &Attribution| (a.cost_change_pct, a.removal_pct, a.sizing_pct);
        assert!(close(split(hpa), (-50.0, -25.0, -25.0)), "{hpa:?}");
        assert!(
            close(split(keda), (-50.0, -55.0, 5.0)),
            "sizing alone loses to keda+idle-first: said so, with its sign: {keda:?}"
        );
        assert!(
            hpa.line(false)
                .starts_with("vs hpa: −50 % cost, of which removal −25 %, sizing −25 %"),
            "{}",
            hpa.line(false)
        );
        assert!(keda.line(false).contains("sizing +5.0 %"));
    }
}
