//! How numbers and parameter values are written for people: the CLI's tables and
//! the report's pages use the same spelling, so a value reads the same everywhere.

use crate::distribution::ParamValue;

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

/// A parameter value with 4 significant digits.
pub fn short(it: f64) -> String {
    if it == 0.0 || it.is_nan() || it.is_infinite() {
        return it.to_string();
    }
    let digits = (4 - 1 - it.abs().log10().floor() as i32).max(0) as usize;
    if it.abs() < 1e-3 { format!("{it:.3e}") } else { format!("{it:.digits$}") }
}

/// A parameter value as a study file would write it: floats with 4 significant
/// digits, strings quoted.
pub fn param(it: &ParamValue) -> String {
    match it {
        ParamValue::Float(f) => short(*f),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spells_values_and_params() {
        assert_eq!(value(0.123456), "0.1235");
        assert_eq!(value(3.0), "3");
        assert_eq!(value(1.5e-5), "1.5000e-5");
        assert_eq!(short(0.0031416), "0.003142");
        assert_eq!(short(3.1416e-4), "3.142e-4");
        assert_eq!(short(12.3456), "12.35");
        assert_eq!(param(&ParamValue::Str("relu".into())), "\"relu\"");
        assert_eq!(param(&ParamValue::Int(64)), "64");
    }
}
