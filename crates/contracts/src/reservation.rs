//! Events of the reservation context: the lifecycle of one booking.
//! Every event is keyed and correlated by its reservation id.

use kernel::envelope::Rfc3339;
use kernel::ids::{ListingId, ReservationId, UserId};
use kernel::{Money, SeatLabel};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::catalog::ListingKind;
use crate::{topics, IntegrationEvent, Routing};

const fn of_booking(event_type: &'static str) -> Routing {
    Routing {
        event_type,
        key: &["/booking/reservationId"],
        correlation: &["/booking/reservationId"],
    }
}

/// How the customer pays.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PaymentMethod {
    Card,
    Points,
}

/// The facts about a booking that downstream contexts need, repeated on
/// each event so that consumers never have to ask the reservation service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Booking {
    pub reservation_id: ReservationId,
    pub user_id: UserId,
    pub listing_id: ListingId,
    pub listing_title: String,
    pub listing_kind: ListingKind,
    pub quantity: u32,
    /// The seats booked, for a seated listing (`quantity` is their number).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seats: Vec<SeatLabel>,
    pub amount: Money,
    pub payment_method: PaymentMethod,
}

/// What the reservation context publishes: each step of a booking's life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum ReservationEvent {
    /// A customer booked: inventory (and points, when paid with them) is
    /// to be held and the card authorised, then the booking is confirmed
    /// or rejected.
    #[serde(rename = "boxoffice.reservation.placed", rename_all = "camelCase")]
    ReservationPlaced {
        booking: Booking,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        placed_at: OffsetDateTime,
    },
    /// Inventory is held and the payment went through: the booking stands.
    #[serde(rename = "boxoffice.reservation.confirmed", rename_all = "camelCase")]
    ReservationConfirmed {
        booking: Booking,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        confirmed_at: OffsetDateTime,
    },
    /// The booking could not be made (no inventory, card declined, points
    /// refused): whatever was held or authorised for it is given back.
    #[serde(rename = "boxoffice.reservation.rejected", rename_all = "camelCase")]
    ReservationRejected {
        booking: Booking,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        rejected_at: OffsetDateTime,
    },
    /// Nobody answered before the booking's deadline: it ends rejected, and
    /// whatever was held or authorised for it is given back.
    #[serde(rename = "boxoffice.reservation.expired", rename_all = "camelCase")]
    ReservationExpired {
        booking: Booking,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        expired_at: OffsetDateTime,
    },
    /// The customer cancelled a confirmed booking: inventory goes back.
    #[serde(rename = "boxoffice.reservation.cancelled", rename_all = "camelCase")]
    ReservationCancelled {
        booking: Booking,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        cancelled_at: OffsetDateTime,
    },
    /// A rental ended: the customer brought the bike back.
    #[serde(rename = "boxoffice.reservation.returned", rename_all = "camelCase")]
    ReservationReturned {
        booking: Booking,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        returned_at: OffsetDateTime,
    },
}

impl ReservationEvent {
    pub fn booking(&self) -> &Booking {
        match self {
            ReservationEvent::ReservationPlaced { booking, .. }
            | ReservationEvent::ReservationConfirmed { booking, .. }
            | ReservationEvent::ReservationRejected { booking, .. }
            | ReservationEvent::ReservationExpired { booking, .. }
            | ReservationEvent::ReservationCancelled { booking, .. }
            | ReservationEvent::ReservationReturned { booking, .. } => booking,
        }
    }
}

impl IntegrationEvent for ReservationEvent {
    const TOPIC: &'static str = topics::RESERVATION;
    const SOURCE: &'static str = "/boxoffice/reservation";
    const TYPES: &'static [&'static str] = &[
        "boxoffice.reservation.placed",
        "boxoffice.reservation.confirmed",
        "boxoffice.reservation.rejected",
        "boxoffice.reservation.expired",
        "boxoffice.reservation.cancelled",
        "boxoffice.reservation.returned",
    ];
    const ROUTING: &'static [Routing] = &[
        of_booking("boxoffice.reservation.placed"),
        of_booking("boxoffice.reservation.confirmed"),
        of_booking("boxoffice.reservation.rejected"),
        of_booking("boxoffice.reservation.expired"),
        of_booking("boxoffice.reservation.cancelled"),
        of_booking("boxoffice.reservation.returned"),
    ];

    fn subject(&self) -> String {
        self.booking().reservation_id.to_string()
    }

    fn correlation(&self) -> String {
        self.booking().reservation_id.to_string()
    }
}
