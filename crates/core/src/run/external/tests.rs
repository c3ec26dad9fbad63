//! Ask, report and tell against the in-memory store.

use super::*;
use crate::memory::InMemoryStorage;

const STUDY: &str = r#"
[study]
name = "ext"
metric = "loss"
direction = "minimize"
seed = 3
trials = 12

[sampler]
kind = "tpe"
startup_trials = 3

[objective]
kind = "external"

[space]
x = { float = [-2, 2] }
opt = { choice = ["a", "b"] }
"#;

fn spec() -> StudySpec {
    StudySpec::parse(STUDY, "studies/ext.toml").unwrap()
}

#[test]
fn asked_trials_are_running_with_in_domain_params_and_told_ones_finish() {
    let storage = InMemoryStorage::default();
    let spec = spec();
    let trial = ask_external(&storage, &spec).unwrap().unwrap();
    assert_eq!(trial.number, 0);
    assert_eq!(trial.state, TrialState::Running);
    let x = trial.params["x"].as_f64().unwrap();
    assert!((-2.0..=2.0).contains(&x));
    assert!(report_step(&storage, &spec, 0, 1, 0.5).unwrap().is_none(), "no pruner: never prune");
    let done = tell(&storage, &spec, 0, Outcome::Complete(x * x)).unwrap();
    assert_eq!(done.state, TrialState::Complete);
    assert_eq!(done.value, Some(x * x));
    assert_eq!(done.intermediate_values.get(&1), Some(&0.5));
}

#[test]
fn a_pruned_trial_keeps_its_curve_and_a_failed_one_has_no_value() {
    let storage = InMemoryStorage::default();
    let spec = spec();
    for _ in 0..2 {
        ask_external(&storage, &spec).unwrap().unwrap();
    }
    report_step(&storage, &spec, 0, 1, 3.0).unwrap();
    report_step(&storage, &spec, 0, 2, 2.0).unwrap();
    let pruned = tell(&storage, &spec, 0, Outcome::Pruned).unwrap();
    assert_eq!(pruned.state, TrialState::Pruned);
    assert_eq!(pruned.intermediate_values.values().copied().collect::<Vec<_>>(), [3.0, 2.0]);
    let failed = tell(&storage, &spec, 1, Outcome::Fail).unwrap();
    assert_eq!((failed.state, failed.value), (TrialState::Fail, None));
}

#[test]
fn telling_twice_an_unknown_trial_or_a_nan_is_refused_with_the_reason() {
    let storage = InMemoryStorage::default();
    let spec = spec();
    ask_external(&storage, &spec).unwrap();
    let nan = tell(&storage, &spec, 0, Outcome::Complete(f64::NAN)).unwrap_err().to_string();
    assert!(nan.contains("tell a finite value"), "{nan}");
    tell(&storage, &spec, 0, Outcome::Complete(1.0)).unwrap();
    let twice = tell(&storage, &spec, 0, Outcome::Complete(1.0)).unwrap_err().to_string();
    assert!(twice.contains("trial 0 of study `ext` is complete, not running"), "{twice}");
    let unknown = tell(&storage, &spec, 7, Outcome::Fail).unwrap_err().to_string();
    assert!(unknown.contains("has no trial 7"), "{unknown}");
}

#[test]
fn the_budget_ends_asking_and_other_objectives_are_refused() {
    let storage = InMemoryStorage::default();
    let spec = spec();
    for number in 0..12 {
        let trial = ask_external(&storage, &spec).unwrap().unwrap();
        let x = trial.params["x"].as_f64().unwrap();
        tell(&storage, &spec, number, Outcome::Complete(x * x)).unwrap();
    }
    assert!(ask_external(&storage, &spec).unwrap().is_none());
    let function = StudySpec::parse(
        &STUDY
            .replace("kind = \"external\"", "kind = \"function\"\nfunction = \"branin\"")
            .replace("opt = { choice = [\"a\", \"b\"] }", "x1 = { float = [0, 15] }")
            .replace("x = {", "x0 = {")
            .replace("metric = \"loss\"", "metric = \"value\""),
        "studies/f.toml",
    )
    .unwrap();
    let err = ask_external(&storage, &function).unwrap_err().to_string();
    assert!(err.contains("is not driven from outside"), "{err}");
}

#[test]
fn concurrent_asks_get_different_proposals() {
    let storage = InMemoryStorage::default();
    let spec = spec();
    for number in 0..6 {
        let trial = ask_external(&storage, &spec).unwrap().unwrap();
        let x = trial.params["x"].as_f64().unwrap();
        tell(&storage, &spec, number, Outcome::Complete(x * x)).unwrap();
    }
    let a = ask_external(&storage, &spec).unwrap().unwrap();
    let b = ask_external(&storage, &spec).unwrap().unwrap();
    assert_ne!(a.params, b.params);
}

#[test]
fn report_step_asks_the_studys_pruner_and_records_why() {
    let storage = InMemoryStorage::default();
    let text =
        STUDY.replace("[objective]", "[pruner]\nkind = \"threshold\"\nupper = 10.0\n\n[objective]");
    let spec = StudySpec::parse(&text, "studies/ext.toml").unwrap();
    ask_external(&storage, &spec).unwrap();
    assert!(report_step(&storage, &spec, 0, 1, 5.0).unwrap().is_none());
    let reason = report_step(&storage, &spec, 0, 2, 50.0).unwrap().unwrap();
    assert!(reason.contains("above the threshold 10"), "{reason}");
    let trial = tell(&storage, &spec, 0, Outcome::Pruned).unwrap();
    assert_eq!(
        trial.system_attrs.get(crate::trial::attr::PRUNE_REASON).and_then(|a| a.as_str()),
        Some(reason.as_str())
    );
}
