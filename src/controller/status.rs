//! Writing a Rollout's status: server-side apply under the field manager `rollgate` to the
//! status subresource, guarded by the resourceVersion the decision was made on (a 409 means
//! the Rollout changed meanwhile: decide again on the new one, never on a stale copy).

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::FIELD_MANAGER;
use crate::api::{Rollout, RolloutStatus};

/// Applies `status` to `rollout`'s status subresource; returns the Rollout as written.
pub(super) async fn apply(
    api: &Api<Rollout>,
    rollout: &Rollout,
    status: &RolloutStatus,
) -> Result<Rollout, kube::Error> {
    let name = rollout.metadata.name.as_deref().unwrap_or_default();
    let version = rollout.metadata.resource_version.as_deref();
    apply_at(api, name, version, status).await
}

/// Applies `status` to the Rollout `name`, guarded by its resourceVersion `version`.
pub(super) async fn apply_at(
    api: &Api<Rollout>,
    name: &str,
    version: Option<&str>,
    status: &RolloutStatus,
) -> Result<Rollout, kube::Error> {
    let mut metadata = json!({ "name": name });
    if let Some(version) = version {
        metadata["resourceVersion"] = json!(version);
    }
    let patch = json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": metadata,
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(name, &params, &Patch::Apply(&patch)).await
}
