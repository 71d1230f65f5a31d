//! `rollgate simulate` end to end: the examples, the JSON contract of docs/design.md §5, `--expect`,
//! and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn example_plan() -> PathBuf {
    root().join("examples/passenger-favorites-matching.yaml")
}

fn scenario(name: &str) -> PathBuf {
    root()
        .join("examples/scenarios")
        .join(format!("{name}.yaml"))
}

fn rollgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(args)
        .output()
        .expect("the rollgate binary runs")
}

fn simulate_json(plan: &Path, scenario: &Path) -> Vec<Value> {
    let out = rollgate(&[
        "simulate",
        plan.to_str().unwrap(),
        "--scenario",
        scenario.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "simulate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}")))
        .collect()
}

/// Writes a plan and a scenario to a temporary directory and simulates them.
fn simulate_texts(plan: &str, scenario: &str) -> Vec<Value> {
    let dir = tempdir();
    let plan_path = dir.join("plan.yaml");
    let scenario_path = dir.join("scenario.yaml");
    std::fs::write(&plan_path, plan).unwrap();
    std::fs::write(&scenario_path, scenario).unwrap();
    simulate_json(&plan_path, &scenario_path)
}

fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rollgate-simulate-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The events as compact strings: `"advance@2h:1:5"` style, for whole-timeline assertions.
fn words(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let event = e["event"].as_str().unwrap();
            match event {
                "checkpoint" => format!("checkpoint:{}", e["verdict"].as_str().unwrap()),
                "drift" => format!(
                    "drift:{}->{}:{}",
                    e["expected"],
                    e["actual"],
                    e["action"].as_str().unwrap()
                ),
                "summary" => format!("summary:{}:{}", e["phase"].as_str().unwrap(), e["percent"]),
                other => format!("{other}:{}", e["percent"]),
            }
        })
        .collect()
}

fn at(event: &Value) -> &str {
    event["at"].as_str().unwrap()
}

#[test]
fn healthy_example_succeeds_at_ten_percent_after_eight_hours() {
    let events = simulate_json(&example_plan(), &scenario("healthy"));
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["phase"], "Succeeded");
    assert_eq!(summary["stage"], 2);
    assert_eq!(summary["percent"], 10);
    assert_eq!(at(summary), "2026-02-02T03:18:00Z");
    let advances: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "advance")
        .map(|e| (at(e).to_owned(), e["percent"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        advances,
        [
            ("2026-02-01T21:18:00Z".to_owned(), 5),
            ("2026-02-01T23:18:00Z".to_owned(), 10)
        ]
    );
    let checkpoints = events.iter().filter(|e| e["event"] == "checkpoint").count();
    assert_eq!(checkpoints, 8, "one checkpoint an hour for 8 hours");
}

#[test]
fn every_event_has_exactly_the_contract_fields() {
    for name in [
        "healthy",
        "one-spike",
        "two-breaches",
        "critical-alert",
        "determinism-failure",
        "prometheus-outage",
        "unauthorised-drift",
        "self-healing-gitops",
    ] {
        for event in simulate_json(&example_plan(), &scenario(name)) {
            let object = event.as_object().unwrap();
            let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
            keys.sort_unstable();
            let expected: &[&str] = match object["event"].as_str().unwrap() {
                "start" | "resume" | "complete" => &["at", "event", "percent", "stage"],
                "advance" | "pause" | "rollback" => &["at", "event", "percent", "reason", "stage"],
                "checkpoint" => &["at", "event", "gates", "percent", "stage", "verdict"],
                "drift" => &["action", "actual", "at", "event", "expected"],
                "summary" => &["at", "event", "percent", "phase", "stage"],
                other => panic!("{name}: unknown event {other}"),
            };
            assert_eq!(keys, expected, "{name}: {event}");
            assert!(at(&event).ends_with('Z'), "{name}: times are UTC: {event}");
            if let Some(gates) = object.get("gates") {
                for gate in gates.as_array().unwrap() {
                    let verdict = gate["verdict"].as_str().unwrap();
                    assert!(["pass", "fail", "inconclusive", "error"].contains(&verdict));
                    assert_eq!(
                        gate.get("value").is_some(),
                        verdict == "pass" || verdict == "fail",
                        "{name}: {gate}"
                    );
                    assert_eq!(
                        gate.get("message").is_some(),
                        verdict == "error",
                        "{name}: {gate}"
                    );
                }
            }
        }
    }
}

#[test]
fn examples_end_as_their_comments_say() {
    let expectations = [
        ("healthy", "Succeeded", 10),
        ("one-spike", "Succeeded", 10),
        ("two-breaches", "RolledBack", 0),
        ("critical-alert", "RolledBack", 0),
        ("determinism-failure", "RolledBack", 0),
        ("prometheus-outage", "Paused", 5),
        ("unauthorised-drift", "Succeeded", 10),
        ("self-healing-gitops", "Paused", 1),
    ];
    for (name, phase, percent) in expectations {
        let events = simulate_json(&example_plan(), &scenario(name));
        let summary = events.last().unwrap();
        assert_eq!(summary["phase"], phase, "{name}");
        assert_eq!(summary["percent"], percent, "{name}");
    }
}

#[test]
fn two_breaches_in_a_row_roll_back_with_the_contract_reason() {
    let events = simulate_json(&example_plan(), &scenario("two-breaches"));
    let rollback = events.iter().find(|e| e["event"] == "rollback").unwrap();
    assert_eq!(
        rollback["reason"],
        "gate error-rate failed 2 checkpoints in a row"
    );
    assert_eq!(rollback["stage"], 1);
    assert_eq!(rollback["percent"], 0);
    let position = events
        .iter()
        .position(|e| e["event"] == "rollback")
        .unwrap();
    let checkpoint = &events[position - 1];
    assert_eq!(
        checkpoint["event"], "checkpoint",
        "the checkpoint precedes its decision"
    );
    assert_eq!(checkpoint["verdict"], "fail");
    assert_eq!(at(checkpoint), at(rollback));
    assert_eq!(checkpoint["gates"][0]["value"], 0.03);
}

#[test]
fn unauthorised_drift_is_reverted_at_the_instant_it_happens() {
    let events = simulate_json(&example_plan(), &scenario("unauthorised-drift"));
    let drift = events.iter().find(|e| e["event"] == "drift").unwrap();
    assert_eq!(at(drift), "2026-02-01T20:48:00Z");
    assert_eq!(drift["expected"], 1);
    assert_eq!(drift["actual"], 3);
    assert_eq!(drift["action"], "reverted");
}

#[test]
fn a_self_healing_gitops_tool_pauses_the_rollout_with_drift_loop() {
    let events = simulate_json(&example_plan(), &scenario("self-healing-gitops"));
    let words: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["event"] != "checkpoint")
        .map(|e| {
            let action = e["action"].as_str().unwrap_or_default().to_owned();
            (e["event"].as_str().unwrap().to_owned(), action)
        })
        .collect();
    let words: Vec<(&str, &str)> = words
        .iter()
        .map(|(e, a)| (e.as_str(), a.as_str()))
        .collect();
    assert_eq!(
        words,
        [
            ("start", ""),
            ("drift", "reverted"),
            ("drift", "reverted"),
            ("drift", "paused"),
            ("pause", ""),
            ("summary", ""),
        ]
    );
    let drifts: Vec<_> = events.iter().filter(|e| e["event"] == "drift").collect();
    for drift in &drifts {
        assert_eq!(drift["expected"], 1);
        assert_eq!(drift["actual"], 0);
    }
    assert_eq!(at(drifts[2]), "2026-02-01T19:27:00Z");
    let pause = events.iter().find(|e| e["event"] == "pause").unwrap();
    assert_eq!(
        at(pause),
        at(drifts[2]),
        "the drift, then the pause it causes"
    );
    let reason = pause["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("someone else writes this flag: ") && reason.contains("3 times"),
        "{reason}"
    );
    assert!(events.iter().all(|e| e["event"] != "advance"));
}

#[test]
fn outage_pauses_after_error_limit_and_never_advances() {
    let events = simulate_json(&example_plan(), &scenario("prometheus-outage"));
    let pause = events.iter().position(|e| e["event"] == "pause").unwrap();
    assert_eq!(
        events[pause]["reason"],
        "gate error-rate had no usable data for 3 checkpoints in a row"
    );
    assert!(events[pause..].iter().all(|e| e["event"] != "advance"));
    let errored = &events[pause - 1]["gates"][0];
    assert_eq!(errored["verdict"], "error");
    assert_eq!(errored["message"], "connection refused");
}

const SMALL_PLAN: &str = r#"
apiVersion: rollgate.dev/v1alpha1
kind: Rollout
metadata: {name: small}
spec:
  target: {configMap: {name: cm, key: percent}}
  stages:
    - {percent: 20, duration: 30m}
    - {percent: 50, duration: 30m}
  analysis:
    interval: 10m
    errorLimit: 2
    gates:
      - {name: ratio, prometheus: {query: x}, min: 0.5, max: 2, failureLimit: 3}
  onDrift: Pause
"#;

#[test]
fn same_instant_events_keep_file_order_and_transitions_print_only_on_change() {
    let events = simulate_texts(
        SMALL_PLAN,
        r#"
until: 3h
gates:
  ratio: [{at: 0s, value: 1}]
events:
  - {at: 5m, action: resume}
  - {at: 5m, action: pause}
  - {at: 5m, action: pause}
  - {at: 15m, action: resume}
  - {at: 15m, action: resume}
"#,
    );
    assert_eq!(
        words(&events),
        [
            "start:20",
            "pause:20",
            "checkpoint:pass",
            "resume:20",
            "checkpoint:pass",
            "checkpoint:pass",
            "advance:50",
            "checkpoint:pass",
            "checkpoint:pass",
            "checkpoint:pass",
            "complete:50",
            "summary:Succeeded:50",
        ]
    );
}

#[test]
fn drift_with_pause_prints_drift_then_pause_and_resume_rewrites() {
    let events = simulate_texts(
        SMALL_PLAN,
        r#"
until: 2h
gates:
  ratio: [{at: 0s, value: 1}]
events:
  - {at: 12m, action: drift, percent: 35}
  - {at: 13m, action: drift, percent: 35}
  - {at: 25m, action: resume}
  - {at: 26m, action: drift, percent: 20}
"#,
    );
    let w = words(&events);
    assert_eq!(
        &w[..6],
        [
            "start:20",
            "checkpoint:pass",
            "drift:20->35:paused",
            "pause:20",
            "checkpoint:pass",
            "resume:20"
        ]
    );
    assert!(!w.iter().any(|e| e == "drift:20->20:reverted"));
    // After the resume the target is back at 20%, so a drift "to 20" changes nothing.
    assert_eq!(w.iter().filter(|e| e.starts_with("drift")).count(), 1);
    assert_eq!(w.last().unwrap(), "summary:Succeeded:50");
}

#[test]
fn values_before_the_first_entry_are_no_data_and_nan_is_inconclusive() {
    let events = simulate_texts(
        SMALL_PLAN,
        r#"
until: 1h
gates:
  ratio:
    - {at: 15m, value: .nan}
"#,
    );
    let checkpoints: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "checkpoint")
        .collect();
    assert_eq!(checkpoints[0]["gates"][0]["verdict"], "inconclusive");
    assert!(checkpoints[0]["gates"][0].get("value").is_none());
    assert_eq!(checkpoints[1]["gates"][0]["verdict"], "inconclusive");
    let pause = events.iter().find(|e| e["event"] == "pause").unwrap();
    assert_eq!(
        at(pause),
        "1970-01-01T00:20:00Z",
        "errorLimit 2 at the second checkpoint"
    );
    assert_eq!(events.last().unwrap()["phase"], "Paused");
    assert_eq!(
        at(events.last().unwrap()),
        "1970-01-01T01:00:00Z",
        "a capped run ends at until"
    );
}

#[test]
fn infinite_values_fail_and_print_as_prometheus_writes_them() {
    let events = simulate_texts(
        SMALL_PLAN,
        "until: 1h\ngates:\n  ratio: [{at: 0s, value: .inf}]\n",
    );
    let checkpoint = events.iter().find(|e| e["event"] == "checkpoint").unwrap();
    assert_eq!(checkpoint["gates"][0]["verdict"], "fail");
    assert_eq!(checkpoint["gates"][0]["value"], "+Inf");
}

#[test]
fn promote_and_abort_from_a_scenario() {
    let events = simulate_texts(
        SMALL_PLAN,
        r#"
gates:
  ratio: [{at: 0s, value: 1}]
events:
  - {at: 1m, action: promote}
  - {at: 2m, action: abort}
"#,
    );
    assert_eq!(
        words(&events),
        [
            "start:20",
            "advance:50",
            "rollback:0",
            "summary:RolledBack:0"
        ]
    );
    assert_eq!(events[1]["reason"], "promoted by user");
    assert_eq!(events[2]["reason"], "aborted by user");
    assert_eq!(at(&events[3]), "1970-01-01T00:02:00Z");
}

#[test]
fn promote_full_from_a_scenario_goes_to_the_last_stage_by_hand() {
    // Three stages: 20, 50, 80; promote-full skips 50.
    let plan = SMALL_PLAN.replace(
        "    - {percent: 50, duration: 30m}\n",
        "    - {percent: 50, duration: 30m}\n    - {percent: 80, duration: 30m}\n",
    );
    let events = simulate_texts(
        &plan,
        r#"
gates:
  ratio: [{at: 0s, value: 1}]
events:
  - {at: 1m, action: promote-full}
  - {at: 2m, action: promote-full}
"#,
    );
    assert_eq!(
        words(&events),
        [
            "start:20",
            "advance:80",
            "complete:80",
            "summary:Succeeded:80"
        ]
    );
    assert_eq!(events[1]["reason"], "promoted to the last stage by hand");
}

#[test]
fn expect_sets_the_exit_status() {
    let plan = example_plan();
    let run = |scenario_name: &str, phase: &str| {
        rollgate(&[
            "simulate",
            plan.to_str().unwrap(),
            "--scenario",
            scenario(scenario_name).to_str().unwrap(),
            "--expect",
            phase,
        ])
    };
    assert_eq!(run("healthy", "Succeeded").status.code(), Some(0));
    let wrong = run("healthy", "RolledBack");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&wrong.stderr)
            .contains("expected phase RolledBack, ended Succeeded")
    );
    assert_eq!(run("two-breaches", "RolledBack").status.code(), Some(0));
    assert_eq!(run("prometheus-outage", "Paused").status.code(), Some(0));
}

/// Percents with decimals: JSON numbers with their decimals, text with them, a drift to a
/// decimal percent in the scenario, and whole percents still without a decimal point.
#[test]
fn percents_with_decimals_in_json_text_and_scenario_drift() {
    let plan = SMALL_PLAN
        .replace("percent: 20", "percent: 0.5")
        .replace("percent: 50", "percent: 2.25");
    let scenario = r#"
until: 2h
gates:
  ratio: [{at: 0s, value: 1}]
events:
  - {at: 12m, action: drift, percent: 0.75}
"#;
    let events = simulate_texts(&plan, scenario);
    let w = words(&events);
    assert_eq!(
        &w[..3],
        ["start:0.5", "checkpoint:pass", "drift:0.5->0.75:paused"]
    );
    assert_eq!(events[0]["percent"], serde_json::json!(0.5));
    let (_, text, _) = simulate_with(&plan, scenario, &[]);
    assert!(text.contains("0.5%") && text.contains("0.75%"), "{text}");
    let events = simulate_texts(SMALL_PLAN, GOOD_SCENARIO);
    assert_eq!(events[0]["percent"], serde_json::json!(20));
    assert!(
        events[0]["percent"].is_u64(),
        "a whole percent is an integer"
    );
    // A third decimal in a scenario's drift is named by field.
    let err = bad_input(&plan, &scenario.replace("0.75", "0.755"));
    assert!(
        err.contains("events[0].percent: 0.755 has more than two decimals"),
        "{err}"
    );
}

#[test]
fn text_output_is_a_readable_timeline() {
    let out = rollgate(&[
        "simulate",
        example_plan().to_str().unwrap(),
        "--scenario",
        scenario("healthy").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("+0s") && lines[0].contains("start") && lines[0].contains("1%"));
    // People count stages from 1; the JSON output keeps the 0-based index.
    assert!(lines[0].contains("stage 1 of 3 at 1%"), "{}", lines[0]);
    assert!(text.contains("error-rate=0.002 pass"));
    assert!(text.contains("all gates passed and the bake time of 2h ended"));
    let last = lines.last().unwrap();
    assert!(
        last.contains("+8h") && last.ends_with("Succeeded at stage 3 of 3 (10%)"),
        "{last}"
    );
}

fn bad_input(plan: &str, scenario_text: &str) -> String {
    let dir = tempdir();
    let plan_path = dir.join("plan.yaml");
    let scenario_path = dir.join("scenario.yaml");
    std::fs::write(&plan_path, plan).unwrap();
    std::fs::write(&scenario_path, scenario_text).unwrap();
    let out = rollgate(&[
        "simulate",
        plan_path.to_str().unwrap(),
        "--scenario",
        scenario_path.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2), "bad input exits 2");
    assert!(out.stdout.is_empty(), "never a partial run");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

const GOOD_SCENARIO: &str = "gates:\n  ratio: [{at: 0s, value: 1}]\n";

#[test]
fn a_misspelt_field_is_reported_by_path() {
    let plan = SMALL_PLAN.replace("failureLimit", "failureLimt");
    let err = bad_input(&plan, GOOD_SCENARIO);
    assert!(err.contains("plan.yaml"), "{err}");
    assert!(err.contains("spec.analysis.gates[0].failureLimt"), "{err}");
    let err = bad_input(SMALL_PLAN, "gates:\n  ratio: [{at: 0s, vale: 1}]\n");
    assert!(
        err.contains("scenario.yaml") && err.contains("gates.ratio[0].vale"),
        "{err}"
    );
}

#[test]
fn invalid_yaml_names_file_line_and_column() {
    let err = bad_input("spec: [\n", GOOD_SCENARIO);
    assert!(err.contains("plan.yaml") && err.contains("line 1"), "{err}");
    // A value of the wrong type is named by its path, as kubectl names it.
    let err = bad_input(SMALL_PLAN, "gates:\n  ratio: [{at: 0s, value: abc}]\n");
    assert!(
        err.contains(
            "scenario.yaml: gates.ratio[0].value: expected a number, found the string \"abc\""
        ),
        "{err}"
    );
}

#[test]
fn broken_plan_rules_are_named() {
    let err = bad_input(
        &SMALL_PLAN.replace("percent: 50", "percent: 20"),
        GOOD_SCENARIO,
    );
    assert!(
        err.contains("spec.stages[1].percent") && err.contains("strictly increasing"),
        "{err}"
    );
    let err = bad_input(
        &SMALL_PLAN.replace("min: 0.5, max: 2", "min: 3, max: 2"),
        GOOD_SCENARIO,
    );
    assert!(err.contains("spec.analysis.gates[0].min"), "{err}");
    let err = bad_input(
        &SMALL_PLAN.replace("interval: 10m", "interval: ten minutes"),
        GOOD_SCENARIO,
    );
    assert!(err.contains("line") && err.contains("ten minutes"), "{err}");
    let err = bad_input(
        &SMALL_PLAN.replace("kind: Rollout", "kind: Deployment"),
        GOOD_SCENARIO,
    );
    assert!(err.contains("kind") && err.contains("Deployment"), "{err}");
}

#[test]
fn scenario_problems_are_named() {
    let err = bad_input(SMALL_PLAN, "gates: {}\n");
    assert!(
        err.contains("no series for the plan's gate \"ratio\""),
        "{err}"
    );
    let err = bad_input(SMALL_PLAN, "gates:\n  ratio: []\n  other: []\n");
    assert!(err.contains("gates.other"), "{err}");
    let err = bad_input(
        SMALL_PLAN,
        "gates:\n  ratio: [{at: 1h, value: 1}, {at: 30m, value: 2}]\n",
    );
    assert!(
        err.contains("gates.ratio[1].at") && err.contains("increasing"),
        "{err}"
    );
    let err = bad_input(
        SMALL_PLAN,
        "gates:\n  ratio: [{at: 0s, value: 1, error: x}]\n",
    );
    assert!(
        err.contains("gates.ratio[0]") && err.contains("exactly one"),
        "{err}"
    );
    let err = bad_input(
        SMALL_PLAN,
        "gates:\n  ratio: []\nevents: [{at: 1h, action: drift}]\n",
    );
    assert!(
        err.contains("events[0]") && err.contains("percent"),
        "{err}"
    );
    let err = bad_input(
        SMALL_PLAN,
        "gates:\n  ratio: []\nevents: [{at: 1h, action: explode}]\n",
    );
    assert!(err.contains("explode"), "{err}");
    let err = bad_input(SMALL_PLAN, "start: yesterday\ngates:\n  ratio: []\n");
    assert!(err.contains("start") && err.contains("RFC 3339"), "{err}");
}

#[test]
fn a_run_that_would_never_end_is_refused() {
    let plan = SMALL_PLAN.replace("interval: 10m", "interval: 1s");
    let err = bad_input(&plan, GOOD_SCENARIO);
    assert!(
        err.contains("until (default 30d)") && err.contains("2592000 checkpoints"),
        "{err}"
    );
    let err = bad_input(&plan, &format!("until: 300h\n{GOOD_SCENARIO}"));
    assert!(
        err.contains("until: 12d12h at an interval of 1s is 1080000 checkpoints"),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_named() {
    let out = rollgate(&[
        "simulate",
        "/nonexistent/plan.yaml",
        "--scenario",
        "/nonexistent/s.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/plan.yaml") && err.contains("cannot read"),
        "{err}"
    );
}

// ── input discipline (issue 7) ──────────────────────────────────────────────────────────

/// Runs simulate on files and returns (exit status, stdout, stderr).
fn simulate_files(plan: &Path, scenario: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec![
        "simulate",
        plan.to_str().unwrap(),
        "--scenario",
        scenario.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = rollgate(&args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes a plan and a scenario and runs simulate with `extra` flags.
fn simulate_with(plan: &str, scenario_text: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let dir = tempdir();
    let plan_path = dir.join("plan.yaml");
    let scenario_path = dir.join("scenario.yaml");
    std::fs::write(&plan_path, plan).unwrap();
    std::fs::write(&scenario_path, scenario_text).unwrap();
    simulate_files(&plan_path, &scenario_path, extra)
}

#[test]
fn scenario_durations_that_panicked_are_refused_with_a_message() {
    for (field, text) in [
        ("until", "99999999999999999999h"),
        ("until", "18446744073709551615s"),
        ("until", "2562047h47m16.854775808s"),
        ("gates.ratio[0].at", "1h-5m"),
        ("gates.ratio[0].at", "18446744073709551615s"),
        ("gates.ratio[0].at", ""),
    ] {
        let scenario = if field == "until" {
            format!("until: '{text}'\n{GOOD_SCENARIO}")
        } else {
            format!("gates:\n  ratio: [{{at: '{text}', value: 1}}]\n")
        };
        let err = bad_input(SMALL_PLAN, &scenario);
        assert!(
            err.contains(&format!("scenario.yaml: {field}: ")),
            "{text:?}: {err}"
        );
    }
}

#[test]
fn plans_and_scenarios_read_one_duration_grammar() {
    // Go accepts `+5s`, `.5s` and `0`; both files do.
    let plan = SMALL_PLAN.replace("duration: 30m}", "duration: +.5h}");
    // `-0s` is zero, so it does not follow `0`: refused as out of order, not as negative.
    let err = bad_input(
        &plan,
        "gates:\n  ratio: [{at: '0', value: 1}, {at: -0s, value: 1}]\n",
    );
    assert!(
        err.contains("gates.ratio[1].at")
            && err.contains("increasing")
            && !err.contains("negative"),
        "{err}"
    );
    let events = simulate_texts(
        &plan,
        "until: 1d\ngates:\n  ratio: [{at: '0', value: 1}, {at: +.5m, value: 1}]\n",
    );
    let last = events.last().expect("a summary");
    assert_eq!(last["phase"], "Succeeded");
    // Days only in scenarios.
    let err = bad_input(
        &SMALL_PLAN.replace("duration: 30m}", "duration: 1d}"),
        GOOD_SCENARIO,
    );
    assert!(err.contains("\"1d\" is not a Go duration"), "{err}");
}

#[test]
fn an_interval_below_one_second_is_refused() {
    let err = bad_input(
        &SMALL_PLAN.replace("interval: 10m", "interval: 1ns"),
        GOOD_SCENARIO,
    );
    assert!(
        err.contains("spec.analysis.interval: must be at least 1s, not 1ns"),
        "{err}"
    );
}

#[test]
fn numbers_are_typed_as_the_crd_types_them() {
    let err = bad_input(
        &SMALL_PLAN.replace("percent: 20", "percent: \"20\""),
        GOOD_SCENARIO,
    );
    assert!(
        err.contains(
            "plan.yaml: spec.stages[0].percent: expected a number from 0 to 100, found the string \"20\""
        ),
        "{err}"
    );
    let err = bad_input(
        &SMALL_PLAN.replace("max: 2", "max: \"0.01\""),
        GOOD_SCENARIO,
    );
    assert!(
        err.contains("spec.analysis.gates[0].max: expected a number, found the string \"0.01\""),
        "{err}"
    );
    let err = bad_input(&SMALL_PLAN.replace("max: 2", "max: \"\""), GOOD_SCENARIO);
    assert!(
        err.contains("expected a number, found the string \"\""),
        "{err}"
    );
    let err = bad_input(
        &SMALL_PLAN.replace("percent: 50", "percent: 300"),
        GOOD_SCENARIO,
    );
    assert!(
        err.contains(
            "spec.stages[1].percent: expected a number from 0 to 100, found the integer 300"
        ),
        "{err}"
    );
    // A third decimal: the CRD's CEL rule, named by field as `kubectl apply` would.
    let err = bad_input(
        &SMALL_PLAN.replace("percent: 20", "percent: 20.125"),
        GOOD_SCENARIO,
    );
    assert!(
        err.contains(
            "plan.yaml: spec.stages[0].percent: 20.125 has more than two decimals (percents take steps of 0.01)"
        ),
        "{err}"
    );
    let err = bad_input(
        &SMALL_PLAN.replace("errorLimit: 2", "errorLimit: -2"),
        GOOD_SCENARIO,
    );
    assert!(
        err.contains("spec.analysis.errorLimit: expected an integer"),
        "{err}"
    );
    for rust_words in [
        "invalid u8",
        "invalid u32",
        "cannot parse float",
        "from_str_multiple",
        "DuplicateKeyPolicy",
    ] {
        assert!(!err.contains(rust_words), "{err}");
    }
}

#[test]
fn a_misspelt_field_is_named_with_the_closest_known_one() {
    let err = bad_input(&SMALL_PLAN.replace("  stages:", "  stagse:"), GOOD_SCENARIO);
    assert!(
        err.contains("plan.yaml: spec.stagse: unknown field; did you mean stages?"),
        "{err}"
    );
    let err = bad_input(SMALL_PLAN, "gates:\n  ratio: [{at: 0s, valeu: 1}]\n");
    assert!(
        err.contains("gates.ratio[0].valeu: unknown field; did you mean value?"),
        "{err}"
    );
}

#[test]
fn duplicate_keys_get_a_plain_message() {
    let plan = format!("{SMALL_PLAN}  onDrift: Revert\n");
    let err = bad_input(&plan, GOOD_SCENARIO);
    assert!(
        err.contains("the key \"onDrift\" appears twice in the same mapping"),
        "{err}"
    );
    assert!(!err.contains("DuplicateKeyPolicy"), "{err}");
}

#[test]
fn one_document_per_file_and_a_trailing_separator_is_fine() {
    let plan = format!("{SMALL_PLAN}---\n# the end\n");
    let events = simulate_texts(&plan, &format!("{GOOD_SCENARIO}---\n"));
    assert!(events.last().is_some_and(|e| e["event"] == "summary"));
    let err = bad_input(&format!("{SMALL_PLAN}---\n{SMALL_PLAN}"), GOOD_SCENARIO);
    assert!(
        err.contains("a second YAML document starts here; a file holds one document"),
        "{err}"
    );
    assert!(!err.contains("from_str_multiple"), "{err}");
}

#[test]
fn thirty_days_of_per_minute_values_for_two_gates_load() {
    let plan = SMALL_PLAN.replace(
        "      - {name: ratio, prometheus: {query: x}, min: 0.5, max: 2, failureLimit: 3}",
        "      - {name: ratio, prometheus: {query: x}, min: 0.5, max: 2, failureLimit: 3}\n      - {name: other, prometheus: {query: other}, max: 2}",
    );
    let mut scenario = String::from("gates:\n");
    for gate in ["ratio", "other"] {
        scenario.push_str(&format!("  {gate}:\n"));
        for minute in 0..30 * 24 * 60 {
            scenario.push_str(&format!("    - {{at: {minute}m, value: 1}}\n"));
        }
    }
    let (status, _, stderr) = simulate_with(&plan, &scenario, &["--output", "json"]);
    assert_eq!(status, Some(0), "{stderr}");
}

#[test]
fn too_many_yaml_nodes_are_refused_with_the_limit() {
    // A flat list of two million and ten scalars: one node each, past the limit.
    let scenario = format!("gates:\n  ratio: [{}0]\n", "0,".repeat(2_000_010));
    let err = bad_input(SMALL_PLAN, &scenario);
    assert!(
        err.contains(
            "more than 2000000 YAML nodes (values, lists and mappings), the most one file may hold"
        ),
        "{err}"
    );
    assert!(!err.contains("budget breached"), "{err}");
}

#[test]
fn endless_files_are_refused_fast_with_the_limit() {
    let dir = tempdir();
    let plan_path = dir.join("plan.yaml");
    let scenario_path = dir.join("scenario.yaml");
    std::fs::write(&plan_path, SMALL_PLAN).unwrap();
    std::fs::write(&scenario_path, GOOD_SCENARIO).unwrap();
    for device in ["/dev/zero", "/dev/urandom"] {
        let device = Path::new(device);
        if !device.exists() {
            continue;
        }
        let (status, stdout, stderr) = simulate_files(device, &scenario_path, &[]);
        assert_eq!(status, Some(2), "{stderr}");
        assert!(stdout.is_empty());
        assert!(
            stderr.contains(&format!(
                "{}: the file is larger than 16 MiB",
                device.display()
            )),
            "{stderr}"
        );
        let (status, _, stderr) = simulate_files(&plan_path, device, &[]);
        assert_eq!(status, Some(2), "{stderr}");
        assert!(
            stderr.contains("the file is larger than 16 MiB"),
            "{stderr}"
        );
    }
}

#[test]
fn binary_files_are_named_as_such() {
    let dir = tempdir();
    let plan_path = dir.join("plan.yaml");
    std::fs::write(&plan_path, b"apiVersion: \xff\xfe\n").unwrap();
    let scenario_path = dir.join("scenario.yaml");
    std::fs::write(&scenario_path, GOOD_SCENARIO).unwrap();
    let (status, _, stderr) = simulate_files(&plan_path, &scenario_path, &[]);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.contains("is not UTF-8 text"), "{stderr}");
}

#[test]
fn rollback_above_the_first_stage_is_refused() {
    let plan = format!("{SMALL_PLAN}  rollback: {{percent: 100}}\n");
    let err = bad_input(&plan, GOOD_SCENARIO);
    assert!(
        err.contains("spec.rollback.percent: 100 is above the first stage's percent (20)"),
        "{err}"
    );
}

#[test]
fn exit_status_3_when_the_timeline_cannot_be_written() {
    let full = Path::new("/dev/full");
    if !full.exists() {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args([
            "simulate",
            example_plan().to_str().unwrap(),
            "--scenario",
            scenario("healthy").to_str().unwrap(),
            "--expect",
            "Succeeded",
        ])
        .stdout(std::fs::File::create(full).expect("/dev/full opens"))
        .output()
        .expect("the rollgate binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cannot write the timeline"), "{stderr}");
}

#[test]
fn exit_status_1_only_for_an_expect_mismatch() {
    let out = rollgate(&[
        "simulate",
        example_plan().to_str().unwrap(),
        "--scenario",
        scenario("healthy").to_str().unwrap(),
        "--expect",
        "RolledBack",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected phase RolledBack"));
}

#[test]
fn logging_is_initialised_with_the_global_flags() {
    let out = rollgate(&[
        "--log-format",
        "json",
        "--log-level",
        "info",
        "simulate",
        example_plan().to_str().unwrap(),
        "--scenario",
        scenario("healthy").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("simulating"))
        .unwrap_or_else(|| panic!("no log line: {stderr}"));
    let log: Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(log["level"], "INFO");
    // Text by default, warn level: nothing on a healthy run.
    let out = rollgate(&[
        "simulate",
        example_plan().to_str().unwrap(),
        "--scenario",
        scenario("healthy").to_str().unwrap(),
    ]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = rollgate(&["--log-level", "rollgate=[[", "crd"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--log-level"));
}

#[test]
fn many_gates_over_a_long_span_are_refused_by_the_work_budget() {
    let mut plan = SMALL_PLAN.replace("interval: 10m", "interval: 1s");
    let mut scenario_text = String::from("until: 2d\ngates:\n  ratio: [{at: 0s, value: 1}]\n");
    for i in 0..31 {
        plan = plan.replace(
            "    gates:\n",
            &format!("    gates:\n      - {{name: g{i}, prometheus: {{query: q}}}}\n"),
        );
        scenario_text.push_str(&format!("  g{i}: [{{at: 0s, value: 1}}]\n"));
    }
    let err = bad_input(&plan, &scenario_text);
    assert!(
        err.contains("until: 2d at an interval of 1s with 32 gate(s) is 5529600 gate evaluations, more than the 4000000 allowed"),
        "{err}"
    );
}

// ── the compare gate (issue 12) ─────────────────────────────────────────────────────────────

fn compare_plan() -> PathBuf {
    root().join("examples/errors-vs-control.yaml")
}

/// The compare gate's entry of every checkpoint.
fn compare_entries(events: &[Value]) -> Vec<(String, Value)> {
    events
        .iter()
        .filter(|e| e["event"] == "checkpoint")
        .map(|e| (at(e).to_owned(), e["gates"][1].clone()))
        .collect()
}

#[test]
fn compare_regression_is_caught_and_rolled_back() {
    let events = simulate_json(&compare_plan(), &scenario("compare-regression"));
    let entries = compare_entries(&events);
    // The first checkpoint, 10 minutes at 1 % of 20,000 requests a minute: 2,000 requests with
    // the flag (30 failing) and 198,000 without (1,980 failing).
    let (_, first) = &entries[0];
    assert_eq!(first["name"], "errors-vs-control");
    assert_eq!(first["verdict"], "pass");
    let close = |v: &Value, x: f64| (v.as_f64().unwrap() - x).abs() < 1e-6 * x.abs().max(1.0);
    assert!(close(&first["treatment"]["units"], 2000.0), "{first}");
    assert!(close(&first["treatment"]["events"], 30.0), "{first}");
    assert!(close(&first["treatment"]["rate"], 0.015), "{first}");
    assert!(close(&first["control"]["units"], 198_000.0), "{first}");
    assert!(close(&first["control"]["events"], 1980.0), "{first}");
    assert!(close(&first["difference"], 0.005), "{first}");
    let bound = first["difference"].as_f64().unwrap() - first["halfWidth"].as_f64().unwrap();
    assert!(
        close(&first["value"], bound),
        "the value is the harmful bound: {first}"
    );
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .starts_with("with the flag 1.5 % vs 1 % without (+0.50 pp, at least "),
        "{first}"
    );
    // Caught at 1h50m, still at 1 %: one failing checkpoint rolls back.
    let (when, last) = entries.last().unwrap();
    assert_eq!(when, "2026-02-01T21:08:00Z");
    assert_eq!(last["verdict"], "fail");
    assert!(last["value"].as_f64().unwrap() > 0.002, "{last}");
    let rollback = events.iter().find(|e| e["event"] == "rollback").unwrap();
    assert_eq!(
        rollback["reason"],
        "gate errors-vs-control failed 1 checkpoint in a row"
    );
    let summary = events.last().unwrap();
    assert_eq!(
        (summary["phase"].as_str(), summary["percent"].as_u64()),
        (Some("RolledBack"), Some(0))
    );
}

#[test]
fn compare_flat_difference_is_let_through() {
    let events = simulate_json(&compare_plan(), &scenario("compare-flat"));
    for (when, entry) in compare_entries(&events) {
        assert_eq!(entry["verdict"], "pass", "{when}: {entry}");
        assert_eq!(entry["difference"].as_f64(), Some(0.0), "{when}: {entry}");
    }
    let summary = events.last().unwrap();
    assert_eq!(summary["phase"], "Succeeded");
    assert_eq!(summary["percent"], 10);
    assert_eq!(at(summary), "2026-02-02T03:18:00Z", "8h after the start");
}

#[test]
fn compare_low_traffic_stage_waits_then_advances() {
    let events = simulate_json(&compare_plan(), &scenario("compare-low-traffic"));
    let entries = compare_entries(&events);
    // At 1 % of 200 requests a minute, 2 a minute have the flag: 500 take 4h10m. Until then
    // every checkpoint waits (no value, a "collecting" message) and the stage holds past its
    // 2h bake time without pausing.
    for (when, entry) in entries
        .iter()
        .take_while(|(when, _)| when.as_str() < "2026-02-01T23:28:00Z")
    {
        assert_eq!(entry["verdict"], "waiting", "{when}: {entry}");
        assert!(entry.get("value").is_none(), "{when}: {entry}");
        assert!(entry.get("halfWidth").is_none(), "{when}: {entry}");
        assert!(
            entry["message"]
                .as_str()
                .unwrap()
                .starts_with("collecting: "),
            "{when}: {entry}"
        );
    }
    let (_, at_2h) = entries
        .iter()
        .find(|(when, _)| when == "2026-02-01T21:18:00Z")
        .unwrap();
    assert_eq!(
        at_2h["message"],
        "collecting: 240 of 500 requests with the flag"
    );
    assert_eq!(at_2h["treatment"]["units"].as_f64(), Some(240.0));
    let transitions: Vec<_> = events
        .iter()
        .filter(|e| {
            !matches!(
                e["event"].as_str(),
                Some("checkpoint" | "start" | "summary")
            )
        })
        .map(|e| (e["event"].as_str().unwrap(), at(e)))
        .collect();
    assert_eq!(transitions[0], ("advance", "2026-02-01T23:28:00Z"));
    assert!(
        !transitions.iter().any(|(word, _)| *word == "pause"),
        "{transitions:?}"
    );
    assert_eq!(events.last().unwrap()["phase"], "Succeeded");
}

#[test]
fn compare_scenario_entries_are_checked() {
    let plan = std::fs::read_to_string(compare_plan()).unwrap();
    let message = bad_input(
        &plan,
        "gates:\n  error-rate:\n    - {at: 0s, traffic: 100, treatment: 0.1, control: 0.1}\n  errors-vs-control:\n    - {at: 0s, value: 0.1}\n    - {at: 1h, traffic: 100, treatment: 1.5, control: 0.1}\n    - {at: 2h, traffic: 100, control: 0.1}\n",
    );
    for expected in [
        "gates.error-rate[0]: traffic, treatment and control describe a compare gate's cohorts",
        "gates.errors-vs-control[0].value: a compare gate's entries give traffic, treatment and control",
        "gates.errors-vs-control[1].treatment: 1.5 is not an event rate between 0 and 1",
        "gates.errors-vs-control[2]: give traffic, treatment and control together",
    ] {
        assert!(message.contains(expected), "{expected}\nin\n{message}");
    }
}
