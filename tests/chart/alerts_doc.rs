//! The alert rules the docs show fire when they should: `promtool test rules` runs them on
//! series the controller exports (a missing controller, a rollback, a long pause) and checks
//! which alerts fire with which labels. Prometheus' `promtool` comes from Debian's
//! `prometheus` package; without it the test is skipped loudly, and under `CI=true` it fails.

use crate::support;

use std::path::PathBuf;
use std::process::Command;

use support::prometheus::tool;

/// The documents that may hold the alert examples (the README now; docs/ once it moves).
const CANDIDATES: [&str; 2] = ["docs/operations.md", "README.md"];

/// The first ```yaml block that defines `RollgateNoLeader`, and the file it is in.
fn documented_rules() -> (String, &'static str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for file in CANDIDATES {
        let Ok(text) = std::fs::read_to_string(root.join(file)) else {
            continue;
        };
        for block in text.split("```yaml\n").skip(1) {
            let Some((body, _)) = block.split_once("```") else {
                continue;
            };
            if body.contains("- alert: RollgateNoLeader") {
                return (body.to_owned(), file);
            }
        }
    }
    panic!("no ```yaml block with the alert RollgateNoLeader in {CANDIDATES:?}");
}

const UNIT_TESTS: &str = r#"rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  # No controller is scraped at all: only absent() can notice.
  - interval: 1m
    input_series:
      - series: 'up{job="something-else"}'
        values: '1x20'
    alert_rule_test:
      - {eval_time: 1m, alertname: RollgateNoLeader, exp_alerts: []}
      - eval_time: 5m
        alertname: RollgateNoLeader
        exp_alerts: [{exp_labels: {}}]
  # Two replicas, one leads: quiet. Then both stand by: it fires.
  - interval: 1m
    input_series:
      - series: 'rollgate_leader{job="rollgate", instance="a"}'
        values: '1x9 0x10'
      - series: 'rollgate_leader{job="rollgate", instance="b"}'
        values: '0x20'
    alert_rule_test:
      - {eval_time: 8m, alertname: RollgateNoLeader, exp_alerts: []}
      - eval_time: 15m
        alertname: RollgateNoLeader
        exp_alerts: [{exp_labels: {}}]
  # A rollout's first rollback: its counter starts at 0 when the rollout is first seen.
  - interval: 1m
    input_series:
      - series: 'rollgate_transitions_total{job="rollgate", instance="a", namespace="kaviar", name="pfm", kind="rollback"}'
        values: '0x5 1x20'
      - series: 'rollgate_transitions_total{job="rollgate", instance="a", namespace="kaviar", name="other", kind="rollback"}'
        values: '0x25'
    alert_rule_test:
      - {eval_time: 4m, alertname: RolloutRolledBack, exp_alerts: []}
      - eval_time: 8m
        alertname: RolloutRolledBack
        exp_alerts: [{exp_labels: {namespace: kaviar, name: pfm}}]
  # Paused for hours per the leader; the standby's stale Paused series of another rollout
  # does not count.
  - interval: 1m
    input_series:
      - series: 'rollgate_leader{job="rollgate", instance="a"}'
        values: '1x240'
      - series: 'rollgate_leader{job="rollgate", instance="b"}'
        values: '0x240'
      - series: 'rollgate_rollout_phase{job="rollgate", instance="a", namespace="kaviar", name="pfm", phase="Paused"}'
        values: '1x240'
      - series: 'rollgate_rollout_phase{job="rollgate", instance="b", namespace="kaviar", name="stale", phase="Paused"}'
        values: '1x240'
    alert_rule_test:
      - {eval_time: 1h, alertname: RolloutPausedTooLong, exp_alerts: []}
      - eval_time: 3h
        alertname: RolloutPausedTooLong
        exp_alerts: [{exp_labels: {namespace: kaviar, name: pfm}}]
"#;

#[test]
fn the_documented_alerts_fire_when_they_should() {
    let (rules, file) = documented_rules();
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("rules.yaml"), &rules).expect("write the rules");
    std::fs::write(dir.path().join("tests.yaml"), UNIT_TESTS).expect("write the tests");
    let out = Command::new(promtool)
        .current_dir(dir.path())
        .args(["test", "rules", "tests.yaml"])
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "the alerts in {file} do not fire as documented:\n{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
