//! The real `rollgate controller` binary with a compare gate, end to end against the stand-in
//! API server and a real Prometheus scraping one app per variant (the scrape job stands for
//! the `feature_flag_variant` label): when the flagged cohort fails five times as often as the
//! control the rollout rolls back; when both fail alike it completes, the gate skipped at 100 %.

use crate::support;

use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};
use support::apiserver::ApiServer;
use support::apiserver::controller::Controller;
use support::app::App;
use support::prometheus::Prometheus;

const NAMESPACE: &str = "kaviar";
const NAME: &str = "errors-vs-control";
const CONFIG_MAP: &str = "feature-flags";
const KEY: &str = "flags.flagd.json";
const PATIENCE: Duration = Duration::from_secs(90);

struct World {
    server: ApiServer,
    prometheus: Prometheus,
    _apps: Vec<App>,
}

/// Apps for the `on` and `off` variants, each serving 100 requests a second with the given
/// failures a second; None (after a notice) without Prometheus outside CI.
async fn world(failures_on: f64, failures_off: f64) -> Option<World> {
    let binary = support::prometheus::binary()?;
    let mut apps = Vec::new();
    let mut targets = Vec::new();
    for (variant, failures) in [("on", failures_on), ("off", failures_off)] {
        let app = App::start();
        app.set_rate(200, 100.0 - failures);
        app.set_rate(500, failures);
        targets.push((variant, app.target()));
        apps.push(app);
    }
    let prometheus = Prometheus::start(&binary, &targets, "").await;
    let server = ApiServer::start().await;
    server.put(
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIG_MAP, "namespace": NAMESPACE},
            "data": {KEY: r#"{"flags":{}}"#}
        }),
        "kubectl",
    );
    Some(World {
        server,
        prometheus,
        _apps: apps,
    })
}

fn plan() -> Value {
    json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "target": {"flagd": {"configMap": CONFIG_MAP, "key": KEY, "flag": "passenger_favorites_matching"}},
            "stages": [
                {"percent": 10, "duration": "3s"},
                {"percent": 50, "duration": "3s"},
                {"percent": 100, "duration": "3s"}
            ],
            "analysis": {
                "interval": "3s",
                "errorLimit": 5,
                "gates": [{
                    "name": "errors-vs-control",
                    "compare": {
                        "units": "sum(increase(http_requests_total{job=\"{{variant}}\"}[{{window}}]))",
                        "events": "sum(increase(http_requests_total{job=\"{{variant}}\",code=~\"5..\"}[{{window}}]))",
                        "maxRegression": 0.002,
                        "minUnits": 100
                    }
                }]
            }
        }
    })
}

impl World {
    async fn apply(&self, plan: &Value) {
        let gvk = GroupVersionKind::gvk("rollgate.dev", "v1alpha1", "Rollout");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "rollouts");
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.server.client(), NAMESPACE, &resource);
        api.patch(NAME, &PatchParams::apply("kubectl"), &Patch::Apply(plan))
            .await
            .expect("apply the Rollout");
    }

    async fn wait_phase(&self, phase: &str, controller: &Controller) -> Value {
        let start = Instant::now();
        loop {
            let status = self
                .server
                .object("rollouts", NAMESPACE, NAME)
                .map(|r| r["status"].clone())
                .unwrap_or(Value::Null);
            if status["phase"] == phase {
                return status;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{phase} not reached; status {status:#}\n{}",
                controller.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn transitions(status: &Value) -> Vec<(String, u64)> {
    status["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter(|e| e["kind"] != "checkpoint" && e["kind"] != "pending")
                .map(|e| {
                    (
                        e["kind"].as_str().unwrap_or_default().to_owned(),
                        e["percent"].as_u64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_times_the_controls_error_rate_rolls_back() {
    let Some(world) = world(10.0, 2.0).await else {
        return;
    };
    let controller = Controller::start(
        &world.server,
        &world.prometheus.address,
        &["--namespace", NAMESPACE],
    );
    world.apply(&plan()).await;
    let status = world.wait_phase("RolledBack", &controller).await;
    assert_eq!(status["percent"], 0, "{status:#}");
    assert_eq!(
        transitions(&status),
        [("start".to_owned(), 10), ("rollback".to_owned(), 0)],
        "{status:#}"
    );
    let gate = &status["gates"][0];
    assert_eq!(gate["lastVerdict"], "fail", "{status:#}");
    let message = gate["lastMessage"].as_str().unwrap_or_default();
    assert!(message.starts_with("with the flag 10"), "{message}");
    assert!(
        gate["compare"]["treatment"]["units"]
            .as_f64()
            .unwrap_or(0.0)
            >= 100.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_error_rates_complete_with_the_gate_skipped_at_100_percent() {
    let Some(world) = world(2.0, 2.0).await else {
        return;
    };
    let controller = Controller::start(
        &world.server,
        &world.prometheus.address,
        &["--namespace", NAMESPACE],
    );
    world.apply(&plan()).await;
    let status = world.wait_phase("Succeeded", &controller).await;
    assert_eq!(status["percent"], 100, "{status:#}");
    assert_eq!(
        transitions(&status),
        [
            ("start".to_owned(), 10),
            ("advance".to_owned(), 50),
            ("advance".to_owned(), 100),
            ("complete".to_owned(), 100)
        ],
        "{status:#}"
    );
    assert_eq!(status["gates"][0]["lastVerdict"], "skipped", "{status:#}");
    assert_eq!(
        status["gates"][0]["lastMessage"], "no control group at 100 %",
        "{status:#}"
    );
}
