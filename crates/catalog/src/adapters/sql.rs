//! Listings and holds in catalog's own database.

use anyhow::Context;
use contracts::catalog::{CapacityKind, CatalogEvent, InventoryRejection, ListingKind};
use contracts::reservation::Booking;
use contracts::IntegrationEvent;
use kernel::ids::{ListingId, ReservationId};
use kernel::{Envelope, Money};
use runtime::http::{parse_timestamp, timestamp};
use runtime::retry::Contention;
use runtime::store::{Backend, Listing, MigrationScript};
use runtime::{outbox, Store};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use time::OffsetDateTime;

use crate::domain::{NewListing, Quota};

const SCHEMA: &str = "
CREATE TABLE listings (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    price BIGINT NOT NULL,
    total BIGINT NOT NULL,
    available BIGINT NOT NULL CHECK (available >= 0 AND available <= total),
    created_at TEXT NOT NULL
);
CREATE INDEX listings_by_kind ON listings (kind, created_at);
CREATE TABLE holds (
    reservation_id TEXT PRIMARY KEY,
    listing_id TEXT NOT NULL REFERENCES listings (id),
    quantity BIGINT NOT NULL,
    status TEXT NOT NULL,
    updated_at TEXT NOT NULL
);";

const FIXED_WIDTH_TIMESTAMPS: &str =
    runtime::fixed_width_timestamps!(("listings", "created_at"), ("holds", "updated_at"));

pub const MIGRATIONS: &[MigrationScript] = &[
    MigrationScript {
        version: 100,
        description: "catalog: listings and holds",
        sqlite: SCHEMA,
        postgres: SCHEMA,
    },
    MigrationScript {
        version: 101,
        description: "catalog: fixed-width timestamps",
        sqlite: FIXED_WIDTH_TIMESTAMPS,
        postgres: FIXED_WIDTH_TIMESTAMPS,
    },
];

/// A listing as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ListingRecord {
    pub id: ListingId,
    pub kind: ListingKind,
    pub title: String,
    pub description: String,
    pub price: Money,
    pub quota: Quota,
    pub created_at: OffsetDateTime,
}

#[derive(Clone, Debug)]
pub struct Listings {
    store: Store,
}

const COLUMNS: &str = "id, kind, title, description, price, total, available, created_at";

const LISTINGS: Listing = Listing {
    table: "listings",
    columns: COLUMNS,
    sort: "created_at",
    id: "id",
    newest_first: false,
};

impl Listings {
    pub fn new(store: Store) -> Listings {
        Listings { store }
    }

    /// Stores a new listing and announces it, in one transaction.
    pub async fn register(&self, listing: NewListing) -> anyhow::Result<ListingRecord> {
        let record = ListingRecord {
            id: ListingId::new(),
            kind: listing.kind,
            title: listing.title,
            description: listing.description,
            price: listing.price,
            quota: listing.quota,
            created_at: kernel::now(),
        };
        let mut tx = self.store.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO listings ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(record.id.to_string())
        .bind(record.kind.as_str())
        .bind(&record.title)
        .bind(&record.description)
        .bind(record.price.minor_units())
        .bind(i64::from(record.quota.total()))
        .bind(i64::from(record.quota.available()))
        .bind(timestamp(record.created_at))
        .execute(&mut *tx)
        .await
        .context("storing a listing")?;
        let event = CatalogEvent::ListingRegistered {
            listing_id: record.id,
            kind: record.kind,
            title: record.title.clone(),
            description: record.description.clone(),
            price: record.price,
            capacity: CapacityKind::Quota {
                total: record.quota.total(),
            },
            starts_at: None,
            registered_at: record.created_at,
        };
        outbox::append(&mut tx, &[event.outgoing(None)]).await?;
        self.store.commit(tx).await?;
        Ok(record)
    }

    pub async fn find(&self, id: ListingId) -> anyhow::Result<Option<ListingRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM listings WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.store.reader())
            .await?;
        row.map(|row| from_row(&row)).transpose()
    }

    /// Listings in the order they were registered, a page at a time.
    /// `Ok(None)` when `after` names no listing.
    pub async fn list(
        &self,
        kind: Option<ListingKind>,
        after: Option<ListingId>,
        limit: i64,
    ) -> anyhow::Result<Option<Vec<ListingRecord>>> {
        let filters: Vec<(&str, String)> = kind
            .map(|kind| ("kind", kind.as_str().to_owned()))
            .into_iter()
            .collect();
        let Some(rows) = self
            .store
            .page(&LISTINGS, &filters, after.map(|id| id.to_string()), limit)
            .await?
        else {
            return Ok(None);
        };
        rows.iter()
            .map(from_row)
            .collect::<anyhow::Result<_>>()
            .map(Some)
    }

    /// Locks the listings a batch of bookings and cancellations touches, in
    /// id order, before any of them changes: two catalog replicas applying
    /// batches at once then wait for each other instead of deadlocking.
    /// SQLite has one writer already.
    pub async fn lock_in_order(
        &self,
        tx: &mut Transaction<'static, Any>,
        mut ids: Vec<ListingId>,
    ) -> anyhow::Result<()> {
        if self.store.backend() != Backend::Postgres || ids.is_empty() {
            return Ok(());
        }
        ids.sort_unstable();
        ids.dedup();
        let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT id FROM listings WHERE id IN ({}) ORDER BY id FOR UPDATE",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for id in &ids {
            query = query.bind(id.to_string());
        }
        query
            .fetch_all(&mut **tx)
            .await
            .context("locking the batch's listings")?;
        Ok(())
    }

    /// Holds tickets for a placed reservation, or rejects it; either way the
    /// outcome is announced in the same transaction. A second delivery of the
    /// same reservation finds its hold and does nothing.
    pub async fn hold(
        &self,
        tx: &mut Transaction<'static, Any>,
        booking: &Booking,
        cause: &Envelope,
    ) -> anyhow::Result<()> {
        if self
            .hold_status(tx, booking.reservation_id)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let Some(listing) = self.load_for_update(tx, booking.listing_id).await? else {
            let event = CatalogEvent::InventoryRejected {
                reservation_id: booking.reservation_id,
                listing_id: booking.listing_id,
                reason: InventoryRejection::UnknownListing,
            };
            return outbox::append(tx, &[event.outgoing(Some(cause))]).await;
        };
        let event = match listing.quota.hold(booking.quantity) {
            Ok(after) => {
                self.set_available(tx, &listing, after).await?;
                sqlx::query(
                    "INSERT INTO holds (reservation_id, listing_id, quantity, status, updated_at)
                     VALUES ($1, $2, $3, 'held', $4)",
                )
                .bind(booking.reservation_id.to_string())
                .bind(listing.id.to_string())
                .bind(i64::from(booking.quantity))
                .bind(timestamp(kernel::now()))
                .execute(&mut **tx)
                .await?;
                CatalogEvent::TicketsReserved {
                    reservation_id: booking.reservation_id,
                    listing_id: listing.id,
                    quantity: booking.quantity,
                    seats: Vec::new(),
                    available: after.available(),
                }
            }
            Err(reason) => CatalogEvent::InventoryRejected {
                reservation_id: booking.reservation_id,
                listing_id: listing.id,
                reason,
            },
        };
        outbox::append(tx, &[event.outgoing(Some(cause))]).await
    }

    /// Releases what was held for a cancelled reservation, once.
    pub async fn release(
        &self,
        tx: &mut Transaction<'static, Any>,
        reservation: ReservationId,
        cause: &Envelope,
    ) -> anyhow::Result<()> {
        let Some((listing_id, quantity, status)) = self.hold_status(tx, reservation).await? else {
            return Ok(());
        };
        if status != "held" {
            return Ok(());
        }
        // Locked like a hold: without it a hold committing in between makes
        // the guarded write below miss, again and again.
        let listing = self
            .load_for_update(tx, listing_id)
            .await?
            .with_context(|| format!("listing {listing_id} of a hold is gone"))?;
        let after = listing.quota.release(quantity);
        self.set_available(tx, &listing, after).await?;
        sqlx::query(
            "UPDATE holds SET status = 'released', updated_at = $1 WHERE reservation_id = $2",
        )
        .bind(timestamp(kernel::now()))
        .bind(reservation.to_string())
        .execute(&mut **tx)
        .await?;
        let event = CatalogEvent::InventoryReleased {
            reservation_id: reservation,
            listing_id,
            quantity,
            seats: Vec::new(),
            available: after.available(),
        };
        outbox::append(tx, &[event.outgoing(Some(cause))]).await
    }

    /// The listing, locked until the transaction ends on PostgreSQL (SQLite
    /// has a single writer already).
    async fn load_for_update(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: ListingId,
    ) -> anyhow::Result<Option<ListingRecord>> {
        let lock = self.store.for_update();
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM listings WHERE id = $1{lock}"
        ))
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
        row.map(|row| from_row(&row)).transpose()
    }

    async fn hold_status(
        &self,
        tx: &mut Transaction<'static, Any>,
        reservation: ReservationId,
    ) -> anyhow::Result<Option<(ListingId, u32, String)>> {
        let row =
            sqlx::query("SELECT listing_id, quantity, status FROM holds WHERE reservation_id = $1")
                .bind(reservation.to_string())
                .fetch_optional(&mut **tx)
                .await?;
        row.map(|row| {
            let listing: String = row.try_get("listing_id")?;
            let quantity: i64 = row.try_get("quantity")?;
            Ok((
                listing.parse()?,
                u32::try_from(quantity)?,
                row.try_get("status")?,
            ))
        })
        .transpose()
    }

    /// Writes the new availability, guarded by the value it was computed
    /// from: if anything else changed it meanwhile, nothing is written and
    /// the batch is retried (a passing fault, never a dead letter) rather
    /// than overselling.
    async fn set_available(
        &self,
        tx: &mut Transaction<'static, Any>,
        listing: &ListingRecord,
        after: Quota,
    ) -> anyhow::Result<()> {
        let updated =
            sqlx::query("UPDATE listings SET available = $1 WHERE id = $2 AND available = $3")
                .bind(i64::from(after.available()))
                .bind(listing.id.to_string())
                .bind(i64::from(listing.quota.available()))
                .execute(&mut **tx)
                .await?;
        if updated.rows_affected() != 1 {
            return Err(Contention(format!("availability of listing {}", listing.id)).into());
        }
        Ok(())
    }
}

fn from_row(row: &AnyRow) -> anyhow::Result<ListingRecord> {
    let id: String = row.try_get("id")?;
    let kind: String = row.try_get("kind")?;
    let total: i64 = row.try_get("total")?;
    let available: i64 = row.try_get("available")?;
    let price: i64 = row.try_get("price")?;
    let created_at: String = row.try_get("created_at")?;
    Ok(ListingRecord {
        id: id.parse()?,
        kind: serde_json::from_value(serde_json::Value::String(kind))?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        price: Money::parse(price)?,
        quota: Quota::restore(u32::try_from(total)?, u32::try_from(available)?),
        created_at: parse_timestamp(&created_at)?,
    })
}
