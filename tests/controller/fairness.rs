//! Bounded time and fair shares, end to end: the controller (in this process, through
//! `rollgate::controller::run`) against the stand-in API server, with gates injected.
//!
//! - A Pending rollout whose pre-check error text changes at every call is retried on its
//!   backoff, not at each of its own status writes: one status write per backoff step.
//! - Touching the Rollout (an annotation) re-runs the pre-checks at once.
//! - One namespace full of Rollouts whose gates never answer does not stall another
//!   namespace's rollout.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::Reporter;
use rollgate::api::{Rollout, RolloutStatus};
use rollgate::controller::Recorder;
use rollgate::controller::{
    AlwaysLeader, Context, ControllerConfig, GateObserver, GateReading, KubeTargets, Slots,
    SystemClock, reading, run,
};
use rollgate::engine::Observation;
use serde_json::{Value, json};
use support::apiserver::{ApiServer, Logged};

/// Gates: in namespaces named `hang-*` they never answer; elsewhere they fail with a new text
/// at every call when `changing`, or pass.
struct Gates {
    calls: AtomicUsize,
    changing: bool,
}

impl GateObserver for Gates {
    fn observe<'a>(
        &'a self,
        rollout: &'a Rollout,
        _status: &'a RolloutStatus,
        _at: Timestamp,
    ) -> BoxFuture<'a, Vec<GateReading>> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let hang = rollout
            .metadata
            .namespace
            .as_deref()
            .is_some_and(|ns| ns.starts_with("hang-"));
        let gates = rollout.spec.analysis.gates.len();
        let observation = if self.changing {
            Observation::Error(format!("connection refused (attempt {call})"))
        } else {
            Observation::Value(0.0)
        };
        async move {
            if hang {
                std::future::pending::<()>().await;
            }
            (0..gates).map(|_| reading(observation.clone())).collect()
        }
        .boxed()
    }
}

fn config_map(namespace: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "demo", "namespace": namespace},
        "data": {"percent": "0"}
    })
}

fn rollout(namespace: &str, name: &str) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "target": {"configMap": {"name": "demo", "key": "percent"}},
            "stages": [{"percent": 5, "duration": "1h"}, {"percent": 50, "duration": "1h"}],
            "analysis": {"interval": "1s", "gates": [
                {"name": "error-rate", "prometheus": {"query": "vector(0)"}, "max": 0.01}
            ]}
        }
    }))
    .expect("a rollout")
}

/// Runs the controller over `server` until the returned sender fires.
fn start_controller(
    server: &ApiServer,
    gates: Arc<Gates>,
    slots: Slots,
    pending_backoff: Duration,
) -> tokio::sync::oneshot::Sender<()> {
    let client = server.client();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    }
    .boxed()
    .shared();
    let config = ControllerConfig {
        namespaces: Vec::new(),
        concurrency: u16::try_from(slots.total()).unwrap_or(u16::MAX),
        readiness: None,
        default_service_account: None,
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "rollgate".into(),
            instance: None,
        },
    );
    let context_client = client.clone();
    tokio::spawn(run(
        client,
        config,
        move |config_maps, feature_flags| {
            Context::new(
                context_client.clone(),
                recorder.clone(),
                Arc::new(SystemClock),
                gates.clone(),
                Arc::new(KubeTargets::new(
                    context_client.clone(),
                    Some(config_maps),
                    feature_flags,
                )),
                Arc::new(AlwaysLeader),
            )
            .with_slots(slots.clone())
            .with_pending_backoff(pending_backoff)
        },
        shutdown,
    ));
    stop
}

fn status_writes(requests: &[Logged], namespace: &str, name: &str) -> Vec<Logged> {
    requests
        .iter()
        .filter(|r| r.is_write() && r.on("rollouts") && r.subresource.as_deref() == Some("status"))
        .filter(|r| r.namespace.as_deref() == Some(namespace) && r.name.as_deref() == Some(name))
        .cloned()
        .collect()
}

fn event_writes(requests: &[Logged]) -> usize {
    requests
        .iter()
        .filter(|r| r.is_write() && r.on("events"))
        .count()
}

async fn create(server: &ApiServer, namespace: &str, name: &str) {
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(server.client(), namespace);
    if cms.get_opt("demo").await.expect("get").is_none() {
        let cm = serde_json::from_value(config_map(namespace)).expect("a ConfigMap");
        cms.create(&PostParams::default(), &cm)
            .await
            .expect("create the ConfigMap");
    }
    let rollouts: Api<Rollout> = Api::namespaced(server.client(), namespace);
    rollouts
        .create(&PostParams::default(), &rollout(namespace, name))
        .await
        .expect("create the Rollout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changing_precheck_error_writes_once_per_backoff_step() {
    let server = ApiServer::start().await;
    let gates = Arc::new(Gates {
        calls: AtomicUsize::new(0),
        changing: true,
    });
    let base = Duration::from_millis(250);
    let stop = start_controller(&server, gates.clone(), Slots::new(64, 4), base);
    let began = Instant::now();
    create(&server, "team", "demo").await;

    // Backoff steps from the first reconcile: 0.25, 0.5, 1, 2 s — reconciles at about 0,
    // 0.25, 0.75, 1.75 and 3.75 s. Watch 3.25 s: four reconciles, each one status write.
    tokio::time::sleep(Duration::from_millis(3250)).await;
    let requests = server.requests();
    for r in &requests {
        eprintln!(
            "{:?} {} {} {} {:?}",
            r.at - began,
            r.method,
            r.path,
            r.query,
            r.verb
        );
    }
    let writes = status_writes(&requests, "team", "demo");
    let messages: Vec<String> = writes
        .iter()
        .filter_map(|w| w.body.as_ref())
        .map(|b| {
            b["status"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(
        (3..=5).contains(&writes.len()),
        "{} status writes in 3.25 s with a 250 ms base backoff (expected 4): {messages:#?}",
        writes.len()
    );
    assert!(
        messages.last().is_some_and(|m| m.contains("attempt")),
        "the latest text is shown: {messages:?}"
    );
    // The gaps between writes grow: the backoff holds.
    let gaps: Vec<Duration> = writes.windows(2).map(|w| w[1].at - w[0].at).collect();
    for pair in gaps.windows(2) {
        assert!(pair[1] > pair[0], "the backoff doubles: {gaps:?}");
    }
    assert!(
        event_writes(&requests) <= writes.len(),
        "at most one Event per status write"
    );
    assert!(gates.calls.load(Ordering::SeqCst) <= writes.len() + 1);

    // Touching the Rollout re-runs the pre-checks at once, not at the next step (2 s away).
    let mark = server.mark();
    let touched = Instant::now();
    let rollouts: Api<Rollout> = Api::namespaced(server.client(), "team");
    rollouts
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"touched": "now"}}})),
        )
        .await
        .expect("annotate");
    support::eventually(
        "a status write after the touch",
        || async { status_writes(&server.requests_since(mark), "team", "demo").len() },
        |n| *n >= 1,
    )
    .await;
    assert!(
        touched.elapsed() < Duration::from_millis(1500),
        "the pre-checks ran again at once ({:?} after the touch, {:?} after the start)",
        touched.elapsed(),
        began.elapsed()
    );
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_of_hanging_rollouts_does_not_stall_another_namespace() {
    let server = ApiServer::start().await;
    let gates = Arc::new(Gates {
        calls: AtomicUsize::new(0),
        changing: false,
    });
    // The pre-checks of every Rollout in `hang-noisy` never answer.
    for i in 0..16 {
        create(&server, "hang-noisy", &format!("stuck-{i}")).await;
    }
    let mark = server.mark();
    let stop = start_controller(&server, gates, Slots::new(16, 4), Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let began = Instant::now();
    create(&server, "quiet", "demo").await;
    support::eventually(
        "the quiet namespace's rollout starts",
        || async {
            server
                .object("rollouts", "quiet", "demo")
                .and_then(|r| r["status"]["phase"].as_str().map(str::to_owned))
        },
        |phase| phase.as_deref() == Some("Progressing"),
    )
    .await;
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "the quiet namespace waited {:?}",
        began.elapsed()
    );
    let noisy_writes = server
        .requests_since(mark)
        .iter()
        .filter(|r| r.is_write() && r.namespace.as_deref() == Some("hang-noisy"))
        .count();
    assert_eq!(noisy_writes, 0, "the hanging rollouts wrote nothing");
    let _ = stop.send(());
}
