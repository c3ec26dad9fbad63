//! [`PostgresStorage`]: hpo's Storage on a PostgreSQL server, for workers on many
//! hosts sharing one study.
//!
//! The schema is Optuna's RDB schema version 12 as Optuna creates it on PostgreSQL
//! (native enum types for states and directions, SERIAL keys, timestamps without
//! time zone), so `optuna.load_study(storage="postgresql+psycopg2://...")` reads
//! what hpo writes and hpo reads what Optuna wrote; hpo's own tables sit beside it.
//! The migrations are db/migrations/postgres, numbered as SQLite's and applied under
//! an advisory lock, so workers starting together on an empty database make it once.
//!
//! Concurrency: every Storage call that writes more than one statement is one
//! short transaction (READ COMMITTED) whose commit waits for the server's disk; a
//! reported step (its value, metrics and heartbeat) is one statement committed
//! without waiting (see [`Mode`]); reads run each statement on its own. What must
//! not race across hosts — the budget check and the next trial number, the claim
//! of a queued trial — runs under a per-study transaction-scoped advisory lock
//! (`pg_advisory_xact_lock`), so numbers stay dense and unique and a budget is
//! never overshot; a queued trial is claimed `FOR UPDATE SKIP LOCKED`, which keeps
//! another client claiming from the same queue without that lock (Optuna) apart.
//! A lost connection (a server restart, a connection the server cut) is reconnected with
//! backoff and the call run again: the server rolled the cut transaction back, so
//! nothing is written half, and a call whose first try committed unseen knows it
//! (`hpo_call_tokens`: it returns the trial it made instead of making another).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hpo_core::distribution::{Distribution, ParamValue};
use hpo_core::pruner::Verdict;
use hpo_core::storage::{NewStudy, NewTrial, ReportedStep, Storage, StudyCopy, TrialOutcome};
use hpo_core::study::{Direction, Study, StudyId, StudySummary};
use hpo_core::trial::{AttrValue, FrozenTrial, MetricPoint, Timestamp, TrialId, TrialState, attr};
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement};

use crate::{CoreResult, Error, encode, now, store_err};

/// The PostgreSQL migrations: (version, name, SQL), numbered as SQLite's.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_optuna_schema_v12",
        include_str!("../../../db/migrations/postgres/0001_optuna_schema_v12.sql"),
    ),
    (2, "0002_hpo_tables", include_str!("../../../db/migrations/postgres/0002_hpo_tables.sql")),
    (
        3,
        "0003_hpo_pruner_verdicts",
        include_str!("../../../db/migrations/postgres/0003_hpo_pruner_verdicts.sql"),
    ),
    (
        4,
        "0004_hpo_trials_complete_index",
        include_str!("../../../db/migrations/postgres/0004_hpo_trials_complete_index.sql"),
    ),
    (
        5,
        "0005_hpo_call_tokens",
        include_str!("../../../db/migrations/postgres/0005_hpo_call_tokens.sql"),
    ),
];

/// The first key of hpo's advisory locks (the second is a study id, or 0 for
/// migrations): "hpo" in ASCII.
const LOCK_SPACE: i32 = 0x68706f;

/// How long a call keeps trying to reconnect after losing its connection.
const RECONNECT_FOR: Duration = Duration::from_secs(60);

/// Whether `url` names a PostgreSQL database (`postgresql://` or `postgres://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgresql://") || url.starts_with("postgres://")
}

/// `url` without its password, fit for messages and logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_owned(),
    };
    let path = path.map(|p| p.split('?').next().unwrap_or("")).unwrap_or("");
    format!("{scheme}://{authority}/{path}")
}

/// What went wrong, in full: the server's message (and detail) for a refused
/// statement, else the client's error and its causes.
pub fn message(err: &postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        let mut text = format!("{} ({})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(": {detail}"));
        }
        return text;
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// A connection and the statements prepared on it.
struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
    /// Whether a transaction was begun and not ended (a call that panicked).
    open: bool,
}

/// A Storage on a PostgreSQL database, safe to share between threads, processes
/// and hosts.
pub struct PostgresStorage {
    url: String,
    /// Opened by [`PostgresStorage::open_read_only`]: every connection reads only.
    read_only: bool,
    conn: Mutex<Option<Conn>>,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage").field("url", &redacted(&self.url)).finish()
    }
}

/// One call's statements, with the connection's statement cache: in the
/// transaction `once` began for a write, else each its own transaction.
struct Tx<'a> {
    tx: &'a mut Client,
    statements: &'a mut HashMap<String, Statement>,
    /// Whether this runs the call again after a lost connection: the first try may
    /// have committed before the connection went.
    again: bool,
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

fn pg_err(err: postgres::Error) -> hpo_core::Error {
    store_err(Error::Postgres(err))
}

impl Tx<'_> {
    fn statement(&mut self, sql: &str) -> CoreResult<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.tx.prepare(sql).map_err(pg_err)?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn rows(&mut self, sql: &str, params: Params<'_>) -> CoreResult<Vec<Row>> {
        let statement = self.statement(sql)?;
        self.tx.query(&statement, params).map_err(pg_err)
    }

    fn opt(&mut self, sql: &str, params: Params<'_>) -> CoreResult<Option<Row>> {
        let statement = self.statement(sql)?;
        self.tx.query_opt(&statement, params).map_err(pg_err)
    }

    fn one(&mut self, sql: &str, params: Params<'_>) -> CoreResult<Row> {
        let statement = self.statement(sql)?;
        self.tx.query_one(&statement, params).map_err(pg_err)
    }

    fn exec(&mut self, sql: &str, params: Params<'_>) -> CoreResult<u64> {
        let statement = self.statement(sql)?;
        self.tx.execute(&statement, params).map_err(pg_err)
    }
}

/// A column of `row`, or a storage error naming what could not be read.
fn get<'a, T: postgres::types::FromSql<'a>>(row: &'a Row, index: usize) -> CoreResult<T> {
    row.try_get(index).map_err(pg_err)
}

/// An id as PostgreSQL's INTEGER columns hold it.
fn int(id: i64) -> CoreResult<i32> {
    i32::try_from(id).map_err(|_| store_err(Error::Corrupt(format!("id {id} is past INTEGER"))))
}

/// Whether `err` is a lost connection or a transaction the server gave up on
/// (a deadlock, a serialization failure): running the call again is safe, since
/// the server rolled it back.
fn is_retryable(err: &hpo_core::Error) -> bool {
    let hpo_core::Error::Storage(inner) = err else { return false };
    let err = match inner.downcast_ref::<Error>() {
        Some(Error::Postgres(err)) => err,
        // The server is down (restarting): it may be back in a moment.
        Some(Error::Connect { .. }) => return true,
        _ => return false,
    };
    if err.is_closed() {
        return true;
    }
    if let Some(code) = err.code() {
        let code = code.code();
        return code.starts_with("08")
            || code.starts_with("57P")
            || code == "40001"
            || code == "40P01";
    }
    // No SQLSTATE: retried only when the socket failed, not a statement.
    std::error::Error::source(err).is_some_and(|source| source.is::<std::io::Error>())
}

impl PostgresStorage {
    /// Connects to the database at `url` (`postgresql://user:pass@host:port/db`)
    /// and applies pending migrations. A database Optuna created gets hpo's tables
    /// added; its own are left as they are.
    pub fn open(url: &str) -> Result<PostgresStorage, Error> {
        let mut conn = connect(url, false)?;
        migrate(&mut conn.client)?;
        Ok(PostgresStorage { url: url.to_owned(), read_only: false, conn: Mutex::new(Some(conn)) })
    }

    /// Connects to the database at `url` for reading only, writing nothing to it:
    /// no migration is applied (a database Optuna wrote stays as it is), hpo's tables
    /// that its migrations would add are empty stand-ins in the connection's own
    /// temporary schema, and the connection's transactions are read-only, so a role
    /// allowed only to read the database can run every read command.
    pub fn open_read_only(url: &str) -> Result<PostgresStorage, Error> {
        let conn = connect(url, true)?;
        Ok(PostgresStorage { url: url.to_owned(), read_only: true, conn: Mutex::new(Some(conn)) })
    }

    /// The database's address, its password left out.
    pub fn describe(&self) -> String {
        redacted(&self.url)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Conn>> {
        self.conn.lock().unwrap_or_else(|it| it.into_inner())
    }

    /// Runs `f` in one transaction of kind `write`, reconnecting and
    /// running it again when the connection is lost, for up to `RECONNECT_FOR`.
    fn transaction<T>(
        &self,
        write: Mode,
        f: impl Fn(&mut Tx<'_>) -> CoreResult<T>,
    ) -> CoreResult<T> {
        let mut guard = self.lock();
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        let mut again = false;
        loop {
            let outcome = match guard.as_mut() {
                Some(conn) => once(conn, write, again, &f),
                None => match connect(&self.url, self.read_only) {
                    Ok(conn) => once(guard.insert(conn), write, again, &f),
                    Err(err) => Err(store_err(err)),
                },
            };
            again = true;
            match outcome {
                Err(err) if is_retryable(&err) && started.elapsed() < RECONNECT_FOR => {
                    tracing::warn!(
                        database = %redacted(&self.url),
                        "PostgreSQL call failed ({err}); running it again"
                    );
                    if guard.as_ref().is_some_and(|conn| conn.client.is_closed()) {
                        *guard = None;
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(err) if started.elapsed() >= RECONNECT_FOR && is_retryable(&err) => {
                    *guard = None;
                    return Err(store_err(Error::Unreachable {
                        database: redacted(&self.url),
                        seconds: RECONNECT_FOR.as_secs(),
                        last: err.to_string(),
                    }));
                }
                outcome => return outcome,
            }
        }
    }

    fn write<T>(&self, f: impl Fn(&mut Tx<'_>) -> CoreResult<T>) -> CoreResult<T> {
        self.transaction(Mode::Write, f)
    }

    fn write_step<T>(&self, f: impl Fn(&mut Tx<'_>) -> CoreResult<T>) -> CoreResult<T> {
        self.transaction(Mode::Step, f)
    }

    fn read<T>(&self, f: impl Fn(&mut Tx<'_>) -> CoreResult<T>) -> CoreResult<T> {
        self.transaction(Mode::Read, f)
    }

    /// hpo's invariants on this database: no study has two trials with one number,
    /// and no row points at a missing one (the foreign keys hold by construction).
    pub fn check(&self) -> Result<Vec<String>, Error> {
        let problems = self.read(|tx| {
            let rows = tx.rows(
                "SELECT s.study_name, t.number, COUNT(*) FROM trials t JOIN studies s ON s.study_id = t.study_id \
                 GROUP BY s.study_name, t.number HAVING COUNT(*) > 1",
                &[],
            )?;
            rows.iter()
                .map(|row| {
                    Ok(format!(
                        "study `{}` has {} trials numbered {}",
                        get::<String>(row, 0)?,
                        get::<i64>(row, 2)?,
                        get::<Option<i32>>(row, 1)?.unwrap_or(0)
                    ))
                })
                .collect::<CoreResult<Vec<String>>>()
        });
        problems.map_err(|err| Error::Corrupt(err.to_string()))
    }
}

/// What a transaction does, which decides how it commits.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Reads only.
    Read,
    /// Writes that wait for the server's disk at commit: studies, trials made,
    /// claimed and ended, parameters, attributes.
    Write,
    /// A reported step, a heartbeat or a verdict: each statement its own
    /// transaction, committed without waiting for the server's disk
    /// (`synchronous_commit = off`). The server keeps commits in order, so a trial's
    /// end, which waits, makes every step before it durable; only a crash of the
    /// server's machine can lose the last moments' steps of a running trial.
    Step,
}

fn once<T>(
    conn: &mut Conn,
    mode: Mode,
    again: bool,
    f: &impl Fn(&mut Tx<'_>) -> CoreResult<T>,
) -> CoreResult<T> {
    if conn.open {
        conn.client.batch_execute("ROLLBACK").map_err(pg_err)?;
        conn.open = false;
    }
    if mode != Mode::Write {
        // Each statement its own transaction: under READ COMMITTED a transaction
        // would give reads no more (each statement sees what was committed when
        // it began), and a step is one statement.
        return f(&mut Tx { tx: &mut conn.client, statements: &mut conn.statements, again });
    }
    // One round trip to begin, and the commit waits for the server's disk.
    conn.client.batch_execute("BEGIN; SET LOCAL synchronous_commit TO on").map_err(pg_err)?;
    conn.open = true;
    let out = f(&mut Tx { tx: &mut conn.client, statements: &mut conn.statements, again });
    let end = if out.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.client.batch_execute(end);
    conn.open = false;
    let out = out?;
    ended.map_err(pg_err)?;
    Ok(out)
}

fn connect(url: &str, read_only: bool) -> Result<Conn, Error> {
    let mut client = Client::connect(url, NoTls)
        .map_err(|err| Error::Connect { database: redacted(url), reason: message(&err) })?;
    if read_only {
        prepare_read_only(&mut client)?;
    }
    // Steps and heartbeats commit without waiting for the server's disk; every
    // other write waits (`Mode`).
    client.batch_execute("SET synchronous_commit TO off")?;
    Ok(Conn { client, statements: HashMap::new(), open: false })
}

/// Makes this connection able to read the database without writing to it: checks
/// that no newer hpo or other Optuna schema wrote it, gives each hpo table its
/// missing migrations would make an empty temporary stand-in (the connection's
/// temporary schema is searched first), then makes the connection's transactions
/// read-only.
fn prepare_read_only(client: &mut Client) -> Result<(), Error> {
    let exists = |client: &mut Client, name: &str| -> Result<bool, Error> {
        Ok(client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])?.get(0))
    };
    let applied = if exists(client, "hpo_schema_migrations")? {
        let applied: i32 = client
            .query_one("SELECT COALESCE(MAX(version), 0) FROM hpo_schema_migrations", &[])?
            .get(0);
        i64::from(applied)
    } else {
        if exists(client, "alembic_version")? {
            let found: Option<String> = client
                .query_opt("SELECT version_num FROM alembic_version LIMIT 1", &[])?
                .map(|row| row.get(0));
            crate::migrations::compare_revision(found)?;
        }
        0
    };
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if applied > known {
        return Err(Error::NewerSchema { found: applied, known });
    }
    for (_, _, sql) in MIGRATIONS.iter().filter(|m| m.0 > applied) {
        for statement in sql.split(';') {
            let Some((name, body)) = crate::migrations::hpo_table(statement) else { continue };
            if !exists(client, &name)? {
                client.batch_execute(&format!("CREATE TEMPORARY TABLE {name} {body}"))?;
            }
        }
    }
    client.batch_execute("SET default_transaction_read_only TO on")?;
    Ok(())
}

/// Applies the pending migrations in one transaction, under an advisory lock.
fn migrate(client: &mut Client) -> Result<(), Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&LOCK_SPACE])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS hpo_schema_migrations (
            version INTEGER NOT NULL PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
        )",
    )?;
    let applied: i32 =
        tx.query_one("SELECT COALESCE(MAX(version), 0) FROM hpo_schema_migrations", &[])?.get(0);
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if i64::from(applied) > known {
        return Err(Error::NewerSchema { found: i64::from(applied), known });
    }
    let has_alembic: bool =
        tx.query_one("SELECT to_regclass('alembic_version') IS NOT NULL", &[])?.get(0);
    if has_alembic {
        let found: Option<String> = tx
            .query_opt("SELECT version_num FROM alembic_version LIMIT 1", &[])?
            .map(|row| row.get(0));
        crate::migrations::compare_revision(found)?;
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > i64::from(applied)) {
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO hpo_schema_migrations (version, name) VALUES ($1, $2)",
            &[&(*version as i32), name],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn trial_state(tx: &mut Tx<'_>, trial: TrialId) -> CoreResult<TrialState> {
    let row = tx.opt("SELECT state::text FROM trials WHERE trial_id = $1", &[&int(trial.0)?])?;
    let state: String = get(&row.ok_or(hpo_core::Error::UnknownTrial(trial))?, 0)?;
    parse_state(&state)
}

fn parse_state(state: &str) -> CoreResult<TrialState> {
    TrialState::from_optuna_str(state)
        .ok_or_else(|| store_err(Error::Corrupt(format!("trial state `{state}`"))))
}

/// A random token naming one call that makes a trial (`hpo_call_tokens`).
fn call_token() -> i64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded afresh for each value, from the process's random keys.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish() as i64
}

/// The trial the call of `token` made, when it ran before and committed (only
/// asked when the call runs again after a lost connection).
fn made_by(tx: &mut Tx<'_>, token: i64) -> CoreResult<Option<TrialId>> {
    if !tx.again {
        return Ok(None);
    }
    let row = tx.opt("SELECT trial_id FROM hpo_call_tokens WHERE token = $1", &[&token])?;
    row.map(|row| get::<i32>(&row, 0).map(|id| TrialId(i64::from(id)))).transpose()
}

/// Records that the call of `token` made `trial`, in the call's transaction.
fn mark_made(tx: &mut Tx<'_>, token: i64, trial: TrialId) -> CoreResult<()> {
    tx.exec(
        "INSERT INTO hpo_call_tokens (token, trial_id) VALUES ($1, $2)",
        &[&token, &int(trial.0)?],
    )?;
    Ok(())
}

/// Inserts a study: its name (refused with `StudyExists` when taken: the unique
/// name index decides between two hosts creating one study), directions in
/// objective order, metric name and study file.
fn insert_study(
    tx: &mut Tx<'_>,
    name: &str,
    directions: &[Direction],
    metrics: &[String],
    spec_text: Option<&str>,
) -> CoreResult<StudyId> {
    let row = tx.opt(
        "INSERT INTO studies (study_name) VALUES ($1) ON CONFLICT (study_name) DO NOTHING RETURNING study_id",
        &[&name],
    )?;
    let Some(row) = row else {
        return Err(hpo_core::Error::StudyExists(name.to_owned()));
    };
    let id: i32 = get(&row, 0)?;
    for (objective, direction) in directions.iter().enumerate() {
        tx.exec(
            "INSERT INTO study_directions (direction, study_id, objective) VALUES ($1::text::studydirection, $2, $3)",
            &[&direction.as_optuna_str(), &id, &(objective as i32)],
        )?;
    }
    if !metrics.is_empty() {
        tx.exec(
            "INSERT INTO study_system_attributes (study_id, \"key\", value_json) VALUES ($1, 'study:metric_names', $2)",
            &[&id, &encode::metric_names_json(metrics)],
        )?;
    }
    if let Some(text) = spec_text {
        tx.exec(
            "INSERT INTO hpo_study_files (study_id, spec_text, created_at) VALUES ($1, $2, $3::text::timestamp)",
            &[&id, &text, &encode::datetime(now())],
        )?;
    }
    Ok(StudyId(i64::from(id)))
}

/// `create_running_trial` as the call of `token`.
/// One step as its statement takes it: the step, the study metric's value as
/// Optuna stores it, and the metrics' names and values (NaN as NULL).
struct StepRow {
    step: i64,
    stored: Option<f64>,
    kind: &'static str,
    names: Vec<String>,
    values: Vec<Option<f64>>,
}

/// A trial's steps as [`report_in`] writes them, each step checked before any is.
struct StepRows(Vec<StepRow>);

impl StepRows {
    fn new(steps: &[ReportedStep]) -> CoreResult<StepRows> {
        let rows = steps.iter().map(|it| {
            // Optuna stores steps as signed 64-bit integers: a larger one would
            // read back negative.
            let step =
                i64::try_from(it.step).map_err(|_| hpo_core::Error::StepOutOfRange(it.step))?;
            let (stored, kind) = encode::encode_value(it.value);
            Ok(StepRow {
                step,
                stored,
                kind,
                names: it.metrics.iter().map(|(name, _)| name.clone()).collect(),
                values: it.metrics.iter().map(|(_, v)| (!v.is_nan()).then_some(*v)).collect(),
            })
        });
        Ok(StepRows(rows.collect::<CoreResult<_>>()?))
    }
}

/// Records a Running trial's steps in `tx`: per step one statement writes the
/// step, every metric and the heartbeat, only while the trial runs.
fn report_in(tx: &mut Tx<'_>, trial: TrialId, steps: &StepRows) -> CoreResult<()> {
    let id = int(trial.0)?;
    let beat = encode::datetime(now());
    for row in &steps.0 {
        let written = tx.one(
            "WITH t AS (SELECT trial_id FROM trials WHERE trial_id = $1 AND state = 'RUNNING' FOR SHARE),
             v AS (INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, intermediate_value_type)
                   SELECT trial_id, $2, $3, $4::text::trialintermediatevaluetype FROM t
                   ON CONFLICT (trial_id, step) DO UPDATE SET intermediate_value = excluded.intermediate_value,
                       intermediate_value_type = excluded.intermediate_value_type
                   RETURNING 1),
             m AS (INSERT INTO hpo_trial_metrics (trial_id, step, name, value)
                   SELECT t.trial_id, $2, x.name, x.value FROM t, unnest($5::text[], $6::float8[]) AS x(name, value)
                   ON CONFLICT (trial_id, step, name) DO UPDATE SET value = excluded.value
                   RETURNING 1),
             h AS (INSERT INTO trial_heartbeats (trial_id, heartbeat) SELECT trial_id, $7::text::timestamp FROM t
                   ON CONFLICT (trial_id) DO UPDATE SET heartbeat = excluded.heartbeat
                   RETURNING 1)
             SELECT (SELECT COUNT(*) FROM t), (SELECT COUNT(*) FROM v), (SELECT COUNT(*) FROM m), (SELECT COUNT(*) FROM h)",
            &[&id, &row.step, &row.stored, &row.kind, &row.names, &row.values, &beat],
        )?;
        if get::<i64>(&written, 0)? == 0 {
            // Not running: say why (unknown, finished or waiting).
            require_running(tx, trial)?;
        }
    }
    Ok(())
}

fn create_running(
    tx: &mut Tx<'_>,
    token: i64,
    study: StudyId,
    budget: Option<usize>,
    system_attrs: &[(String, AttrValue)],
    propose: &dyn Fn(u64) -> Option<NewTrial>,
) -> CoreResult<Option<FrozenTrial>> {
    if let Some(made) = made_by(tx, token)? {
        return Ok(load_trials(tx, made.0, true, None)?.pop());
    }
    lock_study(tx, study)?;
    if let Some(budget) = budget
        && counted(tx, study)? >= budget
    {
        return Ok(None);
    }
    let new = NewTrial { params: Vec::new(), system_attrs: system_attrs.to_vec() };
    let (id, number, start) = insert_trial(tx, study, TrialState::Running, &new)?;
    mark_made(tx, token, id)?;
    let mut trial = FrozenTrial::new(id, number, TrialState::Running);
    trial.system_attrs = system_attrs.iter().cloned().collect();
    trial.datetime_start = start.as_deref().and_then(encode::parse_datetime);
    if let Some(proposal) = propose(number) {
        insert_params(tx, id, &proposal.params)?;
        set_attrs(tx, "trial_system_attributes", id, &proposal.system_attrs)?;
        proposal.apply_to(&mut trial);
    }
    Ok(Some(trial))
}

/// Whether a call ending `trial` as `state` already happened: run again after a
/// lost connection, it finds the trial ended as asked, by its own first try.
fn already_ended(tx: &mut Tx<'_>, trial: TrialId, state: TrialState) -> CoreResult<bool> {
    Ok(tx.again && trial_state(tx, trial)? == state)
}

fn require_running(tx: &mut Tx<'_>, trial: TrialId) -> CoreResult<()> {
    match trial_state(tx, trial)? {
        TrialState::Running => Ok(()),
        state if state.is_finished() => Err(hpo_core::Error::TrialFinished { trial, state }),
        state => Err(hpo_core::Error::TrialNotRunning { trial, state }),
    }
}

fn study_exists(tx: &mut Tx<'_>, study: StudyId) -> CoreResult<()> {
    tx.opt("SELECT study_id FROM studies WHERE study_id = $1", &[&int(study.0)?])?
        .map(|_| ())
        .ok_or(hpo_core::Error::UnknownStudy(study))
}

fn trial_id_by_number(tx: &mut Tx<'_>, study: StudyId, number: u64) -> CoreResult<Option<TrialId>> {
    let Ok(number) = i32::try_from(number) else { return Ok(None) };
    let row = tx.opt(
        "SELECT trial_id FROM trials WHERE study_id = $1 AND number = $2",
        &[&int(study.0)?, &number],
    )?;
    row.map(|row| get::<i32>(&row, 0).map(|id| TrialId(i64::from(id)))).transpose()
}

/// Takes the study's advisory lock until the transaction ends: trial numbers and
/// the budget are decided by one transaction at a time, on every host.
/// Fails with `UnknownStudy` when there is no such study.
fn lock_study(tx: &mut Tx<'_>, study: StudyId) -> CoreResult<()> {
    let locked = tx.opt(
        "SELECT pg_advisory_xact_lock($1, study_id) FROM studies WHERE study_id = $2",
        &[&LOCK_SPACE, &int(study.0)?],
    )?;
    locked.map(|_| ()).ok_or(hpo_core::Error::UnknownStudy(study))
}

/// The trials of study $1 that count toward its budget: as on SQLite, the number of
/// trials (numbers are dense) less the queued ones, interrupted failures and
/// confirm runs. Each part is an index look-up: the attribute keys are written in
/// the statement, not bound, so its one cached plan reads the few rows of a rare
/// key through the key index whatever the study's size.
static BUDGET_COUNTED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let (interrupted, confirm_of) = (attr::INTERRUPTED, attr::CONFIRM_OF);
    format!(
        "SELECT (SELECT COALESCE(MAX(number) + 1, 0) FROM trials WHERE study_id = $1)::bigint
              - (SELECT COUNT(*) FROM trials WHERE study_id = $1 AND state = 'WAITING')
              - (SELECT COUNT(*) FROM trial_system_attributes a JOIN trials t ON t.trial_id = a.trial_id
                 WHERE a.\"key\" = '{interrupted}' AND t.study_id = $1 AND t.state = 'FAIL'
                   AND NOT EXISTS (SELECT 1 FROM trial_system_attributes c
                                   WHERE c.trial_id = t.trial_id AND c.\"key\" = '{confirm_of}'))
              - (SELECT COUNT(*) FROM trial_system_attributes a JOIN trials t ON t.trial_id = a.trial_id
                 WHERE a.\"key\" = '{confirm_of}' AND t.study_id = $1 AND t.state != 'WAITING')"
    )
});

fn counted(tx: &mut Tx<'_>, study: StudyId) -> CoreResult<usize> {
    let row = tx.one(&BUDGET_COUNTED, &[&int(study.0)?])?;
    Ok(usize::try_from(get::<i64>(&row, 0)?).unwrap_or(0))
}

fn insert_trial(
    tx: &mut Tx<'_>,
    study: StudyId,
    state: TrialState,
    new: &NewTrial,
) -> CoreResult<(TrialId, u64, Option<String>)> {
    let row = tx.one(
        "INSERT INTO trials (number, study_id, state, datetime_start)
         SELECT COALESCE(MAX(number) + 1, 0), $1, $2::text::trialstate, $3::text::timestamp FROM trials WHERE study_id = $1
         RETURNING trial_id, number, datetime_start::text",
        &[&int(study.0)?, &state.as_optuna_str(), &(state == TrialState::Running).then(|| encode::datetime(now()))],
    )?;
    let trial = TrialId(i64::from(get::<i32>(&row, 0)?));
    let number = get::<i32>(&row, 1)? as u64;
    let start: Option<String> = get(&row, 2)?;
    insert_params(tx, trial, &new.params)?;
    set_attrs(tx, "trial_system_attributes", trial, &new.system_attrs)?;
    Ok((trial, number, start))
}

fn insert_params(
    tx: &mut Tx<'_>,
    trial: TrialId,
    params: &[(String, ParamValue, Distribution)],
) -> CoreResult<()> {
    if params.is_empty() {
        return Ok(());
    }
    let mut names = Vec::with_capacity(params.len());
    let mut values = Vec::with_capacity(params.len());
    let mut distributions = Vec::with_capacity(params.len());
    for (name, value, distribution) in params {
        let internal = distribution.to_internal(value).ok_or_else(|| {
            store_err(Error::Corrupt(format!(
                "value {value} of `{name}` is outside {}",
                distribution.describe()
            )))
        })?;
        names.push(name.as_str());
        values.push(internal);
        distributions.push(encode::distribution_json(distribution));
    }
    // One statement for all of them.
    tx.exec(
        "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json)
         SELECT $1, x.name, x.value, x.distribution FROM unnest($2::text[], $3::float8[], $4::text[]) AS x(name, value, distribution)",
        &[&int(trial.0)?, &names, &values, &distributions],
    )?;
    Ok(())
}

fn set_attr(
    tx: &mut Tx<'_>,
    table: &str,
    trial: TrialId,
    key: &str,
    value: &AttrValue,
) -> CoreResult<()> {
    set_attrs(tx, table, trial, &[(key.to_owned(), value.clone())])
}

/// Sets attributes of `trial` in `table`, replacing values under the same keys;
/// one statement (a key given twice keeps its last value).
fn set_attrs(
    tx: &mut Tx<'_>,
    table: &str,
    trial: TrialId,
    attrs: &[(String, AttrValue)],
) -> CoreResult<()> {
    if attrs.is_empty() {
        return Ok(());
    }
    let unique: BTreeMap<&str, String> =
        attrs.iter().map(|(key, value)| (key.as_str(), encode::attr_json(value))).collect();
    let keys: Vec<&str> = unique.keys().copied().collect();
    let values: Vec<&str> = unique.values().map(String::as_str).collect();
    let sql = format!(
        "INSERT INTO {table} (trial_id, \"key\", value_json)
         SELECT $1, x.key, x.value FROM unnest($2::text[], $3::text[]) AS x(key, value)
         ON CONFLICT (trial_id, \"key\") DO UPDATE SET value_json = excluded.value_json"
    );
    tx.exec(&sql, &[&int(trial.0)?, &keys, &values])?;
    Ok(())
}

/// Ends the Running trial (an error when it is not running): its state, end time
/// and, for a Complete one, its values (a row per objective); its heartbeat is
/// dropped. One statement.
fn finish_in(tx: &mut Tx<'_>, trial: TrialId, state: TrialState, values: &[f64]) -> CoreResult<()> {
    let id = int(trial.0)?;
    let values = if state == TrialState::Complete { values } else { &[] };
    let objectives: Vec<i32> = (0..values.len() as i32).collect();
    let (stored, kinds): (Vec<Option<f64>>, Vec<&str>) =
        values.iter().map(|&value| encode::encode_value(value)).unzip();
    let row = tx.one(
        "WITH u AS (UPDATE trials SET state = $2::text::trialstate, datetime_complete = $3::text::timestamp
                    WHERE trial_id = $1 AND state = 'RUNNING' RETURNING trial_id),
         v AS (INSERT INTO trial_values (trial_id, objective, value, value_type)
               SELECT trial_id, o, x, k::trialvaluetype
               FROM u, unnest($4::int4[], $5::float8[], $6::text[]) AS each(o, x, k) RETURNING 1),
         h AS (DELETE FROM trial_heartbeats WHERE trial_id IN (SELECT trial_id FROM u) RETURNING 1)
         SELECT (SELECT COUNT(*) FROM u), (SELECT COUNT(*) FROM v), (SELECT COUNT(*) FROM h)",
        &[&id, &state.as_optuna_str(), &encode::datetime(now()), &objectives, &stored, &kinds],
    )?;
    if get::<i64>(&row, 0)? == 0 {
        require_running(tx, trial)?;
    }
    Ok(())
}

/// Runs `sql`, a write that touches trial $1 only while it runs (its rows come from
/// `FROM trials WHERE trial_id = $1 AND state = 'RUNNING'`), as one statement; when
/// it wrote nothing, says why the trial is not running. A step's write, which is
/// its own transaction, thus never lands on a trial another call just ended.
fn write_while_running(
    tx: &mut Tx<'_>,
    trial: TrialId,
    sql: &str,
    params: Params<'_>,
) -> CoreResult<()> {
    if tx.exec(sql, params)? == 0 {
        require_running(tx, trial)?;
    }
    Ok(())
}

fn load_study(
    tx: &mut Tx<'_>,
    filter: &str,
    arg: &(dyn ToSql + Sync),
) -> CoreResult<Option<Study>> {
    let sql = format!(
        "SELECT s.study_id, s.study_name,
                (SELECT direction::text FROM study_directions d WHERE d.study_id = s.study_id AND d.objective = 0),
                (SELECT value_json FROM study_system_attributes a WHERE a.study_id = s.study_id AND a.\"key\" = 'study:metric_names'),
                (SELECT spec_text FROM hpo_study_files f WHERE f.study_id = s.study_id),
                (SELECT string_agg(direction::text, ',' ORDER BY objective) FROM study_directions d WHERE d.study_id = s.study_id)
         FROM studies s WHERE {filter}"
    );
    let Some(row) = tx.opt(&sql, &[arg])? else { return Ok(None) };
    let id: i32 = get(&row, 0)?;
    let direction: Option<String> = get(&row, 2)?;
    let metric_names: Option<String> = get(&row, 3)?;
    let all: Option<String> = get(&row, 5)?;
    Ok(Some(crate::study_of(
        i64::from(id),
        get(&row, 1)?,
        direction.as_deref(),
        metric_names.as_deref(),
        get(&row, 4)?,
        all.as_deref(),
    )))
}

/// `column IN ('RUNNING', ...)`: trials in `states`, written out (states are a
/// fixed set of words) rather than bound, so the planner sees how few rows a state
/// such as RUNNING has and reads them through the (study, state) index instead of
/// every trial of the study.
fn state_in(column: &str, states: &[TrialState]) -> String {
    if states.is_empty() {
        return "FALSE".to_owned();
    }
    let names: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_optuna_str())).collect();
    format!("{column} IN ({})", names.join(", "))
}

/// Reads trials with everything attached: those of study $1 (in `states`, all when
/// `None`), or the one trial $1 when `one`.
fn load_trials(
    tx: &mut Tx<'_>,
    id: i64,
    one: bool,
    states: Option<&[TrialState]>,
) -> CoreResult<Vec<FrozenTrial>> {
    let id = int(id)?;
    let filter = match (one, states) {
        (true, _) => "t.trial_id = $1".to_owned(),
        (false, None) => "t.study_id = $1".to_owned(),
        (false, Some(states)) => format!("t.study_id = $1 AND {}", state_in("t.state", states)),
    };
    let args: [&(dyn ToSql + Sync); 1] = [&id];
    let mut trials: Vec<FrozenTrial> = Vec::new();
    let mut index: HashMap<i32, usize> = HashMap::new();
    for row in tx.rows(
        &format!(
            "SELECT t.trial_id, t.number, t.state::text, t.datetime_start::text, t.datetime_complete::text
             FROM trials t WHERE {filter} ORDER BY t.number, t.trial_id"
        ),
        &args,
    )? {
        let id: i32 = get(&row, 0)?;
        let state: String = get(&row, 2)?;
        let mut trial = FrozenTrial::new(
            TrialId(i64::from(id)),
            get::<Option<i32>>(&row, 1)?.unwrap_or(0) as u64,
            parse_state(&state)?,
        );
        trial.datetime_start = get::<Option<String>>(&row, 3)?.as_deref().and_then(encode::parse_datetime);
        trial.datetime_complete =
            get::<Option<String>>(&row, 4)?.as_deref().and_then(encode::parse_datetime);
        index.insert(id, trials.len());
        trials.push(trial);
    }
    if trials.is_empty() {
        return Ok(trials);
    }
    let joined = |table: &str, columns: &str| {
        format!(
            "SELECT x.trial_id, {columns} FROM {table} x JOIN trials t ON t.trial_id = x.trial_id WHERE {filter}"
        )
    };
    let mut parsed: HashMap<String, Distribution> = HashMap::new();
    for row in
        tx.rows(&joined("trial_params", "x.param_name, x.param_value, x.distribution_json"), &args)?
    {
        let Some(&at) = index.get(&get::<i32>(&row, 0)?) else { continue };
        let name: String = get(&row, 1)?;
        let internal: f64 = get(&row, 2)?;
        let json: String = get(&row, 3)?;
        crate::add_param(&mut trials[at], &mut parsed, name, internal, json)?;
    }
    // Rows come in objective order, so each trial's list is in the study's.
    let mut values: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for row in tx.rows(
        &format!(
            "{} ORDER BY x.trial_id, x.objective",
            joined("trial_values", "x.value, x.value_type::text")
        ),
        &args,
    )? {
        let Some(&at) = index.get(&get::<i32>(&row, 0)?) else { continue };
        let kind: String = get(&row, 2)?;
        values
            .entry(at)
            .or_default()
            .push(encode::decode_value(get(&row, 1)?, &kind).map_err(store_err)?);
    }
    for (at, values) in values {
        trials[at].set_values(&values);
    }
    for row in tx.rows(
        &joined(
            "trial_intermediate_values",
            "x.step::bigint, x.intermediate_value, x.intermediate_value_type::text",
        ),
        &args,
    )? {
        let Some(&at) = index.get(&get::<i32>(&row, 0)?) else { continue };
        let step: i64 = get(&row, 1)?;
        let kind: String = get(&row, 3)?;
        let value = encode::decode_value(get(&row, 2)?, &kind).map_err(store_err)?;
        trials[at].intermediate_values.insert(step as u64, value);
    }
    for (table, system) in [("trial_user_attributes", false), ("trial_system_attributes", true)] {
        for row in tx.rows(&joined(table, "x.\"key\", x.value_json"), &args)? {
            let Some(&at) = index.get(&get::<i32>(&row, 0)?) else { continue };
            let key: String = get(&row, 1)?;
            let json: Option<String> = get(&row, 2)?;
            let value = encode::parse_attr_json(json.as_deref().unwrap_or("null"));
            let attrs =
                if system { &mut trials[at].system_attrs } else { &mut trials[at].user_attrs };
            attrs.insert(key, value);
        }
    }
    Ok(trials)
}

fn summaries(tx: &mut Tx<'_>, best: bool) -> CoreResult<Vec<StudySummary>> {
    let ids: Vec<i32> = tx
        .rows("SELECT study_id FROM studies ORDER BY study_name", &[])?
        .iter()
        .map(|row| get(row, 0))
        .collect::<CoreResult<_>>()?;
    let mut out = Vec::new();
    for id in ids {
        let Some(study) = load_study(tx, "s.study_id = $1", &id)? else { continue };
        let mut counts = Vec::new();
        for row in tx.rows(
            "SELECT state::text, COUNT(*) FROM trials WHERE study_id = $1 GROUP BY state",
            &[&id],
        )? {
            let state: String = get(&row, 0)?;
            counts.push((TrialState::from_optuna_str(&state), get::<i64>(&row, 1)? as usize));
        }
        let mut summary = crate::summary_of(study, &counts);
        let last: Option<String> = get(
            &tx.one(
                "SELECT GREATEST(
                     (SELECT MAX(datetime_complete) FROM trials WHERE study_id = $1),
                     (SELECT MAX(datetime_start) FROM trials WHERE study_id = $1 AND state = 'RUNNING'),
                     (SELECT datetime_start FROM trials WHERE study_id = $1 ORDER BY number DESC LIMIT 1))::text",
                &[&id],
            )?,
            0,
        )?;
        summary.last_activity = last.as_deref().and_then(encode::parse_datetime);
        if best {
            let aggregate = match summary.study.direction {
                Direction::Minimize => "MIN",
                Direction::Maximize => "MAX",
            };
            summary.best_value = get(
                &tx.one(
                    &format!(
                        "SELECT {aggregate}(v.value) FROM trial_values v JOIN trials t ON t.trial_id = v.trial_id
                         WHERE t.study_id = $1 AND t.state = 'COMPLETE' AND v.objective = 0 AND v.value_type = 'FINITE'
                           AND t.trial_id NOT IN (SELECT trial_id FROM trial_system_attributes WHERE \"key\" = '{}')",
                        attr::CONFIRM_OF
                    ),
                    &[&id],
                )?,
                0,
            )?;
        }
        out.push(summary);
    }
    Ok(out)
}

impl Storage for PostgresStorage {
    fn create_study(&self, new: &NewStudy) -> CoreResult<StudyId> {
        self.write(|tx| {
            let study = insert_study(
                tx,
                &new.name,
                &new.directions,
                &new.metrics,
                new.spec_text.as_deref(),
            )?;
            for trial in &new.queued {
                insert_trial(tx, study, TrialState::Waiting, trial)?;
            }
            Ok(study)
        })
    }

    fn find_study(&self, name: &str) -> CoreResult<Option<Study>> {
        self.read(|tx| load_study(tx, "s.study_name = $1", &name))
    }

    fn list_studies(&self) -> CoreResult<Vec<StudySummary>> {
        self.read(|tx| summaries(tx, true))
    }

    fn study_counts(&self) -> CoreResult<Vec<StudySummary>> {
        self.read(|tx| summaries(tx, false))
    }

    fn count_toward_budget(&self, study: StudyId) -> CoreResult<usize> {
        self.read(|tx| counted(tx, study))
    }

    fn create_running_trial_with(
        &self,
        study: StudyId,
        budget: Option<usize>,
        system_attrs: &[(String, AttrValue)],
        propose: &dyn Fn(u64) -> Option<NewTrial>,
    ) -> CoreResult<Option<FrozenTrial>> {
        let token = call_token();
        self.write(|tx| create_running(tx, token, study, budget, system_attrs, propose))
    }

    fn enqueue_trial(&self, study: StudyId, new: &NewTrial) -> CoreResult<TrialId> {
        let token = call_token();
        self.write(|tx| {
            if let Some(made) = made_by(tx, token)? {
                return Ok(made);
            }
            lock_study(tx, study)?;
            let id = insert_trial(tx, study, TrialState::Waiting, new)?.0;
            mark_made(tx, token, id)?;
            Ok(id)
        })
    }

    fn claim_waiting_trial(
        &self,
        study: StudyId,
        budget: Option<usize>,
        system_attrs: &[(String, AttrValue)],
    ) -> CoreResult<Option<FrozenTrial>> {
        let id = int(study.0)?;
        // Most studies queue nothing: a plain read spares them the lock.
        let any_waiting = self.read(|tx| {
            tx.opt("SELECT 1 FROM trials WHERE study_id = $1 AND state = 'WAITING' LIMIT 1", &[&id])
        })?;
        if any_waiting.is_none() {
            return Ok(None);
        }
        let token = call_token();
        self.write(|tx| {
            if let Some(made) = made_by(tx, token)? {
                return Ok(load_trials(tx, made.0, true, None)?.pop());
            }
            lock_study(tx, study)?;
            if let Some(budget) = budget
                && counted(tx, study)? >= budget
            {
                return Ok(None);
            }
            // Retries first, a grid's in grid order; then the lowest number.
            let retry = tx.opt(
                "SELECT t.trial_id FROM trial_system_attributes r
                 JOIN trials t ON t.trial_id = r.trial_id
                 LEFT JOIN trial_system_attributes g ON g.trial_id = t.trial_id AND g.\"key\" = $3
                 WHERE r.\"key\" = $2 AND t.study_id = $1 AND t.state = 'WAITING'
                 ORDER BY CAST(g.value_json AS DOUBLE PRECISION) NULLS FIRST, t.number LIMIT 1
                 FOR UPDATE OF t SKIP LOCKED",
                &[&id, &attr::RETRY_OF, &attr::GRID_POINT],
            )?;
            let row = match retry {
                Some(row) => Some(row),
                None => tx.opt(
                    "SELECT trial_id FROM trials WHERE study_id = $1 AND state = 'WAITING' ORDER BY number LIMIT 1
                     FOR UPDATE SKIP LOCKED",
                    &[&id],
                )?,
            };
            let Some(row) = row else { return Ok(None) };
            let trial: i32 = get(&row, 0)?;
            tx.exec(
                "UPDATE trials SET state = 'RUNNING', datetime_start = $2::text::timestamp WHERE trial_id = $1 AND state = 'WAITING'",
                &[&trial, &encode::datetime(now())],
            )?;
            set_attrs(tx, "trial_system_attributes", TrialId(i64::from(trial)), system_attrs)?;
            mark_made(tx, token, TrialId(i64::from(trial)))?;
            Ok(load_trials(tx, i64::from(trial), true, None)?.pop())
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
        let step = ReportedStep { step, value, metrics: metrics.to_vec() };
        self.report_steps(trial, std::slice::from_ref(&step))
    }

    fn report_steps(&self, trial: TrialId, steps: &[ReportedStep]) -> CoreResult<()> {
        let steps = StepRows::new(steps)?;
        self.write_step(|tx| report_in(tx, trial, &steps))
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
        self.write_step(|tx| {
            write_while_running(
                tx,
                trial,
                "INSERT INTO hpo_pruner_verdicts (trial_id, step, prune, reason)
                 SELECT trial_id, $2, $3, $4 FROM trials WHERE trial_id = $1 AND state = 'RUNNING'
                 ON CONFLICT (trial_id, step) DO UPDATE SET prune = excluded.prune, reason = excluded.reason",
                &[&int(trial.0)?, &(step as i64), &verdict.prune, &verdict.reason],
            )
        })
    }

    fn pruner_verdicts(&self, trial: TrialId) -> CoreResult<Vec<(u64, Verdict)>> {
        self.read(|tx| {
            tx.rows(
                "SELECT step, prune, reason FROM hpo_pruner_verdicts WHERE trial_id = $1 ORDER BY step",
                &[&int(trial.0)?],
            )?
            .iter()
            .map(|row| {
                Ok((get::<i64>(row, 0)? as u64, Verdict { prune: get(row, 1)?, reason: get(row, 2)? }))
            })
            .collect()
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
        let steps = StepRows::new(steps)?;
        self.write(|tx| {
            if already_ended(tx, trial, state)? {
                return Ok(());
            }
            report_in(tx, trial, &steps)?;
            // The attributes first, then the end, which fails (rolling them back)
            // when the trial is not running.
            set_attrs(tx, "trial_user_attributes", trial, user_attrs)?;
            set_attrs(tx, "trial_system_attributes", trial, system_attrs)?;
            finish_in(tx, trial, state, values)
        })
    }

    fn finish_trial(&self, trial: TrialId, state: TrialState, values: &[f64]) -> CoreResult<()> {
        self.write(|tx| {
            if already_ended(tx, trial, state)? {
                return Ok(());
            }
            finish_in(tx, trial, state, values)
        })
    }

    fn fail_and_enqueue(
        &self,
        trial: TrialId,
        study: StudyId,
        retry: Option<&NewTrial>,
    ) -> CoreResult<Option<TrialId>> {
        let token = call_token();
        self.write(|tx| {
            if let Some(made) = made_by(tx, token)? {
                return Ok(Some(made));
            }
            if retry.is_none() && already_ended(tx, trial, TrialState::Fail)? {
                return Ok(None);
            }
            finish_in(tx, trial, TrialState::Fail, &[])?;
            match retry {
                Some(new) => {
                    lock_study(tx, study)?;
                    let id = insert_trial(tx, study, TrialState::Waiting, new)?.0;
                    mark_made(tx, token, id)?;
                    Ok(Some(id))
                }
                None => Ok(None),
            }
        })
    }

    fn record_heartbeat(&self, trial: TrialId) -> CoreResult<()> {
        self.write_step(|tx| {
            write_while_running(
                tx,
                trial,
                "INSERT INTO trial_heartbeats (trial_id, heartbeat)
                 SELECT trial_id, $2::text::timestamp FROM trials WHERE trial_id = $1 AND state = 'RUNNING'
                 ON CONFLICT (trial_id) DO UPDATE SET heartbeat = excluded.heartbeat",
                &[&int(trial.0)?, &encode::datetime(now())],
            )
        })
    }

    fn trials(
        &self,
        study: StudyId,
        states: Option<&[TrialState]>,
    ) -> CoreResult<Vec<FrozenTrial>> {
        self.read(|tx| {
            study_exists(tx, study)?;
            load_trials(tx, study.0, false, states)
        })
    }

    fn set_study_user_attrs(
        &self,
        study: StudyId,
        attrs: &[(String, AttrValue)],
    ) -> CoreResult<()> {
        self.write(|tx| {
            study_exists(tx, study)?;
            for (key, value) in attrs {
                tx.exec(
                    "INSERT INTO study_user_attributes (study_id, \"key\", value_json) VALUES ($1, $2, $3)
                     ON CONFLICT (study_id, \"key\") DO UPDATE SET value_json = excluded.value_json",
                    &[&int(study.0)?, key, &encode::attr_json(value)],
                )?;
            }
            Ok(())
        })
    }

    fn study_user_attrs(&self, study: StudyId) -> CoreResult<BTreeMap<String, AttrValue>> {
        self.read(|tx| {
            study_exists(tx, study)?;
            let mut out = BTreeMap::new();
            for row in tx.rows(
                "SELECT \"key\", value_json FROM study_user_attributes WHERE study_id = $1",
                &[&int(study.0)?],
            )? {
                let json: Option<String> = get(&row, 1)?;
                out.insert(
                    get(&row, 0)?,
                    encode::parse_attr_json(json.as_deref().unwrap_or("null")),
                );
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
            let id = int(study.0)?;
            let states = state_in("state", states);
            let rows = match since.map(encode::datetime) {
                Some(since) => tx.rows(
                    &format!(
                        "SELECT trial_id FROM trials WHERE study_id = $1 AND {states}
                           AND datetime_complete >= $2::text::timestamp ORDER BY number"
                    ),
                    &[&id, &since],
                )?,
                None => tx.rows(
                    &format!("SELECT trial_id FROM trials WHERE study_id = $1 AND {states} ORDER BY number"),
                    &[&id],
                )?,
            };
            rows.iter()
            .map(|row| get::<i32>(row, 0).map(|id| TrialId(i64::from(id))))
            .collect()
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
            // Each trial's point at or before the step and its first point after,
            // each one look-up in the (trial_id, step) unique index.
            let rows = tx.rows(
                &format!("SELECT t.trial_id, t.number, t.state::text, v.step::bigint, v.intermediate_value, v.intermediate_value_type::text
                 FROM trials t
                 LEFT JOIN LATERAL (
                     (SELECT b.step, b.intermediate_value, b.intermediate_value_type FROM trial_intermediate_values b
                      WHERE b.trial_id = t.trial_id AND b.step <= $2 ORDER BY b.step DESC LIMIT 1)
                     UNION ALL
                     (SELECT a.step, a.intermediate_value, a.intermediate_value_type FROM trial_intermediate_values a
                      WHERE a.trial_id = t.trial_id AND a.step > $2 ORDER BY a.step LIMIT 1)
                 ) v ON TRUE
                 WHERE t.study_id = $1 AND {}", state_in("t.state", states)),
                &[&int(study.0)?, &step],
            )?;
            let mut by_id: BTreeMap<i32, FrozenTrial> = BTreeMap::new();
            for row in rows {
                let id: i32 = get(&row, 0)?;
                let number = get::<Option<i32>>(&row, 1)?.unwrap_or(0) as u64;
                let state = parse_state(&get::<String>(&row, 2)?)?;
                let trial = by_id
                    .entry(id)
                    .or_insert_with(|| FrozenTrial::new(TrialId(i64::from(id)), number, state));
                let Some(at) = get::<Option<i64>>(&row, 3)? else { continue };
                let kind: String = get(&row, 5)?;
                let value = encode::decode_value(get(&row, 4)?, &kind).map_err(store_err)?;
                trial.intermediate_values.insert(at as u64, value);
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
            Ok(load_trials(tx, id.0, true, None)?.pop())
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
            let rows = tx.rows(
                "SELECT t.number, t.state::text, v.value, v.value_type::text, i.step::bigint, i.intermediate_value,
                        i.intermediate_value_type::text
                 FROM trials t
                 LEFT JOIN trial_values v ON v.trial_id = t.trial_id AND v.objective = 0
                 LEFT JOIN LATERAL (SELECT step, intermediate_value, intermediate_value_type
                                    FROM trial_intermediate_values m WHERE m.trial_id = t.trial_id
                                    ORDER BY step DESC LIMIT 1) i ON TRUE
                 WHERE t.study_id = $1 ORDER BY t.number, t.trial_id",
                &[&int(study.0)?],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let state = parse_state(&get::<String>(&row, 1)?)?;
                let value = match get::<Option<String>>(&row, 3)? {
                    Some(kind) => Some(encode::decode_value(get(&row, 2)?, &kind).map_err(store_err)?),
                    None => None,
                };
                let last_step = match get::<Option<i64>>(&row, 4)? {
                    Some(step) => {
                        let kind: String = get(&row, 6)?;
                        Some((step as u64, encode::decode_value(get(&row, 5)?, &kind).map_err(store_err)?))
                    }
                    None => None,
                };
                let number = get::<Option<i32>>(&row, 0)?.unwrap_or(0) as u64;
                out.push(TrialOutcome { number, state, value, last_step });
            }
            Ok(out)
        })
    }

    fn trial(&self, trial: TrialId) -> CoreResult<FrozenTrial> {
        self.read(|tx| {
            load_trials(tx, trial.0, true, None)?.pop().ok_or(hpo_core::Error::UnknownTrial(trial))
        })
    }

    fn metric_curves(&self, trial: TrialId) -> CoreResult<Vec<MetricPoint>> {
        self.read(|tx| {
            tx.rows(
                "SELECT step, name, value FROM hpo_trial_metrics WHERE trial_id = $1 ORDER BY step, name",
                &[&int(trial.0)?],
            )?
            .iter()
            .map(|row| {
                Ok(MetricPoint {
                    step: get::<i64>(row, 0)? as u64,
                    name: get(row, 1)?,
                    value: get::<Option<f64>>(row, 2)?.unwrap_or(f64::NAN),
                })
            })
            .collect()
        })
    }

    fn study_metric_curves(
        &self,
        study: StudyId,
    ) -> CoreResult<BTreeMap<TrialId, Vec<MetricPoint>>> {
        self.read(|tx| {
            study_exists(tx, study)?;
            let mut out: BTreeMap<TrialId, Vec<MetricPoint>> = BTreeMap::new();
            for row in tx.rows(
                "SELECT m.trial_id, m.step, m.name, m.value
                 FROM trials t JOIN hpo_trial_metrics m ON m.trial_id = t.trial_id
                 WHERE t.study_id = $1 ORDER BY m.trial_id, m.step, m.name",
                &[&int(study.0)?],
            )? {
                let trial = TrialId(i64::from(get::<i32>(&row, 0)?));
                out.entry(trial).or_default().push(MetricPoint {
                    step: get::<i64>(&row, 1)? as u64,
                    name: get(&row, 2)?,
                    value: get::<Option<f64>>(&row, 3)?.unwrap_or(f64::NAN),
                });
            }
            Ok(out)
        })
    }

    fn last_heartbeat(&self, trial: TrialId) -> CoreResult<Option<Timestamp>> {
        self.read(|tx| {
            let row = tx.opt(
                "SELECT (SELECT heartbeat FROM trial_heartbeats h WHERE h.trial_id = t.trial_id)::text,
                        t.datetime_start::text
                 FROM trials t WHERE t.trial_id = $1",
                &[&int(trial.0)?],
            )?;
            let row = row.ok_or(hpo_core::Error::UnknownTrial(trial))?;
            let beat: Option<String> = get(&row, 0)?;
            let start: Option<String> = get(&row, 1)?;
            Ok(beat.or(start).as_deref().and_then(encode::parse_datetime))
        })
    }

    fn now(&self) -> Timestamp {
        now()
    }

    fn drop_curves(&self, study: StudyId) -> CoreResult<usize> {
        self.write(|tx| {
            study_exists(tx, study)?;
            let finished = "SELECT trial_id FROM trials WHERE study_id = $1 AND state IN ('COMPLETE', 'PRUNED', 'FAIL')";
            let mut dropped = 0;
            for table in ["trial_intermediate_values", "hpo_trial_metrics"] {
                dropped += tx.exec(
                    &format!("DELETE FROM {table} WHERE trial_id IN ({finished})"),
                    &[&int(study.0)?],
                )?;
            }
            tx.exec(
                &format!("DELETE FROM hpo_pruner_verdicts WHERE trial_id IN ({finished})"),
                &[&int(study.0)?],
            )?;
            Ok(usize::try_from(dropped).unwrap_or(usize::MAX))
        })
    }

    fn import_study(&self, copy: &StudyCopy) -> CoreResult<StudyId> {
        self.write(|tx| {
            let study = &copy.study;
            let found = insert_study(
                tx,
                &study.name,
                &study.directions,
                &study.metrics,
                study.spec_text.as_deref(),
            )?;
            let id = int(found.0)?;
            for (key, value) in &copy.user_attrs {
                tx.exec(
                    "INSERT INTO study_user_attributes (study_id, \"key\", value_json) VALUES ($1, $2, $3)",
                    &[&id, key, &encode::attr_json(value)],
                )?;
            }
            for it in &copy.trials {
                let t = &it.trial;
                let number = i32::try_from(t.number)
                    .map_err(|_| store_err(Error::Corrupt(format!("trial number {} is past INTEGER", t.number))))?;
                let row = tx.one(
                    "INSERT INTO trials (number, study_id, state, datetime_start, datetime_complete)
                     VALUES ($1, $2, $3::text::trialstate, $4::text::timestamp, $5::text::timestamp) RETURNING trial_id",
                    &[
                        &number,
                        &id,
                        &t.state.as_optuna_str(),
                        &t.datetime_start.map(encode::datetime),
                        &t.datetime_complete.map(encode::datetime),
                    ],
                )?;
                let trial = TrialId(i64::from(get::<i32>(&row, 0)?));
                let trial_id = int(trial.0)?;
                insert_params(tx, trial, &crate::params_of(t))?;
                for (objective, &value) in t.objective_values().iter().enumerate() {
                    let (stored, kind) = encode::encode_value(value);
                    tx.exec(
                        "INSERT INTO trial_values (trial_id, objective, value, value_type) VALUES ($1, $2, $3, $4::text::trialvaluetype)",
                        &[&trial_id, &(objective as i32), &stored, &kind],
                    )?;
                }
                for (step, value) in &t.intermediate_values {
                    let (stored, kind) = encode::encode_value(*value);
                    tx.exec(
                        "INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, intermediate_value_type)
                         VALUES ($1, $2, $3, $4::text::trialintermediatevaluetype)",
                        &[&trial_id, &(*step as i64), &stored, &kind],
                    )?;
                }
                let attrs = |it: &BTreeMap<String, AttrValue>| -> Vec<(String, AttrValue)> {
                    it.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
                };
                set_attrs(tx, "trial_user_attributes", trial, &attrs(&t.user_attrs))?;
                set_attrs(tx, "trial_system_attributes", trial, &attrs(&t.system_attrs))?;
                for point in &it.curves {
                    let value = (!point.value.is_nan()).then_some(point.value);
                    tx.exec(
                        "INSERT INTO hpo_trial_metrics (trial_id, step, name, value) VALUES ($1, $2, $3, $4)",
                        &[&trial_id, &(point.step as i64), &point.name, &value],
                    )?;
                }
                for (step, verdict) in &it.verdicts {
                    tx.exec(
                        "INSERT INTO hpo_pruner_verdicts (trial_id, step, prune, reason) VALUES ($1, $2, $3, $4)",
                        &[&trial_id, &(*step as i64), &verdict.prune, &verdict.reason],
                    )?;
                }
            }
            Ok(found)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` as a call's second try after a lost connection.
    fn again<T>(storage: &PostgresStorage, f: impl Fn(&mut Tx<'_>) -> CoreResult<T>) -> T {
        let mut guard = storage.lock();
        once(guard.as_mut().unwrap(), Mode::Write, true, &f).unwrap()
    }

    #[test]
    fn a_call_run_again_after_its_first_try_committed_makes_nothing_twice() {
        let url = crate::testing::cluster().new_database();
        let storage = PostgresStorage::open(&url).unwrap();
        let study = storage
            .create_study(&NewStudy {
                name: "a".into(),
                directions: vec![Direction::Minimize],
                metrics: Vec::new(),
                spec_text: None,
                queued: Vec::new(),
            })
            .unwrap();
        let owner = [(attr::OWNER.to_owned(), AttrValue::Str("h:1:2".into()))];
        // The first try commits (and its answer is lost); the second finds its trial.
        let first = storage
            .write(|tx| create_running(tx, 7, study, Some(5), &owner, &|_| None))
            .unwrap()
            .unwrap();
        let second =
            again(&storage, |tx| create_running(tx, 7, study, Some(5), &owner, &|_| None)).unwrap();
        assert_eq!(second.id, first.id);
        assert_eq!(second.number, 0);
        // Another call (another token) makes the next trial.
        let third =
            again(&storage, |tx| create_running(tx, 8, study, Some(5), &owner, &|_| None)).unwrap();
        assert_eq!(third.number, 1);
        assert_eq!(storage.trials(study, None).unwrap().len(), 2);
        // Ending a trial again finds it ended; ending it anew is refused.
        storage.finish_trial(first.id, TrialState::Complete, &[1.0]).unwrap();
        again(&storage, |tx| {
            if already_ended(tx, first.id, TrialState::Complete)? {
                return Ok(());
            }
            finish_in(tx, first.id, TrialState::Complete, &[1.0])
        });
        assert!(matches!(
            storage.finish_trial(first.id, TrialState::Complete, &[1.0]),
            Err(hpo_core::Error::TrialFinished { .. })
        ));
        assert_eq!(storage.trial(first.id).unwrap().value, Some(1.0));
    }
}
