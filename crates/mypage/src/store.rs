//! The my-page view in its own database.

use contracts::reservation::Booking;
use runtime::http::timestamp;
use runtime::store::{Listing, MigrationScript};
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

const VERSIONS_AND_TIMESTAMPS: &str = concat!(
    "ALTER TABLE my_reservations ADD COLUMN version BIGINT NOT NULL DEFAULT 0;\n",
    runtime::fixed_width_timestamps!(("my_reservations", "updated_at")),
);

pub const MIGRATIONS: &[MigrationScript] = &[
    MigrationScript {
        version: 100,
        description: "mypage: my reservations view",
        sqlite: SCHEMA,
        postgres: SCHEMA,
    },
    MigrationScript {
        version: 101,
        description: "mypage: the version each row shows, fixed-width timestamps",
        sqlite: VERSIONS_AND_TIMESTAMPS,
        postgres: VERSIONS_AND_TIMESTAMPS,
    },
];

const MINE: Listing = Listing {
    table: "my_reservations",
    columns: "reservation_id, listing_id, title, kind, quantity, amount, status, updated_at",
    sort: "updated_at",
    id: "reservation_id",
    newest_first: true,
};

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

    /// Stores the row unless the one held is at a newer version (the rule of
    /// [`crate::projection::supersedes`], applied in the statement itself so
    /// concurrent writers cannot interleave between a read and a write).
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
                 (reservation_id, user_id, listing_id, title, kind, quantity, amount, status, updated_at, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (reservation_id) DO UPDATE
                 SET status = excluded.status, updated_at = excluded.updated_at, version = excluded.version
                 WHERE excluded.version = 0 OR my_reservations.version < excluded.version",
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
        .bind(i64::try_from(row.version)?)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// A user's reservations, most recently changed first, a page at a
    /// time. `Ok(None)` when `after` names no reservation of the view.
    pub async fn for_user(
        &self,
        user: &str,
        after: Option<String>,
        limit: i64,
    ) -> anyhow::Result<Option<Vec<MyReservationView>>> {
        let filters = [("user_id", user.to_owned())];
        let Some(rows) = self.store.page(&MINE, &filters, after, limit).await? else {
            return Ok(None);
        };
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
            .collect::<anyhow::Result<_>>()
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use contracts::catalog::ListingKind;
    use contracts::reservation::PaymentMethod;
    use kernel::ids::{ListingId, ReservationId, UserId};
    use kernel::Money;
    use runtime::store::sqlite_url;

    use super::*;

    fn row(status: &'static str, version: u64) -> MyReservationRow {
        MyReservationRow {
            booking: Booking {
                reservation_id: "01a1fdc6-4669-7224-80ee-bed2440fa4c3"
                    .parse::<ReservationId>()
                    .unwrap(),
                user_id: "01a1fdc6-45ec-75f4-86a5-a20223aad838"
                    .parse::<UserId>()
                    .unwrap(),
                listing_id: ListingId::new(),
                listing_title: "LALALand".into(),
                listing_kind: ListingKind::Movie,
                quantity: 2,
                seats: Vec::new(),
                amount: Money::parse(24_000).unwrap(),
                payment_method: PaymentMethod::Card,
            },
            status,
            updated_at: kernel::now(),
            version,
        }
    }

    #[tokio::test]
    async fn the_stored_row_keeps_the_newest_version_whatever_order_rows_arrive_in() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&sqlite_url(dir.path(), "mypage"), MIGRATIONS)
            .await
            .unwrap();
        let view = MyReservations::new(store.clone());
        let user = "01a1fdc6-45ec-75f4-86a5-a20223aad838";
        for (status, version) in [("cancelled", 3), ("pending", 1), ("confirmed", 2)] {
            let mut tx = store.begin().await.unwrap();
            view.upsert(&mut tx, &row(status, version)).await.unwrap();
            tx.commit().await.unwrap();
        }
        let mine = view.for_user(user, None, 10).await.unwrap().unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].status, "cancelled");
    }
}
