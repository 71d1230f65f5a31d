//! The real binary as the kubectl plugin, against two stand-in API servers (tests/support):
//! kubectl's connection flags with a two-context kubeconfig (`--context`, `--cluster`,
//! `-n` over the context's namespace, `KUBECONFIG` with several files merged,
//! `--kubeconfig`, `--as`/`--as-group` sent as Impersonate headers), `status -w --timeout`
//! and its exit statuses (a watch dropped mid-way resumed, a compacted history relisted),
//! `get`/`list` with `-l`, `-o name|wide|json`, `promote --full`, `version`, and the
//! completion of Rollout names (`__complete` and `kubectl_complete-rollgate`).
//!
//! Each stand-in is reached through a small TCP relay that records what the client sent (to
//! see the HTTP headers) and can cut every open connection (to drop a watch mid-way).

use crate::support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Api;
use kube::api::{Patch, PatchParams};
use rollgate::api::Rollout;
use serde_json::{Value, json};
use support::apiserver::{ApiServer, Verb};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

// ── the relay ─────────────────────────────────────────────────────────────────────────────

/// A TCP relay in front of a stand-in: records the bytes clients send, and cuts every
/// connection on demand.
struct Relay {
    address: std::net::SocketAddr,
    sent: Arc<Mutex<Vec<u8>>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Relay {
    async fn start(upstream: &str) -> Self {
        let upstream = upstream
            .trim_start_matches("http://")
            .parse::<std::net::SocketAddr>()
            .expect("stand-in address");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let address = listener.local_addr().expect("relay address");
        let sent = Arc::new(Mutex::new(Vec::new()));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::new(Mutex::new(Vec::new()));
        let (log, open) = (sent.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = log.clone();
                let task = tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let up = async {
                        let mut buffer = vec![0u8; 16 * 1024];
                        loop {
                            use tokio::io::AsyncReadExt;
                            let n = match client_read.read(&mut buffer).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            log.lock()
                                .expect("relay log")
                                .extend_from_slice(&buffer[..n]);
                            if server_write.write_all(&buffer[..n]).await.is_err() {
                                break;
                            }
                        }
                    };
                    let down = tokio::io::copy(&mut server_read, &mut client_write);
                    tokio::select! {
                        () = up => {}
                        _ = down => {}
                    }
                });
                open.lock().expect("relay connections").push(task);
            }
        });
        Self {
            address,
            sent,
            connections,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Everything clients sent, lower-cased (header names are case-insensitive).
    fn sent(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().expect("relay log")).to_lowercase()
    }

    /// Drops every open connection, mid-stream.
    fn cut(&self) {
        for task in self
            .connections
            .lock()
            .expect("relay connections")
            .drain(..)
        {
            task.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

// ── fixtures ──────────────────────────────────────────────────────────────────────────────

fn rollout(namespace: &str, name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "target": {"flagd": {"configMap": "feature-flags", "flag": "new_checkout"}},
            "stages": [
                {"percent": 1, "duration": "1h"},
                {"percent": 5, "duration": "1h"},
                {"percent": 10, "duration": "1h"}
            ],
            "analysis": {"interval": "30m", "gates": [
                {"name": "error-rate", "max": 0.01,
                 "prometheus": {"query": "sum(rate(errors_total[5m]))"}}
            ]}
        }
    })
}

fn progressing() -> Value {
    json!({
        "phase": "Progressing", "stage": 0, "percent": 1, "observedGeneration": 1,
        "startedAt": "2026-02-01T19:18:00Z", "stageStartedAt": "2026-02-01T19:18:00Z",
        "nextCheckpointAt": "2026-02-01T19:48:00Z",
        "history": [{"at": "2026-02-01T19:18:00Z", "kind": "start", "stage": 0, "percent": 1}]
    })
}

async fn set_status(server: &ApiServer, namespace: &str, name: &str, status: Value) {
    let api: Api<Rollout> = Api::namespaced(server.client(), namespace);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .expect("status patched");
}

async fn set_phase(server: &ApiServer, namespace: &str, name: &str, phase: &str) {
    let mut status = progressing();
    status["phase"] = json!(phase);
    set_status(server, namespace, name, status).await;
}

/// Two stand-ins, A and B, each behind a relay, with a kubeconfig of two contexts: `a`
/// (current; namespace `alpha`) and `b` (namespace `beta`); user `bob` is another user.
struct Clusters {
    a: ApiServer,
    b: ApiServer,
    relay_a: Relay,
    relay_b: Relay,
    dir: tempfile::TempDir,
}

impl Clusters {
    async fn start() -> Self {
        let a = ApiServer::start().await;
        let b = ApiServer::start().await;
        let relay_a = Relay::start(&a.url()).await;
        let relay_b = Relay::start(&b.url()).await;
        a.put(rollout("alpha", "on-a", json!({"team": "pay"})), "kubectl");
        a.put(
            rollout("alpha", "also-on-a", json!({"team": "ship"})),
            "kubectl",
        );
        b.put(rollout("beta", "on-b", json!({"team": "pay"})), "kubectl");
        b.put(rollout("gamma", "in-gamma", json!({})), "kubectl");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let clusters = Self {
            a,
            b,
            relay_a,
            relay_b,
            dir,
        };
        std::fs::write(clusters.both(), clusters.kubeconfig_text(true, true)).expect("write");
        std::fs::write(clusters.only_a(), clusters.kubeconfig_text(true, false)).expect("write");
        std::fs::write(clusters.only_b(), clusters.kubeconfig_text(false, true)).expect("write");
        clusters
    }

    fn kubeconfig_text(&self, with_a: bool, with_b: bool) -> String {
        let mut clusters = String::new();
        let mut contexts = String::new();
        if with_a {
            clusters += &format!(
                "- name: cluster-a\n  cluster:\n    server: {}\n",
                self.relay_a.url()
            );
            contexts += "- name: a\n  context:\n    cluster: cluster-a\n    user: alice\n    \
                         namespace: alpha\n";
        }
        if with_b {
            clusters += &format!(
                "- name: cluster-b\n  cluster:\n    server: {}\n",
                self.relay_b.url()
            );
            contexts += "- name: b\n  context:\n    cluster: cluster-b\n    user: bob\n    \
                         namespace: beta\n";
        }
        let current = if with_a { "current-context: a\n" } else { "" };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n{clusters}users:\n- name: alice\n  user: \
             {{token: alice-token}}\n- name: bob\n  user: {{token: bob-token}}\ncontexts:\n\
             {contexts}{current}"
        )
    }

    /// One file with both contexts.
    fn both(&self) -> PathBuf {
        self.dir.path().join("both")
    }

    /// Context `a` only (and current-context a).
    fn only_a(&self) -> PathBuf {
        self.dir.path().join("only-a")
    }

    /// Context `b` only (no current-context).
    fn only_b(&self) -> PathBuf {
        self.dir.path().join("only-b")
    }
}

/// Runs the binary with `KUBECONFIG=kubeconfig` (several files joined with `:`).
async fn rollgate(kubeconfig: &str, args: &[&str]) -> Output {
    run_as(env!("CARGO_BIN_EXE_rollgate").into(), kubeconfig, args).await
}

async fn run_as(program: PathBuf, kubeconfig: &str, args: &[&str]) -> Output {
    let kubeconfig = kubeconfig.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(program)
            .args(&args)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RUST_LOG")
            .env_remove("COMPLETE")
            .output()
            .expect("the rollgate binary runs")
    })
    .await
    .expect("the command finished")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The names in the first column of a table (the header left out).
fn names(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

// ── connection flags ──────────────────────────────────────────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_cluster_user_and_namespace_follow_kubectls_precedence() {
    let clusters = Clusters::start().await;
    let both = path(&clusters.both()).to_owned();

    // The current context: A, its namespace alpha.
    let out = rollgate(&both, &["list"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        names(&stdout(&out)),
        ["also-on-a", "on-a"],
        "{}",
        stdout(&out)
    );

    // --context b reaches B, in b's namespace beta.
    let mark_b = clusters.b.mark();
    let out = rollgate(&both, &["list", "--context", "b"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(names(&stdout(&out)), ["on-b"], "{}", stdout(&out));
    let seen = clusters.b.requests_since(mark_b);
    assert!(
        seen.iter()
            .any(|r| r.verb == Verb::List && r.namespace.as_deref() == Some("beta")),
        "{seen:?}"
    );
    assert!(
        clusters
            .relay_b
            .sent()
            .contains("authorization: bearer bob-token")
    );

    // -n beats the context's namespace.
    let out = rollgate(&both, &["list", "--context", "b", "-n", "gamma"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(names(&stdout(&out)), ["in-gamma"], "{}", stdout(&out));
    let out = rollgate(
        &both,
        &["get", "in-gamma", "--context=b", "--namespace=gamma"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(names(&stdout(&out)), ["in-gamma"], "{}", stdout(&out));

    // --cluster overrides the context's cluster (the context's namespace stays), --user its
    // user.
    let out = rollgate(
        &both,
        &[
            "get",
            "on-b",
            "--context",
            "a",
            "--cluster",
            "cluster-b",
            "-n",
            "beta",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(names(&stdout(&out)), ["on-b"]);
    let out = rollgate(&both, &["list", "--cluster", "cluster-b"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "No rollouts found in namespace alpha.\n",
        "the current context's namespace, on B"
    );
    let before = clusters.relay_a.sent().matches("bearer bob-token").count();
    let out = rollgate(&both, &["list", "--user", "bob"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        clusters.relay_a.sent().matches("bearer bob-token").count(),
        before + 1
    );

    // -A: every namespace, with a NAMESPACE column.
    let out = rollgate(&both, &["list", "--context", "b", "-A"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("NAMESPACE"), "{text}");
    assert_eq!(names(&text), ["beta", "gamma"], "{text}");

    // A context the kubeconfig does not have: exit 3, naming it.
    let out = rollgate(&both, &["list", "--context", "nowhere"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("nowhere"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_files_are_merged_and_the_flag_beats_the_environment() {
    let clusters = Clusters::start().await;
    // KUBECONFIG of two files: a's file gives the current context, b's file context b.
    let merged = format!("{}:{}", path(&clusters.only_a()), path(&clusters.only_b()));
    let out = rollgate(&merged, &["list"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(names(&stdout(&out)), ["also-on-a", "on-a"]);
    let out = rollgate(&merged, &["status", "on-b", "--context", "b"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("Rollout:  beta/on-b\n"),
        "{}",
        stdout(&out)
    );

    // --kubeconfig wins over KUBECONFIG: b's file alone has no current context.
    let b_file = path(&clusters.only_b()).to_owned();
    let out = rollgate(
        &merged,
        &["list", "--kubeconfig", &b_file, "--context", "b"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(names(&stdout(&out)), ["on-b"]);
    let out = rollgate(
        &merged,
        &["list", "--kubeconfig", &b_file, "--context", "a"],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    let missing = clusters.dir.path().join("missing");
    let out = rollgate(&merged, &["list", "--kubeconfig", path(&missing)]).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("--kubeconfig") && stderr(&out).contains("missing"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_and_as_group_send_impersonation_headers() {
    let clusters = Clusters::start().await;
    let both = path(&clusters.both()).to_owned();
    let out = rollgate(&both, &["get", "on-a"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!clusters.relay_a.sent().contains("impersonate-user"));
    // The stand-in checks an impersonated user against its RBAC table, as the API server does.
    clusters
        .a
        .grant("jane", "get", "rollouts", "alpha", Some("on-a"));
    let out = rollgate(
        &both,
        &[
            "get",
            "on-a",
            "--as",
            "jane",
            "--as-group",
            "release-managers",
            "--as-group",
            "oncall",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let sent = clusters.relay_a.sent();
    assert!(sent.contains("impersonate-user: jane\r\n"), "{sent}");
    assert!(
        sent.contains("impersonate-group: release-managers\r\n"),
        "{sent}"
    );
    assert!(sent.contains("impersonate-group: oncall\r\n"), "{sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_takes_kubectls_forms() {
    let clusters = Clusters::start().await;
    let both = path(&clusters.both()).to_owned();
    for value in ["0", "30", "30s", "1m", "1m30s"] {
        let out = rollgate(&both, &["get", "on-a", "--request-timeout", value]).await;
        assert!(out.status.success(), "{value}: {}", stderr(&out));
    }
    let out = rollgate(&both, &["get", "on-a", "--request-timeout", "soon"]).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad duration is a usage error"
    );
    assert!(
        stderr(&out).contains("--request-timeout"),
        "{}",
        stderr(&out)
    );
    // A server that accepts the connection and never answers: the timeout ends the wait.
    let silent = support::loopback::silent();
    let config = clusters.dir.path().join("silent");
    std::fs::write(
        &config,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: s\n  cluster:\n    server: \
             http://{}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: s\n  context:\n    \
             cluster: s\n    user: u\ncurrent-context: s\n",
            silent.addr
        ),
    )
    .expect("write");
    let started = std::time::Instant::now();
    let out = rollgate(path(&config), &["get", "x", "--request-timeout", "1s"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

// ── status -w --timeout ───────────────────────────────────────────────────────────────────

/// Starts `rollgate status NAME -w …` in the background; its output when it exits.
fn spawn_status(kubeconfig: &str, args: &[&str]) -> JoinHandle<Output> {
    let kubeconfig = kubeconfig.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rollgate"))
            .args(&args)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rollgate starts");
        let mut out = Vec::new();
        let mut err = Vec::new();
        child
            .stdout
            .take()
            .expect("stdout")
            .read_to_end(&mut out)
            .expect("read stdout");
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_end(&mut err)
            .expect("read stderr");
        let status = child.wait().expect("rollgate exits");
        Output {
            status,
            stdout: out,
            stderr: err,
        }
    })
}

/// Waits until the stand-in has logged `count` watches on rollouts.
async fn watches(server: &ApiServer, count: usize) -> Vec<support::apiserver::Logged> {
    for _ in 0..300 {
        let seen: Vec<_> = server
            .requests()
            .into_iter()
            .filter(|r| r.verb == Verb::Watch && r.on("rollouts"))
            .collect();
        if seen.len() >= count {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the stand-in never saw {count} watches");
}

fn phases(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("Phase:"))
        .map(|p| p.trim().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_exits_0_when_it_succeeds_and_1_when_it_rolls_back() {
    let clusters = Clusters::start().await;
    let both = path(&clusters.both()).to_owned();
    for (end, code) in [("Succeeded", 0), ("RolledBack", 1), ("Failed", 1)] {
        set_status(&clusters.a, "alpha", "on-a", progressing()).await;
        let before = watches(&clusters.a, 0).await.len();
        let running = spawn_status(&both, &["status", "on-a", "-w", "--timeout", "60s"]);
        watches(&clusters.a, before + 1).await;
        set_phase(&clusters.a, "alpha", "on-a", end).await;
        let out = running.await.expect("status ran");
        assert_eq!(out.status.code(), Some(code), "{end}: {}", stderr(&out));
        assert_eq!(
            phases(&stdout(&out)),
            ["Progressing", end],
            "{}",
            stdout(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_times_out_with_4_also_when_paused() {
    let clusters = Clusters::start().await;
    let both = path(&clusters.both()).to_owned();
    for phase in ["Paused", "Progressing"] {
        set_phase(&clusters.a, "alpha", "on-a", phase).await;
        let started = std::time::Instant::now();
        let out = rollgate(&both, &["status", "on-a", "-w", "--timeout", "2s"]).await;
        assert_eq!(out.status.code(), Some(4), "{phase}: {}", stderr(&out));
        assert!(started.elapsed() >= Duration::from_secs(2));
        assert!(
            stderr(&out).contains("alpha/on-a did not end within 2s"),
            "{}",
            stderr(&out)
        );
    }
    // Without -w, --timeout is refused as a usage error.
    let out = rollgate(&both, &["status", "on-a", "--timeout", "2s"]).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_exits_3_when_the_cluster_cannot_be_reached() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // A port nobody listens on.
    let port = support::loopback::unused_address().port();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: \
             http://127.0.0.1:{port}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: gone\n  \
             context:\n    cluster: gone\n    user: u\ncurrent-context: gone\n"
        ),
    )
    .expect("write");
    let out = rollgate(path(&config), &["status", "on-a", "-w", "--timeout", "30s"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("rollgate status: "),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_watch_is_resumed_and_a_compacted_one_relisted() {
    let clusters = Clusters::start().await;
    let both = path(&clusters.both()).to_owned();
    set_status(&clusters.a, "alpha", "on-a", progressing()).await;
    let running = spawn_status(&both, &["status", "on-a", "-w", "--timeout", "60s"]);
    let first = watches(&clusters.a, 1).await;

    // The connection drops mid-watch; a change made meanwhile is not lost: the next watch
    // starts from the last resourceVersion seen.
    clusters.relay_a.cut();
    set_phase(&clusters.a, "alpha", "on-a", "Paused").await;
    let seen = watches(&clusters.a, 2).await;
    let version = |query: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix("resourceVersion="))
            .map(str::to_owned)
    };
    assert_eq!(
        version(&seen[1].query),
        version(&first[0].query),
        "{seen:?}"
    );

    // Dropped again after the history was compacted past the last version seen (a change
    // elsewhere moved it on): the watch gets 410 Gone, the Rollout is listed again, and the
    // watch goes on from the list's version to the end.
    clusters
        .a
        .put(rollout("elsewhere", "unrelated", json!({})), "kubectl");
    clusters.a.compact();
    let mark = clusters.a.mark();
    clusters.relay_a.cut();
    set_phase(&clusters.a, "alpha", "on-a", "Succeeded").await;
    let out = running.await.expect("status ran");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        phases(&stdout(&out)),
        ["Progressing", "Paused", "Succeeded"],
        "{}",
        stdout(&out)
    );
    let after = clusters.a.requests_since(mark);
    let relists = after
        .iter()
        .filter(|r| r.verb == Verb::List && r.on("rollouts"))
        .count();
    assert_eq!(relists, 1, "one relist after 410: {after:?}");
}

// ── get / list ────────────────────────────────────────────────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_list_select_by_label_and_print_names_wide_and_lists() {
    let clusters = Clusters::start().await;
    let both = path(&clusters.both()).to_owned();
    set_status(&clusters.a, "alpha", "on-a", progressing()).await;

    let out = rollgate(&both, &["list", "-l", "team=pay"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(names(&stdout(&out)), ["on-a"]);
    let out = rollgate(&both, &["list", "-l", "team!=pay", "-o", "name"]).await;
    assert_eq!(stdout(&out), "rollout.rollgate.dev/also-on-a\n");
    let out = rollgate(&both, &["list", "-o", "name"]).await;
    assert_eq!(
        stdout(&out),
        "rollout.rollgate.dev/also-on-a\nrollout.rollgate.dev/on-a\n"
    );
    let out = rollgate(&both, &["get", "on-a", "-o", "name"]).await;
    assert_eq!(stdout(&out), "rollout.rollgate.dev/on-a\n");
    let out = rollgate(&both, &["list", "-l", "team=nobody"]).await;
    assert_eq!(stdout(&out), "No rollouts found in namespace alpha.\n");

    let out = rollgate(&both, &["get", "on-a", "-o", "wide"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "NAME",
            "PHASE",
            "STAGE",
            "PERCENT",
            "AGE",
            "MESSAGE",
            "TARGET",
            "STAGES",
            "NEXT-CHECKPOINT"
        ],
        "{text}"
    );
    assert!(
        lines[1].contains("flagd feature-flags/new_checkout   1,5,10   2026-02-01T19:48:00Z"),
        "{text}"
    );

    // -A with a name and a selector.
    let out = rollgate(
        &both,
        &["get", "on-b", "--context", "b", "-A", "-o", "name"],
    )
    .await;
    assert_eq!(
        stdout(&out),
        "rollout.rollgate.dev/on-b\n",
        "{}",
        stderr(&out)
    );
    let out = rollgate(&both, &["get", "nope", "-A"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // -o json of a list is a List; of one Rollout the object.
    let out = rollgate(&both, &["list", "-o", "json"]).await;
    let list: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2));
    let out = rollgate(&both, &["get", "on-a", "-o", "json"]).await;
    let one: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(one["kind"], "Rollout");
    assert_eq!(one["metadata"]["name"], "on-a");

    let out = rollgate(&both, &["get", "missing"]).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_watch_prints_a_row_on_every_change() {
    let clusters = Clusters::start().await;
    let both = path(&clusters.both()).to_owned();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(["list", "-w", "-l", "team=pay"])
        .env("KUBECONFIG", &both)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("rollgate starts");
    let out = child.stdout.take().expect("stdout");
    let (lines, received) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| {
        received
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no line for {what}"))
    };
    assert!(next("the header").starts_with("NAME"));
    assert!(next("the first row").starts_with("on-a "));
    watches(&clusters.a, 1).await;
    set_phase(&clusters.a, "alpha", "on-a", "Paused").await;
    let row = next("the change");
    assert!(row.starts_with("on-a "), "{row}");
    assert!(row.contains("Paused"), "{row}");
    // A change outside the selector prints nothing; a new one inside does.
    set_phase(&clusters.a, "alpha", "also-on-a", "Paused").await;
    clusters
        .a
        .put(rollout("alpha", "third", json!({"team": "pay"})), "kubectl");
    let row = next("the new Rollout");
    assert!(row.starts_with("third "), "{row}");
    child.kill().expect("stop the watch");
    child.wait().expect("stopped");
    reader.join().expect("reader");
}

// ── promote --full ────────────────────────────────────────────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_full_sets_the_promote_full_action() {
    let clusters = Clusters::start().await;
    let both = path(&clusters.both()).to_owned();
    set_status(&clusters.a, "alpha", "on-a", progressing()).await;
    let out = rollgate(&both, &["promote", "on-a", "--full"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "promote-full: on-a will advance from stage 1 of 3 (1%) to stage 3 of 3 (10%) at its next \
         reconcile (set rollgate.dev/action=promote-full)\n"
    );
    let stored = clusters
        .a
        .object("rollouts", "alpha", "on-a")
        .expect("the Rollout");
    assert_eq!(
        stored["metadata"]["annotations"]["rollgate.dev/action"],
        "promote-full"
    );
    // A Rollout the controller has not taken up yet: nothing to promote, refused.
    let out = rollgate(&both, &["promote", "on-b", "--full", "--context", "b"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

// ── version ───────────────────────────────────────────────────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_reads_the_controllers_image_tag() {
    let clusters = Clusters::start().await;
    let both = path(&clusters.both()).to_owned();
    let out = rollgate(&both, &["version"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("client: {}\n", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(
        text.contains(
            "controller: unknown (no Deployment labelled app.kubernetes.io/name=rollgate"
        ),
        "{text}"
    );
    clusters.a.put(
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "rollgate", "namespace": "rollgate-system",
                         "labels": {"app.kubernetes.io/name": "rollgate"}},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": "rollgate"}},
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": "rollgate"}},
                    "spec": {"containers": [
                        {"name": "rollgate", "image": "ghcr.io/example/rollgate:0.7.2"}
                    ]}
                }
            }
        }),
        "helm",
    );
    let out = rollgate(&both, &["version"]).await;
    assert!(
        stdout(&out).contains(
            "controller: 0.7.2 (Deployment rollgate-system/rollgate, image \
             ghcr.io/example/rollgate:0.7.2)"
        ),
        "{}",
        stdout(&out)
    );
    // No cluster: the client's version, and why the controller's is unknown.
    let out = rollgate(&both, &["version", "--context", "nowhere"]).await;
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("controller: unknown ("),
        "{}",
        stdout(&out)
    );
}

// ── completion of Rollout names ───────────────────────────────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_names_complete_through_kubectl_and_the_shells() {
    let clusters = Clusters::start().await;
    let both = path(&clusters.both()).to_owned();
    // kubectl's convention: kubectl_complete-rollgate WORD… CURRENT.
    let shim = clusters.dir.path().join("kubectl_complete-rollgate");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rollgate"), &shim).expect("symlink");
    let out = run_as(shim.clone(), &both, &["status", ""]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "also-on-a\non-a\n:4\n");
    let out = run_as(shim.clone(), &both, &["promote", "al"]).await;
    assert_eq!(stdout(&out), "also-on-a\n:4\n");
    let out = run_as(shim.clone(), &both, &["get", "--context", "b", ""]).await;
    assert_eq!(stdout(&out), "on-b\n:4\n");
    let out = run_as(
        shim.clone(),
        &both,
        &["abort", "-n", "gamma", "--context=b", ""],
    )
    .await;
    assert_eq!(stdout(&out), "in-gamma\n:4\n");
    // Commands complete too.
    let out = run_as(shim.clone(), &both, &["res"]).await;
    assert_eq!(stdout(&out), "resume\n:4\n");
    // An unreachable cluster completes nothing, quickly.
    let started = std::time::Instant::now();
    let out = run_as(shim, &both, &["status", "--context", "nowhere", ""]).await;
    assert!(out.status.success());
    assert_eq!(stdout(&out), ":4\n");
    assert!(started.elapsed() < Duration::from_secs(10));

    // The hidden __complete subcommand answers the same.
    let out = rollgate(&both, &["__complete", "report", "o"]).await;
    assert_eq!(stdout(&out), "on-a\n:4\n");

    // The shells' scripts ask the binary (COMPLETE=bash rollgate -- WORD…).
    let words = ["rollgate", "status", "--context", "b", ""];
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_rollgate"))
            .env("KUBECONFIG", both)
            .env("COMPLETE", "bash")
            .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())
            .env("_CLAP_IFS", "\n")
            .arg("--")
            .args(words)
            .output()
            .expect("rollgate runs")
    })
    .await
    .expect("ran");
    let text = stdout(&out);
    let values: Vec<&str> = text.lines().filter(|l| !l.starts_with('-')).collect();
    assert_eq!(values, ["on-b"], "{text}{}", stderr(&out));
}

// ── the controller's --kubeconfig and --context ───────────────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_takes_kubeconfig_and_context() {
    let clusters = Clusters::start().await;
    let both = path(&clusters.both()).to_owned();
    let nowhere = clusters.dir.path().join("not-there");
    let mut controller = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args([
            "controller",
            "--kubeconfig",
            &both,
            "--context",
            "b",
            "--metrics-bind-address",
            "0",
            "--health-probe-bind-address",
            "0",
        ])
        .env("KUBECONFIG", &nowhere)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the controller starts");
    let mut reached = false;
    for _ in 0..200 {
        if clusters.b.requests().iter().any(|r| r.on("rollouts")) {
            reached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    controller.kill().expect("stop the controller");
    controller.wait().expect("stopped");
    assert!(reached, "the controller never asked B for Rollouts");
    assert!(
        !clusters.a.requests().iter().any(|r| r.on("rollouts")),
        "A, the current context, is left alone"
    );

    let out = rollgate(
        &both,
        &[
            "controller",
            "--context",
            "nowhere",
            "--metrics-bind-address",
            "0",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("nowhere"), "{}", stderr(&out));
}
