//! A study read from any `Storage` into a [`StudyRecord`]: what `hpo report`,
//! `hpo diff`, `hpo show` and the server's report endpoint all read, so every view
//! computes from the same trials.

use std::collections::BTreeSet;

use hpo_core::pruner::PrunerKind;
use hpo_core::spec::{SamplerSpec, StudySpec};
use hpo_core::storage::Storage;
use hpo_core::study::Study;
use hpo_core::trial::{AttrValue, FrozenTrial, Timestamp, TrialId};

use crate::StudyRecord;
use crate::data::{CURVE_TRIALS, NightPoint, NightTrend, confirm_groups, ranked, recommend};

/// Study user attribute of a night: the `[study] name` it is a night of.
pub const NIGHT_OF: &str = "nightly_of";
/// Study user attribute of a night: its date, `YYYY-MM-DD`.
pub const NIGHT_DATE: &str = "nightly_date";
/// Study user attribute of a night: the night before's study, if there was one.
pub const NIGHT_PREVIOUS: &str = "nightly_previous";
/// Study user attribute of a night: its verdict against the night before.
pub const NIGHT_VERDICT: &str = "nightly_verdict";
/// Study user attribute of a night: how many configurations it took from the night
/// before as its first trials.
pub const NIGHT_WARM_START: &str = "nightly_warm_start";

/// The study name of `base`'s night of `date`: `base@YYYY-MM-DD`.
pub fn night_name(base: &str, date: &str) -> String {
    format!("{base}@{date}")
}

/// The date of night `name` when it is one of `base`'s nights (`base@YYYY-MM-DD`,
/// nothing after the date).
pub fn night_date<'n>(name: &'n str, base: &str) -> Option<&'n str> {
    let date = name.strip_prefix(base)?.strip_prefix('@')?;
    let digits = |range: std::ops::Range<usize>| date[range].bytes().all(|b| b.is_ascii_digit());
    let shaped = date.len() == 10
        && date.is_char_boundary(10)
        && digits(0..4)
        && &date[4..5] == "-"
        && digits(5..7)
        && &date[7..8] == "-"
        && digits(8..10);
    shaped.then_some(date)
}

/// `base`'s nights in `storage`, oldest first: each night's study with its date.
pub fn night_studies(storage: &dyn Storage, base: &str) -> hpo_core::Result<Vec<(String, Study)>> {
    let mut nights: Vec<(String, Study)> = storage
        .study_counts()?
        .into_iter()
        .filter_map(|s| Some((night_date(&s.study.name, base)?.to_owned(), s.study)))
        .collect();
    nights.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(nights)
}

/// Every night of `base` as the trend chart shows it: each night's pick (the same
/// function the report uses, over its trials and confirm runs), its budget used and
/// failures, and the verdict `hpo nightly` stored. Reads trials and attributes
/// only, which `hpo gc` keeps, so the trend stays whole after old curves go.
pub fn nights(storage: &dyn Storage, base: &str) -> hpo_core::Result<NightTrend> {
    let mut points = Vec::new();
    let mut metric = String::new();
    for (date, study) in night_studies(storage, base)? {
        let trials = trials_with_confirm_runs(storage, &study)?;
        let attrs = storage.study_user_attrs(study.id)?;
        metric = study.metric.clone().unwrap_or_else(|| "value".to_owned());
        let record = StudyRecord {
            name: study.name.clone(),
            direction: study.direction,
            metric: metric.clone(),
            objectives: vec![(metric.clone(), study.direction)],
            setup: Vec::new(),
            spec_text: None,
            trials,
            curves: Default::default(),
            study_attrs: Vec::new(),
            trend: None,
        };
        let pick = recommend(&record, confirm_groups(&record).as_ref());
        let search = crate::data::search_trials(&record);
        let (mut n, mut failed) = (0, 0);
        for trial in search {
            n += 1;
            failed += usize::from(trial.state == hpo_core::trial::TrialState::Fail);
        }
        points.push(NightPoint {
            date,
            study: study.name.clone(),
            value: pick.as_ref().map(|p| p.value),
            ci95: pick.as_ref().and_then(|p| p.confirmed).map(|ci| ci.half_width),
            trials: n,
            failed,
            verdict: match attrs.get(NIGHT_VERDICT) {
                Some(AttrValue::Str(text)) => Some(text.clone()),
                _ => None,
            },
        });
    }
    Ok(NightTrend { base: base.to_owned(), metric, nights: points })
}

/// The study's trials, then its confirm runs kept in its confirm study
/// (`hpo_core::run::confirm_runs`): each confirm run carries `hpo:confirm_of`, and
/// its number is its own study's.
pub fn trials_with_confirm_runs(
    storage: &dyn Storage,
    study: &Study,
) -> hpo_core::Result<Vec<FrozenTrial>> {
    let mut trials = storage.trials(study.id, None)?;
    let known: BTreeSet<TrialId> = trials.iter().map(|t| t.id).collect();
    let runs = hpo_core::run::confirm_runs(storage, study)?;
    trials.extend(runs.into_iter().filter(|t| !known.contains(&t.id)));
    Ok(trials)
}

/// Reads `study` as the record named `name`: its trials and confirm runs (those
/// finished by `until`, if given), the curves of the trials the report draws, its
/// user attributes, and its setup from the stored study file.
pub fn study_record(
    storage: &dyn Storage,
    study: &Study,
    name: String,
    until: Option<Timestamp>,
) -> hpo_core::Result<StudyRecord> {
    let mut trials = trials_with_confirm_runs(storage, study)?;
    if let Some(until) = until {
        trials.retain(|t| t.datetime_complete.is_some_and(|end| end <= until));
    }
    let spec = study.spec_text.as_deref().and_then(|text| StudySpec::parse(text, "stored").ok());
    let metric = study.metric.clone().unwrap_or_else(|| "value".to_owned());
    let objectives =
        study.objective_names().into_iter().zip(study.directions.iter().copied()).collect();
    let mut record = StudyRecord {
        name,
        direction: study.direction,
        metric,
        objectives,
        setup: spec.as_ref().map(setup).unwrap_or_default(),
        spec_text: study.spec_text.clone(),
        trials,
        curves: Default::default(),
        study_attrs: storage
            .study_user_attrs(study.id)?
            .into_iter()
            .map(|(key, value)| {
                let text = match value {
                    AttrValue::Str(text) => text,
                    other => other.to_string(),
                };
                (key, text)
            })
            .collect(),
        trend: None,
    };
    for run in crate::data::model_runs(&record.trials) {
        record.setup.push(("proposed by".to_owned(), run.to_string()));
    }
    // Curves only of the trials a chart draws: reading every curve of a large study
    // would cost more than the whole report.
    let drawn: Vec<TrialId> =
        ranked(&record).into_iter().take(CURVE_TRIALS).map(|t| t.id).collect();
    for id in drawn {
        record.curves.insert(id, storage.metric_curves(id)?);
    }
    Ok(record)
}

/// The study file's budget, sampler, pruner and early stopping, in words.
fn setup(spec: &StudySpec) -> Vec<(String, String)> {
    let budget = match (spec.trials, spec.timeout) {
        (Some(n), Some(t)) => format!("{n} trials or {} s", t.as_secs()),
        (Some(n), None) => format!("{n} trials"),
        (None, Some(t)) => format!("{} s", t.as_secs()),
        (None, None) => "the whole grid".to_owned(),
    };
    let sampler = match spec.sampler {
        SamplerSpec::Grid => "grid",
        SamplerSpec::Random => "random",
        SamplerSpec::Tpe(_) => "TPE",
        SamplerSpec::Gp(_) => "Gaussian process",
        SamplerSpec::Auto => "auto (GP, TPE or random search by the space and the history)",
        SamplerSpec::Nsga2(_) => "NSGA-II",
    };
    let pruner = match spec.pruner.kind {
        PrunerKind::None => "none".to_owned(),
        ref other => {
            let text = format!("{other:?}");
            text.split_whitespace().next().unwrap_or("").to_lowercase()
        }
    };
    let early = spec.early_stopping.as_ref().map_or("off".to_owned(), |e| {
        format!("patience {} epochs on {} (min delta {})", e.patience, e.monitor, e.min_delta)
    });
    vec![
        ("budget".to_owned(), budget),
        ("seed".to_owned(), spec.seed.to_string()),
        ("sampler".to_owned(), sampler.to_owned()),
        ("pruner".to_owned(), pruner),
        ("early stopping".to_owned(), early),
    ]
}
