//! Events of the wallet context: loyalty points. A wallet is one user's;
//! its events are keyed by the user so one wallet's changes stay in order,
//! and correlated by the booking that caused them.

use kernel::ids::{ReservationId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{topics, IntegrationEvent};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
        withdrawn_at: OffsetDateTime,
    },
}

impl WalletEvent {
    pub fn user_id(&self) -> UserId {
        match self {
            WalletEvent::PointsEarned { user_id, .. }
            | WalletEvent::PointsWithdrawn { user_id, .. } => *user_id,
        }
    }

    pub fn reservation_id(&self) -> ReservationId {
        match self {
            WalletEvent::PointsEarned { reservation_id, .. }
            | WalletEvent::PointsWithdrawn { reservation_id, .. } => *reservation_id,
        }
    }
}

impl IntegrationEvent for WalletEvent {
    const TOPIC: &'static str = topics::WALLET;
    const SOURCE: &'static str = "/boxoffice/wallet";
    const TYPES: &'static [&'static str] = &[
        "boxoffice.wallet.points-earned",
        "boxoffice.wallet.points-withdrawn",
    ];

    fn subject(&self) -> String {
        self.user_id().to_string()
    }

    fn correlation(&self) -> String {
        self.reservation_id().to_string()
    }
}
