//! `hpo bench pruner-steps`: what a reported step costs with each pruner after N
//! finished trials, through `hpo run` itself.

use super::hpo_run_child;
use anyhow::{Context, Result, bail};
use hpo_core::storage::Storage;
use hpo_core::trial::TrialState;
use hpo_store::SqliteStorage;

/// The study `hpo bench pruner-steps` runs: branin with a synthetic curve of
/// `{steps}` steps, and `{pruner}` as its `[pruner]` table.
const PRUNER_STEPS_STUDY: &str = r#"
[study]
name = "pruner-steps"
metric = "value"
direction = "minimize"
seed = 1
trials = 1

[sampler]
kind = "random"

{pruner}

[objective]
kind = "function"
function = "branin"
max_epochs = {steps}

[space]
x0 = { float = [-5, 10] }
x1 = { float = [0, 15] }
"#;

/// The pruners `hpo bench pruner-steps` times, with their `[pruner]` tables: each
/// kind at its defaults, the percentile rule judging every step.
const PRUNER_STEPS_PRUNERS: [(&str, &str); 6] = [
    ("none", "[pruner]\nkind = \"none\""),
    ("median", "[pruner]\nkind = \"median\""),
    ("percentile", "[pruner]\nkind = \"percentile\"\npercentile = 25.0\ninterval = 1"),
    ("asha", "[pruner]\nkind = \"asha\""),
    ("hyperband", "[pruner]\nkind = \"hyperband\"\nmax_resource = {steps}"),
    ("threshold", "[pruner]\nkind = \"threshold\"\nupper = 1e6"),
];

/// `hpo bench pruner-steps`: for each study size N, a study of N finished trials
/// (made by `hpo run` without a pruner), then for each pruner `hpo run` of
/// `measured` more trials on a copy of it: the time of the run's first trial
/// (which reads what the pruner keeps of the N), the cost per reported step of the
/// others (their stored start and end times over their steps), and the run's peak
/// memory.
pub fn pruner_steps(sizes: &[usize], steps: u64, measured: usize) -> Result<String> {
    if sizes.iter().any(|n| *n < 1) || steps < 2 || measured < 1 {
        bail!("--trials: each size at least 1; --steps: at least 2; --measured: at least 1");
    }
    let text = |pruner: &str| {
        PRUNER_STEPS_STUDY.replace("{pruner}", pruner).replace("{steps}", &steps.to_string())
    };
    let mut rows = Vec::new();
    for &n in sizes {
        let dir = tempfile::tempdir()?;
        let history = dir.path().join("history.sqlite");
        let study = dir.path().join("none.toml");
        std::fs::write(&study, text(PRUNER_STEPS_PRUNERS[0].1))?;
        let log = dir.path().join("run.log");
        hpo_run_child(&study, &history, Some(n), &log)?;
        for (name, pruner) in PRUNER_STEPS_PRUNERS {
            let study = dir.path().join(format!("{name}.toml"));
            std::fs::write(&study, text(pruner))?;
            let db = dir.path().join(format!("{name}.sqlite"));
            std::fs::copy(&history, &db)?;
            let (_, peak_kb) = hpo_run_child(&study, &db, Some(n + measured), &log)?;
            let storage = SqliteStorage::open_read_only(&db)?;
            let found = storage.find_study("pruner-steps")?.context("the study")?;
            let trials = storage.trials(found.id, None)?;
            let new: Vec<&hpo_core::trial::FrozenTrial> =
                trials.iter().filter(|t| t.number >= n as u64).collect();
            let took = |trial: &hpo_core::trial::FrozenTrial| -> Result<f64> {
                match (trial.datetime_start, trial.datetime_complete) {
                    (Some(start), Some(end)) => Ok(end.seconds_since(start)),
                    _ => bail!("trial {} has no start or end time", trial.number),
                }
            };
            let Some((first, rest)) = new.split_first() else { bail!("no trial was run") };
            let mut seconds = 0.0;
            let mut n_steps = 0;
            for trial in rest {
                seconds += took(trial)?;
                n_steps += trial.intermediate_values.len();
            }
            let pruned = new.iter().filter(|t| t.state == TrialState::Pruned).count();
            rows.push(vec![
                name.to_owned(),
                n.to_string(),
                format!("{:.1}", took(first)? * 1e3),
                rest.len().to_string(),
                pruned.to_string(),
                n_steps.to_string(),
                format!("{:.1}", seconds * 1e6 / n_steps.max(1) as f64),
                format!("{:.1}", peak_kb as f64 / 1024.0),
            ]);
        }
    }
    Ok(format!(
        "`hpo run` of {measured} trials after N finished ones, branin with {steps}-step curves, SQLite\n\
         (FIRST MS: the run's first trial, which also reads what the pruner keeps of the N; \
         US/STEP: the other trials' time per reported step)\n{}",
        crate::format::table(
            &["PRUNER", "N", "FIRST MS", "TRIALS", "PRUNED", "STEPS", "US/STEP", "PEAK RSS MB"],
            &rows
        )
    ))
}
