//! False rollbacks of the compare gate: 1,000 simulated A/A rollouts (the flag changes
//! nothing) of `examples/errors-vs-control.yaml`, each stage's counts drawn with Poisson noise
//! at every checkpoint, run through the same engine and simulator as `rollgate simulate`. The
//! goal is at most 1 − confidence (5 %) of stages rolled back; `maxRegression: 0` is the strict
//! case where every bit of noise in the harmful direction counts.
//!
//! A benchmark of a rate, not of time: `cargo bench --bench compare_aa`.

use std::io;
use std::path::Path;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use rollgate::api::{Phase, RolloutSpec, RolloutStatus};
use rollgate::engine::Observation;
use rollgate::gates::compare::Counts;
use rollgate::sim::load::load_rollout;
use rollgate::sim::scenario::Scenario;
use rollgate::sim::timeline::{TimelineEvent, TimelineSink};
use rollgate::sim::{ObservationSource, run};

/// Requests a minute over both arms.
const TRAFFIC: f64 = 2000.0;
/// The failure rate of both arms.
const RATE: f64 = 0.01;
const ROLLOUTS: u64 = 1000;

/// A small, seeded generator (xorshift64*), so every run of the bench draws the same noise.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A Poisson draw: Knuth's product method for small means, the PTRS transformed rejection
    /// of Hörmann (1993) for larger ones.
    fn poisson(&mut self, lambda: f64) -> f64 {
        if lambda <= 0.0 {
            return 0.0;
        }
        if lambda < 30.0 {
            let limit = (-lambda).exp();
            let mut k = 0.0;
            let mut p = self.uniform();
            while p > limit {
                k += 1.0;
                p *= self.uniform();
            }
            return k;
        }
        let slam = lambda.sqrt();
        let loglam = lambda.ln();
        let b = 0.931 + 2.53 * slam;
        let a = -0.059 + 0.02483 * b;
        let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
        let vr = 0.9277 - 3.6224 / (b - 2.0);
        loop {
            let u = self.uniform() - 0.5;
            let v = self.uniform();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + lambda + 0.43).floor();
            if us >= 0.07 && v <= vr {
                return k;
            }
            if k < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            let log_fact = ln_factorial(k);
            if (v * inv_alpha / (a / (us * us) + b)).ln() <= -lambda + k * loglam - log_fact {
                return k;
            }
        }
    }
}

/// ln(k!) by Stirling's series (exact enough for k ≥ 10), by the product below.
fn ln_factorial(k: f64) -> f64 {
    if k < 10.0 {
        return (1..=(k as u64)).map(|i| (i as f64).ln()).sum();
    }
    let k1 = k + 1.0;
    (k1 - 0.5) * k1.ln() - k1 + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * k1)
        - 1.0 / (360.0 * k1.powi(3))
}

/// A/A counts with Poisson noise, accumulated from the current stage's start; the other gate
/// of the plan (a plain error rate) always passes.
struct Noisy {
    rng: Rng,
    stage_start: Option<Timestamp>,
    last: Timestamp,
    treatment: Counts,
    control: Counts,
}

impl ObservationSource for Noisy {
    fn observe(
        &mut self,
        at: Timestamp,
        status: &RolloutStatus,
        into: &mut Vec<Observation>,
    ) -> io::Result<()> {
        let start = status.stage_started_at.as_ref().map(|t| t.0);
        if start != self.stage_start {
            self.stage_start = start;
            self.last = start.unwrap_or(at);
            self.treatment = Counts::default();
            self.control = Counts::default();
        }
        let minutes = at.duration_since(self.last).as_secs_f64() / 60.0;
        self.last = at;
        let share = status.percent.map_or(0.0, rollgate::api::Percent::fraction);
        for (arm, weight) in [
            (&mut self.treatment, share),
            (&mut self.control, 1.0 - share),
        ] {
            let mean = TRAFFIC * minutes * weight;
            let events = self.rng.poisson(mean * RATE);
            let others = self.rng.poisson(mean * (1.0 - RATE));
            arm.units += events + others;
            arm.events += events;
        }
        into.clear();
        into.push(Observation::Value(0.005));
        into.push(Observation::Arms {
            treatment: self.treatment,
            control: self.control,
        });
        Ok(())
    }
}

struct Discard;

impl TimelineSink for Discard {
    fn write(&mut self, _: &TimelineEvent<'_>) -> io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `ROLLOUTS` A/A rollouts; returns (stages run, stages rolled back, rollbacks per stage).
fn false_rollbacks(spec: &RolloutSpec) -> (u64, u64, Vec<u64>) {
    let scenario = Scenario {
        start: Timestamp::UNIX_EPOCH,
        until: SignedDuration::from_hours(24),
        series: Vec::new(),
        events: Vec::new(),
    };
    let mut stages = 0;
    let mut rolled_back = 0;
    let mut per_stage = vec![0; spec.stages.len()];
    for seed in 0..ROLLOUTS {
        let mut source = Noisy {
            rng: Rng(0x9E37_79B9_7F4A_7C15 ^ (seed + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)),
            stage_start: None,
            last: Timestamp::UNIX_EPOCH,
            treatment: Counts::default(),
            control: Counts::default(),
        };
        let summary = match run(spec, &scenario, &mut source, &mut Discard) {
            Ok(summary) => summary,
            Err(e) => panic!("the simulation failed: {e}"),
        };
        stages += u64::from(summary.stage) + 1;
        if summary.phase == Phase::RolledBack {
            rolled_back += 1;
            per_stage[summary.stage as usize] += 1;
        }
    }
    (stages, rolled_back, per_stage)
}

/// The noise is Poisson: mean and variance of 20,000 draws agree with λ.
fn check_generator() {
    let mut rng = Rng(42);
    for lambda in [3.0, 29.0, 40.0, 1980.0] {
        let draws: Vec<f64> = (0..20_000).map(|_| rng.poisson(lambda)).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let variance = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        assert!(
            (mean / lambda - 1.0).abs() < 0.02,
            "λ {lambda}: mean {mean}"
        );
        assert!(
            (variance / lambda - 1.0).abs() < 0.08,
            "λ {lambda}: variance {variance}"
        );
    }
}

fn main() {
    check_generator();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/errors-vs-control.yaml");
    let plan = match load_rollout(&path) {
        Ok(rollout) => rollout.spec,
        Err(e) => panic!("{e}"),
    };
    let mut strict = plan.clone();
    if let Some(compare) = strict.analysis.gates[1].compare.as_mut() {
        compare.max_regression = 0.0;
    }
    println!(
        "A/A: {ROLLOUTS} rollouts of examples/errors-vs-control.yaml, {TRAFFIC} requests a minute, \
         {} % failures in both arms, Poisson noise",
        RATE * 100.0
    );
    for (name, spec) in [("maxRegression 0.002", &plan), ("maxRegression 0", &strict)] {
        let (stages, rolled_back, per_stage) = false_rollbacks(spec);
        println!(
            "{name}: {rolled_back} of {stages} stages rolled back ({:.2} %; per stage {per_stage:?}), \
             {rolled_back} of {ROLLOUTS} rollouts ({:.2} %)",
            100.0 * rolled_back as f64 / stages as f64,
            100.0 * rolled_back as f64 / ROLLOUTS as f64,
        );
    }
}
