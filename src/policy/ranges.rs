//! Every number and duration of a policy within a range that means something. Outside it a
//! value is a typo or an attack, never a setting: `per_worker: 1e-320` turns any demand into
//! infinitely many workers, a cooldown of 584 billion years overflows time arithmetic, `1ns`
//! is below what a tick can observe.

use std::time::Duration;

use super::model::*;
use super::names;
use super::problem::{Problem, problem};

/// Largest pool: far above any real one, small enough that worker arithmetic never overflows.
pub const MAX_WORKERS: u32 = 100_000;
const SECOND: Duration = Duration::from_secs(1);
const DAY: Duration = Duration::from_secs(86_400);

pub(super) fn check(f: &PolicyFile, out: &mut Vec<Problem>) {
    if f.bounds.max > MAX_WORKERS {
        out.push(problem(
            "bounds.max",
            format!("must be at most {MAX_WORKERS}"),
        ));
    }
    for (i, s) in f.signals.iter().enumerate() {
        number(
            &format!("signals[{i}].per_worker"),
            s.per_worker,
            1e-3,
            1e9,
            out,
        );
        let secrets = s.source().map(|k| k.secrets()).unwrap_or_default();
        for (field, secret) in secrets {
            check_secret(&format!("signals[{i}].{field}"), secret, out);
        }
        if let Some(d) = &s.airflow_db {
            duration(
                &format!("signals[{i}].airflow_db.timeout"),
                d.timeout,
                Duration::from_millis(100),
                Duration::from_secs(600),
                out,
            );
        }
    }
    duration("boot_time", f.boot_time, Duration::ZERO, DAY, out);
    optional_duration("scale_up.cooldown", f.scale_up.cooldown, DAY, out);
    optional_duration("scale_down.cooldown", f.scale_down.cooldown, DAY, out);
    for (dir, step) in [
        ("scale_up", &f.scale_up.max_step),
        ("scale_down", &f.scale_down.max_step),
    ] {
        if step.period < SECOND && !step.period.is_zero() {
            out.push(problem(
                format!("{dir}.max_step.period"),
                "must be at least 1s",
            ));
        }
        if step.percent.is_some_and(|p| p > 10_000) {
            out.push(problem(
                format!("{dir}.max_step.percent"),
                "must be at most 10000 (100 times the pool per period)",
            ));
        }
        if step.workers.is_some_and(|w| w > MAX_WORKERS) {
            out.push(problem(
                format!("{dir}.max_step.workers"),
                format!("must be at most {MAX_WORKERS}"),
            ));
        }
    }
    duration(
        "scale_down.drain.timeout",
        f.scale_down.drain.timeout,
        SECOND,
        DAY,
        out,
    );
    duration(
        "on_missing_signal.hold_for",
        f.on_missing_signal.hold_for,
        Duration::ZERO,
        DAY,
        out,
    );
    if let Some(z) = f.scale_to_zero {
        number(
            "scale_to_zero.activation_threshold",
            z.activation_threshold,
            0.0,
            1e12,
            out,
        );
    }
    if let Some(c) = &f.cost {
        number("cost.per_worker_hour", c.per_worker_hour, 0.0, 1e9, out);
        if let Some(max) = c.max_per_hour {
            number("cost.max_per_hour", max, 0.0, 1e12, out);
        }
    }
    for (i, s) in f.schedules.iter().enumerate() {
        duration(
            &format!("schedules[{i}].for"),
            s.duration,
            SECOND,
            7 * DAY,
            out,
        );
    }
    if let Some(fb) = f.flap_budget
        && fb.max_reversals_per_hour > 3600
    {
        out.push(problem(
            "flap_budget.max_reversals_per_hour",
            "must be at most 3600",
        ));
    }
}

fn check_secret(field: &str, secret: &SecretRef, out: &mut Vec<Problem>) {
    match secret {
        SecretRef::Env(name) => {
            if let Err(why) = names::env_var(name) {
                out.push(problem(format!("{field}.env"), why));
            }
        }
        SecretRef::File(path) if path.as_os_str().is_empty() => {
            out.push(problem(format!("{field}.file"), "must not be empty"));
        }
        SecretRef::File(_) => {}
    }
}

/// `value` finite and within `[min, max]`; `min` itself is allowed only when it is 0.
fn number(field: &str, value: f64, min: f64, max: f64, out: &mut Vec<Problem>) {
    let low_ok = if min == 0.0 {
        value >= 0.0
    } else {
        value >= min
    };
    if !(low_ok && value <= max) {
        out.push(problem(
            field,
            format!("must be a number from {min} to {max}"),
        ));
    }
}

fn duration(field: &str, d: Duration, min: Duration, max: Duration, out: &mut Vec<Problem>) {
    if d < min || d > max {
        out.push(problem(
            field,
            format!(
                "must be from {} to {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
}

/// 0 (off), or from 1s to `max`.
fn optional_duration(field: &str, d: Duration, max: Duration, out: &mut Vec<Problem>) {
    if !d.is_zero() {
        duration(field, d, SECOND, max, out);
    }
}
