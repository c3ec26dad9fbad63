//! `hpo export-model`: a trial's trained model out of its folder, for deployment
//! (safetensors or ONNX, with its configuration, metrics and a model card); and
//! the rule that only the best trials keep their models (`keep_models`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use hpo_core::spec::{ObjectiveSpec, StudySpec};
use hpo_core::storage::Storage;
use hpo_core::study::Study;
use hpo_core::trial::{FrozenTrial, TrialState};
use hpo_train::export;
use serde_json::{Value, json};

use crate::db;

/// Test rows whose inputs and hpo's outputs go with an exported model
/// (`sample.json`), so a runtime can be checked against hpo.
const SAMPLE_ROWS: usize = 512;

/// How `hpo export-model` writes the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelFormat {
    /// `model.safetensors` with `model.json` (the steps).
    Safetensors,
    /// `model.onnx` (opset 17), with `model.json`.
    Onnx,
}

/// The study's Complete search trials, best first (`pareto::best_first`).
fn best_first<'a>(study: &Study, trials: &'a [FrozenTrial]) -> Vec<&'a FrozenTrial> {
    let search: Vec<&FrozenTrial> = trials.iter().filter(|t| t.confirm_of().is_none()).collect();
    hpo_core::pareto::best_first(&search, &study.directions)
}

/// Drops the models of every trial of `study` but its best `keep_models`
/// (`[objective] keep_models`) from their folders; returns how many it dropped.
pub fn keep_best_models(
    storage: &dyn Storage,
    study: &Study,
    spec: &StudySpec,
    db: &Path,
) -> Result<usize> {
    let ObjectiveSpec::Training(training) = &spec.objective else { return Ok(0) };
    let folder = hpo_command::study_dir(&db::trials_root(db), &study.name);
    let Ok(entries) = std::fs::read_dir(&folder) else { return Ok(0) };
    let trials = storage.trials(study.id, Some(&[TrialState::Complete]))?;
    let kept: Vec<u64> =
        best_first(study, &trials).iter().take(training.keep_models).map(|t| t.number).collect();
    let mut dropped = 0;
    for entry in entries.flatten() {
        let Some(number) = entry.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        let weights = entry.path().join(export::WEIGHTS_FILE);
        if kept.contains(&number) || !weights.exists() {
            continue;
        }
        for file in [export::WEIGHTS_FILE, export::DESCRIPTION_FILE] {
            let path = entry.path().join(file);
            std::fs::remove_file(&path)
                .or_else(|err| if path.exists() { Err(err) } else { Ok(()) })
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
        dropped += 1;
    }
    Ok(dropped)
}

/// The error of a teacher study (`[compress] teacher`) the database lacks.
pub fn no_teacher(db_path: &Path, name: &str) -> anyhow::Error {
    crate::usage(format!(
        "the teacher study `{name}` ([compress] teacher) is not in {}; run it first, in this database",
        db::shown(db_path)
    ))
}

/// The best kept model of study `name` (`[compress] teacher`): the best trial
/// that kept its model, as a net.
pub fn teacher(
    storage: &dyn Storage,
    db_path: &Path,
    name: &str,
) -> Result<hpo_train::compress::Net> {
    let Some(study) = storage.find_study(name)? else { return Err(no_teacher(db_path, name)) };
    let trials = storage.trials(study.id, Some(&[TrialState::Complete]))?;
    for trial in best_first(&study, &trials) {
        let folder = hpo_command::trial_dir(&db::trials_root(db_path), &study.name, trial.number);
        if folder.join(export::WEIGHTS_FILE).exists() {
            return Ok(export::load(&folder)?.0);
        }
    }
    Err(crate::usage(format!(
        "the teacher study `{name}` ([compress] teacher) kept no model; run it with `keep_models` at least 1 (an mlp study run by `hpo run`)"
    )))
}

/// `hpo export-model`: trial `number`'s model (by default the best trial by
/// value; with several objectives, the front's best on the first objective)
/// written into `out` as `format`, with `model.json`, `metrics.json`,
/// `sample.json` and `MODEL_CARD.md`.
pub fn export_model(
    storage: &dyn Storage,
    db_path: &Path,
    name: &str,
    number: Option<u64>,
    format: ModelFormat,
    out: &Path,
) -> Result<String> {
    let study = crate::inspect::find_any(storage, name)?;
    let trials = storage.trials(study.id, None)?;
    let trial = match number {
        Some(n) => trials
            .iter()
            .find(|t| t.number == n && t.confirm_of().is_none())
            .ok_or_else(|| crate::usage(format!("study `{name}` has no trial {n}")))?,
        None => *best_first(&study, &trials).first().ok_or_else(|| {
            crate::usage(format!("study `{name}` has no complete trial to export yet"))
        })?,
    };
    let folder = hpo_command::trial_dir(&db::trials_root(db_path), &study.name, trial.number);
    if !folder.join(export::WEIGHTS_FILE).exists() {
        let kept = study
            .spec_text
            .as_deref()
            .and_then(|text| StudySpec::parse(text, "stored").ok())
            .and_then(|spec| match spec.objective {
                ObjectiveSpec::Training(it) => Some(it.keep_models),
                _ => None,
            });
        bail!(
            "trial {} of `{name}` has no model in {}: {}",
            trial.number,
            folder.display(),
            match kept {
                Some(0) => "the study keeps none (`keep_models = 0`)".to_owned(),
                Some(k) => format!(
                    "only the best {k} trials keep theirs (`[objective] keep_models`); export one of them, or raise keep_models and run the study again"
                ),
                None => "only candle mlp trials run by `hpo run` keep their models".to_owned(),
            }
        );
    }
    let (net, description) = export::load(&folder)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let write = |file: &str, bytes: &[u8]| -> Result<PathBuf> {
        let path = out.join(file);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    };
    let model_file = match format {
        ModelFormat::Safetensors => {
            let from = folder.join(export::WEIGHTS_FILE);
            let to = out.join(export::WEIGHTS_FILE);
            std::fs::copy(&from, &to).with_context(|| format!("cannot write {}", to.display()))?;
            to
        }
        ModelFormat::Onnx => write("model.onnx", &hpo_train::export::onnx::model(&net)?)?,
    };
    write(export::DESCRIPTION_FILE, pretty(&description).as_bytes())?;
    let values: Vec<Value> = trial.objective_values().iter().map(|v| json!(v)).collect();
    let metrics = json!({
        "study": study.name,
        "trial": trial.number,
        "objectives": study.objective_names(),
        "directions": study.directions.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "values": values,
        "measured": trial.user_attrs.iter().filter_map(|(k, v)| Some((k.clone(), json!(v.as_f64()?)))).collect::<serde_json::Map<_, _>>(),
    });
    write("metrics.json", pretty(&metrics).as_bytes())?;
    let mut sample_note = String::new();
    if let Some(spec) = study.spec_text.as_deref().and_then(|t| StudySpec::parse(t, "stored").ok())
        && let Ok((features, labels)) = hpo_train::test_rows(&spec, Path::new("."), SAMPLE_ROWS)
    {
        let logits = net.forward(&features)?;
        let sample = json!({
            "inputs": features.to_vec2::<f32>()?,
            "labels": labels.to_vec1::<u32>()?,
            "logits": logits.to_vec2::<f32>()?,
        });
        write("sample.json", sample.to_string().as_bytes())?;
        sample_note = format!(
            "\n`sample.json` holds the first {} rows of the test split as the model takes them, their labels and hpo's logits: run them through your runtime and compare.\n",
            features.dim(0)?
        );
    }
    write(
        "MODEL_CARD.md",
        model_card(&study, trial, &description, format, &sample_note).as_bytes(),
    )?;
    Ok(format!(
        "wrote trial {}'s model of `{name}` to {} (with model.json, metrics.json and MODEL_CARD.md)",
        trial.number,
        model_file.display()
    ))
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

/// What a reader of the exported folder needs to know, in Markdown.
fn model_card(
    study: &Study,
    trial: &FrozenTrial,
    description: &Value,
    format: ModelFormat,
    sample_note: &str,
) -> String {
    let mut out = format!(
        "# Model card: `{}`, trial {}\n\nA {} classifier trained by hpo {} (study `{}`).\n\n",
        study.name,
        trial.number,
        description["model"].as_str().unwrap_or("model"),
        env!("CARGO_PKG_VERSION"),
        study.name
    );
    out.push_str(&format!(
        "- Input: `input`, float `[batch, {}]`: the features as hpo trains on them (standardized by the training split's mean and standard deviation; images flattened row by row).\n- Output: `logits`, float `[batch, {}]`: one score per class; the predicted class is the largest.\n- File: {}.\n\n",
        description["inputs"],
        description["outputs"],
        match format {
            ModelFormat::Safetensors => "`model.safetensors` (weights named `steps.N.*`; `model.json` lists the steps in order)",
            ModelFormat::Onnx => "`model.onnx` (ONNX opset 17; runs in ONNX Runtime)",
        }
    ));
    out.push_str("## Hyperparameters\n\n");
    if let Some(map) = description["hyperparameters"].as_object() {
        for (key, value) in map {
            out.push_str(&format!("- `{key}` = {value}\n"));
        }
    }
    out.push_str("\n## Measured (best epoch's weights)\n\n");
    for key in [
        "val_accuracy",
        "val_loss",
        "test_accuracy",
        "test_loss",
        "parameters",
        "weight_bytes",
        "latency_ms",
        "latency_ms_per_example",
        "train_seconds",
    ] {
        let value = trial
            .user_attrs
            .get(key)
            .and_then(|v| v.as_f64())
            .or_else(|| description["metrics"][key].as_f64());
        if let Some(value) = value {
            out.push_str(&format!("- {key}: {}\n", hpo_core::display::value(value)));
        }
    }
    out.push_str(sample_note);
    out
}
