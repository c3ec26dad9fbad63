//! Helpers shared by the samplers' tests: building spaces and trials, running a
//! sampler on a function, and checking proposals against their domains.

use crate::distribution::Distribution;
use crate::sampler::{Sampler, trial_rng};
use crate::space::{ParamDef, Params, SearchSpace};
use crate::trial::{FrozenTrial, TrialId, TrialState};

/// An unconditional parameter.
pub fn param(name: &str, distribution: Distribution) -> ParamDef {
    ParamDef { name: name.into(), distribution, condition: None, grid: None }
}

/// An unconditional float parameter on [low, high].
pub fn float(name: &str, low: f64, high: f64, log: bool) -> ParamDef {
    param(name, Distribution::Float { low, high, log, step: None })
}

/// A trial of `number` with these params and value.
pub fn trial(number: u64, state: TrialState, params: Params, value: Option<f64>) -> FrozenTrial {
    let mut t = FrozenTrial::new(TrialId(number as i64 + 1), number, state);
    t.params = params;
    t.value = value;
    t
}

/// Runs `sampler` for `n` trials of `f` (minimized) and returns the best value.
pub fn optimize(
    sampler: &dyn Sampler,
    space: &SearchSpace,
    f: impl Fn(&Params) -> f64,
    n: u64,
    seed: u64,
) -> f64 {
    let mut history = Vec::new();
    let mut best = f64::INFINITY;
    for number in 0..n {
        let params = sampler.sample(space, &history, &mut trial_rng(seed, number));
        let value = f(&params);
        best = best.min(value);
        history.push(trial(number, TrialState::Complete, params, Some(value)));
    }
    best
}

/// The median (upper middle for even lengths).
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Panics unless every parameter of `params` lies in its distribution's domain.
#[track_caller]
pub fn assert_in_domain(space: &SearchSpace, params: &Params) {
    for param in &space.params {
        if let Some(value) = params.get(&param.name) {
            assert!(
                param.distribution.to_internal(value).is_some(),
                "{} = {value} outside {:?}",
                param.name,
                param.distribution
            );
        }
    }
}
