//! `GET /points`: the caller's balance and the entries behind it.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use runtime::http::{ApiError, Caller, Page};
use serde::Serialize;

use super::sql::{Entry, EntryKind, Wallets};

pub fn router(wallets: Wallets) -> Router {
    Router::new()
        .route("/points", get(points))
        .with_state(wallets)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PointsView {
    balance: u64,
    entries: Vec<EntryView>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EntryView {
    id: String,
    kind: &'static str,
    amount: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    reservation_id: Option<String>,
    /// Only on a withdrawal that could not take everything back.
    #[serde(skip_serializing_if = "Option::is_none")]
    shortfall: Option<u64>,
    at: String,
}

impl From<Entry> for EntryView {
    fn from(entry: Entry) -> Self {
        let shortfall = (entry.kind == EntryKind::Withdrawn && !entry.shortfall.is_zero())
            .then_some(entry.shortfall.value());
        EntryView {
            id: entry.id,
            kind: entry.kind.as_str(),
            amount: entry.points.value(),
            reservation_id: entry.reservation_id.map(|id| id.to_string()),
            shortfall,
            at: entry.at,
        }
    }
}

async fn points(
    State(wallets): State<Wallets>,
    caller: Caller,
    page: Page,
) -> Result<Json<PointsView>, ApiError> {
    let after: Option<uuid::Uuid> = page.after_id()?;
    let entries = wallets
        .entries(caller.user_id, after.map(|id| id.to_string()), page.limit)
        .await?
        .ok_or_else(|| page.unknown_after("wallet entry"))?;
    let balance = wallets.balance(caller.user_id).await?;
    Ok(Json(PointsView {
        balance: balance.value(),
        entries: entries.into_iter().map(EntryView::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use contracts::payment::{Charge, PaymentEvent};
    use contracts::IntegrationEvent;
    use kernel::ids::{PaymentId, ReservationId, UserId};
    use kernel::Money;
    use runtime::consumer::EventHandler;
    use runtime::http::{ROLE_HEADER, USER_ID_HEADER};
    use runtime::store::sqlite_url;
    use runtime::Store;
    use tower::ServiceExt;

    use super::*;
    use crate::adapters::policy::PointsPolicy;
    use crate::adapters::sql::MIGRATIONS;
    use crate::domain::EarnRate;

    async fn get(router: Router, user: UserId, uri: &str) -> (StatusCode, serde_json::Value) {
        let response = router
            .oneshot(
                Request::get(uri)
                    .header(USER_ID_HEADER, user.to_string())
                    .header(ROLE_HEADER, "customer")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn points_show_the_balance_and_entries_newest_first_a_page_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&sqlite_url(dir.path(), "wallet"), MIGRATIONS)
            .await
            .unwrap();
        let wallets = Wallets::new(store.clone());
        let policy = PointsPolicy::new(wallets.clone(), EarnRate::percent(10));
        let user = UserId::new();
        let reservation = ReservationId::new();
        let charge = Charge {
            payment_id: PaymentId::new(),
            user_id: user,
            amount: Money::parse(15_000).unwrap(),
            reservation_id: Some(reservation),
        };
        let mut tx = store.begin().await.unwrap();
        let captured = PaymentEvent::PaymentCaptured {
            charge: charge.clone(),
            captured_at: time::macros::datetime!(2026-11-21 10:00 UTC),
        };
        policy
            .handle(&mut tx, &captured.to_envelope())
            .await
            .unwrap();
        let refunded = PaymentEvent::PaymentRefunded {
            charge,
            refunded_at: time::macros::datetime!(2026-11-22 10:00 UTC),
        };
        policy
            .handle(&mut tx, &refunded.to_envelope())
            .await
            .unwrap();
        store.commit(tx).await.unwrap();

        let router = super::router(wallets);
        let (status, body) = get(router.clone(), UserId::new(), "/points").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, serde_json::json!({"balance": 0, "entries": []}));

        let (_, body) = get(router.clone(), user, "/points?limit=1").await;
        assert_eq!(body["balance"], 0);
        let entries = body["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0]["kind"], "withdrawn");
        assert_eq!(entries[0]["amount"], 1_500);
        assert_eq!(entries[0]["reservationId"], reservation.to_string());
        assert!(entries[0].get("shortfall").is_none());

        let after = entries[0]["id"].as_str().unwrap();
        let (_, body) = get(router.clone(), user, &format!("/points?after={after}")).await;
        assert_eq!(body["entries"][0]["kind"], "earned");
        assert_eq!(body["entries"][0]["at"], "2026-11-21T10:00:00.000000Z");

        let unknown = uuid::Uuid::now_v7();
        let (status, _) = get(router, user, &format!("/points?after={unknown}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}
