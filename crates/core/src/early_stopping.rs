//! Early stopping: end a trial whose monitored metric stopped improving.
//!
//! After `patience` consecutive steps that do not improve on the best value by
//! more than `min_delta`, the trial stops. A NaN never improves. This is a trial's
//! own affair (its own curve only); pruning, which compares trials, is separate.

use crate::spec::EarlyStoppingSpec;
use crate::study::Direction;

/// The state of early stopping for one trial.
#[derive(Debug, Clone)]
pub struct EarlyStopping {
    direction: Direction,
    patience: u32,
    min_delta: f64,
    best: Option<f64>,
    steps_without_improvement: u32,
}

/// What one new value means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EarlyStoppingDecision {
    /// The value is the new best: the first non-NaN value, or better than the best by
    /// more than `min_delta`.
    Improved,
    /// The value did not improve, but the patience is not used up yet.
    NoImprovement {
        /// Consecutive steps without improvement, this one included (below `patience`).
        steps_without_improvement: u32,
    },
    /// `patience` steps in a row did not improve: the trial should stop.
    Stop {
        /// The best value seen; NaN when every value was NaN.
        best: f64,
        /// Consecutive steps without improvement, this one included.
        steps_without_improvement: u32,
    },
}

impl EarlyStopping {
    /// Early stopping as `spec` configures it, for a trial that has reported nothing yet.
    pub fn new(spec: &EarlyStoppingSpec) -> EarlyStopping {
        EarlyStopping {
            direction: spec.direction,
            patience: spec.patience,
            min_delta: spec.min_delta,
            best: None,
            steps_without_improvement: 0,
        }
    }

    /// Feeds the monitored metric's value at the next step.
    pub fn update(&mut self, value: f64) -> EarlyStoppingDecision {
        let improved = !value.is_nan()
            && match self.best {
                None => true,
                Some(best) => self.direction.improves_by(value, best, self.min_delta),
            };
        if improved {
            self.best = Some(value);
            self.steps_without_improvement = 0;
            return EarlyStoppingDecision::Improved;
        }
        self.steps_without_improvement += 1;
        match self.best {
            Some(best) if self.steps_without_improvement >= self.patience => {
                EarlyStoppingDecision::Stop {
                    best,
                    steps_without_improvement: self.steps_without_improvement,
                }
            }
            None if self.steps_without_improvement >= self.patience => {
                EarlyStoppingDecision::Stop {
                    best: f64::NAN,
                    steps_without_improvement: self.steps_without_improvement,
                }
            }
            _ => EarlyStoppingDecision::NoImprovement {
                steps_without_improvement: self.steps_without_improvement,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(direction: Direction, patience: u32, min_delta: f64, values: &[f64]) -> Vec<String> {
        let spec = EarlyStoppingSpec { monitor: "m".into(), direction, patience, min_delta };
        let mut it = EarlyStopping::new(&spec);
        values
            .iter()
            .map(|v| match it.update(*v) {
                EarlyStoppingDecision::Improved => "improved".to_owned(),
                EarlyStoppingDecision::NoImprovement { steps_without_improvement } => {
                    format!("wait {steps_without_improvement}")
                }
                EarlyStoppingDecision::Stop { best, .. } => format!("stop best={best}"),
            })
            .collect()
    }

    #[test]
    fn table() {
        use Direction::*;
        // (direction, patience, min_delta, values, decisions)
        type Case<'a> = (Direction, u32, f64, &'a [f64], &'a [&'a str]);
        let cases: &[Case<'_>] = &[
            // Falling loss keeps improving.
            (Minimize, 2, 0.0, &[3.0, 2.0, 1.0], &["improved", "improved", "improved"]),
            // Two flat steps with patience 2 stop.
            (Minimize, 2, 0.0, &[1.0, 1.0, 1.5], &["improved", "wait 1", "stop best=1"]),
            // An improvement resets the counter.
            (
                Minimize,
                2,
                0.0,
                &[1.0, 1.2, 0.9, 1.0],
                &["improved", "wait 1", "improved", "wait 1"],
            ),
            // Improvements smaller than min_delta don't count.
            (Minimize, 2, 0.1, &[1.0, 0.95, 0.93], &["improved", "wait 1", "stop best=1"]),
            // Maximize: accuracy going up improves.
            (Maximize, 1, 0.0, &[0.5, 0.6, 0.6], &["improved", "improved", "stop best=0.6"]),
            // NaN never improves.
            (Minimize, 2, 0.0, &[1.0, f64::NAN, f64::NAN], &["improved", "wait 1", "stop best=1"]),
            // All NaN: stops after patience, with no best.
            (Minimize, 1, 0.0, &[f64::NAN], &["stop best=NaN"]),
        ];
        for (direction, patience, min_delta, values, expected) in cases {
            assert_eq!(
                run(*direction, *patience, *min_delta, values),
                *expected,
                "{direction} patience={patience} min_delta={min_delta} values={values:?}"
            );
        }
    }
}
