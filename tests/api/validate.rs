//! `validate_spec`, the Rust-side mirror of the CRD's CEL rules.
//!
//! Every rule is a row of `rules!` below, which makes three tests of it: a plan at the edge of
//! what the rule allows passes `validate_spec` (`accepts::…`); a plan that breaks it gets
//! exactly one error naming the field and the problem (`rejects::…`); and the CEL rules agree
//! on both plans, rejecting the bad one with the row's message at the row's path
//! (`agrees_with_cel::…`). `the_rows_are_the_crds_cel_rules` checks that the rows and the
//! CRD's rules are the same set, so neither side gains a rule the other lacks.

use std::collections::BTreeSet;

use kube::CustomResourceExt;
use rollgate::api::{Rollout, RolloutSpec, SpecError, validate_spec};
use serde_json::{Value, json};

use crate::support::example_json;

/// A plan that uses every field with a rule: the example plan (a flagd target and three
/// gates) with every gate's address and timeout set, and an HTTP check and a compare gate.
fn plan() -> Value {
    let mut plan = example_json("passenger-favorites-matching");
    let gates = &mut plan["spec"]["analysis"]["gates"];
    let prometheus = &mut gates[0]["prometheus"];
    prometheus["address"] = json!("http://prometheus:9090");
    prometheus["sampleQuery"] = json!("sum(increase(http_requests_total[1h]))");
    prometheus["minSample"] = json!(100.0);
    prometheus["timeout"] = json!("10s");
    gates[1]["alerts"]["address"] = json!("https://prometheus:9090");
    gates[1]["alerts"]["timeout"] = json!("5s");
    gates[2]["ofrep"]["timeout"] = json!("2s");
    let gates = gates.as_array_mut().expect("the example's gates");
    gates.push(json!({
        "name": "health",
        "http": {"url": "https://status.example/health", "jsonPath": "$.ok", "timeout": "3s"}
    }));
    gates.push(json!({
        "name": "errors-vs-control",
        "compare": {
            "address": "http://prometheus:9090",
            "units": "sum(increase(http_requests_total{feature_flag_variant=\"{{variant}}\"}[{{window}}]))",
            "events": "sum(increase(http_requests_total{code=~\"5..\",feature_flag_variant=\"{{variant}}\"}[{{window}}]))",
            "maxRegression": 0.002,
            "timeout": "10s"
        }
    }));
    plan
}

fn changed(change: impl FnOnce(&mut Value)) -> Value {
    let mut plan = plan();
    change(&mut plan);
    plan
}

fn rollout(object: &Value) -> Rollout {
    serde_json::from_value(object.clone())
        .unwrap_or_else(|e| panic!("the test plan does not deserialize: {e}\n{object:#}"))
}

#[track_caller]
fn accepts(object: Value) {
    if let Err(errors) = validate_spec(&rollout(&object).spec) {
        panic!("a good plan was rejected: {errors:#?}\n{object:#}");
    }
}

#[track_caller]
fn rejects(object: Value, field: &str, problem: &str) {
    match validate_spec(&rollout(&object).spec) {
        Ok(()) => panic!("a bad plan was accepted; expected {field}: {problem}\n{object:#}"),
        Err(errors) => assert_eq!(
            errors,
            [SpecError {
                field: field.to_owned(),
                problem: problem.to_owned(),
            }],
            "expected exactly one error"
        ),
    }
}

/// The CEL rules accept `good` and reject `bad` with exactly `message` at `path`.
#[track_caller]
fn agrees_with_cel(good: Value, bad: Value, path: &str, message: &str) {
    if let Err(errors) = rollout(&good).validate_cel() {
        panic!("validate_spec accepts a plan the CEL rules reject: {errors}\n{good:#}");
    }
    match rollout(&bad).validate_cel() {
        Ok(()) => panic!("validate_spec rejects a plan the CEL rules accept\n{bad:#}"),
        Err(errors) => {
            let found: Vec<_> = errors
                .iter()
                .map(|e| (e.field_path.as_str(), e.message.as_str()))
                .collect();
            assert_eq!(found, [(path, message)]);
        }
    }
}

/// One row per rule and place: `name: good change, bad change, Rust field and problem, CEL
/// path and message`.
macro_rules! rules {
    ($($name:ident: $good:expr, $bad:expr, ($field:expr, $problem:expr), ($path:expr, $message:expr);)*) => {
        mod accepts {
            use super::*;
            $(#[test] fn $name() { accepts(changed($good)) })*
        }
        mod rejects {
            use super::*;
            $(#[test] fn $name() { rejects(changed($bad), $field, $problem) })*
        }
        mod agrees_with_cel {
            use super::*;
            $(#[test] fn $name() { agrees_with_cel(changed($good), changed($bad), $path, $message) })*
        }
        /// The CEL path and message of every row.
        const ROWS: &[(&str, &str)] = &[$(($path, $message)),*];
    };
}

/// Sets the field at `pointer`, adding it to its object when it is not there yet.
fn set(pointer: &'static str, value: Value) -> impl FnOnce(&mut Value) {
    move |plan: &mut Value| {
        let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
        let parent = plan
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("{parent} is not in the plan"));
        match parent {
            Value::Object(object) => {
                object.insert(key.to_owned(), value);
            }
            Value::Array(array) => {
                let index: usize = key.parse().expect("an index");
                array[index] = value;
            }
            _ => panic!("{pointer} is not in an object or an array"),
        }
    }
}

fn remove(pointer: &'static str, key: &'static str) -> impl FnOnce(&mut Value) {
    move |plan: &mut Value| {
        plan.pointer_mut(pointer)
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("{pointer} is not an object in the plan"))
            .remove(key);
    }
}

fn nothing(_: &mut Value) {}

const GATE: &str = "must set exactly one of prometheus, alerts, ofrep, http and compare";
const HTTP: &str = "must start with http:// or https://";
const WEBHOOK: &str = "/spec/target";

fn webhook(timeout: &'static str) -> impl FnOnce(&mut Value) {
    set(
        WEBHOOK,
        json!({"webhook": {"url": "https://flags.example/percent", "timeout": timeout}}),
    )
}

rules! {
    stages_not_empty:
        set("/spec/stages", json!([{"percent": 100}])),
        set("/spec/stages", json!([])),
        ("spec.stages", "must not be empty"),
        ("spec.stages", "stages must not be empty");
    stages_strictly_increasing:
        set("/spec/stages", json!([{"percent": 0}, {"percent": 1}, {"percent": 100}])),
        set("/spec/stages", json!([{"percent": 1}, {"percent": 5}, {"percent": 5}])),
        ("spec.stages[2].percent", "stage percents must be strictly increasing (5 follows 5)"),
        ("spec.stages", "stage percents must be strictly increasing");
    stages_strictly_increasing_not_decreasing:
        set("/spec/stages", json!([{"percent": 50}, {"percent": 60}])),
        set("/spec/stages", json!([{"percent": 60}, {"percent": 50}])),
        ("spec.stages[1].percent", "stage percents must be strictly increasing (50 follows 60)"),
        ("spec.stages", "stage percents must be strictly increasing");
    stage_duration_not_negative:
        set("/spec/stages/1/duration", json!("0s")),
        set("/spec/stages/1/duration", json!("-1s")),
        ("spec.stages[1].duration", "must not be negative"),
        ("spec.stages[1].duration", "duration must not be negative");
    stage_duration_minus_zero_is_not_negative:
        set("/spec/stages/1/duration", json!("-0s")),
        set("/spec/stages/1/duration", json!("-1ns")),
        ("spec.stages[1].duration", "must not be negative"),
        ("spec.stages[1].duration", "duration must not be negative");
    interval_at_least_1s:
        set("/spec/analysis/interval", json!("1s")),
        set("/spec/analysis/interval", json!("1ns")),
        ("spec.analysis.interval", "must be at least 1s, not 1ns"),
        ("spec.analysis.interval", "interval must be at least 1s");
    interval_at_least_1s_not_zero:
        set("/spec/analysis/interval", json!("1000ms")),
        set("/spec/analysis/interval", json!("-0s")),
        ("spec.analysis.interval", "must be at least 1s, not 0ns"),
        ("spec.analysis.interval", "interval must be at least 1s");
    interval_at_least_1s_not_negative:
        set("/spec/analysis/interval", json!("1m")),
        set("/spec/analysis/interval", json!("-1m")),
        ("spec.analysis.interval", "must be at least 1s, not -60s"),
        ("spec.analysis.interval", "interval must be at least 1s");
    min_allowlist:
        set("/spec/preChecks", json!({"minAllowlist": 10})),
        set("/spec/preChecks", json!({"minAllowlist": 10001})),
        ("spec.preChecks.minAllowlist", "must be between 0 and 10000"),
        ("spec.preChecks.minAllowlist", "minAllowlist must be between 0 and 10000");
    error_limit:
        set("/spec/analysis/errorLimit", json!(1)),
        set("/spec/analysis/errorLimit", json!(0)),
        ("spec.analysis.errorLimit", "must be at least 1"),
        ("spec.analysis.errorLimit", "errorLimit must be at least 1");
    gate_names_unique:
        set("/spec/analysis/gates/3/name", json!("error-rate-2")),
        set("/spec/analysis/gates/3/name", json!("error-rate")),
        ("spec.analysis.gates[3].name", "gate name \"error-rate\" is used twice; gate names must be unique"),
        ("spec.analysis", "gate names must be unique");
    gate_one_provider_not_none:
        nothing,
        remove("/spec/analysis/gates/1", "alerts"),
        ("spec.analysis.gates[1]", GATE),
        ("spec.analysis.gates[1]", "gate must set exactly one of prometheus, alerts, ofrep, http and compare");
    gate_one_provider_not_two:
        set("/spec/analysis/gates/1/alerts", json!({})),
        set("/spec/analysis/gates/0/alerts", json!({})),
        ("spec.analysis.gates[0]", GATE),
        ("spec.analysis.gates[0]", "gate must set exactly one of prometheus, alerts, ofrep, http and compare");
    gate_min_max:
        set("/spec/analysis/gates/0/min", json!(0.01)),
        set("/spec/analysis/gates/0/min", json!(0.02)),
        ("spec.analysis.gates[0].min", "min (0.02) must not be greater than max (0.01)"),
        ("spec.analysis.gates[0]", "min must not be greater than max");
    gate_min_with_alerts_default_max:
        set("/spec/analysis/gates/1/min", json!(0)),
        set("/spec/analysis/gates/1/min", json!(1)),
        ("spec.analysis.gates[1].min", "min (1) must not be greater than max (0, its default for alerts and ofrep)"),
        ("spec.analysis.gates[1]", "min must not be greater than max, which defaults to 0 for alerts and ofrep");
    gate_min_with_ofrep_default_max:
        |p: &mut Value| {
            set("/spec/analysis/gates/2/min", json!(2.5))(p);
            set("/spec/analysis/gates/2/max", json!(3))(p);
        },
        set("/spec/analysis/gates/2/min", json!(0.5)),
        ("spec.analysis.gates[2].min", "min (0.5) must not be greater than max (0, its default for alerts and ofrep)"),
        ("spec.analysis.gates[2]", "min must not be greater than max, which defaults to 0 for alerts and ofrep");
    gate_failure_limit:
        set("/spec/analysis/gates/0/failureLimit", json!(1)),
        set("/spec/analysis/gates/0/failureLimit", json!(0)),
        ("spec.analysis.gates[0].failureLimit", "must be at least 1"),
        ("spec.analysis.gates[0].failureLimit", "failureLimit must be at least 1");
    gate_name_not_empty:
        set("/spec/analysis/gates/2/name", json!("d")),
        set("/spec/analysis/gates/2/name", json!("")),
        ("spec.analysis.gates[2].name", "must not be empty"),
        ("spec.analysis.gates[2].name", "name must not be empty");
    prometheus_query_not_empty:
        set("/spec/analysis/gates/0/prometheus/query", json!("up")),
        set("/spec/analysis/gates/0/prometheus/query", json!("")),
        ("spec.analysis.gates[0].prometheus.query", "must not be empty"),
        ("spec.analysis.gates[0].prometheus.query", "query must not be empty");
    prometheus_query_not_blank:
        set("/spec/analysis/gates/0/prometheus/query", json!(" up ")),
        set("/spec/analysis/gates/0/prometheus/query", json!(" \n\t")),
        ("spec.analysis.gates[0].prometheus.query", "must not be empty"),
        ("spec.analysis.gates[0].prometheus.query", "query must not be empty");
    prometheus_sample_query_and_min_sample_together:
        |p: &mut Value| {
            remove("/spec/analysis/gates/0/prometheus", "sampleQuery")(p);
            remove("/spec/analysis/gates/0/prometheus", "minSample")(p);
        },
        remove("/spec/analysis/gates/0/prometheus", "minSample"),
        ("spec.analysis.gates[0].prometheus", "sampleQuery and minSample must be set together"),
        ("spec.analysis.gates[0].prometheus", "sampleQuery and minSample must be set together");
    prometheus_address_http:
        set("/spec/analysis/gates/0/prometheus/address", json!("https://p")),
        set("/spec/analysis/gates/0/prometheus/address", json!("prometheus:9090")),
        ("spec.analysis.gates[0].prometheus.address", HTTP),
        ("spec.analysis.gates[0].prometheus.address", "address must start with http:// or https://");
    prometheus_timeout_positive:
        set("/spec/analysis/gates/0/prometheus/timeout", json!("1ns")),
        set("/spec/analysis/gates/0/prometheus/timeout", json!("0s")),
        ("spec.analysis.gates[0].prometheus.timeout", "must be positive"),
        ("spec.analysis.gates[0].prometheus.timeout", "timeout must be positive");
    compare_no_min_or_max:
        set("/spec/analysis/gates/4/compare/maxRegression", json!(0.01)),
        set("/spec/analysis/gates/4/max", json!(0.01)),
        ("spec.analysis.gates[4]", "min and max do not apply to a compare gate; its limit is compare.maxRegression"),
        ("spec.analysis.gates[4]", "min and max do not apply to a compare gate; its limit is compare.maxRegression");
    compare_no_min:
        nothing,
        set("/spec/analysis/gates/4/min", json!(0)),
        ("spec.analysis.gates[4]", "min and max do not apply to a compare gate; its limit is compare.maxRegression"),
        ("spec.analysis.gates[4]", "min and max do not apply to a compare gate; its limit is compare.maxRegression");
    compare_units_not_empty:
        set("/spec/analysis/gates/4/compare/units", json!("sum(x)")),
        set("/spec/analysis/gates/4/compare/units", json!(" \n")),
        ("spec.analysis.gates[4].compare.units", "must not be empty"),
        ("spec.analysis.gates[4].compare.units", "units must not be empty");
    compare_events_not_empty:
        set("/spec/analysis/gates/4/compare/events", json!("sum(y)")),
        set("/spec/analysis/gates/4/compare/events", json!("")),
        ("spec.analysis.gates[4].compare.events", "must not be empty"),
        ("spec.analysis.gates[4].compare.events", "events must not be empty");
    compare_confidence_low:
        set("/spec/analysis/gates/4/compare/confidence", json!(0.8)),
        set("/spec/analysis/gates/4/compare/confidence", json!(0.7999)),
        ("spec.analysis.gates[4].compare.confidence", "must be between 0.8 and 0.999"),
        ("spec.analysis.gates[4].compare.confidence", "confidence must be between 0.8 and 0.999");
    compare_confidence_high:
        set("/spec/analysis/gates/4/compare/confidence", json!(0.999)),
        set("/spec/analysis/gates/4/compare/confidence", json!(1.0)),
        ("spec.analysis.gates[4].compare.confidence", "must be between 0.8 and 0.999"),
        ("spec.analysis.gates[4].compare.confidence", "confidence must be between 0.8 and 0.999");
    compare_min_units:
        set("/spec/analysis/gates/4/compare/minUnits", json!(1)),
        set("/spec/analysis/gates/4/compare/minUnits", json!(0)),
        ("spec.analysis.gates[4].compare.minUnits", "must be at least 1"),
        ("spec.analysis.gates[4].compare.minUnits", "minUnits must be at least 1");
    compare_expected_units:
        set("/spec/analysis/gates/4/compare/expectedUnits", json!(1)),
        set("/spec/analysis/gates/4/compare/expectedUnits", json!(0)),
        ("spec.analysis.gates[4].compare.expectedUnits", "must be at least 1"),
        ("spec.analysis.gates[4].compare.expectedUnits", "expectedUnits must be at least 1");
    compare_max_regression:
        set("/spec/analysis/gates/4/compare/maxRegression", json!(0.0)),
        set("/spec/analysis/gates/4/compare/maxRegression", json!(-0.001)),
        ("spec.analysis.gates[4].compare.maxRegression", "must be a number not below 0"),
        ("spec.analysis.gates[4].compare.maxRegression", "maxRegression must not be negative");
    compare_address_http:
        set("/spec/analysis/gates/4/compare/address", json!("https://p")),
        set("/spec/analysis/gates/4/compare/address", json!("prometheus:9090")),
        ("spec.analysis.gates[4].compare.address", HTTP),
        ("spec.analysis.gates[4].compare.address", "address must start with http:// or https://");
    compare_timeout_positive:
        set("/spec/analysis/gates/4/compare/timeout", json!("1s")),
        set("/spec/analysis/gates/4/compare/timeout", json!("0s")),
        ("spec.analysis.gates[4].compare.timeout", "must be positive"),
        ("spec.analysis.gates[4].compare.timeout", "timeout must be positive");
    alerts_address_http:
        set("/spec/analysis/gates/1/alerts/address", json!("http://a")),
        set("/spec/analysis/gates/1/alerts/address", json!("tcp://a")),
        ("spec.analysis.gates[1].alerts.address", HTTP),
        ("spec.analysis.gates[1].alerts.address", "address must start with http:// or https://");
    alerts_timeout_positive:
        set("/spec/analysis/gates/1/alerts/timeout", json!("1s")),
        set("/spec/analysis/gates/1/alerts/timeout", json!("-1s")),
        ("spec.analysis.gates[1].alerts.timeout", "must be positive"),
        ("spec.analysis.gates[1].alerts.timeout", "timeout must be positive");
    ofrep_address_http:
        set("/spec/analysis/gates/2/ofrep/address", json!("https://flagd")),
        set("/spec/analysis/gates/2/ofrep/address", json!("flagd:8016")),
        ("spec.analysis.gates[2].ofrep.address", HTTP),
        ("spec.analysis.gates[2].ofrep.address", "address must start with http:// or https://");
    ofrep_sample_at_least_1:
        set("/spec/analysis/gates/2/ofrep/sample", json!(1)),
        set("/spec/analysis/gates/2/ofrep/sample", json!(0)),
        ("spec.analysis.gates[2].ofrep.sample", "must be between 1 and 10000"),
        ("spec.analysis.gates[2].ofrep.sample", "sample must be between 1 and 10000");
    ofrep_sample_at_most_10000:
        set("/spec/analysis/gates/2/ofrep/sample", json!(10_000)),
        set("/spec/analysis/gates/2/ofrep/sample", json!(10_001)),
        ("spec.analysis.gates[2].ofrep.sample", "must be between 1 and 10000"),
        ("spec.analysis.gates[2].ofrep.sample", "sample must be between 1 and 10000");
    ofrep_timeout_positive:
        set("/spec/analysis/gates/2/ofrep/timeout", json!("1ms")),
        set("/spec/analysis/gates/2/ofrep/timeout", json!("0")),
        ("spec.analysis.gates[2].ofrep.timeout", "must be positive"),
        ("spec.analysis.gates[2].ofrep.timeout", "timeout must be positive");
    http_url_http:
        set("/spec/analysis/gates/3/http/url", json!("http://status")),
        set("/spec/analysis/gates/3/http/url", json!("status.example/health")),
        ("spec.analysis.gates[3].http.url", HTTP),
        ("spec.analysis.gates[3].http.url", "url must start with http:// or https://");
    http_json_path:
        set("/spec/analysis/gates/3/http/jsonPath", json!("$")),
        set("/spec/analysis/gates/3/http/jsonPath", json!("ok")),
        ("spec.analysis.gates[3].http.jsonPath", "must start with $"),
        ("spec.analysis.gates[3].http.jsonPath", "jsonPath must start with $");
    http_timeout_positive:
        set("/spec/analysis/gates/3/http/timeout", json!("30s")),
        set("/spec/analysis/gates/3/http/timeout", json!("-5m")),
        ("spec.analysis.gates[3].http.timeout", "must be positive"),
        ("spec.analysis.gates[3].http.timeout", "timeout must be positive");
    target_one_kind_not_none:
        set(WEBHOOK, json!({"configMap": {"name": "c", "key": "k"}})),
        set(WEBHOOK, json!({})),
        ("spec.target", "must set exactly one of flagd, configMap and webhook"),
        ("spec.target", "target must set exactly one of flagd, configMap and webhook");
    target_one_kind_not_two:
        set(WEBHOOK, json!({"webhook": {"url": "http://w"}})),
        set(WEBHOOK, json!({"webhook": {"url": "http://w"}, "configMap": {"name": "c", "key": "k"}})),
        ("spec.target", "must set exactly one of flagd, configMap and webhook"),
        ("spec.target", "target must set exactly one of flagd, configMap and webhook");
    notification_one_kind_not_none:
        set("/spec/notifications", json!([{"slack": {"urlSecretRef": {"name": "s", "key": "url"}}}])),
        set("/spec/notifications", json!([{"when": ["rollback"]}])),
        ("spec.notifications[0]", "must set exactly one of webhook and slack"),
        ("spec.notifications[0]", "notification must set exactly one of webhook and slack");
    notification_one_kind_not_two:
        set("/spec/notifications", json!([{"webhook": {"urlSecretRef": {"name": "s", "key": "url"}}}])),
        set("/spec/notifications", json!([{"webhook": {"urlSecretRef": {"name": "s", "key": "url"}},
                                           "slack": {"urlSecretRef": {"name": "s", "key": "url"}}}])),
        ("spec.notifications[0]", "must set exactly one of webhook and slack"),
        ("spec.notifications[0]", "notification must set exactly one of webhook and slack");
    flagd_one_source_not_none:
        set("/spec/target/flagd", json!({"featureFlag": "ff", "flag": "f"})),
        set("/spec/target/flagd", json!({"flag": "f"})),
        ("spec.target.flagd", "must set exactly one of configMap and featureFlag"),
        ("spec.target.flagd", "flagd target must set exactly one of configMap and featureFlag");
    flagd_one_source_not_both:
        set("/spec/target/flagd", json!({"configMap": "ff", "flag": "f"})),
        set("/spec/target/flagd", json!({"configMap": "ff", "featureFlag": "ff", "flag": "f"})),
        ("spec.target.flagd", "must set exactly one of configMap and featureFlag"),
        ("spec.target.flagd", "flagd target must set exactly one of configMap and featureFlag");
    flagd_config_map_not_empty:
        set("/spec/target/flagd/configMap", json!("c")),
        set("/spec/target/flagd/configMap", json!("")),
        ("spec.target.flagd.configMap", "must not be empty"),
        ("spec.target.flagd.configMap", "configMap must not be empty");
    flagd_config_map_is_an_object_name:
        set("/spec/target/flagd/configMap", json!("feature-flags.v2")),
        set("/spec/target/flagd/configMap", json!("Feature_Flags")),
        ("spec.target.flagd.configMap", "\"Feature_Flags\" is not a Kubernetes object name: at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"),
        ("spec.target.flagd.configMap", "configMap must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit");
    flagd_feature_flag_is_an_object_name:
        set("/spec/target/flagd", json!({"featureFlag": "flags-1", "flag": "f"})),
        set("/spec/target/flagd", json!({"featureFlag": "flags-", "flag": "f"})),
        ("spec.target.flagd.featureFlag", "\"flags-\" is not a Kubernetes object name: at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"),
        ("spec.target.flagd.featureFlag", "featureFlag must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit");
    config_map_target_name_is_an_object_name:
        set(WEBHOOK, json!({"configMap": {"name": "pct", "key": "percent"}})),
        set(WEBHOOK, json!({"configMap": {"name": ".pct", "key": "percent"}})),
        ("spec.target.configMap.name", "\".pct\" is not a Kubernetes object name: at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"),
        ("spec.target.configMap.name", "name must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit");
    webhook_headers_secret_is_an_object_name:
        set(WEBHOOK, json!({"webhook": {"url": "https://flags.example/percent", "headersSecret": "hook-auth"}})),
        set(WEBHOOK, json!({"webhook": {"url": "https://flags.example/percent", "headersSecret": "hook auth"}})),
        ("spec.target.webhook.headersSecret", "\"hook auth\" is not a Kubernetes object name: at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"),
        ("spec.target.webhook.headersSecret", "headersSecret must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit");
    prometheus_secret_ref_is_an_object_name:
        set("/spec/analysis/gates/0/prometheus/secretRef", json!({"name": "prom-token"})),
        set("/spec/analysis/gates/0/prometheus/secretRef", json!({"name": "Prom"})),
        ("spec.analysis.gates[0].prometheus.secretRef.name", "\"Prom\" is not a Kubernetes object name: at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"),
        ("spec.analysis.gates[0].prometheus.secretRef", "secretRef must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit");
    compare_secret_ref_is_an_object_name:
        set("/spec/analysis/gates/4/compare/secretRef", json!({"name": "prom-token"})),
        set("/spec/analysis/gates/4/compare/secretRef", json!({"name": "Prom_Token"})),
        ("spec.analysis.gates[4].compare.secretRef.name", "\"Prom_Token\" is not a Kubernetes object name: at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"),
        ("spec.analysis.gates[4].compare.secretRef", "secretRef must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit");
    alerts_secret_ref_is_an_object_name:
        set("/spec/analysis/gates/1/alerts/secretRef", json!({"name": "prom-token"})),
        set("/spec/analysis/gates/1/alerts/secretRef", json!({"name": ""})),
        ("spec.analysis.gates[1].alerts.secretRef.name", "\"\" is not a Kubernetes object name: at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"),
        ("spec.analysis.gates[1].alerts.secretRef", "secretRef must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit");
    service_account_name_is_an_object_name:
        set("/spec/serviceAccountName", json!("deployer")),
        set("/spec/serviceAccountName", json!("system:deployer")),
        ("spec.serviceAccountName", "\"system:deployer\" is not a Kubernetes object name: at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"),
        ("spec.serviceAccountName", "serviceAccountName must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit");
    flagd_feature_flag_not_empty:
        set("/spec/target/flagd", json!({"featureFlag": "x", "flag": "f"})),
        set("/spec/target/flagd", json!({"featureFlag": "", "flag": "f"})),
        ("spec.target.flagd.featureFlag", "must not be empty"),
        ("spec.target.flagd.featureFlag", "featureFlag must not be empty");
    flagd_key_not_empty:
        set("/spec/target/flagd/key", json!("k")),
        set("/spec/target/flagd/key", json!("")),
        ("spec.target.flagd.key", "must not be empty"),
        ("spec.target.flagd.key", "key must not be empty");
    flagd_flag_not_empty:
        set("/spec/target/flagd/flag", json!("f")),
        set("/spec/target/flagd/flag", json!("")),
        ("spec.target.flagd.flag", "must not be empty"),
        ("spec.target.flagd.flag", "flag must not be empty");
    config_map_name_not_empty:
        set(WEBHOOK, json!({"configMap": {"name": "c", "key": "k"}})),
        set(WEBHOOK, json!({"configMap": {"name": "", "key": "k"}})),
        ("spec.target.configMap.name", "must not be empty"),
        ("spec.target.configMap.name", "name must not be empty");
    config_map_key_not_empty:
        set(WEBHOOK, json!({"configMap": {"name": "c", "key": "k"}})),
        set(WEBHOOK, json!({"configMap": {"name": "c", "key": ""}})),
        ("spec.target.configMap.key", "must not be empty"),
        ("spec.target.configMap.key", "key must not be empty");
    webhook_url_http:
        set(WEBHOOK, json!({"webhook": {"url": "https://flags"}})),
        set(WEBHOOK, json!({"webhook": {"url": "flags"}})),
        ("spec.target.webhook.url", HTTP),
        ("spec.target.webhook.url", "url must start with http:// or https://");
    webhook_timeout_positive:
        webhook("10s"),
        webhook("0s"),
        ("spec.target.webhook.timeout", "must be positive"),
        ("spec.target.webhook.timeout", "timeout must be positive");
    prometheus_timeout_at_most_30s:
        set("/spec/analysis/gates/0/prometheus/timeout", json!("30s")),
        set("/spec/analysis/gates/0/prometheus/timeout", json!("31s")),
        ("spec.analysis.gates[0].prometheus.timeout", "must be at most 30s, not 31s"),
        ("spec.analysis.gates[0].prometheus.timeout", "timeout must be at most 30s");
    alerts_timeout_at_most_30s:
        set("/spec/analysis/gates/1/alerts/timeout", json!("30000ms")),
        set("/spec/analysis/gates/1/alerts/timeout", json!("1m")),
        ("spec.analysis.gates[1].alerts.timeout", "must be at most 30s, not 60s"),
        ("spec.analysis.gates[1].alerts.timeout", "timeout must be at most 30s");
    ofrep_timeout_at_most_30s:
        set("/spec/analysis/gates/2/ofrep/timeout", json!("29s")),
        set("/spec/analysis/gates/2/ofrep/timeout", json!("30.5s")),
        ("spec.analysis.gates[2].ofrep.timeout", "must be at most 30s, not 30.5s"),
        ("spec.analysis.gates[2].ofrep.timeout", "timeout must be at most 30s");
    http_timeout_at_most_30s:
        set("/spec/analysis/gates/3/http/timeout", json!("0.5m")),
        set("/spec/analysis/gates/3/http/timeout", json!("1h")),
        ("spec.analysis.gates[3].http.timeout", "must be at most 30s, not 3600s"),
        ("spec.analysis.gates[3].http.timeout", "timeout must be at most 30s");
    compare_timeout_at_most_30s:
        set("/spec/analysis/gates/4/compare/timeout", json!("30s")),
        set("/spec/analysis/gates/4/compare/timeout", json!("45s")),
        ("spec.analysis.gates[4].compare.timeout", "must be at most 30s, not 45s"),
        ("spec.analysis.gates[4].compare.timeout", "timeout must be at most 30s");
    webhook_timeout_at_most_10s:
        webhook("10s"),
        webhook("11s"),
        ("spec.target.webhook.timeout", "must be at most 10s, not 11s"),
        ("spec.target.webhook.timeout", "timeout must be at most 10s");
    rollback_not_above_first_stage:
        set("/spec/rollback/percent", json!(1)),
        set("/spec/rollback/percent", json!(2)),
        ("spec.rollback.percent", "2 is above the first stage's percent (1): a rollback must never raise exposure"),
        ("spec", "rollback.percent must not exceed the first stage's percent: a rollback never raises exposure");
    the_whole_plan:
        nothing,
        set("/spec/stages/2/percent", json!(5)),
        ("spec.stages[2].percent", "stage percents must be strictly increasing (5 follows 5)"),
        ("spec.stages", "stage percents must be strictly increasing");
}

// ── rules enforced when a spec is read ───────────────────────────────────────────────────

/// The CEL duration-format rules' mirror: the Rust types read only durations of the CRD's
/// grammar, so a spec that breaks those rules never reaches `validate_spec`.
const READ_RULES: &[(&str, &str, &str)] = &[
    (
        "/spec/stages/0/duration",
        "spec.stages[0].duration",
        "duration must be a Go duration such as 90s, 2h or 1h30m",
    ),
    (
        "/spec/analysis/interval",
        "spec.analysis.interval",
        "interval must be a Go duration such as 30s, 1m or 1h",
    ),
    (
        "/spec/analysis/gates/0/prometheus/timeout",
        "spec.analysis.gates[0].prometheus.timeout",
        "timeout must be a Go duration such as 10s",
    ),
    (
        "/spec/analysis/gates/1/alerts/timeout",
        "spec.analysis.gates[1].alerts.timeout",
        "timeout must be a Go duration such as 10s",
    ),
    (
        "/spec/analysis/gates/4/compare/timeout",
        "spec.analysis.gates[4].compare.timeout",
        "timeout must be a Go duration such as 10s",
    ),
    (
        "/spec/analysis/gates/2/ofrep/timeout",
        "spec.analysis.gates[2].ofrep.timeout",
        "timeout must be a Go duration such as 10s",
    ),
    (
        "/spec/analysis/gates/3/http/timeout",
        "spec.analysis.gates[3].http.timeout",
        "timeout must be a Go duration such as 10s",
    ),
    (
        "/spec/target/webhook/timeout",
        "spec.target.webhook.timeout",
        "timeout must be a Go duration such as 10s",
    ),
];

/// The CEL percent rules' mirror: [`rollgate::api::Percent`] reads only numbers from 0 to 100
/// with at most two decimals, so a spec that breaks them never reaches `validate_spec`; the
/// error names the value (and `lint`/`simulate` name the field, see `tests/engine/simulate.rs`).
const PERCENT_FIELDS: &[(&str, &str)] = &[
    ("/spec/stages/2/percent", "spec.stages[2].percent"),
    ("/spec/rollback/percent", "spec.rollback.percent"),
];
const PERCENT_RANGE: &str = "percent must be between 0 and 100";
const PERCENT_DECIMALS: &str = "percent takes at most two decimals (steps of 0.01)";

#[test]
fn percents_with_two_decimals_pass_both_sides() {
    let object = changed(|p| {
        p["spec"]["stages"] = json!([{"percent": 0.5}, {"percent": 2.25}, {"percent": 12.29}]);
        p["spec"]["rollback"]["percent"] = json!(0.29);
    });
    accepts(object.clone());
    if let Err(errors) = rollout(&object).validate_cel() {
        panic!("{errors}");
    }
    let spec = rollout(&object).spec;
    let read: Vec<u16> = spec
        .stages
        .iter()
        .map(|s| s.percent.basis_points())
        .collect();
    assert_eq!(read, [50, 225, 1229]);
    assert_eq!(spec.rollback.percent.basis_points(), 29);
}

#[test]
fn percents_out_of_range_or_with_a_third_decimal_are_refused_when_read_and_by_cel() {
    let schema = schema();
    for &(pointer, path) in PERCENT_FIELDS {
        // Values that keep the other rules (stages increasing, rollback not above the first).
        let (out_of_range, third_decimal) = if pointer.contains("stages") {
            (
                [json!(101), json!(100.5), json!(255)],
                [json!(10.001), json!(10.125), json!(12.345)],
            )
        } else {
            (
                [json!(-1), json!(-0.5), json!(101)],
                [json!(0.001), json!(0.125), json!(0.995)],
            )
        };
        let cases = out_of_range
            .iter()
            .map(|v| (v, "is not between 0 and 100", PERCENT_RANGE))
            .chain(
                third_decimal
                    .iter()
                    .map(|v| (v, "has more than two decimals", PERCENT_DECIMALS)),
            );
        for (value, rust, cel) in cases {
            let mut object = plan();
            *object.pointer_mut(pointer).expect("the field exists") = value.clone();
            let error = serde_json::from_value::<Rollout>(object.clone())
                .expect_err("the Rust types read a percent the CRD refuses")
                .to_string();
            assert!(
                error.contains(rust) && error.contains(&value.to_string()),
                "{pointer} = {value}: {error}"
            );
            let errors = kube::core::cel::Validator::new()
                .validate(&schema, &object, None)
                .expect_err("the CEL rules accept the percent")
                .into_vec();
            let found: Vec<_> = errors
                .iter()
                .map(|e| (e.field_path.as_str(), e.message.as_str()))
                .collect();
            assert_eq!(found, [(path, cel)], "{pointer} = {value}");
        }
    }
}

fn with_webhook_target() -> Value {
    changed(webhook("10s"))
}

#[test]
fn durations_of_another_grammar_are_refused_when_read_and_by_cel() {
    let schema = schema();
    for &(pointer, path, message) in READ_RULES {
        for text in [
            "2 hours",
            "1d",
            "",
            "+-5s",
            ".s",
            "99999999999999999999h",
            "1h-5m",
        ] {
            let mut object = if pointer.starts_with("/spec/target/webhook") {
                with_webhook_target()
            } else {
                plan()
            };
            *object.pointer_mut(pointer).expect("the field exists") = json!(text);
            let error = serde_json::from_value::<Rollout>(object.clone())
                .expect_err("the Rust types read a duration of another grammar")
                .to_string();
            assert!(
                error.contains("is not a Go duration") || error.contains("too long a duration"),
                "{pointer} = {text:?}: {error}"
            );
            if text == "99999999999999999999h" {
                // Of the grammar but beyond Go's range: the API server's `duration()` fails on
                // it (an error, so a rejection) while kube-cel's saturates; only Rust is checked.
                continue;
            }
            let errors = kube::core::cel::Validator::new()
                .validate(&schema, &object, None)
                .expect_err("the CEL rules accept a duration of another grammar")
                .into_vec();
            let found: Vec<_> = errors
                .iter()
                .map(|e| (e.field_path.as_str(), e.message.as_str()))
                .collect();
            assert_eq!(found, [(path, message)], "{pointer} = {text:?}");
        }
    }
}

#[test]
fn reading_an_overlong_duration_is_an_error_not_a_panic() {
    for text in [
        "99999999999999999999h",
        "2562048h",
        "1h-5m",
        "18446744073709551615s1s",
    ] {
        let object = changed(set("/spec/stages/0/duration", json!(text)));
        let result = std::panic::catch_unwind(|| serde_json::from_value::<Rollout>(object));
        assert!(
            matches!(result, Ok(Err(_))),
            "{text:?} did not give a plain error"
        );
    }
}

// ── checks only the Rust side needs ─────────────────────────────────────────────────────

#[test]
fn nan_bounds_are_not_numbers() {
    // JSON has no NaN, so only a plan built in Rust can hold one.
    let mut spec: RolloutSpec = rollout(&plan()).spec;
    spec.analysis.gates[0].min = Some(f64::NAN);
    spec.analysis.gates[0].max = Some(f64::NAN);
    assert_eq!(
        validate_spec(&spec),
        Err(vec![
            SpecError {
                field: "spec.analysis.gates[0].min".into(),
                problem: "must be a number".into()
            },
            SpecError {
                field: "spec.analysis.gates[0].max".into(),
                problem: "must be a number".into()
            },
        ])
    );
}

#[test]
fn schema_limits_are_checked_too() {
    // The API server enforces the schema's maxItems and maxLength without CEL.
    let many_stages: Vec<Value> = (0..=100).map(|p| json!({"percent": p})).collect();
    assert_eq!(many_stages.len(), 101);
    rejects(
        changed(set("/spec/stages", json!(many_stages))),
        "spec.stages",
        "must have at most 100 stages",
    );
    accepts(changed(set("/spec/stages", json!(many_stages[..100]))));

    let gates = |n: usize| -> Value {
        (0..n)
            .map(|i| json!({"name": format!("g{i}"), "alerts": {}}))
            .collect()
    };
    rejects(
        changed(set("/spec/analysis/gates", gates(33))),
        "spec.analysis.gates",
        "must have at most 32 gates",
    );
    accepts(changed(set("/spec/analysis/gates", gates(32))));

    rejects(
        changed(set("/spec/analysis/gates/1/name", json!("x".repeat(64)))),
        "spec.analysis.gates[1].name",
        "must be at most 63 characters",
    );
    accepts(changed(set(
        "/spec/analysis/gates/1/name",
        json!("é".repeat(63)),
    )));

    let schema = schema();
    let stages = &schema["properties"]["spec"]["properties"]["stages"];
    assert_eq!(stages["maxItems"], json!(100));
    let gates = &schema["properties"]["spec"]["properties"]["analysis"]["properties"]["gates"];
    assert_eq!(gates["maxItems"], json!(32));
    assert_eq!(gates["items"]["properties"]["name"]["maxLength"], json!(63));

    let duration = &stages["items"]["properties"]["duration"];
    assert_eq!(duration["maxLength"], json!(64));
    let read = |text: String| {
        serde_json::from_value::<Rollout>(changed(set("/spec/stages/0/duration", json!(text))))
    };
    assert!(read("0s".repeat(32)).is_ok());
    let error = read("0s".repeat(33)).expect_err("a 66-character duration reads");
    assert!(
        error.to_string().contains("at most 64 characters"),
        "{error}"
    );
}

#[test]
fn every_broken_rule_is_reported_at_once() {
    let object = changed(|p| {
        p["spec"]["stages"] = json!([{"percent": 10}, {"percent": 5}]);
        p["spec"]["analysis"]["errorLimit"] = json!(0);
        p["spec"]["rollback"]["percent"] = json!(20);
    });
    let errors = validate_spec(&rollout(&object).spec).expect_err("three rules are broken");
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.stages[1].percent",
            "spec.analysis.errorLimit",
            "spec.rollback.percent"
        ]
    );
    assert_eq!(
        errors[1].to_string(),
        "spec.analysis.errorLimit: must be at least 1"
    );
}

// ── the same set of rules on both sides ─────────────────────────────────────────────────

fn schema() -> Value {
    let crd = Rollout::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("the CRD has an openAPIV3Schema");
    serde_json::to_value(schema).expect("the schema serializes")
}

/// Every CEL rule of the schema as (path with `[]` for list items, message).
fn crd_rules(node: &Value, path: &str, found: &mut BTreeSet<(String, String)>) {
    for rule in node
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let message = rule["message"].as_str().unwrap_or_default().to_owned();
        found.insert((path.to_owned(), message));
    }
    for (name, child) in node
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let child_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        crd_rules(child, &child_path, found);
    }
    if let Some(items) = node.get("items") {
        crd_rules(items, &format!("{path}[]"), found);
    }
}

/// `spec.analysis.gates[0].name` as `spec.analysis.gates[].name`.
fn generic(path: &str) -> String {
    let mut out = String::new();
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

#[test]
fn notification_secret_names_are_object_names() {
    let plan = changed(set(
        "/spec/notifications",
        json!([{"webhook": {"urlSecretRef": {"name": "Hooks", "key": "url"}}}]),
    ));
    rejects(
        plan,
        "spec.notifications[0].webhook.urlSecretRef.name",
        "\"Hooks\" is not a Kubernetes object name: at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
    );
    accepts(changed(set(
        "/spec/notifications",
        json!([{"slack": {"urlSecretRef": {"name": "hooks.team-a", "key": "url"}}}]),
    )));
}

#[test]
fn the_rows_are_the_crds_cel_rules() {
    let mut in_crd = BTreeSet::new();
    crd_rules(&schema(), "", &mut in_crd);
    let mut in_rows: BTreeSet<(String, String)> = ROWS
        .iter()
        .map(|(path, message)| (generic(path), (*message).to_owned()))
        .collect();
    in_rows.extend(
        READ_RULES
            .iter()
            .map(|(_, path, message)| (generic(path), (*message).to_owned())),
    );
    for (_, path) in PERCENT_FIELDS {
        for message in [PERCENT_RANGE, PERCENT_DECIMALS] {
            in_rows.insert((generic(path).replace("[2]", "[]"), message.to_owned()));
        }
    }
    let missing: Vec<_> = in_crd.difference(&in_rows).collect();
    let extra: Vec<_> = in_rows.difference(&in_crd).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "CEL rules with no validate_spec row: {missing:#?}\nrows with no CEL rule: {extra:#?}"
    );
}
