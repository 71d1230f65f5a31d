//! What a Rollout author can and cannot make the gates do: reach only the addresses the
//! operator allows (checked after DNS, no redirects), keep the default credentials with the
//! default Prometheus, never show a secret, store only bounded, clean remote text, and finish
//! within one deadline. Every server here listens on loopback, which the default policy
//! refuses: tests that need it allow it explicitly.

use crate::support;

use rollgate::api::Percent;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::loopback::{Response, TestServer};
use k8s_openapi::jiff::Timestamp;
use rollgate::api::{AlertsGate, Gate, HttpGate, OfrepGate, PrometheusConnection, PrometheusGate};
use rollgate::engine::Observation;
use rollgate::gates::prometheus::{ClientSettings, PrometheusAuth, PrometheusEndpoint};
use rollgate::gates::{GateContext, GateEnv, GateInput, SecretData, observe, observe_all, ofrep};
use rollgate::net::{AddressPolicy, AllowRule, GuardedClient, guarded_builder};
use support::fake::{Canned, Fake};

fn ctx() -> GateContext<'static> {
    GateContext {
        rollout: "checkout",
        namespace: "shop",
        flag: Some("fav"),
        allowlist: &[],
        stage: 0,
        percent: Percent::whole(100),
        at: Timestamp::UNIX_EPOCH,
    }
}

fn loopback() -> Vec<AllowRule> {
    vec!["127.0.0.1".parse().unwrap()]
}

fn http_gate(url: String) -> Gate {
    Gate {
        name: "health".into(),
        http: Some(HttpGate {
            url,
            json_path: "$.ok".into(),
            ..HttpGate::default()
        }),
        failure_limit: 1,
        ..Gate::default()
    }
}

fn prometheus_gate(gate: PrometheusGate) -> Gate {
    Gate {
        name: "error-rate".into(),
        prometheus: Some(gate),
        failure_limit: 1,
        ..Gate::default()
    }
}

async fn observe_one(env: &GateEnv, gate: &Gate, secret: Option<&SecretData>) -> Observation {
    let input = GateInput {
        gate,
        ctx: ctx(),
        secret,
        memory: None,
        compare: None,
    };
    observe(env, input).await.observation
}

fn error(observation: &Observation) -> &str {
    match observation {
        Observation::Error(message) => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn scalar(value: &str) -> Canned {
    Canned::ok(format!(
        r#"{{"status":"success","data":{{"resultType":"scalar","result":[1,"{value}"]}}}}"#
    ))
}

fn endpoint(fake: &Fake, token: &str) -> PrometheusEndpoint {
    PrometheusEndpoint {
        address: fake.address(),
        settings: ClientSettings {
            auth: PrometheusAuth::from_parts(Some(token.into()), None, None).unwrap(),
            ..ClientSettings::default()
        },
    }
}

#[tokio::test]
async fn the_default_policy_refuses_loopback_and_an_allow_rule_opens_it() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let server = TestServer::start(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Response::json(200, r#"{"ok": true}"#)
    })
    .await;
    let gate = http_gate(format!("{}/health", server.url()));

    let closed = GateEnv::new(None, Vec::new()).unwrap();
    let refused = observe_one(&closed, &gate, None).await;
    let message = error(&refused);
    assert!(
        message.contains("not an allowed address")
            && message.contains("--allow-address 127.0.0.1/32"),
        "{message}"
    );
    for other in [
        Gate {
            name: "determinism".into(),
            ofrep: Some(OfrepGate {
                address: server.url(),
                sample: 5,
                ..OfrepGate::default()
            }),
            failure_limit: 1,
            ..Gate::default()
        },
        prometheus_gate(PrometheusGate {
            query: "up".into(),
            connection: PrometheusConnection {
                address: Some(server.url()),
                ..PrometheusConnection::default()
            },
            ..PrometheusGate::default()
        }),
    ] {
        let message = error(&observe_one(&closed, &other, None).await).to_owned();
        assert!(
            message.contains("--allow-address 127.0.0.1/32"),
            "{message}"
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a refused address was called"
    );

    let open = GateEnv::new(None, loopback()).unwrap();
    assert_eq!(
        observe_one(&open, &gate, None).await,
        Observation::Value(1.0)
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_link_local_metadata_address_is_refused() {
    let env = GateEnv::new(None, loopback()).unwrap();
    let gate = http_gate("http://169.254.169.254/latest/meta-data/".into());
    let message = error(&observe_one(&env, &gate, None).await).to_owned();
    assert!(
        message.contains("--allow-address 169.254.169.254/32"),
        "{message}"
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let target = TestServer::start(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Response::json(200, r#"{"ok": true}"#)
    })
    .await;
    let location = format!("{}/health", target.url());
    let redirect = TestServer::canned(Response::json(302, "").header("Location", location)).await;
    let address = redirect.addr;
    let env = GateEnv::new(None, loopback()).unwrap();
    let observation = observe_one(&env, &http_gate(format!("http://{address}/")), None).await;
    let message = error(&observation);
    assert!(message.contains("HTTP 302"), "{message}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect was followed");
}

#[tokio::test]
async fn a_name_is_checked_again_on_what_it_resolves_to() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let server = TestServer::start(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Response::json(200, r#"{"ok": true}"#)
    })
    .await;
    // A host-name rule lets the name through the URL check; what it resolves to is checked
    // again, and loopback needs a rule naming the address itself: `localhost` resolves to
    // loopback, which neither the host rule nor 10.0.0.0/8 names.
    let env = GateEnv::new(
        None,
        vec!["localhost".parse().unwrap(), "10.0.0.0/8".parse().unwrap()],
    )
    .unwrap();
    let gate = http_gate(format!("http://localhost:{}/health", server.addr.port()));
    let message = error(&observe_one(&env, &gate, None).await).to_owned();
    assert!(message.contains("localhost (resolved to"), "{message}");
    assert!(message.contains("names it literally"), "{message}");
    assert!(message.contains("--allow-address"), "{message}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    // A one-label name is a Service of the Rollout's namespace, never looked up through the
    // search path or /etc/hosts: `http://localhost` from namespace `shop` is
    // `localhost.shop.svc.cluster.local`, which does not exist here.
    let env = GateEnv::new(None, vec!["127.0.0.1".parse().unwrap()]).unwrap();
    let message = error(&observe_one(&env, &gate, None).await).to_owned();
    assert!(message.contains("failed"), "{message}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_default_token_goes_only_to_the_default_prometheus() {
    let default = Fake::start(scalar("0.5"));
    let other = Fake::start(scalar("0.25"));
    // The test servers speak plain HTTP: the gate's own Secret may travel over it only
    // because the operator allows it here.
    let env = GateEnv::with_policy(
        Some(endpoint(&default, "default-token")),
        AddressPolicy::new(loopback()).with_insecure_credentials(true),
    )
    .unwrap();

    // No address of its own: the default server, with the default token.
    let plain = prometheus_gate(PrometheusGate {
        query: "up".into(),
        ..PrometheusGate::default()
    });
    assert_eq!(
        observe_one(&env, &plain, None).await,
        Observation::Value(0.5)
    );

    // Its own address: no default token; only its own Secret, and only there.
    let secret: SecretData = [
        ("token".to_owned(), b"gate-token".to_vec()),
        ("header.X-Scope-OrgID".to_owned(), b"tenant-a".to_vec()),
    ]
    .into_iter()
    .collect();
    let own = prometheus_gate(PrometheusGate {
        query: "up".into(),
        connection: PrometheusConnection {
            address: Some(other.address()),
            secret_ref: Some(Default::default()),
            ..PrometheusConnection::default()
        },
        ..PrometheusGate::default()
    });
    assert_eq!(
        observe_one(&env, &own, Some(&secret)).await,
        Observation::Value(0.25)
    );
    let bare = prometheus_gate(PrometheusGate {
        query: "up".into(),
        connection: PrometheusConnection {
            address: Some(other.address()),
            ..PrometheusConnection::default()
        },
        ..PrometheusGate::default()
    });
    assert_eq!(
        observe_one(&env, &bare, None).await,
        Observation::Value(0.25)
    );

    // Headers or insecureSkipVerify without an address never reach the default server.
    let mut tenant = PrometheusGate {
        query: "up".into(),
        ..PrometheusGate::default()
    };
    tenant
        .connection
        .headers
        .insert("X-Scope-OrgID".into(), "other-tenant".into());
    let message = error(&observe_one(&env, &prometheus_gate(tenant), None).await).to_owned();
    assert!(
        message.contains("headers applies only to the gate's own Prometheus"),
        "{message}"
    );
    let insecure = Gate {
        name: "alerts".into(),
        alerts: Some(AlertsGate {
            connection: PrometheusConnection {
                insecure_skip_verify: true,
                ..PrometheusConnection::default()
            },
            ..AlertsGate::default()
        }),
        failure_limit: 1,
        ..Gate::default()
    };
    let message = error(&observe_one(&env, &insecure, None).await).to_owned();
    assert!(
        message.contains("insecureSkipVerify applies only"),
        "{message}"
    );

    let to_default = default.requests();
    assert_eq!(to_default.len(), 1, "{to_default:?}");
    assert_eq!(
        to_default[0].header("authorization"),
        Some("Bearer default-token")
    );
    assert_eq!(to_default[0].header("x-scope-orgid"), None);
    let to_other = other.requests();
    assert_eq!(to_other.len(), 2, "{to_other:?}");
    assert_eq!(
        to_other[0].header("authorization"),
        Some("Bearer gate-token")
    );
    assert_eq!(to_other[0].header("x-scope-orgid"), Some("tenant-a"));
    assert_eq!(to_other[1].header("authorization"), None);
}

#[tokio::test]
async fn secrets_never_show_in_debug_output() {
    let default = Fake::start(scalar("1"));
    let mut endpoint = endpoint(&default, "s3cret-token");
    endpoint
        .settings
        .add_header_line("X-Api-Key: s3cret-header")
        .unwrap();
    let env = GateEnv::new(Some(endpoint.clone()), loopback()).unwrap();
    let secret: SecretData = [("password".to_owned(), b"s3cret-password".to_vec())]
        .into_iter()
        .collect();
    for shown in [
        format!("{env:?}"),
        format!("{endpoint:?}"),
        format!("{secret:?}"),
        format!("{:?}", env.default_prometheus()),
    ] {
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}

#[tokio::test]
async fn remote_text_in_an_error_is_capped_and_clean() {
    let hostile = format!(
        r#"{{"status":"error","errorType":"bad_data","error":"\u001b[31mred\r\nforged line {}"}}"#,
        "x".repeat(100_000)
    );
    let fake = Fake::start(Canned {
        status: 400,
        ..Canned::ok(hostile)
    });
    let env = GateEnv::new(Some(endpoint(&fake, "t")), Vec::new()).unwrap();
    let gate = prometheus_gate(PrometheusGate {
        query: "up".into(),
        ..PrometheusGate::default()
    });
    let message = error(&observe_one(&env, &gate, None).await).to_owned();
    assert!(message.contains("[31mred forged line"), "{message}");
    assert!(!message.chars().any(char::is_control), "{message:?}");
    assert!(
        message.chars().count() <= 481,
        "{} chars",
        message.chars().count()
    );
}

#[tokio::test]
async fn a_checkpoints_gates_run_at_once_under_one_deadline() {
    let slow = TestServer::start(|_| {
        Response::json(200, r#"{"ok": true}"#).after(Duration::from_secs(20))
    })
    .await;
    let fast = TestServer::start(|_| Response::json(200, r#"{"ok": true}"#)).await;
    let env = GateEnv::new(None, loopback()).unwrap();
    let (slow_gate, fast_gate) = (http_gate(slow.url()), http_gate(fast.url()));
    let inputs = [&slow_gate, &fast_gate]
        .into_iter()
        .map(|gate| GateInput {
            gate,
            ctx: ctx(),
            secret: None,
            memory: None,
            compare: None,
        })
        .collect();
    let outputs = observe_all(&env, inputs, Duration::from_millis(300)).await;
    let message = error(&outputs[0].observation);
    assert!(message.contains("deadline of 300ms"), "{message}");
    assert_eq!(outputs[1].observation, Observation::Value(1.0));
}

#[tokio::test]
async fn the_ofrep_probe_runs_under_one_overall_deadline() {
    let server = TestServer::start(|_| {
        Response::json(200, r#"{"value": true, "variant": "on"}"#).after(Duration::from_millis(50))
    })
    .await;
    let env = GateEnv::new(None, loopback())
        .unwrap()
        .with_gate_deadline(Duration::from_millis(200));
    let gate = Gate {
        name: "determinism".into(),
        ofrep: Some(OfrepGate {
            address: server.url(),
            sample: 1000,
            ..OfrepGate::default()
        }),
        failure_limit: 1,
        ..Gate::default()
    };
    let message = error(&observe_one(&env, &gate, None).await).to_owned();
    assert!(message.contains("did not finish within 200ms"), "{message}");
}

/// One accepted connection: the protocol negotiated by ALPN, and the requests it carried.
type Connection = (Option<Vec<u8>>, usize);

/// A TLS server offering HTTP/2 and HTTP/1.1 that answers OFREP evaluations over HTTP/1.1
/// with keep-alive, recording each connection's negotiated protocol and request count.
struct TlsOfrep {
    address: std::net::SocketAddr,
    connections: Arc<Mutex<Vec<Connection>>>,
}

async fn tls_ofrep() -> TlsOfrep {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs =
        vec![CertificateDer::from_pem_slice(include_bytes!("../support/tls/cert.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("../support/tls/key.pem")).unwrap();
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let connections = Arc::new(Mutex::new(Vec::new()));
    let record = connections.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, record) = (acceptor.clone(), record.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                let index = {
                    let mut all = record.lock().unwrap();
                    all.push((alpn.clone(), 0));
                    all.len() - 1
                };
                if alpn.as_deref() == Some(b"h2") {
                    return;
                }
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One request: its head, then its body by Content-Length.
                    let end = loop {
                        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break pos + 4;
                        }
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < end + length {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..end + length);
                    record.lock().unwrap()[index].1 += 1;
                    let body = r#"{"value": true, "variant": "on"}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if tls.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                    if head.contains("connection: close") {
                        let _ = tls.shutdown().await;
                        return;
                    }
                }
            });
        }
    });
    TlsOfrep {
        address,
        connections,
    }
}

fn trusting(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    let cert = reqwest::Certificate::from_pem(include_bytes!("../support/tls/cert.pem")).unwrap();
    builder.add_root_certificate(cert)
}

#[tokio::test]
async fn ofrep_calls_spread_over_fresh_http1_connections_over_https() {
    let server = tls_ofrep().await;
    let policy = support::loopback_policy();
    let url = format!("https://127.0.0.1:{}", server.address.port());

    // Control: a client left to itself negotiates HTTP/2 with this server.
    let default = trusting(guarded_builder(&policy)).build().unwrap();
    let _ = default.get(&url).send().await;
    let negotiated = server.connections.lock().unwrap().clone();
    assert_eq!(negotiated, vec![(Some(b"h2".to_vec()), 0)], "control");
    server.connections.lock().unwrap().clear();

    // The probe's client: HTTP/1.1, one connection per evaluation.
    let http = ofrep::spreading(trusting(guarded_builder(&policy)))
        .build()
        .unwrap();
    let client = GuardedClient::new(http, policy.clone());
    let gate = OfrepGate {
        address: url,
        sample: 10,
        ..OfrepGate::default()
    };
    let probe = ofrep::probe(&client, &gate, &ctx(), None, Duration::from_secs(30)).await;
    assert_eq!(probe.observation, Observation::Value(0.0), "{probe:?}");
    let connections = server.connections.lock().unwrap().clone();
    assert_eq!(connections.len(), 20, "{connections:?}");
    for (alpn, requests) in connections {
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(requests, 1);
    }
}

/// What a hostile server answers: text that looks like a credential.
const SECRET_TEXT: &str = "AKIAIOSFODNN7EXAMPLE-s3cr3t";

#[tokio::test]
async fn a_gates_secret_never_travels_over_plain_http_unless_the_operator_allows_it() {
    let own = Fake::start(scalar("0.25"));
    let env = GateEnv::new(None, loopback()).unwrap();
    let secret: SecretData = [("token".to_owned(), b"gate-token".to_vec())]
        .into_iter()
        .collect();
    let gate = prometheus_gate(PrometheusGate {
        query: "up".into(),
        connection: PrometheusConnection {
            address: Some(own.address()),
            secret_ref: Some(Default::default()),
            ..PrometheusConnection::default()
        },
        ..PrometheusGate::default()
    });
    let message = error(&observe_one(&env, &gate, Some(&secret)).await).to_owned();
    assert!(
        message.contains("not sent over plain http://")
            && message.contains("--allow-insecure-credentials"),
        "{message}"
    );
    assert!(own.requests().is_empty(), "the token was sent");
    // Without a Secret there is nothing to protect.
    let bare = prometheus_gate(PrometheusGate {
        query: "up".into(),
        connection: PrometheusConnection {
            address: Some(own.address()),
            ..PrometheusConnection::default()
        },
        ..PrometheusGate::default()
    });
    assert_eq!(
        observe_one(&env, &bare, None).await,
        Observation::Value(0.25)
    );
}

/// A Prometheus at an address the Rollout names keeps only its structured fields: the
/// status, `errorType` and counts; its `error` text, bodies and series labels never reach the
/// observation.
#[tokio::test]
async fn a_gates_own_prometheus_keeps_no_text_of_its_answers() {
    let answers = [
        (
            400,
            format!(r#"{{"status":"error","errorType":"bad_data","error":"{SECRET_TEXT}"}}"#),
            "bad_data",
        ),
        (502, format!("<html>{SECRET_TEXT}</html>"), "HTTP 502"),
        (
            200,
            format!("{SECRET_TEXT} is not json"),
            "not the Prometheus API's JSON",
        ),
        (
            200,
            format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"k":"{SECRET_TEXT}"}},"value":[1,"1"]}},{{"metric":{{"k":"b"}},"value":[1,"2"]}}]}}}}"#
            ),
            "2 series",
        ),
        (
            200,
            format!(
                r#"{{"status":"success","data":{{"resultType":"scalar","result":[1,"{SECRET_TEXT}"]}}}}"#
            ),
            "not a number",
        ),
    ];
    for (status, body, expected) in answers {
        let fake = Fake::start(Canned {
            status,
            ..Canned::ok(body.clone())
        });
        let env = GateEnv::new(None, loopback()).unwrap();
        let gate = prometheus_gate(PrometheusGate {
            query: "up".into(),
            connection: PrometheusConnection {
                address: Some(fake.address()),
                ..PrometheusConnection::default()
            },
            ..PrometheusGate::default()
        });
        let message = error(&observe_one(&env, &gate, None).await).to_owned();
        assert!(message.contains(expected), "{body}: {message}");
        assert!(!message.contains("s3cr3t"), "{body}: {message}");
        // The operator's own Prometheus keeps its words (its errors help fix the query).
        if status == 400 {
            let env = GateEnv::new(Some(endpoint(&fake, "t")), Vec::new()).unwrap();
            let default_gate = prometheus_gate(PrometheusGate {
                query: "up".into(),
                ..PrometheusGate::default()
            });
            let message = error(&observe_one(&env, &default_gate, None).await).to_owned();
            assert!(message.contains(SECRET_TEXT), "{message}");
        }
    }
}

/// An OFREP service keeps only its `errorCode`: `errorDetails` and any other body text never
/// reach the observation.
#[tokio::test]
async fn an_ofrep_services_text_never_reaches_the_observation() {
    let answers: [(u16, String, &str); 3] = [
        (
            500,
            format!(r#"{{"errorCode":"GENERAL","errorDetails":"{SECRET_TEXT}"}}"#),
            "GENERAL",
        ),
        (
            503,
            format!("{SECRET_TEXT} down for maintenance"),
            "HTTP 503",
        ),
        (
            200,
            format!("{SECRET_TEXT} <not json>"),
            "not the JSON of an evaluation",
        ),
    ];
    for (status, body, expected) in answers {
        let answer = body.clone();
        let server = TestServer::start(move |_| Response::json(status, answer.clone())).await;
        let env = GateEnv::new(None, loopback()).unwrap();
        let gate = Gate {
            name: "determinism".into(),
            ofrep: Some(OfrepGate {
                address: server.url(),
                sample: 2,
                ..OfrepGate::default()
            }),
            failure_limit: 1,
            ..Gate::default()
        };
        let message = error(&observe_one(&env, &gate, None).await).to_owned();
        assert!(message.contains(expected), "{body}: {message}");
        assert!(!message.contains("s3cr3t"), "{body}: {message}");
    }
}

/// Another namespace's Service and a public two-label name are refused for a Rollout of
/// `shop`, with the rule that would allow them.
#[tokio::test]
async fn gates_reach_their_own_namespaces_services_only() {
    let env = GateEnv::new(None, Vec::new()).unwrap();
    for (url, rule) in [
        ("http://prometheus.monitoring:9090", "prometheus.monitoring"),
        ("http://attacker.com", "attacker.com"),
    ] {
        let gate = prometheus_gate(PrometheusGate {
            query: "up".into(),
            connection: PrometheusConnection {
                address: Some(url.into()),
                ..PrometheusConnection::default()
            },
            ..PrometheusGate::default()
        });
        let message = error(&observe_one(&env, &gate, None).await).to_owned();
        assert!(
            message.contains(&format!("--allow-address {rule}")),
            "{message}"
        );
        assert!(message.contains("own namespace \"shop\""), "{message}");
    }
}
