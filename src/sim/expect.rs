//! Checks a report against the scenario's `expect:` ranges and `expect_beats:` claims, and
//! renders the golden actuation timeline (`simulations/golden/<name>.csv`).

use std::fmt::Write as _;

use super::experiment::Experiment;
use super::report::{Report, Row};
use super::scenario::Scenario;

/// Every failed expectation, as a sentence. Empty = all hold.
pub fn failures(scenario: &Scenario, report: &Report) -> Vec<String> {
    let mut out = Vec::new();
    let row = |name: &str| report.rows.iter().find(|r| r.name == name);
    for (name, metrics) in &scenario.expect {
        let Some(found) = row(name) else {
            out.push(format!("expect: no row named {name:?}"));
            continue;
        };
        let json = serde_json::to_value(found).unwrap_or_default();
        for (metric, [low, high]) in metrics {
            match json.get(metric).and_then(serde_json::Value::as_f64) {
                Some(value) if value >= *low && value <= *high => {}
                Some(value) => out.push(format!(
                    "{name}.{metric} = {value} is outside [{low}, {high}]"
                )),
                None => out.push(format!("expect: {name} has no numeric metric {metric:?}")),
            }
        }
    }
    for (name, rivals) in &scenario.expect_beats {
        let Some(winner) = row(name) else {
            out.push(format!("expect_beats: no row named {name:?}"));
            continue;
        };
        for rival in rivals {
            match row(rival) {
                Some(other) if beats(winner, other) => {}
                Some(other) => out.push(format!(
                    "{name} does not beat {rival}: cost {:.2} vs {:.2}, wait p95 {:.0}s vs {:.0}s",
                    winner.cost, other.cost, winner.wait_p95_s, other.wait_p95_s
                )),
                None => out.push(format!("expect_beats: no row named {rival:?}")),
            }
        }
    }
    out
}

/// Lower cost at an equal or lower p95 wait.
pub fn beats(winner: &Row, other: &Row) -> bool {
    winner.cost < other.cost && winner.wait_p95_s <= other.wait_p95_s
}

/// Every actuation of every row: `row,t_s,from,to,reason`, times in seconds since the first
/// arrival. Deterministic, so it is compared byte for byte.
pub fn golden_csv(experiment: &Experiment) -> String {
    let origin = experiment
        .timelines
        .iter()
        .filter_map(|t| t.samples.first())
        .map(|s| s.at)
        .max()
        .unwrap_or(0);
    let mut out = String::from("row,t_s,from,to,reason\n");
    for (row, actuations) in experiment.report.rows.iter().zip(&experiment.actuations) {
        for a in actuations {
            let _ = writeln!(
                out,
                "{},{},{},{},{}",
                row.name,
                (a.at - origin) as f64 / 1000.0,
                a.from,
                a.to,
                a.reason
            );
        }
    }
    out
}
