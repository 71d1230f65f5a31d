//! The report's chart as SVG, drawn with `plotters` (its SVG backend writes text as `<text>`
//! elements, so no font is needed): one panel with the percent on the target over time, then
//! one panel per gate with its values and its bounds as horizontal lines.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use plotters::prelude::*;

use super::model::{Event, GatePlan, Report};
use crate::api::Percent;
use crate::sim::timeline::offset_text;
use crate::text::for_terminal;

/// The percent line's colour.
pub const PERCENT_COLOR: RGBColor = RGBColor(0x1F, 0x77, 0xB4);
/// The bound lines' colour.
pub const BOUND_COLOR: RGBColor = RGBColor(0x7F, 0x7F, 0x7F);
/// Gate value lines' colours, by gate index (cycled).
pub const GATE_COLORS: [RGBColor; 8] = [
    RGBColor(0xD6, 0x27, 0x28),
    RGBColor(0x2C, 0xA0, 0x2C),
    RGBColor(0x94, 0x67, 0xBD),
    RGBColor(0x8C, 0x56, 0x4B),
    RGBColor(0xE3, 0x77, 0xC2),
    RGBColor(0xBC, 0xBD, 0x22),
    RGBColor(0x17, 0xBE, 0xCF),
    RGBColor(0xFF, 0x7F, 0x0E),
];

const WIDTH: u32 = 960;
/// Up to this many checkpoints a gate's series marks each one with a dot and keeps every
/// point; past it, a run of equal values is drawn as one segment and without dots, so a month
/// of per-minute checkpoints stays a chart of reasonable size.
pub const MAX_MARKED_POINTS: usize = 400;
const PANEL_HEIGHT: u32 = 240;

/// The colour of gate `index`'s values.
pub fn gate_color(index: usize) -> RGBColor {
    GATE_COLORS[index % GATE_COLORS.len()]
}

/// A colour as the SVG backend writes it: `#1F77B4`.
pub fn hex(color: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", color.0, color.1, color.2)
}

/// The chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart: {0}")]
pub struct ChartError(String);

fn drawing<E: std::fmt::Debug>(error: E) -> ChartError {
    ChartError(format!("{error:?}"))
}

/// Hours from `origin` to `at`.
fn hours(origin: Timestamp, at: Timestamp) -> f64 {
    at.duration_since(origin).as_secs_f64() / 3600.0
}

/// The percent over time as a step line: (hours, percent).
pub fn percent_points(report: &Report, end: f64) -> Vec<(f64, f64)> {
    let Some(origin) = report.origin() else {
        return Vec::new();
    };
    let mut points: Vec<(f64, f64)> = Vec::new();
    let mut current: Option<Percent> = None;
    for entry in &report.entries {
        let x = hours(origin, entry.at).max(0.0);
        match current {
            None => points.push((x, entry.percent.as_f64())),
            Some(p) if p != entry.percent => {
                points.push((x, p.as_f64()));
                points.push((x, entry.percent.as_f64()));
            }
            Some(_) => {}
        }
        current = Some(entry.percent);
    }
    if let Some(p) = report.final_state.percent.or(current) {
        if current.is_some_and(|c| c != p) {
            points.push((end, current.unwrap_or(p).as_f64()));
        }
        points.push((end, p.as_f64()));
    }
    points
}

/// A gate's values over time in runs without gaps: a checkpoint without a finite value (no
/// data, an error) ends a run.
pub fn gate_runs(report: &Report, gate: &str) -> Vec<Vec<(f64, f64)>> {
    let Some(origin) = report.origin() else {
        return Vec::new();
    };
    let mut runs = Vec::new();
    let mut run: Vec<(f64, f64)> = Vec::new();
    for entry in &report.entries {
        let Event::Checkpoint { gates, .. } = &entry.event else {
            continue;
        };
        let Some(reading) = gates.iter().find(|g| g.name == gate) else {
            continue;
        };
        match reading.value.filter(|v| v.is_finite()) {
            Some(v) => run.push((hours(origin, entry.at), v)),
            None if !run.is_empty() => runs.push(std::mem::take(&mut run)),
            None => {}
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// `run` without the points inside a stretch of equal values (its ends are kept), which
/// draws the same line.
fn without_repeats(run: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    let last = run.len().saturating_sub(1);
    run.iter()
        .enumerate()
        .filter(|&(i, &(_, v))| i == 0 || i == last || run[i - 1].1 != v || run[i + 1].1 != v)
        .map(|(_, &p)| p)
        .collect()
}

/// Draws the chart of `report` as an SVG document.
pub fn render(report: &Report) -> Result<String, ChartError> {
    let origin = report.origin();
    let last = report
        .entries
        .iter()
        .map(|e| e.at)
        .chain(report.final_state.at)
        .max();
    let end = match (origin, last) {
        (Some(o), Some(l)) => hours(o, l).max(0.0),
        _ => 0.0,
    };
    let x_max = if end > 0.0 { end * 1.04 } else { 1.0 };
    let panels = 1 + report.plan.gates.len();
    let height = PANEL_HEIGHT * u32::try_from(panels).unwrap_or(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let areas = root.split_evenly((panels, 1));
        let (first, rest) = areas
            .split_first()
            .ok_or_else(|| ChartError("no panel".into()))?;
        percent_panel(first, report, x_max, end)?;
        for (i, (area, gate)) in rest.iter().zip(&report.plan.gates).enumerate() {
            gate_panel(area, report, gate, gate_color(i), x_max)?;
        }
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

fn offset_label(h: &f64) -> String {
    let seconds = (h * 3600.0).round();
    // Whole seconds in range of i64: the axis never spans more than a few hundred days.
    let seconds = if seconds.is_finite() {
        seconds as i64
    } else {
        0
    };
    offset_text(SignedDuration::from_secs(seconds))
}

/// The top of the percent axis: a little above the highest percent planned or seen.
fn percent_max(report: &Report) -> f64 {
    let highest = report
        .plan
        .stages
        .iter()
        .map(|s| s.percent)
        .chain(report.entries.iter().map(|e| e.percent))
        .max()
        .unwrap_or(Percent::ZERO);
    (highest.as_f64() * 1.1).clamp(1.0, 100.0)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn percent_panel(area: &Area<'_>, report: &Report, x_max: f64, end: f64) -> Result<(), ChartError> {
    let mut chart = ChartBuilder::on(area)
        .caption("Percent on the target", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..x_max, 0f64..percent_max(report))
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_label_formatter(&offset_label)
        .light_line_style(TRANSPARENT)
        .y_desc("percent")
        .draw()
        .map_err(drawing)?;
    let points = percent_points(report, end);
    chart
        .draw_series(LineSeries::new(points, PERCENT_COLOR.stroke_width(2)))
        .map_err(drawing)?
        .label("percent")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], PERCENT_COLOR));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(drawing)?;
    Ok(())
}

/// The value axis of a gate: its values and bounds, with a margin; never empty.
fn value_range(runs: &[Vec<(f64, f64)>], gate: &GatePlan) -> (f64, f64) {
    let values = runs
        .iter()
        .flatten()
        .map(|&(_, v)| v)
        .chain(gate.min)
        .chain(gate.max)
        .filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return (0.0, 1.0);
    }
    // Counts, rates and shares are never negative: their axis starts at 0.
    let lo = if lo >= 0.0 { 0.0 } else { lo };
    let span = hi - lo;
    if span <= f64::EPSILON * hi.abs().max(1.0) {
        let pad = if hi.abs() > 0.0 { hi.abs() * 0.5 } else { 1.0 };
        return (if lo == 0.0 { 0.0 } else { lo - pad }, hi + pad);
    }
    let low_pad = if lo == 0.0 { 0.0 } else { span * 0.1 };
    (lo - low_pad, hi + span * 0.1)
}

fn gate_panel(
    area: &Area<'_>,
    report: &Report,
    gate: &GatePlan,
    color: RGBColor,
    x_max: f64,
) -> Result<(), ChartError> {
    let name = for_terminal(&gate.name).into_owned();
    let runs = gate_runs(report, &gate.name);
    let (lo, hi) = value_range(&runs, gate);
    let mut chart = ChartBuilder::on(area)
        .caption(format!("Gate {name}"), ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..x_max, lo..hi)
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_label_formatter(&offset_label)
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(drawing)?;
    let marked = runs.iter().map(Vec::len).sum::<usize>() <= MAX_MARKED_POINTS;
    for (i, run) in runs.into_iter().enumerate() {
        let (run, dots) = if marked {
            (run, 3)
        } else {
            (without_repeats(run), 0)
        };
        let series = chart
            .draw_series(LineSeries::new(run, color.stroke_width(2)).point_size(dots))
            .map_err(drawing)?;
        if i == 0 {
            series
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    }
    for (word, bound) in [("min", gate.min), (gate.max_word, gate.max)] {
        let Some(bound) = bound.filter(|b| b.is_finite()) else {
            continue;
        };
        chart
            .draw_series(LineSeries::new(
                [(0.0, bound), (x_max, bound)],
                BOUND_COLOR.stroke_width(1),
            ))
            .map_err(drawing)?
            .label(format!("{word} {bound}"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BOUND_COLOR));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(drawing)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_inside_a_stretch_are_dropped_and_its_ends_kept() {
        let run = vec![
            (0.0, 1.0),
            (1.0, 1.0),
            (2.0, 1.0),
            (3.0, 2.0),
            (4.0, 2.0),
            (5.0, 2.0),
        ];
        assert_eq!(
            without_repeats(run),
            [(0.0, 1.0), (2.0, 1.0), (3.0, 2.0), (5.0, 2.0)]
        );
        assert_eq!(without_repeats(vec![(0.0, 1.0)]), [(0.0, 1.0)]);
        assert!(without_repeats(Vec::new()).is_empty());
    }
}
