//! Interop with Python Optuna 5.0.0: Optuna reads what hpo writes, and hpo reads
//! what Optuna writes. The first test to need it makes a venv with Optuna under
//! the target dir (pip, from PyPI); later runs reuse it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::util::{Dir, digits_study, repo, text, trials};

const OPTUNA_VERSION: &str = "5.0.0";

fn python() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("optuna-{OPTUNA_VERSION}-venv"));
        let python = venv.join("bin/python");
        let ready = venv.join("ready");
        if !ready.exists() {
            let system = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
            let status = Command::new(&system)
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .expect("python3 -m venv");
            assert!(status.success(), "python3 -m venv failed");
            let out = Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    &format!("optuna=={OPTUNA_VERSION}"),
                ])
                .output()
                .expect("pip");
            assert!(out.status.success(), "pip install optuna failed:\n{}", text(&out.stderr));
            std::fs::write(&ready, OPTUNA_VERSION).unwrap();
        }
        python
    })
}

fn optuna(mode: &str, db: &std::path::Path, study: &str) -> Value {
    let out = Command::new(python())
        .arg(repo().join("tests/optuna_interop.py"))
        .args([mode, db.to_str().unwrap(), study])
        .output()
        .expect("run python");
    assert!(out.status.success(), "optuna_interop.py {mode} failed:\n{}", text(&out.stderr));
    serde_json::from_str(&text(&out.stdout)).expect("json from python")
}

/// hpo's export and Optuna's dump agree on everything both record.
#[track_caller]
fn assert_same_trial(ours: &Value, theirs: &Value) {
    for key in
        ["number", "state", "value", "params", "distributions", "intermediate_values", "user_attrs"]
    {
        assert_eq!(ours[key], theirs[key], "trial {}: {key}", ours["number"]);
    }
}

#[test]
fn optuna_loads_an_hpo_database_and_sees_the_same_trials() {
    let dir = Dir::new();
    dir.write("study.toml", &digits_study("for-optuna", 5, 4));
    dir.ok(&["run", "study.toml", "--db", "hpo.sqlite"]);
    let ours = dir.export("for-optuna", "hpo.sqlite");
    let theirs = optuna("read", &dir.path().join("hpo.sqlite"), "for-optuna");

    assert_eq!(theirs["direction"], "MAXIMIZE");
    assert_eq!(theirs["metric_names"], serde_json::json!(["val_accuracy"]));
    let (ours, theirs) = (trials(&ours), trials(&theirs));
    assert_eq!(ours.len(), 5);
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(theirs) {
        let n = &a["number"];
        assert_same_trial(a, b);
        // The curve Optuna sees is the study metric's.
        let curve: serde_json::Map<String, Value> = a["curves"]["val_accuracy"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].to_string(), p[1].clone()))
            .collect();
        assert_eq!(Value::Object(curve), b["intermediate_values"], "trial {n}");
    }
    // Distributions of every kind went through: log float, log int, stepped int,
    // categorical ints and strings, and a conditional stepped float.
    let kinds: std::collections::BTreeSet<String> = theirs
        .iter()
        .flat_map(|t| {
            t["distributions"]
                .as_object()
                .unwrap()
                .values()
                .map(|d| d["name"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
}

#[test]
fn hpo_reads_a_database_optuna_wrote() {
    let dir = Dir::new();
    let db = dir.path().join("optuna.sqlite");
    let written = optuna("write", &db, "from-optuna");
    let db = db.to_str().unwrap();

    let ls = dir.ok(&["ls", "--db", db]);
    let row = ls.lines().find(|l| l.starts_with("from-optuna")).expect(&ls);
    let cells: Vec<&str> = row.split_whitespace().collect();
    // STUDY DIRECTION METRIC TRIALS COMPLETE PRUNED FAIL RUNNING WAITING BEST ...
    assert_eq!(&cells[1..9], ["maximize", "-", "6", "4", "1", "1", "0", "0"], "{ls}");

    let ours = dir.export("from-optuna", db);
    let (ours, theirs) = (trials(&ours), trials(&written));
    assert_eq!(ours.len(), 6);
    for (a, b) in ours.iter().zip(theirs) {
        assert_same_trial(a, b);
    }

    let best = theirs
        .iter()
        .filter(|t| t["state"] == "COMPLETE")
        .max_by(|a, b| a["value"].as_f64().unwrap().total_cmp(&b["value"].as_f64().unwrap()))
        .unwrap();
    let show = dir.ok(&["show", "from-optuna", "--db", db]);
    assert!(show.contains(&format!("best trial: {}  value=", best["number"])), "{show}");
    assert!(show.contains("trials: 6 total, 4 complete, 1 pruned, 1 failed"), "{show}");
    let trial = dir.ok(&["show", "from-optuna", "--db", db, "--trial", "0"]);
    assert!(trial.contains("intermediate_value") && trial.contains("kind = "), "{trial}");

    // An Optuna study can't be resumed from a study file: that would mix two definitions.
    dir.write("study.toml", &digits_study("from-optuna", 1, 1));
    let err = dir.err(&["run", "study.toml", "--db", db]);
    assert!(
        err.contains("study `from-optuna` exists but was not created from a study file"),
        "{err}"
    );
}
