//! Chart data: pure functions of a [`StudyRecord`], one per section of the report.
//!
//! Nothing here draws or writes; every function takes the record (and sometimes
//! another section's result) and returns plain data, so each is tested alone. Confirm
//! runs (trials with `hpo:confirm_of`) are left out of every section except
//! [`confirm_groups`], which pools them with the trial they repeat.

use std::collections::BTreeMap;
use std::fmt;

use hpo_core::display;
use hpo_core::distribution::Distribution;
use hpo_core::storage::TrialOutcome;
use hpo_core::study::Direction;
use hpo_core::trial::{AttrValue, FrozenTrial, TrialState, attr};

use crate::StudyRecord;
use crate::importance::Importance;
use crate::stats::{self, LinearFit, MeanCi, Welch};

/// How many trials the leaderboard lists.
pub const LEADERBOARD_SIZE: usize = 10;
/// How many of the best trials the learning-curve figures draw.
pub const CURVE_TRIALS: usize = 5;
/// Parallel coordinates draw at most this many trials (the best first).
pub const PARALLEL_MAX_LINES: usize = 2000;
/// Bins per numeric axis of the heat map.
pub const HEAT_BINS: usize = 6;

/// Words that mark a parameter as a regularizer (`dropout`, `weight_decay`, `l2`,
/// `label_smoothing`, `augment`, `train_fraction`, ...).
const REGULARIZER_WORDS: [&str; 9] =
    ["dropout", "decay", "l2", "smoothing", "augment", "fraction", "mixup", "noise", "cutout"];

/// Whether a parameter of this name regularizes the model (or the data it sees).
pub fn is_regularizer(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    REGULARIZER_WORDS.iter().any(|word| name.contains(word))
}

/// The trials of the search itself: every trial except confirm runs.
pub fn search_trials(record: &StudyRecord) -> impl Iterator<Item = &FrozenTrial> {
    record.trials.iter().filter(|t| t.confirm_of().is_none())
}

/// Complete search trials with a finite value, best first (ties: lower number first).
pub fn ranked(record: &StudyRecord) -> Vec<&FrozenTrial> {
    let mut out: Vec<&FrozenTrial> = search_trials(record)
        .filter(|t| t.state == TrialState::Complete && t.value.is_some_and(f64::is_finite))
        .collect();
    out.sort_by(|a, b| {
        let (va, vb) = (a.value.unwrap_or(f64::NAN), b.value.unwrap_or(f64::NAN));
        let order = va.total_cmp(&vb);
        let order = if record.direction == Direction::Maximize { order.reverse() } else { order };
        order.then(a.number.cmp(&b.number))
    });
    out
}

/// What ran and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    /// Search trials (confirm runs not included).
    pub n_trials: usize,
    /// Search trials per state.
    pub n_complete: usize,
    /// Trials the pruner stopped.
    pub n_pruned: usize,
    /// Failed trials (errors, NaN losses, interrupted runs).
    pub n_fail: usize,
    /// Trials still running or queued.
    pub n_unfinished: usize,
    /// Complete trials that early stopping ended.
    pub n_early_stopped: usize,
    /// Confirm runs (`hpo confirm`).
    pub n_confirm: usize,
    /// Epochs (reported steps) trained over every trial, confirm runs included.
    pub epochs: u64,
    /// Sum of the trials' run times, in seconds.
    pub compute_seconds: f64,
    /// From the first trial's start to the last trial's end, in seconds.
    pub wall_seconds: f64,
}

/// Counts and compute of the study.
pub fn overview(record: &StudyRecord) -> Overview {
    let count = |state: TrialState| search_trials(record).filter(|t| t.state == state).count();
    let starts = record.trials.iter().filter_map(|t| t.datetime_start);
    let ends = record.trials.iter().filter_map(|t| t.datetime_complete.or(t.datetime_start));
    let wall_seconds = match (starts.min(), ends.max()) {
        (Some(first), Some(last)) => last.seconds_since(first).max(0.0),
        _ => 0.0,
    };
    Overview {
        n_trials: search_trials(record).count(),
        n_complete: count(TrialState::Complete),
        n_pruned: count(TrialState::Pruned),
        n_fail: count(TrialState::Fail),
        n_unfinished: count(TrialState::Running) + count(TrialState::Waiting),
        n_early_stopped: search_trials(record)
            .filter(|t| t.state == TrialState::Complete && ended_by(t) == "early_stopping")
            .count(),
        n_confirm: record.trials.iter().filter(|t| t.confirm_of().is_some()).count(),
        epochs: record.trials.iter().map(|t| t.intermediate_values.len() as u64).sum(),
        compute_seconds: record.trials.iter().filter_map(FrozenTrial::duration_seconds).sum(),
        wall_seconds,
    }
}

/// What ended a trial: `early_stopping`, `pruner`, `completed`, `max_epochs`, or its state.
pub fn ended_by(trial: &FrozenTrial) -> String {
    if let Some(it) = trial.system_attrs.get(attr::ENDED_BY).and_then(AttrValue::as_str) {
        return it.to_owned();
    }
    match trial.state {
        TrialState::Pruned => "pruner".to_owned(),
        TrialState::Fail => "failed".to_owned(),
        other => other.to_string(),
    }
}

/// A number a trial keeps among its user attributes (the best step's metrics).
fn user_number(trial: &FrozenTrial, key: &str) -> Option<f64> {
    trial.user_attrs.get(key).and_then(AttrValue::as_f64)
}

/// The generalization gap at the trial's best epoch: the stored
/// `generalization_gap`, or `val_loss - train_loss`.
pub fn gap_at_best(trial: &FrozenTrial) -> Option<f64> {
    user_number(trial, "generalization_gap")
        .or_else(|| Some(user_number(trial, "val_loss")? - user_number(trial, "train_loss")?))
}

/// A metric measured on the training and the validation set (`loss`, `accuracy`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPair {
    /// The name without its `train_`/`val_` prefix.
    pub name: String,
    /// `train_<name>` at the best epoch.
    pub train: Option<f64>,
    /// `val_<name>` at the best epoch.
    pub val: Option<f64>,
}

/// Names `x` for which both `train_x` and `val_x` are among `names`, in order.
fn paired_names<'a>(names: impl Iterator<Item = &'a str> + Clone) -> Vec<String> {
    let mut out: Vec<String> = names
        .clone()
        .filter_map(|n| n.strip_prefix("train_"))
        .filter(|rest| names.clone().any(|n| n.strip_prefix("val_") == Some(rest)))
        .map(str::to_owned)
        .collect();
    out.dedup();
    out
}

/// One row of the leaderboard.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderRow {
    /// 1 for the best trial.
    pub rank: usize,
    /// The trial's number.
    pub number: u64,
    /// Its objective value.
    pub value: f64,
    /// Every parameter, as a study file would write it.
    pub params: Vec<(String, String)>,
    /// The epoch the value was measured at.
    pub best_step: Option<u64>,
    /// The last epoch the trial reached.
    pub epochs: u64,
    /// Train and validation metrics at the best epoch.
    pub pairs: Vec<MetricPair>,
    /// The generalization gap at the best epoch.
    pub gap: Option<f64>,
    /// Test metrics of the best epoch's weights.
    pub test: Vec<(String, f64)>,
    /// What ended the trial.
    pub ended_by: String,
}

/// The best [`LEADERBOARD_SIZE`] trials, and the picked trial (`pick`, its number)
/// at its own rank when it is not among them (its confirmed mean can beat the
/// single-seed winners').
pub fn leaderboard(record: &StudyRecord, pick: Option<u64>) -> Vec<LeaderRow> {
    let ranked = ranked(record);
    let mut rows: Vec<LeaderRow> = ranked
        .iter()
        .take(LEADERBOARD_SIZE)
        .enumerate()
        .map(|(idx, t)| leader_row(idx + 1, t))
        .collect();
    if let Some(number) = pick
        && !rows.iter().any(|r| r.number == number)
        && let Some(idx) = ranked.iter().position(|t| t.number == number)
    {
        rows.push(leader_row(idx + 1, ranked[idx]));
    }
    rows
}

fn leader_row(rank: usize, t: &FrozenTrial) -> LeaderRow {
    let names = t.user_attrs.keys().map(String::as_str);
    let pairs = paired_names(names)
        .into_iter()
        .map(|name| MetricPair {
            train: user_number(t, &format!("train_{name}")),
            val: user_number(t, &format!("val_{name}")),
            name,
        })
        .collect();
    LeaderRow {
        rank,
        number: t.number,
        value: t.value.unwrap_or(f64::NAN),
        params: params_text(t),
        best_step: user_number(t, "best_step").map(|s| s as u64),
        epochs: t.intermediate_values.keys().next_back().copied().unwrap_or(0),
        pairs,
        gap: gap_at_best(t),
        test: t
            .user_attrs
            .iter()
            .filter(|(k, _)| k.starts_with("test_"))
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
            .collect(),
        ended_by: ended_by(t),
    }
}

/// A trial's parameters as (name, value as a study file writes it).
pub fn params_text(trial: &FrozenTrial) -> Vec<(String, String)> {
    trial.params.iter().map(|(k, v)| (k.clone(), display::param(v))).collect()
}

/// One trial on the optimization-history chart.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPoint {
    /// The trial's number (the x axis).
    pub number: u64,
    /// Its value; for a pruned trial, the study metric at its last step.
    pub value: f64,
    /// Complete or Pruned.
    pub state: TrialState,
}

/// Every trial's value and the best so far.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// The objective's metric name.
    pub metric: String,
    /// Complete and pruned trials, by number.
    pub points: Vec<HistoryPoint>,
    /// The best Complete value after each Complete trial, as a step line.
    pub best_so_far: Vec<(u64, f64)>,
}

/// The optimization history of the search.
pub fn history(record: &StudyRecord) -> History {
    history_of(&record.metric, record.direction, search_trials(record).map(TrialOutcome::of))
}

/// The history of trials told by their outcomes (`Storage::trial_outcomes`): a
/// complete trial at its value, a pruned one at the value of its last step.
pub fn history_of(
    metric: &str,
    direction: Direction,
    outcomes: impl IntoIterator<Item = TrialOutcome>,
) -> History {
    let mut points = Vec::new();
    let mut best_so_far: Vec<(u64, f64)> = Vec::new();
    for t in outcomes {
        let value = match t.state {
            TrialState::Complete => t.value,
            TrialState::Pruned => t.last_step.map(|(_, v)| v),
            _ => None,
        };
        let Some(value) = value.filter(|v| v.is_finite()) else { continue };
        points.push(HistoryPoint { number: t.number, value, state: t.state });
        if t.state == TrialState::Complete {
            let best = match best_so_far.last() {
                Some(&(_, best)) if !direction.is_better(value, best) => best,
                _ => value,
            };
            best_so_far.push((t.number, best));
        }
    }
    History { metric: metric.to_owned(), points, best_so_far }
}

/// One line of a learning-curve figure.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveLine {
    /// The trial's number.
    pub trial: u64,
    /// The trial's rank in the leaderboard (1 = best).
    pub rank: usize,
    /// `train` or `val`.
    pub split: &'static str,
    /// (epoch, value) points.
    pub points: Vec<(u64, f64)>,
    /// The trial's best epoch and this line's value there.
    pub best: Option<(u64, f64)>,
}

/// Train and validation curves of one metric (`loss`) for the best trials.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveFigure {
    /// The metric without prefix.
    pub metric: String,
    /// Two lines per trial: train, then val.
    pub lines: Vec<CurveLine>,
}

/// Learning curves of the [`CURVE_TRIALS`] best trials, one figure per metric that
/// is measured on both splits; the study metric's figure first.
pub fn learning_curves(record: &StudyRecord) -> Vec<CurveFigure> {
    let top: Vec<&FrozenTrial> = ranked(record).into_iter().take(CURVE_TRIALS).collect();
    let mut names: Vec<&str> = top
        .iter()
        .filter_map(|t| record.curves.get(&t.id))
        .flat_map(|points| points.iter().map(|p| p.name.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut metrics = paired_names(names.iter().copied());
    let study_metric = record.metric.trim_start_matches("val_").trim_start_matches("train_");
    metrics.sort_by_key(|m| (m != study_metric, m != "loss", m.clone()));
    metrics
        .into_iter()
        .map(|metric| {
            let mut lines = Vec::new();
            for (idx, t) in top.iter().enumerate() {
                let best_step = user_number(t, "best_step").map(|s| s as u64);
                for split in ["train", "val"] {
                    let name = format!("{split}_{metric}");
                    let points: Vec<(u64, f64)> = record
                        .curves
                        .get(&t.id)
                        .into_iter()
                        .flatten()
                        .filter(|p| p.name == name && p.value.is_finite())
                        .map(|p| (p.step, p.value))
                        .collect();
                    if points.is_empty() {
                        continue;
                    }
                    let best = best_step.and_then(|s| points.iter().find(|p| p.0 == s).copied());
                    lines.push(CurveLine { trial: t.number, rank: idx + 1, split, points, best });
                }
            }
            CurveFigure { metric, lines }
        })
        .filter(|f| !f.lines.is_empty())
        .chain(intermediate_curves(record, &top))
        .collect()
}

/// For a study with no named curves (one Optuna wrote): the study metric's
/// intermediate values of the best trials, as one figure of validation lines.
fn intermediate_curves(record: &StudyRecord, top: &[&FrozenTrial]) -> Option<CurveFigure> {
    if top.iter().any(|t| record.curves.get(&t.id).is_some_and(|c| !c.is_empty())) {
        return None;
    }
    let lines: Vec<CurveLine> = top
        .iter()
        .enumerate()
        .filter(|(_, t)| !t.intermediate_values.is_empty())
        .map(|(idx, t)| CurveLine {
            trial: t.number,
            rank: idx + 1,
            split: "val",
            points: t
                .intermediate_values
                .iter()
                .filter(|(_, v)| v.is_finite())
                .map(|(s, v)| (*s, *v))
                .collect(),
            best: None,
        })
        .collect();
    (!lines.is_empty()).then(|| CurveFigure { metric: record.metric.clone(), lines })
}

/// The scale of a parameter's axis.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamAxis {
    /// Numeric, linear from `low` to `high`.
    Linear {
        /// The distribution's lower bound.
        low: f64,
        /// The distribution's upper bound.
        high: f64,
    },
    /// Numeric, logarithmic from `low` to `high`.
    Log {
        /// The distribution's lower bound.
        low: f64,
        /// The distribution's upper bound.
        high: f64,
    },
    /// One position per choice; a trial's x is its choice's index.
    Categories(Vec<String>),
}

impl ParamAxis {
    /// The axis of a distribution.
    pub fn of(distribution: &Distribution) -> ParamAxis {
        match distribution {
            Distribution::Float { low, high, log, .. } => {
                if *log {
                    ParamAxis::Log { low: *low, high: *high }
                } else {
                    ParamAxis::Linear { low: *low, high: *high }
                }
            }
            Distribution::Int { low, high, log, .. } => {
                let (low, high) = (*low as f64, *high as f64);
                if *log { ParamAxis::Log { low, high } } else { ParamAxis::Linear { low, high } }
            }
            Distribution::Categorical { choices } => {
                ParamAxis::Categories(choices.iter().map(display::param).collect())
            }
        }
    }

    /// Where `x` (a numeric value or a choice index) lies on the axis, from 0 to 1.
    pub fn position(&self, x: f64) -> f64 {
        let unit = match self {
            ParamAxis::Linear { low, high } => (x - low) / (high - low),
            ParamAxis::Log { low, high } => (x.ln() - low.ln()) / (high.ln() - low.ln()),
            ParamAxis::Categories(choices) if choices.len() > 1 => x / (choices.len() - 1) as f64,
            ParamAxis::Categories(_) => 0.5,
        };
        if unit.is_finite() { unit.clamp(0.0, 1.0) } else { 0.5 }
    }

    /// The value used for fitting trends: log10 on a log axis, else `x`.
    fn fit_x(&self, x: f64) -> f64 {
        match self {
            ParamAxis::Log { .. } => x.log10(),
            _ => x,
        }
    }
}

/// A trial's x on a parameter's axis: the numeric value, or the choice's index.
fn axis_x(trial: &FrozenTrial, param: &str) -> Option<f64> {
    let value = trial.params.get(param)?;
    match trial.distributions.get(param)? {
        d @ Distribution::Categorical { .. } => d.to_internal(value),
        _ => value.as_f64(),
    }
}

/// A trend over a parameter: a straight line, or one mean per choice.
#[derive(Debug, Clone, PartialEq)]
pub enum Trend {
    /// Least squares in the axis's space (log10 x on a log axis).
    Line(LinearFit),
    /// The mean per choice (`None` for a choice no trial took).
    Means(Vec<Option<f64>>),
    /// Too few points.
    None,
}

impl Trend {
    /// The trend's y at x (a value or a choice index), if it has one there.
    pub fn at(&self, axis: &ParamAxis, x: f64) -> Option<f64> {
        match self {
            Trend::Line(fit) => Some(fit.intercept + fit.slope * axis.fit_x(x)),
            Trend::Means(means) => means.get(x as usize).copied().flatten(),
            Trend::None => None,
        }
    }
}

/// A note when `param` changes what `metric` measures, so its trend misleads:
/// label smoothing trains toward less confident predictions, which raises the plain
/// cross-entropy (what hpo reports as a loss) even when accuracy improves.
pub fn changes_metric(param: &str, metric: &str) -> Option<String> {
    (param == "label_smoothing" && metric.contains("loss")).then(|| {
        format!(
            "Label smoothing raises the plain cross-entropy ({metric}) by design: smoothed models are less confident even when they classify as well or better. Compare label smoothing values on accuracy, not on {metric}."
        )
    })
}

/// One trial on a regularization panel.
#[derive(Debug, Clone, PartialEq)]
pub struct RegPoint {
    /// The trial's number.
    pub number: u64,
    /// The parameter's value (a choice's index for categoricals).
    pub x: f64,
    /// The generalization gap at the best epoch.
    pub gap: Option<f64>,
    /// The objective.
    pub value: f64,
}

/// The gap and the objective against one regularization parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct RegPanel {
    /// The objective's metric name.
    pub metric: String,
    /// The parameter.
    pub param: String,
    /// Its axis.
    pub axis: ParamAxis,
    /// Complete trials that have the parameter.
    pub points: Vec<RegPoint>,
    /// The gap's trend.
    pub gap_trend: Trend,
    /// The objective's trend.
    pub value_trend: Trend,
}

/// One panel per regularization parameter of the space that complete trials took.
pub fn regularization(record: &StudyRecord) -> Vec<RegPanel> {
    let trials = ranked(record);
    let mut params: Vec<(&String, &Distribution)> = trials
        .iter()
        .flat_map(|t| t.distributions.iter())
        .filter(|(name, _)| is_regularizer(name))
        .collect();
    params.sort_by(|a, b| a.0.cmp(b.0));
    params.dedup_by(|a, b| a.0 == b.0);
    params
        .into_iter()
        .map(|(param, distribution)| {
            let axis = ParamAxis::of(distribution);
            let points: Vec<RegPoint> = trials
                .iter()
                .filter_map(|t| {
                    Some(RegPoint {
                        number: t.number,
                        x: axis_x(t, param)?,
                        gap: gap_at_best(t),
                        value: t.value?,
                    })
                })
                .collect();
            let gaps: Vec<(f64, f64)> = points.iter().filter_map(|p| Some((p.x, p.gap?))).collect();
            let values: Vec<(f64, f64)> = points.iter().map(|p| (p.x, p.value)).collect();
            RegPanel {
                gap_trend: trend(&axis, &gaps),
                value_trend: trend(&axis, &values),
                param: param.clone(),
                metric: record.metric.clone(),
                axis,
                points,
            }
        })
        .collect()
}

fn trend(axis: &ParamAxis, points: &[(f64, f64)]) -> Trend {
    match axis {
        ParamAxis::Categories(choices) => Trend::Means(
            (0..choices.len())
                .map(|idx| {
                    let ys: Vec<f64> = points
                        .iter()
                        .filter(|p| p.0 as usize == idx && p.1.is_finite())
                        .map(|p| p.1)
                        .collect();
                    (!ys.is_empty()).then(|| ys.iter().sum::<f64>() / ys.len() as f64)
                })
                .collect(),
        ),
        _ => {
            let xs: Vec<f64> = points.iter().map(|p| axis.fit_x(p.0)).collect();
            let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
            stats::linear_fit(&xs, &ys).map_or(Trend::None, Trend::Line)
        }
    }
}

/// One axis of the heat map: a parameter cut into bins (or its choices).
#[derive(Debug, Clone, PartialEq)]
pub struct HeatAxis {
    /// The parameter.
    pub param: String,
    /// Each bin's label (`0.1-0.2`, or the choice).
    pub labels: Vec<String>,
    axis: ParamAxis,
}

impl HeatAxis {
    fn new(param: &str, axis: ParamAxis) -> HeatAxis {
        let labels = match &axis {
            ParamAxis::Categories(choices) => choices.clone(),
            numeric => (0..HEAT_BINS)
                .map(|bin| {
                    let edge = |k: usize| numeric.value_at(k as f64 / HEAT_BINS as f64);
                    format!("{}-{}", display::short(edge(bin)), display::short(edge(bin + 1)))
                })
                .collect(),
        };
        HeatAxis { param: param.to_owned(), labels, axis }
    }

    fn bin(&self, x: f64) -> usize {
        match &self.axis {
            ParamAxis::Categories(_) => x as usize,
            numeric => ((numeric.position(x) * HEAT_BINS as f64) as usize).min(HEAT_BINS - 1),
        }
    }
}

impl ParamAxis {
    /// The value at a position from 0 to 1 (numeric axes; a choice index otherwise).
    pub fn value_at(&self, unit: f64) -> f64 {
        match self {
            ParamAxis::Linear { low, high } => low + unit * (high - low),
            ParamAxis::Log { low, high } => (low.ln() + unit * (high.ln() - low.ln())).exp(),
            ParamAxis::Categories(choices) => unit * choices.len().saturating_sub(1) as f64,
        }
    }
}

/// The mean objective over a grid of two parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatMap {
    /// The objective's metric name.
    pub metric: String,
    /// The horizontal parameter.
    pub x: HeatAxis,
    /// The vertical parameter.
    pub y: HeatAxis,
    /// `cells[row][col]`: mean objective of the trials in that cell, row = y bin.
    pub cells: Vec<Vec<Option<f64>>>,
    /// Trials per cell, same layout.
    pub counts: Vec<Vec<usize>>,
    /// Each trial's cell: (trial number, column, row), so a chart can mark one.
    pub trial_cells: Vec<(u64, usize, usize)>,
}

/// The heat map of the objective over the two most important regularization
/// parameters (by `importance`); over the two most important parameters when the
/// space has fewer than two regularizers. `None` with fewer than two parameters.
pub fn heat_map(record: &StudyRecord, importance: &[Importance]) -> Option<HeatMap> {
    let trials = ranked(record);
    let distribution_of = |name: &str| trials.iter().find_map(|t| t.distributions.get(name));
    let mut chosen: Vec<&str> =
        importance.iter().map(|i| i.param.as_str()).filter(|p| is_regularizer(p)).take(2).collect();
    if chosen.len() < 2 {
        chosen = importance.iter().map(|i| i.param.as_str()).take(2).collect();
    }
    let [x_param, y_param] = chosen[..] else { return None };
    let x = HeatAxis::new(x_param, ParamAxis::of(distribution_of(x_param)?));
    let y = HeatAxis::new(y_param, ParamAxis::of(distribution_of(y_param)?));
    let mut sums = vec![vec![0.0; x.labels.len()]; y.labels.len()];
    let mut counts = vec![vec![0usize; x.labels.len()]; y.labels.len()];
    let mut trial_cells = Vec::new();
    for t in &trials {
        let (Some(xv), Some(yv), Some(value)) = (axis_x(t, x_param), axis_x(t, y_param), t.value)
        else {
            continue;
        };
        let (col, row) = (x.bin(xv), y.bin(yv));
        trial_cells.push((t.number, col, row));
        if row < sums.len() && col < sums[row].len() {
            sums[row][col] += value;
            counts[row][col] += 1;
        }
    }
    let cells = sums
        .iter()
        .zip(&counts)
        .map(|(row, n)| row.iter().zip(n).map(|(s, &n)| (n > 0).then(|| s / n as f64)).collect())
        .collect();
    Some(HeatMap { metric: record.metric.clone(), x, y, cells, counts, trial_cells })
}

/// One vertical axis of the parallel-coordinates chart.
#[derive(Debug, Clone, PartialEq)]
pub struct ParallelAxis {
    /// A parameter, or the objective's metric (the last axis).
    pub name: String,
    /// Tick labels at positions from 0 (bottom) to 1 (top).
    pub ticks: Vec<(f64, String)>,
}

/// Parallel coordinates of the complete trials.
#[derive(Debug, Clone, PartialEq)]
pub struct Parallel {
    /// Every parameter, then the objective.
    pub axes: Vec<ParallelAxis>,
    /// One line per trial, worst first so the best are drawn on top.
    pub lines: Vec<ParallelLine>,
    /// The objective's range (colour scale).
    pub value_range: (f64, f64),
    /// Complete trials left out beyond [`PARALLEL_MAX_LINES`].
    pub n_left_out: usize,
}

/// One trial on the parallel coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct ParallelLine {
    /// The trial's number.
    pub number: u64,
    /// Its rank among the complete trials (1 = best).
    pub rank: usize,
    /// Its position on each axis, in [0, 1] (`None` where it lacks the parameter).
    pub positions: Vec<Option<f64>>,
    /// Its value.
    pub value: f64,
}

/// Parallel coordinates of up to [`PARALLEL_MAX_LINES`] complete trials (the best).
pub fn parallel(record: &StudyRecord) -> Option<Parallel> {
    parallel_of_best(record, PARALLEL_MAX_LINES)
}

/// Parallel coordinates of up to `max_lines` complete trials (the best).
pub fn parallel_of_best(record: &StudyRecord, max_lines: usize) -> Option<Parallel> {
    let trials = ranked(record);
    let first = *trials.first()?;
    let mut names: Vec<(&String, &Distribution)> =
        trials.iter().flat_map(|t| t.distributions.iter()).collect();
    names.sort_by(|a, b| a.0.cmp(b.0));
    names.dedup_by(|a, b| a.0 == b.0);
    let param_axes: Vec<(String, ParamAxis)> =
        names.into_iter().map(|(n, d)| (n.clone(), ParamAxis::of(d))).collect();
    let values: Vec<f64> = trials.iter().filter_map(|t| t.value).collect();
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let value_axis = ParamAxis::Linear { low, high };
    let mut axes: Vec<ParallelAxis> = param_axes
        .iter()
        .map(|(name, axis)| ParallelAxis { name: name.clone(), ticks: ticks(axis) })
        .collect();
    axes.push(ParallelAxis { name: record.metric.clone(), ticks: ticks(&value_axis) });
    let kept = trials.len().min(max_lines);
    let lines = trials[..kept]
        .iter()
        .enumerate()
        .rev()
        .map(|(idx, t)| {
            let mut positions: Vec<Option<f64>> = param_axes
                .iter()
                .map(|(name, axis)| axis_x(t, name).map(|x| axis.position(x)))
                .collect();
            let value = t.value.unwrap_or(f64::NAN);
            positions.push(Some(value_axis.position(value)));
            ParallelLine { number: t.number, rank: idx + 1, positions, value }
        })
        .collect();
    let _ = first;
    Some(Parallel { axes, lines, value_range: (low, high), n_left_out: trials.len() - kept })
}

fn ticks(axis: &ParamAxis) -> Vec<(f64, String)> {
    match axis {
        ParamAxis::Categories(choices) => choices
            .iter()
            .enumerate()
            .map(|(idx, c)| (axis.position(idx as f64), c.clone()))
            .collect(),
        // Round values, as on every chart's axes; the extremes when the range holds
        // too few of them.
        ParamAxis::Linear { low, high } => {
            let mut at = crate::chart::round_ticks(false, *low..*high);
            if at.len() < 2 {
                at = vec![*low, *high];
            }
            at.into_iter().map(|v| (axis.position(v), crate::chart::tick(v))).collect()
        }
        ParamAxis::Log { low, high } => {
            let mut at = crate::chart::round_ticks(true, *low..*high);
            if at.len() < 2 {
                at = vec![*low, *high];
            }
            at.into_iter().map(|v| (axis.position(v), crate::chart::tick(v))).collect()
        }
    }
}

/// One trial on the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineBar {
    /// The trial's number.
    pub number: u64,
    /// Index into [`Timeline::workers`].
    pub worker: usize,
    /// Seconds from the study's first start.
    pub start: f64,
    /// Seconds from the study's first start to the trial's end (or the last event).
    pub end: f64,
    /// How it ended.
    pub state: TrialState,
    /// Whether it is a confirm run.
    pub confirm: bool,
}

/// When each trial ran, and on which worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// Rows: workers (`host pid N on cuda:0`), one lane each (`... #2`) for trials of
    /// one worker that overlapped in time, in order of first appearance.
    pub workers: Vec<String>,
    /// One bar per started trial.
    pub bars: Vec<TimelineBar>,
}

/// The timeline of every started trial.
pub fn timeline(record: &StudyRecord) -> Timeline {
    let started: Vec<&FrozenTrial> =
        record.trials.iter().filter(|t| t.datetime_start.is_some()).collect();
    let Some(origin) = started.iter().filter_map(|t| t.datetime_start).min() else {
        return Timeline { workers: Vec::new(), bars: Vec::new() };
    };
    let last = record
        .trials
        .iter()
        .filter_map(|t| t.datetime_complete.or(t.datetime_start))
        .max()
        .unwrap_or(origin);
    // Trials of one process on one device that overlap in time (workers = N,
    // trials_per_device = K) go on lanes of their own, so concurrency shows.
    let mut started = started;
    started.sort_by_key(|t| (t.datetime_start, t.number));
    let mut workers: Vec<String> = Vec::new();
    let mut lane_ends: Vec<f64> = Vec::new();
    let bars = started
        .iter()
        .filter_map(|t| {
            let start = t.datetime_start?.seconds_since(origin);
            let end = t.datetime_complete.unwrap_or(last).seconds_since(origin);
            let label = worker_label(t);
            let free = (0..workers.len()).find(|&idx| {
                (workers[idx] == label || workers[idx].starts_with(&format!("{label} #")))
                    && lane_ends[idx] <= start
            });
            let worker = match free {
                Some(idx) => idx,
                None => {
                    let n_lanes = workers
                        .iter()
                        .filter(|w| **w == label || w.starts_with(&format!("{label} #")))
                        .count();
                    workers.push(if n_lanes == 0 {
                        label
                    } else {
                        format!("{label} #{}", n_lanes + 1)
                    });
                    lane_ends.push(f64::NEG_INFINITY);
                    workers.len() - 1
                }
            };
            lane_ends[worker] = end;
            Some(TimelineBar {
                number: t.number,
                worker,
                start,
                end,
                state: t.state,
                confirm: t.confirm_of().is_some(),
            })
        })
        .collect();
    Timeline { workers, bars }
}

/// `host pid 4242` from an owner `host:pid:start`; `device` added when recorded.
fn worker_label(trial: &FrozenTrial) -> String {
    let owner = trial.system_attrs.get(attr::OWNER).and_then(AttrValue::as_str).unwrap_or("");
    let mut parts = owner.split(':');
    let mut label = match (parts.next(), parts.next()) {
        (Some(host), Some(pid)) if !host.is_empty() => format!("{host} pid {pid}"),
        (Some(other), None) if !other.is_empty() => other.to_owned(),
        _ => "unknown worker".to_owned(),
    };
    if let Some(device) = trial.system_attrs.get(attr::DEVICE).and_then(AttrValue::as_str) {
        label.push_str(&format!(" on {device}"));
    }
    label
}

/// A configuration retrained with several seeds: the original trial and its confirm runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfirmGroup {
    /// The original trial's number.
    pub original: u64,
    /// Its parameters.
    pub params: Vec<(String, String)>,
    /// The original trial's value: selected for being good, so left out of the mean.
    pub original_value: Option<f64>,
    /// Each Complete confirm run's value (new seeds).
    pub values: Vec<f64>,
    /// Mean and 95% confidence interval of `values`.
    pub ci: MeanCi,
}

/// Seed-noise results: configurations best mean first, and whether the best is
/// distinguishable from the runner-up.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirmation {
    /// The objective's metric name.
    pub metric: String,
    /// Configurations with at least one confirm run, best mean first.
    pub groups: Vec<ConfirmGroup>,
    /// Welch's t-test of the best against the runner-up, when both have 2+ values.
    pub best_vs_runner_up: Option<Welch>,
}

impl Confirmation {
    /// The pooled standard deviation of one run's value across seeds, from every
    /// group with at least two values.
    pub fn noise(&self) -> Option<f64> {
        let variances: Vec<f64> =
            self.groups.iter().filter(|g| g.ci.n >= 2).map(|g| g.ci.std * g.ci.std).collect();
        (!variances.is_empty())
            .then(|| (variances.iter().sum::<f64>() / variances.len() as f64).sqrt())
    }

    /// Whether the best configuration is distinguishable from the runner-up at 5%.
    pub fn distinguishable(&self) -> Option<bool> {
        self.best_vs_runner_up.as_ref().map(|w| w.p_value < 0.05)
    }
}

/// The confirm runs of a study pooled with their originals; `None` when it has none.
pub fn confirm_groups(record: &StudyRecord) -> Option<Confirmation> {
    let mut runs: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for t in &record.trials {
        if let (Some(original), TrialState::Complete, Some(v)) = (t.confirm_of(), t.state, t.value)
        {
            runs.entry(original).or_default().push(v);
        }
    }
    if runs.is_empty() {
        return None;
    }
    let mut groups: Vec<ConfirmGroup> = runs
        .into_iter()
        .filter_map(|(original, confirm_values)| {
            // Confirm runs are numbered in a study of their own: look among the
            // search trials only.
            let trial = search_trials(record).find(|t| t.number == original)?;
            let values = confirm_values;
            Some(ConfirmGroup {
                original,
                params: params_text(trial),
                original_value: trial.value,
                ci: stats::mean_ci95(&values)?,
                values,
            })
        })
        .collect();
    groups.sort_by(|a, b| {
        let order = a.ci.mean.total_cmp(&b.ci.mean);
        if record.direction == Direction::Maximize { order.reverse() } else { order }
    });
    let best_vs_runner_up = match &groups[..] {
        [best, runner_up, ..] => stats::welch_t_test(&best.values, &runner_up.values),
        _ => None,
    };
    Some(Confirmation { metric: record.metric.clone(), groups, best_vs_runner_up })
}

/// The configuration the report recommends, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// The trial whose configuration to pick.
    pub number: u64,
    /// Its parameters.
    pub params: Vec<(String, String)>,
    /// Its value (the confirmed mean when confirm runs exist).
    pub value: f64,
    /// The reasons, one sentence each.
    pub reasons: Vec<String>,
    /// The mean and 95% interval of its confirm runs; `None` while no confirm run
    /// finished, when the pick is provisional (the best single-seed value).
    pub confirmed: Option<stats::MeanCi>,
    /// The runner-up: its trial number and value (confirmed mean, or single-seed
    /// value for a provisional pick).
    pub runner_up: Option<(u64, f64)>,
    /// Welch's test of the pick against the runner-up's confirm runs, when both
    /// have two or more.
    pub welch_p: Option<f64>,
}

impl Recommendation {
    /// Whether the pick rests on a single seed (no confirm run yet).
    pub fn is_provisional(&self) -> bool {
        self.confirmed.is_none()
    }

    /// What the pick rests on, in words.
    pub fn basis(&self) -> String {
        match &self.confirmed {
            Some(ci) => format!("best mean over {} confirm runs with new seeds", ci.n),
            None => "provisional: the best single-seed value; no `hpo confirm` run yet, so seed noise is unknown".to_owned(),
        }
    }
}

/// Picks a configuration: the best confirmed mean when `hpo confirm` ran, else the
/// best trial, with the evidence and caveats a lead needs.
pub fn recommend(
    record: &StudyRecord,
    confirmation: Option<&Confirmation>,
) -> Option<Recommendation> {
    let ranked = ranked(record);
    let metric = &record.metric;
    let mut reasons = Vec::new();
    let mut confirmed = None;
    let runner_up_of_pick;
    let mut welch_p = None;
    let (trial, value) = match confirmation.and_then(|c| c.groups.first().map(|g| (c, g))) {
        Some((confirmation, best)) => {
            confirmed = Some(best.ci);
            runner_up_of_pick = confirmation.groups.get(1).map(|g| (g.original, g.ci.mean));
            welch_p = confirmation.best_vs_runner_up.as_ref().map(|w| w.p_value);
            let trial = ranked.iter().find(|t| t.number == best.original)?;
            reasons.push(format!(
                "best mean {metric} over new seeds: {} ± {} (95% CI, {} confirm runs)",
                display::value(best.ci.mean),
                display::value(best.ci.half_width),
                best.ci.n
            ));
            if let (Some(runner_up), Some(welch)) =
                (confirmation.groups.get(1), &confirmation.best_vs_runner_up)
            {
                if welch.p_value < 0.05 {
                    reasons.push(format!(
                        "distinguishable from the runner-up, trial {} (mean {}; Welch p = {:.3})",
                        runner_up.original,
                        display::value(runner_up.ci.mean),
                        welch.p_value
                    ));
                } else {
                    reasons.push(format!(
                        "not distinguishable from the runner-up, trial {} (mean {}; Welch p = {:.2}): either is a sound choice",
                        runner_up.original,
                        display::value(runner_up.ci.mean),
                        welch.p_value
                    ));
                }
            }
            (*trial, best.ci.mean)
        }
        None => {
            let best = *ranked.first()?;
            let value = best.value?;
            reasons.push(format!(
                "best {metric} of {} complete trials: {}",
                ranked.len(),
                display::value(value)
            ));
            runner_up_of_pick = ranked.get(1).and_then(|t| Some((t.number, t.value?)));
            if let Some(runner_up) = runner_up_of_pick {
                reasons.push(format!(
                    "runner-up: trial {} at {}; run `hpo confirm` to measure seed noise before trusting a small difference",
                    runner_up.0,
                    display::value(runner_up.1)
                ));
            }
            (best, value)
        }
    };
    let row = leader_row(1, trial);
    if let Some(step) = row.best_step {
        reasons.push(format!(
            "measured at epoch {step} of {} (ended by {})",
            row.epochs,
            row.ended_by.replace('_', " ")
        ));
    }
    if let Some(gap) = row.gap {
        let top_gaps: Vec<f64> =
            ranked.iter().take(LEADERBOARD_SIZE).filter_map(|t| gap_at_best(t)).collect();
        let mut sorted = top_gaps;
        sorted.sort_by(f64::total_cmp);
        let median = (!sorted.is_empty()).then(|| stats::quantile(&sorted, 0.5));
        let verdict = match median {
            Some(m) if gap > 2.0 * m.abs() && gap > 0.0 => {
                "larger than most of the top trials': it overfits more"
            }
            Some(m) if gap <= m => "at or below the median of the top trials",
            _ => "in line with the top trials",
        };
        reasons.push(format!(
            "generalization gap (val - train loss) at that epoch: {} — {verdict}",
            display::value(gap)
        ));
    }
    Some(Recommendation {
        number: trial.number,
        params: params_text(trial),
        value,
        reasons,
        confirmed,
        runner_up: runner_up_of_pick,
        welch_p,
    })
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    /// The study (and date) this side shows.
    pub label: String,
    /// Complete search trials.
    pub n_complete: usize,
    /// The best trial, if any completed.
    pub best: Option<SideBest>,
}

/// The best trial of one side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct SideBest {
    /// Its number.
    pub number: u64,
    /// Its value.
    pub value: f64,
    /// Its parameters.
    pub params: Vec<(String, String)>,
    /// Its generalization gap at the best epoch.
    pub gap: Option<f64>,
    /// Its confirm runs' mean and interval, when `value` is that mean.
    pub confirmed: Option<stats::MeanCi>,
}

/// A side of a comparison: its pick (the report's recommendation: the confirmed
/// mean where confirm ran, else the best single-seed trial).
fn side(record: &StudyRecord) -> Side {
    let ranked = ranked(record);
    let confirmation = confirm_groups(record);
    let pick = recommend(record, confirmation.as_ref());
    Side {
        label: record.name.clone(),
        n_complete: ranked.len(),
        best: pick.and_then(|pick| {
            let t = ranked.iter().find(|t| t.number == pick.number)?;
            Some(SideBest {
                number: t.number,
                value: pick.value,
                params: params_text(t),
                gap: gap_at_best(t),
                confirmed: pick.confirmed,
            })
        }),
    }
}

/// What a comparison concludes about B against A.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// B's best is better than A's.
    Better,
    /// The same value.
    Same,
    /// Worse, by less than the seed noise.
    WorseWithinNoise,
    /// Worse beyond the seed noise (or worse at all when no noise was measured).
    WorseBeyondNoise,
    /// One side has no complete trial.
    Unknown,
}

/// B against A: best values, configurations, gaps, and the parameters that moved.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The baseline.
    pub a: Side,
    /// The one compared with it.
    pub b: Side,
    /// Parameters whose best value differs: (name, A's, B's).
    pub moved: Vec<(String, Option<String>, Option<String>)>,
    /// The seed noise (std of one run) from either side's confirm runs.
    pub noise: Option<f64>,
    /// The conclusion.
    pub verdict: Verdict,
    /// The direction both sides optimize.
    pub direction: Direction,
    /// The objective's metric.
    pub metric: String,
}

/// Compares B with A. B is worse "beyond noise" when its best is worse than A's by
/// more than 1.96·σ·√2 (two single runs, each with the seed noise σ measured by
/// `hpo confirm` on either study); with no confirm runs σ is unknown and any
/// worsening counts.
pub fn compare(a: &StudyRecord, b: &StudyRecord) -> Comparison {
    let noise = confirm_groups(b)
        .and_then(|c| c.noise())
        .or_else(|| confirm_groups(a).and_then(|c| c.noise()));
    let (side_a, side_b) = (side(a), side(b));
    let mut moved = Vec::new();
    if let (Some(best_a), Some(best_b)) = (&side_a.best, &side_b.best) {
        let lookup = |params: &[(String, String)], name: &str| {
            params.iter().find(|p| p.0 == name).map(|p| p.1.clone())
        };
        let mut names: Vec<&String> =
            best_a.params.iter().chain(&best_b.params).map(|p| &p.0).collect();
        names.sort();
        names.dedup();
        for name in names {
            let (va, vb) = (lookup(&best_a.params, name), lookup(&best_b.params, name));
            if va != vb {
                moved.push((name.clone(), va, vb));
            }
        }
    }
    let verdict = match (&side_a.best, &side_b.best) {
        (Some(best_a), Some(best_b)) => {
            let (va, vb) = (best_a.value, best_b.value);
            // Each side's value is a mean of n runs (1 for a single-seed pick): the
            // difference of two such means has std σ·√(1/na + 1/nb).
            let runs = |best: &SideBest| best.confirmed.map_or(1, |ci| ci.n.max(1)) as f64;
            let spread = (1.0 / runs(best_a) + 1.0 / runs(best_b)).sqrt();
            if vb == va {
                Verdict::Same
            } else if a.direction.is_better(vb, va) {
                Verdict::Better
            } else if noise.is_some_and(|s| (vb - va).abs() <= 1.96 * s * spread) {
                Verdict::WorseWithinNoise
            } else {
                Verdict::WorseBeyondNoise
            }
        }
        _ => Verdict::Unknown,
    };
    Comparison {
        a: side_a,
        b: side_b,
        moved,
        noise,
        verdict,
        direction: b.direction,
        metric: b.metric.clone(),
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let best = |side: &Side| match &side.best {
            Some(best) => format!(
                "{} (trial {}, {}, gap {})",
                match &best.confirmed {
                    Some(ci) => format!(
                        "{} ± {}",
                        display::value(best.value),
                        display::value(ci.half_width)
                    ),
                    None => display::value(best.value),
                },
                best.number,
                match &best.confirmed {
                    Some(ci) => format!("mean of {} confirm runs", ci.n),
                    None => "single seed, provisional".to_owned(),
                },
                best.gap.map_or("-".to_owned(), display::value)
            ),
            None => "no complete trial".to_owned(),
        };
        writeln!(f, "A: {}  ({} complete trials)", self.a.label, self.a.n_complete)?;
        writeln!(f, "B: {}  ({} complete trials)", self.b.label, self.b.n_complete)?;
        writeln!(f, "pick {} ({}):", self.metric, self.direction)?;
        writeln!(f, "  A  {}", best(&self.a))?;
        writeln!(f, "  B  {}", best(&self.b))?;
        if self.moved.is_empty() {
            writeln!(f, "best configuration: unchanged")?;
        } else {
            writeln!(f, "parameters that moved (A -> B):")?;
            for (name, va, vb) in &self.moved {
                let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".to_owned());
                writeln!(f, "  {name}: {} -> {}", show(va), show(vb))?;
            }
        }
        match self.noise {
            Some(noise) => writeln!(
                f,
                "seed noise (std of one run, from hpo confirm): {}",
                display::value(noise)
            )?,
            None => writeln!(f, "seed noise: unknown (no `hpo confirm` runs), taken as 0")?,
        }
        let verdict = match self.verdict {
            Verdict::Better => "B is better",
            Verdict::Same => "B is the same",
            Verdict::WorseWithinNoise => "B is worse, within the seed noise",
            Verdict::WorseBeyondNoise => "B is worse beyond the seed noise",
            Verdict::Unknown => "cannot compare: a side has no complete trial",
        };
        write!(f, "verdict: {verdict}")
    }
}

/// Consecutive trials proposed by one model of a sampler that chooses between
/// models (`kind = "auto"`, the `hpo:sampler` attribute).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRun {
    /// The model (`random`, `tpe`, `gp`).
    pub model: String,
    /// The run's first trial number.
    pub first: u64,
    /// The run's last trial number.
    pub last: u64,
    /// Why the model proposed the run's last trial.
    pub reason: String,
}

impl fmt::Display for ModelRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let trials = if self.first == self.last {
            format!("trial {}", self.first)
        } else {
            format!("trials {}-{}", self.first, self.last)
        };
        write!(f, "{} for {trials}: {}", self.model, self.reason)
    }
}

/// The runs of trials each model proposed, in order of number; empty when no
/// trial says which model proposed it.
pub fn model_runs<'a>(trials: impl IntoIterator<Item = &'a FrozenTrial>) -> Vec<ModelRun> {
    let mut runs: Vec<ModelRun> = Vec::new();
    for trial in trials {
        let Some(text) = trial.system_attrs.get(attr::SAMPLER).and_then(AttrValue::as_str) else {
            continue;
        };
        let (model, reason) = text.split_once(": ").unwrap_or((text, ""));
        match runs.last_mut() {
            Some(run) if run.model == model => {
                run.last = trial.number;
                reason.clone_into(&mut run.reason);
            }
            _ => runs.push(ModelRun {
                model: model.to_owned(),
                first: trial.number,
                last: trial.number,
                reason: reason.to_owned(),
            }),
        }
    }
    runs
}

/// One night of a nightly study (`hpo nightly`), as the trend chart shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct NightPoint {
    /// The night, `YYYY-MM-DD`.
    pub date: String,
    /// The night's study (`NAME@YYYY-MM-DD`).
    pub study: String,
    /// The night's pick: its value (the confirmed mean once confirmed).
    pub value: Option<f64>,
    /// Half the width of the 95% interval of that mean, when confirmed.
    pub ci95: Option<f64>,
    /// The night's search trials (its budget used).
    pub trials: usize,
    /// Of those, the failed ones.
    pub failed: usize,
    /// What the night concluded against the night before, as `hpo nightly` stored
    /// it (`better`, `worse_beyond_noise`, ...).
    pub verdict: Option<String>,
}

/// Every night of a nightly study, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct NightTrend {
    /// The study file's `[study] name`, which every night's name starts with.
    pub base: String,
    /// The objective's metric.
    pub metric: String,
    /// The nights.
    pub nights: Vec<NightPoint>,
}

#[cfg(test)]
mod tests;
