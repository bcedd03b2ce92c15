//! Use cases of the reservation context: place, cancel, look up, and the
//! saga steps driven by catalog's answers. Each change runs in one
//! transaction: load, decide, apply, store, and append the resulting
//! integration events to the outbox.

use contracts::reservation::{Booking, PaymentMethod, ReservationEvent};
use contracts::IntegrationEvent;
use kernel::bus::Outgoing;
use kernel::ids::{ListingId, ReservationId, UserId};
use kernel::Envelope;
use runtime::outbox;
use sqlx::{Any, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::adapters::catalog_client::{CatalogClient, LookupError};
use crate::adapters::sql::ReservationStore;
use crate::domain::{
    self, Command, Event, ListingSnapshot, Quantity, Reservation, ReservationError,
};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Domain(#[from] ReservationError),
    #[error("no listing with id {0}")]
    UnknownListing(ListingId),
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error(transparent)]
    Infrastructure(#[from] anyhow::Error),
}

/// A request to book, already parsed into domain types.
#[derive(Debug, Clone)]
pub struct PlaceReservation {
    pub user_id: UserId,
    pub listing_id: ListingId,
    pub quantity: Quantity,
    pub payment_method: PaymentMethod,
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Reservations {
    store: ReservationStore,
    catalog: CatalogClient,
    placements: Placements,
}

impl Reservations {
    /// Needs a Tokio runtime: it starts the task that stores new bookings.
    pub fn new(store: ReservationStore, catalog: CatalogClient) -> Reservations {
        let placements = Placements::start(store.clone());
        Reservations {
            store,
            catalog,
            placements,
        }
    }

    /// Places a pending reservation. With an idempotency key, a repeat of
    /// the same request returns the reservation the first one created.
    pub async fn place(&self, request: PlaceReservation) -> Result<Reservation, AppError> {
        if let Some(key) = &request.idempotency_key {
            if let Some(existing) = self
                .store
                .find_by_idempotency_key(request.user_id, key)
                .await?
            {
                return Ok(existing);
            }
        }
        let listing = self.listing(request.listing_id).await?;
        let events = domain::decide(
            None,
            Command::Place {
                id: ReservationId::new(),
                user_id: request.user_id,
                listing,
                quantity: request.quantity,
                payment_method: request.payment_method,
                at: kernel::now(),
            },
        )?;
        let reservation = fold(None, &events).expect("placing yields a reservation");
        // A new reservation is at version 1 once placed.
        let outgoing = integration_events(&reservation, &events, None, 1);
        let stored = self
            .placements
            .store(
                reservation.clone(),
                outgoing,
                request.idempotency_key.clone(),
            )
            .await?;
        if !stored {
            // The same key was used before (or by a request racing this one):
            // answer with what that request created.
            let key = request.idempotency_key.as_deref().unwrap_or_default();
            return self
                .store
                .find_by_idempotency_key(request.user_id, key)
                .await?
                .ok_or_else(|| {
                    anyhow::anyhow!("idempotency key {key:?} conflicts but finds nothing").into()
                });
        }
        Ok(reservation)
    }

    /// The listing from the replica, or from catalog when the replica has
    /// not heard of it yet (remembered for next time).
    async fn listing(&self, id: ListingId) -> Result<ListingSnapshot, AppError> {
        if let Some(listing) = self.store.listing(id).await? {
            return Ok(listing);
        }
        let listing = self
            .catalog
            .listing(id)
            .await?
            .ok_or(AppError::UnknownListing(id))?;
        let mut tx = self.store.store().begin().await?;
        self.store.remember_listing(&mut tx, &listing).await?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        Ok(listing)
    }

    /// Cancels on behalf of `caller` (admins may cancel anyone's).
    pub async fn cancel(
        &self,
        id: ReservationId,
        caller: UserId,
        admin: bool,
    ) -> Result<Reservation, AppError> {
        let mut tx = self.store.store().begin().await?;
        let owned = self
            .store
            .load(&mut tx, id)
            .await?
            .filter(|(r, _)| admin || r.user_id == caller)
            .map(|(r, _)| r.id);
        if owned.is_none() {
            return Err(ReservationError::NotFound.into());
        }
        let reservation = self
            .execute(&mut tx, id, Command::Cancel { at: kernel::now() }, None)
            .await?;
        self.store.store().commit(tx).await?;
        Ok(reservation)
    }

    /// Applies a saga step inside the consumer's transaction.
    pub async fn on_catalog_answer(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: ReservationId,
        command: Command,
        cause: &Envelope,
    ) -> anyhow::Result<()> {
        match self.execute(tx, id, command, Some(cause)).await {
            Ok(_) => Ok(()),
            // An answer about a reservation this service never stored cannot
            // be acted on; say so and move on rather than block the stream.
            Err(AppError::Domain(ReservationError::NotFound)) => {
                tracing::warn!(reservation = %id, event = %cause.id, "catalog answered about an unknown reservation");
                Ok(())
            }
            Err(error) => Err(anyhow::anyhow!(error)),
        }
    }

    async fn execute(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: ReservationId,
        command: Command,
        cause: Option<&Envelope>,
    ) -> Result<Reservation, AppError> {
        let Some((current, version)) = self.store.load(tx, id).await? else {
            return Err(ReservationError::NotFound.into());
        };
        let events = domain::decide(Some(&current), command)?;
        if events.is_empty() {
            return Ok(current);
        }
        let next = fold(Some(current), &events).expect("an existing reservation stays");
        self.store.update(tx, &next, version, events.len()).await?;
        let first_version = u64::try_from(version).unwrap_or_default() + 1;
        outbox::append(
            tx,
            &integration_events(&next, &events, cause, first_version),
        )
        .await?;
        Ok(next)
    }

    pub async fn find(&self, id: ReservationId) -> anyhow::Result<Option<Reservation>> {
        self.store.find(id).await
    }

    /// Newest first, a page at a time; `Ok(None)` when `after` names no
    /// reservation.
    pub async fn list(
        &self,
        user: Option<UserId>,
        after: Option<ReservationId>,
        limit: i64,
    ) -> anyhow::Result<Option<Vec<Reservation>>> {
        self.store.list(user, after, limit).await
    }

    pub(crate) fn store(&self) -> &ReservationStore {
        &self.store
    }
}

fn fold(state: Option<Reservation>, events: &[Event]) -> Option<Reservation> {
    events.iter().fold(state, domain::apply)
}

/// The public events for domain events; internal ones (a cancel waiting for
/// catalog) publish nothing. Every domain event moves the reservation one
/// version on, the first to `first_version`; each public event carries the
/// version it brought the reservation to, so read models can tell a late
/// event from a newer one.
fn integration_events(
    r: &Reservation,
    events: &[Event],
    cause: Option<&Envelope>,
    first_version: u64,
) -> Vec<Outgoing> {
    let booking = Booking {
        reservation_id: r.id,
        user_id: r.user_id,
        listing_id: r.listing.id,
        listing_title: r.listing.title.clone(),
        listing_kind: r.listing.kind,
        quantity: r.quantity.get(),
        seats: Vec::new(),
        amount: r.amount,
        payment_method: r.payment_method,
    };
    events
        .iter()
        .zip(first_version..)
        .filter_map(|(event, version)| {
            let public = match event {
                Event::Placed(placed) => Some(ReservationEvent::ReservationPlaced {
                    booking: booking.clone(),
                    placed_at: placed.created_at,
                }),
                Event::Confirmed { at } => Some(ReservationEvent::ReservationConfirmed {
                    booking: booking.clone(),
                    confirmed_at: *at,
                }),
                Event::Rejected { reason, at } => Some(ReservationEvent::ReservationRejected {
                    booking: booking.clone(),
                    reason: reason.clone(),
                    rejected_at: *at,
                }),
                Event::Cancelled { at } => Some(ReservationEvent::ReservationCancelled {
                    booking: booking.clone(),
                    cancelled_at: *at,
                }),
                Event::CancellationRequested { .. } => None,
            };
            public.map(|event| {
                let mut outgoing = event.outgoing(cause);
                outgoing.envelope = outgoing.envelope.at_version(version);
                outgoing
            })
        })
        .collect()
}

/// New bookings, stored many to a transaction (group commit).
///
/// SQLite has one writer; a transaction per booking made every booking pay
/// for BEGIN and COMMIT round trips while the others queued for the
/// connection. One task takes whatever bookings are waiting, stores them
/// and their events in one transaction, and answers each. A booking is
/// still only answered once its transaction has committed.
#[derive(Clone, Debug)]
struct Placements {
    queue: mpsc::Sender<Placement>,
}

#[derive(Debug)]
struct Placement {
    reservation: Reservation,
    outgoing: Vec<Outgoing>,
    idempotency_key: Option<String>,
    stored: oneshot::Sender<Result<bool, String>>,
}

/// Most bookings in one transaction.
const PLACEMENT_BATCH: usize = 256;

impl Placements {
    fn start(store: ReservationStore) -> Placements {
        let (queue, mut waiting) = mpsc::channel::<Placement>(4 * PLACEMENT_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(PLACEMENT_BATCH);
            while waiting.recv_many(&mut batch, PLACEMENT_BATCH).await > 0 {
                match store_batch(&store, &batch).await {
                    Ok(stored) => {
                        for (placement, stored) in batch.drain(..).zip(stored) {
                            let _ = placement.stored.send(Ok(stored));
                        }
                    }
                    Err(error) => {
                        let error = format!("{error:#}");
                        for placement in batch.drain(..) {
                            let _ = placement.stored.send(Err(error.clone()));
                        }
                    }
                }
            }
        });
        Placements { queue }
    }

    /// Stores the booking with its events; `false` when its idempotency key
    /// was already used.
    async fn store(
        &self,
        reservation: Reservation,
        outgoing: Vec<Outgoing>,
        idempotency_key: Option<String>,
    ) -> anyhow::Result<bool> {
        let (stored, answer) = oneshot::channel();
        self.queue
            .send(Placement {
                reservation,
                outgoing,
                idempotency_key,
                stored,
            })
            .await
            .map_err(|_| anyhow::anyhow!("the booking writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the booking writer has stopped"))?
            .map_err(|error| anyhow::anyhow!(error).context("storing bookings"))
    }
}

async fn store_batch(store: &ReservationStore, batch: &[Placement]) -> anyhow::Result<Vec<bool>> {
    let mut tx = store.store().begin().await?;
    let mut stored = Vec::with_capacity(batch.len());
    for placement in batch {
        let inserted = store
            .insert(
                &mut tx,
                &placement.reservation,
                placement.idempotency_key.as_deref(),
            )
            .await?;
        if inserted {
            outbox::append(&mut tx, &placement.outgoing).await?;
        }
        stored.push(inserted);
    }
    store.store().commit(tx).await?;
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use contracts::catalog::ListingKind;
    use kernel::Money;

    use super::*;

    fn placed() -> (Reservation, Vec<Event>) {
        let listing = ListingSnapshot {
            id: ListingId::new(),
            kind: ListingKind::Movie,
            title: "LALALand".into(),
            price: Money::parse(12_000).unwrap(),
        };
        let events = domain::decide(
            None,
            Command::Place {
                id: ReservationId::new(),
                user_id: UserId::new(),
                listing,
                quantity: Quantity::parse(2).unwrap(),
                payment_method: PaymentMethod::Card,
                at: kernel::now(),
            },
        )
        .unwrap();
        (fold(None, &events).unwrap(), events)
    }

    fn versions(outgoing: &[Outgoing]) -> Vec<(String, Option<u64>)> {
        outgoing
            .iter()
            .map(|o| (o.envelope.event_type.clone(), o.envelope.subjectversion))
            .collect()
    }

    #[test]
    fn each_event_carries_the_version_it_brought_the_reservation_to() {
        let (reservation, events) = placed();
        assert_eq!(
            versions(&integration_events(&reservation, &events, None, 1)),
            vec![("boxoffice.reservation.placed".to_owned(), Some(1))]
        );
        // A cancel asked for while pending is internal (version 2, nothing
        // published); catalog's answer then cancels it at version 3.
        let at = kernel::now();
        let requested = domain::decide(Some(&reservation), Command::Cancel { at }).unwrap();
        let reservation = fold(Some(reservation), &requested).unwrap();
        assert!(integration_events(&reservation, &requested, None, 2).is_empty());
        let answered = domain::decide(Some(&reservation), Command::ConfirmHold { at }).unwrap();
        let reservation = fold(Some(reservation), &answered).unwrap();
        assert_eq!(
            versions(&integration_events(&reservation, &answered, None, 3)),
            vec![("boxoffice.reservation.cancelled".to_owned(), Some(3))]
        );
    }
}
