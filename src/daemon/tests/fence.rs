//! The fence in the control loop: a replica whose fence refuses (it lost the lease, while its
//! flag may still say leader) sends nothing, and losing the lease stops the drains under way;
//! each shows `fenced` on `/status`.

use super::*;
use crate::drain::tests::ScriptedDrainer;
use crate::fence::{Fenced, RecordingFence};

fn taken() -> Fenced {
    Fenced::HeldByOther {
        holder: Some("b".into()),
    }
}

fn last_outcome(h: &Harness) -> String {
    h.board.read().unwrap().pools[0]
        .last_actuation
        .as_ref()
        .map(|a| a.outcome.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_stale_leader_flag_sends_no_scale_up_when_the_fence_refuses() {
    let h = Harness::new(2).with_clean_state();
    let mut c = h.controller(vec![policy("enforce", "0s")], true).await;
    let fence = Arc::new(RecordingFence::answering([Err(taken())]));
    c.set_fence(fence.clone());
    h.demand(Some(10.0));
    h.tick(&mut c, 10, true).await; // `leader: true`: the flag has not caught up
    assert!(h.targets().is_empty(), "no call once the lease is gone");
    assert_eq!(fence.checks(), 1);
    assert!(
        c.pending().is_empty(),
        "nothing written ahead for a call never sent"
    );
    assert_eq!(last_outcome(&h), "fenced");
    assert_eq!(
        c.memory().pools["etl"].last_scale_up,
        None,
        "a refused change starts no cooldown"
    );
}

#[tokio::test]
async fn a_scale_down_refused_by_the_fence_removes_nobody() {
    let h = Harness::new(3).with_clean_state();
    h.demand(Some(0.0));
    let mut c = h.controller(vec![policy("enforce", "0s")], true).await;
    c.set_fence(Arc::new(RecordingFence::answering([Err(taken())])));
    h.tick(&mut c, 10, true).await;
    tokio::time::sleep(Duration::from_millis(100)).await; // the background task ends
    h.tick(&mut c, 15, false).await;
    assert!(h.targets().is_empty(), "{:?}", h.actuator.calls());
    assert_eq!(last_outcome(&h), "fenced");
    assert!(c.pending().is_empty());
    assert_eq!(c.memory().pools["etl"].last_scale_down, None);
}

#[tokio::test]
async fn losing_the_lease_stops_the_drains_under_way_before_any_removal() {
    let mut h = Harness::new(4).with_clean_state();
    let drainer = Arc::new(
        ScriptedDrainer::busy(&["worker-0", "worker-1", "worker-2", "worker-3"]).one_way(),
    );
    h.drainer = drainer.clone();
    h.demand(Some(0.0));
    let mut c = h.controller(vec![policy("enforce", "0s")], true).await;
    let fence = Arc::new(RecordingFence::default());
    c.set_fence(fence.clone());
    h.tick(&mut c, 10, true).await;
    for _ in 0..100 {
        if drainer.begun().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(drainer.begun().len(), 3, "the one-way drains began");
    // The loop sees the lease lost; the fence now refuses too.
    fence.set(Err(Fenced::NotLeader));
    c.fence_drains(Duration::from_millis(100)).await;
    assert!(
        c.pending().is_empty(),
        "the new leader owns the scale-down now"
    );
    h.tick(&mut c, 15, false).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(last_outcome(&h), "fenced", "shown on /status");
    assert!(h.targets().is_empty(), "{:?}", h.actuator.calls());
    assert_eq!(h.actuator.current().desired, 4);
}
