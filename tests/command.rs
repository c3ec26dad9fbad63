//! `[objective] kind = "command"`: real programs (shell scripts) as trials — the
//! three metric formats, pruning and timeouts that end the whole process group,
//! programs that misbehave, several workers, kill -9 and Ctrl-C of hpo.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Dir, trials};

/// A command study of `trials` trials over `lr`, with `extra` lines appended to its
/// `[objective]` table and `pruner` as its `[pruner]` table.
fn study(name: &str, trials: usize, command: &str, extra: &str, pruner: &str) -> String {
    format!(
        "[study]\nname = \"{name}\"\nmetric = \"val_loss\"\ndirection = \"minimize\"\nseed = 1\ntrials = {trials}\n\
         [sampler]\nkind = \"random\"\n[pruner]\n{pruner}\n[objective]\nkind = \"command\"\ncommand = {command}\n{extra}\n\
         [space]\nlr = {{ float = [0.001, 0.1], log = true }}\n"
    )
}

/// Whether any process's command line holds `marker`.
fn running(marker: &str) -> bool {
    let out = std::process::Command::new("pgrep").args(["-f", marker]).output().unwrap();
    out.status.success()
}

fn wait_until_gone(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(marker) {
        assert!(Instant::now() < deadline, "a process with `{marker}` is still running");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn states(dir: &Dir, name: &str) -> Vec<(String, Option<String>)> {
    let export = dir.export(name, "c.sqlite");
    trials(&export)
        .iter()
        .map(|t| {
            let reason = t["system_attrs"]["fail_reason"].as_str().map(str::to_owned);
            (t["state"].as_str().unwrap().to_owned(), reason)
        })
        .collect()
}

#[test]
fn metrics_come_as_json_lines_key_value_lines_or_a_file() {
    let dir = Dir::new();
    dir.write(
        "json.sh",
        "#!/bin/sh\nfor s in 1 2 3; do echo \"epoch $s\"; echo \"{\\\"step\\\": $s, \\\"val_loss\\\": 0.$s, \\\"train_loss\\\": 0.0$s}\"; done\n",
    );
    dir.write("kv.sh", "#!/bin/sh\necho loading\nfor s in 1 2 3; do echo \"step=$s val_loss=0.$s train_loss=0.0$s\"; done\n");
    dir.write(
        "file.sh",
        "#!/bin/sh\nfor s in 1 2 3; do echo \"{\\\"step\\\": $s, \\\"val_loss\\\": 0.$s}\" >> \"$HPO_TRIAL_DIR/metrics.jsonl\"; done\n",
    );
    for script in ["json.sh", "kv.sh", "file.sh"] {
        std::fs::set_permissions(
            dir.path().join(script),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    let cases = [
        ("json", "json.sh", ""),
        ("kv", "kv.sh", "metrics = \"key=value\""),
        (
            "file",
            "file.sh",
            "metrics = { file = \"{trial_dir}/metrics.jsonl\", format = \"json\" }",
        ),
    ];
    for (name, script, extra) in cases {
        let file = format!("{name}.toml");
        dir.write(
            &file,
            &study(name, 2, &format!("[\"./{script}\", \"{{lr}}\"]"), extra, "kind = \"none\""),
        );
        dir.ok(&["run", &file, "--db", "c.sqlite"]);
        let export = dir.export(name, "c.sqlite");
        for trial in trials(&export) {
            assert_eq!(trial["state"], "COMPLETE", "{name}: {trial}");
            assert_eq!(trial["value"].as_f64(), Some(0.1), "{name}: the best step's value");
            let steps = trial["intermediate_values"].as_object().unwrap();
            assert_eq!(steps.len(), 3, "{name}: {trial}");
        }
    }
    // Every metric is a curve, as a candle trial's are.
    let out = dir.ok(&["show", "json", "--db", "c.sqlite", "--trial", "0"]);
    assert!(out.contains("train_loss"), "{out}");
    assert!(dir.path().join("c-trials/json/0/stdout.log").exists());
    let params: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("c-trials/json/0/params.json")).unwrap(),
    )
    .unwrap();
    assert!(params["lr"].is_f64(), "{params}");
}

#[test]
fn a_pruned_trial_ends_its_whole_process_group_within_the_grace_period() {
    let dir = Dir::new();
    // The program and its forked child ignore SIGTERM; the program reports a bad value.
    dir.write(
        "stubborn.sh",
        "#!/bin/sh\ntrap '' TERM\nsh -c 'sleep 300; true' hpo-test-stubborn-marker &\n\
         echo '{\"step\": 1, \"val_loss\": 5.0}'\nsleep 300\n",
    );
    std::fs::set_permissions(
        dir.path().join("stubborn.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    dir.write(
        "p.toml",
        &study(
            "p",
            1,
            "[\"sh\", \"./stubborn.sh\"]",
            "grace = \"1s\"",
            "kind = \"threshold\"\nupper = 1.0",
        ),
    );
    let started = Instant::now();
    let mut run =
        dir.hpo(&["run", "p.toml", "--db", "c.sqlite"]).stdout(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = false;
    let status = loop {
        seen |= running("hpo-test-stubborn-marker");
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "hpo run did not end");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(seen, "the stubborn child never ran");
    // SIGTERM, the grace period of 1 s, then SIGKILL for the group.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(states(&dir, "p")[0].0, "PRUNED");
    wait_until_gone("hpo-test-stubborn-marker");
}

#[test]
fn misbehaving_programs_end_their_trials_with_a_clear_reason() {
    let dir = Dir::new();
    let cases: [(&str, &str, &str); 7] = [
        ("garbage", "head -c 3000 /dev/urandom; echo", "without reporting a metric"),
        ("nothing", "true", "without reporting a metric"),
        ("status", "echo 'Traceback: something broke' >&2; exit 3", "exited with status 3"),
        ("segfault", "kill -SEGV $$", "killed by signal 11 (SIGSEGV)"),
        ("timeout", "sh -c 'sleep 60; true' hpo-test-timeout-marker", "timed out after 1 s"),
        ("missing", "exec ./no-such-program", "status 127"),
        (
            "flood",
            "head -c 10000000 /dev/zero | tr '\\0' x; echo; echo '{\"step\": 1, \"val_loss\": 0.5}'",
            "",
        ),
    ];
    for (name, body, reason) in cases {
        dir.write(&format!("{name}.sh"), &format!("#!/bin/sh\n{body}\n"));
        let extra = if name == "timeout" { "timeout = \"1s\"\ngrace = \"1s\"" } else { "" };
        dir.write(
            &format!("{name}.toml"),
            &study(name, 1, &format!("[\"sh\", \"./{name}.sh\"]"), extra, "kind = \"none\""),
        );
        // All of a run's trials failing exits 1; the run itself is fine.
        let out = dir.hpo(&["run", &format!("{name}.toml"), "--db", "c.sqlite"]).output().unwrap();
        assert!(matches!(out.status.code(), Some(0 | 1)), "{name}: {:?}", out.status);
        let (state, why) = states(&dir, name).remove(0);
        if reason.is_empty() {
            assert_eq!(state, "COMPLETE", "{name}: {why:?}");
        } else {
            assert_eq!(state, "FAIL", "{name}");
            let why = why.unwrap_or_default();
            assert!(why.contains(reason), "{name}: {why}");
        }
    }
    assert!(dir.ok(&["check", "--db", "c.sqlite"]).contains("ok"));
    let log = dir.ok(&["show", "status", "--db", "c.sqlite", "--trial", "0", "--log"]);
    assert!(log.contains("stderr.log") && log.contains("Traceback: something broke"), "{log}");
    wait_until_gone("hpo-test-timeout-marker");
    // The flood's log is capped.
    let log = std::fs::metadata(dir.path().join("c-trials/flood/0/stdout.log")).unwrap().len();
    assert!(log < 2 << 20, "stdout.log holds {log} bytes");
    // A forked child that outlives the program is ended with it.
    dir.write("fork.sh", "#!/bin/sh\nsh -c 'sleep 300; true' hpo-test-fork-marker &\necho '{\"step\": 1, \"val_loss\": 0.5}'\n");
    dir.write("fork.toml", &study("fork", 1, "[\"sh\", \"./fork.sh\"]", "", "kind = \"none\""));
    dir.ok(&["run", "fork.toml", "--db", "c.sqlite"]);
    assert_eq!(states(&dir, "fork")[0].0, "COMPLETE");
    wait_until_gone("hpo-test-fork-marker");
}

/// A slow command study: each trial reports a step every 0.2 s for 3 s.
fn slow(dir: &Dir, name: &str, trials: usize, extra: &str) {
    dir.write(
        &format!("{name}.sh"),
        "#!/bin/sh\nfor s in $(seq 1 15); do echo \"{\\\"step\\\": $s, \\\"val_loss\\\": $1}\"; sleep 0.2; done\n",
    );
    dir.write(
        &format!("{name}.toml"),
        &study(
            name,
            trials,
            &format!("[\"sh\", \"./{name}.sh\", \"{{lr}}\", \"hpo-test-{name}-marker\"]"),
            extra,
            "kind = \"none\"",
        ),
    );
}

#[test]
fn four_workers_run_command_trials_at_once() {
    let dir = Dir::new();
    slow(&dir, "four", 8, "");
    std::fs::write(
        dir.path().join("four.toml"),
        std::fs::read_to_string(dir.path().join("four.toml"))
            .unwrap()
            .replace("trials = 8", "trials = 8\nworkers = 4"),
    )
    .unwrap();
    let started = Instant::now();
    dir.ok(&["run", "four.toml", "--db", "c.sqlite"]);
    // Eight trials of 3 s each, four at a time: about 6 s, not 24.
    assert!(started.elapsed() < Duration::from_secs(18), "took {:?}", started.elapsed());
    assert!(states(&dir, "four").iter().all(|(state, _)| state == "COMPLETE"));
}

#[test]
fn killing_or_interrupting_hpo_leaves_no_program_running_and_the_study_resumes() {
    let dir = Dir::new();
    slow(&dir, "killed", 3, "");
    for signal in ["-KILL", "-INT"] {
        let mut child = dir
            .hpo(&["run", "killed.toml", "--db", "c.sqlite"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !running("hpo-test-killed-marker") {
            assert!(Instant::now() < deadline, "the program never started");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(500));
        std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        if signal == "-INT" {
            assert_eq!(status.code(), Some(130), "Ctrl-C exits 130");
        }
        wait_until_gone("hpo-test-killed-marker");
    }
    dir.ok(&["run", "killed.toml", "--db", "c.sqlite"]);
    let complete = states(&dir, "killed").iter().filter(|(state, _)| state == "COMPLETE").count();
    assert_eq!(complete, 3);
}

#[test]
fn a_placeholder_that_names_no_parameter_is_a_study_file_error() {
    let dir = Dir::new();
    dir.write(
        "bad.toml",
        &study("bad", 1, "[\"train\", \"--lr\", \"{learning_rate}\"]", "", "kind = \"none\""),
    );
    let err = dir.bad_input(&["run", "bad.toml", "--db", "c.sqlite"]);
    assert!(
        err.contains("bad.toml:") && err.contains("`{learning_rate}` names no parameter"),
        "{err}"
    );
}

#[test]
fn a_device_a_command_cannot_see_is_a_study_file_error() {
    let dir = Dir::new();
    let devices = "devices = [\"cuda:0\", \"gpu\"]";
    dir.write("gpu.toml", &study("gpu", 1, "[\"true\"]", devices, "kind = \"none\""));
    let err = dir.bad_input(&["run", "gpu.toml", "--db", "c.sqlite"]);
    assert!(
        err.contains(r#"gpu.toml:14:22: [objective].devices[1]: unknown device `gpu` for a command; valid: "cpu", "cuda:N""#),
        "{err}"
    );
}

#[test]
fn each_trial_gets_its_gpu_and_one_out_of_memory_leaves_the_device_to_fewer_trials() {
    let dir = Dir::new();
    // Two GPUs with two trials each: every trial sees one GPU, recorded on it.
    dir.write(
        "gpu.sh",
        "#!/bin/sh\nsleep 0.3\necho \"{\\\"step\\\": 1, \\\"val_loss\\\": $1, \\\"gpu\\\": $CUDA_VISIBLE_DEVICES}\"\n",
    );
    dir.write(
        "gpu.toml",
        &study(
            "gpu",
            8,
            "[\"sh\", \"./gpu.sh\", \"{lr}\"]",
            "devices = [\"cuda:0\", \"cuda:1\"]\ntrials_per_device = 2",
            "kind = \"none\"",
        ),
    );
    dir.ok(&["run", "gpu.toml", "--db", "c.sqlite"]);
    let export = dir.export("gpu", "c.sqlite");
    let mut seen = std::collections::BTreeSet::new();
    for trial in trials(&export) {
        assert_eq!(trial["state"], "COMPLETE", "{trial}");
        let gpu = trial["user_attrs"]["gpu"].as_f64().unwrap() as u64;
        assert_eq!(trial["system_attrs"]["hpo:device"], format!("cuda:{gpu}"), "{trial}");
        seen.insert(gpu);
    }
    assert_eq!(seen.len(), 2, "both GPUs ran trials");
    // One GPU that holds one trial: a second trial at once runs out of memory, is
    // queued again, and its worker leaves the GPU to the other.
    dir.write(
        "oom.sh",
        "#!/bin/sh\nif ! mkdir busy 2>/dev/null; then echo 'torch.OutOfMemoryError: CUDA out of memory.' >&2; exit 1; fi\n\
         sleep 0.5\nrmdir busy\necho \"{\\\"step\\\": 1, \\\"val_loss\\\": $1}\"\n",
    );
    dir.write(
        "oom.toml",
        &study(
            "oom",
            4,
            "[\"sh\", \"./oom.sh\", \"{lr}\"]",
            "devices = [\"cuda:0\"]\ntrials_per_device = 2",
            "kind = \"none\"",
        ),
    );
    dir.ok(&["run", "oom.toml", "--db", "c.sqlite"]);
    let states = states(&dir, "oom");
    assert_eq!(states.iter().filter(|(state, _)| state == "COMPLETE").count(), 4, "{states:?}");
    for (state, why) in &states {
        if state == "FAIL" {
            assert!(why.as_deref().unwrap_or_default().contains("out of"), "{why:?}");
        }
    }
}

/// studies/digits-command.toml: a real model (examples/digits_logreg.py, logistic
/// regression on the digits) trained epoch by epoch under a median pruner, its
/// train and validation curves stored as a candle trial's are.
#[test]
fn the_digits_command_study_trains_a_real_model_with_pruning() {
    let dir = Dir::new();
    let study = crate::util::repo().join("studies/digits-command.toml");
    dir.ok(&["run", study.to_str().unwrap(), "--db", "c.sqlite", "--trials", "6"]);
    let export = dir.export("digits-command", "c.sqlite");
    let trials = trials(&export);
    assert_eq!(trials.len(), 6);
    let mut verdicts = 0;
    for trial in trials {
        let state = trial["state"].as_str().unwrap();
        assert!(state == "COMPLETE" || state == "PRUNED", "{trial}");
        let curves = trial["curves"].as_object().unwrap();
        for metric in ["train_loss", "val_loss", "train_accuracy", "val_accuracy"] {
            assert!(curves.contains_key(metric), "{metric} missing: {trial}");
        }
        verdicts += trial["pruner_verdicts"].as_array().map_or(0, Vec::len);
    }
    assert!(verdicts > 0, "the median pruner judged no step");
    let best =
        trials.iter().filter_map(|t| t["user_attrs"]["val_accuracy"].as_f64()).fold(0.0, f64::max);
    assert!(best > 0.85, "a real model: best val_accuracy {best}");
}

#[test]
fn an_inactive_conditional_parameter_takes_its_placeholder_default_and_is_absent() {
    let dir = Dir::new();
    dir.write("cond.sh", "#!/bin/sh\nprintf '{\"step\": 1, \"val_loss\": %s}\\n' \"$1\"\n");
    dir.write(
        "cond.toml",
        "[study]\nname = \"cond\"\nmetric = \"val_loss\"\ndirection = \"minimize\"\nseed = 1\ntrials = 10\n\
         [sampler]\nkind = \"random\"\n[objective]\nkind = \"command\"\n\
         command = [\"sh\", \"./cond.sh\", \"{momentum:0}\"]\n[space]\n\
         optimizer = { choice = [\"sgd\", \"adam\"] }\n\
         momentum = { float = [0.1, 0.9], when = { optimizer = \"sgd\" } }\n",
    );
    dir.ok(&["run", "cond.toml", "--db", "c.sqlite"]);
    let export = dir.export("cond", "c.sqlite");
    let mut seen = [false, false];
    for trial in trials(&export) {
        assert_eq!(trial["state"], "COMPLETE");
        let number = trial["number"].as_u64().unwrap();
        let params: Value = serde_json::from_str(
            &std::fs::read_to_string(
                dir.path().join(format!("c-trials/cond/{number}/params.json")),
            )
            .unwrap(),
        )
        .unwrap();
        let value = trial["value"].as_f64().unwrap();
        if trial["params"]["optimizer"] == "sgd" {
            let momentum = trial["params"]["momentum"].as_f64().unwrap();
            assert!((value - momentum).abs() < 1e-9, "trial {number}: {value} != {momentum}");
            assert_eq!(params["momentum"].as_f64(), Some(momentum));
            seen[0] = true;
        } else {
            assert!(trial["params"].get("momentum").is_none(), "{trial}");
            assert_eq!(value, 0.0, "the default `{{momentum:0}}`");
            assert!(params.get("momentum").is_none(), "params.json: {params}");
            seen[1] = true;
        }
    }
    assert_eq!(seen, [true, true], "both branches ran");
}
