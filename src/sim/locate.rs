//! Where things are in a YAML text: the documents of a multi-document stream, and the line
//! and column of a field named by its path (`spec.analysis.gates[0].name`), so a problem found
//! in a parsed value can point at the place a person edits.

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// One document of a YAML stream: its text and the line (from 1) its first line has in the
/// whole text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document<'a> {
    /// The line of the whole text the document's first line is, from 1.
    pub first_line: usize,
    /// The document's text, without its `---` marker line.
    pub text: &'a str,
}

/// Splits a YAML stream at its document markers: a `---` at the first column (alone, with a
/// comment, or followed by content on the same line) starts a new document, and a `...` at the
/// first column ends one. A marker inside a block scalar is indented, so it is content. Empty
/// documents (only blank lines and comments) are kept, so indexes match what a person counts.
pub fn split_documents(text: &str) -> Vec<Document<'_>> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut first_line = 1;
    let mut offset = 0;
    let mut line_number = 0;
    let mut after_end_marker = false;
    let mut seen_marker = false;
    for line in text.split_inclusive('\n') {
        line_number += 1;
        let content = line.trim_end_matches(['\n', '\r']);
        if let Some(rest) = marker_rest(content, "---") {
            // What stands before the first marker is a document only when it holds something
            // (a file of `# comments` then `---` starts with its first real document).
            let chunk = &text[start..offset];
            if seen_marker || after_end_marker || !is_empty_document(chunk) {
                push(&mut documents, chunk, first_line);
            }
            seen_marker = true;
            after_end_marker = false;
            // Content after the marker (`--- {a: 1}`) belongs to the new document; the marker
            // itself is blanked by starting the document after it on the next line.
            if rest.trim().is_empty() || rest.trim_start().starts_with('#') {
                start = offset + line.len();
                first_line = line_number + 1;
            } else {
                start = offset + content.len() - rest.len();
                first_line = line_number;
            }
        } else if marker_rest(content, "...").is_some() {
            push(&mut documents, &text[start..offset], first_line);
            after_end_marker = true;
            start = offset + line.len();
            first_line = line_number + 1;
        }
        offset += line.len();
    }
    if start < text.len() || documents.is_empty() && !after_end_marker {
        push(&mut documents, &text[start..], first_line);
    }
    documents
}

fn push<'a>(documents: &mut Vec<Document<'a>>, text: &'a str, first_line: usize) {
    documents.push(Document { first_line, text });
}

/// What follows a document marker at the first column, when the line starts with one.
fn marker_rest<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(marker)?;
    (rest.is_empty() || rest.starts_with([' ', '\t'])).then_some(rest)
}

/// Whether a document holds nothing but blank lines and comments.
pub fn is_empty_document(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "%YAML 1.2" || t.starts_with("%TAG")
    })
}

/// A line and column, both from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1.
    pub column: usize,
}

/// The place of the field `path` names in the YAML `text` (one document): the value's own
/// place when the field is there, else the place of the nearest enclosing field that is (a
/// missing field is reported where it should be added). `None` when the text does not parse.
pub fn locate(text: &str, path: &str) -> Option<Place> {
    let root: Spanned<SpanNode> = serde_saphyr::from_str(text).ok()?;
    let mut place = place_of(&root)?;
    let mut node = &root.value;
    for segment in segments(path) {
        let next = match (&segment, node) {
            (Segment::Key(key), SpanNode::Map(entries)) => {
                entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            (Segment::Index(i), SpanNode::Seq(items)) => items.get(*i),
            _ => None,
        };
        let Some(next) = next else { break };
        if let Some(p) = place_of(next) {
            place = p;
        }
        node = &next.value;
    }
    Some(place)
}

fn place_of(node: &Spanned<SpanNode>) -> Option<Place> {
    let at = node.referenced;
    (at.line() > 0).then(|| Place {
        line: usize::try_from(at.line()).unwrap_or(usize::MAX),
        column: usize::try_from(at.column()).unwrap_or(usize::MAX).max(1),
    })
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// `spec.gates[0].name` → `spec`, `gates`, 0, `name`. A segment that is not a valid index is
/// read as a key.
fn segments(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Segment::Key(key.to_owned()));
        }
        while let Some(rest) = indexes.strip_prefix('[') {
            let Some(end) = rest.find(']') else { break };
            match rest[..end].parse() {
                Ok(i) => out.push(Segment::Index(i)),
                Err(_) => out.push(Segment::Key(rest[..end].to_owned())),
            }
            indexes = &rest[end + 1..];
        }
    }
    out
}

/// A YAML node with the places of its children: enough to find a field, nothing more.
#[derive(Debug)]
enum SpanNode {
    Scalar,
    Seq(Vec<Spanned<SpanNode>>),
    Map(Vec<(String, Spanned<SpanNode>)>),
}

impl<'de> Deserialize<'de> for SpanNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SpanNodeVisitor)
    }
}

struct SpanNodeVisitor;

impl<'de> Visitor<'de> for SpanNodeVisitor {
    type Value = SpanNode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<SpanNode, E> {
        Ok(SpanNode::Scalar)
    }
    fn visit_i64<E>(self, _: i64) -> Result<SpanNode, E> {
        Ok(SpanNode::Scalar)
    }
    fn visit_u64<E>(self, _: u64) -> Result<SpanNode, E> {
        Ok(SpanNode::Scalar)
    }
    fn visit_i128<E>(self, _: i128) -> Result<SpanNode, E> {
        Ok(SpanNode::Scalar)
    }
    fn visit_u128<E>(self, _: u128) -> Result<SpanNode, E> {
        Ok(SpanNode::Scalar)
    }
    fn visit_f64<E>(self, _: f64) -> Result<SpanNode, E> {
        Ok(SpanNode::Scalar)
    }
    fn visit_str<E>(self, _: &str) -> Result<SpanNode, E> {
        Ok(SpanNode::Scalar)
    }
    fn visit_unit<E>(self) -> Result<SpanNode, E> {
        Ok(SpanNode::Scalar)
    }
    fn visit_none<E>(self) -> Result<SpanNode, E> {
        Ok(SpanNode::Scalar)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<SpanNode, D::Error> {
        deserializer.deserialize_any(SpanNodeVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SpanNode, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<SpanNode>>()? {
            items.push(item);
        }
        Ok(SpanNode::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SpanNode, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<KeyText>()? {
            match key.0 {
                Some(key) => entries.push((key, map.next_value::<Spanned<SpanNode>>()?)),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(SpanNode::Map(entries))
    }
}

/// A mapping key as text (`5` and `true` as written); a key that is a list or a mapping is
/// no field name, so it is `None`.
struct KeyText(Option<String>);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(Some(v.to_owned())))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(Some(v.to_string())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(Some(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(Some(v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(Some(v.to_string())))
            }
            fn visit_unit<E>(self) -> Result<KeyText, E> {
                Ok(KeyText(Some("null".to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyText, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(KeyText(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyText, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(KeyText(None))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "\
apiVersion: rollgate.dev/v1alpha1
kind: Rollout
spec:
  stages:
    - {percent: 1, duration: 2h}
    - percent: 5
      duration: 2h
  analysis:
    gates:
      - name: error-rate
        max: 0.01
";

    fn at(line: usize, column: usize) -> Option<Place> {
        Some(Place { line, column })
    }

    #[test]
    fn fields_are_found_by_their_path() {
        assert_eq!(locate(PLAN, "kind"), at(2, 7));
        assert_eq!(locate(PLAN, "spec.stages[1].percent"), at(6, 16));
        assert_eq!(locate(PLAN, "spec.stages[0].duration"), at(5, 30));
        assert_eq!(locate(PLAN, "spec.analysis.gates[0].max"), at(11, 14));
    }

    #[test]
    fn a_missing_field_points_at_the_nearest_enclosing_one() {
        assert_eq!(locate(PLAN, "spec.analysis.gates[0].min"), at(10, 9));
        assert_eq!(
            locate(PLAN, "spec.stages[7].percent"),
            locate(PLAN, "spec.stages")
        );
        assert!(locate(PLAN, "spec.rollback.percent").is_some());
    }

    #[test]
    fn text_that_does_not_parse_has_no_places() {
        assert_eq!(locate("a: [1, 2\n", "a"), None);
    }

    #[test]
    fn paths_split_into_keys_and_indexes() {
        assert_eq!(
            segments("spec.gates[0].name"),
            [
                Segment::Key("spec".into()),
                Segment::Key("gates".into()),
                Segment::Index(0),
                Segment::Key("name".into()),
            ]
        );
        assert_eq!(
            segments("a[1][2]"),
            [
                Segment::Key("a".into()),
                Segment::Index(1),
                Segment::Index(2)
            ]
        );
    }

    #[test]
    fn a_stream_splits_at_first_column_markers() {
        let text = "# header\n---\na: 1\n---\nb: |\n  ---\n  text\n--- {c: 3}\n...\n";
        let docs = split_documents(text);
        let summary: Vec<(usize, &str)> = docs.iter().map(|d| (d.first_line, d.text)).collect();
        assert_eq!(
            summary,
            [
                (3, "a: 1\n"),
                (5, "b: |\n  ---\n  text\n"),
                (8, " {c: 3}\n"),
            ]
        );
        assert!(is_empty_document("# only\n\n  # comments\n"));
        assert!(!is_empty_document(docs[0].text));
    }

    #[test]
    fn a_single_document_is_the_whole_text() {
        let docs = split_documents("a: 1\nb: 2\n");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].first_line, 1);
        assert_eq!(docs[0].text, "a: 1\nb: 2\n");
        let docs = split_documents("a: 1\n---\n");
        assert_eq!(docs.len(), 1, "{docs:?}");
    }
}
