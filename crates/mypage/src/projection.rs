//! The my-page row a reservation event leads to. Every reservation event
//! carries the whole booking, so each one yields the complete row; events
//! of one reservation arrive in order, so the last one wins.

use contracts::reservation::{Booking, ReservationEvent};
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MyReservationRow {
    pub booking: Booking,
    pub status: &'static str,
    pub updated_at: OffsetDateTime,
}

pub fn project(event: &ReservationEvent) -> MyReservationRow {
    let (status, updated_at) = match event {
        ReservationEvent::ReservationPlaced { placed_at, .. } => ("pending", *placed_at),
        ReservationEvent::ReservationConfirmed { confirmed_at, .. } => ("confirmed", *confirmed_at),
        ReservationEvent::ReservationRejected { rejected_at, .. } => ("rejected", *rejected_at),
        ReservationEvent::ReservationCancelled { cancelled_at, .. } => ("cancelled", *cancelled_at),
    };
    MyReservationRow {
        booking: event.booking().clone(),
        status,
        updated_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::catalog::ListingKind;
    use contracts::reservation::PaymentMethod;
    use kernel::ids::{ListingId, ReservationId, UserId};
    use kernel::Money;

    fn booking() -> Booking {
        Booking {
            reservation_id: ReservationId::new(),
            user_id: UserId::new(),
            listing_id: ListingId::new(),
            listing_title: "LALALand".into(),
            listing_kind: ListingKind::Movie,
            quantity: 45,
            amount: Money::parse(450_000).unwrap(),
            payment_method: PaymentMethod::Card,
        }
    }

    #[test]
    fn each_event_sets_the_status_it_stands_for() {
        let at = time::macros::datetime!(2026-11-21 10:00 UTC);
        let b = booking();
        let cases = [
            (
                ReservationEvent::ReservationPlaced {
                    booking: b.clone(),
                    placed_at: at,
                },
                "pending",
            ),
            (
                ReservationEvent::ReservationConfirmed {
                    booking: b.clone(),
                    confirmed_at: at,
                },
                "confirmed",
            ),
            (
                ReservationEvent::ReservationRejected {
                    booking: b.clone(),
                    reason: "sold out".into(),
                    rejected_at: at,
                },
                "rejected",
            ),
            (
                ReservationEvent::ReservationCancelled {
                    booking: b.clone(),
                    cancelled_at: at,
                },
                "cancelled",
            ),
        ];
        for (event, status) in cases {
            let row = project(&event);
            assert_eq!(row.status, status);
            assert_eq!(row.booking, b);
        }
    }
}
