//! `[pruner]` and `[early_stopping]`: the pruner's kind and settings, and the
//! patience rule of each trial.

use serde_spanned::Spanned;

use crate::pruner::{Pruner, PrunerKind};
use crate::study::Direction;

use super::raw::*;
use super::*;

/// The `[pruner]` table: its kind, and the settings that kind takes.
pub(super) fn pruner_spec(
    ctx: &Ctx<'_>,
    raw: RawPruner,
    objective: &ObjectiveSpec,
) -> Result<Pruner, SpecError> {
    use RawPrunerKind::{Asha, Hyperband, Median, Percentile, Threshold};
    let kind = *raw.kind.get_ref();
    let span = |it: &Option<Spanned<i64>>| it.as_ref().map(Spanned::span);
    let fspan = |it: &Option<Spanned<f64>>| it.as_ref().map(Spanned::span);
    let settings = [
        ("percentile", fspan(&raw.percentile), &[Percentile][..]),
        ("startup_trials", span(&raw.startup_trials), &[Median, Percentile][..]),
        ("warmup_steps", span(&raw.warmup_steps), &[Median, Percentile, Threshold][..]),
        ("interval", span(&raw.interval), &[Median, Percentile][..]),
        ("min_resource", span(&raw.min_resource), &[Asha, Hyperband][..]),
        ("max_resource", span(&raw.max_resource), &[Hyperband][..]),
        ("reduction_factor", span(&raw.reduction_factor), &[Asha, Hyperband][..]),
        ("min_early_stopping_rate", span(&raw.min_early_stopping_rate), &[Asha][..]),
        ("lower", fspan(&raw.lower), &[Threshold][..]),
        ("upper", fspan(&raw.upper), &[Threshold][..]),
    ];
    ctx.settings_of_kind("pruner", kind, RawPrunerKind::name, &settings)?;
    let int = |value: &Option<Spanned<i64>>, key: &str, default: i64, min: i64| {
        ctx.at_least("pruner", value, key, default, min)
    };
    let warmup_steps = int(&raw.warmup_steps, "warmup_steps", 0, 0)? as u64;
    let percentile_kind = |percentile: f64| -> Result<PrunerKind, SpecError> {
        Ok(PrunerKind::Percentile {
            percentile,
            startup_trials: int(&raw.startup_trials, "startup_trials", 5, 0)? as usize,
            warmup_steps,
            interval: int(&raw.interval, "interval", 1, 1)? as u64,
        })
    };
    let min_resource = int(&raw.min_resource, "min_resource", 1, 1)? as u64;
    let reduction_factor = int(&raw.reduction_factor, "reduction_factor", 3, 2)? as u64;
    let kind = match kind {
        RawPrunerKind::None => PrunerKind::None,
        Median => percentile_kind(50.0)?,
        Percentile => {
            let Some(it) = &raw.percentile else {
                return Err(ctx.error(
                    raw.kind.span(),
                    "[pruner].percentile",
                    "the percentile pruner needs `percentile = P` with 0 < P < 100 (50 is `median`)",
                ));
            };
            let p = *it.get_ref();
            if !(p > 0.0 && p < 100.0) {
                return Err(ctx.error(
                    it.span(),
                    "[pruner].percentile",
                    format!("`percentile` must be between 0 and 100 (exclusive), got {p}"),
                ));
            }
            percentile_kind(p)?
        }
        Asha => PrunerKind::Asha {
            min_resource,
            reduction_factor,
            min_early_stopping_rate: int(
                &raw.min_early_stopping_rate,
                "min_early_stopping_rate",
                0,
                0,
            )? as u32,
        },
        Hyperband => {
            let default_max = match objective {
                ObjectiveSpec::Training(candle) => Some(candle.max_epochs as i64),
                _ => None,
            };
            let max_resource = match (&raw.max_resource, default_max) {
                (Some(_), _) => int(&raw.max_resource, "max_resource", 0, min_resource as i64)?,
                (None, Some(max)) => max,
                (None, None) => {
                    return Err(ctx.error(
                        raw.kind.span(),
                        "[pruner].max_resource",
                        "the hyperband pruner needs `max_resource` (the most steps a trial reports) unless the objective has `max_epochs`",
                    ));
                }
            };
            PrunerKind::Hyperband {
                min_resource,
                max_resource: max_resource as u64,
                reduction_factor,
            }
        }
        Threshold => {
            let (lower, upper) = (
                raw.lower.as_ref().map(|it| *it.get_ref()),
                raw.upper.as_ref().map(|it| *it.get_ref()),
            );
            if lower.is_none() && upper.is_none() {
                return Err(ctx.error(
                    raw.kind.span(),
                    "[pruner]",
                    "the threshold pruner needs `lower = ...`, `upper = ...` or both",
                ));
            }
            if let (Some(l), Some(u), Some(at)) = (lower, upper, &raw.upper)
                && l >= u
            {
                return Err(ctx.error(
                    at.span(),
                    "[pruner].upper",
                    format!("`upper` ({u}) must be greater than `lower` ({l})"),
                ));
            }
            PrunerKind::Threshold { lower, upper, warmup_steps }
        }
    };
    let patience = match &raw.patience {
        None => {
            if let Some(it) = &raw.min_delta {
                return Err(ctx.error(
                    it.span(),
                    "[pruner].min_delta",
                    "`min_delta` goes with `patience = N`; add it or remove `min_delta`",
                ));
            }
            None
        }
        Some(_) => {
            let patience = int(&raw.patience, "patience", 1, 1)? as u64;
            let min_delta = ctx.non_negative("pruner", &raw.min_delta, "min_delta")?;
            Some((patience, min_delta))
        }
    };
    Ok(Pruner { kind, patience })
}

pub(super) fn validate_early_stopping(
    ctx: &Ctx<'_>,
    raw: Spanned<RawEarlyStopping>,
    metric: &str,
    study_direction: Direction,
) -> Result<EarlyStoppingSpec, SpecError> {
    let span = raw.span();
    let raw = raw.into_inner();
    let monitor = raw.monitor.as_ref().map_or(metric, |it| it.get_ref().as_str()).to_owned();
    let direction = match raw.direction {
        Some(it) => Direction::from(it),
        None if monitor == metric => study_direction,
        None if monitor.ends_with("loss") || monitor.ends_with("error") => Direction::Minimize,
        None if monitor.ends_with("accuracy") => Direction::Maximize,
        None => {
            return Err(ctx.error(
                span,
                "[early_stopping].direction",
                format!("cannot tell whether `{monitor}` should go up or down; add `direction = \"minimize\"` or `\"maximize\"`"),
            ));
        }
    };
    let patience = *raw.patience.get_ref();
    let max = most("patience");
    let Some(patience) =
        u32::try_from(patience).ok().filter(|p| (1..=max).contains(&i64::from(*p)))
    else {
        return Err(ctx.error(
            raw.patience.span(),
            "[early_stopping].patience",
            format!("patience is the number of steps without improvement before stopping; it must be between 1 and {max}, got {patience}"),
        ));
    };
    let min_delta = ctx.non_negative("early_stopping", &raw.min_delta, "min_delta")?;
    Ok(EarlyStoppingSpec { monitor, direction, patience, min_delta })
}
