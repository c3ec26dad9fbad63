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
use crate::sampler::{Sampler, from_spec, trial_rng};
use crate::space::{ParamDef, Params, SearchSpace};
use crate::spec::SamplerSpec;
use crate::study::Direction;
use crate::trial::{FrozenTrial, TrialId, TrialState};

/// The trial counts at which regret is reported.
pub const CHECKPOINTS: [usize; 4] = [10, 25, 50, 100];

/// A benchmark problem: a function and the space it is searched over.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The name printed, e.g. "rosenbrock-5d".
    pub name: &'static str,
    /// The function.
    pub function: BenchmarkFunction,
    /// Its search space.
    pub space: SearchSpace,
}

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

/// The six problems of the benchmark: branin, hartmann6, rosenbrock-5d, ackley-5d,
/// levy-5d, and the mixed function (4 floats, a categorical, an int).
pub fn problems() -> Vec<Problem> {
    let mut mixed = box_space(4, -5.0, 5.0);
    mixed.params.push(ParamDef {
        name: "c".into(),
        distribution: Distribution::Categorical {
            choices: ["a", "b", "c"].iter().map(|c| ParamValue::Str((*c).into())).collect(),
        },
        condition: None,
        grid: None,
    });
    mixed.params.push(ParamDef {
        name: "k".into(),
        distribution: Distribution::Int { low: -5, high: 10, log: false, step: 1 },
        condition: None,
        grid: None,
    });
    let branin =
        SearchSpace { params: vec![float("x0".into(), -5.0, 10.0), float("x1".into(), 0.0, 15.0)] };
    vec![
        Problem { name: "branin", function: BenchmarkFunction::Branin, space: branin },
        Problem {
            name: "hartmann6",
            function: BenchmarkFunction::Hartmann6,
            space: box_space(6, 0.0, 1.0),
        },
        Problem {
            name: "rosenbrock-5d",
            function: BenchmarkFunction::Rosenbrock,
            space: box_space(5, -5.0, 10.0),
        },
        Problem {
            name: "ackley-5d",
            function: BenchmarkFunction::Ackley,
            space: box_space(5, -32.768, 32.768),
        },
        Problem {
            name: "levy-5d",
            function: BenchmarkFunction::Levy,
            space: box_space(5, -10.0, 10.0),
        },
        Problem { name: "mixed", function: BenchmarkFunction::Mixed, space: mixed },
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
    let mut best = f64::INFINITY;
    let mut regret = Vec::new();
    let mut sampler_seconds = 0.0;
    for number in 0..trials as u64 {
        let started = clock();
        let params: Params = sampler.sample(&problem.space, &history, &mut trial_rng(seed, number));
        sampler_seconds += clock() - started;
        let value = problem.function.evaluate(&params);
        best = best.min(value);
        if CHECKPOINTS.contains(&(number as usize + 1)) {
            regret.push(best - problem.function.optimum());
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
                    let sampler = from_spec(samplers[s].1, Direction::Minimize);
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
/// proposals with one memo, as a run keeps it. This is the cost at that history
/// size, not an average over a run. Timed by `clock`.
pub fn proposal_cost(
    sampler: &dyn Sampler,
    trials: usize,
    params: usize,
    clock: &Stopwatch,
) -> f64 {
    let space = box_space(params, 0.0, 1.0);
    let mut rng = trial_rng(0, u64::MAX);
    let history: Vec<FrozenTrial> = (0..trials as u64)
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
    let mut times: Vec<f64> = (0..21)
        .map(|k| {
            let started = clock();
            let mut rng = trial_rng(1, trials as u64 + k);
            sampler.sample_with_memo(&space, &history, &memo, &mut rng);
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
            problem.function.check_space(&problem.space).unwrap();
        }
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
