//! The reconcile loop against a mock API server, the kube-rs way: a `tower-test` service
//! behind `kube::Client`, and a verifier that asserts every request's method, path, query and
//! body in order and answers as an API server would. Gate observations and the clock are
//! injected, so no Prometheus is needed. Anything the reconcile sends beyond the script fails
//! the test.

use rollgate::api::Percent;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use rollgate::api::{GateVerdict, Phase, Rollout, RolloutSpec, RolloutStatus};
use rollgate::controller::{
    AlwaysLeader, CLAIMED_ANNOTATION, Clock, Context, GateObserver, GateReading, KubeTargets,
    LeaderCheck, ReconcileError, error_policy, reading, reconcile,
};
use rollgate::engine::{self, Inputs, Observation};
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

const NS: &str = "kaviar";
const ROLLOUT_PATH: &str = "/apis/rollgate.dev/v1alpha1/namespaces/kaviar/rollouts/demo";
const STATUS_PATH: &str = "/apis/rollgate.dev/v1alpha1/namespaces/kaviar/rollouts/demo/status";
const CM_PATH: &str = "/api/v1/namespaces/kaviar/configmaps/pct";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/kaviar/events";
const H: i64 = 3600;

const PLAN: &str = r#"
target:
  configMap: {name: pct, key: percent}
stages:
  - {percent: 1, duration: 1h}
  - {percent: 5, duration: 1h}
  - {percent: 10, duration: 1h}
analysis:
  interval: 1h
  gates:
    - name: error-rate
      prometheus: {query: 'sum(rate(errors[5m]))'}
      max: 0.01
      failureLimit: 2
"#;

// ── the world: clock, gates, rollout, target ─────────────────────────────────────────────────

fn t0() -> Timestamp {
    "2026-02-01T19:18:00Z".parse().expect("a time")
}

fn t(secs: i64) -> Timestamp {
    t0().checked_add(SignedDuration::from_secs(secs))
        .expect("a time")
}

struct FixedClock(Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

/// Gates that answer what the test says, counting the calls.
struct ScriptedGates {
    observations: Vec<Observation>,
    calls: Mutex<usize>,
}

impl GateObserver for ScriptedGates {
    fn observe<'a>(
        &'a self,
        _rollout: &'a Rollout,
        _status: &'a RolloutStatus,
        _at: Timestamp,
    ) -> futures_util::future::BoxFuture<'a, Vec<GateReading>> {
        *self.calls.lock().expect("lock") += 1;
        let readings = self.observations.iter().cloned().map(reading).collect();
        Box::pin(async move { readings })
    }
}

struct NeverLeader;

impl LeaderCheck for NeverLeader {
    fn is_leader(&self) -> bool {
        false
    }
}

fn spec(yaml: &str) -> RolloutSpec {
    serde_saphyr::from_str(yaml).expect("a test plan")
}

fn rollout(spec: RolloutSpec, status: Option<RolloutStatus>) -> Rollout {
    let mut r = Rollout::new("demo", spec);
    r.metadata.namespace = Some(NS.into());
    r.metadata.uid = Some("uid-1".into());
    r.metadata.generation = Some(1);
    r.metadata.resource_version = Some("10".into());
    r.status = status;
    r
}

/// The status of a rollout started at t = 0 (as the controller would have written it).
fn started(spec: &RolloutSpec) -> RolloutStatus {
    let mut status = RolloutStatus::default();
    engine::decide(
        spec,
        &mut status,
        &Inputs::at(t(0)).with_generation(Some(1)),
    );
    status.update_conditions(t(0));
    status
}

/// The status after `rounds` passing checkpoints (hourly) from a start at t = 0.
fn after_checkpoints(spec: &RolloutSpec, observations: &[&[Observation]]) -> RolloutStatus {
    let mut status = started(spec);
    for (i, obs) in observations.iter().enumerate() {
        let at = t((i as i64 + 1) * H);
        engine::decide(
            spec,
            &mut status,
            &Inputs::at(at)
                .with_generation(Some(1))
                .with_observations(obs),
        );
        status.update_conditions(at);
    }
    status
}

fn config_map(percent: &str, version: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "pct",
            "namespace": NS,
            "resourceVersion": version,
            "labels": {"rollgate.dev/managed": "true"}
        },
        "data": {"percent": percent}
    }))
    .expect("a ConfigMap")
}

// ── the mock API server ──────────────────────────────────────────────────────────────────────

type ApiHandle = Handle<Request<Body>, Response<Body>>;

type Respond = Box<dyn FnOnce(&Value) -> (u16, Value) + Send>;

/// One request the reconcile must send, and the answer.
struct Step {
    method: Method,
    path: &'static str,
    query: &'static [&'static str],
    check: Box<dyn FnOnce(&Value) + Send>,
    respond: Respond,
}

fn step(method: Method, path: &'static str) -> Step {
    Step {
        method,
        path,
        query: &[],
        check: Box::new(|_| {}),
        respond: Box::new(|body| (200, body.clone())),
    }
}

impl Step {
    fn query(mut self, query: &'static [&'static str]) -> Self {
        self.query = query;
        self
    }
    fn check(mut self, check: impl FnOnce(&Value) + Send + 'static) -> Self {
        self.check = Box::new(check);
        self
    }
    fn respond(mut self, respond: impl FnOnce(&Value) -> (u16, Value) + Send + 'static) -> Self {
        self.respond = Box::new(respond);
        self
    }
    fn fail(self, code: u16) -> Self {
        self.respond(move |_| {
            let reason = if code == 409 {
                "Conflict"
            } else {
                "InternalError"
            };
            (
                code,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                       "message": format!("mock answer {code}"), "reason": reason, "code": code}),
            )
        })
    }
}

/// The status a server-side apply of the status carried, as the Rollout it returns.
fn status_applied(rollout: &Rollout, version: &'static str) -> Respond {
    let mut base = serde_json::to_value(rollout).expect("json");
    Box::new(move |body: &Value| {
        base["status"] = body["status"].clone();
        base["metadata"]["resourceVersion"] = json!(version);
        (200, base)
    })
}

fn status_of(body: &Value) -> RolloutStatus {
    serde_json::from_value(body["status"].clone()).expect("a status in the body")
}

fn status_apply(rollout: &Rollout, version: &'static str) -> Step {
    let respond = status_applied(rollout, version);
    let expected_version = rollout.metadata.resource_version.clone();
    step(Method::PATCH, STATUS_PATH)
        .query(&["fieldManager=rollgate", "force=true"])
        .check(move |body| {
            assert_eq!(body["apiVersion"], "rollgate.dev/v1alpha1");
            assert_eq!(body["kind"], "Rollout");
            assert_eq!(body["metadata"]["name"], "demo");
            assert_eq!(
                body["metadata"]["resourceVersion"].as_str(),
                expected_version.as_deref(),
                "the status write is guarded by the version decided on"
            );
        })
        .respond(respond)
}

fn cm_get(percent: &'static str) -> Step {
    step(Method::GET, CM_PATH).respond(move |_| {
        (
            200,
            serde_json::to_value(config_map(percent, "100")).expect("json"),
        )
    })
}

fn cm_patch(percent: &'static str) -> Step {
    step(Method::PATCH, CM_PATH)
        .query(&["fieldManager=rollgate"])
        .check(move |body| {
            assert_eq!(body["data"]["percent"], percent, "{body}");
            assert_eq!(body["metadata"]["labels"]["rollgate.dev/managed"], "true");
        })
        .respond(move |_| {
            (
                200,
                serde_json::to_value(config_map(percent, "101")).expect("json"),
            )
        })
}

fn cm_dry_run() -> Step {
    step(Method::PATCH, CM_PATH)
        .query(&["dryRun=All", "fieldManager=rollgate"])
        .respond(|_| {
            (
                200,
                serde_json::to_value(config_map("0", "100")).expect("json"),
            )
        })
}

/// A merge patch of the Rollout's metadata, answered with the Rollout.
fn rollout_patch(r: &Rollout) -> Step {
    let answer = serde_json::to_value(r).expect("json");
    step(Method::PATCH, ROLLOUT_PATH).respond(move |_| (200, answer))
}

fn event(reason: &'static str, action: &'static str) -> Step {
    step(Method::POST, EVENTS_PATH)
        .check(move |body| {
            assert_eq!(body["reason"], reason, "{body}");
            assert_eq!(body["action"], action, "{body}");
            assert_eq!(body["regarding"]["name"], "demo");
            assert_eq!(body["regarding"]["kind"], "Rollout");
            assert_eq!(body["reportingController"], "rollgate");
        })
        .respond(|body| (201, body.clone()))
}

/// Answers the script in order; any other request, or one missing, fails. Returns the
/// bodies, in order.
async fn verify(
    mut handle: Handle<Request<Body>, Response<Body>>,
    script: Vec<Step>,
) -> Vec<Value> {
    let mut bodies = Vec::new();
    for (i, step) in script.into_iter().enumerate() {
        let Some((request, send)) = handle.next_request().await else {
            panic!("request {i} ({} {}) was never sent", step.method, step.path);
        };
        let (method, uri) = (request.method().clone(), request.uri().clone());
        assert_eq!(
            (&method, uri.path()),
            (&step.method, step.path),
            "request {i}"
        );
        let query = uri.query().unwrap_or_default();
        for part in step.query {
            assert!(
                query.split('&').any(|q| q == *part),
                "request {i} {method} {}: query {query:?} lacks {part}",
                uri.path()
            );
        }
        let bytes = request.into_body().collect_bytes().await.expect("a body");
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON body")
        };
        (step.check)(&body);
        let (code, answer) = (step.respond)(&body);
        bodies.push(body);
        send.send_response(
            Response::builder()
                .status(code)
                .body(Body::from(serde_json::to_vec(&answer).expect("json")))
                .expect("a response"),
        );
    }
    if let Some((request, _)) = handle.next_request().await {
        panic!("unexpected request: {} {}", request.method(), request.uri());
    }
    bodies
}

struct World {
    now: Timestamp,
    observations: Vec<Observation>,
    config_map: Option<ConfigMap>,
    leader: bool,
}

impl World {
    fn at(now: Timestamp) -> Self {
        Self {
            now,
            observations: vec![Observation::Value(0.002)],
            config_map: None,
            leader: true,
        }
    }
    fn gates(mut self, observations: Vec<Observation>) -> Self {
        self.observations = observations;
        self
    }
    fn cached(mut self, percent: &str) -> Self {
        self.config_map = Some(config_map(percent, "100"));
        self
    }
    fn standby(mut self) -> Self {
        self.leader = false;
        self
    }

    fn context(self) -> (Arc<Context>, ApiHandle, Arc<ScriptedGates>) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let mut writer: Writer<ConfigMap> = Writer::default();
        if let Some(cm) = self.config_map {
            writer.apply_watcher_event(&watcher::Event::Apply(cm));
        }
        let gates = Arc::new(ScriptedGates {
            observations: self.observations,
            calls: Mutex::new(0),
        });
        let leader: Arc<dyn LeaderCheck> = if self.leader {
            Arc::new(AlwaysLeader)
        } else {
            Arc::new(NeverLeader)
        };
        let ctx = Context::new(
            client.clone(),
            Recorder::new(
                client.clone(),
                Reporter {
                    controller: "rollgate".into(),
                    instance: None,
                },
            ),
            Arc::new(FixedClock(self.now)),
            gates.clone(),
            Arc::new(KubeTargets::new(client, Some(writer.as_reader()), None)),
            leader,
        );
        (Arc::new(ctx), handle, gates)
    }
}

/// Reconciles `rollout` in `world` against `script`; returns the result and the bodies sent.
async fn run(
    world: World,
    rollout: &Rollout,
    script: Vec<Step>,
) -> (Result<Action, ReconcileError>, Vec<Value>) {
    let (ctx, handle, _) = world.context();
    run_with(ctx, handle, rollout, script).await
}

async fn run_with(
    ctx: Arc<Context>,
    handle: Handle<Request<Body>, Response<Body>>,
    rollout: &Rollout,
    script: Vec<Step>,
) -> (Result<Action, ReconcileError>, Vec<Value>) {
    let verifier = tokio::spawn(verify(handle, script));
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        reconcile(Arc::new(rollout.clone()), ctx),
    )
    .await
    .expect("the reconcile finishes");
    let bodies = verifier.await.expect("the verifier passed");
    (result, bodies)
}

fn requeue_at(secs: u64) -> Action {
    Action::requeue(Duration::from_secs(secs))
}

fn condition<'a>(status: &'a RolloutStatus, kind: &str) -> &'a str {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.as_str())
        .unwrap_or_else(|| panic!("no {kind} condition: {:?}", status.conditions))
}

// ── start ────────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn start_writes_status_first_then_the_target_then_tells() {
    let r = rollout(spec(PLAN), None);
    let script = vec![
        cm_get("0"),
        cm_dry_run(),
        status_apply(&r, "11").check(|body| {
            let s = status_of(body);
            assert_eq!(s.phase, Some(Phase::Progressing));
            assert_eq!(s.percent, Some(Percent::whole(1)));
            assert!(s.target_pending, "the target write is not confirmed yet");
            assert_eq!(s.observed_generation, Some(1));
            assert_eq!(condition(&s, "Reconciling"), "True");
            assert_eq!(condition(&s, "Ready"), "False");
        }),
        cm_get("0"),
        cm_patch("1"),
        event("Started", "StartStage0"),
    ];
    let (result, _) = run(World::at(t(0)).cached("0"), &r, script).await;
    assert_eq!(
        result.expect("reconciled"),
        requeue_at(300),
        "the next checkpoint is an hour away; requeue within 5 minutes"
    );
}

// ── pre-checks ───────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn failing_prechecks_keep_the_rollout_pending_with_a_condition_and_an_event() {
    let r = rollout(spec(PLAN), None);
    let script = vec![
        cm_get("0"),
        cm_dry_run(),
        status_apply(&r, "11").check(|body| {
            let s = status_of(body);
            assert_eq!(s.phase, Some(Phase::Pending));
            assert_eq!(s.percent, None);
            let message = s.message.clone().unwrap_or_default();
            assert!(message.contains("holds 3%"), "{message}");
            assert!(
                message.contains("gate error-rate: connection refused"),
                "{message}"
            );
            assert_eq!(condition(&s, "Ready"), "False");
            assert_eq!(condition(&s, "Stalled"), "False");
        }),
        event("PreCheckFailed", "PreCheck"),
    ];
    let world = World::at(t(0))
        .cached("3")
        .gates(vec![Observation::Error("connection refused".into())]);
    let (result, _) = run(world, &r, script).await;
    assert_eq!(
        result.expect("reconciled"),
        requeue_at(5),
        "retried with backoff"
    );
}

#[tokio::test]
async fn min_allowlist_is_a_precheck() {
    let mut plan = spec(PLAN);
    plan.pre_checks = Some(serde_json::from_value(json!({"minAllowlist": 10})).expect("json"));
    let r = rollout(plan, None);
    let script = vec![
        cm_get("0"),
        cm_dry_run(),
        status_apply(&r, "11").check(|body| {
            let message = status_of(body).message.unwrap_or_default();
            assert!(message.contains("minAllowlist 10"), "{message}");
        }),
        event("PreCheckFailed", "PreCheck"),
    ];
    let (result, _) = run(World::at(t(0)).cached("0"), &r, script).await;
    result.expect("reconciled");
}

// ── checkpoints ──────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn a_passing_checkpoint_after_the_bake_time_advances() {
    let plan = spec(PLAN);
    let r = rollout(plan.clone(), Some(started(&plan)));
    let script = vec![
        status_apply(&r, "11").check(|body| {
            let s = status_of(body);
            assert_eq!((s.stage, s.percent), (1, Some(Percent::whole(5))));
            assert!(s.target_pending);
            assert_eq!(s.gates[0].last_verdict, Some(GateVerdict::Pass));
        }),
        cm_get("1"),
        cm_patch("5"),
        event("Advanced", "AdvanceToStage1"),
    ];
    let (result, _) = run(World::at(t(H)).cached("1"), &r, script).await;
    assert_eq!(result.expect("reconciled"), requeue_at(300));
}

#[tokio::test]
async fn a_second_failing_checkpoint_rolls_back() {
    let plan = spec(PLAN);
    let spike = [Observation::Value(0.5)];
    let status = after_checkpoints(&plan, &[&spike]);
    assert_eq!(status.gates[0].failures, 1);
    let r = rollout(plan, Some(status));
    let script = vec![
        status_apply(&r, "11").check(|body| {
            let s = status_of(body);
            assert_eq!(s.phase, Some(Phase::RolledBack));
            assert_eq!(s.percent, Some(Percent::whole(0)));
            assert_eq!(condition(&s, "Stalled"), "True");
        }),
        cm_get("1"),
        cm_patch("0"),
        event("RolledBack", "RollBackFromStage0"),
    ];
    let world = World::at(t(2 * H))
        .cached("1")
        .gates(vec![Observation::Value(0.5)]);
    let (result, _) = run(world, &r, script).await;
    assert_eq!(result.expect("reconciled"), requeue_at(300));
}

#[tokio::test]
async fn a_gate_error_is_an_event_and_holds() {
    let plan = spec(PLAN);
    let r = rollout(plan.clone(), Some(started(&plan)));
    let script = vec![
        status_apply(&r, "11").check(|body| {
            let s = status_of(body);
            assert_eq!((s.stage, s.gates[0].misses), (0, 1));
        }),
        event("GateError", "Observe:error-rate"),
    ];
    let world = World::at(t(H))
        .cached("1")
        .gates(vec![Observation::Error("timeout".into())]);
    let (result, _) = run(world, &r, script).await;
    assert_eq!(result.expect("reconciled"), requeue_at(300));
}

// ── drift ────────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn a_hand_edit_is_reverted() {
    let plan = spec(PLAN);
    let r = rollout(plan.clone(), Some(started(&plan)));
    let script = vec![
        status_apply(&r, "11").check(|body| {
            let s = status_of(body);
            assert_eq!(s.phase, Some(Phase::Progressing));
            assert_eq!(s.percent, Some(Percent::whole(1)));
        }),
        cm_get("7"),
        cm_patch("1"),
        event("DriftDetected", "Drift7Expected1"),
        event("DriftReverted", "Revert7To1"),
    ];
    let (result, _) = run(World::at(t(60)).cached("7"), &r, script).await;
    result.expect("reconciled");
}

#[tokio::test]
async fn a_hand_edit_pauses_with_on_drift_pause_and_the_target_is_left_alone() {
    let mut plan = spec(PLAN);
    plan.on_drift = rollgate::api::DriftPolicy::Pause;
    let r = rollout(plan.clone(), Some(started(&plan)));
    let script = vec![
        status_apply(&r, "11").check(|body| {
            let s = status_of(body);
            assert_eq!(s.phase, Some(Phase::Paused));
            assert_eq!(s.drifted_percent, Some(Percent::whole(7)));
            assert_eq!(s.percent, Some(Percent::whole(1)));
        }),
        event("DriftDetected", "Drift7Expected1"),
        event("Paused", "PauseAtStage0"),
    ];
    let (result, _) = run(World::at(t(60)).cached("7"), &r, script).await;
    result.expect("reconciled");
}

// ── invalid spec ─────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn an_invalid_spec_fails_with_a_condition_and_an_event_and_no_target_write() {
    let mut plan = spec(PLAN);
    plan.stages[1].percent = Percent::whole(0);
    let r = rollout(plan, None);
    let script = vec![
        status_apply(&r, "11").check(|body| {
            let s = status_of(body);
            assert_eq!(s.phase, Some(Phase::Failed));
            assert_eq!(condition(&s, "Stalled"), "True");
            let message = s.message.unwrap_or_default();
            assert!(message.contains("spec.stages[1].percent"), "{message}");
        }),
        event("InvalidSpec", "Validate"),
    ];
    let (ctx, handle, gates) = World::at(t(0)).cached("0").context();
    let (result, _) = run_with(ctx, handle, &r, script).await;
    assert_eq!(result.expect("reconciled"), requeue_at(300));
    assert_eq!(*gates.calls.lock().expect("lock"), 0, "no gate is asked");
}

// ── nothing to do ────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn a_reconcile_with_nothing_due_sends_no_request_at_all() {
    let plan = spec(PLAN);
    let r = rollout(plan.clone(), Some(started(&plan)));
    let (ctx, handle, gates) = World::at(t(600)).cached("1").context();
    let (result, _) = run_with(ctx, handle, &r, vec![]).await;
    assert_eq!(result.expect("reconciled"), requeue_at(300));
    assert_eq!(*gates.calls.lock().expect("lock"), 0);
}

#[tokio::test]
async fn requeue_lands_on_the_next_checkpoint() {
    let plan = spec(PLAN);
    let r = rollout(plan.clone(), Some(started(&plan)));
    let (result, _) = run(World::at(t(H - 42)).cached("1"), &r, vec![]).await;
    assert_eq!(result.expect("reconciled"), requeue_at(42));
}

#[tokio::test]
async fn a_standby_replica_writes_nothing() {
    let plan = spec(PLAN);
    let r = rollout(plan.clone(), Some(started(&plan)));
    let (result, _) = run(World::at(t(H)).cached("7").standby(), &r, vec![]).await;
    assert_eq!(result.expect("reconciled"), requeue_at(5));
}

// ── failures ─────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn a_409_on_the_status_write_stops_before_the_target_and_retries_soon() {
    let plan = spec(PLAN);
    let r = rollout(plan.clone(), Some(started(&plan)));
    let script = vec![status_apply(&r, "11").fail(409)];
    let (result, _) = run(World::at(t(H)).cached("1"), &r, script).await;
    let error = result.expect_err("a conflict");
    assert!(matches!(error, ReconcileError::Status { .. }), "{error}");
    let (ctx, _, _) = World::at(t(H)).context();
    assert_eq!(
        error_policy(Arc::new(r), &error, ctx),
        Action::requeue(Duration::from_millis(200))
    );
}

#[tokio::test]
async fn an_api_error_on_the_status_write_leaves_no_partial_state() {
    let plan = spec(PLAN);
    let r = rollout(plan.clone(), Some(started(&plan)));
    let script = vec![status_apply(&r, "11").fail(500)];
    let (result, _) = run(World::at(t(H)).cached("1"), &r, script).await;
    let error = result.expect_err("an API error");
    let (ctx, _, _) = World::at(t(H)).context();
    assert_eq!(
        error_policy(Arc::new(r), &error, ctx),
        Action::requeue(Duration::from_secs(5))
    );
}

// ── crash safety ─────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn stopped_between_status_and_target_the_restart_finishes_the_write_without_drift_or_second_advance()
 {
    let plan = spec(PLAN);
    let r = rollout(plan.clone(), Some(started(&plan)));
    // The advance: its status is written, then the target write fails (the process dies).
    // The decision is recorded, so it is told even though the target write failed.
    let script = vec![
        status_apply(&r, "11"),
        cm_get("1"),
        cm_patch("5").fail(500),
        event("Advanced", "AdvanceToStage1"),
    ];
    let (result, bodies) = run(World::at(t(H)).cached("1"), &r, script).await;
    assert!(matches!(result, Err(ReconcileError::Target { .. })));
    let written = status_of(&bodies[0]);
    assert_eq!(
        (written.stage, written.percent),
        (1, Some(Percent::whole(5)))
    );

    // A new process: the Rollout as written, the target still at 1%.
    let mut restarted = r.clone();
    restarted.status = Some(written.clone());
    restarted.metadata.resource_version = Some("11".into());
    let script = vec![cm_get("1"), cm_patch("5")];
    let (result, _) = run(World::at(t(H + 5)).cached("1"), &restarted, script).await;
    result.expect("repaired: no drift event, no status write");

    // Once the target holds 5%, nothing more happens until the next checkpoint.
    let (result, _) = run(World::at(t(H + 10)).cached("5"), &restarted, vec![]).await;
    assert_eq!(result.expect("reconciled"), requeue_at(300));
}

#[tokio::test]
async fn a_rollback_recorded_before_a_crash_is_carried_out_on_restart() {
    let plan = spec(PLAN);
    let spike = [Observation::Value(0.5)];
    let status = after_checkpoints(&plan, &[&spike, &spike]);
    assert_eq!(status.phase, Some(Phase::RolledBack));
    let mut status = status;
    status.target_pending = true;
    let r = rollout(plan, Some(status));
    let (result, _) = run(
        World::at(t(2 * H + 1)).cached("1"),
        &r,
        vec![cm_get("1"), cm_patch("0")],
    )
    .await;
    result.expect("the rollback reaches the target");
}

#[tokio::test]
async fn a_cached_rollout_older_than_our_last_status_write_is_not_acted_on() {
    let plan = spec(PLAN);
    let r = rollout(plan.clone(), Some(started(&plan)));
    let (ctx, handle, _) = World::at(t(H)).cached("1").context();
    let script = vec![
        status_apply(&r, "11"),
        cm_get("1"),
        cm_patch("5"),
        event("Advanced", "AdvanceToStage1"),
    ];
    let verifier = tokio::spawn(verify(handle, script));
    reconcile(Arc::new(r.clone()), ctx.clone())
        .await
        .expect("advanced");
    // The watch has not delivered version 11 yet: the same stale copy comes back.
    let again = reconcile(Arc::new(r.clone()), ctx.clone())
        .await
        .expect("skipped");
    assert_eq!(again, Action::requeue(Duration::from_secs(1)));
    drop(ctx);
    verifier.await.expect("no second advance");
}

// ── the action annotation ────────────────────────────────────────────────────────────────────

fn annotated(mut r: Rollout, key: &str, value: &str) -> Rollout {
    r.metadata.annotations = Some([(key.to_owned(), value.to_owned())].into());
    r
}

#[tokio::test]
async fn promote_by_annotation_is_claimed_applied_once_and_removed() {
    let plan = spec(PLAN);
    let r = annotated(
        rollout(plan.clone(), Some(started(&plan))),
        "rollgate.dev/action",
        "promote",
    );
    let claimed = annotated(r.clone(), CLAIMED_ANNOTATION, "promote/10");
    let mut claimed_v11 = claimed.clone();
    claimed_v11.metadata.resource_version = Some("11".into());
    let claimed_json = serde_json::to_value(&claimed_v11).expect("json");
    let script = vec![
        step(Method::PATCH, ROLLOUT_PATH)
            .check(|body| {
                assert_eq!(body["metadata"]["resourceVersion"], "10");
                assert_eq!(
                    body["metadata"]["annotations"]["rollgate.dev/action"],
                    Value::Null
                );
                assert_eq!(
                    body["metadata"]["annotations"][CLAIMED_ANNOTATION],
                    "promote/10"
                );
            })
            .respond(move |_| (200, claimed_json)),
        status_apply(&claimed_v11, "12").check(|body| {
            let s = status_of(body);
            assert_eq!(
                (s.stage, s.percent),
                (1, Some(Percent::whole(5))),
                "promoted before the bake time"
            );
            assert_eq!(s.last_action.as_deref(), Some("promote/10"));
        }),
        cm_get("1"),
        cm_patch("5"),
        rollout_patch(&r).check(|body| {
            assert_eq!(
                body["metadata"]["annotations"][CLAIMED_ANNOTATION],
                Value::Null
            );
        }),
        event("Advanced", "AdvanceToStage1"),
    ];
    let (result, _) = run(World::at(t(60)).cached("1"), &r, script).await;
    result.expect("reconciled");
}

#[tokio::test]
async fn promote_full_by_annotation_goes_to_the_last_stage_by_hand() {
    let plan = spec(PLAN);
    let r = annotated(
        rollout(plan.clone(), Some(started(&plan))),
        "rollgate.dev/action",
        "promote-full",
    );
    let claimed = annotated(r.clone(), CLAIMED_ANNOTATION, "promote-full/10");
    let mut claimed_v11 = claimed.clone();
    claimed_v11.metadata.resource_version = Some("11".into());
    let claimed_json = serde_json::to_value(&claimed_v11).expect("json");
    let script = vec![
        step(Method::PATCH, ROLLOUT_PATH)
            .check(|body| {
                assert_eq!(
                    body["metadata"]["annotations"][CLAIMED_ANNOTATION],
                    "promote-full/10"
                );
            })
            .respond(move |_| (200, claimed_json)),
        status_apply(&claimed_v11, "12").check(|body| {
            let s = status_of(body);
            assert_eq!(
                (s.stage, s.percent),
                (2, Some(Percent::whole(10))),
                "the last stage at once"
            );
            let entry = s.history.last().expect("a history entry");
            assert_eq!(
                entry.message.as_deref(),
                Some("promoted to the last stage by hand")
            );
        }),
        cm_get("1"),
        cm_patch("10"),
        rollout_patch(&r),
        event("Advanced", "AdvanceToStage2"),
    ];
    let (result, _) = run(World::at(t(60)).cached("1"), &r, script).await;
    result.expect("reconciled");
}

#[tokio::test]
async fn a_claim_already_recorded_in_status_is_only_removed() {
    let plan = spec(PLAN);
    let mut status = started(&plan);
    engine::decide(
        &plan,
        &mut status,
        &Inputs::at(t(60))
            .with_generation(Some(1))
            .with_action(rollgate::engine::ManualAction::Promote),
    );
    status.last_action = Some("promote/10".into());
    status.update_conditions(t(60));
    let r = annotated(
        rollout(plan, Some(status)),
        CLAIMED_ANNOTATION,
        "promote/10",
    );
    let script = vec![rollout_patch(&r).check(|body| {
        assert_eq!(
            body["metadata"]["annotations"][CLAIMED_ANNOTATION],
            Value::Null
        );
    })];
    let (result, _) = run(World::at(t(120)).cached("5"), &r, script).await;
    result.expect("no second promote");
}

#[tokio::test]
async fn an_unknown_action_word_is_reported_and_dropped() {
    let plan = spec(PLAN);
    let r = annotated(
        rollout(plan.clone(), Some(started(&plan))),
        CLAIMED_ANNOTATION,
        "promot/10",
    );
    let script = vec![
        status_apply(&r, "11").check(|body| {
            let s = status_of(body);
            assert_eq!(s.last_action.as_deref(), Some("promot/10"));
            assert_eq!(s.stage, 0);
        }),
        rollout_patch(&r),
        event("InvalidAction", "Annotate"),
    ];
    let (result, _) = run(World::at(t(60)).cached("1"), &r, script).await;
    result.expect("reconciled");
}

#[tokio::test]
async fn an_action_waits_while_the_rollout_is_pending() {
    let plan = spec(PLAN);
    let mut status = RolloutStatus::default();
    let failures = ["not yet".to_owned()];
    engine::decide(
        &plan,
        &mut status,
        &Inputs::at(t(0))
            .with_generation(Some(1))
            .with_prechecks(rollgate::engine::PreChecks::Failed(&failures)),
    );
    let r = annotated(rollout(plan, Some(status)), "rollgate.dev/action", "abort");
    let script = vec![
        cm_get("0"),
        cm_dry_run(),
        status_apply(&r, "11").check(|body| {
            assert_eq!(status_of(body).phase, Some(Phase::Pending));
        }),
        event("PreCheckFailed", "PreCheck"),
    ];
    let (result, _) = run(World::at(t(10)).cached("3"), &r, script).await;
    result.expect("reconciled; the annotation is left for later");
}
