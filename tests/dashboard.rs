//! The dashboard in a real headless Chromium, over a real `hpo serve`: the studies
//! page, a study growing live while `hpo run` writes it, the pick, a click from the
//! history to a trial, brushing, the compare page, a night's chart of every night, a
//! phone-sized screen, and no console error anywhere. Each test saves screenshots
//! under target/dashboard/.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::browser::Browser;
use crate::serve::{Server, tokens_file};
use crate::util::{DIGITS_REGULARIZATION, Dir, branin_study, repo};

const WAIT: Duration = Duration::from_secs(60);

fn shot(browser: &mut Browser, name: &str) {
    let path = repo().join("target/dashboard").join(format!("{name}.png"));
    browser.screenshot(&path).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > 10_000, "{name}.png is nearly empty");
}

fn no_errors(browser: &Browser) {
    assert!(browser.errors.is_empty(), "the page logged errors: {:#?}", browser.errors);
}

fn text(browser: &mut Browser, expression: &str) -> String {
    browser.eval(expression).unwrap().as_str().unwrap_or_default().to_owned()
}

fn number(browser: &mut Browser, expression: &str) -> f64 {
    browser.eval(expression).unwrap().as_f64().unwrap_or(f64::NAN)
}

#[test]
fn studies_page_lists_filters_and_sorts_the_studies_of_a_database_and_compares_two() {
    let dir = Dir::new();
    dir.write("a.toml", &branin_study("branin-a", 12));
    dir.write("b.toml", &branin_study("branin-b", 5));
    dir.ok(&["run", "a.toml", "--db", "api.sqlite"]);
    dir.ok(&["run", "b.toml", "--db", "api.sqlite"]);
    let server = Server::start(&dir, &[]);
    let mut browser = Browser::launch(1280, 800).unwrap();
    browser.goto(&format!("{}/", server.base)).unwrap();
    browser
        .wait_for("document.querySelectorAll('#rows tr[data-study]').length === 2", WAIT)
        .unwrap();
    let row = |b: &mut Browser, name: &str| {
        text(b, &format!("document.querySelector('tr[data-study=\"{name}\"]').innerText"))
    };
    let a = row(&mut browser, "branin-a");
    assert!(a.contains("12 / 12") && a.contains("12 complete"), "{a}");
    assert!(row(&mut browser, "branin-b").contains("5 / 5"));
    assert_eq!(
        number(
            &mut browser,
            "document.querySelectorAll('tr[data-study=\"branin-a\"] svg.spark path').length"
        ),
        1.0,
        "a best-so-far sparkline"
    );
    shot(&mut browser, "studies");

    // Sorting by trials, then the other way; the order is in the URL.
    let order = |b: &mut Browser| {
        text(
            b,
            "[...document.querySelectorAll('#rows tr[data-study]')].map(r => r.dataset.study).join(',')",
        )
    };
    let (x, y) = browser.centre_of("th button[data-sort='trials']").unwrap();
    browser.click_at(x, y).unwrap();
    assert_eq!(order(&mut browser), "branin-b,branin-a");
    browser.click_at(x, y).unwrap();
    assert_eq!(order(&mut browser), "branin-a,branin-b");
    assert!(text(&mut browser, "location.search").contains("sort=trials"));

    // Filtering, kept in the URL: a reload shows the same view.
    browser
        .eval("const f = document.getElementById('filter'); f.value = 'in-b'; f.dispatchEvent(new Event('input')); 1")
        .unwrap();
    assert_eq!(order(&mut browser), "branin-b");
    let url = text(&mut browser, "location.href");
    assert!(url.contains("q=in-b"), "{url}");
    browser.goto(&url).unwrap();
    browser
        .wait_for("document.querySelectorAll('#rows tr[data-study]').length === 1", WAIT)
        .unwrap();
    assert_eq!(text(&mut browser, "document.getElementById('filter').value"), "in-b");

    // A study as it was at a date: none of its trials had finished in 2000.
    assert_eq!(
        server.get("/api/v1/studies/branin-a/history").1["points"].as_array().unwrap().len(),
        12
    );
    assert_eq!(
        server.get("/api/v1/studies/branin-a@2000-01-01/history").1["points"],
        serde_json::json!([])
    );
    let (status, body) = server.get("/api/v1/studies/branin-b/report?compare=branin-a@yesterday");
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("YYYY-MM-DD"), "{body}");

    // Compare: B against A, the verdict and both histories.
    browser.goto(&format!("{}/compare?a=branin-a&b=branin-b", server.base)).unwrap();
    browser
        .wait_for("document.querySelectorAll('#hist-b circle.mark').length === 5", WAIT)
        .unwrap();
    let verdict = text(&mut browser, "document.querySelector('#comparison h2').innerText");
    assert!(verdict.contains('B'), "{verdict}");
    assert!(
        text(&mut browser, "document.querySelector('table.compare').innerText")
            .contains("branin-a")
    );
    shot(&mut browser, "compare");
    no_errors(&browser);

    // On a phone: nothing wider than the screen.
    let mut phone = Browser::launch(390, 844).unwrap();
    phone.goto(&format!("{}/", server.base)).unwrap();
    phone.wait_for("document.querySelectorAll('#rows tr[data-study]').length === 2", WAIT).unwrap();
    let overflow = number(&mut phone, "document.documentElement.scrollWidth - window.innerWidth");
    assert!(overflow <= 1.0, "the page is {overflow} px wider than a phone");
    shot(&mut phone, "studies-phone");
    no_errors(&phone);
}

#[test]
fn behind_tokens_the_pages_ask_for_a_read_token_once() {
    let dir = Dir::new();
    dir.write("a.toml", &branin_study("branin-a", 3));
    dir.ok(&["run", "a.toml", "--db", "api.sqlite"]);
    tokens_file(&dir);
    let server = Server::start(&dir, &["--tokens", "tokens"]);
    let mut browser = Browser::launch(1280, 800).unwrap();
    browser.goto(&format!("{}/", server.base)).unwrap();
    browser.wait_for("document.getElementById('token')", WAIT).unwrap();
    browser
        .eval("document.getElementById('token').value = 'reader-token'; document.querySelector('#token-form button').click(); 1")
        .unwrap();
    browser
        .wait_for("document.querySelectorAll('#rows tr[data-study]').length === 1", WAIT)
        .unwrap();
    // The token is kept for the tab: another page reads without asking again.
    browser.goto(&format!("{}/studies/branin-a", server.base)).unwrap();
    browser.wait_for("window.hpoTimings.report", WAIT).unwrap();
    assert!(browser.eval("document.getElementById('token')").unwrap().is_null());
    // The browser's 401s before the token are the only errors.
    assert!(
        browser.errors.iter().all(|e| e.contains("401")),
        "the page logged errors: {:#?}",
        browser.errors
    );
}

/// A study whose trials each run for some seconds, a step every quarter second, so a
/// page sees them run however fast the machine is.
const SLOW: &str = r#"
[study]
name = "live"
metric = "val_accuracy"
direction = "maximize"
seed = 1
trials = 6

[sampler]
kind = "random"

[objective]
kind = "command"
command = ["sh", "slow.sh", "{lr}"]
metrics = "key=value"

[space]
lr = { float = [1e-3, 1e-2], log = true }
"#;

/// The program behind `SLOW`: 40 steps, each a quarter second apart.
const SLOW_PROGRAM: &str = r#"i=1
while [ $i -le 40 ]; do
  echo "step=$i val_accuracy=0.$((50 + i)) train_accuracy=0.$((55 + i))"
  sleep 0.25
  i=$((i + 1))
done
"#;

/// The number of points of trial `trial`'s running curves on the page.
fn running_points(browser: &mut Browser, trial: u64) -> f64 {
    number(
        browser,
        &format!(
            "[...document.querySelectorAll('#running path.running-line[data-trial=\"{trial}\"]')].reduce((n, p) => n + p.getAttribute('d').split(/[ML]/).length - 1, 0)"
        ),
    )
}

#[test]
fn a_study_being_run_grows_on_its_page_without_a_reload() {
    let dir = Dir::new();
    dir.write("live.toml", SLOW);
    dir.write("slow.sh", SLOW_PROGRAM);
    let mut run = dir
        .hpo(&["run", "live.toml", "--db", "api.sqlite"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server::start(&dir, &[]);
    let started = Instant::now();
    while server.get("/api/v1/studies/live").1["trials"]["running"] != 1 {
        assert!(started.elapsed() < WAIT, "no trial of `live` started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut browser = Browser::launch(1280, 900).unwrap();
    browser.goto(&format!("{}/studies/live", server.base)).unwrap();
    browser.eval("window.notReloaded = true").unwrap();
    browser.wait_for("document.querySelector('#running path.running-line')", WAIT).unwrap();
    let count0 = number(&mut browser, "Number(document.getElementById('count').textContent)");

    // A running trial's curve grows: the same trial, more points, no reload.
    let mut grew = false;
    while !grew {
        assert!(started.elapsed() < Duration::from_secs(120), "no running curve grew");
        let trial = browser
            .eval("document.querySelector('#running path.running-line')?.dataset.trial")
            .unwrap();
        let Some(trial) = trial.as_str().and_then(|t| t.parse::<u64>().ok()) else { continue };
        let before = running_points(&mut browser, trial);
        let deadline = Instant::now() + Duration::from_secs(6);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            let now = running_points(&mut browser, trial);
            if now > before {
                grew = true;
                break;
            }
        }
    }
    shot(&mut browser, "study-live");

    // New trials appear: the count and the history grow.
    browser
        .wait_for(
            &format!("Number(document.getElementById('count').textContent) > {count0}"),
            WAIT * 2,
        )
        .unwrap();
    browser.wait_for("document.querySelectorAll('#history circle.sC').length >= 1", WAIT).unwrap();
    assert_eq!(browser.eval("window.notReloaded").unwrap(), Value::Bool(true), "the page reloaded");
    no_errors(&browser);
    let _ = run.kill();
    let _ = run.wait();
}

#[test]
fn the_study_page_shows_the_report_highlights_the_pick_and_opens_a_clicked_trial() {
    let dir = Dir::new();
    dir.write("reg.toml", DIGITS_REGULARIZATION);
    dir.ok(&["run", "reg.toml", "--db", "api.sqlite"]);
    let server = Server::start(&dir, &[]);
    let pick =
        server.get("/api/v1/studies/reg/report").1["recommendation"]["trial"].as_u64().unwrap();
    let mut browser = Browser::launch(1280, 900).unwrap();
    browser.goto(&format!("{}/studies/reg", server.base)).unwrap();
    browser.wait_for("window.hpoTimings.report", WAIT).unwrap();

    // The pick: ringed in the history, marked in the leaderboard, named on top.
    assert_eq!(
        text(&mut browser, "document.querySelector('#history circle.pick').dataset.trial"),
        pick.to_string()
    );
    assert!(
        text(&mut browser, "document.querySelector('#leaderboard tr.pick').innerText")
            .contains("pick")
    );
    assert!(
        text(&mut browser, "document.getElementById('rec').innerText")
            .contains(&format!("trial {pick}"))
    );
    // Learning curves, training dashed and validation solid; a panel per regularizer.
    assert!(
        number(
            &mut browser,
            "document.querySelectorAll('#curves path.line[stroke-dasharray]').length"
        ) >= 1.0
    );
    assert!(
        number(
            &mut browser,
            "document.querySelectorAll('#curves path.line:not([stroke-dasharray])').length"
        ) >= 1.0
    );
    assert!(number(&mut browser, "document.querySelectorAll('#reg figure svg').length") >= 2.0);
    assert!(
        text(&mut browser, "document.querySelector('#history svg').textContent")
            .contains("val_loss")
    );
    shot(&mut browser, "study");

    // Hovering a point tells its trial and parameters.
    let other = text(
        &mut browser,
        &format!(
            "[...document.querySelectorAll('#history circle.sC')].find(c => c.dataset.trial !== '{pick}').dataset.trial"
        ),
    );
    let (x, y) = browser.centre_of(&format!("#history circle.sC[data-trial='{other}']")).unwrap();
    browser.mouse("mouseMoved", x, y).unwrap();
    let tip = text(&mut browser, "document.getElementById('tip').innerText");
    assert!(tip.contains(&format!("trial {other}")) && tip.contains("dropout"), "{tip}");

    // The log scale is a toggle kept in the URL.
    let (lx, ly) = browser.centre_of("#log").unwrap();
    browser.click_at(lx, ly).unwrap();
    assert!(text(&mut browser, "location.search").contains("log=1"));
    assert!(
        text(&mut browser, "document.querySelector('#history svg').textContent")
            .contains("log scale")
    );

    // Brushing the first parallel axis filters the other charts, and the URL says so.
    let (bx, _) = browser.centre_of("#parallel .brush-target[data-axis='0']").unwrap();
    let top = number(
        &mut browser,
        "document.querySelector(\"#parallel .brush-target[data-axis='0']\").getBoundingClientRect().top",
    );
    let height = number(
        &mut browser,
        "document.querySelector(\"#parallel .brush-target[data-axis='0']\").getBoundingClientRect().height",
    );
    browser.mouse("mouseMoved", bx, top + 2.0).unwrap();
    browser.mouse("mousePressed", bx, top + 2.0).unwrap();
    browser.mouse("mouseMoved", bx, top + height * 0.5).unwrap();
    browser.mouse("mouseReleased", bx, top + height * 0.5).unwrap();
    assert!(text(&mut browser, "location.search").contains("brush=0"), "no brush in the URL");
    let kept = number(
        &mut browser,
        "document.querySelectorAll('#parallel path.pline:not(.faint)').length",
    );
    let all = number(&mut browser, "document.querySelectorAll('#parallel path.pline').length");
    assert!(kept < all, "the brush kept {kept} of {all} lines");
    shot(&mut browser, "study-brushed");
    let (cx, cy) = browser.centre_of("#clear-brush").unwrap();
    browser.click_at(cx, cy).unwrap();
    assert!(!text(&mut browser, "location.search").contains("brush"));

    // A click on a point of the history opens that trial, which draws its curves.
    let (x, y) = browser.centre_of(&format!("#history circle.sC[data-trial='{other}']")).unwrap();
    browser.click_at(x, y).unwrap();
    browser
        .wait_for(&format!("location.pathname === '/studies/reg/trials/{other}'"), WAIT)
        .unwrap();
    browser
        .wait_for("document.querySelectorAll('#trial-curves svg path.line').length >= 2", WAIT)
        .unwrap();
    assert!(
        text(&mut browser, "document.querySelector('h1').innerText")
            .contains(&format!("Trial {other}"))
    );
    assert!(text(&mut browser, "document.body.innerText").contains("dropout"));
    shot(&mut browser, "trial");
    no_errors(&browser);
}

#[test]
fn the_dashboard_script_passes_its_unit_tests_in_node() {
    let out = std::process::Command::new("node")
        .args(["--test", "crates/server/assets/"])
        .current_dir(repo())
        .output()
        .expect("node (Debian's nodejs; scripts/test.sh installs it)");
    let report =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{report}");
    assert!(report.contains("# fail 0") && !report.contains("# pass 0"), "{report}");
}

#[test]
fn a_night_of_a_nightly_study_shows_every_night_on_its_page() {
    use crate::nightly::{drift_dir, night};
    let dir = drift_dir(4, 0.0);
    assert_eq!(night(&dir, "2026-12-01", &[]).status.code(), Some(0));
    assert_eq!(night(&dir, "2026-12-02", &[]).status.code(), Some(0));
    dir.write("shift.txt", "5\n");
    assert_eq!(night(&dir, "2026-12-03", &[]).status.code(), Some(1));
    let server = Server::start(&dir, &["--db", "n.sqlite"]);
    let mut browser = Browser::launch(1280, 900).unwrap();
    browser.goto(&format!("{}/studies/drift@2026-12-03", server.base)).unwrap();
    if let Err(err) = browser.wait_for("window.hpoTimings.report", WAIT) {
        panic!("{err}; the page logged: {:#?}", browser.errors);
    }
    assert!(
        !browser
            .eval("document.getElementById('nights-section').hidden")
            .unwrap()
            .as_bool()
            .unwrap()
    );
    let chart = text(&mut browser, "document.querySelector('#nights svg').textContent");
    for date in ["2026-12-01", "2026-12-02", "2026-12-03"] {
        assert!(chart.contains(date), "{date} on the nights chart: {chart}");
    }
    let note = text(&mut browser, "document.getElementById('nights-note').textContent");
    assert!(note.contains("2026-12-03: 4 trials, 0 failed, worse beyond noise"), "{note}");
    assert!(note.contains("2026-12-01: 4 trials, 0 failed, first night"), "{note}");
    no_errors(&browser);
    shot(&mut browser, "nights");
}

/// Digits MLPs for accuracy and size with int8 variants (8 trials of 3 epochs).
const DIGITS_TWO_OBJECTIVES: &str = r#"
[study]
name = "two"
metrics = ["val_accuracy", "int8_weight_bytes"]
directions = ["maximize", "minimize"]
seed = 6
trials = 8

[sampler]
kind = "nsga2"
population = 4

[compress]
variants = ["int8"]

[objective]
kind = "candle"
model = "mlp"
dataset = "digits"
max_epochs = 3
device = "cpu"
fixed = { batch_size = 32, lr = 0.01 }

[space]
hidden = { int = [4, 96], log = true }
"#;

#[test]
fn a_study_of_two_objectives_shows_its_front_and_a_click_opens_a_point() {
    let dir = Dir::new();
    dir.write("two.toml", DIGITS_TWO_OBJECTIVES);
    dir.ok(&["run", "two.toml", "--db", "api.sqlite"]);
    let export: Value =
        serde_json::from_str(&dir.ok(&["export", "two", "--format", "json", "--db", "api.sqlite"]))
            .unwrap();
    let server = Server::start(&dir, &[]);
    let report = server.get("/api/v1/studies/two/report").1;
    // The API's front is the export's (and so Optuna's best_trials), with no pick.
    let mut front: Vec<u64> = report["pareto"]["front"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["trial"].as_u64().unwrap())
        .collect();
    let shown_order = front.clone();
    front.sort_unstable();
    let mut expected: Vec<u64> =
        export["pareto_front"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect();
    expected.sort_unstable();
    assert_eq!(front, expected);
    assert!(report["recommendation"].is_null());
    assert_eq!(
        report["compression"]["rows"].as_array().unwrap().len(),
        2,
        "{}",
        report["compression"]
    );
    let mut browser = Browser::launch(1280, 900).unwrap();
    browser.goto(&format!("{}/studies/two", server.base)).unwrap();
    browser.wait_for("window.hpoTimings.report", WAIT).unwrap();
    assert!(
        text(&mut browser, "document.getElementById('rec').innerText").contains("Pareto front")
    );
    let rows = number(&mut browser, "document.querySelectorAll('#pareto tbody tr').length");
    assert_eq!(rows as usize, front.len());
    let methods = text(&mut browser, "document.getElementById('compression').innerText");
    assert!(methods.contains("f32") && methods.contains("int8"), "{methods}");
    shot(&mut browser, "pareto");
    // A click on a point of the front opens that trial.
    let first = shown_order[0];
    let (x, y) = browser.centre_of("#pareto tbody tr a").unwrap();
    browser.click_at(x, y).unwrap();
    browser
        .wait_for(&format!("location.pathname === '/studies/two/trials/{first}'"), WAIT)
        .unwrap();
    no_errors(&browser);
}
