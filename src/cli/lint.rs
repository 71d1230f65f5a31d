//! `rollgate lint PATH…`: the checks `kubectl apply` and the controller would make, offline,
//! for the CI of a GitOps repository (see `rollgate::lint`): files, directories searched
//! recursively, and `-` for standard input (`kustomize build | rollgate lint -`).

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use rollgate::lint::{Format, collect, lint, render};

/// `rollgate lint`.
#[derive(Args, Debug, Clone)]
pub struct LintArgs {
    /// Files, directories (searched recursively for *.yaml, *.yml and *.json) or `-` for
    /// standard input. Documents that are not rollgate Rollouts are skipped and counted.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// How to print the report.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: LintOutput,
}

/// `--output` of `lint`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LintOutput {
    /// `FILE:LINE:COL: document N: FIELD: problem` lines and a summary.
    Text,
    /// One JSON object with the counts, the problems and the unreadable paths.
    Json,
    /// GitHub Actions annotations (`::error file=…,line=…,col=…::…`) and a summary.
    Github,
}

impl From<LintOutput> for Format {
    fn from(output: LintOutput) -> Self {
        match output {
            LintOutput::Text => Format::Text,
            LintOutput::Json => Format::Json,
            LintOutput::Github => Format::Github,
        }
    }
}

/// `rollgate lint` on the command line: exit 0 when every Rollout is valid, 2 when one is not
/// or a document cannot be parsed, 3 when a path cannot be read or the report not written.
pub fn run(args: LintArgs) -> std::process::ExitCode {
    let report = lint(collect(&args.paths));
    let text = render(&report, args.output.into());
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => std::process::ExitCode::from(report.exit_status()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            std::process::ExitCode::from(report.exit_status())
        }
        Err(e) => {
            eprintln!("rollgate lint: cannot write the report: {e}");
            std::process::ExitCode::from(super::kube_client::EXIT_ENVIRONMENT)
        }
    }
}
