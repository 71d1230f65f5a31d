//! The decision engine: pure, no I/O, no clock. Given the spec, the status, the time and what
//! was observed, [`decide`] updates the status and says what to write and tell. The
//! controller, `simulate` and `backtest` are thin shells around it.

mod checkpoint;
mod decide;
mod input;
mod observation;
mod outcome;
mod schedule;
mod transitions;

pub use decide::{
    DRIFT_LOOP_COUNT, DRIFT_LOOP_REASON, DRIFT_LOOP_WINDOW, checkpoint_due, decide, pending_start,
    plan_grows,
};
pub use input::{Inputs, ManualAction, PreChecks, Start};
pub use observation::{Assessment, Conditions, Observation, assess, judge};
pub use outcome::{
    CheckpointReport, DriftAction, Outcome, Transition, TransitionKind, WaitingReport,
};
pub use schedule::compact;
