//! What `simulate` and `backtest` share on the command line: formats, `--expect`, exit codes.

use std::io;
use std::process::ExitCode;

use clap::ValueEnum;
use rollgate::api::Phase;
use rollgate::sim::RunSummary;
use rollgate::sim::timeline::Format;

/// `--output`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// A readable timeline for a release log.
    Text,
    /// One JSON object per line.
    Json,
}

impl From<OutputFormat> for Format {
    fn from(format: OutputFormat) -> Self {
        match format {
            OutputFormat::Text => Format::Text,
            OutputFormat::Json => Format::Json,
        }
    }
}

/// `--expect`: the phase a run must end in.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "PascalCase")]
pub enum ExpectedPhase {
    /// Still moving through the stages when simulated time ran out.
    Progressing,
    /// Paused when simulated time ran out.
    Paused,
    /// Every stage passed.
    Succeeded,
    /// Rolled back.
    RolledBack,
}

impl From<ExpectedPhase> for Phase {
    fn from(phase: ExpectedPhase) -> Self {
        match phase {
            ExpectedPhase::Progressing => Phase::Progressing,
            ExpectedPhase::Paused => Phase::Paused,
            ExpectedPhase::Succeeded => Phase::Succeeded,
            ExpectedPhase::RolledBack => Phase::RolledBack,
        }
    }
}

/// Exit status 2, after the message naming the file, field and problem.
pub fn bad_input(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("{error}");
    ExitCode::from(2)
}

/// Turns a run's result into the exit status: 1 when `--expect` names another phase.
pub fn finish(
    command: &str,
    summary: io::Result<RunSummary>,
    expect: Option<ExpectedPhase>,
) -> ExitCode {
    match summary {
        Ok(summary) => match expect.map(Phase::from) {
            Some(expected) if expected != summary.phase => {
                eprintln!(
                    "rollgate {command}: expected phase {}, ended {}",
                    expected.as_str(),
                    summary.phase.as_str()
                );
                ExitCode::FAILURE
            }
            _ => ExitCode::SUCCESS,
        },
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rollgate {command}: cannot write the timeline: {e}");
            ExitCode::FAILURE
        }
    }
}
