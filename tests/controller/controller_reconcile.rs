//! The reconcile loop against a mock API server, the kube-rs way: a `tower-test` service
//! behind `kube::Client`, and a verifier that asserts every request's method, path, query and
//! body in order and answers as an API server would. Gate observations and the clock are
//! injected, so no Prometheus is needed. Anything the reconcile sends beyond the script fails
//! the test.

use rollgate::api::Percent;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use rollgate::api::{GateVerdict, Phase, Rollout, RolloutSpec, RolloutStatus};
use rollgate::controller::Recorder;
use rollgate::controller::{
    AlwaysLeader, ApiBudget, CLAIMED_ANNOTATION, Clock, Context, GateObserver, GateReading,
    KubeTargets, LeaderCheck, Priority, ReconcileError, error_policy, reading, reconcile,
};
use rollgate::engine::{self, Inputs, Observation};
use rollgate::telemetry::Metrics;
use serde_json::{Value, json};

use crate::support::verifier::{ApiServerVerifier, Expect};

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

/// Gates that answer what the test says (or never, when `hang`), counting the calls.
struct ScriptedGates {
    observations: Vec<Observation>,
    calls: Mutex<usize>,
    hang: bool,
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
        let hang = self.hang;
        Box::pin(async move {
            if hang {
                std::future::pending::<()>().await;
            }
            readings
        })
    }
}

/// Leads, with `0` left on the Lease.
struct LeaseLeft(Duration);

impl LeaderCheck for LeaseLeft {
    fn is_leader(&self) -> bool {
        true
    }
    fn held_for(&self, margin: Duration) -> bool {
        margin < self.0
    }
}

/// Leads with `left` on the Lease until a renewal at `renewed_at` (tokio's clock) leaves
/// `then`.
struct LeaseRenewed {
    left: Duration,
    renewed_at: tokio::time::Instant,
    then: Duration,
}

impl LeaderCheck for LeaseRenewed {
    fn is_leader(&self) -> bool {
        true
    }
    fn held_for(&self, margin: Duration) -> bool {
        if tokio::time::Instant::now() >= self.renewed_at {
            margin < self.then
        } else {
            margin < self.left
        }
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

/// What a metadata-only watch delivers of a ConfigMap.
fn metadata_of(cm: &ConfigMap) -> PartialObjectMeta<ConfigMap> {
    PartialObjectMeta {
        types: None,
        metadata: cm.metadata.clone(),
        _phantom: std::marker::PhantomData,
    }
}

// ── the mock API server ──────────────────────────────────────────────────────────────────────

/// The reconcile's requests are scripted with the shared verifier (`tests/support/verifier.rs`).
type Step = Expect;

fn step(method: Method, path: &'static str) -> Step {
    Expect::new(method, path)
}

/// The status a server-side apply of the status carried, as the Rollout it returns.
fn status_applied(
    rollout: &Rollout,
    version: &'static str,
) -> impl FnOnce(&Value) -> (u16, Value) + Send + 'static {
    let mut base = serde_json::to_value(rollout).expect("json");
    move |body: &Value| {
        base["status"] = body["status"].clone();
        base["metadata"]["resourceVersion"] = json!(version);
        (200, base)
    }
}

fn status_of(body: &Value) -> RolloutStatus {
    serde_json::from_value(body["status"].clone()).expect("a status in the body")
}

fn status_apply(rollout: &Rollout, version: &'static str) -> Step {
    let respond = status_applied(rollout, version);
    let expected_version = rollout.metadata.resource_version.clone();
    step(Method::PATCH, STATUS_PATH)
        .query_has(&["fieldManager=rollgate", "force=true"])
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
        .query_has(&["fieldManager=rollgate"])
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

/// The ownership check's metadata GET of the target ConfigMap, answered with these
/// annotations at resourceVersion 100.
fn cm_meta_get(annotations: Value) -> Step {
    step(Method::GET, CM_PATH).respond(move |_| {
        (
            200,
            json!({
                "apiVersion": "meta.k8s.io/v1",
                "kind": "PartialObjectMetadata",
                "metadata": {
                    "name": "pct", "namespace": NS, "resourceVersion": "100",
                    "labels": {"rollgate.dev/managed": "true"},
                    "annotations": annotations
                }
            }),
        )
    })
}

/// The ConfigMap as nobody claimed it.
fn cm_unclaimed() -> Step {
    cm_meta_get(json!({}))
}

/// The claim on the target: the owner annotation, guarded by the version read (100).
fn cm_claim() -> Step {
    step(Method::PATCH, CM_PATH)
        .query_has(&["fieldManager=rollgate"])
        .check(|body| {
            assert_eq!(
                body["metadata"]["annotations"]["rollgate.dev/owner.percent"], "kaviar/demo/uid-1",
                "{body}"
            );
            assert_eq!(body["metadata"]["resourceVersion"], "100", "{body}");
            assert!(
                body.get("data").is_none(),
                "the claim writes no data: {body}"
            );
        })
        .respond(|_| {
            let mut cm = serde_json::to_value(config_map("0", "101")).expect("json");
            cm["metadata"]["annotations"] =
                json!({"rollgate.dev/owner.percent": "kaviar/demo/uid-1"});
            (200, cm)
        })
}

fn cm_dry_run() -> Step {
    step(Method::PATCH, CM_PATH)
        .query_has(&["dryRun=All", "fieldManager=rollgate"])
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
async fn verify(verifier: ApiServerVerifier, script: Vec<Step>) -> Vec<Value> {
    verifier.run(script).await
}

struct World {
    now: Timestamp,
    observations: Vec<Observation>,
    config_map: Option<ConfigMap>,
    leader: bool,
    rollouts: Vec<Rollout>,
    hang: bool,
    lease_left: Option<Duration>,
    renewal: Option<(Duration, Duration)>,
    metrics: Option<Metrics>,
    budget: Option<ApiBudget>,
}

impl World {
    fn at(now: Timestamp) -> Self {
        Self {
            now,
            observations: vec![Observation::Value(0.002)],
            config_map: None,
            leader: true,
            hang: false,
            lease_left: None,
            renewal: None,
            metrics: None,
            budget: None,
            rollouts: Vec::new(),
        }
    }
    fn budget(mut self, budget: ApiBudget) -> Self {
        self.budget = Some(budget);
        self
    }
    /// Gates that never answer.
    fn hanging(mut self) -> Self {
        self.hang = true;
        self
    }
    /// The leader, with `left` before its Lease runs out.
    fn lease_left(mut self, left: Duration) -> Self {
        self.lease_left = Some(left);
        self
    }
    /// The leader, with `left` on its Lease until a renewal `after` from now leaves `then`.
    fn lease_renewed(mut self, left: Duration, after: Duration, then: Duration) -> Self {
        self.lease_left = Some(left);
        self.renewal = Some((after, then));
        self
    }
    fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }
    /// The Rollout watch cache holds `rollout` (besides the one reconciled).
    fn with_rollout(mut self, rollout: Rollout) -> Self {
        self.rollouts.push(rollout);
        self
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

    fn context(self) -> (Arc<Context>, ApiServerVerifier, Arc<ScriptedGates>) {
        let (client, handle) = ApiServerVerifier::new();
        // The controller watches managed ConfigMaps as metadata only; the percent it read
        // at that resourceVersion is remembered, as after an earlier reconcile's GET.
        let mut writer: Writer<PartialObjectMeta<ConfigMap>> = Writer::default();
        if let Some(cm) = &self.config_map {
            writer.apply_watcher_event(&watcher::Event::Apply(metadata_of(cm)));
        }
        let gates = Arc::new(ScriptedGates {
            observations: self.observations,
            calls: Mutex::new(0),
            hang: self.hang,
        });
        let leader: Arc<dyn LeaderCheck> =
            if let (Some(left), Some((after, then))) = (self.lease_left, self.renewal) {
                Arc::new(LeaseRenewed {
                    left,
                    renewed_at: tokio::time::Instant::now() + after,
                    then,
                })
            } else if let Some(left) = self.lease_left {
                Arc::new(LeaseLeft(left))
            } else if self.leader {
                Arc::new(AlwaysLeader)
            } else {
                Arc::new(NeverLeader)
            };
        let targets = KubeTargets::new(client.clone(), Some(writer.as_reader()), None);
        if let Some(cm) = &self.config_map {
            targets.remember_config_map(&rollout(spec(PLAN), None), cm);
        }
        let targets = Arc::new(targets);
        let mut rollouts: Writer<Rollout> = Writer::default();
        for r in self.rollouts {
            rollouts.apply_watcher_event(&watcher::Event::Apply(r));
        }
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
            targets,
            leader,
        )
        .with_rollouts(rollouts.as_reader());
        let ctx = match self.metrics {
            Some(metrics) => ctx.with_metrics(metrics),
            None => ctx,
        };
        let ctx = match self.budget {
            Some(budget) => ctx.with_budget(budget),
            None => ctx,
        };
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
    handle: ApiServerVerifier,
    rollout: &Rollout,
    script: Vec<Step>,
) -> (Result<Action, ReconcileError>, Vec<Value>) {
    let verifier = tokio::spawn(verify(handle, script));
    // Longer than a write's wait for a Lease renewal (15 s), which paused-clock tests skip.
    let result = tokio::time::timeout(
        Duration::from_secs(60),
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
        cm_unclaimed(),
        cm_get("0"),
        cm_dry_run(),
        cm_claim(),
        status_apply(&r, "11").check(|body| {
            let s = status_of(body);
            assert_eq!(s.phase, Some(Phase::Progressing));
            assert_eq!(s.percent, Some(Percent::whole(1)));
            assert_eq!(s.target_sequence, Some(1), "the first percent written");
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
        cm_unclaimed(),
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
        cm_unclaimed(),
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

/// A flagd target in the ConfigMap `pct` (so the paths above serve it), with the team's own
/// rule: tier gold always gets `on`, then `rest` decides.
const FLAGD_PLAN: &str = r#"
target:
  flagd: {configMap: pct, flag: favorites}
stages:
  - {percent: 1, duration: 1h}
  - {percent: 5, duration: 1h}
analysis:
  interval: 1h
  gates:
    - name: error-rate
      prometheus: {query: 'sum(rate(errors[5m]))'}
      max: 0.01
"#;

fn team_flags(rest: &str) -> String {
    format!(
        r#"{{"flags": {{"favorites": {{"state": "ENABLED", "variants": {{"on": true, "off": false}}, "defaultVariant": "off",
  "targeting": {{"if": [{{"==": [{{"var": "tier"}}, "gold"]}}, "on", {rest}]}}}}}}}}"#
    )
}

fn flagd_config_map(flags: &str, version: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "pct",
            "namespace": NS,
            "resourceVersion": version,
            "labels": {"rollgate.dev/managed": "true"}
        },
        "data": {"flags.flagd.json": flags}
    }))
    .expect("a ConfigMap")
}

fn flagd_world(flags: &str) -> World {
    World {
        config_map: Some(flagd_config_map(flags, "100")),
        ..World::at(t(0))
    }
}

fn flagd_cm_get(flags: String) -> Step {
    step(Method::GET, CM_PATH).respond(move |_| {
        (
            200,
            serde_json::to_value(flagd_config_map(&flags, "100")).expect("json"),
        )
    })
}

/// The claim on the flagd flag `favorites`: the owner annotation names the flag, guarded by
/// the version read (100); the answer is the ConfigMap at the next version.
fn flagd_claim(flags: String) -> Step {
    step(Method::PATCH, CM_PATH)
        .query_has(&["fieldManager=rollgate"])
        .check(|body| {
            assert_eq!(
                body["metadata"]["annotations"]["rollgate.dev/owner.favorites"],
                "kaviar/demo/uid-1",
                "{body}"
            );
            assert_eq!(body["metadata"]["resourceVersion"], "100", "{body}");
            assert!(
                body.get("data").is_none(),
                "the claim writes no data: {body}"
            );
        })
        .respond(move |_| {
            (
                200,
                serde_json::to_value(flagd_config_map(&flags, "101")).expect("json"),
            )
        })
}

#[tokio::test]
async fn a_flag_with_its_own_rule_and_no_fractional_fails_the_precheck_with_the_edit() {
    let r = rollout(spec(FLAGD_PLAN), None);
    let script = vec![
        flagd_cm_get(team_flags(r#""off""#)),
        cm_unclaimed(),
        status_apply(&r, "11").check(|body| {
            let s = status_of(body);
            assert_eq!(s.phase, Some(Phase::Pending));
            let message = s.message.clone().unwrap_or_default();
            assert!(
                message.contains(r#"replace the else-branch "off" of its "if""#),
                "{message}"
            );
            assert!(
                message.contains(r#"{"fractional":[["on",0],["off",100]]}"#),
                "{message}"
            );
            assert!(message.contains("replaceTargeting: true"), "{message}");
        }),
        event("PreCheckFailed", "PreCheck"),
    ];
    let (result, _) = run(flagd_world(&team_flags(r#""off""#)), &r, script).await;
    result.expect("reconciled");
}

#[tokio::test]
async fn an_allowlist_with_an_adopted_rule_fails_the_precheck() {
    let mut plan = spec(FLAGD_PLAN);
    if let Some(flagd) = plan.target.flagd.as_mut() {
        flagd.allowlist = vec!["u-1".into()];
    }
    let r = rollout(plan, None);
    let flags = team_flags(r#"{"fractional": [["on", 0], ["off", 10000]]}"#);
    let script = vec![
        flagd_cm_get(flags.clone()),
        cm_unclaimed(),
        flagd_cm_get(flags.clone()),
        status_apply(&r, "11").check(|body| {
            let message = status_of(body).message.unwrap_or_default();
            assert!(message.contains("target cannot be written"), "{message}");
            assert!(
                message.contains("keep the allowlist as your own \"in\" rule"),
                "{message}"
            );
        }),
        event("PreCheckFailed", "PreCheck"),
    ];
    let (result, _) = run(flagd_world(&flags), &r, script).await;
    result.expect("reconciled");
}

#[tokio::test]
async fn an_adopted_rule_starts_and_only_its_fractional_changes() {
    let r = rollout(spec(FLAGD_PLAN), None);
    let flags = team_flags(r#"{"fractional": [["on", 0], ["off", 10000]]}"#);
    let expected = team_flags(r#"{"fractional": [["on", 100], ["off", 9900]]}"#);
    let script = vec![
        flagd_cm_get(flags.clone()),
        cm_unclaimed(),
        flagd_cm_get(flags.clone()),
        step(Method::PATCH, CM_PATH)
            .query_has(&["dryRun=All", "fieldManager=rollgate"])
            .respond(|body| (200, body.clone())),
        flagd_claim(flags.clone()),
        status_apply(&r, "11").check(|body| {
            let s = status_of(body);
            assert_eq!(s.phase, Some(Phase::Progressing), "{:?}", s.message);
        }),
        flagd_cm_get(flags.clone()),
        step(Method::PATCH, CM_PATH)
            .query_has(&["fieldManager=rollgate"])
            .check(move |body| {
                assert_eq!(
                    body["data"]["flags.flagd.json"],
                    expected.as_str(),
                    "{body}"
                );
            })
            .respond(|body| (200, body.clone())),
        event("Started", "StartStage0"),
    ];
    let (result, _) = run(flagd_world(&flags), &r, script).await;
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
async fn each_new_percent_takes_the_next_target_sequence() {
    let plan = spec(PLAN);
    let mut status = started(&plan);
    status.target_sequence = Some(3);
    let r = rollout(plan.clone(), Some(status));
    let script = vec![
        status_apply(&r, "11").check(|body| {
            let s = status_of(body);
            assert_eq!(s.percent, Some(Percent::whole(5)));
            assert_eq!(
                s.target_sequence,
                Some(4),
                "a new percent, the next sequence"
            );
        }),
        cm_get("1"),
        cm_patch("5"),
        event("Advanced", "AdvanceToStage1"),
    ];
    let (result, _) = run(World::at(t(H)).cached("1"), &r, script).await;
    result.expect("reconciled");
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

// ── spec changes of a finished rollout ─────────────────────────────────────────────────────

/// The PLAN run to Succeeded at 10% by three promotes (generation 1).
fn succeeded(plan: &RolloutSpec) -> RolloutStatus {
    let mut status = started(plan);
    for i in 1..=3 {
        engine::decide(
            plan,
            &mut status,
            &Inputs::at(t(i))
                .with_generation(Some(1))
                .with_action(engine::ManualAction::Promote),
        );
    }
    status.update_conditions(t(3));
    assert_eq!(status.phase, Some(Phase::Succeeded));
    assert_eq!(status.percent, Some(Percent::whole(10)));
    status
}

/// Generation 2 of a Rollout Succeeded at 10%, its spec changed by `f`.
fn finished_then_edited(f: impl FnOnce(&mut RolloutSpec)) -> Rollout {
    let plan = spec(PLAN);
    let status = succeeded(&plan);
    let mut grown = plan;
    f(&mut grown);
    let mut r = rollout(grown, Some(status));
    r.metadata.generation = Some(2);
    r
}

fn append_25_and_50(plan: &mut RolloutSpec) {
    let template = plan.stages[0].clone();
    for percent in [25, 50] {
        plan.stages.push(rollgate::api::Stage {
            percent: Percent::whole(percent),
            ..template.clone()
        });
    }
}

#[tokio::test]
async fn a_grown_succeeded_plan_continues_from_its_percent_and_raises_it_only_after_a_passing_checkpoint()
 {
    let r = finished_then_edited(append_25_and_50);
    // Back through the pre-checks: the target must hold 10% (not the rollback 0%); the dry run
    // tries the 10% the rollout keeps. It continues at stage 3 of 5 and writes nothing.
    let script = vec![
        cm_unclaimed(),
        cm_get("10"),
        // The dry run keeps the 10% the target holds: only the label is patched.
        cm_dry_run().check(|body| assert_eq!(body["data"]["percent"], Value::Null, "{body}")),
        cm_claim(),
        status_apply(&r, "11").check(|body| {
            let s = status_of(body);
            assert_eq!(s.phase, Some(Phase::Progressing));
            assert_eq!(
                (s.stage, s.stage_number, s.percent),
                (2, Some(3), Some(Percent::whole(10)))
            );
            assert!(!s.target_pending, "nothing to write");
            assert!(!s.continuing);
            assert_eq!(s.observed_generation, Some(2));
            let message = s.message.unwrap_or_default();
            assert_eq!(
                message,
                "spec generation 2 grew the plan: continuing at stage 3 of 5 (10%)"
            );
        }),
        event("Replanned", "ReplanToStage2"),
    ];
    let (result, bodies) = run(World::at(t(4 * H)).cached("10"), &r, script).await;
    result.expect("reconciled");
    let mut r = r;
    r.status = Some(status_of(&bodies[4]));
    r.metadata.resource_version = Some("11".into());

    // A failing checkpoint after the stage's bake time writes nothing.
    let script = vec![status_apply(&r, "12").check(|body| {
        let s = status_of(body);
        assert_eq!((s.stage, s.percent), (2, Some(Percent::whole(10))));
        assert!(!s.target_pending);
    })];
    let world = World::at(t(5 * H))
        .cached("10")
        .gates(vec![Observation::Value(0.5)]);
    let (result, bodies) = run(world, &r, script).await;
    result.expect("reconciled");
    let mut failed = r.clone();
    failed.status = Some(status_of(&bodies[0]));
    assert_eq!(failed.status.as_ref().map(|s| s.gates[0].failures), Some(1));

    // The passing checkpoint is what writes 25%.
    let script = vec![
        status_apply(&r, "12").check(|body| {
            let s = status_of(body);
            assert_eq!((s.stage, s.percent), (3, Some(Percent::whole(25))));
            assert!(s.target_pending);
        }),
        cm_get("10"),
        cm_patch("25"),
        event("Advanced", "AdvanceToStage3"),
    ];
    let (result, _) = run(World::at(t(5 * H)).cached("10"), &r, script).await;
    result.expect("reconciled");
}

#[tokio::test]
async fn a_grown_plan_whose_target_no_longer_holds_its_percent_waits_in_pending() {
    let r = finished_then_edited(append_25_and_50);
    let script = vec![
        cm_unclaimed(),
        cm_get("0"),
        cm_dry_run(),
        status_apply(&r, "11").check(|body| {
            let s = status_of(body);
            assert_eq!(s.phase, Some(Phase::Pending));
            assert!(s.continuing);
            assert_eq!(s.percent, Some(Percent::whole(10)));
            let message = s.message.unwrap_or_default();
            assert!(
                message.contains(
                    "the target holds 0%, not 10%, the percent this rollout continues from"
                ),
                "{message}"
            );
        }),
        event("PreCheckFailed", "PreCheck"),
    ];
    let (result, _) = run(World::at(t(4 * H)).cached("0"), &r, script).await;
    assert_eq!(result.expect("reconciled"), requeue_at(5));
}

#[tokio::test]
async fn a_notifications_only_edit_of_a_succeeded_rollout_writes_no_target() {
    let r = finished_then_edited(|plan| {
        plan.notifications = serde_json::from_value(json!([
            {"slack": {"urlSecretRef": {"name": "s", "key": "url"}}, "when": ["rollback"]}
        ]))
        .expect("notifications");
    });
    // Only the status records the new generation: no pre-checks, no target write, no Event.
    let script = vec![status_apply(&r, "11").check(|body| {
        let s = status_of(body);
        assert_eq!(s.phase, Some(Phase::Succeeded));
        assert_eq!(s.percent, Some(Percent::whole(10)));
        assert_eq!(s.observed_generation, Some(2));
        assert!(!s.target_pending);
    })];
    let (result, _) = run(World::at(t(4 * H)).cached("10"), &r, script).await;
    result.expect("reconciled");
}

#[tokio::test]
async fn a_new_generation_of_a_rolled_back_rollout_runs_the_pre_checks_first() {
    let plan = spec(PLAN);
    let mut status = started(&plan);
    engine::decide(
        &plan,
        &mut status,
        &Inputs::at(t(1))
            .with_generation(Some(1))
            .with_action(engine::ManualAction::Abort),
    );
    status.update_conditions(t(1));
    let mut edited = plan;
    edited.analysis.gates[0].max = Some(0.02);
    let mut r = rollout(edited, Some(status));
    r.metadata.generation = Some(2);
    // The target was set to 3% by hand meanwhile: the baseline pre-check keeps it Pending.
    let script = vec![
        cm_unclaimed(),
        cm_get("3"),
        cm_dry_run(),
        status_apply(&r, "11").check(|body| {
            let s = status_of(body);
            assert_eq!(s.phase, Some(Phase::Pending));
            let message = s.message.unwrap_or_default();
            assert!(message.contains("holds 3%"), "{message}");
        }),
        event("PreCheckFailed", "PreCheck"),
    ];
    let (result, _) = run(World::at(t(H)).cached("3"), &r, script).await;
    assert_eq!(result.expect("reconciled"), requeue_at(5));
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

// ── deadline and fencing ─────────────────────────────────────────────────────────────────────

#[tokio::test(start_paused = true)]
async fn a_reconcile_past_its_deadline_is_abandoned_counted_and_retried_with_backoff() {
    let plan = spec(PLAN);
    let r = rollout(plan.clone(), Some(started(&plan)));
    let metrics = Metrics::new().expect("metrics");
    let world = World::at(t(H))
        .cached("1")
        .hanging()
        .metrics(metrics.clone());
    let (ctx, handle, _) = world.context();
    let verifier = tokio::spawn(verify(handle, vec![]));
    let began = tokio::time::Instant::now();
    let result = reconcile(Arc::new(r.clone()), Arc::clone(&ctx)).await;
    assert_eq!(began.elapsed(), ctx.reconcile_timeout);
    assert_eq!(ctx.reconcile_timeout, Duration::from_secs(45));
    let error = result.expect_err("abandoned at the deadline");
    assert!(matches!(error, ReconcileError::Timeout { .. }), "{error}");
    assert_eq!(error.reason(), "timeout");
    let text = metrics.encode().expect("encode");
    assert!(
        text.contains("rollgate_reconcile_errors_total{reason=\"timeout\"} 1"),
        "{text}"
    );
    let r = Arc::new(r);
    let waits: Vec<Action> = (0..3)
        .map(|_| error_policy(Arc::clone(&r), &error, Arc::clone(&ctx)))
        .collect();
    assert_eq!(waits, [requeue_at(5), requeue_at(10), requeue_at(20)]);
    drop(ctx);
    verifier.await.expect("nothing was written");
}

/// On a paused clock: the write first waits (in vain) for a renewal.
#[tokio::test(start_paused = true)]
async fn a_status_write_needs_more_lease_than_its_timeout() {
    let plan = spec(PLAN);
    let r = rollout(plan.clone(), Some(started(&plan)));
    let world = World::at(t(H))
        .cached("1")
        .lease_left(Duration::from_secs(4));
    let (result, _) = run(world, &r, vec![]).await;
    let error = result.expect_err("fenced");
    assert!(
        matches!(
            error,
            ReconcileError::Fenced {
                write: "status",
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(error.reason(), "fenced");
    let (ctx, _, _) = World::at(t(H)).context();
    let r = Arc::new(r);
    for _ in 0..3 {
        assert_eq!(
            error_policy(Arc::clone(&r), &error, Arc::clone(&ctx)),
            requeue_at(5),
            "a fenced write is retried as a standby looks again, without backoff"
        );
    }
}

/// On a paused clock: the write first waits (in vain) for a renewal.
#[tokio::test(start_paused = true)]
async fn a_webhook_write_needs_more_lease_than_the_webhooks_timeout() {
    let mut plan = spec(PLAN);
    plan.target = serde_json::from_value(json!({
        "webhook": {"url": "http://127.0.0.1:9/percent", "timeout": "8s"}
    }))
    .expect("a webhook target");
    let r = rollout(plan.clone(), Some(started(&plan)));
    // 6 s is enough for the status write (5 s), not for the webhook's 8 s.
    let world = World::at(t(H)).lease_left(Duration::from_secs(6));
    let script = vec![
        status_apply(&r, "11").check(|body| {
            assert_eq!(status_of(body).percent, Some(Percent::whole(5)));
        }),
        event("Advanced", "AdvanceToStage1"),
        // The webhook's live percent is read with a GET; nothing listens there.
        event("TargetUnreadable", "ReadTarget"),
    ];
    let (result, _) = run(world, &r, script).await;
    let error = result.expect_err("fenced");
    assert!(
        matches!(error, ReconcileError::Fenced { write: "target", margin, .. } if margin == Duration::from_secs(8)),
        "{error}"
    );
}

/// A leader whose Lease is short of a write's timeout waits for its next renewal instead of
/// failing (the Lease is renewed 5 s before it runs out, so a webhook's 8 s would otherwise
/// fit only in the seconds after each renewal): the webhook PUT goes out once the renewal
/// leaves enough, and fails here only because nothing listens at its address.
#[tokio::test]
async fn a_write_short_of_lease_waits_for_the_renewal_then_goes_out() {
    let mut plan = spec(PLAN);
    plan.target = serde_json::from_value(json!({
        "webhook": {"url": "http://127.0.0.1:9/percent", "timeout": "8s"}
    }))
    .expect("a webhook target");
    let r = rollout(plan.clone(), Some(started(&plan)));
    let world = World::at(t(H)).lease_renewed(
        Duration::from_secs(6),
        Duration::from_secs(1),
        Duration::from_secs(15),
    );
    let script = vec![
        status_apply(&r, "11").check(|body| {
            assert_eq!(status_of(body).percent, Some(Percent::whole(5)));
        }),
        event("Advanced", "AdvanceToStage1"),
        event("TargetUnreadable", "ReadTarget"),
    ];
    let began = tokio::time::Instant::now();
    let (result, _) = run(world, &r, script).await;
    let error = result.expect_err("nothing listens at the webhook");
    assert!(
        !matches!(error, ReconcileError::Fenced { .. }),
        "the write waited for the renewal, it was not fenced: {error}"
    );
    assert!(
        began.elapsed() >= Duration::from_secs(1),
        "the target write waited for the renewal ({:?})",
        began.elapsed()
    );
}

#[tokio::test]
async fn with_the_lease_held_long_enough_every_write_goes_out() {
    let plan = spec(PLAN);
    let r = rollout(plan.clone(), Some(started(&plan)));
    let script = vec![
        status_apply(&r, "11"),
        cm_get("1"),
        cm_patch("5"),
        event("Advanced", "AdvanceToStage1"),
    ];
    let world = World::at(t(H))
        .cached("1")
        .lease_left(Duration::from_secs(6));
    let (result, _) = run(world, &r, script).await;
    assert_eq!(result.expect("reconciled"), requeue_at(300));
}

// ── API budget ───────────────────────────────────────────────────────────────────────────────

#[tokio::test(start_paused = true)]
async fn a_rollbacks_writes_never_wait_behind_routine_writes() {
    let plan = spec(PLAN);
    let spike = [Observation::Value(0.5)];
    let r = rollout(plan.clone(), Some(after_checkpoints(&plan, &[&spike])));
    // One write a second, and thirty routine writes queued before the rollback.
    let budget = ApiBudget::new(1, 1);
    let routine: Vec<_> = (0..30)
        .map(|_| {
            let budget = budget.clone();
            tokio::spawn(async move { budget.acquire(Priority::Routine).await })
        })
        .collect();
    tokio::task::yield_now().await;
    let began = tokio::time::Instant::now();
    let target_written = Arc::new(Mutex::new(None));
    let at = Arc::clone(&target_written);
    let script = vec![
        status_apply(&r, "11").check(|body| {
            assert_eq!(status_of(body).phase, Some(Phase::RolledBack));
        }),
        cm_get("1"),
        cm_patch("0").check(move |body| {
            assert_eq!(body["data"]["percent"], "0");
            *at.lock().expect("lock") = Some(tokio::time::Instant::now());
        }),
        event("RolledBack", "RollBackFromStage0"),
    ];
    let world = World::at(t(2 * H))
        .cached("1")
        .gates(vec![Observation::Value(0.5)])
        .budget(budget);
    let (ctx, handle, _) = world.context();
    let verifier = tokio::spawn(verify(handle, script));
    reconcile(Arc::new(r), ctx).await.expect("reconciled");
    verifier.await.expect("the verifier passed");
    let written = target_written
        .lock()
        .expect("lock")
        .expect("the target was written");
    assert!(
        written - began <= Duration::from_secs(3),
        "the rollback's status and target writes took {:?} behind 30 routine writes at 1/s",
        written - began
    );
    for task in routine {
        task.await.expect("ran");
    }
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
    // The version the target had when the rollback was planned, and still has: the write
    // provably never happened.
    status.target_version = Some("100".into());
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
        cm_unclaimed(),
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

// ── one owner per target (rule 10) ───────────────────────────────────────────────────────────

/// The Rollout `other` (the claim's owner) as the watch cache holds it, in `phase` under `uid`.
fn other(phase: Option<Phase>, uid: &str) -> Rollout {
    let mut other = rollout(spec(PLAN), None);
    other.metadata.name = Some("other".into());
    other.metadata.uid = Some(uid.into());
    other.status = phase.map(|phase| RolloutStatus {
        phase: Some(phase),
        ..RolloutStatus::default()
    });
    other
}

fn claimed_by_other() -> Step {
    cm_meta_get(json!({"rollgate.dev/owner.percent": "kaviar/other/uid-9"}))
}

#[tokio::test]
async fn a_target_owned_by_an_unfinished_rollout_keeps_this_one_pending_as_target_owned() {
    for phase in [
        None,
        Some(Phase::Pending),
        Some(Phase::Progressing),
        Some(Phase::Paused),
    ] {
        let r = rollout(spec(PLAN), None);
        // No pre-check, no dry run, no claim, no target write: only the status and an Event.
        let script = vec![
            claimed_by_other(),
            status_apply(&r, "11").check(|body| {
                let s = status_of(body);
                assert_eq!(s.phase, Some(Phase::Pending));
                assert_eq!(s.percent, None);
                assert_eq!(s.reason.as_deref(), Some("TargetOwned"));
                let message = s.message.clone().unwrap_or_default();
                assert!(
                    message.contains("Rollout kaviar/other")
                        && message.contains("ConfigMap kaviar/pct"),
                    "{message}"
                );
                assert!(
                    !message.contains("holds 3%"),
                    "ownership takes precedence over the baseline: {message}"
                );
                let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
                assert_eq!(ready.reason, "TargetOwned");
            }),
            event("TargetOwned", "PreCheck"),
        ];
        // The target holds the owner's 3%, which the baseline pre-check would complain about.
        let world = World::at(t(0))
            .cached("3")
            .with_rollout(other(phase, "uid-9"));
        let (result, _) = run(world, &r, script).await;
        assert_eq!(result.expect("reconciled"), requeue_at(5), "{phase:?}");
    }
}

#[tokio::test]
async fn an_owner_that_finished_or_is_gone_leaves_the_target_free() {
    let finished = [
        Some(other(Some(Phase::Succeeded), "uid-9")),
        Some(other(Some(Phase::RolledBack), "uid-9")),
        Some(other(Some(Phase::Failed), "uid-9")),
        // Deleted and recreated under the same name: the claim's uid is gone.
        Some(other(Some(Phase::Progressing), "uid-new")),
        // Deleted.
        None,
    ];
    for owner in finished {
        let r = rollout(spec(PLAN), None);
        let script = vec![
            claimed_by_other(),
            cm_get("0"),
            cm_dry_run(),
            cm_claim(),
            status_apply(&r, "11").check(|body| {
                assert_eq!(status_of(body).phase, Some(Phase::Progressing));
            }),
            cm_get("0"),
            cm_patch("1"),
            event("Started", "StartStage0"),
        ];
        let mut world = World::at(t(0)).cached("0");
        if let Some(owner) = owner {
            world = world.with_rollout(owner);
        }
        let (result, _) = run(world, &r, script).await;
        result.expect("started");
    }
}

#[tokio::test]
async fn a_rollout_that_already_owns_its_target_does_not_claim_again() {
    let r = rollout(spec(PLAN), None);
    let script = vec![
        cm_meta_get(json!({"rollgate.dev/owner.percent": "kaviar/demo/uid-1"})),
        cm_get("0"),
        cm_dry_run(),
        status_apply(&r, "11"),
        cm_get("0"),
        cm_patch("1"),
        event("Started", "StartStage0"),
    ];
    let (result, _) = run(World::at(t(0)).cached("0"), &r, script).await;
    result.expect("started");
}

#[tokio::test]
async fn a_claim_that_loses_a_race_to_another_rollout_keeps_this_one_pending_as_target_owned() {
    // Another Rollout claimed between the read and the write: the precondition fails (409),
    // and reading again shows the winner's claim.
    let r = rollout(spec(PLAN), None);
    let script = vec![
        cm_unclaimed(),
        cm_get("0"),
        cm_dry_run(),
        cm_claim().fail(409),
        claimed_by_other(),
        status_apply(&r, "11").check(|body| {
            let s = status_of(body);
            assert_eq!(s.phase, Some(Phase::Pending));
            assert_eq!(s.reason.as_deref(), Some("TargetOwned"));
        }),
        event("TargetOwned", "PreCheck"),
    ];
    let world = World::at(t(0))
        .cached("0")
        .with_rollout(other(Some(Phase::Progressing), "uid-9"));
    let (result, _) = run(world, &r, script).await;
    assert_eq!(result.expect("reconciled"), requeue_at(5));
}

#[tokio::test]
async fn a_claim_that_keeps_conflicting_is_retried_a_few_times_then_waits() {
    // Someone else keeps changing the object (another Rollout's own flag, say): the claim
    // reads it again and retries, three attempts in all, then the rollout waits for its
    // backoff without writing the target.
    let r = rollout(spec(PLAN), None);
    let script = vec![
        cm_unclaimed(),
        cm_get("0"),
        cm_dry_run(),
        cm_claim().fail(409),
        cm_unclaimed(),
        cm_claim().fail(409),
        cm_unclaimed(),
        cm_claim().fail(409),
        status_apply(&r, "11").check(|body| {
            let s = status_of(body);
            assert_eq!(s.phase, Some(Phase::Pending));
            let message = s.message.unwrap_or_default();
            assert!(message.contains("owner annotation"), "{message}");
        }),
        event("PreCheckFailed", "PreCheck"),
    ];
    let (result, _) = run(World::at(t(0)).cached("0"), &r, script).await;
    assert_eq!(result.expect("reconciled"), requeue_at(5));

    // A conflict, then a clean claim on the second attempt: it starts.
    let script = vec![
        cm_unclaimed(),
        cm_get("0"),
        cm_dry_run(),
        cm_claim().fail(409),
        cm_unclaimed(),
        cm_claim(),
        status_apply(&r, "11"),
        cm_get("0"),
        cm_patch("1"),
        event("Started", "StartStage0"),
    ];
    let (result, _) = run(World::at(t(0)).cached("0"), &r, script).await;
    result.expect("started");
}

// ── finished means hands off (rule 8) ────────────────────────────────────────────────────────

/// A rollout rolled back by two failing checkpoints (1% → 0%).
fn rolled_back() -> RolloutStatus {
    let plan = spec(PLAN);
    let spike = [Observation::Value(0.5)];
    let status = after_checkpoints(&plan, &[&spike, &spike]);
    assert_eq!(status.phase, Some(Phase::RolledBack));
    status
}

#[tokio::test]
async fn a_rollback_records_the_targets_version_before_its_write() {
    let plan = spec(PLAN);
    let spike = [Observation::Value(0.5)];
    let r = rollout(plan.clone(), Some(after_checkpoints(&plan, &[&spike])));
    let script = vec![
        status_apply(&r, "11").check(|body| {
            let s = status_of(body);
            assert_eq!(s.phase, Some(Phase::RolledBack));
            assert!(s.target_pending);
            assert_eq!(
                s.target_version.as_deref(),
                Some("100"),
                "the cached version the final write goes over"
            );
        }),
        cm_get("1"),
        cm_patch("0"),
        event("RolledBack", "RollBackFromStage0"),
    ];
    let world = World::at(t(2 * H)).cached("1").gates(spike.to_vec());
    let (result, _) = run(world, &r, script).await;
    result.expect("rolled back");
}

#[tokio::test]
async fn a_confirmed_final_write_clears_target_pending_once() {
    let mut status = rolled_back();
    status.target_pending = true;
    status.target_version = Some("90".into());
    let r = rollout(spec(PLAN), Some(status));
    let script = vec![status_apply(&r, "11").check(|body| {
        let s = status_of(body);
        assert!(!s.target_pending, "the target holds the rollback percent");
        assert_eq!(s.phase, Some(Phase::RolledBack));
    })];
    let (result, _) = run(World::at(t(2 * H + 1)).cached("0"), &r, script).await;
    result.expect("settled");
}

#[tokio::test]
async fn a_restart_after_a_rollback_and_a_hand_edit_writes_nothing_to_the_target() {
    // The rollback reached the target (version 90 → 95), then a person set 3% by hand (100).
    // The status still says targetPending (as controllers before this fix left it).
    let mut status = rolled_back();
    status.target_pending = true;
    status.target_version = Some("90".into());
    let r = rollout(spec(PLAN), Some(status.clone()));
    let script = vec![status_apply(&r, "11").check(|body| {
        let s = status_of(body);
        assert!(!s.target_pending, "hands off: the pending write is dropped");
        assert_eq!(s.percent, Some(Percent::ZERO));
    })];
    let (result, _) = run(World::at(t(3 * H)).cached("3"), &r, script).await;
    result.expect("nothing written to the target");

    // Without a recorded version (a status written before versions were recorded), nothing is
    // written either: the write cannot be proven not to have happened.
    status.target_version = None;
    let r = rollout(spec(PLAN), Some(status));
    let script = vec![status_apply(&r, "11")];
    let (result, _) = run(World::at(t(3 * H)).cached("3"), &r, script).await;
    result.expect("nothing written to the target");

    // And once settled, a finished rollout makes no request at all.
    let mut settled = rolled_back();
    settled.target_pending = false;
    let r = rollout(spec(PLAN), Some(settled));
    let (result, _) = run(World::at(t(4 * H)).cached("7"), &r, vec![]).await;
    result.expect("idle");
}
