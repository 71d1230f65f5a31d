//! `decide`: the one place where a rollout advances, holds, pauses or rolls back
//! (DESIGN §4). Pure: the status is updated in place and the shell is told what to do. This
//! file takes in spec changes, the start, drift and people's actions; `checkpoint.rs` decides
//! at checkpoints and `transitions.rs` carries the decisions out.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::input::{Inputs, ManualAction, PreChecks};
use super::outcome::{DriftAction, Outcome, Transition, TransitionKind};
use crate::api::{
    DriftPolicy, HistoryKind, Percent, Phase, REASON_FORBIDDEN, RolloutSpec, RolloutStatus,
    validate_spec,
};

/// Whether a checkpoint is due at `now`, so the shell knows to gather observations.
pub fn checkpoint_due(status: &RolloutStatus, now: Timestamp) -> bool {
    status.phase.is_some_and(|p| !p.is_terminal())
        && status
            .next_checkpoint_at
            .as_ref()
            .is_some_and(|t| t.0 <= now)
}

/// Decides what the rollout does at `inputs.now`, updating `status` in place.
///
/// In order: a new spec generation is validated and taken in; a rollout that has not started
/// starts when its pre-checks passed (it stays Pending otherwise); drift on the target is handled; a person's action is applied; then, when
/// observations are given and a checkpoint is due, the checkpoint is taken and decided.
pub fn decide(spec: &RolloutSpec, status: &mut RolloutStatus, inputs: &Inputs<'_>) -> Outcome {
    let mut decider = Decider {
        spec,
        status,
        now: inputs.now,
        out: Outcome::default(),
    };
    decider.run(inputs);
    decider.status.cap_to_limits();
    decider.out
}

pub(super) struct Decider<'a> {
    pub(super) spec: &'a RolloutSpec,
    pub(super) status: &'a mut RolloutStatus,
    pub(super) now: Timestamp,
    pub(super) out: Outcome,
}

impl Decider<'_> {
    fn run(&mut self, inputs: &Inputs<'_>) {
        if !self.take_generation(inputs.generation) {
            return;
        }
        if !self.started() {
            if let Some(denial) = inputs.forbidden {
                let failures = match inputs.prechecks {
                    PreChecks::Failed(failures) if !failures.is_empty() => failures.to_vec(),
                    _ => vec![denial.to_owned()],
                };
                self.wait_for_prechecks(&failures, Some(REASON_FORBIDDEN));
                return;
            }
            if let PreChecks::Failed(failures) = inputs.prechecks
                && !failures.is_empty()
            {
                self.wait_for_prechecks(failures, None);
                return;
            }
            self.start();
        }
        if let Some(live) = inputs.live_percent
            && self.out.write.is_none()
        {
            self.check_drift(live);
        }
        if let Some(denial) = inputs.forbidden {
            self.pause_forbidden(denial);
        }
        if let Some(action) = inputs.action {
            self.apply(action);
        }
        if let Some(observations) = inputs.observations
            && checkpoint_due(self.status, self.now)
        {
            self.checkpoint(observations);
        }
    }

    pub(super) fn phase(&self) -> Option<Phase> {
        self.status.phase
    }

    /// Whether the rollout has started (it is neither new nor Pending).
    fn started(&self) -> bool {
        self.phase().is_some_and(|p| p != Phase::Pending)
    }

    /// Keeps a rollout that has not started Pending, with the failing pre-checks as the
    /// reason. A transition is reported when the phase or the reason changes, not at every
    /// retry.
    fn wait_for_prechecks(&mut self, failures: &[String], why: Option<&str>) {
        let reason = format!("waiting for pre-checks: {}", failures.join("; "));
        let entering = self.phase() != Some(Phase::Pending);
        self.status.reason = why.map(str::to_owned);
        if !entering && self.status.message.as_deref() == Some(reason.as_str()) {
            return;
        }
        self.status.phase = Some(Phase::Pending);
        self.status.next_checkpoint_at = None;
        self.status.message = Some(reason.clone());
        if entering {
            self.transition_quiet(TransitionKind::Pending, HistoryKind::Pending, Some(reason));
        } else {
            self.out.transitions.push(Transition {
                kind: TransitionKind::Pending,
                stage: self.status.stage,
                percent: self.status.percent.unwrap_or(Percent::ZERO),
                reason: Some(reason),
            });
        }
    }

    /// A running rollout whose ServiceAccount was refused pauses (once: a paused or ended
    /// rollout is left as it is), with `status.reason` `Forbidden`, until someone resumes it.
    fn pause_forbidden(&mut self, denial: &str) {
        if self.phase() != Some(Phase::Progressing) {
            return;
        }
        self.status.reason = Some(REASON_FORBIDDEN.to_owned());
        self.pause(format!("forbidden: {denial}"));
    }

    pub(super) fn interval(&self) -> kube::core::Duration {
        self.spec.analysis.interval
    }

    /// Validates and takes in a new spec generation. Returns false when the spec is invalid
    /// (nothing else may happen then).
    fn take_generation(&mut self, generation: Option<i64>) -> bool {
        let first = !self.started();
        let changed = self.status.observed_generation != generation;
        if !first && !changed {
            return self.phase() != Some(Phase::Failed);
        }
        if let Err(errors) = validate_spec(self.spec) {
            let reason = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            self.status.observed_generation = generation;
            self.status.phase = Some(Phase::Failed);
            self.status.next_checkpoint_at = None;
            self.transition(
                TransitionKind::Invalid,
                HistoryKind::Invalid,
                format!("invalid spec: {reason}"),
            );
            return false;
        }
        self.status.observed_generation = generation;
        if first {
            return true;
        }
        match self.phase() {
            Some(Phase::Succeeded | Phase::RolledBack) => self.reset(),
            Some(Phase::Failed) if self.status.percent.is_none() => self.reset(),
            Some(Phase::Failed) => {
                self.status.phase = Some(Phase::Progressing);
                self.replan(generation);
            }
            _ => self.replan(generation),
        }
        if self.phase().is_some() {
            if self.spec.paused && self.phase() == Some(Phase::Progressing) {
                self.status.paused_by_spec = true;
                self.pause("spec.paused is true".to_owned());
            } else if !self.spec.paused && self.status.paused_by_spec {
                self.resume();
            }
        }
        true
    }

    /// Forgets the previous run so the rollout starts again from stage 0.
    fn reset(&mut self) {
        let status = &mut *self.status;
        status.phase = None;
        status.stage = 0;
        status.stage_started_at = None;
        status.next_checkpoint_at = None;
        status.last_checkpoint = None;
        status.gates.clear();
        status.drifted_percent = None;
        status.paused_by_spec = false;
        status.reason = None;
    }

    fn start(&mut self) {
        let percent = self
            .spec
            .stages
            .first()
            .map_or(Percent::ZERO, |s| s.percent);
        let now = Time(self.now);
        let status = &mut *self.status;
        status.phase = Some(Phase::Progressing);
        status.reason = None;
        status.stage = 0;
        status.started_at = Some(now.clone());
        status.stage_started_at = Some(now);
        self.align_gates();
        self.write(percent);
        self.schedule_next();
        self.transition_quiet(TransitionKind::Start, HistoryKind::Start, None);
        self.status.message = Some(format!("started at stage 0 ({percent}%)"));
        if self.spec.paused {
            self.status.paused_by_spec = true;
            self.pause("spec.paused is true".to_owned());
        }
    }

    /// Moves a running rollout onto a changed plan without raising exposure: it continues at
    /// the last stage whose percent is at most the current one; when every stage is above
    /// it, the percent stays and the next passing checkpoint enters stage 0.
    fn replan(&mut self, generation: Option<i64>) {
        self.align_gates();
        let current = self.status.percent.unwrap_or(Percent::ZERO);
        let stages = &self.spec.stages;
        let index = stages
            .iter()
            .rposition(|s| s.percent <= current)
            .unwrap_or(0);
        let percent = stages[index].percent.min(current);
        let index = index as u32;
        if index != self.status.stage || percent != current {
            self.status.stage = index;
            self.status.stage_started_at = Some(Time(self.now));
            if percent != current {
                self.write(percent);
            }
            let generation = generation.map_or_else(String::new, |g| format!(" {g}"));
            self.transition(
                TransitionKind::Replan,
                HistoryKind::Replan,
                format!("spec generation{generation} changed the plan: now at stage {index} ({percent}%)"),
            );
        }
        self.schedule_next();
    }

    fn check_drift(&mut self, live: Percent) {
        if !self.started() || self.phase().is_some_and(Phase::is_terminal) {
            return;
        }
        let Some(expected) = self.status.percent else {
            return;
        };
        if live == expected {
            self.status.drifted_percent = None;
            return;
        }
        if self.status.drifted_percent == Some(live) {
            return;
        }
        let action = match self.spec.on_drift {
            DriftPolicy::Revert => DriftAction::Reverted,
            DriftPolicy::Pause => DriftAction::Paused,
        };
        let reason = format!(
            "target drifted to {live}% (expected {expected}%): {}",
            action.as_str()
        );
        let kind = TransitionKind::Drift {
            expected,
            actual: live,
            action,
        };
        match action {
            DriftAction::Reverted => {
                self.write(expected);
                self.transition(kind, HistoryKind::Drift, reason);
            }
            DriftAction::Paused => {
                self.status.drifted_percent = Some(live);
                self.transition(kind, HistoryKind::Drift, reason.clone());
                self.pause(reason);
            }
        }
    }

    fn apply(&mut self, action: ManualAction) {
        let Some(phase) = self.phase().filter(|_| self.started()) else {
            return;
        };
        match action {
            ManualAction::Pause => self.pause("paused by user".to_owned()),
            ManualAction::Resume => self.resume(),
            ManualAction::Promote if !phase.is_terminal() => {
                if phase == Phase::Paused {
                    self.leave_pause();
                }
                self.advance("promoted by user".to_owned());
            }
            ManualAction::PromoteFull if !phase.is_terminal() => {
                if phase == Phase::Paused {
                    self.leave_pause();
                }
                self.advance_to_last("promoted to the last stage by hand".to_owned());
            }
            ManualAction::Abort if !phase.is_terminal() => {
                self.rollback("aborted by user".to_owned());
            }
            ManualAction::Retry if phase == Phase::RolledBack => {
                self.reset();
                self.start();
            }
            ManualAction::Promote
            | ManualAction::PromoteFull
            | ManualAction::Abort
            | ManualAction::Retry => {}
        }
    }
}
