//! Subcommands of the `rollgate` binary.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use rollgate::engine::ManualAction;
use rollgate::telemetry::{LogFormat, init_logging};

mod action;
mod backtest;
mod complete;
mod completions;
mod controller;
mod docs;
mod get;
mod kube_client;
mod lint;
mod output;
mod prometheus_auth;
mod report;
mod secret;
mod simulate;
mod status;
mod table;
mod version;

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
    /// Where a Rollout stands: phase, stage, bake time, gates, latest history; `-w` follows
    /// it until it ends (`--timeout`: exit 4 when it has not). Exit 1 when it rolled back or
    /// its spec was refused.
    #[command(display_order = 1)]
    Status(status::StatusArgs),
    /// One Rollout as the printer-column table (`-o wide`), its name, or as YAML or JSON.
    #[command(display_order = 2)]
    Get(get::GetArgs),
    /// The Rollouts of a namespace (or of all) as the printer-column table.
    #[command(display_order = 3)]
    List(get::ListArgs),
    /// Hold a Rollout: nothing advances; checkpoints go on and a failing gate still rolls back.
    #[command(display_order = 4)]
    Pause(action::PauseArgs),
    /// Let a paused Rollout go on.
    #[command(display_order = 5)]
    Resume(action::PauseArgs),
    /// Advance a Rollout to its next stage now (or complete it at the last), whatever the bake
    /// time; `--full` goes to the last stage at once.
    #[command(display_order = 6)]
    Promote(action::PromoteArgs),
    /// Roll a Rollout back now.
    #[command(display_order = 7)]
    Abort(action::ActionArgs),
    /// Start a rolled-back Rollout again from its first stage.
    #[command(display_order = 8)]
    Retry(action::ActionArgs),
    /// Check Rollout manifests offline (files, directories, stdin; schema, plan rules, CEL), for CI.
    #[command(display_order = 9)]
    Lint(lint::LintArgs),
    /// Run a plan on a virtual clock against a scenario of gate values and events.
    #[command(display_order = 10)]
    Simulate(simulate::SimulateArgs),
    /// Replay a plan over a real Prometheus' past: would it have caught last Tuesday's incident?
    #[command(display_order = 11)]
    Backtest(Box<backtest::BacktestArgs>),
    /// Write the release report of a Rollout in the cluster: plan, pre-checks, timeline,
    /// drift and final state as Markdown, with an SVG chart beside `--output FILE.md`.
    #[command(display_order = 12)]
    Report(report::ReportArgs),
    /// Print the client's version and the controller's (from its Deployment's image).
    #[command(display_order = 13)]
    Version(version::VersionArgs),
    /// Print a shell completion script (completes commands, flags and Rollout names).
    #[command(display_order = 14)]
    Completions(completions::CompletionsArgs),
    /// Print the Rollout CustomResourceDefinition as YAML.
    #[command(display_order = 15)]
    Crd,
    /// Carry Rollouts out in the cluster kubectl would use (KUBECONFIG, ~/.kube/config or
    /// in-cluster).
    #[command(display_order = 16)]
    Controller(Box<controller::ControllerArgs>),
    /// Print a generated reference (the CRD's fields, the command line) as Markdown, the text
    /// `docs/reference/` holds.
    #[command(hide = true)]
    Docs(docs::DocsArgs),
}

/// The commands whose help shows `--log-format` and `--log-level`: those that write logs
/// worth tuning. The flags are global (accepted everywhere, before or after the command);
/// elsewhere they are hidden from the help.
const LOGGING_COMMANDS: [&str; 7] = [
    "controller",
    "simulate",
    "backtest",
    "report",
    "status",
    "get",
    "list",
];

/// The command line's definition, as `parse` and the completions use it: the global logging
/// flags hidden from the help of the commands not in [`LOGGING_COMMANDS`], and the hidden
/// `__complete` subcommand.
pub fn command() -> clap::Command {
    let mut command = Cli::command().subcommand(
        clap::Command::new(complete::COMPLETE_SUBCOMMAND)
            .hide(true)
            .about("Complete the words given (kubectl's plugin completion protocol)")
            .arg(
                clap::Arg::new("words")
                    .num_args(0..)
                    .trailing_var_arg(true)
                    .allow_hyphen_values(true),
            ),
    );
    let hidden: Vec<clap::Arg> = command
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.clone().hide(true))
        .collect();
    let quiet: Vec<String> = command
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .filter(|name| !LOGGING_COMMANDS.contains(&name.as_str()))
        .collect();
    // A subcommand that has its own copy of a global flag keeps it (clap propagates a global
    // flag only where it is missing): a hidden copy hides it from that help alone.
    for name in quiet {
        let hidden = hidden.clone();
        command = command.mut_subcommand(name, |sub| sub.args(hidden));
    }
    command
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

/// What the process was asked to do.
pub enum Invocation {
    /// A command.
    Run(Box<Cli>),
    /// A completion request: the words to complete (kubectl's plugin protocol).
    Complete(Vec<std::ffi::OsString>),
}

/// Parses the process' arguments, naming the program as it was invoked. A completion request
/// (`COMPLETE=SHELL`, answered here and exited; `kubectl_complete-rollgate WORD…` or
/// `rollgate __complete WORD…`) is recognised first.
pub fn parse() -> Invocation {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let argv0 = args.first().cloned();
    let stem = argv0
        .as_deref()
        .and_then(|a| std::path::Path::new(a).file_stem())
        .and_then(|f| f.to_str())
        .unwrap_or("rollgate")
        .to_owned();
    if stem == complete::KUBECTL_COMPLETE {
        return Invocation::Complete(args.split_off(1.min(args.len())));
    }
    if args
        .get(1)
        .is_some_and(|a| a == complete::COMPLETE_SUBCOMMAND)
    {
        return Invocation::Complete(args.split_off(2));
    }
    let bin = program_name(argv0.as_deref());
    clap_complete::CompleteEnv::with_factory(move || command().bin_name(bin.clone())).complete();
    let matches = command()
        .bin_name(program_name(argv0.as_deref()))
        .get_matches_from(args);
    Invocation::Run(Box::new(
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()),
    ))
}

/// Answers a completion request in kubectl's plugin protocol (see [`complete`]).
pub fn complete_words(words: &[std::ffi::OsString]) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match complete::kubectl_complete(&mut command(), words, &mut stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => output::environment_failure(&format!("rollgate: cannot write completions: {e}")),
    }
}

/// The level of a command's own logs when neither `--log-level` nor `RUST_LOG` says: `warn`
/// for the one-shot commands, whose output is their result (a long-running command such as a
/// controller would say `info`). Every command gets its arm, so none is forgotten.
fn default_log_level(command: &Command) -> &'static str {
    match command {
        Command::Crd
        | Command::Docs(_)
        | Command::Simulate(_)
        | Command::Backtest(_)
        | Command::Lint(_)
        | Command::Completions(_) => "warn",
        // The operator commands print their own one-line failure: kube's client would say
        // the same again as an ERROR log line.
        Command::Version(_)
        | Command::Status(_)
        | Command::Pause(_)
        | Command::Resume(_)
        | Command::Promote(_)
        | Command::Abort(_)
        | Command::Retry(_)
        | Command::Get(_)
        | Command::List(_) => "warn,kube_client=off",
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
        Command::Docs(args) => docs::run(&args),
        Command::Status(args) => status::run(args),
        Command::Version(args) => version::run(args),
        Command::Pause(args) => pause_or_resume(ManualAction::Pause, &args),
        Command::Resume(args) => pause_or_resume(ManualAction::Resume, &args),
        Command::Promote(args) => {
            let action = if args.full {
                ManualAction::PromoteFull
            } else {
                ManualAction::Promote
            };
            action::run(action, &args.name, &args.kube, action::Via::Annotation)
        }
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
            completions::run(&args, command(), &file)
        }
    }
}

fn pause_or_resume(action: ManualAction, args: &action::PauseArgs) -> ExitCode {
    let via = if args.gitops {
        action::Via::SpecPaused
    } else {
        action::Via::Annotation
    };
    action::run(action, &args.name, &args.kube, via)
}

fn one_shot(action: ManualAction, args: &action::ActionArgs) -> ExitCode {
    action::run(action, &args.name, &args.kube, action::Via::Annotation)
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

    #[test]
    fn help_lists_the_persons_commands_first_and_controller_last() {
        let help = command().render_help().to_string();
        let order = [
            "status",
            "get",
            "list",
            "pause",
            "resume",
            "promote",
            "abort",
            "retry",
            "lint",
            "simulate",
            "backtest",
            "report",
            "version",
            "completions",
            "crd",
            "controller",
        ];
        let positions: Vec<usize> = order
            .iter()
            .map(|name| {
                help.find(&format!("\n  {name} "))
                    .unwrap_or_else(|| panic!("{name} is not listed: {help}"))
            })
            .collect();
        assert!(positions.is_sorted(), "{help}");
        assert!(!help.contains("__complete"), "{help}");
    }

    #[test]
    fn logging_flags_show_only_where_they_matter() {
        let mut definition = command();
        definition.build();
        let mut help = |name: &str| {
            definition
                .find_subcommand_mut(name)
                .unwrap_or_else(|| panic!("no {name}"))
                .render_help()
                .to_string()
        };
        for name in LOGGING_COMMANDS {
            assert!(help(name).contains("--log-level"), "{name}");
        }
        for name in ["crd", "promote", "pause", "lint", "completions", "version"] {
            let text = help(name);
            assert!(!text.contains("--log-level"), "{name}: {text}");
            assert!(!text.contains("--log-format"), "{name}: {text}");
        }
        // Still accepted there, before or after the command.
        for args in [
            ["rollgate", "crd", "--log-level", "debug"],
            ["rollgate", "--log-level", "debug", "crd"],
        ] {
            let matches = command().try_get_matches_from(args).expect("parses");
            let cli = Cli::from_arg_matches(&matches).expect("a command line");
            assert_eq!(cli.log_level.as_deref(), Some("debug"));
        }
    }

    #[test]
    fn operator_commands_take_kubectls_connection_flags() {
        for name in [
            "status", "get", "list", "pause", "resume", "promote", "abort", "retry", "report",
        ] {
            let mut command = command();
            let sub = command.find_subcommand_mut(name).expect("a command");
            for flag in [
                "kubeconfig",
                "context",
                "cluster",
                "user",
                "as",
                "as-group",
                "namespace",
                "request-timeout",
            ] {
                assert!(
                    sub.get_arguments().any(|a| a.get_long() == Some(flag)),
                    "{name} lacks --{flag}"
                );
            }
        }
        let cli = Cli::try_parse_from([
            "rollgate",
            "list",
            "-A",
            "--as",
            "jane",
            "--as-group",
            "a",
            "--as-group",
            "b",
        ])
        .expect("parses");
        let Command::List(list) = cli.command else {
            panic!("list")
        };
        assert!(list.listing.all_namespaces);
        assert_eq!(list.listing.kube.as_user.as_deref(), Some("jane"));
        assert_eq!(list.listing.kube.as_group, ["a", "b"]);
        assert!(Cli::try_parse_from(["rollgate", "list", "-A", "-n", "x"]).is_err());
    }
}
