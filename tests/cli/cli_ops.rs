//! The operator commands (`status`, `pause`, `resume`, `promote`, `abort`, `retry`, `get`,
//! `list`) against the `tower-test` verifier: a mock API server behind `kube::Client` that
//! asserts each request's method, path, query, content type and body, answers like an API
//! server, and fails on any request it did not expect. The commands are the binary's own
//! modules, compiled in here so they run in-process with a mock client and a byte writer.

#![allow(dead_code)]

#[path = "../../src/cli/action.rs"]
mod action;
#[path = "../../src/cli/complete.rs"]
mod complete;
#[path = "../../src/cli/get.rs"]
mod get;
#[path = "../../src/cli/kube_client.rs"]
mod kube_client;
#[path = "../../src/cli/status.rs"]
mod status;
#[path = "../../src/cli/table.rs"]
mod table;

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use rollgate::api::Rollout;
use rollgate::engine::ManualAction;
use serde_json::{Value, json};

use crate::support::example_json;
use crate::support::verifier::{Expect, scenario};

use action::{Via, act};
use kube_client::{OpsError, Target};

const NS: &str = "kaviar";
const NAME: &str = "passenger-favorites-matching";
const PATH: &str =
    "/apis/rollgate.dev/v1alpha1/namespaces/kaviar/rollouts/passenger-favorites-matching";
const LIST_PATH: &str = "/apis/rollgate.dev/v1alpha1/namespaces/kaviar/rollouts";
const CLI: &[(&str, &str)] = &[("fieldManager", "rollgate-cli")];

/// One request the test expects and the answer it gets.
struct Exchange {
    method: &'static str,
    path: &'static str,
    query: Vec<(&'static str, String)>,
    /// The exact JSON body expected (none for a GET).
    body: Option<Value>,
    status: u16,
    /// The answer's bytes (JSON, or newline-separated watch events).
    answer: Vec<u8>,
}

fn get_rollout(answer: &Value) -> Exchange {
    Exchange {
        method: "GET",
        path: PATH,
        query: Vec::new(),
        body: None,
        status: 200,
        answer: serde_json::to_vec(answer).expect("json"),
    }
}

fn merge_patch(body: Value, status: u16, answer: &Value) -> Exchange {
    Exchange {
        method: "PATCH",
        path: PATH,
        query: CLI.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        body: Some(body),
        status,
        answer: serde_json::to_vec(answer).expect("json"),
    }
}

fn api_status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

impl Exchange {
    /// What the verifier asserts of this request: method, path, exact query, a JSON merge
    /// patch's content type, the exact body (none for a GET), and the answer.
    fn expect(self) -> Expect {
        let mut expect = Expect::new(self.method.parse().expect("a method"), self.path)
            .query_exactly(&self.query)
            .answer_bytes(self.status, self.answer);
        if self.method == "PATCH" {
            expect = expect.content_type("application/merge-patch+json");
        }
        match self.body {
            None => expect.no_body(),
            Some(body) => expect.body(body),
        }
    }
}

/// Runs `op` against a mock API server that expects exactly `exchanges`, in order, and no
/// other request.
async fn run<T, F>(exchanges: Vec<Exchange>, op: impl FnOnce(Client) -> F) -> T
where
    F: std::future::Future<Output = T>,
{
    scenario(exchanges.into_iter().map(Exchange::expect).collect(), op).await
}

fn at(text: &str) -> Timestamp {
    text.parse().expect("a valid time")
}

/// 2026-02-01 22:28 UTC: 1h10m into stage 1, which started at 21:18.
fn now() -> Timestamp {
    at("2026-02-01T22:28:00Z")
}

/// The design's plan, at stage 1 (5%) of three, one gate erroring.
fn rollout() -> Value {
    let mut rollout = example_json(NAME);
    rollout["metadata"] = json!({
        "name": NAME, "namespace": NS, "resourceVersion": "41", "generation": 1,
        "creationTimestamp": "2026-02-01T19:17:00Z",
        "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
    });
    rollout["status"] = progress();
    rollout
}

/// Stage 1 (5%) of three, one gate erroring.
fn progress() -> Value {
    json!({
            "phase": "Progressing",
            "stage": 1,
            "stageNumber": 2,
            "percent": 5,
            "startedAt": "2026-02-01T19:18:00Z",
            "stageStartedAt": "2026-02-01T21:18:00Z",
            "nextCheckpointAt": "2026-02-01T23:18:00Z",
            "message": "stage 2 of 3 at 5%, 1h of 2h baked, gate determinism: connection refused",
            "observedGeneration": 1,
            "gates": [
                {"name": "error-rate", "failures": 1, "misses": 0, "lastVerdict": "fail", "lastValue": 0.013},
                {"name": "critical-alerts", "failures": 0, "misses": 0, "lastVerdict": "pass", "lastValue": 0.0},
                {"name": "determinism", "failures": 0, "misses": 1, "lastVerdict": "error",
                 "lastMessage": "connection refused"}
            ],
            "history": [
                {"at": "2026-02-01T19:18:00Z", "kind": "start", "stage": 0, "percent": 1},
                {"at": "2026-02-01T20:18:00Z", "kind": "checkpoint", "stage": 0, "percent": 1, "verdict": "pass"},
                {"at": "2026-02-01T21:18:00Z", "kind": "checkpoint", "stage": 0, "percent": 1, "verdict": "pass"},
                {"at": "2026-02-01T21:18:00Z", "kind": "advance", "stage": 1, "percent": 5,
                 "message": "all gates passed for 2h at stage 1 of 3"},
                {"at": "2026-02-01T22:18:00Z", "kind": "checkpoint", "stage": 1, "percent": 5, "verdict": "warn"}
            ]
    })
}

/// The fixture with its status changed.
fn with(change: impl FnOnce(&mut Value)) -> Value {
    let mut value = rollout();
    change(&mut value);
    value
}

fn in_phase(phase: &str) -> Value {
    with(|r| r["status"]["phase"] = json!(phase))
}

fn parse(value: &Value) -> Rollout {
    serde_json::from_value(value.clone()).expect("the fixture is a Rollout")
}

// ── status ────────────────────────────────────────────────────────────────────────────────

const STATUS_TEXT: &str = "\
Rollout:          kaviar/passenger-favorites-matching
Phase:            Progressing
Stage:            stage 2 of 3 at 5%
Baked:            1h10m of 2h
Next checkpoint:  in 50m (2026-02-01T23:18:00Z)
Message:          stage 2 of 3 at 5%, 1h of 2h baked, gate determinism: connection refused
Gates:
  NAME              VERDICT   VALUE   BOUND     FAILURES   MISSES   MESSAGE
  error-rate        fail      0.013   <= 0.01   1/2        0/3
  critical-alerts   pass      0       <= 0      0/1        0/3
  determinism       error     -       <= 0      0/1        1/3      connection refused
History (last 4 of 5):
  2026-02-01T20:18:00Z   checkpoint pass   stage 1 of 3 at 1%
  2026-02-01T21:18:00Z   checkpoint pass   stage 1 of 3 at 1%
  2026-02-01T21:18:00Z   advance           stage 2 of 3 at 5%   all gates passed for 2h at stage 1 of 3
  2026-02-01T22:18:00Z   checkpoint warn   stage 2 of 3 at 5%
";

#[test]
fn status_renders_a_fixed_rollout() {
    let text = status::render(&parse(&rollout()), now(), 4);
    assert_eq!(text, STATUS_TEXT, "\n{text}");
}

#[test]
fn status_shows_a_percent_with_its_decimals() {
    let half = with(|r| {
        r["spec"]["stages"][1]["percent"] = json!(2.25);
        r["status"]["percent"] = json!(2.25);
        r["status"]["driftedPercent"] = json!(0.5);
        r["status"]["history"][4]["percent"] = json!(2.25);
    });
    let text = status::render(&parse(&half), now(), 1);
    assert!(
        text.contains("Stage:            stage 2 of 3 at 2.25%\n"),
        "{text}"
    );
    assert!(text.contains("the target holds 0.5%"), "{text}");
    assert!(text.contains("stage 2 of 3 at 2.25%\n"), "{text}");
}

#[test]
fn status_of_an_ended_rollout_shows_no_clock() {
    let rolled_back = with(|r| {
        r["status"]["phase"] = json!("RolledBack");
        r["status"]["percent"] = json!(0);
        r["status"]["message"] = json!("gate error-rate failed 2 checkpoints in a row");
    });
    let text = status::render(&parse(&rolled_back), now(), 0);
    assert!(text.contains("Phase:    RolledBack\n"), "{text}");
    assert!(text.contains("Stage:    stage 2 of 3 at 0%\n"), "{text}");
    assert!(!text.contains("Baked"), "{text}");
    assert!(!text.contains("Next checkpoint"), "{text}");
    assert!(!text.contains("History"), "{text}");
}

fn options(watch: bool) -> status::StatusOptions<'static> {
    status::StatusOptions {
        watch,
        timeout: None,
        history: 4,
        clear_screen: false,
        now: &now,
    }
}

#[tokio::test]
async fn status_prints_the_rollout_and_exits_by_phase() {
    for (phase, code) in [
        ("Progressing", 0),
        ("Paused", 0),
        ("Pending", 0),
        ("Succeeded", 0),
        ("RolledBack", 1),
        ("Failed", 1),
    ] {
        let answer = in_phase(phase);
        let mut out = Vec::new();
        let result = run(vec![get_rollout(&answer)], |client| async move {
            let target = Target::new(&client, Some(NS), NAME);
            status::status(&client, &target, &options(false), &mut out)
                .await
                .map(|code| (code, out))
        })
        .await;
        let (exit, out) = result.expect("status works");
        assert_eq!(exit, code, "{phase}");
        let text = String::from_utf8(out).expect("utf-8");
        let shown = text
            .lines()
            .find_map(|l| l.strip_prefix("Phase:"))
            .map(str::trim);
        assert_eq!(shown, Some(phase), "{text}");
    }
}

fn watch_request(version: &str) -> Vec<(&'static str, String)> {
    vec![
        ("watch", "true".to_owned()),
        ("resourceVersion", version.to_owned()),
        ("fieldSelector", format!("metadata.name={NAME}")),
        ("timeoutSeconds", "290".to_owned()),
        ("allowWatchBookmarks", "true".to_owned()),
    ]
}

fn events(events: &[(&str, Value)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (kind, object) in events {
        bytes.extend(serde_json::to_vec(&json!({"type": kind, "object": object})).expect("json"));
        bytes.push(b'\n');
    }
    bytes
}

#[tokio::test]
async fn status_watch_follows_the_rollout_until_it_rolls_back() {
    let paused = with(|r| {
        r["metadata"]["resourceVersion"] = json!("42");
        r["status"]["phase"] = json!("Paused");
        r["status"]["message"] = json!("paused by user");
    });
    let rolled_back = with(|r| {
        r["metadata"]["resourceVersion"] = json!("44");
        r["status"]["phase"] = json!("RolledBack");
        r["status"]["percent"] = json!(0);
        r["status"]["message"] = json!("aborted by user");
    });
    let exchanges = vec![
        get_rollout(&rollout()),
        Exchange {
            method: "GET",
            path: LIST_PATH,
            query: watch_request("41"),
            body: None,
            status: 200,
            answer: events(&[
                ("MODIFIED", paused),
                (
                    "BOOKMARK",
                    json!({"kind": "Rollout", "apiVersion": "rollgate.dev/v1alpha1",
                                    "metadata": {"resourceVersion": "43"}}),
                ),
            ]),
        },
        Exchange {
            method: "GET",
            path: LIST_PATH,
            query: watch_request("43"),
            body: None,
            status: 200,
            answer: events(&[("MODIFIED", rolled_back)]),
        },
    ];
    let (exit, out) = run(exchanges, |client| async move {
        let target = Target::new(&client, Some(NS), NAME);
        let mut out = Vec::new();
        let code = status::status(&client, &target, &options(true), &mut out)
            .await
            .expect("status -w works");
        (code, out)
    })
    .await;
    assert_eq!(exit, status::EXIT_STALLED);
    let text = String::from_utf8(out).expect("utf-8");
    let phases: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("Phase:"))
        .map(str::trim)
        .collect();
    assert_eq!(phases, ["Progressing", "Paused", "RolledBack"], "{text}");
    assert_eq!(
        text.matches("\n\nRollout:").count(),
        2,
        "snapshots apart: {text}"
    );
}

#[tokio::test]
async fn status_watch_of_an_ended_rollout_does_not_watch() {
    let succeeded = in_phase("Succeeded");
    let exit = run(vec![get_rollout(&succeeded)], |client| async move {
        let target = Target::new(&client, Some(NS), NAME);
        status::status(&client, &target, &options(true), &mut Vec::new())
            .await
            .expect("status works")
    })
    .await;
    assert_eq!(exit, 0);
}

#[tokio::test]
async fn status_of_a_missing_rollout_is_bad_input() {
    let missing = Exchange {
        status: 404,
        answer: serde_json::to_vec(&api_status(404, "NotFound", "rollouts \"x\" not found"))
            .expect("json"),
        ..get_rollout(&json!({}))
    };
    let error = run(vec![missing], |client| async move {
        let target = Target::new(&client, Some(NS), NAME);
        status::status(&client, &target, &options(false), &mut Vec::new())
            .await
            .expect_err("not found")
    })
    .await;
    assert!(matches!(error, OpsError::NotFound { .. }), "{error:?}");
    assert_eq!(error.exit_status(), 2);
    assert_eq!(
        error.to_string(),
        "rollout kaviar/passenger-favorites-matching not found"
    );
}

// ── actions ───────────────────────────────────────────────────────────────────────────────

async fn act_on(
    answer: &Value,
    patch: Option<Value>,
    action: ManualAction,
    via: Via,
) -> Result<String, OpsError> {
    let mut exchanges = vec![get_rollout(answer)];
    if let Some(body) = patch {
        exchanges.push(merge_patch(body, 200, answer));
    }
    run(exchanges, |client| async move {
        let target = Target::new(&client, Some(NS), NAME);
        let mut out = Vec::new();
        act(&client, &target, action, via, now(), &mut out).await?;
        Ok(String::from_utf8(out).expect("utf-8"))
    })
    .await
}

fn annotate(word: &str, version: &str) -> Value {
    json!({"metadata": {"resourceVersion": version, "annotations": {"rollgate.dev/action": word}}})
}

#[tokio::test]
async fn promote_sets_the_annotation_and_says_where_the_rollout_goes() {
    let out = act_on(
        &rollout(),
        Some(annotate("promote", "41")),
        ManualAction::Promote,
        Via::Annotation,
    )
    .await
    .expect("promote works");
    assert_eq!(
        out,
        "promote: passenger-favorites-matching will advance from stage 2 of 3 (5%) to stage 3 of 3 (10%) \
         at its next reconcile (set rollgate.dev/action=promote)\n"
    );
}

#[tokio::test]
async fn promote_at_the_last_stage_completes_and_from_paused_advances() {
    let last = with(|r| {
        r["status"]["stage"] = json!(2);
        r["status"]["percent"] = json!(10);
    });
    let out = act_on(
        &last,
        Some(annotate("promote", "41")),
        ManualAction::Promote,
        Via::Annotation,
    )
    .await
    .expect("promote works");
    assert!(
        out.starts_with("promote: passenger-favorites-matching will complete at stage 3 of 3 (10%), its last stage at its next reconcile"),
        "{out}"
    );
    let paused = in_phase("Paused");
    let out = act_on(
        &paused,
        Some(annotate("promote", "41")),
        ManualAction::Promote,
        Via::Annotation,
    )
    .await
    .expect("promote works");
    assert!(
        out.contains("will advance from stage 2 of 3 (5%) to stage 3 of 3 (10%)"),
        "{out}"
    );
}

#[tokio::test]
async fn abort_pause_resume_and_retry_each_send_one_patch() {
    let cases = [
        (
            ManualAction::Abort,
            rollout(),
            "abort: passenger-favorites-matching will roll back from stage 2 of 3 (5%) to 0% at its next reconcile (set rollgate.dev/action=abort)\n",
        ),
        (
            ManualAction::Pause,
            rollout(),
            "pause: passenger-favorites-matching will pause at stage 2 of 3 (5%) (checkpoints go on and a failing gate still rolls back) at its next reconcile (set rollgate.dev/action=pause)\n",
        ),
        (
            ManualAction::Resume,
            in_phase("Paused"),
            "resume: passenger-favorites-matching will resume at stage 2 of 3 (5%) at its next reconcile (set rollgate.dev/action=resume)\n",
        ),
        (
            ManualAction::Retry,
            with(|r| {
                r["status"]["phase"] = json!("RolledBack");
                r["status"]["percent"] = json!(0);
            }),
            "retry: passenger-favorites-matching will start again from stage 1 of 3 (1%) once its pre-checks pass at its next reconcile (set rollgate.dev/action=retry)\n",
        ),
    ];
    for (action, answer, expected) in cases {
        let out = act_on(
            &answer,
            Some(annotate(action.as_str(), "41")),
            action,
            Via::Annotation,
        )
        .await
        .unwrap_or_else(|e| panic!("{} failed: {e}", action.as_str()));
        assert_eq!(out, expected);
    }
}

#[tokio::test]
async fn gitops_pause_and_resume_set_spec_paused() {
    let out = act_on(
        &rollout(),
        Some(json!({"metadata": {"resourceVersion": "41"}, "spec": {"paused": true}})),
        ManualAction::Pause,
        Via::SpecPaused,
    )
    .await
    .expect("pause --gitops works");
    assert_eq!(
        out,
        "pause: passenger-favorites-matching will pause at stage 2 of 3 (5%) (checkpoints go on and a \
         failing gate still rolls back) at its next reconcile (set spec.paused=true)\n"
    );
    let paused_by_spec = with(|r| {
        r["spec"]["paused"] = json!(true);
        r["status"]["phase"] = json!("Paused");
        r["status"]["pausedBySpec"] = json!(true);
    });
    let out = act_on(
        &paused_by_spec,
        Some(json!({"metadata": {"resourceVersion": "41"}, "spec": {"paused": false}})),
        ManualAction::Resume,
        Via::SpecPaused,
    )
    .await
    .expect("resume --gitops works");
    assert!(out.contains("will resume at stage 2 of 3 (5%)"), "{out}");
    assert!(out.ends_with("(set spec.paused=false)\n"), "{out}");
}

#[tokio::test]
async fn actions_that_change_nothing_are_refused_without_a_patch() {
    let who = "kaviar/passenger-favorites-matching";
    let cases = [
        (
            ManualAction::Retry,
            "Progressing",
            "retry applies to a RolledBack rollout",
        ),
        (
            ManualAction::Retry,
            "Succeeded",
            "retry applies to a RolledBack rollout",
        ),
        (
            ManualAction::Resume,
            "Progressing",
            "resume applies to a Paused rollout",
        ),
        (
            ManualAction::Pause,
            "Paused",
            "pause applies to a Progressing rollout",
        ),
        (
            ManualAction::Pause,
            "Succeeded",
            "pause applies to a Progressing rollout",
        ),
        (
            ManualAction::Promote,
            "Succeeded",
            "promote applies to a Progressing or Paused rollout",
        ),
        (
            ManualAction::Promote,
            "RolledBack",
            "promote applies to a Progressing or Paused rollout",
        ),
        (
            ManualAction::Abort,
            "RolledBack",
            "abort applies to a Progressing or Paused rollout",
        ),
        (
            ManualAction::Abort,
            "Failed",
            "abort applies to a Progressing or Paused rollout",
        ),
        (
            ManualAction::Promote,
            "Pending",
            "promote applies to a Progressing or Paused rollout",
        ),
    ];
    for (action, phase, hint) in cases {
        let word = action.as_str();
        let error = act_on(&in_phase(phase), None, action, Via::Annotation)
            .await
            .expect_err("refused");
        assert_eq!(error.exit_status(), 2, "{word} in {phase}");
        assert_eq!(
            error.to_string(),
            format!("{word}: {who} is {phase}: {word} would change nothing ({hint})"),
        );
    }
}

#[tokio::test]
async fn gitops_refusals_name_spec_paused() {
    let error = act_on(
        &with(|r| r["spec"]["paused"] = json!(true)),
        None,
        ManualAction::Pause,
        Via::SpecPaused,
    )
    .await
    .expect_err("refused");
    assert_eq!(
        error.to_string(),
        "pause --gitops: kaviar/passenger-favorites-matching already has spec.paused: true"
    );
    // Resuming by spec a rollout a person paused by annotation would not resume it.
    let error = act_on(
        &in_phase("Paused"),
        None,
        ManualAction::Resume,
        Via::SpecPaused,
    )
    .await
    .expect_err("refused");
    assert_eq!(error.exit_status(), 2);
}

#[tokio::test]
async fn an_action_still_waiting_for_the_controller_is_not_overwritten() {
    let waiting = with(|r| {
        r["metadata"]["annotations"] = json!({"rollgate.dev/action": "pause"});
    });
    let error = act_on(&waiting, None, ManualAction::Promote, Via::Annotation)
        .await
        .expect_err("refused");
    assert_eq!(error.exit_status(), 2);
    assert!(
        error
            .to_string()
            .contains("already has the action \"pause\" waiting"),
        "{error}"
    );
}

#[tokio::test]
async fn a_rollout_changed_meanwhile_is_a_conflict_not_a_blind_write() {
    let exchanges = vec![
        get_rollout(&rollout()),
        merge_patch(
            annotate("abort", "41"),
            409,
            &api_status(409, "Conflict", "the object has been modified"),
        ),
    ];
    let error = run(exchanges, |client| async move {
        let target = Target::new(&client, Some(NS), NAME);
        act(
            &client,
            &target,
            ManualAction::Abort,
            Via::Annotation,
            now(),
            &mut Vec::new(),
        )
        .await
        .expect_err("a conflict")
    })
    .await;
    assert!(matches!(error, OpsError::Conflict { .. }), "{error:?}");
    assert_eq!(error.exit_status(), 3);
}

// ── get and list ──────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn get_prints_the_printer_columns() {
    let out = run(vec![get_rollout(&rollout())], |client| async move {
        let target = Target::new(&client, Some(NS), NAME);
        let mut out = Vec::new();
        get::get(&client, &target, None, now(), &mut out)
            .await
            .expect("get works");
        String::from_utf8(out).expect("utf-8")
    })
    .await;
    assert_eq!(
        out,
        "NAME                           PHASE         STAGE   PERCENT   AGE     MESSAGE\n\
         passenger-favorites-matching   Progressing   2       5         3h11m   stage 2 of 3 at 5%, 1h of 2h baked, gate determinism: connection refused\n"
    );
}

#[tokio::test]
async fn get_prints_the_object_as_json_or_yaml_without_managed_fields() {
    for format in [get::ObjectFormat::Json, get::ObjectFormat::Yaml] {
        let out = run(vec![get_rollout(&rollout())], |client| async move {
            let target = Target::new(&client, Some(NS), NAME);
            let mut out = Vec::new();
            get::get(&client, &target, Some(format), now(), &mut out)
                .await
                .expect("get works");
            String::from_utf8(out).expect("utf-8")
        })
        .await;
        let back: Value = match format {
            get::ObjectFormat::Json => serde_json::from_str(&out).expect("json"),
            get::ObjectFormat::Yaml => serde_saphyr::from_str(&out).expect("yaml"),
            other => unreachable!("{other:?}"),
        };
        let mut expected = rollout();
        expected["metadata"]
            .as_object_mut()
            .expect("metadata")
            .remove("managedFields");
        let expected = serde_json::to_value(parse(&expected)).expect("json");
        assert_eq!(back, expected, "{format:?}");
    }
}

#[tokio::test]
async fn list_all_namespaces_adds_the_namespace_column() {
    let other = with(|r| {
        r["metadata"]["name"] = json!("checkout-v2");
        r["metadata"]["namespace"] = json!("shop");
        r["metadata"]["creationTimestamp"] = json!("2026-01-30T22:28:00Z");
        r.as_object_mut().expect("object").remove("status");
    });
    let listed = json!({
        "apiVersion": "rollgate.dev/v1alpha1", "kind": "RolloutList",
        "metadata": {"resourceVersion": "50"},
        "items": [rollout(), other]
    });
    let exchange = Exchange {
        method: "GET",
        path: "/apis/rollgate.dev/v1alpha1/rollouts",
        query: Vec::new(),
        body: None,
        status: 200,
        answer: serde_json::to_vec(&listed).expect("json"),
    };
    let out = run(vec![exchange], |client| async move {
        let mut out = Vec::new();
        let query = get::Query {
            scope: get::Scope::All,
            name: None,
            selector: None,
        };
        get::list_matching(&client, &query, None, now(), &mut out)
            .await
            .expect("list works");
        String::from_utf8(out).expect("utf-8")
    })
    .await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("NAMESPACE   NAME"), "{out}");
    assert!(
        lines[1].starts_with("kaviar      passenger-favorites-matching   Progressing"),
        "{out}"
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        [
            "shop",
            "checkout-v2",
            "<none>",
            "<none>",
            "<none>",
            "2d",
            "<none>"
        ],
        "{out}"
    );
}

#[tokio::test]
async fn list_of_an_empty_namespace_says_so() {
    let listed = json!({"apiVersion": "rollgate.dev/v1alpha1", "kind": "RolloutList",
                        "metadata": {"resourceVersion": "50"}, "items": []});
    let exchange = Exchange {
        method: "GET",
        path: LIST_PATH,
        query: Vec::new(),
        body: None,
        status: 200,
        answer: serde_json::to_vec(&listed).expect("json"),
    };
    let out = run(vec![exchange], |client| async move {
        let mut out = Vec::new();
        let query = get::Query {
            scope: get::Scope::Namespace(NS.to_owned()),
            name: None,
            selector: None,
        };
        get::list_matching(&client, &query, None, now(), &mut out)
            .await
            .expect("list works");
        String::from_utf8(out).expect("utf-8")
    })
    .await;
    assert_eq!(out, "No rollouts found in namespace kaviar.\n");
}

#[tokio::test]
async fn gitops_on_an_ended_rollout_is_refused_as_it_would_start_it_again() {
    for phase in ["Succeeded", "RolledBack"] {
        let error = act_on(&in_phase(phase), None, ManualAction::Pause, Via::SpecPaused)
            .await
            .expect_err("refused");
        assert_eq!(
            error.to_string(),
            format!(
                "pause: kaviar/passenger-favorites-matching is {phase}: pause would change \
                 nothing (pause applies to a Progressing rollout)"
            )
        );
    }
}

#[tokio::test]
async fn an_action_on_a_rollout_the_controller_has_not_seen_is_refused() {
    let new = with(|r| {
        r.as_object_mut().expect("object").remove("status");
    });
    let error = act_on(&new, None, ManualAction::Abort, Via::Annotation)
        .await
        .expect_err("refused");
    assert_eq!(
        error.to_string(),
        "abort: kaviar/passenger-favorites-matching has no status yet (the controller has not \
         taken it up): abort would change nothing (abort applies to a Progressing or Paused \
         rollout)"
    );
}

#[test]
fn status_of_a_rollout_not_reconciled_yet() {
    let new = with(|r| {
        r.as_object_mut().expect("object").remove("status");
    });
    let text = status::render(&parse(&new), now(), 5);
    assert_eq!(
        text,
        "\
Rollout:  kaviar/passenger-favorites-matching
Phase:    (not reconciled yet)
Gates:
  NAME              VERDICT   VALUE   BOUND     FAILURES   MISSES   MESSAGE
  error-rate        -         -       <= 0.01   0/2        0/3
  critical-alerts   -         -       <= 0      0/1        0/3
  determinism       -         -       <= 0      0/1        0/3
"
    );
}
