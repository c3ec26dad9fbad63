//! `hpo confirm`: train a study's best configurations again with new seeds
//! (hpo-core's `run::confirm`) and print, per original trial, its value beside the
//! confirm runs' values, their mean and standard deviation.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use hpo_core::run::{ConfirmConfig, ConfirmSummary};

use crate::{format, host, open_existing_writable, print};

/// Runs the confirm runs `config` asks for; exits 130 when Ctrl-C cut them short.
pub fn confirm(path: &Path, db: &Path, config: ConfirmConfig) -> Result<ExitCode> {
    // Ctrl-C is caught from before the objective loads its data.
    let spec = crate::read_study_file(path)?;
    let host = host::CliHost::with_ctrl_c(&spec.metric, &spec.metrics, host::Liveness::default())?;
    let objective = crate::objective_for(&spec, path, db)?;
    let storage = open_existing_writable(db)?;
    let summary = host.with_heartbeats(&*storage, || {
        hpo_core::run::confirm(&*storage, &spec, objective.as_ref(), &host, config)
    });
    host.finish();
    storage.checkpoint();
    let summary = summary.with_context(|| format!("cannot confirm study `{}`", spec.name))?;
    let mut text = summary_text(&summary, &spec.metric, config, db);
    if spec.metrics.len() > 1 {
        text.push_str(&several_objectives(&summary, &spec.metrics));
        print(text)?;
        return Ok(if summary.interrupted { ExitCode::from(130) } else { ExitCode::SUCCESS });
    }
    // The pick, from the study and all its confirm runs, stored for every view.
    if let Some(pick) = crate::pick::of_study(&*storage, &spec.name)? {
        crate::pick::store(&*storage, &summary.study, &pick)?;
        text.push_str(&format!("\n\npick: {}", crate::pick::headline(&pick, &spec.metric)));
        for line in crate::pick::evidence(&pick, Some(pick.number), true) {
            text.push_str(&format!("\n  {line}"));
        }
        text.push_str(
            "\n  (stored in the database: hpo show, hpo diff, hpo export and the report name it)",
        );
    }
    print(text)?;
    Ok(if summary.interrupted { ExitCode::from(130) } else { ExitCode::SUCCESS })
}

/// Each confirmed trial's objectives: its own values beside the confirm runs'
/// means (a study of several objectives confirms its Pareto front first).
fn several_objectives(summary: &ConfirmSummary, metrics: &[String]) -> String {
    let rows: Vec<Vec<String>> = summary
        .trials
        .iter()
        .map(|confirmed| {
            let means = confirmed.objective_means();
            let mut row = vec![confirmed.original.number.to_string()];
            for (k, value) in confirmed.original.objective_values().iter().enumerate() {
                row.push(format!(
                    "{} -> {}",
                    format::value(*value),
                    means.get(k).map_or("-".into(), |m| format::value(*m))
                ));
            }
            row
        })
        .collect();
    let mut header = vec!["TRIAL".to_owned()];
    header.extend(metrics.iter().map(|m| format!("{} (TRIAL -> CONFIRM MEAN)", m.to_uppercase())));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    format!(
        "\n\neach objective, the trial's value and its confirm runs' mean:\n{}",
        format::table(&header, &rows)
    )
}

fn summary_text(
    summary: &ConfirmSummary,
    metric: &str,
    config: ConfirmConfig,
    db: &Path,
) -> String {
    let name = &summary.study.name;
    let mut text = format!(
        "study `{name}`: {}; {} confirm run(s) finished in this run; database {}",
        if summary.interrupted { "interrupted" } else { "confirmed" },
        summary.n_finished,
        crate::db::shown(db)
    );
    if summary.trials.is_empty() {
        text.push_str("\nno complete trial to confirm; run the study first (hpo run)");
        return text;
    }
    let rows: Vec<Vec<String>> = summary
        .trials
        .iter()
        .enumerate()
        .map(|(idx, confirmed)| {
            let values = confirmed.values();
            vec![
                (idx + 1).to_string(),
                confirmed.original.number.to_string(),
                confirmed.original.value.map_or("-".into(), format::value),
                if values.is_empty() {
                    "-".into()
                } else {
                    values.iter().map(|v| format::value(*v)).collect::<Vec<_>>().join(" ")
                },
                confirmed.mean().map_or("-".into(), format::value),
                confirmed.std().map_or("-".into(), format::value),
            ]
        })
        .collect();
    let metric = metric.to_uppercase();
    text.push_str(&format!(
        "\n\ntop {} trial(s), {} confirm run(s) each (new seeds; outside the budget):\n",
        summary.trials.len(),
        config.seeds
    ));
    text.push_str(&format::table(
        &["RANK", "TRIAL", &metric, "CONFIRM RUNS", "MEAN", "STD"],
        &rows,
    ));
    if summary.trials.iter().any(|c| c.confirms.len() < config.seeds) {
        text.push_str("\n\nsome trials have fewer confirm runs than asked (failed or interrupted); run `hpo confirm` again to add them");
    }
    text
}
