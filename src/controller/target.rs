//! The controller's access to targets: the live percent from the watch caches (a GET when the
//! object is not cached yet), writes and server-side dry runs through [`crate::targets`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::core::DynamicObject;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::{Rollout, TargetKind};
use crate::targets::{
    self, TargetError, TargetObject, UrlCheck, WebhookHeaders, WriteIdentity, WriteMode,
    WriteOutcome, featureflag,
};

/// Reads and writes the percent of a Rollout's target.
pub trait TargetIo: Send + Sync {
    /// The target's live percent: `None` when the target is there but holds no percent yet
    /// (the key or flag is absent).
    fn read<'a>(&'a self, rollout: &'a Rollout) -> BoxFuture<'a, Result<Option<u8>, TargetError>>;

    /// Writes `percent` (or, with [`WriteMode::DryRun`], asks whether it could).
    fn write<'a>(
        &'a self,
        rollout: &'a Rollout,
        percent: u8,
        mode: WriteMode,
    ) -> BoxFuture<'a, Result<WriteOutcome, TargetError>>;
}

/// The controller's writes per target object (kind and name, namespace): the cached
/// resourceVersion when it wrote, and the percent written.
type WrittenTargets = HashMap<(TargetObject, String), (Option<String>, u8)>;

/// A cached target: its resourceVersion and the live percent it holds.
type Cached = (Option<String>, Result<Option<u8>, TargetError>);

/// Targets in the cluster, read from the controller's watch caches of managed ConfigMaps and
/// FeatureFlags.
pub struct KubeTargets {
    client: kube::Client,
    config_maps: Option<Store<ConfigMap>>,
    feature_flags: Option<Store<DynamicObject>>,
    /// Per target object (kind, namespace, name): the cached resourceVersion when the
    /// controller last wrote it, and the percent written. While the cache still shows that
    /// version, it has not seen the write yet and the written percent is the live one.
    written: Mutex<WrittenTargets>,
    /// The operator's address guard for webhook targets: a client that checks resolved
    /// addresses and follows no redirect, and the URL check; `None` sends unguarded.
    webhook_guard: Option<(reqwest::Client, UrlCheck)>,
}

impl KubeTargets {
    /// Targets read through `client`, from these caches when given.
    pub fn new(
        client: kube::Client,
        config_maps: Option<Store<ConfigMap>>,
        feature_flags: Option<Store<DynamicObject>>,
    ) -> Self {
        Self {
            client,
            config_maps,
            feature_flags,
            written: Mutex::new(HashMap::new()),
            webhook_guard: None,
        }
    }

    /// Webhook targets go through `client` after `check` accepts their URL (the operator's
    /// `--allow-address` policy), as gates do.
    pub fn with_webhook_guard(mut self, client: reqwest::Client, check: UrlCheck) -> Self {
        self.webhook_guard = Some((client, check));
        self
    }

    /// `access` sent through the webhook guard, when there is one.
    fn guarded(&self, access: WebhookHeaders) -> WebhookHeaders {
        match &self.webhook_guard {
            Some((client, check)) => access.through(client.clone(), Arc::clone(check)),
            None => access,
        }
    }

    fn written(&self) -> std::sync::MutexGuard<'_, WrittenTargets> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached copy's resourceVersion and live percent, when the object is cached.
    fn cached(&self, rollout: &Rollout, namespace: &str) -> Option<Cached> {
        let target = &rollout.spec.target;
        match targets::object_of(target)? {
            TargetObject::ConfigMap { name } => {
                let store = self.config_maps.as_ref()?;
                let cm = store.get(&ObjectRef::new(&name).within(namespace))?;
                let live = targets::live_percent_from_configmap(&cm, target);
                Some((cm.metadata.resource_version.clone(), live))
            }
            TargetObject::FeatureFlag { name } => {
                let store = self.feature_flags.as_ref()?;
                let flagd = target.flagd.as_ref()?;
                let reference =
                    ObjectRef::new_with(&name, featureflag::resource()).within(namespace);
                let ff = store.get(&reference)?;
                let live = targets::live_percent_from_featureflag(&ff, flagd);
                Some((ff.metadata.resource_version.clone(), live))
            }
            TargetObject::Webhook { .. } => None,
        }
    }

    async fn webhook_headers(
        &self,
        rollout: &Rollout,
        namespace: &str,
    ) -> Result<WebhookHeaders, TargetError> {
        let Some(TargetKind::Webhook(webhook)) = rollout.spec.target.kind() else {
            return Ok(WebhookHeaders::none());
        };
        let Some(secret) = &webhook.headers_secret else {
            return Ok(self.guarded(WebhookHeaders::none()));
        };
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let object = format!("Secret {namespace}/{secret}");
        let found = api
            .get(secret)
            .await
            .map_err(|e| TargetError::from_kube("get", &object, e))?;
        WebhookHeaders::from_secret_data(&object, &found.data.unwrap_or_default())
            .map(|access| self.guarded(access))
    }

    async fn read_live(&self, rollout: &Rollout) -> Result<Option<u8>, TargetError> {
        let namespace = namespace_of(rollout);
        if let Some((version, live)) = self.cached(rollout, &namespace) {
            if let Some(object) = targets::object_of(&rollout.spec.target)
                && let Some((written_over, percent)) =
                    self.written().get(&(object, namespace.clone())).cloned()
                && written_over == version
            {
                return Ok(Some(percent));
            }
            return live;
        }
        let headers = self.webhook_headers(rollout, &namespace).await?;
        targets::read(&self.client, &namespace, &rollout.spec.target, &headers).await
    }

    async fn write_percent(
        &self,
        rollout: &Rollout,
        percent: u8,
        mode: WriteMode,
    ) -> Result<WriteOutcome, TargetError> {
        let namespace = namespace_of(rollout);
        let mut headers = self.webhook_headers(rollout, &namespace).await?;
        if let Some(sequence) = rollout.status.as_ref().and_then(|s| s.target_sequence) {
            headers = headers.written_by(WriteIdentity {
                rollout: format!(
                    "{namespace}/{}",
                    rollout.metadata.name.as_deref().unwrap_or_default()
                ),
                uid: rollout.metadata.uid.clone().unwrap_or_default(),
                sequence,
            });
        }
        let cached_version = self.cached(rollout, &namespace).map(|(v, _)| v);
        let outcome = targets::write(
            &self.client,
            &namespace,
            &rollout.spec.target,
            percent,
            mode,
            &headers,
        )
        .await?;
        if outcome == WriteOutcome::Written
            && let (Some(object), Some(version)) =
                (targets::object_of(&rollout.spec.target), cached_version)
        {
            self.written()
                .insert((object, namespace), (version, percent));
        }
        Ok(outcome)
    }
}

impl TargetIo for KubeTargets {
    fn read<'a>(&'a self, rollout: &'a Rollout) -> BoxFuture<'a, Result<Option<u8>, TargetError>> {
        Box::pin(self.read_live(rollout))
    }

    fn write<'a>(
        &'a self,
        rollout: &'a Rollout,
        percent: u8,
        mode: WriteMode,
    ) -> BoxFuture<'a, Result<WriteOutcome, TargetError>> {
        Box::pin(self.write_percent(rollout, percent, mode))
    }
}

/// The Rollout's namespace (`default` for an object without one, which the API never sends).
pub(super) fn namespace_of(rollout: &Rollout) -> String {
    rollout
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook_rollout(url: &str) -> Rollout {
        let spec = serde_json::from_value(serde_json::json!({
            "target": {"webhook": {"url": url}},
            "stages": [{"percent": 1}]
        }))
        .expect("a valid spec");
        let mut rollout = Rollout::new("r", spec);
        rollout.metadata.namespace = Some("ns".to_owned());
        rollout
    }

    fn targets_refusing_every_url() -> KubeTargets {
        // No Kubernetes request is made for a webhook target without a headers Secret: the
        // mock's other half is dropped, so any request would fail loudly.
        let (service, _handle) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        let client = kube::Client::new(service, "ns");
        let refuse: UrlCheck = Arc::new(|url| Err(format!("{url} is not allowed")));
        KubeTargets::new(client, None, None).with_webhook_guard(reqwest::Client::new(), refuse)
    }

    #[tokio::test]
    async fn webhook_targets_obey_the_operators_address_policy() {
        let targets = targets_refusing_every_url();
        let rollout = webhook_rollout("http://169.254.169.254/percent");
        let read = targets.read(&rollout).await;
        assert!(
            matches!(read, Err(TargetError::AddressRefused { .. })),
            "{read:?}"
        );
        let write = targets.write(&rollout, 5, WriteMode::Apply).await;
        assert!(
            matches!(write, Err(TargetError::AddressRefused { .. })),
            "{write:?}"
        );
    }
}
