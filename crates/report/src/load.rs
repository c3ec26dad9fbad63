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
use crate::data::{CURVE_TRIALS, ranked};

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
    let mut record = StudyRecord {
        name,
        direction: study.direction,
        metric: study.metric.clone().unwrap_or_else(|| "value".to_owned()),
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
    };
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
