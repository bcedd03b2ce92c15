//! Payment REST routes. `/internal/*` is for other services (the gateway
//! routes no client there): reservation's authorisations and their voids,
//! wallet's charges (points bought by card) and their cancels.
//! `/payments` and `/admin/payment-provider` are public through the gateway.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use kernel::ids::{PaymentId, ReservationId, UserId};
use kernel::Money;
use runtime::api::{E400, E422};
use runtime::http::{timestamp, ApiError, Body, Caller, Page};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::{Authorisation, AuthoriseError, ChargeError, Payments, Sale};
use crate::domain::{Payment, ProviderSettings};
use crate::provider::FakeProvider;

/// The payment service's public part of the API document (the
/// `/internal/…` routes are for other services only).
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, provider_settings, change_provider))]
pub struct Api;

#[derive(Clone, Debug)]
struct Routes {
    payments: Payments,
    provider: FakeProvider,
}

pub fn router(payments: Payments, provider: FakeProvider) -> Router {
    Router::new()
        .route("/internal/authorisations", post(authorise))
        .route(
            "/internal/authorisations/{reservation_id}/void",
            post(abandon),
        )
        .route("/internal/charges", post(charge))
        .route("/internal/charges/{payment_id}/cancel", post(cancel_charge))
        .route("/payments", get(list))
        .route(
            "/admin/payment-provider",
            get(provider_settings).put(change_provider),
        )
        .with_state(Routes { payments, provider })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AuthoriseRequest {
    reservation_id: ReservationId,
    user_id: UserId,
    amount: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AbandonRequest {
    user_id: UserId,
    amount: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChargeRequest {
    payment_id: PaymentId,
    user_id: UserId,
    amount: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CancelRequest {
    user_id: UserId,
    amount: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Payment)]
pub struct PaymentView {
    #[schema(value_type = String)]
    id: PaymentId,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, nullable = false)]
    reservation_id: Option<ReservationId>,
    #[schema(value_type = String)]
    user_id: UserId,
    #[schema(value_type = kernel::Money)]
    amount: i64,
    #[schema(value_type = crate::domain::Status)]
    status: &'static str,
    /// A settlement requested by the saga and not yet done by the provider
    /// (it waits while the provider is down).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = settlements)]
    settling: Option<&'static str>,
    /// Why it was declined or voided early.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    reason: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

fn settlements() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    use crate::domain::Settlement;
    runtime::api::string_enum(
        &[Settlement::Capture, Settlement::Void, Settlement::Refund].map(Settlement::as_str),
    )
}

impl From<&Payment> for PaymentView {
    fn from(p: &Payment) -> Self {
        PaymentView {
            id: p.id,
            reservation_id: p.reservation_id,
            user_id: p.user_id,
            amount: p.amount.minor_units(),
            status: p.status.as_str(),
            settling: p.pending.map(|s| s.as_str()),
            reason: p.reason.clone(),
            created_at: timestamp(p.created_at),
            updated_at: timestamp(p.updated_at),
        }
    }
}

fn amount(value: i64) -> Result<Money, ApiError> {
    Money::parse(value).map_err(|e| ApiError::Unprocessable(format!("amount: {e}")))
}

async fn authorise(
    State(routes): State<Routes>,
    Body(request): Body<AuthoriseRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let payment = routes
        .payments
        .authorise(Authorisation {
            reservation_id: request.reservation_id,
            user_id: request.user_id,
            amount: amount(request.amount)?,
        })
        .await
        .map_err(|error| match error {
            AuthoriseError::Declined(reason) => ApiError::PaymentRequired(reason),
            AuthoriseError::Unavailable(why) => ApiError::Unavailable {
                detail: format!("the payment provider is unavailable ({why}); try again later"),
                retry_after_secs: 1,
            },
            AuthoriseError::Voided(_) => ApiError::Conflict(error.to_string()),
            AuthoriseError::Infrastructure(error) => ApiError::Internal(error),
        })?;
    Ok((StatusCode::CREATED, Json(PaymentView::from(&payment))))
}

async fn abandon(
    State(routes): State<Routes>,
    Path(reservation_id): Path<String>,
    Body(request): Body<AbandonRequest>,
) -> Result<StatusCode, ApiError> {
    let reservation: ReservationId = reservation_id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no reservation with id {reservation_id:?}")))?;
    routes
        .payments
        .abandon(reservation, request.user_id, amount(request.amount)?)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

fn charge_error(error: ChargeError) -> ApiError {
    match error {
        ChargeError::Declined(reason) => ApiError::PaymentRequired(reason),
        ChargeError::Unavailable(why) => ApiError::Unavailable {
            detail: format!("the payment provider is unavailable ({why}); try again later"),
            retry_after_secs: 1,
        },
        ChargeError::Cancelled(_) | ChargeError::Different(_) => {
            ApiError::Conflict(error.to_string())
        }
        ChargeError::Infrastructure(error) => ApiError::Internal(error),
    }
}

/// A card sale for no booking (points), authorised and captured at once;
/// idempotent by `paymentId`.
async fn charge(
    State(routes): State<Routes>,
    Body(request): Body<ChargeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let payment = routes
        .payments
        .charge(Sale {
            payment_id: request.payment_id,
            user_id: request.user_id,
            amount: amount(request.amount)?,
        })
        .await
        .map_err(charge_error)?;
    Ok((StatusCode::CREATED, Json(PaymentView::from(&payment))))
}

/// Takes back a charge whose caller never got the answer.
async fn cancel_charge(
    State(routes): State<Routes>,
    Path(payment_id): Path<String>,
    Body(request): Body<CancelRequest>,
) -> Result<StatusCode, ApiError> {
    let id: PaymentId = payment_id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no payment with id {payment_id:?}")))?;
    routes
        .payments
        .cancel_charge(id, request.user_id, amount(request.amount)?)
        .await
        .map_err(charge_error)?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(get, path = "/payments", tag = "payments", operation_id = "listPayments",
    summary = "My payments (admin: all)",
    params(Page),
    responses(
        (status = 200, description = "Payments, newest first.", body = Vec<PaymentView>),
        (status = 400, response = E400),
        (status = 422, response = E422),
    ))]
async fn list(
    State(routes): State<Routes>,
    caller: Caller,
    page: Page,
) -> Result<Json<Vec<PaymentView>>, ApiError> {
    let owner = (!caller.is_admin()).then_some(caller.user_id);
    let after: Option<PaymentId> = page.after_id()?;
    let payments = routes
        .payments
        .store()
        .list(owner, after.map(|id| id.to_string()), page.limit)
        .await?
        .ok_or_else(|| page.unknown_after("payment"))?;
    Ok(Json(payments.iter().map(PaymentView::from).collect()))
}

/// The provider's settings on the wire; every field is required, so a PUT
/// says the whole behaviour wanted (`declineAbove: null` for no limit).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = ProviderSettings)]
struct ProviderSettingsView {
    /// How long every provider call takes.
    #[schema(maximum = 60_000)]
    latency_ms: u64,
    /// Share of calls that fail as if the provider were overloaded.
    #[schema(minimum = 0, maximum = 1)]
    failure_rate: f64,
    /// Every call fails.
    down: bool,
    /// Cards are declined for amounts above this.
    #[serde(default)]
    #[schema(minimum = 0)]
    decline_above: Option<i64>,
}

impl From<ProviderSettings> for ProviderSettingsView {
    fn from(s: ProviderSettings) -> Self {
        ProviderSettingsView {
            latency_ms: s.latency_ms,
            failure_rate: s.failure_rate,
            down: s.down,
            decline_above: s.decline_above,
        }
    }
}

#[utoipa::path(get, path = "/admin/payment-provider", tag = "payments", operation_id = "getPaymentProvider",
    summary = "The built-in payment provider's behaviour (admin)", security(("bearerAuth" = ["admin"])),
    responses((status = 200, description = "The provider's settings now.", body = ProviderSettingsView)))]
async fn provider_settings(
    State(routes): State<Routes>,
    caller: Caller,
) -> Result<Json<ProviderSettingsView>, ApiError> {
    caller.require_admin()?;
    Ok(Json(routes.provider.settings().into()))
}

#[utoipa::path(put, path = "/admin/payment-provider", tag = "payments", operation_id = "setPaymentProvider",
    summary = "Steer the built-in payment provider: latency, failures, outage, decline rule (admin)",
    description = "For demos and tests of the circuit breaker: e.g. `down: true` makes every booking by card answer 503 and, after a few, opens the breaker.",
    security(("bearerAuth" = ["admin"])),
    request_body = ProviderSettingsView,
    responses(
        (status = 200, description = "The provider's settings now.", body = ProviderSettingsView),
        (status = 422, response = E422),
    ))]
async fn change_provider(
    State(routes): State<Routes>,
    caller: Caller,
    Body(view): Body<ProviderSettingsView>,
) -> Result<Json<ProviderSettingsView>, ApiError> {
    caller.require_admin()?;
    let settings = ProviderSettings {
        latency_ms: view.latency_ms,
        failure_rate: view.failure_rate,
        down: view.down,
        decline_above: view.decline_above,
    }
    .validate()
    .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    routes.provider.set(settings);
    Ok(Json(settings.into()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body as HttpBody;
    use axum::http::{header, Request};
    use runtime::http::{ROLE_HEADER, USER_ID_HEADER};
    use runtime::store::sqlite_url;
    use runtime::Store;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    use super::*;
    use crate::adapters::sql::PaymentStore;

    async fn routes(dir: &tempfile::TempDir) -> (Router, FakeProvider) {
        let store = Store::connect(&sqlite_url(dir.path(), "payment"), crate::MIGRATIONS)
            .await
            .unwrap();
        let provider = FakeProvider::new(ProviderSettings {
            decline_above: Some(50_000),
            ..ProviderSettings::default()
        });
        let payments = Payments::new(PaymentStore::new(store), Arc::new(provider.clone()));
        (router(payments, provider.clone()), provider)
    }

    async fn call(router: &Router, request: Request<HttpBody>) -> (StatusCode, Value) {
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    fn post(uri: &str, body: &Value) -> Request<HttpBody> {
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(HttpBody::from(body.to_string()))
            .unwrap()
    }

    #[tokio::test]
    async fn a_charge_answers_201_again_402_declined_503_unavailable_and_shows_in_payments() {
        let dir = tempfile::tempdir().unwrap();
        let (router, provider) = routes(&dir).await;
        let user = UserId::new();
        let sale = json!({"paymentId": PaymentId::new(), "userId": user, "amount": 3000});

        let (status, paid) = call(&router, post("/internal/charges", &sale)).await;
        assert_eq!(status, StatusCode::CREATED, "{paid}");
        assert_eq!(paid["status"], "captured");
        assert_eq!(paid["amount"], 3000);
        assert!(paid.get("reservationId").is_none());
        let (status, again) = call(&router, post("/internal/charges", &sale)).await;
        assert_eq!((status, &again), (StatusCode::CREATED, &paid));

        let too_much = json!({"paymentId": PaymentId::new(), "userId": user, "amount": 60000});
        let (status, problem) = call(&router, post("/internal/charges", &too_much)).await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{problem}");
        assert!(problem["detail"]
            .as_str()
            .unwrap()
            .contains("over its limit"));

        provider.set(ProviderSettings {
            down: true,
            ..ProviderSettings::default()
        });
        let later = json!({"paymentId": PaymentId::new(), "userId": user, "amount": 100});
        let (status, _) = call(&router, post("/internal/charges", &later)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

        let mine = Request::get("/payments")
            .header(USER_ID_HEADER, user.to_string())
            .header(ROLE_HEADER, "customer")
            .body(HttpBody::empty())
            .unwrap();
        let (status, listed) = call(&router, mine).await;
        assert_eq!(status, StatusCode::OK);
        let statuses: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["declined", "captured"], "newest first");
    }

    #[tokio::test]
    async fn a_cancelled_charge_is_refused_when_it_arrives_late() {
        let dir = tempfile::tempdir().unwrap();
        let (router, _) = routes(&dir).await;
        let id = PaymentId::new();
        let user = UserId::new();
        let (status, _) = call(
            &router,
            post(
                &format!("/internal/charges/{id}/cancel"),
                &json!({"userId": user, "amount": 3000}),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let sale = json!({"paymentId": id, "userId": user, "amount": 3000});
        let (status, problem) = call(&router, post("/internal/charges", &sale)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        assert!(problem["detail"].as_str().unwrap().contains("cancelled"));

        let (status, _) = call(
            &router,
            post(
                "/internal/charges/not-an-id/cancel",
                &json!({"userId": user, "amount": 3000}),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
