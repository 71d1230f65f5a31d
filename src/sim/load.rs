//! Reading YAML files strictly: a misspelt or unknown field is reported by its path, and
//! every problem names the file.

use std::fmt::Write as _;
use std::path::Path;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::api::{Rollout, RolloutSpec, RolloutStatus, validate_spec};

/// A file that could not be used, with every problem found in it.
#[derive(Debug, thiserror::Error)]
#[error("{}", render(file, problems))]
pub struct LoadError {
    /// The file, as the user named it.
    pub file: String,
    /// Each problem, naming the field where it can.
    pub problems: Vec<String>,
}

impl LoadError {
    /// A load error with a single problem.
    pub fn new(file: &Path, problem: impl Into<String>) -> Self {
        Self {
            file: file.display().to_string(),
            problems: vec![problem.into()],
        }
    }

    /// A load error with several problems.
    pub fn many(file: &Path, problems: Vec<String>) -> Self {
        Self {
            file: file.display().to_string(),
            problems,
        }
    }
}

fn render(file: &str, problems: &[String]) -> String {
    let mut out = String::new();
    for (i, problem) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = write!(out, "{file}: {problem}");
    }
    out
}

/// Reads and parses a YAML file into `T`, rejecting fields `T` does not know.
pub fn load_yaml<T: DeserializeOwned>(file: &Path) -> Result<T, LoadError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| LoadError::new(file, format!("cannot read the file: {e}")))?;
    parse_yaml(file, &text)
}

/// Parses YAML text into `T`, rejecting fields `T` does not know; `file` names the source in
/// messages.
pub fn parse_yaml<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, LoadError> {
    let mut unknown = Vec::new();
    let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_ignored::deserialize(de, |path| unknown.push(field_path(&path)))
    });
    match parsed {
        Ok(_) if !unknown.is_empty() => Err(LoadError::many(
            file,
            unknown
                .into_iter()
                .map(|p| format!("unknown field `{p}`"))
                .collect(),
        )),
        Ok(value) => Ok(value),
        Err(e) => Err(LoadError::new(file, e.to_string())),
    }
}

/// A field path in the form users write it: `spec.analysis.gates[0].name`.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        P::Map { parent, key } => {
            let parent = field_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            field_path(parent)
        }
    }
}

/// A Rollout manifest as written in a file.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: ObjectMeta,
    spec: RolloutSpec,
    #[serde(default)]
    status: Option<RolloutStatus>,
}

/// Reads a Rollout manifest and checks it against the rules of a valid plan.
pub fn load_rollout(file: &Path) -> Result<Rollout, LoadError> {
    let manifest: Manifest = load_yaml(file)?;
    let mut problems = Vec::new();
    if manifest.api_version != "rollgate.dev/v1alpha1" {
        problems.push(format!(
            "apiVersion: expected rollgate.dev/v1alpha1, found {:?}",
            manifest.api_version
        ));
    }
    if manifest.kind != "Rollout" {
        problems.push(format!("kind: expected Rollout, found {:?}", manifest.kind));
    }
    let rollout = Rollout {
        metadata: manifest.metadata,
        spec: manifest.spec,
        status: manifest.status,
    };
    if let Err(errors) = validate_spec(&rollout.spec) {
        problems.extend(
            errors
                .iter()
                .map(|e| format!("spec.{e}").replace("spec.spec.", "spec.")),
        );
    }
    if problems.is_empty() {
        Ok(rollout)
    } else {
        Err(LoadError::many(file, problems))
    }
}
