//! Distributions: the domain of one parameter, and the values a trial gives it.
//!
//! The shapes follow Optuna's `FloatDistribution`, `IntDistribution` and
//! `CategoricalDistribution`, including the "internal representation": every value
//! is stored as one `f64` (a float as itself, an int as its value, a categorical as
//! the index of the choice). That is what lets an hpo database be read by Optuna.

use std::fmt;

/// A parameter's value as a trial holds it (Optuna's "external representation").
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// Only ever a categorical choice (Optuna allows `None` among choices).
    Null,
    /// A boolean categorical choice.
    Bool(bool),
    /// An int parameter's value, or an integer categorical choice.
    Int(i64),
    /// A float parameter's value, or a float categorical choice.
    Float(f64),
    /// A string categorical choice.
    Str(String),
}

impl ParamValue {
    /// The value as a number, for numeric distributions and for benchmark functions.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            ParamValue::Int(it) => Some(it as f64),
            ParamValue::Float(it) => Some(it),
            _ => None,
        }
    }

    /// The value as an integer: an `Int`, or a `Float` without a fractional part.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            ParamValue::Int(it) => Some(it),
            ParamValue::Float(it) if it.fract() == 0.0 => Some(it as i64),
            _ => None,
        }
    }

    /// The string, for a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ParamValue::Str(it) => Some(it),
            _ => None,
        }
    }

    /// The boolean, for a `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            ParamValue::Bool(it) => Some(it),
            _ => None,
        }
    }

    /// Equality that treats `1` and `1.0` as the same choice, as TOML authors expect.
    pub fn same_as(&self, other: &ParamValue) -> bool {
        match (self.as_f64(), other.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => self == other,
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Null => f.write_str("null"),
            ParamValue::Bool(it) => write!(f, "{it}"),
            ParamValue::Int(it) => write!(f, "{it}"),
            ParamValue::Float(it) => write!(f, "{it}"),
            ParamValue::Str(it) => write!(f, "\"{it}\""),
        }
    }
}

/// The domain of one parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    /// `low..=high`; `step` makes it discrete (`low + k * step`); `log` samples log-uniformly.
    Float {
        /// The lower bound, inclusive (positive when `log`).
        low: f64,
        /// The upper bound, inclusive; greater than `low`.
        high: f64,
        /// Whether values are drawn log-uniformly (never together with `step`).
        log: bool,
        /// The spacing of the allowed values, when discrete; `high - low` is a multiple of it.
        step: Option<f64>,
    },
    /// `low..=high` in steps of `step` (1 unless stated); `log` samples log-uniformly.
    Int {
        /// The lower bound, inclusive (positive when `log`).
        low: i64,
        /// The upper bound, inclusive; greater than `low`.
        high: i64,
        /// Whether values are drawn log-uniformly (then `step` is 1).
        log: bool,
        /// The spacing of the allowed values, at least 1; `high - low` is a multiple of it.
        step: i64,
    },
    /// One of `choices`, stored by index.
    Categorical {
        /// The distinct choices in declaration order; a choice's index is its internal
        /// representation, so the order must never change.
        choices: Vec<ParamValue>,
    },
}

impl Distribution {
    /// Optuna's internal representation of `value`, or `None` when the value is
    /// outside this distribution.
    pub fn to_internal(&self, value: &ParamValue) -> Option<f64> {
        match self {
            Distribution::Float { .. } | Distribution::Int { .. } => {
                let it = value.as_f64()?;
                self.contains_internal(it).then_some(it)
            }
            Distribution::Categorical { choices } => {
                choices.iter().position(|c| c.same_as(value)).map(|idx| idx as f64)
            }
        }
    }

    /// The value a trial sees for an internal representation.
    pub fn to_external(&self, internal: f64) -> Option<ParamValue> {
        match self {
            Distribution::Float { .. } => Some(ParamValue::Float(internal)),
            Distribution::Int { .. } => Some(ParamValue::Int(internal.round() as i64)),
            Distribution::Categorical { choices } => {
                if internal < 0.0 || internal.fract() != 0.0 {
                    return None;
                }
                choices.get(internal as usize).cloned()
            }
        }
    }

    /// Whether an internal value lies in the domain (with a small tolerance for steps).
    pub fn contains_internal(&self, it: f64) -> bool {
        match *self {
            Distribution::Float { low, high, step, .. } => {
                if !(low..=high).contains(&it) {
                    return false;
                }
                match step {
                    Some(step) => {
                        let k = (it - low) / step;
                        (k - k.round()).abs() < 1e-8
                    }
                    None => true,
                }
            }
            Distribution::Int { low, high, step, .. } => {
                it.fract() == 0.0
                    && (low as f64..=high as f64).contains(&it)
                    && (it as i64 - low) % step == 0
            }
            Distribution::Categorical { ref choices } => {
                it >= 0.0 && it.fract() == 0.0 && (it as usize) < choices.len()
            }
        }
    }

    /// How many values [`Distribution::enumerate`] would list, computed without
    /// listing them (saturating at `u64::MAX`); `None` for a continuous float.
    pub fn n_values(&self) -> Option<u64> {
        match *self {
            Distribution::Float { low, high, step: Some(step), .. } => {
                let n = ((high - low) / step + 1e-9).floor() + 1.0;
                Some(if n.is_finite() && n < u64::MAX as f64 {
                    n.max(0.0) as u64
                } else {
                    u64::MAX
                })
            }
            Distribution::Float { step: None, .. } => None,
            Distribution::Int { low, high, step, .. } => {
                let span = i128::from(high) - i128::from(low);
                let n = span / i128::from(step.max(1)) + 1;
                Some(u64::try_from(n.max(0)).unwrap_or(u64::MAX))
            }
            Distribution::Categorical { ref choices } => Some(choices.len() as u64),
        }
    }

    /// The finite list of values, when there is one (ints, stepped floats, categoricals).
    pub fn enumerate(&self) -> Option<Vec<ParamValue>> {
        match *self {
            Distribution::Float { low, high, step: Some(step), .. } => {
                let n = ((high - low) / step + 1e-9).floor() as i64;
                Some(
                    (0..=n)
                        .map(|k| ParamValue::Float(round_to_step(low + k as f64 * step, step)))
                        .collect(),
                )
            }
            Distribution::Float { step: None, .. } => None,
            Distribution::Int { low, high, step, .. } => {
                Some((low..=high).step_by(step as usize).map(ParamValue::Int).collect())
            }
            Distribution::Categorical { ref choices } => Some(choices.clone()),
        }
    }

    /// A short human description, used in error messages and `hpo show`.
    pub fn describe(&self) -> String {
        match self {
            Distribution::Float { low, high, log, step } => {
                let mut it = format!("float [{low}, {high}]");
                if *log {
                    it.push_str(" log");
                }
                if let Some(step) = step {
                    it.push_str(&format!(" step {step}"));
                }
                it
            }
            Distribution::Int { low, high, log, step } => {
                let mut it = format!("int [{low}, {high}]");
                if *log {
                    it.push_str(" log");
                }
                if *step != 1 {
                    it.push_str(&format!(" step {step}"));
                }
                it
            }
            Distribution::Categorical { choices } => {
                let items: Vec<String> = choices.iter().map(|c| c.to_string()).collect();
                format!("choice [{}]", items.join(", "))
            }
        }
    }
}

/// Rounds away the binary noise of `low + k * step` (0.30000000000000004 -> 0.3).
pub(crate) fn round_to_step(value: f64, step: f64) -> f64 {
    let decimals = (-step.log10()).ceil().max(0.0) as i32 + 6;
    let scale = 10f64.powi(decimals.min(15));
    (value * scale).round() / scale
}
