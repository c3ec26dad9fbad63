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
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::data::{
    Confirmation, CurveFigure, HeatMap, History, NightTrend, Parallel, ParamAxis, RegPanel,
    Timeline, Trend,
};
use crate::importance::Importance;
use crate::tradeoff::Tradeoff;
use hpo_core::study::Direction;

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
    /// A nightly study's pick per night, with the budget used and failures.
    Nights(&'a NightTrend),
    /// Two quantities traded against each other, with their front.
    Tradeoff(&'a Tradeoff),
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

/// An f64 axis with the ticks hpo chose (round values; see [`Scale`]) instead of
/// plotters' own, which repeat labels on short integer axes and put log axes'
/// ticks at 10^-2.5.
struct Axis {
    linear: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.linear.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Light mesh lines only where the bold ones are.
        if hint.weight().allow_light_points() { Vec::new() } else { self.ticks.clone() }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.linear.range()
    }
}

/// A chart with f64 coordinates on both axes.
type Chart2d<'a, DB> = ChartContext<'a, DB, Cartesian2d<Axis, Axis>>;

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
/// The pick (the trial the report recommends), in every chart that shows it.
const PICK: RGBColor = RGBColor(230, 0, 126);
/// Width of the legend column beside a chart's plot: legends never cover data.
const LEGEND_WIDTH: u32 = 210;

/// How an axis is scaled, which decides its ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scale {
    /// Round steps of 1, 2 or 5 times a power of ten.
    Linear,
    /// Whole numbers only (trials, epochs), in round steps.
    Integer,
    /// Coordinates are log10 of the values: ticks at 1 and 3 (or 1, 2, 5, or 1)
    /// times powers of ten.
    Log,
    /// Choices at 0, 1, 2, ...
    Categories,
}

/// A round step of 1, 2 or 5 times a power of ten that cuts `span` into about
/// `parts` pieces.
fn round_step(span: f64, parts: f64) -> f64 {
    let raw = (span / parts).max(f64::MIN_POSITIVE);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|step| *step >= raw).unwrap_or(raw)
}

/// The ticks of an axis over `range` in its coordinates: round values, each once.
fn ticks_for(scale: Scale, range: &std::ops::Range<f64>) -> Vec<f64> {
    let (low, high) = (range.start.min(range.end), range.start.max(range.end));
    if !(low.is_finite() && high.is_finite()) {
        return Vec::new();
    }
    let stepped = |step: f64| -> Vec<f64> {
        let first = (low / step).ceil() as i64;
        let last = (high / step).floor() as i64;
        (first..=last).take(50).map(|k| k as f64 * step).collect()
    };
    match scale {
        Scale::Linear => stepped(round_step(high - low, 6.0)),
        Scale::Integer => stepped(round_step(high - low, 6.0).max(1.0).round()),
        Scale::Categories => stepped(1.0).into_iter().filter(|v| *v >= 0.0).collect(),
        Scale::Log => {
            let decades = high - low;
            let mantissas: &[f64] = if decades <= 1.3 {
                &[1.0, 2.0, 5.0]
            } else if decades <= 4.5 {
                &[1.0, 3.0]
            } else {
                &[1.0]
            };
            let mut out = Vec::new();
            for power in (low.floor() as i64)..=(high.ceil() as i64) {
                for m in mantissas {
                    let at = (m * 10f64.powi(power as i32)).log10();
                    if at >= low - 1e-9 && at <= high + 1e-9 {
                        out.push(at);
                    }
                }
            }
            out
        }
    }
}

/// Round tick values (in the values' own units) over `range`: on a log scale
/// when `log`, else linear; for axes drawn outside plotters' mesh (parallel
/// coordinates).
pub fn round_ticks(log: bool, range: std::ops::Range<f64>) -> Vec<f64> {
    if log {
        if !(range.start > 0.0 && range.end > 0.0) {
            return Vec::new();
        }
        let coords = range.start.log10()..range.end.log10();
        ticks_for(Scale::Log, &coords).into_iter().map(|v| 10f64.powf(v)).collect()
    } else {
        ticks_for(Scale::Linear, &range)
    }
}

/// An axis over `range` with round ticks for `scale`.
fn axis(scale: Scale, range: std::ops::Range<f64>) -> Axis {
    let ticks = ticks_for(scale, &range);
    Axis { linear: range.into(), ticks }
}

/// The label of a tick: one number format throughout (`tick`), log axes in the
/// parameter's units, whole numbers without decimals.
fn tick_label(scale: Scale, v: f64) -> String {
    match scale {
        Scale::Log => tick(10f64.powf(v)),
        Scale::Integer => format!("{}", v.round() as i64),
        _ => tick(v),
    }
}

/// What a legend entry shows beside its label.
#[derive(Debug, Clone, Copy)]
enum Mark {
    Dot(RGBColor),
    Cross(RGBColor),
    Line(RGBColor),
    Dashed(RGBColor),
    Bar(RGBColor),
    Triangle(RGBColor),
}

/// Draws a legend in its own column (`area`), outside the plot.
fn draw_side_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, Mark)],
) -> Drawn<DB> {
    let style = (FONT, 14).into_font();
    for (idx, (label, mark)) in entries.iter().enumerate() {
        let y = 60 + 24 * idx as i32;
        let x = 14;
        match *mark {
            Mark::Dot(c) => area.draw(&Circle::new((x, y), 4, c.filled()))?,
            Mark::Cross(c) => area.draw(&Cross::new((x, y), 4, c.stroke_width(2)))?,
            Mark::Line(c) => {
                area.draw(&PathElement::new(vec![(x - 9, y), (x + 9, y)], c.stroke_width(2)))?
            }
            Mark::Dashed(c) => {
                area.draw(&PathElement::new(vec![(x - 9, y), (x - 3, y)], c.stroke_width(2)))?;
                area.draw(&PathElement::new(vec![(x + 3, y), (x + 9, y)], c.stroke_width(2)))?
            }
            Mark::Bar(c) => {
                area.draw(&Rectangle::new([(x - 7, y - 5), (x + 7, y + 5)], c.filled()))?
            }
            Mark::Triangle(c) => area.draw(&TriangleMarker::new((x, y), 6, c.filled()))?,
        }
        area.draw(&Text::new(
            label.clone(),
            (x + 16, y),
            TextStyle::from(style.clone()).pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    Ok(())
}

/// Splits a chart's area into its plot and a legend column on the right.
fn with_legend_column<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
) -> (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>) {
    let width = root.dim_in_pixel().0;
    root.split_horizontally(width.saturating_sub(LEGEND_WIDTH))
}

/// A y range that shows where most trials are: values beyond Tukey's fences (1.5
/// interquartile ranges past the quartiles: diverged or broken trials) are left
/// out of the range, to be drawn at its edge and counted. Returns the range and
/// whether any value lies outside it.
fn zoomed(values: &[f64]) -> (std::ops::Range<f64>, bool) {
    let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.len() < 5 {
        return (padded(finite.into_iter()), false);
    }
    finite.sort_by(f64::total_cmp);
    let q = |p: f64| crate::stats::quantile(&finite, p);
    let (q1, q3) = (q(0.25), q(0.75));
    let fence = 1.5 * (q3 - q1);
    let (low, high) = (q1 - fence, q3 + fence);
    let inside: Vec<f64> = finite.iter().copied().filter(|v| *v >= low && *v <= high).collect();
    let clipped = inside.len() < finite.len();
    (padded(inside.into_iter()), clipped)
}

/// `v` held inside `range` (an outlier drawn at the edge).
fn clamp_to(range: &std::ops::Range<f64>, v: f64) -> f64 {
    v.clamp(range.start, range.end)
}

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
            Figure::History(_) | Figure::Curves(_) => (1100, 500),
            Figure::Parallel(p) => ((150 * p.axes.len() as u32).clamp(700, 1500), 520),
            Figure::Importance(items) => (800, (120 + 36 * items.len() as u32).max(260)),
            Figure::Timeline(t) => (1100, (140 + 40 * t.workers.len() as u32).max(300)),
            Figure::HeatMap(_) => (820, 620),
            Figure::Nights(_) => (1100, 560),
            Figure::Tradeoff(_) => (1000, 560),
            _ => (900, 500),
        }
    }

    /// The chart as SVG text; `pick` (the recommended trial's number) is
    /// highlighted wherever the chart shows it.
    pub fn svg(&self, name: &str, pick: Option<u64>) -> Result<String, DrawError> {
        register_fonts();
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, self.size()).into_drawing_area();
            self.draw_on(&root, pick)
                .and_then(|()| root.present())
                .map_err(|e| draw_error(name, e))?;
        }
        Ok(out)
    }

    /// Writes the chart as a PNG file (`pick` as for [`Figure::svg`]).
    pub fn png(&self, name: &str, path: &Path, pick: Option<u64>) -> Result<(), DrawError> {
        register_fonts();
        let root = BitMapBackend::new(path, self.size()).into_drawing_area();
        self.draw_on(&root, pick).and_then(|()| root.present()).map_err(|e| draw_error(name, e))
    }

    fn draw_on<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        pick: Option<u64>,
    ) -> Drawn<DB> {
        root.fill(&WHITE)?;
        match *self {
            Figure::History(it) => draw_history(root, it, pick),
            Figure::Curves(it) => draw_curves(root, it, pick),
            Figure::Regularization(it) => draw_regularization(root, it, pick),
            Figure::HeatMap(it) => draw_heat_map(root, it, pick),
            Figure::Importance(it) => draw_importance(root, it),
            Figure::Parallel(it) => draw_parallel(root, it, pick),
            Figure::Timeline(it) => draw_timeline(root, it, pick),
            Figure::Confirm(it) => draw_confirm(root, it, pick),
            Figure::Nights(it) => draw_nights(root, it),
            Figure::Tradeoff(it) => draw_tradeoff(root, it),
        }
    }
}

/// A scatter of two traded quantities: each series in its colour, the front as a
/// staircase through the points nothing beats on both axes, the pick ringed.
fn draw_tradeoff<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, data: &Tradeoff) -> Drawn<DB> {
    let (plot, side) = with_legend_column(root);
    let to = |log: bool| move |v: f64| if log { v.max(f64::MIN_POSITIVE).log10() } else { v };
    let (fx, fy) = (to(data.x.log), to(data.y.log));
    let all = || data.series.iter().flat_map(|s| s.points.iter());
    let x_range = padded(all().map(|p| fx(p.0)));
    let y_range = padded(all().map(|p| fy(p.1)));
    let scale = |log: bool| if log { Scale::Log } else { Scale::Linear };
    let (x_scale, y_scale) = (scale(data.x.log), scale(data.y.log));
    let mut chart = ChartBuilder::on(&plot)
        .caption(&data.title, (FONT, 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(axis(x_scale, x_range), axis(y_scale, y_range))?;
    let desc = |a: &crate::tradeoff::TradeoffAxis| {
        let better =
            if a.direction == Direction::Minimize { "lower is better" } else { "higher is better" };
        let log = if a.log { ", log scale" } else { "" };
        format!("{} ({better}{log})", a.label)
    };
    chart
        .configure_mesh()
        .x_desc(desc(&data.x))
        .y_desc(desc(&data.y))
        .x_label_formatter(&|v| tick_label(x_scale, *v))
        .y_label_formatter(&|v| tick_label(y_scale, *v))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()?;
    let mut legend = Vec::new();
    for (idx, series) in data.series.iter().enumerate() {
        let color = if series.label == "dominated trial" {
            PALETTE[7]
        } else {
            PALETTE[idx % PALETTE.len()]
        };
        chart.draw_series(
            series
                .points
                .iter()
                .map(|p| Circle::new((fx(p.0), fy(p.1)), 4, color.mix(0.8).filled())),
        )?;
        legend.push((series.label.clone(), Mark::Dot(color)));
    }
    // The front as a staircase: from each point level to the next one's x, then
    // up or down to it.
    let mut steps: Vec<(f64, f64)> = Vec::new();
    for &(x, y) in &data.front {
        if let Some(&(_, previous)) = steps.last() {
            steps.push((fx(x), previous));
        }
        steps.push((fx(x), fy(y)));
    }
    if !steps.is_empty() {
        chart.draw_series(LineSeries::new(steps, BEST.stroke_width(2)))?;
        legend.push(("front".to_owned(), Mark::Line(BEST)));
    }
    if let Some((x, y, number)) = data.pick {
        let at = (fx(x), fy(y));
        chart.draw_series([Circle::new(at, 9, PICK.stroke_width(3))])?;
        legend.push((format!("pick: trial {number}"), Mark::Dot(PICK)));
    }
    draw_side_legend(&side, &legend)
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
    let y_scale = if axes.log { Scale::Log } else { Scale::Linear };
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, title_size))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(axis(Scale::Integer, x_range), axis(y_scale, y_range))?;
    let y_format = |v: &f64| tick_label(y_scale, *v);
    let y_desc =
        if axes.log { format!("{} (log scale)", axes.metric) } else { axes.metric.to_owned() };
    chart
        .configure_mesh()
        .x_desc(axes.x_desc)
        .y_desc(y_desc)
        .y_label_formatter(&y_format)
        .x_label_formatter(&|v| tick_label(Scale::Integer, *v))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()?;
    Ok(chart)
}

fn draw_history<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &History,
    pick: Option<u64>,
) -> Drawn<DB> {
    let (plot, side) = with_legend_column(root);
    let values: Vec<f64> = data.points.iter().map(|p| p.value).collect();
    let log = wants_log(&values);
    let y = y_of(log);
    let max_number = data.points.iter().map(|p| p.number).max().unwrap_or(1) as f64;
    let x_range = -0.5..max_number + 0.5;
    let (y_range, clipped) = zoomed(&values.iter().map(|&v| y(v)).collect::<Vec<_>>());
    let axes = CountAxes { x_desc: "trial number", metric: &data.metric, log };
    let mut chart =
        count_chart(&plot, "Optimization history", 22, x_range, y_range.clone(), &axes)?;
    let inside = |v: f64| y_range.contains(&v);
    let mut legend = vec![("complete trial".to_owned(), Mark::Dot(COMPLETE))];
    chart.draw_series(
        data.points
            .iter()
            .filter(|p| p.state == TrialState::Complete && inside(y(p.value)))
            .map(|p| Circle::new((p.number as f64, y(p.value)), 4, COMPLETE.mix(0.8).filled())),
    )?;
    if data.points.iter().any(|p| p.state == TrialState::Pruned) {
        chart.draw_series(
            data.points
                .iter()
                .filter(|p| p.state == TrialState::Pruned && inside(y(p.value)))
                .map(|p| Cross::new((p.number as f64, y(p.value)), 4, PRUNED.stroke_width(2))),
        )?;
        legend.push(("pruned (last value)".to_owned(), Mark::Cross(PRUNED)));
    }
    if clipped {
        let outside: Vec<&crate::data::HistoryPoint> =
            data.points.iter().filter(|p| !inside(y(p.value))).collect();
        chart.draw_series(outside.iter().map(|p| {
            TriangleMarker::new(
                (p.number as f64, clamp_to(&y_range, y(p.value))),
                5,
                PALETTE[7].filled(),
            )
        }))?;
        legend.push((
            format!("{} outlier(s) at the edge", outside.len()),
            Mark::Triangle(PALETTE[7]),
        ));
    }
    let mut steps: Vec<(f64, f64)> = Vec::new();
    for (idx, &(number, best)) in data.best_so_far.iter().enumerate() {
        let best = clamp_to(&y_range, y(best));
        if idx > 0 {
            steps.push((number as f64, steps[steps.len() - 1].1));
        }
        steps.push((number as f64, best));
    }
    if let Some(&(_, last)) = steps.last() {
        steps.push((max_number + 0.5, last));
    }
    chart.draw_series(LineSeries::new(steps, BEST.stroke_width(2)))?;
    legend.push(("best so far".to_owned(), Mark::Line(BEST)));
    if let Some(point) = pick
        .and_then(|n| data.points.iter().find(|p| p.number == n && p.state == TrialState::Complete))
    {
        let at = (point.number as f64, clamp_to(&y_range, y(point.value)));
        chart.draw_series([
            Circle::new(at, 9, PICK.stroke_width(3)),
            Circle::new(at, 4, PICK.filled()),
        ])?;
        legend.push((format!("pick: trial {}", point.number), Mark::Dot(PICK)));
    }
    draw_side_legend(&side, &legend)
}

fn draw_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &CurveFigure,
    pick: Option<u64>,
) -> Drawn<DB> {
    let (plot, side) = with_legend_column(root);
    let values: Vec<f64> = data.lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).collect();
    let log = data.metric.contains("loss") && wants_log(&values);
    let y = y_of(log);
    let max_epoch = data.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)).max().unwrap_or(1);
    let title = format!("Learning curves: {}", data.metric);
    let x_range = 0.0..max_epoch as f64 + 0.5;
    let (y_range, clipped) = zoomed(&values.iter().map(|&v| y(v)).collect::<Vec<_>>());
    let axes = CountAxes { x_desc: "epoch", metric: &data.metric, log };
    let mut chart = count_chart(&plot, &title, 18, x_range, y_range.clone(), &axes)?;
    let mut legend = vec![
        ("validation".to_owned(), Mark::Line(BLACK)),
        ("training".to_owned(), Mark::Dashed(BLACK)),
        ("best epoch".to_owned(), Mark::Dot(BLACK)),
    ];
    for line in &data.lines {
        let is_pick = pick == Some(line.trial);
        let color = if is_pick { PICK } else { PALETTE[(line.rank - 1) % PALETTE.len()] };
        let width = if is_pick { 4 } else { 2 };
        let points: Vec<(f64, f64)> =
            line.points.iter().map(|&(s, v)| (s as f64, clamp_to(&y_range, y(v)))).collect();
        if line.split == "train" {
            chart.draw_series(DashedLineSeries::new(points, 6, 4, color.stroke_width(width)))?;
        } else {
            chart.draw_series(LineSeries::new(points, color.stroke_width(width)))?;
            let label = if is_pick {
                format!("#{} trial {} (pick)", line.rank, line.trial)
            } else {
                format!("#{} trial {}", line.rank, line.trial)
            };
            legend.push((label, Mark::Line(color)));
        }
        if let Some((step, value)) = line.best {
            chart.draw_series(std::iter::once(Circle::new(
                (step as f64, clamp_to(&y_range, y(value))),
                5,
                color.filled(),
            )))?;
        }
    }
    if clipped {
        legend.push(("outliers held at the edge".to_owned(), Mark::Triangle(PALETTE[7])));
    }
    draw_side_legend(&side, &legend)
}

/// The x coordinate of a parameter value on a chart (log10 on log axes).
fn param_x(axis: &ParamAxis, x: f64) -> f64 {
    match axis {
        ParamAxis::Log { .. } => x.log10(),
        _ => x,
    }
}

fn param_scale(axis: &ParamAxis) -> Scale {
    match axis {
        ParamAxis::Linear { .. } => Scale::Linear,
        ParamAxis::Log { .. } => Scale::Log,
        ParamAxis::Categories(_) => Scale::Categories,
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
        ParamAxis::Categories(choices) => {
            let idx = v.round();
            if (v - idx).abs() < 1e-6 && idx >= 0.0 {
                choices.get(idx as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        }
        other => tick_label(param_scale(other), v),
    }
}

/// An axis over the choices `names` (one tick each).
fn category_axis(n: usize) -> Axis {
    axis(Scale::Categories, -0.5..n.max(1) as f64 - 0.5)
}

/// R² below which a fitted line is drawn faint and called no clear trend.
pub const WEAK_TREND_R2: f64 = 0.1;

fn draw_regularization<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &RegPanel,
    pick: Option<u64>,
) -> Drawn<DB> {
    let (title, body) = root.split_vertically(40);
    title.draw(&Text::new(
        format!("Regularization: {} against the generalization gap and the objective", data.param),
        (12, 10),
        (FONT, 18).into_font(),
    ))?;
    let panels = body.split_evenly((1, 2));
    let gaps: Vec<(u64, f64, f64)> =
        data.points.iter().filter_map(|p| Some((p.number, p.x, p.gap?))).collect();
    let values: Vec<(u64, f64, f64)> =
        data.points.iter().map(|p| (p.number, p.x, p.value)).collect();
    for (area, (label, points, trend)) in panels.iter().zip([
        ("generalization gap at best epoch", &gaps, &data.gap_trend),
        (data.metric.as_str(), &values, &data.value_trend),
    ]) {
        let x_axis = &data.axis;
        let x_scale = param_scale(x_axis);
        let (y_range, _) = zoomed(&points.iter().map(|p| p.2).collect::<Vec<_>>());
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(
                axis(x_scale, param_range(x_axis)),
                axis(Scale::Linear, y_range.clone()),
            )?;
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
            .x_label_formatter(&x_format)
            .y_label_formatter(&|v| tick(*v))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .draw()?;
        let jitter = |number: u64, x: f64| {
            if categorical { x + ((number * 37 % 17) as f64 / 17.0 - 0.5) * 0.3 } else { x }
        };
        let at = |p: &(u64, f64, f64)| (jitter(p.0, param_x(x_axis, p.1)), clamp_to(&y_range, p.2));
        chart.draw_series(
            points.iter().map(|p| Circle::new(at(p), 3, COMPLETE.mix(0.6).filled())),
        )?;
        match trend {
            Trend::Line(fit) => {
                let range = param_range(x_axis);
                let ends = [range.start, range.end].map(|x| {
                    let raw =
                        if matches!(x_axis, ParamAxis::Log { .. }) { 10f64.powf(x) } else { x };
                    (x, clamp_to(&y_range, trend.at(x_axis, raw).unwrap_or(f64::NAN)))
                });
                let weak = fit.r2 < WEAK_TREND_R2;
                let (style, note) = if weak {
                    (
                        BEST.mix(0.25).stroke_width(2),
                        format!("no clear trend (R² {})", tick(fit.r2)),
                    )
                } else {
                    (BEST.stroke_width(2), format!("trend (R² {})", tick(fit.r2)))
                };
                if weak {
                    chart.draw_series(DashedLineSeries::new(ends, 8, 6, style))?;
                } else {
                    chart.draw_series(LineSeries::new(ends, style))?;
                }
                let width = range.end - range.start;
                chart.draw_series(std::iter::once(Text::new(
                    note,
                    (range.start + width * 0.02, y_range.end),
                    TextStyle::from((FONT, 13).into_font())
                        .color(&if weak { PALETTE[7] } else { BEST })
                        .pos(Pos::new(HPos::Left, VPos::Top)),
                )))?;
            }
            Trend::Means(_) => {
                // Each choice's mean with its 95% interval: choices are not ordered,
                // so nothing joins them.
                let n = match x_axis {
                    ParamAxis::Categories(choices) => choices.len(),
                    _ => 0,
                };
                for choice in 0..n {
                    let ys: Vec<f64> = points
                        .iter()
                        .filter(|p| (p.1 - choice as f64).abs() < 1e-9)
                        .map(|p| p.2)
                        .collect();
                    let Some(ci) = crate::stats::mean_ci95(&ys) else { continue };
                    let x = choice as f64 + 0.28;
                    if ci.half_width.is_finite() {
                        chart.draw_series(std::iter::once(PathElement::new(
                            vec![
                                (x, clamp_to(&y_range, ci.mean - ci.half_width)),
                                (x, clamp_to(&y_range, ci.mean + ci.half_width)),
                            ],
                            BEST.stroke_width(2),
                        )))?;
                    }
                    chart.draw_series(std::iter::once(TriangleMarker::new(
                        (x, clamp_to(&y_range, ci.mean)),
                        6,
                        BEST.filled(),
                    )))?;
                }
            }
            Trend::None => {}
        }
        if let Some(p) = pick.and_then(|n| points.iter().find(|p| p.0 == n)) {
            chart.draw_series([Circle::new(at(p), 8, PICK.stroke_width(3))])?;
        }
    }
    Ok(())
}

fn draw_heat_map<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &HeatMap,
    pick: Option<u64>,
) -> Drawn<DB> {
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
        .build_cartesian_2d(category_axis(n_x), category_axis(n_y))?;
    let x_axis = ParamAxis::Categories(data.x.labels.clone());
    let y_axis = ParamAxis::Categories(data.y.labels.clone());
    let x_format = |v: &f64| param_tick(&x_axis, *v);
    let y_format = |v: &f64| param_tick(&y_axis, *v);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(data.x.param.as_str())
        .y_desc(data.y.param.as_str())
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
    if let Some(&(_, col, row)) = data.trial_cells.iter().find(|c| Some(c.0) == pick) {
        let (x, y) = (col as f64, row as f64);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x - 0.48, y - 0.48), (x + 0.48, y + 0.48)],
            PICK.stroke_width(4),
        )))?;
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
    let max = data
        .iter()
        .map(|i| i.interval.map_or(i.score, |(_, high)| high.max(i.score)))
        .fold(0.0, f64::max)
        .max(1e-9);
    let names: Vec<String> = data.iter().map(|i| i.param.clone()).collect();
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Parameter importance (PED-ANOVA, top 10% vs all; bars: 90% bootstrap interval)",
            (FONT, 17),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(150)
        // Room on the right for each bar's numbers.
        .build_cartesian_2d(axis(Scale::Linear, 0.0..max * 1.75), category_axis(n))?;
    // The most important parameter on top.
    let y_axis = ParamAxis::Categories(names.iter().rev().cloned().collect());
    let y_format = |v: &f64| param_tick(&y_axis, *v);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("importance (share of the total)")
        .y_label_formatter(&y_format)
        .x_label_formatter(&|v| tick(*v))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()?;
    chart.draw_series(data.iter().enumerate().map(|(idx, item)| {
        let y = (n - 1 - idx) as f64;
        Rectangle::new([(0.0, y - 0.3), (item.score, y + 0.3)], COMPLETE.filled())
    }))?;
    for (idx, item) in data.iter().enumerate() {
        let y = (n - 1 - idx) as f64;
        let Some((low, high)) = item.interval else { continue };
        chart.draw_series([
            PathElement::new(vec![(low, y), (high, y)], BLACK.stroke_width(2)),
            PathElement::new(vec![(low, y - 0.15), (low, y + 0.15)], BLACK.stroke_width(2)),
            PathElement::new(vec![(high, y - 0.15), (high, y + 0.15)], BLACK.stroke_width(2)),
        ])?;
    }
    chart.draw_series(data.iter().enumerate().map(|(idx, item)| {
        let y = (n - 1 - idx) as f64;
        let right = item.interval.map_or(item.score, |(_, high)| high.max(item.score));
        let text = match item.interval {
            Some((low, high)) => format!("{} ({} to {})", tick(item.score), tick(low), tick(high)),
            None => tick(item.score),
        };
        Text::new(
            text,
            (right + max * 0.01, y + 0.35),
            TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
        )
    }))?;
    Ok(())
}

fn draw_parallel<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &Parallel,
    pick: Option<u64>,
) -> Drawn<DB> {
    let n = data.axes.len();
    let title = format!(
        "Parallel coordinates of {} complete trials (colour: rank, dark = best; pick in magenta)",
        data.lines.len()
    );
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 17))
        .margin(20)
        .margin_left(40)
        .margin_right(60)
        .x_label_area_size(40)
        .build_cartesian_2d(
            axis(Scale::Categories, -0.05..(n as f64 - 1.0) + 0.05),
            axis(Scale::Linear, -0.04..1.04),
        )?;
    let names: Vec<String> = data.axes.iter().map(|a| a.name.clone()).collect();
    let x_axis = ParamAxis::Categories(names);
    let x_format = |v: &f64| param_tick(&x_axis, *v);
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_y_axis()
        .x_label_formatter(&x_format)
        .label_style((FONT, 13))
        .draw()?;
    let worst = data.lines.iter().map(|l| l.rank).max().unwrap_or(1).max(2);
    let path = |line: &crate::data::ParallelLine| -> Vec<(f64, f64)> {
        line.positions.iter().enumerate().filter_map(|(idx, p)| Some((idx as f64, (*p)?))).collect()
    };
    for line in data.lines.iter().filter(|l| Some(l.number) != pick) {
        // Viridis over rank (a perceptual scale): the best dark, the worst light.
        let unit = (line.rank - 1) as f64 / (worst - 1) as f64;
        let color = ViridisRGB.get_color((unit * 0.9) as f32).mix(0.6);
        chart.draw_series(std::iter::once(PathElement::new(path(line), color.stroke_width(1))))?;
    }
    if let Some(line) = data.lines.iter().find(|l| Some(l.number) == pick) {
        chart.draw_series(std::iter::once(PathElement::new(path(line), PICK.stroke_width(3))))?;
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

fn draw_timeline<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &Timeline,
    pick: Option<u64>,
) -> Drawn<DB> {
    let (plot, side) = with_legend_column(root);
    let n = data.workers.len().max(1);
    let end = data.bars.iter().map(|b| b.end).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&plot)
        .caption("Timeline: when each trial ran, per worker", (FONT, 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(170)
        .build_cartesian_2d(axis(Scale::Linear, 0.0..end * 1.02), category_axis(n))?;
    let y_axis = ParamAxis::Categories(data.workers.clone());
    let y_format = |v: &f64| param_tick(&y_axis, *v);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("seconds since the first trial started")
        .x_label_formatter(&|v| tick(*v))
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
    // A hair of white between back-to-back trials.
    let gap = end * 0.0015;
    let bar = |b: &crate::data::TimelineBar| {
        let y = b.worker as f64;
        let stop = (b.end - gap).max(b.start + gap);
        [(b.start, y - 0.3), (stop, y + 0.3)]
    };
    let mut legend = Vec::new();
    for (label, color, select) in kinds {
        if !data.bars.iter().any(select) {
            continue;
        }
        chart.draw_series(
            data.bars.iter().filter(|b| select(b)).map(|b| Rectangle::new(bar(b), color.filled())),
        )?;
        legend.push((label.to_owned(), Mark::Bar(color)));
    }
    if let Some(b) = data.bars.iter().find(|b| Some(b.number) == pick && !b.confirm) {
        chart.draw_series(std::iter::once(Rectangle::new(bar(b), PICK.stroke_width(3))))?;
        legend.push((format!("pick: trial {}", b.number), Mark::Bar(PICK)));
    }
    draw_side_legend(&side, &legend)
}

fn draw_confirm<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &Confirmation,
    pick: Option<u64>,
) -> Drawn<DB> {
    let n = data.groups.len().max(1);
    let values: Vec<f64> = data
        .groups
        .iter()
        .flat_map(|g| {
            let (m, h) =
                (g.ci.mean, if g.ci.half_width.is_finite() { g.ci.half_width } else { 0.0 });
            g.values.iter().copied().chain(g.original_value).chain([m - h, m + h])
        })
        .collect();
    let y_range = padded(values.into_iter());
    let mut chart = ChartBuilder::on(root)
        .caption("Seeds and noise: mean and 95% confidence interval per configuration", (FONT, 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(category_axis(n), axis(Scale::Linear, y_range))?;
    let labels: Vec<String> = data
        .groups
        .iter()
        .map(|g| {
            if Some(g.original) == pick {
                format!("trial {} (pick)", g.original)
            } else {
                format!("trial {}", g.original)
            }
        })
        .collect();
    category_mesh(&mut chart, &ParamAxis::Categories(labels), &data.metric)?;
    for (idx, group) in data.groups.iter().enumerate() {
        let x = idx as f64;
        let color = if Some(group.original) == pick { PICK } else { BEST };
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
                color.stroke_width(2),
            )))?;
        }
        chart.draw_series(std::iter::once(TriangleMarker::new(
            (x + 0.2, mean),
            7,
            color.filled(),
        )))?;
    }
    Ok(())
}

/// The grid and labels of a chart whose x axis is `x_axis`'s categories.
fn category_mesh<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<Axis, Axis>>,
    x_axis: &ParamAxis,
    y_desc: &str,
) -> Drawn<DB> {
    let x_format = |v: &f64| param_tick(x_axis, *v);
    chart
        .configure_mesh()
        .x_label_formatter(&x_format)
        .y_label_formatter(&|v| tick(*v))
        .y_desc(y_desc)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
}

/// Above, each night's pick (the confirmed mean with its 95% interval, a hollow
/// marker while provisional, red when the night was worse than the night before
/// beyond the seed noise) joined night to night; below, each night's trials, the
/// failed ones in red on top.
fn draw_nights<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, data: &NightTrend) -> Drawn<DB> {
    let n = data.nights.len().max(1);
    let (top, bottom) = root.split_vertically(root.dim_in_pixel().1 * 2 / 3);
    let values: Vec<f64> = data
        .nights
        .iter()
        .filter_map(|night| {
            let value = night.value?;
            let half = night.ci95.filter(|h| h.is_finite()).unwrap_or(0.0);
            Some([value - half, value + half])
        })
        .flatten()
        .collect();
    let x_axis = ParamAxis::Categories(data.nights.iter().map(|n| n.date.clone()).collect());
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!("Nights of {}: the pick's {} with its 95% interval", data.base, data.metric),
            (FONT, 18),
        )
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(72)
        .build_cartesian_2d(category_axis(n), axis(Scale::Linear, padded(values.into_iter())))?;
    category_mesh(&mut chart, &x_axis, &data.metric)?;
    let points: Vec<(f64, f64)> = data
        .nights
        .iter()
        .enumerate()
        .filter_map(|(idx, night)| Some((idx as f64, night.value?)))
        .collect();
    chart.draw_series(LineSeries::new(points, PICK.stroke_width(2)))?;
    for (idx, night) in data.nights.iter().enumerate() {
        let Some(value) = night.value else { continue };
        let x = idx as f64;
        // A night worse than the night before beyond the seed noise is red.
        let worse = night.verdict.as_deref() == Some("worse_beyond_noise");
        let color = if worse { FAILED } else { PICK };
        match night.ci95.filter(|h| h.is_finite()) {
            Some(half) => {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(x, value - half), (x, value + half)],
                    color.stroke_width(2),
                )))?;
                chart.draw_series(std::iter::once(Circle::new((x, value), 6, color.filled())))?;
            }
            None => {
                chart.draw_series(std::iter::once(Circle::new(
                    (x, value),
                    6,
                    color.stroke_width(2),
                )))?;
            }
        }
    }
    let most = data.nights.iter().map(|night| night.trials).max().unwrap_or(1).max(1);
    let mut bars = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(72)
        .build_cartesian_2d(category_axis(n), axis(Scale::Linear, 0.0..most as f64 * 1.1))?;
    category_mesh(&mut bars, &x_axis, "trials (failed in red)")?;
    for (idx, night) in data.nights.iter().enumerate() {
        let x = idx as f64;
        let (used, failed) = (night.trials as f64, night.failed as f64);
        bars.draw_series(std::iter::once(Rectangle::new(
            [(x - 0.3, 0.0), (x + 0.3, used - failed)],
            COMPLETE.mix(0.8).filled(),
        )))?;
        if night.failed > 0 {
            bars.draw_series(std::iter::once(Rectangle::new(
                [(x - 0.3, used - failed), (x + 0.3, used)],
                FAILED.filled(),
            )))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
