//! hpo-core: everything about a study that is not IO.
//!
//! A study file ([`spec`]) becomes a [`space::SearchSpace`] plus settings; a
//! [`sampler::Sampler`] proposes parameters from the space and the study's history;
//! an [`objective::Objective`] runs a trial and reports its curve; [`run`] is the
//! loop that ties them to a [`storage::Storage`]. Trials and studies are modelled
//! after Optuna ([`trial`], [`study`]).
//!
//! This crate never names SQLite, HTTP, candle or plotters, and reads no clock or
//! file: the study loop gets time, signals and process liveness from a
//! [`run::Host`]. Start reading at [`run::run_study`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod display;
pub mod distribution;
pub mod early_stopping;
pub mod error;
pub mod functions;
pub mod memory;
pub mod objective;
pub mod pareto;
pub mod pruner;
pub mod run;
pub mod sampler;
pub mod space;
pub mod spec;
pub mod storage;
pub mod study;
pub mod trial;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::Error;

/// hpo-core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
