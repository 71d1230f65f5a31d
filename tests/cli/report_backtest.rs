//! `rollgate backtest --report`: the report of a replay is built from the same events as a
//! simulation's, with the backtest named as its source and each checkpoint's value from the
//! (fake, loopback) Prometheus.

use crate::support;

use std::process::Command;

use support::fake::{Canned, Fake};

const PLAN: &str = r#"
apiVersion: rollgate.dev/v1alpha1
kind: Rollout
metadata: {name: checkout-v2, namespace: shop}
spec:
  target: {configMap: {name: rollout, key: percent}}
  stages:
    - {percent: 10, duration: 1h}
    - {percent: 50, duration: 1h}
  analysis:
    interval: 30m
    gates:
      - name: error-rate
        prometheus: {query: 'sum(rate(http_requests_total{code=~"5.."}[5m]))'}
        max: 0.01
"#;

#[test]
fn a_backtest_report_names_its_window_and_shows_each_checkpoint_value() {
    let answer = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1769973480,"0.004"]}]}}"#;
    let fake = Fake::start(Canned::ok(answer));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let plan = dir.path().join("checkout.yaml");
    std::fs::write(&plan, PLAN).expect("plan written");
    let report = dir.path().join("replay.md");
    let out = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args([
            "backtest",
            plan.to_str().expect("UTF-8"),
            "--prometheus",
            &fake.address(),
            "--start",
            "2026-02-01T19:18:00Z",
            "--end",
            "2026-02-01T22:18:00Z",
            "--query-mode",
            "instant",
            "--report",
            report.to_str().expect("UTF-8"),
        ])
        .output()
        .expect("the rollgate binary runs");
    assert!(
        out.status.success(),
        "backtest failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let markdown = std::fs::read_to_string(&report).expect("the report was written");
    assert!(
        markdown.contains(
            "| Source | backtest of checkout.yaml over Prometheus history from 2026-02-01T19:18:00Z to 2026-02-01T22:18:00Z |"
        ),
        "{markdown}"
    );
    assert!(
        markdown.contains("# Release report: shop/checkout-v2"),
        "{markdown}"
    );
    assert!(
        markdown.contains(
            "| Outcome | **Succeeded** at stage 2 of 2, 50% on the target, +2h after the start |"
        ),
        "{markdown}"
    );
    let checkpoints: Vec<&str> = markdown
        .lines()
        .filter(|l| l.contains("| checkpoint |"))
        .collect();
    assert_eq!(checkpoints.len(), 4, "{markdown}");
    assert!(
        checkpoints
            .iter()
            .all(|l| l.ends_with("| pass | error-rate 0.004 pass |")),
        "{checkpoints:#?}"
    );
    assert!(markdown.contains("![Percent and gate values over time](replay.svg)"));
    let svg = std::fs::read_to_string(dir.path().join("replay.svg")).expect("the chart");
    roxmltree::Document::parse(&svg).expect("well-formed SVG");
    assert!(!fake.requests().is_empty(), "the fake Prometheus was asked");
}
