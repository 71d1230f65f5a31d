//! The report's one model: what both renderers (Markdown and SVG) read, whatever filled it.

use k8s_openapi::jiff::Timestamp;

use crate::api::{CheckpointVerdict, GateVerdict, HistoryKind, Percent, Phase};

/// Everything a release report says about one rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The Rollout's name.
    pub name: String,
    /// The Rollout's namespace, when it has one.
    pub namespace: Option<String>,
    /// Where the evidence comes from.
    pub source: Source,
    /// The plan as written.
    pub plan: Plan,
    /// The baseline checks before the start.
    pub prechecks: Vec<PreCheck>,
    /// Decisions and checkpoints, oldest first.
    pub entries: Vec<Entry>,
    /// Where the rollout stands at the end of the evidence.
    pub final_state: FinalState,
    /// What the evidence leaves out, in words.
    pub notes: Vec<String>,
}

impl Report {
    /// When the rollout started (its first `start` entry), else the first entry's time.
    pub fn origin(&self) -> Option<Timestamp> {
        self.entries
            .iter()
            .find(|e| matches!(e.event, Event::Start))
            .or_else(|| self.entries.first())
            .map(|e| e.at)
    }

    /// The drift entries, oldest first.
    pub fn drifts(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(|e| matches!(e.event, Event::Drift { .. }))
    }
}

/// Where a report's evidence comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// `rollgate simulate`: a plan file run against a scenario file on a virtual clock.
    Simulation {
        /// The plan's file name.
        plan: String,
        /// The scenario's file name.
        scenario: String,
    },
    /// `rollgate backtest`: a plan file replayed over a Prometheus' past.
    Backtest {
        /// The plan's file name.
        plan: String,
        /// The replayed window's start.
        start: Timestamp,
        /// The replayed window's end.
        end: Timestamp,
    },
    /// A Rollout in a cluster, read from its status.
    Live {
        /// `metadata.generation`.
        generation: Option<i64>,
        /// `status.observedGeneration`.
        observed_generation: Option<i64>,
    },
}

/// The plan: target, stages, cadence, gates, rollback and drift policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The target in words, e.g. flag `f` in ConfigMap `c` (key `k`).
    pub target: String,
    /// How many targeting keys the flagd target's allowlist holds, for a flagd target.
    pub allowlist: Option<usize>,
    /// The stages in order.
    pub stages: Vec<StagePlan>,
    /// Time between checkpoints, compact (`1h`).
    pub interval: String,
    /// Checkpoints in a row without usable data before a pause.
    pub error_limit: u32,
    /// The gates in plan order.
    pub gates: Vec<GatePlan>,
    /// Where a rollback leaves the target.
    pub rollback_percent: Percent,
    /// `Revert` or `Pause`.
    pub on_drift: &'static str,
    /// The optional pre-check on the allowlist's size.
    pub min_allowlist: Option<u32>,
}

/// One stage of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagePlan {
    /// The stage's percent.
    pub percent: Percent,
    /// Its bake time, compact (`2h`).
    pub bake: String,
}

/// One gate of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct GatePlan {
    /// The gate's name.
    pub name: String,
    /// What the gate measures, in words.
    pub measures: String,
    /// A PromQL query, when the gate has one.
    pub query: Option<String>,
    /// Lowest passing value (after the provider's defaults).
    pub min: Option<f64>,
    /// Highest passing value (after the provider's defaults).
    pub max: Option<f64>,
    /// What the upper bound is called: `max`, or `maxRegression` for a compare gate (whose
    /// value is the harmful bound of treatment against control).
    pub max_word: &'static str,
    /// Failing checkpoints in a row that roll back.
    pub failure_limit: u32,
}

/// One baseline check before the start.
#[derive(Debug, Clone, PartialEq)]
pub struct PreCheck {
    /// What is checked, in words.
    pub check: String,
    /// What came of it.
    pub result: PreCheckResult,
}

/// What came of a pre-check.
#[derive(Debug, Clone, PartialEq)]
pub enum PreCheckResult {
    /// It held (at this time, when known).
    Passed(Option<Timestamp>),
    /// It failed, with the reason, at this time.
    Failed {
        /// When it was seen failing (none when the plan itself answers).
        at: Option<Timestamp>,
        /// Why, in words.
        reason: String,
    },
    /// Not made: a simulation or backtest starts at once; the reason says so.
    NotRun(&'static str),
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// When it happened.
    pub at: Timestamp,
    /// The stage index (a checkpoint's before its decision, a transition's after it).
    pub stage: u32,
    /// The percent (a checkpoint's before its decision, a transition's after it).
    pub percent: Percent,
    /// What happened.
    pub event: Event,
}

/// What happened at a timeline entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Waiting for pre-checks.
    Pending {
        /// The failing pre-checks, in words.
        reason: Option<String>,
    },
    /// Started at stage 0.
    Start,
    /// A checkpoint with its gates' readings (empty when the evidence kept none).
    Checkpoint {
        /// pass, warn or fail.
        verdict: CheckpointVerdict,
        /// The gates, in plan order.
        gates: Vec<GateReading>,
    },
    /// The live percent differed from the expected one (`Entry::percent`).
    Drift {
        /// The live percent, when the evidence says.
        actual: Option<Percent>,
        /// What was done, in words.
        reason: Option<String>,
    },
    /// Any other transition: advance, pause, resume, rollback, complete, replan, invalid.
    Transition {
        /// Which one.
        kind: HistoryKind,
        /// Why, in words.
        reason: Option<String>,
    },
}

/// One gate at one checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct GateReading {
    /// The gate's name.
    pub name: String,
    /// pass, fail, inconclusive or error (none before any checkpoint).
    pub verdict: Option<GateVerdict>,
    /// The value, when there was one.
    pub value: Option<f64>,
    /// The provider's error, when there was one.
    pub message: Option<String>,
    /// Consecutive failing checkpoints after this one.
    pub failures: u32,
    /// Consecutive checkpoints without data after this one.
    pub misses: u32,
}

/// Where the rollout stands at the end of the evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct FinalState {
    /// When the evidence ends (the final transition or the end of simulated time).
    pub at: Option<Timestamp>,
    /// The phase (none before the first reconcile).
    pub phase: Option<Phase>,
    /// The stage index.
    pub stage: u32,
    /// The percent on the target.
    pub percent: Option<Percent>,
    /// Why it is there, in words.
    pub message: Option<String>,
    /// Each gate's last reading and counters.
    pub gates: Vec<GateReading>,
    /// The next checkpoint, when one is due.
    pub next_checkpoint_at: Option<Timestamp>,
    /// kstatus conditions as (type, status, reason).
    pub conditions: Vec<(String, String, String)>,
}
