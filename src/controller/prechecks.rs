//! The baseline checked before the start (docs/design.md §4 rule 0), as a careful team does by hand:
//! the target exists and can be written (server-side dry run), the target holds the rollback
//! percent (or what this rollout last wrote; a finished plan that grew continues only from
//! exactly the percent in force), a flagd flag's targeting is rollgate's own rule or adoptable
//! (reading it says the smallest edit when it is not; the dry run refuses an allowlist with an
//! adopted rule), the allowlist is long enough, every gate
//! answers (a value or no data, not an error), and each alerts gate's matchers select at least
//! one alerting rule its Prometheus knows. The engine decides to start; this only
//! gathers what failed, in words.

use k8s_openapi::jiff::Timestamp;

use super::budget::Priority;
use super::context::Context;
use super::observe::GateReading;
use super::ownership::{self, Ownership};
use crate::api::{Gate, Percent, Provider, Rollout, RolloutStatus};
use crate::engine::{Observation, Start};
use crate::gates::ofrep::client::says_flag_not_found;
use crate::targets::{TargetError, WriteMode};

/// What stands between a rollout that has not started and its start.
pub(super) enum BeforeStart {
    /// These pre-checks failed (empty: it may start, and its claim on the target is written).
    Failed(Vec<String>),
    /// Another live, unfinished Rollout owns the target (the message names it); this takes
    /// precedence over the pre-checks, which are not run.
    Owned(String),
}

/// The claim on the target (rule 10) first, then the pre-checks; when every one passes, the
/// claim is written (guarded by the resourceVersion read), before the status records the start.
pub(super) async fn before_start(
    rollout: &Rollout,
    status: &RolloutStatus,
    start: Start,
    live: &Result<Option<Percent>, TargetError>,
    ctx: &Context,
    now: Timestamp,
) -> BeforeStart {
    // The claim reads and annotates the target object: as the rollout's ServiceAccount, like
    // every other read and write of its target (lockdown leaves the controller no patch).
    let client = match ctx.identities.client_for(rollout) {
        Ok(client) => client,
        Err(error) => return BeforeStart::Failed(vec![error.to_string()]),
    };
    let ownership = match ownership::check(&client, ctx.rollouts.as_ref(), rollout).await {
        Ok(Ownership::Owned(message)) => return BeforeStart::Owned(message),
        Ok(found) => Ok(found),
        Err(error) => Err(refused(ctx, rollout, error)),
    };
    let mut failed = failures(rollout, status, start, live, ctx, now).await;
    match ownership {
        Err(problem) => failed.insert(0, problem),
        Ok(Ownership::Free { version }) if failed.is_empty() => {
            match claim(&client, rollout, ctx, version).await {
                Ok(None) => {}
                Ok(Some(message)) => return BeforeStart::Owned(message),
                Err(problem) => failed.push(problem),
            }
        }
        Ok(_) => {}
    }
    BeforeStart::Failed(failed)
}

/// How often a claim that lost a race to another change of the object (a 409: often another
/// Rollout writing its own flag in the same ConfigMap) reads the object again and retries.
const CLAIM_ATTEMPTS: usize = 3;

/// Writes the claim over `version`; on a conflict, reads the object again: `Ok(Some(_))` when
/// another Rollout claimed it meanwhile.
async fn claim(
    client: &kube::Client,
    rollout: &Rollout,
    ctx: &Context,
    mut version: Option<String>,
) -> Result<Option<String>, String> {
    let mut attempt = 1;
    loop {
        // A write like any other: it takes its token from the API budget.
        ctx.budget.acquire(Priority::Transition).await;
        match ownership::claim(client, rollout, version.as_deref()).await {
            Ok(()) => {
                if let Some(metrics) = &ctx.metrics {
                    metrics.count_write("annotation");
                }
                return Ok(None);
            }
            Err(error) if error.is_conflict() && attempt < CLAIM_ATTEMPTS => {
                attempt += 1;
                match ownership::check(client, ctx.rollouts.as_ref(), rollout).await {
                    Ok(Ownership::Free { version: now }) => version = now,
                    Ok(Ownership::Owned(message)) => return Ok(Some(message)),
                    Ok(Ownership::Ours | Ownership::NotClaimable) => return Ok(None),
                    Err(error) => return Err(refused(ctx, rollout, error)),
                }
            }
            Err(error) => return Err(refused(ctx, rollout, error)),
        }
    }
}

/// A claim's failure in words; a 403 met as the ServiceAccount is also recorded, so the
/// rollout says `Forbidden` as for any other refused read or write of its target.
fn refused(ctx: &Context, rollout: &Rollout, error: ownership::ClaimError) -> String {
    let ownership::ClaimError::Api { verb, source, .. } = &error;
    ctx.identities.record(rollout, verb, source);
    error.to_string()
}

/// The pre-checks that failed, each in words, for the start the engine will make; empty
/// when the rollout may start.
pub(super) async fn failures(
    rollout: &Rollout,
    status: &RolloutStatus,
    start: Start,
    live: &Result<Option<Percent>, TargetError>,
    ctx: &Context,
    now: Timestamp,
) -> Vec<String> {
    let spec = &rollout.spec;
    let mut failed = Vec::new();
    match (live, start) {
        (Err(e), _) => failed.push(format!("target: {e}")),
        (Ok(live), Start::Continue { percent }) if *live != Some(percent) => {
            let holds = live.map_or_else(|| "no percent".to_owned(), |p| format!("{p}%"));
            failed.push(format!(
                "the target holds {holds}, not {percent}%, the percent this rollout continues from"
            ));
        }
        (Ok(Some(percent)), Start::Fresh) if !baseline(*percent, rollout, status) => {
            failed.push(format!(
                "the target holds {percent}%, not the rollback percent {}%",
                spec.rollback.percent
            ));
        }
        (Ok(_), _) => {}
    }
    if live.is_ok() {
        // The percent the start writes, or, continuing, the one it keeps.
        let first = match start {
            Start::Fresh => spec.stages.first().map_or(Percent::ZERO, |s| s.percent),
            Start::Continue { percent } => percent,
        };
        if let Err(e) = ctx.targets.write(rollout, first, WriteMode::DryRun).await {
            failed.push(format!("target cannot be written: {e}"));
        }
    }
    if let Some(min) = spec.pre_checks.as_ref().and_then(|p| p.min_allowlist) {
        let have = spec.target.flagd.as_ref().map_or(0, |f| f.allowlist.len());
        if (have as u64) < u64::from(min) {
            failed.push(format!(
                "the allowlist has {have} targeting keys, fewer than preChecks.minAllowlist {min}"
            ));
        }
    }
    let readings = ctx.observer.observe(rollout, status, now).await;
    let unanswered = gate_failures(rollout, &readings, live);
    if unanswered.is_empty() {
        // Only a Prometheus that answers can say which alerting rules it knows.
        failed.extend(ctx.observer.alert_rule_problems(rollout, now).await);
    }
    failed.extend(unanswered);
    failed
}

/// Whether a live percent is a fine place to start from.
fn baseline(percent: Percent, rollout: &Rollout, status: &RolloutStatus) -> bool {
    percent == rollout.spec.rollback.percent || status.percent == Some(percent)
}

/// Gates that did not answer: a provider error, or no reading at all. An OFREP probe that
/// answers `FLAG_NOT_FOUND` for the target's own flag while the target does not hold that
/// flag yet answered as it should: the start creates the flag (docs/design.md §4 rule 0).
fn gate_failures(
    rollout: &Rollout,
    readings: &[GateReading],
    live: &Result<Option<Percent>, TargetError>,
) -> Vec<String> {
    rollout
        .spec
        .analysis
        .gates
        .iter()
        .enumerate()
        .filter_map(|(i, gate)| match readings.get(i).map(|r| &r.observation) {
            Some(Observation::Error(message))
                if flag_created_at_start(rollout, gate, live) && says_flag_not_found(message) =>
            {
                None
            }
            Some(Observation::Error(message)) => Some(format!("gate {}: {message}", gate.name)),
            None => Some(format!("gate {}: no answer", gate.name)),
            Some(_) => None,
        })
        .collect()
}

/// Whether `gate` is an OFREP probe of the flag this rollout's start creates: the target is a
/// flagd flag, the target is there without that flag yet, and the probe asks for that flag.
fn flag_created_at_start(
    rollout: &Rollout,
    gate: &Gate,
    live: &Result<Option<Percent>, TargetError>,
) -> bool {
    let Some(Provider::Ofrep(ofrep)) = gate.provider() else {
        return false;
    };
    let Some(flag) = rollout.spec.target.flag_name() else {
        return false;
    };
    matches!(live, Ok(None)) && ofrep.flag.as_deref().is_none_or(|probed| probed == flag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::ofrep::ProbeError;
    use crate::gates::ofrep::client::{OfrepError, parse_evaluation};

    fn rollout(gate_flag: Option<&str>) -> Rollout {
        let flag = gate_flag.map_or(String::new(), |f| format!(", flag: {f}"));
        let spec = serde_saphyr::from_str(&format!(
            "target: {{flagd: {{configMap: flags, flag: new_checkout}}}}\n\
             stages: [{{percent: 1}}]\n\
             analysis:\n  gates:\n    - name: determinism\n      \
             ofrep: {{address: 'http://flagd:8016', sample: 10{flag}}}\n"
        ))
        .expect("a spec");
        Rollout::new("r", spec)
    }

    /// The message a probe error carries when the service answers with `body` and `status`.
    fn probe_error(status: u16, body: &str) -> String {
        let source = parse_evaluation(
            "http://flagd:8016/ofrep/v1/evaluate/flags/x",
            status,
            body.as_bytes(),
        )
        .expect_err("an error answer");
        ProbeError::Evaluation {
            flag: "new_checkout".into(),
            key: "k-1".into(),
            source,
        }
        .to_string()
    }

    fn failures(
        rollout: &Rollout,
        message: &str,
        live: Result<Option<Percent>, TargetError>,
    ) -> usize {
        let readings = [GateReading {
            observation: Observation::Error(message.to_owned()),
            memory: None,
        }];
        gate_failures(rollout, &readings, &live).len()
    }

    #[test]
    fn flag_not_found_passes_before_the_start_for_the_flag_the_start_creates() {
        let not_found = probe_error(
            404,
            r#"{"key":"new_checkout","errorCode":"FLAG_NOT_FOUND","errorDetails":"flag new_checkout not found"}"#,
        );
        assert!(says_flag_not_found(&not_found), "{not_found}");
        // The flag is not in the target yet: the start creates it.
        assert_eq!(failures(&rollout(None), &not_found, Ok(None)), 0);
        assert_eq!(
            failures(&rollout(Some("new_checkout")), &not_found, Ok(None)),
            0
        );
        // The target holds the flag: the evaluator should know it, so it is an error.
        assert_eq!(
            failures(&rollout(None), &not_found, Ok(Some(Percent::ZERO))),
            1
        );
        // The probe asks about another flag than the one the start creates.
        assert_eq!(failures(&rollout(Some("other")), &not_found, Ok(None)), 1);
        // The target cannot be read: not known to be absent.
        let unreadable = Err(TargetError::Invalid("no".into()));
        assert_eq!(failures(&rollout(None), &not_found, unreadable), 1);
    }

    #[test]
    fn other_errors_still_fail_the_pre_check() {
        for message in [
            probe_error(
                400,
                r#"{"errorCode":"PARSE_ERROR","errorDetails":"FLAG_NOT_FOUND"}"#,
            ),
            probe_error(
                500,
                r#"{"errorCode":"GENERAL","errorDetails":": FLAG_NOT_FOUND"}"#,
            ),
            ProbeError::Evaluation {
                flag: "new_checkout".into(),
                key: "k-1".into(),
                source: OfrepError::Transport {
                    url: "http://flagd:8016".into(),
                    reason: "connection refused: FLAG_NOT_FOUND".into(),
                },
            }
            .to_string(),
        ] {
            assert!(!says_flag_not_found(&message), "{message}");
            assert_eq!(failures(&rollout(None), &message, Ok(None)), 1, "{message}");
        }
    }
}
