//! Payment REST routes. `/internal/*` is for other services (the gateway
//! routes no client there); `/payments` and `/admin/payment-provider` are
//! public through the gateway.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use kernel::ids::{PaymentId, ReservationId, UserId};
use kernel::Money;
use runtime::http::{timestamp, ApiError, Body, Caller, Page};
use serde::{Deserialize, Serialize};

use crate::app::{Authorisation, AuthoriseError, Payments};
use crate::domain::{Payment, ProviderSettings};
use crate::provider::FakeProvider;

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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    id: PaymentId,
    #[serde(skip_serializing_if = "Option::is_none")]
    reservation_id: Option<ReservationId>,
    user_id: UserId,
    amount: i64,
    status: &'static str,
    /// A capture, void or refund waiting for the provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    settling: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    created_at: String,
    updated_at: String,
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
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProviderSettingsView {
    latency_ms: u64,
    failure_rate: f64,
    down: bool,
    #[serde(default)]
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

async fn provider_settings(
    State(routes): State<Routes>,
    caller: Caller,
) -> Result<Json<ProviderSettingsView>, ApiError> {
    caller.require_admin()?;
    Ok(Json(routes.provider.settings().into()))
}

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
