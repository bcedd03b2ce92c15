//! The settlement policy: what the saga decided about a booking becomes a
//! settlement of its payment (capture, void or refund).

use async_trait::async_trait;
use contracts::reservation::ReservationEvent;
use contracts::IntegrationEvent;
use kernel::Envelope;
use runtime::consumer::EventHandler;
use sqlx::{Any, Transaction};

use crate::app::Payments;
use crate::domain::BookingOutcome;

pub struct SettlementPolicy {
    payments: Payments,
}

impl SettlementPolicy {
    pub fn new(payments: Payments) -> SettlementPolicy {
        SettlementPolicy { payments }
    }
}

/// The events this handler acts on (how bookings end); the others pass it by.
const SETTLES: &[&str] = &[
    "boxoffice.reservation.confirmed",
    "boxoffice.reservation.rejected",
    "boxoffice.reservation.expired",
    "boxoffice.reservation.cancelled",
];

#[async_trait]
impl EventHandler for SettlementPolicy {
    fn wants(&self, event: &Envelope) -> bool {
        SETTLES.contains(&event.event_type.as_str())
    }

    async fn handle(
        &self,
        tx: &mut Transaction<'static, Any>,
        event: &Envelope,
    ) -> anyhow::Result<()> {
        let Some(event) = ReservationEvent::from_envelope(event)? else {
            return Ok(());
        };
        let outcome = match &event {
            // A returned rental was paid in full when it was confirmed.
            ReservationEvent::ReservationPlaced { .. }
            | ReservationEvent::ReservationReturned { .. } => return Ok(()),
            ReservationEvent::ReservationConfirmed { .. } => BookingOutcome::Confirmed,
            ReservationEvent::ReservationRejected { .. }
            | ReservationEvent::ReservationExpired { .. } => BookingOutcome::Abandoned,
            ReservationEvent::ReservationCancelled { .. } => BookingOutcome::Cancelled,
        };
        self.payments
            .on_booking(tx, event.booking().reservation_id, outcome)
            .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_event_it_wants_is_one_that_is_published() {
        for event_type in super::SETTLES {
            assert!(contracts::is_published_type(event_type), "{event_type}");
        }
    }
}
