//! The JSON forms of stored values, as hpo's exports and its HTTP API write them:
//! numbers that JSON cannot hold (NaN, infinities) as strings, whole attribute
//! numbers as integers, distributions in Optuna's own JSON.

use hpo_core::distribution::{Distribution, ParamValue};
use hpo_core::trial::AttrValue;
use serde_json::{Value, json};

/// A number; NaN and the infinities, which JSON has no numbers for, as the
/// strings `NaN`, `inf` and `-inf`.
pub fn number(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { json!(v.to_string()) }
}

/// An attribute value; a whole number as an integer.
pub fn attr_value(v: &AttrValue) -> Value {
    match v {
        AttrValue::Null => Value::Null,
        AttrValue::Bool(b) => json!(b),
        AttrValue::Number(n) => crate::encode::whole_number(*n).map_or(number(*n), |it| json!(it)),
        AttrValue::Str(s) => json!(s),
        AttrValue::List(items) => Value::Array(items.iter().map(|v| number(*v)).collect()),
    }
}

/// A parameter value.
pub fn param(v: &ParamValue) -> Value {
    match v {
        ParamValue::Null => Value::Null,
        ParamValue::Bool(b) => json!(b),
        ParamValue::Int(i) => json!(i),
        ParamValue::Float(f) => number(*f),
        ParamValue::Str(s) => json!(s),
    }
}

/// A distribution in Optuna's JSON form, so exports compare with Optuna's own.
pub fn distribution(d: &Distribution) -> Value {
    serde_json::from_str(&crate::encode::distribution_json(d)).unwrap_or(Value::Null)
}
