//! The Lease-backed [`Fence`]: before each destructive call, this replica's election state
//! must say "leader" *and* a fresh read of the `coordination.k8s.io/v1` Lease from the API
//! server must pass [`fence::judge`] (`spec.holderIdentity` is this replica,
//! `spec.renewTime + spec.leaseDurationSeconds` is still ahead). The in-memory flag alone is
//! not enough: after a freeze (SIGSTOP) longer than the lease duration it still says "leader"
//! until the lease manager's next renewal fails, and the tick or drain that wakes first would
//! act on it. The read is one GET per destructive step (not per tick), and fails closed.
//! See `crate::fence` for the window that remains between the check and the call.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use tokio::sync::watch;

use super::controller::Clock;
use crate::fence::{self, Fence, Fenced, LeaseView};
use crate::time::Timestamp;

/// Bound on the Lease read; a slower API server means "do not act now".
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// Reads the Lease (narrow, so the fence is tested without an API server).
#[async_trait]
pub trait LeaseRead: Send + Sync {
    async fn read(&self) -> Result<LeaseView, String>;
}

/// `GET /apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}`.
pub struct KubeLease {
    api: Api<Lease>,
    name: String,
}

impl KubeLease {
    pub fn new(client: Client, namespace: &str, name: &str) -> KubeLease {
        KubeLease {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
        }
    }
}

#[async_trait]
impl LeaseRead for KubeLease {
    async fn read(&self) -> Result<LeaseView, String> {
        let lease = tokio::time::timeout(READ_TIMEOUT, self.api.get(&self.name))
            .await
            .map_err(|_| format!("no answer within {}s", READ_TIMEOUT.as_secs()))?
            .map_err(|e| e.to_string())?;
        let spec = lease.spec.unwrap_or_default();
        Ok(LeaseView {
            holder: spec.holder_identity,
            renew: spec.renew_time.map(|t| Timestamp(t.0.as_millisecond())),
            duration: spec
                .lease_duration_seconds
                .map(|s| Duration::from_secs(s.max(0) as u64)),
        })
    }
}

/// See the module docs.
pub struct LeaseFence {
    identity: String,
    leader: watch::Receiver<bool>,
    lease: Box<dyn LeaseRead>,
    clock: Arc<dyn Clock>,
}

impl LeaseFence {
    pub fn new(
        identity: String,
        leader: watch::Receiver<bool>,
        lease: Box<dyn LeaseRead>,
        clock: Arc<dyn Clock>,
    ) -> LeaseFence {
        LeaseFence {
            identity,
            leader,
            lease,
            clock,
        }
    }
}

#[async_trait]
impl Fence for LeaseFence {
    async fn may_act(&self) -> Result<(), Fenced> {
        if !*self.leader.borrow() {
            return Err(Fenced::NotLeader);
        }
        let view = self
            .lease
            .read()
            .await
            .map_err(|message| Fenced::Unreadable { message })?;
        fence::judge(&view, &self.identity, self.clock.now()).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    struct FixedClock(Timestamp);
    impl Clock for FixedClock {
        fn now(&self) -> Timestamp {
            self.0
        }
    }

    /// Answers the Lease the test put there; counts the reads.
    #[derive(Default)]
    struct FakeLease {
        view: Mutex<Option<LeaseView>>,
        reads: Mutex<u32>,
    }

    #[async_trait]
    impl LeaseRead for Arc<FakeLease> {
        async fn read(&self) -> Result<LeaseView, String> {
            *self.reads.lock().unwrap() += 1;
            self.view
                .lock()
                .unwrap()
                .clone()
                .ok_or_else(|| "connection refused".to_owned())
        }
    }

    fn fence(flag: bool, lease: &Arc<FakeLease>, now_ms: i64) -> (LeaseFence, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(flag);
        let f = LeaseFence::new(
            "a".into(),
            rx,
            Box::new(lease.clone()),
            Arc::new(FixedClock(Timestamp(now_ms))),
        );
        (f, tx)
    }

    fn held_by(holder: &str, renew_ms: i64) -> Option<LeaseView> {
        Some(LeaseView {
            holder: Some(holder.into()),
            renew: Some(Timestamp(renew_ms)),
            duration: Some(Duration::from_secs(4)),
        })
    }

    #[tokio::test]
    async fn a_stale_leader_flag_is_refused_when_the_lease_was_taken_over() {
        // Resumed after a freeze: the flag still says leader, the Lease names "b".
        let lease = Arc::new(FakeLease::default());
        *lease.view.lock().unwrap() = held_by("b", 19_000);
        let (f, _tx) = fence(true, &lease, 20_000);
        assert_eq!(f.may_act().await.unwrap_err().label(), "held_by_other");
    }

    #[tokio::test]
    async fn a_stale_leader_flag_is_refused_when_our_lease_ran_out() {
        // Resumed after a freeze, nobody took over yet: the Lease still names us, expired.
        let lease = Arc::new(FakeLease::default());
        *lease.view.lock().unwrap() = held_by("a", 10_000);
        let (f, _tx) = fence(true, &lease, 20_000);
        assert_eq!(
            f.may_act().await,
            Err(Fenced::Expired {
                remaining_ms: -6_000
            })
        );
    }

    #[tokio::test]
    async fn a_fresh_lease_of_ours_allows() {
        let lease = Arc::new(FakeLease::default());
        *lease.view.lock().unwrap() = held_by("a", 19_000);
        let (f, _tx) = fence(true, &lease, 20_000);
        assert_eq!(f.may_act().await, Ok(()));
    }

    #[tokio::test]
    async fn a_known_loss_refuses_without_a_read_and_an_unreadable_lease_fails_closed() {
        let lease = Arc::new(FakeLease::default());
        *lease.view.lock().unwrap() = held_by("a", 19_000);
        let (f, tx) = fence(true, &lease, 20_000);
        tx.send(false).unwrap();
        assert_eq!(f.may_act().await, Err(Fenced::NotLeader));
        assert_eq!(*lease.reads.lock().unwrap(), 0);
        tx.send(true).unwrap();
        *lease.view.lock().unwrap() = None;
        assert_eq!(f.may_act().await.unwrap_err().label(), "unreadable");
    }
}
