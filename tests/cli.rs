//! The CLI as a researcher uses it: run, resume, show, ls, export, and the errors.

use serde_json::Value;

use crate::util::{Dir, OutputAsync, branin_study, digits_study, repo, trials};

/// A study file cut down to seconds: one epoch, a sliver of the data, few steps.
fn shortened(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = if line.starts_with("max_epochs") {
            "max_epochs = 1".to_owned()
        } else if line.starts_with("fixed = {") && !text.contains("train_fraction") {
            line.replacen("fixed = {", "fixed = { train_fraction = 0.02,", 1)
        } else {
            line.to_owned()
        };
        out.push(line.replace("steps_per_epoch = 200", "steps_per_epoch = 2, eval_batches = 1"));
    }
    out.join("\n")
}

/// Runs example study `studies/NAME.toml`, shortened (two trials); an external
/// study is asked and told once instead, as a program outside hpo would.
fn runs_shortened(name: &str) {
    let dir = Dir::new();
    let path = repo().join("studies").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    dir.write(name, &shortened(&text));
    if text.contains("kind = \"external\"") {
        // Driven from outside: `run` says how, and one ask/tell works.
        let err = dir.err(&["run", name, "--db", "examples.sqlite"]);
        assert!(err.contains("hpo ask"), "{name}: {err}");
        let asked: Value =
            serde_json::from_str(dir.ok(&["ask", name, "--db", "examples.sqlite"]).trim()).unwrap();
        let trial = asked["trial"].to_string();
        dir.ok(&["tell", name, "--trial", &trial, "--value", "1.5", "--db", "examples.sqlite"]);
        return;
    }
    // A command study runs a program beside it in the repository: run the file
    // where it is.
    let file = if text.contains("kind = \"command\"") { path.to_str().unwrap() } else { name };
    let out = dir.ok(&["run", file, "--trials", "2", "--db", "examples.sqlite"]);
    assert!(out.contains("budget met; 2 trial(s) finished"), "{name}: {out}");
}

/// One test per example study, so that one failing hides none of the others;
/// `every_example_study_has_its_test` keeps the list whole.
macro_rules! example_studies {
    ($($test:ident => $file:literal),* $(,)?) => {
        const EXAMPLE_STUDIES: &[&str] = &[$($file),*];
        mod example_study {
            $(
                #[test]
                fn $test() {
                    super::runs_shortened($file);
                }
            )*
        }
    };
}

example_studies! {
    branin => "branin.toml",
    breast_cancer_mlp => "breast-cancer-mlp.toml",
    digits_command => "digits-command.toml",
    digits_compression => "digits-compression.toml",
    digits_mlp_asha => "digits-mlp-asha.toml",
    digits_mlp_packed => "digits-mlp-packed.toml",
    digits_mlp_pruning => "digits-mlp-pruning.toml",
    digits_mlp_regularization => "digits-mlp-regularization.toml",
    digits_nightly => "digits-nightly.toml",
    digits_regularization_grid => "digits-regularization-grid.toml",
    external_quadratic => "external-quadratic.toml",
    fashion_cnn_whole_study => "fashion-cnn-whole-study.toml",
    fashion_cnn => "fashion-cnn.toml",
    jargon_transformer => "jargon-transformer.toml",
    quickstart => "quickstart.toml",
    shell_sgd => "shell-sgd.toml",
}

#[test]
fn every_example_study_has_its_test() {
    let mut files: Vec<String> = std::fs::read_dir(repo().join("studies"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".toml"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = EXAMPLE_STUDIES.iter().map(|s| (*s).to_owned()).collect();
    listed.sort();
    assert_eq!(listed, files, "add the study to `example_studies!` in tests/cli.rs");
}

#[test]
fn every_study_beside_the_examples_parses() {
    // Studies beside programs that need what CI lacks (PyTorch, a GPU) are parsed.
    let mut parsed = 0;
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let spec = hpo_core::spec::StudySpec::parse(&text, &path.display().to_string());
            assert!(spec.is_ok(), "{}: {}", path.display(), spec.err().unwrap());
            parsed += 1;
        }
    }
    assert!(parsed >= 1, "expected examples/fashion-torch.toml");
}

#[test]
fn a_digits_study_runs_records_curves_and_resumes() {
    let dir = Dir::new();
    dir.write("study.toml", &digits_study("small", 4, 6));
    let out = dir.ok(&["run", "study.toml"]);
    assert!(out.contains("study `small`: budget met; 4 trial(s) finished"), "{out}");
    assert!(dir.path().join("db/hpo.sqlite").exists(), "the default database is db/hpo.sqlite");

    let export = dir.export("small", "db/hpo.sqlite");
    let all = trials(&export);
    assert_eq!(all.len(), 4);
    for trial in all {
        assert_eq!(trial["state"], "COMPLETE");
        let epochs = trial["curves"]["val_loss"].as_array().unwrap().len();
        assert!((1..=6).contains(&epochs), "{epochs}");
        for metric in ["train_loss", "train_accuracy", "val_accuracy", "generalization_gap"] {
            assert_eq!(trial["curves"][metric].as_array().unwrap().len(), epochs, "{metric}");
        }
        assert_eq!(trial["intermediate_values"].as_object().unwrap().len(), epochs);
        assert!(trial["user_attrs"]["test_accuracy"].as_f64().unwrap() > 0.5);
        // The conditional parameter exists exactly when its condition holds.
        assert_eq!(
            trial["params"].get("dropout").is_some(),
            trial["params"]["activation"] == "relu"
        );
    }

    let show = dir.ok(&["show", "small"]);
    assert!(show.contains("trials: 4 total, 4 complete"), "{show}");
    assert!(show.contains("pick: trial ") && show.contains("provisional"), "{show}");
    assert!(show.contains("top 10:"), "{show}");
    let ls = dir.ok(&["ls"]);
    assert!(ls.lines().nth(1).unwrap().starts_with("small  "), "{ls}");

    // Running again meets the budget already; a larger budget continues it.
    assert!(dir.ok(&["run", "study.toml"]).contains("0 trial(s) finished"));
    assert!(dir.ok(&["run", "study.toml", "--trials", "6"]).contains("2 trial(s) finished"));
    let numbers: Vec<u64> = trials(&dir.export("small", "db/hpo.sqlite"))
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [0, 1, 2, 3, 4, 5]);

    let trial = dir.ok(&["show", "small", "--trial", "2"]);
    assert!(trial.contains("curve:") && trial.contains("val_accuracy"), "{trial}");
    let csv = dir.ok(&["export", "small", "--format", "csv"]);
    assert!(
        csv.starts_with(
            "study,number,state,value,datetime_start,datetime_complete,duration_s,is_confirm,confirm_of,is_pick,ended_by,device,params_activation"
        ),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 7);
    assert!(csv.ends_with('\n') && !csv.ends_with("\n\n"), "one trailing newline");
    // ISO 8601 times with microseconds, and empty cells where a value is missing.
    let first: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(first[4].len(), "2026-11-28T03:40:12.123456Z".len(), "{csv}");
    assert!(first[4].contains('T') && first[4].ends_with('Z'), "{csv}");
    assert_eq!((first[0], first[7], first[8], first[11]), ("small", "false", "", "cpu"), "{csv}");
    let curves = dir.ok(&["export", "small", "--format", "csv", "--curves"]);
    assert!(curves.starts_with("trial,is_confirm,step,metric,value\n0,false,1,"), "{curves}");
    let flat: Value =
        serde_json::from_str(&dir.ok(&["export", "small", "--format", "json", "--flat"])).unwrap();
    let rows = flat.as_array().unwrap();
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|r| r["device"] == "cpu" && r.get("params_activation").is_some()));
    assert_eq!(rows.iter().filter(|r| r["is_pick"] == true).count(), 1);
}

#[test]
fn the_same_study_file_gives_the_same_trials() {
    let runs: Vec<Value> = (0..2)
        .map(|_| {
            let dir = Dir::new();
            dir.write("study.toml", &digits_study("same", 3, 3));
            dir.ok(&["run", "study.toml"]);
            dir.export("same", "db/hpo.sqlite")
        })
        .collect();
    let key = |export: &Value| {
        trials(export)
            .iter()
            .map(|t| (t["params"].clone(), t["value"].clone(), t["curves"]["val_loss"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&runs[0]), key(&runs[1]));
}

#[test]
fn a_changed_search_space_is_refused_with_the_change() {
    let dir = Dir::new();
    dir.write("study.toml", &digits_study("s", 1, 1));
    dir.ok(&["run", "study.toml"]);
    dir.write("study.toml", &digits_study("s", 1, 1).replace("[32, 128]", "[32, 256]"));
    let err = dir.err(&["run", "study.toml"]);
    assert!(
        err.contains("study `s` already exists with a different search space:\n  parameter `hidden` changed from int [32, 128] log to int [32, 256] log"),
        "{err}"
    );
}

#[test]
fn bad_study_files_are_refused_with_file_line_and_fix() {
    let dir = Dir::new();
    dir.write("typo.toml", &digits_study("s", 1, 1).replace("max_epochs", "max_epoch"));
    let err = dir.bad_input(&["run", "typo.toml"]);
    assert!(err.starts_with("error: typo.toml:20:1: [objective].max_epoch: unknown field `max_epoch`, expected one of"), "{err}");

    dir.write("knob.toml", &digits_study("s", 1, 1).replace("hidden =", "width ="));
    let err = dir.bad_input(&["run", "knob.toml"]);
    assert!(
        err.contains(
            "knob.toml:25:1: [space].width: the mlp model has no hyperparameter `width`; it has: hidden, depth, norm"
        ),
        "{err}"
    );

    dir.write("dataset.toml", &digits_study("s", 1, 1).replace("\"digits\"", "\"mnist\""));
    let err = dir.bad_input(&["run", "dataset.toml"]);
    assert!(
        err.contains(
            "dataset.toml:19:11: [objective].dataset: unknown dataset `mnist`; available: digits"
        ),
        "{err}"
    );

    // Device names are hpo-train's to check, at the place the file wrote them.
    dir.write(
        "device.toml",
        &digits_study("s", 1, 1).replace("device = \"cpu\"", "device = \"gpu\""),
    );
    let err = dir.bad_input(&["run", "device.toml"]);
    assert!(
        err.contains(
            r#"device.toml:21:10: [objective].device: unknown device `gpu`; valid: "auto", "cpu", "cuda", "cuda:N""#
        ),
        "{err}"
    );
    let devices =
        digits_study("s", 1, 1).replace("device = \"cpu\"", "devices = [\"cpu\", \"gpu1\"]");
    dir.write("devices.toml", &devices);
    let err = dir.bad_input(&["run", "devices.toml"]);
    assert!(
        err.contains("devices.toml:21:19: [objective].devices[1]: unknown device `gpu1`"),
        "{err}"
    );

    let err = dir.err(&["run", "missing.toml"]);
    assert!(err.contains("cannot read study file missing.toml"), "{err}");
    assert!(!dir.path().join("db").exists(), "nothing is created for a bad run");
}

#[test]
fn reading_commands_explain_what_is_missing() {
    let dir = Dir::new();
    let err = dir.bad_input(&["ls"]);
    assert!(err.contains("no database at db/hpo.sqlite; run a study first"), "{err}");
    dir.write("study.toml", &digits_study("real", 1, 1));
    dir.ok(&["run", "study.toml"]);
    let err = dir.bad_input(&["show", "reel"]);
    assert!(err.contains("no study named `reel` in this database; it has: real"), "{err}");
    let err = dir.err(&["show", "real", "--trial", "9"]);
    assert!(err.contains("study `real` has no trial 9"), "{err}");
    let usage = dir.hpo(&["run", "study.toml", "--trials", "many"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
}

/// A grid over the `mixed` function: x0 in [-0.5, 0.5] by `step`, c in {a, b}, k in {1, 3, 5}.
fn mixed_grid(name: &str, step: f64) -> String {
    format!(
        "[study]\nname = \"{name}\"\nmetric = \"value\"\ndirection = \"minimize\"\n[sampler]\nkind = \"grid\"\n\
         [objective]\nkind = \"function\"\nfunction = \"mixed\"\n[space]\n\
         x0 = {{ float = [-0.5, 0.5], step = {step} }}\nc = {{ choice = [\"a\", \"b\"] }}\nk = {{ int = [1, 5], step = 2 }}\n"
    )
}

#[test]
fn a_grid_runs_every_point_exactly_once() {
    let dir = Dir::new();
    dir.write("grid.toml", &mixed_grid("grid", 0.25));
    let out = dir.ok(&["run", "grid.toml"]);
    assert!(out.contains("budget met; 30 trial(s) finished"), "{out}");
    let export = dir.export("grid", "db/hpo.sqlite");
    let points: std::collections::BTreeSet<String> =
        trials(&export).iter().map(|t| t["params"].to_string()).collect();
    assert_eq!(points.len(), 30);
    assert!(out.contains("best: trial 25 value=0.25"), "{out}");
}

#[test]
fn every_schema_fixture_opens_and_resumes() {
    let fixtures = repo().join("db/fixtures");
    let mut n = 0;
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "sqlite") {
            continue;
        }
        let dir = Dir::new();
        std::fs::copy(&path, dir.path().join("old.sqlite")).unwrap();
        let ls = dir.ok(&["ls", "--db", "old.sqlite"]);
        let row: Vec<&str> = ls.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            &row[..5],
            ["fixture", "minimize", "value", "6", "6"],
            "{}: {ls}",
            path.display()
        );
        let before = dir.export("fixture", "old.sqlite");
        assert_eq!(trials(&before).len(), 6);
        let study = fixtures.join("fixture-study.toml");
        let out = dir.ok(&["run", study.to_str().unwrap(), "--db", "old.sqlite", "--trials", "8"]);
        assert!(out.contains("2 trial(s) finished"), "{out}");
        let after = dir.export("fixture", "old.sqlite");
        assert_eq!(&trials(&after)[..6], &trials(&before)[..], "old trials unchanged");
        n += 1;
    }
    assert!(n >= 1, "no fixture in db/fixtures");
}

#[test]
fn two_processes_share_a_grid_without_running_a_point_twice() {
    let dir = Dir::new();
    // Enough points that neither process finishes the grid before the other starts.
    dir.write("grid.toml", &mixed_grid("shared-grid", 0.002));
    let children: Vec<_> = (0..2)
        .map(|_| dir.hpo(&["run", "grid.toml", "--db", "shared.sqlite"]).output_async())
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", crate::util::text(&out.stderr));
    }
    let export = dir.export("shared-grid", "shared.sqlite");
    let all = trials(&export);
    assert_eq!(all.len(), 501 * 2 * 3);
    assert!(all.iter().all(|t| t["state"] == "COMPLETE"));
    let points: std::collections::BTreeSet<String> =
        all.iter().map(|t| t["params"].to_string()).collect();
    assert_eq!(points.len(), all.len(), "a grid point ran twice");
    let owners: std::collections::BTreeSet<String> =
        all.iter().map(|t| t["system_attrs"]["hpo:owner"].to_string()).collect();
    assert_eq!(owners.len(), 2, "both processes claimed points");
}

#[test]
fn a_script_drives_an_external_study_with_ask_report_step_and_tell() {
    let dir = Dir::new();
    dir.write(
        "ext.toml",
        "[study]\nname = \"ext\"\nmetric = \"loss\"\ndirection = \"minimize\"\nseed = 1\ntrials = 3\n\
         [sampler]\nkind = \"tpe\"\n[objective]\nkind = \"external\"\n\
         [space]\nx = { float = [-1, 1] }\nopt = { choice = [\"sgd\", \"adam\"] }\n",
    );
    for number in 0..3 {
        let asked: Value = serde_json::from_str(dir.ok(&["ask", "ext.toml"]).trim()).unwrap();
        assert_eq!(asked["trial"], number);
        let x = asked["params"]["x"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&x));
        assert!(["sgd", "adam"].contains(&asked["params"]["opt"].as_str().unwrap()));
        let n = number.to_string();
        let step: Value = serde_json::from_str(
            dir.ok(&["report-step", "ext.toml", "--trial", &n, "--step", "1", "--value", "-0.5"])
                .trim(),
        )
        .unwrap();
        assert_eq!(step["prune"], false);
        let told: Value = serde_json::from_str(
            dir.ok(&["tell", "ext.toml", "--trial", &n, "--value", &(x * x).to_string()]).trim(),
        )
        .unwrap();
        assert_eq!(told["state"], "complete");
    }
    let err = dir.err(&["ask", "ext.toml"]);
    assert!(err.contains("has met its budget of 3 trials"), "{err}");
    let err = dir.err(&["tell", "ext.toml", "--trial", "0", "--state", "fail"]);
    assert!(err.contains("trial 0 of study `ext` is complete, not running"), "{err}");
    let usage = dir.hpo(&["tell", "ext.toml", "--trial", "0"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2), "neither --value nor --state is a usage error");
    let export = dir.export("ext", "db/hpo.sqlite");
    let all = trials(&export);
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|t| t["state"] == "COMPLETE" && t["intermediate_values"]["1"] == -0.5));
}

#[test]
fn confirm_trains_the_best_configurations_again_outside_the_budget() {
    let dir = Dir::new();
    dir.write("study.toml", &branin_study("conf", 6));
    dir.ok(&["run", "study.toml"]);
    let out = dir.ok(&["confirm", "study.toml", "--top", "2", "--seeds", "2"]);
    assert!(out.contains("study `conf`: confirmed; 4 confirm run(s) finished"), "{out}");
    assert!(out.contains("CONFIRM RUNS") && out.contains("MEAN  STD"), "{out}");

    let export = dir.export("conf", "db/hpo.sqlite");
    let all = trials(&export);
    assert_eq!(all.len(), 10);
    let mut originals: Vec<&Value> = all[..6].iter().collect();
    originals.sort_by(|a, b| a["value"].as_f64().partial_cmp(&b["value"].as_f64()).unwrap());
    // The original's number, stored as a JSON number (as Optuna writes floats).
    let confirm_of = |t: &Value| t["system_attrs"]["hpo:confirm_of"].as_f64().unwrap() as u64;
    let best = originals[0]["number"].as_u64().unwrap();
    let second = originals[1]["number"].as_u64().unwrap();
    let linked: Vec<u64> = all[6..].iter().map(confirm_of).collect();
    assert_eq!(linked, [best, best, second, second]);
    for trial in &all[6..] {
        assert_eq!(trial["state"], "COMPLETE");
        assert_eq!(trial["params"], all[confirm_of(trial) as usize]["params"]);
    }
    assert!(all[..6].iter().all(|t| t["system_attrs"].get("hpo:confirm_of").is_none()));
    assert!(all[..6].iter().all(|t| t["is_confirm"] == false));
    assert!(all[6..].iter().all(|t| t["is_confirm"] == true));
    // The confirm runs live in a study of their own, linked to this one.
    let ls = dir.ok(&["ls"]);
    assert!(ls.lines().any(|l| l.starts_with("conf:confirm ")), "{ls}");

    // The budget of 6 was met by the real trials alone: nothing more runs, and a
    // larger budget adds exactly the difference.
    assert!(dir.ok(&["run", "study.toml"]).contains("0 trial(s) finished"));
    assert!(dir.ok(&["run", "study.toml", "--trials", "7"]).contains("1 trial(s) finished"));
    // Confirming again adds nothing: the runs are in the store.
    let again = dir.ok(&["confirm", "study.toml", "--top", "2", "--seeds", "2"]);
    assert!(again.contains("0 confirm run(s) finished"), "{again}");
    assert_eq!(trials(&dir.export("conf", "db/hpo.sqlite")).len(), 11);
}

#[test]
fn pruning_bench_records_runs_and_resumes_without_rerunning_them() {
    let dir = Dir::new();
    dir.write("tiny.toml", &digits_study("tiny", 3, 2));
    let bench = |seeds: &str| {
        dir.ok(&[
            "bench",
            "pruning",
            "--studies",
            "tiny.toml",
            "--pruners",
            "none,asha",
            "--seeds",
            seeds,
            "--jobs",
            "2",
            "--runs",
            "runs.jsonl",
        ])
    };
    let out = bench("1");
    assert!(out.contains("medians over 1 study seeds (from 0), 2 run(s) at once"), "{out}");
    assert!(out.lines().any(|l| l.contains("asha") && l.contains(" 1/1 ")), "{out}");
    let first = std::fs::read_to_string(dir.path().join("runs.jsonl")).unwrap();
    let runs: Vec<Value> = first.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(runs.len(), 2, "{first}");
    for run in &runs {
        assert_eq!(run["study"], "tiny");
        assert_eq!(run["seed"], 0);
        // 3 trials of at most 2 epochs each.
        let epochs = run["epochs"].as_f64().unwrap();
        assert!((1.0..=6.0).contains(&epochs), "{run}");
    }
    // Two seeds: seed 0's runs are read back, not run again; seed 1's are added.
    bench("2");
    let second = std::fs::read_to_string(dir.path().join("runs.jsonl")).unwrap();
    assert!(second.starts_with(&first), "{second}");
    assert_eq!(second.lines().count(), 4, "{second}");
    assert_eq!(second.lines().filter(|l| l.contains("\"seed\":1")).count(), 2, "{second}");
    // A changed study file runs again: its old runs do not stand in for it.
    dir.write("tiny.toml", &digits_study("tiny", 3, 1));
    bench("1");
    let third = std::fs::read_to_string(dir.path().join("runs.jsonl")).unwrap();
    assert_eq!(third.lines().count(), 6, "{third}");
    // With no time to start runs in, none starts: the table shows what is recorded.
    let none_started = dir.ok(&[
        "bench",
        "pruning",
        "--studies",
        "tiny.toml",
        "--seeds",
        "3",
        "--runs",
        "runs.jsonl",
        "--start-within",
        "0",
    ]);
    assert_eq!(std::fs::read_to_string(dir.path().join("runs.jsonl")).unwrap(), third);
    assert!(
        none_started.lines().any(|l| l.contains("none") && l.contains(" 1/3 ")),
        "{none_started}"
    );
    let median_row = none_started.lines().find(|l| l.starts_with("tiny   median")).unwrap();
    assert!(median_row.contains(" 0/3 "), "{none_started}");
    assert_eq!(median_row.split_whitespace().filter(|cell| *cell == "-").count(), 5);
    // Starting nothing, it builds nothing: a GPU study's table prints without a GPU
    // (this build has no CUDA, so building its objective would fail).
    dir.write(
        "gpu.toml",
        &digits_study("gpu", 3, 1).replace("device = \"cpu\"", "device = \"cuda:0\""),
    );
    let gpu_table = dir.ok(&[
        "bench",
        "pruning",
        "--studies",
        "gpu.toml",
        "--seeds",
        "1",
        "--pruners",
        "none",
        "--start-within",
        "0",
    ]);
    assert!(gpu_table.lines().any(|l| l.starts_with("gpu ") && l.contains(" 0/1 ")), "{gpu_table}");
    assert!(
        gpu_table.contains("1 run(s) not recorded yet; --start-within 0 runs none"),
        "{gpu_table}"
    );

    // A run recorded twice (files joined) counts once.
    dir.write("runs.jsonl", &format!("{third}{third}"));
    let doubled = dir.ok(&[
        "bench",
        "pruning",
        "--studies",
        "tiny.toml",
        "--seeds",
        "1",
        "--pruners",
        "none",
        "--runs",
        "runs.jsonl",
    ]);
    assert!(doubled.lines().any(|l| l.contains("none") && l.contains(" 1/1 ")), "{doubled}");

    dir.write("runs.jsonl", "\n{\"study\": \"tiny\"\n");
    let err = dir.err(&["bench", "pruning", "--studies", "tiny.toml", "--runs", "runs.jsonl"]);
    assert!(err.contains("runs.jsonl line 2: not a pruning-benchmark run"), "{err}");
}

/// A metric the model never reports is refused when the file is read (exit 2, with
/// the metrics it does report); a run in which every trial failed exits 1 and
/// counts the reasons.
#[test]
fn an_unreported_metric_is_refused_and_a_run_of_failures_exits_1() {
    let dir = Dir::new();
    let study =
        digits_study("acc", 2, 1).replace("metric = \"val_accuracy\"", "metric = \"val_acc\"");
    dir.write("acc.toml", &study);
    let err = dir.bad_input(&["run", "acc.toml"]);
    assert!(err.contains("acc.toml:"), "{err}");
    assert!(err.contains("never reports `val_acc`"), "{err}");
    assert!(err.contains("val_accuracy") && err.contains("train_loss"), "{err}");
    assert!(!dir.path().join("db/hpo.sqlite").exists(), "nothing ran");

    // Every trial fails (heads that do not divide d_model: no model can be built):
    // exit 1, with the reasons counted.
    dir.write("text.txt", &"abcabcabd ".repeat(200));
    dir.write(
        "fail.toml",
        "[study]\nname = \"fail\"\nmetric = \"val_loss\"\ndirection = \"minimize\"\nseed = 1\ntrials = 3\n\
         [sampler]\nkind = \"random\"\n\
         [objective]\nkind = \"candle\"\nmodel = \"transformer\"\ndataset = { text = \"text.txt\" }\nmax_epochs = 1\ndevice = \"cpu\"\n\
         fixed = { d_model = 30, heads = 4, context = 8, steps_per_epoch = 2 }\n\
         [space]\nlr = { float = [1e-3, 1e-2], log = true }\n",
    );
    let err = dir.err(&["run", "fail.toml"]);
    assert!(err.contains("3 of 3 trial(s) failed:"), "{err}");
    assert!(err.contains("3 x cannot build the model"), "{err}");
    assert!(err.contains("every trial of this run failed"), "{err}");
}
