//! The study loop: open (or resume) a study, then ask, run and tell until the
//! budget is met, the timeout passes, or the run is interrupted.
//!
//! This is the only code that touches Storage on behalf of samplers and objectives.
//! What it needs from the outside world (a clock, whether Ctrl-C was pressed,
//! whether another process is alive, somewhere to show progress) comes through the
//! [`Host`] trait, so the loop itself does no IO and is tested with the in-memory
//! storage.
//!
//! Budget: a study runs until `trials` trials count toward the budget (every trial
//! except queued ones, confirm runs and those failed by an interruption; see
//! `FrozenTrial::counts_toward_budget`). Running a study file again resumes it.
//!
//! `confirm.rs` trains a finished study's best configurations again with new seeds
//! (`hpo confirm`), through the same `run_trial`, outside the budget.

mod confirm;
mod devices;
pub mod external;
mod finished_values;
mod history;
mod steps;

pub use confirm::{
    ConfirmConfig, ConfirmSummary, ConfirmedTrial, confirm, confirm_runs, confirm_runs_of,
};
pub use history::{FinishedFeed, History};

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::Result;
use crate::distribution::{Distribution, ParamValue};
use crate::early_stopping::{EarlyStopping, EarlyStoppingDecision};
use crate::error::Error;
use crate::objective::{Objective, ObjectiveOutput, Reporter, Stop, TrialContext, TrialFailure};
use crate::pruner::PrunerKind;
use crate::sampler::{self, Sampler, grid};
use crate::space::{Params, SearchSpace};
use crate::spec::{Devices, ObjectiveSpec, SamplerSpec, StudySpec, TrainingSpec};
use crate::storage::{NewStudy, NewTrial, ReportedStep, Storage};
use crate::study::{Direction, Study, StudyId};
use crate::trial::{AttrValue, FrozenTrial, Timestamp, TrialState, attr};

use self::devices::{DeviceShare, Turn};
use self::finished_values::FinishedValues;
use self::steps::{Pending, StepWriter};

/// The loop's window on the world.
pub trait Host: Sync {
    /// Time since the run started (for `timeout`).
    fn elapsed(&self) -> Duration;
    /// Whether the user asked the run to stop (Ctrl-C).
    fn interrupted(&self) -> bool;
    /// This process's identity, stored on the trials it runs (`attr::OWNER`).
    fn owner(&self) -> String;
    /// Whether a Running trial was abandoned: its owner process is gone, or its last
    /// heartbeat is too old.
    fn is_orphaned(&self, trial: &FrozenTrial, last_heartbeat: Option<Timestamp>) -> bool;
    /// Progress, for a progress bar or log lines.
    fn event(&self, event: Event<'_>);
    /// The folder of trial `number` of study `study`, where its objective may keep
    /// files (a trained model); `None` (the default) keeps none.
    fn trial_folder(&self, study: &str, number: u64) -> Option<std::path::PathBuf> {
        let _ = (study, number);
        None
    }
}

/// What the loop tells the host as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// A Running trial of a dead process was marked Fail.
    Recovered {
        /// The trial, as stored after it was marked Fail.
        trial: &'a FrozenTrial,
        /// Whether it was queued to run again (its grid point, or a retry with the
        /// same parameters under `max_retries`).
        queued_again: bool,
    },
    /// The objective changed how many trials a device runs at once
    /// (`trials_per_device = "auto"`; [`Objective::capacity`]): told once per
    /// change, by the worker that first sees it.
    DeviceFitted {
        /// The device.
        device: &'a str,
        /// Trials at once on it from now on.
        remaining: usize,
        /// Why (the objective's words).
        why: &'a str,
    },
    /// A worker left its device after a trial ran out of memory there.
    DeviceShrunk {
        /// The device.
        device: &'a str,
        /// Workers still running trials on it.
        remaining: usize,
    },
    /// A trial was claimed or created, with its parameters, and is about to run.
    Started {
        /// The trial.
        trial: &'a FrozenTrial,
        /// The budget the run goes to, if any (for [`confirm`], the confirm runs it
        /// wants in all).
        budget: Option<usize>,
        /// Trials that count toward the budget, this one included (for [`confirm`],
        /// its confirm runs done or running, this one included).
        n_counted: usize,
    },
    /// A trial reported a step and it was recorded.
    Step {
        /// The trial's number.
        number: u64,
        /// The step (epoch) reported.
        step: u64,
        /// The study metric's value at that step (may be NaN).
        value: f64,
    },
    /// A trial ended (Complete, Pruned or Fail) and its outcome was recorded.
    Finished {
        /// The trial, as stored after it ended.
        trial: &'a FrozenTrial,
        /// The study's best Complete trial so far, if any.
        best: Option<&'a FrozenTrial>,
    },
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// The budget is met (or every grid point is taken): no trial is left to run.
    BudgetMet,
    /// The timeout passed; the trial running then was finished, no new one started.
    TimedOut,
    /// The host reported an interruption (Ctrl-C); a trial it cut short is stored as an
    /// interrupted Fail, which does not count toward the budget.
    Interrupted,
}

/// What `run_study` returns.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The study that ran.
    pub study: Study,
    /// Why the run ended.
    pub end: RunEnd,
    /// Trials this run finished.
    pub n_finished: usize,
    /// Of those, the ones that failed (not counting interrupted ones), by reason.
    pub failures: BTreeMap<String, usize>,
    /// The study's best Complete trial over every run so far, if any.
    pub best: Option<FrozenTrial>,
}

/// Overrides from the command line.
#[derive(Debug, Clone, Copy)]
pub struct RunConfig {
    /// The budget, replacing the study file's `trials`.
    pub trials: Option<usize>,
    /// The time after which no new trial starts, replacing the study file's `timeout`.
    pub timeout: Option<Duration>,
    /// Trials run at once (threads), replacing the study file's `workers`.
    pub workers: Option<usize>,
}

/// The study `spec` describes, to be created with `queued` trials queued.
pub fn new_study(spec: &StudySpec, queued: Vec<NewTrial>) -> NewStudy {
    NewStudy {
        name: spec.name.clone(),
        directions: spec.directions.clone(),
        metrics: spec.metrics.clone(),
        spec_text: Some(spec.text.clone()),
        queued,
    }
}

/// Gets the study of a spec, creating it (with its grid queued) or checking that the
/// stored one has the same space, metric and direction.
pub fn open_study(storage: &dyn Storage, spec: &StudySpec) -> Result<Study> {
    if let Some(study) = storage.find_study(&spec.name)? {
        return check_compatible(study, spec);
    }
    let queued = match spec.sampler {
        SamplerSpec::Grid => grid::grid_points(&spec.space)
            .into_iter()
            .enumerate()
            .map(|(idx, point)| NewTrial {
                params: with_distributions(&spec.space, &point),
                system_attrs: vec![(attr::GRID_POINT.to_owned(), AttrValue::Number(idx as f64))],
            })
            .collect(),
        SamplerSpec::Random
        | SamplerSpec::Tpe(_)
        | SamplerSpec::Gp(_)
        | SamplerSpec::Auto
        | SamplerSpec::Nsga2(_) => Vec::new(),
    };
    match storage.create_study(&new_study(spec, queued)) {
        Ok(_) => {}
        // Another process created it between our find and create: use theirs.
        Err(Error::StudyExists(_)) => {}
        Err(err) => return Err(err),
    }
    let study =
        storage.find_study(&spec.name)?.ok_or_else(|| Error::StudyNotFound(spec.name.clone()))?;
    check_compatible(study, spec)
}

fn check_compatible(study: Study, spec: &StudySpec) -> Result<Study> {
    let incompatible = |reason: String| Error::Incompatible { study: spec.name.clone(), reason };
    let Some(text) = &study.spec_text else {
        return Err(incompatible(
            "was not created from a study file (an Optuna study?); give this study file a new `[study] name`".into(),
        ));
    };
    // The same file as stored: compatible, without parsing it again (ask, report
    // and tell over HTTP open the study at every call).
    if *text == spec.text {
        return Ok(study);
    }
    let stored = StudySpec::parse(text, "<stored study file>")?;
    if stored.directions != spec.directions || stored.metrics != spec.metrics {
        let objectives = |it: &StudySpec| {
            let each: Vec<String> =
                it.metrics.iter().zip(&it.directions).map(|(m, d)| format!("{d}s `{m}`")).collect();
            each.join(" and ")
        };
        return Err(incompatible(format!(
            "{}, and this file {}; give it a new `[study] name`",
            objectives(&stored),
            objectives(spec)
        )));
    }
    if stored.sampler.name() != spec.sampler.name() {
        return Err(incompatible(format!(
            "uses the {} sampler and this file the {} sampler; give it a new `[study] name`",
            stored.sampler.name(),
            spec.sampler.name()
        )));
    }
    // Trial k's proposals and training depend on the seed: a new seed would make the
    // resumed study a different experiment.
    if stored.seed != spec.seed {
        return Err(incompatible(format!(
            "has seed {} and this file seed {}; restore the seed or give it a new `[study] name`",
            stored.seed, spec.seed
        )));
    }
    // Trials trained differently are not comparable; only the device may change.
    if without_device(&stored.objective) != without_device(&spec.objective) {
        return Err(incompatible(
            "was created with a different [objective] (kind, function, model, dataset, max_epochs or fixed hyperparameters); only `device` may change when resuming; restore it or give it a new `[study] name`"
                .into(),
        ));
    }
    let changes = stored.space.diff(&spec.space);
    if !changes.is_empty() {
        return Err(Error::SpaceChanged { study: spec.name.clone(), changes });
    }
    Ok(study)
}

fn without_device(objective: &ObjectiveSpec) -> ObjectiveSpec {
    match objective {
        ObjectiveSpec::Training(training) => ObjectiveSpec::Training(TrainingSpec {
            devices: Devices::default(),
            keep_models: 0,
            ..training.clone()
        }),
        other => other.clone(),
    }
}

/// Pairs each value of a point with its parameter's distribution, in space order.
pub fn with_distributions(
    space: &SearchSpace,
    params: &Params,
) -> Vec<(String, ParamValue, Distribution)> {
    space
        .params
        .iter()
        .filter_map(|p| {
            params.get(&p.name).map(|v| (p.name.clone(), v.clone(), p.distribution.clone()))
        })
        .collect()
}

/// A stored trial's parameter values with their distributions, to set them on another.
fn params_of(trial: &FrozenTrial) -> Vec<(String, ParamValue, Distribution)> {
    trial
        .params
        .iter()
        .filter_map(|(name, value)| {
            trial.distributions.get(name).map(|d| (name.clone(), value.clone(), d.clone()))
        })
        .collect()
}

/// Marks the study's abandoned Running trials Fail (interrupted) and queues their
/// grid points again, or, up to `max_retries` times per trial, its parameters as a
/// retry. Returns the trials it recovered.
pub fn recover_orphans(
    storage: &dyn Storage,
    study: StudyId,
    host: &dyn Host,
    max_retries: usize,
) -> Result<Vec<FrozenTrial>> {
    let mut recovered = Vec::new();
    for trial in storage.trials(study, Some(&[TrialState::Running]))? {
        let heartbeat = storage.last_heartbeat(trial.id)?;
        if !host.is_orphaned(&trial, heartbeat) {
            continue;
        }
        let reason = "the worker running this trial stopped (killed or crashed)";
        let queued_again = match fail_interrupted(
            storage,
            study,
            &trial,
            reason,
            Requeue::UpToRetries(max_retries),
        ) {
            Ok(queued_again) => queued_again,
            // Another process recovered it first.
            Err(Error::TrialFinished { .. }) => continue,
            Err(err) => return Err(err),
        };
        let trial = storage.trial(trial.id)?;
        host.event(Event::Recovered { trial: &trial, queued_again });
        recovered.push(trial);
    }
    Ok(recovered)
}

/// What to queue after a trial's run was cut short.
#[derive(Debug, Clone, Copy)]
enum Requeue {
    /// Its grid point always; other trials with the same parameters while their
    /// retries are fewer than this (`max_retries`).
    UpToRetries(usize),
    /// The same parameters, always, marked `attr::AFTER_OUT_OF_MEMORY`: the trial
    /// ran out of device memory while sharing it, through no fault of its own.
    AfterOutOfMemory,
}

/// Fails a trial whose run was cut short (it gives its budget slot back) and queues
/// it again as `requeue` says; `attr::RETRY_OF` links a retry to the first attempt.
/// Failing and queuing are one storage change, and only the caller that finishes
/// the trial queues it: two workers recovering the same trial queue it once, and a
/// worker killed in the middle loses no retry. Returns whether it was queued.
fn fail_interrupted(
    storage: &dyn Storage,
    study: StudyId,
    trial: &FrozenTrial,
    reason: &str,
    requeue: Requeue,
) -> Result<bool> {
    storage.set_trial_system_attr(trial.id, attr::INTERRUPTED, &AttrValue::Bool(true))?;
    storage.set_trial_system_attr(
        trial.id,
        attr::FAIL_REASON,
        &AttrValue::Str(reason.to_owned()),
    )?;
    let grid_point = trial
        .system_attrs
        .get(attr::GRID_POINT)
        .map(|point| (attr::GRID_POINT.to_owned(), point.clone()));
    let first = trial.retry_of().unwrap_or(trial.number);
    let retry_of = (attr::RETRY_OF.to_owned(), AttrValue::Number(first as f64));
    let system_attrs = match requeue {
        Requeue::AfterOutOfMemory => {
            let after = (attr::AFTER_OUT_OF_MEMORY.to_owned(), AttrValue::Bool(true));
            [retry_of, after].into_iter().chain(grid_point).collect()
        }
        Requeue::UpToRetries(_) if grid_point.is_some() => {
            [retry_of].into_iter().chain(grid_point).collect()
        }
        Requeue::UpToRetries(max_retries) => {
            let n_retries = || -> Result<usize> {
                Ok(storage
                    .trials(study, None)?
                    .iter()
                    .filter(|t| t.retry_of() == Some(first))
                    .count())
            };
            if max_retries == 0
                || trial.params.is_empty()
                || trial.confirm_of().is_some()
                || n_retries()? >= max_retries
            {
                storage.fail_and_enqueue(trial.id, study, None)?;
                return Ok(false);
            }
            vec![retry_of]
        }
    };
    let retry = NewTrial { params: params_of(trial), system_attrs };
    storage.fail_and_enqueue(trial.id, study, Some(&retry))?;
    Ok(true)
}

/// Claims a queued trial or creates one and samples its parameters, the sampler
/// reading the study's trials through `history` (kept across asks by a
/// long-lived process). `None` when the budget is met (or, for a grid, every point
/// is taken).
///
/// A new trial is one write, its parameters included: a sampler that reads no
/// history proposes while the trial is created; one that does reads the history
/// first and proposes for the number the trial will get when no other process
/// creates one meanwhile (one past the study's highest). When another did, the
/// trial gets its own number's proposal in a second write.
pub fn ask(
    storage: &dyn Storage,
    study: StudyId,
    spec: &StudySpec,
    sampler: &dyn Sampler,
    budget: Option<usize>,
    owner: &str,
    history: &History,
) -> Result<Option<FrozenTrial>> {
    let attrs = [(attr::OWNER.to_owned(), AttrValue::Str(owner.to_owned()))];
    if let Some(trial) = storage.claim_waiting_trial(study, budget, &attrs)? {
        return Ok(Some(trial));
    }
    if spec.sampler == SamplerSpec::Grid {
        return Ok(None);
    }
    if !sampler.needs_history() {
        let propose = |number| Some(proposal(spec, sampler, None, number));
        return storage.create_running_trial_with(study, budget, &attrs, &propose);
    }
    let (guess, proposed) = history.read(storage, study, None, |trials, memo, next| {
        (next, proposal(spec, sampler, Some(sampler::Kept { trials, memo }), next))
    })?;
    let propose = |number| (number == guess).then(|| proposed.clone());
    let Some(mut trial) = storage.create_running_trial_with(study, budget, &attrs, &propose)?
    else {
        return Ok(None);
    };
    if trial.number != guess {
        let number = trial.number;
        let proposed = history.read(storage, study, Some(trial.id), |trials, memo, _| {
            proposal(spec, sampler, Some(sampler::Kept { trials, memo }), number)
        })?;
        for (key, value) in &proposed.system_attrs {
            storage.set_trial_system_attr(trial.id, key, value)?;
        }
        storage.set_trial_params(trial.id, &proposed.params)?;
        proposed.apply_to(&mut trial);
    }
    Ok(Some(trial))
}

/// What `sampler` proposes for trial `number` after `kept` (`None` for a sampler
/// that reads no history): the parameters with their distributions, and the
/// sampler's explanation of its choice as `attr::SAMPLER`, when it gives one.
fn proposal(
    spec: &StudySpec,
    sampler: &dyn Sampler,
    kept: Option<sampler::Kept<'_>>,
    number: u64,
) -> NewTrial {
    let mut rng = sampler::trial_rng(spec.seed, number);
    let (params, why) = match kept {
        Some(kept) => {
            let why = sampler.explain(&spec.space, kept.trials);
            (sampler.sample_with_memo(&spec.space, kept, &mut rng), why)
        }
        None => (sampler.sample(&spec.space, &[], &mut rng), None),
    };
    NewTrial {
        params: with_distributions(&spec.space, &params),
        system_attrs: why
            .map(|it| (attr::SAMPLER.to_owned(), AttrValue::Str(it)))
            .into_iter()
            .collect(),
    }
}

/// Runs a study until its budget is met, its timeout passes, or the host says stop.
pub fn run_study(
    storage: &dyn Storage,
    spec: &StudySpec,
    objective: &dyn Objective,
    host: &dyn Host,
    config: RunConfig,
) -> Result<RunSummary> {
    run_study_with_prior(storage, spec, objective, host, config, Vec::new())
}

/// [`run_study`] whose sampler also learns from `prior`, finished trials of earlier
/// studies over the same space (see [`History::with_prior`]).
pub fn run_study_with_prior(
    storage: &dyn Storage,
    spec: &StudySpec,
    objective: &dyn Objective,
    host: &dyn Host,
    config: RunConfig,
    prior: Vec<FrozenTrial>,
) -> Result<RunSummary> {
    let study = open_study(storage, spec)?;
    let sampler = sampler::from_spec(spec.sampler, &spec.directions);
    let budget = config.trials.or(spec.trials).or_else(|| match spec.sampler {
        SamplerSpec::Grid => Some(grid::count_points(&spec.space)),
        SamplerSpec::Random
        | SamplerSpec::Tpe(_)
        | SamplerSpec::Gp(_)
        | SamplerSpec::Auto
        | SamplerSpec::Nsga2(_) => None,
    });
    let timeout = config.timeout.or(spec.timeout);
    let devices = DeviceShare::new(spec, config.workers)?;
    let workers = devices.slots().len();
    let worker = Worker {
        storage,
        study: &study,
        spec,
        objective,
        host,
        sampler: sampler.as_ref(),
        budget,
        timeout,
        owner: host.owner(),
        stop: AtomicBool::new(false),
        devices,
        last_recovery: std::sync::Mutex::new(None),
        workers,
        best: std::sync::Mutex::new(best_in_store(storage, study.id, spec.direction)?),
        failures: std::sync::Mutex::new(BTreeMap::new()),
        finished_values: FinishedValues::for_pruner(spec.pruner),
        history: History::with_prior(prior),
        steps: StepWriter::batched(host),
    };
    let slots = worker.devices.slots();
    let results: Vec<Result<(usize, RunEnd)>> = std::thread::scope(|scope| {
        let worker = &worker;
        // Writes the steps that came too fast to be written one by one, until the
        // workers are done (the sender is dropped).
        let (done, stopped) = std::sync::mpsc::channel::<()>();
        scope.spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(steps::WRITE_EVERY / 2)
            {
                worker.steps.write_due(storage);
            }
        });
        let results = if slots.len() == 1 {
            vec![worker.run(slots[0].as_deref())]
        } else {
            let handles: Vec<_> =
                slots.iter().map(|slot| scope.spawn(move || worker.run(slot.as_deref()))).collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle.join().unwrap_or_else(|panic| {
                        Err(Error::Worker(format!(
                            "a worker thread panicked: {}",
                            panic_message(&panic)
                        )))
                    })
                })
                .collect()
        };
        drop(done);
        results
    });
    let mut n_finished = 0;
    let mut end = RunEnd::BudgetMet;
    for result in results {
        let (n, worker_end) = result?;
        n_finished += n;
        end = match (end, worker_end) {
            (RunEnd::Interrupted, _) | (_, RunEnd::Interrupted) => RunEnd::Interrupted,
            (RunEnd::TimedOut, _) | (_, RunEnd::TimedOut) => RunEnd::TimedOut,
            _ => RunEnd::BudgetMet,
        };
    }
    let best = best_in_store(storage, study.id, spec.direction)?;
    let failures = worker.failures.into_inner().unwrap_or_else(|it| it.into_inner());
    Ok(RunSummary { study, end, n_finished, failures, best })
}

/// One of the threads of `run_study`: asks, runs and tells trials until the budget,
/// the timeout, an interruption or another worker's error stops it.
struct Worker<'a> {
    storage: &'a dyn Storage,
    study: &'a Study,
    spec: &'a StudySpec,
    objective: &'a dyn Objective,
    host: &'a dyn Host,
    sampler: &'a dyn Sampler,
    budget: Option<usize>,
    timeout: Option<Duration>,
    owner: String,
    /// Set by a worker that failed or was interrupted, so the others stop after
    /// their current trial.
    stop: AtomicBool,
    /// Each worker's device, and the workers still running on each.
    devices: DeviceShare,
    /// When (by `Host::elapsed`) a worker last looked for dead workers' trials.
    last_recovery: std::sync::Mutex<Option<Duration>>,
    /// Workers of this run (trials at once in this process).
    workers: usize,
    /// The best Complete trial this process knows of: the store's when the run
    /// started, then each trial its workers finish, so telling it costs the same
    /// at trial 10 and at trial 10,000. (Trials other processes finish meanwhile
    /// show up in the summary, which reads the store.)
    best: std::sync::Mutex<Option<FrozenTrial>>,
    /// Trials this run finished as failed (not interrupted), by reason.
    failures: std::sync::Mutex<BTreeMap<String, usize>>,
    /// What the pruner reads of the finished trials, when it reads any.
    finished_values: Option<FinishedValues>,
    /// What the sampler reads of the study's trials.
    history: History,
    /// The steps of the running trials not yet written.
    steps: StepWriter<'a>,
}

/// Mixed into the study seed for confirm runs' training seeds.
const CONFIRM_SEED_SALT: u64 = 0xc0f1_4a5e_ed00;

/// How often running workers look for trials that dead workers left Running.
const ORPHAN_CHECK_INTERVAL: Duration = Duration::from_secs(2);

impl Worker<'_> {
    /// Runs trials on `device` (when the study shares devices); returns how many it
    /// finished and why it stopped.
    fn run(&self, device: Option<&str>) -> Result<(usize, RunEnd)> {
        // A panic (a bug) ends this worker with an error, as an error would: the
        // other workers stop after their trial and the run returns the error.
        let waiting = std::cell::Cell::new(false);
        let outcome = catch_unwind(AssertUnwindSafe(|| self.run_trials(device, &waiting)))
            .unwrap_or_else(|panic| {
                Err(Error::Worker(format!("internal error: {}", panic_message(&panic))))
            });
        self.devices.stopped(device, waiting.get());
        if !matches!(outcome, Ok((_, RunEnd::BudgetMet | RunEnd::TimedOut))) {
            self.stop.store(true, Ordering::SeqCst);
        }
        outcome
    }

    /// Whether to look for dead workers' trials now: the first time, then once
    /// `ORPHAN_CHECK_INTERVAL` has passed since the last look (by any thread).
    fn recovery_due(&self) -> bool {
        let now = self.host.elapsed();
        let mut last = self.last_recovery.lock().unwrap_or_else(|it| it.into_inner());
        let due = last.is_none_or(|at| now.saturating_sub(at) >= ORPHAN_CHECK_INTERVAL);
        if due {
            *last = Some(now);
        }
        due
    }

    /// The loop of [`Worker::run`]; `waiting`: whether the worker waits for its
    /// device's turn ([`DeviceShare::turn`]).
    fn run_trials(
        &self,
        device: Option<&str>,
        waiting: &std::cell::Cell<bool>,
    ) -> Result<(usize, RunEnd)> {
        let (storage, study, spec, host) = (self.storage, self.study, self.spec, self.host);
        let mut n_finished = 0;
        loop {
            if host.interrupted() || self.stop.load(Ordering::SeqCst) {
                return Ok((n_finished, RunEnd::Interrupted));
            }
            if self.timeout.is_some_and(|t| host.elapsed() >= t) {
                return Ok((n_finished, RunEnd::TimedOut));
            }
            // Whichever worker sees a dead worker's trial first fails (and maybe
            // queues) it: checked before a worker's first trial, then at most every
            // few seconds, not only when a run starts.
            if self.recovery_due() {
                recover_orphans(storage, study.id, host, spec.max_retries)?;
            }
            if let Some(device) = device {
                let mut wait = waiting.get();
                let turn = self.devices.turn(device, self.objective, host, &mut wait);
                waiting.set(wait);
                if turn == Turn::Wait {
                    continue;
                }
            }
            let Some(trial) = ask(
                storage,
                study.id,
                spec,
                self.sampler,
                self.budget,
                &self.owner,
                &self.history,
            )?
            else {
                return Ok((n_finished, RunEnd::BudgetMet));
            };
            // An error or a panic while the trial runs or is told fails it as
            // interrupted (it runs again when the study resumes) before the worker
            // stops: no trial is left Running by this process.
            let outcome = catch_unwind(AssertUnwindSafe(|| self.run_one(device, &trial)))
                .unwrap_or_else(|panic| {
                    Err(Error::Worker(format!(
                        "internal error while trial {} ran: {}",
                        trial.number,
                        panic_message(&panic)
                    )))
                });
            match outcome {
                Ok(end) => {
                    n_finished += 1;
                    if let Some(end) = end {
                        return Ok((n_finished, end));
                    }
                }
                Err(err) => {
                    self.stop.store(true, Ordering::SeqCst);
                    let still_running = storage
                        .trial_state_by_number(study.id, trial.number)
                        .is_ok_and(|it| it.is_some_and(|(_, state)| state == TrialState::Running));
                    if still_running {
                        let reason = format!("the run stopped on an error: {err}");
                        let requeue = Requeue::UpToRetries(spec.max_retries);
                        let _ = fail_interrupted(storage, study.id, &trial, &reason, requeue);
                    }
                    return Err(err);
                }
            }
        }
    }

    /// Runs and records claimed trial `trial` on `device`; `Some(end)` when this
    /// worker stops after it.
    fn run_one(&self, device: Option<&str>, trial: &FrozenTrial) -> Result<Option<RunEnd>> {
        let (storage, study, spec, host) = (self.storage, self.study, self.spec, self.host);
        {
            let n_counted = storage.count_toward_budget(study.id)?;
            host.event(Event::Started { trial, budget: self.budget, n_counted });
            let try_leave = || self.devices.try_leave(device);
            let placement = Placement { device, workers: self.workers, try_leave: &try_leave };
            let kept = self.finished_values.as_ref();
            if let Some(kept) = kept {
                kept.refresh(storage, study.id)?;
            }
            let end = run_trial(
                storage,
                study.id,
                spec,
                self.objective,
                host,
                trial,
                placement,
                kept,
                &self.steps,
            )?;
            let finished = storage.trial(trial.id)?;
            if let Some(kept) = kept {
                kept.add(&finished);
            }
            if finished.state == TrialState::Fail && end == TrialEnd::Finished {
                let reason = finished.fail_reason().unwrap_or("no reason recorded").to_owned();
                let mut failures = self.failures.lock().unwrap_or_else(|it| it.into_inner());
                *failures.entry(reason).or_default() += 1;
            }
            let best = {
                let mut best = self.best.lock().unwrap_or_else(|it| it.into_inner());
                let mut candidates: Vec<FrozenTrial> =
                    best.iter().cloned().chain(std::iter::once(finished.clone())).collect();
                candidates.sort_by_key(|t| t.number);
                *best = best_trial(&candidates, spec.direction);
                best.clone()
            };
            host.event(Event::Finished { trial: &finished, best: best.as_ref() });
            match end {
                TrialEnd::Finished => Ok(None),
                TrialEnd::Interrupted => Ok(Some(RunEnd::Interrupted)),
                TrialEnd::OutOfMemory => {
                    self.devices.tell_shrunk(device, host);
                    Ok(Some(RunEnd::BudgetMet))
                }
            }
        }
    }
}

/// The Complete search trial (not a confirm run) with the best value (the lowest
/// number among ties).
pub fn best_trial(trials: &[FrozenTrial], direction: Direction) -> Option<FrozenTrial> {
    let mut best: Option<&FrozenTrial> = None;
    // Confirm runs repeat a configuration with another seed: they measure noise and
    // are not candidates of the search.
    for trial in
        trials.iter().filter(|t| t.state == TrialState::Complete && t.confirm_of().is_none())
    {
        let Some(value) = trial.value.filter(|v| !v.is_nan()) else { continue };
        if best.and_then(|b| b.value).is_none_or(|b| direction.is_better(value, b)) {
            best = Some(trial);
        }
    }
    best.cloned()
}

/// [`best_trial`] of the study's trials in the store, reading only their outcomes
/// and then the best one (not every trial whole: 450 MB at 100,000 trials).
fn best_in_store(
    storage: &dyn Storage,
    study: StudyId,
    direction: Direction,
) -> Result<Option<FrozenTrial>> {
    let best = storage
        .trial_outcomes(study)?
        .into_iter()
        .filter(|t| t.state == TrialState::Complete)
        .filter_map(|t| Some((t.value.filter(|v| !v.is_nan())?, t.number)))
        .reduce(
            |a, b| if direction.is_better(b.0, a.0) || (b.0 == a.0 && b.1 < a.1) { b } else { a },
        );
    let Some((_, number)) = best else { return Ok(None) };
    match storage.trial_by_number(study, number)? {
        Some(trial) if trial.confirm_of().is_none() => Ok(Some(trial)),
        // A confirm run kept in the study itself is no candidate: read them all.
        _ => Ok(best_trial(&storage.trials(study, Some(&[TrialState::Complete]))?, direction)),
    }
}

/// Asks the study's pruner about `trial`, whose curve so far is `curve` (ending at
/// `step`), against the study's other trials as the store has them; records every
/// verdict (continue or prune, with its reason) and, when it says prune, the reason
/// on the trial (Optuna-visible `prune_reason`). Confirm runs (`attr::CONFIRM_OF`) are
/// never pruned: they exist to measure a configuration's whole training.
///
/// `kept`, when the run keeps it, is what the rule reads of the finished trials
/// instead of the store; the store is then read only for the running trials (for
/// ASHA and Hyperband: the percentile rule reads none).
pub(crate) fn should_prune(
    storage: &dyn Storage,
    study: StudyId,
    spec: &StudySpec,
    trial: &FrozenTrial,
    curve: &BTreeMap<u64, f64>,
    step: u64,
    kept: Option<&FinishedValues>,
) -> Result<Option<String>> {
    if !spec.pruner.is_active() || trial.confirm_of().is_some() {
        return Ok(None);
    }
    let (pruner, direction, number) = (&spec.pruner, spec.direction, trial.number);
    let verdict = match (kept, pruner.reads_others_at(number, curve, step)) {
        (Some(kept), Some(at)) => {
            let running: Vec<f64> = match pruner.kind {
                PrunerKind::Percentile { .. } => Vec::new(),
                _ => storage
                    .trials_at_step(study, &[TrialState::Running], at)?
                    .iter()
                    .filter(|t| t.id != trial.id && pruner.group(t.number) == pruner.group(number))
                    .filter_map(|t| pruner.running_value_at(&t.intermediate_values, at))
                    .collect(),
            };
            kept.at(number, at, &running, |peers| {
                pruner.judge_with(direction, number, curve, step, peers)
            })
        }
        (None, Some(at)) => {
            let states = [TrialState::Complete, TrialState::Pruned, TrialState::Running];
            let mut others = storage.trials_at_step(study, &states, at)?;
            others.retain(|t| t.id != trial.id);
            pruner.judge(direction, number, curve, step, &others)
        }
        (_, None) => pruner.judge(direction, number, curve, step, &[]),
    };
    let Some(verdict) = verdict else {
        return Ok(None);
    };
    storage.record_pruner_verdict(trial.id, step, &verdict)?;
    if !verdict.prune {
        return Ok(None);
    }
    storage.set_trial_system_attr(
        trial.id,
        attr::PRUNE_REASON,
        &AttrValue::Str(verdict.reason.clone()),
    )?;
    Ok(Some(verdict.reason))
}

/// Where a worker runs a trial.
#[derive(Clone, Copy)]
pub(crate) struct Placement<'a> {
    /// The worker's device, when the study shares devices among workers.
    pub device: Option<&'a str>,
    /// The workers of this run (trials at once in this process).
    pub workers: usize,
    /// Called when the trial ran out of memory: true when the worker leaves the
    /// device to the others sharing it (the trial is then queued again for fewer
    /// trials at once instead of failing); false when it is alone there.
    pub try_leave: &'a dyn Fn() -> bool,
}

fn never() -> bool {
    false
}

impl Placement<'_> {
    /// The objective's own device, alone.
    pub const ALONE: Placement<'static> = Placement { device: None, workers: 1, try_leave: &never };
}

/// How a trial run ended, for the worker that ran it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrialEnd {
    /// Complete, Pruned or Fail: recorded.
    Finished,
    /// Cut short by Ctrl-C or SIGTERM: failed as interrupted.
    Interrupted,
    /// The shared device ran out of memory: failed as interrupted and queued again;
    /// the worker should leave the device to fewer trials.
    OutOfMemory,
}

/// Runs one claimed trial to its end and records the outcome. `kept` is what the
/// pruner reads of the finished trials, when the run keeps it; `steps` holds its
/// steps until they are written.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_trial(
    storage: &dyn Storage,
    study: StudyId,
    spec: &StudySpec,
    objective: &dyn Objective,
    host: &dyn Host,
    trial: &FrozenTrial,
    placement: Placement<'_>,
    kept: Option<&FinishedValues>,
    steps: &StepWriter<'_>,
) -> Result<TrialEnd> {
    if let Some(device) = objective.device(placement.device) {
        storage.set_trial_system_attr(trial.id, attr::DEVICE, &AttrValue::Str(device))?;
    }
    let mut reporter = TrialReporter {
        steps,
        pending: steps.start(trial.id),
        storage,
        host,
        study,
        spec,
        trial,
        curve: BTreeMap::new(),
        metric: &spec.metric,
        direction: spec.direction,
        early_stopping: spec
            .early_stopping
            .as_ref()
            .map(|it| (it.monitor.clone(), EarlyStopping::new(it))),
        best: None,
        stop: None,
        storage_error: None,
        missing_metric: None,
        kept,
    };
    // Confirm runs keep no files: the search trial they retrain has its own.
    let folder = match trial.confirm_of() {
        None => host.trial_folder(&spec.name, trial.number),
        Some(_) => None,
    };
    let ctx = TrialContext {
        number: trial.number,
        params: &trial.params,
        folder: folder.as_deref(),
        // Confirm runs are numbered in a study of their own: they draw from another
        // stream, so none repeats a search trial's seed.
        seed: sampler::trial_rng(
            spec.seed ^ if trial.confirm_of().is_some() { CONFIRM_SEED_SALT } else { 0x5eed },
            trial.number,
        )
        .next_u64_value(),
        metric: &spec.metric,
        direction: spec.direction,
        device: placement.device,
        workers: placement.workers,
    };
    let result = catch_unwind(AssertUnwindSafe(|| objective.run(&ctx, &mut reporter)))
        .unwrap_or_else(|panic| {
            Err(TrialFailure::new(format!("the objective panicked: {}", panic_message(&panic))))
        });
    let unwritten = steps.finish(trial.id);
    if let Some(err) = reporter.storage_error.take() {
        return Err(err);
    }
    // The steps not yet written go with the trial's end; before any other ending.
    let unwritten = unwritten?;
    let written = std::cell::Cell::new(unwritten.is_empty());
    let write_unwritten = || -> Result<()> {
        if !written.replace(true) {
            storage.report_steps(trial.id, &unwritten)?;
        }
        Ok(())
    };
    let stop = reporter.stop;
    // An objective that notices the interruption between batches returns an error
    // without reporting; either way the trial was cut short, not failed.
    if stop == Some(Stop::Interrupted) || (host.interrupted() && result.is_err()) {
        write_unwritten()?;
        let requeue = Requeue::UpToRetries(spec.max_retries);
        fail_interrupted(storage, study, trial, "interrupted (Ctrl-C)", requeue)?;
        return Ok(TrialEnd::Interrupted);
    }
    let fail = |reason: String| -> Result<TrialEnd> {
        write_unwritten()?;
        storage.set_trial_system_attr(trial.id, attr::FAIL_REASON, &AttrValue::Str(reason))?;
        storage.finish_trial(trial.id, TrialState::Fail, &[])?;
        Ok(TrialEnd::Finished)
    };
    let output: ObjectiveOutput = match result {
        Ok(output) => output,
        // Out of memory on a shared device: the worker leaves it to the others and
        // the trial runs again (whatever max_retries: it did nothing wrong). Alone
        // there, the trial runs again once, alone; out of memory again is a failure.
        Err(failure) if failure.out_of_memory && placement.device.is_some() => {
            let device = placement.device.unwrap_or("its device");
            write_unwritten()?;
            if (placement.try_leave)() {
                let reason = format!(
                    "{} (out of memory on {device} shared with other trials): queued again for fewer trials at once",
                    failure.reason
                );
                fail_interrupted(storage, study, trial, &reason, Requeue::AfterOutOfMemory)?;
                return Ok(TrialEnd::OutOfMemory);
            }
            if !trial.system_attrs.contains_key(attr::AFTER_OUT_OF_MEMORY) {
                let reason = format!(
                    "{} (out of memory on {device}, maybe while other trials still held memory there): queued again",
                    failure.reason
                );
                fail_interrupted(storage, study, trial, &reason, Requeue::AfterOutOfMemory)?;
                return Ok(TrialEnd::Finished);
            }
            return fail(format!("{} (out of memory on {device}, running alone)", failure.reason));
        }
        Err(failure) => return fail(failure.reason),
    };
    if let Some(message) = reporter.missing_metric.take() {
        return fail(message);
    }
    let Some((best_step, _, best_metrics)) = reporter.best.take() else {
        return fail(format!(
            "the objective finished without reporting a finite `{}`",
            spec.metric
        ));
    };
    // The objectives are read at the best step (by `spec.metric`: the objective,
    // or in a study of several the first one or the early-stopping monitor), or
    // from what the objective measured at the end (size, latency).
    let mut values = Vec::with_capacity(spec.metrics.len());
    for metric in &spec.metrics {
        let found = best_metrics.iter().chain(&output.final_metrics).find(|(n, _)| n == metric);
        match found {
            Some((_, value)) if !value.is_nan() => values.push(*value),
            Some(_) => {
                return fail(format!(
                    "the objective `{metric}` is NaN at step {best_step}, the best step by `{}`",
                    spec.metric
                ));
            }
            None => {
                let names: Vec<&str> = best_metrics
                    .iter()
                    .chain(&output.final_metrics)
                    .map(|(n, _)| n.as_str())
                    .collect();
                return fail(format!(
                    "the objective reports no metric `{metric}`; it reports: {}. Set [study] metrics to some of them",
                    names.join(", ")
                ));
            }
        }
    }
    let mut violations = Vec::with_capacity(spec.constraints.len());
    for constraint in &spec.constraints {
        let found = best_metrics
            .iter()
            .chain(&output.final_metrics)
            .find(|(n, _)| *n == constraint.metric)
            .map(|(_, v)| *v);
        match found {
            Some(value) if !value.is_nan() => violations.push(constraint.violation(value)),
            _ => {
                return fail(format!(
                    "the constraint on `{}` has no value: the objective reports no finite `{}`",
                    constraint.metric, constraint.metric
                ));
            }
        }
    }
    let mut results = vec![("best_step".to_owned(), AttrValue::Number(best_step as f64))];
    results.extend(
        best_metrics
            .iter()
            .chain(&output.final_metrics)
            .map(|(name, value)| (name.clone(), AttrValue::Number(*value))),
    );
    let ended_by = match stop {
        Some(Stop::EarlyStopped) => "early_stopping".to_owned(),
        Some(Stop::Pruned) => "pruner".to_owned(),
        _ => output.ended_by.unwrap_or_else(|| "completed".to_owned()),
    };
    let state = if stop == Some(Stop::Pruned) { TrialState::Pruned } else { TrialState::Complete };
    let mut system = vec![(attr::ENDED_BY.to_owned(), AttrValue::Str(ended_by))];
    if !violations.is_empty() {
        system.push((crate::pareto::CONSTRAINTS_ATTR.to_owned(), AttrValue::List(violations)));
    }
    storage.end_trial(trial.id, state, &values, &unwritten, &results, &system)?;
    Ok(TrialEnd::Finished)
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

trait NextU64 {
    fn next_u64_value(self) -> u64;
}

impl NextU64 for rand::rngs::StdRng {
    fn next_u64_value(mut self) -> u64 {
        rand::RngCore::next_u64(&mut self)
    }
}

/// (step, value, every metric) at the best step so far.
type BestStep = (u64, f64, Vec<(String, f64)>);

struct TrialReporter<'a> {
    /// Where the trial's steps wait to be written.
    steps: &'a StepWriter<'a>,
    pending: std::sync::Arc<std::sync::Mutex<Pending>>,
    storage: &'a dyn Storage,
    host: &'a dyn Host,
    study: StudyId,
    spec: &'a StudySpec,
    trial: &'a FrozenTrial,
    /// The study metric's values by step, for the pruner.
    curve: BTreeMap<u64, f64>,
    metric: &'a str,
    direction: Direction,
    early_stopping: Option<(String, EarlyStopping)>,
    /// (step, value, all metrics) at the best step so far.
    best: Option<BestStep>,
    stop: Option<Stop>,
    storage_error: Option<Error>,
    missing_metric: Option<String>,
    kept: Option<&'a FinishedValues>,
}

impl Reporter for TrialReporter<'_> {
    fn report(&mut self, step: u64, metrics: &[(String, f64)]) -> ControlFlow<Stop> {
        if let Some(stop) = self.stop {
            return ControlFlow::Break(stop);
        }
        let find = |name: &str| metrics.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        let Some(value) = find(self.metric) else {
            let names: Vec<&str> = metrics.iter().map(|(n, _)| n.as_str()).collect();
            self.missing_metric = Some(format!(
                "the objective reports no metric `{}`; it reports: {}. Set [study] metric to one of them",
                self.metric,
                names.join(", ")
            ));
            return self.halt(Stop::Aborted);
        };
        let reported = ReportedStep { step, value, metrics: metrics.to_vec() };
        if let Err(err) = self.steps.report(self.storage, self.trial.id, &self.pending, reported) {
            self.storage_error = Some(err);
            return self.halt(Stop::Aborted);
        }
        self.host.event(Event::Step { number: self.trial.number, step, value });
        if !value.is_nan()
            && self.best.as_ref().is_none_or(|(_, b, _)| self.direction.is_better(value, *b))
        {
            self.best = Some((step, value, metrics.to_vec()));
        }
        if self.host.interrupted() {
            return self.halt(Stop::Interrupted);
        }
        if let Some((monitor, early_stopping)) = &mut self.early_stopping {
            let Some(monitored) = metrics.iter().find(|(n, _)| n == monitor).map(|(_, v)| *v)
            else {
                let names: Vec<&str> = metrics.iter().map(|(n, _)| n.as_str()).collect();
                self.missing_metric = Some(format!(
                    "[early_stopping] monitors `{monitor}`, which the objective does not report; it reports: {}",
                    names.join(", ")
                ));
                return self.halt(Stop::Aborted);
            };
            if let EarlyStoppingDecision::Stop { .. } = early_stopping.update(monitored) {
                return self.halt(Stop::EarlyStopped);
            }
        }
        self.curve.insert(step, value);
        let (storage, study, spec, trial) = (self.storage, self.study, self.spec, self.trial);
        match should_prune(storage, study, spec, trial, &self.curve, step, self.kept) {
            Ok(None) => ControlFlow::Continue(()),
            Ok(Some(_)) => self.halt(Stop::Pruned),
            Err(err) => {
                self.storage_error = Some(err);
                self.halt(Stop::Aborted)
            }
        }
    }

    fn interrupted(&self) -> bool {
        self.host.interrupted()
    }
}

impl TrialReporter<'_> {
    fn halt(&mut self, stop: Stop) -> ControlFlow<Stop> {
        self.stop = Some(stop);
        ControlFlow::Break(stop)
    }
}

#[cfg(test)]
mod tests;
