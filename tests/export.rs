//! `hpo export-model`: the best trials keep their models, and an exported model
//! predicts in ONNX Runtime what it predicts in hpo.

use serde_json::Value;

use crate::util::{Dir, repo, text};

/// Digits MLPs with every activation and norm the ONNX graph writes (10 trials of
/// 6 epochs), the best 3 keeping their models.
const DIGITS_EXPORT: &str = r#"
[study]
name = "export"
metric = "val_accuracy"
direction = "maximize"
seed = 8
trials = 10

[sampler]
kind = "random"

[objective]
kind = "candle"
model = "mlp"
dataset = "digits"
max_epochs = 6
device = "cpu"
keep_models = 3
fixed = { batch_size = 32, lr = 0.01 }

[space]
hidden     = { int = [16, 64] }
activation = { choice = ["relu", "gelu", "silu", "tanh"] }
norm       = { choice = ["none", "batch", "layer"] }
"#;

/// The exported folder's model run by ONNX Runtime on the sample of the test
/// split hpo wrote beside it.
fn onnx_runtime(folder: &std::path::Path) -> Value {
    let out = std::process::Command::new(crate::optuna::python())
        .arg(repo().join("tests/onnx_check.py"))
        .arg(folder)
        .output()
        .expect("run python");
    assert!(out.status.success(), "onnx_check.py failed:\n{}", text(&out.stderr));
    serde_json::from_str(&text(&out.stdout)).expect("json from python")
}

#[test]
fn the_best_trials_keep_their_models_and_onnx_runtime_predicts_as_hpo_does() {
    let dir = Dir::new();
    dir.write("export.toml", DIGITS_EXPORT);
    dir.ok(&["run", "export.toml"]);
    let folders = dir.path().join("db/hpo-trials/export");
    let kept: Vec<u64> =
        (0..10).filter(|n| folders.join(format!("{n}/model.safetensors")).exists()).collect();
    assert_eq!(kept.len(), 3, "kept {kept:?}");
    // The kept ones are the three best by val_accuracy.
    let export: Value =
        serde_json::from_str(&dir.ok(&["export", "export", "--format", "json"])).unwrap();
    let mut scored: Vec<(f64, u64)> = export["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == "COMPLETE")
        .map(|t| (t["value"].as_f64().unwrap(), t["number"].as_u64().unwrap()))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut best: Vec<u64> = scored.iter().take(3).map(|s| s.1).collect();
    best.sort_unstable();
    assert_eq!(kept, best);
    // Each kept model, as ONNX, predicts the whole digits test split as hpo does.
    for number in &kept {
        let out = dir.path().join(format!("onnx-{number}"));
        let said = dir.ok(&[
            "export-model",
            "export",
            "--trial",
            &number.to_string(),
            "--format",
            "onnx",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(said.contains("model.onnx"), "{said}");
        for file in ["model.onnx", "model.json", "metrics.json", "sample.json", "MODEL_CARD.md"] {
            assert!(out.join(file).exists(), "{file}");
        }
        let checked = onnx_runtime(&out);
        assert_eq!(checked["rows"], 360, "{checked}");
        assert_eq!(checked["same_class"], 360, "{checked}");
        assert!(checked["max_abs_diff"].as_f64().unwrap() < 1e-3, "{checked}");
        // hpo's own test accuracy of the trial is what the runtime measures.
        let trial =
            export["trials"].as_array().unwrap().iter().find(|t| t["number"] == *number).unwrap();
        let accuracy = trial["user_attrs"]["test_accuracy"].as_f64().unwrap();
        assert!((checked["accuracy"].as_f64().unwrap() - accuracy).abs() < 1e-9, "{checked}");
    }
    // The default is the best trial; safetensors comes with its steps.
    let out = dir.path().join("best");
    dir.ok(&["export-model", "export", "--format", "safetensors", "--out", out.to_str().unwrap()]);
    let description: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(description["trial"].as_u64(), Some(scored[0].1));
    assert!(out.join("model.safetensors").exists());
    // A trial that kept no model says why.
    let dropped = (0..10).find(|n| !kept.contains(n)).unwrap().to_string();
    let err =
        dir.err(&["export-model", "export", "--trial", &dropped, "--format", "onnx", "--out", "x"]);
    assert!(err.contains("only the best 3 trials keep theirs"), "{err}");
}

/// A student of 8 hidden units distilled from `DIGITS_EXPORT`'s best model, the
/// distillation knobs searched.
const DIGITS_STUDENT: &str = r#"
[study]
name = "student"
metric = "val_accuracy"
direction = "maximize"
seed = 2
trials = 4

[sampler]
kind = "random"

[compress]
teacher = "export"

[objective]
kind = "candle"
model = "mlp"
dataset = "digits"
max_epochs = 4
device = "cpu"
fixed = { batch_size = 32, hidden = 8, depth = 1, distill_temperature = 4.0 }

[space]
lr             = { float = [0.005, 0.02] }
distill_weight = { float = [0.0, 0.9] }
"#;

/// The values of a study's complete trials, by number.
fn values(dir: &Dir, study: &str) -> Vec<f64> {
    let export: Value =
        serde_json::from_str(&dir.ok(&["export", study, "--format", "json"])).unwrap();
    crate::util::trials(&export)
        .iter()
        .filter(|t| t["state"] == "COMPLETE")
        .map(|t| t["value"].as_f64().unwrap())
        .collect()
}

#[test]
fn a_distilled_student_study_runs_end_to_end() {
    let dir = Dir::new();
    dir.write("export.toml", DIGITS_EXPORT);
    dir.write("student.toml", DIGITS_STUDENT);
    // Before the teacher's study ran, the student is refused, saying why.
    let err = dir.bad_input(&["run", "student.toml"]);
    assert!(err.contains("the teacher study `export`") && err.contains("run it first"), "{err}");
    dir.ok(&["run", "export.toml", "--trials", "3"]);
    dir.ok(&["run", "student.toml"]);
    let taught = values(&dir, "student");
    assert_eq!(taught.len(), 4);
    // The same student on the labels alone (weight 1: the teacher's term is zero)
    // trains exactly as one without a teacher, and differs from the taught ones.
    let labels_only =
        DIGITS_STUDENT.replace("distill_weight = { float = [0.0, 0.9] }\n", "").replace(
            "distill_temperature = 4.0 }",
            "distill_temperature = 4.0, distill_weight = 1.0 }",
        );
    dir.write("labels.toml", &labels_only.replace("name = \"student\"", "name = \"labels\""));
    let alone = labels_only
        .replace("name = \"student\"", "name = \"alone\"")
        .replace("[compress]\nteacher = \"export\"\n", "")
        .replace(", distill_temperature = 4.0, distill_weight = 1.0 }", " }");
    dir.write("alone.toml", &alone);
    dir.ok(&["run", "labels.toml"]);
    dir.ok(&["run", "alone.toml"]);
    let (labels, alone) = (values(&dir, "labels"), values(&dir, "alone"));
    assert_eq!(labels, alone);
    assert_ne!(taught, alone, "the teacher changed nothing");
}
