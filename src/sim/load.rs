//! Reading YAML files strictly: a misspelt or unknown field is reported by its path, and
//! every problem names the file.

use std::fmt::Write as _;
use std::path::Path;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use kube::CustomResourceExt;
use serde_json::Value;

use super::read::{MAX_YAML_FILE_BYTES, read_text};
use super::schema_check::{check, child_path};
use super::yaml_node::Node;
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

/// Most YAML nodes (values, lists and mappings) one file may hold: room for 30 days of
/// per-minute values for several gates, far below what would strain memory.
pub const MAX_YAML_NODES: usize = 2_000_000;

/// Deepest nesting of lists and mappings in one file.
pub const MAX_YAML_DEPTH: usize = 64;

/// The YAML reader's options: one document, the limits above, aliases bounded.
pub(crate) fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: MAX_YAML_NODES,
            max_events: 2 * MAX_YAML_NODES + 16,
            max_depth: MAX_YAML_DEPTH,
        },
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
    }
}

/// Reads a YAML file (at most [`MAX_YAML_FILE_BYTES`]) and parses it into `T`, checking it
/// against `schema` first (see [`parse_yaml`]).
pub fn load_yaml<T: DeserializeOwned>(file: &Path, schema: &Value) -> Result<T, LoadError> {
    let text =
        read_text(file, MAX_YAML_FILE_BYTES).map_err(|e| LoadError::new(file, e.to_string()))?;
    parse_yaml(file, &text, schema)
}

/// Parses YAML text into `T`: one document (a trailing `---` is allowed), checked against
/// `schema` as `kubectl apply` would (types, ranges, lengths, unknown and missing fields), then
/// read into `T`, rejecting fields `T` does not know; `file` names the source in messages.
pub fn parse_yaml<T: DeserializeOwned>(
    file: &Path,
    text: &str,
    schema: &Value,
) -> Result<T, LoadError> {
    let text = without_trailing_separator(text);
    let node: Node = serde_saphyr::from_str_with_options(text, yaml_options())
        .map_err(|e| LoadError::new(file, plain(&e)))?;
    let problems = check(schema, &node, "");
    if !problems.is_empty() {
        return Err(LoadError::many(file, problems));
    }
    let mut unknown = Vec::new();
    let parsed =
        serde_saphyr::with_deserializer_from_str_with_options(text, yaml_options(), |de| {
            serde_ignored::deserialize(de, |path| unknown.push(field_path(&path)))
        });
    match parsed {
        Ok(_) if !unknown.is_empty() => Err(LoadError::many(
            file,
            unknown
                .into_iter()
                .map(|p| format!("{p}: unknown field"))
                .collect(),
        )),
        Ok(value) => Ok(value),
        Err(e) => Err(LoadError::new(file, plain(&e))),
    }
}

/// The text without a final `---` line (and the blank lines and comments after it): a file
/// that ends a document with a separator still holds one document.
fn without_trailing_separator(text: &str) -> &str {
    let mut last_significant = None;
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if !(trimmed.is_empty() || trimmed.starts_with('#')) {
            // A document marker starts at the first column; an indented `---` is content.
            last_significant = Some((start, line.trim_end()));
        }
        start += line.len();
    }
    match last_significant {
        Some((start, line)) if is_separator(line) => &text[..start],
        _ => text,
    }
}

/// `---` at the first column, alone or followed by a comment.
fn is_separator(line: &str) -> bool {
    line.strip_prefix("---")
        .is_some_and(|rest| rest.trim().is_empty() || rest.trim_start().starts_with('#'))
}

/// A YAML reader's error in the file's terms: where, what, and the limit when one was hit,
/// without advice meant for programmers.
pub(crate) fn plain(error: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    use serde_saphyr::budget::BudgetBreach as B;
    let inner = error.without_snippet();
    let at = match inner.location() {
        Some(l) if l.line() > 0 => format!("line {}, column {}: ", l.line(), l.column()),
        _ => String::new(),
    };
    match inner {
        E::MultipleDocuments { .. } => format!(
            "{at}a second YAML document starts here; a file holds one document (a trailing --- is fine)"
        ),
        E::DuplicateMappingKey { key, .. } => match key {
            Some(key) => format!("{at}the key {key:?} appears twice in the same mapping"),
            None => format!("{at}a key appears twice in the same mapping"),
        },
        E::Budget { breach, .. } => {
            let limit = match breach {
                B::Nodes { .. } | B::Events { .. } => format!(
                    "more than {MAX_YAML_NODES} YAML nodes (values, lists and mappings), the most one file may hold"
                ),
                B::Depth { .. } => format!(
                    "lists and mappings nested more than {MAX_YAML_DEPTH} deep, the most allowed"
                ),
                B::Aliases { .. } | B::Anchors { .. } | B::AliasAnchorRatio { .. } => {
                    "more YAML aliases and anchors than allowed (aliases expand to too much)"
                        .to_owned()
                }
                B::Documents { .. } => "more than one YAML document".to_owned(),
                other => format!("more than the YAML reader allows ({other:?})"),
            };
            format!("{at}the file holds {limit}")
        }
        _ => place_first(&inner.to_string()),
    }
}

/// The reader's message on one line with its place first: `line 3, column 5: problem`, as
/// the other messages of a file are written.
fn place_first(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    if first.starts_with("line ") {
        return first.to_owned();
    }
    if let Some(i) = first.rfind(" at line ") {
        let (problem, place) = first.split_at(i);
        let place = place.trim_start_matches(" at ");
        if place.starts_with("line ") {
            return format!("{place}: {problem}");
        }
    }
    format!("the document: {first}")
}

/// A field path in the form users write it: `spec.analysis.gates[0].name`.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        P::Map { parent, key } => child_path(&field_path(parent), key),
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
    let text =
        read_text(file, MAX_YAML_FILE_BYTES).map_err(|e| LoadError::new(file, e.to_string()))?;
    parse_rollout(file, &text)
}

/// Parses a Rollout manifest's text and checks it against the rules of a valid plan; `file`
/// names the source in messages.
pub fn parse_rollout(file: &Path, text: &str) -> Result<Rollout, LoadError> {
    static SCHEMA: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let schema = SCHEMA.get_or_init(rollout_schema);
    let manifest: Manifest = parse_yaml(file, text, schema)?;
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

/// The CRD's schema of a Rollout, with the fields every object has (`apiVersion`, `kind`,
/// `metadata`): what `kubectl apply` checks a manifest against.
pub fn rollout_schema() -> Value {
    let crd = Rollout::crd();
    let mut schema = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null);
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        properties.insert("apiVersion".into(), serde_json::json!({"type": "string"}));
        properties.insert("kind".into(), serde_json::json!({"type": "string"}));
        properties.insert("metadata".into(), serde_json::json!({"type": "object"}));
    }
    if let Some(required) = schema.get_mut("required").and_then(Value::as_array_mut) {
        required.insert(0, Value::from("kind"));
        required.insert(0, Value::from("apiVersion"));
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_final_document_marker_is_dropped() {
        assert_eq!(without_trailing_separator("a: 1\n---\n"), "a: 1\n");
        assert_eq!(
            without_trailing_separator("a: 1\n--- # end\n\n# bye\n"),
            "a: 1\n"
        );
        assert_eq!(without_trailing_separator("a: 1\n"), "a: 1\n");
        let block = "a: |\n  text\n  ---\n";
        assert_eq!(
            without_trailing_separator(block),
            block,
            "content, not a marker"
        );
        let two = "a: 1\n---\nb: 2\n";
        assert_eq!(without_trailing_separator(two), two);
    }

    #[test]
    fn reader_messages_lead_with_their_place() {
        assert_eq!(
            place_first("error: did not find expected key at line 8, column 3"),
            "line 8, column 3: did not find expected key"
        );
        assert_eq!(place_first("line 2, column 1: x"), "line 2, column 1: x");
        assert_eq!(place_first("something odd"), "the document: something odd");
    }
}
