//! `GET /points`: the caller's balance and the entries behind it.
//! `POST /points/purchases`: the caller buys points with their card.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use runtime::api::{E400, E402, E404, E422};
use runtime::http::{ApiError, Body, Caller, Page};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::sql::{Entry, EntryKind, Wallets};
use crate::app::{PurchaseError, Purchases, Receipt};
use crate::domain::Points;

/// The wallet's part of the API document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(points, purchase))]
pub struct Api;

#[derive(Clone, Debug)]
struct Routes {
    wallets: Wallets,
    purchases: Purchases,
}

pub fn router(wallets: Wallets, purchases: Purchases) -> Router {
    Router::new()
        .route("/points", get(points))
        .route("/points/purchases", post(purchase))
        .with_state(Routes { wallets, purchases })
}

/// The header under which a client makes a purchase safe to repeat.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Longest accepted `Idempotency-Key` (as for bookings).
use runtime::api::MAX_IDEMPOTENCY_KEY;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BuyPoints)]
struct PurchaseRequest {
    /// Points to buy; the card is charged as much money (minor units).
    /// Read as any JSON value, so that a wrong one is named precisely.
    #[schema(value_type = i64, minimum = 1, maximum = 1_000_000)]
    amount: Value,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PointsPurchase)]
struct PurchaseView {
    /// The balance right after this purchase.
    balance: u64,
    purchase_id: String,
    #[schema(minimum = 1)]
    points: u64,
}

impl From<Receipt> for PurchaseView {
    fn from(receipt: Receipt) -> Self {
        PurchaseView {
            balance: receipt.balance.value(),
            purchase_id: receipt.purchase_id,
            points: receipt.points.value(),
        }
    }
}

/// The points asked for: a whole number (`3000`, or `3000.0`) from 1 to
/// a million.
fn points_asked(amount: &Value) -> Result<Points, ApiError> {
    let not_whole = || {
        ApiError::Unprocessable(format!(
            "amount must be a whole number of points (got {amount})"
        ))
    };
    let whole = match amount {
        Value::Number(number) => match (number.as_i64(), number.as_u64(), number.as_f64()) {
            (Some(whole), _, _) => whole,
            // Beyond i64: too many, whatever the limit.
            (None, Some(_), _) => i64::MAX,
            (None, None, Some(float)) if float.fract() == 0.0 && float.abs() < 1e15 => float as i64,
            _ => return Err(not_whole()),
        },
        _ => return Err(not_whole()),
    };
    Points::purchase(whole).map_err(|invalid| ApiError::Unprocessable(invalid.to_string()))
}

/// The caller's `Idempotency-Key`, read as bookings read theirs.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|key| !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY)
        .map(Some)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            ))
        })
}

#[utoipa::path(post, path = "/points/purchases", tag = "points", operation_id = "buyPoints",
    summary = "Buy points with my card",
    description = "One point costs one unit of money. Payment charges the card at once while the caller waits (behind a circuit breaker); only a charge payment confirms is credited, with the entry `purchased`. The first purchase opens the wallet, later ones top it up. Declined → 402 with the reason; payment unavailable → 503 with `Retry-After` (at once while the breaker is open); nothing is credited in either case, and a charge whose answer timed out is taken back. Repeating a request with the same `Idempotency-Key` answers the first purchase (201, same body) without charging again; the same key for another amount is answered 422.",
    params(runtime::api::IdempotencyKey),
    request_body = PurchaseRequest,
    responses(
        (status = 201, description = "Charged and credited.", body = PurchaseView),
        (status = 402, response = E402),
        (status = 404, response = E404),
        (status = 422, response = E422),
    ))]
async fn purchase(
    State(routes): State<Routes>,
    caller: Caller,
    headers: HeaderMap,
    Body(request): Body<PurchaseRequest>,
) -> Result<(StatusCode, Json<PurchaseView>), ApiError> {
    let points = points_asked(&request.amount)?;
    let key = idempotency_key(&headers)?;
    let receipt = routes
        .purchases
        .buy(caller.user_id, points, key)
        .await
        .map_err(|error| match error {
            PurchaseError::Declined(reason) => ApiError::PaymentRequired(reason),
            PurchaseError::Unavailable {
                detail,
                retry_after_secs,
            } => ApiError::Unavailable {
                detail,
                retry_after_secs,
            },
            PurchaseError::KeyReused(_) => ApiError::Unprocessable(error.to_string()),
            PurchaseError::Infrastructure(error) => ApiError::Internal(error),
        })?;
    Ok((StatusCode::CREATED, Json(receipt.into())))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Points)]
pub struct PointsView {
    balance: u64,
    entries: Vec<EntryView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PointsEntry)]
struct EntryView {
    id: String,
    #[schema(schema_with = entry_kinds)]
    kind: &'static str,
    amount: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    reservation_id: Option<String>,
    /// On a withdrawal: points that could not be taken back because they
    /// were already spent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 1)]
    shortfall: Option<u64>,
    #[schema(format = DateTime)]
    at: String,
}

fn entry_kinds() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    runtime::api::string_enum(&EntryKind::ALL.map(EntryKind::as_str))
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

#[utoipa::path(get, path = "/points", tag = "points", operation_id = "myPoints",
    summary = "My loyalty points: balance and history, newest first",
    description = "Points are bought with a card (`purchased`), earned by captured card payments (10 % by default, `earned`) and taken back when such a payment is refunded, never below zero (`withdrawn`), spent on bookings paid with points (`spent`) and given back when such a booking is rejected, expires or is cancelled (`refunded`). Not served where the deployment turned the wallet off (404).",
    params(Page),
    responses(
        (status = 200, description = "Balance and entries.", body = PointsView),
        (status = 400, response = E400),
        (status = 404, response = E404),
        (status = 422, response = E422),
    ))]
async fn points(
    State(Routes { wallets, .. }): State<Routes>,
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

    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::adapters::policy::PointsPolicy;
    use crate::adapters::sql::MIGRATIONS;
    use crate::domain::EarnRate;
    use crate::testing::{unavailable, FakeCard};

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

        let purchases = Purchases::new(
            wallets.clone(),
            Arc::new(FakeCard::default()),
            Duration::from_secs(5),
        );
        let router = super::router(wallets, purchases);
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

    struct Shop {
        _db: crate::testing::Db,
        router: Router,
        card: FakeCard,
    }

    async fn shop() -> Shop {
        let db = crate::testing::sqlite().await;
        let card = FakeCard::default();
        let purchases = Purchases::new(
            db.wallets.clone(),
            Arc::new(card.clone()),
            Duration::from_secs(5),
        );
        Shop {
            router: super::router(db.wallets.clone(), purchases),
            _db: db,
            card,
        }
    }

    async fn buy(
        router: &Router,
        user: UserId,
        body: &str,
        key: Option<&str>,
    ) -> (StatusCode, Option<String>, serde_json::Value) {
        let mut request = Request::post("/points/purchases")
            .header(USER_ID_HEADER, user.to_string())
            .header(ROLE_HEADER, "customer")
            .header("content-type", "application/json");
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = router
            .clone()
            .oneshot(request.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|value| value.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            retry_after,
            serde_json::from_slice(&body).unwrap_or_default(),
        )
    }

    #[tokio::test]
    async fn a_first_purchase_opens_the_wallet_and_the_next_tops_it_up() {
        let shop = shop().await;
        let user = UserId::new();
        let (status, _, first) = buy(&shop.router, user, r#"{"amount": 3000}"#, None).await;
        assert_eq!(status, StatusCode::CREATED, "{first}");
        assert_eq!(first["balance"], 3_000);
        assert_eq!(first["points"], 3_000);
        assert!(first["purchaseId"].is_string());
        let (status, _, second) = buy(&shop.router, user, r#"{"amount": 5000}"#, None).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(second["balance"], 8_000);
        assert_ne!(first["purchaseId"], second["purchaseId"]);
        assert_eq!(shop.card.charges().len(), 2);

        let (_, body) = get(shop.router.clone(), user, "/points").await;
        assert_eq!(body["balance"], 8_000);
        let entries = body["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0]["kind"], "purchased");
        assert_eq!(entries[0]["amount"], 5_000);
        assert!(entries[0].get("reservationId").is_none());
    }

    #[tokio::test]
    async fn a_repeat_under_the_same_idempotency_key_answers_the_first_purchase_and_charges_once() {
        let shop = shop().await;
        let user = UserId::new();
        let (status, _, first) = buy(&shop.router, user, r#"{"amount": 3000}"#, Some("k-1")).await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _, again) = buy(&shop.router, user, r#"{"amount": 3000}"#, Some("k-1")).await;
        assert_eq!((status, &again), (StatusCode::CREATED, &first));
        assert_eq!(shop.card.charges().len(), 1);

        // The key is the user's own: another user's is another purchase.
        let (status, _, other) = buy(
            &shop.router,
            UserId::new(),
            r#"{"amount": 3000}"#,
            Some("k-1"),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(other["balance"], 3_000);
        assert_ne!(other["purchaseId"], first["purchaseId"]);

        let (status, _, problem) =
            buy(&shop.router, user, r#"{"amount": 5000}"#, Some("k-1")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(problem["detail"]
            .as_str()
            .unwrap()
            .contains("used for a purchase of 3000 points"));
        let (status, _, _) = buy(&shop.router, user, r#"{"amount": 3000}"#, Some(" ")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn amounts_that_are_not_1_to_a_million_whole_points_are_refused_by_name() {
        let shop = shop().await;
        let user = UserId::new();
        for (body, detail) in [
            (
                r#"{"amount": 0}"#,
                "amount must be at least 1 point (got 0)",
            ),
            (
                r#"{"amount": -5}"#,
                "amount must be at least 1 point (got -5)",
            ),
            (
                r#"{"amount": 1000001}"#,
                "amount must be at most 1000000 points (got 1000001)",
            ),
            (
                r#"{"amount": 2.5}"#,
                "amount must be a whole number of points (got 2.5)",
            ),
            (
                r#"{"amount": "3000"}"#,
                "amount must be a whole number of points (got \"3000\")",
            ),
        ] {
            let (status, _, problem) = buy(&shop.router, user, body, None).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(problem["detail"], detail, "{body}");
        }
        let (status, _, _) = buy(&shop.router, user, r#"{}"#, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, _) = buy(&shop.router, user, r#"{"amount": 1000000}"#, None).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(shop.card.charges().len(), 1);
    }

    #[tokio::test]
    async fn a_declined_card_answers_402_and_payment_unavailable_503_with_nothing_credited() {
        let shop = shop().await;
        let user = UserId::new();
        shop.card
            .answer_next(Err(runtime::breaker::CallError::Declined(
                "the card was declined: 60000 is over its limit of 50000".to_owned(),
            )));
        let (status, _, problem) =
            buy(&shop.router, user, r#"{"amount": 60000}"#, Some("big")).await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
        assert!(problem["detail"]
            .as_str()
            .unwrap()
            .contains("over its limit"));
        // Repeated, it is still declined, without asking the card again.
        let (status, _, _) = buy(&shop.router, user, r#"{"amount": 60000}"#, Some("big")).await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
        assert_eq!(shop.card.charges().len(), 1);

        shop.card.answer_next(Err(unavailable(false)));
        let (status, retry_after, problem) =
            buy(&shop.router, user, r#"{"amount": 3000}"#, None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after.as_deref(), Some("2"));
        assert!(problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("payment is unavailable, try again later"));

        let (_, body) = get(shop.router.clone(), user, "/points").await;
        assert_eq!(body, serde_json::json!({"balance": 0, "entries": []}));
    }
}
