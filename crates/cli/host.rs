//! The study loop's window on this process: clock, Ctrl-C, process liveness and
//! progress output (a bar on a terminal, plain lines otherwise).

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use hpo_core::run::{Event, Host};
use hpo_core::storage::Storage;
use hpo_core::trial::{AttrValue, FrozenTrial, Timestamp, TrialId, TrialState, attr};
use indicatif::{ProgressBar, ProgressStyle};

use crate::format;

/// How often, at most, the trials this process runs renew their heartbeat (besides
/// each reported epoch); a third of the grace when that is shorter.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// Who this process is to other workers, and when it takes theirs for dead.
pub struct Liveness {
    /// The host name in this process's trials (`None`: the machine's name).
    pub host_id: Option<String>,
    /// A Running trial of another host whose heartbeat is older than this is taken
    /// as abandoned (on this host a dead owner process is seen at once).
    pub grace: Duration,
}

impl Default for Liveness {
    fn default() -> Liveness {
        Liveness { host_id: None, grace: Duration::from_secs(60) }
    }
}

pub struct CliHost {
    started: Instant,
    interrupted: Arc<AtomicBool>,
    host: String,
    grace: Duration,
    owner: String,
    /// The metric shown at each step of a running trial (`StudySpec::metric`).
    step_metric: String,
    /// The study's objectives, shown with each finished trial.
    metrics: Vec<String>,
    progress: Mutex<Progress>,
    /// The trials this process's workers are running, whose heartbeats it renews.
    running: Mutex<BTreeSet<TrialId>>,
    /// Where trials keep their folders (the database's `-trials` folder), when
    /// the run keeps files of its trials.
    trial_folders: Option<std::path::PathBuf>,
}

enum Progress {
    Bar(ProgressBar),
    Lines,
}

impl CliHost {
    /// A host whose interruption flag Ctrl-C sets (a second Ctrl-C exits at once),
    /// showing `metric` in its progress.
    pub fn with_ctrl_c(
        step_metric: &str,
        metrics: &[String],
        liveness: Liveness,
    ) -> Result<CliHost> {
        let interrupted = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&interrupted);
        ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                // A second Ctrl-C: leave now. The running trial stays Running and the
                // next `hpo run` or `hpo confirm` marks it failed.
                std::process::exit(130);
            }
            #[allow(clippy::print_stderr)]
            {
                eprintln!("interrupting: ending the running trial (Ctrl-C again to quit at once)");
            }
        })
        .context("cannot install the Ctrl-C handler")?;
        Ok(CliHost::new(interrupted, step_metric, metrics, liveness))
    }

    fn new(
        interrupted: Arc<AtomicBool>,
        step_metric: &str,
        metrics: &[String],
        liveness: Liveness,
    ) -> CliHost {
        let progress = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} trials  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            Progress::Bar(bar)
        } else {
            Progress::Lines
        };
        let host = liveness.host_id.unwrap_or_else(hostname);
        CliHost {
            started: Instant::now(),
            interrupted,
            owner: process_identity(&host, std::process::id())
                .unwrap_or_else(|| format!("{host}:{}:0", std::process::id())),
            host,
            grace: liveness.grace,
            step_metric: step_metric.to_owned(),
            metrics: metrics.to_vec(),
            progress: Mutex::new(progress),
            running: Mutex::new(BTreeSet::new()),
            trial_folders: None,
        }
    }

    /// Runs `work` while a thread renews, every few seconds, the heartbeat of each
    /// trial this process is running, so other workers never take a live trial for a
    /// dead one, however long its epochs.
    pub fn with_heartbeats<T>(&self, storage: &dyn Storage, work: impl FnOnce() -> T) -> T {
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut last = Instant::now();
                while !done.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                    if last.elapsed() < HEARTBEAT_INTERVAL.min(self.grace / 3) {
                        continue;
                    }
                    last = Instant::now();
                    let running: Vec<TrialId> = self
                        .running
                        .lock()
                        .unwrap_or_else(|it| it.into_inner())
                        .iter()
                        .copied()
                        .collect();
                    for trial in running {
                        // A trial that just finished refuses the beat: nothing to do.
                        if let Err(err) = storage.record_heartbeat(trial) {
                            tracing::debug!("heartbeat of {trial:?} not recorded: {err}");
                        }
                    }
                }
            });
            // Stops the heartbeat thread however `work` ends: a panic unwinding
            // past it would otherwise leave the scope waiting for that thread, and
            // the process hanging, forever.
            let _stop = StopOnDrop(&done);
            work()
        })
    }

    /// Ends the progress display.
    pub fn finish(&self) {
        if let Progress::Bar(bar) = &*self.progress.lock().unwrap_or_else(|it| it.into_inner()) {
            bar.finish_and_clear();
        }
    }

    fn line(&self, text: String) {
        match &*self.progress.lock().unwrap_or_else(|it| it.into_inner()) {
            Progress::Bar(bar) => bar.println(text),
            #[allow(clippy::print_stderr)]
            Progress::Lines => eprintln!("{text}"),
        }
    }
}

impl CliHost {
    /// This host, giving each trial its folder under `root` (`Host::trial_folder`).
    pub fn with_trial_folders(self, root: std::path::PathBuf) -> CliHost {
        CliHost { trial_folders: Some(root), ..self }
    }
}

impl Host for CliHost {
    fn trial_folder(&self, study: &str, number: u64) -> Option<std::path::PathBuf> {
        Some(hpo_command::trial_dir(self.trial_folders.as_ref()?, study, number))
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    fn owner(&self) -> String {
        self.owner.clone()
    }

    fn is_orphaned(&self, trial: &FrozenTrial, last_heartbeat: Option<Timestamp>) -> bool {
        let owner = trial.system_attrs.get(attr::OWNER).and_then(AttrValue::as_str);
        if let Some((host, pid, start)) = owner.and_then(parse_owner)
            && host == self.host
        {
            // Same host: the process is alive iff its pid exists with the same
            // start time (pids are reused).
            return process_identity(&host, pid).as_deref()
                != Some(&format!("{host}:{pid}:{start}"));
        }
        let now =
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as i64;
        last_heartbeat
            .is_none_or(|beat| Duration::from_micros((now - beat.0).max(0) as u64) > self.grace)
    }

    fn event(&self, event: Event<'_>) {
        {
            let mut running = self.running.lock().unwrap_or_else(|it| it.into_inner());
            match &event {
                Event::Started { trial, .. } => {
                    running.insert(trial.id);
                }
                Event::Finished { trial, .. } => {
                    running.remove(&trial.id);
                }
                _ => {}
            }
        }
        match event {
            Event::Recovered { trial, queued_again } => self.line(format!(
                "trial {} was left running by a worker that stopped; marked failed{}",
                trial.number,
                match (queued_again, trial.system_attrs.contains_key(attr::GRID_POINT)) {
                    (true, true) => " and its grid point queued again",
                    (true, false) => " and queued again with the same parameters (max_retries)",
                    (false, _) => "",
                }
            )),
            Event::DeviceFitted { device, remaining, why } => self.line(format!(
                "{device}: {remaining} trial(s) at once ({why}; trials_per_device = \"auto\")"
            )),
            Event::DeviceShrunk { device, remaining } => self.line(format!(
                "{device} ran out of memory: {remaining} trial(s) at once there from now on (the trial is queued again)"
            )),
            Event::Started { trial, budget, n_counted } => {
                if let Progress::Bar(bar) =
                    &*self.progress.lock().unwrap_or_else(|it| it.into_inner())
                {
                    bar.set_length(budget.unwrap_or(0) as u64);
                    bar.set_position(n_counted.saturating_sub(1) as u64);
                    bar.set_message(format!("trial {} running", trial.number));
                }
            }
            Event::Step { number, step, value } => {
                if let Progress::Bar(bar) =
                    &*self.progress.lock().unwrap_or_else(|it| it.into_inner())
                {
                    bar.set_message(format!(
                        "trial {number} step {step} {}={}",
                        self.step_metric,
                        format::value(value)
                    ));
                }
            }
            Event::Finished { trial, best } => {
                let mut text = format!("trial {:>3} {:<8}", trial.number, trial.state.to_string());
                if let Some(original) = trial.confirm_of() {
                    text.push_str(&format!(" (confirms trial {original})"));
                }
                match trial.state {
                    TrialState::Complete => {
                        for (metric, value) in self.metrics.iter().zip(trial.objective_values()) {
                            text.push_str(&format!(" {metric}={}", format::value(*value)));
                        }
                    }
                    TrialState::Fail => {
                        text.push_str(&format!(
                            " ({})",
                            trial.fail_reason().unwrap_or("no reason recorded")
                        ));
                    }
                    _ => {}
                }
                // With several objectives there is no one best, but a front.
                if let Some(best) = best.filter(|_| self.metrics.len() == 1) {
                    text.push_str(&format!(
                        "  best={} (trial {})",
                        best.value.map_or("-".into(), format::value),
                        best.number
                    ));
                }
                if let Some(steps) = trial.intermediate_values.keys().last() {
                    text.push_str(&format!("  {} steps", steps));
                }
                if let Some(seconds) = trial.duration_seconds() {
                    text.push_str(&format!("  {seconds:.1}s"));
                }
                text.push_str(&format!("  {}", format::params(&trial.params)));
                self.line(text);
                if let Progress::Bar(bar) =
                    &*self.progress.lock().unwrap_or_else(|it| it.into_inner())
                {
                    bar.inc(1);
                }
            }
        }
    }
}

fn parse_owner(owner: &str) -> Option<(String, u32, u64)> {
    let mut parts = owner.rsplitn(3, ':');
    let start = parts.next()?.parse().ok()?;
    let pid = parts.next()?.parse().ok()?;
    Some((parts.next()?.to_owned(), pid, start))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|it| it.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// `host:pid:start` of a live process of this machine, named `host` (start = its
/// start time in clock ticks since boot, field 22 of /proc/PID/stat), or None when
/// no such process runs.
fn process_identity(host: &str, pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it follow ")".
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state); field 22 is at index 19. A zombie (Z) is dead.
    if fields.first() == Some(&"Z") {
        return None;
    }
    let start = fields.get(19)?;
    Some(format!("{host}:{pid}:{start}"))
}

/// Sets its flag when dropped, on a normal return and on a panic alike.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
