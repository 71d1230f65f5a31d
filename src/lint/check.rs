//! Checking one text of a GitOps tree: its documents are split, the ones that are rollgate
//! Rollouts are read as `simulate` reads a plan (schema, unknown fields, the plan rules) and
//! checked against the CRD's CEL rules; every problem gets the line and column of its field.

use std::path::Path;

use kube::CustomResourceExt;
use kube::core::cel::Validator;
use serde::Deserialize;
use serde_json::Value;

use crate::api::Rollout;
use crate::sim::load::{parse_rollout, plain, yaml_options};
use crate::sim::locate::{Place, is_empty_document, locate, split_documents};

/// The API group of rollgate's own resources.
pub const API_GROUP: &str = "rollgate.dev";

/// One problem, where it is and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The file as named (or `<stdin>`).
    pub file: String,
    /// The document's index in the file, from 0.
    pub document: usize,
    /// Line and column in the file, from 1, when known.
    pub place: Option<Place>,
    /// The field the problem is about (`spec.stages[1].percent`), when there is one.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// What one document turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A Rollout with no problem: its `namespace/name` (or name).
    Valid(String),
    /// A Rollout with problems, or a document that cannot be parsed.
    Invalid,
    /// Another kind of object (an Argo Rollout, a Deployment, …), passed over.
    Skipped,
}

/// What one text held.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TextReport {
    /// Each document's verdict, with its index in the file (empty documents have none).
    pub documents: Vec<(usize, Verdict)>,
    /// Every problem found.
    pub findings: Vec<Finding>,
}

/// The fields lint reads to decide whether a document is a Rollout.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Head {
    #[serde(default)]
    api_version: Option<Value>,
    #[serde(default)]
    kind: Option<Value>,
    #[serde(default)]
    metadata: Option<HeadMeta>,
}

#[derive(Deserialize, Default)]
struct HeadMeta {
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    namespace: Option<Value>,
}

/// Checks every document of `text`, reported under `file`.
pub fn check_text(file: &str, text: &str) -> TextReport {
    let mut report = TextReport::default();
    for (index, document) in split_documents(text).iter().enumerate() {
        if is_empty_document(document.text) {
            continue;
        }
        let offset = document.first_line - 1;
        let head = match serde_saphyr::from_str_with_options::<Option<Head>>(
            document.text,
            yaml_options(),
        ) {
            Ok(head) => head,
            Err(error) => {
                let described = plain(&error);
                let (place, message) = split_place(&described);
                report.findings.push(Finding {
                    file: file.to_owned(),
                    document: index,
                    place: place.map(|p| shift(p, offset)),
                    field: None,
                    message: format!("the document cannot be parsed: {message}"),
                });
                report.documents.push((index, Verdict::Invalid));
                continue;
            }
        };
        let Some(head) = head.filter(is_rollout) else {
            report.documents.push((index, Verdict::Skipped));
            continue;
        };
        let problems = problems(file, document.text);
        if problems.is_empty() {
            report
                .documents
                .push((index, Verdict::Valid(name_of(&head))));
            continue;
        }
        report.documents.push((index, Verdict::Invalid));
        for problem in problems {
            report
                .findings
                .push(finding(file, index, document.text, offset, &problem));
        }
    }
    report
}

/// A document is ours when its group is rollgate's and its kind is Rollout (an Argo
/// Rollout, `argoproj.io/v1alpha1`, is not).
fn is_rollout(head: &Head) -> bool {
    let group = head
        .api_version
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|v| v.split('/').next());
    group == Some(API_GROUP) && head.kind.as_ref().and_then(Value::as_str) == Some("Rollout")
}

fn name_of(head: &Head) -> String {
    let text = |v: &Option<Value>| v.as_ref().and_then(Value::as_str).map(str::to_owned);
    let meta = head.metadata.as_ref();
    let name = meta.and_then(|m| text(&m.name)).unwrap_or_default();
    match meta.and_then(|m| text(&m.namespace)) {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name,
    }
}

/// One problem of a Rollout document as a finding: a place the reader gave (`line 3, column
/// 5: …`), or the place of the field the problem names.
fn finding(file: &str, document: usize, text: &str, offset: usize, problem: &str) -> Finding {
    let (place, rest) = split_place(problem);
    if let Some(place) = place {
        return Finding {
            file: file.to_owned(),
            document,
            place: Some(shift(place, offset)),
            field: None,
            message: rest.to_owned(),
        };
    }
    let (field, message) = match problem.split_once(": ") {
        Some((field, message)) if is_field_path(field) => (Some(field.to_owned()), message),
        _ => (None, problem),
    };
    let place = field
        .as_deref()
        .and_then(|f| locate(text, f))
        .map(|p| shift(p, offset));
    Finding {
        file: file.to_owned(),
        document,
        place,
        field,
        message: message.to_owned(),
    }
}

/// `line 3, column 5: message` → the place and the message.
fn split_place(problem: &str) -> (Option<Place>, &str) {
    let parsed = problem.strip_prefix("line ").and_then(|rest| {
        let (line, rest) = rest.split_once(", column ")?;
        let (column, message) = rest.split_once(": ")?;
        Some((
            Place {
                line: line.parse().ok()?,
                column: column.parse().ok()?,
            },
            message,
        ))
    });
    match parsed {
        Some((place, message)) => (Some(place), message),
        None => (None, problem),
    }
}

fn shift(place: Place, lines: usize) -> Place {
    Place {
        line: place.line + lines,
        column: place.column,
    }
}

/// `spec.analysis.gates[0].name`, `kind`: a path of field names and indexes.
fn is_field_path(text: &str) -> bool {
    text.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '[' | ']' | '_' | '-'))
}

/// Every problem of one Rollout document, each naming the field: the command line's reading
/// first, then the CEL rules that it did not already report at the same field.
pub fn problems(file: &str, text: &str) -> Vec<String> {
    let reading = match parse_rollout(Path::new(file), text) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems,
    };
    // A document that cannot be read or typed (a syntax error, a string where a number goes)
    // was reported by place; the CEL rules would only repeat it.
    if reading.iter().any(|p| p.starts_with("line ")) {
        return reading;
    }
    let Ok(object) = serde_saphyr::from_str_with_options::<Value>(text, yaml_options()) else {
        return reading;
    };
    merge(reading, cel_problems(&object))
}

/// The reading's problems, then each CEL problem at a field the reading did not report on
/// (neither the field itself nor anything under it), marked as the CRD's rule. A rule on the
/// whole spec names its field first in its message (`rollback.percent must not …`): that
/// field is the one compared. A rule that could not be evaluated (a field it reads is
/// missing) adds nothing when the reading already found a problem: the missing field is that
/// problem, said once.
pub fn merge(reading: Vec<String>, cel: Vec<(String, String)>) -> Vec<String> {
    let mut problems = reading;
    let reported = problems.clone();
    for (field, message) in cel {
        if is_evaluation_error(&message) && !reported.is_empty() {
            continue;
        }
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

/// A CEL validator's message for a rule that failed to run rather than one that was broken.
fn is_evaluation_error(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("rule evaluation error") || lower.contains("no such key")
}

/// The CRD's CEL rules on the object: (field path, message) for each rule it breaks.
pub fn cel_problems(object: &Value) -> Vec<(String, String)> {
    static SCHEMA: std::sync::OnceLock<Option<Value>> = std::sync::OnceLock::new();
    let schema = SCHEMA.get_or_init(|| {
        Rollout::crd()
            .spec
            .versions
            .into_iter()
            .next()
            .and_then(|v| v.schema)
            .and_then(|s| s.open_api_v3_schema)
            .and_then(|s| serde_json::to_value(s).ok())
    });
    let Some(schema) = schema else {
        return Vec::new();
    };
    match Validator::new().validate(schema, object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .map(|e| (e.field_path, e.message))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_read_from_the_reader_s_messages() {
        assert_eq!(
            split_place("line 8, column 3: did not find expected key"),
            (
                Some(Place { line: 8, column: 3 }),
                "did not find expected key"
            )
        );
        assert_eq!(split_place("spec.stages: x"), (None, "spec.stages: x"));
    }

    #[test]
    fn field_paths_are_told_from_prose() {
        assert!(is_field_path("spec.analysis.gates[0].name"));
        assert!(is_field_path("kind"));
        assert!(!is_field_path("the document"));
        assert!(!is_field_path(""));
    }

    #[test]
    fn an_evaluation_error_is_dropped_when_the_reading_found_the_problem() {
        let reading = vec!["spec.stages: missing field".to_owned()];
        let cel = vec![(
            "spec".to_owned(),
            "rule evaluation error: No such key: stages".to_owned(),
        )];
        assert_eq!(merge(reading.clone(), cel.clone()), reading);
        assert_eq!(
            merge(Vec::new(), cel),
            ["spec: rule evaluation error: No such key: stages (CRD validation rule)"]
        );
    }
}
