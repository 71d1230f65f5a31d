//! Deleted means gone (DESIGN §4 rule 8): when the Rollout watch reports a deletion, the
//! controller forgets the Rollout at once: its metric series, its write memory and the
//! notifications it sent. There is no finalizer (nothing may block a namespace's deletion) and
//! kube-runtime's `Controller` does not reconcile a deleted object, so this watches the watch
//! stream itself. The target keeps the percent it holds.

use kube::runtime::watcher::Event;
use tracing::debug;

use super::context::Context;
use crate::api::Rollout;

/// Forgets the Rollout a watch event reports deleted; other events pass untouched.
pub(super) fn observe(ctx: &Context, event: &Event<Rollout>) {
    if let Event::Delete(rollout) = event {
        forget(ctx, rollout);
    }
}

/// Forgets everything the controller keeps about `rollout`.
pub(super) fn forget(ctx: &Context, rollout: &Rollout) {
    let namespace = rollout.metadata.namespace.clone().unwrap_or_default();
    let name = rollout.metadata.name.clone().unwrap_or_default();
    let uid = rollout.metadata.uid.as_deref();
    debug!(%namespace, %name, "the Rollout was deleted: forgetting it");
    if let Some(metrics) = &ctx.metrics {
        metrics.forget_rollout(&namespace, &name);
    }
    if let (Some(notifier), Some(uid)) = (&ctx.notifier, uid) {
        notifier.forget(uid);
    }
    ctx.memory().forget(&(namespace, name), uid);
}
