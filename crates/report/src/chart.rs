//! Drawing: each [`Figure`] drawn with plotters onto any backend, so the same code
//! writes the SVG the HTML page inlines and the PNG beside it.
//!
//! Text uses DejaVu Sans, embedded in the binary (the `dejavu` crate) and registered
//! with plotters' ab_glyph renderer, so PNGs have readable labels on machines with no
//! fonts installed. Log-scaled axes are drawn as linear axes over log10 values with
//! labels written back in the parameter's units.

use std::path::Path;
use std::sync::Once;

use hpo_core::display;
use hpo_core::trial::TrialState;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::data::{
    Confirmation, CurveFigure, HeatMap, History, Parallel, ParamAxis, RegPanel, Timeline, Trend,
};
use crate::importance::Importance;

/// A chart the report draws.
#[derive(Debug, Clone, Copy)]
pub enum Figure<'a> {
    /// Each trial's value and the best so far.
    History(&'a History),
    /// Train and validation curves of one metric.
    Curves(&'a CurveFigure),
    /// The gap and the objective against one regularizer.
    Regularization(&'a RegPanel),
    /// The objective over two parameters.
    HeatMap(&'a HeatMap),
    /// Importance per parameter.
    Importance(&'a [Importance]),
    /// Parallel coordinates of complete trials.
    Parallel(&'a Parallel),
    /// When each trial ran, per worker.
    Timeline(&'a Timeline),
    /// Mean and 95% CI per confirmed configuration.
    Confirm(&'a Confirmation),
}

/// Why a chart could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the {chart} chart: {message}")]
pub struct DrawError {
    /// The chart's file stem.
    pub chart: String,
    /// plotters' message.
    pub message: String,
}

/// Picks the timeline bars of one kind (complete, pruned, ...).
type BarFilter = fn(&crate::data::TimelineBar) -> bool;

/// A chart with f64 coordinates on both axes.
type Chart2d<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

type Drawn<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

const FONT: &str = "sans-serif";
/// Ten distinguishable colours (Tableau 10), for series by rank.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const COMPLETE: RGBColor = PALETTE[0];
const PRUNED: RGBColor = PALETTE[1];
const FAILED: RGBColor = PALETTE[3];
const CONFIRM: RGBColor = PALETTE[4];
const BEST: RGBColor = RGBColor(200, 30, 30);

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (style, bytes) in [
            (FontStyle::Normal, dejavu::sans::regular()),
            (FontStyle::Bold, dejavu::sans::bold()),
            (FontStyle::Italic, dejavu::sans::oblique()),
            (FontStyle::Oblique, dejavu::sans::oblique()),
        ] {
            if plotters::style::register_font(FONT, style, bytes).is_err() {
                tracing::warn!(
                    "the embedded DejaVu Sans font did not load; charts lose their text"
                );
            }
        }
    });
}

impl Figure<'_> {
    /// The chart's size in pixels.
    pub fn size(&self) -> (u32, u32) {
        match self {
            Figure::Regularization(_) => (1100, 420),
            Figure::Parallel(p) => ((150 * p.axes.len() as u32).clamp(700, 1500), 520),
            Figure::Importance(items) => (800, (120 + 36 * items.len() as u32).max(260)),
            Figure::Timeline(t) => (1000, (140 + 40 * t.workers.len() as u32).max(260)),
            Figure::HeatMap(_) => (820, 620),
            _ => (900, 500),
        }
    }

    /// The chart as SVG text.
    pub fn svg(&self, name: &str) -> Result<String, DrawError> {
        register_fonts();
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, self.size()).into_drawing_area();
            self.draw_on(&root).and_then(|()| root.present()).map_err(|e| draw_error(name, e))?;
        }
        Ok(out)
    }

    /// Writes the chart as a PNG file.
    pub fn png(&self, name: &str, path: &Path) -> Result<(), DrawError> {
        register_fonts();
        let root = BitMapBackend::new(path, self.size()).into_drawing_area();
        self.draw_on(&root).and_then(|()| root.present()).map_err(|e| draw_error(name, e))
    }

    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB> {
        root.fill(&WHITE)?;
        match *self {
            Figure::History(it) => draw_history(root, it),
            Figure::Curves(it) => draw_curves(root, it),
            Figure::Regularization(it) => draw_regularization(root, it),
            Figure::HeatMap(it) => draw_heat_map(root, it),
            Figure::Importance(it) => draw_importance(root, it),
            Figure::Parallel(it) => draw_parallel(root, it),
            Figure::Timeline(it) => draw_timeline(root, it),
            Figure::Confirm(it) => draw_confirm(root, it),
        }
    }
}

fn draw_error(chart: &str, error: impl std::fmt::Display) -> DrawError {
    DrawError { chart: chart.to_owned(), message: error.to_string() }
}

/// A range with a little room around `values` (a unit range around a single value).
fn padded(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (low, high) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !low.is_finite() {
        return 0.0..1.0;
    }
    let pad = if high > low { (high - low) * 0.06 } else { low.abs().max(1.0) * 0.1 };
    (low - pad)..(high + pad)
}

/// Whether values are better seen on a log axis: all positive, spanning 30x or more.
fn wants_log(values: &[f64]) -> bool {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let low = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let high = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    low > 0.0 && high / low >= 30.0
}

/// Maps values to the y axis: log10 when `log`.
fn y_of(log: bool) -> impl Fn(f64) -> f64 {
    move |v| if log { v.log10() } else { v }
}

fn tick_text(log: bool, v: f64) -> String {
    tick(if log { 10f64.powf(v) } else { v })
}

/// An axis label: at most 4 significant digits, no trailing zeros (`0.2`, `1.6`, `3e-4`).
pub fn tick(v: f64) -> String {
    if v.abs() < 1e-12 {
        return "0".to_owned();
    }
    let text = display::short(v);
    let (mantissa, exponent) = match text.split_once('e') {
        Some((m, e)) => (m.to_owned(), format!("e{e}")),
        None => (text, String::new()),
    };
    let mantissa = if mantissa.contains('.') {
        mantissa.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        mantissa
    };
    format!("{mantissa}{exponent}")
}

/// The legend of a chart's labelled series, in its upper right corner.
fn draw_legend<'a, DB: DrawingBackend + 'a>(chart: &mut Chart2d<'a, DB>) -> Drawn<DB> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
}

/// The axes of a chart over a count (trial number, epoch) against a metric.
struct CountAxes<'m> {
    x_desc: &'static str,
    metric: &'m str,
    /// Whether the y values are log10 of the metric.
    log: bool,
}

/// A chart with whole-number x (trials, epochs) and the metric on y, its mesh drawn.
fn count_chart<'a, DB: DrawingBackend + 'a>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    title_size: u32,
    x_range: std::ops::Range<f64>,
    y_range: std::ops::Range<f64>,
    axes: &CountAxes<'_>,
) -> Result<Chart2d<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, title_size))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(x_range, y_range)?;
    let y_format = |v: &f64| tick_text(axes.log, *v);
    let y_desc =
        if axes.log { format!("{} (log scale)", axes.metric) } else { axes.metric.to_owned() };
    chart
        .configure_mesh()
        .x_desc(axes.x_desc)
        .y_desc(y_desc)
        .y_label_formatter(&y_format)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()?;
    Ok(chart)
}

fn draw_history<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, data: &History) -> Drawn<DB> {
    let values: Vec<f64> = data.points.iter().map(|p| p.value).collect();
    let log = wants_log(&values);
    let y = y_of(log);
    let max_number = data.points.iter().map(|p| p.number).max().unwrap_or(1) as f64;
    let x_range = -0.5..max_number + 0.5;
    let y_range = padded(values.iter().map(|&v| y(v)));
    let axes = CountAxes { x_desc: "trial number", metric: &data.metric, log };
    let mut chart = count_chart(root, "Optimization history", 22, x_range, y_range, &axes)?;
    chart
        .draw_series(
            data.points
                .iter()
                .filter(|p| p.state == TrialState::Complete)
                .map(|p| Circle::new((p.number as f64, y(p.value)), 4, COMPLETE.mix(0.8).filled())),
        )?
        .label("complete trial")
        .legend(|(x, y)| Circle::new((x, y), 4, COMPLETE.filled()));
    if data.points.iter().any(|p| p.state == TrialState::Pruned) {
        chart
            .draw_series(
                data.points
                    .iter()
                    .filter(|p| p.state == TrialState::Pruned)
                    .map(|p| Cross::new((p.number as f64, y(p.value)), 4, PRUNED.stroke_width(2))),
            )?
            .label("pruned (last reported value)")
            .legend(|(x, y)| Cross::new((x, y), 4, PRUNED.stroke_width(2)));
    }
    let mut steps: Vec<(f64, f64)> = Vec::new();
    for (idx, &(number, best)) in data.best_so_far.iter().enumerate() {
        if idx > 0 {
            steps.push((number as f64, steps[steps.len() - 1].1));
        }
        steps.push((number as f64, y(best)));
    }
    if let Some(&(_, last)) = steps.last() {
        steps.push((max_number + 0.5, last));
    }
    chart
        .draw_series(LineSeries::new(steps, BEST.stroke_width(2)))?
        .label("best so far")
        .legend(|(x, y)| PathElement::new(vec![(x - 10, y), (x + 10, y)], BEST.stroke_width(2)));
    draw_legend(&mut chart)
}

fn draw_curves<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, data: &CurveFigure) -> Drawn<DB> {
    let values: Vec<f64> = data.lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).collect();
    let log = data.metric.contains("loss") && wants_log(&values);
    let y = y_of(log);
    let max_epoch = data.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)).max().unwrap_or(1);
    let title = format!(
        "Learning curves: {} (solid = validation, dashed = training, dot = best epoch)",
        data.metric
    );
    let x_range = 0.0..max_epoch as f64 + 0.5;
    let y_range = padded(values.iter().map(|&v| y(v)));
    let axes = CountAxes { x_desc: "epoch", metric: &data.metric, log };
    let mut chart = count_chart(root, &title, 18, x_range, y_range, &axes)?;
    for line in &data.lines {
        let color = PALETTE[(line.rank - 1) % PALETTE.len()];
        let points = line.points.iter().map(|&(s, v)| (s as f64, y(v)));
        if line.split == "train" {
            chart.draw_series(DashedLineSeries::new(points, 6, 4, color.stroke_width(2)))?;
        } else {
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(format!("#{} trial {}", line.rank, line.trial))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x - 10, y), (x + 10, y)], color.stroke_width(2))
                });
        }
        if let Some((step, value)) = line.best {
            chart.draw_series(std::iter::once(Circle::new(
                (step as f64, y(value)),
                5,
                color.filled(),
            )))?;
        }
    }
    draw_legend(&mut chart)
}

/// The x coordinate of a parameter value on a chart (log10 on log axes).
fn param_x(axis: &ParamAxis, x: f64) -> f64 {
    match axis {
        ParamAxis::Log { .. } => x.log10(),
        _ => x,
    }
}

fn param_range(axis: &ParamAxis) -> std::ops::Range<f64> {
    match axis {
        ParamAxis::Linear { low, high } => padded([*low, *high].into_iter()),
        ParamAxis::Log { low, high } => padded([low.log10(), high.log10()].into_iter()),
        ParamAxis::Categories(choices) => -0.5..(choices.len() as f64 - 0.5),
    }
}

fn param_tick(axis: &ParamAxis, v: f64) -> String {
    match axis {
        ParamAxis::Linear { .. } => tick(v),
        ParamAxis::Log { .. } => tick(10f64.powf(v)),
        ParamAxis::Categories(choices) => {
            let idx = v.round();
            if (v - idx).abs() < 1e-6 && idx >= 0.0 {
                choices.get(idx as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        }
    }
}

fn draw_regularization<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &RegPanel,
) -> Drawn<DB> {
    let (title, body) = root.split_vertically(40);
    title.draw(&Text::new(
        format!("Regularization: {} against the generalization gap and the objective", data.param),
        (12, 10),
        (FONT, 18).into_font(),
    ))?;
    let panels = body.split_evenly((1, 2));
    let gaps: Vec<(f64, f64)> = data.points.iter().filter_map(|p| Some((p.x, p.gap?))).collect();
    let values: Vec<(f64, f64)> = data.points.iter().map(|p| (p.x, p.value)).collect();
    for (area, (label, points, trend)) in panels.iter().zip([
        ("generalization gap at best epoch", &gaps, &data.gap_trend),
        (data.metric.as_str(), &values, &data.value_trend),
    ]) {
        let x_axis = &data.axis;
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(param_range(x_axis), padded(points.iter().map(|p| p.1)))?;
        let x_format = |v: &f64| param_tick(x_axis, *v);
        let categorical = matches!(x_axis, ParamAxis::Categories(_));
        let x_desc = match x_axis {
            ParamAxis::Log { .. } => format!("{} (log scale)", data.param),
            _ => data.param.clone(),
        };
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(label)
            .x_labels(if let ParamAxis::Categories(c) = x_axis { 2 * c.len() + 1 } else { 8 })
            .x_label_formatter(&x_format)
            .y_label_formatter(&|v| tick(*v))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .draw()?;
        let jitter = |number: u64, x: f64| {
            if categorical { x + ((number * 37 % 17) as f64 / 17.0 - 0.5) * 0.3 } else { x }
        };
        chart.draw_series(points.iter().zip(&data.points).map(|(p, trial)| {
            Circle::new(
                (jitter(trial.number, param_x(x_axis, p.0)), p.1),
                3,
                COMPLETE.mix(0.6).filled(),
            )
        }))?;
        match trend {
            Trend::Line(_) => {
                let range = param_range(x_axis);
                let ends = [range.start, range.end].map(|x| {
                    let raw =
                        if matches!(x_axis, ParamAxis::Log { .. }) { 10f64.powf(x) } else { x };
                    (x, trend.at(x_axis, raw).unwrap_or(f64::NAN))
                });
                chart.draw_series(LineSeries::new(ends, BEST.stroke_width(2)))?;
            }
            Trend::Means(means) => {
                let points: Vec<(f64, f64)> = means
                    .iter()
                    .enumerate()
                    .filter_map(|(idx, m)| Some((idx as f64, (*m)?)))
                    .collect();
                chart.draw_series(LineSeries::new(points.clone(), BEST.stroke_width(2)))?;
                chart.draw_series(
                    points.into_iter().map(|p| TriangleMarker::new(p, 7, BEST.filled())),
                )?;
            }
            Trend::None => {}
        }
    }
    Ok(())
}

fn draw_heat_map<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, data: &HeatMap) -> Drawn<DB> {
    let (main, bar) = root.split_horizontally(700);
    let (n_x, n_y) = (data.x.labels.len(), data.y.labels.len());
    let mut chart = ChartBuilder::on(&main)
        .caption(
            format!("Mean {} over {} and {}", data.metric, data.x.param, data.y.param),
            (FONT, 18),
        )
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(110)
        .build_cartesian_2d(-0.5..n_x as f64 - 0.5, -0.5..n_y as f64 - 0.5)?;
    let x_axis = ParamAxis::Categories(data.x.labels.clone());
    let y_axis = ParamAxis::Categories(data.y.labels.clone());
    let x_format = |v: &f64| param_tick(&x_axis, *v);
    let y_format = |v: &f64| param_tick(&y_axis, *v);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(data.x.param.as_str())
        .y_desc(data.y.param.as_str())
        .x_labels(2 * n_x + 1)
        .y_labels(2 * n_y + 1)
        .x_label_formatter(&x_format)
        .y_label_formatter(&y_format)
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 15))
        .draw()?;
    let all: Vec<f64> = data.cells.iter().flatten().flatten().copied().collect();
    let (low, high) = (
        all.iter().copied().fold(f64::INFINITY, f64::min),
        all.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let shade = |v: f64| {
        let unit = if high > low { (v - low) / (high - low) } else { 0.5 };
        ViridisRGB.get_color(unit as f32)
    };
    for (row, cells) in data.cells.iter().enumerate() {
        for (col, cell) in cells.iter().enumerate() {
            let (x, y) = (col as f64, row as f64);
            let corners = [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)];
            match cell {
                Some(v) => {
                    chart.draw_series(std::iter::once(Rectangle::new(
                        corners,
                        shade(*v).filled(),
                    )))?;
                    let unit = if high > low { (v - low) / (high - low) } else { 0.5 };
                    let ink = if unit > 0.6 { BLACK } else { WHITE };
                    let text = format!("{} (n={})", tick(*v), data.counts[row][col]);
                    chart.draw_series(std::iter::once(Text::new(
                        text,
                        (x, y),
                        (FONT, 11)
                            .into_font()
                            .color(&ink)
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    )))?;
                }
                None => {
                    chart.draw_series(std::iter::once(Rectangle::new(
                        corners,
                        RGBColor(235, 235, 235).filled(),
                    )))?;
                }
            }
        }
    }
    draw_color_bar(&bar, low, high, &data.metric)
}

fn draw_color_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    low: f64,
    high: f64,
    metric: &str,
) -> Drawn<DB> {
    if !low.is_finite() || !high.is_finite() {
        return Ok(());
    }
    let (top, bottom, left) = (70i32, 520i32, 20i32);
    let steps = 60;
    for k in 0..steps {
        let unit = k as f64 / (steps - 1) as f64;
        let y0 = bottom - ((bottom - top) as f64 * (k + 1) as f64 / steps as f64) as i32;
        let y1 = bottom - ((bottom - top) as f64 * k as f64 / steps as f64) as i32;
        area.draw(&Rectangle::new(
            [(left, y0), (left + 24, y1)],
            ViridisRGB.get_color(unit as f32).filled(),
        ))?;
    }
    let style = (FONT, 13).into_font();
    area.draw(&Text::new(tick(high), (left, top - 20), style.clone()))?;
    area.draw(&Text::new(tick(low), (left, bottom + 6), style.clone()))?;
    area.draw(&Text::new(metric.to_owned(), (left - 6, top - 44), style))
}

fn draw_importance<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &[Importance],
) -> Drawn<DB> {
    let n = data.len().max(1);
    let max = data.iter().map(|i| i.score).fold(0.0, f64::max).max(1e-9);
    let names: Vec<String> = data.iter().map(|i| i.param.clone()).collect();
    let mut chart = ChartBuilder::on(root)
        .caption("Parameter importance (PED-ANOVA, top 10% vs all)", (FONT, 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(150)
        .build_cartesian_2d(0.0..max * 1.15, -0.5..n as f64 - 0.5)?;
    // The most important parameter on top.
    let y_axis = ParamAxis::Categories(names.iter().rev().cloned().collect());
    let y_format = |v: &f64| param_tick(&y_axis, *v);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("importance (share of the total)")
        .y_labels(2 * n + 1)
        .y_label_formatter(&y_format)
        .x_label_formatter(&|v| format!("{v:.2}"))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()?;
    chart.draw_series(data.iter().enumerate().map(|(idx, item)| {
        let y = (n - 1 - idx) as f64;
        Rectangle::new([(0.0, y - 0.35), (item.score, y + 0.35)], COMPLETE.filled())
    }))?;
    chart.draw_series(data.iter().enumerate().map(|(idx, item)| {
        let y = (n - 1 - idx) as f64;
        Text::new(
            format!("{:.3}", item.score),
            (item.score + max * 0.01, y),
            TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
        )
    }))?;
    Ok(())
}

fn draw_parallel<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, data: &Parallel) -> Drawn<DB> {
    let n = data.axes.len();
    let title = format!(
        "Parallel coordinates of {} complete trials (colour: objective, dark = low)",
        data.lines.len()
    );
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 18))
        .margin(20)
        .margin_left(40)
        .margin_right(60)
        .x_label_area_size(40)
        .build_cartesian_2d(-0.05..(n as f64 - 1.0) + 0.05, -0.04..1.04)?;
    let names: Vec<String> = data.axes.iter().map(|a| a.name.clone()).collect();
    let x_axis = ParamAxis::Categories(names);
    let x_format = |v: &f64| param_tick(&x_axis, *v);
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_y_axis()
        .x_labels(2 * n + 1)
        .x_label_formatter(&x_format)
        .label_style((FONT, 13))
        .draw()?;
    let (low, high) = data.value_range;
    for (positions, value) in &data.lines {
        let unit = if high > low { (value - low) / (high - low) } else { 0.5 };
        let color = ViridisRGB.get_color(unit as f32).mix(0.55);
        let points: Vec<(f64, f64)> =
            positions.iter().enumerate().filter_map(|(idx, p)| Some((idx as f64, (*p)?))).collect();
        chart.draw_series(std::iter::once(PathElement::new(points, color.stroke_width(1))))?;
    }
    for (idx, axis) in data.axes.iter().enumerate() {
        let x = idx as f64;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x, 0.0), (x, 1.0)],
            BLACK.stroke_width(2),
        )))?;
        chart.draw_series(axis.ticks.iter().map(|(pos, label)| {
            Text::new(
                label.clone(),
                (x, *pos),
                TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
            )
        }))?;
    }
    Ok(())
}

fn draw_timeline<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, data: &Timeline) -> Drawn<DB> {
    let n = data.workers.len().max(1);
    let end = data.bars.iter().map(|b| b.end).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(root)
        .caption("Timeline: when each trial ran, per worker", (FONT, 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(170)
        // Room on the right for the legend.
        .build_cartesian_2d(0.0..end * 1.2, -0.5..n as f64 - 0.5)?;
    let y_axis = ParamAxis::Categories(data.workers.clone());
    let y_format = |v: &f64| param_tick(&y_axis, *v);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("seconds since the first trial started")
        .x_label_formatter(&|v| tick(*v))
        .y_labels(2 * n + 1)
        .y_label_formatter(&y_format)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()?;
    let kinds: [(&str, RGBColor, BarFilter); 5] = [
        ("complete", COMPLETE, |b| b.state == TrialState::Complete && !b.confirm),
        ("pruned", PRUNED, |b| b.state == TrialState::Pruned),
        ("failed", FAILED, |b| b.state == TrialState::Fail),
        ("running", PALETTE[7], |b| matches!(b.state, TrialState::Running | TrialState::Waiting)),
        ("confirm run", CONFIRM, |b| b.state == TrialState::Complete && b.confirm),
    ];
    for (label, color, select) in kinds {
        if !data.bars.iter().any(select) {
            continue;
        }
        chart
            .draw_series(data.bars.iter().filter(|b| select(b)).map(|b| {
                let y = b.worker as f64;
                // A hair of white between back-to-back trials.
                let gap = end * 0.0015;
                let stop = (b.end - gap).max(b.start + gap);
                Rectangle::new([(b.start, y - 0.3), (stop, y + 0.3)], color.filled())
            }))?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x - 6, y - 5), (x + 6, y + 5)], color.filled()));
    }
    draw_legend(&mut chart)
}

fn draw_confirm<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &Confirmation,
) -> Drawn<DB> {
    let n = data.groups.len().max(1);
    let values = data.groups.iter().flat_map(|g| {
        let (m, h) = (g.ci.mean, if g.ci.half_width.is_finite() { g.ci.half_width } else { 0.0 });
        g.values.iter().copied().chain(g.original_value).chain([m - h, m + h])
    });
    let mut chart = ChartBuilder::on(root)
        .caption("Seeds and noise: mean and 95% confidence interval per configuration", (FONT, 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, padded(values))?;
    let labels: Vec<String> = data.groups.iter().map(|g| format!("trial {}", g.original)).collect();
    let x_axis = ParamAxis::Categories(labels);
    let x_format = |v: &f64| param_tick(&x_axis, *v);
    chart
        .configure_mesh()
        .x_labels(2 * n + 1)
        .x_label_formatter(&x_format)
        .y_label_formatter(&|v| tick(*v))
        .y_desc(data.metric.as_str())
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()?;
    for (idx, group) in data.groups.iter().enumerate() {
        let x = idx as f64;
        chart.draw_series(group.values.iter().enumerate().map(|(k, v)| {
            let offset = 0.3 * k as f64 / group.values.len().max(1) as f64;
            Circle::new((x - 0.15 + offset, *v), 3, COMPLETE.mix(0.7).filled())
        }))?;
        if let Some(original) = group.original_value {
            chart.draw_series(std::iter::once(Cross::new(
                (x - 0.25, original),
                5,
                PRUNED.stroke_width(2),
            )))?;
        }
        let (mean, half) = (group.ci.mean, group.ci.half_width);
        if half.is_finite() {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x + 0.2, mean - half), (x + 0.2, mean + half)],
                BEST.stroke_width(2),
            )))?;
        }
        chart.draw_series(std::iter::once(TriangleMarker::new(
            (x + 0.2, mean),
            7,
            BEST.filled(),
        )))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
