//! Unit tests of PED-ANOVA importance and its bootstrap intervals.

use expect_test::{Expect, expect};
use hpo_core::distribution::{Distribution, ParamValue};
use hpo_core::study::Direction;
use hpo_core::trial::{FrozenTrial, TrialId, TrialState};

use crate::importance::{
    MIN_BANDWIDTH, ParamGrid, categorical_masses, numeric_masses, ped_anova, scott_bandwidth,
    top_cutoff,
};

/// SplitMix64: a seeded generator small enough to write out again in the Optuna script.
struct TestRng(u64);

impl TestRng {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn float(low: f64, high: f64) -> Distribution {
    Distribution::Float { low, high, log: false, step: None }
}

fn choice(choices: &[&str]) -> Distribution {
    Distribution::Categorical {
        choices: choices.iter().map(|it| ParamValue::Str((*it).to_owned())).collect(),
    }
}

fn trial(number: u64, params: Vec<(&str, ParamValue, Distribution)>, value: f64) -> FrozenTrial {
    let mut trial = FrozenTrial::new(TrialId(number as i64), number, TrialState::Complete);
    for (name, value, distribution) in params {
        trial.params.insert(name.to_owned(), value);
        trial.distributions.insert(name.to_owned(), distribution);
    }
    trial.value = Some(value);
    trial
}

/// `n_trials` trials of x and y, uniform on [0, 1], where only x moves the value:
/// `(x - 0.3)^2` plus noise of at most 1e-3.
fn x_matters_y_does_not(seed: u64, n_trials: u64) -> Vec<FrozenTrial> {
    let mut rng = TestRng(seed);
    (0..n_trials)
        .map(|number| {
            let x = rng.uniform();
            let y = rng.uniform();
            let value = (x - 0.3).powi(2) + 1e-3 * rng.uniform();
            let params = vec![
                ("x", ParamValue::Float(x), float(0.0, 1.0)),
                ("y", ParamValue::Float(y), float(0.0, 1.0)),
            ];
            trial(number, params, value)
        })
        .collect()
}

/// The study of `optuna_reference.py` below: every kind of distribution, and a
/// `momentum` that exists only when `opt` is "sgd".
fn mixed_trials(seed: u64, n_trials: u64) -> Vec<FrozenTrial> {
    let mut rng = TestRng(seed);
    let choices = ["sgd", "adam", "rmsprop"];
    (0..n_trials)
        .map(|number| {
            let x = rng.uniform();
            let u_lr = rng.uniform();
            let lr = 10f64.powf(-5.0 + 4.0 * u_lr);
            let units = 1 + (rng.uniform() * 8.0) as i64;
            let width = ((16.0 * 64f64.powf(rng.uniform())) as i64).min(1024);
            let dropout = (rng.uniform() * 6.0) as i64 as f64 * 0.1;
            let opt = choices[(rng.uniform() * 3.0) as usize];
            let mut params = vec![
                ("x", ParamValue::Float(x), float(0.0, 1.0)),
                (
                    "lr",
                    ParamValue::Float(lr),
                    Distribution::Float { low: 1e-5, high: 1e-1, log: true, step: None },
                ),
                (
                    "units",
                    ParamValue::Int(units),
                    Distribution::Int { low: 1, high: 8, log: false, step: 1 },
                ),
                (
                    "width",
                    ParamValue::Int(width),
                    Distribution::Int { low: 16, high: 1024, log: true, step: 1 },
                ),
                (
                    "dropout",
                    ParamValue::Float(dropout),
                    Distribution::Float { low: 0.0, high: 0.5, log: false, step: Some(0.1) },
                ),
                ("opt", ParamValue::Str(opt.to_owned()), choice(&choices)),
            ];
            let mut value =
                (x - 0.3).powi(2) + 0.125 * (4.0 * u_lr - 2.0).powi(2) + 0.01 * units as f64 / 8.0;
            if opt == "sgd" {
                let momentum = rng.uniform();
                params.push(("momentum", ParamValue::Float(momentum), float(0.0, 1.0)));
                value += 0.3 * (momentum - 0.9).powi(2);
            } else {
                value += if opt == "rmsprop" { 0.2 } else { 0.1 };
            }
            value += 1e-3 * rng.uniform();
            trial(number, params, value)
        })
        .collect()
}

/// Checks the importances, one `name score` line each, most important first.
#[track_caller]
fn check(trials: &[FrozenTrial], direction: Direction, expect: Expect) {
    let actual: String = ped_anova(trials, direction)
        .iter()
        .map(|importance| format!("{} {:.4}\n", importance.param, importance.score))
        .collect();
    expect.assert_eq(&actual);
}

/// Checks the importances against Optuna's to 1e-9.
#[track_caller]
fn check_against_optuna(trials: &[FrozenTrial], direction: Direction, optuna: &[(&str, f64)]) {
    let actual = ped_anova(trials, direction);
    let names: Vec<&str> = actual.iter().map(|importance| importance.param.as_str()).collect();
    let optuna_names: Vec<&str> = optuna.iter().map(|&(name, _)| name).collect();
    assert_eq!(names, optuna_names);
    for (importance, &(name, score)) in actual.iter().zip(optuna) {
        assert!(
            (importance.score - score).abs() < 1e-9,
            "{name}: {} vs Optuna's {score}",
            importance.score
        );
    }
}

#[test]
fn x_decides_the_value_so_it_ranks_first_and_y_barely_counts() {
    let trials = x_matters_y_does_not(7, 300);
    let importances = ped_anova(&trials, Direction::Minimize);
    assert_eq!(importances[0].param, "x");
    assert!(importances[0].score > 0.8, "{importances:?}");
    check(
        &trials,
        Direction::Minimize,
        expect![[r#"
            x 0.9954
            y 0.0046
        "#]],
    );
}

#[test]
fn maximizing_makes_the_highest_values_the_top_trials() {
    // The lowest values need x < 0.1, the highest need y > 0.9.
    let mut rng = TestRng(3);
    let trials: Vec<FrozenTrial> = (0..300)
        .map(|number| {
            let x = rng.uniform();
            let y = rng.uniform();
            let value = if x < 0.1 {
                -1.0
            } else if y > 0.9 {
                1.0
            } else {
                0.0
            };
            let params = vec![
                ("x", ParamValue::Float(x), float(0.0, 1.0)),
                ("y", ParamValue::Float(y), float(0.0, 1.0)),
            ];
            trial(number, params, value + 1e-3 * rng.uniform())
        })
        .collect();
    check(
        &trials,
        Direction::Minimize,
        expect![[r#"
            x 0.9959
            y 0.0041
        "#]],
    );
    check(
        &trials,
        Direction::Maximize,
        expect![[r#"
            y 0.9962
            x 0.0038
        "#]],
    );
}

#[test]
fn a_categorical_choice_that_decides_the_value_gets_the_top_score() {
    let mut rng = TestRng(5);
    let choices = ["sgd", "adam", "rmsprop"];
    let trials: Vec<FrozenTrial> = (0..300)
        .map(|number| {
            let opt = (rng.uniform() * 3.0) as usize;
            let x = rng.uniform();
            let params = vec![
                ("opt", ParamValue::Str(choices[opt].to_owned()), choice(&choices)),
                ("x", ParamValue::Float(x), float(0.0, 1.0)),
            ];
            // adam is best, then sgd, then rmsprop; x is noise.
            let value = [1.0, 0.0, 2.0][opt] + 1e-3 * rng.uniform();
            trial(number, params, value)
        })
        .collect();
    let importances = ped_anova(&trials, Direction::Minimize);
    assert_eq!(importances[0].param, "opt");
    check(
        &trials,
        Direction::Minimize,
        expect![[r#"
            opt 0.9798
            x 0.0202
        "#]],
    );
}

#[test]
fn a_conditional_parameter_is_judged_on_the_trials_that_have_it() {
    // Half the trials take branch "b" and have z; the best values need branch b and
    // z near 0.7. x is noise everywhere.
    let mut rng = TestRng(9);
    let trials: Vec<FrozenTrial> = (0..400)
        .map(|number| {
            let on_b = rng.uniform() < 0.5;
            let x = rng.uniform();
            let mut params = vec![
                (
                    "branch",
                    ParamValue::Str(if on_b { "b" } else { "a" }.to_owned()),
                    choice(&["a", "b"]),
                ),
                ("x", ParamValue::Float(x), float(0.0, 1.0)),
            ];
            let mut value = 0.5;
            if on_b {
                let z = rng.uniform();
                params.push(("z", ParamValue::Float(z), float(0.0, 1.0)));
                value = (z - 0.7).powi(2);
            }
            trial(number, params, value + 1e-3 * rng.uniform())
        })
        .collect();
    let importances = ped_anova(&trials, Direction::Minimize);
    let names: Vec<&str> = importances.iter().map(|importance| importance.param.as_str()).collect();
    assert_eq!(names, ["z", "branch", "x"]);
    check(
        &trials,
        Direction::Minimize,
        expect![[r#"
            z 0.9592
            branch 0.0354
            x 0.0054
        "#]],
    );
}

#[test]
fn matches_optuna_on_a_mixed_space_when_minimizing_and_maximizing() {
    // Reference: Optuna 5.0.0, `get_param_importances(study,
    // evaluator=PedAnovaImportanceEvaluator())` on the same trials:
    //
    // import optuna
    // from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    // from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
    //
    // MASK = (1 << 64) - 1
    //
    // class SplitMix64:
    //     def __init__(self, seed):
    //         self.state = seed
    //     def uniform(self):
    //         self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
    //         z = self.state
    //         z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    //         z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    //         z = z ^ (z >> 31)
    //         return (z >> 11) / float(1 << 53)
    //
    // def mixed_trials(seed, n_trials):
    //     rng = SplitMix64(seed)
    //     choices = ["sgd", "adam", "rmsprop"]
    //     trials = []
    //     for _ in range(n_trials):
    //         x = rng.uniform()
    //         u_lr = rng.uniform()
    //         lr = 10.0 ** (-5.0 + 4.0 * u_lr)
    //         units = 1 + int(rng.uniform() * 8)
    //         width = min(int(16.0 * 64.0 ** rng.uniform()), 1024)
    //         dropout = int(rng.uniform() * 6) * 0.1
    //         opt = choices[int(rng.uniform() * 3)]
    //         params = {"x": x, "lr": lr, "units": units, "width": width, "dropout": dropout,
    //                   "opt": opt}
    //         dists = {
    //             "x": FloatDistribution(0.0, 1.0),
    //             "lr": FloatDistribution(1e-5, 1e-1, log=True),
    //             "units": IntDistribution(1, 8),
    //             "width": IntDistribution(16, 1024, log=True),
    //             "dropout": FloatDistribution(0.0, 0.5, step=0.1),
    //             "opt": CategoricalDistribution(choices),
    //         }
    //         value = (x - 0.3) ** 2 + 0.125 * (4.0 * u_lr - 2.0) ** 2 + 0.01 * units / 8.0
    //         if opt == "sgd":
    //             momentum = rng.uniform()
    //             params["momentum"] = momentum
    //             dists["momentum"] = FloatDistribution(0.0, 1.0)
    //             value += 0.3 * (momentum - 0.9) ** 2
    //         else:
    //             value += 0.2 if opt == "rmsprop" else 0.1
    //         value += 1e-3 * rng.uniform()
    //         trials.append(optuna.trial.create_trial(params=params, distributions=dists,
    //                                                 value=value))
    //     return trials
    //
    // for direction in ["minimize", "maximize"]:
    //     study = optuna.create_study(direction=direction)
    //     study.add_trials(mixed_trials(11, 200))
    //     importances = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
    //     print(direction)
    //     for name, score in sorted(importances.items(), key=lambda it: (-it[1], it[0])):
    //         print(f"    (\"{name}\", {score!r}),")
    let trials = mixed_trials(11, 200);
    check_against_optuna(
        &trials,
        Direction::Minimize,
        &[
            ("lr", 0.41224729974066215),
            ("x", 0.3046187648575484),
            ("momentum", 0.16395499677446446),
            ("opt", 0.04832789247036206),
            ("units", 0.03097287832284915),
            ("dropout", 0.029142497078763385),
            ("width", 0.010735670755350337),
        ],
    );
    check_against_optuna(
        &trials,
        Direction::Maximize,
        &[
            ("x", 0.9467773557686742),
            ("lr", 0.019753950758578928),
            ("dropout", 0.01182091564612704),
            ("opt", 0.009462490891697579),
            ("units", 0.008323074875473692),
            ("width", 0.003602274303650214),
            ("momentum", 0.0002599377557982931),
        ],
    );
}

#[test]
fn no_trials_give_no_importances_and_one_or_two_give_zeros() {
    assert!(ped_anova::<FrozenTrial>(&[], Direction::Minimize).is_empty());
    let trials = x_matters_y_does_not(1, 2);
    check(
        &trials[..1],
        Direction::Minimize,
        expect![[r#"
            x 0.0000
            y 0.0000
        "#]],
    );
    // With two trials both are in the local set, which then equals the global one.
    check(
        &trials,
        Direction::Maximize,
        expect![[r#"
            x 0.0000
            y 0.0000
        "#]],
    );
}

#[test]
fn non_finite_values_and_trials_that_are_not_complete_are_ignored() {
    let trials = x_matters_y_does_not(7, 300);
    let expected = ped_anova(&trials, Direction::Minimize);

    let mut noisy = trials.clone();
    let mut number = noisy.len() as u64;
    let mut add = |value: f64, state: TrialState| {
        // All at x = 0.9, so they would move x's score if they were counted.
        let params = vec![
            ("x", ParamValue::Float(0.9), float(0.0, 1.0)),
            ("y", ParamValue::Float(0.5), float(0.0, 1.0)),
        ];
        let mut it = trial(number, params, value);
        it.state = state;
        noisy.push(it);
        number += 1;
    };
    for _ in 0..20 {
        add(f64::NAN, TrialState::Complete);
        add(f64::NEG_INFINITY, TrialState::Complete);
        add(-1.0, TrialState::Pruned);
        add(-1.0, TrialState::Fail);
        add(-1.0, TrialState::Running);
    }
    assert_eq!(ped_anova(&noisy, Direction::Minimize), expected);
}

#[test]
fn parameters_with_a_single_possible_value_are_left_out() {
    let mut trials = x_matters_y_does_not(2, 50);
    for it in &mut trials {
        it.params.insert("only".to_owned(), ParamValue::Str("one".to_owned()));
        it.distributions.insert("only".to_owned(), choice(&["one"]));
        it.params.insert("fixed".to_owned(), ParamValue::Int(3));
        it.distributions
            .insert("fixed".to_owned(), Distribution::Int { low: 3, high: 3, log: false, step: 1 });
    }
    let names: Vec<String> = ped_anova(&trials, Direction::Minimize)
        .into_iter()
        .map(|importance| importance.param)
        .collect();
    assert_eq!(names, ["x", "y"]);
}

#[test]
fn the_local_set_is_the_best_tenth_but_at_least_two() {
    let losses = |n: usize| (0..n).map(|it| it as f64).collect::<Vec<f64>>();
    assert_eq!(top_cutoff(losses(300)), 29.0);
    // 0.1 * 70 is 7.000000000000001 in floating point; still 7 trials.
    assert_eq!(top_cutoff(losses(70)), 6.0);
    assert_eq!(top_cutoff(losses(5)), 1.0);
    assert_eq!(top_cutoff(losses(1)), 0.0);
    assert_eq!(top_cutoff(Vec::new()), f64::NEG_INFINITY);
}

#[track_caller]
fn check_grid(distribution: Distribution, expect: Expect) {
    let actual = match ParamGrid::of(&distribution) {
        Some(ParamGrid::Numeric { first, spacing, n_points, log }) => {
            format!(
                "{n_points} points from {first:.4} by {spacing:.4}{}",
                if log { " (log)" } else { "" }
            )
        }
        Some(ParamGrid::Categorical { n_choices, .. }) => format!("{n_choices} choices"),
        None => "single value".to_owned(),
    };
    expect.assert_eq(&actual);
}

#[test]
fn grids_follow_optunas_discretization() {
    check_grid(float(0.0, 1.0), expect!["50 points from 0.0000 by 0.0204"]);
    check_grid(
        Distribution::Float { low: 1e-4, high: 1.0, log: true, step: None },
        expect!["50 points from -9.2103 by 0.1880 (log)"],
    );
    check_grid(
        Distribution::Float { low: 0.0, high: 0.5, log: false, step: Some(0.1) },
        expect!["6 points from 0.0000 by 0.1000"],
    );
    check_grid(
        Distribution::Float { low: 0.0, high: 10.0, log: false, step: Some(0.1) },
        expect!["50 points from 0.0000 by 0.2041"],
    );
    check_grid(
        Distribution::Int { low: 1, high: 8, log: false, step: 1 },
        expect!["8 points from 1.0000 by 1.0000"],
    );
    check_grid(
        Distribution::Int { low: 0, high: 100, log: false, step: 5 },
        expect!["21 points from 0.0000 by 5.0000"],
    );
    check_grid(
        Distribution::Int { low: 0, high: 999, log: false, step: 1 },
        expect!["50 points from 0.0000 by 20.3878"],
    );
    check_grid(
        Distribution::Int { low: 1, high: 1024, log: true, step: 1 },
        expect!["11 points from 0.0000 by 0.6931 (log)"],
    );
    check_grid(Distribution::Int { low: 3, high: 3, log: false, step: 1 }, expect!["single value"]);
    check_grid(float(2.0, 2.0), expect!["single value"]);
    check_grid(choice(&["a", "b", "c"]), expect!["3 choices"]);
    check_grid(choice(&["a"]), expect!["single value"]);
}

#[test]
fn values_go_to_the_nearest_grid_point_ties_to_the_lower_one() {
    let distribution = Distribution::Int { low: 0, high: 4, log: false, step: 2 };
    let Some(grid) = ParamGrid::of(&distribution) else { panic!("a three-point grid") };
    let points: Vec<Option<usize>> = [-5.0, 0.0, 0.9, 1.0, 1.1, 3.0, 4.0, 9.0, f64::NAN]
        .into_iter()
        .map(|it| grid.point_of(&ParamValue::Float(it)))
        .collect();
    assert_eq!(
        points,
        [Some(0), Some(0), Some(0), Some(0), Some(1), Some(1), Some(2), Some(2), None]
    );
    assert_eq!(grid.point_of(&ParamValue::Str("two".to_owned())), None);
}

#[test]
fn scott_bandwidth_takes_the_smaller_spread_and_has_a_floor() {
    // Two points 3 apart: std 2.1213 < IQR / 1.34 = 2.2388, so
    // 1.059 * 2.1213 * 2^(-1/5) = 1.9557.
    assert!(
        (scott_bandwidth(&[1, 0, 0, 1]) - 1.059 * 4.5f64.sqrt() * 2f64.powf(-0.2)).abs() < 1e-12
    );
    assert_eq!(scott_bandwidth(&[0, 7, 0, 0]), MIN_BANDWIDTH);
}

#[test]
fn masses_sum_to_one() {
    for counts in
        [vec![1, 0, 0, 0, 0], vec![3, 0, 2, 0, 9], vec![0; 49].into_iter().chain([5]).collect()]
    {
        let total: f64 = numeric_masses(&counts).iter().sum();
        assert!((total - 1.0).abs() < 1e-12, "{counts:?}: {total}");
        let total: f64 = categorical_masses(&counts).iter().sum();
        assert!((total - 1.0).abs() < 1e-12, "{counts:?}: {total}");
    }
}
