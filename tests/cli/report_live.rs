//! `rollgate report NAME` for a Rollout in a cluster, the kube-rs way: a `tower-test` mock
//! API server answers the one GET with a fixed Rollout, and the report renders the expected
//! Markdown (a reviewed snapshot) and a chart with each gate's last value.

use rollgate::report::chart::{PERCENT_COLOR, gate_color, hex};
use rollgate::report::live::{FetchError, load_report};
use rollgate::report::{Report, chart, markdown};
use serde_json::{Value, json};

use crate::support::example_json;
use crate::support::verifier::{Expect, scenario};

const PATH: &str =
    "/apis/rollgate.dev/v1alpha1/namespaces/kaviar/rollouts/passenger-favorites-matching";

/// The Rollout as the API server returns it: the example plan, mid-way through stage 1 after
/// a failed pre-check, a reverted drift and a warning checkpoint.
fn rollout() -> Value {
    let mut rollout = example_json("passenger-favorites-matching");
    rollout["metadata"]["generation"] = json!(2);
    rollout["metadata"]["resourceVersion"] = json!("4711");
    rollout["metadata"]["uid"] = json!("6f1c1f5e-0000-4000-8000-000000000001");
    rollout["spec"]["preChecks"] = json!({"minAllowlist": 2});
    rollout["status"] = progress();
    rollout
}

/// Mid-way through stage 1 after a failed pre-check, a reverted drift and a warning checkpoint.
fn progress() -> Value {
    json!({
            "phase": "Progressing",
            "stage": 1,
            "percent": 5,
            "startedAt": "2026-02-01T19:20:00Z",
            "stageStartedAt": "2026-02-01T21:20:00Z",
            "nextCheckpointAt": "2026-02-01T23:20:00Z",
            "lastCheckpoint": {"at": "2026-02-01T22:20:00Z", "stage": 1, "percent": 5, "verdict": "warn"},
            "message": "gate error-rate failed (0.012 > 0.01), 1 of 2",
            "gates": [
                {"name": "error-rate", "failures": 1, "misses": 0, "lastVerdict": "fail", "lastValue": 0.012},
                {"name": "critical-alerts", "failures": 0, "misses": 0, "lastVerdict": "pass", "lastValue": 0.0},
                {"name": "determinism", "failures": 0, "misses": 1, "lastVerdict": "error",
                 "lastMessage": "flagd.kaviar:8016: connection refused | <retry>"}
            ],
            "history": [
                {"at": "2026-02-01T19:18:00Z", "kind": "pending", "stage": 0, "percent": 0,
                 "message": "the target holds 3%, not the rollback percent 0%"},
                {"at": "2026-02-01T19:20:00Z", "kind": "start", "stage": 0, "percent": 1},
                {"at": "2026-02-01T20:05:00Z", "kind": "drift", "stage": 0, "percent": 1,
                 "message": "target drifted to 3% (expected 1%): reverted"},
                {"at": "2026-02-01T20:20:00Z", "kind": "checkpoint", "stage": 0, "percent": 1, "verdict": "pass"},
                {"at": "2026-02-01T21:20:00Z", "kind": "checkpoint", "stage": 0, "percent": 1, "verdict": "pass"},
                {"at": "2026-02-01T21:20:00Z", "kind": "advance", "stage": 1, "percent": 5,
                 "message": "all gates passed and the bake time of 2h ended"},
                {"at": "2026-02-01T22:20:00Z", "kind": "checkpoint", "stage": 1, "percent": 5, "verdict": "warn"}
            ],
            "observedGeneration": 2,
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "Progressing",
                 "message": "gate error-rate failed", "lastTransitionTime": "2026-02-01T19:20:00Z", "observedGeneration": 2},
                {"type": "Reconciling", "status": "True", "reason": "Progressing",
                 "message": "gate error-rate failed", "lastTransitionTime": "2026-02-01T19:20:00Z", "observedGeneration": 2},
                {"type": "Stalled", "status": "False", "reason": "Progressing",
                 "message": "gate error-rate failed", "lastTransitionTime": "2026-02-01T19:20:00Z", "observedGeneration": 2}
            ]
    })
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

/// Runs `load_report` for kaviar/passenger-favorites-matching against a mock API server that
/// expects exactly one GET of the Rollout and answers `code` with `answer`.
async fn report_with(code: u16, answer: Value) -> Result<Report, FetchError> {
    let get = Expect::get(PATH)
        .query_exactly::<&str, &str>(&[])
        .no_body()
        .answer(code, answer);
    scenario(vec![get], |client| {
        load_report(client, "kaviar", "passenger-favorites-matching")
    })
    .await
}

#[tokio::test]
async fn a_live_rollout_renders_the_expected_markdown() {
    let report = report_with(200, rollout()).await.expect("a report");
    let text = markdown::render(&report, None);
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/snapshots/report-live.md");
    if std::env::var_os("ROLLGATE_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &text).expect("snapshot written");
    }
    let expected = std::fs::read_to_string(&path).expect("the snapshot");
    assert_eq!(
        text, expected,
        "differs from tests/cli/snapshots/report-live.md"
    );
}

#[tokio::test]
async fn a_live_chart_shows_the_percent_steps_and_each_gate_last_value() {
    let report = report_with(200, rollout()).await.expect("a report");
    let svg = chart::render(&report).expect("a chart");
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let with_stroke = |color: String| {
        doc.descendants()
            .filter(|n| n.attribute("stroke") == Some(color.as_str()))
            .count()
    };
    assert!(
        with_stroke(hex(PERCENT_COLOR)) >= 2,
        "a percent line and its legend"
    );
    // error-rate and critical-alerts have a last value: one point each; determinism had an
    // error, so no value to draw.
    assert!(with_stroke(hex(gate_color(0))) >= 2, "{svg}");
    assert!(with_stroke(hex(gate_color(1))) >= 2);
    assert_eq!(with_stroke(hex(gate_color(2))), 0);
}

#[tokio::test]
async fn a_missing_rollout_is_not_found() {
    let error = report_with(
        404,
        status(
            404,
            "NotFound",
            "rollouts \"passenger-favorites-matching\" not found",
        ),
    )
    .await
    .expect_err("no such rollout");
    assert!(matches!(error, FetchError::NotFound { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "no Rollout \"passenger-favorites-matching\" in namespace \"kaviar\""
    );
}

#[tokio::test]
async fn a_forbidden_read_is_an_api_error_naming_the_rollout() {
    let error = report_with(
        403,
        status(
            403,
            "Forbidden",
            "rollouts is forbidden: User \"dev\" cannot get resource",
        ),
    )
    .await
    .expect_err("forbidden");
    assert!(matches!(error, FetchError::Api { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.starts_with("cannot read Rollout kaviar/passenger-favorites-matching:")
            && text.contains("forbidden"),
        "{text}"
    );
}
