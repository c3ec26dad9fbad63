//! The storage conformance suite on SQLite (file and memory) and PostgreSQL, and
//! SQLite's own cases: migrations, fixtures of released schemas, damaged files.

use std::path::PathBuf;

use hpo_core::storage::Storage;

use super::*;

/// A fresh database file in its own temp dir (kept alive by the returned guard).
pub(crate) struct TempDb {
    pub storage: SqliteStorage,
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TempDb {
    type Target = SqliteStorage;
    fn deref(&self) -> &SqliteStorage {
        &self.storage
    }
}

pub(crate) fn temp_db() -> TempDb {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hpo.sqlite");
    TempDb { storage: SqliteStorage::open(&path).unwrap(), path, _dir: dir }
}

mod conformance {
    hpo_core::storage_conformance_tests!(|| super::temp_db().storage);
}

/// Reads on reader connections see every write before them.
mod conformance_with_readers {
    hpo_core::storage_conformance_tests!(|| super::temp_db().storage.with_readers(2).unwrap());
}

mod conformance_in_memory {
    hpo_core::storage_conformance_tests!(|| super::SqliteStorage::open_in_memory().unwrap());
}

#[test]
fn reopening_applies_no_migration_twice_and_keeps_data() {
    let db = temp_db();
    db.create_study(&hpo_core::storage::NewStudy {
        name: "kept".into(),
        directions: vec![Direction::Maximize],
        metrics: vec!["acc".into()],
        spec_text: Some("[study]".into()),
        queued: vec![],
    })
    .unwrap();
    let again = SqliteStorage::open(&db.path).unwrap();
    let study = again.find_study("kept").unwrap().unwrap();
    assert_eq!(
        (study.direction, study.metric.as_deref(), study.spec_text.as_deref()),
        (Direction::Maximize, Some("acc"), Some("[study]"))
    );
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    let applied: i64 =
        conn.query_row("SELECT COUNT(*) FROM hpo_schema_migrations", [], |r| r.get(0)).unwrap();
    assert_eq!(applied, MIGRATIONS.len() as i64);
    let (schema, revision): (i64, String) = conn
        .query_row(
            "SELECT schema_version, (SELECT version_num FROM alembic_version) FROM version_info",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((schema, revision.as_str()), (12, OPTUNA_ALEMBIC_REVISION));
    let journal: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(journal, "wal");
}

#[test]
fn an_optuna_database_at_another_revision_is_refused_untouched() {
    let cases = [
        (
            "v3.0.0.d",
            "this database has Optuna schema revision `v3.0.0.d`, older than the `v3.2.0.a` hpo reads (Optuna 3.2 to 5.0); upgrade it with `optuna storage upgrade --storage sqlite:///PATH`",
        ),
        (
            "v5.1.0.a",
            "this database has Optuna schema revision `v5.1.0.a`, newer than the `v3.2.0.a` this hpo reads (Optuna 3.2 to 5.0); update hpo to one that reads it",
        ),
    ];
    for (revision, message) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.sqlite");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY); INSERT INTO alembic_version VALUES ('{revision}');"))
            .unwrap();
        drop(conn);
        let err = SqliteStorage::open(&path).unwrap_err();
        assert_eq!(err.to_string(), message);
        let conn = rusqlite::Connection::open(&path).unwrap();
        let tables: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 1, "nothing was created");
    }
}

/// A database with a few trials, closed, and the page of one of its indexes, whose
/// header the damage tests overwrite.
fn database_and_an_index_page(dir: &std::path::Path) -> (std::path::PathBuf, u64) {
    let path = dir.join("hpo.sqlite");
    let db = SqliteStorage::open(&path).unwrap();
    let study = db
        .create_study(&hpo_core::storage::NewStudy {
            name: "s".into(),
            directions: vec![Direction::Minimize],
            metrics: Vec::new(),
            spec_text: None,
            queued: vec![],
        })
        .unwrap();
    for value in 0..50 {
        let trial = db.create_running_trial(study, None, &[]).unwrap().unwrap();
        db.finish_trial(trial.id, TrialState::Complete, &[f64::from(value)]).unwrap();
    }
    drop(db);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    let page: u64 = conn
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = 'ix_hpo_trials_study_number'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (path, page)
}

/// Overwrites the cell count in the header of `page` (1-based, 4 KiB pages).
fn damage_page(path: &std::path::Path, page: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start((page - 1) * 4096 + 3)).unwrap();
    file.write_all(&[0xff, 0xff]).unwrap();
}

#[test]
fn a_damaged_file_is_refused_for_writing_and_its_check_names_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let (path, page) = database_and_an_index_page(dir.path());
    assert_eq!(SqliteStorage::check_file(&path).unwrap(), Vec::<String>::new());
    damage_page(&path, page);
    let before = std::fs::read(&path).unwrap();
    let err = SqliteStorage::open(&path).unwrap_err();
    assert!(matches!(err, Error::Damaged { .. }), "{err}");
    assert!(err.to_string().contains(&format!("page {page}")), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "nothing was written");
    let problems = SqliteStorage::check_file(&path).unwrap();
    assert!(problems.iter().any(|it| it.contains(&format!("page {page}"))), "{problems:?}");
}

#[test]
fn two_connections_share_a_study_without_duplicate_numbers() {
    let db = temp_db();
    let study = db
        .create_study(&hpo_core::storage::NewStudy {
            name: "shared".into(),
            directions: vec![Direction::Minimize],
            metrics: Vec::new(),
            spec_text: None,
            queued: vec![],
        })
        .unwrap();
    let other = SqliteStorage::open(&db.path).unwrap();
    std::thread::scope(|scope| {
        for storage in [&db.storage, &other] {
            scope.spawn(move || {
                while let Some(trial) = storage.create_running_trial(study, Some(30), &[]).unwrap()
                {
                    storage.finish_trial(trial.id, TrialState::Complete, &[1.0]).unwrap();
                }
            });
        }
    });
    let numbers: Vec<u64> = db.trials(study, None).unwrap().iter().map(|t| t.number).collect();
    assert_eq!(numbers, (0..30).collect::<Vec<_>>());
}

#[test]
fn a_studys_curves_are_read_in_one_pass_without_a_sort() {
    let db = temp_db();
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {STUDY_METRIC_CURVES}")).unwrap();
    let plan: Vec<String> =
        stmt.query_map([1], |row| row.get(3)).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(
        plan,
        [
            "SEARCH t USING COVERING INDEX ix_trials_study_id (study_id=?)",
            "SEARCH m USING PRIMARY KEY (trial_id=?)"
        ]
    );
}

#[test]
fn trials_finished_since_a_time_are_found_through_an_index() {
    let db = temp_db();
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    let sql = FINISHED_SINCE.replace("{states}", "'COMPLETE'");
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let plan: Vec<String> = stmt
        .query_map(rusqlite::params![1, "2026-01-01"], |row| row.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        plan[0],
        "SEARCH trials USING INDEX ix_hpo_trials_study_complete (study_id=? AND datetime_complete>?)",
        "{plan:#?}"
    );
}

#[test]
fn the_budget_is_counted_through_indexes_without_scanning_the_trials() {
    let db = temp_db();
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {BUDGET_COUNTED}")).unwrap();
    let plan: Vec<String> = stmt
        .query_map(rusqlite::params![1, "a", "b"], |row| row.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // Every trials lookup is bounded by a state or a number, or driven from the
    // attribute-key index; none walks all of a study's trials.
    for line in &plan {
        assert!(!line.starts_with("SCAN") || line == "SCAN CONSTANT ROW", "{plan:#?}");
        assert!(!line.ends_with("ix_hpo_trials_study_state (study_id=?)"), "{plan:#?}");
    }
}

/// The same cases on a real PostgreSQL server (scripts/pg-test-cluster.sh).
mod conformance_postgres {
    hpo_core::storage_conformance_tests!(|| {
        let url = crate::testing::cluster().new_database();
        crate::pg::PostgresStorage::open(&url).unwrap()
    });
}
