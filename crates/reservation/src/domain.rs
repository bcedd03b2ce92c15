//! The reservation aggregate and its saga decisions, free of I/O.
//!
//! A reservation is placed *pending*; catalog then holds its tickets or
//! rejects it; the reservation is confirmed or rejected accordingly. A
//! confirmed reservation can be cancelled, which gives the tickets back. A
//! cancel that arrives while the reservation is still pending is remembered
//! and carried out the moment catalog answers, so the customer never has to
//! wait for the saga to be able to change their mind.
//!
//! Decisions are `decide(state, command) -> events`; state changes only by
//! `apply(event)`.

use contracts::catalog::ListingKind;
use contracts::reservation::PaymentMethod;
use kernel::ids::{ListingId, ReservationId, UserId};
use kernel::Money;
use time::OffsetDateTime;

/// Most tickets one reservation may take.
pub const MAX_TICKETS_PER_RESERVATION: u32 = 1_000;

/// How many tickets a reservation is for: at least one, at most
/// [`MAX_TICKETS_PER_RESERVATION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(u32);

impl Quantity {
    pub fn parse(value: i64) -> Result<Quantity, ReservationError> {
        match u32::try_from(value) {
            Ok(n) if (1..=MAX_TICKETS_PER_RESERVATION).contains(&n) => Ok(Quantity(n)),
            _ => Err(ReservationError::QuantityOutOfRange(value)),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// What the reservation context knows of a listing (its own replica).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingSnapshot {
    pub id: ListingId,
    pub kind: ListingKind,
    pub title: String,
    pub price: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Confirmed,
    Rejected,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Confirmed => "confirmed",
            Status::Rejected => "rejected",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(value: &str) -> Option<Status> {
        match value {
            "pending" => Some(Status::Pending),
            "confirmed" => Some(Status::Confirmed),
            "rejected" => Some(Status::Rejected),
            "cancelled" => Some(Status::Cancelled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: ReservationId,
    pub user_id: UserId,
    pub listing: ListingSnapshot,
    pub quantity: Quantity,
    pub amount: Money,
    pub payment_method: PaymentMethod,
    pub status: Status,
    pub reason: Option<String>,
    /// The customer asked to cancel while catalog had not answered yet.
    pub cancel_requested: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Place {
        id: ReservationId,
        user_id: UserId,
        listing: ListingSnapshot,
        quantity: Quantity,
        payment_method: PaymentMethod,
        at: OffsetDateTime,
    },
    /// Catalog held the tickets.
    ConfirmHold {
        at: OffsetDateTime,
    },
    /// Catalog could not hold the tickets.
    RejectHold {
        reason: String,
        at: OffsetDateTime,
    },
    Cancel {
        at: OffsetDateTime,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Placed(Reservation),
    Confirmed { at: OffsetDateTime },
    Rejected { reason: String, at: OffsetDateTime },
    CancellationRequested { at: OffsetDateTime },
    Cancelled { at: OffsetDateTime },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReservationError {
    #[error("quantity must be between 1 and {MAX_TICKETS_PER_RESERVATION} (got {0})")]
    QuantityOutOfRange(i64),
    #[error("the amount for {quantity} tickets at {price} each is too large")]
    AmountTooLarge { quantity: u32, price: Money },
    #[error("the reservation already exists")]
    AlreadyPlaced,
    #[error("no such reservation")]
    NotFound,
    #[error("the reservation is already cancelled")]
    AlreadyCancelled,
    #[error("the reservation was rejected ({0}); there is nothing to cancel")]
    NotCancellable(String),
}

/// Decides what happens when `command` meets the reservation's current state.
/// Saga answers that arrive twice or late decide nothing, so redelivered
/// events are harmless even without the inbox.
pub fn decide(
    state: Option<&Reservation>,
    command: Command,
) -> Result<Vec<Event>, ReservationError> {
    match (state, command) {
        (
            None,
            Command::Place {
                id,
                user_id,
                listing,
                quantity,
                payment_method,
                at,
            },
        ) => {
            let amount =
                listing
                    .price
                    .times(quantity.get())
                    .ok_or(ReservationError::AmountTooLarge {
                        quantity: quantity.get(),
                        price: listing.price,
                    })?;
            Ok(vec![Event::Placed(Reservation {
                id,
                user_id,
                listing,
                quantity,
                amount,
                payment_method,
                status: Status::Pending,
                reason: None,
                cancel_requested: false,
                created_at: at,
                updated_at: at,
            })])
        }
        (Some(_), Command::Place { .. }) => Err(ReservationError::AlreadyPlaced),
        (None, _) => Err(ReservationError::NotFound),
        (Some(r), Command::ConfirmHold { at }) => Ok(match r.status {
            Status::Pending if r.cancel_requested => vec![Event::Cancelled { at }],
            Status::Pending => vec![Event::Confirmed { at }],
            _ => vec![],
        }),
        (Some(r), Command::RejectHold { reason, at }) => Ok(match r.status {
            Status::Pending => vec![Event::Rejected { reason, at }],
            _ => vec![],
        }),
        (Some(r), Command::Cancel { at }) => match r.status {
            Status::Confirmed => Ok(vec![Event::Cancelled { at }]),
            Status::Pending if r.cancel_requested => Ok(vec![]),
            Status::Pending => Ok(vec![Event::CancellationRequested { at }]),
            Status::Cancelled => Err(ReservationError::AlreadyCancelled),
            Status::Rejected => Err(ReservationError::NotCancellable(
                r.reason.clone().unwrap_or_else(|| "rejected".to_owned()),
            )),
        },
    }
}

/// Evolves the state by one event.
pub fn apply(state: Option<Reservation>, event: &Event) -> Option<Reservation> {
    match (state, event) {
        (_, Event::Placed(reservation)) => Some(reservation.clone()),
        (Some(mut r), Event::Confirmed { at }) => {
            r.status = Status::Confirmed;
            r.updated_at = *at;
            Some(r)
        }
        (Some(mut r), Event::Rejected { reason, at }) => {
            r.status = Status::Rejected;
            r.reason = Some(reason.clone());
            r.updated_at = *at;
            Some(r)
        }
        (Some(mut r), Event::CancellationRequested { at }) => {
            r.cancel_requested = true;
            r.updated_at = *at;
            Some(r)
        }
        (Some(mut r), Event::Cancelled { at }) => {
            r.status = Status::Cancelled;
            r.updated_at = *at;
            Some(r)
        }
        (None, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> OffsetDateTime {
        time::macros::datetime!(2026-11-21 10:00 UTC)
    }

    fn lalaland(price: i64) -> ListingSnapshot {
        ListingSnapshot {
            id: ListingId::new(),
            kind: ListingKind::Movie,
            title: "LALALand".into(),
            price: Money::parse(price).unwrap(),
        }
    }

    fn place(quantity: i64) -> Command {
        Command::Place {
            id: ReservationId::new(),
            user_id: UserId::new(),
            listing: lalaland(10_000),
            quantity: Quantity::parse(quantity).unwrap(),
            payment_method: PaymentMethod::Card,
            at: at(),
        }
    }

    /// given / when / then over the aggregate.
    struct Scenario {
        state: Option<Reservation>,
    }

    fn given(commands: Vec<Command>) -> Scenario {
        let mut state = None;
        for command in commands {
            for event in decide(state.as_ref(), command).expect("given steps succeed") {
                state = apply(state, &event);
            }
        }
        Scenario { state }
    }

    impl Scenario {
        fn when(
            self,
            command: Command,
        ) -> (Option<Reservation>, Result<Vec<Event>, ReservationError>) {
            let result = decide(self.state.as_ref(), command);
            let mut state = self.state;
            if let Ok(events) = &result {
                for event in events {
                    state = apply(state, event);
                }
            }
            (state, result)
        }
    }

    #[test]
    fn placing_a_reservation_makes_it_pending_and_prices_it() {
        let (state, events) = given(vec![]).when(place(45));
        let events = events.unwrap();
        assert!(matches!(events.as_slice(), [Event::Placed(_)]));
        let reservation = state.unwrap();
        assert_eq!(reservation.status, Status::Pending);
        assert_eq!(reservation.amount, Money::parse(450_000).unwrap());
    }

    #[test]
    fn a_quantity_of_zero_negative_or_absurd_is_refused() {
        assert_eq!(
            Quantity::parse(0),
            Err(ReservationError::QuantityOutOfRange(0))
        );
        assert_eq!(
            Quantity::parse(-4),
            Err(ReservationError::QuantityOutOfRange(-4))
        );
        assert!(Quantity::parse(1_001).is_err());
        assert!(Quantity::parse(i64::MAX).is_err());
        assert_eq!(Quantity::parse(1_000).unwrap().get(), 1_000);
    }

    #[test]
    fn an_amount_that_would_overflow_is_refused() {
        let command = Command::Place {
            id: ReservationId::new(),
            user_id: UserId::new(),
            listing: lalaland(kernel::money::MAX_AMOUNT),
            quantity: Quantity::parse(2).unwrap(),
            payment_method: PaymentMethod::Card,
            at: at(),
        };
        assert!(matches!(
            decide(None, command),
            Err(ReservationError::AmountTooLarge { quantity: 2, .. })
        ));
    }

    #[test]
    fn a_held_reservation_is_confirmed() {
        let (state, events) = given(vec![place(45)]).when(Command::ConfirmHold { at: at() });
        assert_eq!(events.unwrap(), vec![Event::Confirmed { at: at() }]);
        assert_eq!(state.unwrap().status, Status::Confirmed);
    }

    #[test]
    fn a_sold_out_reservation_is_rejected_with_the_reason() {
        let reason = "sold out: 57 tickets requested, 55 remaining".to_owned();
        let (state, events) = given(vec![place(57)]).when(Command::RejectHold {
            reason: reason.clone(),
            at: at(),
        });
        assert_eq!(events.unwrap().len(), 1);
        let state = state.unwrap();
        assert_eq!(state.status, Status::Rejected);
        assert_eq!(state.reason, Some(reason));
    }

    #[test]
    fn a_repeated_saga_answer_decides_nothing() {
        let (_, events) = given(vec![place(1), Command::ConfirmHold { at: at() }])
            .when(Command::ConfirmHold { at: at() });
        assert_eq!(events.unwrap(), vec![]);
        let (_, events) =
            given(vec![place(1), Command::ConfirmHold { at: at() }]).when(Command::RejectHold {
                reason: "late".into(),
                at: at(),
            });
        assert_eq!(events.unwrap(), vec![]);
    }

    #[test]
    fn a_confirmed_reservation_can_be_cancelled() {
        let (state, events) = given(vec![place(45), Command::ConfirmHold { at: at() }])
            .when(Command::Cancel { at: at() });
        assert_eq!(events.unwrap(), vec![Event::Cancelled { at: at() }]);
        assert_eq!(state.unwrap().status, Status::Cancelled);
    }

    #[test]
    fn cancelling_twice_is_a_conflict() {
        let (_, result) = given(vec![
            place(2),
            Command::ConfirmHold { at: at() },
            Command::Cancel { at: at() },
        ])
        .when(Command::Cancel { at: at() });
        assert_eq!(result, Err(ReservationError::AlreadyCancelled));
    }

    #[test]
    fn a_rejected_reservation_cannot_be_cancelled() {
        let (_, result) = given(vec![
            place(2),
            Command::RejectHold {
                reason: "sold out".into(),
                at: at(),
            },
        ])
        .when(Command::Cancel { at: at() });
        assert_eq!(
            result,
            Err(ReservationError::NotCancellable("sold out".into()))
        );
    }

    #[test]
    fn a_cancel_while_pending_is_carried_out_once_catalog_holds() {
        let (state, events) = given(vec![place(3), Command::Cancel { at: at() }])
            .when(Command::ConfirmHold { at: at() });
        assert_eq!(events.unwrap(), vec![Event::Cancelled { at: at() }]);
        assert_eq!(state.unwrap().status, Status::Cancelled);
    }

    #[test]
    fn a_cancel_while_pending_ends_as_rejected_when_catalog_refuses() {
        let (state, _) =
            given(vec![place(3), Command::Cancel { at: at() }]).when(Command::RejectHold {
                reason: "sold out".into(),
                at: at(),
            });
        assert_eq!(state.unwrap().status, Status::Rejected);
    }

    #[test]
    fn asking_to_cancel_a_pending_reservation_twice_is_harmless() {
        let (state, events) =
            given(vec![place(3), Command::Cancel { at: at() }]).when(Command::Cancel { at: at() });
        assert_eq!(events.unwrap(), vec![]);
        assert!(state.unwrap().cancel_requested);
    }

    #[test]
    fn nothing_can_happen_to_a_reservation_that_does_not_exist() {
        assert_eq!(
            decide(None, Command::Cancel { at: at() }),
            Err(ReservationError::NotFound)
        );
    }

    #[test]
    fn a_reservation_cannot_be_placed_twice() {
        let (state, _) = given(vec![place(1)]).when(Command::ConfirmHold { at: at() });
        assert_eq!(
            decide(state.as_ref(), place(1)),
            Err(ReservationError::AlreadyPlaced)
        );
    }
}
