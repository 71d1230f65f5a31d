//! A small flagd flag-definition evaluator for tests, used where the real one (the Python
//! `openfeature-flagd-core`) is not needed or not wanted, and to play evaluators of older
//! versions. It follows flagd's rules for what the tests use: `state`, `variants`,
//! `defaultVariant`, and targeting with the JSONLogic operators `var`, `if`, `in`, `==`,
//! `cat`, plus flagd's `fractional` in any bucketing version (delegated to
//! `rollgate::gates::ofrep::bucketing`, which is checked against the flagd-testbed vectors).
//! A rule that resolves to null or an unknown variant serves the default variant, as flagd does.

use rollgate::api::FlagdBucketing;
use rollgate::gates::ofrep::bucketing::{distribute, murmur3_32, shorthand_input, value_input};
use serde_json::{Map, Value, json};

/// One evaluation's outcome.
#[derive(Clone, Debug, PartialEq)]
pub enum Evaluation {
    /// The variant served and its value.
    Resolved {
        variant: String,
        value: Value,
        reason: &'static str,
    },
    /// No such flag.
    NotFound,
}

/// Evaluates `flag_key` of a flagd definition (`{"flags": {...}}`) for a targeting key.
pub fn evaluate(
    definition: &Value,
    flag_key: &str,
    targeting_key: &str,
    version: FlagdBucketing,
) -> Evaluation {
    let Some(flag) = definition.get("flags").and_then(|f| f.get(flag_key)) else {
        return Evaluation::NotFound;
    };
    let variants = flag
        .get("variants")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let default = flag
        .get("defaultVariant")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let resolve = |name: &str, reason| Evaluation::Resolved {
        variant: name.to_string(),
        value: variants.get(name).cloned().unwrap_or(Value::Null),
        reason,
    };
    let Some(targeting) = flag
        .get("targeting")
        .filter(|t| t.as_object().is_some_and(|o| !o.is_empty()))
    else {
        return resolve(&default, "STATIC");
    };
    let data = json!({"targetingKey": targeting_key, "$flagd": {"flagKey": flag_key}});
    match eval(targeting, &data, version) {
        Value::String(name) if variants.contains_key(&name) => resolve(&name, "TARGETING_MATCH"),
        Value::Bool(b) if variants.contains_key(&b.to_string()) => {
            resolve(&b.to_string(), "TARGETING_MATCH")
        }
        _ => resolve(&default, "DEFAULT"),
    }
}

fn eval(rule: &Value, data: &Value, version: FlagdBucketing) -> Value {
    match rule {
        Value::Array(items) => Value::Array(items.iter().map(|i| eval(i, data, version)).collect()),
        Value::Object(map) if map.len() == 1 => {
            let (op, args) = map.iter().next().expect("one entry");
            operate(op, args, data, version)
        }
        other => other.clone(),
    }
}

fn operate(op: &str, args: &Value, data: &Value, version: FlagdBucketing) -> Value {
    let args: Vec<Value> = match args {
        Value::Array(items) => items.clone(),
        single => vec![single.clone()],
    };
    match op {
        "var" => var(&eval(&args[0], data, version), data),
        "if" => {
            let mut rest = args.as_slice();
            while rest.len() >= 2 {
                if truthy(&eval(&rest[0], data, version)) {
                    return eval(&rest[1], data, version);
                }
                rest = &rest[2..];
            }
            rest.first().map_or(Value::Null, |r| eval(r, data, version))
        }
        "in" => {
            let needle = eval(&args[0], data, version);
            match eval(&args[1], data, version) {
                Value::Array(items) => Value::Bool(items.contains(&needle)),
                Value::String(s) => Value::Bool(needle.as_str().is_some_and(|n| s.contains(n))),
                _ => Value::Bool(false),
            }
        }
        "==" => Value::Bool(eval(&args[0], data, version) == eval(&args[1], data, version)),
        "cat" => Value::String(
            args.iter()
                .map(|a| match eval(a, data, version) {
                    Value::String(s) => s,
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .collect(),
        ),
        "fractional" => fractional(&args, data, version),
        _ => Value::Null,
    }
}

fn fractional(args: &[Value], data: &Value, version: FlagdBucketing) -> Value {
    let args: Vec<Value> = args.iter().map(|a| eval(a, data, version)).collect();
    let (input, buckets) = match args.first() {
        Some(Value::Array(_)) => {
            let flag_key = data["$flagd"]["flagKey"].as_str().unwrap_or_default();
            match data["targetingKey"].as_str().filter(|k| !k.is_empty()) {
                Some(key) => (Some(shorthand_input(version, flag_key, key)), &args[..]),
                None => (None, &args[..]),
            }
        }
        Some(value) => (value_input(version, value), &args[1..]),
        None => (None, &args[..]),
    };
    let Some(input) = input else {
        return Value::Null;
    };
    let mut names = Vec::new();
    let mut weights = Vec::new();
    for bucket in buckets {
        let Some(items) = bucket.as_array().filter(|i| !i.is_empty()) else {
            return Value::Null;
        };
        names.push(items[0].clone());
        weights.push(items.get(1).and_then(Value::as_i64).unwrap_or(1));
    }
    distribute(version, murmur3_32(&input), &weights).map_or(Value::Null, |i| names[i].clone())
}

fn var(path: &Value, data: &Value) -> Value {
    let Some(path) = path.as_str() else {
        return Value::Null;
    };
    path.split('.')
        .try_fold(data, |node, part| node.get(part))
        .cloned()
        .unwrap_or(Value::Null)
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(_) => true,
    }
}

/// The flagd definition a percentage rollout of `flag` uses: allowlisted keys get `on`, the
/// rest `fractional` over the targeting key, `[on, percent]` then `[off, 100 - percent]`.
pub fn rollout_definition(flag: &str, percent: u8, allowlist: &[String]) -> Value {
    let percent = i64::from(percent);
    let mut flags = Map::new();
    flags.insert(
        flag.to_string(),
        json!({
            "state": "ENABLED",
            "variants": {"on": true, "off": false},
            "defaultVariant": "off",
            "targeting": {
                "if": [
                    {"in": [{"var": "targetingKey"}, allowlist]},
                    "on",
                    {"fractional": [["on", percent], ["off", 100 - percent]]}
                ]
            }
        }),
    );
    json!({"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": flags})
}
