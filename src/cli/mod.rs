//! Subcommands of the `rollgate` binary.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rollgate::telemetry::{LogFormat, init_logging};

mod backtest;
mod controller;
mod output;
mod report;
mod secret;
mod simulate;

/// Progressive delivery for feature flags: stages, gates, evidence.
///
/// Exit status: 0 ok, 1 `--expect` did not match, 2 bad input (a file, a flag or a plan
/// refused, or a run past a budget), 3 an I/O or environment failure (the output cannot be
/// written, something cannot be reached).
#[derive(Parser, Debug)]
#[command(name = "rollgate", version, about)]
pub struct Cli {
    /// How log lines are written to standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Which log lines are written, as a filter such as `info` or `rollgate=debug,kube=warn`
    /// (default: `RUST_LOG`, else `warn`).
    #[arg(long, global = true)]
    log_level: Option<String>,
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
    /// Write the release report of a Rollout in the cluster: plan, pre-checks, timeline,
    /// drift and final state as Markdown, with an SVG chart beside `--output FILE.md`.
    Report(report::ReportArgs),
    /// Run a plan on a virtual clock against a scenario of gate values and events.
    Simulate(simulate::SimulateArgs),
    /// Replay a plan over a real Prometheus' past: would it have caught last Tuesday's incident?
    Backtest(Box<backtest::BacktestArgs>),
}

/// The level of a command's own logs when neither `--log-level` nor `RUST_LOG` says: `warn`
/// for the one-shot commands, whose output is their result (a long-running command such as a
/// controller would say `info`). Every command gets its arm, so none is forgotten.
fn default_log_level(command: &Command) -> &'static str {
    match command {
        Command::Crd | Command::Simulate(_) | Command::Backtest(_) => "warn",
        Command::Controller(_) => "info",
        Command::Report(_) => "warn",
    }
}

/// Runs the parsed command and returns the process' exit status. Logging is initialised here,
/// once, for every command, from the global `--log-format` and `--log-level`.
pub fn run(cli: Cli) -> ExitCode {
    let default_level = default_log_level(&cli.command);
    if let Err(problem) = init_logging(cli.log_format, cli.log_level.as_deref(), default_level) {
        return output::bad_input(&format!("rollgate: {problem}"));
    }
    match cli.command {
        Command::Controller(args) => controller::controller(*args),
        Command::Report(args) => report::report(args),
        Command::Simulate(args) => simulate::simulate(args),
        Command::Backtest(args) => backtest::backtest(*args),
        Command::Crd => crd(),
    }
}

fn crd() -> ExitCode {
    let yaml = match rollgate::api::crd_yaml() {
        Ok(yaml) => yaml,
        Err(e) => {
            return output::environment_failure(&format!(
                "rollgate crd: cannot render the CRD: {e}"
            ));
        }
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(yaml.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => output::environment_failure(&format!("rollgate crd: cannot write the CRD: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_the_parsed_command_line_shows_no_secret() {
        let cli = Cli::try_parse_from([
            "rollgate",
            "backtest",
            "plan.yaml",
            "--prometheus",
            "http://127.0.0.1:9090",
            "--start",
            "2026-01-01T00:00:00Z",
            "--prometheus-token",
            "tok-s3cr3t",
            "--prometheus-username",
            "me",
            "--prometheus-password",
            "pw-s3cr3t",
            "--prometheus-header",
            "X-Scope-OrgID: hdr-s3cr3t",
        ])
        .expect("the command line parses");
        let debug = format!("{cli:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("X-Scope-OrgID"), "{debug}");
    }

    #[test]
    fn logging_flags_are_global() {
        let cli = Cli::try_parse_from([
            "rollgate",
            "crd",
            "--log-format",
            "json",
            "--log-level",
            "debug",
        ])
        .expect("the command line parses");
        assert_eq!(cli.log_format, LogFormat::Json);
        assert_eq!(cli.log_level.as_deref(), Some("debug"));
    }
}
