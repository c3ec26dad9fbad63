//! hpo-core's error type.

use crate::spec::SpecError;
use crate::study::StudyId;
use crate::trial::{TrialId, TrialState};

/// Errors of the core and of every Storage implementation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A study file is invalid (when resuming, possibly the one stored with the study).
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// `create_study` was given a name another study already has; holds the name.
    #[error("a study named `{0}` already exists")]
    StudyExists(String),
    /// No study has the name a user gave; holds the name.
    #[error("no study named `{0}`; `hpo ls` lists the studies in this database")]
    StudyNotFound(String),
    /// A worker thread of `run_study` died (a bug: trials' panics are caught).
    #[error("{0}")]
    Worker(String),
    /// No study has this id.
    #[error("study {0:?} does not exist")]
    UnknownStudy(StudyId),
    /// No trial has this id.
    #[error("trial {0:?} does not exist")]
    UnknownTrial(TrialId),
    #[error("trial {trial:?} is already finished ({state}); finished trials are immutable")]
    /// A method that changes a trial was called on a finished one; finished trials
    /// are immutable.
    TrialFinished {
        /// The finished trial.
        trial: TrialId,
        /// Its state: Complete, Pruned or Fail.
        state: TrialState,
    },
    #[error("trial {trial:?} is {state}, not running")]
    /// A method that needs a Running trial was called on one that is neither Running
    /// nor finished (a Waiting one).
    TrialNotRunning {
        /// The trial.
        trial: TrialId,
        /// Its state.
        state: TrialState,
    },
    /// A study of this name exists, with a search space other than the study file's.
    #[error(
        "study `{study}` already exists with a different search space:\n  {}\nrun it under a new name (`[study] name`), or restore the original space",
        changes.join("\n  ")
    )]
    SpaceChanged {
        /// The study's name.
        study: String,
        /// One line per difference, as [`crate::space::SearchSpace::diff`] writes them.
        changes: Vec<String>,
    },
    /// A study of this name exists but cannot be resumed with this study file (another
    /// metric, direction, sampler, seed or objective, or it was not created from a file).
    #[error("study `{study}` exists but {reason}")]
    Incompatible {
        /// The study's name.
        study: String,
        /// What differs and what to do, completing "study `name` exists but ...".
        reason: String,
    },
    /// A study has no trial of this number.
    #[error("study `{study}` has no trial {number}; `hpo show {study}` lists its trials")]
    NoSuchTrial {
        /// The study's name.
        study: String,
        /// The trial number asked for.
        number: u64,
    },
    /// A trial was reported or told that is not running: told already, or queued.
    #[error(
        "trial {number} of study `{study}` is {state}, not running: a trial is told once, after it was asked for"
    )]
    NotRunning {
        /// The study's name.
        study: String,
        /// The trial's number.
        number: u64,
        /// Its state.
        state: TrialState,
    },
    /// A value reported or told that is not finite (NaN or infinite).
    #[error(
        "got the value {value} {at}trial {number} of study `{study}`; {}",
        if at.is_empty() {
            "tell a finite value, or tell the trial failed"
        } else {
            "report finite values, and tell a diverged trial failed"
        }
    )]
    NotFinite {
        /// The study's name.
        study: String,
        /// The trial's number.
        number: u64,
        /// "at step S of " for a reported step; empty for a told value.
        at: String,
        /// The value.
        value: f64,
    },
    /// The study has several objectives (an Optuna multi-objective study): hpo
    /// reads and runs studies of one objective, and never cuts one to its first.
    #[error(
        "study `{study}` has {} objectives ({}), an Optuna multi-objective study; hpo reads and runs single-objective studies only, so it shows none of it rather than the first objective alone; read it with Optuna (`optuna.load_study(...).best_trials` is its Pareto front)",
        directions.len(),
        directions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    MultiObjective {
        /// The study's name.
        study: String,
        /// Each objective's direction, in order.
        directions: Vec<crate::study::Direction>,
    },
    /// A step past the largest Optuna stores (steps are signed 64-bit integers there).
    #[error("step {0} is past the largest step Optuna stores ({max}); report steps from 0 to {max}", max = i64::MAX)]
    StepOutOfRange(u64),
    /// The storage backend failed (a SQLite error, a corrupt value); holds the
    /// backend's own error.
    #[error(transparent)]
    Storage(Box<dyn std::error::Error + Send + Sync>),
}
