//! Finished means hands off (docs/design.md §4 rule 8): a Succeeded or RolledBack rollout never
//! writes its target again, unless its status records a final write that provably never
//! happened: `targetPending` is set *and* the target still has the version recorded in
//! `targetVersion` when that write was planned. A confirmed final write, or a target someone
//! changed since, settles `targetPending` (cleared, nothing written), so a hand edit after a
//! rollback is never overwritten, even after a restart.

use tracing::{info, warn};

use super::context::Context;
use crate::api::{Percent, Rollout, RolloutStatus};
use crate::targets::TargetError;

/// What identifies the target's current state: its object's resourceVersion, or for a target
/// without one (a webhook), the live percent it answered.
pub(super) async fn target_token(
    ctx: &Context,
    rollout: &Rollout,
    live: &Result<Option<Percent>, TargetError>,
) -> Option<String> {
    if let Some(version) = ctx.targets.version(rollout).await {
        return Some(version);
    }
    match live {
        Ok(Some(percent)) => Some(format!("percent:{percent}")),
        Ok(None) => Some("absent".to_owned()),
        Err(_) => None,
    }
}

/// For a finished rollout: the live percent to give the engine (none: a finished rollout
/// ignores drift), the write to finish (only a final write that provably never happened), and
/// whether the pending final write is settled (done, or overtaken by someone else's change):
/// then `targetPending` is cleared and nothing is written.
pub(super) async fn live_input(
    ctx: &Context,
    rollout: &Rollout,
    status: &RolloutStatus,
    live: &Result<Option<Percent>, TargetError>,
    uid: &str,
) -> (Option<Percent>, Option<Percent>, bool) {
    let (Some(expected), true) = (status.percent, status.target_pending) else {
        return (None, None, false);
    };
    let live = match live {
        Ok(live) => *live,
        Err(error) => {
            warn!(%error, "cannot read the target's live percent");
            return (None, None, false);
        }
    };
    {
        let mut memory = ctx.memory();
        if live == Some(expected) || memory.confirmed(uid, expected) {
            memory.confirm(uid, expected);
            return (None, None, true);
        }
    }
    let token = target_token(ctx, rollout, &Ok(live)).await;
    let untouched = token.is_some() && status.target_version == token;
    if untouched {
        info!(
            ?live,
            %expected, "finishing the final target write the status records as never made"
        );
        (None, Some(expected), false)
    } else {
        info!(
            ?live,
            %expected,
            "the target changed since the final write was planned: a finished rollout leaves \
             it alone"
        );
        (None, None, true)
    }
}
