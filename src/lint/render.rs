//! The report of `rollgate lint` as text for people, one JSON document for tools, or GitHub
//! Actions workflow commands (`::error file=…,line=…,col=…::message`) that annotate a pull
//! request's diff.

use std::fmt::Write as _;

use serde_json::json;

use super::{Entry, Finding, Report};

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `FILE:LINE:COL: document N: FIELD: message` lines and a summary.
    Text,
    /// One JSON object: counts, `problems` and `unreadable`.
    Json,
    /// GitHub Actions `::error` commands and a summary.
    Github,
}

/// The whole report in `format`, ending with a newline.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Text => text(report),
        Format::Json => json(report),
        Format::Github => github(report),
    }
}

fn text(report: &Report) -> String {
    let mut out = String::new();
    for entry in &report.entries {
        match entry {
            Entry::Valid {
                file,
                document,
                rollout,
            } => {
                let _ = writeln!(
                    out,
                    "{file}: document {}: Rollout {rollout}: ok",
                    document + 1
                );
            }
            Entry::Problem(f) => {
                let _ = writeln!(out, "{}: {}", place_text(f), problem_text(f));
            }
            Entry::Unreadable { path, reason } => {
                let _ = writeln!(out, "{path}: {reason}");
            }
        }
    }
    let _ = writeln!(out, "{}", summary(report));
    out
}

/// `file:12:7: document 2` (the place is left out when unknown).
fn place_text(f: &Finding) -> String {
    match f.place {
        Some(p) => format!(
            "{}:{}:{}: document {}",
            f.file,
            p.line,
            p.column,
            f.document + 1
        ),
        None => format!("{}: document {}", f.file, f.document + 1),
    }
}

fn problem_text(f: &Finding) -> String {
    match &f.field {
        Some(field) => format!("{field}: {}", f.message),
        None => f.message.clone(),
    }
}

/// `lint: 3 Rollouts in 4 files, 1 with problems; 2 other documents skipped`.
pub fn summary(report: &Report) -> String {
    let mut line = format!(
        "lint: {} in {}, {} with problems; {} skipped",
        count(report.rollouts, "Rollout", "Rollouts"),
        count(report.files, "file", "files"),
        report.invalid,
        count(report.skipped, "other document", "other documents"),
    );
    if report.unreadable > 0 {
        let _ = write!(
            line,
            "; {} could not be read",
            count(report.unreadable, "path", "paths")
        );
    }
    line
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn json(report: &Report) -> String {
    let problems: Vec<_> = report
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Problem(f) => Some(json!({
                "file": f.file,
                "documentIndex": f.document,
                "line": f.place.map(|p| p.line),
                "column": f.place.map(|p| p.column),
                "field": f.field,
                "message": f.message,
            })),
            _ => None,
        })
        .collect();
    let valid: Vec<_> = report
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Valid {
                file,
                document,
                rollout,
            } => Some(json!({"file": file, "documentIndex": document, "rollout": rollout})),
            _ => None,
        })
        .collect();
    let unreadable: Vec<_> = report
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Unreadable { path, reason } => Some(json!({"path": path, "message": reason})),
            _ => None,
        })
        .collect();
    let object = json!({
        "files": report.files,
        "rollouts": report.rollouts,
        "invalid": report.invalid,
        "skipped": report.skipped,
        "valid": valid,
        "problems": problems,
        "unreadable": unreadable,
    });
    format!("{object}\n")
}

fn github(report: &Report) -> String {
    let mut out = String::new();
    for entry in &report.entries {
        match entry {
            Entry::Problem(f) => {
                let mut properties = format!("file={}", property(&f.file));
                if let Some(p) = f.place {
                    let _ = write!(properties, ",line={},col={}", p.line, p.column);
                }
                let _ = writeln!(
                    out,
                    "::error {properties},title={}::{}",
                    property("rollgate lint"),
                    data(&format!("document {}: {}", f.document + 1, problem_text(f)))
                );
            }
            Entry::Unreadable { path, reason } => {
                let _ = writeln!(out, "::error file={}::{}", property(path), data(reason));
            }
            Entry::Valid { .. } => {}
        }
    }
    let _ = writeln!(out, "{}", summary(report));
    out
}

/// A workflow command's message: `%`, CR and LF escaped.
fn data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value: as [`data`], and `:` and `,` too.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::locate::Place;

    fn report() -> Report {
        Report {
            entries: vec![
                Entry::Valid {
                    file: "a.yaml".into(),
                    document: 0,
                    rollout: "kaviar/good".into(),
                },
                Entry::Problem(Finding {
                    file: "b,c.yaml".into(),
                    document: 1,
                    place: Some(Place {
                        line: 12,
                        column: 7,
                    }),
                    field: Some("spec.stages".into()),
                    message: "100% wrong:\nnext".into(),
                }),
                Entry::Unreadable {
                    path: "gone".into(),
                    reason: "cannot read the path: No such file".into(),
                },
            ],
            files: 2,
            rollouts: 2,
            invalid: 1,
            skipped: 3,
            unreadable: 1,
        }
    }

    #[test]
    fn text_names_file_place_document_and_field() {
        let out = render(&report(), Format::Text);
        assert_eq!(
            out,
            "a.yaml: document 1: Rollout kaviar/good: ok\n\
             b,c.yaml:12:7: document 2: spec.stages: 100% wrong:\nnext\n\
             gone: cannot read the path: No such file\n\
             lint: 2 Rollouts in 2 files, 1 with problems; 3 other documents skipped; 1 path could not be read\n"
        );
    }

    #[test]
    fn github_commands_escape_their_properties_and_data() {
        let out = render(&report(), Format::Github);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "::error file=b%2Cc.yaml,line=12,col=7,title=rollgate lint::document 2: spec.stages: 100%25 wrong:%0Anext"
        );
        assert_eq!(
            lines[1],
            "::error file=gone::cannot read the path: No such file"
        );
        assert!(lines[2].starts_with("lint: 2 Rollouts"));
    }

    #[test]
    fn json_is_one_object_with_counts_and_places() {
        let out = render(&report(), Format::Json);
        let value: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(value["rollouts"], 2);
        assert_eq!(value["skipped"], 3);
        assert_eq!(value["problems"][0]["line"], 12);
        assert_eq!(value["problems"][0]["documentIndex"], 1);
        assert_eq!(value["problems"][0]["field"], "spec.stages");
        assert_eq!(value["valid"][0]["rollout"], "kaviar/good");
        assert_eq!(value["unreadable"][0]["path"], "gone");
    }
}
