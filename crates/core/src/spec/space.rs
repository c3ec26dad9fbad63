//! `[space]`: each parameter's distribution (float, int, choice, steps, log
//! scale, grid values) and its condition on the parameters declared above it.

use std::ops::Range;

use serde_spanned::Spanned;

use crate::distribution::{Distribution, ParamValue};
use crate::space::{Condition, ParamDef, SearchSpace};

use super::raw::*;
use super::*;

pub(super) fn validate_space(
    ctx: &Ctx<'_>,
    raw: RawSpace,
    locate: &mut impl FnMut(&str, Range<usize>),
) -> Result<SearchSpace, SpecError> {
    let mut space = SearchSpace::default();
    for (name, param) in raw.0 {
        let field = format!("[space].{}", name.get_ref());
        let name_span = name.span();
        let param_span = param.span();
        let param = param.into_inner();
        let name = name.into_inner();
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-') {
            return Err(ctx.error(
                name_span,
                field,
                "parameter names may use letters, digits, `_`, `-` and `.` only",
            ));
        }
        let distribution = validate_distribution(ctx, &field, &param, param_span.clone())?;
        let grid = match &param.grid {
            None => None,
            Some(grid) => {
                let mut values = Vec::new();
                for value in grid.get_ref() {
                    let value = scalar(value)
                        .and_then(|v| distribution.to_internal(&v).map(|internal| (v, internal)))
                        .map(|(v, internal)| match (&distribution, &v) {
                            (Distribution::Float { .. }, ParamValue::Int(_)) => {
                                ParamValue::Float(internal)
                            }
                            _ => v,
                        })
                        .ok_or_else(|| {
                            ctx.error(
                                grid.span(),
                                field.clone(),
                                format!(
                                    "grid value {value} is outside the parameter's range {}",
                                    distribution.describe()
                                ),
                            )
                        })?;
                    values.push(value);
                }
                if values.is_empty() {
                    return Err(ctx.error(
                        grid.span(),
                        field,
                        "`grid = []` is empty; list at least one value",
                    ));
                }
                Some(values)
            }
        };
        let condition = match &param.when {
            None => None,
            Some(when) => Some(validate_condition(ctx, &field, &space, when)?),
        };
        locate(&format!("space.{name}"), name_span);
        space.params.push(ParamDef { name, distribution, condition, grid });
    }
    Ok(space)
}

pub(super) fn validate_distribution(
    ctx: &Ctx<'_>,
    field: &str,
    param: &RawParam,
    span: Range<usize>,
) -> Result<Distribution, SpecError> {
    let kinds = [param.float.is_some(), param.int.is_some(), param.choice.is_some()];
    match kinds.iter().filter(|it| **it).count() {
        0 => {
            return Err(ctx.error(
                span,
                field,
                "say what kind of parameter this is: `float = [low, high]`, `int = [low, high]` or `choice = [...]`",
            ));
        }
        1 => {}
        _ => {
            return Err(ctx.error(
                span,
                field,
                "a parameter has exactly one kind; write only one of `float`, `int` and `choice`",
            ));
        }
    }
    let log = param.log.as_ref().is_some_and(|it| *it.get_ref());
    if let Some(choices) = &param.choice {
        if let Some(it) = &param.log {
            return Err(ctx.error(
                it.span(),
                field,
                "`log` applies to float and int parameters, not to `choice`",
            ));
        }
        if let Some(it) = &param.step {
            return Err(ctx.error(
                it.span(),
                field,
                "`step` applies to float and int parameters, not to `choice`",
            ));
        }
        if let Some(it) = &param.grid {
            return Err(ctx.error(
                it.span(),
                field,
                "`grid` is not needed for `choice`: the grid uses every choice",
            ));
        }
        let mut values: Vec<ParamValue> = Vec::new();
        for value in choices.get_ref() {
            let value = scalar(value).ok_or_else(|| {
                ctx.error(
                    choices.span(),
                    field,
                    format!(
                        "choices must be strings, numbers or booleans; found {}",
                        value.type_str()
                    ),
                )
            })?;
            if values.iter().any(|it| it.same_as(&value)) {
                return Err(ctx.error(
                    choices.span(),
                    field,
                    format!("choice {value} is listed twice"),
                ));
            }
            values.push(value);
        }
        if values.is_empty() {
            return Err(ctx.error(
                choices.span(),
                field,
                "`choice = []` is empty; list at least one value",
            ));
        }
        return Ok(Distribution::Categorical { choices: values });
    }
    let (bounds_span, low, high, is_int) = match (&param.float, &param.int) {
        (Some(it), _) => {
            (it.span(), it.get_ref().first().copied(), it.get_ref().get(1).copied(), false)
        }
        (_, Some(it)) => (
            it.span(),
            it.get_ref().first().map(|v| *v as f64),
            it.get_ref().get(1).map(|v| *v as f64),
            true,
        ),
        _ => unreachable!("one kind is present"),
    };
    let n_bounds = param
        .float
        .as_ref()
        .map(|it| it.get_ref().len())
        .or(param.int.as_ref().map(|it| it.get_ref().len()));
    let (Some(low), Some(high), Some(2)) = (low, high, n_bounds) else {
        return Err(ctx.error(bounds_span, field, "give the range as two numbers: `[low, high]`"));
    };
    let empty = |low: &dyn fmt::Display, high: &dyn fmt::Display| {
        ctx.error(
            bounds_span.clone(),
            field,
            format!("the range [{low}, {high}] is empty; write [low, high] with low < high"),
        )
    };
    // Int bounds are compared as written below (through f64, 2^53 + 1 is 2^53).
    if !low.is_finite() || !high.is_finite() || (low >= high && !is_int) {
        return Err(empty(&low, &high));
    }
    if log && low <= 0.0 {
        return Err(ctx.error(
            bounds_span,
            field,
            format!("a log-scaled range must be positive, but low is {low}; raise low above 0 or drop `log = true`"),
        ));
    }
    if is_int {
        let step = match &param.step {
            None => 1,
            Some(it) => match it.get_ref().as_integer() {
                Some(step) if step >= 1 => step,
                _ => {
                    return Err(ctx.error(
                        it.span(),
                        field,
                        format!(
                            "an int step must be a whole number of at least 1, got {}",
                            it.get_ref()
                        ),
                    ));
                }
            },
        };
        if log && step != 1 {
            return Err(ctx.error(
                bounds_span,
                field,
                "`log = true` and `step` can't be combined (as in Optuna); drop one",
            ));
        }
        // The bounds as written: through f64, 2^53 + 1 would become 2^53.
        let exact = param.int.as_ref().map(|it| (it.get_ref()[0], it.get_ref()[1]));
        let Some((low, high)) = exact else { unreachable!("an int parameter has int bounds") };
        if low >= high {
            return Err(empty(&low, &high));
        }
        if (i128::from(high) - i128::from(low)) % i128::from(step) != 0 {
            return Err(ctx.error(
                bounds_span,
                field,
                format!("the range [{low}, {high}] is not a whole number of steps of {step}; make high - low a multiple of step"),
            ));
        }
        Ok(Distribution::Int { low, high, log, step })
    } else {
        let step = match &param.step {
            None => None,
            Some(it) => {
                match it.get_ref().as_float().or(it.get_ref().as_integer().map(|v| v as f64)) {
                    Some(step) if step > 0.0 && step.is_finite() => Some(step),
                    _ => {
                        return Err(ctx.error(
                            it.span(),
                            field,
                            format!("a float step must be a positive number, got {}", it.get_ref()),
                        ));
                    }
                }
            }
        };
        if let Some(step) = step {
            if log {
                return Err(ctx.error(
                    bounds_span,
                    field,
                    "`log = true` and `step` can't be combined (as in Optuna); drop one",
                ));
            }
            let k = (high - low) / step;
            if (k - k.round()).abs() > 1e-8 {
                return Err(ctx.error(
                    bounds_span,
                    field,
                    format!("the range [{low}, {high}] is not a whole number of steps of {step}; make high - low a multiple of step"),
                ));
            }
        }
        Ok(Distribution::Float { low, high, log, step })
    }
}

pub(super) fn validate_condition(
    ctx: &Ctx<'_>,
    field: &str,
    space: &SearchSpace,
    when: &Spanned<toml::Table>,
) -> Result<Condition, SpecError> {
    let table = when.get_ref();
    if table.len() != 1 {
        return Err(ctx.error(
            when.span(),
            field,
            "`when` names one parameter and its value(s), e.g. `when = { optimizer = \"sgd\" }`",
        ));
    }
    let (parent_name, raw_values) = table.iter().next().expect("one entry");
    let Some(parent) = space.get(parent_name) else {
        let earlier: Vec<&str> = space.params.iter().map(|p| p.name.as_str()).collect();
        return Err(ctx.error(
            when.span(),
            field,
            format!(
                "`when` refers to `{parent_name}`, which is not declared above this parameter; declared so far: {}",
                if earlier.is_empty() { "none".to_owned() } else { earlier.join(", ") }
            ),
        ));
    };
    let raw_values: Vec<&toml::Value> = match raw_values {
        toml::Value::Array(items) => items.iter().collect(),
        it => vec![it],
    };
    let mut values = Vec::new();
    for raw in raw_values {
        let value = scalar(raw)
            .filter(|v| parent.distribution.to_internal(v).is_some())
            .ok_or_else(|| {
                ctx.error(
                    when.span(),
                    field,
                    format!(
                        "`{parent_name}` never takes the value {raw}; its domain is {}",
                        parent.distribution.describe()
                    ),
                )
            })?;
        values.push(value);
    }
    if values.is_empty() {
        return Err(ctx.error(
            when.span(),
            field,
            format!("`when` gives no values for `{parent_name}`"),
        ));
    }
    Ok(Condition { parent: parent_name.clone(), values })
}

pub(super) fn scalar(value: &toml::Value) -> Option<ParamValue> {
    match value {
        toml::Value::String(it) => Some(ParamValue::Str(it.clone())),
        toml::Value::Integer(it) => Some(ParamValue::Int(*it)),
        toml::Value::Float(it) => Some(ParamValue::Float(*it)),
        toml::Value::Boolean(it) => Some(ParamValue::Bool(*it)),
        _ => None,
    }
}
