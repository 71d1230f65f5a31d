//! Measurements of `rollgate controller` against the stand-in API server and a real
//! Prometheus (issue 6, "Measured"): resident memory holding 1,000 and 10,000 Rollouts, API
//! writes per checkpoint, writes for a reconcile with nothing due, and the time from a
//! deciding checkpoint to the target write. Prints figures; asserts nothing about speed.
//!
//! `cargo bench --bench controller_scale` (needs `prometheus` on PATH). Set
//! `ROLLGATE_SCALE=1000,10000` to choose the sizes.

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use support::apiserver::controller::Controller;
use support::apiserver::{ApiServer, Logged};
use support::prometheus::Prometheus;

const NAMESPACE: &str = "scale";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let Some(binary) = support::prometheus::binary() else {
        eprintln!("controller_scale: SKIPPED, prometheus is not installed");
        return;
    };
    support::apiserver::controller::require_controller_subcommand();
    let prometheus = Prometheus::start(&binary, &[], "").await;
    let sizes: Vec<usize> = std::env::var("ROLLGATE_SCALE")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000]);

    println!("## writes per checkpoint, idle writes, checkpoint-to-target latency");
    checkpoint_costs(&prometheus).await;
    println!();
    println!("## resident memory");
    println!("| Rollouts | all started after | VmRSS | VmHWM |");
    println!("|---:|---:|---:|---:|");
    for n in sizes {
        memory_at(n, &prometheus).await;
    }
}

/// A Rollout on a `configMap` target with one Prometheus gate.
fn rollout(name: &str, stages: [(u8, &str); 3], interval: &str) -> Value {
    json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "target": {"configMap": {"name": name, "key": "percent"}},
            "stages": stages.iter().map(|(p, d)| json!({"percent": p, "duration": d})).collect::<Vec<_>>(),
            "analysis": {"interval": interval, "gates": [
                {"name": "error-rate", "prometheus": {"query": "vector(0)"}, "max": 0.01}
            ]}
        }
    })
}

fn config_map(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": {"percent": "0"}
    })
}

fn phase(object: &Value) -> &str {
    object["status"]["phase"].as_str().unwrap_or_default()
}

async fn wait_until(
    what: &str,
    patience: Duration,
    controller: &mut Controller,
    ok: impl Fn() -> bool,
) {
    let start = Instant::now();
    while !ok() {
        controller.assert_running();
        if start.elapsed() > patience {
            panic!(
                "{what}: not reached after {patience:?}\n{}",
                tail(&controller.log())
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

async fn memory_at(n: usize, prometheus: &Prometheus) {
    let server = ApiServer::start().await;
    for i in 0..n {
        let name = format!("r-{i:05}");
        server.put(config_map(&name), "seed");
        server.put(
            rollout(&name, [(1, "2h"), (5, "2h"), (10, "2h")], "1h"),
            "seed",
        );
    }
    let started = Instant::now();
    let mut controller = Controller::start(&server, &prometheus.address, &["--log-level", "warn"]);
    let mut last_report = Instant::now();
    loop {
        let progressing = server.count("rollouts", |r| phase(r) == "Progressing");
        if progressing == n {
            break;
        }
        controller.assert_running();
        if last_report.elapsed() > Duration::from_secs(30) {
            let (rss, _) = controller.memory_kib();
            eprintln!(
                "  {n}: {progressing} started after {:.0} s, VmRSS {:.1} MiB",
                started.elapsed().as_secs_f64(),
                rss as f64 / 1024.0
            );
            last_report = Instant::now();
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "{n}: only {progressing} started after 30 min\n{}",
            tail(&controller.log())
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all_started = started.elapsed();
    // Let caches and allocators settle with nothing due.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (rss, hwm) = controller.memory_kib();
    println!(
        "| {n} | {:.1} s | {:.1} MiB | {:.1} MiB |",
        all_started.as_secs_f64(),
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
}

/// One Rollout at interval 1s through stages of 4 s: status and target writes per checkpoint,
/// writes while idle after completion, and the time from the checkpoint's due time
/// (`nextCheckpointAt`) to the target write that carries its decision.
async fn checkpoint_costs(prometheus: &Prometheus) {
    let server = ApiServer::start().await;
    server.put(config_map("one"), "seed");
    let mut controller = Controller::start(&server, &prometheus.address, &[]);
    let wall = (Instant::now(), SystemTime::now());
    server.put(
        rollout("one", [(1, "4s"), (5, "4s"), (10, "4s")], "1s"),
        "seed",
    );
    wait_until(
        "Succeeded",
        Duration::from_secs(120),
        &mut controller,
        || {
            server
                .object("rollouts", NAMESPACE, "one")
                .is_some_and(|r| phase(&r) == "Succeeded")
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mark = server.mark();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = server
        .requests_since(mark)
        .iter()
        .filter(|r| r.is_write() && (r.on("rollouts") || r.on("configmaps")))
        .count();

    let writes = server.writes();
    let status_writes: Vec<&Logged> = writes
        .iter()
        .filter(|w| w.on("rollouts") && w.field_manager.as_deref() != Some("seed"))
        .collect();
    let target_writes: Vec<&Logged> = writes
        .iter()
        .filter(|w| w.on("configmaps") && w.field_manager.as_deref() != Some("seed"))
        .collect();
    let mut checkpoints: Vec<String> = status_writes
        .iter()
        .filter_map(|w| {
            w.body.as_ref()?["status"]["lastCheckpoint"]["at"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    checkpoints.dedup();
    println!("| figure | value | goal |");
    println!("|---|---:|---|");
    println!(
        "| checkpoints (interval 1 s, 3 stages of 4 s) | {} | |",
        checkpoints.len()
    );
    let at_checkpoints = status_writes
        .iter()
        .filter(|w| {
            w.body
                .as_ref()
                .is_some_and(|b| !b["status"]["lastCheckpoint"].is_null())
        })
        .count();
    println!(
        "| status writes in all (the start's included) | {} | |",
        status_writes.len()
    );
    println!(
        "| status writes per checkpoint | {:.2} | ≤ 1 |",
        at_checkpoints as f64 / checkpoints.len().max(1) as f64
    );
    println!(
        "| target writes (percent changes: 1, 5, 10) | {} | 3 |",
        target_writes.len()
    );
    println!("| writes in 5 s after Succeeded | {idle} | 0 |");

    // Latency: a target write's arrival minus the due time of the checkpoint that decided it,
    // the last nextCheckpointAt a status write set before it.
    let mut latencies = Vec::new();
    for target in target_writes.iter().skip(1) {
        let arrived = wall.1 + (target.at - wall.0);
        let arrived = jiff::Timestamp::try_from(arrived).expect("a wall-clock time");
        // A status write made just before the target write may already name the next
        // checkpoint (a future time): the deciding one is the last due time already past.
        let due = status_writes
            .iter()
            .filter(|w| w.at < target.at)
            .filter_map(|w| {
                w.body.as_ref()?["status"]["nextCheckpointAt"]
                    .as_str()?
                    .parse::<jiff::Timestamp>()
                    .ok()
            })
            .rfind(|due| *due <= arrived);
        if let Some(due) = due {
            latencies.push(
                (arrived - due)
                    .total(jiff::Unit::Millisecond)
                    .unwrap_or(f64::NAN),
            );
        }
    }
    let shown: Vec<String> = latencies.iter().map(|ms| format!("{ms:.0} ms")).collect();
    println!(
        "| deciding checkpoint due → target write (each advance) | {} | < 1 s |",
        shown.join(", ")
    );
    drop(controller);
}
