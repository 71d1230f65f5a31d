//! Gates: the checks made at every checkpoint.

use kube::KubeSchema;
use kube::core::Duration;
use serde::{Deserialize, Serialize};

use super::duration::{DURATION_AT_MOST_30S_RULE, DURATION_FORMAT_RULE, DURATION_POSITIVE_RULE};
pub use super::prometheus_connection::PrometheusConnection;

/// CEL rule on a gate's `secretRef` (a core `LocalObjectReference`, whose schema has no
/// format of its own): its name is a Kubernetes object name.
pub(super) const SECRET_REF_NAME_RULE: &str = "has(self.name) && size(self.name) <= 253 && self.name.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')";

/// A check made at every checkpoint. It passes while `min <= value <= max` (both optional,
/// inclusive); no data is never a pass. Set exactly one provider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.prometheus) ? 1 : 0) + (has(self.alerts) ? 1 : 0) + (has(self.ofrep) ? 1 : 0) + (has(self.http) ? 1 : 0) + (has(self.compare) ? 1 : 0) == 1")
    .message("gate must set exactly one of prometheus, alerts, ofrep, http and compare"))]
#[x_kube(validation = Rule::new("!has(self.compare) || (!has(self.min) && !has(self.max))")
    .message("min and max do not apply to a compare gate; its limit is compare.maxRegression"))]
#[x_kube(validation = Rule::new("!has(self.min) || !has(self.max) || self.min <= self.max")
    .message("min must not be greater than max"))]
#[x_kube(validation = Rule::new("!has(self.min) || has(self.max) || !(has(self.alerts) || has(self.ofrep)) || self.min <= 0.0")
    .message("min must not be greater than max, which defaults to 0 for alerts and ofrep"))]
pub struct Gate {
    /// Name of the gate, unique within the rollout; it names the gate in status and events.
    #[x_kube(validation = Rule::new("size(self) > 0").message("name must not be empty"))]
    #[schemars(length(max = 63))]
    pub name: String,
    /// A PromQL instant query; its single value is the gate's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusGate>,
    /// The number of firing alerts that match; `max` defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertsGate>,
    /// A flag-determinism probe over OFREP; the value is the number of violations and `max`
    /// defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ofrep: Option<OfrepGate>,
    /// A number or boolean read from a JSON HTTP answer: `true` is 1 and `false` is 0. With
    /// neither `min` nor `max` the value must be at least 1, so a boolean passes only when
    /// `true`; give bounds to hold a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpGate>,
    /// Treatment against control: the users with the flag against those without it, with an
    /// always-valid sequential test; the value is the harmful bound on the difference of their
    /// event rates and the gate fails when it exceeds `maxRegression`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<CompareGate>,
    /// Lowest passing value (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest passing value (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Failing checkpoints in a row that trigger a rollback (default 1).
    #[serde(default = "default_failure_limit")]
    #[x_kube(validation = Rule::new("self >= 1").message("failureLimit must be at least 1"))]
    pub failure_limit: u32,
}

/// The one provider a valid [`Gate`] holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Provider<'a> {
    /// A PromQL query.
    Prometheus(&'a PrometheusGate),
    /// Firing alerts.
    Alerts(&'a AlertsGate),
    /// An OFREP determinism probe.
    Ofrep(&'a OfrepGate),
    /// An HTTP JSON check.
    Http(&'a HttpGate),
    /// Treatment against control.
    Compare(&'a CompareGate),
}

impl Gate {
    /// The gate's provider, or `None` when not exactly one is set.
    pub fn provider(&self) -> Option<Provider<'_>> {
        match (
            &self.prometheus,
            &self.alerts,
            &self.ofrep,
            &self.http,
            &self.compare,
        ) {
            (Some(p), None, None, None, None) => Some(Provider::Prometheus(p)),
            (None, Some(a), None, None, None) => Some(Provider::Alerts(a)),
            (None, None, Some(o), None, None) => Some(Provider::Ofrep(o)),
            (None, None, None, Some(h), None) => Some(Provider::Http(h)),
            (None, None, None, None, Some(c)) => Some(Provider::Compare(c)),
            _ => None,
        }
    }

    /// The bounds the gate's value is held to (a compare gate's harmful bound: at most
    /// `maxRegression`): its own `min`/`max`, with `max` defaulting to 0
    /// for the counting providers (alerts and ofrep; docs/design.md §3 "max defaults to 0", whether or
    /// not `min` is given) and `min` defaulting to 1 for HTTP checks when neither bound is
    /// given (so a boolean answer passes only when `true`).
    pub fn bounds(&self) -> (Option<f64>, Option<f64>) {
        if let Some(compare) = &self.compare {
            // The harmful bound is held to maxRegression (min and max are refused).
            return (None, Some(compare.max_regression));
        }
        let counts = self.alerts.is_some() || self.ofrep.is_some();
        let unbounded = self.min.is_none() && self.max.is_none();
        if counts {
            (self.min, self.max.or(Some(0.0)))
        } else if self.http.is_some() && unbounded {
            (Some(1.0), None)
        } else {
            (self.min, self.max)
        }
    }
}

/// A PromQL instant query whose single value is the gate's value.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.sampleQuery) == has(self.minSample)")
    .message("sampleQuery and minSample must be set together"))]
pub struct PrometheusGate {
    /// The PromQL query; it must return a scalar or a vector with exactly one sample (an empty
    /// answer or NaN is no data). `{{rollout}}`, `{{namespace}}`, `{{flag}}`, `{{percent}}` and
    /// `{{stage}}` are replaced by the rollout's name, namespace, flag, current percent and stage
    /// index; any other `{{...}}` is an error.
    #[x_kube(validation = Rule::new("size(self.trim()) > 0").message("query must not be empty"))]
    #[schemars(length(max = super::limits::MAX_QUERY))]
    pub query: String,
    /// A second query counting the traffic behind `query`, for example
    /// `sum(increase(http_requests_total{job="backend"}[1h]))`; while its value is below
    /// `minSample` the gate has no data, so a handful of requests never passes. Same variables
    /// as `query`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::MAX_QUERY))]
    pub sample_query: Option<String>,
    /// The least value of `sampleQuery` that makes `query` count; set both or neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_sample: Option<f64>,
    /// Where the Prometheus is and how to reach it: `address`, `timeout`, `secretRef`,
    /// `headers`, `insecureSkipVerify`.
    #[serde(flatten)]
    pub connection: PrometheusConnection,
}

/// Counts firing alerts from Prometheus' `ALERTS` series.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AlertsGate {
    /// PromQL label matchers that select the alerts, each `label op "value"` with op one of
    /// `=`, `!=`, `=~`, `!~`, for example `severity="critical"`. None counts every firing alert.
    #[serde(default)]
    #[schemars(length(max = super::limits::MAX_MATCHERS), inner(length(max = super::limits::MAX_MATCHER)))]
    pub matchers: Vec<String>,
    /// Alert names that never count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = super::limits::MAX_MATCHERS), inner(length(max = super::limits::MAX_MATCHER)))]
    pub ignore: Vec<String>,
    /// Where the Prometheus is and how to reach it: `address`, `timeout`, `secretRef`,
    /// `headers`, `insecureSkipVerify`.
    #[serde(flatten)]
    pub connection: PrometheusConnection,
}

/// Probes flag evaluation over the OpenFeature Remote Evaluation Protocol for determinism.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct OfrepGate {
    /// Base URL of the OFREP service, for example `http://flagd:8016`.
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')")
        .message("address must start with http:// or https://"))]
    #[schemars(length(max = super::limits::MAX_URL))]
    pub address: String,
    /// Number of targeting keys probed at every checkpoint (default 1000).
    #[serde(default = "default_sample")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 10000").message("sample must be between 1 and 10000"))]
    pub sample: u32,
    /// The flag to evaluate; defaults to the flagd target's flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::MAX_FLAG_KEY))]
    pub flag: Option<String>,
    /// Variant that means a key has the flag. When unset, a key has the flag when the answer's
    /// value is `true` or its variant is `"on"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::MAX_VARIANT))]
    pub on_variant: Option<String>,
    /// The flagd `fractional` bucketing every evaluator must use. When set, each sampled key's
    /// expected answer is computed locally (the flag's rule being the one rollgate's flagd
    /// target writes: `fractional` over the targeting key with weights in basis points,
    /// `[on, 100 × percent]` then `[off, 10000 - 100 × percent]`) and every disagreement counts
    /// as a violation, which catches
    /// replicas running evaluators of different versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucketing: Option<FlagdBucketing>,
    /// Time allowed for each evaluation, as a Go duration (default 10s, at most 30s).
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
}

/// The flagd `fractional` bucketing every evaluator of the flag must use, named as the
/// flagd-testbed names them: `v1` (flagd up to v0.14), `v2` (flagd v0.15 and later, high
/// precision) or `v3` (CBOR-encoded input). When set, each sampled key's expected answer is
/// computed locally and every disagreement counts as a violation.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagdBucketing {
    /// Legacy: MurmurHash3 (x86, 32-bit, seed 0) of the string `flagKey + targetingKey`,
    /// bucket `abs(int32(hash)) / MaxInt32 * 100` against percentage ranges (flagd up to
    /// v0.14).
    #[serde(rename = "v1")]
    V1,
    /// High precision: the same hash as v1, bucket `(uint32(hash) * totalWeight) >> 32`
    /// against the integer weights (flagd v0.15 and later).
    #[serde(rename = "v2")]
    V2,
    /// CBOR: the v2 bucket over the hash of the deterministic CBOR encoding of
    /// `[flagKey, targetingKey]` (flagd's accepted "non-string fractional" design, for example
    /// the Python `openfeature-flagd-core` 2.x evaluator).
    #[serde(rename = "v3")]
    V3,
}

/// HTTP method of an HTTP check.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
pub enum HttpMethod {
    /// GET the URL.
    #[default]
    #[serde(rename = "GET")]
    Get,
    /// POST the body to the URL.
    #[serde(rename = "POST")]
    Post,
}

/// A number or boolean read from a JSON HTTP answer with a JSONPath expression.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HttpGate {
    /// URL to call.
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')")
        .message("url must start with http:// or https://"))]
    #[schemars(length(max = super::limits::MAX_URL))]
    pub url: String,
    /// HTTP method (default GET).
    #[serde(default)]
    pub method: HttpMethod,
    /// Body sent with POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::MAX_HTTP_BODY))]
    pub body: Option<String>,
    /// RFC 9535 JSONPath to the number or boolean in the answer, for example `$.errorRate`.
    #[x_kube(validation = Rule::new("self.startsWith('$')").message("jsonPath must start with $"))]
    #[schemars(length(max = super::limits::MAX_JSON_PATH))]
    pub json_path: String,
    /// Time allowed for the request, as a Go duration (default 10s, at most 30s).
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
}

/// Which direction of a compare gate's event rate is good.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Fewer events per unit is better (errors, timeouts).
    #[default]
    Lower,
    /// More events per unit is better (conversions, successes).
    Higher,
}

/// Compares the users with the flag (treatment) against those without it (control): two
/// queries per arm count units and events since the stage started, and a one-sided asymptotic
/// confidence sequence (Waudby-Smith et al. 2023, as GrowthBook computes it) bounds how much
/// worse the treatment's event rate is. The value is that harmful bound; the gate fails when it
/// exceeds `maxRegression`, waits (holding the stage, counting nothing) while an arm has fewer
/// than `minUnits` units, and is skipped at 0 % and 100 %, where there is no second cohort.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CompareGate {
    /// PromQL counting one arm's units (requests, or better users) since the stage started,
    /// for example `sum(increase(http_requests_total{feature_flag_variant="{{variant}}"}[{{window}}]))`.
    /// `{{variant}}` is the arm's variant and `{{window}}` the time since the stage started in
    /// whole seconds (`5400s`); the other query variables work as in `prometheus`. An empty
    /// result counts as 0.
    #[x_kube(validation = Rule::new("size(self.trim()) > 0").message("units must not be empty"))]
    #[schemars(length(max = super::limits::MAX_QUERY))]
    pub units: String,
    /// PromQL counting one arm's events (errors, conversions) among those units, with the same
    /// variables as `units`.
    #[x_kube(validation = Rule::new("size(self.trim()) > 0").message("events must not be empty"))]
    #[schemars(length(max = super::limits::MAX_QUERY))]
    pub events: String,
    /// Which direction of the event rate is good: `lower` (default) or `higher`.
    #[serde(default)]
    pub better: Better,
    /// Allowed difference in the harmful direction (default 0): an absolute difference of
    /// rates (0.002 = 0.2 percentage points), or with `relative` a fraction of the control's
    /// rate (0.1 = 10 %).
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0.0").message("maxRegression must not be negative"))]
    pub max_regression: f64,
    /// Compare (treatment − control) / control instead of the plain difference (default false).
    #[serde(default)]
    pub relative: bool,
    /// One-sided confidence of the bound, from 0.8 to 0.999 (default 0.95).
    #[serde(default = "default_confidence")]
    #[x_kube(validation = Rule::new("self >= 0.8 && self <= 0.999")
        .message("confidence must be between 0.8 and 0.999"))]
    pub confidence: f64,
    /// Units each arm needs before any verdict (default 500); until then the gate waits.
    #[serde(default = "default_min_units")]
    #[x_kube(validation = Rule::new("self >= 1").message("minUnits must be at least 1"))]
    pub min_units: u32,
    /// The test's tuning parameter N*: the total units at which the bound is tightest
    /// (default 5000).
    #[serde(default = "default_expected_units")]
    #[x_kube(validation = Rule::new("self >= 1").message("expectedUnits must be at least 1"))]
    pub expected_units: u32,
    /// The treatment's variant name; defaults to the target's on variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::MAX_VARIANT))]
    pub treatment: Option<String>,
    /// The control's variant name; defaults to the target's off variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::limits::MAX_VARIANT))]
    pub control: Option<String>,
    /// Test the split of units against the percent in force with a χ² test (1 degree of
    /// freedom, from the second interval of a stage on); p < 0.001 is an error ("sample ratio
    /// mismatch"). Coarse when units are requests rather than users.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sample_ratio: bool,
    /// Where the Prometheus is and how to reach it: `address`, `timeout`, `secretRef`,
    /// `headers`, `insecureSkipVerify`.
    #[serde(flatten)]
    pub connection: PrometheusConnection,
}

impl Default for CompareGate {
    fn default() -> Self {
        Self {
            units: String::new(),
            events: String::new(),
            better: Better::Lower,
            max_regression: 0.0,
            relative: false,
            confidence: default_confidence(),
            min_units: default_min_units(),
            expected_units: default_expected_units(),
            treatment: None,
            control: None,
            sample_ratio: false,
            connection: PrometheusConnection::default(),
        }
    }
}

/// The lowest and highest `confidence` of a compare gate.
pub const COMPARE_CONFIDENCE: std::ops::RangeInclusive<f64> = 0.8..=0.999;

fn default_confidence() -> f64 {
    0.95
}

fn default_min_units() -> u32 {
    500
}

fn default_expected_units() -> u32 {
    5000
}

fn default_failure_limit() -> u32 {
    1
}

fn default_sample() -> u32 {
    1000
}

pub(super) fn is_false(value: &bool) -> bool {
    !*value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Gate {
        Gate {
            name: "g".to_owned(),
            failure_limit: 1,
            ..Gate::default()
        }
    }

    fn prometheus() -> Gate {
        Gate {
            prometheus: Some(PrometheusGate {
                query: "up".to_owned(),
                ..PrometheusGate::default()
            }),
            ..gate()
        }
    }

    fn alerts() -> Gate {
        Gate {
            alerts: Some(AlertsGate::default()),
            ..gate()
        }
    }

    fn ofrep() -> Gate {
        Gate {
            ofrep: Some(OfrepGate {
                address: "http://flagd:8016".to_owned(),
                sample: 10,
                ..OfrepGate::default()
            }),
            ..gate()
        }
    }

    fn http() -> Gate {
        Gate {
            http: Some(HttpGate {
                url: "http://status".to_owned(),
                json_path: "$.ok".to_owned(),
                ..HttpGate::default()
            }),
            ..gate()
        }
    }

    #[test]
    fn counting_providers_default_max_to_zero() {
        assert_eq!(alerts().bounds(), (None, Some(0.0)));
        assert_eq!(ofrep().bounds(), (None, Some(0.0)));
    }

    #[test]
    fn http_defaults_min_to_one() {
        assert_eq!(http().bounds(), (Some(1.0), None));
    }

    #[test]
    fn prometheus_has_no_default_bounds() {
        assert_eq!(prometheus().bounds(), (None, None));
    }

    #[test]
    fn counting_providers_keep_max_at_zero_when_only_min_is_given() {
        for make in [alerts, ofrep] {
            let only_min = Gate {
                min: Some(0.0),
                ..make()
            };
            assert_eq!(only_min.bounds(), (Some(0.0), Some(0.0)));
        }
    }

    #[test]
    fn any_given_bound_replaces_the_defaults() {
        for make in [prometheus, http] {
            let only_min = Gate {
                min: Some(2.0),
                ..make()
            };
            assert_eq!(only_min.bounds(), (Some(2.0), None));
        }
        for make in [prometheus, alerts, ofrep, http] {
            let only_max = Gate {
                max: Some(5.0),
                ..make()
            };
            assert_eq!(only_max.bounds(), (None, Some(5.0)));
            let both = Gate {
                min: Some(-1.0),
                max: Some(0.5),
                ..make()
            };
            assert_eq!(both.bounds(), (Some(-1.0), Some(0.5)));
        }
    }

    #[test]
    fn provider_is_the_one_set() {
        assert!(matches!(
            prometheus().provider(),
            Some(Provider::Prometheus(_))
        ));
        assert!(matches!(alerts().provider(), Some(Provider::Alerts(_))));
        assert!(matches!(ofrep().provider(), Some(Provider::Ofrep(_))));
        assert!(matches!(http().provider(), Some(Provider::Http(_))));
    }

    #[test]
    fn provider_is_none_unless_exactly_one_is_set() {
        assert_eq!(gate().provider(), None);
        let two = Gate {
            alerts: Some(AlertsGate::default()),
            ..prometheus()
        };
        assert_eq!(two.provider(), None);
        let four = Gate {
            prometheus: prometheus().prometheus,
            alerts: alerts().alerts,
            ofrep: ofrep().ofrep,
            http: http().http,
            ..gate()
        };
        assert_eq!(four.provider(), None);
    }
}
