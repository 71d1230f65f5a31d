//! The real `rollgate report NAME` binary against the stand-in API server (tests/support):
//! it finds the Rollout through KUBECONFIG, prints the Markdown or writes FILE.md + FILE.svg,
//! and answers a missing Rollout with exit status 2 and an unreachable cluster with 3.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};

use kube::Api;
use kube::api::{Patch, PatchParams};
use rollgate::api::Rollout;
use serde_json::json;
use support::apiserver::ApiServer;

fn rollout() -> serde_json::Value {
    json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "checkout-v2", "namespace": "shop"},
        "spec": {
            "target": {"configMap": {"name": "rollout", "key": "percent"}},
            "stages": [{"percent": 10, "duration": "1h"}, {"percent": 50}],
            "analysis": {"interval": "30m", "gates": [
                {"name": "error-rate", "max": 0.01,
                 "prometheus": {"query": "sum(rate(errors_total[5m]))"}}
            ]}
        }
    })
}

fn status() -> serde_json::Value {
    json!({"status": {
        "phase": "RolledBack",
        "stage": 0,
        "percent": 0,
        "startedAt": "2026-02-01T19:18:00Z",
        "message": "aborted by user",
        "gates": [{"name": "error-rate", "failures": 0, "misses": 0, "lastVerdict": "pass", "lastValue": 0.001}],
        "lastCheckpoint": {"at": "2026-02-01T19:48:00Z", "stage": 0, "percent": 10, "verdict": "pass"},
        "history": [
            {"at": "2026-02-01T19:18:00Z", "kind": "start", "stage": 0, "percent": 10},
            {"at": "2026-02-01T19:48:00Z", "kind": "checkpoint", "stage": 0, "percent": 10, "verdict": "pass"},
            {"at": "2026-02-01T19:50:00Z", "kind": "rollback", "stage": 0, "percent": 0, "message": "aborted by user"}
        ]
    }})
}

async fn rollgate(kubeconfig: &Path, args: &[&str]) -> Output {
    let kubeconfig = kubeconfig.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_rollgate"))
            .args(&args)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RUST_LOG")
            .output()
            .expect("the rollgate binary runs")
    })
    .await
    .expect("the command finished")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_reads_the_rollout_and_prints_or_writes_the_report() {
    let server = ApiServer::start().await;
    server.put(rollout(), "kubectl");
    let api: Api<Rollout> = Api::namespaced(server.client(), "shop");
    api.patch_status(
        "checkout-v2",
        &PatchParams::default(),
        &Patch::Merge(status()),
    )
    .await
    .expect("status patched");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let kubeconfig = server.write_kubeconfig(dir.path(), "shop");

    let out = rollgate(&kubeconfig, &["report", "checkout-v2"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(
        text.starts_with("# Release report: shop/checkout-v2\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "| Outcome | **RolledBack** at stage 1 of 2, 0% on the target, +32m after the start |"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "| 2026-02-01T19:48:00Z | +30m | checkpoint | 1 | 10% | pass | error-rate 0.001 pass |"
        ),
        "{text}"
    );
    assert!(!text.contains("## Chart"), "no chart on standard output");

    let report = dir.path().join("checkout.md");
    let out = rollgate(
        &kubeconfig,
        &[
            "report",
            "checkout-v2",
            "-n",
            "shop",
            "--output",
            report.to_str().expect("UTF-8"),
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&report).expect("FILE.md");
    let chart = "\n## Chart\n\nThe percent on the target over time, and each gate's values against its bounds.\n\n![Percent and gate values over time](checkout.svg)\n";
    assert!(written.contains(chart), "{written}");
    assert_eq!(
        written.replace(chart, ""),
        text,
        "the file holds the same report, with its chart linked"
    );
    let svg = std::fs::read_to_string(dir.path().join("checkout.svg")).expect("FILE.svg");
    roxmltree::Document::parse(&svg).expect("well-formed SVG");

    let out = rollgate(&kubeconfig, &["report", "no-such-rollout"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "rollgate report: no Rollout \"no-such-rollout\" in namespace \"shop\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_exit_status_3() {
    // A port that was free a moment ago: nothing listens there.
    let port = crate::support::loopback::unused_address().port();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: http://127.0.0.1:{port}\n\
             users:\n- name: tester\n  user: {{}}\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: tester\n\
             current-context: gone\n"
        ),
    )
    .expect("kubeconfig written");
    let out = rollgate(&kubeconfig, &["report", "checkout-v2"]).await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read Rollout default/checkout-v2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
