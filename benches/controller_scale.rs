//! Measurements of `rollgate controller` against the stand-in API server and a real
//! Prometheus (issue 6, "Measured"): resident memory holding 1,000 and 10,000 Rollouts, API
//! writes per checkpoint, writes for a reconcile with nothing due, and the time from a
//! deciding checkpoint to the target write. Prints figures; asserts nothing about speed.
//!
//! `cargo bench --bench controller_scale` (needs `prometheus` on PATH). Set
//! `ROLLGATE_SCALE=1000,10000` to choose the sizes. `ROLLGATE_BUDGET_SCALE=10000` adds the API
//! budget run (issue 11): that many Rollouts at `interval: 1m` under `--kube-api-qps 50`, API
//! writes per second, how late routine status updates land, and the time from a deciding
//! checkpoint to a rollback's target write, and how many routine checkpoint statuses were
//! folded (parked under the budget and replaced by a newer one before they were written).
//! `ROLLGATE_KUBECTL_APPLY=1` seeds the memory runs'
//! Rollouts and ConfigMaps as a client-side `kubectl apply` leaves them: with the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation (a JSON copy of the object)
//! and `managedFields` of the manager `kubectl-client-side-apply` (every run has
//! `managedFields`: the stand-in records them as an API server does).

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
    if let Some(n) = std::env::var("ROLLGATE_BUDGET_SCALE")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
    {
        println!();
        println!("## API budget: {n} Rollouts at interval 1m, --kube-api-qps 50");
        budget_at(n, &prometheus).await;
    }
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

/// `object` as a client-side `kubectl apply` sends it: its JSON copy in the
/// `last-applied-configuration` annotation.
fn kubectl_applied(mut object: Value) -> Value {
    let copy = object.to_string();
    object["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        json!(copy);
    object
}

async fn memory_at(n: usize, prometheus: &Prometheus) {
    let server = ApiServer::start().await;
    let applied = std::env::var("ROLLGATE_KUBECTL_APPLY").is_ok_and(|v| v == "1");
    let (shape, manager): (fn(Value) -> Value, &str) = if applied {
        (kubectl_applied, "kubectl-client-side-apply")
    } else {
        (|object| object, "seed")
    };
    for i in 0..n {
        let name = format!("r-{i:05}");
        server.put(shape(config_map(&name)), manager);
        server.put(
            shape(rollout(&name, [(1, "2h"), (5, "2h"), (10, "2h")], "1h")),
            manager,
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
        "| {n}{} | {:.1} s | {:.1} MiB | {:.1} MiB |",
        if applied { " (kubectl apply)" } else { "" },
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
    // Percent writes only: the owner claim (an annotation patch, before the start) is not one.
    let target_writes: Vec<&Logged> = writes
        .iter()
        .filter(|w| w.on("configmaps") && w.field_manager.as_deref() != Some("seed"))
        .filter(|w| w.body.as_ref().is_some_and(|b| !b["data"].is_null()))
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

/// `n` Rollouts at `interval: 1m` under `--kube-api-qps 50 --kube-api-burst 100`, then one
/// more whose gate fails at its first checkpoint (`failureLimit: 1`): writes per second over
/// two minutes of checkpoints, the lateness of routine status writes (arrival minus the
/// `nextCheckpointAt` they answer), and the rollback's checkpoint due → target write.
async fn budget_at(n: usize, prometheus: &Prometheus) {
    let server = ApiServer::start().await;
    for i in 0..n {
        let name = format!("r-{i:05}");
        server.put(config_map(&name), "seed");
        server.put(
            rollout(&name, [(1, "2h"), (5, "2h"), (10, "2h")], "1m"),
            "seed",
        );
    }
    let wall = (Instant::now(), SystemTime::now());
    let mut controller = Controller::start(
        &server,
        &prometheus.address,
        &[
            "--log-level",
            "warn",
            "--kube-api-qps",
            "50",
            "--kube-api-burst",
            "100",
        ],
    );
    let started = Instant::now();
    wait_until(
        "every Rollout started",
        Duration::from_secs(3600),
        &mut controller,
        || server.count("rollouts", |r| phase(r) == "Progressing") == n,
    )
    .await;
    println!(
        "| all {n} started (status, target write and Event each) | {:.0} s |",
        started.elapsed().as_secs_f64()
    );
    let mut breaker = rollout("breaker", [(1, "2h"), (5, "2h"), (10, "2h")], "1m");
    breaker["spec"]["analysis"]["gates"][0]["prometheus"]["query"] = json!("vector(1)");
    breaker["spec"]["analysis"]["gates"][0]["failureLimit"] = json!(1);
    server.put(config_map("breaker"), "seed");
    let window = Instant::now();
    server.put(breaker, "seed");
    wait_until(
        "the breaker rolled back",
        Duration::from_secs(900),
        &mut controller,
        || {
            server
                .object("rollouts", NAMESPACE, "breaker")
                .is_some_and(|r| phase(&r) == "RolledBack")
        },
    )
    .await;
    let rest = Duration::from_secs(120).saturating_sub(window.elapsed());
    tokio::time::sleep(rest).await;
    let seconds = window.elapsed().as_secs_f64();
    let all = server.writes();
    let ours = |w: &&Logged| w.field_manager.as_deref() != Some("seed");
    let in_window: Vec<&Logged> = all
        .iter()
        .skip_while(|w| w.at < window)
        .filter(ours)
        .collect();
    println!(
        "| API writes per second over {seconds:.0} s (status, targets, Events) | {:.1} |",
        in_window.len() as f64 / seconds
    );
    let arrival = |w: &Logged| {
        jiff::Timestamp::try_from(wall.1 + (w.at - wall.0)).expect("a wall-clock time")
    };
    // Lateness of each routine checkpoint's status write: its arrival minus the due time the
    // same Rollout's previous status write named.
    let mut due: std::collections::HashMap<String, jiff::Timestamp> = Default::default();
    // Folded checkpoints: between two status writes of a Rollout, each checkpoint (1 min
    // apart) whose own status was never written.
    let mut last_checkpoint: std::collections::HashMap<String, jiff::Timestamp> =
        Default::default();
    let (mut folded, mut routine_written) = (0_i64, 0_usize);
    let mut late_ms = Vec::new();
    let mut rollback_ms = None;
    for w in all.iter().filter(ours) {
        let name = w.name.clone().unwrap_or_default();
        if w.on("rollouts") && w.subresource.as_deref() == Some("status") {
            let body = w.body.as_ref().map(|b| &b["status"]);
            if let Some(at) = body
                .and_then(|s| s["lastCheckpoint"]["at"].as_str())
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            {
                if w.at >= window
                    && let Some(previous) = last_checkpoint.get(&name)
                {
                    let minutes = (at - *previous).total(jiff::Unit::Second).unwrap_or(0.0) / 60.0;
                    folded += (minutes.round() as i64 - 1).max(0);
                    routine_written += 1;
                }
                last_checkpoint.insert(name.clone(), at);
            }
            if w.at >= window
                && body.is_some_and(|s| !s["lastCheckpoint"].is_null())
                && let Some(previous) = due.get(&name)
            {
                let late = (arrival(w) - *previous)
                    .total(jiff::Unit::Millisecond)
                    .unwrap_or(f64::NAN);
                late_ms.push(late);
            }
            if let Some(next) = body
                .and_then(|s| s["nextCheckpointAt"].as_str())
                .and_then(|t| t.parse().ok())
            {
                due.insert(name.clone(), next);
            }
        } else if w.on("configmaps")
            && name == "breaker"
            && w.body.as_ref().is_some_and(|b| b["data"]["percent"] == "0")
            && let Some(previous) = due.get(&name)
        {
            rollback_ms = Some(
                (arrival(w) - *previous)
                    .total(jiff::Unit::Millisecond)
                    .unwrap_or(f64::NAN),
            );
        }
    }
    late_ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        late_ms
            .get(((late_ms.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "| routine status writes: how late (median, p99, max; {} writes) | {:.0} ms, {:.0} ms, {:.0} ms |",
        late_ms.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
    println!(
        "| checkpoint status writes in the window / checkpoints folded into them (never written on their own) | {routine_written} / {folded} |"
    );
    match rollback_ms {
        Some(ms) => println!("| rollback: deciding checkpoint due → target write | {ms:.0} ms |"),
        None => println!("| rollback: no target write of 0% seen |"),
    }
    drop(controller);
}
