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

use std::time::Instant;

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
    let sampler = sampler::from_spec(spec.sampler, spec.direction);
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
            storage.finish_trial(trial.id, TrialState::Complete, Some(value))?;
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
/// measures, from the stored trial times, the cost per trial over the first and
/// the last `min(1000, n / 2)` trials; the peak memory is the child's high-water
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
    let window = 1000.min(n / 2);
    let first =
        (seconds(&trials[window - 1], true)? - seconds(&trials[0], true)?) / (window - 1) as f64;
    let last = (seconds(&trials[n - 1], true)? - seconds(&trials[n - window], true)?)
        / (window - 1) as f64;
    Ok(vec![
        n.to_string(),
        window.to_string(),
        format!("{:.3}", first * 1e3),
        format!("{:.3}", last * 1e3),
        format!("{:.2}", last / first),
        format!("{wall:.1}"),
        format!("{:.1}", peak_kb as f64 / 1024.0),
    ])
}

/// The peak resident memory (VmHWM) of process `pid` so far, in KiB.
fn vm_hwm_kb(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
}

/// Runs `hpo run STUDY --db DB [--trials N]` as a child process, its progress lines
/// into `log` (as a run's log would: a pipe nobody read would fill and stall it).
/// Returns its wall time in seconds and its peak memory (VmHWM) in kB, sampled
/// until it exits; an error with the end of its log when it fails.
fn hpo_run_child(
    study: &std::path::Path,
    db: &std::path::Path,
    trials: Option<usize>,
    log: &std::path::Path,
) -> Result<(f64, u64)> {
    let exe = std::env::current_exe().context("cannot find the hpo binary to run")?;
    let started = Instant::now();
    let mut command = std::process::Command::new(&exe);
    command.arg("run").arg(study).arg("--db").arg(db);
    if let Some(n) = trials {
        command.args(["--trials", &n.to_string()]);
    }
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .context("cannot start `hpo run`")?;
    let mut peak_kb = 0u64;
    let status = loop {
        peak_kb = peak_kb.max(vm_hwm_kb(child.id()).unwrap_or(0));
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    if !status.success() {
        let err = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        bail!("`hpo run {}` failed: {}", study.display(), tail.join("\n"));
    }
    Ok((started.elapsed().as_secs_f64(), peak_kb))
}

/// The study `hpo bench pruner-steps` runs: branin with a synthetic curve of
/// `{steps}` steps, and `{pruner}` as its `[pruner]` table.
const PRUNER_STEPS_STUDY: &str = r#"
[study]
name = "pruner-steps"
metric = "value"
direction = "minimize"
seed = 1
trials = 1

[sampler]
kind = "random"

{pruner}

[objective]
kind = "function"
function = "branin"
max_epochs = {steps}

[space]
x0 = { float = [-5, 10] }
x1 = { float = [0, 15] }
"#;

/// The pruners `hpo bench pruner-steps` times, with their `[pruner]` tables: each
/// kind at its defaults, the percentile rule judging every step.
const PRUNER_STEPS_PRUNERS: [(&str, &str); 6] = [
    ("none", "[pruner]\nkind = \"none\""),
    ("median", "[pruner]\nkind = \"median\""),
    ("percentile", "[pruner]\nkind = \"percentile\"\npercentile = 25.0\ninterval = 1"),
    ("asha", "[pruner]\nkind = \"asha\""),
    ("hyperband", "[pruner]\nkind = \"hyperband\"\nmax_resource = {steps}"),
    ("threshold", "[pruner]\nkind = \"threshold\"\nupper = 1e6"),
];

/// `hpo bench pruner-steps`: for each study size N, a study of N finished trials
/// (made by `hpo run` without a pruner), then for each pruner `hpo run` of
/// `measured` more trials on a copy of it: the time of the run's first trial
/// (which reads what the pruner keeps of the N), the cost per reported step of the
/// others (their stored start and end times over their steps), and the run's peak
/// memory.
pub fn pruner_steps(sizes: &[usize], steps: u64, measured: usize) -> Result<String> {
    if sizes.iter().any(|n| *n < 1) || steps < 2 || measured < 1 {
        bail!("--trials: each size at least 1; --steps: at least 2; --measured: at least 1");
    }
    let text = |pruner: &str| {
        PRUNER_STEPS_STUDY.replace("{pruner}", pruner).replace("{steps}", &steps.to_string())
    };
    let mut rows = Vec::new();
    for &n in sizes {
        let dir = tempfile::tempdir()?;
        let history = dir.path().join("history.sqlite");
        let study = dir.path().join("none.toml");
        std::fs::write(&study, text(PRUNER_STEPS_PRUNERS[0].1))?;
        let log = dir.path().join("run.log");
        hpo_run_child(&study, &history, Some(n), &log)?;
        for (name, pruner) in PRUNER_STEPS_PRUNERS {
            let study = dir.path().join(format!("{name}.toml"));
            std::fs::write(&study, text(pruner))?;
            let db = dir.path().join(format!("{name}.sqlite"));
            std::fs::copy(&history, &db)?;
            let (_, peak_kb) = hpo_run_child(&study, &db, Some(n + measured), &log)?;
            let storage = SqliteStorage::open_read_only(&db)?;
            let found = storage.find_study("pruner-steps")?.context("the study")?;
            let trials = storage.trials(found.id, None)?;
            let new: Vec<&hpo_core::trial::FrozenTrial> =
                trials.iter().filter(|t| t.number >= n as u64).collect();
            let took = |trial: &hpo_core::trial::FrozenTrial| -> Result<f64> {
                match (trial.datetime_start, trial.datetime_complete) {
                    (Some(start), Some(end)) => Ok(end.seconds_since(start)),
                    _ => bail!("trial {} has no start or end time", trial.number),
                }
            };
            let Some((first, rest)) = new.split_first() else { bail!("no trial was run") };
            let mut seconds = 0.0;
            let mut n_steps = 0;
            for trial in rest {
                seconds += took(trial)?;
                n_steps += trial.intermediate_values.len();
            }
            let pruned = new.iter().filter(|t| t.state == TrialState::Pruned).count();
            rows.push(vec![
                name.to_owned(),
                n.to_string(),
                format!("{:.1}", took(first)? * 1e3),
                rest.len().to_string(),
                pruned.to_string(),
                n_steps.to_string(),
                format!("{:.1}", seconds * 1e6 / n_steps.max(1) as f64),
                format!("{:.1}", peak_kb as f64 / 1024.0),
            ]);
        }
    }
    Ok(format!(
        "`hpo run` of {measured} trials after N finished ones, branin with {steps}-step curves, SQLite\n\
         (FIRST MS: the run's first trial, which also reads what the pruner keeps of the N; \
         US/STEP: the other trials' time per reported step)\n{}",
        crate::format::table(
            &["PRUNER", "N", "FIRST MS", "TRIALS", "PRUNED", "STEPS", "US/STEP", "PEAK RSS MB"],
            &rows
        )
    ))
}

/// `hpo bench train`: one row (or JSON line) per workload.
pub fn train(
    device: &str,
    workloads: &[String],
    batch: Option<usize>,
    steps: usize,
    precision: &str,
    json: bool,
) -> Result<String> {
    use hpo_train::bench::{Workload, train_throughput};
    let precision = hpo_train::model::fused::Precision::from_name(precision)
        .map_err(|err| anyhow::anyhow!("--precision: {err}"))?;
    let selected: Vec<Workload> = if workloads.is_empty() {
        Workload::ALL.to_vec()
    } else {
        workloads
            .iter()
            .map(|name| {
                Workload::ALL.into_iter().find(|w| w.name() == name).ok_or_else(|| {
                    let names: Vec<&str> = Workload::ALL.iter().map(|w| w.name()).collect();
                    anyhow::anyhow!("unknown workload `{name}`; choose from {}", names.join(", "))
                })
            })
            .collect::<Result<_>>()?
    };
    let device_handle = hpo_train::trainer::select_device(device)?;
    let mut rows = Vec::new();
    let mut lines = Vec::new();
    for workload in selected {
        let it = train_throughput(
            workload,
            &device_handle,
            batch.unwrap_or(workload.default_batch()),
            steps,
            precision,
        )?;
        lines.push(
            serde_json::json!({
                "impl": "hpo-candle",
                "workload": workload.name(),
                "device": device,
                "batch": it.batch,
                "steps": it.steps,
                "seconds": it.seconds,
                "throughput": it.items_per_second,
                "unit": it.unit,
                "precision": if precision == hpo_train::model::fused::Precision::Bf16 { "bf16" } else { "f32" },
            })
            .to_string(),
        );
        rows.push(vec![
            workload.name().to_owned(),
            device.to_owned(),
            it.batch.to_string(),
            it.steps.to_string(),
            format!("{:.3}", it.seconds),
            format!("{:.0} {}", it.items_per_second, it.unit),
        ]);
    }
    if json {
        return Ok(lines.join("\n"));
    }
    Ok(crate::format::table(
        &["WORKLOAD", "DEVICE", "BATCH", "STEPS", "SECONDS", "THROUGHPUT"],
        &rows,
    ))
}

/// The samplers `--samplers` names.
fn sampler_specs(names: &[String]) -> Result<Vec<(String, hpo_core::spec::SamplerSpec)>> {
    use hpo_core::spec::SamplerSpec;
    let mut specs = Vec::new();
    for name in names {
        let spec = match name.as_str() {
            "random" => SamplerSpec::Random,
            "tpe" => SamplerSpec::Tpe(sampler::TpeConfig::default()),
            "tpe-optuna" => SamplerSpec::Tpe(sampler::TpeConfig::optuna()),
            "tpe-univariate" => SamplerSpec::Tpe(sampler::TpeConfig {
                multivariate: false,
                ..sampler::TpeConfig::default()
            }),
            "gp" => SamplerSpec::Gp(sampler::GpConfig::default()),
            other => {
                bail!(
                    "--samplers: unknown sampler `{other}`; valid: random, tpe, tpe-optuna, tpe-univariate, gp"
                )
            }
        };
        specs.push((name.clone(), spec));
    }
    Ok(specs)
}

/// `hpo bench samplers --cost 1000x10,...`: one proposal's cost per sampler and size.
pub fn sampler_cost(names: &[String], sizes: &[String]) -> Result<String> {
    let mut parsed = Vec::new();
    for size in sizes {
        let parts: Option<(usize, usize)> = size
            .split_once('x')
            .and_then(|(t, p)| Some((t.trim().parse().ok()?, p.trim().parse().ok()?)));
        match parts {
            Some((t, p)) if t >= 1 && p >= 1 => parsed.push((t, p)),
            _ => bail!("--cost: `{size}` is not TRIALSxPARAMS, e.g. 1000x10"),
        }
    }
    let mut rows = Vec::new();
    for (name, spec) in sampler_specs(names)? {
        let sampler = sampler::from_spec(spec, hpo_core::study::Direction::Minimize);
        for (trials, params) in &parsed {
            let ms = hpo_core::sampler::benchmark::proposal_cost(
                sampler.as_ref(),
                *trials,
                *params,
                &stopwatch(),
            );
            rows.push(vec![
                name.clone(),
                trials.to_string(),
                params.to_string(),
                format!("{ms:.3}"),
            ]);
        }
    }
    let mut out =
        "one proposal after TRIALS finished trials of PARAMS floats, median of 21\n".to_string();
    out.push_str(&crate::format::table(&["SAMPLER", "TRIALS", "PARAMS", "MS/PROPOSAL"], &rows));
    Ok(out)
}

/// `hpo bench samplers`: regret tables (see `hpo_core::sampler::benchmark`).
pub fn samplers(
    names: &[String],
    functions: &[String],
    seeds: u64,
    first_seed: u64,
    trials: usize,
    jobs: Option<usize>,
    json: bool,
) -> Result<String> {
    use hpo_core::sampler::benchmark::{self, CHECKPOINTS};
    if seeds == 0 || trials < CHECKPOINTS[0] {
        bail!("--seeds must be at least 1 and --trials at least {}", CHECKPOINTS[0]);
    }
    let specs = sampler_specs(names)?;
    let all = benchmark::problems();
    let problems: Vec<_> = if functions.is_empty() {
        all
    } else {
        let mut chosen = Vec::new();
        for name in functions {
            let Some(problem) = all.iter().find(|p| p.name == name) else {
                let valid: Vec<&str> = all.iter().map(|p| p.name).collect();
                bail!("--functions: unknown function `{name}`; valid: {}", valid.join(", "));
            };
            chosen.push(problem.clone());
        }
        chosen
    };
    let threads =
        jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let range = first_seed..first_seed + seeds;
    let cells = benchmark::run_all(&problems, &specs, range, trials, threads, &stopwatch());
    let checkpoints: Vec<usize> = CHECKPOINTS.iter().copied().filter(|c| *c <= trials).collect();
    let mut lines = Vec::new();
    let mut rows = Vec::new();
    for cell in &cells {
        let ms = cell.runs.iter().map(|r| r.sampler_seconds).sum::<f64>() * 1e3
            / (cell.runs.len() * trials) as f64;
        let stats: Vec<(f64, f64, f64)> = (0..checkpoints.len())
            .map(|i| {
                let values: Vec<f64> = cell.runs.iter().map(|r| r.regret[i]).collect();
                benchmark::quartiles(&values)
            })
            .collect();
        if json {
            let regret: serde_json::Map<String, serde_json::Value> = checkpoints
                .iter()
                .zip(&stats)
                .map(|(c, (m, q1, q3))| {
                    (c.to_string(), serde_json::json!({"median": m, "q1": q1, "q3": q3}))
                })
                .collect();
            lines.push(
                serde_json::json!({
                    "function": cell.problem, "sampler": cell.sampler, "seeds": seeds, "first_seed": first_seed,
                    "trials": trials, "regret": regret, "sampler_ms_per_trial": ms,
                })
                .to_string(),
            );
        } else {
            let mut row = vec![cell.problem.to_string(), cell.sampler.clone()];
            for (i, (m, q1, q3)) in stats.iter().enumerate() {
                row.push(if i + 1 == stats.len() {
                    format!(
                        "{} [{}, {}]",
                        crate::format::short(*m),
                        crate::format::short(*q1),
                        crate::format::short(*q3)
                    )
                } else {
                    crate::format::short(*m)
                });
            }
            row.push(format!("{ms:.3}"));
            rows.push(row);
        }
    }
    if json {
        return Ok(lines.join("\n"));
    }
    let mut header = vec!["FUNCTION".to_string(), "SAMPLER".to_string()];
    for (i, c) in checkpoints.iter().enumerate() {
        header.push(if i + 1 == checkpoints.len() {
            format!("REGRET@{c} median [Q1, Q3]")
        } else {
            format!("@{c}")
        });
    }
    header.push("MS/TRIAL".into());
    let mut out = format!(
        "simple regret (best found - optimum), median over {seeds} seeds (from {first_seed}) of {trials} trials; MS/TRIAL = time in the sampler per proposal\n"
    );
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    out.push_str(&crate::format::table(&header, &rows));
    Ok(out)
}

/// A host for benchmark runs: no output, never interrupted, no other workers.
struct QuietHost(Instant);

impl hpo_core::run::Host for QuietHost {
    fn elapsed(&self) -> std::time::Duration {
        self.0.elapsed()
    }
    fn interrupted(&self) -> bool {
        false
    }
    fn owner(&self) -> String {
        "bench".into()
    }
    fn is_orphaned(
        &self,
        _: &hpo_core::trial::FrozenTrial,
        _: Option<hpo_core::trial::Timestamp>,
    ) -> bool {
        false
    }
    fn event(&self, _: hpo_core::run::Event<'_>) {}
}

/// The pruners `hpo bench pruning` compares, as `[pruner]` tables: none, median,
/// asha and hyperband, each with its defaults unless the study file's own
/// `[pruner]` is of that kind (then its settings are used).
fn pruning_variants(text: &str) -> Vec<(&'static str, String)> {
    let own = pruner_section(text);
    let defaults = [
        ("none", "[pruner]\nkind = \"none\"\n"),
        ("median", "[pruner]\nkind = \"median\"\nwarmup_steps = 5\n"),
        ("asha", "[pruner]\nkind = \"asha\"\n"),
        ("hyperband", "[pruner]\nkind = \"hyperband\"\n"),
    ];
    defaults
        .into_iter()
        .map(|(name, table)| {
            let is_own = own.lines().any(|l| l.replace(' ', "") == format!("kind=\"{name}\""));
            (name, if is_own { own.clone() } else { table.to_owned() })
        })
        .collect()
}

/// The `[pruner]` table of a study file (empty when it has none).
fn pruner_section(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.trim_start().starts_with('[') {
            inside = line.trim() == "[pruner]";
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The study file with another seed and `[pruner]` table, so the study stored
/// with each run says what ran.
fn variant_text(text: &str, seed: u64, pruner: &str) -> String {
    let own = pruner_section(text);
    let mut out = String::new();
    for line in text.replacen(&own, "", 1).lines() {
        if line.trim_start().starts_with("seed") && line.contains('=') {
            out.push_str(&format!("seed = {seed}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push('\n');
    out.push_str(pruner);
    out
}

/// What `hpo bench pruning` runs: which studies, pruners and seeds, how many runs at
/// once, and where finished runs are recorded.
pub struct PruningBench {
    /// Study files (candle objectives).
    pub studies: Vec<std::path::PathBuf>,
    /// Study seeds per (study, pruner).
    pub seeds: std::ops::Range<u64>,
    /// Only these pruners (all when empty).
    pub pruners: Vec<String>,
    /// Runs at once, sharing each study's objective (and so its devices).
    pub jobs: usize,
    /// A JSON-lines file of finished runs: runs already in it are not run again, and
    /// each new run is appended as it finishes, so a cut-short benchmark resumes.
    pub runs: Option<std::path::PathBuf>,
    /// Start no run after this long; runs under way finish. With `runs`, a benchmark
    /// spread over calls of bounded length ends each call between runs instead of
    /// losing the one a hard limit would cut short.
    pub start_within: Option<std::time::Duration>,
}

/// One (study, pruner, seed) run of the pruning benchmark, as `--runs` records it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct PruningRun {
    study: String,
    pruner: String,
    seed: u64,
    /// [`fingerprint`] of the study file as it ran.
    #[serde(default)]
    fingerprint: String,
    epochs: f64,
    pruned: f64,
    seconds: f64,
    best: f64,
    test: f64,
}

/// `hpo bench pruning`: each study file with each pruner and each study seed; per
/// (study, pruner) the medians over seeds of epochs trained, wall time, the best
/// trial's value and its test metric.
pub fn pruning(bench: &PruningBench) -> Result<String> {
    use hpo_core::spec::ObjectiveSpec;
    // `--start-within` counts from here, data loading included.
    let started = Instant::now();
    if bench.seeds.is_empty() || bench.jobs == 0 {
        bail!("--seeds and --jobs must be at least 1");
    }
    let mut done: Vec<PruningRun> = match &bench.runs {
        Some(path) if path.exists() => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, line)| {
                serde_json::from_str(line).with_context(|| {
                    format!(
                        "{} line {}: not a pruning-benchmark run; delete the line or pass another --runs file",
                        path.display(),
                        i + 1
                    )
                })
            })
            .collect::<Result<_>>()?,
        _ => Vec::new(),
    };
    let mut studies = Vec::new();
    for path in &bench.studies {
        let spec = crate::read_study_file(path)?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read study file {}", path.display()))?;
        let ObjectiveSpec::Candle(_) = &spec.objective else {
            bail!("{}: the pruning benchmark trains models; use a candle study", path.display());
        };
        let variants: Vec<_> = pruning_variants(&text)
            .into_iter()
            .filter(|(name, _)| bench.pruners.is_empty() || bench.pruners.iter().any(|p| p == name))
            .collect();
        studies.push((path, text, spec, variants));
    }
    // Every run still to do, in table order: a recorded run counts only when it ran
    // the same study file with the same pruner settings.
    let mut todo = Vec::new();
    for (s, (_, text, _, variants)) in studies.iter().enumerate() {
        for (name, table) in variants {
            for seed in bench.seeds.clone() {
                let print = fingerprint(&variant_text(text, seed, table));
                if !done.iter().any(|r| r.fingerprint == print) {
                    todo.push((s, *name, table.clone(), seed));
                }
            }
        }
    }
    // `--start-within 0` starts nothing, so it builds nothing either: it prints the
    // table of a runs file anywhere, e.g. GPU runs on a machine without a GPU.
    let starts_none = bench.start_within == Some(std::time::Duration::ZERO);
    let objectives = studies
        .iter()
        .enumerate()
        .map(|(s, (path, _, spec, _))| {
            let needed = !starts_none && todo.iter().any(|(t, ..)| *t == s);
            let base_dir = path.parent().unwrap_or(std::path::Path::new("."));
            Ok(if needed { Some(hpo_train::build_objective(spec, base_dir)?) } else { None })
        })
        .collect::<Result<Vec<_>>>()?;
    let queue = std::sync::Mutex::new(todo.into_iter());
    let finished = std::sync::Mutex::new(Vec::new());
    let failure = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..bench.jobs {
            scope.spawn(|| {
                loop {
                    if bench.start_within.is_some_and(|limit| started.elapsed() >= limit) {
                        break;
                    }
                    let next = queue.lock().unwrap().next();
                    let Some((s, name, table, seed)) = next else { break };
                    if failure.lock().unwrap().is_some() {
                        break;
                    }
                    let (path, text, spec, _) = &studies[s];
                    let objective =
                        objectives[s].as_ref().expect("built for every study with runs");
                    match pruning_run(path, text, spec, objective.as_ref(), name, &table, seed) {
                        Ok(run) => {
                            // Progress, while a long benchmark runs.
                            #[allow(clippy::print_stderr)]
                            {
                                eprintln!(
                                    "{} {name} seed {seed}: {:.0} epochs, {:.1} s, best {:.4}",
                                    run.study, run.epochs, run.seconds, run.best
                                );
                            }
                            let record = bench.runs.as_ref().map(|file| append_run(file, &run));
                            finished.lock().unwrap().push(run);
                            if let Some(Err(err)) = record {
                                *failure.lock().unwrap() = Some(err);
                            }
                        }
                        Err(err) => *failure.lock().unwrap() = Some(err),
                    }
                }
            });
        }
    });
    if let Some(err) = failure.into_inner().unwrap() {
        return Err(err);
    }
    let not_started = queue.into_inner().unwrap().count();
    done.extend(finished.into_inner().unwrap());
    let mut rows = Vec::new();
    for (_, text, spec, variants) in &studies {
        for (name, table) in variants {
            let prints: Vec<String> = bench
                .seeds
                .clone()
                .map(|seed| fingerprint(&variant_text(text, seed, table)))
                .collect();
            // Each seed's run once, even when a runs file holds it twice.
            let mut seen = std::collections::HashSet::new();
            let runs: Vec<&PruningRun> = done
                .iter()
                .filter(|r| prints.contains(&r.fingerprint) && seen.insert(&r.fingerprint))
                .collect();
            // The median over the runs so far ("-" before the first).
            let med = |f: fn(&PruningRun) -> f64, decimals: usize| {
                let xs: Vec<f64> = runs.iter().map(|r| f(r)).collect();
                if xs.is_empty() {
                    return "-".to_owned();
                }
                format!("{:.decimals$}", hpo_core::sampler::benchmark::quartiles(&xs).0)
            };
            rows.push(vec![
                spec.name.clone(),
                name.to_string(),
                format!("{}/{}", runs.len(), prints.len()),
                med(|r| r.epochs, 0),
                med(|r| r.pruned, 0),
                med(|r| r.seconds, 1),
                med(|r| r.best, 4),
                med(|r| r.test, 4),
            ]);
        }
    }
    let (first, n) = (bench.seeds.start, bench.seeds.end - bench.seeds.start);
    let mut out = format!(
        "medians over {n} study seeds (from {first}), {} run(s) at once; RUNS = seeds run so far; EPOCHS = epochs trained by all trials; BEST = the study metric of the best trial, TEST = its test metric\n",
        bench.jobs
    );
    out.push_str(&crate::format::table(
        &["STUDY", "PRUNER", "RUNS", "EPOCHS", "PRUNED", "SECONDS", "BEST", "TEST"],
        &rows,
    ));
    if not_started > 0 {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&if starts_none {
            format!(
                "{not_started} run(s) not recorded yet; --start-within 0 runs none (give it time, on a machine that can run them)\n"
            )
        } else {
            format!(
                "{not_started} run(s) not started (--start-within); {}\n",
                if bench.runs.is_some() {
                    "the same command with the same --runs file goes on from here"
                } else {
                    "pass --runs FILE to keep finished runs and go on from them"
                }
            )
        });
    }
    Ok(out)
}

/// One study run of the pruning benchmark, on a fresh temporary database.
fn pruning_run(
    path: &std::path::Path,
    text: &str,
    spec: &StudySpec,
    objective: &dyn hpo_core::objective::Objective,
    name: &str,
    table: &str,
    seed: u64,
) -> Result<PruningRun> {
    let variant = variant_text(text, seed, table);
    let run_spec =
        StudySpec::parse(&variant, &format!("{} ({name}, seed {seed})", path.display()))?;
    let dir = tempfile::tempdir()?;
    let storage = SqliteStorage::open(&dir.path().join("bench.sqlite"))?;
    let host = QuietHost(Instant::now());
    let config = hpo_core::run::RunConfig { trials: None, timeout: None, workers: None };
    let summary = hpo_core::run::run_study(&storage, &run_spec, objective, &host, config)?;
    let seconds = host.0.elapsed().as_secs_f64();
    let trials = storage.trials(summary.study.id, None)?;
    let winner = summary.best.context("no trial completed")?;
    let test_metric = spec.metric.replacen("val_", "test_", 1);
    Ok(PruningRun {
        study: spec.name.clone(),
        pruner: name.to_owned(),
        seed,
        fingerprint: fingerprint(&variant),
        epochs: trials.iter().map(|t| t.intermediate_values.len()).sum::<usize>() as f64,
        pruned: trials.iter().filter(|t| t.state == TrialState::Pruned).count() as f64,
        seconds,
        best: winner.value.unwrap_or(f64::NAN),
        test: winner.user_attrs.get(&test_metric).and_then(|a| a.as_f64()).unwrap_or(f64::NAN),
    })
}

/// A SHA-256 (hex) of a study file as one benchmark run runs it (its seed and
/// `[pruner]` set), so that a `--runs` file never stands in for runs of a study
/// file or pruner settings that have changed since.
fn fingerprint(variant: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(variant.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends one finished run to the `--runs` file.
fn append_run(path: &std::path::Path, run: &PruningRun) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot append to {}", path.display()))?;
    writeln!(file, "{}", serde_json::to_string(run)?)?;
    Ok(())
}

/// `hpo bench overhead --workers P,...`: for each study size N and process count P,
/// P processes (`hpo bench overhead-worker`) share one fresh SQLite study and run
/// ask + 10 reported steps + tell until N trials are complete. Printed: wall time per
/// trial (all processes together), and the check that exactly N trials completed.
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
            let mut spec = StudySpec::parse(STUDY, "<bench overhead>")?;
            // A study of its own per run, so runs can share a server's database.
            spec.name = format!("overhead-{n}-{p}-{}", std::process::id());
            open_study(&*crate::db::open_writable(&db, true, false)?, &spec)?;
            let started = Instant::now();
            let children: Vec<std::process::Child> = (0..p)
                .map(|_| {
                    std::process::Command::new(&exe)
                        .args(["bench", "overhead-worker", "--trials", &n.to_string()])
                        .args(["--study", &spec.name, "--db"])
                        .arg(&db)
                        .stdout(std::process::Stdio::null())
                        .spawn()
                        .context("cannot start a worker process")
                })
                .collect::<Result<_>>()?;
            let peak_kb = peak_of_children(children)?;
            let seconds = started.elapsed().as_secs_f64();
            let storage = crate::db::open_writable(&db, false, false)?;
            let study = storage.find_study(&spec.name)?.context("the study")?;
            let complete = storage.trials(study.id, Some(&[TrialState::Complete]))?;
            let whole = complete.iter().all(|t| t.intermediate_values.len() == 10);
            if complete.len() != n || !whole {
                bail!(
                    "{} trials complete (expected {n}); all curves whole: {whole}",
                    complete.len()
                );
            }
            // The cost per trial near the end, from the stored end times.
            let ends: Vec<f64> = complete
                .iter()
                .filter_map(|t| t.datetime_complete.map(|it| it.0 as f64 / 1e3))
                .collect();
            let last = n.min(1000);
            let span = ends[n - 1] - ends[n - last];
            rows.push(vec![
                n.to_string(),
                p.to_string(),
                format!("{:.3}", seconds * 1e3 / n as f64),
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
        "ask + 10 reported steps + tell per trial, P processes sharing one study, random sampler; {store}\n{}",
        crate::format::table(
            &[
                "TRIALS",
                "PROCESSES",
                "MS/TRIAL",
                "LAST 1000 MS/TRIAL",
                "TRIALS/S",
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
                Some(status) if !status.success() => bail!("a worker process failed"),
                Some(_) => {}
                None => running.push(child),
            }
        }
        children = running;
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(peak)
}

/// One worker process of `overhead_processes`: runs trials until the budget is met;
/// prints how many it ran.
pub fn overhead_worker(db: &std::path::Path, name: &str, n: usize) -> Result<String> {
    let mut spec = StudySpec::parse(STUDY, "<bench overhead>")?;
    spec.name = name.to_owned();
    let hpo_core::spec::ObjectiveSpec::Function { function, .. } = spec.objective else {
        bail!("function objective")
    };
    let sampler = sampler::from_spec(spec.sampler, spec.direction);
    let storage = crate::db::open_writable(db, false, false)?;
    let storage: &dyn hpo_core::storage::Storage = &*storage;
    let study = open_study(storage, &spec)?;
    let owner = format!("bench:{}:0", std::process::id());
    let host = QuietHost(Instant::now());
    let history = History::default();
    let mut ran = 0;
    let mut last_look: Option<Instant> = None;
    loop {
        // As a real worker does every few seconds: look for dead workers' trials.
        if last_look.is_none_or(|at| at.elapsed().as_secs() >= 2) {
            hpo_core::run::recover_orphans(storage, study.id, &host, 0)?;
            last_look = Some(Instant::now());
        }
        let Some(trial) =
            ask(storage, study.id, &spec, sampler.as_ref(), Some(n), &owner, &history)?
        else {
            break;
        };
        let value = function.evaluate(&trial.params);
        for step in 1..=10u64 {
            let at_step = value + (10 - step) as f64;
            storage.report(trial.id, step, at_step, &[("value".to_owned(), at_step)])?;
        }
        storage.finish_trial(trial.id, TrialState::Complete, Some(value))?;
        ran += 1;
    }
    Ok(ran.to_string())
}

const REPORT_STUDY: &str = r#"
[study]
name = "report-bench"
metric = "val_loss"
direction = "minimize"
seed = 7
trials = 1000000

[sampler]
kind = "random"

[objective]
kind = "external"

[space]
lr              = { float = [1e-4, 1e-1], log = true }
dropout         = { float = [0.0, 0.6] }
weight_decay    = { float = [1e-6, 1e-1], log = true }
label_smoothing = { float = [0.0, 0.2] }
augment         = { choice = ["none", "shift"] }
train_fraction  = { choice = [0.25, 0.5, 1.0] }
"#;

/// Writes the report benchmark's synthetic study of `n` trials (random search over 6
/// parameters, 10 epochs of train/val loss and accuracy and the gap per trial, every
/// tenth trial pruned) into `storage` as study `name`.
pub fn write_synthetic_study(storage: &SqliteStorage, name: &str, n: usize) -> Result<()> {
    use hpo_core::trial::{AttrValue, attr};
    let text = REPORT_STUDY.replace("name = \"report-bench\"", &format!("name = \"{name}\""));
    let spec = StudySpec::parse(&text, "<bench report>")?;
    let sampler = sampler::from_spec(spec.sampler, spec.direction);
    let study = open_study(storage, &spec)?;
    let history = History::default();
    for _ in 0..n {
        let Some(trial) =
            ask(storage, study.id, &spec, sampler.as_ref(), None, "bench:1:1", &history)?
        else {
            bail!("ask returned no trial")
        };
        let param = |name: &str| trial.params.get(name).and_then(|v| v.as_f64()).unwrap_or(0.0);
        let (lr, dropout, fraction) = (param("lr"), param("dropout"), param("train_fraction"));
        let floor = 0.08 + 0.05 * (lr.log10() + 2.5).powi(2) + 0.1 * (dropout - 0.3).abs();
        let overfit = 0.25 * (0.6 - dropout) / fraction.max(0.25);
        let pruned = trial.number % 10 == 9;
        let epochs = if pruned { 3 } else { 10 };
        let mut best = (0, f64::INFINITY, Vec::new());
        for step in 1..=epochs {
            let s = step as f64;
            let train_loss = floor + 1.5 / s;
            let val_loss = train_loss + overfit * (s / 10.0);
            let metrics = vec![
                ("train_loss".to_owned(), train_loss),
                ("val_loss".to_owned(), val_loss),
                ("train_accuracy".to_owned(), 1.0 - train_loss / 3.0),
                ("val_accuracy".to_owned(), 1.0 - val_loss / 3.0),
                ("generalization_gap".to_owned(), val_loss - train_loss),
            ];
            storage.report(trial.id, step, val_loss, &metrics)?;
            if val_loss < best.1 {
                best = (step, val_loss, metrics);
            }
        }
        if pruned {
            storage.finish_trial(trial.id, TrialState::Pruned, None)?;
            continue;
        }
        storage.set_trial_user_attr(trial.id, "best_step", &AttrValue::Number(best.0 as f64))?;
        for (name, value) in &best.2 {
            storage.set_trial_user_attr(trial.id, name, &AttrValue::Number(*value))?;
        }
        let ended = AttrValue::Str("completed".to_owned());
        storage.set_trial_system_attr(trial.id, attr::ENDED_BY, &ended)?;
        storage.finish_trial(trial.id, TrialState::Complete, Some(best.1))?;
    }
    Ok(())
}

/// `hpo bench report`: writes a synthetic study of `n` trials through the store (10
/// epochs of train/val loss and accuracy each, a tenth of them pruned), then times
/// reading it back and rendering its report.
pub fn report(n: usize) -> Result<String> {
    if n < 10 {
        bail!("--trials must be at least 10");
    }
    let dir = tempfile::tempdir()?;
    let storage = SqliteStorage::open(&dir.path().join("bench.sqlite"))?;
    let started = Instant::now();
    let name = "report-bench".to_owned();
    write_synthetic_study(&storage, &name, n)?;
    let write_seconds = started.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let record =
        crate::report::load(&storage, &crate::report::StudyRef { name, until: None, whole: None })?;
    let load_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let written = hpo_report::write_report(&record, None, &dir.path().join("report"))?;
    let render_seconds = t1.elapsed().as_secs_f64();
    let html_bytes = std::fs::metadata(&written.index)?.len();
    Ok(format!(
        "report of a synthetic study: {n} trials x 10 epochs x 5 metrics (random sampler, 10% pruned)\n{}",
        crate::format::table(
            &["TRIALS", "WRITE S", "LOAD S", "RENDER S", "LOAD+RENDER S", "CHART FILES", "HTML KB"],
            &[vec![
                n.to_string(),
                format!("{write_seconds:.1}"),
                format!("{load_seconds:.3}"),
                format!("{render_seconds:.3}"),
                format!("{:.3}", load_seconds + render_seconds),
                written.charts.len().to_string(),
                (html_bytes / 1024).to_string(),
            ]]
        )
    ))
}

/// Seconds since it was made, on the monotonic clock: what hpo-core's benchmarks
/// time proposals with.
fn stopwatch() -> impl Fn() -> f64 + Sync {
    let origin = Instant::now();
    move || origin.elapsed().as_secs_f64()
}
