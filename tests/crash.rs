//! Nothing is lost when a run dies: kill -9, and Ctrl-C.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::util::{Dir, digits_study, trials};

/// Starts `hpo run` and returns once `n` trials have finished.
fn run_until(dir: &Dir, n: usize) -> Child {
    let mut child = dir
        .hpo(&["run", "study.toml"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("trial ") {
                let _ = tx.send(line);
            }
        }
    });
    for _ in 0..n {
        rx.recv_timeout(Duration::from_secs(120)).expect("a trial finishes");
    }
    child
}

fn states(export: &Value) -> Vec<(u64, String, Value)> {
    trials(export)
        .iter()
        .map(|t| {
            (
                t["number"].as_u64().unwrap(),
                t["state"].as_str().unwrap().to_owned(),
                t["value"].clone(),
            )
        })
        .collect()
}

#[test]
fn after_kill_9_the_next_run_fails_the_dead_trial_and_meets_the_budget() {
    let dir = Dir::new();
    dir.write("study.toml", &digits_study("crash", 8, 30));
    let mut child = run_until(&dir, 3);
    // Let the fourth trial get going, then kill without warning.
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();

    let before = states(&dir.export("crash", "db/hpo.sqlite"));
    let finished_before: Vec<_> = before.iter().filter(|t| t.1 == "COMPLETE").cloned().collect();
    assert!(finished_before.len() >= 3, "{before:?}");
    assert_eq!(
        before.iter().filter(|t| t.1 == "RUNNING").count(),
        1,
        "the killed trial is left running: {before:?}"
    );

    let out = dir.ok(&["run", "study.toml"]);
    assert!(out.contains("budget met"), "{out}");
    let export = dir.export("crash", "db/hpo.sqlite");
    let after = states(&export);
    // Finished trials are kept as they were.
    for trial in &finished_before {
        assert!(after.contains(trial), "{trial:?} lost or changed");
    }
    assert!(after.iter().all(|t| t.1 != "RUNNING"), "{after:?}");
    let killed: Vec<&Value> = trials(&export).iter().filter(|t| t["state"] == "FAIL").collect();
    assert_eq!(killed.len(), 1);
    assert_eq!(
        killed[0]["system_attrs"]["fail_reason"],
        "the worker running this trial stopped (killed or crashed)"
    );
    // The budget counts the trials that ran to their end: 8, numbered without gaps.
    assert_eq!(after.iter().filter(|t| t.1 == "COMPLETE").count(), 8);
    let numbers: Vec<u64> = after.iter().map(|t| t.0).collect();
    assert_eq!(numbers, (0..9).collect::<Vec<_>>());
}

#[test]
fn ctrl_c_fails_the_running_trial_exits_130_and_loses_nothing() {
    let dir = Dir::new();
    dir.write("study.toml", &digits_study("interrupt", 8, 30));
    let mut child = run_until(&dir, 2);
    std::thread::sleep(Duration::from_millis(300));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));

    let export = dir.export("interrupt", "db/hpo.sqlite");
    let all = trials(&export);
    assert!(all.iter().filter(|t| t["state"] == "COMPLETE").count() >= 2);
    assert!(all.iter().all(|t| t["state"] != "RUNNING"));
    let interrupted: Vec<&Value> = all.iter().filter(|t| t["state"] == "FAIL").collect();
    assert_eq!(interrupted.len(), 1, "{all:?}");
    assert_eq!(interrupted[0]["system_attrs"]["fail_reason"], "interrupted (Ctrl-C)");
    assert_eq!(interrupted[0]["system_attrs"]["hpo:interrupted"], true);

    // Resuming runs the rest of the budget.
    dir.ok(&["run", "study.toml"]);
    let export = dir.export("interrupt", "db/hpo.sqlite");
    assert_eq!(trials(&export).iter().filter(|t| t["state"] == "COMPLETE").count(), 8);
}
