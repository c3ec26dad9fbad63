//! `hpo ls`, `hpo show` and `hpo export`: read a study from the store and render it.
//! They work on any database in Optuna's schema, including ones Optuna wrote.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, bail};
use hpo_core::storage::Storage;
use hpo_core::study::Study;
use hpo_core::trial::{AttrValue, FrozenTrial, TrialState, attr};
use serde_json::{Value, json};

use crate::format;

/// The study of this name, of one objective, or an error listing the studies
/// there are (or saying the study has several objectives).
pub fn find(storage: &dyn Storage, name: &str) -> Result<Study> {
    Ok(find_any(storage, name)?.single_objective()?)
}

/// The study of this name, of any number of objectives, or an error listing the
/// studies there are.
pub fn find_any(storage: &dyn Storage, name: &str) -> Result<Study> {
    match storage.find_study(name)? {
        Some(study) => Ok(study),
        None => {
            let names: Vec<String> =
                storage.list_studies()?.into_iter().map(|s| s.study.name).collect();
            Err(crate::usage(format!(
                "no study named `{name}` in this database; it has: {}",
                if names.is_empty() { "no studies".to_owned() } else { names.join(", ") }
            )))
        }
    }
}

/// The study's trials, then its confirm runs (`hpo_report::load`).
pub fn trials_with_confirm_runs(storage: &dyn Storage, study: &Study) -> Result<Vec<FrozenTrial>> {
    Ok(hpo_report::load::trials_with_confirm_runs(storage, study)?)
}

pub fn ls(storage: &dyn Storage) -> Result<String> {
    let studies = storage.list_studies()?;
    if studies.is_empty() {
        return Ok("no studies in this database".to_owned());
    }
    let rows: Vec<Vec<String>> = studies
        .iter()
        .map(|s| {
            vec![
                s.study.name.clone(),
                s.study.directions.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                s.study.metric.clone().unwrap_or_else(|| "-".into()),
                s.n_trials.to_string(),
                s.n_complete.to_string(),
                s.n_pruned.to_string(),
                s.n_fail.to_string(),
                s.n_running.to_string(),
                s.n_waiting.to_string(),
                if s.study.directions.len() > 1 {
                    "(multi-objective)".to_owned()
                } else {
                    s.best_value.map_or("-".into(), format::value)
                },
                format::time(s.last_activity),
            ]
        })
        .collect();
    Ok(format::table(
        &[
            "STUDY",
            "DIRECTION",
            "METRIC",
            "TRIALS",
            "COMPLETE",
            "PRUNED",
            "FAIL",
            "RUNNING",
            "WAITING",
            "BEST",
            "LAST ACTIVITY (UTC)",
        ],
        &rows,
    ))
}

fn attr_number(trial: &FrozenTrial, key: &str) -> String {
    trial.user_attrs.get(key).and_then(AttrValue::as_f64).map_or("-".into(), format::value)
}

pub fn show(storage: &dyn Storage, name: &str, trial_number: Option<u64>) -> Result<String> {
    let study = find_any(storage, name)?;
    let trials = storage.trials(study.id, None)?;
    if let Some(number) = trial_number {
        let Some(trial) = trials.iter().find(|t| t.number == number) else {
            bail!(
                "study `{name}` has no trial {number}; it has trials 0 to {}",
                trials.len().saturating_sub(1)
            );
        };
        return show_trial(storage, &study, trial);
    }
    let metric = study.metric.clone().unwrap_or_else(|| "value".into());
    let count = |state: TrialState| trials.iter().filter(|t| t.state == state).count();
    let objectives: Vec<String> = study
        .objective_names()
        .iter()
        .zip(&study.directions)
        .map(|(name, direction)| format!("{direction} {name}"))
        .collect();
    let mut out = format!(
        "study {}  ({})\ntrials: {} total, {} complete, {} pruned, {} failed, {} running, {} waiting",
        study.name,
        objectives.join(", "),
        trials.len(),
        count(TrialState::Complete),
        count(TrialState::Pruned),
        count(TrialState::Fail),
        count(TrialState::Running),
        count(TrialState::Waiting),
    );
    if study.directions.len() > 1 {
        out.push_str(&pareto_front(&study, &trials));
        out.push_str(&unfinished(&trials));
        return Ok(out);
    }
    let Some(pick) = crate::pick::of_study(storage, &study.name)? else {
        out.push_str("\nno complete trial yet");
        return Ok(out);
    };
    let Some(best) = trials.iter().find(|t| t.number == pick.number && t.confirm_of().is_none())
    else {
        bail!("the pick, trial {}, is not among the study's trials", pick.number);
    };
    out.push_str(&format!(
        "\n\npick: {}\n  params: {}",
        crate::pick::headline(&pick, &metric),
        format::params(&best.params)
    ));
    let stored = crate::pick::stored(storage, &study)?;
    for line in crate::pick::evidence(&pick, stored, study.spec_text.is_some()) {
        out.push_str(&format!("\n  {line}"));
    }
    let mut details: Vec<String> = best
        .user_attrs
        .iter()
        .filter_map(|(k, v)| v.as_f64().map(|f| format!("{k}={}", format::value(f))))
        .collect();
    if let Some(ended) = best.system_attrs.get(attr::ENDED_BY).and_then(AttrValue::as_str) {
        details.push(format!("ended_by={ended}"));
    }
    if !details.is_empty() {
        out.push_str(&format!("\n  {}", details.join(" ")));
    }

    let mut complete: Vec<&FrozenTrial> = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete && t.value.is_some_and(|v| !v.is_nan()))
        .filter(|t| t.confirm_of().is_none())
        .collect();
    complete.sort_by(|a, b| {
        let (a, b) = (a.value.unwrap_or(f64::NAN), b.value.unwrap_or(f64::NAN));
        let order = a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal);
        if study.direction == hpo_core::study::Direction::Maximize {
            order.reverse()
        } else {
            order
        }
    });
    let rows: Vec<Vec<String>> = complete
        .iter()
        .take(10)
        .enumerate()
        .map(|(rank, t)| {
            vec![
                (rank + 1).to_string(),
                if t.number == pick.number {
                    format!("{} pick", t.number)
                } else {
                    t.number.to_string()
                },
                t.value.map_or("-".into(), format::value),
                attr_number(t, "best_step"),
                attr_number(t, "train_loss"),
                attr_number(t, "val_loss"),
                attr_number(t, "generalization_gap"),
                format::params(&t.params),
            ]
        })
        .collect();
    out.push_str("\n\ntop 10:\n");
    out.push_str(&format::table(
        &[
            "RANK",
            "TRIAL",
            &metric.to_uppercase(),
            "BEST STEP",
            "TRAIN_LOSS",
            "VAL_LOSS",
            "GAP",
            "PARAMS",
        ],
        &rows,
    ));
    out.push_str(&unfinished(&trials));
    Ok(out)
}

/// A study of several objectives' Pareto front (what Optuna's `best_trials`
/// returns), each trial with its values and parameters, ordered by the first
/// objective.
pub fn pareto_front(study: &Study, trials: &[FrozenTrial]) -> String {
    let search: Vec<&FrozenTrial> = trials.iter().filter(|t| t.confirm_of().is_none()).collect();
    let mut front = hpo_core::pareto::front(&search, &study.directions);
    if front.is_empty() {
        return "\nno complete trial yet".to_owned();
    }
    let first = study.directions[0];
    front.sort_by(|a, b| {
        let (a, b) = (a.objective_values()[0], b.objective_values()[0]);
        let order = a.total_cmp(&b);
        if first == hpo_core::study::Direction::Maximize { order.reverse() } else { order }
    });
    let names = study.objective_names();
    let mut header: Vec<String> = vec!["TRIAL".to_owned()];
    header.extend(names.iter().map(|n| n.to_uppercase()));
    header.push("PARAMS".to_owned());
    let rows: Vec<Vec<String>> = front
        .iter()
        .map(|t| {
            let mut row = vec![t.number.to_string()];
            row.extend(t.objective_values().iter().map(|v| format::value(*v)));
            row.push(format::params(&t.params));
            row
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    format!(
        "\n\nPareto front: {} trial(s) that no other trial beats on every objective (Optuna's best_trials); pick one by what you trade, then `hpo show {} --trial N`\n{}",
        front.len(),
        study.name,
        format::table(&header, &rows)
    )
}

/// Who proposed the trials, and the failed and pruned ones with their reasons.
fn unfinished(trials: &[FrozenTrial]) -> String {
    let mut out = String::new();
    let runs = hpo_report::data::model_runs(trials);
    if !runs.is_empty() {
        out.push_str("\n\nproposed by:");
        for run in &runs {
            out.push_str(&format!("\n  {run}"));
        }
    }
    let failed: Vec<&FrozenTrial> = trials.iter().filter(|t| t.state == TrialState::Fail).collect();
    if !failed.is_empty() {
        out.push_str("\n\nfailed:");
        for t in failed.iter().take(10) {
            out.push_str(&format!(
                "\n  trial {}: {}",
                t.number,
                t.fail_reason().unwrap_or("no reason recorded")
            ));
        }
    }
    let pruned: Vec<&FrozenTrial> =
        trials.iter().filter(|t| t.state == TrialState::Pruned).collect();
    if !pruned.is_empty() {
        out.push_str(&format!("\n\npruned ({}):", pruned.len()));
        for t in pruned.iter().take(10) {
            let reason = t.system_attrs.get(attr::PRUNE_REASON).and_then(AttrValue::as_str);
            out.push_str(&format!(
                "\n  trial {} at step {}: {}",
                t.number,
                t.intermediate_values.keys().next_back().map_or("-".into(), u64::to_string),
                reason.unwrap_or("no reason recorded")
            ));
        }
        if pruned.len() > 10 {
            out.push_str(&format!(
                "\n  ... and {} more (hpo show STUDY --trial N)",
                pruned.len() - 10
            ));
        }
    }
    out
}

fn show_trial(storage: &dyn Storage, study: &Study, trial: &FrozenTrial) -> Result<String> {
    let values: Vec<String> = trial.objective_values().iter().map(|v| format::value(*v)).collect();
    let values = if values.is_empty() { "-".to_owned() } else { values.join(", ") };
    let mut out = format!(
        "study {} trial {}: {}\n  {}: {}\n  started: {}  completed: {}{}",
        study.name,
        trial.number,
        trial.state,
        if study.directions.len() > 1 {
            study.objective_names().join(", ")
        } else {
            "value".to_owned()
        },
        values,
        format::time(trial.datetime_start),
        format::time(trial.datetime_complete),
        trial.duration_seconds().map_or(String::new(), |s| format!("  ({s:.1}s)")),
    );
    out.push_str("\n  params:");
    for (name, value) in &trial.params {
        let distribution = trial
            .distributions
            .get(name)
            .map_or(String::new(), |d| format!("   in {}", d.describe()));
        out.push_str(&format!("\n    {name} = {value}{distribution}"));
    }
    if !trial.user_attrs.is_empty() {
        out.push_str("\n  results:");
        for (key, value) in &trial.user_attrs {
            out.push_str(&format!("\n    {key} = {value}"));
        }
    }
    for (key, value) in &trial.system_attrs {
        out.push_str(&format!("\n  {key}: {value}"));
    }
    let verdicts = storage.pruner_verdicts(trial.id)?;
    if !verdicts.is_empty() {
        out.push_str("\n\npruner verdicts:");
        for (step, verdict) in &verdicts {
            out.push_str(&format!("\n  step {step}: {}: {}", verdict.decision(), verdict.reason));
        }
    }
    let curves = storage.metric_curves(trial.id)?;
    let names: BTreeSet<&str> = curves.iter().map(|p| p.name.as_str()).collect();
    let mut by_step: BTreeMap<u64, BTreeMap<&str, f64>> = BTreeMap::new();
    for point in &curves {
        by_step.entry(point.step).or_default().insert(&point.name, point.value);
    }
    if by_step.is_empty() {
        // An Optuna study: only intermediate values.
        for (step, value) in &trial.intermediate_values {
            by_step.entry(*step).or_default().insert("intermediate_value", *value);
        }
    }
    if !by_step.is_empty() {
        let names: Vec<&str> =
            if names.is_empty() { vec!["intermediate_value"] } else { names.into_iter().collect() };
        let mut header = vec!["STEP"];
        header.extend(names.iter().copied());
        let rows: Vec<Vec<String>> = by_step
            .iter()
            .map(|(step, values)| {
                let mut row = vec![step.to_string()];
                row.extend(
                    names.iter().map(|n| values.get(n).map_or("-".into(), |v| format::value(*v))),
                );
                row
            })
            .collect();
        out.push_str("\n\ncurve:\n");
        out.push_str(&format::table(&header, &rows));
    }
    Ok(out)
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// An ISO 8601 time with microseconds, in UTC: `2026-11-28T03:40:12.123456Z`.
fn iso_time(ts: Option<hpo_core::trial::Timestamp>) -> Option<String> {
    ts.map(|ts| format!("{}Z", hpo_store::encode::datetime(ts).replacen(' ', "T", 1)))
}

/// The study's trials (and confirm runs) as flat rows, one per trial, with the same
/// columns for every row: what the CSV export writes and `--format json --flat`
/// gives as objects. Missing values are `null` (an empty CSV cell).
fn flat_rows(storage: &dyn Storage, name: &str) -> Result<(Vec<String>, Vec<Vec<Value>>)> {
    let study = find(storage, name)?;
    let trials = trials_with_confirm_runs(storage, &study)?;
    let pick = crate::pick::of_study(storage, &study.name)?.map(|p| p.number);
    // Where each trial is stored: numbers repeat between the study and its
    // confirm study, so (study, number) names a trial.
    let in_study: BTreeSet<hpo_core::trial::TrialId> =
        storage.trials(study.id, None)?.iter().map(|t| t.id).collect();
    let confirm_study = hpo_core::study::confirm_study_name(&study.name);
    let params: BTreeSet<&str> =
        trials.iter().flat_map(|t| t.params.keys().map(String::as_str)).collect();
    let attrs: BTreeSet<&str> =
        trials.iter().flat_map(|t| t.user_attrs.keys().map(String::as_str)).collect();
    let mut header: Vec<String> = [
        "study",
        "number",
        "state",
        "value",
        "datetime_start",
        "datetime_complete",
        "duration_s",
        "is_confirm",
        "confirm_of",
        "is_pick",
        "ended_by",
        "device",
    ]
    .map(str::to_owned)
    .to_vec();
    header.extend(params.iter().map(|p| format!("params_{p}")));
    header.extend(attrs.iter().map(|a| format!("user_attrs_{a}")));
    header.push("fail_reason".into());
    let text_attr = |t: &FrozenTrial, key: &str| {
        t.system_attrs.get(key).and_then(AttrValue::as_str).map_or(Value::Null, |s| json!(s))
    };
    let rows = trials
        .iter()
        .map(|t| {
            let confirm_of = t.confirm_of();
            let stored_in = if in_study.contains(&t.id) { &study.name } else { &confirm_study };
            let mut row = vec![
                json!(stored_in),
                json!(t.number),
                json!(t.state.as_optuna_str()),
                t.value.map_or(Value::Null, hpo_store::json::number),
                iso_time(t.datetime_start).map_or(Value::Null, Value::String),
                iso_time(t.datetime_complete).map_or(Value::Null, Value::String),
                t.duration_seconds().map_or(Value::Null, |s| json!((s * 1e3).round() / 1e3)),
                json!(confirm_of.is_some()),
                confirm_of.map_or(Value::Null, |n| json!(n)),
                json!(confirm_of.is_none() && pick == Some(t.number)),
                text_attr(t, attr::ENDED_BY),
                text_attr(t, attr::DEVICE),
            ];
            row.extend(
                params.iter().map(|p| t.params.get(*p).map_or(Value::Null, hpo_store::json::param)),
            );
            row.extend(
                attrs
                    .iter()
                    .map(|a| t.user_attrs.get(*a).map_or(Value::Null, hpo_store::json::attr_value)),
            );
            row.push(t.fail_reason().map_or(Value::Null, |r| json!(r)));
            row
        })
        .collect();
    Ok((header, rows))
}

/// A CSV cell: empty for a missing value, text as it is, numbers as JSON writes them.
fn csv_cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => csv_field(s),
        other => csv_field(&other.to_string()),
    }
}

pub fn export_csv(storage: &dyn Storage, name: &str, curves: bool) -> Result<String> {
    let mut out = String::new();
    if curves {
        let study = find(storage, name)?;
        out.push_str("trial,is_confirm,step,metric,value\n");
        for trial in &trials_with_confirm_runs(storage, &study)? {
            for point in storage.metric_curves(trial.id)? {
                out.push_str(&format!(
                    "{},{},{},{},{}\n",
                    trial.number,
                    trial.confirm_of().is_some(),
                    point.step,
                    csv_field(&point.name),
                    point.value
                ));
            }
        }
        return Ok(out);
    }
    let (header, rows) = flat_rows(storage, name)?;
    out.push_str(&header.iter().map(|h| csv_field(h)).collect::<Vec<_>>().join(","));
    out.push('\n');
    for row in rows {
        out.push_str(&row.iter().map(csv_cell).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    Ok(out)
}

/// `hpo export --format json --flat`: one object per trial with the CSV's columns.
pub fn export_json_flat(storage: &dyn Storage, name: &str) -> Result<String> {
    let (header, rows) = flat_rows(storage, name)?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|row| Value::Object(header.iter().cloned().zip(row).collect()))
        .collect();
    Ok(format!("{}\n", serde_json::to_string_pretty(&items)?))
}

pub fn export_json(storage: &dyn Storage, name: &str) -> Result<String> {
    let study = find_any(storage, name)?;
    let several = study.directions.len() > 1;
    let trials = trials_with_confirm_runs(storage, &study)?;
    // A study of several objectives has a front rather than one pick.
    let pick = if several { None } else { crate::pick::of_study(storage, &study.name)? };
    let search: Vec<&FrozenTrial> = trials.iter().filter(|t| t.confirm_of().is_none()).collect();
    let front: Vec<u64> = if several {
        hpo_core::pareto::front(&search, &study.directions).iter().map(|t| t.number).collect()
    } else {
        Vec::new()
    };
    let mut items = Vec::new();
    for t in &trials {
        let mut curves: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for point in storage.metric_curves(t.id)? {
            curves
                .entry(point.name)
                .or_default()
                .push(json!([point.step, hpo_store::json::number(point.value)]));
        }
        let verdicts: Vec<Value> = storage
            .pruner_verdicts(t.id)?
            .into_iter()
            .map(|(step, v)| json!({"step": step, "decision": v.decision(), "reason": v.reason}))
            .collect();
        items.push(json!({
            "number": t.number,
            "is_confirm": t.confirm_of().is_some(),
            "confirm_of": t.confirm_of(),
            "is_pick": t.confirm_of().is_none() && pick.as_ref().is_some_and(|p| p.number == t.number),
            "state": t.state.as_optuna_str(),
            "value": t.value.map(hpo_store::json::number),
            "values": t.objective_values().iter().map(|v| hpo_store::json::number(*v)).collect::<Vec<_>>(),
            "params": t.params.iter().map(|(k, v)| (k.clone(), hpo_store::json::param(v))).collect::<serde_json::Map<_, _>>(),
            "distributions": t.distributions.iter().map(|(k, d)| (k.clone(), hpo_store::json::distribution(d))).collect::<serde_json::Map<_, _>>(),
            "intermediate_values": t.intermediate_values.iter().map(|(s, v)| (s.to_string(), hpo_store::json::number(*v))).collect::<serde_json::Map<_, _>>(),
            "curves": curves,
            "pruner_verdicts": verdicts,
            "user_attrs": t.user_attrs.iter().map(|(k, v)| (k.clone(), hpo_store::json::attr_value(v))).collect::<serde_json::Map<_, _>>(),
            "system_attrs": t.system_attrs.iter().map(|(k, v)| (k.clone(), hpo_store::json::attr_value(v))).collect::<serde_json::Map<_, _>>(),
            "datetime_start": t.datetime_start.map(hpo_store::encode::datetime),
            "datetime_complete": t.datetime_complete.map(hpo_store::encode::datetime),
        }));
    }
    let pick = pick.map(|p| {
        json!({
            "trial": p.number,
            "value": hpo_store::json::number(p.value),
            "basis": p.basis(),
            "provisional": p.is_provisional(),
            "ci95": p.confirmed.map(|ci| hpo_store::json::number(ci.half_width)),
            "confirm_runs": p.confirmed.map_or(0, |ci| ci.n),
            "runner_up": p.runner_up.map(|r| r.0),
            "runner_up_value": p.runner_up.map(|r| hpo_store::json::number(r.1)),
            "welch_p": p.welch_p,
        })
    });
    let doc = json!({
        "study": study.name,
        "direction": study.direction.to_string(),
        "metric": study.metric,
        "directions": study.directions.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "metrics": study.objective_names(),
        "pick": pick,
        "pareto_front": if several { json!(front) } else { Value::Null },
        "trials": items,
    });
    Ok(format!("{}\n", serde_json::to_string_pretty(&doc)?))
}
