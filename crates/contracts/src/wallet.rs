//! Events of the wallet context: points, bought with a card, earned on card
//! bookings, spent on bookings paid with points. A wallet is one user's;
//! its events are keyed by the user so one wallet's changes stay in order,
//! and correlated by the booking (or purchase) that caused them.

use kernel::envelope::Rfc3339;
use kernel::ids::{PaymentId, ReservationId, UserId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{topics, IntegrationEvent, Routing};

/// Keyed by the wallet's user, correlated by the booking the points moved for.
const fn for_booking(event_type: &'static str) -> Routing {
    Routing {
        event_type,
        key: &["/userId"],
        correlation: &["/reservationId"],
    }
}

/// What the wallet context publishes: every move of a user's points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum WalletEvent {
    /// A captured card payment earned points.
    #[serde(rename = "boxoffice.wallet.points-earned", rename_all = "camelCase")]
    PointsEarned {
        user_id: UserId,
        reservation_id: ReservationId,
        points: u64,
        balance: u64,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        earned_at: OffsetDateTime,
    },
    /// A refund took back the points its payment earned. `shortfall` is
    /// what could not be taken because it was already spent (the balance
    /// never goes below zero).
    #[serde(rename = "boxoffice.wallet.points-withdrawn", rename_all = "camelCase")]
    PointsWithdrawn {
        user_id: UserId,
        reservation_id: ReservationId,
        points: u64,
        shortfall: u64,
        balance: u64,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        withdrawn_at: OffsetDateTime,
    },
    /// Points bought with a card: the first purchase opens the wallet,
    /// later ones top it up. `payment_id` is the card payment that paid.
    #[serde(rename = "boxoffice.wallet.points-purchased", rename_all = "camelCase")]
    PointsPurchased {
        user_id: UserId,
        payment_id: PaymentId,
        points: u64,
        balance: u64,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        purchased_at: OffsetDateTime,
    },
    /// A booking paid with points took them from the wallet.
    #[serde(rename = "boxoffice.wallet.points-spent", rename_all = "camelCase")]
    PointsSpent {
        user_id: UserId,
        reservation_id: ReservationId,
        points: u64,
        balance: u64,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        spent_at: OffsetDateTime,
    },
    /// A booking paid with points could not be paid: nothing was taken.
    #[serde(rename = "boxoffice.wallet.points-refused", rename_all = "camelCase")]
    PointsRefused {
        user_id: UserId,
        reservation_id: ReservationId,
        points: u64,
        balance: u64,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        refused_at: OffsetDateTime,
    },
    /// Points spent on a booking that was then rejected, expired or
    /// cancelled were given back.
    #[serde(rename = "boxoffice.wallet.points-refunded", rename_all = "camelCase")]
    PointsRefunded {
        user_id: UserId,
        reservation_id: ReservationId,
        points: u64,
        balance: u64,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        refunded_at: OffsetDateTime,
    },
}

impl WalletEvent {
    pub fn user_id(&self) -> UserId {
        match self {
            WalletEvent::PointsEarned { user_id, .. }
            | WalletEvent::PointsWithdrawn { user_id, .. }
            | WalletEvent::PointsPurchased { user_id, .. }
            | WalletEvent::PointsSpent { user_id, .. }
            | WalletEvent::PointsRefused { user_id, .. }
            | WalletEvent::PointsRefunded { user_id, .. } => *user_id,
        }
    }

    /// The booking the points moved for; a purchase has none.
    pub fn reservation_id(&self) -> Option<ReservationId> {
        match self {
            WalletEvent::PointsEarned { reservation_id, .. }
            | WalletEvent::PointsWithdrawn { reservation_id, .. }
            | WalletEvent::PointsSpent { reservation_id, .. }
            | WalletEvent::PointsRefused { reservation_id, .. }
            | WalletEvent::PointsRefunded { reservation_id, .. } => Some(*reservation_id),
            WalletEvent::PointsPurchased { .. } => None,
        }
    }
}

impl IntegrationEvent for WalletEvent {
    const TOPIC: &'static str = topics::WALLET;
    const SOURCE: &'static str = "/boxoffice/wallet";
    const TYPES: &'static [&'static str] = &[
        "boxoffice.wallet.points-earned",
        "boxoffice.wallet.points-withdrawn",
        "boxoffice.wallet.points-purchased",
        "boxoffice.wallet.points-spent",
        "boxoffice.wallet.points-refused",
        "boxoffice.wallet.points-refunded",
    ];
    const ROUTING: &'static [Routing] = &[
        for_booking("boxoffice.wallet.points-earned"),
        for_booking("boxoffice.wallet.points-withdrawn"),
        Routing {
            event_type: "boxoffice.wallet.points-purchased",
            key: &["/userId"],
            correlation: &["/paymentId"],
        },
        for_booking("boxoffice.wallet.points-spent"),
        for_booking("boxoffice.wallet.points-refused"),
        for_booking("boxoffice.wallet.points-refunded"),
    ];

    fn subject(&self) -> String {
        self.user_id().to_string()
    }

    fn correlation(&self) -> String {
        match self {
            WalletEvent::PointsPurchased { payment_id, .. } => payment_id.to_string(),
            other => other
                .reservation_id()
                .map(|id| id.to_string())
                .unwrap_or_default(),
        }
    }
}
