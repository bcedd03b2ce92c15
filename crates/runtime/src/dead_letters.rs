//! Dead letters: what a service could not apply or could not read, kept
//! with the reason, listed and replayed by an admin.
//!
//! A dead letter is not marked as processed: replaying it runs the handler
//! exactly as a first delivery would (inbox row, state change and outbox
//! rows in one transaction). A record that could not be decoded keeps its
//! raw bytes for inspection; it has nothing to replay.
//!
//! Routes (admin only; the gateway merges them across services):
//! - `GET /admin/dead-letters?limit=&after=`
//! - `POST /admin/dead-letters/{id}/replay`

use crate::store::Tx;
use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use kernel::bus::{Delivery, Malformed};
use kernel::Envelope;
use serde::Serialize;
use sqlx::Row;

use crate::consumer::EventHandler;
use crate::http::{timestamp, ApiError, Caller, Page};
use crate::inbox;
use crate::store::Store;

/// Who parks the outbox rows it cannot read.
pub const RELAY: &str = "outbox-relay";

/// Parks an event its handler rejected. A second parking of the same event
/// (a redelivery that failed again) keeps the first.
pub async fn park_event(
    tx: &mut Tx,
    consumer: &str,
    delivery: &Delivery,
    error: &str,
    attempts: u32,
) -> anyhow::Result<()> {
    let event = &delivery.envelope;
    insert(
        tx,
        Parked {
            consumer,
            event_id: Some(event.id.to_string()),
            event_type: Some(&event.event_type),
            topic: &delivery.topic,
            partition: delivery.partition,
            position: delivery.offset,
            envelope: Some(serde_json::to_string(event)?),
            raw: None,
            error,
            attempts,
        },
    )
    .await
}

/// Parks a record the bus could not decode, with its bytes.
pub async fn park_malformed(tx: &mut Tx, consumer: &str, record: &Malformed) -> anyhow::Result<()> {
    insert(
        tx,
        Parked {
            consumer,
            event_id: None,
            event_type: None,
            topic: &record.topic,
            partition: record.partition,
            position: record.offset,
            envelope: None,
            raw: Some(record.raw.clone()),
            error: &record.error,
            attempts: 1,
        },
    )
    .await
}

/// Parks an outbox row the relay could not read (it is removed from the
/// outbox in the same transaction).
pub async fn park_unreadable_outbox_row(
    tx: &mut Tx,
    topic: &str,
    seq: i64,
    raw: Vec<u8>,
    error: &str,
) -> anyhow::Result<()> {
    insert(
        tx,
        Parked {
            consumer: RELAY,
            event_id: None,
            event_type: None,
            topic,
            partition: -1,
            position: seq,
            envelope: None,
            raw: Some(raw),
            error,
            attempts: 1,
        },
    )
    .await
}

struct Parked<'a> {
    consumer: &'a str,
    event_id: Option<String>,
    event_type: Option<&'a str>,
    topic: &'a str,
    partition: i32,
    position: i64,
    envelope: Option<String>,
    raw: Option<Vec<u8>>,
    error: &'a str,
    attempts: u32,
}

async fn insert(tx: &mut Tx, parked: Parked<'_>) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO dead_letters (consumer, event_id, event_type, topic, part, position,
             envelope, raw, error, attempts, status, failed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'dead', $11)
         ON CONFLICT DO NOTHING",
    )
    .bind(parked.consumer)
    .bind(parked.event_id)
    .bind(parked.event_type.map(str::to_owned))
    .bind(parked.topic)
    .bind(i64::from(parked.partition))
    .bind(parked.position)
    .bind(parked.envelope)
    .bind(parked.raw)
    .bind(parked.error)
    .bind(i64::from(parked.attempts))
    .bind(timestamp(kernel::now()))
    .execute(&mut **tx)
    .await
    .context("parking a dead letter")?;
    Ok(())
}

/// An event a consumer gave up on after repeated failures.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DeadLetter)]
pub struct DeadLetterView {
    /// Its id within its service.
    pub id: String,
    /// The consumer that gave up on it.
    pub consumer: String,
    /// The event's id; null when the record could not be decoded.
    #[schema(required = true)]
    pub event_id: Option<String>,
    /// The event's type; null when the record could not be decoded.
    #[schema(required = true)]
    pub event_type: Option<String>,
    pub topic: String,
    /// Why the last attempt failed.
    pub error: String,
    #[schema(minimum = 1)]
    pub attempts: i64,
    /// `dead`, or `replayed` once a replay applied it.
    #[schema(schema_with = letter_status)]
    pub status: String,
    #[schema(format = DateTime)]
    pub at: String,
    /// When a replay applied it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, nullable = false)]
    pub replayed_at: Option<String>,
    /// The bytes of a record that could not be decoded (as text, lossily).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub raw: Option<String>,
}

fn letter_status() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    crate::api::string_enum(&["dead", "replayed"])
}

const COLUMNS: &str =
    "id, consumer, event_id, event_type, topic, envelope, raw, error, attempts, status, failed_at, replayed_at";

/// The dead letters of one service, oldest first.
pub async fn list(store: &Store, page: &Page) -> Result<Vec<DeadLetterView>, ApiError> {
    let after = match page.after.as_deref() {
        None => 0,
        Some(after) => after.parse::<i64>().map_err(|_| {
            ApiError::Unprocessable(format!("after must be a dead letter id (got {after:?})"))
        })?,
    };
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM dead_letters WHERE id > $1 ORDER BY id LIMIT $2"
    ))
    .bind(after)
    .bind(page.limit)
    .fetch_all(store.reader())
    .await
    .context("listing dead letters")?;
    rows.iter()
        .map(|row| view(row).map_err(Into::into))
        .collect()
}

fn view(row: &sqlx::any::AnyRow) -> anyhow::Result<DeadLetterView> {
    let id: i64 = row.try_get("id")?;
    let envelope: Option<String> = row.try_get("envelope")?;
    let event_type: Option<String> = row.try_get("event_type")?;
    // Letters parked before event types were recorded name it in the envelope.
    let event_type = event_type.or_else(|| {
        envelope
            .as_deref()
            .and_then(|text| serde_json::from_str::<Envelope>(text).ok())
            .map(|envelope| envelope.event_type)
    });
    let raw: Option<Vec<u8>> = row.try_get("raw")?;
    Ok(DeadLetterView {
        id: id.to_string(),
        consumer: row.try_get("consumer")?,
        event_id: row.try_get("event_id")?,
        event_type,
        topic: row.try_get("topic")?,
        error: row.try_get("error")?,
        attempts: row.try_get("attempts")?,
        status: row.try_get("status")?,
        at: row.try_get("failed_at")?,
        replayed_at: row.try_get("replayed_at")?,
        raw: raw.map(|bytes| {
            let text = String::from_utf8_lossy(&bytes);
            text.chars().take(1024).collect()
        }),
    })
}

/// Where replays go: each consumer group's handler, by group name.
#[derive(Clone, Default)]
pub struct Replayers {
    store: Option<Store>,
    handlers: HashMap<String, Arc<dyn EventHandler>>,
}

impl std::fmt::Debug for Replayers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replayers")
            .field("consumers", &self.handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Replayers {
    pub fn add(&mut self, group: &str, store: Store, handler: Arc<dyn EventHandler>) {
        self.store.get_or_insert(store);
        self.handlers.insert(group.to_owned(), handler);
    }

    pub fn is_empty(&self) -> bool {
        self.handlers.is_empty()
    }

    /// Replays dead letter `id`: the handler runs once, as on a first
    /// delivery. `Ok(None)` when there is no such letter.
    pub async fn replay(&self, id: i64) -> Result<Option<DeadLetterView>, ApiError> {
        let store = self.store.as_ref().context("no consumer to replay for")?;
        let Some(row) = letter_row(store, id).await? else {
            return Ok(None);
        };
        let letter = view(&row)?;
        if letter.status == "replayed" {
            return Ok(Some(letter));
        }
        let envelope: Option<String> = row.try_get("envelope").map_err(anyhow::Error::from)?;
        let Some(envelope) = envelope else {
            return Err(ApiError::Conflict(format!(
                "dead letter {id} is a record that could not be decoded ({}); there is no event to replay",
                letter.error
            )));
        };
        let envelope: Envelope = serde_json::from_str(&envelope)
            .with_context(|| format!("dead letter {id} holds no envelope"))?;
        let handler = self.handlers.get(&letter.consumer).ok_or_else(|| {
            ApiError::Conflict(format!(
                "no consumer {} runs in this service to replay dead letter {id}",
                letter.consumer
            ))
        })?;
        match apply_once(store, &letter.consumer, handler.as_ref(), &envelope, id).await {
            Ok(()) => {
                tracing::info!(dead_letter = id, consumer = %letter.consumer, event = %envelope.id, "dead letter replayed");
                letter_row(store, id)
                    .await?
                    .map(|row| view(&row))
                    .transpose()
                    .map_err(Into::into)
            }
            // The store went away meanwhile: not the event's fault (503).
            Err(error) if crate::retry::is_transient(&error) => Err(ApiError::Internal(error)),
            Err(error) => {
                let detail = format!("{error:#}");
                let mut tx = store.begin().await?;
                sqlx::query(
                    "UPDATE dead_letters SET attempts = attempts + 1, error = $1 WHERE id = $2",
                )
                .bind(&detail)
                .bind(id)
                .execute(&mut *tx)
                .await
                .context("recording a failed replay")?;
                tx.commit().await.context("recording a failed replay")?;
                Err(ApiError::Conflict(format!(
                    "the event was rejected again: {detail}"
                )))
            }
        }
    }

    /// The admin routes over this service's dead letters.
    pub fn router(self) -> Router {
        Router::new()
            .route("/admin/dead-letters", get(list_route))
            .route("/admin/dead-letters/{id}/replay", post(replay_route))
            .with_state(self)
    }
}

async fn letter_row(store: &Store, id: i64) -> anyhow::Result<Option<sqlx::any::AnyRow>> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM dead_letters WHERE id = $1"))
        .bind(id)
        .fetch_optional(store.reader())
        .await
        .context("reading a dead letter")
}

/// The handler in one transaction with the inbox row, the dead letter
/// marked replayed with it. An event a redelivery already applied is not
/// applied again.
async fn apply_once(
    store: &Store,
    consumer: &str,
    handler: &dyn EventHandler,
    envelope: &Envelope,
    id: i64,
) -> anyhow::Result<()> {
    let mut tx = store.begin().await?;
    if inbox::record_first(&mut tx, consumer, envelope.id).await? {
        handler.prepare(&mut tx, &[envelope]).await?;
        handler
            .handle(&mut tx, envelope)
            .await
            .with_context(|| format!("handling {} {}", envelope.event_type, envelope.id))?;
    }
    sqlx::query("UPDATE dead_letters SET status = 'replayed', replayed_at = $1 WHERE id = $2")
        .bind(timestamp(kernel::now()))
        .bind(id)
        .execute(&mut *tx)
        .await?;
    store.commit(tx).await
}

async fn list_route(
    State(replayers): State<Replayers>,
    caller: Caller,
    page: Page,
) -> Result<Json<Vec<DeadLetterView>>, ApiError> {
    caller.require_admin()?;
    let store = replayers.store.as_ref().context("no store")?;
    Ok(Json(list(store, &page).await?))
}

async fn replay_route(
    State(replayers): State<Replayers>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_admin()?;
    let not_found = || ApiError::NotFound(format!("no dead letter {id}"));
    let number: i64 = id.parse().map_err(|_| not_found())?;
    let letter = replayers.replay(number).await?.ok_or_else(not_found)?;
    Ok((StatusCode::ACCEPTED, Json(letter)))
}
