//! The dashboard's reads: a study's history, trial table, report and running
//! trials, a comparison of two studies, and each study's best-so-far sparkline.
//!
//! A study read for a view is kept per study *version* (its state counts, best
//! value and last activity, and its confirm study's): many browsers watching one
//! study cost one read of the store and one computation per change, and the JSON
//! is sent as the bytes made then.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use hpo_core::storage::Storage;
use hpo_core::study::{Study, StudySummary};
use hpo_core::trial::{Timestamp, TrialState};
use hpo_report::StudyRecord;
use hpo_store::json as value;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::{AppState, on_store};
use crate::auth::Role;
use crate::error::ApiError;

/// A view's JSON by (study, kind), with the version it was made at.
type Views = HashMap<(String, &'static str), (String, Bytes)>;

/// Study records and rendered views by study, each with the version it was made at.
#[derive(Default)]
pub struct Cache {
    records: Mutex<HashMap<String, (String, Arc<StudyRecord>)>>,
    views: Mutex<Views>,
}

impl Cache {
    /// The record of `study` at `version`: kept, or read now.
    fn record(
        &self,
        storage: &dyn Storage,
        study: &Study,
        version: &str,
    ) -> Result<Arc<StudyRecord>, ApiError> {
        let records = self.records.lock().unwrap_or_else(|it| it.into_inner());
        if let Some((at, record)) = records.get(&study.name)
            && at == version
        {
            return Ok(Arc::clone(record));
        }
        drop(records);
        let mut record = hpo_report::load::study_record(storage, study, study.name.clone(), None)?;
        // A night of a nightly study shows every night.
        let base = record
            .study_attrs
            .iter()
            .find(|(key, _)| key == hpo_report::load::NIGHT_OF)
            .map(|(_, base)| base.clone());
        if let Some(base) = base {
            record.trend = Some(hpo_report::load::nights(storage, &base)?);
        }
        let record = Arc::new(record);
        let mut records = self.records.lock().unwrap_or_else(|it| it.into_inner());
        records.insert(study.name.clone(), (version.to_owned(), Arc::clone(&record)));
        Ok(record)
    }

    /// View `kind` of `study` at `version`: kept, or made now by `make`.
    fn view(
        &self,
        study: &str,
        kind: &'static str,
        version: &str,
        make: impl FnOnce() -> Result<Value, ApiError>,
    ) -> Result<Bytes, ApiError> {
        let key = (study.to_owned(), kind);
        if let Some((at, bytes)) = self.views.lock().unwrap_or_else(|it| it.into_inner()).get(&key)
            && at == version
        {
            return Ok(bytes.clone());
        }
        let mut doc = make()?;
        doc["version"] = json!(version);
        let bytes = Bytes::from(serde_json::to_vec(&doc).map_err(|err| {
            ApiError::internal(format!("the view could not be written as JSON: {err}"))
        })?);
        let mut views = self.views.lock().unwrap_or_else(|it| it.into_inner());
        views.insert(key, (version.to_owned(), bytes.clone()));
        Ok(bytes)
    }
}

/// What changes when a study changes: its counts, best value and last activity.
pub fn version_of(summary: &StudySummary) -> String {
    format!(
        "{}.{}.{}.{}.{}.{}.{}.{}",
        summary.n_trials,
        summary.n_complete,
        summary.n_pruned,
        summary.n_fail,
        summary.n_running,
        summary.n_waiting,
        summary.best_value.map_or(0, f64::to_bits),
        summary.last_activity.map_or(0, |t| t.0),
    )
}

/// Study `name` and its version: its own and its confirm study's (confirm runs
/// change the report).
fn study_version(storage: &dyn Storage, name: &str) -> Result<(Study, String), ApiError> {
    let summaries = storage.list_studies()?;
    let confirm = hpo_core::study::confirm_study_name(name);
    let mut found = None;
    let mut version = String::new();
    for summary in summaries {
        if summary.study.name == name {
            version.insert_str(0, &version_of(&summary));
            found = Some(summary.study);
        } else if summary.study.name == confirm {
            version.push('+');
            version.push_str(&version_of(&summary));
        }
    }
    let study = found.ok_or_else(|| ApiError::not_found(format!("no study named `{name}`")))?;
    Ok((study, version))
}

fn json_response(bytes: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// View `kind` of study `name`: the read token checked, then the view kept for the
/// study's current version, or made by `make` (with the cache, the store, the study
/// and its version) and kept.
async fn cached_view(
    state: &AppState,
    headers: &HeaderMap,
    name: String,
    kind: &'static str,
    make: impl FnOnce(&Cache, &dyn Storage, &Study, &str) -> Result<Value, ApiError> + Send + 'static,
) -> Result<Response, ApiError> {
    state.access.check(headers, Role::Read)?;
    let cache = Arc::clone(&state.views);
    let bytes = on_store(state, move |storage| {
        let (study, version) = study_version(storage, &name)?;
        cache.view(&name, kind, &version, || make(&cache, storage, &study, &version))
    })
    .await?;
    Ok(json_response(bytes))
}

/// `GET /api/v1/studies/{study}/table`: every trial as a row and the parallel
/// coordinates (`crate::report::table_json`).
pub async fn get_table(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    cached_view(&state, &headers, name, "table", |cache, storage, study, version| {
        let record = cache.record(storage, study, version)?;
        Ok(crate::report::table_json(&record))
    })
    .await
}

/// `GET /api/v1/studies/{study}/history`: every trial's value and the best so far
/// (`crate::report::history_json`), from the trials' outcomes alone: the
/// dashboard's first chart, cheap at any study size. `{study}` may be
/// `NAME@DATE`: the trials finished by then (read in full).
pub async fn get_history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    // A study as it was at a date (the compare page's dated side), unless a study
    // has that very name (a night of a nightly study, `NAME@YYYY-MM-DD`).
    let dated = name.contains('@') && {
        state.access.check(&headers, Role::Read)?;
        let exact = name.clone();
        !on_store(&state, move |storage| Ok(storage.find_study(&exact)?.is_some())).await?
    };
    if dated {
        let doc = on_store(&state, move |storage| {
            let record = record_of(storage, &name)?;
            Ok(crate::report::history_json(&hpo_report::data::history(&record)))
        })
        .await?;
        return Ok(json_response(Bytes::from(doc.to_string())));
    }
    cached_view(&state, &headers, name, "history", |_, storage, study, _| {
        // With several objectives, the first one's history.
        let metric = study.metric.clone().unwrap_or_else(|| "value".to_owned());
        let outcomes = storage.trial_outcomes(study.id)?;
        let history = hpo_report::data::history_of(&metric, study.direction, outcomes);
        Ok(crate::report::history_json(&history))
    })
    .await
}

/// `?compare=OTHER` (or `OTHER@DATE`): the report with its comparison against
/// that study.
#[derive(Deserialize)]
pub struct ReportQuery {
    compare: Option<String>,
}

/// A study named in a request: `NAME` or `NAME@DATE` (its state at the end of that
/// UTC day, minute or second).
fn study_ref(text: &str) -> Result<(String, Option<Timestamp>), ApiError> {
    match text.split_once('@') {
        None => Ok((text.to_owned(), None)),
        Some((name, date)) => {
            let until = hpo_store::encode::parse_until(date).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`{date}` is not a date; write NAME@YYYY-MM-DD or NAME@YYYY-MM-DDTHH:MM (UTC)"
                ))
            })?;
            Ok((name.to_owned(), Some(until)))
        }
    }
}

/// The record of a study named as `NAME` or `NAME@DATE` (a study whose name is the
/// whole text, such as a night of a nightly study, first).
fn record_of(storage: &dyn Storage, text: &str) -> Result<StudyRecord, ApiError> {
    if let Some(study) = storage.find_study(text)? {
        return Ok(hpo_report::load::study_record(storage, &study, text.to_owned(), None)?);
    }
    let (name, until) = study_ref(text)?;
    let study = storage
        .find_study(&name)?
        .ok_or_else(|| ApiError::not_found(format!("no study named `{name}`")))?;
    let label = until.map_or_else(|| name.clone(), |_| text.to_owned());
    Ok(hpo_report::load::study_record(storage, &study, label, until)?)
}

/// `GET /api/v1/studies/{study}/report[?compare=OTHER]`: the report's
/// computations (`crate::report::report_json`).
pub async fn get_report(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    query: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::bad_request(err.body_text()))?;
    if let Some(other) = query.compare {
        state.access.check(&headers, Role::Read)?;
        let doc = on_store(&state, move |storage| {
            let record = record_of(storage, &name)?;
            let baseline = record_of(storage, &other)?;
            let sections = hpo_report::sections(&record, Some(&baseline));
            Ok(crate::report::report_json(&record, &sections))
        })
        .await?;
        return Ok(json_response(Bytes::from(doc.to_string())));
    }
    cached_view(&state, &headers, name, "report", |cache, storage, study, version| {
        let record = cache.record(storage, study, version)?;
        let sections = hpo_report::sections(&record, None);
        Ok(crate::report::report_json(&record, &sections))
    })
    .await
}

/// `GET /api/v1/studies/{study}/running`: the running trials with every curve point
/// stored so far, for the dashboard's live chart.
pub async fn get_running(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    state.access.check(&headers, Role::Read)?;
    let doc = on_store(&state, move |storage| {
        let study = crate::api::find(storage, &name)?;
        let mut trials = Vec::new();
        for trial in storage.trials(study.id, Some(&[TrialState::Running]))? {
            let mut curves = crate::api::curves_json(storage, trial.id)?;
            if curves.is_empty() && !trial.intermediate_values.is_empty() {
                let metric = study.metric.clone().unwrap_or_else(|| "value".to_owned());
                curves.insert(
                    metric,
                    trial
                        .intermediate_values
                        .iter()
                        .map(|(s, v)| json!([s, value::number(*v)]))
                        .collect(),
                );
            }
            let params: Map<String, Value> =
                trial.params.iter().map(|(k, v)| (k.clone(), value::param(v))).collect();
            trials.push(json!({
                "number": trial.number,
                "params": params,
                "datetime_start": trial.datetime_start.map(hpo_store::encode::datetime),
                "curves": curves,
            }));
        }
        Ok(json!({"study": study.name, "metric": study.metric, "trials": trials}))
    })
    .await?;
    Ok(json_response(Bytes::from(doc.to_string())))
}

/// Points in a sparkline.
const SPARKLINE_POINTS: usize = 40;

/// The best value so far after each complete trial of `study`, at most
/// [`SPARKLINE_POINTS`] of them (evenly spaced, the last always), kept per version.
pub fn sparkline(
    state: &AppState,
    storage: &dyn Storage,
    summary: &StudySummary,
) -> Result<Value, ApiError> {
    let study = &summary.study;
    let version = version_of(summary);
    let bytes = state.views.view(&study.name, "sparkline", &version, || {
        let Ok(single) = study.clone().single_objective() else { return Ok(json!({"best": []})) };
        let mut best: Vec<f64> = Vec::new();
        for trial in storage.trial_outcomes(study.id)? {
            if trial.state != TrialState::Complete {
                continue;
            }
            let Some(v) = trial.value.filter(|v| v.is_finite()) else { continue };
            let next = match best.last() {
                Some(&b) if !single.direction.is_better(v, b) => b,
                _ => v,
            };
            best.push(next);
        }
        let n = best.len();
        let points: Vec<Value> = if n <= SPARKLINE_POINTS {
            best.into_iter().map(value::number).collect()
        } else {
            (0..SPARKLINE_POINTS)
                .map(|i| best[(i * (n - 1)) / (SPARKLINE_POINTS - 1)])
                .map(value::number)
                .collect()
        };
        Ok(json!({ "best": points }))
    })?;
    let doc: Value = serde_json::from_slice(&bytes)
        .map_err(|err| ApiError::internal(format!("a kept sparkline is not JSON: {err}")))?;
    Ok(doc["best"].clone())
}
