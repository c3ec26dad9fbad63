//! How values are written in Optuna's schema: distributions as Optuna's JSON,
//! attribute values as JSON, values with their `value_type` (FINITE, INF_POS,
//! INF_NEG, NAN), and datetimes as SQLAlchemy writes them on SQLite
//! (`YYYY-MM-DD HH:MM:SS.ffffff`, UTC here).

use hpo_core::distribution::{Distribution, ParamValue};
use hpo_core::trial::{AttrValue, Timestamp};
use serde_json::{Value, json};

use crate::Error;

/// Optuna's JSON for a distribution (`{"name": "FloatDistribution", "attributes":
/// {...}}`), as stored in `trial_params.distribution_json`.
pub fn distribution_json(distribution: &Distribution) -> String {
    let it = match distribution {
        Distribution::Float { low, high, log, step } => json!({
            "name": "FloatDistribution",
            "attributes": { "step": step, "low": low, "high": high, "log": log },
        }),
        Distribution::Int { low, high, log, step } => json!({
            "name": "IntDistribution",
            "attributes": { "log": log, "step": step, "low": low, "high": high },
        }),
        Distribution::Categorical { choices } => json!({
            "name": "CategoricalDistribution",
            "attributes": { "choices": choices.iter().map(param_json).collect::<Vec<_>>() },
        }),
    };
    it.to_string()
}

fn param_json(value: &ParamValue) -> Value {
    match value {
        ParamValue::Null => Value::Null,
        ParamValue::Bool(it) => json!(it),
        ParamValue::Int(it) => json!(it),
        ParamValue::Float(it) => json!(it),
        ParamValue::Str(it) => json!(it),
    }
}

fn json_param(value: &Value) -> Result<ParamValue, Error> {
    Ok(match value {
        Value::Null => ParamValue::Null,
        Value::Bool(it) => ParamValue::Bool(*it),
        Value::Number(it) => match it.as_i64() {
            Some(int) => ParamValue::Int(int),
            None => ParamValue::Float(it.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(it) => ParamValue::Str(it.clone()),
        other => return Err(Error::Corrupt(format!("categorical choice {other} is not a scalar"))),
    })
}

/// Parses Optuna's distribution JSON, including the names Optuna used before 3.0.
pub fn parse_distribution_json(text: &str) -> Result<Distribution, Error> {
    let corrupt = || Error::Corrupt(format!("distribution `{text}`"));
    let value: Value = serde_json::from_str(text).map_err(|_| corrupt())?;
    let name = value["name"].as_str().ok_or_else(corrupt)?;
    let attrs = &value["attributes"];
    let f = |key: &str| attrs[key].as_f64().ok_or_else(corrupt);
    let i = |key: &str| attrs[key].as_i64().ok_or_else(corrupt);
    Ok(match name {
        "FloatDistribution" => Distribution::Float {
            low: f("low")?,
            high: f("high")?,
            log: attrs["log"].as_bool().unwrap_or(false),
            step: attrs["step"].as_f64(),
        },
        "UniformDistribution" => {
            Distribution::Float { low: f("low")?, high: f("high")?, log: false, step: None }
        }
        "LogUniformDistribution" => {
            Distribution::Float { low: f("low")?, high: f("high")?, log: true, step: None }
        }
        "DiscreteUniformDistribution" => Distribution::Float {
            low: f("low")?,
            high: f("high")?,
            log: false,
            step: Some(f("q")?),
        },
        "IntDistribution" => Distribution::Int {
            low: i("low")?,
            high: i("high")?,
            log: attrs["log"].as_bool().unwrap_or(false),
            step: attrs["step"].as_i64().unwrap_or(1),
        },
        "IntUniformDistribution" => Distribution::Int {
            low: i("low")?,
            high: i("high")?,
            log: false,
            step: attrs["step"].as_i64().unwrap_or(1),
        },
        "IntLogUniformDistribution" => {
            Distribution::Int { low: i("low")?, high: i("high")?, log: true, step: 1 }
        }
        "CategoricalDistribution" => Distribution::Categorical {
            choices: attrs["choices"]
                .as_array()
                .ok_or_else(corrupt)?
                .iter()
                .map(json_param)
                .collect::<Result<_, _>>()?,
        },
        _ => return Err(corrupt()),
    })
}

/// An attribute value as JSON; NaN and the infinities are written bare, as Python's
/// json writes them.
pub fn attr_json(value: &AttrValue) -> String {
    match value {
        AttrValue::Null => "null".to_owned(),
        AttrValue::Bool(it) => it.to_string(),
        // JSON has no NaN or infinities; Python's json writes them bare, and so do we,
        // so Optuna reads them back as floats.
        AttrValue::Number(it) if it.is_nan() => "NaN".to_owned(),
        AttrValue::Number(it) if it.is_infinite() => {
            if *it > 0.0 {
                "Infinity".to_owned()
            } else {
                "-Infinity".to_owned()
            }
        }
        AttrValue::Number(it) => match whole_number(*it) {
            Some(int) => int.to_string(),
            None => json!(it).to_string(),
        },
        AttrValue::Str(it) => json!(it).to_string(),
        AttrValue::List(items) => {
            let items: Vec<String> =
                items.iter().map(|it| attr_json(&AttrValue::Number(*it))).collect();
            format!("[{}]", items.join(", "))
        }
    }
}

/// An attribute number that is whole (and exact in an f64): written as an integer
/// (`21`, not `21.0`), so Optuna and pandas read back an int, as for an attribute
/// Python set to an int.
pub fn whole_number(it: f64) -> Option<i64> {
    (it.fract() == 0.0 && it.abs() < 9_007_199_254_740_992.0).then_some(it as i64)
}

/// The numbers of a JSON list of numbers (`NaN` and `±Infinity` as Python writes
/// them); `None` for anything else.
fn number_list(text: &str) -> Option<Vec<f64>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?.trim();
    if inner.is_empty() {
        return None;
    }
    inner
        .split(',')
        .map(|it| match it.trim() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            other => other.parse::<f64>().ok().filter(|_| !other.contains(['"', '['])),
        })
        .collect()
}

/// Reads what `attr_json` (or Optuna) wrote. Never fails: lists of numbers come
/// back as lists; other JSON lists and objects, and text that is not JSON, as
/// strings.
pub fn parse_attr_json(text: &str) -> AttrValue {
    match text {
        "NaN" => return AttrValue::Number(f64::NAN),
        "Infinity" => return AttrValue::Number(f64::INFINITY),
        "-Infinity" => return AttrValue::Number(f64::NEG_INFINITY),
        _ => {}
    }
    if let Some(items) = number_list(text) {
        return AttrValue::List(items);
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Null) => AttrValue::Null,
        Ok(Value::Bool(it)) => AttrValue::Bool(it),
        Ok(Value::Number(it)) => AttrValue::Number(it.as_f64().unwrap_or(f64::NAN)),
        Ok(Value::String(it)) => AttrValue::Str(it),
        // Lists and objects (Optuna allows any JSON) are kept as their JSON text.
        Ok(other) => AttrValue::Str(other.to_string()),
        Err(_) => AttrValue::Str(text.to_owned()),
    }
}

/// The `study:metric_names` study system attribute: a JSON list of the metric
/// names, one per objective.
pub fn metric_names_json(metrics: &[String]) -> String {
    json!(metrics).to_string()
}

/// The names in a `study:metric_names` JSON list (empty when it holds none, as
/// Optuna's `null` for unnamed metrics).
pub fn metric_names(json: &str) -> Vec<String> {
    let Ok(Value::Array(names)) = serde_json::from_str::<Value>(json) else { return Vec::new() };
    names.iter().map_while(|it| it.as_str().map(str::to_owned)).collect()
}

/// A value and its Optuna `value_type`; non-finite values are stored as NULL.
pub fn encode_value(value: f64) -> (Option<f64>, &'static str) {
    if value.is_nan() {
        (None, "NAN")
    } else if value == f64::INFINITY {
        (None, "INF_POS")
    } else if value == f64::NEG_INFINITY {
        (None, "INF_NEG")
    } else {
        (Some(value), "FINITE")
    }
}

/// The value `encode_value` stored; [`Error::Corrupt`] for an unknown `value_type`,
/// or FINITE without a value.
pub fn decode_value(value: Option<f64>, kind: &str) -> Result<f64, Error> {
    match (kind, value) {
        ("FINITE", Some(it)) => Ok(it),
        ("INF_POS", _) => Ok(f64::INFINITY),
        ("INF_NEG", _) => Ok(f64::NEG_INFINITY),
        ("NAN", _) => Ok(f64::NAN),
        _ => Err(Error::Corrupt(format!("value {value:?} of type `{kind}`"))),
    }
}

/// `YYYY-MM-DD HH:MM:SS.ffffff`, UTC.
pub fn datetime(ts: Timestamp) -> String {
    let micros = ts.0.rem_euclid(1_000_000);
    let seconds = ts.0.div_euclid(1_000_000);
    let days = seconds.div_euclid(86_400);
    let secs_of_day = seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{micros:06}",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60
    )
}

/// Parses what `datetime` writes, with or without the fraction (and a `T`).
pub fn parse_datetime(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    let (date, time) = text.split_once([' ', 'T'])?;
    let mut date_parts = date.split('-').map(|it| it.parse::<i64>().ok());
    let (y, m, d) = (date_parts.next()??, date_parts.next()??, date_parts.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut time_parts = hms.split(':').map(|it| it.parse::<i64>().ok());
    let (hh, mm, ss) = (time_parts.next()??, time_parts.next()??, time_parts.next()??);
    let digits: String = fraction.chars().take_while(char::is_ascii_digit).take(6).collect();
    let micros = format!("{digits:0<6}").parse::<i64>().ok()?;
    let seconds = days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(Timestamp(seconds * 1_000_000 + micros))
}

/// `2026-11-27`, `2026-11-27T18:00` or `2026-11-27T18:00:00` (UTC) as the end of that
/// day, minute or second; `None` when `text` is no such date.
pub fn parse_until(text: &str) -> Option<Timestamp> {
    let numbers = |part: &str, sep: char| -> Option<Vec<i64>> {
        part.split(sep).map(|p| p.parse::<i64>().ok()).collect()
    };
    let (day, time) = match text.split_once(['T', ' ']) {
        Some((day, time)) => (day, Some(time)),
        None => (text, None),
    };
    match numbers(day, '-')?[..] {
        [_, month, dayn] if (1..=12).contains(&month) && (1..=31).contains(&dayn) => {}
        _ => return None,
    }
    let time = match time {
        None => "23:59:59".to_owned(),
        Some(time) => match numbers(time, ':')?[..] {
            [h, m] if h < 24 && m < 60 => format!("{time}:59"),
            [h, m, s] if h < 24 && m < 60 && s < 60 => time.to_owned(),
            _ => return None,
        },
    };
    parse_datetime(&format!("{day} {time}.999999"))
}

// Conversions between days since 1970-01-01 and proleptic Gregorian dates, by
// counting 400-year eras of 146097 days (the approach of H. Hinnant's "chrono-
// compatible low-level date algorithms").
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_round_trip_and_match_known_dates() {
        // 2026-11-28 02:30:25.456183 UTC = 1795833025.456183 s (python: datetime(...).timestamp()).
        let ts = parse_datetime("2026-11-28 02:30:25.456183").unwrap();
        assert_eq!(ts, Timestamp(1_795_833_025_456_183));
        assert_eq!(datetime(ts), "2026-11-28 02:30:25.456183");
        assert_eq!(datetime(Timestamp(0)), "1970-01-01 00:00:00.000000");
        assert_eq!(parse_datetime("2000-02-29 12:00:00"), Some(Timestamp(951_825_600_000_000)));
        assert_eq!(parse_datetime("not a date"), None);
    }

    #[test]
    fn optuna_distribution_json_round_trips() {
        // As Optuna 5.0 wrote them (see tests/optuna_interop.py).
        for text in [
            r#"{"name": "FloatDistribution", "attributes": {"step": null, "low": -1.0, "high": 1.0, "log": false}}"#,
            r#"{"name": "IntDistribution", "attributes": {"log": false, "step": 2, "low": 1, "high": 9}}"#,
            r#"{"name": "CategoricalDistribution", "attributes": {"choices": ["a", 1, true, null, 2.5]}}"#,
        ] {
            let parsed = parse_distribution_json(text).unwrap();
            assert_eq!(parse_distribution_json(&distribution_json(&parsed)).unwrap(), parsed);
        }
        let old = parse_distribution_json(
            r#"{"name": "LogUniformDistribution", "attributes": {"low": 0.001, "high": 1.0}}"#,
        );
        assert_eq!(
            old.unwrap(),
            Distribution::Float { low: 0.001, high: 1.0, log: true, step: None }
        );
        assert!(parse_distribution_json(r#"{"name": "Other", "attributes": {}}"#).is_err());
    }

    #[test]
    fn attrs_and_values() {
        for value in [
            AttrValue::Null,
            AttrValue::Bool(true),
            AttrValue::Number(0.25),
            AttrValue::Str("x\"y".into()),
        ] {
            assert_eq!(parse_attr_json(&attr_json(&value)), value);
        }
        assert_eq!(
            parse_attr_json(&attr_json(&AttrValue::Number(f64::INFINITY))),
            AttrValue::Number(f64::INFINITY)
        );
        // Lists of numbers are lists (Optuna's `constraints`); other JSON, its text.
        assert_eq!(parse_attr_json("[1, 2]"), AttrValue::List(vec![1.0, 2.0]));
        let list = AttrValue::List(vec![-0.5, f64::INFINITY]);
        assert_eq!(attr_json(&list), "[-0.5, Infinity]");
        assert_eq!(parse_attr_json(&attr_json(&list)), list);
        assert_eq!(parse_attr_json("[1, \"a\"]"), AttrValue::Str("[1,\"a\"]".into()));
        // Whole numbers stay integers for Optuna and pandas; others keep their digits.
        assert_eq!(attr_json(&AttrValue::Number(21.0)), "21");
        assert_eq!(attr_json(&AttrValue::Number(-3.0)), "-3");
        assert_eq!(attr_json(&AttrValue::Number(1e300)), "1e+300");
        assert_eq!(attr_json(&AttrValue::Number(0.5)), "0.5");
        assert_eq!(parse_attr_json("21"), AttrValue::Number(21.0));
        assert_eq!(encode_value(f64::NEG_INFINITY), (None, "INF_NEG"));
        assert!(decode_value(None, "NAN").unwrap().is_nan());
        assert!(decode_value(None, "FINITE").is_err());
    }
}
