//! Fencing (docs/design.md §8): immediately before each write — status, target, annotation — a
//! replica confirms it holds the Lease with more time left than that write's own request
//! timeout, and bounds the request by that timeout, so a write never lands after the Lease
//! could have passed to another replica. Without that much lease left it writes nothing.

use std::future::Future;
use std::time::Duration;

use crate::api::Rollout;
use crate::api::duration::MAX_WEBHOOK_TIMEOUT;

/// The request timeout of a status, annotation or ConfigMap/FeatureFlag write.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The request timeout of a webhook target's write when the spec sets none.
const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The request timeout of a write to `rollout`'s target: the webhook's own (at most 10 s), or
/// [`WRITE_TIMEOUT`] for objects in the cluster.
pub fn target_timeout(rollout: &Rollout) -> Duration {
    match &rollout.spec.target.webhook {
        Some(webhook) => webhook
            .timeout
            .filter(|t| !t.is_negative())
            .map_or(DEFAULT_WEBHOOK_TIMEOUT, Duration::from)
            .min(MAX_WEBHOOK_TIMEOUT),
        None => WRITE_TIMEOUT,
    }
}

/// Runs an API write within `timeout`; a write that takes longer is abandoned as an error.
pub(super) async fn within<T>(
    timeout: Duration,
    write: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, kube::Error> {
    match tokio::time::timeout(timeout, write).await {
        Ok(result) => result,
        Err(elapsed) => Err(kube::Error::Service(Box::new(elapsed))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RolloutSpec;

    fn rollout(target: &str) -> Rollout {
        let yaml = format!("target: {target}\nstages: [{{percent: 1}}]\n");
        let spec: RolloutSpec = serde_saphyr::from_str(&yaml).expect("a plan");
        Rollout::new("r", spec)
    }

    #[test]
    fn webhook_writes_get_their_own_timeout_capped_at_10s() {
        assert_eq!(
            target_timeout(&rollout("{configMap: {name: c, key: k}}")),
            WRITE_TIMEOUT
        );
        assert_eq!(
            target_timeout(&rollout("{webhook: {url: 'https://x', timeout: 3s}}")),
            Duration::from_secs(3)
        );
        assert_eq!(
            target_timeout(&rollout("{webhook: {url: 'https://x'}}")),
            Duration::from_secs(10)
        );
        assert_eq!(
            target_timeout(&rollout("{webhook: {url: 'https://x', timeout: 1h}}")),
            Duration::from_secs(10)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_past_its_timeout_is_an_error() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(6)).await;
            Ok::<_, kube::Error>(())
        };
        assert!(within(WRITE_TIMEOUT, slow).await.is_err());
        let quick = async { Ok::<_, kube::Error>(1) };
        assert_eq!(within(WRITE_TIMEOUT, quick).await.ok(), Some(1));
    }
}
