//! Leader election against a stand-in for the Kubernetes Lease API: a `tower-test` mock
//! service whose verifier checks each request (method, path, query, content type, body) and
//! answers like an API server, keeping one Lease in memory.
//!
//! The election runs on a paused tokio clock (`start_paused`): time moves only when every task
//! waits, and jumps straight to the next timer, so a 2 s lease and its renewals play out in
//! milliseconds and the timing assertions are exact, not at the mercy of a loaded machine.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, StatusCode};
use kube::Client;
use rollgate::controller::leader::{ElectionSettings, LeaderStatus, Leadership, spawn_election};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::support::verifier::{ApiServerVerifier, Reply};

const NAMESPACE: &str = "rollgate-system";
const LEASE: &str = "rollgate-controller";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/rollgate-system/leases";

/// The API server's state: one Lease (or none), a failure switch and what was asked.
#[derive(Default)]
struct FakeApi {
    /// The Lease's spec; `None` when the Lease does not exist.
    spec: Option<Map<String, Value>>,
    resource_version: u64,
    /// Answer every request with 500.
    failing: bool,
    /// Answer every write (POST, PATCH) with 500; reads still answer.
    failing_writes: bool,
    /// `METHOD path content-type body` of every request, in order.
    log: Vec<String>,
    /// Requests the verifier refused: they fail the test.
    violations: Vec<String>,
}

type Shared = Arc<Mutex<FakeApi>>;

fn lock(api: &Shared) -> std::sync::MutexGuard<'_, FakeApi> {
    api.lock().expect("fake API lock")
}

fn status(code: u16, reason: &str, message: &str) -> (StatusCode, Value) {
    (
        StatusCode::from_u16(code).expect("status code"),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "reason": reason, "message": message, "code": code}),
    )
}

impl FakeApi {
    fn lease(&self) -> Value {
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": LEASE, "namespace": NAMESPACE,
                         "resourceVersion": self.resource_version.to_string()},
            "spec": self.spec.clone().unwrap_or_default(),
        })
    }

    fn holder(&self) -> Option<String> {
        self.spec
            .as_ref()
            .and_then(|s| s.get("holderIdentity"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    fn answer(
        &mut self,
        method: &Method,
        path: &str,
        query: &str,
        kind: &str,
        body: &[u8],
    ) -> (StatusCode, Value) {
        self.log.push(format!(
            "{method} {path} {kind} {}",
            String::from_utf8_lossy(body)
        ));
        if self.failing || (self.failing_writes && method != Method::GET) {
            return status(500, "InternalError", "etcd is having a bad day");
        }
        let item = format!("{LEASES}/{LEASE}");
        match (method.as_str(), path) {
            ("GET", p) if p == item => match &self.spec {
                Some(_) => (StatusCode::OK, self.lease()),
                None => status(404, "NotFound", "leases \"rollgate-controller\" not found"),
            },
            ("POST", LEASES) => {
                let sent: Value = match serde_json::from_slice(body) {
                    Ok(v) => v,
                    Err(e) => return self.refuse(format!("POST body is not JSON: {e}")),
                };
                if sent["metadata"]["name"] != LEASE || kind != "application/json" {
                    return self.refuse(format!("unexpected POST {kind} {sent}"));
                }
                if self.spec.is_some() {
                    return status(
                        409,
                        "AlreadyExists",
                        "leases \"rollgate-controller\" already exists",
                    );
                }
                self.spec = Some(sent["spec"].as_object().cloned().unwrap_or_default());
                self.resource_version += 1;
                (StatusCode::CREATED, self.lease())
            }
            ("PATCH", p) if p == item => {
                if !query
                    .split('&')
                    .any(|kv| kv.starts_with("fieldManager=rollgate-leader-"))
                {
                    return self.refuse(format!("PATCH without rollgate's field manager: {query}"));
                }
                let Some(current) = self.spec.as_mut() else {
                    return status(404, "NotFound", "leases \"rollgate-controller\" not found");
                };
                let sent: Value = match serde_json::from_slice(body) {
                    Ok(v) => v,
                    Err(e) => return self.refuse(format!("PATCH body is not JSON: {e}")),
                };
                let Some(fields) = sent["spec"].as_object() else {
                    return self.refuse(format!("PATCH without a spec: {sent}"));
                };
                match kind {
                    "application/apply-patch+yaml" => {
                        // Server-side apply: holderIdentity is owned by whoever set it; another
                        // manager applying a different value conflicts.
                        let theirs = current.get("holderIdentity").and_then(Value::as_str);
                        let ours = fields.get("holderIdentity").and_then(Value::as_str);
                        if theirs.is_some() && ours.is_some() && theirs != ours {
                            return status(
                                409,
                                "Conflict",
                                "Apply failed with 1 conflict: conflict with another manager: .spec.holderIdentity",
                            );
                        }
                        for (k, v) in fields {
                            current.insert(k.clone(), v.clone());
                        }
                    }
                    "application/strategic-merge-patch+json" => {
                        for (k, v) in fields {
                            if v.is_null() {
                                current.remove(k);
                            } else {
                                current.insert(k.clone(), v.clone());
                            }
                        }
                    }
                    other => return self.refuse(format!("PATCH with content type {other}")),
                }
                self.resource_version += 1;
                (StatusCode::OK, self.lease())
            }
            _ => self.refuse(format!("unexpected request {method} {path}?{query}")),
        }
    }

    fn refuse(&mut self, why: String) -> (StatusCode, Value) {
        self.violations.push(why.clone());
        status(400, "BadRequest", &why)
    }
}

/// A kube client whose every request is answered by the fake API.
fn client_for(api: &Shared) -> Client {
    let (client, verifier) = ApiServerVerifier::new();
    let api = api.clone();
    verifier.serve(move |request| {
        let kind = request.header("content-type").unwrap_or("").to_owned();
        let (code, answer) = lock(&api).answer(
            &request.method,
            &request.path,
            &request.query,
            &kind,
            &request.bytes,
        );
        Reply::json(code.as_u16(), &answer)
    });
    client
}

fn settings(identity: &str) -> ElectionSettings {
    ElectionSettings {
        identity: identity.to_owned(),
        lease_duration: Duration::from_secs(2),
        renew_grace: Duration::from_secs(1),
        poll_interval: Duration::from_millis(250),
        ..ElectionSettings::new(NAMESPACE, LEASE)
    }
}

struct Replica {
    leadership: Leadership,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

fn start(api: &Shared, identity: &str) -> Replica {
    let (stop, stopped) = oneshot::channel::<()>();
    let (leadership, task) = spawn_election(client_for(api), settings(identity), async {
        let _ = stopped.await;
    })
    .expect("valid settings");
    Replica {
        leadership,
        stop: Some(stop),
        task,
    }
}

impl Replica {
    async fn shut_down(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the election stops within 5 s")
            .expect("the election task does not panic");
    }
}

/// Waits up to `limit` for `condition`, checking every 50 ms.
async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    condition()
}

fn now_micro() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

fn assert_no_violations(api: &Shared) {
    let api = lock(api);
    assert!(
        api.violations.is_empty(),
        "refused requests: {:?}",
        api.violations
    );
}

#[tokio::test(start_paused = true)]
async fn creates_the_lease_acquires_it_and_leads() {
    let api = Shared::default();
    let replica = start(&api, "replica-a");
    let mut watcher = replica.leadership.clone();
    let woke = tokio::time::timeout(Duration::from_secs(3), watcher.changed()).await;
    assert_eq!(woke.ok(), Some(true), "the handle reports the change");
    assert!(replica.leadership.is_leader());
    assert_eq!(replica.leadership.status(), LeaderStatus::Leading);
    // Fencing: a write that may take longer than the 2 s Lease has left is not allowed.
    assert!(replica.leadership.held_for(Duration::from_millis(100)));
    assert!(!replica.leadership.held_for(Duration::from_secs(3)));
    {
        let api = lock(&api);
        assert_eq!(api.holder().as_deref(), Some("replica-a"));
        let spec = api.spec.as_ref().expect("lease");
        assert_eq!(spec["leaseDurationSeconds"], 2);
        assert!(
            api.log
                .iter()
                .any(|l| l.starts_with(&format!("POST {LEASES} "))),
            "{:?}",
            api.log
        );
        assert!(
            api.log
                .iter()
                .any(|l| l.contains("application/apply-patch+yaml")
                    && l.contains("\"holderIdentity\":\"replica-a\"")),
            "acquired with server-side apply: {:?}",
            api.log
        );
    }
    replica.shut_down().await;
    assert_no_violations(&api);
}

#[tokio::test(start_paused = true)]
async fn renews_before_expiry_and_stays_leader() {
    let api = Shared::default();
    let replica = start(&api, "replica-a");
    assert!(eventually(Duration::from_secs(3), || replica.leadership.is_leader()).await);
    let first_renewal = lock(&api).spec.as_ref().expect("lease")["renewTime"].clone();
    // Three lease durations: without renewals the lease would have lapsed twice.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        assert!(replica.leadership.is_leader(), "leadership held throughout");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let renewals = {
        let api = lock(&api);
        assert_ne!(
            api.spec.as_ref().expect("lease")["renewTime"],
            first_renewal
        );
        api.log
            .iter()
            .filter(|l| {
                l.starts_with("PATCH")
                    && l.contains("strategic-merge")
                    && l.contains("renewTime")
                    && !l.contains("holderIdentity")
            })
            .count()
    };
    assert!(
        (5..=7).contains(&renewals),
        "renewed about every second over 6 s, saw {renewals}"
    );
    replica.shut_down().await;
    assert_no_violations(&api);
}

#[tokio::test(start_paused = true)]
async fn stands_by_while_another_replica_holds_the_lease() {
    let api = Shared::default();
    lock(&api).spec = Some(
        json!({"holderIdentity": "replica-b", "renewTime": now_micro(), "leaseDurationSeconds": 30})
            .as_object()
            .cloned()
            .expect("object"),
    );
    let replica = start(&api, "replica-a");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!replica.leadership.is_leader());
    assert_eq!(
        replica.leadership.status(),
        LeaderStatus::Standby {
            holder: Some("replica-b".to_owned())
        }
    );
    {
        let api = lock(&api);
        assert_eq!(api.holder().as_deref(), Some("replica-b"));
        assert!(
            !api.log.iter().any(|l| l.starts_with("PATCH")),
            "a standby writes nothing: {:?}",
            api.log
        );
    }
    replica.shut_down().await;
    assert_eq!(
        lock(&api).holder().as_deref(),
        Some("replica-b"),
        "a standby releases nothing"
    );
    assert_no_violations(&api);
}

#[tokio::test(start_paused = true)]
async fn takes_over_a_lease_whose_holder_stopped_renewing() {
    let api = Shared::default();
    let stale =
        k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(60);
    lock(&api).spec = Some(
        json!({"holderIdentity": "replica-b", "renewTime": stale.to_string(), "leaseDurationSeconds": 2})
            .as_object()
            .cloned()
            .expect("object"),
    );
    let replica = start(&api, "replica-a");
    assert!(eventually(Duration::from_secs(4), || replica.leadership.is_leader()).await);
    assert_eq!(lock(&api).holder().as_deref(), Some("replica-a"));
    replica.shut_down().await;
    assert_no_violations(&api);
}

#[tokio::test(start_paused = true)]
async fn takes_over_at_once_when_the_holder_releases_the_lease() {
    let api = Shared::default();
    lock(&api).spec = Some(
        json!({"holderIdentity": "replica-b", "renewTime": now_micro(), "leaseDurationSeconds": 30})
            .as_object()
            .cloned()
            .expect("object"),
    );
    let replica = start(&api, "replica-a");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!replica.leadership.is_leader());
    // replica-b shuts down cleanly and releases the Lease, 29 s before it would expire.
    {
        let mut api = lock(&api);
        let spec = api.spec.as_mut().expect("lease");
        for field in [
            "holderIdentity",
            "renewTime",
            "acquireTime",
            "leaseDurationSeconds",
        ] {
            spec.remove(field);
        }
    }
    let released_at = Instant::now();
    assert!(
        eventually(Duration::from_secs(3), || replica.leadership.is_leader()).await,
        "a released lease is taken at once, not when it would have expired"
    );
    assert!(released_at.elapsed() < Duration::from_secs(3));
    replica.shut_down().await;
    assert_no_violations(&api);
}

#[tokio::test(start_paused = true)]
async fn stops_leading_when_renewals_fail() {
    let api = Shared::default();
    let replica = start(&api, "replica-a");
    assert!(eventually(Duration::from_secs(3), || replica.leadership.is_leader()).await);
    lock(&api).failing = true;
    let failed_at = Instant::now();
    let mut watcher = replica.leadership.clone();
    let woke = tokio::time::timeout(Duration::from_secs(4), watcher.until_not_leader()).await;
    assert!(woke.is_ok(), "the handle reports the loss");
    // The last renewal was at most one lease duration (2 s) before the failure began.
    assert!(
        failed_at.elapsed() <= Duration::from_secs(2),
        "{:?}",
        failed_at.elapsed()
    );
    assert!(!replica.leadership.is_leader());
    assert_eq!(
        replica.leadership.status(),
        LeaderStatus::Standby { holder: None }
    );
    // The API server still names this replica: only the expiry of its renewal says no.
    assert_eq!(lock(&api).holder().as_deref(), Some("replica-a"));
    replica.shut_down().await;
    assert_no_violations(&api);
}

/// Renewals refused while reads still answer: every read shows this replica as holder, but
/// the same old `renewTime`, so the deadline counted from the last renewal runs out anyway.
#[tokio::test(start_paused = true)]
async fn stops_leading_when_renewals_are_refused_though_reads_answer() {
    let api = Shared::default();
    let replica = start(&api, "replica-a");
    assert!(eventually(Duration::from_secs(3), || replica.leadership.is_leader()).await);
    let refused_at = Instant::now();
    let logged_before = {
        let mut api = lock(&api);
        api.failing_writes = true;
        api.log.len()
    };
    let mut watcher = replica.leadership.clone();
    let woke = tokio::time::timeout(Duration::from_secs(4), watcher.until_not_leader()).await;
    assert!(woke.is_ok(), "the handle reports the loss");
    // The last renewal was at most one lease duration (2 s) before the refusals began.
    assert!(
        refused_at.elapsed() <= Duration::from_secs(2),
        "{:?}",
        refused_at.elapsed()
    );
    assert_eq!(
        replica.leadership.status(),
        LeaderStatus::Standby { holder: None }
    );
    {
        let api = lock(&api);
        assert_eq!(api.holder().as_deref(), Some("replica-a"));
        let after = &api.log[logged_before..];
        assert!(
            after.iter().filter(|l| l.starts_with("GET")).count() >= 4,
            "reads kept answering: {after:?}"
        );
        assert!(
            after.iter().any(|l| l.starts_with("PATCH")),
            "a renewal was tried: {after:?}"
        );
    }
    replica.shut_down().await;
    assert_no_violations(&api);
}

#[tokio::test(start_paused = true)]
async fn loses_the_lease_to_another_holder() {
    let api = Shared::default();
    let replica = start(&api, "replica-a");
    assert!(eventually(Duration::from_secs(3), || replica.leadership.is_leader()).await);
    {
        let mut api = lock(&api);
        let spec = api.spec.as_mut().expect("lease");
        spec.insert("holderIdentity".to_owned(), json!("replica-b"));
        spec.insert("renewTime".to_owned(), json!(now_micro()));
        spec.insert("leaseDurationSeconds".to_owned(), json!(30));
    }
    let mut watcher = replica.leadership.clone();
    let woke = tokio::time::timeout(Duration::from_secs(2), watcher.until_not_leader()).await;
    assert!(woke.is_ok(), "the handle reports the loss");
    assert_eq!(
        replica.leadership.status(),
        LeaderStatus::Standby {
            holder: Some("replica-b".to_owned())
        }
    );
    replica.shut_down().await;
    assert_eq!(
        lock(&api).holder().as_deref(),
        Some("replica-b"),
        "not released by a non-holder"
    );
    assert_no_violations(&api);
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_leading_first_and_releases_the_lease() {
    let api = Shared::default();
    let replica = start(&api, "replica-a");
    assert!(eventually(Duration::from_secs(3), || replica.leadership.is_leader()).await);
    let leadership = replica.leadership.clone();
    replica.shut_down().await;
    assert!(!leadership.is_leader());
    assert!(!leadership.held_for(Duration::ZERO));
    assert_eq!(leadership.status(), LeaderStatus::Stopped);
    let api_state = lock(&api);
    assert_eq!(api_state.holder(), None, "released: {:?}", api_state.spec);
    drop(api_state);
    assert_no_violations(&api);
}

#[tokio::test(start_paused = true)]
async fn of_two_replicas_one_leads_and_the_other_takes_over_when_it_stops() {
    let api = Shared::default();
    let a = start(&api, "replica-a");
    let b = start(&api, "replica-b");
    assert!(
        eventually(Duration::from_secs(4), || a.leadership.is_leader()
            || b.leadership.is_leader())
        .await
    );
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        assert!(
            !(a.leadership.is_leader() && b.leadership.is_leader()),
            "never two leaders"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (leader, standby) = if a.leadership.is_leader() {
        (a, b)
    } else {
        (b, a)
    };
    assert!(!standby.leadership.is_leader());
    let stopped_at = Instant::now();
    leader.shut_down().await;
    assert!(
        eventually(Duration::from_secs(4), || standby.leadership.is_leader()).await,
        "the standby takes over a released lease"
    );
    assert!(stopped_at.elapsed() < Duration::from_secs(5));
    standby.shut_down().await;
    assert_no_violations(&api);
}

#[tokio::test(start_paused = true)]
async fn a_deleted_lease_is_created_again() {
    let api = Shared::default();
    let replica = start(&api, "replica-a");
    assert!(eventually(Duration::from_secs(3), || replica.leadership.is_leader()).await);
    lock(&api).spec = None;
    let creations = || {
        lock(&api)
            .log
            .iter()
            .filter(|l| l.starts_with(&format!("POST {LEASES} ")))
            .count()
    };
    assert!(
        eventually(Duration::from_secs(3), || creations() == 2).await,
        "the lease is created again"
    );
    assert!(
        eventually(Duration::from_secs(3), || lock(&api).holder().as_deref()
            == Some("replica-a"))
        .await,
        "and taken again"
    );
    assert!(eventually(Duration::from_secs(1), || replica.leadership.is_leader()).await);
    replica.shut_down().await;
    assert_no_violations(&api);
}

#[tokio::test(start_paused = true)]
async fn the_leader_metric_follows_the_leadership() {
    let api = Shared::default();
    let metrics = rollgate::telemetry::Metrics::new().expect("metrics");
    let replica = start(&api, "replica-a");
    let reporter = replica.leadership.report_to(metrics.clone());
    let gauge = |m: &rollgate::telemetry::Metrics| {
        m.encode()
            .expect("encode")
            .lines()
            .find_map(|l| l.strip_prefix("rollgate_leader ").map(str::to_owned))
    };
    assert!(
        eventually(Duration::from_secs(3), || gauge(&metrics).as_deref()
            == Some("1"))
        .await
    );
    replica.shut_down().await;
    assert!(
        eventually(Duration::from_secs(1), || gauge(&metrics).as_deref()
            == Some("0"))
        .await
    );
    reporter.abort();
}

#[tokio::test]
async fn without_election_a_replica_always_leads() {
    let mut leadership = Leadership::always();
    assert!(leadership.is_leader());
    assert!(leadership.held_for(Duration::from_secs(3600)));
    assert_eq!(leadership.status(), LeaderStatus::Unelected);
    leadership.until_leader().await;
    let waited = tokio::time::timeout(Duration::from_millis(100), leadership.changed()).await;
    assert!(waited.is_err(), "nothing ever changes");
}

#[tokio::test]
async fn inconsistent_settings_are_refused() {
    let api = Shared::default();
    let bad = [
        ElectionSettings {
            renew_grace: Duration::from_secs(2),
            ..settings("a")
        },
        ElectionSettings {
            renew_grace: Duration::ZERO,
            ..settings("a")
        },
        ElectionSettings {
            lease_duration: Duration::from_millis(2500),
            ..settings("a")
        },
        ElectionSettings {
            poll_interval: Duration::from_secs(1),
            ..settings("a")
        },
        ElectionSettings {
            identity: String::new(),
            ..settings("a")
        },
        ElectionSettings {
            lease_name: String::new(),
            ..settings("a")
        },
    ];
    for s in bad {
        let shown = format!("{s:?}");
        let error = spawn_election(client_for(&api), s, async {}).expect_err(&shown);
        assert!(
            error.to_string().starts_with("leader election settings: "),
            "{error}"
        );
    }
    assert!(lock(&api).log.is_empty(), "nothing was sent");
}

#[tokio::test]
async fn the_default_settings_are_consistent() {
    let api = Shared::default();
    let settings = ElectionSettings::new(NAMESPACE, LEASE);
    assert_eq!(settings.lease_duration, Duration::from_secs(15));
    assert!(!settings.identity.is_empty());
    let (_leadership, task) =
        spawn_election(client_for(&api), settings, async {}).expect("the defaults are valid");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("an election shut down at once ends")
        .expect("no panic");
}

#[tokio::test]
async fn the_dedicated_client_gives_up_on_a_hung_api_server() {
    // A server that accepts connections and never answers.
    let silent = crate::support::loopback::silent();
    let address = silent.addr;
    let config = kube::Config::new(format!("http://{address}").parse().expect("uri"));
    let settings = settings("replica-a");
    let client = rollgate::controller::leader::dedicated_client(config, &settings).expect("client");
    let started = Instant::now();
    let api: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(client, NAMESPACE);
    let result = tokio::time::timeout(Duration::from_secs(5), api.get_opt(LEASE))
        .await
        .expect("the client's own timeout fires first");
    assert!(result.is_err(), "a hung request fails");
    // request_timeout() is half the 1 s grace.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
