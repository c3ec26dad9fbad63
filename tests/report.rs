//! `hpo report`, `hpo confirm` and `hpo diff` end to end on small real studies.

use std::path::Path;

use crate::util::Dir;

const DIGITS: &str = r#"
[study]
name = "reg"
metric = "val_loss"
direction = "minimize"
seed = 3
trials = 8

[sampler]
kind = "random"

[early_stopping]
patience = 2

[objective]
kind = "candle"
model = "mlp"
dataset = "digits"
max_epochs = 4
device = "cpu"
fixed = { hidden = 32, depth = 1, batch_size = 64 }

[space]
lr              = { float = [1e-3, 3e-2], log = true }
dropout         = { float = [0.0, 0.5] }
weight_decay    = { float = [1e-5, 1e-1], log = true }
label_smoothing = { float = [0.0, 0.2] }
"#;

fn branin(name: &str, trials: usize) -> String {
    format!(
        "[study]\nname = \"{name}\"\nmetric = \"value\"\ndirection = \"minimize\"\nseed = 5\ntrials = {trials}\n\
         [sampler]\nkind = \"random\"\n[objective]\nkind = \"function\"\nfunction = \"branin\"\n\
         [space]\nx0 = {{ float = [-5, 10] }}\nx1 = {{ float = [0, 15] }}\n"
    )
}

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
    let err = dir.err(&["diff", "good", "nope"]);
    assert!(err.contains("no study named `nope`"), "{err}");
    let err = dir.err(&["report", "good@yesterday"]);
    assert!(err.contains("is not a date"), "{err}");
}
