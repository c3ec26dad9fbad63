//! `hpo report` and `hpo diff`: read a study (or its state at an earlier date) from
//! the store into an `hpo_report::StudyRecord`, then let hpo-report draw or compare.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use hpo_core::pruner::PrunerKind;
use hpo_core::spec::{SamplerSpec, StudySpec};
use hpo_core::storage::Storage;
use hpo_core::trial::Timestamp;
use hpo_report::StudyRecord;

/// A study named on the command line: `NAME`, `NAME@DATE` (its state at that date),
/// or a study file whose `[study] name` is used.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyRef {
    /// The study's name.
    pub name: String,
    /// Only trials finished by this time (UTC), when given.
    pub until: Option<Timestamp>,
}

impl StudyRef {
    /// Parses `NAME`, `NAME@2026-11-27`, `NAME@2026-11-27T18:00`, or a `.toml` path.
    /// An empty name (`@DATE`) means `default`'s name.
    pub fn parse(text: &str, default: Option<&str>) -> Result<StudyRef> {
        let (name, date) = match text.split_once('@') {
            Some((name, date)) => (name, Some(date)),
            None => (text, None),
        };
        let name = if name.is_empty() {
            match default {
                Some(it) => it.to_owned(),
                None => bail!("`{text}` names no study; write NAME@DATE"),
            }
        } else if name.ends_with(".toml") && Path::new(name).exists() {
            let body = std::fs::read_to_string(name)
                .with_context(|| format!("cannot read study file {name}"))?;
            StudySpec::parse(&body, name)?.name
        } else {
            name.to_owned()
        };
        let until = date.map(parse_date).transpose()?;
        Ok(StudyRef { name, until })
    }
}

/// `2026-11-27`, `2026-11-27T18:00` or `2026-11-27T18:00:00` (UTC) as the end of that
/// day, minute or second.
fn parse_date(text: &str) -> Result<Timestamp> {
    let bad =
        || anyhow::anyhow!("`{text}` is not a date; write YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)");
    let numbers = |part: &str, sep: char| -> Result<Vec<i64>> {
        part.split(sep).map(|p| p.parse::<i64>().map_err(|_| bad())).collect()
    };
    let (day, time) = match text.split_once(['T', ' ']) {
        Some((day, time)) => (day, Some(time)),
        None => (text, None),
    };
    match numbers(day, '-')?[..] {
        [_, month, dayn] if (1..=12).contains(&month) && (1..=31).contains(&dayn) => {}
        _ => return Err(bad()),
    }
    let time = match time {
        None => "23:59:59".to_owned(),
        Some(time) => match numbers(time, ':')?[..] {
            [h, m] if h < 24 && m < 60 => format!("{time}:59"),
            [h, m, s] if h < 24 && m < 60 && s < 60 => time.to_owned(),
            _ => return Err(bad()),
        },
    };
    hpo_store::encode::parse_datetime(&format!("{day} {time}.999999")).ok_or_else(bad)
}

/// Reads a study from the store: trials (those finished by `until`, if given), the
/// curves of the trials the report draws, and the setup from the stored study file.
pub fn load(storage: &dyn Storage, study: &StudyRef) -> Result<StudyRecord> {
    let found = crate::inspect::find(storage, &study.name)?;
    let mut trials = storage.trials(found.id, None)?;
    if let Some(until) = study.until {
        trials.retain(|t| t.datetime_complete.is_some_and(|end| end <= until));
    }
    let spec = found.spec_text.as_deref().and_then(|text| StudySpec::parse(text, "stored").ok());
    let mut record = StudyRecord {
        name: match study.until {
            Some(until) => {
                format!(
                    "{} as of {}",
                    found.name,
                    hpo_store::encode::datetime(until)[..16].to_owned()
                )
            }
            None => found.name.clone(),
        },
        direction: found.direction,
        metric: found.metric.clone().unwrap_or_else(|| "value".to_owned()),
        setup: spec.as_ref().map(setup).unwrap_or_default(),
        spec_text: found.spec_text.clone(),
        trials,
        curves: Default::default(),
    };
    // Curves only of the trials a chart draws: reading every curve of a large study
    // would cost more than the whole report.
    let drawn: Vec<_> = hpo_report::data::ranked(&record)
        .into_iter()
        .take(hpo_report::data::CURVE_TRIALS)
        .map(|t| t.id)
        .collect();
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

/// `hpo report`: writes the report and says where.
pub fn report(
    storage: &dyn Storage,
    study: &str,
    compare: Option<&str>,
    out: Option<PathBuf>,
) -> Result<String> {
    let study = StudyRef::parse(study, None)?;
    let record = load(storage, &study)?;
    let baseline = compare
        .map(|text| StudyRef::parse(text, Some(&study.name)).and_then(|b| load(storage, &b)))
        .transpose()?;
    let dir = out.unwrap_or_else(|| PathBuf::from("reports").join(&study.name));
    let written = hpo_report::write_report(&record, baseline.as_ref(), &dir)?;
    Ok(format!(
        "wrote {} and {} chart files in {}",
        written.index.display(),
        written.charts.len(),
        dir.display()
    ))
}

/// `hpo diff A B`: the comparison as text, and whether B is worse beyond the noise.
pub fn diff(storage: &dyn Storage, a: &str, b: &str) -> Result<(String, bool)> {
    let a_ref = StudyRef::parse(a, None)?;
    let b_ref = StudyRef::parse(b, Some(&a_ref.name))?;
    let (a, b) = (load(storage, &a_ref)?, load(storage, &b_ref)?);
    if a.direction != b.direction || a.metric != b.metric {
        bail!(
            "`{}` optimizes {} ({}) and `{}` {} ({}): only studies of the same metric and direction compare",
            a.name,
            a.metric,
            a.direction,
            b.name,
            b.metric,
            b.direction
        );
    }
    let comparison = hpo_report::data::compare(&a, &b);
    let worse = comparison.verdict == hpo_report::data::Verdict::WorseBeyondNoise;
    Ok((comparison.to_string(), worse))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_end_of_day_or_minute_utc() {
        let day = parse_date("2026-11-27").unwrap();
        assert_eq!(hpo_store::encode::datetime(day)[..19].to_owned(), "2026-11-27 23:59:59");
        let minute = parse_date("2026-11-27T08:30").unwrap();
        assert_eq!(hpo_store::encode::datetime(minute)[..19].to_owned(), "2026-11-27 08:30:59");
        assert!(parse_date("27/11/2026").is_err());
        assert!(parse_date("2026-13-01").is_err());
    }

    #[test]
    fn study_refs_name_a_study_and_maybe_a_date() {
        let plain = StudyRef::parse("digits", None).unwrap();
        assert_eq!((plain.name.as_str(), plain.until), ("digits", None));
        let earlier = StudyRef::parse("@2026-11-27", Some("digits")).unwrap();
        assert_eq!(earlier.name, "digits");
        assert!(earlier.until.is_some());
        assert!(StudyRef::parse("@2026-11-27", None).is_err());
    }
}
