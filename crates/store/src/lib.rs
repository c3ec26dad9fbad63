//! hpo-store: [`SqliteStorage`], hpo's Storage on one SQLite file.
//!
//! The schema IS Optuna's RDB schema, version 12 (alembic revision v3.2.0.a), so
//! `optuna.load_study(storage="sqlite:///db/hpo.sqlite")` and optuna-dashboard read
//! every study, trial, parameter, value and intermediate value hpo writes, and hpo
//! reads databases Optuna wrote. What Optuna has no place for lives in tables of our
//! own (`hpo_*`): every named metric per step, and the study file as written.
//!
//! Migrations are the SQL files in db/migrations, applied in order and recorded in
//! `hpo_schema_migrations`. Concurrency: WAL journal, a busy timeout, and one short
//! `BEGIN IMMEDIATE` transaction per Storage call, so several processes can share a
//! file. Start reading at [`SqliteStorage::open`]; the value encodings Optuna uses
//! are in [`encode`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod encode;
pub mod json;
mod migrations;
pub mod pg;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hpo_core::distribution::{Distribution, ParamValue};
use hpo_core::pruner::Verdict;
use hpo_core::storage::{NewStudy, NewTrial, ReportedStep, Storage, StudyCopy, TrialOutcome};
use hpo_core::study::{Direction, Study, StudyId, StudySummary};
use hpo_core::trial::{AttrValue, FrozenTrial, MetricPoint, Timestamp, TrialId, TrialState, attr};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

pub use migrations::MIGRATIONS;

/// hpo-store's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite itself failed (IO, locking, a constraint).
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// Optuna wrote the database at another schema revision; Optuna must upgrade it
    /// before hpo can use it.
    #[error(
        "this database has Optuna schema revision `{found}`, older than the `{expected}` hpo reads (Optuna 3.2 to 5.0); upgrade it with `optuna storage upgrade --storage sqlite:///PATH`"
    )]
    OlderOptunaSchema {
        /// The alembic revision the database has.
        found: String,
        /// The revision hpo reads, [`OPTUNA_ALEMBIC_REVISION`].
        expected: &'static str,
    },
    /// A newer Optuna wrote the database, at a schema revision this hpo does not know.
    #[error(
        "this database has Optuna schema revision `{found}`, newer than the `{expected}` this hpo reads (Optuna 3.2 to 5.0); update hpo to one that reads it"
    )]
    NewerOptunaSchema {
        /// The alembic revision the database has.
        found: String,
        /// The revision hpo reads, [`OPTUNA_ALEMBIC_REVISION`].
        expected: &'static str,
    },
    /// A newer hpo applied migrations this one does not know.
    #[error(
        "this database was written by a newer hpo (migration {found}; this hpo knows up to {known}); upgrade hpo"
    )]
    NewerSchema {
        /// The highest migration version applied to the database.
        found: i64,
        /// The highest migration version this hpo knows.
        known: i64,
    },
    /// A stored value hpo cannot decode (a trial state, a distribution, a value type);
    /// says which.
    #[error("corrupt value in the database: {0}")]
    Corrupt(String),
    /// SQLite's quick check found the file damaged; nothing was written to it.
    #[error(
        "the database file is damaged, and hpo writes nothing into a damaged file: {}{}",
        problems.iter().take(3).cloned().collect::<Vec<_>>().join("; "),
        if problems.len() > 3 { format!("; and {} more", problems.len() - 3) } else { String::new() }
    )]
    Damaged {
        /// What SQLite's quick check reported, a line each.
        problems: Vec<String>,
    },
    /// The file cannot be written (its permissions, its folder, the mount).
    #[error("the database file is read-only")]
    ReadOnly,
    /// The system refused a thread (of [`SqliteStorage::checkpoint_in_background`]).
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    /// PostgreSQL refused a statement or the connection failed.
    #[error("PostgreSQL: {}", pg::message(.0))]
    Postgres(#[from] postgres::Error),
    /// No connection to a PostgreSQL server could be made.
    #[error("cannot connect to PostgreSQL at {database}: {reason}")]
    Connect {
        /// The database's address, its password left out.
        database: String,
        /// What the client said.
        reason: String,
    },
    /// The connection to a PostgreSQL server was lost and not made again in time.
    #[error(
        "lost the connection to PostgreSQL at {database} and could not make it again for {seconds} s (last: {last}); nothing half-written was kept: run the same command again once the server is back"
    )]
    Unreachable {
        /// The database's address, its password left out.
        database: String,
        /// How long reconnecting was tried.
        seconds: u64,
        /// The last error.
        last: String,
    },
}

impl Error {
    /// Whether SQLite refused to write because the file, its folder or the mount is
    /// read-only.
    pub fn is_read_only(&self) -> bool {
        matches!(self, Error::ReadOnly)
            || matches!(self, Error::Sqlite(err) if err.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly))
    }

    /// Whether a write failed in the file system: a full disk, a file-size limit, an
    /// I/O error. SQLite rolled the transaction back; what was stored is intact.
    pub fn is_write_failure(&self) -> bool {
        matches!(self, Error::Sqlite(err) if matches!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure)
        ))
    }

    /// Whether the file is not an SQLite database at all.
    pub fn is_not_a_database(&self) -> bool {
        matches!(self, Error::Sqlite(err) if err.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase))
    }
}

/// How long a call waits for another process's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// The alembic revision of Optuna's schema version 12.
pub const OPTUNA_ALEMBIC_REVISION: &str = "v3.2.0.a";

/// The thread of [`SqliteStorage::checkpoint_in_background`]: dropping it stops
/// the thread after one last checkpoint.
pub struct BackgroundCheckpoints {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for BackgroundCheckpoints {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A Storage on one SQLite file, safe to share between threads and processes.
pub struct SqliteStorage {
    conn: Mutex<Connection>,
    /// Connections for reads alone ([`SqliteStorage::with_readers`]): a read on one
    /// of them waits for no write of this process.
    readers: Vec<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage").finish_non_exhaustive()
    }
}

pub(crate) fn store_err(err: impl Into<Error>) -> hpo_core::Error {
    hpo_core::Error::Storage(Box::new(err.into()))
}

pub(crate) type CoreResult<T> = hpo_core::Result<T>;

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path` and applies pending
    /// migrations. A database Optuna created gets hpo's tables added; its own are
    /// left as they are.
    ///
    /// Refuses, before writing a byte, a file it cannot write ([`Error::ReadOnly`],
    /// leaving no `-wal` or `-shm` file behind) and a file that fails SQLite's quick
    /// check ([`Error::Damaged`]).
    pub fn open(path: &Path) -> Result<SqliteStorage, Error> {
        Self::open_checked(path, true)
    }

    /// [`SqliteStorage::open`] without the quick check, whose cost grows with the
    /// file: for commands run once per trial or per step (`hpo ask`, `hpo tell`,
    /// `hpo report-step`), which would otherwise read the whole file each time. A
    /// read-only file is still refused before anything is written.
    pub fn open_without_check(path: &Path) -> Result<SqliteStorage, Error> {
        Self::open_checked(path, false)
    }

    fn open_checked(path: &Path, quick_check: bool) -> Result<SqliteStorage, Error> {
        let conn = Connection::open(path)?;
        // Asked before any statement runs: reading a WAL database would create its
        // -wal and -shm files.
        if conn.is_readonly(rusqlite::MAIN_DB)? {
            return Err(Error::ReadOnly);
        }
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let problems =
            if quick_check { pragma_problems(&conn, "quick_check")? } else { Vec::new() };
        if !problems.is_empty() {
            let problems =
                problems.iter().map(|it| it.trim_start_matches("integrity: ").to_owned()).collect();
            return Err(Error::Damaged { problems });
        }
        Self::from_connection(conn)
    }

    /// Opens an existing database without writing a byte to it: what reading
    /// commands use, on any database in Optuna's schema, writable or not. hpo's own
    /// tables that the file lacks (Optuna wrote it, or an older hpo) read as empty;
    /// when SQLite cannot share the WAL index of a read-only folder, reads the file
    /// as immutable.
    pub fn open_read_only(path: &Path) -> Result<SqliteStorage, Error> {
        let conn = read_only_connection(path)?;
        migrations::prepare_read_only(&conn)?;
        Ok(SqliteStorage { conn: Mutex::new(conn), readers: Vec::new() })
    }

    /// Checks the file at `path` without writing to it, as [`SqliteStorage::check`]
    /// does, even where the damage keeps hpo from opening it as a study database.
    pub fn check_file(path: &Path) -> Result<Vec<String>, Error> {
        check_connection(&read_only_connection(path)?)
    }

    /// A private in-memory database, for tests.
    pub fn open_in_memory() -> Result<SqliteStorage, Error> {
        Self::from_connection(Connection::open_in_memory()?)
    }

    fn from_connection(mut conn: Connection) -> Result<SqliteStorage, Error> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Switching a new file to WAL takes an exclusive lock, and SQLite reports a
        // busy database at once instead of waiting when two processes open a new
        // file together; so the set-up is retried until the busy timeout.
        let started = std::time::Instant::now();
        loop {
            match Self::set_up(&mut conn) {
                Err(Error::Sqlite(err)) if is_busy(&err) && started.elapsed() < BUSY_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(err) => return Err(err),
                Ok(()) => return Ok(SqliteStorage { conn: Mutex::new(conn), readers: Vec::new() }),
            }
        }
    }

    fn set_up(conn: &mut Connection) -> Result<(), Error> {
        // WAL lets readers go on while one writer commits; NORMAL sync is durable
        // against process crashes (kill -9), which is the failure we guard.
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // The log is moved into the database every WAL_AUTOCHECKPOINT_PAGES pages
        // rather than SQLite's 1,000 (4 MB), so on a small disk the log never holds
        // more room than the database needs to take it back.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Negative: KiB. SQLite's default 2 MiB holds a few thousand trials.
        conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
        migrations::apply(conn)
    }

    /// Checks the file and hpo's own invariants: SQLite's `integrity_check` and
    /// `foreign_key_check`, and that no study has two trials with one number.
    /// Returns the problems found; empty when the database is sound.
    pub fn check(&self) -> Result<Vec<String>, Error> {
        check_connection(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock rolls its transaction back on drop, so
        // the connection is still consistent.
        self.conn.lock().unwrap_or_else(|it| it.into_inner())
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction (the write lock is taken up
    /// front, so two processes never deadlock upgrading read locks).
    ///
    /// When the file system refuses a write (a full disk), the transaction has
    /// rolled back; the write-ahead log is then checkpointed into the database and
    /// truncated, which gives back the space the log held, and `f` runs once more.
    /// Without this a log as large as the free space fails every later write,
    /// however small the database.
    fn write<T>(&self, f: impl Fn(&Transaction<'_>) -> CoreResult<T>) -> CoreResult<T> {
        let mut conn = self.lock();
        let once = |conn: &mut Connection| -> CoreResult<T> {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(store_err)?;
            let out = f(&tx)?;
            tx.commit().map_err(store_err)?;
            Ok(out)
        };
        match once(&mut conn) {
            Err(err) if is_write_failure(&err) && checkpoint(&conn, CHECKPOINT_WAIT).is_ok() => {
                once(&mut conn)
            }
            outcome => outcome,
        }
    }

    /// For a long-lived process that commits often (`hpo serve`): its commits stop
    /// moving the write-ahead log into the database file themselves (each such
    /// move waits for the disk twice, every few dozen commits, with every other
    /// request of the process waiting behind it); the thread of the returned
    /// [`BackgroundCheckpoints`] does it instead, until dropped. Each `every` it
    /// copies what the log holds on a connection of its own, without stopping
    /// writers. Under steady writes the log would still grow without end (it starts
    /// over only once all of it is copied with no commit in between), so once it
    /// passes `WAL_AUTOCHECKPOINT_PAGES` × 8 pages the thread also takes this
    /// storage's lock for the moment it takes to copy the rest and truncate it.
    /// Nothing to do for an in-memory database.
    pub fn checkpoint_in_background(
        self: &Arc<Self>,
        every: Duration,
    ) -> Result<BackgroundCheckpoints, Error> {
        let conn = self.lock();
        let Some(path) = conn.path().filter(|it| !it.is_empty()).map(PathBuf::from) else {
            return Ok(BackgroundCheckpoints { stop: None, thread: None });
        };
        let copier = Connection::open(&path)?;
        copier.busy_timeout(CHECKPOINT_WAIT)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        drop(conn);
        let storage = Arc::downgrade(self);
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("hpo-checkpoints".into())
            .spawn(move || {
                let restart_from = WAL_AUTOCHECKPOINT_PAGES * 8;
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stop_rx.recv_timeout(every)
                {
                    let log = copier.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                        row.get::<_, i64>(1)
                    });
                    if log.is_ok_and(|pages| pages >= restart_from) {
                        let Some(storage) = storage.upgrade() else { break };
                        let conn = storage.lock();
                        let _ = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()));
                    }
                }
                if let Some(storage) = storage.upgrade() {
                    storage.checkpoint();
                }
            })
            .map_err(Error::Thread)?;
        Ok(BackgroundCheckpoints { stop: Some(stop_tx), thread: Some(thread) })
    }

    /// Moves the write-ahead log into the database file and truncates it, waiting
    /// at most a moment for other connections' readers: what a run does as it ends,
    /// so the database file alone holds the study and the log takes no space.
    /// Returns whether the log was emptied (another process reading keeps it).
    pub fn checkpoint(&self) -> bool {
        checkpoint(&self.lock(), CHECKPOINT_WAIT).is_ok()
    }

    /// Adds `n` connections that only read, for a process whose threads read and
    /// write at once (`hpo serve`): the write-ahead log lets readers go on while a
    /// write commits, so a read no longer waits for the writes of other requests.
    /// Nothing to do for an in-memory database.
    pub fn with_readers(mut self, n: usize) -> Result<SqliteStorage, Error> {
        let path = self.lock().path().filter(|it| !it.is_empty()).map(PathBuf::from);
        let Some(path) = path else { return Ok(self) };
        for _ in 0..n {
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
            let conn = Connection::open_with_flags(&path, flags)?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
            self.readers.push(Mutex::new(conn));
        }
        Ok(self)
    }

    /// Runs `f` in a read transaction: on a free reader connection, if there is
    /// one, else on the main connection.
    fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> CoreResult<T>) -> CoreResult<T> {
        let free = self.readers.iter().find_map(|reader| reader.try_lock().ok());
        let mut conn = match free {
            Some(reader) => reader,
            None => self.lock(),
        };
        let tx =
            conn.transaction_with_behavior(TransactionBehavior::Deferred).map_err(store_err)?;
        f(&tx)
    }
}

/// The ids of a study's trials in some states (`{states}`, a quoted list) that
/// finished at or after a time: through ix_hpo_trials_study_complete, it reads only
/// those trials.
const FINISHED_SINCE: &str = "SELECT trial_id FROM trials WHERE study_id = ?1 AND datetime_complete >= ?2 AND state IN ({states}) ORDER BY number";

/// How many pages the write-ahead log grows to before a commit moves it into the
/// database file (512 KiB of 4 KiB pages).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 128;

/// How long a checkpoint waits for other connections' readers before giving up.
const CHECKPOINT_WAIT: Duration = Duration::from_secs(1);

/// `PRAGMA wal_checkpoint(TRUNCATE)`, waiting at most `wait` for readers; an error
/// when the log could not be emptied. A connection not in WAL mode has nothing to do.
fn checkpoint(conn: &Connection, wait: Duration) -> Result<(), Error> {
    conn.busy_timeout(wait)?;
    let outcome = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get::<_, i64>(0));
    conn.busy_timeout(BUSY_TIMEOUT)?;
    match outcome? {
        0 => Ok(()),
        _ => Err(Error::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            Some("the write-ahead log is in use by another connection".into()),
        ))),
    }
}

/// Whether an error of a storage call is the file system refusing a write (a full
/// disk, a file-size limit): what was stored is intact.
pub fn is_write_failure(err: &hpo_core::Error) -> bool {
    match err {
        hpo_core::Error::Storage(inner) => {
            inner.downcast_ref::<Error>().is_some_and(Error::is_write_failure)
        }
        _ => false,
    }
}

/// A read-only connection to `path` that writes nothing, not even a WAL index where
/// the folder is read-only (it then reads the file as immutable).
fn read_only_connection(path: &Path) -> Result<Connection, Error> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
    let probe = |conn: &Connection| -> Result<(), Error> {
        conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let cannot_share_wal_index = |err: &Error| {
        matches!(err, Error::Sqlite(e) if matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly)
        ))
    };
    let conn = match probe(&conn) {
        Ok(()) => conn,
        // Only a WAL index that a read-only folder cannot hold is worked around:
        // reading as immutable ignores locks, so it is no answer to a busy file.
        Err(err) if !cannot_share_wal_index(&err) => return Err(err),
        Err(_) => {
            let uri = format!("file:{}?immutable=1", path.display());
            let conn = Connection::open_with_flags(uri, flags)?;
            probe(&conn)?;
            conn
        }
    };
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// What SQLite's `integrity_check` (all of it: a damaged index that keeps it
/// from comparing tables and indexes falls back to `quick_check`, which does not
/// compare them), `foreign_key_check` and a duplicate trial number report, a
/// problem a line.
fn check_connection(conn: &Connection) -> Result<Vec<String>, Error> {
    let mut problems = pragma_problems(conn, "integrity_check")?;
    if problems.iter().any(|it| it.contains("malformed")) {
        for problem in pragma_problems(conn, "quick_check")? {
            if !problems.contains(&problem) {
                problems.push(problem);
            }
        }
    }
    // A table too damaged to read is told as a problem, not as a failed check.
    let mut rows = |sql: &str, problem: &dyn Fn(&rusqlite::Row<'_>) -> rusqlite::Result<String>| {
        let found = conn.prepare(sql).and_then(|mut stmt| {
            stmt.query_map([], |row| problem(row))?.collect::<rusqlite::Result<Vec<String>>>()
        });
        match found {
            Ok(found) => problems.extend(found),
            Err(err) => {
                problems.push(format!("cannot read the file for this check ({err}): {sql}"))
            }
        }
    };
    rows("PRAGMA foreign_key_check", &|row| {
        Ok(format!("a row of `{}` points at a missing row", row.get::<_, String>(0)?))
    });
    rows(
        "SELECT s.study_name, t.number, COUNT(*) FROM trials t JOIN studies s ON s.study_id = t.study_id \
         GROUP BY t.study_id, t.number HAVING COUNT(*) > 1",
        &|row| {
            Ok(format!(
                "study `{}` has {} trials numbered {}",
                row.get::<_, String>(0)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(1)?
            ))
        },
    );
    Ok(problems)
}

/// The lines of `PRAGMA pragma` (`integrity_check`, `quick_check`) other than
/// "ok", each prefixed "integrity: ". SQLite stopping part-way (a page it cannot
/// read) is one more line; a file that is not a database is an error.
fn pragma_problems(conn: &Connection, pragma: &str) -> Result<Vec<String>, Error> {
    let mut problems = Vec::new();
    let mut push = |text: &str| {
        for line in text.lines().map(str::trim) {
            if !line.is_empty() && line != "ok" && !line.starts_with("*** in database") {
                problems.push(format!("integrity: {line}"));
            }
        }
    };
    let outcome = conn.prepare(&format!("PRAGMA {pragma}")).and_then(|mut stmt| {
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            push(&row.get::<_, String>(0)?);
        }
        Ok(())
    });
    match outcome {
        Ok(()) => {}
        Err(err) if err.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            push(&format!("SQLite stopped reading: {err}"));
        }
        Err(err) => return Err(err.into()),
    }
    Ok(problems)
}

/// Statements through the connection's statement cache: hpo's statements are
/// small, and parsing one costs more than running it.
trait CachedStatements {
    /// Runs `sql`; the rows changed.
    fn run(&self, sql: &str, args: impl rusqlite::Params) -> rusqlite::Result<usize>;
    /// The first row of `sql`, mapped by `f`.
    fn one<T>(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T>;
}

impl CachedStatements for Connection {
    fn run(&self, sql: &str, args: impl rusqlite::Params) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(args)
    }

    fn one<T>(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(args, f)
    }
}

/// The pages a connection keeps in memory, in KiB: the indexes and recent rows
/// of studies of tens of thousands of trials.
const PAGE_CACHE_KIB: i64 = 64 * 1024;

/// Prepared statements kept per connection: every statement hpo runs, with room.
const STATEMENT_CACHE: usize = 128;

pub(crate) fn now() -> Timestamp {
    let since =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp(since.as_micros() as i64)
}

fn trial_state(tx: &Transaction<'_>, trial: TrialId) -> CoreResult<TrialState> {
    let state: Option<String> = tx
        .query_row("SELECT state FROM trials WHERE trial_id = ?1", [trial.0], |row| row.get(0))
        .optional()
        .map_err(store_err)?;
    let state = state.ok_or(hpo_core::Error::UnknownTrial(trial))?;
    TrialState::from_optuna_str(&state)
        .ok_or_else(|| store_err(Error::Corrupt(format!("trial state `{state}`"))))
}

/// The id of the study's trial numbered `number`. Asking for the id alone lets
/// SQLite pick ix_hpo_trials_study_number (both columns equal) over scanning the
/// study's trials in ix_hpo_trials_study_state, which also covers the state.
fn trial_id_by_number(
    tx: &Transaction<'_>,
    study: StudyId,
    number: u64,
) -> CoreResult<Option<TrialId>> {
    let number = i64::try_from(number).unwrap_or(i64::MAX);
    tx.one(
        "SELECT trial_id FROM trials WHERE study_id = ?1 AND number = ?2",
        params![study.0, number],
        |row| row.get(0).map(TrialId),
    )
    .optional()
    .map_err(store_err)
}

fn require_running(tx: &Transaction<'_>, trial: TrialId) -> CoreResult<()> {
    match trial_state(tx, trial)? {
        TrialState::Running => Ok(()),
        state if state.is_finished() => Err(hpo_core::Error::TrialFinished { trial, state }),
        state => Err(hpo_core::Error::TrialNotRunning { trial, state }),
    }
}

fn study_exists(tx: &Transaction<'_>, study: StudyId) -> CoreResult<()> {
    let found: Option<i64> = tx
        .query_row("SELECT study_id FROM studies WHERE study_id = ?1", [study.0], |row| row.get(0))
        .optional()
        .map_err(store_err)?;
    found.map(|_| ()).ok_or(hpo_core::Error::UnknownStudy(study))
}

/// The trials of study ?1 that count toward its budget (?2 = `attr::INTERRUPTED`,
/// ?3 = `attr::CONFIRM_OF`); see `budget_spent`.
const BUDGET_COUNTED: &str = "SELECT (SELECT COALESCE(MAX(number) + 1, 0) FROM trials WHERE study_id = ?1)
                  - (SELECT COUNT(*) FROM trials WHERE study_id = ?1 AND state = 'WAITING')
                  - (SELECT COUNT(*) FROM trial_system_attributes a JOIN trials t ON t.trial_id = a.trial_id
                     WHERE a.\"key\" = ?2 AND t.study_id = ?1 AND t.state = 'FAIL'
                       AND NOT EXISTS (SELECT 1 FROM trial_system_attributes c
                                       WHERE c.trial_id = t.trial_id AND c.\"key\" = ?3))
                  - (SELECT COUNT(*) FROM trial_system_attributes a CROSS JOIN trials t ON t.trial_id = a.trial_id
                     WHERE a.\"key\" = ?3 AND t.study_id = ?1 AND t.state != 'WAITING')";

fn budget_spent(tx: &Transaction<'_>, study: StudyId, budget: Option<usize>) -> CoreResult<bool> {
    let Some(budget) = budget else { return Ok(false) };
    // Trial numbers are dense (each is MAX(number) + 1, and trials are never
    // deleted), so the study has MAX(number) + 1 trials: one index lookup. From that
    // come off the few that do not count: queued ones, interrupted failures and
    // confirm runs, each found through an index. A COUNT over the study's trials
    // would cost a millisecond per ask at 10,000 trials.
    let counted: i64 = tx
        .prepare_cached(BUDGET_COUNTED)
        .and_then(|mut stmt| {
            stmt.query_row(params![study.0, attr::INTERRUPTED, attr::CONFIRM_OF], |row| row.get(0))
        })
        .map_err(store_err)?;
    Ok(counted as usize >= budget)
}

/// Every metric point of a study's trials in one pass: its trials by id (from
/// `ix_trials_study_id`), each trial's points in primary-key order (trial_id, step,
/// name), so SQLite sorts nothing (a test checks the plan).
const STUDY_METRIC_CURVES: &str = "SELECT m.trial_id, m.step, m.name, m.value
     FROM trials t JOIN hpo_trial_metrics m ON m.trial_id = t.trial_id
     WHERE t.study_id = ?1
     ORDER BY t.trial_id, m.step, m.name";

fn insert_trial(
    tx: &Transaction<'_>,
    study: StudyId,
    state: TrialState,
    new: &NewTrial,
) -> CoreResult<TrialId> {
    // Numbers run 0, 1, 2, ... without gaps (as in Optuna), so this is the count,
    // read from an index instead of counted.
    let number: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(number) + 1, 0) FROM trials WHERE study_id = ?1",
            [study.0],
            |row| row.get(0),
        )
        .map_err(store_err)?;
    let start = (state == TrialState::Running).then(|| encode::datetime(now()));
    tx.run(
        "INSERT INTO trials (number, study_id, state, datetime_start) VALUES (?1, ?2, ?3, ?4)",
        params![number, study.0, state.as_optuna_str(), start],
    )
    .map_err(store_err)?;
    let trial = TrialId(tx.last_insert_rowid());
    insert_params(tx, trial, &new.params)?;
    for (key, value) in &new.system_attrs {
        set_attr(tx, "trial_system_attributes", trial, key, value)?;
    }
    Ok(trial)
}

fn insert_params(
    tx: &Transaction<'_>,
    trial: TrialId,
    params: &[(String, ParamValue, Distribution)],
) -> CoreResult<()> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(store_err)?;
    for (name, value, distribution) in params {
        let internal = distribution.to_internal(value).ok_or_else(|| {
            store_err(Error::Corrupt(format!(
                "value {value} of `{name}` is outside {}",
                distribution.describe()
            )))
        })?;
        stmt.execute(params![trial.0, name, internal, encode::distribution_json(distribution)])
            .map_err(store_err)?;
    }
    Ok(())
}

/// `step` as Optuna stores it, a signed 64-bit integer: a larger one would read
/// back negative, and is refused.
fn step_number(step: u64) -> CoreResult<i64> {
    i64::try_from(step).map_err(|_| hpo_core::Error::StepOutOfRange(step))
}

/// Records one step of a Running trial (checked by the caller) in `tx`: the study
/// metric's value, every metric, and the heartbeat (a report is a sign of life).
fn report_in(
    tx: &Transaction<'_>,
    trial: TrialId,
    step: i64,
    value: f64,
    metrics: &[(String, f64)],
) -> CoreResult<()> {
    let (stored, kind) = encode::encode_value(value);
    tx.run(
        "INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, intermediate_value_type)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (trial_id, step) DO UPDATE SET intermediate_value = excluded.intermediate_value,
             intermediate_value_type = excluded.intermediate_value_type",
        params![trial.0, step, stored, kind],
    )
    .map_err(store_err)?;
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO hpo_trial_metrics (trial_id, step, name, value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (trial_id, step, name) DO UPDATE SET value = excluded.value",
        )
        .map_err(store_err)?;
    for (name, value) in metrics {
        let value = (!value.is_nan()).then_some(*value);
        stmt.execute(params![trial.0, step, name, value]).map_err(store_err)?;
    }
    beat(tx, trial)
}

/// Marks a Running trial (checked by the caller) alive now, in `tx`.
fn beat(tx: &Transaction<'_>, trial: TrialId) -> CoreResult<()> {
    tx.run(
        "INSERT INTO trial_heartbeats (trial_id, heartbeat) VALUES (?1, ?2)
         ON CONFLICT (trial_id) DO UPDATE SET heartbeat = excluded.heartbeat",
        params![trial.0, encode::datetime(now())],
    )
    .map_err(store_err)?;
    Ok(())
}

fn set_attr(
    tx: &Transaction<'_>,
    table: &str,
    trial: TrialId,
    key: &str,
    value: &AttrValue,
) -> CoreResult<()> {
    let sql = format!(
        "INSERT INTO {table} (trial_id, \"key\", value_json) VALUES (?1, ?2, ?3)
         ON CONFLICT (trial_id, \"key\") DO UPDATE SET value_json = excluded.value_json"
    );
    tx.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.execute(params![trial.0, key, encode::attr_json(value)]))
        .map_err(store_err)?;
    Ok(())
}

/// Ends a Running trial (checked by the caller) in `tx`: its state, end time and,
/// for a Complete one, its values (one row per objective); its heartbeat is dropped.
fn finish_in(
    tx: &Transaction<'_>,
    trial: TrialId,
    state: TrialState,
    values: &[f64],
) -> CoreResult<()> {
    tx.run(
        "UPDATE trials SET state = ?2, datetime_complete = ?3 WHERE trial_id = ?1",
        params![trial.0, state.as_optuna_str(), encode::datetime(now())],
    )
    .map_err(store_err)?;
    if state == TrialState::Complete {
        insert_values(tx, trial, values)?;
    }
    tx.run("DELETE FROM trial_heartbeats WHERE trial_id = ?1", [trial.0]).map_err(store_err)?;
    Ok(())
}

/// Writes a trial's values, one row per objective.
fn insert_values(tx: &Transaction<'_>, trial: TrialId, values: &[f64]) -> CoreResult<()> {
    for (objective, &value) in values.iter().enumerate() {
        let (stored, kind) = encode::encode_value(value);
        tx.prepare_cached(
            "INSERT INTO trial_values (trial_id, objective, value, value_type) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut stmt| stmt.execute(params![trial.0, objective as i64, stored, kind]))
        .map_err(store_err)?;
    }
    Ok(())
}

/// Every study's summary, ordered by name; its best value only when `best` (that
/// reads each complete trial's value). The counts come from the (study, state)
/// index alone, and the last activity from three index look-ups: the latest end,
/// the latest start among running trials, and the start of the newest trial.
fn summaries(tx: &Transaction<'_>, best: bool) -> CoreResult<Vec<StudySummary>> {
    let ids: Vec<i64> = tx
        .prepare_cached("SELECT study_id FROM studies ORDER BY study_name")
        .and_then(|mut stmt| stmt.query_map([], |row| row.get(0))?.collect())
        .map_err(store_err)?;
    let mut out = Vec::new();
    for id in ids {
        let Some(study) = load_study(tx, "s.study_id = ?1", &id)? else { continue };
        let mut counts = Vec::new();
        let mut stmt = tx
            .prepare_cached("SELECT state, COUNT(*) FROM trials WHERE study_id = ?1 GROUP BY state")
            .map_err(store_err)?;
        let mut rows = stmt.query([id]).map_err(store_err)?;
        while let Some(row) = rows.next().map_err(store_err)? {
            let state: String = row.get(0).map_err(store_err)?;
            let n = row.get::<_, i64>(1).map_err(store_err)? as usize;
            counts.push((TrialState::from_optuna_str(&state), n));
        }
        let mut summary = summary_of(study, &counts);
        let last: Option<String> = tx
            .one(
                "SELECT MAX(at) FROM (
                     SELECT MAX(datetime_complete) AS at FROM trials WHERE study_id = ?1
                     UNION ALL SELECT MAX(datetime_start) FROM trials WHERE study_id = ?1 AND state = 'RUNNING'
                     UNION ALL SELECT datetime_start FROM (
                         SELECT datetime_start FROM trials WHERE study_id = ?1 ORDER BY number DESC LIMIT 1))",
                [id],
                |row| row.get(0),
            )
            .map_err(store_err)?;
        summary.last_activity = last.as_deref().and_then(encode::parse_datetime);
        if best {
            let aggregate = match summary.study.direction {
                Direction::Minimize => "MIN",
                Direction::Maximize => "MAX",
            };
            // Infinite values are stored as NULL with a type; finite ones decide the best.
            summary.best_value = tx
                .one(
                    &format!(
                        "SELECT {aggregate}(v.value) FROM trial_values v JOIN trials t ON t.trial_id = v.trial_id
                         WHERE t.study_id = ?1 AND t.state = 'COMPLETE' AND v.objective = 0 AND v.value_type = 'FINITE'
                           AND t.trial_id NOT IN (SELECT trial_id FROM trial_system_attributes WHERE \"key\" = ?2)"
                    ),
                    params![id, attr::CONFIRM_OF],
                    |row| row.get::<_, Option<f64>>(0),
                )
                .map_err(store_err)?;
        }
        out.push(summary);
    }
    Ok(out)
}

/// Reads trials with everything attached; `filter` is a WHERE clause on `t`.
fn load_trials(
    tx: &Transaction<'_>,
    filter: &str,
    args: &[&dyn rusqlite::ToSql],
) -> CoreResult<Vec<FrozenTrial>> {
    let mut trials: Vec<FrozenTrial> = Vec::new();
    let mut index: HashMap<i64, usize> = HashMap::new();
    {
        let sql = format!(
            "SELECT t.trial_id, t.number, t.state, t.datetime_start, t.datetime_complete
             FROM trials t WHERE {filter} ORDER BY t.number, t.trial_id"
        );
        let mut stmt = tx.prepare_cached(&sql).map_err(store_err)?;
        let mut rows = stmt.query(args).map_err(store_err)?;
        while let Some(row) = rows.next().map_err(store_err)? {
            let id: i64 = row.get(0).map_err(store_err)?;
            let state: String = row.get(2).map_err(store_err)?;
            let start: Option<String> = row.get(3).map_err(store_err)?;
            let complete: Option<String> = row.get(4).map_err(store_err)?;
            index.insert(id, trials.len());
            let number = row.get::<_, Option<i64>>(1).map_err(store_err)?.unwrap_or(0) as u64;
            let state = TrialState::from_optuna_str(&state)
                .ok_or_else(|| store_err(Error::Corrupt(format!("trial state `{state}`"))))?;
            let mut trial = FrozenTrial::new(TrialId(id), number, state);
            trial.datetime_start = start.as_deref().and_then(encode::parse_datetime);
            trial.datetime_complete = complete.as_deref().and_then(encode::parse_datetime);
            trials.push(trial);
        }
    }
    if trials.is_empty() {
        return Ok(trials);
    }
    let joined = |table: &str, columns: &str| {
        format!(
            "SELECT x.trial_id, {columns} FROM {table} x JOIN trials t ON t.trial_id = x.trial_id WHERE {filter}"
        )
    };
    {
        let mut stmt = tx
            .prepare_cached(&joined(
                "trial_params",
                "x.param_name, x.param_value, x.distribution_json",
            ))
            .map_err(store_err)?;
        let mut rows = stmt.query(args).map_err(store_err)?;
        let mut parsed: HashMap<String, Distribution> = HashMap::new();
        while let Some(row) = rows.next().map_err(store_err)? {
            let Some(&idx) = index.get(&row.get::<_, i64>(0).map_err(store_err)?) else { continue };
            let name: String = row.get(1).map_err(store_err)?;
            let internal: f64 = row.get(2).map_err(store_err)?;
            let json: String = row.get(3).map_err(store_err)?;
            add_param(&mut trials[idx], &mut parsed, name, internal, json)?;
        }
    }
    {
        let mut stmt = tx
            .prepare_cached(&format!(
                "{} ORDER BY x.trial_id, x.objective",
                joined("trial_values", "x.value, x.value_type")
            ))
            .map_err(store_err)?;
        let mut rows = stmt.query(args).map_err(store_err)?;
        // Rows come in objective order, so each trial's list is in the study's.
        let mut values: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        while let Some(row) = rows.next().map_err(store_err)? {
            let Some(&idx) = index.get(&row.get::<_, i64>(0).map_err(store_err)?) else { continue };
            let value: Option<f64> = row.get(1).map_err(store_err)?;
            let kind: String = row.get(2).map_err(store_err)?;
            values
                .entry(idx)
                .or_default()
                .push(encode::decode_value(value, &kind).map_err(store_err)?);
        }
        for (idx, values) in values {
            trials[idx].set_values(&values);
        }
    }
    {
        let mut stmt = tx
            .prepare_cached(&joined(
                "trial_intermediate_values",
                "x.step, x.intermediate_value, x.intermediate_value_type",
            ))
            .map_err(store_err)?;
        let mut rows = stmt.query(args).map_err(store_err)?;
        while let Some(row) = rows.next().map_err(store_err)? {
            let Some(&idx) = index.get(&row.get::<_, i64>(0).map_err(store_err)?) else { continue };
            let step: i64 = row.get(1).map_err(store_err)?;
            let value: Option<f64> = row.get(2).map_err(store_err)?;
            let kind: String = row.get(3).map_err(store_err)?;
            trials[idx]
                .intermediate_values
                .insert(step as u64, encode::decode_value(value, &kind).map_err(store_err)?);
        }
    }
    for (table, system) in [("trial_user_attributes", false), ("trial_system_attributes", true)] {
        let mut stmt =
            tx.prepare_cached(&joined(table, "x.\"key\", x.value_json")).map_err(store_err)?;
        let mut rows = stmt.query(args).map_err(store_err)?;
        while let Some(row) = rows.next().map_err(store_err)? {
            let Some(&idx) = index.get(&row.get::<_, i64>(0).map_err(store_err)?) else { continue };
            let key: String = row.get(1).map_err(store_err)?;
            let json: Option<String> = row.get(2).map_err(store_err)?;
            let value = encode::parse_attr_json(json.as_deref().unwrap_or("null"));
            let attrs =
                if system { &mut trials[idx].system_attrs } else { &mut trials[idx].user_attrs };
            attrs.insert(key, value);
        }
    }
    Ok(trials)
}

fn load_study(
    tx: &Transaction<'_>,
    filter: &str,
    arg: &dyn rusqlite::ToSql,
) -> CoreResult<Option<Study>> {
    let sql = format!(
        "SELECT s.study_id, s.study_name,
                (SELECT direction FROM study_directions d WHERE d.study_id = s.study_id AND d.objective = 0),
                (SELECT value_json FROM study_system_attributes a WHERE a.study_id = s.study_id AND a.\"key\" = 'study:metric_names'),
                (SELECT spec_text FROM hpo_study_files f WHERE f.study_id = s.study_id),
                (SELECT group_concat(direction, ',') FROM
                    (SELECT direction FROM study_directions d WHERE d.study_id = s.study_id ORDER BY objective))
         FROM studies s WHERE {filter}"
    );
    let row = tx
        .query_row(&sql, [arg], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, Option<String>>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, Option<String>>(5)?,
            ))
        })
        .optional()
        .map_err(store_err)?;
    let Some((id, name, direction, metric_names, spec_text, all)) = row else { return Ok(None) };
    Ok(Some(study_of(
        id,
        name,
        direction.as_deref(),
        metric_names.as_deref(),
        spec_text,
        all.as_deref(),
    )))
}

/// A study from its stored columns: its first direction, its metric names (JSON),
/// its study file, and every direction in objective order, comma-separated.
pub(crate) fn study_of(
    id: i64,
    name: String,
    direction: Option<&str>,
    metric_names: Option<&str>,
    spec_text: Option<String>,
    all: Option<&str>,
) -> Study {
    let direction = direction.and_then(Direction::from_optuna_str).unwrap_or(Direction::Minimize);
    let mut directions: Vec<Direction> = all
        .unwrap_or("")
        .split(',')
        .filter(|it| !it.is_empty())
        .map(|it| Direction::from_optuna_str(it).unwrap_or(Direction::Minimize))
        .collect();
    if directions.is_empty() {
        directions.push(direction);
    }
    let metrics = metric_names.map(encode::metric_names).unwrap_or_default();
    let metric = metrics.first().cloned();
    Study { id: StudyId(id), name, direction, metric, spec_text, directions, metrics }
}

/// A study's summary from its trial counts by state; no best value or activity yet.
pub(crate) fn summary_of(study: Study, counts: &[(Option<TrialState>, usize)]) -> StudySummary {
    let mut summary = StudySummary {
        study,
        n_trials: 0,
        n_complete: 0,
        n_pruned: 0,
        n_fail: 0,
        n_running: 0,
        n_waiting: 0,
        best_value: None,
        last_activity: None,
    };
    for &(state, n) in counts {
        summary.n_trials += n;
        match state {
            Some(TrialState::Complete) => summary.n_complete += n,
            Some(TrialState::Pruned) => summary.n_pruned += n,
            Some(TrialState::Fail) => summary.n_fail += n,
            Some(TrialState::Running) => summary.n_running += n,
            Some(TrialState::Waiting) => summary.n_waiting += n,
            None => {}
        }
    }
    summary
}

/// A trial's parameters with their distributions, as they are inserted.
pub(crate) fn params_of(trial: &FrozenTrial) -> Vec<(String, ParamValue, Distribution)> {
    trial
        .params
        .iter()
        .filter_map(|(name, value)| {
            let distribution = trial.distributions.get(name)?;
            Some((name.clone(), value.clone(), distribution.clone()))
        })
        .collect()
}

/// Adds a stored parameter (`internal`, its distribution as `json`) to `trial`;
/// `parsed` keeps the distributions parsed so far, since a study's trials share a few.
pub(crate) fn add_param(
    trial: &mut FrozenTrial,
    parsed: &mut HashMap<String, Distribution>,
    name: String,
    internal: f64,
    json: String,
) -> CoreResult<()> {
    let distribution = match parsed.get(&json) {
        Some(it) => it.clone(),
        None => {
            let it = encode::parse_distribution_json(&json).map_err(store_err)?;
            parsed.insert(json, it.clone());
            it
        }
    };
    let value = distribution.to_external(internal).ok_or_else(|| {
        store_err(Error::Corrupt(format!(
            "`{name}` = {internal} is outside {}",
            distribution.describe()
        )))
    })?;
    trial.params.insert(name.clone(), value);
    trial.distributions.insert(name, distribution);
    Ok(())
}

impl Storage for SqliteStorage {
    fn create_study(&self, new: &NewStudy) -> CoreResult<StudyId> {
        self.write(|tx| {
            let taken: Option<i64> = tx
                .query_row("SELECT study_id FROM studies WHERE study_name = ?1", [&new.name], |row| row.get(0))
                .optional()
                .map_err(store_err)?;
            if taken.is_some() {
                return Err(hpo_core::Error::StudyExists(new.name.clone()));
            }
            tx.run("INSERT INTO studies (study_name) VALUES (?1)", [&new.name]).map_err(store_err)?;
            let study = StudyId(tx.last_insert_rowid());
            for (objective, direction) in new.directions.iter().enumerate() {
                tx.run(
                    "INSERT INTO study_directions (direction, study_id, objective) VALUES (?1, ?2, ?3)",
                    params![direction.as_optuna_str(), study.0, objective as i64],
                )
                .map_err(store_err)?;
            }
            if !new.metrics.is_empty() {
                tx.run(
                    "INSERT INTO study_system_attributes (study_id, \"key\", value_json) VALUES (?1, 'study:metric_names', ?2)",
                    params![study.0, encode::metric_names_json(&new.metrics)],
                )
                .map_err(store_err)?;
            }
            if let Some(text) = &new.spec_text {
                tx.run(
                    "INSERT INTO hpo_study_files (study_id, spec_text, created_at) VALUES (?1, ?2, ?3)",
                    params![study.0, text, encode::datetime(now())],
                )
                .map_err(store_err)?;
            }
            for trial in &new.queued {
                insert_trial(tx, study, TrialState::Waiting, trial)?;
            }
            Ok(study)
        })
    }

    fn find_study(&self, name: &str) -> CoreResult<Option<Study>> {
        self.read(|tx| load_study(tx, "s.study_name = ?1", &name))
    }

    fn list_studies(&self) -> CoreResult<Vec<StudySummary>> {
        self.read(|tx| summaries(tx, true))
    }

    fn study_counts(&self) -> CoreResult<Vec<StudySummary>> {
        self.read(|tx| summaries(tx, false))
    }

    fn count_toward_budget(&self, study: StudyId) -> CoreResult<usize> {
        self.read(|tx| {
            let counted: i64 = tx
                .prepare_cached(BUDGET_COUNTED)
                .and_then(|mut stmt| {
                    stmt.query_row(params![study.0, attr::INTERRUPTED, attr::CONFIRM_OF], |row| {
                        row.get(0)
                    })
                })
                .map_err(store_err)?;
            Ok(usize::try_from(counted).unwrap_or(0))
        })
    }

    fn create_running_trial_with(
        &self,
        study: StudyId,
        budget: Option<usize>,
        system_attrs: &[(String, AttrValue)],
        propose: &dyn Fn(u64) -> Option<NewTrial>,
    ) -> CoreResult<Option<FrozenTrial>> {
        self.write(|tx| {
            study_exists(tx, study)?;
            if budget_spent(tx, study, budget)? {
                return Ok(None);
            }
            let new = NewTrial { params: Vec::new(), system_attrs: system_attrs.to_vec() };
            let id = insert_trial(tx, study, TrialState::Running, &new)?;
            // Everything about the new trial is known; reading it back would cost six queries.
            let (number, start): (i64, Option<String>) = tx
                .query_row(
                    "SELECT number, datetime_start FROM trials WHERE trial_id = ?1",
                    [id.0],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map_err(store_err)?;
            let mut trial = FrozenTrial::new(id, number as u64, TrialState::Running);
            trial.system_attrs = system_attrs.iter().cloned().collect();
            trial.datetime_start = start.as_deref().and_then(encode::parse_datetime);
            if let Some(proposal) = propose(trial.number) {
                insert_params(tx, id, &proposal.params)?;
                for (key, value) in &proposal.system_attrs {
                    set_attr(tx, "trial_system_attributes", id, key, value)?;
                }
                proposal.apply_to(&mut trial);
            }
            Ok(Some(trial))
        })
    }

    fn enqueue_trial(&self, study: StudyId, new: &NewTrial) -> CoreResult<TrialId> {
        self.write(|tx| {
            study_exists(tx, study)?;
            insert_trial(tx, study, TrialState::Waiting, new)
        })
    }

    fn claim_waiting_trial(
        &self,
        study: StudyId,
        budget: Option<usize>,
        system_attrs: &[(String, AttrValue)],
    ) -> CoreResult<Option<FrozenTrial>> {
        // Most studies queue nothing: a plain read spares them a write transaction.
        let any_waiting = self.read(|tx| {
            tx.one(
                "SELECT 1 FROM trials WHERE study_id = ?1 AND state = 'WAITING' LIMIT 1",
                [study.0],
                |_| Ok(()),
            )
            .optional()
            .map_err(store_err)
        })?;
        if any_waiting.is_none() {
            return Ok(None);
        }
        self.write(|tx| {
            study_exists(tx, study)?;
            if budget_spent(tx, study, budget)? {
                return Ok(None);
            }
            // Retries first (few: found through the attribute key's index), a
            // grid's in grid order; then the lowest number.
            let retry: Option<i64> = tx
                .query_row(
                    "SELECT t.trial_id FROM trial_system_attributes r \
                     JOIN trials t ON t.trial_id = r.trial_id \
                     LEFT JOIN trial_system_attributes g \
                       ON g.trial_id = t.trial_id AND g.key = ?3 \
                     WHERE r.key = ?2 AND t.study_id = ?1 AND t.state = 'WAITING' \
                     ORDER BY CAST(g.value_json AS REAL), t.number LIMIT 1",
                    params![study.0, attr::RETRY_OF, attr::GRID_POINT],
                    |row| row.get(0),
                )
                .optional()
                .map_err(store_err)?;
            let id: Option<i64> = match retry {
                Some(id) => Some(id),
                None => tx
                    .query_row(
                        "SELECT trial_id FROM trials WHERE study_id = ?1 AND state = 'WAITING' ORDER BY number LIMIT 1",
                        [study.0],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(store_err)?,
            };
            let Some(id) = id else { return Ok(None) };
            tx.run(
                "UPDATE trials SET state = 'RUNNING', datetime_start = ?2 WHERE trial_id = ?1 AND state = 'WAITING'",
                params![id, encode::datetime(now())],
            )
            .map_err(store_err)?;
            for (key, value) in system_attrs {
                set_attr(tx, "trial_system_attributes", TrialId(id), key, value)?;
            }
            Ok(load_trials(tx, "t.trial_id = ?1", &[&id])?.pop())
        })
    }

    fn set_trial_params(
        &self,
        trial: TrialId,
        params: &[(String, ParamValue, Distribution)],
    ) -> CoreResult<()> {
        self.write(|tx| {
            require_running(tx, trial)?;
            insert_params(tx, trial, params)
        })
    }

    fn report(
        &self,
        trial: TrialId,
        step: u64,
        value: f64,
        metrics: &[(String, f64)],
    ) -> CoreResult<()> {
        let step = step_number(step)?;
        self.write(|tx| {
            require_running(tx, trial)?;
            report_in(tx, trial, step, value, metrics)
        })
    }

    fn report_steps(&self, trial: TrialId, steps: &[ReportedStep]) -> CoreResult<()> {
        ReportedStep::check_all(steps)?;
        self.write(|tx| {
            require_running(tx, trial)?;
            for step in steps {
                report_in(tx, trial, step.step as i64, step.value, &step.metrics)?;
            }
            Ok(())
        })
    }

    fn set_trial_user_attr(&self, trial: TrialId, key: &str, value: &AttrValue) -> CoreResult<()> {
        self.write(|tx| {
            require_running(tx, trial)?;
            set_attr(tx, "trial_user_attributes", trial, key, value)
        })
    }

    fn set_trial_system_attr(
        &self,
        trial: TrialId,
        key: &str,
        value: &AttrValue,
    ) -> CoreResult<()> {
        self.write(|tx| {
            require_running(tx, trial)?;
            set_attr(tx, "trial_system_attributes", trial, key, value)
        })
    }

    fn record_pruner_verdict(
        &self,
        trial: TrialId,
        step: u64,
        verdict: &Verdict,
    ) -> CoreResult<()> {
        self.write(|tx| {
            require_running(tx, trial)?;
            tx.prepare_cached(
                "INSERT INTO hpo_pruner_verdicts (trial_id, step, prune, reason) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (trial_id, step) DO UPDATE SET prune = excluded.prune, reason = excluded.reason",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![trial.0, step as i64, verdict.prune, verdict.reason])
            })
            .map_err(store_err)?;
            Ok(())
        })
    }

    fn pruner_verdicts(&self, trial: TrialId) -> CoreResult<Vec<(u64, Verdict)>> {
        self.read(|tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT step, prune, reason FROM hpo_pruner_verdicts WHERE trial_id = ?1 ORDER BY step",
                )
                .map_err(store_err)?;
            stmt.query_map([trial.0], |row| {
                let verdict = Verdict { prune: row.get(1)?, reason: row.get(2)? };
                Ok((row.get::<_, i64>(0)? as u64, verdict))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(store_err)
        })
    }

    fn end_trial(
        &self,
        trial: TrialId,
        state: TrialState,
        values: &[f64],
        steps: &[ReportedStep],
        user_attrs: &[(String, AttrValue)],
        system_attrs: &[(String, AttrValue)],
    ) -> CoreResult<()> {
        ReportedStep::check_all(steps)?;
        self.write(|tx| {
            require_running(tx, trial)?;
            for step in steps {
                report_in(tx, trial, step.step as i64, step.value, &step.metrics)?;
            }
            for (key, value) in user_attrs {
                set_attr(tx, "trial_user_attributes", trial, key, value)?;
            }
            for (key, value) in system_attrs {
                set_attr(tx, "trial_system_attributes", trial, key, value)?;
            }
            finish_in(tx, trial, state, values)
        })
    }

    fn finish_trial(&self, trial: TrialId, state: TrialState, values: &[f64]) -> CoreResult<()> {
        self.write(|tx| {
            require_running(tx, trial)?;
            finish_in(tx, trial, state, values)
        })
    }

    fn fail_and_enqueue(
        &self,
        trial: TrialId,
        study: StudyId,
        retry: Option<&NewTrial>,
    ) -> CoreResult<Option<TrialId>> {
        self.write(|tx| {
            require_running(tx, trial)?;
            finish_in(tx, trial, TrialState::Fail, &[])?;
            match retry {
                Some(new) => {
                    study_exists(tx, study)?;
                    Ok(Some(insert_trial(tx, study, TrialState::Waiting, new)?))
                }
                None => Ok(None),
            }
        })
    }

    fn record_heartbeat(&self, trial: TrialId) -> CoreResult<()> {
        self.write(|tx| {
            require_running(tx, trial)?;
            beat(tx, trial)
        })
    }

    fn trials(
        &self,
        study: StudyId,
        states: Option<&[TrialState]>,
    ) -> CoreResult<Vec<FrozenTrial>> {
        self.read(|tx| {
            study_exists(tx, study)?;
            // The states go into the query (through ix_hpo_trials_study_state), so
            // asking for the few Running trials of a large study reads only those.
            let filter = match states {
                None => "t.study_id = ?1".to_owned(),
                Some(states) => {
                    let list: Vec<String> =
                        states.iter().map(|s| format!("'{}'", s.as_optuna_str())).collect();
                    format!("t.study_id = ?1 AND t.state IN ({})", list.join(", "))
                }
            };
            load_trials(tx, &filter, &[&study.0])
        })
    }

    fn set_study_user_attrs(
        &self,
        study: StudyId,
        attrs: &[(String, AttrValue)],
    ) -> CoreResult<()> {
        self.write(|tx| {
            study_exists(tx, study)?;
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO study_user_attributes (study_id, \"key\", value_json) VALUES (?1, ?2, ?3)
                     ON CONFLICT (study_id, \"key\") DO UPDATE SET value_json = excluded.value_json",
                )
                .map_err(store_err)?;
            for (key, value) in attrs {
                stmt.execute(params![study.0, key, encode::attr_json(value)]).map_err(store_err)?;
            }
            Ok(())
        })
    }

    fn study_user_attrs(&self, study: StudyId) -> CoreResult<BTreeMap<String, AttrValue>> {
        self.read(|tx| {
            study_exists(tx, study)?;
            let mut stmt = tx
                .prepare_cached(
                    "SELECT \"key\", value_json FROM study_user_attributes WHERE study_id = ?1",
                )
                .map_err(store_err)?;
            let mut rows = stmt.query([study.0]).map_err(store_err)?;
            let mut out = BTreeMap::new();
            while let Some(row) = rows.next().map_err(store_err)? {
                let key: String = row.get(0).map_err(store_err)?;
                let json: Option<String> = row.get(1).map_err(store_err)?;
                out.insert(key, encode::parse_attr_json(json.as_deref().unwrap_or("null")));
            }
            Ok(out)
        })
    }

    fn finished_trial_ids(
        &self,
        study: StudyId,
        states: &[TrialState],
        since: Option<Timestamp>,
    ) -> CoreResult<Vec<TrialId>> {
        self.read(|tx| {
            study_exists(tx, study)?;
            let list: Vec<String> =
                states.iter().map(|s| format!("'{}'", s.as_optuna_str())).collect();
            let sql = FINISHED_SINCE.replace("{states}", &list.join(", "));
            let since = since.map_or_else(String::new, encode::datetime);
            let mut stmt = tx.prepare_cached(&sql).map_err(store_err)?;
            let mut ids = Vec::new();
            for id in stmt
                .query_map(params![study.0, since], |row| row.get::<_, i64>(0))
                .map_err(store_err)?
            {
                ids.push(TrialId(id.map_err(store_err)?));
            }
            Ok(ids)
        })
    }

    fn trials_at_step(
        &self,
        study: StudyId,
        states: &[TrialState],
        step: u64,
    ) -> CoreResult<Vec<FrozenTrial>> {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        self.read(|tx| {
            study_exists(tx, study)?;
            let list: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_optuna_str())).collect();
            // Each trial's point at or before the step and its first point after,
            // each one look-up in the (trial_id, step) unique index; a trial with
            // neither comes once, with NULLs.
            let sql = format!(
                "SELECT t.trial_id, t.number, t.state, v.step, v.intermediate_value, v.intermediate_value_type
                 FROM trials t LEFT JOIN trial_intermediate_values v ON v.trial_intermediate_value_id IN (
                     (SELECT b.trial_intermediate_value_id FROM trial_intermediate_values b
                      WHERE b.trial_id = t.trial_id AND b.step <= ?2 ORDER BY b.step DESC LIMIT 1),
                     (SELECT a.trial_intermediate_value_id FROM trial_intermediate_values a
                      WHERE a.trial_id = t.trial_id AND a.step > ?2 ORDER BY a.step LIMIT 1))
                 WHERE t.study_id = ?1 AND t.state IN ({states})",
                states = list.join(", ")
            );
            let mut stmt = tx.prepare_cached(&sql).map_err(store_err)?;
            let mut rows = stmt.query(params![study.0, step]).map_err(store_err)?;
            let mut by_id: BTreeMap<i64, FrozenTrial> = BTreeMap::new();
            while let Some(row) = rows.next().map_err(store_err)? {
                let id: i64 = row.get(0).map_err(store_err)?;
                let number = row.get::<_, Option<i64>>(1).map_err(store_err)?.unwrap_or(0) as u64;
                let state: String = row.get(2).map_err(store_err)?;
                let state = TrialState::from_optuna_str(&state)
                    .ok_or_else(|| store_err(Error::Corrupt(format!("trial state `{state}`"))))?;
                let trial =
                    by_id.entry(id).or_insert_with(|| FrozenTrial::new(TrialId(id), number, state));
                let Some(at) = row.get::<_, Option<i64>>(3).map_err(store_err)? else { continue };
                let value: Option<f64> = row.get(4).map_err(store_err)?;
                let kind: String = row.get(5).map_err(store_err)?;
                trial
                    .intermediate_values
                    .insert(at as u64, encode::decode_value(value, &kind).map_err(store_err)?);
            }
            let mut trials: Vec<FrozenTrial> = by_id.into_values().collect();
            trials.sort_by_key(|t| (t.number, t.id.0));
            Ok(trials)
        })
    }

    fn trial_by_number(&self, study: StudyId, number: u64) -> CoreResult<Option<FrozenTrial>> {
        self.read(|tx| {
            study_exists(tx, study)?;
            let Some(id) = trial_id_by_number(tx, study, number)? else { return Ok(None) };
            Ok(load_trials(tx, "t.trial_id = ?1", &[&id.0])?.pop())
        })
    }

    fn trial_state_by_number(
        &self,
        study: StudyId,
        number: u64,
    ) -> CoreResult<Option<(TrialId, TrialState)>> {
        self.read(|tx| {
            study_exists(tx, study)?;
            let Some(id) = trial_id_by_number(tx, study, number)? else { return Ok(None) };
            Ok(Some((id, trial_state(tx, id)?)))
        })
    }

    fn trial_outcomes(&self, study: StudyId) -> CoreResult<Vec<TrialOutcome>> {
        self.read(|tx| {
            study_exists(tx, study)?;
            let mut stmt = tx
                .prepare_cached(
                    "SELECT t.number, t.state, v.value, v.value_type, i.step, i.intermediate_value, i.intermediate_value_type
                     FROM trials t
                     LEFT JOIN trial_values v ON v.trial_id = t.trial_id AND v.objective = 0
                     LEFT JOIN trial_intermediate_values i ON i.trial_id = t.trial_id AND i.step =
                         (SELECT MAX(step) FROM trial_intermediate_values m WHERE m.trial_id = t.trial_id)
                     WHERE t.study_id = ?1 ORDER BY t.number, t.trial_id",
                )
                .map_err(store_err)?;
            let mut rows = stmt.query([study.0]).map_err(store_err)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(store_err)? {
                let state: String = row.get(1).map_err(store_err)?;
                let state = TrialState::from_optuna_str(&state)
                    .ok_or_else(|| store_err(Error::Corrupt(format!("trial state `{state}`"))))?;
                let value = match row.get::<_, Option<String>>(3).map_err(store_err)? {
                    Some(kind) => Some(
                        encode::decode_value(row.get(2).map_err(store_err)?, &kind)
                            .map_err(store_err)?,
                    ),
                    None => None,
                };
                let last_step = match row.get::<_, Option<i64>>(4).map_err(store_err)? {
                    Some(step) => {
                        let kind: String = row.get(6).map_err(store_err)?;
                        let v = encode::decode_value(row.get(5).map_err(store_err)?, &kind)
                            .map_err(store_err)?;
                        Some((step as u64, v))
                    }
                    None => None,
                };
                let number = row.get::<_, Option<i64>>(0).map_err(store_err)?.unwrap_or(0) as u64;
                out.push(TrialOutcome { number, state, value, last_step });
            }
            Ok(out)
        })
    }

    fn trial(&self, trial: TrialId) -> CoreResult<FrozenTrial> {
        self.read(|tx| {
            load_trials(tx, "t.trial_id = ?1", &[&trial.0])?
                .pop()
                .ok_or(hpo_core::Error::UnknownTrial(trial))
        })
    }

    fn metric_curves(&self, trial: TrialId) -> CoreResult<Vec<MetricPoint>> {
        self.read(|tx| {
            let mut stmt = tx
                .prepare_cached("SELECT step, name, value FROM hpo_trial_metrics WHERE trial_id = ?1 ORDER BY step, name")
                .map_err(store_err)?;
            let rows = stmt
                .query_map([trial.0], |row| {
                    Ok(MetricPoint {
                        step: row.get::<_, i64>(0)? as u64,
                        name: row.get(1)?,
                        value: row.get::<_, Option<f64>>(2)?.unwrap_or(f64::NAN),
                    })
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(store_err)?;
            Ok(rows)
        })
    }

    fn study_metric_curves(
        &self,
        study: StudyId,
    ) -> CoreResult<BTreeMap<TrialId, Vec<MetricPoint>>> {
        self.read(|tx| {
            study_exists(tx, study)?;
            let mut stmt = tx.prepare_cached(STUDY_METRIC_CURVES).map_err(store_err)?;
            let mut rows = stmt.query([study.0]).map_err(store_err)?;
            let mut out: BTreeMap<TrialId, Vec<MetricPoint>> = BTreeMap::new();
            while let Some(row) = rows.next().map_err(store_err)? {
                let trial = TrialId(row.get(0).map_err(store_err)?);
                let point = MetricPoint {
                    step: row.get::<_, i64>(1).map_err(store_err)? as u64,
                    name: row.get(2).map_err(store_err)?,
                    value: row.get::<_, Option<f64>>(3).map_err(store_err)?.unwrap_or(f64::NAN),
                };
                // Rows come trial by trial, so a trial's points go to the last entry.
                match out.last_entry() {
                    Some(mut last) if *last.key() == trial => last.get_mut().push(point),
                    _ => {
                        out.insert(trial, vec![point]);
                    }
                }
            }
            Ok(out)
        })
    }

    fn last_heartbeat(&self, trial: TrialId) -> CoreResult<Option<Timestamp>> {
        self.read(|tx| {
            let row: Option<(Option<String>, Option<String>)> = tx
                .query_row(
                    "SELECT (SELECT heartbeat FROM trial_heartbeats h WHERE h.trial_id = t.trial_id), t.datetime_start
                     FROM trials t WHERE t.trial_id = ?1",
                    [trial.0],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(store_err)?;
            let (beat, start) = row.ok_or(hpo_core::Error::UnknownTrial(trial))?;
            Ok(beat.or(start).as_deref().and_then(encode::parse_datetime))
        })
    }

    fn now(&self) -> Timestamp {
        now()
    }

    fn drop_curves(&self, study: StudyId) -> CoreResult<usize> {
        self.write(|tx| {
            study_exists(tx, study)?;
            let finished = "SELECT trial_id FROM trials WHERE study_id = ?1 AND state IN ('COMPLETE', 'PRUNED', 'FAIL')";
            let mut dropped = 0;
            for table in ["trial_intermediate_values", "hpo_trial_metrics"] {
                dropped += tx
                    .execute(&format!("DELETE FROM {table} WHERE trial_id IN ({finished})"), [study.0])
                    .map_err(store_err)?;
            }
            tx.execute(&format!("DELETE FROM hpo_pruner_verdicts WHERE trial_id IN ({finished})"), [study.0])
                .map_err(store_err)?;
            Ok(dropped)
        })
    }

    fn import_study(&self, copy: &StudyCopy) -> CoreResult<StudyId> {
        self.write(|tx| {
            let study = &copy.study;
            let taken: Option<i64> = tx
                .query_row("SELECT study_id FROM studies WHERE study_name = ?1", [&study.name], |row| row.get(0))
                .optional()
                .map_err(store_err)?;
            if taken.is_some() {
                return Err(hpo_core::Error::StudyExists(study.name.clone()));
            }
            tx.run("INSERT INTO studies (study_name) VALUES (?1)", [&study.name]).map_err(store_err)?;
            let id = tx.last_insert_rowid();
            for (objective, direction) in study.directions.iter().enumerate() {
                tx.run(
                    "INSERT INTO study_directions (direction, study_id, objective) VALUES (?1, ?2, ?3)",
                    params![direction.as_optuna_str(), id, objective as i64],
                )
                .map_err(store_err)?;
            }
            if !study.metrics.is_empty() {
                tx.run(
                    "INSERT INTO study_system_attributes (study_id, \"key\", value_json) VALUES (?1, 'study:metric_names', ?2)",
                    params![id, encode::metric_names_json(&study.metrics)],
                )
                .map_err(store_err)?;
            }
            if let Some(text) = &study.spec_text {
                tx.run(
                    "INSERT INTO hpo_study_files (study_id, spec_text, created_at) VALUES (?1, ?2, ?3)",
                    params![id, text, encode::datetime(now())],
                )
                .map_err(store_err)?;
            }
            for (key, value) in &copy.user_attrs {
                tx.run(
                    "INSERT INTO study_user_attributes (study_id, \"key\", value_json) VALUES (?1, ?2, ?3)",
                    params![id, key, encode::attr_json(value)],
                )
                .map_err(store_err)?;
            }
            for it in &copy.trials {
                let t = &it.trial;
                tx.run(
                    "INSERT INTO trials (number, study_id, state, datetime_start, datetime_complete) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        t.number as i64,
                        id,
                        t.state.as_optuna_str(),
                        t.datetime_start.map(encode::datetime),
                        t.datetime_complete.map(encode::datetime)
                    ],
                )
                .map_err(store_err)?;
                let trial = TrialId(tx.last_insert_rowid());
                insert_params(tx, trial, &params_of(t))?;
                insert_values(tx, trial, t.objective_values())?;
                for (step, value) in &t.intermediate_values {
                    let (stored, kind) = encode::encode_value(*value);
                    tx.run(
                        "INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, intermediate_value_type) VALUES (?1, ?2, ?3, ?4)",
                        params![trial.0, *step as i64, stored, kind],
                    )
                    .map_err(store_err)?;
                }
                for (key, value) in &t.user_attrs {
                    set_attr(tx, "trial_user_attributes", trial, key, value)?;
                }
                for (key, value) in &t.system_attrs {
                    set_attr(tx, "trial_system_attributes", trial, key, value)?;
                }
                for point in &it.curves {
                    let value = (!point.value.is_nan()).then_some(point.value);
                    tx.run(
                        "INSERT INTO hpo_trial_metrics (trial_id, step, name, value) VALUES (?1, ?2, ?3, ?4)",
                        params![trial.0, point.step as i64, point.name, value],
                    )
                    .map_err(store_err)?;
                }
                for (step, verdict) in &it.verdicts {
                    tx.run(
                        "INSERT INTO hpo_pruner_verdicts (trial_id, step, prune, reason) VALUES (?1, ?2, ?3, ?4)",
                        params![trial.0, *step as i64, verdict.prune, verdict.reason],
                    )
                    .map_err(store_err)?;
                }
            }
            Ok(StudyId(id))
        })
    }
}

#[cfg(test)]
mod tests;
