//! What the engine asks its shell to do and to tell.

use crate::api::{CheckpointVerdict, Percent};

/// What happened to a drifted target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriftAction {
    /// The expected percent was written back.
    Reverted,
    /// The target was left alone and the rollout paused.
    Paused,
}

impl DriftAction {
    /// The action's word in output (`reverted`, `paused`).
    pub fn as_str(self) -> &'static str {
        match self {
            DriftAction::Reverted => "reverted",
            DriftAction::Paused => "paused",
        }
    }
}

/// The kind of a transition, named as in the timeline's events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransitionKind {
    /// Waiting before the start: a pre-check failed (or failed for another reason).
    Pending,
    /// Started (or started again) at stage 0.
    Start,
    /// Moved to the next stage.
    Advance,
    /// Paused.
    Pause,
    /// Resumed.
    Resume,
    /// The live percent differed from the expected one.
    Drift {
        /// The percent the rollout last wrote.
        expected: Percent,
        /// The percent found on the target.
        actual: Percent,
        /// What was done about it.
        action: DriftAction,
    },
    /// Rolled back to `rollback.percent`.
    Rollback,
    /// Completed the last stage.
    Complete,
    /// A new spec generation moved the rollout to another stage mid-way.
    Replan,
    /// The spec breaks a rule; nothing was written.
    Invalid,
}

impl TransitionKind {
    /// The event word in output.
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::Pending => "pending",
            TransitionKind::Start => "start",
            TransitionKind::Advance => "advance",
            TransitionKind::Pause => "pause",
            TransitionKind::Resume => "resume",
            TransitionKind::Drift { .. } => "drift",
            TransitionKind::Rollback => "rollback",
            TransitionKind::Complete => "complete",
            TransitionKind::Replan => "replan",
            TransitionKind::Invalid => "invalid",
        }
    }
}

/// A change of phase, stage or target, in the order it happened.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// What happened.
    pub kind: TransitionKind,
    /// The stage index after it.
    pub stage: u32,
    /// The expected percent after it.
    pub percent: Percent,
    /// Why, in words.
    pub reason: Option<String>,
}

/// A checkpoint the engine took. Each gate's verdict, value and message are in
/// `status.gates`, in the order of the spec's gates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointReport {
    /// How many of the outcome's `transitions` happened before this checkpoint (a person's
    /// action or a drift at the same instant); the rest are the checkpoint's own decision.
    pub position: usize,
    /// The stage index when the checkpoint was taken (before its decision).
    pub stage: u32,
    /// The percent when the checkpoint was taken (before its decision).
    pub percent: Percent,
    /// pass, warn or fail.
    pub verdict: CheckpointVerdict,
}

/// The result of one call to [`decide`](super::decide).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// The checkpoint taken at this instant, if one was.
    pub checkpoint: Option<CheckpointReport>,
    /// Transitions, in the order they happened; a checkpoint precedes the transition it causes.
    pub transitions: Vec<Transition>,
    /// The percent to write to the target, when it must change.
    pub write: Option<Percent>,
    /// Compare gates that still wait for data after the stage's bake time: one report per
    /// gate and stage, for a `Waiting` Event.
    pub waiting: Vec<WaitingReport>,
}

/// A compare gate still waiting for data once its stage's bake time has passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitingReport {
    /// The gate's name.
    pub gate: String,
    /// How long the stage has run and what the gate is collecting.
    pub message: String,
}

impl Outcome {
    /// Whether the status changed in a way worth writing: any checkpoint, transition or write.
    pub fn changed_anything(&self) -> bool {
        self.checkpoint.is_some() || !self.transitions.is_empty() || self.write.is_some()
    }
}
