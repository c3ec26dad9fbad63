//! `hpo bench overhead`: what hpo itself costs per trial, without any training.
//!
//! For each study size N, a fresh SQLite database gets a random-search study of
//! five parameters, and N trials go through the real ask (claim or create, sample,
//! store params) and tell (finish with a value) path. Printed: mean cost per trial
//! over all N, over the last 10% (the cost "at" N trials), the median, and the time
//! to load the whole study back. Then the same study runs through `hpo run` itself
//! (a child process, its whole loop: budget, progress, best so far, heartbeats),
//! timed from the trials' stored start and end times: the cost per trial over the
//! first and the last 1,000 trials, and the process's peak memory.
//!
//! `--objective command` times a command trial's own overhead, and `--workers P`
//! runs P `hpo run` processes sharing one study on SQLite or PostgreSQL.

use std::time::Instant;

use super::{hpo_run_child, vm_hwm_kb};
use anyhow::{Context, Result, bail};
use hpo_core::run::{History, ask, open_study};
use hpo_core::sampler;
use hpo_core::spec::StudySpec;
use hpo_core::storage::Storage;
use hpo_core::trial::TrialState;
use hpo_store::SqliteStorage;

const STUDY: &str = r#"
[study]
name = "overhead"
metric = "value"
direction = "minimize"
seed = 1
trials = 1

[sampler]
kind = "random"

[objective]
kind = "function"
function = "mixed"

[space]
x0 = { float = [-1, 1] }
x1 = { float = [1e-3, 1], log = true }
x2 = { float = [-1, 1], step = 0.1 }
c = { choice = ["a", "b", "c"] }
k = { int = [0, 10] }
"#;

pub fn overhead(sizes: &[usize]) -> Result<String> {
    if sizes.iter().any(|n| *n < 10) {
        bail!("--trials: each size must be at least 10");
    }
    let spec = StudySpec::parse(STUDY, "<bench overhead>")?;
    let hpo_core::spec::ObjectiveSpec::Function { function, .. } = spec.objective else {
        bail!("function objective")
    };
    let sampler = sampler::from_spec(spec.sampler, &spec.directions);
    let mut rows = Vec::new();
    for &n in sizes {
        let dir = tempfile::tempdir()?;
        let storage = SqliteStorage::open(&dir.path().join("bench.sqlite"))?;
        let study = open_study(&storage, &spec)?;
        let history = History::default();
        let mut per_trial = Vec::with_capacity(n);
        let started = Instant::now();
        for _ in 0..n {
            let t0 = Instant::now();
            let Some(trial) =
                ask(&storage, study.id, &spec, sampler.as_ref(), None, "bench", &history)?
            else {
                bail!("ask returned no trial")
            };
            let value = function.evaluate(&trial.params);
            storage.finish_trial(trial.id, TrialState::Complete, &[value])?;
            per_trial.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        let total = started.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let loaded = storage.trials(study.id, None)?;
        let load_seconds = t0.elapsed().as_secs_f64();
        if loaded.len() != n {
            bail!("loaded {} trials, expected {n}", loaded.len());
        }
        let tail = &per_trial[n - n / 10..];
        let tail_mean = tail.iter().sum::<f64>() / tail.len() as f64;
        let mut sorted = per_trial.clone();
        sorted.sort_by(f64::total_cmp);
        rows.push(vec![
            n.to_string(),
            format!("{:.3}", total * 1e3 / n as f64),
            format!("{tail_mean:.3}"),
            format!("{:.3}", sorted[n / 2]),
            format!("{:.3}", sorted[n * 99 / 100]),
            format!("{:.3}", load_seconds),
        ]);
    }
    let mut run_rows = Vec::new();
    for &n in sizes {
        run_rows.push(time_hpo_run(n)?);
    }
    Ok(format!(
        "ask + tell per trial, random sampler, SQLite (WAL, synchronous=NORMAL), 5 parameters\n{}\n\n`hpo run` of the same study (a child process; per-trial cost from the stored trial times)\n{}",
        crate::format::table(
            &[
                "TRIALS",
                "MEAN MS/TRIAL",
                "LAST 10% MS/TRIAL",
                "MEDIAN MS",
                "P99 MS",
                "LOAD ALL TRIALS S"
            ],
            &rows
        ),
        crate::format::table(
            &[
                "TRIALS",
                "MEAN MS/TRIAL",
                "WINDOW",
                "FIRST MS/TRIAL",
                "LAST MS/TRIAL",
                "LAST/FIRST",
                "WALL S",
                "PEAK RSS MB"
            ],
            &run_rows
        )
    ))
}

/// The study `hpo bench overhead --objective command` runs: `steps.sh` prints 10
/// steps and exits.
const COMMAND_STUDY: &str = r#"
[study]
name = "overhead-command"
metric = "loss"
direction = "minimize"
seed = 1
trials = 1

[sampler]
kind = "random"

[objective]
kind = "command"
command = ["sh", "steps.sh", "{x}"]

[space]
x = { float = [0, 1] }
"#;

/// The program of [`COMMAND_STUDY`]: 10 JSON lines, one per step.
const STEPS_PROGRAM: &str =
    "for s in 1 2 3 4 5 6 7 8 9 10; do echo \"{\\\"step\\\": $s, \\\"loss\\\": $1}\"; done\n";

/// `hpo bench overhead --objective command`: hpo's own cost per command trial
/// (the supervisor's start, reading and storing 10 steps, ending the trial) beyond
/// the program's own run time. For each size N, `hpo run` of a command study whose
/// program prints 10 steps, in a child process; the cost per trial is the mean time
/// between trial ends over the run, and the program's own time the median of 100
/// runs of it alone (started, its output read, waited for), as hpo starts it.
pub fn overhead_command(sizes: &[usize]) -> Result<String> {
    if sizes.iter().any(|n| *n < 10) {
        bail!("--trials: each size must be at least 10");
    }
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("steps.sh"), STEPS_PROGRAM)?;
    let mut alone = Vec::new();
    for _ in 0..100 {
        let t0 = Instant::now();
        let out = std::process::Command::new("sh")
            .args(["steps.sh", "0.5"])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!("the benchmark's program failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        alone.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let alone_ms = crate::bench_serve::percentile(&mut alone, 0.5);
    let mut rows = Vec::new();
    for &n in sizes {
        let study = dir.path().join(format!("command-{n}.toml"));
        std::fs::write(&study, COMMAND_STUDY.replace("trials = 1\n", &format!("trials = {n}\n")))?;
        let db = dir.path().join(format!("command-{n}.sqlite"));
        let (wall, peak_kb) = hpo_run_child(&study, &db, None, &dir.path().join("run.log"))?;
        let storage = SqliteStorage::open_read_only(&db)?;
        let found = storage.find_study("overhead-command")?.context("the benchmark's study")?;
        let trials = storage.trials(found.id, Some(&[TrialState::Complete]))?;
        if trials.len() != n || trials.iter().any(|t| t.intermediate_values.len() != 10) {
            bail!("`hpo run` finished {} trials of 10 steps, expected {n}", trials.len());
        }
        let end = |t: &hpo_core::trial::FrozenTrial| -> Result<f64> {
            t.datetime_complete.map(|it| it.0 as f64 / 1e3).context("a trial without its end")
        };
        let per_trial = (end(&trials[n - 1])? - end(&trials[0])?) / (n - 1) as f64;
        rows.push(vec![
            n.to_string(),
            format!("{alone_ms:.2}"),
            format!("{per_trial:.2}"),
            format!("{:.2}", per_trial - alone_ms),
            format!("{wall:.1}"),
            format!("{:.1}", peak_kb as f64 / 1024.0),
        ]);
    }
    Ok(format!(
        "`hpo run` of a command study (`sh steps.sh`, 10 JSON steps a trial, random sampler, SQLite), a child process\n{}",
        crate::format::table(
            &["TRIALS", "PROGRAM ALONE MS", "MS/TRIAL", "HPO'S OWN MS", "WALL S", "PEAK MB"],
            &rows
        )
    ))
}

/// Runs the overhead study through `hpo run --trials n` in a child process and
/// measures, from the stored trial times, the cost per trial over the whole run
/// (the first trial's start to the last one's end) and over the first and the
/// last `min(1000, n / 2)` trials; the peak memory is the child's high-water
/// mark (VmHWM), sampled until it exits.
fn time_hpo_run(n: usize) -> Result<Vec<String>> {
    let dir = tempfile::tempdir()?;
    let study = dir.path().join("overhead.toml");
    std::fs::write(&study, STUDY.replace("trials = 1\n", &format!("trials = {n}\n")))?;
    let db = dir.path().join("bench.sqlite");
    // The progress lines go to a file, as a run's log would: a pipe nobody read
    // would fill and stall the run.
    let (wall, peak_kb) = hpo_run_child(&study, &db, None, &dir.path().join("run.log"))?;
    let storage = SqliteStorage::open_read_only(&db)?;
    let found = storage.find_study("overhead")?.context("the overhead study")?;
    let trials = storage.trials(found.id, Some(&[TrialState::Complete]))?;
    if trials.len() != n {
        bail!("`hpo run` finished {} trials, expected {n}", trials.len());
    }
    let seconds = |t: &hpo_core::trial::FrozenTrial, end: bool| -> Result<f64> {
        let at = if end { t.datetime_complete } else { t.datetime_start };
        at.map(|it| it.0 as f64 / 1e6).context("a trial without its times")
    };
    let mean = (seconds(&trials[n - 1], true)? - seconds(&trials[0], false)?) / n as f64;
    let window = 1000.min(n / 2);
    let first =
        (seconds(&trials[window - 1], true)? - seconds(&trials[0], true)?) / (window - 1) as f64;
    let last = (seconds(&trials[n - 1], true)? - seconds(&trials[n - window], true)?)
        / (window - 1) as f64;
    Ok(vec![
        n.to_string(),
        format!("{:.3}", mean * 1e3),
        window.to_string(),
        format!("{:.3}", first * 1e3),
        format!("{:.3}", last * 1e3),
        format!("{:.2}", last / first),
        format!("{wall:.1}"),
        format!("{:.1}", peak_kb as f64 / 1024.0),
    ])
}

/// `hpo bench overhead --workers P,...`: for each study size N and process count P,
/// P `hpo run` processes share one fresh study whose trials report 10 steps each
/// (the function objective with `max_epochs = 10`), until N trials are complete.
/// Printed: wall time per trial (all processes together, from the first start to
/// the last end), the cost per trial over the last 1,000, and the check that
/// exactly N trials completed, each with its 10 steps.
pub fn overhead_processes(
    sizes: &[usize],
    workers: &[usize],
    db: Option<&std::path::Path>,
) -> Result<String> {
    if sizes.iter().any(|n| *n < 10) || workers.contains(&0) {
        bail!("--trials: each size must be at least 10; --workers: at least 1");
    }
    let exe = std::env::current_exe().context("cannot find the hpo binary to start workers")?;
    let mut rows = Vec::new();
    for &n in sizes {
        for &p in workers {
            let dir = tempfile::tempdir()?;
            let db = db.map_or_else(|| dir.path().join("bench.sqlite"), std::path::Path::to_owned);
            // A study of its own per run, so runs can share a server's database.
            let name = format!("overhead-{n}-{p}-{}", std::process::id());
            let text = STUDY
                .replace("name = \"overhead\"", &format!("name = \"{name}\""))
                .replace("trials = 1\n", &format!("trials = {n}\n"))
                .replace("function = \"mixed\"\n", "function = \"mixed\"\nmax_epochs = 10\n");
            let study_file = dir.path().join("overhead.toml");
            std::fs::write(&study_file, text)?;
            // The study exists before the processes start, as a team's would.
            let spec = StudySpec::parse(&std::fs::read_to_string(&study_file)?, "overhead.toml")?;
            open_study(&*crate::db::open_writable(&db, true, false)?, &spec)?;
            let started = Instant::now();
            let children: Vec<std::process::Child> = (0..p)
                .map(|i| {
                    std::process::Command::new(&exe)
                        .arg("run")
                        .arg(&study_file)
                        .arg("--db")
                        .arg(&db)
                        .stdout(std::process::Stdio::null())
                        .stderr(std::fs::File::create(dir.path().join(format!("run-{i}.log")))?)
                        .spawn()
                        .context("cannot start `hpo run`")
                })
                .collect::<Result<_>>()?;
            let peak_kb = peak_of_children(children)?;
            let seconds = started.elapsed().as_secs_f64();
            let storage = crate::db::open_writable(&db, false, false)?;
            let study = storage.find_study(&name)?.context("the study")?;
            let complete = storage.trials(study.id, Some(&[TrialState::Complete]))?;
            let whole = complete.iter().all(|t| t.intermediate_values.len() == 10);
            if complete.len() != n || !whole {
                bail!(
                    "{} trials complete (expected {n}); all curves whole: {whole}",
                    complete.len()
                );
            }
            let start = complete.iter().filter_map(|t| t.datetime_start).min();
            let mut ends: Vec<f64> = complete
                .iter()
                .filter_map(|t| t.datetime_complete.map(|it| it.0 as f64 / 1e3))
                .collect();
            ends.sort_by(f64::total_cmp);
            let first = start.context("trials without their start")?.0 as f64 / 1e3;
            let last = n.min(1000);
            let span = ends[n - 1] - ends[n - last];
            rows.push(vec![
                n.to_string(),
                p.to_string(),
                format!("{:.3}", (ends[n - 1] - first) / n as f64),
                format!("{:.3}", span / (last - 1).max(1) as f64),
                format!("{:.0}", n as f64 / seconds),
                format!("{seconds:.1}"),
                format!("{:.1}", peak_kb as f64 / 1024.0),
            ]);
        }
    }
    let store =
        db.map_or_else(|| "SQLite (WAL), a fresh file per run".to_owned(), crate::db::shown);
    Ok(format!(
        "`hpo run` in P processes sharing one study, each trial ask + 10 reported steps + tell, random sampler; {store}\n{}",
        crate::format::table(
            &[
                "TRIALS",
                "PROCESSES",
                "MS/TRIAL",
                "LAST 1000 MS/TRIAL",
                "TRIALS/S (WALL)",
                "WALL S",
                "PEAK MB/PROCESS"
            ],
            &rows
        )
    ))
}

/// Waits for `children`; the highest peak resident memory (VmHWM) any reached,
/// sampled every 50 ms, in KiB.
fn peak_of_children(mut children: Vec<std::process::Child>) -> Result<u64> {
    let mut peak = 0;
    while !children.is_empty() {
        for child in &children {
            peak = peak.max(vm_hwm_kb(child.id()).unwrap_or(0));
        }
        let mut running = Vec::new();
        for mut child in children {
            match child.try_wait()? {
                Some(status) if !status.success() => bail!("an `hpo run` process failed"),
                Some(_) => {}
                None => running.push(child),
            }
        }
        children = running;
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(peak)
}
