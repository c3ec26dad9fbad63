//! NSGA-II (Deb et al., 2002) for studies of several objectives, as Optuna's
//! `NSGAIISampler` runs it: generations of `population` trials, parents chosen by
//! tournament from the best of the earlier generations, uniform crossover and
//! per-parameter mutation.
//!
//! Stateless, like every sampler here: trial k belongs to generation
//! `k / population`. Generation 0 is random. For generation g the parents' pool
//! is the best `population` Complete trials of generations before g, by
//! non-dominated rank and then crowding distance (constrained dominance, see
//! [`crate::pareto`]); two tournaments of two pick the parents (lower rank wins,
//! then the larger crowding distance). With probability `crossover_prob` each
//! parameter comes from either parent at even odds, else from the first parent;
//! then each parameter is drawn afresh with probability `mutation_prob` (1 over
//! the number of parameters unless set). A parameter the chosen parent lacks (a
//! conditional one) is drawn afresh.

use rand::Rng;
use rand::rngs::StdRng;

use crate::distribution::{Distribution, ParamValue};
use crate::pareto::{Point, crowding_distances, ranks};
use crate::sampler::Sampler;
use crate::sampler::random::sample_one;
use crate::space::{Params, SearchSpace};
use crate::study::Direction;
use crate::trial::{FrozenTrial, TrialState};

/// NSGA-II's settings (`[sampler] kind = "nsga2"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nsga2Config {
    /// Trials per generation (Optuna's `population_size`); at least 2.
    pub population: usize,
    /// The chance that a child mixes its two parents; else it copies the first.
    pub crossover_prob: f64,
    /// The chance that each parameter is drawn afresh; `None` for 1 over the
    /// number of parameters.
    pub mutation_prob: Option<f64>,
}

impl Default for Nsga2Config {
    fn default() -> Nsga2Config {
        Nsga2Config { population: 50, crossover_prob: 0.9, mutation_prob: None }
    }
}

/// NSGA-II over a study whose objectives go in `directions`.
#[derive(Debug, Clone)]
pub struct Nsga2Sampler {
    /// The settings.
    pub config: Nsga2Config,
    /// Each objective's direction, in the study's order.
    pub directions: Vec<Direction>,
}

impl Sampler for Nsga2Sampler {
    fn sample(&self, space: &SearchSpace, history: &[FrozenTrial], rng: &mut StdRng) -> Params {
        // The trial being proposed is the next number after the history's last.
        let number = history.iter().map(|t| t.number + 1).max().unwrap_or(0);
        let generation = number / self.config.population as u64;
        let first = generation * self.config.population as u64;
        let earlier: Vec<&FrozenTrial> = history
            .iter()
            .filter(|t| t.number < first && t.state == TrialState::Complete)
            .filter(|t| t.confirm_of().is_none())
            .collect();
        let Some(pool) = Pool::best(&earlier, &self.directions, self.config.population) else {
            return space.assign(|param| sample_one(&param.distribution, rng));
        };
        let first_parent = pool.tournament(rng);
        let second_parent = pool.tournament(rng);
        let mix = rng.random_bool(self.config.crossover_prob.clamp(0.0, 1.0));
        let mutation = self
            .config
            .mutation_prob
            .unwrap_or(1.0 / space.params.len().max(1) as f64)
            .clamp(0.0, 1.0);
        space.assign(|param| {
            let parent = if mix && rng.random_bool(0.5) { second_parent } else { first_parent };
            let inherited = parent
                .params
                .get(&param.name)
                .filter(|value| fits(&param.distribution, value))
                .cloned();
            match inherited {
                Some(value) if !rng.random_bool(mutation) => value,
                _ => sample_one(&param.distribution, rng),
            }
        })
    }
}

/// Whether `value` is one of `distribution`'s (a resumed study may have narrowed
/// a range).
fn fits(distribution: &Distribution, value: &ParamValue) -> bool {
    distribution.to_internal(value).is_some_and(|it| distribution.contains_internal(it))
}

/// The parents' pool: trials with their rank and crowding distance.
struct Pool<'a> {
    members: Vec<(&'a FrozenTrial, usize, f64)>,
}

impl<'a> Pool<'a> {
    /// The best `size` of `trials` by rank, then crowding distance (ties by
    /// number); `None` when fewer than two have every objective's value.
    fn best(trials: &[&'a FrozenTrial], directions: &[Direction], size: usize) -> Option<Pool<'a>> {
        let scored: Vec<(&FrozenTrial, Point)> =
            trials.iter().filter_map(|t| Some((*t, Point::of(t, directions)?))).collect();
        if scored.len() < 2 {
            return None;
        }
        let points: Vec<Point> = scored.iter().map(|(_, p)| p.clone()).collect();
        let rank = ranks(&points);
        let mut members = Vec::new();
        for level in 0.. {
            let front: Vec<usize> = (0..points.len()).filter(|&i| rank[i] == level).collect();
            if front.is_empty() || members.len() >= size {
                break;
            }
            let crowding = crowding_distances(&points, &front);
            let mut ordered: Vec<(usize, f64)> = front.into_iter().zip(crowding).collect();
            ordered.sort_by(|a, b| {
                b.1.total_cmp(&a.1).then(scored[a.0].0.number.cmp(&scored[b.0].0.number))
            });
            for (i, distance) in ordered.into_iter().take(size - members.len()) {
                members.push((scored[i].0, level, distance));
            }
        }
        Some(Pool { members })
    }

    /// Two members at random; the better by rank, then crowding distance.
    fn tournament(&self, rng: &mut StdRng) -> &'a FrozenTrial {
        let a = &self.members[rng.random_range(0..self.members.len())];
        let b = &self.members[rng.random_range(0..self.members.len())];
        let a_wins = a.1 < b.1 || (a.1 == b.1 && a.2 >= b.2);
        if a_wins { a.0 } else { b.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distribution::Distribution;
    use crate::sampler::trial_rng;
    use crate::space::ParamDef;
    use crate::trial::TrialId;

    /// Two objectives of one variable x in [0, 4]: x² and (x - 2)², whose Pareto
    /// set is x in [0, 2]; a second parameter y only adds x-independent noise.
    fn objectives(params: &Params) -> [f64; 2] {
        let x = params["x"].as_f64().unwrap();
        let y = params["y"].as_f64().unwrap();
        [x * x + y * y, (x - 2.0).powi(2) + y * y]
    }

    fn space() -> SearchSpace {
        let float = |name: &str| ParamDef {
            name: name.to_owned(),
            distribution: Distribution::Float { low: 0.0, high: 4.0, log: false, step: None },
            condition: None,
            grid: None,
        };
        SearchSpace { params: vec![float("x"), float("y")] }
    }

    /// Runs `n` trials of the two objectives with `sampler`; returns them.
    fn run(sampler: &dyn Sampler, n: u64) -> Vec<FrozenTrial> {
        let space = space();
        let mut trials: Vec<FrozenTrial> = Vec::new();
        for number in 0..n {
            let params = sampler.sample(&space, &trials, &mut trial_rng(7, number));
            let mut trial = FrozenTrial::new(TrialId(number as i64), number, TrialState::Complete);
            trial.set_values(&objectives(&params));
            trial.params = params;
            trials.push(trial);
        }
        trials
    }

    #[test]
    fn later_generations_move_toward_the_front() {
        let sampler = Nsga2Sampler {
            config: Nsga2Config { population: 20, ..Nsga2Config::default() },
            directions: vec![Direction::Minimize, Direction::Minimize],
        };
        let trials = run(&sampler, 200);
        // Distance from the Pareto set is |y| plus how far x lies outside [0, 2].
        let off = |t: &FrozenTrial| {
            let x = t.params["x"].as_f64().unwrap();
            t.params["y"].as_f64().unwrap() + (x - 2.0).max(0.0)
        };
        let mean = |ts: &[FrozenTrial]| ts.iter().map(off).sum::<f64>() / ts.len() as f64;
        let (first, last) = (mean(&trials[..20]), mean(&trials[180..]));
        assert!(last < first / 3.0, "generation 0: {first:.3}, generation 9: {last:.3}");
        // The same seed proposes the same trials.
        assert_eq!(run(&sampler, 60)[59].params, trials[59].params);
    }

    #[test]
    fn the_first_generation_is_random_and_parents_come_from_earlier_generations() {
        let sampler = Nsga2Sampler {
            config: Nsga2Config { population: 10, crossover_prob: 0.0, mutation_prob: Some(0.0) },
            directions: vec![Direction::Minimize, Direction::Minimize],
        };
        let trials = run(&sampler, 30);
        // No crossover, no mutation: every child of generations 1 and 2 copies a
        // trial of an earlier generation.
        for child in &trials[10..] {
            let first = child.number / 10 * 10;
            assert!(
                trials[..first as usize].iter().any(|p| p.params == child.params),
                "trial {} copies no earlier trial",
                child.number
            );
        }
    }
}
