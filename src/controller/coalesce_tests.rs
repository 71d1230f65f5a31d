//! Routine status writes folded under a saturated API budget, with a paused tokio clock: the
//! whole reconcile runs against a small stand-in API (status subresource with resourceVersion
//! preconditions, Events), gates that answer by checkpoint time and an in-memory target.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::controller::Recorder;
use futures_util::future::BoxFuture;
use http::{Method, Request, Response};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::client::Body;
use kube::runtime::events::Reporter;
use serde_json::{Value, json};
use tokio::time::Instant;
use tower_test::mock::{self, Handle};

use super::*;
use crate::api::{Percent, Phase, Rollout, RolloutSpec, RolloutStatus};
use crate::controller::budget::ApiBudget;
use crate::controller::context::{AlwaysLeader, Clock};
use crate::controller::observe::{GateObserver, GateReading, reading};
use crate::controller::reconcile::reconcile;
use crate::controller::target::TargetIo;
use crate::engine::{self, Inputs, Observation};
use crate::targets::{TargetError, WriteMode, WriteOutcome};

const PLAN: &str = r#"
target:
  configMap: {name: pct, key: percent}
stages:
  - {percent: 1, duration: 2h}
  - {percent: 5, duration: 2h}
analysis:
  interval: 1m
  gates:
    - name: error-rate
      prometheus: {query: 'sum(rate(errors[5m]))'}
      max: 0.01
      failureLimit: 2
"#;

fn t0() -> Timestamp {
    "2026-02-01T19:18:00Z".parse().expect("a time")
}

/// The wall clock moves with tokio's (paused) clock.
struct TokioClock(Instant);

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed = SignedDuration::try_from(self.0.elapsed()).expect("a duration");
        t0().checked_add(elapsed).expect("a time")
    }
}

/// Checkpoint k (1-based, k minutes after the start) fails when k % 3 == 1 up to 30, passes at
/// 29 and 30, and fails from 31 on: `failures` moves up and down, and the rollout rolls back
/// at checkpoint 32.
fn value_at(at: Timestamp) -> f64 {
    let k = (at - t0()).get_seconds() / 60;
    if k > 30 || (k <= 28 && k % 3 == 1) {
        0.5
    } else {
        0.0
    }
}

#[derive(Default)]
struct Gates {
    calls: Mutex<Vec<Timestamp>>,
}

impl GateObserver for Gates {
    fn observe<'a>(
        &'a self,
        _rollout: &'a Rollout,
        _status: &'a RolloutStatus,
        at: Timestamp,
    ) -> BoxFuture<'a, Vec<GateReading>> {
        self.calls.lock().expect("lock").push(at);
        Box::pin(async move { vec![reading(Observation::Value(value_at(at)))] })
    }
}

/// The target: its percent and when each write arrived.
struct Target {
    percent: Mutex<Percent>,
    writes: Mutex<Vec<(Instant, Percent)>>,
}

impl TargetIo for Target {
    fn read<'a>(
        &'a self,
        _rollout: &'a Rollout,
    ) -> BoxFuture<'a, Result<Option<Percent>, TargetError>> {
        let percent = *self.percent.lock().expect("lock");
        Box::pin(async move { Ok(Some(percent)) })
    }

    fn write<'a>(
        &'a self,
        _rollout: &'a Rollout,
        percent: Percent,
        _mode: WriteMode,
    ) -> BoxFuture<'a, Result<WriteOutcome, TargetError>> {
        *self.percent.lock().expect("lock") = percent;
        self.writes
            .lock()
            .expect("lock")
            .push((Instant::now(), percent));
        Box::pin(async { Ok(WriteOutcome::Written) })
    }
}

/// The stand-in API's state: the Rollout as stored, and every status write it accepted.
struct Stored {
    rollout: Rollout,
    version: u64,
    status_writes: Vec<RolloutStatus>,
    /// Status writes get no answer while set.
    hang: bool,
}

async fn serve(mut handle: Handle<Request<Body>, Response<Body>>, stored: Arc<Mutex<Stored>>) {
    let mut unanswered = Vec::new();
    while let Some((request, send)) = handle.next_request().await {
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        if stored.lock().expect("lock").hang {
            unanswered.push(send);
            continue;
        }
        let bytes = request.into_body().collect_bytes().await.expect("a body");
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let (code, answer) = if method == Method::PATCH && path.ends_with("/demo/status") {
            let mut stored = stored.lock().expect("lock");
            let precondition = body["metadata"]["resourceVersion"].as_str();
            if precondition.is_some_and(|v| v != stored.version.to_string()) {
                (
                    409,
                    json!({"kind": "Status", "code": 409, "reason": "Conflict"}),
                )
            } else {
                let status: RolloutStatus =
                    serde_json::from_value(body["status"].clone()).expect("a status");
                stored.version += 1;
                stored.rollout.metadata.resource_version = Some(stored.version.to_string());
                stored.rollout.status = Some(status.clone());
                stored.status_writes.push(status);
                (200, serde_json::to_value(&stored.rollout).expect("json"))
            }
        } else if path.contains("/events") {
            (201, body)
        } else {
            panic!("unexpected request: {method} {path}");
        };
        send.send_response(
            Response::builder()
                .status(code)
                .body(Body::from(serde_json::to_vec(&answer).expect("json")))
                .expect("a response"),
        );
    }
}

struct World {
    flusher: tokio::task::JoinHandle<()>,
    ctx: Arc<Context>,
    stored: Arc<Mutex<Stored>>,
    gates: Arc<Gates>,
    target: Arc<Target>,
    start: Instant,
}

/// A rollout started at t0 (target at 1%), its world under `budget`, and the flusher running.
fn world(budget: ApiBudget) -> World {
    let spec: RolloutSpec = serde_saphyr::from_str(PLAN).expect("a plan");
    let mut status = RolloutStatus::default();
    engine::decide(
        &spec,
        &mut status,
        &Inputs::at(t0()).with_generation(Some(1)),
    );
    status.target_pending = false;
    status.update_conditions(t0());
    let mut rollout = Rollout::new("demo", spec);
    rollout.metadata.namespace = Some("kaviar".into());
    rollout.metadata.uid = Some("uid-1".into());
    rollout.metadata.generation = Some(1);
    rollout.metadata.resource_version = Some("1".into());
    rollout.status = Some(status);
    let stored = Arc::new(Mutex::new(Stored {
        rollout,
        version: 1,
        status_writes: Vec::new(),
        hang: false,
    }));
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(serve(handle, Arc::clone(&stored)));
    let client = kube::Client::new(service, "default");
    let gates = Arc::new(Gates::default());
    let target = Arc::new(Target {
        percent: Mutex::new(Percent::whole(1)),
        writes: Mutex::new(Vec::new()),
    });
    let start = Instant::now();
    let ctx = Context::new(
        client.clone(),
        Recorder::new(
            client,
            Reporter {
                controller: "rollgate".into(),
                instance: None,
            },
        ),
        Arc::new(TokioClock(start)),
        Arc::clone(&gates) as Arc<dyn GateObserver>,
        Arc::clone(&target) as Arc<dyn TargetIo>,
        Arc::new(AlwaysLeader),
    )
    .with_budget(budget);
    let ctx = Arc::new(ctx);
    let flusher = tokio::spawn(flusher(Arc::clone(&ctx)));
    World {
        flusher,
        ctx,
        stored,
        gates,
        target,
        start,
    }
}

impl World {
    /// Reconciles at checkpoints `from..=to` (minutes after the start), each from the Rollout
    /// as the API stores it (what the watch cache would hold).
    async fn checkpoints(&self, from: u64, to: u64) {
        for k in from..=to {
            tokio::time::sleep_until(self.start + Duration::from_secs(60 * k)).await;
            let cached = self.stored.lock().expect("lock").rollout.clone();
            reconcile(Arc::new(cached), Arc::clone(&self.ctx))
                .await
                .expect("reconciled");
        }
    }

    fn api_status(&self) -> RolloutStatus {
        let stored = self.stored.lock().expect("lock");
        stored.rollout.status.clone().expect("a status")
    }

    fn status_writes(&self) -> usize {
        self.stored.lock().expect("lock").status_writes.len()
    }

    fn parked(&self) -> usize {
        self.ctx.memory().parked.len()
    }
}

/// `n` other Rollouts' routine writes, forever: every token is wanted.
fn saturate(budget: &ApiBudget, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let budget = budget.clone();
            tokio::spawn(async move {
                loop {
                    budget.acquire(Priority::Routine).await;
                }
            })
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn routine_checkpoints_fold_under_a_saturated_budget_and_the_api_gets_the_same_statuses() {
    // Unlimited: every checkpoint's status is written.
    let free = world(ApiBudget::unlimited());
    free.checkpoints(1, 32).await;
    assert_eq!(free.api_status().phase, Some(Phase::RolledBack));
    assert_eq!(free.status_writes(), 32);

    // One write a second, 200 other routine writers: the flusher gets a token every ~200 s.
    let budget = ApiBudget::new(1, 1);
    let others = saturate(&budget, 200);
    let busy = world(budget);
    busy.checkpoints(1, 31).await;
    let routine_writes = busy.status_writes();
    assert!(
        routine_writes <= 31 / 3,
        "{routine_writes} status writes for 31 routine checkpoints"
    );
    assert_eq!(busy.parked(), 1, "the latest routine status is parked");
    assert!(busy.ctx.memory().parked.folded() >= 20);
    // Each checkpoint ran exactly once: decided from the parked status, never re-run.
    assert_eq!(busy.gates.calls.lock().expect("lock").len(), 31);

    // The rollback is not behind the parked writes: its status and target go at once.
    let asked = busy.start + Duration::from_secs(60 * 32);
    busy.checkpoints(32, 32).await;
    let (written_at, percent) = *busy
        .target
        .writes
        .lock()
        .expect("lock")
        .last()
        .expect("the rollback wrote the target");
    assert_eq!(percent, Percent::ZERO);
    assert!(
        written_at - asked <= Duration::from_secs(3),
        "the rollback's target write came {:?} after its checkpoint",
        written_at - asked
    );
    assert_eq!(
        busy.parked(),
        0,
        "the rollback's write supersedes the parked one"
    );
    assert_eq!(busy.gates.calls.lock().expect("lock").len(), 32);
    // Every transition and counter change reached the API: the same status as without a limit.
    assert_eq!(busy.api_status(), free.api_status());
    for task in others {
        task.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn a_parked_status_decides_the_next_checkpoint_and_its_counters_are_kept() {
    let free = world(ApiBudget::unlimited());
    free.checkpoints(1, 4).await;
    let budget = ApiBudget::new(1, 1);
    let others = saturate(&budget, 500);
    let busy = world(budget);
    busy.checkpoints(1, 4).await;
    assert_eq!(
        busy.status_writes(),
        0,
        "every token went to the 500 others first"
    );
    assert_eq!(busy.parked(), 1);
    // The parked status is the latest: checkpoint 4 failed after 2 and 3 passed (1 failed).
    let parked = busy.ctx.memory().parked.entries[&("kaviar".into(), "demo".into())]
        .status
        .clone();
    assert_eq!(parked, free.api_status());
    assert_eq!(parked.gates[0].failures, 1);
    for task in others {
        task.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_writes_what_is_parked_before_the_lease_goes() {
    let free = world(ApiBudget::unlimited());
    free.checkpoints(1, 10).await;
    let budget = ApiBudget::new(1, 1);
    let others = saturate(&budget, 500);
    let busy = world(budget);
    busy.checkpoints(1, 10).await;
    assert_eq!(busy.parked(), 1);
    // Still saturated and too short a limit: what is left is reported, and still parked.
    assert_eq!(flush(&busy.ctx, Duration::from_millis(500)).await, 1);
    assert_eq!(busy.parked(), 1);
    // Reconciles stopped (so did the other writers): everything is written within the limit.
    for task in others {
        task.abort();
    }
    assert_eq!(flush(&busy.ctx, SHUTDOWN_FLUSH).await, 0);
    assert_eq!(busy.parked(), 0);
    assert_eq!(busy.api_status(), free.api_status());
}

#[tokio::test(start_paused = true)]
async fn a_parked_write_cut_off_at_shutdown_goes_back_and_the_shutdown_flush_writes_it() {
    let budget = ApiBudget::new(1, 1);
    let others = saturate(&budget, 500);
    let busy = world(budget);
    busy.checkpoints(1, 3).await;
    assert_eq!(busy.parked(), 1);
    busy.stored.lock().expect("lock").hang = true;
    for task in others {
        task.abort();
    }
    // The flusher gets a token and its write hangs (within its 5 s request timeout).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(busy.parked(), 0, "taken by the flusher, in flight");
    let World {
        flusher: writing,
        ctx,
        stored,
        ..
    } = busy;
    writing.abort();
    assert!(writing.await.is_err(), "stopped mid-write");
    let parked = || ctx.memory().parked.len();
    assert_eq!(parked(), 1, "the cut-off write's status is parked again");
    stored.lock().expect("lock").hang = false;
    assert_eq!(flush(&ctx, SHUTDOWN_FLUSH).await, 0);
    assert_eq!(stored.lock().expect("lock").status_writes.len(), 1);
    assert_eq!(parked(), 0);
}
