//! The decision engine against docs/design.md §4, rule by rule and edge by edge.
//!
//! Every test drives `decide` (or `checkpoint_due` / `judge`) directly on a plan built from
//! YAML, the way a user writes it. Times are offsets in seconds from the start, t = 0.

use rollgate::api::{
    CHECKPOINT_HISTORY_LIMIT, CheckpointVerdict, DriftPolicy, Gate, GateVerdict, HISTORY_LIMIT,
    HistoryKind, Phase, RolloutSpec,
};
use rollgate::engine::{
    Conditions, DriftAction, Inputs, ManualAction, Observation, Outcome, PreChecks, TransitionKind,
    assess, checkpoint_due, judge,
};
use rollgate::gates::compare::Counts;

use support::*;

/// Plans, observations, times and a small driver around `decide`.
mod support {
    use k8s_openapi::jiff::{SignedDuration, Timestamp};
    use rollgate::api::{Gate, RolloutSpec, RolloutStatus};
    use rollgate::engine::{Inputs, ManualAction, Observation, Outcome, TransitionKind, decide};

    pub const M: i64 = 60;

    /// A whole percent.
    pub fn pc(percent: u8) -> rollgate::api::Percent {
        rollgate::api::Percent::whole(percent)
    }
    pub const H: i64 = 3600;

    /// The plan of docs/design.md §1: 1% → 5% → 10% (2h, 2h, 4h), hourly checkpoints, three
    /// gates, as `examples/passenger-favorites-matching.yaml` writes it.
    pub const EXAMPLE: &str = "passenger-favorites-matching";

    pub fn parse_spec(yaml: &str) -> RolloutSpec {
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("bad test plan: {e}\n{yaml}"))
    }

    /// The example plan (docs/design.md §1).
    pub fn plan() -> RolloutSpec {
        crate::support::example_rollout(EXAMPLE).spec
    }

    /// The example plan (docs/design.md §1), changed by `f`.
    pub fn plan_with(f: impl FnOnce(&mut RolloutSpec)) -> RolloutSpec {
        let mut spec = plan();
        f(&mut spec);
        spec
    }

    pub fn gate(yaml: &str) -> Gate {
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("bad test gate: {e}\n{yaml}"))
    }

    /// A duration field's value from its YAML text, whatever the field's Rust type.
    pub fn dur<T: serde::de::DeserializeOwned>(text: &str) -> T {
        serde_saphyr::from_str(&format!("'{text}'"))
            .unwrap_or_else(|e| panic!("bad duration {text}: {e}"))
    }

    pub fn t0() -> Timestamp {
        "2026-02-01T19:18:00Z".parse().unwrap()
    }

    /// t = `secs` after the start.
    pub fn t(secs: i64) -> Timestamp {
        t0().checked_add(SignedDuration::from_secs(secs)).unwrap()
    }

    /// t = `n` nanoseconds after the start.
    pub fn tn(n: i64) -> Timestamp {
        t0().checked_add(SignedDuration::from_nanos(n)).unwrap()
    }

    pub fn v(x: f64) -> Observation {
        Observation::Value(x)
    }

    pub fn nodata() -> Observation {
        Observation::NoData
    }

    pub fn err(message: &str) -> Observation {
        Observation::Error(message.to_owned())
    }

    /// error-rate, critical-alerts, determinism.
    pub fn obs(error_rate: Observation, alerts: Observation, det: Observation) -> Vec<Observation> {
        vec![error_rate, alerts, det]
    }

    /// Every gate of the example plan (docs/design.md §1) passes.
    pub fn good() -> Vec<Observation> {
        obs(v(0.002), v(0.0), v(0.0))
    }

    /// error-rate above its max (failureLimit 2); the others pass.
    pub fn spike() -> Vec<Observation> {
        obs(v(0.03), v(0.0), v(0.0))
    }

    /// error-rate has no data; the others pass.
    pub fn error_rate_missing() -> Vec<Observation> {
        obs(nodata(), v(0.0), v(0.0))
    }

    /// error-rate's provider failed; the others pass.
    pub fn error_rate_error() -> Vec<Observation> {
        obs(err("connection refused"), v(0.0), v(0.0))
    }

    /// One critical alert fires (failureLimit 1); the others pass.
    pub fn alert() -> Vec<Observation> {
        obs(v(0.002), v(1.0), v(0.0))
    }

    /// A rollout being driven: spec, status and the spec's generation.
    pub struct Run {
        pub spec: RolloutSpec,
        pub status: RolloutStatus,
        pub generation: i64,
    }

    impl Run {
        /// Not started yet.
        pub fn new(spec: RolloutSpec) -> Self {
            Self {
                spec,
                status: RolloutStatus::default(),
                generation: 1,
            }
        }

        /// Started at t = 0.
        pub fn started(spec: RolloutSpec) -> Self {
            let mut run = Self::new(spec);
            let out = run.decide(Inputs::at(t(0)));
            assert_eq!(out.write, Some(run.spec.stages[0].percent), "{out:?}");
            run
        }

        /// `decide` with these inputs, at the run's current generation.
        pub fn decide(&mut self, inputs: Inputs<'_>) -> Outcome {
            let inputs = inputs.with_generation(Some(self.generation));
            decide(&self.spec, &mut self.status, &inputs)
        }

        /// `decide` at `secs` with the gates' observations (a checkpoint if one is due).
        pub fn check(&mut self, secs: i64, observations: &[Observation]) -> Outcome {
            self.decide(Inputs::at(t(secs)).with_observations(observations))
        }

        /// `decide` at `secs` with a person's action.
        pub fn act(&mut self, secs: i64, action: ManualAction) -> Outcome {
            self.decide(Inputs::at(t(secs)).with_action(action))
        }

        /// `decide` at `secs` with the target's live percent.
        pub fn live(&mut self, secs: i64, percent: u8) -> Outcome {
            self.decide(Inputs::at(t(secs)).with_live_percent(pc(percent)))
        }

        /// A new generation of the spec, changed by `f`, decided at `secs`.
        pub fn respec(&mut self, secs: i64, f: impl FnOnce(&mut RolloutSpec)) -> Outcome {
            f(&mut self.spec);
            self.generation += 1;
            self.decide(Inputs::at(t(secs)))
        }

        pub fn next(&self) -> Option<k8s_openapi::jiff::Timestamp> {
            self.status.next_checkpoint_at.as_ref().map(|x| x.0)
        }

        pub fn stage_start(&self) -> Option<k8s_openapi::jiff::Timestamp> {
            self.status.stage_started_at.as_ref().map(|x| x.0)
        }

        /// (failures, misses) of the gate at `index`.
        pub fn counters(&self, index: usize) -> (u32, u32) {
            let g = &self.status.gates[index];
            (g.failures, g.misses)
        }
    }

    /// The words of an outcome's transitions, in order.
    pub fn kinds(out: &Outcome) -> Vec<&'static str> {
        out.transitions.iter().map(|x| x.kind.as_str()).collect()
    }

    pub fn only(out: &Outcome) -> TransitionKind {
        assert_eq!(out.transitions.len(), 1, "{out:?}");
        out.transitions[0].kind
    }
}

fn verdict(run: &Run, index: usize) -> Option<GateVerdict> {
    run.status.gates[index].last_verdict
}

fn checkpoint_verdict(out: &Outcome) -> CheckpointVerdict {
    out.checkpoint.expect("a checkpoint was taken").verdict
}

// ---------------------------------------------------------------------------------------------
// Rule 1: start
// ---------------------------------------------------------------------------------------------

#[test]
fn start_writes_stage_zero_percent_and_progresses() {
    let mut run = Run::new(plan());
    let out = run.decide(rollgate::engine::Inputs::at(t(0)));
    assert_eq!(out.write, Some(pc(1)));
    assert_eq!(kinds(&out), ["start"]);
    assert_eq!(out.transitions[0].stage, 0);
    assert_eq!(out.transitions[0].percent, pc(1));
    assert!(out.checkpoint.is_none());
    let s = &run.status;
    assert_eq!(s.phase, Some(Phase::Progressing));
    assert_eq!(s.stage, 0);
    assert_eq!(s.percent, Some(pc(1)));
    assert_eq!(s.started_at.as_ref().map(|x| x.0), Some(t(0)));
    assert_eq!(run.stage_start(), Some(t(0)));
    assert_eq!(run.next(), Some(t(H)));
    assert_eq!(s.observed_generation, Some(1));
    let names: Vec<_> = s.gates.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["error-rate", "critical-alerts", "determinism"]);
    assert!(s.gates.iter().all(|g| g.failures == 0 && g.misses == 0));
    assert_eq!(s.history.len(), 1);
    assert_eq!(s.history[0].kind, HistoryKind::Start);
    assert_eq!(s.history[0].percent, pc(1));
}

#[test]
fn start_takes_no_checkpoint_at_t0_even_with_observations() {
    let mut run = Run::new(plan());
    let spiking = alert();
    let out = run.check(0, &spiking);
    assert_eq!(out.write, Some(pc(1)));
    assert!(out.checkpoint.is_none(), "{out:?}");
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert_eq!(run.counters(1), (0, 0));
}

#[test]
fn start_is_not_repeated() {
    let mut run = Run::started(plan());
    let before = run.status.clone();
    let out = run.decide(rollgate::engine::Inputs::at(t(0)));
    assert_eq!(out, Outcome::default());
    let out = run.decide(rollgate::engine::Inputs::at(t(30 * M)));
    assert_eq!(out, Outcome::default());
    assert!(!out.changed_anything());
    assert_eq!(
        run.status, before,
        "a decide with nothing to do changes nothing"
    );
}

#[test]
fn start_with_a_zero_first_stage_writes_zero() {
    let spec = plan_with(|s| s.stages[0].percent = pc(0));
    let mut run = Run::new(spec);
    let out = run.decide(rollgate::engine::Inputs::at(t(0)));
    assert_eq!(out.write, Some(pc(0)));
    assert_eq!(run.status.percent, Some(pc(0)));
}

#[test]
fn interval_defaults_to_one_minute() {
    let spec = parse_spec(
        r#"
target: {configMap: {name: cm, key: percent}}
stages: [{percent: 50}]
analysis:
  gates: [{name: g, prometheus: {query: q}, max: 1}]
"#,
    );
    let mut run = Run::started(spec);
    assert_eq!(run.next(), Some(t(M)));
    assert!(!checkpoint_due(&run.status, t(M - 1)));
    assert!(checkpoint_due(&run.status, t(M)));
    // Duration defaults to 0: the first passing checkpoint completes the only stage.
    let out = run.check(M, &[v(0.5)]);
    assert_eq!(kinds(&out), ["complete"]);
}

#[test]
fn start_with_spec_paused_writes_stage_zero_and_pauses() {
    let spec = plan_with(|s| s.paused = true);
    let mut run = Run::new(spec);
    let out = run.decide(rollgate::engine::Inputs::at(t(0)));
    assert_eq!(out.write, Some(pc(1)));
    assert_eq!(kinds(&out), ["start", "pause"]);
    assert_eq!(run.status.phase, Some(Phase::Paused));
    // Paused by the spec: a passing checkpoint after the bake time does not advance.
    run.check(H, &good());
    let out = run.check(2 * H, &good());
    assert!(out.transitions.is_empty(), "{out:?}");
    assert_eq!(out.write, None);
    assert_eq!(run.status.stage, 0);
    // Unpausing the spec resumes.
    let out = run.respec(2 * H + 1, |s| s.paused = false);
    assert_eq!(kinds(&out), ["resume"]);
    assert_eq!(run.status.phase, Some(Phase::Progressing));
}

// ---------------------------------------------------------------------------------------------
// Rule 2: checkpoints and checkpoint_due
// ---------------------------------------------------------------------------------------------

#[test]
fn checkpoint_due_is_inclusive_of_the_scheduled_instant() {
    let run = Run::started(plan());
    assert!(!checkpoint_due(&run.status, t(0)));
    assert!(!checkpoint_due(&run.status, tn(H * 1_000_000_000 - 1)));
    assert!(checkpoint_due(&run.status, t(H)));
    assert!(checkpoint_due(&run.status, t(5 * H)));
}

#[test]
fn checkpoint_due_is_false_before_start() {
    let run = Run::new(plan());
    assert!(!checkpoint_due(&run.status, t(0)));
    assert!(!checkpoint_due(&run.status, t(100 * H)));
}

#[test]
fn checkpoint_due_is_false_in_terminal_phases() {
    let mut run = Run::started(plan());
    run.act(10, ManualAction::Abort);
    assert_eq!(run.status.phase, Some(Phase::RolledBack));
    assert!(!checkpoint_due(&run.status, t(H)));
    assert!(!checkpoint_due(&run.status, t(100 * H)));

    let mut run = Run::started(plan());
    run.act(10, ManualAction::Promote);
    run.act(20, ManualAction::Promote);
    run.act(30, ManualAction::Promote);
    assert_eq!(run.status.phase, Some(Phase::Succeeded));
    assert!(!checkpoint_due(&run.status, t(100 * H)));
}

#[test]
fn checkpoint_due_is_true_while_paused() {
    let mut run = Run::started(plan());
    run.act(10, ManualAction::Pause);
    assert_eq!(run.status.phase, Some(Phase::Paused));
    assert!(checkpoint_due(&run.status, t(H)));
}

#[test]
fn observations_before_the_checkpoint_is_due_are_ignored() {
    let mut run = Run::started(plan());
    let before = run.status.clone();
    let out = run.check(H - 1, &alert());
    assert!(out.checkpoint.is_none());
    assert!(out.transitions.is_empty());
    assert_eq!(run.status, before);
    let out = run.decide(
        rollgate::engine::Inputs::at(tn(H * 1_000_000_000 - 1)).with_observations(&alert()),
    );
    assert!(out.checkpoint.is_none());
    assert_eq!(run.status.phase, Some(Phase::Progressing));
}

#[test]
fn checkpoints_fall_at_stage_start_plus_whole_intervals() {
    let mut run = Run::started(plan());
    let out = run.check(H, &good());
    let cp = out.checkpoint.unwrap();
    assert_eq!(
        (cp.stage, cp.percent, cp.verdict),
        (0, pc(1), CheckpointVerdict::Pass)
    );
    assert_eq!(run.next(), Some(t(2 * H)));
    // A checkpoint taken late keeps the cadence: the next is at 3h, not at 2h40m + 1h.
    run.decide(rollgate::engine::Inputs::at(t(2 * H + 40 * M)).with_observations(&spike()));
    assert_eq!(run.next(), Some(t(3 * H)));
    let last = run.status.last_checkpoint.as_ref().unwrap();
    assert_eq!(last.at.0, t(2 * H + 40 * M));
    assert_eq!(last.verdict, CheckpointVerdict::Warn);
}

#[test]
fn cadence_restarts_when_the_stage_changes() {
    let mut run = Run::started(plan());
    // Promote at 20m: stage 1 starts then, so its checkpoints fall at 1h20m, 2h20m, …
    let out = run.act(20 * M, ManualAction::Promote);
    assert_eq!(kinds(&out), ["advance"]);
    assert_eq!(run.stage_start(), Some(t(20 * M)));
    assert_eq!(run.next(), Some(t(H + 20 * M)));
    assert!(!checkpoint_due(&run.status, t(H)));
    let out = run.check(H, &good());
    assert!(
        out.checkpoint.is_none(),
        "no checkpoint at the old cadence's 1h"
    );
    let out = run.check(H + 20 * M, &good());
    assert!(out.checkpoint.is_some());
    assert_eq!(run.next(), Some(t(2 * H + 20 * M)));
}

#[test]
fn cadence_restarts_after_an_advance_at_a_late_checkpoint() {
    let mut run = Run::started(plan());
    run.check(H, &good());
    // The 2h checkpoint is taken at 2h30m (the controller was busy): it advances, and the
    // new stage's cadence starts at 2h30m.
    let out = run.check(2 * H + 30 * M, &good());
    assert_eq!(kinds(&out), ["advance"]);
    assert_eq!(run.stage_start(), Some(t(2 * H + 30 * M)));
    assert_eq!(run.next(), Some(t(3 * H + 30 * M)));
}

#[test]
fn downtime_is_caught_up_with_one_checkpoint() {
    let mut run = Run::started(plan());
    // Down from t = 0 to 5h30m: five checkpoints were missed. error-rate fails (limit 2):
    // one catch-up checkpoint counts one failure, so no rollback.
    let out = run.check(5 * H + 30 * M, &spike());
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Warn);
    assert!(out.transitions.is_empty(), "{out:?}");
    assert_eq!(run.counters(0), (1, 0));
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert_eq!(run.next(), Some(t(6 * H)));
    // Nothing more is due until 6h.
    let out = run.check(5 * H + 31 * M, &spike());
    assert!(out.checkpoint.is_none());
    assert_eq!(run.counters(0), (1, 0));
    // The next on-cadence checkpoint counts the second failure.
    let out = run.check(6 * H, &spike());
    assert_eq!(kinds(&out), ["rollback"]);
}

#[test]
fn downtime_misses_count_once() {
    let mut run = Run::started(plan_with(|s| s.analysis.error_limit = 2));
    let out = run.check(10 * H, &error_rate_missing());
    assert!(out.transitions.is_empty(), "{out:?}");
    assert_eq!(run.counters(0), (0, 1));
    assert_eq!(run.status.phase, Some(Phase::Progressing));
}

#[test]
fn catch_up_after_downtime_advances_one_stage_only() {
    let mut run = Run::started(plan());
    // Down for 10h: every stage's bake time would have ended, but one checkpoint advances
    // one stage.
    let out = run.check(10 * H, &good());
    assert_eq!(kinds(&out), ["advance"]);
    assert_eq!(out.write, Some(pc(5)));
    assert_eq!(run.status.stage, 1);
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert_eq!(run.next(), Some(t(11 * H)));
}

// ---------------------------------------------------------------------------------------------
// Rule 3: verdicts
// ---------------------------------------------------------------------------------------------

#[test]
fn judge_bounds_are_inclusive() {
    let g = gate("{name: g, prometheus: {query: q}, min: 0.5, max: 1.0}");
    assert_eq!(judge(&g, &v(0.5)), GateVerdict::Pass);
    assert_eq!(judge(&g, &v(0.75)), GateVerdict::Pass);
    assert_eq!(judge(&g, &v(1.0)), GateVerdict::Pass);
    assert_eq!(judge(&g, &v(0.499_999)), GateVerdict::Fail);
    assert_eq!(judge(&g, &v(1.000_001)), GateVerdict::Fail);
    assert_eq!(judge(&g, &v(f64::next_down(0.5))), GateVerdict::Fail);
    assert_eq!(judge(&g, &v(f64::next_up(1.0))), GateVerdict::Fail);
}

#[test]
fn judge_with_one_bound() {
    let max_only = gate("{name: g, prometheus: {query: q}, max: 0.01}");
    assert_eq!(judge(&max_only, &v(0.01)), GateVerdict::Pass);
    assert_eq!(judge(&max_only, &v(0.0)), GateVerdict::Pass);
    assert_eq!(judge(&max_only, &v(-5.0)), GateVerdict::Pass);
    assert_eq!(judge(&max_only, &v(0.010_001)), GateVerdict::Fail);

    let min_only = gate("{name: g, prometheus: {query: q}, min: 0.99}");
    assert_eq!(judge(&min_only, &v(0.99)), GateVerdict::Pass);
    assert_eq!(judge(&min_only, &v(1e9)), GateVerdict::Pass);
    assert_eq!(judge(&min_only, &v(0.98)), GateVerdict::Fail);
}

#[test]
fn judge_without_bounds_passes_any_prometheus_value() {
    let g = gate("{name: g, prometheus: {query: q}}");
    assert_eq!(judge(&g, &v(0.0)), GateVerdict::Pass);
    assert_eq!(judge(&g, &v(12345.0)), GateVerdict::Pass);
    assert_eq!(judge(&g, &nodata()), GateVerdict::Inconclusive);
}

#[test]
fn judge_no_data_and_nan_are_inconclusive() {
    let g = gate("{name: g, prometheus: {query: q}, max: 0.01}");
    assert_eq!(judge(&g, &nodata()), GateVerdict::Inconclusive);
    assert_eq!(judge(&g, &v(f64::NAN)), GateVerdict::Inconclusive);
    assert_eq!(judge(&g, &v(-f64::NAN)), GateVerdict::Inconclusive);
    // No data is never a pass, even for a gate without bounds.
    let unbounded = gate("{name: g, prometheus: {query: q}}");
    assert_eq!(judge(&unbounded, &v(f64::NAN)), GateVerdict::Inconclusive);
}

#[test]
fn judge_provider_failure_is_error() {
    let g = gate("{name: g, prometheus: {query: q}, max: 0.01}");
    assert_eq!(judge(&g, &err("timeout")), GateVerdict::Error);
    assert_eq!(judge(&g, &err("")), GateVerdict::Error);
}

#[test]
fn judge_infinities_fail_finite_bounds() {
    let g = gate("{name: g, prometheus: {query: q}, min: 0, max: 0.01}");
    assert_eq!(judge(&g, &v(f64::INFINITY)), GateVerdict::Fail);
    assert_eq!(judge(&g, &v(f64::NEG_INFINITY)), GateVerdict::Fail);
    let max_only = gate("{name: g, prometheus: {query: q}, max: 0.01}");
    assert_eq!(judge(&max_only, &v(f64::INFINITY)), GateVerdict::Fail);
    let min_only = gate("{name: g, prometheus: {query: q}, min: 0}");
    assert_eq!(judge(&min_only, &v(f64::NEG_INFINITY)), GateVerdict::Fail);
    let alerts = gate("{name: a, alerts: {}}");
    assert_eq!(judge(&alerts, &v(f64::INFINITY)), GateVerdict::Fail);
}

#[test]
fn alerts_and_ofrep_max_defaults_to_zero() {
    for yaml in [
        r#"{name: a, alerts: {matchers: ['severity="critical"']}}"#,
        r#"{name: d, ofrep: {address: "http://flagd:8016"}}"#,
    ] {
        let g = gate(yaml);
        assert_eq!(judge(&g, &v(0.0)), GateVerdict::Pass, "{yaml}");
        assert_eq!(judge(&g, &v(1.0)), GateVerdict::Fail, "{yaml}");
        assert_eq!(judge(&g, &v(0.5)), GateVerdict::Fail, "{yaml}");
        assert_eq!(judge(&g, &v(7.0)), GateVerdict::Fail, "{yaml}");
        assert_eq!(judge(&g, &nodata()), GateVerdict::Inconclusive, "{yaml}");
    }
}

#[test]
fn alerts_and_ofrep_explicit_max_overrides_the_default() {
    let g = gate("{name: a, alerts: {}, max: 2}");
    assert_eq!(judge(&g, &v(2.0)), GateVerdict::Pass);
    assert_eq!(judge(&g, &v(3.0)), GateVerdict::Fail);
    let g = gate(r#"{name: d, ofrep: {address: "http://flagd:8016"}, max: 5}"#);
    assert_eq!(judge(&g, &v(5.0)), GateVerdict::Pass);
    assert_eq!(judge(&g, &v(6.0)), GateVerdict::Fail);
}

/// docs/design.md §3: for alerts and ofrep "max defaults to 0" — a default for `max` alone, so a gate
/// that only sets `min` is still held to at most 0 firing alerts / mismatches.
#[test]
fn alerts_and_ofrep_max_defaults_to_zero_when_only_min_is_set() {
    for yaml in [
        "{name: a, alerts: {}, min: 0}",
        r#"{name: d, ofrep: {address: "http://flagd:8016"}, min: 0}"#,
    ] {
        let g = gate(yaml);
        assert_eq!(judge(&g, &v(0.0)), GateVerdict::Pass, "{yaml}");
        assert_eq!(judge(&g, &v(5.0)), GateVerdict::Fail, "{yaml}");
    }
}

#[test]
fn http_gate_without_bounds_needs_at_least_one() {
    let g = gate("{name: h, http: {url: 'http://x/health', jsonPath: '$.ok'}}");
    assert_eq!(judge(&g, &v(1.0)), GateVerdict::Pass);
    assert_eq!(judge(&g, &v(0.0)), GateVerdict::Fail);
    assert_eq!(judge(&g, &nodata()), GateVerdict::Inconclusive);
}

#[test]
fn decide_records_each_gates_verdict_value_and_message() {
    let mut run = Run::started(plan());
    run.check(H, &obs(v(f64::NAN), v(2.0), err("connection refused")));
    let g = &run.status.gates;
    assert_eq!(g[0].last_verdict, Some(GateVerdict::Inconclusive));
    assert_eq!(g[0].last_value, None, "NaN is no value");
    assert_eq!(g[1].last_verdict, Some(GateVerdict::Fail));
    assert_eq!(g[1].last_value, Some(2.0));
    assert_eq!(g[2].last_verdict, Some(GateVerdict::Error));
    assert_eq!(g[2].last_value, None);
    assert_eq!(g[2].last_message.as_deref(), Some("connection refused"));
}

#[test]
fn infinite_error_rate_fails_through_decide() {
    let mut run = Run::started(plan_with(|s| s.analysis.gates[0].failure_limit = 1));
    let out = run.check(H, &obs(v(f64::INFINITY), v(0.0), v(0.0)));
    assert_eq!(verdict(&run, 0), Some(GateVerdict::Fail));
    assert_eq!(kinds(&out), ["rollback"]);
}

#[test]
fn nan_counts_as_a_miss_not_a_failure() {
    let mut run = Run::started(plan());
    run.check(H, &obs(v(f64::NAN), v(0.0), v(0.0)));
    assert_eq!(verdict(&run, 0), Some(GateVerdict::Inconclusive));
    assert_eq!(run.counters(0), (0, 1));
}

#[test]
fn a_missing_observation_counts_as_an_error() {
    let mut run = Run::started(plan());
    let out = run.check(H, &[v(0.002)]);
    assert_eq!(verdict(&run, 0), Some(GateVerdict::Pass));
    assert_eq!(verdict(&run, 1), Some(GateVerdict::Error));
    assert_eq!(verdict(&run, 2), Some(GateVerdict::Error));
    assert_eq!(run.counters(1), (0, 1));
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Warn);
}

#[test]
fn no_data_never_passes_a_checkpoint() {
    let mut run = Run::started(plan());
    run.check(H, &good());
    // Bake time over, but a gate has no data: hold, never advance.
    let out = run.check(2 * H, &error_rate_missing());
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Warn);
    assert!(out.transitions.is_empty(), "{out:?}");
    assert_eq!(out.write, None);
    assert_eq!(run.status.stage, 0);
    let out = run.check(3 * H, &obs(nodata(), nodata(), nodata()));
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Warn);
    assert!(out.transitions.is_empty());
    assert_eq!(run.status.stage, 0);
}

#[test]
fn an_error_never_passes_a_checkpoint() {
    let mut run = Run::started(plan());
    let out = run.check(2 * H, &error_rate_error());
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Warn);
    assert!(out.transitions.is_empty());
    assert_eq!(run.status.stage, 0);
}

// ---------------------------------------------------------------------------------------------
// Rule 4: counters
// ---------------------------------------------------------------------------------------------

#[test]
fn failures_count_consecutive_fails_and_a_pass_resets_them() {
    let mut run = Run::started(plan());
    run.check(H, &spike());
    assert_eq!(run.counters(0), (1, 0));
    run.check(2 * H, &obs(v(0.002), v(0.0), v(0.0)));
    assert_eq!(run.counters(0), (0, 0));
    let out = run.check(3 * H, &spike());
    assert_eq!(run.counters(0), (1, 0));
    assert!(
        out.transitions
            .iter()
            .all(|x| x.kind != TransitionKind::Rollback),
        "fail, pass, fail is not two in a row: {out:?}"
    );
    assert_ne!(run.status.phase, Some(Phase::RolledBack));
}

#[test]
fn an_error_between_two_failures_keeps_the_count() {
    let mut run = Run::started(plan());
    run.check(H, &spike());
    run.check(2 * H, &error_rate_error());
    assert_eq!(run.counters(0), (1, 1), "error leaves failures as is");
    let out = run.check(3 * H, &spike());
    assert_eq!(run.counters(0).0, 2);
    assert_eq!(kinds(&out), ["rollback"]);
    assert_eq!(
        out.transitions[0].reason.as_deref(),
        Some("gate error-rate failed 2 checkpoints in a row")
    );
    assert_eq!(run.status.phase, Some(Phase::RolledBack));
}

#[test]
fn no_data_between_two_failures_keeps_the_count() {
    let mut run = Run::started(plan());
    run.check(H, &spike());
    run.check(2 * H, &error_rate_missing());
    run.check(3 * H, &obs(v(f64::NAN), v(0.0), v(0.0)));
    assert_eq!(run.counters(0), (1, 2));
    let out = run.check(4 * H, &spike());
    assert_eq!(kinds(&out), ["rollback"]);
}

#[test]
fn misses_count_consecutive_inconclusive_and_error() {
    let mut run = Run::started(plan_with(|s| s.analysis.error_limit = 10));
    run.check(H, &error_rate_missing());
    run.check(2 * H, &error_rate_error());
    run.check(3 * H, &obs(v(f64::NAN), v(0.0), v(0.0)));
    assert_eq!(run.counters(0), (0, 3));
    assert_eq!(run.counters(1), (0, 0));
}

#[test]
fn a_pass_resets_misses() {
    let mut run = Run::started(plan());
    run.check(H, &error_rate_missing());
    run.check(2 * H, &error_rate_error());
    assert_eq!(run.counters(0), (0, 2));
    run.check(3 * H, &good());
    assert_eq!(run.counters(0), (0, 0));
    // So two more misses do not reach errorLimit 3.
    run.check(4 * H, &error_rate_missing());
    let out = run.check(5 * H, &error_rate_missing());
    assert!(out.transitions.is_empty(), "{out:?}");
    assert_eq!(run.status.phase, Some(Phase::Progressing));
}

#[test]
fn a_fail_resets_misses() {
    let mut run = Run::started(plan());
    run.check(H, &error_rate_missing());
    run.check(2 * H, &error_rate_error());
    assert_eq!(run.counters(0), (0, 2));
    run.check(3 * H, &spike());
    assert_eq!(run.counters(0), (1, 0));
    // Two misses after the fail are two, not four: no pause at errorLimit 3.
    run.check(4 * H, &error_rate_missing());
    let out = run.check(5 * H, &error_rate_missing());
    assert_eq!(run.counters(0), (1, 2));
    assert!(out.transitions.is_empty(), "{out:?}");
    assert_eq!(run.status.phase, Some(Phase::Progressing));
}

#[test]
fn counters_are_per_gate() {
    let mut run = Run::started(plan_with(|s| s.analysis.error_limit = 2));
    // Gates take turns without data: no gate misses twice in a row.
    run.check(H, &obs(nodata(), v(0.0), v(0.0)));
    let out = run.check(2 * H, &obs(v(0.002), err("down"), v(0.0)));
    assert!(out.transitions.is_empty(), "{out:?}");
    let out = run.check(3 * H, &obs(nodata(), v(0.0), v(0.0)));
    assert!(out.transitions.is_empty(), "{out:?}");
    assert_eq!(run.counters(0), (0, 1));
    assert_eq!(run.counters(1), (0, 0));
    assert_eq!(run.status.phase, Some(Phase::Progressing));
}

// ---------------------------------------------------------------------------------------------
// Rule 5: decisions a–d
// ---------------------------------------------------------------------------------------------

#[test]
fn rollback_at_failure_limit_writes_the_rollback_percent() {
    let mut run = Run::started(plan());
    run.act(M, ManualAction::Promote);
    assert_eq!(run.status.percent, Some(pc(5)));
    let out = run.check(H + M, &alert());
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Fail);
    assert_eq!(kinds(&out), ["rollback"]);
    assert_eq!(out.write, Some(pc(0)));
    let tr = &out.transitions[0];
    assert_eq!((tr.stage, tr.percent), (1, pc(0)));
    assert!(
        tr.reason.as_deref().unwrap().contains("critical-alerts"),
        "{tr:?}"
    );
    assert_eq!(run.status.phase, Some(Phase::RolledBack));
    assert_eq!(run.status.percent, Some(pc(0)));
    assert_eq!(run.next(), None);
    assert_eq!(run.status.message, tr.reason);
}

#[test]
fn rollback_reason_names_the_gate_and_the_count() {
    let mut run = Run::started(plan());
    run.check(H, &spike());
    let out = run.check(2 * H, &spike());
    assert_eq!(
        out.transitions[0].reason.as_deref(),
        Some("gate error-rate failed 2 checkpoints in a row")
    );
    assert_eq!(
        run.status.message.as_deref(),
        Some("gate error-rate failed 2 checkpoints in a row")
    );
    let last = run.status.history.last().unwrap();
    assert_eq!(last.kind, HistoryKind::Rollback);
    assert_eq!(
        last.message.as_deref(),
        Some("gate error-rate failed 2 checkpoints in a row")
    );
}

#[test]
fn one_spike_is_not_a_rollback() {
    let mut run = Run::started(plan());
    let out = run.check(H, &spike());
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Warn);
    assert!(out.transitions.is_empty());
    assert_eq!(out.write, None);
    assert_eq!(run.status.phase, Some(Phase::Progressing));
}

#[test]
fn rollback_percent_is_taken_from_the_spec() {
    let mut run = Run::started(plan_with(|s| {
        s.stages[0].percent = pc(2);
        s.rollback.percent = pc(2);
    }));
    run.act(M, ManualAction::Promote);
    let out = run.check(H + M, &alert());
    assert_eq!(out.write, Some(pc(2)));
    assert_eq!(run.status.percent, Some(pc(2)));
    assert_eq!(run.status.phase, Some(Phase::RolledBack));
}

#[test]
fn rollback_beats_pause() {
    let mut run = Run::started(plan());
    run.check(H, &error_rate_missing());
    run.check(2 * H, &error_rate_missing());
    // Third miss of error-rate (errorLimit 3) and a critical alert at the same checkpoint.
    let out = run.check(3 * H, &obs(nodata(), v(1.0), v(0.0)));
    assert_eq!(run.counters(0), (0, 3));
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Fail);
    assert_eq!(kinds(&out), ["rollback"]);
    assert_eq!(run.status.phase, Some(Phase::RolledBack));
}

#[test]
fn rollback_beats_pause_with_error_limit_one() {
    let mut run = Run::started(plan_with(|s| s.analysis.error_limit = 1));
    let out = run.check(H, &obs(err("down"), v(0.0), v(3.0)));
    assert_eq!(kinds(&out), ["rollback"]);
    assert!(
        out.transitions[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("determinism")
    );
}

#[test]
fn pause_at_error_limit_and_not_before() {
    let mut run = Run::started(plan());
    let out = run.check(H, &error_rate_missing());
    assert!(out.transitions.is_empty());
    let out = run.check(2 * H, &error_rate_error());
    assert!(
        out.transitions.is_empty(),
        "2 misses < errorLimit 3: {out:?}"
    );
    let out = run.check(3 * H, &error_rate_missing());
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Warn);
    assert_eq!(kinds(&out), ["pause"]);
    assert_eq!(out.write, None, "a pause leaves the target alone");
    assert!(
        out.transitions[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("error-rate"),
        "{out:?}"
    );
    assert_eq!(run.status.phase, Some(Phase::Paused));
    assert_eq!(run.status.percent, Some(pc(1)));
    assert_eq!(run.next(), Some(t(4 * H)), "checkpoints go on while paused");
}

#[test]
fn pause_at_error_limit_beats_advance() {
    let mut run = Run::started(plan_with(|s| {
        s.analysis.error_limit = 1;
        s.stages[0].duration = dur("0s");
    }));
    // An empty observation list: every gate errs; with bake time 0 an advance would
    // otherwise be possible, but no data never advances.
    let out = run.check(H, &[]);
    assert_eq!(kinds(&out), ["pause"]);
    assert_eq!(run.status.stage, 0);
}

#[test]
fn advance_exactly_when_the_bake_time_ends() {
    let mut run = Run::started(plan());
    let out = run.check(H, &good());
    assert!(out.transitions.is_empty(), "1h < bake time 2h: {out:?}");
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Pass);
    let out = run.check(2 * H, &good());
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Pass);
    assert_eq!(kinds(&out), ["advance"]);
    assert_eq!(out.write, Some(pc(5)));
    let tr = &out.transitions[0];
    assert_eq!((tr.stage, tr.percent), (1, pc(5)));
    assert_eq!(run.status.stage, 1);
    assert_eq!(run.status.percent, Some(pc(5)));
    assert_eq!(run.stage_start(), Some(t(2 * H)));
    assert_eq!(run.next(), Some(t(3 * H)));
    assert_eq!(run.status.phase, Some(Phase::Progressing));
}

#[test]
fn no_advance_one_nanosecond_before_the_bake_time_ends() {
    let mut run = Run::started(plan());
    // The 1h checkpoint, caught up 1 ns before the 2h bake time ends.
    let two_hours = 2 * H * 1_000_000_000;
    let out =
        run.decide(rollgate::engine::Inputs::at(tn(two_hours - 1)).with_observations(&good()));
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Pass);
    assert!(out.transitions.is_empty(), "{out:?}");
    assert_eq!(out.write, None);
    assert_eq!(run.status.stage, 0);
    assert_eq!(run.next(), Some(t(2 * H)));
    let out = run.check(2 * H, &good());
    assert_eq!(kinds(&out), ["advance"]);
}

#[test]
fn no_advance_when_the_bake_time_is_one_nanosecond_longer_than_the_checkpoint() {
    let mut run = Run::started(plan_with(|s| s.stages[0].duration = dur("3600000000001ns")));
    let out = run.check(H, &good());
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Pass);
    assert!(out.transitions.is_empty(), "{out:?}");
    let out = run.check(2 * H, &good());
    assert_eq!(kinds(&out), ["advance"]);
}

#[test]
fn advance_needs_every_gate_to_pass() {
    let mut run = Run::started(plan());
    run.check(H, &good());
    for (i, observations) in [
        spike(),
        error_rate_missing(),
        error_rate_error(),
        obs(v(0.002), v(0.0), nodata()),
    ]
    .iter()
    .enumerate()
    {
        let out = run.check((2 + i as i64) * H, observations);
        assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Warn, "{i}");
        assert!(out.transitions.is_empty(), "{i}: {out:?}");
        assert_eq!(run.status.stage, 0);
    }
    // No limit was reached on the way: one fail (limit 2), then two misses (limit 3).
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert_eq!(kinds(&run.check(6 * H, &good())), ["advance"]);
}

#[test]
fn complete_at_the_last_stage_keeps_the_last_percent() {
    let mut run = Run::started(plan());
    let mut transitions = Vec::new();
    for hour in 1..=8 {
        let out = run.check(hour * H, &good());
        assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Pass, "{hour}h");
        for tr in &out.transitions {
            transitions.push((hour, tr.kind.as_str(), tr.stage, tr.percent, out.write));
        }
    }
    assert_eq!(
        transitions,
        [
            (2, "advance", 1, pc(5), Some(pc(5))),
            (4, "advance", 2, pc(10), Some(pc(10))),
            (8, "complete", 2, pc(10), None),
        ]
    );
    assert_eq!(run.status.phase, Some(Phase::Succeeded));
    assert_eq!(run.status.stage, 2);
    assert_eq!(run.status.percent, Some(pc(10)));
    assert_eq!(run.next(), None);
    assert!(!checkpoint_due(&run.status, t(9 * H)));
}

#[test]
fn hold_is_a_checkpoint_without_transitions() {
    let mut run = Run::started(plan());
    let out = run.check(H, &good());
    let cp = out.checkpoint.unwrap();
    assert_eq!(cp.position, 0);
    assert_eq!((cp.stage, cp.percent), (0, pc(1)));
    assert!(out.transitions.is_empty());
    assert_eq!(out.write, None);
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    let last = run.status.history.last().unwrap();
    assert_eq!(last.kind, HistoryKind::Checkpoint);
    assert_eq!(last.verdict, Some(CheckpointVerdict::Pass));
}

#[test]
fn zero_bake_time_advances_at_the_first_passing_checkpoint() {
    let mut run = Run::started(plan_with(|s| {
        for stage in &mut s.stages {
            stage.duration = dur("0s");
        }
    }));
    assert_eq!(kinds(&run.check(H, &good())), ["advance"]);
    assert_eq!(kinds(&run.check(2 * H, &good())), ["advance"]);
    assert_eq!(kinds(&run.check(3 * H, &good())), ["complete"]);
}

#[test]
fn no_gates_advances_on_the_bake_time_alone() {
    let mut run = Run::started(plan_with(|s| s.analysis.gates.clear()));
    assert!(run.check(H, &[]).transitions.is_empty());
    let out = run.check(2 * H, &[]);
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Pass);
    assert_eq!(kinds(&out), ["advance"]);
}

#[test]
fn checkpoint_verdicts_pass_warn_fail() {
    let mut run = Run::started(plan());
    assert_eq!(
        checkpoint_verdict(&run.check(H, &good())),
        CheckpointVerdict::Pass
    );
    // A fail below its failureLimit is a warn.
    assert_eq!(
        checkpoint_verdict(&run.check(2 * H, &spike())),
        CheckpointVerdict::Warn
    );
    // So is missing data.
    assert_eq!(
        checkpoint_verdict(&run.check(3 * H, &error_rate_missing())),
        CheckpointVerdict::Warn
    );
    // A pause is a warn too.
    let mut paused = Run::started(plan_with(|s| s.analysis.error_limit = 1));
    let out = paused.check(H, &error_rate_error());
    assert_eq!(kinds(&out), ["pause"]);
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Warn);
    // The checkpoint that rolls back fails.
    let out = run.check(4 * H, &alert());
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Fail);
    let last = run.status.last_checkpoint.as_ref().unwrap();
    assert_eq!(last.verdict, CheckpointVerdict::Fail);
}

#[test]
fn checkpoint_report_is_taken_before_its_decision() {
    let mut run = Run::started(plan());
    let out = run.check(2 * H, &good());
    let cp = out.checkpoint.unwrap();
    assert_eq!((cp.position, cp.stage, cp.percent), (0, 0, pc(1)));
    assert_eq!(kinds(&out), ["advance"]);
    // The history holds the checkpoint, then the advance it caused.
    let n = run.status.history.len();
    let tail: Vec<_> = run.status.history[n - 2..].iter().map(|h| h.kind).collect();
    assert_eq!(tail, [HistoryKind::Checkpoint, HistoryKind::Advance]);
    assert_eq!(run.status.history[n - 2].percent, pc(1));
    assert_eq!(run.status.history[n - 1].percent, pc(5));
}

// ---------------------------------------------------------------------------------------------
// Rule 6: paused
// ---------------------------------------------------------------------------------------------

#[test]
fn paused_checkpoints_go_on_and_nothing_advances() {
    let mut run = Run::started(plan());
    let out = run.act(10 * M, ManualAction::Pause);
    assert_eq!(kinds(&out), ["pause"]);
    assert_eq!(out.write, None);
    assert_eq!(run.status.phase, Some(Phase::Paused));
    for hour in 1..=6 {
        let out = run.check(hour * H, &good());
        assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Pass, "{hour}h");
        assert!(out.transitions.is_empty(), "{hour}h: {out:?}");
        assert_eq!(out.write, None);
        assert_eq!(run.next(), Some(t((hour + 1) * H)));
    }
    assert_eq!(run.status.stage, 0);
    assert_eq!(run.status.percent, Some(pc(1)));
    assert_eq!(run.status.phase, Some(Phase::Paused));
}

#[test]
fn rollback_while_paused() {
    let mut run = Run::started(plan());
    run.act(10 * M, ManualAction::Pause);
    let out = run.check(H, &alert());
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Fail);
    assert_eq!(kinds(&out), ["rollback"]);
    assert_eq!(out.write, Some(pc(0)));
    assert_eq!(run.status.phase, Some(Phase::RolledBack));
}

#[test]
fn rollback_while_paused_by_error_limit() {
    let mut run = Run::started(plan_with(|s| s.analysis.error_limit = 1));
    assert_eq!(kinds(&run.check(H, &error_rate_missing())), ["pause"]);
    run.check(2 * H, &spike());
    let out = run.check(3 * H, &spike());
    assert_eq!(kinds(&out), ["rollback"]);
    assert_eq!(
        out.transitions[0].reason.as_deref(),
        Some("gate error-rate failed 2 checkpoints in a row")
    );
}

#[test]
fn a_checkpoint_that_falls_due_while_paused_is_taken() {
    let mut run = Run::started(plan());
    run.act(30 * M, ManualAction::Pause);
    // Due at 1h; the shell comes back at 1h30m.
    assert!(checkpoint_due(&run.status, t(H + 30 * M)));
    let out = run.check(H + 30 * M, &spike());
    assert!(out.checkpoint.is_some());
    assert_eq!(run.counters(0), (1, 0));
    assert_eq!(run.next(), Some(t(2 * H)));
    assert_eq!(run.status.phase, Some(Phase::Paused));
}

#[test]
fn pause_at_error_limit_is_not_repeated_while_paused() {
    let mut run = Run::started(plan());
    for hour in 1..=2 {
        run.check(hour * H, &error_rate_missing());
    }
    assert_eq!(kinds(&run.check(3 * H, &error_rate_missing())), ["pause"]);
    let pauses_before = run
        .status
        .history
        .iter()
        .filter(|h| h.kind == HistoryKind::Pause)
        .count();
    for hour in 4..=7 {
        let out = run.check(hour * H, &error_rate_error());
        assert!(out.transitions.is_empty(), "{hour}h: {out:?}");
        assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Warn);
    }
    assert_eq!(run.counters(0), (0, 7));
    let pauses_after = run
        .status
        .history
        .iter()
        .filter(|h| h.kind == HistoryKind::Pause)
        .count();
    assert_eq!(pauses_before, pauses_after);
    assert_eq!(run.status.phase, Some(Phase::Paused));
}

#[test]
fn error_limit_while_paused_by_a_person_does_not_pause_again() {
    let mut run = Run::started(plan_with(|s| s.analysis.error_limit = 1));
    run.act(1, ManualAction::Pause);
    let out = run.check(H, &error_rate_missing());
    assert!(out.transitions.is_empty(), "{out:?}");
    assert_eq!(run.status.phase, Some(Phase::Paused));
}

#[test]
fn pause_while_paused_is_no_transition() {
    let mut run = Run::started(plan());
    run.act(1, ManualAction::Pause);
    let out = run.act(2, ManualAction::Pause);
    assert!(out.transitions.is_empty(), "{out:?}");
    assert_eq!(run.status.phase, Some(Phase::Paused));
}

#[test]
fn resume_returns_to_progressing_and_resets_misses_not_failures() {
    let mut run = Run::started(plan());
    run.check(H, &spike());
    run.act(H + 1, ManualAction::Pause);
    run.check(2 * H, &obs(err("down"), nodata(), v(0.0)));
    assert_eq!(run.counters(0), (1, 1));
    assert_eq!(run.counters(1), (0, 1));
    let out = run.act(2 * H + 1, ManualAction::Resume);
    assert_eq!(kinds(&out), ["resume"]);
    assert_eq!(out.write, None);
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert!(run.status.gates.iter().all(|g| g.misses == 0));
    assert_eq!(run.counters(0), (1, 0), "failures survive a resume");
    // So the next failure of error-rate is its second in a row.
    let out = run.check(3 * H, &spike());
    assert_eq!(kinds(&out), ["rollback"]);
}

#[test]
fn resume_after_an_error_limit_pause_does_not_pause_at_the_next_miss() {
    let mut run = Run::started(plan());
    for hour in 1..=3 {
        run.check(hour * H, &error_rate_missing());
    }
    assert_eq!(run.status.phase, Some(Phase::Paused));
    run.act(3 * H + 1, ManualAction::Resume);
    assert_eq!(run.counters(0), (0, 0));
    let out = run.check(4 * H, &error_rate_missing());
    assert!(out.transitions.is_empty(), "{out:?}");
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert_eq!(run.counters(0), (0, 1));
}

#[test]
fn resume_while_progressing_is_no_transition() {
    let mut run = Run::started(plan());
    let out = run.act(1, ManualAction::Resume);
    assert!(out.transitions.is_empty(), "{out:?}");
    assert_eq!(out.write, None);
    assert_eq!(run.status.phase, Some(Phase::Progressing));
}

#[test]
fn resume_itself_does_not_advance_the_next_passing_checkpoint_does() {
    let mut run = Run::started(plan());
    run.act(1, ManualAction::Pause);
    run.check(H, &good());
    run.check(2 * H, &good());
    run.check(3 * H, &good());
    assert_eq!(run.status.stage, 0);
    let out = run.act(3 * H + 10 * M, ManualAction::Resume);
    assert_eq!(kinds(&out), ["resume"]);
    assert_eq!(run.status.stage, 0);
    let out = run.check(4 * H, &good());
    assert_eq!(kinds(&out), ["advance"]);
    assert_eq!(run.status.stage, 1);
}

// ---------------------------------------------------------------------------------------------
// Rule 7: manual actions
// ---------------------------------------------------------------------------------------------

#[test]
fn promote_advances_whatever_the_bake_time() {
    let mut run = Run::started(plan());
    let out = run.act(5 * M, ManualAction::Promote);
    assert_eq!(kinds(&out), ["advance"]);
    assert_eq!(out.write, Some(pc(5)));
    assert_eq!(run.status.stage, 1);
    assert_eq!(run.status.percent, Some(pc(5)));
    assert_eq!(run.stage_start(), Some(t(5 * M)));
    assert_eq!(run.next(), Some(t(H + 5 * M)));
    assert_eq!(run.status.phase, Some(Phase::Progressing));
}

#[test]
fn promote_advances_even_when_gates_are_failing() {
    let mut run = Run::started(plan());
    run.check(H, &spike());
    let out = run.act(H + 1, ManualAction::Promote);
    assert_eq!(kinds(&out), ["advance"]);
    assert_eq!(run.status.stage, 1);
}

#[test]
fn promote_leaves_paused() {
    let mut run = Run::started(plan());
    run.act(1, ManualAction::Pause);
    let out = run.act(2, ManualAction::Promote);
    assert_eq!(
        out.transitions.last().unwrap().kind,
        TransitionKind::Advance
    );
    assert_eq!(out.write, Some(pc(5)));
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert_eq!(run.status.stage, 1);
}

#[test]
fn promote_at_the_last_stage_completes() {
    let mut run = Run::started(plan());
    run.act(1, ManualAction::Promote);
    run.act(2, ManualAction::Promote);
    assert_eq!(run.status.stage, 2);
    let out = run.act(3, ManualAction::Promote);
    assert_eq!(kinds(&out), ["complete"]);
    assert_eq!(out.write, None, "the target keeps the last percent");
    assert_eq!(run.status.phase, Some(Phase::Succeeded));
    assert_eq!(run.status.percent, Some(pc(10)));
    assert_eq!(run.next(), None);
}

#[test]
fn promote_while_paused_at_the_last_stage_completes() {
    let mut run = Run::started(plan());
    run.act(1, ManualAction::Promote);
    run.act(2, ManualAction::Promote);
    run.act(3, ManualAction::Pause);
    let out = run.act(4, ManualAction::Promote);
    assert_eq!(
        out.transitions.last().unwrap().kind,
        TransitionKind::Complete
    );
    assert_eq!(run.status.phase, Some(Phase::Succeeded));
}

#[test]
fn abort_rolls_back_now() {
    let mut run = Run::started(plan());
    run.act(1, ManualAction::Promote);
    let out = run.act(10 * M, ManualAction::Abort);
    assert_eq!(kinds(&out), ["rollback"]);
    assert_eq!(out.write, Some(pc(0)));
    assert_eq!(run.status.phase, Some(Phase::RolledBack));
    assert_eq!(run.status.percent, Some(pc(0)));
    assert_eq!(run.next(), None);
}

#[test]
fn abort_while_paused_rolls_back() {
    let mut run = Run::started(plan_with(|s| s.rollback.percent = pc(1)));
    run.act(1, ManualAction::Promote);
    run.act(2, ManualAction::Pause);
    let out = run.act(3, ManualAction::Abort);
    assert_eq!(kinds(&out), ["rollback"]);
    assert_eq!(out.write, Some(pc(1)));
    assert_eq!(run.status.phase, Some(Phase::RolledBack));
}

#[test]
fn retry_starts_a_rolled_back_rollout_again() {
    let mut run = Run::started(plan());
    run.act(1, ManualAction::Promote);
    run.check(H + 1, &spike());
    run.check(2 * H + 1, &spike());
    assert_eq!(run.status.phase, Some(Phase::RolledBack));
    let out = run.act(3 * H, ManualAction::Retry);
    assert_eq!(kinds(&out), ["start"]);
    assert_eq!(out.write, Some(pc(1)));
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert_eq!(run.status.stage, 0);
    assert_eq!(run.status.percent, Some(pc(1)));
    assert_eq!(run.stage_start(), Some(t(3 * H)));
    assert_eq!(run.next(), Some(t(4 * H)));
    assert!(
        run.status
            .gates
            .iter()
            .all(|g| g.failures == 0 && g.misses == 0)
    );
    // And the counters really start over: one spike is not a rollback.
    let out = run.check(4 * H, &spike());
    assert!(out.transitions.is_empty(), "{out:?}");
}

#[test]
fn retry_does_nothing_unless_rolled_back() {
    let mut run = Run::started(plan());
    assert_eq!(run.act(1, ManualAction::Retry), Outcome::default());
    run.act(2, ManualAction::Pause);
    assert_eq!(run.act(3, ManualAction::Retry), Outcome::default());
    assert_eq!(run.status.phase, Some(Phase::Paused));
}

// ---------------------------------------------------------------------------------------------
// Rule 8: drift
// ---------------------------------------------------------------------------------------------

#[test]
fn drift_revert_writes_the_expected_percent_back() {
    let mut run = Run::started(plan());
    let out = run.live(90 * M, 3);
    assert_eq!(out.write, Some(pc(1)));
    assert_eq!(
        only(&out),
        TransitionKind::Drift {
            expected: pc(1),
            actual: pc(3),
            action: DriftAction::Reverted
        }
    );
    assert_eq!(out.transitions[0].percent, pc(1));
    assert!(out.checkpoint.is_none());
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert_eq!(run.status.percent, Some(pc(1)));
    let last = run.status.history.last().unwrap();
    assert_eq!(last.kind, HistoryKind::Drift);
    let message = last.message.as_deref().unwrap();
    assert!(message.contains('1') && message.contains('3'), "{message}");
    // The cadence is untouched.
    assert_eq!(run.next(), Some(t(H)));
}

#[test]
fn no_drift_when_the_live_percent_matches() {
    let mut run = Run::started(plan());
    let before = run.status.clone();
    let out = run.live(90 * M, 1);
    assert_eq!(out, Outcome::default());
    assert_eq!(run.status, before);
}

#[test]
fn the_live_percent_at_start_is_not_drift() {
    let mut run = Run::new(plan());
    let out = run.decide(rollgate::engine::Inputs::at(t(0)).with_live_percent(pc(0)));
    assert_eq!(kinds(&out), ["start"]);
    assert_eq!(out.write, Some(pc(1)));
}

#[test]
fn drift_is_checked_against_the_percent_last_written() {
    let mut run = Run::started(plan());
    run.act(1, ManualAction::Promote);
    // 1% was the old stage's percent: now it is drift.
    let out = run.live(2, 1);
    assert_eq!(
        only(&out),
        TransitionKind::Drift {
            expected: pc(5),
            actual: pc(1),
            action: DriftAction::Reverted
        }
    );
    assert_eq!(out.write, Some(pc(5)));
}

#[test]
fn drift_revert_while_paused_still_reverts() {
    let mut run = Run::started(plan());
    run.act(1, ManualAction::Pause);
    let out = run.live(2, 40);
    assert_eq!(out.write, Some(pc(1)));
    assert_eq!(run.status.phase, Some(Phase::Paused));
}

#[test]
fn drift_pause_leaves_the_target_and_pauses() {
    let mut run = Run::started(plan_with(|s| s.on_drift = DriftPolicy::Pause));
    let out = run.live(90 * M, 3);
    assert_eq!(out.write, None, "the target is left alone");
    assert_eq!(kinds(&out), ["drift", "pause"]);
    assert_eq!(
        out.transitions[0].kind,
        TransitionKind::Drift {
            expected: pc(1),
            actual: pc(3),
            action: DriftAction::Paused
        }
    );
    assert_eq!(run.status.phase, Some(Phase::Paused));
    assert_eq!(
        run.status.percent,
        Some(pc(1)),
        "the expected percent is kept"
    );
}

#[test]
fn drift_pause_same_live_value_again_is_not_a_new_drift() {
    let mut run = Run::started(plan_with(|s| s.on_drift = DriftPolicy::Pause));
    run.live(90 * M, 3);
    let before = run.status.clone();
    let out = run.live(91 * M, 3);
    assert!(out.transitions.is_empty(), "{out:?}");
    assert_eq!(out.write, None);
    assert_eq!(run.status, before);
    // A different live value is a new drift (already paused, so no second pause).
    let out = run.live(92 * M, 7);
    assert_eq!(
        only(&out),
        TransitionKind::Drift {
            expected: pc(1),
            actual: pc(7),
            action: DriftAction::Paused
        }
    );
    assert_eq!(out.write, None);
}

#[test]
fn drift_pause_then_resume_writes_the_expected_percent() {
    let mut run = Run::started(plan_with(|s| s.on_drift = DriftPolicy::Pause));
    run.live(90 * M, 3);
    let out = run.act(100 * M, ManualAction::Resume);
    assert_eq!(kinds(&out), ["resume"]);
    assert_eq!(out.write, Some(pc(1)));
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert_eq!(run.status.percent, Some(pc(1)));
}

#[test]
fn drift_pause_while_already_paused_records_drift_only() {
    let mut run = Run::started(plan_with(|s| s.on_drift = DriftPolicy::Pause));
    run.act(1, ManualAction::Pause);
    let out = run.live(2, 3);
    assert_eq!(kinds(&out), ["drift"]);
    assert_eq!(out.write, None);
    let out = run.act(3, ManualAction::Resume);
    assert_eq!(out.write, Some(pc(1)));
}

#[test]
fn drift_pause_keeps_checkpoints_and_rollback_armed() {
    let mut run = Run::started(plan_with(|s| s.on_drift = DriftPolicy::Pause));
    run.live(30 * M, 3);
    let out = run.check(H, &good());
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Pass);
    let out = run.check(2 * H, &alert());
    assert_eq!(kinds(&out), ["rollback"]);
    assert_eq!(out.write, Some(pc(0)));
}

#[test]
fn drift_then_checkpoint_at_the_same_instant_in_order() {
    let mut run = Run::started(plan_with(|s| s.on_drift = DriftPolicy::Pause));
    let observations = good();
    let out = run.decide(
        rollgate::engine::Inputs::at(t(2 * H))
            .with_live_percent(pc(3))
            .with_observations(&observations),
    );
    assert_eq!(kinds(&out), ["drift", "pause"]);
    let cp = out.checkpoint.unwrap();
    assert_eq!(cp.position, 2, "the checkpoint comes after drift and pause");
    assert_eq!(cp.verdict, CheckpointVerdict::Pass);
    assert_eq!(run.status.stage, 0, "paused by drift: no advance");
}

// Rule 8: the third drift within 10 minutes of the first one reverted is a drift loop.

/// The condition reason of the Ready condition after `update_conditions`.
fn ready_reason(run: &mut Run) -> String {
    run.status.update_conditions(t(0));
    run.status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.reason.clone())
        .unwrap()
}

fn drift_actions(out: &Outcome) -> Vec<DriftAction> {
    out.transitions
        .iter()
        .filter_map(|t| match t.kind {
            TransitionKind::Drift { action, .. } => Some(action),
            _ => None,
        })
        .collect()
}

#[test]
fn a_third_drift_within_ten_minutes_pauses_with_drift_loop() {
    let mut run = Run::started(plan());
    let out = run.live(90 * M, 3);
    assert_eq!(drift_actions(&out), [DriftAction::Reverted]);
    assert_eq!(out.write, Some(pc(1)));
    assert_eq!(run.status.drift_count, 1);
    assert_eq!(
        run.status.drift_window_start.as_ref().map(|x| x.0),
        Some(t(90 * M))
    );
    let out = run.live(94 * M, 3);
    assert_eq!(drift_actions(&out), [DriftAction::Reverted]);
    assert_eq!(out.write, Some(pc(1)));
    assert_eq!(run.status.drift_count, 2);

    let out = run.live(99 * M, 3);
    assert_eq!(kinds(&out), ["drift", "pause"]);
    assert_eq!(drift_actions(&out), [DriftAction::Paused]);
    assert_eq!(out.write, None, "the third drift is not reverted");
    assert_eq!(run.status.phase, Some(Phase::Paused));
    assert_eq!(run.status.drift_count, 3);
    assert_eq!(run.status.drifted_percent, Some(pc(3)));
    assert_eq!(run.status.reason.as_deref(), Some("DriftLoop"));
    let message = run.status.message.clone().unwrap();
    assert!(
        message.starts_with("someone else writes this flag: ")
            && message.contains("1%")
            && message.contains("3%")
            && message.contains("3 times"),
        "{message}"
    );
    assert_eq!(ready_reason(&mut run), "DriftLoop");
    assert_eq!(
        out.transitions[1].reason.as_deref(),
        Some(message.as_str()),
        "the pause carries the drift loop's words"
    );

    // Left alone: the same value again, or another one, is neither reverted nor re-paused.
    assert_eq!(run.live(100 * M, 3), Outcome::default());
    let out = run.live(101 * M, 7);
    assert_eq!(drift_actions(&out), [DriftAction::Paused]);
    assert_eq!(out.write, None);
    assert_eq!(run.status.reason.as_deref(), Some("DriftLoop"));
    // Much later still: a paused drift loop never reverts on its own.
    let out = run.live(200 * M, 4);
    assert_eq!(out.write, None);
    assert_eq!(run.status.phase, Some(Phase::Paused));
}

#[test]
fn resume_after_a_drift_loop_clears_the_count_and_writes_back() {
    let mut run = Run::started(plan());
    for minute in [90, 92, 94] {
        run.live(minute * M, 3);
    }
    assert_eq!(run.status.reason.as_deref(), Some("DriftLoop"));
    let out = run.act(95 * M, ManualAction::Resume);
    assert_eq!(kinds(&out), ["resume"]);
    assert_eq!(out.write, Some(pc(1)));
    assert_eq!(run.status.drift_count, 0);
    assert_eq!(run.status.drift_window_start, None);
    assert_eq!(run.status.reason, None);
    assert_eq!(ready_reason(&mut run), "Progressing");
    // Counting starts over: the next drift is reverted again.
    let out = run.live(96 * M, 3);
    assert_eq!(drift_actions(&out), [DriftAction::Reverted]);
    assert_eq!(run.status.drift_count, 1);
}

#[test]
fn drifts_further_apart_than_ten_minutes_are_reverted_each_time() {
    let mut run = Run::started(plan());
    // The 10 minutes count from the first drift of the window: 90, 95, 101 -> the third is
    // 11 minutes after the first and starts a new window.
    for (minute, count) in [(90, 1), (95, 2), (101, 1), (105, 2), (112, 1)] {
        let out = run.live(minute * M, 3);
        assert_eq!(drift_actions(&out), [DriftAction::Reverted], "at {minute}m");
        assert_eq!(out.write, Some(pc(1)));
        assert_eq!(run.status.drift_count, count, "at {minute}m");
    }
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    // Exactly 10 minutes after the first of a window (112) still counts.
    run.live(120 * M, 3);
    let out = run.live(122 * M, 3);
    assert_eq!(drift_actions(&out), [DriftAction::Paused], "{out:?}");
}

#[test]
fn a_drift_loop_while_paused_by_a_person_stops_reverting() {
    let mut run = Run::started(plan());
    run.act(M, ManualAction::Pause);
    run.live(90 * M, 3);
    run.live(91 * M, 3);
    let out = run.live(92 * M, 3);
    assert_eq!(kinds(&out), ["drift"]);
    assert_eq!(out.write, None);
    assert_eq!(run.status.reason.as_deref(), Some("DriftLoop"));
    assert!(
        run.status
            .message
            .as_deref()
            .unwrap()
            .starts_with("someone else writes this flag:")
    );
}

#[test]
fn a_rollback_after_a_drift_loop_clears_the_reason() {
    let mut run = Run::started(plan());
    for minute in [30, 31, 32] {
        run.live(minute * M, 3);
    }
    let out = run.check(H, &alert());
    assert_eq!(kinds(&out), ["rollback"]);
    assert_eq!(out.write, Some(pc(0)));
    assert_eq!(run.status.reason, None);
    assert_eq!(ready_reason(&mut run), "RolledBack");
}

#[test]
fn retry_forgets_the_drift_loop() {
    let mut run = Run::started(plan());
    for minute in [30, 31, 32] {
        run.live(minute * M, 3);
    }
    run.act(33 * M, ManualAction::Abort);
    run.act(34 * M, ManualAction::Retry);
    assert_eq!(run.status.drift_count, 0);
    assert_eq!(run.status.drift_window_start, None);
    assert_eq!(run.status.drifted_percent, None);
    assert_eq!(run.status.phase, Some(Phase::Progressing));
}

// ---------------------------------------------------------------------------------------------
// Order of events at one instant
// ---------------------------------------------------------------------------------------------

#[test]
fn action_then_checkpoint_then_its_decision() {
    let mut run = Run::started(plan());
    run.act(1, ManualAction::Pause);
    run.check(H, &good());
    // Resume and the 2h checkpoint at the same instant: resume, checkpoint, advance.
    let observations = good();
    let out = run.decide(
        rollgate::engine::Inputs::at(t(2 * H))
            .with_action(ManualAction::Resume)
            .with_observations(&observations),
    );
    assert_eq!(kinds(&out), ["resume", "advance"]);
    let cp = out.checkpoint.unwrap();
    assert_eq!(cp.position, 1);
    assert_eq!((cp.stage, cp.percent), (0, pc(1)));
    assert_eq!(out.write, Some(pc(5)));
}

#[test]
fn pause_then_checkpoint_that_rolls_back() {
    let mut run = Run::started(plan());
    let observations = alert();
    let out = run.decide(
        rollgate::engine::Inputs::at(t(H))
            .with_action(ManualAction::Pause)
            .with_observations(&observations),
    );
    assert_eq!(kinds(&out), ["pause", "rollback"]);
    assert_eq!(out.checkpoint.unwrap().position, 1);
    assert_eq!(out.checkpoint.unwrap().verdict, CheckpointVerdict::Fail);
    assert_eq!(out.write, Some(pc(0)));
}

#[test]
fn pause_then_checkpoint_does_not_advance() {
    let mut run = Run::started(plan());
    let observations = good();
    let out = run.decide(
        rollgate::engine::Inputs::at(t(2 * H))
            .with_action(ManualAction::Pause)
            .with_observations(&observations),
    );
    assert_eq!(kinds(&out), ["pause"]);
    assert_eq!(out.checkpoint.unwrap().position, 1);
    assert_eq!(run.status.stage, 0);
}

#[test]
fn history_records_events_in_order() {
    let mut run = Run::started(plan_with(|s| s.on_drift = DriftPolicy::Pause));
    run.check(H, &spike());
    run.live(H + 1, 4);
    run.act(H + 2, ManualAction::Resume);
    run.check(2 * H, &good());
    run.act(2 * H + 1, ManualAction::Abort);
    let kinds: Vec<_> = run.status.history.iter().map(|h| h.kind).collect();
    assert_eq!(
        kinds,
        [
            HistoryKind::Start,
            HistoryKind::Checkpoint,
            HistoryKind::Drift,
            HistoryKind::Pause,
            HistoryKind::Resume,
            HistoryKind::Checkpoint,
            HistoryKind::Advance,
            HistoryKind::Rollback,
        ]
    );
    assert_eq!(run.status.history[1].verdict, Some(CheckpointVerdict::Warn));
    let times: Vec<_> = run.status.history.iter().map(|h| h.at.0).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[test]
fn history_keeps_the_start_and_only_the_latest_checkpoints() {
    let mut run = Run::started(plan_with(|s| s.stages[0].duration = dur("1000h")));
    for hour in 1..=50 {
        run.check(hour * H, &good());
        assert!(run.status.history.len() <= CHECKPOINT_HISTORY_LIMIT + 1);
    }
    let history = &run.status.history;
    assert_eq!(history.len(), CHECKPOINT_HISTORY_LIMIT + 1);
    assert_eq!(history[0].kind, HistoryKind::Start, "the start is kept");
    assert_eq!(history.last().unwrap().at.0, t(50 * H));
    assert_eq!(
        history[1].at.0,
        t((50 - CHECKPOINT_HISTORY_LIMIT as i64 + 1) * H)
    );
    assert!(
        history[1..]
            .iter()
            .all(|h| h.kind == HistoryKind::Checkpoint)
    );
}

#[test]
fn history_keeps_every_transition_of_a_long_run_up_to_the_limit() {
    let mut run = Run::started(plan_with(|s| s.stages[0].duration = dur("1000h")));
    for i in 0..(HISTORY_LIMIT as i64) {
        run.act(i * 10 + 1, ManualAction::Pause);
        run.check((i + 1) * H, &good());
        run.act((i + 1) * H + 1, ManualAction::Resume);
    }
    let history = &run.status.history;
    assert_eq!(history.len(), HISTORY_LIMIT);
    let checkpoints = history
        .iter()
        .filter(|h| h.kind == HistoryKind::Checkpoint)
        .count();
    assert!(checkpoints <= CHECKPOINT_HISTORY_LIMIT, "{checkpoints}");
    assert_eq!(history.last().map(|h| h.kind), Some(HistoryKind::Resume));
}

// ---------------------------------------------------------------------------------------------
// Pre-checks and the Pending phase (controller only)
// ---------------------------------------------------------------------------------------------

#[test]
fn failing_prechecks_keep_the_rollout_pending_without_a_write() {
    let mut run = Run::new(plan());
    let failures = ["target feature-flags does not exist".to_owned()];
    let out = run.decide(Inputs::at(t(0)).with_prechecks(PreChecks::Failed(&failures)));
    assert_eq!(out.write, None);
    assert_eq!(kinds(&out), ["pending"]);
    assert_eq!(run.status.phase, Some(Phase::Pending));
    assert_eq!(run.status.percent, None);
    assert_eq!(run.status.next_checkpoint_at, None);
    let message = run.status.message.clone().unwrap();
    assert!(
        message.contains("feature-flags does not exist"),
        "{message}"
    );
    assert!(!checkpoint_due(&run.status, t(10 * H)));
    assert_eq!(run.status.history.len(), 1);
    assert_eq!(run.status.history[0].kind, HistoryKind::Pending);
}

#[test]
fn the_same_failing_prechecks_again_change_nothing() {
    let mut run = Run::new(plan());
    let failures = ["gate error-rate: connection refused".to_owned()];
    run.decide(Inputs::at(t(0)).with_prechecks(PreChecks::Failed(&failures)));
    let before = run.status.clone();
    let out = run.decide(Inputs::at(t(60)).with_prechecks(PreChecks::Failed(&failures)));
    assert!(!out.changed_anything(), "{out:?}");
    assert_eq!(run.status, before);

    let other = ["gate error-rate: timed out".to_owned()];
    let out = run.decide(Inputs::at(t(120)).with_prechecks(PreChecks::Failed(&other)));
    assert_eq!(kinds(&out), ["pending"], "a new reason is reported");
    assert_eq!(run.status.history.len(), 1, "but not recorded again");
}

#[test]
fn passing_prechecks_start_a_pending_rollout() {
    let mut run = Run::new(plan());
    let failures = ["live percent is 3, not the rollback percent 0".to_owned()];
    run.decide(Inputs::at(t(0)).with_prechecks(PreChecks::Failed(&failures)));
    let out = run.decide(Inputs::at(t(90)).with_prechecks(PreChecks::Passed));
    assert_eq!(out.write, Some(pc(1)));
    assert_eq!(kinds(&out), ["start"]);
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert_eq!(run.stage_start(), Some(t(90)));
    assert_eq!(run.next(), Some(t(90 + H)));
}

#[test]
fn a_blocked_start_stays_pending_with_its_own_reason() {
    let mut run = Run::new(plan());
    let failures = ["the target holds 3%, not the rollback percent 0%".to_owned()];
    run.decide(Inputs::at(t(0)).with_prechecks(PreChecks::Failed(&failures)));
    assert_eq!(ready_reason(&mut run), "PreCheckFailed");
    let blocked = PreChecks::Blocked {
        reason: "TargetOwned",
        message: "flag f in ConfigMap ns/flags is owned by Rollout ns/other",
    };
    let out = run.decide(Inputs::at(t(60)).with_prechecks(blocked));
    assert_eq!(kinds(&out), ["pending"]);
    assert_eq!(out.write, None);
    assert_eq!(run.status.phase, Some(Phase::Pending));
    assert_eq!(run.status.reason.as_deref(), Some("TargetOwned"));
    assert!(run.status.message.as_deref().unwrap().contains("ns/other"));
    assert_eq!(ready_reason(&mut run), "TargetOwned");
    // The same block again writes nothing new.
    let before = run.status.clone();
    let out = run.decide(Inputs::at(t(120)).with_prechecks(blocked));
    assert!(!out.changed_anything(), "{out:?}");
    assert_eq!(run.status, before);
    // Back to a plain pre-check failure: the reason goes with the block.
    run.decide(Inputs::at(t(180)).with_prechecks(PreChecks::Failed(&failures)));
    assert_eq!(run.status.reason, None);
    assert_eq!(ready_reason(&mut run), "PreCheckFailed");
    // Free: it starts, without the reason.
    let out = run.decide(Inputs::at(t(240)).with_prechecks(PreChecks::Passed));
    assert_eq!(kinds(&out), ["start"]);
    assert_eq!(run.status.reason, None);
}

#[test]
fn an_empty_failure_list_passes() {
    let mut run = Run::new(plan());
    let out = run.decide(Inputs::at(t(0)).with_prechecks(PreChecks::Failed(&[])));
    assert_eq!(kinds(&out), ["start"]);
}

#[test]
fn actions_and_drift_wait_while_pending() {
    let mut run = Run::new(plan());
    let failures = ["not yet".to_owned()];
    let pending = |at| Inputs::at(t(at)).with_prechecks(PreChecks::Failed(&failures));
    run.decide(pending(0));
    for action in [
        ManualAction::Promote,
        ManualAction::Abort,
        ManualAction::Pause,
        ManualAction::Resume,
        ManualAction::Retry,
    ] {
        let out = run.decide(pending(1).with_action(action).with_live_percent(pc(7)));
        assert!(!out.changed_anything(), "{action:?}: {out:?}");
        assert_eq!(run.status.phase, Some(Phase::Pending));
    }
}

#[test]
fn an_invalid_spec_fails_a_pending_rollout() {
    let mut run = Run::new(plan());
    let failures = ["not yet".to_owned()];
    run.decide(Inputs::at(t(0)).with_prechecks(PreChecks::Failed(&failures)));
    let out = run.respec(10, |s| s.stages[1].percent = pc(0));
    assert_eq!(kinds(&out), ["invalid"]);
    assert_eq!(run.status.phase, Some(Phase::Failed));
}

#[test]
fn a_new_generation_of_a_rolled_back_rollout_waits_for_prechecks() {
    let mut run = Run::started(plan());
    run.act(10, ManualAction::Abort);
    let failures = ["live percent is 5".to_owned()];
    run.spec.stages[0].percent = pc(2);
    run.generation += 1;
    let out = run.decide(Inputs::at(t(20)).with_prechecks(PreChecks::Failed(&failures)));
    assert_eq!(kinds(&out), ["pending"]);
    assert_eq!(out.write, None);
    assert_eq!(run.status.phase, Some(Phase::Pending));
    let out = run.decide(Inputs::at(t(30)));
    assert_eq!(kinds(&out), ["start"]);
    assert_eq!(out.write, Some(pc(2)));
}

// ---------------------------------------------------------------------------------------------
// The status message
// ---------------------------------------------------------------------------------------------

#[test]
fn a_hold_says_where_the_rollout_stands_in_one_line() {
    let mut run = Run::started(plan());
    run.check(H, &good());
    run.check(2 * H, &good());
    assert_eq!(run.status.stage, 1);
    run.check(3 * H, &good());
    assert_eq!(
        run.status.message.as_deref(),
        Some("stage 2 of 3 at 5%, 1h of 2h baked, all gates passing")
    );
    run.check(4 * H, &error_rate_missing());
    let message = run.status.message.clone().unwrap();
    assert!(
        message.starts_with("stage 2 of 3 at 5%, 2h of 2h baked, error-rate inconclusive"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------
// Terminal phases
// ---------------------------------------------------------------------------------------------

fn assert_inert(run: &mut Run, from: i64) {
    let before = run.status.clone();
    for (i, action) in [
        ManualAction::Pause,
        ManualAction::Resume,
        ManualAction::Promote,
        ManualAction::Abort,
    ]
    .into_iter()
    .enumerate()
    {
        let out = run.act(from + i as i64, action);
        assert_eq!(out, Outcome::default(), "{action:?}");
    }
    let out = run.live(from + 10, 42);
    assert_eq!(out, Outcome::default(), "drift");
    let out = run.check(from + 100 * H, &alert());
    assert_eq!(out, Outcome::default(), "checkpoint");
    let out = run.check(from + 200 * H, &good());
    assert_eq!(out, Outcome::default(), "checkpoint");
    assert_eq!(run.status, before);
}

#[test]
fn rolled_back_ignores_actions_drift_and_checkpoints() {
    let mut run = Run::started(plan());
    run.check(H, &alert());
    assert_eq!(run.status.phase, Some(Phase::RolledBack));
    assert_inert(&mut run, H + 1);
}

#[test]
fn succeeded_ignores_actions_drift_and_checkpoints() {
    let mut run = Run::started(plan());
    for hour in 1..=8 {
        run.check(hour * H, &good());
    }
    assert_eq!(run.status.phase, Some(Phase::Succeeded));
    assert_inert(&mut run, 8 * H + 1);
    // Retry does not restart a success either.
    assert_eq!(run.act(300 * H, ManualAction::Retry), Outcome::default());
}

#[test]
fn failed_ignores_actions_drift_and_checkpoints() {
    let mut run = Run::started(plan());
    run.respec(1, |s| s.stages[1].percent = pc(1));
    assert_eq!(run.status.phase, Some(Phase::Failed));
    assert_inert(&mut run, 2);
}

// ---------------------------------------------------------------------------------------------
// Rule 9: spec changes
// ---------------------------------------------------------------------------------------------

#[test]
fn new_generation_of_a_rolled_back_rollout_starts_again_from_stage_zero() {
    let mut run = Run::started(plan());
    run.act(1, ManualAction::Promote);
    run.check(H + 1, &alert());
    assert_eq!(run.status.phase, Some(Phase::RolledBack));
    let out = run.respec(2 * H, |s| s.analysis.gates[1].max = Some(1.0));
    assert_eq!(kinds(&out), ["start"]);
    assert_eq!(out.write, Some(pc(1)));
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert_eq!(run.status.stage, 0);
    assert_eq!(run.status.percent, Some(pc(1)));
    assert_eq!(run.stage_start(), Some(t(2 * H)));
    assert_eq!(run.next(), Some(t(3 * H)));
    assert_eq!(run.status.observed_generation, Some(2));
    assert!(
        run.status
            .gates
            .iter()
            .all(|g| g.failures == 0 && g.misses == 0)
    );
}

/// The example plan (docs/design.md §1) run to Succeeded at 10% (three promotes at t = 1..3 s).
fn succeeded() -> Run {
    let mut run = Run::started(plan());
    for i in 0..3 {
        run.act(1 + i, ManualAction::Promote);
    }
    assert_eq!(run.status.phase, Some(Phase::Succeeded));
    assert_eq!(run.status.percent, Some(pc(10)));
    run
}

/// Appends stages of these percents (bake time 2h each) to the plan.
fn append(spec: &mut RolloutSpec, percents: &[u8]) {
    let template = spec.stages[0].clone();
    spec.stages
        .extend(percents.iter().map(|&percent| rollgate::api::Stage {
            percent: pc(percent),
            ..template.clone()
        }));
}

#[test]
fn appending_stages_to_a_succeeded_plan_continues_from_its_percent() {
    let mut run = succeeded();
    // 1 → 5 → 10 % done; the team appends 25 → 50 → 100 %. Pre-checks first (they fail once).
    append(&mut run.spec, &[25, 50, 100]);
    run.generation += 1;
    let failing = ["gate error-rate: connection refused".to_owned()];
    let out = run.decide(Inputs::at(t(H)).with_prechecks(PreChecks::Failed(&failing)));
    assert_eq!(kinds(&out), ["pending"]);
    assert_eq!(out.write, None, "nothing is written while Pending");
    assert_eq!(run.status.phase, Some(Phase::Pending));
    assert!(run.status.continuing);
    assert_eq!(run.status.percent, Some(pc(10)), "the target keeps 10%");
    assert_eq!(run.status.stage, 2);
    assert_eq!(run.status.stage_number, Some(3));
    assert_eq!(
        rollgate::engine::pending_start(&run.spec, &run.status, Some(run.generation), None),
        Some(rollgate::engine::Start::Continue { percent: pc(10) }),
        "the pre-checks expect the current percent, not the rollback percent"
    );
    // The pre-checks pass: it continues at stage 3 of 6 (10%), its bake time starting again.
    let out = run.decide(Inputs::at(t(2 * H)));
    assert_eq!(kinds(&out), ["replan"]);
    assert_eq!(
        out.write, None,
        "nothing is raised without a passing checkpoint"
    );
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert!(!run.status.continuing);
    assert_eq!(run.status.stage, 2);
    assert_eq!(run.status.percent, Some(pc(10)));
    assert_eq!(run.stage_start(), Some(t(2 * H)));
    assert_eq!(run.next(), Some(t(3 * H)));
    assert_eq!(
        run.status.message.as_deref(),
        Some("spec generation 2 grew the plan: continuing at stage 3 of 6 (10%)")
    );
    // Stage 3's bake time is 4h: passing checkpoints before it ends hold at 10%.
    for hour in 3..6 {
        let out = run.check(hour * H, &good());
        assert_eq!(out.write, None, "at +{hour}h: {out:?}");
    }
    // A failing checkpoint after the bake time does not raise it either.
    let out = run.check(6 * H, &error_rate_missing());
    assert_eq!(out.write, None, "{out:?}");
    assert_eq!(run.status.percent, Some(pc(10)));
    // The next passing checkpoint advances to 25%.
    let out = run.check(7 * H, &good());
    assert_eq!(kinds(&out), ["advance"]);
    assert_eq!(out.write, Some(pc(25)));
    assert_eq!(run.status.stage, 3);
    // And on to Succeeded at 100%.
    for hour in 8..40 {
        run.check(hour * H, &good());
    }
    assert_eq!(run.status.phase, Some(Phase::Succeeded));
    assert_eq!(run.status.percent, Some(pc(100)));
}

#[test]
fn a_grown_plan_whose_pre_checks_pass_continues_at_once() {
    let mut run = succeeded();
    let out = run.respec(H, |s| append(s, &[25]));
    assert_eq!(kinds(&out), ["replan"]);
    assert_eq!(out.write, None);
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert_eq!(run.status.stage, 2);
    assert_eq!(run.status.percent, Some(pc(10)));
    assert!(
        run.status
            .gates
            .iter()
            .all(|g| g.failures == 0 && g.misses == 0)
    );
}

#[test]
fn a_grown_plan_continues_from_the_last_stage_at_or_below_its_percent() {
    let mut run = succeeded();
    // 10% is no stage of the new plan: it continues from 5% (stage 2 of 4), keeping 10%, and
    // its next passing checkpoint after 5%'s bake time moves to 20%.
    run.respec(H, |s| {
        s.stages[2].percent = pc(20);
        append(s, &[50]);
    });
    assert_eq!(run.status.stage, 1);
    assert_eq!(run.status.percent, Some(pc(10)));
    let out = run.check(2 * H, &good());
    assert_eq!(out.write, None);
    let out = run.check(3 * H, &good());
    assert_eq!(out.write, Some(pc(20)));
    assert_eq!(run.status.stage, 2);

    // Every stage above it: it holds 10% until a passing checkpoint enters stage 0 (25%).
    let mut run = succeeded();
    run.respec(H, |s| {
        let template = s.stages[0].clone();
        s.stages = vec![rollgate::api::Stage {
            percent: pc(25),
            ..template
        }];
    });
    assert_eq!(run.status.stage, 0);
    assert_eq!(run.status.percent, Some(pc(10)));
    let out = run.check(2 * H, &alert());
    assert_ne!(out.write, Some(pc(25)), "{out:?}");
}

#[test]
fn a_new_generation_of_a_succeeded_plan_that_does_not_grow_writes_nothing() {
    let mut run = succeeded();
    let before = run.status.clone();
    // Only notifications (or gates, or a lower last stage) change.
    for (i, edit) in [
        (|s: &mut RolloutSpec| {
            s.notifications = serde_saphyr::from_str(
                "- slack: {urlSecretRef: {name: s, key: url}}\n  when: [rollback]\n",
            )
            .unwrap();
        }) as fn(&mut RolloutSpec),
        |s| s.analysis.gates[0].max = Some(0.05),
        |s| s.stages[2].percent = pc(8),
        |s| s.stages[0].percent = pc(2),
    ]
    .into_iter()
    .enumerate()
    {
        let out = run.respec(H + i as i64, edit);
        assert_eq!(out.write, None, "edit {i}");
        assert!(out.transitions.is_empty(), "edit {i}: {out:?}");
        assert_eq!(run.status.phase, Some(Phase::Succeeded), "edit {i}");
        assert_eq!(run.status.percent, Some(pc(10)), "edit {i}");
        assert_eq!(
            rollgate::engine::pending_start(&run.spec, &run.status, Some(run.generation), None),
            None,
            "edit {i}: no pre-checks to gather"
        );
    }
    assert_eq!(
        run.status.observed_generation,
        Some(before.observed_generation.unwrap() + 4)
    );
    assert_eq!(run.status.history, before.history);
}

#[test]
fn a_grown_plan_shrunk_again_while_pending_is_succeeded_again() {
    let mut run = succeeded();
    append(&mut run.spec, &[25]);
    run.generation += 1;
    let failing = ["not yet".to_owned()];
    run.decide(Inputs::at(t(H)).with_prechecks(PreChecks::Failed(&failing)));
    assert_eq!(run.status.phase, Some(Phase::Pending));
    run.spec.stages.pop();
    run.generation += 1;
    assert_eq!(
        rollgate::engine::pending_start(&run.spec, &run.status, Some(run.generation), None),
        None
    );
    let out = run.decide(Inputs::at(t(2 * H)));
    assert_eq!(out.write, None);
    assert_eq!(run.status.phase, Some(Phase::Succeeded));
    assert!(!run.status.continuing);
    assert_eq!(run.status.percent, Some(pc(10)));
    assert_eq!(run.status.stage, 2, "the last stage");
}

#[test]
fn a_new_generation_of_a_rolled_back_rollout_restarts_from_zero_through_pending() {
    let mut run = Run::started(plan());
    run.act(1, ManualAction::Promote);
    run.act(2, ManualAction::Abort);
    assert_eq!(run.status.phase, Some(Phase::RolledBack));
    run.spec.analysis.gates[0].max = Some(0.02);
    run.generation += 1;
    assert_eq!(
        rollgate::engine::pending_start(&run.spec, &run.status, Some(run.generation), None),
        Some(rollgate::engine::Start::Fresh)
    );
    let failing = ["the target holds 3%".to_owned()];
    let out = run.decide(Inputs::at(t(H)).with_prechecks(PreChecks::Failed(&failing)));
    assert_eq!(kinds(&out), ["pending"]);
    assert_eq!(out.write, None);
    assert_eq!(run.status.phase, Some(Phase::Pending));
    let out = run.decide(Inputs::at(t(2 * H)));
    assert_eq!(kinds(&out), ["start"]);
    assert_eq!(out.write, Some(pc(1)));
    assert_eq!(run.status.stage, 0);
    assert_eq!(run.status.stage_number, Some(1));
}

#[test]
fn retry_of_a_rolled_back_rollout_goes_through_the_pre_checks() {
    let mut run = Run::started(plan());
    run.act(1, ManualAction::Abort);
    assert_eq!(
        rollgate::engine::pending_start(
            &run.spec,
            &run.status,
            Some(run.generation),
            Some(ManualAction::Retry)
        ),
        Some(rollgate::engine::Start::Fresh)
    );
    assert_eq!(
        rollgate::engine::pending_start(&run.spec, &run.status, Some(run.generation), None),
        None
    );
    let failing = ["the target holds 3%".to_owned()];
    let out = run.decide(
        Inputs::at(t(H))
            .with_action(ManualAction::Retry)
            .with_prechecks(PreChecks::Failed(&failing)),
    );
    assert_eq!(kinds(&out), ["pending"]);
    assert_eq!(out.write, None);
    assert_eq!(run.status.phase, Some(Phase::Pending));
    let out = run.decide(Inputs::at(t(2 * H)));
    assert_eq!(kinds(&out), ["start"]);
    assert_eq!(out.write, Some(pc(1)));
}

#[test]
fn the_same_generation_of_a_rolled_back_rollout_stays_rolled_back() {
    let mut run = Run::started(plan());
    run.act(1, ManualAction::Abort);
    let out = run.decide(rollgate::engine::Inputs::at(t(H)));
    assert_eq!(out, Outcome::default());
    assert_eq!(run.status.phase, Some(Phase::RolledBack));
}

#[test]
fn a_mid_rollout_change_that_touches_no_stage_keeps_going() {
    let mut run = Run::started(plan());
    run.act(1, ManualAction::Promote);
    let stage_start = run.stage_start();
    let out = run.respec(10 * M, |s| s.analysis.gates[0].max = Some(0.02));
    assert_eq!(out.write, None);
    assert!(out.transitions.is_empty(), "{out:?}");
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert_eq!(run.status.stage, 1);
    assert_eq!(run.status.percent, Some(pc(5)));
    assert_eq!(run.stage_start(), stage_start);
    assert_eq!(run.status.observed_generation, Some(2));
}

/// Whatever the new plan, taking it in never raises the percent on the target.
#[test]
fn a_mid_rollout_change_never_raises_exposure() {
    let plans: [&[u8]; 6] = [
        &[10, 20, 50],
        &[6, 7, 8],
        &[1, 50, 100],
        &[2, 3, 4, 5, 6],
        &[100],
        &[0, 5, 10],
    ];
    for stages in plans {
        for promotes in 0..3 {
            let mut run = Run::started(plan());
            for i in 0..promotes {
                run.act(1 + i, ManualAction::Promote);
            }
            let before = run.status.percent.unwrap();
            let out = run.respec(10 * M, |s| {
                let template = s.stages[0].clone();
                s.stages = stages
                    .iter()
                    .map(|&percent| rollgate::api::Stage {
                        percent: pc(percent),
                        ..template.clone()
                    })
                    .collect();
            });
            let case = format!("{stages:?} from {before}%");
            assert!(out.write.is_none_or(|w| w <= before), "{case}: {out:?}");
            assert!(run.status.percent.unwrap() <= before, "{case}");
            assert_eq!(run.status.phase, Some(Phase::Progressing), "{case}");
            // Nor does a checkpoint without every gate passing.
            let out = run.check(10 * H, &spike());
            assert!(out.write.is_none_or(|w| w <= before), "{case}: {out:?}");
            assert!(run.status.percent.unwrap() <= before, "{case}");
        }
    }
}

#[test]
fn a_mid_rollout_change_raises_exposure_only_at_a_passing_checkpoint() {
    let mut run = Run::started(plan());
    // At 1%, the plan now starts at 2%.
    let out = run.respec(10 * M, |s| s.stages[0].percent = pc(2));
    assert!(out.write.is_none_or(|w| w <= pc(1)), "{out:?}");
    assert_eq!(run.status.percent, Some(pc(1)));
    // A warn checkpoint changes nothing.
    let out = run.check(2 * H, &error_rate_missing());
    assert_eq!(out.write, None);
    assert_eq!(run.status.percent, Some(pc(1)));
    // A passing checkpoint after the bake time enters 2%.
    let out = run.check(3 * H, &good());
    assert_eq!(out.write, Some(pc(2)));
    assert_eq!(run.status.percent, Some(pc(2)));
    assert_eq!(run.status.stage, 0);
}

#[test]
fn a_mid_rollout_change_below_the_current_percent_lowers_it() {
    let mut run = Run::started(plan());
    run.act(1, ManualAction::Promote);
    run.act(2, ManualAction::Promote);
    assert_eq!(run.status.percent, Some(pc(10)));
    run.respec(10 * M, |s| s.stages[2].percent = pc(8));
    assert_eq!(run.status.percent, Some(pc(8)));
    assert_eq!(run.status.stage, 2);
}

#[test]
fn an_invalid_spec_at_start_fails_without_writing() {
    let spec = plan_with(|s| s.stages[1].percent = pc(1));
    let mut run = Run::new(spec);
    let out = run.decide(rollgate::engine::Inputs::at(t(0)));
    assert_eq!(out.write, None);
    assert_eq!(run.status.phase, Some(Phase::Failed));
    assert_eq!(run.status.percent, None);
    let message = run.status.message.as_deref().unwrap();
    assert!(message.contains("spec.stages[1].percent"), "{message}");
    assert!(!checkpoint_due(&run.status, t(H)));
    // Fixing the spec starts the rollout from stage 0.
    let out = run.respec(H, |s| s.stages[1].percent = pc(5));
    assert_eq!(kinds(&out), ["start"]);
    assert_eq!(out.write, Some(pc(1)));
    assert_eq!(run.status.phase, Some(Phase::Progressing));
}

#[test]
fn an_invalid_spec_mid_rollout_fails_without_writing() {
    for (field, change) in [
        (
            "spec.analysis.gates[1].name",
            Box::new(|s: &mut RolloutSpec| s.analysis.gates[1].name = "error-rate".to_owned())
                as Box<dyn FnOnce(&mut RolloutSpec)>,
        ),
        (
            "spec.analysis.gates[0].failureLimit",
            Box::new(|s: &mut RolloutSpec| s.analysis.gates[0].failure_limit = 0),
        ),
        (
            "spec.stages[2].percent",
            Box::new(|s: &mut RolloutSpec| s.stages[2].percent = pc(5)),
        ),
        (
            "spec.analysis.gates[0].min",
            Box::new(|s: &mut RolloutSpec| s.analysis.gates[0].min = Some(0.5)),
        ),
        (
            "spec.stages",
            Box::new(|s: &mut RolloutSpec| s.stages.clear()),
        ),
    ] {
        let mut run = Run::started(plan());
        run.act(1, ManualAction::Promote);
        let out = run.respec(10 * M, change);
        assert_eq!(out.write, None, "{field}");
        assert!(out.checkpoint.is_none(), "{field}");
        assert_eq!(run.status.phase, Some(Phase::Failed), "{field}");
        assert_eq!(run.status.percent, Some(pc(5)), "{field}");
        let message = run.status.message.as_deref().unwrap();
        assert!(message.contains(field), "{field}: {message}");
        assert!(!checkpoint_due(&run.status, t(10 * H)), "{field}");
    }
}

#[test]
fn an_invalid_spec_mid_rollout_then_fixed_carries_on() {
    let mut run = Run::started(plan());
    run.act(1, ManualAction::Promote);
    run.respec(10 * M, |s| s.analysis.gates[0].failure_limit = 0);
    assert_eq!(run.status.phase, Some(Phase::Failed));
    let out = run.respec(20 * M, |s| s.analysis.gates[0].failure_limit = 2);
    assert!(out.write.is_none_or(|w| w <= pc(5)), "{out:?}");
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert!(run.status.percent.unwrap() <= pc(5));
    assert!(run.next().is_some());
}

#[test]
fn spec_paused_mid_rollout_pauses_and_unpausing_resumes() {
    let mut run = Run::started(plan());
    let out = run.respec(10 * M, |s| s.paused = true);
    assert_eq!(kinds(&out), ["pause"]);
    assert_eq!(run.status.phase, Some(Phase::Paused));
    run.check(H, &good());
    let out = run.check(2 * H, &good());
    assert!(out.transitions.is_empty());
    let out = run.respec(2 * H + 1, |s| s.paused = false);
    assert_eq!(kinds(&out), ["resume"]);
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert_eq!(kinds(&run.check(3 * H, &good())), ["advance"]);
}

// ---------------------------------------------------------------------------------------------
// The docs/design.md §1 scenarios end to end
// ---------------------------------------------------------------------------------------------

#[test]
fn scenario_two_breaches_in_a_row_roll_back_at_the_second() {
    let mut run = Run::started(plan());
    for hour in 1..=3 {
        run.check(hour * H, &good());
    }
    assert_eq!(run.status.stage, 1);
    assert!(run.check(4 * H, &spike()).transitions.is_empty());
    let out = run.check(5 * H, &spike());
    assert_eq!(kinds(&out), ["rollback"]);
    assert_eq!(out.transitions[0].stage, 1);
    assert_eq!(out.write, Some(pc(0)));
}

#[test]
fn scenario_determinism_failure_rolls_back_at_once() {
    let mut run = Run::started(plan());
    let out = run.check(H, &obs(v(0.002), v(0.0), v(1.0)));
    assert_eq!(kinds(&out), ["rollback"]);
    let reason = out.transitions[0].reason.as_deref().unwrap();
    assert!(reason.starts_with("gate determinism failed 1 "), "{reason}");
}

#[test]
fn scenario_prometheus_outage_pauses_never_promotes() {
    let mut run = Run::started(plan());
    let outage = obs(err("connection refused"), err("connection refused"), v(0.0));
    for hour in 1..=2 {
        assert!(run.check(hour * H, &outage).transitions.is_empty());
    }
    assert_eq!(kinds(&run.check(3 * H, &outage)), ["pause"]);
    for hour in 4..=20 {
        let out = run.check(hour * H, &outage);
        assert!(out.transitions.is_empty());
        assert_eq!(out.write, None);
    }
    assert_eq!(run.status.stage, 0);
    assert_eq!(run.status.percent, Some(pc(1)));
    assert_eq!(run.status.phase, Some(Phase::Paused));
}

#[test]
fn judge_is_the_verdict_decide_uses() {
    let spec = plan();
    let samples = [
        v(0.01),
        v(0.0100001),
        v(f64::NAN),
        nodata(),
        err("x"),
        v(-1.0),
    ];
    for sample in &samples {
        let mut run = Run::started(spec.clone());
        run.check(H, &obs(sample.clone(), v(0.0), v(0.0)));
        let expected: GateVerdict = judge(&spec.analysis.gates[0], sample);
        assert_eq!(verdict(&run, 0), Some(expected), "{sample:?}");
    }
    let g: &Gate = &spec.analysis.gates[0];
    assert_eq!(judge(g, &v(0.01)), GateVerdict::Pass);
}

// ---------------------------------------------------------------------------------------------
// A rollback never raises exposure (issue 7)
// ---------------------------------------------------------------------------------------------

#[test]
fn abort_after_a_plan_change_never_raises_exposure() {
    // Started at 1%; the plan then moves every stage up and its rollback to 10% (valid: not
    // above the new first stage). The rollout still holds 1% when someone aborts.
    let mut run = Run::started(plan());
    run.respec(M, |s| {
        s.stages[0].percent = pc(20);
        s.stages[1].percent = pc(50);
        s.stages[2].percent = pc(100);
        s.rollback.percent = pc(10);
    });
    assert_eq!(run.status.percent, Some(pc(1)));
    let out = run.act(10 * M, ManualAction::Abort);
    assert_eq!(kinds(&out), ["rollback"]);
    assert_eq!(out.write, Some(pc(1)), "an abort at 1% must not write 10%");
    assert_eq!(run.status.percent, Some(pc(1)));
    assert_eq!(out.transitions[0].percent, pc(1));
}

#[test]
fn gate_rollback_after_a_plan_change_never_raises_exposure() {
    let mut run = Run::started(plan());
    run.respec(M, |s| {
        s.stages[0].percent = pc(20);
        s.stages[1].percent = pc(50);
        s.stages[2].percent = pc(100);
        s.rollback.percent = pc(20);
    });
    assert_eq!(run.status.percent, Some(pc(1)));
    let out = run.check(H + M, &alert());
    assert_eq!(kinds(&out), ["rollback"]);
    assert_eq!(
        out.write,
        Some(pc(1)),
        "rolled back at 1%, not raised to 20%"
    );
    assert_eq!(run.status.phase, Some(Phase::RolledBack));
    assert_eq!(run.status.percent, Some(pc(1)));
}

// ---------------------------------------------------------------------------------------------
// Percents with decimals (basis points inside)
// ---------------------------------------------------------------------------------------------

fn bp(basis_points: u16) -> rollgate::api::Percent {
    rollgate::api::Percent::from_basis_points(basis_points).expect("a percent")
}

/// 0.5 % → 2.25 % → 10 %, read from YAML as a user writes it.
fn decimal_plan() -> RolloutSpec {
    let text = crate::support::example_text(EXAMPLE)
        .replace("percent: 1,", "percent: 0.5,")
        .replace("percent: 5,", "percent: 2.25,");
    crate::support::examples::rollout_from_yaml(&text)
        .expect("the example with decimal percents")
        .spec
}

#[test]
fn stages_with_decimals_are_written_as_basis_points_and_advance_in_order() {
    let spec = decimal_plan();
    let read: Vec<u16> = spec
        .stages
        .iter()
        .map(|s| s.percent.basis_points())
        .collect();
    assert_eq!(read, [50, 225, 1000]);
    let mut run = Run::new(spec);
    let out = run.decide(Inputs::at(t(0)));
    assert_eq!(out.write, Some(bp(50)));
    assert_eq!(
        run.status.message.as_deref(),
        Some("started at stage 1 of 3 (0.5%)")
    );
    run.check(H, &good());
    let out = run.check(2 * H, &good());
    assert_eq!(kinds(&out), ["advance"]);
    assert_eq!(out.write, Some(bp(225)));
    assert_eq!(run.status.history.last().map(|e| e.percent), Some(bp(225)));
    run.check(3 * H, &good());
    let out = run.check(4 * H, &good());
    assert_eq!(out.write, Some(pc(10)));
}

#[test]
fn a_drift_to_a_decimal_percent_is_seen_and_reverted() {
    let mut run = Run::started(decimal_plan());
    // 0.51 % is not 0.5 %: one basis point is a drift.
    let out = run.decide(Inputs::at(t(90 * M)).with_live_percent(bp(51)));
    assert_eq!(
        only(&out),
        TransitionKind::Drift {
            expected: bp(50),
            actual: bp(51),
            action: DriftAction::Reverted
        }
    );
    assert_eq!(out.write, Some(bp(50)));
    let message = run.status.history.last().and_then(|e| e.message.clone());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("0.51") && m.contains("0.5")),
        "{message:?}"
    );
    let out = run.decide(Inputs::at(t(91 * M)).with_live_percent(bp(50)));
    assert_eq!(out, Outcome::default());
}

#[test]
fn a_rollback_writes_a_decimal_rollback_percent() {
    let mut run = Run::started(plan_with(|s| {
        s.stages[0].percent = bp(50);
        s.rollback.percent = bp(29);
    }));
    run.check(H, &spike());
    let out = run.check(2 * H, &spike());
    assert_eq!(kinds(&out), ["rollback"]);
    assert_eq!(out.write, Some(bp(29)));
    assert_eq!(run.status.percent, Some(bp(29)));
}

// ---------------------------------------------------------------------------------------------
// Refusals met as the rollout's ServiceAccount (docs/design.md §8, controller only)
// ---------------------------------------------------------------------------------------------

const DENIED: &str = "ServiceAccount kaviar/deployer may not patch configmaps \"feature-flags\"";

#[test]
fn a_refusal_before_the_start_keeps_the_rollout_pending_with_reason_forbidden() {
    let mut run = Run::new(plan());
    let out = run.decide(Inputs::at(t(0)).with_forbidden(DENIED));
    assert_eq!(out.write, None);
    assert_eq!(kinds(&out), ["pending"]);
    assert_eq!(run.status.phase, Some(Phase::Pending));
    assert_eq!(run.status.reason.as_deref(), Some("Forbidden"));
    let message = run.status.message.clone().unwrap_or_default();
    assert!(message.contains(DENIED), "{message}");
    run.status.update_conditions(t(0));
    assert!(
        run.status
            .conditions
            .iter()
            .all(|c| c.reason == "Forbidden"),
        "{:?}",
        run.status.conditions
    );

    // Granted: the next pre-checks pass and the rollout starts, the reason gone.
    let out = run.decide(Inputs::at(t(60)));
    assert_eq!(out.write, Some(pc(1)));
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert_eq!(run.status.reason, None);
}

#[test]
fn a_refusal_with_other_failing_prechecks_keeps_all_of_them_in_the_message() {
    let mut run = Run::new(plan());
    let failures = [DENIED.to_owned(), "gate error-rate: timed out".to_owned()];
    run.decide(
        Inputs::at(t(0))
            .with_prechecks(PreChecks::Failed(&failures))
            .with_forbidden(DENIED),
    );
    assert_eq!(run.status.reason.as_deref(), Some("Forbidden"));
    let message = run.status.message.clone().unwrap_or_default();
    assert!(
        message.contains(DENIED) && message.contains("timed out"),
        "{message}"
    );
    // A failure that is not a refusal takes the reason back.
    let others = ["gate error-rate: timed out".to_owned()];
    run.decide(Inputs::at(t(60)).with_prechecks(PreChecks::Failed(&others)));
    assert_eq!(run.status.reason, None);
}

#[test]
fn a_refusal_after_the_start_pauses_once_and_resume_clears_it() {
    let mut run = Run::started(plan());
    let out = run.decide(Inputs::at(t(60)).with_forbidden(DENIED));
    assert_eq!(kinds(&out), ["pause"]);
    assert_eq!(out.write, None);
    assert_eq!(run.status.phase, Some(Phase::Paused));
    assert_eq!(run.status.reason.as_deref(), Some("Forbidden"));
    assert!(
        run.status
            .message
            .as_deref()
            .is_some_and(|m| m.contains(DENIED)),
        "{:?}",
        run.status.message
    );
    run.status.update_conditions(t(60));
    assert!(
        run.status
            .conditions
            .iter()
            .all(|c| c.reason == "Forbidden")
    );

    let again = run.decide(Inputs::at(t(120)).with_forbidden(DENIED));
    assert!(again.transitions.is_empty(), "paused once: {again:?}");

    run.act(180, ManualAction::Resume);
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert_eq!(run.status.reason, None);
    run.status.update_conditions(t(180));
    assert!(
        run.status
            .conditions
            .iter()
            .all(|c| c.reason == "Progressing")
    );
}

#[test]
fn a_refusal_leaves_a_finished_rollout_alone() {
    let mut run = Run::started(plan());
    run.act(60, ManualAction::Abort);
    assert_eq!(run.status.phase, Some(Phase::RolledBack));
    let before = run.status.clone();
    let out = run.decide(Inputs::at(t(120)).with_forbidden(DENIED));
    assert!(!out.changed_anything(), "{out:?}");
    assert_eq!(run.status, before);
}

// ---------------------------------------------------------------------------------------------
// A person's `promote --full`: to the last stage now
// ---------------------------------------------------------------------------------------------

#[test]
fn promote_full_goes_to_the_last_stage_at_once_and_says_it_was_by_hand() {
    let mut run = Run::started(plan());
    assert_eq!(run.status.stage, 0);
    let out = run.act(10 * M, ManualAction::PromoteFull);
    assert_eq!(kinds(&out), ["advance"]);
    let last = run.spec.stages.len() - 1;
    assert_eq!(out.write, Some(run.spec.stages[last].percent));
    assert_eq!(run.status.stage as usize, last);
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert_eq!(run.stage_start(), Some(t(10 * M)));
    assert_eq!(
        run.next(),
        Some(t(H + 10 * M)),
        "the last stage's cadence starts now"
    );
    let entry = run.status.history.last().expect("a history entry");
    assert_eq!(
        entry.message.as_deref(),
        Some("promoted to the last stage by hand")
    );
    assert_eq!(entry.stage as usize, last);
    // At the last stage, a second promote --full completes, also by hand.
    let out = run.act(20 * M, ManualAction::PromoteFull);
    assert_eq!(kinds(&out), ["complete"]);
    assert_eq!(out.write, None);
    assert_eq!(run.status.phase, Some(Phase::Succeeded));
    assert_eq!(
        run.status.history.last().and_then(|e| e.message.as_deref()),
        Some("promoted to the last stage by hand")
    );
}

#[test]
fn promote_full_leaves_a_pause_and_changes_nothing_once_ended() {
    let mut run = Run::started(plan());
    run.act(M, ManualAction::Pause);
    assert_eq!(run.status.phase, Some(Phase::Paused));
    let out = run.act(2 * M, ManualAction::PromoteFull);
    assert_eq!(kinds(&out).last(), Some(&"advance"), "{out:?}");
    assert_eq!(run.status.phase, Some(Phase::Progressing));
    assert_eq!(run.status.stage as usize, run.spec.stages.len() - 1);

    let mut run = Run::started(plan());
    run.act(M, ManualAction::Abort);
    assert_eq!(run.status.phase, Some(Phase::RolledBack));
    let before = run.status.clone();
    let out = run.act(2 * M, ManualAction::PromoteFull);
    assert!(out.transitions.is_empty(), "{out:?}");
    assert_eq!(run.status, before);
}

#[test]
fn promote_full_is_a_word_of_its_own() {
    assert_eq!(ManualAction::PromoteFull.as_str(), "promote-full");
    assert_eq!(ManualAction::Promote.as_str(), "promote");
}

// ---------------------------------------------------------------------------------------------
// The compare gate's verdicts: waiting and skipped (docs/design.md §4 rules 3–5, issue 12)
// ---------------------------------------------------------------------------------------------

const COMPARE_PLAN: &str = r#"
target:
  flagd: {configMap: feature-flags, flag: passenger_favorites_matching}
stages:
  - {percent: 10, duration: 1h}
  - {percent: 50, duration: 1h}
  - {percent: 100, duration: 1h}
analysis:
  interval: 30m
  errorLimit: 2
  gates:
    - name: errors-vs-control
      compare:
        units: 'sum(increase(http_requests_total{feature_flag_variant="{{variant}}"}[{{window}}]))'
        events: 'sum(increase(http_requests_total{code=~"5..",feature_flag_variant="{{variant}}"}[{{window}}]))'
        maxRegression: 0.002
        sampleRatio: true
    - name: error-rate
      prometheus: {query: 'up'}
      max: 0.01
"#;

fn arms(t_units: f64, t_events: f64, c_units: f64, c_events: f64) -> Vec<Observation> {
    vec![
        Observation::Arms {
            treatment: Counts::new(t_units, t_events),
            control: Counts::new(c_units, c_events),
        },
        v(0.0),
    ]
}

#[test]
fn compare_waiting_holds_counts_nothing_and_advances_once_data_arrives() {
    let mut run = Run::started(parse_spec(COMPARE_PLAN));
    // 30m: 340 units with the flag, fewer than minUnits 500: the stage holds, nothing counts.
    let out = run.check(30 * M, &arms(340.0, 3.0, 3060.0, 30.0));
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Warn);
    assert_eq!(verdict(&run, 0), Some(GateVerdict::Waiting));
    assert_eq!(run.counters(0), (0, 0));
    assert!(out.transitions.is_empty(), "{out:?}");
    assert!(out.waiting.is_empty(), "the bake time has not passed yet");
    let message = run.status.message.clone().unwrap_or_default();
    assert!(
        message.contains("collecting: 340 of 500 requests with the flag"),
        "{message}"
    );
    // 1h, 1h30m, 2h: the bake time is over and the gate still waits: one Waiting report for
    // the stage, no pause however long it waits (errorLimit 2), no advance.
    let out = run.check(H, &arms(450.0, 4.0, 4050.0, 40.0));
    assert_eq!(out.waiting.len(), 1, "{out:?}");
    assert_eq!(out.waiting[0].gate, "errors-vs-control");
    assert_eq!(
        out.waiting[0].message,
        "gate errors-vs-control still waits for data 1h into stage 1 (bake time 1h): \
         collecting: 450 of 500 requests with the flag"
    );
    for secs in [H + 30 * M, 2 * H] {
        let out = run.check(secs, &arms(480.0, 4.0, 4320.0, 43.0));
        assert!(
            out.waiting.is_empty(),
            "one Waiting report per stage: {out:?}"
        );
        assert!(out.transitions.is_empty(), "{out:?}");
        assert_eq!(run.counters(0), (0, 0));
        assert_eq!(run.status.phase, Some(Phase::Progressing));
    }
    // 2h30m: enough units, equal rates: the gate passes and the stage advances.
    let out = run.check(2 * H + 30 * M, &arms(600.0, 6.0, 5400.0, 54.0));
    assert_eq!(verdict(&run, 0), Some(GateVerdict::Pass));
    assert_eq!(kinds(&out), ["advance"]);
    assert_eq!(run.status.percent, Some(pc(50)));
    let compare = run.status.gates[0].compare.expect("the arms are kept");
    assert_eq!(compare.treatment.units, 600.0);
    assert_eq!(compare.control.rate, 0.01);
    assert_eq!(compare.difference, Some(0.0));
    assert!(compare.half_width.is_some_and(|h| h > 0.0));
    assert!(run.status.gates[0].last_value.is_some_and(|b| b < 0.0));
}

#[test]
fn compare_waiting_keeps_earlier_failures_as_they_were() {
    let mut spec = parse_spec(COMPARE_PLAN);
    spec.analysis.gates[0].failure_limit = 2;
    let mut run = Run::started(spec);
    // A clear regression: 5 % with the flag vs 1 % without.
    run.check(30 * M, &arms(2000.0, 100.0, 18_000.0, 180.0));
    assert_eq!(verdict(&run, 0), Some(GateVerdict::Fail));
    assert_eq!(run.counters(0), (1, 0));
    // No data (0 units: waiting) moves neither counter.
    run.check(H, &[nodata(), v(0.0)]);
    assert_eq!(verdict(&run, 0), Some(GateVerdict::Waiting));
    assert_eq!(run.counters(0), (1, 0));
    // The second failure in a row of verdicts that count rolls back.
    let out = run.check(H + 30 * M, &arms(4000.0, 200.0, 36_000.0, 360.0));
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Fail);
    assert_eq!(kinds(&out), ["rollback"]);
    assert_eq!(
        out.transitions[0].reason.as_deref(),
        Some("gate errors-vs-control failed 2 checkpoints in a row")
    );
}

#[test]
fn compare_skipped_at_100_percent_lets_the_stage_complete() {
    let mut run = Run::started(parse_spec(COMPARE_PLAN));
    run.check(H, &arms(1000.0, 10.0, 9000.0, 90.0));
    assert_eq!(run.status.percent, Some(pc(50)));
    run.check(2 * H, &arms(10_000.0, 100.0, 10_000.0, 100.0));
    assert_eq!(run.status.percent, Some(pc(100)));
    // At 100 % there is no control group: skipped, which does not keep the stage from
    // completing, and counts nothing.
    let out = run.check(3 * H, &arms(20_000.0, 200.0, 0.0, 0.0));
    assert_eq!(verdict(&run, 0), Some(GateVerdict::Skipped));
    assert_eq!(
        run.status.gates[0].last_message.as_deref(),
        Some("no control group at 100 %")
    );
    assert_eq!(run.counters(0), (0, 0));
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Pass);
    assert_eq!(kinds(&out), ["complete"]);
}

#[test]
fn compare_skipped_does_not_hide_another_gates_failure() {
    let mut spec = parse_spec(COMPARE_PLAN);
    spec.stages.truncate(1);
    spec.stages[0].percent = pc(100);
    let mut run = Run::started(spec);
    let mut observations = arms(1000.0, 10.0, 0.0, 0.0);
    observations[1] = nodata();
    let out = run.check(H, &observations);
    assert_eq!(verdict(&run, 0), Some(GateVerdict::Skipped));
    assert_eq!(checkpoint_verdict(&out), CheckpointVerdict::Warn);
    assert!(out.transitions.is_empty(), "{out:?}");
}

#[test]
fn compare_sample_ratio_mismatch_is_an_error_after_the_first_interval() {
    let mut run = Run::started(parse_spec(COMPARE_PLAN));
    // 30 % of units with the flag at 10 %: not tested during the first interval.
    run.check(30 * M, &arms(3000.0, 30.0, 7000.0, 70.0));
    assert_eq!(verdict(&run, 0), Some(GateVerdict::Pass));
    run.check(H, &arms(6000.0, 60.0, 14_000.0, 140.0));
    assert_eq!(verdict(&run, 0), Some(GateVerdict::Error));
    let message = run.status.gates[0].last_message.clone().unwrap_or_default();
    assert!(
        message.starts_with("sample ratio mismatch: 30 % of units with the flag, expected 10 %"),
        "{message}"
    );
    assert_eq!(run.counters(0), (0, 1));
}

#[test]
fn compare_bad_counts_are_errors_that_count_as_misses() {
    let mut run = Run::started(parse_spec(COMPARE_PLAN));
    run.check(30 * M, &arms(1000.0, 1001.0, 9000.0, 90.0));
    assert_eq!(verdict(&run, 0), Some(GateVerdict::Error));
    assert_eq!(
        run.status.gates[0].last_message.as_deref(),
        Some("treatment has more events (1001) than units (1000)")
    );
    let out = run.check(H, &[v(0.01), v(0.0)]);
    assert_eq!(verdict(&run, 0), Some(GateVerdict::Error));
    assert_eq!(
        kinds(&out),
        ["pause"],
        "two misses in a row reach errorLimit 2"
    );
}

#[test]
fn judge_cannot_judge_counts_without_the_split() {
    let g = gate("{name: c, compare: {units: u, events: e}}");
    let counts = Observation::Arms {
        treatment: Counts::new(1000.0, 1.0),
        control: Counts::new(1000.0, 1.0),
    };
    assert_eq!(judge(&g, &counts), GateVerdict::Error);
    let conditions = Conditions {
        percent: rollgate::api::Percent::whole(50),
        ratio_settled: true,
    };
    assert_eq!(assess(&g, &counts, &conditions).verdict, GateVerdict::Pass);
    assert_eq!(assess(&g, &v(0.0), &conditions).verdict, GateVerdict::Error);
}
