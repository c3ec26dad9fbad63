//! `hpo nightly`: nights in a row with an injected date, warm starts, a regression
//! told from an error by the exit code, a killed night resumed.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve::Server;
use crate::util::{Dir, text, trials};

/// A study whose loss is (x - 1)² plus whatever `shift.txt` holds plus a little
/// seed noise: a program that gets worse when the file says so, like new data that
/// hurts. `seconds` is how long each trial sleeps.
fn drift_study(name: &str, budget: usize, seconds: f64) -> String {
    format!(
        r#"
[study]
name = "{name}"
metric = "loss"
direction = "minimize"
seed = 3
trials = {budget}

[sampler]
kind = "tpe"

[objective]
kind = "command"
command = ["sh", "drift.sh", "{{x}}", "{{seed}}", "{seconds}"]
metrics = "key=value"

[space]
x = {{ float = [-3.0, 3.0] }}

[nightly]
top = 2
seeds = 3
"#
    )
}

const DRIFT: &str = r#"#!/bin/sh
shift_by=$(cat shift.txt 2>/dev/null || echo 0)
sleep "$3"
awk -v x="$1" -v seed="$2" -v s="$shift_by" 'BEGIN { srand(seed % 1000003); printf "loss=%.6f\n", (x - 1) ^ 2 + s + 0.01 * rand() }'
"#;

pub(crate) fn drift_dir(budget: usize, seconds: f64) -> Dir {
    let dir = Dir::new();
    dir.write("drift.toml", &drift_study("drift", budget, seconds));
    dir.write("drift.sh", DRIFT);
    dir
}

pub(crate) fn night(dir: &Dir, date: &str, extra: &[&str]) -> Output {
    let mut args = vec!["nightly", "drift.toml", "--db", "n.sqlite", "--date", date];
    args.extend_from_slice(extra);
    dir.hpo(&args).output().expect("run hpo nightly")
}

#[track_caller]
fn json_of(out: &Output) -> Value {
    serde_json::from_str(&text(&out.stdout)).unwrap_or_else(|err| {
        panic!("not JSON ({err}): {}\n{}", text(&out.stdout), text(&out.stderr))
    })
}

#[test]
fn nights_in_a_row_warm_start_and_a_worse_night_exits_1_saying_by_how_much() {
    let dir = drift_dir(8, 0.0);
    let first = night(&dir, "2026-12-01", &["--json"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let first = json_of(&first);
    assert_eq!(first["night"], "drift@2026-12-01");
    assert_eq!(first["verdict"], "first_night");
    assert_eq!(first["previous"], Value::Null);
    assert_eq!(first["trials"]["complete"], 8);
    assert_eq!(first["tonight"]["confirm_runs"], 3, "{first}");
    assert!(dir.path().join(first["report"].as_str().unwrap()).exists());

    // Night 2 starts from night 1's pick: its first trial has night 1's parameters.
    let second = night(&dir, "2026-12-02", &["--json"]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    let second = json_of(&second);
    assert_eq!(second["previous"], "drift@2026-12-01");
    assert_eq!(second["warm_start"], 2);
    assert_eq!(second["prior_trials"], 8);
    assert_eq!(second["last_night"]["trial"], first["tonight"]["trial"]);
    let export = dir.export("drift@2026-12-02", "n.sqlite");
    let trial0 = &trials(&export)[0];
    let picked = dir.export("drift@2026-12-01", "n.sqlite");
    let picked =
        trials(&picked).iter().find(|t| t["number"] == first["tonight"]["trial"]).unwrap().clone();
    assert_eq!(trial0["params"], picked["params"], "night 2 begins with night 1's pick");
    assert!(
        ["better", "same", "worse_within_noise"].contains(&second["verdict"].as_str().unwrap()),
        "{second}"
    );

    // New data makes night 3 worse by 5: exit 1, and it says by how much.
    dir.write("shift.txt", "5\n");
    let third = night(&dir, "2026-12-03", &["--json"]);
    assert_eq!(third.status.code(), Some(1), "{}", text(&third.stderr));
    let third = json_of(&third);
    assert_eq!(third["verdict"], "worse_beyond_noise");
    assert_eq!(third["worse"], true);
    assert_eq!(third["exit_code"], 1);
    let delta = third["delta"].as_f64().unwrap();
    assert!((4.5..5.5).contains(&delta), "{third}");

    // The same night again does nothing new and tells the same.
    let again = night(&dir, "2026-12-03", &[]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again.stderr));
    let told = text(&again.stdout);
    assert!(
        told.contains("since last night: +4.") || told.contains("since last night: +5."),
        "{told}"
    );
    assert!(told.contains("worse beyond the seed noise"), "{told}");
    assert!(told.contains("(0 finished in this run)"), "{told}");
    let ls = dir.ok(&["ls", "--db", "n.sqlite"]);
    let row = ls.lines().find(|l| l.starts_with("drift@2026-12-03 ")).expect(&ls);
    assert_eq!(row.split_whitespace().nth(3), Some("8"), "{ls}");

    // The report has the night before and the trend over the three nights.
    let page =
        std::fs::read_to_string(dir.path().join("reports/drift@2026-12-03/index.html")).unwrap();
    assert!(page.contains("Since last night") && page.contains("<h2>Nights</h2>"));
    for date in ["2026-12-01", "2026-12-02", "2026-12-03"] {
        assert!(page.contains(&format!("<td>{date}</td>")), "{date} in the nights table");
    }
    assert!(page.contains("worse beyond noise"));
    assert!(dir.path().join("reports/drift@2026-12-03/nights.png").exists());
}

#[test]
fn a_broken_night_exits_2_or_more_never_1() {
    let dir = drift_dir(3, 0.0);
    // A dataset that is not there: bad input, 2.
    dir.write(
        "missing.toml",
        r#"
[study]
name = "missing"
metric = "val_loss"
direction = "minimize"
trials = 2

[objective]
kind = "candle"
model = "mlp"
dataset = { csv = "no-such-file.csv", target = "y" }
max_epochs = 1

[space]
lr = { float = [1e-3, 1e-1], log = true }
"#,
    );
    let out = dir.hpo(&["nightly", "missing.toml", "--db", "n.sqlite"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no-such-file.csv"), "{}", text(&out.stderr));

    // A bad date: 2.
    let out = night(&dir, "2026-13-01", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("YYYY-MM-DD"), "{}", text(&out.stderr));

    // A database that cannot be reached: 3, and the password stays out of it.
    let out = dir
        .hpo(&["nightly", "drift.toml", "--db", "postgresql://hpo:s3cret@127.0.0.1:1/hpo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("s3cret"));

    // Every trial fails: 3.
    dir.write("drift.sh", "#!/bin/sh\necho 'out of ideas' >&2\nexit 4\n");
    let out = night(&dir, "2026-12-01", &["--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no complete trial (3 failed"), "{}", text(&out.stderr));
}

#[test]
fn a_killed_night_resumes_on_rerun_and_ends_with_its_budget() {
    let dir = drift_dir(6, 0.4);
    let mut child = dir
        .hpo(&["nightly", "drift.toml", "--db", "n.sqlite", "--date", "2026-12-01"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once two trials have finished.
    let started = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let ls = dir.hpo(&["ls", "--db", "n.sqlite"]).output().unwrap();
        let ls = text(&ls.stdout);
        let complete = ls
            .lines()
            .find(|l| l.starts_with("drift@2026-12-01 "))
            .and_then(|l| l.split_whitespace().nth(4).map(str::to_owned));
        if complete.as_deref().is_some_and(|n| n.parse::<usize>().unwrap() >= 2) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no trial finished: {ls}");
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let out = night(&dir, "2026-12-01", &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let resumed = json_of(&out);
    assert_eq!(resumed["night"], "drift@2026-12-01", "the same night, not a new one");
    assert_eq!(resumed["trials"]["complete"], 6, "{resumed}");
    let finished_now = resumed["trials"]["finished_in_this_run"].as_u64().unwrap();
    assert!((1..6).contains(&finished_now), "{resumed}");
    let ls = dir.ok(&["ls", "--db", "n.sqlite"]);
    assert_eq!(
        ls.lines().filter(|l| l.starts_with("drift@")).count(),
        2,
        "one night and its confirm runs: {ls}"
    );
}

/// The value of sample `name` with `labels` in `scrape`, if there is one.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))?;
    match found.value {
        prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => Some(v),
        ref other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn the_service_runs_a_night_at_its_time_and_tells_its_verdict_on_metrics() {
    let dir = drift_dir(4, 0.0);
    dir.write(
        "schedule.toml",
        "[[night]]\nstudy = \"drift.toml\"\nat = \"02:00\"\ntime_zone = \"UTC\"\nwindow = \"1h\"\n",
    );
    // The service's clock starts three seconds before the night's time.
    let server = Server::start(
        &dir,
        &[
            "--db",
            "n.sqlite",
            "--schedule",
            "schedule.toml",
            "--clock-start",
            "2026-12-06T01:59:57Z",
        ],
    );
    let scrape = server.scrape();
    assert_eq!(
        sample(&scrape, "hpo_nightly_scheduled_exit_code", &[("study", "drift")]),
        None,
        "not yet"
    );
    let started = Instant::now();
    let scrape = loop {
        let scrape = server.scrape();
        if sample(&scrape, "hpo_nightly_scheduled_exit_code", &[("study", "drift")]).is_some() {
            break scrape;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "the night never ran");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(started.elapsed() >= Duration::from_secs(2), "it waited for its time");
    assert_eq!(
        sample(&scrape, "hpo_nightly_scheduled_exit_code", &[("study", "drift")]),
        Some(0.0)
    );
    let first = [("study", "drift"), ("verdict", "first_night")];
    assert_eq!(sample(&scrape, "hpo_nightly_verdict", &first), Some(1.0));
    assert_eq!(sample(&scrape, "hpo_nightly_regression", &[("study", "drift")]), Some(0.0));
    let ended =
        sample(&scrape, "hpo_nightly_scheduled_end_timestamp_seconds", &[("study", "drift")]);
    let night_start = 1_796_522_400.0; // 2026-12-06T02:00:00Z
    assert!(ended.is_some_and(|t| (night_start..night_start + 120.0).contains(&t)), "{ended:?}");
    // The night is the day the clock says, and the dashboard's report shows it.
    let (status, report) = server.get("/api/v1/studies/drift@2026-12-06/report");
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["nights"]["nights"][0]["date"], "2026-12-06");
    assert_eq!(report["nights"]["nights"][0]["verdict"], "first_night");
}

#[test]
fn gc_drops_old_nights_curves_and_keeps_the_trend_whole() {
    let dir = drift_dir(3, 0.0);
    for date in ["2026-12-01", "2026-12-02", "2026-12-03"] {
        assert_eq!(night(&dir, date, &[]).status.code(), Some(0));
    }
    let trend = |dir: &Dir| -> Value {
        let (_, report) = {
            let server = Server::start(dir, &["--db", "n.sqlite"]);
            server.get("/api/v1/studies/drift@2026-12-03/report")
        };
        report["nights"].clone()
    };
    let before = trend(&dir);
    assert_eq!(before["nights"].as_array().unwrap().len(), 3);
    let old = dir.export("drift@2026-12-01", "n.sqlite");
    let n_old = trials(&old).len();
    assert_eq!(n_old, 3 + 2 * 3, "three trials and two confirmed with three seeds each");
    assert!(trials(&old).iter().all(|t| !t["intermediate_values"].as_object().unwrap().is_empty()));
    // Each command trial kept its output in a folder beside the database.
    let folder = |night: &str| dir.path().join("n-trials").join(night);
    assert!(folder("drift@2026-12-01").is_dir() && folder("drift@2026-12-03").is_dir());

    let out = dir.ok(&["gc", "--keep-nights", "1", "--db", "n.sqlite"]);
    assert!(
        out.contains("`drift`: 3 night(s), the newest 1 kept whole; 2 older night(s)"),
        "{out}"
    );
    let old = dir.export("drift@2026-12-01", "n.sqlite");
    assert_eq!(trials(&old).len(), n_old, "the trials and confirm runs stay");
    for trial in trials(&old) {
        assert!(trial["intermediate_values"].as_object().unwrap().is_empty(), "{trial}");
        assert!(trial["value"].is_number(), "{trial}");
    }
    assert!(!folder("drift@2026-12-01").exists(), "an old night's trial folders go");
    assert!(folder("drift@2026-12-03").is_dir(), "the newest night's stay");
    let newest = dir.export("drift@2026-12-03", "n.sqlite");
    assert!(
        trials(&newest).iter().all(|t| !t["intermediate_values"].as_object().unwrap().is_empty())
    );
    assert_eq!(trend(&dir), before, "the trend over every night is unchanged");
    // A second gc has nothing left to drop.
    let again = dir.ok(&["gc", "--keep-nights", "1", "--db", "n.sqlite"]);
    assert!(again.contains("lost 0 curve point(s) and 0 trial folder(s)"), "{again}");
}
