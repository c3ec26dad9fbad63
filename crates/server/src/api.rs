//! The JSON API under `/api/v1`: studies, trials, and the external-objective verbs
//! (ask, report a step, tell) for training scripts on any machine. docs/api.md
//! documents every endpoint.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::HeaderMap;
use axum::{Json, Router, routing};
use hpo_core::run::external::{ExternalStudy, Outcome};
use hpo_core::spec::StudySpec;
use hpo_core::storage::Storage;
use hpo_core::study::{Study, StudySummary};
use hpo_core::trial::{FrozenTrial, TrialState};
use hpo_store::json as value;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::{Access, Role};
use crate::error::ApiError;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The study database.
    pub storage: Arc<dyn Storage>,
    /// Who may read and write.
    pub access: Access,
    /// The server's request counts and latencies.
    pub metrics: crate::metrics::Shared,
    /// The external studies opened so far by name, each with its stored study file
    /// (which never changes), so a step or a tell neither reads nor parses it again
    /// and an ask reads only the trials finished since the last.
    pub studies: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<ExternalStudy>>>>,
    /// The dashboard's study records and views, kept per study version.
    pub views: Arc<crate::views::Cache>,
    /// Where command trials keep their folders, if anywhere.
    pub trials_root: Option<Arc<std::path::PathBuf>>,
    /// The longest request body taken, in bytes.
    pub body_limit: usize,
}

type ApiResult = Result<Json<Value>, ApiError>;

/// The `/api/v1` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/studies", routing::get(list_studies))
        .route("/studies/{study}", routing::get(get_study))
        .route("/studies/{study}/report", routing::get(crate::views::get_report))
        .route("/studies/{study}/history", routing::get(crate::views::get_history))
        .route("/studies/{study}/table", routing::get(crate::views::get_table))
        .route("/studies/{study}/running", routing::get(crate::views::get_running))
        .route("/studies/{study}/trials", routing::get(list_trials))
        .route("/studies/{study}/trials/{number}", routing::get(get_trial))
        .route("/studies/{study}/ask", routing::post(ask))
        .route("/studies/{study}/trials/{number}/steps", routing::post(report_step))
        .route("/studies/{study}/trials/{number}/tell", routing::post(tell))
}

/// Runs `f` on the store on a blocking thread (storage calls block).
pub(crate) async fn on_store<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn Storage) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let storage = Arc::clone(&state.storage);
    tokio::task::spawn_blocking(move || f(storage.as_ref()))
        .await
        .map_err(|err| ApiError::internal(format!("the request's work stopped: {err}")))?
}

pub(crate) fn find(storage: &dyn Storage, name: &str) -> Result<Study, ApiError> {
    storage.find_study(name)?.ok_or_else(|| ApiError::not_found(format!("no study named `{name}`")))
}

fn summary_json(summary: &StudySummary, pick: Option<Value>) -> Value {
    let study = &summary.study;
    json!({
        "name": study.name,
        "directions": study.directions.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "metric": study.metric,
        "trials": {
            "total": summary.n_trials,
            "complete": summary.n_complete,
            "pruned": summary.n_pruned,
            "fail": summary.n_fail,
            "running": summary.n_running,
            "waiting": summary.n_waiting,
        },
        "best_value": summary.best_value.map(value::number),
        "pick": pick,
        "last_activity": summary.last_activity.map(hpo_store::encode::datetime),
        "version": crate::views::version_of(summary),
    })
}

/// The pick `hpo confirm`, `hpo report` or `hpo show` stored with the study (its
/// `pick_*` user attributes), if any.
fn stored_pick(storage: &dyn Storage, study: &Study) -> Result<Option<Value>, ApiError> {
    let attrs = storage.study_user_attrs(study.id)?;
    let pick: Map<String, Value> = attrs
        .iter()
        .filter_map(|(key, v)| Some((key.strip_prefix("pick_")?.to_owned(), value::attr_value(v))))
        .collect();
    Ok((!pick.is_empty()).then_some(Value::Object(pick)))
}

async fn list_studies(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    state.access.check(&headers, Role::Read)?;
    let cache = state.clone();
    let studies = on_store(&state, move |storage| {
        let mut out = Vec::new();
        for summary in storage.list_studies()? {
            let pick = stored_pick(storage, &summary.study)?;
            let mut doc = summary_json(&summary, pick);
            doc["sparkline"] = crate::views::sparkline(&cache, storage, &summary)?;
            doc["budget"] = json!(
                summary
                    .study
                    .spec_text
                    .as_deref()
                    .and_then(|text| StudySpec::parse(text, "stored study file").ok())
                    .and_then(|spec| spec.trials)
            );
            out.push(doc);
        }
        Ok(out)
    })
    .await?;
    Ok(Json(json!({ "studies": studies })))
}

/// A read of study `name`: the read token checked, then `f` with the study, on
/// the store.
async fn read_study(
    state: &AppState,
    headers: &HeaderMap,
    name: String,
    f: impl FnOnce(&dyn Storage, Study) -> Result<Value, ApiError> + Send + 'static,
) -> ApiResult {
    state.access.check(headers, Role::Read)?;
    let doc = on_store(state, move |storage| f(storage, find(storage, &name)?)).await?;
    Ok(Json(doc))
}

async fn get_study(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    read_study(&state, &headers, name, |storage, study| {
        let summary = storage
            .list_studies()?
            .into_iter()
            .find(|it| it.study.id == study.id)
            .ok_or_else(|| ApiError::not_found(format!("no study named `{}`", study.name)))?;
        let pick = stored_pick(storage, &study)?;
        let mut doc = summary_json(&summary, pick);
        let spec = study.spec_text.as_deref().map(|text| StudySpec::parse(text, "study file"));
        doc["study_file"] = json!(study.spec_text);
        if let Some(Ok(spec)) = spec {
            doc["sampler"] = json!(spec.sampler.name());
            doc["pruner"] = json!(spec.pruner.name());
            doc["objective"] = json!(match &spec.objective {
                hpo_core::spec::ObjectiveSpec::Function { function, .. } => {
                    format!("function {}", function.name())
                }
                hpo_core::spec::ObjectiveSpec::Training(candle) => {
                    let dataset = match &candle.dataset {
                        hpo_core::spec::DatasetSpec::Named(name) => name.clone(),
                        hpo_core::spec::DatasetSpec::Csv { path, .. } => path.clone(),
                        hpo_core::spec::DatasetSpec::Text { path } => path.clone(),
                    };
                    format!("candle {} on {dataset}", candle.model)
                }
                hpo_core::spec::ObjectiveSpec::External => "external".to_owned(),
                hpo_core::spec::ObjectiveSpec::Command(command) => {
                    format!("command {}", command.command.join(" "))
                }
            });
            doc["budget"] = json!(spec.trials);
        }
        Ok(doc)
    })
    .await
}

/// `?state=complete,pruned&sort=value&order=asc&page=1&per_page=50`.
#[derive(Deserialize)]
struct TrialsQuery {
    state: Option<String>,
    sort: Option<String>,
    order: Option<String>,
    page: Option<usize>,
    per_page: Option<usize>,
}

fn trial_summary(trial: &FrozenTrial) -> Value {
    json!({
        "number": trial.number,
        "state": trial.state.to_string(),
        "value": trial.value.map(value::number),
        "values": trial.objective_values().iter().map(|v| value::number(*v)).collect::<Vec<_>>(),
        "params": trial.params.iter().map(|(k, v)| (k.clone(), value::param(v))).collect::<Map<_, _>>(),
        "steps": trial.intermediate_values.len(),
        "datetime_start": trial.datetime_start.map(hpo_store::encode::datetime),
        "datetime_complete": trial.datetime_complete.map(hpo_store::encode::datetime),
    })
}

fn parse_states(text: &str) -> Result<Vec<TrialState>, ApiError> {
    text.split(',')
        .map(|it| {
            TrialState::from_optuna_str(&it.trim().to_ascii_uppercase()).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "state: unknown state `{it}`; use running, waiting, complete, pruned or fail (comma-separated)"
                ))
            })
        })
        .collect()
}

async fn list_trials(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    query: Result<Query<TrialsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    state.access.check(&headers, Role::Read)?;
    let Query(query) = query.map_err(|err| ApiError::bad_request(err.body_text()))?;
    let states = query.state.as_deref().map(parse_states).transpose()?;
    let per_page = query.per_page.unwrap_or(50);
    if !(1..=1000).contains(&per_page) {
        return Err(ApiError::bad_request("per_page: must be between 1 and 1000"));
    }
    let page = query.page.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::bad_request("page: pages count from 1"));
    }
    let by_value = match query.sort.as_deref() {
        None | Some("number") => false,
        Some("value") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "sort: unknown key `{other}`; use number or value"
            )));
        }
    };
    let descending = match query.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "order: unknown order `{other}`; use asc or desc"
            )));
        }
    };
    let doc = on_store(&state, move |storage| {
        let study = find(storage, &name)?;
        let mut trials = storage.trials(study.id, states.as_deref())?;
        if by_value {
            // Trials without a value last, whatever the order.
            trials.sort_by(|a, b| match (a.value, b.value) {
                (Some(x), Some(y)) if descending => y.total_cmp(&x),
                (Some(x), Some(y)) => x.total_cmp(&y),
                (x, y) => y.is_some().cmp(&x.is_some()),
            });
        } else if descending {
            trials.reverse();
        }
        let total = trials.len();
        let items: Vec<Value> =
            trials.iter().skip((page - 1) * per_page).take(per_page).map(trial_summary).collect();
        Ok(json!({"study": study.name, "total": total, "page": page, "per_page": per_page, "trials": items}))
    })
    .await?;
    Ok(Json(doc))
}

async fn get_trial(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, number)): Path<(String, String)>,
) -> ApiResult {
    state.access.check(&headers, Role::Read)?;
    let number = trial_number(&number)?;
    let trials_root = state.trials_root.clone();
    let doc = on_store(&state, move |storage| {
        let study = find(storage, &name)?;
        let trial = storage
            .trial_by_number(study.id, number)?
            .ok_or(hpo_core::Error::NoSuchTrial { study: study.name.clone(), number })?;
        let curves = curves_json(storage, trial.id)?;
        let verdicts: Vec<Value> = storage
            .pruner_verdicts(trial.id)?
            .into_iter()
            .map(|(step, v)| json!({"step": step, "decision": v.decision(), "reason": v.reason}))
            .collect();
        let mut doc = trial_summary(&trial);
        doc["intermediate_values"] =
            trial.intermediate_values.iter().map(|(s, v)| json!([s, value::number(*v)])).collect();
        doc["curves"] = json!(curves);
        doc["pruner_verdicts"] = json!(verdicts);
        // `hpo confirm`'s runs of this configuration with new seeds.
        let runs = hpo_core::run::confirm_runs_of(storage, &study, trial.number)?;
        doc["confirm_runs"] = runs.iter().map(trial_summary).collect();
        doc["user_attrs"] =
            trial.user_attrs.iter().map(|(k, v)| (k.clone(), value::attr_value(v))).collect();
        doc["system_attrs"] =
            trial.system_attrs.iter().map(|(k, v)| (k.clone(), value::attr_value(v))).collect();
        // A command trial's program output: the last 64 KiB of each stream.
        let dir = trials_root.map(|root| hpo_command::trial_dir(&root, &study.name, number));
        doc["log"] = match dir.filter(|dir| dir.is_dir()) {
            Some(dir) => {
                let tail = |name: &str| {
                    let bytes = std::fs::read(dir.join(name)).unwrap_or_default();
                    let from = bytes.len().saturating_sub(64 << 10);
                    String::from_utf8_lossy(&bytes[from..]).into_owned()
                };
                json!({"stdout": tail("stdout.log"), "stderr": tail("stderr.log")})
            }
            None => Value::Null,
        };
        Ok(doc)
    })
    .await?;
    Ok(Json(doc))
}

/// Every metric curve of a trial, by metric name, as `[step, value]` points.
pub(crate) fn curves_json(
    storage: &dyn Storage,
    trial: hpo_core::trial::TrialId,
) -> Result<std::collections::BTreeMap<String, Vec<Value>>, ApiError> {
    let mut curves: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for point in storage.metric_curves(trial)? {
        curves.entry(point.name).or_default().push(json!([point.step, value::number(point.value)]));
    }
    Ok(curves)
}

fn trial_number(text: &str) -> Result<u64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request(format!("trial: `{text}` is not a trial number (0, 1, 2, ...)"))
    })
}

/// How much of a body past the limit is read and dropped before the 413 goes out:
/// a client still sending its body then reads the answer, where a connection
/// closed under it would reset and lose the answer. A longer body is cut off.
const DRAIN_PAST_LIMIT: usize = 16 << 20;

/// A request body of at most [`AppState::body_limit`] bytes; a longer one is
/// answered 413 (`too_large`) once it is read through or `DRAIN_PAST_LIMIT` more
/// bytes have come.
pub(crate) struct LimitedBody(Bytes);

impl FromRequest<AppState> for LimitedBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        use http_body_util::BodyExt;
        let limit = state.body_limit;
        let mut body = request.into_body();
        let mut kept = Vec::new();
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|err| {
                ApiError::bad_request(format!("the request body could not be read: {err}"))
            })?;
            let Ok(data) = frame.into_data() else { continue };
            seen = seen.saturating_add(data.len());
            if seen <= limit {
                kept.extend_from_slice(&data);
            } else if seen > limit.saturating_add(DRAIN_PAST_LIMIT) {
                break;
            }
        }
        if seen > limit {
            return Err(ApiError {
                status: axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                error: "too_large",
                detail: format!(
                    "the body is over the length limit of {limit} bytes; send a shorter one"
                ),
            });
        }
        Ok(LimitedBody(Bytes::from(kept)))
    }
}

/// The body as JSON of type `T`: 400 naming the bad field otherwise.
fn json_body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|err| {
        ApiError::bad_request(format!("the body is not the JSON this endpoint takes: {err}"))
    })
}

/// External study `name` opened with its stored study file (once per server).
fn stored_study(
    state: &AppState,
    storage: &dyn Storage,
    name: &str,
) -> Result<Arc<ExternalStudy>, ApiError> {
    if let Some(open) = state.studies.lock().unwrap_or_else(|it| it.into_inner()).get(name) {
        return Ok(Arc::clone(open));
    }
    let study = find(storage, name)?;
    let text = study.spec_text.ok_or_else(|| {
        ApiError::conflict(format!(
            "study `{name}` was not made from a study file; ask, report and tell need an external study"
        ))
    })?;
    let spec = StudySpec::parse(&text, "stored study file")?;
    let open = Arc::new(ExternalStudy::open(storage, spec)?);
    let mut studies = state.studies.lock().unwrap_or_else(|it| it.into_inner());
    Ok(Arc::clone(studies.entry(name.to_owned()).or_insert(open)))
}

/// External study `name` opened with the study file `text` of an ask's body: the
/// stored one when they are the same file; otherwise opened for this ask (which
/// checks that the file fits the stored study, or creates the study).
fn study_of_file(
    state: &AppState,
    storage: &dyn Storage,
    name: &str,
    text: &str,
) -> Result<Arc<ExternalStudy>, ApiError> {
    if let Some(open) = state.studies.lock().unwrap_or_else(|it| it.into_inner()).get(name)
        && open.spec.text == text
    {
        return Ok(Arc::clone(open));
    }
    let spec = StudySpec::parse(text, "request body")?;
    if spec.name != name {
        return Err(ApiError::bad_request(format!(
            "the study file names the study `{}`, and the URL `{name}`; make them agree",
            spec.name
        )));
    }
    let open = Arc::new(ExternalStudy::open(storage, spec)?);
    if open.study.spec_text.as_deref() == Some(text) {
        let mut studies = state.studies.lock().unwrap_or_else(|it| it.into_inner());
        return Ok(Arc::clone(studies.entry(name.to_owned()).or_insert(open)));
    }
    Ok(open)
}

async fn ask(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    LimitedBody(bytes): LimitedBody,
) -> ApiResult {
    state.access.check(&headers, Role::Write)?;
    let cache = state.clone();
    let doc = on_store(&state, move |storage| {
        let study = if bytes.iter().all(u8::is_ascii_whitespace) {
            stored_study(&cache, storage, &name).map_err(|err| match err.status {
                axum::http::StatusCode::NOT_FOUND => ApiError::not_found(format!(
                    "no study named `{name}`; send its study file as the body to create it"
                )),
                _ => err,
            })?
        } else {
            let text = std::str::from_utf8(&bytes).map_err(|err| {
                ApiError::bad_request(format!("the study file is not UTF-8 text: {err}"))
            })?;
            study_of_file(&cache, storage, &name, text)?
        };
        let Some(trial) = study.ask(storage)? else {
            let spec = &study.spec;
            return Err(ApiError::conflict(format!(
                "study `{}` has met its budget of {} trials; raise `[study] trials` to ask for more",
                spec.name,
                spec.trials.map_or_else(|| "all".to_owned(), |n| n.to_string())
            )));
        };
        let params: Map<String, Value> =
            trial.params.iter().map(|(k, v)| (k.clone(), value::param(v))).collect();
        Ok(json!({"trial": trial.number, "params": params}))
    })
    .await?;
    Ok(Json(doc))
}

/// A value in a body: a JSON number, or a string (`"NaN"`, `"inf"`) for what JSON
/// numbers cannot hold, so a non-finite value is told as such (422), not as bad
/// JSON.
#[derive(Deserialize)]
#[serde(untagged)]
enum BodyValue {
    Number(f64),
    Text(String),
}

impl BodyValue {
    fn get(&self, field: &str) -> Result<f64, ApiError> {
        match self {
            BodyValue::Number(v) => Ok(*v),
            BodyValue::Text(text) => text
                .trim()
                .parse()
                .map_err(|_| ApiError::bad_request(format!("{field}: `{text}` is not a number"))),
        }
    }
}

/// A write to one trial: the token checked, the trial number and the JSON body read.
fn trial_request<B: serde::de::DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    number: &str,
    LimitedBody(bytes): LimitedBody,
) -> Result<(u64, B), ApiError> {
    state.access.check(headers, Role::Write)?;
    let number = trial_number(number)?;
    Ok((number, json_body(&bytes)?))
}

/// Runs `f` on the store with external study `name`.
async fn on_study<T: Send + 'static>(
    state: &AppState,
    name: String,
    f: impl FnOnce(&dyn Storage, &ExternalStudy) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let cache = state.clone();
    on_store(state, move |storage| {
        let study = stored_study(&cache, storage, &name)?;
        f(storage, &study)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepBody {
    step: u64,
    value: BodyValue,
}

async fn report_step(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, number)): Path<(String, String)>,
    bytes: LimitedBody,
) -> ApiResult {
    let (number, step_body): (u64, StepBody) = trial_request(&state, &headers, &number, bytes)?;
    let value = step_body.value.get("value")?;
    let step = step_body.step;
    if i64::try_from(step).is_err() {
        return Err(ApiError::bad_request(format!(
            "step: {step} is past the largest step, {}",
            i64::MAX
        )));
    }
    let doc = on_study(&state, name, move |storage, study| {
        Ok(match study.report_step(storage, number, step, value)? {
            None => json!({"trial": number, "step": step, "prune": false}),
            Some(reason) => json!({"trial": number, "step": step, "prune": true, "reason": reason}),
        })
    })
    .await?;
    Ok(Json(doc))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TellBody {
    value: Option<BodyValue>,
    state: Option<String>,
}

async fn tell(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, number)): Path<(String, String)>,
    bytes: LimitedBody,
) -> ApiResult {
    let (number, tell_body): (u64, TellBody) = trial_request(&state, &headers, &number, bytes)?;
    let outcome = match (tell_body.state.as_deref(), &tell_body.value) {
        (None | Some("complete"), Some(value)) => Outcome::Complete(value.get("value")?),
        (None | Some("complete"), None) => {
            return Err(ApiError::bad_request(
                "value: a complete trial needs its value; or send `\"state\": \"fail\"` or `\"pruned\"`",
            ));
        }
        (Some("pruned"), None) => Outcome::Pruned,
        (Some("fail"), None) => Outcome::Fail,
        (Some("pruned" | "fail"), Some(_)) => {
            return Err(ApiError::bad_request(
                "value: only a complete trial has a value; leave it out with `state`",
            ));
        }
        (Some(other), _) => {
            return Err(ApiError::bad_request(format!(
                "state: unknown state `{other}`; use complete, pruned or fail"
            )));
        }
    };
    let doc = on_study(&state, name, move |storage, study| {
        let told = study.tell(storage, number, outcome)?;
        Ok(json!({
            "trial": told.number,
            "state": told.state.to_string(),
            "value": told.value.map(value::number),
        }))
    })
    .await?;
    Ok(Json(doc))
}
