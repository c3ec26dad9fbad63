//! hpo-core's error type.

use crate::spec::SpecError;
use crate::study::StudyId;
use crate::trial::{TrialId, TrialState};

/// Errors of the core and of every Storage implementation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("a study named `{0}` already exists")]
    StudyExists(String),
    #[error("no study named `{0}`; `hpo ls` lists the studies in this database")]
    StudyNotFound(String),
    #[error("study {0:?} does not exist")]
    UnknownStudy(StudyId),
    #[error("trial {0:?} does not exist")]
    UnknownTrial(TrialId),
    #[error("trial {trial:?} is already finished ({state}); finished trials are immutable")]
    TrialFinished { trial: TrialId, state: TrialState },
    #[error("trial {trial:?} is {state}, not running")]
    TrialNotRunning { trial: TrialId, state: TrialState },
    #[error(
        "study `{study}` already exists with a different search space:\n  {}\nrun it under a new name (`[study] name`), or restore the original space",
        changes.join("\n  ")
    )]
    SpaceChanged { study: String, changes: Vec<String> },
    #[error("study `{study}` exists but {reason}")]
    Incompatible { study: String, reason: String },
    #[error(transparent)]
    Storage(Box<dyn std::error::Error + Send + Sync>),
}
