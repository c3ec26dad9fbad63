//! hpo-train: the objectives a study runs.
//!
//! [`build_objective`] turns a study file's `[objective]` into an
//! [`hpo_core::objective::Objective`]: a benchmark function (from hpo-core), or a
//! candle training on a real dataset ([`trainer::CandleObjective`]). Datasets are
//! verified and split in [`data`]; models live in [`mlp`]; the hyperparameters a
//! model accepts, with their defaults, in [`hyper`].
//!
//! Training runs on the calling thread (a plain thread, never an async runtime) and
//! reports after every epoch; it stops when the study loop says so.

pub mod data;
pub mod hyper;
pub mod mlp;
pub mod trainer;

use hpo_core::objective::{FunctionObjective, Objective};
use hpo_core::spec::{ObjectiveSpec, SpecError, StudySpec};

/// hpo-train's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("unknown dataset `{name}`; available: {known}")]
    UnknownDataset { name: String, known: String },
    #[error("{what} is corrupt: its SHA-256 is {found}, expected {expected}; reinstall it")]
    Checksum { what: String, expected: String, found: String },
    #[error("cannot read {what}: {message}")]
    Parse { what: String, message: String },
    #[error("device: {0}")]
    Device(String),
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

/// The models this version trains.
pub const MODELS: [&str; 1] = ["mlp"];

/// Builds the objective a study file describes, loading and verifying its dataset.
/// Errors about the file (an unknown model, dataset or hyperparameter) point at it.
pub fn build_objective(spec: &StudySpec) -> Result<Box<dyn Objective>, Error> {
    match &spec.objective {
        ObjectiveSpec::Function { function } => Ok(Box::new(FunctionObjective(*function))),
        ObjectiveSpec::Candle(candle) => {
            if !MODELS.contains(&candle.model.as_str()) {
                return Err(spec
                    .error_at(
                        "objective.model",
                        format!(
                            "unknown model `{}`; available: {}",
                            candle.model,
                            MODELS.join(", ")
                        ),
                    )
                    .into());
            }
            if !data::DATASETS.contains(&candle.dataset.as_str()) {
                return Err(spec
                    .error_at(
                        "objective.dataset",
                        format!(
                            "unknown dataset `{}`; available: {}",
                            candle.dataset,
                            data::DATASETS.join(", ")
                        ),
                    )
                    .into());
            }
            hyper::check(spec, candle)?;
            let device = trainer::select_device(&candle.device)?;
            let dataset = data::load(&candle.dataset)?;
            Ok(Box::new(trainer::CandleObjective::new(candle.clone(), dataset, device)?))
        }
    }
}
