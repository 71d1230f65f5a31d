//! Checks a YAML document against a JSON schema (the CRD's, or a scenario's) before it meets
//! the Rust types, so a file gets the refusals `kubectl apply` would give, in the file's terms:
//! `spec.stages[0].percent: expected an integer from 0 to 100, found the string "5"`, or
//! `spec.stagse: unknown field; did you mean stages?`.
//!
//! It reads the parts of a schema rollgate's schemas use: `type` (one or a list), `nullable`,
//! `properties`, `required`, `additionalProperties`, `items`, `enum`, `minimum`, `maximum`,
//! `maxLength`, `maxItems` and `anyOf`/`oneOf`. A node whose schema names no type (such as
//! `metadata`) is accepted as it is.

use serde_json::Value;

use super::yaml_node::Node;
use crate::api::{PERCENT_DECIMALS_RULE, Percent};

/// Every place where `node` breaks `schema`, each as `path: problem`; `path` names the node
/// (empty for the document itself).
pub fn check(schema: &Value, node: &Node, path: &str) -> Vec<String> {
    let mut problems = Vec::new();
    check_node(schema, node, path, &mut problems);
    problems
}

fn check_node(schema: &Value, node: &Node, path: &str, problems: &mut Vec<String>) {
    if let Some(alternatives) = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        check_alternatives(alternatives, node, path, problems);
        return;
    }
    let types = types(schema);
    if matches!(node, Node::Null)
        && (schema.get("nullable") == Some(&Value::Bool(true)) || types.contains(&"null"))
    {
        return;
    }
    let Some(kind) = types.iter().copied().find(|t| *t != "null") else {
        return;
    };
    let fits = match (kind, node) {
        ("integer", Node::Int(i)) => in_range(schema, *i as f64),
        ("number", Node::Int(i)) => in_range(schema, *i as f64),
        ("number", Node::Float(f)) => f.is_nan() || in_range(schema, *f),
        ("string", Node::Str(s)) => {
            check_string(schema, s, path, problems);
            true
        }
        ("boolean", Node::Bool(_)) => true,
        ("array", Node::Seq(items)) => {
            check_list(schema, items, path, problems);
            true
        }
        ("object", Node::Map(entries)) => {
            check_mapping(schema, entries, path, problems);
            true
        }
        _ => false,
    };
    if !fits {
        problems.push(format!(
            "{}: expected {}, found {}",
            name(path),
            expected(schema, kind),
            node.describe()
        ));
    } else if let Node::Float(f) = node
        && is_percent(schema)
        && let Err(e) = Percent::from_f64(*f)
    {
        // The CEL rule `kubectl apply` would run on a percent: at most two decimals.
        problems.push(format!("{}: {e}", name(path)));
    }
}

/// Whether the schema is a percent's: it carries the CRD's two-decimals CEL rule.
fn is_percent(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .is_some_and(|rules| {
            rules
                .iter()
                .any(|r| r.get("rule").and_then(Value::as_str) == Some(PERCENT_DECIMALS_RULE))
        })
}

fn check_alternatives(alternatives: &[Value], node: &Node, path: &str, problems: &mut Vec<String>) {
    let mut first = None;
    for alternative in alternatives {
        let found = check(alternative, node, path);
        if found.is_empty() {
            return;
        }
        let is_null_only = types(alternative) == ["null"];
        if first.is_none() && !is_null_only {
            first = Some(found);
        }
    }
    problems.extend(first.unwrap_or_else(|| {
        vec![format!(
            "{}: {} is not allowed here",
            name(path),
            node.describe()
        )]
    }));
}

fn types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn in_range(schema: &Value, value: f64) -> bool {
    let above_min = schema
        .get("minimum")
        .and_then(Value::as_f64)
        .is_none_or(|min| value >= min);
    let below_max = schema
        .get("maximum")
        .and_then(Value::as_f64)
        .is_none_or(|max| value <= max);
    above_min && below_max
}

fn check_string(schema: &Value, text: &str, path: &str, problems: &mut Vec<String>) {
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
        let length = text.chars().count();
        if u64::try_from(length).unwrap_or(u64::MAX) > max {
            problems.push(format!(
                "{}: at most {max} characters allowed, found {length}",
                name(path)
            ));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.iter().any(|a| a.as_str() == Some(text))
    {
        problems.push(format!(
            "{}: expected {}, found {}",
            name(path),
            expected(schema, "string"),
            Node::Str(text.to_owned()).describe()
        ));
    }
}

fn check_list(schema: &Value, items: &[Node], path: &str, problems: &mut Vec<String>) {
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && u64::try_from(items.len()).unwrap_or(u64::MAX) > max
    {
        problems.push(format!(
            "{}: at most {max} entries allowed, found {}",
            name(path),
            items.len()
        ));
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            check_node(item_schema, item, &format!("{path}[{i}]"), problems);
        }
    }
}

fn check_mapping(
    schema: &Value,
    entries: &[(String, Node)],
    path: &str,
    problems: &mut Vec<String>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && u64::try_from(entries.len()).unwrap_or(u64::MAX) > max
    {
        problems.push(format!(
            "{}: at most {max} entries allowed, found {}",
            name(path),
            entries.len()
        ));
    }
    for (key, value) in entries {
        let child = child_path(path, key);
        match (properties.and_then(|p| p.get(key)), additional) {
            (Some(property), _) => check_node(property, value, &child, problems),
            (None, Some(Value::Object(_))) => {
                if let Some(additional) = additional {
                    check_node(additional, value, &child, problems);
                }
            }
            (None, Some(Value::Bool(true))) => {}
            (None, _) => match properties {
                Some(known) => match renamed(key, known) {
                    Some(problem) => {
                        problems.push(format!("{}{problem}", name(&child_path(path, OLD_WHEN))))
                    }
                    None => problems.push(unknown_field(&child, key, known.keys())),
                },
                // A mapping whose schema lists no fields (such as `metadata`) takes any.
                None if additional.is_none() => {}
                None => problems.push(format!("{}: unknown field", name(&child))),
            },
        }
    }
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !entries.iter().any(|(key, _)| key == required) {
            problems.push(format!(
                "{}: missing; this field is required",
                name(&child_path(path, required))
            ));
        }
    }
}

/// The old name of `spec.notifications[].when`.
const OLD_WHEN: &str = "on";

/// Fields renamed in this API version, refused by their old names with a message naming the
/// new one (the API server would silently drop them). Each entry: the keys the old field
/// arrives as, and its new name. `on` was renamed to `when` because YAML 1.1 (kubectl's
/// reader) takes the key `on` for the boolean `true`, so the old field also arrives as `true`.
const RENAMED: &[(&[&str], &str)] = &[(&[OLD_WHEN, "true"], "when")];

/// `: renamed to when` when `key` is the old name of a field the schema knows by its new
/// name (the caller puts the old name's path in front).
fn renamed(key: &str, known: &serde_json::Map<String, Value>) -> Option<String> {
    RENAMED.iter().find_map(|(old, new)| {
        (old.contains(&key) && known.contains_key(*new) && !known.contains_key(key)).then(|| {
            let how = if key == OLD_WHEN {
                String::new()
            } else {
                format!(" (YAML 1.1 reads the key {OLD_WHEN} as {key})")
            };
            format!(": renamed to {new}{how}")
        })
    })
}

/// `unknown field; did you mean stages?`, or the list of known fields when none is close.
fn unknown_field<'a>(path: &str, key: &str, known: impl Iterator<Item = &'a String>) -> String {
    let known: Vec<&String> = known.collect();
    let closest = known
        .iter()
        .map(|k| (strsim::normalized_damerau_levenshtein(key, k), *k))
        .filter(|(score, _)| *score >= 0.5)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match closest {
        Some((_, k)) => format!("{}: unknown field; did you mean {k}?", name(path)),
        None => {
            let list: Vec<&str> = known.iter().map(|k| k.as_str()).collect();
            format!(
                "{}: unknown field (known fields here: {})",
                name(path),
                list.join(", ")
            )
        }
    }
}

/// The path of `key` under `path`: `spec.stages`, or `gates["a b"]` for a key that is not a
/// plain name (quoted, control characters escaped), so a path always reads one way.
pub(crate) fn child_path(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (plain, path.is_empty()) {
        (true, true) => key.to_owned(),
        (true, false) => format!("{path}.{key}"),
        (false, _) => format!(
            "{path}[{:?}]",
            crate::text::capped(key, crate::text::REMOTE)
        ),
    }
}

fn name(path: &str) -> &str {
    if path.is_empty() {
        "the document"
    } else {
        path
    }
}

/// What the schema asks for, in words.
fn expected(schema: &Value, kind: &str) -> String {
    let min = schema.get("minimum").and_then(Value::as_f64);
    let max = schema.get("maximum").and_then(Value::as_f64);
    let noun = match kind {
        "integer" => "an integer",
        "number" => "a number",
        "string" => "a string",
        "boolean" => "true or false",
        "array" => "a list",
        "object" => "a mapping",
        other => other,
    };
    match (kind, min, max) {
        ("integer" | "number", Some(min), Some(max)) => format!("{noun} from {min} to {max}"),
        ("integer" | "number", Some(min), None) => format!("{noun} of at least {min}"),
        ("integer" | "number", None, Some(max)) => format!("{noun} of at most {max}"),
        ("string", _, _) => match schema.get("enum").and_then(Value::as_array) {
            Some(allowed) => {
                let words: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
                format!("one of {}", words.join(", "))
            }
            None => noun.to_owned(),
        },
        _ => noun.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(yaml: &str) -> Node {
        let options = serde_saphyr::options! {
            non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        };
        serde_saphyr::from_str_with_options(yaml, options).expect("parses")
    }

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["stages"],
            "properties": {
                "stages": {"type": "array", "maxItems": 2, "items": {
                    "type": "object",
                    "properties": {
                        "percent": {"type": "integer", "minimum": 0, "maximum": 100},
                        "duration": {"type": "string", "maxLength": 4, "nullable": true}
                    }
                }},
                "max": {"type": ["number", "null"]},
                "policy": {"type": "string", "enum": ["Revert", "Pause"]},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "metadata": {"type": "object"}
            }
        })
    }

    #[test]
    fn a_good_document_passes() {
        let good = node(
            "stages: [{percent: 5, duration: 2h}, {percent: 10, duration: ~}]\nmax: .nan\npolicy: Pause\nheaders: {A: b}\nmetadata: {anything: [1]}\n",
        );
        assert_eq!(check(&schema(), &good, ""), Vec::<String>::new());
    }

    #[test]
    fn numbers_are_typed_as_the_schema_types_them() {
        let bad = node("stages: [{percent: \"5\"}, {percent: 300}]\nmax: \"0.01\"\n");
        assert_eq!(
            check(&schema(), &bad, "spec"),
            [
                "spec.stages[0].percent: expected an integer from 0 to 100, found the string \"5\"",
                "spec.stages[1].percent: expected an integer from 0 to 100, found the integer 300",
                "spec.max: expected a number, found the string \"0.01\"",
            ]
        );
    }

    #[test]
    fn a_misspelt_field_is_named_with_the_closest_known_one() {
        let bad = node("stagse: []\n");
        assert_eq!(
            check(&schema(), &bad, "spec"),
            [
                "spec.stagse: unknown field; did you mean stages?",
                "spec.stages: missing; this field is required",
            ]
        );
        let far = node("stages: []\nzzzzzz: 1\n");
        let problems = check(&schema(), &far, "");
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("zzzzzz: unknown field (known fields here: "),
            "{problems:?}"
        );
    }

    #[test]
    fn the_old_name_of_a_renamed_field_names_the_new_one() {
        let renamed = json!({
            "type": "object",
            "properties": {"notifications": {"type": "array", "items": {
                "type": "object",
                "properties": {"slack": {"type": "object"}, "when": {"type": "array"}}
            }}}
        });
        for (yaml, expected) in [
            (
                "notifications: [{slack: {}}, {slack: {}, on: [rollback]}]\n",
                "",
            ),
            (
                "notifications: [{slack: {}}, {slack: {}, \"on\": [rollback]}]\n",
                "",
            ),
            (
                "notifications: [{slack: {}}, {slack: {}, \"true\": [rollback]}]\n",
                " (YAML 1.1 reads the key on as true)",
            ),
        ] {
            let problems = check(&renamed, &node(yaml), "spec");
            let ok = problems.len() == 1
                && problems[0].starts_with("spec.notifications[1].on: renamed to when")
                && (expected.is_empty() || problems[0].ends_with(expected));
            assert!(ok, "{yaml}: {problems:?}");
        }
        // Where the schema has no `when`, `on` is an unknown field like any other.
        let problems = check(&schema(), &node("stages: []\n\"on\": 1\n"), "");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("on: unknown field"), "{problems:?}");
    }

    #[test]
    fn limits_and_enums_are_stated() {
        let bad = node(
            "stages: [{duration: 12345}, {duration: \"123456\"}, {}]\npolicy: Revret\nheaders: {A: 1}\n",
        );
        assert_eq!(
            check(&schema(), &bad, ""),
            [
                "stages: at most 2 entries allowed, found 3",
                "stages[0].duration: expected a string, found the integer 12345",
                "stages[1].duration: at most 4 characters allowed, found 6",
                "policy: expected one of Revert, Pause, found the string \"Revret\"",
                "headers.A: expected a string, found the integer 1",
            ]
        );
    }
}
