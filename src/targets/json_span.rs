//! Byte positions of an object's members in a JSON text, so one value can be replaced or one
//! member added while every other byte of the document stays as it was (formatting, key
//! order, escapes, numbers written as their author wrote them).
//!
//! The scanner is iterative (no recursion) and refuses nesting deeper than [`MAX_DEPTH`]; it
//! is meant for text that already parsed as JSON, and on anything else it returns an error
//! rather than panicking.

use std::ops::Range;

/// Deepest nesting of objects and arrays accepted inside a scanned value.
pub const MAX_DEPTH: usize = 64;

/// One `"key": value` member of an object.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// The key, unescaped.
    pub key: String,
    /// Where the key's opening quote starts.
    pub key_start: usize,
    /// Where the value starts and ends.
    pub value: Range<usize>,
}

/// An object's members in document order, and where its braces are.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectSpan {
    /// Position of `{`.
    pub open: usize,
    /// Position of `}`.
    pub close: usize,
    /// The members.
    pub members: Vec<Member>,
}

impl ObjectSpan {
    /// The one member named `key`; an error when the key appears more than once (JSON
    /// readers disagree on which one wins, so the document is ambiguous).
    pub fn member(&self, key: &str) -> Result<Option<&Member>, String> {
        let mut found = self.members.iter().filter(|m| m.key == key);
        let first = found.next();
        if found.next().is_some() {
            return Err(format!("key {key:?} appears more than once"));
        }
        Ok(first)
    }

    /// Where to insert a new member and the text to put before it: after the last member,
    /// with a comma and the same line break and indentation the last member has (or right
    /// after `{` when the object is empty).
    pub fn insertion(&self, text: &str) -> (usize, String) {
        let Some(last) = self.members.last() else {
            return (self.open + 1, String::new());
        };
        let before_key = &text[..last.key_start];
        let gap_start = before_key
            .rfind(|c: char| !c.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        let gap = &before_key[gap_start..];
        let separator = if gap.is_empty() {
            ",".to_owned()
        } else {
            format!(",{gap}")
        };
        (last.value.end, separator)
    }
}

/// The span of the value that starts at or after `at` (leading whitespace skipped).
pub fn value_at(text: &str, at: usize) -> Result<Range<usize>, String> {
    let bytes = text.as_bytes();
    let start = skip_whitespace(bytes, at);
    let end = skip_value(bytes, start)?;
    Ok(start..end)
}

/// The members of the object that starts at `open` (which must be `{`).
pub fn object_at(text: &str, open: usize) -> Result<ObjectSpan, String> {
    let bytes = text.as_bytes();
    if bytes.get(open) != Some(&b'{') {
        return Err(format!("expected an object at byte {open}"));
    }
    let mut members = Vec::new();
    let mut i = skip_whitespace(bytes, open + 1);
    if bytes.get(i) == Some(&b'}') {
        return Ok(ObjectSpan {
            open,
            close: i,
            members,
        });
    }
    loop {
        if bytes.get(i) != Some(&b'"') {
            return Err(format!("expected a key at byte {i}"));
        }
        let key_end = skip_string(bytes, i)?;
        let key: String = serde_json::from_str(&text[i..key_end])
            .map_err(|e| format!("bad key at byte {i}: {e}"))?;
        let colon = skip_whitespace(bytes, key_end);
        if bytes.get(colon) != Some(&b':') {
            return Err(format!("expected ':' at byte {colon}"));
        }
        let value = value_at(text, colon + 1)?;
        members.push(Member {
            key,
            key_start: i,
            value: value.clone(),
        });
        let next = skip_whitespace(bytes, value.end);
        match bytes.get(next) {
            Some(b',') => i = skip_whitespace(bytes, next + 1),
            Some(b'}') => {
                return Ok(ObjectSpan {
                    open,
                    close: next,
                    members,
                });
            }
            _ => return Err(format!("expected ',' or '}}' at byte {next}")),
        }
    }
}

/// The spans of the elements of the array that starts at `open` (which must be `[`).
pub fn array_at(text: &str, open: usize) -> Result<Vec<Range<usize>>, String> {
    let bytes = text.as_bytes();
    if bytes.get(open) != Some(&b'[') {
        return Err(format!("expected an array at byte {open}"));
    }
    let mut elements = Vec::new();
    let mut i = skip_whitespace(bytes, open + 1);
    if bytes.get(i) == Some(&b']') {
        return Ok(elements);
    }
    loop {
        let value = value_at(text, i)?;
        let next = skip_whitespace(bytes, value.end);
        elements.push(value);
        match bytes.get(next) {
            Some(b',') => i = skip_whitespace(bytes, next + 1),
            Some(b']') => return Ok(elements),
            _ => return Err(format!("expected ',' or ']' at byte {next}")),
        }
    }
}

fn skip_whitespace(bytes: &[u8], mut i: usize) -> usize {
    while bytes
        .get(i)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        i += 1;
    }
    i
}

/// The end (one past the closing quote) of the string that starts at `start`.
fn skip_string(bytes: &[u8], start: usize) -> Result<usize, String> {
    let mut i = start + 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(format!("unterminated string at byte {start}"))
}

/// The end of the value that starts at `start`.
fn skip_value(bytes: &[u8], start: usize) -> Result<usize, String> {
    match bytes.get(start) {
        None => Err(format!("expected a value at byte {start}")),
        Some(b'"') => skip_string(bytes, start),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = start;
            while let Some(&b) = bytes.get(i) {
                match b {
                    b'"' => {
                        i = skip_string(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => {
                        depth += 1;
                        if depth > MAX_DEPTH {
                            return Err(format!(
                                "the value at byte {start} is nested deeper than {MAX_DEPTH} levels"
                            ));
                        }
                    }
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            Err(format!("unclosed object or array at byte {start}"))
        }
        Some(_) => {
            let mut i = start;
            while bytes
                .get(i)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                i += 1;
            }
            if i == start {
                Err(format!("expected a value at byte {start}"))
            } else {
                Ok(i)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_found_with_their_spans() {
        let text = r#" { "a" : [1, {"}": "]"}], "b\u0022c":"x\"y" , "d":{} } "#;
        let object = object_at(text, 1).expect("object");
        let keys: Vec<_> = object.members.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["a", "b\"c", "d"]);
        let values: Vec<_> = object
            .members
            .iter()
            .map(|m| &text[m.value.clone()])
            .collect();
        assert_eq!(values, [r#"[1, {"}": "]"}]"#, r#""x\"y""#, "{}"]);
        assert_eq!(&text[object.close..=object.close], "}");
    }

    #[test]
    fn array_elements_are_found_with_their_spans() {
        let text = r#"[ ["on", 50] ,{"a": [1]}, "x,]" ,7 ]"#;
        let elements = array_at(text, 0).expect("array");
        let values: Vec<_> = elements.iter().map(|r| &text[r.clone()]).collect();
        assert_eq!(values, [r#"["on", 50]"#, r#"{"a": [1]}"#, r#""x,]""#, "7"]);
        assert_eq!(array_at("[ ]", 0), Ok(Vec::new()));
        for text in ["[", "[1", "[1 2]", "[1,", "{}"] {
            assert!(array_at(text, 0).is_err(), "{text:?}");
        }
    }

    #[test]
    fn duplicate_keys_are_ambiguous() {
        let text = r#"{"a": 1, "a": 2}"#;
        let object = object_at(text, 0).expect("object");
        assert!(object.member("a").is_err());
        assert_eq!(object.member("b"), Ok(None));
    }

    #[test]
    fn insertion_copies_the_last_members_indentation() {
        let text = "{\n    \"a\": 1,\n    \"b\": 2\n}";
        let object = object_at(text, 0).expect("object");
        let (at, separator) = object.insertion(text);
        let mut edited = text.to_owned();
        edited.insert_str(at, &format!("{separator}\"c\": 3"));
        assert_eq!(edited, "{\n    \"a\": 1,\n    \"b\": 2,\n    \"c\": 3\n}");

        let text = "{ }";
        let object = object_at(text, 0).expect("object");
        assert_eq!(object.insertion(text), (1, String::new()));
    }

    #[test]
    fn broken_text_is_an_error_not_a_panic() {
        for text in [
            "{",
            "{\"a\"",
            "{\"a\":",
            "{\"a\": [",
            "{\"a\": \"x",
            "{\"a\" 1}",
            "{1: 2}",
            "[",
            "{\"a\": 1 \"b\": 2}",
            "{\"a\":}",
            "{\"\\",
        ] {
            assert!(object_at(text, 0).is_err(), "{text:?}");
        }
        assert!(object_at("[]", 0).is_err());
        let deep = format!("{{\"a\": {}{}}}", "[".repeat(64), "]".repeat(64));
        assert!(object_at(&deep, 0).is_ok());
        let deeper = format!("{{\"a\": {}{}}}", "[".repeat(65), "]".repeat(65));
        let err = object_at(&deeper, 0).expect_err("too deep");
        assert!(err.contains("nested deeper than 64 levels"), "{err}");
        assert!(object_at("", 5).is_err());
    }
}
