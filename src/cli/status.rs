//! `rollgate status NAME [-n NS] [-w]`: where a rollout stands, for a person at 3 a.m. and for
//! a script waiting on it. The exit status says how it ended: 1 when it rolled back or its
//! spec was refused (the phases in which kstatus' `Stalled` is true), 0 otherwise.

use std::io::Write;

use clap::Args;
use futures_util::TryStreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{WatchEvent, WatchParams};
use rollgate::api::{Gate, GateStatus, HistoryEntry, Phase, Rollout, stage_label};
use rollgate::engine::compact;

use super::kube_client::{NamespaceArg, OpsError, Target};
use super::table;

/// Exit status of `status` when the rollout rolled back or its spec was refused.
pub const EXIT_STALLED: u8 = 1;

/// How many history entries `status` shows by default.
pub const DEFAULT_HISTORY: usize = 5;

/// `rollgate status`.
#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    /// The Rollout's name.
    pub name: String,
    #[command(flatten)]
    pub namespace: NamespaceArg,
    /// Keep watching: print the status again whenever the Rollout changes, until it ends
    /// (Succeeded, RolledBack or Failed) or Ctrl-C.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// How many of the latest history entries to show.
    #[arg(long, default_value_t = DEFAULT_HISTORY, value_name = "N")]
    pub history: usize,
}

/// How `status` writes and when it stops.
pub struct StatusOptions<'a> {
    /// Watch until the rollout ends.
    pub watch: bool,
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
    let api = target.api(client);
    let params = WatchParams::default()
        .fields(&format!("metadata.name={}", target.name))
        .timeout(290);
    let mut version = rollout
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    loop {
        let mut events = Box::pin(
            api.watch(&params, &version)
                .await
                .map_err(|e| target.error(e))?,
        );
        while let Some(event) = events.try_next().await.map_err(|e| target.error(e))? {
            match event {
                WatchEvent::Added(changed) | WatchEvent::Modified(changed) => {
                    version = changed
                        .metadata
                        .resource_version
                        .clone()
                        .unwrap_or_default();
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
                    // The version is too old to watch from: read the Rollout again.
                    rollout = target.get(client).await?;
                    version = rollout
                        .metadata
                        .resource_version
                        .clone()
                        .unwrap_or_default();
                    show(&rollout, out)?;
                    if ended(&rollout) {
                        return Ok(exit_status(phase(&rollout)));
                    }
                    break;
                }
                WatchEvent::Error(e) => return Err(OpsError::Api(kube::Error::Api(e))),
            }
        }
    }
}

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

/// `rollgate status` on the command line: connects, prints, and exits with
/// [`exit_status`] of the last phase seen.
pub fn run(args: StatusArgs) -> std::process::ExitCode {
    use std::io::IsTerminal;
    super::kube_client::run_command("status", || async move {
        let client = super::kube_client::connect().await?;
        let target = Target::new(&client, args.namespace.namespace.as_deref(), &args.name);
        let stdout = std::io::stdout();
        let options = StatusOptions {
            watch: args.watch,
            history: args.history,
            clear_screen: args.watch && stdout.is_terminal(),
            now: &Timestamp::now,
        };
        let code = status(&client, &target, &options, &mut stdout.lock()).await?;
        Ok(std::process::ExitCode::from(code))
    })
}
