//! Pruners stop trials that look worse than others while they run.
//!
//! A pruner is a pure function of (its settings, the study's direction, the trial's
//! curve so far, every other trial's curve): it keeps no state, so every worker and
//! process that reads the same store takes the same decision. The study loop asks
//! after every reported step. At a step the rule judges (a rung, a step past the
//! warm-up) the answer is a [`Verdict`]: prune or continue, with the reason (which
//! rung and cutoff, which threshold, what median); the study loop records every
//! verdict in the store, so `hpo show` can say why each trial went on or stopped.
//! Curves are the study metric's values by step (a trial's intermediate values).
//!
//! - `median` / `percentile` (Optuna's rules): after `startup_trials` complete
//!   trials and `warmup_steps` steps, every `interval` steps, prune when the trial's
//!   best value so far is worse than the given percentile of the complete trials'
//!   values at the same step.
//! - `asha` (asynchronous successive halving, Li et al. 2020): rungs at
//!   `min_resource * reduction_factor^(min_early_stopping_rate + k)` steps; when a
//!   trial first reaches a rung it continues only if its value there is among the
//!   best `1 / reduction_factor` of the values every trial had at that rung (always
//!   at least the best one). No trial waits for another.
//! - `hyperband` (Li et al. 2018): `n` ASHA brackets with early-stopping rates
//!   `0..n`, where `n = floor(log_rf(max_resource / min_resource)) + 1`. Bracket
//!   `b` gets a share of trials proportional to `ceil(n rf^(n-1-b) / (n-b))` (as
//!   Optuna allocates them, so the most aggressive bracket gets the most trials);
//!   a trial's bracket is a hash of its number mapped onto those shares, the same
//!   in every process, and it competes only with its bracket.
//! - `threshold`: prune a value below `lower`, above `upper`, or not finite.
//! - `patience` (on any kind): prune only when the trial's last `patience` steps
//!   brought no improvement of at least `min_delta` over its best before them, and
//!   the pruner (if any) agrees.

use std::collections::BTreeMap;

use crate::study::Direction;
use crate::trial::{FrozenTrial, TrialState};

/// Which rule decides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PrunerKind {
    /// Never prune (the `patience` wrapper may still stop stalled trials).
    None,
    /// Optuna's percentile rule (`median` is `percentile = 50`).
    Percentile {
        /// The percentile of the other trials' values a trial must not be worse than,
        /// in (0, 100); lower prunes more.
        percentile: f64,
        /// Complete trials needed before anything is pruned.
        startup_trials: usize,
        /// Steps a trial runs before it can be pruned.
        warmup_steps: u64,
        /// Decide every `interval` steps after the warm-up.
        interval: u64,
    },
    /// Asynchronous successive halving.
    Asha {
        /// The first rung's step.
        min_resource: u64,
        /// Rungs grow by this factor; the best 1/factor continue.
        reduction_factor: u64,
        /// Skips the first rungs: rung k is at `min_resource * rf^(rate + k)`.
        min_early_stopping_rate: u32,
    },
    /// Several ASHA brackets.
    Hyperband {
        /// The smallest bracket's first rung.
        min_resource: u64,
        /// The most steps a trial runs (the objective's `max_epochs`).
        max_resource: u64,
        /// As for ASHA.
        reduction_factor: u64,
    },
    /// Prune values outside [lower, upper] and non-finite ones.
    Threshold {
        /// Values below are pruned.
        lower: Option<f64>,
        /// Values above are pruned.
        upper: Option<f64>,
        /// Steps a trial runs before it can be pruned.
        warmup_steps: u64,
    },
}

/// What a pruner concluded about a trial at a step it judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// True to stop the trial now.
    pub prune: bool,
    /// Why, with the numbers compared (rung and cutoff, percentile, threshold).
    pub reason: String,
}

impl Verdict {
    /// A verdict to stop the trial.
    pub fn prune(reason: String) -> Verdict {
        Verdict { prune: true, reason }
    }

    /// A verdict to let the trial go on.
    pub fn keep(reason: String) -> Verdict {
        Verdict { prune: false, reason }
    }

    /// `prune` or `continue`, as stores and listings spell the decision.
    pub fn decision(&self) -> &'static str {
        if self.prune { "prune" } else { "continue" }
    }
}

/// A pruner: a rule, optionally only acting on trials that stopped improving.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pruner {
    /// The rule.
    pub kind: PrunerKind,
    /// With `Some((patience, min_delta))`, prune only after `patience` steps without
    /// an improvement of at least `min_delta`.
    pub patience: Option<(u64, f64)>,
}

impl Pruner {
    /// No pruning.
    pub const NONE: Pruner = Pruner { kind: PrunerKind::None, patience: None };

    /// The name a study file uses for the rule.
    pub fn name(&self) -> &'static str {
        match self.kind {
            PrunerKind::None => "none",
            PrunerKind::Percentile { percentile: 50.0, .. } => "median",
            PrunerKind::Percentile { .. } => "percentile",
            PrunerKind::Asha { .. } => "asha",
            PrunerKind::Hyperband { .. } => "hyperband",
            PrunerKind::Threshold { .. } => "threshold",
        }
    }

    /// Whether the pruner can ever prune.
    pub fn is_active(&self) -> bool {
        self.kind != PrunerKind::None || self.patience.is_some()
    }

    /// The step at which `judge`, for trial `number` reporting `step`, reads the
    /// other trials' curves (a rung's step, or `step` for the percentile rule);
    /// `None` when the verdict does not depend on them, so the caller skips reading
    /// them. Each other trial is read only around that step: its last point at or
    /// before it and its first after it (`Storage::trials_at_step`).
    pub fn reads_others_at(
        &self,
        number: u64,
        curve: &BTreeMap<u64, f64>,
        step: u64,
    ) -> Option<u64> {
        match self.kind {
            PrunerKind::Percentile { warmup_steps, interval, .. } => {
                first_in_interval(curve, step, warmup_steps, interval).then_some(step)
            }
            PrunerKind::Asha { min_resource, reduction_factor, min_early_stopping_rate } => {
                let rungs = Rungs { min_resource, reduction_factor, rate: min_early_stopping_rate };
                rungs.reached(curve, step).map(|k| rungs.step(k))
            }
            PrunerKind::Hyperband { min_resource, max_resource, reduction_factor } => {
                let n = hyperband_brackets(min_resource, max_resource, reduction_factor);
                let bracket = hyperband_bracket(number, n, reduction_factor);
                let rungs = Rungs { min_resource, reduction_factor, rate: bracket as u32 };
                rungs.reached(curve, step).map(|k| rungs.step(k))
            }
            PrunerKind::None | PrunerKind::Threshold { .. } => None,
        }
    }

    /// The verdict on `trial` now that it reported `step`, or `None` when the rule
    /// does not judge this step (warm-up, too few complete trials, between rungs,
    /// off the interval). `curve` is the trial's values by step (including `step`);
    /// `others` are the study's other trials with their curves.
    pub fn judge(
        &self,
        direction: Direction,
        number: u64,
        curve: &BTreeMap<u64, f64>,
        step: u64,
        others: &[FrozenTrial],
    ) -> Option<Verdict> {
        let stall =
            self.patience.map(|(patience, min_delta)| stall(direction, curve, patience, min_delta));
        let rule = match self.kind {
            PrunerKind::None => return stall.flatten(),
            PrunerKind::Percentile { percentile, startup_trials, warmup_steps, interval } => {
                percentile_rule(
                    direction,
                    curve,
                    step,
                    others,
                    percentile,
                    startup_trials,
                    warmup_steps,
                    interval,
                )
            }
            PrunerKind::Asha { min_resource, reduction_factor, min_early_stopping_rate } => {
                let rungs = Rungs { min_resource, reduction_factor, rate: min_early_stopping_rate };
                rungs.judge(direction, curve, step, others.iter().collect())
            }
            PrunerKind::Hyperband { min_resource, max_resource, reduction_factor } => {
                let n = hyperband_brackets(min_resource, max_resource, reduction_factor);
                let bracket = hyperband_bracket(number, n, reduction_factor);
                let rungs = Rungs { min_resource, reduction_factor, rate: bracket as u32 };
                let peers = others
                    .iter()
                    .filter(|t| hyperband_bracket(t.number, n, reduction_factor) == bracket)
                    .collect();
                rungs
                    .judge(direction, curve, step, peers)
                    .map(|v| Verdict { reason: format!("bracket {bracket}: {}", v.reason), ..v })
            }
            PrunerKind::Threshold { lower, upper, warmup_steps } => {
                threshold_rule(curve.get(&step).copied(), step, lower, upper, warmup_steps)
            }
        }?;
        // With patience, the rule's "prune" stands only for a trial that stalled.
        let (Some(stall), Some((patience, _))) = (stall, self.patience) else { return Some(rule) };
        if !rule.prune {
            return Some(rule);
        }
        Some(match stall {
            Some(stall) if stall.prune => {
                Verdict::prune(format!("{}; {}", rule.reason, stall.reason))
            }
            Some(stall) => Verdict::keep(format!("{}, but {}", rule.reason, stall.reason)),
            None => Verdict::keep(format!(
                "{}, but patience {patience} needs more steps than the {} reported",
                rule.reason,
                curve.len()
            )),
        })
    }
}

/// The number of Hyperband brackets: `floor(log_rf(max / min)) + 1`, at least 1.
pub fn hyperband_brackets(min_resource: u64, max_resource: u64, reduction_factor: u64) -> u64 {
    let (mut n, mut r) = (1, min_resource.max(1));
    while r.saturating_mul(reduction_factor.max(2)) <= max_resource {
        r *= reduction_factor.max(2);
        n += 1;
    }
    n
}

/// A value for a reason: 4 decimals, or scientific notation far from 1.
fn show(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || (1e-3..1e5).contains(&v.abs()) {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        format!("{v:.3e}")
    }
}

/// The Hyperband bracket of trial `number` among `n` brackets: a hash of the
/// number mapped onto the brackets' shares, `ceil(n rf^(n-1-b) / (n-b))` for
/// bracket `b`.
pub fn hyperband_bracket(number: u64, n: u64, reduction_factor: u64) -> u64 {
    let rf = reduction_factor.max(2);
    let shares: Vec<u64> =
        (0..n).map(|b| (n * rf.saturating_pow((n - 1 - b) as u32)).div_ceil(n - b)).collect();
    let total: u64 = shares.iter().sum();
    let mut k = crate::sampler::splitmix64(number) % total.max(1);
    for (b, share) in shares.iter().enumerate() {
        if k < *share {
            return b as u64;
        }
        k -= share;
    }
    n - 1
}

/// `a` is worse than `b` in `direction` (NaN is worse than anything).
fn worse(direction: Direction, a: f64, b: f64) -> bool {
    if a.is_nan() {
        return !b.is_nan();
    }
    match direction {
        Direction::Minimize => a > b,
        Direction::Maximize => a < b,
    }
}

/// The best finite value of a curve up to and including `step`.
fn best_until(direction: Direction, curve: &BTreeMap<u64, f64>, step: u64) -> Option<f64> {
    curve
        .range(..=step)
        .map(|(_, v)| *v)
        .filter(|v| !v.is_nan())
        .reduce(|a, b| if worse(direction, a, b) { b } else { a })
}

/// The patience verdict: prune when the last `patience` reported steps did not
/// improve on the best before them by `min_delta`; `None` while the curve has no
/// more than `patience` steps.
fn stall(
    direction: Direction,
    curve: &BTreeMap<u64, f64>,
    patience: u64,
    min_delta: f64,
) -> Option<Verdict> {
    let values: Vec<f64> = curve.values().copied().collect();
    let patience = patience as usize;
    if values.len() <= patience {
        return None;
    }
    let (before, recent) = values.split_at(values.len() - patience);
    let pick = |xs: &[f64]| {
        xs.iter()
            .copied()
            .filter(|v| !v.is_nan())
            .reduce(|a, b| if worse(direction, a, b) { b } else { a })
    };
    let Some(best_before) = pick(before) else {
        return Some(Verdict::prune("no finite value yet".into()));
    };
    let best_recent = pick(recent);
    let improved = best_recent.is_some_and(|best_recent| match direction {
        Direction::Minimize => best_recent < best_before - min_delta,
        Direction::Maximize => best_recent > best_before + min_delta,
    });
    Some(match best_recent {
        Some(best_recent) if improved => Verdict::keep(format!(
            "improved from {} to {} in the last {patience} steps",
            show(best_before),
            show(best_recent)
        )),
        _ => Verdict::prune(format!(
            "no improvement beyond {} in the last {patience} steps",
            show(best_before)
        )),
    })
}

/// Whether the percentile rule judges `step`: the first step the trial reports in
/// its interval after the warm-up (intervals start at `warmup_steps`, every
/// `interval` steps). Optuna's rule: a trial that skips a multiple of the interval
/// is judged at its next report instead of never.
fn first_in_interval(
    curve: &BTreeMap<u64, f64>,
    step: u64,
    warmup_steps: u64,
    interval: u64,
) -> bool {
    if step < warmup_steps {
        return false;
    }
    let interval = interval.max(1);
    let interval_start = warmup_steps + (step - warmup_steps) / interval * interval;
    curve.range(..step).next_back().is_none_or(|(&previous, _)| previous < interval_start)
}

#[allow(clippy::too_many_arguments)]
fn percentile_rule(
    direction: Direction,
    curve: &BTreeMap<u64, f64>,
    step: u64,
    others: &[FrozenTrial],
    percentile: f64,
    startup_trials: usize,
    warmup_steps: u64,
    interval: u64,
) -> Option<Verdict> {
    if !first_in_interval(curve, step, warmup_steps, interval) {
        return None;
    }
    let complete: Vec<&FrozenTrial> =
        others.iter().filter(|t| t.state == TrialState::Complete).collect();
    if complete.len() < startup_trials {
        return None;
    }
    let mut at_step: Vec<f64> = complete
        .iter()
        .filter_map(|t| t.intermediate_values.get(&step).copied())
        .filter(|v| !v.is_nan())
        .collect();
    if at_step.is_empty() {
        return None;
    }
    at_step.sort_by(f64::total_cmp);
    // For maximization, the "worse side" percentile is mirrored.
    let q = match direction {
        Direction::Minimize => percentile,
        Direction::Maximize => 100.0 - percentile,
    };
    let reference = quantile(&at_step, q / 100.0);
    let Some(best) = best_until(direction, curve, step) else {
        return Some(Verdict::prune(format!("no finite value by step {step}")));
    };
    let prune = worse(direction, best, reference);
    Some(Verdict {
        prune,
        reason: format!(
            "best value {} by step {step} is {} the {percentile}th percentile {} of {} complete trials at that step",
            show(best),
            if prune { "worse than" } else { "no worse than" },
            show(reference),
            at_step.len()
        ),
    })
}

/// Linear-interpolation quantile of sorted values, q in [0, 1].
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn threshold_rule(
    value: Option<f64>,
    step: u64,
    lower: Option<f64>,
    upper: Option<f64>,
    warmup_steps: u64,
) -> Option<Verdict> {
    let value = value?;
    if !value.is_finite() {
        return Some(Verdict::prune(format!("value {value} at step {step} is not finite")));
    }
    if step < warmup_steps {
        return None;
    }
    if let Some(lower) = lower.filter(|l| value < *l) {
        return Some(Verdict::prune(format!(
            "value {} at step {step} is below the threshold {lower}",
            show(value)
        )));
    }
    if let Some(upper) = upper.filter(|u| value > *u) {
        return Some(Verdict::prune(format!(
            "value {} at step {step} is above the threshold {upper}",
            show(value)
        )));
    }
    let bound = |b: Option<f64>, none: &str| b.map_or(none.to_owned(), |b| b.to_string());
    Some(Verdict::keep(format!(
        "value {} at step {step} is within [{}, {}]",
        show(value),
        bound(lower, "-inf"),
        bound(upper, "inf")
    )))
}

/// The rungs of one successive-halving bracket.
struct Rungs {
    min_resource: u64,
    reduction_factor: u64,
    rate: u32,
}

impl Rungs {
    /// The step of rung `k`.
    fn step(&self, k: u32) -> u64 {
        let rf = self.reduction_factor.max(2);
        self.min_resource.max(1).saturating_mul(rf.saturating_pow(self.rate + k))
    }

    /// A trial's value at a rung: its value at the rung's step, or the last one
    /// reported before it (curves may skip steps).
    fn value_at(curve: &BTreeMap<u64, f64>, rung_step: u64) -> Option<f64> {
        curve.range(..=rung_step).next_back().map(|(_, v)| *v)
    }

    /// The rung this report reaches first: the highest rung at or below `step`
    /// that the previous report had not reached; `None` between rungs.
    fn reached(&self, curve: &BTreeMap<u64, f64>, step: u64) -> Option<u32> {
        let previous = curve.range(..step).next_back().map(|(s, _)| *s);
        let mut k = 0;
        let mut reached = None;
        while self.step(k) <= step {
            if previous.is_none_or(|p| p < self.step(k)) {
                reached = Some(k);
            }
            k += 1;
            if k > 62 {
                break;
            }
        }
        reached
    }

    fn judge(
        &self,
        direction: Direction,
        curve: &BTreeMap<u64, f64>,
        step: u64,
        peers: Vec<&FrozenTrial>,
    ) -> Option<Verdict> {
        let k = self.reached(curve, step)?;
        let rung_step = self.step(k);
        let value = Self::value_at(curve, rung_step)?;
        let mut competing: Vec<f64> = peers
            .iter()
            .filter(|t| t.intermediate_values.range(rung_step..).next().is_some())
            .filter_map(|t| Self::value_at(&t.intermediate_values, rung_step))
            .collect();
        competing.push(value);
        let finite: Vec<f64> = competing.iter().copied().filter(|v| !v.is_nan()).collect();
        if value.is_nan() {
            return Some(Verdict::prune(format!("rung {k} (step {rung_step}): value is NaN")));
        }
        let mut sorted = finite;
        sorted.sort_by(f64::total_cmp);
        if direction == Direction::Maximize {
            sorted.reverse();
        }
        let keep = (sorted.len() as u64 / self.reduction_factor.max(2)).max(1) as usize;
        let cutoff = sorted[keep - 1];
        let prune = worse(direction, value, cutoff);
        Some(Verdict {
            prune,
            reason: format!(
                "rung {k} (step {rung_step}): value {} is {} the best {keep} of {} trials there (cutoff {})",
                show(value),
                if prune { "not in" } else { "in" },
                sorted.len(),
                show(cutoff)
            ),
        })
    }
}

#[cfg(test)]
mod tests;
