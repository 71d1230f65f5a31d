//! The transitions a decision ends in, and the bookkeeping each one does on the status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::decide::Decider;
use super::outcome::{Transition, TransitionKind};
use super::schedule::next_checkpoint;
use crate::api::{GateStatus, HistoryEntry, HistoryKind, Percent, Phase};

impl Decider<'_> {
    /// Enters the next stage, or completes at the last one. A rollout held below its stage's
    /// percent by a plan change enters that stage instead.
    pub(super) fn advance(&mut self, reason: String) {
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

    /// Goes to the last stage at once (a person's `promote --full`), or completes when the
    /// rollout is already there at its percent.
    pub(super) fn advance_to_last(&mut self, reason: String) {
        let stages = &self.spec.stages;
        let Some(last) = stages.len().checked_sub(1) else {
            self.complete(reason);
            return;
        };
        let stage = &stages[last];
        let there = self.status.stage as usize >= last
            && self.status.percent.is_some_and(|p| p >= stage.percent);
        if there {
            self.complete(reason);
            return;
        }
        let percent = stage.percent;
        self.status.stage = last as u32;
        self.status.stage_started_at = Some(Time(self.now));
        self.write(percent);
        self.schedule_next();
        self.transition(TransitionKind::Advance, HistoryKind::Advance, reason);
    }

    pub(super) fn complete(&mut self, reason: String) {
        self.status.phase = Some(Phase::Succeeded);
        self.status.next_checkpoint_at = None;
        self.status.paused_by_spec = false;
        self.transition(TransitionKind::Complete, HistoryKind::Complete, reason);
    }

    /// Rolls back to `rollback.percent`, but never above the percent in force: a rollback
    /// never raises exposure, even under a plan that validation would refuse.
    pub(super) fn rollback(&mut self, reason: String) {
        self.status.phase = Some(Phase::RolledBack);
        self.status.next_checkpoint_at = None;
        self.status.paused_by_spec = false;
        let planned = self.spec.rollback.percent;
        let percent = self
            .status
            .percent
            .map_or(planned, |current| planned.min(current));
        self.write(percent);
        self.transition(TransitionKind::Rollback, HistoryKind::Rollback, reason);
    }

    pub(super) fn pause(&mut self, reason: String) {
        if self.phase() != Some(Phase::Progressing) {
            return;
        }
        self.status.phase = Some(Phase::Paused);
        self.transition(TransitionKind::Pause, HistoryKind::Pause, reason);
    }

    pub(super) fn resume(&mut self) {
        if self.phase() != Some(Phase::Paused) {
            return;
        }
        self.leave_pause();
        self.transition_quiet(TransitionKind::Resume, HistoryKind::Resume, None);
        let percent = self.status.percent.unwrap_or(Percent::ZERO);
        self.status.message = Some(format!(
            "resumed at {} ({percent}%)",
            crate::api::stage_label(self.status.stage, self.spec.stages.len())
        ));
    }

    /// Back to Progressing: misses reset, and a target left drifted is set right again.
    pub(super) fn leave_pause(&mut self) {
        self.status.phase = Some(Phase::Progressing);
        self.status.paused_by_spec = false;
        self.status.drift_count = 0;
        self.status.drift_window_start = None;
        self.status.reason = None;
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
    pub(super) fn write(&mut self, percent: Percent) {
        self.status.percent = Some(percent);
        self.status.drifted_percent = None;
        self.out.write = Some(percent);
    }

    pub(super) fn schedule_next(&mut self) {
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
    pub(super) fn align_gates(&mut self) {
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
    pub(super) fn transition(
        &mut self,
        kind: TransitionKind,
        history: HistoryKind,
        reason: String,
    ) {
        self.status.message = Some(reason.clone());
        self.transition_quiet(kind, history, Some(reason));
    }

    pub(super) fn transition_quiet(
        &mut self,
        kind: TransitionKind,
        history: HistoryKind,
        reason: Option<String>,
    ) {
        // A transition leaves the state a specific reason described; whoever needs one sets
        // it again after the transition.
        self.status.reason = None;
        let stage = self.status.stage;
        let percent = self.status.percent.unwrap_or(Percent::ZERO);
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
