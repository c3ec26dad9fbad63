//! Parameter importance by PED-ANOVA: which parameters the best trials agree on.
//!
//! PED-ANOVA (Watanabe et al. 2023, "PED-ANOVA: Efficiently Quantifying
//! Hyperparameter Importance in Arbitrary Subspaces") asks, for each parameter
//! separately, how differently its values are spread among the best trials (the
//! *local* set) than among all trials (the *global* set). A parameter whose best
//! trials all sit in one corner of its range mattered for getting there; one whose
//! best trials are spread like everyone else's did not. The spreads are compared with
//! the Pearson divergence of the two densities on a grid `g`:
//!
//! ```text
//! D = sum_g p_global(g) * (p_local(g) / p_global(g) - 1)^2
//! ```
//!
//! and the scores are divided by their sum, so they read as shares. Unlike fANOVA
//! this needs no random forest: one pass over the trials, then a few thousand kernel
//! evaluations per parameter, so a 10,000-trial study takes milliseconds.
//!
//! [`ped_anova`] computes what Optuna 5.0's `PedAnovaImportanceEvaluator` computes
//! with its defaults, followed by `get_param_importances`' normalization:
//! - Trials: only `Complete` ones with a finite value; every other trial is ignored.
//!   When maximizing, higher values are better.
//! - The local set is the best [`TARGET_QUANTILE`] of them: the best `ceil(0.1 * n)`,
//!   but at least [`MIN_TOP_TRIALS`] (Optuna has no minimum), plus any trial tied with
//!   the last of those. The global set is every trial (region quantile 1.0).
//! - Conditional parameters (Optuna's "regimes", from Conditional PED-ANOVA, KDD 2026):
//!   a parameter's trials are split by the distribution they declare for it, and the
//!   trials without it are left out. Each regime with at least [`MIN_TOP_TRIALS`]
//!   trials, more than one possible value and some local trials adds
//!   `alpha^2 / beta * D`, where `D` compares the regime's local trials with all its
//!   trials, `alpha` is the regime's share of the local set and `beta` its share of
//!   the global set. A parameter present in every trial has one regime, with
//!   `alpha = beta = 1`. (Optuna also multiplies every score by
//!   `(n_local / n_global)^2`; the normalization cancels it, so it is left out.)
//! - Numeric parameters are binned to the nearest of [`N_GRID_POINTS`] evenly spaced
//!   points across the distribution's range (ties to the lower point), in log space
//!   for `log` parameters; ints and stepped floats with fewer values use one point per
//!   value, and log ints `ceil(log2(high - low + 1)) + 1` points. Each set's density is
//!   a Parzen estimator over the grid indices: one Gaussian kernel per occupied point,
//!   weighted by its count, with Scott's-rule bandwidth
//!   `1.059 * min(IQR / 1.34, std) * n^(-1/5)` in grid steps (at least `0.5 / 1.64`),
//!   plus a prior kernel of weight 1 centred on the grid with a standard deviation of
//!   the grid's length. Every kernel is truncated to the grid and integrated over each
//!   point's cell, so the densities are probability masses.
//! - Categorical parameters use the same mixture with one kernel per observed choice:
//!   the kernel puts `1 + 1 / k` on its choice and `1 / k` on every other (normalized;
//!   `k` is the number of observed choices plus 1), and the prior kernel is uniform.
//!   These are smoothed frequencies.
//! - Both masses get `1e-12` added before the divergence, as in Optuna.
//! - Parameters whose every distribution has a single possible value are left out.
//!   When every score is 0 (fewer than 3 trials, or the local set is every trial),
//!   the zeros are returned as they are rather than as equal shares, as Optuna would:
//!   there is no evidence either way.
//!
//! The tests check the scores against Optuna 5.0 itself (the script is in
//! `importance/tests.rs`). Start reading at [`ped_anova`]; the densities are
//! `numeric_masses` and `categorical_masses`.

use std::borrow::Borrow;
use std::cmp::Ordering;

use hpo_core::distribution::{Distribution, ParamValue};
use hpo_core::study::Direction;
use hpo_core::trial::{FrozenTrial, TrialState};

#[cfg(test)]
mod tests;

/// The share of the best trials that forms the local set (Optuna's `target_quantile`).
pub const TARGET_QUANTILE: f64 = 0.1;

/// The fewest trials the local set holds, and the fewest a regime needs to count.
pub const MIN_TOP_TRIALS: usize = 2;

/// How many points a continuous parameter's range is discretized into.
pub const N_GRID_POINTS: usize = 50;

/// The weight of the prior kernel, against a weight of 1 per trial (Optuna's).
const PRIOR_WEIGHT: f64 = 1.0;

/// Added to every probability mass before the divergence (Optuna's constant).
const MASS_FLOOR: f64 = 1e-12;

/// The narrowest kernel, in grid steps: 1.64 standard deviations (90%) fit in one cell.
const MIN_BANDWIDTH: f64 = 0.5 / 1.64;

/// One parameter's importance.
#[derive(Debug, Clone, PartialEq)]
pub struct Importance {
    /// The parameter's name.
    pub param: String,
    /// Its share of the summed scores, in `[0, 1]`; the shares sum to 1 unless every
    /// score is 0.
    pub score: f64,
    /// The 5th and 95th percentiles of the share over bootstrap resamples of the
    /// trials ([`with_intervals`]): how much the score would move with other
    /// trials; `None` when not measured.
    pub interval: Option<(f64, f64)>,
}

/// Bootstrap resamples [`with_intervals`] draws.
pub const BOOTSTRAP_ROUNDS: usize = 40;

/// [`ped_anova`] with each score's uncertainty: the study's trials are resampled
/// with replacement [`BOOTSTRAP_ROUNDS`] times (a fixed seed: the same study gives
/// the same intervals), PED-ANOVA scored on each resample, and the 5th and 95th
/// percentiles of each parameter's share kept as its interval.
pub fn with_intervals<T: Borrow<FrozenTrial> + Sync>(
    trials: &[T],
    direction: Direction,
) -> Vec<Importance> {
    use rayon::prelude::*;
    let mut importances = ped_anova(trials, direction);
    if trials.len() < 3 || importances.is_empty() {
        return importances;
    }
    let rounds: Vec<Vec<Importance>> = (0..BOOTSTRAP_ROUNDS as u64)
        .into_par_iter()
        .map(|round| {
            let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ round.wrapping_mul(0xbf58_476d_1ce4_e5b9);
            // References, not copies: a resample of 10,000 trials copies no trial.
            let resample: Vec<&FrozenTrial> = (0..trials.len())
                .map(|_| trials[(splitmix64(&mut state) % trials.len() as u64) as usize].borrow())
                .collect();
            ped_anova(&resample, direction)
        })
        .collect();
    for importance in &mut importances {
        let mut shares: Vec<f64> = rounds
            .iter()
            .map(|scores| {
                scores.iter().find(|s| s.param == importance.param).map_or(0.0, |s| s.score)
            })
            .collect();
        shares.sort_by(f64::total_cmp);
        let at = |q: f64| shares[((shares.len() - 1) as f64 * q).round() as usize];
        importance.interval = Some((at(0.05), at(0.95)));
    }
    importances
}

/// SplitMix64: the next of a seeded stream of well-mixed 64-bit numbers.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The importance of every parameter of `trials` that can take more than one value,
/// most important first (ties by name); the module docs say what is computed.
///
/// Returns an empty list when no trial is Complete with a finite value.
pub fn ped_anova<T: Borrow<FrozenTrial>>(trials: &[T], direction: Direction) -> Vec<Importance> {
    let usable_trials: Vec<(&FrozenTrial, f64)> = trials
        .iter()
        .map(Borrow::borrow)
        .filter_map(|trial: &FrozenTrial| {
            if trial.state != TrialState::Complete {
                return None;
            }
            let value = trial.value.filter(|value| value.is_finite())?;
            let loss = match direction {
                Direction::Minimize => value,
                Direction::Maximize => -value,
            };
            Some((trial, loss))
        })
        .collect();
    let cutoff = top_cutoff(usable_trials.iter().map(|&(_, loss)| loss).collect());
    let n_top = usable_trials.iter().filter(|&&(_, loss)| loss <= cutoff).count();

    // One pass over the trials places every value on the grid of the regime it
    // belongs to, remembering whether the trial is in the local set.
    let names = param_names(&usable_trials);
    let mut regimes_by_param: Vec<Vec<Regime<'_>>> = vec![Vec::new(); names.len()];
    for &(trial, loss) in &usable_trials {
        let is_top = loss <= cutoff;
        let mut slot = 0;
        for (name, value, distribution) in params_with_distributions(trial) {
            // `names` holds every name in order, so this only skips names the trial lacks.
            let Some(offset) = names[slot..].iter().position(|known| *known == name.as_str())
            else {
                continue;
            };
            slot += offset;
            let regime = Regime::find_or_add(&mut regimes_by_param[slot], distribution);
            if let Some(point) = regime.grid.as_ref().and_then(|grid| grid.point_of(value)) {
                regime.placed.push((is_top, point));
            }
        }
    }

    let n_usable = usable_trials.len() as f64;
    let mut importances: Vec<Importance> = names
        .iter()
        .zip(&regimes_by_param)
        .filter(|(_, regimes)| regimes.iter().any(|regime| regime.grid.is_some()))
        .map(|(name, regimes)| {
            let score = regimes
                .iter()
                .map(|regime| regime.weighted_divergence(n_top as f64, n_usable))
                .sum();
            Importance { param: (*name).to_owned(), score, interval: None }
        })
        .collect();

    let total: f64 = importances.iter().map(|importance| importance.score).sum();
    if total > 0.0 {
        for importance in &mut importances {
            importance.score /= total;
        }
    }
    importances.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.param.cmp(&b.param)));
    importances
}

/// The trials that declare one distribution for a parameter, as (in the local set,
/// grid point) pairs.
#[derive(Debug, Clone)]
struct Regime<'a> {
    distribution: &'a Distribution,
    /// `None` when the distribution has a single possible value.
    grid: Option<ParamGrid<'a>>,
    placed: Vec<(bool, usize)>,
}

impl<'a> Regime<'a> {
    /// The regime of `distribution` among `regimes`, added when new. A parameter rarely
    /// has more than one, so a linear search is the fast way.
    fn find_or_add<'r>(
        regimes: &'r mut Vec<Regime<'a>>,
        distribution: &'a Distribution,
    ) -> &'r mut Regime<'a> {
        let found = regimes.iter().position(|regime| {
            std::ptr::eq(regime.distribution, distribution) || regime.distribution == distribution
        });
        let idx = found.unwrap_or_else(|| {
            regimes.push(Regime {
                distribution,
                grid: ParamGrid::of(distribution),
                placed: Vec::new(),
            });
            regimes.len() - 1
        });
        &mut regimes[idx]
    }

    /// `alpha^2 / beta * D` for this regime, 0 when it has a single possible value,
    /// fewer than [`MIN_TOP_TRIALS`] trials or no local trial.
    fn weighted_divergence(&self, n_top: f64, n_usable: f64) -> f64 {
        let Some(grid) = &self.grid else {
            return 0.0;
        };
        if self.placed.len() < MIN_TOP_TRIALS {
            return 0.0;
        }
        let mut counts_local = vec![0u32; grid.n_points()];
        let mut counts_global = vec![0u32; grid.n_points()];
        for &(is_top, point) in &self.placed {
            counts_global[point] += 1;
            if is_top {
                counts_local[point] += 1;
            }
        }
        let n_local: u32 = counts_local.iter().sum();
        if n_local == 0 {
            return 0.0;
        }
        let (masses_local, masses_global) = match grid {
            ParamGrid::Numeric { .. } => {
                (numeric_masses(&counts_local), numeric_masses(&counts_global))
            }
            ParamGrid::Categorical { .. } => {
                (categorical_masses(&counts_local), categorical_masses(&counts_global))
            }
        };
        let alpha = f64::from(n_local) / n_top;
        let beta = self.placed.len() as f64 / n_usable;
        alpha * alpha / beta * pearson_divergence(&masses_local, &masses_global)
    }
}

/// The loss at or below which a trial is in the local set: the `k`-th lowest, where
/// `k` is `ceil(TARGET_QUANTILE * n)` but at least `MIN_TOP_TRIALS` (at most `n`).
/// `-inf` when there are no losses.
fn top_cutoff(mut losses: Vec<f64>) -> f64 {
    if losses.is_empty() {
        return f64::NEG_INFINITY;
    }
    // The small subtraction keeps 0.1 * 70 = 7.000000000000001 from rounding up to 8.
    let n_top = (TARGET_QUANTILE * losses.len() as f64 - 1e-9).ceil() as usize;
    let n_top = n_top.max(MIN_TOP_TRIALS).min(losses.len());
    let (_, cutoff, _) = losses.select_nth_unstable_by(n_top - 1, f64::total_cmp);
    *cutoff
}

/// Every parameter name the usable trials declare a distribution for, sorted.
fn param_names<'a>(usable_trials: &[(&'a FrozenTrial, f64)]) -> Vec<&'a str> {
    let mut known: Vec<&'a str> = Vec::new();
    let mut unseen: Vec<&'a str> = Vec::new();
    for &(trial, _) in usable_trials {
        // Both sequences are sorted, so walk them together rather than searching: a
        // study's trials mostly share their names, and comparing strings is the cost.
        let mut slot = 0;
        for name in trial.distributions.keys() {
            loop {
                match known.get(slot).map(|known_name| (*known_name).cmp(name.as_str())) {
                    Some(Ordering::Less) => slot += 1,
                    Some(Ordering::Equal) => {
                        slot += 1;
                        break;
                    }
                    Some(Ordering::Greater) | None => {
                        unseen.push(name);
                        break;
                    }
                }
            }
        }
        if !unseen.is_empty() {
            known.append(&mut unseen);
            known.sort_unstable();
        }
    }
    known
}

/// The trial's parameters that have both a value and a distribution, in name order.
fn params_with_distributions(
    trial: &FrozenTrial,
) -> impl Iterator<Item = (&String, &ParamValue, &Distribution)> {
    // Both maps are sorted by name and normally hold the same names: a merge.
    let mut values = trial.params.iter().peekable();
    trial.distributions.iter().filter_map(move |(name, distribution)| {
        while let Some(&(value_name, value)) = values.peek() {
            match value_name.cmp(name) {
                Ordering::Less => {
                    values.next();
                }
                Ordering::Equal => return Some((name, value, distribution)),
                Ordering::Greater => return None,
            }
        }
        None
    })
}

/// Where a parameter's values fall: a point of an even grid, or a choice.
#[derive(Debug, Clone)]
enum ParamGrid<'a> {
    /// `n_points` points `first + k * spacing`, of the value or of its logarithm.
    Numeric { first: f64, spacing: f64, n_points: usize, log: bool },
    /// The choices of a categorical distribution, by index.
    Categorical { distribution: &'a Distribution, n_choices: usize },
}

impl<'a> ParamGrid<'a> {
    /// The grid of `distribution`, or `None` when it has a single possible value.
    fn of(distribution: &'a Distribution) -> Option<ParamGrid<'a>> {
        let grid = match *distribution {
            Distribution::Float { low, high, log, step } => {
                let n_points = match step {
                    Some(step) if !log => n_points_of_steps(high - low, step),
                    _ => N_GRID_POINTS,
                };
                ParamGrid::even(low, high, n_points, log)
            }
            Distribution::Int { low, high, log: true, .. } => {
                let n_values = (high - low + 1) as f64;
                let n_points = n_values.log2().ceil() as usize + 1;
                ParamGrid::even(low as f64, high as f64, n_points.min(N_GRID_POINTS), true)
            }
            Distribution::Int { low, high, log: false, step } => {
                let n_points = n_points_of_steps((high - low) as f64, step as f64);
                ParamGrid::even(low as f64, high as f64, n_points, false)
            }
            Distribution::Categorical { ref choices } => {
                ParamGrid::Categorical { distribution, n_choices: choices.len() }
            }
        };
        let n_points = match grid {
            ParamGrid::Numeric { first, spacing, n_points, .. } => {
                if !(first.is_finite() && spacing.is_finite() && spacing > 0.0) {
                    return None;
                }
                n_points
            }
            ParamGrid::Categorical { n_choices, .. } => n_choices,
        };
        (n_points > 1).then_some(grid)
    }

    /// `n_points` evenly spaced points from `low` to `high` (their logarithms if `log`).
    fn even(low: f64, high: f64, n_points: usize, log: bool) -> ParamGrid<'a> {
        let (first, last) = if log { (low.ln(), high.ln()) } else { (low, high) };
        let spacing = (last - first) / n_points.saturating_sub(1) as f64;
        ParamGrid::Numeric { first, spacing, n_points, log }
    }

    fn n_points(&self) -> usize {
        match *self {
            ParamGrid::Numeric { n_points, .. } => n_points,
            ParamGrid::Categorical { n_choices, .. } => n_choices,
        }
    }

    /// The grid point nearest to `value` (ties to the lower one; values outside the
    /// range go to the ends), or `None` for a value this grid cannot place (a string
    /// for a float, NaN, a choice the distribution does not have).
    fn point_of(&self, value: &ParamValue) -> Option<usize> {
        match *self {
            ParamGrid::Numeric { first, spacing, n_points, log } => {
                let mut it = value.as_f64()?;
                if log {
                    it = it.ln();
                }
                if it.is_nan() {
                    return None;
                }
                let index = ((it - first) / spacing - 0.5).ceil().clamp(0.0, (n_points - 1) as f64);
                Some(index as usize)
            }
            ParamGrid::Categorical { distribution, n_choices } => {
                let index = distribution.to_internal(value)? as usize;
                (index < n_choices).then_some(index)
            }
        }
    }
}

/// One point per value for `span / step + 1` values, at most [`N_GRID_POINTS`].
fn n_points_of_steps(span: f64, step: f64) -> usize {
    let n_values = (span / step).round() + 1.0;
    if n_values.is_finite() && n_values >= 1.0 {
        (n_values as usize).min(N_GRID_POINTS)
    } else {
        N_GRID_POINTS
    }
}

/// The probability mass at each grid point of the Parzen estimator of a numeric
/// parameter: one kernel per occupied point, weighted by its count, plus the prior
/// kernel. Kernels are Gaussians over grid indices, truncated to the grid and
/// integrated over the cells `[g - 0.5, g + 0.5]`, so each one's masses sum to 1.
fn numeric_masses(counts: &[u32]) -> Vec<f64> {
    let n_points = counts.len();
    let n_trials: f64 = counts.iter().map(|&count| f64::from(count)).sum();
    let total_weight = n_trials + PRIOR_WEIGHT;
    let bandwidth = scott_bandwidth(counts);

    // A data kernel's mass at a point depends only on the offset between them, so the
    // 2n - 1 possible offsets are computed once; `cell_masses[n - 1 + d]` is offset d.
    let cell_masses: Vec<f64> = (0..2 * n_points - 1)
        .map(|idx| {
            let offset = idx as f64 - (n_points - 1) as f64;
            normal_mass_between((offset - 0.5) / bandwidth, (offset + 0.5) / bandwidth)
        })
        .collect();

    let mut masses = vec![0.0; n_points];
    for (center, &count) in counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        // The offsets from this center to the points 0..n.
        let kernel = &cell_masses[n_points - 1 - center..2 * n_points - 1 - center];
        add_kernel(&mut masses, kernel.iter().copied(), f64::from(count) / total_weight);
    }

    // The prior: centred on the grid, as wide as the grid is long.
    let prior_center = (n_points - 1) as f64 / 2.0;
    let prior_width = n_points as f64;
    let prior = (0..n_points).map(|point| {
        let offset = point as f64 - prior_center;
        normal_mass_between((offset - 0.5) / prior_width, (offset + 0.5) / prior_width)
    });
    add_kernel(&mut masses, prior, PRIOR_WEIGHT / total_weight);
    masses
}

/// Adds `weight` times the kernel, normalized to sum 1 over the grid, to `masses`.
fn add_kernel(masses: &mut [f64], kernel: impl Iterator<Item = f64> + Clone, weight: f64) {
    let kernel_total: f64 = kernel.clone().sum();
    for (mass, cell_mass) in masses.iter_mut().zip(kernel) {
        *mass += weight * cell_mass / kernel_total;
    }
}

/// The probability mass of each choice of a categorical parameter: one smoothed
/// kernel per observed choice, weighted by its count, plus a uniform prior kernel.
fn categorical_masses(counts: &[u32]) -> Vec<f64> {
    let n_choices = counts.len() as f64;
    let n_trials: f64 = counts.iter().map(|&count| f64::from(count)).sum();
    let total_weight = n_trials + PRIOR_WEIGHT;
    let n_kernels = counts.iter().filter(|&&count| count > 0).count() as f64 + 1.0;
    // An observed choice's kernel: PRIOR_WEIGHT / n_kernels everywhere, plus 1 on it.
    let spread = PRIOR_WEIGHT / n_kernels;
    let kernel_total = 1.0 + spread * n_choices;
    // What every choice gets from every data kernel and from the prior.
    let base =
        n_trials / total_weight * spread / kernel_total + PRIOR_WEIGHT / total_weight / n_choices;
    counts.iter().map(|&count| base + f64::from(count) / total_weight / kernel_total).collect()
}

/// Scott's rule on the grid indices, as Optuna's PED-ANOVA estimator computes it:
/// `1.059 * min(IQR / 1.34, sample std) * n^(-1/5)`, at least [`MIN_BANDWIDTH`].
fn scott_bandwidth(counts: &[u32]) -> f64 {
    let n_trials: f64 = counts.iter().map(|&count| f64::from(count)).sum();
    let mean: f64 =
        counts.iter().enumerate().map(|(idx, &count)| idx as f64 * f64::from(count)).sum::<f64>()
            / n_trials;
    let sum_of_squares: f64 = counts
        .iter()
        .enumerate()
        .map(|(idx, &count)| f64::from(count) * (idx as f64 - mean).powi(2))
        .sum();
    let std = (sum_of_squares / (n_trials - 1.0).max(1.0)).sqrt();

    // Quartiles of the binned sample: the first point whose running count reaches
    // floor(n / 4), and the first whose running count exceeds floor(3n / 4).
    let lower_target = (n_trials / 4.0).floor();
    let upper_target = (n_trials * 3.0 / 4.0).floor();
    let mut lower_quartile = None;
    let mut upper_quartile = None;
    let mut last_occupied = 0;
    let mut running = 0.0;
    for (idx, &count) in counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        running += f64::from(count);
        last_occupied = idx;
        if lower_quartile.is_none() && running >= lower_target {
            lower_quartile = Some(idx);
        }
        if upper_quartile.is_none() && running > upper_target {
            upper_quartile = Some(idx);
        }
    }
    let lower_quartile = lower_quartile.unwrap_or(0);
    let upper_quartile = upper_quartile.unwrap_or(last_occupied);
    let iqr = upper_quartile.saturating_sub(lower_quartile) as f64;

    let bandwidth = 1.059 * (iqr / 1.34).min(std) * n_trials.powf(-0.2);
    bandwidth.max(MIN_BANDWIDTH)
}

/// `Phi(upper) - Phi(lower)` for the standard normal, with `lower <= upper`, computed
/// from whichever tail keeps precision.
fn normal_mass_between(lower: f64, upper: f64) -> f64 {
    let tail_above = |z: f64| 0.5 * libm::erfc(z / std::f64::consts::SQRT_2);
    if lower >= 0.0 {
        tail_above(lower) - tail_above(upper)
    } else if upper <= 0.0 {
        tail_above(-upper) - tail_above(-lower)
    } else {
        1.0 - tail_above(upper) - tail_above(-lower)
    }
}

/// `sum_g p_global(g) * (p_local(g) / p_global(g) - 1)^2`, with [`MASS_FLOOR`] added
/// to both masses.
fn pearson_divergence(masses_local: &[f64], masses_global: &[f64]) -> f64 {
    masses_local
        .iter()
        .zip(masses_global)
        .map(|(&local, &global)| {
            let local = local + MASS_FLOOR;
            let global = global + MASS_FLOOR;
            global * (local / global - 1.0).powi(2)
        })
        .sum()
}
