//! Writes a report as `FILE.md` with its chart `FILE.svg` beside it.

use std::path::{Path, PathBuf};

use super::chart;
use super::markdown;
use super::model::Report;

/// A report that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The chart could not be drawn.
    #[error(transparent)]
    Chart(#[from] chart::ChartError),
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Where the chart of a report written to `markdown` goes: the same path with `.svg`.
pub fn chart_path(markdown: &Path) -> PathBuf {
    markdown.with_extension("svg")
}

/// Writes `report` to `markdown` and its chart beside it ([`chart_path`]); returns the chart's
/// path.
pub fn write_report(report: &Report, markdown: &Path) -> Result<PathBuf, WriteError> {
    let svg_path = chart_path(markdown);
    let svg = chart::render(report)?;
    let link = svg_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = markdown::render(report, Some(&link));
    std::fs::write(&svg_path, svg).map_err(|source| WriteError::Io {
        path: svg_path.clone(),
        source,
    })?;
    std::fs::write(markdown, text).map_err(|source| WriteError::Io {
        path: markdown.to_path_buf(),
        source,
    })?;
    Ok(svg_path)
}
