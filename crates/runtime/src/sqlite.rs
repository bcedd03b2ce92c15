//! SQLite, run on the caller's thread.
//!
//! sqlx runs each SQLite connection on a thread of its own: every
//! statement, `BEGIN` and `COMMIT` is sent there over a channel, and its
//! rows come back the same way, so each is two thread wake-ups and, with
//! more threads than cores, two context switches; and a connection handed
//! back to its pool is checked with one more round trip. In the booking
//! benchmark's profile SQLite's threads took 45 % of the platform's CPU
//! and the kernel's switching between them and tokio's a good part of
//! another 20 %, for statements that themselves take microseconds (the
//! database's pages are in memory, and in WAL mode with `synchronous =
//! NORMAL` a commit writes to the page cache, not to the disk).
//!
//! So on SQLite the store runs each statement where it is awaited, on a
//! connection the store owns outright: the single writer behind an async
//! lock held for a transaction's length, the readers behind plain locks
//! held for one statement. Statements are written against sqlx's `Any`
//! driver as before — this module implements sqlx's `Executor` for those
//! connections, with the `Any` driver's own types for arguments and rows
//! (the same mapping sqlx's SQLite driver makes: integers as `BIGINT`,
//! reals as `DOUBLE`, by each value's storage class) — so one SQL layer
//! serves both databases and PostgreSQL keeps sqlx's own driver.
//!
//! What runs here is bounded: a statement on pages in memory. The one
//! long wait on the disk, a checkpoint (copying the WAL's pages back into
//! the database file, then its `fsync`), does not: a writer opened with
//! [`Connection::open_writer`] leaves it to a thread of its own
//! ([`Checkpoints`]) rather than to SQLite's automatic checkpoint (which
//! ran it on whichever commit crossed a thousand pages of WAL, holding that
//! worker thread for its length, and is kept only as a backstop, far
//! higher). This holds while each file has one writer:
//! the store's (a second process writing the same file would make a
//! statement here wait, up to the busy timeout, on a worker thread).

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use rusqlite::types::ValueRef;
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo, AnyTypeInfoKind, AnyValue};
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::{Any, Either, Execute};
use sqlx_core::any::{AnyColumn, AnyValueKind};
use sqlx_core::ext::ustr::UStr;

/// The most prepared statements a connection keeps (a service has a few
/// dozen, and each multi-row statement a handful of sizes).
const PREPARED_STATEMENTS: usize = 256;

/// One SQLite connection, run on the caller's thread.
pub struct Connection {
    raw: rusqlite::Connection,
    /// Each prepared statement's shape, by its text.
    shapes: std::collections::HashMap<Box<str>, Arc<Shape>>,
    /// A writer's checkpoints, told of each commit.
    checkpoints: Option<Checkpoints>,
}

/// What running a statement needs to know of it beyond its text: which
/// argument each parameter takes (SQLite finds a parameter's name by
/// walking the statement's list, so looking each up at every execution is
/// quadratic in the parameters), and its columns.
struct Shape {
    positions: Vec<usize>,
    columns: Columns,
}

/// A statement's columns, in order and by name.
struct Columns {
    in_order: Vec<UStr>,
    by_name: Arc<sqlx_core::HashMap<UStr, usize>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("sqlite::Connection")
            .field("path", &self.raw.path())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Opens (creating if missing) the database file at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<Connection> {
        let raw = rusqlite::Connection::open(path)?;
        // NORMAL is durable in WAL mode across application crashes; only
        // an OS crash can lose the last commits.
        raw.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
        )?;
        raw.set_prepared_statement_cache_capacity(PREPARED_STATEMENTS);
        Ok(Connection {
            raw,
            shapes: std::collections::HashMap::new(),
            checkpoints: None,
        })
    }

    /// Opens the file's writer: as [`Connection::open`], with its
    /// checkpoints taken by a thread of their own ([`Checkpoints`]) rather
    /// than by the commit that crosses SQLite's threshold (which stays, much
    /// higher, as a backstop: [`Checkpoints::WRITER_BACKSTOP_PAGES`]).
    pub fn open_writer(path: &Path) -> anyhow::Result<Connection> {
        let mut writer = Connection::open(path)?;
        let checkpoints = Checkpoints::start(path)?;
        writer.raw.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint = {};",
            Checkpoints::WRITER_BACKSTOP_PAGES
        ))?;
        writer.checkpoints = Some(checkpoints);
        Ok(writer)
    }

    /// Runs `query` to its end (or, with `first_only`, to its first row).
    pub fn run<'q>(
        &mut self,
        mut query: impl Execute<'q, Any>,
        first_only: bool,
    ) -> Result<Answer, sqlx::Error> {
        let sql = query.sql();
        let persistent = query.persistent();
        let arguments = query
            .take_arguments()
            .map_err(sqlx::Error::Encode)?
            .map(|arguments| arguments.values.0)
            .unwrap_or_default();
        // A text seen before is one statement (a script never gets a shape).
        let known = self.shapes.get(sql).cloned();
        if known.is_none() && is_script(sql) {
            // Several statements in one text (pragmas, a schema): run as a
            // batch, which takes no arguments and answers no rows. (SQLite
            // prepares only the first statement of a text.)
            if !arguments.is_empty() {
                return Err(sqlx::Error::Protocol(
                    "several statements in one text cannot take arguments".into(),
                ));
            }
            self.raw.execute_batch(sql).map_err(failure)?;
            self.wrote(false);
            return Ok(Answer::default());
        }
        let statement = if persistent {
            self.raw.prepare_cached(sql).map(Statement::Cached)
        } else {
            self.raw.prepare(sql).map(Statement::Once)
        };
        let mut statement = statement.map_err(failure)?;
        let shape = match known {
            Some(shape) => shape,
            None => {
                let shape = shape_of(&statement)?;
                if persistent {
                    // Texts are the code's own, a bounded set; this bound
                    // only guards against a caller that writes values into
                    // them.
                    if self.shapes.len() >= 4 * PREPARED_STATEMENTS {
                        self.shapes.clear();
                    }
                    self.shapes.insert(sql.into(), Arc::clone(&shape));
                }
                shape
            }
        };
        bind(&mut statement, &shape.positions, &arguments)?;
        let names = &shape.columns;
        let mut answer = Answer::default();
        {
            let mut rows = statement.raw_query();
            while let Some(row) = rows.next().map_err(failure)? {
                answer.rows.push(any_row(row, names)?);
                if first_only {
                    break;
                }
            }
        }
        answer.result = AnyQueryResult {
            rows_affected: self.raw.changes(),
            last_insert_id: Some(self.raw.last_insert_rowid()),
        };
        let read_only = statement.readonly();
        drop(statement);
        self.wrote(read_only);
        Ok(answer)
    }

    /// Tells a writer's checkpoints of a statement that committed by
    /// itself (one run outside a transaction that may have written).
    fn wrote(&self, read_only: bool) {
        if let Some(checkpoints) = &self.checkpoints {
            if !read_only && self.raw.is_autocommit() {
                checkpoints.committed();
            }
        }
    }

    /// Runs a statement of the store's own (`BEGIN`, `COMMIT`, `ROLLBACK`).
    pub fn run_plain(&self, sql: &str) -> Result<(), sqlx::Error> {
        self.raw
            .prepare_cached(sql)
            .and_then(|mut statement| statement.raw_execute())
            .map(drop)
            .map_err(failure)?;
        self.wrote(sql != "COMMIT");
        Ok(())
    }

    /// Starts a transaction on this connection, first rolling back one a
    /// caller left open (it stopped half way, or dropped its transaction
    /// while the `ROLLBACK` failed).
    pub fn begin(&self) -> Result<(), sqlx::Error> {
        if self.in_transaction() {
            self.run_plain("ROLLBACK")?;
        }
        self.run_plain("BEGIN")
    }

    /// [`Connection::begin`], as a guard that rolls back unless committed.
    pub fn transaction(&mut self) -> Result<Transaction<'_>, sqlx::Error> {
        self.begin()?;
        Ok(Transaction {
            connection: self,
            open: true,
        })
    }

    /// Runs a script of statements without arguments (a schema).
    pub fn run_script(&self, sql: &str) -> Result<(), sqlx::Error> {
        self.raw.execute_batch(sql).map_err(failure)?;
        self.wrote(false);
        Ok(())
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        !self.raw.is_autocommit()
    }
}

/// What a statement answered.
#[derive(Default)]
pub struct Answer {
    pub rows: Vec<AnyRow>,
    pub result: AnyQueryResult,
}

enum Statement<'c> {
    Cached(rusqlite::CachedStatement<'c>),
    Once(rusqlite::Statement<'c>),
}

impl<'c> std::ops::Deref for Statement<'c> {
    type Target = rusqlite::Statement<'c>;
    fn deref(&self) -> &Self::Target {
        match self {
            Statement::Cached(statement) => statement,
            Statement::Once(statement) => statement,
        }
    }
}

impl std::ops::DerefMut for Statement<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match self {
            Statement::Cached(statement) => statement,
            Statement::Once(statement) => statement,
        }
    }
}

/// Whether `sql` holds more than one statement: a `;` outside quotes with
/// more than blanks after it. Comments are not parsed: the texts run here
/// are the code's own, and carry none after a `;`.
fn is_script(sql: &str) -> bool {
    let mut quote = None;
    for (at, c) in sql.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(open), _) if c == open => quote = None,
            (None, ';') => return !sql[at + 1..].trim().is_empty(),
            _ => {}
        }
    }
    false
}

/// Which argument each parameter takes: `$n` (and `?n`) the n-th, an
/// anonymous `?` the one in its position — as sqlx's SQLite driver binds
/// them, so the same SQL text means the same on both. Two differences,
/// stricter: a parameter with no argument is an error (sqlx left it NULL),
/// and a text should not mix `?` with numbered parameters (SQLite numbers
/// such a `?` after the highest `$n`).
fn shape_of(statement: &rusqlite::Statement<'_>) -> sqlx::Result<Arc<Shape>> {
    let positions = (1..=statement.parameter_count())
        .map(|index| match statement.parameter_name(index) {
            None => Ok(index),
            Some(name) => name[1..].parse::<usize>().map_err(|_| {
                sqlx::Error::Protocol(format!("parameter {name} is neither $n nor ?n"))
            }),
        })
        .collect::<sqlx::Result<_>>()?;
    Ok(Arc::new(Shape {
        positions,
        columns: column_names(statement),
    }))
}

fn bind(
    statement: &mut rusqlite::Statement<'_>,
    positions: &[usize],
    arguments: &[AnyValueKind<'_>],
) -> sqlx::Result<()> {
    for (index, &position) in positions.iter().enumerate() {
        let index = index + 1;
        let Some(value) = position.checked_sub(1).and_then(|i| arguments.get(i)) else {
            return Err(sqlx::Error::Protocol(format!(
                "the statement has parameter {position}, the query {} arguments",
                arguments.len()
            )));
        };
        let bound = match value {
            AnyValueKind::Null(_) => statement.raw_bind_parameter(index, rusqlite::types::Null),
            AnyValueKind::Bool(value) => statement.raw_bind_parameter(index, i64::from(*value)),
            AnyValueKind::SmallInt(value) => statement.raw_bind_parameter(index, i64::from(*value)),
            AnyValueKind::Integer(value) => statement.raw_bind_parameter(index, i64::from(*value)),
            AnyValueKind::BigInt(value) => statement.raw_bind_parameter(index, *value),
            AnyValueKind::Real(value) => statement.raw_bind_parameter(index, f64::from(*value)),
            AnyValueKind::Double(value) => statement.raw_bind_parameter(index, *value),
            AnyValueKind::Text(value) => statement.raw_bind_parameter(index, &**value),
            AnyValueKind::Blob(value) => statement.raw_bind_parameter(index, &**value),
            other => {
                return Err(sqlx::Error::Protocol(format!(
                    "a value SQLite cannot take: {other:?}"
                )))
            }
        };
        bound.map_err(failure)?;
    }
    Ok(())
}

fn column_names(statement: &rusqlite::Statement<'_>) -> Columns {
    let in_order: Vec<UStr> = statement
        .column_names()
        .into_iter()
        .map(UStr::new)
        .collect();
    let by_name = in_order
        .iter()
        .enumerate()
        .map(|(ordinal, name)| (name.clone(), ordinal))
        .collect();
    Columns {
        in_order,
        by_name: Arc::new(by_name),
    }
}

/// A row as the `Any` driver gives it, each value typed by its storage
/// class (as sqlx's SQLite driver maps it).
fn any_row(row: &rusqlite::Row<'_>, names: &Columns) -> sqlx::Result<AnyRow> {
    let count = names.in_order.len();
    let mut columns = Vec::with_capacity(count);
    let mut values = Vec::with_capacity(count);
    for (ordinal, name) in names.in_order.iter().enumerate() {
        let kind = match row.get_ref(ordinal).map_err(failure)? {
            ValueRef::Null => AnyValueKind::Null(AnyTypeInfoKind::Null),
            ValueRef::Integer(value) => AnyValueKind::BigInt(value),
            ValueRef::Real(value) => AnyValueKind::Double(value),
            ValueRef::Text(text) => AnyValueKind::Text(Cow::Owned(
                String::from_utf8(text.to_vec()).map_err(|error| sqlx::Error::ColumnDecode {
                    index: name.to_string(),
                    source: Box::new(error),
                })?,
            )),
            ValueRef::Blob(blob) => AnyValueKind::Blob(Cow::Owned(blob.to_vec())),
        };
        columns.push(AnyColumn {
            ordinal,
            name: name.clone(),
            type_info: AnyTypeInfo {
                kind: type_of(&kind),
            },
        });
        values.push(AnyValue { kind });
    }
    Ok(AnyRow {
        column_names: Arc::clone(&names.by_name),
        columns,
        values,
    })
}

fn type_of(kind: &AnyValueKind<'_>) -> AnyTypeInfoKind {
    match kind {
        AnyValueKind::BigInt(_) => AnyTypeInfoKind::BigInt,
        AnyValueKind::Double(_) => AnyTypeInfoKind::Double,
        AnyValueKind::Text(_) => AnyTypeInfoKind::Text,
        AnyValueKind::Blob(_) => AnyTypeInfoKind::Blob,
        _ => AnyTypeInfoKind::Null,
    }
}

/// SQLite's error as sqlx reports a database's: its extended result code
/// as the code (what [`crate::retry::is_transient`] reads), and the kind
/// of constraint it broke.
#[derive(Debug, thiserror::Error)]
#[error("(code: {code}) {message}")]
pub struct SqliteError {
    code: i32,
    message: String,
}

fn failure(error: rusqlite::Error) -> sqlx::Error {
    match error {
        rusqlite::Error::SqliteFailure(cause, message) => {
            sqlx::Error::Database(Box::new(SqliteError {
                code: cause.extended_code,
                message: message.unwrap_or_else(|| cause.to_string()),
            }))
        }
        other => sqlx::Error::Protocol(format!("SQLite: {other}")),
    }
}

impl DatabaseError for SqliteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        use rusqlite::ffi;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

/// The store's read connections: a statement takes the first one free
/// for as long as it runs (it never waits inside, so as many connections
/// as threads that run statements suffice; a statement that finds all of
/// them busy waits for the first).
#[derive(Debug)]
pub struct Readers {
    connections: Vec<Mutex<Connection>>,
}

impl Readers {
    pub fn open(path: &Path, count: usize) -> rusqlite::Result<Readers> {
        let connections = (0..count.max(1))
            .map(|_| Connection::open(path).map(Mutex::new))
            .collect::<rusqlite::Result<_>>()?;
        Ok(Readers { connections })
    }

    /// Runs `work` on a free connection.
    pub fn with<T>(&self, work: impl FnOnce(&mut Connection) -> T) -> T {
        for connection in &self.connections {
            match connection.try_lock() {
                Ok(mut connection) => return work(&mut connection),
                // A statement that panicked leaves the connection as it
                // was: SQLite ends the statement when it is reset.
                Err(std::sync::TryLockError::Poisoned(poisoned)) => {
                    return work(&mut poisoned.into_inner())
                }
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
        }
        let mut connection = self.connections[0]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        work(&mut connection)
    }
}

/// A database's checkpoints, on a thread of their own with a connection of
/// their own. After a commit it wakes, copies what the WAL holds back into
/// the database file (`PRAGMA wal_checkpoint(PASSIVE)`: it waits for no
/// reader and no writer, and the writer goes on appending meanwhile), then
/// rests [`Checkpoints::REST`] before the next, so a busy database is
/// checkpointed a few times a second and an idle one not at all. A commit
/// that finds it resting only sets a flag. It stops when the writer's
/// connection is dropped; the last connection to close checkpoints what
/// is left, as SQLite always does.
#[derive(Debug)]
pub struct Checkpoints {
    state: Arc<CheckpointState>,
    thread: std::thread::Thread,
}

#[derive(Debug, Default)]
struct CheckpointState {
    /// A commit since the last checkpoint began.
    pending: AtomicBool,
    /// The thread is parked (or about to be) until the next commit.
    idle: AtomicBool,
    stop: AtomicBool,
}

impl Checkpoints {
    /// How long the thread rests after a checkpoint: how much WAL a busy
    /// database gathers between two (SQLite's automatic checkpoint waited
    /// for a thousand pages).
    pub const REST: Duration = Duration::from_millis(100);

    /// The WAL's length, in pages, at which the writer checkpoints after
    /// its commit after all (SQLite's own threshold is 1,000). SQLite
    /// starts the WAL over from its beginning only when a write begins
    /// with every page of it copied back, and a checkpoint running beside
    /// a busy writer seldom leaves it so: without this the WAL of a busy
    /// database grew for as long as the load lasted (1.3 GB over the
    /// databases in a 22-s run). The writer's checkpoint then copies only
    /// what the thread has not, and the next write starts the WAL over:
    /// each file stays under about 16 MiB.
    pub const WRITER_BACKSTOP_PAGES: u32 = 4_000;

    fn start(path: &Path) -> anyhow::Result<Checkpoints> {
        let raw = rusqlite::Connection::open(path)?;
        // The checkpointing connection's setting decides its syncs: NORMAL
        // syncs the WAL before copying and the database file after.
        raw.execute_batch("PRAGMA synchronous = NORMAL;")?;
        let state = Arc::new(CheckpointState::default());
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoints".into())
            .spawn({
                let state = state.clone();
                move || Checkpoints::run(&raw, &state)
            })?;
        Ok(Checkpoints {
            state,
            thread: thread.thread().clone(),
        })
    }

    fn run(raw: &rusqlite::Connection, state: &CheckpointState) {
        while !state.stop.load(Ordering::SeqCst) {
            if state.pending.swap(false, Ordering::SeqCst) {
                // A failed checkpoint leaves the pages in the WAL, where
                // readers find them; the next one takes them. Reading the
                // header first is what shows this connection the file is in
                // WAL mode (it may have been switched after it opened).
                let checkpoint = raw
                    .query_row("PRAGMA schema_version", [], |_| Ok(()))
                    .and_then(|()| {
                        raw.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                            Ok((
                                row.get::<_, i64>(0)?,
                                row.get::<_, i64>(1)?,
                                row.get::<_, i64>(2)?,
                            ))
                        })
                    });
                match checkpoint {
                    // Not all of it copied (a reader was on an older
                    // snapshot): the WAL is not synced either, so it is
                    // tried again after the rest, commits or not.
                    Ok((busy, in_wal, copied)) if busy != 0 || copied < in_wal => {
                        state.pending.store(true, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    // The next commit tries again.
                    Err(error) => tracing::warn!(%error, path = ?raw.path(), "checkpoint failed"),
                }
                std::thread::sleep(Checkpoints::REST);
                continue;
            }
            state.idle.store(true, Ordering::SeqCst);
            // Checked again after saying so: a commit in between either
            // saw `idle` and unparks, or set `pending` before this check.
            if !state.pending.load(Ordering::SeqCst) && !state.stop.load(Ordering::SeqCst) {
                std::thread::park();
            }
            state.idle.store(false, Ordering::SeqCst);
        }
    }

    /// Tells the thread a transaction committed.
    fn committed(&self) {
        if !self.state.pending.swap(true, Ordering::SeqCst)
            && self.state.idle.load(Ordering::SeqCst)
        {
            self.thread.unpark();
        }
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// A transaction on a connection: rolled back if dropped uncommitted.
pub struct Transaction<'c> {
    connection: &'c mut Connection,
    open: bool,
}

impl Transaction<'_> {
    pub fn commit(mut self) -> Result<(), sqlx::Error> {
        self.connection.run_plain("COMMIT")?;
        self.open = false;
        Ok(())
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open {
            drop(self.connection.run_plain("ROLLBACK"));
        }
    }
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.connection
    }
}

impl std::ops::DerefMut for Transaction<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.connection
    }
}

/// Implements sqlx's `Executor` for `$executor`, running each statement
/// with `$run` (given the executor, the query and whether only the first
/// row is wanted). Nothing here prepares or describes a statement apart
/// from running it.
macro_rules! executor_running_here {
    ($executor:ty, |$this:ident, $query:ident, $first_only:ident| $run:expr) => {
        impl<'c> sqlx::Executor<'c> for $executor {
            type Database = Any;

            fn fetch_many<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
            where
                'c: 'e,
                E: 'q + Execute<'q, Any>,
            {
                let ($this, $query, $first_only) = (self, query, false);
                streamed($run)
            }

            fn fetch_optional<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
            where
                'c: 'e,
                E: 'q + Execute<'q, Any>,
            {
                let ($this, $query, $first_only) = (self, query, true);
                first_row($run)
            }

            fn prepare_with<'e, 'q: 'e>(
                self,
                _sql: &'q str,
                _parameters: &'e [AnyTypeInfo],
            ) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>>
            where
                'c: 'e,
            {
                not_prepared()
            }

            fn describe<'e, 'q: 'e>(
                self,
                _sql: &'q str,
            ) -> BoxFuture<'e, Result<sqlx::Describe<Any>, sqlx::Error>>
            where
                'c: 'e,
            {
                not_prepared()
            }
        }
    };
}

executor_running_here!(&'c mut Connection, |connection, query, first_only| {
    connection.run(query, first_only)
});

executor_running_here!(&'c Readers, |readers, query, first_only| {
    readers.with(|connection| connection.run(query, first_only))
});

/// Implements sqlx's `Executor` for `$executor` by handing each call to
/// the executor its `match` arm names (one per engine).
macro_rules! executor_by_engine {
    ($executor:ty, { $($pattern:pat => $target:expr),+ $(,)? }) => {
        impl<'c> sqlx::Executor<'c> for $executor {
            type Database = sqlx::Any;

            fn fetch_many<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> futures::stream::BoxStream<
                'e,
                Result<sqlx::Either<sqlx::any::AnyQueryResult, sqlx::any::AnyRow>, sqlx::Error>,
            >
            where
                'c: 'e,
                E: 'q + sqlx::Execute<'q, sqlx::Any>,
            {
                match self {
                    $($pattern => $target.fetch_many(query)),+
                }
            }

            fn fetch_optional<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> futures::future::BoxFuture<'e, Result<Option<sqlx::any::AnyRow>, sqlx::Error>>
            where
                'c: 'e,
                E: 'q + sqlx::Execute<'q, sqlx::Any>,
            {
                match self {
                    $($pattern => $target.fetch_optional(query)),+
                }
            }

            fn prepare_with<'e, 'q: 'e>(
                self,
                sql: &'q str,
                parameters: &'e [sqlx::any::AnyTypeInfo],
            ) -> futures::future::BoxFuture<'e, Result<sqlx::any::AnyStatement<'q>, sqlx::Error>>
            where
                'c: 'e,
            {
                match self {
                    $($pattern => $target.prepare_with(sql, parameters)),+
                }
            }

            fn describe<'e, 'q: 'e>(
                self,
                sql: &'q str,
            ) -> futures::future::BoxFuture<'e, Result<sqlx::Describe<sqlx::Any>, sqlx::Error>>
            where
                'c: 'e,
            {
                match self {
                    $($pattern => $target.describe(sql)),+
                }
            }
        }
    };
}
pub(crate) use executor_by_engine;

/// A statement's answer as sqlx's `fetch_many` streams it: the rows,
/// then the count.
fn streamed<'e>(
    answer: Result<Answer, sqlx::Error>,
) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>> {
    match answer {
        Ok(answer) => {
            let rows = answer.rows.into_iter().map(|row| Ok(Either::Right(row)));
            let result = std::iter::once(Ok(Either::Left(answer.result)));
            futures::stream::iter(rows.chain(result)).boxed()
        }
        Err(error) => futures::stream::once(futures::future::ready(Err(error))).boxed(),
    }
}

fn first_row<'e>(
    answer: Result<Answer, sqlx::Error>,
) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>> {
    futures::future::ready(answer.map(|answer| answer.rows.into_iter().next())).boxed()
}

/// What sqlx's `Executor` needs beyond running a statement: nothing here
/// prepares or describes a statement on its own.
fn not_prepared<'e, T: 'e + Send>() -> BoxFuture<'e, Result<T, sqlx::Error>> {
    futures::future::ready(Err(sqlx::Error::Protocol(
        "statements are prepared when run on SQLite; prepare and describe are not used".into(),
    )))
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_is_told_from_one_statement() {
        assert!(!is_script("SELECT 1"));
        assert!(!is_script("SELECT 1;"));
        assert!(!is_script("SELECT 1;  \n"));
        assert!(!is_script("SELECT 'a;b' FROM t"));
        assert!(is_script("PRAGMA a = 1; PRAGMA b = 2;"));
        assert!(is_script(
            "CREATE TABLE t (x TEXT DEFAULT ';'); CREATE INDEX i ON t (x)"
        ));
    }

    #[test]
    fn a_writers_commits_are_checkpointed_by_a_thread_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut writer = Connection::open_writer(&path).unwrap();
        writer
            .run_script("PRAGMA journal_mode = WAL; CREATE TABLE t (x BLOB);")
            .unwrap();
        let size = || std::fs::metadata(&path).map_or(0, |m| m.len());
        let before = size();
        // About 2 MiB: under the writer's own threshold
        // (`WRITER_BACKSTOP_PAGES`), so only the thread moves it into the
        // file.
        let tx = writer.transaction().unwrap();
        tx.run_script(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
             INSERT INTO t SELECT randomblob(4000) FROM n;",
        )
        .unwrap();
        tx.commit().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while size() < before + 1_000_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL was not checkpointed into the file: {} bytes",
                size()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[tokio::test]
    async fn statements_run_here_answer_as_the_any_driver_does() {
        use sqlx::Row;
        let dir = tempfile::tempdir().unwrap();
        let mut connection = Connection::open(&dir.path().join("t.db")).unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, raw BLOB)")
            .execute(&mut connection)
            .await
            .unwrap();
        let inserted =
            sqlx::query("INSERT INTO t (name, score, raw) VALUES ($1, $2, $3), ($1, NULL, NULL)")
                .bind("ada")
                .bind(1.5_f64)
                .bind(vec![1_u8, 2])
                .execute(&mut connection)
                .await
                .unwrap();
        assert_eq!(inserted.rows_affected(), 2);
        let rows = sqlx::query("SELECT id, name, score, raw FROM t ORDER BY id")
            .fetch_all(&mut connection)
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].try_get::<i64, _>("id").unwrap(), 1);
        assert_eq!(rows[0].try_get::<String, _>("name").unwrap(), "ada");
        assert_eq!(rows[0].try_get::<f64, _>("score").unwrap(), 1.5);
        assert_eq!(rows[0].try_get::<Vec<u8>, _>("raw").unwrap(), vec![1, 2]);
        assert_eq!(rows[1].try_get::<Option<f64>, _>("score").unwrap(), None);
        // A parameter used twice and out of order takes its own argument.
        let swapped: (String, i64) = sqlx::query_as("SELECT $2 || $2, $1")
            .bind(7_i64)
            .bind("x")
            .fetch_one(&mut connection)
            .await
            .unwrap();
        assert_eq!(swapped, ("xx".to_owned(), 7));
    }

    #[tokio::test]
    async fn a_broken_constraint_is_a_database_error_with_its_code_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = Connection::open(&dir.path().join("t.db")).unwrap();
        connection
            .run_script("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE);")
            .unwrap();
        let insert = || sqlx::query("INSERT INTO t (name) VALUES ('a')");
        insert().execute(&mut connection).await.unwrap();
        let error = insert().execute(&mut connection).await.unwrap_err();
        let sqlx::Error::Database(error) = error else {
            panic!("not a database error: {error}")
        };
        assert_eq!(error.kind(), ErrorKind::UniqueViolation);
        assert_eq!(error.code().as_deref(), Some("2067"));
    }

    #[tokio::test]
    async fn a_transaction_dropped_uncommitted_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = Connection::open(&dir.path().join("t.db")).unwrap();
        connection
            .run_script("CREATE TABLE t (x INTEGER);")
            .unwrap();
        {
            let mut tx = connection.transaction().unwrap();
            sqlx::query("INSERT INTO t VALUES (1)")
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        let mut tx = connection.transaction().unwrap();
        sqlx::query("INSERT INTO t VALUES (2)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().unwrap();
        let kept: Vec<i64> = sqlx::query_scalar("SELECT x FROM t")
            .fetch_all(&mut connection)
            .await
            .unwrap();
        assert_eq!(kept, vec![2]);
    }
}
