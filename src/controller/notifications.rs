//! Transition notifications: each transition this reconcile recorded in `status.history` is
//! announced to the Rollout's `spec.notifications` endpoints (URLs from Secrets, GET only)
//! and the controller's own. The notifier keys each by (uid, generation, transition, stage,
//! time), so a retried reconcile never sends one twice.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use tracing::{debug, warn};

use super::context::Context;
use super::target::namespace_of;
use crate::api::{HistoryKind, Rollout, RolloutStatus};
use crate::notify::{Notification, endpoints_from_spec};

/// Announces the transitions recorded at `now`.
pub(super) async fn send(ctx: &Context, rollout: &Rollout, status: &RolloutStatus, now: Timestamp) {
    let Some(notifier) = &ctx.notifier else {
        return;
    };
    let fresh: Vec<Notification> = status
        .history
        .iter()
        .filter(|e| e.at.0 == now && e.kind != HistoryKind::Checkpoint)
        .filter_map(|e| Notification::for_entry(rollout, status, e))
        .collect();
    if fresh.is_empty() {
        return;
    }
    let endpoints = if rollout.spec.notifications.is_empty() {
        Vec::new()
    } else {
        // Read as the rollout's ServiceAccount; a refusal only loses these endpoints.
        match ctx.identities.client_for(rollout) {
            Ok(client) => {
                let secrets: Api<Secret> = Api::namespaced(client, &namespace_of(rollout));
                let (endpoints, errors) =
                    endpoints_from_spec(&secrets, &rollout.spec.notifications).await;
                for error in errors {
                    warn!(%error, "a notification endpoint is unusable");
                }
                endpoints
            }
            Err(error) => {
                warn!(%error, "the rollout's notification endpoints cannot be read");
                Vec::new()
            }
        }
    };
    for notification in &fresh {
        for delivery in notifier.notify(notification, &endpoints).await {
            debug!(endpoint = %delivery.endpoint, outcome = delivery.outcome.as_str(), "notification");
        }
    }
}
