//! `[sampler]`: the kind and the settings each kind takes, and the largest value
//! each count setting may take.

use serde_spanned::Spanned;

use crate::sampler::gp::GpConfig;
use crate::sampler::nsga2::Nsga2Config;
use crate::sampler::tpe::{GoodWeights, TpeConfig};

use super::raw::*;
use super::*;

/// The largest value a count setting takes: what a run can use (threads, memory,
/// time), so a typo like `workers = 4294967296` is refused when the file is read
/// instead of exhausting the machine, and every count fits the type it is kept in.
pub(super) fn most(key: &str) -> i64 {
    match key {
        "workers" | "trials_per_device" => 1_024,
        "restarts" => 1_000,
        "max_retries" => 1_000,
        "candidates" => 100_000,
        "patience" => 1_000_000,
        "min_early_stopping_rate" => 30,
        "reduction_factor" => 1_000,
        "top" | "seeds" => 100,
        "keep_models" => 1_000_000,
        _ => i64::from(u32::MAX),
    }
}

/// The `[sampler]` table: its kind, and the settings that kind takes.
pub(super) fn sampler_spec(ctx: &Ctx<'_>, raw: RawSampler) -> Result<SamplerSpec, SpecError> {
    let kind = *raw.kind.get_ref();
    let count = |value: Option<Spanned<i64>>, key: &str, default: usize, min: i64| {
        ctx.at_least("sampler", &value, key, default as i64, min).map(|it| it as usize)
    };
    // A model's random trials before it proposes, and its candidates per proposal.
    let model_counts = |startup: usize, candidates: usize| -> Result<(usize, usize), SpecError> {
        Ok((
            count(raw.startup_trials.clone(), "startup_trials", startup, 0)?,
            count(raw.candidates.clone(), "candidates", candidates, 1)?,
        ))
    };
    // Each setting and the samplers that take it.
    use RawSamplerKind::{Gp, Nsga2, Tpe};
    let settings = [
        ("startup_trials", raw.startup_trials.as_ref().map(Spanned::span), &[Tpe, Gp][..]),
        ("candidates", raw.candidates.as_ref().map(Spanned::span), &[Tpe, Gp][..]),
        ("restarts", raw.restarts.as_ref().map(Spanned::span), &[Gp][..]),
        ("prior_weight", raw.prior_weight.as_ref().map(Spanned::span), &[Tpe][..]),
        ("gamma", raw.gamma.as_ref().map(Spanned::span), &[Tpe][..]),
        ("good_weights", raw.good_weights.as_ref().map(Spanned::span), &[Tpe][..]),
        ("multivariate", raw.multivariate.map(|_| raw.kind.span()), &[Tpe][..]),
        ("constant_liar", raw.constant_liar.map(|_| raw.kind.span()), &[Tpe][..]),
        ("population", raw.population.as_ref().map(Spanned::span), &[Nsga2][..]),
        ("crossover_prob", raw.crossover_prob.as_ref().map(Spanned::span), &[Nsga2][..]),
        ("mutation_prob", raw.mutation_prob.as_ref().map(Spanned::span), &[Nsga2][..]),
    ];
    let probability = |value: Option<Spanned<f64>>, key: &str| match value {
        Some(it) if !(0.0..=1.0).contains(it.get_ref()) => Err(ctx.error(
            it.span(),
            format!("[sampler].{key}"),
            format!("`{key}` is a probability in [0, 1], got {}", it.get_ref()),
        )),
        Some(it) => Ok(Some(*it.get_ref())),
        None => Ok(None),
    };
    ctx.settings_of_kind("sampler", kind, RawSamplerKind::name, &settings)?;
    Ok(match kind {
        RawSamplerKind::Grid => SamplerSpec::Grid,
        RawSamplerKind::Random => SamplerSpec::Random,
        RawSamplerKind::Auto => SamplerSpec::Auto,
        RawSamplerKind::Nsga2 => {
            let defaults = Nsga2Config::default();
            SamplerSpec::Nsga2(Nsga2Config {
                population: count(raw.population.clone(), "population", defaults.population, 2)?,
                crossover_prob: probability(raw.crossover_prob.clone(), "crossover_prob")?
                    .unwrap_or(defaults.crossover_prob),
                mutation_prob: probability(raw.mutation_prob.clone(), "mutation_prob")?,
            })
        }
        RawSamplerKind::Tpe => {
            let defaults = TpeConfig::default();
            let prior_weight = match raw.prior_weight {
                Some(it) if !(*it.get_ref() > 0.0 && it.get_ref().is_finite()) => {
                    return Err(ctx.error(
                        it.span(),
                        "[sampler].prior_weight",
                        format!("`prior_weight` must be a positive number, got {}", it.get_ref()),
                    ));
                }
                Some(it) => *it.get_ref(),
                None => defaults.prior_weight,
            };
            let gamma = match raw.gamma {
                Some(it) if !(*it.get_ref() > 0.0 && *it.get_ref() <= 1.0) => {
                    return Err(ctx.error(
                        it.span(),
                        "[sampler].gamma",
                        format!(
                            "`gamma` is the fraction of trials that are good and must be in (0, 1], got {}",
                            it.get_ref()
                        ),
                    ));
                }
                Some(it) => *it.get_ref(),
                None => defaults.gamma,
            };
            let good_weights = match raw.good_weights.map(|it| *it.get_ref()) {
                Some(RawGoodWeights::Improvement) => GoodWeights::Improvement,
                Some(RawGoodWeights::Uniform) => GoodWeights::Uniform,
                None => defaults.good_weights,
            };
            let (startup_trials, candidates) =
                model_counts(defaults.startup_trials, defaults.candidates)?;
            SamplerSpec::Tpe(TpeConfig {
                startup_trials,
                candidates,
                multivariate: raw.multivariate.unwrap_or(defaults.multivariate),
                constant_liar: raw.constant_liar.unwrap_or(defaults.constant_liar),
                prior_weight,
                gamma,
                good_weights,
            })
        }
        RawSamplerKind::Gp => {
            let defaults = GpConfig::default();
            let (startup_trials, candidates) =
                model_counts(defaults.startup_trials, defaults.candidates)?;
            SamplerSpec::Gp(GpConfig {
                startup_trials,
                candidates,
                restarts: count(raw.restarts, "restarts", defaults.restarts, 1)?,
            })
        }
    })
}
