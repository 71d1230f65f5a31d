//! The generated references under `docs/reference/` are what `rollgate docs crd|cli` prints
//! now, and they describe what they claim to: every CRD field with its limits and CEL
//! messages, every visible command and flag, nothing hidden.

use std::process::Command;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use kube::CustomResourceExt;
use rollgate::api::Rollout;
use rollgate::docs::{CLI_REFERENCE_COMMAND, CRD_REFERENCE_COMMAND, crd_reference};

/// What `rollgate docs WHICH` prints.
fn generated(which: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(["docs", which])
        .output()
        .expect("rollgate runs");
    assert!(out.status.success(), "rollgate docs {which}: {out:?}");
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Fails with the first differing line and the command that regenerates the file.
fn assert_current(file: &str, generated: &str, regenerate: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let checked_in = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {file} ({e}); generate it with `{regenerate}`"));
    if checked_in != generated {
        let line = checked_in
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| checked_in.lines().count().min(generated.lines().count()));
        panic!(
            "{file} is out of date from line {}:\n  checked in: {:?}\n  generated:  {:?}\n\
             Regenerate it with `{regenerate}` and commit it.",
            line + 1,
            checked_in.lines().nth(line).unwrap_or("<end of file>"),
            generated.lines().nth(line).unwrap_or("<end of file>"),
        );
    }
}

#[test]
fn crd_reference_is_current() {
    assert_current(
        "docs/reference/rollout.md",
        &generated("crd"),
        CRD_REFERENCE_COMMAND,
    );
}

#[test]
fn cli_reference_is_current() {
    assert_current(
        "docs/reference/cli.md",
        &generated("cli"),
        CLI_REFERENCE_COMMAND,
    );
}

#[test]
fn the_command_line_and_the_library_print_the_same_crd_reference() {
    assert_eq!(generated("crd"), crd_reference(&Rollout::crd()));
}

fn schema() -> JSONSchemaProps {
    let crd = Rollout::crd();
    let version = crd.spec.versions.into_iter().next().expect("a version");
    version
        .schema
        .and_then(|s| s.open_api_v3_schema)
        .expect("a schema")
}

/// Every (object-path, field name, field schema) of the schema.
fn every_field(
    path: &str,
    schema: &JSONSchemaProps,
    out: &mut Vec<(String, String, JSONSchemaProps)>,
) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray;
    for (name, field) in schema.properties.iter().flatten() {
        out.push((path.to_owned(), name.clone(), field.clone()));
        let child = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        every_field(&child, field, out);
        if let Some(JSONSchemaPropsOrArray::Schema(item)) = &field.items {
            every_field(&format!("{child}[]"), item, out);
        }
    }
}

/// The rows of the table under `## SECTION`.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("no section {heading}"));
    let rest = &doc[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
    &rest[..end]
}

#[test]
fn every_field_has_its_row_with_type_default_limits_and_cel_messages() {
    let doc = crd_reference(&Rollout::crd());
    let mut fields = Vec::new();
    every_field("", &schema(), &mut fields);
    assert!(
        fields.len() > 80,
        "the walk finds the fields: {}",
        fields.len()
    );
    let mut checked_rules = 0;
    for (path, name, field) in fields.iter().filter(|(p, _, _)| !p.is_empty()) {
        let section = section(&doc, path);
        let row = section
            .lines()
            .find(|l| {
                l.starts_with(&format!("| `{name}` ")) || l.starts_with(&format!("| [`{name}`]"))
            })
            .unwrap_or_else(|| panic!("{path}.{name} has no row in its section:\n{section}"));
        if let Some(default) = &field.default {
            assert!(
                row.contains(&default.0.to_string().replace('|', "\\|")),
                "{path}.{name}: default {} missing from {row}",
                default.0
            );
        }
        if let Some(max) = field.max_length {
            assert!(
                row.contains(&format!("at most {max} characters")),
                "{path}.{name}: {row}"
            );
        }
        if let Some(max) = field.max_items {
            assert!(
                row.contains(&format!("at most {max} items")),
                "{path}.{name}: {row}"
            );
        }
        if let Some(values) = &field.enum_ {
            for v in values {
                let word = v.0.as_str().expect("string enums");
                assert!(
                    row.contains(&format!("`{word}`")),
                    "{path}.{name}: enum {word} in {row}"
                );
            }
        }
        // A scalar's CEL rules are in its row; an object's in its section.
        let rules_text = if field.properties.is_some() {
            section_for(&doc, path, name)
        } else {
            row.to_owned()
        };
        for rule in field.x_kubernetes_validations.iter().flatten() {
            let message = rule.message.as_deref().expect("every rule has a message");
            let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                rules_text.contains(&message.replace('|', "\\|")),
                "{path}.{name}: CEL message {message:?} missing"
            );
            checked_rules += 1;
        }
    }
    assert!(checked_rules >= 20, "CEL rules checked: {checked_rules}");
}

fn section_for(doc: &str, path: &str, name: &str) -> String {
    section(doc, &format!("{path}.{name}")).to_owned()
}

#[test]
fn targets_and_gates_each_have_a_section() {
    let doc = crd_reference(&Rollout::crd());
    for heading in [
        "spec.target.flagd",
        "spec.target.configMap",
        "spec.target.webhook",
        "spec.analysis.gates[].prometheus",
        "spec.analysis.gates[].alerts",
        "spec.analysis.gates[].ofrep",
        "spec.analysis.gates[].http",
        "spec.stages[]",
        "status",
    ] {
        section(&doc, heading);
    }
    // Numbers are written as people write them: errorLimit's minimum, not `0.0`.
    assert!(!doc.contains("minimum 0.0"));
}

#[test]
fn cli_reference_lists_every_visible_command_and_no_hidden_one() {
    let doc = generated("cli");
    for command in [
        "status",
        "get",
        "list",
        "pause",
        "resume",
        "promote",
        "abort",
        "retry",
        "lint",
        "simulate",
        "backtest",
        "report",
        "version",
        "completions",
        "crd",
        "controller",
    ] {
        assert!(
            doc.contains(&format!("\n## rollgate {command}\n")),
            "no section for {command}"
        );
        // Its help, as `rollgate COMMAND --help` prints it, names the same flags.
        let help = Command::new(env!("CARGO_BIN_EXE_rollgate"))
            .args([command, "--help"])
            .output()
            .expect("rollgate runs");
        let help = String::from_utf8_lossy(&help.stdout);
        let section = section(&doc, &format!("rollgate {command}"));
        for word in help.split_whitespace() {
            let flag = word
                .trim_start_matches(['(', '`'])
                .trim_end_matches([',', '.', ')', ';', ':']);
            if flag.starts_with("--")
                && flag.len() > 2
                && flag != "--help"
                && !flag.contains(['=', '`', '\''])
            {
                let bare = flag.split('<').next().unwrap_or(flag);
                assert!(
                    section.contains(&format!("`{bare}")) || section.contains(&format!(", {bare}")),
                    "rollgate {command}: {bare} from --help missing in cli.md"
                );
            }
        }
    }
    // Hidden commands and the completion protocol's subcommand are left out.
    assert!(!doc.contains("## rollgate docs"));
    assert!(!doc.contains("__complete"));
    // Defaults and possible values are shown.
    let simulate = section(&doc, "rollgate simulate");
    assert!(
        simulate.contains("Values: `text`, `json`. Default: `text`."),
        "{simulate}"
    );
    // A command that hides the global logging flags does not list them.
    let crd = section(&doc, "rollgate crd");
    assert!(!crd.contains("--log-level"), "{crd}");
    assert!(section(&doc, "rollgate controller").contains("--log-level"));
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_design_reference_in_the_code_names_a_section_of_docs_design_md() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let design = std::fs::read_to_string(root.join("docs/design.md")).expect("docs/design.md");
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut references = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        let name = file
            .strip_prefix(root)
            .unwrap_or(&file)
            .display()
            .to_string();
        if name == "tests/chart/reference_docs.rs" {
            continue; // this test spells the patterns it looks for
        }
        // The old name of the design document pointed outside the repository.
        let old = ["DESIGN", " §"].concat();
        assert!(!text.contains(&old), "{name} still cites {old}");
        let marker = "docs/design.md §";
        for (at, _) in text.match_indices(marker) {
            let number: String = text[at + marker.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            assert!(!number.is_empty(), "{name}: a reference without a number");
            assert!(
                design.contains(&format!("\n## {number}. ")),
                "{name} cites docs/design.md §{number}, which has no such section"
            );
            references += 1;
        }
    }
    assert!(references >= 20, "references found: {references}");
    // Rule numbers cited for §4 exist too.
    for rule in [
        "0. **Pre-checks**",
        "5. **Decision",
        "7. **Manual",
        "9. **Spec changes",
    ] {
        assert!(design.contains(rule), "docs/design.md §4 lacks rule {rule}");
    }
}

/// The README stays short and every relative link in it and in docs/ reaches a file (and,
/// for `#anchor` links into Markdown, a heading).
#[test]
fn readme_is_short_and_every_docs_link_resolves() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    assert!(
        readme.lines().count() <= 250,
        "README.md has {} lines",
        readme.lines().count()
    );
    let mut files = vec![root.join("README.md")];
    for dir in ["docs", "docs/reference"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("docs").flatten() {
            if entry.path().extension().is_some_and(|e| e == "md") {
                files.push(entry.path());
            }
        }
    }
    assert!(files.len() >= 10, "{files:?}");
    let anchor = |heading: &str| -> String {
        heading
            .trim()
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect()
    };
    let mut checked = 0;
    for file in &files {
        let raw = std::fs::read_to_string(file).expect("readable");
        // Links live outside code: drop fenced blocks and inline code spans.
        let mut fenced = false;
        let text: String = raw
            .lines()
            .filter(|l| {
                if l.trim_start().starts_with("```") {
                    fenced = !fenced;
                    return false;
                }
                !fenced
            })
            .map(|l| l.split('`').step_by(2).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n");
        let base = file.parent().expect("a directory");
        for (at, _) in text.match_indices("](") {
            let rest = &text[at + 2..];
            let Some(end) = rest.find(')') else { continue };
            let link = &rest[..end];
            if link.starts_with("http://") || link.starts_with("https://") || link.contains(' ') {
                continue;
            }
            let (path, fragment) = link.split_once('#').unwrap_or((link, ""));
            let target = if path.is_empty() {
                file.clone()
            } else {
                base.join(path)
            };
            assert!(
                target.exists(),
                "{}: link {link} reaches nothing",
                file.display()
            );
            if !fragment.is_empty() && target.extension().is_some_and(|e| e == "md") {
                let body = std::fs::read_to_string(&target).expect("readable");
                let found = body
                    .lines()
                    .filter_map(|l| l.strip_prefix('#'))
                    .map(|l| anchor(l.trim_start_matches('#')))
                    .any(|a| a == fragment);
                assert!(found, "{}: link {link}: no such heading", file.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "links checked: {checked}");
}
