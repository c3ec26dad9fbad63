//! The watchdog: what ends a run's trial programs when hpo itself dies.
//!
//! hpo starts each trial's program in a process group of its own and ends that
//! group itself — SIGTERM, a grace period, SIGKILL — when the trial stops, and
//! SIGKILL when the program exits (whatever it forked and left running). Only a
//! `kill -9` of hpo would leave the groups running; so the first command trial of
//! a run starts one `hpo watchdog` process, tells it each group as it starts
//! (`+PGID GRACE_MS`) and ends (`-PGID`) over its standard input, and when that
//! pipe closes — hpo exited or died, the kernel closes it either way — the
//! watchdog ends the groups still told: no orphan keeps a GPU busy. One process
//! per run, not per trial, so a trial costs no process start beyond its program's.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Sends `signal` to process group `group` (nothing when it has ended).
pub(crate) fn signal_group(group: u32, signal: Signal) {
    if let Ok(group) = i32::try_from(group) {
        let _ = killpg(Pid::from_raw(group), signal);
    }
}

/// Whether process group `group` still has a process in it.
fn alive(group: i32) -> bool {
    killpg(Pid::from_raw(group), None).is_ok()
}

/// `hpo watchdog`: reads `+PGID GRACE_MS` and `-PGID` lines from standard input
/// until it closes, then ends the groups still told (SIGTERM, the longest of their
/// grace periods or until they are gone, SIGKILL). Returns the exit code.
pub fn watch() -> i32 {
    // Ctrl-C and SIGTERM reach hpo's whole process group, this process included:
    // hpo stops its trials itself, and this process stays until hpo is gone.
    let _ = ctrlc::set_handler(|| {});
    let mut groups: HashMap<i32, Duration> = HashMap::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some(group), grace) if group.starts_with('+') => {
                if let Ok(group) = group[1..].parse::<i32>() {
                    let grace = grace.and_then(|g| g.parse().ok()).unwrap_or(10_000);
                    groups.insert(group, Duration::from_millis(grace));
                }
            }
            (Some(group), _) if group.starts_with('-') => {
                if let Ok(group) = group[1..].parse::<i32>() {
                    groups.remove(&group);
                }
            }
            _ => {}
        }
    }
    if groups.is_empty() {
        return 0;
    }
    for group in groups.keys() {
        let _ = killpg(Pid::from_raw(*group), Signal::SIGTERM);
    }
    let deadline = Instant::now() + groups.values().copied().max().unwrap_or_default();
    while Instant::now() < deadline && groups.keys().any(|group| alive(*group)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for group in groups.keys() {
        let _ = killpg(Pid::from_raw(*group), Signal::SIGKILL);
    }
    0
}

/// hpo's side of a watchdog process.
pub(crate) struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Watchdog {
    /// Starts `hpo watchdog` (`hpo` is the hpo binary).
    pub(crate) fn start(hpo: &Path) -> std::io::Result<Watchdog> {
        let mut child = Command::new(hpo)
            .arg("watchdog")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take();
        Ok(Watchdog { child, stdin })
    }

    /// Tells the watchdog that group `group` runs, to be ended with `grace`.
    pub(crate) fn watch(&mut self, group: u32, grace: Duration) -> std::io::Result<()> {
        let stdin = self.stdin.as_mut().ok_or(std::io::ErrorKind::BrokenPipe)?;
        writeln!(stdin, "+{group} {}", grace.as_millis())
    }

    /// Tells the watchdog that group `group` has ended.
    pub(crate) fn forget(&mut self, group: u32) {
        if let Some(stdin) = &mut self.stdin {
            let _ = writeln!(stdin, "-{group}");
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.wait();
    }
}
