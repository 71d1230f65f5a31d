//! `rollgate docs crd|cli` (hidden): the generated references `docs/reference/` holds.

use std::io::Write;
use std::process::ExitCode;

use kube::CustomResourceExt;
use rollgate::api::Rollout;

use super::output;

/// Arguments of `rollgate docs`.
#[derive(clap::Args, Debug)]
pub struct DocsArgs {
    /// Which reference to print.
    #[arg(value_enum)]
    reference: Reference,
}

/// A generated reference.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Reference {
    /// The Rollout CRD's fields (`docs/reference/rollout.md`).
    Crd,
    /// The command line (`docs/reference/cli.md`).
    Cli,
}

/// Prints the reference asked for on standard output.
pub fn run(args: &DocsArgs) -> ExitCode {
    let text = match args.reference {
        Reference::Crd => rollgate::docs::crd_reference(&Rollout::crd()),
        Reference::Cli => rollgate::docs::cli_reference(&super::command().bin_name("rollgate")),
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => output::environment_failure(&format!("rollgate docs: cannot write: {e}")),
    }
}
