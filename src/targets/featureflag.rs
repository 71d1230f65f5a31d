//! Reading and writing a flag of an OpenFeature Operator `FeatureFlag`
//! (`core.openfeature.dev/v1beta1`, `spec.flagSpec.flags.<flag>`), where each flag is a
//! structured object rather than a JSON string.
//!
//! A write is a JSON merge patch of only that flag (its `targeting`, or the whole flag when it
//! is absent) plus the label `rollgate.dev/managed: "true"`, carrying the
//! `metadata.resourceVersion` it was computed from: a concurrent edit makes the API server
//! answer 409 ([`TargetError::Conflict`]) rather than being overwritten. No request when the
//! flag already has the percent and the label is set (except in [`WriteMode::DryRun`]).

use kube::api::{Api, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};
use tracing::debug;

use super::flagd;
use super::{FIELD_MANAGER, MANAGED_LABEL, TargetError, WriteMode, WriteOutcome, is_managed};
use crate::api::{FlagdTarget, Percent};

/// The OpenFeature Operator's API group.
pub const GROUP: &str = "core.openfeature.dev";
/// The version read and written.
pub const VERSION: &str = "v1beta1";
/// The kind.
pub const KIND: &str = "FeatureFlag";
/// The resource's plural name.
pub const PLURAL: &str = "featureflags";

/// The `FeatureFlag` resource, for `Api::namespaced_with` and watches.
pub fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), PLURAL)
}

/// `FeatureFlag <namespace>/<name>`, for messages.
pub fn object_name(namespace: &str, name: &str) -> String {
    format!("{KIND} {namespace}/{name}")
}

fn place(namespace: &str, name: &str, target: &FlagdTarget) -> String {
    format!("{} flag {}", object_name(namespace, name), target.flag)
}

/// The percent the target's flag has in a `FeatureFlag`: `None` when the flag is absent.
pub fn live_percent(
    feature_flag: &DynamicObject,
    target: &FlagdTarget,
) -> Result<Option<Percent>, TargetError> {
    let namespace = feature_flag
        .metadata
        .namespace
        .as_deref()
        .unwrap_or_default();
    let name = feature_flag.metadata.name.as_deref().unwrap_or_default();
    let place = || place(namespace, name, target);
    match flag_of(feature_flag, target).map_err(|reason| TargetError::Unreadable {
        place: place(),
        reason,
    })? {
        None => Ok(None),
        Some(flag) => flagd::flag_percent(flag, target).map_err(|e| e.at(place())),
    }
}

/// Reads the `FeatureFlag` `name` and the percent its flag has.
pub async fn read(
    api: &Api<DynamicObject>,
    namespace: &str,
    name: &str,
    target: &FlagdTarget,
) -> Result<Option<Percent>, TargetError> {
    let feature_flag = get(api, namespace, name).await?;
    live_percent(&feature_flag, target)
}

/// Reads the `FeatureFlag` `name`, then writes `percent` into its flag.
pub async fn write(
    api: &Api<DynamicObject>,
    namespace: &str,
    name: &str,
    target: &FlagdTarget,
    percent: Percent,
    mode: WriteMode,
) -> Result<WriteOutcome, TargetError> {
    let current = get(api, namespace, name).await?;
    write_from(api, &current, target, percent, mode).await
}

/// Writes `percent` into the flag of a `FeatureFlag` given as last read (for example from a
/// watch cache); [`TargetError::Conflict`] when it changed since.
pub async fn write_from(
    api: &Api<DynamicObject>,
    current: &DynamicObject,
    target: &FlagdTarget,
    percent: Percent,
    mode: WriteMode,
) -> Result<WriteOutcome, TargetError> {
    let namespace = current.metadata.namespace.as_deref().unwrap_or_default();
    let name = current.metadata.name.as_deref().unwrap_or_default();
    let place = || place(namespace, name, target);
    let existing = flag_of(current, target).map_err(|reason| TargetError::Unreadable {
        place: place(),
        reason,
    })?;
    let flag_patch =
        flagd::flag_merge_patch(existing, target, percent).map_err(|e| e.at(place()))?;
    if mode == WriteMode::Apply && flag_patch.is_none() && is_managed(&current.metadata) {
        debug!(target_place = %place(), %percent, "target already holds the percent");
        return Ok(WriteOutcome::Unchanged);
    }
    let Some(resource_version) = current.metadata.resource_version.as_deref() else {
        return Err(TargetError::Unreadable {
            place: place(),
            reason: "the FeatureFlag as read has no resourceVersion to write against".into(),
        });
    };
    let mut patch = json!({"metadata": {
        "resourceVersion": resource_version,
        "labels": {MANAGED_LABEL: "true"},
    }});
    if let Some(flag_patch) = flag_patch {
        patch["spec"] = json!({"flagSpec": {"flags": {target.flag.as_str(): flag_patch}}});
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

/// Gets the `FeatureFlag` `name` (its content and resourceVersion).
pub async fn get(
    api: &Api<DynamicObject>,
    namespace: &str,
    name: &str,
) -> Result<DynamicObject, TargetError> {
    api.get(name)
        .await
        .map_err(|e| TargetError::from_kube("get", &object_name(namespace, name), e))
}

/// `spec.flagSpec.flags.<flag>`: `None` when any step is absent; an error when a step is not
/// an object.
fn flag_of<'a>(
    feature_flag: &'a DynamicObject,
    target: &FlagdTarget,
) -> Result<Option<&'a Value>, String> {
    let mut node = &feature_flag.data;
    for (step, path) in [
        ("spec", "spec"),
        ("flagSpec", "spec.flagSpec"),
        ("flags", "spec.flagSpec.flags"),
    ] {
        match node.get(step) {
            None | Some(Value::Null) => return Ok(None),
            Some(next @ Value::Object(_)) => node = next,
            Some(_) => return Err(format!("{path} is not an object")),
        }
    }
    Ok(node.get(&target.flag))
}
