//! One SQL layer for SQLite and PostgreSQL, through `sqlx::Any`.
//!
//! SQL in boxoffice is written once, in the dialect both engines share:
//! `$1` placeholders, `INSERT .. ON CONFLICT`, `RETURNING`, integers and
//! text (timestamps are RFC 3339 text). Only migrations differ per engine.
//!
//! SQLite allows one writer at a time; rather than let connections race for
//! the lock and fail with `SQLITE_BUSY`, writes go through exactly one
//! connection, taken for a transaction's length, and reads through a few
//! others (WAL lets them proceed while the writer works); their statements
//! run on the caller's thread ([`crate::sqlite`]). A database file belongs
//! to one store in one process: another writer on the same file would make
//! this one wait for SQLite's lock on a worker thread. On PostgreSQL reads
//! and writes share sqlx's pool.

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions, AnyRow, AnyTransactionManager};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Arguments, TransactionManager};
use tokio::sync::Notify;

use crate::sqlite;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A list a service pages through: its table, the columns it reads, and
/// its order (a sort column, then the id to break ties). Names come from
/// code, never from a request.
#[derive(Debug, Clone, Copy)]
pub struct Listing<'a> {
    pub table: &'a str,
    pub columns: &'a str,
    pub sort: &'a str,
    pub id: &'a str,
    pub newest_first: bool,
}

/// A migration script in both dialects.
#[derive(Debug, Clone, Copy)]
pub struct MigrationScript {
    pub version: i64,
    pub description: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// A service's database: where writes go, where reads go, and a signal
/// that new outbox rows were committed (so the relay publishes without
/// polling delay).
///
/// On SQLite the store owns its connections and runs statements on the
/// caller's thread (see [`crate::sqlite`]): one writer, taken for a
/// transaction's length, and a reader per core. On PostgreSQL both are
/// sqlx's pool.
#[derive(Clone, Debug)]
pub struct Store {
    writer: Writer,
    reader: Arc<Reader>,
    backend: Backend,
    outbox_written: Arc<Notify>,
}

#[derive(Clone, Debug)]
enum Writer {
    Sqlite(Arc<tokio::sync::Mutex<sqlite::Connection>>),
    Postgres(AnyPool),
}

/// How long a transaction waits for SQLite's one writer connection.
const WRITER_WAIT: Duration = Duration::from_secs(30);

/// Where reads that need no transaction go: `fetch_all(store.reader())`.
#[derive(Debug)]
pub enum Reader {
    Sqlite(sqlite::Readers),
    Postgres(AnyPool),
}

impl Store {
    /// Connects to `url` (`sqlite://path` or `postgres://…`) and runs the
    /// messaging tables' migrations followed by the service's own.
    pub async fn connect(url: &str, migrations: &[MigrationScript]) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("unsupported database url {url:?}: expected sqlite:// or postgres://");
        };
        let options = AnyConnectOptions::from_str(url)
            .with_context(|| format!("parsing database url {}", redact(url)))?;
        match backend {
            Backend::Sqlite => {
                // The file as sqlx reads the url (percent-decoded), so the
                // store's connections open the file the migrations ran on.
                let path = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                    .with_context(|| format!("parsing database url {}", redact(url)))?
                    .get_filename()
                    .to_owned();
                anyhow::ensure!(
                    sqlite_path(url).is_some(),
                    "{url:?} names no file: the store keeps SQLite in a file"
                );
                keep_private(&path)?;
                // Migrations run through sqlx's migrator on a connection of
                // its own, closed before the store opens its connections.
                let setup = AnyPoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await
                    .with_context(|| format!("opening {}", path.display()))?;
                // WAL is a property of the file; setting it once is enough.
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&setup)
                    .await
                    .context("switching SQLite to WAL")?;
                migrate(&setup, backend, migrations).await?;
                setup.close().await;
                let writer = sqlite::Connection::open_writer(&path)
                    .with_context(|| format!("opening {}", path.display()))?;
                let readers = sqlite::Readers::open(&path, sqlite_readers())
                    .with_context(|| format!("opening {}", path.display()))?;
                Ok(Store {
                    writer: Writer::Sqlite(Arc::new(tokio::sync::Mutex::new(writer))),
                    reader: Arc::new(Reader::Sqlite(readers)),
                    backend,
                    outbox_written: Arc::default(),
                })
            }
            Backend::Postgres => {
                create_database_if_missing(url).await?;
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await
                    .with_context(|| format!("connecting to {}", redact(url)))?;
                migrate(&pool, backend, migrations).await?;
                Ok(Store {
                    writer: Writer::Postgres(pool.clone()),
                    reader: Arc::new(Reader::Postgres(pool)),
                    backend,
                    outbox_written: Arc::default(),
                })
            }
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// What a `SELECT` of a row about to change ends with: a row lock on
    /// PostgreSQL, where writers run side by side; nothing on SQLite, whose
    /// single writer already excludes the others.
    pub fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    /// Locks the rows of `table` whose `key` is one of `keys`, in key order,
    /// until the transaction ends. A consumer batch locks everything it will
    /// change this way before changing any of it, so two replicas applying
    /// batches that touch the same rows wait for each other instead of
    /// deadlocking. Nothing to do on SQLite (one writer). `table` and `key`
    /// are the caller's own identifiers, never input.
    pub async fn lock_in_order(
        &self,
        tx: &mut Tx,
        table: &str,
        key: &str,
        mut keys: Vec<String>,
    ) -> anyhow::Result<()> {
        if self.backend != Backend::Postgres || keys.is_empty() {
            return Ok(());
        }
        keys.sort_unstable();
        keys.dedup();
        let statement = format!(
            "SELECT {key} FROM {table} WHERE {key} IN ({{keys}}) ORDER BY {key} FOR UPDATE"
        );
        for slice in in_statements(&keys) {
            fetch_by_keys(tx, &statement, slice)
                .await
                .with_context(|| format!("locking the batch's rows of {table}"))?;
        }
        Ok(())
    }

    /// Where reads that need no transaction go.
    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> anyhow::Result<Tx> {
        let connection = match &self.writer {
            Writer::Sqlite(writer) => {
                // As long as the write pool used to wait for its one
                // connection: a writer held longer than this is a fault,
                // reported (and retried) as one.
                let connection = tokio::time::timeout(WRITER_WAIT, Arc::clone(writer).lock_owned())
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)
                    .context("waiting for the database's writer")?;
                connection.begin().context("starting a transaction")?;
                Connection::Sqlite(connection)
            }
            Writer::Postgres(pool) => {
                let mut connection = pool.acquire().await.context("starting a transaction")?;
                AnyTransactionManager::begin(&mut connection, None)
                    .await
                    .context("starting a transaction")?;
                Connection::Postgres(connection)
            }
        };
        Ok(Tx {
            connection,
            open: true,
        })
    }

    /// Commits a transaction that may have appended outbox rows, and wakes
    /// the relay.
    pub async fn commit(&self, tx: Tx) -> anyhow::Result<()> {
        tx.commit().await.context("committing")?;
        self.outbox_written.notify_one();
        Ok(())
    }

    pub(crate) fn outbox_signal(&self) -> Arc<Notify> {
        self.outbox_written.clone()
    }

    /// One page of `list`'s rows with the given column filters, continuing
    /// after the row whose id is `after`. `Ok(None)` when there is no such
    /// row (the client's cursor is wrong). Keyset pagination: stable and
    /// cheap however deep the page, unlike `OFFSET`.
    pub async fn page(
        &self,
        list: &Listing<'_>,
        filters: &[(&str, String)],
        after: Option<String>,
        limit: i64,
    ) -> anyhow::Result<Option<Vec<AnyRow>>> {
        let Listing {
            table,
            columns,
            sort,
            id,
            newest_first,
        } = *list;
        let mut conditions = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        for (column, value) in filters {
            binds.push(value.clone());
            conditions.push(format!("{column} = ${}", binds.len()));
        }
        if let Some(after) = after {
            let key: Option<String> =
                sqlx::query_scalar(&format!("SELECT {sort} FROM {table} WHERE {id} = $1"))
                    .bind(&after)
                    .fetch_optional(self.reader())
                    .await
                    .with_context(|| format!("finding where a page of {table} continues"))?;
            let Some(key) = key else { return Ok(None) };
            binds.push(key);
            binds.push(after);
            let (key, after) = (binds.len() - 1, binds.len());
            let beyond = if newest_first { "<" } else { ">" };
            conditions.push(format!(
                "({sort} {beyond} ${key} OR ({sort} = ${key} AND {id} {beyond} ${after}))"
            ));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let order = if newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {columns} FROM {table} {filter} ORDER BY {sort} {order}, {id} {order} LIMIT ${}",
            binds.len() + 1
        );
        let mut query = sqlx::query(&sql);
        for bind in binds {
            query = query.bind(bind);
        }
        let rows = query
            .bind(limit)
            .fetch_all(self.reader())
            .await
            .with_context(|| format!("listing {table}"))?;
        Ok(Some(rows))
    }

    /// Whether the database answers (for readiness).
    pub async fn is_ready(&self) -> bool {
        sqlx::query("SELECT 1").execute(self.reader()).await.is_ok()
    }

    /// Closes the connections (PostgreSQL's pool; SQLite's close with the
    /// last clone of the store).
    pub async fn close(&self) {
        if let Writer::Postgres(pool) = &self.writer {
            pool.close().await;
        }
    }
}

/// A write transaction: a connection of the store's, taken until commit.
/// Dropped without a commit, it rolls back. Statements run on it as on
/// sqlx's transactions: `query.execute(&mut **tx)`.
#[derive(Debug)]
pub struct Tx {
    connection: Connection,
    open: bool,
}

/// The connection a [`Tx`] holds; what its statements run on.
#[derive(Debug)]
pub enum Connection {
    Sqlite(tokio::sync::OwnedMutexGuard<sqlite::Connection>),
    Postgres(PoolConnection<Any>),
}

impl Tx {
    pub fn backend(&self) -> Backend {
        match self.connection {
            Connection::Sqlite(_) => Backend::Sqlite,
            Connection::Postgres(_) => Backend::Postgres,
        }
    }

    /// Commits (without waking the relay: see [`Store::commit`]).
    pub async fn commit(mut self) -> sqlx::Result<()> {
        match &mut self.connection {
            Connection::Sqlite(connection) => connection.run_plain("COMMIT")?,
            Connection::Postgres(connection) => AnyTransactionManager::commit(connection).await?,
        }
        self.open = false;
        Ok(())
    }

    pub async fn rollback(mut self) -> sqlx::Result<()> {
        match &mut self.connection {
            Connection::Sqlite(connection) => connection.run_plain("ROLLBACK")?,
            Connection::Postgres(connection) => AnyTransactionManager::rollback(connection).await?,
        }
        self.open = false;
        Ok(())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        match &mut self.connection {
            // Left open, [`Store::begin`] rolls it back before the next.
            Connection::Sqlite(connection) => drop(connection.run_plain("ROLLBACK")),
            // Sent before the connection's next use, as sqlx's own
            // transactions do.
            Connection::Postgres(connection) => AnyTransactionManager::start_rollback(connection),
        }
    }
}

impl std::ops::Deref for Tx {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.connection
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.connection
    }
}

sqlite::executor_by_engine!(&'c mut Connection, {
    Connection::Sqlite(connection) => (&mut **connection),
    Connection::Postgres(connection) => (&mut **connection),
});

sqlite::executor_by_engine!(&'c Reader, {
    Reader::Sqlite(readers) => readers,
    Reader::Postgres(pool) => pool,
});

async fn migrate(
    pool: &AnyPool,
    backend: Backend,
    scripts: &[MigrationScript],
) -> anyhow::Result<()> {
    let migrations: Vec<Migration> = crate::outbox::MESSAGING_MIGRATIONS
        .iter()
        .chain(scripts)
        .map(|script| {
            let sql = match backend {
                Backend::Sqlite => script.sqlite,
                Backend::Postgres => script.postgres,
            };
            Migration::new(
                script.version,
                Cow::Borrowed(script.description),
                MigrationType::Simple,
                Cow::Borrowed(sql),
                false,
            )
        })
        .collect();
    let migrator = Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    };
    migrator.run(pool).await.context("running migrations")?;
    Ok(())
}

/// A service owns its database: on first start it creates it, so a new
/// deployment needs only a PostgreSQL role allowed to create databases.
async fn create_database_if_missing(url: &str) -> anyhow::Result<()> {
    use sqlx::migrate::MigrateDatabase;
    let exists = sqlx::Postgres::database_exists(url)
        .await
        .with_context(|| format!("connecting to {}", redact(url)))?;
    if exists {
        return Ok(());
    }
    match sqlx::Postgres::create_database(url).await {
        Ok(()) => {
            tracing::info!(database = %redact(url), "database created");
            Ok(())
        }
        // Another replica created it a moment ago: PostgreSQL says so with
        // "duplicate database" (42P04) or, when both creations ran at the
        // same moment, with a unique violation on its catalog (23505).
        Err(sqlx::Error::Database(error))
            if matches!(error.code().as_deref(), Some("42P04" | "23505")) =>
        {
            Ok(())
        }
        Err(error) => Err(error).with_context(|| format!("creating the database {}", redact(url))),
    }
}

/// Reader connections per SQLite database: one per core. A read runs on
/// the thread that awaits it and holds its connection for that one
/// statement, so more readers than the runtime's worker threads (one per
/// core) would only add page caches. (When sqlx ran each connection on a
/// thread of its own, four readers each had meant 4–7 MiB more resident
/// memory for no more bookings a second.)
pub fn sqlite_readers() -> usize {
    std::thread::available_parallelism().map_or(2, |cores| cores.get().clamp(2, 8))
}

/// The most rows one multi-row statement carries: a consumer batch's worth
/// when it keeps up (256 events; a larger batch takes several statements),
/// far below either database's parameter limit.
pub const MOST_ROWS_PER_STATEMENT: usize = 256;

/// `items` in slices whose lengths are powers of two, largest first, none
/// longer than [`MOST_ROWS_PER_STATEMENT`] (13 rows: 8, 4, 1). A
/// multi-row statement's text depends on its row count, and each text is
/// prepared and cached on the connection once; any count allowed would
/// mean a new text per batch size and a cache that keeps evicting the
/// service's other statements. Powers of two allow nine texts per kind of
/// statement, at most a handful of statements per batch.
pub fn in_statements<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let largest = 1 << rest.len().ilog2();
        let (slice, left) = rest.split_at(largest.min(MOST_ROWS_PER_STATEMENT));
        rest = left;
        Some(slice)
    })
}

/// Runs `statement` with its `{keys}` replaced by one placeholder per key
/// (`… WHERE id IN ({keys})`), planned at each execution ([`Plan::EachTime`]:
/// a list of keys joined to a table). Callers split long lists with
/// [`in_statements`].
pub async fn fetch_by_keys<K: ToString>(
    tx: &mut Tx,
    statement: &str,
    keys: &[K],
) -> sqlx::Result<Vec<AnyRow>> {
    let sql = text_of(tx, statement, "{keys}", keys.len(), 1, |key| key[0].clone());
    let mut query = sqlx::query(&sql).persistent(Plan::EachTime.keeps_statement(tx));
    for key in keys {
        query = query.bind(key.to_string());
    }
    query.fetch_all(&mut **tx).await
}

/// One row's values for [`write_rows`], in column order.
pub struct RowValues {
    arguments: AnyArguments<'static>,
    added: usize,
    error: Option<sqlx::error::BoxDynError>,
}

impl RowValues {
    /// Adds the next column's value (a value that cannot be encoded fails
    /// the statement, with its error).
    pub fn push<V>(&mut self, value: V) -> &mut RowValues
    where
        V: 'static + sqlx::Encode<'static, Any> + sqlx::Type<Any>,
    {
        if let (None, Err(error)) = (&self.error, self.arguments.add(value)) {
            self.error = Some(error);
        }
        self.added += 1;
        self
    }
}

/// Writes `rows` with one multi-row statement per [`in_statements`] slice.
/// `statement` is the SQL with `{values}` where the `VALUES` list goes,
/// `tuple` writes one row's tuple from its `columns` placeholders (see
/// [`values_list`]), and `row` pushes a row's values in column order.
pub async fn write_rows<T>(
    tx: &mut Tx,
    rows: &[T],
    columns: usize,
    statement: &str,
    tuple: impl Fn(&[String]) -> String,
    row: impl Fn(&mut RowValues, &T) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    write_rows_counting(tx, rows, columns, statement, tuple, row, Plan::Prepared)
        .await
        .map(drop)
}

/// How a statement is planned on PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Prepared once per connection and its plan reused: right for
    /// statements whose best plan never changes (an upsert by key).
    Prepared,
    /// Planned at each execution with the table as it is then: for a
    /// statement that joins a list of keys to a table (`IN (…)`, `FROM
    /// (VALUES …)`), whose reused plan, made while the table was small,
    /// stays a sequential scan as the table grows (seen with the
    /// dashboard's first batch reads: 25 ms a batch after 20 s of load).
    EachTime,
}

impl Plan {
    /// Whether the statement is kept prepared on `tx`'s connection.
    /// SQLite plans a statement from the schema alone (no table sizes:
    /// nothing here runs `ANALYZE`), so a statement prepared again plans
    /// the same, and only the parsing is paid again: 9 % of the platform's
    /// CPU at 400 bookings a second (measured). Every text here is one of a
    /// bounded set (a template and a power-of-two row count).
    fn keeps_statement(self, tx: &Tx) -> bool {
        self == Plan::Prepared || tx.backend() == Backend::Sqlite
    }
}

/// [`write_rows`], telling how many rows the statements changed (a guarded
/// multi-row update, `… WHERE version = …`, checks that every row it
/// meant to change was still as read), and planned as `plan` says.
pub async fn write_rows_counting<T>(
    tx: &mut Tx,
    rows: &[T],
    columns: usize,
    statement: &str,
    tuple: impl Fn(&[String]) -> String,
    row: impl Fn(&mut RowValues, &T) -> anyhow::Result<()>,
    plan: Plan,
) -> anyhow::Result<u64> {
    let mut changed = 0;
    for slice in in_statements(rows) {
        let (sql, arguments) = multi_row(tx, slice, columns, statement, &tuple, &row)?;
        changed += sqlx::query_with(&sql, arguments)
            .persistent(plan.keeps_statement(tx))
            .execute(&mut **tx)
            .await?
            .rows_affected();
    }
    Ok(changed)
}

/// [`write_rows`] for a statement that answers rows (`… RETURNING id`):
/// every slice's answer, in order. Planned as `plan` says.
pub async fn write_rows_returning<T>(
    tx: &mut Tx,
    rows: &[T],
    columns: usize,
    statement: &str,
    tuple: impl Fn(&[String]) -> String,
    row: impl Fn(&mut RowValues, &T) -> anyhow::Result<()>,
    plan: Plan,
) -> anyhow::Result<Vec<AnyRow>> {
    let mut answered = Vec::new();
    for slice in in_statements(rows) {
        let (sql, arguments) = multi_row(tx, slice, columns, statement, &tuple, &row)?;
        answered.extend(
            sqlx::query_with(&sql, arguments)
                .persistent(plan.keeps_statement(tx))
                .fetch_all(&mut **tx)
                .await?,
        );
    }
    Ok(answered)
}

/// One multi-row statement's text and values for `slice`.
fn multi_row<T>(
    tx: &Tx,
    slice: &[T],
    columns: usize,
    statement: &str,
    tuple: &impl Fn(&[String]) -> String,
    row: &impl Fn(&mut RowValues, &T) -> anyhow::Result<()>,
) -> anyhow::Result<(Arc<str>, AnyArguments<'static>)> {
    let sql = multi_row_text(tx, statement, slice.len(), columns, tuple);
    let mut values = RowValues {
        arguments: AnyArguments::default(),
        added: 0,
        error: None,
    };
    for each in slice {
        row(&mut values, each)?;
    }
    if let Some(error) = values.error {
        return Err(anyhow::anyhow!(error).context("a value the database cannot take"));
    }
    anyhow::ensure!(
        values.added == slice.len() * columns,
        "{} values for {} rows of {columns} columns",
        values.added,
        slice.len()
    );
    Ok((sql, values.arguments))
}

/// The texts of multi-row statements written so far, by template, then by
/// rows, columns and database. Writing one out (hundreds of numbered
/// placeholders, then made anonymous for SQLite) was 2–3 % of the
/// platform's CPU, redone for every statement although a template only
/// ever gives a handful of texts: [`in_statements`] cuts batches into
/// powers of two. A template's text fixes its row tuple (each is written
/// at one place in the code), so the template names the text.
static STATEMENT_TEXTS: LazyLock<Mutex<HashMap<String, TextsOfTemplate>>> =
    LazyLock::new(Mutex::default);

/// One template's texts by (rows, columns, SQLite or not).
type TextsOfTemplate = HashMap<(usize, usize, bool), Arc<str>>;

/// The text of `template` (SQL with `{values}` where the `VALUES` list
/// goes) for `rows` rows of `columns` parameters, each row's tuple written
/// by `tuple` (see [`values_list`]), as the transaction's database binds
/// it fastest: with anonymous parameters on SQLite where
/// [`anonymous_parameters`] allows, numbered on PostgreSQL.
pub fn multi_row_text(
    tx: &Tx,
    template: &str,
    rows: usize,
    columns: usize,
    tuple: impl Fn(&[String]) -> String,
) -> Arc<str> {
    text_of(tx, template, "{values}", rows, columns, tuple)
}

/// [`multi_row_text`] with the list going where `marker` is (a key-list
/// read's `IN ({keys})`); the template, marker included, names the text.
fn text_of(
    tx: &Tx,
    template: &str,
    marker: &str,
    rows: usize,
    columns: usize,
    tuple: impl Fn(&[String]) -> String,
) -> Arc<str> {
    let sqlite = tx.backend() == Backend::Sqlite;
    let mut texts = STATEMENT_TEXTS.lock().expect("the statement texts' lock");
    if let Some(text) = texts
        .get(template)
        .and_then(|texts| texts.get(&(rows, columns, sqlite)))
    {
        return Arc::clone(text);
    }
    let numbered = template.replace(marker, &values_list(rows, columns, tuple));
    let text: Arc<str> = if sqlite {
        anonymous_parameters(&numbered).unwrap_or(numbered)
    } else {
        numbered
    }
    .into();
    texts
        .entry(template.to_owned())
        .or_default()
        .insert((rows, columns, sqlite), Arc::clone(&text));
    text
}

/// `sql` with its numbered parameters (`$1, $2, …`) made anonymous (`?`),
/// when each number appears once and in order; `None` otherwise (a
/// parameter used twice or out of order must keep its number).
///
/// Why: a `$n` parameter is bound on SQLite by asking SQLite its name, and
/// SQLite finds a name by walking the statement's list of parameters, so
/// binding a multi-row statement (up to 1,280 parameters) was quadratic in
/// its parameters — 2.4 % of the platform's CPU in the booking benchmark's
/// profile when sqlx did it at every execution. [`crate::sqlite`] now keeps
/// each text's positions, but a statement planned at each execution
/// ([`Plan::EachTime`]) is looked up anew; anonymous parameters are bound
/// by position with no lookup.
pub fn anonymous_parameters(sql: &str) -> Option<String> {
    let mut anonymous = String::with_capacity(sql.len());
    let mut next = 1u32;
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c != '$' || quoted {
            anonymous.push(c);
            continue;
        }
        let digits: String = std::iter::from_fn(|| chars.next_if(char::is_ascii_digit)).collect();
        if digits.parse::<u32>().ok()? != next {
            return None;
        }
        next += 1;
        anonymous.push('?');
    }
    Some(anonymous)
}

/// A plain `($1, $2, …)` tuple, for [`write_rows`].
pub fn plain_tuple(placeholders: &[String]) -> String {
    format!("({})", placeholders.join(", "))
}

/// The `VALUES` list of a multi-row statement: `rows` tuples of `columns`
/// parameters each, numbered `$1, $2, …` in row order, each tuple written
/// by `tuple` from its placeholders (`|p| format!("({})", p.join(", "))`
/// for plain values). Written out because sqlx's query builder numbers
/// nothing for the `Any` driver, and PostgreSQL needs `$n`.
pub fn values_list(rows: usize, columns: usize, tuple: impl Fn(&[String]) -> String) -> String {
    (0..rows)
        .map(|row| {
            let placeholders: Vec<String> = (1..=columns)
                .map(|column| format!("${}", row * columns + column))
                .collect();
            tuple(&placeholders)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The url without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}://{}:***@{}", &url[..scheme], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// The file a `sqlite://` url names, if it names one.
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// Makes a SQLite database file readable by its owner only (0600),
/// creating it empty if it does not exist yet, and its `-wal` and `-shm`
/// files if they exist (SQLite gives new ones the database's mode). Users'
/// password hashes and bookings live in these files.
pub fn keep_private(path: &std::path::Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut companions = vec![path.to_path_buf()];
        for suffix in ["-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            companions.push(name.into());
        }
        for file in companions.iter().filter(|file| file.exists()) {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("making {} private", file.display()))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// A SQLite url for a file in `dir`, created if missing.
pub fn sqlite_url(dir: &std::path::Path, name: &str) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        dir.join(format!("{name}.db")).display()
    )
}

/// For tests: a fresh database named after `context` and `purpose` on the
/// PostgreSQL server `BOXOFFICE_TEST_POSTGRES` names (created on connect);
/// `None` without one, which CI never is (it starts a server), so there
/// it fails instead of skipping.
pub fn test_postgres_url(context: &str, purpose: &str) -> Option<String> {
    let Some(server) = std::env::var("BOXOFFICE_TEST_POSTGRES").ok() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs this test: set BOXOFFICE_TEST_POSTGRES"
        );
        return None;
    };
    let unique = kernel::ids::EventId::new().as_uuid().simple();
    let database = format!("{context}_{purpose}_{unique}");
    Some(format!("{}/{database}", server.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/catalog"),
            "postgres://app:***@db:5432/catalog"
        );
        assert_eq!(redact("sqlite://data/x.db"), "sqlite://data/x.db");
    }

    #[test]
    fn parameters_become_anonymous_only_when_each_comes_once_in_order() {
        assert_eq!(
            anonymous_parameters("INSERT INTO t VALUES ($1, lower($2)), ($3, lower($4))")
                .as_deref(),
            Some("INSERT INTO t VALUES (?, lower(?)), (?, lower(?))")
        );
        assert_eq!(
            anonymous_parameters("SELECT '$9', $1 WHERE a = $2").as_deref(),
            Some("SELECT '$9', ? WHERE a = ?")
        );
        assert_eq!(anonymous_parameters("VALUES ($1, $3, $2)"), None);
        assert_eq!(anonymous_parameters("VALUES ($1, $2), ($1, $3)"), None);
        assert_eq!(anonymous_parameters("VALUES ($1, $)"), None);
        assert_eq!(
            anonymous_parameters("SELECT 1").as_deref(),
            Some("SELECT 1")
        );
    }

    #[test]
    fn a_values_list_numbers_every_parameter_in_row_order() {
        let plain = values_list(2, 3, |p| format!("({})", p.join(", ")));
        assert_eq!(plain, "($1, $2, $3), ($4, $5, $6)");
        let shaped = values_list(2, 2, |p| format!("({}, lower({}))", p[0], p[1]));
        assert_eq!(shaped, "($1, lower($2)), ($3, lower($4))");
        assert_eq!(values_list(0, 3, |p| p.join(",")), "");
    }

    #[tokio::test]
    async fn rows_are_written_in_a_few_statements_and_a_short_row_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&sqlite_url(dir.path(), "rows"), &[])
            .await
            .unwrap();
        let mut tx = store.begin().await.unwrap();
        sqlx::query("CREATE TABLE seen (n BIGINT PRIMARY KEY, label TEXT NOT NULL)")
            .execute(&mut *tx)
            .await
            .unwrap();
        let rows: Vec<i64> = (1..=13).collect();
        let insert = "INSERT INTO seen (n, label) VALUES {values}";
        let written = write_rows_counting(
            &mut tx,
            &rows,
            2,
            insert,
            plain_tuple,
            |values, n| {
                values.push(*n).push(format!("row {n}"));
                Ok(())
            },
            Plan::EachTime,
        )
        .await
        .unwrap();
        assert_eq!(
            written, 13,
            "every row counted, over the 8, 4 and 1-row statements"
        );
        let (count, sum): (i64, i64) = sqlx::query_as("SELECT COUNT(*), SUM(n) FROM seen")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!((count, sum), (13, 91));
        // A row with a value missing is refused before anything is sent.
        let short = write_rows(&mut tx, &[14_i64], 2, insert, plain_tuple, |values, n| {
            values.push(*n);
            Ok(())
        })
        .await
        .unwrap_err();
        assert!(
            format!("{short:#}").contains("1 values for 1 rows of 2 columns"),
            "{short:#}"
        );
        // Each shape of a statement is written out once, for SQLite with
        // anonymous parameters.
        let text = multi_row_text(&tx, insert, 2, 2, plain_tuple);
        assert_eq!(&*text, "INSERT INTO seen (n, label) VALUES (?, ?), (?, ?)");
        assert!(Arc::ptr_eq(
            &text,
            &multi_row_text(&tx, insert, 2, 2, plain_tuple)
        ));
        assert_eq!(
            &*multi_row_text(&tx, insert, 1, 2, plain_tuple),
            "INSERT INTO seen (n, label) VALUES (?, ?)"
        );
    }

    #[test]
    fn rows_go_into_statements_of_a_few_sizes() {
        let sizes =
            |n: usize| -> Vec<usize> { in_statements(&vec![0; n]).map(<[i32]>::len).collect() };
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(13), [8, 4, 1]);
        assert_eq!(sizes(256), [256]);
        assert_eq!(sizes(600), [256, 256, 64, 16, 8]);
        // Every row once, in order.
        let rows: Vec<usize> = (0..77).collect();
        let again: Vec<usize> = in_statements(&rows).flatten().copied().collect();
        assert_eq!(again, rows);
    }
}
