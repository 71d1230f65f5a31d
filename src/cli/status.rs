//! `rollgate status NAME [-n NS] [-w]`: where a rollout stands, for a person at 3 a.m. and for
//! a script waiting on it. The exit status says how it ended: 1 when it rolled back or its
//! spec was refused (the phases in which kstatus' `Stalled` is true), 0 otherwise.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use futures_util::TryStreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{ListParams, WatchEvent, WatchParams};
use rollgate::api::{Gate, GateStatus, HistoryEntry, Phase, Rollout, stage_label};
use rollgate::engine::compact;

use super::kube_client::{KubeArgs, OpsError, Target, parse_request_timeout};
use super::table;

/// Exit status of `status` when the rollout rolled back or its spec was refused.
pub const EXIT_STALLED: u8 = 1;

/// Exit status of `status -w --timeout` when the rollout had not ended (Succeeded, RolledBack
/// or Failed) in time, a Paused one included.
pub const EXIT_TIMEOUT: u8 = 4;

/// How many history entries `status` shows by default.
pub const DEFAULT_HISTORY: usize = 5;

/// `rollgate status`.
#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    /// The Rollout's name.
    #[arg(add = super::complete::rollout_names())]
    pub name: String,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Keep watching: print the status again whenever the Rollout changes, until it ends
    /// (Succeeded: exit 0; RolledBack or Failed: exit 1) or Ctrl-C. A dropped watch is
    /// resumed (from the last resourceVersion, else by reading the Rollout again).
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// With `-w`: give up after this long with exit status 4 (a rollout still Paused or
    /// Progressing), e.g. `30s`, `10m`, `2h`, or a bare number of seconds.
    #[arg(long, value_name = "DURATION", requires = "watch", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// How many of the latest history entries to show.
    #[arg(long, default_value_t = DEFAULT_HISTORY, value_name = "N")]
    pub history: usize,
}

/// How `status` writes and when it stops.
pub struct StatusOptions<'a> {
    /// Watch until the rollout ends.
    pub watch: bool,
    /// With `watch`: give up after this long ([`EXIT_TIMEOUT`]); None waits without limit.
    pub timeout: Option<Duration>,
    /// History entries to show.
    pub history: usize,
    /// Clear the screen before each refresh (a terminal); otherwise snapshots are appended,
    /// separated by a blank line.
    pub clear_screen: bool,
    /// The clock used for "baked" and "next checkpoint".
    pub now: &'a (dyn Fn() -> Timestamp + Send + Sync),
}

/// The exit status for a rollout in `phase`: [`EXIT_STALLED`] for RolledBack and Failed.
pub fn exit_status(phase: Option<Phase>) -> u8 {
    match phase {
        Some(Phase::RolledBack | Phase::Failed) => EXIT_STALLED,
        _ => 0,
    }
}

/// Prints the Rollout's status; with `watch`, again at every change until it ends. Returns
/// the exit status for the last phase seen ([`exit_status`]).
pub async fn status(
    client: &Client,
    target: &Target,
    options: &StatusOptions<'_>,
    out: &mut dyn Write,
) -> Result<u8, OpsError> {
    let mut rollout = target.get(client).await?;
    let mut first = true;
    let mut show = |rollout: &Rollout, out: &mut dyn Write| -> Result<(), OpsError> {
        if options.clear_screen {
            write!(out, "\x1b[2J\x1b[H")?;
        } else if !first {
            writeln!(out)?;
        }
        first = false;
        out.write_all(render(rollout, (options.now)(), options.history).as_bytes())?;
        out.flush()?;
        Ok(())
    };
    show(&rollout, out)?;
    let ended = |r: &Rollout| phase(r).is_some_and(Phase::is_terminal);
    if !options.watch || ended(&rollout) {
        return Ok(exit_status(phase(&rollout)));
    }
    let deadline = options
        .timeout
        .map(|limit| tokio::time::Instant::now() + limit);
    let api = target.api(client);
    let params = WatchParams::default()
        .fields(&format!("metadata.name={}", target.name))
        .timeout(290);
    let version_of = |r: &Rollout| r.metadata.resource_version.clone().unwrap_or_default();
    let mut version = version_of(&rollout);
    // Consecutive failures to reach the API server, for the pause before trying again.
    let mut failures = 0u32;
    // The version is too old to watch from (410 Gone): list the Rollout again first.
    let mut relist = false;
    loop {
        if relist {
            // A LIST of this one Rollout: its resourceVersion is the collection's, current
            // even when the object's own is older than the history the server keeps.
            let by_name = ListParams::default().fields(&format!("metadata.name={}", target.name));
            match within(deadline, api.list(&by_name)).await {
                None => return Ok(EXIT_TIMEOUT),
                Some(Ok(listed)) => {
                    relist = false;
                    failures = 0;
                    let Some(read) = listed.items.into_iter().next() else {
                        return Err(OpsError::Refused(format!(
                            "rollout {}/{} was deleted",
                            target.namespace, target.name
                        )));
                    };
                    let changed = version_of(&read) != version_of(&rollout);
                    version = listed
                        .metadata
                        .resource_version
                        .unwrap_or_else(|| version_of(&read));
                    if changed {
                        rollout = read;
                        show(&rollout, out)?;
                        if ended(&rollout) {
                            return Ok(exit_status(phase(&rollout)));
                        }
                    }
                }
                Some(Err(e)) => {
                    if !retry_after(&e, &mut failures, deadline).await {
                        return Ok(EXIT_TIMEOUT);
                    }
                    continue;
                }
            }
        }
        let events = match within(deadline, api.watch(&params, &version)).await {
            None => return Ok(EXIT_TIMEOUT),
            Some(Ok(events)) => events,
            Some(Err(kube::Error::Api(e))) if e.code == 410 => {
                relist = true;
                continue;
            }
            Some(Err(e)) => {
                if !retry_after(&e, &mut failures, deadline).await {
                    return Ok(EXIT_TIMEOUT);
                }
                continue;
            }
        };
        let mut events = Box::pin(events);
        loop {
            let event = match within(deadline, events.try_next()).await {
                None => return Ok(EXIT_TIMEOUT),
                // The server ended the watch: watch again from the last version seen.
                Some(Ok(None)) => break,
                Some(Ok(Some(event))) => event,
                Some(Err(e)) => {
                    // The watch was dropped mid-way: resume from the last version seen.
                    if !retry_after(&e, &mut failures, deadline).await {
                        return Ok(EXIT_TIMEOUT);
                    }
                    break;
                }
            };
            failures = 0;
            match event {
                WatchEvent::Added(changed) | WatchEvent::Modified(changed) => {
                    version = version_of(&changed);
                    rollout = changed;
                    show(&rollout, out)?;
                    if ended(&rollout) {
                        return Ok(exit_status(phase(&rollout)));
                    }
                }
                WatchEvent::Deleted(_) => {
                    return Err(OpsError::Refused(format!(
                        "rollout {}/{} was deleted",
                        target.namespace, target.name
                    )));
                }
                WatchEvent::Bookmark(bookmark) => {
                    version = bookmark.metadata.resource_version;
                }
                WatchEvent::Error(e) if e.code == 410 => {
                    relist = true;
                    break;
                }
                WatchEvent::Error(e) => return Err(OpsError::Api(kube::Error::Api(e))),
            }
        }
    }
}

/// Runs `work` until `deadline` (None: no limit); None when the deadline came first.
async fn within<T>(
    deadline: Option<tokio::time::Instant>,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, work).await.ok(),
        None => Some(work.await),
    }
}

/// After a failure to reach the API server while watching: waits (0.2 s, doubling up to 5 s)
/// before the next try; false when the deadline comes first.
async fn retry_after(
    error: &kube::Error,
    failures: &mut u32,
    deadline: Option<tokio::time::Instant>,
) -> bool {
    let pause = RETRY_FIRST
        .saturating_mul(2u32.saturating_pow((*failures).min(5)))
        .min(RETRY_MAX);
    *failures += 1;
    tracing::warn!(error = %error, retry_in = ?pause, "the watch failed; trying again");
    within(deadline, tokio::time::sleep(pause)).await.is_some()
}

/// The first pause before watching again after a failure.
const RETRY_FIRST: Duration = Duration::from_millis(200);
/// The longest pause between tries.
const RETRY_MAX: Duration = Duration::from_secs(5);

fn phase(rollout: &Rollout) -> Option<Phase> {
    rollout.status.as_ref().and_then(|s| s.phase)
}

/// The status as text: phase, stage and percent, bake time, next checkpoint, each gate's last
/// value against its bounds with its counters, and the last `history` entries.
pub fn render(rollout: &Rollout, now: Timestamp, history: usize) -> String {
    let spec = &rollout.spec;
    let status = rollout.status.clone().unwrap_or_default();
    let namespace = rollout.metadata.namespace.as_deref().unwrap_or("default");
    let name = rollout.metadata.name.as_deref().unwrap_or("");
    let stages = spec.stages.len();
    let mut lines: Vec<(&str, String)> = vec![("Rollout", format!("{namespace}/{name}"))];
    let phase = status.phase;
    lines.push((
        "Phase",
        phase.map_or_else(
            || "(not reconciled yet)".to_owned(),
            |p| p.as_str().to_owned(),
        ),
    ));
    let started = phase.is_some_and(|p| p != Phase::Pending);
    if started {
        let percent = status
            .percent
            .map_or_else(|| "-".to_owned(), |p| format!("{p}%"));
        lines.push((
            "Stage",
            format!("{} at {percent}", stage_label(status.stage, stages)),
        ));
        if let Some(p) = status.drifted_percent {
            lines.push(("Drifted", format!("the target holds {p}%")));
        }
    }
    let running = phase.is_some_and(|p| !p.is_terminal()) && started;
    if running && let Some(stage_start) = &status.stage_started_at {
        let baked = seconds_between(stage_start.0, now);
        let needed = spec
            .stages
            .get(status.stage as usize)
            .map(|s| std::time::Duration::from(s.duration));
        let of = needed.map_or_else(String::new, |d| format!(" of {}", compact(d)));
        lines.push(("Baked", format!("{}{of}", duration(baked))));
    }
    if running && let Some(next) = &status.next_checkpoint_at {
        let wait = seconds_between(now, next.0);
        let when = if wait > 0 {
            format!("in {}", duration(wait))
        } else {
            "due now".to_owned()
        };
        lines.push(("Next checkpoint", format!("{when} ({})", next.0)));
    }
    if let Some(message) = &status.message {
        lines.push(("Message", message.clone()));
    }
    if status.observed_generation.is_some()
        && status.observed_generation != rollout.metadata.generation
    {
        lines.push((
            "Note",
            "the spec changed since the controller last looked (observedGeneration lags)"
                .to_owned(),
        ));
    }
    // The key, its colon and two spaces.
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 3;
    let mut out = String::new();
    for (key, value) in &lines {
        out.push_str(&format!("{:<width$}{value}\n", format!("{key}:")));
    }
    if !spec.analysis.gates.is_empty() {
        out.push_str("Gates:\n");
        out.push_str(&gates(rollout, &status.gates));
    }
    if history > 0 && !status.history.is_empty() {
        let shown = status.history.len().min(history);
        out.push_str(&format!(
            "History (last {shown} of {}):\n",
            status.history.len()
        ));
        out.push_str(&entries(
            &status.history[status.history.len() - shown..],
            stages,
        ));
    }
    out
}

fn gates(rollout: &Rollout, statuses: &[GateStatus]) -> String {
    let error_limit = rollout.spec.analysis.error_limit;
    let mut rows = vec![
        [
            "NAME", "VERDICT", "VALUE", "BOUND", "FAILURES", "MISSES", "MESSAGE",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for gate in &rollout.spec.analysis.gates {
        let found = statuses.iter().find(|s| s.name == gate.name);
        let default = GateStatus::default();
        let s = found.unwrap_or(&default);
        rows.push(vec![
            gate.name.clone(),
            s.last_verdict
                .map_or_else(|| "-".to_owned(), |v| v.as_str().to_owned()),
            s.last_value
                .map_or_else(|| "-".to_owned(), |v| format!("{v}")),
            bound(gate),
            format!("{}/{}", s.failures, gate.failure_limit),
            format!("{}/{error_limit}", s.misses),
            s.last_message.clone().unwrap_or_default(),
        ]);
    }
    table::render(&rows, "  ")
}

fn bound(gate: &Gate) -> String {
    match gate.bounds() {
        (Some(min), Some(max)) => format!("{min} <= v <= {max}"),
        (Some(min), None) => format!(">= {min}"),
        (None, Some(max)) => format!("<= {max}"),
        (None, None) => "any value".to_owned(),
    }
}

fn entries(history: &[HistoryEntry], stages: usize) -> String {
    let rows: Vec<Vec<String>> = history
        .iter()
        .map(|e| {
            let verdict = e
                .verdict
                .map_or_else(String::new, |v| format!(" {}", v.as_str()));
            vec![
                e.at.0.to_string(),
                format!("{}{verdict}", e.kind.as_str()),
                format!("{} at {}%", stage_label(e.stage, stages), e.percent),
                e.message.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table::render(&rows, "  ")
}

fn seconds_between(from: Timestamp, to: Timestamp) -> i64 {
    to.as_second() - from.as_second()
}

fn duration(seconds: i64) -> String {
    compact(std::time::Duration::from_secs(
        u64::try_from(seconds).unwrap_or(0),
    ))
}

/// `--timeout`: the forms of `--request-timeout`, but more than zero.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    parse_request_timeout(text)?
        .0
        .ok_or_else(|| "the timeout must be more than zero".to_owned())
}

/// `rollgate status` on the command line: connects, prints, and exits with
/// [`exit_status`] of the last phase seen, or [`EXIT_TIMEOUT`].
pub fn run(args: StatusArgs) -> std::process::ExitCode {
    use std::io::IsTerminal;
    super::kube_client::run_command("status", || async move {
        let client = args.kube.connect().await?;
        let target = Target::new(&client, args.kube.namespace.as_deref(), &args.name);
        let stdout = std::io::stdout();
        let options = StatusOptions {
            watch: args.watch,
            timeout: args.timeout,
            history: args.history,
            clear_screen: args.watch && stdout.is_terminal(),
            now: &Timestamp::now,
        };
        let code = status(&client, &target, &options, &mut stdout.lock()).await?;
        if code == EXIT_TIMEOUT
            && let Some(limit) = args.timeout
        {
            eprintln!(
                "rollgate status: {}/{} did not end within {}",
                target.namespace,
                target.name,
                compact(limit)
            );
        }
        Ok(std::process::ExitCode::from(code))
    })
}
