//! Semantic checks of one policy file. Each problem names its field path, so the caller can
//! attach the line and column from the YAML document.

use super::model::*;
use super::problem::{Problem, check_url, problem};
use super::schedule::Schedule;
use super::source::{NotOneKind, SourceKind};
use super::{names, ranges};

/// The HPA's API limits for stabilization windows and rate-limit periods.
const MAX_WINDOW_SECS: u64 = 3600;
const MAX_PERIOD_SECS: u64 = 1800;
/// Backlog deadlines: at least a second, at most a day.
const MIN_DEADLINE_SECS: u64 = 1;
const MAX_DEADLINE_SECS: u64 = 86_400;

/// Semantic checks of one file; returns compiled schedules and every problem found.
pub(super) fn check_file(f: &PolicyFile) -> (Vec<Schedule>, Vec<Problem>) {
    let mut out = Vec::new();
    if let Err(why) = names::pool_name(&f.pool) {
        out.push(problem("pool", why));
    }
    ranges::check(f, &mut out);
    if f.signals.is_empty() {
        out.push(problem("signals", "at least one signal is required"));
    }
    for (i, s) in f.signals.iter().enumerate() {
        check_signal(&format!("signals[{i}]"), s, &mut out);
    }
    check_workers(&f.workers, &mut out);
    let b = f.bounds;
    if b.min > b.max {
        out.push((
            "bounds.min".to_string(),
            format!("min ({}) is greater than max ({})", b.min, b.max),
            None,
        ));
    }
    if b.max == 0 {
        out.push(problem("bounds.max", "must be at least 1"));
    }
    if b.min == 0 && f.scale_to_zero.is_none() {
        out.push((
            "bounds.min".into(),
            "0 allows scale-to-zero, which must be enabled explicitly".into(),
            Some("add `scale_to_zero: { activation_threshold: 0 }`".into()),
        ));
    }
    if !(0.0..1.0).contains(&f.tolerance) {
        out.push(problem(
            "tolerance",
            "must be >= 0 and < 1 (a ratio, HPA default 0.1)",
        ));
    }
    // KEP-4951: any non-negative scale-up tolerance; a scale-down one of 1 or more would
    // forbid scaling down, which `max_step.select: disabled` says plainly.
    if let Some(t) = f.scale_up.tolerance
        && !(t >= 0.0 && t.is_finite())
    {
        out.push(problem(
            "scale_up.tolerance",
            "must be a finite number >= 0 (a ratio, HPA `behavior.scaleUp.tolerance`)",
        ));
    }
    if let Some(t) = f.scale_down.tolerance
        && !(0.0..1.0).contains(&t)
    {
        out.push((
            "scale_down.tolerance".into(),
            "must be >= 0 and < 1 (a ratio, HPA `behavior.scaleDown.tolerance`)".into(),
            Some("use `scale_down.max_step.select: disabled` to forbid scaling down".into()),
        ));
    }
    check_step(
        "scale_up",
        &f.scale_up.max_step,
        f.scale_up.stabilization,
        &mut out,
    );
    check_step(
        "scale_down",
        &f.scale_down.max_step,
        f.scale_down.stabilization,
        &mut out,
    );
    if let Some(within) = f.target.and_then(|t| t.clear_backlog_within)
        && !(MIN_DEADLINE_SECS..=MAX_DEADLINE_SECS).contains(&within.as_secs())
    {
        out.push((
            "target.clear_backlog_within".into(),
            format!(
                "{} is outside 1s..24h (a deadline for waiting work to start)",
                humantime::format_duration(within)
            ),
            Some("a service level such as `2m`".into()),
        ));
    }
    check_drain_method(f, &mut out);
    if let Some(c) = &f.cost
        && let Some(max) = c.max_per_hour
    {
        if !(max > 0.0 && max.is_finite()) {
            out.push(problem("cost.max_per_hour", "must be a finite number > 0"));
        } else if c.per_worker_hour > 0.0 && c.per_worker_hour.is_finite() {
            let cap = (max / c.per_worker_hour + 1e-9).floor() as u64;
            if cap < u64::from(b.min) {
                out.push((
                    "cost.max_per_hour".into(),
                    format!("allows only {cap} workers, below bounds.min ({})", b.min),
                    Some(format!(
                        "raise it to at least {:.2}",
                        f64::from(b.min) * c.per_worker_hour
                    )),
                ));
            }
        }
    }
    let mut schedules = Vec::new();
    for (i, s) in f.schedules.iter().enumerate() {
        match Schedule::compile(&s.cron, &s.timezone, s.duration, s.min) {
            Ok(compiled) => schedules.push(compiled),
            Err(errs) => out.extend(
                errs.into_iter()
                    .map(|(field, m)| problem(format!("schedules[{i}].{field}"), m)),
            ),
        }
        if s.min > b.max {
            out.push(problem(
                format!("schedules[{i}].min"),
                format!("{} is above bounds.max ({})", s.min, b.max),
            ));
        }
    }
    let m = &f.on_missing_signal;
    if let Some(n) = m.then_workers
        && n > b.max
    {
        out.push(problem(
            "on_missing_signal.then_workers",
            format!("{n} is above bounds.max ({})", b.max),
        ));
    }
    if let Some(fb) = f.flap_budget
        && fb.max_reversals_per_hour == 0
    {
        out.push((
            "flap_budget.max_reversals_per_hour".into(),
            "0 would freeze the pool after its first move".into(),
            Some("use at least 1, or remove `flap_budget`".into()),
        ));
    }
    (schedules, out)
}

fn check_signal(path: &str, s: &SignalSpec, out: &mut Vec<Problem>) {
    match s.source() {
        Ok(source) => source.check(path, out),
        Err(NotOneKind(0)) => out.push((
            path.to_string(),
            "names no engine".into(),
            Some(format!(
                "add exactly one of {}",
                SourceKind::ALL
                    .map(|k| format!("`{}`", k.name()))
                    .join(", ")
            )),
        )),
        Err(_) => out.push(problem(
            path,
            "names more than one engine; use one list entry per signal",
        )),
    }
}

fn check_workers(w: &WorkersSpec, out: &mut Vec<Problem>) {
    match (&w.kubernetes, &w.aws_asg) {
        (Some(k), None) => {
            if let Err(why) = names::dns_label(&k.namespace) {
                out.push(problem("workers.kubernetes.namespace", why));
            }
            match (&k.deployment, &k.statefulset) {
                (Some(n), None) | (None, Some(n)) if !n.is_empty() => {
                    if let Err(why) = names::dns_subdomain(n) {
                        let kind = if k.deployment.is_some() {
                            "deployment"
                        } else {
                            "statefulset"
                        };
                        out.push(problem(format!("workers.kubernetes.{kind}"), why));
                    }
                }
                (Some(_), Some(_)) => out.push(problem(
                    "workers.kubernetes",
                    "give `deployment` or `statefulset`, not both",
                )),
                _ => out.push(problem(
                    "workers.kubernetes",
                    "needs `deployment: NAME` or `statefulset: NAME`",
                )),
            }
        }
        (None, Some(a)) => {
            if a.group.is_empty() {
                out.push(problem("workers.aws_asg.group", "must not be empty"));
            }
            if a.region.is_empty() {
                out.push(problem("workers.aws_asg.region", "must not be empty"));
            }
            if let Some(url) = &a.endpoint_url {
                check_url("workers.aws_asg.endpoint_url", url, out);
            }
        }
        (Some(_), Some(_)) => out.push(problem(
            "workers",
            "give `kubernetes` or `aws_asg`, not both",
        )),
        (None, None) => out.push(problem("workers", "needs `kubernetes` or `aws_asg`")),
    }
}

fn check_step(dir: &str, s: &MaxStep, window: std::time::Duration, out: &mut Vec<Problem>) {
    if window.as_secs() > MAX_WINDOW_SECS {
        out.push(problem(
            format!("{dir}.stabilization"),
            "must be at most 1h (HPA limit)",
        ));
    }
    if s.select != SelectPolicy::Disabled
        && s.workers.is_none()
        && s.percent.is_none()
        && s.policies.is_empty()
    {
        out.push((
            format!("{dir}.max_step"),
            "needs `workers`, `percent` or `policies`".into(),
            Some("or `select: disabled` to forbid this direction".into()),
        ));
    }
    for (i, p) in s.policies.iter().enumerate() {
        let path = format!("{dir}.max_step.policies[{i}]");
        match (p.workers, p.percent) {
            (Some(_), Some(_)) | (None, None) => out.push((
                path.clone(),
                "needs exactly one of `workers` or `percent`".into(),
                Some("one list entry per policy, as HPA `policies` has one `type` each".into()),
            )),
            (Some(0), _) | (_, Some(0)) => out.push((
                path.clone(),
                "a step of 0 forbids scaling".into(),
                Some("use `select: disabled` to say so".into()),
            )),
            _ => {}
        }
        if let Some(period) = p.period
            && (period.is_zero() || period.as_secs() > MAX_PERIOD_SECS)
        {
            out.push(problem(
                format!("{path}.period"),
                "must be > 0s and at most 30m (HPA limit)",
            ));
        }
    }
    if s.workers == Some(0) || s.percent == Some(0) {
        out.push((
            format!("{dir}.max_step"),
            "a step of 0 forbids scaling".into(),
            Some("use `select: disabled` to say so".into()),
        ));
    }
    if s.period.is_zero() || s.period.as_secs() > MAX_PERIOD_SECS {
        out.push(problem(
            format!("{dir}.max_step.period"),
            "must be > 0s and at most 30m (HPA limit)",
        ));
    }
}

/// A drain method the daemon cannot carry out is refused here, so what validates is what
/// runs (and what the simulator models).
fn check_drain_method(f: &PolicyFile, out: &mut Vec<Problem>) {
    let method = f.scale_down.drain.method;
    if let Some(super::source::DrainTarget::Yarn(y)) =
        super::source::drain_target(method, &f.signals)
        && y.decommission.is_none()
    {
        out.push((
            "scale_down.drain.method".into(),
            "the `yarn` drain needs `decommission: { exclude_file }` on the yarn signal".into(),
            Some("or set `scale_down.drain.method: none`".into()),
        ));
    }
    if matches!(method, DrainMethod::Auto | DrainMethod::None) {
        return;
    }
    let possible: Vec<DrainMethod> = f
        .signals
        .iter()
        .filter_map(|s| s.source().ok())
        .flat_map(|s| s.drains().iter().copied())
        .collect();
    if !possible.contains(&method) {
        let name = |m: DrainMethod| {
            serde_json::to_value(m)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        };
        let mut allowed: Vec<String> = Vec::new();
        for m in possible.into_iter().map(name) {
            if !allowed.contains(&m) {
                allowed.push(m);
            }
        }
        allowed.push("none".into());
        allowed.push("auto".into());
        out.push((
            "scale_down.drain.method".into(),
            format!(
                "`{}` drain needs a signal of kind {} (the drain goes through it)",
                name(method),
                SourceKind::that_drain(method)
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            Some(format!(
                "this pool's signals can drain with: {}",
                allowed.join(", ")
            )),
        ));
    }
}

/// What validation checks of a PromQL query without parsing PromQL: it is not blank, its
/// brackets `()[]{}` pair up and its string literals (`"…"`, `'…'`, `` `…` ``) are closed.
/// Anything else (unknown functions, type errors) is Prometheus's to report, at the first poll
/// (`poolpilot probe` shows it).
pub(super) fn promql_shape(query: &str) -> Result<(), String> {
    if query.trim().is_empty() {
        return Err("must not be empty".into());
    }
    let mut open: Vec<char> = Vec::new();
    let mut chars = query.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                let mut closed = false;
                while let Some(d) = chars.next() {
                    if d == '\\' && c != '`' {
                        chars.next();
                    } else if d == c {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return Err(format!("unterminated string literal (opened with {c})"));
                }
            }
            '#' => {
                // a comment runs to the end of the line
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' => open.push(c),
            ')' | ']' | '}' => {
                let want = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if open.pop() != Some(want) {
                    return Err(format!("unbalanced `{c}`"));
                }
            }
            _ => {}
        }
    }
    match open.last() {
        Some(c) => Err(format!("`{c}` is never closed")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod promql_tests {
    use super::promql_shape;

    #[test]
    fn promql_shape_accepts_real_queries_and_refuses_broken_ones() {
        for ok in [
            "sum(kafka_consumergroup_lag{group=\"etl\"})",
            "scalar(max_over_time(queue_depth[5m]))",
            "rabbitmq_queue_messages_ready{queue=~\"a(b|c)\"} # note (",
            "vector(3)",
        ] {
            assert_eq!(promql_shape(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("   ", "empty"),
            ("sum(x", "never closed"),
            ("sum(x))", "unbalanced"),
            ("x{a=\"b}", "unterminated"),
            ("rate(x[5m)]", "unbalanced"),
        ] {
            let err = promql_shape(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
