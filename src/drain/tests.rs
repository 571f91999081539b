//! A scripted drainer shared by the drain unit tests, and tests of `drain_member`.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use super::*;

/// Members in `busy` never finish draining; the rest are drained at once. Ranks idle first.
pub(crate) struct ScriptedDrainer {
    busy: HashSet<String>,
    one_way: bool,
    begun: Mutex<Vec<String>>,
    fail_begin: Option<DrainError>,
}

impl ScriptedDrainer {
    pub(crate) fn busy(ids: &[&str]) -> ScriptedDrainer {
        ScriptedDrainer {
            busy: ids.iter().map(|s| s.to_string()).collect(),
            one_way: false,
            begun: Mutex::new(Vec::new()),
            fail_begin: None,
        }
    }

    pub(crate) fn one_way(mut self) -> ScriptedDrainer {
        self.one_way = true;
        self
    }

    pub(crate) fn begun(&self) -> Vec<String> {
        self.begun.lock().unwrap().clone()
    }
}

#[async_trait]
impl Drainer for ScriptedDrainer {
    fn method(&self) -> &'static str {
        "scripted"
    }
    fn one_way(&self) -> bool {
        self.one_way
    }
    async fn rank(&self, mut members: Vec<Member>) -> Result<Vec<Member>, DrainError> {
        members.sort_by_key(|m| self.busy.contains(&m.id));
        Ok(members)
    }
    async fn begin(&self, member: &Member) -> Result<(), DrainError> {
        if let Some(e) = &self.fail_begin {
            return Err(e.clone());
        }
        self.begun.lock().unwrap().push(member.id.clone());
        Ok(())
    }
    async fn is_drained(&self, member: &Member) -> Result<bool, DrainError> {
        Ok(!self.busy.contains(&member.id))
    }
}

const POLL: Duration = Duration::from_millis(5);

#[tokio::test]
async fn an_idle_member_drains_at_once() {
    let (_tx, abort) = watch::channel(false);
    let drainer = ScriptedDrainer::busy(&[]);
    let outcome = drain_member(
        &drainer,
        &Member::new("w"),
        Duration::from_secs(5),
        POLL,
        abort,
    )
    .await;
    assert_eq!(outcome, DrainOutcome::Drained);
    assert_eq!(drainer.begun(), ["w"]);
}

#[tokio::test]
async fn a_busy_member_times_out_within_the_bound() {
    let (_tx, abort) = watch::channel(false);
    let drainer = ScriptedDrainer::busy(&["w"]);
    let member = Member::new("w");
    let bounded = tokio::time::timeout(
        Duration::from_secs(2),
        drain_member(&drainer, &member, Duration::from_millis(50), POLL, abort),
    );
    assert_eq!(
        bounded.await.expect("the drain timeout bounds the call"),
        DrainOutcome::TimedOut
    );
}

#[tokio::test]
async fn a_one_way_drain_is_not_abandoned_after_it_began() {
    let (tx, abort) = watch::channel(false);
    let drainer = ScriptedDrainer::busy(&["w"]).one_way();
    let member = Member::new("w");
    let drain = drain_member(&drainer, &member, Duration::from_millis(80), POLL, abort);
    let (outcome, _) = tokio::join!(drain, async { tx.send(true).unwrap() });
    assert_eq!(
        outcome,
        DrainOutcome::TimedOut,
        "after the one-way call only the timeout ends the wait"
    );
}

#[tokio::test]
async fn a_dropped_abort_sender_does_not_spin() {
    let (tx, abort) = watch::channel(false);
    drop(tx);
    let drainer = ScriptedDrainer::busy(&["w"]);
    let outcome = drain_member(
        &drainer,
        &Member::new("w"),
        Duration::from_millis(40),
        POLL,
        abort,
    )
    .await;
    assert_eq!(outcome, DrainOutcome::TimedOut);
}

#[tokio::test]
async fn a_refused_begin_fails_the_drain_with_its_reason() {
    let (_tx, abort) = watch::channel(false);
    let mut drainer = ScriptedDrainer::busy(&[]);
    drainer.fail_begin = Some(DrainError::Forbidden {
        message: "access control".into(),
    });
    let outcome = drain_member(
        &drainer,
        &Member::new("w"),
        Duration::from_secs(1),
        POLL,
        abort,
    )
    .await;
    assert_eq!(outcome.label(), "failed");
}

#[tokio::test]
async fn protected_members_are_never_victims() {
    let members = vec![
        Member {
            protected: true,
            ready: false,
            ..Member::new("a")
        },
        Member::new("b"),
        Member {
            ready: false,
            ..Member::new("c")
        },
    ];
    let victims = choose_victims(&NoDrain, &members, 2).await.unwrap();
    let ids: Vec<_> = victims.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["c", "b"], "not-ready first, protected excluded");
}

#[test]
fn host_of_strips_scheme_port_and_path() {
    assert_eq!(host_of("10.0.0.5"), "10.0.0.5");
    assert_eq!(host_of("10.0.0.5:8080"), "10.0.0.5");
    assert_eq!(host_of("http://10.0.0.5:8080/v1/status"), "10.0.0.5");
    assert_eq!(host_of("http://[fd00::1]:8080/v1/status"), "fd00::1");
    assert_eq!(host_of("worker-0.trino"), "worker-0.trino");
}

/// One matching rule for every drain that maps a worker's own host name to a member (Celery
/// nodes, YARN NodeManagers): id or address host, as the first DNS labels, or EC2's name.
#[test]
fn names_member_matches_id_address_and_ec2_names_by_whole_labels() {
    let pod = Member::new("worker-0");
    assert!(names_member("worker-0", &pod));
    assert!(
        names_member("Worker-0.workers.ns.svc", &pod),
        "case-insensitive, FQDN"
    );
    assert!(!names_member("worker-01", &pod), "whole labels only");
    let vm = Member::new("i-0abc").with_address("10.0.3.7");
    assert!(names_member("10.0.3.7", &vm));
    assert!(names_member("ip-10-0-3-7.ec2.internal", &vm));
    assert!(names_member("IP-10-0-3-7", &vm));
    assert!(!names_member("ip-10-0-3-70", &vm));
    assert!(!names_member("10.0.3.70", &vm));
    assert!(
        !names_member("", &Member::new("")),
        "an empty id names nothing"
    );
}
