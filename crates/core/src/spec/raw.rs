//! The study file as serde reads it: `Raw*` structs that mirror its sections,
//! every value wrapped in `Spanned` so errors can say where it was written.

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_spanned::Spanned;

use crate::study::Direction;

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub(super) study: Spanned<RawStudy>,
    pub(super) sampler: Option<RawSampler>,
    pub(super) pruner: Option<RawPruner>,
    pub(super) early_stopping: Option<Spanned<RawEarlyStopping>>,
    pub(super) objective: Spanned<RawObjective>,
    pub(super) space: Spanned<RawSpace>,
    pub(super) nightly: Option<RawNightly>,
    pub(super) compress: Option<Spanned<RawCompress>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCompress {
    pub(super) variants: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) teacher: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNightly {
    pub(super) top: Option<Spanned<i64>>,
    pub(super) seeds: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStudy {
    pub(super) name: Spanned<String>,
    pub(super) metric: Option<Spanned<String>>,
    pub(super) direction: Option<RawDirection>,
    pub(super) metrics: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) directions: Option<Spanned<Vec<RawDirection>>>,
    pub(super) constraints: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) seed: Option<u64>,
    pub(super) trials: Option<Spanned<i64>>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) workers: Option<Spanned<i64>>,
    pub(super) max_retries: Option<Spanned<i64>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawDirection {
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
pub(super) struct RawSampler {
    pub(super) kind: Spanned<RawSamplerKind>,
    pub(super) startup_trials: Option<Spanned<i64>>,
    pub(super) candidates: Option<Spanned<i64>>,
    pub(super) multivariate: Option<bool>,
    pub(super) constant_liar: Option<bool>,
    pub(super) prior_weight: Option<Spanned<f64>>,
    pub(super) gamma: Option<Spanned<f64>>,
    pub(super) good_weights: Option<Spanned<RawGoodWeights>>,
    pub(super) restarts: Option<Spanned<i64>>,
    pub(super) population: Option<Spanned<i64>>,
    pub(super) crossover_prob: Option<Spanned<f64>>,
    pub(super) mutation_prob: Option<Spanned<f64>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawGoodWeights {
    Improvement,
    Uniform,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawSamplerKind {
    Grid,
    Random,
    Tpe,
    Gp,
    Auto,
    Nsga2,
}

impl RawSamplerKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            RawSamplerKind::Grid => "grid",
            RawSamplerKind::Random => "random",
            RawSamplerKind::Tpe => "tpe",
            RawSamplerKind::Gp => "gp",
            RawSamplerKind::Auto => "auto",
            RawSamplerKind::Nsga2 => "nsga2",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPruner {
    pub(super) kind: Spanned<RawPrunerKind>,
    pub(super) percentile: Option<Spanned<f64>>,
    pub(super) startup_trials: Option<Spanned<i64>>,
    pub(super) warmup_steps: Option<Spanned<i64>>,
    pub(super) interval: Option<Spanned<i64>>,
    pub(super) min_resource: Option<Spanned<i64>>,
    pub(super) max_resource: Option<Spanned<i64>>,
    pub(super) reduction_factor: Option<Spanned<i64>>,
    pub(super) min_early_stopping_rate: Option<Spanned<i64>>,
    pub(super) lower: Option<Spanned<f64>>,
    pub(super) upper: Option<Spanned<f64>>,
    pub(super) patience: Option<Spanned<i64>>,
    pub(super) min_delta: Option<Spanned<f64>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawPrunerKind {
    None,
    Median,
    Percentile,
    Asha,
    Hyperband,
    Threshold,
}

impl RawPrunerKind {
    pub(super) fn name(self) -> &'static str {
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
pub(super) struct RawEarlyStopping {
    pub(super) monitor: Option<Spanned<String>>,
    pub(super) direction: Option<RawDirection>,
    pub(super) patience: Spanned<i64>,
    pub(super) min_delta: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawObjective {
    pub(super) kind: Spanned<RawObjectiveKind>,
    pub(super) function: Option<Spanned<String>>,
    pub(super) model: Option<Spanned<String>>,
    pub(super) dataset: Option<Spanned<toml::Value>>,
    pub(super) max_epochs: Option<Spanned<i64>>,
    pub(super) keep_models: Option<Spanned<i64>>,
    pub(super) device: Option<Spanned<String>>,
    pub(super) devices: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) trials_per_device: Option<Spanned<toml::Value>>,
    pub(super) fixed: Option<Spanned<toml::Table>>,
    pub(super) command: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) cwd: Option<Spanned<String>>,
    pub(super) env: Option<Spanned<toml::Table>>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) metrics: Option<Spanned<toml::Value>>,
    pub(super) grace: Option<Spanned<String>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawObjectiveKind {
    Function,
    Candle,
    External,
    Command,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawParam {
    pub(super) float: Option<Spanned<Vec<f64>>>,
    pub(super) int: Option<Spanned<Vec<i64>>>,
    pub(super) choice: Option<Spanned<Vec<toml::Value>>>,
    pub(super) log: Option<Spanned<bool>>,
    pub(super) step: Option<Spanned<toml::Value>>,
    pub(super) grid: Option<Spanned<Vec<toml::Value>>>,
    pub(super) when: Option<Spanned<toml::Table>>,
}

/// `[space]` in file order (a map would sort it, and conditions look back in order).
pub(super) struct RawSpace(pub(super) Vec<(Spanned<String>, Spanned<RawParam>)>);

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
