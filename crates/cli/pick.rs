//! The configuration a study recommends, "the pick": one fact every view shows.
//!
//! It is computed by one function, hpo-report's `recommend` over the study's
//! trials and its confirm runs (the best confirmed mean once `hpo confirm` ran,
//! else the best single-seed value, marked provisional). `hpo confirm` and
//! `hpo report` store it with its evidence as study user attributes (`pick_*`:
//! what Optuna's tools show as `study.user_attrs`); `hpo show`, `hpo diff`,
//! `hpo export` and the report compute the same function over the same trials and
//! say when the stored pick is out of date.

use anyhow::Result;
use hpo_core::display;
use hpo_core::storage::Storage;
use hpo_core::study::Study;
use hpo_core::trial::{AttrValue, Timestamp};
use hpo_report::StudyRecord;
use hpo_report::data::{Recommendation, confirm_groups, recommend};

/// Study user attribute: the picked trial's number.
pub const TRIAL: &str = "pick_trial";
/// Study user attribute: its value (the confirmed mean, or the single-seed value).
pub const VALUE: &str = "pick_value";
/// Study user attribute: what the pick rests on, in words.
pub const BASIS: &str = "pick_basis";
/// Study user attribute: half the width of the 95% interval of the confirmed mean.
pub const CI95: &str = "pick_ci95";
/// Study user attribute: how many confirm runs the mean is over.
pub const CONFIRM_RUNS: &str = "pick_confirm_runs";
/// Study user attribute: the runner-up's trial number.
pub const RUNNER_UP: &str = "pick_runner_up";
/// Study user attribute: the runner-up's value.
pub const RUNNER_UP_VALUE: &str = "pick_runner_up_value";
/// Study user attribute: the test that compared them.
pub const TEST: &str = "pick_test";
/// Study user attribute: when the pick was stored (UTC).
pub const DECIDED_AT: &str = "pick_decided_at";

/// The study's pick, computed from `record` (trials and confirm runs).
pub fn of(record: &StudyRecord) -> Option<Recommendation> {
    recommend(record, confirm_groups(record).as_ref())
}

/// The pick of the study named `name`, read from `storage` as the report reads it.
pub fn of_study(storage: &dyn Storage, name: &str) -> Result<Option<Recommendation>> {
    let study = crate::report::StudyRef { name: name.to_owned(), until: None, whole: None };
    Ok(of(&crate::report::load(storage, &study)?))
}

/// The pick's evidence as study user attributes.
fn attrs(pick: &Recommendation, now: Timestamp) -> Vec<(&'static str, AttrValue)> {
    let mut out = vec![
        (TRIAL, AttrValue::Number(pick.number as f64)),
        (VALUE, AttrValue::Number(pick.value)),
        (BASIS, AttrValue::Str(pick.basis())),
        (DECIDED_AT, AttrValue::Str(hpo_store::encode::datetime(now))),
    ];
    let none = AttrValue::Null;
    match &pick.confirmed {
        Some(ci) => {
            out.push((CI95, AttrValue::Number(ci.half_width)));
            out.push((CONFIRM_RUNS, AttrValue::Number(ci.n as f64)));
        }
        None => {
            out.push((CI95, none.clone()));
            out.push((CONFIRM_RUNS, AttrValue::Number(0.0)));
        }
    }
    match pick.runner_up {
        Some((number, value)) => {
            out.push((RUNNER_UP, AttrValue::Number(number as f64)));
            out.push((RUNNER_UP_VALUE, AttrValue::Number(value)));
        }
        None => {
            out.push((RUNNER_UP, none.clone()));
            out.push((RUNNER_UP_VALUE, none.clone()));
        }
    }
    out.push((
        TEST,
        match pick.welch_p {
            Some(p) => AttrValue::Str(format!("Welch t-test against the runner-up: p = {p:.3}")),
            None => AttrValue::Str("none: fewer than two confirm runs on each side".to_owned()),
        },
    ));
    out
}

/// Stores `pick` on `study` (replacing the pick stored before).
pub fn store(storage: &dyn Storage, study: &Study, pick: &Recommendation) -> Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    let attrs: Vec<(String, AttrValue)> =
        attrs(pick, Timestamp(now)).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    storage.set_study_user_attrs(study.id, &attrs)?;
    Ok(())
}

/// The trial number of the pick stored on `study`, if one was stored.
pub fn stored(storage: &dyn Storage, study: &Study) -> Result<Option<u64>> {
    let attrs = storage.study_user_attrs(study.id)?;
    Ok(attrs
        .get(TRIAL)
        .and_then(AttrValue::as_f64)
        .filter(|n| *n >= 0.0 && n.fract() == 0.0)
        .map(|n| n as u64))
}

/// `trial 21  val_loss=0.0915 ± 0.0028`: the pick and its value in one phrase.
pub fn headline(pick: &Recommendation, metric: &str) -> String {
    match &pick.confirmed {
        Some(ci) => format!(
            "trial {}  {metric}={} ± {}",
            pick.number,
            display::value(pick.value),
            display::value(ci.half_width)
        ),
        None => format!("trial {}  {metric}={}", pick.number, display::value(pick.value)),
    }
}

/// What the pick rests on and what to do about it, as lines for `hpo show`.
pub fn evidence(pick: &Recommendation, stored: Option<u64>, study_file_known: bool) -> Vec<String> {
    let mut lines = vec![pick.basis()];
    if let Some((number, value)) = pick.runner_up {
        let test = pick.welch_p.map_or(String::new(), |p| format!(" (Welch p = {p:.3})"));
        lines.push(format!("runner-up: trial {number} at {}{test}", display::value(value)));
    }
    if pick.is_provisional() {
        lines.push(if study_file_known {
            "confirm it: hpo confirm STUDY.toml --top 3 --seeds 3 (trains the best trials again with new seeds)".to_owned()
        } else {
            "hpo confirm needs the study file this study was run from; this study has none (Optuna wrote it)".to_owned()
        });
    }
    match stored {
        Some(number) if number != pick.number => lines.push(format!(
            "the stored pick (trial {number}) is out of date: the study changed since; `hpo report` or `hpo confirm` stores this one"
        )),
        _ => {}
    }
    lines
}
