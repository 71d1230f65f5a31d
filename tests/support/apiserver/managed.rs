//! Field ownership: `metadata.managedFields` per (manager, operation, subresource), server-side
//! apply with conflicts, and the ownership an update (PUT or patch) takes.

use serde_json::{Value, json};

use super::fields::{self, FieldSet, Scope};
use super::patch::deep_merge;

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// `manager`.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// `status` for the status subresource.
    pub subresource: Option<String>,
    /// `apiVersion` of the write.
    pub api_version: String,
    /// Owned leaf paths.
    pub fields: FieldSet,
    /// `time` of the last change.
    pub time: String,
}

/// A field another manager owns with a different value.
#[derive(Debug)]
pub struct Conflict {
    /// The owning manager.
    pub manager: String,
    /// The contested field.
    pub field: fields::FieldPath,
}

/// Reads an object's `metadata.managedFields`.
pub fn entries(object: &Value) -> Vec<Entry> {
    let Some(list) = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or_default().to_owned(),
            operation: e["operation"].as_str().unwrap_or("Update").to_owned(),
            subresource: e["subresource"].as_str().map(str::to_owned),
            api_version: e["apiVersion"].as_str().unwrap_or_default().to_owned(),
            fields: e.get("fieldsV1").map(fields::decode).unwrap_or_default(),
            time: e["time"].as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

/// Writes `entries` into the object's `metadata.managedFields` (dropping empty ones).
pub fn store(object: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields::encode(&e.fields),
            });
            if let Some(sub) = &e.subresource {
                v["subresource"] = json!(sub);
            }
            v
        })
        .collect();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// What one write is: who makes it, where, when.
pub struct Writer<'a> {
    /// The field manager.
    pub manager: &'a str,
    /// Object or status subresource.
    pub scope: Scope,
    /// `apiVersion` of the resource.
    pub api_version: &'a str,
    /// Now, RFC 3339.
    pub now: &'a str,
}

impl Writer<'_> {
    fn subresource(&self) -> Option<String> {
        matches!(self.scope, Scope::Status).then(|| "status".to_owned())
    }

    fn entry<'e>(&self, entries: &'e mut Vec<Entry>, operation: &str) -> &'e mut Entry {
        let subresource = self.subresource();
        let index = entries.iter().position(|e| {
            e.manager == self.manager && e.operation == operation && e.subresource == subresource
        });
        let index = index.unwrap_or_else(|| {
            entries.push(Entry {
                manager: self.manager.to_owned(),
                operation: operation.to_owned(),
                subresource,
                api_version: self.api_version.to_owned(),
                fields: FieldSet::new(),
                time: self.now.to_owned(),
            });
            entries.len() - 1
        });
        &mut entries[index]
    }
}

/// Server-side apply of `applied` onto `current` (already holding identity metadata):
/// returns the new object with its managed fields, or the conflicts when `force` is false.
pub fn apply(
    current: &Value,
    applied: &Value,
    writer: &Writer<'_>,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let applied_fields = fields::leaf_paths(applied, writer.scope);
    let mut scoped = Value::Object(serde_json::Map::new());
    for path in &applied_fields {
        if let Some(value) = fields::get(applied, path) {
            set(&mut scoped, path, value.clone());
        }
    }
    let mut merged = current.clone();
    deep_merge(&mut merged, &scoped);

    let mut entries = entries(current);
    let mut conflicts = Vec::new();
    for entry in entries.iter_mut().filter(|e| e.manager != writer.manager) {
        let contested: Vec<_> = entry
            .fields
            .iter()
            .filter(|owned| {
                applied_fields.iter().any(|p| fields::overlaps(p, owned))
                    && fields::get(current, owned) != fields::get(&merged, owned)
            })
            .cloned()
            .collect();
        for field in contested {
            if force {
                entry.fields.remove(&field);
            } else {
                conflicts.push(Conflict {
                    manager: entry.manager.clone(),
                    field,
                });
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }

    let mine = writer.entry(&mut entries, "Apply");
    let dropped: Vec<_> = mine.fields.difference(&applied_fields).cloned().collect();
    let changed = mine.fields != applied_fields;
    mine.fields = applied_fields.clone();
    if changed {
        mine.time = writer.now.to_owned();
    }
    for field in dropped {
        let owned_elsewhere = entries.iter().any(|e| {
            !(e.manager == writer.manager && e.operation == "Apply")
                && e.fields.iter().any(|f| fields::overlaps(f, &field))
        });
        if !owned_elsewhere && !applied_fields.iter().any(|p| fields::overlaps(p, &field)) {
            fields::remove(&mut merged, &field);
        }
    }
    store(&mut merged, &entries);
    Ok(merged)
}

/// Records the ownership an update by `writer` takes of the fields it changed from `old` to
/// `new` (taking them from every other manager), into `new`'s managed fields.
pub fn record_update(old: Option<&Value>, new: &mut Value, writer: &Writer<'_>) {
    let empty = json!({});
    let old = old.unwrap_or(&empty);
    let changed = fields::changed_paths(old, new, writer.scope);
    let mut entries = entries(old);
    if changed.is_empty() {
        store(new, &entries);
        return;
    }
    for entry in &mut entries {
        entry
            .fields
            .retain(|owned| !changed.iter().any(|c| fields::overlaps(c, owned)));
    }
    let present: FieldSet = changed
        .into_iter()
        .filter(|p| fields::get(new, p).is_some())
        .collect();
    let mine = writer.entry(&mut entries, "Update");
    mine.fields.extend(present);
    mine.time = writer.now.to_owned();
    store(new, &entries);
}

fn set(target: &mut Value, path: &[String], value: Value) {
    let mut node = target;
    for key in &path[..path.len() - 1] {
        if !node.get(key).is_some_and(Value::is_object) {
            node[key.as_str()] = json!({});
        }
        node = &mut node[key.as_str()];
    }
    node[path[path.len() - 1].as_str()] = value;
}
