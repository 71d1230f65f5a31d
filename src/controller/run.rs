//! Wiring: a kube-runtime `Controller` over Rollouts (in the namespaces asked, or all), fed
//! also by watches of the targets it manages (ConfigMaps labelled `rollgate.dev/managed`,
//! FeatureFlags when their CRD is installed), so a hand edit is seen at once as drift.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures_util::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube::core::{DynamicObject, PartialObjectMeta};
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tracing::{info, warn};

use super::context::Context;
use super::deleted;
use super::reconcile::{error_policy, flush_parked, flush_parked_at_shutdown, reconcile};
use crate::api::Rollout;
use crate::targets::{self, MANAGED_SELECTOR, TargetObject, featureflag};
use crate::telemetry::Readiness;

/// How often a scope asks whether its Rollout cache has synced.
const READY_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Namespaces to reconcile; empty means all.
    pub namespaces: Vec<String>,
    /// Reconciles at once.
    pub concurrency: u16,
    /// Marked synced once the Rollout cache has its first full list (`/readyz`).
    pub readiness: Option<Readiness>,
    /// `--default-service-account`: the ServiceAccount a Rollout without
    /// `spec.serviceAccountName` acts as (lockdown); `None` keeps the controller's identity.
    /// The contexts' [`Identities`](super::Identities) carry it out; `run` reports it.
    pub default_service_account: Option<String>,
}

/// Whether the OpenFeature Operator's FeatureFlag CRD is served (a missing CRD is not an
/// error: FeatureFlag targets are then read with GET, and pre-checks report them).
pub async fn feature_flags_installed(client: &kube::Client) -> bool {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &featureflag::resource());
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => true,
        Err(kube::Error::Api(status)) if status.code == 404 => false,
        Err(error) => {
            warn!(%error, "cannot tell whether the FeatureFlag CRD is installed; not watching FeatureFlags");
            false
        }
    }
}

/// Watches of one kind of object in the namespaces asked (all when none), merged, kept in
/// `writer`'s store; yields every object touched.
fn watch_into<K>(
    apis: Vec<Api<K>>,
    config: watcher::Config,
    writer: reflector::store::Writer<K>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let streams: Vec<_> = apis
        .into_iter()
        .map(|api| watcher(api, config.clone()).boxed())
        .collect();
    futures_util::stream::select_all(streams)
        .default_backoff()
        .modify(slim)
        .reflect(writer)
        .touched_objects()
}

/// The annotation `kubectl apply` keeps a whole copy of the object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what the controller never reads before an object enters a cache: `managedFields` and
/// `kubectl apply`'s copy of the object, often larger than the rest together. With tens of
/// thousands of Rollouts this is most of the cache's memory.
fn slim<K: kube::Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// One `Api` per namespace asked, or one for all namespaces.
fn apis<K>(namespaces: &[String], make: impl Fn(Option<&str>) -> Api<K>) -> Vec<Api<K>> {
    if namespaces.is_empty() {
        vec![make(None)]
    } else {
        namespaces.iter().map(|ns| make(Some(ns))).collect()
    }
}

/// The Rollouts in `rollouts` whose target lives in `object` (a ConfigMap or FeatureFlag
/// named `name` in `namespace`).
fn referencing(
    rollouts: &Store<Rollout>,
    namespace: Option<String>,
    object: TargetObject,
) -> Vec<ObjectRef<Rollout>> {
    rollouts
        .state()
        .iter()
        .filter(|r| r.metadata.namespace == namespace)
        .filter(|r| targets::object_of(&r.spec.target).as_ref() == Some(&object))
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// Runs the controller until `shutdown` resolves; reconciles in flight finish first.
///
/// With several `--namespace`s, each namespace gets its own watches, caches and
/// kube-runtime `Controller` (a reflector store is filled by one watch: the first full list of
/// a second watch would replace the first one's objects), each with `concurrency` reconciles
/// at once and a context of its own from `make_context`. Readiness waits for every one.
pub async fn run<S>(
    client: kube::Client,
    config: ControllerConfig,
    make_context: impl Fn(
        Store<PartialObjectMeta<ConfigMap>>,
        Option<Store<PartialObjectMeta<DynamicObject>>>,
    ) -> Context,
    shutdown: S,
) where
    S: Future<Output = ()> + Clone + Send + Sync + 'static,
{
    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        let mut namespaces = config.namespaces.clone();
        namespaces.sort();
        namespaces.dedup();
        namespaces.into_iter().map(Some).collect()
    };
    match &config.default_service_account {
        Some(account) => info!(
            %account,
            "lockdown: Rollouts without spec.serviceAccountName act as this ServiceAccount of their namespace"
        ),
        None => info!(
            "Rollouts without spec.serviceAccountName act as the controller (no --default-service-account)"
        ),
    }
    let unsynced = Arc::new(AtomicUsize::new(scopes.len()));
    let feature_flags = feature_flags_installed(&client).await;
    if !feature_flags {
        info!("the FeatureFlag CRD is not installed: FeatureFlag targets are read with GET");
    }
    let runs = scopes.into_iter().map(|scope| {
        let synced = config.readiness.clone().map(|r| (r, Arc::clone(&unsynced)));
        run_scope(
            client.clone(),
            scope,
            feature_flags,
            config.concurrency,
            synced,
            &make_context,
            shutdown.clone(),
        )
    });
    futures_util::future::join_all(runs).await;
}

/// Marks the controller ready once the last of its scopes has synced its Rollout cache.
fn scope_synced(synced: &Option<(Readiness, Arc<AtomicUsize>)>) {
    if let Some((readiness, unsynced)) = synced
        && unsynced.fetch_sub(1, Ordering::AcqRel) == 1
    {
        readiness.set_synced(true);
        info!("the Rollout cache is synced");
    }
}

/// One controller over the Rollouts of one namespace (`Some`) or of all (`None`).
async fn run_scope(
    client: kube::Client,
    scope: Option<String>,
    feature_flags: bool,
    concurrency: u16,
    synced: Option<(Readiness, Arc<AtomicUsize>)>,
    make_context: &impl Fn(
        Store<PartialObjectMeta<ConfigMap>>,
        Option<Store<PartialObjectMeta<DynamicObject>>>,
    ) -> Context,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let namespaces: Vec<String> = scope.into_iter().collect();
    let namespaces = &namespaces;
    let managed = watcher::Config::default().labels(MANAGED_SELECTOR);
    let (cm_reader, cm_writer) = reflector::store::<PartialObjectMeta<ConfigMap>>();
    // Managed targets are watched as metadata only (`Api<PartialObjectMeta<_>>` asks for
    // PartialObjectMetadata): memory holds their resourceVersions, never their content, however
    // large or many the labelled objects are (issue 11, rule 9).
    let cm_apis: Vec<Api<PartialObjectMeta<ConfigMap>>> = apis(namespaces, |ns| match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    });
    let cm_stream = watch_into(cm_apis, managed.clone(), cm_writer);

    let ff = if feature_flags {
        let resource = featureflag::resource();
        let ff_writer = reflector::store::Writer::new(resource.clone());
        let ff_reader = ff_writer.as_reader();
        let ff_apis: Vec<Api<PartialObjectMeta<DynamicObject>>> = apis(namespaces, |ns| match ns {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        });
        Some((ff_reader, watch_into(ff_apis, managed.clone(), ff_writer)))
    } else {
        None
    };
    let (rollout_reader, rollout_writer) = reflector::store::<Rollout>();
    let ctx = Arc::new(
        make_context(cm_reader, ff.as_ref().map(|(r, _)| r.clone()))
            .with_rollouts(rollout_reader.clone()),
    );

    // Parked routine status writes go out as the API budget allows (see `parked.rs`).
    let flusher = tokio::spawn(flush_parked(Arc::clone(&ctx)));

    let rollout_apis = apis(namespaces, |ns| match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    });
    let deletions = Arc::clone(&ctx);
    let relisted = rollout_reader.clone();
    let watched = namespaces.first().cloned();
    let rollout_streams: Vec<_> = rollout_apis
        .into_iter()
        .map(|api| watcher(api, watcher::Config::default().any_semantic()).boxed())
        .collect();
    let rollout_stream = futures_util::stream::select_all(rollout_streams)
        .default_backoff()
        .modify(slim)
        .reflect(rollout_writer)
        .inspect_ok(move |event| {
            deleted::observe(&deletions, watched.as_deref(), &relisted, event);
        })
        .touched_objects();
    // The watch event of the controller's own status write is no reason to reconcile again:
    // a Pending rollout then waits out its backoff whatever its status says. Spec,
    // annotation, label, deletion and foreign status changes pass (see `trigger.rs`).
    let own = Arc::clone(&ctx);
    let rollout_stream = rollout_stream.filter(move |event| {
        let pass = event
            .as_ref()
            .map_or(true, |rollout| own.should_reconcile(rollout));
        std::future::ready(pass)
    });
    // The scope counts as synced at its cache's first full list, or at its first reconcile
    // (the controller reconciles only from a synced cache), whichever is seen first.
    let counted = Arc::new(AtomicBool::new(false));
    let mark_synced = move || {
        if !counted.swap(true, Ordering::AcqRel) {
            scope_synced(&synced);
        }
    };
    {
        let reader = rollout_reader.clone();
        let mark_synced = mark_synced.clone();
        // The store's readiness is a one-shot channel that wakes one waiter only, and the
        // controller itself waits on it too: ask again every half second rather than wait once.
        tokio::spawn(async move {
            loop {
                match tokio::time::timeout(READY_POLL, reader.wait_until_ready()).await {
                    Ok(Ok(())) => break mark_synced(),
                    Ok(Err(_)) => break,
                    Err(_) => {}
                }
            }
        });
    }
    let flushed = Arc::clone(&ctx);
    let mut controller = Controller::for_stream(rollout_stream, rollout_reader.clone())
        .with_config(controller::Config::default().concurrency(concurrency));
    let for_cm = rollout_reader.clone();
    controller = controller.watches_stream(cm_stream, move |cm: PartialObjectMeta<ConfigMap>| {
        let name = cm.metadata.name.clone().unwrap_or_default();
        referencing(
            &for_cm,
            cm.metadata.namespace.clone(),
            TargetObject::ConfigMap { name },
        )
    });
    if let Some((_, stream)) = ff {
        let for_ff = rollout_reader.clone();
        controller = controller.watches_stream_with(
            stream,
            move |ff: PartialObjectMeta<DynamicObject>| {
                let name = ff.metadata.name.clone().unwrap_or_default();
                referencing(
                    &for_ff,
                    ff.metadata.namespace.clone(),
                    TargetObject::FeatureFlag { name },
                )
            },
            featureflag::resource(),
        );
    }
    controller
        .graceful_shutdown_on(shutdown)
        .run(
            move |rollout, ctx| {
                mark_synced();
                reconcile(rollout, ctx)
            },
            error_policy,
            ctx,
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!(%error, "controller");
            }
        })
        .await;
    // Reconciles are done; the Lease is still held: write what is parked.
    flusher.abort();
    flush_parked_at_shutdown(&flushed).await;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    use super::*;
    use crate::api::RolloutSpec;

    #[test]
    fn slim_drops_managed_fields_and_the_last_applied_copy_and_nothing_else() {
        let spec: RolloutSpec = serde_saphyr::from_str(
            "target: {configMap: {name: c, key: k}}\nstages: [{percent: 1}]\n",
        )
        .expect("a plan");
        let mut rollout = Rollout::new("r", spec.clone());
        rollout.metadata.namespace = Some("ns".into());
        rollout.metadata.uid = Some("u-1".into());
        rollout.metadata.generation = Some(3);
        rollout.metadata.resource_version = Some("42".into());
        rollout.metadata.labels = Some(BTreeMap::from([("app".into(), "a".into())]));
        rollout.metadata.annotations = Some(BTreeMap::from([
            (LAST_APPLIED.into(), "{\"kind\":\"Rollout\"}".into()),
            ("rollgate.dev/action".into(), "pause".into()),
        ]));
        rollout.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("kubectl-client-side-apply".into()),
            operation: Some("Update".into()),
            ..ManagedFieldsEntry::default()
        }]);
        let mut slimmed = rollout.clone();
        slim(&mut slimmed);

        assert_eq!(slimmed.metadata.managed_fields, None);
        let annotations = slimmed.metadata.annotations.clone().unwrap_or_default();
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert_eq!(
            annotations.get("rollgate.dev/action").map(String::as_str),
            Some("pause"),
            "the annotations the controller reads stay"
        );
        // Everything else is as it was.
        let mut expected = rollout;
        expected.metadata.managed_fields = None;
        expected.metadata.annotations = Some(annotations);
        assert_eq!(slimmed.metadata, expected.metadata);
        assert_eq!(slimmed.spec, spec);
    }
}
