//! `rollgate simulate`: the engine on a virtual clock, gate values from a scenario file.

use std::io::{self, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use rollgate::sim::load::load_rollout;
use rollgate::sim::scenario::load_scenario;
use rollgate::sim::timeline::TimelineWriter;
use rollgate::sim::{SeriesSource, run};

use rollgate::report::{Recorder, Source};

use super::output::{ExpectedPhase, OutputFormat, finish};
use super::report::{file_name, write_report_file};

/// Arguments of `rollgate simulate`.
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// The Rollout manifest (YAML).
    rollout: PathBuf,
    /// The scenario: gate values over time and scheduled actions (YAML).
    #[arg(long)]
    scenario: PathBuf,
    /// How to print the timeline.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    /// Exit with status 1 unless the run ends in this phase.
    #[arg(long, value_enum)]
    expect: Option<ExpectedPhase>,
    /// Also write a release report to this Markdown file, and its chart beside it (same name,
    /// `.svg`).
    #[arg(long, value_name = "FILE.md")]
    report: Option<PathBuf>,
}

/// Runs the simulation; exit status 0, 1 when `--expect` differs, 2 on bad input (or a run
/// past its output limit), 3 when the timeline cannot be written.
pub fn simulate(args: SimulateArgs) -> ExitCode {
    let rollout = match load_rollout(&args.rollout) {
        Ok(rollout) => rollout,
        Err(e) => return super::output::bad_input(&e),
    };
    let scenario = match load_scenario(&args.scenario, &rollout.spec) {
        Ok(scenario) => scenario,
        Err(e) => return super::output::bad_input(&e),
    };
    tracing::info!(
        plan = %args.rollout.display(),
        scenario = %args.scenario.display(),
        gates = rollout.spec.analysis.gates.len(),
        "simulating"
    );
    let stdout = io::stdout().lock();
    let mut timeline = TimelineWriter::new(
        BufWriter::new(stdout),
        args.output.into(),
        scenario.start,
        rollout.spec.stages.len(),
    );
    let mut source = SeriesSource::new(scenario.start, &scenario.series);
    let report_source = Source::Simulation {
        plan: file_name(&args.rollout),
        scenario: file_name(&args.scenario),
    };
    let summary = match &args.report {
        None => run(&rollout.spec, &scenario, &mut source, &mut timeline),
        Some(path) => {
            let mut recorder = Recorder::new(&mut timeline);
            let summary = run(&rollout.spec, &scenario, &mut source, &mut recorder);
            let report = recorder.into_report(&rollout, report_source);
            if summary.is_ok()
                && let Err(code) = write_report_file(&report, path, "simulate")
            {
                return code;
            }
            summary
        }
    };
    if let Ok(summary) = &summary {
        tracing::info!(
            phase = summary.phase.as_str(),
            stage = summary.stage,
            "run ended"
        );
    }
    finish("simulate", summary, args.expect)
}
