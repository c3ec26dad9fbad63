//! The Tree-structured Parzen Estimator (Bergstra et al. 2011), with the components
//! Watanabe (2023, "Tree-structured Parzen estimator: understanding its algorithm
//! components and their roles for better empirical performance") found to matter.
//!
//! After `startup_trials` random trials, the finished trials are ranked (complete
//! ones by value, then pruned ones by how far they got and their last reported
//! value) and split: the best `min(ceil(gamma n), 25)` are "good", the rest "bad".
//! Each side becomes a Parzen estimator, a weighted mixture with one kernel per
//! trial plus a wide prior kernel. In the bad estimator every trial weighs 1 up to
//! 25 trials, then older ones less; the prior weighs `prior_weight`. In the good
//! estimator (with `good_weights = Improvement`, the default) a trial weighs by how
//! much it improves on the best bad value, `threshold - loss`, and the prior by
//! `prior_weight` times the mean of those weights, so the best trials pull hardest (Watanabe 2023,
//! "EI" weighting). `candidates` points are drawn from the good estimator l(x), and
//! the one maximizing l(x) / g(x) (the bad estimator) is chosen.
//!
//! Defaults that differ from Optuna 5's TPESampler (gamma 0.1, uniform good
//! weights, 24 candidates): gamma 0.2, improvement weights, 48 candidates. Each is
//! one of the components Watanabe (2023) studies; together they lower the median
//! regret on all six benchmark functions of `hpo bench samplers` (docs/benchmarks.md
//! has the numbers, and `--samplers tpe-optuna` runs Optuna's settings).
//!
//! Kernels: numeric parameters live in a transformed space (log params in log
//! space) and get a normal kernel truncated to the domain; ints and stepped floats
//! are discrete, their likelihood the probability mass of their step's interval.
//! Categoricals get a kernel that puts `1` on the trial's choice plus
//! `prior_weight / kernels` on every choice, normalized. A numeric kernel's width
//! is the larger distance to its sorted neighbours (the domain's ends for a single
//! trial; 0 for a value observed more than once), clipped to
//! [range / min(100, kernels + 1), range]. With `multivariate =
//! true` (the default, as in Optuna 5) a trial's kernels on the parameters that
//! exist together form one joint kernel (the same mixture component for all of
//! them); with `multivariate = false` every parameter has its own mixture.
//!
//! Conditional parameters: parameters with the same condition form a group, and a
//! group is fitted only on the trials where it exists, after the groups it depends
//! on were chosen (Optuna's `group = True`).
//!
//! Parallel workers: with `constant_liar = true` (the default), trials still
//! running count as bad observations, so the density of bad points rises where
//! other workers are already looking and proposals spread out.

use rand::Rng;
use rand::rngs::StdRng;

use crate::distribution::{Distribution, ParamValue, round_to_step};
use crate::sampler::random::sample_one;
use crate::sampler::{Kept, Memo, Sampler};
use crate::space::{Condition, ParamDef, Params, SearchSpace};
use crate::study::Direction;
use crate::trial::{FrozenTrial, TrialId, TrialState};

/// Settings of the TPE sampler (`[sampler] kind = "tpe"` and these keys).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TpeConfig {
    /// Random trials before the estimators take over (default 10).
    pub startup_trials: usize,
    /// Points drawn from the good estimator per proposal (default 24).
    pub candidates: usize,
    /// One joint kernel over the parameters that exist together (default true),
    /// or every parameter on its own.
    pub multivariate: bool,
    /// Count running trials as bad observations (default true).
    pub constant_liar: bool,
    /// The weight of the prior kernel against one trial's (default 1.0); in the
    /// good estimator with improvement weights, against the mean trial weight.
    pub prior_weight: f64,
    /// The fraction of ranked trials that are good, before the cap of 25
    /// (default 0.2).
    pub gamma: f64,
    /// How trials weigh in the good estimator (default [`GoodWeights::Improvement`]).
    pub good_weights: GoodWeights,
}

/// How the trials of the good estimator are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoodWeights {
    /// Each by `threshold - loss`, its improvement on the best bad value (uniform
    /// when some good trial or the threshold has no finite complete value, e.g.
    /// pruned trials).
    Improvement,
    /// All equal (Optuna's default).
    Uniform,
}

impl Default for TpeConfig {
    fn default() -> TpeConfig {
        TpeConfig {
            startup_trials: 10,
            candidates: 48,
            multivariate: true,
            constant_liar: true,
            prior_weight: 1.0,
            gamma: 0.2,
            good_weights: GoodWeights::Improvement,
        }
    }
}

impl TpeConfig {
    /// Optuna 5's TPESampler defaults, for comparison (`hpo bench samplers
    /// --samplers tpe-optuna`).
    pub fn optuna() -> TpeConfig {
        TpeConfig {
            candidates: 24,
            gamma: 0.1,
            good_weights: GoodWeights::Uniform,
            ..TpeConfig::default()
        }
    }
}

/// The TPE sampler for a study with `direction`.
#[derive(Debug, Clone)]
pub struct TpeSampler {
    /// Its settings.
    pub config: TpeConfig,
    /// Whether lower or higher values are better.
    pub direction: Direction,
}

/// Each finished trial's parameters in the estimator's space, kept across
/// proposals in the study's [`Memo`]: reading them from each trial's map again at
/// every proposal is most of a proposal's cost once a study holds thousands of
/// trials. Laid out by trial number (dense in a study), each trial's values in the
/// order of the search space's parameters (NaN where the trial lacks one: an
/// encoded value is never NaN, and a row of plain numbers is half the room).
///
/// Kept with them, so that fitting the bad estimator (hundreds of kernels, refitted
/// at every proposal while one trial changes) does only the new trial's work:
/// each parameter's values in sorted order, and the kernel last fitted at each
/// trial on it.
#[derive(Default)]
struct Points {
    /// The parameters in the space (the width of a row).
    width: usize,
    /// The trial kept at each number, if any.
    ids: Vec<Option<TrialId>>,
    /// `ids.len()` rows of one value per parameter of the space, NaN for none.
    values: Vec<f64>,
    /// For each parameter of the space, the kept trials' values on it in ascending
    /// order, each with its trial's number and the kernel last fitted there;
    /// brought up to date by [`Points::sorted`].
    sorted: Vec<Vec<Sorted>>,
    /// The numbers encoded since `sorted` was brought up to date; `None` when it
    /// must be built again (a row was encoded again, or none was ever built).
    fresh: Option<Vec<usize>>,
}

/// A kept trial's value on one parameter, its number, and the kernel last fitted
/// there: its width and the log of its mass inside the bounds (width NaN: none).
/// Kept in the order of the values, so a fit reads them in the order it walks.
#[derive(Clone, Copy)]
struct Sorted {
    value: f64,
    number: usize,
    sigma: f64,
    log_z: f64,
}

impl Sorted {
    fn new(value: f64, number: usize) -> Sorted {
        Sorted { value, number, sigma: f64::NAN, log_z: 0.0 }
    }
}

impl Points {
    /// `trial`'s row, encoded from its parameters the first time (NaN where it
    /// lacks one).
    fn of(&mut self, space: &SearchSpace, seen: &Seen<'_>) -> &[f64] {
        let (trial, width) = (seen.trial, space.params.len());
        let at = usize::try_from(seen.number).unwrap_or(usize::MAX);
        // Numbers are dense within a study; a far one is not worth the room.
        if at > self.ids.len() + 100_000 || width != self.width {
            self.ids.clear();
            self.values.clear();
            self.width = width;
            self.fresh = None;
        }
        if at >= self.ids.len() {
            self.ids.resize(at + 1, None);
            self.values.resize((at + 1) * width, f64::NAN);
        }
        let row = &mut self.values[at * width..(at + 1) * width];
        if self.ids[at] != Some(seen.id) {
            for (slot, p) in row.iter_mut().zip(&space.params) {
                *slot = trial
                    .params
                    .get(&p.name)
                    .and_then(|value| Dim::of(&p.distribution).encode(&p.distribution, value))
                    .unwrap_or(f64::NAN);
            }
            match (&mut self.fresh, self.ids[at]) {
                (Some(fresh), None) => fresh.push(at),
                _ => self.fresh = None,
            }
            self.ids[at] = Some(seen.id);
        }
        row
    }

    /// The kept trials' values on parameter `k` in ascending order, with their
    /// numbers and last kernels: the trials encoded since the last call inserted
    /// (no kernel yet), or all sorted again, every kernel forgotten, when more than
    /// 64 were or a row was encoded again.
    fn sorted(&mut self, k: usize) -> &mut [Sorted] {
        let width = self.width;
        match self.fresh.take() {
            Some(fresh) if fresh.len() <= 64 && self.sorted.len() == width => {
                for at in fresh {
                    for (k, column) in self.sorted.iter_mut().enumerate() {
                        let v = self.values[at * width + k];
                        if !v.is_nan() {
                            let pos = column.partition_point(|e| e.value.total_cmp(&v).is_le());
                            column.insert(pos, Sorted::new(v, at));
                        }
                    }
                }
            }
            _ => {
                self.sorted = (0..width)
                    .map(|k| {
                        let mut column: Vec<Sorted> = (0..self.ids.len())
                            .filter(|at| self.ids[*at].is_some())
                            .map(|at| Sorted::new(self.values[at * width + k], at))
                            .filter(|entry| !entry.value.is_nan())
                            .collect();
                        column.sort_unstable_by(|a, b| a.value.total_cmp(&b.value));
                        column
                    })
                    .collect();
            }
        }
        self.fresh = Some(Vec::new());
        &mut self.sorted[k]
    }
}

impl Sampler for TpeSampler {
    fn sample(&self, space: &SearchSpace, history: &[FrozenTrial], rng: &mut StdRng) -> Params {
        let history: Vec<&FrozenTrial> = history.iter().collect();
        self.propose(space, &history, None, rng)
    }

    fn sample_with_memo(&self, space: &SearchSpace, history: Kept<'_>, rng: &mut StdRng) -> Params {
        self.propose(space, history.trials, Some(history.memo), rng)
    }
}

impl TpeSampler {
    /// A proposal; finished trials' points come from `memo` (kept there the first
    /// time) when given, else from the trials themselves.
    fn propose(
        &self,
        space: &SearchSpace,
        history: &[&FrozenTrial],
        memo: Option<&Memo>,
        rng: &mut StdRng,
    ) -> Params {
        self.propose_ranked(space, history, rank(history, self.direction), memo, rng)
    }

    /// A proposal from trials already ranked best first (`rank`, or
    /// [`rank_fronts`] for several objectives).
    fn propose_ranked(
        &self,
        space: &SearchSpace,
        history: &[&FrozenTrial],
        ranked: Vec<Seen<'_>>,
        memo: Option<&Memo>,
        rng: &mut StdRng,
    ) -> Params {
        // The complete trials with a finite value are the ones with a loss.
        let n_complete = ranked.iter().filter(|t| t.loss.is_some()).count();
        if n_complete < self.config.startup_trials.max(1) {
            return space.assign(|param| sample_one(&param.distribution, rng));
        }
        let running: Vec<Seen<'_>> = if self.config.constant_liar {
            let running = history.iter().filter(|t| t.state == TrialState::Running);
            running.map(|t| Seen::new(t, None)).collect()
        } else {
            Vec::new()
        };
        let known = Known { space, memo };
        let mut chosen = Params::new();
        for group in groups(space) {
            if !group[0].is_active(&chosen) {
                continue;
            }
            let values = if self.config.multivariate {
                self.sample_group(&group, &ranked, &running, &known, rng)
            } else {
                let mut values = Vec::new();
                for param in &group {
                    values.extend(self.sample_group(&[*param], &ranked, &running, &known, rng));
                }
                values
            };
            chosen.extend(values);
        }
        chosen
    }

    /// Values for the parameters of one group, from the trials where they all exist.
    fn sample_group(
        &self,
        group: &[&ParamDef],
        ranked: &[Seen<'_>],
        running: &[Seen<'_>],
        known: &Known<'_>,
        rng: &mut StdRng,
    ) -> Vec<(String, ParamValue)> {
        let dims: Vec<Dim> = group.iter().map(|p| Dim::of(&p.distribution)).collect();
        // The group's parameters in name order, to read a trial's (name-ordered)
        // parameters in one merged pass instead of a map lookup each.
        let mut by_name: Vec<usize> = (0..group.len()).collect();
        by_name.sort_unstable_by(|a, b| group[*a].name.cmp(&group[*b].name));
        // Where each of the group's parameters is in the search space.
        let in_space: Vec<usize> = group
            .iter()
            .map(|p| known.space.params.iter().position(|q| q.name == p.name).unwrap_or(usize::MAX))
            .collect();
        // `points`: the memo's rows of points, when there is a memo.
        let observe = |trials: &[Seen<'_>], mut points: Option<&mut Points>| -> Observations {
            let mut out = Observations::with_capacity(group.len(), trials.len());
            let mut point = vec![0.0; group.len()];
            let kept = points.is_some();
            // `point` filled with trial `t`'s values, or `None` when it lacks one of
            // the group's parameters.
            let mut read = |point: &mut [f64], t: &Seen<'_>| -> Option<()> {
                if let Some(points) = points.as_deref_mut() {
                    let row = points.of(known.space, t);
                    for (i, k) in in_space.iter().enumerate() {
                        point[i] = *row.get(*k).filter(|v| !v.is_nan())?;
                    }
                } else {
                    let mut params = t.trial.params.iter();
                    for &i in &by_name {
                        let value = loop {
                            let (name, value) = params.next()?;
                            match name.as_str().cmp(group[i].name.as_str()) {
                                std::cmp::Ordering::Less => continue,
                                std::cmp::Ordering::Equal => break value,
                                std::cmp::Ordering::Greater => return None,
                            }
                        };
                        point[i] = dims[i].encode(&group[i].distribution, value)?;
                    }
                }
                Some(())
            };
            for t in trials {
                if read(&mut point, t).is_none() {
                    continue;
                }
                out.push(t.number, t.loss, kept, &point);
            }
            out
        };
        // Read through the memo (other proposals wait meanwhile): copying its rows
        // out would cost more than reading them.
        let observed = match known.memo {
            Some(memo) => memo.with(Points::default, |points| observe(ranked, Some(points))),
            None => observe(ranked, None),
        };
        if observed.is_empty() {
            return group
                .iter()
                .map(|p| (p.name.clone(), sample_one(&p.distribution, rng)))
                .collect();
        }
        let n_good = gamma(observed.len(), self.config.gamma);
        let mut good = observed;
        let mut bad = good.split_off(n_good);
        let good = good;
        let good_weights = match self.config.good_weights {
            GoodWeights::Improvement => {
                improvement_weights(&good.losses, bad.losses.first().copied().flatten())
            }
            GoodWeights::Uniform => None,
        };
        bad.append(observe(running, None));
        let prior_weight = self.config.prior_weight;
        let good = match good_weights {
            Some(weights) => {
                let mean = weights.iter().sum::<f64>() / weights.len() as f64;
                Parzen::fit(&dims, &good, &weights, prior_weight * mean, None)
            }
            None => Parzen::fit(&dims, &good, &age_weights_of(&good.numbers), prior_weight, None),
        }
        .for_drawing(&dims);
        let bad_weights = age_weights_of(&bad.numbers);
        let bad = match known.memo {
            Some(memo) => memo.with(Points::default, |points| {
                let kept = KeptFit { points, in_space: &in_space };
                Parzen::fit(&dims, &bad, &bad_weights, prior_weight, Some(kept))
            }),
            None => Parzen::fit(&dims, &bad, &bad_weights, prior_weight, None),
        };
        let mut best: Option<(f64, Vec<f64>)> = None;
        let mut scratch = DensityScratch::default();
        for _ in 0..self.config.candidates.max(1) {
            let x = good.sample(&dims, rng);
            let score = good.log_density(&dims, &x, &mut scratch)
                - bad.log_density(&dims, &x, &mut scratch);
            if best.as_ref().is_none_or(|(s, _)| score > *s) {
                best = Some((score, x));
            }
        }
        let (_, x) = best.expect("at least one candidate");
        group
            .iter()
            .zip(&dims)
            .zip(&x)
            .map(|((p, dim), v)| (p.name.clone(), dim.decode(&p.distribution, *v)))
            .collect()
    }
}

/// The search space, and the memo (with the finished trials' points) if any.
struct Known<'a> {
    space: &'a SearchSpace,
    memo: Option<&'a Memo>,
}

/// The finished trials, best first: complete ones with a finite value by value,
/// then pruned ones (further first, then by their last value), then complete ones
/// whose value is not finite. Failed, waiting and running trials are left out.
fn rank<'a>(history: &[&'a FrozenTrial], direction: Direction) -> Vec<Seen<'a>> {
    let loss = |v: f64| if direction == Direction::Maximize { -v } else { v };
    let key = |t: &FrozenTrial| -> (u8, f64, f64) {
        match (t.state, t.value) {
            (TrialState::Complete, Some(v)) if v.is_finite() => (0, loss(v), 0.0),
            (TrialState::Pruned, _) => match t.intermediate_values.iter().next_back() {
                Some((step, v)) if v.is_finite() => (1, -(*step as f64), loss(*v)),
                _ => (2, 0.0, 0.0),
            },
            _ => (2, 0.0, 0.0),
        }
    };
    // The keys as integers in the same order (every number in them is finite), with
    // the trial's place in `history` riding along: a comparison reads no trial and
    // compares no float, and the sort moves small entries.
    let mut keys: Vec<(RankKey, u32)> = history
        .iter()
        .zip(0..)
        .filter(|(t, _)| matches!(t.state, TrialState::Complete | TrialState::Pruned))
        .map(|(t, i)| {
            let (a, b, c) = key(t);
            ((a, ordered_bits(b), ordered_bits(c), t.number), i)
        })
        .collect();
    keys.sort_unstable_by_key(|(key, _)| *key);
    keys.into_iter()
        .map(|((class, loss, _, _), i)| {
            // A complete trial's loss, back from its bits.
            let loss = (class == 0).then(|| from_ordered_bits(loss));
            Seen::new(history[i as usize], loss)
        })
        .collect()
}

/// TPE for several objectives (MOTPE, after Ozaki et al., 2020): the same
/// estimators as [`TpeSampler`], with the good trials taken front by front —
/// non-dominated rank first, then, within a front, the larger crowding distance
/// (the sparser part of the front), then the number — and weighed alike
/// (`good_weights` is uniform: there is no one value to improve on).
#[derive(Debug, Clone)]
pub struct MultiObjectiveTpe {
    /// Its settings.
    pub config: TpeConfig,
    /// Each objective's direction, in the study's order.
    pub directions: Vec<Direction>,
}

impl MultiObjectiveTpe {
    fn single(&self) -> TpeSampler {
        let config = TpeConfig { good_weights: GoodWeights::Uniform, ..self.config };
        TpeSampler { config, direction: Direction::Minimize }
    }
}

impl Sampler for MultiObjectiveTpe {
    fn sample(&self, space: &SearchSpace, history: &[FrozenTrial], rng: &mut StdRng) -> Params {
        let history: Vec<&FrozenTrial> = history.iter().collect();
        let ranked = rank_fronts(&history, &self.directions);
        self.single().propose_ranked(space, &history, ranked, None, rng)
    }

    fn sample_with_memo(&self, space: &SearchSpace, history: Kept<'_>, rng: &mut StdRng) -> Params {
        let ranked = rank_fronts(history.trials, &self.directions);
        self.single().propose_ranked(space, history.trials, ranked, Some(history.memo), rng)
    }
}

/// The complete trials with every objective's value, best first (see
/// [`MultiObjectiveTpe`]), each with its place as its loss.
fn rank_fronts<'a>(history: &[&'a FrozenTrial], directions: &[Direction]) -> Vec<Seen<'a>> {
    use crate::pareto::{Point, crowding_distances, ranks};
    let scored: Vec<(&FrozenTrial, Point)> = history
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .filter_map(|t| Some((*t, Point::of(t, directions)?)))
        .filter(|(_, p)| p.losses.iter().all(|v| v.is_finite()))
        .collect();
    let points: Vec<Point> = scored.iter().map(|(_, p)| p.clone()).collect();
    let rank = ranks(&points);
    let mut crowding = vec![0.0; points.len()];
    for level in 0..=rank.iter().copied().max().unwrap_or(0) {
        let front: Vec<usize> = (0..points.len()).filter(|&i| rank[i] == level).collect();
        for (i, d) in front.iter().zip(crowding_distances(&points, &front)) {
            crowding[*i] = d;
        }
    }
    let mut order: Vec<usize> = (0..scored.len()).collect();
    order.sort_by(|&a, &b| {
        rank[a]
            .cmp(&rank[b])
            .then(crowding[b].total_cmp(&crowding[a]))
            .then(scored[a].0.number.cmp(&scored[b].0.number))
    });
    order
        .into_iter()
        .zip(0..)
        .map(|(i, place)| Seen::new(scored[i].0, Some(f64::from(place))))
        .collect()
}

/// A trial as a proposal reads it, with what it needs of the trial copied out
/// (its number, id and loss: the value, negated when maximizing, when it is
/// complete and finite), so that reading the trials in rank order goes back to
/// each trial only to encode its parameters the first time.
struct Seen<'a> {
    trial: &'a FrozenTrial,
    number: u64,
    id: TrialId,
    loss: Option<f64>,
}

impl<'a> Seen<'a> {
    fn new(trial: &'a FrozenTrial, loss: Option<f64>) -> Seen<'a> {
        Seen { trial, number: trial.number, id: trial.id, loss }
    }
}

/// A ranked trial's key: its class (complete, pruned, other), two numbers as
/// [`ordered_bits`], and its number.
type RankKey = (u8, u64, u64, u64);

/// An integer in the order of the finite floats, `-0.0` and `0.0` equal.
fn ordered_bits(x: f64) -> u64 {
    // Adding 0 turns -0 into 0.
    let bits = (x + 0.0).to_bits();
    if bits >> 63 == 1 { !bits } else { bits | 1 << 63 }
}

/// The float whose [`ordered_bits`] are `bits` (`0.0` for `-0.0`'s).
fn from_ordered_bits(bits: u64) -> f64 {
    f64::from_bits(if bits >> 63 == 1 { bits & !(1 << 63) } else { !bits })
}

/// How many of `n` ranked trials are "good": `min(ceil(fraction n), 25)`, at least 1.
pub fn gamma(n: usize, fraction: f64) -> usize {
    ((fraction * n as f64).ceil() as usize).clamp(1, 25)
}

/// Trials' points in a group's space, a row of `width` values each, with each
/// trial's number, its loss (the value, negated when maximizing) when it is
/// complete and finite, and whether its point came from the memo's [`Points`]
/// (a finished trial's). One buffer for all the points: a proposal observes
/// every finished trial, and a buffer each was much of its cost.
#[derive(Debug, Clone, Default)]
struct Observations {
    width: usize,
    numbers: Vec<u64>,
    losses: Vec<Option<f64>>,
    kept: Vec<bool>,
    points: Vec<f64>,
}

impl Observations {
    fn with_capacity(width: usize, n: usize) -> Observations {
        Observations {
            width,
            numbers: Vec::with_capacity(n),
            losses: Vec::with_capacity(n),
            kept: Vec::with_capacity(n),
            points: Vec::with_capacity(n * width),
        }
    }

    fn len(&self) -> usize {
        self.numbers.len()
    }

    fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }

    fn push(&mut self, number: u64, loss: Option<f64>, kept: bool, point: &[f64]) {
        self.numbers.push(number);
        self.losses.push(loss);
        self.kept.push(kept);
        self.points.extend_from_slice(point);
    }

    /// The observations from `at` on, taken out.
    fn split_off(&mut self, at: usize) -> Observations {
        Observations {
            width: self.width,
            numbers: self.numbers.split_off(at),
            losses: self.losses.split_off(at),
            kept: self.kept.split_off(at),
            points: self.points.split_off(at * self.width),
        }
    }

    fn append(&mut self, mut other: Observations) {
        self.numbers.append(&mut other.numbers);
        self.losses.append(&mut other.losses);
        self.kept.append(&mut other.kept);
        self.points.append(&mut other.points);
    }

    /// Every observation's value on dimension `d`.
    fn column(&self, d: usize) -> Vec<f64> {
        self.points.iter().skip(d).step_by(self.width.max(1)).copied().collect()
    }
}

/// The good trials' weights (`losses`) by improvement on `threshold`, the best bad
/// trial's loss, at least 1e-12 each; `None` (uniform) when there is no bad trial
/// or a loss is missing.
fn improvement_weights(losses: &[Option<f64>], threshold: Option<f64>) -> Option<Vec<f64>> {
    let threshold = threshold?;
    losses.iter().map(|loss| Some((threshold - (*loss)?).max(1e-12))).collect()
}

/// [`age_weights`] of observations in any order, by their trial `numbers`.
fn age_weights_of(numbers: &[u64]) -> Vec<f64> {
    let ages = age_weights(numbers.len());
    let mut weights = vec![0.0; numbers.len()];
    // Numbers are unique and dense in a study: each observation is put at its
    // number, and the numbers are read in order.
    let top = numbers.iter().copied().max().unwrap_or(0);
    if top < 4 * numbers.len() as u64 + 64 {
        let mut at = vec![u32::MAX; top as usize + 1];
        let unique = numbers
            .iter()
            .zip(0..)
            .all(|(n, i)| std::mem::replace(&mut at[*n as usize], i) == u32::MAX);
        if unique {
            for (i, age) in at.into_iter().filter(|i| *i != u32::MAX).zip(ages) {
                weights[i as usize] = age;
            }
            return weights;
        }
    }
    // (number, index) pairs sort in place, without a look-up per comparison.
    let mut by_age: Vec<(u64, usize)> = numbers.iter().copied().zip(0..).collect();
    by_age.sort_unstable();
    for (rank, (_, i)) in by_age.iter().enumerate() {
        weights[*i] = ages[rank];
    }
    weights
}

/// Weights of `n` observations in order of trial number: equal up to 25, then a
/// ramp from `1/n` for the oldest up to 1 for the newest 25 (Optuna's default).
pub fn age_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp = n - 25;
    let mut out: Vec<f64> = (0..ramp)
        .map(|i| {
            if ramp == 1 {
                1.0 / n as f64
            } else {
                1.0 / n as f64 + (1.0 - 1.0 / n as f64) * i as f64 / (ramp - 1) as f64
            }
        })
        .collect();
    out.extend(std::iter::repeat_n(1.0, 25));
    out
}

/// The parameters in groups that exist together (the same condition), in the order
/// their first member is declared; a group's condition only looks at earlier groups.
fn groups(space: &SearchSpace) -> Vec<Vec<&ParamDef>> {
    let mut out: Vec<(Option<&Condition>, Vec<&ParamDef>)> = Vec::new();
    for param in &space.params {
        match out.iter_mut().find(|(cond, _)| *cond == param.condition.as_ref()) {
            Some((_, members)) => members.push(param),
            None => out.push((param.condition.as_ref(), vec![param])),
        }
    }
    out.into_iter().map(|(_, members)| members).collect()
}

/// One parameter in the estimator's space.
#[derive(Debug, Clone, Copy)]
enum Dim {
    /// A number in transformed space, kernels truncated to `[low, high]`; `step`
    /// makes it discrete (likelihood = mass of the step's interval).
    Numeric { low: f64, high: f64, step: Option<f64> },
    /// One of `n` choices, by index.
    Categorical { n: usize },
}

impl Dim {
    fn of(distribution: &Distribution) -> Dim {
        match *distribution {
            Distribution::Float { low, high, log: true, .. } => {
                Dim::Numeric { low: low.ln(), high: high.ln(), step: None }
            }
            Distribution::Float { low, high, step: Some(step), .. } => {
                Dim::Numeric { low: low - step / 2.0, high: high + step / 2.0, step: Some(step) }
            }
            Distribution::Float { low, high, .. } => Dim::Numeric { low, high, step: None },
            Distribution::Int { low, high, log: true, .. } => Dim::Numeric {
                low: (low as f64 - 0.5).max(0.5).ln(),
                high: (high as f64 + 0.5).ln(),
                step: None,
            },
            Distribution::Int { low, high, step, .. } => {
                let half = step as f64 / 2.0;
                Dim::Numeric {
                    low: low as f64 - half,
                    high: high as f64 + half,
                    step: Some(step as f64),
                }
            }
            Distribution::Categorical { ref choices } => Dim::Categorical { n: choices.len() },
        }
    }

    /// A trial's value in this space, or `None` when it is outside the domain.
    fn encode(&self, distribution: &Distribution, value: &ParamValue) -> Option<f64> {
        let internal = distribution.to_internal(value)?;
        Some(match distribution {
            Distribution::Float { log: true, .. } | Distribution::Int { log: true, .. } => {
                internal.ln()
            }
            _ => internal,
        })
    }

    /// The parameter value of a point in this space: exp for log params, rounded to
    /// the grid for discrete ones, clamped to the domain.
    fn decode(&self, distribution: &Distribution, x: f64) -> ParamValue {
        match *distribution {
            Distribution::Float { low, high, log: true, .. } => {
                ParamValue::Float(x.exp().clamp(low, high))
            }
            Distribution::Float { low, high, step: Some(step), .. } => {
                let k = ((x - low) / step).round();
                ParamValue::Float(round_to_step(low + k * step, step).clamp(low, high))
            }
            Distribution::Float { low, high, .. } => ParamValue::Float(x.clamp(low, high)),
            Distribution::Int { low, high, log: true, .. } => {
                ParamValue::Int((x.exp().round() as i64).clamp(low, high))
            }
            Distribution::Int { low, high, step, .. } => {
                let k = ((x - low as f64) / step as f64).round() as i64;
                ParamValue::Int((low + k * step).clamp(low, high))
            }
            Distribution::Categorical { ref choices } => {
                choices[(x as usize).min(choices.len() - 1)].clone()
            }
        }
    }
}

/// The kernels of every mixture component on one dimension, stored as columns
/// (component j at index j; the prior is the last) so a density evaluation is a
/// tight loop over contiguous numbers.
#[derive(Debug, Clone)]
enum Column {
    /// Normal kernels truncated by the dimension's bounds. Precomputed at fit time:
    /// `log_z`, the log of each kernel's mass inside the bounds, and `log_norm` =
    /// -ln(sigma sqrt(2 pi)) - log_z, the log density's constant. On a discrete
    /// dimension of at most `GRID_TABLE_MAX` values, `grid` holds each kernel's
    /// log mass at each value, `grid[p * kernels + j]`: candidates fall on those
    /// values, and the table costs fewer normal CDFs than evaluating each candidate.
    /// In an estimator drawn from many times, `bounds` holds each kernel's
    /// [`truncation`] CDFs, so a draw takes no CDF.
    Normal {
        mu: Vec<f64>,
        sigma: Vec<f64>,
        log_z: Vec<f64>,
        log_norm: Vec<f64>,
        grid: Option<Vec<f64>>,
        bounds: Option<Vec<(f64, f64)>>,
    },
    /// Log-probabilities of each choice, `log_p[j * choices + c]`.
    Choice { choices: usize, log_p: Vec<f64> },
}

impl Column {
    /// Kernels at `mus` of widths `sigmas`, `log_z` the log of each one's mass
    /// inside the bounds.
    fn normal(mu: Vec<f64>, sigma: Vec<f64>, log_z: Vec<f64>) -> Column {
        // Most kernels share the clipped minimum width: its log is taken once.
        let mut last = (f64::NAN, f64::NAN);
        let log_norm = sigma
            .iter()
            .zip(&log_z)
            .map(|(sigma, lz)| {
                if *sigma != last.0 {
                    last = (*sigma, sigma.ln());
                }
                -last.1 - LOG_SQRT_2PI - lz
            })
            .collect();
        Column::Normal { mu, sigma, log_z, log_norm, grid: None, bounds: None }
    }

    /// The value of grid point `p` of a discrete dimension, as a draw snaps it.
    fn grid_value(low: f64, high: f64, step: f64, p: f64) -> f64 {
        let (first, last) = (low + step / 2.0, high - step / 2.0);
        (first + p * step).clamp(first, last)
    }

    /// Tabulates each kernel's log mass at each value of a discrete dimension with
    /// at most `GRID_TABLE_MAX` values.
    fn with_grid(mut self, low: f64, high: f64, step: f64) -> Column {
        let points = ((high - low) / step).round();
        if let Column::Normal { mu, sigma, log_z, grid, .. } = &mut self
            && (1.0..=GRID_TABLE_MAX as f64).contains(&points)
        {
            let mut table = Vec::with_capacity(points as usize * mu.len());
            for p in 0..points as usize {
                let x = Column::grid_value(low, high, step, p as f64);
                for j in 0..mu.len() {
                    table
                        .push(log_mass(mu[j], sigma[j], x - step / 2.0, x + step / 2.0) - log_z[j]);
                }
            }
            *grid = Some(table);
        }
        self
    }

    /// Adds to each `acc[i]` the log kernel density (or mass) at `x` of component
    /// `at[i]`; with `at` `None`, of component `i`, for every component.
    fn add_log_density(&self, dim: &Dim, x: f64, at: Option<&[u32]>, acc: &mut [f64]) {
        let at = match (self, dim, at) {
            // Every component in order: a loop without indirection, which the
            // compiler turns into vector instructions (the same arithmetic, so
            // the same sums).
            (Column::Normal { mu, log_norm, sigma, .. }, Dim::Numeric { step: None, .. }, None) => {
                for (((a, mu), sigma), log_norm) in acc.iter_mut().zip(mu).zip(sigma).zip(log_norm)
                {
                    let z = (x - mu) / sigma;
                    *a += log_norm - 0.5 * z * z;
                }
                return;
            }
            (_, _, None) => &(0..acc.len() as u32).collect::<Vec<u32>>(),
            (_, _, Some(at)) => at,
        };
        match (self, dim) {
            (Column::Normal { mu, log_norm, sigma, .. }, Dim::Numeric { step: None, .. }) => {
                for (a, j) in acc.iter_mut().zip(at) {
                    let j = *j as usize;
                    let z = (x - mu[j]) / sigma[j];
                    *a += log_norm[j] - 0.5 * z * z;
                }
            }
            (
                Column::Normal { mu, sigma, log_z, grid, .. },
                Dim::Numeric { low, high, step: Some(step) },
            ) => {
                let p = ((x - (low + step / 2.0)) / step).round();
                let row = grid.as_ref().filter(|_| p >= 0.0).and_then(|grid| {
                    let (n, p) = (mu.len(), p as usize);
                    let on_grid = Column::grid_value(*low, *high, *step, p as f64) == x;
                    grid.get(p * n..(p + 1) * n).filter(|_| on_grid)
                });
                match row {
                    Some(row) => acc.iter_mut().zip(at).for_each(|(a, j)| *a += row[*j as usize]),
                    None => {
                        for (a, j) in acc.iter_mut().zip(at) {
                            let j = *j as usize;
                            *a += log_mass(mu[j], sigma[j], x - step / 2.0, x + step / 2.0)
                                - log_z[j];
                        }
                    }
                }
            }
            (Column::Choice { choices, log_p }, _) => {
                let c = x as usize;
                for (a, j) in acc.iter_mut().zip(at) {
                    let j = *j as usize;
                    *a += log_p.get(j * choices + c).copied().unwrap_or(f64::NEG_INFINITY);
                }
            }
            _ => unreachable!("columns are built per dimension kind"),
        }
    }

    /// Whether this is a column of normal kernels on a continuous dimension.
    fn is_continuous(&self, dim: &Dim) -> bool {
        matches!((self, dim), (Column::Normal { .. }, Dim::Numeric { step: None, .. }))
    }

    /// The most any component's log kernel density (or mass) can be on this
    /// dimension: a normal kernel's peak, or 0 for a mass or a probability.
    fn log_density_bound(&self, dim: &Dim) -> f64 {
        match (self, dim) {
            (Column::Normal { log_norm, .. }, Dim::Numeric { step: None, .. }) => {
                log_norm.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            }
            _ => 0.0,
        }
    }

    /// A draw from component `j`'s kernel.
    fn sample(&self, dim: &Dim, j: usize, rng: &mut StdRng) -> f64 {
        match (self, dim) {
            (Column::Normal { mu, sigma, bounds, .. }, Dim::Numeric { low, high, step }) => {
                let (mu, sigma) = (mu[j], sigma[j]);
                let cdfs = match bounds {
                    Some(bounds) => bounds[j],
                    None => truncation(mu, sigma, *low, *high),
                };
                let x = truncated_normal(mu, sigma, *low, *high, cdfs, rng);
                match step {
                    // Onto the grid, so the likelihoods are those of a real value.
                    Some(step) => {
                        let (first, last) = (low + step / 2.0, high - step / 2.0);
                        (first + ((x - first) / step).round() * step).clamp(first, last)
                    }
                    None => x,
                }
            }
            (Column::Choice { choices, log_p }, _) => {
                let probs = log_p[j * choices..(j + 1) * choices].iter().map(|lp| lp.exp());
                pick(probs, rng) as f64
            }
            _ => unreachable!("columns are built per dimension kind"),
        }
    }
}

/// An index drawn with the given probabilities (the last one absorbs rounding).
fn pick(probs: impl ExactSizeIterator<Item = f64>, rng: &mut StdRng) -> usize {
    let n = probs.len();
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (i, p) in probs.enumerate() {
        acc += p;
        if u < acc {
            return i;
        }
    }
    n - 1
}

/// A weighted mixture of product kernels.
#[derive(Debug, Clone)]
struct Parzen {
    /// Log mixture weights, normalized; the prior's is the last.
    log_weights: Vec<f64>,
    /// One column of kernels per dimension.
    columns: Vec<Column>,
    /// For each dimension, the sum of the columns' density bounds
    /// ([`Column::log_density_bound`]) after it: the most the dimensions left can
    /// add to a component's log density.
    bound_after: Vec<f64>,
    /// The mixture weights (`log_weights` exponentiated), in an estimator drawn
    /// from many times ([`Parzen::for_drawing`]).
    weights: Option<Vec<f64>>,
}

/// The memo's sorted values and fitted kernels, for a fit over a group's
/// dimensions (`in_space[d]`: dimension `d`'s parameter in the space).
struct KeptFit<'a> {
    points: &'a mut Points,
    in_space: &'a [usize],
}

/// A dimension's kernels, one per observation in the observations' order: centre,
/// width, log of the mass inside the bounds, and the log density's constant
/// (-ln(sigma sqrt(2 pi)) - log_z).
struct Kernels {
    mu: Vec<f64>,
    sigma: Vec<f64>,
    log_z: Vec<f64>,
    log_norm: Vec<f64>,
}

/// One value of a merged walk in ascending order ([`KeptFit::kernels`]): the
/// value, its observation, and the memo's entry for it when it is kept there.
struct Walked<'c> {
    x: f64,
    j: u32,
    kept: Option<&'c mut Sorted>,
}

impl KeptFit<'_> {
    /// The kernels of `observations` on dimension `d` (widths clipped to
    /// `[min_sigma, high - low]`), in one walk in ascending order: the kept
    /// observations (`numbers[j]`: observation `j`'s trial number, `usize::MAX`
    /// for one not kept; `at[number]`: the observation of that trial) read in the
    /// memo's sorted order, the others merged in; a kernel's mass is the one
    /// fitted before when its width is the same. `None` when the memo does not
    /// hold every kept observation (it was rebuilt meanwhile).
    #[allow(clippy::too_many_arguments)]
    fn kernels(
        &mut self,
        d: usize,
        observations: &Observations,
        numbers: &[usize],
        at: &[u32],
        low: f64,
        high: f64,
        min_sigma: f64,
    ) -> Option<Kernels> {
        let k = *self.in_space.get(d)?;
        let n = numbers.len();
        let width = observations.width;
        let mut others: Vec<(f64, u32)> = numbers
            .iter()
            .zip(0..)
            .filter(|(number, _)| **number == usize::MAX)
            .map(|(_, j)| (observations.points[j as usize * width + d], j))
            .collect();
        others.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut others = others.into_iter().peekable();
        let mut entries = self
            .points
            .sorted(k)
            .iter_mut()
            .filter_map(|entry| {
                let j = *at.get(entry.number)?;
                (j != u32::MAX).then_some((entry, j))
            })
            .peekable();
        // The next value: a kept one, or an other below it (a tie: the kept first).
        let mut next = || -> Option<Walked<'_>> {
            let other_first = match (entries.peek(), others.peek()) {
                (Some((entry, _)), Some(other)) => other.0 < entry.value,
                (None, Some(_)) => true,
                (_, None) => false,
            };
            if other_first {
                others.next().map(|(x, j)| Walked { x, j, kept: None })
            } else {
                entries.next().map(|(entry, j)| Walked { x: entry.value, j, kept: Some(entry) })
            }
        };
        let range = high - low;
        let mut out = Kernels {
            mu: vec![0.0; n],
            sigma: vec![0.0; n],
            log_z: vec![0.0; n],
            log_norm: vec![0.0; n],
        };
        // Most kernels share the clipped minimum width: its log is taken once.
        let mut last_ln = (f64::NAN, f64::NAN);
        let (mut before, mut walked) = (None, 0);
        let mut current = next();
        while let Some(Walked { x, j, kept }) = current {
            let after = next();
            let sigma = neighbour_sigma(before, x, after.as_ref().map(|it| it.x), low, high)
                .clamp(min_sigma, range);
            let log_z = match kept {
                Some(kept) if kept.sigma == sigma => kept.log_z,
                Some(kept) => {
                    (kept.sigma, kept.log_z) = (sigma, log_mass(x, sigma, low, high));
                    kept.log_z
                }
                None => log_mass(x, sigma, low, high),
            };
            if sigma != last_ln.0 {
                last_ln = (sigma, sigma.ln());
            }
            let j = j as usize;
            out.mu[j] = x;
            out.sigma[j] = sigma;
            out.log_z[j] = log_z;
            out.log_norm[j] = -last_ln.1 - LOG_SQRT_2PI - log_z;
            (before, current, walked) = (Some(x), after, walked + 1);
        }
        (walked == n).then_some(out)
    }
}

impl Parzen {
    /// The estimator of `observations` with these `weights`, plus the prior; with
    /// `kept`, the bandwidths and kernel masses come from the memo where they can.
    fn fit(
        dims: &[Dim],
        observations: &Observations,
        weights: &[f64],
        prior_weight: f64,
        mut kept: Option<KeptFit<'_>>,
    ) -> Parzen {
        let mut weights = weights.to_vec();
        weights.push(prior_weight.max(1e-12));
        let total: f64 = weights.iter().sum();
        let log_weights = weights.iter().map(|w| (w / total).ln()).collect();

        let n = observations.len();
        // The observation of each kept trial, by number.
        let (mut at, mut numbers) = (Vec::new(), Vec::new());
        if let Some(kept) = &kept {
            at.resize(kept.points.ids.len(), u32::MAX);
            numbers.resize(n, usize::MAX);
            let kept_ones = observations.numbers.iter().zip(&observations.kept).zip(0..);
            for (((o, kept), j), number) in kept_ones.zip(&mut numbers) {
                if let Some(slot) = at.get_mut(*o as usize).filter(|_| *kept) {
                    *slot = j;
                    *number = *o as usize;
                }
            }
        }
        let columns = dims
            .iter()
            .enumerate()
            .map(|(d, dim)| {
                match *dim {
                    Dim::Numeric { low, high, step } => {
                        let range = high - low;
                        // The "magic clip": no kernel narrower than the range over the
                        // number of kernels + 1 (at most 100).
                        let min_sigma = range / (n as f64 + 2.0).min(100.0);
                        let kernels = kept.as_mut().and_then(|kept| {
                            kept.kernels(d, observations, &numbers, &at, low, high, min_sigma)
                        });
                        let (centre, prior_log_z) =
                            ((low + high) / 2.0, log_mass((low + high) / 2.0, range, low, high));
                        let column = match kernels {
                            Some(Kernels { mut mu, mut sigma, mut log_z, mut log_norm }) => {
                                mu.push(centre);
                                sigma.push(range);
                                log_z.push(prior_log_z);
                                log_norm.push(-range.ln() - LOG_SQRT_2PI - prior_log_z);
                                Column::Normal {
                                    mu,
                                    sigma,
                                    log_z,
                                    log_norm,
                                    grid: None,
                                    bounds: None,
                                }
                            }
                            None => {
                                let mut mus = observations.column(d);
                                let sorted = sorted_with_index(&mus, low, high);
                                let mut sigmas: Vec<f64> = neighbour_sigmas(&sorted, low, high)
                                    .into_iter()
                                    .map(|s| s.clamp(min_sigma, range))
                                    .collect();
                                let mut log_z: Vec<f64> = mus
                                    .iter()
                                    .zip(&sigmas)
                                    .map(|(mu, sigma)| log_mass(*mu, *sigma, low, high))
                                    .collect();
                                mus.push(centre);
                                sigmas.push(range);
                                log_z.push(prior_log_z);
                                Column::normal(mus, sigmas, log_z)
                            }
                        };
                        match step {
                            Some(step) => column.with_grid(low, high, step),
                            None => column,
                        }
                    }
                    Dim::Categorical { n: k } => {
                        // Every choice gets the prior's share, prior_weight / kernels.
                        let base = prior_weight / (n as f64 + 1.0);
                        let mut log_p = Vec::with_capacity((n + 1) * k);
                        for mu in &observations.column(d) {
                            for c in 0..k {
                                let hit = if c == *mu as usize { 1.0 } else { 0.0 };
                                log_p.push(((base + hit) / (k as f64 * base + 1.0)).ln());
                            }
                        }
                        log_p.extend(std::iter::repeat_n(-(k as f64).ln(), k));
                        Column::Choice { choices: k, log_p }
                    }
                }
            })
            .collect::<Vec<Column>>();
        let mut bound_after = vec![0.0; dims.len()];
        for d in (0..dims.len().saturating_sub(1)).rev() {
            bound_after[d] = bound_after[d + 1] + columns[d + 1].log_density_bound(&dims[d + 1]);
        }
        Parzen { log_weights, columns, bound_after, weights: None }
    }

    /// The estimator with its weights and each kernel's truncation CDFs kept, for
    /// drawing from it many times.
    fn for_drawing(mut self, dims: &[Dim]) -> Parzen {
        self.weights = Some(self.log_weights.iter().map(|lw| lw.exp()).collect());
        for (column, dim) in self.columns.iter_mut().zip(dims) {
            if let (Column::Normal { mu, sigma, bounds, .. }, Dim::Numeric { low, high, .. }) =
                (column, dim)
            {
                let cdfs = mu.iter().zip(sigma.iter());
                *bounds =
                    Some(cdfs.map(|(mu, sigma)| truncation(*mu, *sigma, *low, *high)).collect());
            }
        }
        self
    }

    /// A draw: a component by weight, then each dimension from its kernel.
    fn sample(&self, dims: &[Dim], rng: &mut StdRng) -> Vec<f64> {
        let j = match &self.weights {
            Some(weights) => pick(weights.iter().copied(), rng),
            None => pick(self.log_weights.iter().map(|lw| lw.exp()), rng),
        };

        dims.iter().zip(&self.columns).map(|(dim, column)| column.sample(dim, j, rng)).collect()
    }

    /// log of the mixture's density (or mass, on discrete dimensions) at `x`.
    ///
    /// A sum of exponentials, in which the terms more than e^-40 below the largest
    /// change nothing and are left out. The components are added up a dimension at
    /// a time, and a component is dropped as soon as even the largest densities on
    /// the dimensions left could not lift it to within e^-50 of the prior's term
    /// (which the largest term is at least): far from `x` in one dimension, it
    /// could only be left out at the end. With thousands of trials in ten
    /// dimensions, most components go after the first two. The result is the sum
    /// over every component, to the last bit.
    fn log_density(&self, dims: &[Dim], x: &[f64], scratch: &mut DensityScratch) -> f64 {
        let n = self.log_weights.len();
        // A few components are cheaper to add up than to sort out.
        let prune = n >= PRUNE_FROM;
        let mut floor = [self.log_weights[n - 1]];
        if prune {
            let prior = [n as u32 - 1];
            for ((dim, column), x) in dims.iter().zip(&self.columns).zip(x) {
                column.add_log_density(dim, *x, Some(&prior), &mut floor);
            }
        }
        let DensityScratch { at, acc } = scratch;
        at.clear();
        at.extend(0..n as u32);
        acc.clear();
        acc.extend_from_slice(&self.log_weights);
        for (((dim, column), x), left) in
            dims.iter().zip(&self.columns).zip(x).zip(&self.bound_after)
        {
            // While no component was dropped, `at` is every one in order.
            let every = at.len() == n && column.is_continuous(dim);
            column.add_log_density(dim, *x, if every { None } else { Some(at) }, acc);
            if !prune {
                continue;
            }
            let keep = floor[0] - 50.0 - left.max(0.0);
            // Without a branch: which components stay is data, not a pattern a
            // branch predictor could learn.
            let mut k = 0;
            for i in 0..at.len() {
                let (j, a) = (at[i], acc[i]);
                at[k] = j;
                acc[k] = a;
                k += usize::from(a >= keep || a.is_nan());
            }
            at.truncate(k);
            acc.truncate(k);
        }
        let max = acc.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !max.is_finite() {
            return max;
        }
        // Skipping the small terms also avoids exp's slow underflow path.
        let sum: f64 = acc.iter().map(|a| a - max).filter(|d| *d > -40.0).map(f64::exp).sum();
        max + sum.ln()
    }
}

/// Components from which [`Parzen::log_density`] drops the far ones as it goes.
const PRUNE_FROM: usize = 64;

/// Room for [`Parzen::log_density`] to work in, reused across calls: the
/// components still counted and their sums so far.
#[derive(Default)]
struct DensityScratch {
    at: Vec<u32>,
    acc: Vec<f64>,
}

/// Bandwidths from the distances to the sorted neighbours, for values sorted
/// with their indices ([`sorted_with_index`]) (the domain's ends stand
/// in as the outer neighbours only when there is one observation). A value observed
/// more than once gets 0 (the minimum width, after clipping) for every one of its
/// observations: its neighbour at distance 0 is itself. Optuna gives the first and
/// last of a run of ties (in its sort's arbitrary order) the distance to the next
/// distinct value instead, so which trials get wide kernels depends on the sort
/// algorithm; on integer parameters, where ties are the rule, the even rule here
/// also proposes better points (docs/benchmarks.md).
fn neighbour_sigmas(pairs: &[(f64, u32)], low: f64, high: f64) -> Vec<f64> {
    let mut out = vec![0.0; pairs.len()];
    for (rank, (x, i)) in pairs.iter().enumerate() {
        let before = rank.checked_sub(1).map(|r| pairs[r].0);
        let after = pairs.get(rank + 1).map(|p| p.0);
        out[*i as usize] = neighbour_sigma(before, *x, after, low, high);
    }
    out
}

/// The bandwidth of value `x` between its sorted neighbours `before` and
/// `after` ([`neighbour_sigmas`]' rule).
fn neighbour_sigma(before: Option<f64>, x: f64, after: Option<f64>, low: f64, high: f64) -> f64 {
    if before == Some(x) || after == Some(x) {
        return 0.0;
    }
    let (left, right) = (x - before.unwrap_or(low), after.unwrap_or(high) - x);
    match (before, after) {
        (Some(_), None) => left,
        (None, Some(_)) => right,
        _ => left.max(right),
    }
}

/// `values` (each in `[low, high]`) in ascending order, each with its index; equal
/// values in any order. Sorted by a bucket per value (then within each bucket),
/// in time linear in their number for values spread over the range, as a
/// study's parameters are: a comparison sort of thousands of values on each
/// dimension was most of an estimator's fitting.
fn sorted_with_index(values: &[f64], low: f64, high: f64) -> Vec<(f64, u32)> {
    let n = values.len();
    let range = high - low;
    let mut out: Vec<(f64, u32)> = values.iter().copied().zip(0..).collect();
    if n < 64 || !(range > 0.0 && range.is_finite()) {
        out.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        return out;
    }
    let bucket = |x: f64| (((x - low) / range * n as f64) as usize).min(n - 1);
    // Where each bucket starts in the output, from the counts.
    let mut starts = vec![0u32; n + 1];
    for (x, _) in &out {
        starts[bucket(*x) + 1] += 1;
    }
    for b in 0..n {
        starts[b + 1] += starts[b];
    }
    let mut sorted = vec![(0.0, 0u32); n];
    let mut next = starts.clone();
    for (x, i) in out {
        let b = bucket(x);
        sorted[next[b] as usize] = (x, i);
        next[b] += 1;
    }
    for b in 0..n {
        let within = &mut sorted[starts[b] as usize..starts[b + 1] as usize];
        if within.len() > 1 {
            within.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        }
    }
    sorted
}

/// The most values of a discrete dimension whose kernel masses are tabulated.
const GRID_TABLE_MAX: usize = 64;

/// ln(sqrt(2 pi)).
const LOG_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// log P(a <= X <= b) for X ~ N(mu, sigma²), accurate in both tails.
fn log_mass(mu: f64, sigma: f64, a: f64, b: f64) -> f64 {
    let (za, zb) = ((a - mu) / sigma, (b - mu) / sigma);
    if za < -9.0 && zb > 9.0 {
        return 0.0; // Both tails below 1e-19: the mass is 1 to f64 precision.
    }
    // One tail below 1e-19 and the other side past the mean: what the tail would
    // take off is below half a unit in the last place of the rest.
    if za < -9.0 && zb >= 0.0 {
        return normal_cdf(zb).ln();
    }
    if zb > 9.0 && za <= 0.0 {
        // The upper side's CDF is exactly 1 there.
        return (1.0 - normal_cdf(za)).ln();
    }
    // In the upper tail, use the mirrored lower-tail probabilities.
    let mass =
        if za > 0.0 { normal_cdf(-za) - normal_cdf(-zb) } else { normal_cdf(zb) - normal_cdf(za) };
    mass.max(1e-300).ln()
}

/// The standard normal CDF.
fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

/// The standard normal quantile (Acklam's rational approximation, then one Halley
/// step against `normal_cdf`; relative error near machine precision).
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let x = if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    let e = normal_cdf(x) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

/// The standard normal CDF at the bounds of N(mu, sigma²) truncated to
/// [low, high], mirrored (the CDF at the negated bounds, in reverse) when the
/// interval lies above the mean, for precision in that tail.
fn truncation(mu: f64, sigma: f64, low: f64, high: f64) -> (f64, f64) {
    let (za, zb) = ((low - mu) / sigma, (high - mu) / sigma);
    if za > 0.0 { (normal_cdf(-zb), normal_cdf(-za)) } else { (normal_cdf(za), normal_cdf(zb)) }
}

/// A draw from N(mu, sigma²) truncated to [low, high], by inverting the CDF
/// between its values at the bounds, `cdfs` ([`truncation`]).
fn truncated_normal(
    mu: f64,
    sigma: f64,
    low: f64,
    high: f64,
    (pa, pb): (f64, f64),
    rng: &mut StdRng,
) -> f64 {
    let u: f64 = rng.random();
    let z = if (low - mu) / sigma > 0.0 {
        -normal_quantile(pa + u * (pb - pa))
    } else {
        normal_quantile(pa + u * (pb - pa))
    };
    (mu + sigma * z).clamp(low, high)
}

#[cfg(test)]
mod tests;
