//! A program's metric lines: `{"step": 3, "val_loss": 0.31}` (JSON) or
//! `step=3 val_loss=0.31` (`name=value` pairs, Katib's format). A line that is
//! neither is output, not an error: it goes to the trial's log.

use hpo_core::spec::command::MetricsFormat;

/// One reported step: its number (when the line gives it) and its metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// `step`, when the line has one.
    pub step: Option<u64>,
    /// Every other number on the line, by name.
    pub metrics: Vec<(String, f64)>,
}

/// The metrics of `line`, or `None` when it holds none in `format`.
pub fn parse(line: &str, format: MetricsFormat) -> Option<Line> {
    match format {
        MetricsFormat::Json => parse_json(line),
        MetricsFormat::KeyValue => parse_key_value(line),
    }
}

fn parse_json(line: &str) -> Option<Line> {
    let line = line.trim();
    if !line.starts_with('{') {
        return None;
    }
    let serde_json::Value::Object(object) = serde_json::from_str(line).ok()? else { return None };
    let mut out = Line { step: None, metrics: Vec::new() };
    for (key, value) in object {
        if key == "step" {
            out.step = value.as_u64();
            continue;
        }
        // A number, or a non-finite one spelled as a string ("NaN", "inf").
        let number = value.as_f64().or_else(|| value.as_str()?.trim().parse::<f64>().ok());
        if let Some(number) = number {
            out.metrics.push((key, number));
        }
    }
    (!out.metrics.is_empty()).then_some(out)
}

fn parse_key_value(line: &str) -> Option<Line> {
    let mut out = Line { step: None, metrics: Vec::new() };
    for pair in line.split([' ', ',', '\t']).filter(|it| !it.is_empty()) {
        let (key, value) = pair.split_once('=')?;
        let key = key.trim();
        if key.is_empty() {
            return None;
        }
        if key == "step" {
            out.step = Some(value.trim().parse().ok()?);
        } else {
            out.metrics.push((key.to_owned(), value.trim().parse().ok()?));
        }
    }
    (!out.metrics.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_and_key_value_lines() {
        let line = parse(
            r#"{"step": 3, "val_loss": 0.31, "train_loss": 0.2, "note": "x"}"#,
            MetricsFormat::Json,
        )
        .unwrap();
        assert_eq!(line.step, Some(3));
        assert_eq!(
            line.metrics,
            vec![("train_loss".to_owned(), 0.2), ("val_loss".to_owned(), 0.31)]
        );
        assert!(parse_json(r#"{"val_loss": "NaN"}"#).unwrap().metrics[0].1.is_nan());
        assert_eq!(parse("epoch 3 done", MetricsFormat::Json), None);
        assert_eq!(parse("{not json", MetricsFormat::Json), None);
        let line = parse("step=2 accuracy=0.9,loss=0.3", MetricsFormat::KeyValue).unwrap();
        assert_eq!(line.step, Some(2));
        assert_eq!(line.metrics.len(), 2);
        assert_eq!(parse("accuracy=0.9", MetricsFormat::KeyValue).unwrap().step, None);
        assert_eq!(parse("loading data...", MetricsFormat::KeyValue), None);
        assert_eq!(parse("a=b", MetricsFormat::KeyValue), None);
        assert_eq!(parse("step=-1 loss=0.3", MetricsFormat::KeyValue), None);
    }
}
