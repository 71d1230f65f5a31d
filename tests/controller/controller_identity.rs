//! Tenant identity in the reconcile, against a mock API server (a `tower-test` service behind
//! `kube::Client`) that answers each request by its path and records its impersonation
//! headers: Secret reads, target reads and writes and the pre-check's dry run carry
//! `Impersonate-User: system:serviceaccount:NS:NAME` (and never `Impersonate-Group`), the
//! Rollout's status and Events never do; a 403 keeps a Pending rollout Pending with reason
//! `Forbidden` and pauses a running one, once.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::core::PartialObjectMeta;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use rollgate::api::{Phase, REASON_FORBIDDEN, Rollout, RolloutSpec, RolloutStatus};
use rollgate::controller::Recorder;
use rollgate::controller::{
    AlwaysLeader, Clock, Context, GateObserver, GateReading, Identities, KubeTargets,
    ProviderObserver, ServiceAccount, reading, reconcile,
};
use rollgate::engine::{self, Inputs, Observation};
use rollgate::gates::GateEnv;
use serde_json::{Value, json};

use crate::support::verifier::{self, ApiServerVerifier, Reply, Responder};

const NS: &str = "kaviar";
const USER: &str = "system:serviceaccount:kaviar:deployer";

const PLAN: &str = r#"
serviceAccountName: deployer
target:
  configMap: {name: pct, key: percent}
stages:
  - {percent: 1, duration: 0s}
  - {percent: 5, duration: 1h}
analysis:
  interval: 1h
"#;

fn t(secs: i64) -> Timestamp {
    let t0: Timestamp = "2026-02-01T19:18:00Z".parse().expect("a time");
    t0.checked_add(SignedDuration::from_secs(secs))
        .expect("a time")
}

struct FixedClock(Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

struct NoGates;

impl GateObserver for NoGates {
    fn observe<'a>(
        &'a self,
        rollout: &'a Rollout,
        _status: &'a RolloutStatus,
        _at: Timestamp,
    ) -> futures_util::future::BoxFuture<'a, Vec<GateReading>> {
        let n = rollout.spec.analysis.gates.len();
        Box::pin(async move { (0..n).map(|_| reading(Observation::Value(0.0))).collect() })
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

fn config_map(percent: &str, version: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "pct",
            "namespace": NS,
            "resourceVersion": version,
            "labels": {"rollgate.dev/managed": "true"}
        },
        "data": {"percent": percent}
    })
}

/// One request the mock saw.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: String,
    user: Option<String>,
    groups: usize,
    body: Value,
}

impl Seen {
    fn on(&self, plural: &str) -> bool {
        self.path.split('/').any(|p| p == plural)
    }
}

/// What the mock refuses with a 403, as the API server words it.
#[derive(Clone, Copy, Default)]
struct Refuse {
    patch_config_map: bool,
    get_secret: bool,
}

fn forbidden(resource: &str, name: &str, verb: &str) -> (u16, Value) {
    (
        403,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403,
               "reason": "Forbidden", "details": {"name": name, "kind": resource},
               "message": format!("{resource} \"{name}\" is forbidden: User \"{USER}\" cannot {verb} resource \"{resource}\" in API group \"\" in the namespace \"{NS}\"")}),
    )
}

/// Answers one request by its path; returns what it was.
async fn answer(request: verifier::Seen, send: Responder, refuse: Refuse, base: &Value) -> Seen {
    {
        let user = request.header("impersonate-user").map(str::to_owned);
        let groups = request.headers.get_all("impersonate-group").iter().count();
        let method = request.method.to_string();
        let path = request.path.clone();
        let body = request.body.clone();
        let entry = Seen {
            method: method.clone(),
            path: path.clone(),
            query: request.query.clone(),
            user,
            groups,
            body: body.clone(),
        };
        let (code, answer) = if path.ends_with("/configmaps/pct") {
            if method == "PATCH" && refuse.patch_config_map {
                forbidden("configmaps", "pct", "patch")
            } else if method == "PATCH" {
                let percent = body["data"]["percent"].as_str().unwrap_or("0").to_owned();
                (200, config_map(&percent, "101"))
            } else {
                (200, config_map("0", "100"))
            }
        } else if path.contains("/secrets/") {
            if refuse.get_secret {
                forbidden("secrets", "prom-token", "get")
            } else {
                (
                    200,
                    json!({"apiVersion": "v1", "kind": "Secret",
                             "metadata": {"name": "prom-token", "namespace": NS},
                             "data": {"token": "czNjcmV0"}}),
                )
            }
        } else if path.ends_with("/status") {
            let mut answer = base.clone();
            answer["status"] = body["status"].clone();
            answer["metadata"]["resourceVersion"] = json!("11");
            (200, answer)
        } else if path.ends_with("/events") {
            (201, body.clone())
        } else {
            (
                404,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                         "reason": "NotFound", "message": format!("{path} not found")}),
            )
        };
        send.send(Reply::json(code, &answer));
        entry
    }
}

/// A context whose targets, gate observer and reconcile share one [`Identities`] with
/// `default_account`, over a mock answered by [`serve`].
fn context(
    now: Timestamp,
    cached: Option<&str>,
    default_account: Option<&str>,
) -> (Arc<Context>, ApiServerVerifier) {
    let (client, handle) = ApiServerVerifier::new();
    let identities = Arc::new(
        Identities::new(client.clone()).with_default_account(default_account.map(str::to_owned)),
    );
    let mut writer: Writer<PartialObjectMeta<ConfigMap>> = Writer::default();
    if let Some(percent) = cached {
        let cm: ConfigMap =
            serde_json::from_value(config_map(percent, "100")).expect("a ConfigMap");
        // The controller caches managed ConfigMaps as metadata only.
        let meta = PartialObjectMeta {
            types: None,
            metadata: cm.metadata,
            _phantom: std::marker::PhantomData,
        };
        writer.apply_watcher_event(&watcher::Event::Apply(meta));
    }
    let targets = KubeTargets::new(client.clone(), Some(writer.as_reader()), None)
        .with_identities(Arc::clone(&identities));
    let ctx = Context::new(
        client.clone(),
        Recorder::new(
            client.clone(),
            Reporter {
                controller: "rollgate".into(),
                instance: None,
            },
        ),
        Arc::new(FixedClock(now)),
        Arc::new(NoGates),
        Arc::new(targets),
        Arc::new(AlwaysLeader),
    )
    .with_identities(identities);
    (Arc::new(ctx), handle)
}

/// Reconciles `rollout` once in `ctx`, answering its requests; returns whether it succeeded
/// and what the mock saw.
async fn reconcile_once(
    ctx: &Arc<Context>,
    handle: &mut ApiServerVerifier,
    rollout: &Rollout,
    refuse: Refuse,
) -> (Result<(), String>, Vec<Seen>) {
    let base = serde_json::to_value(rollout).expect("json");
    let mut seen = Vec::new();
    let run = reconcile(Arc::new(rollout.clone()), Arc::clone(ctx));
    tokio::pin!(run);
    let result = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tokio::select! {
                result = &mut run => break result,
                Some((request, send)) = handle.next() => {
                    seen.push(answer(request, send, refuse, &base).await);
                }
            }
        }
    })
    .await
    .expect("the reconcile finishes");
    (result.map(|_| ()).map_err(|e| e.to_string()), seen)
}

/// Every request on a tenant's objects impersonates `user`; every other is the controller's
/// own; none asks for a group.
fn assert_identities(seen: &[Seen], user: &str) {
    assert!(!seen.is_empty());
    for s in seen {
        assert_eq!(s.groups, 0, "no Impersonate-Group: {s:?}");
        if s.on("configmaps") || s.on("secrets") {
            assert_eq!(s.user.as_deref(), Some(user), "tenant request: {s:?}");
        } else {
            assert_eq!(s.user, None, "the controller's own request: {s:?}");
        }
    }
}

fn status_writes(seen: &[Seen]) -> Vec<RolloutStatus> {
    seen.iter()
        .filter(|s| s.method == "PATCH" && s.path.ends_with("/status"))
        .map(|s| serde_json::from_value(s.body["status"].clone()).expect("a status"))
        .collect()
}

fn event_reasons(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter(|s| s.path.ends_with("/events"))
        .map(|s| s.body["reason"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn condition_reason(status: &RolloutStatus, kind: &str) -> String {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.reason.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn target_reads_writes_and_the_dry_run_impersonate_the_service_account_and_status_and_events_do_not()
 {
    let r = rollout(spec(PLAN), None);
    let (ctx, mut handle) = context(t(0), Some("0"), None);
    let (ok, seen) = reconcile_once(&ctx, &mut handle, &r, Refuse::default()).await;
    assert!(ok.is_ok(), "{ok:?} {seen:#?}");
    assert_identities(&seen, USER);
    let dry_run = seen
        .iter()
        .find(|s| s.method == "PATCH" && s.query.contains("dryRun=All"))
        .expect("a dry run");
    assert_eq!(dry_run.user.as_deref(), Some(USER));
    // The owner claim (annotations only) comes before the start; it is the tenant's too.
    let claim = seen
        .iter()
        .find(|s| s.method == "PATCH" && s.on("configmaps") && s.body.get("data").is_none())
        .expect("the owner claim");
    assert_eq!(claim.user.as_deref(), Some(USER));
    let write = seen
        .iter()
        .find(|s| {
            s.method == "PATCH"
                && s.on("configmaps")
                && !s.query.contains("dryRun")
                && s.body.get("data").is_some()
        })
        .expect("the target write");
    assert_eq!(write.body["data"]["percent"], "1");
    assert_eq!(write.user.as_deref(), Some(USER));
    let statuses = status_writes(&seen);
    assert_eq!(statuses.len(), 1, "{seen:#?}");
    assert_eq!(statuses[0].phase, Some(Phase::Progressing));
    assert_eq!(event_reasons(&seen), vec!["Started".to_owned()]);
}

#[tokio::test]
async fn without_a_service_account_or_default_nothing_is_impersonated() {
    let mut plan = spec(PLAN);
    plan.service_account_name = None;
    let r = rollout(plan, None);
    let (ctx, mut handle) = context(t(0), Some("0"), None);
    let (ok, seen) = reconcile_once(&ctx, &mut handle, &r, Refuse::default()).await;
    assert!(ok.is_ok(), "{ok:?} {seen:#?}");
    assert!(
        seen.iter().all(|s| s.user.is_none() && s.groups == 0),
        "{seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|s| s.on("configmaps") && s.method == "PATCH")
    );
}

#[tokio::test]
async fn lockdown_acts_as_the_default_service_account_of_the_rollouts_namespace() {
    let mut plan = spec(PLAN);
    plan.service_account_name = None;
    let r = rollout(plan, None);
    let (ctx, mut handle) = context(t(0), Some("0"), Some("tenant"));
    let (ok, seen) = reconcile_once(&ctx, &mut handle, &r, Refuse::default()).await;
    assert!(ok.is_ok(), "{ok:?} {seen:#?}");
    assert_identities(&seen, "system:serviceaccount:kaviar:tenant");
}

#[tokio::test]
async fn a_forbidden_dry_run_keeps_the_rollout_pending_with_reason_forbidden() {
    let r = rollout(spec(PLAN), None);
    let (ctx, mut handle) = context(t(0), Some("0"), None);
    let refuse = Refuse {
        patch_config_map: true,
        ..Refuse::default()
    };
    let (ok, seen) = reconcile_once(&ctx, &mut handle, &r, refuse).await;
    assert!(ok.is_ok(), "{ok:?} {seen:#?}");
    assert_identities(&seen, USER);
    assert!(
        !seen
            .iter()
            .any(|s| s.on("configmaps") && s.method == "PATCH" && !s.query.contains("dryRun")),
        "nothing is written: {seen:#?}"
    );
    let statuses = status_writes(&seen);
    assert_eq!(statuses.len(), 1);
    let status = &statuses[0];
    assert_eq!(status.phase, Some(Phase::Pending));
    assert_eq!(status.reason.as_deref(), Some(REASON_FORBIDDEN));
    for kind in ["Ready", "Reconciling", "Stalled"] {
        assert_eq!(condition_reason(status, kind), "Forbidden", "{kind}");
    }
    let message = status.message.clone().unwrap_or_default();
    assert!(
        message.contains("ServiceAccount kaviar/deployer may not patch configmaps \"pct\""),
        "{message}"
    );
    assert_eq!(event_reasons(&seen), vec!["Forbidden".to_owned()]);
}

/// The status of the plan started at t = 0 with its first write confirmed.
fn started(plan: &RolloutSpec) -> RolloutStatus {
    let mut status = RolloutStatus::default();
    engine::decide(
        plan,
        &mut status,
        &Inputs::at(t(0)).with_generation(Some(1)),
    );
    status.target_pending = false;
    status.update_conditions(t(0));
    status
}

#[tokio::test]
async fn a_forbidden_target_write_after_the_start_pauses_once_and_stops_writing() {
    let plan = spec(PLAN);
    let refuse = Refuse {
        patch_config_map: true,
        ..Refuse::default()
    };
    // One context (one Identities) across three reconciles, as in the controller.
    let (ctx, mut handle) = context(t(3600), Some("1"), None);

    // 1: the checkpoint at 1h advances to 5%; the write is refused.
    let r = rollout(plan.clone(), Some(started(&plan)));
    let (ok, seen) = reconcile_once(&ctx, &mut handle, &r, refuse).await;
    assert!(
        ok.is_err(),
        "the refused write fails the reconcile: {seen:#?}"
    );
    assert_identities(&seen, USER);
    let advanced = status_writes(&seen)
        .pop()
        .expect("the advance was recorded first");
    assert_eq!(advanced.percent, Some(rollgate::api::Percent::whole(5)));
    assert!(advanced.target_pending);

    // 2: the next reconcile pauses with reason Forbidden, and writes no target.
    let mut r = rollout(plan.clone(), Some(advanced));
    r.metadata.resource_version = Some("11".into());
    let (ok, seen) = reconcile_once(&ctx, &mut handle, &r, refuse).await;
    assert!(ok.is_ok(), "{ok:?} {seen:#?}");
    assert_identities(&seen, USER);
    assert!(
        !seen
            .iter()
            .any(|s| s.on("configmaps") && s.method == "PATCH"),
        "a paused, refused rollout tries no write: {seen:#?}"
    );
    let paused = status_writes(&seen).pop().expect("the pause is recorded");
    assert_eq!(paused.phase, Some(Phase::Paused));
    assert_eq!(paused.reason.as_deref(), Some(REASON_FORBIDDEN));
    assert_eq!(condition_reason(&paused, "Ready"), "Forbidden");
    assert!(
        paused.message.as_deref().is_some_and(
            |m| m.contains("ServiceAccount kaviar/deployer may not patch configmaps \"pct\"")
        ),
        "{:?}",
        paused.message
    );
    assert_eq!(event_reasons(&seen), vec!["Forbidden".to_owned()]);

    // 3: reconciled again, still refused: nothing is written at all (no retry storm).
    let mut r = rollout(plan.clone(), Some(paused));
    r.metadata.resource_version = Some("11".into());
    let (ok, seen) = reconcile_once(&ctx, &mut handle, &r, refuse).await;
    assert!(ok.is_ok(), "{ok:?} {seen:#?}");
    assert!(
        seen.iter().all(|s| s.method == "GET"),
        "nothing written while paused by a refusal: {seen:#?}"
    );
}

#[tokio::test]
async fn a_gates_secret_is_read_as_the_service_account() {
    let plan = spec(
        r#"
serviceAccountName: deployer
target:
  configMap: {name: pct, key: percent}
stages:
  - {percent: 1}
analysis:
  gates:
    - name: errors
      prometheus:
        address: http://127.0.0.1:9
        query: up
        secretRef: {name: prom-token}
      max: 1
"#,
    );
    let r = rollout(plan, None);
    let (client, handle) = ApiServerVerifier::new();
    let identities = Arc::new(Identities::new(client.clone()));
    let env = GateEnv::new(None, Vec::new()).expect("an environment");
    let observer = ProviderObserver::new(client, env, Duration::from_secs(2))
        .with_identities(Arc::clone(&identities));
    let refuse = Refuse {
        get_secret: true,
        ..Refuse::default()
    };
    let mut handle = handle;
    let mut seen = Vec::new();
    let status = RolloutStatus::default();
    let observe = observer.observe(&r, &status, t(0));
    tokio::pin!(observe);
    let readings = loop {
        tokio::select! {
            readings = &mut observe => break readings,
            Some((request, send)) = handle.next() => {
                seen.push(answer(request, send, refuse, &Value::Null).await);
            }
        }
    };
    let denial = identities
        .take_denial(&r)
        .expect("the refusal is remembered");
    assert_eq!(
        denial.to_string(),
        "ServiceAccount kaviar/deployer may not get secrets \"prom-token\""
    );
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert!(seen[0].path.ends_with("/secrets/prom-token"));
    assert_eq!(seen[0].user.as_deref(), Some(USER));
    assert!(matches!(readings[0].observation, Observation::Error(_)));
}

#[tokio::test]
async fn a_webhook_targets_headers_secret_is_read_as_the_service_account_and_a_refusal_stops_there()
{
    let plan = spec(
        r#"
serviceAccountName: deployer
target:
  webhook: {url: "http://127.0.0.1:9/percent", headersSecret: prom-token}
stages:
  - {percent: 1}
"#,
    );
    let r = rollout(plan, None);
    let (ctx, mut handle) = context(t(0), None, None);
    let refuse = Refuse {
        get_secret: true,
        ..Refuse::default()
    };
    let (ok, seen) = reconcile_once(&ctx, &mut handle, &r, refuse).await;
    assert!(ok.is_ok(), "{ok:?} {seen:#?}");
    assert_identities(&seen, USER);
    assert!(
        seen.iter()
            .any(|s| s.path.ends_with("/secrets/prom-token") && s.user.as_deref() == Some(USER)),
        "{seen:#?}"
    );
    let status = status_writes(&seen).pop().expect("a status");
    assert_eq!(status.phase, Some(Phase::Pending));
    assert_eq!(status.reason.as_deref(), Some(REASON_FORBIDDEN));
    let message = status.message.clone().unwrap_or_default();
    assert!(
        message.contains("ServiceAccount kaviar/deployer may not get secrets \"prom-token\""),
        "{message}"
    );
}

#[tokio::test]
async fn notification_urls_are_read_as_the_service_account() {
    let plan = spec(
        r#"
serviceAccountName: deployer
target:
  configMap: {name: pct, key: percent}
stages:
  - {percent: 1}
notifications:
  - webhook: {urlSecretRef: {name: prom-token, key: url}}
"#,
    );
    let r = rollout(plan, None);
    let (ctx, mut handle) = context(t(0), Some("0"), None);
    let notifier = rollgate::notify::Notifier::new(rollgate::notify::NotifierSettings::default())
        .expect("a notifier");
    let ctx = Arc::new(
        Arc::into_inner(ctx)
            .expect("the only reference")
            .with_notifier(Arc::new(notifier)),
    );
    let (ok, seen) = reconcile_once(&ctx, &mut handle, &r, Refuse::default()).await;
    assert!(ok.is_ok(), "{ok:?} {seen:#?}");
    assert_identities(&seen, USER);
    assert!(
        seen.iter()
            .any(|s| s.path.ends_with("/secrets/prom-token") && s.user.as_deref() == Some(USER)),
        "the notification URL's Secret was read as the ServiceAccount: {seen:#?}"
    );
}

#[tokio::test]
async fn impersonating_clients_are_made_once_per_service_account_and_dropped_when_idle() {
    let (client, _handle) = ApiServerVerifier::new();
    let account = |name: &str| ServiceAccount {
        namespace: NS.into(),
        name: name.into(),
    };
    let kept = Identities::new(client.clone());
    kept.impersonating(&account("a")).expect("a client");
    kept.impersonating(&account("a")).expect("a client");
    kept.impersonating(&account("b")).expect("a client");
    assert_eq!(kept.cached_clients(), 2);
    let dropped = Identities::new(client).with_idle(Duration::ZERO);
    dropped.impersonating(&account("a")).expect("a client");
    dropped.impersonating(&account("b")).expect("a client");
    assert_eq!(dropped.cached_clients(), 1, "the idle client for a is gone");
}
