//! The controller's access to targets: the live percent from the watch caches (a GET when the
//! object is not cached yet), writes and server-side dry runs through [`crate::targets`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::core::{DynamicObject, PartialObjectMeta};
use kube::runtime::reflector::{ObjectRef, Store};

use super::identity::Identities;
use crate::api::{Percent, Rollout, TargetKind};
use crate::net::GuardedClient;
use crate::targets::{
    self, TargetError, TargetObject, UrlCheck, WebhookHeaders, WriteIdentity, WriteMode,
    WriteOutcome, featureflag,
};

/// Reads and writes the percent of a Rollout's target.
pub trait TargetIo: Send + Sync {
    /// The target's live percent: `None` when the target is there but holds no percent yet
    /// (the key or flag is absent).
    fn read<'a>(
        &'a self,
        rollout: &'a Rollout,
    ) -> BoxFuture<'a, Result<Option<Percent>, TargetError>>;

    /// Writes `percent` (or, with [`WriteMode::DryRun`], asks whether it could).
    fn write<'a>(
        &'a self,
        rollout: &'a Rollout,
        percent: Percent,
        mode: WriteMode,
    ) -> BoxFuture<'a, Result<WriteOutcome, TargetError>>;

    /// The resourceVersion of the object the target lives in, when known (`None` for a
    /// webhook, or an object not seen yet): recorded before a final write, so a restarted
    /// controller can tell whether anyone changed the target since.
    fn version<'a>(&'a self, rollout: &'a Rollout) -> BoxFuture<'a, Option<String>> {
        let _ = rollout;
        Box::pin(async { None })
    }
}

/// A target: its object (kind and name), namespace, and the flag or key inside it.
type TargetKey = (TargetObject, String, String);

/// The controller's writes per target (object + flag or key, not per object: Rollouts sharing
/// one flagd ConfigMap must not read each other's pending percent as their own): the cached
/// resourceVersion when it wrote, and the percent written.
type WrittenTargets = HashMap<TargetKey, (Option<String>, Percent)>;

/// The percents read from target objects: per target, the object's resourceVersion when read
/// and the percent it held. One small entry per target a Rollout names, whatever the objects
/// weigh.
type Contents = HashMap<TargetKey, (Option<String>, Option<Percent>)>;

/// Targets in the cluster. The controller watches managed ConfigMaps and FeatureFlags as
/// *metadata only* (their resourceVersions), so its memory does not grow with what a tenant
/// labels; content is fetched (GET) only for an object a Rollout names, and only when its
/// resourceVersion changed since the percent was last read.
pub struct KubeTargets {
    /// The client of each Rollout: its ServiceAccount's, or the controller's own.
    identities: Arc<Identities>,
    config_maps: Option<Store<PartialObjectMeta<ConfigMap>>>,
    feature_flags: Option<Store<PartialObjectMeta<DynamicObject>>>,
    /// Per target (object, namespace, flag or key): the cached resourceVersion when the
    /// controller last wrote it, and the percent written. While the cache still shows that
    /// version, it has not seen the write yet and the written percent is the live one.
    written: Mutex<WrittenTargets>,
    /// The percent each target held at the resourceVersion it was read at.
    contents: Mutex<Contents>,
    /// The operator's address guard for webhook targets: a client that checks resolved
    /// addresses and follows no redirect, with its policy (URLs are checked for the
    /// Rollout's namespace); `None` sends unguarded.
    webhook_guard: Option<GuardedClient>,
}

impl KubeTargets {
    /// Targets read through `client`, with the resourceVersions of these metadata caches
    /// when given.
    pub fn new(
        client: kube::Client,
        config_maps: Option<Store<PartialObjectMeta<ConfigMap>>>,
        feature_flags: Option<Store<PartialObjectMeta<DynamicObject>>>,
    ) -> Self {
        Self {
            identities: Arc::new(Identities::new(client)),
            config_maps,
            feature_flags,
            written: Mutex::new(HashMap::new()),
            contents: Mutex::new(HashMap::new()),
            webhook_guard: None,
        }
    }

    /// Secrets and targets are read and written as each Rollout's ServiceAccount, when
    /// `identities` gives it one; a refusal is remembered there for the reconcile.
    pub fn with_identities(mut self, identities: Arc<Identities>) -> Self {
        self.identities = identities;
        self
    }

    /// Remembers the percent `rollout`'s target holds in `config_map` (as read elsewhere, at
    /// its resourceVersion), so no GET is needed until the ConfigMap changes.
    pub fn remember_config_map(&self, rollout: &Rollout, config_map: &ConfigMap) {
        let namespace = namespace_of(rollout);
        if let (Some(key), Ok(live)) = (
            target_key(rollout, &namespace),
            targets::live_percent_from_configmap(config_map, &rollout.spec.target),
        ) {
            self.contents()
                .insert(key, (config_map.metadata.resource_version.clone(), live));
        }
    }

    /// The client `rollout` reads its Secrets and target through, and writes the target.
    fn client_for(&self, rollout: &Rollout) -> Result<kube::Client, TargetError> {
        self.identities
            .client_for(rollout)
            .map_err(|e| TargetError::Invalid(e.to_string()))
    }

    /// Webhook targets go through `guard`'s client after its policy accepts their URL for
    /// the Rollout's namespace (the operator's `--allow-address` policy), as gates do; the
    /// headers of a `headersSecret` travel over plain HTTP only when the policy allows
    /// insecure credentials.
    pub fn with_webhook_guard(mut self, guard: GuardedClient) -> Self {
        self.webhook_guard = Some(guard);
        self
    }

    /// `access` for a Rollout of `namespace`, sent through the webhook guard when there is one.
    fn guarded(&self, access: WebhookHeaders, namespace: &str) -> WebhookHeaders {
        match &self.webhook_guard {
            Some(guard) => {
                let policy = Arc::clone(guard.policy());
                let insecure = policy.allows_insecure_credentials();
                let namespace = namespace.to_owned();
                let check: UrlCheck = Arc::new(move |url| {
                    policy
                        .admit(url, Some(&namespace))
                        .map_err(|e| e.to_string())
                });
                access
                    .through(guard.http().clone(), check)
                    .allowing_insecure_credentials(insecure)
            }
            None => access,
        }
    }

    fn written(&self) -> std::sync::MutexGuard<'_, WrittenTargets> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn contents(&self) -> std::sync::MutexGuard<'_, Contents> {
        self.contents.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The watched object's resourceVersion (`Some(None)` for an object watched without
    /// one), or `None` when the object is not in the metadata cache.
    fn cached_version(&self, rollout: &Rollout, namespace: &str) -> Option<Option<String>> {
        match targets::object_of(&rollout.spec.target)? {
            TargetObject::ConfigMap { name } => {
                let store = self.config_maps.as_ref()?;
                let meta = store.get(&ObjectRef::new(&name).within(namespace))?;
                Some(meta.metadata.resource_version.clone())
            }
            TargetObject::FeatureFlag { name } => {
                let store = self.feature_flags.as_ref()?;
                let reference =
                    ObjectRef::new_with(&name, featureflag::resource()).within(namespace);
                let meta = store.get(&reference)?;
                Some(meta.metadata.resource_version.clone())
            }
            TargetObject::Webhook { .. } => None,
        }
    }

    /// GETs the target's object: its resourceVersion and the percent the target holds.
    async fn fetch(
        &self,
        rollout: &Rollout,
        namespace: &str,
    ) -> Result<(Option<String>, Option<Percent>), TargetError> {
        let target = &rollout.spec.target;
        match targets::object_of(target) {
            Some(TargetObject::ConfigMap { name }) => {
                let api: Api<ConfigMap> = Api::namespaced(self.client_for(rollout)?, namespace);
                let cm = targets::configmap_io::get(&api, namespace, &name).await?;
                let live = targets::live_percent_from_configmap(&cm, target)?;
                Ok((cm.metadata.resource_version, live))
            }
            Some(TargetObject::FeatureFlag { name }) => {
                let flagd = target.flagd.as_ref().ok_or_else(|| {
                    TargetError::Invalid("a FeatureFlag target needs flagd".into())
                })?;
                let api = targets::feature_flag_api(&self.client_for(rollout)?, namespace);
                let ff = featureflag::get(&api, namespace, &name).await?;
                let live = targets::live_percent_from_featureflag(&ff, flagd)?;
                Ok((ff.metadata.resource_version, live))
            }
            _ => Err(TargetError::Invalid(
                "the target does not live in a Kubernetes object".into(),
            )),
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
            return Ok(self.guarded(WebhookHeaders::none(), namespace));
        };
        let api: Api<Secret> = Api::namespaced(self.client_for(rollout)?, namespace);
        let object = format!("Secret {namespace}/{secret}");
        let found = api
            .get(secret)
            .await
            .map_err(|e| TargetError::from_kube("get", &object, e))?;
        WebhookHeaders::from_secret_data(&object, &found.data.unwrap_or_default())
            .map(|access| self.guarded(access, namespace))
    }

    async fn read_live(&self, rollout: &Rollout) -> Result<Option<Percent>, TargetError> {
        let namespace = namespace_of(rollout);
        if let Some(version) = self.cached_version(rollout, &namespace)
            && let Some(key) = target_key(rollout, &namespace)
        {
            if let Some((written_over, percent)) = self.written().get(&key).cloned()
                && written_over == version
            {
                return Ok(Some(percent));
            }
            if let Some((read_at, percent)) = self.contents().get(&key).cloned()
                && read_at == version
            {
                return Ok(percent);
            }
            let (read_at, percent) = self.fetch(rollout, &namespace).await?;
            self.contents().insert(key, (read_at, percent));
            return Ok(percent);
        }
        let headers = self.webhook_headers(rollout, &namespace).await?;
        let client = self.client_for(rollout)?;
        targets::read(&client, &namespace, &rollout.spec.target, &headers).await
    }

    async fn write_percent(
        &self,
        rollout: &Rollout,
        percent: Percent,
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
        let cached_version = self.cached_version(rollout, &namespace);
        let client = self.client_for(rollout)?;
        let outcome = targets::write(
            &client,
            &namespace,
            &rollout.spec.target,
            percent,
            mode,
            &headers,
        )
        .await?;
        if outcome == WriteOutcome::Written
            && let (Some(key), Some(version)) = (target_key(rollout, &namespace), cached_version)
        {
            self.written().insert(key, (version, percent));
        }
        Ok(outcome)
    }
}

impl TargetIo for KubeTargets {
    fn read<'a>(
        &'a self,
        rollout: &'a Rollout,
    ) -> BoxFuture<'a, Result<Option<Percent>, TargetError>> {
        Box::pin(async move {
            let read = self.read_live(rollout).await;
            if let Err(error) = &read {
                self.identities.record_target(rollout, error);
            }
            read
        })
    }

    fn write<'a>(
        &'a self,
        rollout: &'a Rollout,
        percent: Percent,
        mode: WriteMode,
    ) -> BoxFuture<'a, Result<WriteOutcome, TargetError>> {
        Box::pin(async move {
            let written = self.write_percent(rollout, percent, mode).await;
            if let Err(error) = &written {
                self.identities.record_target(rollout, error);
            }
            written
        })
    }

    fn version<'a>(&'a self, rollout: &'a Rollout) -> BoxFuture<'a, Option<String>> {
        let namespace = namespace_of(rollout);
        let version = self.cached_version(rollout, &namespace).flatten();
        Box::pin(async move { version })
    }
}

/// The key of `rollout`'s target in [`WrittenTargets`]; `None` for a webhook.
fn target_key(rollout: &Rollout, namespace: &str) -> Option<TargetKey> {
    let target = &rollout.spec.target;
    let object = targets::object_of(target)?;
    let part = targets::part_of(target)?;
    Some((object, namespace.to_owned(), part))
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
        let guard =
            GuardedClient::build(Arc::new(crate::net::AddressPolicy::default())).expect("a client");
        KubeTargets::new(client, None, None).with_webhook_guard(guard)
    }

    #[tokio::test]
    async fn webhook_targets_obey_the_operators_address_policy() {
        let targets = targets_refusing_every_url();
        for url in [
            "http://169.254.169.254/percent",
            "http://flagd.other-namespace:8080/percent",
            "http://attacker.com/percent",
        ] {
            let rollout = webhook_rollout(url);
            let read = targets.read(&rollout).await;
            assert!(
                matches!(read, Err(TargetError::AddressRefused { .. })),
                "{url}: {read:?}"
            );
        }
        let rollout = webhook_rollout("http://169.254.169.254/percent");
        let read = targets.read(&rollout).await;
        assert!(
            matches!(read, Err(TargetError::AddressRefused { .. })),
            "{read:?}"
        );
        let write = targets
            .write(&rollout, Percent::whole(5), WriteMode::Apply)
            .await;
        assert!(
            matches!(write, Err(TargetError::AddressRefused { .. })),
            "{write:?}"
        );
    }
}
