//! How a pool's decision is carried out this tick, and the scale-downs under way: the types
//! the tick (`controller`), the actuation path (`actuate`) and the report share.

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::actuators::ActuatorError;
use crate::drain::ScaleDownReport;
use crate::policy::Mode;
use crate::time::Timestamp;

/// A scale-down under way.
pub struct DrainTask {
    pub from: u32,
    pub to: u32,
    pub since: Timestamp,
    /// `true` = the pool needs the capacity again: stop draining where still possible.
    pub abort: watch::Sender<bool>,
    pub aborting: bool,
    /// Stopped because this replica lost the lease: whatever it reports is `fenced`.
    pub fenced: bool,
    pub handle: JoinHandle<(Result<ScaleDownReport, ActuatorError>, Timestamp)>,
}

/// How a pool's change is applied this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actuation {
    Actuate,
    /// `mode: shadow`: decide and record, never actuate.
    Shadow,
    /// `--dry-run`.
    DryRun,
    /// Leader election is on and another instance holds the lease.
    Follower,
    Paused,
}

impl Actuation {
    pub fn of(mode: Mode, dry_run: bool, leader: bool) -> Actuation {
        match mode {
            Mode::Paused => Actuation::Paused,
            Mode::Shadow => Actuation::Shadow,
            Mode::Enforce if dry_run => Actuation::DryRun,
            Mode::Enforce if !leader => Actuation::Follower,
            Mode::Enforce => Actuation::Actuate,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Actuation::Actuate => "actuate",
            Actuation::Shadow => "shadow",
            Actuation::DryRun => "dry_run",
            Actuation::Follower => "follower",
            Actuation::Paused => "paused",
        }
    }
}
