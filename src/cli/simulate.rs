//! `rollgate simulate`: the engine on a virtual clock, gate values from a scenario file.

use std::io::{self, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use rollgate::sim::load::load_rollout;
use rollgate::sim::scenario::load_scenario;
use rollgate::sim::timeline::TimelineWriter;
use rollgate::sim::{SeriesSource, run};

use super::output::{ExpectedPhase, OutputFormat, finish};

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
    let mut timeline =
        TimelineWriter::new(BufWriter::new(stdout), args.output.into(), scenario.start);
    let mut source = SeriesSource::new(scenario.start, &scenario.series);
    let summary = run(&rollout.spec, &scenario, &mut source, &mut timeline);
    if let Ok(summary) = &summary {
        tracing::info!(
            phase = summary.phase.as_str(),
            stage = summary.stage,
            "run ended"
        );
    }
    finish("simulate", summary, args.expect)
}
