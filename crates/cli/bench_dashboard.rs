//! `hpo bench dashboard`: how fast the dashboard shows a large study, timed in a
//! real headless Chromium over a child `hpo serve`.
//!
//! Writes the report benchmark's synthetic study of N trials, and small studies
//! beside it (the studies page lists them all). Then it opens the study page R
//! times on a fresh server and a fresh browser profile (cold: the first view after
//! the study changed, nothing cached), R times again on the same ones (warm), and
//! the studies page R times. Each row: the page's own clock from navigation to its
//! first chart drawn and to every chart of the report (`window.hpoTimings`), the
//! bytes the page transferred (gzip) and decoded, and the server's peak memory; and
//! the time from a click on a point of the history to that trial's page drawn.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hpo_store::SqliteStorage;

use crate::bench_serve::{Served, percentile};
use crate::browser::Browser;

/// One page view's numbers.
struct View {
    first_chart_ms: f64,
    all_ms: f64,
    transferred: f64,
    decoded: f64,
}

/// What the page itself measured: `hpoTimings` and the sizes of every request.
const MEASURE: &str = r#"(() => {
  const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
  return {
    first: window.hpoTimings.firstChart || null,
    all: window.hpoTimings.report || window.hpoTimings.studies || null,
    transferred: entries.reduce((n, e) => n + (e.transferSize || 0), 0),
    decoded: entries.reduce((n, e) => n + (e.decodedBodySize || 0), 0),
  };
})()"#;

fn view(browser: &mut Browser, url: &str, ready: &str) -> Result<View> {
    browser.goto("about:blank")?;
    browser.goto(url)?;
    browser.wait_for(ready, Duration::from_secs(120))?;
    let m = browser.eval(MEASURE)?;
    let number = |key: &str| m[key].as_f64().unwrap_or(f64::NAN);
    Ok(View {
        first_chart_ms: number("first"),
        all_ms: number("all"),
        transferred: number("transferred"),
        decoded: number("decoded"),
    })
}

fn median(views: &[View], f: impl Fn(&View) -> f64) -> f64 {
    let mut values: Vec<f64> = views.iter().map(f).collect();
    percentile(&mut values, 0.5)
}

/// What `hpo bench dashboard` is asked to do.
pub struct DashboardBench<'a> {
    /// Trials of the large study.
    pub trials: usize,
    /// Studies in the database.
    pub studies: usize,
    /// Page views of each kind.
    pub runs: usize,
    /// Where screenshots of the large study's page and of a trial go, if anywhere.
    pub screenshots: Option<&'a Path>,
    /// The database to write and keep, instead of a temporary one.
    pub db: Option<&'a Path>,
}

/// `hpo bench dashboard`.
pub fn dashboard(bench: &DashboardBench<'_>) -> Result<String> {
    let DashboardBench { trials, studies, runs, screenshots, .. } = *bench;
    if trials < 10 || studies < 1 || runs < 1 {
        bail!("--trials must be at least 10, --studies and --runs at least 1");
    }
    let dir = tempfile::tempdir()?;
    let db = bench.db.map_or_else(|| dir.path().join("dashboard.sqlite"), Path::to_owned);
    if db.exists() {
        bail!("{} exists; name a new file for --db", db.display());
    }
    {
        let storage = SqliteStorage::open(&db)?;
        crate::bench::write_synthetic_study(&storage, "dashboard-bench", trials)?;
        for i in 1..studies {
            crate::bench::write_synthetic_study(&storage, &format!("small-{i:03}"), 20)?;
        }
    }
    let study_url = "/studies/dashboard-bench";
    let study_ready = "window.hpoTimings.firstChart && window.hpoTimings.report";
    let (mut cold, mut warm, mut list, mut clicks) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut peak: f64 = 0.0;
    for _ in 0..runs {
        let served = Served::start(&db)?;
        let mut browser = Browser::launch(1280, 900).context("the benchmark needs Chromium")?;
        cold.push(view(&mut browser, &format!("{}{study_url}", served.base), study_ready)?);
        warm.push(view(&mut browser, &format!("{}{study_url}", served.base), study_ready)?);
        if let Some(dir) = screenshots {
            browser.screenshot(&dir.join("dashboard-10k-study.png"))?;
        }
        let (x, y) = browser.centre_of("#history circle.sC")?;
        let clicked = Instant::now();
        browser.click_at(x, y)?;
        browser.wait_for(
            "document.querySelectorAll('#trial-curves svg path.line').length >= 2",
            Duration::from_secs(60),
        )?;
        clicks.push(clicked.elapsed().as_secs_f64() * 1e3);
        if let Some(dir) = screenshots {
            browser.screenshot(&dir.join("dashboard-10k-trial.png"))?;
        }
        list.push(view(
            &mut browser,
            &format!("{}/", served.base),
            &format!("document.querySelectorAll('#rows tr[data-study]').length === {studies}"),
        )?);
        if !browser.errors.is_empty() {
            bail!("the dashboard logged errors: {:?}", browser.errors);
        }
        peak = peak.max(served.peak_mb());
    }
    let mut out = String::new();
    writeln!(
        out,
        "dashboard of a synthetic study of {trials} trials x 10 epochs x 5 metrics, {studies} studies in the database; medians of {runs} run(s), headless Chromium at 1280x900"
    )?;
    let cell = |v: f64| if v.is_nan() { "–".to_owned() } else { format!("{v:.0}") };
    let row = |label: &str, views: &[View]| {
        vec![
            label.to_owned(),
            cell(median(views, |v| v.first_chart_ms)),
            cell(median(views, |v| v.all_ms)),
            cell(median(views, |v| v.transferred / 1024.0)),
            cell(median(views, |v| v.decoded / 1024.0)),
        ]
    };
    out.push_str(&crate::format::table(
        &["PAGE", "FIRST CHART MS", "ALL CHARTS MS", "TRANSFERRED KB", "DECODED KB"],
        &[
            row("study, cold server", &cold),
            row("study, warm server", &warm),
            row("studies list", &list),
        ],
    ));
    if !out.ends_with('\n') {
        out.push('\n');
    }
    writeln!(
        out,
        "a click on the history to the trial's page drawn: {:.0} ms (median); server peak memory: {peak:.0} MB",
        percentile(&mut clicks, 0.5)
    )?;
    Ok(out)
}
