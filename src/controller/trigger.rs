//! Which watch events of a Rollout start a reconcile. The controller's own status writes do
//! not: a Pending rollout is retried on its backoff whatever its status says, and a rollout's
//! status write never loops back into an immediate reconcile of itself. Changes to the spec
//! (generation), annotations (an action, or a touch that re-runs the pre-checks), labels, a
//! deletion, a new object, and any status this controller did not write do.
//!
//! The own write is recognised by content, not by resourceVersion: the digest of the status is
//! recorded *before* the request goes out, so its watch event is recognised even when it
//! arrives before the write's answer.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use super::context::RolloutKey;
use crate::api::{Rollout, RolloutStatus};

/// Digests per Rollout: a few bytes each, whatever the size of the status.
#[derive(Debug, Default)]
pub(super) struct Triggers {
    /// The digest of the last status this controller wrote (or is writing).
    own_status: HashMap<RolloutKey, u64>,
    /// The digest of the metadata that matters, as last seen.
    seen_meta: HashMap<RolloutKey, u64>,
}

impl Triggers {
    /// Records the status about to be written.
    pub(super) fn writing_status(&mut self, key: &RolloutKey, status: &RolloutStatus) {
        self.own_status
            .insert(key.clone(), status_digest(Some(status)));
    }

    /// Whether this watch event of `rollout` should start a reconcile.
    pub(super) fn should_reconcile(&mut self, key: &RolloutKey, rollout: &Rollout) -> bool {
        let meta = meta_digest(rollout);
        let meta_changed = self.seen_meta.insert(key.clone(), meta) != Some(meta);
        let own = self
            .own_status
            .get(key)
            .is_some_and(|own| *own == status_digest(rollout.status.as_ref()));
        meta_changed || !own
    }

    /// Forgets a deleted Rollout.
    pub(super) fn forget(&mut self, key: &RolloutKey) {
        self.own_status.remove(key);
        self.seen_meta.remove(key);
    }
}

pub(super) fn status_digest(status: Option<&RolloutStatus>) -> u64 {
    let mut hasher = DefaultHasher::new();
    // Serialising a status cannot fail (plain data); an empty digest input would only make
    // every status look foreign, which reconciles once too often, never too rarely.
    serde_json::to_vec(&status)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

fn meta_digest(rollout: &Rollout) -> u64 {
    let meta = &rollout.metadata;
    let mut hasher = DefaultHasher::new();
    meta.uid.hash(&mut hasher);
    meta.generation.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    meta.labels.hash(&mut hasher);
    meta.deletion_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Phase, RolloutSpec};

    fn rollout(status: Option<RolloutStatus>) -> Rollout {
        let spec: RolloutSpec = serde_saphyr::from_str(
            "target: {configMap: {name: c, key: k}}\nstages: [{percent: 1}]\n",
        )
        .expect("a plan");
        let mut r = Rollout::new("r", spec);
        r.metadata.namespace = Some("ns".into());
        r.metadata.generation = Some(1);
        r.status = status;
        r
    }

    fn key() -> RolloutKey {
        ("ns".into(), "r".into())
    }

    fn pending(message: &str) -> RolloutStatus {
        RolloutStatus {
            phase: Some(Phase::Pending),
            message: Some(message.into()),
            ..RolloutStatus::default()
        }
    }

    #[test]
    fn the_own_status_write_does_not_trigger_but_a_touch_does() {
        let mut triggers = Triggers::default();
        assert!(
            triggers.should_reconcile(&key(), &rollout(None)),
            "a new object"
        );
        let written = pending("gate a: refused (1)");
        triggers.writing_status(&key(), &written);
        // The write's watch event, round-tripped through JSON as the API server sends it.
        let echoed: RolloutStatus =
            serde_json::from_value(serde_json::to_value(&written).expect("json")).expect("json");
        assert!(!triggers.should_reconcile(&key(), &rollout(Some(echoed.clone()))));
        // Someone else's status edit does.
        assert!(triggers.should_reconcile(&key(), &rollout(Some(pending("edited")))));
        // An annotation does.
        let mut touched = rollout(Some(echoed.clone()));
        touched
            .metadata
            .annotations
            .get_or_insert_default()
            .insert("touched".into(), "now".into());
        assert!(triggers.should_reconcile(&key(), &touched));
        // A spec change (generation) does.
        let mut edited = rollout(Some(echoed));
        edited.metadata.generation = Some(2);
        assert!(triggers.should_reconcile(&key(), &edited));
    }
}
