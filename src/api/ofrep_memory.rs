//! What an OFREP probe remembers between checkpoints: a few sampled keys that had the flag, so
//! the next checkpoint can tell whether any of them lost it while the percent did not go down.

use serde::{Deserialize, Serialize};

use super::percent::Percent;

/// Most keys remembered. Enough to catch a reshuffle (which moves most keys), small enough for
/// a status field: at most 64 integers.
pub const MEMORY_KEYS: usize = 64;

/// Keys that had the flag at an earlier checkpoint of this rollout, by their index in the
/// probe's deterministic sample, with the percent they were seen at. The caller keeps it in the
/// gate's status between checkpoints and passes it back to the next probe.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct OfrepMemory {
    /// The flag the keys were probed for.
    pub flag: String,
    /// The percent the rollout expected when the keys were seen with the flag.
    pub percent: Percent,
    /// Indices, in the probe's sample, of keys that had the flag (ascending, at most 64).
    /// Written as `withFlag`; the old name `on` (a YAML 1.1 boolean word) is still read.
    #[serde(default, alias = "on")]
    pub with_flag: Vec<u32>,
}

impl OfrepMemory {
    /// Whether this memory speaks for a probe of `flag` at `percent`: same flag, and the
    /// percent has not gone down since (a lower percent may take the flag away from anyone).
    pub fn applies_to(&self, flag: &str, percent: Percent) -> bool {
        self.flag == flag && percent >= self.percent
    }

    /// The memory after a checkpoint at `percent` that saw the keys `on_now` (sample indices)
    /// with the flag: the keys remembered before, while the memory applies (so a key that lost
    /// the flag keeps counting until the percent goes down), then the lowest of `on_now`, up
    /// to [`MEMORY_KEYS`].
    pub fn next(
        previous: Option<&OfrepMemory>,
        flag: &str,
        percent: Percent,
        sample: u32,
        on_now: impl IntoIterator<Item = u32>,
    ) -> OfrepMemory {
        // Keys remembered before come first: they are the ones a lost flag shows on.
        let mut on: Vec<u32> = previous
            .filter(|p| p.applies_to(flag, percent))
            .map(|p| p.with_flag.clone())
            .unwrap_or_default();
        on.retain(|index| *index < sample);
        on.truncate(MEMORY_KEYS);
        let mut now: Vec<u32> = on_now.into_iter().filter(|index| *index < sample).collect();
        now.sort_unstable();
        for index in now {
            if on.len() >= MEMORY_KEYS {
                break;
            }
            if !on.contains(&index) {
                on.push(index);
            }
        }
        on.sort_unstable();
        OfrepMemory {
            flag: flag.to_string(),
            percent,
            with_flag: on,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_lowest_keys_and_the_old_ones_while_it_applies() {
        let first = OfrepMemory::next(None, "f", Percent::whole(10), 1000, (0..200).rev());
        assert_eq!(first.with_flag, (0..64).collect::<Vec<_>>());
        let second = OfrepMemory::next(Some(&first), "f", Percent::whole(10), 1000, [3, 500]);
        assert_eq!(second.with_flag, first.with_flag);
        let partial = OfrepMemory {
            with_flag: vec![900, 901],
            ..first.clone()
        };
        let kept = OfrepMemory::next(Some(&partial), "f", Percent::whole(10), 1000, 0..100);
        assert_eq!(kept.with_flag.len(), 64);
        assert!(
            kept.with_flag.contains(&900)
                && kept.with_flag.contains(&901)
                && kept.with_flag.contains(&61)
        );
        assert!(!kept.with_flag.contains(&62));
        let lowered = OfrepMemory::next(Some(&first), "f", Percent::whole(5), 1000, [500]);
        assert_eq!(lowered.with_flag, vec![500]);
        let other_flag = OfrepMemory::next(Some(&first), "g", Percent::whole(10), 1000, [500]);
        assert_eq!(other_flag.with_flag, vec![500]);
        let shrunk = OfrepMemory::next(Some(&first), "f", Percent::whole(10), 10, []);
        assert_eq!(shrunk.with_flag, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn serializes_compactly() {
        let memory = OfrepMemory::next(None, "flag", Percent::whole(10), 1000, [1, 2]);
        let json = serde_json::to_string(&memory).unwrap();
        assert_eq!(json, r#"{"flag":"flag","percent":10,"withFlag":[1,2]}"#);
        assert_eq!(serde_json::from_str::<OfrepMemory>(&json).unwrap(), memory);
        let old = r#"{"flag":"flag","percent":10,"on":[1,2]}"#;
        assert_eq!(serde_json::from_str::<OfrepMemory>(old).unwrap(), memory);
    }
}
