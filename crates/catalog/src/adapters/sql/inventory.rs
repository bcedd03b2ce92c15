//! What a batch of reservation events does to the inventory, kept in
//! memory until the batch is written.
//!
//! Every placed booking used to read its listing, write the listing's
//! availability, insert its hold and append its event, each its own
//! statement; a confirmation four more. Now each listing and each hold a
//! batch touches is read once (the listings are locked already, see
//! `InventoryPolicy::prepare`), every event of the batch changes them in
//! memory in turn, and [`Inventory::write`] stores each changed listing
//! and hold once and the batch's events in one outbox statement. One
//! event is a batch of one: there is a single code path.
//!
//! Seats stay immediate statements: a seat is claimed by its row's
//! primary key in the database ("the database decides", see
//! `Listings::hold_seats`), never by a read before the write.

use runtime::store::Tx;
use std::collections::{BTreeMap, HashMap};

use kernel::bus::Outgoing;
use kernel::ids::{ListingId, ReservationId};
use runtime::http::timestamp;
use runtime::retry::Contention;
use runtime::store::{plain_tuple, write_rows};

use super::{Hold, ListingRecord};
use crate::domain::Quota;

/// The listings and holds a batch read, as it leaves them, and the events
/// it announces.
#[derive(Default)]
pub struct Inventory {
    /// Each listing read (`None`: there is no such listing), with the
    /// availability stored when it was read: the guard of its write.
    listings: HashMap<ListingId, Option<(ListingRecord, Quota)>>,
    /// Each hold read or made (`None`: the reservation has none).
    holds: HashMap<ReservationId, Option<Hold>>,
    /// The holds the batch made or changed, written at the end.
    changed_holds: BTreeMap<ReservationId, Hold>,
    /// The events to announce, in the order the batch decided them.
    events: Vec<Outgoing>,
}

impl Inventory {
    /// The listing as the batch left it, if it was read.
    pub(super) fn listing(&self, id: ListingId) -> Option<Option<&ListingRecord>> {
        self.listings
            .get(&id)
            .map(|listing| listing.as_ref().map(|(record, _)| record))
    }

    /// Remembers a listing as read from the database.
    pub(super) fn read_listing(&mut self, id: ListingId, record: Option<ListingRecord>) {
        let read = record.map(|record| {
            let stored = record.quota;
            (record, stored)
        });
        self.listings.insert(id, read);
    }

    /// The listing's availability from now on.
    pub(super) fn set_quota(&mut self, id: ListingId, after: Quota) {
        if let Some(Some((record, _))) = self.listings.get_mut(&id) {
            record.quota = after;
        }
    }

    /// The reservation's hold as the batch left it, if it was read.
    pub(super) fn hold(&self, reservation: ReservationId) -> Option<Option<Hold>> {
        self.holds.get(&reservation).copied()
    }

    /// Remembers a hold as read from the database.
    pub(super) fn read_hold(&mut self, reservation: ReservationId, hold: Option<Hold>) {
        self.holds.insert(reservation, hold);
    }

    /// The reservation's hold from now on (made, or its status changed).
    pub(super) fn put_hold(&mut self, reservation: ReservationId, hold: Hold) {
        self.holds.insert(reservation, Some(hold));
        self.changed_holds.insert(reservation, hold);
    }

    /// An event to announce when the batch is written. Its trace context
    /// is taken now, inside the span of the event that caused it.
    pub(super) fn announce(&mut self, event: Outgoing) {
        let mut events = [event];
        runtime::telemetry::stamp(&mut events);
        let [event] = events;
        self.events.push(event);
    }

    /// Stores what the batch changed: each listing's availability (guarded
    /// by the value read: anything else changing it meanwhile makes the
    /// batch a passing fault, retried, rather than an oversell), each hold
    /// in one statement, the events in one.
    pub async fn write(self, tx: &mut Tx) -> anyhow::Result<()> {
        for (id, listing) in &self.listings {
            let Some((record, stored)) = listing else {
                continue;
            };
            if record.quota.available() == stored.available() {
                continue;
            }
            let updated =
                sqlx::query("UPDATE listings SET available = $1 WHERE id = $2 AND available = $3")
                    .bind(i64::from(record.quota.available()))
                    .bind(id.to_string())
                    .bind(i64::from(stored.available()))
                    .execute(&mut **tx)
                    .await?;
            if updated.rows_affected() != 1 {
                return Err(Contention(format!("availability of listing {id}")).into());
            }
        }
        let holds: Vec<(ReservationId, Hold)> = self.changed_holds.into_iter().collect();
        let now = timestamp(kernel::now());
        write_rows(
            tx,
            &holds,
            5,
            "INSERT INTO holds (reservation_id, listing_id, quantity, status, updated_at)
             VALUES {values}
             ON CONFLICT (reservation_id) DO UPDATE
                 SET status = excluded.status, updated_at = excluded.updated_at",
            plain_tuple,
            |values, (reservation, hold)| {
                values
                    .push(reservation.to_string())
                    .push(hold.listing_id.to_string())
                    .push(i64::from(hold.quantity))
                    .push(hold.status.as_str())
                    .push(now.clone());
                Ok(())
            },
        )
        .await
        .map_err(|error| error.context("recording holds"))?;
        runtime::outbox::append(tx, &self.events).await
    }
}
