//! Objectives: what a trial runs (a training, a benchmark function, later a command).
//!
//! The study loop calls [`Objective::run`] once per trial. The objective reports
//! `(step, metrics)` through the [`Reporter`] after every step (epoch) and learns
//! from the return value whether to go on: `ControlFlow::Break(stop)` means stop
//! now (early stopping, pruning, Ctrl-C) and return. Stopping is an outcome, not an
//! error; an `Err` means the trial itself failed (a NaN loss) and the study goes on.

use std::ops::ControlFlow;

use crate::functions::BenchmarkFunction;
use crate::space::Params;
use crate::study::Direction;

/// What the objective knows about the trial it runs.
#[derive(Debug, Clone)]
pub struct TrialContext<'a> {
    /// The trial's number within the study (0, 1, 2, ...).
    pub number: u64,
    /// The trial's parameter values by name.
    pub params: &'a Params,
    /// A seed for the trial's own randomness (weight init, shuffling, dropout),
    /// derived from the study seed and the trial number.
    pub seed: u64,
    /// The study's metric and direction, so the objective can keep the weights of
    /// its best step (test metrics are measured on those).
    pub metric: &'a str,
    /// Whether `metric` is minimized or maximized.
    pub direction: Direction,
    /// The device this trial must train on (`cuda:1`), when the study shares its
    /// trials among devices (`devices`, `trials_per_device`); else the objective's own.
    pub device: Option<&'a str>,
    /// How many trials this process runs at once (its workers), so that an objective
    /// on the CPU can divide the cores among them.
    pub workers: usize,
    /// A folder of the trial's own where the objective may keep files (its trained
    /// model); `None` when the run keeps none.
    pub folder: Option<&'a std::path::Path>,
}

/// Why the study loop told an objective to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The monitored metric stopped improving.
    EarlyStopped,
    /// The pruner judged the trial worse than the others.
    Pruned,
    /// The run is being interrupted (Ctrl-C); return as soon as possible.
    Interrupted,
    /// Recording the step failed (the store is unusable); return as soon as possible.
    Aborted,
}

/// Receives the metrics of each step. `Send`, so an objective may train on a
/// thread pool of its own.
pub trait Reporter: Send {
    /// Records `metrics` at `step` (steps increase; epochs count from 1). Returns
    /// `Break` when the objective must stop.
    fn report(&mut self, step: u64, metrics: &[(String, f64)]) -> ControlFlow<Stop>;

    /// Whether the run is being interrupted; long steps check it between batches.
    fn interrupted(&self) -> bool;
}

/// What a finished objective hands back besides its curve.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectiveOutput {
    /// Final measurements (`test_accuracy` of the best step's weights, ...), stored
    /// as user attributes. Never used for selection.
    pub final_metrics: Vec<(String, f64)>,
    /// Set when the objective ended itself for a reason the loop did not give
    /// (e.g. "max_epochs").
    pub ended_by: Option<String>,
}

/// A trial that failed: the reason is stored with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct TrialFailure {
    /// Why the trial failed; stored as its `fail_reason` system attribute.
    pub reason: String,
    /// The device ran out of memory: the trial may fit with fewer trials sharing it.
    pub out_of_memory: bool,
}

impl TrialFailure {
    /// A failure for this reason.
    pub fn new(reason: impl Into<String>) -> TrialFailure {
        TrialFailure { reason: reason.into(), out_of_memory: false }
    }

    /// A failure because the device's memory ran out.
    pub fn out_of_memory(reason: impl Into<String>) -> TrialFailure {
        TrialFailure { reason: reason.into(), out_of_memory: true }
    }
}

/// Runs one trial.
pub trait Objective: Send + Sync {
    /// Called by the study loop once per trial, with the trial's parameters. Reports
    /// each step through `reporter` and returns as soon as a report returns `Break`.
    /// Returns the final measurements, or `Err` when the trial itself failed: it is
    /// stored as Fail with the reason, and the study goes on.
    fn run(
        &self,
        ctx: &TrialContext<'_>,
        reporter: &mut dyn Reporter,
    ) -> Result<ObjectiveOutput, TrialFailure>;

    /// Where a trial runs (`cpu`, `cuda:0`) when its worker holds the device named
    /// `requested` (as the study file names it, e.g. `auto`), or the objective's own;
    /// recorded on each trial (`attr::DEVICE`). `None` for objectives that run no model.
    fn device(&self, requested: Option<&str>) -> Option<String> {
        requested.map(str::to_owned)
    }

    /// How many trials `device` should run at once, and why, as the objective
    /// has measured it (`trials_per_device = "auto"`): what fits in its memory,
    /// what trains fastest; `None` while unknown (then every worker runs). Asked
    /// by each worker before each trial, so the answer may change as the run goes.
    fn capacity(&self, _device: &str) -> Option<Capacity> {
        None
    }
}

/// How many trials a device runs at once ([`Objective::capacity`]), and what
/// decided it, in words for the user ("fit its memory", "trained the most").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// Trials at once, at least 1.
    pub trials: usize,
    /// Why that many.
    pub why: String,
}

/// A benchmark function as an objective, reporting the metric `value`: with one step
/// just the function's value; with more, a synthetic curve that improves toward it
/// and reaches it at the last step (so pruners and curves can be exercised without
/// training anything).
#[derive(Debug, Clone, Copy)]
pub struct FunctionObjective {
    /// The function.
    pub function: BenchmarkFunction,
    /// Steps reported, at least 1.
    pub steps: u64,
}

impl Objective for FunctionObjective {
    fn run(
        &self,
        ctx: &TrialContext<'_>,
        reporter: &mut dyn Reporter,
    ) -> Result<ObjectiveOutput, TrialFailure> {
        let value = self.function.evaluate(ctx.params);
        if !value.is_finite() {
            return Err(TrialFailure::new(format!("{} returned {value}", self.function.name())));
        }
        if self.steps <= 1 {
            let _ = reporter.report(0, &[("value".to_owned(), value)]);
            return Ok(ObjectiveOutput::default());
        }
        let worse = match ctx.direction {
            crate::study::Direction::Minimize => 1.0,
            crate::study::Direction::Maximize => -1.0,
        };
        for step in 1..=self.steps {
            let remaining = (self.steps - step) as f64 / self.steps as f64;
            let at_step = value + worse * remaining * (1.0 + value.abs());
            if reporter.report(step, &[("value".to_owned(), at_step)]).is_break() {
                break;
            }
        }
        Ok(ObjectiveOutput::default())
    }
}
