//! Interop with Python Optuna 5.0.0: Optuna reads what hpo writes, and hpo reads
//! what Optuna writes. The first test to need it makes a venv with Optuna (and
//! ONNX Runtime, for `tests/export.rs`) under the target dir (pip, from PyPI);
//! later runs reuse it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::util::{DIGITS_REGULARIZATION, Dir, digits_study, repo, text, trials};

const OPTUNA_VERSION: &str = "5.0.0";

/// What the venv holds: Optuna, the PostgreSQL driver its SQLAlchemy uses for
/// `postgresql+psycopg2://` storages, optuna-dashboard, and ONNX Runtime.
const PACKAGES: [&str; 4] =
    ["optuna==5.0.0", "psycopg2-binary==2.9.13", "optuna-dashboard==0.21.0", "onnxruntime==1.32.0"];

pub(crate) fn python() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("optuna-{OPTUNA_VERSION}-venv"));
        let python = venv.join("bin/python");
        let ready = venv.join("ready");
        if std::fs::read_to_string(&ready).ok().as_deref() != Some(&PACKAGES.join(" ")) {
            let system = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
            let status = Command::new(&system)
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .expect("python3 -m venv");
            assert!(status.success(), "python3 -m venv failed");
            let out = Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
                .args(PACKAGES)
                .output()
                .expect("pip");
            assert!(out.status.success(), "pip install optuna failed:\n{}", text(&out.stderr));
            std::fs::write(&ready, PACKAGES.join(" ")).unwrap();
        }
        python
    })
}

pub(crate) fn optuna(mode: &str, db: &std::path::Path, study: &str) -> Value {
    let out = Command::new(python())
        .arg(repo().join("tests/optuna_interop.py"))
        .args([mode, db.to_str().unwrap(), study])
        .output()
        .expect("run python");
    assert!(out.status.success(), "optuna_interop.py {mode} failed:\n{}", text(&out.stderr));
    serde_json::from_str(&text(&out.stdout)).expect("json from python")
}

/// optuna-dashboard (from the venv) serving `db`, an SQLite file or a
/// `postgresql://` URL, on a free loopback port; killed on drop.
pub(crate) struct OptunaDashboard {
    child: std::process::Child,
    base: String,
    agent: ureq::Agent,
}

impl OptunaDashboard {
    pub(crate) fn start(db: &str) -> OptunaDashboard {
        let storage = match db.strip_prefix("postgresql://") {
            Some(rest) => format!("postgresql+psycopg2://{rest}"),
            None => format!("sqlite:///{}", std::fs::canonicalize(db).unwrap().display()),
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(python().with_file_name("optuna-dashboard"))
            .args([storage.as_str(), "--host", "127.0.0.1", "--port", &port.to_string(), "--quiet"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start optuna-dashboard");
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .build()
            .into();
        let mut dashboard =
            OptunaDashboard { child, base: format!("http://127.0.0.1:{port}"), agent };
        let started = std::time::Instant::now();
        while dashboard.agent.get(format!("{}/api/studies", dashboard.base)).call().is_err() {
            assert!(
                dashboard.child.try_wait().unwrap().is_none(),
                "optuna-dashboard exited on {storage}"
            );
            assert!(started.elapsed().as_secs() < 60, "optuna-dashboard never answered");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        dashboard
    }

    /// `GET path` as JSON.
    pub(crate) fn get(&self, path: &str) -> Value {
        let mut response = self
            .agent
            .get(format!("{}{path}", self.base))
            .call()
            .unwrap_or_else(|err| panic!("optuna-dashboard GET {path}: {err}"));
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
    }

    /// What the dashboard's API shows of study `name`, checked against hpo's export
    /// of it: every trial with its number, state, value, parameters and curve.
    #[track_caller]
    pub(crate) fn assert_shows(&self, name: &str, ours: &Value) {
        let studies = self.get("/api/studies");
        let study = studies["study_summaries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["study_name"] == name)
            .unwrap_or_else(|| panic!("optuna-dashboard lists no study {name}: {studies}"));
        let detail = self.get(&format!("/api/studies/{}?after=0", study["study_id"]));
        let (ours, theirs) = (trials(ours), detail["trials"].as_array().unwrap());
        assert_eq!(theirs.len(), ours.len(), "optuna-dashboard's trials of {name}");
        for (a, b) in ours.iter().zip(theirs) {
            let n = &a["number"];
            assert_eq!(a["number"], b["number"]);
            let state = b["state"].as_str().unwrap().to_uppercase();
            assert_eq!(a["state"].as_str().unwrap(), state, "trial {n}");
            if state == "COMPLETE" {
                let value = b["values"][0].as_f64().unwrap();
                assert!((a["value"].as_f64().unwrap() - value).abs() < 1e-9, "trial {n}");
            }
            let names: std::collections::BTreeSet<&str> = b["params"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            let ours: std::collections::BTreeSet<&str> =
                a["params"].as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(names, ours, "trial {n}'s parameters");
            let steps = b["intermediate_values"].as_array().unwrap().len();
            assert_eq!(steps, a["intermediate_values"].as_object().unwrap().len(), "trial {n}");
        }
    }
}

impl Drop for OptunaDashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// hpo's export and Optuna's dump agree on everything both record.
#[track_caller]
pub(crate) fn assert_same_trial(ours: &Value, theirs: &Value) {
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

    // optuna-dashboard shows the same study.
    OptunaDashboard::start(dir.path().join("hpo.sqlite").to_str().unwrap())
        .assert_shows("for-optuna", &dir.export("for-optuna", "hpo.sqlite"));
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
    assert!(show.contains(&format!("pick: trial {}  value=", best["number"])), "{show}");
    // No study file, so no `hpo confirm`: the advice says so instead.
    assert!(show.contains("hpo confirm needs the study file"), "{show}");
    assert!(show.contains("trials: 6 total, 4 complete, 1 pruned, 1 failed"), "{show}");
    let trial = dir.ok(&["show", "from-optuna", "--db", db, "--trial", "0"]);
    assert!(trial.contains("intermediate_value") && trial.contains("kind = "), "{trial}");

    // Its report draws the intermediate values as curves, shows the study's user
    // attributes, and gives no advice that needs a study file it lacks.
    dir.ok(&["report", "from-optuna", "--out", "rep", "--db", db]);
    let page = std::fs::read_to_string(dir.path().join("rep/index.html")).unwrap();
    assert!(dir.path().join("rep/curves-value.svg").exists(), "intermediate values as curves");
    assert!(page.contains("Study attributes") && page.contains("vision team"), "user attrs");
    assert!(page.contains("needs the study file") && !page.contains("hpo confirm STUDY.toml"));

    // An Optuna study can't be resumed from a study file: that would mix two definitions.
    dir.write("study.toml", &digits_study("from-optuna", 1, 1));
    let err = dir.err(&["run", "study.toml", "--db", db]);
    assert!(
        err.contains("study `from-optuna` exists but was not created from a study file"),
        "{err}"
    );
}

/// Every read command works on a database Optuna wrote without changing a byte of
/// it, writable or not.
#[test]
fn read_commands_never_write_an_optuna_database() {
    let dir = Dir::new();
    let path = dir.path().join("optuna.sqlite");
    optuna("write", &path, "from-optuna");
    let db = path.to_str().unwrap();
    let before = std::fs::read(&path).unwrap();
    let files_before: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    let out = dir.path().join("report");
    let reads: [Vec<&str>; 7] = [
        vec!["ls", "--db", db],
        vec!["show", "from-optuna", "--db", db],
        vec!["show", "from-optuna", "--trial", "0", "--db", db],
        vec!["export", "from-optuna", "--format", "csv", "--db", db],
        vec!["export", "from-optuna", "--format", "json", "--db", db],
        vec!["report", "from-optuna", "--out", out.to_str().unwrap(), "--db", db],
        vec!["diff", "from-optuna", "from-optuna", "--db", db],
    ];
    for args in &reads {
        dir.ok(args);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "`hpo {}` changed the database",
            args.join(" ")
        );
    }
    let mut files_after: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    files_after.retain(|name| name != "report");
    assert_eq!(files_after, files_before, "read commands left files beside the database");

    // The same file, read-only: every read command still works.
    let mut permissions = std::fs::metadata(&path).unwrap().permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(&path, permissions).unwrap();
    for args in &reads {
        dir.ok(args);
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// A study of two objectives that hpo ran with NSGA-II: Optuna reads both values
/// of every trial, the metric names and directions, and its `best_trials` is the
/// Pareto front `hpo export` and `hpo show` give.
#[test]
fn optunas_best_trials_are_the_pareto_front_of_an_hpo_study() {
    let dir = Dir::new();
    dir.write("size.toml", DIGITS_SIZE);
    let run = dir.ok(&["run", "size.toml"]);
    assert!(run.contains("Pareto front:"), "{run}");
    let db = dir.path().join("db/hpo.sqlite");
    let theirs = optuna("pareto", &db, "size");
    assert_eq!(theirs["directions"], serde_json::json!(["MAXIMIZE", "MINIMIZE"]));
    assert_eq!(theirs["metric_names"], serde_json::json!(["val_accuracy", "parameters"]));
    let ours: Value =
        serde_json::from_str(&dir.ok(&["export", "size", "--format", "json"])).unwrap();
    let front: Vec<u64> =
        ours["pareto_front"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect();
    let mut sorted = front.clone();
    sorted.sort_unstable();
    assert_eq!(serde_json::json!(sorted), theirs["best_trials"]);
    // A front of one would not show that both objectives count.
    assert!(front.len() >= 2, "front {front:?}");
    // The constraint keeps the smallest models off the front, for Optuna too.
    let mut broken = 0;
    for trial in ours["trials"].as_array().unwrap() {
        let Some(violation) = trial["system_attrs"]["constraints"][0].as_f64() else { continue };
        assert_eq!(violation, 1000.0 - trial["user_attrs"]["parameters"].as_f64().unwrap());
        if violation > 0.0 {
            broken += 1;
            assert!(!front.contains(&trial["number"].as_u64().unwrap()));
        }
    }
    assert!(broken > 0, "no trial broke the constraint");
    for trial in ours["trials"].as_array().unwrap() {
        if trial["state"] == "COMPLETE" {
            let number = trial["number"].to_string();
            assert_eq!(trial["values"], theirs["values"][&number], "trial {number}");
            // The second objective is the model's size, as the trial measured it.
            assert_eq!(trial["values"][1].as_f64(), trial["user_attrs"]["parameters"].as_f64());
        }
    }
    // `hpo confirm` trains the front again with new seeds, beside the study.
    let confirmed = dir.ok(&["confirm", "size.toml", "--top", "2", "--seeds", "2"]);
    assert!(confirmed.contains("(TRIAL -> CONFIRM MEAN)"), "{confirmed}");
    let runs = optuna("pareto", &db, "size:confirm");
    // The front's two most accurate (the first objective) are the ones confirmed.
    let accuracy = |n: &u64| theirs["values"][n.to_string()][0].as_f64().unwrap();
    let mut originals: Vec<u64> = front.clone();
    originals.sort_by(|a, b| accuracy(b).total_cmp(&accuracy(a)).then(a.cmp(b)));
    originals.truncate(2);
    assert_eq!(runs["values"].as_object().unwrap().len(), 4, "{runs}");
    for number in &originals {
        let row = format!("{number} ");
        assert!(confirmed.lines().any(|l| l.trim_start().starts_with(&row)), "{confirmed}");
    }
    // Optuna's study still holds only the search trials.
    assert_eq!(optuna("pareto", &db, "size")["best_trials"], theirs["best_trials"]);
    let show = dir.ok(&["show", "size"]);
    assert!(show.contains("(maximize val_accuracy, minimize parameters)"), "{show}");
    for number in &front {
        assert!(show.lines().any(|l| l.trim_start().starts_with(&format!("{number} "))), "{show}");
    }
}

/// A study Optuna's NSGA-II wrote, with a constraint some trials break: hpo reads
/// every value and shows the same front as Optuna's `best_trials` (feasible trials
/// only), in `hpo show`, `hpo export` and the report; `hpo diff`, which compares
/// one value, says why it refuses it.
#[test]
fn hpo_reads_an_optuna_nsga2_study_with_its_constraints() {
    let dir = Dir::new();
    let path = dir.path().join("optuna.sqlite");
    let theirs = optuna("write-nsga2", &path, "two");
    let db = path.to_str().unwrap();
    let ls = dir.ok(&["ls", "--db", db]);
    let row = ls.lines().find(|l| l.starts_with("two")).expect(&ls);
    assert!(row.contains("minimize,maximize") && row.contains("(multi-objective)"), "{ls}");
    let ours: Value =
        serde_json::from_str(&dir.ok(&["export", "two", "--format", "json", "--db", db])).unwrap();
    let mut front: Vec<u64> =
        ours["pareto_front"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect();
    front.sort_unstable();
    assert_eq!(serde_json::json!(front), theirs["best_trials"]);
    // Some trial breaks the constraint and would be on the front without it.
    let broken = ours["trials"].as_array().unwrap().iter().filter(|t| {
        t["system_attrs"]["constraints"].as_array().is_some_and(|c| c[0].as_f64().unwrap() > 0.0)
    });
    assert!(broken.count() > 0, "no trial breaks the constraint");
    let show = dir.ok(&["show", "two", "--db", db]);
    assert!(show.contains("(minimize value_0, maximize value_1)"), "{show}");
    // The report shows the front; `diff` compares one value and refuses.
    let before = std::fs::read(&path).unwrap();
    dir.ok(&["report", "two", "--db", db]);
    let html = std::fs::read_to_string(dir.path().join("reports/two/index.html")).unwrap();
    assert!(html.contains("<h2>Pareto front</h2>"));
    for number in &front {
        assert!(html.contains(&format!("<tr><td class=\"num\">{number}</td>")), "{number}");
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "the report wrote to Optuna's database");
    let err = dir.bad_input(&["diff", "two", "two", "--db", db]);
    assert!(
        err.contains("study `two` has 2 objectives (minimize, maximize)")
            && err.contains("single-objective"),
        "{err}"
    );
}

/// Digits MLPs searched for accuracy and size with NSGA-II (12 trials, 3 epochs),
/// models under 1,000 parameters kept off the front by a constraint.
const DIGITS_SIZE: &str = r#"
[study]
name = "size"
metrics = ["val_accuracy", "parameters"]
directions = ["maximize", "minimize"]
constraints = ["parameters >= 1000"]
seed = 5
trials = 12

[sampler]
kind = "nsga2"
population = 6

[objective]
kind = "candle"
model = "mlp"
dataset = "digits"
max_epochs = 3
device = "cpu"

[space]
lr     = { float = [3e-3, 3e-2], log = true }
hidden = { int = [4, 128], log = true }
depth  = { int = [1, 2] }
"#;

/// The pick is one fact: after the regularization study, `hpo confirm` and
/// `hpo report`, the report's leaderboard, `hpo show`, `hpo diff`, `hpo export` and
/// the study user attribute Optuna shows all name the same trial; Optuna's study
/// holds only search trials (its confirm runs are in `reg:confirm`).
#[test]
fn every_view_names_the_same_pick_and_optuna_sees_no_confirm_run() {
    let dir = Dir::new();
    dir.write("reg.toml", DIGITS_REGULARIZATION);
    dir.ok(&["run", "reg.toml"]);
    let db = dir.path().join("db/hpo.sqlite");
    let before = dir.ok(&["show", "reg"]);
    assert!(before.contains("provisional"), "{before}");
    let confirm = dir.ok(&["confirm", "reg.toml", "--top", "3", "--seeds", "3"]);
    let report = dir.ok(&["report", "reg"]);
    assert!(report.contains("(stored in the database)"), "{report}");

    // Optuna: the study holds its 8 search trials only, and the stored pick.
    let optuna_view = optuna("read", &db, "reg");
    assert_eq!(trials(&optuna_view).len(), 8, "no confirm run among Optuna's trials");
    assert!(trials(&optuna_view).iter().all(|t| t["system_attrs"].get("hpo:confirm_of").is_none()));
    let attrs = &optuna_view["user_attrs"];
    let pick = attrs["pick_trial"].as_u64().expect("pick_trial is an integer");
    assert_eq!(attrs["pick_confirm_runs"], 3, "{attrs}");
    assert_eq!(attrs["hpo:confirm_study"], "reg:confirm");
    let runs = optuna("read", &db, "reg:confirm");
    assert_eq!(trials(&runs).len(), 9);

    // hpo confirm's own output, hpo show, hpo export, hpo diff and the report.
    let named = format!("pick: trial {pick} ");
    assert!(confirm.contains(&named), "{confirm}");
    let show = dir.ok(&["show", "reg"]);
    assert!(show.contains(&named) && show.contains("confirm runs with new seeds"), "{show}");
    let export = dir.export("reg", "db/hpo.sqlite");
    assert_eq!(export["pick"]["trial"], pick);
    let picked: Vec<u64> = trials(&export)
        .iter()
        .filter(|t| t["is_pick"] == true)
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    assert_eq!(picked, [pick]);
    let csv = dir.ok(&["export", "reg", "--format", "csv"]);
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let pick_rows: Vec<&str> =
        csv.lines().skip(1).filter(|l| l.split(',').nth(col("is_pick")) == Some("true")).collect();
    assert_eq!(pick_rows.len(), 1, "{csv}");
    assert_eq!(pick_rows[0].split(',').nth(col("number")), Some(pick.to_string().as_str()));
    let diff = dir.hpo(&["diff", "reg", "reg", "--json"]).output().unwrap();
    let diff: Value = serde_json::from_slice(&diff.stdout).expect("diff --json");
    assert_eq!(diff["b"]["pick"]["trial"], pick);
    assert_eq!(diff["b"]["pick"]["confirmed"], true);
    let page = std::fs::read_to_string(dir.path().join("reports/reg/index.html")).unwrap();
    assert!(page.contains(&format!("<b>Pick trial {pick}</b>")), "report's recommendation");
    let marked = format!("<td class=\"num\">{pick} <span class=\"pick-tag\">pick</span></td>");
    assert!(page.contains(&marked), "the leaderboard marks the pick");
}
