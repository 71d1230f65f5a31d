//! The size limits of a Rollout: each is a `maxLength`, `maxItems`, `maxProperties` or
//! `maximum` in the CRD, so the API server refuses an object past it, and the command line
//! refuses a file past it the same way. Together they bound the largest object, spec and
//! status, far below etcd's 1.5 MiB.

/// Most stages of a plan.
pub const MAX_STAGES: usize = 100;
/// Most gates of a plan.
pub const MAX_GATES: usize = 32;
/// Longest gate name, in characters.
pub const MAX_GATE_NAME: usize = 63;
/// Longest URL (gate and target addresses), in characters.
pub const MAX_URL: usize = 2048;
/// Longest PromQL query, in characters.
pub const MAX_QUERY: usize = 16 * 1024;
/// Longest Kubernetes object name or data key, in characters.
pub const MAX_OBJECT_NAME: usize = 253;
/// Longest flag key, in characters.
pub const MAX_FLAG_KEY: usize = 256;
/// Longest variant name, in characters.
pub const MAX_VARIANT: usize = 63;
/// Most targeting keys in an allowlist.
pub const MAX_ALLOWLIST: usize = 1000;
/// Longest targeting key, in characters.
pub const MAX_TARGETING_KEY: usize = 256;
/// Most alert matchers (or ignored alert names) of an alerts gate.
pub const MAX_MATCHERS: usize = 32;
/// Longest alert matcher, in characters.
pub const MAX_MATCHER: usize = 1024;
/// Most headers a gate may add.
pub const MAX_HEADERS: usize = 16;
/// Longest request body of an HTTP gate, in characters.
pub const MAX_HTTP_BODY: usize = 16 * 1024;
/// Longest JSONPath, in characters.
pub const MAX_JSON_PATH: usize = 1024;
/// Most targeting keys one OFREP probe samples.
pub const MAX_OFREP_SAMPLE: u32 = 10_000;
/// Longest `status.message`, in characters.
pub const MAX_STATUS_MESSAGE: usize = 1024;
/// Longest message of a history entry, in characters.
pub const MAX_HISTORY_MESSAGE: usize = 256;
/// Longest `lastMessage` of a gate's status, in characters.
pub const MAX_GATE_MESSAGE: usize = 256;
/// Most sampled keys a determinism probe remembers in a gate's status.
pub const MAX_REMEMBERED_KEYS: usize = 64;
/// Most conditions in the status.
pub const MAX_CONDITIONS: usize = 8;

/// CEL rule: a Kubernetes object name, a DNS-1123 subdomain (lowercase letters, digits, `-`
/// and `.`, starting and ending with a letter or digit; the length is the field's
/// `maxLength` of [`MAX_OBJECT_NAME`]). An empty name is left to the field's own rule.
pub const OBJECT_NAME_RULE: &str =
    "size(self) == 0 || self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')";

/// Whether `name` is a Kubernetes object name (a DNS-1123 subdomain): at most
/// [`MAX_OBJECT_NAME`] characters of `a-z`, `0-9`, `-` and `.`, starting and ending with a
/// letter or digit. The Rust mirror of [`OBJECT_NAME_RULE`] and `maxLength`.
pub fn is_object_name(name: &str) -> bool {
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes = name.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= MAX_OBJECT_NAME
                && edge(*first)
                && edge(*last)
                && bytes.iter().all(|c| edge(*c) || *c == b'-' || *c == b'.')
        }
        _ => false,
    }
}

/// `text` cut to `max` characters, ending in `…` when cut: how a writer keeps a text within a
/// `maxLength` of the CRD (see [`crate::text::cap_in_place`]).
pub use crate::text::cap_in_place as cap_text;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_dns_1123_subdomains() {
        for good in ["a", "feature-flags", "flags.v2", "0abc9", &"a".repeat(253)] {
            assert!(is_object_name(good), "{good}");
        }
        for bad in [
            "",
            "Flags",
            "-a",
            "a-",
            ".a",
            "a.",
            "a_b",
            "a b",
            "ä",
            &"a".repeat(254),
        ] {
            assert!(!is_object_name(bad), "{bad}");
        }
    }

    #[test]
    fn cap_text_keeps_short_text_and_cuts_long_text_on_a_character() {
        let mut short = "é".repeat(10);
        cap_text(&mut short, 10);
        assert_eq!(short, "é".repeat(10));
        let mut long = "é".repeat(20);
        cap_text(&mut long, 10);
        assert_eq!(long.chars().count(), 10);
        assert!(long.ends_with('…'));
    }
}
