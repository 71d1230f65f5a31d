//! The rules of a valid plan, checked in Rust as well as by the CRD's CEL rules, so the
//! controller and the command line reject what `kubectl apply` would.
//!
//! Every CEL rule of the CRD has its mirror here, with the same meaning, except the
//! duration-format rules: their mirror is [`parse_duration`](super::parse_duration), which
//! reads every duration of a spec, so a spec that breaks them never gets this far. A NaN bound
//! cannot come from JSON, only from Rust, so its check is Rust's alone; and the schema's size
//! limits (`maxItems`, `maxLength`), which the API server enforces without CEL, are checked
//! here too.

use std::collections::HashSet;

use kube::core::Duration;

use super::duration;
use super::gate::Gate;
use super::percent::Percent;
use super::spec::RolloutSpec;

use super::limits::{self, MAX_GATE_NAME, MAX_GATES, MAX_STAGES};

/// Fewest and most targeting keys an OFREP gate may sample.
const OFREP_SAMPLE_RANGE: std::ops::RangeInclusive<u32> = 1..=limits::MAX_OFREP_SAMPLE;

/// One broken rule, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct SpecError {
    /// Path of the field, for example `spec.stages[1].percent`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl SpecError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Checks every rule of docs/design.md §3 and returns each broken one.
pub fn validate_spec(spec: &RolloutSpec) -> Result<(), Vec<SpecError>> {
    let mut errors = Errors::default();
    check_target(spec, &mut errors);
    check_notifications(spec, &mut errors);
    if let Some(account) = &spec.service_account_name {
        errors.object_name("spec.serviceAccountName", account);
    }
    check_stages(spec, &mut errors);
    check_analysis(spec, &mut errors);
    errors.percent("spec.rollback.percent", spec.rollback.percent);
    check_rollback_not_above_first_stage(spec, &mut errors);
    if let Some(min) = spec.pre_checks.as_ref().and_then(|p| p.min_allowlist)
        && min > 10_000
    {
        errors.push("spec.preChecks.minAllowlist", "must be between 0 and 10000");
    }
    errors.0.extend(super::validate_gates::check_gates(spec));
    if errors.0.is_empty() {
        Ok(())
    } else {
        Err(errors.0)
    }
}

/// The broken rules found so far, with helpers for the checks several fields share.
#[derive(Default)]
struct Errors(Vec<SpecError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.0.push(SpecError::new(field, problem));
    }

    fn not_empty(&mut self, field: impl Into<String>, value: &str) {
        if value.is_empty() {
            self.push(field, "must not be empty");
        }
    }

    /// A Kubernetes object name (DNS-1123 subdomain); an empty one is `not_empty`'s.
    fn object_name(&mut self, field: impl Into<String>, name: &str) {
        if name.is_empty() {
            self.push(field, "must not be empty");
        } else if !limits::is_object_name(name) {
            self.push(
                field,
                format!(
                    "{name:?} is not a Kubernetes object name: at most {} lowercase letters, \
                     digits, '-' and '.', starting and ending with a letter or digit",
                    limits::MAX_OBJECT_NAME
                ),
            );
        }
    }

    fn http_url(&mut self, field: impl Into<String>, url: &str) {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            self.push(field, "must start with http:// or https://");
        }
    }

    /// A Prometheus connection's address is an http(s) URL and its timeout within the cap.
    fn connection(&mut self, field: &str, connection: &super::PrometheusConnection) {
        if let Some(address) = &connection.address {
            self.http_url(format!("{field}.address"), address);
        }
        self.timeout(
            format!("{field}.timeout"),
            connection.timeout,
            duration::MAX_GATE_TIMEOUT,
        );
    }

    fn percent(&mut self, field: impl Into<String>, percent: Percent) {
        if percent > Percent::HUNDRED {
            self.push(field, "must be between 0 and 100");
        }
    }

    /// A timeout, when set, is positive and at most `max`.
    fn timeout(
        &mut self,
        field: impl Into<String>,
        timeout: Option<Duration>,
        max: std::time::Duration,
    ) {
        let Some(timeout) = timeout else { return };
        if !duration::is_positive(timeout) {
            self.push(field, "must be positive");
        } else if !duration::is_at_most(timeout, max) {
            self.push(
                field,
                format!("must be at most {}s, not {timeout}", max.as_secs()),
            );
        }
    }
}

/// A rollback never raises exposure: `rollback.percent` is at most the first stage's percent,
/// the lowest a started rollout ever writes (a percent above 100 is the range rule's).
fn check_rollback_not_above_first_stage(spec: &RolloutSpec, errors: &mut Errors) {
    if let Some(first) = spec.stages.first()
        && spec.rollback.percent <= Percent::HUNDRED
        && spec.rollback.percent > first.percent
    {
        errors.push(
            "spec.rollback.percent",
            format!(
                "{} is above the first stage's percent ({}): a rollback must never raise exposure",
                spec.rollback.percent, first.percent
            ),
        );
    }
}

fn check_notifications(spec: &RolloutSpec, errors: &mut Errors) {
    for (i, notification) in spec.notifications.iter().enumerate() {
        if notification.webhook.is_some() == notification.slack.is_some() {
            errors.push(
                format!("spec.notifications[{i}]"),
                "must set exactly one of webhook and slack",
            );
        }
        for (kind, reference) in [
            (
                "webhook",
                notification.webhook.as_ref().map(|w| &w.url_secret_ref),
            ),
            (
                "slack",
                notification.slack.as_ref().map(|s| &s.url_secret_ref),
            ),
        ] {
            if let Some(reference) = reference {
                errors.object_name(
                    format!("spec.notifications[{i}].{kind}.urlSecretRef.name"),
                    &reference.name,
                );
            }
        }
    }
}

fn check_target(spec: &RolloutSpec, errors: &mut Errors) {
    let target = &spec.target;
    if target.kind().is_none() {
        errors.push(
            "spec.target",
            "must set exactly one of flagd, configMap and webhook",
        );
    }
    if let Some(flagd) = &target.flagd {
        if flagd.config_map.is_some() == flagd.feature_flag.is_some() {
            errors.push(
                "spec.target.flagd",
                "must set exactly one of configMap and featureFlag",
            );
        }
        if let Some(config_map) = &flagd.config_map {
            errors.object_name("spec.target.flagd.configMap", config_map);
        }
        if let Some(feature_flag) = &flagd.feature_flag {
            errors.object_name("spec.target.flagd.featureFlag", feature_flag);
        }
        errors.not_empty("spec.target.flagd.key", &flagd.key);
        errors.not_empty("spec.target.flagd.flag", &flagd.flag);
    }
    if let Some(config_map) = &target.config_map {
        errors.object_name("spec.target.configMap.name", &config_map.name);
        errors.not_empty("spec.target.configMap.key", &config_map.key);
    }
    if let Some(webhook) = &target.webhook {
        errors.http_url("spec.target.webhook.url", &webhook.url);
        if let Some(secret) = &webhook.headers_secret {
            errors.object_name("spec.target.webhook.headersSecret", secret);
        }
        errors.timeout(
            "spec.target.webhook.timeout",
            webhook.timeout,
            duration::MAX_WEBHOOK_TIMEOUT,
        );
    }
}

fn check_stages(spec: &RolloutSpec, errors: &mut Errors) {
    if spec.stages.is_empty() {
        errors.push("spec.stages", "must not be empty");
    }
    if spec.stages.len() > MAX_STAGES {
        errors.push(
            "spec.stages",
            format!("must have at most {MAX_STAGES} stages"),
        );
    }
    for (i, stage) in spec.stages.iter().enumerate() {
        errors.percent(format!("spec.stages[{i}].percent"), stage.percent);
        if duration::is_negative(stage.duration) {
            errors.push(format!("spec.stages[{i}].duration"), "must not be negative");
        }
        if let Some(previous) = i.checked_sub(1).and_then(|p| spec.stages.get(p))
            && previous.percent >= stage.percent
        {
            errors.push(
                format!("spec.stages[{i}].percent"),
                format!(
                    "stage percents must be strictly increasing ({} follows {})",
                    stage.percent, previous.percent
                ),
            );
        }
    }
}

fn check_analysis(spec: &RolloutSpec, errors: &mut Errors) {
    let analysis = &spec.analysis;
    if !duration::is_at_least_one_second(analysis.interval) {
        errors.push(
            "spec.analysis.interval",
            format!("must be at least 1s, not {}", analysis.interval),
        );
    }
    if analysis.error_limit < 1 {
        errors.push("spec.analysis.errorLimit", "must be at least 1");
    }
    if analysis.gates.len() > MAX_GATES {
        errors.push(
            "spec.analysis.gates",
            format!("must have at most {MAX_GATES} gates"),
        );
    }
    let mut names = HashSet::new();
    for (i, gate) in analysis.gates.iter().enumerate() {
        let field = format!("spec.analysis.gates[{i}]");
        if !gate.name.is_empty() && !names.insert(gate.name.as_str()) {
            errors.push(
                format!("{field}.name"),
                format!(
                    "gate name {:?} is used twice; gate names must be unique",
                    gate.name
                ),
            );
        }
        check_gate(&field, gate, errors);
    }
}

fn check_gate(field: &str, gate: &Gate, errors: &mut Errors) {
    errors.not_empty(format!("{field}.name"), &gate.name);
    if gate.name.chars().count() > MAX_GATE_NAME {
        errors.push(
            format!("{field}.name"),
            format!("must be at most {MAX_GATE_NAME} characters"),
        );
    }
    if gate.provider().is_none() {
        errors.push(
            field,
            "must set exactly one of prometheus, alerts, ofrep, http and compare",
        );
    }
    if gate.failure_limit < 1 {
        errors.push(format!("{field}.failureLimit"), "must be at least 1");
    }
    for (bound, value) in [("min", gate.min), ("max", gate.max)] {
        if value.is_some_and(f64::is_nan) {
            errors.push(format!("{field}.{bound}"), "must be a number");
        }
    }
    if let (Some(min), Some(max)) = gate.bounds()
        && min > max
    {
        let max = match gate.max {
            Some(max) => format!("{max}"),
            None => format!("{max}, its default for alerts and ofrep"),
        };
        errors.push(
            format!("{field}.min"),
            format!("min ({min}) must not be greater than max ({max})"),
        );
    }
    if let Some(prometheus) = &gate.prometheus {
        let field = format!("{field}.prometheus");
        errors.connection(&field, &prometheus.connection);
        if prometheus.query.trim().is_empty() {
            errors.push(format!("{field}.query"), "must not be empty");
        }
        if prometheus.sample_query.is_some() != prometheus.min_sample.is_some() {
            errors.push(
                field.clone(),
                "sampleQuery and minSample must be set together",
            );
        }
    }
    if let Some(alerts) = &gate.alerts {
        errors.connection(&format!("{field}.alerts"), &alerts.connection);
    }
    if let Some(ofrep) = &gate.ofrep {
        errors.http_url(format!("{field}.ofrep.address"), &ofrep.address);
        if !OFREP_SAMPLE_RANGE.contains(&ofrep.sample) {
            errors.push(
                format!("{field}.ofrep.sample"),
                "must be between 1 and 10000",
            );
        }
        errors.timeout(
            format!("{field}.ofrep.timeout"),
            ofrep.timeout,
            duration::MAX_GATE_TIMEOUT,
        );
    }
    if let Some(compare) = &gate.compare {
        let field = format!("{field}.compare");
        if gate.min.is_some() || gate.max.is_some() {
            errors.push(
                field.trim_end_matches(".compare").to_owned(),
                "min and max do not apply to a compare gate; its limit is compare.maxRegression",
            );
        }
        errors.connection(&field, &compare.connection);
        for (name, query) in [("units", &compare.units), ("events", &compare.events)] {
            if query.trim().is_empty() {
                errors.push(format!("{field}.{name}"), "must not be empty");
            }
        }
        if compare.max_regression.is_nan() || compare.max_regression < 0.0 {
            errors.push(
                format!("{field}.maxRegression"),
                "must be a number not below 0",
            );
        }
        if !super::gate::COMPARE_CONFIDENCE.contains(&compare.confidence) {
            errors.push(
                format!("{field}.confidence"),
                "must be between 0.8 and 0.999",
            );
        }
        if compare.min_units < 1 {
            errors.push(format!("{field}.minUnits"), "must be at least 1");
        }
        if compare.expected_units < 1 {
            errors.push(format!("{field}.expectedUnits"), "must be at least 1");
        }
    }
    if let Some(http) = &gate.http {
        errors.http_url(format!("{field}.http.url"), &http.url);
        if !http.json_path.starts_with('$') {
            errors.push(format!("{field}.http.jsonPath"), "must start with $");
        }
        errors.timeout(
            format!("{field}.http.timeout"),
            http.timeout,
            duration::MAX_GATE_TIMEOUT,
        );
    }
}
