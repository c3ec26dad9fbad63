//! Many workers on one SQLite file: threads and processes cooperate on one budget,
//! and killing workers at random loses nothing.

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::{Dir, assert_killed_trials_were_retried, kill_and_replace, trials};

/// A random study of a fast function objective reporting a 10-step curve.
fn study(name: &str, budget: usize) -> String {
    format!(
        "[study]\nname = \"{name}\"\nmetric = \"value\"\ndirection = \"minimize\"\nseed = 9\ntrials = {budget}\nworkers = 2\nmax_retries = 1\n\
         [sampler]\nkind = \"random\"\n[objective]\nkind = \"function\"\nfunction = \"branin\"\nmax_epochs = 10\n\
         [space]\nx0 = {{ float = [-5, 10] }}\nx1 = {{ float = [0, 15] }}\n"
    )
}

fn worker(dir: &Dir) -> Child {
    dir.hpo(&["worker", "study.toml", "--db", "shared.sqlite"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The invariants every parallel run must keep: exactly `budget` trials that count,
/// all Complete with the whole curve, numbers unique and dense, the file sound.
fn check_invariants(dir: &Dir, name: &str, budget: usize) -> Vec<Value> {
    let export = dir.export(name, "shared.sqlite");
    let all = trials(&export).clone();
    let numbers: Vec<u64> = all.iter().map(|t| t["number"].as_u64().unwrap()).collect();
    let unique: BTreeSet<u64> = numbers.iter().copied().collect();
    assert_eq!(unique.len(), numbers.len(), "duplicate trial numbers");
    assert_eq!(numbers, (0..numbers.len() as u64).collect::<Vec<_>>(), "numbers are dense");
    let complete: Vec<&Value> = all.iter().filter(|t| t["state"] == "COMPLETE").collect();
    assert_eq!(complete.len(), budget, "exactly the budget completes");
    for trial in &complete {
        let curve = trial["intermediate_values"].as_object().unwrap();
        assert_eq!(curve.len(), 10, "trial {} has its whole curve", trial["number"]);
    }
    for trial in all.iter().filter(|t| t["state"] != "COMPLETE") {
        if trial["state"] == "WAITING" {
            // A retry queued just after other workers filled the budget: never run.
            assert!(trial["system_attrs"].get("hpo:retry_of").is_some(), "{trial}");
            continue;
        }
        assert_eq!(trial["state"], "FAIL", "{trial}");
        assert_eq!(trial["system_attrs"]["hpo:interrupted"], true, "only interrupted trials fail");
    }
    let check = dir.ok(&["check", "--db", "shared.sqlite"]);
    assert!(check.trim_end().ends_with(": ok"), "{check}");
    all
}

#[test]
fn four_processes_of_two_threads_share_an_8000_trial_budget() {
    let dir = Dir::new();
    dir.write("study.toml", &study("stress", 8000));
    let mut children: Vec<Child> = (0..4).map(|_| worker(&dir)).collect();
    for child in &mut children {
        assert!(child.wait().unwrap().success());
    }
    let all = check_invariants(&dir, "stress", 8000);
    assert_eq!(all.len(), 8000, "no process died, so no trial failed");
    // Every process took part.
    let owners: BTreeSet<&str> =
        all.iter().filter_map(|t| t["system_attrs"]["hpo:owner"].as_str()).collect();
    assert_eq!(owners.len(), 4, "{owners:?}");
}

#[test]
fn killing_workers_at_random_loses_no_trial() {
    let dir = Dir::new();
    dir.write("study.toml", &study("chaos", 16000));
    let mut children: Vec<Child> = (0..3).map(|_| worker(&dir)).collect();
    // Until 6 have been killed (the budget is large enough to outlast that on a
    // fast machine), or 30 s.
    let kills = kill_and_replace(
        &mut children,
        12345,
        |kills, elapsed| kills < 6 && elapsed < Duration::from_secs(30),
        || worker(&dir),
    );
    for child in &mut children {
        assert!(child.wait().unwrap().success());
    }
    // A last worker recovers the trials the killed ones left running, if any.
    dir.ok(&["worker", "study.toml", "--db", "shared.sqlite"]);
    let all = check_invariants(&dir, "chaos", 16000);
    assert!(kills >= 5, "killed {kills} workers");
    // Interrupted trials were retried with their parameters (max_retries = 1).
    let failed = assert_killed_trials_were_retried(&all);
    #[allow(clippy::print_stderr)]
    {
        eprintln!("chaos: {kills} workers killed, {} trials failed and were retried", failed.len());
    }
}

#[test]
fn two_processes_prune_one_study_by_its_stored_curves_and_show_why() {
    let dir = Dir::new();
    // Enough trials that neither process finishes the budget before the other starts,
    // even when the second starts late behind other tests' load.
    let text = study("asha", 1500).replace(
        "[sampler]",
        "[pruner]\nkind = \"asha\"\nmin_resource = 1\nreduction_factor = 3\n[sampler]",
    );
    dir.write("study.toml", &text);
    let mut children: Vec<Child> = (0..2).map(|_| worker(&dir)).collect();
    for child in &mut children {
        assert!(child.wait().unwrap().success());
    }
    let all = trials(&dir.export("asha", "shared.sqlite")).clone();
    assert_eq!(all.len(), 1500);
    let owners: BTreeSet<&str> =
        all.iter().filter_map(|t| t["system_attrs"]["hpo:owner"].as_str()).collect();
    assert_eq!(owners.len(), 2, "both processes ran trials: {owners:?}");
    let pruned: Vec<&Value> = all.iter().filter(|t| t["state"] == "PRUNED").collect();
    // With reduction factor 3, most trials stop at rung 0 or 1 of 10 steps.
    assert!(pruned.len() >= 500, "{} pruned", pruned.len());
    for t in &pruned {
        let reason = t["system_attrs"]["prune_reason"].as_str().unwrap();
        // A trial stops at the rung that judged it (steps 1, 3 and 9), its curve kept
        // up to there.
        let last: u64 = t["intermediate_values"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.parse().unwrap())
            .max()
            .unwrap();
        assert!(
            reason.starts_with("rung ") && reason.contains(&format!("(step {last})")),
            "{reason}"
        );
        assert!([1, 3, 9].contains(&last), "{t}");
        // Every verdict is stored: continue at each rung before the last, prune there.
        let verdicts: Vec<(u64, &str)> = t["pruner_verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["step"].as_u64().unwrap(), v["decision"].as_str().unwrap()))
            .collect();
        let rungs: Vec<(u64, &str)> = [1, 3, 9]
            .into_iter()
            .filter(|s| *s <= last)
            .map(|s| (s, if s == last { "prune" } else { "continue" }))
            .collect();
        assert_eq!(verdicts, rungs, "{t}");
    }
    // A complete trial passed every rung it reached.
    for t in all.iter().filter(|t| t["state"] == "COMPLETE") {
        let verdicts = t["pruner_verdicts"].as_array().unwrap();
        assert!(verdicts.iter().all(|v| v["decision"] == "continue"), "{t}");
    }
    let show = dir.ok(&["show", "asha", "--db", "shared.sqlite"]);
    assert!(show.contains(&format!("pruned ({}):", pruned.len())), "{show}");
    assert!(show.lines().any(|l| l.contains(" at step ") && l.contains(": rung ")), "{show}");
    // A trial pruned at rung 1 has its curve up to step 3 and no further.
    let at_rung_1 = pruned
        .iter()
        .find(|t| {
            let curve = &t["intermediate_values"];
            curve.get("3").is_some() && curve.get("4").is_none()
        })
        .unwrap();
    let number = at_rung_1["number"].to_string();
    let one = dir.ok(&["show", "asha", "--trial", &number, "--db", "shared.sqlite"]);
    let verdicts: Vec<&str> =
        one.lines().skip_while(|l| *l != "pruner verdicts:").skip(1).take(2).collect();
    assert!(verdicts[0].starts_with("  step 1: continue: rung 0 (step 1): value "), "{one}");
    assert!(verdicts[0].contains(" is in the best "), "{one}");
    assert!(verdicts[1].starts_with("  step 3: prune: rung 1 (step 3): value "), "{one}");
}
