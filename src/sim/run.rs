//! The virtual clock: runs the engine over a scenario, from one instant of interest to the
//! next (a scheduled action or a due checkpoint), in simulated time.

use std::io;

use k8s_openapi::jiff::Timestamp;

use super::scenario::{Scenario, ScenarioAction, Series};
use super::timeline::{TimelineEvent, TimelineSink};
use crate::api::{Percent, Phase, RolloutSpec, RolloutStatus};
use crate::engine::{Inputs, Observation, Outcome, decide};

/// Where a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    /// When the run ended: the final transition, or the end of simulated time.
    pub at: Timestamp,
    /// The final phase.
    pub phase: Phase,
    /// The final stage index.
    pub stage: u32,
    /// The percent on the target at the end.
    pub percent: Percent,
}

/// Where gate observations come from during a run: a scenario's series, or a real
/// Prometheus' past in a backtest.
pub trait ObservationSource {
    /// Fills `into` with one observation per gate (plan order) as of `at`.
    fn observe(
        &mut self,
        at: Timestamp,
        status: &RolloutStatus,
        into: &mut Vec<Observation>,
    ) -> io::Result<()>;
}

/// Observations from a scenario's piecewise-constant series.
pub struct SeriesSource<'a> {
    start: Timestamp,
    series: &'a [Series],
}

impl<'a> SeriesSource<'a> {
    /// A source reading `series` at offsets from `start`.
    pub fn new(start: Timestamp, series: &'a [Series]) -> Self {
        Self { start, series }
    }
}

impl ObservationSource for SeriesSource<'_> {
    fn observe(
        &mut self,
        at: Timestamp,
        status: &RolloutStatus,
        into: &mut Vec<Observation>,
    ) -> io::Result<()> {
        let offset = at.duration_since(self.start);
        // A compare gate's counts run from the current stage's start, at the percent in force.
        let stage_start = status
            .stage_started_at
            .as_ref()
            .map_or(offset, |t| t.0.duration_since(self.start));
        let percent = status.percent.unwrap_or(crate::api::Percent::ZERO);
        into.clear();
        into.extend(
            self.series
                .iter()
                .map(|s| s.observe(offset, stage_start, percent)),
        );
        Ok(())
    }
}

/// Runs the plan over the scenario's time span, sending every event to `timeline` (a
/// [`TimelineWriter`](super::timeline::TimelineWriter), or a sink that also records them).
pub fn run(
    spec: &RolloutSpec,
    scenario: &Scenario,
    source: &mut dyn ObservationSource,
    timeline: &mut dyn TimelineSink,
) -> io::Result<RunSummary> {
    let start = scenario.start;
    let end = start.checked_add(scenario.until).unwrap_or(Timestamp::MAX);
    let mut status = RolloutStatus::default();
    let mut live: Option<Percent> = None;
    let mut observations = Vec::with_capacity(spec.analysis.gates.len());
    let mut last_at = start;

    let outcome = decide(spec, &mut status, &Inputs::at(start));
    emit(timeline, start, &outcome, &status)?;
    apply_write(&outcome, &mut live);

    let mut events = scenario.events.iter().peekable();
    while status.phase.is_some_and(|p| !p.is_terminal()) {
        let next_event = events.peek().and_then(|e| start.checked_add(e.at).ok());
        let next_checkpoint = status.next_checkpoint_at.as_ref().map(|t| t.0);
        let (at, is_event) = match (next_event, next_checkpoint) {
            (Some(e), Some(c)) if e <= c => (e, true),
            (_, Some(c)) => (c, false),
            (Some(e), None) => (e, true),
            (None, None) => break,
        };
        if at > end {
            break;
        }
        last_at = at;
        let outcome = if is_event {
            let Some(event) = events.next() else { break };
            let inputs = Inputs::at(at);
            let inputs = match event.action {
                ScenarioAction::Manual(action) => inputs.with_action(action),
                ScenarioAction::Drift(percent) => {
                    live = Some(percent);
                    inputs.with_live_percent(percent)
                }
            };
            decide(spec, &mut status, &inputs)
        } else {
            source.observe(at, &status, &mut observations)?;
            decide(
                spec,
                &mut status,
                &Inputs::at(at).with_observations(&observations),
            )
        };
        emit(timeline, at, &outcome, &status)?;
        apply_write(&outcome, &mut live);
    }

    let phase = status.phase.unwrap_or(Phase::Progressing);
    let at = if phase.is_terminal() { last_at } else { end };
    let summary = RunSummary {
        at,
        phase,
        stage: status.stage,
        percent: status.percent.or(live).unwrap_or(Percent::ZERO),
    };
    timeline.write(&TimelineEvent::Summary {
        at: summary.at,
        phase: summary.phase,
        stage: summary.stage,
        percent: summary.percent,
    })?;
    timeline.flush()?;
    Ok(summary)
}

fn apply_write(outcome: &Outcome, live: &mut Option<Percent>) {
    if let Some(percent) = outcome.write {
        *live = Some(percent);
    }
}

fn emit(
    timeline: &mut dyn TimelineSink,
    at: Timestamp,
    outcome: &Outcome,
    status: &RolloutStatus,
) -> io::Result<()> {
    let split = outcome
        .checkpoint
        .map_or(outcome.transitions.len(), |c| c.position);
    for transition in &outcome.transitions[..split] {
        write_transition(timeline, at, transition)?;
    }
    if let Some(checkpoint) = outcome.checkpoint {
        timeline.write(&TimelineEvent::Checkpoint {
            at,
            stage: checkpoint.stage,
            percent: checkpoint.percent,
            verdict: checkpoint.verdict,
            gates: &status.gates,
        })?;
    }
    for transition in &outcome.transitions[split..] {
        write_transition(timeline, at, transition)?;
    }
    Ok(())
}

fn write_transition(
    timeline: &mut dyn TimelineSink,
    at: Timestamp,
    transition: &crate::engine::Transition,
) -> io::Result<()> {
    if transition.kind == crate::engine::TransitionKind::Start {
        timeline.write(&TimelineEvent::Start {
            at,
            stage: transition.stage,
            percent: transition.percent,
        })
    } else {
        timeline.write(&TimelineEvent::Transition { at, transition })
    }
}
