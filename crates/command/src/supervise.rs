//! `hpo supervise`: the process between hpo and a trial's program. It starts the
//! program in a process group of its own and ends that whole group — the program
//! and anything it forked — when the program exits, when hpo closes the
//! supervisor's standard input (a trial to stop), when hpo dies (the kernel closes
//! that pipe: no orphan keeps a GPU busy), or on SIGINT or SIGTERM. Ending a group
//! is SIGTERM, a grace period, then SIGKILL. Its exit code is the program's, or
//! 128 + the signal that killed it.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Exit code when the program cannot be started (as a shell says it).
pub const CANNOT_START: i32 = 127;

/// Sends `signal` (`TERM`, `KILL`) to process group `group`.
fn signal_group(group: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([format!("-{signal}"), "--".to_owned(), format!("-{group}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn code(status: ExitStatus) -> i32 {
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Runs `argv` as described in the module docs; returns the exit code to exit with.
pub fn supervise(argv: &[String], grace: Duration) -> i32 {
    let Some((program, args)) = argv.split_first() else {
        eprintln_safe("hpo supervise: no program to run");
        return CANNOT_START;
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        // SIGINT (Ctrl-C reaches hpo and this process, not the program's group)
        // and SIGTERM end the group.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            stop.store(true, Ordering::SeqCst);
        });
    }
    let mut child =
        match Command::new(program).args(args).process_group(0).stdin(Stdio::null()).spawn() {
            Ok(child) => child,
            Err(err) => {
                eprintln_safe(&format!("hpo: cannot start `{program}`: {err}"));
                return CANNOT_START;
            }
        };
    let group = child.id();
    // The program's end is waited for on a thread of its own, so it is seen at once;
    // a stop is seen within a few milliseconds.
    let (exited, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = exited.send(child.wait());
    });
    let code_of = |status: std::io::Result<ExitStatus>| status.map_or(CANNOT_START, code);
    loop {
        match ended.recv_timeout(Duration::from_millis(5)) {
            Ok(status) => {
                // Whatever the program forked and left running ends with it.
                signal_group(group, "KILL");
                return code_of(status);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return CANNOT_START,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if stop.load(Ordering::SeqCst) {
            signal_group(group, "TERM");
            let status = ended.recv_timeout(grace).ok();
            signal_group(group, "KILL");
            let status = status.or_else(|| ended.recv().ok());
            return status.map_or(128 + 9, code_of);
        }
    }
}

/// Writes `message` to stderr, ignoring a closed stream.
fn eprintln_safe(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{message}");
}
