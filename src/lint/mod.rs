//! `rollgate lint` for GitOps trees: files, directories and standard input, multi-document
//! streams (`kustomize build`, `helm template`), rollgate Rollouts checked as `kubectl apply`
//! and the controller would check them, everything else skipped and counted; each problem
//! with its file, document, line, column and field, as text, JSON or GitHub annotations.

mod check;
mod inputs;
mod render;

pub use check::{
    API_GROUP, Finding, TextReport, Verdict, cel_problems, check_text, merge, problems,
};
pub use inputs::{Input, STDIN_NAME, collect, is_manifest};
pub use render::{Format, render};

/// One line of the report, in the order the inputs were read.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A Rollout without problems.
    Valid {
        /// The file as named.
        file: String,
        /// The document's index in the file, from 0.
        document: usize,
        /// `namespace/name` (or the name alone).
        rollout: String,
    },
    /// A problem.
    Problem(Finding),
    /// A path that could not be read.
    Unreadable {
        /// The path as named.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Everything `lint` found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    /// What to print, in order.
    pub entries: Vec<Entry>,
    /// Texts read (files and standard input).
    pub files: usize,
    /// Rollouts checked.
    pub rollouts: usize,
    /// Documents that are Rollouts with problems or cannot be parsed.
    pub invalid: usize,
    /// Documents that are other objects.
    pub skipped: usize,
    /// Paths that could not be read.
    pub unreadable: usize,
}

impl Report {
    /// The exit status: 3 when a path could not be read, 2 when a Rollout is invalid or a
    /// document cannot be parsed, 0 otherwise.
    pub fn exit_status(&self) -> u8 {
        if self.unreadable > 0 {
            3
        } else if self.invalid > 0 {
            2
        } else {
            0
        }
    }
}

/// Checks every input.
pub fn lint(inputs: Vec<Input>) -> Report {
    let mut report = Report::default();
    for input in inputs {
        match input {
            Input::Unreadable { name, reason } => {
                report.unreadable += 1;
                report
                    .entries
                    .push(Entry::Unreadable { path: name, reason });
            }
            Input::Text { name, text } => {
                report.files += 1;
                let checked = check_text(&name, &text);
                let mut findings = checked.findings.into_iter().peekable();
                for (document, verdict) in checked.documents {
                    match verdict {
                        Verdict::Valid(rollout) => {
                            report.rollouts += 1;
                            report.entries.push(Entry::Valid {
                                file: name.clone(),
                                document,
                                rollout,
                            });
                        }
                        Verdict::Invalid => {
                            report.invalid += 1;
                            report.rollouts += 1;
                            while let Some(f) = findings.next_if(|f| f.document == document) {
                                report.entries.push(Entry::Problem(f));
                            }
                        }
                        Verdict::Skipped => report.skipped += 1,
                    }
                }
                report.entries.extend(findings.map(Entry::Problem));
            }
        }
    }
    report
}
