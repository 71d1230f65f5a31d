//! The real `rollgate controller` binary against the stand-in API server, for the rules of
//! sharing a target and letting go of it (issue 11, rules 7, 8, 9): two Rollouts on one flag
//! never fight over it, a deleted Rollout's metric series vanish at once and its target keeps
//! its percent, and labelled ConfigMaps are watched as metadata only. The Rollouts here have
//! no gates, so no Prometheus is needed.

use crate::support;

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

/// Rule 9: bounded caches. Labelled ConfigMaps are listed and watched as metadata only
/// (asserted from the stand-in's request log), content is fetched only for the object a
/// Rollout names, and a few large labelled ConfigMaps do not grow the controller's memory by
/// anything like their size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labelled_config_maps_are_watched_as_metadata_only_and_large_ones_do_not_grow_memory() {
    const LARGE: usize = 900 * 1024;
    const COUNT: usize = 5;
    let server = ApiServer::start().await;
    create_flags(&server);
    let controller = Controller::start(&server, NO_PROMETHEUS, &[]);
    server.put(
        flagd_rollout("small", json!([{"percent": 5, "duration": "1h"}])),
        "kubectl",
    );
    wait_for("the rollout at 5%", &controller, &server, || {
        live_percent(&server) == Some(5)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (before, _) = controller.memory_kib();

    let filler = "x".repeat(LARGE);
    for i in 0..COUNT {
        server.put(
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {
                    "name": format!("bulk-{i}"), "namespace": NAMESPACE,
                    "labels": {"rollgate.dev/managed": "true"}
                },
                "data": {"blob": filler}
            }),
            "tenant",
        );
    }
    // Let the watch deliver them (and a few checkpoints pass).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (after, _) = controller.memory_kib();
    let content_kib = (COUNT * LARGE / 1024) as u64;
    let growth = after.saturating_sub(before);
    eprintln!(
        "RSS before {before} KiB, after {COUNT} labelled ConfigMaps of {} KiB: {after} KiB \
         (growth {growth} KiB, {:.0}% of their {content_kib} KiB)",
        LARGE / 1024,
        growth as f64 * 100.0 / content_kib as f64
    );
    assert!(before > 0 && after > 0, "RSS readable");
    assert!(
        growth * 4 < content_kib,
        "labelled ConfigMaps grew the controller by {growth} KiB, a quarter or more of their \
         {content_kib} KiB"
    );

    let requests = server.requests_with_accept();
    let reads: Vec<_> = requests
        .iter()
        .filter(|(r, _)| r.on("configmaps") && r.name.is_none() && r.method == "GET")
        .collect();
    assert!(
        !reads.is_empty(),
        "the controller lists and watches ConfigMaps"
    );
    for (request, metadata_only) in &reads {
        assert!(
            *metadata_only,
            "a list or watch of ConfigMaps asked for their content: {} {}?{}",
            request.method, request.path, request.query
        );
        assert!(
            request
                .query
                .contains("labelSelector=rollgate.dev%2Fmanaged%3Dtrue")
                || request
                    .query
                    .contains("labelSelector=rollgate.dev/managed%3Dtrue")
                || request
                    .query
                    .contains("labelSelector=rollgate.dev%2Fmanaged=true"),
            "only managed ConfigMaps are watched: {}",
            request.query
        );
    }
    let bulk_gets: Vec<_> = requests
        .iter()
        .filter(|(r, _)| {
            r.on("configmaps") && r.name.as_deref().is_some_and(|n| n.starts_with("bulk-"))
        })
        .map(|(r, _)| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        bulk_gets.is_empty(),
        "content is fetched only for objects a Rollout names: {bulk_gets:?}"
    );
}

/// The write-back cache is keyed by target: two Rollouts on two flags of one flagd ConfigMap
/// both finish, neither reads the other's write as its own percent (no drift, no pre-check
/// complaining about the other's percent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rollouts_on_two_flags_of_one_config_map_both_finish_without_drift() {
    let server = ApiServer::start().await;
    create_flags(&server);
    let controller = Controller::start(&server, NO_PROMETHEUS, &[]);
    for (name, flag) in [("alpha", "flag_a"), ("beta", "flag_b")] {
        let mut plan = flagd_rollout(
            name,
            json!([{"percent": 5, "duration": "1s"}, {"percent": 20, "duration": "1s"}]),
        );
        plan["spec"]["target"]["flagd"]["flag"] = json!(flag);
        server.put(plan, "kubectl");
    }
    wait_for("both Succeeded", &controller, &server, || {
        ["alpha", "beta"]
            .iter()
            .all(|n| status(&server, n)["phase"] == "Succeeded")
    })
    .await;
    let cm = server
        .object("configmaps", NAMESPACE, CONFIG_MAP)
        .expect("the ConfigMap");
    let definition = flagd::definition(&cm, KEY).expect("a flagd definition");
    for flag in ["flag_a", "flag_b"] {
        assert_eq!(flagd::percent(&definition, flag, "on"), Some(20), "{flag}");
    }
    for name in ["alpha", "beta"] {
        let status = status(&server, name);
        let kinds: Vec<&str> = status["history"]
            .as_array()
            .map(|h| h.iter().filter_map(|e| e["kind"].as_str()).collect())
            .unwrap_or_default();
        // (A Pending retry is fine: the two claims and dry runs on one object may race.)
        assert!(
            !kinds.contains(&"drift"),
            "{name} read the other's write as its own: {kinds:?}\n{status:#}"
        );
        let messages = status["history"].to_string();
        assert!(
            !messages.contains("the target holds"),
            "{name}'s baseline read the other's percent: {status:#}"
        );
    }
}
