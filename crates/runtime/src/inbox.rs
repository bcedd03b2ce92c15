//! The inbox: which events a consumer has already applied. Recorded in the
//! same transaction as the effect, so a redelivered event is recognised and
//! skipped, and an effect is never applied twice.

use anyhow::Context;
use kernel::ids::EventId;
use sqlx::{Any, Transaction};

/// Records `event` as processed by `consumer`. Returns `false` when it had
/// been processed before (the caller must then not apply it again).
pub async fn record_first(
    tx: &mut Transaction<'static, Any>,
    consumer: &str,
    event: EventId,
) -> anyhow::Result<bool> {
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
