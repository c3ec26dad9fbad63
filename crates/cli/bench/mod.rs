//! `hpo bench`: benchmarks that print their numbers, one module per benchmark
//! (`overhead`, `pruner_steps`, `train`, `samplers`, `pruning`, `report`); shared
//! here: the child `hpo run` they time, its peak memory, a quiet host, a stopwatch.

mod overhead;
mod pruner_steps;
mod pruning;
mod report;
mod samplers;
mod train;

pub use overhead::{overhead, overhead_command, overhead_processes};
pub use pruner_steps::pruner_steps;
pub use pruning::{PruningBench, pruning};
pub use report::{report, write_synthetic_study};
pub use samplers::{sampler_cost, samplers};
pub use train::train;

use std::time::Instant;

use anyhow::{Context, Result, bail};

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

/// Seconds since it was made, on the monotonic clock: what hpo-core's benchmarks
/// time proposals with.
fn stopwatch() -> impl Fn() -> f64 + Sync {
    let origin = Instant::now();
    move || origin.elapsed().as_secs_f64()
}
