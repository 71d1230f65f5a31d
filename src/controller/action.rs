//! The one-shot `rollgate.dev/action` annotation, applied exactly once.
//!
//! A person (or `rollgate promote NAME`) sets `rollgate.dev/action: promote`. The controller
//! first *claims* it: one merge patch, guarded by the resourceVersion, removes the annotation
//! and sets `rollgate.dev/action-claimed: promote/<resourceVersion>`. The claim's value is
//! unique, and the status write that applies the action records it in `status.lastAction`.
//! Only then is the claim removed. A controller stopped between any two of these writes
//! finds, on restart, either the annotation (claim it), a claim not yet in the status (apply
//! it) or a claim already in the status (only remove it): never lost, never applied twice.

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::FIELD_MANAGER;
use crate::api::Rollout;
use crate::engine::ManualAction;

/// The annotation a person sets: `pause`, `resume`, `promote`, `abort` or `retry`.
pub const ACTION_ANNOTATION: &str = "rollgate.dev/action";

/// The annotation that holds a claimed action until its status write is done.
pub const CLAIMED_ANNOTATION: &str = "rollgate.dev/action-claimed";

/// The most characters of the annotation's value a claim keeps.
const MAX_WORD_CHARS: usize = 32;

/// An action claimed from the annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Claim {
    /// The action, or `None` for a word that is not one (reported, then dropped).
    pub action: Option<ManualAction>,
    /// The claim's unique value, `<word>/<resourceVersion>`.
    pub token: String,
}

impl Claim {
    /// The word the person wrote.
    pub fn word(&self) -> &str {
        self.token
            .rsplit_once('/')
            .map_or(self.token.as_str(), |(w, _)| w)
    }
}

/// The action a word names.
pub(super) fn parse_action(word: &str) -> Option<ManualAction> {
    match word.trim().to_ascii_lowercase().as_str() {
        "pause" => Some(ManualAction::Pause),
        "resume" => Some(ManualAction::Resume),
        "promote" => Some(ManualAction::Promote),
        "promote-full" => Some(ManualAction::PromoteFull),
        "abort" => Some(ManualAction::Abort),
        "retry" => Some(ManualAction::Retry),
        _ => None,
    }
}

fn annotation<'a>(rollout: &'a Rollout, key: &str) -> Option<&'a str> {
    rollout
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The claim the Rollout carries, if any.
pub(super) fn claimed(rollout: &Rollout) -> Option<Claim> {
    let token = annotation(rollout, CLAIMED_ANNOTATION)?.to_owned();
    let word = token.rsplit_once('/').map_or(token.as_str(), |(w, _)| w);
    Some(Claim {
        action: parse_action(word),
        token,
    })
}

/// The unclaimed action annotation's word, if any.
pub(super) fn requested(rollout: &Rollout) -> Option<&str> {
    annotation(rollout, ACTION_ANNOTATION)
}

/// Claims the action annotation: removes it and sets the claim, in one merge patch guarded
/// by the resourceVersion (a 409 means the Rollout changed: the next reconcile sees it).
/// Returns the Rollout as the API server now has it.
pub(super) async fn claim(api: &Api<Rollout>, rollout: &Rollout) -> Result<Rollout, kube::Error> {
    // Only the five action words mean anything; a longer value is cut so the claim (and
    // `status.lastAction`, which records it) stays within its schema's length.
    let word: String = requested(rollout)
        .unwrap_or_default()
        .trim()
        .chars()
        .take(MAX_WORD_CHARS)
        .collect();
    let version = rollout
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    let patch = json!({
        "metadata": {
            "resourceVersion": version,
            "annotations": {
                ACTION_ANNOTATION: null,
                CLAIMED_ANNOTATION: format!("{word}/{version}"),
            }
        }
    });
    let name = rollout.metadata.name.as_deref().unwrap_or_default();
    api.patch(name, &merge_params(), &Patch::Merge(&patch))
        .await
}

/// Removes the claim once the status records it.
pub(super) async fn release(api: &Api<Rollout>, rollout: &Rollout) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {"annotations": {CLAIMED_ANNOTATION: null}}});
    let name = rollout.metadata.name.as_deref().unwrap_or_default();
    api.patch(name, &merge_params(), &Patch::Merge(&patch))
        .await
        .map(drop)
}

fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_name_actions_whatever_the_case_and_spaces() {
        assert_eq!(parse_action("promote"), Some(ManualAction::Promote));
        assert_eq!(
            parse_action("promote-full"),
            Some(ManualAction::PromoteFull)
        );
        assert_eq!(parse_action(" Abort\n"), Some(ManualAction::Abort));
        assert_eq!(parse_action("retry"), Some(ManualAction::Retry));
        assert_eq!(parse_action("pause"), Some(ManualAction::Pause));
        assert_eq!(parse_action("resume"), Some(ManualAction::Resume));
        assert_eq!(parse_action("promot"), None);
        assert_eq!(parse_action(""), None);
    }

    #[test]
    fn a_claim_keeps_the_word_and_the_version() {
        let mut rollout = Rollout::new(
            "r",
            serde_json::from_value(json!({
                "target": {"configMap": {"name": "c", "key": "k"}},
                "stages": [{"percent": 1}]
            }))
            .expect("a spec"),
        );
        rollout.metadata.annotations =
            Some([(CLAIMED_ANNOTATION.to_owned(), "promote/42".to_owned())].into());
        let claim = claimed(&rollout).expect("a claim");
        assert_eq!(claim.action, Some(ManualAction::Promote));
        assert_eq!(claim.token, "promote/42");
        assert_eq!(claim.word(), "promote");
    }
}
