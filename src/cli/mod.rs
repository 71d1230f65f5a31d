//! Subcommands of the `rollgate` binary.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use rollgate::engine::ManualAction;
use rollgate::telemetry::{LogFormat, init_logging};

mod action;
mod backtest;
mod completions;
mod controller;
mod get;
mod kube_client;
mod lint;
mod output;
mod report;
mod secret;
mod simulate;
mod status;
mod table;

/// Progressive delivery for feature flags: stages, gates, evidence.
///
/// Exit status: 0 ok, 1 `--expect` did not match (or, for `status`, the rollout rolled back or
/// its spec was refused), 2 bad input (a file, a flag or a plan refused, a Rollout not found,
/// an action that makes no sense in the rollout's phase, or a run past a budget), 3 an I/O or
/// environment failure (the output cannot be written, the cluster cannot be reached).
///
/// Installed as `kubectl-rollgate` it is a kubectl plugin: `kubectl rollgate status NAME`.
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
    /// Where a Rollout stands: phase, stage, bake time, gates, latest history; `-w` follows
    /// it until it ends. Exit 1 when it rolled back or its spec was refused.
    Status(status::StatusArgs),
    /// Hold a Rollout: nothing advances; checkpoints go on and a failing gate still rolls back.
    Pause(action::PauseArgs),
    /// Let a paused Rollout go on.
    Resume(action::PauseArgs),
    /// Advance a Rollout to its next stage now (or complete it at the last), whatever the bake
    /// time.
    Promote(action::ActionArgs),
    /// Roll a Rollout back now.
    Abort(action::ActionArgs),
    /// Start a rolled-back Rollout again from its first stage.
    Retry(action::ActionArgs),
    /// One Rollout as the printer-column table, or as YAML or JSON.
    Get(get::GetArgs),
    /// The Rollouts of a namespace (or of all) as the printer-column table.
    List(get::ListArgs),
    /// Check Rollout manifests offline (files, directories, stdin; schema, plan rules, CEL), for CI.
    Lint(lint::LintArgs),
    /// Print a shell completion script.
    Completions(completions::CompletionsArgs),
}

/// The program's name in help and usage, from how it was invoked: installed as
/// `kubectl-rollgate`, it is the kubectl plugin `kubectl rollgate`.
fn program_name(argv0: Option<&std::ffi::OsStr>) -> String {
    let file = argv0
        .and_then(|a| std::path::Path::new(a).file_stem())
        .and_then(|f| f.to_str())
        .unwrap_or("rollgate");
    match file.strip_prefix("kubectl-") {
        Some(plugin) => format!("kubectl {plugin}"),
        None => file.to_owned(),
    }
}

/// Parses the process' arguments, naming the program as it was invoked.
pub fn parse() -> Cli {
    let argv0 = std::env::args_os().next();
    let command = Cli::command().bin_name(program_name(argv0.as_deref()));
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// The level of a command's own logs when neither `--log-level` nor `RUST_LOG` says: `warn`
/// for the one-shot commands, whose output is their result (a long-running command such as a
/// controller would say `info`). Every command gets its arm, so none is forgotten.
fn default_log_level(command: &Command) -> &'static str {
    match command {
        Command::Crd
        | Command::Simulate(_)
        | Command::Backtest(_)
        | Command::Status(_)
        | Command::Pause(_)
        | Command::Resume(_)
        | Command::Promote(_)
        | Command::Abort(_)
        | Command::Retry(_)
        | Command::Get(_)
        | Command::List(_)
        | Command::Lint(_)
        | Command::Completions(_) => "warn",
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
        Command::Status(args) => status::run(args),
        Command::Pause(args) => pause_or_resume(ManualAction::Pause, &args),
        Command::Resume(args) => pause_or_resume(ManualAction::Resume, &args),
        Command::Promote(args) => one_shot(ManualAction::Promote, &args),
        Command::Abort(args) => one_shot(ManualAction::Abort, &args),
        Command::Retry(args) => one_shot(ManualAction::Retry, &args),
        Command::Get(args) => get::run_get(args),
        Command::List(args) => get::run_list(args),
        Command::Lint(args) => lint::run(args),
        Command::Completions(args) => {
            let argv0 = std::env::args_os().next();
            let file = argv0
                .as_deref()
                .and_then(|a| std::path::Path::new(a).file_stem())
                .and_then(|f| f.to_str())
                .unwrap_or("rollgate")
                .to_owned();
            completions::run(&args, Cli::command(), &file)
        }
    }
}

fn pause_or_resume(action: ManualAction, args: &action::PauseArgs) -> ExitCode {
    let via = if args.gitops {
        action::Via::SpecPaused
    } else {
        action::Via::Annotation
    };
    action::run(action, &args.name, args.namespace.namespace.as_deref(), via)
}

fn one_shot(action: ManualAction, args: &action::ActionArgs) -> ExitCode {
    action::run(
        action,
        &args.name,
        args.namespace.namespace.as_deref(),
        action::Via::Annotation,
    )
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
    fn a_kubectl_plugin_is_named_as_kubectl_calls_it() {
        use std::ffi::OsStr;
        let name = |a: &str| program_name(Some(OsStr::new(a)));
        assert_eq!(name("/usr/local/bin/kubectl-rollgate"), "kubectl rollgate");
        assert_eq!(name("kubectl-rollgate.exe"), "kubectl rollgate");
        assert_eq!(name("./target/debug/rollgate"), "rollgate");
        assert_eq!(program_name(None), "rollgate");
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
