//! The checked-in CRD, `crds/rollout.yaml`, is what `rollgate crd` prints, and that text is a
//! CRD the API server takes: it reads back, it names the resource as users type it, and it has
//! the status subresource and the printer columns.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use rollgate::api::{Rollout, crd_yaml};

const CHECKED_IN: &str = "crds/rollout.yaml";
const REGENERATE: &str = "cargo run -q -- crd > crds/rollout.yaml";

fn generated() -> String {
    crd_yaml().expect("the CRD renders as YAML")
}

fn parsed() -> CustomResourceDefinition {
    serde_saphyr::from_str(&generated()).expect("the CRD YAML reads back as a CRD")
}

#[test]
fn checked_in_crd_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(CHECKED_IN);
    let checked_in = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read {CHECKED_IN} ({e}); generate it with `{REGENERATE}`")
    });
    let generated = generated();
    if checked_in != generated {
        let line = checked_in
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| checked_in.lines().count().min(generated.lines().count()));
        panic!(
            "{CHECKED_IN} differs from `rollgate crd` from line {}:\n  checked in: {:?}\n  generated:  {:?}\n\
             Regenerate it with `{REGENERATE}` and commit it.",
            line + 1,
            checked_in.lines().nth(line).unwrap_or("<end of file>"),
            generated.lines().nth(line).unwrap_or("<end of file>"),
        );
    }
}

#[test]
fn yaml_reads_back_as_the_same_crd() {
    assert_eq!(parsed(), Rollout::crd());
}

#[test]
fn names_scope_and_version() {
    let crd = parsed();
    assert_eq!(crd.metadata.name.as_deref(), Some("rollouts.rollgate.dev"));
    assert_eq!(crd.spec.group, "rollgate.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    let names = &crd.spec.names;
    assert_eq!(names.kind, "Rollout");
    assert_eq!(names.plural, "rollouts");
    assert_eq!(names.singular.as_deref(), Some("rollout"));
    assert_eq!(names.short_names.as_deref(), Some(&["rgo".to_owned()][..]));
    assert_eq!(
        names.categories.as_deref(),
        Some(&["rollgate".to_owned()][..])
    );
    assert_eq!(crd.spec.versions.len(), 1);
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.served && version.storage);
}

#[test]
fn has_the_status_subresource() {
    let crd = parsed();
    let subresources = crd.spec.versions[0]
        .subresources
        .as_ref()
        .expect("the version has subresources");
    assert!(subresources.status.is_some(), "no status subresource");
    assert!(subresources.scale.is_none());
}

#[test]
fn printer_columns() {
    let crd = parsed();
    let columns: Vec<_> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| {
            (
                c.name.as_str(),
                c.type_.as_str(),
                c.json_path.as_str(),
                c.priority,
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("Phase", "string", ".status.phase", None),
            ("Stage", "integer", ".status.stageNumber", None),
            ("Percent", "number", ".status.percent", None),
            ("Age", "date", ".metadata.creationTimestamp", None),
            ("Message", "string", ".status.message", None),
        ]
    );
}

#[test]
fn printer_columns_point_at_fields_of_the_schema() {
    let crd = parsed();
    let version = &crd.spec.versions[0];
    let schema = serde_json::to_value(
        version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("a schema"),
    )
    .expect("the schema serializes");
    for column in version.additional_printer_columns.iter().flatten() {
        let path = column.json_path.trim_start_matches('.');
        if path.starts_with("metadata.") {
            continue;
        }
        let mut node = &schema;
        for part in path.split('.') {
            node = &node["properties"][part];
        }
        let expected = match column.type_.as_str() {
            "date" => "string",
            other => other,
        };
        assert_eq!(node["type"], expected, "column {} ({path})", column.name);
    }
}

#[test]
fn describes_the_resource() {
    let crd = parsed();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("a schema");
    let description = schema.description.as_deref().unwrap_or_default();
    assert!(
        description.starts_with("A Rollout "),
        "top-level description: {description:?}"
    );
    assert!(!description.contains("Auto-generated"));
}

#[test]
fn crd_command_prints_the_same_text() {
    // `rollgate crd` prints `crd_yaml()` as is; check the binary when cargo built it.
    let Some(binary) = option_env!("CARGO_BIN_EXE_rollgate") else {
        return;
    };
    let output = std::process::Command::new(binary)
        .arg("crd")
        .output()
        .expect("rollgate runs");
    assert!(output.status.success(), "rollgate crd failed: {output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), generated());
}

/// Words YAML 1.1 (kubectl's reader) takes for booleans: a key spelt like one of them, in any
/// case, arrives at the API server as `true` or `false` and is pruned.
const YAML11_BOOLEANS: [&str; 8] = ["y", "yes", "n", "no", "on", "off", "true", "false"];

/// Every property name in a schema, at any depth (under `properties`, `items`,
/// `additionalProperties`, `anyOf`, `oneOf`, `allOf`, `not`), each with its path.
fn property_names(schema: &serde_json::Value, path: &str, out: &mut Vec<(String, String)>) {
    let Some(object) = schema.as_object() else {
        return;
    };
    if let Some(properties) = object.get("properties").and_then(|p| p.as_object()) {
        for (name, child) in properties {
            let child_path = format!("{path}.{name}");
            out.push((name.clone(), child_path.clone()));
            property_names(child, &child_path, out);
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(child) = object.get(key) {
            property_names(child, &format!("{path}[]"), out);
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for child in object
            .get(key)
            .and_then(|a| a.as_array())
            .into_iter()
            .flatten()
        {
            property_names(child, path, out);
        }
    }
}

fn yaml11_boolean_names(schema: &serde_json::Value) -> Vec<String> {
    let mut names = Vec::new();
    property_names(schema, "", &mut names);
    names
        .into_iter()
        .filter(|(name, _)| YAML11_BOOLEANS.contains(&name.to_ascii_lowercase().as_str()))
        .map(|(_, path)| path)
        .collect()
}

#[test]
fn no_field_is_named_after_a_yaml_1_1_boolean() {
    let crd = parsed();
    let schema = serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("a schema"),
    )
    .expect("the schema serializes");
    let mut all = Vec::new();
    property_names(&schema, "", &mut all);
    assert!(
        all.iter()
            .any(|(_, path)| path == ".spec.notifications[].when"),
        "the walk reaches nested properties: {} names",
        all.len()
    );
    assert_eq!(yaml11_boolean_names(&schema), Vec::<String>::new());
}

#[test]
fn the_yaml_1_1_walk_finds_such_names_at_any_depth() {
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {
                "list": {"type": "array", "items": {"type": "object", "properties": {"On": {}}}},
                "map": {"type": "object", "additionalProperties": {"properties": {"NO": {}}}},
                "either": {"anyOf": [{"properties": {"y": {}}}, {"properties": {"fine": {}}}]},
                "onVariant": {"type": "string"}
            }}
        }
    });
    let mut found = yaml11_boolean_names(&schema);
    found.sort();
    assert_eq!(
        found,
        [".spec.either.y", ".spec.list[].On", ".spec.map[].NO"]
    );
}
