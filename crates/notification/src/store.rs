//! Sent notifications in the notification service's own database.

use runtime::http::timestamp;
use runtime::store::MigrationScript;
use runtime::Store;
use serde::Serialize;
use sqlx::{Any, Row, Transaction};

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

pub const MIGRATIONS: &[MigrationScript] = &[MigrationScript {
    version: 100,
    description: "notification: sent notifications",
    sqlite: SCHEMA,
    postgres: SCHEMA,
}];

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    pub id: String,
    pub reservation_id: String,
    pub kind: String,
    pub message: String,
    pub channel: String,
    pub sent_at: String,
}

#[derive(Clone, Debug)]
pub struct Notifications {
    store: Store,
}

impl Notifications {
    pub fn new(store: Store) -> Notifications {
        Notifications { store }
    }

    pub async fn record(
        &self,
        tx: &mut Transaction<'static, Any>,
        message: &Message,
        channel: &str,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO notifications (id, user_id, reservation_id, kind, message, channel, sent_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(message.id.to_string())
        .bind(message.user_id.to_string())
        .bind(message.reservation_id.to_string())
        .bind(message.kind.as_str())
        .bind(&message.text)
        .bind(channel)
        .bind(timestamp(kernel::now()))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// A user's notifications (everyone's for `None`), newest first.
    pub async fn list(
        &self,
        user: Option<String>,
        limit: i64,
    ) -> anyhow::Result<Vec<NotificationView>> {
        const COLUMNS: &str = "id, reservation_id, kind, message, channel, sent_at";
        let rows = match user {
            Some(user) => sqlx::query(&format!(
                "SELECT {COLUMNS} FROM notifications WHERE user_id = $1 ORDER BY sent_at DESC, id DESC LIMIT $2"
            ))
            .bind(user)
            .bind(limit)
            .fetch_all(self.store.reader())
            .await?,
            None => sqlx::query(&format!(
                "SELECT {COLUMNS} FROM notifications ORDER BY sent_at DESC, id DESC LIMIT $1"
            ))
            .bind(limit)
            .fetch_all(self.store.reader())
            .await?,
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
            .collect()
    }
}
