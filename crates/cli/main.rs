//! `hpo`: the command line. Each subcommand parses its arguments, validates them
//! into typed values, and calls one library function (hpo-core's study loop,
//! hpo-store's storage, hpo-train's objectives); this crate only prints.
//!
//! Exit codes: [`EXIT_CODES`] (what `hpo --help` prints).
#![forbid(unsafe_code)]

mod bench;
mod bench_dashboard;
mod bench_serve;
mod browser;
mod confirm;
mod db;
mod export_model;
mod external;
mod format;
mod host;
mod inspect;
mod nightly;
mod pick;
mod report;
mod schedule;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use hpo_core::objective::Objective;
use hpo_core::run::external::Outcome;
use hpo_core::run::{ConfirmConfig, RunConfig, RunEnd};
use hpo_core::spec::{StudySpec, parse_duration};
use hpo_store::SqliteStorage;

/// mimalloc keeps freed blocks for reuse: with glibc's allocator every large tensor of a
/// training step was a fresh mmap whose pages faulted in and were zeroed again, which
/// cost up to 40% of a CPU step (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Refuses, with a message, a CPU without the instructions this build was compiled
/// for (.cargo/config.toml: x86-64-v3, AVX2 and FMA).
fn check_cpu() -> Result<(), String> {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))]
    if !(std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")) {
        return Err("this build needs a CPU with AVX2 and FMA (x86-64-v3, any x86-64 CPU \
                    since about 2015); on an older CPU build with \
                    RUSTFLAGS=\"-C target-cpu=x86-64\" cargo build --release"
            .into());
    }
    Ok(())
}

/// What `hpo --help` says of exit codes.
const EXIT_CODES: &str = "Exit codes:
  0    success (hpo diff: B is not worse than A)
  1    an error (hpo diff: B is worse than A beyond the seed noise; hpo check: problems found)
  2    bad usage: a flag, a study file, a missing study or database (hpo diff: also a metric mismatch)
  3    hpo diff only: any other error
  130  interrupted (Ctrl-C or SIGTERM)";

/// Hyperparameter search and experiment tracking.
#[derive(Parser)]
#[command(name = "hpo", version, about, long_about = None, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The process that ends a run's command trials if hpo dies (started by hpo).
    #[command(hide = true)]
    Watchdog,
    /// Run a study file until its budget is met (resumes a study that exists). Any
    /// number of `hpo run` / `hpo worker` processes may share one study and database:
    /// they cooperate on its budget.
    Run(RunArgs),
    /// Run a study file as one of any number of processes sharing its study and
    /// budget in one database (the same as `hpo run`; start one per machine or core).
    Worker(RunArgs),
    /// Train the best trials' configurations again with new seeds (outside the
    /// budget) and print each one's values, mean and standard deviation.
    Confirm {
        /// The study file the study was run from.
        study: PathBuf,
        /// How many of the best complete trials to confirm.
        #[arg(long, default_value_t = 3, value_parser = at_least_one, allow_hyphen_values = true)]
        top: usize,
        /// How many confirm runs each of them gets (runs from earlier calls count).
        #[arg(long, default_value_t = 3, value_parser = at_least_one, allow_hyphen_values = true)]
        seeds: usize,
        #[command(flatten)]
        db: DbArg,
    },
    /// Write a study's HTML report with its charts (SVG and PNG) into
    /// reports/<study>/ (or --out).
    Report {
        /// The study's name (or its study file); NAME@YYYY-MM-DD for its state then.
        study: String,
        /// The folder to write (default: reports/<study>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Compare with another study, or with this study at an earlier date
        /// (`@2026-11-27`, `NAME@2026-11-27T18:00`, UTC).
        #[arg(long)]
        compare: Option<String>,
        #[command(flatten)]
        db: DbArg,
    },
    /// Compare study B's pick with study A's (the confirmed means where `hpo confirm`
    /// ran; configuration, gap, moved parameters). Exits 0 when B is not worse, 1 when
    /// it is worse beyond the seed noise, 2 for bad usage (a missing study or
    /// database, another metric), 3 for any other error.
    Diff {
        /// The baseline: a study name, NAME@DATE, a study file, or DB.sqlite:NAME
        /// for a study in another database.
        a: String,
        /// The study compared with it (`@DATE` means A's study at that date).
        b: String,
        #[command(flatten)]
        db: DbArg,
        /// A's database (instead of --db).
        #[arg(long)]
        db_a: Option<PathBuf>,
        /// B's database (instead of --db).
        #[arg(long)]
        db_b: Option<PathBuf>,
        /// Print the comparison as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run tonight's night of a study that runs every night (docs/nightly.md): a
    /// study NAME@DATE warm-started from the night before, its top trials confirmed,
    /// its pick compared with the night before's, and its report with the trend over
    /// every night. Exits 0 when the night is not worse, 1 when it is worse beyond
    /// the seed noise, 2 for bad input (the study file, a flag, a dataset), 3 for any
    /// other error (the database, every trial failed). Run again, it resumes the
    /// night; a finished night it leaves as it is.
    Nightly {
        /// The study file, e.g. studies/quickstart.toml.
        study: PathBuf,
        #[command(flatten)]
        db: DbArg,
        /// The night, YYYY-MM-DD (default: today, local time).
        #[arg(long, value_parser = nightly::parse_night_date)]
        date: Option<String>,
        /// Print the verdict, both nights' picks and the report's path as JSON.
        #[arg(long)]
        json: bool,
        /// The report's folder (default: reports/NAME@DATE).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Stop starting new trials after this long ("90s", "30m", "2h"): the
        /// night's window, replacing the study file's `timeout`.
        #[arg(long, value_parser = parse_timeout, allow_hyphen_values = true)]
        timeout: Option<std::time::Duration>,
    },
    /// Drop the curves and trial folders of old nights of nightly studies, keeping
    /// their trials, values and picks (the trend over every night stays whole).
    Gc {
        /// How many of each nightly study's newest nights to keep whole.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..), allow_hyphen_values = true)]
        keep_nights: u64,
        #[command(flatten)]
        db: DbArg,
    },
    /// Serve the HTTP API over a database (docs/api.md: studies, trials, ask and tell
    /// from any machine) until Ctrl-C or SIGTERM, beside the `hpo run` and `hpo
    /// worker` processes that write it
    Serve {
        #[command(flatten)]
        db: DbArg,
        /// The address to listen on; another than loopback needs --tokens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: std::net::SocketAddr,
        /// The tokens file: one `TOKEN ROLE` a line, ROLE `read` or `write`; not
        /// readable by others (chmod 600). Without it, loopback only, all open.
        #[arg(long)]
        tokens: Option<PathBuf>,
        /// Let the read endpoints answer without a token.
        #[arg(long)]
        public_read: bool,
        /// Run nightly studies at set times (a TOML file of `[[night]]` tables:
        /// `study`, `at`, `time_zone`, `window`; docs/nightly.md), one after another.
        #[arg(long)]
        schedule: Option<PathBuf>,
        /// Start the service's clock at this time (RFC 3339), for rehearsing a
        /// schedule.
        #[arg(long, hide = true, requires = "schedule", value_parser = schedule::parse_clock_start)]
        clock_start: Option<jiff::Timestamp>,
    },
    /// Copy studies, whole, from one database to another: SQLite to PostgreSQL and
    /// back (every trial with its parameters, values, curves, verdicts and
    /// attributes, the study file, the pick). Refuses, writing nothing, a study
    /// the destination already has.
    Copy {
        /// The database to read: an SQLite file or a postgresql:// URL.
        from: PathBuf,
        /// The database to write (an SQLite file is created if missing).
        to: PathBuf,
        /// Copy only this study (default: every study).
        #[arg(long)]
        study: Option<String>,
    },
    /// Check a database: SQLite's integrity check, foreign keys, and unique trial
    /// numbers. Prints `ok` or the problems (exit 1).
    Check {
        #[command(flatten)]
        db: DbArg,
    },
    /// List the studies in a database.
    Ls {
        #[command(flatten)]
        db: DbArg,
    },
    /// Show a study's best trial and leaderboard, or one trial in detail.
    Show {
        /// The study's name.
        study: String,
        /// Show this trial (its number) with its whole learning curve.
        #[arg(long, allow_hyphen_values = true)]
        trial: Option<u64>,
        /// With --trial: its program's output (a command trial's stdout and stderr).
        #[arg(long, requires = "trial")]
        log: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Export a study's trials (and curves) as CSV or JSON.
    Export {
        /// The study's name.
        study: String,
        /// csv: one row per trial (or per curve point with --curves); json: every
        /// trial with its curves.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// CSV only: export the learning curves (one row per trial, step and metric) instead of the trials.
        #[arg(long)]
        curves: bool,
        /// JSON only: one flat object per trial with the CSV's columns (pandas'
        /// `read_json` reads it as a table), instead of nested trials with curves.
        #[arg(long)]
        flat: bool,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        db: DbArg,
    },
    /// Write a trial's trained model for deployment: safetensors or ONNX, with its
    /// configuration (model.json), metrics (metrics.json), a sample of test rows
    /// with hpo's outputs (sample.json) and a model card. The study keeps the
    /// models of its best `keep_models` trials.
    ExportModel {
        /// The study's name.
        study: String,
        /// The trial (default: the best by value; with several objectives, the
        /// Pareto front's best on the first objective).
        #[arg(long, allow_hyphen_values = true)]
        trial: Option<u64>,
        /// safetensors or onnx.
        #[arg(long, value_enum)]
        format: export_model::ModelFormat,
        /// The folder to write (created if missing).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        db: DbArg,
    },
    /// Start a trial of an external study (`[objective] kind = "external"`): prints
    /// `{"trial": N, "params": {...}}` (the study is created on first use).
    Ask {
        /// The study file.
        study: PathBuf,
        #[command(flatten)]
        db: DbArg,
    },
    /// Finish a trial that `hpo ask` handed out, with its value or a state.
    Tell {
        /// The study file.
        study: PathBuf,
        /// The trial's number, as `hpo ask` printed it.
        #[arg(long, allow_hyphen_values = true)]
        trial: u64,
        /// The objective's value (for a complete trial).
        #[arg(
            long,
            allow_hyphen_values = true,
            conflicts_with = "state",
            required_unless_present = "state"
        )]
        value: Option<f64>,
        /// End the trial as failed or pruned instead.
        #[arg(long, value_enum)]
        state: Option<TellState>,
        #[command(flatten)]
        db: DbArg,
    },
    /// Record a curve point of a running external trial; prints
    /// `{"trial": N, "step": S, "prune": true|false}`.
    ReportStep {
        /// The study file.
        study: PathBuf,
        /// The trial's number.
        #[arg(long, allow_hyphen_values = true)]
        trial: u64,
        /// The step (epoch, iteration): 0 to 9223372036854775807 (what Optuna
        /// stores). Reporting a step again replaces its value.
        #[arg(long, allow_hyphen_values = true, value_parser = clap::value_parser!(u64).range(0..=i64::MAX as u64))]
        step: u64,
        /// The study metric's value at that step.
        #[arg(long, allow_hyphen_values = true)]
        value: f64,
        #[command(flatten)]
        db: DbArg,
    },
    /// Benchmarks that print their numbers.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
}

/// What `hpo bench overhead` times.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OverheadObjective {
    /// A benchmark function (ask + tell).
    Function,
    /// A command trial.
    Command,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Per-trial cost of ask + tell with the random sampler on SQLite.
    Overhead {
        /// Study sizes to measure.
        #[arg(long, value_delimiter = ',', default_values_t = vec![1000, 10000], allow_hyphen_values = true)]
        trials: Vec<usize>,
        /// Measure `hpo run` in this many processes sharing the study, each trial
        /// reporting 10 steps (a list: 1,2,4), instead of one process.
        #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
        workers: Vec<usize>,
        /// `command`: hpo's own cost per trial of a command objective (a program
        /// printing 10 steps) beyond the program's run time, through `hpo run`.
        #[arg(long, value_enum, default_value_t = OverheadObjective::Function)]
        objective: OverheadObjective,
        /// With --workers: the database the processes share, e.g. a PostgreSQL
        /// server's postgresql://USER:PASSWORD@HOST:PORT/DATABASE (each run makes a
        /// study of its own there); by default a fresh SQLite file per run.
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// `hpo serve` under load: C HTTP clients, each looping ask -> 10 steps -> tell;
    /// trials/s and p50/p99 per verb; then the /metrics scrape time.
    Serve {
        /// Study sizes (the budget the clients meet).
        #[arg(long, value_delimiter = ',', default_values_t = vec![1000, 10000], allow_hyphen_values = true)]
        trials: Vec<usize>,
        /// Concurrent clients.
        #[arg(long, default_value_t = 8, allow_hyphen_values = true)]
        clients: usize,
        /// Samplers.
        #[arg(long, value_delimiter = ',', default_values_t = vec!["random".to_string(), "tpe".to_string()])]
        samplers: Vec<String>,
        /// Studies in the scraped database.
        #[arg(long, default_value_t = 100, allow_hyphen_values = true)]
        scrape_studies: usize,
        /// Trials per scraped study.
        #[arg(long, default_value_t = 1000, allow_hyphen_values = true)]
        scrape_trials: usize,
    },
    /// The dashboard in headless Chromium over `hpo serve`: time to the first chart
    /// and to every chart of a large study's page, bytes transferred, the studies list.
    Dashboard {
        /// Trials of the large study.
        #[arg(long, default_value_t = 10000, allow_hyphen_values = true)]
        trials: usize,
        /// Studies in the database (the large one and small ones of 20 trials).
        #[arg(long, default_value_t = 100, allow_hyphen_values = true)]
        studies: usize,
        /// Page views of each kind (medians are printed).
        #[arg(long, default_value_t = 3, allow_hyphen_values = true)]
        runs: usize,
        /// Save screenshots of the large study's page and of a trial in this folder.
        #[arg(long)]
        screenshots: Option<PathBuf>,
        /// Write the studies into this new database and keep it (to open it with
        /// `hpo serve` afterwards), instead of a temporary one.
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Cost per reported step with each pruner, after N finished trials: `hpo run`
    /// of a few more trials on a study of N (a copy per pruner).
    PrunerSteps {
        /// Study sizes (finished trials) to measure after.
        #[arg(long, value_delimiter = ',', default_values_t = vec![100, 10000], allow_hyphen_values = true)]
        trials: Vec<usize>,
        /// Steps each trial reports (a synthetic curve).
        #[arg(long, default_value_t = 100, allow_hyphen_values = true)]
        steps: u64,
        /// Trials run and timed with each pruner.
        #[arg(long, default_value_t = 20, allow_hyphen_values = true)]
        measured: usize,
    },
    /// Time to render the report of a synthetic study of N trials written through
    /// the store.
    Report {
        /// Trials in the synthetic study.
        #[arg(long, default_value_t = 10_000, allow_hyphen_values = true)]
        trials: usize,
    },
    /// Training throughput of the MLP, CNN and transformer workloads (compare with
    /// scripts/bench_torch.py).
    Train {
        /// Where to train: cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Workloads: digits-mlp, fashion-cnn, jargon-transformer (default: all).
        #[arg(long, value_delimiter = ',')]
        workload: Vec<String>,
        /// Batch size (default: each workload's own).
        #[arg(long, allow_hyphen_values = true)]
        batch: Option<usize>,
        /// Timed steps after 3 warm-up steps.
        #[arg(long, default_value_t = 20, allow_hyphen_values = true)]
        steps: usize,
        /// Number format of matrix products: f32, or bf16 (autocast, f32 weights).
        #[arg(long, default_value = "f32")]
        precision: String,
        /// One JSON object per workload instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Epochs, wall time and best value of study files run with no pruner, median,
    /// asha and hyperband, over several study seeds.
    Pruning {
        /// Study files (candle objectives).
        #[arg(long, value_delimiter = ',', default_values_t = vec!["studies/digits-mlp-pruning.toml".to_string()])]
        studies: Vec<String>,
        /// Study seeds per (study, pruner).
        #[arg(long, default_value_t = 5, allow_hyphen_values = true)]
        seeds: u64,
        /// The first study seed (seeds run from here).
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        first_seed: u64,
        /// Only these pruners: none, median, asha, hyperband (default: all).
        #[arg(long, value_delimiter = ',')]
        pruners: Vec<String>,
        /// Runs at once (each with the study file's own workers and devices). On a
        /// GPU several runs share the card; their wall times then include that.
        #[arg(long, default_value_t = 1, allow_hyphen_values = true)]
        jobs: usize,
        /// Record each finished run in this JSON-lines file, and skip the runs it
        /// already holds of the same study file and pruner settings: a benchmark
        /// cut short resumes where it stopped.
        #[arg(long)]
        runs: Option<PathBuf>,
        /// Start no run after this long ("330s", "5m"); runs under way finish.
        /// With --runs, spreads the benchmark over calls of bounded length; "0"
        /// starts none and prints the table of what --runs holds (no GPU needed).
        #[arg(long, value_parser = parse_start_within, allow_hyphen_values = true)]
        start_within: Option<std::time::Duration>,
    },
    /// Simple regret of samplers on the benchmark functions (median and quartiles
    /// over seeds) and the time they spend per proposal.
    Samplers {
        /// Samplers to compare: random, tpe, tpe-optuna (Optuna 5's TPE settings), tpe-univariate, gp, auto (GP, TPE or random search chosen per proposal).
        #[arg(long, value_delimiter = ',', default_values_t = vec!["random".to_string(), "tpe".to_string()])]
        samplers: Vec<String>,
        /// Problems: branin, hartmann6, rosenbrock-5d, ackley-5d, levy-5d, mixed (default: all).
        #[arg(long, value_delimiter = ',')]
        functions: Vec<String>,
        /// Seeds per (function, sampler).
        #[arg(long, default_value_t = 20, allow_hyphen_values = true)]
        seeds: u64,
        /// The first seed: runs use seeds first-seed .. first-seed + seeds.
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        first_seed: u64,
        /// Trials per run.
        #[arg(long, default_value_t = 100, allow_hyphen_values = true)]
        trials: usize,
        /// Threads (default: every core).
        #[arg(long, allow_hyphen_values = true)]
        jobs: Option<usize>,
        /// One JSON object per (function, sampler) instead of a table.
        #[arg(long)]
        json: bool,
        /// Instead of regret, the cost of one proposal at these history sizes,
        /// written TRIALSxPARAMS (e.g. 1000x10,300x6).
        #[arg(long, value_delimiter = ',')]
        cost: Vec<String>,
    },
}

/// What `hpo run` and `hpo worker` take.
#[derive(clap::Args)]
struct RunArgs {
    /// The study file, e.g. studies/quickstart.toml.
    study: PathBuf,
    #[command(flatten)]
    db: DbArg,
    /// Override the budget: run until this many trials count (at least 1).
    #[arg(long, allow_hyphen_values = true, value_parser = at_least_one)]
    trials: Option<usize>,
    /// Stop starting new trials after this long ("90s", "30m", "2h").
    #[arg(long, value_parser = parse_timeout, allow_hyphen_values = true)]
    timeout: Option<std::time::Duration>,
    /// Trials to run at once in this process (threads, 1 to 1024), replacing `[study]
    /// workers`.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024), allow_hyphen_values = true)]
    workers: Option<u16>,
    #[command(flatten)]
    liveness: LivenessArgs,
}

/// How workers on many hosts tell a dead worker's trials from a live one's.
#[derive(clap::Args)]
struct LivenessArgs {
    /// This process's host name in the trials it runs (default: the machine's).
    /// Workers on one host see at once that a worker there died; a worker on another
    /// host is taken for dead once its trials' heartbeats are older than
    /// --heartbeat-grace.
    #[arg(long, env = "HPO_HOST_ID", value_parser = host_id)]
    host_id: Option<String>,
    /// How old the heartbeat of another host's running trial may grow before the
    /// trial is taken as abandoned, failed and retried ("30s", "2m"; at least 1s).
    #[arg(long, env = "HPO_HEARTBEAT_GRACE", default_value = "60s", value_parser = parse_grace, allow_hyphen_values = true)]
    heartbeat_grace: std::time::Duration,
}

#[derive(clap::Args)]
struct DbArg {
    /// The database: an SQLite file, or a PostgreSQL database as
    /// postgresql://USER:PASSWORD@HOST:PORT/DATABASE (workers on many hosts).
    #[arg(long, env = "HPO_DB", default_value = "db/hpo.sqlite")]
    db: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum TellState {
    /// The trial failed (it counts toward the budget, with no value).
    Fail,
    /// The trial was stopped early by the program's own rule.
    Pruned,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// Comma-separated values, one row per trial.
    Csv,
    /// One JSON document with every trial and its curves.
    Json,
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{text}` is not a whole number of at least 1")),
    }
}

/// `--start-within`: a duration, or `0` for "start no run".
fn parse_start_within(text: &str) -> Result<std::time::Duration, String> {
    if text.trim() == "0" { Ok(std::time::Duration::ZERO) } else { parse_timeout(text) }
}

/// `--host-id`: a name without `:` (it is the first part of a trial's owner).
fn host_id(text: &str) -> std::result::Result<String, String> {
    if text.is_empty() || text.contains(':') || text.chars().any(char::is_whitespace) {
        return Err(format!(
            "`{text}` is not a host name: give a name without spaces or `:`, e.g. gpu-07"
        ));
    }
    Ok(text.to_owned())
}

/// `--heartbeat-grace`: a duration of at least a second.
fn parse_grace(text: &str) -> std::result::Result<std::time::Duration, String> {
    let grace = parse_timeout(text)?;
    if grace < std::time::Duration::from_secs(1) {
        return Err(format!(
            "`{text}` is under a second; give at least \"1s\" (the default is \"60s\")"
        ));
    }
    Ok(grace)
}

fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    parse_duration(text).ok_or_else(|| {
        format!("`{text}` is not a duration longer than zero; write e.g. 90s, 30m, 2h or 1h30m")
    })
}

fn main() -> ExitCode {
    if let Err(message) = check_cpu() {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("error: {message}");
        }
        return ExitCode::from(2);
    }
    hpo_kernels::alloc::keep_freed_memory();
    let cli = Cli::parse();
    if let Command::Watchdog = &cli.command {
        // Nothing else: no logging, no allocator tuning.
        std::process::exit(hpo_command::watchdog::watch());
    }
    // The server logs its requests unless HPO_LOG says otherwise; other commands
    // log only what HPO_LOG asks for.
    let default_log = match cli.command {
        Command::Serve { .. } => "hpo_server=info,hpo=info",
        _ => "error",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HPO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log)),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`hpo export ... | head`) is not an error worth a message.
            if err.chain().any(|cause| {
                cause
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {err:#}");
            }
            // A study file with errors is bad input, like a bad flag: exit 2.
            if is_bad_input(&err) {
                return ExitCode::from(2);
            }
            ExitCode::FAILURE
        }
    }
}

/// An error in what the user asked for rather than in hpo or the machine: a
/// database or study that is not there, a multi-objective study, studies that can't
/// be compared. Exits with 2, like a bad flag or study file.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A [`UsageError`] as an `anyhow::Error`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// Whether `err` is bad input (exit 2): a study file with errors, a dataset that is
/// missing, unreadable or corrupt, a [`UsageError`], or a multi-objective study.
fn is_bad_input(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<hpo_core::spec::SpecError>().is_some()
            || cause.downcast_ref::<UsageError>().is_some()
            || matches!(
                cause.downcast_ref(),
                Some(
                    hpo_train::Error::Spec(_)
                        | hpo_train::Error::UnknownDataset { .. }
                        | hpo_train::Error::MissingDataset { .. }
                        | hpo_train::Error::Parse { .. }
                        | hpo_train::Error::Checksum { .. }
                )
            )
            || matches!(
                cause.downcast_ref(),
                Some(hpo_core::Error::Spec(_) | hpo_core::Error::MultiObjective { .. })
            )
    })
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Watchdog => unreachable!("handled before logging starts"),
        Command::Run(RunArgs { study, db, trials, timeout, workers, liveness })
        | Command::Worker(RunArgs { study, db, trials, timeout, workers, liveness }) => {
            let workers = workers.map(usize::from);
            let liveness =
                host::Liveness { host_id: liveness.host_id, grace: liveness.heartbeat_grace };
            run_study(&study, &db.db, RunConfig { trials, timeout, workers }, liveness)
        }
        Command::Confirm { study, top, seeds, db } => {
            confirm::confirm(&study, &db.db, ConfirmConfig { top, seeds })
        }
        Command::Report { study, out, compare, db } => print(report::report(
            &*open_existing(&db.db)?,
            &db.db,
            &study,
            compare.as_deref(),
            out,
        )?),
        Command::Diff { a, b, db, db_a, db_b, json } => {
            let compared = (|| -> Result<ExitCode> {
                let (path_a, a) = report::split_database(&a, db_a.as_deref().unwrap_or(&db.db));
                // `@DATE` is A's study at that date: in A's database unless told otherwise.
                let default_b = match &db_b {
                    Some(path) => path.clone(),
                    None if b.starts_with('@') => path_a.clone(),
                    None => db.db.clone(),
                };
                let (path_b, b) = report::split_database(&b, &default_b);
                let storage_a = open_existing(&path_a)?;
                let storage_b = if path_b == path_a { None } else { Some(open_existing(&path_b)?) };
                let comparison =
                    report::diff(&*storage_a, a, storage_b.as_deref().unwrap_or(&*storage_a), b)?;
                if json {
                    print(serde_json::to_string_pretty(&report::diff_json(&comparison))?)?;
                } else {
                    print(comparison.to_string())?;
                }
                let worse = comparison.verdict == hpo_report::data::Verdict::WorseBeyondNoise;
                Ok(if worse { ExitCode::FAILURE } else { ExitCode::SUCCESS })
            })();
            // Exit 1 means "worse" only: an error is 2 (bad usage) or 3.
            compared.or_else(|err| {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("error: {err:#}");
                }
                Ok(ExitCode::from(if is_bad_input(&err) { 2 } else { 3 }))
            })
        }
        Command::Nightly { study, db, date, json, out, timeout } => {
            nightly::nightly(&nightly::NightlyArgs {
                study: &study,
                db: &db.db,
                date: date.as_deref(),
                json,
                out,
                timeout,
            })
        }
        Command::Gc { keep_nights, db } => print(nightly::gc(&db.db, keep_nights as usize)?),
        Command::Bench { which: BenchCommand::Report { trials } } => print(bench::report(trials)?),
        Command::Bench {
            which: BenchCommand::Dashboard { trials, studies, runs, screenshots, db },
        } => print(bench_dashboard::dashboard(&bench_dashboard::DashboardBench {
            trials,
            studies,
            runs,
            screenshots: screenshots.as_deref(),
            db: db.as_deref(),
        })?),
        Command::Serve { db, bind, tokens, public_read, schedule, clock_start } => {
            let schedule = schedule.as_deref().map(schedule::load).transpose()?;
            serve(&db.db, bind, tokens, public_read, schedule.map(|it| (it, clock_start)))
        }
        Command::Copy { from, to, study } => print(copy_studies(&from, &to, study.as_deref())?),
        Command::Check { db } if db::postgres_url(&db.db).is_some() => {
            let problems = match open_existing_writable(&db.db)? {
                db::Database::Postgres(storage) => storage.check()?,
                db::Database::Sqlite(storage) => storage.check()?,
            };
            if problems.is_empty() {
                print(format!("{}: ok", db::shown(&db.db)))
            } else {
                print(problems.join("\n"))?;
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Check { db } => {
            must_exist(&db.db)?;
            let problems =
                SqliteStorage::check_file(&db.db).map_err(|err| explain_open_error(&db.db, err))?;
            if problems.is_empty() {
                print(format!("{}: ok", db.db.display()))
            } else {
                let damaged = problems.iter().any(|it| it.starts_with("integrity:"));
                print(problems.join("\n"))?;
                if damaged {
                    print(format!("the file is damaged; {}", recovery(&db.db.display())))?;
                }
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Ls { db } => print(inspect::ls(&*open_existing(&db.db)?)?),
        Command::Show { study, trial: Some(trial), log: true, db } => {
            let storage = open_existing(&db.db)?;
            inspect::find(&*storage, &study)?;
            let dir = hpo_command::trial_dir(&db::trials_root(&db.db), &study, trial);
            print(hpo_command::logs(&dir).ok_or_else(|| {
                anyhow::anyhow!(
                    "trial {trial} of `{study}` kept no output ({} does not exist): only command trials keep their program's output",
                    dir.display()
                )
            })?)
        }
        Command::Show { study, trial, db, .. } => {
            print(inspect::show(&*open_existing(&db.db)?, &study, trial)?)
        }
        Command::ExportModel { study, trial, format, out, db } => {
            let storage = open_existing(&db.db)?;
            print(export_model::export_model(&*storage, &db.db, &study, trial, format, &out)?)
        }
        Command::Export { study, format, curves, flat, out, db } => {
            let storage = open_existing(&db.db)?;
            let text = match format {
                ExportFormat::Csv if flat => {
                    return Err(usage("--flat applies to JSON; CSV is already one row per trial"));
                }
                ExportFormat::Csv => inspect::export_csv(&*storage, &study, curves)?,
                ExportFormat::Json if curves => {
                    return Err(usage(
                        "--curves applies to CSV; the JSON export always includes the curves",
                    ));
                }
                ExportFormat::Json if flat => inspect::export_json_flat(&*storage, &study)?,
                ExportFormat::Json => inspect::export_json(&*storage, &study)?,
            };
            match out {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(text.as_bytes())?;
                    stdout.flush()?;
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Command::Bench {
            which: BenchCommand::Overhead { trials, objective: OverheadObjective::Command, .. },
        } => print(bench::overhead_command(&trials)?),
        Command::Bench { which: BenchCommand::Overhead { trials, workers, db, .. } } => {
            if workers.is_empty() {
                print(bench::overhead(&trials)?)
            } else {
                print(bench::overhead_processes(&trials, &workers, db.as_deref())?)
            }
        }
        Command::Bench {
            which: BenchCommand::Serve { trials, clients, samplers, scrape_studies, scrape_trials },
        } => print(bench_serve::serve(&trials, clients, &samplers, scrape_studies, scrape_trials)?),
        Command::Bench { which: BenchCommand::PrunerSteps { trials, steps, measured } } => {
            print(bench::pruner_steps(&trials, steps, measured)?)
        }
        Command::Bench {
            which: BenchCommand::Train { device, workload, batch, steps, precision, json },
        } => print(bench::train(&device, &workload, batch, steps, &precision, json)?),
        Command::Ask { study, db } => print(external::ask(&study, &db.db)?),
        Command::Tell { study, trial, value, state, db } => {
            let outcome = match (value, state) {
                (Some(value), _) => Outcome::Complete(value),
                (None, Some(TellState::Pruned)) => Outcome::Pruned,
                (None, _) => Outcome::Fail,
            };
            print(external::tell(&study, &db.db, trial, outcome)?)
        }
        Command::ReportStep { study, trial, step, value, db } => {
            print(external::report_step(&study, &db.db, trial, step, value)?)
        }
        Command::Bench {
            which:
                BenchCommand::Pruning { studies, seeds, first_seed, pruners, jobs, runs, start_within },
        } => print(bench::pruning(&bench::PruningBench {
            studies: studies.iter().map(PathBuf::from).collect(),
            seeds: first_seed..first_seed + seeds,
            pruners,
            jobs,
            runs,
            start_within,
        })?),
        Command::Bench {
            which:
                BenchCommand::Samplers {
                    samplers,
                    functions,
                    seeds,
                    first_seed,
                    trials,
                    jobs,
                    json,
                    cost,
                },
        } => {
            if cost.is_empty() {
                print(bench::samplers(
                    &samplers, &functions, seeds, first_seed, trials, jobs, json,
                )?)
            } else {
                print(bench::sampler_cost(&samplers, &cost)?)
            }
        }
    }
}

fn print(text: String) -> Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Opens a database that must exist for a command that only reads it: read
/// commands never create a database, and never change a byte of an SQLite one (any
/// database in Optuna's schema, writable or not).
fn open_existing(path: &Path) -> Result<db::Database> {
    db::open_readable(path)
}

/// Opens a database that must exist, for a command that writes into it.
fn open_existing_writable(path: &Path) -> Result<db::Database> {
    db::open_writable(path, false, true)
}

fn must_exist(path: &Path) -> Result<()> {
    if !path.exists() {
        return Err(usage(format!(
            "no database at {}; run a study first (`hpo run STUDY.toml`), or point --db (or HPO_DB) at one",
            path.display()
        )));
    }
    Ok(())
}

/// Adds what to do to an error that stopped a run: a failed write (full disk, size
/// limit) leaves the database consistent, and the next run resumes.
pub fn explain_run_error(db: &Path, err: hpo_core::Error) -> anyhow::Error {
    if hpo_store::is_write_failure(&err) {
        anyhow::Error::new(err).context(format!(
            "cannot write to the database {} (is the disk full?); what it holds is intact: free space, then run the same command to resume (the trial cut short is marked failed and run again)",
            db::shown(db)
        ))
    } else {
        anyhow::Error::new(err)
    }
}

/// Says what is wrong with a database file and what to do, in the user's words.
pub fn explain_open_error(path: &Path, err: hpo_store::Error) -> anyhow::Error {
    let path = path.display();
    if err.is_not_a_database() {
        anyhow::anyhow!(
            "{path} is not an SQLite database (hpo and Optuna write SQLite); point --db (or HPO_DB) at a study database, or at a new path to create one; the file was not changed"
        )
    } else if matches!(err, hpo_store::Error::Damaged { .. }) {
        anyhow::anyhow!(
            "database {path}: {err}. `hpo check --db {path}` lists the damage; {}",
            recovery(&path)
        )
    } else if err.is_read_only() {
        anyhow::anyhow!(
            "database {path} is read-only, and this command records trials in it; make the file and its folder writable, or copy it and point --db at the copy"
        )
    } else {
        anyhow::Error::new(err).context(format!("cannot open database {path}"))
    }
}

/// `hpo serve`: opens (or creates) the database and serves it until Ctrl-C or
/// SIGTERM.
/// Connections `hpo serve` reads through besides the one it writes through.
const SERVE_READERS: usize = 2;

/// How often a run's or the server's SQLite write-ahead log is moved into the
/// database file, by a thread of its own.
pub(crate) const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

fn serve(
    db: &Path,
    bind: std::net::SocketAddr,
    tokens: Option<PathBuf>,
    public_read: bool,
    schedule: Option<(Vec<schedule::ScheduledNight>, Option<jiff::Timestamp>)>,
) -> Result<ExitCode> {
    let tokens = match tokens {
        Some(path) => {
            Some(hpo_server::auth::Tokens::from_file(&path).map_err(|err| usage(err.to_string()))?)
        }
        None => None,
    };
    let (storage, _checkpoints): (std::sync::Arc<dyn hpo_core::storage::Storage>, _) =
        if db::postgres_url(db).is_some() {
            (db::open_writable(db, true, true)?.into_shared(), None)
        } else {
            if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let storage = SqliteStorage::open(db)
                .and_then(|it| it.with_readers(SERVE_READERS))
                .map_err(|err| explain_open_error(db, err))?;
            let storage = std::sync::Arc::new(storage);
            // Requests seldom wait for the log to be moved into the database file.
            let checkpoints = storage.checkpoint_in_background(CHECKPOINT_EVERY)?;
            (storage, Some(checkpoints))
        };
    let access = match (&tokens, public_read) {
        (None, _) => "no tokens file: loopback only, every request may read and write",
        (Some(_), true) => "tokens: write endpoints need a write token; reads are public",
        (Some(_), false) => "tokens: reads need a read or write token, writes a write token",
    };
    let config = hpo_server::ServeConfig {
        bind,
        tokens,
        public_read,
        body_limit: hpo_server::DEFAULT_BODY_LIMIT,
        trials_root: Some(db::trials_root(db)),
        scheduled: hpo_server::metrics::ScheduledNights::default(),
    };
    let scheduled = std::sync::Arc::clone(&config.scheduled);
    let shown = db::shown(db);
    let mut started = Ok(());
    let outcome = hpo_server::serve(storage, config, |addr| {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("hpo serve: http://{addr}/api/v1 over {shown} ({access}); Ctrl-C stops");
        }
        // The scheduler starts once the service answers (its log comes after the
        // line above, which tells the address).
        if let Some((nights, clock_start)) = schedule {
            let clock = schedule::Clock::starting_at(clock_start);
            started = schedule::start(nights, clock, db.to_path_buf(), scheduled);
        }
    });
    started?;
    match outcome {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(err @ hpo_server::ServeError::OpenWithoutTokens(_)) => Err(usage(err.to_string())),
        Err(err) => Err(err.into()),
    }
}

/// What to do about a damaged database file.
fn recovery(path: &dyn std::fmt::Display) -> String {
    format!(
        "restore it from a backup, or recover what SQLite can still read with `sqlite3 {path} .recover | sqlite3 recovered.sqlite` and point --db at recovered.sqlite"
    )
}

/// Reads and parses a study file. A file that is not UTF-8 text is a study-file
/// error (exit 2) at the line and column of its first byte that is not.
pub fn read_study_file(path: &Path) -> Result<StudySpec> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read study file {}", path.display()))?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            let good = &err.as_bytes()[..err.utf8_error().valid_up_to()];
            let good = std::str::from_utf8(good).unwrap_or_default();
            let line = good.matches('\n').count() + 1;
            let column = good.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
            return Err(hpo_core::spec::SpecError {
                path: path.display().to_string(),
                line,
                column,
                field: "the file".to_owned(),
                message: format!(
                    "byte {} is not UTF-8 text; a study file is TOML, which is UTF-8: save it as UTF-8",
                    good.len()
                ),
            }
            .into());
        }
    };
    Ok(StudySpec::parse(&text, &path.display().to_string())?)
}

/// The objective of `spec`, read from the study file at `path`: dataset paths and
/// a command's folder resolve against the file's folder, and a command's trial
/// folders go beside the database `db`.
fn objective_for(spec: &StudySpec, path: &Path, db: &Path) -> Result<Box<dyn Objective>> {
    let base_dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let objective: Box<dyn Objective> = match &spec.objective {
        hpo_core::spec::ObjectiveSpec::Command(_) => {
            let exe = std::env::current_exe().context("cannot find the hpo binary")?;
            let base_dir = std::path::absolute(base_dir)?;
            let root = std::path::absolute(db::trials_root(db))?;
            Box::new(hpo_command::CommandObjective::new(spec, &base_dir, &root, &exe)?)
        }
        hpo_core::spec::ObjectiveSpec::Training(training) => {
            let teacher = match &training.teacher {
                Some(name) => match open_existing(db) {
                    Ok(storage) => Some(export_model::teacher(&*storage, db, name)?),
                    Err(_) => return Err(export_model::no_teacher(db, name)),
                },
                None => None,
            };
            hpo_train::build_objective(spec, base_dir, teacher.as_ref())?
        }
        _ => hpo_train::build_objective(spec, base_dir, None)?,
    };
    Ok(objective)
}

/// `hpo copy`: every study of `from` (or `study` alone) into `to`, each in one
/// transaction, after checking that `to` has none of them.
fn copy_studies(from: &Path, to: &Path, study: Option<&str>) -> Result<String> {
    if db::shown(from) == db::shown(to) {
        return Err(usage("FROM and TO are the same database; give two"));
    }
    let source = open_existing(from)?;
    let names: Vec<String> = match study {
        Some(name) => {
            inspect::find(&*source, name)?;
            vec![name.to_owned()]
        }
        None => source.list_studies()?.into_iter().map(|it| it.study.name).collect(),
    };
    if names.is_empty() {
        return Err(usage(format!("{} has no study to copy", db::shown(from))));
    }
    let target = db::open_writable(to, true, true)?;
    let taken: Vec<&String> =
        names.iter().filter(|name| matches!(target.find_study(name), Ok(Some(_)))).collect();
    if !taken.is_empty() {
        let list = taken.iter().map(|it| format!("`{it}`")).collect::<Vec<_>>().join(", ");
        return Err(usage(format!(
            "{} already has {list}; nothing was copied (hpo copy never overwrites a study: copy into another database, or --study one it lacks)",
            db::shown(to)
        )));
    }
    let mut lines = Vec::new();
    for name in &names {
        let copy = hpo_core::storage::StudyCopy::read(&*source, name)?
            .with_context(|| format!("study `{name}` vanished from {}", db::shown(from)))?;
        if copy.study.directions.len() > 1 {
            return Err(usage(format!(
                "study `{name}` has {} objectives; hpo keeps one value per trial, so it cannot copy it whole",
                copy.study.directions.len()
            )));
        }
        target.import_study(&copy)?;
        lines.push(format!("copied study `{name}` ({} trials)", copy.trials.len()));
    }
    target.checkpoint();
    lines.push(format!("from {} to {}", db::shown(from), db::shown(to)));
    Ok(lines.join("\n"))
}

fn run_study(
    path: &Path,
    db: &Path,
    config: RunConfig,
    liveness: host::Liveness,
) -> Result<ExitCode> {
    // Ctrl-C is caught from before the objective loads its data (seconds for a large
    // dataset), so one pressed meanwhile ends the run before its first trial.
    let spec = read_study_file(path)?;
    let host = host::CliHost::with_ctrl_c(&spec.metric, &spec.metrics, liveness)?
        .with_trial_folders(std::path::absolute(db::trials_root(db))?);
    let objective = objective_for(&spec, path, db)?;
    let storage = db::open_writable(db, true, true)?;
    let checkpoints = storage.checkpoint_in_background(CHECKPOINT_EVERY)?;
    let summary = host.with_heartbeats(&*storage, || {
        hpo_core::run::run_study(&*storage, &spec, objective.as_ref(), &host, config)
    });
    host.finish();
    drop(checkpoints);
    // However the run ended (a full disk included), the log goes into the database
    // file, so the space it held is free for the next run.
    storage.checkpoint();
    let summary = summary.map_err(|err| explain_run_error(db, err))?;
    export_model::keep_best_models(&*storage, &summary.study, &spec, db)?;
    let end = match summary.end {
        RunEnd::BudgetMet => "budget met",
        RunEnd::TimedOut => "timeout reached",
        RunEnd::Interrupted => "interrupted",
    };
    let mut text = format!(
        "study `{}`: {end}; {} trial(s) finished in this run; database {}",
        spec.name,
        summary.n_finished,
        db::shown(db)
    );
    if spec.metrics.len() > 1 {
        let trials =
            storage.trials(summary.study.id, Some(&[hpo_core::trial::TrialState::Complete]))?;
        text.push_str(&inspect::pareto_front(&summary.study, &trials));
    } else if let Some(best) = &summary.best {
        text.push_str(&format!(
            "\nbest: trial {} {}={}  {}",
            best.number,
            spec.metric,
            best.value.map_or("-".into(), format::value),
            format::params(&best.params)
        ));
    }
    let n_failed: usize = summary.failures.values().sum();
    if n_failed > 0 {
        let mut reasons: Vec<(&String, &usize)> = summary.failures.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        text.push_str(&format!("\n{n_failed} of {} trial(s) failed:", summary.n_finished));
        for (reason, count) in reasons {
            // A reason may carry the program's last lines of stderr: indent them under it.
            text.push_str(&format!("\n  {count} x {}", reason.replace('\n', "\n      ")));
        }
    }
    text.push_str(&format!("\nnext: hpo show {} --db {}", spec.name, db::shown(db)));
    let all_failed =
        summary.end != RunEnd::Interrupted && n_failed > 0 && n_failed == summary.n_finished;
    if all_failed {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("{text}");
            eprintln!(
                "error: every trial of this run failed; fix the cause above (the study file, the data or the objective) and run again"
            );
        }
        return Ok(ExitCode::FAILURE);
    }
    print(text)?;
    Ok(if summary.end == RunEnd::Interrupted { ExitCode::from(130) } else { ExitCode::SUCCESS })
}

#[cfg(test)]
mod tests {
    use std::any::TypeId;

    use clap::CommandFactory;

    use super::*;

    /// Every subcommand, with its path from `hpo`.
    fn commands() -> Vec<(String, clap::Command)> {
        fn walk(prefix: &str, command: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
            let name = format!("{prefix} {}", command.get_name());
            out.push((name.trim().to_owned(), command.clone()));
            for sub in command.get_subcommands() {
                walk(&name, sub, out);
            }
        }
        let mut out = Vec::new();
        walk("", &Cli::command(), &mut out);
        out
    }

    #[test]
    fn every_argument_and_command_has_a_description() {
        Cli::command().debug_assert();
        for (path, command) in commands() {
            assert!(command.get_about().is_some(), "`{path}` has no description");
            for arg in command.get_arguments() {
                if ["help", "version"].contains(&arg.get_id().as_str()) {
                    continue;
                }
                assert!(arg.get_help().is_some(), "`{path} --{}` has no description", arg.get_id());
                let values = if arg.get_action().takes_values() {
                    arg.get_possible_values()
                } else {
                    vec![]
                };
                for value in values {
                    assert!(
                        value.get_help().is_some(),
                        "`{path} --{} {}` has no description",
                        arg.get_id(),
                        value.get_name()
                    );
                }
            }
        }
    }

    #[test]
    fn every_numeric_flag_takes_negative_numbers_in_any_notation() {
        // The value reaches the flag's own parser (which may refuse it with its
        // range), never clap's "unexpected argument".
        let mut n_numeric = 0;
        for (path, command) in commands() {
            for arg in command.get_arguments().filter(|a| a.get_long().is_some()) {
                let Some(long) = arg.get_long() else { continue };
                let parses = arg.get_value_parser().type_id();
                let numeric = [
                    TypeId::of::<u64>(),
                    TypeId::of::<usize>(),
                    TypeId::of::<f64>(),
                    TypeId::of::<std::time::Duration>(),
                ];
                if !numeric.iter().any(|id| parses == *id) {
                    continue;
                }
                n_numeric += 1;
                for value in ["-3.14e-05", "-3", "-1E+3"] {
                    let mut args: Vec<String> = path.split(' ').map(str::to_owned).collect();
                    args.push(format!("--{long}"));
                    args.push(value.to_owned());
                    let err = match Cli::try_parse_from(&args) {
                        Ok(_) => continue,
                        Err(err) => err,
                    };
                    assert_ne!(
                        err.kind(),
                        clap::error::ErrorKind::UnknownArgument,
                        "{args:?}: {err}"
                    );
                }
            }
        }
        assert!(n_numeric >= 20, "{n_numeric} numeric flags");
        let Cli { command: Command::Tell { value, .. } } =
            Cli::try_parse_from(["hpo", "tell", "s.toml", "--trial", "1", "--value", "-3.14e-05"])
                .unwrap()
        else {
            panic!("not tell")
        };
        assert_eq!(value, Some(-3.14e-05));
    }

    /// One rule for counts and durations: zero runs nothing, so it is refused.
    #[test]
    fn zero_trials_and_zero_timeouts_are_refused() {
        for args in [
            ["hpo", "run", "s.toml", "--trials", "0"],
            ["hpo", "run", "s.toml", "--timeout", "0"],
            ["hpo", "run", "s.toml", "--timeout", "0s"],
        ] {
            let err = Cli::try_parse_from(args).err().unwrap_or_else(|| panic!("{args:?} parsed"));
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{args:?}: {err}");
        }
        // Steps are what Optuna stores: 0 to i64::MAX, never wrapped to negatives.
        for step in ["18446744073709551615", "9223372036854775808", "-1"] {
            let args =
                ["hpo", "report-step", "s.toml", "--trial", "0", "--step", step, "--value", "1"];
            let err =
                Cli::try_parse_from(args).err().unwrap_or_else(|| panic!("step {step} parsed"));
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{step}: {err}");
        }
        let top = [
            "hpo",
            "report-step",
            "s.toml",
            "--trial",
            "0",
            "--step",
            "9223372036854775807",
            "--value",
            "1",
        ];
        assert!(Cli::try_parse_from(top).is_ok());
        let ok = Cli::try_parse_from(["hpo", "bench", "pruning", "--start-within", "0"]);
        assert!(ok.is_ok(), "--start-within 0 still means: start no run");
    }

    #[test]
    fn worker_help_names_worker_and_top_level_help_lists_exit_codes() {
        let mut command = Cli::command();
        let help = command.render_help().to_string();
        assert!(help.contains("Exit codes:") && help.contains("130"), "{help}");
        let worker = command.find_subcommand_mut("worker").unwrap();
        let usage = worker.render_usage().to_string();
        assert!(usage.contains("worker"), "{usage}");
    }
}
