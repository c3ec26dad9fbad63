//! Gaussian-process Bayesian optimization, after Optuna's `GPSampler` (4.x).
//!
//! Each call models the objective with a Gaussian process fitted to the study's
//! complete trials and proposes the point that maximizes the log expected
//! improvement over the best value seen. The steps:
//!
//! 1. **Observations.** Complete trials with a finite value that give every modelled
//!    parameter an in-domain value. With fewer than
//!    [`GpConfig::startup_trials`] of them every parameter is drawn at random
//!    ([`random::sample_one`]).
//! 2. **Inputs** are mapped to `[0, 1]` per parameter: floats linearly, `log`
//!    floats in log space; ints and stepped floats over
//!    `[low - step / 2, high + step / 2]`, so that every grid value owns an equal
//!    slice of the interval (log ints: `[ln(low - 0.5), ln(high + 0.5)]`, the range
//!    random search draws from); a categorical becomes one-hot, one input per choice.
//!    **Outputs** are negated when the study maximizes (the GP always minimizes),
//!    then warped when they are heavy-tailed (see [`warp_outputs`]: `ln(y - min +
//!    (median - min))` when the Box-Cox criterion prefers it to the identity, as on
//!    rosenbrock, whose values span six orders of magnitude), then standardized to
//!    mean 0 and standard deviation 1. Optuna does not warp; this is where hpo's GP
//!    departs from it (docs/benchmarks.md: rosenbrock-5d regret 156 -> about 5).
//! 3. **Kernel.** Matérn-5/2 with automatic relevance determination (one inverse
//!    squared length scale per input) times a signal variance, plus a noise
//!    variance (at least 1e-6) on the diagonal. Its log-parameters maximize the log
//!    marginal likelihood plus Optuna's log priors (`-(0.1/λ + 0.1 λ)` per inverse
//!    squared length scale λ, Gamma(2, 1) on the signal variance, Gamma(1.1, 30) on
//!    the noise), with analytic gradients and argmin's L-BFGS, from
//!    [`GpConfig::restarts`] starting points (unit length scales and signal
//!    variance with noise 0.01, then random ones); the best fit wins. Beyond [`FIT_MAX_POINTS`] observations the fit uses a
//!    subset (the best half plus a random half), which keeps it within a few tens
//!    of milliseconds; the posterior itself always uses every observation.
//! 4. **Running trials** (kriging believer): each running trial that already has
//!    its parameters joins the data with the posterior mean at its point as value,
//!    so the variance there collapses and concurrent workers propose elsewhere.
//! 5. **Acquisition.** Log expected improvement, computed stably far in the tail
//!    (Ament et al., 2023, "Unexpected improvements to expected improvement"). It is
//!    evaluated on [`GpConfig::candidates`] quasi-random points (a randomly shifted
//!    R_d low-discrepancy sequence) plus perturbations of the best observations,
//!    all snapped to the parameters' grids; the best few are refined by L-BFGS over
//!    the numeric inputs (categoricals held fixed, bounds by clamping plus a
//!    quadratic penalty), snapped again, then improved by a coordinate search over
//!    categorical choices and neighbouring grid values.
//!
//! Decoding rounds ints and stepped floats to their grid, takes the largest input
//! of a categorical's one-hot block, and clamps to the bounds.
//!
//! **Conditional parameters** are modelled by imputation (Lévesque et al., 2017,
//! "Bayesian optimization for conditional hyperparameter spaces"): every parameter
//! has its inputs, and where a trial's parameter is inactive (its `when` condition
//! does not hold) its numeric input holds [`INACTIVE`], outside `[0, 1]`, and its
//! one-hot block holds zeros. Two trials of the same branch compare on that branch's
//! parameters, and a trial of another branch is far from them in those inputs, so
//! the kernel learns each branch from its own trials while the shared parameters
//! learn from all. Candidates are made active or inactive by their conditions before
//! the acquisition sees them, and L-BFGS moves only the active numeric inputs.
//! (Optuna's GPSampler draws parameters outside the intersection search space at
//! random instead.)
//!
//! Like every sampler here it is a pure function of (space, history, RNG); the fit
//! restarts from scratch each call, since there is no state to warm-start from.
//! A call costs O(n³) in the n complete and running trials (one Cholesky
//! factorization and inverse) plus O(n² · candidates) for the acquisition: tens of
//! milliseconds at a few hundred trials, under half a second at a thousand.

use std::cell::RefCell;
use std::f64::consts::{PI, SQRT_2};
use std::rc::Rc;

use argmin::core::{CostFunction, Error as ArgminError, Executor, Gradient};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use nalgebra::DMatrix;
use rand::Rng;
use rand::rngs::StdRng;

use crate::distribution::{Distribution, ParamValue, round_to_step};
use crate::sampler::{Sampler, random};
use crate::space::{ParamDef, Params, SearchSpace};
use crate::study::Direction;
use crate::trial::{FrozenTrial, TrialState};

/// Settings of the GP sampler (study file: `[sampler] kind = "gp"`, plus these keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpConfig {
    /// Complete trials drawn at random before the GP takes over (default 10).
    pub startup_trials: usize,
    /// Quasi-random points on which the acquisition function is evaluated before
    /// the best few are refined by L-BFGS (default 2048).
    pub candidates: usize,
    /// L-BFGS starting points for the kernel fit: a fixed default, then random
    /// ones; the best fit wins (default 4).
    pub restarts: usize,
}

impl Default for GpConfig {
    fn default() -> GpConfig {
        GpConfig { startup_trials: 10, candidates: 2048, restarts: 4 }
    }
}

/// Gaussian-process Bayesian optimization (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct GpSampler {
    /// The sampler's settings.
    pub config: GpConfig,
    /// Whether the study minimizes or maximizes its metric.
    pub direction: Direction,
}

/// Above this many complete trials the kernel's hyperparameters are fitted on a
/// subset of this size (the best half and a random half of the rest).
pub const FIT_MAX_POINTS: usize = 64;

/// The smallest noise variance of the (standardized) observations, as in Optuna.
const MIN_NOISE: f64 = 1e-6;
/// L-BFGS iterations and function evaluations per kernel-fit restart.
const FIT_ITERS: u64 = 60;
const FIT_EVALS: usize = 120;
/// L-BFGS stops when the gradient's norm falls below this (Optuna: 1e-2).
const FIT_TOL: f64 = 1e-2;
/// Acquisition candidates refined by L-BFGS, and their iteration/evaluation caps.
const REFINE_STARTS: usize = 5;
const REFINE_ITERS: u64 = 25;
const REFINE_EVALS: usize = 40;
const REFINE_TOL: f64 = 1e-4;
/// Best observations whose neighbourhoods seed extra candidates.
const LOCAL_CENTERS: usize = 5;
/// Candidates are evaluated in chunks of this many (bounds the kernel matrix size).
const CHUNK: usize = 256;
/// Added to the posterior variance before taking its square root.
const VAR_EPS: f64 = 1e-12;
/// The weight of the quadratic penalty on leaving the box during L-BFGS.
const BOX_PENALTY: f64 = 1e3;

impl Sampler for GpSampler {
    fn sample(&self, space: &SearchSpace, history: &[FrozenTrial], rng: &mut StdRng) -> Params {
        let modelled: Vec<&ParamDef> = space.params.iter().collect();
        let encoding = Encoding::new(&modelled);
        let sign = match self.direction {
            Direction::Minimize => 1.0,
            Direction::Maximize => -1.0,
        };
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        let mut running = Vec::new();
        for trial in history {
            match trial.state {
                TrialState::Complete => {
                    let Some(value) = trial.value.filter(|v| v.is_finite()) else { continue };
                    if let Some(x) = encoding.encode(&trial.params) {
                        xs.extend(x);
                        ys.push(sign * value);
                    }
                }
                TrialState::Running => {
                    if let Some(x) = encoding.encode(&trial.params) {
                        running.extend(x);
                    }
                }
                _ => {}
            }
        }
        let mut chosen = Params::new();
        if !modelled.is_empty() && ys.len() >= self.config.startup_trials.max(1) {
            let data = Data { x: xs, y: ys, running };
            if let Some(point) = propose(&self.config, &encoding, data, rng) {
                chosen = encoding.decode(&point);
            }
        }
        space.assign(|param| match chosen.remove(&param.name) {
            Some(value) => value,
            None => random::sample_one(&param.distribution, rng),
        })
    }
}

// ---------------------------------------------------------------------------
// Encoding: parameter values <-> points of [0, 1]^d.

/// The numeric input of an inactive parameter (its condition does not hold): off
/// the `[0, 1]` of active values, so every inactive value is equal and apart from
/// every active one.
const INACTIVE: f64 = -0.5;

/// How one modelled parameter maps to its input dimension(s).
#[derive(Debug, Clone)]
struct Coord {
    distribution: Distribution,
    /// The first input dimension of this parameter.
    dim: usize,
    /// The interval (in log space for `log`) that maps onto [0, 1]; numeric only.
    lo: f64,
    hi: f64,
    log: bool,
}

impl Coord {
    fn width(&self) -> usize {
        match &self.distribution {
            Distribution::Categorical { choices } => choices.len(),
            _ => 1,
        }
    }

    fn is_numeric(&self) -> bool {
        !matches!(self.distribution, Distribution::Categorical { .. })
    }

    /// Whether the numeric values form a grid (ints, stepped floats).
    fn is_discrete(&self) -> bool {
        matches!(
            self.distribution,
            Distribution::Int { .. } | Distribution::Float { step: Some(_), .. }
        )
    }

    fn value_to_unit(&self, value: f64) -> f64 {
        let t = if self.log { value.ln() } else { value };
        if self.hi > self.lo { ((t - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0) } else { 0.5 }
    }

    fn unit_to_value(&self, u: f64) -> f64 {
        let t = self.lo + u.clamp(0.0, 1.0) * (self.hi - self.lo);
        if self.log { t.exp() } else { t }
    }

    /// The parameter value at the point `x` (rounded, clamped, argmax for choices).
    fn decode(&self, x: &[f64]) -> ParamValue {
        let u = x[self.dim];
        match self.distribution {
            Distribution::Float { low, high, step: Some(step), .. } => {
                let n = ((high - low) / step + 1e-9).floor();
                let k = ((self.unit_to_value(u) - low) / step).round().clamp(0.0, n);
                ParamValue::Float(round_to_step(low + k * step, step).clamp(low, high))
            }
            Distribution::Float { low, high, step: None, .. } => {
                ParamValue::Float(self.unit_to_value(u).clamp(low, high))
            }
            Distribution::Int { low, high, log: true, .. } => {
                ParamValue::Int((self.unit_to_value(u).round() as i64).clamp(low, high))
            }
            Distribution::Int { low, high, step, .. } => {
                let n = ((high - low) / step) as f64;
                let k = ((self.unit_to_value(u) - low as f64) / step as f64).round().clamp(0.0, n);
                ParamValue::Int((low + k as i64 * step).clamp(low, high))
            }
            Distribution::Categorical { ref choices } => {
                let block = &x[self.dim..self.dim + choices.len()];
                let mut best = 0;
                for (idx, &v) in block.iter().enumerate() {
                    if v > block[best] {
                        best = idx;
                    }
                }
                choices[best].clone()
            }
        }
    }

    /// Marks the parameter inactive in `x`.
    fn deactivate(&self, x: &mut [f64]) {
        if self.is_numeric() {
            x[self.dim] = INACTIVE;
        } else {
            x[self.dim..self.dim + self.width()].fill(0.0);
        }
    }

    /// Whether `x` marks the parameter inactive.
    fn is_inactive(&self, x: &[f64]) -> bool {
        if self.is_numeric() {
            x[self.dim] < 0.0
        } else {
            x[self.dim..self.dim + self.width()].iter().all(|v| *v == 0.0)
        }
    }

    /// Gives a parameter that `x` marks inactive the middle of its range (its first
    /// choice), so that it decodes to a value.
    fn activate(&self, x: &mut [f64]) {
        if self.is_numeric() {
            x[self.dim] = 0.5;
        } else {
            x[self.dim] = 1.0;
        }
    }

    /// Writes the encoding of `value` into `x`; `None` when it is outside the domain.
    fn encode(&self, value: &ParamValue, x: &mut [f64]) -> Option<()> {
        let internal = self.distribution.to_internal(value)?;
        match self.distribution {
            Distribution::Categorical { ref choices } => {
                let block = &mut x[self.dim..self.dim + choices.len()];
                block.fill(0.0);
                block[internal as usize] = 1.0;
            }
            _ => x[self.dim] = self.value_to_unit(internal),
        }
        Some(())
    }
}

/// The encoding of the parameters, in space order (a condition's parent comes
/// before the parameters it governs).
#[derive(Debug, Clone)]
struct Encoding {
    coords: Vec<Coord>,
    params: Vec<ParamDef>,
    /// The number of input dimensions.
    dims: usize,
}

impl Encoding {
    fn new(params: &[&ParamDef]) -> Encoding {
        let mut coords = Vec::new();
        let mut dim = 0;
        for param in params {
            let (lo, hi, log) = match param.distribution {
                Distribution::Float { low, high, step: Some(step), .. } => {
                    (low - 0.5 * step, high + 0.5 * step, false)
                }
                Distribution::Float { low, high, log: true, step: None } => {
                    (low.ln(), high.ln(), true)
                }
                Distribution::Float { low, high, log: false, step: None } => (low, high, false),
                Distribution::Int { low, high, log: true, .. } => {
                    ((low as f64 - 0.5).max(0.5).ln(), (high as f64 + 0.5).ln(), true)
                }
                Distribution::Int { low, high, step, .. } => {
                    let half = 0.5 * step as f64;
                    (low as f64 - half, high as f64 + half, false)
                }
                Distribution::Categorical { .. } => (0.0, 1.0, false),
            };
            let coord = Coord { distribution: param.distribution.clone(), dim, lo, hi, log };
            dim += coord.width();
            coords.push(coord);
        }
        Encoding { coords, params: params.iter().map(|p| (*p).clone()).collect(), dims: dim }
    }

    /// A trial's point, or `None` when it lacks an unconditional parameter or has
    /// one outside its domain. A conditional parameter it lacks is inactive.
    fn encode(&self, params: &Params) -> Option<Vec<f64>> {
        let mut x = vec![0.0; self.dims];
        for (coord, param) in self.coords.iter().zip(&self.params) {
            match params.get(&param.name) {
                Some(value) => coord.encode(value, &mut x)?,
                None if param.condition.is_some() => coord.deactivate(&mut x),
                None => return None,
            }
        }
        Some(x)
    }

    /// The values of the parameters active at `x`, by their conditions.
    fn decode(&self, x: &[f64]) -> Params {
        let mut chosen = Params::new();
        for (coord, param) in self.coords.iter().zip(&self.params) {
            if param.is_active(&chosen) {
                chosen.insert(param.name.clone(), coord.decode(x));
            }
        }
        chosen
    }

    /// Moves `x` onto the nearest point that decodes and re-encodes to itself: each
    /// parameter active or inactive as its condition says, and every active value
    /// on its grid.
    fn snap(&self, x: &mut [f64]) {
        let mut chosen = Params::new();
        for (coord, param) in self.coords.iter().zip(&self.params) {
            if param.is_active(&chosen) {
                if coord.is_inactive(x) {
                    coord.activate(x);
                }
                let value = coord.decode(x);
                // The decoded value is always in its domain, so this cannot fail.
                let _ = coord.encode(&value, x);
                chosen.insert(param.name.clone(), value);
            } else {
                coord.deactivate(x);
            }
        }
    }

    /// The input dimensions of the numeric parameters (those L-BFGS moves) that are
    /// active at `x`, or of every numeric parameter without `x`.
    fn numeric_dims(&self, x: Option<&[f64]>) -> Vec<usize> {
        self.coords
            .iter()
            .filter(|c| c.is_numeric() && x.is_none_or(|x| !c.is_inactive(x)))
            .map(|c| c.dim)
            .collect()
    }
}

// ---------------------------------------------------------------------------
// The kernel and the GP posterior.

/// Matérn-5/2 of the squared scaled distance `q`, at unit signal variance, and
/// its derivative with respect to `q`.
fn matern52(q: f64) -> (f64, f64) {
    let r = (5.0 * q).sqrt();
    let e = exp_neg(-r);
    ((1.0 + r + r * r / 3.0) * e, -5.0 / 6.0 * (1.0 + r) * e)
}

/// Matérn-5/2 of `q` alone, at unit signal variance.
#[inline]
fn matern52_value(q: f64) -> f64 {
    let r = (5.0 * q).sqrt();
    (1.0 + r + r * r / 3.0) * exp_neg(-r)
}

/// `e^x` for `x <= 0` (arguments below -708 count as -708), within a few ulps.
/// Branch-free, so that loops of kernel evaluations vectorize; libm's `exp` is a
/// call per element and took a fifth of a suggestion's time.
#[inline]
fn exp_neg(x: f64) -> f64 {
    // x = n ln2 + r with |r| <= ln2 / 2; e^r by its Taylor series to r^12 / 12!
    // (truncation below 2e-16 relatively); 2^n built from the bits of x log2(e)
    // + 1.5 * 2^52, whose low mantissa bits hold the rounded n.
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const SHIFTER: f64 = 6_755_399_441_055_744.0;
    // Unrolled, without iterator or wrapping calls: quick unoptimized (tests) too.
    let x = x.clamp(-708.0, 0.0);
    let t = x * std::f64::consts::LOG2_E + SHIFTER;
    let n = t - SHIFTER;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut poly = 1.0 / 479_001_600.0;
    poly = poly * r + 1.0 / 39_916_800.0;
    poly = poly * r + 1.0 / 3_628_800.0;
    poly = poly * r + 1.0 / 362_880.0;
    poly = poly * r + 1.0 / 40_320.0;
    poly = poly * r + 1.0 / 5_040.0;
    poly = poly * r + 1.0 / 720.0;
    poly = poly * r + 1.0 / 120.0;
    poly = poly * r + 1.0 / 24.0;
    poly = poly * r + 1.0 / 6.0;
    poly = poly * r + 0.5;
    poly = poly * r + 1.0;
    poly = poly * r + 1.0;
    // t's bits are those of 1.5 * 2^52 + n: adding the bias and shifting leaves
    // exactly n + 1023 in the exponent field (n is in [-1022, 0]).
    poly * f64::from_bits((t.to_bits() + 1023) << 52)
}

/// Fitted kernel hyperparameters.
#[derive(Debug, Clone, PartialEq)]
struct Kernel {
    /// Inverse squared length scale per input dimension.
    inv_sq_lengthscales: Vec<f64>,
    /// Signal variance.
    scale: f64,
    /// Noise variance (of standardized values).
    noise: f64,
}

impl Kernel {
    fn default_for(dims: usize) -> Kernel {
        Kernel { inv_sq_lengthscales: vec![1.0; dims], scale: 1.0, noise: 1e-2 }
    }

    /// The unconstrained parameters L-BFGS works on.
    fn to_raw(&self) -> Vec<f64> {
        let mut raw: Vec<f64> = self.inv_sq_lengthscales.iter().map(|v| v.ln()).collect();
        raw.push(self.scale.ln());
        raw.push((self.noise - MIN_NOISE).max(1e-12).ln());
        raw
    }

    fn from_raw(raw: &[f64]) -> Kernel {
        let dims = raw.len() - 2;
        Kernel {
            inv_sq_lengthscales: raw[..dims].iter().map(|v| v.exp()).collect(),
            scale: raw[dims].exp(),
            noise: raw[dims + 1].exp() + MIN_NOISE,
        }
    }

    /// Box bounds on the raw parameters (they keep the exponentials finite).
    fn raw_bounds(dims: usize) -> (Vec<f64>, Vec<f64>) {
        let mut lo = vec![(1e-4f64).ln(); dims];
        let mut hi = vec![(1e4f64).ln(); dims];
        lo.extend([(1e-3f64).ln(), (1e-20f64).ln()]);
        hi.extend([(1e3f64).ln(), (10.0f64).ln()]);
        (lo, hi)
    }

    fn sq_dist(&self, a: &[f64], b: &[f64]) -> f64 {
        let mut q = 0.0;
        for i in 0..a.len() {
            let diff = a[i] - b[i];
            q += self.inv_sq_lengthscales[i] * diff * diff;
        }
        q
    }
}

/// The Cholesky factor of `k` (lower triangle; the upper one is garbage), adding
/// growing jitter to the diagonal until it factors. `None` when nothing helps.
fn cholesky(k: DMatrix<f64>) -> Option<DMatrix<f64>> {
    let n = k.nrows();
    let mean_diag = (0..n).map(|i| k[(i, i)]).sum::<f64>() / n.max(1) as f64;
    if !mean_diag.is_finite() {
        return None;
    }
    let mut jitter = 0.0;
    for _ in 0..6 {
        let mut attempt = k.clone();
        for i in 0..n {
            attempt[(i, i)] += jitter;
        }
        if let Some(chol) = attempt.cholesky() {
            return Some(chol.unpack_dirty());
        }
        jitter = if jitter == 0.0 { 1e-9 * mean_diag.max(1e-12) } else { jitter * 100.0 };
    }
    None
}

/// A zero matrix (from a zeroed allocation: `DMatrix::zeros` is slow unoptimized).
fn zeros(rows: usize, cols: usize) -> DMatrix<f64> {
    DMatrix::from_vec(rows, cols, vec![0.0; rows * cols])
}

/// The inverse of a lower-triangular matrix (given in the lower triangle of `l`),
/// lower triangular itself: column j solves `L x = e_j` by forward substitution.
fn lower_inverse(l: &DMatrix<f64>) -> DMatrix<f64> {
    let n = l.nrows();
    let ls = l.as_slice();
    let mut inv = zeros(n, n);
    let out = inv.as_mut_slice();
    for j in 0..n {
        let col = &mut out[j * n..(j + 1) * n];
        col[j] = 1.0;
        for k in j..n {
            let xk = col[k] / ls[k * n + k];
            col[k] = xk;
            axpy(&mut col[k + 1..], -xk, &ls[k * n + k + 1..(k + 1) * n]);
        }
    }
    inv
}

/// The squared norm of each column of `linv * b`, for lower-triangular `linv`:
/// a blocked product that skips the zero upper triangle (about 40% of the work).
fn lower_mul_col_sumsq(linv: &DMatrix<f64>, b: &DMatrix<f64>) -> Vec<f64> {
    const BLOCK: usize = 64;
    let (n, m) = (b.nrows(), b.ncols());
    let mut sums = vec![0.0; m];
    let mut out = zeros(BLOCK.min(n), m);
    for r0 in (0..n).step_by(BLOCK) {
        let rows = BLOCK.min(n - r0);
        let r1 = r0 + rows;
        out.rows_mut(0, rows).gemm(1.0, &linv.view((r0, 0), (rows, r1)), &b.rows(0, r1), 0.0);
        let stride = out.nrows();
        for (sum, col) in sums.iter_mut().zip(out.as_slice().chunks_exact(stride)) {
            *sum += dot(&col[..rows], &col[..rows]);
        }
    }
    sums
}

/// `K^{-1} = L^{-T} L^{-1}` from lower-triangular `linv`, using the zeros.
fn inverse_from_lower_inverse(linv: &DMatrix<f64>) -> DMatrix<f64> {
    let n = linv.nrows();
    let ls = linv.as_slice();
    let mut kinv = zeros(n, n);
    let out = kinv.as_mut_slice();
    for j in 0..n {
        let col_j = &ls[j * n + j..(j + 1) * n];
        for i in 0..=j {
            let v = dot(&ls[i * n + j..(i + 1) * n], col_j);
            out[i + j * n] = v;
            out[j + i * n] = v;
        }
    }
    kinv
}

/// `L^{-1} v` for lower-triangular `linv` (column-major, n × n).
fn lower_mul(linv: &DMatrix<f64>, v: &[f64]) -> Vec<f64> {
    let n = v.len();
    let ls = linv.as_slice();
    let mut out = vec![0.0; n];
    for c in 0..n {
        axpy(&mut out[c..], v[c], &ls[c * n + c..(c + 1) * n]);
    }
    out
}

/// `L^{-T} v` for lower-triangular `linv`.
fn lower_tr_mul(linv: &DMatrix<f64>, v: &[f64]) -> Vec<f64> {
    let n = v.len();
    let ls = linv.as_slice();
    (0..n).map(|c| dot(&ls[c * n + c..(c + 1) * n], &v[c..])).collect()
}

/// `a · b[..a.len()]`.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    // `while` loops and four accumulators: vectorizes in release builds, and avoids
    // the per-element iterator calls that make the debug profile (tests) slow.
    let n = a.len();
    let b = &b[..n];
    let (mut s0, mut s1, mut s2, mut s3) = (0.0, 0.0, 0.0, 0.0);
    let mut i = 0;
    while i + 4 <= n {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
        i += 4;
    }
    while i < n {
        s0 += a[i] * b[i];
        i += 1;
    }
    (s0 + s1) + (s2 + s3)
}

/// `y += a * x`.
fn axpy(y: &mut [f64], a: f64, x: &[f64]) {
    let n = y.len();
    let x = &x[..n];
    let mut i = 0;
    while i < n {
        y[i] += a * x[i];
        i += 1;
    }
}

/// The GP conditioned on data: what the acquisition function needs.
#[derive(Debug, Clone)]
struct Posterior {
    dims: usize,
    /// Training inputs, row-major (n × dims).
    x: Vec<f64>,
    /// The same, dimension-major (dims × n), for loops over the inputs that vectorize.
    xt: Vec<f64>,
    kernel: Kernel,
    /// `K^{-1} y`.
    alpha: Vec<f64>,
    /// `L^{-1}`, where `K = L L^T` (noise included).
    linv: DMatrix<f64>,
}

impl Posterior {
    fn new(x: Vec<f64>, y: &[f64], dims: usize, kernel: Kernel) -> Option<Posterior> {
        let n = y.len();
        let mut k = zeros(n, n);
        let ks = k.as_mut_slice();
        for j in 0..n {
            let xj = &x[j * dims..(j + 1) * dims];
            for i in 0..j {
                let q = kernel.sq_dist(&x[i * dims..(i + 1) * dims], xj);
                let v = kernel.scale * matern52_value(q);
                ks[i + j * n] = v;
                ks[j + i * n] = v;
            }
            ks[j + j * n] = kernel.scale + kernel.noise;
        }
        let l = cholesky(k)?;
        let linv = lower_inverse(&l);
        let alpha = lower_tr_mul(&linv, &lower_mul(&linv, y));
        let mut xt = vec![0.0; n * dims];
        for i in 0..n {
            for t in 0..dims {
                xt[t * n + i] = x[i * dims + t];
            }
        }
        alpha.iter().all(|a| a.is_finite()).then_some(Posterior {
            dims,
            x,
            xt,
            kernel,
            alpha,
            linv,
        })
    }

    fn n(&self) -> usize {
        self.alpha.len()
    }

    /// Posterior means and variances of the latent function at `m` points
    /// (row-major `points`).
    fn mean_var(&self, points: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let d = self.dims;
        let m = points.len() / d.max(1);
        let n = self.n();
        let mut means = Vec::with_capacity(m);
        let mut vars = Vec::with_capacity(m);
        for start in (0..m).step_by(CHUNK) {
            let count = CHUNK.min(m - start);
            let mut kstar = zeros(n, count);
            {
                let ks = kstar.as_mut_slice();
                for j in 0..count {
                    let p = &points[(start + j) * d..(start + j + 1) * d];
                    let col = &mut ks[j * n..(j + 1) * n];
                    self.kernel_column(p, col);
                    means.push(dot(col, &self.alpha));
                }
            }
            let sums = lower_mul_col_sumsq(&self.linv, &kstar);
            vars.extend(sums.iter().map(|s| (self.kernel.scale - s).max(0.0)));
        }
        (means, vars)
    }

    /// The scaled squared distance from `p` to every training input, into `out`.
    fn sq_dists(&self, p: &[f64], out: &mut [f64]) {
        let n = out.len();
        out.fill(0.0);
        for (t, &pt) in p.iter().enumerate() {
            let lam = self.kernel.inv_sq_lengthscales[t];
            let xs = &self.xt[t * n..(t + 1) * n];
            let mut i = 0;
            while i < n {
                let diff = xs[i] - pt;
                out[i] += lam * diff * diff;
                i += 1;
            }
        }
    }

    /// `k(x_i, p)` for every training input, into `out`.
    fn kernel_column(&self, p: &[f64], out: &mut [f64]) {
        self.sq_dists(p, out);
        let scale = self.kernel.scale;
        for v in out.iter_mut() {
            *v = scale * matern52_value(*v);
        }
    }

    /// Mean and variance at `p` and their gradients along the dimensions `free`.
    fn mean_var_grad(&self, p: &[f64], free: &[usize]) -> (f64, f64, Vec<f64>, Vec<f64>) {
        let n = self.n();
        let scale = self.kernel.scale;
        let mut kv = vec![0.0; n];
        self.sq_dists(p, &mut kv);
        let mut dk = vec![0.0; n];
        for i in 0..n {
            let (k, dq) = matern52(kv[i]);
            kv[i] = scale * k;
            dk[i] = scale * dq;
        }
        let mean = dot(&kv, &self.alpha);
        let v = lower_mul(&self.linv, &kv);
        let w = lower_tr_mul(&self.linv, &v);
        let var = (self.kernel.scale - dot(&v, &v)).max(0.0);
        let mut dmean = vec![0.0; free.len()];
        let mut dvar = vec![0.0; free.len()];
        for (f, &dim) in free.iter().enumerate() {
            let lam2 = 2.0 * self.kernel.inv_sq_lengthscales[dim];
            let xs = &self.xt[dim * n..(dim + 1) * n];
            let (mut gm, mut gv) = (0.0, 0.0);
            for i in 0..n {
                let dkdx = dk[i] * lam2 * (p[dim] - xs[i]);
                gm += self.alpha[i] * dkdx;
                gv += w[i] * dkdx;
            }
            dmean[f] = gm;
            dvar[f] = -2.0 * gv;
        }
        (mean, var, dmean, dvar)
    }
}

// ---------------------------------------------------------------------------
// Fitting the kernel.

/// Observations for the kernel fit, with the per-pair squared differences that
/// every likelihood evaluation reuses.
struct FitData {
    n: usize,
    dims: usize,
    y: Vec<f64>,
    /// `(x_i - x_j)^2` along each dimension (dimension-major: one run of all
    /// pairs i < j, in j-major order, per dimension), so loops over pairs vectorize.
    sq: Vec<f64>,
}

impl FitData {
    fn new(x: &[f64], y: Vec<f64>, dims: usize) -> FitData {
        let n = y.len();
        let mut sq = Vec::with_capacity(n * n.saturating_sub(1) / 2 * dims);
        for t in 0..dims {
            for j in 0..n {
                for i in 0..j {
                    let diff = x[i * dims + t] - x[j * dims + t];
                    sq.push(diff * diff);
                }
            }
        }
        FitData { n, dims, y, sq }
    }

    /// The negative log marginal likelihood plus negative log prior at raw kernel
    /// parameters, and its gradient.
    fn objective(&self, raw: &[f64]) -> Option<(f64, Vec<f64>)> {
        let (n, dims) = (self.n, self.dims);
        let kernel = Kernel::from_raw(raw);
        let lam = &kernel.inv_sq_lengthscales;
        let s = kernel.scale;
        let pairs = n * n.saturating_sub(1) / 2;
        let mut q = vec![0.0; pairs];
        for (&lam_t, sq_t) in lam.iter().zip(self.sq.chunks_exact(pairs.max(1))) {
            axpy(&mut q, lam_t, sq_t);
        }
        let mut kq = vec![0.0; pairs];
        let mut dq = vec![0.0; pairs];
        for p in 0..pairs {
            (kq[p], dq[p]) = matern52(q[p]);
        }
        let mut k = zeros(n, n);
        let ks = k.as_mut_slice();
        let mut p = 0;
        for j in 0..n {
            for i in 0..j {
                ks[i + j * n] = s * kq[p];
                ks[j + i * n] = s * kq[p];
                p += 1;
            }
            ks[j + j * n] = s + kernel.noise;
        }
        let l = cholesky(k)?;
        let linv = lower_inverse(&l);
        let alpha = lower_tr_mul(&linv, &lower_mul(&linv, &self.y));
        let log_det: f64 = (0..n).map(|i| l[(i, i)].ln()).sum::<f64>() * 2.0;
        let fit = 0.5 * dot(&self.y, &alpha);
        let nll = fit + 0.5 * log_det + 0.5 * n as f64 * (2.0 * PI).ln();
        let kinv = inverse_from_lower_inverse(&linv);
        let ki = kinv.as_slice();

        // d LML / d theta = 0.5 tr(W dK/dtheta), W = alpha alpha^T - K^{-1}.
        let mut w = Vec::with_capacity(pairs);
        for j in 0..n {
            for i in 0..j {
                w.push(alpha[i] * alpha[j] - ki[i + j * n]);
            }
        }
        let off_diag_k = dot(&w, &kq);
        for p in 0..pairs {
            w[p] *= s * dq[p];
        }
        let mut g = vec![0.0; dims + 2];
        for t in 0..dims {
            g[t] = lam[t] * dot(&w, &self.sq[t * pairs..(t + 1) * pairs]);
        }
        let trace_w: f64 = (0..n).map(|i| alpha[i] * alpha[i] - ki[i + i * n]).sum();
        g[dims] = s * off_diag_k + 0.5 * s * trace_w;
        let noise_raw = kernel.noise - MIN_NOISE;
        g[dims + 1] = 0.5 * noise_raw * trace_w;

        // Log priors (Optuna's) and their gradients w.r.t. the raw parameters.
        let mut log_prior = 0.0;
        for t in 0..dims {
            log_prior -= 0.1 / lam[t] + 0.1 * lam[t];
            g[t] += 0.1 / lam[t] - 0.1 * lam[t];
        }
        log_prior += s.ln() - s;
        g[dims] += 1.0 - s;
        log_prior += 0.1 * kernel.noise.ln() - 30.0 * kernel.noise;
        g[dims + 1] += (0.1 / kernel.noise - 30.0) * noise_raw;

        let cost = nll - log_prior;
        for v in &mut g {
            *v = -*v;
        }
        (cost.is_finite() && g.iter().all(|v| v.is_finite())).then_some((cost, g))
    }
}

/// Fits the kernel to standardized observations, from `restarts` starting points.
fn fit_kernel(x: &[f64], y: Vec<f64>, dims: usize, restarts: usize, rng: &mut StdRng) -> Kernel {
    let data = FitData::new(x, y, dims);
    let (lo, hi) = Kernel::raw_bounds(dims);
    let default = Kernel::default_for(dims).to_raw();
    let objective = |raw: &[f64]| data.objective(raw);
    let mut best: Option<(f64, Vec<f64>)> = None;
    for restart in 0..restarts.max(1) {
        let start = if restart == 0 {
            default.clone()
        } else {
            let mut raw: Vec<f64> = (0..dims).map(|_| rng.random_range(-3.0..3.0)).collect();
            raw.push(rng.random_range(-1.0..1.0));
            raw.push(rng.random_range((1e-5f64).ln()..(1e-1f64).ln()));
            raw
        };
        if let Some((cost, raw)) =
            minimize_in_box(&objective, start, &lo, &hi, FIT_ITERS, FIT_EVALS, FIT_TOL)
            && best.as_ref().is_none_or(|(c, _)| cost < *c)
        {
            best = Some((cost, raw));
        }
    }
    best.map(|(_, raw)| Kernel::from_raw(&raw)).unwrap_or_else(|| Kernel::default_for(dims))
}

// ---------------------------------------------------------------------------
// L-BFGS in a box, through argmin.

type Objective<'a> = dyn Fn(&[f64]) -> Option<(f64, Vec<f64>)> + 'a;

/// What the problem remembers across argmin's calls.
#[derive(Default)]
struct Tracker {
    /// The last few evaluations (argmin asks for cost and gradient separately,
    /// and its line search comes back to points it has seen).
    recent: Vec<(Vec<f64>, f64, Vec<f64>)>,
    /// The best in-box point seen, with its (unpenalized) value.
    best: Option<(f64, Vec<f64>)>,
    evals: usize,
}

/// `f` evaluated at the point clamped into the box, plus a quadratic penalty on
/// the distance to the box, so that an unconstrained method stays inside it.
struct BoxProblem<'a> {
    f: &'a Objective<'a>,
    lo: &'a [f64],
    hi: &'a [f64],
    max_evals: usize,
    tracker: Rc<RefCell<Tracker>>,
}

impl BoxProblem<'_> {
    fn eval(&self, p: &[f64]) -> Result<(f64, Vec<f64>), ArgminError> {
        let mut tracker = self.tracker.borrow_mut();
        if let Some((_, cost, grad)) = tracker.recent.iter().find(|(at, ..)| at.as_slice() == p) {
            return Ok((*cost, grad.clone()));
        }
        if tracker.evals >= self.max_evals {
            return Err(ArgminError::msg("evaluation budget spent"));
        }
        tracker.evals += 1;
        if p.iter().any(|v| !v.is_finite()) {
            return Err(ArgminError::msg("non-finite parameter"));
        }
        let clamped: Vec<f64> = p
            .iter()
            .zip(self.lo.iter().zip(self.hi))
            .map(|(v, (lo, hi))| v.clamp(*lo, *hi))
            .collect();
        let (value, mut grad) =
            (self.f)(&clamped).ok_or_else(|| ArgminError::msg("objective undefined"))?;
        let mut cost = value;
        for i in 0..p.len() {
            let excess = p[i] - clamped[i];
            if excess != 0.0 {
                cost += BOX_PENALTY * excess * excess;
                grad[i] = 2.0 * BOX_PENALTY * excess;
            }
        }
        if tracker.best.as_ref().is_none_or(|(b, _)| value < *b) {
            tracker.best = Some((value, clamped));
        }
        if tracker.recent.len() == 4 {
            tracker.recent.remove(0);
        }
        tracker.recent.push((p.to_vec(), cost, grad.clone()));
        Ok((cost, grad))
    }
}

impl CostFunction for BoxProblem<'_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, param: &Vec<f64>) -> Result<f64, ArgminError> {
        self.eval(param).map(|(cost, _)| cost)
    }
}

impl Gradient for BoxProblem<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, param: &Vec<f64>) -> Result<Vec<f64>, ArgminError> {
        self.eval(param).map(|(_, grad)| grad)
    }
}

/// Minimizes `f` over the box `[lo, hi]` by L-BFGS from `start`; returns the best
/// point evaluated (inside the box) and its value, or `None` when `f` was undefined
/// everywhere it looked. Line-search failures and budget exhaustion just end the
/// search.
fn minimize_in_box(
    f: &Objective<'_>,
    start: Vec<f64>,
    lo: &[f64],
    hi: &[f64],
    max_iters: u64,
    max_evals: usize,
    tol_grad: f64,
) -> Option<(f64, Vec<f64>)> {
    let tracker = Rc::new(RefCell::new(Tracker::default()));
    let problem = BoxProblem { f, lo, hi, max_evals, tracker: Rc::clone(&tracker) };
    let linesearch = MoreThuenteLineSearch::new();
    let solver = LBFGS::new(linesearch, 8)
        .with_tolerance_grad(tol_grad)
        .ok()?
        .with_tolerance_cost(1e-10)
        .ok()?;
    // Errors (a failed first evaluation, a spent budget) leave the tracker's best.
    let _ = Executor::new(problem, solver)
        .configure(|state| state.param(start).max_iters(max_iters))
        .timer(false)
        .run();
    tracker.borrow_mut().best.take()
}

// ---------------------------------------------------------------------------
// The acquisition function.

/// `ln h(z)` with `h(z) = φ(z) + z Φ(z)`, the expected improvement of a standard
/// normal over `-z`, and its derivative `Φ(z) / h(z)`; accurate for every z
/// (Ament et al. 2023, eq. 9, with an asymptotic series for the far tail).
fn log_h(z: f64) -> (f64, f64) {
    let half_ln_2pi = 0.5 * (2.0 * PI).ln();
    if z > -1.0 {
        let pdf = (-0.5 * z * z).exp() / (2.0 * PI).sqrt();
        let cdf = 0.5 * libm::erfc(-z / SQRT_2);
        let h = pdf + z * cdf;
        return (h.ln(), cdf / h);
    }
    // h = φ(z) (1 + z R) with R = Φ(z) / φ(z); t = 1 + z R > 0 but cancels for z ≪ 0.
    let t = if z > -30.0 {
        let x = -z / SQRT_2;
        let r = (PI / 2.0).sqrt() * libm::erfc(x) * (x * x).exp();
        1.0 + z * r
    } else {
        let w = 1.0 / (z * z);
        w * (1.0 - 3.0 * w * (1.0 - 5.0 * w * (1.0 - 7.0 * w * (1.0 - 9.0 * w))))
    };
    let r = (1.0 - t) / -z;
    (-0.5 * z * z - half_ln_2pi + t.ln(), r / t)
}

/// Log expected improvement below `best` of N(mean, var), with its derivatives
/// with respect to the mean and the variance.
fn log_ei(mean: f64, var: f64, best: f64) -> (f64, f64, f64) {
    let sigma = (var + VAR_EPS).sqrt();
    let z = (best - mean) / sigma;
    let (lh, dlh) = log_h(z);
    let d_mean = -dlh / sigma;
    let d_sigma = (1.0 - z * dlh) / sigma;
    (sigma.ln() + lh, d_mean, d_sigma / (2.0 * sigma))
}

/// What the history gives the model.
struct Data {
    /// Complete trials' points, row-major.
    x: Vec<f64>,
    /// Their values, oriented for minimization (not yet standardized).
    y: Vec<f64>,
    /// Running trials' points, row-major.
    running: Vec<f64>,
}

/// The encoded point to try next, or `None` when the GP could not be built.
fn propose(
    config: &GpConfig,
    encoding: &Encoding,
    data: Data,
    rng: &mut StdRng,
) -> Option<Vec<f64>> {
    let dims = encoding.dims;
    let n = data.y.len();
    let (mean, var) = sample_mean_var(&data.y);
    if !(mean.is_finite() && var.is_finite()) {
        return None; // values near f64::MAX: leave it to random search
    }
    let warped = warp_outputs(&data.y);
    let (mean, var) = sample_mean_var(&warped);
    let std = if var.sqrt() > 1e-12 { var.sqrt() } else { 1.0 };
    let y: Vec<f64> = warped.iter().map(|v| (v - mean) / std).collect();

    // Fit the hyperparameters (on a subset when there are many observations).
    let (fit_x, fit_y) = fit_subset(&data.x, &y, dims, rng);
    let kernel = fit_kernel(&fit_x, fit_y, dims, config.restarts, rng);

    let mut best = y.iter().copied().fold(f64::INFINITY, f64::min);
    let mut x = data.x;
    let mut all_y = y.clone();
    let mut posterior = Posterior::new(x.clone(), &all_y, dims, kernel.clone())?;
    if !data.running.is_empty() {
        // Kriging believer: pretend the running trials returned the posterior mean.
        let (believed, _) = posterior.mean_var(&data.running);
        best = believed.iter().copied().fold(best, f64::min);
        x.extend_from_slice(&data.running);
        all_y.extend(believed);
        posterior = Posterior::new(x, &all_y, dims, kernel)?;
    }
    let acq = Acquisition { posterior: &posterior, best, encoding };

    // Candidates: a shifted low-discrepancy sequence plus neighbours of the best.
    let mut cands = quasi_random(encoding, config.candidates.max(1), rng);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| y[a].total_cmp(&y[b]));
    let centers = LOCAL_CENTERS.min(n);
    let per_center = (config.candidates / 8 / centers.max(1)).clamp(1, 64);
    for &idx in &order[..centers] {
        let center = &posterior.x[idx * dims..(idx + 1) * dims];
        for k in 0..per_center {
            cands.extend(perturb(encoding, center, 0.2 * 0.5f64.powi((k % 5) as i32), rng));
        }
    }
    for point in cands.chunks_mut(dims) {
        encoding.snap(point);
    }
    let values = acq.values(&cands);

    // Refine the best few, then search their discrete neighbourhoods.
    let mut ranked: Vec<usize> = (0..values.len()).filter(|&i| values[i].is_finite()).collect();
    ranked.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let mut starts: Vec<&[f64]> = Vec::new();
    for &idx in &ranked {
        let point = &cands[idx * dims..(idx + 1) * dims];
        if !starts.contains(&point) {
            starts.push(point);
            if starts.len() == REFINE_STARTS {
                break;
            }
        }
    }
    let mut best_point: Option<(f64, Vec<f64>)> = None;
    for start in starts {
        let (value, point) = acq.refine(start);
        if best_point.as_ref().is_none_or(|(b, _)| value > *b) {
            best_point = Some((value, point));
        }
    }
    best_point.map(|(_, point)| point)
}

/// The mean and (population) variance of `values`.
fn sample_mean_var(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (mean, values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n)
}

/// The values to model: `ln(y - min + gap)` with `gap = median - min`, or `y`
/// itself, whichever the Box-Cox profile likelihood (Box and Cox 1964: λ = 0 or 1,
/// `-n/2 ln var(t) + (λ - 1) Σ ln(y - min + gap)`) says is closer to normal.
///
/// Values spread over orders of magnitude (rosenbrock, levy, branin) get the log:
/// a stationary GP fits them badly, since the few huge values set the scale and
/// the region near the minimum looks flat. Values bunched near their best or
/// worst (hartmann6, ackley) stay as they are. The transform is monotone, so the
/// best trial stays the best, and the shift keeps every logarithm finite.
pub fn warp_outputs(y: &[f64]) -> Vec<f64> {
    let n = y.len();
    let min = y.iter().copied().fold(f64::INFINITY, f64::min);
    let mut sorted = y.to_vec();
    sorted.sort_by(f64::total_cmp);
    let gap = sorted[n / 2] - min;
    if !(gap > 0.0 && gap.is_finite()) {
        return y.to_vec(); // half the values tie with the best: nothing to spread
    }
    let logs: Vec<f64> = y.iter().map(|v| (v - min + gap).ln()).collect();
    let profile = |var: f64, jacobian: f64| -0.5 * n as f64 * var.ln() + jacobian;
    let identity = profile(sample_mean_var(y).1, 0.0);
    let log = profile(sample_mean_var(&logs).1, -logs.iter().sum::<f64>());
    if log > identity { logs } else { y.to_vec() }
}

/// Observations for the kernel fit: all of them, or beyond [`FIT_MAX_POINTS`] the
/// best half of that many plus a random sample of the others.
fn fit_subset(x: &[f64], y: &[f64], dims: usize, rng: &mut StdRng) -> (Vec<f64>, Vec<f64>) {
    let n = y.len();
    if n <= FIT_MAX_POINTS {
        return (x.to_vec(), y.to_vec());
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| y[a].total_cmp(&y[b]));
    let keep = FIT_MAX_POINTS / 2;
    let mut picked: Vec<usize> = order[..keep].to_vec();
    let rest = &order[keep..];
    for idx in rand::seq::index::sample(rng, rest.len(), FIT_MAX_POINTS - keep) {
        picked.push(rest[idx]);
    }
    picked.sort_unstable();
    let mut fx = Vec::with_capacity(picked.len() * dims);
    let mut fy = Vec::with_capacity(picked.len());
    for idx in picked {
        fx.extend_from_slice(&x[idx * dims..(idx + 1) * dims]);
        fy.push(y[idx]);
    }
    (fx, fy)
}

/// `count` points: the numeric inputs from an R_d sequence (Roberts' generalized
/// golden ratio) rotated by a random shift, categoricals uniformly at random.
fn quasi_random(encoding: &Encoding, count: usize, rng: &mut StdRng) -> Vec<f64> {
    let numeric = encoding.numeric_dims(None);
    let d = numeric.len();
    // phi_d: the positive root of x^(d+1) = x + 1.
    let mut phi = 2.0f64;
    for _ in 0..64 {
        phi = (1.0 + phi).powf(1.0 / (d as f64 + 1.0));
    }
    let alphas: Vec<f64> = (1..=d).map(|j| phi.powi(-(j as i32)).fract()).collect();
    let shifts: Vec<f64> = (0..d).map(|_| rng.random::<f64>()).collect();
    let mut points = vec![0.0; count * encoding.dims];
    for (i, point) in points.chunks_mut(encoding.dims).enumerate() {
        for (j, &dim) in numeric.iter().enumerate() {
            point[dim] = (shifts[j] + (i + 1) as f64 * alphas[j]).fract();
        }
        for coord in encoding.coords.iter().filter(|c| !c.is_numeric()) {
            point[coord.dim + rng.random_range(0..coord.width())] = 1.0;
        }
    }
    points
}

/// A random neighbour of `center`: numeric inputs moved by N(0, scale²) and
/// clamped; each categorical switched to a random choice with probability 0.2.
fn perturb(encoding: &Encoding, center: &[f64], scale: f64, rng: &mut StdRng) -> Vec<f64> {
    let mut point = center.to_vec();
    for coord in &encoding.coords {
        if coord.is_inactive(center) {
            continue;
        } else if coord.is_numeric() {
            let noise: f64 = rng.sample(rand_distr::StandardNormal);
            point[coord.dim] = (point[coord.dim] + scale * noise).clamp(0.0, 1.0);
        } else if rng.random_bool(0.2) {
            let block = &mut point[coord.dim..coord.dim + coord.width()];
            block.fill(0.0);
            block[rng.random_range(0..block.len())] = 1.0;
        }
    }
    point
}

/// Log EI under a posterior, with the means to maximize it.
struct Acquisition<'a> {
    posterior: &'a Posterior,
    best: f64,
    encoding: &'a Encoding,
}

impl Acquisition<'_> {
    /// Log EI at each of the row-major `points`.
    fn values(&self, points: &[f64]) -> Vec<f64> {
        let (means, vars) = self.posterior.mean_var(points);
        means.iter().zip(&vars).map(|(&m, &v)| log_ei(m, v, self.best).0).collect()
    }

    /// Refines `start` by L-BFGS over the numeric inputs, snaps it to the grids,
    /// then improves it by coordinate search over the discrete choices; returns
    /// the best point found (never worse than `start`) and its log EI.
    fn refine(&self, start: &[f64]) -> (f64, Vec<f64>) {
        let mut best = (self.values(start)[0], start.to_vec());
        let free = self.encoding.numeric_dims(Some(start));
        if !free.is_empty() {
            let objective = |u: &[f64]| {
                let mut p = start.to_vec();
                for (&dim, &v) in free.iter().zip(u) {
                    p[dim] = v;
                }
                let (mean, var, dmean, dvar) = self.posterior.mean_var_grad(&p, &free);
                let (value, d_mean, d_var) = log_ei(mean, var, self.best);
                let grad: Vec<f64> =
                    dmean.iter().zip(&dvar).map(|(gm, gv)| -(d_mean * gm + d_var * gv)).collect();
                value.is_finite().then_some((-value, grad))
            };
            let u0: Vec<f64> = free.iter().map(|&dim| start[dim]).collect();
            let (lo, hi) = (vec![0.0; free.len()], vec![1.0; free.len()]);
            if let Some((_, u)) =
                minimize_in_box(&objective, u0, &lo, &hi, REFINE_ITERS, REFINE_EVALS, REFINE_TOL)
            {
                let mut p = start.to_vec();
                for (&dim, &v) in free.iter().zip(&u) {
                    p[dim] = v;
                }
                self.encoding.snap(&mut p);
                let value = self.values(&p)[0];
                if value > best.0 {
                    best = (value, p);
                }
            }
        }
        self.local_search(best)
    }

    /// Coordinate search: every other choice of each categorical and the
    /// neighbouring grid values of each int or stepped float, until none improves.
    fn local_search(&self, mut best: (f64, Vec<f64>)) -> (f64, Vec<f64>) {
        for _ in 0..4 {
            let mut neighbours: Vec<f64> = Vec::new();
            for coord in &self.encoding.coords {
                if coord.is_inactive(&best.1) {
                    continue;
                } else if !coord.is_numeric() {
                    for choice in 0..coord.width() {
                        if best.1[coord.dim + choice] != 1.0 {
                            let mut p = best.1.clone();
                            p[coord.dim..coord.dim + coord.width()].fill(0.0);
                            p[coord.dim + choice] = 1.0;
                            // Another choice may switch conditional parameters on or off.
                            self.encoding.snap(&mut p);
                            neighbours.extend(p);
                        }
                    }
                } else if coord.is_discrete() {
                    for dir in [-1.0, 1.0] {
                        if let Some(p) = self.grid_neighbour(coord, &best.1, dir) {
                            neighbours.extend(p);
                        }
                    }
                }
            }
            if neighbours.is_empty() {
                break;
            }
            let values = self.values(&neighbours);
            let Some((idx, &value)) = values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .max_by(|a, b| a.1.total_cmp(b.1))
            else {
                break;
            };
            if value <= best.0 {
                break;
            }
            let dims = self.encoding.dims;
            best = (value, neighbours[idx * dims..(idx + 1) * dims].to_vec());
        }
        best
    }

    /// `p` with `coord` moved to the next grid value in direction `dir`, if any.
    fn grid_neighbour(&self, coord: &Coord, p: &[f64], dir: f64) -> Option<Vec<f64>> {
        let current = coord.decode(p).as_f64()?;
        let next = match coord.distribution {
            Distribution::Int { step, .. } => current + dir * step as f64,
            Distribution::Float { step: Some(step), .. } => current + dir * step,
            _ => return None,
        };
        let value = match coord.distribution {
            Distribution::Int { .. } => ParamValue::Int(next.round() as i64),
            Distribution::Float { step: Some(step), .. } => {
                ParamValue::Float(round_to_step(next, step))
            }
            _ => return None,
        };
        let mut out = p.to_vec();
        coord.encode(&value, &mut out)?;
        Some(out)
    }
}

#[cfg(test)]
mod tests;
