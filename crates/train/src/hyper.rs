//! The hyperparameters of the candle objectives: names, types, defaults, ranges.
//!
//! Every knob can be searched (`[space]`), fixed (`[objective.fixed]`) or left at
//! its default. A name the model doesn't have, or a value outside a knob's range, is
//! an error located in the study file at load time, not a silently ignored typo.

use hpo_core::distribution::{Distribution, ParamValue};
use hpo_core::space::Params;
use hpo_core::spec::{Compression, SpecError, StudySpec, TrainingSpec};

/// One hyperparameter.
pub struct Knob {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

/// A knob's type, range and default.
#[derive(Clone, Copy)]
pub enum Kind {
    Float { min: f64, max: f64, default: f64 },
    Int { min: i64, max: i64, default: i64 },
    Bool { default: bool },
    Choice { choices: &'static [&'static str], default: &'static str },
}

const fn float(name: &'static str, min: f64, max: f64, default: f64, help: &'static str) -> Knob {
    Knob { name, kind: Kind::Float { min, max, default }, help }
}
const fn int(name: &'static str, min: i64, max: i64, default: i64, help: &'static str) -> Knob {
    Knob { name, kind: Kind::Int { min, max, default }, help }
}
const fn choice(
    name: &'static str,
    choices: &'static [&'static str],
    default: &'static str,
    help: &'static str,
) -> Knob {
    Knob { name, kind: Kind::Choice { choices, default }, help }
}
const fn boolean(name: &'static str, default: bool, help: &'static str) -> Knob {
    Knob { name, kind: Kind::Bool { default }, help }
}

/// Optimization and regularization knobs every model has.
pub const TRAINING: &[Knob] = &[
    float("lr", 1e-7, 10.0, 1e-3, "peak learning rate"),
    choice("optimizer", &["adamw", "sgd"], "adamw", "optimizer"),
    float("momentum", 0.0, 0.999, 0.9, "SGD momentum"),
    boolean("nesterov", false, "SGD with Nesterov momentum"),
    float(
        "weight_decay",
        0.0,
        10.0,
        0.0,
        "decoupled weight decay (AdamW / SGDW) on weights, not biases or norms",
    ),
    float("l2", 0.0, 10.0, 0.0, "coupled L2 penalty l2/2 * sum(w^2) added to the loss, on weights"),
    float("label_smoothing", 0.0, 0.5, 0.0, "label smoothing of the cross-entropy"),
    float("grad_clip", 0.0, 1e6, 0.0, "clip the global gradient norm to this (0 = off)"),
    choice(
        "precision",
        &["f32", "bf16"],
        "f32",
        "number format of matrix products: bf16 autocast keeps f32 weights, gradients and optimizer state",
    ),
    choice(
        "schedule",
        &["constant", "cosine", "step"],
        "constant",
        "learning-rate schedule over max_epochs",
    ),
    float("warmup_epochs", 0.0, 1e4, 0.0, "linear warmup from 0 to lr over this many epochs"),
    int("step_size", 1, 100_000, 10, "step schedule: epochs between decays"),
    float("step_gamma", 0.0, 1.0, 0.1, "step schedule: factor of each decay"),
    float("dropout", 0.0, 0.95, 0.0, "dropout rate"),
    float(
        "train_fraction",
        0.001,
        1.0,
        1.0,
        "fraction of the training split used (to study overfitting on less data)",
    ),
];

/// Knobs of the classification models.
pub const CLASSIFICATION: &[Knob] = &[
    int("batch_size", 1, 65_536, 64, "minibatch size"),
    choice("activation", &["relu", "tanh", "gelu", "silu"], "relu", "hidden activation"),
    choice(
        "augment",
        &["none", "shift", "flip", "shift_flip"],
        "none",
        "image augmentation: random shifts and/or horizontal flips",
    ),
];

pub const MLP: &[Knob] = &[
    int("hidden", 1, 65_536, 128, "width of each hidden layer"),
    int("depth", 0, 16, 2, "number of hidden layers"),
    choice("norm", &["none", "batch", "layer"], "none", "normalization after each hidden layer"),
];

/// Knobs of the compressed variants (`[compress]`), for the models that have them.
pub const COMPRESSION: &[Knob] = &[
    float(
        "sparsity",
        0.0,
        0.999,
        0.8,
        "pruned variant: fraction of linear weights dropped, smallest first",
    ),
    int(
        "rank",
        0,
        65_536,
        0,
        "low_rank variant: rank of each factorized layer (0: by rank_energy)",
    ),
    float(
        "rank_energy",
        0.01,
        1.0,
        0.9,
        "low_rank variant: fraction of each layer's energy (squared singular values) kept",
    ),
    float(
        "distill_weight",
        0.0,
        1.0,
        0.5,
        "distillation: weight of the labels' loss; the teacher's soft targets weigh the rest",
    ),
    float(
        "distill_temperature",
        0.5,
        20.0,
        4.0,
        "distillation: softmax temperature of the soft targets",
    ),
];

/// The compressed variant each compression knob shapes.
fn variant_of(knob: &str) -> Option<Compression> {
    match knob {
        "sparsity" => Some(Compression::Pruned),
        "rank" | "rank_energy" => Some(Compression::LowRank),
        _ => None,
    }
}

pub const CNN: &[Knob] = &[
    int("blocks", 1, 4, 2, "conv blocks (3x3 conv, activation, 2x2 max pool)"),
    int("channels", 1, 1024, 16, "channels of the first block, doubling per block"),
    int("hidden", 1, 65_536, 128, "width of the dense head"),
    boolean("batch_norm", false, "batch norm after each conv"),
];

pub const TRANSFORMER: &[Knob] = &[
    int("batch_size", 1, 65_536, 32, "sequences per batch"),
    int("context", 2, 4096, 64, "context length in characters"),
    int("d_model", 8, 8192, 128, "model width"),
    int("heads", 1, 64, 4, "attention heads (must divide d_model)"),
    int("layers", 1, 48, 2, "transformer blocks"),
    boolean("tie_weights", true, "tie the output head to the token embedding"),
    int("steps_per_epoch", 1, 1_000_000, 200, "optimizer steps per epoch"),
    int("eval_batches", 1, 100_000, 16, "batches of fixed windows measured per split each epoch"),
];

/// The knob tables of a model, or `None` for an unknown model.
pub fn knobs(model: &str) -> Option<Vec<&'static Knob>> {
    let specific: &[Knob] = match model {
        "mlp" => MLP,
        "cnn" => CNN,
        "transformer" => TRANSFORMER,
        _ => return None,
    };
    let shared: &[Knob] = if model == "transformer" { &[] } else { CLASSIFICATION };
    let compression: &[Knob] = if model == "mlp" { COMPRESSION } else { &[] };
    Some(specific.iter().chain(shared).chain(TRAINING).chain(compression).collect())
}

/// Checks every searched and fixed name and domain against the model. Returns the
/// first offender's error, located in the study file.
pub fn check(spec: &StudySpec, candle: &TrainingSpec) -> Result<(), SpecError> {
    let Some(knobs) = knobs(&candle.model) else {
        return Err(spec.error_at(
            "objective.model",
            format!("unknown model `{}`; available: mlp, cnn, transformer", candle.model),
        ));
    };
    if (!candle.compress.is_empty() || candle.teacher.is_some()) && candle.model != "mlp" {
        return Err(spec.error_at(
            "compress.variants",
            format!(
                "compressed variants and distilled students are mlp models for now, and this study trains the {} model; remove [compress]",
                candle.model
            ),
        ));
    }
    let named = spec.space.params.iter().map(|p| (p.name.as_str(), "space"));
    let fixed = candle.fixed.keys().map(|name| (name.as_str(), "objective.fixed"));
    for (name, section) in named.chain(fixed) {
        if name.starts_with("distill_") && candle.teacher.is_none() {
            return Err(spec.error_at(
                &format!("{section}.{name}"),
                format!(
                    "`{name}` shapes distillation, and this study has no teacher; add `[compress] teacher = \"study\"` (a study whose best model is kept)"
                ),
            ));
        }
        if let Some(variant) = variant_of(name)
            && !candle.compress.contains(&variant)
        {
            return Err(spec.error_at(
                &format!("{section}.{name}"),
                format!(
                    "`{name}` shapes the {} variant, which [compress] does not make; add it: `[compress] variants = [\"{}\"]`",
                    variant.name(),
                    variant.name()
                ),
            ));
        }
    }
    let find = |name: &str| knobs.iter().find(|k| k.name == name).copied();
    let unknown = |name: &str| {
        format!(
            "the {} model has no hyperparameter `{name}`; it has: {}",
            candle.model,
            knobs.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
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
    check_metrics(spec, candle)
}

/// Refuses a study metric (or early-stopping monitor) that the model never
/// reports: every trial would fail for want of it.
fn check_metrics(spec: &StudySpec, candle: &TrainingSpec) -> Result<(), SpecError> {
    let reported = crate::trainer::metric_names(&candle.model);
    let variants = crate::trainer::variant_metric_names(&candle.compress);
    let objectives = spec.metrics[1..].iter().map(|m| ("study.metrics", m));
    let bounded = spec.constraints.iter().map(|c| ("study.constraints", &c.metric));
    for (key, other) in objectives.chain(bounded) {
        let known = reported.contains(&other.as_str())
            || crate::trainer::MEASURED_AT_END.contains(&other.as_str())
            || variants.contains(other);
        if !known {
            let test = if other.starts_with("test_") || other.contains("_test_") {
                "test metrics never feed selection (the test split stays unseen until the end); "
            } else {
                ""
            };
            return Err(spec.error_at(
                key,
                format!(
                    "the {} model never reports `{other}`; {test}the objectives after the first, and constraints, may be any of its metrics per epoch ({}) or of what is measured at the end ({}{})",
                    candle.model,
                    reported.join(", "),
                    crate::trainer::MEASURED_AT_END.join(", "),
                    if variants.is_empty() { String::new() } else { format!(", {}", variants.join(", ")) }
                ),
            ));
        }
    }
    let mut watched = vec![("study.metric", "metric", spec.metric.as_str())];
    if let Some(early) = &spec.early_stopping {
        watched.push(("early_stopping.monitor", "monitor", early.monitor.as_str()));
    }
    for (key, what, name) in watched {
        if !reported.contains(&name) {
            return Err(spec.error_at(
                key,
                format!(
                    "the {} model never reports `{name}`, so no trial could be scored; set `{what}` to one of the metrics it reports: {}",
                    candle.model,
                    reported.join(", ")
                ),
            ));
        }
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
        Kind::Bool { .. } => match value {
            ParamValue::Bool(_) => Ok(()),
            _ => Err(format!("`{}` ({}) is true or false, got {value}", knob.name, knob.help)),
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

/// A trial's resolved hyperparameters: searched, then fixed, then defaults.
pub struct Resolved<'a> {
    knobs: Vec<&'static Knob>,
    params: &'a Params,
    fixed: &'a Params,
}

impl<'a> Resolved<'a> {
    /// The hyperparameters of `model` (checked by `check`) for one trial.
    pub fn new(model: &str, params: &'a Params, fixed: &'a Params) -> Resolved<'a> {
        Resolved { knobs: knobs(model).unwrap_or_default(), params, fixed }
    }

    fn value(&self, name: &str) -> ParamValue {
        if let Some(it) = self.params.get(name).or_else(|| self.fixed.get(name)) {
            return it.clone();
        }
        // The model's own tables first: `batch_size` defaults differ between models.
        let knob = self.knobs.iter().find(|k| k.name == name);
        match knob.map(|k| k.kind) {
            Some(Kind::Float { default, .. }) => ParamValue::Float(default),
            Some(Kind::Int { default, .. }) => ParamValue::Int(default),
            Some(Kind::Bool { default }) => ParamValue::Bool(default),
            Some(Kind::Choice { default, .. }) => ParamValue::Str(default.to_owned()),
            None => ParamValue::Null,
        }
    }

    pub fn float(&self, name: &str) -> f64 {
        self.value(name).as_f64().unwrap_or(0.0)
    }

    pub fn usize(&self, name: &str) -> usize {
        self.value(name).as_i64().unwrap_or(0).max(0) as usize
    }

    pub fn bool(&self, name: &str) -> bool {
        self.value(name).as_bool().unwrap_or(false)
    }

    pub fn string(&self, name: &str) -> String {
        self.value(name).as_str().unwrap_or_default().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_models_own_tables() {
        let empty = Params::new();
        assert_eq!(Resolved::new("mlp", &empty, &empty).usize("batch_size"), 64);
        assert_eq!(Resolved::new("cnn", &empty, &empty).usize("batch_size"), 64);
        assert_eq!(Resolved::new("transformer", &empty, &empty).usize("batch_size"), 32);
        let fixed = Params::from([("batch_size".to_owned(), ParamValue::Int(16))]);
        let searched = Params::from([("batch_size".to_owned(), ParamValue::Int(8))]);
        assert_eq!(Resolved::new("mlp", &empty, &fixed).usize("batch_size"), 16);
        assert_eq!(Resolved::new("mlp", &searched, &fixed).usize("batch_size"), 8, "searched wins");
    }
}
