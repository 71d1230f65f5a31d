//! Reading and writing the ConfigMaps a target names: a flagd definition in a key, or a
//! plain key holding the percent.
//!
//! Writes are JSON merge patches under the field manager `rollgate` that set the one key and
//! the label `rollgate.dev/managed: "true"` (the controller watches managed ConfigMaps by that
//! label). Why not server-side apply:
//!
//! - a flagd key is one JSON text holding every flag, rewritten from the copy just read. The
//!   patch carries that copy's `metadata.resourceVersion`, so a concurrent edit (a person, or
//!   another Rollout rolling out another flag of the same document) makes the API server
//!   answer 409 and nothing is clobbered; the caller reads again and retries. A forced apply
//!   would silently overwrite that edit.
//! - two Rollouts may keep their percents in different keys of one ConfigMap. Under one field
//!   manager, an apply that names only its own key removes the keys the same manager applied
//!   before — each Rollout would delete the other's key. A merge patch changes only what it
//!   names.
//! - a merge patch of a ConfigMap that was deleted fails with 404 instead of recreating it
//!   half-filled.
//!
//! A plain key carries the resourceVersion too (fencing, docs/design.md §8): a write based on a copy
//! that is no longer current — a hand edit, or a replica that lost the Lease writing after
//! another one — is refused with 409 instead of landing. Both are idempotent: no request when
//! the key already holds the percent and the label is set (except in [`WriteMode::DryRun`],
//! which always asks the API server).

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tracing::debug;

use super::flagd::{self, DocumentEdit};
use super::{
    FIELD_MANAGER, MANAGED_LABEL, TargetError, WriteMode, WriteOutcome, configmap, is_managed,
};
use crate::api::{FlagdTarget, Percent};

/// What to find in a ConfigMap.
#[derive(Clone, Copy, Debug)]
pub enum ConfigMapContent<'a> {
    /// A flag in the flagd definition under the target's key.
    Flagd(&'a FlagdTarget),
    /// A percent as decimal text under `key`.
    Percent {
        /// The key.
        key: &'a str,
    },
}

impl ConfigMapContent<'_> {
    fn key(&self) -> &str {
        match self {
            ConfigMapContent::Flagd(target) => &target.key,
            ConfigMapContent::Percent { key } => key,
        }
    }
}

/// `ConfigMap <namespace>/<name>`, for messages.
pub fn object_name(namespace: &str, name: &str) -> String {
    format!("ConfigMap {namespace}/{name}")
}

/// Where in a ConfigMap the content is, for messages.
pub fn place(namespace: &str, name: &str, content: ConfigMapContent<'_>) -> String {
    match content {
        ConfigMapContent::Flagd(target) => format!(
            "{} key {} flag {}",
            object_name(namespace, name),
            target.key,
            target.flag
        ),
        ConfigMapContent::Percent { key } => {
            format!("{} key {key}", object_name(namespace, name))
        }
    }
}

/// The percent a ConfigMap holds: `None` when the key (or, for flagd, the flag) is absent.
pub fn live_percent(
    config_map: &ConfigMap,
    content: ConfigMapContent<'_>,
) -> Result<Option<Percent>, TargetError> {
    let namespace = config_map.metadata.namespace.as_deref().unwrap_or_default();
    let name = config_map.metadata.name.as_deref().unwrap_or_default();
    let place = || place(namespace, name, content);
    let Some(text) = value_of(config_map, content.key(), &place)? else {
        return Ok(None);
    };
    match content {
        ConfigMapContent::Flagd(target) => {
            flagd::read_percent(text, target).map_err(|e| e.at(place()))
        }
        ConfigMapContent::Percent { .. } => {
            configmap::parse_percent(text)
                .map(Some)
                .map_err(|reason| TargetError::Unreadable {
                    place: place(),
                    reason,
                })
        }
    }
}

/// Reads the ConfigMap `name` and the percent it holds.
pub async fn read(
    api: &Api<ConfigMap>,
    namespace: &str,
    name: &str,
    content: ConfigMapContent<'_>,
) -> Result<Option<Percent>, TargetError> {
    let config_map = get(api, namespace, name).await?;
    live_percent(&config_map, content)
}

/// Reads the ConfigMap `name`, then writes `percent` into it (see the module documentation).
pub async fn write(
    api: &Api<ConfigMap>,
    namespace: &str,
    name: &str,
    content: ConfigMapContent<'_>,
    percent: Percent,
    mode: WriteMode,
) -> Result<WriteOutcome, TargetError> {
    let current = get(api, namespace, name).await?;
    write_from(api, &current, content, percent, mode).await
}

/// Writes `percent` into a ConfigMap given as last read (for example from a watch cache):
/// a flagd write is based on that copy and fails with [`TargetError::Conflict`] when the
/// ConfigMap changed since.
pub async fn write_from(
    api: &Api<ConfigMap>,
    current: &ConfigMap,
    content: ConfigMapContent<'_>,
    percent: Percent,
    mode: WriteMode,
) -> Result<WriteOutcome, TargetError> {
    let namespace = current.metadata.namespace.as_deref().unwrap_or_default();
    let name = current.metadata.name.as_deref().unwrap_or_default();
    let place = || place(namespace, name, content);
    let key = content.key();
    let existing = value_of(current, key, &place)?;
    let Some(resource_version) = current.metadata.resource_version.as_deref() else {
        return Err(TargetError::Unreadable {
            place: place(),
            reason: "the ConfigMap as read has no resourceVersion to write against".into(),
        });
    };
    let metadata = json!({"resourceVersion": resource_version, "labels": {MANAGED_LABEL: "true"}});
    let new_text = match content {
        ConfigMapContent::Flagd(target) => {
            let edit =
                flagd::write_percent(existing, target, percent).map_err(|e| e.at(place()))?;
            match edit {
                DocumentEdit::Unchanged => None,
                DocumentEdit::Changed(text) => Some(text),
            }
        }
        ConfigMapContent::Percent { .. } => {
            if percent > Percent::HUNDRED {
                return Err(TargetError::Unwritable {
                    place: place(),
                    reason: format!("percent {percent} is above 100"),
                });
            }
            let text = configmap::format_percent(percent);
            (existing != Some(text.as_str())).then_some(text)
        }
    };
    let managed = is_managed(&current.metadata);
    if mode == WriteMode::Apply && new_text.is_none() && managed {
        debug!(target_place = %place(), %percent, "target already holds the percent");
        return Ok(WriteOutcome::Unchanged);
    }
    let mut patch = json!({"metadata": metadata});
    if let Some(text) = new_text {
        patch["data"] = json!({ key: text });
    }
    let params = PatchParams {
        dry_run: mode == WriteMode::DryRun,
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Merge(&patch))
        .await
        .map_err(|e| TargetError::from_kube("patch", &object_name(namespace, name), e))?;
    debug!(target_place = %place(), %percent, ?mode, "wrote target");
    Ok(match mode {
        WriteMode::Apply => WriteOutcome::Written,
        WriteMode::DryRun => WriteOutcome::Checked,
    })
}

/// Gets the ConfigMap `name` (its content and resourceVersion).
pub async fn get(
    api: &Api<ConfigMap>,
    namespace: &str,
    name: &str,
) -> Result<ConfigMap, TargetError> {
    api.get(name)
        .await
        .map_err(|e| TargetError::from_kube("get", &object_name(namespace, name), e))
}

/// The text under `key`: `None` when absent; an error when it is binary data.
fn value_of<'a>(
    config_map: &'a ConfigMap,
    key: &str,
    place: &dyn Fn() -> String,
) -> Result<Option<&'a str>, TargetError> {
    if let Some(text) = config_map.data.as_ref().and_then(|d| d.get(key)) {
        return Ok(Some(text.as_str()));
    }
    if config_map
        .binary_data
        .as_ref()
        .is_some_and(|d| d.contains_key(key))
    {
        return Err(TargetError::Unreadable {
            place: place(),
            reason: "the key is in binaryData; rollgate reads and writes text under data".into(),
        });
    }
    Ok(None)
}
