//! Listings, their seats and holds in catalog's own database.

mod changes;
mod inventory;
pub mod screens;
#[cfg(test)]
mod tests;

use runtime::store::Tx;
use std::collections::BTreeSet;

use anyhow::Context;
use contracts::catalog::{CapacityKind, CatalogEvent, InventoryRejection, ListingKind};
use contracts::reservation::Booking;
use contracts::IntegrationEvent;
use kernel::ids::{ListingId, ReservationId, ScreenId};
use kernel::{Envelope, Money, SeatLabel};
use runtime::http::{parse_timestamp, timestamp};
use runtime::store::{fetch_by_keys, in_statements, Listing, MigrationScript};
use runtime::{outbox, Store};
use sqlx::any::AnyRow;
use sqlx::{Any, Row};
use time::OffsetDateTime;

use crate::domain::screen::{self, AssignmentError, Screen};
use crate::domain::seat_map::{self, SeatRow, Section};
use crate::domain::seats::{self, HoldStatus, SeatStatus};
use crate::domain::{bike_title, Capacity, NewListing, Quota, Seating, SoldBy};

pub use changes::{ChangeError, WithdrawError};
pub use inventory::Inventory;
pub use screens::Screens;

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

/// Screens, the seats of seated showings, and one row per seat held or
/// sold: its primary key is what makes a second sale of a seat impossible,
/// whatever the order or partitioning of the events that ask for it.
/// A listing with a `screen_id` is a seated showing; `screen_name` is kept
/// with it (screens are never renamed) so a listing reads in one row.
const SEATS: &str = "
CREATE TABLE screens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    rows BIGINT NOT NULL CHECK (rows > 0),
    seats_per_row BIGINT NOT NULL CHECK (seats_per_row > 0),
    blocked TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX screens_by_age ON screens (created_at);
ALTER TABLE listings ADD COLUMN screen_id TEXT REFERENCES screens (id);
ALTER TABLE listings ADD COLUMN screen_name TEXT;
ALTER TABLE listings ADD COLUMN starts_at TEXT;
CREATE INDEX listings_by_screen ON listings (screen_id, starts_at);
CREATE TABLE listing_seats (
    listing_id TEXT NOT NULL REFERENCES listings (id),
    seat TEXT NOT NULL,
    PRIMARY KEY (listing_id, seat)
);
CREATE TABLE seat_holds (
    listing_id TEXT NOT NULL,
    seat TEXT NOT NULL,
    reservation_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('held', 'sold')),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (listing_id, seat),
    FOREIGN KEY (listing_id, seat) REFERENCES listing_seats (listing_id, seat)
);
CREATE INDEX seat_holds_by_reservation ON seat_holds (reservation_id);";

/// Musicals, bikes, and listings changed or withdrawn by an admin.
/// - `sections`: a musical's priced sections, as JSON (`[{name, price,
///   rows}]`, read with the listing; its seats are in `listing_seats`).
/// - `color`, `number`: a bike's. Numbers come from the `counters` row,
///   taken in the registering transaction: they never repeat, not even
///   after a registration rolled back or the database restarted (a
///   `max() + 1` would hand out the number of a bike registered at the
///   same moment); the unique index is the last word.
/// - `withdrawn_at`: a deleted listing stays, so that its holds can still
///   be released and its events still name it; it is no longer shown or
///   sold.
const UNITS_AND_CHANGES: &str = "
ALTER TABLE listings ADD COLUMN sections TEXT NOT NULL DEFAULT '[]';
ALTER TABLE listings ADD COLUMN color TEXT;
ALTER TABLE listings ADD COLUMN number BIGINT;
ALTER TABLE listings ADD COLUMN withdrawn_at TEXT;
CREATE UNIQUE INDEX listings_by_number ON listings (number);
CREATE INDEX holds_by_listing ON holds (listing_id, status);
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    next_value BIGINT NOT NULL CHECK (next_value > 0)
);
INSERT INTO counters (name, next_value) VALUES ('bike', 1);";

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
    MigrationScript {
        version: 102,
        description: "catalog: screens, seats and seat holds",
        sqlite: SEATS,
        postgres: SEATS,
    },
    MigrationScript {
        version: 103,
        description: "catalog: musical sections, bikes, listing withdrawal",
        sqlite: UNITS_AND_CHANGES,
        postgres: UNITS_AND_CHANGES,
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
    /// Tickets, or for a seated showing its seats, and how many are left;
    /// a bike is a quota of one.
    pub quota: Quota,
    /// The screen of a seated movie; `None` for anything else.
    pub screen: Option<ScreenRef>,
    /// A musical's priced sections.
    pub sections: Vec<Section>,
    pub starts_at: Option<OffsetDateTime>,
    /// A bike's colour and number.
    pub color: Option<String>,
    pub number: Option<u32>,
    pub created_at: OffsetDateTime,
    /// When an admin deleted it; it is kept for its holds and history.
    pub withdrawn_at: Option<OffsetDateTime>,
}

impl ListingRecord {
    pub fn sold_by(&self) -> SoldBy {
        SoldBy::of(self.kind, self.screen.is_some())
    }
}

/// The screen a seated showing is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenRef {
    pub id: ScreenId,
    pub name: String,
}

/// Why a listing was not registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(transparent)]
    Assignment(#[from] AssignmentError),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// A held or sold booking, as `holds` keeps it.
#[derive(Debug, Clone, Copy)]
struct Hold {
    listing_id: ListingId,
    quantity: u32,
    status: HoldStatus,
}

#[derive(Clone, Debug)]
pub struct Listings {
    store: Store,
}

const COLUMNS: &str = "id, kind, title, description, price, total, available, created_at, \
                       screen_id, screen_name, starts_at, sections, color, number, withdrawn_at";

/// The listings on sale: a withdrawn one is neither listed nor a place for
/// a page to continue from.
const ON_SALE: Listing = Listing {
    table: "(SELECT * FROM listings WHERE withdrawn_at IS NULL) AS on_sale",
    columns: COLUMNS,
    sort: "created_at",
    id: "id",
    newest_first: false,
};

/// Seats written per `INSERT`, well below either engine's bind limit.
const SEATS_PER_INSERT: usize = 200;

impl Listings {
    pub fn new(store: Store) -> Listings {
        Listings { store }
    }

    /// Stores a new listing and announces it, in one transaction. A seated
    /// movie is given its screen and that screen's seats here; the
    /// screens are locked first, so two registrations at once cannot both
    /// take a screen that is free for only one of them. A musical brings
    /// its own seats; a bike takes the next number.
    pub async fn register(&self, listing: NewListing) -> Result<ListingRecord, RegisterError> {
        let mut tx = self.store.begin().await?;
        let (quota, screen, seats, sections) = match listing.capacity {
            Capacity::Quota(quota) => (quota, None, Vec::new(), Vec::new()),
            Capacity::Seated(seating) => {
                let schedules = screens::schedules(&mut tx, &self.store, listing.starts_at).await?;
                let screen: Screen = match seating {
                    Seating::Screen(id) => {
                        screen::assign_named(&schedules, id, listing.starts_at)?.clone()
                    }
                    Seating::Grid(grid) => {
                        screen::choose_screen(&schedules, grid, listing.starts_at)?.clone()
                    }
                };
                let total = screen.layout.sellable();
                let seats = screen.layout.seats();
                (
                    Quota::restore(total, total),
                    Some(screen),
                    seats,
                    Vec::new(),
                )
            }
            Capacity::SeatMap(map) => {
                let total = map.total();
                let seats = map.seats();
                (
                    Quota::restore(total, total),
                    None,
                    seats,
                    map.into_sections(),
                )
            }
            Capacity::Unit => (Quota::unit(), None, Vec::new(), Vec::new()),
        };
        let number = match listing.kind {
            ListingKind::Bike => Some(next_bike_number(&mut tx).await?),
            ListingKind::Movie | ListingKind::Musical => None,
        };
        let title = match (listing.title, number) {
            (Some(title), _) => title,
            (None, Some(number)) => bike_title(number),
            (None, None) => {
                return Err(anyhow::anyhow!("only a bike may be registered untitled").into())
            }
        };
        let record = ListingRecord {
            id: ListingId::new(),
            kind: listing.kind,
            title,
            description: listing.description,
            price: listing.price,
            quota,
            screen: screen.as_ref().map(|screen| ScreenRef {
                id: screen.id,
                name: screen.name.clone(),
            }),
            sections,
            starts_at: listing.starts_at,
            color: listing.color,
            number,
            created_at: kernel::now(),
            withdrawn_at: None,
        };
        sqlx::query(&format!(
            "INSERT INTO listings ({COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL)"
        ))
        .bind(record.id.to_string())
        .bind(record.kind.as_str())
        .bind(&record.title)
        .bind(&record.description)
        .bind(record.price.minor_units())
        .bind(i64::from(record.quota.total()))
        .bind(i64::from(record.quota.available()))
        .bind(timestamp(record.created_at))
        .bind(record.screen.as_ref().map(|screen| screen.id.to_string()))
        .bind(record.screen.as_ref().map(|screen| screen.name.clone()))
        .bind(record.starts_at.map(timestamp))
        .bind(stored_sections(&record.sections)?)
        .bind(record.color.clone())
        .bind(record.number.map(i64::from))
        .execute(&mut *tx)
        .await
        .context("storing a listing")?;
        insert_seats(&mut tx, record.id, &seats).await?;
        let mut events = vec![CatalogEvent::ListingRegistered {
            listing_id: record.id,
            kind: record.kind,
            title: record.title.clone(),
            description: record.description.clone(),
            price: record.price,
            capacity: capacity(&record, seats),
            starts_at: record.starts_at,
            color: record.color.clone(),
            number: record.number,
            registered_at: record.created_at,
        }];
        if let Some(screen) = &screen {
            events.push(CatalogEvent::ScreenAssigned {
                listing_id: record.id,
                screen_id: screen.id,
                screen_name: screen.name.clone(),
            });
        }
        let outgoing: Vec<_> = events.iter().map(|event| event.outgoing(None)).collect();
        outbox::append(&mut tx, &outgoing).await?;
        self.store.commit(tx).await?;
        Ok(record)
    }

    /// A listing on sale (a withdrawn one is not found).
    pub async fn find(&self, id: ListingId) -> anyhow::Result<Option<ListingRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM listings WHERE id = $1 AND withdrawn_at IS NULL"
        ))
        .bind(id.to_string())
        .fetch_optional(self.store.reader())
        .await?;
        row.map(|row| from_row(&row)).transpose()
    }

    /// Every seat of a seated showing and where it stands, in seat order.
    pub async fn seat_map(&self, id: ListingId) -> anyhow::Result<Vec<(SeatLabel, SeatStatus)>> {
        let seats = seats_of_listing(self.store.reader(), id).await?;
        let taken = sqlx::query("SELECT seat, status FROM seat_holds WHERE listing_id = $1")
            .bind(id.to_string())
            .fetch_all(self.store.reader())
            .await
            .context("reading held seats")?;
        let taken = taken
            .iter()
            .map(|row| {
                let seat: String = row.try_get("seat")?;
                let status: String = row.try_get("status")?;
                Ok((seat.parse()?, status.parse()?))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(seats::seat_map(seats, taken))
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
            .page(&ON_SALE, &filters, after.map(|id| id.to_string()), limit)
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
    pub async fn lock_in_order(&self, tx: &mut Tx, ids: Vec<ListingId>) -> anyhow::Result<()> {
        let ids = ids.iter().map(ToString::to_string).collect();
        self.store.lock_in_order(tx, "listings", "id", ids).await
    }

    /// Holds tickets or seats for a placed reservation, or rejects it;
    /// either way the outcome is announced with the batch. A second
    /// delivery of the same reservation finds its hold (or its rejection)
    /// and does nothing.
    pub async fn hold(
        &self,
        tx: &mut Tx,
        inventory: &mut Inventory,
        booking: &Booking,
        cause: &Envelope,
    ) -> anyhow::Result<()> {
        if self
            .hold_of(tx, inventory, booking.reservation_id)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let Some(listing) = self.listing(tx, inventory, booking.listing_id).await? else {
            let event = CatalogEvent::InventoryRejected {
                reservation_id: booking.reservation_id,
                listing_id: booking.listing_id,
                reason: InventoryRejection::UnknownListing,
            };
            inventory.announce(event.outgoing(Some(cause)));
            return Ok(());
        };
        let sold_by = listing.sold_by();
        let outcome = if listing.withdrawn_at.is_some() {
            // Its holds are still released, but nothing new is held.
            Err(InventoryRejection::Withdrawn)
        } else {
            match seats::check_booking(sold_by, &booking.seats, booking.quantity) {
                Err(reason) => Err(reason),
                Ok(()) => match sold_by {
                    SoldBy::Tickets => listing.quota.hold(booking.quantity),
                    SoldBy::Unit => listing.quota.lend(),
                    SoldBy::Seats => self.hold_seats(tx, &listing, booking).await?,
                },
            }
        };
        let (status, event) = match outcome {
            Ok(after) => {
                inventory.set_quota(listing.id, after);
                let event = CatalogEvent::TicketsReserved {
                    reservation_id: booking.reservation_id,
                    listing_id: listing.id,
                    quantity: booking.quantity,
                    seats: booking.seats.clone(),
                    available: after.available(),
                };
                (HoldStatus::Held, event)
            }
            Err(reason) => {
                let event = CatalogEvent::InventoryRejected {
                    reservation_id: booking.reservation_id,
                    listing_id: listing.id,
                    reason,
                };
                (HoldStatus::Rejected, event)
            }
        };
        let hold = Hold {
            listing_id: booking.listing_id,
            quantity: booking.quantity,
            status,
        };
        inventory.put_hold(booking.reservation_id, hold);
        inventory.announce(event.outgoing(Some(cause)));
        Ok(())
    }

    /// Claims the booking's seats: one row each, inserted only if nobody
    /// holds that seat. The database decides, not a read before the write:
    /// a seat some other transaction claims at the same moment is either
    /// inserted by it or by us, never by both. If any seat is taken, the
    /// ones just claimed are given up again and the taken ones named.
    async fn hold_seats(
        &self,
        tx: &mut Tx,
        listing: &ListingRecord,
        booking: &Booking,
    ) -> anyhow::Result<Result<Quota, InventoryRejection>> {
        let placeholders: Vec<String> = (2..=booking.seats.len() + 1)
            .map(|n| format!("${n}"))
            .collect();
        let sql = format!(
            "SELECT seat FROM listing_seats WHERE listing_id = $1 AND seat IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query_scalar::<_, String>(&sql).bind(listing.id.to_string());
        for seat in &booking.seats {
            query = query.bind(seat.to_string());
        }
        let known = query
            .fetch_all(&mut **tx)
            .await
            .context("looking up the booked seats")?
            .iter()
            .map(|seat| seat.parse::<SeatLabel>())
            .collect::<Result<BTreeSet<_>, _>>()?;
        if let Err(reason) = seats::unknown_seats(&booking.seats, &known) {
            return Ok(Err(reason));
        }
        let now = timestamp(kernel::now());
        let mut taken = Vec::new();
        for seat in &booking.seats {
            let inserted = sqlx::query(
                "INSERT INTO seat_holds (listing_id, seat, reservation_id, status, updated_at)
                 VALUES ($1, $2, $3, 'held', $4)
                 ON CONFLICT (listing_id, seat) DO NOTHING",
            )
            .bind(listing.id.to_string())
            .bind(seat.to_string())
            .bind(booking.reservation_id.to_string())
            .bind(&now)
            .execute(&mut **tx)
            .await
            .context("holding a seat")?;
            if inserted.rows_affected() == 0 {
                taken.push(*seat);
            }
        }
        if !taken.is_empty() {
            self.delete_seat_holds(tx, booking.reservation_id).await?;
            return Ok(Err(InventoryRejection::SeatTaken { seats: taken }));
        }
        // The count follows the seats; it can only disagree if it was
        // changed by hand, and then it is the seats that are right.
        Ok(Ok(listing.quota.hold(booking.quantity).unwrap_or_else(
            |_| Quota::restore(listing.quota.total(), 0),
        )))
    }

    /// Marks a confirmed reservation's tickets or seats sold, once.
    pub async fn sell(
        &self,
        tx: &mut Tx,
        inventory: &mut Inventory,
        reservation: ReservationId,
        cause: &Envelope,
    ) -> anyhow::Result<()> {
        let Some(hold) = self.hold_of(tx, inventory, reservation).await? else {
            return Ok(());
        };
        if hold.status != HoldStatus::Held {
            return Ok(());
        }
        let seats = if self.is_seated(tx, inventory, hold.listing_id).await? {
            sqlx::query(
                "UPDATE seat_holds SET status = 'sold', updated_at = $1 WHERE reservation_id = $2",
            )
            .bind(timestamp(kernel::now()))
            .bind(reservation.to_string())
            .execute(&mut **tx)
            .await
            .context("selling seats")?;
            self.seats_of(tx, reservation).await?
        } else {
            Vec::new()
        };
        let sold = Hold {
            status: HoldStatus::Sold,
            ..hold
        };
        inventory.put_hold(reservation, sold);
        let event = CatalogEvent::InventorySold {
            reservation_id: reservation,
            listing_id: hold.listing_id,
            quantity: hold.quantity,
            seats,
        };
        inventory.announce(event.outgoing(Some(cause)));
        Ok(())
    }

    /// Gives back what is held or sold for a reservation that ended
    /// (rejected, expired, cancelled), once; nothing when nothing is held.
    pub async fn release(
        &self,
        tx: &mut Tx,
        inventory: &mut Inventory,
        reservation: ReservationId,
        cause: &Envelope,
    ) -> anyhow::Result<()> {
        let Some(hold) = self.hold_of(tx, inventory, reservation).await? else {
            return Ok(());
        };
        if !hold.status.is_releasable() {
            return Ok(());
        }
        let listing = self
            .listing(tx, inventory, hold.listing_id)
            .await?
            .with_context(|| format!("listing {} of a hold is gone", hold.listing_id))?;
        let seats = if listing.sold_by() == SoldBy::Seats {
            let seats = self.seats_of(tx, reservation).await?;
            self.delete_seat_holds(tx, reservation).await?;
            seats
        } else {
            Vec::new()
        };
        let after = listing.quota.release(hold.quantity);
        inventory.set_quota(listing.id, after);
        let released = Hold {
            status: HoldStatus::Released,
            ..hold
        };
        inventory.put_hold(reservation, released);
        let event = CatalogEvent::InventoryReleased {
            reservation_id: reservation,
            listing_id: hold.listing_id,
            quantity: hold.quantity,
            seats,
            available: after.available(),
        };
        inventory.announce(event.outgoing(Some(cause)));
        Ok(())
    }

    /// The listing as the batch has it, read (and locked) the first time
    /// the batch asks.
    async fn listing(
        &self,
        tx: &mut Tx,
        inventory: &mut Inventory,
        id: ListingId,
    ) -> anyhow::Result<Option<ListingRecord>> {
        if let Some(listing) = inventory.listing(id) {
            return Ok(listing.cloned());
        }
        let record = self.load_for_update(tx, id).await?;
        inventory.read_listing(id, record.clone());
        Ok(record)
    }

    /// The listing, locked until the transaction ends on PostgreSQL (SQLite
    /// has a single writer already).
    async fn load_for_update(
        &self,
        tx: &mut Tx,
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

    /// Whether the listing is sold by named seats (a gone listing counts
    /// as seated: its seats, if any, are still dealt with).
    async fn is_seated(
        &self,
        tx: &mut Tx,
        inventory: &mut Inventory,
        id: ListingId,
    ) -> anyhow::Result<bool> {
        Ok(self
            .listing(tx, inventory, id)
            .await?
            .is_none_or(|listing| listing.sold_by() == SoldBy::Seats))
    }

    /// Reads the holds of `reservations` the batch has not read yet (none
    /// is a hold too: the reservation holds nothing yet) with one
    /// statement per slice, planned at each execution (a list of keys),
    /// so the batch's events find them in memory.
    pub async fn read_holds(
        &self,
        tx: &mut Tx,
        inventory: &mut Inventory,
        reservations: impl IntoIterator<Item = ReservationId>,
    ) -> anyhow::Result<()> {
        let unread: BTreeSet<ReservationId> = reservations
            .into_iter()
            .filter(|reservation| inventory.hold(*reservation).is_none())
            .collect();
        let unread: Vec<ReservationId> = unread.into_iter().collect();
        for slice in in_statements(&unread) {
            let rows = fetch_by_keys(
                tx,
                "SELECT reservation_id, listing_id, quantity, status FROM holds
                 WHERE reservation_id IN ({keys})",
                slice,
            )
            .await
            .context("reading the batch's holds")?;
            for reservation in slice {
                inventory.read_hold(*reservation, None);
            }
            for row in &rows {
                let reservation: String = row.try_get("reservation_id")?;
                inventory.read_hold(reservation.parse()?, Some(hold_from(row)?));
            }
        }
        Ok(())
    }

    /// The reservation's hold as the batch has it, read the first time the
    /// batch asks.
    async fn hold_of(
        &self,
        tx: &mut Tx,
        inventory: &mut Inventory,
        reservation: ReservationId,
    ) -> anyhow::Result<Option<Hold>> {
        if let Some(hold) = inventory.hold(reservation) {
            return Ok(hold);
        }
        let row =
            sqlx::query("SELECT listing_id, quantity, status FROM holds WHERE reservation_id = $1")
                .bind(reservation.to_string())
                .fetch_optional(&mut **tx)
                .await?;
        let hold = row.as_ref().map(hold_from).transpose()?;
        inventory.read_hold(reservation, hold);
        Ok(hold)
    }

    /// The seats a reservation holds or bought, in seat order.
    async fn seats_of(
        &self,
        tx: &mut Tx,
        reservation: ReservationId,
    ) -> anyhow::Result<Vec<SeatLabel>> {
        let seats: Vec<String> =
            sqlx::query_scalar("SELECT seat FROM seat_holds WHERE reservation_id = $1")
                .bind(reservation.to_string())
                .fetch_all(&mut **tx)
                .await
                .context("reading a reservation's seats")?;
        let mut seats = seats
            .iter()
            .map(|seat| seat.parse::<SeatLabel>())
            .collect::<Result<Vec<_>, _>>()?;
        seats.sort_unstable();
        Ok(seats)
    }

    async fn delete_seat_holds(
        &self,
        tx: &mut Tx,
        reservation: ReservationId,
    ) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM seat_holds WHERE reservation_id = $1")
            .bind(reservation.to_string())
            .execute(&mut **tx)
            .await
            .context("giving seats back")?;
        Ok(())
    }
}

/// The next bike's number, taken from its counter in the registering
/// transaction: a rolled-back registration gives its number back, a
/// committed one never shares it.
async fn next_bike_number(tx: &mut Tx) -> anyhow::Result<u32> {
    let next: i64 = sqlx::query_scalar(
        "UPDATE counters SET next_value = next_value + 1 WHERE name = 'bike' RETURNING next_value",
    )
    .fetch_one(&mut **tx)
    .await
    .context("numbering a bike")?;
    Ok(u32::try_from(next - 1)?)
}

/// What the listing's events say of its capacity; `seats` are those of a
/// seated listing, in seat order.
fn capacity(record: &ListingRecord, seats: Vec<SeatLabel>) -> CapacityKind {
    match record.sold_by() {
        SoldBy::Tickets => CapacityKind::Quota {
            total: record.quota.total(),
        },
        SoldBy::Seats => CapacityKind::Seated {
            total: record.quota.total(),
            sections: seat_map::published_sections(&record.sections, &seats),
            seats,
        },
        SoldBy::Unit => CapacityKind::Unit,
    }
}

/// Every seat of a seated listing, in seat order.
async fn seats_of_listing<'e, E>(executor: E, listing: ListingId) -> anyhow::Result<Vec<SeatLabel>>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let seats: Vec<String> =
        sqlx::query_scalar("SELECT seat FROM listing_seats WHERE listing_id = $1")
            .bind(listing.to_string())
            .fetch_all(executor)
            .await
            .context("reading a seat map")?;
    let mut seats = seats
        .iter()
        .map(|seat| seat.parse::<SeatLabel>())
        .collect::<Result<Vec<_>, _>>()?;
    seats.sort_unstable();
    Ok(seats)
}

/// A musical's sections as `listings.sections` keeps them.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StoredSection {
    name: String,
    price: i64,
    rows: Vec<String>,
}

fn stored_sections(sections: &[Section]) -> anyhow::Result<String> {
    let stored: Vec<StoredSection> = sections
        .iter()
        .map(|section| StoredSection {
            name: section.name().to_owned(),
            price: section.price().minor_units(),
            rows: section.rows().iter().map(ToString::to_string).collect(),
        })
        .collect();
    Ok(serde_json::to_string(&stored)?)
}

fn read_sections(text: &str) -> anyhow::Result<Vec<Section>> {
    let stored: Vec<StoredSection> =
        serde_json::from_str(text).context("reading a listing's sections")?;
    stored
        .into_iter()
        .map(|section| {
            let rows = section
                .rows
                .iter()
                .map(|row| row.parse::<SeatRow>())
                .collect::<anyhow::Result<_>>()?;
            Ok(Section::restore(
                section.name,
                Money::parse(section.price)?,
                rows,
            ))
        })
        .collect()
}

/// Writes a new showing's seats, a few hundred per statement.
async fn insert_seats(tx: &mut Tx, listing: ListingId, seats: &[SeatLabel]) -> anyhow::Result<()> {
    for_seats(tx, listing, seats, "storing a showing's seats", |numbers| {
        let values: Vec<String> = numbers.map(|n| format!("($1, ${n})")).collect();
        format!(
            "INSERT INTO listing_seats (listing_id, seat) VALUES {}",
            values.join(", ")
        )
    })
    .await
}

/// Runs one statement per few hundred of a listing's `seats`: `$1` is the
/// listing, and `statement` writes the SQL for the seats' placeholder
/// numbers (2, 3, …).
async fn for_seats(
    tx: &mut Tx,
    listing: ListingId,
    seats: &[SeatLabel],
    what: &'static str,
    statement: impl Fn(std::ops::Range<usize>) -> String,
) -> anyhow::Result<()> {
    for chunk in seats.chunks(SEATS_PER_INSERT) {
        let sql = statement(2..chunk.len() + 2);
        let mut query = sqlx::query(&sql).bind(listing.to_string());
        for seat in chunk {
            query = query.bind(seat.to_string());
        }
        query.execute(&mut **tx).await.context(what)?;
    }
    Ok(())
}

fn from_row(row: &AnyRow) -> anyhow::Result<ListingRecord> {
    let id: String = row.try_get("id")?;
    let kind: String = row.try_get("kind")?;
    let total: i64 = row.try_get("total")?;
    let available: i64 = row.try_get("available")?;
    let price: i64 = row.try_get("price")?;
    let created_at: String = row.try_get("created_at")?;
    let screen_id: Option<String> = row.try_get("screen_id")?;
    let screen_name: Option<String> = row.try_get("screen_name")?;
    let starts_at: Option<String> = row.try_get("starts_at")?;
    let sections: String = row.try_get("sections")?;
    let number: Option<i64> = row.try_get("number")?;
    let withdrawn_at: Option<String> = row.try_get("withdrawn_at")?;
    Ok(ListingRecord {
        id: id.parse()?,
        kind: serde_json::from_value(serde_json::Value::String(kind))?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        price: Money::parse(price)?,
        quota: Quota::restore(u32::try_from(total)?, u32::try_from(available)?),
        screen: match screen_id {
            Some(id) => Some(ScreenRef {
                id: id.parse()?,
                name: screen_name.unwrap_or_default(),
            }),
            None => None,
        },
        sections: read_sections(&sections)?,
        starts_at: starts_at.as_deref().map(parse_timestamp).transpose()?,
        color: row.try_get("color")?,
        number: number.map(u32::try_from).transpose()?,
        created_at: parse_timestamp(&created_at)?,
        withdrawn_at: withdrawn_at.as_deref().map(parse_timestamp).transpose()?,
    })
}

fn hold_from(row: &AnyRow) -> anyhow::Result<Hold> {
    let listing: String = row.try_get("listing_id")?;
    let quantity: i64 = row.try_get("quantity")?;
    let status: String = row.try_get("status")?;
    Ok(Hold {
        listing_id: listing.parse()?,
        quantity: u32::try_from(quantity)?,
        status: status.parse()?,
    })
}
