//! `hpo report`, `hpo confirm` and `hpo diff` end to end on small real studies.

use std::path::Path;

use crate::util::{DIGITS_REGULARIZATION as DIGITS, Dir, branin_study as branin};

#[test]
fn the_report_of_a_real_study_has_every_section_and_chart() {
    let dir = Dir::new();
    dir.write("reg.toml", DIGITS);
    dir.ok(&["run", "reg.toml"]);
    dir.ok(&["confirm", "reg.toml", "--top", "2", "--seeds", "2"]);
    let out = dir.ok(&["report", "reg", "--compare", "@2000-01-01"]);
    assert!(out.contains("reports/reg/index.html"), "{out}");
    let folder = dir.path().join("reports/reg");
    for stem in [
        "history",
        "curves-loss",
        "curves-accuracy",
        "regularization-dropout",
        "regularization-weight_decay",
        "regularization-label_smoothing",
        "heatmap",
        "importance",
        "parallel-coordinates",
        "timeline",
        "confirm",
    ] {
        for ext in ["svg", "png"] {
            let path = folder.join(format!("{stem}.{ext}"));
            assert!(non_empty(&path), "missing {}", path.display());
        }
    }
    let page = std::fs::read_to_string(folder.join("index.html")).unwrap();
    for section in [
        "Recommendation",
        "Pick trial",
        "Leaderboard",
        "Optimization history",
        "Learning curves",
        "Regularization and overfitting",
        "Parameter importance",
        "Parallel coordinates",
        "Timeline",
        "Seeds and noise",
        "95% CI",
        "Comparison",
    ] {
        assert!(page.contains(section), "the page lacks {section:?}");
    }
    // Self-contained: no scripts, nothing fetched (the SVG namespace is only a name).
    assert!(!page.contains("<script"));
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http") && !page.contains("url(")
    );
    assert_eq!(page.matches("<svg").count(), 11, "every chart inline");
    // The leaderboard lists the 8 trials that completed with their best-epoch metrics.
    assert!(page.contains("train loss") && page.contains("val accuracy"));
}

fn non_empty(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > 500)
}

#[test]
fn diff_exits_1_when_the_new_best_is_worse_and_0_otherwise() {
    let dir = Dir::new();
    dir.write("good.toml", &branin("good", 30));
    dir.write("bad.toml", &branin("bad", 2));
    dir.ok(&["run", "good.toml"]);
    dir.ok(&["run", "bad.toml"]);
    let worse = dir.hpo(&["diff", "good", "bad"]).output().unwrap();
    assert_eq!(worse.status.code(), Some(1));
    let text = String::from_utf8_lossy(&worse.stdout);
    assert!(text.contains("verdict: B is worse beyond the seed noise"), "{text}");
    assert!(text.contains("parameters that moved"), "{text}");
    let better = dir.ok(&["diff", "bad", "good"]);
    assert!(better.contains("verdict: B is better"), "{better}");
    // A study against its own state at a date before it ran: nothing to compare.
    let earlier = dir.ok(&["diff", "good@2000-01-01", "good"]);
    assert!(earlier.contains("cannot compare"), "{earlier}");
    let err = dir.bad_input(&["diff", "good", "nope"]);
    assert!(err.contains("no study named `nope`"), "{err}");
    let err = dir.bad_input(&["report", "good@yesterday"]);
    assert!(err.contains("is not a date"), "{err}");
}

/// `hpo diff` for machines: 0 not worse, 1 worse beyond the noise, 2 for bad usage
/// (a missing study or database, another metric), 3 for other errors, never 1 for
/// a misconfiguration; `--json`; the two sides may live in two databases.
#[test]
fn diff_exit_codes_json_and_two_databases() {
    let dir = Dir::new();
    dir.write("good.toml", &branin("good", 30));
    dir.write("bad.toml", &branin("bad", 2));
    dir.ok(&["run", "good.toml", "--db", "a.sqlite"]);
    dir.ok(&["run", "bad.toml", "--db", "b.sqlite"]);
    let code = |args: &[&str]| dir.hpo(args).output().unwrap().status.code();
    assert_eq!(code(&["diff", "a.sqlite:good", "b.sqlite:bad"]), Some(1));
    assert_eq!(code(&["diff", "b.sqlite:bad", "a.sqlite:good"]), Some(0));
    assert_eq!(code(&["diff", "good", "bad", "--db-a", "a.sqlite", "--db-b", "b.sqlite"]), Some(1));
    let out = dir.hpo(&["diff", "a.sqlite:good", "b.sqlite:bad", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["verdict"], "worse_beyond_noise");
    assert_eq!(json["worse"], true);
    assert_eq!(json["a"]["study"], "good");
    assert!(json["b"]["pick"]["trial"].is_u64());
    // Misconfigurations are 2, never 1: a missing study, a missing database, and
    // two studies of different metrics.
    assert_eq!(code(&["diff", "a.sqlite:good", "a.sqlite:nope"]), Some(2));
    assert_eq!(code(&["diff", "missing.sqlite:good", "a.sqlite:good"]), Some(2));
    dir.write(
        "other.toml",
        "[study]\nname = \"other\"\nmetric = \"value\"\ndirection = \"maximize\"\nseed = 1\ntrials = 2\n\
         [sampler]\nkind = \"random\"\n[objective]\nkind = \"function\"\nfunction = \"hartmann6\"\n\
         [space]\nx0 = { float = [0, 1] }\nx1 = { float = [0, 1] }\nx2 = { float = [0, 1] }\n\
         x3 = { float = [0, 1] }\nx4 = { float = [0, 1] }\nx5 = { float = [0, 1] }\n",
    );
    dir.ok(&["run", "other.toml", "--db", "a.sqlite"]);
    let mismatch = dir.hpo(&["diff", "a.sqlite:good", "a.sqlite:other"]).output().unwrap();
    assert_eq!(mismatch.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&mismatch.stderr).contains("only studies of the same metric"));
    // `@DATE` is A's study at that date, in A's database.
    let earlier = dir.ok(&["diff", "a.sqlite:good", "@2000-01-01"]);
    assert!(earlier.contains("cannot compare"), "{earlier}");
    assert_eq!(code(&["diff", "a.sqlite:good", "@yesterday"]), Some(2));
    // Any other error: 3 (here a file that is not a database).
    dir.write("notes.sqlite", "not a database at all, just some notes");
    assert_eq!(code(&["diff", "notes.sqlite:good", "a.sqlite:good"]), Some(3));
}

/// `kind = "auto"`: each trial records the model that proposed it and why, and
/// `hpo show` and the report list which model proposed which trials.
#[test]
fn an_auto_study_says_which_model_proposed_each_trial_and_why() {
    let dir = Dir::new();
    let study = branin("auto", 13).replace("kind = \"random\"", "kind = \"auto\"");
    dir.write("auto.toml", &study);
    dir.ok(&["run", "auto.toml"]);
    let shown = dir.ok(&["show", "auto"]);
    assert!(
        shown.contains(
            "proposed by:\n  random for trials 0-9: 9 of the first 10 complete trials, which are drawn at random before a model is fitted\n  gp for trials 10-12: 2 numeric and 0 categorical parameters (2 inputs) and 12 complete trials"
        ),
        "{shown}"
    );
    let trial = dir.ok(&["show", "auto", "--trial", "11"]);
    assert!(trial.contains("hpo:sampler: gp: 2 numeric and 0 categorical parameters (2 inputs) and 11 complete trials"), "{trial}");
    dir.ok(&["report", "auto"]);
    let page = std::fs::read_to_string(dir.path().join("reports/auto/index.html")).unwrap();
    assert!(
        page.contains("proposed by") && page.contains("gp for trials 10-12"),
        "the report's setup"
    );
}

/// Digits MLPs searched by NSGA-II for the int8 model's accuracy and its size,
/// with every variant made (12 trials of at most 8 epochs).
const DIGITS_COMPRESSED: &str = r#"
[study]
name = "small"
metrics = ["int8_val_accuracy", "int8_weight_bytes"]
directions = ["maximize", "minimize"]
seed = 4
trials = 12

[sampler]
kind = "nsga2"
population = 6

[early_stopping]
monitor = "val_loss"
patience = 3

[compress]
variants = ["int8", "pruned", "low_rank"]

[objective]
kind = "candle"
model = "mlp"
dataset = "digits"
max_epochs = 8
device = "cpu"
fixed = { batch_size = 32, lr = 0.01 }

[space]
hidden      = { int = [16, 128], log = true }
sparsity    = { float = [0.3, 0.9] }
rank_energy = { float = [0.5, 0.99] }
"#;

/// A study of two objectives with compressed variants: every trial measures each
/// variant; int8 keeps the f32 model's test accuracy within half a point; the
/// report shows the Pareto front `hpo export` gives and the compression table,
/// with their charts.
#[test]
fn the_report_of_a_compression_study_shows_the_front_and_each_variant() {
    let dir = Dir::new();
    dir.write("small.toml", DIGITS_COMPRESSED);
    dir.ok(&["run", "small.toml"]);
    let export: serde_json::Value =
        serde_json::from_str(&dir.ok(&["export", "small", "--format", "json"])).unwrap();
    let mut measured = 0;
    let mut drops: Vec<(f64, f64)> = Vec::new();
    for trial in export["trials"].as_array().unwrap() {
        if trial["state"] != "COMPLETE" {
            continue;
        }
        measured += 1;
        let attr =
            |name: &str| trial["user_attrs"][name].as_f64().unwrap_or_else(|| panic!("{name}"));
        // Quantization: about a quarter of the bytes, about the same accuracy.
        assert!(attr("int8_weight_bytes") < 0.3 * attr("f32_weight_bytes"));
        let drop = (attr("f32_test_accuracy") - attr("int8_test_accuracy")).abs();
        assert!(drop <= 0.02, "trial {}: int8 off by {drop}", trial["number"]);
        drops.push((attr("f32_val_accuracy"), drop));
        // Pruning keeps about 1 - sparsity of the weights.
        let sparsity = trial["params"]["sparsity"].as_f64().unwrap();
        let kept = attr("pruned_parameters") / attr("f32_parameters");
        assert!(kept < 1.0 - sparsity + 0.05, "trial {}: kept {kept}", trial["number"]);
        assert!(attr("low_rank_parameters") > 0.0 && attr("pruned_latency_ms") > 0.0);
        assert_eq!(trial["values"][0].as_f64(), Some(attr("int8_val_accuracy")));
    }
    assert!(measured >= 10, "{measured} trials measured");
    // int8 within half a point of f32 on the digits test split: for the most
    // accurate model, and for the median one.
    drops.sort_by(|a, b| b.0.total_cmp(&a.0));
    assert!(drops[0].1 <= 0.005, "the best model's int8 is off by {}", drops[0].1);
    let mut only: Vec<f64> = drops.iter().map(|d| d.1).collect();
    only.sort_by(f64::total_cmp);
    assert!(only[only.len() / 2] <= 0.005, "median drop {:?}", only);
    dir.ok(&["report", "small"]);
    let folder = dir.path().join("reports/small");
    let html = std::fs::read_to_string(folder.join("index.html")).unwrap();
    for stem in ["pareto", "compression-size", "compression-latency", "timeline"] {
        assert!(non_empty(&folder.join(format!("{stem}.svg"))), "{stem}.svg");
        assert!(non_empty(&folder.join(format!("{stem}.png"))), "{stem}.png");
    }
    // The one-value sections are not drawn for a study of several objectives.
    assert!(!folder.join("history.svg").exists());
    assert!(html.contains("<h2>Pareto front</h2>") && html.contains("<h2>Compression</h2>"));
    for method in ["f32", "int8", "pruned", "low_rank"] {
        assert!(html.contains(&format!("<tr><td>{method}</td>")), "{method}");
    }
    let front = export["pareto_front"].as_array().unwrap();
    assert!(!front.is_empty());
    let table = &html
        [html.find("<h2>Pareto front</h2>").unwrap()..html.find("<h2>Compression</h2>").unwrap()];
    let rows = table.matches("<tr><td class=\"num\">").count();
    assert_eq!(rows, front.len(), "{table}");
    for number in front {
        assert!(table.contains(&format!("<tr><td class=\"num\">{number}</td>")), "{number}");
    }
}
