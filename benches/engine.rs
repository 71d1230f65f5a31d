//! Decisions per second of the engine, and the whole `simulate` run of a 30-day plan.
//!
//! `cargo bench --bench engine`

use std::path::Path;
use std::process::Command;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use k8s_openapi::jiff::Timestamp;
use rollgate::api::{RolloutSpec, RolloutStatus};
use rollgate::engine::{Inputs, Observation, decide};
use rollgate::sim::load::load_rollout;

fn plan() -> RolloutSpec {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/passenger-favorites-matching.yaml");
    match load_rollout(&path) {
        Ok(rollout) => rollout.spec,
        Err(e) => panic!("{e}"),
    }
}

/// A status one hour into stage 0, with the first checkpoint due.
fn started(spec: &RolloutSpec, start: Timestamp) -> RolloutStatus {
    let mut status = RolloutStatus::default();
    decide(spec, &mut status, &Inputs::at(start));
    status
}

fn checkpoint(c: &mut Criterion) {
    let spec = plan();
    let start = Timestamp::UNIX_EPOCH;
    let status = started(&spec, start);
    let first = status.next_checkpoint_at.clone().map_or(start, |t| t.0);
    let passing = [
        Observation::Value(0.002),
        Observation::Value(0.0),
        Observation::Value(0.0),
    ];
    let failing = [
        Observation::Value(0.03),
        Observation::Value(0.0),
        Observation::NoData,
    ];

    c.bench_function("decide: checkpoint, 3 gates pass, hold", |b| {
        b.iter_batched_ref(
            || status.clone(),
            |s| decide(&spec, s, &Inputs::at(first).with_observations(&passing)),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("decide: checkpoint, 3 gates, one fails one no data", |b| {
        b.iter_batched_ref(
            || status.clone(),
            |s| decide(&spec, s, &Inputs::at(first).with_observations(&failing)),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("decide: nothing due", |b| {
        b.iter_batched_ref(
            || status.clone(),
            |s| decide(&spec, s, &Inputs::at(start).with_observations(&passing)),
            BatchSize::SmallInput,
        )
    });
}

fn simulate_thirty_days(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let plan = root.join("examples/bench/thirty-days.yaml");
    let scenario = root.join("examples/bench/thirty-days-scenario.yaml");
    let mut group = c.benchmark_group("simulate");
    group.sample_size(20);
    for output in ["json", "text"] {
        group.bench_function(
            format!("30 days, 1m interval, whole process, --output {output}"),
            |b| {
                b.iter(|| {
                    let result = Command::new(env!("CARGO_BIN_EXE_rollgate"))
                        .arg("simulate")
                        .arg(&plan)
                        .arg("--scenario")
                        .arg(&scenario)
                        .args(["--output", output, "--expect", "Succeeded"])
                        .output();
                    match result {
                        Ok(out) if out.status.success() => out.stdout.len(),
                        Ok(out) => {
                            panic!("simulate failed: {}", String::from_utf8_lossy(&out.stderr))
                        }
                        Err(e) => panic!("cannot run rollgate: {e}"),
                    }
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, checkpoint, simulate_thirty_days);
criterion_main!(benches);
