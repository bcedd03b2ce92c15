//! The my-page row a reservation event leads to. Every reservation event
//! carries the whole booking, so each one yields the complete row.
//!
//! The row must never go backwards: a late `confirmed` (a redelivery, or a
//! re-send after a failed publish) must not overwrite `cancelled`. Each
//! event carries the version it brought the reservation to, and a row only
//! takes an event newer than the one it holds.

use contracts::reservation::{Booking, ReservationEvent};
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MyReservationRow {
    pub booking: Booking,
    pub status: &'static str,
    pub updated_at: OffsetDateTime,
    /// The reservation's version this row shows (0: an event from before
    /// versions were recorded, which always applies).
    pub version: u64,
}

/// Whether an event at `incoming` replaces a row at `held`.
pub fn supersedes(held: u64, incoming: u64) -> bool {
    incoming == 0 || incoming > held
}

/// The row after `event` (at `version`), given the row held so far.
pub fn apply(
    held: Option<MyReservationRow>,
    event: &ReservationEvent,
    version: u64,
) -> Option<MyReservationRow> {
    match held {
        Some(row) if !supersedes(row.version, version) => Some(row),
        _ => Some(project(event, version)),
    }
}

pub fn project(event: &ReservationEvent, version: u64) -> MyReservationRow {
    let (status, updated_at) = match event {
        ReservationEvent::ReservationPlaced { placed_at, .. } => ("pending", *placed_at),
        ReservationEvent::ReservationConfirmed { confirmed_at, .. } => ("confirmed", *confirmed_at),
        ReservationEvent::ReservationRejected { rejected_at, .. } => ("rejected", *rejected_at),
        ReservationEvent::ReservationExpired { expired_at, .. } => ("rejected", *expired_at),
        ReservationEvent::ReservationCancelled { cancelled_at, .. } => ("cancelled", *cancelled_at),
    };
    MyReservationRow {
        booking: event.booking().clone(),
        status,
        updated_at,
        version,
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
            seats: Vec::new(),
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
            let row = project(&event, 1);
            assert_eq!(row.status, status);
            assert_eq!(row.booking, b);
        }
    }

    fn lifecycle() -> Vec<(ReservationEvent, u64)> {
        let at = time::macros::datetime!(2026-11-21 10:00 UTC);
        let b = booking();
        vec![
            (
                ReservationEvent::ReservationPlaced {
                    booking: b.clone(),
                    placed_at: at,
                },
                1,
            ),
            (
                ReservationEvent::ReservationConfirmed {
                    booking: b.clone(),
                    confirmed_at: at,
                },
                2,
            ),
            (
                ReservationEvent::ReservationCancelled {
                    booking: b,
                    cancelled_at: at,
                },
                3,
            ),
        ]
    }

    fn fold(order: &[usize]) -> &'static str {
        let events = lifecycle();
        order
            .iter()
            .fold(None, |row, &i| apply(row, &events[i].0, events[i].1))
            .unwrap()
            .status
    }

    #[test]
    fn events_out_of_order_never_move_a_row_backwards() {
        // Every order of placed, confirmed and cancelled ends cancelled.
        for order in [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ] {
            assert_eq!(fold(&order), "cancelled", "{order:?}");
        }
        // A late confirmation after the placement still confirms.
        assert_eq!(fold(&[1, 0]), "confirmed");
        // Redelivering the same event changes nothing.
        assert_eq!(fold(&[0, 1, 1, 0]), "confirmed");
    }

    #[test]
    fn an_event_from_before_versions_always_applies() {
        assert!(supersedes(5, 0));
        assert!(supersedes(1, 2));
        assert!(!supersedes(2, 2));
        assert!(!supersedes(3, 2));
    }
}
