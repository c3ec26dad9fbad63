//! The hyperparameters of a candle objective: names, types, defaults, ranges.
//!
//! A study searches some of them (`[space]`), fixes others (`[objective.fixed]`),
//! and leaves the rest at their defaults. A name the model doesn't have is an
//! error at load time, not a silently ignored typo.

use hpo_core::distribution::{Distribution, ParamValue};
use hpo_core::space::Params;
use hpo_core::spec::{CandleSpec, StudySpec};

/// One hyperparameter of the MLP objective.
struct Knob {
    name: &'static str,
    kind: Kind,
    help: &'static str,
}

#[derive(Clone, Copy)]
enum Kind {
    /// A float in [min, max].
    Float { min: f64, max: f64, default: f64 },
    /// An int in [min, max].
    Int { min: i64, max: i64, default: i64 },
    /// One of the listed strings.
    Choice { choices: &'static [&'static str], default: &'static str },
}

const MLP: &[Knob] = &[
    Knob {
        name: "lr",
        kind: Kind::Float { min: 1e-7, max: 10.0, default: 1e-3 },
        help: "AdamW learning rate",
    },
    Knob {
        name: "weight_decay",
        kind: Kind::Float { min: 0.0, max: 10.0, default: 0.0 },
        help: "AdamW decoupled weight decay",
    },
    Knob {
        name: "dropout",
        kind: Kind::Float { min: 0.0, max: 0.95, default: 0.0 },
        help: "dropout after each hidden layer",
    },
    Knob {
        name: "hidden",
        kind: Kind::Int { min: 1, max: 65_536, default: 128 },
        help: "width of each hidden layer",
    },
    Knob {
        name: "depth",
        kind: Kind::Int { min: 0, max: 16, default: 2 },
        help: "number of hidden layers",
    },
    Knob {
        name: "batch_size",
        kind: Kind::Int { min: 1, max: 65_536, default: 64 },
        help: "minibatch size",
    },
    Knob {
        name: "activation",
        kind: Kind::Choice { choices: &["relu", "tanh", "gelu", "silu"], default: "relu" },
        help: "hidden activation",
    },
];

/// The resolved hyperparameters of one MLP trial.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpHyper {
    pub lr: f64,
    pub weight_decay: f64,
    pub dropout: f64,
    pub hidden: usize,
    pub depth: usize,
    pub batch_size: usize,
    pub activation: String,
}

/// The names a model accepts, for error messages and docs.
pub fn known_names() -> Vec<&'static str> {
    MLP.iter().map(|k| k.name).collect()
}

/// Checks every searched and fixed name and domain against the model. Returns the
/// error of the first offender, located in the study file.
pub fn check(spec: &StudySpec, candle: &CandleSpec) -> Result<(), hpo_core::spec::SpecError> {
    let find = |name: &str| MLP.iter().find(|k| k.name == name);
    let unknown = |name: &str| {
        format!(
            "the {} model has no hyperparameter `{name}`; it has: {}",
            candle.model,
            MLP.iter().map(|k| format!("{} ({})", k.name, k.help)).collect::<Vec<_>>().join(", ")
        )
    };
    for param in &spec.space.params {
        let key = format!("space.{}", param.name);
        let Some(knob) = find(&param.name) else {
            return Err(spec.error_at(&key, unknown(&param.name)));
        };
        let values: Vec<ParamValue> = match &param.distribution {
            Distribution::Float { low, high, .. } => {
                vec![ParamValue::Float(*low), ParamValue::Float(*high)]
            }
            Distribution::Int { low, high, .. } => {
                vec![ParamValue::Int(*low), ParamValue::Int(*high)]
            }
            Distribution::Categorical { choices } => choices.clone(),
        };
        for value in values {
            check_value(knob, &value).map_err(|msg| spec.error_at(&key, msg))?;
        }
    }
    for (name, value) in &candle.fixed {
        let key = format!("objective.fixed.{name}");
        let Some(knob) = find(name) else { return Err(spec.error_at(&key, unknown(name))) };
        check_value(knob, value).map_err(|msg| spec.error_at(&key, msg))?;
    }
    Ok(())
}

fn check_value(knob: &Knob, value: &ParamValue) -> Result<(), String> {
    match knob.kind {
        Kind::Float { min, max, .. } => match value.as_f64() {
            Some(v) if (min..=max).contains(&v) => Ok(()),
            _ => Err(format!(
                "`{}` ({}) takes numbers in [{min}, {max}], got {value}",
                knob.name, knob.help
            )),
        },
        Kind::Int { min, max, .. } => match value {
            ParamValue::Int(v) if (min..=max).contains(v) => Ok(()),
            _ => Err(format!(
                "`{}` ({}) takes whole numbers in [{min}, {max}], got {value}",
                knob.name, knob.help
            )),
        },
        Kind::Choice { choices, .. } => match value.as_str() {
            Some(v) if choices.contains(&v) => Ok(()),
            _ => Err(format!(
                "`{}` ({}) is one of {}, got {value}",
                knob.name,
                knob.help,
                choices.join(", ")
            )),
        },
    }
}

/// Resolves a trial's hyperparameters: searched, then fixed, then defaults.
/// `check` has validated names and domains.
pub fn resolve(params: &Params, fixed: &Params) -> MlpHyper {
    let get = |name: &str| -> ParamValue {
        let knob = MLP.iter().find(|k| k.name == name).expect("a known knob");
        params.get(name).or_else(|| fixed.get(name)).cloned().unwrap_or(match knob.kind {
            Kind::Float { default, .. } => ParamValue::Float(default),
            Kind::Int { default, .. } => ParamValue::Int(default),
            Kind::Choice { default, .. } => ParamValue::Str(default.to_owned()),
        })
    };
    let float = |name: &str| get(name).as_f64().unwrap_or(0.0);
    let int = |name: &str| get(name).as_i64().unwrap_or(1).max(0) as usize;
    MlpHyper {
        lr: float("lr"),
        weight_decay: float("weight_decay"),
        dropout: float("dropout"),
        hidden: int("hidden").max(1),
        depth: int("depth"),
        batch_size: int("batch_size").max(1),
        activation: get("activation").as_str().unwrap_or("relu").to_owned(),
    }
}
