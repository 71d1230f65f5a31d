//! The pure half of a reconcile (docs/design.md §6, the controller pipeline): from the Rollout,
//! what the reconcile's `gather` read for it ([`Gathered`]) and the time, [`plan`] returns
//! what to write — the new status, the target's percent, the Events, when to come back. No
//! client, no clock, no memory: every case the pipeline handles is tested here without an API
//! mock (`plan_tests.rs`).

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::action::{self, Claim};
use super::budget::Priority;
use super::events::{self, Notice, cap};
use super::observe::GateReading;
use super::ownership::TARGET_OWNED;
use super::prechecks::BeforeStart;
use crate::api::{Percent, Phase, REASON_FORBIDDEN, Rollout, RolloutStatus};
use crate::engine::{self, Inputs, ManualAction, Observation, Outcome, PreChecks};
use crate::targets::TargetError;

/// The longest wait between two reconciles of a Rollout: a lost watch event never strands it.
pub(super) const MAX_REQUEUE: Duration = Duration::from_secs(300);

/// The most text a remote answer may put into status.
const STATUS_TEXT_LIMIT: usize = 400;

/// What the reconcile read before deciding: every answer from outside, already in hand.
pub(super) struct Gathered {
    /// The action claimed from the annotation, if one is.
    pub claim: Option<Claim>,
    /// Before the start: the pre-checks that failed, or the owner holding the target.
    pub before_start: BeforeStart,
    /// The gates' readings when a checkpoint was due (empty otherwise).
    pub readings: Vec<GateReading>,
    /// A refusal met as the rollout's ServiceAccount, here or by the last target write.
    pub denial: Option<String>,
    /// The target's live percent as read.
    pub live: Result<Option<Percent>, TargetError>,
    /// The live percent to give the engine (none: ignore drift).
    pub live_input: Option<Percent>,
    /// A target write to finish: the status records it as never confirmed.
    pub repair: Option<Percent>,
    /// A finished rollout's pending final write is settled (done, or overtaken).
    pub settled: bool,
    /// What identifies the target's current state (recorded before a final write).
    pub target_token: Option<String>,
}

impl Gathered {
    /// Nothing read: no claim, no pre-check failure, no readings, an empty target.
    #[cfg(test)]
    pub(super) fn empty() -> Gathered {
        Gathered {
            claim: None,
            before_start: BeforeStart::Failed(Vec::new()),
            readings: Vec::new(),
            denial: None,
            live: Ok(None),
            live_input: None,
            repair: None,
            settled: false,
            target_token: None,
        }
    }
}

/// When to reconcile the Rollout again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Wake {
    /// Pending: on the pre-checks' backoff (kept by the caller, per Rollout).
    Backoff,
    /// After this wait (the next checkpoint, at most [`MAX_REQUEUE`]).
    After(Duration),
}

/// What the reconcile decided to write.
pub(super) struct Plan {
    /// The status to write (written only when it differs from the one decided on).
    pub status: RolloutStatus,
    /// The engine's outcome.
    pub outcome: Outcome,
    /// The percent to write to the target.
    pub target: Option<Percent>,
    /// The claimed action to release after the writes.
    pub claim: Option<Claim>,
    /// The Events to publish.
    pub notices: Vec<Notice>,
    /// When to come back.
    pub wake: Wake,
}

impl Plan {
    /// A status write that carries a transition or comes with a target write goes first;
    /// a routine checkpoint's does not (see `budget.rs`).
    pub(super) fn priority(&self) -> Priority {
        if self.outcome.transitions.is_empty() && self.target.is_none() && self.claim.is_none() {
            Priority::Routine
        } else {
            Priority::Transition
        }
    }
}

/// What to do with a Rollout the watch handed over, before anything is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Triage {
    /// It is being deleted: forget it (no finalizer, nothing written).
    Forget,
    /// This replica does not lead: nothing is written; look again later.
    NotLeader,
    /// The cached copy predates this controller's last status write: look again in a moment.
    Stale,
    /// Reconcile it.
    Reconcile,
}

/// The first step: deleted, not leading, stale, or go.
pub(super) fn triage(rollout: &Rollout, leader: bool, stale: bool) -> Triage {
    if rollout.metadata.deletion_timestamp.is_some() {
        Triage::Forget
    } else if !leader {
        Triage::NotLeader
    } else if stale {
        Triage::Stale
    } else {
        Triage::Reconcile
    }
}

/// The action a claim asks for, unless the status already records it as applied.
pub(super) fn pending_action(
    claim: Option<&Claim>,
    status: &RolloutStatus,
) -> Option<ManualAction> {
    claim
        .filter(|c| status.last_action.as_deref() != Some(c.token.as_str()))
        .and_then(|c| c.action)
}

/// Decides what to write for `rollout` (its status is the one decided on) from `gathered`
/// at `now`. Pure: the same inputs give the same plan.
pub(super) fn plan(rollout: &Rollout, gathered: &Gathered, now: Timestamp) -> Plan {
    let spec = &rollout.spec;
    let before = rollout.status.clone().unwrap_or_default();
    let mut status = before.clone();
    let claim = gathered.claim.clone();
    let action = pending_action(claim.as_ref(), &before);
    let generation = rollout.metadata.generation;
    let start = engine::pending_start(spec, &before, generation, action);

    let mut failures: Vec<String> = match &gathered.before_start {
        BeforeStart::Failed(failures) => failures.clone(),
        BeforeStart::Owned(_) => Vec::new(),
    };
    if let Some(denial) = &gathered.denial
        && start.is_some()
        && matches!(gathered.before_start, BeforeStart::Failed(_))
    {
        failures.insert(0, denial.clone());
    }
    let observations: Vec<Observation> = gathered
        .readings
        .iter()
        .map(|r| match &r.observation {
            Observation::Error(m) => Observation::Error(cap(m, STATUS_TEXT_LIMIT)),
            other => other.clone(),
        })
        .collect();

    let prechecks = match &gathered.before_start {
        BeforeStart::Failed(_) => PreChecks::Failed(&failures),
        BeforeStart::Owned(message) => PreChecks::Blocked {
            reason: TARGET_OWNED,
            message,
        },
    };
    let mut inputs = Inputs::at(now)
        .with_generation(generation)
        .with_prechecks(prechecks);
    if let Some(percent) = gathered.live_input {
        inputs = inputs.with_live_percent(percent);
    }
    if let Some(action) = action {
        inputs = inputs.with_action(action);
    }
    if let Some(denial) = &gathered.denial {
        inputs = inputs.with_forbidden(denial);
    }
    if !gathered.readings.is_empty() || spec.analysis.gates.is_empty() {
        inputs = inputs.with_observations(&observations);
    }
    let outcome = engine::decide(spec, &mut status, &inputs);
    if status.percent.is_some() && status.percent != before.percent {
        status.target_sequence = Some(before.target_sequence.unwrap_or(0).saturating_add(1));
    }
    keep_determinism_memory(&mut status, rollout, &gathered.readings, &outcome);

    // Paused because the ServiceAccount was refused: no repair is tried until a resume,
    // and the write stays unconfirmed (so the old percent is not taken for a drift).
    let held = gathered.repair.is_some() && paused_forbidden(&status);
    let repair = gathered.repair.filter(|_| !held);
    let mut target = outcome.write.or(repair);
    if target.is_some() && matches!(gathered.live, Ok(Some(p)) if Some(p) == target) {
        target = None;
    }
    if let Some(claim) = &claim {
        status.last_action = Some(claim.token.clone());
    }
    status.target_pending = if held {
        true
    } else if changed(&before, &status) || target.is_some() {
        target.is_some()
    } else {
        before.target_pending && !gathered.settled
    };
    if target.is_some() && outcome.write.is_some() {
        // A final write records the target's version before it: after a restart, the
        // write is finished only while nobody changed the target since (rule 8).
        status.target_version = if status.phase.is_some_and(Phase::is_terminal) {
            gathered.target_token.clone()
        } else {
            None
        };
    }
    status.update_conditions(now);
    let notices = notices(rollout, &outcome, &status, claim.as_ref(), &gathered.live);
    let wake = wake(&status, now);
    Plan {
        status,
        outcome,
        target,
        claim,
        notices,
        wake,
    }
}

/// The Events: the outcome's, an invalid action word, an unreadable target.
fn notices(
    rollout: &Rollout,
    outcome: &Outcome,
    status: &RolloutStatus,
    claim: Option<&Claim>,
    live: &Result<Option<Percent>, TargetError>,
) -> Vec<Notice> {
    let mut notices = events::notices(outcome, status, rollout.spec.stages.len());
    let before = rollout.status.as_ref();
    if let Some(claim) = claim
        && claim.action.is_none()
        && before.and_then(|s| s.last_action.as_deref()) != Some(claim.token.as_str())
    {
        notices.push(Notice {
            warning: true,
            reason: "InvalidAction",
            action: "Annotate".into(),
            note: format!(
                "{} {:?} is not pause, resume, promote, abort or retry; it was removed",
                action::ACTION_ANNOTATION,
                cap(claim.word(), 64)
            ),
        });
    }
    if let Err(error) = live
        && started(rollout)
    {
        notices.push(Notice {
            warning: true,
            reason: "TargetUnreadable",
            action: "ReadTarget".into(),
            note: error.to_string(),
        });
    }
    notices
}

/// Pending waits out its backoff; otherwise the next checkpoint, at most [`MAX_REQUEUE`].
fn wake(status: &RolloutStatus, now: Timestamp) -> Wake {
    if status.phase == Some(Phase::Pending) {
        return Wake::Backoff;
    }
    let wait = match &status.next_checkpoint_at {
        Some(next) => Duration::try_from(next.0.duration_since(now)).unwrap_or(Duration::ZERO),
        None => MAX_REQUEUE,
    };
    Wake::After(wait.min(MAX_REQUEUE))
}

/// Whether the rollout has started (it is neither new nor Pending).
pub(super) fn started(rollout: &Rollout) -> bool {
    rollout
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(|p| p != Phase::Pending)
}

/// Whether the rollout is paused because its ServiceAccount was refused.
fn paused_forbidden(status: &RolloutStatus) -> bool {
    status.phase == Some(Phase::Paused) && status.reason.as_deref() == Some(REASON_FORBIDDEN)
}

/// Whether anything but the bookkeeping fields (`targetPending`, conditions) changed.
fn changed(before: &RolloutStatus, after: &RolloutStatus) -> bool {
    let strip = |s: &RolloutStatus| RolloutStatus {
        target_pending: false,
        conditions: Vec::new(),
        ..s.clone()
    };
    strip(before) != strip(after)
}

/// Stores each OFREP probe's new memory in its gate's status after a checkpoint.
fn keep_determinism_memory(
    status: &mut RolloutStatus,
    rollout: &Rollout,
    readings: &[GateReading],
    outcome: &Outcome,
) {
    if outcome.checkpoint.is_none() {
        return;
    }
    for (gate, reading) in rollout.spec.analysis.gates.iter().zip(readings) {
        if let Some(memory) = &reading.memory
            && let Some(entry) = status.gates.iter_mut().find(|g| g.name == gate.name)
        {
            entry.determinism = Some(memory.clone());
        }
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
