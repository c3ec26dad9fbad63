//! `[sampler] kind = "auto"`: chooses the model for every proposal from the search
//! space and the study's history, and says why ([`AutoSampler::choose`]; the study
//! loop stores the reason with the trial as `hpo:sampler`).
//!
//! The rules come from the structure of the problem, not from any benchmark's
//! seeds:
//!
//! 1. **Random search** until [`STARTUP_TRIALS`] trials are complete: no model
//!    has data to learn from (the GP and TPE draw the same points then).
//! 2. **TPE** past [`GP_MAX_TRIALS`] complete trials: a Gaussian process costs
//!    O(n³) per proposal in the n trials (a third of a second at a thousand),
//!    while TPE's cost grows linearly, and by then TPE's density estimates have
//!    the data they need.
//! 3. **TPE** over more than [`GP_MAX_INPUTS`] inputs (a categorical counts one
//!    input per choice): Bayesian optimization with a GP works best below about 20
//!    dimensions (Frazier, 2018, "A Tutorial on Bayesian Optimization"); beyond,
//!    its length scales cannot be learned from a few hundred trials, and TPE,
//!    which models each parameter's good and bad values, degrades more gently.
//! 4. **TPE** when a categorical's choices make up most of the inputs, or a
//!    condition's parent is itself conditional: a tree of choices is what the
//!    tree-structured Parzen estimator was made for (Bergstra et al., 2011), and a
//!    GP's one-hot and imputed inputs carry little distance information there. A
//!    few categoricals and one level of conditions (an optimizer with settings of
//!    its own) stay with the GP, which models both.
//! 5. Otherwise a **Gaussian process**: on low-dimensional spaces of mostly numeric
//!    parameters it is the most sample-efficient model (docs/benchmarks.md, `hpo
//!    bench samplers`), and it models conditional parameters too.
//!
//! Each rule reads only the space and the history, so every worker of a study
//! makes the same choice for the same trial, and a resumed study continues with
//! the model it would have used.

use rand::rngs::StdRng;

use crate::distribution::Distribution;
use crate::sampler::{GpConfig, GpSampler, Kept, RandomSampler, Sampler, TpeConfig, TpeSampler};
use crate::space::{Params, SearchSpace};
use crate::study::Direction;
use crate::trial::{FrozenTrial, TrialState};

/// Complete trials drawn at random before a model proposes (the GP's and TPE's
/// default startup).
pub const STARTUP_TRIALS: usize = 10;
/// The most complete trials a GP proposes from; TPE takes over after.
pub const GP_MAX_TRIALS: usize = 300;
/// The most GP inputs (a numeric parameter is one, a categorical one per choice).
pub const GP_MAX_INPUTS: usize = 20;

/// The model that proposes a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Random search.
    Random,
    /// The tree-structured Parzen estimator (multivariate, constant liar).
    Tpe,
    /// A Gaussian process with log expected improvement.
    Gp,
}

impl Model {
    /// The model's name, as `hpo show` and the report print it.
    pub fn name(self) -> &'static str {
        match self {
            Model::Random => "random",
            Model::Tpe => "tpe",
            Model::Gp => "gp",
        }
    }
}

/// What [`AutoSampler`] chose for one proposal, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The model.
    pub model: Model,
    /// Why, in a sentence a user reads (`hpo show`, the report).
    pub reason: String,
}

/// The facts about a space the rules read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shape {
    params: usize,
    categorical: usize,
    /// Inputs of numeric parameters (one each).
    numeric_inputs: usize,
    /// Inputs of categorical parameters (one per choice).
    choice_inputs: usize,
    /// A parameter whose condition's parent is itself conditional, if any.
    nested: Option<String>,
}

impl Shape {
    fn of(space: &SearchSpace) -> Shape {
        let mut shape = Shape {
            params: space.params.len(),
            categorical: 0,
            numeric_inputs: 0,
            choice_inputs: 0,
            nested: None,
        };
        for param in &space.params {
            match &param.distribution {
                Distribution::Categorical { choices } => {
                    shape.categorical += 1;
                    shape.choice_inputs += choices.len();
                }
                _ => shape.numeric_inputs += 1,
            }
            let parent = param.condition.as_ref().and_then(|c| space.get(&c.parent));
            if parent.is_some_and(|parent| parent.condition.is_some()) && shape.nested.is_none() {
                shape.nested = Some(param.name.clone());
            }
        }
        shape
    }

    fn inputs(&self) -> usize {
        self.numeric_inputs + self.choice_inputs
    }
}

/// `kind = "auto"`: a GP, TPE or random search for each proposal, by the rules in
/// the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct AutoSampler {
    /// Whether the study minimizes or maximizes.
    pub direction: Direction,
}

impl AutoSampler {
    /// The model for the next proposal in `space` after `history`, and why.
    pub fn choose(&self, space: &SearchSpace, history: &[&FrozenTrial]) -> Choice {
        let complete = history
            .iter()
            .filter(|t| t.state == TrialState::Complete && t.value.is_some_and(f64::is_finite))
            .count();
        let shape = Shape::of(space);
        let choice = |model, reason: String| Choice { model, reason };
        if complete < STARTUP_TRIALS {
            return choice(
                Model::Random,
                format!(
                    "{complete} of the first {STARTUP_TRIALS} complete trials, which are drawn at random before a model is fitted"
                ),
            );
        }
        if complete >= GP_MAX_TRIALS {
            return choice(
                Model::Tpe,
                format!(
                    "{complete} complete trials: past {GP_MAX_TRIALS} a Gaussian process costs more per proposal (cubic in the trials) than it gains, and TPE's cost grows linearly"
                ),
            );
        }
        if shape.inputs() > GP_MAX_INPUTS {
            return choice(
                Model::Tpe,
                format!(
                    "{} inputs: more than the {GP_MAX_INPUTS} a Gaussian process learns length scales for from a few hundred trials; TPE models each parameter's good and bad values",
                    shape.inputs()
                ),
            );
        }
        if shape.choice_inputs > shape.numeric_inputs {
            return choice(
                Model::Tpe,
                format!(
                    "{} of {} inputs are a categorical's choices: TPE counts how often each choice does well, where a Gaussian process sees little distance",
                    shape.choice_inputs,
                    shape.inputs()
                ),
            );
        }
        if let Some(name) = &shape.nested {
            return choice(
                Model::Tpe,
                format!(
                    "`{name}` depends on a parameter that is itself conditional: a tree of choices, which TPE models directly"
                ),
            );
        }
        let numeric = shape.params - shape.categorical;
        choice(
            Model::Gp,
            format!(
                "{numeric} numeric and {} categorical parameters ({} inputs) and {complete} complete trials: a Gaussian process is the most sample-efficient model there",
                shape.categorical,
                shape.inputs()
            ),
        )
    }

    fn sampler(&self, model: Model) -> Box<dyn Sampler> {
        let direction = self.direction;
        match model {
            Model::Random => Box::new(RandomSampler),
            Model::Tpe => Box::new(TpeSampler { config: TpeConfig::default(), direction }),
            Model::Gp => Box::new(GpSampler { config: GpConfig::default(), direction }),
        }
    }
}

impl Sampler for AutoSampler {
    fn sample(&self, space: &SearchSpace, history: &[FrozenTrial], rng: &mut StdRng) -> Params {
        let refs: Vec<&FrozenTrial> = history.iter().collect();
        self.sampler(self.choose(space, &refs).model).sample(space, history, rng)
    }

    fn sample_with_memo(&self, space: &SearchSpace, history: Kept<'_>, rng: &mut StdRng) -> Params {
        self.sampler(self.choose(space, history.trials).model).sample_with_memo(space, history, rng)
    }

    fn explain(&self, space: &SearchSpace, history: &[&FrozenTrial]) -> Option<String> {
        let choice = self.choose(space, history);
        Some(format!("{}: {}", choice.model.name(), choice.reason))
    }
}

#[cfg(test)]
mod tests;
