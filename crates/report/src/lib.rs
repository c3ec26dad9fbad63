//! hpo-report: what a lead reads to pick a configuration.
//!
//! Three layers, each usable alone:
//! - [`data`]: chart data as pure functions of a study's trials and curves
//!   (leaderboard, history, learning curves, regularization trends, heat map,
//!   parallel coordinates, timeline, confirm statistics, comparisons);
//! - [`importance`]: parameter importance by PED-ANOVA;
//! - [`chart`]: plotters drawing of that data, to SVG text and PNG files;
//! - [`html`]: the self-contained `index.html` (inline SVG, no JavaScript);
//! - [`load`]: a study read from any `Storage` into a [`StudyRecord`].
//!
//! The crate depends on hpo-core only: the binary and the server open the store
//! and read the study through [`load`].
#![forbid(unsafe_code)]

pub mod chart;
pub mod data;
pub mod html;
pub mod importance;
pub mod load;
pub mod stats;
#[cfg(test)]
mod test_support;
pub mod tradeoff;

use std::collections::BTreeMap;

use hpo_core::study::Direction;
use hpo_core::trial::{FrozenTrial, MetricPoint, TrialId};

/// Everything a report is made from: one study as the store holds it.
#[derive(Debug, Clone)]
pub struct StudyRecord {
    /// The study's name.
    pub name: String,
    /// Whether the objective is minimized or maximized.
    pub direction: Direction,
    /// The objective's metric name (`val_loss`).
    pub metric: String,
    /// Every objective's metric and direction, in order: `[(metric, direction)]`
    /// for a study of one objective.
    pub objectives: Vec<(String, Direction)>,
    /// What the study was set up to do, as (label, text) lines: budget, sampler, pruner.
    pub setup: Vec<(String, String)>,
    /// The study file as written, when the store keeps it.
    pub spec_text: Option<String>,
    /// Every trial, in order of number.
    pub trials: Vec<FrozenTrial>,
    /// Every metric curve of every trial, by trial.
    pub curves: BTreeMap<TrialId, Vec<MetricPoint>>,
    /// The study's user attributes as (key, value as text): Optuna's
    /// `study.user_attrs`, hpo's stored pick among them.
    pub study_attrs: Vec<(String, String)>,
    /// Every night of the nightly study this study is a night of (`hpo nightly`),
    /// when it is one and the reader asked for them ([`load::nights`]).
    pub trend: Option<data::NightTrend>,
}

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::chart::{DrawError, Figure};
use crate::data::{
    Comparison, Confirmation, CurveFigure, HeatMap, History, LeaderRow, Overview, Parallel,
    Recommendation, RegPanel, Timeline,
};
use crate::importance::Importance;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A chart failed to draw.
    #[error(transparent)]
    Draw(#[from] DrawError),
    /// A file of the report could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// `Result` of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every section of a report, computed from the record (pure).
#[derive(Debug, Clone)]
pub struct Sections {
    /// Counts and compute.
    pub overview: Overview,
    /// The configuration to pick, and why.
    pub recommendation: Option<Recommendation>,
    /// The best trials.
    pub leaderboard: Vec<LeaderRow>,
    /// Values and best so far.
    pub history: History,
    /// Train/val curves of the best trials, per metric.
    pub curves: Vec<CurveFigure>,
    /// Gap and objective against each regularizer.
    pub regularization: Vec<RegPanel>,
    /// Objective over the two most important regularizers.
    pub heat_map: Option<HeatMap>,
    /// PED-ANOVA importance per parameter.
    pub importance: Vec<Importance>,
    /// Parallel coordinates.
    pub parallel: Option<Parallel>,
    /// When trials ran.
    pub timeline: Timeline,
    /// Seed-noise results of `hpo confirm`.
    pub confirmation: Option<Confirmation>,
    /// The comparison with another study or an earlier state (for a night, with
    /// the night before).
    pub comparison: Option<Comparison>,
    /// Every night of a nightly study, when the record is a night.
    pub trend: Option<data::NightTrend>,
    /// The Pareto front, for a study of several objectives.
    pub pareto: Option<tradeoff::ParetoSection>,
    /// The pick's compressed variants and every trial's, when `[compress]` made them.
    pub compression: Option<tradeoff::CompressionSection>,
}

/// Computes every section; `baseline` is the study to compare with, if any.
pub fn sections(record: &StudyRecord, baseline: Option<&StudyRecord>) -> Sections {
    let search: Vec<&FrozenTrial> = data::search_trials(record).collect();
    let importance = importance::with_intervals(&search, record.direction);
    let confirmation = data::confirm_groups(record);
    let recommendation = data::recommend(record, confirmation.as_ref());
    let pareto = tradeoff::pareto_section(record);
    // With several objectives the lead picks on the front; the table shows the
    // front's best on the first objective.
    let pick = match &pareto {
        Some(section) => section.front.first().map(|f| f.0),
        None => recommendation.as_ref().map(|r| r.number),
    };
    let compression = tradeoff::compression_section(record, pick);
    // Several objectives have a front, not one pick.
    let recommendation = if pareto.is_some() { None } else { recommendation };
    Sections {
        pareto,
        compression,
        overview: data::overview(record),
        leaderboard: data::leaderboard(record, pick),
        recommendation,
        history: data::history(record),
        curves: data::learning_curves(record),
        regularization: data::regularization(record),
        heat_map: data::heat_map(record, &importance),
        parallel: data::parallel(record),
        timeline: data::timeline(record),
        comparison: baseline.map(|base| data::compare(base, record)),
        importance,
        confirmation,
        trend: record.trend.clone().filter(|trend| !trend.nights.is_empty()),
    }
}

impl Sections {
    /// Every chart of the report with its file stem, in page order.
    pub fn figures(&self) -> Vec<(String, Figure<'_>)> {
        let mut out = Vec::new();
        let variants: Vec<(String, Figure<'_>)> = match &self.compression {
            Some(it) => vec![
                ("compression-size".to_owned(), Figure::Tradeoff(&it.size)),
                ("compression-latency".to_owned(), Figure::Tradeoff(&it.latency)),
            ],
            None => Vec::new(),
        };
        // Several objectives: the front, the variants and the timeline (the
        // other charts rank trials on one value).
        if let Some(pareto) = &self.pareto {
            out.push(("pareto".to_owned(), Figure::Tradeoff(&pareto.chart)));
            out.extend(variants);
            out.push(("timeline".to_owned(), Figure::Timeline(&self.timeline)));
            return out;
        }
        out.push(("history".to_owned(), Figure::History(&self.history)));
        out.extend(variants);
        for curves in &self.curves {
            out.push((format!("curves-{}", slug(&curves.metric)), Figure::Curves(curves)));
        }
        for panel in &self.regularization {
            out.push((
                format!("regularization-{}", slug(&panel.param)),
                Figure::Regularization(panel),
            ));
        }
        if let Some(heat_map) = &self.heat_map {
            out.push(("heatmap".to_owned(), Figure::HeatMap(heat_map)));
        }
        if !self.importance.is_empty() {
            out.push(("importance".to_owned(), Figure::Importance(&self.importance)));
        }
        if let Some(parallel) = &self.parallel {
            out.push(("parallel-coordinates".to_owned(), Figure::Parallel(parallel)));
        }
        if !self.timeline.bars.is_empty() {
            out.push(("timeline".to_owned(), Figure::Timeline(&self.timeline)));
        }
        if let Some(confirmation) = &self.confirmation {
            out.push(("confirm".to_owned(), Figure::Confirm(confirmation)));
        }
        if let Some(trend) = &self.trend {
            out.push(("nights".to_owned(), Figure::Nights(trend)));
        }
        out
    }
}

/// A file-name-safe spelling of a metric or parameter name.
fn slug(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

/// What `write_report` wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The HTML page.
    pub index: PathBuf,
    /// Every chart file (SVG and PNG).
    pub charts: Vec<PathBuf>,
}

/// Writes `index.html` and every chart as SVG and PNG into `out_dir` (created if
/// missing). Charts are drawn in parallel.
pub fn write_report(
    record: &StudyRecord,
    baseline: Option<&StudyRecord>,
    out_dir: &Path,
) -> Result<Written> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let sections = sections(record, baseline);
    let figures = sections.figures();
    let pick = sections.recommendation.as_ref().map(|r| r.number);
    let rendered: Vec<(String, String)> = figures
        .par_iter()
        .map(|(name, figure)| -> Result<(String, String)> {
            let svg = figure.svg(name, pick)?;
            let svg_path = out_dir.join(format!("{name}.svg"));
            std::fs::write(&svg_path, &svg).map_err(io(&svg_path))?;
            figure.png(name, &out_dir.join(format!("{name}.png")), pick)?;
            Ok((name.clone(), svg))
        })
        .collect::<Result<_>>()?;
    let page = html::page(record, &sections, &rendered);
    let index = out_dir.join("index.html");
    std::fs::write(&index, page).map_err(io(&index))?;
    let charts = rendered
        .iter()
        .flat_map(|(name, _)| ["svg", "png"].map(|ext| out_dir.join(format!("{name}.{ext}"))))
        .collect();
    Ok(Written { index, charts })
}
