//! The flagd definition reader and writer: what is written, what is read back, and that
//! every byte outside the rollout's flag stays as it was.

use rollgate::api::FlagdTarget;
use rollgate::targets::flagd::{
    DOCUMENT_CAP, DocumentEdit, FlagdError, flag_merge_patch, percent_of_flag, read_percent,
    targeting, write_percent,
};
use serde_json::{Value, json};

fn target(allowlist: &[&str]) -> FlagdTarget {
    FlagdTarget {
        config_map: Some("feature-flags".into()),
        key: "flags.flagd.json".into(),
        flag: "passenger_favorites_matching".into(),
        on_variant: "on".into(),
        off_variant: "off".into(),
        allowlist: allowlist.iter().map(|s| s.to_string()).collect(),
        ..FlagdTarget::default()
    }
}

fn changed(edit: DocumentEdit) -> String {
    match edit {
        DocumentEdit::Changed(text) => text,
        DocumentEdit::Unchanged => panic!("expected a change"),
    }
}

/// A hand-written definition with odd formatting, other flags, `$evaluators`, metadata and
/// unicode, and the rollout's flag in the middle.
const OTHERS: &str = "{\r\n\t\"$schema\":\"https://flagd.dev/schema/v0/flags.json\" ,\n  \"metadata\" : {\"owner\":\"équipe-🚕\", \"version\": 1.50},\n\"$evaluators\": { \"internal\": {\"in\": [\"@kaviar.example\", {\"var\": \"email\"}]} },\n  \"flags\":{\n      \"other-flag\" :{ \"state\":\"ENABLED\",\"variants\":{\"a\":\"\\u00e9\",\"b\":1e2},\"defaultVariant\":\"a\",\n        \"targeting\": {\"if\": [{\"$ref\": \"internal\"}, \"b\", null]}},\n      \"passenger_favorites_matching\": {\n        \"state\": \"ENABLED\",\n        \"variants\": {\"on\": true, \"off\": false},\n        \"defaultVariant\": \"off\",\n        \"metadata\": {\"ticket\": \"KAV-1\"},\n        \"targeting\": {\"fractional\": [[\"on\", 1], [\"off\", 99]]}\n      },\n      \"zzz\": {\"state\": \"DISABLED\", \"variants\": {\"x\": [1, 2, {\"y\": \"}\"}]}, \"defaultVariant\": \"x\"}\n  }\n}\n";

#[test]
fn writing_replaces_only_the_targeting_value() {
    let text = changed(write_percent(Some(OTHERS), &target(&["u-1"]), 5).expect("writes"));
    let old = r#"{"fractional": [["on", 1], ["off", 99]]}"#;
    let new = r#"{"if":[{"in":[{"var":"targetingKey"},["u-1"]]},"on",{"fractional":[["on",5],["off",95]]}]}"#;
    assert_eq!(text, OTHERS.replacen(old, new, 1));
    assert_eq!(read_percent(&text, &target(&["u-1"])), Ok(Some(5)));
}

#[test]
fn a_smoke_round_trip_from_nothing() {
    let text = changed(write_percent(None, &target(&[]), 10).expect("writes"));
    let parsed: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        parsed["flags"]["passenger_favorites_matching"],
        json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
               "targeting": {"fractional": [["on", 10], ["off", 90]]}})
    );
    assert_eq!(read_percent(&text, &target(&[])), Ok(Some(10)));
    assert_eq!(
        write_percent(Some(&text), &target(&[]), 10),
        Ok(DocumentEdit::Unchanged)
    );
    let _ = (
        DOCUMENT_CAP,
        targeting(&target(&[]), 1),
        flag_merge_patch(None, &target(&[]), 1),
    );
    let _: Result<u8, FlagdError> = percent_of_flag(
        &parsed["flags"]["passenger_favorites_matching"],
        &target(&[]),
    );
}
