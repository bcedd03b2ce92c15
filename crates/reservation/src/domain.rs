//! The reservation aggregate and its saga decisions, free of I/O.
//!
//! A reservation is placed *pending*; catalog then holds its tickets or
//! rejects it; the reservation is confirmed or rejected accordingly. A
//! confirmed reservation can be cancelled, which gives the tickets back. A
//! cancel that arrives while the reservation is still pending is remembered
//! and carried out the moment catalog answers, so the customer never has to
//! wait for the saga to be able to change their mind.
//!
//! Every booking has a deadline: a reservation still pending when it
//! passes is expired (compensated: whatever catalog held and payment
//! authorised is given back), or cancelled if the customer asked to.
//!
//! Decisions are `decide(state, command) -> events`; state changes only by
//! `apply(event)`.

use contracts::catalog::ListingKind;
use contracts::reservation::PaymentMethod;
use kernel::ids::{ListingId, ReservationId, UserId};
use kernel::{Money, SeatLabel};
use time::OffsetDateTime;

/// Most tickets one reservation may take.
pub const MAX_TICKETS_PER_RESERVATION: u32 = 1_000;
/// Most seats one reservation may name.
pub const MAX_SEATS_PER_RESERVATION: usize = 10;

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

/// What is booked: tickets from a quota, or named seats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    Tickets(Quantity),
    Seats(Vec<SeatLabel>),
}

impl Order {
    /// A choice of seats: at least one, at most
    /// [`MAX_SEATS_PER_RESERVATION`], none twice.
    pub fn seats(seats: Vec<SeatLabel>) -> Result<Order, ReservationError> {
        if seats.is_empty() {
            return Err(ReservationError::NoSeats);
        }
        if seats.len() > MAX_SEATS_PER_RESERVATION {
            return Err(ReservationError::TooManySeats(seats.len()));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(twice) = seats.iter().find(|seat| !seen.insert(**seat)) {
            return Err(ReservationError::DuplicateSeat(*twice));
        }
        Ok(Order::Seats(seats))
    }
}

/// What the reservation context knows of a listing (its own replica).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingSnapshot {
    pub id: ListingId,
    pub kind: ListingKind,
    pub title: String,
    pub price: Money,
    /// Every seat on sale, for a seated listing; `None` for a ticket quota.
    pub seats: Option<Vec<SeatLabel>>,
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
    /// The seats booked, for a seated listing.
    pub seats: Vec<SeatLabel>,
    pub amount: Money,
    pub payment_method: PaymentMethod,
    pub status: Status,
    pub reason: Option<String>,
    /// The customer asked to cancel while catalog had not answered yet.
    pub cancel_requested: bool,
    /// Still pending at this moment, the booking is expired.
    pub deadline: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Place {
        id: ReservationId,
        user_id: UserId,
        listing: ListingSnapshot,
        order: Order,
        payment_method: PaymentMethod,
        at: OffsetDateTime,
        deadline: OffsetDateTime,
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
    /// The deadline passed.
    Expire {
        reason: String,
        at: OffsetDateTime,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Placed(Reservation),
    Confirmed { at: OffsetDateTime },
    Rejected { reason: String, at: OffsetDateTime },
    Expired { reason: String, at: OffsetDateTime },
    CancellationRequested { at: OffsetDateTime },
    Cancelled { at: OffsetDateTime },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReservationError {
    #[error("quantity must be between 1 and {MAX_TICKETS_PER_RESERVATION} (got {0})")]
    QuantityOutOfRange(i64),
    #[error("name at least one seat")]
    NoSeats,
    #[error("at most {MAX_SEATS_PER_RESERVATION} seats per booking (got {0})")]
    TooManySeats(usize),
    #[error("seat {0} is named twice")]
    DuplicateSeat(SeatLabel),
    #[error("{0} sells tickets by quantity; seats cannot be chosen")]
    SeatsOnQuotaListing(String),
    #[error("{0} has assigned seats: name them in `seats` instead of giving a quantity")]
    SeatsRequired(String),
    #[error("{title} has no seat {}", kernel::seat::list(seats))]
    UnknownSeats {
        title: String,
        seats: Vec<SeatLabel>,
    },
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
                order,
                payment_method,
                at,
                deadline,
            },
        ) => {
            let (quantity, seats) = fit(&listing, order)?;
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
                seats,
                amount,
                payment_method,
                status: Status::Pending,
                reason: None,
                cancel_requested: false,
                deadline,
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
        (Some(r), Command::Expire { reason, at }) => Ok(match r.status {
            // The customer wanted out anyway: it ends as they asked.
            Status::Pending if r.cancel_requested => vec![Event::Cancelled { at }],
            Status::Pending => vec![Event::Expired { reason, at }],
            _ => vec![],
        }),
    }
}

/// Checks the order against how the listing is sold: the quantity it is
/// for, and its seats.
fn fit(
    listing: &ListingSnapshot,
    order: Order,
) -> Result<(Quantity, Vec<SeatLabel>), ReservationError> {
    match (order, &listing.seats) {
        (Order::Tickets(quantity), None) => Ok((quantity, Vec::new())),
        (Order::Tickets(_), Some(_)) => Err(ReservationError::SeatsRequired(listing.title.clone())),
        (Order::Seats(_), None) => {
            Err(ReservationError::SeatsOnQuotaListing(listing.title.clone()))
        }
        (Order::Seats(seats), Some(on_sale)) => {
            let unknown: Vec<SeatLabel> = seats
                .iter()
                .filter(|seat| !on_sale.contains(seat))
                .copied()
                .collect();
            if !unknown.is_empty() {
                return Err(ReservationError::UnknownSeats {
                    title: listing.title.clone(),
                    seats: unknown,
                });
            }
            let count = i64::try_from(seats.len()).unwrap_or(i64::MAX);
            Ok((Quantity::parse(count)?, seats))
        }
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
        (Some(mut r), Event::Expired { reason, at }) => {
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
            seats: None,
        }
    }

    fn place(quantity: i64) -> Command {
        Command::Place {
            id: ReservationId::new(),
            user_id: UserId::new(),
            listing: lalaland(10_000),
            order: Order::Tickets(Quantity::parse(quantity).unwrap()),
            payment_method: PaymentMethod::Card,
            at: at(),
            deadline: at() + time::Duration::minutes(2),
        }
    }

    fn labels(seats: &[&str]) -> Vec<SeatLabel> {
        seats.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn dune() -> ListingSnapshot {
        ListingSnapshot {
            id: ListingId::new(),
            kind: ListingKind::Movie,
            title: "Dune".into(),
            price: Money::parse(15_000).unwrap(),
            seats: Some(labels(&["A-1", "A-2", "A-3", "B-1"])),
        }
    }

    fn place_seats(listing: ListingSnapshot, seats: &[&str]) -> Result<Command, ReservationError> {
        Ok(Command::Place {
            id: ReservationId::new(),
            user_id: UserId::new(),
            listing,
            order: Order::seats(labels(seats))?,
            payment_method: PaymentMethod::Card,
            at: at(),
            deadline: at() + time::Duration::minutes(2),
        })
    }

    fn expire() -> Command {
        Command::Expire {
            reason: "not confirmed within 120 seconds".into(),
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
    fn a_seat_booking_is_for_as_many_tickets_as_seats_and_priced_by_seat() {
        let (state, _) = given(vec![]).when(place_seats(dune(), &["A-1", "A-2"]).unwrap());
        let reservation = state.unwrap();
        assert_eq!(reservation.quantity.get(), 2);
        assert_eq!(reservation.seats, labels(&["A-1", "A-2"]));
        assert_eq!(reservation.amount, Money::parse(30_000).unwrap());
    }

    #[test]
    fn seats_must_exist_be_few_and_named_once() {
        assert_eq!(
            decide(None, place_seats(dune(), &["A-1", "Z-9"]).unwrap()),
            Err(ReservationError::UnknownSeats {
                title: "Dune".into(),
                seats: labels(&["Z-9"])
            })
        );
        assert_eq!(
            place_seats(dune(), &["A-1", "A-1"]),
            Err(ReservationError::DuplicateSeat("A-1".parse().unwrap()))
        );
        let eleven: Vec<String> = (1..=11).map(|n| format!("A-{n}")).collect();
        let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();
        assert_eq!(
            place_seats(dune(), &eleven),
            Err(ReservationError::TooManySeats(11))
        );
        assert_eq!(place_seats(dune(), &[]), Err(ReservationError::NoSeats));
    }

    #[test]
    fn seats_and_quotas_do_not_mix() {
        assert_eq!(
            decide(None, place_seats(lalaland(1), &["A-1"]).unwrap()),
            Err(ReservationError::SeatsOnQuotaListing("LALALand".into()))
        );
        let mut tickets_for_seats = place(2);
        if let Command::Place { listing, .. } = &mut tickets_for_seats {
            *listing = dune();
        }
        assert_eq!(
            decide(None, tickets_for_seats),
            Err(ReservationError::SeatsRequired("Dune".into()))
        );
    }

    #[test]
    fn a_pending_booking_past_its_deadline_expires_as_rejected_with_the_reason() {
        let (state, events) = given(vec![place(2)]).when(expire());
        assert!(matches!(
            events.unwrap().as_slice(),
            [Event::Expired { .. }]
        ));
        let state = state.unwrap();
        assert_eq!(state.status, Status::Rejected);
        assert_eq!(
            state.reason.as_deref(),
            Some("not confirmed within 120 seconds")
        );
    }

    #[test]
    fn a_cancel_asked_for_while_pending_completes_at_the_deadline() {
        let (state, events) = given(vec![place(2), Command::Cancel { at: at() }]).when(expire());
        assert_eq!(events.unwrap(), vec![Event::Cancelled { at: at() }]);
        assert_eq!(state.unwrap().status, Status::Cancelled);
    }

    #[test]
    fn a_deadline_means_nothing_once_the_saga_has_answered() {
        let (_, events) = given(vec![place(2), Command::ConfirmHold { at: at() }]).when(expire());
        assert_eq!(events.unwrap(), vec![]);
        // And a late answer after expiry changes nothing either.
        let (state, events) =
            given(vec![place(2), expire()]).when(Command::ConfirmHold { at: at() });
        assert_eq!(events.unwrap(), vec![]);
        assert_eq!(state.unwrap().status, Status::Rejected);
    }

    #[test]
    fn an_amount_that_would_overflow_is_refused() {
        let command = Command::Place {
            id: ReservationId::new(),
            user_id: UserId::new(),
            listing: lalaland(kernel::money::MAX_AMOUNT),
            order: Order::Tickets(Quantity::parse(2).unwrap()),
            payment_method: PaymentMethod::Card,
            at: at(),
            deadline: at(),
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
