//! The auto sampler's choices: a table of spaces and histories and the model each
//! gets, and proposals that are the chosen model's.

use super::*;
use crate::distribution::ParamValue;
use crate::sampler::test_support::{float, param, trial};
use crate::sampler::trial_rng;
use crate::space::{Condition, ParamDef};

fn choice_of(name: &str, n: usize) -> ParamDef {
    let choices = (0..n).map(|i| ParamValue::Str(format!("{name}{i}"))).collect();
    param(name, Distribution::Categorical { choices })
}

fn when(mut def: ParamDef, parent: &str, value: &str) -> ParamDef {
    def.condition =
        Some(Condition { parent: parent.into(), values: vec![ParamValue::Str(value.into())] });
    def
}

fn floats(n: usize) -> Vec<ParamDef> {
    (0..n).map(|i| float(&format!("x{i}"), 0.0, 1.0, false)).collect()
}

/// `complete` complete trials at random points of `space`, then a running one.
fn history(space: &SearchSpace, complete: u64) -> Vec<FrozenTrial> {
    let mut trials: Vec<FrozenTrial> = (0..complete)
        .map(|n| {
            let params = RandomSampler.sample(space, &[], &mut trial_rng(5, n));
            trial(n, TrialState::Complete, params, Some(n as f64))
        })
        .collect();
    let running = RandomSampler.sample(space, &[], &mut trial_rng(5, complete));
    trials.push(trial(complete, TrialState::Running, running, None));
    trials
}

fn chosen(params: Vec<ParamDef>, complete: u64) -> Model {
    let space = SearchSpace { params };
    let history = history(&space, complete);
    let refs: Vec<&FrozenTrial> = history.iter().collect();
    AutoSampler { direction: Direction::Minimize }.choose(&space, &refs).model
}

#[test]
fn each_kind_of_space_and_history_gets_its_model() {
    let conditional = || {
        vec![
            choice_of("opt", 2),
            float("lr", 1e-5, 1.0, true),
            when(float("momentum", 0.0, 0.99, false), "opt", "opt1"),
            when(float("beta1", 0.8, 0.999, false), "opt", "opt0"),
        ]
    };
    let mixed = || {
        let mut params = floats(4);
        params.push(choice_of("c", 3));
        params.push(param("k", Distribution::Int { low: -5, high: 10, log: false, step: 1 }));
        params
    };
    let table: Vec<(&str, Vec<ParamDef>, u64, Model)> = vec![
        ("5 floats, 9 trials", floats(5), 9, Model::Random),
        ("5 floats, 10 trials", floats(5), 10, Model::Gp),
        ("5 floats, 299 trials", floats(5), 299, Model::Gp),
        ("5 floats, 300 trials", floats(5), 300, Model::Tpe),
        ("20 floats", floats(20), 50, Model::Gp),
        ("21 floats", floats(21), 50, Model::Tpe),
        ("4 floats, a categorical and an int", mixed(), 30, Model::Gp),
        ("an optimizer with its own settings (2 of 4 conditional)", conditional(), 30, Model::Gp),
        ("one categorical of 25 choices", vec![choice_of("c", 25)], 30, Model::Tpe),
        (
            "mostly categorical",
            vec![choice_of("a", 2), choice_of("b", 3), float("x", 0.0, 1.0, false)],
            30,
            Model::Tpe,
        ),
        (
            "a deep tree",
            vec![
                choice_of("model", 2),
                when(choice_of("act", 2), "model", "model0"),
                when(float("slope", 0.0, 0.3, false), "act", "act1"),
                when(float("depth", 1.0, 8.0, false), "model", "model0"),
                when(float("width", 1.0, 8.0, false), "model", "model1"),
                float("lr", 1e-5, 1.0, true),
                float("wd", 1e-6, 1e-2, true),
            ],
            30,
            Model::Tpe,
        ),
    ];
    for (what, params, complete, model) in table {
        assert_eq!(chosen(params, complete), model, "{what}");
    }
}

#[test]
fn it_proposes_what_the_chosen_model_proposes_and_explains_it() {
    let space = SearchSpace { params: floats(3) };
    let auto = AutoSampler { direction: Direction::Minimize };
    for (complete, model) in [(4, Model::Random), (12, Model::Gp)] {
        let history = history(&space, complete);
        let refs: Vec<&FrozenTrial> = history.iter().collect();
        let ours = auto.sample(&space, &history, &mut trial_rng(3, complete + 1));
        let theirs = auto.sampler(model).sample(&space, &history, &mut trial_rng(3, complete + 1));
        assert_eq!(ours, theirs, "{model:?}");
        let why = auto.explain(&space, &refs).unwrap();
        assert!(why.starts_with(&format!("{}: ", model.name())), "{why}");
    }
    let why = auto.explain(&space, &[]).unwrap();
    assert_eq!(
        why,
        "random: 0 of the first 10 complete trials, which are drawn at random before a model is fitted"
    );
}
