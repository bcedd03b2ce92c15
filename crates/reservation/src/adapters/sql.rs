//! Reservations and the listing replica in the reservation service's own
//! database. The aggregate is stored as its current state with a version;
//! every change is written together with its events (outbox) in one
//! transaction.

use runtime::store::Tx;
use std::collections::{HashMap, HashSet};

use anyhow::Context;
use contracts::catalog::SeatSection;
use contracts::reservation::PaymentMethod;
use kernel::bus::Outgoing;
use kernel::ids::{ListingId, ReservationId, UserId};
use kernel::{Money, SeatLabel};
use runtime::http::{parse_timestamp, timestamp};
use runtime::outbox;
use runtime::retry::Contention;
use runtime::store::{
    fetch_by_keys, in_statements, plain_tuple, write_rows_counting, write_rows_returning, Listing,
    MigrationScript, Plan,
};
use runtime::Store;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::domain::{ListingSnapshot, Quantity, Reservation, Status};

const SCHEMA: &str = "
CREATE TABLE reservations (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    listing_id TEXT NOT NULL,
    listing_title TEXT NOT NULL,
    listing_kind TEXT NOT NULL,
    price BIGINT NOT NULL,
    quantity BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    payment_method TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    cancel_requested BIGINT NOT NULL,
    idempotency_key TEXT,
    version BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX reservations_by_user ON reservations (user_id, created_at);
CREATE TABLE listing_replica (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    price BIGINT NOT NULL
);";

const FIXED_WIDTH_TIMESTAMPS: &str = runtime::fixed_width_timestamps!(
    ("reservations", "created_at"),
    ("reservations", "updated_at")
);

/// Seats and deadlines. Bookings pending from before deadlines existed get
/// their last change as deadline: they are long overdue.
const SEATS_AND_DEADLINES: &str = "
ALTER TABLE reservations ADD COLUMN seats TEXT NOT NULL DEFAULT '';
ALTER TABLE reservations ADD COLUMN deadline TEXT NOT NULL DEFAULT '';
UPDATE reservations SET deadline = updated_at;
CREATE INDEX reservations_by_deadline ON reservations (status, deadline);
ALTER TABLE listing_replica ADD COLUMN seats TEXT;";

/// Bookings paid with points wait for the wallet as well as for catalog;
/// every booking stored before was paid (by card) when placed. Listings
/// gain seat sections and can be withdrawn.
const POINTS_AND_WITHDRAWALS: &str = "
ALTER TABLE reservations ADD COLUMN held BIGINT NOT NULL DEFAULT 0;
ALTER TABLE reservations ADD COLUMN paid BIGINT NOT NULL DEFAULT 1;
CREATE INDEX reservations_by_listing ON reservations (listing_id, status);
ALTER TABLE listing_replica ADD COLUMN sections TEXT NOT NULL DEFAULT '[]';
ALTER TABLE listing_replica ADD COLUMN withdrawn BIGINT NOT NULL DEFAULT 0;";

pub const MIGRATIONS: &[MigrationScript] = &[
    MigrationScript {
        version: 100,
        description: "reservation: reservations and the listing replica",
        sqlite: SCHEMA,
        postgres: SCHEMA,
    },
    MigrationScript {
        version: 101,
        description: "reservation: fixed-width timestamps",
        sqlite: FIXED_WIDTH_TIMESTAMPS,
        postgres: FIXED_WIDTH_TIMESTAMPS,
    },
    MigrationScript {
        version: 102,
        description: "reservation: seats and deadlines",
        sqlite: SEATS_AND_DEADLINES,
        postgres: SEATS_AND_DEADLINES,
    },
    MigrationScript {
        version: 103,
        description: "reservation: points payments, seat sections, withdrawn listings",
        sqlite: POINTS_AND_WITHDRAWALS,
        postgres: POINTS_AND_WITHDRAWALS,
    },
];

const COLUMNS: &str =
    "id, user_id, listing_id, listing_title, listing_kind, price, quantity, seats, amount, \
    payment_method, status, reason, cancel_requested, held, paid, deadline, version, created_at, \
    updated_at";

const RESERVATIONS: Listing = Listing {
    table: "reservations",
    columns: COLUMNS,
    sort: "created_at",
    id: "id",
    newest_first: true,
};

/// The reservations a unit of work (a consumer's batch, an expiry round,
/// a customer's cancellation) read and changed, as it leaves them, and the
/// events they announce, until [`ReservationStore::write`] stores them.
///
/// A batch of saga answers used to read, update and append to the outbox
/// once per answer, three statements each; now its reservations are read
/// with one statement, every answer moves them on in memory in turn, and
/// the batch writes each changed reservation and all its events once. One
/// answer is a unit of one: there is a single code path.
#[derive(Debug, Default)]
pub struct Bookings {
    /// Each reservation read (`None`: there is no such reservation).
    read: HashMap<ReservationId, Option<Read>>,
    /// The events to announce, in the order they were decided.
    events: Vec<Outgoing>,
}

#[derive(Debug)]
struct Read {
    reservation: Reservation,
    /// The version stored when it was read: the guard of its write.
    stored: i64,
    /// The version the unit of work brought it to.
    version: i64,
}

impl Bookings {
    /// The reservation as the unit of work left it, with its version;
    /// `None` when it was read and does not exist, or was never read.
    pub fn get(&self, id: ReservationId) -> Option<(&Reservation, i64)> {
        self.read
            .get(&id)
            .and_then(Option::as_ref)
            .map(|read| (&read.reservation, read.version))
    }

    /// Records `reservation`'s new state, `steps` versions on, and the
    /// events announcing it. It must have been read. The events' trace
    /// context is taken now, inside the span of what caused them (the
    /// batch is written outside every event's span).
    pub fn change(
        &mut self,
        reservation: Reservation,
        steps: usize,
        mut events: Vec<Outgoing>,
    ) -> anyhow::Result<()> {
        runtime::telemetry::stamp(&mut events);
        let id = reservation.id;
        let Some(Some(read)) = self.read.get_mut(&id) else {
            anyhow::bail!("reservation {id} changed without being read");
        };
        read.reservation = reservation;
        read.version += i64::try_from(steps)?;
        self.events.extend(events);
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub struct ReservationStore {
    store: Store,
}

impl ReservationStore {
    pub fn new(store: Store) -> ReservationStore {
        ReservationStore { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Reads the reservations among `ids` that `bookings` does not hold
    /// yet, for change: one statement, in id order, each row locked on
    /// PostgreSQL (SQLite has a single writer already), so two units of
    /// work that share reservations take them in the same order. Planned
    /// at each execution ([`Plan::EachTime`]): a list of keys.
    pub async fn read_into(
        &self,
        tx: &mut Tx,
        bookings: &mut Bookings,
        ids: impl IntoIterator<Item = ReservationId>,
    ) -> anyhow::Result<()> {
        let mut unread: Vec<ReservationId> = ids
            .into_iter()
            .filter(|id| !bookings.read.contains_key(id))
            .collect();
        unread.sort_unstable();
        unread.dedup();
        let lock = self.store.for_update();
        let statement =
            format!("SELECT {COLUMNS} FROM reservations WHERE id IN ({{keys}}) ORDER BY id{lock}");
        for slice in in_statements(&unread) {
            let rows = fetch_by_keys(tx, &statement, slice)
                .await
                .context("reading reservations")?;
            for id in slice {
                bookings.read.insert(*id, None);
            }
            for row in rows {
                let version: i64 = row.try_get("version")?;
                let reservation = from_row(&row)?;
                let read = Read {
                    reservation,
                    stored: version,
                    version,
                };
                bookings.read.insert(read.reservation.id, Some(read));
            }
        }
        Ok(())
    }

    pub async fn insert(
        &self,
        tx: &mut Tx,
        reservation: &Reservation,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<bool> {
        let stored = self
            .insert_all(tx, &[(reservation, idempotency_key)])
            .await?;
        Ok(stored == [true])
    }

    /// Stores new reservations with one statement per slice, and tells
    /// which were stored. A repeated idempotency key is not an error (that
    /// would abort a PostgreSQL transaction shared with other bookings):
    /// it stores nothing.
    pub async fn insert_all(
        &self,
        tx: &mut Tx,
        placements: &[(&Reservation, Option<&str>)],
    ) -> anyhow::Result<Vec<bool>> {
        let inserted = write_rows_returning(
            tx,
            placements,
            20,
            &format!(
                "INSERT INTO reservations ({COLUMNS}, idempotency_key) VALUES {{values}}
                 ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING id"
            ),
            plain_tuple,
            |values, (r, idempotency_key)| {
                values
                    .push(r.id.to_string())
                    .push(r.user_id.to_string())
                    .push(r.listing.id.to_string())
                    .push(r.listing.title.clone())
                    .push(r.listing.kind.as_str())
                    .push(r.listing.price.minor_units())
                    .push(i64::from(r.quantity.get()))
                    .push(seat_list(&r.seats))
                    .push(r.amount.minor_units())
                    .push(payment_method_str(r.payment_method))
                    .push(r.status.as_str())
                    .push(r.reason.clone())
                    .push(i64::from(r.cancel_requested))
                    .push(i64::from(r.held))
                    .push(i64::from(r.paid))
                    .push(timestamp(r.deadline))
                    // A new reservation is at version 1.
                    .push(1_i64)
                    .push(timestamp(r.created_at))
                    .push(timestamp(r.updated_at))
                    .push(idempotency_key.map(str::to_owned));
                Ok(())
            },
            Plan::Prepared,
        )
        .await
        .context("storing reservations")?;
        let inserted: HashSet<String> = inserted
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<Result<_, _>>()?;
        Ok(placements
            .iter()
            .map(|(r, _)| inserted.contains(&r.id.to_string()))
            .collect())
    }

    /// Stores what `bookings` changed: each changed reservation once, with
    /// one multi-row update guarded by the version it was read at, then
    /// its events with one outbox statement, in the order they were
    /// decided.
    pub async fn write(&self, tx: &mut Tx, bookings: Bookings) -> anyhow::Result<()> {
        // Those moved past the version they were read at, in id order.
        let mut changed: Vec<&Read> = bookings
            .read
            .values()
            .flatten()
            .filter(|read| read.version != read.stored)
            .collect();
        changed.sort_unstable_by_key(|read| read.reservation.id);
        // `columnN`: the names both databases give a VALUES list's columns.
        let written = write_rows_counting(
            tx,
            &changed,
            9,
            "UPDATE reservations AS r SET status = v.column2, reason = v.column3,
                 cancel_requested = v.column4, held = v.column5, paid = v.column6,
                 updated_at = v.column7, version = v.column8
             FROM (VALUES {values}) AS v
             WHERE r.id = v.column1 AND r.version = v.column9",
            plain_tuple,
            |values, read| {
                let r = &read.reservation;
                values
                    .push(r.id.to_string())
                    .push(r.status.as_str())
                    .push(r.reason.clone())
                    .push(i64::from(r.cancel_requested))
                    .push(i64::from(r.held))
                    .push(i64::from(r.paid))
                    .push(timestamp(r.updated_at))
                    .push(read.version)
                    .push(read.stored);
                Ok(())
            },
            // A list of keys joined to the table.
            Plan::EachTime,
        )
        .await
        .context("storing reservations")?;
        if written != changed.len() as u64 {
            // Only when read outside the transaction's lock: someone else
            // moved one of them on meanwhile.
            return Err(Contention(format!(
                "{} of {} reservations changed meanwhile",
                changed.len() as u64 - written,
                changed.len()
            ))
            .into());
        }
        outbox::append(tx, &bookings.events).await
    }

    pub async fn find(&self, id: ReservationId) -> anyhow::Result<Option<Reservation>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM reservations WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.store.reader())
            .await?;
        row.map(|row| from_row(&row)).transpose()
    }

    /// Pending bookings whose deadline has passed, most overdue first.
    pub async fn overdue(
        &self,
        now: time::OffsetDateTime,
        limit: i64,
    ) -> anyhow::Result<Vec<ReservationId>> {
        let rows = sqlx::query(
            "SELECT id FROM reservations WHERE status = 'pending' AND deadline < $1
             ORDER BY deadline LIMIT $2",
        )
        .bind(timestamp(now))
        .bind(limit)
        .fetch_all(self.store.reader())
        .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("id")?.parse()?))
            .collect()
    }

    pub async fn find_by_idempotency_key(
        &self,
        user: UserId,
        key: &str,
    ) -> anyhow::Result<Option<Reservation>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM reservations WHERE user_id = $1 AND idempotency_key = $2"
        ))
        .bind(user.to_string())
        .bind(key)
        .fetch_optional(self.store.reader())
        .await?;
        row.map(|row| from_row(&row)).transpose()
    }

    /// A user's reservations (all of them for `None`), newest first, a
    /// page at a time. `Ok(None)` when `after` names no reservation.
    pub async fn list(
        &self,
        user: Option<UserId>,
        after: Option<ReservationId>,
        limit: i64,
    ) -> anyhow::Result<Option<Vec<Reservation>>> {
        let filters: Vec<(&str, String)> = user
            .map(|user| ("user_id", user.to_string()))
            .into_iter()
            .collect();
        let Some(rows) = self
            .store
            .page(
                &RESERVATIONS,
                &filters,
                after.map(|id| id.to_string()),
                limit,
            )
            .await?
        else {
            return Ok(None);
        };
        rows.iter()
            .map(from_row)
            .collect::<anyhow::Result<_>>()
            .map(Some)
    }

    pub async fn listing(&self, id: ListingId) -> anyhow::Result<Option<ListingSnapshot>> {
        let row = sqlx::query(
            "SELECT id, kind, title, price, seats, sections, withdrawn FROM listing_replica
             WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(self.store.reader())
        .await?;
        row.map(|row| {
            let id: String = row.try_get("id")?;
            let kind: String = row.try_get("kind")?;
            let seats: Option<String> = row.try_get("seats")?;
            let sections: String = row.try_get("sections")?;
            Ok(ListingSnapshot {
                id: id.parse()?,
                kind: serde_json::from_value(serde_json::Value::String(kind))?,
                title: row.try_get("title")?,
                price: Money::parse(row.try_get("price")?)?,
                seats: seats.as_deref().map(parse_seats).transpose()?,
                sections: serde_json::from_str(&sections).context("a listing's seat sections")?,
                withdrawn: row.try_get::<i64, _>("withdrawn")? != 0,
            })
        })
        .transpose()
    }

    /// Follows an admin's change of a listing the replica knows (one it
    /// has not heard of is looked up in full when first booked).
    pub async fn update_listing(
        &self,
        tx: &mut Tx,
        id: ListingId,
        title: &str,
        price: Money,
        seats: Option<&[SeatLabel]>,
        sections: &[SeatSection],
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE listing_replica SET title = $2, price = $3, seats = $4, sections = $5
             WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(title)
        .bind(price.minor_units())
        .bind(seats.map(seat_list))
        .bind(serde_json::to_string(sections)?)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Marks a listing as no longer sold.
    pub async fn withdraw_listing(&self, tx: &mut Tx, id: ListingId) -> anyhow::Result<()> {
        sqlx::query("UPDATE listing_replica SET withdrawn = 1 WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// The bookings of a listing that are still pending or confirmed.
    pub async fn live_for_listing(
        &self,
        tx: &mut Tx,
        listing: ListingId,
    ) -> anyhow::Result<Vec<ReservationId>> {
        let rows = sqlx::query(
            "SELECT id FROM reservations
             WHERE listing_id = $1 AND status IN ('pending', 'confirmed') ORDER BY id",
        )
        .bind(listing.to_string())
        .fetch_all(&mut **tx)
        .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("id")?.parse()?))
            .collect()
    }

    /// Records (or refreshes) a listing in the replica.
    pub async fn remember_listing(
        &self,
        tx: &mut Tx,
        listing: &ListingSnapshot,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO listing_replica (id, kind, title, price, seats, sections, withdrawn)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, title = excluded.title,
                 price = excluded.price, seats = excluded.seats, sections = excluded.sections",
        )
        .bind(listing.id.to_string())
        .bind(listing.kind.as_str())
        .bind(&listing.title)
        .bind(listing.price.minor_units())
        .bind(listing.seats.as_deref().map(seat_list))
        .bind(serde_json::to_string(&listing.sections)?)
        .bind(i64::from(listing.withdrawn))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

pub fn payment_method_str(method: PaymentMethod) -> &'static str {
    match method {
        PaymentMethod::Card => "card",
        PaymentMethod::Points => "points",
    }
}

/// Seats as stored: `A-1,A-2` (labels never contain a comma).
fn seat_list(seats: &[SeatLabel]) -> String {
    seats
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_seats(text: &str) -> anyhow::Result<Vec<SeatLabel>> {
    text.split(',')
        .filter(|label| !label.is_empty())
        .map(|label| Ok(label.parse()?))
        .collect()
}

fn from_row(row: &AnyRow) -> anyhow::Result<Reservation> {
    let text = |name: &str| -> anyhow::Result<String> { Ok(row.try_get::<String, _>(name)?) };
    let number = |name: &str| -> anyhow::Result<i64> { Ok(row.try_get::<i64, _>(name)?) };
    let status = text("status")?;
    Ok(Reservation {
        id: text("id")?.parse()?,
        user_id: text("user_id")?.parse()?,
        listing: ListingSnapshot {
            id: text("listing_id")?.parse()?,
            kind: serde_json::from_value(serde_json::Value::String(text("listing_kind")?))?,
            title: text("listing_title")?,
            price: Money::parse(number("price")?)?,
            // The booking keeps its own seats and amount; the listing's
            // seat map is only needed to place one.
            seats: None,
            sections: Vec::new(),
            withdrawn: false,
        },
        quantity: Quantity::parse(number("quantity")?)?,
        seats: parse_seats(&text("seats")?)?,
        amount: Money::parse(number("amount")?)?,
        payment_method: serde_json::from_value(serde_json::Value::String(text("payment_method")?))?,
        status: Status::parse(&status).with_context(|| format!("unknown status {status:?}"))?,
        reason: row.try_get("reason")?,
        cancel_requested: number("cancel_requested")? != 0,
        held: number("held")? != 0,
        paid: number("paid")? != 0,
        deadline: parse_timestamp(&text("deadline")?)?,
        created_at: parse_timestamp(&text("created_at")?)?,
        updated_at: parse_timestamp(&text("updated_at")?)?,
    })
}
