//! `hpo ask`, `hpo tell` and `hpo report-step`: a program outside hpo drives a
//! study (`[objective] kind = "external"`) through the store; each command prints
//! one JSON line for scripts to read.

use std::path::Path;

use crate::db::Database;
use anyhow::{Result, bail};
use hpo_core::run::external::{self, Outcome};
use hpo_core::spec::StudySpec;
use serde_json::json;

/// The study file, parsed.
fn read_spec(path: &Path) -> Result<StudySpec> {
    crate::read_study_file(path)
}

/// The database, created with its folder for `ask` (the first call creates the
/// study), required to exist otherwise.
fn open(db: &Path, create: bool) -> Result<Database> {
    if !create && crate::db::postgres_url(db).is_none() && !db.exists() {
        bail!(
            "no database at {}; `hpo ask STUDY.toml` creates it, or point --db (or HPO_DB) at one",
            db.display()
        );
    }
    crate::db::open_writable(db, true, false)
}

/// `{"trial": N, "params": {...}}` of a new Running trial.
pub fn ask(study: &Path, db: &Path) -> Result<String> {
    let spec = read_spec(study)?;
    let storage = open(db, true)?;
    let Some(trial) = external::ask_external(&*storage, &spec)? else {
        bail!(
            "study `{}` has met its budget of {} trials; raise `[study] trials` to ask for more",
            spec.name,
            spec.trials.map_or_else(|| "all".to_owned(), |n| n.to_string())
        );
    };
    let params: serde_json::Map<String, serde_json::Value> =
        trial.params.iter().map(|(k, v)| (k.clone(), hpo_store::json::param(v))).collect();
    Ok(json!({"trial": trial.number, "params": params}).to_string())
}

/// `{"trial": N, "state": "...", "value": V}` of the finished trial.
pub fn tell(study: &Path, db: &Path, number: u64, outcome: Outcome) -> Result<String> {
    let spec = read_spec(study)?;
    let storage = open(db, false)?;
    let trial = external::tell(&*storage, &spec, number, outcome)?;
    Ok(json!({
        "trial": trial.number,
        "state": trial.state.to_string(),
        "value": trial.value,
    })
    .to_string())
}

/// `{"trial": N, "step": S, "prune": bool}`, plus `"reason"` when pruning.
pub fn report_step(study: &Path, db: &Path, number: u64, step: u64, value: f64) -> Result<String> {
    let spec = read_spec(study)?;
    let storage = open(db, false)?;
    Ok(match external::report_step(&*storage, &spec, number, step, value)? {
        None => json!({"trial": number, "step": step, "prune": false}),
        Some(reason) => json!({"trial": number, "step": step, "prune": true, "reason": reason}),
    }
    .to_string())
}
