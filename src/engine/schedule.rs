//! Time arithmetic of the checkpoint cadence, overflow-safe.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::core::Duration;

/// `t + d`, or `None` when it leaves the representable range.
pub(crate) fn add(t: Timestamp, d: Duration) -> Option<Timestamp> {
    let d = SignedDuration::try_from(std::time::Duration::from(d)).ok()?;
    t.checked_add(d).ok()
}

/// The first checkpoint strictly after `now` in the cadence `stage_start + k·interval`,
/// k = 1, 2, …: a shell that was down catches up with one checkpoint, not one per missed
/// interval.
pub(crate) fn next_checkpoint(
    stage_start: Timestamp,
    interval: Duration,
    now: Timestamp,
) -> Option<Timestamp> {
    let interval = i128::try_from(std::time::Duration::from(interval).as_nanos()).ok()?;
    if interval <= 0 {
        return None;
    }
    let start = stage_start.as_nanosecond();
    let elapsed = now.as_nanosecond() - start;
    let k = if elapsed < 0 {
        1
    } else {
        elapsed / interval + 1
    };
    Timestamp::from_nanosecond(start.checked_add(k.checked_mul(interval)?)?).ok()
}

/// Whether the bake time of a stage that started at `stage_start` has ended at `now`.
pub(crate) fn baked(stage_start: Timestamp, duration: Duration, now: Timestamp) -> bool {
    add(stage_start, duration).is_some_and(|end| now >= end)
}

/// A duration the way people write it: `2h`, `1h30m`, `3d4h`, `90ms`, `0s`.
pub fn compact(d: std::time::Duration) -> String {
    let total = d.as_secs();
    let (days, rest) = (total / 86_400, total % 86_400);
    let (hours, rest) = (rest / 3600, rest % 3600);
    let (minutes, seconds) = (rest / 60, rest % 60);
    let mut text = String::new();
    for (n, unit) in [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")] {
        if n > 0 {
            text.push_str(&n.to_string());
            text.push_str(unit);
        }
    }
    let millis = d.subsec_millis();
    if millis > 0 {
        text.push_str(&millis.to_string());
        text.push_str("ms");
    }
    if text.is_empty() {
        text.push_str("0s");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    fn secs(n: u64) -> Duration {
        std::time::Duration::from_secs(n).into()
    }

    #[test]
    fn next_checkpoint_is_the_first_multiple_strictly_after_now() {
        assert_eq!(next_checkpoint(ts(0), secs(60), ts(0)), Some(ts(60)));
        assert_eq!(next_checkpoint(ts(0), secs(60), ts(59)), Some(ts(60)));
        assert_eq!(next_checkpoint(ts(0), secs(60), ts(60)), Some(ts(120)));
        // Catch-up after downtime: one checkpoint, then the cadence goes on.
        assert_eq!(next_checkpoint(ts(0), secs(60), ts(601)), Some(ts(660)));
        assert_eq!(next_checkpoint(ts(100), secs(60), ts(50)), Some(ts(160)));
    }

    #[test]
    fn zero_interval_and_overflow_give_none() {
        assert_eq!(next_checkpoint(ts(0), secs(0), ts(0)), None);
        assert_eq!(
            next_checkpoint(Timestamp::MAX, secs(60), Timestamp::MAX),
            None
        );
        assert!(!baked(Timestamp::MAX, secs(60), Timestamp::MAX));
    }

    #[test]
    fn compact_reads_like_a_person_wrote_it() {
        assert_eq!(compact(std::time::Duration::from_secs(7200)), "2h");
        assert_eq!(compact(std::time::Duration::from_secs(5400)), "1h30m");
        assert_eq!(compact(std::time::Duration::from_secs(97_200)), "1d3h");
        assert_eq!(compact(std::time::Duration::from_millis(1500)), "1s500ms");
        assert_eq!(compact(std::time::Duration::ZERO), "0s");
    }

    #[test]
    fn baked_is_inclusive() {
        assert!(!baked(ts(0), secs(7200), ts(7199)));
        assert!(baked(ts(0), secs(7200), ts(7200)));
        assert!(baked(ts(0), secs(0), ts(0)));
    }
}
