//! What customers are told, and when. Pure.

use contracts::catalog::ListingKind;
use contracts::payment::PaymentEvent;
use contracts::reservation::ReservationEvent;
use kernel::ids::{NotificationId, ReservationId, UserId};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Reserved,
    Rejected,
    Expired,
    Cancelled,
    Refunded,
    Returned,
}

impl MessageKind {
    pub const ALL: [MessageKind; 6] = [
        MessageKind::Reserved,
        MessageKind::Rejected,
        MessageKind::Expired,
        MessageKind::Cancelled,
        MessageKind::Refunded,
        MessageKind::Returned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Reserved => "reserved",
            MessageKind::Rejected => "rejected",
            MessageKind::Expired => "expired",
            MessageKind::Cancelled => "cancelled",
            MessageKind::Refunded => "refunded",
            MessageKind::Returned => "returned",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: NotificationId,
    pub user_id: UserId,
    pub reservation_id: ReservationId,
    pub kind: MessageKind,
    pub text: String,
    pub at: OffsetDateTime,
}

/// The message for an event, if the customer should hear about it. A
/// booking only placed is not news yet: its outcome is.
pub fn message_for(event: &ReservationEvent) -> Option<Message> {
    let booking = event.booking();
    // What was booked, in the words of its product line.
    let tickets = match (booking.listing_kind, booking.seats.as_slice()) {
        (ListingKind::Bike, _) => "a rental".to_owned(),
        (_, [seat]) => format!("seat {seat}"),
        (_, []) if booking.quantity == 1 => "1 ticket".to_owned(),
        (_, []) => format!("{} tickets", booking.quantity),
        (_, seats) => format!("seats {}", kernel::seat::list(seats)),
    };
    let (kind, text, at) = match event {
        ReservationEvent::ReservationPlaced { .. } => return None,
        ReservationEvent::ReservationConfirmed { confirmed_at, .. } => (
            MessageKind::Reserved,
            format!(
                "Your reservation of {tickets} for {} is confirmed (amount {}).",
                booking.listing_title, booking.amount
            ),
            *confirmed_at,
        ),
        ReservationEvent::ReservationRejected {
            reason,
            rejected_at,
            ..
        } => (
            MessageKind::Rejected,
            format!(
                "Your reservation of {tickets} for {} was cancelled automatically: {reason}.",
                booking.listing_title
            ),
            *rejected_at,
        ),
        ReservationEvent::ReservationExpired {
            reason, expired_at, ..
        } => (
            MessageKind::Expired,
            format!(
                "Your reservation of {tickets} for {} expired and was cancelled: {reason}.",
                booking.listing_title
            ),
            *expired_at,
        ),
        ReservationEvent::ReservationCancelled { cancelled_at, .. } => (
            MessageKind::Cancelled,
            format!(
                "Your reservation of {tickets} for {} is cancelled.",
                booking.listing_title
            ),
            *cancelled_at,
        ),
        ReservationEvent::ReservationReturned { returned_at, .. } => (
            MessageKind::Returned,
            format!(
                "{} is back, thank you: your rental has ended.",
                booking.listing_title
            ),
            *returned_at,
        ),
    };
    Some(Message {
        id: NotificationId::new(),
        user_id: booking.user_id,
        reservation_id: booking.reservation_id,
        kind,
        text,
        at,
    })
}

/// The message for a payment event, if the customer should hear about it.
/// A booking's refund is news (its money comes back); the other steps are
/// told through the booking's own outcome, and a payment for no booking
/// (buying points) has no reservation to name.
pub fn message_for_payment(event: &PaymentEvent) -> Option<Message> {
    let PaymentEvent::PaymentRefunded {
        charge,
        refunded_at,
    } = event
    else {
        return None;
    };
    let reservation_id = charge.reservation_id?;
    Some(Message {
        id: NotificationId::new(),
        user_id: charge.user_id,
        reservation_id,
        kind: MessageKind::Refunded,
        text: format!(
            "Your payment of {} for reservation {reservation_id} was refunded.",
            charge.amount
        ),
        at: *refunded_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::payment::Charge;
    use contracts::reservation::{Booking, PaymentMethod};
    use kernel::ids::ListingId;
    use kernel::ids::PaymentId;
    use kernel::Money;

    fn booking(quantity: u32) -> Booking {
        Booking {
            reservation_id: ReservationId::new(),
            user_id: UserId::new(),
            listing_id: ListingId::new(),
            listing_title: "LALALand".into(),
            listing_kind: ListingKind::Movie,
            quantity,
            seats: Vec::new(),
            amount: Money::parse(450_000).unwrap(),
            payment_method: PaymentMethod::Card,
        }
    }

    fn at() -> OffsetDateTime {
        time::macros::datetime!(2026-11-21 10:00 UTC)
    }

    #[test]
    fn a_placed_booking_sends_nothing_yet() {
        let event = ReservationEvent::ReservationPlaced {
            booking: booking(45),
            placed_at: at(),
        };
        assert_eq!(message_for(&event), None);
    }

    #[test]
    fn a_confirmed_booking_is_announced_as_reserved() {
        let event = ReservationEvent::ReservationConfirmed {
            booking: booking(45),
            confirmed_at: at(),
        };
        let message = message_for(&event).unwrap();
        assert_eq!(message.kind, MessageKind::Reserved);
        assert!(message
            .text
            .contains("45 tickets for LALALand is confirmed"));
    }

    #[test]
    fn a_rejected_booking_says_why() {
        let event = ReservationEvent::ReservationRejected {
            booking: booking(57),
            reason: "sold out: 57 tickets requested, 55 remaining".into(),
            rejected_at: at(),
        };
        let message = message_for(&event).unwrap();
        assert_eq!(message.kind, MessageKind::Rejected);
        assert!(message.text.contains("55 remaining"));
    }

    #[test]
    fn a_cancelled_booking_is_announced() {
        let event = ReservationEvent::ReservationCancelled {
            booking: booking(1),
            cancelled_at: at(),
        };
        let message = message_for(&event).unwrap();
        assert_eq!(message.kind, MessageKind::Cancelled);
        assert!(message.text.contains("1 ticket for LALALand is cancelled"));
    }

    fn charge(reservation_id: Option<ReservationId>) -> Charge {
        Charge {
            payment_id: PaymentId::new(),
            user_id: UserId::new(),
            amount: Money::parse(15_000).unwrap(),
            reservation_id,
        }
    }

    #[test]
    fn a_refunded_booking_payment_is_announced_with_its_amount() {
        let reservation = ReservationId::new();
        let event = PaymentEvent::PaymentRefunded {
            charge: charge(Some(reservation)),
            refunded_at: at(),
        };
        let message = message_for_payment(&event).unwrap();
        assert_eq!(message.kind, MessageKind::Refunded);
        assert_eq!(message.reservation_id, reservation);
        assert_eq!(
            message.text,
            format!("Your payment of 15000 for reservation {reservation} was refunded.")
        );
        assert_eq!(message.at, at());
    }

    #[test]
    fn other_payment_steps_and_payments_for_no_booking_send_nothing() {
        let booking = charge(Some(ReservationId::new()));
        let silent = [
            PaymentEvent::PaymentAuthorised {
                charge: booking.clone(),
                authorised_at: at(),
            },
            PaymentEvent::PaymentCaptured {
                charge: booking.clone(),
                captured_at: at(),
            },
            PaymentEvent::PaymentVoided {
                charge: booking.clone(),
                voided_at: at(),
            },
            PaymentEvent::PaymentDeclined {
                charge: booking,
                reason: "insufficient funds".into(),
                declined_at: at(),
            },
            PaymentEvent::PaymentRefunded {
                charge: charge(None),
                refunded_at: at(),
            },
        ];
        for event in silent {
            assert_eq!(message_for_payment(&event), None, "{event:?}");
        }
    }
}
