//! The sampler conformance suite: what every sampler that proposes from a space
//! must do, run over random search, TPE (univariate and multivariate), GP and auto
//! (`sampler_conformance_tests!`, at the end), as the storage suite is run over
//! every storage. Each sampler's own tests keep what is its alone (TPE's estimator,
//! GP's kernel, their benchmarks against random search); the grid, which walks a
//! study's list of points rather than a space, has its own in `tests.rs`.
//!
//! Every sampler: proposals lie in their domains for every kind of parameter, with
//! or without history; a conditional parameter appears exactly when its condition
//! holds; the same RNG gives the same proposal; failed, pruned and non-finite trials
//! in the history break nothing. A sampler with a model (`Kind::Model`) besides: it
//! draws what random search draws until its startup trials are in; it then moves
//! toward the better values in either direction; and a running trial at its
//! proposal moves the next proposal elsewhere.

use crate::distribution::{Distribution, ParamValue};
use crate::sampler::test_support::{assert_in_domain, float, median, param, trial};
use crate::sampler::{RandomSampler, Sampler, trial_rng};
use crate::space::{Condition, Params, SearchSpace};
use crate::study::Direction;
use crate::trial::{FrozenTrial, TrialState};

/// What a sampler under test is.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// Proposals from the seed alone, whatever the history (random search).
    Memoryless,
    /// Random search for its first `startup` complete trials, then a model.
    Model { startup: usize },
}

/// A sampler under test: how to make it for a direction, and what it is.
pub(crate) struct Subject {
    pub make: fn(Direction) -> Box<dyn Sampler>,
    pub kind: Kind,
}

impl Subject {
    fn sampler(&self) -> Box<dyn Sampler> {
        (self.make)(Direction::Minimize)
    }

    /// The complete trials a model needs before it proposes by itself (the model
    /// cases run only on samplers with one).
    fn startup(&self) -> usize {
        match self.kind {
            Kind::Model { startup } => startup,
            Kind::Memoryless => panic!("a model's case run on a sampler without a model"),
        }
    }

    /// How many complete trials a model needs before it proposes by itself (0 for
    /// the others), plus `more`.
    fn past_startup(&self, more: usize) -> usize {
        match self.kind {
            Kind::Model { startup } => startup + more,
            Kind::Memoryless => more,
        }
    }
}

/// `n` complete trials of `f` at random points of `space`.
fn random_history(space: &SearchSpace, f: impl Fn(&Params) -> f64, n: usize) -> Vec<FrozenTrial> {
    (0..n as u64)
        .map(|number| {
            let params = RandomSampler.sample(space, &[], &mut trial_rng(99, number));
            let value = f(&params);
            trial(number, TrialState::Complete, params, Some(value))
        })
        .collect()
}

fn x(params: &Params, name: &str) -> f64 {
    params[name].as_f64().unwrap()
}

/// A float, a log float, a stepped float, a stepped int, a log int and a
/// categorical of mixed types.
fn every_kind() -> SearchSpace {
    let step = |low, high, step| Distribution::Float { low, high, log: false, step: Some(step) };
    SearchSpace {
        params: vec![
            float("f", -2.0, 3.0, false),
            float("lf", 1e-5, 1e-1, true),
            param("sf", step(0.0, 0.5, 0.1)),
            param("i", Distribution::Int { low: -3, high: 9, log: false, step: 3 }),
            param("li", Distribution::Int { low: 8, high: 512, log: true, step: 1 }),
            param(
                "c",
                Distribution::Categorical {
                    choices: vec![
                        ParamValue::Str("relu".into()),
                        ParamValue::Bool(true),
                        ParamValue::Int(3),
                        ParamValue::Null,
                    ],
                },
            ),
        ],
    }
}

pub(crate) fn every_kind_of_parameter_gets_a_value_in_its_domain(subject: &Subject) {
    let space = every_kind();
    let f = |p: &Params| {
        let lf = x(p, "lf").log10() + 3.0;
        x(p, "f").powi(2) + lf * lf + x(p, "sf") + x(p, "i") * 0.1 - x(p, "li").ln() * 0.2
            + if p["c"] == ParamValue::Int(3) { 0.0 } else { 1.0 }
    };
    let sampler = subject.sampler();
    assert_in_domain(&space, &sampler.sample(&space, &[], &mut trial_rng(3, 0)));
    let mut history = random_history(&space, f, subject.past_startup(2));
    for number in history.len() as u64..history.len() as u64 + 4 {
        let params = sampler.sample(&space, &history, &mut trial_rng(3, number));
        assert_in_domain(&space, &params);
        let value = f(&params);
        history.push(trial(number, TrialState::Complete, params, Some(value)));
    }
}

pub(crate) fn conditional_parameters_appear_exactly_when_their_condition_holds(subject: &Subject) {
    let choices = vec![ParamValue::Str("adamw".into()), ParamValue::Str("sgd".into())];
    let mut momentum = float("momentum", 0.8, 0.99, false);
    momentum.condition =
        Some(Condition { parent: "optimizer".into(), values: vec![ParamValue::Str("sgd".into())] });
    let space = SearchSpace {
        params: vec![
            param("optimizer", Distribution::Categorical { choices }),
            float("lr", 1e-4, 1e-1, true),
            momentum,
        ],
    };
    let f = |p: &Params| {
        let lr = x(p, "lr").log10() + 2.0;
        lr * lr + p.get("momentum").and_then(ParamValue::as_f64).map_or(0.5, |m| 1.0 - m)
    };
    let sampler = subject.sampler();
    let mut history = random_history(&space, f, subject.past_startup(2));
    for number in history.len() as u64..history.len() as u64 + 6 {
        let params = sampler.sample(&space, &history, &mut trial_rng(5, number));
        assert_in_domain(&space, &params);
        let sgd = params["optimizer"] == ParamValue::Str("sgd".into());
        assert_eq!(params.contains_key("momentum"), sgd, "{params:?}");
        let value = f(&params);
        history.push(trial(number, TrialState::Complete, params, Some(value)));
    }
}

pub(crate) fn the_same_rng_gives_the_same_proposal(subject: &Subject) {
    let space =
        SearchSpace { params: vec![float("x0", -5.0, 10.0, false), float("x1", 0.0, 15.0, false)] };
    let history = random_history(&space, |p| x(p, "x0").powi(2), subject.past_startup(2));
    let n = history.len() as u64;
    let a = subject.sampler().sample(&space, &history, &mut trial_rng(1, n));
    let b = subject.sampler().sample(&space, &history, &mut trial_rng(1, n));
    assert_eq!(a, b);
    let c = subject.sampler().sample(&space, &history, &mut trial_rng(2, n));
    assert_ne!(a, c, "another seed, another proposal");
}

pub(crate) fn failed_pruned_and_non_finite_trials_break_nothing(subject: &Subject) {
    let space =
        SearchSpace { params: vec![float("x0", 0.0, 1.0, false), float("x1", 0.0, 1.0, false)] };
    let mut history = random_history(&space, |p| x(p, "x0"), subject.past_startup(8));
    history[2].value = Some(f64::NAN);
    history[3].value = Some(f64::INFINITY);
    history[4].value = Some(f64::NEG_INFINITY);
    history[5].state = TrialState::Fail;
    history[5].value = None;
    history[6].state = TrialState::Pruned;
    history[6].value = None;
    history[6].intermediate_values.insert(3, 0.5);
    let sampler = subject.sampler();
    let n = history.len() as u64;
    assert_in_domain(&space, &sampler.sample(&space, &history, &mut trial_rng(4, n)));
    // Every value the same: nothing may divide by their spread.
    for t in &mut history {
        if t.state == TrialState::Complete {
            t.value = Some(1.0);
        }
    }
    assert_in_domain(&space, &sampler.sample(&space, &history, &mut trial_rng(4, n + 1)));
}

pub(crate) fn before_its_startup_trials_it_draws_what_random_search_draws(subject: &Subject) {
    let startup = subject.startup();
    let space =
        SearchSpace { params: vec![float("x", 0.0, 1.0, false), float("y", 1e-4, 1.0, true)] };
    let history = random_history(&space, |p| x(p, "x"), startup.saturating_sub(1));
    for number in 0..4 {
        let random = RandomSampler.sample(&space, &[], &mut trial_rng(7, number));
        let ours = subject.sampler().sample(&space, &history, &mut trial_rng(7, number));
        assert_eq!(ours, random);
        let empty = subject.sampler().sample(&space, &[], &mut trial_rng(7, number));
        assert_eq!(empty, random);
    }
}

pub(crate) fn it_moves_toward_better_values_in_either_direction(subject: &Subject) {
    let startup = subject.startup();
    // value = x on [0, 1]: the good trials are near 1 when maximizing, near 0 when
    // minimizing.
    let space = SearchSpace { params: vec![float("x", 0.0, 1.0, false)] };
    let history: Vec<FrozenTrial> = (0..(startup + 20) as u64)
        .map(|n| {
            let v = (n as f64 * 0.618_033_988_7).fract();
            trial(
                n,
                TrialState::Complete,
                Params::from([("x".into(), ParamValue::Float(v))]),
                Some(v),
            )
        })
        .collect();
    let n = history.len() as u64;
    let proposals = |direction| -> f64 {
        let sampler = (subject.make)(direction);
        median(
            (0..9u64)
                .map(|k| x(&sampler.sample(&space, &history, &mut trial_rng(k, n)), "x"))
                .collect(),
        )
    };
    assert!(proposals(Direction::Maximize) > 0.7, "maximizing");
    assert!(proposals(Direction::Minimize) < 0.3, "minimizing");
}

pub(crate) fn a_running_trial_at_its_proposal_moves_the_next_one(subject: &Subject) {
    subject.startup();
    let space =
        SearchSpace { params: vec![float("x0", 0.0, 1.0, false), float("x1", 0.0, 1.0, false)] };
    let f = |p: &Params| (x(p, "x0") - 0.3).powi(2) + (x(p, "x1") - 0.6).powi(2);
    let mut history = random_history(&space, f, subject.past_startup(4));
    let n = history.len() as u64;
    let sampler = subject.sampler();
    let first = sampler.sample(&space, &history, &mut trial_rng(6, n));
    history.push(trial(n, TrialState::Running, first.clone(), None));
    let second = sampler.sample(&space, &history, &mut trial_rng(6, n));
    let distance = (x(&first, "x0") - x(&second, "x0")).hypot(x(&first, "x1") - x(&second, "x1"));
    assert!(distance > 1e-3, "{first:?} then {second:?}");
}

/// The suite as a module `$name` of tests for the sampler `$subject` (a
/// [`Subject`]); `model` adds the cases of a sampler with a model.
macro_rules! sampler_conformance_tests {
    ($name:ident: $subject:expr) => {
        $crate::sampler::conformance::sampler_conformance_tests!(@module $name, $subject;);
    };
    ($name:ident: $subject:expr, model) => {
        $crate::sampler::conformance::sampler_conformance_tests!(@module $name, $subject;
            before_its_startup_trials_it_draws_what_random_search_draws,
            it_moves_toward_better_values_in_either_direction,
            a_running_trial_at_its_proposal_moves_the_next_one,
        );
    };
    (@module $name:ident, $subject:expr; $($extra:ident),* $(,)?) => {
        mod $name {
            use super::*;
            $crate::sampler::conformance::sampler_conformance_tests!(@cases $subject;
                every_kind_of_parameter_gets_a_value_in_its_domain,
                conditional_parameters_appear_exactly_when_their_condition_holds,
                the_same_rng_gives_the_same_proposal,
                failed_pruned_and_non_finite_trials_break_nothing,
                $($extra,)*
            );
        }
    };
    (@cases $subject:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::sampler::conformance::$case(&$subject);
            }
        )*
    };
}
pub(crate) use sampler_conformance_tests;

mod subjects {
    use super::{Kind, Subject};
    use crate::sampler::auto::STARTUP_TRIALS;
    use crate::sampler::gp::{GpConfig, GpSampler};
    use crate::sampler::tpe::{TpeConfig, TpeSampler};
    use crate::sampler::{AutoSampler, RandomSampler};

    fn tpe() -> Kind {
        Kind::Model { startup: TpeConfig::default().startup_trials }
    }

    sampler_conformance_tests!(random: Subject { make: |_| Box::new(RandomSampler), kind: Kind::Memoryless });
    sampler_conformance_tests!(
        tpe: Subject {
            make: |direction| Box::new(TpeSampler { config: TpeConfig::default(), direction }),
            kind: tpe(),
        },
        model
    );
    sampler_conformance_tests!(
        tpe_multivariate: Subject {
            make: |direction| {
                let config = TpeConfig { multivariate: true, ..TpeConfig::default() };
                Box::new(TpeSampler { config, direction })
            },
            kind: tpe(),
        },
        model
    );
    sampler_conformance_tests!(
        gp: Subject {
            make: |direction| Box::new(GpSampler { config: GpConfig::default(), direction }),
            kind: Kind::Model { startup: GpConfig::default().startup_trials },
        },
        model
    );
    sampler_conformance_tests!(
        auto: Subject {
            make: |direction| Box::new(AutoSampler { direction }),
            kind: Kind::Model { startup: STARTUP_TRIALS },
        },
        model
    );
}
