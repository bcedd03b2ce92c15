//! The reservation aggregate and its saga decisions, free of I/O.
//!
//! A reservation is placed *pending*; catalog then holds its tickets or
//! rejects it; the reservation is confirmed or rejected accordingly. A
//! confirmed reservation can be cancelled, which gives the tickets back. A
//! cancel that arrives while the reservation is still pending is remembered
//! and carried out the moment catalog answers, so the customer never has to
//! wait for the saga to be able to change their mind.
//!
//! A booking is confirmed once catalog holds its inventory *and* it is
//! paid. A card booking is paid before it is placed (the card is
//! authorised synchronously); a booking paid with points is paid when the
//! wallet, answering the `ReservationPlaced` event, has taken the points,
//! and rejected when the wallet refuses. The two answers may come in either
//! order. A bike rental ends when the bike is returned.
//!
//! Every booking has a deadline: a reservation still pending when it
//! passes is expired (compensated: whatever catalog held and payment
//! authorised is given back), or cancelled if the customer asked to.
//!
//! Decisions are `decide(state, command) -> events`; state changes only by
//! `apply(event)`.

use contracts::catalog::{ListingKind, SeatSection};
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
    /// Seats sold at a price of their own.
    pub sections: Vec<SeatSection>,
    /// No longer sold (an admin deleted it).
    pub withdrawn: bool,
}

impl ListingSnapshot {
    /// What one seat costs: its section's price, or the listing's.
    pub fn seat_price(&self, seat: SeatLabel) -> Money {
        self.sections
            .iter()
            .find(|section| section.seats.contains(&seat))
            .map_or(self.price, |section| section.price)
    }

    /// How a booking of it is paid when the customer does not say: bikes
    /// with points, shows by card.
    pub fn default_payment(&self) -> PaymentMethod {
        match self.kind {
            ListingKind::Bike => PaymentMethod::Points,
            ListingKind::Movie | ListingKind::Musical => PaymentMethod::Card,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Confirmed,
    Rejected,
    Cancelled,
    /// A rental that ended: the bike is back.
    Returned,
}

/// Where a reservation stands, as the API writes it.
impl utoipa::PartialSchema for Status {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        runtime::api::string_enum(&[
            Status::Pending.as_str(),
            Status::Confirmed.as_str(),
            Status::Rejected.as_str(),
            Status::Cancelled.as_str(),
            Status::Returned.as_str(),
        ])
    }
}

impl utoipa::ToSchema for Status {
    fn name() -> std::borrow::Cow<'static, str> {
        "ReservationStatus".into()
    }
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Confirmed => "confirmed",
            Status::Rejected => "rejected",
            Status::Cancelled => "cancelled",
            Status::Returned => "returned",
        }
    }

    pub fn parse(value: &str) -> Option<Status> {
        match value {
            "pending" => Some(Status::Pending),
            "confirmed" => Some(Status::Confirmed),
            "rejected" => Some(Status::Rejected),
            "cancelled" => Some(Status::Cancelled),
            "returned" => Some(Status::Returned),
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
    /// Catalog holds the tickets, seats or bike.
    pub held: bool,
    /// The amount is secured: a card authorised, points taken, or nothing
    /// to pay.
    pub paid: bool,
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
    /// The wallet took the points the booking costs.
    ConfirmPayment {
        at: OffsetDateTime,
    },
    /// The wallet could not take them.
    RefusePayment {
        reason: String,
        at: OffsetDateTime,
    },
    Cancel {
        at: OffsetDateTime,
    },
    /// The customer brought the bike back.
    Return {
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
    Placed(Box<Reservation>),
    Confirmed {
        at: OffsetDateTime,
    },
    Rejected {
        reason: String,
        at: OffsetDateTime,
    },
    Expired {
        reason: String,
        at: OffsetDateTime,
    },
    CancellationRequested {
        at: OffsetDateTime,
    },
    Cancelled {
        at: OffsetDateTime,
    },
    /// Catalog holds the inventory; payment is still awaited.
    Held {
        at: OffsetDateTime,
    },
    /// Paid; catalog's answer is still awaited.
    Paid {
        at: OffsetDateTime,
    },
    Returned {
        at: OffsetDateTime,
    },
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
    #[error("{0} is no longer sold")]
    ListingWithdrawn(String),
    #[error("{0} is rented one bike at a time: give no quantity, or 1")]
    OneBikePerRental(String),
    #[error("{0} is not a rental; only bike rentals are returned")]
    NotARental(String),
    #[error("the bike was already returned")]
    AlreadyReturned,
    #[error("the rental cannot be returned: {0}")]
    NotReturnable(&'static str),
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
            if listing.withdrawn {
                return Err(ReservationError::ListingWithdrawn(listing.title));
            }
            let (quantity, seats) = fit(&listing, order)?;
            let amount = price(&listing, quantity, &seats)?;
            // A card is authorised before the booking is placed; points are
            // taken afterwards, by the wallet.
            let paid = payment_method == PaymentMethod::Card || amount == Money::ZERO;
            Ok(vec![Event::Placed(Box::new(Reservation {
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
                held: false,
                paid,
                deadline,
                created_at: at,
                updated_at: at,
            }))])
        }
        (Some(_), Command::Place { .. }) => Err(ReservationError::AlreadyPlaced),
        (None, _) => Err(ReservationError::NotFound),
        (Some(r), Command::ConfirmHold { at }) => Ok(match r.status {
            Status::Pending if r.held => vec![],
            Status::Pending if !r.paid => vec![Event::Held { at }],
            Status::Pending => vec![settled(r, at)],
            _ => vec![],
        }),
        (Some(r), Command::ConfirmPayment { at }) => Ok(match r.status {
            Status::Pending if r.paid => vec![],
            Status::Pending if !r.held => vec![Event::Paid { at }],
            Status::Pending => vec![settled(r, at)],
            _ => vec![],
        }),
        (Some(r), Command::RefusePayment { reason, at }) => Ok(match r.status {
            Status::Pending => vec![Event::Rejected { reason, at }],
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
            Status::Returned => Err(ReservationError::AlreadyReturned),
            Status::Rejected => Err(ReservationError::NotCancellable(
                r.reason.clone().unwrap_or_else(|| "rejected".to_owned()),
            )),
        },
        (Some(r), Command::Return { at }) => {
            if r.listing.kind != ListingKind::Bike {
                return Err(ReservationError::NotARental(r.listing.title.clone()));
            }
            match r.status {
                Status::Confirmed => Ok(vec![Event::Returned { at }]),
                Status::Returned => Err(ReservationError::AlreadyReturned),
                Status::Pending => Err(ReservationError::NotReturnable(
                    "the rental has not started yet",
                )),
                Status::Cancelled => Err(ReservationError::NotReturnable("it was cancelled")),
                Status::Rejected => Err(ReservationError::NotReturnable("it was rejected")),
            }
        }
        (Some(r), Command::Expire { reason, at }) => Ok(match r.status {
            // The customer wanted out anyway: it ends as they asked.
            Status::Pending if r.cancel_requested => vec![Event::Cancelled { at }],
            Status::Pending => vec![Event::Expired { reason, at }],
            _ => vec![],
        }),
    }
}

/// Held and paid: the booking is confirmed, or cancelled if the customer
/// asked to while it was pending.
fn settled(r: &Reservation, at: OffsetDateTime) -> Event {
    if r.cancel_requested {
        Event::Cancelled { at }
    } else {
        Event::Confirmed { at }
    }
}

/// What the booking costs: each seat at its own price, or the listing's
/// price per ticket (or rental).
fn price(
    listing: &ListingSnapshot,
    quantity: Quantity,
    seats: &[SeatLabel],
) -> Result<Money, ReservationError> {
    let too_large = ReservationError::AmountTooLarge {
        quantity: quantity.get(),
        price: listing.price,
    };
    if seats.is_empty() {
        return listing.price.times(quantity.get()).ok_or(too_large);
    }
    seats
        .iter()
        .try_fold(Money::ZERO, |total, seat| {
            total.plus(listing.seat_price(*seat))
        })
        .ok_or(too_large)
}

/// Checks the order against how the listing is sold: the quantity it is
/// for, and its seats.
fn fit(
    listing: &ListingSnapshot,
    order: Order,
) -> Result<(Quantity, Vec<SeatLabel>), ReservationError> {
    if listing.kind == ListingKind::Bike {
        return match order {
            Order::Tickets(quantity) if quantity.get() == 1 => Ok((quantity, Vec::new())),
            Order::Tickets(_) => Err(ReservationError::OneBikePerRental(listing.title.clone())),
            Order::Seats(_) => Err(ReservationError::SeatsOnQuotaListing(listing.title.clone())),
        };
    }
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
        (_, Event::Placed(reservation)) => Some(reservation.as_ref().clone()),
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
        (Some(mut r), Event::Held { at }) => {
            r.held = true;
            r.updated_at = *at;
            Some(r)
        }
        (Some(mut r), Event::Paid { at }) => {
            r.paid = true;
            r.updated_at = *at;
            Some(r)
        }
        (Some(mut r), Event::Returned { at }) => {
            r.status = Status::Returned;
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
            sections: Vec::new(),
            withdrawn: false,
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
            sections: Vec::new(),
            withdrawn: false,
        }
    }

    fn bike() -> ListingSnapshot {
        ListingSnapshot {
            id: ListingId::new(),
            kind: ListingKind::Bike,
            title: "Bike 1".into(),
            price: Money::parse(1_000).unwrap(),
            seats: None,
            sections: Vec::new(),
            withdrawn: false,
        }
    }

    fn rent(listing: ListingSnapshot, payment_method: PaymentMethod) -> Command {
        Command::Place {
            id: ReservationId::new(),
            user_id: UserId::new(),
            listing,
            order: Order::Tickets(Quantity::parse(1).unwrap()),
            payment_method,
            at: at(),
            deadline: at() + time::Duration::minutes(2),
        }
    }

    fn held() -> Command {
        Command::ConfirmHold { at: at() }
    }

    fn points_taken() -> Command {
        Command::ConfirmPayment { at: at() }
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

    #[test]
    fn a_booking_paid_with_points_waits_for_both_the_hold_and_the_points_in_either_order() {
        let (state, events) = given(vec![rent(bike(), PaymentMethod::Points)]).when(held());
        assert_eq!(events.unwrap(), vec![Event::Held { at: at() }]);
        assert_eq!(state.as_ref().unwrap().status, Status::Pending);
        let (state, events) = Scenario { state }.when(points_taken());
        assert_eq!(events.unwrap(), vec![Event::Confirmed { at: at() }]);
        assert_eq!(state.unwrap().status, Status::Confirmed);

        let (state, events) =
            given(vec![rent(bike(), PaymentMethod::Points), points_taken()]).when(held());
        assert_eq!(events.unwrap(), vec![Event::Confirmed { at: at() }]);
        assert_eq!(state.unwrap().status, Status::Confirmed);
    }

    #[test]
    fn points_refused_reject_the_booking_with_the_wallets_reason() {
        let refuse = Command::RefusePayment {
            reason: "not enough points: 500 available, 1000 needed".into(),
            at: at(),
        };
        let (state, events) = given(vec![rent(bike(), PaymentMethod::Points), held()]).when(refuse);
        assert!(matches!(
            events.unwrap().as_slice(),
            [Event::Rejected { .. }]
        ));
        let rejected = state.unwrap();
        assert_eq!(rejected.status, Status::Rejected);
        assert_eq!(
            rejected.reason.as_deref(),
            Some("not enough points: 500 available, 1000 needed")
        );
        // Points arriving late after all change nothing.
        let late = Scenario {
            state: Some(rejected),
        }
        .when(points_taken());
        assert_eq!(late.1.unwrap(), vec![]);
    }

    #[test]
    fn a_card_booking_is_paid_when_placed_and_confirmed_by_the_hold_alone() {
        let (state, events) = given(vec![rent(bike(), PaymentMethod::Card)]).when(held());
        assert_eq!(events.unwrap(), vec![Event::Confirmed { at: at() }]);
        assert!(state.unwrap().paid);
    }

    #[test]
    fn repeated_answers_decide_nothing_more() {
        let (_, events) = given(vec![rent(bike(), PaymentMethod::Points), held()]).when(held());
        assert_eq!(events.unwrap(), vec![]);
        let (_, events) =
            given(vec![rent(bike(), PaymentMethod::Points), points_taken()]).when(points_taken());
        assert_eq!(events.unwrap(), vec![]);
    }

    #[test]
    fn a_cancel_asked_while_points_are_awaited_ends_cancelled_once_both_answered() {
        let cancel = Command::Cancel { at: at() };
        let (state, events) =
            given(vec![rent(bike(), PaymentMethod::Points), held(), cancel]).when(points_taken());
        assert_eq!(events.unwrap(), vec![Event::Cancelled { at: at() }]);
        assert_eq!(state.unwrap().status, Status::Cancelled);
    }

    #[test]
    fn a_rented_bike_is_returned_once_and_only_a_rental_can_be() {
        let rented = vec![rent(bike(), PaymentMethod::Points), held(), points_taken()];
        let (state, events) = given(rented).when(Command::Return { at: at() });
        assert_eq!(events.unwrap(), vec![Event::Returned { at: at() }]);
        let returned = state.unwrap();
        assert_eq!(returned.status, Status::Returned);
        let scenario = Scenario {
            state: Some(returned.clone()),
        };
        assert_eq!(
            scenario.when(Command::Return { at: at() }).1,
            Err(ReservationError::AlreadyReturned)
        );
        let scenario = Scenario {
            state: Some(returned),
        };
        assert_eq!(
            scenario.when(Command::Cancel { at: at() }).1,
            Err(ReservationError::AlreadyReturned)
        );
        let (_, events) = given(vec![place(2), held()]).when(Command::Return { at: at() });
        assert_eq!(events, Err(ReservationError::NotARental("LALALand".into())));
        let (_, events) =
            given(vec![rent(bike(), PaymentMethod::Points)]).when(Command::Return { at: at() });
        assert!(matches!(events, Err(ReservationError::NotReturnable(_))));
    }

    #[test]
    fn a_bike_is_rented_one_at_a_time_and_has_no_seats() {
        let two = Command::Place {
            id: ReservationId::new(),
            user_id: UserId::new(),
            listing: bike(),
            order: Order::Tickets(Quantity::parse(2).unwrap()),
            payment_method: PaymentMethod::Points,
            at: at(),
            deadline: at(),
        };
        assert_eq!(
            given(vec![]).when(two).1,
            Err(ReservationError::OneBikePerRental("Bike 1".into()))
        );
        assert!(matches!(
            given(vec![]).when(place_seats(bike(), &["A-1"]).unwrap()).1,
            Err(ReservationError::SeatsOnQuotaListing(_))
        ));
    }

    #[test]
    fn seats_in_a_section_cost_the_sections_price() {
        let mut wicked = dune();
        wicked.kind = ListingKind::Musical;
        wicked.sections = vec![SeatSection {
            name: "VIP".into(),
            price: Money::parse(150_000).unwrap(),
            seats: labels(&["A-1", "A-2", "A-3"]),
        }];
        let (state, _) = given(vec![]).when(place_seats(wicked, &["A-1", "B-1"]).unwrap());
        assert_eq!(state.unwrap().amount, Money::parse(165_000).unwrap());
    }

    #[test]
    fn a_withdrawn_listing_takes_no_new_bookings() {
        let mut gone = lalaland(10_000);
        gone.withdrawn = true;
        let command = Command::Place {
            id: ReservationId::new(),
            user_id: UserId::new(),
            listing: gone,
            order: Order::Tickets(Quantity::parse(1).unwrap()),
            payment_method: PaymentMethod::Card,
            at: at(),
            deadline: at(),
        };
        assert_eq!(
            given(vec![]).when(command).1,
            Err(ReservationError::ListingWithdrawn("LALALand".into()))
        );
    }
}
