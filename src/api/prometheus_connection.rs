//! How a gate reaches its Prometheus: the connection fields the `prometheus`, `alerts` and
//! `compare` gates share (flattened into each, so the YAML keeps them beside the gate's own
//! fields).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::LocalObjectReference;
use kube::KubeSchema;
use kube::core::Duration;
use serde::{Deserialize, Serialize};

use super::duration::{DURATION_AT_MOST_30S_RULE, DURATION_FORMAT_RULE, DURATION_POSITIVE_RULE};
use super::gate::{SECRET_REF_NAME_RULE, is_false};

/// Where a gate's Prometheus is and how to reach it. Without `address` the gate uses the
/// controller's `--prometheus` as configured and may set only `timeout`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusConnection {
    /// Base URL of the Prometheus HTTP API; defaults to the controller's `--prometheus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')")
        .message("address must start with http:// or https://"))]
    #[schemars(length(max = super::limits::MAX_URL))]
    pub address: Option<String>,
    /// Time allowed for each query, as a Go duration (default 10s, at most 30s).
    #[serde(
        default,
        deserialize_with = "super::duration::deserialize_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new(DURATION_FORMAT_RULE)
        .message("timeout must be a Go duration such as 10s"))]
    #[x_kube(validation = Rule::new(DURATION_POSITIVE_RULE).message("timeout must be positive"))]
    #[x_kube(validation = Rule::new(DURATION_AT_MOST_30S_RULE).message("timeout must be at most 30s"))]
    pub timeout: Option<Duration>,
    /// A Secret in the rollout's namespace holding credentials: `token` (bearer token), or
    /// `username` and `password` (basic auth); `ca.crt` (PEM CA bundle that signs Prometheus'
    /// certificate); and `header.<Name>` keys, each sent as the header `<Name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(SECRET_REF_NAME_RULE).message(
        "secretRef must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
    ))]
    pub secret_ref: Option<LocalObjectReference>,
    /// Extra HTTP headers sent with every query, for example `X-Scope-OrgID: tenant-a` for
    /// Mimir, Cortex or Thanos; put secret values in `secretRef` instead.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = super::limits::MAX_HEADERS))]
    pub headers: BTreeMap<String, String>,
    /// Accept any TLS certificate from Prometheus. Only for tests; prefer `ca.crt` in
    /// `secretRef`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure_skip_verify: bool,
}
