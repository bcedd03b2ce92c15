//! The my-page view's port: what the projector writes (through its
//! consumer's unit of work) and what the routes read. Two adapters: SQL
//! (`store`) and a key-value store (`kv_view`); the same tests run on both.

use async_trait::async_trait;
use kernel::ids::ReservationId;
use serde::{Deserialize, Serialize};

use crate::projection::{ListingFact, MyReservationRow, PaymentStep, PointsChange};

/// What the routes read.
#[async_trait]
pub trait View: Send + Sync + 'static {
    /// One booking with all my-page knows about it; `None` when my-page has
    /// not seen it (or it is not `owner`'s, when an owner is given).
    async fn find(
        &self,
        reservation: ReservationId,
        owner: Option<String>,
    ) -> anyhow::Result<Option<MyReservationDetail>>;

    /// A user's reservations, most recently changed first, a page at a
    /// time. `Ok(None)` when `after` names no reservation of the view.
    async fn for_user(
        &self,
        user: &str,
        after: Option<String>,
        limit: i64,
    ) -> anyhow::Result<Option<Vec<MyReservationView>>>;
}

/// What the projector writes, inside the consumer's unit of work `Tx`.
/// Each write keeps the projection's rules: a row never goes back to an
/// older version, a payment never to an earlier stage.
#[async_trait]
pub trait Projection: View + Clone {
    type Tx: Send + 'static;

    async fn upsert(&self, tx: &mut Self::Tx, row: &MyReservationRow) -> anyhow::Result<()>;

    async fn record_payment(&self, tx: &mut Self::Tx, step: &PaymentStep) -> anyhow::Result<()>;

    /// Sets (never adds) what a booking earned, gave back, spent or got
    /// refunded: the wallet states each once per booking.
    async fn record_points(&self, tx: &mut Self::Tx, change: &PointsChange) -> anyhow::Result<()>;

    async fn record_listing(&self, tx: &mut Self::Tx, fact: &ListingFact) -> anyhow::Result<()>;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MyReservationView {
    pub reservation_id: String,
    pub listing_id: String,
    pub title: String,
    pub kind: String,
    pub quantity: i64,
    pub seats: Vec<String>,
    pub amount: i64,
    pub status: String,
    pub updated_at: String,
}

/// One booking as `GET /mypage/reservations/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MyReservationDetail {
    pub reservation_id: String,
    pub listing_id: String,
    pub title: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub screen: Option<ScreenView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<String>,
    pub quantity: i64,
    pub seats: Vec<String>,
    pub amount: i64,
    pub payment_method: String,
    /// `null` until a payment event about the booking arrives.
    pub payment: Option<PaymentView>,
    pub points: PointsView,
    pub status: String,
    pub history: Vec<HistoryView>,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScreenView {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentView {
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointsView {
    pub earned: i64,
    pub withdrawn: i64,
    pub spent: i64,
    pub refunded: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryView {
    pub status: String,
    pub at: String,
}
