//! Trials as the store records them: state, parameters, values, curves, attributes.
//!
//! Names and states are Optuna's (`TrialState`, `FrozenTrial`, intermediate values),
//! so a reader who knows Optuna knows these.

use std::collections::BTreeMap;
use std::fmt;

use crate::distribution::{Distribution, ParamValue};
use crate::space::Params;

/// A storage's identifier of a trial (Optuna's `trial_id`; unique across studies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrialId(pub i64);

/// Microseconds since the Unix epoch, UTC. Storages set these; core never reads a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Seconds from `earlier` to `self` (negative when `earlier` is in fact later).
    pub fn seconds_since(self, earlier: Timestamp) -> f64 {
        (self.0 - earlier.0) as f64 / 1e6
    }
}

/// Where a trial is in its life. Finished trials (`Complete`, `Pruned`, `Fail`) are immutable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TrialState {
    /// Claimed by a worker and being run.
    Running,
    /// Finished with an objective value (early-stopped trials included).
    Complete,
    /// Stopped by the pruner; keeps no value.
    Pruned,
    /// Failed (an error, a NaN loss, an interrupted run); keeps no value.
    Fail,
    /// Queued (a grid point, or an enqueued configuration) and not yet claimed by a worker.
    Waiting,
}

impl TrialState {
    /// Every state.
    pub const ALL: [TrialState; 5] = [
        TrialState::Running,
        TrialState::Complete,
        TrialState::Pruned,
        TrialState::Fail,
        TrialState::Waiting,
    ];

    /// Whether the trial has ended (Complete, Pruned or Fail) and so is immutable.
    pub fn is_finished(self) -> bool {
        matches!(self, TrialState::Complete | TrialState::Pruned | TrialState::Fail)
    }

    /// Optuna's spelling, as stored in `trials.state`.
    pub fn as_optuna_str(self) -> &'static str {
        match self {
            TrialState::Running => "RUNNING",
            TrialState::Complete => "COMPLETE",
            TrialState::Pruned => "PRUNED",
            TrialState::Fail => "FAIL",
            TrialState::Waiting => "WAITING",
        }
    }

    /// Parses Optuna's spelling; `None` for an unknown one.
    pub fn from_optuna_str(it: &str) -> Option<TrialState> {
        TrialState::ALL.into_iter().find(|state| state.as_optuna_str() == it)
    }
}

impl fmt::Display for TrialState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrialState::Running => "running",
            TrialState::Complete => "complete",
            TrialState::Pruned => "pruned",
            TrialState::Fail => "fail",
            TrialState::Waiting => "waiting",
        })
    }
}

/// A JSON-like attribute value (Optuna's user and system attributes hold JSON).
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// JSON `null`.
    Null,
    /// A JSON boolean.
    Bool(bool),
    /// A JSON number; NaN and the infinities too, written bare as Python's json does.
    Number(f64),
    /// A JSON string. hpo-store also reads JSON lists and objects (other than lists
    /// of numbers) as their JSON text.
    Str(String),
    /// A JSON list of numbers (Optuna's `constraints`); NaN and the infinities
    /// written bare, as Python's json does.
    List(Vec<f64>),
}

impl AttrValue {
    /// The number, for a `Number`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            AttrValue::Number(it) => Some(it),
            _ => None,
        }
    }

    /// The string, for a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(it) => Some(it),
            _ => None,
        }
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Null => f.write_str("null"),
            AttrValue::Bool(it) => write!(f, "{it}"),
            AttrValue::Number(it) => write!(f, "{it}"),
            AttrValue::Str(it) => f.write_str(it),
            AttrValue::List(items) => {
                let items: Vec<String> = items.iter().map(ToString::to_string).collect();
                write!(f, "[{}]", items.join(", "))
            }
        }
    }
}

/// System attribute keys hpo writes. Optuna ignores keys it does not know.
pub mod attr {
    /// Why a trial failed (Optuna uses the same key).
    pub const FAIL_REASON: &str = "fail_reason";
    /// Set on a trial that failed because its run was interrupted (Ctrl-C, a killed
    /// process): such a trial does not count toward the study's budget.
    pub const INTERRUPTED: &str = "hpo:interrupted";
    /// The process that runs the trial (`host:pid:start`), to detect dead workers.
    pub const OWNER: &str = "hpo:owner";
    /// The index of the grid point a queued trial runs.
    pub const GRID_POINT: &str = "hpo:grid_point";
    /// What ended a trial: `completed`, `early_stopping`, `max_epochs`, ...
    pub const ENDED_BY: &str = "ended_by";
    /// On a retry of an interrupted trial: the number of the first attempt.
    pub const RETRY_OF: &str = "hpo:retry_of";
    /// Set on a trial queued again after running out of device memory: running out
    /// again while alone on the device is then a real failure.
    pub const AFTER_OUT_OF_MEMORY: &str = "hpo:after_out_of_memory";
    /// The device the trial trained on (`cpu`, `cuda:0`), when the objective says.
    pub const DEVICE: &str = "hpo:device";
    /// Why the pruner stopped a trial (rung, threshold, percentile and values).
    pub const PRUNE_REASON: &str = "prune_reason";
    /// Set on a confirm run (`hpo confirm`): the number of the original trial whose
    /// configuration it trains again with a new seed, as a number. Confirm runs do
    /// not count toward the study's budget and are never pruned.
    pub const CONFIRM_OF: &str = "hpo:confirm_of";
    /// The model that proposed the trial's parameters and why (`gp: ...`), for a
    /// sampler that chooses between models (`kind = "auto"`).
    pub const SAMPLER: &str = "hpo:sampler";
}

/// A trial as read from the store: an immutable snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct FrozenTrial {
    /// The storage's identifier of the trial.
    pub id: TrialId,
    /// 0, 1, 2, ... within the study, in order of creation.
    pub number: u64,
    /// Where the trial is in its life.
    pub state: TrialState,
    /// The parameter values by name (external representation); empty until sampled.
    pub params: Params,
    /// The distribution of each parameter in `params`, by the same names.
    pub distributions: BTreeMap<String, Distribution>,
    /// The objective value (the study metric at the trial's best step); the first
    /// objective's in a study of several.
    pub value: Option<f64>,
    /// Every objective's value, in the study's order, in a study of several
    /// objectives (`values[0]` is `value`); empty in a study of one. Set both with
    /// [`FrozenTrial::set_values`].
    pub values: Vec<f64>,
    /// The study metric at each reported step (Optuna's intermediate values).
    pub intermediate_values: BTreeMap<u64, f64>,
    /// User attributes; hpo keeps `best_step`, the best step's metrics and the final
    /// measurements here.
    pub user_attrs: BTreeMap<String, AttrValue>,
    /// System attributes; hpo's keys are in [`attr`].
    pub system_attrs: BTreeMap<String, AttrValue>,
    /// When the trial started running; `None` while it is Waiting.
    pub datetime_start: Option<Timestamp>,
    /// When the trial finished; `None` until then.
    pub datetime_complete: Option<Timestamp>,
}

impl FrozenTrial {
    /// A trial with no parameters, values, curve or attributes yet.
    pub fn new(id: TrialId, number: u64, state: TrialState) -> FrozenTrial {
        FrozenTrial {
            id,
            number,
            state,
            params: Params::new(),
            distributions: BTreeMap::new(),
            value: None,
            values: Vec::new(),
            intermediate_values: BTreeMap::new(),
            user_attrs: BTreeMap::new(),
            system_attrs: BTreeMap::new(),
            datetime_start: None,
            datetime_complete: None,
        }
    }

    /// Sets the trial's values, one per objective in the study's order: `value` is
    /// the first, and `values` all of them when there are several.
    pub fn set_values(&mut self, values: &[f64]) {
        self.value = values.first().copied();
        self.values = if values.len() > 1 { values.to_vec() } else { Vec::new() };
    }

    /// Every objective's value, in the study's order: `[value]` in a study of one
    /// objective, empty when the trial has none.
    pub fn objective_values(&self) -> &[f64] {
        if self.values.is_empty() { self.value.as_slice() } else { &self.values }
    }

    /// Seconds from start to completion, for finished trials.
    pub fn duration_seconds(&self) -> Option<f64> {
        Some(self.datetime_complete?.seconds_since(self.datetime_start?))
    }

    /// Whether this trial counts toward the study's budget: every trial does except
    /// queued ones, confirm runs (`attr::CONFIRM_OF`), and those that failed because
    /// their run was interrupted.
    pub fn counts_toward_budget(&self) -> bool {
        self.state != TrialState::Waiting
            && !self.system_attrs.contains_key(attr::CONFIRM_OF)
            && !(self.state == TrialState::Fail
                && self.system_attrs.contains_key(attr::INTERRUPTED))
    }

    /// The number of the original trial this one re-trains with a new seed, when it is
    /// a confirm run (`attr::CONFIRM_OF`).
    pub fn confirm_of(&self) -> Option<u64> {
        let number = self.system_attrs.get(attr::CONFIRM_OF).and_then(AttrValue::as_f64)?;
        (number >= 0.0 && number.fract() == 0.0).then_some(number as u64)
    }

    /// The first attempt's number, when this trial retries an interrupted one.
    pub fn retry_of(&self) -> Option<u64> {
        let number = self.system_attrs.get(attr::RETRY_OF).and_then(AttrValue::as_f64)?;
        (number >= 0.0 && number.fract() == 0.0).then_some(number as u64)
    }

    /// Why the trial failed, when its `fail_reason` system attribute says.
    pub fn fail_reason(&self) -> Option<&str> {
        self.system_attrs.get(attr::FAIL_REASON).and_then(AttrValue::as_str)
    }
}

/// One point of a named metric's curve (`val_loss` at epoch 3).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    /// The step (epoch) the value was measured at.
    pub step: u64,
    /// The metric's name.
    pub name: String,
    /// The value; NaN when the objective reported NaN.
    pub value: f64,
}

/// A parameter value together with the distribution it was drawn from.
pub type ParamValueWithDistribution = (ParamValue, Distribution);
