//! hpo-train: the objectives a study runs.
//!
//! [`build_objective`] turns a study file's `[objective]` into an
//! [`hpo_core::objective::Objective`]: a benchmark function (from hpo-core), or a
//! candle training on a real dataset ([`trainer::CandleObjective`]). Datasets are
//! found, verified and split in [`data`]; models (MLP, CNN, transformer LM) live in
//! [`model`]; the hyperparameters each model accepts, with defaults and ranges, in
//! [`hyper`]; optimizers, schedules and clipping in [`optim`].
//!
//! Training runs on the calling thread (a plain thread, never an async runtime) and
//! reports after every epoch; it stops when the study loop says so. The kernels the
//! models run (fused ops, AdamW's update, GPU memory) are hpo-kernels'; this crate
//! has no unsafe code.
#![forbid(unsafe_code)]

pub mod augment;
pub mod bench;
pub mod compress;
pub mod data;
pub mod export;
pub mod gpu;
pub mod hyper;
pub mod model;
pub mod optim;
pub mod packing;
pub mod trainer;

#[cfg(all(test, feature = "cuda"))]
mod cuda_tests;

use std::path::Path;

use hpo_core::objective::{FunctionObjective, Objective};
use hpo_core::spec::{DatasetSpec, ObjectiveSpec, SpecError, StudySpec};

/// hpo-train's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(
        "this study's objective is `external`: a program outside hpo runs it; get a trial with `hpo ask STUDY.toml` and finish it with `hpo tell STUDY.toml --trial N --value V`"
    )]
    External,
    #[error("a command objective runs its program through hpo-command, not hpo-train")]
    Command,
    #[error("unknown dataset `{name}`; available: {known}")]
    UnknownDataset { name: String, known: String },
    #[error(
        "dataset `{name}` is not installed (looked in {looked_in}); install it with `sudo apt-get install {package}`, or put {files} in $HPO_DATA_DIR/{folder}"
    )]
    MissingDataset {
        name: String,
        looked_in: String,
        package: String,
        folder: String,
        files: String,
    },
    #[error("{what} is corrupt: its SHA-256 is {found}, expected {expected}; reinstall it")]
    Checksum { what: String, expected: String, found: String },
    #[error("cannot read {what}: {message}")]
    Parse { what: String, message: String },
    #[error("device: {0}")]
    Device(String),
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    #[error(
        "this study trains no classifier of hpo's (`kind = \"candle\"` with a classification dataset)"
    )]
    NotTrained,
}

/// The models this version trains, and the kind of data each needs.
pub const MODELS: [&str; 3] = ["mlp", "cnn", "transformer"];

/// Builds the objective a study file describes, loading and verifying its dataset.
/// Relative dataset paths are resolved against `base_dir` (the study file's folder).
/// Errors about the file (an unknown model, dataset or hyperparameter) point at it.
pub fn build_objective(
    spec: &StudySpec,
    base_dir: &Path,
    teacher: Option<&compress::Net>,
) -> Result<Box<dyn Objective>, Error> {
    let candle = match &spec.objective {
        ObjectiveSpec::Function { function, steps } => {
            return Ok(Box::new(FunctionObjective { function: *function, steps: *steps }));
        }
        ObjectiveSpec::Training(candle) => candle,
        ObjectiveSpec::External => return Err(Error::External),
        ObjectiveSpec::Command(_) => return Err(Error::Command),
    };
    hyper::check(spec, candle)?;
    let source = source_of(spec, candle, base_dir)?;
    let wants_text = candle.model == "transformer";
    let is_text = matches!(&source, data::Source::Text { .. })
        || matches!(&source, data::Source::Named(name) if name == "jargon");
    if wants_text != is_text {
        let message = if wants_text {
            "the transformer is a language model: it needs a text dataset (`\"jargon\"` or `{ text = \"path\" }`)".to_owned()
        } else {
            format!(
                "the {} model classifies: it needs a classification dataset, not text; use the transformer for text",
                candle.model
            )
        };
        return Err(spec.error_at("objective.model", message).into());
    }
    let names = candle.devices.names();
    for (i, name) in names.iter().enumerate() {
        if trainer::DeviceChoice::parse(name).is_none() {
            let valid = trainer::DeviceChoice::VALID;
            let message = format!("unknown device `{name}`; valid: {valid}");
            return Err(spec.error_at(&candle.devices.location(i), message).into());
        }
    }
    let mut devices = Vec::new();
    for name in names {
        if !devices.iter().any(|(it, _): &(String, _)| it == name) {
            let device = trainer::select_device(name)?;
            devices.push((name.to_owned(), device));
        }
    }
    let mut dataset = data::load(&source)?;
    if let Some(teacher) = teacher {
        dataset = compress::distill::with_teacher(dataset, teacher)
            .map_err(|err| spec.error_at("compress.teacher", format!("{err}")))?;
    }
    Ok(Box::new(trainer::CandleObjective::on_devices(candle.clone(), dataset, devices)?))
}

/// Where a candle objective's data comes from: a dataset hpo knows, or a file
/// relative to `base_dir`.
fn source_of(
    spec: &StudySpec,
    candle: &hpo_core::spec::TrainingSpec,
    base_dir: &Path,
) -> Result<data::Source, Error> {
    Ok(match &candle.dataset {
        DatasetSpec::Named(name) => {
            if !data::DATASETS.contains(&name.as_str()) {
                return Err(spec
                    .error_at(
                        "objective.dataset",
                        format!(
                            "unknown dataset `{name}`; available: {}",
                            data::DATASETS.join(", ")
                        ),
                    )
                    .into());
            }
            data::Source::Named(name.clone())
        }
        DatasetSpec::Csv { path, target } => {
            data::Source::Csv { path: base_dir.join(path), target: target.clone() }
        }
        DatasetSpec::Text { path } => data::Source::Text { path: base_dir.join(path) },
    })
}

/// The test split of a classification study's dataset as the models see it
/// (features standardized by the training split's statistics), its first `n`
/// rows at most: `(features [n, width], labels [n])` on the CPU.
pub fn test_rows(
    spec: &StudySpec,
    base_dir: &Path,
    n: usize,
) -> Result<(candle_core::Tensor, candle_core::Tensor), Error> {
    let ObjectiveSpec::Training(candle) = &spec.objective else {
        return Err(Error::NotTrained);
    };
    let data::Dataset::Classification(data) = data::load(&source_of(spec, candle, base_dir)?)?
    else {
        return Err(Error::NotTrained);
    };
    let test = data.test.head(n, data.n_features);
    let rows = test.n_rows();
    let cpu = candle_core::Device::Cpu;
    let features = candle_core::Tensor::from_vec(test.features, (rows, data.n_features), &cpu)
        .map_err(Error::from)?;
    let labels = candle_core::Tensor::from_vec(test.labels, rows, &cpu).map_err(Error::from)?;
    Ok((features, labels))
}
