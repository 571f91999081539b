//! Alibaba cluster-trace-v2017 `batch_task.csv`, replayed at job level (traces-and-metrics §2.5).
//!
//! All tasks of a job are created in the same second and their DAG waits sit inside each task's
//! create→end interval, so tasks are not replayed one by one. Per job:
//! - arrival = min task create time;
//! - width = max over tasks of `instance_num · plan_cpu / 100` cores;
//! - work = Σ over tasks of `instance_num · plan_cpu / 100 · (end − create) · κ` core-seconds
//!   (an upper bound at κ = 1, because create→end includes waiting);
//! - runtime at full width = work / width (the pool replays it as a moldable job).
//!
//! Usable tasks: status Terminated or Failed (both consumed capacity), a plan_cpu, and
//! end > create. Waiting and Running tasks have no end time and are dropped.

use std::collections::BTreeMap;

use anyhow::{Context, bail};

use super::{Job, Workload, limits, to_centi};
use crate::time::Timestamp;

/// The trace has only relative seconds. Second 0 is placed at this instant (the trace was
/// published as `trace_201708`; the absolute date is an assumption, only relevant to
/// time-of-day schedules in policies).
pub const ASSUMED_START: Timestamp = Timestamp(1_501_545_600_000); // 2017-08-01T00:00:00Z

#[derive(Debug, Default)]
struct JobAccumulator {
    arrival: i64,
    width_cores: f64,
    work_core_seconds: f64,
}

/// Parses the CSV (with or without the third-party header line).
pub fn parse(text: &str, name: &str, kappa: f64) -> anyhow::Result<Workload> {
    if !(kappa > 0.0 && kappa <= 1.0) {
        bail!("kappa must be in (0, 1], got {kappa}");
    }
    let mut jobs: BTreeMap<i64, JobAccumulator> = BTreeMap::new();
    let mut records = 0u64;
    let mut usable_tasks = 0u64;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (index == 0 && line.starts_with("task_create_time")) {
            continue;
        }
        records += 1;
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() < 7 {
            bail!(
                "{name}:{}: {} columns, batch_task.csv has 8",
                index + 1,
                fields.len()
            );
        }
        let number = |column: usize| -> anyhow::Result<f64> {
            fields[column].parse::<f64>().with_context(|| {
                format!(
                    "{name}:{}: column {} is not a number",
                    index + 1,
                    column + 1
                )
            })
        };
        if !matches!(fields[5], "Terminated" | "Failed") || fields[6].is_empty() {
            continue;
        }
        let line = index + 1;
        let span = limits::MAX_SPAN_SECS as f64;
        let (create, end) = (number(0)?, number(1)?);
        // Relative seconds; tasks created before the window are negative in the real trace.
        limits::check(
            name,
            line,
            "task_create_time (column 1)",
            create,
            -span,
            span,
        )?;
        limits::check(name, line, "task_end_time (column 2)", end, -span, span)?;
        let (create, end) = (create as i64, end as i64);
        let instances = number(4)?;
        let max_width = limits::MAX_WIDTH_UNITS;
        limits::check(
            name,
            line,
            "number_of_instances (column 5)",
            instances,
            0.0,
            max_width,
        )?;
        let plan_cpu = number(6)?;
        limits::check(
            name,
            line,
            "plan_cpu (column 7)",
            plan_cpu,
            0.0,
            max_width * 100.0,
        )?;
        let cores = instances * plan_cpu / 100.0;
        limits::check(name, line, "cores of the task", cores, 0.0, max_width)?;
        if end <= create || cores <= 0.0 {
            continue;
        }
        usable_tasks += 1;
        let job_id = number(2)? as i64;
        let job = jobs.entry(job_id).or_insert(JobAccumulator {
            arrival: create,
            ..Default::default()
        });
        job.arrival = job.arrival.min(create);
        job.width_cores = job.width_cores.max(cores);
        job.work_core_seconds += cores * (end - create) as f64 * kappa;
    }
    let jobs: Vec<Job> = jobs
        .values()
        .map(|job| {
            let width = to_centi(job.width_cores).max(1);
            let runtime_ms = (job.work_core_seconds / job.width_cores * 1000.0)
                .ceil()
                .max(1.0) as i64;
            Job {
                arrival: Timestamp(ASSUMED_START.0 + job.arrival * 1000),
                width,
                runtime_ms,
            }
        })
        .collect();
    let mut workload = Workload::new(
        jobs,
        format!(
            "{name} (Alibaba 2017 batch_task, job level, moldable; kappa {kappa}; \
             tasks Terminated|Failed with end>create)"
        ),
    );
    workload.records = records;
    workload.dropped = records - usable_tasks;
    Ok(workload)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
task_create_time, task_end_time, job_id, task_id,number_of_instances, status, number_of_cpus_requested_per_instance_in_the_task,normalized_memory_requested_per_instance_in_the_task
100,160,7,1,4,Terminated,50,0.01
101,131,7,2,1,Terminated,300,0.01
90,0,7,3,1,Waiting,,0.01
200,260,8,1,2,Failed,100,0.01
300,0,9,1,2,Running,100,0.01
";

    #[test]
    fn job_level_width_work_and_arrival() {
        let workload = parse(SAMPLE, "t.csv", 1.0).unwrap();
        assert_eq!(workload.records, 5);
        assert_eq!(workload.dropped, 2, "waiting and running tasks have no end");
        assert_eq!(workload.jobs.len(), 2);
        let job7 = workload.jobs[0];
        assert_eq!(job7.arrival, Timestamp(ASSUMED_START.0 + 100_000));
        assert_eq!(job7.width, 300, "max(4·0.5, 1·3) = 3 cores");
        // work = 2 cores·60 s + 3 cores·30 s = 210 core-s; at width 3 → 70 s
        assert_eq!(job7.runtime_ms, 70_000);
        assert_eq!(workload.jobs[1].width, 200);
    }

    #[test]
    fn impossible_times_are_refused_with_file_line_and_column() {
        let end = "100,18446744073709551616,7,1,4,Terminated,50,0.01\n";
        let error = format!("{:#}", parse(end, "t.csv", 1.0).unwrap_err());
        assert!(
            error.contains("t.csv:1: task_end_time (column 2)"),
            "{error}"
        );
        let start = "999999999999,999999999999,7,1,4,Terminated,50,0.01\n";
        let error = format!("{:#}", parse(start, "t.csv", 1.0).unwrap_err());
        assert!(
            error.contains("t.csv:1: task_create_time (column 1)"),
            "{error}"
        );
    }

    #[test]
    fn kappa_derates_work() {
        let workload = parse(SAMPLE, "t.csv", 0.5).unwrap();
        assert_eq!(workload.jobs[0].runtime_ms, 35_000);
        assert!(parse(SAMPLE, "t.csv", 0.0).is_err());
    }
}
