//! Targets: where a rollout's percent lives. Each reads the live percent and writes a new
//! one, idempotently (no write when the target already holds it).
//!
//! | target | object | read | write |
//! |---|---|---|---|
//! | `flagd.configMap` | a ConfigMap key holding a flagd definition | the flag's fractional split ([`flagd`]) | merge patch of the key, guarded by `resourceVersion` ([`configmap_io`]) |
//! | `flagd.featureFlag` | an OpenFeature Operator `FeatureFlag` | `spec.flagSpec.flags.<flag>` | merge patch of that flag, guarded by `resourceVersion` ([`featureflag`]) |
//! | `configMap` | a ConfigMap key holding the percent as text ([`configmap`]) | the key | merge patch of the key ([`configmap_io`]) |
//! | `webhook` | an HTTP endpoint | `GET` → `{"percent": N}` | `PUT` `{"percent": N}` ([`webhook`]) |
//!
//! Kubernetes writes use the field manager [`FIELD_MANAGER`] and set the label
//! [`MANAGED_LABEL`]`: "true"`, so the controller can watch just the ConfigMaps and
//! FeatureFlags it manages. [`WriteMode::DryRun`] asks the API server for a server-side dry
//! run (`dryRun=All`): the pre-check "the target exists and can be written".
//!
//! The controller reads live percents from its watch caches with
//! [`live_percent_from_configmap`] and [`live_percent_from_featureflag`], learns what to watch
//! with [`object_of`], and writes with [`write()`] (or reads without a cache with [`read()`]).

pub mod configmap;
pub mod configmap_io;
mod error;
pub mod featureflag;
pub mod flagd;
pub mod json_span;
pub mod webhook;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, ObjectMeta};
use kube::core::DynamicObject;

pub use configmap_io::ConfigMapContent;
pub use error::TargetError;
pub use webhook::{UrlCheck, WebhookAccess, WebhookHeaders, WriteIdentity};

use crate::api::{FlagdTarget, Percent, Target, TargetKind};

/// The field manager of every write to a target.
pub const FIELD_MANAGER: &str = "rollgate";

/// The label set on every ConfigMap and FeatureFlag rollgate writes, with the value `"true"`.
pub const MANAGED_LABEL: &str = "rollgate.dev/managed";

/// The label selector that picks the objects rollgate manages.
pub const MANAGED_SELECTOR: &str = "rollgate.dev/managed=true";

/// Whether to change the target or only ask the API server whether the change would be
/// accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// Write.
    Apply,
    /// Server-side dry run (`dryRun=All`): checks existence, RBAC and admission; changes
    /// nothing. Always sends the request, even when the target already holds the percent.
    DryRun,
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The target now holds the percent; it did not before (or was not labelled yet).
    Written,
    /// The target already held the percent: no request was made.
    Unchanged,
    /// A dry run was accepted; nothing changed.
    Checked,
}

/// The object a target lives in: what the controller watches and gets.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TargetObject {
    /// A ConfigMap in the Rollout's namespace.
    ConfigMap {
        /// Its name.
        name: String,
    },
    /// An OpenFeature Operator `FeatureFlag` in the Rollout's namespace
    /// ([`featureflag::resource`]).
    FeatureFlag {
        /// Its name.
        name: String,
    },
    /// An HTTP endpoint (nothing to watch: polled at checkpoints).
    Webhook {
        /// Its URL.
        url: String,
    },
}

/// The object `target` lives in, or `None` when the target does not set exactly one kind
/// (validation reports that).
pub fn object_of(target: &Target) -> Option<TargetObject> {
    match target.kind()? {
        TargetKind::Flagd(flagd) => match (&flagd.config_map, &flagd.feature_flag) {
            (Some(name), None) => Some(TargetObject::ConfigMap { name: name.clone() }),
            (None, Some(name)) => Some(TargetObject::FeatureFlag { name: name.clone() }),
            _ => None,
        },
        TargetKind::ConfigMap(c) => Some(TargetObject::ConfigMap {
            name: c.name.clone(),
        }),
        TargetKind::Webhook(w) => Some(TargetObject::Webhook { url: w.url.clone() }),
    }
}

/// What inside its object a target writes: the flag of a flagd target (`key/flag` for a
/// flagd definition in a ConfigMap key other than the default), or the key of a plain
/// ConfigMap target. Two targets in one object with different parts never touch each other's
/// percent; `None` for a webhook target (nothing inside an object).
pub fn part_of(target: &Target) -> Option<String> {
    match target.kind()? {
        TargetKind::Flagd(flagd)
            if flagd.config_map.is_some() && flagd.key != DEFAULT_FLAGD_KEY =>
        {
            Some(format!("{}/{}", flagd.key, flagd.flag))
        }
        TargetKind::Flagd(flagd) => Some(flagd.flag.clone()),
        TargetKind::ConfigMap(c) => Some(c.key.clone()),
        TargetKind::Webhook(_) => None,
    }
}

/// The ConfigMap key a flagd definition is read from when the spec names none.
pub const DEFAULT_FLAGD_KEY: &str = "flags.flagd.json";

/// The live percent of a ConfigMap target (flagd in a ConfigMap, or a plain key) from a
/// ConfigMap as watched: `None` when the key or flag is absent. An error for a target that
/// does not live in a ConfigMap.
pub fn live_percent_from_configmap(
    config_map: &ConfigMap,
    target: &Target,
) -> Result<Option<Percent>, TargetError> {
    configmap_io::live_percent(config_map, configmap_content(target)?)
}

/// The live percent of a flagd target's flag from a `FeatureFlag` as watched: `None` when the
/// flag is absent.
pub fn live_percent_from_featureflag(
    feature_flag: &DynamicObject,
    target: &FlagdTarget,
) -> Result<Option<Percent>, TargetError> {
    featureflag::live_percent(feature_flag, target)
}

/// Reads the live percent of `target` in `namespace` from the API server (or, for a webhook
/// target, through `webhook`): `None` when the target is there but holds no percent yet (the
/// key or flag is absent).
pub async fn read(
    client: &Client,
    namespace: &str,
    target: &Target,
    webhook: &WebhookAccess,
) -> Result<Option<Percent>, TargetError> {
    match located(target)? {
        Located::ConfigMap(name, content) => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
            configmap_io::read(&api, namespace, name, content).await
        }
        Located::FeatureFlag(name, flagd) => {
            let api = feature_flag_api(client, namespace);
            featureflag::read(&api, namespace, name, flagd).await
        }
        Located::Webhook(target) => webhook::read(target, webhook).await,
    }
}

/// Writes `percent` to `target` in `namespace`, reading it first; no write when it already
/// holds the percent. A flagd write that races another change fails with
/// [`TargetError::Conflict`]: read again and retry.
pub async fn write(
    client: &Client,
    namespace: &str,
    target: &Target,
    percent: Percent,
    mode: WriteMode,
    webhook: &WebhookAccess,
) -> Result<WriteOutcome, TargetError> {
    if percent > Percent::HUNDRED {
        return Err(TargetError::Invalid(format!(
            "percent {percent} is above 100"
        )));
    }
    match located(target)? {
        Located::ConfigMap(name, content) => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
            configmap_io::write(&api, namespace, name, content, percent, mode).await
        }
        Located::FeatureFlag(name, flagd) => {
            let api = feature_flag_api(client, namespace);
            featureflag::write(&api, namespace, name, flagd, percent, mode).await
        }
        Located::Webhook(target) => webhook::write(target, webhook, percent, mode).await,
    }
}

/// An `Api` for `FeatureFlag`s in `namespace`.
pub fn feature_flag_api(client: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &featureflag::resource())
}

/// Whether an object carries [`MANAGED_LABEL`]`: "true"`.
pub fn is_managed(metadata: &ObjectMeta) -> bool {
    metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(MANAGED_LABEL))
        .is_some_and(|value| value == "true")
}

enum Located<'a> {
    ConfigMap(&'a str, ConfigMapContent<'a>),
    FeatureFlag(&'a str, &'a FlagdTarget),
    Webhook(&'a crate::api::WebhookTarget),
}

fn located(target: &Target) -> Result<Located<'_>, TargetError> {
    let invalid = || {
        TargetError::Invalid(
            "target must set exactly one of flagd, configMap and webhook \
             (and flagd exactly one of configMap and featureFlag)"
                .into(),
        )
    };
    match target.kind().ok_or_else(invalid)? {
        TargetKind::Flagd(flagd) => match (&flagd.config_map, &flagd.feature_flag) {
            (Some(name), None) => Ok(Located::ConfigMap(name, ConfigMapContent::Flagd(flagd))),
            (None, Some(name)) => Ok(Located::FeatureFlag(name, flagd)),
            _ => Err(invalid()),
        },
        TargetKind::ConfigMap(c) => Ok(Located::ConfigMap(
            &c.name,
            ConfigMapContent::Percent { key: &c.key },
        )),
        TargetKind::Webhook(w) => Ok(Located::Webhook(w)),
    }
}

fn configmap_content(target: &Target) -> Result<ConfigMapContent<'_>, TargetError> {
    match located(target)? {
        Located::ConfigMap(_, content) => Ok(content),
        _ => Err(TargetError::Invalid(
            "the target does not live in a ConfigMap".into(),
        )),
    }
}
