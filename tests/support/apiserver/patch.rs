//! JSON merge patch (RFC 7386), also used for strategic merge patches (the stand-in knows no
//! patch strategies: lists are replaced whole), and the deep merge server-side apply uses.

use serde_json::Value;

/// Applies a JSON merge patch to `target`: objects merge key by key, `null` deletes, anything
/// else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Merges `applied` into `target` the way server-side apply sets fields: objects merge key by
/// key, everything else (lists included) replaces; `null` sets null.
pub fn deep_merge(target: &mut Value, applied: &Value) {
    match (target, applied) {
        (Value::Object(map), Value::Object(applied)) => {
            for (key, value) in applied {
                match map.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        deep_merge(existing, value)
                    }
                    _ => {
                        map.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (target, applied) => *target = applied.clone(),
    }
}
