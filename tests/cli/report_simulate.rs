//! `rollgate simulate --report`: the Markdown of fixed simulations matches reviewed snapshots,
//! the SVG chart beside it parses and carries the percent line, one series per gate and the
//! bound lines, and a report that cannot be written is exit status 3.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rollgate::report::chart::{BOUND_COLOR, PERCENT_COLOR, gate_color, hex};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn plan() -> PathBuf {
    root().join("examples/passenger-favorites-matching.yaml")
}

fn scenario(name: &str) -> PathBuf {
    root().join(format!("examples/scenarios/{name}.yaml"))
}

fn rollgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(args)
        .output()
        .expect("the rollgate binary runs")
}

/// Simulates the example plan against `name` with `--report DIR/NAME.md`; returns the
/// Markdown and the SVG.
fn simulate_report(dir: &Path, name: &str) -> (String, String) {
    let report = dir.join(format!("{name}.md"));
    let out = rollgate(&[
        "simulate",
        plan().to_str().expect("UTF-8"),
        "--scenario",
        scenario(name).to_str().expect("UTF-8"),
        "--report",
        report.to_str().expect("UTF-8"),
    ]);
    assert!(
        out.status.success(),
        "simulate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("summary"),
        "the timeline is still printed"
    );
    let markdown = std::fs::read_to_string(&report).expect("the report was written");
    let svg = std::fs::read_to_string(dir.join(format!("{name}.svg")))
        .expect("the chart was written beside it");
    (markdown, svg)
}

/// Compares `actual` with the reviewed snapshot `tests/cli/snapshots/NAME`; with
/// `ROLLGATE_UPDATE_SNAPSHOTS=1` rewrites the snapshot instead (review the diff).
#[track_caller]
fn assert_snapshot(name: &str, actual: &str) {
    let path = root().join("tests/cli/snapshots").join(name);
    if std::env::var_os("ROLLGATE_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).expect("snapshot written");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with ROLLGATE_UPDATE_SNAPSHOTS=1)",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from its snapshot from line {}:\n--- expected\n{}\n--- actual\n{}",
            first + 1,
            expected
                .lines()
                .skip(first)
                .take(5)
                .collect::<Vec<_>>()
                .join("\n"),
            actual
                .lines()
                .skip(first)
                .take(5)
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
}

#[test]
fn two_breaches_report_matches_its_snapshot() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (markdown, _) = simulate_report(dir.path(), "two-breaches");
    assert_snapshot("report-two-breaches.md", &markdown);
}

#[test]
fn healthy_report_matches_its_snapshot() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (markdown, _) = simulate_report(dir.path(), "healthy");
    assert_snapshot("report-healthy.md", &markdown);
}

#[test]
fn the_same_run_gives_the_same_report_byte_for_byte() {
    let a = tempfile::tempdir().expect("a temporary directory");
    let b = tempfile::tempdir().expect("a temporary directory");
    assert_eq!(
        simulate_report(a.path(), "two-breaches"),
        simulate_report(b.path(), "two-breaches")
    );
}

#[test]
fn a_drift_is_listed_with_both_percents() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (markdown, _) = simulate_report(dir.path(), "unauthorised-drift");
    let drift = markdown
        .split("## Drift")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a drift section");
    assert!(
        drift.contains(
            "| 2026-02-01T20:48:00Z | +1h30m | 1% | 3% | target drifted to 3% (expected 1%): reverted |"
        ),
        "{drift}"
    );
    assert!(markdown.contains("| Phase | Succeeded |"), "{markdown}");
}

/// A `<polyline>`'s points as (x, y) pixels.
fn points(node: roxmltree::Node<'_, '_>) -> Vec<(f64, f64)> {
    node.attribute("points")
        .expect("points")
        .split_whitespace()
        .map(|pair| {
            let (x, y) = pair.split_once(',').expect("x,y");
            (x.parse().expect("x"), y.parse().expect("y"))
        })
        .collect()
}

/// The polylines drawn in `color`, longest first (a series before its legend sample).
fn polylines<'a, 'i>(doc: &'a roxmltree::Document<'i>, color: &str) -> Vec<Vec<(f64, f64)>> {
    let mut lines: Vec<Vec<(f64, f64)>> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke") == Some(color))
        .map(points)
        .collect();
    lines.sort_by_key(|l| std::cmp::Reverse(l.len()));
    lines
}

fn distinct(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut seen: Vec<f64> = Vec::new();
    for v in values {
        if !seen.iter().any(|s| (s - v).abs() < 0.5) {
            seen.push(v);
        }
    }
    seen
}

#[test]
fn the_chart_parses_and_carries_the_percent_line_each_gate_and_its_bounds() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (_, svg) = simulate_report(dir.path(), "two-breaches");
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
    assert!(doc.root_element().has_tag_name("svg"));
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_owned()))
        .collect();
    for title in [
        "Percent on the target",
        "Gate error-rate",
        "Gate critical-alerts",
        "Gate determinism",
        "max 0.01",
        "max 0",
    ] {
        assert!(texts.iter().any(|t| t == title), "{title:?} in {texts:?}");
    }

    // The percent: 1% from the start, 5% from +2h, 0% after the rollback at +4h.
    let percent = polylines(&doc, &hex(PERCENT_COLOR));
    let line = percent.first().expect("a percent line");
    assert_eq!(distinct(line.iter().map(|p| p.1)).len(), 3, "{line:?}");
    assert!(
        line.windows(2).all(|w| w[0].0 <= w[1].0),
        "time goes forward"
    );

    // One series per gate, a point per checkpoint (4).
    for i in 0..3 {
        let series = polylines(&doc, &hex(gate_color(i)));
        assert_eq!(
            series.first().map(Vec::len),
            Some(4),
            "gate {i}: {series:?}"
        );
    }

    // Three max lines, horizontal; error-rate's lies between its 0.002 and 0.03 values.
    let bounds: Vec<Vec<(f64, f64)>> = polylines(&doc, &hex(BOUND_COLOR))
        .into_iter()
        .filter(|l| l.len() == 2 && (l[1].0 - l[0].0) > 100.0)
        .collect();
    assert_eq!(bounds.len(), 3, "{bounds:?}");
    assert!(bounds.iter().all(|l| l[0].1 == l[1].1), "{bounds:?}");
    let error_rate = &polylines(&doc, &hex(gate_color(0)))[0];
    let (top, bottom) = (
        error_rate.iter().map(|p| p.1).fold(f64::INFINITY, f64::min),
        error_rate
            .iter()
            .map(|p| p.1)
            .fold(f64::NEG_INFINITY, f64::max),
    );
    let max_line = bounds
        .iter()
        .find(|l| l[0].1 > top && l[0].1 < bottom)
        .expect("error-rate's max line between its values");
    let above = error_rate.iter().filter(|p| p.1 < max_line[0].1).count();
    assert_eq!(
        above, 2,
        "two values over the bound: {error_rate:?} {max_line:?}"
    );
}

#[test]
fn a_report_that_cannot_be_written_is_exit_status_3() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let report = dir.path().join("missing-directory/report.md");
    let out = rollgate(&[
        "simulate",
        plan().to_str().expect("UTF-8"),
        "--scenario",
        scenario("healthy").to_str().expect("UTF-8"),
        "--report",
        report.to_str().expect("UTF-8"),
    ]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rollgate simulate: cannot write") && stderr.contains("report.svg"),
        "{stderr}"
    );
}

#[test]
fn a_compare_gates_chart_draws_its_bound_against_max_regression() {
    let dir = std::env::temp_dir().join(format!("rollgate-report-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let report = dir.join("compare-regression.md");
    let out = rollgate(&[
        "simulate",
        root()
            .join("examples/errors-vs-control.yaml")
            .to_str()
            .expect("UTF-8"),
        "--scenario",
        scenario("compare-regression").to_str().expect("UTF-8"),
        "--report",
        report.to_str().expect("UTF-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let markdown = std::fs::read_to_string(&report).expect("the report was written");
    assert!(
        markdown.contains("harmful bound ≤ 0.002 (maxRegression)"),
        "{markdown}"
    );
    let svg = std::fs::read_to_string(dir.join("compare-regression.svg")).expect("the chart");
    let document = roxmltree::Document::parse(&svg).expect("the chart is SVG");
    let texts: Vec<&str> = document
        .descendants()
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    assert!(texts.contains(&"Gate errors-vs-control"), "{texts:?}");
    assert!(texts.contains(&"maxRegression 0.002"), "{texts:?}");
    // The bound's line in the gate's colour, and the maxRegression line in the bound colour.
    let stroke = |color: &str| {
        document
            .descendants()
            .filter(|n| n.attribute("stroke") == Some(color))
            .count()
    };
    assert!(stroke(&hex(gate_color(1))) > 0, "the bound is drawn");
    assert!(stroke(&hex(BOUND_COLOR)) > 0, "maxRegression is drawn");
    let _ = std::fs::remove_dir_all(&dir);
}
