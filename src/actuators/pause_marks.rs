//! Pause marks on the platform: annotations on the Kubernetes workload (`kubectl annotate`) and
//! tags on the Auto Scaling group (console, `aws autoscaling create-or-update-tags`), with the
//! same keys and values. Pure: the actuators hand over the key/value pairs they read, this
//! module turns them into [`Pause`]s and problems for the operator.
//!
//! The keys are KEDA's (keda-docs `concepts/scaling-deployments.md`, "Pausing autoscaling")
//! under poolpilot's own prefix. KEDA reads its `autoscaling.keda.sh/*` keys on the
//! ScaledObject, not on the workload; reusing them on a Deployment would look like a KEDA pause
//! to every reader while KEDA ignores it, and where two autoscalers watch one workload, one key
//! pausing both would surprise. So: `poolpilot.io/paused: "true"`, `poolpilot.io/paused-replicas:
//! "N"`, `poolpilot.io/paused-scale-in: "true"`, `poolpilot.io/paused-scale-out: "true"`, and
//! `poolpilot.io/paused-until: <RFC 3339>` (expiry of the source's other marks; KEDA has none).
//!
//! A mark that cannot be read (`paused-replicas: "abc"`, an unknown `poolpilot.io/paused-*`
//! key) is not applied as written; someone meant to stop the pool, so until it is fixed the
//! pool does not scale down (it counts as `scale_in`), and a problem says what is wrong.

use std::collections::BTreeMap;

use crate::engine::{Pause, PauseKind, PauseSource};
use crate::time::Timestamp;

pub const PREFIX: &str = "poolpilot.io/paused";
pub const PAUSED: &str = "poolpilot.io/paused";
pub const PAUSED_REPLICAS: &str = "poolpilot.io/paused-replicas";
pub const PAUSED_SCALE_IN: &str = "poolpilot.io/paused-scale-in";
pub const PAUSED_SCALE_OUT: &str = "poolpilot.io/paused-scale-out";
pub const PAUSED_UNTIL: &str = "poolpilot.io/paused-until";
const KEYS: [&str; 5] = [
    PAUSED,
    PAUSED_REPLICAS,
    PAUSED_SCALE_IN,
    PAUSED_SCALE_OUT,
    PAUSED_UNTIL,
];

/// Keeps only the pause keys of a platform's annotations or tags.
pub fn select<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .filter(|(k, _)| k.starts_with(PREFIX))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The pauses the marks set, and one line per mark that could not be read.
pub fn parse(marks: &BTreeMap<String, String>, source: PauseSource) -> (Vec<Pause>, Vec<String>) {
    let mut problems = Vec::new();
    let until = marks
        .get(PAUSED_UNTIL)
        .and_then(|v| match Timestamp::parse_rfc3339(v.trim()) {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(format!(
                    "{PAUSED_UNTIL}: {v:?} is not an RFC 3339 time ({e}); the pause does not lapse"
                ));
                None
            }
        });
    let mut kinds = Vec::new();
    for (key, value) in marks {
        let v = value.trim();
        let kind = match key.as_str() {
            PAUSED_UNTIL => continue,
            PAUSED_REPLICAS => v
                .parse::<u32>()
                .map(|replicas| Some(PauseKind::Pin { replicas }))
                .map_err(|_| "a replica count (0 or more)"),
            PAUSED => flag(v, PauseKind::Hold),
            PAUSED_SCALE_IN => flag(v, PauseKind::ScaleIn),
            PAUSED_SCALE_OUT => flag(v, PauseKind::ScaleOut),
            _ => Err("a known key"),
        };
        match kind {
            Ok(Some(k)) => kinds.push(k),
            Ok(None) => {}
            Err(expected) => {
                let what = if expected == "a known key" {
                    format!("{key} is not a pause key (known: {})", KEYS.join(", "))
                } else {
                    format!("{key}: {value:?} is not {expected}")
                };
                problems.push(format!(
                    "{what}; ignored, and the pool does not scale down until it is fixed"
                ));
                kinds.push(PauseKind::ScaleIn);
            }
        }
    }
    let pauses = kinds
        .into_iter()
        .map(|kind| Pause {
            kind,
            until,
            source,
        })
        .collect();
    (pauses, problems)
}

/// `"true"` sets the pause, `"false"` does not (KEDA: `paused: "false"` unpauses).
fn flag(v: &str, kind: PauseKind) -> Result<Option<PauseKind>, &'static str> {
    if v.eq_ignore_ascii_case("true") {
        Ok(Some(kind))
    } else if v.eq_ignore_ascii_case("false") {
        Ok(None)
    } else {
        Err("\"true\" or \"false\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        select(pairs.iter().copied().chain([("app", "trino")]))
    }

    #[test]
    fn each_key_sets_its_kind_with_the_expiry() {
        let m = marks(&[
            (PAUSED, "true"),
            (PAUSED_REPLICAS, "3"),
            (PAUSED_SCALE_IN, "TRUE"),
            (PAUSED_SCALE_OUT, "false"),
            (PAUSED_UNTIL, "2026-12-03T14:00:00Z"),
        ]);
        let (pauses, problems) = parse(&m, PauseSource::AsgTag);
        assert!(problems.is_empty(), "{problems:?}");
        let until = Timestamp::parse_rfc3339("2026-12-03T14:00:00Z").ok();
        let kinds: Vec<_> = pauses.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            vec![
                PauseKind::Hold,
                PauseKind::Pin { replicas: 3 },
                PauseKind::ScaleIn
            ]
        );
        assert!(
            pauses
                .iter()
                .all(|p| p.until == until && p.source == PauseSource::AsgTag)
        );
    }

    #[test]
    fn unreadable_marks_block_scale_down_and_say_why() {
        let m = marks(&[
            (PAUSED_REPLICAS, "abc"),
            ("poolpilot.io/paused-replica", "2"),
        ]);
        let (pauses, problems) = parse(&m, PauseSource::Annotation);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("is not a pause key"), "{problems:?}");
        assert!(
            problems[1].contains("\"abc\" is not a replica count"),
            "{problems:?}"
        );
        assert!(pauses.iter().all(|p| p.kind == PauseKind::ScaleIn));
        assert_eq!(pauses.len(), 2);
    }

    #[test]
    fn an_unreadable_expiry_keeps_the_pause() {
        let m = marks(&[(PAUSED, "true"), (PAUSED_UNTIL, "tomorrow")]);
        let (pauses, problems) = parse(&m, PauseSource::Annotation);
        assert_eq!(pauses.len(), 1);
        assert_eq!(pauses[0].until, None);
        assert!(problems[0].contains("does not lapse"), "{problems:?}");
    }
}
