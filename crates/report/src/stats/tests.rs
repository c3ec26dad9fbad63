//! References: closed forms where the t distribution has them (df = 1 is the Cauchy
//! distribution, df = 2 has `cdf(t) = 1/2 + t / (2 sqrt(2 + t^2))`), and otherwise this
//! program (Python 3, standard library only), which integrates the t density with
//! Simpson's rule, an independent route from the incomplete beta function:
//!
//! ```python
//! from math import lgamma, exp, log, log1p, pi, sqrt, fsum
//! import statistics
//!
//! def pdf(t, df):
//!     return exp(lgamma((df + 1) / 2) - lgamma(df / 2) - 0.5 * log(df * pi)
//!                - (df + 1) / 2 * log1p(t * t / df))
//!
//! def cdf(t, df, n=200_000):
//!     h = abs(t) / n
//!     s = fsum([pdf(0, df), pdf(abs(t), df)]
//!              + [(4 if i % 2 else 2) * pdf(i * h, df) for i in range(1, n)])
//!     half = s * h / 3
//!     return 0.5 + half if t >= 0 else 0.5 - half
//!
//! def quantile(p, df):
//!     lo, hi = 0.0, 50.0
//!     for _ in range(60):
//!         mid = (lo + hi) / 2
//!         if cdf(mid, df, 20_000) < p: lo = mid
//!         else: hi = mid
//!     return (lo + hi) / 2
//!
//! def welch(a, b):
//!     ma, mb = statistics.fmean(a), statistics.fmean(b)
//!     va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
//!     df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
//!     t = (ma - mb) / sqrt(va + vb)
//!     return ma - mb, df, t, 2 * (1 - cdf(abs(t), df))
//!
//! print(cdf(2.0, 5), cdf(-1.5, 3), cdf(0.7, 2.5), cdf(3.0, 30))
//! print(quantile(0.975, 5), quantile(0.975, 30), quantile(0.975, 4))
//! print(welch([1, 2, 3, 4, 5], [2, 4, 6, 8, 10]))
//! print(welch([20.1, 19.8, 20.4, 20.0], [21.0, 21.5, 20.7, 21.2, 21.1, 20.9]))
//! values = [0.91, 0.93, 0.90, 0.94, 0.92]
//! print(statistics.fmean(values), statistics.stdev(values),
//!       quantile(0.975, 4) * statistics.stdev(values) / sqrt(5))
//! ```

use expect_test::{Expect, expect};

use crate::stats::{
    LinearFit, MeanCi, Welch, linear_fit, mean_ci95, quantile, student_t_cdf, student_t_quantile,
    welch_t_test,
};

#[track_caller]
fn assert_close(actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{actual} is not within {tolerance} of {expected}"
    );
}

#[track_caller]
fn check(actual: String, expect: Expect) {
    expect.assert_eq(&actual);
}

fn show_mean_ci(it: Option<MeanCi>) -> String {
    match it {
        Some(MeanCi { n, mean, std, half_width }) => {
            format!("n={n} mean={mean:.6} std={std:.6} half_width={half_width:.6}")
        }
        None => "none".to_owned(),
    }
}

fn show_welch(it: Option<Welch>) -> String {
    match it {
        Some(Welch { diff, df, t, p_value }) => {
            format!("diff={diff:.6} df={df:.6} t={t:.6} p={p_value:.6}")
        }
        None => "none".to_owned(),
    }
}

fn show_fit(it: Option<LinearFit>) -> String {
    match it {
        Some(LinearFit { slope, intercept, r2 }) => {
            format!("slope={slope:.6} intercept={intercept:.6} r2={r2:.6}")
        }
        None => "none".to_owned(),
    }
}

#[test]
fn t_cdf_matches_the_closed_forms_for_one_and_two_degrees() {
    for t in [-30.0, -2.5, -0.3, 0.0, 0.4, 1.0, 6.0, 1e4] {
        assert_close(student_t_cdf(t, 1.0), 0.5 + f64::atan(t) / std::f64::consts::PI, 1e-14);
        assert_close(student_t_cdf(t, 2.0), 0.5 + t / (2.0 * (2.0 + t * t).sqrt()), 1e-14);
    }
}

#[test]
fn t_cdf_matches_numerical_integration() {
    assert_close(student_t_cdf(2.0, 5.0), 0.9490302605850705, 1e-12);
    assert_close(student_t_cdf(-1.5, 3.0), 0.1152919326224115, 1e-12);
    assert_close(student_t_cdf(0.7, 2.5), 0.7282975284052259, 1e-12);
    assert_close(student_t_cdf(3.0, 30.0), 0.9973050179671712, 1e-12);
}

#[test]
fn t_cdf_keeps_small_tails_precise() {
    // cdf(-t, 1) = atan(1 / t) / pi for t > 0: 3.183098861837907e-11 at t = 1e10.
    let tail = student_t_cdf(-1e10, 1.0);
    assert!((tail / 3.183098861837907e-11 - 1.0).abs() < 1e-10, "{tail}");
    assert!(student_t_cdf(-40.0, 30.0) > 0.0);
}

#[test]
fn t_cdf_edge_cases() {
    assert_eq!(student_t_cdf(0.0, 7.0), 0.5);
    assert_eq!(student_t_cdf(f64::INFINITY, 3.0), 1.0);
    assert_eq!(student_t_cdf(f64::NEG_INFINITY, 3.0), 0.0);
    assert!(student_t_cdf(f64::NAN, 3.0).is_nan());
    assert!(student_t_cdf(1.0, 0.0).is_nan());
    assert!(student_t_cdf(1.0, -2.0).is_nan());
    assert!(student_t_cdf(1.0, f64::NAN).is_nan());
    // Infinitely many degrees of freedom: the standard normal, Phi(1.96) = 0.9750021048517795.
    assert_close(student_t_cdf(1.96, f64::INFINITY), 0.9750021048517795, 1e-15);
}

#[test]
fn t_cdf_is_continuous_where_it_switches_to_the_normal_approximation() {
    for t in [0.5, 2.0, 4.0] {
        let below = student_t_cdf(-t, 0.999_999e6);
        let above = student_t_cdf(-t, 1.000_001e6);
        assert!((below / above - 1.0).abs() < 1e-8, "t = {t}: {below} vs {above}");
    }
}

#[test]
fn t_quantiles_match_the_table() {
    // The familiar two-sided 95% critical values.
    let table = [(1.0, 12.706), (2.0, 4.303), (5.0, 2.571), (30.0, 2.042), (1e9, 1.960)];
    for (df, value) in table {
        assert_close(student_t_quantile(0.975, df), value, 5e-4);
    }
    // And to many digits: tan(0.475 pi), 0.95 / sqrt(2 * 0.975 * 0.025), the program
    // above, and the normal's 1.959963984540054.
    assert_close(student_t_quantile(0.975, 1.0), 12.706204736174696, 1e-11);
    assert_close(student_t_quantile(0.975, 2.0), 4.302652729749464, 1e-12);
    assert_close(student_t_quantile(0.975, 5.0), 2.570581835636326, 1e-9);
    assert_close(student_t_quantile(0.975, 30.0), 2.0422724563012906, 1e-9);
    assert_close(student_t_quantile(0.975, f64::INFINITY), 1.959963984540054, 1e-12);
}

#[test]
fn t_quantile_inverts_the_cdf_in_the_middle_and_far_in_the_tails() {
    for df in [1.0, 3.5, 40.0] {
        for p in [1e-12, 0.01, 0.3, 0.7, 0.99] {
            let t = student_t_quantile(p, df);
            assert!((student_t_cdf(t, df) / p - 1.0).abs() < 1e-9, "df {df}, p {p}");
        }
        // Not bit for bit: 1 - 0.975 is 0.025000000000000022.
        let (lower, upper) = (student_t_quantile(0.025, df), student_t_quantile(0.975, df));
        assert!((lower / -upper - 1.0).abs() < 1e-12, "df {df}: {lower} vs {upper}");
    }
}

#[test]
fn t_quantile_edge_cases() {
    assert_eq!(student_t_quantile(0.5, 3.0), 0.0);
    assert_eq!(student_t_quantile(0.0, 3.0), f64::NEG_INFINITY);
    assert_eq!(student_t_quantile(1.0, 3.0), f64::INFINITY);
    for (p, df) in [(-0.1, 3.0), (1.1, 3.0), (f64::NAN, 3.0), (0.9, 0.0), (0.9, f64::NAN)] {
        assert!(student_t_quantile(p, df).is_nan(), "p {p}, df {df}");
    }
}

#[test]
fn mean_ci95_matches_the_reference() {
    let Some(it) = mean_ci95(&[0.91, 0.93, 0.90, 0.94, 0.92]) else { panic!("five values") };
    assert_eq!(it.n, 5);
    assert_close(it.mean, 0.92, 1e-15);
    assert_close(it.std, 0.015811388300841875, 1e-15);
    assert_close(it.half_width, 0.01963243161477548, 1e-12);
}

#[test]
fn mean_ci95_edge_cases() {
    check(show_mean_ci(mean_ci95(&[])), expect!["none"]);
    check(show_mean_ci(mean_ci95(&[f64::NAN, f64::INFINITY])), expect!["none"]);
    check(show_mean_ci(mean_ci95(&[4.0])), expect!["n=1 mean=4.000000 std=NaN half_width=inf"]);
    // The NaN is skipped: two values, one degree of freedom, t = 12.706.
    check(
        show_mean_ci(mean_ci95(&[1.0, f64::NAN, 3.0])),
        expect!["n=2 mean=2.000000 std=1.414214 half_width=12.706205"],
    );
    check(
        show_mean_ci(mean_ci95(&[2.5, 2.5, 2.5])),
        expect!["n=3 mean=2.500000 std=0.000000 half_width=0.000000"],
    );
}

#[test]
fn welch_matches_the_reference() {
    let Some(it) = welch_t_test(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 4.0, 6.0, 8.0, 10.0]) else {
        panic!("two samples of five")
    };
    assert_close(it.diff, -3.0, 1e-15);
    assert_close(it.df, 5.882352941176471, 1e-12);
    assert_close(it.t, -1.8973665961010275, 1e-12);
    assert_close(it.p_value, 0.10753119493062835, 1e-10);

    let Some(it) = welch_t_test(&[20.1, 19.8, 20.4, 20.0], &[21.0, 21.5, 20.7, 21.2, 21.1, 20.9])
    else {
        panic!("samples of four and six")
    };
    assert_close(it.diff, -0.9916666666666671, 1e-12);
    assert_close(it.df, 7.012659883915602, 1e-10);
    assert_close(it.t, -5.919006362444144, 1e-10);
    assert_close(it.p_value, 0.0005841387373890505, 1e-12);
}

#[test]
fn welch_is_symmetric_in_its_samples() {
    let a = [0.3, 0.5, 0.4, 0.45];
    let b = [0.6, 0.55, 0.7];
    let (Some(ab), Some(ba)) = (welch_t_test(&a, &b), welch_t_test(&b, &a)) else {
        panic!("both tests are defined")
    };
    assert_eq!((ab.diff, ab.t, ab.df, ab.p_value), (-ba.diff, -ba.t, ba.df, ba.p_value));
}

#[test]
fn welch_edge_cases() {
    check(show_welch(welch_t_test(&[1.0], &[1.0, 2.0])), expect!["none"]);
    check(show_welch(welch_t_test(&[1.0, 2.0], &[3.0, f64::NAN])), expect!["none"]);
    check(show_welch(welch_t_test(&[2.0, 2.0], &[2.0, 2.0, 2.0])), expect!["none"]);
    // Zero variance on both sides but different means: certain.
    check(
        show_welch(welch_t_test(&[1.0, 1.0], &[2.0, 2.0, 2.0])),
        expect!["diff=-1.000000 df=3.000000 t=-inf p=0.000000"],
    );
    // Zero variance on one side only: df is the other side's n - 1.
    check(
        show_welch(welch_t_test(&[1.0, 1.0, 1.0], &[2.0, 3.0, 4.0])),
        expect!["diff=-2.000000 df=2.000000 t=-3.464102 p=0.074180"],
    );
    // Identical samples: t = 0 and p = 1.
    check(
        show_welch(welch_t_test(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0])),
        expect!["diff=0.000000 df=4.000000 t=0.000000 p=1.000000"],
    );
}

#[test]
fn linear_fit_matches_the_reference() {
    // slope = Sxy / Sxx = 1.99, intercept = 0.05, r2 = Sxy^2 / (Sxx Syy) = 0.997305328900977.
    let Some(it) = linear_fit(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.1, 3.9, 6.2, 7.8, 10.1]) else {
        panic!("five points")
    };
    assert_close(it.slope, 1.99, 1e-13);
    assert_close(it.intercept, 0.05, 1e-13);
    assert_close(it.r2, 0.997305328900977, 1e-13);
}

#[test]
fn linear_fit_edge_cases() {
    check(
        show_fit(linear_fit(&[1.0, 2.0, 3.0], &[3.0, 5.0, 7.0])),
        expect!["slope=2.000000 intercept=1.000000 r2=1.000000"],
    );
    // Non-finite pairs are skipped, and so is what the shorter slice lacks.
    check(
        show_fit(linear_fit(
            &[1.0, f64::NAN, 2.0, 3.0, 4.0],
            &[3.0, 100.0, 5.0, f64::INFINITY, 9.0, 7.0],
        )),
        expect!["slope=2.000000 intercept=1.000000 r2=1.000000"],
    );
    check(
        show_fit(linear_fit(&[1.0, 2.0, 3.0], &[4.0, 4.0, 4.0])),
        expect!["slope=0.000000 intercept=4.000000 r2=1.000000"],
    );
    check(show_fit(linear_fit(&[0.1, 0.1, 0.1], &[1.0, 2.0, 3.0])), expect!["none"]);
    check(show_fit(linear_fit(&[1.0], &[1.0])), expect!["none"]);
    check(show_fit(linear_fit(&[], &[])), expect!["none"]);
}

#[test]
fn quantile_interpolates_linearly_between_ranks() {
    let sorted = [1.0, 2.0, 3.0, 4.0];
    let at = |q: f64| quantile(&sorted, q);
    assert_eq!([at(0.0), at(0.25), at(0.5), at(0.75), at(1.0)], [1.0, 1.75, 2.5, 3.25, 4.0]);
    assert_eq!([at(-1.0), at(2.0)], [1.0, 4.0]);
    assert!(at(f64::NAN).is_nan());
    assert!(quantile(&[], 0.5).is_nan());
    assert_eq!(quantile(&[7.0], 0.3), 7.0);
}
