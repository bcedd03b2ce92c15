//! The saga policy: catalog's and the wallet's answers move reservations
//! on, and catalog's listing events keep the local listing replica current.

use async_trait::async_trait;
use contracts::catalog::{CapacityKind, CatalogEvent};
use contracts::wallet::WalletEvent;
use contracts::IntegrationEvent;
use kernel::ids::ReservationId;
use kernel::Envelope;
use runtime::consumer::{handling_async, EventHandler};
use runtime::store::Tx;

use crate::adapters::sql::Bookings;
use crate::app::Reservations;
use crate::domain::{Command, ListingSnapshot};

pub struct SagaPolicy {
    reservations: Reservations,
}

impl SagaPolicy {
    pub fn new(reservations: Reservations) -> SagaPolicy {
        SagaPolicy { reservations }
    }
}

/// The consumer group the saga's answers are read by.
pub const GROUP: &str = "reservation.saga";

/// The events this handler acts on (catalog's and the wallet's answers, and listing changes); the others pass it by.
const ANSWERS: &[&str] = &[
    "boxoffice.catalog.listing-registered",
    "boxoffice.catalog.listing-updated",
    "boxoffice.catalog.listing-withdrawn",
    "boxoffice.catalog.tickets-reserved",
    "boxoffice.catalog.inventory-rejected",
    "boxoffice.wallet.points-spent",
    "boxoffice.wallet.points-refused",
];

#[async_trait]
impl EventHandler for SagaPolicy {
    fn wants(&self, event: &Envelope) -> bool {
        ANSWERS.contains(&event.event_type.as_str())
    }

    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> anyhow::Result<()> {
        // One answer is a batch of one.
        self.handle_batch(tx, &[event], GROUP).await
    }

    /// The batch's reservations are read at once (and locked, in id
    /// order), each answer moves them on in memory in its own span, and
    /// what they changed is written once.
    async fn handle_batch(
        &self,
        tx: &mut Tx,
        events: &[&Envelope],
        group: &str,
    ) -> anyhow::Result<()> {
        let mut bookings = Bookings::default();
        // Unreadable events are reported by `apply`, in their turn.
        let answered = events
            .iter()
            .filter_map(|event| answered_reservation(event).ok().flatten());
        self.reservations
            .store()
            .read_into(tx, &mut bookings, answered)
            .await?;
        for event in events {
            handling_async(group, event, self.apply(tx, &mut bookings, event)).await?;
        }
        self.reservations.store().write(tx, bookings).await
    }
}

/// The reservation an event answers about, if it is a saga answer.
fn answered_reservation(event: &Envelope) -> anyhow::Result<Option<ReservationId>> {
    if let Some(wallet_event) = WalletEvent::from_envelope(event)? {
        return Ok(match wallet_event {
            WalletEvent::PointsSpent { reservation_id, .. }
            | WalletEvent::PointsRefused { reservation_id, .. } => Some(reservation_id),
            _ => None,
        });
    }
    Ok(match CatalogEvent::from_envelope(event)? {
        Some(
            CatalogEvent::TicketsReserved { reservation_id, .. }
            | CatalogEvent::InventoryRejected { reservation_id, .. },
        ) => Some(reservation_id),
        _ => None,
    })
}

impl SagaPolicy {
    async fn apply(
        &self,
        tx: &mut Tx,
        bookings: &mut Bookings,
        event: &Envelope,
    ) -> anyhow::Result<()> {
        if let Some(wallet_event) = WalletEvent::from_envelope(event)? {
            return self.on_wallet(tx, bookings, wallet_event, event).await;
        }
        let Some(catalog_event) = CatalogEvent::from_envelope(event)? else {
            return Ok(());
        };
        let at = kernel::now();
        match catalog_event {
            CatalogEvent::ListingRegistered {
                listing_id,
                kind,
                title,
                price,
                capacity,
                ..
            } => {
                let (seats, sections) = seat_map(capacity);
                let listing = ListingSnapshot {
                    id: listing_id,
                    kind,
                    title,
                    price,
                    seats,
                    sections,
                    withdrawn: false,
                };
                self.reservations
                    .store()
                    .remember_listing(tx, &listing)
                    .await
            }
            CatalogEvent::ListingUpdated {
                listing_id,
                title,
                price,
                capacity,
                ..
            } => {
                let (seats, sections) = seat_map(capacity);
                self.reservations
                    .store()
                    .update_listing(tx, listing_id, &title, price, seats.as_deref(), &sections)
                    .await
            }
            CatalogEvent::ListingWithdrawn {
                listing_id,
                cancel_reservations,
                ..
            } => {
                self.reservations
                    .on_listing_withdrawn(tx, listing_id, cancel_reservations, bookings, event)
                    .await
            }
            CatalogEvent::TicketsReserved { reservation_id, .. } => {
                let command = Command::ConfirmHold { at };
                self.reservations
                    .on_saga_answer(tx, bookings, reservation_id, command, event)
                    .await
            }
            CatalogEvent::InventoryRejected {
                reservation_id,
                reason,
                ..
            } => {
                let command = Command::RejectHold {
                    reason: reason.to_string(),
                    at,
                };
                self.reservations
                    .on_saga_answer(tx, bookings, reservation_id, command, event)
                    .await
            }
            // Releases need no answer: the reservation is already cancelled.
            CatalogEvent::InventoryReleased { .. }
            | CatalogEvent::InventorySold { .. }
            | CatalogEvent::ScreenRegistered { .. }
            | CatalogEvent::ScreenAssigned { .. } => Ok(()),
        }
    }

    /// The wallet's answer to a booking paid with points.
    async fn on_wallet(
        &self,
        tx: &mut Tx,
        bookings: &mut Bookings,
        wallet_event: WalletEvent,
        event: &Envelope,
    ) -> anyhow::Result<()> {
        let at = kernel::now();
        let (reservation_id, command) = match wallet_event {
            WalletEvent::PointsSpent { reservation_id, .. } => {
                (reservation_id, Command::ConfirmPayment { at })
            }
            WalletEvent::PointsRefused {
                reservation_id,
                reason,
                ..
            } => (reservation_id, Command::RefusePayment { reason, at }),
            // Points earned, bought, given back or withdrawn do not move a
            // booking on.
            WalletEvent::PointsEarned { .. }
            | WalletEvent::PointsWithdrawn { .. }
            | WalletEvent::PointsPurchased { .. }
            | WalletEvent::PointsRefunded { .. } => return Ok(()),
        };
        self.reservations
            .on_saga_answer(tx, bookings, reservation_id, command, event)
            .await
    }
}

/// The seats on sale and their sections, for a seated listing.
fn seat_map(
    capacity: CapacityKind,
) -> (
    Option<Vec<kernel::SeatLabel>>,
    Vec<contracts::catalog::SeatSection>,
) {
    match capacity {
        CapacityKind::Quota { .. } | CapacityKind::Unit => (None, Vec::new()),
        CapacityKind::Seated {
            seats, sections, ..
        } => (Some(seats), sections),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_event_it_wants_is_one_that_is_published() {
        for event_type in super::ANSWERS {
            assert!(contracts::is_published_type(event_type), "{event_type}");
        }
    }

    /// `contracts/consumers/reservation.json` states what this context reads
    /// from each event it wants, checked against the producers' schemas
    /// by the contracts crate; it must name exactly these events.
    #[test]
    fn its_published_expectations_name_exactly_the_events_it_wants() {
        let expectations = contracts::expectations::Consumer::parse(include_str!(
            "../../../../contracts/consumers/reservation.json"
        ))
        .unwrap();
        let named: std::collections::BTreeSet<&str> =
            expectations.event_types().into_iter().collect();
        assert_eq!(named, super::ANSWERS.iter().copied().collect());
    }
}
