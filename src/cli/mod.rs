//! Subcommands of the `rollgate` binary.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod backtest;
mod controller;
mod output;
mod simulate;

/// Progressive delivery for feature flags: stages, gates, evidence.
#[derive(Parser, Debug)]
#[command(name = "rollgate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Carry Rollouts out in the cluster kubectl would use (KUBECONFIG, ~/.kube/config or
    /// in-cluster).
    Controller(Box<controller::ControllerArgs>),
    /// Print the Rollout CustomResourceDefinition as YAML.
    Crd,
    /// Run a plan on a virtual clock against a scenario of gate values and events.
    Simulate(simulate::SimulateArgs),
    /// Replay a plan over a real Prometheus' past: would it have caught last Tuesday's incident?
    Backtest(Box<backtest::BacktestArgs>),
}

/// Runs the parsed command and returns the process' exit status.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Controller(args) => controller::controller(*args),
        Command::Simulate(args) => simulate::simulate(args),
        Command::Backtest(args) => backtest::backtest(*args),
        Command::Crd => match rollgate::api::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rollgate crd: cannot render the CRD: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
