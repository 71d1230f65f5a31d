//! Where the rollout writes its percentage.

use kube::KubeSchema;
use kube::core::Duration;
use serde::{Deserialize, Serialize};

use super::duration::{DURATION_AT_MOST_10S_RULE, DURATION_FORMAT_RULE, DURATION_POSITIVE_RULE};

/// Where the rollout writes each stage's percentage. Set exactly one of `flagd`, `configMap`
/// and `webhook`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.flagd) ? 1 : 0) + (has(self.configMap) ? 1 : 0) + (has(self.webhook) ? 1 : 0) == 1")
    .message("target must set exactly one of flagd, configMap and webhook"))]
pub struct Target {
    /// A flag in an OpenFeature flagd flag definition: its fractional split is set to the
    /// stage's percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flagd: Option<FlagdTarget>,
    /// A plain ConfigMap key that holds the percent as a decimal number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapTarget>,
    /// An HTTP endpoint (a SaaS or database-backed flag store) that receives the percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookTarget>,
}

/// The one kind of target a valid [`Target`] holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TargetKind<'a> {
    /// A flag in a flagd definition.
    Flagd(&'a FlagdTarget),
    /// A ConfigMap key.
    ConfigMap(&'a ConfigMapTarget),
    /// An HTTP webhook.
    Webhook(&'a WebhookTarget),
}

impl Target {
    /// The kind of target, or `None` when not exactly one is set.
    pub fn kind(&self) -> Option<TargetKind<'_>> {
        match (&self.flagd, &self.config_map, &self.webhook) {
            (Some(f), None, None) => Some(TargetKind::Flagd(f)),
            (None, Some(c), None) => Some(TargetKind::ConfigMap(c)),
            (None, None, Some(w)) => Some(TargetKind::Webhook(w)),
            _ => None,
        }
    }

    /// The flag this target rolls out, when the target names one.
    pub fn flag_name(&self) -> Option<&str> {
        self.flagd.as_ref().map(|f| f.flag.as_str())
    }
}

/// A flag in an OpenFeature flagd flag definition.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.configMap) != has(self.featureFlag)")
    .message("flagd target must set exactly one of configMap and featureFlag"))]
pub struct FlagdTarget {
    /// Name of the ConfigMap that holds the flag definition (same namespace as the Rollout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) > 0").message("configMap must not be empty"))]
    #[x_kube(validation = Rule::new(super::limits::OBJECT_NAME_RULE).message(
        "configMap must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
    ))]
    #[schemars(length(max = super::limits::MAX_OBJECT_NAME))]
    pub config_map: Option<String>,
    /// Name of an OpenFeature Operator `core.openfeature.dev` FeatureFlag that holds the flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) > 0").message("featureFlag must not be empty"))]
    #[x_kube(validation = Rule::new(super::limits::OBJECT_NAME_RULE).message(
        "featureFlag must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
    ))]
    #[schemars(length(max = super::limits::MAX_OBJECT_NAME))]
    pub feature_flag: Option<String>,
    /// Key inside the ConfigMap that holds the flagd JSON (default `flags.flagd.json`).
    #[serde(default = "default_flagd_key")]
    #[x_kube(validation = Rule::new("size(self) > 0").message("key must not be empty"))]
    #[schemars(length(max = super::limits::MAX_OBJECT_NAME))]
    pub key: String,
    /// The flag's key in the definition.
    #[x_kube(validation = Rule::new("size(self) > 0").message("flag must not be empty"))]
    #[schemars(length(max = super::limits::MAX_FLAG_KEY))]
    pub flag: String,
    /// Variant served to the users inside the rollout's percentage (default `"on"`; quote it
    /// in YAML, where a bare on is the boolean true).
    #[serde(default = "default_on_variant")]
    #[schemars(length(max = super::limits::MAX_VARIANT))]
    pub on_variant: String,
    /// Variant served to everyone else (default `"off"`, quoted likewise).
    #[serde(default = "default_off_variant")]
    #[schemars(length(max = super::limits::MAX_VARIANT))]
    pub off_variant: String,
    /// Targeting keys that always get the on variant, whatever the percent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = super::limits::MAX_ALLOWLIST), inner(length(max = super::limits::MAX_TARGETING_KEY)))]
    pub allowlist: Vec<String>,
    /// Replace the flag's whole `targeting` with rollgate's own rule (the fractional split,
    /// inside the allowlist's `if` when there is an allowlist). By default (false) rollgate
    /// adopts an existing rule instead: when the targeting contains exactly one `fractional`
    /// over the on and off variants, anywhere in the rule, only that fractional's weights
    /// change; a rule without one is refused by the pre-check with the edit that makes it
    /// adoptable.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace_targeting: bool,
}

/// A plain ConfigMap key holding the percent.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapTarget {
    /// Name of the ConfigMap (same namespace as the Rollout).
    #[x_kube(validation = Rule::new("size(self) > 0").message("name must not be empty"))]
    #[x_kube(validation = Rule::new(super::limits::OBJECT_NAME_RULE).message(
        "name must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
    ))]
    #[schemars(length(max = super::limits::MAX_OBJECT_NAME))]
    pub name: String,
    /// Key that holds the percent as a decimal number.
    #[x_kube(validation = Rule::new("size(self) > 0").message("key must not be empty"))]
    #[schemars(length(max = super::limits::MAX_OBJECT_NAME))]
    pub key: String,
}

/// An HTTP endpoint that reads and writes the percent.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WebhookTarget {
    /// URL that answers GET with `{"percent": N}` and accepts PUT of the same body.
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')")
        .message("url must start with http:// or https://"))]
    #[schemars(length(max = super::limits::MAX_URL))]
    pub url: String,
    /// Name of a Secret (same namespace) whose keys are sent as request headers, for example
    /// `Authorization`. Secrets are referenced, never inlined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::MAX_OBJECT_NAME))]
    #[x_kube(validation = Rule::new("size(self) > 0 && self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message(
        "headersSecret must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
    ))]
    pub headers_secret: Option<String>,
    /// Time allowed for one request, as a Go duration (default 10s, at most 10s).
    #[serde(
        default,
        deserialize_with = "super::duration::deserialize_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new(DURATION_FORMAT_RULE)
        .message("timeout must be a Go duration such as 10s"))]
    #[x_kube(validation = Rule::new(DURATION_POSITIVE_RULE).message("timeout must be positive"))]
    #[x_kube(validation = Rule::new(DURATION_AT_MOST_10S_RULE).message("timeout must be at most 10s"))]
    pub timeout: Option<Duration>,
}

fn default_flagd_key() -> String {
    "flags.flagd.json".to_owned()
}

fn default_on_variant() -> String {
    "on".to_owned()
}

fn default_off_variant() -> String {
    "off".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flagd() -> FlagdTarget {
        FlagdTarget {
            config_map: Some("feature-flags".to_owned()),
            flag: "passenger_favorites_matching".to_owned(),
            ..FlagdTarget::default()
        }
    }

    fn config_map() -> ConfigMapTarget {
        ConfigMapTarget {
            name: "rollout".to_owned(),
            key: "percent".to_owned(),
        }
    }

    fn webhook() -> WebhookTarget {
        WebhookTarget {
            url: "https://flags.example/percent".to_owned(),
            ..WebhookTarget::default()
        }
    }

    #[test]
    fn kind_is_the_one_set() {
        let target = Target {
            flagd: Some(flagd()),
            ..Target::default()
        };
        assert_eq!(target.kind(), Some(TargetKind::Flagd(&flagd())));
        let target = Target {
            config_map: Some(config_map()),
            ..Target::default()
        };
        assert_eq!(target.kind(), Some(TargetKind::ConfigMap(&config_map())));
        let target = Target {
            webhook: Some(webhook()),
            ..Target::default()
        };
        assert_eq!(target.kind(), Some(TargetKind::Webhook(&webhook())));
    }

    #[test]
    fn kind_is_none_unless_exactly_one_is_set() {
        assert_eq!(Target::default().kind(), None);
        let cases = [
            (Some(flagd()), Some(config_map()), None),
            (Some(flagd()), None, Some(webhook())),
            (None, Some(config_map()), Some(webhook())),
            (Some(flagd()), Some(config_map()), Some(webhook())),
        ];
        for (flagd, config_map, webhook) in cases {
            let target = Target {
                flagd,
                config_map,
                webhook,
            };
            assert_eq!(target.kind(), None, "{target:?}");
        }
    }

    #[test]
    fn flag_name_is_the_flagd_flag() {
        let target = Target {
            flagd: Some(flagd()),
            ..Target::default()
        };
        assert_eq!(target.flag_name(), Some("passenger_favorites_matching"));
        let target = Target {
            config_map: Some(config_map()),
            ..Target::default()
        };
        assert_eq!(target.flag_name(), None);
    }

    #[test]
    fn flagd_defaults_fill_key_and_variants() {
        let flagd: FlagdTarget =
            serde_json::from_str(r#"{"configMap": "ff", "flag": "f"}"#).expect("reads");
        assert_eq!(flagd.key, "flags.flagd.json");
        assert_eq!(flagd.on_variant, "on");
        assert_eq!(flagd.off_variant, "off");
        assert!(flagd.allowlist.is_empty());
        assert!(!flagd.replace_targeting);
        let flagd: FlagdTarget =
            serde_json::from_str(r#"{"configMap": "ff", "flag": "f", "replaceTargeting": true}"#)
                .expect("reads");
        assert!(flagd.replace_targeting);
    }
}
