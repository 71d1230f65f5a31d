//! Deterministic CBOR (RFC 8949 §4.2.1, core deterministic encoding) of JSON values, as flagd's
//! CBOR `fractional` bucketing hashes them.
//!
//! Before encoding, numbers are normalised the way flagd's "non-string fractional" design
//! requires: a float with no fractional part within `[-2^63, 2^64)` becomes an integer (so
//! `1.0`, `1` and `-0.0`/`0` encode alike); any other float is written in the shortest of
//! half, single and double precision that holds it exactly. Map keys are sorted by the bytes
//! of their encodings.

use half::f16;
use serde_json::{Map, Number, Value};

const UNSIGNED: u8 = 0;
const NEGATIVE: u8 = 1;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;

/// The deterministic CBOR encoding of `value`.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(0xf6),
        Value::Bool(false) => out.push(0xf4),
        Value::Bool(true) => out.push(0xf5),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => {
            write_head(out, TEXT, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            write_head(out, ARRAY, items.len() as u64);
            items.iter().for_each(|item| write_value(out, item));
        }
        Value::Object(map) => write_map(out, map),
    }
}

fn write_map(out: &mut Vec<u8>, map: &Map<String, Value>) {
    let mut entries: Vec<(Vec<u8>, &Value)> = map
        .iter()
        .map(|(key, value)| (encode(&Value::String(key.clone())), value))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    write_head(out, MAP, entries.len() as u64);
    for (key, value) in entries {
        out.extend_from_slice(&key);
        write_value(out, value);
    }
}

fn write_number(out: &mut Vec<u8>, n: &Number) {
    if let Some(u) = n.as_u64() {
        write_head(out, UNSIGNED, u);
    } else if let Some(i) = n.as_i64() {
        write_signed(out, i);
    } else if let Some(f) = n.as_f64() {
        write_float(out, f);
    }
}

fn write_signed(out: &mut Vec<u8>, i: i64) {
    if i >= 0 {
        write_head(out, UNSIGNED, i as u64);
    } else {
        // CBOR stores a negative integer n as -1 - n.
        write_head(out, NEGATIVE, (-1 - i) as u64);
    }
}

/// Two to the 63rd and 64th powers, exactly representable as `f64`.
const TWO_63: f64 = 9_223_372_036_854_775_808.0;
const TWO_64: f64 = 18_446_744_073_709_551_616.0;

fn write_float(out: &mut Vec<u8>, f: f64) {
    if f.fract() == 0.0 && (-TWO_63..TWO_64).contains(&f) {
        if f >= 0.0 {
            write_head(out, UNSIGNED, f as u64);
        } else {
            write_signed(out, f as i64);
        }
        return;
    }
    let half = f16::from_f64(f);
    if half.to_f64() == f {
        out.push(0xf9);
        out.extend_from_slice(&half.to_bits().to_be_bytes());
        return;
    }
    let single = f as f32;
    if f64::from(single) == f {
        out.push(0xfa);
        out.extend_from_slice(&single.to_bits().to_be_bytes());
        return;
    }
    out.push(0xfb);
    out.extend_from_slice(&f.to_bits().to_be_bytes());
}

/// Writes a major type with its argument in the shortest form.
fn write_head(out: &mut Vec<u8>, major: u8, argument: u64) {
    let major = major << 5;
    if argument < 24 {
        out.push(major | argument as u8);
    } else if let Ok(byte) = u8::try_from(argument) {
        out.extend_from_slice(&[major | 24, byte]);
    } else if let Ok(short) = u16::try_from(argument) {
        out.push(major | 25);
        out.extend_from_slice(&short.to_be_bytes());
    } else if let Ok(word) = u32::try_from(argument) {
        out.push(major | 26);
        out.extend_from_slice(&word.to_be_bytes());
    } else {
        out.push(major | 27);
        out.extend_from_slice(&argument.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::encode;
    use serde_json::json;

    #[test]
    fn rfc_8949_appendix_a_examples() {
        let cases: &[(serde_json::Value, &[u8])] = &[
            (json!(0), &[0x00]),
            (json!(23), &[0x17]),
            (json!(24), &[0x18, 0x18]),
            (json!(1000), &[0x19, 0x03, 0xe8]),
            (json!(-1), &[0x20]),
            (json!(-1000), &[0x39, 0x03, 0xe7]),
            (json!(1.5), &[0xf9, 0x3e, 0x00]),
            (json!(100000.5), &[0xfa, 0x47, 0xc3, 0x50, 0x40]),
            (
                json!(1.1),
                &[0xfb, 0x3f, 0xf1, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a],
            ),
            (json!(-0.0), &[0x00]),
            (json!(1.0), &[0x01]),
            (json!("a"), &[0x61, 0x61]),
            (json!([1, [2, 3]]), &[0x82, 0x01, 0x82, 0x02, 0x03]),
            (
                json!({"b": 1, "a": 2}),
                &[0xa2, 0x61, 0x61, 0x02, 0x61, 0x62, 0x01],
            ),
            (
                json!({"aa": 1, "z": 2}),
                &[0xa2, 0x61, 0x7a, 0x02, 0x62, 0x61, 0x61, 0x01],
            ),
            (json!(true), &[0xf5]),
            (json!(null), &[0xf6]),
        ];
        for (value, bytes) in cases {
            assert_eq!(encode(value), *bytes, "{value}");
        }
    }
}
