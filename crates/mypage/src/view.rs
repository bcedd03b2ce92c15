//! The my-page view's port: what the projector writes (through its
//! consumer's unit of work) and what the routes read. Two adapters: SQL
//! (`store`) and a key-value store (`kv_view`); the same tests run on both.

use async_trait::async_trait;
use kernel::ids::ReservationId;
use serde::{Deserialize, Serialize};

use crate::projection::{Changes, ListingFact, MyReservationRow, PaymentStep, PointsChange};

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

    /// Writes what a batch of events changed. The default writes each
    /// change on its own, listings first (their order kept); a store that
    /// can write a kind with one statement per batch overrides it.
    async fn apply_all(&self, tx: &mut Self::Tx, changes: &Changes) -> anyhow::Result<()> {
        for fact in &changes.listings {
            self.record_listing(tx, fact).await?;
        }
        for row in &changes.rows {
            self.upsert(tx, row).await?;
        }
        for step in &changes.payments {
            self.record_payment(tx, step).await?;
        }
        for change in &changes.points {
            self.record_points(tx, change).await?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = MyPageReservation)]
pub struct MyReservationView {
    pub reservation_id: String,
    pub listing_id: String,
    pub title: String,
    #[schema(value_type = contracts::catalog::ListingKind)]
    pub kind: String,
    #[schema(minimum = 0)]
    pub quantity: i64,
    pub seats: Vec<String>,
    #[schema(value_type = kernel::Money)]
    pub amount: i64,
    #[schema(value_type = crate::projection::ReservationStatus)]
    pub status: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// One booking as `GET /mypage/reservations/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = MyBooking)]
pub struct MyReservationDetail {
    pub reservation_id: String,
    pub listing_id: String,
    pub title: String,
    #[schema(value_type = contracts::catalog::ListingKind)]
    pub kind: String,
    /// The screen of a seated movie.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, inline)]
    pub screen: Option<ScreenView>,
    /// When the showing starts, when it has a time.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, format = DateTime)]
    pub starts_at: Option<String>,
    #[schema(minimum = 0)]
    pub quantity: i64,
    pub seats: Vec<String>,
    #[schema(value_type = kernel::Money)]
    pub amount: i64,
    #[schema(value_type = contracts::reservation::PaymentMethod)]
    pub payment_method: String,
    /// `null` until a payment event about the booking arrives.
    #[schema(inline)]
    pub payment: Option<PaymentView>,
    #[schema(inline)]
    pub points: PointsView,
    #[schema(value_type = crate::projection::ReservationStatus)]
    pub status: String,
    /// Every status it went through, each once, in order.
    #[schema(inline)]
    pub history: Vec<HistoryView>,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScreenView {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentView {
    #[schema(value_type = crate::projection::PaymentStatus)]
    pub status: String,
}

/// Points the booking earned, had taken back, spent and had given back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PointsView {
    #[schema(minimum = 0)]
    pub earned: i64,
    #[schema(minimum = 0)]
    pub withdrawn: i64,
    #[schema(minimum = 0)]
    pub spent: i64,
    #[schema(minimum = 0)]
    pub refunded: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryView {
    #[schema(value_type = crate::projection::ReservationStatus)]
    pub status: String,
    #[schema(format = DateTime)]
    pub at: String,
}
