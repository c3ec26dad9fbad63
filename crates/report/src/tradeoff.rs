//! Trade-offs: the Pareto front of a study of several objectives, and the
//! compressed variants (`[compress]`) of a trial against their size and latency.
//! Pure functions of a [`StudyRecord`], like [`crate::data`].

use hpo_core::pareto;
use hpo_core::study::Direction;
use hpo_core::trial::{FrozenTrial, TrialState};

use crate::StudyRecord;
use crate::data::search_trials;

/// A scatter of two quantities with the front of its points: what the Pareto and
/// compression charts draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Tradeoff {
    /// The chart's title.
    pub title: String,
    /// What the x axis measures, and whether lower is better there.
    pub x: TradeoffAxis,
    /// What the y axis measures, and whether lower is better there.
    pub y: TradeoffAxis,
    /// The points, by series (a variant, or front / dominated).
    pub series: Vec<TradeoffSeries>,
    /// The front over every point, in increasing x: no other point is better on
    /// both axes.
    pub front: Vec<(f64, f64)>,
    /// The pick's point, when it is drawn.
    pub pick: Option<(f64, f64, u64)>,
}

/// One axis of a [`Tradeoff`].
#[derive(Debug, Clone, PartialEq)]
pub struct TradeoffAxis {
    /// The quantity (`pruned_weight_bytes`, `val_accuracy`).
    pub label: String,
    /// Which way is better.
    pub direction: Direction,
    /// Whether to draw it on a log scale (sizes and times spanning decades).
    pub log: bool,
}

/// Points of one kind in a [`Tradeoff`].
#[derive(Debug, Clone, PartialEq)]
pub struct TradeoffSeries {
    /// The legend's label.
    pub label: String,
    /// (x, y, trial number).
    pub points: Vec<(f64, f64, u64)>,
}

/// The Pareto section: every objective's name and direction, the front's trials
/// (best first by the first objective) and the chart of the first two objectives.
#[derive(Debug, Clone, PartialEq)]
pub struct ParetoSection {
    /// (metric, direction) per objective.
    pub objectives: Vec<(String, Direction)>,
    /// The front: trial number, values, parameters as text.
    pub front: Vec<(u64, Vec<f64>, String)>,
    /// Complete trials with every value.
    pub n_scored: usize,
    /// The first two objectives, front and dominated trials.
    pub chart: Tradeoff,
}

/// The Pareto front of a study of several objectives, or `None` for one
/// objective or no complete trial.
pub fn pareto_section(record: &StudyRecord) -> Option<ParetoSection> {
    if record.objectives.len() < 2 {
        return None;
    }
    let directions: Vec<Direction> = record.objectives.iter().map(|(_, d)| *d).collect();
    let search: Vec<&FrozenTrial> = search_trials(record).collect();
    let scored: Vec<&FrozenTrial> = search
        .iter()
        .copied()
        .filter(|t| {
            t.state == TrialState::Complete && t.objective_values().len() == directions.len()
        })
        .collect();
    let mut front = pareto::front(&scored, &directions);
    if front.is_empty() {
        return None;
    }
    let first = directions[0];
    front.sort_by(|a, b| {
        let order = a.objective_values()[0].total_cmp(&b.objective_values()[0]);
        if first == Direction::Maximize { order.reverse() } else { order }
    });
    let on_front = |t: &FrozenTrial| front.iter().any(|f| f.number == t.number);
    let point = |t: &FrozenTrial| (t.objective_values()[1], t.objective_values()[0], t.number);
    let series = vec![
        TradeoffSeries {
            label: "dominated trial".to_owned(),
            points: scored.iter().filter(|t| !on_front(t)).map(|t| point(t)).collect(),
        },
        TradeoffSeries {
            label: "Pareto front".to_owned(),
            points: front.iter().map(|t| point(t)).collect(),
        },
    ];
    let (x_name, y_name) = (&record.objectives[1].0, &record.objectives[0].0);
    let chart = Tradeoff {
        title: format!("Pareto front: {y_name} against {x_name}"),
        x: axis(x_name, directions[1], series.iter().flat_map(|s| s.points.iter().map(|p| p.0))),
        y: axis(y_name, directions[0], series.iter().flat_map(|s| s.points.iter().map(|p| p.1))),
        front: staircase(&series, directions[1], directions[0]),
        series,
        pick: front.first().map(|t| point(t)),
    };
    Some(ParetoSection {
        objectives: record.objectives.clone(),
        front: front
            .iter()
            .map(|t| (t.number, t.objective_values().to_vec(), params_text(t)))
            .collect(),
        n_scored: scored.len(),
        chart,
    })
}

/// An axis for `label`, on a log scale when its positive values span more than
/// two decades.
fn axis(label: &str, direction: Direction, values: impl Iterator<Item = f64>) -> TradeoffAxis {
    let (low, high) = values.fold((f64::INFINITY, 0f64), |(l, h), v| (l.min(v), h.max(v)));
    TradeoffAxis { label: label.to_owned(), direction, log: low > 0.0 && high / low > 100.0 }
}

/// The points no other point beats on both axes, in increasing x.
fn staircase(series: &[TradeoffSeries], x: Direction, y: Direction) -> Vec<(f64, f64)> {
    let points: Vec<pareto::Point> = series
        .iter()
        .flat_map(|s| s.points.iter())
        .map(|&(px, py, _)| pareto::Point {
            losses: vec![
                if x == Direction::Maximize { -px } else { px },
                if y == Direction::Maximize { -py } else { py },
            ],
            violation: 0.0,
        })
        .collect();
    let all: Vec<(f64, f64)> =
        series.iter().flat_map(|s| s.points.iter()).map(|&(px, py, _)| (px, py)).collect();
    let mut front: Vec<(f64, f64)> = all
        .iter()
        .zip(&points)
        .filter(|(_, p)| !points.iter().any(|q| q.dominates(p)))
        .map(|(xy, _)| *xy)
        .collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    front.dedup();
    front
}

fn params_text(trial: &FrozenTrial) -> String {
    let pairs = crate::data::params_text(trial);
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

/// One row of the compression table: a variant of the pick.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantRow {
    /// `f32` (the trained model, on the CPU), `int8`, `pruned`, `low_rank`.
    pub method: String,
    /// Stored numbers.
    pub parameters: f64,
    /// Bytes as stored.
    pub weight_bytes: f64,
    /// Milliseconds per example at batch 1.
    pub latency_ms: f64,
    /// Milliseconds per example in batches of 256.
    pub latency_ms_per_example: f64,
    /// Validation accuracy.
    pub val_accuracy: f64,
    /// Test accuracy.
    pub test_accuracy: f64,
}

/// The compression section: the pick's variants, and every trial's variants
/// against size and against latency.
#[derive(Debug, Clone, PartialEq)]
pub struct CompressionSection {
    /// The trial whose variants the table lists.
    pub trial: u64,
    /// Its variants, `f32` first.
    pub rows: Vec<VariantRow>,
    /// Validation accuracy against bytes, every trial's variants.
    pub size: Tradeoff,
    /// Validation accuracy against batch-1 latency, every trial's variants.
    pub latency: Tradeoff,
}

/// The methods a trial's measurements name (`f32` first), in a fixed order.
const METHODS: [&str; 4] = ["f32", "int8", "pruned", "low_rank"];

/// A trial's variant `method`, when it measured one.
fn variant_row(trial: &FrozenTrial, method: &str) -> Option<VariantRow> {
    let get = |what: &str| trial.user_attrs.get(&format!("{method}_{what}"))?.as_f64();
    Some(VariantRow {
        method: method.to_owned(),
        parameters: get("parameters")?,
        weight_bytes: get("weight_bytes")?,
        latency_ms: get("latency_ms")?,
        latency_ms_per_example: get("latency_ms_per_example")?,
        val_accuracy: get("val_accuracy")?,
        test_accuracy: get("test_accuracy")?,
    })
}

/// The compressed variants of `pick` in a table, and every complete trial's in
/// two charts; `None` when the study measured none (no `[compress]`).
pub fn compression_section(record: &StudyRecord, pick: Option<u64>) -> Option<CompressionSection> {
    let trials: Vec<&FrozenTrial> = search_trials(record)
        .filter(|t| t.state == TrialState::Complete && variant_row(t, "f32").is_some())
        .collect();
    let chosen = pick.and_then(|n| trials.iter().find(|t| t.number == n)).or(trials.first())?;
    let rows: Vec<VariantRow> = METHODS.iter().filter_map(|m| variant_row(chosen, m)).collect();
    let chart = |title: &str, x_label: &str, x_of: fn(&VariantRow) -> f64| {
        let series: Vec<TradeoffSeries> = METHODS
            .iter()
            .map(|m| TradeoffSeries {
                label: (*m).to_owned(),
                points: trials
                    .iter()
                    .filter_map(|t| {
                        let row = variant_row(t, m)?;
                        Some((x_of(&row), row.val_accuracy, t.number))
                    })
                    .collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        let pick = rows.first().map(|r| (x_of(r), r.val_accuracy, chosen.number));
        Tradeoff {
            title: title.to_owned(),
            x: axis(
                x_label,
                Direction::Minimize,
                series.iter().flat_map(|s| s.points.iter().map(|p| p.0)),
            ),
            y: TradeoffAxis {
                label: "val_accuracy".to_owned(),
                direction: Direction::Maximize,
                log: false,
            },
            front: staircase(&series, Direction::Minimize, Direction::Maximize),
            series,
            pick,
        }
    };
    Some(CompressionSection {
        trial: chosen.number,
        size: chart("Compressed variants: accuracy against size", "weight bytes", |r| {
            r.weight_bytes
        }),
        latency: chart(
            "Compressed variants: accuracy against latency (batch 1, CPU)",
            "latency_ms",
            |r| r.latency_ms,
        ),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::record;
    use hpo_core::trial::{AttrValue, TrialId};

    fn trial(number: u64, values: &[f64]) -> FrozenTrial {
        let mut it = FrozenTrial::new(TrialId(number as i64), number, TrialState::Complete);
        it.set_values(values);
        it
    }

    #[test]
    fn the_pareto_section_lists_the_front_best_first_and_charts_the_rest() {
        let mut study = record(vec![
            trial(0, &[0.90, 500.0]),
            trial(1, &[0.95, 900.0]),
            trial(2, &[0.85, 800.0]),
            trial(3, &[0.80, 100.0]),
        ]);
        study.objectives =
            vec![("acc".into(), Direction::Maximize), ("bytes".into(), Direction::Minimize)];
        let section = pareto_section(&study).unwrap();
        let numbers: Vec<u64> = section.front.iter().map(|f| f.0).collect();
        assert_eq!(numbers, [1, 0, 3]);
        assert_eq!(section.chart.series[0].points, [(800.0, 0.85, 2)]);
        assert_eq!(section.chart.front, [(100.0, 0.80), (500.0, 0.90), (900.0, 0.95)]);
        assert_eq!(section.chart.pick, Some((900.0, 0.95, 1)));
        // One objective: no such section.
        study.objectives.truncate(1);
        assert!(pareto_section(&study).is_none());
    }

    #[test]
    fn the_compression_section_reads_every_variant_of_the_pick() {
        let mut measured = trial(0, &[0.9]);
        for (method, bytes, acc) in
            [("f32", 4000.0, 0.97), ("int8", 1100.0, 0.968), ("pruned", 900.0, 0.95)]
        {
            for (what, value) in [
                ("parameters", bytes / 4.0),
                ("weight_bytes", bytes),
                ("latency_ms", 0.01),
                ("latency_ms_per_example", 0.002),
                ("val_accuracy", acc),
                ("test_accuracy", acc - 0.01),
            ] {
                measured.user_attrs.insert(format!("{method}_{what}"), AttrValue::Number(value));
            }
        }
        let study = record(vec![trial(1, &[0.8]), measured]);
        let section = compression_section(&study, Some(0)).unwrap();
        let methods: Vec<&str> = section.rows.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(methods, ["f32", "int8", "pruned"]);
        assert_eq!(section.rows[1].weight_bytes, 1100.0);
        // All three are on the size front: each is smaller and less accurate.
        assert_eq!(section.size.front.len(), 3);
        assert!(compression_section(&record(vec![trial(1, &[0.8])]), None).is_none());
    }
}
