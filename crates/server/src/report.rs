//! The report's computations as JSON, from `hpo_report::sections` and
//! `hpo_report::data`: the same functions the HTML report draws, over the same
//! `StudyRecord`.
//!
//! - [`report_json`]: `GET /api/v1/studies/{study}/report` — the recommendation,
//!   leaderboard, importance, regularization panels, generalization gaps, learning
//!   curves, timeline, confirm runs and, when asked, the comparison;
//! - [`history_json`]: `GET /api/v1/studies/{study}/history` — every trial's value
//!   and the best so far: the dashboard's first chart;
//! - [`table_json`]: `GET /api/v1/studies/{study}/table` — every trial as a compact
//!   row and the parallel coordinates: what the dashboard hovers and brushes.
//!
//! The dashboard's views (history, table) round values to 6 significant digits and
//! positions to 4 decimals: what a chart or a tooltip shows, in fewer bytes. The
//! report keeps every digit.

use hpo_core::trial::{AttrValue, TrialState, attr};
use hpo_report::data::{
    Comparison, Confirmation, CurveFigure, History, LeaderRow, Overview, PARALLEL_MAX_LINES,
    ParamAxis, Recommendation, RegPanel, Side, Timeline, Trend, Verdict, gap_at_best, ranked,
};
use hpo_report::importance::Importance;
use hpo_report::stats::MeanCi;
use hpo_report::{Sections, StudyRecord};
use hpo_store::json::number;
use serde_json::{Map, Value, json};

/// Text pairs (`params`, `test`) as a JSON object.
fn object<V: Clone + Into<Value>>(pairs: &[(String, V)]) -> Value {
    Value::Object(pairs.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect())
}

fn optional(value: Option<f64>) -> Value {
    value.map_or(Value::Null, number)
}

/// `v` to 6 significant digits.
fn short(v: f64) -> Value {
    number(format!("{v:.5e}").parse().unwrap_or(v))
}

/// A position in [0, 1] to 4 decimals.
fn position(at: Option<f64>) -> Value {
    at.map_or(Value::Null, |p| number((p * 1e4).round() / 1e4))
}

fn overview(it: &Overview) -> Value {
    json!({
        "trials": it.n_trials,
        "complete": it.n_complete,
        "pruned": it.n_pruned,
        "fail": it.n_fail,
        "unfinished": it.n_unfinished,
        "early_stopped": it.n_early_stopped,
        "confirm_runs": it.n_confirm,
        "epochs": it.epochs,
        "compute_seconds": number(it.compute_seconds),
        "wall_seconds": number(it.wall_seconds),
    })
}

fn recommendation(it: &Recommendation) -> Value {
    json!({
        "trial": it.number,
        "params": object(&it.params),
        "value": number(it.value),
        "provisional": it.is_provisional(),
        "basis": it.basis(),
        "reasons": it.reasons,
        "confirmed": it.confirmed.as_ref().map(|ci| json!({
            "runs": ci.n,
            "mean": number(ci.mean),
            "std": number(ci.std),
            "ci95_half_width": number(ci.half_width),
        })),
        "runner_up": it.runner_up.map(|(trial, value)| json!({"trial": trial, "value": number(value)})),
        "welch_p": optional(it.welch_p),
    })
}

fn leader(row: &LeaderRow) -> Value {
    let pairs: Map<String, Value> = row
        .pairs
        .iter()
        .map(|p| (p.name.clone(), json!({"train": optional(p.train), "val": optional(p.val)})))
        .collect();
    let test: Map<String, Value> = row.test.iter().map(|(k, v)| (k.clone(), number(*v))).collect();
    json!({
        "rank": row.rank,
        "trial": row.number,
        "value": number(row.value),
        "params": object(&row.params),
        "best_step": row.best_step,
        "epochs": row.epochs,
        "train_val": pairs,
        "gap": optional(row.gap),
        "test": test,
        "ended_by": row.ended_by,
    })
}

fn importance(it: &Importance) -> Value {
    json!({
        "param": it.param,
        "score": number(it.score),
        "interval": it.interval.map(|(lo, hi)| [number(lo), number(hi)]),
    })
}

fn axis(it: &ParamAxis) -> Value {
    match it {
        ParamAxis::Linear { low, high } => {
            json!({"scale": "linear", "low": number(*low), "high": number(*high)})
        }
        ParamAxis::Log { low, high } => {
            json!({"scale": "log", "low": number(*low), "high": number(*high)})
        }
        ParamAxis::Categories(choices) => json!({"scale": "categories", "choices": choices}),
    }
}

fn trend(it: &Trend) -> Value {
    match it {
        Trend::Line(fit) => json!({
            "kind": "line",
            "slope": number(fit.slope),
            "intercept": number(fit.intercept),
            "r2": number(fit.r2),
        }),
        Trend::Means(means) => json!({
            "kind": "means",
            "means": means.iter().map(|m| optional(*m)).collect::<Vec<_>>(),
        }),
        Trend::None => json!({"kind": "none"}),
    }
}

/// Most points a chart of the dashboard gets: beyond, the server sends an even
/// sample (the pick and the best trials always among them) and says how many
/// there were.
pub const MAX_POINTS: usize = 2000;

/// At most [`MAX_POINTS`] indices of `n` items: all of them, or an even stride that
/// keeps the first and every index `keep` says to keep.
fn sample(n: usize, keep: impl Fn(usize) -> bool) -> Vec<usize> {
    if n <= MAX_POINTS {
        return (0..n).collect();
    }
    let stride = n.div_ceil(MAX_POINTS);
    (0..n).filter(|&i| i % stride == 0 || keep(i)).collect()
}

fn panel(it: &RegPanel, keep: &[u64]) -> Value {
    let kept = sample(it.points.len(), |i| keep.contains(&it.points[i].number));
    let points: Vec<Value> = kept
        .into_iter()
        .map(|i| &it.points[i])
        .map(|p| json!({"trial": p.number, "x": number(p.x), "gap": optional(p.gap), "value": number(p.value)}))
        .collect();
    json!({
        "param": it.param,
        "metric": it.metric,
        "axis": axis(&it.axis),
        "points_total": it.points.len(),
        "points": points,
        "gap_trend": trend(&it.gap_trend),
        "value_trend": trend(&it.value_trend),
    })
}

fn curves(it: &CurveFigure) -> Value {
    let lines: Vec<Value> = it
        .lines
        .iter()
        .map(|line| {
            let points: Vec<Value> =
                line.points.iter().map(|(s, v)| json!([s, number(*v)])).collect();
            json!({
                "trial": line.trial,
                "rank": line.rank,
                "split": line.split,
                "points": points,
                "best": line.best.map(|(s, v)| json!([s, number(v)])),
            })
        })
        .collect();
    json!({"metric": it.metric, "lines": lines})
}

/// A trial state as one letter: Complete, Pruned, Fail, Running, Waiting.
pub fn state_letter(state: TrialState) -> &'static str {
    match state {
        TrialState::Complete => "C",
        TrialState::Pruned => "P",
        TrialState::Fail => "F",
        TrialState::Running => "R",
        TrialState::Waiting => "W",
    }
}

fn timeline(it: &Timeline, keep: &[u64]) -> Value {
    // The latest bars when there are too many: what is running now matters most.
    let skip = it.bars.len().saturating_sub(MAX_POINTS);
    let bars: Vec<Value> = it
        .bars
        .iter()
        .enumerate()
        .filter(|(i, bar)| *i >= skip || keep.contains(&bar.number))
        .map(|(_, bar)| {
            json!([
                bar.number,
                bar.worker,
                number(bar.start),
                number(bar.end),
                state_letter(bar.state),
                bar.confirm
            ])
        })
        .collect();
    json!({"workers": it.workers, "bars_total": it.bars.len(), "bars": bars})
}

fn mean_ci(ci: &MeanCi) -> Value {
    json!({
        "runs": ci.n,
        "mean": number(ci.mean),
        "std": number(ci.std),
        "ci95_half_width": number(ci.half_width),
    })
}

fn confirmation(it: &Confirmation) -> Value {
    let groups: Vec<Value> = it
        .groups
        .iter()
        .map(|g| {
            json!({
                "trial": g.original,
                "params": object(&g.params),
                "original_value": optional(g.original_value),
                "values": g.values.iter().map(|v| number(*v)).collect::<Vec<_>>(),
                "ci": mean_ci(&g.ci),
            })
        })
        .collect();
    json!({
        "metric": it.metric,
        "groups": groups,
        "welch_p": it.best_vs_runner_up.as_ref().map(|w| number(w.p_value)),
        "noise": optional(it.noise()),
        "distinguishable": it.distinguishable(),
    })
}

fn side(it: &Side) -> Value {
    json!({
        "label": it.label,
        "complete": it.n_complete,
        "best": it.best.as_ref().map(|b| json!({
            "trial": b.number,
            "value": number(b.value),
            "params": object(&b.params),
            "gap": optional(b.gap),
            "confirmed": b.confirmed.as_ref().map(mean_ci),
        })),
    })
}

fn comparison(it: &Comparison) -> Value {
    let verdict = match it.verdict {
        Verdict::Better => "better",
        Verdict::Same => "same",
        Verdict::WorseWithinNoise => "worse_within_noise",
        Verdict::WorseBeyondNoise => "worse_beyond_noise",
        Verdict::Unknown => "unknown",
    };
    let moved: Vec<Value> = it.moved.iter().map(|(name, a, b)| json!([name, a, b])).collect();
    json!({
        "a": side(&it.a),
        "b": side(&it.b),
        "moved": moved,
        "noise": optional(it.noise),
        "verdict": verdict,
        "direction": it.direction.to_string(),
        "metric": it.metric,
    })
}

/// The report of `record` as JSON.
pub fn report_json(record: &StudyRecord, sections: &Sections) -> Value {
    // The pick and the leaderboard stay in every sampled chart.
    let mut keep: Vec<u64> = sections.leaderboard.iter().map(|row| row.number).collect();
    keep.extend(sections.recommendation.as_ref().map(|r| r.number));
    let ranked = ranked(record);
    let gaps: Vec<Value> = sample(ranked.len(), |i| keep.contains(&ranked[i].number))
        .into_iter()
        .map(|i| (i + 1, ranked[i]))
        .map(|(rank, t)| json!({"rank": rank, "trial": t.number, "gap": optional(gap_at_best(t))}))
        .collect();
    json!({
        "study": record.name,
        "metric": record.metric,
        "direction": record.direction.to_string(),
        "setup": object(&record.setup),
        "overview": overview(&sections.overview),
        "recommendation": sections.recommendation.as_ref().map(recommendation),
        "leaderboard": sections.leaderboard.iter().map(leader).collect::<Vec<_>>(),
        "importance": sections.importance.iter().map(importance).collect::<Vec<_>>(),
        "regularization": sections.regularization.iter().map(|it| panel(it, &keep)).collect::<Vec<_>>(),
        "generalization_gap": gaps,
        "generalization_gap_total": ranked.len(),
        "curves": sections.curves.iter().map(curves).collect::<Vec<_>>(),
        "timeline": timeline(&sections.timeline, &keep),
        "confirmation": sections.confirmation.as_ref().map(confirmation),
        "comparison": sections.comparison.as_ref().map(comparison),
        "nights": sections.trend.as_ref().map(nights),
        "objectives": record.objectives.iter().map(|(m, d)| json!({"metric": m, "direction": d.to_string()})).collect::<Vec<_>>(),
        "pareto": sections.pareto.as_ref().map(pareto),
        "compression": sections.compression.as_ref().map(compression),
    })
}

/// A study of several objectives' Pareto front: each trial with its values and
/// parameters, best first on the first objective.
fn pareto(it: &hpo_report::tradeoff::ParetoSection) -> Value {
    let front: Vec<Value> = it
        .front
        .iter()
        .map(|(trial, values, params)| {
            json!({"trial": trial, "values": values.iter().map(|v| optional(Some(*v))).collect::<Vec<_>>(), "params": params})
        })
        .collect();
    json!({"front": front, "scored": it.n_scored})
}

/// The compressed variants of a trial (`[compress]`), one row per method.
fn compression(it: &hpo_report::tradeoff::CompressionSection) -> Value {
    let rows: Vec<Value> = it
        .rows
        .iter()
        .map(|row| {
            json!({
                "method": row.method,
                "parameters": row.parameters,
                "weight_bytes": row.weight_bytes,
                "latency_ms": optional(Some(row.latency_ms)),
                "latency_ms_per_example": optional(Some(row.latency_ms_per_example)),
                "val_accuracy": optional(Some(row.val_accuracy)),
                "test_accuracy": optional(Some(row.test_accuracy)),
            })
        })
        .collect();
    json!({"trial": it.trial, "rows": rows})
}

/// Every night of a nightly study (when the study is a night): each night's pick
/// with its interval, trials, failures and verdict, oldest first.
fn nights(it: &hpo_report::data::NightTrend) -> Value {
    let nights: Vec<Value> = it
        .nights
        .iter()
        .map(|night| {
            json!({
                "date": night.date,
                "study": night.study,
                "value": optional(night.value),
                "ci95": optional(night.ci95.filter(|h| h.is_finite())),
                "trials": night.trials,
                "failed": night.failed,
                "verdict": night.verdict,
            })
        })
        .collect();
    json!({"base": it.base, "metric": it.metric, "nights": nights})
}

/// `history` as `[number, value, state]` points and the best so far where it
/// changed (`[number, value]`; a chart draws it as steps up to `last`).
pub fn history_json(history: &History) -> Value {
    let mut best: Vec<Value> = Vec::new();
    let mut previous = None;
    for &(n, v) in &history.best_so_far {
        if previous != Some(v) {
            best.push(json!([n, short(v)]));
            previous = Some(v);
        }
    }
    json!({
        "metric": history.metric,
        "points": history.points.iter().map(|p| json!([p.number, short(p.value), state_letter(p.state)])).collect::<Vec<_>>(),
        "best_so_far": best,
        "last": history.points.last().map(|p| p.number),
    })
}

/// Every trial of `record` as a row `[number, state, value, [param texts], [last
/// step, value there], ended by, prune reason]` (params in the order of `params`), with the
/// parallel coordinates of the best [`PARALLEL_MAX_LINES`] complete trials.
pub fn table_json(record: &StudyRecord) -> Value {
    let mut params: Vec<&String> = record.trials.iter().flat_map(|t| t.params.keys()).collect();
    params.sort();
    params.dedup();
    let rows: Vec<Value> = hpo_report::data::search_trials(record)
        .map(|t| {
            let texts = hpo_report::data::params_text(t);
            let cells: Vec<Value> = params
                .iter()
                .map(|name| {
                    texts.iter().find(|(k, _)| k == *name).map_or(Value::Null, |(_, v)| json!(v))
                })
                .collect();
            let reason = t.system_attrs.get(attr::PRUNE_REASON).and_then(AttrValue::as_str);
            json!([
                t.number,
                state_letter(t.state),
                t.value.map_or(Value::Null, short),
                cells,
                t.intermediate_values.iter().next_back().map(|(s, v)| json!([s, short(*v)])),
                hpo_report::data::ended_by(t),
                reason,
            ])
        })
        .collect();
    let parallel = hpo_report::data::parallel_of_best(record, PARALLEL_MAX_LINES).map(|it| {
        let axes: Vec<Value> = it
            .axes
            .iter()
            .map(|axis| {
                let ticks: Vec<Value> = axis
                    .ticks
                    .iter()
                    .map(|(at, label)| json!([position(Some(*at)), label]))
                    .collect();
                json!({"name": axis.name, "ticks": ticks})
            })
            .collect();
        let lines: Vec<Value> = it
            .lines
            .iter()
            .map(|line| {
                let at: Vec<Value> = line.positions.iter().map(|p| position(*p)).collect();
                json!([line.number, line.rank, short(line.value), at])
            })
            .collect();
        json!({
            "axes": axes,
            "lines": lines,
            "value_range": [number(it.value_range.0), number(it.value_range.1)],
            "left_out": it.n_left_out,
        })
    });
    json!({
        "study": record.name,
        "metric": record.metric,
        "direction": record.direction.to_string(),
        "params": params,
        "trials": rows,
        "parallel": parallel,
    })
}
