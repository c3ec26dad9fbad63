//! hpo on PostgreSQL, against real throwaway servers (scripts/pg-test-cluster.sh):
//! workers in many processes share one study, Optuna reads what hpo wrote and hpo
//! what Optuna wrote, and a server restart or a killed session loses nothing.

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use hpo_store::testing::{PgCluster, cluster};
use serde_json::Value;

use crate::optuna::{OptunaDashboard, assert_same_trial, optuna};
use crate::util::{Dir, assert_killed_trials_were_retried, kill_and_replace, trials};

/// A random study of a fast function objective reporting a 10-step curve.
fn study(name: &str, budget: usize) -> String {
    format!(
        "[study]\nname = \"{name}\"\nmetric = \"value\"\ndirection = \"minimize\"\nseed = 9\ntrials = {budget}\nworkers = 2\nmax_retries = 1\n\
         [sampler]\nkind = \"random\"\n[pruner]\nkind = \"median\"\nstartup_trials = 5\n\
         [objective]\nkind = \"function\"\nfunction = \"branin\"\nmax_epochs = 10\n\
         [space]\nx0 = {{ float = [-5, 10] }}\nx1 = {{ float = [0, 15] }}\n"
    )
}

fn worker(dir: &Dir, db: &str) -> Child {
    dir.hpo(&["worker", "study.toml", "--db", db])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// What every run must keep: exactly `budget` trials that count (complete or
/// pruned), each complete one with its whole curve, numbers unique and dense, only
/// interrupted trials failed, `hpo check` clean.
fn check_invariants(dir: &Dir, db: &str, name: &str, budget: usize) -> Vec<Value> {
    let export = dir.export(name, db);
    let all = trials(&export).clone();
    let numbers: Vec<u64> = all.iter().map(|t| t["number"].as_u64().unwrap()).collect();
    let unique: BTreeSet<u64> = numbers.iter().copied().collect();
    assert_eq!(unique.len(), numbers.len(), "duplicate trial numbers");
    assert_eq!(numbers, (0..numbers.len() as u64).collect::<Vec<_>>(), "numbers are dense");
    let counted = all.iter().filter(|t| t["state"] == "COMPLETE" || t["state"] == "PRUNED").count();
    assert_eq!(counted, budget, "exactly the budget finishes");
    for trial in all.iter().filter(|t| t["state"] == "COMPLETE") {
        let curve = trial["intermediate_values"].as_object().unwrap();
        assert_eq!(curve.len(), 10, "trial {} has its whole curve", trial["number"]);
    }
    for trial in all.iter().filter(|t| t["state"] == "FAIL" || t["state"] == "WAITING") {
        if trial["state"] == "WAITING" {
            assert!(trial["system_attrs"].get("hpo:retry_of").is_some(), "{trial}");
        } else {
            assert_eq!(trial["system_attrs"]["hpo:interrupted"], true, "{trial}");
        }
    }
    let check = dir.ok(&["check", "--db", db]);
    assert!(check.trim_end().ends_with(": ok"), "{check}");
    all
}

#[test]
fn four_processes_share_a_study_on_postgresql_and_optuna_reads_it() {
    let dir = Dir::new();
    let db = cluster().new_database();
    dir.write("study.toml", &study("shared", 600));
    let mut children: Vec<Child> = (0..4).map(|_| worker(&dir, &db)).collect();
    for child in &mut children {
        assert!(child.wait().unwrap().success());
    }
    let all = check_invariants(&dir, &db, "shared", 600);
    assert_eq!(all.len(), 600, "no process died, so no trial failed");
    let owners: BTreeSet<&str> =
        all.iter().filter_map(|t| t["system_attrs"]["hpo:owner"].as_str()).collect();
    assert!(owners.len() >= 2, "{owners:?}");

    // Optuna, through SQLAlchemy and psycopg2, sees the same trials.
    let theirs = optuna("read", std::path::Path::new(&db), "shared");
    let theirs = trials(&theirs);
    assert_eq!(theirs.len(), all.len());
    for (a, b) in all.iter().zip(theirs) {
        assert_same_trial(a, b);
    }
    // So does optuna-dashboard.
    OptunaDashboard::start(&db).assert_shows("shared", &dir.export("shared", &db));
    // Read commands work on it.
    let show = dir.ok(&["show", "shared", "--db", &db]);
    assert!(show.contains("trials: 600 total"), "{show}");
}

#[test]
fn hpo_reads_a_postgresql_database_optuna_wrote() {
    let dir = Dir::new();
    let db = cluster().new_database();
    let written = optuna("write", std::path::Path::new(&db), "from-optuna");
    let ours = dir.export("from-optuna", &db);
    let (ours, theirs) = (trials(&ours), trials(&written));
    assert_eq!(ours.len(), 6);
    for (a, b) in ours.iter().zip(theirs) {
        assert_same_trial(a, b);
    }
    let ls = dir.ok(&["ls", "--db", &db]);
    let row = ls.lines().find(|l| l.starts_with("from-optuna")).expect(&ls);
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[1..9], ["maximize", "-", "6", "4", "1", "1", "0", "0"], "{ls}");

    // Read commands leave Optuna's database as it was: none of hpo's tables added.
    let mut admin = postgres::Client::connect(&db, postgres::NoTls).unwrap();
    let hpo_tables = |admin: &mut postgres::Client| -> i64 {
        admin
            .query_one(
                "SELECT COUNT(*) FROM pg_tables WHERE tablename LIKE 'hpo%' AND schemaname NOT LIKE 'pg_temp%'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    dir.ok(&["show", "from-optuna", "--db", &db]);
    dir.ok(&["report", "from-optuna", "--out", "rep", "--db", &db]);
    assert_eq!(hpo_tables(&mut admin), 0, "a read command added hpo's tables");

    // A role that may only read runs them too; a writing command is told why not.
    admin
        .batch_execute(
            "CREATE ROLE reader LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader",
        )
        .unwrap();
    let (base, name) = db.rsplit_once('/').unwrap();
    let reader = format!("{}/{name}", base.replacen("postgres@", "reader@", 1));
    let show = dir.ok(&["show", "from-optuna", "--db", &reader]);
    assert!(show.contains("trials: 6 total, 4 complete, 1 pruned, 1 failed"), "{show}");
    dir.ok(&["copy", &reader, "copy.sqlite"]);
    let err = dir.err(&["copy", "copy.sqlite", &reader, "--study", "from-optuna"]);
    assert!(err.contains("permission denied"), "{err}");
}

#[test]
fn a_server_restart_and_killed_sessions_mid_run_lose_nothing() {
    let own = PgCluster::start();
    let dir = Dir::new();
    let db = own.new_database();
    dir.write("study.toml", &study("bumpy", 600));
    let mut children: Vec<Child> = (0..3).map(|_| worker(&dir, &db)).collect();
    // Once trials are being written: cut every worker's session, then restart the
    // server (fast shutdown: sessions cut mid-transaction).
    let mut admin = postgres::Client::connect(&own.url, postgres::NoTls).unwrap();
    let mut reader = postgres::Client::connect(&db, postgres::NoTls).unwrap();
    let started = Instant::now();
    loop {
        let written: i64 =
            reader.query_one("SELECT COUNT(*) FROM trials", &[]).map(|row| row.get(0)).unwrap_or(0);
        if written >= 50 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no trial was written");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(reader);
    let name = db.rsplit_once('/').unwrap().1;
    let cut: i64 = admin
        .query_one(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()) t",
            &[&name],
        )
        .unwrap()
        .get(0);
    assert!(cut >= 1, "no worker session was cut");
    drop(admin);
    std::thread::sleep(Duration::from_millis(300));
    let mut reader = postgres::Client::connect(&db, postgres::NoTls).unwrap();
    let before: i64 = reader.query_one("SELECT COUNT(*) FROM trials", &[]).unwrap().get(0);
    drop(reader);
    own.restart();
    for child in &mut children {
        let status = child.wait().unwrap();
        assert!(status.success(), "a worker failed: {status:?}");
    }
    assert!(before < 600, "the run was over before the server restarted");
    // A last worker fails what a cut session may have left running, if anything.
    dir.ok(&["worker", "study.toml", "--db", &db]);
    let all = check_invariants(&dir, &db, "bumpy", 600);
    assert!(all.iter().all(|t| t["state"] != "RUNNING"), "a trial was left running");
}

#[test]
fn a_bad_postgresql_url_is_told_without_its_password() {
    let dir = Dir::new();
    dir.write("study.toml", &study("nowhere", 5));
    // Nothing listens on port 1.
    let err = dir.err(&["run", "study.toml", "--db", "postgresql://alice:s3cret@127.0.0.1:1/hpo"]);
    assert!(
        err.contains("cannot connect to PostgreSQL at postgresql://alice:***@127.0.0.1:1/hpo"),
        "{err}"
    );
    assert!(err.contains("check the URL"), "{err}");
    assert!(!err.contains("s3cret"), "the password leaked: {err}");
    // A server that is up, a database that is not.
    let url = cluster().url_of("no_such_database");
    let err = dir.err(&["ls", "--db", &url]);
    assert!(err.contains("no_such_database") && err.contains("does not exist"), "{err}");
}

/// A study whose trials take over half a second: a program printing 10 steps,
/// pruned from step 8 on.
fn slow_study(name: &str, budget: usize) -> String {
    format!(
        "[study]\nname = \"{name}\"\nmetric = \"value\"\ndirection = \"minimize\"\nseed = 4\ntrials = {budget}\nmax_retries = 1\n\
         [sampler]\nkind = \"random\"\n[pruner]\nkind = \"median\"\nstartup_trials = 5\nwarmup_steps = 8\n\
         [objective]\nkind = \"command\"\ncommand = [\"sh\", \"steps.sh\", \"{{x}}\"]\n\
         [space]\nx = {{ float = [0, 1] }}\n"
    )
}

const STEPS: &str = "for s in 1 2 3 4 5 6 7 8 9 10; do echo \"{\\\"step\\\": $s, \\\"value\\\": $1}\"; sleep 0.06; done\n";

/// `hpo worker` as host `host`, taking other hosts' trials for dead after 2 s.
fn host_worker(dir: &Dir, db: &str, host: &str) -> Child {
    dir.hpo(&["worker", "study.toml", "--db", db, "--host-id", host, "--heartbeat-grace", "2s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn eight_hosts_killed_and_replaced_every_half_second_and_a_server_restart_lose_no_trial() {
    // A server of its own: it is restarted in the middle of the run.
    let own = PgCluster::start();
    let dir = Dir::new();
    let db = own.new_database();
    dir.write("study.toml", &slow_study("hosts", 400));
    dir.write("steps.sh", STEPS);
    let mut hosts = 0;
    let mut next_host = |dir: &Dir| {
        hosts += 1;
        host_worker(dir, &db, &format!("host-{hosts}"))
    };
    let mut children: Vec<Child> = (0..8).map(|_| next_host(&dir)).collect();
    let mut restarted = false;
    let kills = kill_and_replace(
        &mut children,
        77,
        |_, elapsed| {
            if elapsed > Duration::from_secs(10) && !restarted {
                own.restart();
                restarted = true;
            }
            elapsed < Duration::from_secs(20)
        },
        || next_host(&dir),
    );
    for child in &mut children {
        assert!(child.wait().unwrap().success());
    }
    // The killed hosts' last heartbeats are past the grace by now: a last worker
    // fails their trials as interrupted and runs the retries still queued.
    std::thread::sleep(Duration::from_millis(2500));
    dir.ok(&["worker", "study.toml", "--db", &db, "--host-id", "last", "--heartbeat-grace", "2s"]);
    let all = check_invariants(&dir, &db, "hosts", 400);
    assert!(kills >= 15, "killed only {kills} workers");
    assert!(all.iter().all(|t| t["state"] != "RUNNING"), "a trial was left running");
    let failed = assert_killed_trials_were_retried(&all);
    assert!(!failed.is_empty(), "no trial was cut short: the kills came too late");
    // Optuna reads the same study.
    let theirs = optuna("read", std::path::Path::new(&db), "hosts");
    let theirs = trials(&theirs);
    assert_eq!(theirs.len(), all.len());
    for (a, b) in all.iter().zip(theirs) {
        assert_same_trial(a, b);
    }
}

#[test]
fn hpo_copy_moves_studies_whole_between_sqlite_and_postgresql() {
    let dir = Dir::new();
    let db = cluster().new_database();
    dir.write("study.toml", &study("moved", 40));
    dir.ok(&["run", "study.toml", "--db", "a.sqlite"]);
    let report = dir.ok(&["report", "moved", "--db", "a.sqlite", "--out", "rep"]);
    assert!(report.contains("stored in the database"), "{report}");
    dir.write("other.toml", &study("other", 5).replace("name = \"moved\"", "name = \"other\""));
    dir.ok(&["run", "other.toml", "--db", "a.sqlite"]);

    // SQLite to PostgreSQL, one study, then back into a new SQLite file: the same
    // export (parameters, values, curves, verdicts, attributes, times, the pick).
    let out = dir.ok(&["copy", "a.sqlite", &db, "--study", "moved"]);
    assert!(out.contains("copied study `moved` (40 trials)"), "{out}");
    dir.ok(&["copy", &db, "b.sqlite"]);
    let original = dir.ok(&["export", "moved", "--db", "a.sqlite", "--format", "json"]);
    assert_eq!(dir.ok(&["export", "moved", "--db", &db, "--format", "json"]), original);
    assert_eq!(dir.ok(&["export", "moved", "--db", "b.sqlite", "--format", "json"]), original);
    let export: Value = serde_json::from_str(&original).unwrap();
    assert!(export["pick"]["trial"].is_number(), "the pick went along: {}", export["pick"]);
    assert!(
        trials(&export)
            .iter()
            .any(|t| t["pruner_verdicts"].as_array().is_some_and(|v| !v.is_empty()))
    );
    // The study file went along: the copy resumes from it.
    dir.ok(&["run", "study.toml", "--db", &db, "--trials", "45"]);
    assert_eq!(trials(&dir.export("moved", &db)).len(), 45);

    // A study the destination has is refused, and nothing is written.
    let err = dir.bad_input(&["copy", "a.sqlite", &db]);
    assert!(err.contains("already has `moved`") && err.contains("nothing was copied"), "{err}");
    assert!(dir.bad_input(&["show", "other", "--db", &db]).contains("no study named `other`"));
    // The study it lacks goes.
    let out = dir.ok(&["copy", "a.sqlite", &db, "--study", "other"]);
    assert!(out.contains("copied study `other` (5 trials)"), "{out}");
}

#[test]
fn hpo_serve_serves_a_postgresql_database_while_workers_write_it() {
    let dir = Dir::new();
    let db = cluster().new_database();
    dir.write("study.toml", &study("served", 30));
    dir.ok(&["worker", "study.toml", "--db", &db]);
    let server = crate::serve::Server::start(&dir, &["--db", &db]);
    let (status, body) = server.get("/api/v1/studies/served");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["trials"]["complete"].as_u64().unwrap() + body["trials"]["pruned"].as_u64().unwrap(),
        30,
        "{body}"
    );
    // Ask and tell over HTTP land in the same database.
    dir.write(
        "ext.toml",
        &study("remote", 3).replace(
            "kind = \"function\"\nfunction = \"branin\"\nmax_epochs = 10\n",
            "kind = \"external\"\n",
        ),
    );
    let text = std::fs::read_to_string(dir.path().join("ext.toml")).unwrap();
    let (status, asked) = server.post("/api/v1/studies/remote/ask", &text);
    assert_eq!(status, 200, "{asked}");
    let trial = asked["trial"].as_u64().unwrap();
    let (status, told) =
        server.post(&format!("/api/v1/studies/remote/trials/{trial}/tell"), "{\"value\": 1.5}");
    assert_eq!(status, 200, "{told}");
    let export = dir.export("remote", &db);
    assert_eq!(trials(&export)[0]["value"], 1.5);
}
