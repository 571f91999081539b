//! Control-loop tests with fakes: a scripted source, the recording actuator, no drain, and
//! explicit times. They pin the daemon's promises: a pool whose size is unknown is never
//! actuated, shadow never writes, a follower never writes, restarts keep cooldowns and do not
//! repeat actuations, a lost state file starts conservatively, drains run in the background.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;

use super::controller::{Clock, Controller, ControllerConfig};
use super::pools::Wiring;
use super::state::{self, Pending, PendingKind, PersistedState};
use super::status::DaemonStatus;
use crate::actuators::{Actuator, ActuatorError, RecordingActuator};
use crate::drain::{Drainer, NoDrain};
use crate::engine::Memory;
use crate::policy::{self, Policy, SignalSpec};
use crate::sources::{MetricSource, Reading, SourceError};
use crate::time::Timestamp;

mod fence;

/// A source whose next answers the test sets.
#[derive(Default)]
struct ScriptedSource {
    demand: Mutex<Option<f64>>,
}

#[async_trait]
impl MetricSource for ScriptedSource {
    async fn poll(&self) -> Result<Reading, SourceError> {
        match *self.demand.lock().unwrap() {
            Some(demand) => Ok(Reading {
                labels: Vec::new(),
                demand,
                raw: vec![],
            }),
            None => Err(SourceError::Unreachable {
                target: "http://fake/json/".into(),
                detail: "connection refused".into(),
            }),
        }
    }
    fn name(&self) -> &str {
        "scripted http://fake/json/"
    }
}

struct FakeWiring {
    source: Arc<ScriptedSource>,
    actuator: Arc<RecordingActuator>,
    drainer: Arc<dyn Drainer>,
}

#[async_trait]
impl Wiring for FakeWiring {
    fn source(&self, _spec: &SignalSpec) -> Arc<dyn MetricSource> {
        self.source.clone()
    }
    async fn actuator(&self, _policy: &Policy) -> Result<Arc<dyn Actuator>, ActuatorError> {
        Ok(self.actuator.clone())
    }
    fn drainer(&self, _policy: &Policy) -> Arc<dyn Drainer> {
        self.drainer.clone()
    }
}

struct FixedClock(Mutex<Timestamp>);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

const T0: i64 = 1_800_000_000;

fn policy(mode: &str, down_window: &str) -> Policy {
    let yaml = format!(
        "pool: etl\nmode: {mode}\nsignals:\n  - spark: {{ master: http://127.0.0.1:1, cores_per_waiting_app: 2 }}\n    per_worker: 2\n\
         workers:\n  aws_asg: {{ group: etl, region: us-east-1 }}\nbounds: {{ min: 1, max: 10 }}\n\
         scale_up: {{ cooldown: 60s }}\nscale_down: {{ stabilization: {down_window}, cooldown: 60s, drain: {{ method: none }} }}\n"
    );
    policy::load_str(&yaml, "etl.yaml").unwrap()
}

struct Harness {
    dir: tempfile::TempDir,
    source: Arc<ScriptedSource>,
    actuator: Arc<RecordingActuator>,
    board: Arc<RwLock<DaemonStatus>>,
    clock: Arc<FixedClock>,
    /// What the pools drain with (`NoDrain` unless a test sets another).
    drainer: Arc<dyn Drainer>,
}

impl Harness {
    fn new(size: u32) -> Harness {
        Harness {
            dir: tempfile::tempdir().unwrap(),
            source: Arc::new(ScriptedSource::default()),
            actuator: Arc::new(RecordingActuator::with_size(size)),
            board: Arc::new(RwLock::new(DaemonStatus::default())),
            clock: Arc::new(FixedClock(Mutex::new(Timestamp::from_secs(T0)))),
            drainer: Arc::new(NoDrain),
        }
    }

    fn state_path(&self) -> std::path::PathBuf {
        self.dir.path().join("state.json")
    }

    /// A state file with empty memory, so the start is not the conservative one.
    fn with_clean_state(self) -> Harness {
        state::save(
            &self.state_path(),
            &PersistedState::new(
                Timestamp::from_secs(T0),
                Memory::default(),
                vec![],
                Default::default(),
            )
            .view(),
        )
        .unwrap();
        self
    }

    async fn controller(&self, policies: Vec<Policy>, leader_election: bool) -> Controller {
        self.controller_with(policies, leader_election, None, None)
            .await
    }

    async fn controller_with(
        &self,
        policies: Vec<Policy>,
        leader_election: bool,
        recorder: Option<super::record::Recorder>,
        global_budget_per_hour: Option<f64>,
    ) -> Controller {
        let wiring = Arc::new(FakeWiring {
            source: self.source.clone(),
            actuator: self.actuator.clone(),
            drainer: self.drainer.clone(),
        });
        let cfg = ControllerConfig {
            dry_run: false,
            global_budget_per_hour,
            state_path: self.state_path(),
            tick: Duration::from_secs(5),
            leader_election,
        };
        Controller::start(
            cfg,
            wiring,
            self.clock.clone(),
            policies,
            recorder,
            self.board.clone(),
        )
        .await
    }

    /// A tick at `T0 + secs` (the clock moves with it, as drain tasks read it).
    async fn tick(&self, c: &mut Controller, secs: i64, leader: bool) {
        *self.clock.0.lock().unwrap() = at(secs);
        c.tick(at(secs), leader).await;
    }

    /// Waits until the actuator has seen `n` scale calls (background drains).
    async fn await_calls(&self, n: usize) {
        for _ in 0..200 {
            if self.actuator.calls().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("expected {n} scale calls, saw {:?}", self.targets());
    }

    fn demand(&self, d: Option<f64>) {
        *self.source.demand.lock().unwrap() = d;
    }

    fn targets(&self) -> Vec<u32> {
        self.actuator.calls().iter().map(|c| c.target).collect()
    }
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_secs(T0 + secs)
}

#[tokio::test]
async fn scale_up_is_sent_recorded_and_persisted() {
    let h = Harness::new(2).with_clean_state();
    let mut c = h.controller(vec![policy("enforce", "0s")], false).await;
    h.demand(Some(10.0));
    h.tick(&mut c, 10, true).await;
    assert_eq!(h.targets(), [5]);
    assert_eq!(c.memory().pools["etl"].last_scale_up, Some(at(10)));
    assert!(
        c.pending().is_empty(),
        "the write-ahead entry is cleared once the call succeeded"
    );
    let state::Loaded::Ok(saved) = state::load(&h.state_path()) else {
        panic!()
    };
    assert_eq!(saved.memory.pools["etl"].last_scale_up, Some(at(10)));
    let board = h.board.read().unwrap();
    assert_eq!(board.pools[0].current, Some(2));
    assert_eq!(board.pools[0].desired, Some(5));
    assert_eq!(
        board.pools[0].last_actuation.as_ref().unwrap().outcome,
        "ok"
    );
}

#[tokio::test]
async fn a_pool_whose_size_cannot_be_read_is_held_and_says_why() {
    let h = Harness::new(2).with_clean_state();
    let mut c = h.controller(vec![policy("enforce", "0s")], false).await;
    h.demand(Some(10.0));
    h.actuator.fail_next([ActuatorError::Unreachable {
        message: "apiserver down".into(),
    }]);
    h.tick(&mut c, 10, true).await;
    assert!(h.targets().is_empty(), "never actuate blind");
    let held = h.board.read().unwrap().pools[0]
        .held_because
        .clone()
        .unwrap();
    assert!(held.contains("apiserver down"), "{held}");
    h.tick(&mut c, 15, true).await;
    assert_eq!(
        h.targets(),
        [5],
        "once the size is known again the pool is actuated"
    );
}

#[tokio::test]
async fn a_lost_source_holds_the_pool_and_status_shows_why() {
    let h = Harness::new(4).with_clean_state();
    let mut c = h.controller(vec![policy("enforce", "0s")], false).await;
    h.demand(None);
    h.tick(&mut c, 10, true).await;
    h.tick(&mut c, 200, true).await;
    assert!(h.targets().is_empty(), "no scale-down on missing data");
    let board = h.board.read().unwrap();
    let signal = &board.pools[0].signals[0];
    assert_eq!(
        (signal.state, signal.fault),
        ("missing", Some("unreachable"))
    );
    assert!(
        signal
            .error
            .as_deref()
            .unwrap()
            .contains("connection refused")
    );
    assert_eq!(signal.missing_since, Some(at(10)));
    assert!(
        board.pools[0]
            .reasons
            .iter()
            .any(|r| r.stage == "signal_missing")
    );
}

/// A shadow pool is decided on its would-be pool: its moves accrue cooldowns as enforce's
/// would, the platform is never written, and `/status` shows would-be beside real.
#[tokio::test]
async fn shadow_mode_never_writes_and_decides_on_its_would_be_pool() {
    let h = Harness::new(2).with_clean_state();
    let mut c = h.controller(vec![policy("shadow", "0s")], false).await;
    h.demand(Some(10.0));
    h.tick(&mut c, 10, true).await;
    h.demand(Some(20.0));
    h.tick(&mut c, 30, true).await;
    assert!(h.targets().is_empty(), "shadow never writes");
    {
        let board = h.board.read().unwrap();
        let pool = &board.pools[0];
        assert_eq!(pool.actuation, "shadow");
        assert_eq!(pool.last_actuation.as_ref().unwrap().outcome, "dry_run");
        assert_eq!(
            pool.desired,
            Some(5),
            "held at 5 by the would-be scale-up's cooldown"
        );
        assert!(
            pool.reasons.iter().any(|r| r.stage == "cooldown"),
            "{:?}",
            pool.reasons
        );
        let shadow = pool.shadow.as_ref().expect("shadow view");
        assert_eq!(shadow.would_be_workers, 5);
        assert_eq!(shadow.real_workers, Some(2));
        assert_eq!(shadow.demand_in_workers, Some(10.0));
        assert_eq!(
            shadow.would_be_est_queue_wait_seconds, None,
            "5 < 10 needed"
        );
    }
    assert_eq!(c.memory().pools["etl"].last_scale_up, Some(at(10)));
    assert_eq!(c.shadows()["etl"].workers, 5);
    drop(c);
    let c = h.controller(vec![policy("shadow", "0s")], false).await;
    assert_eq!(
        c.shadows()["etl"].workers,
        5,
        "the would-be pool survives a restart"
    );
}

/// The same demand gives the same decisions in shadow as in enforce.
#[tokio::test]
async fn shadow_decides_exactly_what_enforce_does() {
    let mut desired = Vec::new();
    for mode in ["enforce", "shadow"] {
        let h = Harness::new(2).with_clean_state();
        let mut c = h.controller(vec![policy(mode, "0s")], false).await;
        let mut seen = Vec::new();
        for (secs, demand) in [
            (10, 10.0),
            (30, 20.0),
            (75, 20.0),
            (90, 2.0),
            (160, 2.0),
            (230, 0.0),
        ] {
            h.demand(Some(demand));
            h.tick(&mut c, secs, true).await;
            h.await_calls(h.actuator.calls().len()).await;
            let board = h.board.read().unwrap();
            seen.push(board.pools[0].desired);
        }
        desired.push(seen);
    }
    assert_eq!(desired[0], desired[1]);
    assert_eq!(
        desired[0][..3],
        [Some(5), Some(5), Some(10)],
        "the second step only after the cooldown"
    );
}

#[tokio::test]
async fn a_follower_never_writes_but_remembers_the_leaders_changes() {
    let h = Harness::new(2).with_clean_state();
    let mut c = h.controller(vec![policy("enforce", "0s")], true).await;
    h.demand(Some(10.0));
    h.tick(&mut c, 10, false).await;
    assert!(h.targets().is_empty());
    assert_eq!(h.board.read().unwrap().pools[0].actuation, "follower");
    // The leader (another process) resizes the pool.
    h.actuator.scale_to(5, &[]).await.unwrap();
    h.tick(&mut c, 15, false).await;
    assert_eq!(
        c.memory().pools["etl"].last_scale_up,
        Some(at(15)),
        "warm failover: the cooldown is known"
    );
    // Taking over inside that cooldown sends nothing new.
    h.demand(Some(18.0));
    h.tick(&mut c, 20, true).await;
    assert_eq!(h.targets(), [5], "only the leader's own call");
}

#[tokio::test]
async fn a_restart_keeps_the_cooldown_and_does_not_repeat_the_actuation() {
    let h = Harness::new(2).with_clean_state();
    h.demand(Some(10.0));
    {
        let mut c = h.controller(vec![policy("enforce", "0s")], false).await;
        h.tick(&mut c, 10, true).await;
    } // killed: no shutdown, only what the tick persisted survives
    assert_eq!(h.targets(), [5]);
    let mut c = h.controller(vec![policy("enforce", "0s")], false).await;
    h.demand(Some(16.0));
    h.tick(&mut c, 20, true).await;
    assert_eq!(
        h.targets(),
        [5],
        "the scale-up cooldown (60s) still holds after the restart"
    );
    assert!(
        h.board.read().unwrap().pools[0]
            .reasons
            .iter()
            .any(|r| r.stage == "cooldown")
    );
    h.tick(&mut c, 75, true).await;
    assert_eq!(h.targets(), [5, 8]);
}

#[tokio::test]
async fn write_ahead_entries_are_reconciled_with_the_platform() {
    let h = Harness::new(5);
    let pending = |pool: &str, to| Pending {
        pool: pool.into(),
        from: 2,
        to,
        since: at(1),
        kind: PendingKind::Scale,
    };
    let saved = PersistedState::new(
        at(2),
        Memory::default(),
        vec![pending("etl", 5)],
        Default::default(),
    );
    state::save(&h.state_path(), &saved.view()).unwrap();
    h.demand(Some(10.0));
    let mut c = h.controller(vec![policy("enforce", "0s")], false).await;
    h.tick(&mut c, 10, true).await;
    assert_eq!(
        c.memory().pools["etl"].last_scale_up,
        Some(at(1)),
        "the call took effect before the crash"
    );
    assert!(c.pending().is_empty());

    let h = Harness::new(2);
    state::save(
        &h.state_path(),
        &PersistedState::new(
            at(2),
            Memory::default(),
            vec![pending("etl", 9)],
            Default::default(),
        )
        .view(),
    )
    .unwrap();
    h.demand(Some(4.0));
    let mut c = h.controller(vec![policy("enforce", "0s")], false).await;
    h.tick(&mut c, 10, true).await;
    assert_eq!(
        c.memory().pools["etl"].last_scale_up,
        None,
        "it did not take effect: nothing to remember"
    );
}

#[tokio::test]
async fn without_state_the_start_is_conservative() {
    let h = Harness::new(4);
    std::fs::write(h.state_path(), "{ not json").unwrap();
    h.demand(Some(0.0));
    let mut c = h.controller(vec![policy("enforce", "60s")], false).await;
    assert_eq!(h.board.read().unwrap().state.loaded, "corrupt");
    h.tick(&mut c, 10, true).await;
    assert!(h.targets().is_empty());
    assert!(
        h.board.read().unwrap().pools[0]
            .reasons
            .iter()
            .any(|r| r.stage == "conservative_start")
    );
}

#[tokio::test]
async fn scale_down_drains_in_the_background_then_records() {
    let h = Harness::new(3).with_clean_state();
    h.demand(Some(0.0));
    let mut c = h.controller(vec![policy("enforce", "0s")], false).await;
    h.tick(&mut c, 10, true).await;
    assert_eq!(
        c.pending().len(),
        1,
        "the scale-down is written ahead while it drains"
    );
    h.await_calls(1).await;
    assert_eq!(h.targets(), [1]);
    h.tick(&mut c, 15, true).await;
    assert_eq!(
        c.memory().pools["etl"]
            .last_scale_down
            .map(|t| t.0 >= at(10).0),
        Some(true)
    );
    assert!(c.pending().is_empty());
}

#[tokio::test]
async fn reload_keeps_memory_and_adopts_new_bounds() {
    let h = Harness::new(2).with_clean_state();
    h.demand(Some(10.0));
    let mut c = h.controller(vec![policy("enforce", "0s")], false).await;
    h.tick(&mut c, 10, true).await;
    let edited = policy::load_str(&policy_text_with_max(3), "etl.yaml").unwrap();
    c.apply_policies(vec![edited], at(12)).await;
    assert_eq!(
        c.memory().pools["etl"].last_scale_up,
        Some(at(10)),
        "memory survives a reload"
    );
    h.tick(&mut c, 80, true).await;
    h.await_calls(2).await;
    assert_eq!(h.targets(), [5, 3], "the lowered max applies at once");
}

fn policy_text_with_max(max: u32) -> String {
    format!(
        "pool: etl\nsignals:\n  - spark: {{ master: http://127.0.0.1:1, cores_per_waiting_app: 2 }}\n    per_worker: 2\n\
         workers:\n  aws_asg: {{ group: etl, region: us-east-1 }}\nbounds: {{ min: 1, max: {max} }}\n\
         scale_down: {{ stabilization: 0s, cooldown: 0s, drain: {{ method: none }} }}\n"
    )
}

/// What the daemon records, replayed through the engine, decides the same at every tick:
/// an enforce pool and a shadow pool under a global budget, through scale-ups, cooldowns, a
/// source outage, background scale-downs and a restart. A tampered decision is caught.
#[tokio::test]
async fn a_recording_replays_to_the_same_decisions() {
    use crate::sim::{parity, recording};
    let h = Harness::new(2).with_clean_state();
    let path = h.dir.path().join("rec.jsonl");
    let shadow_text = format!(
        "{}cost: {{ per_worker_hour: 1 }}\n",
        policy_text_with_max(10).replace("pool: etl", "pool: etl-shadow\nmode: shadow")
    );
    let policies = || {
        let mut enforce = policy("enforce", "20s");
        enforce.spec.cost = Some(crate::policy::CostSpec {
            per_worker_hour: 1.0,
            max_per_hour: None,
            priority: 0,
        });
        vec![
            enforce,
            policy::load_str(&shadow_text, "shadow.yaml").unwrap(),
        ]
    };
    let open = || Some(super::record::Recorder::open(&path).unwrap());
    let mut c = h
        .controller_with(policies(), false, open(), Some(7.0))
        .await;
    let script = [
        (10, Some(10.0)),
        (30, Some(20.0)),
        (80, Some(20.0)),
        (95, None),
        (120, Some(1.0)),
        (150, Some(1.0)),
        (200, Some(1.0)),
    ];
    for (secs, demand) in script {
        h.demand(demand);
        h.tick(&mut c, secs, true).await;
        tokio::time::sleep(Duration::from_millis(100)).await; // background drains finish
    }
    drop(c);
    let mut c = h
        .controller_with(policies(), false, open(), Some(7.0))
        .await;
    for secs in [260, 300, 340] {
        h.tick(&mut c, secs, true).await;
        tokio::time::sleep(Duration::from_millis(100)).await; // background drains finish
    }
    drop(c);
    let text = std::fs::read_to_string(&path).unwrap();
    let rec = recording::parse(&text, "rec.jsonl").unwrap();
    let report = parity::check(&rec, "rec.jsonl").unwrap();
    assert_eq!(report.ticks, 10);
    assert_eq!(report.pools.len(), 2);
    assert!(
        report.mismatches.is_empty(),
        "{}",
        report
            .mismatches
            .iter()
            .map(|m| parity::describe(m, "rec.jsonl"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    for pool in ["etl", "etl-shadow"] {
        let moves: Vec<(u32, u32)> = rec
            .lines
            .iter()
            .filter_map(|(_, l)| match l {
                recording::RecordLine::Actuation(a) if a.pool == pool => Some((a.from, a.to)),
                _ => None,
            })
            .collect();
        assert!(
            moves.iter().any(|(f, t)| t > f),
            "{pool} scaled up: {moves:?}"
        );
        assert!(
            moves.iter().any(|(f, t)| t < f),
            "{pool} scaled down: {moves:?}"
        );
    }
    assert!(
        text.contains("global_budget"),
        "the budget bound the enforce pool"
    );

    let tampered = text.replacen("\"desired\":5", "\"desired\":6", 1);
    assert_ne!(tampered, text);
    let rec = recording::parse(&tampered, "t.jsonl").unwrap();
    assert_eq!(parity::check(&rec, "t.jsonl").unwrap().mismatches.len(), 1);
}

/// A pause annotation on the platform holds the pool for the leader and shows on a follower's
/// `/status` too; an admin pause is persisted and restored; both reach the recording, and the
/// replay decides the same.
#[tokio::test]
async fn pauses_from_the_platform_and_the_admin_endpoint_hold_and_replay() {
    use crate::engine::{PauseKind, PauseSource};
    use crate::sim::{parity, recording};
    let h = Harness::new(2).with_clean_state();
    let path = h.dir.path().join("rec.jsonl");
    let open = || Some(super::record::Recorder::open(&path).unwrap());

    // Follower: the annotation is read and shown, nothing is written.
    h.actuator
        .set_pause_marks(&[("poolpilot.io/paused", "true"), ("other", "x")]);
    let mut follower = h.controller(vec![policy("enforce", "0s")], true).await;
    h.demand(Some(10.0));
    h.tick(&mut follower, 10, false).await;
    let view = h.board.read().unwrap().pools[0].clone();
    assert_eq!(view.actuation, "follower");
    let paused = view.paused.expect("the follower shows the pause");
    assert_eq!((paused.kind, paused.source), ("hold", "annotation"));
    assert_eq!(view.desired, Some(2));
    drop(follower);

    // Leader: held by the annotation, then pinned through the admin endpoint's state.
    let mut c = h
        .controller_with(vec![policy("enforce", "0s")], false, open(), None)
        .await;
    h.tick(&mut c, 20, true).await;
    assert!(h.targets().is_empty(), "held: {:?}", h.targets());
    let pin = crate::engine::Pause {
        kind: PauseKind::Pin { replicas: 3 },
        until: Some(at(3600)),
        source: PauseSource::Admin,
    };
    c.admin_pauses().restore([("etl".to_string(), pin)].into());
    c.persist(at(21));
    h.tick(&mut c, 30, true).await;
    assert_eq!(
        h.targets(),
        [3],
        "the admin pin wins over the annotation's hold"
    );
    drop(c);

    // Restart: the admin pause comes back from the state file.
    let state::Loaded::Ok(saved) = state::load(&h.state_path()) else {
        panic!()
    };
    assert_eq!(saved.admin_pauses["etl"], pin);
    let mut c = h
        .controller_with(vec![policy("enforce", "0s")], false, open(), None)
        .await;
    assert_eq!(c.admin_pauses().get("etl"), Some(pin));
    // Both gone: the pool follows its demand.
    h.actuator.set_pause_marks(&[]);
    c.admin_pauses().restore(Default::default());
    h.tick(&mut c, 100, true).await; // past the 60 s scale-up cooldown the pin started
    assert_eq!(h.targets(), [3, 5]);
    drop(c);

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"source\":\"admin\""), "pauses are recorded");
    let rec = recording::parse(&text, "rec.jsonl").unwrap();
    let report = parity::check(&rec, "rec.jsonl").unwrap();
    assert_eq!(report.ticks, 3);
    assert!(report.mismatches.is_empty(), "{}", report.summary());
}
