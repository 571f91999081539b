//! Fencing: the check made right before every destructive call (a one-way drain begins, a
//! scale-down, a scale-up), so a replica that lost its Lease cannot act on a stale "I am the
//! leader" flag — e.g. a leader frozen (SIGSTOP, a long GC-like stall, a paused VM) past its
//! lease duration, replaced by another replica, then resumed.
//!
//! - [`Fence`]: the narrow trait (`may_act`); callers treat a refusal as "send nothing".
//! - [`Unfenced`]: single-instance mode (no election): always allowed.
//! - [`judge`]: the pure rule the Lease-backed fence (`daemon::lease_fence`) applies to a
//!   freshly read `coordination.k8s.io/v1` Lease.
//! - [`RecordingFence`]: a scripted fake for other modules' tests.
//!
//! What remains: the check and the call are two steps. A replica frozen *between* a passing
//! check and the moment its call reaches the platform can still land the call after another
//! replica took over. [`judge`] shrinks that window to the lease time left at the check (the
//! new holder cannot take the Lease before it runs out) and refuses when less than
//! [`MIN_REMAINING`] is left; closing it fully would need the platform to check a fencing
//! token with the write, which neither the scale subresource nor EC2 Auto Scaling offers.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::time::Timestamp;

/// A call must have at least this much lease time left when it is checked: it is the time
/// the call has to reach the platform before another replica may take the Lease.
pub const MIN_REMAINING: Duration = Duration::from_millis(500);

/// Why a destructive call was refused. Labels are metric labels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fenced {
    /// This replica already knows it lost the lease (its election state says so).
    #[error("this instance no longer holds the lease")]
    NotLeader,
    /// The Lease names another holder (or none).
    #[error("the lease is held by {}", holder.as_deref().unwrap_or("nobody"))]
    HeldByOther { holder: Option<String> },
    /// The Lease still names this replica, but `renewTime + leaseDurationSeconds` is past, or
    /// too close for a call to land inside it.
    #[error("the lease has {remaining_ms} ms left (at least {} needed)", MIN_REMAINING.as_millis())]
    Expired { remaining_ms: i64 },
    /// The Lease could not be read: fail closed.
    #[error("the lease could not be read: {message}")]
    Unreadable { message: String },
}

impl Fenced {
    pub fn label(&self) -> &'static str {
        match self {
            Fenced::NotLeader => "not_leader",
            Fenced::HeldByOther { .. } => "held_by_other",
            Fenced::Expired { .. } => "expired",
            Fenced::Unreadable { .. } => "unreadable",
        }
    }
}

/// Asked right before each destructive call; `Err` = make no call.
#[async_trait]
pub trait Fence: Send + Sync {
    async fn may_act(&self) -> Result<(), Fenced>;
}

/// No leader election: this instance is the only actuator.
pub struct Unfenced;

#[async_trait]
impl Fence for Unfenced {
    async fn may_act(&self) -> Result<(), Fenced> {
        Ok(())
    }
}

/// The fields of a `coordination.k8s.io/v1` Lease the fence reads (all optional in the API).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseView {
    pub holder: Option<String>,
    pub renew: Option<Timestamp>,
    pub duration: Option<Duration>,
}

/// May `me` act at `now` under this freshly read Lease? Yes only when it names `me` as
/// holder and `renewTime + leaseDurationSeconds - now >= MIN_REMAINING`; returns the time left.
///
/// `now` and `renewTime` come from the same clock: the holder writes `renewTime` with its own
/// clock and this is only ever true for the holder, so clock skew between replicas plays no
/// part (a wall-clock step on this host does).
pub fn judge(lease: &LeaseView, me: &str, now: Timestamp) -> Result<Duration, Fenced> {
    if lease.holder.as_deref() != Some(me) {
        return Err(Fenced::HeldByOther {
            holder: lease.holder.clone(),
        });
    }
    let (Some(renew), Some(duration)) = (lease.renew, lease.duration) else {
        return Err(Fenced::Expired { remaining_ms: 0 });
    };
    let remaining_ms = (renew + duration).0 - now.0;
    if remaining_ms < MIN_REMAINING.as_millis() as i64 {
        return Err(Fenced::Expired { remaining_ms });
    }
    Ok(Duration::from_millis(remaining_ms as u64))
}

/// A fence whose answers the test scripts: each check takes the next answer (the last one
/// repeats; none = allowed), and the number of checks is counted.
#[derive(Default)]
pub struct RecordingFence {
    answers: Mutex<Vec<Result<(), Fenced>>>,
    checks: Mutex<u32>,
}

impl RecordingFence {
    pub fn answering(answers: impl IntoIterator<Item = Result<(), Fenced>>) -> RecordingFence {
        RecordingFence {
            answers: Mutex::new(answers.into_iter().collect()),
            checks: Mutex::new(0),
        }
    }

    /// Every later check answers `answer`.
    pub fn set(&self, answer: Result<(), Fenced>) {
        *self.answers.lock().unwrap() = vec![answer];
    }

    pub fn checks(&self) -> u32 {
        *self.checks.lock().unwrap()
    }
}

#[async_trait]
impl Fence for RecordingFence {
    async fn may_act(&self) -> Result<(), Fenced> {
        *self.checks.lock().unwrap() += 1;
        let mut answers = self.answers.lock().unwrap();
        match answers.len() {
            0 => Ok(()),
            1 => answers[0].clone(),
            _ => answers.remove(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renew_ms: i64) -> LeaseView {
        LeaseView {
            holder: Some(holder.into()),
            renew: Some(Timestamp(renew_ms)),
            duration: Some(Duration::from_secs(15)),
        }
    }

    #[test]
    fn a_fresh_lease_of_ours_allows_and_says_how_long() {
        let left = judge(&lease("a", 100_000), "a", Timestamp(110_000)).unwrap();
        assert_eq!(left, Duration::from_secs(5));
    }

    #[test]
    fn another_holder_or_none_refuses() {
        let taken = judge(&lease("b", 100_000), "a", Timestamp(101_000));
        assert_eq!(
            taken,
            Err(Fenced::HeldByOther {
                holder: Some("b".into())
            })
        );
        let empty = judge(&LeaseView::default(), "a", Timestamp(0)).unwrap_err();
        assert_eq!(empty.label(), "held_by_other");
        assert!(empty.to_string().contains("nobody"), "{empty}");
    }

    #[test]
    fn our_own_expired_lease_refuses_even_though_it_names_us() {
        // Frozen past the duration, nobody took over yet: the Lease still says "a".
        let expired = judge(&lease("a", 100_000), "a", Timestamp(120_000));
        assert_eq!(
            expired,
            Err(Fenced::Expired {
                remaining_ms: -5_000
            })
        );
        let too_close = judge(&lease("a", 100_000), "a", Timestamp(114_800));
        assert_eq!(too_close.unwrap_err().label(), "expired");
        let no_renew = LeaseView {
            renew: None,
            ..lease("a", 0)
        };
        assert_eq!(
            judge(&no_renew, "a", Timestamp(1)).unwrap_err().label(),
            "expired"
        );
    }

    #[tokio::test]
    async fn the_recording_fence_plays_its_script_then_repeats_the_last_answer() {
        let fence = RecordingFence::answering([Ok(()), Err(Fenced::NotLeader)]);
        assert_eq!(fence.may_act().await, Ok(()));
        assert_eq!(fence.may_act().await, Err(Fenced::NotLeader));
        assert_eq!(fence.may_act().await, Err(Fenced::NotLeader));
        assert_eq!(fence.checks(), 3);
        assert_eq!(Unfenced.may_act().await, Ok(()));
    }
}
