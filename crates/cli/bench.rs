//! `hpo bench overhead`: what hpo itself costs per trial, without any training.
//!
//! For each study size N, a fresh SQLite database gets a random-search study of
//! five parameters, and N trials go through the real ask (claim or create, sample,
//! store params) and tell (finish with a value) path. Printed: mean cost per trial
//! over all N, over the last 10% (the cost "at" N trials), the median, and the time
//! to load the whole study back.

use std::time::Instant;

use anyhow::{Result, bail};
use hpo_core::run::{ask, open_study};
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
    let hpo_core::spec::ObjectiveSpec::Function { function } = spec.objective else {
        bail!("function objective")
    };
    let sampler = sampler::from_spec(spec.sampler, spec.direction);
    let mut rows = Vec::new();
    for &n in sizes {
        let dir = tempfile::tempdir()?;
        let storage = SqliteStorage::open(&dir.path().join("bench.sqlite"))?;
        let study = open_study(&storage, &spec)?;
        let mut per_trial = Vec::with_capacity(n);
        let started = Instant::now();
        for _ in 0..n {
            let t0 = Instant::now();
            let Some(trial) = ask(&storage, study.id, &spec, sampler.as_ref(), None, "bench")?
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
    Ok(format!(
        "ask + tell per trial, random sampler, SQLite (WAL, synchronous=NORMAL), 5 parameters\n{}",
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
        )
    ))
}

/// `hpo bench train`: one row (or JSON line) per workload.
pub fn train(
    device: &str,
    workloads: &[String],
    batch: Option<usize>,
    steps: usize,
    json: bool,
) -> Result<String> {
    use hpo_train::bench::{Workload, train_throughput};
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
