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

/// The text of `basis_points` with exactly two decimals: `0.00`, `12.34`, `100.00`.
fn two_decimals(basis_points: u32) -> String {
    format!("{}.{:02}", basis_points / 100, basis_points % 100)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every percent from 0 to 100 in steps of 0.01, written with two decimals, reads as
    /// exactly that many basis points, from a ConfigMap key and from a webhook's answer.
    #[test]
    fn every_two_decimal_percent_from_0_to_100_reads_exactly(basis_points in 0u32..=10_000) {
        let text = two_decimals(basis_points);
        let read = parse_percent(&text);
        prop_assert_eq!(read.map(|p| u32::from(p.basis_points())), Ok(basis_points), "{}", text);
        let answer = format!("{{\"percent\": {text}}}");
        let read = parse_answer(answer.as_bytes());
        prop_assert_eq!(read.map(|p| p.map(|p| u32::from(p.basis_points()))), Ok(Some(basis_points)), "{}", answer);
        let canonical = format_percent(Percent::from_basis_points(basis_points as u16).expect("in range"));
        prop_assert_eq!(parse_percent(&canonical).map(|p| u32::from(p.basis_points())), Ok(basis_points));
    }

    /// Above 100 nothing reads, however it is written.
    #[test]
    fn a_percent_above_100_is_refused(basis_points in 10_001u32..=1_000_000) {
        let text = two_decimals(basis_points);
        let refused = parse_percent(&text).expect_err(&text);
        prop_assert!(refused.contains("is not a percent") && refused.contains(&text), "{}", refused);
        let answer = format!("{{\"percent\": {text}}}");
        let refused = parse_answer(answer.as_bytes()).expect_err(&answer);
        prop_assert!(refused.contains("from 0 to 100"), "{}", refused);
        prop_assert!(Percent::from_basis_points(basis_points.min(u32::from(u16::MAX)) as u16).is_none());
    }

    /// A third decimal other than 0 is refused: percents take steps of 0.01.
    #[test]
    fn a_third_decimal_is_refused(basis_points in 0u32..10_000, third in 1u32..=9) {
        let text = format!("{}{third}", two_decimals(basis_points));
        prop_assert!(parse_percent(&text).is_err(), "{} read", text);
        prop_assert!(Percent::parse(&text).is_err(), "{} read", text);
        let answer = format!("{{\"percent\": {text}}}");
        prop_assert!(parse_answer(answer.as_bytes()).is_err(), "{} read", answer);
    }
}

#[test]
fn the_edges_of_the_range_read_as_written() {
    // (text, basis points a ConfigMap key reads, basis points a webhook answer reads)
    let accepted: [(&str, u16); 9] = [
        ("0", 0),
        ("0.01", 1),
        ("0.1", 10),
        ("0.99", 99),
        ("1", 100),
        ("50.5", 5_050),
        ("99.99", 9_999),
        ("100", 10_000),
        ("100.00", 10_000),
    ];
    for (text, basis_points) in accepted {
        assert_eq!(
            parse_percent(text).map(Percent::basis_points),
            Ok(basis_points),
            "{text}"
        );
        let answer = format!("{{\"percent\": {text}}}");
        assert_eq!(
            parse_answer(answer.as_bytes()).map(|p| p.map(Percent::basis_points)),
            Ok(Some(basis_points)),
            "{answer}"
        );
    }
    for text in [
        "100.01", "101", "-0.01", "-1", "0.001", "0.009", "99.999", "100.001", "1e2", "",
    ] {
        let refused = parse_percent(text).expect_err(text);
        assert!(
            refused.contains(&format!("{text:?}")) && refused.contains("0 to 100"),
            "{text}: {refused}"
        );
    }
    for number in [
        "100.01", "101", "-0.01", "-1", "0.001", "0.009", "99.999", "100.001",
    ] {
        let answer = format!("{{\"percent\": {number}}}");
        let refused = parse_answer(answer.as_bytes()).expect_err(&answer);
        assert!(
            refused.contains(number) && refused.contains("at most two decimals"),
            "{answer}: {refused}"
        );
    }
    assert_eq!(Percent::from_basis_points(10_000), Some(Percent::HUNDRED));
    assert_eq!(Percent::from_basis_points(10_001), None);
}
