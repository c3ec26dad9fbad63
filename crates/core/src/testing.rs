//! The conformance suite every Storage must pass, and studies other crates' tests
//! share (feature `testing`).
//!
//! Use the suite from an implementation's tests with
//! `hpo_core::storage_conformance_tests!(|| MyStorage::open_temp());` — it expands
//! to one `#[test]` per case. Each case takes a fresh, empty storage.

use std::collections::BTreeSet;

use crate::distribution::{Distribution, ParamValue};
use crate::error::Error;
use crate::pruner::Verdict;
use crate::storage::{NewStudy, NewTrial, ReportedStep, Storage, StudyCopy};
use crate::study::{Direction, StudyId};
use crate::trial::{AttrValue, MetricPoint, TrialState, attr};

/// Expands to one test per conformance case for the storage `make` returns.
#[macro_export]
macro_rules! storage_conformance_tests {
    ($make:expr) => {
        $crate::storage_conformance_tests!(@cases $make;
            study_create_find_and_duplicate,
            trial_numbers_are_sequential,
            params_round_trip,
            reports_and_curves_round_trip,
            study_curves_agree_with_trial_curves,
            finished_trials_are_immutable,
            values_round_trip_including_infinities,
            outcomes_agree_with_trials,
            steps_past_the_largest_are_refused,
            budget_limits_creation,
            interrupted_failures_do_not_count,
            confirm_runs_do_not_count,
            queued_trials_are_claimed_in_order,
            queued_retries_are_claimed_first_in_grid_order,
            attrs_round_trip,
            study_user_attrs_round_trip,
            pruner_verdicts_round_trip,
            trials_at_step_hold_the_points_around_the_step,
            list_studies_counts_and_best,
            state_filter,
            heartbeats,
            fail_and_enqueue_happen_together_once,
            end_trial_sets_results_and_state_together,
            steps_are_written_in_batches,
            proposals_are_stored_with_their_trial,
            concurrent_creation_respects_budget,
            a_copied_study_reads_back_whole,
            dropped_curves_leave_the_trials_whole,
            several_objectives_round_trip,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let storage = ($make)();
                $crate::testing::$case(&storage);
            }
        )*
    };
}

fn study(storage: &dyn Storage, name: &str) -> StudyId {
    storage
        .create_study(&NewStudy {
            name: name.into(),
            directions: vec![Direction::Minimize],
            metrics: vec!["value".into()],
            spec_text: None,
            queued: Vec::new(),
        })
        .expect("create study")
}

fn float(low: f64, high: f64) -> Distribution {
    Distribution::Float { low, high, log: false, step: None }
}

fn run_one(storage: &dyn Storage, study: StudyId, value: f64) -> crate::trial::FrozenTrial {
    let trial = storage.create_running_trial(study, None, &[]).unwrap().unwrap();
    storage
        .set_trial_params(trial.id, &[("x".into(), ParamValue::Float(value), float(-100.0, 100.0))])
        .unwrap();
    storage.finish_trial(trial.id, TrialState::Complete, &[value]).unwrap();
    storage.trial(trial.id).unwrap()
}

/// A created study is found by name with its direction and metric; creating a second
/// study of the same name fails with [`Error::StudyExists`].
pub fn study_create_find_and_duplicate(storage: &dyn Storage) {
    let id = study(storage, "a");
    let found = storage.find_study("a").unwrap().expect("found");
    assert_eq!(found.id, id);
    assert_eq!(found.direction, Direction::Minimize);
    assert_eq!(found.metric.as_deref(), Some("value"));
    assert!(storage.find_study("b").unwrap().is_none());
    let dup = storage.create_study(&NewStudy {
        name: "a".into(),
        directions: vec![Direction::Maximize],
        metrics: Vec::new(),
        spec_text: None,
        queued: Vec::new(),
    });
    assert!(matches!(dup, Err(Error::StudyExists(name)) if name == "a"));
}

/// Trials are numbered 0, 1, 2, ... per study, start Running with a start time, and
/// have ids unique across studies.
pub fn trial_numbers_are_sequential(storage: &dyn Storage) {
    let a = study(storage, "a");
    let b = study(storage, "b");
    let mut ids = BTreeSet::new();
    for expected in 0..5u64 {
        let ta = storage.create_running_trial(a, None, &[]).unwrap().unwrap();
        let tb = storage.create_running_trial(b, None, &[]).unwrap().unwrap();
        assert_eq!(ta.number, expected);
        assert_eq!(tb.number, expected);
        assert_eq!(ta.state, TrialState::Running);
        assert!(ta.datetime_start.is_some());
        assert!(ids.insert(ta.id) && ids.insert(tb.id), "trial ids are unique across studies");
    }
}

/// Parameters of every distribution kind (log, stepped, int, categorical of mixed
/// types) read back with the values and distributions set.
pub fn params_round_trip(storage: &dyn Storage) {
    let s = study(storage, "a");
    let trial = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    let params = vec![
        (
            "lr".to_owned(),
            ParamValue::Float(0.0031),
            Distribution::Float { low: 1e-4, high: 1e-1, log: true, step: None },
        ),
        (
            "drop".to_owned(),
            ParamValue::Float(0.2),
            Distribution::Float { low: 0.0, high: 0.5, log: false, step: Some(0.1) },
        ),
        (
            "width".to_owned(),
            ParamValue::Int(64),
            Distribution::Int { low: 16, high: 512, log: true, step: 1 },
        ),
        (
            "k".to_owned(),
            ParamValue::Int(5),
            Distribution::Int { low: 1, high: 9, log: false, step: 2 },
        ),
        (
            "opt".to_owned(),
            ParamValue::Str("sgd".into()),
            Distribution::Categorical {
                choices: vec![ParamValue::Str("adam".into()), ParamValue::Str("sgd".into())],
            },
        ),
        (
            "mixed".to_owned(),
            ParamValue::Bool(true),
            Distribution::Categorical {
                choices: vec![
                    ParamValue::Int(1),
                    ParamValue::Float(2.5),
                    ParamValue::Bool(true),
                    ParamValue::Null,
                ],
            },
        ),
    ];
    storage.set_trial_params(trial.id, &params).unwrap();
    let read = storage.trial(trial.id).unwrap();
    for (name, value, distribution) in &params {
        assert_eq!(read.params.get(name), Some(value), "{name}");
        assert_eq!(read.distributions.get(name), Some(distribution), "{name}");
    }
    assert_eq!(read.params.len(), params.len());
}

/// Reported steps read back as intermediate values and metric curves (by step, then
/// name); reporting a step again replaces it, and NaN survives.
pub fn reports_and_curves_round_trip(storage: &dyn Storage) {
    let s = study(storage, "a");
    let trial = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    let metrics =
        |loss: f64| vec![("train_loss".to_owned(), loss * 0.5), ("val_loss".to_owned(), loss)];
    storage.report(trial.id, 1, 0.9, &metrics(0.9)).unwrap();
    storage.report(trial.id, 2, 0.7, &metrics(0.7)).unwrap();
    // Reporting a step again replaces it.
    storage.report(trial.id, 2, 0.6, &metrics(0.6)).unwrap();
    storage.report(trial.id, 3, f64::NAN, &metrics(f64::NAN)).unwrap();
    let read = storage.trial(trial.id).unwrap();
    assert_eq!(read.intermediate_values.get(&1), Some(&0.9));
    assert_eq!(read.intermediate_values.get(&2), Some(&0.6));
    assert!(read.intermediate_values[&3].is_nan());
    let curves = storage.metric_curves(trial.id).unwrap();
    assert_eq!(curves.len(), 6);
    assert_eq!(curves[0], MetricPoint { step: 1, name: "train_loss".into(), value: 0.45 });
    assert_eq!(curves[3], MetricPoint { step: 2, name: "val_loss".into(), value: 0.6 });
    assert!(curves[5].value.is_nan());
}

/// `study_metric_curves` gives every trial of the study that reported a point
/// exactly what `metric_curves` gives it, leaves out trials without points and
/// trials of other studies, and is empty for a study without curves.
pub fn study_curves_agree_with_trial_curves(storage: &dyn Storage) {
    let s = study(storage, "a");
    let other = study(storage, "b");
    let empty = study(storage, "c");
    for (idx, study) in [s, other, s, s, other, s].into_iter().enumerate() {
        let trial = storage.create_running_trial(study, None, &[]).unwrap().unwrap();
        // Trial 2 of study a reports nothing; the others 1 to 3 steps of 2 metrics
        // (names reported out of order, a NaN among them).
        let n_steps = if idx == 2 { 0 } else { idx % 3 + 1 };
        for step in (1..=n_steps as u64).rev() {
            let value = if idx == 3 && step == 2 { f64::NAN } else { idx as f64 + step as f64 };
            let metrics = [("val_loss".to_owned(), value), ("acc".to_owned(), -value)];
            storage.report(trial.id, step, value, &metrics).unwrap();
        }
        if idx % 2 == 0 {
            storage.finish_trial(trial.id, TrialState::Complete, &[1.0]).unwrap();
        }
    }
    for study in [s, other] {
        let all = storage.study_metric_curves(study).unwrap();
        let trials = storage.trials(study, None).unwrap();
        let with_points: Vec<_> = trials
            .iter()
            .filter(|t| !storage.metric_curves(t.id).unwrap().is_empty())
            .map(|t| t.id)
            .collect();
        assert_eq!(all.keys().copied().collect::<Vec<_>>(), with_points);
        for trial in &trials {
            let expected = storage.metric_curves(trial.id).unwrap();
            let got = all.get(&trial.id).cloned().unwrap_or_default();
            // NaN != NaN, so compare through the bits.
            let key = |points: &[MetricPoint]| {
                points
                    .iter()
                    .map(|p| (p.step, p.name.clone(), p.value.to_bits()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(key(&got), key(&expected), "trial {}", trial.number);
        }
    }
    assert_eq!(storage.study_metric_curves(s).unwrap().len(), 3);
    assert!(storage.study_metric_curves(empty).unwrap().is_empty());
}

/// Finishing, reporting, setting parameters or attributes on a Complete trial fails
/// with [`Error::TrialFinished`] and changes nothing.
pub fn finished_trials_are_immutable(storage: &dyn Storage) {
    let s = study(storage, "a");
    let trial = run_one(storage, s, 1.0);
    assert_eq!(trial.state, TrialState::Complete);
    assert!(trial.datetime_complete.is_some());
    let finished = |res: crate::Result<()>| matches!(res, Err(Error::TrialFinished { .. }));
    assert!(finished(storage.finish_trial(trial.id, TrialState::Fail, &[])));
    assert!(finished(storage.report(trial.id, 5, 1.0, &[])));
    assert!(finished(
        storage
            .set_trial_params(trial.id, &[("y".into(), ParamValue::Float(0.0), float(0.0, 1.0))])
    ));
    assert!(finished(storage.set_trial_user_attr(trial.id, "k", &AttrValue::Null)));
    assert_eq!(storage.trial(trial.id).unwrap(), trial, "nothing changed");
}

/// Pruner verdicts read back by step with their decision and reason; recording a
/// step again replaces it; each trial keeps its own; a finished trial takes no more.
pub fn pruner_verdicts_round_trip(storage: &dyn Storage) {
    let s = study(storage, "a");
    let trial = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    let other = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    assert_eq!(storage.pruner_verdicts(trial.id).unwrap(), vec![]);
    let keep = |r: &str| Verdict::keep(r.to_owned());
    storage.record_pruner_verdict(trial.id, 9, &keep("rung 2")).unwrap();
    storage.record_pruner_verdict(trial.id, 1, &keep("rung 0")).unwrap();
    storage.record_pruner_verdict(trial.id, 3, &keep("first")).unwrap();
    storage.record_pruner_verdict(trial.id, 3, &Verdict::prune("rung 1: ünïcode".into())).unwrap();
    storage.record_pruner_verdict(other.id, 1, &keep("other")).unwrap();
    storage.finish_trial(trial.id, TrialState::Pruned, &[]).unwrap();
    assert_eq!(
        storage.pruner_verdicts(trial.id).unwrap(),
        vec![
            (1, keep("rung 0")),
            (3, Verdict::prune("rung 1: ünïcode".into())),
            (9, keep("rung 2"))
        ]
    );
    assert_eq!(storage.pruner_verdicts(other.id).unwrap(), vec![(1, keep("other"))]);
    assert!(matches!(
        storage.record_pruner_verdict(trial.id, 10, &keep("late")),
        Err(Error::TrialFinished { .. })
    ));
    assert_eq!(storage.pruner_verdicts(trial.id).unwrap().len(), 3);
}

/// Finite and infinite objective values read back unchanged; a Pruned trial keeps
/// no value.
pub fn values_round_trip_including_infinities(storage: &dyn Storage) {
    let s = study(storage, "a");
    for value in [0.125, -3.5, f64::INFINITY, f64::NEG_INFINITY] {
        let trial = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
        storage.finish_trial(trial.id, TrialState::Complete, &[value]).unwrap();
        assert_eq!(storage.trial(trial.id).unwrap().value, Some(value));
    }
    let pruned = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    storage.finish_trial(pruned.id, TrialState::Pruned, &[]).unwrap();
    let read = storage.trial(pruned.id).unwrap();
    assert_eq!((read.state, read.value), (TrialState::Pruned, None));
}

/// `trial_outcomes` tells every trial's number, state, value and last step as
/// `trials` does, in order of number.
pub fn outcomes_agree_with_trials(storage: &dyn Storage) {
    let s = study(storage, "a");
    run_one(storage, s, 2.5);
    let pruned = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    for (step, value) in [(1, 0.9), (3, f64::INFINITY), (2, 0.7)] {
        storage.report(pruned.id, step, value, &[]).unwrap();
    }
    storage.finish_trial(pruned.id, TrialState::Pruned, &[]).unwrap();
    let running = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    storage.report(running.id, 1, -1.0, &[]).unwrap();
    storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    let outcomes = storage.trial_outcomes(s).unwrap();
    let expected: Vec<crate::storage::TrialOutcome> =
        storage.trials(s, None).unwrap().iter().map(crate::storage::TrialOutcome::of).collect();
    assert_eq!(outcomes, expected);
    assert_eq!(outcomes.len(), 4);
    assert_eq!(outcomes[1].last_step, Some((3, f64::INFINITY)));
    assert_eq!(outcomes[3].last_step, None);
}

/// The largest step Optuna stores (i64::MAX) round-trips; one past it is refused
/// with `Error::StepOutOfRange`, and nothing is stored.
pub fn steps_past_the_largest_are_refused(storage: &dyn Storage) {
    let s = study(storage, "a");
    let trial = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    let largest = i64::MAX as u64;
    storage.report(trial.id, largest, 0.5, &[]).unwrap();
    for step in [largest + 1, u64::MAX] {
        let err = storage.report(trial.id, step, 0.25, &[]).unwrap_err();
        assert!(matches!(err, Error::StepOutOfRange(at) if at == step), "{err}");
    }
    let read = storage.trial(trial.id).unwrap();
    assert_eq!(read.intermediate_values.into_iter().collect::<Vec<_>>(), vec![(largest, 0.5)]);
}

/// `create_running_trial` returns `None` once as many trials as the budget exist.
pub fn budget_limits_creation(storage: &dyn Storage) {
    let s = study(storage, "a");
    for _ in 0..3 {
        assert!(storage.create_running_trial(s, Some(3), &[]).unwrap().is_some());
    }
    assert!(storage.create_running_trial(s, Some(3), &[]).unwrap().is_none());
    assert!(storage.create_running_trial(s, Some(4), &[]).unwrap().is_some());
    assert_eq!(storage.trials(s, None).unwrap().len(), 4);
}

/// `trials_at_step` gives each trial in the states asked for its last point at or
/// before the step and its first after it (none for a trial with no point), in
/// order of number.
pub fn trials_at_step_hold_the_points_around_the_step(storage: &dyn Storage) {
    let s = study(storage, "a");
    let other = study(storage, "b");
    let mut ids = Vec::new();
    for (steps, finish) in [
        (vec![1u64, 2, 3, 5, 9], Some(TrialState::Complete)),
        (vec![4, 8], None),
        (vec![], Some(TrialState::Complete)),
        (vec![1, 2], Some(TrialState::Pruned)),
        (vec![6], Some(TrialState::Fail)),
    ] {
        let trial = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
        for step in steps {
            storage.report(trial.id, step, step as f64 * 10.0, &[]).unwrap();
        }
        if let Some(state) = finish {
            let value = (state == TrialState::Complete).then_some(1.0);
            storage.finish_trial(trial.id, state, value.as_slice()).unwrap();
        }
        ids.push(trial.id);
    }
    let elsewhere = storage.create_running_trial(other, None, &[]).unwrap().unwrap();
    storage.report(elsewhere.id, 3, 1.0, &[]).unwrap();
    let states = [TrialState::Complete, TrialState::Pruned, TrialState::Running];
    let at = |step: u64| -> Vec<(u64, Vec<(u64, f64)>)> {
        storage
            .trials_at_step(s, &states, step)
            .unwrap()
            .into_iter()
            .map(|t| (t.number, t.intermediate_values.into_iter().collect()))
            .collect()
    };
    assert_eq!(
        at(3),
        vec![
            (0, vec![(3, 30.0), (5, 50.0)]),
            (1, vec![(4, 40.0)]),
            (2, vec![]),
            (3, vec![(2, 20.0)])
        ]
    );
    assert_eq!(
        at(0),
        vec![(0, vec![(1, 10.0)]), (1, vec![(4, 40.0)]), (2, vec![]), (3, vec![(1, 10.0)])]
    );
    assert_eq!(
        at(100),
        vec![(0, vec![(9, 90.0)]), (1, vec![(8, 80.0)]), (2, vec![]), (3, vec![(2, 20.0)])]
    );
    let fails = storage.trials_at_step(s, &[TrialState::Fail], 6).unwrap();
    assert_eq!(fails.len(), 1);
    assert_eq!(fails[0].id, ids[4]);
}

/// A study's user attributes read back by key, replaced on a second write, kept
/// apart from other studies'.
pub fn study_user_attrs_round_trip(storage: &dyn Storage) {
    let a = study(storage, "a");
    let b = study(storage, "b");
    assert!(storage.study_user_attrs(a).unwrap().is_empty());
    let set = |study: StudyId, key: &str, value: AttrValue| {
        storage.set_study_user_attrs(study, &[(key.to_owned(), value)]).unwrap();
    };
    storage
        .set_study_user_attrs(
            a,
            &[
                ("pick_trial".to_owned(), AttrValue::Number(21.0)),
                ("pick_basis".to_owned(), AttrValue::Str("confirmed".into())),
            ],
        )
        .unwrap();
    set(a, "pick_trial", AttrValue::Number(7.0));
    set(b, "pick_trial", AttrValue::Number(1.0));
    let attrs = storage.study_user_attrs(a).unwrap();
    assert_eq!(attrs.len(), 2);
    assert_eq!(attrs["pick_trial"], AttrValue::Number(7.0));
    assert_eq!(attrs["pick_basis"], AttrValue::Str("confirmed".into()));
    assert_eq!(storage.study_user_attrs(b).unwrap()["pick_trial"], AttrValue::Number(1.0));
    assert!(storage.study_user_attrs(StudyId(999)).is_err());
    assert!(storage.set_study_user_attrs(StudyId(999), &[]).is_err());
}

/// `end_trial` finishes a trial with its last steps and its user and system
/// attributes; on a finished trial it changes nothing.
pub fn end_trial_sets_results_and_state_together(storage: &dyn Storage) {
    let s = study(storage, "a");
    let trial = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    storage.report(trial.id, 1, 0.5, &[("value".to_owned(), 0.5)]).unwrap();
    let last = [step(2, 0.25), step(3, 0.375)];
    let user = [("best_step".to_owned(), AttrValue::Number(2.0))];
    let system = [(attr::ENDED_BY.to_owned(), AttrValue::Str("early_stopping".into()))];
    storage.end_trial(trial.id, TrialState::Complete, &[0.25], &last, &user, &system).unwrap();
    let read = storage.trial(trial.id).unwrap();
    assert_eq!((read.state, read.value), (TrialState::Complete, Some(0.25)));
    assert_eq!(
        read.intermediate_values.into_iter().collect::<Vec<_>>(),
        vec![(1, 0.5), (2, 0.25), (3, 0.375)]
    );
    assert_eq!(storage.metric_curves(trial.id).unwrap().len(), 3);
    assert_eq!(read.user_attrs.get("best_step"), Some(&AttrValue::Number(2.0)));
    assert_eq!(
        read.system_attrs.get(attr::ENDED_BY),
        Some(&AttrValue::Str("early_stopping".into()))
    );
    let again = storage.end_trial(trial.id, TrialState::Fail, &[], &[step(4, 0.0)], &user, &[]);
    assert!(matches!(again, Err(Error::TrialFinished { .. })));
    let read = storage.trial(trial.id).unwrap();
    assert_eq!((read.state, read.intermediate_values.len()), (TrialState::Complete, 3));
}

fn step(step: u64, value: f64) -> ReportedStep {
    ReportedStep { step, value, metrics: vec![("value".to_owned(), value)] }
}

/// `report_steps` writes several steps at once, in order (a step given twice
/// keeps its later value), with every metric; a batch with a step Optuna cannot
/// store, or for a finished trial, writes none of its steps.
pub fn steps_are_written_in_batches(storage: &dyn Storage) {
    let s = study(storage, "a");
    let trial = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    storage.report_steps(trial.id, &[step(1, 0.9), step(2, 0.8), step(2, 0.7)]).unwrap();
    storage.report_steps(trial.id, &[]).unwrap();
    let too_large = step(i64::MAX as u64 + 1, 0.1);
    let err = storage.report_steps(trial.id, &[step(3, 0.6), too_large]).unwrap_err();
    assert!(matches!(err, Error::StepOutOfRange(_)), "{err}");
    let read = storage.trial(trial.id).unwrap();
    assert_eq!(read.intermediate_values.into_iter().collect::<Vec<_>>(), vec![(1, 0.9), (2, 0.7)]);
    let curves = storage.metric_curves(trial.id).unwrap();
    assert_eq!(curves.iter().map(|p| (p.step, p.value)).collect::<Vec<_>>(), [(1, 0.9), (2, 0.7)]);
    storage.finish_trial(trial.id, TrialState::Complete, &[0.7]).unwrap();
    let late = storage.report_steps(trial.id, &[step(5, 0.1)]);
    assert!(matches!(late, Err(Error::TrialFinished { .. })));
    assert_eq!(storage.trial(trial.id).unwrap().intermediate_values.len(), 2);
}

/// `create_running_trial_with` stores what `propose` returns for the new trial's
/// number — parameters and system attributes — with the trial, and returns the
/// trial as stored; `None` stores nothing more; a spent budget creates nothing.
pub fn proposals_are_stored_with_their_trial(storage: &dyn Storage) {
    let s = study(storage, "a");
    let owner = [(attr::OWNER.to_owned(), AttrValue::Str("me".into()))];
    let propose = |number: u64| {
        Some(NewTrial {
            params: vec![("x".into(), ParamValue::Float(number as f64), float(-10.0, 10.0))],
            system_attrs: vec![(attr::SAMPLER.to_owned(), AttrValue::Str(format!("n{number}")))],
        })
    };
    let first = storage.create_running_trial_with(s, Some(2), &owner, &propose).unwrap().unwrap();
    let second = storage.create_running_trial_with(s, Some(2), &owner, &propose).unwrap().unwrap();
    assert_eq!((first.number, second.number), (0, 1));
    for trial in [&first, &second] {
        let read = storage.trial(trial.id).unwrap();
        assert_eq!(read.params.get("x"), Some(&ParamValue::Float(trial.number as f64)));
        assert_eq!(read.distributions.get("x"), Some(&float(-10.0, 10.0)));
        assert_eq!(read.system_attrs, trial.system_attrs);
        assert_eq!(read.params, trial.params);
        let why = AttrValue::Str(format!("n{}", trial.number));
        assert_eq!(read.system_attrs.get(attr::SAMPLER), Some(&why));
        assert_eq!(read.system_attrs.get(attr::OWNER), Some(&AttrValue::Str("me".into())));
    }
    assert!(storage.create_running_trial_with(s, Some(2), &owner, &propose).unwrap().is_none());
    let bare = storage.create_running_trial_with(s, None, &[], &|_| None).unwrap().unwrap();
    let read = storage.trial(bare.id).unwrap();
    assert!(read.params.is_empty() && read.system_attrs.is_empty());
    assert_eq!(storage.trials(s, None).unwrap().len(), 3);
}

/// `fail_and_enqueue` fails a Running trial and queues its retry; on a trial
/// already finished it changes nothing and queues nothing.
pub fn fail_and_enqueue_happen_together_once(storage: &dyn Storage) {
    let s = study(storage, "a");
    let trial = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    let retry = NewTrial {
        params: vec![("x".into(), ParamValue::Float(1.0), float(0.0, 10.0))],
        system_attrs: vec![(attr::RETRY_OF.into(), AttrValue::Number(0.0))],
    };
    let queued = storage.fail_and_enqueue(trial.id, s, Some(&retry)).unwrap().unwrap();
    assert_eq!(storage.trial(trial.id).unwrap().state, TrialState::Fail);
    let waiting = storage.trial(queued).unwrap();
    assert_eq!((waiting.state, waiting.retry_of()), (TrialState::Waiting, Some(0)));
    assert!(matches!(
        storage.fail_and_enqueue(trial.id, s, Some(&retry)),
        Err(Error::TrialFinished { .. })
    ));
    assert_eq!(storage.trials(s, None).unwrap().len(), 2, "no second retry");
    let other = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    assert_eq!(storage.fail_and_enqueue(other.id, s, None).unwrap(), None);
    assert_eq!(storage.trial(other.id).unwrap().state, TrialState::Fail);
}

/// A Fail marked interrupted gives its place in the budget back; any other Fail keeps
/// it, and its `fail_reason` reads back.
pub fn interrupted_failures_do_not_count(storage: &dyn Storage) {
    let s = study(storage, "a");
    let first = storage.create_running_trial(s, Some(2), &[]).unwrap().unwrap();
    storage.set_trial_system_attr(first.id, attr::INTERRUPTED, &AttrValue::Bool(true)).unwrap();
    storage.finish_trial(first.id, TrialState::Fail, &[]).unwrap();
    let second = storage.create_running_trial(s, Some(2), &[]).unwrap().unwrap();
    storage
        .set_trial_system_attr(second.id, attr::FAIL_REASON, &AttrValue::Str("nan loss".into()))
        .unwrap();
    storage.finish_trial(second.id, TrialState::Fail, &[]).unwrap();
    // The interrupted failure gave its slot back; the real failure did not.
    assert_eq!(storage.count_toward_budget(s).unwrap(), 1);
    assert!(storage.create_running_trial(s, Some(2), &[]).unwrap().is_some());
    assert!(storage.create_running_trial(s, Some(2), &[]).unwrap().is_none());
    assert_eq!(storage.count_toward_budget(s).unwrap(), 2);
    assert_eq!(storage.trial(second.id).unwrap().fail_reason(), Some("nan loss"));
}

/// A confirm run (`attr::CONFIRM_OF`) takes no place in the budget, whatever its
/// state, and reads back which trial it confirms.
pub fn confirm_runs_do_not_count(storage: &dyn Storage) {
    let s = study(storage, "a");
    for _ in 0..2 {
        let trial = storage.create_running_trial(s, Some(2), &[]).unwrap().unwrap();
        storage.finish_trial(trial.id, TrialState::Complete, &[1.0]).unwrap();
    }
    assert!(storage.create_running_trial(s, Some(2), &[]).unwrap().is_none());
    let confirm = [(attr::CONFIRM_OF.to_owned(), AttrValue::Number(1.0))];
    let complete = storage.create_running_trial(s, None, &confirm).unwrap().unwrap();
    storage.finish_trial(complete.id, TrialState::Complete, &[2.0]).unwrap();
    let failed = storage.create_running_trial(s, None, &confirm).unwrap().unwrap();
    storage.finish_trial(failed.id, TrialState::Fail, &[]).unwrap();
    storage.create_running_trial(s, None, &confirm).unwrap().unwrap();
    let read = storage.trial(complete.id).unwrap();
    assert_eq!(read.confirm_of(), Some(1));
    assert!(!read.counts_toward_budget());
    // Five trials exist, two of them count: a budget of 3 lets exactly one more in.
    assert_eq!(storage.count_toward_budget(s).unwrap(), 2);
    assert!(storage.create_running_trial(s, Some(2), &[]).unwrap().is_none());
    assert!(storage.create_running_trial(s, Some(3), &[]).unwrap().is_some());
    assert!(storage.create_running_trial(s, Some(3), &[]).unwrap().is_none());
    assert_eq!(storage.count_toward_budget(s).unwrap(), 3);
    assert_eq!(storage.trials(s, None).unwrap().len(), 6);
}

/// Trials queued with a study wait without a start time and are claimed lowest number
/// first, within the budget, with the claimer's system attributes; `enqueue_trial`
/// queues another with the next number.
pub fn queued_trials_are_claimed_in_order(storage: &dyn Storage) {
    let queued: Vec<NewTrial> = (0..3)
        .map(|idx| NewTrial {
            params: vec![("x".into(), ParamValue::Float(idx as f64), float(0.0, 10.0))],
            system_attrs: vec![(attr::GRID_POINT.into(), AttrValue::Number(idx as f64))],
        })
        .collect();
    let s = storage
        .create_study(&NewStudy {
            name: "grid".into(),
            directions: vec![Direction::Maximize],
            metrics: Vec::new(),
            spec_text: Some("text".into()),
            queued,
        })
        .unwrap();
    assert_eq!(storage.find_study("grid").unwrap().unwrap().spec_text.as_deref(), Some("text"));
    let waiting = storage.trials(s, Some(&[TrialState::Waiting])).unwrap();
    assert_eq!(waiting.len(), 3);
    assert_eq!(storage.count_toward_budget(s).unwrap(), 0, "queued trials do not count");
    assert!(waiting.iter().all(|t| t.datetime_start.is_none()));
    let owner = [(attr::OWNER.to_owned(), AttrValue::Str("me".into()))];
    let first = storage.claim_waiting_trial(s, None, &owner).unwrap().unwrap();
    assert_eq!((first.number, first.state), (0, TrialState::Running));
    assert_eq!(first.params.get("x"), Some(&ParamValue::Float(0.0)));
    assert_eq!(first.system_attrs.get(attr::OWNER), Some(&AttrValue::Str("me".into())));
    assert_eq!(first.system_attrs.get(attr::GRID_POINT), Some(&AttrValue::Number(0.0)));
    assert!(first.datetime_start.is_some());
    // A budget of 2 lets one more through.
    assert_eq!(storage.claim_waiting_trial(s, Some(2), &[]).unwrap().unwrap().number, 1);
    assert!(storage.claim_waiting_trial(s, Some(2), &[]).unwrap().is_none());
    assert_eq!(storage.claim_waiting_trial(s, None, &[]).unwrap().unwrap().number, 2);
    assert!(storage.claim_waiting_trial(s, None, &[]).unwrap().is_none());
    let requeued = storage
        .enqueue_trial(
            s,
            &NewTrial {
                params: vec![("x".into(), ParamValue::Float(1.0), float(0.0, 10.0))],
                system_attrs: vec![],
            },
        )
        .unwrap();
    let read = storage.trial(requeued).unwrap();
    assert_eq!((read.number, read.state), (3, TrialState::Waiting));
}

/// Queued retries are claimed before the other queued trials, a grid's in grid
/// order whatever order they were queued in; then the rest by number.
pub fn queued_retries_are_claimed_first_in_grid_order(storage: &dyn Storage) {
    let point = |idx: usize, retry_of: Option<usize>| NewTrial {
        params: vec![("x".into(), ParamValue::Float(idx as f64), float(0.0, 10.0))],
        system_attrs: retry_of
            .map(|of| (attr::RETRY_OF.to_owned(), AttrValue::Number(of as f64)))
            .into_iter()
            .chain([(attr::GRID_POINT.to_owned(), AttrValue::Number(idx as f64))])
            .collect(),
    };
    let s = storage
        .create_study(&NewStudy {
            name: "grid".into(),
            directions: vec![Direction::Maximize],
            metrics: Vec::new(),
            spec_text: None,
            queued: (0..6).map(|idx| point(idx, None)).collect(),
        })
        .unwrap();
    let claim = || storage.claim_waiting_trial(s, None, &[]).unwrap().unwrap();
    let (first, second) = (claim(), claim());
    assert_eq!((first.number, second.number), (0, 1));
    // Both are cut short; the second is queued again first.
    for trial in [&second, &first] {
        let retry = point(trial.number as usize, Some(trial.number as usize));
        storage.fail_and_enqueue(trial.id, s, Some(&retry)).unwrap();
    }
    let order: Vec<(u64, Option<f64>)> = (0..6)
        .map(|_| {
            let t = claim();
            (t.number, t.system_attrs.get(attr::GRID_POINT).and_then(AttrValue::as_f64))
        })
        .collect();
    assert_eq!(
        order,
        [
            (7, Some(0.0)),
            (6, Some(1.0)),
            (2, Some(2.0)),
            (3, Some(3.0)),
            (4, Some(4.0)),
            (5, Some(5.0))
        ]
    );
}

/// User and system attributes of every kind read back, and setting a key again
/// replaces its value.
pub fn attrs_round_trip(storage: &dyn Storage) {
    let s = study(storage, "a");
    let trial = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    let values = [
        ("n", AttrValue::Number(0.5)),
        ("s", AttrValue::Str("text with \"quotes\"".into())),
        ("b", AttrValue::Bool(false)),
        ("z", AttrValue::Null),
        ("l", AttrValue::List(vec![-1.5, 2.0, f64::INFINITY])),
        ("j", AttrValue::Str("[\"a\", 1]".into())),
    ];
    for (key, value) in &values {
        storage.set_trial_user_attr(trial.id, key, value).unwrap();
        storage.set_trial_system_attr(trial.id, key, value).unwrap();
    }
    storage.set_trial_user_attr(trial.id, "n", &AttrValue::Number(0.75)).unwrap();
    let read = storage.trial(trial.id).unwrap();
    assert_eq!(read.user_attrs.get("n"), Some(&AttrValue::Number(0.75)));
    for (key, value) in &values[1..] {
        assert_eq!(read.user_attrs.get(*key), Some(value));
        assert_eq!(read.system_attrs.get(*key), Some(value));
    }
}

/// `list_studies` orders studies by name, counts their trials by state, and gives
/// the best value of the Complete ones that are not confirm runs.
pub fn list_studies_counts_and_best(storage: &dyn Storage) {
    let s = study(storage, "b-study");
    study(storage, "a-study");
    run_one(storage, s, 3.0);
    run_one(storage, s, -2.0);
    run_one(storage, s, 1.0);
    let failed = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    storage.finish_trial(failed.id, TrialState::Fail, &[]).unwrap();
    storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    // A lucky confirm run is not the study's best: it repeats a configuration.
    let confirm = [(attr::CONFIRM_OF.to_owned(), AttrValue::Number(1.0))];
    let lucky = storage.create_running_trial(s, None, &confirm).unwrap().unwrap();
    storage.finish_trial(lucky.id, TrialState::Complete, &[-9.0]).unwrap();
    let list = storage.list_studies().unwrap();
    assert_eq!(
        list.iter().map(|it| it.study.name.as_str()).collect::<Vec<_>>(),
        ["a-study", "b-study"]
    );
    let b = &list[1];
    assert_eq!(
        (b.n_trials, b.n_complete, b.n_fail, b.n_running, b.n_pruned, b.n_waiting),
        (6, 4, 1, 1, 0, 0)
    );
    assert_eq!(b.best_value, Some(-2.0));
    assert_eq!(list[0].n_trials, 0);
    assert_eq!(list[0].best_value, None);
}

/// `trials` returns a study's trials in order of number, only those in the given
/// states when asked.
pub fn state_filter(storage: &dyn Storage) {
    let s = study(storage, "a");
    run_one(storage, s, 1.0);
    let running = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    let all = storage.trials(s, None).unwrap();
    assert_eq!(all.iter().map(|t| t.number).collect::<Vec<_>>(), [0, 1]);
    let only_running = storage.trials(s, Some(&[TrialState::Running])).unwrap();
    assert_eq!(only_running.len(), 1);
    assert_eq!(only_running[0].id, running.id);
    assert_eq!(
        storage.trials(s, Some(&[TrialState::Complete, TrialState::Running])).unwrap().len(),
        2
    );
    assert!(storage.trials(s, Some(&[TrialState::Pruned])).unwrap().is_empty());
    // `finished_trial_ids` lists finished trials by id, those finished since a time.
    let complete = [TrialState::Complete];
    assert_eq!(storage.finished_trial_ids(s, &complete, None).unwrap(), [all[0].id]);
    assert!(storage.finished_trial_ids(s, &[TrialState::Pruned], None).unwrap().is_empty());
    let ended = all[0].datetime_complete.unwrap();
    assert_eq!(storage.finished_trial_ids(s, &complete, Some(ended)).unwrap(), [all[0].id]);
    let later = crate::trial::Timestamp(ended.0 + 1);
    assert!(storage.finished_trial_ids(s, &complete, Some(later)).unwrap().is_empty());
    assert_eq!(running.state, TrialState::Running);
    // `trial_by_number` finds one trial whole, or none.
    let second = storage.trial_by_number(s, 1).unwrap().unwrap();
    assert_eq!((second.id, second.state), (running.id, TrialState::Running));
    assert_eq!(storage.trial_by_number(s, 0).unwrap().unwrap().value, Some(1.0));
    assert!(storage.trial_by_number(s, 2).unwrap().is_none());
    // `trial_state_by_number` finds its id and state alone.
    let first = storage.trial_state_by_number(s, 0).unwrap();
    assert_eq!(first, Some((all[0].id, TrialState::Complete)));
    let second = storage.trial_state_by_number(s, 1).unwrap();
    assert_eq!(second, Some((running.id, TrialState::Running)));
    assert!(storage.trial_state_by_number(s, 2).unwrap().is_none());
}

/// A trial's start counts as its first heartbeat, a later heartbeat is no earlier,
/// and a finished trial takes none.
pub fn heartbeats(storage: &dyn Storage) {
    let s = study(storage, "a");
    let trial = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    let start = storage.last_heartbeat(trial.id).unwrap().expect("start counts as a beat");
    storage.record_heartbeat(trial.id).unwrap();
    let beat = storage.last_heartbeat(trial.id).unwrap().unwrap();
    assert!(beat >= start);
    // A report is a sign of life too.
    storage.report(trial.id, 1, 0.5, &[]).unwrap();
    assert!(storage.last_heartbeat(trial.id).unwrap().unwrap() >= beat);
    storage.finish_trial(trial.id, TrialState::Complete, &[1.0]).unwrap();
    assert!(matches!(storage.record_heartbeat(trial.id), Err(Error::TrialFinished { .. })));
}

/// Four threads creating trials against a budget of 40 create exactly 40, numbered
/// 0 to 39.
pub fn concurrent_creation_respects_budget(storage: &dyn Storage) {
    let s = study(storage, "a");
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                while let Some(trial) = storage.create_running_trial(s, Some(40), &[]).unwrap() {
                    storage
                        .finish_trial(trial.id, TrialState::Complete, &[trial.number as f64])
                        .unwrap();
                }
            });
        }
    });
    let trials = storage.trials(s, None).unwrap();
    assert_eq!(trials.len(), 40);
    let numbers: BTreeSet<u64> = trials.iter().map(|t| t.number).collect();
    assert_eq!(numbers, (0..40).collect());
    assert!(trials.iter().all(|t| t.state == TrialState::Complete));
}

/// The study file of [`gpu_study`]: Branin with a 10-step curve (`max_epochs`).
pub const GPU_STUDY: &str = r#"
[study]
name = "gpu"
metric = "value"
direction = "minimize"
trials = 10

[objective]
kind = "function"
function = "branin"
max_epochs = 10

[space]
x0 = { float = [-5, 10] }
x1 = { float = [0, 15] }
"#;

/// Writes study `gpu` ([`GPU_STUDY`]) into `storage` as the workers of `hpo run`
/// on two GPUs leave it, all owned by worker `node1:7`: complete at step 10 of 10
/// on cuda:0 with a 300 MB footprint; pruned at step 3 on cuda:0 with 100 MB;
/// early-stopped at step 6 on cuda:1 (value 6); running at step 2 on cuda:1.
pub fn gpu_study(storage: &dyn Storage) -> StudyId {
    let spec = crate::spec::StudySpec::parse(GPU_STUDY, "gpu.toml").unwrap();
    let study = crate::run::open_study(storage, &spec).unwrap().id;
    let owner = [(attr::OWNER.to_owned(), AttrValue::Str("node1:7:1700000000".into()))];
    for (steps, state, device, ended_by, mb) in [
        (10, TrialState::Complete, "cuda:0", "completed", Some(300.0)),
        (3, TrialState::Pruned, "cuda:0", "pruner", Some(100.0)),
        (6, TrialState::Complete, "cuda:1", "early_stopping", None),
        (2, TrialState::Running, "cuda:1", "", None),
    ] {
        let trial = storage.create_running_trial(study, None, &owner).unwrap().unwrap();
        for step in 1..=steps {
            storage.report(trial.id, step, 1.0 / step as f64, &[]).unwrap();
        }
        let device = AttrValue::Str(device.into());
        storage.set_trial_system_attr(trial.id, attr::DEVICE, &device).unwrap();
        if let Some(mb) = mb {
            storage.set_trial_user_attr(trial.id, "gpu_memory_mb", &AttrValue::Number(mb)).unwrap();
        }
        if state != TrialState::Running {
            let ended = AttrValue::Str(ended_by.into());
            storage.set_trial_system_attr(trial.id, attr::ENDED_BY, &ended).unwrap();
            let value = (state == TrialState::Complete).then_some(steps as f64);
            storage.finish_trial(trial.id, state, value.as_slice()).unwrap();
        }
    }
    study
}

/// A study read whole ([`StudyCopy::read`]) and imported under another name reads
/// back the same — every trial state, time, parameter, value, curve, attribute
/// and verdict, the study's file and attributes — and importing a name that is
/// taken fails, writing nothing.
pub fn a_copied_study_reads_back_whole(storage: &dyn Storage) {
    let s = storage
        .create_study(&NewStudy {
            name: "a".into(),
            directions: vec![Direction::Maximize],
            metrics: vec!["acc".into()],
            spec_text: Some("[study]\nname = \"a\"\n".into()),
            queued: vec![NewTrial {
                params: vec![("x".into(), ParamValue::Float(0.5), float(0.0, 1.0))],
                system_attrs: vec![("hpo:grid_point".into(), AttrValue::Number(3.0))],
            }],
        })
        .unwrap();
    storage.set_study_user_attrs(s, &[("hpo:pick".into(), AttrValue::Number(1.0))]).unwrap();
    let choice = Distribution::Categorical {
        choices: vec![ParamValue::Str("relu".into()), ParamValue::Int(3)],
    };
    for (i, end) in
        [TrialState::Complete, TrialState::Pruned, TrialState::Fail, TrialState::Running]
            .into_iter()
            .enumerate()
    {
        let owner = [(attr::OWNER.to_owned(), AttrValue::Str(format!("host:{i}:0")))];
        let trial = storage.create_running_trial(s, None, &owner).unwrap().unwrap();
        let params = [
            ("x".to_owned(), ParamValue::Float(i as f64 / 10.0), float(0.0, 1.0)),
            ("act".to_owned(), ParamValue::Str("relu".into()), choice.clone()),
        ];
        storage.set_trial_params(trial.id, &params).unwrap();
        for step in 1..=3 {
            let metrics = [("acc".to_owned(), step as f64 / 4.0), ("loss".to_owned(), f64::NAN)];
            storage.report(trial.id, step, step as f64 / 4.0, &metrics).unwrap();
            storage
                .record_pruner_verdict(trial.id, step, &Verdict::keep(format!("step {step}")))
                .unwrap();
        }
        if end != TrialState::Running {
            let value = (end == TrialState::Complete).then_some(f64::INFINITY);
            let user = [("best_step".to_owned(), AttrValue::Number(3.0))];
            let system = [("fail_reason".to_owned(), AttrValue::Str(format!("ended {i}")))];
            storage.end_trial(trial.id, end, value.as_slice(), &[], &user, &system).unwrap();
        }
    }
    let mut copy = StudyCopy::read(storage, "a").unwrap().unwrap();
    assert_eq!(copy.trials.len(), 5);
    copy.study.name = "b".into();
    let b = storage.import_study(&copy).unwrap();
    assert_ne!(b, s);
    let read = StudyCopy::read(storage, "b").unwrap().unwrap();
    assert_eq!(read.study.id, b);
    let without_ids = |mut it: StudyCopy| {
        it.study.id = StudyId(0);
        for t in &mut it.trials {
            t.trial.id = crate::trial::TrialId(0);
        }
        it
    };
    let (copy, read) = (without_ids(copy), without_ids(read));
    assert_eq!(read.study, copy.study);
    assert_eq!(read.user_attrs, copy.user_attrs);
    for (ours, theirs) in read.trials.iter().zip(&copy.trials) {
        assert_eq!(ours.trial, theirs.trial, "trial {}", theirs.trial.number);
        assert_eq!(ours.verdicts, theirs.verdicts, "trial {}", theirs.trial.number);
        // NaN is not equal to itself: compare the curves as text.
        assert_eq!(format!("{:?}", ours.curves), format!("{:?}", theirs.curves));
    }
    // The copy's trials count toward its budget as the original's do.
    assert_eq!(storage.count_toward_budget(b).unwrap(), storage.count_toward_budget(s).unwrap());
    // A taken name: refused, nothing written.
    let studies = storage.list_studies().unwrap().len();
    assert!(matches!(storage.import_study(&copy), Err(Error::StudyExists(name)) if name == "b"));
    assert_eq!(storage.list_studies().unwrap().len(), studies);
}

/// A study of several objectives keeps every direction and metric name in order,
/// a Complete trial every value (non-finite ones too), a Pruned one none; a copy
/// keeps them all.
pub fn several_objectives_round_trip(storage: &dyn Storage) {
    let s = storage
        .create_study(&NewStudy {
            name: "pareto".into(),
            directions: vec![Direction::Maximize, Direction::Minimize, Direction::Minimize],
            metrics: vec!["acc".into(), "params".into(), "latency".into()],
            spec_text: None,
            queued: Vec::new(),
        })
        .unwrap();
    let study = storage.find_study("pareto").unwrap().unwrap();
    assert_eq!(study.directions, [Direction::Maximize, Direction::Minimize, Direction::Minimize]);
    assert_eq!(study.metrics, ["acc", "params", "latency"]);
    assert_eq!((study.direction, study.metric.as_deref()), (Direction::Maximize, Some("acc")));
    let complete = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    storage
        .end_trial(complete.id, TrialState::Complete, &[0.97, 1234.0, f64::INFINITY], &[], &[], &[])
        .unwrap();
    let pruned = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    storage.finish_trial(pruned.id, TrialState::Pruned, &[0.5, 1.0, 2.0]).unwrap();
    let read = storage.trial(complete.id).unwrap();
    assert_eq!(read.value, Some(0.97));
    assert_eq!(read.objective_values(), [0.97, 1234.0, f64::INFINITY]);
    let read = storage.trials(s, None).unwrap();
    assert_eq!(read[0].objective_values(), [0.97, 1234.0, f64::INFINITY]);
    assert!(read[1].objective_values().is_empty() && read[1].value.is_none());
    let mut copy = StudyCopy::read(storage, "pareto").unwrap().unwrap();
    copy.study.name = "pareto copy".into();
    let b = storage.import_study(&copy).unwrap();
    let copied = storage.find_study("pareto copy").unwrap().unwrap();
    assert_eq!((copied.directions, copied.metrics), (study.directions, study.metrics));
    let trials = storage.trials(b, None).unwrap();
    assert_eq!(trials[0].objective_values(), [0.97, 1234.0, f64::INFINITY]);
}

/// Dropping a study's curves (`hpo gc`) empties its finished trials' intermediate
/// values, metric curves and verdicts, and leaves everything else as it was: states,
/// parameters, values, attributes, the study's attributes, and a running trial.
pub fn dropped_curves_leave_the_trials_whole(storage: &dyn Storage) {
    let s = study(storage, "a");
    let other = study(storage, "b");
    let done = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    storage
        .set_trial_params(done.id, &[("x".into(), ParamValue::Float(0.5), float(0.0, 1.0))])
        .unwrap();
    for step in 1..=3 {
        storage.report(done.id, step, 1.0 / step as f64, &[("val_loss".into(), 0.5)]).unwrap();
    }
    storage
        .record_pruner_verdict(done.id, 2, &Verdict { prune: false, reason: "kept".into() })
        .unwrap();
    storage.finish_trial(done.id, TrialState::Complete, &[0.25]).unwrap();
    let running = storage.create_running_trial(s, None, &[]).unwrap().unwrap();
    storage.report(running.id, 1, 0.9, &[("val_loss".into(), 0.9)]).unwrap();
    let elsewhere = storage.create_running_trial(other, None, &[]).unwrap().unwrap();
    storage.report(elsewhere.id, 1, 0.7, &[]).unwrap();
    storage.finish_trial(elsewhere.id, TrialState::Complete, &[0.7]).unwrap();
    storage.set_study_user_attrs(s, &[("pick_trial".into(), AttrValue::Number(0.0))]).unwrap();

    // Three intermediate values and three metric points.
    assert_eq!(storage.drop_curves(s).unwrap(), 6);
    let kept = storage.trial(done.id).unwrap();
    assert!(kept.intermediate_values.is_empty());
    assert!(storage.metric_curves(done.id).unwrap().is_empty());
    assert!(storage.pruner_verdicts(done.id).unwrap().is_empty());
    assert_eq!((kept.state, kept.value), (TrialState::Complete, Some(0.25)));
    assert_eq!(kept.params.get("x"), Some(&ParamValue::Float(0.5)));
    assert_eq!(storage.study_user_attrs(s).unwrap().len(), 1);
    assert_eq!(storage.trial(running.id).unwrap().intermediate_values.len(), 1, "running: whole");
    assert_eq!(storage.trial(elsewhere.id).unwrap().intermediate_values.len(), 1, "other study");
    assert_eq!(storage.drop_curves(s).unwrap(), 0, "nothing left to drop");
    assert!(matches!(storage.drop_curves(StudyId(9_999)), Err(Error::UnknownStudy(_))));
}
