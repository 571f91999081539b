//! Run-time pauses: an operator stops or pins a pool without editing its policy, with KEDA's
//! four kinds (keda-docs `content/docs/2.x/concepts/scaling-deployments.md`, "Pausing
//! autoscaling"; `kedacore/keda: apis/keda/v1alpha1/scaledobject_types.go` constants):
//! `paused` (hold), `paused-replicas` (pin to N), `paused-scale-in`, `paused-scale-out`.
//!
//! A pause arrives in the pool's observation ([`super::PoolObservation::pauses`]), so the
//! recording captures it and `--check-decisions` replays it. Where it came from (annotation,
//! ASG tag, admin endpoint) is the daemon's business; the engine only combines and applies:
//!
//! - expired pauses (`until <= now`) are ignored;
//! - a pin wins over everything else (KEDA: with both `paused` and `paused-replicas`, the
//!   workload is scaled to `paused-replicas`); among several pins the first source in
//!   [`PauseSource`] order wins (admin, annotation, ASG tag), then the lowest N;
//! - else a hold keeps the current size;
//! - else each direction pause blocks its direction (both together hold).
//!
//! A pin is exact, outside `bounds` and the cost caps too, as KEDA scales to
//! `paused-replicas` whatever `minReplicaCount`/`maxReplicaCount` say: it is a human's order.
//! The rest of the pipeline still runs under a pause, so the stabilization history, the
//! backlog and forecast estimates stay warm and a resume starts from real recommendations.

use serde::{Deserialize, Serialize};

use super::reason::Reason;
use crate::time::Timestamp;

/// The closed set of pause kinds (KEDA's annotations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PauseKind {
    /// `paused: "true"`: keep the current size.
    Hold,
    /// `paused-replicas: "N"`: go to N and stay there.
    Pin { replicas: u32 },
    /// `paused-scale-in: "true"`: never go down (scale-up still works).
    ScaleIn,
    /// `paused-scale-out: "true"`: never go up (scale-down still works).
    ScaleOut,
}

impl PauseKind {
    /// Low-cardinality label (the `kind` label of `poolpilot_pool_paused`).
    pub fn label(self) -> &'static str {
        match self {
            PauseKind::Hold => "hold",
            PauseKind::Pin { .. } => "pin",
            PauseKind::ScaleIn => "scale_in",
            PauseKind::ScaleOut => "scale_out",
        }
    }

    /// `in`/`out` for the direction pauses.
    pub fn direction(self) -> Option<&'static str> {
        match self {
            PauseKind::ScaleIn => Some("in"),
            PauseKind::ScaleOut => Some("out"),
            PauseKind::Hold | PauseKind::Pin { .. } => None,
        }
    }

    pub const LABELS: [&'static str; 4] = ["hold", "pin", "scale_in", "scale_out"];
}

/// Where a pause was set. The order is the precedence between pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseSource {
    /// `poolpilot pause` through the daemon's admin endpoint (persisted in the state file).
    Admin,
    /// An annotation on the Kubernetes Deployment/StatefulSet.
    Annotation,
    /// A tag on the AWS Auto Scaling group.
    AsgTag,
}

impl PauseSource {
    pub fn label(self) -> &'static str {
        match self {
            PauseSource::Admin => "admin",
            PauseSource::Annotation => "annotation",
            PauseSource::AsgTag => "asg_tag",
        }
    }
}

/// One pause as set by one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    #[serde(flatten)]
    pub kind: PauseKind,
    /// Lapses by itself at this time; `None` = until removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    pub source: PauseSource,
}

impl Pause {
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.until.is_none_or(|u| now < u)
    }
}

/// The pauses in force for one pool this tick, combined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Active {
    pin: Option<Pause>,
    hold: Option<Pause>,
    scale_in: Option<Pause>,
    scale_out: Option<Pause>,
}

impl Active {
    pub fn of(pauses: &[Pause], now: Timestamp) -> Active {
        let mut a = Active::default();
        for p in pauses.iter().filter(|p| p.is_active(now)) {
            let slot = match p.kind {
                PauseKind::Pin { .. } => &mut a.pin,
                PauseKind::Hold => &mut a.hold,
                PauseKind::ScaleIn => &mut a.scale_in,
                PauseKind::ScaleOut => &mut a.scale_out,
            };
            let better = slot.is_none_or(|s| (p.source, pinned(p)) < (s.source, pinned(&s)));
            if better {
                *slot = Some(*p);
            }
        }
        a
    }

    pub fn is_none(&self) -> bool {
        *self == Active::default()
    }

    /// The last stage of the pipeline: the pause has the last word over the pool's own
    /// decision (a `Paused` reason is added whenever a pause decided or changed the number).
    pub fn apply(&self, current: u32, mut desired: u32, reasons: &mut Vec<Reason>) -> u32 {
        if let Some(p) = self.pin.or(self.hold) {
            reasons.push(Reason::Paused { by: Some(p) });
            return match p.kind {
                PauseKind::Pin { replicas } => replicas,
                _ => current,
            };
        }
        if let Some(p) = self.scale_in
            && desired < current
        {
            desired = current;
            reasons.push(Reason::Paused { by: Some(p) });
        }
        if let Some(p) = self.scale_out
            && desired > current
        {
            desired = current;
            reasons.push(Reason::Paused { by: Some(p) });
        }
        desired
    }

    /// The least the global budget may cut this pool to (`None`: no pause, the pool's minimum
    /// applies): a pin or hold is fixed spend, a scale-in pause never goes below `current`.
    pub fn budget_floor(&self, current: u32, desired: u32) -> Option<u32> {
        if self.pin.is_some() || self.hold.is_some() {
            Some(desired)
        } else if self.scale_in.is_some() {
            Some(current.min(desired))
        } else {
            None
        }
    }
}

/// The active pauses, the one in force first (pin, hold, scale-in, scale-out; then by source).
pub fn in_force(pauses: &[Pause], now: Timestamp) -> Vec<Pause> {
    let rank = |p: &Pause| match p.kind {
        PauseKind::Pin { .. } => 0,
        PauseKind::Hold => 1,
        PauseKind::ScaleIn => 2,
        PauseKind::ScaleOut => 3,
    };
    let mut active: Vec<Pause> = pauses
        .iter()
        .filter(|p| p.is_active(now))
        .copied()
        .collect();
    active.sort_by_key(|p| (rank(p), p.source, pinned(p)));
    active
}

fn pinned(p: &Pause) -> u32 {
    match p.kind {
        PauseKind::Pin { replicas } => replicas,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kind: PauseKind, source: PauseSource, until: Option<i64>) -> Pause {
        Pause {
            kind,
            until: until.map(Timestamp::from_secs),
            source,
        }
    }

    #[test]
    fn expired_pauses_are_ignored() {
        let pauses = [p(PauseKind::Hold, PauseSource::Admin, Some(100))];
        assert!(!Active::of(&pauses, Timestamp::from_secs(99)).is_none());
        assert!(Active::of(&pauses, Timestamp::from_secs(100)).is_none());
    }

    #[test]
    fn a_pin_wins_and_admin_pins_win_over_platform_pins() {
        let pauses = [
            p(PauseKind::Hold, PauseSource::Annotation, None),
            p(PauseKind::Pin { replicas: 2 }, PauseSource::AsgTag, None),
            p(PauseKind::Pin { replicas: 7 }, PauseSource::Admin, None),
        ];
        let mut reasons = Vec::new();
        let a = Active::of(&pauses, Timestamp::EPOCH);
        assert_eq!(a.apply(4, 9, &mut reasons), 7);
        assert_eq!(
            reasons,
            vec![Reason::Paused {
                by: Some(pauses[2])
            }]
        );
    }

    #[test]
    fn both_directions_together_hold() {
        let pauses = [
            p(PauseKind::ScaleIn, PauseSource::Annotation, None),
            p(PauseKind::ScaleOut, PauseSource::AsgTag, None),
        ];
        let a = Active::of(&pauses, Timestamp::EPOCH);
        assert_eq!(a.apply(4, 9, &mut Vec::new()), 4);
        assert_eq!(a.apply(4, 1, &mut Vec::new()), 4);
    }

    #[test]
    fn serialises_flat_with_its_source() {
        let pause = p(PauseKind::Pin { replicas: 3 }, PauseSource::AsgTag, Some(1));
        let json = serde_json::to_value(pause).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "pin", "replicas": 3, "until": 1000, "source": "asg_tag"})
        );
        assert_eq!(serde_json::from_value::<Pause>(json).unwrap(), pause);
    }
}
