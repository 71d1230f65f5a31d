//! Builds a report from the events a simulation or backtest run produces, as they pass on to
//! the printed timeline: the engine's own transitions and checkpoints, never re-read text.

use std::io;

use k8s_openapi::jiff::Timestamp;

use super::model::{Entry, Event, FinalState, GateReading, Report, Source};
use super::plan::{offline_prechecks, plan_of};
use crate::api::{GateStatus, HistoryKind, Percent, Phase, Rollout};
use crate::engine::{Transition, TransitionKind};
use crate::sim::timeline::{TimelineEvent, TimelineSink};

/// The gate readings (checkpoints × gates) a report records one by one: a month of per-minute
/// checkpoints of a few gates fits. Past it, a passing checkpoint is recorded only when a
/// value changed since the last one recorded (which keeps the chart of piecewise-constant
/// values exact), and past twice as many, passing checkpoints are no longer recorded; every
/// other checkpoint and every transition always is, and the report says what was left out.
pub const MAX_RECORDED_READINGS: usize = 400_000;

/// A [`TimelineSink`] that records every event for a report and passes it on to `inner`.
pub struct Recorder<'a> {
    inner: &'a mut dyn TimelineSink,
    entries: Vec<Entry>,
    readings: usize,
    skipped: usize,
    message: Option<String>,
    gates: Vec<GateReading>,
    summary: Option<(Timestamp, Phase, u32, Percent)>,
}

impl<'a> Recorder<'a> {
    /// A recorder in front of `inner` (the printed timeline).
    pub fn new(inner: &'a mut dyn TimelineSink) -> Self {
        Self {
            inner,
            entries: Vec::new(),
            readings: 0,
            skipped: 0,
            message: None,
            gates: Vec::new(),
            summary: None,
        }
    }

    /// The report of the run recorded so far, for `rollout` run as `source`.
    pub fn into_report(self, rollout: &Rollout, source: Source) -> Report {
        let plan = plan_of(&rollout.spec);
        let mut notes = Vec::new();
        if self.skipped > 0 {
            notes.push(format!(
                "{} passing checkpoints past the first {MAX_RECORDED_READINGS} gate readings are left out \
                 (each repeated the values before it, or the run was too long to keep them all).",
                self.skipped
            ));
        }
        let (at, phase, stage, percent) = match self.summary {
            Some((at, phase, stage, percent)) => (Some(at), Some(phase), stage, Some(percent)),
            None => {
                let last = self.entries.last();
                (
                    last.map(|e| e.at),
                    None,
                    last.map_or(0, |e| e.stage),
                    last.map(|e| e.percent),
                )
            }
        };
        Report {
            name: rollout.metadata.name.clone().unwrap_or_default(),
            namespace: rollout.metadata.namespace.clone(),
            source,
            prechecks: offline_prechecks(&plan),
            plan,
            entries: self.entries,
            final_state: FinalState {
                at,
                phase,
                stage,
                percent,
                message: self.message,
                gates: self.gates,
                next_checkpoint_at: None,
                conditions: Vec::new(),
            },
            notes,
        }
    }

    fn record(&mut self, event: &TimelineEvent<'_>) {
        match *event {
            TimelineEvent::Start { at, stage, percent } => self.entries.push(Entry {
                at,
                stage,
                percent,
                event: Event::Start,
            }),
            TimelineEvent::Checkpoint {
                at,
                stage,
                percent,
                verdict,
                gates,
            } => {
                let changed = gates.len() != self.gates.len()
                    || gates
                        .iter()
                        .zip(&self.gates)
                        .any(|(now, before)| now.last_value != before.value);
                self.gates = gates.iter().map(reading).collect();
                self.readings = self.readings.saturating_add(gates.len().max(1));
                let passed = verdict == crate::api::CheckpointVerdict::Pass;
                let over = self.readings > MAX_RECORDED_READINGS;
                let far_over = self.readings > 2 * MAX_RECORDED_READINGS;
                if passed && over && (far_over || !changed) {
                    self.skipped += 1;
                    return;
                }
                self.entries.push(Entry {
                    at,
                    stage,
                    percent,
                    event: Event::Checkpoint {
                        verdict,
                        gates: self.gates.clone(),
                    },
                });
            }
            TimelineEvent::Transition { at, transition } => {
                if transition.reason.is_some() {
                    self.message.clone_from(&transition.reason);
                }
                self.entries.push(transition_entry(at, transition));
            }
            TimelineEvent::Summary {
                at,
                phase,
                stage,
                percent,
            } => self.summary = Some((at, phase, stage, percent)),
        }
    }
}

impl TimelineSink for Recorder<'_> {
    fn write(&mut self, event: &TimelineEvent<'_>) -> io::Result<()> {
        self.record(event);
        self.inner.write(event)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn reading(gate: &GateStatus) -> GateReading {
    GateReading {
        name: gate.name.clone(),
        verdict: gate.last_verdict,
        value: gate.last_value,
        message: gate.last_message.clone(),
        failures: gate.failures,
        misses: gate.misses,
    }
}

fn transition_entry(at: Timestamp, transition: &Transition) -> Entry {
    let reason = transition.reason.clone();
    let event = match transition.kind {
        TransitionKind::Drift { actual, .. } => Event::Drift {
            actual: Some(actual),
            reason,
        },
        TransitionKind::Start => Event::Start,
        TransitionKind::Pending => Event::Pending { reason },
        other => Event::Transition {
            kind: history_kind(other),
            reason,
        },
    };
    Entry {
        at,
        stage: transition.stage,
        percent: transition.percent,
        event,
    }
}

/// The status history's word for an engine transition.
fn history_kind(kind: TransitionKind) -> HistoryKind {
    match kind {
        TransitionKind::Pending => HistoryKind::Pending,
        TransitionKind::Start => HistoryKind::Start,
        TransitionKind::Advance => HistoryKind::Advance,
        TransitionKind::Pause => HistoryKind::Pause,
        TransitionKind::Resume => HistoryKind::Resume,
        TransitionKind::Drift { .. } => HistoryKind::Drift,
        TransitionKind::Rollback => HistoryKind::Rollback,
        TransitionKind::Complete => HistoryKind::Complete,
        TransitionKind::Replan => HistoryKind::Replan,
        TransitionKind::Invalid => HistoryKind::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CheckpointVerdict, GateVerdict};

    struct Discard;

    impl TimelineSink for Discard {
        fn write(&mut self, _: &TimelineEvent<'_>) -> io::Result<()> {
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn gate(value: f64) -> [GateStatus; 1] {
        [GateStatus {
            name: "error-rate".to_owned(),
            last_verdict: Some(GateVerdict::Pass),
            last_value: Some(value),
            ..GateStatus::default()
        }]
    }

    fn checkpoint(
        recorder: &mut Recorder<'_>,
        second: i64,
        value: f64,
        verdict: CheckpointVerdict,
    ) {
        let gates = gate(value);
        recorder
            .write(&TimelineEvent::Checkpoint {
                at: Timestamp::from_second(second).expect("a time"),
                stage: 0,
                percent: Percent::whole(1),
                verdict,
                gates: &gates,
            })
            .expect("recorded");
    }

    #[test]
    fn past_its_budget_a_recorder_keeps_changes_and_warnings_only() {
        let mut inner = Discard;
        let mut recorder = Recorder::new(&mut inner);
        let mut second = 0;
        for _ in 0..MAX_RECORDED_READINGS + 5 {
            second += 60;
            checkpoint(&mut recorder, second, 0.002, CheckpointVerdict::Pass);
        }
        assert_eq!(recorder.entries.len(), MAX_RECORDED_READINGS);
        checkpoint(&mut recorder, second + 60, 0.003, CheckpointVerdict::Pass);
        checkpoint(&mut recorder, second + 120, 0.003, CheckpointVerdict::Pass);
        checkpoint(&mut recorder, second + 180, 0.003, CheckpointVerdict::Warn);
        assert_eq!(recorder.entries.len(), MAX_RECORDED_READINGS + 2);
        let report = recorder.into_report(
            &Rollout::new(
                "r",
                serde_json::from_value(serde_json::json!({
                    "target": {"configMap": {"name": "c", "key": "k"}},
                    "stages": [{"percent": 1}]
                }))
                .expect("a spec"),
            ),
            Source::Live {
                generation: None,
                observed_generation: None,
            },
        );
        assert_eq!(report.notes.len(), 1);
        assert!(
            report.notes[0].starts_with("6 passing checkpoints"),
            "{:?}",
            report.notes
        );
    }
}
