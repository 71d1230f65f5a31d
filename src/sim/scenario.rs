//! The scenario file of `rollgate simulate`: gate values over time and what people and the
//! outside world do (docs/design.md §5).

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use super::load::{LoadError, load_yaml, parse_yaml};
use super::schema_check::child_path;
use crate::api::duration::{Units, parse_nanos};
use crate::api::{Percent, RolloutSpec};
use crate::engine::{ManualAction, Observation};

/// Simulated time is capped at 30 days unless the scenario says otherwise.
const DEFAULT_UNTIL: SignedDuration = SignedDuration::from_hours(30 * 24);

/// The scenario file as written.
#[derive(Deserialize, Debug, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ScenarioFile {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    gates: BTreeMap<String, Vec<PointFile>>,
    #[serde(default)]
    events: Vec<EventFile>,
}

#[derive(Deserialize, Debug, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct PointFile {
    at: String,
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    nodata: Option<bool>,
    #[serde(default)]
    error: Option<String>,
    /// A compare gate's units per minute over both arms.
    #[serde(default)]
    traffic: Option<f64>,
    /// A compare gate's event rate with the flag (events per unit, 0 to 1).
    #[serde(default)]
    treatment: Option<f64>,
    /// A compare gate's event rate without the flag (events per unit, 0 to 1).
    #[serde(default)]
    control: Option<f64>,
}

#[derive(Deserialize, Debug, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct EventFile {
    at: String,
    action: ActionWord,
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    percent: Option<f64>,
}

#[derive(Deserialize, Debug, Clone, Copy, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum ActionWord {
    Pause,
    Resume,
    Promote,
    #[serde(rename = "promote-full")]
    PromoteFull,
    Abort,
    Drift,
}

/// Something that happens at an offset from the start.
#[derive(Clone, Debug, PartialEq)]
pub enum ScenarioAction {
    /// A person's command.
    Manual(ManualAction),
    /// Someone sets the target to this percent behind the rollout's back.
    Drift(Percent),
}

/// A scheduled action.
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioEvent {
    /// Offset from the start.
    pub at: SignedDuration,
    /// What happens.
    pub action: ScenarioAction,
}

/// A compare gate's traffic: units per minute over both arms and each arm's event rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Traffic {
    /// Units per minute, both arms together.
    pub per_minute: f64,
    /// Events per unit with the flag.
    pub treatment: f64,
    /// Events per unit without it.
    pub control: f64,
}

/// One entry of a series.
#[derive(Clone, Debug, PartialEq)]
pub enum Point {
    /// What the gate observes while the entry holds.
    Observed(Observation),
    /// A compare gate's traffic while the entry holds.
    Traffic(Traffic),
}

/// One gate's values over time: each entry holds until the next one; before the first entry
/// the gate has no data.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Series {
    points: Vec<(SignedDuration, Point)>,
}

impl Series {
    /// A series from (offset, observation) entries in increasing order of offset.
    pub fn new(points: Vec<(SignedDuration, Observation)>) -> Self {
        Self {
            points: points
                .into_iter()
                .map(|(at, o)| (at, Point::Observed(o)))
                .collect(),
        }
    }

    /// A series from (offset, entry) entries in increasing order of offset.
    pub fn of_points(points: Vec<(SignedDuration, Point)>) -> Self {
        Self { points }
    }

    /// The entry in force at `offset`, if any.
    fn point(&self, offset: SignedDuration) -> Option<&Point> {
        let index = self.points.partition_point(|(at, _)| *at <= offset);
        index.checked_sub(1).map(|i| &self.points[i].1)
    }

    /// The observation at `offset`: no data before the first entry; for traffic, each arm's
    /// units and events integrated from `stage_start` (units_T = traffic/60 · seconds ·
    /// percent/100, units_C the rest, events = units · rate; real numbers, no noise), counting
    /// nothing while a `nodata` or `error` entry held.
    pub fn observe(
        &self,
        offset: SignedDuration,
        stage_start: SignedDuration,
        percent: crate::api::Percent,
    ) -> Observation {
        match self.point(offset) {
            None => Observation::NoData,
            Some(Point::Observed(o)) => o.clone(),
            Some(Point::Traffic(_)) => {
                let share = percent.fraction();
                let (mut tu, mut te, mut cu, mut ce) = (0.0, 0.0, 0.0, 0.0);
                for (i, (at, point)) in self.points.iter().enumerate() {
                    let Point::Traffic(traffic) = point else {
                        continue;
                    };
                    let end = self.points.get(i + 1).map_or(offset, |(next, _)| *next);
                    let from = (*at).max(stage_start);
                    let to = end.min(offset);
                    if to <= from {
                        continue;
                    }
                    let units = traffic.per_minute / 60.0 * (to - from).as_secs_f64();
                    tu += units * share;
                    te += units * share * traffic.treatment;
                    cu += units * (1.0 - share);
                    ce += units * (1.0 - share) * traffic.control;
                }
                Observation::Arms {
                    treatment: crate::gates::compare::Counts::new(tu, te),
                    control: crate::gates::compare::Counts::new(cu, ce),
                }
            }
        }
    }
}

/// A validated scenario, with one series per gate of the plan, in the plan's gate order.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// When the simulated rollout starts.
    pub start: Timestamp,
    /// How long simulated time may run.
    pub until: SignedDuration,
    /// One series per gate of the plan, in `spec.analysis.gates` order.
    pub series: Vec<Series>,
    /// Scheduled actions, ordered by offset (file order among equal offsets).
    pub events: Vec<ScenarioEvent>,
}

/// Reads a scenario file and checks it against the plan.
pub fn load_scenario(file: &Path, spec: &RolloutSpec) -> Result<Scenario, LoadError> {
    let raw: ScenarioFile = load_yaml(file, scenario_schema())?;
    from_file(raw, spec).map_err(|problems| LoadError::many(file, problems))
}

/// Parses a scenario's text and checks it against the plan; `file` names the source in
/// messages.
pub fn parse_scenario(file: &Path, text: &str, spec: &RolloutSpec) -> Result<Scenario, LoadError> {
    let raw: ScenarioFile = parse_yaml(file, text, scenario_schema())?;
    from_file(raw, spec).map_err(|problems| LoadError::many(file, problems))
}

/// The schema a scenario file is checked against before it is read (types, unknown fields).
fn scenario_schema() -> &'static serde_json::Value {
    static SCHEMA: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(generate_scenario_schema)
}

fn generate_scenario_schema() -> serde_json::Value {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator()
        .into_root_schema_for::<ScenarioFile>();
    serde_json::to_value(schema).unwrap_or(serde_json::Value::Null)
}

fn from_file(raw: ScenarioFile, spec: &RolloutSpec) -> Result<Scenario, Vec<String>> {
    let mut problems = Vec::new();
    let start = match raw.start.as_deref() {
        None => Timestamp::UNIX_EPOCH,
        Some(text) => text.parse::<Timestamp>().unwrap_or_else(|e| {
            problems.push(format!(
                "start: {text:?} is not an RFC 3339 time such as 2026-02-01T19:18:00Z ({e})"
            ));
            Timestamp::UNIX_EPOCH
        }),
    };
    let until = match &raw.until {
        None => DEFAULT_UNTIL,
        Some(text) => offset(text, "until", &mut problems),
    };

    let gate_names: Vec<&str> = spec
        .analysis
        .gates
        .iter()
        .map(|g| g.name.as_str())
        .collect();
    for name in raw.gates.keys() {
        if !gate_names.contains(&name.as_str()) {
            problems.push(format!(
                "{}: the plan has no gate named {name:?} (its gates: {})",
                child_path("gates", name),
                gate_names.join(", ")
            ));
        }
    }
    let mut series = Vec::with_capacity(gate_names.len());
    for name in &gate_names {
        match raw.gates.get(*name) {
            None => {
                problems.push(format!(
                    "gates: no series for the plan's gate {name:?}; every gate needs one"
                ));
                series.push(Series::default());
            }
            Some(points) => {
                let compare = spec
                    .analysis
                    .gates
                    .iter()
                    .any(|g| g.name == *name && g.compare.is_some());
                series.push(parse_series(name, points, compare, &mut problems))
            }
        }
    }

    let mut events = Vec::with_capacity(raw.events.len());
    for (i, event) in raw.events.iter().enumerate() {
        let at = offset(&event.at, &format!("events[{i}].at"), &mut problems);
        let action = match (event.action, event.percent) {
            (ActionWord::Drift, Some(p)) => match Percent::from_f64(p) {
                Ok(p) => ScenarioAction::Drift(p),
                Err(e) => {
                    problems.push(format!("events[{i}].percent: {e}"));
                    continue;
                }
            },
            (ActionWord::Drift, None) => {
                problems.push(format!(
                    "events[{i}]: a drift needs the percent found on the target (percent: N)"
                ));
                continue;
            }
            (_, Some(_)) => {
                problems.push(format!("events[{i}].percent: only a drift takes a percent"));
                continue;
            }
            (ActionWord::Pause, None) => ScenarioAction::Manual(ManualAction::Pause),
            (ActionWord::Resume, None) => ScenarioAction::Manual(ManualAction::Resume),
            (ActionWord::Promote, None) => ScenarioAction::Manual(ManualAction::Promote),
            (ActionWord::PromoteFull, None) => ScenarioAction::Manual(ManualAction::PromoteFull),
            (ActionWord::Abort, None) => ScenarioAction::Manual(ManualAction::Abort),
        };
        events.push(ScenarioEvent { at, action });
    }
    events.sort_by_key(|e| e.at);

    if let Err(problem) = check_budget(spec, until, SIMULATION_BUDGET)
        .and_then(|()| check_gate_evaluations(spec, until, SIMULATION_GATE_EVALUATIONS))
    {
        let field = if raw.until.is_some() {
            "until"
        } else {
            "until (default 30d)"
        };
        problems.push(format!("{field}: {problem}"));
    }

    if problems.is_empty() {
        Ok(Scenario {
            start,
            until,
            series,
            events,
        })
    } else {
        Err(problems)
    }
}

/// The most checkpoints one simulation may take.
pub const SIMULATION_BUDGET: u64 = 1_000_000;

/// The most gate evaluations (checkpoints × gates) one simulation may take: what its output
/// grows with.
pub const SIMULATION_GATE_EVALUATIONS: u64 = 4_000_000;

/// Refuses a run whose checkpoints × gates would pass `budget`, so a plan of many gates over a
/// long span gets a clear message instead of gigabytes of timeline.
pub fn check_gate_evaluations(
    spec: &RolloutSpec,
    span: SignedDuration,
    budget: u64,
) -> Result<(), String> {
    let interval = std::time::Duration::from(spec.analysis.interval).as_nanos();
    if interval == 0 {
        return Ok(());
    }
    let span_nanos = u128::try_from(span.as_nanos()).unwrap_or(0);
    let gates = spec.analysis.gates.len().max(1) as u128;
    let evaluations = (span_nanos / interval).saturating_mul(gates);
    if evaluations > u128::from(budget) {
        return Err(format!(
            "{} at an interval of {} with {gates} gate(s) is {evaluations} gate evaluations, \
             more than the {budget} allowed; shorten the span or lengthen spec.analysis.interval",
            crate::engine::compact(span.unsigned_abs()),
            crate::engine::compact(spec.analysis.interval.into()),
        ));
    }
    Ok(())
}

/// Refuses a run that would take more than `budget` checkpoints, so a plan with a tiny
/// interval over a long span gets a clear message instead of a run that never ends.
pub fn check_budget(spec: &RolloutSpec, span: SignedDuration, budget: u64) -> Result<(), String> {
    let interval = std::time::Duration::from(spec.analysis.interval).as_nanos();
    let span_nanos = u128::try_from(span.as_nanos()).unwrap_or(0);
    if interval == 0 {
        return Ok(());
    }
    let checkpoints = span_nanos / interval;
    if checkpoints > u128::from(budget) {
        return Err(format!(
            "{} at an interval of {} is {checkpoints} checkpoints, more than the {budget} allowed; \
             shorten the span or lengthen spec.analysis.interval",
            crate::engine::compact(span.unsigned_abs()),
            crate::engine::compact(spec.analysis.interval.into()),
        ));
    }
    Ok(())
}

fn parse_series(
    name: &str,
    points: &[PointFile],
    compare: bool,
    problems: &mut Vec<String>,
) -> Series {
    let mut parsed: Vec<(SignedDuration, Point)> = Vec::with_capacity(points.len());
    for (i, point) in points.iter().enumerate() {
        let field = format!("{}[{i}]", child_path("gates", name));
        let at = offset(&point.at, &format!("{field}.at"), problems);
        if let Some((previous, _)) = parsed.last()
            && at <= *previous
        {
            problems.push(format!(
                "{field}.at: entries must be in increasing order of time ({} does not follow {})",
                point.at,
                crate::engine::compact(previous.unsigned_abs())
            ));
        }
        let traffic = [point.traffic, point.treatment, point.control];
        if traffic.iter().any(Option::is_some) {
            match (compare, point.value, point.nodata, &point.error, traffic) {
                (false, ..) => problems.push(format!(
                    "{field}: traffic, treatment and control describe a compare gate's cohorts; \
                     {name:?} is not a compare gate, give a value"
                )),
                (true, None, None, None, [Some(t), Some(a), Some(b)]) => {
                    let mut fine = true;
                    if !(t.is_finite() && t >= 0.0) {
                        problems.push(format!(
                            "{field}.traffic: {t} is not a number of units per minute (0 or more)"
                        ));
                        fine = false;
                    }
                    for (arm, rate) in [("treatment", a), ("control", b)] {
                        if !(0.0..=1.0).contains(&rate) {
                            problems.push(format!(
                                "{field}.{arm}: {rate} is not an event rate between 0 and 1"
                            ));
                            fine = false;
                        }
                    }
                    if fine {
                        parsed.push((
                            at,
                            Point::Traffic(Traffic {
                                per_minute: t,
                                treatment: a,
                                control: b,
                            }),
                        ));
                    }
                }
                _ => problems.push(format!(
                    "{field}: give traffic, treatment and control together, and nothing else"
                )),
            }
            continue;
        }
        if compare && point.value.is_some() {
            problems.push(format!(
                "{field}.value: a compare gate's entries give traffic, treatment and control \
                 (or nodata: true, or error)"
            ));
            continue;
        }
        let observation = match (point.value, point.nodata, &point.error) {
            (Some(v), None, None) => Observation::Value(v),
            (None, Some(true), None) => Observation::NoData,
            (None, None, Some(message)) => Observation::Error(message.clone()),
            (None, Some(false), None) => {
                problems.push(format!(
                    "{field}.nodata: only `nodata: true` means anything; give a value instead"
                ));
                continue;
            }
            _ => {
                problems.push(format!(
                    "{field}: give exactly one of value, nodata: true and error"
                ));
                continue;
            }
        };
        parsed.push((at, Point::Observed(observation)));
    }
    Series::of_points(parsed)
}

/// An offset from the start: a duration of Go's grammar or with days (`3d`), not negative.
fn offset(text: &str, field: &str, problems: &mut Vec<String>) -> SignedDuration {
    match parse_nanos(text, Units::GoAndDays) {
        Err(problem) => {
            problems.push(format!("{field}: {problem}"));
            SignedDuration::ZERO
        }
        Ok(nanos) if nanos < 0 => {
            problems.push(format!(
                "{field}: {text:?} is negative; offsets count from the start"
            ));
            SignedDuration::ZERO
        }
        // At most 2^63 - 1 nanoseconds, so within SignedDuration's range.
        Ok(nanos) => i64::try_from(nanos).map_or(SignedDuration::MAX, SignedDuration::from_nanos),
    }
}
