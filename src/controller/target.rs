//! The controller's access to targets: the live percent from the watch caches (a GET when the
//! object is not cached yet), writes and server-side dry runs through [`crate::targets`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::core::DynamicObject;
use kube::runtime::reflector::{ObjectRef, Store};

use super::identity::Identities;
use crate::api::{Percent, Rollout, TargetKind};
use crate::net::GuardedClient;
use crate::targets::{
    self, TargetError, TargetObject, UrlCheck, WebhookHeaders, WriteMode, WriteOutcome, featureflag,
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
}

/// The controller's writes per target object (kind and name, namespace): the cached
/// resourceVersion when it wrote, and the percent written.
type WrittenTargets = HashMap<(TargetObject, String), (Option<String>, Percent)>;

/// A cached target: its resourceVersion and the live percent it holds.
type Cached = (Option<String>, Result<Option<Percent>, TargetError>);

/// Targets in the cluster, read from the controller's watch caches of managed ConfigMaps and
/// FeatureFlags.
pub struct KubeTargets {
    /// The client of each Rollout: its ServiceAccount's, or the controller's own.
    identities: Arc<Identities>,
    config_maps: Option<Store<ConfigMap>>,
    feature_flags: Option<Store<DynamicObject>>,
    /// Per target object (kind, namespace, name): the cached resourceVersion when the
    /// controller last wrote it, and the percent written. While the cache still shows that
    /// version, it has not seen the write yet and the written percent is the live one.
    written: Mutex<WrittenTargets>,
    /// The operator's address guard for webhook targets: a client that checks resolved
    /// addresses and follows no redirect, with its policy (URLs are checked for the
    /// Rollout's namespace); `None` sends unguarded.
    webhook_guard: Option<GuardedClient>,
}

impl KubeTargets {
    /// Targets read through `client`, from these caches when given.
    pub fn new(
        client: kube::Client,
        config_maps: Option<Store<ConfigMap>>,
        feature_flags: Option<Store<DynamicObject>>,
    ) -> Self {
        Self {
            identities: Arc::new(Identities::new(client)),
            config_maps,
            feature_flags,
            written: Mutex::new(HashMap::new()),
            webhook_guard: None,
        }
    }

    /// Secrets and targets are read and written as each Rollout's ServiceAccount, when
    /// `identities` gives it one; a refusal is remembered there for the reconcile.
    pub fn with_identities(mut self, identities: Arc<Identities>) -> Self {
        self.identities = identities;
        self
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
        let headers = self.webhook_headers(rollout, &namespace).await?;
        let cached_version = self.cached(rollout, &namespace).map(|(v, _)| v);
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
