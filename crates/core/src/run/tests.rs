//! Unit tests of the study loop on the in-memory storage: budgets, workers,
//! orphans and retries, pruning, confirm runs.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::*;
use crate::memory::InMemoryStorage;
use crate::objective::{Capacity, FunctionObjective};
use crate::spec::{AUTO_TRIALS_PER_DEVICE, ObjectiveSpec};

struct TestHost {
    owner: String,
    interrupt_at_step: Option<usize>,
    steps: AtomicUsize,
    interrupted: AtomicBool,
    dead_owners: Vec<String>,
    log: Mutex<Vec<String>>,
    /// Seconds the clock moves at each trial's start (0: time stands still).
    seconds_per_trial: u64,
    /// Seconds the clock moves at each reported step.
    seconds_per_step: u64,
    now: std::sync::atomic::AtomicU64,
}

impl TestHost {
    fn new() -> TestHost {
        TestHost {
            owner: "test:1".into(),
            interrupt_at_step: None,
            steps: AtomicUsize::new(0),
            interrupted: AtomicBool::new(false),
            dead_owners: Vec::new(),
            log: Mutex::new(Vec::new()),
            seconds_per_trial: 0,
            seconds_per_step: 0,
            now: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl Host for TestHost {
    fn elapsed(&self) -> Duration {
        Duration::from_secs(self.now.load(Ordering::SeqCst))
    }
    fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }
    fn owner(&self) -> String {
        self.owner.clone()
    }
    fn is_orphaned(&self, trial: &FrozenTrial, _: Option<Timestamp>) -> bool {
        trial
            .system_attrs
            .get(attr::OWNER)
            .and_then(AttrValue::as_str)
            .is_some_and(|o| self.dead_owners.iter().any(|d| d == o))
    }
    fn event(&self, event: Event<'_>) {
        let line = match event {
            Event::Recovered { trial, queued_again } => {
                format!("recovered {}{}", trial.number, if queued_again { " (queued)" } else { "" })
            }
            Event::Started { trial, .. } => {
                self.now.fetch_add(self.seconds_per_trial, Ordering::SeqCst);
                format!("started {}", trial.number)
            }
            Event::DeviceShrunk { device, remaining } => format!("shrunk {device} to {remaining}"),
            Event::DeviceFitted { device, remaining, why } => {
                format!("fitted {device} to {remaining} ({why})")
            }
            Event::Step { number, step, .. } => {
                self.now.fetch_add(self.seconds_per_step, Ordering::SeqCst);
                let n = self.steps.fetch_add(1, Ordering::SeqCst) + 1;
                if self.interrupt_at_step == Some(n) {
                    self.interrupted.store(true, Ordering::SeqCst);
                }
                format!("step {number}.{step}")
            }
            Event::Finished { trial, .. } => format!("finished {} {}", trial.number, trial.state),
        };
        self.log.lock().unwrap().push(line);
    }
}

fn spec(sampler: &str, trials: &str, space: &str) -> StudySpec {
    let text = format!(
        "[study]\nname = \"t\"\nmetric = \"value\"\ndirection = \"minimize\"\nseed = 3\n{trials}\n[sampler]\nkind = \"{sampler}\"\n[objective]\nkind = \"function\"\nfunction = \"branin\"\n[space]\n{space}"
    );
    StudySpec::parse(&text, "t.toml").unwrap()
}

const BRANIN: &str = "x0 = { float = [-5, 10] }\nx1 = { float = [0, 15] }\n";

fn objective(spec: &StudySpec) -> FunctionObjective {
    let ObjectiveSpec::Function { function, steps } = spec.objective else { panic!() };
    FunctionObjective { function, steps }
}

const NO_OVERRIDES: RunConfig = RunConfig { trials: None, timeout: None, workers: None };

#[test]
fn random_study_meets_its_budget_and_resumes() {
    let storage = InMemoryStorage::default();
    let spec = spec("random", "trials = 12", BRANIN);
    let host = TestHost::new();
    let summary = run_study(&storage, &spec, &objective(&spec), &host, NO_OVERRIDES).unwrap();
    assert_eq!((summary.end, summary.n_finished), (RunEnd::BudgetMet, 12));
    let trials = storage.trials(summary.study.id, None).unwrap();
    assert_eq!(trials.len(), 12);
    assert!(trials.iter().all(|t| t.state == TrialState::Complete && t.value.is_some()));
    let best = summary.best.unwrap();
    assert_eq!(best.value, trials.iter().filter_map(|t| t.value).reduce(f64::min));
    // Running again does nothing: the budget is met.
    let again = run_study(&storage, &spec, &objective(&spec), &host, NO_OVERRIDES).unwrap();
    assert_eq!(again.n_finished, 0);
    // A larger budget from the command line continues the same study.
    let more = run_study(
        &storage,
        &spec,
        &objective(&spec),
        &host,
        RunConfig { trials: Some(15), timeout: None, workers: None },
    )
    .unwrap();
    assert_eq!(more.n_finished, 3);
    let numbers: Vec<u64> =
        storage.trials(summary.study.id, None).unwrap().iter().map(|t| t.number).collect();
    assert_eq!(numbers, (0..15).collect::<Vec<_>>());
}

#[test]
fn two_runs_of_the_same_file_propose_the_same_parameters() {
    let spec = spec("random", "trials = 8", BRANIN);
    let params = || {
        let storage = InMemoryStorage::default();
        let summary =
            run_study(&storage, &spec, &objective(&spec), &TestHost::new(), NO_OVERRIDES).unwrap();
        storage
            .trials(summary.study.id, None)
            .unwrap()
            .into_iter()
            .map(|t| (t.params, t.value))
            .collect::<Vec<_>>()
    };
    assert_eq!(params(), params());
}

#[test]
fn grid_runs_every_point_once() {
    let storage = InMemoryStorage::default();
    let spec =
        spec("grid", "", "x0 = { float = [-5, 10], step = 5 }\nx1 = { int = [0, 15], step = 5 }\n");
    let summary =
        run_study(&storage, &spec, &objective(&spec), &TestHost::new(), NO_OVERRIDES).unwrap();
    assert_eq!(summary.n_finished, 16);
    let trials = storage.trials(summary.study.id, None).unwrap();
    let points: std::collections::BTreeSet<String> =
        trials.iter().map(|t| format!("{}/{}", t.params["x0"], t.params["x1"])).collect();
    assert_eq!(points.len(), 16);
    assert_eq!(trials[0].params["x0"], ParamValue::Float(-5.0));
    assert_eq!(trials[1].params["x1"], ParamValue::Int(5), "the last parameter varies fastest");
}

#[test]
fn orphaned_trials_fail_and_grid_points_are_queued_again() {
    let storage = InMemoryStorage::default();
    let spec = spec(
        "grid",
        "",
        "x0 = { float = [-5, 10], step = 15 }\nx1 = { int = [0, 15], step = 15 }\n",
    );
    let study = open_study(&storage, &spec).unwrap();
    let dead = [(attr::OWNER.to_owned(), AttrValue::Str("dead:9".into()))];
    let orphan = storage.claim_waiting_trial(study.id, None, &dead).unwrap().unwrap();
    let mut host = TestHost::new();
    host.dead_owners.push("dead:9".into());
    let summary = run_study(&storage, &spec, &objective(&spec), &host, NO_OVERRIDES).unwrap();
    let orphan = storage.trial(orphan.id).unwrap();
    assert_eq!(orphan.state, TrialState::Fail);
    assert!(orphan.system_attrs.contains_key(attr::INTERRUPTED));
    let complete = storage.trials(summary.study.id, Some(&[TrialState::Complete])).unwrap();
    assert_eq!(complete.len(), 4, "all four points ran, the orphan's point again");
    assert!(complete.iter().any(|t| t.params == orphan.params));
    assert_eq!(host.log.lock().unwrap()[0], "recovered 0 (queued)");
}

#[test]
fn a_changed_space_is_refused_with_what_changed() {
    let storage = InMemoryStorage::default();
    let first = spec("random", "trials = 2", BRANIN);
    run_study(&storage, &first, &objective(&first), &TestHost::new(), NO_OVERRIDES).unwrap();
    let changed =
        spec("random", "trials = 2", "x0 = { float = [-5, 5] }\nx1 = { float = [0, 15] }\n");
    let err = run_study(&storage, &changed, &objective(&changed), &TestHost::new(), NO_OVERRIDES)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "study `t` already exists with a different search space:\n  parameter `x0` changed from float [-5, 10] to float [-5, 5]\nrun it under a new name (`[study] name`), or restore the original space"
    );
}

/// Reports a curve, one step per value; fails on NaN as a training would.
struct Curve(Vec<f64>);

impl Objective for Curve {
    fn run(
        &self,
        _: &TrialContext<'_>,
        reporter: &mut dyn Reporter,
    ) -> Result<ObjectiveOutput, TrialFailure> {
        for (step, value) in self.0.iter().enumerate() {
            if value.is_nan() {
                return Err(TrialFailure::new(format!("loss is NaN at step {}", step + 1)));
            }
            if reporter
                .report(step as u64 + 1, &[("value".into(), *value), ("other".into(), 1.0)])
                .is_break()
            {
                break;
            }
        }
        Ok(ObjectiveOutput {
            final_metrics: vec![("test_value".into(), 9.0)],
            ended_by: Some("max_epochs".into()),
        })
    }
}

#[test]
fn early_stopping_ends_a_flat_curve_and_the_value_is_its_best_step() {
    let storage = InMemoryStorage::default();
    let mut spec = spec("random", "trials = 1", BRANIN);
    spec.early_stopping = Some(crate::spec::EarlyStoppingSpec {
        monitor: "value".into(),
        direction: Direction::Minimize,
        patience: 2,
        min_delta: 0.0,
    });
    let host = TestHost::new();
    let summary =
        run_study(&storage, &spec, &Curve(vec![3.0, 1.0, 2.0, 2.0, 0.5]), &host, NO_OVERRIDES)
            .unwrap();
    let trial = storage.trials(summary.study.id, None).unwrap().remove(0);
    assert_eq!(trial.state, TrialState::Complete);
    assert_eq!(trial.value, Some(1.0));
    assert_eq!(trial.intermediate_values.len(), 4, "stopped after two steps without improvement");
    assert_eq!(
        trial.system_attrs.get(attr::ENDED_BY),
        Some(&AttrValue::Str("early_stopping".into()))
    );
    assert_eq!(trial.user_attrs.get("best_step"), Some(&AttrValue::Number(2.0)));
    assert_eq!(trial.user_attrs.get("test_value"), Some(&AttrValue::Number(9.0)));
    assert_eq!(trial.user_attrs.get("other"), Some(&AttrValue::Number(1.0)));
}

/// When another process creates a trial between the history read and the
/// creation, the asked trial gets the next number and the proposal for that
/// number, as if the sampler had proposed after the other trial was made.
#[test]
fn a_trial_whose_number_was_taken_gets_its_own_numbers_proposal() {
    let storage = InMemoryStorage::default();
    let spec = spec("tpe", "trials = 12", BRANIN);
    let host = TestHost::new();
    run_study(&storage, &spec, &objective(&spec), &host, NO_OVERRIDES).unwrap();
    let study = storage.find_study("t").unwrap().unwrap().id;
    let sampler = sampler::from_spec(spec.sampler, &spec.directions);
    let history = History::default();
    storage.probe.another_creates_first.store(true, Ordering::SeqCst);
    let trial =
        ask(&storage, study, &spec, sampler.as_ref(), None, "me", &history).unwrap().unwrap();
    // Trials 0-11 ran, the other process took 12.
    assert_eq!(trial.number, 13);
    let others: Vec<FrozenTrial> =
        storage.trials(study, None).unwrap().into_iter().filter(|t| t.id != trial.id).collect();
    let mut rng = sampler::trial_rng(spec.seed, 13);
    let expected = sampler.sample(&spec.space, &others, &mut rng);
    assert_eq!(trial.params, expected);
    assert_eq!(storage.trial(trial.id).unwrap().params, expected);
    // Without the other process, the proposal goes with the trial in one write.
    let next =
        ask(&storage, study, &spec, sampler.as_ref(), None, "me", &history).unwrap().unwrap();
    assert_eq!(next.number, 14);
    assert_eq!(storage.trial(next.id).unwrap().params, next.params);
    assert!(!next.params.is_empty());
}

#[test]
fn fast_steps_are_written_with_the_trial_end() {
    let storage = InMemoryStorage::default();
    let spec = spec("random", "trials = 2", BRANIN);
    let curve: Vec<f64> = (0..20).map(|i| 20.0 - f64::from(i)).collect();
    // Time stands still: every step comes at once after the one before.
    let summary =
        run_study(&storage, &spec, &Curve(curve), &TestHost::new(), NO_OVERRIDES).unwrap();
    for trial in storage.trials(summary.study.id, None).unwrap() {
        assert_eq!(trial.state, TrialState::Complete);
        let steps: Vec<u64> = trial.intermediate_values.keys().copied().collect();
        assert_eq!(steps, (1..=20).collect::<Vec<u64>>());
        assert_eq!(storage.metric_curves(trial.id).unwrap().len(), 40);
    }
    assert_eq!(storage.probe.step_writes.load(Ordering::SeqCst), 2, "one write per trial");
}

#[test]
fn slow_steps_are_written_as_they_come() {
    let storage = InMemoryStorage::default();
    let spec = spec("random", "trials = 1", BRANIN);
    let host = TestHost { seconds_per_step: 1, ..TestHost::new() };
    let summary = run_study(&storage, &spec, &Curve(vec![5.0; 10]), &host, NO_OVERRIDES).unwrap();
    let trial = storage.trials(summary.study.id, None).unwrap().remove(0);
    assert_eq!(trial.intermediate_values.len(), 10);
    // The first step comes as the trial starts and waits for the second; each
    // later one comes a second after the write before it.
    assert_eq!(storage.probe.step_writes.load(Ordering::SeqCst), 9);
}

/// Reports three steps at once, lets a second pass, and waits (at most 10 s) for
/// the run's writer thread to store them while the trial still runs.
struct WaitsForItsSteps<'a> {
    storage: &'a InMemoryStorage,
    host: &'a TestHost,
    seen: AtomicBool,
}

impl Objective for WaitsForItsSteps<'_> {
    fn run(
        &self,
        ctx: &TrialContext<'_>,
        reporter: &mut dyn Reporter,
    ) -> Result<ObjectiveOutput, TrialFailure> {
        for step in 1..=3 {
            let _ = reporter.report(step, &[("value".into(), 1.0)]);
        }
        self.host.now.fetch_add(1, Ordering::SeqCst);
        let study = self.storage.find_study("t").unwrap().unwrap().id;
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            let trial = self.storage.trial_by_number(study, ctx.number).unwrap().unwrap();
            if trial.intermediate_values.len() == 3 {
                self.seen.store(trial.state == TrialState::Running, Ordering::SeqCst);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(ObjectiveOutput::default())
    }
}

#[test]
fn steps_that_wait_are_written_while_the_trial_runs() {
    let storage = InMemoryStorage::default();
    let spec = spec("random", "trials = 1", BRANIN);
    let host = TestHost::new();
    let objective =
        WaitsForItsSteps { storage: &storage, host: &host, seen: AtomicBool::new(false) };
    run_study(&storage, &spec, &objective, &host, NO_OVERRIDES).unwrap();
    assert!(objective.seen.load(Ordering::SeqCst), "the steps reached the store before the end");
    assert_eq!(storage.probe.step_writes.load(Ordering::SeqCst), 1);
}

#[test]
fn a_failing_trial_is_recorded_and_the_study_goes_on() {
    let storage = InMemoryStorage::default();
    let spec = spec("random", "trials = 3", BRANIN);
    let summary =
        run_study(&storage, &spec, &Curve(vec![1.0, f64::NAN]), &TestHost::new(), NO_OVERRIDES)
            .unwrap();
    let trials = storage.trials(summary.study.id, None).unwrap();
    assert_eq!(trials.len(), 3);
    assert!(trials.iter().all(|t| t.state == TrialState::Fail));
    assert_eq!(trials[0].fail_reason(), Some("loss is NaN at step 2"));
    assert!(trials[0].counts_toward_budget());
}

struct Panics;

impl Objective for Panics {
    fn run(
        &self,
        _: &TrialContext<'_>,
        _: &mut dyn Reporter,
    ) -> Result<ObjectiveOutput, TrialFailure> {
        panic!("shape mismatch")
    }
}

#[test]
fn a_panicking_objective_fails_its_trial() {
    let storage = InMemoryStorage::default();
    let spec = spec("random", "trials = 1", BRANIN);
    let summary = run_study(&storage, &spec, &Panics, &TestHost::new(), NO_OVERRIDES).unwrap();
    let trial = storage.trials(summary.study.id, None).unwrap().remove(0);
    assert_eq!(trial.fail_reason(), Some("the objective panicked: shape mismatch"));
}

#[test]
fn interruption_fails_the_running_trial_and_returns_its_budget() {
    let storage = InMemoryStorage::default();
    let spec = spec("random", "trials = 5", BRANIN);
    let mut host = TestHost::new();
    host.interrupt_at_step = Some(5);
    let curve = Curve(vec![3.0, 2.0, 1.0]);
    let summary = run_study(&storage, &spec, &curve, &host, NO_OVERRIDES).unwrap();
    assert_eq!(summary.end, RunEnd::Interrupted);
    let trials = storage.trials(summary.study.id, None).unwrap();
    assert_eq!(
        trials.iter().map(|t| t.state).collect::<Vec<_>>(),
        [TrialState::Complete, TrialState::Fail]
    );
    assert_eq!(trials[1].fail_reason(), Some("interrupted (Ctrl-C)"));
    assert_eq!(trials[1].intermediate_values.len(), 2, "the steps it ran are kept");
    // The next run meets the budget of 5 trials that count.
    let summary = run_study(&storage, &spec, &curve, &TestHost::new(), NO_OVERRIDES).unwrap();
    assert_eq!(summary.n_finished, 4);
    let trials = storage.trials(summary.study.id, None).unwrap();
    assert_eq!(trials.iter().filter(|t| t.counts_toward_budget()).count(), 5);
}

#[test]
fn a_changed_seed_or_objective_is_refused() {
    let storage = InMemoryStorage::default();
    let first = spec("random", "trials = 1", BRANIN);
    run_study(&storage, &first, &objective(&first), &TestHost::new(), NO_OVERRIDES).unwrap();
    let reseeded = StudySpec::parse(&first.text.replace("seed = 3", "seed = 4"), "t.toml").unwrap();
    let err = run_study(&storage, &reseeded, &objective(&first), &TestHost::new(), NO_OVERRIDES)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "study `t` exists but has seed 3 and this file seed 4; restore the seed or give it a new `[study] name`"
    );
    let other = StudySpec::parse(&first.text.replace("branin", "levy"), "t.toml").unwrap();
    let err = run_study(&storage, &other, &objective(&other), &TestHost::new(), NO_OVERRIDES)
        .unwrap_err();
    assert!(err.to_string().contains("was created with a different [objective]"), "{err}");
}

#[test]
fn an_unreported_early_stopping_monitor_fails_the_trial_with_the_names_it_reports() {
    let storage = InMemoryStorage::default();
    let mut spec = spec("random", "trials = 1", BRANIN);
    spec.early_stopping = Some(crate::spec::EarlyStoppingSpec {
        monitor: "val_loss".into(),
        direction: Direction::Minimize,
        patience: 2,
        min_delta: 0.0,
    });
    let summary =
        run_study(&storage, &spec, &Curve(vec![3.0, 1.0]), &TestHost::new(), NO_OVERRIDES).unwrap();
    let trial = storage.trials(summary.study.id, None).unwrap().remove(0);
    assert_eq!(trial.state, TrialState::Fail);
    assert_eq!(
        trial.fail_reason(),
        Some(
            "[early_stopping] monitors `val_loss`, which the objective does not report; it reports: value, other"
        )
    );
}

/// Reports `curves[trial number]` (the last one for later trials).
struct Curves(Vec<Vec<f64>>);

impl Objective for Curves {
    fn run(
        &self,
        ctx: &TrialContext<'_>,
        reporter: &mut dyn Reporter,
    ) -> Result<ObjectiveOutput, TrialFailure> {
        let curve = &self.0[(ctx.number as usize).min(self.0.len() - 1)];
        Curve(curve.clone()).run(ctx, reporter)
    }
}

#[test]
fn the_pruner_stops_a_worse_trial_keeps_its_curve_and_records_why() {
    let storage = InMemoryStorage::default();
    let mut spec = spec("random", "trials = 4", BRANIN);
    spec.pruner = crate::pruner::Pruner {
        kind: crate::pruner::PrunerKind::Percentile {
            percentile: 50.0,
            startup_trials: 2,
            warmup_steps: 2,
            interval: 1,
        },
        patience: None,
    };
    let good = vec![3.0, 2.0, 1.0, 0.5];
    let bad = vec![9.0, 9.0, 9.0, 9.0];
    let host = TestHost::new();
    let objective = Curves(vec![good.clone(), good.clone(), bad, good]);
    let summary = run_study(&storage, &spec, &objective, &host, NO_OVERRIDES).unwrap();
    let trials = storage.trials(summary.study.id, None).unwrap();
    let states: Vec<TrialState> = trials.iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        [TrialState::Complete, TrialState::Complete, TrialState::Pruned, TrialState::Complete]
    );
    let pruned = &trials[2];
    assert_eq!(pruned.intermediate_values.len(), 2, "pruned at the first step after warm-up");
    assert_eq!(pruned.system_attrs.get(attr::ENDED_BY), Some(&AttrValue::Str("pruner".into())));
    let reason = pruned.system_attrs.get(attr::PRUNE_REASON).and_then(AttrValue::as_str).unwrap();
    assert!(reason.contains("50th percentile 2 of 2 complete trials"), "{reason}");
}

#[test]
fn early_stopping_and_pruning_together_say_which_ended_each_trial() {
    let storage = InMemoryStorage::default();
    let mut spec = spec("random", "trials = 3", BRANIN);
    spec.early_stopping = Some(crate::spec::EarlyStoppingSpec {
        monitor: "value".into(),
        direction: Direction::Minimize,
        patience: 1,
        min_delta: 0.0,
    });
    spec.pruner = crate::pruner::Pruner {
        kind: crate::pruner::PrunerKind::Threshold {
            lower: None,
            upper: Some(5.0),
            warmup_steps: 0,
        },
        patience: None,
    };
    let host = TestHost::new();
    let objective = Curves(vec![vec![3.0, 2.0, 2.5, 1.0], vec![7.0, 1.0], vec![4.0, 3.0]]);
    let summary = run_study(&storage, &spec, &objective, &host, NO_OVERRIDES).unwrap();
    let ended: Vec<(TrialState, String)> = storage
        .trials(summary.study.id, None)
        .unwrap()
        .iter()
        .map(|t| {
            let by = t.system_attrs.get(attr::ENDED_BY).and_then(AttrValue::as_str).unwrap();
            (t.state, by.to_owned())
        })
        .collect();
    assert_eq!(
        ended,
        [
            (TrialState::Complete, "early_stopping".to_owned()),
            (TrialState::Pruned, "pruner".to_owned()),
            (TrialState::Complete, "max_epochs".to_owned()),
        ]
    );
}

/// x0 + x1 plus noise from the training seed: a training whose value depends on its
/// seed, reported over two steps.
struct SeedNoise;

impl Objective for SeedNoise {
    fn run(
        &self,
        ctx: &TrialContext<'_>,
        reporter: &mut dyn Reporter,
    ) -> Result<ObjectiveOutput, TrialFailure> {
        let x: f64 = ctx.params.values().filter_map(ParamValue::as_f64).sum();
        let noise = (ctx.seed % 1000) as f64 / 1000.0;
        Curve(vec![x + 1.0 + noise, x + noise]).run(ctx, reporter)
    }
}

fn confirm_config(top: usize, seeds: usize) -> ConfirmConfig {
    ConfirmConfig { top, seeds }
}

/// Trains the k-th trial it runs (search trials and confirm runs alike, which are
/// numbered in studies of their own) on the k-th curve; the last one after that.
struct InOrder(Vec<Vec<f64>>, std::sync::Mutex<usize>);

impl InOrder {
    fn new(curves: Vec<Vec<f64>>) -> InOrder {
        InOrder(curves, std::sync::Mutex::new(0))
    }
}

impl Objective for InOrder {
    fn run(
        &self,
        ctx: &TrialContext<'_>,
        reporter: &mut dyn Reporter,
    ) -> Result<ObjectiveOutput, TrialFailure> {
        let mut next = self.1.lock().unwrap();
        let curve = self.0[(*next).min(self.0.len() - 1)].clone();
        *next += 1;
        drop(next);
        Curve(curve).run(ctx, reporter)
    }
}

/// The study's trials, then its confirm runs (kept in `NAME:confirm`).
fn with_confirm_runs(storage: &dyn Storage, study: &Study) -> Vec<FrozenTrial> {
    let mut all = storage.trials(study.id, None).unwrap();
    all.extend(crate::run::confirm_runs(storage, study).unwrap());
    all
}

#[test]
fn confirm_trains_the_top_configurations_again_outside_the_budget() {
    let storage = InMemoryStorage::default();
    let spec = spec("random", "trials = 6", BRANIN);
    let host = TestHost::new();
    let first = RunConfig { trials: Some(4), timeout: None, workers: None };
    let summary = run_study(&storage, &spec, &SeedNoise, &host, first).unwrap();
    let mut ranked = storage.trials(summary.study.id, None).unwrap();
    ranked.sort_by(|a, b| a.value.partial_cmp(&b.value).unwrap());

    let confirmed = confirm(&storage, &spec, &SeedNoise, &host, confirm_config(2, 2)).unwrap();
    assert_eq!((confirmed.n_finished, confirmed.interrupted), (4, false));
    let originals: Vec<u64> = confirmed.trials.iter().map(|c| c.original.number).collect();
    assert_eq!(originals, [ranked[0].number, ranked[1].number], "best first");
    assert_eq!(storage.trials(summary.study.id, None).unwrap().len(), 4, "confirm runs apart");
    let runs_study = storage.find_study("t:confirm").unwrap().expect("the confirm study");
    let attrs = storage.study_user_attrs(summary.study.id).unwrap();
    assert_eq!(attrs[crate::study::study_attr::CONFIRM_STUDY], AttrValue::Str("t:confirm".into()));
    let attrs = storage.study_user_attrs(runs_study.id).unwrap();
    assert_eq!(attrs[crate::study::study_attr::CONFIRMS], AttrValue::Str("t".into()));
    let trials = with_confirm_runs(&storage, &summary.study);
    assert_eq!(trials.len(), 8);
    for (idx, trial) in trials[4..].iter().enumerate() {
        let original = &trials[originals[idx / 2] as usize];
        assert_eq!((trial.number, trial.confirm_of()), (idx as u64, Some(original.number)));
        assert_eq!(
            (&trial.params, &trial.distributions),
            (&original.params, &original.distributions)
        );
        assert_eq!(trial.state, TrialState::Complete);
        assert_ne!(trial.value, original.value, "a new trial number trains with a new seed");
        assert!(!trial.counts_toward_budget());
        assert_eq!(trial.user_attrs.get("best_step"), Some(&AttrValue::Number(2.0)));
        assert_eq!(trial.system_attrs.get(attr::OWNER), Some(&AttrValue::Str("test:1".into())));
    }
    let best = &confirmed.trials[0];
    assert_eq!(best.values(), [trials[4].value.unwrap(), trials[5].value.unwrap()]);
    let mean = best.mean().unwrap();
    assert_eq!(mean, (best.values()[0] + best.values()[1]) / 2.0);
    assert!((best.std().unwrap() - (best.values()[0] - mean).abs() * 2f64.sqrt()).abs() < 1e-12);
    let log = host.log.lock().unwrap().clone();
    // The confirm runs are trials 0 to 3 of `t:confirm`.
    assert!(log.contains(&"started 3".to_owned()) && log.contains(&"finished 3 complete".into()));

    // The budget of 6 still gets 6 real trials: the confirm runs took none of it.
    let resumed = run_study(&storage, &spec, &SeedNoise, &host, NO_OVERRIDES).unwrap();
    assert_eq!(resumed.n_finished, 2);
    let trials = with_confirm_runs(&storage, &summary.study);
    assert_eq!(trials.iter().filter(|t| t.counts_toward_budget()).count(), 6);
    assert_eq!(trials.iter().filter(|t| t.confirm_of().is_some()).count(), 4);
}

#[test]
fn confirm_again_adds_only_what_is_missing() {
    let storage = InMemoryStorage::default();
    let spec = spec("random", "trials = 3", BRANIN);
    let host = TestHost::new();
    let study = run_study(&storage, &spec, &SeedNoise, &host, NO_OVERRIDES).unwrap().study;
    confirm(&storage, &spec, &SeedNoise, &host, confirm_config(2, 2)).unwrap();
    let again = confirm(&storage, &spec, &SeedNoise, &host, confirm_config(2, 2)).unwrap();
    assert_eq!(again.n_finished, 0);
    assert!(again.trials.iter().all(|c| c.confirms.len() == 2));
    assert_eq!(with_confirm_runs(&storage, &study).len(), 7);
    let more = confirm(&storage, &spec, &SeedNoise, &host, confirm_config(3, 3)).unwrap();
    assert_eq!(more.n_finished, 2 + 3, "one more for each of two, three for the third");
    assert!(more.trials.iter().all(|c| c.confirms.len() == 3));
}

#[test]
fn confirm_runs_are_never_ranked_among_the_originals() {
    let storage = InMemoryStorage::default();
    let spec = spec("random", "trials = 3", BRANIN);
    let host = TestHost::new();
    // Trials 0 to 2 are originals; every later trial (a confirm run) beats them all.
    let objective = InOrder::new(vec![vec![5.0], vec![3.0], vec![4.0], vec![0.1]]);
    let study = run_study(&storage, &spec, &objective, &host, NO_OVERRIDES).unwrap().study;
    confirm(&storage, &spec, &objective, &host, confirm_config(2, 1)).unwrap();
    let summary = confirm(&storage, &spec, &objective, &host, confirm_config(2, 2)).unwrap();
    let originals: Vec<u64> = summary.trials.iter().map(|c| c.original.number).collect();
    assert_eq!(originals, [1, 2]);
    let confirm_of: Vec<Option<u64>> =
        with_confirm_runs(&storage, &study).iter().map(|t| t.confirm_of()).collect();
    assert_eq!(confirm_of, [None, None, None, Some(1), Some(2), Some(1), Some(2)]);
}

#[test]
fn a_failed_confirm_run_is_run_again_by_the_next_confirm() {
    let storage = InMemoryStorage::default();
    let spec = spec("random", "trials = 2", BRANIN);
    let host = TestHost::new();
    // The third run, the first confirm run, fails with a NaN loss.
    let objective = InOrder::new(vec![vec![2.0], vec![1.0], vec![f64::NAN], vec![1.5]]);
    let study = run_study(&storage, &spec, &objective, &host, NO_OVERRIDES).unwrap().study;
    let first = confirm(&storage, &spec, &objective, &host, confirm_config(1, 2)).unwrap();
    assert_eq!(first.n_finished, 2);
    assert_eq!(first.trials[0].confirms.len(), 1);
    let second = confirm(&storage, &spec, &objective, &host, confirm_config(1, 2)).unwrap();
    assert_eq!(second.n_finished, 1);
    assert_eq!(second.trials[0].values(), [1.5, 1.5]);
    let states: Vec<TrialState> =
        with_confirm_runs(&storage, &study).iter().map(|t| t.state).collect();
    assert_eq!(states[2..], [TrialState::Fail, TrialState::Complete, TrialState::Complete]);
}

#[test]
fn the_pruner_lets_confirm_runs_finish_and_early_stopping_still_applies() {
    let storage = InMemoryStorage::default();
    let mut spec = spec("random", "trials = 1", BRANIN);
    spec.pruner = crate::pruner::Pruner {
        kind: crate::pruner::PrunerKind::Threshold {
            lower: None,
            upper: Some(5.0),
            warmup_steps: 0,
        },
        patience: None,
    };
    spec.early_stopping = Some(crate::spec::EarlyStoppingSpec {
        monitor: "value".into(),
        direction: Direction::Minimize,
        patience: 1,
        min_delta: 0.0,
    });
    let host = TestHost::new();
    // The confirm run starts above the threshold, then stops improving.
    let objective = InOrder::new(vec![vec![3.0, 2.0], vec![7.0, 1.0, 1.5, 0.5]]);
    let study = run_study(&storage, &spec, &objective, &host, NO_OVERRIDES).unwrap().study;
    confirm(&storage, &spec, &objective, &host, confirm_config(1, 1)).unwrap();
    let trial = with_confirm_runs(&storage, &study).remove(1);
    assert_eq!((trial.state, trial.value), (TrialState::Complete, Some(1.0)));
    assert_eq!(trial.system_attrs.get(attr::PRUNE_REASON), None);
    assert_eq!(
        trial.system_attrs.get(attr::ENDED_BY),
        Some(&AttrValue::Str("early_stopping".into()))
    );
}

#[test]
fn an_interrupted_confirm_stops_and_the_next_one_finishes_it() {
    let storage = InMemoryStorage::default();
    let spec = spec("random", "trials = 2", BRANIN);
    let study =
        run_study(&storage, &spec, &SeedNoise, &TestHost::new(), NO_OVERRIDES).unwrap().study;
    let mut host = TestHost::new();
    host.interrupt_at_step = Some(3);
    let cut = confirm(&storage, &spec, &SeedNoise, &host, confirm_config(2, 2)).unwrap();
    assert_eq!((cut.n_finished, cut.interrupted), (2, true));
    let trials = with_confirm_runs(&storage, &study);
    assert_eq!(trials.len(), 4);
    assert_eq!(trials[3].fail_reason(), Some("interrupted (Ctrl-C)"));
    let rest =
        confirm(&storage, &spec, &SeedNoise, &TestHost::new(), confirm_config(2, 2)).unwrap();
    assert_eq!((rest.n_finished, rest.interrupted), (3, false));
    assert!(rest.trials.iter().all(|c| c.confirms.len() == 2));
}

#[test]
fn confirm_refuses_a_study_that_does_not_exist() {
    let storage = InMemoryStorage::default();
    let spec = spec("random", "trials = 2", BRANIN);
    let err =
        confirm(&storage, &spec, &SeedNoise, &TestHost::new(), confirm_config(1, 1)).unwrap_err();
    assert!(matches!(err, Error::StudyNotFound(ref name) if name == "t"), "{err}");
    assert!(storage.find_study("t").unwrap().is_none(), "nothing was created");
}

/// Sleeps a little per trial and records how many trials ran at once.
struct Concurrent {
    running: AtomicUsize,
    most: AtomicUsize,
}

impl Objective for Concurrent {
    fn run(
        &self,
        ctx: &TrialContext<'_>,
        reporter: &mut dyn Reporter,
    ) -> Result<ObjectiveOutput, TrialFailure> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        let value = ctx.params["x0"].as_f64().unwrap_or(0.0);
        for step in 1..=3 {
            let _ = reporter.report(step, &[("value".into(), value)]);
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(ObjectiveOutput::default())
    }
}

#[test]
fn workers_run_trials_at_once_and_meet_the_budget_exactly() {
    let storage = InMemoryStorage::default();
    let spec = spec("random", "trials = 12\nworkers = 3", BRANIN);
    assert_eq!(spec.workers, 3);
    let objective = Concurrent { running: AtomicUsize::new(0), most: AtomicUsize::new(0) };
    let summary = run_study(&storage, &spec, &objective, &TestHost::new(), NO_OVERRIDES).unwrap();
    assert_eq!(summary.n_finished, 12);
    assert_eq!(summary.end, RunEnd::BudgetMet);
    let trials = storage.trials(summary.study.id, None).unwrap();
    assert_eq!(trials.len(), 12, "no worker overshoots the budget");
    let numbers: Vec<u64> = trials.iter().map(|t| t.number).collect();
    assert_eq!(numbers, (0..12).collect::<Vec<_>>());
    assert!(
        trials.iter().all(|t| t.state == TrialState::Complete && t.intermediate_values.len() == 3)
    );
    assert!(objective.most.load(Ordering::SeqCst) > 1, "trials overlapped in time");
    // `--workers` overrides the file.
    let config = RunConfig { trials: Some(14), timeout: None, workers: Some(2) };
    let again = run_study(&storage, &spec, &objective, &TestHost::new(), config).unwrap();
    assert_eq!(again.n_finished, 2);
}

#[test]
fn an_orphan_is_retried_with_its_parameters_up_to_max_retries() {
    let storage = InMemoryStorage::default();
    let spec = spec("random", "trials = 3\nmax_retries = 1", BRANIN);
    let study = open_study(&storage, &spec).unwrap();
    let dead = "dead:9";
    let random = crate::sampler::random::RandomSampler;
    let orphan =
        ask(&storage, study.id, &spec, &random, None, dead, &History::default()).unwrap().unwrap();
    let mut host = TestHost::new();
    host.dead_owners.push(dead.into());
    run_study(&storage, &spec, &objective(&spec), &host, NO_OVERRIDES).unwrap();
    let trials = storage.trials(study.id, None).unwrap();
    assert_eq!(trials[0].state, TrialState::Fail);
    let retry = &trials[1];
    assert_eq!(retry.retry_of(), Some(orphan.number));
    assert_eq!(retry.params, orphan.params, "a retry runs the same parameters");
    assert_eq!(retry.state, TrialState::Complete);
    assert_eq!(trials.iter().filter(|t| t.counts_toward_budget()).count(), 3);
    assert_eq!(host.log.lock().unwrap()[0], "recovered 0 (queued)");

    // The retry dies too: with max_retries = 1 it is not queued a second time.
    let spec = self::spec("random", "trials = 4\nmax_retries = 1", BRANIN);
    let again = storage.enqueue_trial(
        study.id,
        &NewTrial {
            params: params_of(&trials[0]),
            system_attrs: vec![(attr::RETRY_OF.to_owned(), AttrValue::Number(0.0))],
        },
    );
    let again = again.unwrap();
    let claimed = storage
        .claim_waiting_trial(
            study.id,
            None,
            &[(attr::OWNER.to_owned(), AttrValue::Str(dead.into()))],
        )
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, again);
    let host = {
        let mut host = TestHost::new();
        host.dead_owners.push(dead.into());
        host
    };
    run_study(&storage, &spec, &objective(&spec), &host, NO_OVERRIDES).unwrap();
    assert_eq!(host.log.lock().unwrap()[0], format!("recovered {}", claimed.number));
}

/// Trains nothing: records the device of each trial, and runs out of memory when
/// two trials share `cuda:0`.
struct SharedGpu {
    on_gpu0: AtomicUsize,
    devices: Mutex<Vec<String>>,
}

impl Objective for SharedGpu {
    fn run(
        &self,
        ctx: &TrialContext<'_>,
        reporter: &mut dyn Reporter,
    ) -> Result<ObjectiveOutput, TrialFailure> {
        let device = ctx.device.unwrap_or("none").to_owned();
        self.devices.lock().unwrap().push(device.clone());
        let gpu0 = device == "cuda:0";
        let sharing = gpu0 && self.on_gpu0.fetch_add(1, Ordering::SeqCst) > 0;
        std::thread::sleep(Duration::from_millis(30));
        if gpu0 {
            self.on_gpu0.fetch_sub(1, Ordering::SeqCst);
        }
        if sharing {
            return Err(TrialFailure::out_of_memory("CUDA_ERROR_OUT_OF_MEMORY"));
        }
        let _ = reporter.report(1, &[("value".into(), 1.0)]);
        Ok(ObjectiveOutput::default())
    }
}

#[test]
fn trials_spread_over_devices_and_out_of_memory_shrinks_the_device() {
    let text = "[study]\nname = \"g\"\nmetric = \"value\"\ndirection = \"minimize\"\nseed = 3\ntrials = 12\n\
                [objective]\nkind = \"candle\"\nmodel = \"mlp\"\ndataset = \"digits\"\nmax_epochs = 1\n\
                devices = [\"cuda:0\", \"cuda:1\"]\ntrials_per_device = 2\n[space]\nlr = { float = [0.001, 0.1] }\n";
    let spec = StudySpec::parse(text, "g.toml").unwrap();
    let storage = InMemoryStorage::default();
    let objective = SharedGpu { on_gpu0: AtomicUsize::new(0), devices: Mutex::new(Vec::new()) };
    let host = TestHost::new();
    let summary = run_study(&storage, &spec, &objective, &host, NO_OVERRIDES).unwrap();
    let trials = storage.trials(summary.study.id, None).unwrap();
    let complete: Vec<&FrozenTrial> =
        trials.iter().filter(|t| t.state == TrialState::Complete).collect();
    let states: Vec<String> = trials
        .iter()
        .map(|t| format!("{} {} {:?} {:?}", t.number, t.state, t.fail_reason(), t.retry_of()))
        .collect();
    assert_eq!(
        complete.len(),
        12,
        "the budget is met despite the out-of-memory trials: {states:#?}"
    );
    let devices = objective.devices.lock().unwrap().clone();
    assert!(devices.iter().any(|d| d == "cuda:0") && devices.iter().any(|d| d == "cuda:1"));
    // Each trial records its device.
    assert!(complete.iter().all(|t| t.system_attrs.contains_key(attr::DEVICE)));
    // Trials that ran out of memory were failed as interrupted and run again.
    let oom: Vec<&FrozenTrial> = trials.iter().filter(|t| t.state == TrialState::Fail).collect();
    assert!(!oom.is_empty(), "two trials shared cuda:0 at first");
    for trial in &oom {
        assert!(trial.system_attrs.contains_key(attr::INTERRUPTED));
        assert!(trial.fail_reason().unwrap().contains("queued again"), "{states:#?}");
        assert!(
            trials.iter().any(|t| t.retry_of() == Some(trial.number) && t.params == trial.params)
        );
    }
    let log = host.log.lock().unwrap();
    assert!(log.iter().any(|line| line == "shrunk cuda:0 to 1"), "{log:?}");
    assert!(!log.iter().any(|line| line.starts_with("shrunk cuda:1")), "{log:?}");
}

/// Trains nothing: counts the trials running at once, and says how many should
/// run on any device: nothing until a trial has run (as a GPU objective knows
/// nothing until it has measured one), then `first`, and `then` once `switch`
/// trials have started (as a throughput probe tries more at once).
struct Packs {
    running: AtomicUsize,
    /// Trials running at each trial's start, in start order.
    at_start: Mutex<Vec<usize>>,
    measured: AtomicBool,
    first: usize,
    then: usize,
    switch: usize,
    /// A trial that starts with more than this many running runs out of memory.
    fits: usize,
}

impl Packs {
    fn new(first: usize, then: usize, switch: usize) -> Packs {
        Packs {
            running: AtomicUsize::new(0),
            at_start: Mutex::new(Vec::new()),
            measured: AtomicBool::new(false),
            first,
            then,
            switch,
            fits: usize::MAX,
        }
    }
}

impl Objective for Packs {
    fn run(
        &self,
        _ctx: &TrialContext<'_>,
        reporter: &mut dyn Reporter,
    ) -> Result<ObjectiveOutput, TrialFailure> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.at_start.lock().unwrap().push(now);
        if now > self.fits {
            self.running.fetch_sub(1, Ordering::SeqCst);
            return Err(TrialFailure::out_of_memory("CUDA_ERROR_OUT_OF_MEMORY"));
        }
        std::thread::sleep(Duration::from_millis(50));
        self.measured.store(true, Ordering::SeqCst);
        self.running.fetch_sub(1, Ordering::SeqCst);
        let _ = reporter.report(1, &[("value".into(), 1.0)]);
        Ok(ObjectiveOutput::default())
    }

    fn capacity(&self, _device: &str) -> Option<Capacity> {
        if !self.measured.load(Ordering::SeqCst) {
            return None;
        }
        let started = self.at_start.lock().unwrap().len();
        let (trials, why) =
            if started < self.switch { (self.first, "first") } else { (self.then, "then") };
        Some(Capacity { trials, why: why.to_owned() })
    }
}

/// Runs a study of `trials` trials with `trials_per_device = "auto"` on `objective`;
/// returns the trials running at each trial's start, in start order, and the
/// host's lines telling a device's capacity. Every trial completes.
fn run_packed(trials: usize, objective: &Packs) -> (Vec<usize>, Vec<String>) {
    let text = format!(
        "[study]\nname = \"a\"\nmetric = \"value\"\ndirection = \"minimize\"\nseed = 3\ntrials = {trials}\n\
         [objective]\nkind = \"candle\"\nmodel = \"mlp\"\ndataset = \"digits\"\nmax_epochs = 1\n\
         device = \"cuda:0\"\ntrials_per_device = \"auto\"\n[space]\nlr = {{ float = [0.001, 0.1] }}\n"
    );
    let spec = StudySpec::parse(&text, "a.toml").unwrap();
    let storage = InMemoryStorage::default();
    let host = TestHost::new();
    let summary = run_study(&storage, &spec, objective, &host, NO_OVERRIDES).unwrap();
    let stored = storage.trials(summary.study.id, None).unwrap();
    assert_eq!(stored.iter().filter(|t| t.state == TrialState::Complete).count(), trials);
    let log = host.log.lock().unwrap();
    let fitted = log.iter().filter(|line| line.starts_with("fitted")).cloned().collect();
    (objective.at_start.lock().unwrap().clone(), fitted)
}

#[test]
fn auto_trials_per_device_keeps_the_workers_that_fit() {
    let (at_start, fitted) = run_packed(40, &Packs::new(2, 2, usize::MAX));
    // Eight (AUTO_TRIALS_PER_DEVICE) workers started; six wait once two are known
    // to fit, and that is told once, with the number and the objective's reason.
    assert_eq!(AUTO_TRIALS_PER_DEVICE, 8);
    assert_eq!(fitted, ["fitted cuda:0 to 2 (first)"]);
    // The first trials ran eight at once; once the excess workers had finished the
    // trial they held, two at a time.
    assert!(at_start.iter().any(|&n| n > 2), "{at_start:?}");
    assert!(at_start[20..].iter().all(|&n| n <= 2), "{at_start:?}");
}

#[test]
fn auto_trials_per_device_brings_waiting_workers_back_when_the_capacity_rises() {
    // One at a time after the first trials, then four from the 20th trial on.
    let (at_start, fitted) = run_packed(60, &Packs::new(1, 4, 20));
    assert_eq!(fitted, ["fitted cuda:0 to 1 (first)", "fitted cuda:0 to 4 (then)"]);
    // Alone between the first trials' end and the switch...
    assert!(at_start[10..20].iter().all(|&n| n == 1), "{at_start:?}");
    // ...then up to four at once again, never more.
    assert!(at_start[24..].contains(&4), "{at_start:?}");
    assert!(at_start[20..].iter().all(|&n| n <= 4), "{at_start:?}");
}

#[test]
fn auto_trials_per_device_never_refills_a_place_that_ran_out_of_memory() {
    // Known from the start: one at a time, then four from the 10th trial on; but a
    // fourth trial at once runs out of memory. Its worker leaves, and the waiting
    // ones do not take its place (each would run out of memory in turn).
    let mut objective = Packs { fits: 3, ..Packs::new(1, 4, 10) };
    objective.measured = AtomicBool::new(true);
    let (at_start, _) = run_packed(40, &objective);
    let out_of_memory = at_start.iter().filter(|&&n| n > 3).count();
    assert_eq!(out_of_memory, 1, "{at_start:?}");
    assert!(at_start[20..].contains(&3), "{at_start:?}");
}

/// Plays another process that dies: during trial 1 it leaves a Running trial of a
/// dead owner in the store.
struct LeavesAnOrphan<'a> {
    storage: &'a InMemoryStorage,
    study: StudyId,
}

impl Objective for LeavesAnOrphan<'_> {
    fn run(
        &self,
        ctx: &TrialContext<'_>,
        reporter: &mut dyn Reporter,
    ) -> Result<ObjectiveOutput, TrialFailure> {
        if ctx.number == 1 {
            let dead = [(attr::OWNER.to_owned(), AttrValue::Str("dead:9".into()))];
            self.storage.create_running_trial(self.study, None, &dead).unwrap();
        }
        let _ = reporter.report(1, &[("value".into(), 1.0)]);
        Ok(ObjectiveOutput::default())
    }
}

#[test]
fn a_running_worker_recovers_a_trial_another_worker_left_behind() {
    let storage = InMemoryStorage::default();
    let spec = spec("random", "trials = 4", BRANIN);
    let study = open_study(&storage, &spec).unwrap();
    let mut host = TestHost::new();
    host.dead_owners.push("dead:9".into());
    host.seconds_per_trial = 5;
    let objective = LeavesAnOrphan { storage: &storage, study: study.id };
    run_study(&storage, &spec, &objective, &host, NO_OVERRIDES).unwrap();
    let trials = storage.trials(study.id, None).unwrap();
    let orphan = trials.iter().find(|t| t.number == 2).unwrap();
    assert_eq!(orphan.state, TrialState::Fail);
    assert!(orphan.system_attrs.contains_key(attr::INTERRUPTED));
    let log = host.log.lock().unwrap();
    let recovered = log.iter().position(|l| l == "recovered 2").expect("recovered mid-run");
    assert!(recovered > log.iter().position(|l| l == "finished 1 complete").unwrap());
    assert_eq!(trials.iter().filter(|t| t.state == TrialState::Complete).count(), 4);
}

/// The study loop reads the whole study a fixed number of times per run, not per
/// trial or per step: counting the budget, telling the best so far and pruning
/// cost the same at trial 10 and at trial 10,000 (before, every trial loaded the
/// study twice, every ASHA rung read every trial, and the percentile rule read
/// every complete trial at every step).
#[test]
fn the_loop_reads_the_whole_study_a_fixed_number_of_times_per_run() {
    use crate::pruner::{Pruner, PrunerKind};
    let pruners = [
        PrunerKind::None,
        PrunerKind::Asha { min_resource: 1, reduction_factor: 3, min_early_stopping_rate: 0 },
        PrunerKind::Hyperband { min_resource: 1, max_resource: 20, reduction_factor: 3 },
        PrunerKind::Percentile {
            percentile: 25.0,
            startup_trials: 1,
            warmup_steps: 0,
            interval: 1,
        },
    ];
    for kind in pruners {
        let pruned = format!("{kind:?}");
        let storage = InMemoryStorage::default();
        let mut spec = spec("random", "trials = 60", BRANIN);
        spec.pruner = Pruner { kind, patience: None };
        let objective = Curve((0..20).map(|s| 10.0 - s as f64 * 0.1).collect());
        let summary =
            run_study(&storage, &spec, &objective, &TestHost::new(), NO_OVERRIDES).unwrap();
        assert_eq!(summary.n_finished, 60);
        let read = storage.probe.trials_read.load(Ordering::SeqCst);
        // The best at the start (none yet) and at the end (60); Running-only
        // looks for dead workers' trials read a trial or none, and so does each
        // rung's look at the running trials (3 rungs in 20 steps).
        assert!(read <= 70 + 3 * 60, "pruner {pruned}: read {read} trials in all for 60 trials");
    }
}

/// docs/study-file.md: a grid with `trials = N` runs the first N points in grid
/// order, and an interruption does not change which: the interrupted point runs
/// again next, in its place, not after the rest of the grid.
#[test]
fn an_interrupted_grid_point_runs_again_in_its_place() {
    let storage = InMemoryStorage::default();
    let spec =
        spec("grid", "trials = 4", "x0 = { int = [0, 5] }\nx1 = { int = [0, 5], step = 5 }\n");
    let mut host = TestHost::new();
    // Trial 0 reports 3 steps; the interruption comes in trial 1.
    host.interrupt_at_step = Some(4);
    let curve = Curve(vec![3.0, 2.0, 1.0]);
    let cut = run_study(&storage, &spec, &curve, &host, NO_OVERRIDES).unwrap();
    assert_eq!(cut.end, RunEnd::Interrupted);
    let rest = run_study(&storage, &spec, &curve, &TestHost::new(), NO_OVERRIDES).unwrap();
    assert_eq!(rest.end, RunEnd::BudgetMet);
    let complete = storage.trials(rest.study.id, Some(&[TrialState::Complete])).unwrap();
    let mut order: Vec<(i64, u64, Params)> = complete
        .iter()
        .map(|t| (t.datetime_start.unwrap().0, t.number, t.params.clone()))
        .collect();
    order.sort_by_key(|(start, number, _)| (*start, *number));
    let points: Vec<Params> = order.into_iter().map(|(_, _, point)| point).collect();
    assert_eq!(points, grid::grid_points(&spec.space)[..4]);
}

/// A panic outside the objective (here in the store, as a trial is told) ends the
/// run with an error, neither hanging nor leaving a trial Running: the trial is
/// failed as interrupted (it runs again on resume), the other worker stops after
/// its trial, and resuming meets the budget.
#[test]
fn a_panic_while_a_trial_is_told_fails_it_as_interrupted_and_stops_the_run() {
    let storage = InMemoryStorage::default();
    let spec = spec("random", "trials = 12\nworkers = 2", BRANIN);
    let objective = Curve(vec![3.0, 2.0, 1.0]);
    storage.probe.panic_on_finish.store(true, Ordering::SeqCst);
    let err = run_study(&storage, &spec, &objective, &TestHost::new(), NO_OVERRIDES).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("internal error") && text.contains("injected"), "{text}");
    let study = storage.find_study("t").unwrap().unwrap();
    let trials = storage.trials(study.id, None).unwrap();
    assert!(trials.iter().all(|t| t.state != TrialState::Running), "a trial was left Running");
    let cut: Vec<&FrozenTrial> =
        trials.iter().filter(|t| t.system_attrs.contains_key(attr::INTERRUPTED)).collect();
    assert_eq!(cut.len(), 1, "the told trial is failed as interrupted");
    assert!(cut[0].fail_reason().unwrap().contains("injected"), "{:?}", cut[0].fail_reason());
    let complete = trials.iter().filter(|t| t.state == TrialState::Complete).count();
    assert!(complete < 12, "the run went on after the panic: {complete} complete");
    let resumed = run_study(&storage, &spec, &objective, &TestHost::new(), NO_OVERRIDES).unwrap();
    assert_eq!(resumed.end, RunEnd::BudgetMet);
    let complete = storage.trials(study.id, Some(&[TrialState::Complete])).unwrap().len();
    assert_eq!(complete, 12);
}

/// `hpo serve`'s external study keeps what its pruner reads of the finished trials:
/// a step reads the store's trials a fixed number of times, at trial 10 and at
/// trial 200 alike.
#[test]
fn an_external_studys_pruned_step_reads_no_more_at_trial_200_than_at_trial_10() {
    use crate::pruner::{Pruner, PrunerKind};
    use crate::run::external::{ExternalStudy, Outcome};
    let storage = InMemoryStorage::default();
    let mut spec = spec("random", "trials = 1000", BRANIN);
    spec.objective = ObjectiveSpec::External;
    spec.pruner = Pruner {
        kind: PrunerKind::Percentile {
            percentile: 50.0,
            startup_trials: 1,
            warmup_steps: 0,
            interval: 1,
        },
        patience: None,
    };
    let study = ExternalStudy::open(&storage, spec).unwrap();
    let mut read_at = Vec::new();
    for n in 0..200u64 {
        let trial = study.ask(&storage).unwrap().unwrap();
        let before = storage.probe.trials_read.load(Ordering::SeqCst);
        for step in 1..=5 {
            study
                .report_step(&storage, trial.number, step, 10.0 - step as f64 + n as f64 % 7.0)
                .unwrap();
        }
        read_at.push(storage.probe.trials_read.load(Ordering::SeqCst) - before);
        study.tell(&storage, trial.number, Outcome::Complete(n as f64 % 7.0)).unwrap();
    }
    assert!(
        read_at[199] <= read_at[10] + 5,
        "a step read {} trials at trial 199, {} at trial 10",
        read_at[199],
        read_at[10]
    );
}
