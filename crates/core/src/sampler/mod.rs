//! Samplers propose a trial's parameters.
//!
//! A sampler is a pure function of (search space, the study's trials, a seeded
//! RNG): it keeps no state between calls, so any number of workers or processes
//! sharing a study through the store propose consistently, and a resumed study
//! continues exactly. The RNG of trial number k comes from [`trial_rng`]`(seed, k)`,
//! so trial k's parameters depend only on the study seed, k and the history.
//!
//! Start with [`Sampler`]; [`random`], [`grid`], [`tpe`], [`gp`] and [`nsga2`]
//! (several objectives) are the implementations, [`auto`] chooses between them, [`benchmark`] measures them.

pub mod auto;
pub mod benchmark;
pub mod gp;
pub mod grid;
pub mod nsga2;
pub mod random;
pub mod tpe;

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::space::{Params, SearchSpace};
use crate::spec::SamplerSpec;
use crate::study::Direction;
use crate::trial::FrozenTrial;

pub use auto::AutoSampler;
pub use gp::{GpConfig, GpSampler};
pub use grid::GridSampler;
pub use nsga2::{Nsga2Config, Nsga2Sampler};
pub use random::RandomSampler;
pub use tpe::{GoodWeights, MultiObjectiveTpe, TpeConfig, TpeSampler};

/// Proposes parameters for a new trial.
pub trait Sampler: Send + Sync {
    /// Called once per trial, after the trial was created (so its number is known)
    /// and before the objective runs. `history` holds the study's other trials, in
    /// order of number: finished ones and, for samplers that treat them, running
    /// ones. Returns a value for every parameter active under the space's conditions.
    fn sample(&self, space: &SearchSpace, history: &[FrozenTrial], rng: &mut StdRng) -> Params;

    /// [`Sampler::sample`] over trials held elsewhere ([`Kept`]: the trials, as
    /// `sample` takes them, by reference), keeping what it derives from finished
    /// trials in the memo: the caller passes the same memo to every proposal of
    /// one study (a finished trial never changes), and may call it from several
    /// threads at once. The default copies the trials and keeps nothing.
    fn sample_with_memo(&self, space: &SearchSpace, history: Kept<'_>, rng: &mut StdRng) -> Params {
        let owned: Vec<FrozenTrial> = history.trials.iter().map(|t| (*t).clone()).collect();
        self.sample(space, &owned, rng)
    }

    /// Which model proposes the next trial after `history`, and why
    /// (`"gp: ..."`), for a sampler that chooses between models (`auto`); `None`
    /// for the others. The study loop stores it with the trial
    /// ([`crate::trial::attr::SAMPLER`]).
    fn explain(&self, space: &SearchSpace, history: &[&FrozenTrial]) -> Option<String> {
        let _ = (space, history);
        None
    }

    /// Whether `sample` reads `history`. When false the caller may pass an empty
    /// slice and skip reading the study's trials from the store (a large saving for
    /// random search over long studies).
    fn needs_history(&self) -> bool {
        true
    }
}

/// A study's trials as a long-lived caller keeps them, for
/// [`Sampler::sample_with_memo`].
#[derive(Clone, Copy)]
pub struct Kept<'a> {
    /// The study's other trials, in order of number, as [`Sampler::sample`] takes
    /// them.
    pub trials: &'a [&'a FrozenTrial],
    /// What samplers derived from the finished ones.
    pub memo: &'a Memo,
}

/// What a sampler keeps between the proposals of one study
/// ([`Sampler::sample_with_memo`]); owned by the caller (`run::History`), empty
/// until a sampler fills it, shared by proposals made at once.
#[derive(Default)]
pub struct Memo(std::sync::Mutex<Option<Box<dyn std::any::Any + Send>>>);

impl Memo {
    /// Calls `f` with the kept value of type `T` (made by `init` the first time, or
    /// when the memo held another type); other proposals wait meanwhile.
    pub fn with<T: Send + 'static, R>(
        &self,
        init: impl FnOnce() -> T,
        f: impl FnOnce(&mut T) -> R,
    ) -> R {
        let mut kept = self.0.lock().unwrap_or_else(|it| it.into_inner());
        if !kept.as_ref().is_some_and(|it| it.is::<T>()) {
            *kept = Some(Box::new(init()));
        }
        f(kept
            .as_mut()
            .and_then(|it| it.downcast_mut::<T>())
            .expect("a value of type T was just kept"))
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}

/// The sampler a study file asks for, for a study whose objectives go in
/// `directions` (the models of one objective follow the first).
pub fn from_spec(spec: SamplerSpec, directions: &[Direction]) -> Box<dyn Sampler> {
    let direction = directions.first().copied().unwrap_or(Direction::Minimize);
    match spec {
        SamplerSpec::Grid => Box::new(GridSampler),
        SamplerSpec::Random => Box::new(RandomSampler),
        SamplerSpec::Tpe(config) if directions.len() > 1 => {
            Box::new(MultiObjectiveTpe { config, directions: directions.to_vec() })
        }
        SamplerSpec::Tpe(config) => Box::new(TpeSampler { config, direction }),
        SamplerSpec::Gp(config) => Box::new(GpSampler { config, direction }),
        SamplerSpec::Auto => Box::new(AutoSampler { direction }),
        SamplerSpec::Nsga2(config) => {
            Box::new(Nsga2Sampler { config, directions: directions.to_vec() })
        }
    }
}

/// The RNG for trial `number` of a study seeded with `seed`: a function of the two
/// only, so reruns and resumes reproduce the same proposals.
pub fn trial_rng(seed: u64, number: u64) -> StdRng {
    StdRng::seed_from_u64(splitmix64(seed ^ splitmix64(number.wrapping_add(0x9e37_79b9_7f4a_7c15))))
}

/// SplitMix64's finalizer: spreads nearby seeds (0, 1, 2...) into unrelated streams.
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
