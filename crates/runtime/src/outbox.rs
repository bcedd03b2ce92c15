//! The transactional outbox: events are appended in the same transaction as
//! the state change that caused them, and a relay publishes them afterwards.
//! A crash between commit and publish only delays the event; a crash after
//! publish but before the row is removed re-publishes it, which consumers'
//! inboxes absorb.

use crate::store::Tx;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kernel::bus::{EventBus, Outgoing};
use kernel::shutdown::Shutdown;
use kernel::Envelope;
use sqlx::{Any, Row};

use crate::dead_letters;
use crate::retry::Outage;
use crate::store::{Backend, MigrationScript, Store};

/// Tables every service has: outbox, inbox, dead letters. Versions below
/// 100 belong to this toolkit; services number theirs from 100.
pub const MESSAGING_MIGRATIONS: &[MigrationScript] = &[
    MigrationScript {
        version: 1,
        description: "messaging: outbox, inbox, dead letters",
        sqlite: "
        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            topic TEXT NOT NULL,
            envelope TEXT NOT NULL
        );
        CREATE TABLE inbox (
            consumer TEXT NOT NULL,
            event_id TEXT NOT NULL,
            processed_at TEXT NOT NULL,
            PRIMARY KEY (consumer, event_id)
        );
        CREATE TABLE dead_letters (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            consumer TEXT NOT NULL,
            event_id TEXT NOT NULL,
            topic TEXT NOT NULL,
            envelope TEXT NOT NULL,
            error TEXT NOT NULL,
            failed_at TEXT NOT NULL
        );",
        postgres: "
        CREATE TABLE outbox (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            topic TEXT NOT NULL,
            envelope TEXT NOT NULL
        );
        CREATE TABLE inbox (
            consumer TEXT NOT NULL,
            event_id TEXT NOT NULL,
            processed_at TEXT NOT NULL,
            PRIMARY KEY (consumer, event_id)
        );
        CREATE TABLE dead_letters (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            consumer TEXT NOT NULL,
            event_id TEXT NOT NULL,
            topic TEXT NOT NULL,
            envelope TEXT NOT NULL,
            error TEXT NOT NULL,
            failed_at TEXT NOT NULL
        );",
    },
    MigrationScript {
        version: 2,
        description: "messaging: replayable dead letters, fixed-width timestamps",
        sqlite: MESSAGING_V2_SQLITE,
        postgres: MESSAGING_V2_POSTGRES,
    },
    MigrationScript {
        version: 3,
        description: "messaging: the inbox as one B-tree",
        sqlite: INBOX_WITHOUT_ROWID,
        // A PostgreSQL table is a heap and its key an index either way.
        postgres: "SELECT 1;",
    },
];

/// On SQLite a table with a key other than an integer is two B-trees: the
/// rows by a hidden rowid, and the key in an index beside them. The inbox
/// is only ever looked up by its key, and takes about sixteen rows per
/// booking (one per consumer per event it acts on): stored by the key
/// alone, each row is written once, not twice.
const INBOX_WITHOUT_ROWID: &str = "
CREATE TABLE inbox_by_key (
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    processed_at TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
) WITHOUT ROWID;
INSERT INTO inbox_by_key (consumer, event_id, processed_at)
    SELECT consumer, event_id, processed_at FROM inbox;
DROP TABLE inbox;
ALTER TABLE inbox_by_key RENAME TO inbox;";

/// Dead letters gain what replay and undecodable records need; they stop
/// being marked processed in the inbox (a replay must apply them).
/// Timestamps become fixed-width text.
macro_rules! messaging_v2 {
    ($id:literal, $blob:literal) => {
        concat!(
            "CREATE TABLE dead_letters_v2 (
                id ", $id, ",
                consumer TEXT NOT NULL,
                event_id TEXT,
                event_type TEXT,
                topic TEXT NOT NULL,
                part BIGINT NOT NULL,
                position BIGINT NOT NULL,
                envelope TEXT,
                raw ", $blob, ",
                error TEXT NOT NULL,
                attempts BIGINT NOT NULL,
                status TEXT NOT NULL,
                failed_at TEXT NOT NULL,
                replayed_at TEXT,
                UNIQUE (consumer, event_id),
                UNIQUE (consumer, topic, part, position)
            );
            INSERT INTO dead_letters_v2 (consumer, event_id, topic, part, position, envelope, error,
                attempts, status, failed_at)
                SELECT consumer, event_id, topic, -1, -id, envelope, error, 5, 'dead', failed_at
                FROM dead_letters;
            DELETE FROM inbox WHERE EXISTS (SELECT 1 FROM dead_letters d
                WHERE d.consumer = inbox.consumer AND d.event_id = inbox.event_id);
            DROP TABLE dead_letters;
            ALTER TABLE dead_letters_v2 RENAME TO dead_letters;
            ",
            crate::fixed_width_timestamps!(("inbox", "processed_at"), ("dead_letters", "failed_at")),
        )
    };
}
const MESSAGING_V2_SQLITE: &str = messaging_v2!("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB");
const MESSAGING_V2_POSTGRES: &str =
    messaging_v2!("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BYTEA");

/// Appends events to the outbox inside the caller's transaction. An event
/// without a trace context takes the current span's (when traces are on),
/// so whoever handles it continues this trace.
pub async fn append(tx: &mut Tx, events: &[Outgoing]) -> anyhow::Result<()> {
    let mut stamped;
    let events = if crate::telemetry::is_on() {
        stamped = events.to_vec();
        crate::telemetry::stamp(&mut stamped);
        &stamped[..]
    } else {
        events
    };
    // One statement for many events (a group commit's, a settlement's);
    // rows take their sequence numbers in this order.
    crate::store::write_rows(
        tx,
        events,
        2,
        "INSERT INTO outbox (topic, envelope) VALUES {values}",
        crate::store::plain_tuple,
        |values, event| {
            values
                .push(event.topic.clone())
                .push(serde_json::to_string(&event.envelope)?);
            Ok(())
        },
    )
    .await
    .context("appending to the outbox")
}

const RELAY_BATCH: i64 = 512;

/// Publishes outbox rows in order until shutdown, then drains what is left.
/// A store or bus outage is waited out (backoff with jitter, reported once
/// a minute); rows stay in the outbox until the bus has them.
pub async fn relay(
    store: Store,
    bus: Arc<dyn EventBus>,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    let signal = store.outbox_signal();
    let mut outage = Outage::new(dead_letters::RELAY);
    loop {
        let woken = signal.notified();
        match relay_once(&store, bus.as_ref()).await {
            Ok(0) => {
                outage.recovered();
                if shutdown.is_fired() {
                    return Ok(());
                }
                tokio::select! {
                    _ = woken => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.wait() => {}
                }
            }
            Ok(_) => outage.recovered(),
            Err(error) => {
                if shutdown.is_fired() {
                    // What is left goes out on the next start.
                    return Err(error.context("outbox not drained at shutdown"));
                }
                // Returns early on shutdown; the loop then tries a last drain.
                outage.wait(&error, &mut shutdown).await;
            }
        }
    }
}

/// The outbox rows of one pass, and those that cannot be read. The events
/// and their sequence numbers are kept side by side so the events can be
/// handed to the bus as they are, without a copy.
struct Pending {
    seqs: Vec<i64>,
    events: Vec<Outgoing>,
    unreadable: Vec<Unreadable>,
}

struct Unreadable {
    seq: i64,
    topic: String,
    raw: String,
    error: String,
}

/// Publishes one batch; returns how many rows it dealt with.
async fn relay_once(store: &Store, bus: &dyn EventBus) -> anyhow::Result<usize> {
    match store.backend() {
        // One writer per SQLite file: read, publish, then delete what went out.
        Backend::Sqlite => {
            let pending = pending(store.reader(), RELAY_BATCH).await?;
            if pending.is_empty() {
                return Ok(0);
            }
            let published = publish(bus, &pending).await;
            let mut tx = store.begin().await?;
            let done = settle(&mut tx, &pending, &published).await?;
            tx.commit().await?;
            published.map(|_| done).map_err(|(_, error)| error)
        }
        // Several replicas may share a PostgreSQL database: a transaction-scoped
        // advisory lock keeps one relay at a time, which keeps the order.
        Backend::Postgres => {
            let mut tx = store.begin().await?;
            let leader: bool = sqlx::query("SELECT pg_try_advisory_xact_lock(7240311)")
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            if !leader {
                return Ok(0);
            }
            let pending = pending(&mut *tx, RELAY_BATCH).await?;
            if pending.is_empty() {
                return Ok(0);
            }
            let published = publish(bus, &pending).await;
            let done = settle(&mut tx, &pending, &published).await?;
            tx.commit().await?;
            published.map(|_| done).map_err(|(_, error)| error)
        }
    }
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.unreadable.is_empty()
    }
}

/// How many of the pending events (from the first) the bus has, or why it
/// has fewer.
async fn publish(bus: &dyn EventBus, pending: &Pending) -> Result<usize, (usize, anyhow::Error)> {
    match bus.publish(&pending.events).await {
        Ok(()) => Ok(pending.events.len()),
        Err(error) => Err((
            error.delivered,
            anyhow::Error::new(error).context("publishing outbox rows"),
        )),
    }
}

/// Removes what went out and parks what cannot be read. Only the events
/// before the first failure count as published: the next pass re-sends
/// from there, so every key's events reach the bus in outbox order.
async fn settle(
    tx: &mut Tx,
    pending: &Pending,
    published: &Result<usize, (usize, anyhow::Error)>,
) -> anyhow::Result<usize> {
    let delivered = match published {
        Ok(count) => *count,
        Err((count, _)) => *count,
    };
    let mut seqs: Vec<i64> = pending.seqs[..delivered.min(pending.seqs.len())].to_vec();
    for row in &pending.unreadable {
        tracing::error!(seq = row.seq, topic = %row.topic, error = %row.error, "an outbox row that is not an event; kept as a dead letter");
        metrics::counter!("boxoffice_outbox_malformed_rows_total").increment(1);
        dead_letters::park_unreadable_outbox_row(
            tx,
            &row.topic,
            row.seq,
            row.raw.clone().into_bytes(),
            &row.error,
        )
        .await?;
        seqs.push(row.seq);
    }
    remove(tx, &seqs).await?;
    Ok(seqs.len())
}

/// Deletes exactly the rows that were published. Not `seq <= last`: on
/// PostgreSQL a transaction that took a lower `seq` may commit after the
/// read, and a range delete would drop its event unpublished.
/// In power-of-two slices, so a handful of statement texts is prepared on
/// each connection rather than one per batch size.
async fn remove(tx: &mut Tx, seqs: &[i64]) -> anyhow::Result<()> {
    for chunk in crate::store::in_statements(seqs) {
        // `$n` placeholders written out: both engines read them, whereas the
        // query builder would emit `?` for `Any`, which PostgreSQL rejects.
        let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "DELETE FROM outbox WHERE seq IN ({})",
            placeholders.join(", ")
        );
        let mut delete = sqlx::query(&sql);
        for seq in chunk {
            delete = delete.bind(*seq);
        }
        delete
            .execute(&mut **tx)
            .await
            .context("removing published outbox rows")?;
    }
    Ok(())
}

async fn pending<'e, E>(executor: E, limit: i64) -> anyhow::Result<Pending>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let rows = sqlx::query("SELECT seq, topic, envelope FROM outbox ORDER BY seq LIMIT $1")
        .bind(limit)
        .fetch_all(executor)
        .await
        .context("reading the outbox")?;
    let mut pending = Pending {
        seqs: Vec::with_capacity(rows.len()),
        events: Vec::with_capacity(rows.len()),
        unreadable: Vec::new(),
    };
    for row in rows {
        let seq: i64 = row.try_get("seq")?;
        let topic: String = row.try_get("topic")?;
        let raw: String = row.try_get("envelope")?;
        match serde_json::from_str::<Envelope>(&raw) {
            Ok(envelope) => {
                pending.seqs.push(seq);
                pending.events.push(Outgoing { topic, envelope });
            }
            // One bad row must not stop every event behind it.
            Err(error) => pending.unreadable.push(Unreadable {
                seq,
                topic,
                raw,
                error: format!("outbox row {seq} is not an envelope: {error}"),
            }),
        }
    }
    Ok(pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messaging scripts in order on one SQLite file, as an upgrade
    /// meets them: an inbox from before keeps its rows and its key.
    #[test]
    fn the_inbox_keeps_its_rows_when_it_becomes_one_b_tree() {
        let dir = tempfile::tempdir().unwrap();
        let db = rusqlite::Connection::open(dir.path().join("upgrade.db")).unwrap();
        let [v1, v2, v3] = MESSAGING_MIGRATIONS else {
            panic!("three messaging scripts")
        };
        db.execute_batch(v1.sqlite).unwrap();
        db.execute_batch(v2.sqlite).unwrap();
        db.execute(
            "INSERT INTO inbox (consumer, event_id, processed_at) VALUES ('saga', 'e1', 't')",
            [],
        )
        .unwrap();

        db.execute_batch(v3.sqlite).unwrap();

        let kept: String = db
            .query_row(
                "SELECT event_id FROM inbox WHERE consumer = 'saga'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(kept, "e1");
        let definition: String = db
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'inbox'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert!(definition.contains("WITHOUT ROWID"), "{definition}");
        let again = db.execute(
            "INSERT INTO inbox (consumer, event_id, processed_at) VALUES ('saga', 'e1', 't')",
            [],
        );
        assert!(again.is_err(), "the key still refuses a second row");
    }
}
