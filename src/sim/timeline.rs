//! The timeline a simulation or backtest prints: the event words and fields of DESIGN §5,
//! as JSON lines or as text for a release log.

use std::io::{self, Write};

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde::ser::{SerializeSeq, SerializeStruct, Serializer};

use crate::api::{CheckpointVerdict, GateStatus, Phase};
use crate::engine::{DriftAction, Transition, TransitionKind};

/// One line of the timeline.
#[derive(Debug, Clone, Copy)]
pub enum TimelineEvent<'a> {
    /// The rollout started at stage 0.
    Start {
        at: Timestamp,
        stage: u32,
        percent: u8,
    },
    /// A checkpoint: the gates' verdicts are in `gates`, in plan order.
    Checkpoint {
        at: Timestamp,
        stage: u32,
        percent: u8,
        verdict: CheckpointVerdict,
        gates: &'a [GateStatus],
    },
    /// A change of stage, phase or target.
    Transition {
        at: Timestamp,
        transition: &'a Transition,
    },
    /// The end of the run.
    Summary {
        at: Timestamp,
        phase: Phase,
        stage: u32,
        percent: u8,
    },
}

/// Output format of a timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// Aligned text for people.
    Text,
}

/// Writes timeline events in a format.
pub struct TimelineWriter<W: Write> {
    out: W,
    format: Format,
    start: Timestamp,
}

impl<W: Write> TimelineWriter<W> {
    /// A writer for a run that started at `start` (text output shows offsets from it).
    pub fn new(out: W, format: Format, start: Timestamp) -> Self {
        Self { out, format, start }
    }

    /// Writes one event.
    pub fn write(&mut self, event: &TimelineEvent<'_>) -> io::Result<()> {
        match self.format {
            Format::Json => {
                serde_json::to_writer(&mut self.out, &JsonEvent(event))?;
                self.out.write_all(b"\n")
            }
            Format::Text => write_text(&mut self.out, self.start, event),
        }
    }

    /// Flushes the output.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

struct JsonEvent<'e, 'a>(&'e TimelineEvent<'a>);

struct At(Timestamp);

impl Serialize for At {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// A gate value: a number, or `"+Inf"`/`"-Inf"` as Prometheus writes them, since JSON has no
/// infinities.
struct Value(f64);

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_finite() {
            s.serialize_f64(self.0)
        } else if self.0 > 0.0 {
            s.serialize_str("+Inf")
        } else {
            s.serialize_str("-Inf")
        }
    }
}

struct Gates<'a>(&'a [GateStatus]);

impl Serialize for Gates<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for gate in self.0 {
            seq.serialize_element(&GateLine(gate))?;
        }
        seq.end()
    }
}

struct GateLine<'a>(&'a GateStatus);

impl Serialize for GateLine<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let gate = self.0;
        let verdict = gate.last_verdict.map_or("inconclusive", |v| v.as_str());
        let fields =
            2 + usize::from(gate.last_value.is_some()) + usize::from(gate.last_message.is_some());
        let mut st = s.serialize_struct("Gate", fields)?;
        st.serialize_field("name", &gate.name)?;
        st.serialize_field("verdict", verdict)?;
        if let Some(v) = gate.last_value {
            st.serialize_field("value", &Value(v))?;
        } else {
            st.skip_field("value")?;
        }
        if let Some(m) = &gate.last_message {
            st.serialize_field("message", m)?;
        } else {
            st.skip_field("message")?;
        }
        st.end()
    }
}

impl Serialize for JsonEvent<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self.0 {
            TimelineEvent::Start { at, stage, percent } => {
                let mut st = s.serialize_struct("Event", 4)?;
                st.serialize_field("event", "start")?;
                st.serialize_field("at", &At(at))?;
                st.serialize_field("stage", &stage)?;
                st.serialize_field("percent", &percent)?;
                st.end()
            }
            TimelineEvent::Checkpoint {
                at,
                stage,
                percent,
                verdict,
                gates,
            } => {
                let mut st = s.serialize_struct("Event", 6)?;
                st.serialize_field("event", "checkpoint")?;
                st.serialize_field("at", &At(at))?;
                st.serialize_field("stage", &stage)?;
                st.serialize_field("percent", &percent)?;
                st.serialize_field("verdict", verdict.as_str())?;
                st.serialize_field("gates", &Gates(gates))?;
                st.end()
            }
            TimelineEvent::Transition { at, transition } => serialize_transition(s, at, transition),
            TimelineEvent::Summary {
                at,
                phase,
                stage,
                percent,
            } => {
                let mut st = s.serialize_struct("Event", 5)?;
                st.serialize_field("event", "summary")?;
                st.serialize_field("at", &At(at))?;
                st.serialize_field("phase", phase.as_str())?;
                st.serialize_field("stage", &stage)?;
                st.serialize_field("percent", &percent)?;
                st.end()
            }
        }
    }
}

fn serialize_transition<S: Serializer>(
    s: S,
    at: Timestamp,
    transition: &Transition,
) -> Result<S::Ok, S::Error> {
    if let TransitionKind::Drift {
        expected,
        actual,
        action,
    } = transition.kind
    {
        let mut st = s.serialize_struct("Event", 5)?;
        st.serialize_field("event", "drift")?;
        st.serialize_field("at", &At(at))?;
        st.serialize_field("expected", &expected)?;
        st.serialize_field("actual", &actual)?;
        st.serialize_field("action", action.as_str())?;
        return st.end();
    }
    let with_reason = !matches!(
        transition.kind,
        TransitionKind::Start | TransitionKind::Resume | TransitionKind::Complete
    );
    let mut st = s.serialize_struct("Event", 5)?;
    st.serialize_field("event", transition.kind.as_str())?;
    st.serialize_field("at", &At(at))?;
    st.serialize_field("stage", &transition.stage)?;
    st.serialize_field("percent", &transition.percent)?;
    match (&transition.reason, with_reason) {
        (Some(reason), true) => st.serialize_field("reason", reason)?,
        _ => st.skip_field("reason")?,
    }
    st.end()
}

fn write_text<W: Write>(
    out: &mut W,
    start: Timestamp,
    event: &TimelineEvent<'_>,
) -> io::Result<()> {
    let (at, word) = match event {
        TimelineEvent::Start { at, .. } => (*at, "start"),
        TimelineEvent::Checkpoint { at, .. } => (*at, "checkpoint"),
        TimelineEvent::Transition { at, transition } => (*at, transition.kind.as_str()),
        TimelineEvent::Summary { at, .. } => (*at, "summary"),
    };
    write!(
        out,
        "{at}  {:>9}  {word:<10}  ",
        offset_text(at.duration_since(start))
    )?;
    match event {
        TimelineEvent::Start { stage, percent, .. } => {
            writeln!(out, "stage {stage} at {percent}%")
        }
        TimelineEvent::Checkpoint {
            stage,
            percent,
            verdict,
            gates,
            ..
        } => {
            write!(out, "stage {stage} at {percent}%  {:<4}", verdict.as_str())?;
            for (i, gate) in gates.iter().enumerate() {
                let sep = if i == 0 { "  " } else { ", " };
                let verdict = gate.last_verdict.map_or("inconclusive", |v| v.as_str());
                match (&gate.last_value, &gate.last_message) {
                    (Some(v), _) => write!(out, "{sep}{}={v} {verdict}", gate.name)?,
                    (None, Some(m)) => write!(out, "{sep}{} {verdict} ({m})", gate.name)?,
                    (None, None) => write!(out, "{sep}{} {verdict}", gate.name)?,
                }
            }
            writeln!(out)
        }
        TimelineEvent::Transition { transition, .. } => match transition.kind {
            TransitionKind::Drift {
                expected,
                actual,
                action,
            } => {
                let done = match action {
                    DriftAction::Reverted => "wrote it back",
                    DriftAction::Paused => "left it and paused",
                };
                writeln!(out, "target at {actual}%, expected {expected}%: {done}")
            }
            _ => {
                write!(out, "stage {} at {}%", transition.stage, transition.percent)?;
                match &transition.reason {
                    Some(reason) => writeln!(out, "  {reason}"),
                    None => writeln!(out),
                }
            }
        },
        TimelineEvent::Summary {
            phase,
            stage,
            percent,
            ..
        } => writeln!(out, "{} at stage {stage} ({percent}%)", phase.as_str()),
    }
}

/// `+2h30m`, `+3d4h`, `+0s`: an offset from the start, compact.
pub fn offset_text(offset: SignedDuration) -> String {
    format!("+{}", crate::engine::compact(offset.unsigned_abs()))
}
