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
use crate::run::finished_values::FinishedValues;
use crate::run::{History, ask, open_study, should_prune};
use crate::sampler::{self, Sampler};
use crate::spec::{ObjectiveSpec, SamplerSpec, StudySpec};
use crate::storage::Storage;
use crate::study::Study;
use crate::trial::{FrozenTrial, TrialId, TrialState};

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

/// An external study opened once, for a process that answers many asks, steps and
/// tells (`hpo serve`): its stored record, its study file, its sampler, what the
/// sampler has read of its trials ([`History`]) and what the pruner has read of
/// the finished ones, so that a step costs the same at trial 10 and at trial
/// 10,000, and an ask reads only the trials finished since the last. (`hpo
/// report-step`, one process per step, opens it for that step: it reads every
/// finished trial the pruner needs, each time.)
pub struct ExternalStudy {
    /// The stored study.
    pub study: Study,
    /// Its study file.
    pub spec: StudySpec,
    sampler: Box<dyn Sampler>,
    budget: Option<usize>,
    history: History,
    /// What the pruner reads of the finished trials, kept across steps: a step
    /// reads only the trials finished since the last.
    finished_values: Option<FinishedValues>,
}

/// A told trial: its number, and the state and value it ended with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Told {
    /// The trial's store id.
    pub id: TrialId,
    /// Its number in the study.
    pub number: u64,
    /// Complete, pruned or failed.
    pub state: TrialState,
    /// The value of a complete trial.
    pub value: Option<f64>,
}

impl ExternalStudy {
    /// Opens the study of `spec`, creating it on first use; an error unless its
    /// objective is `external` and the stored study has the same space, metric
    /// and direction.
    pub fn open(storage: &dyn Storage, spec: StudySpec) -> Result<ExternalStudy> {
        if spec.objective != ObjectiveSpec::External {
            return Err(Error::Incompatible {
                study: spec.name.clone(),
                reason: "is not driven from outside; ask and tell need `[objective] kind = \"external\"` (run this one with `hpo run`)".into(),
            });
        }
        let study = open_study(storage, &spec)?;
        let sampler = sampler::from_spec(spec.sampler, &spec.directions);
        let budget = spec.trials.or_else(|| match spec.sampler {
            SamplerSpec::Grid => Some(sampler::grid::count_points(&spec.space)),
            _ => None,
        });
        let finished_values = FinishedValues::for_pruner(spec.pruner);
        Ok(ExternalStudy {
            study,
            spec,
            sampler,
            budget,
            history: History::default(),
            finished_values,
        })
    }

    /// Creates (or claims a queued) Running trial with proposed parameters. `None`
    /// when the study's budget is met.
    pub fn ask(&self, storage: &dyn Storage) -> Result<Option<FrozenTrial>> {
        let (study, spec) = (self.study.id, &self.spec);
        ask(storage, study, spec, self.sampler.as_ref(), self.budget, EXTERNAL_OWNER, &self.history)
    }

    /// The id of Running trial `number`, or an error saying what it is instead.
    fn running_trial(&self, storage: &dyn Storage, number: u64) -> Result<TrialId> {
        let name = || self.study.name.clone();
        match storage.trial_state_by_number(self.study.id, number)? {
            None => Err(Error::NoSuchTrial { study: name(), number }),
            Some((id, TrialState::Running)) => Ok(id),
            Some((_, state)) => Err(Error::NotRunning { study: name(), number, state }),
        }
    }

    /// Records the objective's value at `step` for Running trial `number` and asks
    /// the study's pruner: `Some(reason)` when the trial should stop (the reason is
    /// also stored on the trial; the caller then tells it `Outcome::Pruned`).
    pub fn report_step(
        &self,
        storage: &dyn Storage,
        number: u64,
        step: u64,
        value: f64,
    ) -> Result<Option<String>> {
        let id = self.running_trial(storage, number)?;
        if !value.is_finite() {
            let at = format!("at step {step} of ");
            return Err(Error::NotFinite { study: self.study.name.clone(), number, at, value });
        }
        let spec = &self.spec;
        storage.report(id, step, value, &[(spec.metric.clone(), value)])?;
        if !spec.pruner.is_active() {
            return Ok(None);
        }
        let kept = self.finished_values.as_ref();
        if let Some(kept) = kept {
            kept.refresh(storage, self.study.id)?;
        }
        let trial = storage.trial(id)?;
        should_prune(storage, self.study.id, spec, &trial, &trial.intermediate_values, step, kept)
    }

    /// Finishes Running trial `number` with `outcome`.
    pub fn tell(&self, storage: &dyn Storage, number: u64, outcome: Outcome) -> Result<Told> {
        let id = self.running_trial(storage, number)?;
        let (state, value) = match outcome {
            Outcome::Complete(value) if !value.is_finite() => {
                let study = self.study.name.clone();
                return Err(Error::NotFinite { study, number, at: String::new(), value });
            }
            Outcome::Complete(value) => (TrialState::Complete, Some(value)),
            Outcome::Pruned => (TrialState::Pruned, None),
            Outcome::Fail => (TrialState::Fail, None),
        };
        storage.finish_trial(id, state, value.as_slice())?;
        Ok(Told { id, number, state, value })
    }
}

/// Creates (or claims a queued) Running trial with proposed parameters, creating
/// the study on first use. `None` when the study's budget is met.
pub fn ask_external(storage: &dyn Storage, spec: &StudySpec) -> Result<Option<FrozenTrial>> {
    ExternalStudy::open(storage, spec.clone())?.ask(storage)
}

/// Finishes Running trial `number` with `outcome`; returns the finished trial.
pub fn tell(
    storage: &dyn Storage,
    spec: &StudySpec,
    number: u64,
    outcome: Outcome,
) -> Result<FrozenTrial> {
    let told = ExternalStudy::open(storage, spec.clone())?.tell(storage, number, outcome)?;
    storage.trial(told.id)
}

/// [`ExternalStudy::report_step`] of the study of `spec`.
pub fn report_step(
    storage: &dyn Storage,
    spec: &StudySpec,
    number: u64,
    step: u64,
    value: f64,
) -> Result<Option<String>> {
    ExternalStudy::open(storage, spec.clone())?.report_step(storage, number, step, value)
}

#[cfg(test)]
mod tests;
