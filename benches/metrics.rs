//! What `/metrics` costs with many Rollouts: encoding the exposition, and updating one
//! rollout's series in a registry that holds many.
//!
//! `cargo bench --bench metrics`

use criterion::{Criterion, criterion_group, criterion_main};
use rollgate::api::Percent;
use rollgate::api::{CheckpointVerdict, Phase};
use rollgate::telemetry::Metrics;

/// A registry holding `rollouts` rollouts with three gates each, as a busy controller has.
fn populated(rollouts: usize) -> Metrics {
    let metrics = match Metrics::new() {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    for i in 0..rollouts {
        let namespace = format!("team-{}", i % 50);
        let name = format!("rollout-{i}");
        metrics.set_rollout(
            &namespace,
            &name,
            Some(Percent::whole(5)),
            Some(Phase::Progressing),
        );
        for gate in ["error-rate", "critical-alerts", "determinism"] {
            metrics.set_gate_value(&namespace, &name, gate, Some(0.001));
        }
    }
    for verdict in [
        CheckpointVerdict::Pass,
        CheckpointVerdict::Warn,
        CheckpointVerdict::Fail,
    ] {
        metrics.count_checkpoint(verdict);
    }
    metrics.observe_reconcile(0.01, "success");
    metrics
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics");
    group.sample_size(10);
    for rollouts in [1_000, 10_000] {
        let metrics = populated(rollouts);
        let size = metrics.encode().map(|t| t.len()).unwrap_or_default();
        eprintln!("{rollouts} rollouts: the exposition is {size} bytes");
        group.bench_function(format!("encode, {rollouts} rollouts"), |b| {
            b.iter(|| metrics.encode())
        });
        group.bench_function(format!("set_rollout + 3 gates, {rollouts} rollouts"), |b| {
            b.iter(|| {
                metrics.set_rollout(
                    "team-7",
                    "rollout-7",
                    Some(Percent::whole(10)),
                    Some(Phase::Paused),
                );
                for gate in ["error-rate", "critical-alerts", "determinism"] {
                    metrics.set_gate_value("team-7", "rollout-7", gate, Some(0.002));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
