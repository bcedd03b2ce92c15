//! Sent notifications in the notification service's own database.

use anyhow::Context;
use runtime::http::timestamp;
use runtime::store::Tx;
use runtime::store::{plain_tuple, write_rows, Listing, MigrationScript};
use runtime::Store;
use serde::Serialize;
use sqlx::Row;

use crate::domain::Message;

const SCHEMA: &str = "
CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    reservation_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    channel TEXT NOT NULL,
    sent_at TEXT NOT NULL
);
CREATE INDEX notifications_by_user ON notifications (user_id, sent_at);";

const FIXED_WIDTH_TIMESTAMPS: &str = runtime::fixed_width_timestamps!(("notifications", "sent_at"));

pub const MIGRATIONS: &[MigrationScript] = &[
    MigrationScript {
        version: 100,
        description: "notification: sent notifications",
        sqlite: SCHEMA,
        postgres: SCHEMA,
    },
    MigrationScript {
        version: 101,
        description: "notification: fixed-width timestamps",
        sqlite: FIXED_WIDTH_TIMESTAMPS,
        postgres: FIXED_WIDTH_TIMESTAMPS,
    },
];

const SENT: Listing = Listing {
    table: "notifications",
    columns: "id, reservation_id, kind, message, channel, sent_at",
    sort: "sent_at",
    id: "id",
    newest_first: true,
};

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Notification)]
pub struct NotificationView {
    pub id: String,
    pub reservation_id: String,
    #[schema(schema_with = message_kinds)]
    pub kind: String,
    pub message: String,
    pub channel: String,
    #[schema(format = DateTime)]
    pub sent_at: String,
}

fn message_kinds() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    runtime::api::string_enum(
        &crate::domain::MessageKind::ALL.map(crate::domain::MessageKind::as_str),
    )
}

#[derive(Clone, Debug)]
pub struct Notifications {
    store: Store,
}

impl Notifications {
    pub fn new(store: Store) -> Notifications {
        Notifications { store }
    }

    /// Records sent messages with one statement; a message's id is its
    /// event's, so recording it again changes nothing.
    pub async fn record(
        &self,
        tx: &mut Tx,
        messages: &[Message],
        channel: &str,
    ) -> anyhow::Result<()> {
        let sent_at = timestamp(kernel::now());
        write_rows(
            tx,
            messages,
            7,
            "INSERT INTO notifications (id, user_id, reservation_id, kind, message, channel, sent_at)
             VALUES {values}
             ON CONFLICT (id) DO NOTHING",
            plain_tuple,
            |values, message| {
                values
                    .push(message.id.to_string())
                    .push(message.user_id.to_string())
                    .push(message.reservation_id.to_string())
                    .push(message.kind.as_str())
                    .push(message.text.clone())
                    .push(channel.to_owned())
                    .push(sent_at.clone());
                Ok(())
            },
        )
        .await
        .context("recording sent messages")
    }

    /// A user's notifications (everyone's for `None`), newest first, a page
    /// at a time. `Ok(None)` when `after` names no notification.
    pub async fn list(
        &self,
        user: Option<String>,
        after: Option<String>,
        limit: i64,
    ) -> anyhow::Result<Option<Vec<NotificationView>>> {
        let filters: Vec<(&str, String)> = user.map(|user| ("user_id", user)).into_iter().collect();
        let Some(rows) = self.store.page(&SENT, &filters, after, limit).await? else {
            return Ok(None);
        };
        rows.iter()
            .map(|row| {
                Ok(NotificationView {
                    id: row.try_get("id")?,
                    reservation_id: row.try_get("reservation_id")?,
                    kind: row.try_get("kind")?,
                    message: row.try_get("message")?,
                    channel: row.try_get("channel")?,
                    sent_at: row.try_get("sent_at")?,
                })
            })
            .collect::<anyhow::Result<_>>()
            .map(Some)
    }
}
