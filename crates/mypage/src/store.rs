//! The my-page view in its own database.

use contracts::reservation::Booking;
use runtime::http::timestamp;
use runtime::store::MigrationScript;
use runtime::Store;
use serde::Serialize;
use sqlx::{Any, Row, Transaction};

use crate::projection::MyReservationRow;

const SCHEMA: &str = "
CREATE TABLE my_reservations (
    reservation_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    listing_id TEXT NOT NULL,
    title TEXT NOT NULL,
    kind TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    status TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX my_reservations_by_user ON my_reservations (user_id, updated_at);";

pub const MIGRATIONS: &[MigrationScript] = &[MigrationScript {
    version: 100,
    description: "mypage: my reservations view",
    sqlite: SCHEMA,
    postgres: SCHEMA,
}];

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MyReservationView {
    pub reservation_id: String,
    pub listing_id: String,
    pub title: String,
    pub kind: String,
    pub quantity: i64,
    pub seats: Vec<String>,
    pub amount: i64,
    pub status: String,
    pub updated_at: String,
}

#[derive(Clone, Debug)]
pub struct MyReservations {
    store: Store,
}

impl MyReservations {
    pub fn new(store: Store) -> MyReservations {
        MyReservations { store }
    }

    pub async fn upsert(
        &self,
        tx: &mut Transaction<'static, Any>,
        row: &MyReservationRow,
    ) -> anyhow::Result<()> {
        let Booking {
            reservation_id,
            user_id,
            listing_id,
            listing_title,
            listing_kind,
            quantity,
            amount,
            ..
        } = &row.booking;
        sqlx::query(
            "INSERT INTO my_reservations
                 (reservation_id, user_id, listing_id, title, kind, quantity, amount, status, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (reservation_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
        )
        .bind(reservation_id.to_string())
        .bind(user_id.to_string())
        .bind(listing_id.to_string())
        .bind(listing_title)
        .bind(listing_kind.as_str())
        .bind(i64::from(*quantity))
        .bind(amount.minor_units())
        .bind(row.status)
        .bind(timestamp(row.updated_at))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn for_user(&self, user: &str, limit: i64) -> anyhow::Result<Vec<MyReservationView>> {
        let rows = sqlx::query(
            "SELECT reservation_id, listing_id, title, kind, quantity, amount, status, updated_at
             FROM my_reservations WHERE user_id = $1 ORDER BY updated_at DESC, reservation_id DESC LIMIT $2",
        )
        .bind(user)
        .bind(limit)
        .fetch_all(self.store.reader())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(MyReservationView {
                    reservation_id: row.try_get("reservation_id")?,
                    listing_id: row.try_get("listing_id")?,
                    title: row.try_get("title")?,
                    kind: row.try_get("kind")?,
                    quantity: row.try_get("quantity")?,
                    seats: Vec::new(),
                    amount: row.try_get("amount")?,
                    status: row.try_get("status")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }
}
