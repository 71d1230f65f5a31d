//! Notifications against a loopback HTTP server that records what it receives, and
//! endpoint resolution against a stand-in for the Secrets API.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use rollgate::api::{NotificationSpec, Percent, Phase, TransitionKind};
use rollgate::net::{AddressPolicy, GuardedClient};
use rollgate::notify::{
    Delivery, Endpoint, EndpointKind, Notification, Notifier, NotifierSettings, Outcome,
    endpoints_from_spec,
};
use serde_json::{Value, json};

use crate::support::loopback::{Response, TestServer};
use crate::support::verifier::{ApiServerVerifier, Reply};

/// What the server received: path, content type, body.
type Received = Arc<Mutex<Vec<(String, String, Value)>>>;

/// Starts the recording server on a free loopback port: it takes POSTs only and answers by
/// path (`/fail` 500, `/slow` after 5 s, `/redirect` a 307 to `/hook`, anything else 200).
async fn server() -> (SocketAddr, Received) {
    let received = Received::default();
    let record = Arc::clone(&received);
    let server = TestServer::start(move |request| {
        if request.method != "POST" {
            return Response::json(405, "");
        }
        let path = request
            .path
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned();
        let kind = request.header("content-type").unwrap_or("").to_owned();
        let value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        record
            .lock()
            .expect("lock")
            .push((path.clone(), kind, value));
        match path.as_str() {
            "/fail" => Response::json(500, "boom").header("Content-Type", "text/plain"),
            "/slow" => Response::json(200, "").after(Duration::from_secs(5)),
            "/redirect" => Response::json(307, "").header("Location", "/hook"),
            _ => Response::json(200, ""),
        }
    })
    .await;
    (server.detach(), received)
}

fn paths(received: &Received) -> Vec<String> {
    let mut paths: Vec<String> = received
        .lock()
        .expect("lock")
        .iter()
        .map(|(p, _, _)| p.clone())
        .collect();
    paths.sort();
    paths
}

fn notifier() -> Notifier {
    Notifier::new(NotifierSettings {
        timeout: Duration::from_millis(500),
        ..NotifierSettings::default()
    })
    .expect("notifier")
}

fn endpoint(kind: EndpointKind, address: SocketAddr, path: &str) -> Endpoint {
    Endpoint::new(
        kind,
        &format!("http://{address}{path}"),
        format!("endpoint {path}"),
    )
    .expect("valid")
}

fn event(kind: TransitionKind, stage: u32, percent: u8) -> Notification {
    Notification {
        namespace: "kaviar".to_owned(),
        name: "passenger-favorites-matching".to_owned(),
        uid: "5f1c0c8e-uid".to_owned(),
        generation: 2,
        kind,
        stage,
        stages: 3,
        percent: Some(Percent::whole(percent)),
        phase: Some(match kind {
            TransitionKind::Rollback => Phase::RolledBack,
            TransitionKind::Complete => Phase::Succeeded,
            TransitionKind::Pause => Phase::Paused,
            _ => Phase::Progressing,
        }),
        reason: Some("gate error-rate failed 2 checkpoints in a row".to_owned()),
        at: "2026-02-01T21:18:00Z".parse().expect("time"),
    }
}

fn outcomes(deliveries: &[Delivery]) -> Vec<(&str, &Outcome)> {
    deliveries
        .iter()
        .map(|d| (d.endpoint.as_str(), &d.outcome))
        .collect()
}

#[tokio::test]
async fn webhook_and_slack_bodies() {
    let (address, received) = server().await;
    let endpoints = [
        endpoint(EndpointKind::Webhook, address, "/hook"),
        endpoint(EndpointKind::Slack, address, "/slack"),
    ];
    let deliveries = notifier()
        .notify(&event(TransitionKind::Rollback, 1, 0), &endpoints)
        .await;
    assert_eq!(
        outcomes(&deliveries),
        [
            ("endpoint /hook", &Outcome::Sent),
            ("endpoint /slack", &Outcome::Sent)
        ]
    );
    let mut got = received.lock().expect("lock").clone();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got[0],
        (
            "/hook".to_owned(),
            "application/json".to_owned(),
            json!({
                "source": "rollgate",
                "namespace": "kaviar",
                "name": "passenger-favorites-matching",
                "uid": "5f1c0c8e-uid",
                "generation": 2,
                "event": "rollback",
                "stage": 1,
                "stages": 3,
                "percent": 0,
                "phase": "RolledBack",
                "reason": "gate error-rate failed 2 checkpoints in a row",
                "at": "2026-02-01T21:18:00Z",
                "key": "5f1c0c8e-uid/2/rollback/1/1769980680",
            })
        )
    );
    assert_eq!(
        got[1],
        (
            "/slack".to_owned(),
            "application/json".to_owned(),
            json!({"text": "rollgate: kaviar/passenger-favorites-matching rolled back to 0% at stage 2 of 3: gate error-rate failed 2 checkpoints in a row"})
        )
    );
}

#[tokio::test]
async fn a_retried_transition_is_sent_once() {
    let (address, received) = server().await;
    let notifier = notifier();
    let endpoints = [endpoint(EndpointKind::Webhook, address, "/hook")];
    let advance = event(TransitionKind::Advance, 1, 5);
    let first = notifier.notify(&advance, &endpoints).await;
    let again = notifier.notify(&advance, &endpoints).await;
    assert_eq!(first[0].outcome, Outcome::Sent);
    assert_eq!(again[0].outcome, Outcome::Duplicate);
    // The same transition recomputed within the same second (as from status read back).
    let recomputed = Notification {
        at: "2026-02-01T21:18:00.700Z".parse().expect("time"),
        ..advance.clone()
    };
    assert_eq!(
        notifier.notify(&recomputed, &endpoints).await[0].outcome,
        Outcome::Duplicate
    );
    // The next transition is news.
    let next = event(TransitionKind::Advance, 2, 10);
    assert_eq!(
        notifier.notify(&next, &endpoints).await[0].outcome,
        Outcome::Sent
    );
    assert_eq!(paths(&received), ["/hook", "/hook"]);
}

#[tokio::test]
async fn racing_reconciles_send_once() {
    let (address, received) = server().await;
    let notifier = Arc::new(notifier());
    let endpoints = Arc::new([endpoint(EndpointKind::Slack, address, "/slack")]);
    let pause = event(TransitionKind::Pause, 0, 1);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (n, e, p) = (notifier.clone(), endpoints.clone(), pause.clone());
            tokio::spawn(async move { n.notify(&p, &e[..]).await })
        })
        .collect();
    let mut sent = 0;
    for task in tasks {
        if task.await.expect("no panic")[0].outcome == Outcome::Sent {
            sent += 1;
        }
    }
    assert_eq!(sent, 1);
    assert_eq!(paths(&received), ["/slack"]);
}

#[tokio::test]
async fn the_on_filter_selects_transitions() {
    let (address, received) = server().await;
    let notifier = notifier();
    let endpoints = [
        endpoint(EndpointKind::Slack, address, "/rollbacks")
            .with_filter(vec![TransitionKind::Rollback, TransitionKind::Complete]),
        endpoint(EndpointKind::Webhook, address, "/everything"),
    ];
    let advance = notifier
        .notify(&event(TransitionKind::Advance, 1, 5), &endpoints)
        .await;
    assert_eq!(
        outcomes(&advance),
        [
            ("endpoint /rollbacks", &Outcome::Filtered),
            ("endpoint /everything", &Outcome::Sent)
        ]
    );
    let rollback = notifier
        .notify(&event(TransitionKind::Rollback, 1, 0), &endpoints)
        .await;
    assert_eq!(rollback[0].outcome, Outcome::Sent);
    assert_eq!(
        paths(&received),
        ["/everything", "/everything", "/rollbacks"]
    );
}

#[tokio::test]
async fn a_slow_or_failing_endpoint_does_not_hold_up_the_others() {
    let (address, received) = server().await;
    let endpoints = [
        endpoint(EndpointKind::Webhook, address, "/slow"),
        endpoint(EndpointKind::Webhook, address, "/fail"),
        endpoint(EndpointKind::Slack, address, "/slack"),
    ];
    let started = Instant::now();
    let deliveries = notifier()
        .notify(&event(TransitionKind::Complete, 2, 10), &endpoints)
        .await;
    let took = started.elapsed();
    assert_eq!(
        outcomes(&deliveries),
        [
            ("endpoint /slow", &Outcome::Failed("timed out".to_owned())),
            (
                "endpoint /fail",
                &Outcome::Failed("answered 500".to_owned())
            ),
            ("endpoint /slack", &Outcome::Sent),
        ]
    );
    // The 500 ms timeout bounds the call, not the 5 s the slow endpoint takes.
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(paths(&received), ["/fail", "/slack", "/slow"]);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (address, received) = server().await;
    let deliveries = notifier()
        .notify(
            &event(TransitionKind::Start, 0, 1),
            &[endpoint(EndpointKind::Webhook, address, "/redirect")],
        )
        .await;
    assert_eq!(
        deliveries[0].outcome,
        Outcome::Failed("answered 307 (redirects are not followed)".to_owned())
    );
    assert_eq!(
        paths(&received),
        ["/redirect"],
        "the redirect's target was not called"
    );
}

#[tokio::test]
async fn global_endpoints_hear_every_rollout() {
    let (address, received) = server().await;
    let global = Endpoint::from_flag(EndpointKind::Slack, &format!("http://{address}/global"), 1)
        .expect("valid");
    let notifier = Notifier::new(NotifierSettings {
        timeout: Duration::from_millis(500),
        global: vec![global],
        ..NotifierSettings::default()
    })
    .expect("notifier");
    let deliveries = notifier
        .notify(
            &event(TransitionKind::Resume, 1, 5),
            &[endpoint(EndpointKind::Webhook, address, "/own")],
        )
        .await;
    assert_eq!(
        outcomes(&deliveries),
        [
            ("endpoint /own", &Outcome::Sent),
            ("--notify-slack #1", &Outcome::Sent)
        ]
    );
    assert_eq!(paths(&received), ["/global", "/own"]);
}

#[tokio::test]
async fn a_refused_connection_is_reported_without_the_url() {
    // A port that was free a moment ago: nothing listens there.
    let address = crate::support::loopback::unused_address();
    let secret_path = "/services/T000/B000/very-secret-token";
    let deliveries = notifier()
        .notify(
            &event(TransitionKind::Drift, 1, 5),
            &[endpoint(EndpointKind::Slack, address, secret_path)],
        )
        .await;
    let Outcome::Failed(why) = &deliveries[0].outcome else {
        panic!("expected a failure: {deliveries:?}");
    };
    assert!(!why.contains("very-secret-token"), "{why}");
    assert!(!why.contains(&address.port().to_string()), "{why}");
    assert!(why.contains("error sending request"), "{why}");
}

// ── endpoints from spec.notifications ────────────────────────────────────────────────────

/// A client whose Secrets API holds `secrets` (name → data) and counts reads per name.
fn secrets_api(secrets: Value, reads: Arc<Mutex<Vec<String>>>) -> Api<Secret> {
    let (client, verifier) = ApiServerVerifier::new();
    verifier.serve(move |request| {
        assert_eq!(request.method, http::Method::GET, "Secrets are only read");
        let path = &request.path;
        let name = path
            .strip_prefix("/api/v1/namespaces/kaviar/secrets/")
            .unwrap_or_else(|| panic!("unexpected path {path}"))
            .to_owned();
        reads.lock().expect("lock").push(name.clone());
        match secrets.get(&name) {
            Some(data) => Reply::json(
                200,
                &json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": "kaviar"}, "data": data}),
            ),
            None => Reply::json(
                404,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "NotFound", "code": 404, "message": format!("secrets \"{name}\" not found")}),
            ),
        }
    });
    Api::namespaced(client, "kaviar")
}

fn base64(text: &str) -> String {
    // Secrets' data is base64; k8s-openapi's ByteString decodes it.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn endpoints_come_from_secrets_and_errors_name_the_field() {
    let secrets = json!({
        "hooks": {"url": base64("http://127.0.0.1:9/hook\n"), "slack": base64("https://hooks.example/T/B/secret-token")},
        "bad": {"url": base64("ftp://files.example/secret-token")},
    });
    let reads = Arc::new(Mutex::new(Vec::new()));
    let api = secrets_api(secrets, reads.clone());
    let specs: Vec<NotificationSpec> = serde_json::from_value(json!([
        {"webhook": {"urlSecretRef": {"name": "hooks", "key": "url"}}},
        {"slack": {"urlSecretRef": {"name": "hooks", "key": "slack"}}, "when": ["rollback"]},
        {"slack": {"urlSecretRef": {"name": "missing", "key": "url"}}},
        {"webhook": {"urlSecretRef": {"name": "hooks", "key": "nope"}}},
        {"webhook": {"urlSecretRef": {"name": "bad", "key": "url"}}},
    ]))
    .expect("specs");
    let (endpoints, errors) = endpoints_from_spec(&api, &specs).await;
    let labels: Vec<_> = endpoints.iter().map(|e| (e.label(), e.kind())).collect();
    assert_eq!(
        labels,
        [
            ("spec.notifications[0].webhook", EndpointKind::Webhook),
            ("spec.notifications[1].slack", EndpointKind::Slack),
        ]
    );
    assert!(endpoints[0].wants(TransitionKind::Advance));
    assert!(!endpoints[1].wants(TransitionKind::Advance));
    assert!(endpoints[1].wants(TransitionKind::Rollback));
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "spec.notifications[2].slack.urlSecretRef: Secret \"missing\" not found",
            "spec.notifications[3].webhook.urlSecretRef: Secret \"hooks\" has no key \"nope\"",
            "spec.notifications[4].webhook.urlSecretRef (Secret \"bad\", key \"url\"): the value is not an http:// or https:// URL",
        ]
    );
    assert!(!format!("{endpoints:?}{errors:?}").contains("secret-token"));
    assert_eq!(
        *reads.lock().expect("lock"),
        ["hooks", "missing", "bad"],
        "each Secret read once"
    );
}

#[tokio::test]
async fn the_address_guard_refuses_authors_endpoints_but_not_the_operators() {
    let (address, received) = server().await;
    let global = Endpoint::from_flag(
        EndpointKind::Webhook,
        &format!("http://{address}/operator"),
        1,
    )
    .expect("valid");
    // The operator allows one URL prefix on loopback, and plain HTTP for this test server.
    let policy = AddressPolicy::new(vec![
        format!("http://{address}/allowed").parse().expect("rule"),
    ])
    .with_insecure_credentials(true);
    let guard = GuardedClient::build(Arc::new(policy)).expect("client");
    let notifier = Notifier::new(NotifierSettings {
        timeout: Duration::from_millis(500),
        global: vec![global],
        ..NotifierSettings::default()
    })
    .expect("notifier")
    .with_address_guard(guard);
    let deliveries = notifier
        .notify(
            &event(TransitionKind::Advance, 1, 5),
            &[
                endpoint(EndpointKind::Webhook, address, "/secret-path"),
                endpoint(EndpointKind::Webhook, address, "/allowed"),
            ],
        )
        .await;
    assert_eq!(
        outcomes(&deliveries),
        [
            (
                "endpoint /secret-path",
                &Outcome::Failed(format!(
                    "refused: http://{address} is not an allowed address (a loopback address is \
                     reached only when --allow-address names it literally); an operator can \
                     allow it with --allow-address 127.0.0.1/32"
                ))
            ),
            ("endpoint /allowed", &Outcome::Sent),
            ("--notify-webhook #1", &Outcome::Sent),
        ]
    );
    assert_eq!(
        paths(&received),
        ["/allowed", "/operator"],
        "nothing reached the refused one"
    );
}

#[tokio::test]
async fn authors_endpoints_need_https_or_the_operators_leave_and_their_namespace() {
    let (address, received) = server().await;
    let open = |insecure: bool| {
        let policy = AddressPolicy::new(vec!["127.0.0.1".parse().expect("rule")])
            .with_insecure_credentials(insecure);
        GuardedClient::build(Arc::new(policy)).expect("client")
    };
    let strict = notifier().with_address_guard(open(false));
    let deliveries = strict
        .notify(
            &event(TransitionKind::Rollback, 1, 5),
            &[endpoint(EndpointKind::Webhook, address, "/hook")],
        )
        .await;
    match &deliveries[0].outcome {
        Outcome::Failed(why) => {
            assert!(why.contains("--allow-insecure-credentials"), "{why}");
            assert!(
                !why.contains("/hook"),
                "the URL's path is never shown: {why}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(
        paths(&received).is_empty(),
        "nothing was sent over plain HTTP"
    );

    // Another namespace's Service is refused (the event's Rollout lives in `kaviar`).
    let other = Endpoint::new(
        EndpointKind::Webhook,
        "https://hooks.monitoring:8443/x",
        "other namespace",
    )
    .expect("valid");
    let default_policy = GuardedClient::build(Arc::new(AddressPolicy::default())).expect("client");
    let deliveries = notifier()
        .with_address_guard(default_policy)
        .notify(&event(TransitionKind::Rollback, 1, 5), &[other])
        .await;
    match &deliveries[0].outcome {
        Outcome::Failed(why) => assert!(why.contains("own namespace \"kaviar\""), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    let allowed = notifier().with_address_guard(open(true));
    let deliveries = allowed
        .notify(
            &event(TransitionKind::Rollback, 1, 5),
            &[endpoint(EndpointKind::Webhook, address, "/hook")],
        )
        .await;
    assert_eq!(deliveries[0].outcome, Outcome::Sent);
}

/// A failing endpoint's answer never reaches the outcome (nor, through it, Events or logs).
#[tokio::test]
async fn a_failing_endpoints_answer_is_not_kept() {
    let (address, _received) = server().await;
    let deliveries = notifier()
        .notify(
            &event(TransitionKind::Rollback, 1, 5),
            &[endpoint(EndpointKind::Webhook, address, "/fail")],
        )
        .await;
    assert_eq!(
        deliveries[0].outcome,
        Outcome::Failed("answered 500".into())
    );
}
