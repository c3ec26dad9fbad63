//! `hpo bench report`: the time to read and render the report of a synthetic study
//! of N trials written through the store.

use std::time::Instant;

use anyhow::{Result, bail};
use hpo_core::run::{History, ask, open_study};
use hpo_core::sampler;
use hpo_core::spec::StudySpec;
use hpo_core::storage::Storage;
use hpo_core::trial::TrialState;
use hpo_store::SqliteStorage;

const REPORT_STUDY: &str = r#"
[study]
name = "report-bench"
metric = "val_loss"
direction = "minimize"
seed = 7
trials = 1000000

[sampler]
kind = "random"

[objective]
kind = "external"

[space]
lr              = { float = [1e-4, 1e-1], log = true }
dropout         = { float = [0.0, 0.6] }
weight_decay    = { float = [1e-6, 1e-1], log = true }
label_smoothing = { float = [0.0, 0.2] }
augment         = { choice = ["none", "shift"] }
train_fraction  = { choice = [0.25, 0.5, 1.0] }
"#;

/// Writes the report benchmark's synthetic study of `n` trials (random search over 6
/// parameters, 10 epochs of train/val loss and accuracy and the gap per trial, every
/// tenth trial pruned) into `storage` as study `name`.
pub fn write_synthetic_study(storage: &SqliteStorage, name: &str, n: usize) -> Result<()> {
    use hpo_core::trial::{AttrValue, attr};
    let text = REPORT_STUDY.replace("name = \"report-bench\"", &format!("name = \"{name}\""));
    let spec = StudySpec::parse(&text, "<bench report>")?;
    let sampler = sampler::from_spec(spec.sampler, &spec.directions);
    let study = open_study(storage, &spec)?;
    let history = History::default();
    for _ in 0..n {
        let Some(trial) =
            ask(storage, study.id, &spec, sampler.as_ref(), None, "bench:1:1", &history)?
        else {
            bail!("ask returned no trial")
        };
        let param = |name: &str| trial.params.get(name).and_then(|v| v.as_f64()).unwrap_or(0.0);
        let (lr, dropout, fraction) = (param("lr"), param("dropout"), param("train_fraction"));
        let floor = 0.08 + 0.05 * (lr.log10() + 2.5).powi(2) + 0.1 * (dropout - 0.3).abs();
        let overfit = 0.25 * (0.6 - dropout) / fraction.max(0.25);
        let pruned = trial.number % 10 == 9;
        let epochs = if pruned { 3 } else { 10 };
        let mut best = (0, f64::INFINITY, Vec::new());
        for step in 1..=epochs {
            let s = step as f64;
            let train_loss = floor + 1.5 / s;
            let val_loss = train_loss + overfit * (s / 10.0);
            let metrics = vec![
                ("train_loss".to_owned(), train_loss),
                ("val_loss".to_owned(), val_loss),
                ("train_accuracy".to_owned(), 1.0 - train_loss / 3.0),
                ("val_accuracy".to_owned(), 1.0 - val_loss / 3.0),
                ("generalization_gap".to_owned(), val_loss - train_loss),
            ];
            storage.report(trial.id, step, val_loss, &metrics)?;
            if val_loss < best.1 {
                best = (step, val_loss, metrics);
            }
        }
        if pruned {
            storage.finish_trial(trial.id, TrialState::Pruned, &[])?;
            continue;
        }
        storage.set_trial_user_attr(trial.id, "best_step", &AttrValue::Number(best.0 as f64))?;
        for (name, value) in &best.2 {
            storage.set_trial_user_attr(trial.id, name, &AttrValue::Number(*value))?;
        }
        let ended = AttrValue::Str("completed".to_owned());
        storage.set_trial_system_attr(trial.id, attr::ENDED_BY, &ended)?;
        storage.finish_trial(trial.id, TrialState::Complete, &[best.1])?;
    }
    Ok(())
}

/// `hpo bench report`: writes a synthetic study of `n` trials through the store (10
/// epochs of train/val loss and accuracy each, a tenth of them pruned), then times
/// reading it back and rendering its report.
pub fn report(n: usize) -> Result<String> {
    if n < 10 {
        bail!("--trials must be at least 10");
    }
    let dir = tempfile::tempdir()?;
    let storage = SqliteStorage::open(&dir.path().join("bench.sqlite"))?;
    let started = Instant::now();
    let name = "report-bench".to_owned();
    write_synthetic_study(&storage, &name, n)?;
    let write_seconds = started.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let record =
        crate::report::load(&storage, &crate::report::StudyRef { name, until: None, whole: None })?;
    let load_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let written = hpo_report::write_report(&record, None, &dir.path().join("report"))?;
    let render_seconds = t1.elapsed().as_secs_f64();
    let html_bytes = std::fs::metadata(&written.index)?.len();
    Ok(format!(
        "report of a synthetic study: {n} trials x 10 epochs x 5 metrics (random sampler, 10% pruned)\n{}",
        crate::format::table(
            &["TRIALS", "WRITE S", "LOAD S", "RENDER S", "LOAD+RENDER S", "CHART FILES", "HTML KB"],
            &[vec![
                n.to_string(),
                format!("{write_seconds:.1}"),
                format!("{load_seconds:.3}"),
                format!("{render_seconds:.3}"),
                format!("{:.3}", load_seconds + render_seconds),
                written.charts.len().to_string(),
                (html_bytes / 1024).to_string(),
            ]]
        )
    ))
}
