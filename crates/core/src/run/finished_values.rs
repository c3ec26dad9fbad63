//! What the pruner reads of the finished trials, kept by a run: every step's values
//! of the complete trials for the percentile (and median) rule, every rung's values
//! of the complete and pruned trials for ASHA and Hyperband.
//!
//! Those rules compare a trial with the other trials' values at a step (at every
//! step past the warm-up for the percentile rule, at each rung for the others).
//! Reading the values from the store costs a look-up per finished trial, at every
//! such step: a step at trial 10,000 would cost a thousand times one at trial 10.
//! A finished trial never changes, so the run folds what the rule reads of each one
//! ([`Pruner::kept_values`]) into a sorted list per (group, step): a verdict then
//! reads one list, and the few running trials from the store, whatever the study's
//! size.
//!
//! The lists hold what the store held when the worker's trial started
//! ([`FinishedValues::refresh`] reads only the trials finished since), and every
//! trial this process finishes as it finishes ([`FinishedValues::add`]). Trials that
//! other processes finish during a trial count from the worker's next trial; with
//! one worker the verdicts are those of reading the store at every step.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::history::FinishedFeed;
use crate::Result;
use crate::pruner::{Peers, Pruner};
use crate::storage::Storage;
use crate::study::StudyId;
use crate::trial::FrozenTrial;

/// The finished trials' values by (group, step); see the module docs.
pub(crate) struct FinishedValues {
    pruner: Pruner,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The finished trials folded in.
    feed: FinishedFeed,
    /// Their kept values by (group, step), sorted by `f64::total_cmp`, no NaN.
    by_step: BTreeMap<(u64, u64), Vec<f64>>,
}

impl FinishedValues {
    /// Values for `pruner`'s verdicts; `None` when its rule reads no other trial.
    pub fn for_pruner(pruner: Pruner) -> Option<FinishedValues> {
        (!pruner.finished_states_read().is_empty())
            .then(|| FinishedValues { pruner, inner: Mutex::default() })
    }

    /// Folds in the study's finished trials not yet seen (`FinishedFeed::read_new`).
    pub fn refresh(&self, storage: &dyn Storage, study: StudyId) -> Result<()> {
        let mut inner = self.lock();
        let new = inner.feed.read_new(storage, study, self.pruner.finished_states_read())?;
        for trial in &new {
            self.fold(&mut inner, trial);
        }
        Ok(())
    }

    /// Folds in `trial` if the rule reads it and it is not yet seen.
    pub fn add(&self, trial: &FrozenTrial) {
        if !self.pruner.finished_states_read().contains(&trial.state) {
            return;
        }
        let mut inner = self.lock();
        if inner.feed.note(trial) {
            self.fold(&mut inner, trial);
        }
    }

    fn fold(&self, inner: &mut Inner, trial: &FrozenTrial) {
        for (group, step, value) in self.pruner.kept_values(trial) {
            let values = inner.by_step.entry((group, step)).or_default();
            let at = values.partition_point(|it| it.total_cmp(&value).is_lt());
            values.insert(at, value);
        }
    }

    /// Calls `judge` with what the rule reads at `step` for trial `number`'s group,
    /// the running trials' values there being `running`.
    pub fn at<T>(
        &self,
        number: u64,
        step: u64,
        running: &[f64],
        judge: impl FnOnce(Peers<'_>) -> T,
    ) -> T {
        let inner = self.lock();
        let values =
            inner.by_step.get(&(self.pruner.group(number), step)).map_or(&[][..], Vec::as_slice);
        judge(Peers::Kept { n_finished: inner.feed.len(), values, running })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|it| it.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pruner::PrunerKind;
    use crate::study::Direction;
    use crate::trial::{TrialId, TrialState};

    fn trial(number: u64, state: TrialState, curve: &[(u64, f64)]) -> FrozenTrial {
        let mut trial = FrozenTrial::new(TrialId(number as i64 + 100), number, state);
        trial.intermediate_values = curve.iter().copied().collect();
        trial
    }

    /// Curves of every state, some with NaN, some skipping steps, some short.
    fn study() -> Vec<FrozenTrial> {
        let states = [TrialState::Complete, TrialState::Pruned, TrialState::Running];
        (0..40)
            .map(|number| {
                let curve: Vec<(u64, f64)> = (1..=(3 + number % 11))
                    .filter(|step| (step + number) % 4 != 0)
                    .map(|step| {
                        let value = ((number * 37 + step * 11) % 17) as f64 - 5.0;
                        (step, if (number + step) % 13 == 0 { f64::NAN } else { value })
                    })
                    .collect();
                trial(number, states[(number % 3) as usize], &curve)
            })
            .collect()
    }

    /// Every verdict from the kept values and the running trials is the verdict
    /// from the whole trials, for each rule that reads other trials.
    #[test]
    fn verdicts_from_kept_values_are_those_from_whole_trials() {
        let pruners = [
            PrunerKind::Percentile {
                percentile: 25.0,
                startup_trials: 3,
                warmup_steps: 1,
                interval: 1,
            },
            PrunerKind::Asha { min_resource: 1, reduction_factor: 2, min_early_stopping_rate: 0 },
            PrunerKind::Hyperband { min_resource: 1, max_resource: 12, reduction_factor: 2 },
        ];
        let trials = study();
        for kind in pruners {
            let pruner = Pruner { kind, patience: None };
            let kept = FinishedValues::for_pruner(pruner).unwrap();
            for trial in trials.iter().chain(&trials) {
                kept.add(trial);
            }
            for direction in [Direction::Minimize, Direction::Maximize] {
                for judged in &trials {
                    let mut curve = BTreeMap::new();
                    for (&step, &value) in &judged.intermediate_values {
                        curve.insert(step, value);
                        let others: Vec<FrozenTrial> =
                            trials.iter().filter(|t| t.id != judged.id).cloned().collect();
                        let whole = pruner.judge(direction, judged.number, &curve, step, &others);
                        let Some(at) = pruner.reads_others_at(judged.number, &curve, step) else {
                            continue;
                        };
                        let running: Vec<f64> = if matches!(kind, PrunerKind::Percentile { .. }) {
                            Vec::new()
                        } else {
                            others
                                .iter()
                                .filter(|t| t.state == TrialState::Running)
                                .filter(|t| pruner.group(t.number) == pruner.group(judged.number))
                                .filter_map(|t| pruner.running_value_at(&t.intermediate_values, at))
                                .collect()
                        };
                        let from_kept = kept.at(judged.number, at, &running, |peers| {
                            pruner.judge_with(direction, judged.number, &curve, step, peers)
                        });
                        // A judged trial is running, never among the kept trials.
                        if judged.state != TrialState::Running {
                            continue;
                        }
                        assert_eq!(
                            from_kept, whole,
                            "{kind:?} {direction:?} trial {} step {step}",
                            judged.number
                        );
                    }
                }
            }
        }
    }
}
