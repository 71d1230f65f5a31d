//! Plain-text tables the way kubectl prints them: left-aligned columns, three spaces apart.

/// Renders rows (the first is the header) as aligned columns; the last column is not padded.
pub fn render(rows: &[Vec<String>], indent: &str) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::from(indent);
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < row.len() {
                let pad = widths[c].saturating_sub(cell.chars().count()) + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A duration since (or until) something, the way kubectl's AGE column writes it: `45s`,
/// `12m`, `3h20m`, `5d4h`, `90d`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    match () {
        () if s < 60 => format!("{s}s"),
        () if s < 3600 => format!("{m}m"),
        () if d == 0 && m > 0 && h < 10 => format!("{h}h{m}m"),
        () if d == 0 => format!("{h}h"),
        () if d < 8 && h > 0 => format!("{d}d{h}h"),
        () => format!("{d}d"),
    }
}
