//! The my-page view in SQL (the service's own database): the SQL adapter
//! of [`crate::view`].
//!
//! A booking's row comes from reservation events; what other contexts say
//! about it (its payment, its points) and about its listing (start, screen)
//! is kept in tables of its own, keyed by reservation or listing. A fact
//! that arrives before the booking row is thereby kept, not lost, and joins
//! the booking when it is read.

use anyhow::Context;
use async_trait::async_trait;
use contracts::reservation::PaymentMethod;
use kernel::ids::ReservationId;
use runtime::http::timestamp;
use runtime::store::Tx;
use runtime::store::{plain_tuple, write_rows, Listing, MigrationScript};
use runtime::Store;
use sqlx::Row;

use crate::projection::{Changes, ListingFact, MyReservationRow, PaymentStep, PointsChange};
use crate::view::{
    HistoryView, MyReservationDetail, MyReservationView, PaymentView, PointsView, Projection,
    ScreenView, View,
};

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

const DETAILS: &str = "
ALTER TABLE my_reservations ADD COLUMN seats TEXT NOT NULL DEFAULT '';
ALTER TABLE my_reservations ADD COLUMN payment_method TEXT NOT NULL DEFAULT 'card';
CREATE TABLE my_reservation_history (
    reservation_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    status TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (reservation_id, version, status)
);
CREATE TABLE my_listings (
    listing_id TEXT PRIMARY KEY,
    starts_at TEXT,
    screen_id TEXT,
    screen_name TEXT
);
CREATE TABLE my_payments (
    reservation_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    stage BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE my_points (
    reservation_id TEXT PRIMARY KEY,
    earned BIGINT NOT NULL DEFAULT 0,
    withdrawn BIGINT NOT NULL DEFAULT 0
);";

/// Listings keep their current title (a renamed musical shows it on every
/// booking); bookings paid with points show what was spent and refunded.
const TITLES_AND_SPENT_POINTS: &str = "
ALTER TABLE my_listings ADD COLUMN title TEXT;
ALTER TABLE my_points ADD COLUMN spent BIGINT NOT NULL DEFAULT 0;
ALTER TABLE my_points ADD COLUMN refunded BIGINT NOT NULL DEFAULT 0;";

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
    MigrationScript {
        version: 102,
        description: "mypage: seats, history, listings, payments and points of bookings",
        sqlite: DETAILS,
        postgres: DETAILS,
    },
    MigrationScript {
        version: 103,
        description: "mypage: current listing titles, points spent on bookings",
        sqlite: TITLES_AND_SPENT_POINTS,
        postgres: TITLES_AND_SPENT_POINTS,
    },
];

const MINE: Listing = Listing {
    table: "my_reservations",
    columns: "reservation_id, listing_id, title, kind, quantity, seats, amount, status, updated_at",
    sort: "updated_at",
    id: "reservation_id",
    newest_first: true,
};

pub(crate) fn payment_method_str(method: PaymentMethod) -> &'static str {
    match method {
        PaymentMethod::Card => "card",
        PaymentMethod::Points => "points",
    }
}

/// Seats are stored as their labels joined with commas (`A-1,A-2`).
fn seats_from(stored: String) -> Vec<String> {
    stored
        .split(',')
        .filter(|seat| !seat.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Clone, Debug)]
pub struct MyReservations {
    store: Store,
}

impl MyReservations {
    pub fn new(store: Store) -> MyReservations {
        MyReservations { store }
    }
}

#[async_trait]
impl Projection for MyReservations {
    type Tx = Tx;

    /// Stores the row unless the one held is at a newer version (the rule of
    /// [`crate::projection::supersedes`], applied in the statement itself so
    /// concurrent writers cannot interleave between a read and a write).
    async fn upsert(&self, tx: &mut Self::Tx, row: &MyReservationRow) -> anyhow::Result<()> {
        upsert_rows(tx, &[row]).await?;
        insert_history(tx, std::slice::from_ref(row)).await
    }

    /// Keeps a booking's payment status unless the one held is at the same
    /// or a later stage (see [`crate::projection::PaymentStatus`]), in the
    /// statement itself so concurrent writers cannot interleave.
    async fn record_payment(&self, tx: &mut Self::Tx, step: &PaymentStep) -> anyhow::Result<()> {
        upsert_payments(tx, &[step]).await
    }

    /// Records what a booking earned or gave back (set, not added: the
    /// wallet states each once per booking, so a repeat changes nothing).
    async fn record_points(&self, tx: &mut Self::Tx, change: &PointsChange) -> anyhow::Result<()> {
        upsert_points(tx, &[change]).await
    }

    /// A batch with one statement per table rather than one per event:
    /// listings first (rare; in order), then every history entry, each
    /// booking's newest row, its furthest payment, its last figure of each
    /// kind of points — the same statements and rules as one event's,
    /// given one row per booking (PostgreSQL refuses a statement that
    /// updates a row twice).
    async fn apply_all(&self, tx: &mut Self::Tx, changes: &Changes) -> anyhow::Result<()> {
        for fact in &changes.listings {
            self.record_listing(tx, fact).await?;
        }
        match changes.newest_rows() {
            Some(rows) => {
                upsert_rows(tx, &rows).await?;
                insert_history(tx, &changes.rows).await?;
            }
            None => {
                for row in &changes.rows {
                    self.upsert(tx, row).await?;
                }
            }
        }
        upsert_payments(tx, &changes.furthest_payments()).await?;
        upsert_points(tx, &changes.last_points()).await
    }

    /// Records when a listing starts, which screen it shows on, or its
    /// new title (then also on every booking of it).
    async fn record_listing(&self, tx: &mut Self::Tx, fact: &ListingFact) -> anyhow::Result<()> {
        let query = match fact {
            ListingFact::Changed {
                listing_id,
                title,
                starts_at,
            } => {
                sqlx::query("UPDATE my_reservations SET title = $2 WHERE listing_id = $1")
                    .bind(listing_id.to_string())
                    .bind(title.clone())
                    .execute(&mut **tx)
                    .await
                    .context("renaming a listing's bookings")?;
                sqlx::query(
                    "INSERT INTO my_listings (listing_id, title, starts_at) VALUES ($1, $2, $3)
                     ON CONFLICT (listing_id) DO UPDATE
                         SET title = excluded.title, starts_at = excluded.starts_at",
                )
                .bind(listing_id.to_string())
                .bind(title.clone())
                .bind(starts_at.map(timestamp))
            }
            ListingFact::Starts {
                listing_id,
                starts_at,
            } => sqlx::query(
                "INSERT INTO my_listings (listing_id, starts_at) VALUES ($1, $2)
                 ON CONFLICT (listing_id) DO UPDATE SET starts_at = excluded.starts_at",
            )
            .bind(listing_id.to_string())
            .bind(starts_at.map(timestamp)),
            ListingFact::Screen {
                listing_id,
                screen_id,
                name,
            } => sqlx::query(
                "INSERT INTO my_listings (listing_id, screen_id, screen_name) VALUES ($1, $2, $3)
                 ON CONFLICT (listing_id) DO UPDATE
                     SET screen_id = excluded.screen_id, screen_name = excluded.screen_name",
            )
            .bind(listing_id.to_string())
            .bind(screen_id.to_string())
            .bind(name.clone()),
        };
        query
            .execute(&mut **tx)
            .await
            .context("recording a listing")?;
        Ok(())
    }
}

/// Bookings' rows, one per booking, each kept unless the one held is newer.
async fn upsert_rows(tx: &mut Tx, rows: &[&MyReservationRow]) -> anyhow::Result<()> {
    write_rows(
        tx,
        rows,
        12,
        "INSERT INTO my_reservations
             (reservation_id, user_id, listing_id, title, kind, quantity, amount, status, updated_at,
              version, seats, payment_method)
         VALUES {values}
         ON CONFLICT (reservation_id) DO UPDATE
             SET status = excluded.status, updated_at = excluded.updated_at, version = excluded.version,
                 seats = excluded.seats, payment_method = excluded.payment_method
             WHERE excluded.version = 0 OR my_reservations.version < excluded.version",
        // A renamed listing's title wins over the one the booking was placed with.
        |p| {
            format!(
                "({}, {}, {}, COALESCE((SELECT title FROM my_listings WHERE listing_id = {}), {}), {})",
                p[0], p[1], p[2], p[2], p[3], p[4..].join(", ")
            )
        },
        |values, row| {
            let booking = &row.booking;
            let seats: Vec<String> = booking.seats.iter().map(ToString::to_string).collect();
            values
                .push(booking.reservation_id.to_string())
                .push(booking.user_id.to_string())
                .push(booking.listing_id.to_string())
                .push(booking.listing_title.clone())
                .push(booking.listing_kind.as_str())
                .push(i64::from(booking.quantity))
                .push(booking.amount.minor_units())
                .push(row.status)
                .push(timestamp(row.updated_at))
                .push(i64::try_from(row.version)?)
                .push(seats.join(","))
                .push(payment_method_str(booking.payment_method));
            Ok(())
        },
    )
    .await
    .context("recording bookings")
}

/// The history gains each row's status once, whatever the rows keep.
async fn insert_history(tx: &mut Tx, rows: &[MyReservationRow]) -> anyhow::Result<()> {
    write_rows(
        tx,
        rows,
        4,
        "INSERT INTO my_reservation_history (reservation_id, version, status, at)
         VALUES {values}
         ON CONFLICT (reservation_id, version, status) DO NOTHING",
        plain_tuple,
        |values, row| {
            let entry = row.history_entry();
            values
                .push(row.booking.reservation_id.to_string())
                .push(i64::try_from(entry.version)?)
                .push(entry.status)
                .push(timestamp(entry.at));
            Ok(())
        },
    )
    .await
    .context("recording bookings' history")
}

/// Payment steps, one per booking, each kept unless the one held is at the
/// same or a later stage.
async fn upsert_payments(tx: &mut Tx, steps: &[&PaymentStep]) -> anyhow::Result<()> {
    write_rows(
        tx,
        steps,
        4,
        "INSERT INTO my_payments (reservation_id, status, stage, updated_at)
         VALUES {values}
         ON CONFLICT (reservation_id) DO UPDATE
             SET status = excluded.status, stage = excluded.stage, updated_at = excluded.updated_at
             WHERE my_payments.stage < excluded.stage",
        plain_tuple,
        |values, step| {
            values
                .push(step.reservation_id.to_string())
                .push(step.status.as_str())
                .push(step.status.stage())
                .push(timestamp(step.at));
            Ok(())
        },
    )
    .await
    .context("recording bookings' payments")
}

/// Points set (not added), one statement per kind of figure; at most one
/// change per booking and kind.
async fn upsert_points(tx: &mut Tx, changes: &[&PointsChange]) -> anyhow::Result<()> {
    let column_of = |change: &PointsChange| match change {
        PointsChange::Earned { .. } => "earned",
        PointsChange::Withdrawn { .. } => "withdrawn",
        PointsChange::Spent { .. } => "spent",
        PointsChange::Refunded { .. } => "refunded",
    };
    for column in ["earned", "withdrawn", "spent", "refunded"] {
        let of_column: Vec<&PointsChange> = changes
            .iter()
            .copied()
            .filter(|change| column_of(change) == column)
            .collect();
        write_rows(
            tx,
            &of_column,
            2,
            &format!(
                "INSERT INTO my_points (reservation_id, {column}) VALUES {{values}}
                 ON CONFLICT (reservation_id) DO UPDATE SET {column} = excluded.{column}"
            ),
            plain_tuple,
            |values, change| {
                values
                    .push(change.reservation_id().to_string())
                    .push(i64::try_from(change.points())?);
                Ok(())
            },
        )
        .await
        .context("recording bookings' points")?;
    }
    Ok(())
}

#[async_trait]
impl View for MyReservations {
    /// One booking with all my-page knows about it; `None` when my-page has
    /// not seen it (or it is not `owner`'s, when an owner is given).
    async fn find(
        &self,
        reservation: ReservationId,
        owner: Option<String>,
    ) -> anyhow::Result<Option<MyReservationDetail>> {
        let row = sqlx::query(
            "SELECT r.reservation_id, r.user_id, r.listing_id, r.title, r.kind, r.quantity, r.seats,
                    r.amount, r.payment_method, r.status, r.updated_at,
                    l.starts_at, l.screen_id, l.screen_name,
                    p.status AS payment_status, pt.earned, pt.withdrawn, pt.spent, pt.refunded
             FROM my_reservations r
             LEFT JOIN my_listings l ON l.listing_id = r.listing_id
             LEFT JOIN my_payments p ON p.reservation_id = r.reservation_id
             LEFT JOIN my_points pt ON pt.reservation_id = r.reservation_id
             WHERE r.reservation_id = $1",
        )
        .bind(reservation.to_string())
        .fetch_optional(self.store.reader())
        .await
        .context("reading a booking")?;
        let Some(row) = row else { return Ok(None) };
        let user: String = row.try_get("user_id")?;
        if owner.is_some_and(|owner| owner != user) {
            return Ok(None);
        }
        let history = sqlx::query(
            "SELECT status, at FROM my_reservation_history WHERE reservation_id = $1
             ORDER BY version, at",
        )
        .bind(reservation.to_string())
        .fetch_all(self.store.reader())
        .await
        .context("reading a booking's history")?
        .iter()
        .map(|entry| {
            Ok(HistoryView {
                status: entry.try_get("status")?,
                at: entry.try_get("at")?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
        let screen_id: Option<String> = row.try_get("screen_id")?;
        let screen_name: Option<String> = row.try_get("screen_name")?;
        let payment: Option<String> = row.try_get("payment_status")?;
        let earned: Option<i64> = row.try_get("earned")?;
        let withdrawn: Option<i64> = row.try_get("withdrawn")?;
        let spent: Option<i64> = row.try_get("spent")?;
        let refunded: Option<i64> = row.try_get("refunded")?;
        Ok(Some(MyReservationDetail {
            reservation_id: row.try_get("reservation_id")?,
            listing_id: row.try_get("listing_id")?,
            title: row.try_get("title")?,
            kind: row.try_get("kind")?,
            screen: screen_id
                .zip(screen_name)
                .map(|(id, name)| ScreenView { id, name }),
            starts_at: row.try_get("starts_at")?,
            quantity: row.try_get("quantity")?,
            seats: seats_from(row.try_get("seats")?),
            amount: row.try_get("amount")?,
            payment_method: row.try_get("payment_method")?,
            payment: payment.map(|status| PaymentView { status }),
            points: PointsView {
                earned: earned.unwrap_or(0),
                withdrawn: withdrawn.unwrap_or(0),
                spent: spent.unwrap_or(0),
                refunded: refunded.unwrap_or(0),
            },
            status: row.try_get("status")?,
            history,
            updated_at: row.try_get("updated_at")?,
        }))
    }

    /// A user's reservations, most recently changed first, a page at a
    /// time. `Ok(None)` when `after` names no reservation of the view.
    async fn for_user(
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
                    seats: seats_from(row.try_get("seats")?),
                    amount: row.try_get("amount")?,
                    status: row.try_get("status")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect::<anyhow::Result<_>>()
            .map(Some)
    }
}

/// Empties the view and `group`'s inbox rows, in one transaction.
pub async fn clear(store: &Store, group: &str) -> anyhow::Result<u64> {
    let mut tx = store.begin().await?;
    let tables = [
        "my_reservations",
        "my_reservation_history",
        "my_listings",
        "my_payments",
        "my_points",
    ];
    let removed = runtime::inbox::forget_all(&mut tx, &tables, group).await?;
    store.commit(tx).await?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use contracts::catalog::ListingKind;
    use contracts::reservation::{Booking, PaymentMethod};
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
