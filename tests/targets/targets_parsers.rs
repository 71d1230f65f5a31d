//! Property tests for the targets' parsers of outside text: a ConfigMap key's percent and a
//! webhook's answer. No input panics; every refusal quotes what it got; the canonical forms
//! round-trip.

use proptest::prelude::*;
use rollgate::api::Percent;
use rollgate::targets::configmap::{format_percent, parse_percent};
use rollgate::targets::webhook::parse_answer;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_config_map_percent_parses_only_in_canonical_form(text in "\\PC{0,8}|[0-9 +.\\-]{0,5}") {
        match parse_percent(&text) {
            Ok(percent) => {
                prop_assert!(percent <= Percent::whole(100));
                prop_assert_eq!(Percent::parse(&text), Ok(percent));
                prop_assert!(text.bytes().all(|b| b.is_ascii_digit() || b == b'.'), "{}", text);
                prop_assert_eq!(parse_percent(&format_percent(percent)), Ok(percent));
            }
            Err(message) => {
                prop_assert!(message.contains("is not a percent"), "{}", message);
                prop_assert!(message.contains("0 to 100"), "{}", message);
            }
        }
    }

    #[test]
    fn every_percent_round_trips(basis_points in 0u16..=10_000) {
        let percent = Percent::from_basis_points(basis_points).expect("a percent");
        prop_assert_eq!(parse_percent(&format_percent(percent)), Ok(percent));
    }

    #[test]
    fn a_webhook_answer_never_panics_and_reads_only_percents_with_two_decimals(
        body in prop::collection::vec(any::<u8>(), 0..64),
        n in any::<i64>(),
        f in any::<f64>(),
    ) {
        let _ = parse_answer(&body);
        let answer = format!("{{\"percent\": {n}}}");
        match parse_answer(answer.as_bytes()) {
            Ok(Some(p)) => prop_assert_eq!(i64::from(p.basis_points()), n * 100),
            Ok(None) => prop_assert!(false, "a number read as no percent"),
            Err(message) => {
                prop_assert!(!(0..=100).contains(&n));
                prop_assert!(message.contains(&n.to_string()), "{}", message);
            }
        }
        if f.is_finite() {
            let answer = format!("{{\"percent\": {f:?}}}");
            match parse_answer(answer.as_bytes()) {
                Ok(Some(p)) => prop_assert!((p.as_f64() - f).abs() <= 1e-6, "{} read as {}", answer, p),
                Ok(None) => prop_assert!(false, "a number read as no percent"),
                Err(_) => prop_assert!(Percent::from_f64(f).is_err(), "{} refused", answer),
            }
            let two_decimals = format!("{{\"percent\": {}.{:02}}}", n.rem_euclid(100), n.rem_euclid(97));
            prop_assert!(parse_answer(two_decimals.as_bytes()).is_ok(), "{} refused", two_decimals);
        }
    }
}
