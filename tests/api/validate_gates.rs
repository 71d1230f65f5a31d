//! Gate mistakes refused when the plan is loaded, naming the field, instead of surfacing as a
//! gate error at every checkpoint: by `validate_spec` (which the controller runs too) and by
//! the command line, which exits 2.

use std::process::Command;

use rollgate::api::{Rollout, validate_spec};
use serde_json::{Value, json};

fn plan(target: Value, gate: Value) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "r", "namespace": "n"},
        "spec": {
            "target": target,
            "stages": [{"percent": 1, "duration": "1h"}],
            "analysis": {"interval": "1h", "gates": [gate]}
        }
    }))
    .expect("plan")
}

fn flagd() -> Value {
    json!({"flagd": {"configMap": "flags", "flag": "fav"}})
}

fn config_map() -> Value {
    json!({"configMap": {"name": "cm", "key": "percent"}})
}

/// The one error `validate_spec` gives for `gate` under `target`: (field, problem).
fn refused(target: Value, gate: Value) -> (String, String) {
    let errors =
        validate_spec(&plan(target, gate.clone()).spec).expect_err(&format!("accepted: {gate}"));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    (errors[0].field.clone(), errors[0].problem.clone())
}

#[test]
fn gate_mistakes_are_refused_naming_the_field() {
    let cases = [
        (
            flagd(),
            json!({"name": "g", "prometheus": {"query": "x{v=\"{{variant}}\"}"}}),
            "spec.analysis.gates[0].prometheus.query",
            "{{variant}} is only for a compare gate's units and events queries",
        ),
        (
            flagd(),
            json!({"name": "g", "prometheus": {"query": "increase(x[{{window}}])"}}),
            "spec.analysis.gates[0].prometheus.query",
            "{{window}} is only for a compare gate's",
        ),
        (
            flagd(),
            json!({"name": "g", "compare": {"units": "sum(x{v={{variant}}})", "events": "sum(y{v=\"{{variant}}\"})"}}),
            "spec.analysis.gates[0].compare.units",
            "{{variant}} stands outside a double-quoted string",
        ),
        (
            flagd(),
            json!({"name": "g", "compare": {"units": "sum(x{v=\"{{variant}}\"})", "events": "sum(y{v=\"{{variant}}\",u=\"{{user}}\"})"}}),
            "spec.analysis.gates[0].compare.events",
            "unknown query variable {{user}}",
        ),
        (
            flagd(),
            json!({"name": "g", "compare": {"units": "x", "events": "y", "headers": {"X-A": "b"}}}),
            "spec.analysis.gates[0].compare.headers",
            "headers applies only to the gate's own Prometheus",
        ),
        (
            flagd(),
            json!({"name": "g", "prometheus": {"query": "up{job=\"{{job}}\"}"}}),
            "spec.analysis.gates[0].prometheus.query",
            "unknown query variable {{job}}",
        ),
        (
            config_map(),
            json!({"name": "g", "prometheus": {"query": "up{flag=\"{{flag}}\"}"}}),
            "spec.analysis.gates[0].prometheus.query",
            "target names no flag",
        ),
        (
            flagd(),
            json!({"name": "g", "prometheus": {"query": "up{flag={{flag}}}"}}),
            "spec.analysis.gates[0].prometheus.query",
            "outside a double-quoted string",
        ),
        (
            flagd(),
            json!({"name": "g", "prometheus": {"query": "up", "sampleQuery": "x{{nope}}", "minSample": 1}}),
            "spec.analysis.gates[0].prometheus.sampleQuery",
            "{{nope}}",
        ),
        (
            flagd(),
            json!({"name": "g", "alerts": {"matchers": ["severity=critical"]}}),
            "spec.analysis.gates[0].alerts.matchers[0]",
            "has no quoted value",
        ),
        (
            config_map(),
            json!({"name": "g", "alerts": {"matchers": ["flag=\"{{flag}}\""]}}),
            "spec.analysis.gates[0].alerts.matchers[0]",
            "target names no flag",
        ),
        (
            flagd(),
            json!({"name": "g", "alerts": {"matchers": ["alertstate=\"pending\""]}}),
            "spec.analysis.gates[0].alerts.matchers[0]",
            "alertstate",
        ),
        (
            flagd(),
            json!({"name": "g", "prometheus": {"address": "http://[::1", "query": "up"}}),
            "spec.analysis.gates[0].prometheus.address",
            "is not a URL",
        ),
        (
            flagd(),
            json!({"name": "g", "ofrep": {"address": "http://[::1"}}),
            "spec.analysis.gates[0].ofrep.address",
            "is not a URL",
        ),
        (
            flagd(),
            json!({"name": "g", "http": {"url": "http://user:pw@status/x", "jsonPath": "$.ok"}}),
            "spec.analysis.gates[0].http.url",
            "credentials in the URL",
        ),
        (
            flagd(),
            json!({"name": "g", "http": {"url": "http://status/x", "jsonPath": "$[?"}}),
            "spec.analysis.gates[0].http.jsonPath",
            "not RFC 9535 JSONPath",
        ),
        (
            flagd(),
            json!({"name": "g", "prometheus": {"query": "up", "headers": {"X-Scope-OrgID": "b"}}}),
            "spec.analysis.gates[0].prometheus.headers",
            "set spec.analysis.gates[0].prometheus.address too",
        ),
        (
            flagd(),
            json!({"name": "g", "alerts": {"insecureSkipVerify": true}}),
            "spec.analysis.gates[0].alerts.insecureSkipVerify",
            "applies only to the gate's own Prometheus",
        ),
        (
            flagd(),
            json!({"name": "g", "prometheus": {"query": "up", "secretRef": {"name": "s"}}}),
            "spec.analysis.gates[0].prometheus.secretRef",
            "applies only to the gate's own Prometheus",
        ),
        (
            flagd(),
            json!({"name": "g", "prometheus": {"address": "http://p:9090", "query": "up", "headers": {"Bad Name": "x"}}}),
            "spec.analysis.gates[0].prometheus.headers",
            "not a valid HTTP header name",
        ),
    ];
    for (target, gate, field, problem) in cases {
        let (found_field, found_problem) = refused(target, gate.clone());
        assert_eq!(found_field, field, "{gate}");
        assert!(
            found_problem.contains(problem),
            "{gate}: {found_problem:?} lacks {problem:?}"
        );
    }
}

#[test]
fn well_formed_gates_pass() {
    for gate in [
        json!({"name": "g", "prometheus": {"query": "x{f=\"{{flag}}\",ns=\"{{namespace}}\"} * {{percent}}"}}),
        json!({"name": "g", "prometheus": {"address": "https://mimir:9090/prometheus", "query": "up", "headers": {"X-Scope-OrgID": "a"}, "secretRef": {"name": "s"}}}),
        json!({"name": "g", "alerts": {"matchers": ["severity=\"critical\"", "flag=~'{{flag}}.*'"]}}),
        json!({"name": "g", "ofrep": {"address": "http://flagd.kaviar:8016"}}),
        json!({"name": "g", "http": {"url": "http://[::1]:8080/x", "jsonPath": "$.checks[?@.name == 'db'].ok"}}),
    ] {
        if let Err(errors) = validate_spec(&plan(flagd(), gate.clone()).spec) {
            panic!("{gate}: {errors:#?}");
        }
    }
}

#[test]
fn the_command_line_exits_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("plan.yaml");
    std::fs::write(
        &plan_path,
        r#"apiVersion: rollgate.dev/v1alpha1
kind: Rollout
metadata: {name: r, namespace: n}
spec:
  target: {configMap: {name: cm, key: percent}}
  stages: [{percent: 1, duration: 1h}]
  analysis:
    interval: 1h
    gates:
      - name: error-rate
        prometheus: {query: 'up{flag="{{flag}}"}'}
"#,
    )
    .unwrap();
    let scenario = dir.path().join("scenario.yaml");
    std::fs::write(&scenario, "gates:\n  error-rate: [{at: 0s, value: 0}]\n").unwrap();
    for args in [
        vec![
            "simulate",
            plan_path.to_str().unwrap(),
            "--scenario",
            scenario.to_str().unwrap(),
        ],
        vec![
            "backtest",
            plan_path.to_str().unwrap(),
            "--prometheus",
            "http://127.0.0.1:9",
            "--start",
            "2026-02-01T00:00:00Z",
            "--end",
            "2026-02-01T01:00:00Z",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_rollgate"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("spec.analysis.gates[0].prometheus.query")
                && stderr.contains("target names no flag"),
            "{args:?}: {stderr}"
        );
    }
}
