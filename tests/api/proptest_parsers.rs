//! Property-based tests of the parsers of outside input this side owns: the duration parser,
//! the plan (Rollout manifest) and the scenario. Whatever the text — arbitrary, or a real file
//! mutated — they never panic, and every refusal names the file and a place in it.

use std::path::Path;

use proptest::prelude::*;
use rollgate::api::duration::{Units, parse_nanos};
use rollgate::sim::load::{LoadError, parse_rollout};
use rollgate::sim::scenario::parse_scenario;

const PLAN: &str = include_str!("../../examples/passenger-favorites-matching.yaml");
const SCENARIO: &str = include_str!("../../examples/scenarios/unauthorised-drift.yaml");

/// Characters YAML gives meaning to, and a few that make numbers and durations.
const YAML_CHARS: &[char] = &[
    ':', '-', ' ', '\n', '[', ']', '{', '}', '"', '\'', '#', '&', '*', '!', '|', '>', ',', '.',
    '0', '1', '9', 'h', 'm', 's', 'd', 'e', 'n', '~', '\t', '%', '@', '\u{0}', 'é',
];

/// One edit of a text.
#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    DuplicateLine { line: usize },
    SwapLines { a: usize, b: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let yaml_text = proptest::collection::vec(proptest::sample::select(YAML_CHARS), 1..8)
        .prop_map(|chars| chars.into_iter().collect::<String>());
    prop_oneof![
        (any::<usize>(), 1..20usize).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), yaml_text).prop_map(|(at, text)| Mutation::Insert { at, text }),
        any::<usize>().prop_map(|line| Mutation::DuplicateLine { line }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
    ]
}

/// The nearest character boundary at or below `at` (modulo the length).
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &str, mutation: &Mutation) -> String {
    match mutation {
        Mutation::Delete { at, len } => {
            let start = boundary(text, *at);
            let end = boundary(text, start.saturating_add(*len).min(text.len()));
            format!("{}{}", &text[..start], &text[end.max(start)..])
        }
        Mutation::Insert { at, text: inserted } => {
            let at = boundary(text, *at);
            format!("{}{inserted}{}", &text[..at], &text[at..])
        }
        Mutation::DuplicateLine { line } => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let i = line % lines.len();
                lines.insert(i, lines[i]);
            }
            lines.join("\n")
        }
        Mutation::SwapLines { a, b } => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let (a, b) = (a % lines.len(), b % lines.len());
                lines.swap(a, b);
            }
            lines.join("\n")
        }
    }
}

fn mutated(original: &'static str) -> impl Strategy<Value = String> {
    proptest::collection::vec(mutation(), 1..6).prop_map(move |mutations| {
        mutations
            .iter()
            .fold(original.to_owned(), |text, m| apply(&text, m))
    })
}

/// Every problem is `FILE: PLACE…`, where the place is a line, a field path or the document.
fn names_file_and_place(error: &LoadError, file: &str) -> Result<(), String> {
    if error.problems.is_empty() {
        return Err("an error without a problem".to_owned());
    }
    for line in error.to_string().lines() {
        let Some(problem) = line.strip_prefix(&format!("{file}: ")) else {
            return Err(format!("{line:?} does not start with the file name"));
        };
        let is_line = problem
            .strip_prefix("line ")
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
        let is_path = path_then_colon(problem);
        let is_document = problem.starts_with("the document");
        if !(is_line || is_path || is_document) {
            return Err(format!("{line:?} names no place"));
        }
    }
    Ok(())
}

/// Whether `text` starts with a field path (`spec.stages[0].percent`, `gates["a b"]`) followed
/// by `: ` and a problem.
fn path_then_colon(text: &str) -> bool {
    let mut chars = text.chars().peekable();
    let mut length = 0;
    while let Some(&c) = chars.peek() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
            chars.next();
            length += 1;
        } else if c == '[' {
            chars.next();
            if chars.peek() == Some(&'"') {
                // A quoted key, Rust-escaped: up to the closing quote.
                chars.next();
                let mut escaped = false;
                loop {
                    match chars.next() {
                        None => return false,
                        Some('\\') if !escaped => escaped = true,
                        Some('"') if !escaped => break,
                        Some(_) => escaped = false,
                    }
                }
            } else {
                while chars.peek().is_some_and(char::is_ascii_digit) {
                    chars.next();
                }
            }
            if chars.next() != Some(']') {
                return false;
            }
            length += 1;
        } else {
            break;
        }
    }
    let rest: String = chars.collect();
    length > 0 && rest.starts_with(": ") && rest.len() > 2
}

fn example_spec() -> rollgate::api::RolloutSpec {
    parse_rollout(Path::new("plan.yaml"), PLAN)
        .expect("the example plan reads")
        .spec
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn durations_never_panic(text in "\\PC{0,80}") {
        for units in [Units::Go, Units::GoAndDays] {
            if let Err(problem) = parse_nanos(&text, units) {
                prop_assert!(!problem.is_empty());
            }
        }
    }

    #[test]
    fn duration_shaped_text_never_panics_and_stays_in_range(
        text in "[-+]?([0-9]{0,25}(\\.[0-9]{0,25})?(ns|us|µs|ms|s|m|h|d|x)){1,4}"
    ) {
        for units in [Units::Go, Units::GoAndDays] {
            match parse_nanos(&text, units) {
                Ok(nanos) => prop_assert!(
                    (i128::from(i64::MIN)..=i128::from(i64::MAX)).contains(&nanos),
                    "{text:?} gave {nanos}"
                ),
                Err(problem) => {
                    let quoted = format!("{:?}", text);
                    prop_assert!(
                        problem.contains(&quoted) || problem.contains("characters"),
                        "{}", problem
                    );
                }
            }
        }
    }

    #[test]
    fn durations_add_up_exactly(h in 0u64..2_000_000, m in 0u64..60, s in 0u64..60, ns in 0u64..1_000_000_000) {
        let text = format!("{h}h{m}m{s}s{ns}ns");
        let expected = i128::from(((h * 60 + m) * 60 + s) * 1_000_000_000 + ns);
        prop_assert_eq!(parse_nanos(&text, Units::Go), Ok(expected));
        let minus = format!("-{text}");
        prop_assert_eq!(parse_nanos(&minus, Units::Go), Ok(-expected));
    }

    #[test]
    fn mutated_plans_never_panic_and_name_the_place(text in mutated(PLAN)) {
        if let Err(error) = parse_rollout(Path::new("plan.yaml"), &text)
            && let Err(why) = names_file_and_place(&error, "plan.yaml")
        {
            prop_assert!(false, "{why}\n--- text ---\n{text}");
        }
    }

    #[test]
    fn arbitrary_plans_never_panic_and_name_the_place(text in "\\PC{0,400}") {
        if let Err(error) = parse_rollout(Path::new("plan.yaml"), &text)
            && let Err(why) = names_file_and_place(&error, "plan.yaml")
        {
            prop_assert!(false, "{why}\n--- text ---\n{text}");
        }
    }

    #[test]
    fn mutated_scenarios_never_panic_and_name_the_place(text in mutated(SCENARIO)) {
        let spec = example_spec();
        if let Err(error) = parse_scenario(Path::new("scenario.yaml"), &text, &spec)
            && let Err(why) = names_file_and_place(&error, "scenario.yaml")
        {
            prop_assert!(false, "{why}\n--- text ---\n{text}");
        }
    }

    #[test]
    fn arbitrary_scenarios_never_panic_and_name_the_place(text in "\\PC{0,400}") {
        let spec = example_spec();
        if let Err(error) = parse_scenario(Path::new("scenario.yaml"), &text, &spec)
            && let Err(why) = names_file_and_place(&error, "scenario.yaml")
        {
            prop_assert!(false, "{why}\n--- text ---\n{text}");
        }
    }
}
