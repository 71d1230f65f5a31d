//! Where a rollout announces its transitions: generic JSON webhooks and Slack-compatible
//! incoming webhooks, their URLs read from Secrets.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::status::HistoryKind;

/// An endpoint told about the rollout's transitions. Set exactly one of `webhook` and
/// `slack`. The URL comes from a Secret, never from the Rollout itself: incoming-webhook URLs
/// carry their credentials.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.webhook) != has(self.slack)")
    .message("notification must set exactly one of webhook and slack"))]
pub struct NotificationSpec {
    /// A generic webhook: receives a JSON object per transition (rollout namespace and name,
    /// uid, generation, event, stage as a 0-based index, number of stages, percent, phase,
    /// reason, time and a deduplication key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookNotification>,
    /// A Slack (or Mattermost, Rocket.Chat, …) incoming webhook: receives `{"text": …}`, one
    /// line that counts stages from 1 ("stage 2 of 3").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackNotification>,
    /// The transitions to announce; empty or absent means all of them. (Named `when`, not
    /// `on`: kubectl reads YAML 1.1, where the key `on` is the boolean `true`.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub when: Vec<TransitionKind>,
}

/// A generic JSON webhook.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WebhookNotification {
    /// The key of a Secret in the rollout's namespace that holds the URL (http or https).
    pub url_secret_ref: SecretKeyRef,
}

/// A Slack-compatible incoming webhook.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SlackNotification {
    /// The key of a Secret in the rollout's namespace that holds the incoming-webhook URL.
    pub url_secret_ref: SecretKeyRef,
}

/// A key of a Secret in the rollout's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// The key within the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// A transition a notification can announce.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum TransitionKind {
    /// The rollout waits for its pre-checks before the start.
    Pending,
    /// The rollout started at its first stage.
    Start,
    /// The rollout moved to its next stage.
    Advance,
    /// The rollout paused.
    Pause,
    /// The rollout resumed.
    Resume,
    /// The target's live percent differed from the expected one.
    Drift,
    /// The rollout rolled back.
    Rollback,
    /// The rollout completed its last stage.
    Complete,
    /// A new spec moved the rollout to another stage.
    Replan,
    /// The spec is invalid.
    Invalid,
}

impl TransitionKind {
    /// The transition's word, as in status history and `simulate` output.
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::Pending => "pending",
            TransitionKind::Start => "start",
            TransitionKind::Advance => "advance",
            TransitionKind::Pause => "pause",
            TransitionKind::Resume => "resume",
            TransitionKind::Drift => "drift",
            TransitionKind::Rollback => "rollback",
            TransitionKind::Complete => "complete",
            TransitionKind::Replan => "replan",
            TransitionKind::Invalid => "invalid",
        }
    }

    /// The transition a history entry records; `None` for a routine checkpoint (or a kind
    /// this version does not announce).
    pub fn of_history(kind: HistoryKind) -> Option<TransitionKind> {
        TransitionKind::from_word(kind.as_str())
    }

    /// The transition named by its word (`advance`, `rollback`, …), if it is one.
    pub fn from_word(word: &str) -> Option<TransitionKind> {
        Some(match word {
            "pending" => TransitionKind::Pending,
            "start" => TransitionKind::Start,
            "advance" => TransitionKind::Advance,
            "pause" => TransitionKind::Pause,
            "resume" => TransitionKind::Resume,
            "drift" => TransitionKind::Drift,
            "rollback" => TransitionKind::Rollback,
            "complete" => TransitionKind::Complete,
            "replan" => TransitionKind::Replan,
            "invalid" => TransitionKind::Invalid,
            _ => return None,
        })
    }
}

impl NotificationSpec {
    /// Whether this endpoint wants to hear about `kind`.
    pub fn wants(&self, kind: TransitionKind) -> bool {
        self.when.is_empty() || self.when.contains(&kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape() {
        let yaml = r#"
- webhook: {urlSecretRef: {name: hooks, key: url}}
- slack: {urlSecretRef: {name: slack, key: incoming}}
  when: [rollback, complete, pause]
"#;
        let specs: Vec<NotificationSpec> = serde_saphyr::from_str(yaml).expect("parses");
        assert_eq!(specs.len(), 2);
        assert_eq!(
            specs[0].webhook.as_ref().map(|w| &w.url_secret_ref),
            Some(&SecretKeyRef {
                name: "hooks".to_owned(),
                key: "url".to_owned()
            })
        );
        assert!(
            specs[0].wants(TransitionKind::Advance),
            "no filter: everything"
        );
        assert!(specs[1].slack.is_some());
        assert!(specs[1].wants(TransitionKind::Rollback));
        assert!(!specs[1].wants(TransitionKind::Advance));
    }

    #[test]
    fn an_unknown_transition_is_refused() {
        let yaml = "slack: {urlSecretRef: {name: s, key: k}}\nwhen: [rollbak]\n";
        assert!(serde_saphyr::from_str::<NotificationSpec>(yaml).is_err());
    }

    #[test]
    fn every_history_kind_but_checkpoint_is_a_transition() {
        let kinds = [
            HistoryKind::Start,
            HistoryKind::Advance,
            HistoryKind::Pause,
            HistoryKind::Resume,
            HistoryKind::Drift,
            HistoryKind::Rollback,
            HistoryKind::Complete,
            HistoryKind::Replan,
            HistoryKind::Invalid,
        ];
        for kind in kinds {
            let transition = TransitionKind::of_history(kind).expect("a transition");
            assert_eq!(transition.as_str(), kind.as_str());
        }
        assert_eq!(TransitionKind::of_history(HistoryKind::Checkpoint), None);
        let every = [
            TransitionKind::Pending,
            TransitionKind::Start,
            TransitionKind::Advance,
            TransitionKind::Pause,
            TransitionKind::Resume,
            TransitionKind::Drift,
            TransitionKind::Rollback,
            TransitionKind::Complete,
            TransitionKind::Replan,
            TransitionKind::Invalid,
        ];
        for kind in every {
            assert_eq!(TransitionKind::from_word(kind.as_str()), Some(kind));
            let json = serde_json::to_value(kind).expect("serializes");
            assert_eq!(json, serde_json::json!(kind.as_str()), "the CRD's word");
        }
        assert_eq!(TransitionKind::from_word("Advance"), None);
    }
}
