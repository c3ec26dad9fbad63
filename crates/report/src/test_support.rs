//! Small studies for the unit tests of data and chart.

use std::collections::BTreeMap;

use hpo_core::distribution::{Distribution, ParamValue};
use hpo_core::study::Direction;
use hpo_core::trial::{AttrValue, FrozenTrial, MetricPoint, Timestamp, TrialId, TrialState, attr};

use crate::StudyRecord;

/// A trial with dropout, lr and norm, a value, best-step metrics and a 4-epoch curve.
pub fn trial(number: u64, state: TrialState, dropout: f64, value: f64) -> FrozenTrial {
    let mut t = FrozenTrial::new(TrialId(number as i64 + 100), number, state);
    let lr = 1e-3 * (1.0 + number as f64);
    let norm = if number.is_multiple_of(2) { "batch" } else { "none" };
    for (name, v, d) in [
        (
            "dropout",
            ParamValue::Float(dropout),
            Distribution::Float { low: 0.0, high: 0.5, log: false, step: None },
        ),
        (
            "lr",
            ParamValue::Float(lr),
            Distribution::Float { low: 1e-4, high: 1e-1, log: true, step: None },
        ),
        (
            "norm",
            ParamValue::Str(norm.into()),
            Distribution::Categorical {
                choices: vec![ParamValue::Str("none".into()), ParamValue::Str("batch".into())],
            },
        ),
    ] {
        t.params.insert(name.into(), v);
        t.distributions.insert(name.into(), d);
    }
    for step in 1..=4 {
        t.intermediate_values.insert(step, value + (4 - step) as f64 * 0.1);
    }
    if state == TrialState::Complete {
        t.value = Some(value);
        for (k, v) in [
            ("best_step", 4.0),
            ("train_loss", value - 0.5 + dropout),
            ("val_loss", value),
            ("train_accuracy", 0.99),
            ("val_accuracy", 0.9),
            ("test_accuracy", 0.89),
        ] {
            t.user_attrs.insert(k.into(), AttrValue::Number(v));
        }
        t.system_attrs.insert(attr::ENDED_BY.into(), AttrValue::Str("early_stopping".into()));
    }
    t.system_attrs.insert(attr::OWNER.into(), AttrValue::Str(format!("box:{}:7", 40 + number % 2)));
    t.system_attrs.insert(attr::DEVICE.into(), AttrValue::Str("cpu".into()));
    t.datetime_start = Some(Timestamp(number as i64 * 2_000_000));
    t.datetime_complete = Some(Timestamp(number as i64 * 2_000_000 + 1_500_000));
    t
}

pub fn record(trials: Vec<FrozenTrial>) -> StudyRecord {
    let mut curves = BTreeMap::new();
    for t in &trials {
        let mut points = Vec::new();
        for step in 1..=4u64 {
            let s = step as f64;
            for (name, v) in [("train_loss", 2.0 / s), ("val_loss", 1.0 + 1.0 / s), ("lr", 0.1)] {
                points.push(MetricPoint { step, name: name.into(), value: v });
            }
        }
        curves.insert(t.id, points);
    }
    StudyRecord {
        name: "toy".into(),
        direction: Direction::Minimize,
        metric: "val_loss".into(),
        objectives: vec![("val_loss".into(), Direction::Minimize)],
        setup: vec![],
        spec_text: None,
        trials,
        curves,
        study_attrs: vec![],
        trend: None,
    }
}

pub fn toy() -> StudyRecord {
    record(vec![
        trial(0, TrialState::Complete, 0.1, 0.9),
        trial(1, TrialState::Complete, 0.3, 0.5),
        trial(2, TrialState::Pruned, 0.2, 0.0),
        trial(3, TrialState::Complete, 0.4, 0.7),
        trial(4, TrialState::Fail, 0.0, 0.0),
        trial(5, TrialState::Complete, 0.25, 0.5),
    ])
}

/// A Complete confirm run of trial `of`.
pub fn confirm_run(number: u64, of: u64, value: f64) -> FrozenTrial {
    let mut t = trial(number, TrialState::Complete, 0.3, value);
    t.system_attrs.insert(attr::CONFIRM_OF.into(), AttrValue::Number(of as f64));
    t
}
