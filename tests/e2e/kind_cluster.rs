//! The real-cluster suite (kind, k3d or any cluster): runs only when `ROLLGATE_E2E_KUBECONFIG`
//! names a kubeconfig. It installs the CRD (`rollgate crd`), runs the controller binary on this
//! machine against the cluster with a real Prometheus on loopback scraping a small demo app,
//! applies a Rollout on a demo ConfigMap target with second-long stages, and checks that it
//! progresses 1 → 5 → 10 % to Succeeded with Events recorded. Without the variable every test
//! prints a SKIPPED line and returns.
//!
//! ```sh
//! kind create cluster --name rollgate-e2e
//! kind get kubeconfig --name rollgate-e2e > /tmp/kind.kubeconfig
//! ROLLGATE_E2E_KUBECONFIG=/tmp/kind.kubeconfig cargo test --test kind_cluster -- --nocapture
//! ```

use crate::support;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};
use support::app::App;
use support::prometheus::Prometheus;

const VARIABLE: &str = "ROLLGATE_E2E_KUBECONFIG";

/// The kubeconfig to use, or None after a SKIPPED line when the variable is not set.
fn kubeconfig() -> Option<PathBuf> {
    match std::env::var_os(VARIABLE) {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (did not run): the real-cluster suite needs {VARIABLE}=<kubeconfig of a \
                 kind/k3d cluster>; see \"End-to-end tests\" in docs/development.md"
            );
            None
        }
    }
}

async fn client(path: &PathBuf) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("read the kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a usable kubeconfig");
    kube::Client::try_from(config).expect("a client")
}

fn rollout_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("rollgate.dev", "v1alpha1", "Rollout");
    ApiResource::from_gvk_with_plural(&gvk, "rollouts")
}

/// Applies `rollgate crd` and waits until the cluster serves it.
async fn install_crd(client: &kube::Client) {
    let out = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .arg("crd")
        .output()
        .expect("run rollgate crd");
    assert!(out.status.success(), "rollgate crd failed");
    let crd: Value =
        serde_saphyr::from_str(&String::from_utf8_lossy(&out.stdout)).expect("CRD YAML");
    let name = crd["metadata"]["name"]
        .as_str()
        .expect("CRD name")
        .to_owned();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        &name,
        &PatchParams::apply("rollgate-e2e").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply the CRD");
    let start = Instant::now();
    loop {
        let established = crds
            .get(&name)
            .await
            .ok()
            .and_then(|c| c.status)
            .is_some_and(|s| {
                s.conditions
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        if established {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the CRD was never Established"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn percent(config_map: &ConfigMap) -> Option<String> {
    config_map.data.as_ref()?.get("percent").cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_on_a_config_map_progresses_to_succeeded_in_a_real_cluster() {
    let Some(path) = kubeconfig() else {
        return;
    };
    let Some(prometheus_binary) = support::prometheus::binary() else {
        panic!("{VARIABLE} is set, so the suite must run: install prometheus");
    };
    let client = client(&path).await;
    install_crd(&client).await;

    let namespace = format!(
        "rollgate-e2e-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            &namespace,
            &PatchParams::apply("rollgate-e2e"),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
            ),
        )
        .await
        .expect("create the namespace");

    let app = App::start();
    app.set_rate(200, 50.0);
    app.set_rate(500, 0.0);
    let prometheus = Prometheus::start(&prometheus_binary, &[("demo", app.target())], "").await;

    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    config_maps
        .patch(
            "demo",
            &PatchParams::apply("rollgate-e2e"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "demo"}, "data": {"percent": "0"}})),
        )
        .await
        .expect("create the demo ConfigMap");
    let rollouts: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &namespace, &rollout_resource());
    let plan = json!({
        "apiVersion": "rollgate.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "demo"},
        "spec": {
            "target": {"configMap": {"name": "demo", "key": "percent"}},
            "stages": [{"percent": 1, "duration": "3s"}, {"percent": 5, "duration": "3s"}, {"percent": 10, "duration": "3s"}],
            "analysis": {"interval": "1s", "gates": [{
                "name": "error-rate",
                "prometheus": {"query": "sum(rate(http_requests_total{job=\"demo\",code=~\"5..\"}[10s])) / sum(rate(http_requests_total{job=\"demo\"}[10s]))"},
                "max": 0.01
            }]}
        }
    });
    rollouts
        .patch(
            "demo",
            &PatchParams::apply("rollgate-e2e"),
            &Patch::Apply(&plan),
        )
        .await
        .expect("apply the Rollout (the cluster validates it against the CRD)");

    let dir = tempfile::tempdir().expect("temporary directory");
    let log_path = dir.path().join("controller.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut controller = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args([
            "controller",
            "--prometheus",
            &prometheus.address,
            "--namespace",
            &namespace,
            "--metrics-bind-address",
            "0",
            "--health-probe-bind-address",
            "0",
        ])
        .env("KUBECONFIG", &path)
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("start rollgate controller");

    let mut seen: Vec<String> = Vec::new();
    let start = Instant::now();
    let outcome = loop {
        if let Ok(cm) = config_maps.get("demo").await
            && let Some(p) = percent(&cm)
            && seen.last() != Some(&p)
        {
            seen.push(p);
        }
        let phase = rollouts
            .get("demo")
            .await
            .ok()
            .and_then(|r| r.data["status"]["phase"].as_str().map(str::to_owned));
        if phase.as_deref() == Some("Succeeded") || start.elapsed() > Duration::from_secs(180) {
            break phase;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = controller.kill();
    let _ = controller.wait();
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), &namespace);
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .map(|l| l.items.into_iter().filter_map(|e| e.reason).collect())
        .unwrap_or_default();
    let _ = namespaces
        .delete(&namespace, &DeleteParams::default())
        .await;

    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(
        outcome.as_deref(),
        Some("Succeeded"),
        "phase; percents seen {seen:?}\n{log}"
    );
    assert_eq!(seen.first().map(String::as_str), Some("0"), "{seen:?}");
    assert!(
        seen.ends_with(&["1".into(), "5".into(), "10".into()]),
        "percents seen {seen:?}\n{log}"
    );
    assert!(
        reasons.iter().any(|r| r == "Started"),
        "Events: {reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r == "Completed"),
        "Events: {reasons:?}"
    );
}
