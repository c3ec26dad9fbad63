//! Random search: every active parameter drawn independently.
//!
//! Floats are uniform on [low, high], or log-uniform when `log = true`; stepped
//! floats and ints are uniform over their grid of values (log ints: log-uniform
//! over [low - 0.5, high + 0.5], then rounded, as Optuna does); categoricals are
//! uniform over their choices.

use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::{Distribution as _, Uniform};

use crate::distribution::{Distribution, ParamValue, round_to_step};
use crate::sampler::Sampler;
use crate::space::{Params, SearchSpace};
use crate::trial::FrozenTrial;

/// Independent random draws; ignores the history.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomSampler;

impl Sampler for RandomSampler {
    fn sample(&self, space: &SearchSpace, _history: &[FrozenTrial], rng: &mut StdRng) -> Params {
        space.assign(|param| sample_one(&param.distribution, rng))
    }

    fn needs_history(&self) -> bool {
        false
    }
}

/// One independent draw from a distribution.
pub fn sample_one(distribution: &Distribution, rng: &mut StdRng) -> ParamValue {
    match *distribution {
        Distribution::Float { low, high, step: Some(step), .. } => {
            let n = ((high - low) / step + 1e-9).floor() as u64;
            let k = rng.random_range(0..=n);
            ParamValue::Float(round_to_step(low + k as f64 * step, step).min(high))
        }
        Distribution::Float { low, high, log: true, step: None } => {
            let it = uniform(low.ln(), high.ln(), rng).exp();
            ParamValue::Float(it.clamp(low, high))
        }
        Distribution::Float { low, high, log: false, step: None } => {
            ParamValue::Float(uniform(low, high, rng))
        }
        Distribution::Int { low, high, log: true, .. } => {
            let it = uniform((low as f64 - 0.5).max(0.5).ln(), (high as f64 + 0.5).ln(), rng).exp();
            ParamValue::Int((it.round() as i64).clamp(low, high))
        }
        Distribution::Int { low, high, step, .. } => {
            let n = ((high - low) / step) as u64;
            ParamValue::Int(low + rng.random_range(0..=n) as i64 * step)
        }
        Distribution::Categorical { ref choices } => {
            choices[rng.random_range(0..choices.len())].clone()
        }
    }
}

fn uniform(low: f64, high: f64, rng: &mut StdRng) -> f64 {
    match Uniform::new_inclusive(low, high) {
        Ok(it) => it.sample(rng),
        Err(_) => low,
    }
}
