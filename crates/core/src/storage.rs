//! The Storage trait: the one place a study's state lives.
//!
//! The store is the single source of truth: samplers read history from it, workers
//! claim trials through it, and a crashed run resumes from it. Every method is one
//! short transaction, so several threads, processes and machines can share a
//! storage. Implementations: [`crate::memory::InMemoryStorage`] here, `SqliteStorage`
//! and `PostgresStorage` in hpo-store. Every implementation passes the conformance
//! suite in `hpo_core::testing` (feature `testing`).
//!
//! Thread safety: implementations are `Send + Sync`; callers share one by reference.
//! Finished trials are immutable: methods that change a trial fail with
//! [`Error::TrialFinished`] once it is Complete, Pruned or Fail.

use std::collections::BTreeMap;

use crate::Result;
use crate::distribution::{Distribution, ParamValue};
use crate::error::Error;
use crate::pruner::Verdict;
use crate::study::{Direction, Study, StudyId, StudySummary};
use crate::trial::{AttrValue, FrozenTrial, MetricPoint, Timestamp, TrialId, TrialState};

/// What `create_study` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStudy {
    /// The study's name; unique in the storage.
    pub name: String,
    /// Whether each objective is minimized or maximized, in order; at least one.
    pub directions: Vec<Direction>,
    /// Each objective's metric name (Optuna's `metric_names`), in the same order;
    /// empty when not known.
    pub metrics: Vec<String>,
    /// The study file as written, so a resume can compare against it.
    pub spec_text: Option<String>,
    /// Trials queued with the study, in one transaction (the grid's points).
    pub queued: Vec<NewTrial>,
}

/// A trial to insert: Waiting (queued) or Running (claimed by its creator).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewTrial {
    /// The parameter values with the distributions they come from.
    pub params: Vec<(String, ParamValue, Distribution)>,
    /// System attributes set on the trial (such as `attr::GRID_POINT`).
    pub system_attrs: Vec<(String, AttrValue)>,
}

impl NewTrial {
    /// Adds these parameters (with their distributions) and system attributes to
    /// `trial`, as the storage now holds them.
    pub fn apply_to(self, trial: &mut FrozenTrial) {
        for (name, value, distribution) in self.params {
            trial.params.insert(name.clone(), value);
            trial.distributions.insert(name, distribution);
        }
        trial.system_attrs.extend(self.system_attrs);
    }
}

/// One step of a trial as [`Storage::report`] takes it: the study metric's value
/// and every metric measured at that step.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedStep {
    /// The step.
    pub step: u64,
    /// The study metric's value there (Optuna's intermediate value).
    pub value: f64,
    /// Every metric measured there, the study metric included.
    pub metrics: Vec<(String, f64)>,
}

impl ReportedStep {
    /// Fails with [`Error::StepOutOfRange`] when a step is past `i64::MAX`, which
    /// Optuna's schema cannot store: a batch is refused before any of it is written.
    pub fn check_all(steps: &[ReportedStep]) -> Result<()> {
        match steps.iter().find(|it| i64::try_from(it.step).is_err()) {
            Some(step) => Err(Error::StepOutOfRange(step.step)),
            None => Ok(()),
        }
    }
}

/// A trial as a study's history shows it (`Storage::trial_outcomes`).
#[derive(Debug, Clone, PartialEq)]
pub struct TrialOutcome {
    /// The trial's number.
    pub number: u64,
    /// Its state.
    pub state: TrialState,
    /// Its value, when it has one.
    pub value: Option<f64>,
    /// Its last reported step and value there (where a pruned trial stopped).
    pub last_step: Option<(u64, f64)>,
}

impl TrialOutcome {
    /// The outcome of `trial`.
    pub fn of(trial: &FrozenTrial) -> TrialOutcome {
        TrialOutcome {
            number: trial.number,
            state: trial.state,
            value: trial.value,
            last_step: trial.intermediate_values.iter().next_back().map(|(s, v)| (*s, *v)),
        }
    }
}

/// Storage of studies and trials.
pub trait Storage: Send + Sync {
    /// Creates a study, with its queued trials, atomically. Fails with
    /// [`Error::StudyExists`] when the name is taken (another process may have won
    /// the race: call `find_study` then).
    fn create_study(&self, new: &NewStudy) -> Result<StudyId>;

    /// The study of this name, if any.
    fn find_study(&self, name: &str) -> Result<Option<Study>>;

    /// Every study with trial counts and best value, ordered by name.
    fn list_studies(&self) -> Result<Vec<StudySummary>>;

    /// [`Storage::list_studies`] without the best values (`best_value` is `None`),
    /// which cost a read of every complete trial: for a frequent reader that keeps
    /// the best itself (`/metrics`). The default is `list_studies`, best included.
    fn study_counts(&self) -> Result<Vec<StudySummary>> {
        self.list_studies()
    }

    /// Creates a Running trial with the next number, unless the study's budget is
    /// spent: returns `None` when `budget` is `Some(n)` and `n` trials already count
    /// toward it (see `FrozenTrial::counts_toward_budget`). The check and the insert
    /// are one transaction, so concurrent workers never overshoot.
    ///
    /// In the same change it stores what `propose` returns for the new trial's
    /// number: its parameters and the system attributes that explain them (`ask`
    /// makes a trial in one write so). `propose` runs while the change is open (in a
    /// database, holding its write lock), so it must be quick; it returns `None` to
    /// store nothing (the caller then sets the parameters itself). The returned
    /// trial holds what was stored.
    fn create_running_trial_with(
        &self,
        study: StudyId,
        budget: Option<usize>,
        system_attrs: &[(String, AttrValue)],
        propose: &dyn Fn(u64) -> Option<NewTrial>,
    ) -> Result<Option<FrozenTrial>>;

    /// [`Storage::create_running_trial_with`] storing nothing but the trial and
    /// `system_attrs`.
    fn create_running_trial(
        &self,
        study: StudyId,
        budget: Option<usize>,
        system_attrs: &[(String, AttrValue)],
    ) -> Result<Option<FrozenTrial>> {
        self.create_running_trial_with(study, budget, system_attrs, &|_| None)
    }

    /// Queues a Waiting trial with the next number (a grid point to run again).
    fn enqueue_trial(&self, study: StudyId, new: &NewTrial) -> Result<TrialId>;

    /// Atomically claims the Waiting trial to run next (it becomes Running, starting
    /// now, with `system_attrs` added), unless the budget is spent. Retries
    /// (`attr::RETRY_OF`) come first, in grid-point order (`attr::GRID_POINT`), then
    /// by number; then the lowest-numbered Waiting trial. An interrupted grid point
    /// thus runs again in its place, before the points after it.
    fn claim_waiting_trial(
        &self,
        study: StudyId,
        budget: Option<usize>,
        system_attrs: &[(String, AttrValue)],
    ) -> Result<Option<FrozenTrial>>;

    /// Sets the parameters of a Running trial (once, after sampling).
    fn set_trial_params(
        &self,
        trial: TrialId,
        params: &[(String, ParamValue, Distribution)],
    ) -> Result<()>;

    /// Records one step of a Running trial: the study metric's value (Optuna's
    /// intermediate value) and every metric measured at that step, and marks the
    /// trial alive (as `record_heartbeat` does). Reporting a step again replaces it.
    fn report(
        &self,
        trial: TrialId,
        step: u64,
        value: f64,
        metrics: &[(String, f64)],
    ) -> Result<()>;

    /// Records several steps of a Running trial, in order, as `report` does each,
    /// in one change: what a run writes when steps come faster than it writes them
    /// one by one. A step Optuna cannot store (past `i64::MAX`) fails the batch
    /// before any is written. The default calls `report` for each.
    fn report_steps(&self, trial: TrialId, steps: &[ReportedStep]) -> Result<()> {
        ReportedStep::check_all(steps)?;
        for step in steps {
            self.report(trial, step.step, step.value, &step.metrics)?;
        }
        Ok(())
    }

    /// Sets a user attribute of a Running trial, replacing any value under `key`.
    /// Called when a trial ends, to keep its best step's metrics and final measurements.
    fn set_trial_user_attr(&self, trial: TrialId, key: &str, value: &AttrValue) -> Result<()>;

    /// Sets a system attribute of a Running trial (keys in `trial::attr`), replacing
    /// any value under `key`.
    fn set_trial_system_attr(&self, trial: TrialId, key: &str, value: &AttrValue) -> Result<()>;

    /// Records the pruner's verdict on a Running trial at `step` (a verdict recorded
    /// at that step before is replaced): every decision to continue or prune, so a
    /// trial's history says why it went on at each rung and where it stopped.
    fn record_pruner_verdict(&self, trial: TrialId, step: u64, verdict: &Verdict) -> Result<()>;

    /// The pruner's verdicts on a trial, by step (empty when none was recorded).
    fn pruner_verdicts(&self, trial: TrialId) -> Result<Vec<(u64, Verdict)>>;

    /// Ends a Running trial with its state and values, one per objective in the
    /// study's order (kept only for Complete; Optuna keeps none for Pruned and
    /// Fail; empty for none). After this the trial is immutable.
    fn finish_trial(&self, trial: TrialId, state: TrialState, values: &[f64]) -> Result<()>;

    /// Ends a Running trial like `finish_trial`, recording its last `steps` (as
    /// `report_steps` does) and setting its user and system attributes in the same
    /// change: a trial is never seen finished without its results, and ending it is
    /// one write instead of one per step and attribute. The default makes the
    /// separate calls.
    fn end_trial(
        &self,
        trial: TrialId,
        state: crate::trial::TrialState,
        values: &[f64],
        steps: &[ReportedStep],
        user_attrs: &[(String, AttrValue)],
        system_attrs: &[(String, AttrValue)],
    ) -> Result<()> {
        if !steps.is_empty() {
            self.report_steps(trial, steps)?;
        }
        for (key, value) in user_attrs {
            self.set_trial_user_attr(trial, key, value)?;
        }
        for (key, value) in system_attrs {
            self.set_trial_system_attr(trial, key, value)?;
        }
        self.finish_trial(trial, state, values)
    }

    /// Ends a Running trial as Fail and queues `retry` (a Waiting trial of `study`)
    /// as one change: a process killed in between leaves either both or neither, so
    /// a recovered trial's retry is never lost. Returns the queued trial's id. The
    /// default makes the two calls; a storage with transactions makes them one.
    fn fail_and_enqueue(
        &self,
        trial: TrialId,
        study: StudyId,
        retry: Option<&NewTrial>,
    ) -> Result<Option<TrialId>> {
        self.finish_trial(trial, crate::trial::TrialState::Fail, &[])?;
        retry.map(|new| self.enqueue_trial(study, new)).transpose()
    }

    /// Marks a Running trial alive now.
    fn record_heartbeat(&self, trial: TrialId) -> Result<()>;

    /// The time now as this storage stamps trials' starts and ends (the wall clock
    /// of a database's machine, or a clock the storage keeps).
    fn now(&self) -> Timestamp;

    /// The study's trial numbered `number`, if it has one. A storage that can find
    /// it without reading every trial should (the default reads them all).
    fn trial_by_number(&self, study: StudyId, number: u64) -> Result<Option<FrozenTrial>> {
        Ok(self.trials(study, None)?.into_iter().find(|t| t.number == number))
    }

    /// The id and state of the study's trial numbered `number`, if it has one: what
    /// a step or a tell needs to find its trial, without reading the trial.
    fn trial_state_by_number(
        &self,
        study: StudyId,
        number: u64,
    ) -> Result<Option<(TrialId, TrialState)>> {
        Ok(self.trial_by_number(study, number)?.map(|t| (t.id, t.state)))
    }

    /// The study's trials in order of number, optionally only those in `states`.
    fn trials(&self, study: StudyId, states: Option<&[TrialState]>) -> Result<Vec<FrozenTrial>>;

    /// Every trial's number, state, value and last reported step, in order of
    /// number: what a study's history chart shows, without the parameters and
    /// attributes (a storage that can read just these should; the default reads
    /// every trial).
    fn trial_outcomes(&self, study: StudyId) -> Result<Vec<TrialOutcome>> {
        Ok(self.trials(study, None)?.iter().map(TrialOutcome::of).collect())
    }

    /// How many of the study's trials count toward its budget (see
    /// `FrozenTrial::counts_toward_budget`). Called once per trial by the study
    /// loop: a storage that can count without reading every trial should (the
    /// default reads them all).
    fn count_toward_budget(&self, study: StudyId) -> Result<usize> {
        Ok(self.trials(study, None)?.iter().filter(|t| t.counts_toward_budget()).count())
    }

    /// The ids of the study's trials in `states` (finished states) that finished at
    /// or after `since` (all of them with `None`), in order of number: what a
    /// caller that keeps finished trials asks to find the ones it has not read. A
    /// storage that can find them without reading every trial should (the default
    /// reads them all).
    fn finished_trial_ids(
        &self,
        study: StudyId,
        states: &[TrialState],
        since: Option<Timestamp>,
    ) -> Result<Vec<TrialId>> {
        Ok(self
            .trials(study, Some(states))?
            .iter()
            .filter(|t| since.is_none_or(|since| t.datetime_complete.is_some_and(|at| at >= since)))
            .map(|t| t.id)
            .collect())
    }

    /// The study's trials in `states`, in order of number, each with only the two
    /// curve points a pruner judging at `step` reads: the last at or before `step`,
    /// and the first after it (no parameters, attributes or value; a trial with no
    /// point has an empty curve). What the pruner
    /// decides from them is what it decides from whole trials; reading them costs
    /// two index look-ups per trial instead of every point of every curve. The
    /// default cuts what `trials` returns.
    fn trials_at_step(
        &self,
        study: StudyId,
        states: &[TrialState],
        step: u64,
    ) -> Result<Vec<FrozenTrial>> {
        let mut trials = self.trials(study, Some(states))?;
        for trial in &mut trials {
            let before =
                trial.intermediate_values.range(..=step).next_back().map(|(s, v)| (*s, *v));
            let after = trial.intermediate_values.range(step + 1..).next().map(|(s, v)| (*s, *v));
            trial.intermediate_values = before.into_iter().chain(after).collect();
            trial.params.clear();
            trial.distributions.clear();
            trial.user_attrs.clear();
            trial.system_attrs.clear();
            trial.value = None;
        }
        Ok(trials)
    }

    /// The trial with this id; [`Error::UnknownTrial`] when there is none.
    fn trial(&self, trial: TrialId) -> Result<FrozenTrial>;

    /// Every metric point of a trial, by step then name.
    fn metric_curves(&self, trial: TrialId) -> Result<Vec<MetricPoint>>;

    /// Every metric point of every trial of a study, each trial's by step then name
    /// (what `metric_curves` returns for it). Trials with no point are left out.
    /// Called by reports and exports that read a whole study's curves; the default
    /// calls `metric_curves` per trial, and a storage where that is one round trip
    /// per trial reads them all at once instead.
    fn study_metric_curves(&self, study: StudyId) -> Result<BTreeMap<TrialId, Vec<MetricPoint>>> {
        let mut out = BTreeMap::new();
        for trial in self.trials(study, None)? {
            let curves = self.metric_curves(trial.id)?;
            if !curves.is_empty() {
                out.insert(trial.id, curves);
            }
        }
        Ok(out)
    }

    /// Sets user attributes of a study (Optuna's `study.user_attrs`) in one change,
    /// replacing any values under their keys: what hpo records about a study as a
    /// whole, such as the configuration it recommends with its evidence, which a
    /// reader then never sees half old and half new.
    fn set_study_user_attrs(&self, study: StudyId, attrs: &[(String, AttrValue)]) -> Result<()>;

    /// The study's user attributes, by key.
    fn study_user_attrs(&self, study: StudyId) -> Result<BTreeMap<String, AttrValue>>;

    /// The last heartbeat of a Running trial (its start when it never beat).
    fn last_heartbeat(&self, trial: TrialId) -> Result<Option<crate::trial::Timestamp>>;

    /// Writes a whole study read from another storage ([`StudyCopy::read`], for
    /// `hpo copy`) as one change: the study, its attributes and file, and every
    /// trial as it was — number, state, times, parameters, value, curves,
    /// attributes, pruner verdicts. Fails with [`Error::StudyExists`] when the name
    /// is taken, writing nothing. Returns the new study's id.
    fn import_study(&self, copy: &StudyCopy) -> Result<StudyId>;

    /// Drops the curves of the study's finished trials — intermediate values, every
    /// metric of every step, pruner verdicts — keeping the trials themselves (state,
    /// parameters, value, attributes) and the study's attributes: what `hpo gc` does
    /// to old nights. Running and queued trials are left whole. Returns how many
    /// points (intermediate values and metric points) went.
    fn drop_curves(&self, study: StudyId) -> Result<usize>;
}

/// Everything a storage holds of one study, to write into another
/// ([`Storage::import_study`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StudyCopy {
    /// The study (its id is the source storage's).
    pub study: Study,
    /// The study's user attributes (hpo's stored pick among them).
    pub user_attrs: BTreeMap<String, AttrValue>,
    /// Every trial, in order of number, each with its metric curves and verdicts.
    pub trials: Vec<TrialCopy>,
}

/// One trial of a [`StudyCopy`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrialCopy {
    /// The trial (its id is the source storage's).
    pub trial: FrozenTrial,
    /// Every metric at every step.
    pub curves: Vec<MetricPoint>,
    /// The pruner's verdicts, by step.
    pub verdicts: Vec<(u64, Verdict)>,
}

impl StudyCopy {
    /// Reads study `name` of `storage` whole; `None` when there is no such study.
    pub fn read(storage: &dyn Storage, name: &str) -> Result<Option<StudyCopy>> {
        let Some(study) = storage.find_study(name)? else { return Ok(None) };
        let mut curves = storage.study_metric_curves(study.id)?;
        let mut trials = Vec::new();
        for trial in storage.trials(study.id, None)? {
            let verdicts = storage.pruner_verdicts(trial.id)?;
            let curves = curves.remove(&trial.id).unwrap_or_default();
            trials.push(TrialCopy { trial, curves, verdicts });
        }
        let user_attrs = storage.study_user_attrs(study.id)?;
        Ok(Some(StudyCopy { study, user_attrs, trials }))
    }
}
