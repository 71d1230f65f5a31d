//! What the engine is given besides the spec and the status.

use k8s_openapi::jiff::Timestamp;

use super::Observation;
use crate::api::Percent;

/// A person's command (docs/design.md §4 rule 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManualAction {
    /// Hold: nothing advances; checkpoints go on and rollback stays armed.
    Pause,
    /// Go on after a pause; resets every gate's `misses`.
    Resume,
    /// Advance now (or complete at the last stage) whatever the bake time; leaves Paused.
    Promote,
    /// Go to the last stage now, whatever the stages between and their bake time (or
    /// complete when already there); leaves Paused. The history says it was done by hand.
    PromoteFull,
    /// Roll back now.
    Abort,
    /// Start a RolledBack rollout again from stage 0.
    Retry,
}

impl ManualAction {
    /// The action's word, as in scenarios and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ManualAction::Pause => "pause",
            ManualAction::Resume => "resume",
            ManualAction::Promote => "promote",
            ManualAction::PromoteFull => "promote-full",
            ManualAction::Abort => "abort",
            ManualAction::Retry => "retry",
        }
    }
}

/// What the shell found when it checked the baseline before the start (docs/design.md §4 rule 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreChecks<'a> {
    /// Every pre-check passed, or none applies: `simulate` and `backtest` start at once.
    Passed,
    /// These pre-checks failed, each described in words; the rollout stays Pending.
    Failed(&'a [String]),
    /// Something outside the baseline keeps the rollout Pending, with a condition reason of
    /// its own that takes precedence over the pre-checks' (`TargetOwned`: another unfinished
    /// Rollout owns the target).
    Blocked {
        /// The condition reason, one CamelCase word.
        reason: &'a str,
        /// The status message, naming what blocks the start.
        message: &'a str,
    },
}

/// How a rollout that waits for its pre-checks will start, so the shell checks the baseline
/// that start needs (see [`pending_start`](super::pending_start)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// From stage 0, writing its percent: the target should hold the rollback percent (or the
    /// percent this rollout last wrote).
    Fresh,
    /// A finished plan that grew continues from the percent in force (docs/design.md §4 rule 9): the
    /// target must hold exactly this percent, and nothing is written before a passing
    /// checkpoint.
    Continue {
        /// The percent the rollout holds and continues from.
        percent: crate::api::Percent,
    },
}

/// Everything the engine may be told at one instant. Fields left `None` mean "nothing new".
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The current time; the engine has no clock of its own.
    pub now: Timestamp,
    /// `metadata.generation` of the spec being decided on.
    pub generation: Option<i64>,
    /// A person's command, applied before any checkpoint at the same instant.
    pub action: Option<ManualAction>,
    /// The percent read from the target right now, for drift detection.
    pub live_percent: Option<Percent>,
    /// One observation per gate, in the order of `spec.analysis.gates`, gathered because
    /// [`checkpoint_due`](super::checkpoint_due) said so. A missing entry counts as an error.
    pub observations: Option<&'a [Observation]>,
    /// The pre-checks' result, consulted only while the rollout has not started, or when a new
    /// generation or `retry` takes a finished one back through them (see
    /// [`pending_start`](super::pending_start)): gather them then.
    pub prechecks: PreChecks<'a>,
    /// The API server refused a call made as the rollout's ServiceAccount (or refused the
    /// controller acting as it), in words naming the ServiceAccount, verb, resource and name.
    /// Before the start the rollout stays Pending; after it, a Progressing rollout pauses.
    /// Both carry `status.reason` `Forbidden`.
    pub forbidden: Option<&'a str>,
}

impl<'a> Inputs<'a> {
    /// Inputs that carry nothing but the time.
    pub fn at(now: Timestamp) -> Self {
        Self {
            now,
            generation: None,
            action: None,
            live_percent: None,
            observations: None,
            prechecks: PreChecks::Passed,
            forbidden: None,
        }
    }

    /// These inputs with a refusal of the API server (see [`Inputs::forbidden`]).
    pub fn with_forbidden(mut self, denial: &'a str) -> Self {
        self.forbidden = Some(denial);
        self
    }

    /// These inputs with a manual action.
    pub fn with_action(mut self, action: ManualAction) -> Self {
        self.action = Some(action);
        self
    }

    /// These inputs with the target's live percent.
    pub fn with_live_percent(mut self, percent: Percent) -> Self {
        self.live_percent = Some(percent);
        self
    }

    /// These inputs with the gates' observations for a checkpoint.
    pub fn with_observations(mut self, observations: &'a [Observation]) -> Self {
        self.observations = Some(observations);
        self
    }

    /// These inputs with the pre-checks' result.
    pub fn with_prechecks(mut self, prechecks: PreChecks<'a>) -> Self {
        self.prechecks = prechecks;
        self
    }

    /// These inputs for a spec generation.
    pub fn with_generation(mut self, generation: Option<i64>) -> Self {
        self.generation = generation;
        self
    }
}
