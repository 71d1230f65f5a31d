//! Reading a flag's rollout percent back from a flagd definition the controller wrote.

use serde_json::Value;

/// The flagd definition in `key` of a ConfigMap object.
pub fn definition(config_map: &Value, key: &str) -> Option<Value> {
    let text = config_map["data"][key].as_str()?;
    serde_json::from_str(text).ok()
}

/// The percent of users `flag` serves `on_variant` through its `fractional` rule: the weight of
/// `on_variant` over the sum of weights, rounded. `Some(0)` for a flag without a fractional
/// rule (everyone gets the default), `None` when the flag is absent.
pub fn percent(definition: &Value, flag: &str, on_variant: &str) -> Option<u8> {
    let flag = definition["flags"].get(flag)?;
    let Some(buckets) = find_fractional(&flag["targeting"]) else {
        return Some(0);
    };
    let mut on = 0.0;
    let mut total = 0.0;
    for bucket in buckets {
        let Some(pair) = bucket.as_array() else {
            continue;
        };
        let weight = pair.get(1).and_then(Value::as_f64).unwrap_or(1.0);
        total += weight;
        if pair.first().and_then(Value::as_str) == Some(on_variant) {
            on += weight;
        }
    }
    (total > 0.0).then(|| (on * 100.0 / total).round() as u8)
}

fn find_fractional(rule: &Value) -> Option<&Vec<Value>> {
    match rule {
        Value::Object(map) => map
            .get("fractional")
            .and_then(Value::as_array)
            .or_else(|| map.values().find_map(find_fractional)),
        Value::Array(items) => items.iter().find_map(find_fractional),
        _ => None,
    }
}
