//! The transactional outbox: events are appended in the same transaction as
//! the state change that caused them, and a relay publishes them afterwards.
//! A crash between commit and publish only delays the event; a crash after
//! publish but before the row is removed re-publishes it, which consumers'
//! inboxes absorb.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kernel::bus::{EventBus, Outgoing};
use kernel::shutdown::Shutdown;
use kernel::Envelope;
use sqlx::{Any, Row, Transaction};

use crate::store::{Backend, MigrationScript, Store};

/// Tables every service has: outbox, inbox, dead letters. Versions below
/// 100 belong to this toolkit; services number theirs from 100.
pub const MESSAGING_MIGRATIONS: &[MigrationScript] = &[MigrationScript {
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
}];

/// Appends events to the outbox inside the caller's transaction.
pub async fn append(tx: &mut Transaction<'static, Any>, events: &[Outgoing]) -> anyhow::Result<()> {
    for event in events {
        let envelope = serde_json::to_string(&event.envelope)?;
        sqlx::query("INSERT INTO outbox (topic, envelope) VALUES ($1, $2)")
            .bind(&event.topic)
            .bind(envelope)
            .execute(&mut **tx)
            .await
            .context("appending to the outbox")?;
    }
    Ok(())
}

const RELAY_BATCH: i64 = 512;

/// Publishes outbox rows in order until shutdown, then drains what is left.
pub async fn relay(
    store: Store,
    bus: Arc<dyn EventBus>,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    let signal = store.outbox_signal();
    let mut failures = 0u32;
    loop {
        let woken = signal.notified();
        match relay_once(&store, bus.as_ref()).await {
            Ok(0) => {
                failures = 0;
                if shutdown.is_fired() {
                    return Ok(());
                }
                tokio::select! {
                    _ = woken => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.wait() => {}
                }
            }
            Ok(_) => failures = 0,
            Err(error) => {
                failures += 1;
                tracing::warn!(
                    error = format!("{error:#}"),
                    failures,
                    "outbox relay failed; retrying"
                );
                if shutdown.is_fired() && failures > 3 {
                    return Err(error.context("outbox not drained at shutdown"));
                }
                tokio::time::sleep(backoff(failures)).await;
            }
        }
    }
}

/// Publishes one batch; returns how many rows went out.
async fn relay_once(store: &Store, bus: &dyn EventBus) -> anyhow::Result<usize> {
    match store.backend() {
        // One writer per SQLite file: read, publish, then delete what went out.
        Backend::Sqlite => {
            let rows = pending(store.reader(), RELAY_BATCH).await?;
            if rows.is_empty() {
                return Ok(0);
            }
            let (seqs, events): (Vec<i64>, Vec<Outgoing>) = rows.into_iter().unzip();
            bus.publish(&events)
                .await
                .context("publishing outbox rows")?;
            let mut tx = store.begin().await?;
            remove(&mut tx, &seqs).await?;
            tx.commit().await?;
            Ok(events.len())
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
            let rows = pending(&mut *tx, RELAY_BATCH).await?;
            if rows.is_empty() {
                return Ok(0);
            }
            let (seqs, events): (Vec<i64>, Vec<Outgoing>) = rows.into_iter().unzip();
            bus.publish(&events)
                .await
                .context("publishing outbox rows")?;
            remove(&mut tx, &seqs).await?;
            tx.commit().await?;
            Ok(events.len())
        }
    }
}

/// Deletes exactly the rows that were published. Not `seq <= last`: on
/// PostgreSQL a transaction that took a lower `seq` may commit after the
/// read, and a range delete would drop its event unpublished.
async fn remove(tx: &mut Transaction<'static, Any>, seqs: &[i64]) -> anyhow::Result<()> {
    for chunk in seqs.chunks(500) {
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

async fn pending<'e, E>(executor: E, limit: i64) -> anyhow::Result<Vec<(i64, Outgoing)>>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let rows = sqlx::query("SELECT seq, topic, envelope FROM outbox ORDER BY seq LIMIT $1")
        .bind(limit)
        .fetch_all(executor)
        .await
        .context("reading the outbox")?;
    rows.into_iter()
        .map(|row| {
            let seq: i64 = row.try_get("seq")?;
            let topic: String = row.try_get("topic")?;
            let envelope: String = row.try_get("envelope")?;
            let envelope: Envelope = serde_json::from_str(&envelope)
                .with_context(|| format!("outbox row {seq} is not an envelope"))?;
            Ok((seq, Outgoing { topic, envelope }))
        })
        .collect()
}

pub(crate) fn backoff(failures: u32) -> Duration {
    Duration::from_millis(50u64 << failures.min(6))
}
