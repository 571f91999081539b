//! The pause stage through `step`: each kind, expiry, pins above and below the pool, the
//! direction pauses letting the other direction through, and the global budget.

use super::tests::{at, labels, obs, policy};
use super::*;

fn pause(kind: PauseKind, until: Option<Timestamp>) -> Pause {
    Pause {
        kind,
        until,
        source: PauseSource::Annotation,
    }
}

/// One tick of pool `p` (scale-down window 0 s, so only the pause holds) with `pauses`.
fn paused(pauses: &[Pause], demand: f64, current: u32, now: Timestamp) -> Decision {
    let p = policy("scale_down: { stabilization: 0s }\n");
    let mut o = obs(demand, current, now);
    o.pauses = pauses.to_vec();
    let world = World {
        pools: vec![o],
        global_budget_per_hour: None,
    };
    step(&[p], &world, &mut Memory::default(), now).remove(0)
}

#[test]
fn unpaused_baseline_moves_both_ways() {
    assert_eq!(paused(&[], 6.0, 3, at(0)).desired, 6);
    assert_eq!(paused(&[], 1.0, 5, at(0)).desired, 1);
}

#[test]
fn hold_keeps_the_size_against_load_and_idleness() {
    let hold = [pause(PauseKind::Hold, None)];
    for (demand, current) in [(80.0, 3), (1.0, 5)] {
        let d = paused(&hold, demand, current, at(0));
        assert_eq!(d.desired, current);
        assert_eq!(d.final_reason(), "paused");
        assert!(matches!(
            d.reasons.last(),
            Some(Reason::Paused { by: Some(p) }) if p.kind == PauseKind::Hold
        ));
    }
}

#[test]
fn a_pause_lapses_at_its_expiry() {
    let hold = [pause(PauseKind::Hold, Some(at(3600)))];
    assert_eq!(paused(&hold, 6.0, 3, at(3599)).desired, 3);
    let d = paused(&hold, 6.0, 3, at(3600));
    assert_eq!(d.desired, 6);
    assert!(!labels(&d).contains(&"paused"), "{:?}", d.reasons);
}

#[test]
fn a_pin_goes_to_n_from_above_and_from_below() {
    let pin = [pause(PauseKind::Pin { replicas: 4 }, None)];
    let up = paused(&pin, 1.0, 2, at(0));
    assert_eq!((up.desired, up.drain), (4, None));
    let down = paused(&pin, 80.0, 9, at(0));
    assert_eq!(down.desired, 4);
    assert_eq!(down.drain.map(|d| d.remove), Some(5), "a pin below drains");
    assert_eq!(down.final_reason(), "paused");
}

/// KEDA scales to `paused-replicas` whatever min/max say; so does poolpilot (bounds 1..100).
#[test]
fn a_pin_is_exact_even_outside_the_bounds() {
    let zero = [pause(PauseKind::Pin { replicas: 0 }, None)];
    assert_eq!(paused(&zero, 50.0, 3, at(0)).desired, 0);
    let big = [pause(PauseKind::Pin { replicas: 150 }, None)];
    assert_eq!(paused(&big, 0.0, 3, at(0)).desired, 150);
}

#[test]
fn a_pin_wins_over_a_hold() {
    let both = [
        pause(PauseKind::Hold, None),
        pause(PauseKind::Pin { replicas: 6 }, None),
    ];
    assert_eq!(paused(&both, 1.0, 3, at(0)).desired, 6);
}

#[test]
fn scale_in_paused_still_scales_up() {
    let no_in = [pause(PauseKind::ScaleIn, None)];
    let d = paused(&no_in, 1.0, 5, at(0));
    assert_eq!((d.desired, d.final_reason()), (5, "paused"));
    let d = paused(&no_in, 10.0, 5, at(0));
    assert_eq!(d.desired, 10);
    assert!(!labels(&d).contains(&"paused"), "{:?}", d.reasons);
}

#[test]
fn scale_out_paused_still_scales_down() {
    let no_out = [pause(PauseKind::ScaleOut, None)];
    let d = paused(&no_out, 80.0, 3, at(0));
    assert_eq!((d.desired, d.final_reason()), (3, "paused"));
    let d = paused(&no_out, 1.0, 5, at(0));
    assert_eq!(d.desired, 1);
    assert!(!labels(&d).contains(&"paused"), "{:?}", d.reasons);
}

#[test]
fn the_global_budget_never_cuts_a_paused_pool() {
    let p = policy("cost: { per_worker_hour: 1 }\nscale_down: { stabilization: 0s }\n");
    let budget = |pauses: Vec<Pause>, current: u32| {
        let mut o = obs(10.0, current, at(0));
        o.pauses = pauses;
        let world = World {
            pools: vec![o],
            global_budget_per_hour: Some(2.0),
        };
        step(
            std::slice::from_ref(&p),
            &world,
            &mut Memory::default(),
            at(0),
        )
        .remove(0)
    };
    assert_eq!(budget(vec![], 6).desired, 2, "unpaused: cut to the budget");
    assert_eq!(budget(vec![pause(PauseKind::ScaleIn, None)], 6).desired, 6);
    let pinned = budget(vec![pause(PauseKind::Pin { replicas: 5 }, None)], 3);
    assert_eq!(pinned.desired, 5);
}

#[test]
fn the_paused_stage_says_who_and_until_when() {
    let d = paused(
        &[pause(PauseKind::Pin { replicas: 4 }, Some(at(60)))],
        1.0,
        2,
        at(0),
    );
    let text = d.reasons.last().unwrap().to_string();
    assert!(
        text.starts_with("paused at 4 replicas (set by annotation, until 20"),
        "{text}"
    );
    let json = serde_json::to_value(d.reasons.last().unwrap()).unwrap();
    assert_eq!(json["stage"], "paused");
    assert_eq!(json["by"]["kind"], "pin");
    // `mode: paused` keeps its old shape, so older recordings still load.
    let old: Reason = serde_json::from_str(r#"{"stage":"paused"}"#).unwrap();
    assert_eq!(old, Reason::Paused { by: None });
}
