//! Studies: direction, identity, and the summary `hpo ls` prints.

use std::fmt;

use crate::trial::Timestamp;

/// A storage's identifier of a study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StudyId(pub i64);

/// Whether the objective is minimized or maximized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Lower values are better.
    Minimize,
    /// Higher values are better.
    Maximize,
}

impl Direction {
    /// Whether `candidate` is strictly better than `incumbent`. NaN is never better.
    pub fn is_better(self, candidate: f64, incumbent: f64) -> bool {
        match self {
            Direction::Minimize => candidate < incumbent,
            Direction::Maximize => candidate > incumbent,
        }
    }

    /// Whether `candidate` improves on `best` by more than `min_delta`.
    pub fn improves_by(self, candidate: f64, best: f64, min_delta: f64) -> bool {
        match self {
            Direction::Minimize => candidate < best - min_delta,
            Direction::Maximize => candidate > best + min_delta,
        }
    }

    /// The worst possible value, a starting point for "best so far".
    pub fn worst(self) -> f64 {
        match self {
            Direction::Minimize => f64::INFINITY,
            Direction::Maximize => f64::NEG_INFINITY,
        }
    }

    /// Optuna's spelling, as stored in `study_directions.direction`.
    pub fn as_optuna_str(self) -> &'static str {
        match self {
            Direction::Minimize => "MINIMIZE",
            Direction::Maximize => "MAXIMIZE",
        }
    }

    /// Parses Optuna's spelling; `None` for anything else (such as `NOT_SET`).
    pub fn from_optuna_str(it: &str) -> Option<Direction> {
        match it {
            "MINIMIZE" => Some(Direction::Minimize),
            "MAXIMIZE" => Some(Direction::Maximize),
            _ => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Minimize => "minimize",
            Direction::Maximize => "maximize",
        })
    }
}

/// A study as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Study {
    /// The storage's identifier of the study.
    pub id: StudyId,
    /// The study's name; unique in the storage.
    pub name: String,
    /// Whether the objective is minimized or maximized.
    pub direction: Direction,
    /// The objective's metric name (Optuna's `metric_names`), when known.
    pub metric: Option<String>,
    /// The study file as written, when the study was created by `hpo run`.
    pub spec_text: Option<String>,
    /// Every objective's direction, in order: `[direction]` for a study of one
    /// objective; more for a study of several (`[study] metrics`).
    pub directions: Vec<Direction>,
    /// Every objective's metric name, in the same order, when known (`metric` is
    /// the first).
    pub metrics: Vec<String>,
}

/// Keys of the study user attributes hpo writes (Optuna's `study.user_attrs`).
pub mod study_attr {
    /// On a study that has confirm runs: the name of the study holding them.
    pub const CONFIRM_STUDY: &str = "hpo:confirm_study";
    /// On a study of confirm runs: the name of the study whose trials they retrain.
    pub const CONFIRMS: &str = "hpo:confirms";
}

/// The name of the study that holds `study`'s confirm runs (`hpo confirm`): kept
/// apart, so Optuna's tools count only search trials in the study itself, and
/// linked both ways by [`study_attr`].
pub fn confirm_study_name(study: &str) -> String {
    format!("{study}:confirm")
}

impl Study {
    /// Each objective's metric name, in order: the stored names, else `value` for
    /// a study of one objective and `value_0`, `value_1`, ... for several
    /// (Optuna's defaults when a study names none).
    pub fn objective_names(&self) -> Vec<String> {
        (0..self.directions.len())
            .map(|k| match self.metrics.get(k) {
                Some(name) => name.clone(),
                None if self.directions.len() == 1 => "value".to_owned(),
                None => format!("value_{k}"),
            })
            .collect()
    }

    /// Refuses a multi-objective study ([`crate::Error::MultiObjective`]): hpo's
    /// commands read one value per trial.
    pub fn single_objective(self) -> crate::Result<Study> {
        if self.directions.len() > 1 {
            return Err(crate::Error::MultiObjective {
                study: self.name,
                directions: self.directions,
            });
        }
        Ok(self)
    }
}

/// What `hpo ls` shows about a study.
#[derive(Debug, Clone, PartialEq)]
pub struct StudySummary {
    /// The study.
    pub study: Study,
    /// Its trials in every state.
    pub n_trials: usize,
    /// Its Complete trials.
    pub n_complete: usize,
    /// Its Pruned trials.
    pub n_pruned: usize,
    /// Its Fail trials.
    pub n_fail: usize,
    /// Its Running trials.
    pub n_running: usize,
    /// Its Waiting (queued) trials.
    pub n_waiting: usize,
    /// The best value among its Complete trials, if any has one.
    pub best_value: Option<f64>,
    /// When one of its trials last started or finished, if any did.
    pub last_activity: Option<Timestamp>,
}
