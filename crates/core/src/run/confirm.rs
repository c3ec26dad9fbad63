//! `hpo confirm`: train a study's best configurations again, with new seeds (with
//! several objectives, the Pareto front's first).
//!
//! A study's best trial won a selection among many noisy trainings, so its value is
//! optimistic (the winner's curse). Training its configuration again with other seeds
//! tells how much of that value was the configuration and how much the seed. Each
//! confirm run is an ordinary trial, run by the same `run_trial` as `run_study`'s
//! (curves, best step, early stopping, Ctrl-C), that carries `attr::CONFIRM_OF` =
//! the original's number, in a study of its own beside the searched one
//! ([`confirm_study_name`]: `NAME:confirm`, linked both ways by study user
//! attributes). So Optuna's tools (`best_trial`, importance, optuna-dashboard) see
//! only search trials in the study, the budget never counts a confirm run, the
//! pruner never stops one (`should_prune`), and each gets a training seed of its own
//! (a function of study seed, confirm-run flag and number). Confirm runs that older
//! versions stored in the study itself still count.
//!
//! The store says what is done, so `confirm` resumes: an original's Complete confirm
//! runs (and those another worker is still running) count toward `seeds`; failed
//! ones are run again. Start reading at [`confirm`].

use crate::Result;
use crate::error::Error;
use crate::objective::Objective;
use crate::run::{
    Event, Host, Placement, TrialEnd, best_trial, open_study, params_of, recover_orphans, run_trial,
};
use crate::spec::StudySpec;
use crate::storage::{NewStudy, Storage};
use crate::study::{Direction, Study, StudyId, confirm_study_name, study_attr};
use crate::trial::{AttrValue, FrozenTrial, TrialState, attr};

/// Which trials `confirm` trains again, and how often.
#[derive(Debug, Clone, Copy)]
pub struct ConfirmConfig {
    /// How many of the study's best Complete trials to confirm.
    pub top: usize,
    /// How many confirm runs each of them should have.
    pub seeds: usize,
}

/// An original trial and its confirm runs.
#[derive(Debug, Clone)]
pub struct ConfirmedTrial {
    /// The trial whose configuration was trained again.
    pub original: FrozenTrial,
    /// Its Complete confirm runs, in order of number (fewer than `seeds` when some
    /// failed or the run was interrupted).
    pub confirms: Vec<FrozenTrial>,
}

impl ConfirmedTrial {
    /// The confirm runs' values.
    pub fn values(&self) -> Vec<f64> {
        self.confirms.iter().filter_map(|t| t.value).collect()
    }

    /// The mean of the confirm runs' values (the original's is left out: it was
    /// selected for being good); `None` without any.
    pub fn mean(&self) -> Option<f64> {
        let values = self.values();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    }

    /// Each objective's mean over the confirm runs, in the study's order (empty
    /// without any).
    pub fn objective_means(&self) -> Vec<f64> {
        let runs: Vec<&[f64]> = self.confirms.iter().map(FrozenTrial::objective_values).collect();
        let n = runs.iter().map(|v| v.len()).min().unwrap_or(0);
        (0..n).map(|k| runs.iter().map(|v| v[k]).sum::<f64>() / runs.len() as f64).collect()
    }

    /// The sample standard deviation of the confirm runs' values; `None` with fewer
    /// than two.
    pub fn std(&self) -> Option<f64> {
        let values = self.values();
        if values.len() < 2 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let squares: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
        Some((squares / (values.len() - 1) as f64).sqrt())
    }
}

/// What `confirm` returns.
#[derive(Debug, Clone)]
pub struct ConfirmSummary {
    /// The study.
    pub study: Study,
    /// Confirm runs this call finished (0 when every original had its `seeds`).
    pub n_finished: usize,
    /// Whether the host reported an interruption (Ctrl-C) before every run was done.
    pub interrupted: bool,
    /// The originals, best first, each with its Complete confirm runs.
    pub trials: Vec<ConfirmedTrial>,
}

/// Trains the configurations of the study's `top` best Complete trials again until
/// each has `seeds` confirm runs (see the module docs). The study must exist and be
/// compatible with `spec`, as for a resume.
pub fn confirm(
    storage: &dyn Storage,
    spec: &StudySpec,
    objective: &dyn Objective,
    host: &dyn Host,
    config: ConfirmConfig,
) -> Result<ConfirmSummary> {
    // Confirming creates no study: one that does not exist has nothing to confirm.
    if storage.find_study(&spec.name)?.is_none() {
        return Err(Error::StudyNotFound(spec.name.clone()));
    }
    let study = open_study(storage, spec)?;
    let runs_study = open_confirm_study(storage, &study)?;
    recover_orphans(storage, study.id, host, 0)?;
    recover_orphans(storage, runs_study.id, host, 0)?;
    let trials = storage.trials(study.id, None)?;
    let runs = confirm_runs(storage, &study)?;
    let originals = top_trials(&trials, &spec.directions, config.top);
    let n_confirms = |number: u64| {
        runs.iter()
            .filter(|t| t.confirm_of() == Some(number))
            .filter(|t| matches!(t.state, TrialState::Complete | TrialState::Running))
            .count()
            .min(config.seeds)
    };
    let wanted = originals.len() * config.seeds;
    let mut n_counted: usize = originals.iter().map(|t| n_confirms(t.number)).sum();
    let owner = host.owner();
    let mut n_finished = 0;
    let mut interrupted = false;
    // Confirm runs are not candidates: the study's best stays what it was.
    let best = best_trial(&trials, spec.direction);
    // Confirm runs train for long: each step is written as it comes.
    let steps = super::steps::StepWriter::unbatched(host);
    'originals: for original in &originals {
        for _ in n_confirms(original.number)..config.seeds {
            if host.interrupted() {
                interrupted = true;
                break 'originals;
            }
            let Some(trial) = start_confirm_run(storage, runs_study.id, original, &owner)? else {
                // Storages create a trial whenever no budget is given.
                tracing::error!("the storage refused to create a trial without a budget");
                break 'originals;
            };
            n_counted += 1;
            host.event(Event::Started { trial: &trial, budget: Some(wanted), n_counted });
            let end = run_trial(
                storage,
                runs_study.id,
                spec,
                objective,
                host,
                &trial,
                Placement::ALONE,
                None,
                &steps,
            )?;
            let cut_short = end == TrialEnd::Interrupted;
            n_finished += 1;
            let finished = storage.trial(trial.id)?;
            host.event(Event::Finished { trial: &finished, best: best.as_ref() });
            if cut_short {
                interrupted = true;
                break 'originals;
            }
        }
    }
    let complete: Vec<FrozenTrial> = confirm_runs(storage, &study)?
        .into_iter()
        .filter(|t| t.state == TrialState::Complete)
        .collect();
    let trials = originals
        .into_iter()
        .map(|original| {
            let confirms = complete
                .iter()
                .filter(|t| t.confirm_of() == Some(original.number))
                .cloned()
                .collect();
            ConfirmedTrial { original, confirms }
        })
        .collect();
    Ok(ConfirmSummary { study, n_finished, interrupted, trials })
}

/// Every confirm run of `study`: those in its confirm study (`NAME:confirm`), after
/// any that an older version stored in the study itself. Empty when it has none.
pub fn confirm_runs(storage: &dyn Storage, study: &Study) -> Result<Vec<FrozenTrial>> {
    let mut runs: Vec<FrozenTrial> =
        storage.trials(study.id, None)?.into_iter().filter(|t| t.confirm_of().is_some()).collect();
    if let Some(runs_study) = storage.find_study(&confirm_study_name(&study.name))? {
        runs.extend(
            storage.trials(runs_study.id, None)?.into_iter().filter(|t| t.confirm_of().is_some()),
        );
    }
    Ok(runs)
}

/// The confirm runs of trial `number` of `study`, from its confirm study alone
/// (those an older version stored in the study itself would take a read of every
/// trial to find; [`confirm_runs`] has them).
pub fn confirm_runs_of(
    storage: &dyn Storage,
    study: &Study,
    number: u64,
) -> Result<Vec<FrozenTrial>> {
    let Some(runs_study) = storage.find_study(&confirm_study_name(&study.name))? else {
        return Ok(Vec::new());
    };
    let runs = storage.trials(runs_study.id, None)?;
    Ok(runs.into_iter().filter(|t| t.confirm_of() == Some(number)).collect())
}

/// The study of `study`'s confirm runs, created (and linked both ways by study user
/// attributes) the first time.
fn open_confirm_study(storage: &dyn Storage, study: &Study) -> Result<Study> {
    let name = confirm_study_name(&study.name);
    let runs_study = match storage.find_study(&name)? {
        Some(found) => found,
        None => {
            let new = NewStudy {
                name: name.clone(),
                directions: study.directions.clone(),
                metrics: study.metrics.clone(),
                spec_text: None,
                queued: Vec::new(),
            };
            match storage.create_study(&new) {
                // Another process made it first.
                Ok(_) | Err(Error::StudyExists(_)) => {}
                Err(err) => return Err(err),
            }
            storage.find_study(&name)?.ok_or_else(|| Error::StudyNotFound(name.clone()))?
        }
    };
    storage.set_study_user_attrs(
        study.id,
        &[(study_attr::CONFIRM_STUDY.to_owned(), AttrValue::Str(name))],
    )?;
    storage.set_study_user_attrs(
        runs_study.id,
        &[(study_attr::CONFIRMS.to_owned(), AttrValue::Str(study.name.clone()))],
    )?;
    Ok(runs_study)
}

/// The `top` best Complete trials that are not confirm runs, best first (the lower
/// number first among ties); trials without a value, or a NaN one, are not ranked.
/// The study's best `top` Complete search trials ([`crate::pareto::best_first`]:
/// by value; with several objectives, the Pareto front first).
fn top_trials(trials: &[FrozenTrial], directions: &[Direction], top: usize) -> Vec<FrozenTrial> {
    let search: Vec<&FrozenTrial> = trials.iter().filter(|t| t.confirm_of().is_none()).collect();
    crate::pareto::best_first(&search, directions).into_iter().take(top).cloned().collect()
}

/// Creates a Running trial marked as a confirm run of `original`, with its parameters.
/// `None` only if the storage breaks its contract (no budget is given).
fn start_confirm_run(
    storage: &dyn Storage,
    study: StudyId,
    original: &FrozenTrial,
    owner: &str,
) -> Result<Option<FrozenTrial>> {
    let attrs = [
        (attr::CONFIRM_OF.to_owned(), AttrValue::Number(original.number as f64)),
        (attr::OWNER.to_owned(), AttrValue::Str(owner.to_owned())),
    ];
    let Some(mut trial) = storage.create_running_trial(study, None, &attrs)? else {
        return Ok(None);
    };
    let params = params_of(original);
    storage.set_trial_params(trial.id, &params)?;
    for (name, value, distribution) in params {
        trial.params.insert(name.clone(), value);
        trial.distributions.insert(name, distribution);
    }
    Ok(Some(trial))
}
