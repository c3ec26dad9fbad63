//! An in-memory Storage: for tests, benchmarks of samplers, and one-off studies.
//!
//! One mutex guards everything, which makes every method trivially atomic. Time is
//! a logical clock (one tick per call): core reads no real clock.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::Result;
use crate::distribution::{Distribution, ParamValue};
use crate::error::Error;
use crate::pruner::Verdict;
use crate::storage::{NewStudy, NewTrial, ReportedStep, Storage, StudyCopy};
use crate::study::{Study, StudyId, StudySummary};
use crate::trial::{AttrValue, FrozenTrial, MetricPoint, Timestamp, TrialId, TrialState, attr};

/// A Storage that keeps everything in memory and forgets it on drop.
#[derive(Debug, Default)]
pub struct InMemoryStorage {
    state: Mutex<State>,
    /// What hpo-core's own tests watch and break.
    #[cfg(test)]
    pub(crate) probe: Probe,
}

/// hpo-core's tests' view into an [`InMemoryStorage`]: how many trials its reads
/// returned (what reading the whole study costs), and a panic injected into the
/// next `finish_trial` (a bug in a store).
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct Probe {
    pub(crate) trials_read: std::sync::atomic::AtomicUsize,
    pub(crate) panic_on_finish: std::sync::atomic::AtomicBool,
    /// Writes of steps: `report` and `report_steps` calls.
    pub(crate) step_writes: std::sync::atomic::AtomicUsize,
    /// Makes the next `create_running_trial_with` create another Running trial
    /// first, as another process creating one at that moment would.
    pub(crate) another_creates_first: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    clock: i64,
    studies: Vec<Study>,
    trials: Vec<(StudyId, FrozenTrial)>,
    curves: BTreeMap<TrialId, BTreeMap<(u64, String), f64>>,
    heartbeats: BTreeMap<TrialId, Timestamp>,
    verdicts: BTreeMap<TrialId, BTreeMap<u64, Verdict>>,
    study_user_attrs: BTreeMap<StudyId, BTreeMap<String, AttrValue>>,
}

impl State {
    fn tick(&mut self) -> Timestamp {
        self.clock += 1;
        Timestamp(self.clock)
    }

    fn trial_mut(&mut self, id: TrialId) -> Result<&mut FrozenTrial> {
        self.trials.iter_mut().map(|(_, t)| t).find(|t| t.id == id).ok_or(Error::UnknownTrial(id))
    }

    fn running_mut(&mut self, id: TrialId) -> Result<&mut FrozenTrial> {
        let trial = self.trial_mut(id)?;
        match trial.state {
            TrialState::Running => Ok(trial),
            state if state.is_finished() => Err(Error::TrialFinished { trial: id, state }),
            state => Err(Error::TrialNotRunning { trial: id, state }),
        }
    }

    fn check_study(&self, study: StudyId) -> Result<()> {
        if self.studies.iter().any(|s| s.id == study) {
            Ok(())
        } else {
            Err(Error::UnknownStudy(study))
        }
    }

    /// The trials of `study`, in order of number.
    fn study_trials(&self, study: StudyId) -> impl Iterator<Item = &FrozenTrial> {
        self.trials.iter().filter(move |(s, _)| *s == study).map(|(_, t)| t)
    }

    fn counted_toward_budget(&self, study: StudyId) -> usize {
        self.study_trials(study).filter(|t| t.counts_toward_budget()).count()
    }

    fn budget_spent(&self, study: StudyId, budget: Option<usize>) -> bool {
        budget.is_some_and(|budget| self.counted_toward_budget(study) >= budget)
    }

    fn insert_trial(&mut self, study: StudyId, state: TrialState, new: &NewTrial) -> FrozenTrial {
        let number = self.trials.iter().filter(|(s, _)| *s == study).count() as u64;
        let now = self.tick();
        let mut trial = FrozenTrial::new(TrialId(self.trials.len() as i64 + 1), number, state);
        trial.params = new.params.iter().map(|(n, v, _)| (n.clone(), v.clone())).collect();
        trial.distributions = new.params.iter().map(|(n, _, d)| (n.clone(), d.clone())).collect();
        trial.system_attrs = new.system_attrs.iter().cloned().collect();
        trial.datetime_start = (state == TrialState::Running).then_some(now);
        self.trials.push((study, trial.clone()));
        trial
    }
}

impl InMemoryStorage {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic in another thread can't leave State half-updated (every method
        // validates before it writes), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|it| it.into_inner())
    }

    /// The state, locked, when `study` exists and its budget leaves room for a
    /// trial; `None` when the budget is spent.
    fn lock_with_room(
        &self,
        study: StudyId,
        budget: Option<usize>,
    ) -> Result<Option<std::sync::MutexGuard<'_, State>>> {
        let state = self.lock();
        state.check_study(study)?;
        Ok((!state.budget_spent(study, budget)).then_some(state))
    }
}

impl Storage for InMemoryStorage {
    fn now(&self) -> Timestamp {
        Timestamp(self.lock().clock)
    }

    fn create_study(&self, new: &NewStudy) -> Result<StudyId> {
        let mut state = self.lock();
        if state.studies.iter().any(|s| s.name == new.name) {
            return Err(Error::StudyExists(new.name.clone()));
        }
        let id = StudyId(state.studies.len() as i64 + 1);
        state.studies.push(Study {
            id,
            name: new.name.clone(),
            direction: new.directions.first().copied().unwrap_or(crate::study::Direction::Minimize),
            metric: new.metrics.first().cloned(),
            spec_text: new.spec_text.clone(),
            directions: new.directions.clone(),
            metrics: new.metrics.clone(),
        });
        for trial in &new.queued {
            state.insert_trial(id, TrialState::Waiting, trial);
        }
        Ok(id)
    }

    fn find_study(&self, name: &str) -> Result<Option<Study>> {
        Ok(self.lock().studies.iter().find(|s| s.name == name).cloned())
    }

    fn list_studies(&self) -> Result<Vec<StudySummary>> {
        let state = self.lock();
        let mut out: Vec<StudySummary> = state
            .studies
            .iter()
            .map(|study| {
                let trials: Vec<&FrozenTrial> =
                    state.trials.iter().filter(|(s, _)| *s == study.id).map(|(_, t)| t).collect();
                let count = |st: TrialState| trials.iter().filter(|t| t.state == st).count();
                let best_value = trials
                    .iter()
                    .filter(|t| t.state == TrialState::Complete && t.confirm_of().is_none())
                    .filter_map(|t| t.value)
                    .fold(None, |best: Option<f64>, v| match best {
                        Some(b) if !study.direction.is_better(v, b) => Some(b),
                        _ => Some(v),
                    });
                StudySummary {
                    study: study.clone(),
                    n_trials: trials.len(),
                    n_complete: count(TrialState::Complete),
                    n_pruned: count(TrialState::Pruned),
                    n_fail: count(TrialState::Fail),
                    n_running: count(TrialState::Running),
                    n_waiting: count(TrialState::Waiting),
                    best_value,
                    last_activity: trials
                        .iter()
                        .filter_map(|t| t.datetime_complete.or(t.datetime_start))
                        .max(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.study.name.cmp(&b.study.name));
        Ok(out)
    }

    fn create_running_trial_with(
        &self,
        study: StudyId,
        budget: Option<usize>,
        system_attrs: &[(String, AttrValue)],
        propose: &dyn Fn(u64) -> Option<NewTrial>,
    ) -> Result<Option<FrozenTrial>> {
        let Some(mut state) = self.lock_with_room(study, budget)? else { return Ok(None) };
        let new = NewTrial { params: Vec::new(), system_attrs: system_attrs.to_vec() };
        #[cfg(test)]
        if self.probe.another_creates_first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            state.insert_trial(study, TrialState::Running, &NewTrial::default());
        }
        let mut trial = state.insert_trial(study, TrialState::Running, &new);
        if let Some(proposal) = propose(trial.number) {
            let stored = state.running_mut(trial.id)?;
            proposal.clone().apply_to(stored);
            proposal.apply_to(&mut trial);
        }
        Ok(Some(trial))
    }

    fn enqueue_trial(&self, study: StudyId, new: &NewTrial) -> Result<TrialId> {
        let mut state = self.lock();
        state.check_study(study)?;
        Ok(state.insert_trial(study, TrialState::Waiting, new).id)
    }

    fn claim_waiting_trial(
        &self,
        study: StudyId,
        budget: Option<usize>,
        system_attrs: &[(String, AttrValue)],
    ) -> Result<Option<FrozenTrial>> {
        let Some(mut state) = self.lock_with_room(study, budget)? else { return Ok(None) };
        let now = state.tick();
        // Retries first, in grid order; then by number (the trials are in number order).
        let Some((_, trial)) = state
            .trials
            .iter_mut()
            .filter(|(s, t)| *s == study && t.state == TrialState::Waiting)
            .min_by(|(_, a), (_, b)| {
                // A retry's grid point (none for a trial that is not a retry).
                let point = |t: &FrozenTrial| {
                    t.retry_of().and(t.system_attrs.get(attr::GRID_POINT)?.as_f64())
                };
                let by_point = match (point(a), point(b)) {
                    (Some(x), Some(y)) => x.total_cmp(&y),
                    (x, y) => x.is_some().cmp(&y.is_some()),
                };
                (a.retry_of().is_none().cmp(&b.retry_of().is_none()))
                    .then(by_point)
                    .then(a.number.cmp(&b.number))
            })
        else {
            return Ok(None);
        };
        trial.state = TrialState::Running;
        trial.datetime_start = Some(now);
        trial.system_attrs.extend(system_attrs.iter().cloned());
        Ok(Some(trial.clone()))
    }

    fn set_trial_params(
        &self,
        trial: TrialId,
        params: &[(String, ParamValue, Distribution)],
    ) -> Result<()> {
        let mut state = self.lock();
        let trial = state.running_mut(trial)?;
        for (name, value, distribution) in params {
            trial.params.insert(name.clone(), value.clone());
            trial.distributions.insert(name.clone(), distribution.clone());
        }
        Ok(())
    }

    fn report(
        &self,
        trial: TrialId,
        step: u64,
        value: f64,
        metrics: &[(String, f64)],
    ) -> Result<()> {
        let step = ReportedStep { step, value, metrics: metrics.to_vec() };
        self.report_steps(trial, std::slice::from_ref(&step))
    }

    fn report_steps(&self, trial: TrialId, steps: &[ReportedStep]) -> Result<()> {
        ReportedStep::check_all(steps)?;
        #[cfg(test)]
        self.probe.step_writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut state = self.lock();
        let running = state.running_mut(trial)?;
        for step in steps {
            running.intermediate_values.insert(step.step, step.value);
        }
        let curve = state.curves.entry(trial).or_default();
        for step in steps {
            for (name, value) in &step.metrics {
                curve.insert((step.step, name.clone()), *value);
            }
        }
        let now = state.tick();
        state.heartbeats.insert(trial, now);
        Ok(())
    }

    fn set_trial_user_attr(&self, trial: TrialId, key: &str, value: &AttrValue) -> Result<()> {
        self.lock().running_mut(trial)?.user_attrs.insert(key.to_owned(), value.clone());
        Ok(())
    }

    fn set_trial_system_attr(&self, trial: TrialId, key: &str, value: &AttrValue) -> Result<()> {
        self.lock().running_mut(trial)?.system_attrs.insert(key.to_owned(), value.clone());
        Ok(())
    }

    fn record_pruner_verdict(&self, trial: TrialId, step: u64, verdict: &Verdict) -> Result<()> {
        let mut state = self.lock();
        state.running_mut(trial)?;
        state.verdicts.entry(trial).or_default().insert(step, verdict.clone());
        Ok(())
    }

    fn pruner_verdicts(&self, trial: TrialId) -> Result<Vec<(u64, Verdict)>> {
        Ok(self
            .lock()
            .verdicts
            .get(&trial)
            .map(|v| v.iter().map(|(step, verdict)| (*step, verdict.clone())).collect())
            .unwrap_or_default())
    }

    fn finish_trial(&self, trial: TrialId, new_state: TrialState, values: &[f64]) -> Result<()> {
        #[cfg(test)]
        if self.probe.panic_on_finish.swap(false, std::sync::atomic::Ordering::SeqCst) {
            panic!("injected: the store panicked as a trial was told");
        }
        let mut state = self.lock();
        let now = state.tick();
        let trial = state.running_mut(trial)?;
        trial.state = new_state;
        trial.set_values(if new_state == TrialState::Complete { values } else { &[] });
        trial.datetime_complete = Some(now);
        Ok(())
    }

    fn record_heartbeat(&self, trial: TrialId) -> Result<()> {
        let mut state = self.lock();
        state.running_mut(trial)?;
        let now = state.tick();
        state.heartbeats.insert(trial, now);
        Ok(())
    }

    fn trials(&self, study: StudyId, states: Option<&[TrialState]>) -> Result<Vec<FrozenTrial>> {
        let state = self.lock();
        state.check_study(study)?;
        let trials: Vec<FrozenTrial> = state
            .trials
            .iter()
            .filter(|(s, t)| *s == study && states.is_none_or(|states| states.contains(&t.state)))
            .map(|(_, t)| t.clone())
            .collect();
        #[cfg(test)]
        self.probe.trials_read.fetch_add(trials.len(), std::sync::atomic::Ordering::SeqCst);
        Ok(trials)
    }

    // The reads below copy no trial but the one asked for: the study loop calls them
    // for every trial or step, or once a run.
    fn trial_state_by_number(
        &self,
        study: StudyId,
        number: u64,
    ) -> Result<Option<(TrialId, TrialState)>> {
        let state = self.lock();
        state.check_study(study)?;
        Ok(state.study_trials(study).find(|t| t.number == number).map(|t| (t.id, t.state)))
    }

    fn trial_by_number(&self, study: StudyId, number: u64) -> Result<Option<FrozenTrial>> {
        let state = self.lock();
        state.check_study(study)?;
        let trial = state.study_trials(study).find(|t| t.number == number).cloned();
        #[cfg(test)]
        self.probe
            .trials_read
            .fetch_add(usize::from(trial.is_some()), std::sync::atomic::Ordering::SeqCst);
        Ok(trial)
    }

    fn trial_outcomes(&self, study: StudyId) -> Result<Vec<crate::storage::TrialOutcome>> {
        let state = self.lock();
        state.check_study(study)?;
        Ok(state.study_trials(study).map(crate::storage::TrialOutcome::of).collect())
    }

    fn count_toward_budget(&self, study: StudyId) -> Result<usize> {
        let state = self.lock();
        state.check_study(study)?;
        Ok(state.counted_toward_budget(study))
    }

    fn finished_trial_ids(
        &self,
        study: StudyId,
        states: &[TrialState],
        since: Option<Timestamp>,
    ) -> Result<Vec<TrialId>> {
        let state = self.lock();
        state.check_study(study)?;
        let finished_since = |t: &&FrozenTrial| {
            states.contains(&t.state)
                && since.is_none_or(|since| t.datetime_complete.is_some_and(|at| at >= since))
        };
        Ok(state.study_trials(study).filter(finished_since).map(|t| t.id).collect())
    }

    fn trial(&self, trial: TrialId) -> Result<FrozenTrial> {
        self.lock().trial_mut(trial).map(|t| t.clone())
    }

    fn metric_curves(&self, trial: TrialId) -> Result<Vec<MetricPoint>> {
        let state = self.lock();
        Ok(state
            .curves
            .get(&trial)
            .map(|curve| {
                curve
                    .iter()
                    .map(|((step, name), value)| MetricPoint {
                        step: *step,
                        name: name.clone(),
                        value: *value,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    fn set_study_user_attrs(&self, study: StudyId, attrs: &[(String, AttrValue)]) -> Result<()> {
        let mut state = self.lock();
        state.check_study(study)?;
        let stored = state.study_user_attrs.entry(study).or_default();
        stored.extend(attrs.iter().cloned());
        Ok(())
    }

    fn study_user_attrs(&self, study: StudyId) -> Result<BTreeMap<String, AttrValue>> {
        let state = self.lock();
        state.check_study(study)?;
        Ok(state.study_user_attrs.get(&study).cloned().unwrap_or_default())
    }

    fn last_heartbeat(&self, trial: TrialId) -> Result<Option<Timestamp>> {
        let mut state = self.lock();
        let beat = state.heartbeats.get(&trial).copied();
        Ok(beat.or(state.trial_mut(trial)?.datetime_start))
    }

    fn drop_curves(&self, study: StudyId) -> Result<usize> {
        let mut state = self.lock();
        state.check_study(study)?;
        let state = &mut *state;
        let mut dropped = 0;
        for (owner, trial) in state.trials.iter_mut() {
            if *owner != study || !trial.state.is_finished() {
                continue;
            }
            dropped += trial.intermediate_values.len();
            trial.intermediate_values.clear();
            dropped += state.curves.remove(&trial.id).map_or(0, |curve| curve.len());
            state.verdicts.remove(&trial.id);
        }
        Ok(dropped)
    }

    fn import_study(&self, copy: &StudyCopy) -> Result<StudyId> {
        let mut state = self.lock();
        if state.studies.iter().any(|s| s.name == copy.study.name) {
            return Err(Error::StudyExists(copy.study.name.clone()));
        }
        let id = StudyId(state.studies.len() as i64 + 1);
        state.studies.push(Study { id, ..copy.study.clone() });
        state.study_user_attrs.insert(id, copy.user_attrs.clone());
        for it in &copy.trials {
            let trial =
                FrozenTrial { id: TrialId(state.trials.len() as i64 + 1), ..it.trial.clone() };
            let curve = it.curves.iter().map(|p| ((p.step, p.name.clone()), p.value)).collect();
            state.curves.insert(trial.id, curve);
            state.verdicts.insert(trial.id, it.verdicts.iter().cloned().collect());
            state.trials.push((id, trial));
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    crate::storage_conformance_tests!(super::InMemoryStorage::default);
}
