//! A running trial's steps on their way to the store.
//!
//! A step that comes [`WRITE_EVERY`] or more after the trial's previous write is
//! written at once, as every step of a real training is. Steps that come faster are
//! kept and written together: by the run's writer thread ([`StepWriter::write_due`],
//! called every half [`WRITE_EVERY`]) once the oldest has waited `WRITE_EVERY`, or
//! with the trial's end, in the same change. A program printing a hundred steps a
//! second thus costs one write per tenth of a second, not one per step, and each
//! step is in the store at most about `WRITE_EVERY` after it was reported: a
//! process killed meanwhile loses only those moments' steps of its running trials
//! (which fail as interrupted, and run again). What is written is as durable as
//! any other write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::Result;
use crate::error::Error;
use crate::run::Host;
use crate::storage::{ReportedStep, Storage};
use crate::trial::TrialId;

/// How long a reported step may wait before it is written.
pub(crate) const WRITE_EVERY: Duration = Duration::from_millis(100);

/// The steps of a run's trials not yet written; shared by its workers and its
/// writer thread.
pub(crate) struct StepWriter<'a> {
    /// The run's host, for its clock.
    host: &'a dyn Host,
    /// Whether steps may wait (false: each is written as it comes, for runs
    /// without a writer thread).
    batch: bool,
    trials: Mutex<HashMap<TrialId, Arc<Mutex<Pending>>>>,
}

/// One trial's steps not yet written.
#[derive(Default)]
pub(crate) struct Pending {
    steps: Vec<ReportedStep>,
    /// When the oldest of `steps` was reported.
    since: Duration,
    /// When the trial's steps were last written (or it started).
    written: Duration,
    /// What a write by the writer thread failed with.
    error: Option<Error>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|it| it.into_inner())
}

impl<'a> StepWriter<'a> {
    /// A writer that keeps fast steps for a writer thread calling `write_due`.
    pub(crate) fn batched(host: &'a dyn Host) -> StepWriter<'a> {
        StepWriter { host, batch: true, trials: Mutex::default() }
    }

    /// A writer that writes each step as it comes.
    pub(crate) fn unbatched(host: &'a dyn Host) -> StepWriter<'a> {
        StepWriter { host, batch: false, trials: Mutex::default() }
    }

    /// Starts keeping the steps of `trial`, which starts running now.
    pub(crate) fn start(&self, trial: TrialId) -> Arc<Mutex<Pending>> {
        let pending =
            Arc::new(Mutex::new(Pending { written: self.host.elapsed(), ..Pending::default() }));
        locked(&self.trials).insert(trial, Arc::clone(&pending));
        pending
    }

    /// Adds a step of `trial` (started with `pending`): written now, with any kept
    /// before it, when `WRITE_EVERY` has passed since the trial's last write;
    /// otherwise kept. An error when this write, or an earlier one of the writer
    /// thread, failed.
    pub(crate) fn report(
        &self,
        storage: &dyn Storage,
        trial: TrialId,
        pending: &Mutex<Pending>,
        step: ReportedStep,
    ) -> Result<()> {
        let now = self.host.elapsed();
        let mut pending = locked(pending);
        if let Some(err) = pending.error.take() {
            return Err(err);
        }
        if pending.steps.is_empty() {
            pending.since = now;
        }
        pending.steps.push(step);
        if !self.batch || now.saturating_sub(pending.written) >= WRITE_EVERY {
            storage.report_steps(trial, &pending.steps)?;
            pending.steps.clear();
            pending.written = now;
        }
        Ok(())
    }

    /// Writes the steps of every trial whose oldest kept step has waited
    /// `WRITE_EVERY`; a failure is kept for the trial's worker to meet.
    pub(crate) fn write_due(&self, storage: &dyn Storage) {
        let trials: Vec<(TrialId, Arc<Mutex<Pending>>)> =
            locked(&self.trials).iter().map(|(id, it)| (*id, Arc::clone(it))).collect();
        for (trial, pending) in trials {
            let now = self.host.elapsed();
            let mut pending = locked(&pending);
            if pending.steps.is_empty() || now.saturating_sub(pending.since) < WRITE_EVERY {
                continue;
            }
            match storage.report_steps(trial, &pending.steps) {
                Ok(()) => {
                    pending.steps.clear();
                    pending.written = now;
                }
                Err(err) => pending.error = Some(err),
            }
        }
    }

    /// Stops keeping the steps of `trial`: those not yet written, to be written
    /// with its end, or the error a write of the writer thread met.
    pub(crate) fn finish(&self, trial: TrialId) -> Result<Vec<ReportedStep>> {
        let Some(pending) = locked(&self.trials).remove(&trial) else {
            return Ok(Vec::new());
        };
        let mut pending = locked(&pending);
        match pending.error.take() {
            Some(err) => Err(err),
            None => Ok(std::mem::take(&mut pending.steps)),
        }
    }
}
