//! Text formatting shared by the commands: numbers, parameters, tables, times.

use hpo_core::space::Params;
use hpo_core::trial::Timestamp;

pub use hpo_core::display::{short, value};

/// `lr=0.0031 hidden=64 act="relu"`.
pub fn params(params: &Params) -> String {
    params
        .iter()
        .map(|(name, v)| format!("{name}={}", hpo_core::display::param(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `2026-11-28 03:40:12` (UTC).
pub fn time(ts: Option<Timestamp>) -> String {
    ts.map_or_else(|| "-".to_owned(), |ts| hpo_store::encode::datetime(ts)[..19].to_owned())
}

/// Left-aligned columns separated by two spaces; numbers right-aligned.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (idx, cell) in row.iter().enumerate().take(n) {
            widths[idx] = widths[idx].max(cell.chars().count());
        }
    }
    let numeric = |idx: usize| {
        rows.iter().all(|r| r.get(idx).is_none_or(|c| c == "-" || c.parse::<f64>().is_ok()))
    };
    let render = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(idx, c)| {
                let pad = widths[idx].saturating_sub(c.chars().count());
                if numeric(idx) && idx + 1 < n {
                    format!("{}{c}", " ".repeat(pad))
                } else if idx + 1 < n {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    c.clone()
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = render(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push('\n');
        out.push_str(&render(row.clone()));
    }
    out
}
