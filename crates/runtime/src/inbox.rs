//! The inbox: which events a consumer has already applied. Recorded in the
//! same transaction as the effect, so a redelivered event is recognised and
//! skipped, and an effect is never applied twice.

use crate::store::Tx;
use std::collections::HashSet;

use anyhow::Context;
use kernel::ids::EventId;
use sqlx::Row;

/// Empties a read model's `tables` and `consumer`'s inbox rows inside
/// `tx`, so that replaying its topics from the start builds it anew
/// (`boxoffice rebuild`). Returns how many rows went.
pub async fn forget_all(tx: &mut Tx, tables: &[&str], consumer: &str) -> anyhow::Result<u64> {
    let mut removed = 0;
    for table in tables {
        removed += sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut **tx)
            .await
            .with_context(|| format!("emptying {table}"))?
            .rows_affected();
    }
    removed += sqlx::query("DELETE FROM inbox WHERE consumer = $1")
        .bind(consumer)
        .execute(&mut **tx)
        .await
        .context("emptying the inbox")?
        .rows_affected();
    Ok(removed)
}

/// Records `event` as processed by `consumer`. Returns `false` when it had
/// been processed before (the caller must then not apply it again).
pub async fn record_first(tx: &mut Tx, consumer: &str, event: EventId) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO inbox (consumer, event_id, processed_at) VALUES ($1, $2, $3)
         ON CONFLICT (consumer, event_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(event.to_string())
    .bind(crate::http::timestamp(kernel::now()))
    .execute(&mut **tx)
    .await
    .context("recording in the inbox")?;
    Ok(done.rows_affected() == 1)
}

/// Records a batch of events as processed by `consumer` in one statement,
/// and returns those that were not processed before (only those may be
/// applied). An event that appears twice in the batch is returned once.
pub async fn record_new(
    tx: &mut Tx,
    consumer: &str,
    events: &[EventId],
) -> anyhow::Result<HashSet<EventId>> {
    if events.is_empty() {
        return Ok(HashSet::new());
    }
    let processed_at = crate::http::timestamp(kernel::now());
    let mut fresh = HashSet::with_capacity(events.len());
    for chunk in crate::store::in_statements(events) {
        // Each row carries all its values: on SQLite the parameters can
        // then be anonymous, bound by position (`store::multi_row_text`).
        let sql = crate::store::multi_row_text(
            tx,
            "INSERT INTO inbox (consumer, event_id, processed_at) VALUES {values}
             ON CONFLICT (consumer, event_id) DO NOTHING RETURNING event_id",
            chunk.len(),
            3,
            crate::store::plain_tuple,
        );
        let mut insert = sqlx::query(&sql);
        for event in chunk {
            insert = insert
                .bind(consumer)
                .bind(event.to_string())
                .bind(&processed_at);
        }
        let inserted = insert
            .fetch_all(&mut **tx)
            .await
            .context("recording a batch in the inbox")?;
        for row in inserted {
            let id: String = row.try_get("event_id")?;
            fresh.insert(id.parse().context("an event id in the inbox")?);
        }
    }
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{sqlite_url, Store};

    #[tokio::test]
    async fn a_batch_applies_each_new_event_once_and_nothing_seen_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&sqlite_url(dir.path(), "inbox"), &[])
            .await
            .unwrap();
        let (a, b, c) = (EventId::new(), EventId::new(), EventId::new());

        let mut tx = store.begin().await.unwrap();
        let fresh = record_new(&mut tx, "projection", &[a, b, a]).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(fresh, HashSet::from([a, b]));

        let mut tx = store.begin().await.unwrap();
        let fresh = record_new(&mut tx, "projection", &[a, c]).await.unwrap();
        assert_eq!(fresh, HashSet::from([c]));
        // Another consumer has its own inbox.
        let other = record_new(&mut tx, "sender", &[a]).await.unwrap();
        assert_eq!(other, HashSet::from([a]));
        // And a rolled-back batch leaves no trace.
        tx.rollback().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert!(record_first(&mut tx, "projection", c).await.unwrap());
    }
}
