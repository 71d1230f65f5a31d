//! `rollgate lint PLAN.yaml...`: the checks `kubectl apply` and the controller would make,
//! offline, for the CI of a GitOps repository: the command line's own reading of a plan
//! (schema, unknown fields, `validate_spec`) and the CRD's CEL rules, evaluated with kube's
//! client-side CEL validator. Every problem names the file and the field.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use kube::CustomResourceExt;
use kube::core::cel::Validator;
use rollgate::api::Rollout;
use rollgate::sim::load::load_rollout;
use rollgate::sim::read::{MAX_YAML_FILE_BYTES, read_text};
use serde_json::Value;

/// `rollgate lint`.
#[derive(Args, Debug, Clone)]
pub struct LintArgs {
    /// Rollout manifests to check.
    #[arg(required = true, value_name = "PLAN.yaml")]
    pub files: Vec<PathBuf>,
}

/// Checks every file and writes `FILE: ok` or one line per problem, `FILE: field: problem`.
/// Returns how many files had problems.
pub fn lint(files: &[PathBuf], out: &mut dyn Write) -> std::io::Result<usize> {
    let mut bad = 0;
    for file in files {
        let problems = problems(file);
        if problems.is_empty() {
            writeln!(out, "{}: ok", file.display())?;
        } else {
            bad += 1;
            for problem in problems {
                writeln!(out, "{}: {problem}", file.display())?;
            }
        }
    }
    Ok(bad)
}

/// Every problem of one file, each naming the field: the command line's reading first, then
/// the CEL rules that it did not already report at the same field.
pub fn problems(file: &Path) -> Vec<String> {
    let mut problems = match load_rollout(file) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems,
    };
    let Ok(text) = read_text(file, MAX_YAML_FILE_BYTES) else {
        return problems;
    };
    // A file that is not YAML at all was reported above; CEL needs a document to look at.
    let Ok(object) = serde_saphyr::from_str::<Value>(&text) else {
        return problems;
    };
    for error in cel_problems(&object) {
        let already = problems.iter().any(|p| {
            p.starts_with(&format!("{}:", error.0)) || p.starts_with(&format!("{}.", error.0))
        });
        if !already {
            problems.push(format!("{}: {} (CRD validation rule)", error.0, error.1));
        }
    }
    problems
}

/// The CRD's CEL rules on the object: (field path, message) for each rule it breaks.
fn cel_problems(object: &Value) -> Vec<(String, String)> {
    let schema = Rollout::crd()
        .spec
        .versions
        .into_iter()
        .next()
        .and_then(|v| v.schema)
        .and_then(|s| s.open_api_v3_schema)
        .and_then(|s| serde_json::to_value(s).ok());
    let Some(schema) = schema else {
        return Vec::new();
    };
    match Validator::new().validate(&schema, object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .map(|e| (e.field_path, e.message))
            .collect(),
    }
}

/// `rollgate lint` on the command line: exit 2 when a file has a problem, 3 when the report
/// cannot be written.
pub fn run(args: LintArgs) -> std::process::ExitCode {
    match lint(&args.files, &mut std::io::stdout().lock()) {
        Ok(0) => std::process::ExitCode::SUCCESS,
        Ok(_) => std::process::ExitCode::from(super::kube_client::EXIT_REFUSED),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rollgate lint: cannot write the report: {e}");
            std::process::ExitCode::from(super::kube_client::EXIT_ENVIRONMENT)
        }
    }
}
