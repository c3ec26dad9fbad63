//! Text formatting shared by the commands: numbers, parameters, tables, times.

use hpo_core::space::Params;
use hpo_core::trial::Timestamp;

/// A metric value: 4 significant decimals for ordinary magnitudes.
pub fn value(it: f64) -> String {
    if it.is_nan() || it.is_infinite() {
        return it.to_string();
    }
    let abs = it.abs();
    if it.fract() == 0.0 && abs < 1e9 {
        return format!("{it:.0}");
    }
    if abs != 0.0 && !(1e-3..1e5).contains(&abs) { format!("{it:.4e}") } else { format!("{it:.4}") }
}

/// `lr=0.0031 hidden=64 act="relu"`.
pub fn params(params: &Params) -> String {
    params
        .iter()
        .map(|(name, v)| match v.as_f64() {
            Some(f) if matches!(v, hpo_core::distribution::ParamValue::Float(_)) => {
                format!("{name}={}", short(f))
            }
            _ => format!("{name}={v}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A parameter value with 4 significant digits.
pub fn short(it: f64) -> String {
    if it == 0.0 || it.is_nan() || it.is_infinite() {
        return it.to_string();
    }
    let digits = (4 - 1 - it.abs().log10().floor() as i32).max(0) as usize;
    if it.abs() < 1e-3 { format!("{it:.3e}") } else { format!("{it:.digits$}") }
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
