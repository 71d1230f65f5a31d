//! Deleted means gone (docs/design.md §4 rule 8): when the Rollout watch reports a deletion, the
//! controller forgets the Rollout at once: its metric series, its write memory and the
//! notifications it sent. There is no finalizer (nothing may block a namespace's deletion) and
//! kube-runtime's `Controller` does not reconcile a deleted object, so this watches the watch
//! stream itself. The target keeps the percent it holds.

use std::collections::HashSet;

use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;
use tracing::debug;

use super::context::Context;
use crate::api::Rollout;

/// Forgets the Rollout a watch event reports deleted; other events pass untouched. After a
/// relist (a watch that had to start over misses the deletions in between), every Rollout of
/// `scope` (a namespace, or all) that the new list no longer holds is forgotten too.
pub(super) fn observe(
    ctx: &Context,
    scope: Option<&str>,
    rollouts: &Store<Rollout>,
    event: &Event<Rollout>,
) {
    match event {
        Event::Delete(rollout) => forget(ctx, rollout),
        Event::InitDone => forget_missing(ctx, scope, rollouts),
        _ => {}
    }
}

/// Forgets the Rollouts of `scope` that `rollouts` (just relisted) no longer holds.
fn forget_missing(ctx: &Context, scope: Option<&str>, rollouts: &Store<Rollout>) {
    let present = |namespace: &str, name: &str| {
        rollouts
            .get(&ObjectRef::new(name).within(namespace))
            .is_some()
    };
    let in_scope = |namespace: &str| scope.is_none_or(|s| s == namespace);
    if let Some(metrics) = &ctx.metrics {
        for (namespace, name) in metrics.known_rollouts() {
            if in_scope(&namespace) && !present(&namespace, &name) {
                debug!(%namespace, %name, "gone after a relist: forgetting its series");
                metrics.forget_rollout(&namespace, &name);
            }
        }
    }
    let uids: HashSet<String> = rollouts
        .state()
        .iter()
        .filter_map(|r| r.metadata.uid.clone())
        .collect();
    let mut memory = ctx.memory();
    for key in memory.keys() {
        if !present(&key.0, &key.1) {
            memory.forget(&key, None);
        }
    }
    memory.retain_uids(|uid| uids.contains(uid));
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
    ctx.identities.forget(rollout);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::future::BoxFuture;
    use k8s_openapi::jiff::Timestamp;
    use kube::runtime::events::Reporter;
    use kube::runtime::reflector::store::Writer;

    use super::*;
    use crate::api::{Phase, RolloutStatus};
    use crate::controller::context::{AlwaysLeader, SystemClock};
    use crate::controller::observe::{GateObserver, GateReading};
    use crate::controller::recorder::Recorder;
    use crate::controller::target::KubeTargets;
    use crate::telemetry::Metrics;

    struct NoGates;

    impl GateObserver for NoGates {
        fn observe<'a>(
            &'a self,
            _rollout: &'a Rollout,
            _status: &'a RolloutStatus,
            _at: Timestamp,
        ) -> BoxFuture<'a, Vec<GateReading>> {
            Box::pin(async { Vec::new() })
        }
    }

    fn rollout(namespace: &str, name: &str, uid: &str) -> Rollout {
        let spec = serde_json::from_value(serde_json::json!({
            "target": {"configMap": {"name": "pct", "key": "percent"}},
            "stages": [{"percent": 1}]
        }))
        .expect("a spec");
        let mut r = Rollout::new(name, spec);
        r.metadata.namespace = Some(namespace.to_owned());
        r.metadata.uid = Some(uid.to_owned());
        r
    }

    fn context(metrics: &Metrics) -> Context {
        // No request is made: the mock's other half is dropped.
        let (service, _handle) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        let client = kube::Client::new(service, "default");
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "rollgate".into(),
                instance: None,
            },
        );
        Context::new(
            client.clone(),
            recorder,
            Arc::new(SystemClock),
            Arc::new(NoGates),
            Arc::new(KubeTargets::new(client, None, None)),
            Arc::new(AlwaysLeader),
        )
        .with_metrics(metrics.clone())
    }

    fn series(metrics: &Metrics) -> String {
        metrics.encode().expect("metrics encode")
    }

    #[tokio::test]
    async fn a_deletion_event_forgets_the_rollout_at_once() {
        let metrics = Metrics::new().expect("metrics");
        let ctx = context(&metrics);
        let gone = rollout("a", "gone", "u1");
        metrics.set_rollout(
            "a",
            "gone",
            Some(crate::api::Percent::whole(5)),
            Some(Phase::Progressing),
        );
        ctx.memory().confirm("u1", crate::api::Percent::whole(5));
        let store = Writer::<Rollout>::default().as_reader();
        observe(&ctx, None, &store, &Event::Delete(gone));
        assert!(!series(&metrics).contains("name=\"gone\""));
        assert!(!ctx.memory().confirmed("u1", crate::api::Percent::whole(5)));
    }

    #[tokio::test]
    async fn a_relist_forgets_what_it_no_longer_lists_in_its_scope_only() {
        let metrics = Metrics::new().expect("metrics");
        let ctx = context(&metrics);
        for (namespace, name) in [("a", "kept"), ("a", "missed"), ("b", "elsewhere")] {
            metrics.set_rollout(
                namespace,
                name,
                Some(crate::api::Percent::whole(5)),
                Some(Phase::Progressing),
            );
        }
        ctx.memory()
            .confirm("u-kept", crate::api::Percent::whole(5));
        ctx.memory()
            .confirm("u-missed", crate::api::Percent::whole(5));
        ctx.memory()
            .wrote_status(("a".into(), "missed".into()), Some("7".into()));
        let mut writer = Writer::<Rollout>::default();
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(rollout("a", "kept", "u-kept")));
        writer.apply_watcher_event(&Event::InitDone);
        let store = writer.as_reader();
        observe(&ctx, Some("a"), &store, &Event::InitDone);
        let text = series(&metrics);
        assert!(text.contains("name=\"kept\""), "{text}");
        assert!(!text.contains("name=\"missed\""), "{text}");
        assert!(
            text.contains("name=\"elsewhere\""),
            "another scope's rollouts are not this relist's to forget: {text}"
        );
        let memory = ctx.memory();
        assert!(memory.confirmed("u-kept", crate::api::Percent::whole(5)));
        assert!(!memory.confirmed("u-missed", crate::api::Percent::whole(5)));
        assert!(!memory.is_stale(&("a".into(), "missed".into()), Some("1")));
    }
}
