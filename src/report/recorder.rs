//! Builds a report from the events a simulation or backtest run produces, as they pass on to
//! the printed timeline: the engine's own transitions and checkpoints, never re-read text.

use std::io;

use k8s_openapi::jiff::Timestamp;

use super::model::{Entry, Event, FinalState, GateReading, Report, Source};
use super::plan::{offline_prechecks, plan_of};
use crate::api::{GateStatus, HistoryKind, Phase, Rollout};
use crate::engine::{Transition, TransitionKind};
use crate::sim::timeline::{TimelineEvent, TimelineSink};

/// The most checkpoints a report records one by one; past it only checkpoints that did not
/// pass are kept (every transition always is), so a month of per-minute checkpoints stays a
/// readable report of bounded size.
pub const MAX_RECORDED_CHECKPOINTS: usize = 20_000;

/// A [`TimelineSink`] that records every event for a report and passes it on to `inner`.
pub struct Recorder<'a> {
    inner: &'a mut dyn TimelineSink,
    entries: Vec<Entry>,
    checkpoints: usize,
    skipped: usize,
    message: Option<String>,
    gates: Vec<GateReading>,
    summary: Option<(Timestamp, Phase, u32, u8)>,
}

impl<'a> Recorder<'a> {
    /// A recorder in front of `inner` (the printed timeline).
    pub fn new(inner: &'a mut dyn TimelineSink) -> Self {
        Self {
            inner,
            entries: Vec::new(),
            checkpoints: 0,
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
                "{} passing checkpoints after the first {MAX_RECORDED_CHECKPOINTS} are not listed one by one.",
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
                self.gates = gates.iter().map(reading).collect();
                self.checkpoints += 1;
                let passed = verdict == crate::api::CheckpointVerdict::Pass;
                if passed && self.checkpoints > MAX_RECORDED_CHECKPOINTS {
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
