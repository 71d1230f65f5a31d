//! What `simulate` and `backtest` share on the command line: formats, `--expect`, exit codes.

use std::io;
use std::process::ExitCode;

use clap::ValueEnum;
use rollgate::api::Phase;
use rollgate::sim::RunSummary;
use rollgate::sim::timeline::{Format, OutputLimitReached};

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

/// Exit status when `--expect` names another phase than the run ended in.
pub const EXIT_EXPECT_MISMATCH: u8 = 1;
/// Exit status for bad input: a file, a flag or a plan rollgate refuses, or a run that would
/// pass a budget.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit status for an I/O or environment failure: the output cannot be written, something
/// cannot be reached or started.
pub const EXIT_ENVIRONMENT: u8 = 3;

/// Exit status 2, after the message naming the file, field and problem.
pub fn bad_input(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("{error}");
    ExitCode::from(EXIT_BAD_INPUT)
}

/// Exit status 3, after the message saying what could not be done.
pub fn environment_failure(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("{error}");
    ExitCode::from(EXIT_ENVIRONMENT)
}

/// Turns a run's result into the exit status: 1 when `--expect` names another phase, 2 when
/// the run passed its output limit, 3 when the timeline could not be written.
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
                ExitCode::from(EXIT_EXPECT_MISMATCH)
            }
            _ => ExitCode::SUCCESS,
        },
        // A reader that stopped early (`| head`) got what it asked for.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => match OutputLimitReached::in_error(&e) {
            Some(limit) => bad_input(&format!("rollgate {command}: {limit}")),
            None => environment_failure(&format!(
                "rollgate {command}: cannot write the timeline: {e}"
            )),
        },
    }
}
