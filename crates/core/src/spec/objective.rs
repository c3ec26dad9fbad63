//! `[objective]`: a function, a candle training, a command or an external program,
//! each with the settings it takes, checked against the space.

use std::ops::Range;
use std::time::Duration;

use serde_spanned::Spanned;

use crate::functions::BenchmarkFunction;
use crate::space::{Params, SearchSpace};

use super::devices::{DeviceRules, validate_devices};
use super::raw::*;
use super::*;

/// `[objective] kind = "command"`'s settings, each placeholder checked against the
/// space.
pub(super) fn command_spec(
    ctx: &Ctx<'_>,
    raw: RawObjective,
    space: &SearchSpace,
    locate: &mut impl FnMut(&str, Range<usize>),
) -> Result<command::CommandSpec, SpecError> {
    use command::{MetricsFormat, MetricsSource};
    let devices = validate_devices(ctx, &raw, DeviceRules::Command, locate)?;
    let template = |text: &str, span: Range<usize>, field: &str| {
        command::check_template(text, space)
            .map_err(|msg| ctx.error(span, format!("[objective].{field}"), msg))
    };
    let Some(argv) = raw.command else {
        return Err(ctx.error(
            raw.kind.span(),
            "[objective].command",
            "a command objective needs `command = [\"python\", \"train.py\", \"--lr\", \"{lr}\"]`: the program and its arguments",
        ));
    };
    if argv.get_ref().is_empty() || argv.get_ref()[0].get_ref().trim().is_empty() {
        return Err(ctx.error(
            argv.span(),
            "[objective].command",
            "`command` names the program first, then its arguments: `[\"python\", \"train.py\"]`",
        ));
    }
    let mut command = Vec::new();
    for arg in argv.into_inner() {
        template(arg.get_ref(), arg.span(), "command")?;
        command.push(arg.into_inner());
    }
    let mut env = Vec::new();
    if let Some(table) = raw.env {
        let span = table.span();
        for (key, value) in table.into_inner() {
            let toml::Value::String(value) = value else {
                return Err(ctx.error(
                    span,
                    format!("[objective.env].{key}"),
                    "an environment variable's value is a string",
                ));
            };
            template(&value, span.clone(), "env")?;
            env.push((key, value));
        }
    }
    if let Some(cwd) = &raw.cwd {
        template(cwd.get_ref(), cwd.span(), "cwd")?;
    }
    let duration = |it: &Option<Spanned<String>>,
                    field: &str|
     -> Result<Option<Duration>, SpecError> {
        let Some(it) = it else { return Ok(None) };
        parse_duration(it.get_ref()).map(Some).ok_or_else(|| {
            ctx.error(
                it.span(),
                format!("[objective].{field}"),
                format!("`{}` is not a duration; write \"90s\", \"30m\" or \"2h\"", it.get_ref()),
            )
        })
    };
    let timeout = duration(&raw.timeout, "timeout")?;
    let grace = duration(&raw.grace, "grace")?.unwrap_or(Duration::from_secs(10));
    let format_of = |name: &str, span: Range<usize>| match name {
        "json" => Ok(MetricsFormat::Json),
        "key=value" => Ok(MetricsFormat::KeyValue),
        other => Err(ctx.error(
            span,
            "[objective].metrics",
            format!("unknown metrics format `{other}`; use \"json\" or \"key=value\""),
        )),
    };
    let metrics = match raw.metrics {
        None => MetricsSource::Stdout(MetricsFormat::Json),
        Some(it) => {
            let span = it.span();
            match it.into_inner() {
                toml::Value::String(name) => MetricsSource::Stdout(format_of(&name, span)?),
                toml::Value::Table(table) => {
                    let file = table.get("file").and_then(toml::Value::as_str);
                    let format =
                        table.get("format").and_then(toml::Value::as_str).unwrap_or("json");
                    let unknown = table.keys().find(|k| !["file", "format"].contains(&k.as_str()));
                    match (file, unknown) {
                        (Some(path), None) => {
                            template(path, span.clone(), "metrics")?;
                            MetricsSource::File {
                                path: path.to_owned(),
                                format: format_of(format, span)?,
                            }
                        }
                        _ => {
                            return Err(ctx.error(
                                span,
                                "[objective].metrics",
                                "write `metrics = \"json\"`, `\"key=value\"` or `{ file = \"{trial_dir}/metrics.jsonl\", format = \"json\" }`",
                            ));
                        }
                    }
                }
                _ => {
                    return Err(ctx.error(
                        span,
                        "[objective].metrics",
                        "write `metrics = \"json\"`, `\"key=value\"` or `{ file = \"...\", format = \"json\" }`",
                    ));
                }
            }
        }
    };
    Ok(command::CommandSpec {
        command,
        devices,
        cwd: raw.cwd.map(Spanned::into_inner),
        env,
        timeout,
        metrics,
        grace,
    })
}

pub(super) fn validate_objective(
    ctx: &Ctx<'_>,
    raw: RawObjective,
    space: &SearchSpace,
    _metric: &str,
    locate: &mut impl FnMut(&str, Range<usize>),
) -> Result<ObjectiveSpec, SpecError> {
    let kind = *raw.kind.get_ref();
    let kind_name = match kind {
        RawObjectiveKind::Function => "function",
        RawObjectiveKind::Candle => "candle",
        RawObjectiveKind::External => "external",
        RawObjectiveKind::Command => "command",
    };
    // Each field and the kinds that take it; any other kind refuses it.
    use RawObjectiveKind::{Candle, Command, Function};
    let fields = [
        ("function", raw.function.as_ref().map(Spanned::span), &[Function][..]),
        ("model", raw.model.as_ref().map(Spanned::span), &[Candle][..]),
        ("dataset", raw.dataset.as_ref().map(Spanned::span), &[Candle][..]),
        ("max_epochs", raw.max_epochs.as_ref().map(Spanned::span), &[Candle, Function][..]),
        ("keep_models", raw.keep_models.as_ref().map(Spanned::span), &[Candle][..]),
        ("device", raw.device.as_ref().map(Spanned::span), &[Candle][..]),
        ("devices", raw.devices.as_ref().map(Spanned::span), &[Candle, Command][..]),
        (
            "trials_per_device",
            raw.trials_per_device.as_ref().map(Spanned::span),
            &[Candle, Command][..],
        ),
        ("fixed", raw.fixed.as_ref().map(Spanned::span), &[Candle][..]),
        ("command", raw.command.as_ref().map(Spanned::span), &[Command][..]),
        ("cwd", raw.cwd.as_ref().map(Spanned::span), &[Command][..]),
        ("env", raw.env.as_ref().map(Spanned::span), &[Command][..]),
        ("timeout", raw.timeout.as_ref().map(Spanned::span), &[Command][..]),
        ("metrics", raw.metrics.as_ref().map(Spanned::span), &[Command][..]),
        ("grace", raw.grace.as_ref().map(Spanned::span), &[Command][..]),
    ];
    for (field, span, kinds) in fields {
        if let Some(span) = span
            && !kinds.contains(&kind)
        {
            return Err(ctx.error(
                span,
                format!("[objective].{field}"),
                format!("`{field}` does not apply to objective kind `{kind_name}`; remove it"),
            ));
        }
    }
    match kind {
        RawObjectiveKind::External => Ok(ObjectiveSpec::External),
        RawObjectiveKind::Command => {
            command_spec(ctx, raw, space, locate).map(ObjectiveSpec::Command)
        }
        RawObjectiveKind::Function => {
            let Some(name) = raw.function else {
                return Err(ctx.error(
                    raw.kind.span(),
                    "[objective].function",
                    format!(
                        "a function objective needs `function = \"...\"`, one of {}",
                        BenchmarkFunction::NAMES.join(", ")
                    ),
                ));
            };
            let function = BenchmarkFunction::from_name(name.get_ref()).ok_or_else(|| {
                ctx.error(
                    name.span(),
                    "[objective].function",
                    format!(
                        "unknown function `{}`; valid: {}",
                        name.get_ref(),
                        BenchmarkFunction::NAMES.join(", ")
                    ),
                )
            })?;
            function
                .check_space(space)
                .map_err(|msg| ctx.error(name.span(), "[objective].function", msg))?;
            let steps = ctx.at_least("objective", &raw.max_epochs, "max_epochs", 1, 1)? as u64;
            Ok(ObjectiveSpec::Function { function, steps })
        }
        RawObjectiveKind::Candle => {
            let devices = validate_devices(ctx, &raw, DeviceRules::Training, locate)?;
            let required = |field: &str, it: Option<Spanned<String>>, example: &str| {
                it.ok_or_else(|| {
                    ctx.error(
                        raw.kind.span(),
                        format!("[objective].{field}"),
                        format!("a candle objective needs `{field} = {example}`"),
                    )
                })
            };
            let model = required("model", raw.model, "\"mlp\"")?;
            let Some(dataset) = raw.dataset else {
                return Err(ctx.error(
                    raw.kind.span(),
                    "[objective].dataset",
                    "a candle objective needs `dataset = \"digits\"` (or `{ csv = \"path\", target = \"column\" }`, `{ text = \"path\" }`)",
                ));
            };
            locate("objective.model", model.span());
            locate("objective.dataset", dataset.span());
            let dataset = validate_dataset(dataset.get_ref()).ok_or_else(|| {
                ctx.error(
                    dataset.span(),
                    "[objective].dataset",
                    "write a dataset name (`\"digits\"`), `{ csv = \"path\", target = \"column\" }` or `{ text = \"path\" }`",
                )
            })?;
            let max_epochs = match raw.max_epochs {
                None => {
                    return Err(ctx.error(
                        raw.kind.span(),
                        "[objective].max_epochs",
                        "a candle objective needs `max_epochs = N`, the most epochs a trial trains",
                    ));
                }
                Some(it) if !(1..=100_000).contains(it.get_ref()) => {
                    return Err(ctx.error(
                        it.span(),
                        "[objective].max_epochs",
                        format!("max_epochs must be between 1 and 100000, got {}", it.get_ref()),
                    ));
                }
                Some(it) => *it.get_ref() as u32,
            };
            let mut fixed = Params::new();
            if let Some(table) = raw.fixed {
                let span = table.span();
                for (key, value) in table.into_inner() {
                    let value = scalar(&value).ok_or_else(|| {
                        ctx.error(
                            span.clone(),
                            format!("[objective.fixed].{key}"),
                            "a fixed hyperparameter must be a string, number or boolean",
                        )
                    })?;
                    if space.get(&key).is_some() {
                        return Err(ctx.error(
                            span.clone(),
                            format!("[objective.fixed].{key}"),
                            format!("`{key}` is both fixed and in [space]; keep one"),
                        ));
                    }
                    locate(&format!("objective.fixed.{key}"), span.clone());
                    fixed.insert(key, value);
                }
            }
            Ok(ObjectiveSpec::Training(TrainingSpec {
                model: model.into_inner(),
                dataset,
                max_epochs,
                devices,
                fixed,
                compress: Vec::new(),
                teacher: None,
                keep_models: ctx.at_least("objective", &raw.keep_models, "keep_models", 3, 0)?
                    as usize,
            }))
        }
    }
}

pub(super) fn validate_dataset(value: &toml::Value) -> Option<DatasetSpec> {
    match value {
        toml::Value::String(name) => Some(DatasetSpec::Named(name.clone())),
        toml::Value::Table(table) => {
            let get = |key: &str| table.get(key).and_then(toml::Value::as_str).map(str::to_owned);
            match (get("csv"), get("target"), get("text"), table.len()) {
                (Some(path), Some(target), None, 2) => Some(DatasetSpec::Csv { path, target }),
                (None, None, Some(path), 1) => Some(DatasetSpec::Text { path }),
                _ => None,
            }
        }
        _ => None,
    }
}
