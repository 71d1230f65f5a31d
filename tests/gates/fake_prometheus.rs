//! The Prometheus client against a fake server, for what a real Prometheus never answers:
//! garbage, oversized bodies, a stall, proxies' error pages; and for what the client sends.

use crate::support;

use rollgate::api::Percent;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use rollgate::api::PrometheusGate;
use rollgate::engine::Observation;
use rollgate::gates::GateContext;
use rollgate::gates::prometheus::{
    ClientSettings, MAX_ANSWER_BYTES, PrometheusAuth, PrometheusClient, PrometheusEndpoint, observe,
};
use support::fake::{Canned, Fake};

fn ctx(at: Timestamp) -> GateContext<'static> {
    GateContext {
        rollout: "checkout",
        namespace: "shop",
        flag: None,
        allowlist: &[],
        stage: 0,
        percent: Percent::whole(1),
        at,
    }
}

/// What the gate `up` observes through a fake answering `canned`, with `settings`.
async fn observe_canned(canned: Canned, settings: ClientSettings) -> Observation {
    let fake = Fake::start(canned);
    let gate = PrometheusGate {
        query: "up".into(),
        ..PrometheusGate::default()
    };
    observe(&fake.client(settings), &gate, &ctx(Timestamp::now())).await
}

fn error_message(observation: Observation) -> String {
    match observation {
        Observation::Error(message) => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn scalar(value: &str) -> Canned {
    Canned::ok(format!(
        r#"{{"status":"success","data":{{"resultType":"scalar","result":[1700000000,"{value}"]}}}}"#
    ))
}

#[tokio::test]
async fn nan_is_no_data_and_infinity_a_value() {
    assert_eq!(
        observe_canned(scalar("NaN"), ClientSettings::default()).await,
        Observation::NoData
    );
    assert_eq!(
        observe_canned(scalar("-Inf"), ClientSettings::default()).await,
        Observation::Value(f64::NEG_INFINITY)
    );
}

#[tokio::test]
async fn garbage_body_is_an_error_quoting_it() {
    let canned = Canned::ok("<html><body>Welcome to nginx!</body></html>");
    let message = error_message(observe_canned(canned, ClientSettings::default()).await);
    assert!(
        message.contains("not the Prometheus API's JSON"),
        "{message}"
    );
    assert!(message.contains("Welcome to nginx!"), "{message}");
}

#[tokio::test]
async fn oversized_bodies_are_errors_with_or_without_a_length() {
    for content_length in [true, false] {
        let canned = Canned {
            content_length,
            ..Canned::ok(vec![b' '; MAX_ANSWER_BYTES + 1])
        };
        let message = error_message(observe_canned(canned, ClientSettings::default()).await);
        assert!(
            message.contains("larger than"),
            "{content_length}: {message}"
        );
    }
}

#[tokio::test]
async fn status_error_carries_prometheus_message() {
    let canned = Canned {
        status: 422,
        ..Canned::ok(
            r#"{"status":"error","errorType":"execution","error":"query processing would load too many samples into memory in query execution"}"#,
        )
    };
    let message = error_message(observe_canned(canned, ClientSettings::default()).await);
    assert!(message.contains("HTTP 422"), "{message}");
    assert!(message.contains("execution"), "{message}");
    assert!(message.contains("too many samples"), "{message}");
}

#[tokio::test]
async fn non_2xx_without_json_quotes_the_body() {
    let canned = Canned {
        status: 503,
        ..Canned::ok("upstream connect error or disconnect/reset before headers")
    };
    let message = error_message(observe_canned(canned, ClientSettings::default()).await);
    assert!(message.contains("HTTP 503"), "{message}");
    assert!(message.contains("upstream connect error"), "{message}");
}

#[tokio::test]
async fn slow_server_times_out_naming_the_timeout() {
    let canned = Canned {
        delay: Duration::from_secs(5),
        ..scalar("1")
    };
    let settings = ClientSettings {
        timeout: Duration::from_millis(300),
        ..ClientSettings::default()
    };
    let start = Instant::now();
    let message = error_message(observe_canned(canned, settings).await);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(
        message.contains("did not answer within the 300ms timeout"),
        "{message}"
    );
}

#[tokio::test]
async fn credentials_headers_time_and_path_prefix_are_sent() {
    let fake = Fake::start(scalar("0.5"));
    let mut settings = ClientSettings {
        auth: PrometheusAuth::Bearer("t0ken".into()),
        ..ClientSettings::default()
    };
    settings.add_header_line("X-Scope-OrgID: tenant-a").unwrap();
    let client = PrometheusClient::new(
        &PrometheusEndpoint {
            address: format!("{}/prometheus/", fake.address()),
            settings,
        },
        &support::loopback_policy(),
    )
    .unwrap();
    let gate = PrometheusGate {
        query: r#"up{namespace="{{namespace}}"}"#.into(),
        ..PrometheusGate::default()
    };
    let at: Timestamp = "2026-02-01T19:18:00.250Z".parse().unwrap();
    assert_eq!(
        observe(&client, &gate, &ctx(at)).await,
        Observation::Value(0.5)
    );

    let basic = ClientSettings {
        auth: PrometheusAuth::Basic {
            username: "Aladdin".into(),
            password: "open sesame".into(),
        },
        ..ClientSettings::default()
    };
    assert_eq!(
        observe(&fake.client(basic), &gate, &ctx(at)).await,
        Observation::Value(0.5)
    );

    let requests = fake.requests();
    let [bearer, basic] = requests.as_slice() else {
        panic!("{requests:?}")
    };
    assert_eq!(bearer.line, "POST /prometheus/api/v1/query HTTP/1.1");
    assert_eq!(bearer.header("authorization"), Some("Bearer t0ken"));
    assert_eq!(bearer.header("x-scope-orgid"), Some("tenant-a"));
    assert!(
        bearer.body.contains("time=1769973480.250"),
        "{}",
        bearer.body
    );
    assert!(
        bearer.body.contains("query=up%7Bnamespace%3D%22shop%22%7D"),
        "{}",
        bearer.body
    );
    assert!(bearer.body.contains("timeout=10000ms"), "{}", bearer.body);
    assert_eq!(basic.line, "POST /api/v1/query HTTP/1.1");
    assert_eq!(
        basic.header("authorization"),
        Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
    );
}

/// The form value of `name` in a recorded request body, decoded.
fn form_value(body: &str, name: &str) -> String {
    let raw = body
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .unwrap_or_default();
    let mut out = Vec::new();
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn a_hostile_flag_key_cannot_change_the_query() {
    let fake = Fake::start(scalar("0"));
    let client = fake.client(ClientSettings::default());
    let hostile = r#"x"} or vector(1) or {a=""#;
    let ctx = GateContext {
        flag: Some(hostile),
        ..ctx(Timestamp::UNIX_EPOCH)
    };
    let gate = PrometheusGate {
        query: r#"sum(errors{flag="{{flag}}"})"#.into(),
        ..PrometheusGate::default()
    };
    assert_eq!(observe(&client, &gate, &ctx).await, Observation::Value(0.0));
    let alerts = rollgate::api::AlertsGate {
        matchers: vec![r#"flag="{{flag}}""#.into()],
        ..rollgate::api::AlertsGate::default()
    };
    let _ = rollgate::gates::alerts::observe(&client, &alerts, &ctx).await;
    let requests = fake.requests();
    let sent: Vec<String> = requests
        .iter()
        .map(|r| form_value(&r.body, "query"))
        .collect();
    assert_eq!(
        sent,
        [
            r#"sum(errors{flag="x\"} or vector(1) or {a=\""})"#,
            r#"count(ALERTS{alertstate="firing", flag="x\"} or vector(1) or {a=\""})"#,
        ]
    );
}
