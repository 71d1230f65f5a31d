//! The real `rollgate controller` binary end to end, against the stand-in API server and a
//! real Prometheus scraping a small app the tests drive: the example Rollout (flagd target in
//! a ConfigMap) carried out with second-long stages, a breach rolled back, a hand edit
//! reverted, a SIGKILL mid-rollout repaired on restart, SIGTERM a clean exit; and the
//! decisions equal to `rollgate simulate`'s on a scenario with the same gate values.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};
use support::apiserver::controller::Controller;
use support::apiserver::{ApiServer, flagd};
use support::app::App;
use support::fake::{Canned, Fake};
use support::prometheus::Prometheus;

const NAMESPACE: &str = "kaviar";
const NAME: &str = "passenger-favorites-matching";
const FLAG: &str = "passenger_favorites_matching";
const CONFIG_MAP: &str = "feature-flags";
const KEY: &str = "flags.flagd.json";

/// A flag the rollout does not manage; it must stay byte for byte as it was.
const OTHER_FLAG: &str =
    r#"{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"}"#;

/// An alerting rule the `critical-alerts` gate's matcher selects (pre-checks require one); it
/// never fires.
const RULES: &str = "groups:\n  - name: e2e\n    rules:\n      - alert: BackendDown\n        expr: up{job=\"backend\"} == 0\n        for: 1m\n        labels: {severity: critical}\n";

/// The error-rate query of the example, over a 10 s window so a breach shows within seconds.
const ERROR_RATE: &str = "sum(rate(http_requests_total{job=\"backend\",code=~\"5..\"}[10s])) / sum(rate(http_requests_total{job=\"backend\"}[10s]))";

/// How long a whole rollout of second-long stages may take here (2 shared cores).
const RUN_PATIENCE: Duration = Duration::from_secs(90);

/// The stand-in, a real Prometheus and the app it scrapes.
struct World {
    server: ApiServer,
    prometheus: Prometheus,
    app: App,
}

impl World {
    /// None (after a loud notice) when Prometheus is not installed and CI is not set.
    async fn start() -> Option<Self> {
        let binary = support::prometheus::binary()?;
        let app = App::start();
        app.set_rate(200, 100.0);
        app.set_rate(500, 0.0);
        let prometheus = Prometheus::start(&binary, &[("backend", app.target())], RULES).await;
        let server = ApiServer::start().await;
        let world = Self {
            server,
            prometheus,
            app,
        };
        world.wait_for_error_rate(|v| v == 0.0).await;
        world.create_flags();
        Some(world)
    }

    /// Waits until the error-rate query answers a value `ok` accepts.
    async fn wait_for_error_rate(&self, ok: impl Fn(f64) -> bool) {
        let http = reqwest::Client::new();
        let url = format!("{}/api/v1/query", self.prometheus.address);
        let start = Instant::now();
        loop {
            let answer: Option<Value> =
                match http.get(&url).query(&[("query", ERROR_RATE)]).send().await {
                    Ok(r) => r
                        .bytes()
                        .await
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok()),
                    Err(_) => None,
                };
            let value = answer
                .as_ref()
                .and_then(|a| a["data"]["result"][0]["value"][1].as_str())
                .and_then(|v| v.parse::<f64>().ok());
            if value.is_some_and(&ok) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the error rate never reached the wanted value; last answer {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The flagd ConfigMap the example targets, holding another flag but not the rollout's.
    fn create_flags(&self) {
        let definition = format!(
            r#"{{"$schema":"https://flagd.dev/schema/v0/flags.json","flags":{{"other_flag":{OTHER_FLAG}}}}}"#
        );
        self.server.put(
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": CONFIG_MAP, "namespace": NAMESPACE},
                "data": {KEY: definition}
            }),
            "kubectl",
        );
    }

    /// Applies `plan` as `kubectl apply --server-side` would.
    async fn apply(&self, plan: &Value) {
        let gvk = GroupVersionKind::gvk("rollgate.dev", "v1alpha1", "Rollout");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "rollouts");
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.server.client(), NAMESPACE, &resource);
        api.patch(NAME, &PatchParams::apply("kubectl"), &Patch::Apply(plan))
            .await
            .expect("apply the Rollout");
    }

    fn rollout(&self) -> Value {
        self.server
            .object("rollouts", NAMESPACE, NAME)
            .expect("the Rollout exists")
    }

    fn flags(&self) -> Value {
        let cm = self
            .server
            .object("configmaps", NAMESPACE, CONFIG_MAP)
            .expect("the ConfigMap exists");
        flagd::definition(&cm, KEY).expect("the ConfigMap holds a flagd definition")
    }

    /// The flag's live percent (None while the flag is absent).
    fn percent(&self) -> Option<u8> {
        flagd::percent(&self.flags(), FLAG, "on")
    }

    /// Waits until the rollout's status satisfies `ok`; fails with the status and the
    /// controller's log after `patience`.
    async fn wait_status(
        &self,
        what: &str,
        controller: &Controller,
        patience: Duration,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let status = self
                .server
                .object("rollouts", NAMESPACE, NAME)
                .map(|r| r["status"].clone())
                .unwrap_or(Value::Null);
            if ok(&status) {
                return status;
            }
            if start.elapsed() > patience {
                panic!(
                    "{what}: not reached after {patience:?}; status {status:#}\nunknown requests: {:?}\n{}",
                    self.server.unknown_requests(),
                    controller.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the flag's live percent is `percent`, noting every percent seen on the way.
    async fn wait_percent(&self, percent: u8, controller: &Controller, seen: &mut Vec<u8>) {
        let start = Instant::now();
        loop {
            let live = self.percent();
            if let Some(live) = live
                && seen.last() != Some(&live)
            {
                seen.push(live);
            }
            if live == Some(percent) {
                return;
            }
            if start.elapsed() > RUN_PATIENCE {
                panic!(
                    "the flag never reached {percent}% (saw {seen:?}); status {:#}\n{}",
                    self.rollout()["status"],
                    controller.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The example plan, with second-long stages and checkpoints every second; the determinism
/// gate is left out (its OFREP evaluator would have to follow the ConfigMap; the gates tests
/// cover it against a real flagd evaluator).
fn plan(durations: [&str; 3]) -> Value {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/passenger-favorites-matching.yaml"),
    )
    .expect("read the example");
    let mut plan: Value = serde_saphyr::from_str(&text).expect("the example parses");
    for (stage, duration) in durations.iter().enumerate() {
        plan["spec"]["stages"][stage]["duration"] = json!(duration);
    }
    plan["spec"]["analysis"]["interval"] = json!("1s");
    let gates = plan["spec"]["analysis"]["gates"]
        .as_array_mut()
        .expect("gates");
    gates.retain(|g| g["name"] != "determinism");
    gates[0]["prometheus"]["query"] = json!(ERROR_RATE);
    plan
}

/// One transition: its kind and the percent it left (None for a drift, whose numbers the
/// two sides spell differently).
type Transition = (String, Option<u8>);

const TRANSITIONS: [&str; 7] = [
    "start", "advance", "pause", "resume", "drift", "rollback", "complete",
];

/// The transitions recorded in `status.history`.
fn recorded(status: &Value) -> Vec<Transition> {
    status["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|e| {
                    let kind = e["kind"].as_str()?;
                    TRANSITIONS
                        .contains(&kind)
                        .then(|| transition(kind, &e["percent"]))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn transition(kind: &str, percent: &Value) -> Transition {
    let percent = if kind == "drift" {
        None
    } else {
        percent.as_u64().and_then(|p| u8::try_from(p).ok())
    };
    (kind.to_owned(), percent)
}

/// The transitions `rollgate simulate` decides for `plan` on `scenario`.
fn simulated(plan: &Value, scenario: &str) -> Vec<Transition> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let plan_path = dir.path().join("plan.yaml");
    let scenario_path = dir.path().join("scenario.yaml");
    std::fs::write(
        &plan_path,
        serde_json::to_string_pretty(plan).expect("plan JSON"),
    )
    .expect("write plan");
    std::fs::write(&scenario_path, scenario).expect("write scenario");
    let out = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .arg("simulate")
        .arg(&plan_path)
        .arg("--scenario")
        .arg(&scenario_path)
        .args(["--output", "json"])
        .output()
        .expect("run simulate");
    assert!(
        out.status.success(),
        "simulate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON event"))
        .filter_map(|e| {
            let kind = e["event"].as_str()?.to_owned();
            TRANSITIONS
                .contains(&kind.as_str())
                .then(|| transition(&kind, &e["percent"]))
        })
        .collect()
}

fn phase(status: &Value) -> &str {
    status["phase"].as_str().unwrap_or_default()
}

/// The other flag is untouched: same JSON value as written at the start.
fn assert_other_flag_untouched(world: &World) {
    let expected: Value = serde_json::from_str(OTHER_FLAG).expect("other flag");
    assert_eq!(world.flags()["flags"]["other_flag"], expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_goes_1_5_10_percent_and_matches_simulate_then_sits_idle() {
    let Some(world) = World::start().await else {
        return;
    };
    let plan = plan(["3s", "3s", "3s"]);
    let mut controller = Controller::start(&world.server, &world.prometheus.address, &[]);
    world.apply(&plan).await;

    let mut seen = Vec::new();
    world.wait_percent(10, &controller, &mut seen).await;
    assert_eq!(seen, [1, 5, 10], "the flag went 1 → 5 → 10 %");
    let status = world
        .wait_status("Succeeded", &controller, RUN_PATIENCE, |s| {
            phase(s) == "Succeeded"
        })
        .await;
    assert_eq!(status["percent"], 10);
    assert_other_flag_untouched(&world);

    let scenario = "until: 1h\ngates:\n  error-rate:\n    - {at: 0s, value: 0}\n  critical-alerts:\n    - {at: 0s, value: 0}\n";
    let expected = simulated(&plan, scenario);
    assert_eq!(
        expected,
        [
            ("start".to_owned(), Some(1)),
            ("advance".to_owned(), Some(5)),
            ("advance".to_owned(), Some(10)),
            ("complete".to_owned(), Some(10)),
        ]
    );
    assert_eq!(
        recorded(&status),
        expected,
        "the controller decided as simulate did"
    );

    // A reconcile with nothing due writes nothing: the finished rollout and its target see
    // no writes while the controller keeps running.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mark = world.server.mark();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let writes: Vec<_> = world
        .server
        .requests_since(mark)
        .into_iter()
        .filter(|r| r.is_write() && (r.on("rollouts") || r.on("configmaps")))
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .collect();
    assert!(writes.is_empty(), "idle writes: {writes:?}");
    assert!(
        controller.exited().is_none(),
        "the controller keeps running"
    );
    assert!(
        world
            .server
            .unknown_requests()
            .iter()
            .all(|r| r.contains("featureflags")),
        "requests the stand-in does not serve: {:?}",
        world.server.unknown_requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breach_rolls_back_to_0_as_simulate_does() {
    let Some(world) = World::start().await else {
        return;
    };
    let plan = plan(["2s", "60s", "2s"]);
    let controller = Controller::start(
        &world.server,
        &world.prometheus.address,
        &["--namespace", NAMESPACE],
    );
    world.apply(&plan).await;
    let mut seen = Vec::new();
    world.wait_percent(5, &controller, &mut seen).await;

    // Half the requests fail from now on: the gate fails twice in a row, then rollback.
    world.app.set_rate(500, 100.0);
    let status = world
        .wait_status("RolledBack", &controller, RUN_PATIENCE, |s| {
            phase(s) == "RolledBack"
        })
        .await;
    world.wait_percent(0, &controller, &mut seen).await;
    assert_eq!(seen, [1, 5, 0]);
    assert_eq!(status["percent"], 0);
    assert_other_flag_untouched(&world);

    let scenario = "until: 1h\ngates:\n  error-rate:\n    - {at: 0s, value: 0}\n    - {at: 5s, value: 0.5}\n  critical-alerts:\n    - {at: 0s, value: 0}\n";
    let expected = simulated(&plan, scenario);
    assert_eq!(
        expected,
        [
            ("start".to_owned(), Some(1)),
            ("advance".to_owned(), Some(5)),
            ("rollback".to_owned(), Some(0)),
        ]
    );
    assert_eq!(recorded(&status), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_edit_of_the_config_map_is_reverted_as_simulate_does() {
    let Some(world) = World::start().await else {
        return;
    };
    let plan = plan(["60s", "60s", "60s"]);
    let controller = Controller::start(&world.server, &world.prometheus.address, &[]);
    world.apply(&plan).await;
    let mut seen = Vec::new();
    world.wait_percent(1, &controller, &mut seen).await;

    // Someone raises the flag to 50 % by hand.
    let mut edited = world.flags();
    let targeting = serde_json::to_string(&edited["flags"][FLAG]["targeting"]).expect("targeting");
    let raised = targeting
        .replace(r#"["on",100]"#, r#"["on",5000]"#)
        .replace(r#"["off",9900]"#, r#"["off",5000]"#);
    assert_ne!(
        raised, targeting,
        "the written targeting has the contract's fractional form: {targeting}"
    );
    edited["flags"][FLAG]["targeting"] = serde_json::from_str(&raised).expect("targeting");
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(world.server.client(), NAMESPACE);
    cms.patch(
        CONFIG_MAP,
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {KEY: edited.to_string()}})),
    )
    .await
    .expect("hand edit");
    assert_eq!(world.percent(), Some(50));
    let edited_at = Instant::now();

    world.wait_percent(1, &controller, &mut seen).await;
    let reverted_in = edited_at.elapsed();
    assert!(seen.ends_with(&[50, 1]), "{seen:?}");
    let status = world
        .wait_status("drift recorded", &controller, RUN_PATIENCE, |s| {
            recorded(s).iter().any(|(k, _)| k == "drift")
        })
        .await;
    assert_eq!(phase(&status), "Progressing");
    assert_other_flag_untouched(&world);
    eprintln!("hand edit reverted in {reverted_in:?}");

    let scenario = "until: 30s\ngates:\n  error-rate:\n    - {at: 0s, value: 0}\n  critical-alerts:\n    - {at: 0s, value: 0}\nevents:\n  - {at: 2s, action: drift, percent: 50}\n";
    let expected = simulated(&plan, scenario);
    assert_eq!(
        expected,
        [("start".to_owned(), Some(1)), ("drift".to_owned(), None)]
    );
    assert_eq!(recorded(&status), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_rollout_and_restarted_it_ends_where_an_uninterrupted_run_ends() {
    let Some(world) = World::start().await else {
        return;
    };
    let plan = plan(["3s", "4s", "3s"]);
    let mut controller = Controller::start(&world.server, &world.prometheus.address, &[]);
    world.apply(&plan).await;
    let mut seen = Vec::new();
    world.wait_percent(5, &controller, &mut seen).await;

    controller.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    controller.restart();

    world.wait_percent(10, &controller, &mut seen).await;
    let status = world
        .wait_status("Succeeded", &controller, RUN_PATIENCE, |s| {
            phase(s) == "Succeeded"
        })
        .await;
    assert_eq!(seen, [1, 5, 10]);
    assert_eq!(status["percent"], 10);
    assert_eq!(world.percent(), Some(10));
    let scenario = "until: 1h\ngates:\n  error-rate:\n    - {at: 0s, value: 0}\n  critical-alerts:\n    - {at: 0s, value: 0}\n";
    let expected = simulated(&plan, scenario);
    assert_eq!(
        recorded(&status),
        expected,
        "no transition lost or repeated across the kill"
    );
    // The target's writes, in order, set exactly the plan's percents, each once: no stray
    // value in between, and the restart repeats none (the restarted controller repairs from
    // what the target holds, it does not write the stage's percent again).
    assert_eq!(
        target_percents_written(&world),
        [1, 5, 10],
        "the percents written to the flag, in order, across the kill"
    );
}

/// The rollout flag's percent in each write the controller made to the flagd ConfigMap's
/// content, in the order they reached the stand-in (writes of metadata only — the owner
/// claim — are left out; a write that left the flag out would show as a failure here).
fn target_percents_written(world: &World) -> Vec<u8> {
    world
        .server
        .writes()
        .into_iter()
        .filter(|w| {
            w.on("configmaps")
                && w.name.as_deref() == Some(CONFIG_MAP)
                && w.field_manager.as_deref() != Some("kubectl")
        })
        .filter_map(|w| w.body)
        .filter(|body| !body["data"].is_null())
        .map(|body| {
            let definition = flagd::definition(&body, KEY)
                .unwrap_or_else(|| panic!("a write of the key that is not flagd JSON: {body:#}"));
            flagd::percent(&definition, FLAG, "on")
                .unwrap_or_else(|| panic!("a write without the rollout's flag: {body:#}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_controller_with_exit_status_0_and_probes_answer() {
    let Some(world) = World::start().await else {
        return;
    };
    let mut controller = Controller::start(&world.server, &world.prometheus.address, &[]);
    world.apply(&plan(["60s", "60s", "60s"])).await;
    let mut seen = Vec::new();
    world.wait_percent(1, &controller, &mut seen).await;

    let http = reqwest::Client::new();
    for path in ["healthz", "readyz"] {
        let url = format!("http://{}/{path}", controller.health_address);
        let answer = http.get(&url).send().await.expect("probe answers");
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
    }
    let metrics = http
        .get(format!("http://{}/metrics", controller.metrics_address))
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("rollgate_"),
        "own metrics on /metrics:\n{metrics}"
    );

    let status = controller.terminate(Duration::from_secs(20));
    let status = status.expect("the controller exits within 20 s of SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", controller.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_leader_election_carry_a_rollout_out_once() {
    let Some(world) = World::start().await else {
        return;
    };
    let plan = plan(["3s", "3s", "3s"]);
    let election = [
        "--leader-elect",
        "--leader-election-namespace",
        NAMESPACE,
        "--leader-election-id",
        "rollgate-e2e",
    ];
    let first = Controller::start(&world.server, &world.prometheus.address, &election);
    let second = Controller::start(&world.server, &world.prometheus.address, &election);
    world.apply(&plan).await;

    let mut seen = Vec::new();
    world.wait_percent(10, &first, &mut seen).await;
    let status = world
        .wait_status("Succeeded", &second, RUN_PATIENCE, |s| {
            phase(s) == "Succeeded"
        })
        .await;
    assert_eq!(seen, [1, 5, 10]);
    let lease = world
        .server
        .object("leases", NAMESPACE, "rollgate-e2e")
        .expect("a Lease named by --leader-election-id");
    assert!(
        lease["spec"]["holderIdentity"]
            .as_str()
            .is_some_and(|h| !h.is_empty()),
        "{lease:#}"
    );
    let scenario = "until: 1h\ngates:\n  error-rate:\n    - {at: 0s, value: 0}\n  critical-alerts:\n    - {at: 0s, value: 0}\n";
    assert_eq!(
        recorded(&status),
        simulated(&plan, scenario),
        "one replica decided, as simulate did: no transition twice"
    );
    assert_eq!(
        target_percents_written(&world),
        [1, 5, 10],
        "one write per percent, in order"
    );
}

/// `--namespace` twice: each namespace has its own watches and caches, so the Rollouts of one
/// are not lost when the other's first list arrives, and the controller is ready only once
/// both have synced. The stand-in holds every LIST and WATCH of the second namespace for a
/// while: `/readyz` answers not ready all that time, ready soon after the release, and the
/// Rollouts of both namespaces then run to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_namespaces_are_each_watched_and_readiness_waits_for_both() {
    let Some(world) = World::start().await else {
        return;
    };
    const SECOND: &str = "second";
    let definition = format!(
        r#"{{"$schema":"https://flagd.dev/schema/v0/flags.json","flags":{{"other_flag":{OTHER_FLAG}}}}}"#
    );
    world.server.put(
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIG_MAP, "namespace": SECOND},
            "data": {KEY: definition}
        }),
        "kubectl",
    );
    let plan = plan(["3s", "3s", "3s"]);
    let mut second_plan = plan.clone();
    second_plan["metadata"]["namespace"] = json!(SECOND);
    world.apply(&plan).await;
    let gvk = GroupVersionKind::gvk("rollgate.dev", "v1alpha1", "Rollout");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "rollouts");
    let api: Api<DynamicObject> = Api::namespaced_with(world.server.client(), SECOND, &resource);
    api.patch(
        NAME,
        &PatchParams::apply("kubectl"),
        &Patch::Apply(&second_plan),
    )
    .await
    .expect("apply the second Rollout");

    world.server.hold(SECOND);
    let namespaces = ["--namespace", SECOND, "--namespace", NAMESPACE];
    let mut controller = Controller::start(&world.server, &world.prometheus.address, &namespaces);
    let url = format!("http://{}/readyz", controller.health_address);
    let http = reqwest::Client::new();
    // While the second namespace cannot sync, the probe answers, and answers not ready.
    let held_since = Instant::now();
    let mut not_ready = 0;
    while held_since.elapsed() < Duration::from_secs(4) {
        controller.assert_running();
        if let Some(status) = readyz(&http, &url).await {
            assert!(
                !status.is_success(),
                "ready while {SECOND}'s lists and watches are held: {status}\n{}",
                controller.log()
            );
            not_ready += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        not_ready >= 10,
        "the probe answered (not ready) only {not_ready} times in 4 s\n{}",
        controller.log()
    );
    let kaviar_synced = world
        .server
        .requests()
        .iter()
        .any(|r| r.on("rollouts") && r.namespace.as_deref() == Some(NAMESPACE));
    assert!(kaviar_synced, "{NAMESPACE}'s Rollouts were read meanwhile");

    world.server.release(SECOND);
    let released = Instant::now();
    loop {
        if readyz(&http, &url).await.is_some_and(|s| s.is_success()) {
            break;
        }
        assert!(
            released.elapsed() < Duration::from_secs(20),
            "not ready 20 s after both namespaces could sync\n{}",
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let status = world
        .wait_status("Succeeded", &controller, RUN_PATIENCE, |s| {
            phase(s) == "Succeeded"
        })
        .await;
    assert_eq!(status["percent"], 10);
    let start = Instant::now();
    let second = loop {
        let status = world
            .server
            .object("rollouts", SECOND, NAME)
            .map(|r| r["status"].clone())
            .unwrap_or(Value::Null);
        if phase(&status) == "Succeeded" {
            break status;
        }
        assert!(
            start.elapsed() < RUN_PATIENCE,
            "the Rollout in {SECOND} never succeeded: {status:#}\n{}",
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(second["percent"], 10);
    let cm = world
        .server
        .object("configmaps", SECOND, CONFIG_MAP)
        .expect("the second ConfigMap");
    let flags = flagd::definition(&cm, KEY).expect("flagd JSON");
    assert_eq!(flagd::percent(&flags, FLAG, "on"), Some(10), "{flags:#}");
    assert_eq!(world.percent(), Some(10));

    let status = controller.terminate(Duration::from_secs(20));
    assert_eq!(status.expect("exits").code(), Some(0));
}

/// The status `/readyz` answers at `url`, or None when it does not answer (yet).
async fn readyz(http: &reqwest::Client, url: &str) -> Option<reqwest::StatusCode> {
    http.get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()
        .map(|a| a.status())
}

/// Applies `rollout` (a whole Rollout object) as `kubectl apply --server-side` would.
async fn apply_rollout(server: &ApiServer, rollout: &Value) {
    let gvk = GroupVersionKind::gvk("rollgate.dev", "v1alpha1", "Rollout");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "rollouts");
    let namespace = rollout["metadata"]["namespace"]
        .as_str()
        .unwrap_or(NAMESPACE);
    let name = rollout["metadata"]["name"].as_str().unwrap_or(NAME);
    let api: Api<DynamicObject> = Api::namespaced_with(server.client(), namespace, &resource);
    api.patch(name, &PatchParams::apply("kubectl"), &Patch::Apply(rollout))
        .await
        .expect("apply the Rollout");
}

/// docs/design.md §8, fencing on SIGTERM: a reconcile in flight when SIGTERM arrives (its
/// webhook target answers after 3 s) finishes its writes; only then is the Lease released;
/// nothing is written after the release; the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_reconcile_in_flight_write_then_releases_the_lease_and_nothing_after() {
    const LEASE: &str = "rollgate-sigterm";
    const SLOW: Duration = Duration::from_secs(3);
    let server = ApiServer::start().await;
    let hook = Fake::start(Canned {
        delay: SLOW,
        ..Canned::ok(r#"{"percent": 0}"#)
    });
    let url = format!("{}/percent", hook.address());
    let mut controller = Controller::start(
        &server,
        "http://127.0.0.1:9",
        &[
            "--allow-address",
            &hook.address(),
            "--namespace",
            NAMESPACE,
            "--leader-elect",
            "--leader-election-namespace",
            NAMESPACE,
            "--leader-election-id",
            LEASE,
        ],
    );
    apply_rollout(
        &server,
        &json!({
            "apiVersion": "rollgate.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "slow-hook", "namespace": NAMESPACE},
            "spec": {
                "target": {"webhook": {"url": url}},
                "stages": [{"percent": 1, "duration": "1h"}, {"percent": 100}]
            }
        }),
    )
    .await;
    // The start's PUT has reached the webhook, which answers 3 s later: SIGTERM now.
    let start = Instant::now();
    while !hook.requests().iter().any(|r| r.line.starts_with("PUT ")) {
        controller.assert_running();
        assert!(
            start.elapsed() < RUN_PATIENCE,
            "the webhook never got a PUT: {:?}\n{}",
            hook.requests(),
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mark = server.mark();
    let signalled = std::time::Instant::now();
    let exit = controller.terminate(Duration::from_secs(30));
    let exit = exit.unwrap_or_else(|| panic!("exits within 30 s of SIGTERM\n{}", controller.log()));
    assert_eq!(exit.code(), Some(0), "{}", controller.log());

    let after = server.requests_since(mark);
    let releases: Vec<usize> = after
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.on("leases")
                && r.name.as_deref() == Some(LEASE)
                && r.is_write()
                && r.body
                    .as_ref()
                    .is_some_and(|b| b["spec"].get("holderIdentity") == Some(&Value::Null))
        })
        .map(|(i, _)| i)
        .collect();
    let [release] = releases[..] else {
        panic!(
            "one release of the Lease after SIGTERM, saw {releases:?} in {after:#?}\n{}",
            controller.log()
        );
    };
    // The reconcile in flight finished after SIGTERM: the webhook's answer came (the
    // controller logged the write) and its Event was posted, all before the release. (Its
    // status, recording the start at 1 % with the target write pending, went out before the
    // PUT, as the write order wants.)
    let log = controller.log();
    let wrote = log
        .find("wrote webhook target")
        .unwrap_or_else(|| panic!("the webhook write completed\n{log}"));
    let releasing = log
        .find("releasing the Lease")
        .unwrap_or_else(|| panic!("the Lease release is logged\n{log}"));
    assert!(
        wrote < releasing,
        "the write completed before the release\n{log}"
    );
    let before = server.requests();
    assert!(
        before[..mark].iter().any(|r| r.is_write()
            && r.on("rollouts")
            && r.body.as_ref().is_some_and(|b| b["status"]["percent"] == 1)),
        "the start at 1 % was recorded before the PUT"
    );
    let in_flight: Vec<_> = after[..release]
        .iter()
        .filter(|r| r.is_write() && !r.on("leases"))
        .collect();
    assert!(
        in_flight.iter().any(|r| r.on("events")),
        "the reconcile in flight posted its Event before the release: {after:#?}"
    );
    for write in &in_flight {
        assert!(
            write.at.duration_since(signalled) + Duration::from_millis(500) >= SLOW,
            "a write {:?} after SIGTERM, before the webhook answered: {write:?}",
            write.at.duration_since(signalled)
        );
    }
    assert!(
        after[release].at.duration_since(signalled) + Duration::from_millis(500) >= SLOW,
        "released {:?} after SIGTERM, before the webhook (answering after {SLOW:?}) could answer",
        after[release].at.duration_since(signalled)
    );
    // Nothing after the release.
    let late: Vec<_> = after[release + 1..]
        .iter()
        .filter(|r| r.is_write())
        .collect();
    assert!(late.is_empty(), "writes after the release: {late:#?}");
    // The webhook got the one PUT in flight, and no other.
    let puts: Vec<_> = hook
        .requests()
        .into_iter()
        .filter(|r| r.line.starts_with("PUT "))
        .collect();
    assert_eq!(puts.len(), 1, "{puts:#?}");
    let body: Value = serde_json::from_str(&puts[0].body).expect("a JSON PUT");
    assert_eq!(body["percent"], 1, "{body}");
}

/// Issue 11 rule 2: an address that is one of the API server's endpoints (the EndpointSlices
/// of `default/kubernetes`, which the controller reads at the start) is refused even when a
/// range rule covers it, and the message names the `--allow-address` entry that would allow it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_at_an_endpoint_of_the_api_server_is_refused_naming_the_rule_that_allows_it() {
    let server = ApiServer::start().await;
    server.put(
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.255.0.7"]}],
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]
        }),
        "kube-apiserver",
    );
    server.put(
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "plain", "namespace": NAMESPACE},
            "data": {"percent": "0"}
        }),
        "kubectl",
    );
    let mut controller = Controller::start(
        &server,
        "http://127.0.0.1:9",
        &["--allow-address", "10.0.0.0/8", "--namespace", NAMESPACE],
    );
    apply_rollout(
        &server,
        &json!({
            "apiVersion": "rollgate.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "to-the-api-server", "namespace": NAMESPACE},
            "spec": {
                "target": {"configMap": {"name": "plain", "key": "percent"}},
                "stages": [{"percent": 1, "duration": "1h"}, {"percent": 100}],
                "analysis": {"interval": "1s", "gates": [{
                    "name": "sneaky",
                    "prometheus": {"address": "http://10.255.0.7:6443", "query": "up"},
                    "max": 1
                }]}
            }
        }),
    )
    .await;
    let start = Instant::now();
    let status = loop {
        controller.assert_running();
        let status = server
            .object("rollouts", NAMESPACE, "to-the-api-server")
            .map(|r| r["status"].clone())
            .unwrap_or(Value::Null);
        if status.to_string().contains("--allow-address 10.255.0.7/32") {
            break status;
        }
        assert!(
            start.elapsed() < RUN_PATIENCE,
            "never refused naming the rule: {status:#}\n{}",
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(phase(&status), "Pending", "{status:#}");
    assert!(
        status.to_string().contains("an endpoint of the API server"),
        "{status:#}"
    );
    let cm = server
        .object("configmaps", NAMESPACE, "plain")
        .expect("the ConfigMap");
    assert_eq!(cm["data"]["percent"], "0", "the target is untouched");
    // The endpoints were read as the chart's Role allows: a list in default, by label.
    let reads: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.on("endpointslices"))
        .collect();
    assert!(!reads.is_empty(), "the EndpointSlices were read");
    for read in &reads {
        assert_eq!(read.namespace.as_deref(), Some("default"), "{read:?}");
        assert!(
            read.query
                .contains("labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes"),
            "{read:?}"
        );
    }
    let _ = controller.terminate(Duration::from_secs(20));
}

/// A webhook target that answers GET at once with `{"percent": 0}` and lets every PUT hang
/// for a minute; it records when each PUT arrived.
struct HangingHook {
    address: std::net::SocketAddr,
    puts: std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
}

impl HangingHook {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the hook");
        let address = listener.local_addr().expect("address");
        let puts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = puts.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let Ok(request) = support::wire::read_request(&stream) else {
                        return;
                    };
                    if request.line.starts_with("PUT ") {
                        if let Ok(mut puts) = seen.lock() {
                            puts.push(std::time::Instant::now());
                        }
                        std::thread::sleep(Duration::from_secs(60));
                    }
                    let _ = support::wire::write_response(
                        &stream,
                        200,
                        "application/json",
                        br#"{"percent": 0}"#,
                        true,
                    );
                });
            }
        });
        Self { address, puts }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn puts(&self) -> Vec<std::time::Instant> {
        self.puts.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

/// docs/design.md §8, fencing on SIGTERM, the other branch: a reconcile in flight whose
/// webhook never answers is abandoned at the reconcile deadline (`--reconcile-timeout 6s`)
/// with nothing written after SIGTERM; only then is the Lease released; the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_abandons_a_hanging_reconcile_at_its_deadline_before_releasing_the_lease() {
    const LEASE: &str = "rollgate-abandon";
    const DEADLINE: Duration = Duration::from_secs(6);
    let server = ApiServer::start().await;
    let hook = HangingHook::start();
    let mut controller = Controller::start(
        &server,
        "http://127.0.0.1:9",
        &[
            "--allow-address",
            &hook.url(),
            "--namespace",
            NAMESPACE,
            "--reconcile-timeout",
            "6s",
            "--leader-elect",
            "--leader-election-namespace",
            NAMESPACE,
            "--leader-election-id",
            LEASE,
        ],
    );
    apply_rollout(
        &server,
        &json!({
            "apiVersion": "rollgate.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "hanging-hook", "namespace": NAMESPACE},
            "spec": {
                "target": {"webhook": {"url": format!("{}/percent", hook.url())}},
                "stages": [{"percent": 1, "duration": "1h"}, {"percent": 100}]
            }
        }),
    )
    .await;
    let start = Instant::now();
    while hook.puts().is_empty() {
        controller.assert_running();
        assert!(
            start.elapsed() < RUN_PATIENCE,
            "the webhook never got a PUT\n{}",
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mark = server.mark();
    let exit = controller.terminate(Duration::from_secs(30));
    let exit = exit.unwrap_or_else(|| panic!("exits within 30 s of SIGTERM\n{}", controller.log()));
    assert_eq!(exit.code(), Some(0), "{}", controller.log());
    let put_at = hook.puts()[0];

    let after = server.requests_since(mark);
    let writes: Vec<_> = after.iter().filter(|r| r.is_write()).collect();
    let [release] = writes[..] else {
        panic!(
            "after SIGTERM, one write only, the Lease's release: {writes:#?}\n{}",
            controller.log()
        );
    };
    assert!(
        release.on("leases")
            && release.name.as_deref() == Some(LEASE)
            && release
                .body
                .as_ref()
                .is_some_and(|b| b["spec"].get("holderIdentity") == Some(&Value::Null)),
        "{release:?}"
    );
    // Released once the reconcile was abandoned at its deadline, not before: the controller
    // logs the abandonment before the release (one process, one log, in order). The reconcile
    // began before the PUT (a write may first wait for a Lease renewal that leaves it enough
    // time), so the release comes at most the deadline after the PUT began — never after the
    // hanging webhook's 60 s.
    let log = controller.log();
    let abandoned = log
        .rfind("hanging-hook did not finish within 6s; abandoned")
        .unwrap_or_else(|| panic!("the reconcile was never abandoned at its deadline\n{log}"));
    let released = log
        .find("released the lease")
        .unwrap_or_else(|| panic!("the Lease's release is not logged\n{log}"));
    assert!(
        abandoned < released,
        "the Lease was released before the reconcile in flight was abandoned\n{log}"
    );
    let waited = release.at.duration_since(put_at);
    assert!(
        waited < DEADLINE + Duration::from_secs(2),
        "released {waited:?} after the PUT began (deadline {DEADLINE:?})\n{log}"
    );
    assert_eq!(hook.puts().len(), 1, "no second PUT");
}
