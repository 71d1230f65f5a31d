//! The default Prometheus behind TLS with a private CA, a client certificate and basic auth: a
//! real Prometheus started with `--web.config.file` (the CA and certificates are made here
//! with `openssl`), read by the gate client and by `rollgate backtest`, and refused without
//! the CA or with a wrong password. Token-file rotation against a loopback server that records
//! the `Authorization` header.

use crate::support;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use rollgate::gates::Secret;
use rollgate::gates::prometheus::{
    Answer, ClientSettings, PrometheusAuth, PrometheusClient, PrometheusEndpoint, QueryError,
    TokenFile,
};
use tempfile::TempDir;

use crate::support::loopback::{Response, TestServer};

/// A bcrypt hash (cost 10) of `carol123`, from the exporter-toolkit's examples.
const CAROL_HASH: &str = "$2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu";
const CAROL_PASSWORD: &str = "carol123";

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and `prometheus.test`, and a client certificate,
/// all in `dir`.
fn make_pki(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend_from_slice(&ec);
    ca.extend_from_slice(&[
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=rollgate test CA",
    ]);
    openssl(dir, &ca);
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:prometheus.test\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        fs::write(dir.join(format!("{name}.ext")), ext).expect("write ext");
        let mut req = vec!["req"];
        req.extend_from_slice(&ec);
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let crt = format!("{name}.crt");
        let extfile = format!("{name}.ext");
        let subject = format!("/CN={name}");
        req.extend_from_slice(&["-keyout", &key, "-out", &csr, "-subj", &subject]);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &extfile,
            ],
        );
    }
}

struct SecurePrometheus {
    child: Child,
    dir: TempDir,
    address: String,
}

impl Drop for SecurePrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SecurePrometheus {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn start() -> Option<Self> {
        let binary = support::prometheus::binary()?;
        let dir = tempfile::tempdir().expect("temporary directory");
        make_pki(dir.path());
        fs::write(
            dir.path().join("web.yml"),
            format!(
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
                 client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n\
                 basic_auth_users:\n  carol: {CAROL_HASH}\n"
            ),
        )
        .expect("web config");
        fs::write(
            dir.path().join("prometheus.yml"),
            "global:\n  scrape_interval: 1s\nscrape_configs: []\n",
        )
        .expect("config");
        fs::write(dir.path().join("password"), format!("{CAROL_PASSWORD}\n")).expect("password");
        fs::write(dir.path().join("wrong-password"), "carol124\n").expect("password");
        let port = support::prometheus::free_port();
        let log = fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new(binary)
            .current_dir(dir.path())
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!(
                "--web.config.file={}",
                dir.path().join("web.yml").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let server = Self {
            child,
            dir,
            address: format!("https://127.0.0.1:{port}"),
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "prometheus did not listen: {}",
                fs::read_to_string(server.dir.path().join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }

    /// Settings with the CA, the client certificate and `password`.
    fn settings(&self, password: &str) -> ClientSettings {
        let mut identity = fs::read(self.dir.path().join("client.crt")).expect("cert");
        identity.push(b'\n');
        identity.extend(fs::read(self.dir.path().join("client.key")).expect("key"));
        ClientSettings {
            auth: PrometheusAuth::Basic {
                username: "carol".into(),
                password: Secret::new(password.into()),
            },
            ca_pem: Some(fs::read(self.dir.path().join("ca.crt")).expect("ca")),
            client_identity_pem: Some(Secret::new(identity)),
            timeout: Duration::from_secs(5),
            ..ClientSettings::default()
        }
    }

    fn client(&self, address: &str, settings: ClientSettings) -> PrometheusClient {
        PrometheusClient::new(
            &PrometheusEndpoint {
                address: address.to_owned(),
                settings,
            },
            &support::loopback_policy(),
        )
        .expect("client")
    }

    /// Waits until the server answers through TLS and auth; its answer to `vector(1)`.
    async fn ready_query(&self, client: &PrometheusClient) -> Result<f64, QueryError> {
        let start = Instant::now();
        loop {
            let result = client.query("vector(1)", Timestamp::now()).await;
            match result {
                Ok(Answer::Value(v)) => return Ok(v),
                Ok(other) => panic!("not a value: {other:?}"),
                Err(QueryError::Unreachable { .. }) | Err(QueryError::Http { .. })
                    if start.elapsed() < Duration::from_secs(20)
                        && !matches!(&result, Err(e) if e.to_string().contains("401")) =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[tokio::test]
async fn the_gate_client_reads_through_tls_client_certificate_and_basic_auth() {
    let Some(server) = SecurePrometheus::start() else {
        return;
    };
    let good = server.client(&server.address, server.settings(CAROL_PASSWORD));
    assert_eq!(server.ready_query(&good).await.expect("an answer"), 1.0);

    // Reached by another name than its certificate's: --prometheus-tls-server-name.
    let mut named = server.settings(CAROL_PASSWORD);
    named.tls_server_name = Some("prometheus.test".into());
    let by_name = server.client(&server.address, named);
    assert_eq!(server.ready_query(&by_name).await.expect("an answer"), 1.0);
    let mut misnamed = server.settings(CAROL_PASSWORD);
    misnamed.tls_server_name = Some("elsewhere.test".into());
    let error = server
        .client(&server.address, misnamed)
        .query("vector(1)", Timestamp::now())
        .await
        .expect_err("the name does not match");
    assert!(error.to_string().contains("certificate"), "{error}");

    // Without the CA: a TLS error naming the certificate.
    let mut no_ca = server.settings(CAROL_PASSWORD);
    no_ca.ca_pem = None;
    let error = server
        .client(&server.address, no_ca)
        .query("vector(1)", Timestamp::now())
        .await
        .expect_err("an unknown issuer is refused");
    let text = error.to_string();
    assert!(
        text.contains("certificate") || text.contains("UnknownIssuer"),
        "{text}"
    );

    // A wrong password: Prometheus answers 401, an error.
    let wrong = server.client(&server.address, server.settings("carol124"));
    let error = wrong
        .query("vector(1)", Timestamp::now())
        .await
        .expect_err("401");
    assert!(error.to_string().contains("401"), "{error}");
    assert!(!format!("{error} {error:?}").contains("carol124"));
}

fn rollgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(args)
        .env_remove("ROLLGATE_PROMETHEUS")
        .env_remove("ROLLGATE_PROMETHEUS_USERNAME")
        .output()
        .expect("run rollgate")
}

const PLAN: &str = r#"apiVersion: rollgate.dev/v1alpha1
kind: Rollout
metadata: {name: auth, namespace: test}
spec:
  target: {configMap: {name: cm, key: percent}}
  stages:
    - {percent: 1, duration: 1m}
    - {percent: 5, duration: 1m}
  analysis:
    interval: 30s
    gates:
      - name: always-one
        prometheus: {query: 'vector(1)'}
        max: 2
"#;

#[tokio::test]
async fn backtest_reads_through_the_ca_and_credentials_and_refuses_without() {
    let Some(server) = SecurePrometheus::start() else {
        return;
    };
    let ready = server.client(&server.address, server.settings(CAROL_PASSWORD));
    server.ready_query(&ready).await.expect("ready");
    let plan = server.dir.path().join("plan.yaml");
    fs::write(&plan, PLAN).expect("plan");
    let start = (Timestamp::now() - Duration::from_secs(600)).to_string();
    let (plan, ca, cert, key, password, wrong) = (
        plan.display().to_string(),
        server.path("ca.crt"),
        server.path("client.crt"),
        server.path("client.key"),
        server.path("password"),
        server.path("wrong-password"),
    );
    let base = |password_file: &str| {
        vec![
            "backtest".to_owned(),
            plan.clone(),
            "--prometheus".into(),
            server.address.clone(),
            "--start".into(),
            start.clone(),
            "--allow-address".into(),
            "127.0.0.1".into(),
            "--prometheus-cert-file".into(),
            cert.clone(),
            "--prometheus-key-file".into(),
            key.clone(),
            "--prometheus-username".into(),
            "carol".into(),
            "--prometheus-password-file".into(),
            password_file.to_owned(),
            "--prometheus-header".into(),
            "X-Scope-OrgID: team-a".into(),
            "--output".into(),
            "json".into(),
            "--expect".into(),
            "Succeeded".into(),
        ]
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        rollgate(&args)
    };

    let mut good = base(&password);
    good.extend(["--prometheus-ca-file".to_owned(), ca.clone()]);
    let output = run(good);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Succeeded"), "{stdout}");

    // The same CA as --ca-file (every HTTPS client trusts it).
    let mut global = base(&password);
    global.extend(["--ca-file".to_owned(), ca.clone()]);
    let output = run(global);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Without the CA: a TLS error, not a verdict.
    let output = run(base(&password));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("invalid peer certificate: UnknownIssuer"),
        "{text}"
    );

    // A wrong password: 401, never the password itself.
    let mut wrong_run = base(&wrong);
    wrong_run.extend(["--prometheus-ca-file".to_owned(), ca.clone()]);
    let output = run(wrong_run);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("401"), "{text}");
    assert!(!text.contains("carol124"), "{text}");

    // Files that cannot be used are named by flag and path.
    let mut missing = base(&password);
    missing.extend([
        "--prometheus-ca-file".to_owned(),
        "/nonexistent/ca.crt".into(),
    ]);
    let output = run(missing);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--prometheus-ca-file /nonexistent/ca.crt"),
        "{stderr}"
    );
}

/// A loopback HTTP server answering every request with an empty vector and recording each
/// `Authorization` header.
async fn recording_server() -> (String, Arc<Mutex<Vec<String>>>, TestServer) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let server = TestServer::start(move |request| {
        let auth = request.header("authorization").unwrap_or_default().to_owned();
        record.lock().expect("lock").push(auth);
        Response::json(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"1"]}]}}"#,
        )
    })
    .await;
    (server.url(), seen, server)
}

#[tokio::test]
async fn a_rotated_token_file_is_sent_from_the_next_request_on() {
    let (address, seen, _server) = recording_server().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let token = dir.path().join("token");
    fs::write(&token, "first-token\n").expect("token");
    let client = PrometheusClient::new(
        &PrometheusEndpoint {
            address,
            settings: ClientSettings {
                auth: PrometheusAuth::BearerFile(TokenFile::new(&token)),
                ..ClientSettings::default()
            },
        },
        &support::loopback_policy(),
    )
    .expect("client");
    client
        .query("up", Timestamp::now())
        .await
        .expect("first answer");
    // As the kubelet does: a new file swapped in, with another length and modification time.
    let next = dir.path().join("token.new");
    fs::write(&next, "second-token-rotated\n").expect("token");
    fs::rename(&next, &token).expect("swap");
    client
        .query("up", Timestamp::now())
        .await
        .expect("second answer");
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![
            "Bearer first-token".to_owned(),
            "Bearer second-token-rotated".to_owned()
        ]
    );
    // A token file that disappears is an error naming the flag and the file, not a silent
    // request without credentials.
    fs::remove_file(&token).expect("remove");
    let error = client
        .query("up", Timestamp::now())
        .await
        .expect_err("no token");
    assert!(
        error.to_string().contains("--prometheus-token-file"),
        "{error}"
    );
    assert_eq!(seen.lock().expect("lock").len(), 2);
}

/// The controller's observation path: a gate without an address reads the default
/// Prometheus with its credentials and CA; a gate naming the same server as its own address
/// gets none of them (and `--ca-file`, trusted by every client, lets it verify the server but
/// not authenticate).
#[tokio::test]
async fn gates_read_the_default_prometheus_with_its_credentials_and_only_it() {
    use rollgate::api::{Gate, Percent, PrometheusConnection, PrometheusGate};
    use rollgate::engine::Observation;
    use rollgate::gates::{GateContext, GateEnv, GateInput, observe};
    use rollgate::net::AddressPolicy;

    let Some(server) = SecurePrometheus::start() else {
        return;
    };
    let ready = server.client(&server.address, server.settings(CAROL_PASSWORD));
    server.ready_query(&ready).await.expect("ready");
    let ca = fs::read(server.dir.path().join("ca.crt")).expect("ca");
    let policy = AddressPolicy::new(vec!["127.0.0.1".parse().expect("rule")])
        .with_extra_ca(ca)
        .expect("a CA bundle");
    let env = GateEnv::with_policy(
        Some(PrometheusEndpoint {
            address: server.address.clone(),
            settings: server.settings(CAROL_PASSWORD),
        }),
        policy,
    )
    .expect("environment");
    let observe_gate = |address: Option<String>| {
        let gate = Gate {
            name: "always-one".into(),
            prometheus: Some(PrometheusGate {
                query: "vector(1)".into(),
                connection: PrometheusConnection {
                    address,
                    ..PrometheusConnection::default()
                },
                ..PrometheusGate::default()
            }),
            failure_limit: 1,
            ..Gate::default()
        };
        let env = &env;
        async move {
            let input = GateInput {
                gate: &gate,
                ctx: GateContext {
                    rollout: "checkout",
                    namespace: "shop",
                    flag: None,
                    allowlist: &[],
                    stage: 0,
                    percent: Percent::whole(1),
                    at: Timestamp::now(),
                },
                secret: None,
                memory: None,
                compare: None,
            };
            observe(env, input).await.observation
        }
    };
    assert_eq!(observe_gate(None).await, Observation::Value(1.0));
    match observe_gate(Some(server.address.clone())).await {
        Observation::Error(message) => assert!(
            !message.contains("UnknownIssuer") && !message.contains(CAROL_PASSWORD),
            "{message}"
        ),
        other => panic!("the default credentials went to a gate's own address: {other:?}"),
    }
}

#[test]
fn controller_and_backtest_take_the_same_flags_and_hide_the_deprecated_ones() {
    let flags = [
        "--prometheus-ca-file",
        "--prometheus-cert-file",
        "--prometheus-key-file",
        "--prometheus-token-file",
        "--prometheus-username",
        "--prometheus-password-file",
        "--prometheus-header",
        "--prometheus-tls-server-name",
        "--ca-file",
    ];
    for command in ["controller", "backtest"] {
        let help = String::from_utf8_lossy(&rollgate(&[command, "--help"]).stdout).to_string();
        for flag in flags {
            assert!(
                help.contains(flag),
                "{command} --help lacks {flag}:\n{help}"
            );
        }
        for hidden in [
            "--prometheus-token ",
            "--prometheus-password ",
            "--prometheus-ca ",
        ] {
            assert!(
                !help.contains(hidden),
                "{command} --help shows {hidden}:\n{help}"
            );
        }
    }
}

#[test]
fn unusable_files_are_usage_errors_naming_the_flag_and_the_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let empty = dir.path().join("empty");
    fs::write(&empty, "").expect("empty file");
    let empty = empty.display().to_string();
    for (extra, expected) in [
        (
            vec!["--prometheus-token-file", "/nonexistent/token"],
            "--prometheus-token-file /nonexistent/token: cannot read the file".to_owned(),
        ),
        (
            vec!["--prometheus-token-file", &empty],
            format!("--prometheus-token-file {empty}: the file is empty"),
        ),
        (
            vec!["--prometheus-ca-file", &empty],
            format!("--prometheus-ca-file {empty}: holds no PEM certificate"),
        ),
        (
            vec!["--ca-file", "/dev/zero"],
            "--ca-file /dev/zero: the file is larger than 1 MiB".to_owned(),
        ),
        (
            vec![
                "--prometheus-username",
                "ann",
                "--prometheus-password-file",
                "/nonexistent/password",
            ],
            "--prometheus-password-file /nonexistent/password".to_owned(),
        ),
        (
            vec!["--prometheus-username", "ann"],
            "--prometheus-username needs --prometheus-password-file".to_owned(),
        ),
        (
            vec!["--prometheus-tls-server-name", "not a name"],
            "--prometheus-tls-server-name \"not a name\"".to_owned(),
        ),
    ] {
        let mut args = vec![
            "controller",
            "--prometheus",
            "https://prometheus.monitoring:9090",
        ];
        args.extend(extra.iter().copied());
        let output = rollgate(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&expected), "{args:?}: {stderr}");
    }
    // A client certificate needs its key.
    let output = rollgate(&[
        "controller",
        "--prometheus",
        "https://p:9090",
        "--prometheus-cert-file",
        "/tmp/cert.pem",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--prometheus-key-file"));
}

/// A TLS server with the certificate made by [`make_pki`] (signed by its CA) answering every
/// request `{"value": 1}` and closing.
async fn tls_server(dir: &Path) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs =
        vec![CertificateDer::from_pem_file(dir.join("server.crt")).expect("server certificate")];
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("server key");
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = r#"{"value": 1}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    address
}

/// `--ca-file` reaches every client built from the address policy: an HTTP gate (the same
/// builder as OFREP probes) and the guarded client of webhook targets and notifications; the
/// notifier's own client for the operator's endpoints takes it too.
#[tokio::test]
async fn the_extra_ca_is_trusted_by_every_https_client() {
    use rollgate::api::{Gate, HttpGate, Percent};
    use rollgate::engine::Observation;
    use rollgate::gates::{GateContext, GateEnv, GateInput, observe};
    use rollgate::net::{AddressPolicy, GuardedClient, with_extra_roots};

    let dir = tempfile::tempdir().expect("temporary directory");
    make_pki(dir.path());
    let address = tls_server(dir.path()).await;
    let url = format!("https://127.0.0.1:{}/health", address.port());
    let ca = fs::read(dir.path().join("ca.crt")).expect("ca");
    let plain = AddressPolicy::new(vec!["127.0.0.1".parse().expect("rule")]);
    let with_ca = plain.clone().with_extra_ca(ca.clone()).expect("a bundle");
    assert!(
        plain.clone().with_extra_ca(b"not pem".to_vec()).is_err(),
        "a bundle without certificates is refused"
    );

    let gate = Gate {
        name: "health".into(),
        http: Some(HttpGate {
            url: url.clone(),
            json_path: "$.value".into(),
            ..HttpGate::default()
        }),
        failure_limit: 1,
        ..Gate::default()
    };
    let observe_with = |policy: AddressPolicy| {
        let gate = &gate;
        async move {
            let env = GateEnv::with_policy(None, policy)
                .expect("environment")
                .without_namespace_scope();
            let input = GateInput {
                gate,
                ctx: GateContext {
                    rollout: "checkout",
                    namespace: "shop",
                    flag: None,
                    allowlist: &[],
                    stage: 0,
                    percent: Percent::whole(1),
                    at: Timestamp::now(),
                },
                secret: None,
                memory: None,
                compare: None,
            };
            observe(&env, input).await.observation
        }
    };
    assert!(
        matches!(observe_with(plain.clone()).await, Observation::Error(_)),
        "a private CA is not trusted without --ca-file"
    );
    assert_eq!(observe_with(with_ca.clone()).await, Observation::Value(1.0));

    for (policy, trusted) in [(plain, false), (with_ca, true)] {
        let guarded = GuardedClient::build(Arc::new(policy)).expect("client");
        let sent = guarded.http().get(&url).send().await;
        assert_eq!(sent.is_ok(), trusted, "{sent:?}");
    }
    for (pem, trusted) in [(None, false), (Some(ca.as_slice()), true)] {
        let http = with_extra_roots(reqwest::Client::builder(), pem)
            .build()
            .expect("client");
        assert_eq!(http.get(&url).send().await.is_ok(), trusted);
    }
}
