//! Unit tests every sampler passes: proposals in the domain, conditions, seeds.

use std::collections::BTreeSet;

use super::*;
use crate::distribution::{Distribution, ParamValue};
use crate::sampler::test_support::assert_in_domain;
use crate::spec::StudySpec;

fn space(text: &str) -> SearchSpace {
    let file = format!(
        "[study]\nname = \"s\"\nmetric = \"m\"\ndirection = \"minimize\"\ntrials = 1\n[objective]\nkind = \"candle\"\nmodel = \"mlp\"\ndataset = \"digits\"\nmax_epochs = 1\n[space]\n{text}"
    );
    StudySpec::parse(&file, "s.toml").unwrap().space
}

#[test]
fn random_draws_stay_in_their_domains() {
    let space = space(
        r#"
lr = { float = [1e-4, 1e-1], log = true }
dropout = { float = [0.0, 0.5], step = 0.1 }
hidden = { int = [16, 512], log = true }
k = { int = [1, 9], step = 2 }
act = { choice = ["relu", "tanh", true, 3] }
"#,
    );
    let mut seen_k = BTreeSet::new();
    let mut seen_act = BTreeSet::new();
    let mut log_low_half = 0;
    for number in 0..2000 {
        let params = RandomSampler.sample(&space, &[], &mut trial_rng(1, number));
        assert_in_domain(&space, &params);
        seen_k.insert(params["k"].as_i64().unwrap());
        seen_act.insert(params["act"].to_string());
        // Log-uniform: half the draws fall below the geometric mean (~3.2e-3).
        if params["lr"].as_f64().unwrap() < (1e-4f64 * 1e-1).sqrt() {
            log_low_half += 1;
        }
        let dropout = params["dropout"].as_f64().unwrap();
        assert!(
            [0.0, 0.1, 0.2, 0.3, 0.4, 0.5].contains(&dropout),
            "{dropout} is not on the step grid"
        );
    }
    assert_eq!(seen_k, BTreeSet::from([1, 3, 5, 7, 9]));
    assert_eq!(seen_act.len(), 4);
    assert!((900..1100).contains(&log_low_half), "log-uniform halves: {log_low_half}");
}

#[test]
fn conditional_parameters_appear_only_under_their_condition() {
    let space = space(
        r#"
optimizer = { choice = ["adamw", "sgd"] }
momentum = { float = [0.8, 0.99], when = { optimizer = "sgd" } }
nesterov = { choice = [true, false], when = { optimizer = "sgd" } }
"#,
    );
    let mut n_sgd = 0;
    for number in 0..200 {
        let params = RandomSampler.sample(&space, &[], &mut trial_rng(3, number));
        let sgd = params["optimizer"] == ParamValue::Str("sgd".into());
        n_sgd += usize::from(sgd);
        assert_eq!(params.contains_key("momentum"), sgd);
        assert_eq!(params.contains_key("nesterov"), sgd);
    }
    assert!((60..140).contains(&n_sgd));
}

#[test]
fn same_seed_and_number_give_the_same_parameters() {
    let space = space("x = { float = [0, 1] }\ny = { int = [0, 100] }\n");
    let draw = |seed, number| RandomSampler.sample(&space, &[], &mut trial_rng(seed, number));
    assert_eq!(draw(42, 7), draw(42, 7));
    assert_ne!(draw(42, 7), draw(42, 8));
    assert_ne!(draw(42, 7), draw(43, 7));
}

#[test]
fn grid_order_is_nested_loops_with_the_last_parameter_fastest() {
    let space = space(
        r#"
optimizer = { choice = ["adamw", "sgd"] }
momentum = { float = [0.8, 0.9], step = 0.1, when = { optimizer = "sgd" } }
depth = { int = [1, 2] }
"#,
    );
    let points: Vec<String> = grid::grid_points(&space)
        .iter()
        .map(|p| p.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        points,
        [
            "depth=1 optimizer=\"adamw\"",
            "depth=2 optimizer=\"adamw\"",
            "depth=1 momentum=0.8 optimizer=\"sgd\"",
            "depth=2 momentum=0.8 optimizer=\"sgd\"",
            "depth=1 momentum=0.9 optimizer=\"sgd\"",
            "depth=2 momentum=0.9 optimizer=\"sgd\"",
        ]
    );
    assert_eq!(grid::count_points(&space), 6);
}

#[test]
fn grid_sampler_picks_the_first_point_not_taken() {
    let space = space("a = { int = [1, 3] }\n");
    let mut history = Vec::new();
    let mut seen = Vec::new();
    for number in 0..3u64 {
        let params = GridSampler.sample(&space, &history, &mut trial_rng(0, number));
        seen.push(params["a"].as_i64().unwrap());
        let mut trial = crate::trial::FrozenTrial::new(
            crate::trial::TrialId(number as i64),
            number,
            crate::trial::TrialState::Complete,
        );
        trial.params = params;
        trial.value = Some(0.0);
        history.push(trial);
    }
    assert_eq!(seen, [1, 2, 3]);
}

#[test]
fn stepped_float_grid_has_exact_values() {
    let d = Distribution::Float { low: 0.0, high: 0.5, log: false, step: Some(0.1) };
    let values: Vec<f64> = d.enumerate().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(values, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]);
}
