//! Tenant identity end to end: the real `rollgate controller` binary against the stand-in API
//! server, which checks impersonated requests against a small RBAC table. A Rollout acting as
//! a ServiceAccount that may not read a Secret cannot use it (the webhook never hears from the
//! controller); under lockdown (`--default-service-account`) a Rollout whose ServiceAccount may
//! not patch the ConfigMap stays Pending with reason `Forbidden`; a controller that may not
//! impersonate says so. The Rollout's status, Events and the Lease stay the controller's own.

use crate::support;

use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};
use support::apiserver::controller::Controller;
use support::apiserver::{ApiServer, Logged, Verb};
use support::fake::{Canned, Fake};

const NAMESPACE: &str = "kaviar";
const NAME: &str = "identity";
const PATIENCE: Duration = Duration::from_secs(60);

fn user(account: &str) -> String {
    format!("system:serviceaccount:{NAMESPACE}:{account}")
}

async fn apply(server: &ApiServer, plan: &Value) {
    let gvk = GroupVersionKind::gvk("rollgate.dev", "v1alpha1", "Rollout");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "rollouts");
    let api: Api<DynamicObject> = Api::namespaced_with(server.client(), NAMESPACE, &resource);
    api.patch(NAME, &PatchParams::apply("kubectl"), &Patch::Apply(plan))
        .await
        .expect("apply the Rollout");
}

/// Waits until the Rollout satisfies `ok`; returns it.
async fn wait(
    server: &ApiServer,
    controller: &Controller,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let rollout = server
            .object("rollouts", NAMESPACE, NAME)
            .unwrap_or(Value::Null);
        if ok(&rollout) {
            return rollout;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "{what}: not reached; status {:#}\n{}",
            rollout["status"],
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn forbidden(rollout: &Value) -> bool {
    rollout["status"]["phase"] == "Pending"
        && rollout["status"]["reason"] == "Forbidden"
        && rollout["status"]["conditions"]
            .as_array()
            .is_some_and(|c| !c.is_empty() && c.iter().all(|c| c["reason"] == "Forbidden"))
}

/// The controller's own requests (status, Events, Lease, watches) never impersonate; none
/// asks for a group.
fn assert_own_requests_are_not_impersonated(requests: &[Logged]) {
    for request in requests {
        assert!(
            request.impersonated_groups.is_empty(),
            "no Impersonate-Group: {request:?}"
        );
        if request.on("rollouts") || request.on("events") || request.on("leases") {
            assert_eq!(
                request.impersonated, None,
                "the controller's own: {request:?}"
            );
        }
        if matches!(request.verb, Verb::List | Verb::Watch) {
            assert_eq!(
                request.impersonated, None,
                "watches are the controller's: {request:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_without_secret_access_cannot_use_the_secret() {
    let server = ApiServer::start().await;
    let echo = Fake::start(Canned::ok(r#"{"percent": 0}"#));
    server.put(
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "hook-auth", "namespace": NAMESPACE},
            "data": {"Authorization": "QmVhcmVyIHMzY3JldA=="}
        }),
        "kubectl",
    );
    // The ServiceAccount may do everything but read the Secret.
    let deployer = user("deployer");
    server.grant(&deployer, "get", "configmaps", NAMESPACE, None);
    let url = format!("{}/percent", echo.address());
    let controller = Controller::start(
        &server,
        "http://127.0.0.1:9",
        &["--allow-address", &echo.address(), "--namespace", NAMESPACE],
    );
    apply(
        &server,
        &json!({
            "apiVersion": "rollgate.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": {
                "serviceAccountName": "deployer",
                "target": {"webhook": {"url": url, "headersSecret": "hook-auth"}},
                "stages": [{"percent": 1}, {"percent": 100}]
            }
        }),
    )
    .await;
    let rollout = wait(&server, &controller, "Pending, Forbidden", forbidden).await;
    let message = rollout["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("ServiceAccount kaviar/deployer may not get secrets \"hook-auth\""),
        "{message}"
    );
    // A few more reconciles' worth of time: still nothing reaches the webhook.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        echo.requests().is_empty(),
        "the webhook heard from the controller: {:?}",
        echo.requests()
    );
    let requests = server.requests();
    let secret_reads: Vec<&Logged> = requests.iter().filter(|r| r.on("secrets")).collect();
    assert!(!secret_reads.is_empty(), "the Secret was asked for");
    for read in &secret_reads {
        assert_eq!(
            read.impersonated.as_deref(),
            Some(deployer.as_str()),
            "{read:?}"
        );
        assert_eq!(read.status, 403, "{read:?}");
    }
    assert_own_requests_are_not_impersonated(&requests);
    assert!(
        requests
            .iter()
            .any(|r| r.on("events") && r.body.as_ref().is_some_and(|b| b["reason"] == "Forbidden")),
        "an Event says Forbidden"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockdown_refuses_a_rollout_whose_service_account_may_not_patch_the_config_map() {
    let server = ApiServer::start().await;
    server.put(
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "pct", "namespace": NAMESPACE},
            "data": {"percent": "0"}
        }),
        "kubectl",
    );
    let tenant = user("tenant");
    // May read its ConfigMap, not patch it.
    server.grant(&tenant, "get", "configmaps", NAMESPACE, Some("pct"));
    let controller = Controller::start(
        &server,
        "http://127.0.0.1:9",
        &[
            "--default-service-account",
            "tenant",
            "--leader-elect=true",
            "--leader-election-namespace",
            "rollgate-system",
        ],
    );
    apply(
        &server,
        &json!({
            "apiVersion": "rollgate.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": {
                "target": {"configMap": {"name": "pct", "key": "percent"}},
                "stages": [{"percent": 1}, {"percent": 100}]
            }
        }),
    )
    .await;
    let rollout = wait(&server, &controller, "Pending, Forbidden", forbidden).await;
    let message = rollout["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("ServiceAccount kaviar/tenant may not patch configmaps \"pct\""),
        "{message}"
    );
    let cm = server
        .object("configmaps", NAMESPACE, "pct")
        .expect("the ConfigMap");
    assert_eq!(cm["data"]["percent"], "0", "the ConfigMap is untouched");
    let requests = server.requests();
    let patches: Vec<&Logged> = requests
        .iter()
        .filter(|r| r.on("configmaps") && matches!(r.verb, Verb::Patch | Verb::Apply))
        .collect();
    assert!(!patches.is_empty(), "the dry run was tried");
    for patch in &patches {
        assert_eq!(
            patch.impersonated.as_deref(),
            Some(tenant.as_str()),
            "{patch:?}"
        );
        assert_eq!(patch.status, 403, "{patch:?}");
    }
    assert!(
        requests.iter().any(|r| r.on("leases")),
        "the Lease was used"
    );
    assert_own_requests_are_not_impersonated(&requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_that_may_not_impersonate_says_so() {
    let server = ApiServer::start().await;
    server.put(
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "pct", "namespace": NAMESPACE},
            "data": {"percent": "0"}
        }),
        "kubectl",
    );
    server.deny_impersonation();
    let controller = Controller::start(&server, "http://127.0.0.1:9", &[]);
    apply(
        &server,
        &json!({
            "apiVersion": "rollgate.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": {
                "serviceAccountName": "deployer",
                "target": {"configMap": {"name": "pct", "key": "percent"}},
                "stages": [{"percent": 1}]
            }
        }),
    )
    .await;
    let rollout = wait(&server, &controller, "Pending, Forbidden", forbidden).await;
    let message = rollout["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("the controller may not impersonate ServiceAccount kaviar/deployer"),
        "{message}"
    );
    let cm = server
        .object("configmaps", NAMESPACE, "pct")
        .expect("the ConfigMap");
    assert_eq!(cm["data"]["percent"], "0", "the ConfigMap is untouched");
}

#[test]
fn a_default_service_account_that_is_not_a_name_is_a_usage_error() {
    let out = std::process::Command::new(support::apiserver::controller::binary())
        .args(["controller", "--default-service-account", "Team_Runner"])
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .expect("the rollgate binary runs");
    assert_eq!(out.status.code(), Some(2), "exit status 2 for a bad flag");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--default-service-account")
            && stderr.contains("not a ServiceAccount name"),
        "{stderr}"
    );
}
