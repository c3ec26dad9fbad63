//! Ask and tell for studies whose objective runs outside hpo (`[objective] kind =
//! "external"`): a shell or Python script asks for a trial's parameters, runs
//! whatever it wants, reports curve points, and tells the outcome. The trials go
//! through the same store and samplers as `hpo run`'s; a running external trial is
//! one that was asked and not yet told, and samplers that treat running trials
//! (TPE's constant liar) see it, so several scripts asking at once get different
//! proposals.
//!
//! Nothing watches an external trial: one whose script died stays Running until
//! someone tells it (`Outcome::Fail`).

use crate::Result;
use crate::error::Error;
use crate::run::{ask, open_study, should_prune};
use crate::sampler::{self, Sampler};
use crate::spec::{ObjectiveSpec, SamplerSpec, StudySpec};
use crate::storage::Storage;
use crate::study::Study;
use crate::trial::{FrozenTrial, TrialState};

/// The owner recorded on trials handed out by [`ask_external`].
pub const EXTERNAL_OWNER: &str = "external";

/// How a told trial ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Finished with this objective value.
    Complete(f64),
    /// Stopped early because it looked worse than others; its reported curve is
    /// kept (samplers rank it by its last reported value).
    Pruned,
    /// Failed; no value.
    Fail,
}

fn external_study(storage: &dyn Storage, spec: &StudySpec) -> Result<Study> {
    if spec.objective != ObjectiveSpec::External {
        return Err(Error::Incompatible {
            study: spec.name.clone(),
            reason: "is not driven from outside; ask and tell need `[objective] kind = \"external\"` (run this one with `hpo run`)".into(),
        });
    }
    open_study(storage, spec)
}

/// Creates (or claims a queued) Running trial with proposed parameters, creating
/// the study on first use. `None` when the study's budget is met.
pub fn ask_external(storage: &dyn Storage, spec: &StudySpec) -> Result<Option<FrozenTrial>> {
    let study = external_study(storage, spec)?;
    let sampler: Box<dyn Sampler> = sampler::from_spec(spec.sampler, spec.direction);
    let budget = spec.trials.or_else(|| match spec.sampler {
        SamplerSpec::Grid => Some(sampler::grid::count_points(&spec.space)),
        _ => None,
    });
    ask(storage, study.id, spec, sampler.as_ref(), budget, EXTERNAL_OWNER)
}

/// The Running trial `number` of the study, or an error saying what it is instead.
fn running_trial(storage: &dyn Storage, study: &Study, number: u64) -> Result<FrozenTrial> {
    let trial = storage
        .trial_by_number(study.id, number)?
        .ok_or_else(|| Error::NoSuchTrial { study: study.name.clone(), number })?;
    if trial.state != TrialState::Running {
        return Err(Error::NotRunning { study: study.name.clone(), number, state: trial.state });
    }
    Ok(trial)
}

/// Finishes Running trial `number` with `outcome`; returns the finished trial.
pub fn tell(
    storage: &dyn Storage,
    spec: &StudySpec,
    number: u64,
    outcome: Outcome,
) -> Result<FrozenTrial> {
    let study = external_study(storage, spec)?;
    let trial = running_trial(storage, &study, number)?;
    match outcome {
        Outcome::Complete(value) if !value.is_finite() => {
            return Err(Error::NotFinite { study: study.name, number, at: String::new(), value });
        }
        Outcome::Complete(value) => {
            storage.finish_trial(trial.id, TrialState::Complete, Some(value))?
        }
        Outcome::Pruned => storage.finish_trial(trial.id, TrialState::Pruned, None)?,
        Outcome::Fail => storage.finish_trial(trial.id, TrialState::Fail, None)?,
    }
    storage.trial(trial.id)
}

/// Records the objective's value at `step` for Running trial `number` and asks
/// the study's pruner: `Some(reason)` when the trial should stop (the reason is
/// also stored on the trial; the caller then tells it `Outcome::Pruned`).
pub fn report_step(
    storage: &dyn Storage,
    spec: &StudySpec,
    number: u64,
    step: u64,
    value: f64,
) -> Result<Option<String>> {
    let study = external_study(storage, spec)?;
    let trial = running_trial(storage, &study, number)?;
    if !value.is_finite() {
        let at = format!("at step {step} of ");
        return Err(Error::NotFinite { study: study.name, number, at, value });
    }
    storage.report(trial.id, step, value, &[(spec.metric.clone(), value)])?;
    let mut curve = trial.intermediate_values.clone();
    curve.insert(step, value);
    should_prune(storage, study.id, spec, &trial, &curve, step, None)
}

#[cfg(test)]
mod tests;
