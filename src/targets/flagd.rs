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
//! this writer flips no user (`tests/targets/flagd_bucketing.rs`). There is no explicit bucketing
//! expression, so flagd hashes the flag key with the targeting key
//! and each flag gets its own cohort; `on` comes first, so raising the percent only adds
//! users. A flag that does not exist is created enabled, with variants `on: true` and
//! `off: false` and `defaultVariant` off (the OpenFeature Operator requires one).
//!
//! A flag that already has a rule of its own (say "tier gold always gets `on`, everyone else
//! by a fractional split") is *adopted*: when its targeting is not the shape above but
//! contains exactly one `fractional` over the on and off variants, anywhere in the rule tree
//! (inside `if`, `and`, nested rules; with or without a bucketing expression as its first
//! argument, the two buckets in either order), rollgate changes only that fractional's two
//! weights and reads the percent from it; every other byte of the flag stays as it was. A
//! targeting with no such fractional, or more than one, is refused with the smallest edit
//! that makes it adoptable, unless `replaceTargeting` says to replace the whole targeting
//! with rollgate's rule (then such a targeting reads as "nothing of rollgate's yet", like an
//! absent flag). The allowlist is part of rollgate's own rule: a target with an allowlist
//! refuses to adopt a rule (the team keeps its own `in` rule instead).
//!
//! Writing a document replaces one value (or inserts one member) in the text: every other
//! flag and field keeps its bytes. Reading accepts the shape written above (with any
//! allowlist and any non-negative integer weights, such as the whole-percent `[p, 100 − p]`
//! rollgate wrote before: the on share is rounded to the nearest basis point), an adoptable
//! rule (the percent of its one fractional), a flag without targeting (0 % when it serves
//! `off`, 100 % when it serves `on`), and refuses everything else with a message, so a hand
//! edit shows up as a drift the controller reports, never as a guess. With an empty
//! allowlist, an allowlist `if` in the flag is the team's own `in` rule and is adopted (kept):
//! removing the allowlist from a rollout leaves its `in` rule in the flag.
//!
//! Hostile input is bounded: a document above [`DOCUMENT_CAP`] bytes is refused unread,
//! nesting deeper than [`MAX_DEPTH`](super::json_span::MAX_DEPTH) levels is refused, every
//! scan is iterative and linear in the document's size, and a key that appears twice where
//! rollgate reads or writes (`flags`, the flag, a member of the flag) makes the document
//! ambiguous and is refused.

use serde::de::IgnoredAny;
use serde_json::{Map, Value, json};

use super::TargetError;
use super::json_span::{ObjectSpan, array_at, object_at, value_at};
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
    let (on, off) = weights(percent);
    let fractional = json!({"fractional": [
        [target.on_variant, on],
        [target.off_variant, off],
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
            flag_percent(&flag, target)
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
            let object = object_at(document, range.start).map_err(FlagdError::Unreadable)?;
            if let Rule::Adopted(found) = rule_for(&flag, target)? {
                if found.split.holds(percent) {
                    return Ok(DocumentEdit::Unchanged);
                }
                let member = object
                    .member("targeting")
                    .map_err(FlagdError::Unreadable)?
                    .ok_or_else(|| FlagdError::Unreadable("the flag has no targeting".into()))?;
                let edited = splice_weights(document, member.value.start, &found, percent)?;
                if read_percent(&edited, target)? != Some(percent) {
                    return Err(FlagdError::Unwritable(format!(
                        "the fractional at {} does not read back as {percent}% after the edit",
                        path_text(&found.path)
                    )));
                }
                return Ok(DocumentEdit::Changed(edited));
            }
            if already_written(flag.get("targeting"), target, percent) {
                return Ok(DocumentEdit::Unchanged);
            }
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
        Some(targeting) => {
            if let Some(percent) = percent_of_targeting(targeting, target) {
                return Ok(percent);
            }
            if !targeting.is_object() {
                return Err(unreadable(format!(
                    "targeting is not a JsonLogic rule (an object) but {}",
                    excerpt(targeting)
                )));
            }
            let found = adopt(flag, targeting, target).map_err(unreadable)?;
            found.split.percent().ok_or_else(|| {
                unreadable(format!(
                    "the fractional at {} has weights that total 0 or more than 2^64",
                    path_text(&found.path)
                ))
            })
        }
    }
}

/// The percent one flag (a parsed flag object) gives, as [`percent_of_flag`] reads it; with
/// `replaceTargeting`, a targeting that is neither rollgate's rule nor adoptable reads as
/// `None`: nothing of rollgate's is there yet, as for an absent flag, and the first write
/// replaces it.
pub fn flag_percent(flag: &Value, target: &FlagdTarget) -> Result<Option<Percent>, FlagdError> {
    match percent_of_flag(flag, target) {
        Ok(percent) => Ok(Some(percent)),
        Err(FlagdError::Unreadable(_))
            if target.replace_targeting
                && flag.get("state").and_then(Value::as_str) == Some("ENABLED")
                && flag
                    .get("targeting")
                    .is_some_and(|t| t.as_object().is_some_and(|t| !t.is_empty())) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
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
    if let Rule::Adopted(found) = rule_for(flag, target)? {
        if found.split.holds(percent) {
            return Ok(None);
        }
        let mut adopted = flag.get("targeting").cloned().unwrap_or(Value::Null);
        if let Some(key) = null_member(&adopted) {
            return Err(FlagdError::Unwritable(format!(
                "the targeting has a member {key:?} whose value is null, which a JSON merge \
                 patch would delete; write it without the null member"
            )));
        }
        set_weights(&mut adopted, &found, percent)?;
        return Ok(Some(json!({"targeting": adopted})));
    }
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
    share(p, q)
}

/// One step from a flag's targeting down to a value inside it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Key(String),
    Index(usize),
}

/// `targeting.if[2].fractional`, for messages.
fn path_text(path: &[Step]) -> String {
    let mut text = "targeting".to_owned();
    for step in path {
        match step {
            Step::Key(key) => {
                text.push('.');
                text.push_str(key);
            }
            Step::Index(i) => text.push_str(&format!("[{i}]")),
        }
    }
    text
}

/// A `fractional` over exactly the on and off variants: which of its arguments are the on and
/// off buckets, and their weights.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Split {
    on_at: usize,
    off_at: usize,
    on: u64,
    off: u64,
}

impl Split {
    fn percent(&self) -> Option<Percent> {
        share(self.on, self.off)
    }

    /// Whether the weights are already the ones rollgate writes for `percent` (basis points,
    /// or the whole-percent form, which puts the same users in the cohort).
    fn holds(&self, percent: Percent) -> bool {
        let (on, off) = weights(percent);
        (self.on, self.off) == (on, off)
            || (percent.is_whole() && (self.on, self.off) == (on / 100, off / 100))
    }
}

/// An adoptable `fractional`: where it is (the path ends at its `fractional` key) and its split.
#[derive(Clone, Debug, PartialEq)]
struct Found {
    path: Vec<Step>,
    split: Split,
}

/// How the controller writes an existing flag's targeting.
enum Rule {
    /// Rollgate's own rule: the whole targeting is written (absent, empty, rollgate's shape,
    /// or `replaceTargeting`).
    Own,
    /// The team's rule: only this fractional's weights change.
    Adopted(Found),
}

/// The rule for an existing (writable) flag; an error with the smallest edit when the
/// targeting is the team's own but has no single fractional to adopt, or when the target's
/// allowlist would have to be added to it.
fn rule_for(flag: &Value, target: &FlagdTarget) -> Result<Rule, FlagdError> {
    let Some(targeting) = flag.get("targeting") else {
        return Ok(Rule::Own);
    };
    // Rollgate's own shape is its rule, except an allowlist `if` when the target has no
    // allowlist: that is the team's own `in` rule (as the allowlist message advises), adopted.
    let own_shape = percent_of_targeting(targeting, target).is_some()
        && (!target.allowlist.is_empty()
            || single_entry(targeting).is_some_and(|(op, _)| op == "fractional"));
    if target.replace_targeting || targeting.as_object().is_some_and(Map::is_empty) || own_shape {
        return Ok(Rule::Own);
    }
    let found = adopt(flag, targeting, target).map_err(FlagdError::Unwritable)?;
    if !target.allowlist.is_empty() {
        return Err(FlagdError::Unwritable(format!(
            "the allowlist is part of rollgate's own rule and is not added to a rule rollgate \
             adopts (the flag's targeting has its own rule, with the fractional at {}): keep \
             the allowlist as your own \"in\" rule in the targeting, for example \
             {{\"if\": [{{\"in\": [{{\"var\": \"targetingKey\"}}, [...]]}}, {on}, <your rule>]}}, \
             and remove target.flagd.allowlist; or set target.flagd.replaceTargeting: true to \
             replace the whole targeting with rollgate's rule",
            path_text(&found.path),
            on = Value::from(target.on_variant.as_str()),
        )));
    }
    Ok(Rule::Adopted(found))
}

/// The one fractional over the on and off variants in a (foreign) targeting, or why there is
/// not exactly one, with the smallest edit that makes the flag adoptable.
fn adopt(flag: &Value, targeting: &Value, target: &FlagdTarget) -> Result<Found, String> {
    let (mut found, others) = fractionals(targeting, target);
    let replace = "; or set target.flagd.replaceTargeting: true to replace the whole targeting \
                   with rollgate's own rule";
    let on = Value::from(target.on_variant.as_str());
    let off = Value::from(target.off_variant.as_str());
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => {
            let others = if others.is_empty() {
                String::new()
            } else {
                format!(
                    " (the fractional at {} is not one over {on} and {off} alone)",
                    others
                        .iter()
                        .map(|p| path_text(p))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            Err(format!(
                "the flag's targeting has its own rule and no fractional over {on} and {off} \
                 for rollgate to adopt{others}: {}{replace}",
                smallest_edit(flag, targeting, target)
            ))
        }
        n => Err(format!(
            "the flag's targeting has {n} fractionals over {on} and {off} (at {}); rollgate \
             adopts exactly one and changes only its weights: merge them into one{replace}",
            found
                .iter()
                .map(|f| path_text(&f.path))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The smallest edit that gives a rule without a fractional one that serves every user the
/// same variant as now: the variant the rollout's users get now becomes a fractional that
/// gives it 100 %.
fn smallest_edit(flag: &Value, targeting: &Value, target: &FlagdTarget) -> String {
    let on = target.on_variant.as_str();
    let serving = |variant: &str| {
        let on_weight = if variant == on { 100 } else { 0 };
        json!({"fractional": [[on, on_weight], [target.off_variant, 100 - on_weight]]}).to_string()
    };
    let is_variant = |v: &str| v == on || v == target.off_variant;
    if let Some(("if", Value::Array(args))) = single_entry(targeting) {
        let last = args.len().saturating_sub(1);
        if args.len() >= 3 && args.len() % 2 == 1 {
            if let Some(variant) = args[last].as_str().filter(|v| is_variant(v)) {
                return format!(
                    "replace the else-branch {} of its \"if\" (the last argument, \
                     targeting.if[{last}]) with {}, which serves the same users the same \
                     variant until the rollout raises it",
                    Value::from(variant),
                    serving(variant)
                );
            }
        } else if args.len() >= 2 && args.len() % 2 == 0 {
            let default = flag
                .get("defaultVariant")
                .and_then(Value::as_str)
                .filter(|v| is_variant(v))
                .unwrap_or(target.off_variant.as_str());
            return format!(
                "add {} as the else-branch of its \"if\" (a last argument, targeting.if[{}]), \
                 which serves the users no condition matches the default variant {} until the \
                 rollout raises it",
                serving(default),
                args.len(),
                Value::from(default)
            );
        }
    }
    format!(
        "put {} where the rule serves {} to the users the rollout should reach (for example \
         wrap the rule as {{\"if\": [<condition>, <result>, {}]}}); rollgate then changes only its \
         weights",
        serving(&target.off_variant),
        Value::from(target.off_variant.as_str()),
        serving(&target.off_variant)
    )
}

/// Every `fractional` in a rule tree: those over exactly the on and off variants, and the
/// paths of the others; both in document-independent (path) order.
fn fractionals(targeting: &Value, target: &FlagdTarget) -> (Vec<Found>, Vec<Vec<Step>>) {
    let mut found = Vec::new();
    let mut others = Vec::new();
    let mut stack = vec![(targeting, Vec::new())];
    while let Some((node, path)) = stack.pop() {
        match node {
            Value::Object(members) => {
                for (key, value) in members {
                    let mut inner = path.clone();
                    inner.push(Step::Key(key.clone()));
                    if key == "fractional" {
                        match split_of(value, target).filter(|_| members.len() == 1) {
                            Some(split) => found.push(Found {
                                path: inner.clone(),
                                split,
                            }),
                            None => others.push(inner.clone()),
                        }
                    }
                    stack.push((value, inner));
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let mut inner = path.clone();
                    inner.push(Step::Index(i));
                    stack.push((item, inner));
                }
            }
            _ => {}
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    others.sort();
    (found, others)
}

/// A fractional's arguments as a [`Split`]: an optional bucketing expression (any first
/// argument that is not an array), then exactly two `[variant, weight]` buckets, the on and
/// off variants in either order, with non-negative integer weights.
fn split_of(args: &Value, target: &FlagdTarget) -> Option<Split> {
    let args = args.as_array()?;
    let first = usize::from(!args.first()?.is_array());
    let [a, b] = args.get(first..)? else {
        return None;
    };
    let bucket = |bucket: &Value| -> Option<(String, u64)> {
        match bucket.as_array()?.as_slice() {
            [name, weight] => Some((name.as_str()?.to_owned(), weight.as_u64()?)),
            _ => None,
        }
    };
    let ((a_name, a_weight), (b_name, b_weight)) = (bucket(a)?, bucket(b)?);
    let (on, off) = (target.on_variant.as_str(), target.off_variant.as_str());
    if a_name == on && b_name == off {
        Some(Split {
            on_at: first,
            off_at: first + 1,
            on: a_weight,
            off: b_weight,
        })
    } else if a_name == off && b_name == on {
        Some(Split {
            on_at: first + 1,
            off_at: first,
            on: b_weight,
            off: a_weight,
        })
    } else {
        None
    }
}

/// The weights rollgate writes for `percent`: basis points of 10,000.
fn weights(percent: Percent) -> (u64, u64) {
    let on = percent.min(Percent::HUNDRED);
    (
        u64::from(on.basis_points()),
        u64::from(on.complement().basis_points()),
    )
}

/// The document with the adopted fractional's two weights replaced, every other byte kept.
/// `at` is where the flag's targeting value starts.
fn splice_weights(
    document: &str,
    at: usize,
    found: &Found,
    percent: Percent,
) -> Result<String, FlagdError> {
    let unreadable = FlagdError::Unreadable;
    let lost = || {
        FlagdError::Unreadable(format!(
            "{} is not where the parsed flag has it",
            path_text(&found.path)
        ))
    };
    let mut range = value_at(document, at).map_err(unreadable)?;
    for step in &found.path {
        range = match step {
            Step::Key(key) => object_at(document, range.start)
                .map_err(unreadable)?
                .member(key)
                .map_err(|e| unreadable(format!("in {}: {e}", path_text(&found.path))))?
                .ok_or_else(lost)?
                .value
                .clone(),
            Step::Index(i) => array_at(document, range.start)
                .map_err(unreadable)?
                .get(*i)
                .cloned()
                .ok_or_else(lost)?,
        };
    }
    let args = array_at(document, range.start).map_err(unreadable)?;
    let weight_at = |bucket: usize| -> Result<std::ops::Range<usize>, FlagdError> {
        let bucket = args.get(bucket).ok_or_else(lost)?;
        array_at(document, bucket.start)
            .map_err(unreadable)?
            .get(1)
            .cloned()
            .ok_or_else(lost)
    };
    let (on, off) = weights(percent);
    let mut edits = [
        (weight_at(found.split.on_at)?, on),
        (weight_at(found.split.off_at)?, off),
    ];
    edits.sort_by_key(|edit| std::cmp::Reverse(edit.0.start));
    let mut edited = document.to_owned();
    for (span, weight) in edits {
        edited.replace_range(span, &weight.to_string());
    }
    Ok(edited)
}

/// Sets the adopted fractional's two weights in a parsed targeting.
fn set_weights(targeting: &mut Value, found: &Found, percent: Percent) -> Result<(), FlagdError> {
    let lost = || {
        FlagdError::Unreadable(format!(
            "{} is not in the flag's targeting",
            path_text(&found.path)
        ))
    };
    let mut node = targeting;
    for step in &found.path {
        node = match step {
            Step::Key(key) => node.get_mut(key.as_str()),
            Step::Index(i) => node.get_mut(*i),
        }
        .ok_or_else(lost)?;
    }
    let (on, off) = weights(percent);
    for (bucket, weight) in [(found.split.on_at, on), (found.split.off_at, off)] {
        let slot = node
            .get_mut(bucket)
            .and_then(|b| b.get_mut(1))
            .ok_or_else(lost)?;
        *slot = Value::from(weight);
    }
    Ok(())
}

/// The key of an object member whose value is null, anywhere in `value`.
fn null_member(value: &Value) -> Option<String> {
    let mut stack = vec![value];
    while let Some(node) = stack.pop() {
        match node {
            Value::Object(members) => {
                for (key, value) in members {
                    if value.is_null() {
                        return Some(key.clone());
                    }
                    stack.push(value);
                }
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    None
}

/// The on share `on / (on + off)` rounded to the nearest basis point (halves up); `None`
/// when the weights total 0 or overflow.
fn share(on: u64, off: u64) -> Option<Percent> {
    let total = u128::from(on.checked_add(off)?);
    if total == 0 {
        return None;
    }
    let basis_points = (u128::from(on) * 20_000 + total) / (2 * total);
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
