//! Events of the payment context: one card payment's life. A payment for a
//! booking is keyed and correlated by its reservation; one for something
//! else (buying points) by the payment itself.

use kernel::envelope::Rfc3339;
use kernel::ids::{PaymentId, ReservationId, UserId};
use kernel::Money;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{topics, IntegrationEvent, Routing};

/// Keyed and correlated by the booking paid for, or the payment itself.
const fn of_charge(event_type: &'static str) -> Routing {
    const BOOKING_OR_PAYMENT: &[&str] = &["/charge/reservationId", "/charge/paymentId"];
    Routing {
        event_type,
        key: BOOKING_OR_PAYMENT,
        correlation: BOOKING_OR_PAYMENT,
    }
}

/// The facts of a payment every event repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Charge {
    pub payment_id: PaymentId,
    pub user_id: UserId,
    pub amount: Money,
    /// The booking paid for, if it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<ReservationId>,
}

/// What the payment context publishes: each step of a card payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum PaymentEvent {
    /// The provider reserved the amount on the card.
    #[serde(rename = "boxoffice.payment.authorised", rename_all = "camelCase")]
    PaymentAuthorised {
        charge: Charge,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        authorised_at: OffsetDateTime,
    },
    /// The provider refused the card; nothing was reserved.
    #[serde(rename = "boxoffice.payment.declined", rename_all = "camelCase")]
    PaymentDeclined {
        charge: Charge,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        declined_at: OffsetDateTime,
    },
    /// The authorised amount was taken.
    #[serde(rename = "boxoffice.payment.captured", rename_all = "camelCase")]
    PaymentCaptured {
        charge: Charge,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        captured_at: OffsetDateTime,
    },
    /// The authorisation was released without taking anything.
    #[serde(rename = "boxoffice.payment.voided", rename_all = "camelCase")]
    PaymentVoided {
        charge: Charge,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        voided_at: OffsetDateTime,
    },
    /// A captured amount was given back.
    #[serde(rename = "boxoffice.payment.refunded", rename_all = "camelCase")]
    PaymentRefunded {
        charge: Charge,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        refunded_at: OffsetDateTime,
    },
}

impl PaymentEvent {
    pub fn charge(&self) -> &Charge {
        match self {
            PaymentEvent::PaymentAuthorised { charge, .. }
            | PaymentEvent::PaymentDeclined { charge, .. }
            | PaymentEvent::PaymentCaptured { charge, .. }
            | PaymentEvent::PaymentVoided { charge, .. }
            | PaymentEvent::PaymentRefunded { charge, .. } => charge,
        }
    }

    /// What the payment is about: its booking, or itself.
    fn key(&self) -> String {
        let charge = self.charge();
        charge
            .reservation_id
            .map_or_else(|| charge.payment_id.to_string(), |id| id.to_string())
    }
}

impl IntegrationEvent for PaymentEvent {
    const TOPIC: &'static str = topics::PAYMENT;
    const SOURCE: &'static str = "/boxoffice/payment";
    const TYPES: &'static [&'static str] = &[
        "boxoffice.payment.authorised",
        "boxoffice.payment.declined",
        "boxoffice.payment.captured",
        "boxoffice.payment.voided",
        "boxoffice.payment.refunded",
    ];
    const ROUTING: &'static [Routing] = &[
        of_charge("boxoffice.payment.authorised"),
        of_charge("boxoffice.payment.declined"),
        of_charge("boxoffice.payment.captured"),
        of_charge("boxoffice.payment.voided"),
        of_charge("boxoffice.payment.refunded"),
    ];

    /// Keyed by the booking, so a booking's payment steps stay in order
    /// with each other.
    fn subject(&self) -> String {
        self.key()
    }

    fn correlation(&self) -> String {
        self.key()
    }
}
