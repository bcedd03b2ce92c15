//! The settlement policy: what the saga decided about a booking becomes a
//! settlement of its payment (capture, void or refund).

use async_trait::async_trait;
use contracts::reservation::ReservationEvent;
use contracts::IntegrationEvent;
use kernel::Envelope;
use runtime::consumer::{handling, EventHandler};
use runtime::store::Tx;
use runtime::telemetry;

use crate::app::{Decision, Payments};
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

/// The consumer group that settles bookings' payments.
pub const GROUP: &str = "payment.settlement";

/// What the saga decided about the booking `event` announces, if it
/// ended; its trace is the current span's.
fn decision(event: &Envelope) -> anyhow::Result<Option<Decision>> {
    let Some(event) = ReservationEvent::from_envelope(event)? else {
        return Ok(None);
    };
    let outcome = match &event {
        // A returned rental was paid in full when it was confirmed.
        ReservationEvent::ReservationPlaced { .. }
        | ReservationEvent::ReservationReturned { .. } => return Ok(None),
        ReservationEvent::ReservationConfirmed { .. } => BookingOutcome::Confirmed,
        ReservationEvent::ReservationRejected { .. }
        | ReservationEvent::ReservationExpired { .. } => BookingOutcome::Abandoned,
        ReservationEvent::ReservationCancelled { .. } => BookingOutcome::Cancelled,
    };
    Ok(Some(Decision {
        reservation: event.booking().reservation_id,
        outcome,
        traceparent: telemetry::traceparent(),
    }))
}

#[async_trait]
impl EventHandler for SettlementPolicy {
    fn wants(&self, event: &Envelope) -> bool {
        SETTLES.contains(&event.event_type.as_str())
    }

    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> anyhow::Result<()> {
        self.handle_batch(tx, &[event], GROUP).await
    }

    /// Each event is read in its own span (the settlement continues that
    /// trace); the batch's payments are read and written at once.
    async fn handle_batch(
        &self,
        tx: &mut Tx,
        events: &[&Envelope],
        group: &str,
    ) -> anyhow::Result<()> {
        let mut decisions = Vec::new();
        for event in events {
            let decided = handling(group, event, || decision(event))?;
            decisions.extend(decided);
        }
        self.payments.on_bookings(tx, &decisions).await
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

    /// `contracts/consumers/payment.json` states what this context reads
    /// from each event it wants, checked against the producers' schemas
    /// by the contracts crate; it must name exactly these events.
    #[test]
    fn its_published_expectations_name_exactly_the_events_it_wants() {
        let expectations = contracts::expectations::Consumer::parse(include_str!(
            "../../../../contracts/consumers/payment.json"
        ))
        .unwrap();
        let named: std::collections::BTreeSet<&str> =
            expectations.event_types().into_iter().collect();
        assert_eq!(named, super::SETTLES.iter().copied().collect());
    }
}
