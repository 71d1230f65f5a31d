//! The controller's caches keep Rollouts without what it never reads (issue 11, "Measured":
//! memory at 10,000 Rollouts): `metadata.managedFields` and `kubectl apply`'s copy of the
//! object (`kubectl.kubernetes.io/last-applied-configuration`) are dropped before a Rollout is
//! cached. This runs the real `rollgate controller` against the stand-in API server on a
//! Rollout that carries both, as `kubectl apply` leaves it: the rollout still runs to the end,
//! writes every percent, and what the cache dropped is still on the API server afterwards
//! (the controller never writes a Rollout back from its slimmed copy). The Rollout has no
//! gates, so no Prometheus is needed.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::apiserver::ApiServer;
use support::apiserver::controller::Controller;

const NAMESPACE: &str = "team";
const NAME: &str = "applied";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A Prometheus address nothing listens on: this Rollout has no gates.
const NO_PROMETHEUS: &str = "http://127.0.0.1:9";

const PATIENCE: Duration = Duration::from_secs(60);

/// The Rollout as a client-side `kubectl apply` sends it: the annotation holds the applied
/// object itself, as JSON, padded here with a long description so that it weighs what real
/// ones do.
fn applied_rollout() -> Value {
    let mut rollout = json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "annotations": {"team.example/description": "checkout flag, owned by the payments team"},
            "labels": {"app": "checkout"}
        },
        "spec": {
            "target": {"configMap": {"name": NAME, "key": "percent"}},
            "stages": [
                {"percent": 1, "duration": "1s"},
                {"percent": 5, "duration": "1s"},
                {"percent": 10, "duration": "1s"}
            ],
            "analysis": {"interval": "1s", "gates": []}
        }
    });
    let copy = serde_json::to_string(&rollout).expect("json");
    rollout["metadata"]["annotations"][LAST_APPLIED] = json!(copy);
    rollout
}

fn config_map() -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "data": {"percent": "0"}
    })
}

fn rollout(server: &ApiServer) -> Value {
    server
        .object("rollouts", NAMESPACE, NAME)
        .unwrap_or(Value::Null)
}

fn live_percent(server: &ApiServer) -> Option<String> {
    server
        .object("configmaps", NAMESPACE, NAME)
        .and_then(|cm| cm["data"]["percent"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_with_managed_fields_and_last_applied_runs_to_the_end_and_keeps_both() {
    let server = ApiServer::start().await;
    server.put(config_map(), "kubectl-client-side-apply");
    let created = server.put(applied_rollout(), "kubectl-client-side-apply");
    let applied = created["metadata"]["annotations"][LAST_APPLIED].clone();
    assert!(
        applied.as_str().is_some_and(|a| a.contains("\"stages\"")),
        "the Rollout carries kubectl's copy: {created}"
    );
    assert!(
        created["metadata"]["managedFields"]
            .as_array()
            .is_some_and(|m| !m.is_empty()),
        "the stand-in records managedFields as an API server does: {created}"
    );

    let mut controller = Controller::start(&server, NO_PROMETHEUS, &[]);
    let mut seen = Vec::new();
    let start = Instant::now();
    loop {
        if let Some(percent) = live_percent(&server)
            && seen.last() != Some(&percent)
        {
            seen.push(percent);
        }
        if rollout(&server)["status"]["phase"] == "Succeeded" {
            break;
        }
        controller.assert_running();
        assert!(
            start.elapsed() < PATIENCE,
            "not Succeeded after {PATIENCE:?}: {}\nunknown requests: {:?}\n{}",
            rollout(&server)["status"],
            server.unknown_requests(),
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        live_percent(&server).as_deref(),
        Some("10"),
        "the last stage's percent is on the target ({seen:?})"
    );
    for percent in ["1", "5"] {
        assert!(
            seen.iter().any(|p| p == percent),
            "every stage's percent was written: {seen:?}"
        );
    }

    // What the cache dropped is still the API server's: the controller wrote status, the
    // owner claim and the target, never the Rollout from its slimmed copy.
    let after = rollout(&server);
    assert_eq!(
        after["metadata"]["annotations"][LAST_APPLIED], applied,
        "kubectl's copy is untouched: {after}"
    );
    assert_eq!(
        after["metadata"]["annotations"]["team.example/description"],
        "checkout flag, owned by the payments team"
    );
    let managers: Vec<&str> = after["metadata"]["managedFields"]
        .as_array()
        .map(|m| m.iter().filter_map(|e| e["manager"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        managers.contains(&"kubectl-client-side-apply"),
        "kubectl's field ownership stays: {managers:?}"
    );
    let history = after["status"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        history.iter().any(|e| e["kind"] == "complete"),
        "the status records the whole rollout: {}",
        after["status"]
    );
}
