//! A YAML document as written, before it meets a Rust type: scalars keep the type YAML gave
//! them (`5` is an integer, `"5"` a string), so a file can be checked against the CRD's schema
//! the way `kubectl apply` checks it, with messages in the file's terms.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// One YAML node.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `~`, `null` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A whole number.
    Int(i128),
    /// A number with a fraction or exponent, or `.nan`, `.inf`.
    Float(f64),
    /// Text, quoted or not.
    Str(String),
    /// A list.
    Seq(Vec<Node>),
    /// A mapping, keys in file order (a key that is not text is written as YAML shows it).
    Map(Vec<(String, Node)>),
}

impl Node {
    /// How a message names what was found: `the string "5"`, `the integer 300`, `a list`.
    pub fn describe(&self) -> String {
        match self {
            Node::Null => "nothing (null)".to_owned(),
            Node::Bool(b) => format!("the boolean {b}"),
            Node::Int(i) => format!("the integer {i}"),
            // `{:?}` keeps the fraction: `5.0`, so a whole float is told from an integer.
            Node::Float(f) => format!("the number {f:?}"),
            Node::Str(s) => format!("the string {}", quoted_short(s)),
            Node::Seq(_) => "a list".to_owned(),
            Node::Map(_) => "a mapping".to_owned(),
        }
    }
}

/// `"text"`, cut to 60 characters, with control characters escaped.
fn quoted_short(text: &str) -> String {
    const MAX: usize = 60;
    let mut short: String = text.chars().take(MAX).collect();
    if text.chars().nth(MAX).is_some() {
        short.push('…');
    }
    format!("{short:?}")
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(i128::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Int(i128::from(v)))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Int(v))
    }

    fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
        Ok(i128::try_from(v).map_or(Node::Float(v as f64), Node::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Node, E> {
        Ok(Node::Str(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let key = match key {
                Node::Str(s) => s,
                Node::Null => "null".to_owned(),
                Node::Bool(b) => b.to_string(),
                Node::Int(i) => i.to_string(),
                Node::Float(f) => f.to_string(),
                Node::Seq(_) => "[…]".to_owned(),
                Node::Map(_) => "{…}".to_owned(),
            };
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_keep_their_yaml_type() {
        let options = serde_saphyr::options! {
            non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        };
        let node: Node = serde_saphyr::from_str_with_options(
            "a: 5\nb: \"5\"\nc: 0.5\nd: 2h\ne: ~\nf: true\ng: [1]\nh: {x: y}\ni: .nan\nj: 5.0\n",
            options,
        )
        .expect("parses");
        let Node::Map(entries) = node else {
            panic!("not a mapping")
        };
        let kinds: Vec<String> = entries.iter().map(|(_, v)| v.describe()).collect();
        assert_eq!(
            kinds,
            [
                "the integer 5",
                "the string \"5\"",
                "the number 0.5",
                "the string \"2h\"",
                "nothing (null)",
                "the boolean true",
                "a list",
                "a mapping",
                "the number NaN",
                "the number 5.0",
            ]
        );
    }

    #[test]
    fn long_strings_are_cut_in_descriptions() {
        let long = "x".repeat(500);
        let described = Node::Str(long).describe();
        assert!(described.chars().count() < 80, "{described}");
        let escaped = Node::Str("\u{1b}[2J".to_owned()).describe();
        assert!(!escaped.contains('\u{1b}'), "{escaped}");
    }
}
