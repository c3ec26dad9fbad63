//! `--db`: an SQLite file (the default, `db/hpo.sqlite`) or a PostgreSQL database
//! (`postgresql://USER:PASSWORD@HOST:PORT/DATABASE`), opened for a command that
//! reads or one that writes. A URL's password never reaches a message: [`shown`]
//! is what commands print.

use std::ops::Deref;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hpo_core::storage::Storage;
use hpo_store::SqliteStorage;
use hpo_store::pg::{PostgresStorage, is_postgres_url, redacted};

/// An open study database.
pub enum Database {
    /// An SQLite file (shared with its background checkpoints, when it has them).
    Sqlite(std::sync::Arc<SqliteStorage>),
    /// A PostgreSQL database.
    Postgres(Box<PostgresStorage>),
}

impl Deref for Database {
    type Target = dyn Storage;

    fn deref(&self) -> &Self::Target {
        match self {
            Database::Sqlite(it) => it.as_ref(),
            Database::Postgres(it) => it.as_ref(),
        }
    }
}

impl Database {
    /// Moves an SQLite file's write-ahead log into the file, as a run does when it
    /// ends; nothing to do on PostgreSQL.
    pub fn checkpoint(&self) {
        if let Database::Sqlite(it) = self {
            it.checkpoint();
        }
    }

    /// For a process that writes many trials (`hpo run`, `hpo serve`): an SQLite
    /// file's write-ahead log is moved into the file by a thread of its own every
    /// `every` (see [`SqliteStorage::checkpoint_in_background`]), until the
    /// returned guard is dropped, so no commit waits for the disk. Nothing to do on
    /// PostgreSQL.
    pub fn checkpoint_in_background(
        &self,
        every: std::time::Duration,
    ) -> Result<Option<hpo_store::BackgroundCheckpoints>> {
        match self {
            Database::Sqlite(it) => Ok(Some(it.checkpoint_in_background(every)?)),
            Database::Postgres(_) => Ok(None),
        }
    }

    /// The storage to share between threads (`hpo serve`).
    pub fn into_shared(self) -> std::sync::Arc<dyn Storage> {
        match self {
            Database::Sqlite(it) => it,
            Database::Postgres(it) => std::sync::Arc::new(*it),
        }
    }
}

/// The PostgreSQL URL `db` is, if it is one.
pub fn postgres_url(db: &Path) -> Option<&str> {
    db.to_str().filter(|it| is_postgres_url(it))
}

/// `db` as commands print it: the file's path, or the URL without its password.
pub fn shown(db: &Path) -> String {
    postgres_url(db).map_or_else(|| db.display().to_string(), redacted)
}

/// Where the command trials of the studies in `db` keep their folders: beside an
/// SQLite file (`db/hpo.sqlite` → `db/hpo-trials/`), or `hpo-trials/` in the
/// folder hpo runs in for a PostgreSQL database (each host keeps its own trials'
/// output).
pub fn trials_root(db: &Path) -> PathBuf {
    match postgres_url(db) {
        Some(_) => PathBuf::from("hpo-trials"),
        None => hpo_command::trials_root(db),
    }
}

fn connect(url: &str, read_only: bool) -> Result<Database> {
    let opened =
        if read_only { PostgresStorage::open_read_only(url) } else { PostgresStorage::open(url) };
    opened.map(|it| Database::Postgres(Box::new(it))).map_err(|err| {
        anyhow::anyhow!(
            "{err}; check the URL (postgresql://USER:PASSWORD@HOST:PORT/DATABASE), that the server runs and accepts this user, and that the database exists (`createdb`)"
        )
    })
}

/// Opens `db` for a command that records trials, creating an SQLite file (and its
/// folder) when `create`; `quick_check` checks an SQLite file first (see
/// [`SqliteStorage::open`]).
pub fn open_writable(db: &Path, create: bool, quick_check: bool) -> Result<Database> {
    if let Some(url) = postgres_url(db) {
        return connect(url, false);
    }
    if create {
        if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
    } else {
        crate::must_exist(db)?;
    }
    let opened =
        if quick_check { SqliteStorage::open(db) } else { SqliteStorage::open_without_check(db) };
    opened.map(|it| Database::Sqlite(it.into())).map_err(|err| crate::explain_open_error(db, err))
}

/// Opens `db`, which must exist, for a command that only reads it: an SQLite file
/// is not changed by a byte, nor is a PostgreSQL database (see
/// [`PostgresStorage::open_read_only`]).
pub fn open_readable(db: &Path) -> Result<Database> {
    if let Some(url) = postgres_url(db) {
        return connect(url, true);
    }
    crate::must_exist(db)?;
    SqliteStorage::open_read_only(db)
        .map(|it| Database::Sqlite(it.into()))
        .map_err(|err| crate::explain_open_error(db, err))
}
