//! `hpo bench pruning`: epochs, wall time and best value of study files with no
//! pruner, median, ASHA and Hyperband over study seeds, each run recorded and
//! resumable.

use std::time::Instant;

use super::QuietHost;
use anyhow::{Context, Result, bail};
use hpo_core::spec::StudySpec;
use hpo_core::storage::Storage;
use hpo_core::trial::TrialState;
use hpo_store::SqliteStorage;

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
    /// run in several time-limited parts ends each part between runs instead of
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
        let ObjectiveSpec::Training(_) = &spec.objective else {
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
            Ok(if needed { Some(hpo_train::build_objective(spec, base_dir, None)?) } else { None })
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
