//! `hpo bench serve`: `hpo serve` under load, as remote training scripts use it.
//!
//! For each sampler and study size N, a child `hpo serve` on a fresh database and C
//! client threads, each looping ask → 10 reported steps → tell over HTTP until the
//! study's budget of N trials is met. It prints whole trials per second and the
//! p50 / p99 latency of each verb, with the server's peak memory. Then the time of
//! a `/metrics` scrape over a database of many studies.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hpo_core::run::{History, ask, open_study};
use hpo_core::sampler;
use hpo_core::spec::StudySpec;
use hpo_core::storage::Storage;
use hpo_core::trial::TrialState;
use hpo_store::SqliteStorage;

/// The benchmark's external study; `{sampler}` and `{trials}` filled in.
const STUDY: &str = r#"
[study]
name = "serve-bench"
metric = "loss"
direction = "minimize"
seed = 1
trials = {trials}

[sampler]
kind = "{sampler}"

[objective]
kind = "external"

[space]
x = { float = [-3, 3] }
lr = { float = [1e-4, 1e-1], log = true }
layers = { int = [1, 4] }
"#;

/// Steps each trial reports.
const STEPS: u32 = 10;

/// A child `hpo serve` on `db`, stopped (SIGTERM) on drop.
pub(crate) struct Served {
    child: Child,
    pub(crate) base: String,
}

impl Served {
    pub(crate) fn start(db: &Path) -> Result<Served> {
        let exe = std::env::current_exe().context("cannot find the hpo binary")?;
        let mut child = Command::new(exe)
            .args(["serve", "--bind", "127.0.0.1:0", "--db"])
            .arg(db)
            .env("HPO_LOG", "hpo_server=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start `hpo serve`")?;
        let mut lines = BufReader::new(child.stderr.take().context("its stderr")?).lines();
        let line = lines.next().context("`hpo serve` said nothing")??;
        std::thread::spawn(move || for _ in lines {});
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .with_context(|| format!("no address in {line:?}"))?
            .trim_end_matches("/api/v1")
            .to_owned();
        Ok(Served { child, base })
    }

    /// The child's peak memory (VmHWM) so far, in MB.
    pub(crate) fn peak_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()));
        status
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// Latencies in seconds of each verb, from every client.
#[derive(Default)]
struct Latencies {
    ask: Vec<f64>,
    step: Vec<f64>,
    tell: Vec<f64>,
}

pub(crate) fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q).round() as usize]
}

/// POSTs `body`; returns the status and the answer's JSON.
fn post(agent: &ureq::Agent, url: &str, body: &str) -> Result<(u16, serde_json::Value)> {
    let mut response = agent.post(url).send(body).with_context(|| format!("POST {url}"))?;
    let status = response.status().as_u16();
    let value = response.body_mut().read_json().with_context(|| format!("POST {url}: JSON"))?;
    Ok((status, value))
}

/// One client's loop until the budget is met.
fn client(base: &str, study_file: &str, latencies: &Mutex<Latencies>) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let study = format!("{base}/api/v1/studies/serve-bench");
    let mut mine = Latencies::default();
    loop {
        let t0 = Instant::now();
        let (status, asked) = post(&agent, &format!("{study}/ask"), study_file)?;
        mine.ask.push(t0.elapsed().as_secs_f64());
        if status == 409 {
            break;
        }
        if status != 200 {
            bail!("ask: {status} {asked}");
        }
        let number = asked["trial"].as_u64().context("a trial number")?;
        for step in 1..=STEPS {
            let body = format!(r#"{{"step": {step}, "value": {}}}"#, 1.0 / f64::from(step));
            let t0 = Instant::now();
            let (status, answer) = post(&agent, &format!("{study}/trials/{number}/steps"), &body)?;
            mine.step.push(t0.elapsed().as_secs_f64());
            if status != 200 {
                bail!("report: {status} {answer}");
            }
        }
        let t0 = Instant::now();
        let (status, told) =
            post(&agent, &format!("{study}/trials/{number}/tell"), r#"{"value": 0.1}"#)?;
        mine.tell.push(t0.elapsed().as_secs_f64());
        if status != 200 {
            bail!("tell: {status} {told}");
        }
    }
    let mut all = latencies.lock().unwrap_or_else(|it| it.into_inner());
    all.ask.extend(mine.ask);
    all.step.extend(mine.step);
    all.tell.extend(mine.tell);
    Ok(())
}

/// `hpo bench serve`: one row per (sampler, N), then the scrape time.
pub fn serve(
    sizes: &[usize],
    clients: usize,
    samplers: &[String],
    scrape_studies: usize,
    scrape_trials: usize,
) -> Result<String> {
    if sizes.iter().any(|n| *n < 1) || clients < 1 {
        bail!("--trials: each size at least 1; --clients: at least 1");
    }
    let mut rows = Vec::new();
    for name in samplers {
        for &n in sizes {
            let dir = tempfile::tempdir()?;
            let study_file = STUDY.replace("{sampler}", name).replace("{trials}", &n.to_string());
            StudySpec::parse(&study_file, "<bench serve>")?;
            let served = Served::start(&dir.path().join("serve.sqlite"))?;
            let latencies = Mutex::new(Latencies::default());
            let started = Instant::now();
            std::thread::scope(|scope| -> Result<()> {
                let handles: Vec<_> = (0..clients)
                    .map(|_| scope.spawn(|| client(&served.base, &study_file, &latencies)))
                    .collect();
                for handle in handles {
                    handle.join().map_err(|_| anyhow::anyhow!("a client panicked"))??;
                }
                Ok(())
            })?;
            let seconds = started.elapsed().as_secs_f64();
            let peak = served.peak_mb();
            drop(served);
            let storage = SqliteStorage::open_read_only(&dir.path().join("serve.sqlite"))?;
            let study = storage.find_study("serve-bench")?.context("the study")?;
            let complete = storage.trials(study.id, Some(&[TrialState::Complete]))?;
            if complete.len() != n {
                bail!("{} trials complete, expected {n}", complete.len());
            }
            let mut l = latencies.into_inner().unwrap_or_else(|it| it.into_inner());
            let ms = |values: &mut Vec<f64>, q: f64| format!("{:.1}", percentile(values, q) * 1e3);
            rows.push(vec![
                name.clone(),
                n.to_string(),
                clients.to_string(),
                format!("{:.0}", n as f64 / seconds),
                ms(&mut l.ask, 0.5),
                ms(&mut l.ask, 0.99),
                ms(&mut l.step, 0.5),
                ms(&mut l.step, 0.99),
                ms(&mut l.tell, 0.5),
                ms(&mut l.tell, 0.99),
                format!("{peak:.0}"),
            ]);
        }
    }
    let scrape = scrape_time(scrape_studies, scrape_trials)?;
    Ok(format!(
        "C clients over HTTP, each looping ask -> {STEPS} steps -> tell until the budget (SQLite)\n{}\n\n\
         /metrics of {scrape_studies} studies x {scrape_trials} trials: median {:.1} ms, max {:.1} ms over 20 scrapes",
        crate::format::table(
            &[
                "SAMPLER", "TRIALS", "CLIENTS", "TRIALS/S", "ASK P50", "ASK P99", "STEP P50",
                "STEP P99", "TELL P50", "TELL P99", "PEAK MB"
            ],
            &rows
        ),
        scrape.0,
        scrape.1
    ))
}

/// A database of `studies` random-search studies of `trials` finished trials each
/// (written through the store), then 20 `/metrics` scrapes of `hpo serve` over it:
/// (median, max) in ms.
fn scrape_time(studies: usize, trials: usize) -> Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("scrape.sqlite");
    {
        let storage = SqliteStorage::open(&db)?;
        for k in 0..studies {
            let text = STUDY
                .replace("name = \"serve-bench\"", &format!("name = \"study-{k}\""))
                .replace("{sampler}", "random")
                .replace("{trials}", &trials.to_string());
            let spec = StudySpec::parse(&text, "<bench serve>")?;
            let study = open_study(&storage, &spec)?;
            let sampler = sampler::from_spec(spec.sampler, &spec.directions);
            let history = History::default();
            for _ in 0..trials {
                let Some(trial) =
                    ask(&storage, study.id, &spec, sampler.as_ref(), None, "bench", &history)?
                else {
                    bail!("ask returned no trial")
                };
                storage.finish_trial(trial.id, TrialState::Complete, &[0.5])?;
            }
        }
        storage.checkpoint();
    }
    let served = Served::start(&db)?;
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut times = Vec::new();
    for _ in 0..20 {
        let t0 = Instant::now();
        let mut response = agent.get(format!("{}/metrics", served.base)).call()?;
        let text = response.body_mut().read_to_string()?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        if !text.contains("hpo_trials") {
            bail!("the scrape has no hpo_trials");
        }
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], times[times.len() - 1]))
}
