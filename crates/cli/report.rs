//! `hpo report` and `hpo diff`: read a study (or its state at an earlier date) from
//! the store into an `hpo_report::StudyRecord`, then let hpo-report draw or compare.

use std::path::{Path, PathBuf};

use anyhow::Result;
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
    /// The text as given when it has a date (`NAME@DATE`): also the name of a study
    /// of its own when it is a night of a nightly study, which is then read instead.
    pub whole: Option<String>,
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
                None => {
                    return Err(crate::usage(format!("`{text}` names no study; write NAME@DATE")));
                }
            }
        } else if name.ends_with(".toml") && Path::new(name).exists() {
            crate::read_study_file(Path::new(name))?.name
        } else {
            name.to_owned()
        };
        let until = date.map(parse_date).transpose()?;
        let whole = date.map(|_| text.to_owned());
        Ok(StudyRef { name, until, whole })
    }
}

/// `2026-11-27`, `2026-11-27T18:00` or `2026-11-27T18:00:00` (UTC) as the end of that
/// day, minute or second.
fn parse_date(text: &str) -> Result<Timestamp> {
    hpo_store::encode::parse_until(text).ok_or_else(|| {
        crate::usage(format!("`{text}` is not a date; write YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)"))
    })
}

/// Reads a study from the store: trials (those finished by `until`, if given), the
/// curves of the trials the report draws, and the setup from the stored study file
/// (`hpo_report::load`).
pub fn load(storage: &dyn Storage, study: &StudyRef) -> Result<StudyRecord> {
    read(storage, study, false)
}

/// [`load`] of a study of any number of objectives (what `hpo report` reads).
fn load_any(storage: &dyn Storage, study: &StudyRef) -> Result<StudyRecord> {
    read(storage, study, true)
}

fn read(storage: &dyn Storage, study: &StudyRef, several: bool) -> Result<StudyRecord> {
    if let Some(whole) = &study.whole
        && let Some(night) = storage.find_study(whole)?
    {
        let night = night.single_objective()?;
        return Ok(hpo_report::load::study_record(storage, &night, night.name.clone(), None)?);
    }
    let found = if several {
        crate::inspect::find_any(storage, &study.name)?
    } else {
        crate::inspect::find(storage, &study.name)?
    };
    let name = match study.until {
        Some(until) => {
            format!("{} as of {}", found.name, &hpo_store::encode::datetime(until)[..16])
        }
        None => found.name.clone(),
    };
    Ok(hpo_report::load::study_record(storage, &found, name, study.until)?)
}

/// `hpo report`: writes the report and says where. The report's pick is stored in
/// the database (`crate::pick`) when hpo made the study and the file is writable;
/// a database Optuna wrote, or a read-only one, is never changed.
pub fn report(
    storage: &dyn Storage,
    db: &Path,
    study: &str,
    compare: Option<&str>,
    out: Option<PathBuf>,
) -> Result<String> {
    let study = StudyRef::parse(study, None)?;
    let record = load_any(storage, &study)?;
    let mut stored = String::new();
    // A study of several objectives has a front, not one pick to store.
    if study.until.is_none()
        && record.spec_text.is_some()
        && record.objectives.len() == 1
        && let Some(pick) = crate::pick::of(&record)
    {
        // The report is written whatever happens here: a pick that cannot be
        // stored is a note, not an error.
        let writable = match crate::db::postgres_url(db) {
            Some(_) => crate::db::open_writable(db, false, true),
            None => hpo_store::SqliteStorage::open(db)
                .map(|it| crate::db::Database::Sqlite(it.into()))
                .map_err(|err| {
                    if err.is_read_only() {
                        anyhow::anyhow!("the database is read-only")
                    } else {
                        anyhow::Error::new(err)
                    }
                }),
        };
        let outcome = writable.and_then(|writable| {
            let found = crate::inspect::find(&*writable, &study.name)?;
            crate::pick::store(&*writable, &found, &pick)
        });
        stored = match outcome {
            Ok(()) => format!("; pick: trial {} (stored in the database)", pick.number),
            Err(err) => format!("; pick: trial {} (not stored: {err:#})", pick.number),
        };
    }
    let baseline = compare
        .map(|text| StudyRef::parse(text, Some(&study.name)).and_then(|b| load(storage, &b)))
        .transpose()?;
    let dir = out.unwrap_or_else(|| PathBuf::from("reports").join(&study.name));
    let written = hpo_report::write_report(&record, baseline.as_ref(), &dir)?;
    Ok(format!(
        "wrote {} and {} chart files in {}{stored}",
        written.index.display(),
        written.charts.len(),
        dir.display()
    ))
}

/// Where a side of `hpo diff` reads from: `A.sqlite:NAME` names a database of its
/// own; otherwise `default` (`--db-a`/`--db-b`, else `--db`).
pub fn split_database<'t>(text: &'t str, default: &Path) -> (PathBuf, &'t str) {
    if let Some((path, rest)) = text.split_once(':') {
        let looks_like_db = [".sqlite", ".sqlite3", ".db"].iter().any(|ext| path.ends_with(ext))
            || Path::new(path).is_file();
        if looks_like_db && !rest.is_empty() {
            return (PathBuf::from(path), rest);
        }
    }
    (default.to_path_buf(), text)
}

/// `hpo diff A B`: B's pick against A's (the confirmed means where `hpo confirm`
/// ran), each side read from its own storage.
pub fn diff(
    storage_a: &dyn Storage,
    a: &str,
    storage_b: &dyn Storage,
    b: &str,
) -> Result<hpo_report::data::Comparison> {
    let a_ref = StudyRef::parse(a, None)?;
    let b_ref = StudyRef::parse(b, Some(&a_ref.name))?;
    let (a, b) = (load(storage_a, &a_ref)?, load(storage_b, &b_ref)?);
    if a.direction != b.direction || a.metric != b.metric {
        return Err(crate::usage(format!(
            "`{}` optimizes {} ({}) and `{}` {} ({}): only studies of the same metric and direction compare",
            a.name, a.metric, a.direction, b.name, b.metric, b.direction
        )));
    }
    Ok(hpo_report::data::compare(&a, &b))
}

/// The comparison as one JSON document, for machines.
pub fn diff_json(comparison: &hpo_report::data::Comparison) -> serde_json::Value {
    use hpo_report::data::{Side, Verdict};
    use serde_json::json;
    let number = |v: f64| if v.is_finite() { json!(v) } else { json!(v.to_string()) };
    let side = |side: &Side| {
        json!({
            "study": side.label,
            "complete_trials": side.n_complete,
            "pick": side.best.as_ref().map(|best| json!({
                "trial": best.number,
                "value": number(best.value),
                "confirmed": best.confirmed.is_some(),
                "confirm_runs": best.confirmed.map_or(0, |ci| ci.n),
                "ci95": best.confirmed.map(|ci| number(ci.half_width)),
                "gap": best.gap.map(number),
                "params": best.params.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            })),
        })
    };
    let verdict = match comparison.verdict {
        Verdict::Better => "better",
        Verdict::Same => "same",
        Verdict::WorseWithinNoise => "worse_within_noise",
        Verdict::WorseBeyondNoise => "worse_beyond_noise",
        Verdict::Unknown => "unknown",
    };
    json!({
        "metric": comparison.metric,
        "direction": comparison.direction.to_string(),
        "a": side(&comparison.a),
        "b": side(&comparison.b),
        "moved": comparison.moved.iter().map(|(name, a, b)| json!({"param": name, "a": a, "b": b})).collect::<Vec<_>>(),
        "seed_noise": comparison.noise.map(number),
        "verdict": verdict,
        "worse": comparison.verdict == Verdict::WorseBeyondNoise,
    })
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
    fn a_side_may_name_its_own_database() {
        let default = Path::new("db/hpo.sqlite");
        assert_eq!(split_database("nightly.sqlite:reg", default), ("nightly.sqlite".into(), "reg"));
        assert_eq!(
            split_database("old.db:reg@2026-11-27", default),
            ("old.db".into(), "reg@2026-11-27")
        );
        // A study name with a colon stays a study name.
        assert_eq!(split_database("reg:confirm", default), (default.to_path_buf(), "reg:confirm"));
        assert_eq!(split_database("reg", default), (default.to_path_buf(), "reg"));
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
