//! `GET /api/v1/studies/{study}/report`: the report's computations as JSON — the
//! recommendation, the leaderboard, parameter importance, the regularization
//! panels and each trial's generalization gap — from `hpo_report::sections`, the
//! same functions the HTML report draws, over the same `StudyRecord`.

use hpo_report::data::{
    LeaderRow, Overview, ParamAxis, Recommendation, RegPanel, Trend, gap_at_best, ranked,
};
use hpo_report::importance::Importance;
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

fn panel(it: &RegPanel) -> Value {
    let points: Vec<Value> = it
        .points
        .iter()
        .map(|p| json!({"trial": p.number, "x": number(p.x), "gap": optional(p.gap), "value": number(p.value)}))
        .collect();
    json!({
        "param": it.param,
        "metric": it.metric,
        "axis": axis(&it.axis),
        "points": points,
        "gap_trend": trend(&it.gap_trend),
        "value_trend": trend(&it.value_trend),
    })
}

/// The report of `record` as JSON.
pub fn report_json(record: &StudyRecord, sections: &Sections) -> Value {
    let gaps: Vec<Value> = ranked(record)
        .into_iter()
        .map(|t| json!({"trial": t.number, "gap": optional(gap_at_best(t))}))
        .collect();
    json!({
        "study": record.name,
        "metric": record.metric,
        "direction": record.direction.to_string(),
        "overview": overview(&sections.overview),
        "recommendation": sections.recommendation.as_ref().map(recommendation),
        "leaderboard": sections.leaderboard.iter().map(leader).collect::<Vec<_>>(),
        "importance": sections.importance.iter().map(importance).collect::<Vec<_>>(),
        "regularization": sections.regularization.iter().map(panel).collect::<Vec<_>>(),
        "generalization_gap": gaps,
    })
}
