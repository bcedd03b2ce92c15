//! An admin changes a listing or withdraws it from sale. Each is one
//! transaction with its event, on the listing locked as a booking locks
//! it: a seat cannot be held between the check that it is free and the
//! change of the seat map, nor a booking held between counting the live
//! ones and the withdrawal.

use anyhow::Context;
use contracts::catalog::CatalogEvent;
use contracts::IntegrationEvent;
use kernel::ids::ListingId;
use kernel::SeatLabel;
use runtime::http::timestamp;
use runtime::outbox;
use runtime::store::Tx;

use super::{capacity, for_seats, insert_seats, screens, seats_of_listing, stored_sections};
use super::{ListingRecord, Listings};
use crate::domain::screen::{self, AssignmentError};
use crate::domain::seat_map::{self, BookedSeatsRemoved, SeatMap};
use crate::domain::{ListingChange, ListingChangeDraft, ListingError, Quota, SoldBy};

/// Why a listing was not changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("no listing with id {0}")]
    NotFound(ListingId),
    #[error(transparent)]
    Invalid(#[from] ListingError),
    /// The new seat map would take away seats customers hold or bought.
    #[error(transparent)]
    BookedSeats(#[from] BookedSeatsRemoved),
    /// The showing's screen is taken at the new start time.
    #[error(transparent)]
    ScreenBusy(AssignmentError),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// Why a listing was not withdrawn.
#[derive(Debug, thiserror::Error)]
pub enum WithdrawError {
    #[error("no listing with id {0}")]
    NotFound(ListingId),
    #[error(
        "listing {listing} has {live} live reservation{}; delete with ?cancelReservations=true to cancel and refund them",
        if *.live == 1 { "" } else { "s" }
    )]
    LiveReservations { listing: ListingId, live: u32 },
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl Listings {
    /// Changes what the admin names and announces the listing as it now
    /// is (`ListingUpdated`), or changes nothing.
    pub async fn update(
        &self,
        id: ListingId,
        draft: ListingChangeDraft,
    ) -> Result<ListingRecord, ChangeError> {
        let mut tx = self.store.begin().await?;
        let mut listing = self
            .load_for_update(&mut tx, id)
            .await?
            .filter(|listing| listing.withdrawn_at.is_none())
            .ok_or(ChangeError::NotFound(id))?;
        let change = ListingChange::parse(listing.kind, draft)?;
        if let Some(title) = change.title {
            listing.title = title;
        }
        if let Some(description) = change.description {
            listing.description = description;
        }
        if let Some(price) = change.price {
            listing.price = price;
        }
        if let Some(color) = change.color {
            listing.color = Some(color);
        }
        if let Some(starts_at) = change.starts_at {
            if starts_at.is_some() && starts_at != listing.starts_at {
                self.check_screen_free(&mut tx, &listing, starts_at).await?;
            }
            listing.starts_at = starts_at;
        }
        let seats = match (listing.sold_by(), change.seating) {
            (SoldBy::Seats, Some(patch)) => {
                let current = seats_of_listing(&mut *tx, id).await?;
                let map = SeatMap::restore(&current, listing.sections.clone())
                    .context("reading a musical's seat map")?;
                let next = map.revise(patch).map_err(ListingError::from)?;
                let seats = next.seats();
                let taken = taken_seats(&mut tx, id).await?;
                let change = seat_map::change(&current, &seats, &taken)?;
                insert_seats(&mut tx, id, &change.added).await?;
                delete_seats(&mut tx, id, &change.removed).await?;
                let total = next.total();
                listing.quota = Quota::restore(total, total.saturating_sub(taken.len() as u32));
                listing.sections = next.into_sections();
                seats
            }
            (SoldBy::Seats, None) => seats_of_listing(&mut *tx, id).await?,
            (SoldBy::Tickets | SoldBy::Unit, _) => Vec::new(),
        };
        sqlx::query(
            "UPDATE listings SET title = $1, description = $2, price = $3, starts_at = $4,
                 color = $5, sections = $6, total = $7, available = $8
             WHERE id = $9",
        )
        .bind(&listing.title)
        .bind(&listing.description)
        .bind(listing.price.minor_units())
        .bind(listing.starts_at.map(timestamp))
        .bind(listing.color.clone())
        .bind(stored_sections(&listing.sections)?)
        .bind(i64::from(listing.quota.total()))
        .bind(i64::from(listing.quota.available()))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .context("changing a listing")?;
        let event = CatalogEvent::ListingUpdated {
            listing_id: id,
            title: listing.title.clone(),
            description: listing.description.clone(),
            price: listing.price,
            capacity: capacity(&listing, seats),
            starts_at: listing.starts_at,
            color: listing.color.clone(),
            updated_at: kernel::now(),
        };
        outbox::append(&mut tx, &[event.outgoing(None)]).await?;
        self.store.commit(tx).await?;
        Ok(listing)
    }

    /// A seated movie keeps its screen; it may only move to a time the
    /// screen is free (other than for itself).
    async fn check_screen_free(
        &self,
        tx: &mut Tx,
        listing: &ListingRecord,
        starts_at: Option<time::OffsetDateTime>,
    ) -> Result<(), ChangeError> {
        let Some(screen) = &listing.screen else {
            return Ok(());
        };
        let mut schedules = screens::schedules(tx, &self.store, starts_at).await?;
        for schedule in &mut schedules {
            schedule
                .nearby
                .retain(|showing| showing.listing_id != listing.id);
        }
        match screen::assign_named(&schedules, screen.id, starts_at) {
            Ok(_) => Ok(()),
            Err(busy @ AssignmentError::Busy { .. }) => Err(ChangeError::ScreenBusy(busy)),
            Err(other) => Err(anyhow::Error::new(other)
                .context("the screen of a showing is gone")
                .into()),
        }
    }

    /// Takes a listing off sale, announcing it (`ListingWithdrawn`). One
    /// with live bookings (held or sold) is only withdrawn when they are
    /// to be cancelled: the reservation context then cancels each, and
    /// their inventory is released here as for any cancellation.
    pub async fn withdraw(
        &self,
        id: ListingId,
        cancel_reservations: bool,
    ) -> Result<(), WithdrawError> {
        let mut tx = self.store.begin().await?;
        self.load_for_update(&mut tx, id)
            .await?
            .filter(|listing| listing.withdrawn_at.is_none())
            .ok_or(WithdrawError::NotFound(id))?;
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM holds WHERE listing_id = $1 AND status IN ('held', 'sold')",
        )
        .bind(id.to_string())
        .fetch_one(&mut *tx)
        .await
        .context("counting a listing's live bookings")?;
        if live > 0 && !cancel_reservations {
            return Err(WithdrawError::LiveReservations {
                listing: id,
                live: u32::try_from(live).unwrap_or(u32::MAX),
            });
        }
        let withdrawn_at = kernel::now();
        sqlx::query("UPDATE listings SET withdrawn_at = $1 WHERE id = $2")
            .bind(timestamp(withdrawn_at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .context("withdrawing a listing")?;
        let event = CatalogEvent::ListingWithdrawn {
            listing_id: id,
            cancel_reservations,
            withdrawn_at,
        };
        outbox::append(&mut tx, &[event.outgoing(None)]).await?;
        self.store.commit(tx).await?;
        Ok(())
    }
}

/// The seats of a listing someone holds or bought.
async fn taken_seats(tx: &mut Tx, listing: ListingId) -> anyhow::Result<Vec<SeatLabel>> {
    let seats: Vec<String> =
        sqlx::query_scalar("SELECT seat FROM seat_holds WHERE listing_id = $1")
            .bind(listing.to_string())
            .fetch_all(&mut **tx)
            .await
            .context("reading the booked seats")?;
    Ok(seats
        .iter()
        .map(|seat| seat.parse::<SeatLabel>())
        .collect::<Result<_, _>>()?)
}

/// Removes seats nobody holds from a seat map, a few hundred at a time.
async fn delete_seats(tx: &mut Tx, listing: ListingId, seats: &[SeatLabel]) -> anyhow::Result<()> {
    for_seats(
        tx,
        listing,
        seats,
        "removing seats from a seat map",
        |numbers| {
            let placeholders: Vec<String> = numbers.map(|n| format!("${n}")).collect();
            format!(
                "DELETE FROM listing_seats WHERE listing_id = $1 AND seat IN ({})",
                placeholders.join(", ")
            )
        },
    )
    .await
}
