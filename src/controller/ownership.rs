//! One owner per target (docs/design.md §4 rule 10): a flagd flag (ConfigMap + key + flag, or
//! FeatureFlag + flag) or a plain ConfigMap key belongs to at most one unfinished Rollout.
//!
//! The claim lives on the target object itself, as the annotation
//! `rollgate.dev/owner.<flag-or-key>: NAMESPACE/NAME/UID` ([`owner_annotation`]), written with a
//! merge patch that carries the resourceVersion just read (a precondition: two Rollouts
//! claiming at once cannot both win) *before* the status records the start. A Rollout whose
//! target carries another live, unfinished Rollout's claim stays Pending with reason
//! `TargetOwned`, naming the owner (looked up in the Rollout watch cache, no API call). An owner that has finished (Succeeded, RolledBack, Failed)
//! or no longer exists (or was recreated under a new uid) counts as free, so nothing needs
//! removing when a rollout ends. Webhook targets have no object to annotate: one URL must serve
//! one Rollout.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{DynamicObject, ObjectMeta};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tracing::info;

use super::FIELD_MANAGER;
use super::target::namespace_of;
use crate::api::{Rollout, Target};
use crate::targets::{self, TargetObject, featureflag};

/// The prefix of every owner annotation; the name part follows (`owner.<flag-or-key>`).
pub const OWNER_ANNOTATION_PREFIX: &str = "rollgate.dev/owner.";

/// The condition reason of a Rollout kept Pending by another one's claim.
pub const TARGET_OWNED: &str = "TargetOwned";

/// The longest name part of an annotation key Kubernetes accepts.
const MAX_NAME_PART: usize = 63;

/// The owner annotation's key for `target`, or `None` for a webhook target. The name part is
/// `owner.<flag-or-key>` when that is a valid annotation name of at most 63 characters;
/// otherwise the readable part is cut and a hash of the whole keeps keys apart.
pub fn owner_annotation(target: &Target) -> Option<String> {
    let part = targets::part_of(target)?;
    let plain = format!("owner.{part}");
    if plain.len() <= MAX_NAME_PART && is_valid_name(&plain) {
        return Some(format!("rollgate.dev/{plain}"));
    }
    let readable: String = part
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(MAX_NAME_PART - "owner.".len() - 17)
        .collect();
    let readable = readable.trim_end_matches(['-', '_', '.']);
    Some(format!(
        "rollgate.dev/owner.{readable}-{:016x}",
        fnv1a(part.as_bytes())
    ))
}

/// Whether `name` is a valid name part of a qualified name: alphanumerics, `-`, `_` and `.`,
/// starting and ending with an alphanumeric.
fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// FNV-1a, 64 bits: stable across versions and platforms, so a claim written by one
/// controller version is read by the next.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The owner annotation's value naming `rollout`: `NAMESPACE/NAME/UID`.
pub fn owner_value(rollout: &Rollout) -> String {
    format!(
        "{}/{}/{}",
        namespace_of(rollout),
        rollout.metadata.name.as_deref().unwrap_or_default(),
        rollout.metadata.uid.as_deref().unwrap_or_default()
    )
}

/// What the claim found on the target object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Ownership {
    /// No claim is needed: a webhook target, or an object that is not there (the pre-checks
    /// report that).
    NotClaimable,
    /// The rollout already owns the target.
    Ours,
    /// Free (no claim, or a finished or gone owner's): claim it over this resourceVersion.
    Free {
        /// The object's resourceVersion when read.
        version: Option<String>,
    },
    /// Another live, unfinished Rollout owns it; the message names it.
    Owned(String),
}

/// Why the claim could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(super) enum ClaimError {
    /// The API refused or failed.
    #[error("cannot {verb} the owner annotation of {object}: {source}")]
    Api {
        /// get or patch.
        verb: &'static str,
        /// The object, in words.
        object: String,
        /// The API's answer.
        source: kube::Error,
    },
}

impl ClaimError {
    /// Whether the API answered 409 Conflict: the object changed since it was read.
    pub(super) fn is_conflict(&self) -> bool {
        matches!(self, ClaimError::Api { source: kube::Error::Api(status), .. } if status.code == 409)
    }
}

/// The target object's API and name, for the claim's GET and PATCH.
enum ObjectApi {
    ConfigMap(Api<ConfigMap>, String),
    FeatureFlag(Api<DynamicObject>, String),
}

impl ObjectApi {
    fn of(client: &kube::Client, rollout: &Rollout) -> Option<Self> {
        let namespace = namespace_of(rollout);
        match targets::object_of(&rollout.spec.target)? {
            TargetObject::ConfigMap { name } => Some(Self::ConfigMap(
                Api::namespaced(client.clone(), &namespace),
                name,
            )),
            TargetObject::FeatureFlag { name } => Some(Self::FeatureFlag(
                Api::namespaced_with(client.clone(), &namespace, &featureflag::resource()),
                name,
            )),
            TargetObject::Webhook { .. } => None,
        }
    }

    fn describe(&self, namespace: &str) -> String {
        match self {
            Self::ConfigMap(_, name) => format!("ConfigMap {namespace}/{name}"),
            Self::FeatureFlag(_, name) => format!("FeatureFlag {namespace}/{name}"),
        }
    }

    async fn metadata(&self) -> Result<Option<ObjectMeta>, kube::Error> {
        let found = match self {
            Self::ConfigMap(api, name) => api.get_metadata_opt(name).await?.map(|m| m.metadata),
            Self::FeatureFlag(api, name) => api.get_metadata_opt(name).await?.map(|m| m.metadata),
        };
        Ok(found)
    }

    async fn patch(&self, patch: &serde_json::Value) -> Result<(), kube::Error> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        match self {
            Self::ConfigMap(api, name) => {
                api.patch_metadata(name, &params, &Patch::Merge(patch))
                    .await?;
            }
            Self::FeatureFlag(api, name) => {
                api.patch_metadata(name, &params, &Patch::Merge(patch))
                    .await?;
            }
        }
        Ok(())
    }
}

/// Reads who owns `rollout`'s target (a metadata GET of the object). An owner named by the
/// annotation is looked up in the Rollout watch cache `rollouts`: it counts only while it is
/// there with the same uid and has not finished.
pub(super) async fn check(
    client: &kube::Client,
    rollouts: Option<&Store<Rollout>>,
    rollout: &Rollout,
) -> Result<Ownership, ClaimError> {
    let (Some(object), Some(key)) = (
        ObjectApi::of(client, rollout),
        owner_annotation(&rollout.spec.target),
    ) else {
        return Ok(Ownership::NotClaimable);
    };
    let namespace = namespace_of(rollout);
    let metadata = object.metadata().await.map_err(|source| ClaimError::Api {
        verb: "get",
        object: object.describe(&namespace),
        source,
    })?;
    let Some(metadata) = metadata else {
        return Ok(Ownership::NotClaimable);
    };
    let claim = metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(&key))
        .cloned();
    let free = Ownership::Free {
        version: metadata.resource_version.clone(),
    };
    let Some(claim) = claim else {
        return Ok(free);
    };
    if claim == owner_value(rollout) {
        return Ok(Ownership::Ours);
    }
    let mut parts = claim.splitn(3, '/');
    let (Some(owner_ns), Some(owner_name), Some(owner_uid)) =
        (parts.next(), parts.next(), parts.next())
    else {
        // Not a claim this controller wrote: overwrite it.
        return Ok(free);
    };
    let Some(rollouts) = rollouts else {
        return Ok(Ownership::Owned(format!(
            "{} carries the claim {key}: {claim} and no Rollout cache can tell whether that \
             owner has finished",
            object.describe(&namespace)
        )));
    };
    let owner = rollouts.get(&ObjectRef::new(owner_name).within(owner_ns));
    let live = owner.filter(|o| {
        o.metadata.uid.as_deref() == Some(owner_uid)
            && o.metadata.deletion_timestamp.is_none()
            && !o
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .is_some_and(|p| p.is_terminal())
    });
    match live {
        Some(owner) => {
            let phase = owner
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .map_or("new", |p| p.as_str());
            let part = targets::part_of(&rollout.spec.target).unwrap_or_default();
            Ok(Ownership::Owned(format!(
                "{part} in {} is owned by Rollout {owner_ns}/{owner_name} ({phase}); one flag \
                 or key has one unfinished Rollout at a time: this one starts once that one \
                 has finished or is deleted",
                object.describe(&namespace)
            )))
        }
        None => Ok(free),
    }
}

/// Writes `rollout`'s claim on its target object over `version` (a resourceVersion
/// precondition: a change since the check makes the API answer 409 and nothing is written).
pub(super) async fn claim(
    client: &kube::Client,
    rollout: &Rollout,
    version: Option<&str>,
) -> Result<(), ClaimError> {
    let (Some(object), Some(key)) = (
        ObjectApi::of(client, rollout),
        owner_annotation(&rollout.spec.target),
    ) else {
        return Ok(());
    };
    let namespace = namespace_of(rollout);
    let mut metadata = json!({"annotations": {key: owner_value(rollout)}});
    if let Some(version) = version {
        metadata["resourceVersion"] = json!(version);
    }
    info!(object = %object.describe(&namespace), "claiming the target");
    object
        .patch(&json!({ "metadata": metadata }))
        .await
        .map_err(|source| ClaimError::Api {
            verb: "patch",
            object: object.describe(&namespace),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(yaml: &str) -> Target {
        serde_saphyr::from_str(yaml).expect("a target")
    }

    #[test]
    fn short_flags_and_keys_name_the_annotation_directly() {
        let flagd = target("flagd: {configMap: flags, flag: passenger_favorites_matching}");
        assert_eq!(
            owner_annotation(&flagd).as_deref(),
            Some("rollgate.dev/owner.passenger_favorites_matching")
        );
        let ff = target("flagd: {featureFlag: flags, flag: new-checkout}");
        assert_eq!(
            owner_annotation(&ff).as_deref(),
            Some("rollgate.dev/owner.new-checkout")
        );
        let key = target("configMap: {name: pct, key: percent}");
        assert_eq!(
            owner_annotation(&key).as_deref(),
            Some("rollgate.dev/owner.percent")
        );
        let hook = target("webhook: {url: 'http://flags.kaviar/percent'}");
        assert_eq!(owner_annotation(&hook), None);
    }

    #[test]
    fn long_or_odd_names_are_hashed_into_a_valid_key() {
        let long = "f".repeat(200);
        let odd = [
            format!("flagd: {{configMap: flags, flag: {long}}}"),
            "flagd: {configMap: flags, flag: 'a:b/c'}".to_owned(),
            "flagd: {configMap: flags, key: other.json, flag: x}".to_owned(),
            "flagd: {configMap: flags, flag: '-x-'}".to_owned(),
        ];
        let mut keys = Vec::new();
        for yaml in &odd {
            let key = owner_annotation(&target(yaml)).expect("a key");
            let name = key.strip_prefix("rollgate.dev/").expect("the prefix");
            assert!(name.len() <= 63, "{key}");
            assert!(is_valid_name(name), "{key}");
            assert!(key.starts_with(OWNER_ANNOTATION_PREFIX), "{key}");
            keys.push(key);
        }
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), odd.len(), "distinct targets, distinct keys");
        // Two long flags that share their first characters still get distinct keys.
        let a = owner_annotation(&target(&format!("flagd: {{configMap: f, flag: {long}a}}")));
        let b = owner_annotation(&target(&format!("flagd: {{configMap: f, flag: {long}b}}")));
        assert_ne!(a, b);
    }

    #[test]
    fn the_hash_is_stable() {
        // FNV-1a's published test vector: a claim written today is read tomorrow.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
