//! What a long-lived process keeps of a study's finished trials, so that each ask
//! or pruner verdict reads only what changed: a finished trial never changes.
//!
//! [`FinishedFeed`] hands out the trials finished since it last looked, from the
//! index on end times: one read of their ids, then one read of each new trial (or
//! of all of them, when many are new). [`History`] keeps those trials for a
//! sampler, adding the few running ones at each ask; the pruner's
//! `FinishedValues` folds them into sorted values per step.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::Result;
use crate::sampler::Memo;
use crate::storage::Storage;
use crate::study::StudyId;
use crate::trial::{FrozenTrial, Timestamp, TrialId, TrialState};

/// New finished trials beyond this many are read in one query, not one by one.
const READ_ALL_FROM: usize = 64;

/// How far the clock of the machine that ends a trial may lag behind this one's,
/// and how long a trial's end may take from its end time to its commit: a look
/// asks again for trials ending this long before the previous look began. Longer
/// would cost more: a fast study finishes hundreds of trials in this long, each
/// asked for again at the next look.
const CLOCK_LAG: std::time::Duration = std::time::Duration::from_secs(2);

/// The finished trials of a study seen so far, to read only those finished since;
/// see the module docs.
#[derive(Debug, Default)]
pub struct FinishedFeed {
    /// The finished trials seen.
    seen: HashSet<TrialId>,
    /// When the previous look began, by the store's clock (`Storage::now`): a
    /// trial that committed its end before then was seen then.
    looked: Option<Timestamp>,
}

impl FinishedFeed {
    /// The study's trials in `states` that finished since shortly before the
    /// previous look began (another machine's clock may lag) and were not seen yet;
    /// they are seen from now on. The first look reads every finished trial.
    pub fn read_new(
        &mut self,
        storage: &dyn Storage,
        study: StudyId,
        states: &[TrialState],
    ) -> Result<Vec<FrozenTrial>> {
        let since = self.looked.map(|at| Timestamp(at.0 - CLOCK_LAG.as_micros() as i64));
        self.looked = Some(storage.now());
        let ids = storage.finished_trial_ids(study, states, since)?;
        let new: Vec<TrialId> = ids.into_iter().filter(|id| !self.seen.contains(id)).collect();
        let trials: Vec<FrozenTrial> = if new.len() > READ_ALL_FROM {
            storage
                .trials(study, Some(states))?
                .into_iter()
                .filter(|t| !self.seen.contains(&t.id))
                .collect()
        } else {
            new.into_iter().map(|id| storage.trial(id)).collect::<Result<_>>()?
        };
        for trial in &trials {
            self.note(trial);
        }
        Ok(trials)
    }

    /// Marks `trial` (finished) seen; false when it already was.
    pub fn note(&mut self, trial: &FrozenTrial) -> bool {
        self.seen.insert(trial.id)
    }

    /// Whether `trial` was seen.
    pub fn has_seen(&self, trial: TrialId) -> bool {
        self.seen.contains(&trial)
    }

    /// How many finished trials were seen.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// The states of the finished trials a sampler reads.
const FINISHED: [TrialState; 3] = [TrialState::Complete, TrialState::Pruned, TrialState::Fail];

/// A study's trials as a sampler reads them, kept across asks: the finished ones
/// (complete, pruned, failed) read once each, the running ones at every ask; and
/// the sampler's memo. Asks sample at once: each takes a snapshot of the finished
/// trials (shared, not copied) and samples outside the lock.
#[derive(Debug, Default)]
pub struct History {
    inner: Mutex<HistoryInner>,
    memo: Memo,
    /// Finished trials of earlier studies over the same space, read before the
    /// study's own (see [`History::with_prior`]).
    prior: Vec<FrozenTrial>,
}

#[derive(Debug, Default)]
struct HistoryInner {
    feed: FinishedFeed,
    /// The finished trials in order of number.
    finished: Vec<Arc<FrozenTrial>>,
}

impl History {
    /// A history whose sampler also learns from `prior`: finished trials of other
    /// studies over the same space (an earlier night's, for `hpo nightly`), read
    /// before the study's own trials.
    pub fn with_prior(prior: Vec<FrozenTrial>) -> History {
        History { prior, ..History::default() }
    }

    /// Calls `f` with the study's finished and running trials, all but `except`
    /// (the trial being asked for, when it exists) — the finished ones in order of
    /// number, then the running ones in order of number — the sampler's memo for
    /// this study, and the number after the highest of those trials' (what the
    /// next trial gets when none is queued and no other process creates one).
    pub fn read<T>(
        &self,
        storage: &dyn Storage,
        study: StudyId,
        except: Option<TrialId>,
        f: impl FnOnce(&[&FrozenTrial], &Memo, u64) -> T,
    ) -> Result<T> {
        // Running first: a trial that finishes in between is then in both reads, and
        // kept as finished, rather than in neither.
        let mut running = storage.trials(study, Some(&[TrialState::Running]))?;
        let finished = {
            let mut inner = self.inner.lock().unwrap_or_else(|it| it.into_inner());
            let inner = &mut *inner;
            let new = inner.feed.read_new(storage, study, &FINISHED)?;
            if !new.is_empty() {
                inner.finished.extend(new.into_iter().map(Arc::new));
                // Mostly in order already: the sort merges the runs.
                inner.finished.sort_by_key(|t| t.number);
            }
            running.retain(|t| Some(t.id) != except && !inner.feed.has_seen(t.id));
            inner.finished.clone()
        };
        let highest = finished
            .last()
            .map(|t| t.number)
            .into_iter()
            .chain(running.iter().map(|t| t.number))
            .max();
        let trials: Vec<&FrozenTrial> = self
            .prior
            .iter()
            .chain(finished.iter().map(|t| t.as_ref()))
            .chain(running.iter())
            .collect();
        Ok(f(&trials, &self.memo, highest.map_or(0, |n| n + 1)))
    }
}
