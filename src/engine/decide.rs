//! `decide`: the one place where a rollout advances, holds, pauses or rolls back
//! (DESIGN §4). Pure: the status is updated in place and the shell is told what to do.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::input::{Inputs, ManualAction};
use super::observation::{Observation, judge};
use super::outcome::{CheckpointReport, DriftAction, Outcome, Transition, TransitionKind};
use super::schedule::{baked, next_checkpoint};
use crate::api::Checkpoint;
use crate::api::{
    CheckpointVerdict, DriftPolicy, GateStatus, GateVerdict, HistoryEntry, HistoryKind, Phase,
    RolloutSpec, RolloutStatus, validate_spec,
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
/// starts; drift on the target is handled; a person's action is applied; then, when
/// observations are given and a checkpoint is due, the checkpoint is taken and decided.
pub fn decide(spec: &RolloutSpec, status: &mut RolloutStatus, inputs: &Inputs<'_>) -> Outcome {
    let mut decider = Decider {
        spec,
        status,
        now: inputs.now,
        out: Outcome::default(),
    };
    decider.run(inputs);
    decider.out
}

struct Decider<'a> {
    spec: &'a RolloutSpec,
    status: &'a mut RolloutStatus,
    now: Timestamp,
    out: Outcome,
}

impl Decider<'_> {
    fn run(&mut self, inputs: &Inputs<'_>) {
        if !self.take_generation(inputs.generation) {
            return;
        }
        if self.status.phase.is_none() {
            self.start();
        }
        if let Some(live) = inputs.live_percent
            && self.out.write.is_none()
        {
            self.check_drift(live);
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

    fn phase(&self) -> Option<Phase> {
        self.status.phase
    }

    fn interval(&self) -> kube::core::Duration {
        self.spec.analysis.interval
    }

    /// Validates and takes in a new spec generation. Returns false when the spec is invalid
    /// (nothing else may happen then).
    fn take_generation(&mut self, generation: Option<i64>) -> bool {
        let first = self.phase().is_none();
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
    }

    fn start(&mut self) {
        let percent = self.spec.stages.first().map_or(0, |s| s.percent);
        let now = Time(self.now);
        let status = &mut *self.status;
        status.phase = Some(Phase::Progressing);
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
        let current = self.status.percent.unwrap_or(0);
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

    fn check_drift(&mut self, live: u8) {
        if self.phase().is_none_or(Phase::is_terminal) {
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
        let Some(phase) = self.phase() else { return };
        match action {
            ManualAction::Pause => self.pause("paused by user".to_owned()),
            ManualAction::Resume => self.resume(),
            ManualAction::Promote if !phase.is_terminal() => {
                if phase == Phase::Paused {
                    self.leave_pause();
                }
                self.advance("promoted by user".to_owned());
            }
            ManualAction::Abort if !phase.is_terminal() => {
                self.rollback("aborted by user".to_owned());
            }
            ManualAction::Retry if phase == Phase::RolledBack => {
                self.reset();
                self.start();
            }
            ManualAction::Promote | ManualAction::Abort | ManualAction::Retry => {}
        }
    }

    fn checkpoint(&mut self, observations: &[Observation]) {
        self.align_gates();
        let stage = self.status.stage;
        let percent = self.status.percent.unwrap_or(0);
        let mut all_pass = true;
        for (i, gate) in self.spec.analysis.gates.iter().enumerate() {
            let observation = observations.get(i);
            let verdict = observation.map_or(GateVerdict::Error, |o| judge(gate, o));
            let counters = &mut self.status.gates[i];
            match verdict {
                GateVerdict::Pass => {
                    counters.failures = 0;
                    counters.misses = 0;
                }
                GateVerdict::Fail => {
                    counters.failures = counters.failures.saturating_add(1);
                    counters.misses = 0;
                }
                GateVerdict::Inconclusive | GateVerdict::Error => {
                    counters.misses = counters.misses.saturating_add(1);
                }
            }
            counters.last_verdict = Some(verdict);
            counters.last_value = match observation {
                Some(Observation::Value(v)) if !v.is_nan() => Some(*v),
                _ => None,
            };
            counters.last_message = match observation {
                Some(Observation::Error(message)) => Some(message.clone()),
                None => Some("no observation was made".to_owned()),
                _ => None,
            };
            all_pass &= verdict == GateVerdict::Pass;
        }

        let position = self.out.transitions.len();
        let gates = &self.spec.analysis.gates;
        let failed = gates
            .iter()
            .zip(&self.status.gates)
            .position(|(g, s)| s.failures >= g.failure_limit);
        let verdict = if failed.is_some() {
            CheckpointVerdict::Fail
        } else if all_pass {
            CheckpointVerdict::Pass
        } else {
            CheckpointVerdict::Warn
        };
        self.out.checkpoint = Some(CheckpointReport {
            position,
            stage,
            percent,
            verdict,
        });
        self.status.last_checkpoint = Some(Checkpoint {
            at: Time(self.now),
            stage,
            percent,
            verdict,
        });
        let summary = (verdict != CheckpointVerdict::Pass).then(|| self.gate_summary());
        self.status.record(HistoryEntry {
            at: Time(self.now),
            kind: HistoryKind::Checkpoint,
            stage,
            percent,
            verdict: Some(verdict),
            message: summary.clone(),
        });

        if let Some(i) = failed {
            let n = self.status.gates[i].failures;
            let reason = format!(
                "gate {} failed {n} checkpoint{} in a row",
                gates[i].name,
                if n == 1 { "" } else { "s" }
            );
            self.rollback(reason);
            return;
        }
        let error_limit = self.spec.analysis.error_limit;
        if let Some(i) = self
            .status
            .gates
            .iter()
            .position(|s| s.misses >= error_limit)
        {
            if self.phase() != Some(Phase::Paused) {
                let n = self.status.gates[i].misses;
                let reason = format!(
                    "gate {} had no usable data for {n} checkpoint{} in a row",
                    gates[i].name,
                    if n == 1 { "" } else { "s" }
                );
                self.pause(reason);
            }
            self.schedule_next();
            return;
        }
        if all_pass && self.phase() == Some(Phase::Progressing) && self.bake_time_over() {
            let reason = match self.spec.stages.get(stage as usize) {
                Some(s) if std::time::Duration::from(s.duration).is_zero() => {
                    "all gates passed".to_owned()
                }
                Some(s) => format!(
                    "all gates passed and the bake time of {} ended",
                    super::schedule::compact(s.duration.into())
                ),
                None => "all gates passed".to_owned(),
            };
            self.advance(reason);
            return;
        }
        if let Some(summary) = summary {
            self.status.message = Some(summary);
        }
        self.schedule_next();
    }

    fn bake_time_over(&self) -> bool {
        let Some(stage) = self.spec.stages.get(self.status.stage as usize) else {
            return true;
        };
        match &self.status.stage_started_at {
            Some(start) => baked(start.0, stage.duration, self.now),
            None => true,
        }
    }

    /// A short account of the gates that did not pass, for warn and fail checkpoints.
    fn gate_summary(&self) -> String {
        use std::fmt::Write as _;
        let mut text = String::with_capacity(64);
        for gate in &self.status.gates {
            let Some(verdict) = gate.last_verdict else {
                continue;
            };
            if verdict == GateVerdict::Pass {
                continue;
            }
            if !text.is_empty() {
                text.push_str("; ");
            }
            let _ = match (&gate.last_value, &gate.last_message) {
                (Some(v), _) => write!(text, "{} {} ({v})", gate.name, verdict.as_str()),
                (None, Some(m)) => write!(text, "{} {} ({m})", gate.name, verdict.as_str()),
                (None, None) => write!(text, "{} {} (no data)", gate.name, verdict.as_str()),
            };
        }
        text
    }

    /// Enters the next stage, or completes at the last one. A rollout held below its stage's
    /// percent by a plan change enters that stage instead.
    fn advance(&mut self, reason: String) {
        let stages = &self.spec.stages;
        let current = self.status.stage as usize;
        let below_stage = stages
            .get(current)
            .is_some_and(|s| self.status.percent.is_none_or(|p| p < s.percent));
        let next = if below_stage { current } else { current + 1 };
        let Some(stage) = stages.get(next) else {
            self.complete(reason);
            return;
        };
        let percent = stage.percent;
        self.status.stage = next as u32;
        self.status.stage_started_at = Some(Time(self.now));
        self.write(percent);
        self.schedule_next();
        self.transition(TransitionKind::Advance, HistoryKind::Advance, reason);
    }

    fn complete(&mut self, reason: String) {
        self.status.phase = Some(Phase::Succeeded);
        self.status.next_checkpoint_at = None;
        self.status.paused_by_spec = false;
        self.transition(TransitionKind::Complete, HistoryKind::Complete, reason);
    }

    fn rollback(&mut self, reason: String) {
        self.status.phase = Some(Phase::RolledBack);
        self.status.next_checkpoint_at = None;
        self.status.paused_by_spec = false;
        self.write(self.spec.rollback.percent);
        self.transition(TransitionKind::Rollback, HistoryKind::Rollback, reason);
    }

    fn pause(&mut self, reason: String) {
        if self.phase() != Some(Phase::Progressing) {
            return;
        }
        self.status.phase = Some(Phase::Paused);
        self.transition(TransitionKind::Pause, HistoryKind::Pause, reason);
    }

    fn resume(&mut self) {
        if self.phase() != Some(Phase::Paused) {
            return;
        }
        self.leave_pause();
        self.transition_quiet(TransitionKind::Resume, HistoryKind::Resume, None);
        let percent = self.status.percent.unwrap_or(0);
        self.status.message = Some(format!(
            "resumed at stage {} ({percent}%)",
            self.status.stage
        ));
    }

    /// Back to Progressing: misses reset, and a target left drifted is set right again.
    fn leave_pause(&mut self) {
        self.status.phase = Some(Phase::Progressing);
        self.status.paused_by_spec = false;
        for gate in &mut self.status.gates {
            gate.misses = 0;
        }
        if self.status.drifted_percent.take().is_some()
            && let Some(expected) = self.status.percent
        {
            self.out.write = Some(expected);
        }
    }

    /// Sets the expected percent and asks the shell to write it.
    fn write(&mut self, percent: u8) {
        self.status.percent = Some(percent);
        self.status.drifted_percent = None;
        self.out.write = Some(percent);
    }

    fn schedule_next(&mut self) {
        let next = match (&self.status.stage_started_at, self.phase()) {
            (Some(start), Some(p)) if !p.is_terminal() => {
                next_checkpoint(start.0, self.interval(), self.now)
            }
            _ => None,
        };
        self.status.next_checkpoint_at = next.map(Time);
    }

    /// Makes `status.gates` hold one entry per spec gate, in spec order, keeping the counters
    /// of gates whose names did not change.
    fn align_gates(&mut self) {
        let gates = &self.spec.analysis.gates;
        let aligned = gates.len() == self.status.gates.len()
            && gates
                .iter()
                .zip(&self.status.gates)
                .all(|(g, s)| g.name == s.name);
        if aligned {
            return;
        }
        let mut previous = std::mem::take(&mut self.status.gates);
        self.status.gates = gates
            .iter()
            .map(|g| match previous.iter().position(|s| s.name == g.name) {
                Some(i) => previous.swap_remove(i),
                None => GateStatus {
                    name: g.name.clone(),
                    ..GateStatus::default()
                },
            })
            .collect();
    }

    /// Records a transition with a reason, which also becomes the status message.
    fn transition(&mut self, kind: TransitionKind, history: HistoryKind, reason: String) {
        self.status.message = Some(reason.clone());
        self.transition_quiet(kind, history, Some(reason));
    }

    fn transition_quiet(
        &mut self,
        kind: TransitionKind,
        history: HistoryKind,
        reason: Option<String>,
    ) {
        let stage = self.status.stage;
        let percent = self.status.percent.unwrap_or(0);
        self.status.record(HistoryEntry {
            at: Time(self.now),
            kind: history,
            stage,
            percent,
            verdict: None,
            message: reason.clone(),
        });
        self.out.transitions.push(Transition {
            kind,
            stage,
            percent,
            reason,
        });
    }
}
