//! GP sampler: its numerical pieces against their definitions, its behaviour on
//! every kind of parameter, and that it beats random search where it should.

use rand::SeedableRng;

use super::*;
use crate::functions::BenchmarkFunction;
use crate::sampler::test_support::{median, optimize, param, trial};
use crate::sampler::{RandomSampler, trial_rng};
use crate::space::Condition;

fn float(name: &str, low: f64, high: f64) -> ParamDef {
    crate::sampler::test_support::float(name, low, high, false)
}

fn gp(direction: Direction) -> GpSampler {
    GpSampler { config: GpConfig::default(), direction }
}

/// `n` complete trials of `f` at random points.
fn random_history(space: &SearchSpace, f: impl Fn(&Params) -> f64, n: u64) -> Vec<FrozenTrial> {
    (0..n)
        .map(|number| {
            let params = RandomSampler.sample(space, &[], &mut trial_rng(99, number));
            let value = f(&params);
            trial(number, TrialState::Complete, params, Some(value))
        })
        .collect()
}

fn x0(params: &Params) -> f64 {
    params["x0"].as_f64().unwrap()
}

fn std_normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / SQRT_2)
}

#[test]
fn log_h_matches_the_closed_form_and_stays_finite_in_the_far_tail() {
    for z in [-5.0f64, -2.0, -1.0, -0.999, -0.3, 0.0, 0.7, 3.0, 10.0] {
        let pdf = (-0.5 * z * z).exp() / (2.0 * PI).sqrt();
        let h: f64 = pdf + z * std_normal_cdf(z);
        let (value, slope) = log_h(z);
        assert!(
            (value - h.ln()).abs() < 1e-9 * h.ln().abs().max(1.0),
            "z={z}: {value} vs {}",
            h.ln()
        );
        assert!((slope - std_normal_cdf(z) / h).abs() < 1e-7 * slope.max(1.0), "z={z}: {slope}");
    }
    // Around the switch to the asymptotic series, both sides agree.
    let (below, _) = log_h(-30.0 - 1e-9);
    let (above, _) = log_h(-30.0 + 1e-9);
    assert!((below - above).abs() < 1e-7, "{below} vs {above}");
    // Far in the tail: finite, decreasing, close to -z^2/2 - ln(2 pi)/2 - 2 ln|z|.
    let mut last = f64::INFINITY;
    for z in [-40.0, -1e3, -1e6, -1e9] {
        let (value, slope) = log_h(z);
        let approx = -0.5 * z * z - 0.5 * (2.0 * PI).ln() - 2.0 * (-z).ln();
        assert!(value.is_finite() && slope.is_finite() && value < last, "z={z}");
        assert!((value - approx).abs() < 1e-2 * approx.abs(), "z={z}: {value} vs {approx}");
        last = value;
    }
    // The derivative matches finite differences on both branches.
    for z in [-35.0, -12.0, -1.5, 0.5] {
        let eps = 1e-5;
        let numeric = (log_h(z + eps).0 - log_h(z - eps).0) / (2.0 * eps);
        assert!((numeric - log_h(z).1).abs() < 1e-5 * numeric.abs().max(1.0), "z={z}");
    }
}

#[test]
fn the_branch_free_exp_matches_std_within_a_few_ulps() {
    let mut x = 0.0;
    while x > -708.0 {
        let (ours, std) = (exp_neg(x), x.exp());
        assert!((ours - std).abs() <= 4.0 * f64::EPSILON * std, "exp({x}): {ours} vs {std}");
        x -= 0.0137;
    }
    assert_eq!(exp_neg(0.0), 1.0);
    assert!(exp_neg(-1e6) < 1e-300 && exp_neg(-1e6) >= 0.0);
}

#[test]
fn the_fit_objectives_gradient_matches_finite_differences() {
    let mut rng = StdRng::seed_from_u64(5);
    let dims = 3;
    let n = 12;
    let x: Vec<f64> = (0..n * dims).map(|_| rng.random::<f64>()).collect();
    let y: Vec<f64> = (0..n).map(|i| (x[i * dims] * 6.0).sin() + x[i * dims + 1]).collect();
    let data = FitData::new(&x, y, dims);
    let raw = vec![0.3, -0.5, 1.2, 0.2, (0.05f64).ln()];
    let (_, grad) = data.objective(&raw).unwrap();
    for t in 0..raw.len() {
        let eps = 1e-6;
        let mut up = raw.clone();
        up[t] += eps;
        let mut down = raw.clone();
        down[t] -= eps;
        let numeric =
            (data.objective(&up).unwrap().0 - data.objective(&down).unwrap().0) / (2.0 * eps);
        assert!(
            (numeric - grad[t]).abs() < 1e-4 * numeric.abs().max(1.0),
            "{t}: {numeric} vs {}",
            grad[t]
        );
    }
}

#[test]
fn the_posterior_interpolates_and_its_gradients_match_finite_differences() {
    let dims = 2;
    let x = vec![0.1, 0.2, 0.8, 0.5, 0.4, 0.9, 0.6, 0.1];
    let y = vec![1.0, -0.5, 0.3, -1.2];
    let kernel = Kernel { inv_sq_lengthscales: vec![3.0, 1.5], scale: 1.3, noise: 1e-6 };
    let posterior = Posterior::new(x.clone(), &y, dims, kernel).unwrap();
    let (means, vars) = posterior.mean_var(&x);
    for i in 0..y.len() {
        assert!((means[i] - y[i]).abs() < 1e-4, "{i}: {} vs {}", means[i], y[i]);
        assert!(vars[i] < 1e-4);
    }
    let p = [0.3, 0.55];
    let (mean, var, dmean, dvar) = posterior.mean_var_grad(&p, &[0, 1]);
    let (batch_means, batch_vars) = posterior.mean_var(&p);
    assert!((mean - batch_means[0]).abs() < 1e-12 && (var - batch_vars[0]).abs() < 1e-12);
    for dim in 0..2 {
        let eps = 1e-6;
        let mut up = p;
        up[dim] += eps;
        let mut down = p;
        down[dim] -= eps;
        let (mu, vu) = posterior.mean_var(&up);
        let (md, vd) = posterior.mean_var(&down);
        assert!(((mu[0] - md[0]) / (2.0 * eps) - dmean[dim]).abs() < 1e-5);
        assert!(((vu[0] - vd[0]) / (2.0 * eps) - dvar[dim]).abs() < 1e-5);
    }
}

#[test]
fn encoding_round_trips_every_grid_value() {
    let params = [
        param("s", Distribution::Float { low: 0.0, high: 0.5, log: false, step: Some(0.1) }),
        param("i", Distribution::Int { low: -3, high: 9, log: false, step: 3 }),
        param("l", Distribution::Int { low: 1, high: 64, log: true, step: 1 }),
    ];
    let refs: Vec<&ParamDef> = params.iter().collect();
    let encoding = Encoding::new(&refs);
    for (coord, p) in encoding.coords.iter().zip(&params) {
        for value in p.distribution.enumerate().unwrap() {
            let mut x = vec![0.0; encoding.dims];
            coord.encode(&value, &mut x).unwrap();
            assert!((0.0..=1.0).contains(&x[coord.dim]));
            assert!(coord.decode(&x).same_as(&value), "{} {value}", p.name);
        }
        // The ends of [0, 1] decode to the bounds.
        let grid = p.distribution.enumerate().unwrap();
        let mut x = vec![0.0; encoding.dims];
        assert!(coord.decode(&x).same_as(&grid[0]));
        x[coord.dim] = 1.0;
        assert!(coord.decode(&x).same_as(grid.last().unwrap()));
    }
}

#[test]
fn only_usable_values_count_toward_its_startup_and_equal_values_divide_by_nothing() {
    let space = SearchSpace { params: vec![float("x0", 0.0, 1.0), float("x1", 0.0, 1.0)] };
    let mut history = random_history(&space, x0, 14);
    // Five unusable trials: three non-finite values, a failed and a pruned trial.
    for (i, value) in [(2, f64::NAN), (5, f64::INFINITY), (6, f64::NEG_INFINITY)] {
        history[i].value = Some(value);
    }
    (history[7].state, history[7].value) = (TrialState::Fail, None);
    history[8].state = TrialState::Pruned;
    // 9 usable trials: still random search.
    let before = gp(Direction::Minimize).sample(&space, &history, &mut trial_rng(4, 14));
    assert_eq!(before, RandomSampler.sample(&space, &[], &mut trial_rng(4, 14)));
    // One more and the GP takes over, ignoring the others.
    history.extend(random_history(&space, x0, 16).into_iter().skip(14).map(|mut t| {
        t.number += 100;
        t
    }));
    let params = gp(Direction::Minimize).sample(&space, &history, &mut trial_rng(4, 16));
    assert!((0.0..=1.0).contains(&x0(&params)));
    // Every value the same: the standardization must not divide by zero.
    for t in &mut history {
        t.value = Some(1.0);
    }
    let params = gp(Direction::Minimize).sample(&space, &history, &mut trial_rng(4, 17));
    assert!((0.0..=1.0).contains(&x0(&params)));
}

#[test]
fn small_discrete_spaces_are_searched_through_their_choices_and_grid_steps() {
    let choices: Vec<ParamValue> = ["a", "b", "c"].map(|c| ParamValue::Str(c.into())).to_vec();
    let space = SearchSpace {
        params: vec![
            param("c", Distribution::Categorical { choices }),
            param("k", Distribution::Int { low: 0, high: 8, log: false, step: 1 }),
        ],
    };
    let f = |p: &Params| {
        let k = p["k"].as_f64().unwrap();
        (k - 6.0).powi(2) + if p["c"].as_str() == Some("b") { 0.0 } else { 5.0 }
    };
    let mut history = random_history(&space, f, 10);
    let mut found = false;
    for number in 10..18 {
        let params = gp(Direction::Minimize).sample(&space, &history, &mut trial_rng(9, number));
        let value = f(&params);
        found |= value == 0.0;
        history.push(trial(number, TrialState::Complete, params, Some(value)));
    }
    assert!(found, "never proposed c = b, k = 6");
}

#[test]
fn one_observation_is_enough_when_startup_is_zero_and_huge_values_fall_back() {
    let space = SearchSpace { params: vec![float("x0", 0.0, 1.0)] };
    let sampler = GpSampler {
        config: GpConfig { startup_trials: 0, ..GpConfig::default() },
        direction: Direction::Minimize,
    };
    let empty = sampler.sample(&space, &[], &mut trial_rng(1, 0));
    assert_eq!(empty, RandomSampler.sample(&space, &[], &mut trial_rng(1, 0)));
    let mut history = random_history(&space, x0, 1);
    let params = sampler.sample(&space, &history, &mut trial_rng(1, 1));
    assert!((0.0..=1.0).contains(&x0(&params)));
    // Values whose variance overflows: random search instead of NaNs.
    history = random_history(&space, |p| f64::MAX * (x0(p) - 0.5).signum(), 4);
    let params = sampler.sample(&space, &history, &mut trial_rng(1, 5));
    assert_eq!(params, RandomSampler.sample(&space, &[], &mut trial_rng(1, 5)));
}

#[test]
fn conditional_parameters_are_drawn_only_when_active() {
    let mut momentum = float("momentum", 0.8, 0.99);
    momentum.condition =
        Some(Condition { parent: "opt".into(), values: vec![ParamValue::Str("sgd".into())] });
    let space = SearchSpace {
        params: vec![
            param(
                "opt",
                Distribution::Categorical {
                    choices: vec![ParamValue::Str("adam".into()), ParamValue::Str("sgd".into())],
                },
            ),
            float("x0", 0.0, 1.0),
            momentum,
        ],
    };
    let f = |p: &Params| x0(p) + p.get("momentum").and_then(ParamValue::as_f64).unwrap_or(0.5);
    let history = random_history(&space, f, 12);
    for number in 12..15 {
        let params = gp(Direction::Minimize).sample(&space, &history, &mut trial_rng(2, number));
        let sgd = params["opt"] == ParamValue::Str("sgd".into());
        assert_eq!(params.contains_key("momentum"), sgd);
        if sgd {
            assert!((0.8..=0.99).contains(&params["momentum"].as_f64().unwrap()));
        }
    }
}

/// The optimizer branches of a tuning space: `opt` chooses adam or sgd, each with a
/// learning rate of its own (`lr_adam`, `lr_sgd`), and `x0` for both.
fn branch_space() -> SearchSpace {
    let when = |choice: &str| Condition {
        parent: "opt".into(),
        values: vec![ParamValue::Str(choice.into())],
    };
    let (mut lr_adam, mut lr_sgd) = (float("lr_adam", 0.0, 1.0), float("lr_sgd", 0.0, 1.0));
    lr_adam.condition = Some(when("adam"));
    lr_sgd.condition = Some(when("sgd"));
    let opt = Distribution::Categorical {
        choices: vec![ParamValue::Str("adam".into()), ParamValue::Str("sgd".into())],
    };
    SearchSpace { params: vec![param("opt", opt), float("x0", 0.0, 1.0), lr_adam, lr_sgd] }
}

#[test]
fn an_inactive_parameter_is_encoded_apart_from_every_active_value_and_decoded_as_absent() {
    let space = branch_space();
    let refs: Vec<&ParamDef> = space.params.iter().collect();
    let encoding = Encoding::new(&refs);
    let trial =
        random_history(&space, x0, 6).into_iter().find(|t| t.params.contains_key("lr_adam"));
    let params = trial.expect("a trial on the adam branch").params;
    let x = encoding.encode(&params).unwrap();
    let (adam, sgd) = (&encoding.coords[2], &encoding.coords[3]);
    assert!((0.0..=1.0).contains(&x[adam.dim]));
    assert_eq!(x[sgd.dim], INACTIVE);
    assert_eq!(encoding.decode(&x), params);
    // Switching the branch and snapping makes the other rate active, mid-range.
    let mut y = x.clone();
    y[encoding.coords[0].dim..encoding.coords[0].dim + 2].copy_from_slice(&[0.0, 1.0]);
    encoding.snap(&mut y);
    assert_eq!((y[adam.dim], y[sgd.dim]), (INACTIVE, 0.5));
    assert_eq!(encoding.numeric_dims(Some(&y)), [encoding.coords[1].dim, sgd.dim]);
}

#[test]
fn a_conditional_parameter_is_modelled_on_the_trials_of_its_branch() {
    // adam is better, best at lr_adam = 0.8; sgd at best 0.5 worse.
    let f = |p: &Params| {
        let rate = |name: &str| p.get(name).and_then(ParamValue::as_f64);
        0.1 * x0(p)
            + match (rate("lr_adam"), rate("lr_sgd")) {
                (Some(lr), _) => (lr - 0.8).powi(2),
                (_, Some(lr)) => 0.5 + (lr - 0.2).powi(2),
                _ => unreachable!("one branch is active"),
            }
    };
    let space = branch_space();
    let mut near = 0;
    for seed in 0..6u64 {
        let history: Vec<FrozenTrial> = (0..24)
            .map(|number| {
                let params = RandomSampler.sample(&space, &[], &mut trial_rng(seed, number));
                let value = f(&params);
                trial(number, TrialState::Complete, params, Some(value))
            })
            .collect();
        let params = gp(Direction::Minimize).sample(&space, &history, &mut trial_rng(seed, 24));
        let lr = params.get("lr_adam").and_then(ParamValue::as_f64);
        near += usize::from(lr.is_some_and(|lr| (lr - 0.8).abs() < 0.15));
    }
    // Drawn at random, lr_adam would land within 0.15 of 0.8 on the adam branch in
    // about 15% of proposals.
    assert!(near >= 5, "{near} of 6 proposals took adam with a rate near 0.8");
}

/// GP (a cheaper configuration, for the debug build) against random search over
/// 20 seeds of `trials` trials: its median regret must be below random's divided
/// by `factor`.
fn beats_random(function: BenchmarkFunction, space: SearchSpace, trials: u64, factor: f64) {
    let f = |p: &Params| function.evaluate(p);
    let sampler = GpSampler {
        config: GpConfig { startup_trials: 10, candidates: 256, restarts: 1 },
        direction: Direction::Minimize,
    };
    let space = &space;
    let regret = |sampler: &dyn Sampler| {
        let runs: Vec<f64> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..20)
                .map(|seed| scope.spawn(move || optimize(sampler, space, f, trials, seed)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        median(runs.into_iter().map(|best| best - function.optimum()).collect())
    };
    let ours = regret(&sampler);
    let random = regret(&RandomSampler);
    assert!(
        ours < random / factor,
        "{}: GP median regret {ours} vs random {random}",
        function.name()
    );
}

#[test]
fn gp_beats_random_search_on_branin() {
    beats_random(
        BenchmarkFunction::Branin,
        SearchSpace { params: vec![float("x0", -5.0, 10.0), float("x1", 0.0, 15.0)] },
        25,
        10.0,
    );
}

#[test]
fn gp_beats_random_search_on_hartmann6() {
    beats_random(
        BenchmarkFunction::Hartmann6,
        SearchSpace { params: (0..6).map(|i| float(&format!("x{i}"), 0.0, 1.0)).collect() },
        40,
        3.0,
    );
}

#[test]
fn heavy_tailed_values_are_modelled_in_log_space_and_bunched_ones_as_they_are() {
    // Values over six orders of magnitude (as rosenbrock's): the log wins, keeps the
    // order, and stays finite at the minimum.
    let spread: Vec<f64> = (0..40).map(|i| 10f64.powf(i as f64 / 6.5)).collect();
    let warped = warp_outputs(&spread);
    assert!(warped.windows(2).all(|w| w[0] < w[1]), "monotone");
    assert!(warped.iter().all(|v| v.is_finite()));
    let ratio = (warped[39] - warped[20]) / (warped[20] - warped[0]);
    assert!(ratio < 10.0, "the top no longer dwarfs the rest: {ratio}");
    // Roughly symmetric values (evenly spaced) stay as they are.
    let even: Vec<f64> = (0..40).map(|i| -3.0 + 0.1 * i as f64).collect();
    assert_eq!(warp_outputs(&even), even);
    // Half the values tie with the best: nothing to warp.
    let ties = [1.0, 1.0, 1.0, 5.0];
    assert_eq!(warp_outputs(&ties), ties);
}
