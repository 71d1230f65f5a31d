//! The report as Markdown, for a change ticket: plan, pre-checks, timeline, drift, final state.

use std::fmt::Write;

use k8s_openapi::jiff::Timestamp;

use super::escape::{fence, inline};
use super::model::{
    Entry, Event, FinalState, GatePlan, GateReading, PreCheckResult, Report, Source,
};
use crate::api::{CheckpointVerdict, stage_label, stage_number};
use crate::sim::timeline::offset_text;

/// Past this many checkpoints the timeline table folds each run of passing checkpoints at one
/// stage into one row; the chart still shows every one.
pub const MAX_CHECKPOINT_ROWS: usize = 200;

/// Renders `report` as Markdown; `chart` is the chart's file name, linked when given.
pub fn render(report: &Report, chart: Option<&str>) -> String {
    let mut out = String::new();
    header(&mut out, report);
    plan(&mut out, report);
    prechecks(&mut out, report);
    timeline(&mut out, report);
    drift(&mut out, report);
    final_state(&mut out, &report.final_state, report.origin());
    if let Some(chart) = chart {
        let _ = write!(
            out,
            "\n## Chart\n\nThe percent on the target over time, and each gate's values against its bounds.\n\n![Percent and gate values over time]({})\n",
            link(chart)
        );
    }
    if !report.notes.is_empty() {
        out.push_str("\n## Notes\n\n");
        for note in &report.notes {
            let _ = writeln!(out, "- {}", inline(note));
        }
    }
    out
}

/// A file name as a link target: spaces and parentheses percent-encoded.
fn link(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            ' ' => "%20".to_owned(),
            '(' => "%28".to_owned(),
            ')' => "%29".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

fn header(out: &mut String, report: &Report) {
    let name = match &report.namespace {
        Some(ns) => format!("{ns}/{}", report.name),
        None => report.name.clone(),
    };
    let _ = writeln!(out, "# Release report: {}\n", inline(&name));
    out.push_str("| | |\n|---|---|\n");
    let source = match &report.source {
        Source::Simulation { plan, scenario } => format!(
            "simulation of {} against scenario {}",
            inline(plan),
            inline(scenario)
        ),
        Source::Backtest { plan, start, end } => format!(
            "backtest of {} over Prometheus history from {start} to {end}",
            inline(plan)
        ),
        Source::Live {
            generation,
            observed_generation,
        } => format!(
            "the Rollout in the cluster (generation {}, status of generation {})",
            number(*generation),
            number(*observed_generation)
        ),
    };
    let _ = writeln!(out, "| Source | {source} |");
    if let Some(origin) = report.origin() {
        let _ = writeln!(out, "| Started | {origin} |");
    }
    let state = &report.final_state;
    let stages = report.plan.stages.len();
    let _ = writeln!(
        out,
        "| Outcome | {} |",
        outcome(state, stages, report.origin())
    );
    if let Some(message) = &state.message {
        let _ = writeln!(out, "| Why | {} |", inline(message));
    }
}

/// `+2h`, or `-2m` for what happened before the start (a pre-check that failed).
fn offset(origin: Timestamp, at: Timestamp) -> String {
    if at < origin {
        format!(
            "-{}",
            crate::engine::compact(origin.duration_since(at).unsigned_abs())
        )
    } else {
        offset_text(at.duration_since(origin))
    }
}

fn number(n: Option<i64>) -> String {
    n.map_or_else(|| "unknown".to_owned(), |n| n.to_string())
}

fn outcome(state: &FinalState, stages: usize, origin: Option<Timestamp>) -> String {
    let phase = state.phase.map_or("not started", |p| p.as_str());
    let mut text = format!("**{phase}** at {}", stage_label(state.stage, stages));
    if let Some(percent) = state.percent {
        let _ = write!(text, ", {percent}% on the target");
    }
    if let (Some(at), Some(origin)) = (state.at, origin) {
        let _ = write!(text, ", {} after the start", offset(origin, at));
    }
    text
}

fn plan(out: &mut String, report: &Report) {
    let plan = &report.plan;
    let _ = writeln!(out, "\n## Plan\n\nTarget: {}.", inline(&plan.target));
    if let Some(keys) = plan.allowlist {
        let _ = writeln!(
            out,
            "Allowlist: {keys} targeting keys always get the change."
        );
    }
    out.push_str("\n| Stage | Percent | Bake time |\n|---:|---:|---|\n");
    for (i, stage) in plan.stages.iter().enumerate() {
        let number = stage_number(u32::try_from(i).unwrap_or(u32::MAX));
        let _ = writeln!(out, "| {number} | {}% | {} |", stage.percent, stage.bake);
    }
    let _ = writeln!(
        out,
        "\nCheckpoints every {}. {} checkpoints in a row without usable data from a gate pause the \
         rollout. A rollback leaves the target at {}%. On drift: {}.",
        plan.interval, plan.error_limit, plan.rollback_percent, plan.on_drift
    );
    if plan.gates.is_empty() {
        out.push_str("\nThe plan has no gates.\n");
        return;
    }
    out.push_str("\n| Gate | Measures | Passes when | Rolls back after |\n|---|---|---|---|\n");
    for gate in &plan.gates {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} failing checkpoint{} in a row |",
            inline(&gate.name),
            inline(&gate.measures),
            bounds(gate),
            gate.failure_limit,
            if gate.failure_limit == 1 { "" } else { "s" }
        );
    }
    for gate in &plan.gates {
        if let Some(query) = &gate.query {
            let query = query.trim_end();
            let fence = fence(query);
            let _ = write!(
                out,
                "\nQuery of gate {}:\n\n{fence}promql\n{query}\n{fence}\n",
                inline(&gate.name)
            );
        }
    }
}

/// `value ≤ 0.01`, `0.5 ≤ value ≤ 1`, `value ≥ 1`, or `any value`.
pub(super) fn bounds(gate: &GatePlan) -> String {
    if gate.max_word == "maxRegression"
        && let Some(max) = gate.max
    {
        return format!("harmful bound ≤ {} (maxRegression)", value(max));
    }
    match (gate.min, gate.max) {
        (Some(min), Some(max)) => format!("{} ≤ value ≤ {}", value(min), value(max)),
        (Some(min), None) => format!("value ≥ {}", value(min)),
        (None, Some(max)) => format!("value ≤ {}", value(max)),
        (None, None) => "any value".to_owned(),
    }
}

/// A gate value as Prometheus writes it: `0.03`, `+Inf`.
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        v.to_string()
    }
}

fn prechecks(out: &mut String, report: &Report) {
    out.push_str("\n## Pre-checks\n\n| Check | Result |\n|---|---|\n");
    for check in &report.prechecks {
        let result = match &check.result {
            PreCheckResult::Passed(Some(at)) => format!("passed (started {at})"),
            PreCheckResult::Passed(None) => "passed".to_owned(),
            PreCheckResult::Failed {
                at: Some(at),
                reason,
            } => {
                format!("failed at {at}: {}", inline(reason))
            }
            PreCheckResult::Failed { at: None, reason } => format!("failed: {}", inline(reason)),
            PreCheckResult::NotRun(why) => inline(why),
        };
        let _ = writeln!(out, "| {} | {result} |", inline(&check.check));
    }
}

/// One row of the timeline table.
enum Row<'a> {
    /// An entry as it is.
    One(&'a Entry),
    /// A run of passing checkpoints at one stage, first and last.
    Passing(&'a Entry, &'a Entry, usize),
}

fn rows(entries: &[Entry]) -> Vec<Row<'_>> {
    let checkpoints = entries
        .iter()
        .filter(|e| matches!(e.event, Event::Checkpoint { .. }))
        .count();
    if checkpoints <= MAX_CHECKPOINT_ROWS {
        return entries.iter().map(Row::One).collect();
    }
    let passing = |e: &Entry| {
        matches!(
            e.event,
            Event::Checkpoint {
                verdict: CheckpointVerdict::Pass,
                ..
            }
        )
    };
    let mut rows = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let first = &entries[i];
        let mut j = i;
        while passing(first)
            && j + 1 < entries.len()
            && passing(&entries[j + 1])
            && entries[j + 1].stage == first.stage
        {
            j += 1;
        }
        rows.push(if j > i {
            Row::Passing(first, &entries[j], j - i + 1)
        } else {
            Row::One(first)
        });
        i = j + 1;
    }
    rows
}

fn timeline(out: &mut String, report: &Report) {
    out.push_str("\n## Timeline\n\n");
    if report.entries.is_empty() {
        out.push_str("Nothing happened yet.\n");
        return;
    }
    let origin = report.origin().unwrap_or(Timestamp::UNIX_EPOCH);
    out.push_str("Times are UTC; offsets count from the start.\n\n");
    out.push_str(
        "| Time | Offset | Event | Stage | Percent | Verdict | Details |\n|---|---:|---|---:|---:|---|---|\n",
    );
    for row in rows(&report.entries) {
        match row {
            Row::One(entry) => {
                let (word, verdict, details) = describe(entry);
                let _ = writeln!(
                    out,
                    "| {} | {} | {word} | {} | {}% | {verdict} | {details} |",
                    entry.at,
                    offset(origin, entry.at),
                    stage_number(entry.stage),
                    entry.percent
                );
            }
            Row::Passing(first, last, count) => {
                let _ = writeln!(
                    out,
                    "| {} | {} | {count} checkpoints | {} | {}% | pass | every gate passed, until {} ({}) |",
                    first.at,
                    offset(origin, first.at),
                    stage_number(first.stage),
                    first.percent,
                    last.at,
                    offset(origin, last.at)
                );
            }
        }
    }
}

/// The event word, the verdict and the details of an entry.
fn describe(entry: &Entry) -> (&'static str, &'static str, String) {
    match &entry.event {
        Event::Pending { reason } => (
            "pending",
            "",
            reason.as_deref().map(inline).unwrap_or_default(),
        ),
        Event::Start => ("start", "", String::new()),
        Event::Checkpoint { verdict, gates } => {
            let details = if gates.is_empty() {
                "(gate values not kept)".to_owned()
            } else {
                gates.iter().map(reading).collect::<Vec<_>>().join("; ")
            };
            ("checkpoint", verdict.as_str(), details)
        }
        Event::Drift { reason, .. } => (
            "drift",
            "",
            reason.as_deref().map(inline).unwrap_or_default(),
        ),
        Event::Transition { kind, reason } => (
            kind.as_str(),
            "",
            reason.as_deref().map(inline).unwrap_or_default(),
        ),
    }
}

/// `error-rate 0.03 fail`, `determinism error (connection refused)`.
fn reading(gate: &GateReading) -> String {
    let verdict = gate.verdict.map_or("no verdict", |v| v.as_str());
    match (gate.value, &gate.message) {
        (Some(v), _) => format!("{} {} {verdict}", inline(&gate.name), value(v)),
        (None, Some(m)) => format!("{} {verdict} ({})", inline(&gate.name), inline(m)),
        (None, None) => format!("{} {verdict}", inline(&gate.name)),
    }
}

fn drift(out: &mut String, report: &Report) {
    out.push_str("\n## Drift\n\n");
    let origin = report.origin().unwrap_or(Timestamp::UNIX_EPOCH);
    let drifts: Vec<&Entry> = report.drifts().collect();
    if drifts.is_empty() {
        out.push_str("No drift: the target always held the percent the rollout wrote.\n");
        return;
    }
    out.push_str(
        "| Time | Offset | Expected | Found | What was done |\n|---|---:|---:|---:|---|\n",
    );
    for entry in drifts {
        let Event::Drift { actual, reason } = &entry.event else {
            continue;
        };
        let found = actual.map_or_else(|| "see reason".to_owned(), |a| format!("{a}%"));
        let _ = writeln!(
            out,
            "| {} | {} | {}% | {found} | {} |",
            entry.at,
            offset(origin, entry.at),
            entry.percent,
            reason.as_deref().map(inline).unwrap_or_default()
        );
    }
}

fn final_state(out: &mut String, state: &FinalState, origin: Option<Timestamp>) {
    out.push_str("\n## Final state\n\n| | |\n|---|---|\n");
    let _ = writeln!(
        out,
        "| Phase | {} |",
        state.phase.map_or("not started", |p| p.as_str())
    );
    let _ = writeln!(out, "| Stage | {} |", stage_number(state.stage));
    if let Some(percent) = state.percent {
        let _ = writeln!(out, "| Percent on the target | {percent}% |");
    }
    if let Some(at) = state.at {
        let since = origin.map_or_else(String::new, |o| format!(" ({})", offset(o, at)));
        let _ = writeln!(out, "| As of | {at}{since} |");
    }
    if let Some(message) = &state.message {
        let _ = writeln!(out, "| Message | {} |", inline(message));
    }
    if let Some(next) = state.next_checkpoint_at {
        let _ = writeln!(out, "| Next checkpoint | {next} |");
    }
    if !state.conditions.is_empty() {
        let conditions: Vec<String> = state
            .conditions
            .iter()
            .map(|(kind, status, reason)| {
                format!("{}={} ({})", inline(kind), inline(status), inline(reason))
            })
            .collect();
        let _ = writeln!(out, "| Conditions | {} |", conditions.join(", "));
    }
    if state.gates.is_empty() {
        return;
    }
    out.push_str(
        "\n| Gate | Last verdict | Last value | Failing in a row | Without data in a row |\n|---|---|---:|---:|---:|\n",
    );
    for gate in &state.gates {
        let last = match (gate.value, &gate.message) {
            (Some(v), _) => value(v),
            (None, Some(m)) => inline(m),
            (None, None) => "—".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {last} | {} | {} |",
            inline(&gate.name),
            gate.verdict.map_or("—", |v| v.as_str()),
            gate.failures,
            gate.misses
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{GateVerdict, HistoryKind, Percent, Phase};
    use crate::report::model::{GatePlan, Plan};

    fn at(minutes: i64) -> Timestamp {
        Timestamp::from_second(1_769_973_480 + minutes * 60).expect("a time")
    }

    fn checkpoint(minute: i64, stage: u32, verdict: CheckpointVerdict) -> Entry {
        Entry {
            at: at(minute),
            stage,
            percent: Percent::whole(1),
            event: Event::Checkpoint {
                verdict,
                gates: vec![GateReading {
                    name: "error-rate".to_owned(),
                    verdict: Some(GateVerdict::Pass),
                    value: Some(0.002),
                    message: None,
                    failures: 0,
                    misses: 0,
                }],
            },
        }
    }

    fn report(entries: Vec<Entry>) -> Report {
        Report {
            name: "r".to_owned(),
            namespace: None,
            source: Source::Live {
                generation: Some(1),
                observed_generation: Some(1),
            },
            plan: Plan {
                target: "ConfigMap c key k".to_owned(),
                allowlist: None,
                stages: Vec::new(),
                interval: "1m".to_owned(),
                error_limit: 3,
                gates: vec![GatePlan {
                    name: "error-rate".to_owned(),
                    measures: "Prometheus query".to_owned(),
                    query: None,
                    min: Some(0.5),
                    max: Some(1.0),
                    max_word: "max",
                    failure_limit: 1,
                }],
                rollback_percent: Percent::whole(0),
                on_drift: "Revert",
                min_allowlist: None,
            },
            prechecks: Vec::new(),
            entries,
            final_state: FinalState {
                at: None,
                phase: Some(Phase::Progressing),
                stage: 0,
                percent: Some(Percent::whole(1)),
                message: None,
                gates: Vec::new(),
                next_checkpoint_at: None,
                conditions: Vec::new(),
            },
            notes: Vec::new(),
        }
    }

    #[test]
    fn a_long_run_folds_passing_checkpoints_but_keeps_every_other_row() {
        let mut entries = vec![Entry {
            at: at(0),
            stage: 0,
            percent: Percent::whole(1),
            event: Event::Start,
        }];
        entries.extend((1..=150).map(|m| checkpoint(m, 0, CheckpointVerdict::Pass)));
        entries.push(checkpoint(151, 0, CheckpointVerdict::Warn));
        entries.extend((152..=251).map(|m| checkpoint(m, 0, CheckpointVerdict::Pass)));
        entries.push(Entry {
            at: at(251),
            stage: 1,
            percent: Percent::whole(5),
            event: Event::Transition {
                kind: HistoryKind::Advance,
                reason: Some("bake time ended".to_owned()),
            },
        });
        let text = render(&report(entries), None);
        let rows: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("| Time |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .collect();
        assert_eq!(rows.len(), 5, "{rows:#?}");
        assert!(rows[1].contains("| +1m | 150 checkpoints |"), "{}", rows[1]);
        assert!(
            rows[1].contains("until 2026-02-01T21:48:00Z (+2h30m)"),
            "{}",
            rows[1]
        );
        assert!(rows[2].contains("| checkpoint |") && rows[2].contains("| warn |"));
        assert!(
            rows[3].contains("| +2h32m | 100 checkpoints |"),
            "{}",
            rows[3]
        );
        assert!(rows[4].contains("| advance |"));
    }

    #[test]
    fn a_short_run_lists_every_checkpoint() {
        let entries = (1..=3)
            .map(|m| checkpoint(m, 0, CheckpointVerdict::Pass))
            .collect();
        let text = render(&report(entries), None);
        assert_eq!(text.matches("| checkpoint |").count(), 3, "{text}");
    }

    #[test]
    fn bounds_read_as_inequalities() {
        let mut gate = report(Vec::new()).plan.gates.remove(0);
        assert_eq!(bounds(&gate), "0.5 ≤ value ≤ 1");
        gate.min = None;
        assert_eq!(bounds(&gate), "value ≤ 1");
        gate.max = None;
        assert_eq!(bounds(&gate), "any value");
        gate.min = Some(1.0);
        assert_eq!(bounds(&gate), "value ≥ 1");
    }

    #[test]
    fn hostile_texts_stay_in_their_cell() {
        let mut report = report(Vec::new());
        report.final_state.message = Some("bad | row\n## injected <img src=x>".to_owned());
        let text = render(&report, Some("my report (1).svg"));
        assert!(
            text.contains("| Message | bad \\| row \\#\\# injected &lt;img src=x&gt; |"),
            "{text}"
        );
        assert!(!text.contains("\n## injected"));
        assert!(text.contains("(my%20report%20%281%29.svg)"), "{text}");
    }

    #[test]
    fn an_empty_report_still_renders_and_charts() {
        let report = report(Vec::new());
        let text = render(&report, Some("r.svg"));
        assert!(text.contains("Nothing happened yet."), "{text}");
        let svg = crate::report::chart::render(&report).expect("a chart");
        roxmltree::Document::parse(&svg).expect("well-formed SVG");
    }
}
