//! Customer REST routes for reservations.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use contracts::reservation::PaymentMethod;
use kernel::ids::{ListingId, ReservationId};
use runtime::http::{timestamp, ApiError, Body, Caller, Page};
use serde::{Deserialize, Serialize};

use crate::adapters::sql::payment_method_str;
use crate::app::{AppError, PlaceReservation, Reservations};
use crate::domain::{Order, Quantity, Reservation, ReservationError};

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 200;

pub fn router(reservations: Reservations) -> Router {
    Router::new()
        .route("/reservations", post(place).get(list))
        .route("/reservations/{id}", get(find))
        .route("/reservations/{id}/cancel", post(cancel))
        .route("/reservations/{id}/return", post(return_rental))
        .with_state(reservations)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PlaceRequest {
    listing_id: String,
    quantity: Option<i64>,
    seats: Option<Vec<String>>,
    payment_method: Option<PaymentMethod>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationView {
    id: String,
    listing_id: String,
    title: String,
    user_id: String,
    quantity: u32,
    seats: Vec<String>,
    amount: i64,
    payment_method: &'static str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    cancel_requested: bool,
    /// While pending: when the booking is expired if not confirmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    deadline: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<&Reservation> for ReservationView {
    fn from(r: &Reservation) -> Self {
        ReservationView {
            id: r.id.to_string(),
            listing_id: r.listing.id.to_string(),
            title: r.listing.title.clone(),
            user_id: r.user_id.to_string(),
            quantity: r.quantity.get(),
            seats: r.seats.iter().map(ToString::to_string).collect(),
            amount: r.amount.minor_units(),
            payment_method: payment_method_str(r.payment_method),
            status: r.status.as_str(),
            reason: r.reason.clone(),
            cancel_requested: r.cancel_requested,
            deadline: (r.status == crate::domain::Status::Pending).then(|| timestamp(r.deadline)),
            created_at: timestamp(r.created_at),
            updated_at: timestamp(r.updated_at),
        }
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::Domain(e) => match e {
                ReservationError::QuantityOutOfRange(_)
                | ReservationError::AmountTooLarge { .. }
                | ReservationError::NoSeats
                | ReservationError::TooManySeats(_)
                | ReservationError::DuplicateSeat(_)
                | ReservationError::SeatsOnQuotaListing(_)
                | ReservationError::SeatsRequired(_)
                | ReservationError::UnknownSeats { .. }
                | ReservationError::ListingWithdrawn(_)
                | ReservationError::OneBikePerRental(_)
                | ReservationError::NotARental(_) => ApiError::Unprocessable(e.to_string()),
                ReservationError::NotFound => ApiError::NotFound("no such reservation".to_owned()),
                ReservationError::AlreadyPlaced
                | ReservationError::AlreadyCancelled
                | ReservationError::NotCancellable(_)
                | ReservationError::AlreadyReturned
                | ReservationError::NotReturnable(_) => ApiError::Conflict(e.to_string()),
            },
            AppError::UnknownListing(id) => {
                ApiError::Unprocessable(format!("no listing with id {id}"))
            }
            AppError::Lookup(e) => ApiError::Unavailable {
                detail: format!("{e}; try again shortly"),
                retry_after_secs: 1,
            },
            AppError::PaymentDeclined(reason) => {
                ApiError::PaymentRequired(format!("payment declined: {reason}"))
            }
            AppError::PaymentUnavailable {
                detail,
                retry_after_secs,
            } => ApiError::Unavailable {
                detail,
                retry_after_secs,
            },
            AppError::PointsNotAccepted => ApiError::Unprocessable(error.to_string()),
            AppError::Infrastructure(e) => ApiError::Internal(e),
        }
    }
}

async fn place(
    State(reservations): State<Reservations>,
    caller: Caller,
    headers: HeaderMap,
    Body(request): Body<PlaceRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let listing_id = listing_id(&request.listing_id)?;
    let order = order(request.quantity, request.seats.unwrap_or_default())?;
    let idempotency_key = idempotency_key(&headers)?;
    let reservation = reservations
        .place(PlaceReservation {
            user_id: caller.user_id,
            listing_id,
            order,
            payment_method: request.payment_method,
            idempotency_key,
        })
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        [(
            header::LOCATION,
            format!("/reservations/{}", reservation.id),
        )],
        Json(ReservationView::from(&reservation)),
    ))
}

/// The listing to book; an id that cannot exist names no listing.
pub(super) fn listing_id(text: &str) -> Result<ListingId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::Unprocessable(format!("no listing with id {text:?}")))
}

/// Named seats, or a number of tickets (1 when neither is given). A
/// quantity beside seats must agree with them.
pub(super) fn order(quantity: Option<i64>, seats: Vec<String>) -> Result<Order, ApiError> {
    let unprocessable = |e: ReservationError| ApiError::Unprocessable(e.to_string());
    if seats.is_empty() {
        let quantity = Quantity::parse(quantity.unwrap_or(1)).map_err(unprocessable)?;
        return Ok(Order::Tickets(quantity));
    }
    let labels = seats
        .iter()
        .map(|seat| seat.parse())
        .collect::<Result<Vec<kernel::SeatLabel>, _>>()
        .map_err(|e| ApiError::Unprocessable(format!("seats: {e}")))?;
    if quantity.is_some_and(|q| usize::try_from(q).ok() != Some(labels.len())) {
        return Err(ApiError::Unprocessable(format!(
            "quantity {} disagrees with the {} seats named; give the seats alone",
            quantity.unwrap_or_default(),
            labels.len()
        )));
    }
    Order::seats(labels).map_err(unprocessable)
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    checked_idempotency_key(value.to_str().ok()).map(Some)
}

/// A key as given (`None`: not text), trimmed, or why it is refused.
pub(super) fn checked_idempotency_key(given: Option<&str>) -> Result<String, ApiError> {
    let key = given
        .map(str::trim)
        .filter(|k| {
            !k.is_empty()
                && k.len() <= MAX_IDEMPOTENCY_KEY
                && k.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            ))
        })?;
    Ok(key.to_owned())
}

async fn list(
    State(reservations): State<Reservations>,
    caller: Caller,
    page: Page,
) -> Result<Json<Vec<ReservationView>>, ApiError> {
    let owner = (!caller.is_admin()).then_some(caller.user_id);
    let list = reservations
        .list(owner, page.after_id()?, page.limit)
        .await?
        .ok_or_else(|| page.unknown_after("reservation"))?;
    Ok(Json(list.iter().map(ReservationView::from).collect()))
}

/// Parses an id from the path; an id that cannot exist is simply not found.
pub(super) fn reservation_id(id: &str) -> Result<ReservationId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::NotFound(format!("no reservation with id {id:?}")))
}

async fn find(
    State(reservations): State<Reservations>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ReservationView>, ApiError> {
    let reservation = reservations
        .find_for(reservation_id(&id)?, caller.user_id, caller.is_admin())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no reservation with id {id:?}")))?;
    Ok(Json(ReservationView::from(&reservation)))
}

async fn cancel(
    State(reservations): State<Reservations>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let reservation = reservations
        .cancel(reservation_id(&id)?, caller.user_id, caller.is_admin())
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ReservationView::from(&reservation)),
    ))
}

async fn return_rental(
    State(reservations): State<Reservations>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let reservation = reservations
        .return_rental(reservation_id(&id)?, caller.user_id, caller.is_admin())
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ReservationView::from(&reservation)),
    ))
}
