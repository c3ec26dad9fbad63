//! Bad input and faults: each gets a clear error, and nothing stored is lost.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{Dir, text, trials};

fn branin(trials: usize) -> String {
    format!(
        "[study]\nname = \"faults\"\nmetric = \"value\"\ndirection = \"minimize\"\nseed = 1\ntrials = {trials}\n\
         [sampler]\nkind = \"random\"\n[objective]\nkind = \"function\"\nfunction = \"branin\"\nmax_epochs = 5\n\
         [space]\nx0 = {{ float = [-5, 10] }}\nx1 = {{ float = [0, 15] }}\n"
    )
}

/// Runs a `trials`-trial branin study into the database `db` of `dir`.
fn run_into(dir: &Dir, db: &str, trials: usize) {
    dir.write("study.toml", &branin(trials));
    dir.ok(&["run", "study.toml", "--db", db]);
}

fn bytes(dir: &Dir, name: &str) -> Vec<u8> {
    std::fs::read(dir.path().join(name)).unwrap()
}

#[test]
fn a_study_file_with_errors_exits_2_with_line_and_column() {
    let dir = Dir::new();
    dir.write("bad.toml", &branin(3).replace("trials = 3", "trails = 3"));
    let out = dir.hpo(&["run", "bad.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("bad.toml:6:1: [study].trails: unknown field `trails`"), "{err}");
    // Errors found by the training crate (an unknown dataset) are study-file errors too.
    dir.write(
        "data.toml",
        "[study]\nname = \"d\"\nmetric = \"val_loss\"\ndirection = \"minimize\"\ntrials = 1\n\
         [objective]\nkind = \"candle\"\nmodel = \"mlp\"\ndataset = \"mnist\"\nmax_epochs = 1\n\
         [space]\nlr = { float = [1e-3, 1e-2] }\n",
    );
    let out = dir.hpo(&["run", "data.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("data.toml:9:11: [objective].dataset: unknown dataset"));
    assert!(!dir.path().join("db").exists(), "nothing is created for a bad study file");
    // A file that is not UTF-8 is a study-file error too, at its first bad byte.
    let mut latin1 = branin(3).replace("name = ", "# caf\u{e9}\nname = ").into_bytes();
    let at = latin1.windows(2).position(|w| w == [0xc3, 0xa9]).unwrap();
    latin1.splice(at..at + 2, [0xe9]);
    std::fs::write(dir.path().join("latin1.toml"), latin1).unwrap();
    for command in ["run", "ask"] {
        let out = dir.hpo(&[command, "latin1.toml"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{command}");
        let err = text(&out.stderr);
        assert!(err.contains("latin1.toml:2:6:") && err.contains("not UTF-8"), "{command}: {err}");
    }
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_untouched() {
    let dir = Dir::new();
    dir.write("study.toml", &branin(2));
    dir.write("notes.sqlite", "these are my notes, not a database\n");
    for args in [
        &["run", "study.toml", "--db", "notes.sqlite"][..],
        &["ls", "--db", "notes.sqlite"],
        &["report", "faults", "--db", "notes.sqlite"],
    ] {
        let err = dir.err(args);
        assert!(err.contains("notes.sqlite is not an SQLite database"), "{args:?}: {err}");
    }
    assert_eq!(bytes(&dir, "notes.sqlite"), b"these are my notes, not a database\n");
}

#[test]
fn a_database_from_a_newer_hpo_is_refused_and_left_untouched() {
    let dir = Dir::new();
    dir.write("study.toml", &branin(2));
    dir.ok(&["run", "study.toml", "--db", "new.sqlite"]);
    // Pretend a later hpo applied a migration this one does not know.
    let status = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"INSERT INTO hpo_schema_migrations (version, name) VALUES (999, 'future')\"); c.commit(); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.close()",
            "new.sqlite",
        ])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let before = bytes(&dir, "new.sqlite");
    for args in [&["run", "study.toml", "--db", "new.sqlite"][..], &["ls", "--db", "new.sqlite"]] {
        let err = dir.err(args);
        assert!(err.contains("written by a newer hpo (migration 999"), "{args:?}: {err}");
        assert!(err.contains("upgrade hpo"), "{err}");
    }
    assert_eq!(bytes(&dir, "new.sqlite"), before, "the file is untouched");
}

/// `hpo ARGS` as a user who cannot write the database: as root (who can write
/// anything) through setpriv as `nobody`, else as ourselves with the file read-only.
fn as_reader(dir: &Dir, args: &[&str]) -> std::process::Output {
    let uid = Command::new("id").arg("-u").output().unwrap();
    if text(&uid.stdout).trim() == "0" {
        // `nobody` may not be able to reach the build folder: run a copy from here.
        let copy = dir.path().join("hpo-for-nobody");
        if !copy.exists() {
            std::fs::copy(env!("CARGO_BIN_EXE_hpo"), &copy).unwrap();
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(&copy)
            .args(args)
            .current_dir(dir.path())
            .env_remove("HPO_DB");
        cmd.output().unwrap()
    } else {
        dir.hpo(args).output().unwrap()
    }
}

/// `hpo run` into the read-only `ro.sqlite` exits 1 with the fix and changes
/// nothing in it.
fn assert_a_run_is_refused_as_read_only(dir: &Dir) {
    let before = bytes(dir, "ro.sqlite");
    let run = as_reader(dir, &["run", "study.toml", "--db", "ro.sqlite", "--trials", "5"]);
    assert_eq!(run.status.code(), Some(1));
    let err = text(&run.stderr);
    assert!(err.contains("database ro.sqlite is read-only"), "{err}");
    assert!(err.contains("make the file and its folder writable"), "{err}");
    assert_eq!(bytes(dir, "ro.sqlite"), before);
}

#[test]
fn a_read_only_database_is_read_and_refuses_writes_clearly() {
    let dir = Dir::new();
    run_into(&dir, "ro.sqlite", 3);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // (As root this also puts the copy of hpo that `nobody` runs in place.)
    let version = as_reader(&dir, &["--version"]);
    assert!(version.status.success(), "{}", text(&version.stderr));
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(dir.path().join("ro.sqlite"), std::fs::Permissions::from_mode(0o444))
        .unwrap();
    let before = bytes(&dir, "ro.sqlite");

    let listed = as_reader(&dir, &["ls", "--db", "ro.sqlite"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(text(&listed.stdout).contains("faults"), "{}", text(&listed.stdout));
    let shown = as_reader(&dir, &["show", "faults", "--db", "ro.sqlite"]);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    assert_eq!(bytes(&dir, "ro.sqlite"), before);
    assert_a_run_is_refused_as_read_only(&dir);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_read_only_file_in_a_writable_folder_is_refused_leaving_nothing_behind() {
    let dir = Dir::new();
    run_into(&dir, "ro.sqlite", 3);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(dir.path().join("ro.sqlite"), std::fs::Permissions::from_mode(0o444))
        .unwrap();
    assert_a_run_is_refused_as_read_only(&dir);
    for leftover in ["ro.sqlite-wal", "ro.sqlite-shm"] {
        assert!(!dir.path().join(leftover).exists(), "{leftover} was left behind");
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A database with one of its index pages damaged (the page found with Python's
/// sqlite3, the header's cell count overwritten).
fn damaged_database(dir: &Dir) -> u64 {
    run_into(dir, "hpo.sqlite", 30);
    let script = "import sqlite3, sys\n\
        c = sqlite3.connect(sys.argv[1])\n\
        c.execute('PRAGMA wal_checkpoint(TRUNCATE)')\n\
        print(c.execute(\"SELECT rootpage FROM sqlite_master WHERE name = 'ix_trials_study_id'\").fetchone()[0])\n";
    let out = Command::new("python3")
        .args(["-c", script, "hpo.sqlite"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page: u64 = text(&out.stdout).trim().parse().unwrap();
    let mut file = bytes(dir, "hpo.sqlite");
    let at = usize::try_from((page - 1) * 4096 + 3).unwrap();
    file[at..at + 2].copy_from_slice(&[0xff, 0xff]);
    std::fs::write(dir.path().join("hpo.sqlite"), file).unwrap();
    page
}

#[test]
fn a_damaged_database_is_checked_page_by_page_and_never_written() {
    let dir = Dir::new();
    let page = damaged_database(&dir);
    let before = bytes(&dir, "hpo.sqlite");
    let check = dir.hpo(&["check", "--db", "hpo.sqlite"]).output().unwrap();
    assert_eq!(check.status.code(), Some(1));
    let report = text(&check.stdout);
    assert!(report.contains(&format!("page {page}: btreeInitPage()")), "{report}");
    assert!(report.contains("restore it from a backup"), "{report}");
    let run =
        dir.hpo(&["run", "study.toml", "--db", "hpo.sqlite", "--trials", "40"]).output().unwrap();
    assert_eq!(run.status.code(), Some(1));
    let err = text(&run.stderr);
    assert!(err.contains("database hpo.sqlite: the database file is damaged"), "{err}");
    assert!(err.contains(&format!("page {page}")), "{err}");
    assert!(err.contains("hpo check --db hpo.sqlite"), "{err}");
    assert_eq!(bytes(&dir, "hpo.sqlite"), before, "nothing was written");
}

#[test]
fn a_full_disk_stops_the_run_with_the_database_consistent_and_resumable() {
    let dir = Dir::new();
    dir.write("study.toml", &branin(400));
    dir.ok(&["run", "study.toml", "--trials", "2"]);
    // A file-size limit makes writes past 300 kB fail as on a full disk (SIGXFSZ is
    // ignored so the write returns an error instead of killing the process).
    let hpo = env!("CARGO_BIN_EXE_hpo");
    let out = Command::new("bash")
        .args(["-c", &format!("trap '' XFSZ; ulimit -f 300; exec {hpo} run study.toml")])
        .current_dir(dir.path())
        .env_remove("HPO_DB")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot write to the database db/hpo.sqlite (is the disk full?)"),
        "{err}"
    );
    assert!(err.contains("run the same command to resume"), "{err}");

    let check = dir.ok(&["check"]);
    assert!(check.trim_end().ends_with(": ok"), "{check}");
    let before = trials(&dir.export("faults", "db/hpo.sqlite")).len();
    assert!(before > 2, "the run stored trials before the disk filled: {before}");
    // Space again: the same command finishes the budget, the cut-short trial failed.
    dir.ok(&["run", "study.toml"]);
    let export = dir.export("faults", "db/hpo.sqlite");
    let all = trials(&export);
    assert_eq!(all.iter().filter(|t| t["state"] == "COMPLETE").count(), 400);
    assert!(all.iter().all(|t| t["state"] != "RUNNING"));
}

/// On a disk with little room, the write-ahead log must not keep the space: when a
/// write fails for lack of it, the log goes into the database file and the write is
/// tried again. Without this a log as large as the free space stopped every run
/// after a trial or two, however small the database.
#[test]
fn a_write_ahead_log_never_traps_a_nearly_full_disk() {
    let dir = Dir::new();
    dir.write("study.toml", &branin(100_000));
    dir.ok(&["run", "study.toml", "--trials", "1"]);
    let limited = |limit_kb: u32| {
        let hpo = env!("CARGO_BIN_EXE_hpo");
        Command::new("bash")
            .args(["-c", &format!("trap '' XFSZ; ulimit -f {limit_kb}; exec {hpo} run study.toml")])
            .current_dir(dir.path())
            .env_remove("HPO_DB")
            .output()
            .unwrap()
    };
    let stored = || trials(&dir.export("faults", "db/hpo.sqlite")).len();
    // Each file may grow to 400 kB: far more than the log of a trial or two.
    let out = limited(400);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("is the disk full?"), "{}", text(&out.stderr));
    // Without the fix a run stops after a trial or two; how many more fit depends
    // on when the background checkpoints ran (fewer on a loaded machine: about 80
    // to 120 were seen).
    let first = stored();
    assert!(first > 40, "the log was emptied into the database when it filled: {first} trials");
    // More room: the study goes on.
    let out = limited(800);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(stored() > first + 100, "{first} then {}", stored());
    let check = dir.ok(&["check"]);
    assert!(check.trim_end().ends_with(": ok"), "{check}");
}

#[test]
fn sigterm_fails_the_running_trial_as_interrupted_and_exits_130() {
    let dir = Dir::new();
    dir.write("study.toml", &crate::util::digits_study("term", 8, 30));
    let mut child = dir
        .hpo(&["run", "study.toml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until a trial is running (the database exists and has a trial).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let listed = dir.hpo(&["ls"]).output().unwrap();
        if text(&listed.stdout).contains("term") && text(&listed.stdout).contains("  1  ") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no trial started");
    }
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let export = dir.export("term", "db/hpo.sqlite");
    let all = trials(&export);
    assert!(all.iter().all(|t| t["state"] != "RUNNING"), "{all:?}");
    let failed: Vec<_> = all.iter().filter(|t| t["state"] == "FAIL").collect();
    assert_eq!(failed.len(), 1, "{all:?}");
    assert_eq!(failed[0]["system_attrs"]["hpo:interrupted"], true);
}

/// A panic during a run ends the process with a message and a non-zero code; it
/// never hangs waiting for the heartbeat thread (here: more workers than memory).
#[test]
fn workers_beyond_their_range_are_refused_before_anything_runs() {
    let dir = Dir::new();
    dir.write(
        "study.toml",
        "[study]\nname = \"p\"\nmetric = \"value\"\ndirection = \"minimize\"\nseed = 1\ntrials = 2\n\
         [sampler]\nkind = \"random\"\n[objective]\nkind = \"function\"\nfunction = \"branin\"\n\
         [space]\nx0 = { float = [-5, 10] }\nx1 = { float = [0, 15] }\n",
    );
    for workers in ["18446744073709551615", "4294967296", "1025", "0"] {
        let out = dir.hpo(&["run", "study.toml", "--workers", workers]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "--workers {workers}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--workers"), "{err}");
        if workers.len() < 19 {
            assert!(err.contains("1..=1024"), "{err}");
        }
    }
    assert!(!dir.path().join("db/hpo.sqlite").exists(), "a refused run wrote a database");
}
