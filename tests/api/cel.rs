//! The CRD's CEL rules, evaluated client-side with kube-cel (`Rollout::validate_cel`): for every
//! rule, a plan at the edge of what it allows passes, and a plan that breaks it is rejected
//! with that rule's message at that rule's field, and for nothing else.
//!
//! `every_cel_rule_has_a_rejecting_test` fails when the CRD gains a rule this file does not
//! exercise.

use kube::CustomResourceExt;
use kube::core::cel::{ErrorKind, ScopeContext, ValidationError, Validator, WarningKind};
use rollgate::api::Rollout;
use serde_json::{Value, json};

use crate::support::{example_json, example_rollout};

/// A plan that uses every field with a rule: the example plan (a flagd target and three
/// gates) with every gate's address and timeout set, an HTTP check and a compare gate.
fn plan() -> Value {
    let mut plan = example_json("passenger-favorites-matching");
    plan["spec"]["paused"] = json!(false);
    let gates = &mut plan["spec"]["analysis"]["gates"];
    let prometheus = &mut gates[0]["prometheus"];
    prometheus["address"] = json!("http://prometheus:9090");
    prometheus["sampleQuery"] = json!("sum(increase(http_requests_total[1h]))");
    prometheus["minSample"] = json!(100.0);
    prometheus["timeout"] = json!("10s");
    gates[1]["alerts"]["address"] = json!("https://alertmanager.example:9090");
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
            "better": "lower",
            "maxRegression": 0.002,
            "confidence": 0.95,
            "minUnits": 500,
            "expectedUnits": 5000,
            "timeout": "10s"
        }
    }));
    plan
}

/// The plan with one change applied to it.
fn plan_with(change: impl FnOnce(&mut Value)) -> Value {
    let mut plan = plan();
    change(&mut plan);
    plan
}

/// Reads the object as a `Rollout` and runs its CEL rules.
fn cel(object: &Value) -> Result<(), Vec<ValidationError>> {
    let rollout: Rollout = serde_json::from_value(object.clone())
        .unwrap_or_else(|e| panic!("the test plan does not deserialize: {e}\n{object:#}"));
    rollout.validate_cel().map_err(|errors| errors.into_vec())
}

/// Runs the CRD's CEL rules on JSON the Rust types refuse to read (a duration of another
/// grammar), after checking that they do refuse it: the same schema and validator
/// `Rollout::validate_cel` uses.
fn cel_on_json_rust_refuses(object: &Value) -> Result<(), Vec<ValidationError>> {
    assert!(
        serde_json::from_value::<Rollout>(object.clone()).is_err(),
        "the Rust types read a plan the CRD must reject:\n{object:#}"
    );
    Validator::new()
        .validate(&schema(), object, None)
        .map_err(|errors| errors.into_vec())
}

fn schema() -> Value {
    let crd = Rollout::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("the CRD has an openAPIV3Schema");
    serde_json::to_value(schema).expect("the schema serializes")
}

#[track_caller]
fn accepts(object: Value) {
    if let Err(errors) = cel(&object) {
        panic!("a good plan was rejected: {errors:#?}\n{object:#}");
    }
}

/// Asserts the rules reject the object with exactly one error: `message` at `path`.
#[track_caller]
fn rejected_with(result: Result<(), Vec<ValidationError>>, path: &str, message: &str) {
    let errors = match result {
        Ok(()) => panic!("a bad plan was accepted; expected {path}: {message}"),
        Err(errors) => errors,
    };
    let found: Vec<_> = errors
        .iter()
        .map(|e| (e.field_path.as_str(), e.message.as_str(), &e.kind))
        .collect();
    assert_eq!(
        found,
        [(path, message, &ErrorKind::ValidationFailure)],
        "expected exactly one failure, {path}: {message}"
    );
}

#[track_caller]
fn rejects(object: Value, path: &str, message: &str) {
    rejected_with(cel(&object), path, message);
}

// ── the whole plan ────────────────────────────────────────────────────────────────────────

#[test]
fn the_full_plan_passes() {
    accepts(plan());
}

#[test]
fn the_design_example_passes() {
    let rollout = example_rollout("passenger-favorites-matching");
    if let Err(errors) = rollout.validate_cel() {
        panic!("the design's example was rejected: {errors}");
    }
}

#[test]
fn a_minimal_plan_passes_with_defaults() {
    accepts(json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "minimal"},
        "spec": {
            "target": {"configMap": {"name": "rollout", "key": "percent"}},
            "stages": [{"percent": 100}]
        }
    }));
}

// ── stages ───────────────────────────────────────────────────────────────────────────────

#[test]
fn stages_not_empty_accepts_one_stage() {
    accepts(plan_with(|p| {
        p["spec"]["stages"] = json!([{"percent": 100}])
    }));
}

#[test]
fn stages_not_empty_rejects_no_stages() {
    rejects(
        plan_with(|p| p["spec"]["stages"] = json!([])),
        "spec.stages",
        "stages must not be empty",
    );
}

#[test]
fn stage_percents_increasing_accepts_increasing_steps() {
    for percents in [
        vec![0],
        vec![0, 100],
        vec![1, 2, 3],
        vec![1, 5, 10, 25, 50, 100],
    ] {
        let stages: Vec<Value> = percents.iter().map(|p| json!({"percent": p})).collect();
        accepts(plan_with(|p| p["spec"]["stages"] = json!(stages)));
    }
}

#[test]
fn stage_percents_increasing_rejects_repeats_and_decreases() {
    for percents in [
        vec![5, 5],
        vec![5, 1],
        vec![1, 10, 5],
        vec![1, 5, 10, 10],
        vec![50, 1, 100],
    ] {
        let stages: Vec<Value> = percents.iter().map(|p| json!({"percent": p})).collect();
        rejects(
            plan_with(|p| p["spec"]["stages"] = json!(stages)),
            "spec.stages",
            "stage percents must be strictly increasing",
        );
    }
}

#[test]
fn stage_percent_range_accepts_0_and_100() {
    accepts(plan_with(|p| {
        p["spec"]["stages"] = json!([{"percent": 0}, {"percent": 100}]);
    }));
}

#[test]
fn stage_percent_range_rejects_101() {
    rejected_with(
        cel_on_json_rust_refuses(&plan_with(|p| {
            p["spec"]["stages"] = json!([{"percent": 1}, {"percent": 101}]);
        })),
        "spec.stages[1].percent",
        "percent must be between 0 and 100",
    );
}

/// Runs the CRD's CEL rules on JSON as written, without the Rust types in between (so `0.29`
/// stays the double the API server sees).
fn cel_on_json(object: &Value) -> Result<(), Vec<ValidationError>> {
    Validator::new()
        .validate(&schema(), object, None)
        .map_err(|errors| errors.into_vec())
}

#[test]
fn percent_decimals_accept_two_decimals_within_the_tolerance() {
    for percent in [
        json!(0.5),
        json!(0.29),
        json!(2.25),
        json!(100),
        json!(0.01),
        json!(99.99),
    ] {
        let plan = plan_with(|p| {
            p["spec"]["stages"] = json!([{"percent": percent}]);
            p["spec"]["rollback"] = json!({"percent": 0});
        });
        accepts(plan.clone());
        if let Err(errors) = cel_on_json(&plan) {
            panic!("{percent} was rejected: {errors:#?}");
        }
    }
    // A rollback percent with decimals, under a first stage with decimals.
    let plan = plan_with(|p| {
        p["spec"]["stages"] = json!([{"percent": 0.5}, {"percent": 2.25}]);
        p["spec"]["rollback"] = json!({"percent": 0.29});
    });
    accepts(plan.clone());
    assert!(cel_on_json(&plan).is_ok());
}

#[test]
fn percent_decimals_reject_a_third_decimal() {
    for percent in [10.001, 10.125, 12.255] {
        rejected_with(
            cel_on_json_rust_refuses(&plan_with(|p| {
                p["spec"]["stages"] = json!([{"percent": 1}, {"percent": 5}, {"percent": percent}]);
            })),
            "spec.stages[2].percent",
            "percent takes at most two decimals (steps of 0.01)",
        );
    }
    rejected_with(
        cel_on_json_rust_refuses(&plan_with(|p| {
            p["spec"]["rollback"] = json!({"percent": 0.001})
        })),
        "spec.rollback.percent",
        "percent takes at most two decimals (steps of 0.01)",
    );
}

#[test]
fn percent_range_rejects_100_5_once() {
    // Out of range is the range rule's alone: the decimals rule stays quiet.
    rejected_with(
        cel_on_json_rust_refuses(&plan_with(|p| {
            p["spec"]["stages"] = json!([{"percent": 1}, {"percent": 100.5}]);
        })),
        "spec.stages[1].percent",
        "percent must be between 0 and 100",
    );
}

#[test]
fn stage_duration_format_accepts_go_durations() {
    for duration in [
        "0", "0s", "90s", "2h", "1h30m", "1.5h", "250ms", "10us", "10µs", "10μs", "100ns",
    ] {
        accepts(plan_with(|p| {
            p["spec"]["stages"][0]["duration"] = json!(duration)
        }));
    }
}

#[test]
fn stage_duration_format_accepts_what_kube_writes() {
    // kube writes a Duration as Rust's `Debug` does: `7200s`, `1.5s`, `10µs`.
    let mut rollout: Rollout = serde_json::from_value(plan()).expect("the plan reads");
    for duration in [
        std::time::Duration::from_secs(7200),
        std::time::Duration::from_millis(1500),
        std::time::Duration::from_micros(10),
        std::time::Duration::from_nanos(1),
        std::time::Duration::ZERO,
    ] {
        rollout.spec.stages[0].duration = duration.into();
        if let Err(errors) = rollout.validate_cel() {
            panic!("{duration:?} was rejected: {errors}");
        }
    }
}

#[test]
fn stage_duration_format_rejects_other_grammars() {
    for duration in [
        "2 hours", "2hours", "1d", "", "2", "+-5s", ".s", "1h-5m", "PT2H", "1h 30m",
    ] {
        let plan = plan_with(|p| p["spec"]["stages"][0]["duration"] = json!(duration));
        rejected_with(
            cel_on_json_rust_refuses(&plan),
            "spec.stages[0].duration",
            "duration must be a Go duration such as 90s, 2h or 1h30m",
        );
    }
}

#[test]
fn stage_duration_format_accepts_what_go_accepts() {
    // Go's time.ParseDuration reads a leading `+`, a number without a whole part and one
    // without a fraction; so do the Rust parser and the CEL rules.
    for duration in ["+5s", ".5s", "5.s", "+0", "-0", "2562047h47m16.854775807s"] {
        accepts(plan_with(|p| {
            p["spec"]["stages"][0]["duration"] = json!(duration)
        }));
    }
}

#[test]
fn stage_duration_not_negative_accepts_zero() {
    for duration in ["0s", "-0s", "1ns"] {
        accepts(plan_with(|p| {
            p["spec"]["stages"][1]["duration"] = json!(duration)
        }));
    }
}

#[test]
fn stage_duration_not_negative_rejects_negative() {
    for duration in ["-1ns", "-2h"] {
        rejects(
            plan_with(|p| p["spec"]["stages"][1]["duration"] = json!(duration)),
            "spec.stages[1].duration",
            "duration must not be negative",
        );
    }
}

// ── analysis ─────────────────────────────────────────────────────────────────────────────

#[test]
fn interval_format_accepts_go_durations() {
    for interval in ["1m", "30s", "1h30m", "0.5h"] {
        accepts(plan_with(|p| {
            p["spec"]["analysis"]["interval"] = json!(interval)
        }));
    }
}

#[test]
fn interval_format_rejects_other_grammars() {
    for interval in ["1 minute", "1", "hourly", "1w"] {
        let plan = plan_with(|p| p["spec"]["analysis"]["interval"] = json!(interval));
        rejected_with(
            cel_on_json_rust_refuses(&plan),
            "spec.analysis.interval",
            "interval must be a Go duration such as 30s, 1m or 1h",
        );
    }
}

#[test]
fn interval_at_least_1s_accepts_one_second() {
    for interval in ["1s", "1000ms", "+1s", "0.5m"] {
        accepts(plan_with(|p| {
            p["spec"]["analysis"]["interval"] = json!(interval)
        }));
    }
}

#[test]
fn interval_at_least_1s_rejects_less() {
    for interval in ["1ns", "999ms", "0", "0s", "-0s", "-1m"] {
        rejects(
            plan_with(|p| p["spec"]["analysis"]["interval"] = json!(interval)),
            "spec.analysis.interval",
            "interval must be at least 1s",
        );
    }
}

#[test]
fn error_limit_accepts_1() {
    accepts(plan_with(|p| {
        p["spec"]["analysis"]["errorLimit"] = json!(1)
    }));
}

#[test]
fn error_limit_rejects_0() {
    rejects(
        plan_with(|p| p["spec"]["analysis"]["errorLimit"] = json!(0)),
        "spec.analysis.errorLimit",
        "errorLimit must be at least 1",
    );
}

#[test]
fn gate_names_unique_accepts_distinct_names_and_no_gates() {
    accepts(plan());
    accepts(plan_with(|p| p["spec"]["analysis"]["gates"] = json!([])));
    accepts(plan_with(|p| {
        p["spec"]["analysis"]
            .as_object_mut()
            .map(|a| a.remove("gates"));
    }));
}

#[test]
fn gate_names_unique_rejects_a_repeated_name() {
    rejects(
        plan_with(|p| p["spec"]["analysis"]["gates"][3]["name"] = json!("error-rate")),
        "spec.analysis",
        "gate names must be unique",
    );
}

// ── gates ────────────────────────────────────────────────────────────────────────────────

const ONE_PROVIDER: &str =
    "gate must set exactly one of prometheus, alerts, ofrep, http and compare";

#[test]
fn one_provider_accepts_each_provider_alone() {
    let gates = plan()["spec"]["analysis"]["gates"].clone();
    for i in 0..5 {
        let gate = gates[i].clone();
        accepts(plan_with(|p| {
            p["spec"]["analysis"]["gates"] = json!([gate])
        }));
    }
}

#[test]
fn one_provider_rejects_none() {
    rejects(
        plan_with(|p| p["spec"]["analysis"]["gates"] = json!([{"name": "nothing", "max": 1}])),
        "spec.analysis.gates[0]",
        ONE_PROVIDER,
    );
}

#[test]
fn one_provider_rejects_two() {
    rejects(
        plan_with(|p| {
            let alerts = p["spec"]["analysis"]["gates"][1]["alerts"].clone();
            p["spec"]["analysis"]["gates"][0]["alerts"] = alerts;
        }),
        "spec.analysis.gates[0]",
        ONE_PROVIDER,
    );
}

#[test]
fn min_max_accepts_equal_bounds_and_one_bound() {
    accepts(plan_with(|p| {
        p["spec"]["analysis"]["gates"][0]["min"] = json!(0.01);
        p["spec"]["analysis"]["gates"][0]["max"] = json!(0.01);
        p["spec"]["analysis"]["gates"][3]["min"] = json!(-5.0);
    }));
}

#[test]
fn min_max_rejects_min_above_max() {
    rejects(
        plan_with(|p| p["spec"]["analysis"]["gates"][0]["min"] = json!(0.02)),
        "spec.analysis.gates[0]",
        "min must not be greater than max",
    );
}

const DEFAULT_MAX: &str =
    "min must not be greater than max, which defaults to 0 for alerts and ofrep";

#[test]
fn min_with_default_max_accepts_zero_or_an_explicit_max() {
    accepts(plan_with(|p| {
        p["spec"]["analysis"]["gates"][1]["min"] = json!(0);
        p["spec"]["analysis"]["gates"][2]["min"] = json!(5);
        p["spec"]["analysis"]["gates"][2]["max"] = json!(5);
        // Only the counting providers default max to 0.
        p["spec"]["analysis"]["gates"][3]["min"] = json!(5);
    }));
}

#[test]
fn min_with_default_max_rejects_a_positive_min_on_counting_gates() {
    for (gate, min) in [(1, json!(1)), (2, json!(0.5))] {
        rejects(
            plan_with(|p| p["spec"]["analysis"]["gates"][gate]["min"] = min),
            &format!("spec.analysis.gates[{gate}]"),
            DEFAULT_MAX,
        );
    }
}

#[test]
fn failure_limit_accepts_1() {
    accepts(plan_with(|p| {
        p["spec"]["analysis"]["gates"][0]["failureLimit"] = json!(1);
    }));
}

#[test]
fn failure_limit_rejects_0() {
    rejects(
        plan_with(|p| p["spec"]["analysis"]["gates"][2]["failureLimit"] = json!(0)),
        "spec.analysis.gates[2].failureLimit",
        "failureLimit must be at least 1",
    );
}

#[test]
fn gate_name_accepts_one_character() {
    accepts(plan_with(|p| {
        p["spec"]["analysis"]["gates"][1]["name"] = json!("a")
    }));
}

#[test]
fn gate_name_rejects_empty() {
    rejects(
        plan_with(|p| p["spec"]["analysis"]["gates"][1]["name"] = json!("")),
        "spec.analysis.gates[1].name",
        "name must not be empty",
    );
}

#[test]
fn query_accepts_a_short_query() {
    accepts(plan_with(|p| {
        p["spec"]["analysis"]["gates"][0]["prometheus"]["query"] = json!("up");
    }));
}

#[test]
fn query_rejects_empty_and_blank() {
    for query in ["", "  \n\t"] {
        rejects(
            plan_with(|p| p["spec"]["analysis"]["gates"][0]["prometheus"]["query"] = json!(query)),
            "spec.analysis.gates[0].prometheus.query",
            "query must not be empty",
        );
    }
}

#[test]
fn sample_query_and_min_sample_accepts_both_or_neither() {
    accepts(plan());
    accepts(plan_with(|p| {
        let prometheus = p["spec"]["analysis"]["gates"][0]["prometheus"]
            .as_object_mut()
            .expect("an object");
        prometheus.remove("sampleQuery");
        prometheus.remove("minSample");
    }));
}

#[test]
fn sample_query_and_min_sample_rejects_one_alone() {
    for field in ["sampleQuery", "minSample"] {
        rejects(
            plan_with(|p| {
                p["spec"]["analysis"]["gates"][0]["prometheus"]
                    .as_object_mut()
                    .expect("an object")
                    .remove(field);
            }),
            "spec.analysis.gates[0].prometheus",
            "sampleQuery and minSample must be set together",
        );
    }
}

/// Paths (from a gate) of the addresses and URLs that must be HTTP(S).
const URLS: [(usize, &str, &str); 5] = [
    (0, "prometheus", "address"),
    (1, "alerts", "address"),
    (2, "ofrep", "address"),
    (3, "http", "url"),
    (4, "compare", "address"),
];

#[test]
fn gate_urls_accept_http_and_https() {
    for (gate, provider, field) in URLS {
        for url in ["http://a", "https://b:8443/path"] {
            accepts(plan_with(|p| {
                p["spec"]["analysis"]["gates"][gate][provider][field] = json!(url);
            }));
        }
    }
}

#[test]
fn gate_urls_reject_other_schemes() {
    for (gate, provider, field) in URLS {
        for url in ["prometheus:9090", "ftp://x", "", "HTTP://x"] {
            rejects(
                plan_with(|p| p["spec"]["analysis"]["gates"][gate][provider][field] = json!(url)),
                &format!("spec.analysis.gates[{gate}].{provider}.{field}"),
                &format!("{field} must start with http:// or https://"),
            );
        }
    }
}

// ── the compare gate ──────────────────────────────────────────────────────────────────────

#[test]
fn compare_defaults_pass_with_only_the_queries() {
    accepts(plan_with(|p| {
        let gate = &mut p["spec"]["analysis"]["gates"][4]["compare"];
        *gate = json!({"units": gate["units"].clone(), "events": gate["events"].clone()});
    }));
}

#[test]
fn compare_refuses_min_and_max() {
    for bound in ["min", "max"] {
        rejects(
            plan_with(|p| p["spec"]["analysis"]["gates"][4][bound] = json!(0.0)),
            "spec.analysis.gates[4]",
            "min and max do not apply to a compare gate; its limit is compare.maxRegression",
        );
    }
}

#[test]
fn compare_queries_must_not_be_empty() {
    for (field, message) in [
        ("units", "units must not be empty"),
        ("events", "events must not be empty"),
    ] {
        for query in ["", "  "] {
            rejects(
                plan_with(|p| p["spec"]["analysis"]["gates"][4]["compare"][field] = json!(query)),
                &format!("spec.analysis.gates[4].compare.{field}"),
                message,
            );
        }
    }
}

#[test]
fn compare_confidence_accepts_0_8_to_0_999() {
    for confidence in [0.8, 0.9, 0.999] {
        accepts(plan_with(|p| {
            p["spec"]["analysis"]["gates"][4]["compare"]["confidence"] = json!(confidence);
        }));
    }
}

#[test]
fn compare_confidence_rejects_outside() {
    for confidence in [0.79, 0.9991, 1.0, 0.0, -0.95] {
        rejects(
            plan_with(|p| {
                p["spec"]["analysis"]["gates"][4]["compare"]["confidence"] = json!(confidence)
            }),
            "spec.analysis.gates[4].compare.confidence",
            "confidence must be between 0.8 and 0.999",
        );
    }
}

#[test]
fn compare_counts_and_regression_accept_their_least_values() {
    accepts(plan_with(|p| {
        let gate = &mut p["spec"]["analysis"]["gates"][4]["compare"];
        gate["minUnits"] = json!(1);
        gate["expectedUnits"] = json!(1);
        gate["maxRegression"] = json!(0.0);
        gate["relative"] = json!(true);
        gate["better"] = json!("higher");
        gate["sampleRatio"] = json!(true);
        gate["treatment"] = json!("blue");
        gate["control"] = json!("green");
    }));
}

#[test]
fn compare_counts_and_regression_reject_below() {
    for (field, value, message) in [
        ("minUnits", json!(0), "minUnits must be at least 1"),
        (
            "expectedUnits",
            json!(0),
            "expectedUnits must be at least 1",
        ),
        (
            "maxRegression",
            json!(-0.001),
            "maxRegression must not be negative",
        ),
    ] {
        rejects(
            plan_with(|p| p["spec"]["analysis"]["gates"][4]["compare"][field] = value),
            &format!("spec.analysis.gates[4].compare.{field}"),
            message,
        );
    }
}

#[test]
fn ofrep_sample_accepts_1_and_10000() {
    for sample in [1, 10_000] {
        accepts(plan_with(|p| {
            p["spec"]["analysis"]["gates"][2]["ofrep"]["sample"] = json!(sample);
        }));
    }
}

#[test]
fn ofrep_sample_rejects_0_and_10001() {
    for sample in [0, 10_001, 100_000] {
        rejects(
            plan_with(|p| p["spec"]["analysis"]["gates"][2]["ofrep"]["sample"] = json!(sample)),
            "spec.analysis.gates[2].ofrep.sample",
            "sample must be between 1 and 10000",
        );
    }
}

#[test]
fn json_path_accepts_a_dollar_path() {
    for path in ["$", "$.errorRate", "$['ok']"] {
        accepts(plan_with(|p| {
            p["spec"]["analysis"]["gates"][3]["http"]["jsonPath"] = json!(path);
        }));
    }
}

#[test]
fn json_path_rejects_a_path_without_dollar() {
    for path in ["errorRate", ".ok", ""] {
        rejects(
            plan_with(|p| p["spec"]["analysis"]["gates"][3]["http"]["jsonPath"] = json!(path)),
            "spec.analysis.gates[3].http.jsonPath",
            "jsonPath must start with $",
        );
    }
}

// ── timeouts, on every provider and on the webhook target ───────────────────────────────

/// Every timeout field: the JSON pointer of its parent object and its path in messages.
fn timeouts() -> Vec<(Value, &'static str)> {
    let webhook = plan_with(|p| {
        p["spec"]["target"] = json!({"webhook": {"url": "https://flags.example/percent"}});
    });
    vec![
        (plan(), "/spec/analysis/gates/0/prometheus"),
        (plan(), "/spec/analysis/gates/1/alerts"),
        (plan(), "/spec/analysis/gates/2/ofrep"),
        (plan(), "/spec/analysis/gates/3/http"),
        (plan(), "/spec/analysis/gates/4/compare"),
        (webhook, "/spec/target/webhook"),
    ]
}

fn with_timeout(mut plan: Value, pointer: &str, timeout: &str) -> Value {
    plan.pointer_mut(pointer)
        .expect("the timeout's parent exists")["timeout"] = json!(timeout);
    plan
}

/// `spec.analysis.gates[0].prometheus.timeout` for `/spec/analysis/gates/0/prometheus`.
fn timeout_path(pointer: &str) -> String {
    let mut path = String::new();
    for part in pointer.trim_start_matches('/').split('/') {
        if part.bytes().all(|b| b.is_ascii_digit()) {
            path.push_str(&format!("[{part}]"));
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(part);
        }
    }
    path + ".timeout"
}

#[test]
fn timeout_format_accepts_go_durations() {
    for (plan, pointer) in timeouts() {
        for timeout in ["10s", "500ms", "0.1m"] {
            accepts(with_timeout(plan.clone(), pointer, timeout));
        }
    }
}

#[test]
fn timeout_format_rejects_other_grammars() {
    for (plan, pointer) in timeouts() {
        for timeout in ["10", "ten seconds", "1d"] {
            rejected_with(
                cel_on_json_rust_refuses(&with_timeout(plan.clone(), pointer, timeout)),
                &timeout_path(pointer),
                "timeout must be a Go duration such as 10s",
            );
        }
    }
}

#[test]
fn timeout_positive_accepts_one_nanosecond() {
    for (plan, pointer) in timeouts() {
        accepts(with_timeout(plan, pointer, "1ns"));
    }
}

/// The longest timeout of the field at `pointer`, its CEL message, and a nanosecond more.
fn timeout_cap(pointer: &str) -> (&'static str, &'static str, &'static str) {
    if pointer.ends_with("webhook") {
        ("10s", "timeout must be at most 10s", "10000000001ns")
    } else {
        ("30s", "timeout must be at most 30s", "30.000000001s")
    }
}

#[test]
fn timeout_cap_accepts_the_cap() {
    for (plan, pointer) in timeouts() {
        accepts(with_timeout(plan, pointer, timeout_cap(pointer).0));
    }
}

#[test]
fn timeout_cap_rejects_a_nanosecond_more() {
    for (plan, pointer) in timeouts() {
        let (_, message, over) = timeout_cap(pointer);
        for timeout in [over, "1h"] {
            rejects(
                with_timeout(plan.clone(), pointer, timeout),
                &timeout_path(pointer),
                message,
            );
        }
    }
}

#[test]
fn timeout_positive_rejects_zero_and_negative() {
    for (plan, pointer) in timeouts() {
        for timeout in ["0s", "-1s"] {
            rejects(
                with_timeout(plan.clone(), pointer, timeout),
                &timeout_path(pointer),
                "timeout must be positive",
            );
        }
    }
}

// ── target ───────────────────────────────────────────────────────────────────────────────

const ONE_TARGET: &str = "target must set exactly one of flagd, configMap and webhook";

fn with_target(target: Value) -> Value {
    plan_with(|p| p["spec"]["target"] = target)
}

#[test]
fn one_target_accepts_each_kind_alone() {
    accepts(with_target(
        json!({"flagd": {"featureFlag": "flags", "flag": "f"}}),
    ));
    accepts(with_target(
        json!({"configMap": {"name": "cm", "key": "percent"}}),
    ));
    accepts(with_target(
        json!({"webhook": {"url": "https://flags.example/x"}}),
    ));
}

#[test]
fn one_target_rejects_none() {
    rejects(with_target(json!({})), "spec.target", ONE_TARGET);
}

#[test]
fn one_target_rejects_two() {
    rejects(
        with_target(json!({
            "configMap": {"name": "cm", "key": "percent"},
            "webhook": {"url": "https://flags.example/x"}
        })),
        "spec.target",
        ONE_TARGET,
    );
}

const ONE_FLAGD_SOURCE: &str = "flagd target must set exactly one of configMap and featureFlag";

#[test]
fn flagd_source_accepts_config_map_or_feature_flag() {
    accepts(with_target(
        json!({"flagd": {"configMap": "ff", "flag": "f"}}),
    ));
    accepts(with_target(
        json!({"flagd": {"featureFlag": "ff", "flag": "f"}}),
    ));
}

#[test]
fn flagd_source_rejects_neither() {
    rejects(
        with_target(json!({"flagd": {"flag": "f"}})),
        "spec.target.flagd",
        ONE_FLAGD_SOURCE,
    );
}

#[test]
fn flagd_source_rejects_both() {
    rejects(
        with_target(json!({"flagd": {"configMap": "ff", "featureFlag": "ff", "flag": "f"}})),
        "spec.target.flagd",
        ONE_FLAGD_SOURCE,
    );
}

#[test]
fn flagd_names_accept_one_character() {
    accepts(with_target(
        json!({"flagd": {"configMap": "c", "key": "k", "flag": "f"}}),
    ));
    accepts(with_target(
        json!({"flagd": {"featureFlag": "x", "flag": "f"}}),
    ));
}

// ── names in the spec are Kubernetes object names (DNS-1123 subdomains) ───────────────────

/// The plan with `value` set at the JSON `pointer` (its parent must exist).
fn plan_setting(pointer: &str, value: Value) -> Value {
    plan_with(|p| {
        let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
        p.pointer_mut(parent).expect("the parent exists")[key] = value;
    })
}

/// Each name field, where its rule reports, and a plan that puts `name` into it.
fn name_fields(name: &str) -> Vec<(&'static str, &'static str, Value)> {
    let name = json!(name);
    vec![
        (
            "configMap",
            "spec.target.flagd.configMap",
            plan_setting("/spec/target/flagd/configMap", name.clone()),
        ),
        (
            "featureFlag",
            "spec.target.flagd.featureFlag",
            with_target(json!({"flagd": {"featureFlag": name.clone(), "flag": "f"}})),
        ),
        (
            "name",
            "spec.target.configMap.name",
            with_target(json!({"configMap": {"name": name.clone(), "key": "percent"}})),
        ),
        (
            "headersSecret",
            "spec.target.webhook.headersSecret",
            with_target(
                json!({"webhook": {"url": "https://flags.example/p", "headersSecret": name.clone()}}),
            ),
        ),
        (
            "secretRef",
            "spec.analysis.gates[0].prometheus.secretRef",
            plan_setting(
                "/spec/analysis/gates/0/prometheus/secretRef",
                json!({"name": name.clone()}),
            ),
        ),
        (
            "secretRef",
            "spec.analysis.gates[1].alerts.secretRef",
            plan_setting(
                "/spec/analysis/gates/1/alerts/secretRef",
                json!({"name": name.clone()}),
            ),
        ),
        (
            "secretRef",
            "spec.analysis.gates[4].compare.secretRef",
            plan_setting(
                "/spec/analysis/gates/4/compare/secretRef",
                json!({"name": name.clone()}),
            ),
        ),
        (
            "serviceAccountName",
            "spec.serviceAccountName",
            plan_setting("/spec/serviceAccountName", name),
        ),
    ]
}

#[test]
fn object_names_accept_dns_1123_subdomains() {
    for name in [
        "a",
        "feature-flags",
        "flags.v2",
        "0-team.a9",
        &"a".repeat(253),
    ] {
        for (_, _, plan) in name_fields(name) {
            accepts(plan);
        }
    }
}

#[test]
fn object_names_reject_what_kubernetes_refuses() {
    for name in [
        "Flags",
        "flags_v2",
        "-flags",
        "flags-",
        ".flags",
        "flags.",
        "a b",
        "system:sa",
    ] {
        for (field, path, plan) in name_fields(name) {
            rejects(
                plan,
                path,
                &format!(
                    "{field} must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
                ),
            );
        }
    }
}

#[test]
fn flagd_names_reject_empty() {
    for (field, message) in [
        ("configMap", "configMap must not be empty"),
        ("key", "key must not be empty"),
        ("flag", "flag must not be empty"),
    ] {
        let mut flagd = json!({"configMap": "c", "key": "k", "flag": "f"});
        flagd[field] = json!("");
        rejects(
            with_target(json!({ "flagd": flagd })),
            &format!("spec.target.flagd.{field}"),
            message,
        );
    }
    rejects(
        with_target(json!({"flagd": {"featureFlag": "", "flag": "f"}})),
        "spec.target.flagd.featureFlag",
        "featureFlag must not be empty",
    );
}

#[test]
fn config_map_target_accepts_names() {
    accepts(with_target(json!({"configMap": {"name": "c", "key": "k"}})));
}

#[test]
fn config_map_target_rejects_empty_names() {
    for (field, message) in [
        ("name", "name must not be empty"),
        ("key", "key must not be empty"),
    ] {
        let mut config_map = json!({"name": "c", "key": "k"});
        config_map[field] = json!("");
        rejects(
            with_target(json!({ "configMap": config_map })),
            &format!("spec.target.configMap.{field}"),
            message,
        );
    }
}

#[test]
fn webhook_url_accepts_http_and_https() {
    for url in ["http://flags", "https://flags.example/percent"] {
        accepts(with_target(json!({"webhook": {"url": url}})));
    }
}

#[test]
fn webhook_url_rejects_other_schemes() {
    for url in ["flags.example/percent", "file:///etc/passwd", ""] {
        rejects(
            with_target(json!({"webhook": {"url": url}})),
            "spec.target.webhook.url",
            "url must start with http:// or https://",
        );
    }
}

// ── notifications ────────────────────────────────────────────────────────────────────────

#[test]
fn notification_one_kind_accepts_a_webhook_and_a_slack_hook() {
    accepts(plan_with(|p| {
        p["spec"]["notifications"] = json!([
            {"webhook": {"urlSecretRef": {"name": "hooks", "key": "url"}}},
            {"slack": {"urlSecretRef": {"name": "slack", "key": "incoming"}}, "when": ["rollback", "complete"]}
        ])
    }));
}

#[test]
fn notification_one_kind_rejects_none_and_both() {
    let both = json!({
        "webhook": {"urlSecretRef": {"name": "hooks", "key": "url"}},
        "slack": {"urlSecretRef": {"name": "slack", "key": "incoming"}}
    });
    for bad in [json!({"when": ["rollback"]}), both] {
        rejects(
            plan_with(|p| p["spec"]["notifications"] = json!([bad])),
            "spec.notifications[0]",
            "notification must set exactly one of webhook and slack",
        );
    }
}

// ── rollback ─────────────────────────────────────────────────────────────────────────────

#[test]
fn rollback_percent_accepts_0_and_100() {
    for percent in [0, 100] {
        accepts(plan_with(|p| {
            p["spec"]["stages"] = json!([{"percent": 100}]);
            p["spec"]["rollback"]["percent"] = json!(percent)
        }));
    }
}

#[test]
fn rollback_not_above_first_stage_accepts_the_first_stages_percent() {
    accepts(plan_with(|p| p["spec"]["rollback"]["percent"] = json!(1)));
    accepts(plan_with(|p| {
        p["spec"].as_object_mut().map(|s| s.remove("rollback"));
    }));
}

#[test]
fn rollback_not_above_first_stage_rejects_more() {
    for percent in [2, 50, 100] {
        rejects(
            plan_with(|p| p["spec"]["rollback"]["percent"] = json!(percent)),
            "spec",
            "rollback.percent must not exceed the first stage's percent: a rollback never raises exposure",
        );
    }
}

#[test]
fn rollback_percent_rejects_101() {
    rejected_with(
        cel_on_json_rust_refuses(&plan_with(|p| {
            p["spec"]["rollback"]["percent"] = json!(101)
        })),
        "spec.rollback.percent",
        "percent must be between 0 and 100",
    );
}

// ── the rules themselves ─────────────────────────────────────────────────────────────────

/// Every `x-kubernetes-validations` entry of the schema, with the schema node it sits on.
fn rules(node: &Value, path: &str, found: &mut Vec<(String, Value, String, String)>) {
    if let Some(list) = node
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for rule in list {
            found.push((
                path.to_owned(),
                node.clone(),
                rule["rule"].as_str().unwrap_or_default().to_owned(),
                rule["message"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            rules(child, &format!("{path}.{name}"), found);
        }
    }
    if let Some(items) = node.get("items") {
        rules(items, &format!("{path}[]"), found);
    }
}

fn all_rules() -> Vec<(String, Value, String, String)> {
    let mut found = Vec::new();
    rules(&schema(), "", &mut found);
    found
}

#[test]
fn every_cel_rule_has_a_message() {
    for (path, _, rule, message) in all_rules() {
        assert!(!message.is_empty(), "{path}: rule {rule:?} has no message");
    }
}

#[test]
fn every_cel_rule_has_a_rejecting_test() {
    let source = include_str!("cel.rs");
    let untested: Vec<_> = all_rules()
        .into_iter()
        .filter(|(_, _, _, message)| {
            // A message is exercised when it is asserted on, whole or with its field name
            // filled in by `format!`.
            let field = message.split(' ').next().unwrap_or_default();
            let generic = message.replacen(field, "{field}", 1);
            !source.contains(&format!("\"{message}\""))
                && !source.contains(&format!("\"{generic}\""))
        })
        .map(|(path, _, rule, message)| format!("{path}: {message:?} ({rule})"))
        .collect();
    assert!(
        untested.is_empty(),
        "CEL rules without a test: {untested:#?}"
    );
}

#[test]
fn every_cel_rule_compiles_and_fits_the_api_servers_budget() {
    for (path, node, rule, _) in all_rules() {
        let compiled = kube::core::cel::compile_schema(&node);
        let errors: Vec<_> = compiled
            .compilation_errors()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{path}: {errors:?}");
        // kube-cel's scope check takes the variables that `all`/`exists_one` bind for free
        // ones, so only its cost and bounds findings count.
        let warnings: Vec<_> =
            kube::core::cel::analyze_rule(&rule, &compiled, ScopeContext::CrdValidation)
                .into_iter()
                .filter(|w| w.kind != WarningKind::WrongScope)
                .collect();
        assert!(warnings.is_empty(), "{path}: rule {rule:?}: {warnings:#?}");
    }
}

#[test]
fn no_rule_indexes_a_list_with_an_element() {
    // `self.all(x, …)` binds x to each element, not to an index, so `self[x]` or `x == 0` in
    // its body is a type error for the API server (and an evaluation error in kube-cel).
    for (path, _, rule, _) in all_rules() {
        assert!(
            !rule.contains("self[") && !rule.contains("[i-1]"),
            "{path}: rule {rule:?} indexes a list by element"
        );
    }
}

// ── preChecks ────────────────────────────────────────────────────────────────────────────

#[test]
fn min_allowlist_accepts_a_sane_count() {
    accepts(plan_with(|p| {
        p["spec"]["preChecks"] = json!({"minAllowlist": 10})
    }));
}

#[test]
fn min_allowlist_rejects_a_huge_count() {
    rejects(
        plan_with(|p| p["spec"]["preChecks"] = json!({"minAllowlist": 20000})),
        "spec.preChecks.minAllowlist",
        "minAllowlist must be between 0 and 10000",
    );
}

// ── size limits (maxLength, maxItems, maxProperties) ────────────────────────────────────
//
// kube's client-side validator runs the CEL rules only; the API server enforces these
// keywords itself. Each limit is checked here three ways: the schema carries it, the command
// line's schema check (the same one `rollgate simulate` reads a plan with) accepts a plan at
// the limit and refuses one past it, and the CEL rules still accept the plan at the limit.

use rollgate::api::limits;
use rollgate::sim::load::{parse_yaml, rollout_schema};

#[derive(Clone, Copy)]
enum Limit {
    /// A string of at most this many characters, made by the function from a length.
    Length(fn(usize) -> String),
    /// A list of at most this many strings.
    Items,
    /// A mapping of at most this many entries.
    Properties,
}

/// (JSON pointer of the field in the plan, schema path, kind, limit).
fn limit_table() -> Vec<(&'static str, &'static str, Limit, usize)> {
    let text = Limit::Length(|n| "q".repeat(n));
    let url = Limit::Length(|n| format!("http://{}", "a".repeat(n - 7)));
    let path =
        Limit::Length(|n| format!("${}", ".a".repeat((n - 1) / 2) + &"a".repeat((n - 1) % 2)));
    vec![
        (
            "/spec/analysis/gates/0/prometheus/address",
            "spec.analysis.gates[0].prometheus.address",
            url,
            limits::MAX_URL,
        ),
        (
            "/spec/analysis/gates/0/prometheus/query",
            "spec.analysis.gates[0].prometheus.query",
            text,
            limits::MAX_QUERY,
        ),
        (
            "/spec/analysis/gates/0/prometheus/sampleQuery",
            "spec.analysis.gates[0].prometheus.sampleQuery",
            text,
            limits::MAX_QUERY,
        ),
        (
            "/spec/analysis/gates/0/prometheus/headers",
            "spec.analysis.gates[0].prometheus.headers",
            Limit::Properties,
            limits::MAX_HEADERS,
        ),
        (
            "/spec/analysis/gates/1/alerts/address",
            "spec.analysis.gates[1].alerts.address",
            url,
            limits::MAX_URL,
        ),
        (
            "/spec/analysis/gates/1/alerts/matchers",
            "spec.analysis.gates[1].alerts.matchers",
            Limit::Items,
            limits::MAX_MATCHERS,
        ),
        (
            "/spec/analysis/gates/1/alerts/matchers/0",
            "spec.analysis.gates[1].alerts.matchers[0]",
            text,
            limits::MAX_MATCHER,
        ),
        (
            "/spec/analysis/gates/1/alerts/ignore",
            "spec.analysis.gates[1].alerts.ignore",
            Limit::Items,
            limits::MAX_MATCHERS,
        ),
        (
            "/spec/analysis/gates/1/alerts/headers",
            "spec.analysis.gates[1].alerts.headers",
            Limit::Properties,
            limits::MAX_HEADERS,
        ),
        (
            "/spec/analysis/gates/2/ofrep/address",
            "spec.analysis.gates[2].ofrep.address",
            url,
            limits::MAX_URL,
        ),
        (
            "/spec/analysis/gates/2/ofrep/flag",
            "spec.analysis.gates[2].ofrep.flag",
            text,
            limits::MAX_FLAG_KEY,
        ),
        (
            "/spec/analysis/gates/2/ofrep/onVariant",
            "spec.analysis.gates[2].ofrep.onVariant",
            text,
            limits::MAX_VARIANT,
        ),
        (
            "/spec/analysis/gates/3/http/url",
            "spec.analysis.gates[3].http.url",
            url,
            limits::MAX_URL,
        ),
        (
            "/spec/analysis/gates/3/http/body",
            "spec.analysis.gates[3].http.body",
            text,
            limits::MAX_HTTP_BODY,
        ),
        (
            "/spec/analysis/gates/3/http/jsonPath",
            "spec.analysis.gates[3].http.jsonPath",
            path,
            limits::MAX_JSON_PATH,
        ),
        (
            "/spec/target/flagd/configMap",
            "spec.target.flagd.configMap",
            text,
            limits::MAX_OBJECT_NAME,
        ),
        (
            "/spec/target/flagd/key",
            "spec.target.flagd.key",
            text,
            limits::MAX_OBJECT_NAME,
        ),
        (
            "/spec/target/flagd/flag",
            "spec.target.flagd.flag",
            text,
            limits::MAX_FLAG_KEY,
        ),
        (
            "/spec/target/flagd/onVariant",
            "spec.target.flagd.onVariant",
            text,
            limits::MAX_VARIANT,
        ),
        (
            "/spec/target/flagd/offVariant",
            "spec.target.flagd.offVariant",
            text,
            limits::MAX_VARIANT,
        ),
        (
            "/spec/target/flagd/allowlist",
            "spec.target.flagd.allowlist",
            Limit::Items,
            limits::MAX_ALLOWLIST,
        ),
        (
            "/spec/target/flagd/allowlist/0",
            "spec.target.flagd.allowlist[0]",
            text,
            limits::MAX_TARGETING_KEY,
        ),
    ]
}

/// Sets the field at `pointer`, creating it in its parent object or list.
fn set_at(plan: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
    match plan.pointer_mut(parent).expect("the parent exists") {
        Value::Object(object) => {
            object.insert(key.to_owned(), value);
        }
        Value::Array(list) => list[key.parse::<usize>().expect("an index")] = value,
        _ => panic!("{parent} holds no fields"),
    }
}

fn value_of(limit: Limit, n: usize) -> Value {
    match limit {
        Limit::Length(make) => json!(make(n)),
        Limit::Items => json!((0..n).map(|i| format!("k{i}")).collect::<Vec<_>>()),
        Limit::Properties => Value::Object(
            (0..n)
                .map(|i| (format!("X-Header-{i}"), json!("v")))
                .collect(),
        ),
    }
}

/// The schema node at a dotted path with `[i]` for list items.
fn schema_at<'a>(schema: &'a Value, path: &str) -> &'a Value {
    let mut node = schema;
    for part in path.split('.') {
        let (name, item) = match part.split_once('[') {
            Some((name, _index)) => (name, true),
            None => (part, false),
        };
        node = &node["properties"][name];
        if item {
            node = &node["items"];
        }
    }
    node
}

/// The command line's schema check on the plan (read as untyped JSON afterwards, so only the
/// schema check can refuse it).
fn read_with_schema_check(object: &Value) -> Result<Value, String> {
    let text = serde_json::to_string(object).expect("JSON");
    parse_yaml::<Value>(std::path::Path::new("plan.yaml"), &text, &rollout_schema())
        .map_err(|e| e.to_string())
}

#[test]
fn every_size_limit_is_in_the_schema_and_refused_one_past_it() {
    let schema = schema();
    for (pointer, path, limit, max) in limit_table() {
        let keyword = match limit {
            Limit::Length(_) => "maxLength",
            Limit::Items => "maxItems",
            Limit::Properties => "maxProperties",
        };
        assert_eq!(
            schema_at(&schema, path)[keyword],
            json!(max),
            "{path}: {keyword} in the CRD"
        );
        let at_limit = plan_with(|p| set_at(p, pointer, value_of(limit, max)));
        if let Err(e) = read_with_schema_check(&at_limit) {
            panic!("{path} at its limit ({max}) was refused: {e}");
        }
        accepts(at_limit);
        let past = plan_with(|p| set_at(p, pointer, value_of(limit, max + 1)));
        let error = read_with_schema_check(&past).expect_err("one past the limit");
        let found = match limit {
            Limit::Length(_) => format!(
                "{path}: at most {max} characters allowed, found {}",
                max + 1
            ),
            _ => format!("{path}: at most {max} entries allowed, found {}", max + 1),
        };
        assert!(error.contains(&found), "{path}: {error}");
    }
}

// ── the largest status ───────────────────────────────────────────────────────────────────

/// The largest JSON value `schema` allows, with every string made of a character JSON writes
/// in 6 bytes (`\u0001`); panics naming any string, list or map the schema leaves unbounded.
fn largest(schema: &Value, path: &str) -> Value {
    if let Some(alternatives) = schema.get("anyOf").and_then(Value::as_array) {
        let non_null: Vec<&Value> = alternatives
            .iter()
            .filter(|a| a.get("type") != Some(&json!("null")))
            .collect();
        return largest(non_null[0], path);
    }
    let kind = match &schema["type"] {
        Value::String(kind) => kind.as_str(),
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("null"),
        _ => panic!("{path}: a node without a type is unbounded"),
    };
    match kind {
        "object" => {
            let properties = schema["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("{path}: a map without properties is unbounded"));
            Value::Object(
                properties
                    .iter()
                    .map(|(name, child)| (name.clone(), largest(child, &format!("{path}.{name}"))))
                    .collect(),
            )
        }
        "array" => {
            let max = schema["maxItems"]
                .as_u64()
                .unwrap_or_else(|| panic!("{path}: a list without maxItems is unbounded"));
            let item = largest(&schema["items"], &format!("{path}[]"));
            Value::Array(vec![item; max as usize])
        }
        "string" => {
            if let Some(choices) = schema["enum"].as_array() {
                return choices
                    .iter()
                    .max_by_key(|c| c.as_str().map_or(0, str::len))
                    .cloned()
                    .unwrap_or(Value::Null);
            }
            if schema["format"] == "date-time" {
                return json!("2026-11-30T23:59:59Z");
            }
            let max = schema["maxLength"]
                .as_u64()
                .unwrap_or_else(|| panic!("{path}: a string without maxLength is unbounded"));
            json!("\u{1}".repeat(max as usize))
        }
        "integer" => match schema["format"].as_str() {
            _ if schema["maximum"].is_number() => {
                json!(schema["maximum"].as_f64().unwrap_or_default() as u64)
            }
            Some("uint8") => json!(u8::MAX),
            Some("uint32") => json!(u32::MAX),
            Some("int32") => json!(i32::MIN),
            Some("uint64") => json!(u64::MAX),
            _ => json!(i64::MIN),
        },
        // The only bounded numbers are percents: 99.99 is their longest text.
        "number" if schema["maximum"].as_f64() == Some(100.0) => json!(99.99),
        "number" => json!(-1.797_693_134_862_315_7e308),
        "boolean" => json!(false),
        other => panic!("{path}: unexpected type {other}"),
    }
}

#[test]
fn the_largest_status_the_crd_allows_stays_far_below_etcds_limit() {
    let schema = schema();
    let status_schema = &schema["properties"]["status"];
    let largest_status = largest(status_schema, "status");
    // It is a status the controller could write: it reads as one.
    let status: rollgate::api::RolloutStatus =
        serde_json::from_value(largest_status.clone()).expect("the largest status reads");
    assert_eq!(
        status.history.len(),
        rollgate::api::HISTORY_LIMIT,
        "the history bound comes from HISTORY_LIMIT"
    );
    let bytes = serde_json::to_vec(&largest_status)
        .expect("serializes")
        .len();
    println!("largest status: {bytes} bytes of JSON");
    assert!(
        bytes < 512 * 1024,
        "the largest status is {bytes} bytes; etcd refuses objects above about 1.5 MiB and the \
         spec needs room too"
    );
}

#[test]
fn the_engine_keeps_status_texts_within_their_limits() {
    use rollgate::engine::{Inputs, Observation, decide};
    let rollout: Rollout = serde_json::from_value(plan()).expect("the plan reads");
    let mut status = rollgate::api::RolloutStatus::default();
    let t0: k8s_openapi::jiff::Timestamp = "2026-02-01T19:18:00Z".parse().expect("a time");
    decide(&rollout.spec, &mut status, &Inputs::at(t0));
    let huge = Observation::Error("\u{1b}x".repeat(100_000));
    let observations = vec![huge.clone(), huge.clone(), huge.clone(), huge];
    let at = t0 + std::time::Duration::from_secs(3600);
    decide(
        &rollout.spec,
        &mut status,
        &Inputs::at(at).with_observations(&observations),
    );
    for gate in &status.gates {
        let message = gate.last_message.as_deref().expect("an error message");
        assert!(message.chars().count() <= limits::MAX_GATE_MESSAGE);
    }
    let value = serde_json::to_value(&status).expect("serializes");
    assert!(
        serde_json::to_vec(&value).expect("serializes").len() < 64 * 1024,
        "{value:#}"
    );
}
