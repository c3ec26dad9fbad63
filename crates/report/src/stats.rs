//! Small statistics for reports: confidence intervals, Welch's t-test, a least-squares
//! line and quantiles, as pure functions of slices.
//!
//! A report compares a handful of runs (the seeds of a confirmed configuration, two
//! configurations, a metric against a knob), so everything here is exact for small
//! samples: intervals and p-values use Student's t distribution, whose CDF is computed
//! from the regularized incomplete beta function (a continued fraction evaluated with
//! the modified Lentz method, after Numerical Recipes §6.4) and inverted by bisection.
//! No dependency beyond `libm` (for `lgamma` and `erfc`).
//!
//! Every function that takes samples ignores non-finite ones: a NaN loss is a failed
//! run, not a number, and one of them must not turn a whole table into NaN. The
//! counts the results report are the counts of finite values used.
//!
//! Start reading at [`mean_ci95`] and [`welch_t_test`]; the distribution functions are
//! [`student_t_cdf`] and [`student_t_quantile`].

#[cfg(test)]
mod tests;

/// A sample mean with its 95% confidence interval `mean ± half_width`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanCi {
    /// The number of finite values used.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Their sample standard deviation (divisor `n - 1`); NaN when `n` is 1.
    pub std: f64,
    /// Half the width of the two-sided 95% Student-t interval,
    /// `t(0.975, n - 1) * std / sqrt(n)`; infinite when `n` is 1.
    pub half_width: f64,
}

/// The mean of the finite `values` and its two-sided 95% confidence interval under
/// Student's t distribution with `n - 1` degrees of freedom.
///
/// `None` when there is no finite value. With a single value the mean is that value,
/// `std` is NaN (undefined with no degree of freedom) and `half_width` is infinite:
/// one run says nothing about the spread.
pub fn mean_ci95(values: &[f64]) -> Option<MeanCi> {
    let summary = Summary::of(values)?;
    if summary.n == 1 {
        return Some(MeanCi { n: 1, mean: summary.mean, std: f64::NAN, half_width: f64::INFINITY });
    }
    let std = summary.variance.sqrt();
    let t = student_t_quantile(0.975, (summary.n - 1) as f64);
    let half_width = t * std / (summary.n as f64).sqrt();
    Some(MeanCi { n: summary.n, mean: summary.mean, std, half_width })
}

/// The outcome of Welch's two-sided t-test of "the two means are equal".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Welch {
    /// `mean(a) - mean(b)`.
    pub diff: f64,
    /// The Welch–Satterthwaite degrees of freedom (fractional).
    pub df: f64,
    /// The t statistic, `diff / sqrt(var(a) / n_a + var(b) / n_b)`.
    pub t: f64,
    /// The two-sided p-value, `P(|T| >= |t|)` for `T` Student-t with `df` degrees.
    pub p_value: f64,
}

/// Welch's unequal-variances t-test of the finite values of `a` against those of `b`,
/// two-sided.
///
/// `None` when either sample has fewer than 2 finite values, or when both have zero
/// variance and equal means (the test is 0/0). When both have zero variance but the
/// means differ, the difference is certain: `t` is infinite with the sign of `diff`,
/// `p_value` is 0, and `df` is `n_a + n_b - 2` because Welch–Satterthwaite is 0/0 too.
pub fn welch_t_test(a: &[f64], b: &[f64]) -> Option<Welch> {
    let a = Summary::of(a).filter(|summary| summary.n >= 2)?;
    let b = Summary::of(b).filter(|summary| summary.n >= 2)?;
    let diff = a.mean - b.mean;
    let (n_a, n_b) = (a.n as f64, b.n as f64);
    let standard_error_a = a.variance / n_a;
    let standard_error_b = b.variance / n_b;
    let standard_error = standard_error_a + standard_error_b;

    if standard_error == 0.0 {
        if diff == 0.0 {
            return None;
        }
        return Some(Welch {
            diff,
            df: n_a + n_b - 2.0,
            t: f64::INFINITY.copysign(diff),
            p_value: 0.0,
        });
    }

    let df = standard_error.powi(2)
        / (standard_error_a.powi(2) / (n_a - 1.0) + standard_error_b.powi(2) / (n_b - 1.0));
    let t = diff / standard_error.sqrt();
    let p_value = (2.0 * student_t_upper_tail(t.abs(), df)).min(1.0);
    Some(Welch { diff, df, t, p_value })
}

/// A least-squares line `y = slope * x + intercept` and its coefficient of
/// determination.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearFit {
    /// The change in `y` per unit of `x`.
    pub slope: f64,
    /// `y` at `x = 0`.
    pub intercept: f64,
    /// The share of the variance of `y` the line explains, in `[0, 1]`; 1 when every
    /// `y` is the same (the flat line fits exactly).
    pub r2: f64,
}

/// The ordinary least-squares line through the pairs `(xs[i], ys[i])`, skipping pairs
/// where either is not finite (and pairs past the shorter slice).
///
/// `None` when fewer than 2 distinct `x` remain: no line is determined.
pub fn linear_fit(xs: &[f64], ys: &[f64]) -> Option<LinearFit> {
    let pairs: Vec<(f64, f64)> = xs
        .iter()
        .zip(ys)
        .map(|(&x, &y)| (x, y))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let &(first_x, _) = pairs.first()?;
    // Checked directly: the centered sum of squares of equal x can come out as a tiny
    // positive number through rounding of the mean.
    if pairs.iter().all(|&(x, _)| x == first_x) {
        return None;
    }

    let n = pairs.len() as f64;
    let mean_x = pairs.iter().map(|&(x, _)| x).sum::<f64>() / n;
    let mean_y = pairs.iter().map(|&(_, y)| y).sum::<f64>() / n;
    let (mut sum_xx, mut sum_xy, mut sum_yy) = (0.0, 0.0, 0.0);
    for &(x, y) in &pairs {
        let (dx, dy) = (x - mean_x, y - mean_y);
        sum_xx += dx * dx;
        sum_xy += dx * dy;
        sum_yy += dy * dy;
    }

    let slope = sum_xy / sum_xx;
    let intercept = mean_y - slope * mean_x;
    let r2 =
        if sum_yy == 0.0 { 1.0 } else { (sum_xy * sum_xy / (sum_xx * sum_yy)).clamp(0.0, 1.0) };
    Some(LinearFit { slope, intercept, r2 })
}

/// The `q`-quantile of `sorted` (ascending, finite) by linear interpolation between
/// the two nearest ranks (numpy's default): position `q * (n - 1)`.
///
/// `q` is clamped to `[0, 1]`; NaN for an empty slice or a NaN `q`.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    let fraction = position - below as f64;
    sorted[below] + fraction * (sorted[above] - sorted[below])
}

/// `P(T <= t)` for `T` Student-t with `df` degrees of freedom (`df` may be fractional).
///
/// NaN when `t` is NaN or `df` is not positive; `df = inf` is the standard normal.
pub fn student_t_cdf(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    let tail = student_t_upper_tail(t.abs(), df);
    if t >= 0.0 { 1.0 - tail } else { tail }
}

/// The `t` with `student_t_cdf(t, df) == p`, found by bisection to about 1e-15
/// relative.
///
/// `-inf` for `p = 0`, `inf` for `p = 1`, NaN for `p` outside `[0, 1]`, NaN `p` or
/// `df` not positive.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if p == 0.5 {
        return 0.0;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    // Work with the smaller tail so that p near 1 keeps its precision; 1 - p is exact
    // for p in [0.5, 1].
    if p < 0.5 { -t_with_upper_tail(p, df) } else { t_with_upper_tail(1.0 - p, df) }
}

/// Above this many degrees of freedom, the t distribution is computed from the normal
/// with a first-order correction: the incomplete beta function's prefactor would lose
/// precision to `lgamma` of huge arguments, and its continued fraction would need
/// `O(sqrt(df))` terms.
const NORMAL_APPROXIMATION_DF: f64 = 1e6;

/// The upper tail `P(T > t)` for `t >= 0`, computed directly (not as `1 - cdf`) so
/// that small tails keep their precision.
fn student_t_upper_tail(t: f64, df: f64) -> f64 {
    if t.is_infinite() {
        return 0.0;
    }
    if df > NORMAL_APPROXIMATION_DF {
        // Abramowitz & Stegun 26.7.8: z = t (1 - 1/(4 df)) / sqrt(1 + t^2 / (2 df))
        // is close to standard normal, with an error of order 1/df^2.
        let z = t * (1.0 - 0.25 / df) / (1.0 + t * t / (2.0 * df)).sqrt();
        return 0.5 * libm::erfc(z / std::f64::consts::SQRT_2);
    }
    // P(T > t) = I_x(df/2, 1/2) / 2 with x = df / (df + t^2). Both x and 1 - x are
    // formed without subtraction, and stay correct when t^2 overflows.
    let t_squared = t * t;
    let x = 1.0 / (1.0 + t_squared / df);
    let one_minus_x = 1.0 / (1.0 + df / t_squared);
    0.5 * regularized_incomplete_beta(0.5 * df, 0.5, x, one_minus_x)
}

/// The positive `t` whose upper tail is `tail`, for `tail` in `(0, 0.5)`.
fn t_with_upper_tail(tail: f64, df: f64) -> f64 {
    // Bracket: the tail falls as t grows, so double `high` until it is past the answer.
    let mut low = 0.0;
    let mut high = 1.0;
    while student_t_upper_tail(high, df) > tail {
        low = high;
        high *= 2.0;
        if high.is_infinite() {
            return f64::INFINITY;
        }
    }
    for _ in 0..200 {
        let middle = 0.5 * (low + high);
        if high - low <= 1e-15 * high || middle <= low || middle >= high {
            break;
        }
        if student_t_upper_tail(middle, df) > tail {
            low = middle;
        } else {
            high = middle;
        }
    }
    0.5 * (low + high)
}

/// `I_x(a, b)`, the regularized incomplete beta function, for `a, b > 0`, given both
/// `x` and `one_minus_x = 1 - x` (so callers can form the smaller one precisely).
///
/// `I_x(a, b) = x^a (1 - x)^b / (a B(a, b)) * 1 / (1 + d_1 / (1 + d_2 / (1 + ...)))`;
/// the continued fraction converges quickly for `x < (a + 1) / (a + b + 2)`, and the
/// other side uses the symmetry `I_x(a, b) = 1 - I_{1-x}(b, a)`.
fn regularized_incomplete_beta(a: f64, b: f64, x: f64, one_minus_x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if one_minus_x <= 0.0 {
        return 1.0;
    }
    let ln_prefactor =
        libm::lgamma(a + b) - libm::lgamma(a) - libm::lgamma(b) + a * x.ln() + b * one_minus_x.ln();
    let prefactor = ln_prefactor.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        prefactor * beta_continued_fraction(a, b, x) / a
    } else {
        1.0 - prefactor * beta_continued_fraction(b, a, one_minus_x) / b
    }
}

/// The continued fraction `1 / (1 + d_1 / (1 + d_2 / (1 + ...)))` of `I_x(a, b)`, with
/// `d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1))` and
/// `d_{2m} = m (b - m) x / ((a + 2m - 1)(a + 2m))`, evaluated front to back by the
/// modified Lentz method (each step multiplies the estimate by `C_j * D_j`).
fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const MAX_TERMS: usize = 100_000;
    const RELATIVE_TOLERANCE: f64 = 1e-15;
    // Stands in for an exact zero in a denominator, which Lentz's method cannot divide by.
    const TINY: f64 = 1e-300;
    let nonzero = |it: f64| if it.abs() < TINY { TINY } else { it };

    // The first step folds in d_1 (m = 0 of the odd terms): f = 1 / (1 + d_1).
    let mut c = 1.0;
    let mut d = 1.0 / nonzero(1.0 - (a + b) * x / (a + 1.0));
    let mut estimate = d;
    for m in 1..MAX_TERMS {
        let m = m as f64;
        let even_term = m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m));
        d = 1.0 / nonzero(1.0 + even_term * d);
        c = nonzero(1.0 + even_term / c);
        estimate *= d * c;

        let odd_term = -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0));
        d = 1.0 / nonzero(1.0 + odd_term * d);
        c = nonzero(1.0 + odd_term / c);
        let step = d * c;
        estimate *= step;
        if (step - 1.0).abs() < RELATIVE_TOLERANCE {
            break;
        }
    }
    estimate
}

/// The count, mean and sample variance (divisor `n - 1`, 0 when `n` is 1) of the
/// finite values of a slice.
struct Summary {
    n: usize,
    mean: f64,
    variance: f64,
}

impl Summary {
    /// `None` when no value is finite.
    fn of(values: &[f64]) -> Option<Summary> {
        let finite = || values.iter().copied().filter(|value| value.is_finite());
        let n = finite().count();
        if n == 0 {
            return None;
        }
        let mean = finite().sum::<f64>() / n as f64;
        let sum_of_squares: f64 = finite().map(|value| (value - mean).powi(2)).sum();
        let variance = if n > 1 { sum_of_squares / (n - 1) as f64 } else { 0.0 };
        Some(Summary { n, mean, variance })
    }
}
