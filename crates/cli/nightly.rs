//! `hpo nightly`: one night of a study that runs every night.
//!
//! A night is a study of its own, `NAME@YYYY-MM-DD` (`NAME` the study file's
//! `[study] name`), so nights sort by name and each keeps its trials, pick and
//! report. Its study user attributes (`hpo_report::load::NIGHT_*`) link it to the
//! night before. A night runs in five steps, each of which a rerun of the same
//! night skips when it is done: make the night's study with the night before's pick
//! and best configurations queued first (the warm start); run its budget, the
//! sampler also learning from earlier nights' trials where the space is unchanged;
//! confirm its top K with new seeds and store its pick; compare the pick with the
//! night before's (`hpo diff`'s test against the seed noise); write the report, with
//! the night before and the trend over every night.
//!
//! Exit codes keep a regression apart from a breakage: 0 the night is not worse,
//! 1 worse beyond the seed noise, 2 bad input (the study file, a flag, a dataset), 3
//! any other error (the database, every trial failed), 130 stopped by Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use hpo_core::run::{ConfirmConfig, RunConfig, RunEnd};
use hpo_core::spec::{SamplerSpec, StudySpec};
use hpo_core::storage::{NewTrial, Storage};
use hpo_core::study::Study;
use hpo_core::trial::{AttrValue, FrozenTrial, TrialState};
use hpo_report::data::{Comparison, Recommendation, Verdict};
use hpo_report::load::{
    NIGHT_DATE, NIGHT_OF, NIGHT_PREVIOUS, NIGHT_VERDICT, NIGHT_WARM_START, night_name,
    night_studies,
};
use serde_json::json;

use crate::report::StudyRef;
use crate::{db, host, print};

/// What `hpo nightly` was asked for.
pub struct NightlyArgs<'a> {
    /// The study file.
    pub study: &'a Path,
    /// The database.
    pub db: &'a Path,
    /// The night, `YYYY-MM-DD`; today (local time) when not given.
    pub date: Option<&'a str>,
    /// Print the verdict as JSON.
    pub json: bool,
    /// The report's folder; `reports/NAME@DATE` when not given.
    pub out: Option<PathBuf>,
    /// No new trial after this long (the night's window).
    pub timeout: Option<std::time::Duration>,
}

/// What a night found.
struct Night {
    name: String,
    metric: String,
    date: String,
    previous: Option<String>,
    warm_start: usize,
    prior: usize,
    finished_now: usize,
    counts: Counts,
    pick: Option<Recommendation>,
    comparison: Option<Comparison>,
    report: PathBuf,
}

/// A night's search trials by state.
#[derive(Default)]
struct Counts {
    complete: usize,
    pruned: usize,
    failed: usize,
}

/// Runs one night; prints what it found and returns the exit code (see the module
/// docs). Errors are printed here, so each kind gets its code.
pub fn nightly(args: &NightlyArgs<'_>) -> Result<ExitCode> {
    match night(args) {
        Ok(None) => Ok(ExitCode::from(130)),
        Ok(Some(night)) => {
            let worse = night.verdict() == Some(Verdict::WorseBeyondNoise);
            if args.json {
                print(serde_json::to_string_pretty(&night.json(worse))?)?;
            } else {
                print(night.text())?;
            }
            Ok(if worse { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        Err(err) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {err:#}");
            }
            Ok(ExitCode::from(if crate::is_bad_input(&err) { 2 } else { 3 }))
        }
    }
}

/// Today's date where hpo runs, `YYYY-MM-DD`.
pub fn today() -> String {
    jiff::Zoned::now().date().to_string()
}

/// `--date`: a calendar date written `YYYY-MM-DD`.
pub fn parse_night_date(text: &str) -> std::result::Result<String, String> {
    match text.parse::<jiff::civil::Date>() {
        Ok(date) if date.to_string() == text => Ok(text.to_owned()),
        _ => Err(format!("`{text}` is not a date; write YYYY-MM-DD, e.g. 2026-12-06")),
    }
}

/// The night's steps (see the module docs); `None` when Ctrl-C stopped it.
fn night(args: &NightlyArgs<'_>) -> Result<Option<Night>> {
    let date = match args.date {
        Some(date) => parse_night_date(date).map_err(crate::usage)?,
        None => today(),
    };
    let spec = crate::read_study_file(args.study)?;
    let base = spec.name.clone();
    let name = night_name(&base, &date);
    let mut night_spec = spec.clone();
    night_spec.name = name.clone();
    // Ctrl-C is caught from before the objective loads its data.
    let host = host::CliHost::with_ctrl_c(&spec.metric, &spec.metrics, host::Liveness::default())?;
    let objective = crate::objective_for(&night_spec, args.study, args.db)?;
    let database = db::open_writable(args.db, true, true)?;
    let _checkpoints = database.checkpoint_in_background(crate::CHECKPOINT_EVERY)?;
    let storage: &dyn Storage = &*database;

    let nights = night_studies(storage, &base)?;
    let earlier: Vec<&Study> =
        nights.iter().filter(|(d, _)| d.as_str() < date.as_str()).map(|(_, s)| s).collect();
    let previous = earlier.last().copied();
    let study = match storage.find_study(&name)? {
        Some(study) => study,
        None => make_night(storage, &spec, &night_spec, &date, previous)?,
    };
    let warm_start = match storage.study_user_attrs(study.id)?.get(NIGHT_WARM_START) {
        Some(AttrValue::Number(n)) => *n as usize,
        _ => 0,
    };
    let prior = prior_trials(storage, &earlier, &spec)?;
    let n_prior = prior.len();

    let config = RunConfig { trials: None, timeout: args.timeout, workers: None };
    let ran = host.with_heartbeats(storage, || {
        hpo_core::run::run_study_with_prior(
            storage,
            &night_spec,
            objective.as_ref(),
            &host,
            config,
            prior,
        )
    });
    host.finish();
    let ran = ran.with_context(|| format!("cannot run night `{name}`"))?;
    if ran.end == RunEnd::Interrupted {
        return Ok(None);
    }
    let counts = counts(&storage.trials(study.id, None)?);
    if counts.complete == 0 {
        let mut reasons: Vec<(&String, &usize)> = ran.failures.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1));
        let reasons: Vec<String> =
            reasons.iter().take(3).map(|(reason, n)| format!("{n} x {reason}")).collect();
        anyhow::bail!(
            "night `{name}` has no complete trial ({} failed, {} pruned){}{}; fix the cause and run the same night again",
            counts.failed,
            counts.pruned,
            if reasons.is_empty() { "" } else { ": " },
            reasons.join("; ")
        );
    }

    let confirm = ConfirmConfig { top: spec.nightly.top, seeds: spec.nightly.seeds };
    let confirmed = host.with_heartbeats(storage, || {
        hpo_core::run::confirm(storage, &night_spec, objective.as_ref(), &host, confirm)
    });
    host.finish();
    let confirmed = confirmed.with_context(|| format!("cannot confirm night `{name}`"))?;
    if confirmed.interrupted {
        return Ok(None);
    }

    let this = StudyRef { name: name.clone(), until: None, whole: None };
    let mut record = crate::report::load(storage, &this)?;
    let pick = crate::pick::of(&record);
    if let Some(pick) = &pick {
        crate::pick::store(storage, &study, pick)?;
    }
    let before = previous
        .map(|prev| {
            let prev = StudyRef { name: prev.name.clone(), until: None, whole: None };
            crate::report::load(storage, &prev)
        })
        .transpose()?;
    let comparison = before.as_ref().map(|before| hpo_report::data::compare(before, &record));
    let verdict = comparison.as_ref().map_or("first_night", |c| verdict_word(c.verdict));
    storage.set_study_user_attrs(
        study.id,
        &[(NIGHT_VERDICT.to_owned(), AttrValue::Str(verdict.into()))],
    )?;
    database.checkpoint();

    record = crate::report::load(storage, &this)?;
    record.trend = Some(hpo_report::load::nights(storage, &base)?);
    let dir = args.out.clone().unwrap_or_else(|| PathBuf::from("reports").join(&name));
    let written = hpo_report::write_report(&record, before.as_ref(), &dir)?;
    Ok(Some(Night {
        name,
        metric: spec.metric.clone(),
        date,
        previous: previous.map(|p| p.name.clone()),
        warm_start,
        prior: n_prior,
        finished_now: ran.n_finished,
        counts,
        pick,
        comparison,
        report: written.index,
    }))
}

/// Makes the night's study: the study file's, named for the night, with the night
/// before's configurations queued first and the attributes that link the nights.
fn make_night(
    storage: &dyn Storage,
    spec: &StudySpec,
    night_spec: &StudySpec,
    date: &str,
    previous: Option<&Study>,
) -> Result<Study> {
    let queued = match previous {
        Some(previous) if spec.sampler != SamplerSpec::Grid => warm_start(storage, previous, spec)?,
        _ => Vec::new(),
    };
    let n_queued = queued.len();
    if spec.sampler == SamplerSpec::Grid {
        // A grid queues its points itself.
        hpo_core::run::open_study(storage, night_spec)?;
    } else {
        match storage.create_study(&hpo_core::run::new_study(night_spec, queued)) {
            // Another process made the same night first: its queue stands.
            Ok(_) | Err(hpo_core::Error::StudyExists(_)) => {}
            Err(err) => return Err(err.into()),
        }
    }
    let study = storage
        .find_study(&night_spec.name)?
        .with_context(|| format!("night `{}` vanished as it was made", night_spec.name))?;
    let text = |s: &str| AttrValue::Str(s.to_owned());
    storage.set_study_user_attrs(
        study.id,
        &[
            (NIGHT_OF.to_owned(), text(&spec.name)),
            (NIGHT_DATE.to_owned(), text(date)),
            (NIGHT_PREVIOUS.to_owned(), previous.map_or(AttrValue::Null, |p| text(&p.name))),
            (NIGHT_WARM_START.to_owned(), AttrValue::Number(n_queued as f64)),
        ],
    )?;
    Ok(study)
}

/// The night before's pick, then its best other configurations, `[nightly] top` in
/// all, each as a queued trial; configurations that no longer fit the study file's
/// space (a parameter removed, added or narrowed) are left out.
fn warm_start(storage: &dyn Storage, previous: &Study, spec: &StudySpec) -> Result<Vec<NewTrial>> {
    let before = StudyRef { name: previous.name.clone(), until: None, whole: None };
    let record = crate::report::load(storage, &before)?;
    let pick = crate::pick::of(&record).map(|p| p.number);
    let mut ranked: Vec<&FrozenTrial> = hpo_report::data::ranked(&record);
    if let Some(at) = ranked.iter().position(|t| Some(t.number) == pick) {
        let first = ranked.remove(at);
        ranked.insert(0, first);
    }
    let mut queued: Vec<NewTrial> = Vec::new();
    for trial in ranked {
        if queued.len() == spec.nightly.top {
            break;
        }
        let Some(params) = fit(&spec.space, &trial.params) else { continue };
        let params = hpo_core::run::with_distributions(&spec.space, &params);
        if queued.iter().any(|q| q.params == params) {
            continue;
        }
        queued.push(NewTrial { params, system_attrs: Vec::new() });
    }
    Ok(queued)
}

/// `params` as a configuration of `space`: every parameter active under it given,
/// each inside its domain; `None` when it does not fit.
fn fit(
    space: &hpo_core::space::SearchSpace,
    params: &hpo_core::space::Params,
) -> Option<hpo_core::space::Params> {
    let mut chosen = hpo_core::space::Params::new();
    for param in &space.params {
        if param.is_active(&chosen) {
            let value = params.get(&param.name)?;
            param.distribution.to_internal(value)?;
            chosen.insert(param.name.clone(), value.clone());
        }
    }
    Some(chosen)
}

/// The finished search trials of the nights before (newest night first, back to
/// the first whose study file had another space, metric or direction), oldest
/// first: what the sampler learns from besides the night's own trials.
fn prior_trials(
    storage: &dyn Storage,
    earlier: &[&Study],
    spec: &StudySpec,
) -> Result<Vec<FrozenTrial>> {
    let mut nights: Vec<Vec<FrozenTrial>> = Vec::new();
    for study in earlier.iter().rev() {
        let Some(stored) =
            study.spec_text.as_deref().and_then(|t| StudySpec::parse(t, "stored").ok())
        else {
            break;
        };
        let same = stored.space.diff(&spec.space).is_empty()
            && stored.metric == spec.metric
            && stored.direction == spec.direction;
        if !same {
            break;
        }
        let finished = [TrialState::Complete, TrialState::Pruned];
        nights.push(
            storage
                .trials(study.id, Some(&finished))?
                .into_iter()
                .filter(|t| t.confirm_of().is_none())
                .collect(),
        );
    }
    Ok(nights.into_iter().rev().flatten().collect())
}

fn counts(trials: &[FrozenTrial]) -> Counts {
    let mut out = Counts::default();
    for trial in trials.iter().filter(|t| t.confirm_of().is_none()) {
        match trial.state {
            TrialState::Complete => out.complete += 1,
            TrialState::Pruned => out.pruned += 1,
            TrialState::Fail => out.failed += 1,
            TrialState::Running | TrialState::Waiting => {}
        }
    }
    out
}

/// A verdict as `--json`, the night's attribute and the trend table write it.
fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Better => "better",
        Verdict::Same => "same",
        Verdict::WorseWithinNoise => "worse_within_noise",
        Verdict::WorseBeyondNoise => "worse_beyond_noise",
        Verdict::Unknown => "unknown",
    }
}

impl Night {
    fn verdict(&self) -> Option<Verdict> {
        self.comparison.as_ref().map(|c| c.verdict)
    }

    /// Tonight's value less the night before's, when both have a pick.
    fn delta(&self) -> Option<f64> {
        let c = self.comparison.as_ref()?;
        Some(c.b.best.as_ref()?.value - c.a.best.as_ref()?.value)
    }

    fn text(&self) -> String {
        let mut lines = vec![match &self.previous {
            Some(previous) => format!("night `{}` (the night before: `{previous}`)", self.name),
            None => format!("night `{}`: the first night", self.name),
        }];
        if self.warm_start > 0 || self.prior > 0 {
            lines.push(format!(
                "warm start: {} configuration(s) of the night before ran first; the sampler also learned from {} earlier trial(s) over the same space",
                self.warm_start, self.prior
            ));
        }
        let c = &self.counts;
        lines.push(format!(
            "trials: {} complete, {} pruned, {} failed ({} finished in this run)",
            c.complete, c.pruned, c.failed, self.finished_now
        ));
        if let Some(pick) = &self.pick {
            lines.push(format!("pick: {}", crate::pick::headline(pick, &self.metric)));
        }
        if let Some(cmp) = &self.comparison {
            lines.push(String::new());
            lines.push(cmp.to_string());
            if let Some(delta) = self.delta() {
                lines.push(format!(
                    "since last night: {}{}",
                    if delta >= 0.0 { "+" } else { "" },
                    hpo_core::display::value(delta)
                ));
            }
        }
        lines.push(format!("report: {}", self.report.display()));
        lines.join("\n")
    }

    fn json(&self, worse: bool) -> serde_json::Value {
        let comparison = self.comparison.as_ref().map(crate::report::diff_json);
        let number = |v: f64| if v.is_finite() { json!(v) } else { json!(v.to_string()) };
        let tonight = self.pick.as_ref().map(|pick| {
            json!({
                "trial": pick.number,
                "value": number(pick.value),
                "confirmed": pick.confirmed.is_some(),
                "confirm_runs": pick.confirmed.map_or(0, |ci| ci.n),
                "ci95": pick.confirmed.map(|ci| number(ci.half_width)),
                "params": pick.params.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            })
        });
        json!({
            "night": self.name,
            "date": self.date,
            "previous": self.previous,
            "verdict": self.verdict().map_or("first_night", verdict_word),
            "worse": worse,
            "tonight": comparison.as_ref().map_or(tonight, |c| Some(c["b"]["pick"].clone())),
            "last_night": comparison.as_ref().map(|c| c["a"]["pick"].clone()),
            "delta": self.delta(),
            "seed_noise": comparison.as_ref().map(|c| c["seed_noise"].clone()),
            "moved": comparison.as_ref().map(|c| c["moved"].clone()),
            "trials": {
                "complete": self.counts.complete,
                "pruned": self.counts.pruned,
                "failed": self.counts.failed,
                "finished_in_this_run": self.finished_now,
            },
            "warm_start": self.warm_start,
            "prior_trials": self.prior,
            "report": self.report.display().to_string(),
            "exit_code": i32::from(worse),
        })
    }
}

/// `hpo gc --keep-nights N`: for every nightly study in the database, the nights
/// before its newest N lose their curves (intermediate values, metric curves,
/// pruner verdicts, their confirm runs' too) and their command trials' folders
/// (logs, outputs); their trials, values, attributes and picks stay, so the trend
/// over every night stays whole. Returns what it did, a line per study.
pub fn gc(db: &Path, keep: usize) -> Result<String> {
    let database = db::open_writable(db, false, true)?;
    let storage: &dyn Storage = &*database;
    let mut bases: Vec<String> = Vec::new();
    for summary in storage.study_counts()? {
        let Some((base, _)) = summary.study.name.rsplit_once('@') else { continue };
        if hpo_report::load::night_date(&summary.study.name, base).is_none() {
            continue;
        }
        let of = storage.study_user_attrs(summary.study.id)?.get(NIGHT_OF).cloned();
        if of == Some(AttrValue::Str(base.to_owned())) && !bases.iter().any(|b| b == base) {
            bases.push(base.to_owned());
        }
    }
    let root = db::trials_root(db);
    let mut lines = Vec::new();
    for base in &bases {
        let nights = night_studies(storage, base)?;
        let old = nights.len().saturating_sub(keep);
        let (mut points, mut folders) = (0, 0);
        for (_, night) in &nights[..old] {
            points += storage.drop_curves(night.id)?;
            let confirm = hpo_core::study::confirm_study_name(&night.name);
            if let Some(runs) = storage.find_study(&confirm)? {
                points += storage.drop_curves(runs.id)?;
            }
            for name in [&night.name, &confirm] {
                let folder = hpo_command::study_dir(&root, name);
                if folder.is_dir() {
                    std::fs::remove_dir_all(&folder)
                        .with_context(|| format!("cannot remove {}", folder.display()))?;
                    folders += 1;
                }
            }
        }
        lines.push(format!(
            "`{base}`: {} night(s), the newest {} kept whole; {old} older night(s) lost {points} curve point(s) and {folders} trial folder(s), their trials and picks kept",
            nights.len(),
            nights.len().min(keep)
        ));
    }
    database.checkpoint();
    if lines.is_empty() {
        lines.push(format!("no nightly study in {}", db::shown(db)));
    }
    Ok(lines.join("\n"))
}
