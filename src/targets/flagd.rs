//! A rollout's flag inside an OpenFeature flagd flag definition (`{"flags": {...}}`), read and
//! written without I/O.
//!
//! The flag's targeting is written as
//!
//! ```json
//! {"if": [{"in": [{"var": "targetingKey"}, ["u-1001", "u-1002"]]}, "on",
//!         {"fractional": [["on", 500], ["off", 9500]]}]}
//! ```
//!
//! (variant names from the target; just the `fractional` when the allowlist is empty). The
//! weights are basis points (1/100 of a percent; 5 % is 500 of 10,000, 0.5 % is 50): flagd
//! buckets `[on, 100·p]`, `[off, 10000 − 100·p]` exactly as the whole-percent weights
//! `[on, p]`, `[off, 100 − p]` rollgate wrote before (every bucketing version compares
//! `hash·total` against the cumulative weights, and both sides scale by 100), so moving to
//! this writer flips no user (`tests/flagd_bucketing.rs`). There is no explicit bucketing
//! expression, so flagd hashes the flag key with the targeting key
//! and each flag gets its own cohort; `on` comes first, so raising the percent only adds
//! users. A flag that does not exist is created enabled, with variants `on: true` and
//! `off: false` and `defaultVariant` off (the OpenFeature Operator requires one).
//!
//! Writing a document replaces one value (or inserts one member) in the text: every other
//! flag and field keeps its bytes. Reading accepts exactly the shape written above (with any
//! allowlist and any non-negative integer weights, such as the whole-percent `[p, 100 − p]`
//! rollgate wrote before: the on share is rounded to the nearest basis point), a flag without
//! targeting (0 % when it serves `off`, 100 % when it serves
//! `on`), and refuses everything else with a message, so a hand edit shows up as a drift the
//! controller reports, never as a guess.
//!
//! Hostile input is bounded: a document above [`DOCUMENT_CAP`] bytes is refused unread,
//! nesting deeper than [`MAX_DEPTH`](super::json_span::MAX_DEPTH) levels is refused, every
//! scan is iterative and linear in the document's size, and a key that appears twice where
//! rollgate reads or writes (`flags`, the flag, a member of the flag) makes the document
//! ambiguous and is refused.

use serde::de::IgnoredAny;
use serde_json::{Map, Value, json};

use super::TargetError;
use super::json_span::{ObjectSpan, object_at, value_at};
use crate::api::{FlagdTarget, Percent};

/// Largest flag definition read: a ConfigMap holds at most 1 MiB.
pub const DOCUMENT_CAP: usize = 1024 * 1024;

/// The JSON schema a new document names.
pub const SCHEMA: &str = "https://flagd.dev/schema/v0/flags.json";

/// How much of a foreign value a message quotes.
const EXCERPT: usize = crate::text::CONFIG_EXCERPT;

/// Why a flag definition could not be read or written; [`FlagdError::at`] names the place.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FlagdError {
    /// The definition or the flag is not something the controller can read.
    #[error("{0}")]
    Unreadable(String),
    /// The flag is readable but the controller will not write it.
    #[error("{0}")]
    Unwritable(String),
}

impl FlagdError {
    /// The error as a [`TargetError`] naming `place`.
    pub fn at(self, place: impl Into<String>) -> TargetError {
        let place = place.into();
        match self {
            FlagdError::Unreadable(reason) => TargetError::Unreadable { place, reason },
            FlagdError::Unwritable(reason) => TargetError::Unwritable { place, reason },
        }
    }
}

/// What a write does to a document.
#[derive(Clone, Debug, PartialEq)]
pub enum DocumentEdit {
    /// The flag already has the targeting for this percent: nothing to write.
    Unchanged,
    /// The new document text.
    Changed(String),
}

/// The targeting that serves `on` to the allowlist and to `percent` % of everyone else.
pub fn targeting(target: &FlagdTarget, percent: Percent) -> Value {
    let percent = u64::from(percent.min(Percent::HUNDRED).basis_points());
    let fractional = json!({"fractional": [
        [target.on_variant, percent],
        [target.off_variant, 10_000 - percent],
    ]});
    if target.allowlist.is_empty() {
        fractional
    } else {
        json!({"if": [
            {"in": [{"var": "targetingKey"}, target.allowlist]},
            target.on_variant,
            fractional,
        ]})
    }
}

/// Whether a flag's targeting already serves `percent` as rollgate writes it: the targeting
/// [`targeting`] makes, or the whole-percent form rollgate wrote before basis points
/// (`[on, p]`, `[off, 100 - p]`), which puts exactly the same users in the cohort; such a flag
/// is left as it is until the percent changes.
fn already_written(existing: Option<&Value>, target: &FlagdTarget, percent: Percent) -> bool {
    let Some(existing) = existing else {
        return false;
    };
    if *existing == targeting(target, percent) {
        return true;
    }
    if !percent.is_whole() {
        return false;
    }
    let whole = u64::from(percent.min(Percent::HUNDRED).basis_points() / 100);
    let legacy = json!({"fractional": [
        [target.on_variant, whole],
        [target.off_variant, 100 - whole],
    ]});
    let legacy = if target.allowlist.is_empty() {
        legacy
    } else {
        json!({"if": [
            {"in": [{"var": "targetingKey"}, target.allowlist]},
            target.on_variant,
            legacy,
        ]})
    };
    *existing == legacy
}

/// A new flag for this target at `percent`, as JSON text with its members in the usual order
/// (`state`, `variants`, `defaultVariant`, `targeting`).
pub fn new_flag_text(target: &FlagdTarget, percent: Percent) -> String {
    let on = Value::from(target.on_variant.as_str());
    let off = Value::from(target.off_variant.as_str());
    format!(
        r#"{{"state": "ENABLED", "variants": {{{on}: true, {off}: false}}, "defaultVariant": {off}, "targeting": {}}}"#,
        targeting(target, percent)
    )
}

/// A new flag for this target at `percent`, as a value (for a `FeatureFlag`).
pub fn new_flag(target: &FlagdTarget, percent: Percent) -> Value {
    let mut variants = Map::new();
    variants.insert(target.on_variant.clone(), Value::Bool(true));
    variants.insert(target.off_variant.clone(), Value::Bool(false));
    json!({
        "state": "ENABLED",
        "variants": variants,
        "defaultVariant": target.off_variant,
        "targeting": targeting(target, percent),
    })
}

/// The percent a flag definition gives the target's flag: `None` when the flag (or the whole
/// `flags` object) is absent.
pub fn read_percent(document: &str, target: &FlagdTarget) -> Result<Option<Percent>, FlagdError> {
    let spans = locate(document, &target.flag)?;
    match spans.flag {
        None => Ok(None),
        Some(range) => {
            let flag: Value = serde_json::from_str(&document[range])
                .map_err(|e| FlagdError::Unreadable(format!("flag is not JSON: {e}")))?;
            percent_of_flag(&flag, target).map(Some)
        }
    }
}

/// The document with the target's flag at `percent`, or [`DocumentEdit::Unchanged`] when it
/// already is. `None` (the key does not exist yet) makes a new document.
pub fn write_percent(
    document: Option<&str>,
    target: &FlagdTarget,
    percent: Percent,
) -> Result<DocumentEdit, FlagdError> {
    check_target(target, percent)?;
    let Some(document) = document else {
        return Ok(DocumentEdit::Changed(new_document(target, percent)));
    };
    let spans = locate(document, &target.flag)?;
    let desired = targeting(target, percent);
    let mut edited = document.to_owned();
    match (spans.flags, spans.flag) {
        (None, _) => {
            let (at, separator) = spans.root.insertion(document);
            let flags = format!(
                "{separator}\"flags\": {{{}: {}}}",
                Value::from(target.flag.as_str()),
                new_flag_text(target, percent)
            );
            edited.insert_str(at, &flags);
        }
        (Some(flags), None) => {
            let (at, separator) = flags.insertion(document);
            let member = format!(
                "{separator}{}: {}",
                Value::from(target.flag.as_str()),
                new_flag_text(target, percent)
            );
            edited.insert_str(at, &member);
        }
        (Some(_), Some(range)) => {
            let flag: Value = serde_json::from_str(&document[range.clone()])
                .map_err(|e| FlagdError::Unreadable(format!("flag is not JSON: {e}")))?;
            check_writable(&flag, target)?;
            if already_written(flag.get("targeting"), target, percent) {
                return Ok(DocumentEdit::Unchanged);
            }
            let object = object_at(document, range.start).map_err(FlagdError::Unreadable)?;
            match object.member("targeting").map_err(FlagdError::Unreadable)? {
                Some(member) => edited.replace_range(member.value.clone(), &desired.to_string()),
                None => {
                    let (at, separator) = object.insertion(document);
                    edited.insert_str(at, &format!("{separator}\"targeting\": {desired}"));
                }
            }
        }
    }
    Ok(DocumentEdit::Changed(edited))
}

/// The percent one flag (a parsed flag object) gives: see the module documentation for the
/// shapes read.
pub fn percent_of_flag(flag: &Value, target: &FlagdTarget) -> Result<Percent, FlagdError> {
    let unreadable = |reason: String| FlagdError::Unreadable(reason);
    let object = flag
        .as_object()
        .ok_or_else(|| unreadable(format!("flag is not an object but {}", excerpt(flag))))?;
    match object.get("state").and_then(Value::as_str) {
        Some("ENABLED") => {}
        Some("DISABLED") => {
            return Err(unreadable(
                "flag is DISABLED (it serves no one); rollgate reads only ENABLED flags".into(),
            ));
        }
        _ => {
            return Err(unreadable(format!(
                "flag state is {}, expected \"ENABLED\"",
                object.get("state").map_or("missing".to_owned(), excerpt)
            )));
        }
    }
    match object.get("targeting") {
        None => static_percent(object, target),
        Some(Value::Object(t)) if t.is_empty() => static_percent(object, target),
        Some(targeting) => percent_of_targeting(targeting, target).ok_or_else(|| {
            unreadable(format!(
                "targeting is not the shape rollgate writes ({{\"fractional\": [[{on:?}, w], [{off:?}, w']]}} with integer weights, \
                 optionally inside an allowlist \"if\"): {}",
                excerpt(targeting),
                on = target.on_variant,
                off = target.off_variant,
            ))
        }),
    }
}

/// The merge patch that sets one flag of a `FeatureFlag` (`spec.flagSpec.flags.<flag>`) to
/// `percent`, given the flag as it is now; `None` when it already is. Only the flag's
/// `targeting` changes (its other top-level keys are set to `null`, so a JSON merge patch
/// replaces rather than merges it); an absent flag is created whole.
pub fn flag_merge_patch(
    existing: Option<&Value>,
    target: &FlagdTarget,
    percent: Percent,
) -> Result<Option<Value>, FlagdError> {
    check_target(target, percent)?;
    let desired = targeting(target, percent);
    let Some(flag) = existing else {
        return Ok(Some(new_flag(target, percent)));
    };
    check_writable(flag, target)?;
    if already_written(flag.get("targeting"), target, percent) {
        return Ok(None);
    }
    let mut patch = desired;
    if let (Some(Value::Object(old)), Some(new)) = (flag.get("targeting"), patch.as_object_mut()) {
        for key in old.keys() {
            if !new.contains_key(key) {
                new.insert(key.clone(), Value::Null);
            }
        }
    }
    Ok(Some(json!({"targeting": patch})))
}

/// Where the root object, the `flags` object and the flag's value are.
struct Spans {
    root: ObjectSpan,
    flags: Option<ObjectSpan>,
    flag: Option<std::ops::Range<usize>>,
}

fn locate(document: &str, flag: &str) -> Result<Spans, FlagdError> {
    let unreadable = FlagdError::Unreadable;
    if document.len() > DOCUMENT_CAP {
        return Err(unreadable(format!(
            "the flag definition is {} bytes, more than the {DOCUMENT_CAP} bytes rollgate reads",
            document.len()
        )));
    }
    serde_json::from_str::<IgnoredAny>(document)
        .map_err(|e| unreadable(format!("the flag definition is not JSON: {e}")))?;
    let root_range = value_at(document, 0).map_err(unreadable)?;
    if !document[root_range.clone()].starts_with('{') {
        return Err(unreadable(
            "the flag definition is not a JSON object".to_owned(),
        ));
    }
    let root = object_at(document, root_range.start).map_err(unreadable)?;
    let Some(flags_member) = root.member("flags").map_err(unreadable)? else {
        return Ok(Spans {
            root,
            flags: None,
            flag: None,
        });
    };
    if !document[flags_member.value.clone()].starts_with('{') {
        return Err(unreadable(format!(
            "\"flags\" is not an object but {}",
            cut(&document[flags_member.value.clone()])
        )));
    }
    let flags = object_at(document, flags_member.value.start).map_err(unreadable)?;
    let flag = flags
        .member(flag)
        .map_err(|e| unreadable(format!("in \"flags\": {e}")))?
        .map(|m| m.value.clone());
    if let Some(range) = &flag
        && document[range.clone()].starts_with('{')
    {
        let object = object_at(document, range.start).map_err(unreadable)?;
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = object.members.iter().find(|m| !seen.insert(m.key.as_str())) {
            return Err(unreadable(format!(
                "in the flag: key {:?} appears more than once",
                twice.key
            )));
        }
    }
    Ok(Spans {
        root,
        flags: Some(flags),
        flag,
    })
}

fn new_document(target: &FlagdTarget, percent: Percent) -> String {
    format!(
        "{{\n  \"$schema\": {},\n  \"flags\": {{\n    {}: {}\n  }}\n}}\n",
        Value::from(SCHEMA),
        Value::from(target.flag.as_str()),
        new_flag_text(target, percent)
    )
}

fn check_target(target: &FlagdTarget, percent: Percent) -> Result<(), FlagdError> {
    if percent > Percent::HUNDRED {
        return Err(FlagdError::Unwritable(format!(
            "percent {percent} is above 100"
        )));
    }
    if target.on_variant == target.off_variant {
        return Err(FlagdError::Unwritable(format!(
            "onVariant and offVariant are both {:?}; they must differ",
            target.on_variant
        )));
    }
    Ok(())
}

/// An existing flag the controller may write: enabled, with both variants.
fn check_writable(flag: &Value, target: &FlagdTarget) -> Result<(), FlagdError> {
    let object = flag.as_object().ok_or_else(|| {
        FlagdError::Unreadable(format!("flag is not an object but {}", excerpt(flag)))
    })?;
    if object.get("state").and_then(Value::as_str) != Some("ENABLED") {
        return Err(FlagdError::Unwritable(format!(
            "flag state is {}; rollgate writes only ENABLED flags (a disabled flag is someone's \
             kill switch: enable it by hand to roll it out)",
            object.get("state").map_or("missing".to_owned(), excerpt)
        )));
    }
    let variants = object.get("variants").and_then(Value::as_object);
    for name in [&target.on_variant, &target.off_variant] {
        if !variants.is_some_and(|v| v.contains_key(name)) {
            return Err(FlagdError::Unwritable(format!(
                "flag has no variant {name:?} (variants: {})",
                object.get("variants").map_or("missing".to_owned(), excerpt)
            )));
        }
    }
    Ok(())
}

/// A flag without targeting serves its default variant to everyone.
fn static_percent(flag: &Map<String, Value>, target: &FlagdTarget) -> Result<Percent, FlagdError> {
    match flag.get("defaultVariant").and_then(Value::as_str) {
        Some(v) if v == target.off_variant => Ok(Percent::ZERO),
        Some(v) if v == target.on_variant => Ok(Percent::HUNDRED),
        _ => Err(FlagdError::Unreadable(format!(
            "flag has no targeting and its defaultVariant {} is neither {:?} nor {:?}",
            flag.get("defaultVariant")
                .map_or("missing".to_owned(), excerpt),
            target.on_variant,
            target.off_variant
        ))),
    }
}

fn percent_of_targeting(targeting: &Value, target: &FlagdTarget) -> Option<Percent> {
    let (op, args) = single_entry(targeting)?;
    match op {
        "fractional" => percent_of_fractional(args, target),
        "if" => {
            let [condition, then, otherwise] = args.as_array()?.as_slice() else {
                return None;
            };
            is_allowlist_condition(condition)
                .then_some(())
                .filter(|()| then.as_str() == Some(target.on_variant.as_str()))?;
            let (op, args) = single_entry(otherwise)?;
            (op == "fractional")
                .then(|| percent_of_fractional(args, target))
                .flatten()
        }
        _ => None,
    }
}

/// `{"in": [{"var": "targetingKey"}, [strings…]]}`.
fn is_allowlist_condition(condition: &Value) -> bool {
    let Some(("in", args)) = single_entry(condition) else {
        return false;
    };
    let Some([var, list]) = args.as_array().map(Vec::as_slice) else {
        return false;
    };
    single_entry(var) == Some(("var", &Value::from("targetingKey")))
        && list
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_string))
}

/// `[[on, w], [off, w']]` → the on share `w / (w + w')`, rounded to the nearest basis point
/// (halves up): `[[on, 50], [off, 9950]]` is 0.5 %, `[[on, 5], [off, 95]]` 5 %, and a share
/// that is no whole basis point, such as `[[on, 1], [off, 2]]`, reads as 33.33 %.
fn percent_of_fractional(args: &Value, target: &FlagdTarget) -> Option<Percent> {
    let [on, off] = args.as_array()?.as_slice() else {
        return None;
    };
    let weight = |bucket: &Value, name: &str| -> Option<u64> {
        match bucket.as_array()?.as_slice() {
            [variant, weight] if variant.as_str() == Some(name) => weight.as_u64(),
            _ => None,
        }
    };
    let p = weight(on, &target.on_variant)?;
    let q = weight(off, &target.off_variant)?;
    let total = u128::from(p.checked_add(q)?);
    if total == 0 {
        return None;
    }
    let basis_points = (u128::from(p) * 20_000 + total) / (2 * total);
    Percent::from_basis_points(u16::try_from(basis_points).ok()?)
}

fn single_entry(value: &Value) -> Option<(&str, &Value)> {
    let object = value.as_object()?;
    if object.len() != 1 {
        return None;
    }
    object.iter().next().map(|(k, v)| (k.as_str(), v))
}

fn excerpt(value: &Value) -> String {
    cut(&value.to_string())
}

fn cut(text: &str) -> String {
    crate::text::capped(text, EXCERPT).into_owned()
}
