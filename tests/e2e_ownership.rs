//! The real `rollgate controller` binary against the stand-in API server, for the rules of
//! sharing a target and letting go of it (issue 11, rules 7, 8, 9): two Rollouts on one flag
//! never fight over it, a deleted Rollout's metric series vanish at once and its target keeps
//! its percent, and labelled ConfigMaps are watched as metadata only. The Rollouts here have
//! no gates, so no Prometheus is needed.

mod support;

use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams};
use rollgate::api::Rollout;
use serde_json::{Value, json};
use support::apiserver::controller::Controller;
use support::apiserver::{ApiServer, flagd};

const NAMESPACE: &str = "team";
const CONFIG_MAP: &str = "feature-flags";
const KEY: &str = "flags.flagd.json";
const FLAG: &str = "shared_flag";

/// A Prometheus address nothing listens on: these Rollouts have no gates.
const NO_PROMETHEUS: &str = "http://127.0.0.1:9";

const PATIENCE: Duration = Duration::from_secs(60);

fn flagd_rollout(name: &str, stages: Value) -> Value {
    json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "target": {"flagd": {"configMap": CONFIG_MAP, "flag": FLAG}},
            "stages": stages,
            "analysis": {"interval": "1s", "gates": []}
        }
    })
}

fn create_flags(server: &ApiServer) {
    let definition = r#"{"flags":{}}"#;
    server.put(
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIG_MAP, "namespace": NAMESPACE},
            "data": {KEY: definition}
        }),
        "kubectl",
    );
}

fn status(server: &ApiServer, name: &str) -> Value {
    server
        .object("rollouts", NAMESPACE, name)
        .map(|r| r["status"].clone())
        .unwrap_or(Value::Null)
}

fn ready_reason(status: &Value) -> String {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["reason"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The shared flag's live percent in the ConfigMap (None while absent).
fn live_percent(server: &ApiServer) -> Option<u8> {
    let cm = server.object("configmaps", NAMESPACE, CONFIG_MAP)?;
    flagd::percent(&flagd::definition(&cm, KEY)?, FLAG, "on")
}

async fn wait_for(
    what: &str,
    controller: &Controller,
    server: &ApiServer,
    mut ok: impl FnMut() -> bool,
) {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() > PATIENCE {
            panic!(
                "{what}: not reached after {PATIENCE:?}\nunknown requests: {:?}\n{}",
                server.unknown_requests(),
                controller.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The controller's /metrics text (empty while it does not answer yet).
async fn metrics(controller: &Controller) -> String {
    match reqwest::get(format!("http://{}/metrics", controller.metrics_address)).await {
        Ok(answer) => answer.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Rule 7: the second Rollout on a flag stays Pending (TargetOwned, naming the first) while the
/// first is unfinished; the flag is written by the first only and never flaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rollouts_on_one_flag_never_flap() {
    let server = ApiServer::start().await;
    create_flags(&server);
    let controller = Controller::start(&server, NO_PROMETHEUS, &[]);
    server.put(
        flagd_rollout("first", json!([{"percent": 5, "duration": "1h"}])),
        "kubectl",
    );
    wait_for("first progressing at 5%", &controller, &server, || {
        status(&server, "first")["phase"] == "Progressing" && live_percent(&server) == Some(5)
    })
    .await;
    let cm = server
        .object("configmaps", NAMESPACE, CONFIG_MAP)
        .expect("the ConfigMap");
    let first_uid = server.object("rollouts", NAMESPACE, "first").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        cm["metadata"]["annotations"][format!("rollgate.dev/owner.{FLAG}")],
        json!(format!("{NAMESPACE}/first/{first_uid}")),
        "the claim is on the target object"
    );

    let mark = server.mark();
    server.put(
        flagd_rollout("second", json!([{"percent": 50, "duration": "1h"}])),
        "kubectl",
    );
    wait_for(
        "second pending as TargetOwned",
        &controller,
        &server,
        || ready_reason(&status(&server, "second")) == "TargetOwned",
    )
    .await;
    let second = status(&server, "second");
    assert_eq!(second["phase"], "Pending");
    let message = second["message"].as_str().unwrap_or_default();
    assert!(message.contains("Rollout team/first"), "{message}");

    // A few seconds of both being reconciled (checkpoints every second): nothing flaps.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        assert_eq!(live_percent(&server), Some(5), "{}", controller.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let target_writes: Vec<_> = server
        .requests_since(mark)
        .into_iter()
        .filter(|r| r.is_write() && r.on("configmaps") && !r.dry_run)
        .collect();
    assert!(
        target_writes.is_empty(),
        "no write to the shared ConfigMap while one owner holds it: {target_writes:?}"
    );
    assert_eq!(status(&server, "first")["phase"], "Progressing");
    assert_eq!(status(&server, "second")["phase"], "Pending");
    assert!(
        status(&server, "first")["history"]
            .as_array()
            .is_some_and(|h| h.iter().all(|e| e["kind"] != "drift")),
        "the owner never saw a drift: {}",
        status(&server, "first")
    );
}

/// Rule 8: deleted means gone: the series of a deleted Rollout leave /metrics as soon as the
/// watch reports the deletion (no finalizer, no restart), and its target keeps its percent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_rollouts_series_vanish_from_metrics_and_its_target_keeps_its_percent() {
    let server = ApiServer::start().await;
    create_flags(&server);
    let controller = Controller::start(&server, NO_PROMETHEUS, &[]);
    server.put(
        flagd_rollout("doomed", json!([{"percent": 20, "duration": "1h"}])),
        "kubectl",
    );
    let series = "name=\"doomed\"";
    let start = Instant::now();
    loop {
        let text = metrics(&controller).await;
        if text.contains(series) && live_percent(&server) == Some(20) {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "no series for the rollout:\n{text}\n{}",
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let api: Api<Rollout> = Api::namespaced(server.client(), NAMESPACE);
    api.delete("doomed", &DeleteParams::default())
        .await
        .expect("delete the Rollout");
    let deleted = Instant::now();
    loop {
        let text = metrics(&controller).await;
        assert!(!text.is_empty(), "/metrics answers");
        if !text.contains(series) {
            break;
        }
        assert!(
            deleted.elapsed() < Duration::from_secs(10),
            "the deleted Rollout's series are still served:\n{text}\n{}",
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        live_percent(&server),
        Some(20),
        "the target keeps its percent"
    );
    let text = metrics(&controller).await;
    assert!(
        text.contains("rollgate_"),
        "the controller's other series stay:\n{text}"
    );
}
