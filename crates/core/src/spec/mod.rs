//! Study files: TOML text in, a validated [`StudySpec`] out.
//!
//! Parsing has two passes. serde reads the text into `Raw*` structs that mirror the
//! file (`raw.rs`: unknown fields rejected, every value wrapped in [`Spanned`] so we
//! know where it was written; `shape.rs` first refuses the shapes serde would tell
//! badly); then `validate` turns them into typed values and checks what serde can't
//! (ranges, log bounds, steps, conditions, grids), a file per section: `[study]`
//! here, `sampler.rs`, `pruner.rs` (with `[early_stopping]`), `objective.rs` (with
//! `command.rs`), `space.rs`. Every error is a [`SpecError`] naming the file, line
//! and column, the field, and what is valid (`Ctx`, here). This is the only module
//! of hpo-core that uses serde. docs/study-file.md documents every field.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde_spanned::Spanned;

pub mod command;
mod devices;
mod objective;
mod pruner;
mod raw;
mod sampler;
mod shape;
mod space;

use crate::functions::BenchmarkFunction;
use crate::pruner::Pruner;
use crate::sampler::gp::GpConfig;
use crate::sampler::nsga2::Nsga2Config;
use crate::sampler::tpe::TpeConfig;
use crate::space::{Params, SearchSpace};
use crate::study::Direction;

use objective::*;
use pruner::*;
use raw::*;
use sampler::*;
use space::*;

pub use devices::{AUTO_TRIALS_PER_DEVICE, Devices, PerDevice};

/// Grids larger than this are refused: they would not finish and would fill the store.
pub const MAX_GRID_POINTS: usize = 1_000_000;

/// A study file error: where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The study file's path, as given to [`StudySpec::parse`].
    pub path: String,
    /// The line of the offending text, counting from 1.
    pub line: usize,
    /// The column of the offending text, in characters, counting from 1.
    pub column: usize,
    /// The field, as `[section].key` (`[space].lr`), or the section alone.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}: {}", self.path, self.line, self.column, self.field, self.message)
    }
}

impl std::error::Error for SpecError {}

/// How trials are proposed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerSpec {
    /// Every combination once, in the order documented in `sampler::grid`.
    Grid,
    /// Independent draws: uniform, log-uniform for `log` params.
    Random,
    /// The Tree-structured Parzen Estimator (see `sampler::tpe`).
    Tpe(TpeConfig),
    /// Gaussian-process Bayesian optimization (see `sampler::gp`).
    Gp(GpConfig),
    /// A GP, TPE or random search for each proposal, chosen from the space and the
    /// history (see `sampler::auto`).
    Auto,
    /// NSGA-II, for several objectives (see `sampler::nsga2`).
    Nsga2(Nsga2Config),
}

impl SamplerSpec {
    /// The name a study file uses.
    pub fn name(self) -> &'static str {
        match self {
            SamplerSpec::Grid => "grid",
            SamplerSpec::Random => "random",
            SamplerSpec::Tpe(_) => "tpe",
            SamplerSpec::Gp(_) => "gp",
            SamplerSpec::Auto => "auto",
            SamplerSpec::Nsga2(_) => "nsga2",
        }
    }

    /// Whether the sampler searches a study of several objectives: NSGA-II, TPE
    /// (by Pareto fronts), and random and grid search, which read no values.
    pub fn searches_several_objectives(self) -> bool {
        matches!(
            self,
            SamplerSpec::Grid | SamplerSpec::Random | SamplerSpec::Nsga2(_) | SamplerSpec::Tpe(_)
        )
    }
}

/// Stop a trial when `monitor` has not improved by `min_delta` for `patience` steps.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyStoppingSpec {
    /// The metric watched; the study metric unless the file names another.
    pub monitor: String,
    /// Whether `monitor` improves by going down or up.
    pub direction: Direction,
    /// Steps in a row without improvement before the trial stops; at least 1.
    pub patience: u32,
    /// The least change that counts as an improvement; zero or more.
    pub min_delta: f64,
}

/// A bound a trial's metric must keep (`[study] constraints`, `"metric <= 20000"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    /// The metric, read as an objective is (at the best step, or measured at the
    /// end).
    pub metric: String,
    /// Whether the metric must stay at most (`<=`) or at least (`>=`) the bound.
    pub at_most: bool,
    /// The bound.
    pub bound: f64,
}

impl Constraint {
    /// How far `value` breaks the constraint: at most zero when it keeps it
    /// (Optuna's convention for `constraints`).
    pub fn violation(&self, value: f64) -> f64 {
        if self.at_most { value - self.bound } else { self.bound - value }
    }

    /// Parses `metric <= bound` or `metric >= bound`.
    fn parse(text: &str) -> Option<Constraint> {
        let (metric, at_most, bound) = match (text.split_once("<="), text.split_once(">=")) {
            (Some((m, b)), None) => (m, true, b),
            (None, Some((m, b))) => (m, false, b),
            _ => return None,
        };
        let metric = metric.trim();
        let bound: f64 = bound.trim().parse().ok().filter(|b: &f64| b.is_finite())?;
        let named = !metric.is_empty()
            && metric
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'));
        named.then(|| Constraint { metric: metric.to_owned(), at_most, bound })
    }
}

/// A compressed variant of a trained model (`[compress] variants`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Compression {
    /// Linear weights quantized to int8, per output channel, symmetric; inputs
    /// quantized per example as they come; int8 products.
    Int8,
    /// The smallest weights by magnitude set to zero (`sparsity`), stored sparse.
    Pruned,
    /// Each linear layer factorized into two of lower rank (`rank` or
    /// `rank_energy`).
    LowRank,
}

impl Compression {
    /// Every variant, in the order results list them.
    pub const ALL: [Compression; 3] =
        [Compression::Int8, Compression::Pruned, Compression::LowRank];

    /// The name a study file writes, and the prefix of the variant's metrics
    /// (`int8_val_accuracy`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::Int8 => "int8",
            Compression::Pruned => "pruned",
            Compression::LowRank => "low_rank",
        }
    }
}

/// `[nightly]`: how `hpo nightly` carries the study from one night to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NightlySpec {
    /// K: the previous night's pick and its best configurations, K in all, are the
    /// night's first trials; the night's best K are confirmed. 3 unless set.
    pub top: usize,
    /// Confirm runs (new seeds) of each of the night's top K. 3 unless set.
    pub seeds: usize,
}

impl Default for NightlySpec {
    fn default() -> NightlySpec {
        NightlySpec { top: 3, seeds: 3 }
    }
}

/// What a trial runs.
#[derive(Debug, Clone, PartialEq)]
pub enum ObjectiveSpec {
    /// A benchmark function with a known optimum (reports the metric `value`).
    Function {
        /// The function.
        function: BenchmarkFunction,
        /// Steps of a synthetic learning curve reported before the value
        /// (`max_epochs`; 1 unless set), for exercising pruners and curves cheaply.
        steps: u64,
    },
    /// `kind = "candle"`: a model trained by hpo-train, which checks `model`,
    /// `dataset`, the device names and the parameter names.
    Training(TrainingSpec),
    /// Driven from outside: `hpo ask` hands out trials and `hpo tell` finishes them.
    External,
    /// A program run once per trial, its metrics read from its output.
    Command(command::CommandSpec),
}

/// `[objective] dataset`: a name, or a table naming a user's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetSpec {
    /// A dataset hpo knows (`digits`, `fashion-mnist`, ...); hpo-train checks the name.
    Named(String),
    /// `{ csv = "path", target = "column" }`: a CSV with a header; the path is as
    /// written (relative paths are relative to the study file).
    Csv {
        /// The file, as written.
        path: String,
        /// The label column.
        target: String,
    },
    /// `{ text = "path" }`: a text file for a character-level language model.
    Text {
        /// The file, as written.
        path: String,
    },
}

/// `[objective] kind = "candle"`: what hpo-train trains.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingSpec {
    /// The model's name (`mlp`, ...).
    pub model: String,
    /// Where the data comes from.
    pub dataset: DatasetSpec,
    /// The most epochs a trial trains, 1 to 100000.
    pub max_epochs: u32,
    /// Where trials train (`device`, `devices`, `trials_per_device`); the only
    /// settings that may change when a study is resumed.
    pub devices: Devices,
    /// Hyperparameters fixed for every trial (`[objective.fixed]`).
    pub fixed: Params,
    /// `[compress] variants`: the compressed variants made of each trial's
    /// best-epoch model and measured with it (empty without the section).
    pub compress: Vec<Compression>,
    /// `[compress] teacher`: the study whose best kept model teaches each trial
    /// (distillation), when set.
    pub teacher: Option<String>,
    /// `keep_models`: the best trials whose best-epoch weights stay in their trial
    /// folders (for `hpo export-model`); the others' go when a run ends. 3 unless
    /// set; 0 keeps none.
    pub keep_models: usize,
}

impl ObjectiveSpec {
    /// Where the objective's trials run, for the objectives that say.
    pub fn devices(&self) -> Option<&Devices> {
        match self {
            ObjectiveSpec::Training(training) => Some(&training.devices),
            ObjectiveSpec::Command(command) => Some(&command.devices),
            ObjectiveSpec::Function { .. } | ObjectiveSpec::External => None,
        }
    }
}

impl StudySpec {
    /// The workers a run starts, each with the device it trains on: one per
    /// device slot when the objective shares devices ([`Devices::worker_slots`]),
    /// else `workers` workers with no device of their own.
    pub fn worker_slots(&self) -> Vec<Option<String>> {
        match self.objective.devices().and_then(Devices::worker_slots) {
            Some(slots) => slots.into_iter().map(Some).collect(),
            None => vec![None; self.workers],
        }
    }
}

/// A validated study file.
#[derive(Debug, Clone, PartialEq)]
pub struct StudySpec {
    /// The study's name in the store: 1 to 512 characters, without `/` or `\`.
    pub name: String,
    /// The metric that judges each trial's steps (its value, and its best step):
    /// the study's objective; in a study of several, the first, or the
    /// early-stopping monitor when there is one.
    pub metric: String,
    /// Whether `metric` is minimized or maximized.
    pub direction: Direction,
    /// Every objective's metric, in order (`[metric]` in a study of one objective;
    /// `[study] metrics` in a study of several).
    pub metrics: Vec<String>,
    /// Every objective's direction, in the order of `metrics`.
    pub directions: Vec<Direction>,
    /// `[study] constraints`: bounds on metrics a trial must keep to be on the
    /// Pareto front (a study of several objectives only).
    pub constraints: Vec<Constraint>,
    /// The study seed (0 unless the file sets one); every trial's proposals and its
    /// own randomness derive from it and the trial number.
    pub seed: u64,
    /// The budget: trials that count toward it (see `FrozenTrial::counts_toward_budget`).
    pub trials: Option<usize>,
    /// The time after which no new trial starts, if the file sets one.
    pub timeout: Option<Duration>,
    /// Trials run at once by one `hpo run` (threads of one process); 1 unless set.
    pub workers: usize,
    /// How many times a trial whose run was interrupted (its worker died or was
    /// stopped) is run again with the same parameters; 0 unless set.
    pub max_retries: usize,
    /// How trials are proposed (random unless the file says otherwise).
    pub sampler: SamplerSpec,
    /// How unpromising trials are stopped.
    pub pruner: Pruner,
    /// Early stopping of each trial, when the file has `[early_stopping]`.
    pub early_stopping: Option<EarlyStoppingSpec>,
    /// What each trial runs.
    pub objective: ObjectiveSpec,
    /// The search space; never empty.
    pub space: SearchSpace,
    /// `hpo nightly`'s settings (defaults when the file has no `[nightly]`).
    pub nightly: NightlySpec,
    /// The file as written; stored with the study so a resume can diff against it.
    pub text: String,
    path: String,
    locations: BTreeMap<String, (usize, usize)>,
}

impl StudySpec {
    /// Parses and validates a study file. `path` is only used in error messages.
    pub fn parse(text: &str, path: &str) -> Result<StudySpec, SpecError> {
        let ctx = Ctx { text, path };
        let document = toml::de::DeTable::parse(text).map_err(|err| ctx.toml_error(&err))?;
        ctx.check_shapes(document.get_ref())?;
        let raw: RawFile = toml::from_str(text).map_err(|err| ctx.toml_error(&err))?;
        validate(&ctx, raw)
    }

    /// An error about a field, at the place the file wrote it. Keys are `study.name`,
    /// `objective.model`, `space.lr`, ...; other crates use this to report what only
    /// they can check (a dataset or model name, a parameter the model lacks).
    pub fn error_at(&self, key: &str, message: impl Into<String>) -> SpecError {
        let (line, column) = self.locations.get(key).copied().unwrap_or((1, 1));
        let (section, field) = key.split_once('.').unwrap_or((key, ""));
        SpecError {
            path: self.path.clone(),
            line,
            column,
            field: if field.is_empty() {
                format!("[{section}]")
            } else {
                format!("[{section}].{field}")
            },
            message: message.into(),
        }
    }

    /// The budget the file sets (`trials`); `None` when it sets none, in which case a
    /// grid runs all its points and a random search runs until its timeout.
    pub fn budget(&self) -> Option<usize> {
        self.trials
    }
}

/// A table setting: its key, where the file wrote it (if it did), and the kinds
/// that take it.
type Setting<'a, K> = (&'a str, Option<Range<usize>>, &'a [K]);

struct Ctx<'a> {
    text: &'a str,
    path: &'a str,
}

impl Ctx<'_> {
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |it| it.chars().count()) + 1;
        (line, column)
    }

    fn error(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> SpecError {
        let (line, column) = self.line_col(span.start);
        SpecError {
            path: self.path.to_owned(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        }
    }

    /// An integer setting of `[section]`: `default` when absent, an error naming the
    /// key and its range when below `min` or above [`most`]`(key)`.
    fn at_least(
        &self,
        section: &str,
        value: &Option<Spanned<i64>>,
        key: &str,
        default: i64,
        min: i64,
    ) -> Result<i64, SpecError> {
        let max = most(key);
        match value {
            None => Ok(default),
            Some(it) if !(min..=max).contains(it.get_ref()) => Err(self.error(
                it.span(),
                format!("[{section}].{key}"),
                format!("`{key}` must be between {min} and {max}, got {}", it.get_ref()),
            )),
            Some(it) => Ok(*it.get_ref()),
        }
    }

    /// A float setting of `[section]` that must be 0 or more: 0 when absent.
    fn non_negative(
        &self,
        section: &str,
        value: &Option<Spanned<f64>>,
        key: &str,
    ) -> Result<f64, SpecError> {
        match value {
            Some(it) if it.get_ref().is_nan() || *it.get_ref() < 0.0 => Err(self.error(
                it.span(),
                format!("[{section}].{key}"),
                format!("`{key}` must be zero or positive, got {}", it.get_ref()),
            )),
            Some(it) => Ok(*it.get_ref()),
            None => Ok(0.0),
        }
    }

    /// Refuses a setting written for a kind that does not take it: `settings` lists
    /// each key, where it was written (if it was) and the kinds that take it.
    fn settings_of_kind<K: Copy + PartialEq>(
        &self,
        section: &str,
        kind: K,
        name: fn(K) -> &'static str,
        settings: &[Setting<'_, K>],
    ) -> Result<(), SpecError> {
        for (key, span, kinds) in settings {
            if let Some(span) = span
                && !kinds.contains(&kind)
            {
                let names: Vec<&str> = kinds.iter().map(|k| name(*k)).collect();
                return Err(self.error(
                    span.clone(),
                    format!("[{section}].{key}"),
                    format!(
                        "`{key}` is a setting of the {} {section}{}; remove it or set `kind = \"{}\"`",
                        names.join(" and "),
                        if names.len() > 1 { "s" } else { "" },
                        names[0]
                    ),
                ));
            }
        }
        Ok(())
    }

    /// serde's and toml's errors carry a span and a message; we name the section
    /// from the nearest table header above the span.
    fn toml_error(&self, err: &toml::de::Error) -> SpecError {
        let span = err.span().unwrap_or(0..0);
        let start = span.start.min(self.text.len());
        let line_start = self.text[..start].rfind('\n').map_or(0, |idx| idx + 1);
        let line_end = self.text[start..].find('\n').map_or(self.text.len(), |idx| start + idx);
        let section = self.text[..line_end]
            .lines()
            .rev()
            .map(str::trim)
            .find(|line| line.starts_with('[') && line.contains(']'))
            .map(|line| line[..=line.find(']').unwrap_or(0)].to_owned());
        // The key the error's line assigns (`lr = { ... }` in [space] gives `[space].lr`).
        let line = self.text[line_start..line_end].trim_start();
        let key: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .collect();
        let assigns = !key.is_empty() && line[key.len()..].trim_start().starts_with('=');
        let field = match (section, assigns) {
            (Some(section), true) => format!("{section}.{key}"),
            (Some(section), false) => section,
            (None, true) => key,
            (None, false) => "study file".to_owned(),
        };
        let message = shape::plain(&err.message().trim().replace('\n', " "));
        let message = match message.strip_prefix("unknown field ") {
            Some(rest) if line.starts_with('[') => format!("unknown section {rest}"),
            _ => message,
        };
        let message = match message.strip_prefix("missing field ") {
            Some(missing) if field == "study file" => format!(
                "missing section `[{0}]`; add a `[{0}]` section (docs/study-file.md lists its settings)",
                missing.trim_matches('`')
            ),
            Some(missing) => format!(
                "missing field {missing}; add `{} = ...` to {field}",
                missing.trim_matches('`')
            ),
            None => message,
        };
        self.error(span, field, message)
    }
}

fn validate(ctx: &Ctx<'_>, raw: RawFile) -> Result<StudySpec, SpecError> {
    let mut locations = BTreeMap::new();
    let mut locate = |key: &str, span: Range<usize>| {
        locations.insert(key.to_owned(), ctx.line_col(span.start));
    };

    let study_span = raw.study.span();
    let study = raw.study.into_inner();
    let name = study.name.get_ref().trim().to_owned();
    if name.is_empty() || name.len() > 512 || name.contains(['/', '\\']) {
        return Err(ctx.error(
            study.name.span(),
            "[study].name",
            "the study name must be 1 to 512 characters without `/` or `\\`",
        ));
    }
    locate("study.name", study.name.span());
    let (metrics, directions) = validate_objectives(ctx, &study, study_span.clone())?;
    match (&study.metric, &study.metrics) {
        (Some(it), _) => locate("study.metric", it.span()),
        (None, Some(it)) => {
            locate("study.metric", it.span());
            locate("study.metrics", it.span());
        }
        (None, None) => {}
    }
    let (metric, direction) = (metrics[0].clone(), directions[0]);
    let several = metrics.len() > 1;
    let mut constraints = Vec::new();
    if let Some(raw) = &study.constraints {
        if !several {
            return Err(ctx.error(
                raw.span(),
                "[study].constraints",
                "constraints shape the Pareto front of a study of several objectives; with one objective, make the bound a part of the metric or remove `constraints`",
            ));
        }
        locate("study.constraints", raw.span());
        for it in raw.get_ref() {
            let parsed = Constraint::parse(it.get_ref()).ok_or_else(|| {
                ctx.error(
                    it.span(),
                    "[study].constraints",
                    format!(
                        "`{}` is not a constraint; write `\"METRIC <= NUMBER\"` or `\"METRIC >= NUMBER\"`, e.g. `\"latency_ms <= 0.5\"`",
                        it.get_ref()
                    ),
                )
            })?;
            constraints.push(parsed);
        }
    }

    let trials = match study.trials {
        Some(trials) if *trials.get_ref() < 1 => {
            return Err(ctx.error(
                trials.span(),
                "[study].trials",
                format!("the budget must be at least 1 trial, got {}", trials.get_ref()),
            ));
        }
        Some(trials) => Some(*trials.get_ref() as usize),
        None => None,
    };
    let timeout = match &study.timeout {
        Some(it) => Some(parse_duration(it.get_ref()).ok_or_else(|| {
            ctx.error(
                it.span(),
                "[study].timeout",
                format!(
                    "`{}` is not a duration longer than zero; write e.g. \"90s\", \"30m\", \"2h\" or \"1h30m\"",
                    it.get_ref()
                ),
            )
        })?),
        None => None,
    };

    let workers = ctx.at_least("study", &study.workers, "workers", 1, 1)? as usize;
    let max_retries = ctx.at_least("study", &study.max_retries, "max_retries", 0, 0)? as usize;

    let sampler = match raw.sampler {
        None => SamplerSpec::Random,
        Some(raw) => {
            let span = raw.kind.span();
            let sampler = sampler_spec(ctx, raw)?;
            if several && !sampler.searches_several_objectives() {
                return Err(ctx.error(
                    span,
                    "[sampler].kind",
                    format!(
                        "the {} sampler optimizes one metric, and this study has {}; use `kind = \"nsga2\"`, \"tpe\", \"random\" or \"grid\"",
                        sampler.name(),
                        metrics.len()
                    ),
                ));
            }
            sampler
        }
    };
    let space_span = raw.space.span();
    let space = validate_space(ctx, raw.space.into_inner(), &mut locate)?;
    if space.params.is_empty() {
        return Err(ctx.error(
            space_span,
            "[space]",
            "the search space is empty; declare at least one parameter",
        ));
    }

    if sampler == SamplerSpec::Grid {
        for param in &space.params {
            // Whether it has a finite list, asked without listing it (it may be huge).
            if param.grid.is_none() && param.distribution.n_values().is_none() {
                let (line, column) = locations[&format!("space.{}", param.name)];
                return Err(SpecError {
                    path: ctx.path.to_owned(),
                    line,
                    column,
                    field: format!("[space].{}", param.name),
                    message: format!(
                        "the grid sampler needs a finite list of values, but `{}` is a continuous float range; add `step = ...` or `grid = [...]`",
                        param.name
                    ),
                });
            }
        }
        let n_points = crate::sampler::grid::count_points(&space);
        if n_points > MAX_GRID_POINTS {
            return Err(ctx.error(
                space_span,
                "[space]",
                format!("the grid has {n_points} points, more than the limit of {MAX_GRID_POINTS}; use coarser steps or the random sampler"),
            ));
        }
    } else if trials.is_none() && timeout.is_none() {
        return Err(ctx.error(
            study_span,
            "[study]",
            "set a budget: `trials = N` or `timeout = \"30m\"` (only the grid sampler has a natural end)",
        ));
    }

    let objective_span = raw.objective.span();
    let objective =
        validate_objective(ctx, raw.objective.into_inner(), &space, &metric, &mut locate)?;
    let has_slots = objective.devices().is_some_and(Devices::is_shared);
    if let Some(it) = &study.workers
        && has_slots
    {
        return Err(ctx.error(
            it.span(),
            "[study].workers",
            "with `devices` or `trials_per_device` the workers are one per device slot; remove `workers`",
        ));
    }
    if several && objective == ObjectiveSpec::External {
        return Err(ctx.error(
            objective_span.clone(),
            "[objective].kind",
            "`hpo tell` takes one value per trial, so an external study has one objective; write `metric` and `direction`",
        ));
    }
    let pruner = match raw.pruner {
        None => Pruner::NONE,
        Some(raw) if several => {
            return Err(ctx.error(
                raw.kind.span(),
                "[pruner]",
                "a pruner compares trials on one metric's curve, and this study has several objectives, so it cannot prune; remove [pruner] (use [early_stopping] to stop each trial on its own curve)",
            ));
        }
        Some(raw) => pruner_spec(ctx, raw, &objective)?,
    };
    if let ObjectiveSpec::Function { .. } = objective
        && (metric != "value" || several)
    {
        let (line, column) = locations["study.metric"];
        return Err(SpecError {
            path: ctx.path.to_owned(),
            line,
            column,
            field: "[study].metric".to_owned(),
            message: format!(
                "a function objective reports one metric, `value`; set `metric = \"value\"` (got `{metric}`)"
            ),
        });
    }
    let _ = objective_span;

    let early_stopping = match raw.early_stopping {
        None => None,
        Some(it) => {
            if let Some(monitor) = &it.get_ref().monitor {
                locate("early_stopping.monitor", monitor.span());
            }
            Some(validate_early_stopping(ctx, it, &metric, direction)?)
        }
    };
    // With several objectives the early-stopping monitor, when there is one,
    // judges the epochs: the objectives are read of its best epoch's model.
    let (metric, direction) = match &early_stopping {
        Some(it) if several => (it.monitor.clone(), it.direction),
        _ => (metric, direction),
    };
    let nightly = match raw.nightly {
        None => NightlySpec::default(),
        Some(it) => {
            let default = NightlySpec::default();
            NightlySpec {
                top: ctx.at_least("nightly", &it.top, "top", default.top as i64, 1)? as usize,
                seeds: ctx.at_least("nightly", &it.seeds, "seeds", default.seeds as i64, 1)?
                    as usize,
            }
        }
    };

    let mut objective = objective;
    match (raw.compress, &mut objective) {
        (None, _) => {}
        (Some(raw), training) => {
            let ObjectiveSpec::Training(training) = training else {
                return Err(ctx.error(
                    raw.span(),
                    "[compress]",
                    "compression applies to trained models; it needs `[objective] kind = \"candle\"`",
                ));
            };
            let mut variants = Vec::new();
            let span = raw.span();
            let raw = raw.into_inner();
            if let Some(teacher) = &raw.teacher {
                let name = teacher.get_ref().trim();
                if name.is_empty() {
                    return Err(ctx.error(
                        teacher.span(),
                        "[compress].teacher",
                        "name the study whose best model teaches, e.g. `teacher = \"digits-mlp\"`",
                    ));
                }
                locate("compress.teacher", teacher.span());
                training.teacher = Some(name.to_owned());
            }
            let listed = match raw.variants {
                Some(it) => {
                    locate("compress.variants", it.span());
                    it.into_inner()
                }
                None if training.teacher.is_some() => Vec::new(),
                None => {
                    return Err(ctx.error(
                        span,
                        "[compress]",
                        "say what to make: `variants = [\"int8\", \"pruned\", \"low_rank\"]` (any of them), and/or `teacher = \"study\"` to distil",
                    ));
                }
            };
            for it in listed {
                let Some(found) =
                    Compression::ALL.into_iter().find(|c| c.name() == it.get_ref().as_str())
                else {
                    let names: Vec<&str> = Compression::ALL.iter().map(|c| c.name()).collect();
                    return Err(ctx.error(
                        it.span(),
                        "[compress].variants",
                        format!("unknown variant `{}`; valid: {}", it.get_ref(), names.join(", ")),
                    ));
                };
                if !variants.contains(&found) {
                    variants.push(found);
                }
            }
            variants.sort();
            training.compress = variants;
        }
    }

    Ok(StudySpec {
        name,
        metric,
        direction,
        metrics,
        directions,
        constraints,
        seed: study.seed.unwrap_or(0),
        trials,
        timeout,
        workers,
        max_retries,
        sampler,
        pruner,
        early_stopping,
        nightly,
        objective,
        space,
        text: ctx.text.to_owned(),
        path: ctx.path.to_owned(),
        locations,
    })
}

/// `[study]`'s objectives: `metric` and `direction` for one, or `metrics` and
/// `directions` (lists of the same length, names unique) for several.
fn validate_objectives(
    ctx: &Ctx<'_>,
    study: &RawStudy,
    span: Range<usize>,
) -> Result<(Vec<String>, Vec<Direction>), SpecError> {
    let named = |it: &Spanned<String>, field: &str| {
        let name = it.get_ref().trim().to_owned();
        if name.is_empty() {
            return Err(ctx.error(
                it.span(),
                field,
                "name the metric to optimize, e.g. `val_loss`",
            ));
        }
        Ok(name)
    };
    match (&study.metric, &study.direction, &study.metrics, &study.directions) {
        (Some(metric), Some(direction), None, None) => {
            Ok((vec![named(metric, "[study].metric")?], vec![Direction::from(*direction)]))
        }
        (None, None, Some(metrics), Some(directions)) => {
            let mut names = Vec::new();
            for it in metrics.get_ref() {
                let name = named(it, "[study].metrics")?;
                if names.contains(&name) {
                    return Err(ctx.error(
                        it.span(),
                        "[study].metrics",
                        format!("`{name}` is listed twice; each objective is a different metric"),
                    ));
                }
                names.push(name);
            }
            if names.is_empty() {
                return Err(ctx.error(
                    metrics.span(),
                    "[study].metrics",
                    "list at least one metric, e.g. `metrics = [\"val_accuracy\", \"params\"]`",
                ));
            }
            let directions: Vec<Direction> =
                directions.get_ref().iter().copied().map(Direction::from).collect();
            if directions.len() != names.len() {
                return Err(ctx.error(
                    study.directions.as_ref().map_or(span, Spanned::span),
                    "[study].directions",
                    format!(
                        "`metrics` lists {} metric(s) and `directions` {}; give one direction per metric, in the same order",
                        names.len(),
                        directions.len()
                    ),
                ));
            }
            Ok((names, directions))
        }
        (Some(_), _, Some(_), _) | (_, Some(_), _, Some(_)) => Err(ctx.error(
            span,
            "[study]",
            "write either `metric` and `direction` (one objective) or `metrics` and `directions` (several), not both",
        )),
        (None, _, None, _) => Err(ctx.error(
            span,
            "[study]",
            "missing field `metric`; add `metric = ...` to [study] (or `metrics = [...]` for several objectives)",
        )),
        (Some(_), None, None, _) => Err(ctx.error(
            span,
            "[study]",
            "missing field `direction`; add `direction = \"minimize\"` or `\"maximize\"` to [study]",
        )),
        (None, _, Some(_), None) => Err(ctx.error(
            span,
            "[study]",
            "missing field `directions`; add `directions = [...]` to [study], one per metric",
        )),
    }
}

/// Parses a study file duration: `90s`, `30m`, `2h`, `1d`, combinations such as
/// `1h30m`, or bare seconds (`45`). `None` when the text is none of these, or is
/// zero.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    // One rule for every spelling: a duration is longer than zero ("0" and "0s"
    // alike would stop a run before it starts).
    if let Ok(seconds) = text.parse::<u64>() {
        return (seconds > 0).then(|| Duration::from_secs(seconds));
    }
    let mut total = 0u64;
    let mut number = String::new();
    let mut seen_unit = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        let n: u64 = number.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        number.clear();
        seen_unit = true;
    }
    if !number.is_empty() || !seen_unit || total == 0 {
        return None;
    }
    Some(Duration::from_secs(total))
}

#[cfg(test)]
mod tests;
