//! hpo-command: `[objective] kind = "command"` — a program the user already has
//! (PyTorch, JAX, a shell pipeline) as a trial's training.
//!
//! Each trial runs the study file's command, placeholders filled, in a process
//! group of its own: a trial that stops ends the whole group (SIGTERM, the grace
//! period, SIGKILL), a program that exits takes what it forked with it, and a
//! run's [`watchdog`] process ends the groups if hpo itself dies. The program
//! reports metrics a step per line ([`metrics`]); each step goes to the study
//! loop's reporter (curves, pruning, early stopping) exactly as a candle trial's
//! epochs do. Its standard output and error are kept in the trial's folder
//! (`stdout.log`, `stderr.log`, the first [`LOG_CAP`] bytes of each).
//!
//! - `metrics` — parsing the metric lines;
//! - `watchdog` — the process that outlives hpo to end its trials' groups.
#![forbid(unsafe_code)]

pub mod metrics;
pub mod watchdog;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::ops::ControlFlow;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use hpo_core::distribution::ParamValue;
use hpo_core::objective::{Objective, ObjectiveOutput, Reporter, TrialContext, TrialFailure};
use hpo_core::spec::command::{CommandSpec, MetricsFormat, MetricsSource, fill};
use hpo_core::spec::{ObjectiveSpec, SpecError, StudySpec};
use watchdog::{Watchdog, signal_group};

/// The most bytes of a trial's stdout or stderr kept in its log.
pub const LOG_CAP: usize = 1 << 20;

/// Lines of stderr told as a failed trial's reason.
const REASON_LINES: usize = 8;

/// The folder of trial `number` of `study`, under `root` (the database's
/// `<name>-trials` folder).
pub fn trial_dir(root: &Path, study: &str, number: u64) -> PathBuf {
    study_dir(root, study).join(number.to_string())
}

/// The folder of every trial folder of `study`, under `root`.
pub fn study_dir(root: &Path, study: &str) -> PathBuf {
    root.join(study.replace(['/', '\\'], "_"))
}

/// Where the trials of the studies of database `db` keep their folders:
/// `db/hpo.sqlite` → `db/hpo-trials/`.
pub fn trials_root(db: &Path) -> PathBuf {
    let stem = db.file_stem().map_or_else(|| "hpo".into(), |s| s.to_string_lossy().into_owned());
    db.with_file_name(format!("{stem}-trials"))
}

/// A trial's kept output (`stdout.log`, then `stderr.log`, each under a heading),
/// or `None` when its folder does not exist.
pub fn logs(dir: &Path) -> Option<String> {
    if !dir.is_dir() {
        return None;
    }
    let mut out = String::new();
    for name in ["stdout.log", "stderr.log"] {
        let text = std::fs::read(dir.join(name)).unwrap_or_default();
        out.push_str(&format!("==> {} <==\n", dir.join(name).display()));
        out.push_str(&String::from_utf8_lossy(&text));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Some(out)
}

/// A command study's objective.
pub struct CommandObjective {
    spec: CommandSpec,
    study: String,
    base_dir: PathBuf,
    trials_root: PathBuf,
    hpo: PathBuf,
    watchdog: Mutex<Option<Watchdog>>,
}

impl CommandObjective {
    /// The objective of study file `spec` (a `kind = "command"` one) that lives in
    /// `base_dir`; trial folders go under `trials_root`; `hpo` is the hpo binary
    /// (its `hpo watchdog` guards the trials' process groups). Device names other
    /// than `cpu` and `cuda:N` are refused, at the place the file wrote them.
    pub fn new(
        spec: &StudySpec,
        base_dir: &Path,
        trials_root: &Path,
        hpo: &Path,
    ) -> Result<CommandObjective, SpecError> {
        let ObjectiveSpec::Command(command) = &spec.objective else {
            return Err(spec.error_at("objective.kind", "this study's objective is not a command"));
        };
        for (i, name) in command.devices.devices.iter().enumerate() {
            let valid = name == "cpu"
                || name.strip_prefix("cuda:").is_some_and(|n| n.parse::<usize>().is_ok());
            if !valid {
                return Err(spec.error_at(
                    &command.devices.location(i),
                    format!("unknown device `{name}` for a command; valid: \"cpu\", \"cuda:N\" (its trials get CUDA_VISIBLE_DEVICES=N)"),
                ));
            }
        }
        Ok(CommandObjective {
            spec: command.clone(),
            study: spec.name.clone(),
            base_dir: base_dir.to_owned(),
            trials_root: trials_root.to_owned(),
            hpo: hpo.to_owned(),
            watchdog: Mutex::new(None),
        })
    }

    /// Tells the run's watchdog (started on first use) that `group` runs.
    fn watch(&self, group: u32) -> Result<(), String> {
        let mut watchdog = self.watchdog.lock().unwrap_or_else(|it| it.into_inner());
        if watchdog.is_none() {
            let started = Watchdog::start(&self.hpo)
                .map_err(|err| format!("cannot start `{} watchdog`: {err}", self.hpo.display()))?;
            *watchdog = Some(started);
        }
        let told = watchdog.as_mut().map(|it| it.watch(group, self.spec.grace));
        if let Some(Err(err)) = told {
            *watchdog = None;
            return Err(format!("hpo's watchdog process is gone: {err}"));
        }
        Ok(())
    }

    fn forget(&self, group: u32) {
        let mut watchdog = self.watchdog.lock().unwrap_or_else(|it| it.into_inner());
        if let Some(watchdog) = watchdog.as_mut() {
            watchdog.forget(group);
        }
    }
}

/// The first [`LOG_CAP`] bytes of a stream, written to a file as they come.
struct Log {
    file: Option<std::fs::File>,
    written: usize,
}

impl Log {
    fn create(path: &Path) -> Log {
        Log { file: std::fs::File::create(path).ok(), written: 0 }
    }

    fn write(&mut self, bytes: &[u8]) {
        let Some(file) = &mut self.file else { return };
        let room = LOG_CAP.saturating_sub(self.written);
        let _ = file.write_all(&bytes[..bytes.len().min(room)]);
        if bytes.len() > room && room > 0 {
            let _ = file.write_all(b"\n[hpo: the rest of this output is not kept]\n");
        }
        self.written += bytes.len();
    }
}

/// What a trial's threads send: a line of stdout, the end of stdout, the
/// program's exit.
enum Output {
    Line(String),
    Closed,
    Exited(std::io::Result<ExitStatus>),
}

fn failure(reason: impl Into<String>) -> TrialFailure {
    TrialFailure::new(reason)
}

/// Whether `stderr` tells that a device ran out of memory (PyTorch, JAX, candle).
fn out_of_memory(stderr: &str) -> bool {
    ["CUDA out of memory", "OutOfMemoryError", "RESOURCE_EXHAUSTED", "out of memory"]
        .iter()
        .any(|it| stderr.contains(it))
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "a signal",
    }
}

/// A running trial program's process group: ended (SIGKILL) and forgotten by the
/// watchdog on drop, however the trial ends.
struct Group<'a> {
    id: u32,
    objective: &'a CommandObjective,
}

impl Drop for Group<'_> {
    fn drop(&mut self) {
        signal_group(self.id, Signal::SIGKILL);
        self.objective.forget(self.id);
    }
}

/// Ends group `group` as a stopped trial's: SIGTERM, up to `grace` for the program
/// to exit (its lines are no longer read), then SIGKILL; the program's exit.
fn stop(group: &Group<'_>, grace: Duration, rx: &mpsc::Receiver<Output>) -> Option<ExitStatus> {
    signal_group(group.id, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    let mut exited = None;
    while exited.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Output::Exited(status)) => exited = Some(status.ok()),
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => return None,
        }
    }
    signal_group(group.id, Signal::SIGKILL);
    while exited.is_none() {
        match rx.recv() {
            Ok(Output::Exited(status)) => exited = Some(status.ok()),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    exited.flatten()
}

impl Objective for CommandObjective {
    fn run(
        &self,
        ctx: &TrialContext<'_>,
        reporter: &mut dyn Reporter,
    ) -> Result<ObjectiveOutput, TrialFailure> {
        let dir = trial_dir(&self.trials_root, &self.study, ctx.number);
        std::fs::create_dir_all(&dir)
            .map_err(|err| failure(format!("cannot create {}: {err}", dir.display())))?;
        let params: serde_json::Map<String, serde_json::Value> =
            ctx.params.iter().map(|(k, v)| (k.clone(), json_of(v))).collect();
        let params_json = serde_json::Value::Object(params).to_string();
        let _ = std::fs::write(dir.join("params.json"), &params_json);
        let dir_text = dir.display().to_string();
        let value = |name: &str| -> Option<String> {
            match name {
                "trial" => Some(ctx.number.to_string()),
                "trial_dir" => Some(dir_text.clone()),
                "seed" => Some(ctx.seed.to_string()),
                "study" => Some(self.study.clone()),
                param => ctx.params.get(param).map(text_of),
            }
        };
        let argv = self
            .spec
            .command
            .iter()
            .map(|arg| fill(arg, value))
            .collect::<Result<Vec<String>, String>>()
            .map_err(failure)?;
        let cwd = match &self.spec.cwd {
            Some(cwd) => self.base_dir.join(fill(cwd, value).map_err(failure)?),
            None => self.base_dir.clone(),
        };
        let (format, file) = match &self.spec.metrics {
            MetricsSource::Stdout(format) => (*format, None),
            MetricsSource::File { path, format } => {
                let path = PathBuf::from(fill(path, value).map_err(failure)?);
                (*format, Some((cwd.join(path), 0_u64)))
            }
        };
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .current_dir(&cwd)
            .process_group(0)
            .env("HPO_TRIAL", ctx.number.to_string())
            .env("HPO_STUDY", &self.study)
            .env("HPO_TRIAL_DIR", &dir)
            .env("HPO_PARAMS", &params_json)
            .env("HPO_SEED", ctx.seed.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(gpu) = ctx.device.and_then(|d| d.strip_prefix("cuda:")) {
            command.env("CUDA_VISIBLE_DEVICES", gpu);
        }
        for (key, text) in &self.spec.env {
            command.env(key, fill(text, value).map_err(failure)?);
        }
        let mut child = command.spawn().map_err(|err| {
            failure(format!("cannot start `{}` (in {}): {err}", argv[0], cwd.display()))
        })?;
        let group = Group { id: child.id(), objective: self };
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();

        let (tx, rx) = mpsc::channel::<Output>();
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = tx.send(Output::Exited(child.wait()));
            });
        }
        let mut stdout_log = Log::create(&dir.join("stdout.log"));
        std::thread::spawn(move || {
            each_line(stdout, &mut stdout_log, |line| {
                // Only short lines can be metric lines.
                line.len() > 64 * 1024
                    || tx.send(Output::Line(String::from_utf8_lossy(line).into_owned())).is_ok()
            });
            let _ = tx.send(Output::Closed);
        });
        let mut stderr_log = Log::create(&dir.join("stderr.log"));
        let (stderr_tx, stderr_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tail: VecDeque<String> = VecDeque::new();
            let mut oom = false;
            each_line(stderr, &mut stderr_log, |line| {
                let text = String::from_utf8_lossy(line);
                let text = text.trim_end();
                oom |= out_of_memory(text);
                if !text.trim().is_empty() {
                    tail.push_back(text.chars().take(300).collect());
                    if tail.len() > REASON_LINES {
                        tail.pop_front();
                    }
                }
                true
            });
            let _ = stderr_tx.send((tail.into_iter().collect::<Vec<_>>().join("\n"), oom));
        });
        self.watch(group.id).map_err(failure)?;

        let mut file = file;
        let started = Instant::now();
        let mut steps = 0_u64;
        let mut last: Vec<(String, f64)> = Vec::new();
        let mut stopped = false;
        let mut timed_out = false;
        let mut exited: Option<Option<ExitStatus>> = None;
        let mut closed = false;
        // After the program exits, the rest of its output is read for this long at
        // most (something outside its group may hold the pipe open).
        let mut drain_until: Option<Instant> = None;
        while !(closed && exited.is_some()) {
            if let Some((path, offset)) = &mut file {
                for line in read_new_lines(path, offset) {
                    if report_line(reporter, format, &line, &mut steps, &mut last).is_break() {
                        stopped = true;
                        break;
                    }
                }
            }
            if stopped {
                break;
            }
            if drain_until.is_some_and(|until| Instant::now() >= until) {
                break;
            }
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Output::Line(line)) => {
                    if file.is_none()
                        && report_line(reporter, format, &line, &mut steps, &mut last).is_break()
                    {
                        stopped = true;
                        break;
                    }
                }
                Ok(Output::Closed) => closed = true,
                Ok(Output::Exited(status)) => {
                    exited = Some(status.ok());
                    // Whatever the program forked and left running ends with it.
                    signal_group(group.id, Signal::SIGKILL);
                    drain_until = Some(Instant::now() + Duration::from_secs(2));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if exited.is_none() && self.spec.timeout.is_some_and(|t| started.elapsed() >= t) {
                timed_out = true;
                break;
            }
            if exited.is_none() && reporter.interrupted() {
                stop(&group, self.spec.grace, &rx);
                return Err(failure("interrupted (Ctrl-C)"));
            }
        }
        let status = match exited {
            Some(status) => status,
            None if stopped || timed_out => stop(&group, self.spec.grace, &rx),
            None => None,
        };
        drop(group);
        let (stderr_tail, oom) = stderr_rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default();
        // Lines written to the metrics file just before the program ended.
        if !stopped
            && !timed_out
            && let Some((path, offset)) = &mut file
        {
            for line in read_new_lines(path, offset) {
                if report_line(reporter, format, &line, &mut steps, &mut last).is_break() {
                    stopped = true;
                    break;
                }
            }
        }
        if stopped {
            return Ok(ObjectiveOutput::default());
        }
        if timed_out {
            let limit = self.spec.timeout.unwrap_or_default();
            return Err(failure(format!(
                "timed out after {} s (`timeout` in [objective]); it was stopped",
                limit.as_secs_f64()
            )));
        }
        let said = if stderr_tail.is_empty() { String::new() } else { format!(":\n{stderr_tail}") };
        let Some(status) = status else {
            return Err(failure(format!("the program's end could not be awaited{said}")));
        };
        match (status.code(), status.signal()) {
            (Some(0), _) => {}
            (_, Some(signal)) => {
                return Err(failure(format!(
                    "the program was killed by signal {signal} ({}){said}",
                    signal_name(signal)
                )));
            }
            (Some(127), _) => {
                return Err(failure(format!(
                    "the program exited with status 127: `{}` or a command it ran was not found{said}",
                    argv[0]
                )));
            }
            (Some(code), _) if oom => {
                return Err(TrialFailure::out_of_memory(format!(
                    "the program ran out of device memory (exit status {code}){said}"
                )));
            }
            (Some(code), _) => {
                return Err(failure(format!("the program exited with status {code}{said}")));
            }
            (None, None) => {
                return Err(failure(format!("the program ended without an exit status{said}")));
            }
        }
        if steps == 0 {
            let how = match (&self.spec.metrics, format) {
                (MetricsSource::File { path, .. }, _) => format!("to {path}"),
                (_, MetricsFormat::Json) => {
                    "as JSON lines on stdout (`{\"step\": 1, \"val_loss\": 0.3}`)".to_owned()
                }
                (_, MetricsFormat::KeyValue) => "as `name=value` lines on stdout".to_owned(),
            };
            return Err(failure(format!(
                "the program exited 0 without reporting a metric {how}; its output is in {}",
                dir.display()
            )));
        }
        let final_metrics =
            last.into_iter().filter(|(name, _)| name.starts_with("test_")).collect();
        Ok(ObjectiveOutput { final_metrics, ended_by: None })
    }

    fn device(&self, requested: Option<&str>) -> Option<String> {
        requested.filter(|d| *d != "auto").map(str::to_owned)
    }
}

/// Reads `stream` a line at a time, each line kept in `log` and handed to `f`,
/// until its end or until `f` returns false.
fn each_line(stream: Option<impl Read>, log: &mut Log, mut f: impl FnMut(&[u8]) -> bool) {
    let Some(stream) = stream else { return };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                log.write(&line);
                if !f(&line) {
                    return;
                }
            }
        }
    }
}

/// Reports the metrics of `line`, if it has any, at its step (or the one after the
/// last); `Break` when the trial must stop.
fn report_line(
    reporter: &mut dyn Reporter,
    format: MetricsFormat,
    line: &str,
    steps: &mut u64,
    last: &mut Vec<(String, f64)>,
) -> ControlFlow<()> {
    let Some(parsed) = metrics::parse(line, format) else {
        return ControlFlow::Continue(());
    };
    let step = parsed.step.unwrap_or(*steps + 1);
    *steps = step;
    last.clone_from(&parsed.metrics);
    reporter.report(step, &parsed.metrics).map_break(|_| ())
}

/// A parameter as the program's command line reads it: `0.01`, `relu`, `true`.
fn text_of(value: &ParamValue) -> String {
    match value {
        ParamValue::Null => "null".to_owned(),
        ParamValue::Bool(b) => b.to_string(),
        ParamValue::Int(i) => i.to_string(),
        ParamValue::Float(f) => f.to_string(),
        ParamValue::Str(s) => s.clone(),
    }
}

/// A parameter as JSON (`HPO_PARAMS`, `params.json`).
fn json_of(value: &ParamValue) -> serde_json::Value {
    match value {
        ParamValue::Null => serde_json::Value::Null,
        ParamValue::Bool(b) => (*b).into(),
        ParamValue::Int(i) => (*i).into(),
        ParamValue::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
        }
        ParamValue::Str(s) => s.clone().into(),
    }
}

/// The complete lines appended to `path` since `offset` (moved past them).
fn read_new_lines(path: &Path, offset: &mut u64) -> Vec<String> {
    use std::io::Seek;
    let Ok(mut file) = std::fs::File::open(path) else { return Vec::new() };
    if file.seek(std::io::SeekFrom::Start(*offset)).is_err() {
        return Vec::new();
    }
    let mut text = String::new();
    if file.take(16 << 20).read_to_string(&mut text).is_err() {
        return Vec::new();
    }
    let complete = text.rfind('\n').map_or(0, |at| at + 1);
    *offset += complete as u64;
    text[..complete].lines().map(str::to_owned).collect()
}
