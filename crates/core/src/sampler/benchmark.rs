//! The sampler benchmark behind `hpo bench samplers`: samplers against the benchmark
//! functions with known optima, many seeds each, in memory (no store, no objective
//! cost), so what it measures is the quality of the proposals and the time spent
//! proposing.
//!
//! Each run is `trials` proposals of one sampler on one function with one seed; the
//! simple regret after t trials is (best value among the first t) - (known optimum).
//! Runs are spread over threads; every run is a pure function of its seed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::distribution::{Distribution, ParamValue};
use crate::functions::BenchmarkFunction;
use crate::sampler::{Kept, Sampler, from_spec, trial_rng};
use crate::space::{ParamDef, Params, SearchSpace};
use crate::spec::SamplerSpec;
use crate::study::Direction;
use crate::trial::{FrozenTrial, TrialId, TrialState};

/// The trial counts at which regret is reported.
pub const CHECKPOINTS: [usize; 4] = [10, 25, 50, 100];

/// A benchmark problem: what it scores and the space it is searched over.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The name printed, e.g. "rosenbrock-5d".
    pub name: &'static str,
    /// What a trial scores.
    pub scored: Scored,
    /// Its search space.
    pub space: SearchSpace,
}

/// What a benchmark problem scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scored {
    /// A benchmark function with a known optimum.
    Function(BenchmarkFunction),
    /// A surface shaped like a real tuning study.
    Tuning(Tuning),
}

/// Problems shaped like real tuning studies, each with a known optimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuning {
    /// A validation loss over a log-scale learning rate and weight decay, dropout
    /// and a log-scale batch size: the best learning rate grows with the batch,
    /// the best decay with the rate, and rates above 0.1 diverge. Minimum 0.2 at
    /// lr = 10^-2.5, weight decay 1e-4, dropout 0.2, batch 64.
    LearningRate,
    /// SGD with momentum or Adam with its beta2 (conditional parameters), a
    /// learning rate and a weight decay for both, each optimizer best at its own
    /// rate and decay. Minimum 0.1 with SGD at lr = 10^-1.5, momentum 0.9, decay
    /// 1e-4; Adam's best is 0.12.
    Optimizers,
    /// hartmann6 observed with Gaussian noise of standard deviation 0.1; regret is
    /// the noise-free value of the trial that looked best.
    NoisyHartmann6,
}

impl Scored {
    /// The value a sampler sees for trial `number` of a run with `seed`.
    pub fn observed(self, params: &Params, seed: u64, number: u64) -> f64 {
        let exact = self.exact(params);
        match self {
            Scored::Tuning(Tuning::NoisyHartmann6) => {
                let mut rng = trial_rng(seed ^ NOISE_SALT, number);
                let z: f64 = rand::Rng::sample(&mut rng, rand_distr::StandardNormal);
                exact + 0.1 * z
            }
            _ => exact,
        }
    }

    /// The noise-free value at `params`.
    pub fn exact(self, params: &Params) -> f64 {
        let num = |name: &str| params.get(name).and_then(ParamValue::as_f64).unwrap_or(f64::NAN);
        match self {
            Scored::Function(function) => function.evaluate(params),
            Scored::Tuning(Tuning::NoisyHartmann6) => BenchmarkFunction::Hartmann6.evaluate(params),
            Scored::Tuning(Tuning::LearningRate) => {
                let (lr, wd, b) =
                    (num("lr").log10(), num("weight_decay").log10(), num("batch").log2());
                let u = lr + 2.5 - 0.25 * (b - 6.0);
                let v = wd + 4.0;
                0.2 + 0.08 * u * u
                    + 0.02 * (v - 0.5 * u).powi(2)
                    + 0.4 * (num("dropout") - 0.2).powi(2)
                    + 0.005 * (b - 6.0).powi(2)
                    + 0.3 * (lr + 1.0).max(0.0).powi(2)
            }
            Scored::Tuning(Tuning::Optimizers) => {
                let (lr, wd) = (num("lr").log10(), num("weight_decay").log10());
                if params.contains_key("momentum") {
                    0.1 + 0.06 * (lr + 1.5).powi(2)
                        + 0.5 * (num("momentum") - 0.9).powi(2)
                        + 0.02 * (wd + 4.0).powi(2)
                } else {
                    0.12 + 0.06 * (lr + 3.0).powi(2)
                        + 20.0 * (num("beta2") - 0.995).powi(2)
                        + 0.02 * (wd + 5.0).powi(2)
                }
            }
        }
    }

    /// The global minimum.
    pub fn optimum(self) -> f64 {
        match self {
            Scored::Function(function) => function.optimum(),
            Scored::Tuning(Tuning::NoisyHartmann6) => BenchmarkFunction::Hartmann6.optimum(),
            Scored::Tuning(Tuning::LearningRate) => 0.2,
            Scored::Tuning(Tuning::Optimizers) => 0.1,
        }
    }
}

/// Mixed into a run's seed for its noise, so the noise is not the sampler's draws.
const NOISE_SALT: u64 = 0x6e6f_6973_6521;

fn float(name: String, low: f64, high: f64) -> ParamDef {
    ParamDef {
        name,
        distribution: Distribution::Float { low, high, log: false, step: None },
        condition: None,
        grid: None,
    }
}

fn box_space(dim: usize, low: f64, high: f64) -> SearchSpace {
    SearchSpace { params: (0..dim).map(|i| float(format!("x{i}"), low, high)).collect() }
}

fn categorical(name: &str, choices: &[&str]) -> ParamDef {
    let choices = choices.iter().map(|c| ParamValue::Str((*c).into())).collect();
    ParamDef {
        name: name.into(),
        distribution: Distribution::Categorical { choices },
        condition: None,
        grid: None,
    }
}

fn log_float(name: &str, low: f64, high: f64) -> ParamDef {
    ParamDef {
        name: name.into(),
        distribution: Distribution::Float { low, high, log: true, step: None },
        condition: None,
        grid: None,
    }
}

/// The spaces of the [`Tuning`] problems.
fn tuning_space(tuning: Tuning) -> SearchSpace {
    match tuning {
        Tuning::NoisyHartmann6 => box_space(6, 0.0, 1.0),
        Tuning::LearningRate => SearchSpace {
            params: vec![
                log_float("lr", 1e-5, 1.0),
                log_float("weight_decay", 1e-6, 1e-1),
                float("dropout".into(), 0.0, 0.5),
                ParamDef {
                    name: "batch".into(),
                    distribution: Distribution::Int { low: 16, high: 512, log: true, step: 1 },
                    condition: None,
                    grid: None,
                },
            ],
        },
        Tuning::Optimizers => {
            let when = |choice: &str| {
                Some(crate::space::Condition {
                    parent: "optimizer".into(),
                    values: vec![ParamValue::Str(choice.into())],
                })
            };
            let mut momentum = float("momentum".into(), 0.0, 0.99);
            momentum.condition = when("sgd");
            let mut beta2 = float("beta2".into(), 0.9, 0.9999);
            beta2.condition = when("adam");
            SearchSpace {
                params: vec![
                    categorical("optimizer", &["sgd", "adam"]),
                    log_float("lr", 1e-5, 1.0),
                    momentum,
                    beta2,
                    log_float("weight_decay", 1e-6, 1e-2),
                ],
            }
        }
    }
}

/// The problems of the benchmark: branin, hartmann6, rosenbrock-5d, ackley-5d,
/// levy-5d and the mixed function (4 floats, a categorical, an int); then
/// rosenbrock-20d and the [`Tuning`] problems (tuning-lr, tuning-optimizers,
/// noisy-hartmann6).
pub fn problems() -> Vec<Problem> {
    let mut mixed = box_space(4, -5.0, 5.0);
    mixed.params.push(categorical("c", &["a", "b", "c"]));
    mixed.params.push(ParamDef {
        name: "k".into(),
        distribution: Distribution::Int { low: -5, high: 10, log: false, step: 1 },
        condition: None,
        grid: None,
    });
    let branin =
        SearchSpace { params: vec![float("x0".into(), -5.0, 10.0), float("x1".into(), 0.0, 15.0)] };
    vec![
        Problem {
            name: "branin",
            scored: Scored::Function(BenchmarkFunction::Branin),
            space: branin,
        },
        Problem {
            name: "hartmann6",
            scored: Scored::Function(BenchmarkFunction::Hartmann6),
            space: box_space(6, 0.0, 1.0),
        },
        Problem {
            name: "rosenbrock-5d",
            scored: Scored::Function(BenchmarkFunction::Rosenbrock),
            space: box_space(5, -5.0, 10.0),
        },
        Problem {
            name: "ackley-5d",
            scored: Scored::Function(BenchmarkFunction::Ackley),
            space: box_space(5, -32.768, 32.768),
        },
        Problem {
            name: "levy-5d",
            scored: Scored::Function(BenchmarkFunction::Levy),
            space: box_space(5, -10.0, 10.0),
        },
        Problem { name: "mixed", scored: Scored::Function(BenchmarkFunction::Mixed), space: mixed },
        Problem {
            name: "rosenbrock-20d",
            scored: Scored::Function(BenchmarkFunction::Rosenbrock),
            space: box_space(20, -5.0, 10.0),
        },
        Problem {
            name: "tuning-lr",
            scored: Scored::Tuning(Tuning::LearningRate),
            space: tuning_space(Tuning::LearningRate),
        },
        Problem {
            name: "tuning-optimizers",
            scored: Scored::Tuning(Tuning::Optimizers),
            space: tuning_space(Tuning::Optimizers),
        },
        Problem {
            name: "noisy-hartmann6",
            scored: Scored::Tuning(Tuning::NoisyHartmann6),
            space: tuning_space(Tuning::NoisyHartmann6),
        },
    ]
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Run {
    /// Simple regret after each of [`CHECKPOINTS`] (those not above the run's length).
    pub regret: Vec<f64>,
    /// Seconds spent in the sampler over the whole run.
    pub sampler_seconds: f64,
}

/// A monotonic clock the caller reads for the benchmark, in seconds: hpo-core reads
/// none of its own.
pub type Stopwatch = dyn Fn() -> f64 + Sync;

/// One run: `trials` proposals of `sampler` on `problem` with study seed `seed`,
/// timed by `clock`.
pub fn run_one(
    problem: &Problem,
    sampler: &dyn Sampler,
    trials: usize,
    seed: u64,
    clock: &Stopwatch,
) -> Run {
    let mut history: Vec<FrozenTrial> = Vec::with_capacity(trials);
    // The best observed value, and the noise-free value of the trial that had it.
    let (mut best, mut best_exact) = (f64::INFINITY, f64::INFINITY);
    let mut regret = Vec::new();
    let mut sampler_seconds = 0.0;
    for number in 0..trials as u64 {
        let started = clock();
        let params: Params = sampler.sample(&problem.space, &history, &mut trial_rng(seed, number));
        sampler_seconds += clock() - started;
        let value = problem.scored.observed(&params, seed, number);
        if value < best {
            (best, best_exact) = (value, problem.scored.exact(&params));
        }
        if CHECKPOINTS.contains(&(number as usize + 1)) {
            regret.push(best_exact - problem.scored.optimum());
        }
        let mut trial = FrozenTrial::new(TrialId(number as i64 + 1), number, TrialState::Complete);
        trial.distributions =
            problem.space.params.iter().map(|p| (p.name.clone(), p.distribution.clone())).collect();
        trial.params = params;
        trial.value = Some(value);
        history.push(trial);
    }
    Run { regret, sampler_seconds }
}

/// The runs of one sampler on one problem.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The problem's name.
    pub problem: &'static str,
    /// The sampler's name.
    pub sampler: String,
    /// One run per seed, in seed order.
    pub runs: Vec<Run>,
}

/// Runs every (problem, sampler, seed) with the given seeds on `threads` threads,
/// timed by `clock`.
pub fn run_all(
    problems: &[Problem],
    samplers: &[(String, SamplerSpec)],
    seeds: std::ops::Range<u64>,
    trials: usize,
    threads: usize,
    clock: &Stopwatch,
) -> Vec<Cell> {
    let jobs: Vec<(usize, usize, u64)> = (0..problems.len())
        .flat_map(|p| {
            let seeds = seeds.clone();
            (0..samplers.len()).flat_map(move |s| seeds.clone().map(move |seed| (p, s, seed)))
        })
        .collect();
    let results: Mutex<Vec<Option<Run>>> = Mutex::new(vec![None; jobs.len()]);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let idx = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(p, s, seed)) = jobs.get(idx) else { break };
                    let sampler = from_spec(samplers[s].1, &[Direction::Minimize]);
                    let run = run_one(&problems[p], sampler.as_ref(), trials, seed, clock);
                    results.lock().expect("no panics while holding the lock")[idx] = Some(run);
                }
            });
        }
    });
    let mut results = results.into_inner().expect("threads joined").into_iter();
    let mut cells = Vec::new();
    for problem in problems {
        for (name, _) in samplers {
            let runs =
                seeds.clone().map(|_| results.next().flatten().expect("every job ran")).collect();
            cells.push(Cell { problem: problem.name, sampler: name.clone(), runs });
        }
    }
    cells
}

/// Milliseconds per proposal of `sampler` on a study of `trials` finished trials over
/// `params` float parameters in [0, 1] (values: a shifted sphere), median over 21
/// proposals with one memo, as a run keeps it, each after one more trial finished
/// (as in a run, so nothing kept from the proposal before stands in for the work
/// a new trial makes). This is the cost at that history size, not an average over
/// a run. Timed by `clock`.
pub fn proposal_cost(
    sampler: &dyn Sampler,
    trials: usize,
    params: usize,
    clock: &Stopwatch,
) -> f64 {
    let space = box_space(params, 0.0, 1.0);
    let mut rng = trial_rng(0, u64::MAX);
    const PROPOSALS: usize = 21;
    let history: Vec<FrozenTrial> = (0..(trials + PROPOSALS) as u64)
        .map(|number| {
            let values = crate::sampler::RandomSampler.sample(&space, &[], &mut rng);
            let value =
                values.values().filter_map(ParamValue::as_f64).map(|v| (v - 0.3).powi(2)).sum();
            let mut trial =
                FrozenTrial::new(TrialId(number as i64 + 1), number, TrialState::Complete);
            trial.params = values;
            trial.value = Some(value);
            trial
        })
        .collect();
    let memo = crate::sampler::Memo::default();
    let history: Vec<&FrozenTrial> = history.iter().collect();
    let mut times: Vec<f64> = (0..PROPOSALS)
        .map(|k| {
            let history = &history[..trials + k];
            let started = clock();
            let mut rng = trial_rng(1, (trials + k) as u64);
            sampler.sample_with_memo(&space, Kept { trials: history, memo: &memo }, &mut rng);
            (clock() - started) * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// The median and the first and third quartiles (linear interpolation).
pub fn quartiles(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if sorted.is_empty() {
            return f64::NAN;
        }
        let pos = q * (sorted.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
    };
    (at(0.5), at(0.25), at(0.75))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_interpolate() {
        assert_eq!(quartiles(&[4.0, 1.0, 3.0, 2.0, 5.0]), (3.0, 2.0, 4.0));
        assert_eq!(quartiles(&[1.0, 2.0]), (1.5, 1.25, 1.75));
    }

    #[test]
    fn every_problem_space_fits_its_function() {
        for problem in problems() {
            if let Scored::Function(function) = problem.scored {
                function.check_space(&problem.space).unwrap();
            }
        }
    }

    #[test]
    fn each_tuning_problem_has_its_optimum_where_its_documentation_says() {
        let at = |pairs: &[(&str, ParamValue)]| -> Params {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
        };
        let lr = at(&[
            ("lr", ParamValue::Float(10f64.powf(-2.5))),
            ("weight_decay", ParamValue::Float(1e-4)),
            ("dropout", ParamValue::Float(0.2)),
            ("batch", ParamValue::Int(64)),
        ]);
        let scored = Scored::Tuning(Tuning::LearningRate);
        assert!((scored.exact(&lr) - scored.optimum()).abs() < 1e-12);
        let mut worse = lr.clone();
        worse.insert("batch".into(), ParamValue::Int(256));
        assert!(scored.exact(&worse) > scored.optimum() + 1e-3);
        let sgd = at(&[
            ("optimizer", ParamValue::Str("sgd".into())),
            ("lr", ParamValue::Float(10f64.powf(-1.5))),
            ("momentum", ParamValue::Float(0.9)),
            ("weight_decay", ParamValue::Float(1e-4)),
        ]);
        let scored = Scored::Tuning(Tuning::Optimizers);
        assert!((scored.exact(&sgd) - 0.1).abs() < 1e-12);
        let adam = at(&[
            ("optimizer", ParamValue::Str("adam".into())),
            ("lr", ParamValue::Float(1e-3)),
            ("beta2", ParamValue::Float(0.995)),
            ("weight_decay", ParamValue::Float(1e-5)),
        ]);
        assert!((scored.exact(&adam) - 0.12).abs() < 1e-12);
        // Noise moves what a sampler sees, not the regret's noise-free value.
        let noisy = Scored::Tuning(Tuning::NoisyHartmann6);
        let x: Params = (0..6).map(|i| (format!("x{i}"), ParamValue::Float(0.5))).collect();
        assert_ne!(noisy.observed(&x, 1, 2), noisy.exact(&x));
        assert_eq!(noisy.observed(&x, 1, 2), noisy.observed(&x, 1, 2));
    }

    #[test]
    fn runs_are_reproducible_and_regret_never_rises() {
        let problems = problems();
        let samplers = [("random".to_string(), SamplerSpec::Random)];
        let a = run_all(&problems[..2], &samplers, 0..3, 50, 2, &|| 0.0);
        let b = run_all(&problems[..2], &samplers, 0..3, 50, 1, &|| 0.0);
        for (a, b) in a.iter().zip(&b) {
            for (ra, rb) in a.runs.iter().zip(&b.runs) {
                assert_eq!(ra.regret, rb.regret);
                assert_eq!(ra.regret.len(), 3, "checkpoints 10, 25, 50");
                assert!(ra.regret.windows(2).all(|w| w[1] <= w[0]), "{:?}", ra.regret);
                assert!(ra.regret.iter().all(|r| *r >= -1e-9));
            }
        }
    }
}
