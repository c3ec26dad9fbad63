//! Schema migrations: the SQL files of db/migrations, applied in order.
//!
//! Each file runs once, in one transaction, and is recorded in
//! `hpo_schema_migrations`. Released files are never edited (a fixture database per
//! released schema in db/fixtures guards that); changes come as new files.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::{Error, OPTUNA_ALEMBIC_REVISION};

/// (version, name, SQL), in order.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_optuna_schema_v12",
        include_str!("../../../db/migrations/0001_optuna_schema_v12.sql"),
    ),
    (2, "0002_hpo_tables", include_str!("../../../db/migrations/0002_hpo_tables.sql")),
    (
        3,
        "0003_hpo_pruner_verdicts",
        include_str!("../../../db/migrations/0003_hpo_pruner_verdicts.sql"),
    ),
];

/// The highest migration applied, after checking that this hpo can read the
/// database: not written by a newer hpo, and at Optuna's schema revision hpo reads.
fn applied_version(conn: &Connection) -> Result<i64, Error> {
    let applied: i64 =
        conn.query_row("SELECT COALESCE(MAX(version), 0) FROM hpo_schema_migrations", [], |r| {
            r.get(0)
        })?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if applied > known {
        return Err(Error::NewerSchema { found: applied, known });
    }
    // A database Optuna made at another schema revision must be upgraded by Optuna
    // first: writing into a schema we don't know would corrupt it.
    let has_alembic: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if has_alembic.is_some() {
        let revision: Option<String> = conn
            .query_row("SELECT version_num FROM alembic_version LIMIT 1", [], |r| r.get(0))
            .optional()?;
        if let Some(found) = revision
            && found != OPTUNA_ALEMBIC_REVISION
        {
            return Err(Error::UnsupportedOptunaSchema {
                found,
                expected: OPTUNA_ALEMBIC_REVISION,
            });
        }
    }
    Ok(applied)
}

/// Checks, without writing, that a database opened read-only has every migration
/// this hpo knows (a read-only file cannot be brought up to date).
pub(crate) fn check_read_only(conn: &Connection) -> Result<(), Error> {
    let has_table: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'hpo_schema_migrations'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let applied = if has_table.is_some() { applied_version(conn)? } else { 0 };
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if applied < known {
        return Err(Error::OlderSchemaReadOnly { found: applied, known });
    }
    Ok(())
}

pub(crate) fn apply(conn: &mut Connection) -> Result<(), Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS hpo_schema_migrations (
            version INTEGER NOT NULL PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
        )",
    )?;
    let applied = applied_version(&tx)?;
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > applied) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO hpo_schema_migrations (version, name) VALUES (?1, ?2)",
            params![version, name],
        )?;
    }
    tx.commit()?;
    Ok(())
}
