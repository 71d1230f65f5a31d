//! The timeline a simulation or backtest prints: the event words and fields of docs/design.md §5,
//! as JSON lines or as text for a release log.

use std::io::{self, Write};

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde::ser::{SerializeSeq, SerializeStruct, Serializer};

use crate::api::{CheckpointVerdict, GateStatus, Percent, Phase, stage_label};
use crate::engine::{DriftAction, Transition, TransitionKind};
use crate::text::{REMOTE, capped, for_terminal};

/// One line of the timeline.
#[derive(Debug, Clone, Copy)]
pub enum TimelineEvent<'a> {
    /// The rollout started at stage 0.
    Start {
        at: Timestamp,
        stage: u32,
        percent: Percent,
    },
    /// A checkpoint: the gates' verdicts are in `gates`, in plan order.
    Checkpoint {
        at: Timestamp,
        stage: u32,
        percent: Percent,
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
        percent: Percent,
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

/// The most bytes one run may print (256 MiB): a month of per-minute checkpoints of a plan's
/// largest gate list prints far less.
pub const MAX_OUTPUT_BYTES: u64 = 256 * 1024 * 1024;

/// A run printed more than its output limit; it stopped there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the timeline reached {} bytes, the most one run may print; shorten the scenario's until or lengthen spec.analysis.interval",
    .0
)]
pub struct OutputLimitReached(pub u64);

impl OutputLimitReached {
    /// The limit behind an I/O error from [`TimelineWriter`], if that is what it was.
    pub fn in_error(error: &io::Error) -> Option<Self> {
        error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<Self>())
            .copied()
    }
}

/// Where a run sends its timeline events: a [`TimelineWriter`] that prints them, or something
/// that also records them (a release report is built from the same events).
pub trait TimelineSink {
    /// Takes one event, in the order the run produced it.
    fn write(&mut self, event: &TimelineEvent<'_>) -> io::Result<()>;
    /// Called once when the run ends.
    fn flush(&mut self) -> io::Result<()>;
}

impl<W: Write> TimelineSink for TimelineWriter<W> {
    fn write(&mut self, event: &TimelineEvent<'_>) -> io::Result<()> {
        TimelineWriter::write(self, event)
    }

    fn flush(&mut self) -> io::Result<()> {
        TimelineWriter::flush(self)
    }
}

/// Writes timeline events in a format, at most a limit of bytes.
pub struct TimelineWriter<W: Write> {
    out: Counting<W>,
    format: Format,
    start: Timestamp,
    stages: usize,
}

impl<W: Write> TimelineWriter<W> {
    /// A writer for a run of a plan of `stages` stages that started at `start` (text output
    /// shows offsets from it and counts stages from 1, "stage 2 of 3"; JSON keeps the 0-based
    /// index), limited to [`MAX_OUTPUT_BYTES`].
    pub fn new(out: W, format: Format, start: Timestamp, stages: usize) -> Self {
        Self::with_limit(out, format, start, stages, MAX_OUTPUT_BYTES)
    }

    /// A writer that refuses to print more than `limit` bytes: the write that would pass it
    /// fails with [`OutputLimitReached`].
    pub fn with_limit(out: W, format: Format, start: Timestamp, stages: usize, limit: u64) -> Self {
        Self {
            out: Counting {
                inner: out,
                written: 0,
                limit,
            },
            format,
            start,
            stages,
        }
    }

    /// Writes one event.
    pub fn write(&mut self, event: &TimelineEvent<'_>) -> io::Result<()> {
        match self.format {
            Format::Json => {
                serde_json::to_writer(&mut self.out, &JsonEvent(event))?;
                self.out.write_all(b"\n")
            }
            Format::Text => write_text(&mut self.out, self.start, self.stages, event),
        }
    }

    /// Flushes the output.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A writer that counts what passes and stops at a limit.
struct Counting<W> {
    inner: W,
    written: u64,
    limit: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        if self.written.saturating_add(len) > self.limit {
            return Err(io::Error::other(OutputLimitReached(self.limit)));
        }
        let n = self.inner.write(buf)?;
        self.written += u64::try_from(n).unwrap_or(u64::MAX);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
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

/// A compare gate's arm in a checkpoint line: `units`, `events`, `rate`.
struct ArmLine<'a>(&'a crate::api::CompareArm);

impl Serialize for ArmLine<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Arm", 3)?;
        st.serialize_field("units", &Value(self.0.units))?;
        st.serialize_field("events", &Value(self.0.events))?;
        st.serialize_field("rate", &Value(self.0.rate))?;
        st.end()
    }
}

impl Serialize for GateLine<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let gate = self.0;
        let verdict = gate.last_verdict.map_or("inconclusive", |v| v.as_str());
        let fields = 2
            + usize::from(gate.last_value.is_some())
            + usize::from(gate.last_message.is_some())
            + 4 * usize::from(gate.compare.is_some());
        let mut st = s.serialize_struct("Gate", fields)?;
        st.serialize_field("name", &capped(&gate.name, REMOTE))?;
        st.serialize_field("verdict", verdict)?;
        if let Some(v) = gate.last_value {
            st.serialize_field("value", &Value(v))?;
        } else {
            st.skip_field("value")?;
        }
        if let Some(m) = &gate.last_message {
            st.serialize_field("message", &capped(m, REMOTE))?;
        } else {
            st.skip_field("message")?;
        }
        if let Some(c) = &gate.compare {
            st.serialize_field("treatment", &ArmLine(&c.treatment))?;
            st.serialize_field("control", &ArmLine(&c.control))?;
            match c.difference {
                Some(d) => st.serialize_field("difference", &Value(d))?,
                None => st.skip_field("difference")?,
            }
            match c.half_width {
                Some(h) => st.serialize_field("halfWidth", &Value(h))?,
                None => st.skip_field("halfWidth")?,
            }
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
        (Some(reason), true) => st.serialize_field("reason", &capped(reason, REMOTE))?,
        _ => st.skip_field("reason")?,
    }
    st.end()
}

fn write_text<W: Write>(
    out: &mut W,
    start: Timestamp,
    stages: usize,
    event: &TimelineEvent<'_>,
) -> io::Result<()> {
    let label = |stage: u32| stage_label(stage, stages);
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
            writeln!(out, "{} at {percent}%", label(*stage))
        }
        TimelineEvent::Checkpoint {
            stage,
            percent,
            verdict,
            gates,
            ..
        } => {
            write!(
                out,
                "{} at {percent}%  {:<4}",
                label(*stage),
                verdict.as_str()
            )?;
            for (i, gate) in gates.iter().enumerate() {
                let sep = if i == 0 { "  " } else { ", " };
                let verdict = gate.last_verdict.map_or("inconclusive", |v| v.as_str());
                let name = for_terminal(&gate.name);
                match (&gate.last_value, &gate.last_message) {
                    (Some(v), _) => write!(out, "{sep}{name}={v} {verdict}")?,
                    (None, Some(m)) => write!(out, "{sep}{name} {verdict} ({})", for_terminal(m))?,
                    (None, None) => write!(out, "{sep}{name} {verdict}")?,
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
                write!(
                    out,
                    "{} at {}%",
                    label(transition.stage),
                    transition.percent
                )?;
                match &transition.reason {
                    Some(reason) => writeln!(out, "  {}", for_terminal(reason)),
                    None => writeln!(out),
                }
            }
        },
        TimelineEvent::Summary {
            phase,
            stage,
            percent,
            ..
        } => writeln!(out, "{} at {} ({percent}%)", phase.as_str(), label(*stage)),
    }
}

/// `+2h30m`, `+3d4h`, `+0s`: an offset from the start, compact.
pub fn offset_text(offset: SignedDuration) -> String {
    format!("+{}", crate::engine::compact(offset.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_stops_at_its_output_limit_with_a_clear_error() {
        let mut out = Vec::new();
        let mut timeline =
            TimelineWriter::with_limit(&mut out, Format::Json, Timestamp::UNIX_EPOCH, 1, 100);
        let start = TimelineEvent::Start {
            at: Timestamp::UNIX_EPOCH,
            stage: 0,
            percent: Percent::whole(1),
        };
        timeline.write(&start).expect("the first line fits");
        let error = timeline
            .write(&start)
            .expect_err("the second passes 100 bytes");
        assert_eq!(
            OutputLimitReached::in_error(&error),
            Some(OutputLimitReached(100))
        );
        assert!(
            error
                .to_string()
                .contains("100 bytes, the most one run may print")
        );
        assert!(out.len() <= 100);
    }

    #[test]
    fn untrusted_text_is_capped_and_cleaned_in_text_and_capped_in_json() {
        let hostile = format!("boom\u{1b}[2J\r\nforged line{}", "x".repeat(100_000));
        let gates = [GateStatus {
            name: "error-rate".to_owned(),
            last_verdict: Some(crate::api::GateVerdict::Error),
            last_message: Some(hostile),
            ..GateStatus::default()
        }];
        let checkpoint = TimelineEvent::Checkpoint {
            at: Timestamp::UNIX_EPOCH,
            stage: 0,
            percent: Percent::whole(1),
            verdict: CheckpointVerdict::Warn,
            gates: &gates,
        };
        let mut text = Vec::new();
        TimelineWriter::new(&mut text, Format::Text, Timestamp::UNIX_EPOCH, 1)
            .write(&checkpoint)
            .expect("written");
        let text = String::from_utf8(text).expect("UTF-8");
        assert_eq!(text.lines().count(), 1, "{text:?}");
        assert!(
            !text.trim_end_matches('\n').chars().any(char::is_control),
            "{text:?}"
        );
        assert!(text.len() < 1_000, "{} bytes", text.len());

        let mut json = Vec::new();
        TimelineWriter::new(&mut json, Format::Json, Timestamp::UNIX_EPOCH, 1)
            .write(&checkpoint)
            .expect("written");
        let line: serde_json::Value = serde_json::from_slice(&json).expect("valid JSON");
        let message = line["gates"][0]["message"].as_str().expect("a message");
        assert!(
            message.starts_with("boom\u{1b}[2J\r\nforged"),
            "{message:?}"
        );
        assert_eq!(message.chars().count(), crate::text::REMOTE + 1);
    }
}
