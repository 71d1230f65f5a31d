//! `decide`: the one place where a rollout advances, holds, pauses or rolls back
//! (docs/design.md §4). Pure: the status is updated in place and the shell is told what to do. This
//! file takes in spec changes, the start, drift and people's actions; `checkpoint.rs` decides
//! at checkpoints and `transitions.rs` carries the decisions out.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::input::{Inputs, ManualAction, PreChecks, Start};
use super::outcome::{DriftAction, Outcome, Transition, TransitionKind};
use crate::api::{
    DriftPolicy, HistoryKind, Percent, Phase, REASON_FORBIDDEN, RolloutSpec, RolloutStatus,
    stage_label, validate_spec,
};

/// How long after the first reverted drift further drifts count toward a drift loop.
pub const DRIFT_LOOP_WINDOW: SignedDuration = SignedDuration::from_secs(600);

/// The drift within [`DRIFT_LOOP_WINDOW`] that pauses instead of reverting.
pub const DRIFT_LOOP_COUNT: u32 = 3;

/// The condition reason of a rollout paused by a drift loop.
pub const DRIFT_LOOP_REASON: &str = "DriftLoop";

/// Whether a checkpoint is due at `now`, so the shell knows to gather observations.
pub fn checkpoint_due(status: &RolloutStatus, now: Timestamp) -> bool {
    status.phase.is_some_and(|p| !p.is_terminal())
        && status
            .next_checkpoint_at
            .as_ref()
            .is_some_and(|t| t.0 <= now)
}

/// Whether a plan goes beyond `percent`: its last stage is above it. A finished rollout whose
/// new plan does not stays Succeeded and writes nothing (docs/design.md §4 rule 9).
pub fn plan_grows(spec: &RolloutSpec, percent: Percent) -> bool {
    spec.stages.last().is_some_and(|s| s.percent > percent)
}

/// Whether a [`decide`] call with this generation and action will consult the pre-checks, and
/// for which start: the rollout has not started (new or Pending), or a new spec generation or
/// `retry` takes a finished one back through Pending (docs/design.md §4 rules 0 and 9). The shell
/// gathers the pre-checks only then, checking the baseline that start needs; a call that does
/// not consult them may pass [`PreChecks::Passed`].
pub fn pending_start(
    spec: &RolloutSpec,
    status: &RolloutStatus,
    generation: Option<i64>,
    action: Option<ManualAction>,
) -> Option<Start> {
    let changed = status.observed_generation != generation;
    let percent = status.percent.unwrap_or(Percent::ZERO);
    let continuing = Start::Continue { percent };
    match status.phase {
        None | Some(Phase::Pending) if status.continuing => {
            (!changed || plan_grows(spec, percent)).then_some(continuing)
        }
        None | Some(Phase::Pending) => Some(Start::Fresh),
        Some(Phase::RolledBack) if changed || action == Some(ManualAction::Retry) => {
            Some(Start::Fresh)
        }
        Some(Phase::Succeeded) if changed && plan_grows(spec, percent) => Some(continuing),
        Some(Phase::Failed) if changed && status.percent.is_none() => Some(Start::Fresh),
        _ => None,
    }
}

/// Decides what the rollout does at `inputs.now`, updating `status` in place.
///
/// In order: a new spec generation is validated and taken in (a RolledBack rollout, or a
/// Succeeded one whose plan grew, goes back to the start; see [`pending_start`]), and so
/// does a `retry` of a RolledBack rollout; a rollout that has not started starts when its
/// pre-checks passed (it stays Pending otherwise); drift on the target is handled; a person's
/// action is applied; then, when observations are given and a checkpoint is due, the
/// checkpoint is taken and decided.
pub fn decide(spec: &RolloutSpec, status: &mut RolloutStatus, inputs: &Inputs<'_>) -> Outcome {
    let mut decider = Decider {
        spec,
        status,
        now: inputs.now,
        out: Outcome::default(),
    };
    decider.run(inputs);
    let status = &mut *decider.status;
    status.stage_number = status.phase.map(|_| status.stage.saturating_add(1));
    status.cap_to_limits();
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
        if inputs.action == Some(ManualAction::Retry) && self.phase() == Some(Phase::RolledBack) {
            // Back through Pending and the pre-checks, like a new rollout.
            self.reset();
        }
        if !self.started() {
            if let Some(denial) = inputs.forbidden {
                let failures = match inputs.prechecks {
                    PreChecks::Failed(failures) if !failures.is_empty() => failures.to_vec(),
                    _ => vec![denial.to_owned()],
                };
                let reason = format!("waiting for pre-checks: {}", failures.join("; "));
                self.wait_for_prechecks(reason, Some(REASON_FORBIDDEN));
                return;
            }
            match inputs.prechecks {
                PreChecks::Failed(failures) if !failures.is_empty() => {
                    let reason = format!("waiting for pre-checks: {}", failures.join("; "));
                    self.wait_for_prechecks(reason, None);
                    return;
                }
                PreChecks::Blocked { reason, message } => {
                    self.wait_for_prechecks(message.to_owned(), Some(reason));
                    return;
                }
                PreChecks::Passed | PreChecks::Failed(_) => {}
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
    fn wait_for_prechecks(&mut self, reason: String, word: Option<&str>) {
        let entering = self.phase() != Some(Phase::Pending);
        if !entering
            && self.status.message.as_deref() == Some(reason.as_str())
            && self.status.reason.as_deref() == word
        {
            return;
        }
        self.status.phase = Some(Phase::Pending);
        self.status.next_checkpoint_at = None;
        self.status.message = Some(reason.clone());
        if entering {
            self.transition_quiet(TransitionKind::Pending, HistoryKind::Pending, Some(reason));
            self.status.reason = word.map(str::to_owned);
        } else {
            self.status.reason = word.map(str::to_owned);
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
        self.pause(format!("forbidden: {denial}"));
        // After the transition, which clears any earlier reason.
        self.status.reason = Some(REASON_FORBIDDEN.to_owned());
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
            if changed && self.status.continuing {
                self.keep_continuing();
            }
            return true;
        }
        match self.phase() {
            Some(Phase::Succeeded) => self.grow(),
            Some(Phase::RolledBack) => self.reset(),
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

    /// A new generation of a Succeeded rollout: when its stages go beyond the percent in
    /// force it goes back through Pending and the pre-checks to continue from there; otherwise
    /// it stays Succeeded and nothing is written.
    fn grow(&mut self) {
        let percent = self.status.percent.unwrap_or(Percent::ZERO);
        if !plan_grows(self.spec, percent) {
            return;
        }
        let index = self
            .spec
            .stages
            .iter()
            .rposition(|s| s.percent <= percent)
            .unwrap_or(0);
        self.reset();
        self.status.continuing = true;
        self.status.stage = u32::try_from(index).unwrap_or(u32::MAX);
    }

    /// A Pending rollout waiting to continue a grown plan got yet another generation: when
    /// that one no longer goes beyond the percent in force, it is Succeeded again, as it was.
    fn keep_continuing(&mut self) {
        let percent = self.status.percent.unwrap_or(Percent::ZERO);
        if plan_grows(self.spec, percent) {
            return;
        }
        let last = self.spec.stages.len().saturating_sub(1);
        self.status.continuing = false;
        self.status.phase = Some(Phase::Succeeded);
        self.status.stage = u32::try_from(last).unwrap_or(u32::MAX);
        self.status.next_checkpoint_at = None;
        self.status.message = Some(format!(
            "the plan no longer goes beyond {percent}%: Succeeded, nothing written"
        ));
    }

    /// Forgets the previous run so the rollout starts again (from stage 0, unless a grown
    /// plan continues: see [`Self::grow`]).
    fn reset(&mut self) {
        let status = &mut *self.status;
        status.phase = None;
        status.continuing = false;
        status.stage = 0;
        status.stage_started_at = None;
        status.next_checkpoint_at = None;
        status.last_checkpoint = None;
        status.gates.clear();
        status.drifted_percent = None;
        status.drift_count = 0;
        status.drift_window_start = None;
        status.reason = None;
        status.target_version = None;
        status.paused_by_spec = false;
    }

    fn start(&mut self) {
        if self.status.continuing {
            self.continue_grown();
            return;
        }
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
        self.status.message = Some(format!(
            "started at {} ({percent}%)",
            stage_label(0, self.spec.stages.len())
        ));
        self.pause_if_spec_says();
    }

    fn pause_if_spec_says(&mut self) {
        if self.spec.paused {
            self.status.paused_by_spec = true;
            self.pause("spec.paused is true".to_owned());
        }
    }

    /// Continues a finished rollout whose plan grew, once its pre-checks passed: from the
    /// last stage at or below the percent in force (whose bake time starts again), keeping
    /// that percent; only a passing checkpoint raises it. When every stage is above it, the
    /// next passing checkpoint enters stage 0.
    fn continue_grown(&mut self) {
        self.status.continuing = false;
        let percent = self.status.percent.unwrap_or(Percent::ZERO);
        let stages = &self.spec.stages;
        let index = stages
            .iter()
            .rposition(|s| s.percent <= percent)
            .unwrap_or(0);
        let count = stages.len();
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let status = &mut *self.status;
        status.phase = Some(Phase::Progressing);
        status.stage = index;
        status.stage_started_at = Some(Time(self.now));
        self.align_gates();
        self.schedule_next();
        let generation = self
            .status
            .observed_generation
            .map_or_else(String::new, |g| format!(" {g}"));
        self.transition(
            TransitionKind::Replan,
            HistoryKind::Replan,
            format!(
                "spec generation{generation} grew the plan: continuing at {} ({percent}%)",
                stage_label(index, count)
            ),
        );
        self.pause_if_spec_says();
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
        let count = stages.len();
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
                format!(
                    "spec generation{generation} changed the plan: now at {} ({percent}%)",
                    stage_label(index, count)
                ),
            );
        }
        self.schedule_next();
    }

    /// Counts a drift the policy would revert; returns whether it is the third within
    /// [`DRIFT_LOOP_WINDOW`] of the first one reverted (docs/design.md §4 rule 8).
    fn drift_loop(&mut self) -> bool {
        let now = self.now;
        let within = self
            .status
            .drift_window_start
            .as_ref()
            .is_some_and(|start| now.duration_since(start.0) <= DRIFT_LOOP_WINDOW);
        if within {
            self.status.drift_count = self.status.drift_count.saturating_add(1);
        } else {
            self.status.drift_window_start = Some(Time(now));
            self.status.drift_count = 1;
        }
        self.status.drift_count >= DRIFT_LOOP_COUNT
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
        // A target left drifted by a drift loop stays left alone until a person resumes.
        let left_alone = self.status.drifted_percent.is_some();
        let policy = self.spec.on_drift;
        let looping = policy == DriftPolicy::Revert && !left_alone && self.drift_loop();
        let action = match policy {
            DriftPolicy::Revert if !left_alone && !looping => DriftAction::Reverted,
            DriftPolicy::Revert | DriftPolicy::Pause => DriftAction::Paused,
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
            DriftAction::Paused if looping => {
                self.status.drifted_percent = Some(live);
                self.transition(kind, HistoryKind::Drift, reason);
                let count = self.status.drift_count;
                let message = format!(
                    "someone else writes this flag: the target drifted from {expected}% \
                     (now {live}%) {count} times within 10 minutes; paused instead of reverting \
                     again (resume writes {expected}% back)"
                );
                self.pause(message.clone());
                self.status.message = Some(message);
                self.status.reason = Some(DRIFT_LOOP_REASON.to_owned());
            }
            DriftAction::Paused => {
                let keep = self.status.reason.clone().filter(|_| left_alone);
                self.status.drifted_percent = Some(live);
                self.transition(kind, HistoryKind::Drift, reason.clone());
                self.pause(reason);
                if keep.is_some() {
                    self.status.reason = keep;
                }
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
            // A retry of a RolledBack rollout went back through the pre-checks in `run`.
            ManualAction::Promote
            | ManualAction::PromoteFull
            | ManualAction::Abort
            | ManualAction::Retry => {}
        }
    }
}
