//! The shared verifier (`tests/support/verifier.rs`) fails a test on every request that
//! differs from its scenario — method, path, query, content type, body, one too many or one
//! missing — so the tests built on it can fail.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::support::verifier::{ApiServerVerifier, Expect, Reply, scenario};

const CM_PATH: &str = "/api/v1/namespaces/kaviar/configmaps/pct";

fn config_map(percent: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "pct", "namespace": "kaviar", "resourceVersion": "7"},
           "data": {"percent": percent}})
}

/// A GET and a merge patch of the ConfigMap, as the scenario expects them.
fn get_then_patch() -> Vec<Expect> {
    vec![
        Expect::get(CM_PATH)
            .query_exactly::<&str, &str>(&[])
            .no_body()
            .answer(200, config_map("1")),
        Expect::patch(CM_PATH)
            .query_exactly(&[("fieldManager", "rollgate")])
            .content_type("application/merge-patch+json")
            .body(json!({"data": {"percent": "5"}}))
            .answer(200, config_map("5")),
    ]
}

/// Reads the ConfigMap, then merge-patches its percent as `manager`.
async fn get_and_patch(api: Api<ConfigMap>, percent: &str, manager: &str) -> ConfigMap {
    api.get("pct").await.expect("the GET is answered");
    api.patch(
        "pct",
        &PatchParams {
            field_manager: Some(manager.to_owned()),
            ..PatchParams::default()
        },
        &Patch::Merge(json!({"data": {"percent": percent}})),
    )
    .await
    .expect("the patch is answered")
}

#[tokio::test]
async fn a_scenario_played_as_expected_passes_and_answers() {
    let patched = scenario(get_then_patch(), |client| async move {
        get_and_patch(Api::namespaced(client, "kaviar"), "5", "rollgate").await
    })
    .await;
    assert_eq!(
        patched.data.and_then(|d| d.get("percent").cloned()),
        Some("5".to_owned())
    );
}

#[tokio::test]
#[should_panic(expected = "the API server saw what it expected")]
async fn another_body_fails() {
    scenario(get_then_patch(), |client| async move {
        // The patch fails once the verifier panics; what matters is the verifier's verdict.
        let api: Api<ConfigMap> = Api::namespaced(client, "kaviar");
        let _ = api.get("pct").await;
        let _ = api
            .patch(
                "pct",
                &PatchParams {
                    field_manager: Some("rollgate".into()),
                    ..PatchParams::default()
                },
                &Patch::Merge(json!({"data": {"percent": "6"}})),
            )
            .await;
    })
    .await;
}

#[tokio::test]
#[should_panic(expected = "the API server saw what it expected")]
async fn another_query_fails() {
    scenario(get_then_patch(), |client| async move {
        let api: Api<ConfigMap> = Api::namespaced(client, "kaviar");
        let _ = api.get("pct").await;
        let _ = api
            .patch(
                "pct",
                &PatchParams {
                    field_manager: Some("someone-else".into()),
                    ..PatchParams::default()
                },
                &Patch::Merge(json!({"data": {"percent": "5"}})),
            )
            .await;
    })
    .await;
}

#[tokio::test]
#[should_panic(expected = "the API server saw what it expected")]
async fn a_missing_request_fails() {
    scenario(get_then_patch(), |client| async move {
        let api: Api<ConfigMap> = Api::namespaced(client, "kaviar");
        let _ = api.get("pct").await;
    })
    .await;
}

#[tokio::test]
#[should_panic(expected = "the API server saw what it expected")]
async fn an_extra_request_fails() {
    scenario(get_then_patch(), |client| async move {
        let api: Api<ConfigMap> = Api::namespaced(client, "kaviar");
        let _ = get_and_patch(api.clone(), "5", "rollgate").await;
        let _ = api.get("pct").await;
    })
    .await;
}

#[tokio::test]
#[should_panic(expected = "the API server saw what it expected")]
async fn another_path_fails() {
    scenario(get_then_patch(), |client| async move {
        let api: Api<ConfigMap> = Api::namespaced(client, "kaviar");
        let _ = api.get("other").await;
    })
    .await;
}

#[tokio::test]
async fn a_serving_verifier_answers_by_handler_and_logs_every_request() {
    let (client, verifier) = ApiServerVerifier::new();
    let log = verifier.serve(|request| {
        if request.path == CM_PATH {
            Reply::json(200, &config_map("1"))
        } else {
            Reply::json(
                404,
                &json!({"kind": "Status", "apiVersion": "v1",
                "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
            )
        }
    });
    let api: Api<ConfigMap> = Api::namespaced(client, "kaviar");
    api.get("pct").await.expect("answered");
    assert!(api.get("gone").await.is_err());
    let seen: Vec<String> = log
        .lock()
        .expect("the log")
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert_eq!(
        seen,
        [
            format!("GET {CM_PATH}"),
            "GET /api/v1/namespaces/kaviar/configmaps/gone".to_owned()
        ]
    );
}
