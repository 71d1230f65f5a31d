//! Events (events.k8s.io/v1) through the one shared `Recorder`. The Recorder folds repeats of
//! the same reason and action within minutes into a series and keeps the first note, so what
//! differs between two of them (the stage, the gate) goes into the action.

use kube::Resource;
use kube::runtime::events::{Event, EventType};
use tracing::warn;

use super::context::Context;
use crate::api::{GateVerdict, REASON_FORBIDDEN, Rollout, RolloutStatus, stage_label};
use crate::engine::{DriftAction, Outcome, Transition, TransitionKind};

/// An event to publish: type, reason, action and note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Notice {
    pub warning: bool,
    pub reason: &'static str,
    pub action: String,
    pub note: String,
}

impl Notice {
    fn new(warning: bool, reason: &'static str, action: String, note: String) -> Self {
        Self {
            warning,
            reason,
            action,
            note,
        }
    }
}

/// The events a decision's outcome calls for, in order, for a plan of `stages` stages.
pub(super) fn notices(outcome: &Outcome, status: &RolloutStatus, stages: usize) -> Vec<Notice> {
    let mut out = Vec::new();
    let split = outcome
        .checkpoint
        .map_or(outcome.transitions.len(), |c| c.position);
    for t in &outcome.transitions[..split] {
        transition_notices(t, stages, &mut out);
    }
    if outcome.checkpoint.is_some() {
        for gate in &status.gates {
            if gate.last_verdict == Some(GateVerdict::Error) {
                out.push(Notice::new(
                    true,
                    "GateError",
                    action("Observe", &gate.name),
                    format!(
                        "gate {}: {}",
                        gate.name,
                        gate.last_message.as_deref().unwrap_or("error")
                    ),
                ));
            }
        }
        for waiting in &outcome.waiting {
            out.push(Notice::new(
                false,
                "Waiting",
                action("Wait", &waiting.gate),
                waiting.message.clone(),
            ));
        }
    }
    for t in &outcome.transitions[split..] {
        transition_notices(t, stages, &mut out);
    }
    if status.reason.as_deref() == Some(REASON_FORBIDDEN) {
        // Waiting or paused because the rollout's ServiceAccount was refused: say so.
        for notice in &mut out {
            if matches!(notice.reason, "Paused" | "PreCheckFailed") {
                notice.reason = REASON_FORBIDDEN;
                notice.warning = true;
            }
        }
    }
    // A specific reason the status carries (a drift loop, a target owned by another Rollout)
    // names the event too.
    let specific = match status.reason.as_deref() {
        Some(super::ownership::TARGET_OWNED) => Some(("PreCheckFailed", "TargetOwned")),
        Some(crate::engine::DRIFT_LOOP_REASON) => Some(("Paused", "DriftLoop")),
        _ => None,
    };
    if let Some((general, reason)) = specific {
        for notice in out.iter_mut().filter(|n| n.reason == general) {
            notice.reason = reason;
            notice.warning = true;
        }
    }
    out
}

fn transition_notices(t: &Transition, stages: usize, out: &mut Vec<Notice>) {
    let stage = format!("{} at {}%", stage_label(t.stage, stages), t.percent);
    let why = |default: &str| {
        t.reason.clone().map_or_else(
            || format!("{default} ({stage})"),
            |r| format!("{r} ({stage})"),
        )
    };
    let at_stage = |verb: &str| format!("{verb}Stage{}", t.stage);
    let notice = match t.kind {
        TransitionKind::Pending => Notice::new(
            true,
            "PreCheckFailed",
            "PreCheck".into(),
            why("pre-checks failed"),
        ),
        TransitionKind::Start => Notice::new(false, "Started", at_stage("Start"), why("started")),
        TransitionKind::Advance => {
            Notice::new(false, "Advanced", at_stage("AdvanceTo"), why("advanced"))
        }
        TransitionKind::Pause => Notice::new(false, "Paused", at_stage("PauseAt"), why("paused")),
        TransitionKind::Resume => {
            Notice::new(false, "Resumed", at_stage("ResumeAt"), why("resumed"))
        }
        TransitionKind::Rollback => Notice::new(
            true,
            "RolledBack",
            at_stage("RollBackFrom"),
            why("rolled back"),
        ),
        TransitionKind::Complete => {
            Notice::new(false, "Completed", at_stage("CompleteAt"), why("completed"))
        }
        TransitionKind::Replan => Notice::new(
            false,
            "Replanned",
            at_stage("ReplanTo"),
            why("plan changed"),
        ),
        TransitionKind::Invalid => {
            Notice::new(true, "InvalidSpec", "Validate".into(), why("invalid spec"))
        }
        TransitionKind::Drift {
            expected,
            actual,
            action: drift,
        } => {
            out.push(Notice::new(
                true,
                "DriftDetected",
                format!("Drift{actual}Expected{expected}"),
                format!("the target holds {actual}%, the rollout expects {expected}%"),
            ));
            if drift == DriftAction::Reverted {
                Notice::new(
                    false,
                    "DriftReverted",
                    format!("Revert{actual}To{expected}"),
                    format!("wrote {expected}% back over {actual}%"),
                )
            } else {
                return;
            }
        }
    };
    out.push(notice);
}

/// `Observe` + a gate name, within the API's 128-character limit for an action.
fn action(verb: &str, name: &str) -> String {
    let mut text = format!("{verb}:{name}");
    text.truncate(128);
    text
}

/// Publishes each notice about `rollout`; a failure is logged, not returned (the decision is
/// already written).
pub(super) async fn publish(ctx: &Context, rollout: &Rollout, notices: &[Notice]) {
    let reference = rollout.object_ref(&());
    for notice in notices {
        let event = Event {
            type_: if notice.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: notice.reason.to_owned(),
            note: Some(cap(&notice.note, crate::text::EVENT_NOTE_BYTES)),
            action: notice.action.clone(),
            secondary: None,
        };
        if let Err(error) = ctx.recorder.publish(&event, &reference).await {
            warn!(%error, reason = notice.reason, "cannot publish an event");
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary ([`crate::text::cap_bytes`]).
pub(super) fn cap(text: &str, max: usize) -> String {
    crate::text::cap_bytes(text, max).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CheckpointVerdict, GateStatus, Percent};
    use crate::engine::CheckpointReport;

    fn transition(kind: TransitionKind, stage: u32, percent: Percent) -> Transition {
        Transition {
            kind,
            stage,
            percent,
            reason: Some("why".into()),
        }
    }

    fn reasons(notices: &[Notice]) -> Vec<(&'static str, &str)> {
        notices
            .iter()
            .map(|n| (n.reason, n.action.as_str()))
            .collect()
    }

    #[test]
    fn the_stage_goes_into_the_action_so_the_recorder_does_not_fold_two_stages() {
        let outcome = Outcome {
            transitions: vec![
                transition(TransitionKind::Advance, 1, Percent::whole(5)),
                transition(TransitionKind::Advance, 2, Percent::whole(10)),
            ],
            ..Outcome::default()
        };
        let notices = notices(&outcome, &RolloutStatus::default(), 3);
        assert_eq!(
            reasons(&notices),
            [
                ("Advanced", "AdvanceToStage1"),
                ("Advanced", "AdvanceToStage2")
            ]
        );
        assert!(
            notices[0].note.contains("stage 2 of 3 at 5%"),
            "{:?}",
            notices[0]
        );
        assert!(!notices[0].warning);
    }

    #[test]
    fn a_reverted_drift_is_detected_then_reverted_and_a_paused_one_only_detected() {
        let drift = |action| TransitionKind::Drift {
            expected: Percent::whole(1),
            actual: Percent::whole(7),
            action,
        };
        let reverted = Outcome {
            transitions: vec![transition(
                drift(DriftAction::Reverted),
                0,
                Percent::whole(1),
            )],
            ..Outcome::default()
        };
        assert_eq!(
            reasons(&notices(&reverted, &RolloutStatus::default(), 3)),
            [
                ("DriftDetected", "Drift7Expected1"),
                ("DriftReverted", "Revert7To1")
            ]
        );
        let paused = Outcome {
            transitions: vec![
                transition(drift(DriftAction::Paused), 0, Percent::whole(1)),
                transition(TransitionKind::Pause, 0, Percent::whole(1)),
            ],
            ..Outcome::default()
        };
        assert_eq!(
            reasons(&notices(&paused, &RolloutStatus::default(), 3)),
            [
                ("DriftDetected", "Drift7Expected1"),
                ("Paused", "PauseAtStage0")
            ]
        );
    }

    #[test]
    fn gate_errors_come_between_earlier_transitions_and_the_checkpoints_decision() {
        let outcome = Outcome {
            checkpoint: Some(CheckpointReport {
                position: 1,
                stage: 0,
                percent: Percent::whole(1),
                verdict: CheckpointVerdict::Warn,
            }),
            waiting: Vec::new(),
            transitions: vec![
                transition(TransitionKind::Resume, 0, Percent::whole(1)),
                transition(TransitionKind::Pause, 0, Percent::whole(1)),
            ],
            write: None,
        };
        let status = RolloutStatus {
            gates: vec![
                GateStatus {
                    name: "error-rate".into(),
                    last_verdict: Some(GateVerdict::Error),
                    last_message: Some("connection refused".into()),
                    ..GateStatus::default()
                },
                GateStatus {
                    name: "alerts".into(),
                    last_verdict: Some(GateVerdict::Pass),
                    ..GateStatus::default()
                },
            ],
            ..RolloutStatus::default()
        };
        let notices = notices(&outcome, &status, 3);
        assert_eq!(
            reasons(&notices),
            [
                ("Resumed", "ResumeAtStage0"),
                ("GateError", "Observe:error-rate"),
                ("Paused", "PauseAtStage0"),
            ]
        );
        assert!(notices[1].warning);
        assert_eq!(notices[1].note, "gate error-rate: connection refused");
    }

    #[test]
    fn a_compare_gate_still_waiting_after_the_bake_time_is_one_waiting_event() {
        let outcome = Outcome {
            checkpoint: Some(CheckpointReport {
                position: 0,
                stage: 0,
                percent: Percent::whole(1),
                verdict: CheckpointVerdict::Warn,
            }),
            waiting: vec![crate::engine::WaitingReport {
                gate: "errors-vs-control".into(),
                message: "gate errors-vs-control still waits for data 2h into stage 1 (bake \
                          time 2h): collecting: 340 of 500 requests with the flag"
                    .into(),
            }],
            transitions: Vec::new(),
            write: None,
        };
        let status = RolloutStatus {
            gates: vec![GateStatus {
                name: "errors-vs-control".into(),
                last_verdict: Some(GateVerdict::Waiting),
                ..GateStatus::default()
            }],
            ..RolloutStatus::default()
        };
        let notices = notices(&outcome, &status, 1);
        assert_eq!(reasons(&notices), [("Waiting", "Wait:errors-vs-control")]);
        assert!(!notices[0].warning);
        assert!(
            notices[0]
                .note
                .ends_with("collecting: 340 of 500 requests with the flag")
        );
    }
}
