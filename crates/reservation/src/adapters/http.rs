//! Customer REST routes for reservations.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use contracts::reservation::PaymentMethod;
use kernel::ids::{ListingId, ReservationId};
use runtime::api::{E400, E404, E409, E422};
use runtime::http::{timestamp, ApiError, Body, Caller, Page};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::adapters::sql::payment_method_str;
use crate::app::{AppError, PlaceReservation, Reservations};
use crate::domain::{Order, Quantity, Reservation, ReservationError};

/// Longest accepted `Idempotency-Key`.
use runtime::api::MAX_IDEMPOTENCY_KEY;

/// The reservation service's part of the API document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(place, list, find, cancel, return_rental))]
pub struct Api;

pub fn router(reservations: Reservations) -> Router {
    Router::new()
        .route("/reservations", post(place).get(list))
        .route("/reservations/{id}", get(find))
        .route("/reservations/{id}/cancel", post(cancel))
        .route("/reservations/{id}/return", post(return_rental))
        .with_state(reservations)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = PlaceReservation)]
struct PlaceRequest {
    listing_id: String,
    /// Tickets from a quota. A seated showing takes `seats` instead (a
    /// quantity beside them must equal their number).
    #[schema(nullable = false, minimum = 1, maximum = 1_000, default = 1)]
    quantity: Option<i64>,
    /// Seats of a seated showing (at most 10, none twice, each on the
    /// listing; 422 names a bad one). The quantity is their number. Quota
    /// listings take no seats.
    #[schema(schema_with = seat_labels)]
    seats: Option<Vec<String>>,
    /// Default: points for a bike, card otherwise. Points are taken by the
    /// wallet after the booking is placed: not enough points ends it
    /// rejected with the reason. 422 where no wallet is deployed.
    #[schema(nullable = false)]
    payment_method: Option<PaymentMethod>,
}

fn seat_labels() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    runtime::api::from_json(serde_json::json!({
        "type": "array", "maxItems": crate::domain::MAX_SEATS_PER_RESERVATION, "uniqueItems": true,
        "items": {"type": "string", "examples": ["A-1"]},
        "description": "Seats of a seated showing (at most 10, none twice, each on the listing; 422 names a bad one). The quantity is their number. Quota listings take no seats.",
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Reservation)]
pub struct ReservationView {
    id: String,
    listing_id: String,
    /// The listing's title when booked.
    title: String,
    user_id: String,
    #[schema(minimum = 1)]
    quantity: u32,
    /// The seats booked (seated showings); empty for a quota.
    seats: Vec<String>,
    #[schema(value_type = kernel::Money)]
    amount: i64,
    #[schema(value_type = PaymentMethod)]
    payment_method: &'static str,
    #[schema(value_type = crate::domain::Status)]
    status: &'static str,
    /// Why it was rejected (e.g. sold out, seat A-1 is taken, not
    /// confirmed within its deadline).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    reason: Option<String>,
    cancel_requested: bool,
    /// While `pending`: when it is expired and compensated if catalog has
    /// not answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, format = DateTime)]
    deadline: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
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

#[utoipa::path(post, path = "/reservations", tag = "reservations", operation_id = "placeReservation",
    summary = "Book tickets or seats",
    description = "A card booking is paid first: payment authorises the amount synchronously (610 ms timeout, behind a circuit breaker). Declined → 402 with the reason; payment unavailable → 503 `payment is unavailable, try again later` with `Retry-After`, at once while the breaker is open. No authorisation, no booking: nothing is stored. Accepted as `pending`; catalog then holds the tickets or seats or refuses them (sold out, seat taken), and the reservation becomes `confirmed` (payment captured) or `rejected` with a `reason` (authorisation voided). A booking still pending at its `deadline` ends `rejected` (expired) and is compensated. Repeating a request with the same `Idempotency-Key` answers the same reservation instead of booking twice.",
    params(runtime::api::IdempotencyKey),
    request_body = PlaceRequest,
    responses(
        (status = 202, description = "Accepted; `status` is `pending`.", body = ReservationView,
            headers(("Location" = String, description = "Where the created resource can be read."))),
        (status = 402, response = runtime::api::E402),
        (status = 409, response = E409),
        (status = 422, response = E422),
    ))]
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

#[utoipa::path(get, path = "/reservations", tag = "reservations", operation_id = "listReservations",
    summary = "My reservations (admin: all)",
    params(Page),
    responses(
        (status = 200, description = "Reservations.", body = Vec<ReservationView>),
        (status = 400, response = E400),
        (status = 422, response = E422),
    ))]
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

#[utoipa::path(get, path = "/reservations/{id}", tag = "reservations", operation_id = "getReservation",
    summary = "One reservation",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The reservation.", body = ReservationView),
        (status = 404, response = E404),
    ))]
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

#[utoipa::path(post, path = "/reservations/{id}/cancel", tag = "reservations", operation_id = "cancelReservation",
    summary = "Cancel a reservation",
    description = "Accepted: a pending or confirmed reservation becomes `cancelled` shortly after (its tickets are released).",
    params(("id" = String, Path)),
    responses(
        (status = 202, description = "Cancellation accepted.", body = ReservationView),
        (status = 404, response = E404),
        (status = 409, description = "It cannot be cancelled (already cancelled, or rejected).",
            body = runtime::http::Problem, content_type = "application/problem+json"),
    ))]
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

#[utoipa::path(post, path = "/reservations/{id}/return", tag = "reservations", operation_id = "returnRental",
    summary = "Return a rented bike",
    description = "Ends a confirmed bike rental (`returned`) and frees the bike; the points stay spent.",
    params(("id" = String, Path)),
    responses(
        (status = 202, description = "Returned.", body = ReservationView),
        (status = 404, response = E404),
        (status = 409, description = "Already returned, or the rental is not under way (pending, cancelled, rejected).",
            body = runtime::http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a rental: only bike rentals are returned.",
            body = runtime::http::Problem, content_type = "application/problem+json"),
    ))]
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

#[cfg(test)]
mod tests {
    use crate::domain::{MAX_SEATS_PER_RESERVATION, MAX_TICKETS_PER_RESERVATION};

    #[test]
    fn the_document_bounds_a_booking_as_the_domain_does() {
        let document = serde_json::to_value(crate::api()).unwrap();
        let place = &document["components"]["schemas"]["PlaceReservation"]["properties"];
        assert_eq!(place["quantity"]["maximum"], MAX_TICKETS_PER_RESERVATION);
        assert_eq!(place["seats"]["maxItems"], MAX_SEATS_PER_RESERVATION);
    }
}
