//! Use cases of the reservation context: place, cancel, look up, and the
//! saga steps driven by catalog's answers. Each change runs in one
//! transaction: load, decide, apply, store, and append the resulting
//! integration events to the outbox.

use contracts::reservation::{Booking, PaymentMethod, ReservationEvent};
use contracts::IntegrationEvent;
use kernel::bus::{EventBus, Outgoing};
use kernel::ids::{ListingId, ReservationId, UserId};
use kernel::Envelope;
use runtime::group_commit::GroupCommit;
use runtime::outbox;
use runtime::store::Tx;

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use kernel::shutdown::Shutdown;
use kernel::Money;

use crate::adapters::catalog_client::{CatalogClient, LookupError};
use crate::adapters::payment_client::{PaymentClient, PaymentError};
use crate::adapters::sql::{Bookings, ReservationStore};
use crate::domain::{self, Command, Event, ListingSnapshot, Order, Reservation, ReservationError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Domain(#[from] ReservationError),
    #[error("no listing with id {0}")]
    UnknownListing(ListingId),
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error("{0}")]
    PaymentDeclined(String),
    #[error("{detail}")]
    PaymentUnavailable {
        detail: String,
        retry_after_secs: u32,
    },
    #[error("points are not accepted here (this deployment has no wallet); pay by card")]
    PointsNotAccepted,
    #[error(transparent)]
    Infrastructure(#[from] anyhow::Error),
}

/// A request to book, already parsed into domain types.
#[derive(Debug, Clone)]
pub struct PlaceReservation {
    pub user_id: UserId,
    pub listing_id: ListingId,
    pub order: Order,
    /// `None`: the listing's usual way (points for bikes, card for shows).
    pub payment_method: Option<PaymentMethod>,
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Reservations {
    store: ReservationStore,
    catalog: CatalogClient,
    payment: PaymentClient,
    placements: Placements,
    /// How long a booking may stay pending.
    deadline: Duration,
    /// Whether bookings may be paid with points (a wallet is deployed).
    points_accepted: bool,
}

/// Most overdue bookings expired in one round.
const EXPIRY_BATCH: i64 = 100;
/// How often overdue bookings are looked for.
const EXPIRY_EVERY: Duration = Duration::from_millis(500);

impl Reservations {
    /// Needs a Tokio runtime: it starts the task that stores new bookings,
    /// paced by the consumers of `bus` (see [`Placements`]).
    pub fn new(
        store: ReservationStore,
        catalog: CatalogClient,
        payment: PaymentClient,
        bus: Arc<dyn EventBus>,
        deadline: Duration,
        points_accepted: bool,
    ) -> Reservations {
        let placements = Placements::start(store.clone(), bus);
        Reservations {
            store,
            catalog,
            payment,
            placements,
            deadline,
            points_accepted,
        }
    }

    /// Places a pending reservation, paid for first: a card booking is
    /// authorised with payment before anything is stored, and no
    /// authorisation means no booking. With an idempotency key, a repeat of
    /// the same request returns the reservation the first one created.
    pub async fn place(&self, request: PlaceReservation) -> Result<Reservation, AppError> {
        let span = runtime::business_span!(
            "place reservation",
            reservation.id = tracing::field::Empty,
            listing.id = %request.listing_id
        );
        self.place_within(request).instrument(span).await
    }

    async fn place_within(&self, request: PlaceReservation) -> Result<Reservation, AppError> {
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
        let payment_method = request
            .payment_method
            .unwrap_or_else(|| listing.default_payment());
        if payment_method == PaymentMethod::Points && !self.points_accepted {
            return Err(AppError::PointsNotAccepted);
        }
        let now = kernel::now();
        let events = domain::decide(
            None,
            Command::Place {
                id: ReservationId::new(),
                user_id: request.user_id,
                listing,
                order: request.order,
                payment_method,
                at: now,
                deadline: now + self.deadline,
            },
        )?;
        let reservation = fold(None, &events).expect("placing yields a reservation");
        tracing::Span::current().record("reservation.id", tracing::field::display(reservation.id));
        let by_card =
            reservation.payment_method == PaymentMethod::Card && reservation.amount > Money::ZERO;
        if by_card {
            self.pay(&reservation).await?;
        }
        // A new reservation is at version 1 once placed.
        let mut outgoing = integration_events(&reservation, &events, None, 1);
        // Stored by the group-commit writer, outside this request's span.
        runtime::telemetry::stamp(&mut outgoing);
        let stored = self
            .placements
            .store(
                reservation.clone(),
                outgoing,
                request.idempotency_key.clone(),
            )
            .await;
        // Paid for but not stored: the authorisation must not stand.
        if by_card && !matches!(stored, Ok(true)) {
            self.abandon_payment(&reservation);
        }
        if !stored? {
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

    /// Authorises the booking's amount, or says why it cannot be paid.
    async fn pay(&self, reservation: &Reservation) -> Result<(), AppError> {
        match self
            .payment
            .authorise(reservation.id, reservation.user_id, reservation.amount)
            .await
        {
            Ok(()) => Ok(()),
            Err(PaymentError::Declined(reason)) => Err(AppError::PaymentDeclined(reason)),
            Err(PaymentError::Unavailable {
                detail,
                retry_after_secs,
                maybe_authorised,
            }) => {
                // Payment may still authorise a request it got but did not
                // answer in time; that authorisation must not stand.
                if maybe_authorised {
                    self.abandon_payment(reservation);
                }
                Err(AppError::PaymentUnavailable {
                    detail,
                    retry_after_secs,
                })
            }
        }
    }

    fn abandon_payment(&self, reservation: &Reservation) {
        self.payment
            .abandon(reservation.id, reservation.user_id, reservation.amount);
    }

    /// Expires what is still pending past its deadline, until shutdown.
    /// Several replicas may do this at once: each booking changes once,
    /// guarded by its version.
    pub async fn expire_overdue(self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        let mut outage = runtime::retry::Outage::new("reservation-deadlines");
        while !shutdown.is_fired() {
            match self.expire_some().await {
                Ok(expired) => {
                    outage.recovered();
                    if expired < EXPIRY_BATCH as usize {
                        tokio::select! {
                            () = tokio::time::sleep(EXPIRY_EVERY) => {}
                            () = shutdown.wait() => {}
                        }
                    }
                }
                Err(error) => {
                    if !outage.wait(&error, &mut shutdown).await {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Expires one round of overdue bookings in one transaction: a
    /// transaction per booking made the sweep pay for a commit each (105
    /// expiries/s on PostgreSQL under load). Rows are taken in id order so
    /// that two replicas sweeping at once lock them in the same order.
    async fn expire_some(&self) -> anyhow::Result<usize> {
        let now = kernel::now();
        let overdue = self.store.overdue(now, EXPIRY_BATCH).await?;
        let count = overdue.len();
        if count == 0 {
            return Ok(0);
        }
        let reason = format!(
            "it was not confirmed within {} seconds",
            self.deadline.as_secs()
        );
        let mut tx = self.store.store().begin().await?;
        let mut bookings = Bookings::default();
        self.store
            .read_into(&mut tx, &mut bookings, overdue.iter().copied())
            .await?;
        let mut expired = 0u64;
        for id in overdue {
            let command = Command::Expire {
                reason: reason.clone(),
                at: now,
            };
            match self.execute(&mut bookings, id, command, None) {
                Ok(_) => expired += 1,
                Err(AppError::Infrastructure(error)) => return Err(error),
                Err(error) => {
                    tracing::warn!(reservation = %id, %error, "an overdue booking could not be expired")
                }
            }
        }
        self.store.write(&mut tx, bookings).await?;
        self.store.store().commit(tx).await?;
        tracing::info!(expired, "overdue bookings expired");
        metrics::counter!("boxoffice_reservations_expired_total").increment(expired);
        Ok(count)
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
        let command = Command::Cancel { at: kernel::now() };
        self.on_behalf_of(id, caller, admin, command).await
    }

    /// Ends a bike rental on behalf of `caller` (admins may end anyone's).
    pub async fn return_rental(
        &self,
        id: ReservationId,
        caller: UserId,
        admin: bool,
    ) -> Result<Reservation, AppError> {
        let command = Command::Return { at: kernel::now() };
        self.on_behalf_of(id, caller, admin, command).await
    }

    /// A customer's command on their own booking; someone else's is not
    /// found, whoever asks, unless an admin asks.
    async fn on_behalf_of(
        &self,
        id: ReservationId,
        caller: UserId,
        admin: bool,
        command: Command,
    ) -> Result<Reservation, AppError> {
        let mut tx = self.store.store().begin().await?;
        let mut bookings = Bookings::default();
        self.store.read_into(&mut tx, &mut bookings, [id]).await?;
        let owned = bookings
            .get(id)
            .is_some_and(|(r, _)| admin || r.user_id == caller);
        if !owned {
            return Err(ReservationError::NotFound.into());
        }
        let reservation = self.execute(&mut bookings, id, command, None)?;
        self.store.write(&mut tx, bookings).await?;
        self.store.store().commit(tx).await?;
        Ok(reservation)
    }

    /// A listing was withdrawn from sale: no new bookings of it, and with
    /// `cancel_reservations` every live booking of it is cancelled (and so
    /// refunded and released by the rest of the saga), inside the
    /// consumer's transaction.
    pub async fn on_listing_withdrawn(
        &self,
        tx: &mut Tx,
        listing: ListingId,
        cancel_reservations: bool,
        bookings: &mut Bookings,
        cause: &Envelope,
    ) -> anyhow::Result<()> {
        self.store.withdraw_listing(tx, listing).await?;
        if !cancel_reservations {
            return Ok(());
        }
        let live = self.store.live_for_listing(tx, listing).await?;
        let count = live.len();
        self.store
            .read_into(tx, bookings, live.iter().copied())
            .await?;
        for id in live {
            match self.execute(
                bookings,
                id,
                Command::Cancel { at: kernel::now() },
                Some(cause),
            ) {
                Ok(_) => {}
                // Ended meanwhile (rejected, returned): nothing to cancel.
                Err(AppError::Domain(error)) => {
                    tracing::info!(reservation = %id, %error, "not cancelled with its listing")
                }
                Err(error) => return Err(anyhow::anyhow!(error)),
            }
        }
        tracing::info!(%listing, count, "bookings of a withdrawn listing cancelled");
        Ok(())
    }

    /// Applies a saga step (catalog's or the wallet's answer) to the
    /// consumer's unit of work.
    pub async fn on_saga_answer(
        &self,
        tx: &mut Tx,
        bookings: &mut Bookings,
        id: ReservationId,
        command: Command,
        cause: &Envelope,
    ) -> anyhow::Result<()> {
        self.store.read_into(tx, bookings, [id]).await?;
        match self.execute(bookings, id, command, Some(cause)) {
            Ok(_) => Ok(()),
            // An answer about a reservation this service never stored cannot
            // be acted on; say so and move on rather than block the stream.
            Err(AppError::Domain(ReservationError::NotFound)) => {
                tracing::warn!(reservation = %id, event = %cause.id, "an answer about an unknown reservation");
                Ok(())
            }
            Err(error) => Err(anyhow::anyhow!(error)),
        }
    }

    /// Moves a reservation `bookings` has read on by `command`, in memory:
    /// decide, apply, and note its events; [`ReservationStore::write`]
    /// stores the unit of work.
    fn execute(
        &self,
        bookings: &mut Bookings,
        id: ReservationId,
        command: Command,
        cause: Option<&Envelope>,
    ) -> Result<Reservation, AppError> {
        let Some((current, version)) = bookings.get(id) else {
            return Err(ReservationError::NotFound.into());
        };
        let events = domain::decide(Some(current), command)?;
        if events.is_empty() {
            return Ok(current.clone());
        }
        let next = fold(Some(current.clone()), &events).expect("an existing reservation stays");
        let first_version = u64::try_from(version).unwrap_or_default() + 1;
        let outgoing = integration_events(&next, &events, cause, first_version);
        record_settled(&next, &events);
        bookings.change(next.clone(), events.len(), outgoing)?;
        Ok(next)
    }

    pub async fn find(&self, id: ReservationId) -> anyhow::Result<Option<Reservation>> {
        self.store.find(id).await
    }

    /// The reservation as `caller` may see it: their own, or anyone's for
    /// an admin; someone else's is as if it did not exist.
    pub async fn find_for(
        &self,
        id: ReservationId,
        caller: UserId,
        admin: bool,
    ) -> anyhow::Result<Option<Reservation>> {
        Ok(self
            .find(id)
            .await?
            .filter(|r| admin || r.user_id == caller))
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

/// How long the booking took to settle, when these events settle it: the
/// saga's latency as customers feel it. Recorded before the transaction
/// commits, so a batch retried after a passing fault may count a booking
/// twice; a latency histogram bears that.
fn record_settled(reservation: &Reservation, events: &[Event]) {
    for event in events {
        let (outcome, at) = match event {
            Event::Confirmed { at } => ("confirmed", at),
            Event::Rejected { at, .. } => ("rejected", at),
            _ => continue,
        };
        let took = (*at - reservation.created_at).as_seconds_f64().max(0.0);
        metrics::histogram!(runtime::http::BOOKING_SETTLE_SECONDS, "outcome" => outcome)
            .record(took);
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
        seats: r.seats.clone(),
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
                Event::Expired { reason, at } => Some(ReservationEvent::ReservationExpired {
                    booking: booking.clone(),
                    reason: reason.clone(),
                    expired_at: *at,
                }),
                Event::Returned { at } => Some(ReservationEvent::ReservationReturned {
                    booking: booking.clone(),
                    returned_at: *at,
                }),
                Event::CancellationRequested { .. } | Event::Held { .. } | Event::Paid { .. } => {
                    None
                }
            };
            public.map(|event| {
                let mut outgoing = event.outgoing(cause);
                outgoing.envelope = outgoing.envelope.at_version(version);
                outgoing
            })
        })
        .collect()
}

/// New bookings, stored many to a transaction (group commit): SQLite has
/// one writer, and a transaction per booking made every booking pay for
/// BEGIN and COMMIT while the others queued for the connection.
///
/// Each batch first waits (at most [`PACING_PATIENCE`]) while the bus's
/// consumers are far behind: under overload the door would otherwise take
/// bookings faster than the saga and the read models can follow, and a
/// booking accepted would be confirmed seconds later. Waiting here makes
/// the door's pace the consumers' pace; the wait shows as accept latency.
#[derive(Clone, Debug)]
struct Placements {
    writer: GroupCommit<Placement, bool>,
}

#[derive(Debug)]
struct Placement {
    reservation: Reservation,
    outgoing: Vec<Outgoing>,
    idempotency_key: Option<String>,
}

/// Most bookings in one transaction.
const PLACEMENT_BATCH: usize = 256;
/// The longest a batch of bookings waits for consumers that are behind: a
/// consumer stopped by a fault, or rebuilding a read model from the
/// start, slows the door by at most this much a batch and never stops it.
/// 250 ms doubled a rush's answer p99 for no gain in the closed loop
/// (measured: `docs/benchmarks.md`).
const PACING_PATIENCE: Duration = Duration::from_millis(100);

impl Placements {
    fn start(store: ReservationStore, bus: Arc<dyn EventBus>) -> Placements {
        let writer = GroupCommit::start("placements", PLACEMENT_BATCH, move |batch| {
            let (store, bus) = (store.clone(), bus.clone());
            async move {
                let paced = std::time::Instant::now();
                bus.until_consumers_keep_up(PACING_PATIENCE).await;
                metrics::histogram!("boxoffice_pacing_wait_seconds", "writer" => "placements")
                    .record(paced.elapsed().as_secs_f64());
                store_batch(&store, &batch).await
            }
        });
        Placements { writer }
    }

    /// Stores the booking with its events; `false` when its idempotency key
    /// was already used.
    async fn store(
        &self,
        reservation: Reservation,
        outgoing: Vec<Outgoing>,
        idempotency_key: Option<String>,
    ) -> anyhow::Result<bool> {
        self.writer
            .submit(Placement {
                reservation,
                outgoing,
                idempotency_key,
            })
            .await
    }
}

async fn store_batch(store: &ReservationStore, batch: &[Placement]) -> anyhow::Result<Vec<bool>> {
    let mut tx = store.store().begin().await?;
    let placements: Vec<_> = batch
        .iter()
        .map(|p| (&p.reservation, p.idempotency_key.as_deref()))
        .collect();
    // The batch's bookings in one multi-row insert.
    let stored = store.insert_all(&mut tx, &placements).await?;
    let outgoing: Vec<Outgoing> = batch
        .iter()
        .zip(&stored)
        .filter(|(_, stored)| **stored)
        .flat_map(|(placement, _)| placement.outgoing.iter().cloned())
        .collect();
    // The batch's events in one multi-row insert, in placement order.
    outbox::append(&mut tx, &outgoing).await?;
    store.store().commit(tx).await?;
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use contracts::catalog::ListingKind;

    use super::*;

    fn placed() -> (Reservation, Vec<Event>) {
        let listing = ListingSnapshot {
            id: ListingId::new(),
            kind: ListingKind::Movie,
            title: "LALALand".into(),
            price: Money::parse(12_000).unwrap(),
            seats: None,
            sections: Vec::new(),
            withdrawn: false,
        };
        let events = domain::decide(
            None,
            Command::Place {
                id: ReservationId::new(),
                user_id: UserId::new(),
                listing,
                order: Order::Tickets(crate::domain::Quantity::parse(2).unwrap()),
                payment_method: PaymentMethod::Card,
                at: kernel::now(),
                deadline: kernel::now(),
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
