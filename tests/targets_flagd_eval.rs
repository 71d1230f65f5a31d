//! What the flagd target writes, evaluated by the real flagd evaluator
//! (`openfeature-flagd-core`): the allowlist always gets the flag, about p % of other users
//! get it, and raising the percent only adds users.

#[path = "support_ofrep/flagd_batch.rs"]
mod flagd_batch;

use std::collections::HashSet;

use rollgate::api::{FlagdTarget, Percent};
use rollgate::targets::flagd::{DocumentEdit, write_percent};

const FLAG: &str = "passenger_favorites_matching";
const USERS: usize = 20_000;

/// A definition with another flag and shared evaluators, written by hand.
const BASE: &str = r#"{
  "$schema": "https://flagd.dev/schema/v0/flags.json",
  "$evaluators": {"internal": {"in": ["@kaviar.example", {"var": "email"}]}},
  "flags": {
    "other": {"state": "ENABLED", "variants": {"a": true, "b": false}, "defaultVariant": "b",
              "targeting": {"if": [{"$ref": "internal"}, "a", null]}}
  }
}"#;

fn target() -> FlagdTarget {
    FlagdTarget {
        config_map: Some("feature-flags".into()),
        flag: FLAG.into(),
        key: "flags.flagd.json".into(),
        on_variant: "on".into(),
        off_variant: "off".into(),
        allowlist: (1001..=1010).map(|i| format!("u-{i}")).collect(),
        ..FlagdTarget::default()
    }
}

/// Deterministic random-looking user ids (xorshift64*), so a run cannot flake.
fn users() -> Vec<String> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..USERS)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let n = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
            format!(
                "{:08x}-{:04x}-4{:03x}",
                n >> 32,
                (n >> 16) & 0xffff,
                n & 0xfff
            )
        })
        .collect()
}

#[test]
fn the_real_evaluator_serves_the_allowlist_and_p_percent_and_raising_only_adds_users() {
    let target = target();
    let percents = [0u8, 1, 5, 10, 50, 100];
    // Each definition is written from the previous one, as the controller advances stages.
    let mut definitions = Vec::new();
    let mut current = BASE.to_owned();
    for percent in percents {
        current = match write_percent(Some(&current), &target, Percent::whole(percent))
            .expect("writes")
        {
            DocumentEdit::Changed(text) => text,
            DocumentEdit::Unchanged => current,
        };
        definitions.push(current.clone());
    }
    let users = users();
    let mut keys = users.clone();
    keys.extend(target.allowlist.iter().cloned());
    let jobs: Vec<flagd_batch::Job<'_>> = definitions
        .iter()
        .map(|definition| flagd_batch::Job {
            definition,
            flag: FLAG,
            keys: &keys,
        })
        .collect();
    let Some(results) = flagd_batch::evaluate(&jobs) else {
        return;
    };

    let mut previous: Option<HashSet<&str>> = None;
    for (percent, variants) in percents.iter().zip(&results) {
        assert_eq!(variants.len(), keys.len());
        for (key, variant) in keys[USERS..].iter().zip(&variants[USERS..]) {
            assert_eq!(
                variant.as_deref(),
                Some("on"),
                "allowlisted {key} at {percent}%"
            );
        }
        for variant in &variants[..USERS] {
            assert!(
                matches!(variant.as_deref(), Some("on" | "off")),
                "every user gets a variant at {percent}%: {variant:?}"
            );
        }
        let on: HashSet<&str> = users
            .iter()
            .zip(&variants[..USERS])
            .filter(|(_, v)| v.as_deref() == Some("on"))
            .map(|(k, _)| k.as_str())
            .collect();
        let share = on.len() as f64 / USERS as f64;
        let p = f64::from(*percent) / 100.0;
        // Four standard deviations of a binomial share, plus a hair for p in {0, 1}.
        let tolerance = 4.0 * (p * (1.0 - p) / USERS as f64).sqrt() + 1e-9;
        assert!(
            (share - p).abs() <= tolerance,
            "at {percent}% the share of users with the flag is {share:.4} (±{tolerance:.4})"
        );
        if let Some(previous) = &previous {
            let lost: Vec<&&str> = previous.difference(&on).take(5).collect();
            assert!(
                lost.is_empty(),
                "raising the percent to {percent}% took the flag from users such as {lost:?}"
            );
        }
        previous = Some(on);
    }
}

/// A flag in the form rollgate wrote before basis points: `[["on", p], ["off", 100 - p]]`.
fn whole_percent_definition(percent: u8) -> String {
    serde_json::json!({"flags": {FLAG: {
        "state": "ENABLED",
        "variants": {"on": true, "off": false},
        "defaultVariant": "off",
        "targeting": {"fractional": [["on", percent], ["off", 100 - percent]]}
    }}})
    .to_string()
}

/// The real evaluator puts exactly the same users in the cohort under the basis-point weights
/// the target writes now as under the whole-percent weights it wrote before, and 0.5 % (weights
/// `[50, 9950]`) serves half a percent of users, all of them inside the 1 % cohort.
#[test]
fn the_real_evaluator_sees_the_same_users_under_basis_point_weights_and_half_a_percent() {
    let target = FlagdTarget {
        allowlist: Vec::new(),
        ..target()
    };
    let write = |percent: Percent| match write_percent(None, &target, percent).expect("writes") {
        DocumentEdit::Changed(text) => text,
        DocumentEdit::Unchanged => unreachable!("a new document is always a change"),
    };
    let half = write(Percent::from_basis_points(50).expect("0.5 %"));
    assert!(
        half.contains(r#"{"fractional":[["on",50],["off",9950]]}"#),
        "{half}"
    );
    let percents = [1u8, 2, 5, 10, 33, 50, 99];
    let mut definitions = Vec::new();
    for percent in percents {
        let new = write(Percent::whole(percent));
        assert!(
            new.contains(&format!(
                r#"[["on",{}],["off",{}]]"#,
                100 * u32::from(percent),
                10_000 - 100 * u32::from(percent)
            )),
            "{new}"
        );
        definitions.push(whole_percent_definition(percent));
        definitions.push(new);
    }
    definitions.push(half);
    definitions.push(write(Percent::whole(1)));
    let users = users();
    let jobs: Vec<flagd_batch::Job<'_>> = definitions
        .iter()
        .map(|definition| flagd_batch::Job {
            definition,
            flag: FLAG,
            keys: &users,
        })
        .collect();
    let Some(results) = flagd_batch::evaluate(&jobs) else {
        return;
    };
    let cohort = |variants: &[Option<String>]| -> HashSet<usize> {
        variants
            .iter()
            .enumerate()
            .filter(|(_, v)| v.as_deref() == Some("on"))
            .map(|(i, _)| i)
            .collect()
    };
    for (i, percent) in percents.iter().enumerate() {
        let before = cohort(&results[2 * i]);
        let after = cohort(&results[2 * i + 1]);
        let flipped: Vec<&String> = before
            .symmetric_difference(&after)
            .take(5)
            .map(|&u| &users[u])
            .collect();
        assert!(flipped.is_empty(), "at {percent}% users flip: {flipped:?}");
        assert!(!before.is_empty(), "at {percent}% someone has the flag");
    }
    let half = cohort(&results[2 * percents.len()]);
    let one = cohort(&results[2 * percents.len() + 1]);
    let share = half.len() as f64 / USERS as f64;
    let tolerance = 4.0 * (0.005 * 0.995 / USERS as f64).sqrt();
    assert!(
        (share - 0.005).abs() <= tolerance,
        "at 0.5% the share is {share:.5} (±{tolerance:.5})"
    );
    assert!(half.is_subset(&one), "0.5% must be inside 1%");
}
