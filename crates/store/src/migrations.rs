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
    (
        4,
        "0004_hpo_trials_complete_index",
        include_str!("../../../db/migrations/0004_hpo_trials_complete_index.sql"),
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
    check_optuna_revision(conn)?;
    Ok(applied)
}

/// Refuses a database Optuna made at another schema revision: it must be upgraded
/// by Optuna first (writing into, or even reading, a schema hpo does not know
/// would go wrong).
fn check_optuna_revision(conn: &Connection) -> Result<(), Error> {
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
        compare_revision(revision)?;
    }
    Ok(())
}

/// Refuses an Optuna schema revision other than the one hpo reads.
pub(crate) fn compare_revision(revision: Option<String>) -> Result<(), Error> {
    if let Some(found) = revision
        && found != OPTUNA_ALEMBIC_REVISION
    {
        return Err(if revision_order(&found) < revision_order(OPTUNA_ALEMBIC_REVISION) {
            Error::OlderOptunaSchema { found, expected: OPTUNA_ALEMBIC_REVISION }
        } else {
            Error::NewerOptunaSchema { found, expected: OPTUNA_ALEMBIC_REVISION }
        });
    }
    Ok(())
}

/// An Optuna alembic revision (`v3.2.0.a`: the Optuna version that introduced it,
/// then a letter) as something to compare; a revision of another form sorts after
/// every one of that form (a future Optuna's).
fn revision_order(revision: &str) -> (Vec<u64>, String) {
    let parts: Vec<&str> = revision.trim_start_matches('v').split('.').collect();
    let numbers: Option<Vec<u64>> = parts.iter().take(3).map(|it| it.parse().ok()).collect();
    match numbers {
        Some(numbers) if parts.len() == 4 => (numbers, parts[3].to_owned()),
        _ => (vec![u64::MAX], revision.to_owned()),
    }
}

/// Makes a database opened read-only readable by hpo without writing a byte to it:
/// checks that no newer hpo or other Optuna schema wrote it, then gives each hpo
/// table that its missing migrations would have made an empty stand-in in the
/// connection's own temporary schema (a database Optuna wrote has none of hpo's
/// tables: no curves besides Optuna's, no study file, no verdicts).
pub(crate) fn prepare_read_only(conn: &Connection) -> Result<(), Error> {
    let has_table = |name: &str| -> Result<bool, Error> {
        Ok(conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [name],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    };
    let applied = if has_table("hpo_schema_migrations")? {
        applied_version(conn)?
    } else {
        check_optuna_revision(conn)?;
        0
    };
    for (_, _, sql) in MIGRATIONS.iter().filter(|m| m.0 > applied) {
        for statement in sql.split(';') {
            let Some((name, body)) = hpo_table(statement) else { continue };
            if !has_table(&name)? {
                conn.execute_batch(&format!("CREATE TEMP TABLE {name} {body}"))?;
            }
        }
    }
    Ok(())
}

/// An hpo table's name and column list from its `CREATE TABLE hpo_... (...)`
/// statement, without references to other tables (a temporary table cannot point
/// into the database file). PostgreSQL's migrations are read the same way.
pub(crate) fn hpo_table(statement: &str) -> Option<(String, String)> {
    let code: String = statement
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let start = code.find("CREATE TABLE ")? + "CREATE TABLE ".len();
    let rest = &code[start..];
    let name_len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
    let name = rest[..name_len].to_owned();
    if !name.starts_with("hpo_") {
        return None;
    }
    let mut body = rest[name_len..].trim().to_owned();
    while let Some(at) = body.find(" REFERENCES ") {
        let end = body[at..].find(')').map_or(body.len(), |it| at + it + 1);
        body.replace_range(at..end, "");
    }
    Some((name, body))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpo_tables_are_found_in_the_migrations_without_references() {
        let tables: Vec<(String, String)> = MIGRATIONS
            .iter()
            .flat_map(|(_, _, sql)| sql.split(';').filter_map(hpo_table).collect::<Vec<_>>())
            .collect();
        let names: Vec<&str> = tables.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["hpo_study_files", "hpo_trial_metrics", "hpo_pruner_verdicts"]);
        for (name, body) in &tables {
            assert!(body.starts_with('(') && !body.contains("REFERENCES"), "{name}: {body}");
        }
        // Each stand-in is valid SQL.
        let conn = Connection::open_in_memory().unwrap();
        for (name, body) in &tables {
            conn.execute_batch(&format!("CREATE TEMP TABLE {name} {body}")).unwrap();
        }
    }
}
