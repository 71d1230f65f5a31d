//! Field sets for managed fields: which leaf paths of an object a manager owns, their
//! `FieldsV1` encoding (`{"f:data":{"f:key":{}}}`), and which paths a write may touch.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// A path of object keys from the root to a leaf (lists are leaves: atomic).
pub type FieldPath = Vec<String>;
/// A set of leaf paths.
pub type FieldSet = BTreeSet<FieldPath>;

/// Which part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The object itself; `separate_status` when status is its own subresource.
    Main { separate_status: bool },
    /// The `status` subresource.
    Status,
}

const OWNED_METADATA: [&str; 4] = ["labels", "annotations", "finalizers", "ownerReferences"];

/// Whether a write in `scope` may set the field at `path`.
pub fn in_scope(path: &[String], scope: Scope) -> bool {
    let Some(first) = path.first() else {
        return false;
    };
    match first.as_str() {
        "apiVersion" | "kind" => false,
        "metadata" => {
            matches!(scope, Scope::Main { .. })
                && path
                    .get(1)
                    .is_some_and(|f| OWNED_METADATA.contains(&f.as_str()))
        }
        "status" => match scope {
            Scope::Main { separate_status } => !separate_status,
            Scope::Status => true,
        },
        _ => !matches!(scope, Scope::Status),
    }
}

/// The leaf paths of `value` a write in `scope` may set.
pub fn leaf_paths(value: &Value, scope: Scope) -> FieldSet {
    let mut out = FieldSet::new();
    collect(value, &mut Vec::new(), &mut out);
    out.retain(|p| in_scope(p, scope));
    out
}

fn collect(value: &Value, prefix: &mut FieldPath, out: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                prefix.push(key.clone());
                collect(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
        }
    }
}

/// The value at `path`, if present.
pub fn get<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// Removes the field at `path`, if present.
pub fn remove(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = value;
    for key in parents {
        match current.get_mut(key) {
            Some(next) => current = next,
            None => return,
        }
    }
    if let Value::Object(map) = current {
        map.remove(last);
    }
}

/// Whether one path is a prefix of the other (they address overlapping fields).
pub fn overlaps(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// The paths (leaves of either) whose values differ between `old` and `new`, within `scope`.
pub fn changed_paths(old: &Value, new: &Value, scope: Scope) -> FieldSet {
    let mut all = leaf_paths(old, scope);
    all.extend(leaf_paths(new, scope));
    all.retain(|p| get(old, p) != get(new, p));
    all
}

/// `FieldsV1` encoding of a set.
pub fn encode(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for key in path {
            node = node
                .entry(format!("f:{key}"))
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("field set nodes are objects");
        }
    }
    Value::Object(root)
}

/// Decodes `FieldsV1`; unknown key forms (`k:`, `v:`, `.`) are taken as leaves where they stand.
pub fn decode(fields: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    decode_into(fields, &mut Vec::new(), &mut out);
    out
}

fn decode_into(node: &Value, prefix: &mut FieldPath, out: &mut FieldSet) {
    let children: Vec<(&String, &Value)> = node
        .as_object()
        .map(|m| m.iter().filter(|(k, _)| k.starts_with("f:")).collect())
        .unwrap_or_default();
    if children.is_empty() {
        if !prefix.is_empty() {
            out.insert(prefix.clone());
        }
        return;
    }
    for (key, child) in children {
        prefix.push(key["f:".len()..].to_owned());
        decode_into(child, prefix, out);
        prefix.pop();
    }
}

/// `.data.key` spelling of a path, as the API server names fields in conflict messages.
pub fn dotted(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}
