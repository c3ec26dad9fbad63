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

/// What a pruner reads of the study's other trials at the step it judges.
#[derive(Debug, Clone, Copy)]
pub enum Peers<'a> {
    /// The other trials, with their curves (at least around the step).
    Trials(&'a [FrozenTrial]),
    /// What the study loop keeps of the finished trials ([`Pruner::kept_values`])
    /// at the step the rule reads (the step judged for the percentile rule, the
    /// rung's step for ASHA and Hyperband), and the running trials' values there:
    /// a verdict then costs the same at trial 10 and at trial 10,000.
    Kept {
        /// Finished trials the rule counts (complete ones for the percentile rule).
        n_finished: usize,
        /// The finished trials' values at the step, of the trial's group (its
        /// Hyperband bracket), sorted by `f64::total_cmp`, without NaN.
        values: &'a [f64],
        /// The other running trials' values there (ASHA and Hyperband: those of
        /// the trial's group that reached the rung).
        running: &'a [f64],
    },
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

    /// The rungs trial `number` climbs and its group (its Hyperband bracket; 0 for
    /// ASHA), for the rules that have rungs.
    fn rungs(&self, number: u64) -> Option<(u64, Rungs)> {
        match self.kind {
            PrunerKind::Asha { min_resource, reduction_factor, min_early_stopping_rate } => {
                Some((0, Rungs { min_resource, reduction_factor, rate: min_early_stopping_rate }))
            }
            PrunerKind::Hyperband { min_resource, max_resource, reduction_factor } => {
                let n = hyperband_brackets(min_resource, max_resource, reduction_factor);
                let bracket = hyperband_bracket(number, n, reduction_factor);
                Some((bracket, Rungs { min_resource, reduction_factor, rate: bracket as u32 }))
            }
            _ => None,
        }
    }

    /// The group of trials that trial `number` is judged among: its Hyperband
    /// bracket; 0 for every other rule.
    pub fn group(&self, number: u64) -> u64 {
        self.rungs(number).map_or(0, |(group, _)| group)
    }

    /// The states of the finished trials a rule reads: complete ones for the
    /// percentile rule; complete and pruned ones for ASHA and Hyperband; none for
    /// the rules that read no other trial.
    pub fn finished_states_read(&self) -> &'static [TrialState] {
        match self.kind {
            PrunerKind::Percentile { .. } => &[TrialState::Complete],
            PrunerKind::Asha { .. } | PrunerKind::Hyperband { .. } => {
                &[TrialState::Complete, TrialState::Pruned]
            }
            PrunerKind::None | PrunerKind::Threshold { .. } => &[],
        }
    }

    /// What later verdicts read of a finished trial, as (group, step, value): every
    /// value of a complete trial for the percentile rule; the value at each rung
    /// it reached for ASHA and Hyperband. NaN values are left out. A finished
    /// trial never changes, so a caller may keep these instead of reading it again.
    pub fn kept_values(&self, trial: &FrozenTrial) -> Vec<(u64, u64, f64)> {
        if !self.finished_states_read().contains(&trial.state) {
            return Vec::new();
        }
        let curve = &trial.intermediate_values;
        let kept: Vec<(u64, u64, f64)> = match self.rungs(trial.number) {
            None => curve.iter().map(|(&step, &value)| (0, step, value)).collect(),
            Some((group, rungs)) => (0..63)
                .map(|k| rungs.step(k))
                .take_while(|&rung_step| curve.range(rung_step..).next().is_some())
                .filter_map(|rung_step| {
                    Rungs::value_at(curve, rung_step).map(|value| (group, rung_step, value))
                })
                .collect(),
        };
        kept.into_iter().filter(|(_, _, value)| !value.is_nan()).collect()
    }

    /// A running trial's value at the step the rule reads (`at`, from
    /// [`Pruner::reads_others_at`]), when it counts there: for ASHA and Hyperband,
    /// when it reached that rung.
    pub fn running_value_at(&self, curve: &BTreeMap<u64, f64>, at: u64) -> Option<f64> {
        Rungs::value_if_reached(curve, at).filter(|v| !v.is_nan())
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
        self.judge_with(direction, number, curve, step, Peers::Trials(others))
    }

    /// [`Pruner::judge`] from what it reads of the other trials, in either form;
    /// the ASHA and Hyperband rules read whole trials (`Peers::Trials`) and judge
    /// no other trials from `Peers::CompleteAtStep`.
    pub fn judge_with(
        &self,
        direction: Direction,
        number: u64,
        curve: &BTreeMap<u64, f64>,
        step: u64,
        peers: Peers<'_>,
    ) -> Option<Verdict> {
        let stall =
            self.patience.map(|(patience, min_delta)| stall(direction, curve, patience, min_delta));
        let rule = match self.kind {
            PrunerKind::None => return stall.flatten(),
            PrunerKind::Percentile { percentile, startup_trials, warmup_steps, interval } => {
                let from_trials;
                let (n_complete, values) = match peers {
                    Peers::Kept { n_finished, values, .. } => (n_finished, values),
                    Peers::Trials(trials) => {
                        from_trials = complete_values_at(trials, step);
                        (from_trials.0, from_trials.1.as_slice())
                    }
                };
                percentile_rule(
                    direction,
                    curve,
                    step,
                    n_complete,
                    values,
                    percentile,
                    startup_trials,
                    warmup_steps,
                    interval,
                )
            }
            PrunerKind::Asha { .. } | PrunerKind::Hyperband { .. } => {
                let (group, rungs) = self.rungs(number)?;
                let verdict = rungs.judge(direction, curve, step, |rung_step| match peers {
                    Peers::Kept { values, running, .. } => {
                        (std::borrow::Cow::Borrowed(values), running.to_vec())
                    }
                    Peers::Trials(trials) => {
                        let mut values: Vec<f64> = trials
                            .iter()
                            .filter(|t| self.group(t.number) == group)
                            .filter_map(|t| {
                                Rungs::value_if_reached(&t.intermediate_values, rung_step)
                            })
                            .filter(|v| !v.is_nan())
                            .collect();
                        values.sort_by(f64::total_cmp);
                        (std::borrow::Cow::Owned(values), Vec::new())
                    }
                })?;
                match self.kind {
                    PrunerKind::Hyperband { .. } => Some(Verdict {
                        reason: format!("bracket {group}: {}", verdict.reason),
                        ..verdict
                    }),
                    _ => Some(verdict),
                }
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

/// How many of `trials` are complete, and their values at `step`, sorted, without
/// NaN: what the percentile rule reads.
pub fn complete_values_at(trials: &[FrozenTrial], step: u64) -> (usize, Vec<f64>) {
    let complete: Vec<&FrozenTrial> =
        trials.iter().filter(|t| t.state == TrialState::Complete).collect();
    let mut values: Vec<f64> = complete
        .iter()
        .filter_map(|t| t.intermediate_values.get(&step).copied())
        .filter(|v| !v.is_nan())
        .collect();
    values.sort_by(f64::total_cmp);
    (complete.len(), values)
}

#[allow(clippy::too_many_arguments)]
fn percentile_rule(
    direction: Direction,
    curve: &BTreeMap<u64, f64>,
    step: u64,
    n_complete: usize,
    at_step: &[f64],
    percentile: f64,
    startup_trials: usize,
    warmup_steps: u64,
    interval: u64,
) -> Option<Verdict> {
    if !first_in_interval(curve, step, warmup_steps, interval) {
        return None;
    }
    if n_complete < startup_trials {
        return None;
    }
    if at_step.is_empty() {
        return None;
    }
    // For maximization, the "worse side" percentile is mirrored.
    let q = match direction {
        Direction::Minimize => percentile,
        Direction::Maximize => 100.0 - percentile,
    };
    let reference = quantile(at_step, q / 100.0);
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

    /// A trial's value at a rung, if the trial reached it (reported a step at or
    /// after it).
    fn value_if_reached(curve: &BTreeMap<u64, f64>, rung_step: u64) -> Option<f64> {
        curve.range(rung_step..).next()?;
        Self::value_at(curve, rung_step)
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

    /// The verdict at the rung `step` reaches first, if any: the trial continues
    /// when its value there is among the best `1 / reduction_factor` of every
    /// trial's value there (always at least the best one). `peers(rung_step)`
    /// gives the other trials' values at the rung: finished ones sorted by
    /// `f64::total_cmp` without NaN, and running ones in any order.
    fn judge<'p>(
        &self,
        direction: Direction,
        curve: &BTreeMap<u64, f64>,
        step: u64,
        peers: impl FnOnce(u64) -> (std::borrow::Cow<'p, [f64]>, Vec<f64>),
    ) -> Option<Verdict> {
        let k = self.reached(curve, step)?;
        let rung_step = self.step(k);
        let value = Self::value_at(curve, rung_step)?;
        if value.is_nan() {
            return Some(Verdict::prune(format!("rung {k} (step {rung_step}): value is NaN")));
        }
        let (finished, running) = peers(rung_step);
        let mut few: Vec<f64> = running.into_iter().filter(|v| !v.is_nan()).collect();
        few.push(value);
        few.sort_by(f64::total_cmp);
        let len = finished.len() + few.len();
        let keep = (len as u64 / self.reduction_factor.max(2)).max(1) as usize;
        // The keep-th best: counted from the low end when lower is better.
        let rank = match direction {
            Direction::Minimize => keep - 1,
            Direction::Maximize => len - keep,
        };
        let cutoff = nth_of_two(&finished, &few, rank);
        let prune = worse(direction, value, cutoff);
        Some(Verdict {
            prune,
            reason: format!(
                "rung {k} (step {rung_step}): value {} is {} the best {keep} of {len} trials there (cutoff {})",
                show(value),
                if prune { "not in" } else { "in" },
                show(cutoff)
            ),
        })
    }
}

/// The `n`-th smallest (from 0, by `f64::total_cmp`) of two sorted lists taken
/// together, in O(`few.len()`) steps: `many` may hold every trial of a study.
fn nth_of_two(many: &[f64], few: &[f64], n: usize) -> f64 {
    let below = |a: f64, b: f64| a.total_cmp(&b).is_le();
    // Take j of the first n + 1 values from `few` and the rest from `many`; the
    // split is right when neither list's next value comes before the other's last.
    for j in 0..=few.len().min(n + 1) {
        let i = n + 1 - j;
        if i > many.len() {
            continue;
        }
        let few_fits = j == 0 || i == many.len() || below(few[j - 1], many[i]);
        let many_fits = i == 0 || j == few.len() || below(many[i - 1], few[j]);
        if few_fits && many_fits {
            return match (i, j) {
                (0, _) => few[j - 1],
                (_, 0) => many[i - 1],
                _ if below(few[j - 1], many[i - 1]) => many[i - 1],
                _ => few[j - 1],
            };
        }
    }
    f64::NAN
}

#[cfg(test)]
mod tests;
