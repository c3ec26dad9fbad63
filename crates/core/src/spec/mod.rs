//! Study files: TOML text in, a validated [`StudySpec`] out.
//!
//! Parsing has two passes. serde reads the text into `Raw*` structs that mirror the
//! file (unknown fields rejected, every value wrapped in [`Spanned`] so we know
//! where it was written); then `validate` turns them into typed values and checks
//! what serde can't (ranges, log bounds, steps, conditions, grids). Every error is a
//! [`SpecError`] naming the file, line and column, the field, and what is valid.
//! This is the only module of hpo-core that uses serde. docs/study-file.md documents
//! every field.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_spanned::Spanned;

pub mod command;
mod shape;

use crate::distribution::{Distribution, ParamValue};
use crate::functions::BenchmarkFunction;
use crate::pruner::{Pruner, PrunerKind};
use crate::sampler::gp::GpConfig;
use crate::sampler::tpe::{GoodWeights, TpeConfig};
use crate::space::{Condition, ParamDef, Params, SearchSpace};
use crate::study::Direction;

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
}

impl SamplerSpec {
    /// The name a study file uses.
    pub fn name(self) -> &'static str {
        match self {
            SamplerSpec::Grid => "grid",
            SamplerSpec::Random => "random",
            SamplerSpec::Tpe(_) => "tpe",
            SamplerSpec::Gp(_) => "gp",
        }
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
    /// A candle training; hpo-train checks `model`, `dataset` and the parameter names.
    Candle(CandleSpec),
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

/// `[objective] kind = "candle"`.
#[derive(Debug, Clone, PartialEq)]
pub struct CandleSpec {
    /// The model's name (`mlp`, ...).
    pub model: String,
    /// Where the data comes from.
    pub dataset: DatasetSpec,
    /// The most epochs a trial trains, 1 to 100000.
    pub max_epochs: u32,
    /// Where to train: `auto` (the default), `cpu`, `cuda` or `cuda:N`. The only
    /// setting that may change when a study is resumed.
    pub device: String,
    /// Several devices to share the trials among (`devices = ["cuda:0", "cuda:1"]`);
    /// empty unless set (then `device` is the one). May change on resume.
    pub devices: Vec<String>,
    /// Trials run at once on each device (`trials_per_device`), 1 unless set. May
    /// change on resume. With `"auto"`, [`AUTO_TRIALS_PER_DEVICE`] to start with,
    /// fewer once the objective has measured how many fit.
    pub trials_per_device: usize,
    /// `trials_per_device = "auto"`: the objective decides how many fit
    /// ([`crate::objective::Objective::capacity`]).
    pub auto_trials_per_device: bool,
    /// Hyperparameters fixed for every trial (`[objective.fixed]`).
    pub fixed: Params,
}

impl StudySpec {
    /// The workers a run starts, each with the device it trains on: one per
    /// (device, slot) when the objective sets `devices` or `trials_per_device`
    /// (devices interleaved, so the first workers spread across them), else
    /// `workers` workers with no device of their own.
    pub fn worker_slots(&self) -> Vec<Option<String>> {
        match &self.objective {
            ObjectiveSpec::Candle(c) if !c.devices.is_empty() || c.trials_per_device > 1 => {
                let devices =
                    if c.devices.is_empty() { vec![c.device.clone()] } else { c.devices.clone() };
                (0..c.trials_per_device)
                    .flat_map(|_| devices.iter().map(|d| Some(d.clone())))
                    .collect()
            }
            ObjectiveSpec::Command(c) if !c.devices.is_empty() => (0..c.trials_per_device)
                .flat_map(|_| c.devices.iter().map(|d| Some(d.clone())))
                .collect(),
            _ => vec![None; self.workers],
        }
    }
}

/// The trials per device that `trials_per_device = "auto"` starts with (and the
/// most it keeps): the objective lowers it from measured memory.
pub const AUTO_TRIALS_PER_DEVICE: usize = 8;

/// A validated study file.
#[derive(Debug, Clone, PartialEq)]
pub struct StudySpec {
    /// The study's name in the store: 1 to 512 characters, without `/` or `\`.
    pub name: String,
    /// The metric the study optimizes, as the objective reports it.
    pub metric: String,
    /// Whether `metric` is minimized or maximized.
    pub direction: Direction,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    study: Spanned<RawStudy>,
    sampler: Option<RawSampler>,
    pruner: Option<RawPruner>,
    early_stopping: Option<Spanned<RawEarlyStopping>>,
    objective: Spanned<RawObjective>,
    space: Spanned<RawSpace>,
    nightly: Option<RawNightly>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNightly {
    top: Option<Spanned<i64>>,
    seeds: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStudy {
    name: Spanned<String>,
    metric: Spanned<String>,
    direction: RawDirection,
    seed: Option<u64>,
    trials: Option<Spanned<i64>>,
    timeout: Option<Spanned<String>>,
    workers: Option<Spanned<i64>>,
    max_retries: Option<Spanned<i64>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawDirection {
    Minimize,
    Maximize,
}

impl From<RawDirection> for Direction {
    fn from(it: RawDirection) -> Direction {
        match it {
            RawDirection::Minimize => Direction::Minimize,
            RawDirection::Maximize => Direction::Maximize,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSampler {
    kind: Spanned<RawSamplerKind>,
    startup_trials: Option<Spanned<i64>>,
    candidates: Option<Spanned<i64>>,
    multivariate: Option<bool>,
    constant_liar: Option<bool>,
    prior_weight: Option<Spanned<f64>>,
    gamma: Option<Spanned<f64>>,
    good_weights: Option<Spanned<RawGoodWeights>>,
    restarts: Option<Spanned<i64>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum RawGoodWeights {
    Improvement,
    Uniform,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum RawSamplerKind {
    Grid,
    Random,
    Tpe,
    Gp,
}

impl RawSamplerKind {
    fn name(self) -> &'static str {
        match self {
            RawSamplerKind::Grid => "grid",
            RawSamplerKind::Random => "random",
            RawSamplerKind::Tpe => "tpe",
            RawSamplerKind::Gp => "gp",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPruner {
    kind: Spanned<RawPrunerKind>,
    percentile: Option<Spanned<f64>>,
    startup_trials: Option<Spanned<i64>>,
    warmup_steps: Option<Spanned<i64>>,
    interval: Option<Spanned<i64>>,
    min_resource: Option<Spanned<i64>>,
    max_resource: Option<Spanned<i64>>,
    reduction_factor: Option<Spanned<i64>>,
    min_early_stopping_rate: Option<Spanned<i64>>,
    lower: Option<Spanned<f64>>,
    upper: Option<Spanned<f64>>,
    patience: Option<Spanned<i64>>,
    min_delta: Option<Spanned<f64>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum RawPrunerKind {
    None,
    Median,
    Percentile,
    Asha,
    Hyperband,
    Threshold,
}

impl RawPrunerKind {
    fn name(self) -> &'static str {
        match self {
            RawPrunerKind::None => "none",
            RawPrunerKind::Median => "median",
            RawPrunerKind::Percentile => "percentile",
            RawPrunerKind::Asha => "asha",
            RawPrunerKind::Hyperband => "hyperband",
            RawPrunerKind::Threshold => "threshold",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEarlyStopping {
    monitor: Option<Spanned<String>>,
    direction: Option<RawDirection>,
    patience: Spanned<i64>,
    min_delta: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObjective {
    kind: Spanned<RawObjectiveKind>,
    function: Option<Spanned<String>>,
    model: Option<Spanned<String>>,
    dataset: Option<Spanned<toml::Value>>,
    max_epochs: Option<Spanned<i64>>,
    device: Option<Spanned<String>>,
    devices: Option<Spanned<Vec<Spanned<String>>>>,
    trials_per_device: Option<Spanned<toml::Value>>,
    fixed: Option<Spanned<toml::Table>>,
    command: Option<Spanned<Vec<Spanned<String>>>>,
    cwd: Option<Spanned<String>>,
    env: Option<Spanned<toml::Table>>,
    timeout: Option<Spanned<String>>,
    metrics: Option<Spanned<toml::Value>>,
    grace: Option<Spanned<String>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum RawObjectiveKind {
    Function,
    Candle,
    External,
    Command,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    float: Option<Spanned<Vec<f64>>>,
    int: Option<Spanned<Vec<i64>>>,
    choice: Option<Spanned<Vec<toml::Value>>>,
    log: Option<Spanned<bool>>,
    step: Option<Spanned<toml::Value>>,
    grid: Option<Spanned<Vec<toml::Value>>>,
    when: Option<Spanned<toml::Table>>,
}

/// `[space]` in file order (a map would sort it, and conditions look back in order).
struct RawSpace(Vec<(Spanned<String>, Spanned<RawParam>)>);

impl<'de> Deserialize<'de> for RawSpace {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpaceVisitor;
        impl<'de> Visitor<'de> for SpaceVisitor {
            type Value = RawSpace;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a table of parameters, like `lr = { float = [1e-4, 1e-1], log = true }`",
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawSpace, A::Error> {
                let mut params = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value::<Spanned<RawParam>>()?;
                    params.push((key, value));
                }
                Ok(RawSpace(params))
            }
        }
        deserializer.deserialize_map(SpaceVisitor)
    }
}

/// The largest value a count setting takes: what a run can use (threads, memory,
/// time), so a typo like `workers = 4294967296` is refused when the file is read
/// instead of exhausting the machine, and every count fits the type it is kept in.
fn most(key: &str) -> i64 {
    match key {
        "workers" | "trials_per_device" => 1_024,
        "restarts" => 1_000,
        "max_retries" => 1_000,
        "candidates" => 100_000,
        "patience" => 1_000_000,
        "min_early_stopping_rate" => 30,
        "reduction_factor" => 1_000,
        "top" | "seeds" => 100,
        _ => i64::from(u32::MAX),
    }
}

/// The `[sampler]` table: its kind, and the settings that kind takes.
fn sampler_spec(ctx: &Ctx<'_>, raw: RawSampler) -> Result<SamplerSpec, SpecError> {
    let kind = *raw.kind.get_ref();
    let count = |value: Option<Spanned<i64>>, key: &str, default: usize, min: i64| {
        ctx.at_least("sampler", &value, key, default as i64, min).map(|it| it as usize)
    };
    // Each setting and the samplers that take it.
    use RawSamplerKind::{Gp, Tpe};
    let settings = [
        ("startup_trials", raw.startup_trials.as_ref().map(Spanned::span), &[Tpe, Gp][..]),
        ("candidates", raw.candidates.as_ref().map(Spanned::span), &[Tpe, Gp][..]),
        ("restarts", raw.restarts.as_ref().map(Spanned::span), &[Gp][..]),
        ("prior_weight", raw.prior_weight.as_ref().map(Spanned::span), &[Tpe][..]),
        ("gamma", raw.gamma.as_ref().map(Spanned::span), &[Tpe][..]),
        ("good_weights", raw.good_weights.as_ref().map(Spanned::span), &[Tpe][..]),
        ("multivariate", raw.multivariate.map(|_| raw.kind.span()), &[Tpe][..]),
        ("constant_liar", raw.constant_liar.map(|_| raw.kind.span()), &[Tpe][..]),
    ];
    ctx.settings_of_kind("sampler", kind, RawSamplerKind::name, &settings)?;
    Ok(match kind {
        RawSamplerKind::Grid => SamplerSpec::Grid,
        RawSamplerKind::Random => SamplerSpec::Random,
        RawSamplerKind::Tpe => {
            let defaults = TpeConfig::default();
            let prior_weight = match raw.prior_weight {
                Some(it) if !(*it.get_ref() > 0.0 && it.get_ref().is_finite()) => {
                    return Err(ctx.error(
                        it.span(),
                        "[sampler].prior_weight",
                        format!("`prior_weight` must be a positive number, got {}", it.get_ref()),
                    ));
                }
                Some(it) => *it.get_ref(),
                None => defaults.prior_weight,
            };
            let gamma = match raw.gamma {
                Some(it) if !(*it.get_ref() > 0.0 && *it.get_ref() <= 1.0) => {
                    return Err(ctx.error(
                        it.span(),
                        "[sampler].gamma",
                        format!(
                            "`gamma` is the fraction of trials that are good and must be in (0, 1], got {}",
                            it.get_ref()
                        ),
                    ));
                }
                Some(it) => *it.get_ref(),
                None => defaults.gamma,
            };
            let good_weights = match raw.good_weights.map(|it| *it.get_ref()) {
                Some(RawGoodWeights::Improvement) => GoodWeights::Improvement,
                Some(RawGoodWeights::Uniform) => GoodWeights::Uniform,
                None => defaults.good_weights,
            };
            SamplerSpec::Tpe(TpeConfig {
                startup_trials: count(
                    raw.startup_trials,
                    "startup_trials",
                    defaults.startup_trials,
                    0,
                )?,
                candidates: count(raw.candidates, "candidates", defaults.candidates, 1)?,
                multivariate: raw.multivariate.unwrap_or(defaults.multivariate),
                constant_liar: raw.constant_liar.unwrap_or(defaults.constant_liar),
                prior_weight,
                gamma,
                good_weights,
            })
        }
        RawSamplerKind::Gp => {
            let defaults = GpConfig::default();
            SamplerSpec::Gp(GpConfig {
                startup_trials: count(
                    raw.startup_trials,
                    "startup_trials",
                    defaults.startup_trials,
                    0,
                )?,
                candidates: count(raw.candidates, "candidates", defaults.candidates, 1)?,
                restarts: count(raw.restarts, "restarts", defaults.restarts, 1)?,
            })
        }
    })
}

/// The `[pruner]` table: its kind, and the settings that kind takes.
fn pruner_spec(
    ctx: &Ctx<'_>,
    raw: RawPruner,
    objective: &ObjectiveSpec,
) -> Result<Pruner, SpecError> {
    use RawPrunerKind::{Asha, Hyperband, Median, Percentile, Threshold};
    let kind = *raw.kind.get_ref();
    let span = |it: &Option<Spanned<i64>>| it.as_ref().map(Spanned::span);
    let fspan = |it: &Option<Spanned<f64>>| it.as_ref().map(Spanned::span);
    let settings = [
        ("percentile", fspan(&raw.percentile), &[Percentile][..]),
        ("startup_trials", span(&raw.startup_trials), &[Median, Percentile][..]),
        ("warmup_steps", span(&raw.warmup_steps), &[Median, Percentile, Threshold][..]),
        ("interval", span(&raw.interval), &[Median, Percentile][..]),
        ("min_resource", span(&raw.min_resource), &[Asha, Hyperband][..]),
        ("max_resource", span(&raw.max_resource), &[Hyperband][..]),
        ("reduction_factor", span(&raw.reduction_factor), &[Asha, Hyperband][..]),
        ("min_early_stopping_rate", span(&raw.min_early_stopping_rate), &[Asha][..]),
        ("lower", fspan(&raw.lower), &[Threshold][..]),
        ("upper", fspan(&raw.upper), &[Threshold][..]),
    ];
    ctx.settings_of_kind("pruner", kind, RawPrunerKind::name, &settings)?;
    let int = |value: &Option<Spanned<i64>>, key: &str, default: i64, min: i64| {
        ctx.at_least("pruner", value, key, default, min)
    };
    let warmup_steps = int(&raw.warmup_steps, "warmup_steps", 0, 0)? as u64;
    let percentile_kind = |percentile: f64| -> Result<PrunerKind, SpecError> {
        Ok(PrunerKind::Percentile {
            percentile,
            startup_trials: int(&raw.startup_trials, "startup_trials", 5, 0)? as usize,
            warmup_steps,
            interval: int(&raw.interval, "interval", 1, 1)? as u64,
        })
    };
    let min_resource = int(&raw.min_resource, "min_resource", 1, 1)? as u64;
    let reduction_factor = int(&raw.reduction_factor, "reduction_factor", 3, 2)? as u64;
    let kind = match kind {
        RawPrunerKind::None => PrunerKind::None,
        Median => percentile_kind(50.0)?,
        Percentile => {
            let Some(it) = &raw.percentile else {
                return Err(ctx.error(
                    raw.kind.span(),
                    "[pruner].percentile",
                    "the percentile pruner needs `percentile = P` with 0 < P < 100 (50 is `median`)",
                ));
            };
            let p = *it.get_ref();
            if !(p > 0.0 && p < 100.0) {
                return Err(ctx.error(
                    it.span(),
                    "[pruner].percentile",
                    format!("`percentile` must be between 0 and 100 (exclusive), got {p}"),
                ));
            }
            percentile_kind(p)?
        }
        Asha => PrunerKind::Asha {
            min_resource,
            reduction_factor,
            min_early_stopping_rate: int(
                &raw.min_early_stopping_rate,
                "min_early_stopping_rate",
                0,
                0,
            )? as u32,
        },
        Hyperband => {
            let default_max = match objective {
                ObjectiveSpec::Candle(candle) => Some(candle.max_epochs as i64),
                _ => None,
            };
            let max_resource = match (&raw.max_resource, default_max) {
                (Some(_), _) => int(&raw.max_resource, "max_resource", 0, min_resource as i64)?,
                (None, Some(max)) => max,
                (None, None) => {
                    return Err(ctx.error(
                        raw.kind.span(),
                        "[pruner].max_resource",
                        "the hyperband pruner needs `max_resource` (the most steps a trial reports) unless the objective has `max_epochs`",
                    ));
                }
            };
            PrunerKind::Hyperband {
                min_resource,
                max_resource: max_resource as u64,
                reduction_factor,
            }
        }
        Threshold => {
            let (lower, upper) = (
                raw.lower.as_ref().map(|it| *it.get_ref()),
                raw.upper.as_ref().map(|it| *it.get_ref()),
            );
            if lower.is_none() && upper.is_none() {
                return Err(ctx.error(
                    raw.kind.span(),
                    "[pruner]",
                    "the threshold pruner needs `lower = ...`, `upper = ...` or both",
                ));
            }
            if let (Some(l), Some(u), Some(at)) = (lower, upper, &raw.upper)
                && l >= u
            {
                return Err(ctx.error(
                    at.span(),
                    "[pruner].upper",
                    format!("`upper` ({u}) must be greater than `lower` ({l})"),
                ));
            }
            PrunerKind::Threshold { lower, upper, warmup_steps }
        }
    };
    let patience = match &raw.patience {
        None => {
            if let Some(it) = &raw.min_delta {
                return Err(ctx.error(
                    it.span(),
                    "[pruner].min_delta",
                    "`min_delta` goes with `patience = N`; add it or remove `min_delta`",
                ));
            }
            None
        }
        Some(_) => {
            let patience = int(&raw.patience, "patience", 1, 1)? as u64;
            let min_delta = ctx.non_negative("pruner", &raw.min_delta, "min_delta")?;
            Some((patience, min_delta))
        }
    };
    Ok(Pruner { kind, patience })
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
    let metric = study.metric.get_ref().trim().to_owned();
    if metric.is_empty() {
        return Err(ctx.error(
            study.metric.span(),
            "[study].metric",
            "name the metric to optimize, e.g. `val_loss`",
        ));
    }
    locate("study.metric", study.metric.span());
    let direction = Direction::from(study.direction);

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
        Some(raw) => sampler_spec(ctx, raw)?,
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
    let has_slots = match &objective {
        ObjectiveSpec::Candle(candle) => {
            !candle.devices.is_empty()
                || candle.trials_per_device > 1
                || candle.auto_trials_per_device
        }
        ObjectiveSpec::Command(command) => !command.devices.is_empty(),
        _ => false,
    };
    if let Some(it) = &study.workers
        && has_slots
    {
        return Err(ctx.error(
            it.span(),
            "[study].workers",
            "with `devices` or `trials_per_device` the workers are one per device slot; remove `workers`",
        ));
    }
    let pruner = match raw.pruner {
        None => Pruner::NONE,
        Some(raw) => pruner_spec(ctx, raw, &objective)?,
    };
    if let ObjectiveSpec::Function { .. } = objective
        && metric != "value"
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

    Ok(StudySpec {
        name,
        metric,
        direction,
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

fn validate_early_stopping(
    ctx: &Ctx<'_>,
    raw: Spanned<RawEarlyStopping>,
    metric: &str,
    study_direction: Direction,
) -> Result<EarlyStoppingSpec, SpecError> {
    let span = raw.span();
    let raw = raw.into_inner();
    let monitor = raw.monitor.as_ref().map_or(metric, |it| it.get_ref().as_str()).to_owned();
    let direction = match raw.direction {
        Some(it) => Direction::from(it),
        None if monitor == metric => study_direction,
        None if monitor.ends_with("loss") || monitor.ends_with("error") => Direction::Minimize,
        None if monitor.ends_with("accuracy") => Direction::Maximize,
        None => {
            return Err(ctx.error(
                span,
                "[early_stopping].direction",
                format!("cannot tell whether `{monitor}` should go up or down; add `direction = \"minimize\"` or `\"maximize\"`"),
            ));
        }
    };
    let patience = *raw.patience.get_ref();
    let max = most("patience");
    let Some(patience) =
        u32::try_from(patience).ok().filter(|p| (1..=max).contains(&i64::from(*p)))
    else {
        return Err(ctx.error(
            raw.patience.span(),
            "[early_stopping].patience",
            format!("patience is the number of steps without improvement before stopping; it must be between 1 and {max}, got {patience}"),
        ));
    };
    let min_delta = ctx.non_negative("early_stopping", &raw.min_delta, "min_delta")?;
    Ok(EarlyStoppingSpec { monitor, direction, patience, min_delta })
}

/// `[objective] kind = "command"`'s settings, each placeholder checked against the
/// space.
fn command_spec(
    ctx: &Ctx<'_>,
    raw: RawObjective,
    space: &SearchSpace,
) -> Result<command::CommandSpec, SpecError> {
    use command::{MetricsFormat, MetricsSource};
    let template = |text: &str, span: Range<usize>, field: &str| {
        command::check_template(text, space)
            .map_err(|msg| ctx.error(span, format!("[objective].{field}"), msg))
    };
    let Some(argv) = raw.command else {
        return Err(ctx.error(
            raw.kind.span(),
            "[objective].command",
            "a command objective needs `command = [\"python\", \"train.py\", \"--lr\", \"{lr}\"]`: the program and its arguments",
        ));
    };
    if argv.get_ref().is_empty() || argv.get_ref()[0].get_ref().trim().is_empty() {
        return Err(ctx.error(
            argv.span(),
            "[objective].command",
            "`command` names the program first, then its arguments: `[\"python\", \"train.py\"]`",
        ));
    }
    let mut command = Vec::new();
    for arg in argv.into_inner() {
        template(arg.get_ref(), arg.span(), "command")?;
        command.push(arg.into_inner());
    }
    let mut env = Vec::new();
    if let Some(table) = raw.env {
        let span = table.span();
        for (key, value) in table.into_inner() {
            let toml::Value::String(value) = value else {
                return Err(ctx.error(
                    span,
                    format!("[objective.env].{key}"),
                    "an environment variable's value is a string",
                ));
            };
            template(&value, span.clone(), "env")?;
            env.push((key, value));
        }
    }
    if let Some(cwd) = &raw.cwd {
        template(cwd.get_ref(), cwd.span(), "cwd")?;
    }
    let duration = |it: &Option<Spanned<String>>,
                    field: &str|
     -> Result<Option<Duration>, SpecError> {
        let Some(it) = it else { return Ok(None) };
        parse_duration(it.get_ref()).map(Some).ok_or_else(|| {
            ctx.error(
                it.span(),
                format!("[objective].{field}"),
                format!("`{}` is not a duration; write \"90s\", \"30m\" or \"2h\"", it.get_ref()),
            )
        })
    };
    let timeout = duration(&raw.timeout, "timeout")?;
    let grace = duration(&raw.grace, "grace")?.unwrap_or(Duration::from_secs(10));
    let format_of = |name: &str, span: Range<usize>| match name {
        "json" => Ok(MetricsFormat::Json),
        "key=value" => Ok(MetricsFormat::KeyValue),
        other => Err(ctx.error(
            span,
            "[objective].metrics",
            format!("unknown metrics format `{other}`; use \"json\" or \"key=value\""),
        )),
    };
    let metrics = match raw.metrics {
        None => MetricsSource::Stdout(MetricsFormat::Json),
        Some(it) => {
            let span = it.span();
            match it.into_inner() {
                toml::Value::String(name) => MetricsSource::Stdout(format_of(&name, span)?),
                toml::Value::Table(table) => {
                    let file = table.get("file").and_then(toml::Value::as_str);
                    let format =
                        table.get("format").and_then(toml::Value::as_str).unwrap_or("json");
                    let unknown = table.keys().find(|k| !["file", "format"].contains(&k.as_str()));
                    match (file, unknown) {
                        (Some(path), None) => {
                            template(path, span.clone(), "metrics")?;
                            MetricsSource::File {
                                path: path.to_owned(),
                                format: format_of(format, span)?,
                            }
                        }
                        _ => {
                            return Err(ctx.error(
                                span,
                                "[objective].metrics",
                                "write `metrics = \"json\"`, `\"key=value\"` or `{ file = \"{trial_dir}/metrics.jsonl\", format = \"json\" }`",
                            ));
                        }
                    }
                }
                _ => {
                    return Err(ctx.error(
                        span,
                        "[objective].metrics",
                        "write `metrics = \"json\"`, `\"key=value\"` or `{ file = \"...\", format = \"json\" }`",
                    ));
                }
            }
        }
    };
    let devices = match &raw.devices {
        None => Vec::new(),
        Some(list) => {
            let mut devices = Vec::new();
            for it in list.get_ref() {
                let value = it.get_ref().as_str();
                let valid = value == "cpu"
                    || value.strip_prefix("cuda:").is_some_and(|n| n.parse::<usize>().is_ok());
                if !valid {
                    return Err(ctx.error(
                        it.span(),
                        "[objective].devices",
                        format!("unknown device `{value}` for a command; valid: \"cpu\", \"cuda:N\" (its trials get CUDA_VISIBLE_DEVICES=N)"),
                    ));
                }
                devices.push(value.to_owned());
            }
            if devices.is_empty() {
                return Err(ctx.error(
                    list.span(),
                    "[objective].devices",
                    "`devices` lists at least one device, e.g. [\"cuda:0\", \"cuda:1\"]",
                ));
            }
            devices
        }
    };
    let trials_per_device = match &raw.trials_per_device {
        None => 1,
        Some(it) => match it.get_ref() {
            toml::Value::Integer(n)
                if (1..=most("trials_per_device")).contains(n) && !devices.is_empty() =>
            {
                *n as usize
            }
            _ => {
                return Err(ctx.error(
                    it.span(),
                    "[objective].trials_per_device",
                    format!(
                        "a command's `trials_per_device` is a whole number between 1 and {}, with `devices` naming the devices",
                        most("trials_per_device")
                    ),
                ));
            }
        },
    };
    Ok(command::CommandSpec {
        command,
        devices,
        trials_per_device,
        cwd: raw.cwd.map(Spanned::into_inner),
        env,
        timeout,
        metrics,
        grace,
    })
}

fn validate_objective(
    ctx: &Ctx<'_>,
    raw: RawObjective,
    space: &SearchSpace,
    _metric: &str,
    locate: &mut impl FnMut(&str, Range<usize>),
) -> Result<ObjectiveSpec, SpecError> {
    let kind = *raw.kind.get_ref();
    let kind_name = match kind {
        RawObjectiveKind::Function => "function",
        RawObjectiveKind::Candle => "candle",
        RawObjectiveKind::External => "external",
        RawObjectiveKind::Command => "command",
    };
    // Each field and the kinds that take it; any other kind refuses it.
    use RawObjectiveKind::{Candle, Command, Function};
    let fields = [
        ("function", raw.function.as_ref().map(Spanned::span), &[Function][..]),
        ("model", raw.model.as_ref().map(Spanned::span), &[Candle][..]),
        ("dataset", raw.dataset.as_ref().map(Spanned::span), &[Candle][..]),
        ("max_epochs", raw.max_epochs.as_ref().map(Spanned::span), &[Candle, Function][..]),
        ("device", raw.device.as_ref().map(Spanned::span), &[Candle][..]),
        ("devices", raw.devices.as_ref().map(Spanned::span), &[Candle, Command][..]),
        (
            "trials_per_device",
            raw.trials_per_device.as_ref().map(Spanned::span),
            &[Candle, Command][..],
        ),
        ("fixed", raw.fixed.as_ref().map(Spanned::span), &[Candle][..]),
        ("command", raw.command.as_ref().map(Spanned::span), &[Command][..]),
        ("cwd", raw.cwd.as_ref().map(Spanned::span), &[Command][..]),
        ("env", raw.env.as_ref().map(Spanned::span), &[Command][..]),
        ("timeout", raw.timeout.as_ref().map(Spanned::span), &[Command][..]),
        ("metrics", raw.metrics.as_ref().map(Spanned::span), &[Command][..]),
        ("grace", raw.grace.as_ref().map(Spanned::span), &[Command][..]),
    ];
    for (field, span, kinds) in fields {
        if let Some(span) = span
            && !kinds.contains(&kind)
        {
            return Err(ctx.error(
                span,
                format!("[objective].{field}"),
                format!("`{field}` does not apply to objective kind `{kind_name}`; remove it"),
            ));
        }
    }
    match kind {
        RawObjectiveKind::External => Ok(ObjectiveSpec::External),
        RawObjectiveKind::Command => command_spec(ctx, raw, space).map(ObjectiveSpec::Command),
        RawObjectiveKind::Function => {
            let Some(name) = raw.function else {
                return Err(ctx.error(
                    raw.kind.span(),
                    "[objective].function",
                    format!(
                        "a function objective needs `function = \"...\"`, one of {}",
                        BenchmarkFunction::NAMES.join(", ")
                    ),
                ));
            };
            let function = BenchmarkFunction::from_name(name.get_ref()).ok_or_else(|| {
                ctx.error(
                    name.span(),
                    "[objective].function",
                    format!(
                        "unknown function `{}`; valid: {}",
                        name.get_ref(),
                        BenchmarkFunction::NAMES.join(", ")
                    ),
                )
            })?;
            function
                .check_space(space)
                .map_err(|msg| ctx.error(name.span(), "[objective].function", msg))?;
            let steps = ctx.at_least("objective", &raw.max_epochs, "max_epochs", 1, 1)? as u64;
            Ok(ObjectiveSpec::Function { function, steps })
        }
        RawObjectiveKind::Candle => {
            let required = |field: &str, it: Option<Spanned<String>>, example: &str| {
                it.ok_or_else(|| {
                    ctx.error(
                        raw.kind.span(),
                        format!("[objective].{field}"),
                        format!("a candle objective needs `{field} = {example}`"),
                    )
                })
            };
            let model = required("model", raw.model, "\"mlp\"")?;
            let Some(dataset) = raw.dataset else {
                return Err(ctx.error(
                    raw.kind.span(),
                    "[objective].dataset",
                    "a candle objective needs `dataset = \"digits\"` (or `{ csv = \"path\", target = \"column\" }`, `{ text = \"path\" }`)",
                ));
            };
            locate("objective.model", model.span());
            locate("objective.dataset", dataset.span());
            let dataset = validate_dataset(dataset.get_ref()).ok_or_else(|| {
                ctx.error(
                    dataset.span(),
                    "[objective].dataset",
                    "write a dataset name (`\"digits\"`), `{ csv = \"path\", target = \"column\" }` or `{ text = \"path\" }`",
                )
            })?;
            let max_epochs = match raw.max_epochs {
                None => {
                    return Err(ctx.error(
                        raw.kind.span(),
                        "[objective].max_epochs",
                        "a candle objective needs `max_epochs = N`, the most epochs a trial trains",
                    ));
                }
                Some(it) if !(1..=100_000).contains(it.get_ref()) => {
                    return Err(ctx.error(
                        it.span(),
                        "[objective].max_epochs",
                        format!("max_epochs must be between 1 and 100000, got {}", it.get_ref()),
                    ));
                }
                Some(it) => *it.get_ref() as u32,
            };
            let check_device = |it: &Spanned<String>, field: &str| {
                let value = it.get_ref().as_str();
                let valid = matches!(value, "auto" | "cpu" | "cuda")
                    || value.strip_prefix("cuda:").is_some_and(|n| n.parse::<usize>().is_ok());
                if valid {
                    Ok(value.to_owned())
                } else {
                    Err(ctx.error(
                        it.span(),
                        format!("[objective].{field}"),
                        format!("unknown device `{value}`; valid: \"auto\", \"cpu\", \"cuda\", \"cuda:N\""),
                    ))
                }
            };
            let device_span = raw.device.as_ref().map(Spanned::span);
            let device = match raw.device {
                Some(it) => {
                    locate("objective.device", it.span());
                    check_device(&it, "device")?
                }
                None => "auto".to_owned(),
            };
            let devices = match raw.devices {
                Some(list) if list.get_ref().is_empty() => {
                    return Err(ctx.error(
                        list.span(),
                        "[objective].devices",
                        "`devices` lists at least one device, e.g. [\"cuda:0\", \"cuda:1\"]",
                    ));
                }
                Some(list) => {
                    locate("objective.devices", list.span());
                    list.into_inner()
                        .iter()
                        .map(|it| check_device(it, "devices"))
                        .collect::<Result<Vec<_>, _>>()?
                }
                None => Vec::new(),
            };
            if let Some(span) = device_span
                && !devices.is_empty()
            {
                return Err(ctx.error(
                    span,
                    "[objective].device",
                    "set `device` or `devices`, not both",
                ));
            }
            let (trials_per_device, auto_trials_per_device) = match &raw.trials_per_device {
                None => (1, false),
                Some(it) => match it.get_ref() {
                    toml::Value::Integer(n) if (1..=most("trials_per_device")).contains(n) => {
                        (*n as usize, false)
                    }
                    toml::Value::String(s) if s == "auto" => (AUTO_TRIALS_PER_DEVICE, true),
                    other => {
                        return Err(ctx.error(
                            it.span(),
                            "[objective].trials_per_device",
                            format!(
                                "`trials_per_device` must be a whole number between 1 and {} or \"auto\", got {other}",
                                most("trials_per_device")
                            ),
                        ));
                    }
                },
            };
            let mut fixed = Params::new();
            if let Some(table) = raw.fixed {
                let span = table.span();
                for (key, value) in table.into_inner() {
                    let value = scalar(&value).ok_or_else(|| {
                        ctx.error(
                            span.clone(),
                            format!("[objective.fixed].{key}"),
                            "a fixed hyperparameter must be a string, number or boolean",
                        )
                    })?;
                    if space.get(&key).is_some() {
                        return Err(ctx.error(
                            span.clone(),
                            format!("[objective.fixed].{key}"),
                            format!("`{key}` is both fixed and in [space]; keep one"),
                        ));
                    }
                    locate(&format!("objective.fixed.{key}"), span.clone());
                    fixed.insert(key, value);
                }
            }
            Ok(ObjectiveSpec::Candle(CandleSpec {
                model: model.into_inner(),
                dataset,
                max_epochs,
                device,
                devices,
                trials_per_device,
                auto_trials_per_device,
                fixed,
            }))
        }
    }
}

fn validate_dataset(value: &toml::Value) -> Option<DatasetSpec> {
    match value {
        toml::Value::String(name) => Some(DatasetSpec::Named(name.clone())),
        toml::Value::Table(table) => {
            let get = |key: &str| table.get(key).and_then(toml::Value::as_str).map(str::to_owned);
            match (get("csv"), get("target"), get("text"), table.len()) {
                (Some(path), Some(target), None, 2) => Some(DatasetSpec::Csv { path, target }),
                (None, None, Some(path), 1) => Some(DatasetSpec::Text { path }),
                _ => None,
            }
        }
        _ => None,
    }
}

fn validate_space(
    ctx: &Ctx<'_>,
    raw: RawSpace,
    locate: &mut impl FnMut(&str, Range<usize>),
) -> Result<SearchSpace, SpecError> {
    let mut space = SearchSpace::default();
    for (name, param) in raw.0 {
        let field = format!("[space].{}", name.get_ref());
        let name_span = name.span();
        let param_span = param.span();
        let param = param.into_inner();
        let name = name.into_inner();
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-') {
            return Err(ctx.error(
                name_span,
                field,
                "parameter names may use letters, digits, `_`, `-` and `.` only",
            ));
        }
        let distribution = validate_distribution(ctx, &field, &param, param_span.clone())?;
        let grid = match &param.grid {
            None => None,
            Some(grid) => {
                let mut values = Vec::new();
                for value in grid.get_ref() {
                    let value = scalar(value)
                        .and_then(|v| distribution.to_internal(&v).map(|internal| (v, internal)))
                        .map(|(v, internal)| match (&distribution, &v) {
                            (Distribution::Float { .. }, ParamValue::Int(_)) => {
                                ParamValue::Float(internal)
                            }
                            _ => v,
                        })
                        .ok_or_else(|| {
                            ctx.error(
                                grid.span(),
                                field.clone(),
                                format!(
                                    "grid value {value} is outside the parameter's range {}",
                                    distribution.describe()
                                ),
                            )
                        })?;
                    values.push(value);
                }
                if values.is_empty() {
                    return Err(ctx.error(
                        grid.span(),
                        field,
                        "`grid = []` is empty; list at least one value",
                    ));
                }
                Some(values)
            }
        };
        let condition = match &param.when {
            None => None,
            Some(when) => Some(validate_condition(ctx, &field, &space, when)?),
        };
        locate(&format!("space.{name}"), name_span);
        space.params.push(ParamDef { name, distribution, condition, grid });
    }
    Ok(space)
}

fn validate_distribution(
    ctx: &Ctx<'_>,
    field: &str,
    param: &RawParam,
    span: Range<usize>,
) -> Result<Distribution, SpecError> {
    let kinds = [param.float.is_some(), param.int.is_some(), param.choice.is_some()];
    match kinds.iter().filter(|it| **it).count() {
        0 => {
            return Err(ctx.error(
                span,
                field,
                "say what kind of parameter this is: `float = [low, high]`, `int = [low, high]` or `choice = [...]`",
            ));
        }
        1 => {}
        _ => {
            return Err(ctx.error(
                span,
                field,
                "a parameter has exactly one kind; write only one of `float`, `int` and `choice`",
            ));
        }
    }
    let log = param.log.as_ref().is_some_and(|it| *it.get_ref());
    if let Some(choices) = &param.choice {
        if let Some(it) = &param.log {
            return Err(ctx.error(
                it.span(),
                field,
                "`log` applies to float and int parameters, not to `choice`",
            ));
        }
        if let Some(it) = &param.step {
            return Err(ctx.error(
                it.span(),
                field,
                "`step` applies to float and int parameters, not to `choice`",
            ));
        }
        if let Some(it) = &param.grid {
            return Err(ctx.error(
                it.span(),
                field,
                "`grid` is not needed for `choice`: the grid uses every choice",
            ));
        }
        let mut values: Vec<ParamValue> = Vec::new();
        for value in choices.get_ref() {
            let value = scalar(value).ok_or_else(|| {
                ctx.error(
                    choices.span(),
                    field,
                    format!(
                        "choices must be strings, numbers or booleans; found {}",
                        value.type_str()
                    ),
                )
            })?;
            if values.iter().any(|it| it.same_as(&value)) {
                return Err(ctx.error(
                    choices.span(),
                    field,
                    format!("choice {value} is listed twice"),
                ));
            }
            values.push(value);
        }
        if values.is_empty() {
            return Err(ctx.error(
                choices.span(),
                field,
                "`choice = []` is empty; list at least one value",
            ));
        }
        return Ok(Distribution::Categorical { choices: values });
    }
    let (bounds_span, low, high, is_int) = match (&param.float, &param.int) {
        (Some(it), _) => {
            (it.span(), it.get_ref().first().copied(), it.get_ref().get(1).copied(), false)
        }
        (_, Some(it)) => (
            it.span(),
            it.get_ref().first().map(|v| *v as f64),
            it.get_ref().get(1).map(|v| *v as f64),
            true,
        ),
        _ => unreachable!("one kind is present"),
    };
    let n_bounds = param
        .float
        .as_ref()
        .map(|it| it.get_ref().len())
        .or(param.int.as_ref().map(|it| it.get_ref().len()));
    let (Some(low), Some(high), Some(2)) = (low, high, n_bounds) else {
        return Err(ctx.error(bounds_span, field, "give the range as two numbers: `[low, high]`"));
    };
    let empty = |low: &dyn fmt::Display, high: &dyn fmt::Display| {
        ctx.error(
            bounds_span.clone(),
            field,
            format!("the range [{low}, {high}] is empty; write [low, high] with low < high"),
        )
    };
    // Int bounds are compared as written below (through f64, 2^53 + 1 is 2^53).
    if !low.is_finite() || !high.is_finite() || (low >= high && !is_int) {
        return Err(empty(&low, &high));
    }
    if log && low <= 0.0 {
        return Err(ctx.error(
            bounds_span,
            field,
            format!("a log-scaled range must be positive, but low is {low}; raise low above 0 or drop `log = true`"),
        ));
    }
    if is_int {
        let step = match &param.step {
            None => 1,
            Some(it) => match it.get_ref().as_integer() {
                Some(step) if step >= 1 => step,
                _ => {
                    return Err(ctx.error(
                        it.span(),
                        field,
                        format!(
                            "an int step must be a whole number of at least 1, got {}",
                            it.get_ref()
                        ),
                    ));
                }
            },
        };
        if log && step != 1 {
            return Err(ctx.error(
                bounds_span,
                field,
                "`log = true` and `step` can't be combined (as in Optuna); drop one",
            ));
        }
        // The bounds as written: through f64, 2^53 + 1 would become 2^53.
        let exact = param.int.as_ref().map(|it| (it.get_ref()[0], it.get_ref()[1]));
        let Some((low, high)) = exact else { unreachable!("an int parameter has int bounds") };
        if low >= high {
            return Err(empty(&low, &high));
        }
        if (i128::from(high) - i128::from(low)) % i128::from(step) != 0 {
            return Err(ctx.error(
                bounds_span,
                field,
                format!("the range [{low}, {high}] is not a whole number of steps of {step}; make high - low a multiple of step"),
            ));
        }
        Ok(Distribution::Int { low, high, log, step })
    } else {
        let step = match &param.step {
            None => None,
            Some(it) => {
                match it.get_ref().as_float().or(it.get_ref().as_integer().map(|v| v as f64)) {
                    Some(step) if step > 0.0 && step.is_finite() => Some(step),
                    _ => {
                        return Err(ctx.error(
                            it.span(),
                            field,
                            format!("a float step must be a positive number, got {}", it.get_ref()),
                        ));
                    }
                }
            }
        };
        if let Some(step) = step {
            if log {
                return Err(ctx.error(
                    bounds_span,
                    field,
                    "`log = true` and `step` can't be combined (as in Optuna); drop one",
                ));
            }
            let k = (high - low) / step;
            if (k - k.round()).abs() > 1e-8 {
                return Err(ctx.error(
                    bounds_span,
                    field,
                    format!("the range [{low}, {high}] is not a whole number of steps of {step}; make high - low a multiple of step"),
                ));
            }
        }
        Ok(Distribution::Float { low, high, log, step })
    }
}

fn validate_condition(
    ctx: &Ctx<'_>,
    field: &str,
    space: &SearchSpace,
    when: &Spanned<toml::Table>,
) -> Result<Condition, SpecError> {
    let table = when.get_ref();
    if table.len() != 1 {
        return Err(ctx.error(
            when.span(),
            field,
            "`when` names one parameter and its value(s), e.g. `when = { optimizer = \"sgd\" }`",
        ));
    }
    let (parent_name, raw_values) = table.iter().next().expect("one entry");
    let Some(parent) = space.get(parent_name) else {
        let earlier: Vec<&str> = space.params.iter().map(|p| p.name.as_str()).collect();
        return Err(ctx.error(
            when.span(),
            field,
            format!(
                "`when` refers to `{parent_name}`, which is not declared above this parameter; declared so far: {}",
                if earlier.is_empty() { "none".to_owned() } else { earlier.join(", ") }
            ),
        ));
    };
    let raw_values: Vec<&toml::Value> = match raw_values {
        toml::Value::Array(items) => items.iter().collect(),
        it => vec![it],
    };
    let mut values = Vec::new();
    for raw in raw_values {
        let value = scalar(raw)
            .filter(|v| parent.distribution.to_internal(v).is_some())
            .ok_or_else(|| {
                ctx.error(
                    when.span(),
                    field,
                    format!(
                        "`{parent_name}` never takes the value {raw}; its domain is {}",
                        parent.distribution.describe()
                    ),
                )
            })?;
        values.push(value);
    }
    if values.is_empty() {
        return Err(ctx.error(
            when.span(),
            field,
            format!("`when` gives no values for `{parent_name}`"),
        ));
    }
    Ok(Condition { parent: parent_name.clone(), values })
}

fn scalar(value: &toml::Value) -> Option<ParamValue> {
    match value {
        toml::Value::String(it) => Some(ParamValue::Str(it.clone())),
        toml::Value::Integer(it) => Some(ParamValue::Int(*it)),
        toml::Value::Float(it) => Some(ParamValue::Float(*it)),
        toml::Value::Boolean(it) => Some(ParamValue::Bool(*it)),
        _ => None,
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
