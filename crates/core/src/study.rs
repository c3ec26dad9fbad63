//! Studies: direction, identity, and the summary `hpo ls` prints.

use std::fmt;

use crate::trial::Timestamp;

/// A storage's identifier of a study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StudyId(pub i64);

/// Whether the objective is minimized or maximized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Minimize,
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

    pub fn as_optuna_str(self) -> &'static str {
        match self {
            Direction::Minimize => "MINIMIZE",
            Direction::Maximize => "MAXIMIZE",
        }
    }

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
    pub id: StudyId,
    pub name: String,
    pub direction: Direction,
    /// The objective's metric name (Optuna's `metric_names`), when known.
    pub metric: Option<String>,
    /// The study file as written, when the study was created by `hpo run`.
    pub spec_text: Option<String>,
}

/// What `hpo ls` shows about a study.
#[derive(Debug, Clone, PartialEq)]
pub struct StudySummary {
    pub study: Study,
    pub n_trials: usize,
    pub n_complete: usize,
    pub n_pruned: usize,
    pub n_fail: usize,
    pub n_running: usize,
    pub n_waiting: usize,
    pub best_value: Option<f64>,
    pub last_activity: Option<Timestamp>,
}
