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
    let reading = match load_rollout(file) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems,
    };
    // A file that cannot be read or typed (a syntax error, a string where a number goes) was
    // reported by place; the CEL rules would only repeat it.
    if reading.iter().any(|p| p.starts_with("line ")) {
        return reading;
    }
    let Ok(text) = read_text(file, MAX_YAML_FILE_BYTES) else {
        return reading;
    };
    let Ok(object) = serde_saphyr::from_str::<Value>(&text) else {
        return reading;
    };
    merge(reading, cel_problems(&object))
}

/// The reading's problems, then each CEL problem at a field the reading did not report on
/// (neither the field itself nor anything under it), marked as the CRD's rule. A rule on the
/// whole spec names its field first in its message (`rollback.percent must not …`): that
/// field is the one compared.
pub fn merge(reading: Vec<String>, cel: Vec<(String, String)>) -> Vec<String> {
    let mut problems = reading;
    let reported = problems.clone();
    for (field, message) in cel {
        let compared = if field == "spec" {
            message
                .split_whitespace()
                .next()
                .map_or_else(|| field.clone(), |first| format!("spec.{first}"))
        } else {
            field.clone()
        };
        let covered = reported.iter().any(|p| {
            p.strip_prefix(compared.as_str())
                .is_some_and(|rest| rest.starts_with([':', '.', '[']))
        });
        if !covered {
            problems.push(format!("{field}: {message} (CRD validation rule)"));
        }
    }
    problems
}

/// The CRD's CEL rules on the object: (field path, message) for each rule it breaks.
pub fn cel_problems(object: &Value) -> Vec<(String, String)> {
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
