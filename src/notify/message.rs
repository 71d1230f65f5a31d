//! One transition to announce, and the bodies that announce it.

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::api::{
    HistoryEntry, Percent, Phase, Rollout, RolloutStatus, TransitionKind, stage_label,
};

/// How many characters of a reason a notification carries; the rest is cut (`…`).
const REASON_CAP: usize = crate::text::REASON;

/// A rollout's transition, as announced.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// The rollout's namespace.
    pub namespace: String,
    /// The rollout's name.
    pub name: String,
    /// The rollout's uid: a rollout deleted and created again is another rollout.
    pub uid: String,
    /// The spec generation the transition belongs to.
    pub generation: i64,
    /// What happened.
    pub kind: TransitionKind,
    /// The stage after the transition, as a 0-based index (the JSON body's `stage`; people read `stage + 1`).
    pub stage: u32,
    /// How many stages the plan has.
    pub stages: u32,
    /// The expected percent after the transition.
    pub percent: Option<Percent>,
    /// The phase after the transition.
    pub phase: Option<Phase>,
    /// Why, in words (a gate's failure, a person's action, a drift's numbers).
    pub reason: Option<String>,
    /// When the transition happened, as recorded in status history.
    pub at: Timestamp,
}

impl Notification {
    /// The notification for a transition recorded in `status.history`: `rollout` gives the
    /// names, uid, generation and stage count, `status` the phase after it. `None` for a
    /// routine checkpoint. The key depends only on what status records, so a reconcile that
    /// reads the entry back computes the same key.
    pub fn for_entry(
        rollout: &Rollout,
        status: &RolloutStatus,
        entry: &HistoryEntry,
    ) -> Option<Notification> {
        let kind = TransitionKind::of_history(entry.kind)?;
        let meta = &rollout.metadata;
        Some(Notification {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            generation: meta.generation.unwrap_or_default(),
            kind,
            stage: entry.stage,
            stages: u32::try_from(rollout.spec.stages.len()).unwrap_or(u32::MAX),
            percent: Some(entry.percent),
            phase: status.phase,
            reason: entry.message.clone(),
            at: entry.at.0,
        })
    }

    /// The transition's identity: uid, generation, kind, stage and time in whole seconds
    /// (the precision status keeps, so a key computed again from status read back matches).
    /// Two notifications with the same key announce the same transition.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}/{}",
            self.uid,
            self.generation,
            self.kind.as_str(),
            self.stage,
            self.at.as_second()
        )
    }

    /// The generic webhook's JSON body.
    pub fn webhook_body(&self) -> Value {
        json!({
            "source": "rollgate",
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "generation": self.generation,
            "event": self.kind.as_str(),
            "stage": self.stage,
            "stages": self.stages,
            "percent": self.percent,
            "phase": self.phase.map(Phase::as_str),
            "reason": self.reason.as_deref().map(clean),
            "at": Timestamp::from_second(self.at.as_second()).unwrap_or(self.at).to_string(),
            "key": self.key(),
        })
    }

    /// The Slack-compatible body: `{"text": …}`, one line for people.
    pub fn slack_body(&self) -> Value {
        json!({ "text": self.summary(true) })
    }

    /// One line for people, such as `kaviar/pfm rolled back to 0% at stage 2 of 3: gate
    /// error-rate failed 2 checkpoints in a row`. `slack` escapes `&`, `<` and `>` as Slack's
    /// text format requires.
    pub fn summary(&self, slack: bool) -> String {
        let stage = stage_label(self.stage, self.stages.max(1) as usize);
        let percent = self
            .percent
            .map_or_else(|| "?%".to_owned(), |p| format!("{p}%"));
        let what = match self.kind {
            TransitionKind::Pending => "is waiting for its pre-checks".to_owned(),
            TransitionKind::Start => format!("started: {stage} at {percent}"),
            TransitionKind::Advance => format!("advanced to {stage} at {percent}"),
            TransitionKind::Pause => format!("paused at {stage} ({percent})"),
            TransitionKind::Resume => format!("resumed at {stage} ({percent})"),
            TransitionKind::Drift => format!("drifted at {stage} (expected {percent})"),
            TransitionKind::Rollback => format!("rolled back to {percent} at {stage}"),
            TransitionKind::Complete => format!("completed at {percent} ({stage})"),
            TransitionKind::Replan => format!("replanned: now {stage} at {percent}"),
            TransitionKind::Invalid => "has an invalid spec".to_owned(),
        };
        let mut line = format!("rollgate: {}/{} {what}", self.namespace, self.name);
        if let Some(reason) = self.reason.as_deref().map(clean).filter(|r| !r.is_empty()) {
            line.push_str(": ");
            line.push_str(&reason);
        }
        if slack {
            line = line
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
        }
        line
    }
}

/// A reason fit to send: control characters become spaces, at most [`REASON_CAP`] characters.
fn clean(text: &str) -> String {
    crate::text::remote(text, REASON_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn rollback() -> Notification {
        Notification {
            namespace: "kaviar".to_owned(),
            name: "pfm".to_owned(),
            uid: "0b9f-uid".to_owned(),
            generation: 3,
            kind: TransitionKind::Rollback,
            stage: 1,
            stages: 3,
            percent: Some(Percent::whole(0)),
            phase: Some(Phase::RolledBack),
            reason: Some("gate error-rate failed 2 checkpoints in a row".to_owned()),
            at: "2026-02-01T21:18:00.250Z".parse().expect("time"),
        }
    }

    #[test]
    fn from_a_history_entry() {
        let rollout: Rollout = serde_json::from_value(json!({
            "apiVersion": "rollgate.dev/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "pfm", "namespace": "kaviar", "uid": "0b9f-uid", "generation": 3},
            "spec": {
                "target": {"configMap": {"name": "c", "key": "k"}},
                "stages": [{"percent": 1}, {"percent": 5}, {"percent": 10}]
            }
        }))
        .expect("rollout");
        let status = RolloutStatus {
            phase: Some(Phase::RolledBack),
            ..RolloutStatus::default()
        };
        let entry: HistoryEntry = serde_json::from_value(json!({
            "at": "2026-02-01T21:18:00Z", "kind": "rollback", "stage": 1, "percent": 0,
            "message": "gate error-rate failed 2 checkpoints in a row"
        }))
        .expect("entry");
        let n = Notification::for_entry(&rollout, &status, &entry).expect("a transition");
        assert_eq!(
            n,
            Notification {
                at: "2026-02-01T21:18:00Z".parse().expect("time"),
                ..rollback()
            }
        );
        let checkpoint: HistoryEntry = serde_json::from_value(json!({
            "at": "2026-02-01T21:18:00Z", "kind": "checkpoint", "stage": 1, "percent": 5, "verdict": "pass"
        }))
        .expect("entry");
        assert_eq!(
            Notification::for_entry(&rollout, &status, &checkpoint),
            None
        );
    }

    #[test]
    fn webhook_body_has_every_field() {
        let body = rollback().webhook_body();
        assert_eq!(
            body,
            json!({
                "source": "rollgate",
                "namespace": "kaviar",
                "name": "pfm",
                "uid": "0b9f-uid",
                "generation": 3,
                "event": "rollback",
                "stage": 1,
                "stages": 3,
                "percent": 0,
                "phase": "RolledBack",
                "reason": "gate error-rate failed 2 checkpoints in a row",
                "at": "2026-02-01T21:18:00Z",
                "key": "0b9f-uid/3/rollback/1/1769980680",
            })
        );
    }

    #[test]
    fn a_percent_with_decimals_is_a_json_number_and_text_with_its_decimals() {
        let half = Notification {
            kind: TransitionKind::Start,
            stage: 0,
            percent: Percent::from_basis_points(50),
            ..rollback()
        };
        assert_eq!(half.webhook_body()["percent"], json!(0.5));
        assert!(
            half.summary(false)
                .contains("started: stage 1 of 3 at 0.5%"),
            "{}",
            half.summary(false)
        );
    }

    #[test]
    fn slack_text() {
        assert_eq!(
            rollback().slack_body(),
            json!({"text": "rollgate: kaviar/pfm rolled back to 0% at stage 2 of 3: gate error-rate failed 2 checkpoints in a row"})
        );
        let advance = Notification {
            kind: TransitionKind::Advance,
            stage: 2,
            percent: Some(Percent::whole(10)),
            reason: Some("all gates passed <@here> & more\n\u{1b}[31m".to_owned()),
            ..rollback()
        };
        assert_eq!(
            advance.summary(true),
            "rollgate: kaviar/pfm advanced to stage 3 of 3 at 10%: all gates passed &lt;@here&gt; &amp; more [31m"
        );
    }

    #[test]
    fn key_ignores_sub_second_time_and_names_the_transition() {
        let a = rollback();
        let b = Notification {
            at: "2026-02-01T21:18:00.900Z".parse().expect("time"),
            reason: Some("another wording".to_owned()),
            ..rollback()
        };
        assert_eq!(a.key(), b.key());
        let later = Notification {
            at: "2026-02-01T21:18:01Z".parse().expect("time"),
            ..rollback()
        };
        assert_ne!(a.key(), later.key());
        let next_generation = Notification {
            generation: 4,
            ..rollback()
        };
        assert_ne!(a.key(), next_generation.key());
    }

    #[test]
    fn long_reasons_are_capped() {
        let n = Notification {
            reason: Some("x".repeat(10_000)),
            ..rollback()
        };
        let reason = n.webhook_body()["reason"]
            .as_str()
            .expect("text")
            .to_owned();
        assert_eq!(reason.chars().count(), REASON_CAP + 1);
        assert!(reason.ends_with('…'));
    }
}
