//! What the flagd target writes, evaluated by the real flagd evaluator
//! (`openfeature-flagd-core`): the allowlist always gets the flag, about p % of other users
//! get it, and raising the percent only adds users.

#[path = "../support_ofrep/flagd_batch.rs"]
mod flagd_batch;

use std::collections::HashSet;

use rollgate::api::{FlagdTarget, Percent};
use rollgate::targets::flagd::{DocumentEdit, read_percent, write_percent};

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

/// A team's flag with its own rule: tier gold always gets `on`, everyone else by a fractional
/// bucketed on the e-mail, in the team's formatting, beside another flag. `{ON}` and `{OFF}`
/// are the fractional's weights.
const TEAM_RULE: &str = r#"{
  "$schema": "https://flagd.dev/schema/v0/flags.json",
  "flags": {
    "other": {"state": "ENABLED", "variants": {"a": true, "b": false}, "defaultVariant": "b"},
    "passenger_favorites_matching": {
      "state": "ENABLED",
      "variants": {"on": true, "off": false},
      "defaultVariant": "off",
      "metadata": {"team": "favorites"},
      "targeting": {
        "if": [
          {"==": [{"var": "tier"}, "gold"]}, "on",
          {"fractional": [
              {"cat": [{"var": "$flagd.flagKey"}, {"var": "email"}]},
              ["on", {ON}],   ["off",{OFF}]
          ]}
        ]
      }
    }
  }
}"#;

fn team_rule(on: u32, off: u32) -> String {
    TEAM_RULE
        .replace("{ON}", &on.to_string())
        .replace("{OFF}", &off.to_string())
}

/// Every fifth user is gold; each has an e-mail for the team's bucketing expression.
fn contexts(users: &[String]) -> Vec<serde_json::Value> {
    users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            serde_json::json!({
                "tier": if i % 5 == 0 { "gold" } else { "silver" },
                "email": format!("{user}@kaviar.example"),
            })
        })
        .collect()
}

/// An adopted rule through a rollout: gold users get `on` at every stage, the fractional
/// share is right for the others and only grows, only the two weights change in the text, and
/// the live percent (drift detection) is read from the same fractional.
#[test]
fn the_real_evaluator_keeps_the_teams_rule_of_an_adopted_flag() {
    let target = FlagdTarget {
        allowlist: Vec::new(),
        ..target()
    };
    let percents = [
        Percent::ZERO,
        Percent::from_basis_points(50).expect("0.5 %"),
        Percent::whole(1),
        Percent::whole(5),
        Percent::whole(10),
        Percent::whole(50),
        Percent::whole(100),
    ];
    let mut definitions = Vec::new();
    let mut current = team_rule(0, 100);
    for percent in percents {
        current = match write_percent(Some(&current), &target, percent).expect("writes") {
            DocumentEdit::Changed(text) => text,
            DocumentEdit::Unchanged => current,
        };
        let on = u32::from(percent.basis_points());
        let expected = if percent == Percent::ZERO {
            team_rule(0, 100)
        } else {
            team_rule(on, 10_000 - on)
        };
        assert_eq!(current, expected, "only the weights change at {percent}%");
        assert_eq!(read_percent(&current, &target), Ok(Some(percent)));
        definitions.push(current.clone());
    }
    // Drift: a hand edit of the adopted fractional is what the reader sees; an edit of the
    // team's condition is not a change of percent.
    assert_eq!(
        read_percent(&team_rule(20, 80), &target),
        Ok(Some(Percent::whole(20)))
    );
    assert_eq!(
        read_percent(&current.replace("\"gold\"", "\"platinum\""), &target),
        Ok(Some(Percent::HUNDRED))
    );

    let users = users();
    let attributes = contexts(&users);
    let jobs: Vec<flagd_batch::Job<'_>> = definitions
        .iter()
        .map(|definition| flagd_batch::Job {
            definition,
            flag: FLAG,
            keys: &users,
        })
        .collect();
    let Some(results) = flagd_batch::evaluate_in_contexts(&jobs, &attributes) else {
        return;
    };
    let others = users.len() - users.len().div_ceil(5);
    let mut previous: Option<HashSet<usize>> = None;
    for (percent, variants) in percents.iter().zip(&results) {
        let mut on = HashSet::new();
        for (i, variant) in variants.iter().enumerate() {
            if i % 5 == 0 {
                assert_eq!(
                    variant.as_deref(),
                    Some("on"),
                    "gold user {i} at {percent}%"
                );
            } else {
                assert!(
                    matches!(variant.as_deref(), Some("on" | "off")),
                    "{variant:?}"
                );
                if variant.as_deref() == Some("on") {
                    on.insert(i);
                }
            }
        }
        let share = on.len() as f64 / others as f64;
        let p = f64::from(percent.basis_points()) / 10_000.0;
        let tolerance = 4.0 * (p * (1.0 - p) / others as f64).sqrt() + 1e-9;
        assert!(
            (share - p).abs() <= tolerance,
            "at {percent}% the share of other users with the flag is {share:.4} (±{tolerance:.4})"
        );
        if let Some(previous) = &previous {
            assert!(
                previous.is_subset(&on),
                "raising to {percent}% took the flag from someone"
            );
        }
        previous = Some(on);
    }
}

/// A rule without a fractional is refused with the edit that makes it adoptable; that edit
/// changes no user's variant (checked with the real evaluator) and the edited flag is then
/// adopted. With `replaceTargeting`, rollgate's own rule replaces the team's.
#[test]
fn the_real_evaluator_agrees_with_the_suggested_edit_and_replace_targeting_overwrites() {
    let target = FlagdTarget {
        allowlist: Vec::new(),
        ..target()
    };
    let bare = serde_json::json!({"flags": {FLAG: {
        "state": "ENABLED",
        "variants": {"on": true, "off": false},
        "defaultVariant": "off",
        "targeting": {"if": [{"==": [{"var": "tier"}, "gold"]}, "on", "off"]}
    }}})
    .to_string();
    let error = write_percent(Some(&bare), &target, Percent::whole(5))
        .expect_err("no fractional to adopt")
        .to_string();
    let edit = r#"{"fractional":[["on",0],["off",100]]}"#;
    assert!(
        error.contains(&format!(
            r#"replace the else-branch "off" of its "if" (the last argument, targeting.if[2]) with {edit}"#
        )),
        "{error}"
    );
    let fixed = bare.replacen(r#""on","off"]"#, &format!(r#""on",{edit}]"#), 1);
    assert_ne!(fixed, bare);
    assert_eq!(read_percent(&fixed, &target), Ok(Some(Percent::ZERO)));
    let adopted = match write_percent(Some(&fixed), &target, Percent::whole(5)).expect("adopts") {
        DocumentEdit::Changed(text) => text,
        DocumentEdit::Unchanged => panic!("5% is a change"),
    };
    let replaced = match write_percent(
        Some(&bare),
        &FlagdTarget {
            replace_targeting: true,
            ..target.clone()
        },
        Percent::whole(5),
    )
    .expect("replaces")
    {
        DocumentEdit::Changed(text) => text,
        DocumentEdit::Unchanged => panic!("5% is a change"),
    };
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&replaced).expect("json")["flags"][FLAG]["targeting"],
        serde_json::json!({"fractional": [["on", 500], ["off", 9500]]})
    );

    let users = users();
    let attributes = contexts(&users);
    let definitions = [bare, fixed, adopted, replaced];
    let jobs: Vec<flagd_batch::Job<'_>> = definitions
        .iter()
        .map(|definition| flagd_batch::Job {
            definition,
            flag: FLAG,
            keys: &users,
        })
        .collect();
    let Some(results) = flagd_batch::evaluate_in_contexts(&jobs, &attributes) else {
        return;
    };
    assert_eq!(
        results[0], results[1],
        "the suggested edit changes no user's variant"
    );
    let gold_on = |variants: &[Option<String>]| {
        variants
            .iter()
            .step_by(5)
            .filter(|v| v.as_deref() == Some("on"))
            .count()
    };
    let gold = users.len().div_ceil(5);
    assert_eq!(gold_on(&results[2]), gold, "adopted: gold keeps the flag");
    let replaced_gold = gold_on(&results[3]) as f64 / gold as f64;
    assert!(
        replaced_gold < 0.1,
        "replaced: gold users are bucketed like everyone ({replaced_gold:.3} have it)"
    );
}
