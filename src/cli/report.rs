//! `rollgate report NAME`: the release report of a Rollout in the cluster, and the helpers
//! `simulate --report` and `backtest --report` share to write one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use rollgate::report::live::{FetchError, load_report};
use rollgate::report::write::write_report;
use rollgate::report::{Report, markdown};

use super::kube_client::KubeArgs;
use super::output::{bad_input, environment_failure};

/// Arguments of `rollgate report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The Rollout's name.
    #[arg(add = super::complete::rollout_names())]
    name: String,
    #[command(flatten)]
    kube: KubeArgs,
    /// Write the report to this Markdown file and its chart beside it (same name, `.svg`)
    /// instead of printing the Markdown.
    #[arg(long, value_name = "FILE.md")]
    output: Option<PathBuf>,
}

/// Reads the Rollout and prints or writes its report; exit status 0, 2 when there is no such
/// Rollout, 3 when the cluster cannot be reached or the files cannot be written.
pub fn report(args: ReportArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return environment_failure(&format!(
                "rollgate report: cannot start the async runtime: {e}"
            ));
        }
    };
    let report = match runtime.block_on(read(&args)) {
        Ok(report) => report,
        Err(code) => return code,
    };
    match &args.output {
        Some(path) => match write_report_file(&report, path, "report") {
            Ok(()) => ExitCode::SUCCESS,
            Err(code) => code,
        },
        None => {
            let text = markdown::render(&report, None);
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    environment_failure(&format!("rollgate report: cannot write the report: {e}"))
                }
            }
        }
    }
}

async fn read(args: &ReportArgs) -> Result<Report, ExitCode> {
    let client = args
        .kube
        .connect()
        .await
        .map_err(|e| environment_failure(&format!("rollgate report: {e}")))?;
    let namespace = client.default_namespace().to_owned();
    tracing::info!(namespace, name = args.name, "reading the rollout");
    match load_report(client, &namespace, &args.name).await {
        Ok(report) => Ok(report),
        Err(e @ FetchError::NotFound { .. }) => Err(bad_input(&format!("rollgate report: {e}"))),
        Err(e) => Err(environment_failure(&format!("rollgate report: {e}"))),
    }
}

/// The file name of `path`, for a report's source line (never the directories, so a report
/// reads the same wherever it was made).
pub fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Writes `report` to `path` and its chart beside it; on failure prints why and returns exit
/// status 3.
pub fn write_report_file(report: &Report, path: &Path, command: &str) -> Result<(), ExitCode> {
    match write_report(report, path) {
        Ok(chart) => {
            tracing::info!(report = %path.display(), chart = %chart.display(), "report written");
            Ok(())
        }
        Err(e) => Err(environment_failure(&format!("rollgate {command}: {e}"))),
    }
}
