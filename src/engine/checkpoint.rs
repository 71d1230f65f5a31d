//! A checkpoint: every gate's verdict, the counters, and decisions a–d (docs/design.md §4 rule 5).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::decide::Decider;
use super::observation::{Assessment, Conditions, Observation, assess};
use super::outcome::{CheckpointReport, WaitingReport};
use super::schedule::baked;
use crate::api::{
    Checkpoint, CheckpointVerdict, GateVerdict, HistoryEntry, HistoryKind, Percent, Phase,
};

impl Decider<'_> {
    pub(super) fn checkpoint(&mut self, observations: &[Observation]) {
        self.align_gates();
        let stage = self.status.stage;
        let percent = self.status.percent.unwrap_or(Percent::ZERO);
        let conditions = Conditions {
            percent,
            ratio_settled: self.split_settled(),
        };
        let baked = self.bake_time_over();
        let mut all_pass = true;
        for (i, gate) in self.spec.analysis.gates.iter().enumerate() {
            let observation = observations.get(i);
            let assessment = match observation {
                Some(o) => assess(gate, o, &conditions),
                None => Assessment {
                    verdict: GateVerdict::Error,
                    value: None,
                    message: Some("no observation was made".to_owned()),
                    compare: None,
                },
            };
            let verdict = assessment.verdict;
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
                // The data is still accumulating, or there is no second cohort: no counter
                // moves (docs/design.md §4 rule 4).
                GateVerdict::Waiting | GateVerdict::Skipped => {}
            }
            counters.last_verdict = Some(verdict);
            counters.last_value = assessment.value;
            counters.last_message = assessment.message;
            counters.compare = assessment.compare;
            if verdict == GateVerdict::Waiting
                && baked
                && self.status.stage_started_at.is_some()
                && counters.waiting_reported != self.status.stage_started_at
            {
                counters.waiting_reported = self.status.stage_started_at.clone();
                let waited = match &self.status.stage_started_at {
                    Some(start) => self.now.duration_since(start.0).unsigned_abs(),
                    None => std::time::Duration::ZERO,
                };
                let waited = std::time::Duration::from_secs(waited.as_secs());
                let bake = self
                    .spec
                    .stages
                    .get(stage as usize)
                    .map_or(std::time::Duration::ZERO, |s| s.duration.into());
                let account = counters.last_message.as_deref().unwrap_or("no data yet");
                self.out.waiting.push(WaitingReport {
                    gate: gate.name.clone(),
                    message: format!(
                        "gate {} still waits for data {} into stage {} (bake time {}): {account}",
                        gate.name,
                        super::schedule::compact(waited),
                        stage + 1,
                        super::schedule::compact(bake),
                    ),
                });
            }
            all_pass &= matches!(verdict, GateVerdict::Pass | GateVerdict::Skipped);
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
        if self.phase() == Some(Phase::Progressing) {
            self.status.message = Some(self.progress(summary.as_deref()));
        } else if let Some(summary) = summary {
            self.status.message = Some(summary);
        }
        self.schedule_next();
    }

    /// A one-line account of a progressing rollout for people: "stage 2 of 3 at 5%, 1h10m of
    /// 2h baked, all gates passing".
    pub(super) fn progress(&self, failing: Option<&str>) -> String {
        let stages = &self.spec.stages;
        let index = self.status.stage as usize;
        let percent = self.status.percent.unwrap_or(Percent::ZERO);
        let mut text = format!(
            "{} at {percent}%",
            crate::api::stage_label(self.status.stage, stages.len())
        );
        if let (Some(stage), Some(start)) = (stages.get(index), &self.status.stage_started_at) {
            let bake = std::time::Duration::from(stage.duration);
            if !bake.is_zero() {
                let elapsed = self.now.duration_since(start.0).unsigned_abs().min(bake);
                let elapsed = std::time::Duration::from_secs(elapsed.as_secs());
                text.push_str(&format!(
                    ", {} of {} baked",
                    super::schedule::compact(elapsed),
                    super::schedule::compact(bake)
                ));
            }
        }
        match failing {
            None if self.spec.analysis.gates.is_empty() => text.push_str(", no gates"),
            None => text.push_str(", all gates passing"),
            Some(summary) => {
                text.push_str(", ");
                text.push_str(summary);
            }
        }
        text
    }

    /// Whether a whole analysis interval has passed since the stage (and so its percent)
    /// started: the arms' split has settled and the sample-ratio test may run.
    fn split_settled(&self) -> bool {
        let Some(start) = &self.status.stage_started_at else {
            return false;
        };
        let elapsed = self.now.duration_since(start.0);
        let interval = std::time::Duration::from(self.spec.analysis.interval);
        elapsed.is_positive() && elapsed.unsigned_abs() > interval
    }

    pub(super) fn bake_time_over(&self) -> bool {
        let Some(stage) = self.spec.stages.get(self.status.stage as usize) else {
            return true;
        };
        match &self.status.stage_started_at {
            Some(start) => baked(start.0, stage.duration, self.now),
            None => true,
        }
    }

    /// A short account of the gates that did not pass, for warn and fail checkpoints.
    pub(super) fn gate_summary(&self) -> String {
        use std::fmt::Write as _;
        let mut text = String::with_capacity(64);
        for gate in &self.status.gates {
            let Some(verdict) = gate.last_verdict else {
                continue;
            };
            if matches!(verdict, GateVerdict::Pass | GateVerdict::Skipped) {
                continue;
            }
            if !text.is_empty() {
                text.push_str("; ");
            }
            let _ = match (&gate.last_value, &gate.last_message) {
                // A compare gate's account says more than its bound.
                (_, Some(m)) if gate.compare.is_some() => {
                    write!(text, "{} {} ({m})", gate.name, verdict.as_str())
                }
                (Some(v), _) => write!(text, "{} {} ({v})", gate.name, verdict.as_str()),
                (None, Some(m)) => write!(text, "{} {} ({m})", gate.name, verdict.as_str()),
                (None, None) => write!(text, "{} {} (no data)", gate.name, verdict.as_str()),
            };
        }
        text
    }
}
