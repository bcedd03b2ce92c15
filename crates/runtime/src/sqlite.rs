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
//! wait on the disk, a checkpoint's `fsync` of the database file, comes
//! with a commit every thousand pages of WAL (SQLite's automatic
//! checkpoint) and takes the calling worker thread for its length.

use std::borrow::Cow;
use std::path::Path;
use std::sync::{Arc, Mutex};

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
    /// Each prepared statement's column names, as `AnyRow` wants them
    /// (shared by every row the statement answers).
    columns: std::collections::HashMap<Box<str>, Arc<Columns>>,
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
            columns: std::collections::HashMap::new(),
        })
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
        let statement = if persistent {
            self.raw.prepare_cached(sql).map(Statement::Cached)
        } else {
            self.raw.prepare(sql).map(Statement::Once)
        };
        let mut statement = match statement {
            Ok(statement) => statement,
            // Several statements in one text (pragmas, a script): run as a
            // batch, which takes no arguments and answers no rows.
            Err(rusqlite::Error::MultipleStatement) if arguments.is_empty() => {
                self.raw.execute_batch(sql).map_err(failure)?;
                return Ok(Answer::default());
            }
            Err(error) => return Err(failure(error)),
        };
        bind(&mut statement, &arguments)?;
        let names = if persistent {
            match self.columns.get(sql) {
                Some(names) => Arc::clone(names),
                None => {
                    let names = column_names(&statement);
                    self.columns.insert(sql.into(), Arc::clone(&names));
                    names
                }
            }
        } else {
            column_names(&statement)
        };
        let mut answer = Answer::default();
        {
            let mut rows = statement.raw_query();
            while let Some(row) = rows.next().map_err(failure)? {
                answer.rows.push(any_row(row, &names)?);
                if first_only {
                    break;
                }
            }
        }
        answer.result = AnyQueryResult {
            rows_affected: self.raw.changes(),
            last_insert_id: Some(self.raw.last_insert_rowid()),
        };
        Ok(answer)
    }

    /// Runs a statement of the store's own (`BEGIN`, `COMMIT`, `ROLLBACK`).
    pub fn run_plain(&self, sql: &str) -> Result<(), sqlx::Error> {
        self.raw
            .prepare_cached(sql)
            .and_then(|mut statement| statement.raw_execute())
            .map(drop)
            .map_err(failure)
    }

    /// Whether a transaction is open (one left open by a caller that
    /// stopped half way is rolled back before the connection serves again).
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

impl Answer {
    /// As sqlx's `fetch_many` streams it: the rows, then the count.
    pub fn into_stream<'e>(
        self,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>> {
        let rows = self.rows.into_iter().map(|row| Ok(Either::Right(row)));
        futures::stream::iter(rows.chain(std::iter::once(Ok(Either::Left(self.result))))).boxed()
    }
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

/// Binds each parameter: `$n` (and `?n`) to the n-th argument, an
/// anonymous `?` to the argument in its position — as sqlx's SQLite driver
/// does, so the same SQL text means the same on both.
fn bind(
    statement: &mut rusqlite::Statement<'_>,
    arguments: &[AnyValueKind<'_>],
) -> sqlx::Result<()> {
    let count = statement.parameter_count();
    for index in 1..=count {
        let position = match statement.parameter_name(index) {
            None => index,
            Some(name) => name[1..].parse::<usize>().map_err(|_| {
                sqlx::Error::Protocol(format!("parameter {name} is neither $n nor ?n"))
            })?,
        };
        let Some(value) = arguments.get(position - 1) else {
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

fn column_names(statement: &rusqlite::Statement<'_>) -> Arc<Columns> {
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
    Arc::new(Columns {
        in_order,
        by_name: Arc::new(by_name),
    })
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
/// as threads that run statements suffice; one busy beyond that waits for
/// the first).
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
            if let Ok(mut connection) = connection.try_lock() {
                return work(&mut connection);
            }
        }
        let mut connection = self.connections[0]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        work(&mut connection)
    }
}

/// What sqlx's `Executor` needs beyond running a statement: the store
/// never prepares or describes a statement on its own.
pub fn not_prepared<'e, T: 'e + Send>() -> BoxFuture<'e, Result<T, sqlx::Error>> {
    futures::future::ready(Err(sqlx::Error::Protocol(
        "statements are prepared when run on SQLite; prepare and describe are not used".into(),
    )))
    .boxed()
}

/// For [`not_prepared`]'s signature: the statement type sqlx names.
pub type Prepared<'q> = AnyStatement<'q>;
