//! The determinism rules, applied to the answers of one probe: pure, no I/O.

use std::fmt;

use super::sample::share_tolerance;
use crate::api::{OfrepMemory, Percent};

/// What the two evaluations of one key said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyResult {
    /// The first answer gave the key the flag.
    pub has_flag: bool,
    /// The second answer was the same as the first (value and variant).
    pub stable: bool,
}

/// Everything one probe saw, ready to be judged.
#[derive(Clone, Debug)]
pub struct ProbeResults<'a> {
    /// The flag probed.
    pub flag: &'a str,
    /// The percent the rollout expects now.
    pub percent: Percent,
    /// One result per sampled key, in sample order (index `i` is sample key `i`).
    pub sample: Vec<KeyResult>,
    /// One result per allowlisted key.
    pub allowlist: Vec<KeyResult>,
    /// Whether each sampled key should have the flag, when the gate declares the bucketing.
    pub expected: Option<Vec<bool>>,
}

/// The violations one probe found, by rule. The gate's value is [`Violations::total`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Violations {
    /// Keys (sampled or allowlisted) whose two answers differed.
    pub unstable: u32,
    /// Allowlisted keys that did not get the flag.
    pub allowlist: u32,
    /// 1 when the share of sampled keys with the flag is outside the tolerance, else 0.
    pub share: u32,
    /// Remembered keys that had the flag earlier and lost it while the percent did not go down.
    pub lost: u32,
    /// Sampled keys whose answer disagrees with the declared bucketing.
    pub bucketing: u32,
    /// Sampled keys that had the flag.
    pub with_flag: u32,
    /// Sampled keys.
    pub sampled: u32,
    /// Keys expected to have the flag: `sampled * percent / 100`.
    pub expected_with_flag: f64,
    /// Keys the count may stray from the expectation (see [`share_tolerance`]).
    pub tolerance: f64,
}

impl Violations {
    /// The gate's value: the sum of every rule's violations.
    pub fn total(&self) -> u32 {
        self.unstable + self.allowlist + self.share + self.lost + self.bucketing
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} violations: {} unstable answers, {} allowlisted keys without the flag, \
             share {}/{} with the flag (expected {:.1} ± {:.1}){}, {} keys lost the flag, \
             {} bucketing disagreements",
            self.total(),
            self.unstable,
            self.allowlist,
            self.with_flag,
            self.sampled,
            self.expected_with_flag,
            self.tolerance,
            if self.share > 0 {
                " OUT OF TOLERANCE"
            } else {
                ""
            },
            self.lost,
            self.bucketing
        )
    }
}

/// Judges one probe against the rules, and returns the memory to keep for the next one.
pub fn assess(
    results: &ProbeResults<'_>,
    previous: Option<&OfrepMemory>,
) -> (Violations, OfrepMemory) {
    let sampled = results.sample.len();
    let with_flag = results.sample.iter().filter(|r| r.has_flag).count();
    let unstable = results
        .sample
        .iter()
        .chain(&results.allowlist)
        .filter(|r| !r.stable)
        .count();
    let allowlist = results.allowlist.iter().filter(|r| !r.has_flag).count();

    let expected_with_flag = sampled as f64 * results.percent.min(Percent::HUNDRED).fraction();
    let tolerance = share_tolerance(sampled, results.percent);
    let share = u32::from((with_flag as f64 - expected_with_flag).abs() > tolerance);

    let lost = previous
        .filter(|memory| memory.applies_to(results.flag, results.percent))
        .map_or(0, |memory| {
            memory
                .with_flag
                .iter()
                .filter_map(|index| results.sample.get(*index as usize))
                .filter(|result| !result.has_flag)
                .count()
        });

    let bucketing = results.expected.as_ref().map_or(0, |expected| {
        results
            .sample
            .iter()
            .zip(expected)
            .filter(|(result, expected)| result.has_flag != **expected)
            .count()
    });

    let on_now = results
        .sample
        .iter()
        .enumerate()
        .filter(|(_, r)| r.has_flag && r.stable)
        .map(|(index, _)| index as u32);
    let memory = OfrepMemory::next(
        previous,
        results.flag,
        results.percent,
        sampled as u32,
        on_now,
    );

    let violations = Violations {
        unstable: count(unstable),
        allowlist: count(allowlist),
        share,
        lost: count(lost),
        bucketing: count(bucketing),
        with_flag: count(with_flag),
        sampled: count(sampled),
        expected_with_flag,
        tolerance,
    };
    (violations, memory)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(stable: bool) -> KeyResult {
        KeyResult {
            has_flag: true,
            stable,
        }
    }

    fn off(stable: bool) -> KeyResult {
        KeyResult {
            has_flag: false,
            stable,
        }
    }

    fn results(percent: Percent, sample: Vec<KeyResult>) -> ProbeResults<'static> {
        ProbeResults {
            flag: "f",
            percent,
            sample,
            allowlist: vec![],
            expected: None,
        }
    }

    #[test]
    fn counts_each_rule() {
        let mut sample = vec![off(true); 100];
        sample[..10].fill(on(true));
        sample[10] = on(false);
        let mut probe = results(Percent::whole(10), sample);
        probe.allowlist = vec![on(true), off(true), off(false)];
        let mut expected = vec![false; 100];
        expected[..10].fill(true);
        expected[50] = true;
        probe.expected = Some(expected);
        let (v, memory) = assess(&probe, None);
        assert_eq!(
            (v.unstable, v.allowlist, v.share, v.lost, v.bucketing),
            (2, 2, 0, 0, 2)
        );
        assert_eq!(v.total(), 6);
        assert_eq!(memory.with_flag, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn share_outside_the_tolerance_is_one_violation() {
        let mut sample = vec![off(true); 1000];
        sample[..500].fill(on(true));
        let (v, _) = assess(&results(Percent::whole(10), sample), None);
        assert_eq!(v.share, 1);
        assert_eq!(v.total(), 1);
    }

    #[test]
    fn lost_keys_count_until_the_percent_goes_down() {
        let mut sample = vec![off(true); 100];
        sample[..10].fill(on(true));
        let (_, memory) = assess(&results(Percent::whole(10), sample.clone()), None);
        let mut reshuffled = vec![off(true); 100];
        reshuffled[50..60].fill(on(true));
        let (v, kept) = assess(
            &results(Percent::whole(10), reshuffled.clone()),
            Some(&memory),
        );
        assert_eq!(v.lost, 10);
        let (again, _) = assess(
            &results(Percent::whole(12), reshuffled.clone()),
            Some(&kept),
        );
        assert_eq!(again.lost, 10);
        let (lowered, _) = assess(&results(Percent::whole(5), reshuffled), Some(&kept));
        assert_eq!(lowered.lost, 0);
    }
}
