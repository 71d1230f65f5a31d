//! The flagd definition reader and writer: what is written, what is read back, that every
//! byte outside the rollout's flag stays as it was, and that hostile or hand-edited
//! definitions are refused with a message instead of a panic or a guess.

use proptest::prelude::*;
use rollgate::api::FlagdTarget;
use rollgate::api::Percent;
use rollgate::targets::TargetError;
use rollgate::targets::flagd::{
    DOCUMENT_CAP, DocumentEdit, FlagdError, flag_merge_patch, new_flag, percent_of_flag,
    read_percent, targeting, write_percent,
};
use serde_json::{Value, json};

const FLAG: &str = "passenger_favorites_matching";

fn target(allowlist: &[&str]) -> FlagdTarget {
    FlagdTarget {
        config_map: Some("feature-flags".into()),
        key: "flags.flagd.json".into(),
        flag: FLAG.into(),
        on_variant: "on".into(),
        off_variant: "off".into(),
        allowlist: allowlist.iter().map(|s| s.to_string()).collect(),
        ..FlagdTarget::default()
    }
}

fn changed(edit: Result<DocumentEdit, FlagdError>) -> String {
    match edit {
        Ok(DocumentEdit::Changed(text)) => text,
        other => panic!("expected a change, got {other:?}"),
    }
}

fn unreadable(result: Result<Option<Percent>, FlagdError>) -> String {
    match result {
        Err(FlagdError::Unreadable(reason)) => reason,
        other => panic!("expected unreadable, got {other:?}"),
    }
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("the written document is JSON")
}

/// A hand-written definition with odd formatting (CRLF, tabs, spaces before commas), other
/// flags, `$evaluators`, metadata, unicode and escapes, and the rollout's flag in the middle.
const OTHERS: &str = "{\r\n\t\"$schema\":\"https://flagd.dev/schema/v0/flags.json\" ,\n  \"metadata\" : {\"owner\":\"équipe-🚕\", \"version\": 1.50},\n\"$evaluators\": { \"internal\": {\"in\": [\"@kaviar.example\", {\"var\": \"email\"}]} },\n  \"flags\":{\n      \"other-flag\" :{ \"state\":\"ENABLED\",\"variants\":{\"a\":\"\\u00e9\",\"b\":1e2},\"defaultVariant\":\"a\",\n        \"targeting\": {\"if\": [{\"$ref\": \"internal\"}, \"b\", null]}},\n      \"passenger_favorites_matching\": {\n        \"state\": \"ENABLED\",\n        \"variants\": {\"on\": true, \"off\": false},\n        \"defaultVariant\": \"off\",\n        \"metadata\": {\"ticket\": \"KAV-1\"},\n        \"targeting\": {\"fractional\": [[\"on\", 1], [\"off\", 99]]}\n      },\n      \"zzz\": {\"state\": \"DISABLED\", \"variants\": {\"x\": [1, 2, {\"y\": \"}\"}]}, \"defaultVariant\": \"x\"}\n  }\n}\n";

const OLD_TARGETING: &str = r#"{"fractional": [["on", 1], ["off", 99]]}"#;

#[test]
fn writing_replaces_only_the_targeting_value() {
    let text = changed(write_percent(
        Some(OTHERS),
        &target(&["u-1", "ü-2"]),
        Percent::whole(5),
    ));
    let new = r#"{"if":[{"in":[{"var":"targetingKey"},["u-1","ü-2"]]},"on",{"fractional":[["on",500],["off",9500]]}]}"#;
    assert_eq!(text, OTHERS.replacen(OLD_TARGETING, new, 1));
    assert_eq!(
        read_percent(&text, &target(&["u-1", "ü-2"])),
        Ok(Some(Percent::whole(5)))
    );
}

/// A flag rollgate wrote before basis points, `[["on", p], ["off", 100 - p]]`, already serves
/// p %: writing p % again changes nothing (the same users have the flag), and the next percent
/// is written in basis points.
#[test]
fn a_whole_percent_flag_of_the_old_form_is_left_alone_until_the_percent_changes() {
    let t = target(&["u-1"]);
    let old = r#"{"flags": {"passenger_favorites_matching": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off", "targeting": {"if": [{"in": [{"var": "targetingKey"}, ["u-1"]]}, "on", {"fractional": [["on", 5], ["off", 95]]}]}}}}"#;
    assert_eq!(read_percent(old, &t), Ok(Some(Percent::whole(5))));
    assert_eq!(
        write_percent(Some(old), &t, Percent::whole(5)),
        Ok(DocumentEdit::Unchanged)
    );
    let flag: Value = serde_json::from_str(old).expect("json");
    let flag = &flag["flags"][FLAG];
    assert_eq!(
        flag_merge_patch(Some(flag), &t, Percent::whole(5)),
        Ok(None)
    );
    let next = changed(write_percent(Some(old), &t, Percent::whole(10)));
    assert!(
        next.contains(r#"{"fractional":[["on",1000],["off",9000]]}"#),
        "{next}"
    );
    // Another allowlist is another targeting: it is written.
    assert!(matches!(
        write_percent(Some(old), &target(&["u-2"]), Percent::whole(5)),
        Ok(DocumentEdit::Changed(_))
    ));
}

#[test]
fn without_an_allowlist_the_targeting_is_just_the_split() {
    let text = changed(write_percent(
        Some(OTHERS),
        &target(&[]),
        Percent::whole(50),
    ));
    let new = r#"{"fractional":[["on",5000],["off",5000]]}"#;
    assert_eq!(text, OTHERS.replacen(OLD_TARGETING, new, 1));
}

#[test]
fn the_targeting_written_is_the_documented_shape() {
    assert_eq!(
        targeting(&target(&["u-1001", "u-1002"]), Percent::whole(10)),
        json!({"if": [
            {"in": [{"var": "targetingKey"}, ["u-1001", "u-1002"]]},
            "on",
            {"fractional": [["on", 1000], ["off", 9000]]}
        ]})
    );
    let mut custom = target(&[]);
    custom.on_variant = "treatment".into();
    custom.off_variant = "control".into();
    assert_eq!(
        targeting(&custom, Percent::whole(0)),
        json!({"fractional": [["treatment", 0], ["control", 10000]]})
    );
    assert_eq!(
        targeting(&custom, Percent::whole(100)),
        json!({"fractional": [["treatment", 10000], ["control", 0]]})
    );
}

#[test]
fn a_flag_without_targeting_gets_a_targeting_member_after_its_last_one() {
    let doc = "{\"flags\": {\n  \"passenger_favorites_matching\": {\n    \"state\": \"ENABLED\",\n    \"variants\": {\"on\": true, \"off\": false},\n    \"defaultVariant\": \"off\"\n  }\n}}";
    assert_eq!(read_percent(doc, &target(&[])), Ok(Some(Percent::whole(0))));
    let text = changed(write_percent(Some(doc), &target(&[]), Percent::whole(1)));
    assert_eq!(
        text,
        doc.replace(
            "\"defaultVariant\": \"off\"\n",
            "\"defaultVariant\": \"off\",\n    \"targeting\": {\"fractional\":[[\"on\",100],[\"off\",9900]]}\n"
        )
    );
    assert_eq!(
        read_percent(&text, &target(&[])),
        Ok(Some(Percent::whole(1)))
    );
}

#[test]
fn an_absent_flag_is_created_after_the_others_and_nothing_else_moves() {
    let doc = "{\n  \"flags\": {\n    \"other\": {\"state\": \"ENABLED\", \"variants\": {\"a\": 1}, \"defaultVariant\": \"a\"}\n  }\n}\n";
    assert_eq!(read_percent(doc, &target(&[])), Ok(None));
    let text = changed(write_percent(
        Some(doc),
        &target(&["u-1"]),
        Percent::whole(1),
    ));
    let at = doc.find("}\n  }").expect("end of other") + 1;
    assert_eq!(&text[..at], &doc[..at], "text before the new flag is kept");
    assert_eq!(
        &text[text.len() - (doc.len() - at)..],
        &doc[at..],
        "text after the new flag is kept"
    );
    let inserted = &text[at..text.len() - (doc.len() - at)];
    assert!(
        inserted.starts_with(",\n    \"passenger_favorites_matching\": {\"state\": \"ENABLED\""),
        "{inserted}"
    );
    let parsed = parse(&text);
    assert_eq!(
        parsed["flags"][FLAG],
        json!({
            "state": "ENABLED",
            "variants": {"on": true, "off": false},
            "defaultVariant": "off",
            "targeting": targeting(&target(&["u-1"]), Percent::whole(1)),
        })
    );
    assert_eq!(
        parsed["flags"][FLAG],
        new_flag(&target(&["u-1"]), Percent::whole(1))
    );
    assert_eq!(
        read_percent(&text, &target(&["u-1"])),
        Ok(Some(Percent::whole(1)))
    );
}

#[test]
fn empty_flags_and_missing_flags_and_a_missing_key_are_filled_in() {
    for doc in [
        "{\"flags\":{}}",
        "{\"flags\": { }}",
        "{}",
        "{ \"$schema\": \"x\" }",
    ] {
        assert_eq!(read_percent(doc, &target(&[])), Ok(None), "{doc}");
        let text = changed(write_percent(Some(doc), &target(&[]), Percent::whole(5)));
        let parsed = parse(&text);
        assert_eq!(
            parsed["flags"][FLAG],
            new_flag(&target(&[]), Percent::whole(5)),
            "{doc}"
        );
        if doc.contains("$schema") {
            assert_eq!(parsed["$schema"], "x");
        }
        assert_eq!(
            read_percent(&text, &target(&[])),
            Ok(Some(Percent::whole(5))),
            "{doc}"
        );
    }
    let text = changed(write_percent(None, &target(&[]), Percent::whole(10)));
    let parsed = parse(&text);
    assert_eq!(parsed["$schema"], "https://flagd.dev/schema/v0/flags.json");
    assert_eq!(
        parsed["flags"][FLAG],
        new_flag(&target(&[]), Percent::whole(10))
    );
    assert_eq!(
        read_percent(&text, &target(&[])),
        Ok(Some(Percent::whole(10)))
    );
}

#[test]
fn other_flags_keep_their_bytes_through_many_writes() {
    let mut text = OTHERS.to_owned();
    for percent in [0, 100, 500, 1_000, 5_000, 10_000, 300, 50, 225].map(Percent::from_basis_points)
    {
        let percent = percent.expect("a percent");
        text = match write_percent(Some(&text), &target(&["u-1"]), percent) {
            Ok(DocumentEdit::Changed(t)) => t,
            Ok(DocumentEdit::Unchanged) => text,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(read_percent(&text, &target(&["u-1"])), Ok(Some(percent)));
    }
    let other_start = OTHERS.find("\"other-flag\"").expect("other");
    let ours = OTHERS.find("\"targeting\": {\"fractional\"").expect("ours");
    assert_eq!(&text[..ours], &OTHERS[..ours]);
    assert!(text[other_start..].contains("\"b\",  null") || text.contains("\"b\", null"));
    let tail = OTHERS.find("\n      },\n      \"zzz\"").expect("zzz");
    assert!(text.ends_with(&OTHERS[tail..]));
}

#[test]
fn writing_the_same_percent_and_allowlist_changes_nothing() {
    let text = changed(write_percent(
        Some(OTHERS),
        &target(&["u-1"]),
        Percent::whole(5),
    ));
    assert_eq!(
        write_percent(Some(&text), &target(&["u-1"]), Percent::whole(5)),
        Ok(DocumentEdit::Unchanged)
    );
    // A new allowlist is a change even at the same percent.
    let again = changed(write_percent(
        Some(&text),
        &target(&["u-1", "u-2"]),
        Percent::whole(5),
    ));
    assert!(again.contains(r#"["u-1","u-2"]"#));
    // So is another percent.
    changed(write_percent(
        Some(&text),
        &target(&["u-1"]),
        Percent::whole(6),
    ));
}

#[test]
fn reading_accepts_the_shapes_rollgate_writes_and_a_static_flag() {
    let flag = |targeting: Value| {
        json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
               "targeting": targeting})
    };
    let t = target(&[]);
    assert_eq!(percent_of_flag(&flag(json!({})), &t), Ok(Percent::whole(0)));
    let mut on_by_default = flag(json!({}));
    on_by_default["defaultVariant"] = json!("on");
    assert_eq!(percent_of_flag(&on_by_default, &t), Ok(Percent::whole(100)));
    let mut no_targeting = flag(json!({}));
    no_targeting
        .as_object_mut()
        .expect("object")
        .remove("targeting");
    assert_eq!(percent_of_flag(&no_targeting, &t), Ok(Percent::whole(0)));
    for p in [0u16, 1, 37, 50, 99, 100, 3_700, 9_999, 10_000] {
        let p = Percent::from_basis_points(p).expect("a percent");
        assert_eq!(percent_of_flag(&flag(targeting(&t, p)), &t), Ok(p));
        // Any allowlist reads: the percent is what is compared.
        assert_eq!(
            percent_of_flag(&flag(targeting(&target(&["a", "b"]), p)), &t),
            Ok(p)
        );
    }
}

/// The reader takes any non-negative integer weights: the whole-percent form rollgate wrote
/// before basis points, basis points, and other totals, rounded to the nearest basis point.
#[test]
fn weights_of_any_total_read_as_the_nearest_basis_point() {
    let t = target(&[]);
    let read = |on: u64, off: u64| {
        let flag = json!({"state": "ENABLED", "variants": {"on": true, "off": false},
                          "defaultVariant": "off",
                          "targeting": {"fractional": [["on", on], ["off", off]]}});
        percent_of_flag(&flag, &t).map(Percent::basis_points)
    };
    for p in 0..=100u64 {
        assert_eq!(read(p, 100 - p), Ok(p as u16 * 100), "the old form at {p}%");
        assert_eq!(
            read(100 * p, 10_000 - 100 * p),
            Ok(p as u16 * 100),
            "basis points at {p}%"
        );
    }
    assert_eq!(read(50, 9_950), Ok(50));
    assert_eq!(read(5, 94), Ok(505), "5/99 is 5.0505…%");
    assert_eq!(read(50, 51), Ok(4_950), "50/101 is 49.504…%");
    assert_eq!(read(1, 2), Ok(3_333));
    assert_eq!(read(2, 1), Ok(6_667));
    assert_eq!(read(1, 19_999), Ok(1), "half a basis point rounds up");
    assert_eq!(read(1, 20_001), Ok(0));
    let big = i32::MAX as u64;
    assert_eq!(read(big / 2, big - big / 2), Ok(5_000));
}

#[test]
fn hand_edited_or_foreign_targeting_is_unreadable_with_a_message() {
    let t = target(&[]);
    let not_adoptable = "no fractional over \"on\" and \"off\" for rollgate to adopt";
    let cases = [
        (json!({"fractional": [["on", 0], ["off", 0]]}), "total 0"),
        (
            json!({"fractional": [["on", 5], ["off", 90], ["other", 5]]}),
            "is not one over \"on\" and \"off\" alone",
        ),
        (json!({"fractional": [["on", 100]]}), not_adoptable),
        (json!({"fractional": [["on"], ["off"]]}), not_adoptable),
        (
            json!({"fractional": [["on", 5.0], ["off", 95]]}),
            not_adoptable,
        ),
        (
            json!({"fractional": [["on", -5], ["off", 105]]}),
            not_adoptable,
        ),
        (
            json!({"fractional": [["on", "5"], ["off", "95"]]}),
            not_adoptable,
        ),
        (
            json!({"fractional": [["on", 300], ["off", 18446744073709551516u64]]}),
            "more than 2^64",
        ),
        (
            json!({"if": [{"in": [{"var": "targetingKey"}, ["a"]]}, "on", "off"]}),
            "replace the else-branch \"off\"",
        ),
        (
            json!({"fractional": [["on", 5], ["off", 95]], "extra": 1}),
            "the fractional at targeting.fractional is not one over",
        ),
        (
            json!({"if": [true, {"fractional": [["on", 5], ["off", 95]]}, {"fractional": [["off", 5], ["on", 95]]}]}),
            "has 2 fractionals over \"on\" and \"off\" (at targeting.if[1].fractional, targeting.if[2].fractional)",
        ),
        (json!("on"), "not a JsonLogic rule"),
        (json!(null), "not a JsonLogic rule"),
        (json!([1]), "not a JsonLogic rule"),
    ];
    for (targeting, expected) in cases {
        let flag = json!({"state": "ENABLED", "variants": {"on": true, "off": false},
                          "defaultVariant": "off", "targeting": targeting});
        match percent_of_flag(&flag, &t) {
            Err(FlagdError::Unreadable(reason)) => {
                assert!(reason.contains(expected), "{targeting}: {reason}");
            }
            other => panic!("{targeting} read as {other:?}"),
        }
    }
}

#[test]
fn a_single_fractional_inside_the_teams_rule_is_adopted_when_read() {
    let t = target(&[]);
    let split = json!({"fractional": [["on", 5], ["off", 95]]});
    let cases = [
        json!({"fractional": [["off", 95], ["on", 5]]}),
        json!({"fractional": [{"var": "email"}, ["on", 5], ["off", 95]]}),
        json!({"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]}, ["on", 5], ["off", 95]]}),
        json!({"if": [{"in": [{"var": "email"}, ["a"]]}, "on", split]}),
        json!({"if": [{"in": [{"var": "targetingKey"}, ["a"]]}, "off", split]}),
        json!({"if": [{"in": [{"var": "targetingKey"}, [1]]}, "on", split]}),
        json!({"if": [{"in": [{"var": "targetingKey"}, ["a"]]}, "on", split, "off"]}),
        json!({"if": [{"==": [{"var": "tier"}, "gold"]}, "on", split]}),
        json!({"if": [{"and": [{"==": [{"var": "country"}, "fr"]}, {"if": [true, split, null]}]}, "on", "off"]}),
        json!({"if": [{"==": [{"var": "tier"}, "gold"]}, "on", {"fractional": [["blue", 50], ["green", 50]]}, split]}),
    ];
    for targeting in cases {
        let flag = json!({"state": "ENABLED", "variants": {"on": true, "off": false},
                          "defaultVariant": "off", "targeting": targeting});
        assert_eq!(
            percent_of_flag(&flag, &t),
            Ok(Percent::whole(5)),
            "{targeting}"
        );
    }
}

/// A flag with the team's own rule: tier gold always gets `on`, everyone else by a split with
/// its own bucketing expression, in the team's formatting.
const GOLD: &str = "{\n  \"flags\": {\n    \"passenger_favorites_matching\": {\n      \"state\": \"ENABLED\",\n      \"variants\": {\"on\": true, \"off\": false},\n      \"defaultVariant\": \"off\",\n      \"targeting\": {\n        \"if\": [\n          {\"==\": [{\"var\": \"tier\"}, \"gold\"]}, \"on\",\n          {\"fractional\": [\n            {\"cat\": [{\"var\": \"$flagd.flagKey\"}, {\"var\": \"email\"}]},\n            [\"off\" ,  10000],\n            [\"on\",0]\n          ]}\n        ]\n      }\n    }\n  }\n}\n";

#[test]
fn an_adopted_fractional_gets_new_weights_and_every_other_byte_stays() {
    let t = target(&[]);
    assert_eq!(read_percent(GOLD, &t), Ok(Some(Percent::ZERO)));
    assert_eq!(
        write_percent(Some(GOLD), &t, Percent::ZERO),
        Ok(DocumentEdit::Unchanged)
    );
    let mut text = GOLD.to_owned();
    for (percent, off, on) in [
        (Percent::whole(1), "9900", "100"),
        (Percent::from_basis_points(50).expect("0.5"), "9950", "50"),
        (Percent::whole(100), "0", "10000"),
    ] {
        text = changed(write_percent(Some(&text), &t, percent));
        let expected = GOLD
            .replacen("[\"off\" ,  10000]", &format!("[\"off\" ,  {off}]"), 1)
            .replacen("[\"on\",0]", &format!("[\"on\",{on}]"), 1);
        assert_eq!(text, expected, "{percent}");
        assert_eq!(read_percent(&text, &t), Ok(Some(percent)));
        assert_eq!(
            write_percent(Some(&text), &t, percent),
            Ok(DocumentEdit::Unchanged)
        );
    }
    // The whole-percent form the team may have written is the same cohort: left alone.
    let whole = GOLD
        .replacen("10000]", "95]", 1)
        .replacen("[\"on\",0]", "[\"on\",5]", 1);
    assert_eq!(read_percent(&whole, &t), Ok(Some(Percent::whole(5))));
    assert_eq!(
        write_percent(Some(&whole), &t, Percent::whole(5)),
        Ok(DocumentEdit::Unchanged)
    );
}

#[test]
fn a_rule_without_a_fractional_is_refused_with_the_smallest_edit() {
    let t = target(&[]);
    let flag = |targeting: Value| {
        format!(
            r#"{{"flags": {{"{FLAG}": {{"state": "ENABLED", "variants": {{"on": true, "off": false}}, "defaultVariant": "off", "targeting": {targeting}}}}}}}"#
        )
    };
    let cases = [
        (
            json!({"if": [{"==": [{"var": "tier"}, "gold"]}, "on", "off"]}),
            r#"replace the else-branch "off" of its "if" (the last argument, targeting.if[2]) with {"fractional":[["on",0],["off",100]]}"#,
        ),
        (
            json!({"if": [{"==": [{"var": "tier"}, "gold"]}, "off", "on"]}),
            r#"replace the else-branch "on" of its "if" (the last argument, targeting.if[2]) with {"fractional":[["on",100],["off",0]]}"#,
        ),
        (
            json!({"if": [{"==": [{"var": "tier"}, "gold"]}, "on"]}),
            r#"add {"fractional":[["on",0],["off",100]]} as the else-branch of its "if" (a last argument, targeting.if[2])"#,
        ),
        (
            json!({"in": ["@example.com", {"var": "email"}]}),
            r#"put {"fractional":[["on",0],["off",100]]} where the rule serves "off""#,
        ),
    ];
    for (targeting, edit) in cases {
        let doc = flag(targeting.clone());
        for error in [
            match read_percent(&doc, &t) {
                Err(FlagdError::Unreadable(reason)) => reason,
                other => panic!("{targeting} read as {other:?}"),
            },
            match write_percent(Some(&doc), &t, Percent::whole(1)) {
                Err(FlagdError::Unwritable(reason)) => reason,
                other => panic!("{targeting} written as {other:?}"),
            },
        ] {
            assert!(error.contains(edit), "{targeting}: {error}");
            assert!(
                error.contains("target.flagd.replaceTargeting: true"),
                "{error}"
            );
        }
        // The edit the message shows makes the flag adoptable, at the percent it had.
        if let Some(rest) = edit.strip_prefix("replace the else-branch \"off\"") {
            let fractional = &rest[rest.find('{').expect("edit")..];
            let fixed = doc.replacen(r#""on","off"]"#, &format!(r#""on",{fractional}]"#), 1);
            assert_eq!(read_percent(&fixed, &t), Ok(Some(Percent::ZERO)), "{fixed}");
        }
    }
}

#[test]
fn replace_targeting_overwrites_the_teams_rule() {
    let mut t = target(&["u-1"]);
    t.replace_targeting = true;
    let foreign = r#"{"flags": {"passenger_favorites_matching": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off", "targeting": {"if": [{"==": [{"var": "tier"}, "gold"]}, "on", "off"]}}}}"#;
    assert_eq!(
        read_percent(foreign, &t),
        Ok(None),
        "nothing of rollgate's yet"
    );
    let text = changed(write_percent(Some(foreign), &t, Percent::whole(5)));
    assert_eq!(
        parse(&text)["flags"][FLAG]["targeting"],
        targeting(&t, Percent::whole(5))
    );
    assert_eq!(read_percent(&text, &t), Ok(Some(Percent::whole(5))));
    // An adoptable rule is replaced too.
    let text = changed(write_percent(Some(GOLD), &t, Percent::whole(5)));
    assert_eq!(
        parse(&text)["flags"][FLAG]["targeting"],
        targeting(&t, Percent::whole(5))
    );
    // Without replaceTargeting, the same flag is refused.
    assert!(write_percent(Some(foreign), &target(&[]), Percent::whole(5)).is_err());
}

#[test]
fn an_allowlist_is_refused_for_an_adopted_rule() {
    let t = target(&["u-1"]);
    // The flag reads (the live percent is known), but is not written.
    assert_eq!(read_percent(GOLD, &t), Ok(Some(Percent::ZERO)));
    for error in [
        write_percent(Some(GOLD), &t, Percent::whole(1)),
        write_percent(Some(GOLD), &t, Percent::ZERO),
    ] {
        match error {
            Err(FlagdError::Unwritable(reason)) => {
                assert!(
                    reason.contains("the allowlist is part of rollgate's own rule"),
                    "{reason}"
                );
                assert!(
                    reason.contains("keep the allowlist as your own \"in\" rule"),
                    "{reason}"
                );
                assert!(reason.contains("targeting.if[2].fractional"), "{reason}");
            }
            other => panic!("written as {other:?}"),
        }
    }
    let flag = parse(GOLD)["flags"][FLAG].clone();
    assert!(matches!(
        flag_merge_patch(Some(&flag), &t, Percent::whole(1)),
        Err(FlagdError::Unwritable(_))
    ));
}

/// RFC 7386 JSON merge patch, as the API server applies it.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(object) = target {
        for (key, value) in patch {
            if value.is_null() {
                object.remove(key);
            } else {
                merge_patch(object.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

#[test]
fn the_feature_flag_patch_of_an_adopted_rule_changes_only_the_weights() {
    let t = target(&[]);
    let flag = parse(GOLD)["flags"][FLAG].clone();
    let patch = flag_merge_patch(Some(&flag), &t, Percent::whole(5))
        .expect("patch")
        .expect("a change");
    let mut expected = flag["targeting"].clone();
    expected["if"][2]["fractional"][1][1] = json!(9500);
    expected["if"][2]["fractional"][2][1] = json!(500);
    assert_eq!(patch, json!({"targeting": expected}));
    let mut patched = flag.clone();
    merge_patch(&mut patched, &patch);
    assert_eq!(percent_of_flag(&patched, &t), Ok(Percent::whole(5)));
    assert_eq!(
        flag_merge_patch(Some(&patched), &t, Percent::whole(5)),
        Ok(None)
    );
    // A null member would be deleted by a merge patch: refused, not mangled.
    let mut with_null = flag.clone();
    with_null["targeting"]["if"][0] = json!({"missing_some": [1, {"x": null}]});
    assert!(matches!(
        flag_merge_patch(Some(&with_null), &t, Percent::whole(5)),
        Err(FlagdError::Unwritable(reason)) if reason.contains("null")
    ));
}

#[test]
fn flags_rollgate_cannot_read_say_why() {
    let t = target(&[]);
    let cases = [
        (
            json!({"state": "DISABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}),
            "DISABLED",
        ),
        (
            json!({"variants": {"on": true, "off": false}, "defaultVariant": "off"}),
            "state is missing",
        ),
        (
            json!({"state": "enabled", "variants": {"on": true}}),
            "state is \"enabled\"",
        ),
        (
            json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "maybe"}),
            "defaultVariant \"maybe\"",
        ),
        (
            json!({"state": "ENABLED", "variants": {"on": true, "off": false}}),
            "defaultVariant missing",
        ),
        (json!("ENABLED"), "not an object"),
        (json!([]), "not an object"),
    ];
    for (flag, expected) in cases {
        match percent_of_flag(&flag, &t) {
            Err(FlagdError::Unreadable(reason)) => assert!(reason.contains(expected), "{reason}"),
            other => panic!("{flag} read as {other:?}"),
        }
    }
}

#[test]
fn documents_rollgate_cannot_read_say_why() {
    let t = target(&[]);
    let cases = [
        ("", "not JSON"),
        ("   ", "not JSON"),
        ("{\"flags\": {}", "not JSON"),
        ("{\"flags\": {}} trailing", "not JSON"),
        ("\u{feff}{\"flags\": {}}", "not JSON"),
        ("{'flags': {}}", "not JSON"),
        ("[]", "not a JSON object"),
        ("\"flags\"", "not a JSON object"),
        ("null", "not a JSON object"),
        ("{\"flags\": []}", "\"flags\" is not an object but []"),
        ("{\"flags\": \"x\"}", "\"flags\" is not an object"),
        (
            "{\"flags\": {}, \"flags\": {}}",
            "\"flags\" appears more than once",
        ),
        (
            "{\"flags\": {\"passenger_favorites_matching\": {}, \"passenger_favorites_\\u006datching\": {}}}",
            "in \"flags\": key \"passenger_favorites_matching\" appears more than once",
        ),
    ];
    for (doc, expected) in cases {
        let reason = unreadable(read_percent(doc, &t));
        assert!(reason.contains(expected), "{doc:?}: {reason}");
        match write_percent(Some(doc), &t, Percent::whole(5)) {
            Err(FlagdError::Unreadable(reason)) => {
                assert!(reason.contains(expected), "{doc:?}: {reason}")
            }
            other => panic!("{doc:?} written as {other:?}"),
        }
    }
}

#[test]
fn a_duplicated_targeting_member_is_refused() {
    let doc = r#"{"flags": {"passenger_favorites_matching": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off", "targeting": {}, "targeting": {"fractional": [["on", 5], ["off", 95]]}}}}"#;
    match write_percent(Some(doc), &target(&[]), Percent::whole(5)) {
        Err(FlagdError::Unreadable(reason)) => {
            assert!(
                reason.contains("\"targeting\" appears more than once"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn hostile_documents_are_bounded() {
    let t = target(&[]);
    let big = format!(
        "{{\"flags\": {{}}, \"pad\": \"{}\"}}",
        "x".repeat(DOCUMENT_CAP)
    );
    let reason = unreadable(read_percent(&big, &t));
    assert!(reason.contains("more than the 1048576 bytes"), "{reason}");
    // Nesting far beyond what a flag definition needs is refused by the parser's depth limit,
    // without exhausting the stack.
    let deep = format!(
        "{{\"flags\": {{}}, \"x\": {}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let reason = unreadable(read_percent(&deep, &t));
    assert!(reason.contains("nested deeper than 64 levels"), "{reason}");
    let deep_flag = format!(
        "{{\"flags\": {{\"{FLAG}\": {{\"state\": \"ENABLED\", \"targeting\": {}1{}}}}}}}",
        "{\"a\":".repeat(200),
        "}".repeat(200)
    );
    assert!(read_percent(&deep_flag, &t).is_err());
}

#[test]
fn the_controller_refuses_to_write_a_disabled_flag_or_one_without_its_variants() {
    let cases = [
        (
            r#"{"flags": {"passenger_favorites_matching": {"state": "DISABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}}}"#,
            "kill switch",
        ),
        (
            r#"{"flags": {"passenger_favorites_matching": {"state": "ENABLED", "variants": {"yes": true, "off": false}, "defaultVariant": "off"}}}"#,
            "no variant \"on\"",
        ),
        (
            r#"{"flags": {"passenger_favorites_matching": {"state": "ENABLED", "defaultVariant": "off"}}}"#,
            "variants: missing",
        ),
    ];
    for (doc, expected) in cases {
        match write_percent(Some(doc), &target(&[]), Percent::whole(5)) {
            Err(FlagdError::Unwritable(reason)) => assert!(reason.contains(expected), "{reason}"),
            other => panic!("{doc}: {other:?}"),
        }
    }
    let mut same = target(&[]);
    same.off_variant = "on".into();
    assert!(matches!(
        write_percent(None, &same, Percent::whole(5)),
        Err(FlagdError::Unwritable(reason)) if reason.contains("must differ")
    ));
    // A percent above 100 cannot be written: `Percent` holds at most 100.
    assert_eq!(Percent::whole(101), Percent::HUNDRED);
}

#[test]
fn a_hand_edited_targeting_is_overwritten_by_a_write_with_replace_targeting() {
    let doc = r#"{"flags": {"passenger_favorites_matching": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off", "targeting": {"if": [{"==": [{"var": "tier"}, "gold"]}, "on", "off"]}}}}"#;
    assert!(read_percent(doc, &target(&[])).is_err());
    assert!(write_percent(Some(doc), &target(&[]), Percent::whole(5)).is_err());
    let mut replace = target(&[]);
    replace.replace_targeting = true;
    let text = changed(write_percent(Some(doc), &replace, Percent::whole(5)));
    assert_eq!(
        read_percent(&text, &target(&[])),
        Ok(Some(Percent::whole(5)))
    );
}

#[test]
fn errors_name_the_place_they_are_given() {
    let err = FlagdError::Unreadable("flag is DISABLED".into())
        .at("ConfigMap kaviar/feature-flags key flags.flagd.json flag f");
    assert!(matches!(err, TargetError::Unreadable { .. }));
    assert_eq!(
        err.to_string(),
        "ConfigMap kaviar/feature-flags key flags.flagd.json flag f: flag is DISABLED"
    );
    assert_eq!(err.reason(), "unreadable");
    let err = FlagdError::Unwritable("no".into()).at("here");
    assert_eq!(err.reason(), "unwritable");
}

#[test]
fn the_feature_flag_merge_patch_replaces_targeting_rather_than_merging_it() {
    let t = target(&["u-1"]);
    assert_eq!(
        flag_merge_patch(None, &t, Percent::whole(5)),
        Ok(Some(new_flag(&t, Percent::whole(5))))
    );
    let flag = json!({"state": "ENABLED", "variants": {"on": true, "off": false},
                      "defaultVariant": "off", "targeting": {"fractional": [["on", 1], ["off", 99]]}});
    let patch = flag_merge_patch(Some(&flag), &t, Percent::whole(5))
        .expect("patch")
        .expect("a change");
    let mut expected = targeting(&t, Percent::whole(5));
    expected["fractional"] = Value::Null;
    assert_eq!(patch, json!({"targeting": expected}));
    let mut written = flag.clone();
    written["targeting"] = targeting(&t, Percent::whole(5));
    assert_eq!(
        flag_merge_patch(Some(&written), &t, Percent::whole(5)),
        Ok(None)
    );
    let disabled = json!({"state": "DISABLED", "variants": {"on": true, "off": false}});
    assert!(matches!(
        flag_merge_patch(Some(&disabled), &t, Percent::whole(5)),
        Err(FlagdError::Unwritable(_))
    ));
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z\\\\\"{}\\[\\]é🚕 ]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z\"{}]{0,5}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the text, reading and writing answer without panicking.
    #[test]
    fn no_text_makes_it_panic(text in "[\\[\\]{}\":,a-z0-9\\\\ \n]{0,64}") {
        let t = target(&["u"]);
        let _ = read_percent(&text, &t);
        let _ = write_percent(Some(&text), &t, Percent::whole(5));
        let wrapped = format!("{{\"flags\": {{\"{FLAG}\": {text}}}}}");
        let _ = read_percent(&wrapped, &t);
        let _ = write_percent(Some(&wrapped), &t, Percent::whole(5));
    }

    /// Any other flags and top-level members, pretty or compact: a write keeps them exactly
    /// (as values and as text around the flag) and reads back as written.
    #[test]
    fn writes_keep_everything_else_and_read_back(
        others in prop::collection::btree_map("[a-z_\"é]{1,6}", arbitrary_json(), 0..4),
        top in prop::collection::btree_map("[a-z$]{1,6}", arbitrary_json(), 0..3),
        pretty in any::<bool>(),
        basis_points in 0u16..=10_000,
        allowlist in prop::collection::vec("[a-z0-9\"\\\\-]{1,6}", 0..4),
    ) {
        let others: serde_json::Map<String, Value> =
            others.into_iter().filter(|(k, _)| k != FLAG).collect();
        let mut doc = Value::Object(top.into_iter().filter(|(k, _)| k != "flags").collect());
        doc["flags"] = Value::Object(others.clone());
        let text = if pretty {
            serde_json::to_string_pretty(&doc).expect("json")
        } else {
            doc.to_string()
        };
        let allow: Vec<&str> = allowlist.iter().map(String::as_str).collect();
        let t = target(&allow);
        let percent = Percent::from_basis_points(basis_points).expect("a percent");
        let written = changed(write_percent(Some(&text), &t, percent));
        let mut parsed = parse(&written);
        prop_assert_eq!(read_percent(&written, &t), Ok(Some(percent)));
        prop_assert_eq!(&parsed["flags"][FLAG], &new_flag(&t, percent));
        parsed["flags"].as_object_mut().expect("flags").remove(FLAG);
        prop_assert_eq!(parsed, doc);
        // A second write of another percent touches only the flag's targeting.
        let next = Percent::from_basis_points((basis_points + 1) % 10_001).expect("a percent");
        let rewritten = changed(write_percent(Some(&written), &t, next));
        let old_targeting = targeting(&t, percent).to_string();
        let at = written.find(&old_targeting).expect("the targeting is in the text");
        let expected = format!(
            "{}{}{}",
            &written[..at],
            targeting(&t, next),
            &written[at + old_targeting.len()..]
        );
        prop_assert_eq!(&rewritten, &expected);
        prop_assert_eq!(read_percent(&rewritten, &t), Ok(Some(next)));
    }
}

/// The allowlist message tells the team to keep its own `in` rule: with no allowlist in the
/// target, such a rule (even in rollgate's own shape) is adopted, not dropped.
#[test]
fn the_teams_own_in_rule_is_kept_when_the_target_has_no_allowlist() {
    let doc = r#"{"flags": {"passenger_favorites_matching": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off", "targeting": {"if": [{"in": [{"var": "targetingKey"}, ["u-1"]]}, "on", {"fractional": [["on", 0], ["off", 10000]]}]}}}}"#;
    let text = changed(write_percent(Some(doc), &target(&[]), Percent::whole(5)));
    assert_eq!(
        text,
        doc.replacen(
            r#"[["on", 0], ["off", 10000]]"#,
            r#"[["on", 500], ["off", 9500]]"#,
            1
        )
    );
    // With an allowlist in the target it is rollgate's rule, written whole.
    let text = changed(write_percent(
        Some(doc),
        &target(&["u-2"]),
        Percent::whole(5),
    ));
    assert_eq!(
        parse(&text)["flags"][FLAG]["targeting"],
        targeting(&target(&["u-2"]), Percent::whole(5))
    );
}
