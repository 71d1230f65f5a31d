//! The generated references under `docs/reference/`: the Rollout CRD's fields from its schema
//! (`rollgate docs crd`) and the command line from its clap definition (`rollgate docs cli`).
//! Tests keep the checked-in files equal to what these functions print.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// The command that regenerates `docs/reference/rollout.md`.
pub const CRD_REFERENCE_COMMAND: &str = "cargo run -q -- docs crd > docs/reference/rollout.md";
/// The command that regenerates `docs/reference/cli.md`.
pub const CLI_REFERENCE_COMMAND: &str = "cargo run -q -- docs cli > docs/reference/cli.md";

/// Text for a Markdown table cell: one line, `|` escaped.
fn cell(text: &str) -> String {
    let joined: Vec<&str> = text.split_whitespace().collect();
    joined.join(" ").replace('|', "\\|")
}

/// Inline code that survives backticks inside the text.
fn code(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let fence = if text.contains('`') { "``" } else { "`" };
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// The items' schema of an array.
fn items(schema: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match schema.items.as_ref()? {
        JSONSchemaPropsOrArray::Schema(s) => Some(s),
        JSONSchemaPropsOrArray::Schemas(v) => v.first(),
    }
}

/// The values' schema of a map (`additionalProperties`).
fn values(schema: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match schema.additional_properties.as_ref()? {
        JSONSchemaPropsOrBool::Schema(s) => Some(s),
        JSONSchemaPropsOrBool::Bool(_) => None,
    }
}

/// A type as a reader thinks of it: `string`, `integer (int32)`, `[]object`, `map[string]string`.
fn type_name(schema: &JSONSchemaProps) -> String {
    if schema.x_kubernetes_int_or_string == Some(true) {
        return "integer or string".to_owned();
    }
    let base = schema.type_.as_deref().unwrap_or("any");
    match base {
        "array" => match items(schema) {
            Some(i) => format!("[]{}", type_name(i)),
            None => "[]any".to_owned(),
        },
        "object" if schema.properties.is_none() => match values(schema) {
            Some(v) => format!("map[string]{}", type_name(v)),
            None => "object".to_owned(),
        },
        _ => match &schema.format {
            Some(f) => format!("{base} ({f})"),
            None => base.to_owned(),
        },
    }
}

/// A number as written in the schema, without a pointless `.0`.
fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// The limits a field carries: bounds, lengths, counts, enum values, pattern, CEL rules.
fn limits(schema: &JSONSchemaProps) -> Vec<String> {
    let mut out = Vec::new();
    let excl = |e: Option<bool>| if e == Some(true) { " (exclusive)" } else { "" };
    if let Some(min) = schema.minimum {
        out.push(format!(
            "minimum {}{}",
            number(min),
            excl(schema.exclusive_minimum)
        ));
    }
    if let Some(max) = schema.maximum {
        out.push(format!(
            "maximum {}{}",
            number(max),
            excl(schema.exclusive_maximum)
        ));
    }
    if let Some(n) = schema.min_length {
        out.push(format!("at least {n} characters"));
    }
    if let Some(n) = schema.max_length {
        out.push(format!("at most {n} characters"));
    }
    if let Some(n) = schema.min_items {
        out.push(format!("at least {n} items"));
    }
    if let Some(n) = schema.max_items {
        out.push(format!("at most {n} items"));
    }
    if let Some(n) = schema.max_properties {
        out.push(format!("at most {n} entries"));
    }
    if let Some(item) = items(schema) {
        // Limits on each item of a list of scalars belong to the list's row.
        if item.properties.is_none() {
            for l in limits(item) {
                out.push(format!("each item: {l}"));
            }
        }
    }
    if let Some(values) = schema.enum_.as_ref() {
        let words: Vec<String> = values
            .iter()
            .map(|v| match &v.0 {
                serde_json::Value::String(s) => code(s),
                other => code(&other.to_string()),
            })
            .collect();
        out.push(format!("one of {}", words.join(", ")));
    }
    if let Some(p) = &schema.pattern {
        out.push(format!("matches {}", code(p)));
    }
    out
}

/// The CEL rules of a schema node as `message` (`rule`) lines.
fn rules(schema: &JSONSchemaProps) -> Vec<String> {
    schema
        .x_kubernetes_validations
        .iter()
        .flatten()
        .map(|r| {
            let message = r
                .message
                .clone()
                .or_else(|| r.message_expression.clone())
                .unwrap_or_else(|| "rule broken".to_owned());
            format!(
                "{} — {}",
                message.split_whitespace().collect::<Vec<_>>().join(" "),
                code(&r.rule)
            )
        })
        .collect()
}

/// The object sections, depth first: path, schema.
fn sections<'a>(
    path: &str,
    schema: &'a JSONSchemaProps,
    out: &mut Vec<(String, &'a JSONSchemaProps)>,
) {
    if schema.properties.is_some() {
        out.push((path.to_owned(), schema));
    }
    for (name, field) in schema.properties.iter().flatten() {
        let child = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        walk_child(&child, field, out);
    }
}

fn walk_child<'a>(
    path: &str,
    field: &'a JSONSchemaProps,
    out: &mut Vec<(String, &'a JSONSchemaProps)>,
) {
    if field.properties.is_some() {
        sections(path, field, out);
    } else if let Some(item) = items(field) {
        walk_child(&format!("{path}[]"), item, out);
    } else if let Some(v) = values(field) {
        walk_child(&format!("{path}{{}}"), v, out);
    }
}

/// A Markdown anchor for a heading, as GitHub makes them.
fn anchor(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '_' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            ' ' => Some('-'),
            _ => None,
        })
        .collect()
}

/// The section a field's object is described in, if it has one.
fn section_of(path: &str, field: &JSONSchemaProps) -> Option<String> {
    if field.properties.is_some() {
        Some(path.to_owned())
    } else if let Some(item) = items(field) {
        section_of(&format!("{path}[]"), item)
    } else {
        values(field).and_then(|v| section_of(&format!("{path}{{}}"), v))
    }
}

/// The CRD reference, `docs/reference/rollout.md`, from the CRD's schema: every field with
/// its type, whether it is required, default, limits and CEL rules, object by object.
pub fn crd_reference(crd: &CustomResourceDefinition) -> String {
    let mut md = String::new();
    let spec = &crd.spec;
    let _ = writeln!(md, "# {} reference", spec.names.kind);
    md.push('\n');
    md.push_str(
        "<!-- Generated from the CRD by `rollgate docs crd`; do not edit. Regenerate with\n",
    );
    let _ = writeln!(md, "     `{CRD_REFERENCE_COMMAND}`. -->");
    md.push('\n');
    let short = spec.names.short_names.clone().unwrap_or_default();
    for version in &spec.versions {
        let _ = writeln!(
            md,
            "- API version: `{}/{}`{}",
            spec.group,
            version.name,
            if version.storage { " (stored)" } else { "" }
        );
    }
    let _ = writeln!(md, "- Kind: `{}` ({})", spec.names.kind, spec.scope);
    let _ = writeln!(
        md,
        "- Names: `{}`, `{}`{}",
        spec.names.plural,
        spec.names.singular.as_deref().unwrap_or(""),
        short.iter().map(|s| format!(", `{s}`")).collect::<String>()
    );
    md.push_str(
        "\nEach object below lists its fields. *Required* fields must be set; a field with a\n\
         default gets it when left out. *Limits* are checked by the API server (OpenAPI schema)\n\
         and the CEL rules are checked by the API server too, each with the message shown.\n\
         The controller and `rollgate lint` check the same plan rules again.\n",
    );
    for version in &spec.versions {
        if let Some(columns) = &version.additional_printer_columns {
            md.push_str("\n## Printer columns\n\n| Column | Type | Path | Description |\n|---|---|---|---|\n");
            for c in columns {
                let _ = writeln!(
                    md,
                    "| {} | {} | `{}` | {} |",
                    c.name,
                    c.type_,
                    c.json_path,
                    cell(c.description.as_deref().unwrap_or(""))
                );
            }
        }
        let Some(root) = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
        else {
            continue;
        };
        let mut found = Vec::new();
        sections("", root, &mut found);
        // The root's own section has nothing to list beyond spec and status.
        md.push_str("\n## Contents\n\n");
        for (path, _) in found.iter().filter(|(p, _)| !p.is_empty()) {
            let depth = path.matches('.').count();
            let _ = writeln!(md, "{}- [`{path}`](#{})", "  ".repeat(depth), anchor(path));
        }
        for (path, schema) in found.iter().filter(|(p, _)| !p.is_empty()) {
            let _ = writeln!(md, "\n## {path}\n");
            if let Some(d) = &schema.description {
                let _ = writeln!(md, "{}\n", d.trim());
            }
            let object_rules = rules(schema);
            if !object_rules.is_empty() {
                md.push_str("Rules:\n\n");
                for r in &object_rules {
                    let _ = writeln!(md, "- {r}");
                }
                md.push('\n');
            }
            md.push_str("| Field | Type | Required | Default | Description | Limits |\n");
            md.push_str("|---|---|---|---|---|---|\n");
            let required = schema.required.clone().unwrap_or_default();
            let fields: BTreeMap<_, _> = schema.properties.iter().flatten().collect();
            for (name, field) in fields {
                let child = format!("{path}.{name}");
                let name_cell = match section_of(&child, field) {
                    Some(s) => format!("[`{name}`](#{})", anchor(&s)),
                    None => format!("`{name}`"),
                };
                let default = field
                    .default
                    .as_ref()
                    .map(|d| code(&d.0.to_string()).replace('|', "\\|"))
                    .unwrap_or_default();
                let mut lim = limits(field);
                // An object's own rules are listed in its section; a scalar's here.
                if field.properties.is_none() {
                    lim.extend(rules(field));
                    if let Some(item) = items(field).filter(|i| i.properties.is_none()) {
                        lim.extend(rules(item).into_iter().map(|r| format!("each item: {r}")));
                    }
                }
                let _ = writeln!(
                    md,
                    "| {name_cell} | {} | {} | {default} | {} | {} |",
                    type_name(field),
                    if required.contains(name) { "yes" } else { "" },
                    cell(field.description.as_deref().unwrap_or("")),
                    lim.join("; ").replace('|', "\\|")
                );
            }
        }
    }
    md
}

/// The CLI reference, `docs/reference/cli.md`, from the command line's clap definition:
/// every visible command with its usage, arguments and flags (help text, defaults, values).
/// Hidden commands and flags are left out.
pub fn cli_reference(command: &clap::Command) -> String {
    let mut command = command.clone();
    command.build();
    let name = command.get_name().to_owned();
    let mut md = String::new();
    let _ = writeln!(md, "# `{name}` command-line reference\n");
    md.push_str(
        "<!-- Generated from the clap definitions by `rollgate docs cli`; do not edit. Regenerate with\n",
    );
    let _ = writeln!(md, "     `{CLI_REFERENCE_COMMAND}`. -->\n");
    md.push_str(
        "Installed as `kubectl-rollgate`, every command is also `kubectl rollgate COMMAND`.\n\
         Every command takes `-h` (a summary) and `--help` (the whole text).\n\n",
    );
    let mut visible: Vec<&clap::Command> = command
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .collect();
    visible.sort_by_key(|c| c.get_display_order());
    md.push_str("## Commands\n\n| Command | What it does |\n|---|---|\n");
    for sub in &visible {
        let _ = writeln!(
            md,
            "| [`{name} {}`](#{}) | {} |",
            sub.get_name(),
            anchor(&format!("{name} {}", sub.get_name())),
            cell(&sub.get_about().map(|a| a.to_string()).unwrap_or_default())
        );
    }
    let _ = writeln!(md, "\n## {name}\n");
    write_command(&mut md, &command, &name);
    for sub in visible {
        write_subcommand(&mut md, sub, &name, 2);
    }
    md
}

fn write_subcommand(md: &mut String, command: &clap::Command, parent: &str, level: usize) {
    let full = format!("{parent} {}", command.get_name());
    let _ = writeln!(md, "{} {full}\n", "#".repeat(level.min(6)));
    write_command(md, command, &full);
    let mut subs: Vec<&clap::Command> = command
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .collect();
    subs.sort_by_key(|c| c.get_display_order());
    for sub in subs {
        write_subcommand(md, sub, &full, level + 1);
    }
}

fn write_command(md: &mut String, command: &clap::Command, full: &str) {
    if let Some(about) = command.get_long_about().or(command.get_about()) {
        let _ = writeln!(md, "{}\n", about.to_string().trim());
    }
    let mut usage = command.clone();
    let usage = usage.render_usage().to_string();
    let usage = usage.trim_start_matches("Usage: ").trim();
    // The top-level command renders its bare name; a subcommand's usage names its parents.
    let usage = if usage.starts_with(full) {
        usage.to_owned()
    } else {
        match usage.split_once(' ') {
            Some((_, rest)) => format!("{full} {rest}"),
            None => full.to_owned(),
        }
    };
    let _ = writeln!(md, "```text\n{usage}\n```\n");
    let aliases: Vec<&str> = command.get_visible_aliases().collect();
    if !aliases.is_empty() {
        let _ = writeln!(
            md,
            "Aliases: {}\n",
            aliases
                .iter()
                .map(|a| code(a))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let positionals: Vec<&clap::Arg> = command
        .get_positionals()
        .filter(|a| !a.is_hide_set())
        .collect();
    if !positionals.is_empty() {
        md.push_str("| Argument | Description |\n|---|---|\n");
        for arg in positionals {
            let value = arg
                .get_value_names()
                .and_then(|v| v.first())
                .map(|v| v.to_string())
                .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
            let many = if arg.get_num_args().is_some_and(|n| n.max_values() > 1) {
                "…"
            } else {
                ""
            };
            let required = if arg.is_required_set() {
                ""
            } else {
                " (optional)"
            };
            let _ = writeln!(md, "| `{value}{many}`{required} | {} |", arg_help(arg));
        }
        md.push('\n');
    }
    let options: Vec<&clap::Arg> = command
        .get_arguments()
        .filter(|a| !a.is_positional() && !a.is_hide_set())
        // Every command takes `-h`/`--help`; the header says so once.
        .filter(|a| a.get_id() != "help")
        .collect();
    if !options.is_empty() {
        md.push_str("| Flag | Description |\n|---|---|\n");
        for arg in options {
            let _ = writeln!(md, "| {} | {} |", flag_names(arg), arg_help(arg));
        }
        md.push('\n');
    }
}

/// `-n, --namespace NAMESPACE` in code spans.
fn flag_names(arg: &clap::Arg) -> String {
    let mut names = Vec::new();
    if let Some(s) = arg.get_short() {
        names.push(format!("-{s}"));
    }
    if let Some(l) = arg.get_long() {
        names.push(format!("--{l}"));
    }
    let takes_value = arg.get_action().takes_values();
    let value = if takes_value {
        let v = arg
            .get_value_names()
            .and_then(|v| v.first())
            .map(|v| v.to_string())
            .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
        format!(" {v}")
    } else {
        String::new()
    };
    format!("`{}{value}`", names.join(", "))
}

/// An argument's help, its possible values, default and environment variable.
fn arg_help(arg: &clap::Arg) -> String {
    let mut text = arg
        .get_long_help()
        .or(arg.get_help())
        .map(|h| cell(&h.to_string()))
        .unwrap_or_default();
    let mut extra = Vec::new();
    if arg.get_action().takes_values() && !arg.is_hide_possible_values_set() {
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| code(v.get_name()))
            .collect();
        if !values.is_empty() {
            extra.push(format!("Values: {}.", values.join(", ")));
        }
    }
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|d| code(&d.to_string_lossy()))
        .collect();
    let switch = matches!(
        arg.get_action(),
        clap::ArgAction::SetTrue | clap::ArgAction::SetFalse | clap::ArgAction::Count
    );
    if !defaults.is_empty() && !arg.is_hide_default_value_set() && !switch {
        extra.push(format!("Default: {}.", defaults.join(", ")));
    }
    if let Some(env) = arg.get_env()
        && !arg.is_hide_env_set()
    {
        extra.push(format!("Environment: `{}`.", env.to_string_lossy()));
    }
    if arg.is_required_set() {
        extra.push("Required.".to_owned());
    }
    if !extra.is_empty() && !text.is_empty() && !text.ends_with(['.', '?', '!']) {
        text.push('.');
    }
    for e in extra {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&e);
    }
    text
}
