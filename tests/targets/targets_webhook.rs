//! The webhook target against a loopback HTTP server: GET and PUT of `{"percent": N}`, headers
//! from a Secret, no redirects, a timeout, a size cap and clear errors for bad answers.

use rollgate::api::Percent;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::ByteString;
use rollgate::api::{Target, WebhookTarget};
use rollgate::targets::webhook::{self, BODY_CAP, WebhookHeaders, parse_answer};
use rollgate::targets::{self, TargetError, WriteIdentity, WriteMode, WriteOutcome};
use serde_json::json;

use crate::support::loopback::{self, TestServer};
use crate::support::verifier::scenario;

/// A request the server received.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: status, extra headers, body, delay.
#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    delay: Duration,
}

fn answer(status: u16, body: impl Into<String>) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body: body.into().into_bytes(),
        delay: Duration::ZERO,
    }
}

/// The shared loopback server (`tests/support/loopback.rs`), its requests seen as [`Seen`] and
/// answered with an [`Answer`]; its URL is the flag's path.
struct Server {
    url: String,
    server: TestServer,
}

fn seen_of(request: &loopback::Request) -> Seen {
    Seen {
        method: request.method.clone(),
        path: request.path.clone(),
        headers: request.headers.clone(),
        body: request.text(),
    }
}

impl Server {
    async fn start(handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Server {
        let server = TestServer::start(move |request| {
            let answer = handler(&seen_of(request));
            let mut response = loopback::Response {
                body: answer.body,
                ..loopback::Response::json(answer.status, "")
            }
            .after(answer.delay);
            for (name, value) in answer.headers {
                response = response.header(name, value);
            }
            response
        })
        .await;
        let url = format!("{}/flags/passenger", server.url());
        Server { url, server }
    }

    fn seen(&self) -> Vec<Seen> {
        self.server.requests().iter().map(seen_of).collect()
    }
}

/// A server that keeps a percent: GET answers it, PUT stores the body's percent.
async fn store(initial: &'static str) -> Server {
    let state = Arc::new(Mutex::new(initial.to_owned()));
    Server::start(move |seen| {
        let mut state = state.lock().expect("state");
        match seen.method.as_str() {
            "GET" => answer(200, state.clone()),
            "PUT" => {
                *state = seen.body.clone();
                answer(204, "")
            }
            _ => answer(405, "{}"),
        }
    })
    .await
}

fn target(url: &str) -> WebhookTarget {
    WebhookTarget {
        url: url.to_owned(),
        ..WebhookTarget::default()
    }
}

fn secret_headers() -> WebhookHeaders {
    let data: BTreeMap<String, ByteString> = [
        (
            "Authorization".to_owned(),
            ByteString(b"Bearer s3cr3t-token".to_vec()),
        ),
        ("X-Api-Key".to_owned(), ByteString(b"k-42".to_vec())),
    ]
    .into();
    WebhookHeaders::from_secret_data("kaviar/flag-store", &data)
        .expect("headers")
        // The test servers speak plain HTTP on loopback.
        .allowing_insecure_credentials(true)
}

fn http_reason(err: TargetError) -> String {
    match err {
        TargetError::Http { reason, .. } => reason,
        other => panic!("expected an HTTP error, got {other:?}"),
    }
}

#[tokio::test]
async fn reads_the_percent_with_the_secrets_headers() {
    let server = store(r#"{"percent": 5, "updatedBy": "someone"}"#).await;
    let percent = webhook::read(&target(&server.url), &secret_headers())
        .await
        .expect("read");
    assert_eq!(percent, Some(Percent::whole(5)));
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, "/flags/passenger");
    assert_eq!(seen[0].header("authorization"), Some("Bearer s3cr3t-token"));
    assert_eq!(seen[0].header("x-api-key"), Some("k-42"));
}

#[tokio::test]
async fn a_percent_with_decimals_is_put_as_a_json_number_and_read_back() {
    let server = store(r#"{"percent": 0}"#).await;
    let t = target(&server.url);
    let half = Percent::from_basis_points(50).expect("0.5 %");
    assert_eq!(
        webhook::write(&t, &secret_headers(), half, WriteMode::Apply)
            .await
            .expect("write"),
        WriteOutcome::Written
    );
    let seen = server.seen();
    assert_eq!(seen[1].body, r#"{"percent":0.5}"#);
    assert_eq!(
        webhook::read(&t, &secret_headers()).await.expect("read"),
        Some(half)
    );
    assert_eq!(
        webhook::write(&t, &secret_headers(), half, WriteMode::Apply)
            .await
            .expect("write"),
        WriteOutcome::Unchanged
    );
}

#[tokio::test]
async fn writes_with_a_put_only_when_the_percent_differs() {
    let server = store(r#"{"percent": 1}"#).await;
    let t = target(&server.url);
    assert_eq!(
        webhook::write(&t, &secret_headers(), Percent::whole(5), WriteMode::Apply)
            .await
            .expect("write"),
        WriteOutcome::Written
    );
    assert_eq!(
        webhook::write(&t, &secret_headers(), Percent::whole(5), WriteMode::Apply)
            .await
            .expect("write"),
        WriteOutcome::Unchanged
    );
    let seen = server.seen();
    let methods: Vec<&str> = seen.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(methods, ["GET", "PUT", "GET"]);
    let put = &seen[1];
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&put.body).expect("json"),
        json!({"percent": 5})
    );
    assert_eq!(put.header("content-type"), Some("application/json"));
    assert_eq!(put.header("authorization"), Some("Bearer s3cr3t-token"));
    assert_eq!(
        webhook::read(&t, &secret_headers()).await.expect("read"),
        Some(Percent::whole(5))
    );
}

#[tokio::test]
async fn a_put_names_the_rollout_its_uid_and_the_sequence() {
    let server = store(r#"{"percent": 1}"#).await;
    let t = target(&server.url);
    let writer = WriteIdentity {
        rollout: "kaviar/passenger".into(),
        uid: "uid-7".into(),
        sequence: 4,
    };
    let access = secret_headers().written_by(writer);
    assert_eq!(
        webhook::write(&t, &access, Percent::whole(5), WriteMode::Apply)
            .await
            .expect("write"),
        WriteOutcome::Written
    );
    let seen = server.seen();
    let put = seen.iter().find(|s| s.method == "PUT").expect("a PUT");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&put.body).expect("json"),
        json!({"percent": 5, "rollout": "kaviar/passenger", "uid": "uid-7", "sequence": 4})
    );
    // The stored body still reads as the percent.
    assert_eq!(
        webhook::read(&t, &access).await.expect("read"),
        Some(Percent::whole(5))
    );
}

#[tokio::test]
async fn a_dry_run_only_reads() {
    let server = store(r#"{"percent": null}"#).await;
    let outcome = webhook::write(
        &target(&server.url),
        &WebhookHeaders::none(),
        Percent::whole(5),
        WriteMode::DryRun,
    )
    .await
    .expect("checked");
    assert_eq!(outcome, WriteOutcome::Checked);
    let methods: Vec<String> = server.seen().into_iter().map(|s| s.method).collect();
    assert_eq!(methods, ["GET"]);
    assert_eq!(
        webhook::read(&target(&server.url), &WebhookHeaders::none())
            .await
            .expect("read"),
        None
    );
}

#[tokio::test]
async fn the_dispatch_surface_reaches_the_webhook() {
    let server = store(r#"{"percent": 0}"#).await;
    let t = Target {
        webhook: Some(target(&server.url)),
        ..Target::default()
    };
    // A client whose API server expects no request: the webhook target never talks to
    // Kubernetes.
    scenario(vec![], |client| async move {
        let headers = WebhookHeaders::none();
        assert_eq!(
            targets::read(&client, "kaviar", &t, &headers)
                .await
                .expect("read"),
            Some(Percent::whole(0))
        );
        assert_eq!(
            targets::write(
                &client,
                "kaviar",
                &t,
                Percent::whole(10),
                WriteMode::Apply,
                &headers
            )
            .await
            .expect("write"),
            WriteOutcome::Written
        );
        assert_eq!(
            targets::read(&client, "kaviar", &t, &headers)
                .await
                .expect("read"),
            Some(Percent::whole(10))
        );
    })
    .await;
}

#[tokio::test]
async fn bad_answers_are_clear_errors() {
    let cases: [(u16, &str, &str); 10] = [
        (
            200,
            "not json",
            "answer is not JSON (it stops parsing at line 1, column 2)",
        ),
        (200, "", "answer is not JSON"),
        (200, "{}", "answer has no \"percent\" field"),
        (200, "[5]", "answer has no \"percent\" field"),
        (
            200,
            r#"{"percent": 0.001}"#,
            "\"percent\" is 0.001, expected a number from 0 to 100 with at most two decimals",
        ),
        (
            200,
            r#"{"percent": "5"}"#,
            "\"percent\" is a string, expected",
        ),
        (200, r#"{"percent": 101}"#, "\"percent\" is 101, expected"),
        (200, r#"{"percent": -1}"#, "\"percent\" is -1, expected"),
        (500, "database\u{1b}[31m down", "answered HTTP 500"),
        (404, "", "answered HTTP 404"),
    ];
    for (status, body, expected) in cases {
        let server = Server::start(move |_| answer(status, body)).await;
        let err = webhook::read(&target(&server.url), &WebhookHeaders::none())
            .await
            .expect_err(body);
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("GET {}: ", server.url)),
            "{message}"
        );
        assert!(http_reason(err).contains(expected), "{body:?}: {message}");
        assert!(!message.contains("database"), "{message}");
    }
}

/// No read-out channel: whatever a hostile endpoint answers (an error status, a body that is
/// not JSON, a string percent, a redirect), the error names status codes and kinds only.
#[tokio::test]
async fn a_hostile_endpoints_text_never_reaches_the_error() {
    const SECRET: &str = "AKIAIOSFODNN7EXAMPLE-s3cr3t";
    let cases: [(u16, &str, Option<&str>); 5] = [
        (500, "AKIAIOSFODNN7EXAMPLE-s3cr3t", None),
        (200, "AKIAIOSFODNN7EXAMPLE-s3cr3t", None),
        (200, r#"{"percent": "AKIAIOSFODNN7EXAMPLE-s3cr3t"}"#, None),
        (200, r#"{"other": "AKIAIOSFODNN7EXAMPLE-s3cr3t"}"#, None),
        (302, "", Some("http://AKIAIOSFODNN7EXAMPLE-s3cr3t.example/")),
    ];
    for (status, body, location) in cases {
        let server = Server::start(move |_| Answer {
            headers: location
                .map(|l| vec![("Location", l.to_owned())])
                .unwrap_or_default(),
            ..answer(status, body)
        })
        .await;
        for err in [
            webhook::read(&target(&server.url), &WebhookHeaders::none())
                .await
                .expect_err(body),
            webhook::write(
                &target(&server.url),
                &WebhookHeaders::none(),
                Percent::whole(5),
                WriteMode::Apply,
            )
            .await
            .expect_err(body),
        ] {
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(SECRET), "{body:?}: {shown}");
            assert!(!shown.contains("s3cr3t"), "{body:?}: {shown}");
        }
    }
}

#[tokio::test]
async fn secret_headers_never_travel_over_plain_http_unless_allowed() {
    let server = store(r#"{"percent": 3}"#).await;
    let data: BTreeMap<String, ByteString> = [(
        "Authorization".to_owned(),
        ByteString(b"Bearer s3cr3t".to_vec()),
    )]
    .into();
    let strict = WebhookHeaders::from_secret_data("kaviar/flag-store", &data).expect("headers");
    let err = webhook::read(&target(&server.url), &strict)
        .await
        .expect_err("refused");
    assert!(matches!(err, TargetError::Invalid(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("--allow-insecure-credentials") && message.contains("headersSecret"),
        "{message}"
    );
    assert!(server.seen().is_empty(), "nothing was sent");
    // Without headers there is nothing to protect.
    assert_eq!(
        webhook::read(&target(&server.url), &WebhookHeaders::none())
            .await
            .expect("read"),
        Some(Percent::whole(3))
    );
    let allowed = strict.allowing_insecure_credentials(true);
    assert_eq!(
        webhook::read(&target(&server.url), &allowed)
            .await
            .expect("read"),
        Some(Percent::whole(3))
    );
}

#[tokio::test]
async fn a_failing_put_is_an_error() {
    let server = Server::start(|seen| match seen.method.as_str() {
        "GET" => answer(200, r#"{"percent": 1}"#),
        _ => answer(409, r#"{"error": "locked by another deploy"}"#),
    })
    .await;
    let err = webhook::write(
        &target(&server.url),
        &WebhookHeaders::none(),
        Percent::whole(5),
        WriteMode::Apply,
    )
    .await
    .expect_err("put fails");
    assert!(
        matches!(err, TargetError::Http { method: "PUT", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("answered HTTP 409"), "{err}");
    assert!(!err.to_string().contains("locked"), "{err}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let elsewhere = store(r#"{"percent": 100}"#).await;
    let location = elsewhere.url.clone();
    let location_shown = location.clone();
    let server = Server::start(move |_| Answer {
        headers: vec![("Location", location.clone())],
        ..answer(302, "")
    })
    .await;
    let err = webhook::read(&target(&server.url), &secret_headers())
        .await
        .expect_err("redirect");
    let reason = http_reason(err);
    assert!(reason.contains("answered HTTP 302"), "{reason}");
    assert!(!reason.contains(&location_shown), "{reason}");
    assert!(reason.contains("redirects are not followed"), "{reason}");
    assert!(elsewhere.seen().is_empty(), "the redirect was followed");
}

#[tokio::test]
async fn a_slow_answer_times_out() {
    let server = Server::start(|_| Answer {
        delay: Duration::from_secs(3),
        ..answer(200, r#"{"percent": 1}"#)
    })
    .await;
    let t: WebhookTarget =
        serde_json::from_value(json!({"url": server.url, "timeout": "200ms"})).expect("target");
    let started = std::time::Instant::now();
    let err = webhook::read(&t, &WebhookHeaders::none())
        .await
        .expect_err("timeout");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(http_reason(err), "timed out after 200ms");
}

#[tokio::test]
async fn a_huge_answer_is_refused() {
    let server = Server::start(|_| {
        answer(
            200,
            format!("{{\"percent\": 1, \"pad\": \"{}\"}}", "x".repeat(BODY_CAP)),
        )
    })
    .await;
    let err = webhook::read(&target(&server.url), &WebhookHeaders::none())
        .await
        .expect_err("too large");
    assert_eq!(http_reason(err), "the answer is larger than 65536 bytes");
}

#[tokio::test]
async fn an_unreachable_webhook_is_an_error() {
    let url = format!("http://{}/p", loopback::unused_address());
    let err = webhook::read(&target(&url), &WebhookHeaders::none())
        .await
        .expect_err("refused");
    assert!(
        err.to_string().starts_with(&format!("GET {url}: ")),
        "{err}"
    );
    assert!(err.to_string().to_lowercase().contains("connect"), "{err}");
}

#[tokio::test]
async fn unusable_urls_and_timeouts_are_invalid() {
    for url in ["not a url", "ftp://127.0.0.1/p", "http://[::1"] {
        let err = webhook::read(&target(url), &WebhookHeaders::none())
            .await
            .expect_err(url);
        assert_eq!(err.reason(), "invalid", "{url}: {err}");
        assert!(err.to_string().contains("webhook.url"), "{err}");
    }
    let t: WebhookTarget =
        serde_json::from_value(json!({"url": "http://127.0.0.1:1/p", "timeout": "0s"}))
            .expect("target");
    let err = webhook::read(&t, &WebhookHeaders::none())
        .await
        .expect_err("zero");
    assert_eq!(
        err.to_string(),
        "invalid target: webhook.timeout must be positive, got 0ns"
    );
    assert_eq!(
        webhook::timeout_of(&target("http://x")).expect("default"),
        Duration::from_secs(10)
    );
}

#[test]
fn secret_values_stay_out_of_errors_and_debug() {
    let headers = secret_headers();
    let shown = format!("{headers:?}");
    assert!(
        shown.contains("authorization") && shown.contains("x-api-key"),
        "{shown}"
    );
    assert!(
        !shown.contains("s3cr3t") && !shown.contains("k-42"),
        "{shown}"
    );
    let names: Vec<&str> = headers.names().collect();
    assert_eq!(names, ["authorization", "x-api-key"]);

    let bad_value: BTreeMap<String, ByteString> = [(
        "Authorization".to_owned(),
        ByteString(b"Bearer s3cr3t\r\nX-Evil: 1".to_vec()),
    )]
    .into();
    let err = WebhookHeaders::from_secret_data("kaviar/flag-store", &bad_value).expect_err("bad");
    let message = err.to_string();
    assert!(
        message.contains("Secret kaviar/flag-store key \"Authorization\""),
        "{message}"
    );
    assert!(!message.contains("s3cr3t"), "{message}");

    let bad_name: BTreeMap<String, ByteString> =
        [("Bad Name".to_owned(), ByteString(b"v".to_vec()))].into();
    let err = WebhookHeaders::from_secret_data("kaviar/flag-store", &bad_name).expect_err("bad");
    assert!(
        err.to_string()
            .contains("\"Bad Name\" is not an HTTP header name"),
        "{err}"
    );
}

#[test]
fn answers_parse_strictly() {
    assert_eq!(
        parse_answer(br#"{"percent": 0}"#),
        Ok(Some(Percent::whole(0)))
    );
    assert_eq!(
        parse_answer(br#"{"percent": 100}"#),
        Ok(Some(Percent::whole(100)))
    );
    assert_eq!(parse_answer(br#"{"percent": null}"#), Ok(None));
    // Decimals, as the target writes them, and any JSON spelling of such a number.
    for (body, basis_points) in [
        (&br#"{"percent": 0.5}"#[..], 50),
        (br#"{"percent": 2.25}"#, 225),
        (br#"{"percent": 5.0}"#, 500),
        (br#"{"percent": 1e1}"#, 1000),
    ] {
        assert_eq!(
            parse_answer(body).map(|p| p.map(Percent::basis_points)),
            Ok(Some(basis_points))
        );
    }
    assert!(parse_answer(br#"{"percent": 0.001}"#).is_err());
    assert!(parse_answer(br#"{"percent": 100.5}"#).is_err());
    assert!(parse_answer(br#"{"percent": -0.5}"#).is_err());
    assert!(parse_answer(br#"{"percent": true}"#).is_err());
    assert!(parse_answer(b"\xff\xfe").is_err());
}

#[tokio::test]
async fn the_operators_client_and_address_check_are_used() {
    let server = store(r#"{"percent": 3}"#).await;
    let refuse: rollgate::targets::UrlCheck = std::sync::Arc::new(|url: &reqwest::Url| {
        Err(format!(
            "{} is not in --allow-address; add it to allow",
            url.host_str().unwrap_or_default()
        ))
    });
    let access = secret_headers().through(reqwest::Client::new(), refuse);
    let err = webhook::write(
        &target(&server.url),
        &access,
        Percent::whole(5),
        WriteMode::Apply,
    )
    .await
    .expect_err("refused");
    assert!(matches!(err, TargetError::AddressRefused { .. }), "{err:?}");
    assert_eq!(err.reason(), "address_refused");
    assert!(!err.is_transient());
    assert_eq!(
        err.to_string(),
        format!(
            "{} is not an allowed address: 127.0.0.1 is not in --allow-address; add it to allow",
            server.url
        )
    );
    assert!(server.seen().is_empty(), "a refused URL is never requested");

    let mut marker = reqwest::header::HeaderMap::new();
    marker.insert(
        "x-guarded",
        reqwest::header::HeaderValue::from_static("yes"),
    );
    let client = reqwest::Client::builder()
        .default_headers(marker)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let allow: rollgate::targets::UrlCheck =
        std::sync::Arc::new(|url: &reqwest::Url| Ok(url.clone()));
    let access = secret_headers().through(client, allow);
    assert_eq!(
        webhook::read(&target(&server.url), &access)
            .await
            .expect("read"),
        Some(Percent::whole(3))
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-guarded"), Some("yes"));
    assert_eq!(seen[0].header("authorization"), Some("Bearer s3cr3t-token"));
    let shown = format!("{access:?}");
    assert!(
        shown.contains("own_client: true") && !shown.contains("s3cr3t"),
        "{shown}"
    );
}
