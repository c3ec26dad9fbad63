//! Helpers: a temp dir per test and a way to run `hpo` in it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir { tmp: tempfile::tempdir().expect("temp dir") }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `hpo ARGS...` with the temp dir as working directory (so the default
    /// database is ./db/hpo.sqlite there).
    pub fn hpo(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hpo"));
        cmd.args(args).current_dir(self.path()).env_remove("HPO_DB");
        cmd
    }

    /// Runs `hpo ARGS...`, asserts success, returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.hpo(args).output().expect("run hpo");
        assert!(out.status.success(), "hpo {args:?} failed: {}\n{}", out.status, text(&out.stderr));
        text(&out.stdout)
    }

    /// Runs `hpo ARGS...`, asserts it fails with exit code 1, returns stderr.
    #[track_caller]
    pub fn err(&self, args: &[&str]) -> String {
        let out: Output = self.hpo(args).output().expect("run hpo");
        assert_eq!(out.status.code(), Some(1), "hpo {args:?} should fail: {}", text(&out.stdout));
        text(&out.stderr)
    }

    /// Runs `hpo ARGS...` on a study file with errors: asserts exit code 2, returns
    /// stderr.
    #[track_caller]
    pub fn bad_input(&self, args: &[&str]) -> String {
        let out: Output = self.hpo(args).output().expect("run hpo");
        assert_eq!(out.status.code(), Some(2), "hpo {args:?} should refuse: {}", text(&out.stderr));
        text(&out.stderr)
    }

    /// The study as `hpo export --format json` gives it.
    #[track_caller]
    pub fn export(&self, study: &str, db: &str) -> Value {
        serde_json::from_str(&self.ok(&["export", study, "--format", "json", "--db", db]))
            .expect("json")
    }
}

/// Starting a command without waiting for it, with its output captured.
pub trait OutputAsync {
    fn output_async(&mut self) -> std::process::Child;
}

impl OutputAsync for Command {
    fn output_async(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn hpo")
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The repository root (for studies/ and tests/ files).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A small digits study: `trials` trials of at most `epochs` epochs.
pub fn digits_study(name: &str, trials: usize, epochs: usize) -> String {
    format!(
        r#"
[study]
name = "{name}"
metric = "val_accuracy"
direction = "maximize"
seed = 11
trials = {trials}

[sampler]
kind = "random"

[early_stopping]
monitor = "val_loss"
patience = 3

[objective]
kind = "candle"
model = "mlp"
dataset = "digits"
max_epochs = {epochs}
device = "cpu"

[space]
lr = {{ float = [1e-3, 2e-2], log = true }}
hidden = {{ int = [32, 128], log = true }}
depth = {{ int = [1, 3], step = 2 }}
batch_size = {{ choice = [32, 64] }}
activation = {{ choice = ["relu", "tanh"] }}
dropout = {{ float = [0.0, 0.3], step = 0.1, when = {{ activation = "relu" }} }}
"#
    )
}

/// A random-search study of `trials` trials on the Branin function (seed 5).
pub fn branin_study(name: &str, trials: usize) -> String {
    format!(
        "[study]\nname = \"{name}\"\nmetric = \"value\"\ndirection = \"minimize\"\nseed = 5\ntrials = {trials}\n\
         [sampler]\nkind = \"random\"\n[objective]\nkind = \"function\"\nfunction = \"branin\"\n\
         [space]\nx0 = {{ float = [-5, 10] }}\nx1 = {{ float = [0, 15] }}\n"
    )
}

pub fn trials(export: &Value) -> &Vec<Value> {
    export["trials"].as_array().expect("trials")
}

/// A small regularization study on the digits (8 trials of at most 4 epochs): what
/// the report, confirm and pick tests run.
pub const DIGITS_REGULARIZATION: &str = r#"
[study]
name = "reg"
metric = "val_loss"
direction = "minimize"
seed = 3
trials = 8

[sampler]
kind = "random"

[early_stopping]
patience = 2

[objective]
kind = "candle"
model = "mlp"
dataset = "digits"
max_epochs = 4
device = "cpu"
fixed = { hidden = 32, depth = 1, batch_size = 64 }

[space]
lr              = { float = [1e-3, 3e-2], log = true }
dropout         = { float = [0.0, 0.5] }
weight_decay    = { float = [1e-5, 1e-1], log = true }
label_smoothing = { float = [0.0, 0.2] }
"#;

/// Every 0.5 s picks a child at random, kills it if it still runs, and starts a
/// fresh one in its place with `spawn`, while `go_on(kills, elapsed)`; returns how
/// many it killed.
pub fn kill_and_replace(
    children: &mut [std::process::Child],
    seed: u64,
    mut go_on: impl FnMut(usize, std::time::Duration) -> bool,
    mut spawn: impl FnMut() -> std::process::Child,
) -> usize {
    let started = std::time::Instant::now();
    let mut kills = 0;
    let mut seed = seed;
    while go_on(kills, started.elapsed()) {
        std::thread::sleep(std::time::Duration::from_millis(500));
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let victim = (seed >> 33) as usize % children.len();
        if children[victim].try_wait().unwrap().is_none() {
            children[victim].kill().unwrap();
            children[victim].wait().unwrap();
            kills += 1;
        }
        children[victim] = spawn();
    }
    kills
}

/// Each failed trial of `all` (an export's trials) failed because its worker was
/// killed, and each one that had its parameters was retried with them; returns
/// the failed trials.
#[track_caller]
pub fn assert_killed_trials_were_retried(all: &[Value]) -> Vec<&Value> {
    let failed: Vec<&Value> = all.iter().filter(|t| t["state"] == "FAIL").collect();
    for trial in &failed {
        let reason = trial["system_attrs"]["fail_reason"].as_str().unwrap_or_default();
        assert!(reason.contains("stopped (killed or crashed)"), "{reason}");
        // Killed before its parameters were set, a trial has nothing to retry.
        let has_params = trial["params"].as_object().is_some_and(|p| !p.is_empty());
        if trial["system_attrs"].get("hpo:retry_of").is_none() && has_params {
            let number = trial["number"].as_f64().unwrap();
            let retry = all
                .iter()
                .find(|t| t["system_attrs"]["hpo:retry_of"].as_f64() == Some(number))
                .unwrap_or_else(|| panic!("trial {number} was not retried: {trial}"));
            assert_eq!(retry["params"], trial["params"], "a retry runs the same parameters");
        }
    }
    failed
}
