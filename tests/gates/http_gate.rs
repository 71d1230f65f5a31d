//! The HTTP check against a loopback server: numbers, booleans, null, missing and ambiguous
//! paths, error statuses, timeouts, garbage and oversized bodies, and no read-out channel: a
//! hostile server's text never appears in an observation.

use crate::support_ofrep;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::loopback::{Response, TestServer};
use rollgate::api::{Gate, GateVerdict, HttpGate, HttpMethod};
use rollgate::engine::{Observation, judge};
use rollgate::gates::http::{BODY_CAP, check};

/// The namespace of the Rollout the checks are made for.
const NS: &str = "shop";

/// What a hostile server answers: text that looks like a credential.
const SECRET: &str = "AKIAIOSFODNN7EXAMPLE-s3cr3t-t0ken";

fn gate(url: String, json_path: &str) -> HttpGate {
    HttpGate {
        url,
        json_path: json_path.to_string(),
        ..HttpGate::default()
    }
}

async fn observe(body: &'static str, json_path: &str) -> Observation {
    let server = TestServer::start(move |_| Response::json(200, body)).await;
    check(
        &support_ofrep::loopback_client(),
        &gate(server.url(), json_path),
        NS,
    )
    .await
}

fn verdict(
    http: HttpGate,
    min: Option<f64>,
    max: Option<f64>,
    observation: &Observation,
) -> GateVerdict {
    let gate = Gate {
        name: "check".into(),
        http: Some(http),
        min,
        max,
        ..Gate::default()
    };
    judge(&gate, observation)
}

fn error_message(observation: &Observation) -> &str {
    match observation {
        Observation::Error(message) => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_number_is_the_value_and_is_held_to_the_bounds() {
    let observation = observe(r#"{"data": {"errorRate": 0.004}}"#, "$.data.errorRate").await;
    assert_eq!(observation, Observation::Value(0.004));
    let http = gate("http://x".into(), "$.data.errorRate");
    assert_eq!(
        verdict(http.clone(), None, Some(0.01), &observation),
        GateVerdict::Pass
    );
    assert_eq!(
        verdict(http, None, Some(0.001), &observation),
        GateVerdict::Fail
    );
}

#[tokio::test]
async fn true_passes_and_false_fails_without_bounds() {
    let http = gate("http://x".into(), "$.healthy");
    let yes = observe(r#"{"healthy": true}"#, "$.healthy").await;
    assert_eq!(yes, Observation::Value(1.0));
    assert_eq!(verdict(http.clone(), None, None, &yes), GateVerdict::Pass);
    let no = observe(r#"{"healthy": false}"#, "$.healthy").await;
    assert_eq!(no, Observation::Value(0.0));
    assert_eq!(verdict(http, None, None, &no), GateVerdict::Fail);
}

#[tokio::test]
async fn a_filter_selecting_one_value_works() {
    let body = r#"{"checks": [{"name": "db", "ok": true}, {"name": "cache", "ok": false}]}"#;
    assert_eq!(
        observe(body, "$.checks[?@.name == 'cache'].ok").await,
        Observation::Value(0.0)
    );
}

#[tokio::test]
async fn null_is_no_data() {
    assert_eq!(
        observe(r#"{"value": null}"#, "$.value").await,
        Observation::NoData
    );
}

#[tokio::test]
async fn a_missing_path_is_an_error() {
    let observation = observe(r#"{"other": 1}"#, "$.value").await;
    assert!(
        error_message(&observation).contains("JSONPath matched nothing"),
        "{observation:?}"
    );
}

#[tokio::test]
async fn several_matches_are_an_error() {
    let observation = observe(r#"{"items": [{"v": 1}, {"v": 2}]}"#, "$.items[*].v").await;
    assert!(
        error_message(&observation).contains("matched 2 values"),
        "{observation:?}"
    );
}

#[tokio::test]
async fn a_string_is_an_error() {
    let observation = observe(r#"{"value": "0.5"}"#, "$.value").await;
    let message = error_message(&observation);
    assert!(
        message.contains("value is not a number") && message.contains("selected a string"),
        "{message}"
    );
    assert!(!message.contains("0.5"), "{message}");
}

#[tokio::test]
async fn an_invalid_path_is_an_error() {
    let observation = observe(r#"{"value": 1}"#, "$.value[").await;
    assert!(
        error_message(&observation).contains("not RFC 9535 JSONPath"),
        "{observation:?}"
    );
}

#[tokio::test]
async fn a_non_2xx_answer_is_an_error_with_its_status_only() {
    let server = TestServer::start(|_| Response::json(503, r#"{"error": "warming up"}"#)).await;
    let observation = check(
        &support_ofrep::loopback_client(),
        &gate(server.url(), "$.value"),
        NS,
    )
    .await;
    let message = error_message(&observation);
    assert!(message.contains("HTTP 503"), "{message}");
    assert!(!message.contains("warming up"), "{message}");
}

#[tokio::test]
async fn a_garbage_body_is_an_error_saying_where_it_stopped_parsing() {
    let observation = observe("<html>oops</html>", "$.value").await;
    let message = error_message(&observation);
    assert!(
        message.contains("not JSON") && message.contains("line 1, column 1"),
        "{message}"
    );
    assert!(
        !message.contains("html") && !message.contains("oops"),
        "{message}"
    );
}

/// Every way a hostile server could get its text into an observation: an error status, a body
/// that is not JSON, a string where a number belongs, a path that matches nothing, several
/// values. None of them shows the text.
#[tokio::test]
async fn a_hostile_servers_text_never_reaches_the_observation() {
    let bodies: [(u16, String, &str, &str); 6] = [
        (
            503,
            format!(r#"{{"error": "{SECRET}"}}"#),
            "$.value",
            "HTTP 503",
        ),
        (500, SECRET.to_owned(), "$.value", "HTTP 500"),
        (200, format!("{SECRET} <not json>"), "$.value", "not JSON"),
        (
            200,
            format!(r#"{{"value": "{SECRET}"}}"#),
            "$.value",
            "value is not a number",
        ),
        (
            200,
            format!(r#"{{"value": ["{SECRET}"]}}"#),
            "$.value",
            "value is not a number",
        ),
        (
            200,
            format!(r#"{{"other": "{SECRET}"}}"#),
            "$.value",
            "JSONPath matched nothing",
        ),
    ];
    for (status, body, path, expected) in bodies {
        let answer = body.clone();
        let server = TestServer::start(move |_| Response::json(status, answer.clone())).await;
        let observation = check(
            &support_ofrep::loopback_client(),
            &gate(server.url(), path),
            NS,
        )
        .await;
        let message = error_message(&observation);
        assert!(message.contains(expected), "{body}: {message}");
        assert!(!message.contains("s3cr3t"), "{body}: {message}");
        assert!(!message.contains("AKIA"), "{body}: {message}");
    }
}

#[tokio::test]
async fn an_oversized_body_is_an_error() {
    let server = TestServer::start(|_| Response {
        body: vec![b' '; BODY_CAP + 1],
        ..Response::json(200, "")
    })
    .await;
    let observation = check(
        &support_ofrep::loopback_client(),
        &gate(server.url(), "$.value"),
        NS,
    )
    .await;
    assert!(
        error_message(&observation).contains("larger than"),
        "{observation:?}"
    );
}

#[tokio::test]
async fn a_slow_answer_times_out() {
    let server =
        TestServer::start(|_| Response::json(200, r#"{"value": 1}"#).after(Duration::from_secs(3)))
            .await;
    let mut slow = gate(server.url(), "$.value");
    slow.timeout = Some(Duration::from_millis(200).into());
    let started = std::time::Instant::now();
    let observation = check(&support_ofrep::loopback_client(), &slow, NS).await;
    assert!(
        error_message(&observation).contains("timed out after 200ms"),
        "{observation:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn an_unreachable_url_is_an_error() {
    let port = crate::support::loopback::unused_address().port();
    let observation = check(
        &support_ofrep::loopback_client(),
        &gate(format!("http://127.0.0.1:{port}/health"), "$.ok"),
        NS,
    )
    .await;
    let message = error_message(&observation);
    assert!(
        message.contains(&format!("GET http://127.0.0.1:{port}/health failed")),
        "{message}"
    );
}

#[tokio::test]
async fn post_sends_the_body() {
    let seen = Arc::new(Mutex::new(None));
    let record = seen.clone();
    let server = TestServer::start(move |request| {
        *record.lock().unwrap() = Some((
            request.method.clone(),
            request.path.clone(),
            request.body.clone(),
        ));
        Response::json(200, r#"{"result": [{"value": 42}]}"#)
    })
    .await;
    let mut post = gate(format!("{}/query", server.url()), "$.result[0].value");
    post.method = HttpMethod::Post;
    post.body = Some(r#"{"q": "errors"}"#.into());
    assert_eq!(
        check(&support_ofrep::loopback_client(), &post, NS).await,
        Observation::Value(42.0)
    );
    let (method, path, body) = seen.lock().unwrap().clone().expect("a request");
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/query"));
    assert_eq!(body, br#"{"q": "errors"}"#);
}
