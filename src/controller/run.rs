//! Wiring: a kube-runtime `Controller` over Rollouts (in the namespaces asked, or all), fed
//! also by watches of the targets it manages (ConfigMaps labelled `rollgate.dev/managed`,
//! FeatureFlags when their CRD is installed), so a hand edit is seen at once as drift.

use std::future::Future;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube::core::DynamicObject;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tracing::{info, warn};

use super::context::Context;
use super::reconcile::{error_policy, reconcile};
use crate::api::Rollout;
use crate::targets::{self, MANAGED_SELECTOR, TargetObject, featureflag};
use crate::telemetry::Readiness;

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Namespaces to reconcile; empty means all.
    pub namespaces: Vec<String>,
    /// Reconciles at once.
    pub concurrency: u16,
    /// Marked synced once the Rollout cache has its first full list (`/readyz`).
    pub readiness: Option<Readiness>,
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
pub async fn run(
    client: kube::Client,
    config: ControllerConfig,
    make_context: impl FnOnce(Store<ConfigMap>, Option<Store<DynamicObject>>) -> Context,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let namespaces = &config.namespaces;
    let managed = watcher::Config::default().labels(MANAGED_SELECTOR);
    let (cm_reader, cm_writer) = reflector::store::<ConfigMap>();
    let cm_apis = apis(namespaces, |ns| match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    });
    let cm_stream = watch_into(cm_apis, managed.clone(), cm_writer);

    let ff = if feature_flags_installed(&client).await {
        let resource = featureflag::resource();
        let ff_writer = reflector::store::Writer::new(resource.clone());
        let ff_reader = ff_writer.as_reader();
        let ff_apis = apis(namespaces, |ns| match ns {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        });
        Some((ff_reader, watch_into(ff_apis, managed.clone(), ff_writer)))
    } else {
        info!("the FeatureFlag CRD is not installed: FeatureFlag targets are read with GET");
        None
    };
    let ctx = Arc::new(make_context(cm_reader, ff.as_ref().map(|(r, _)| r.clone())));

    let (rollout_reader, rollout_writer) = reflector::store::<Rollout>();
    let rollout_apis = apis(namespaces, |ns| match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    });
    let rollout_stream = watch_into(
        rollout_apis,
        watcher::Config::default().any_semantic(),
        rollout_writer,
    );
    if let Some(readiness) = config.readiness.clone() {
        let reader = rollout_reader.clone();
        tokio::spawn(async move {
            if reader.wait_until_ready().await.is_ok() {
                readiness.set_synced(true);
                info!("the Rollout cache is synced");
            }
        });
    }
    let synced = config.readiness.clone();
    let mut controller = Controller::for_stream(rollout_stream, rollout_reader.clone())
        .with_config(controller::Config::default().concurrency(config.concurrency));
    let for_cm = rollout_reader.clone();
    controller = controller.watches_stream(cm_stream, move |cm: ConfigMap| {
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
            move |ff: DynamicObject| {
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
                // The controller reconciles only once its Rollout cache is synced.
                if let Some(readiness) = &synced {
                    readiness.set_synced(true);
                }
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
}
