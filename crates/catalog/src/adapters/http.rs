//! Catalog REST routes: admins register, change and withdraw listings and
//! register screens; anyone browses listings and their seat maps.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use contracts::catalog::ListingKind;
use kernel::ids::{ListingId, ScreenId};
use runtime::api::{E400, E404, E409, E422};
use runtime::http::{timestamp, ApiError, Body, Caller, Page};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::sql::screens::ScreenRecord;
use super::sql::{ChangeError, ListingRecord, Listings, RegisterError, Screens, WithdrawError};
use crate::domain::screen::{AssignmentError, NewScreen, ScreenDraft};
use crate::domain::seat_map::{self, SeatMapPatch, SectionDraft};
use crate::domain::{
    ListingChangeDraft, ListingDraft, ListingError, NewListing, SeatingDraft, SoldBy,
};

/// The catalog's part of the API document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list,
    register,
    find,
    change,
    withdraw,
    seat_map,
    list_screens,
    register_screen,
    find_screen
))]
pub struct Api;

pub fn router(listings: Listings, screens: Screens) -> Router {
    Router::new()
        .route("/listings", get(list).post(register))
        .route("/listings/{id}", get(find).patch(change).delete(withdraw))
        .route("/listings/{id}/seats", get(seat_map))
        .with_state(listings)
        .merge(
            Router::new()
                .route("/screens", get(list_screens).post(register_screen))
                .route("/screens/{id}", get(find_screen))
                .with_state(screens),
        )
}

/// A movie is sold by ticket quota (`tickets`) or by assigned seats
/// (`seating`): exactly one of the two (422 for none or both). A seated
/// movie always gets a screen: the one named (`{screenId}`; unknown: 422,
/// busy at that time: 409), or the smallest free screen with at least
/// `{rows, seatsPerRow}` (none: 422); it occupies its screen for 3 hours
/// from `startsAt`. A musical brings its own seat map `{rows, seatsPerRow,
/// sections?}` and gets no screen. A bike needs `color` (422 otherwise;
/// other kinds may not have one); its title defaults to `Bike {number}`
/// and its price to 1000 (points per rental). `title` and `price` are
/// required for movies and musicals.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegisterListing {
    #[schema(nullable = false, default = "movie")]
    kind: Option<ListingKind>,
    #[schema(nullable = false, min_length = 1, max_length = 200)]
    title: Option<String>,
    #[schema(nullable = false, max_length = 2000)]
    description: Option<String>,
    /// Per ticket, in integer minor units.
    #[schema(nullable = false, value_type = Option<kernel::Money>)]
    price: Option<i64>,
    /// The ticket quota (a movie sold without seat choice).
    #[schema(nullable = false, minimum = 1, maximum = 1_000_000)]
    tickets: Option<i64>,
    /// Assigned seats: a screen (`screenId`), or the grid wanted
    /// (`rows`, `seatsPerRow`, and a musical's `sections`).
    #[schema(nullable = false)]
    seating: Option<SeatingRequest>,
    /// When the showing starts (RFC 3339).
    #[schema(nullable = false, format = DateTime)]
    starts_at: Option<String>,
    /// A bike's colour (bikes only).
    #[schema(nullable = false, min_length = 1)]
    color: Option<String>,
}

/// `{screenId}` or `{rows, seatsPerRow}` (with `sections` for a musical);
/// which one is checked by the domain, so that a wrong mix is answered
/// with what is missing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeatingRequest {
    #[schema(nullable = false)]
    screen_id: Option<String>,
    #[schema(nullable = false, minimum = 1)]
    rows: Option<i64>,
    #[schema(nullable = false, minimum = 1)]
    seats_per_row: Option<i64>,
    /// Musicals: rows sold at their own price.
    #[schema(nullable = false)]
    sections: Option<Vec<SectionRequest>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = SeatSection)]
struct SectionRequest {
    #[schema(min_length = 1)]
    name: String,
    #[schema(value_type = kernel::Money)]
    price: i64,
    #[schema(min_items = 1, inline, schema_with = row_letters)]
    rows: Vec<String>,
}

fn row_letters() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    runtime::api::from_json(serde_json::json!({
        "type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^[A-Z]$"}
    }))
}

impl From<SectionRequest> for SectionDraft {
    fn from(request: SectionRequest) -> Self {
        SectionDraft {
            name: request.name,
            price: request.price,
            rows: request.rows,
        }
    }
}

fn section_drafts(sections: Option<Vec<SectionRequest>>) -> Option<Vec<SectionDraft>> {
    sections.map(|sections| sections.into_iter().map(SectionDraft::from).collect())
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Listing)]
pub struct ListingView {
    id: String,
    kind: ListingKind,
    title: String,
    description: String,
    /// Per ticket, seat (outside sections) or rental, in minor units.
    #[schema(value_type = kernel::Money)]
    price: i64,
    capacity: CapacityView,
    /// The screen of a seated showing (absent for a quota).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    screen: Option<ScreenRefView>,
    /// When the showing starts (absent when not set).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, format = DateTime)]
    starts_at: Option<String>,
    /// A bike's colour.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    color: Option<String>,
    /// A bike's number: 1, 2, … continuing across restarts, never reused.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 1)]
    number: Option<u32>,
    /// A bike's registration date, as the bike registry calls it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, format = DateTime)]
    registered_at: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
}

/// How a listing is sold: a movie by ticket quota (`quota`); assigned
/// seats (`seated`: `total` sellable seats, a movie's screen without its
/// blocked seats or a musical's own seat map, `available` neither held nor
/// sold, a musical's sections sold at their own price); or one thing lent
/// to one customer at a time (`unit`, a bike: `available` is false while
/// it is rented out).
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
#[schema(as = Capacity)]
enum CapacityView {
    Quota {
        total: u32,
        available: u32,
    },
    Seated {
        total: u32,
        available: u32,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        #[schema(required = false)]
        sections: Vec<SectionView>,
    },
    Unit {
        available: bool,
    },
}

#[derive(Debug, Serialize, ToSchema)]
struct SectionView {
    name: String,
    #[schema(value_type = kernel::Money)]
    price: i64,
    rows: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ScreenRef)]
struct ScreenRefView {
    id: String,
    name: String,
}

impl From<&ListingRecord> for ListingView {
    fn from(record: &ListingRecord) -> Self {
        let (total, available) = (record.quota.total(), record.quota.available());
        ListingView {
            id: record.id.to_string(),
            kind: record.kind,
            title: record.title.clone(),
            description: record.description.clone(),
            price: record.price.minor_units(),
            capacity: match record.sold_by() {
                SoldBy::Tickets => CapacityView::Quota { total, available },
                SoldBy::Seats => CapacityView::Seated {
                    total,
                    available,
                    sections: record
                        .sections
                        .iter()
                        .map(|section| SectionView {
                            name: section.name().to_owned(),
                            price: section.price().minor_units(),
                            rows: section.rows().iter().map(ToString::to_string).collect(),
                        })
                        .collect(),
                },
                SoldBy::Unit => CapacityView::Unit {
                    available: available > 0,
                },
            },
            screen: record.screen.as_ref().map(|screen| ScreenRefView {
                id: screen.id.to_string(),
                name: screen.name.clone(),
            }),
            starts_at: record.starts_at.map(timestamp),
            color: record.color.clone(),
            number: record.number,
            registered_at: (record.kind == ListingKind::Bike).then(|| timestamp(record.created_at)),
            created_at: timestamp(record.created_at),
        }
    }
}

/// A listing the admin sent that is not valid: 400 when it lacks what its
/// kind always has (as a body missing a field of its type), 422 otherwise.
fn invalid(error: ListingError) -> ApiError {
    if error.is_malformed() {
        ApiError::BadRequest(format!(
            "the body does not match the expected shape: {error}"
        ))
    } else {
        ApiError::Unprocessable(error.to_string())
    }
}

#[utoipa::path(post, path = "/listings", tag = "catalog", operation_id = "registerListing",
    summary = "Register a listing (admin)", security(("bearerAuth" = ["admin"])),
    request_body = RegisterListing,
    responses(
        (status = 201, description = "Registered.", body = ListingView,
            headers(("Location" = String, description = "Where the created resource can be read."))),
        (status = 409, response = E409),
        (status = 422, response = E422),
    ))]
async fn register(
    State(listings): State<Listings>,
    caller: Caller,
    Body(request): Body<RegisterListing>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_admin()?;
    let listing = NewListing::parse(ListingDraft {
        kind: request.kind,
        title: request.title,
        description: request.description,
        price: request.price,
        tickets: request.tickets,
        seating: request.seating.map(|seating| SeatingDraft {
            screen_id: seating.screen_id,
            rows: seating.rows,
            seats_per_row: seating.seats_per_row,
            sections: section_drafts(seating.sections),
        }),
        starts_at: request.starts_at,
        color: request.color,
    })
    .map_err(invalid)?;
    let record = listings
        .register(listing)
        .await
        .map_err(|error| match error {
            RegisterError::Assignment(error @ AssignmentError::Busy { .. }) => {
                ApiError::Conflict(error.to_string())
            }
            RegisterError::Assignment(error) => ApiError::Unprocessable(error.to_string()),
            RegisterError::Store(error) => ApiError::Internal(error),
        })?;
    tracing::info!(listing = %record.id, kind = record.kind.as_str(), title = %record.title,
        screen = record.screen.as_ref().map(|s| s.name.as_str()), number = record.number,
        "listing registered");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/listings/{}", record.id))],
        Json(ListingView::from(&record)),
    ))
}

/// Any of the listing's changeable fields; each field left out stays as
/// it is. Only `startsAt` may be `null` (the showing no longer has a set
/// time); an unknown field is answered 400 naming it, an empty body 422.
/// A musical's seat map may change as long as no held or sold seat would
/// be removed (409 naming the seats).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChangeListing {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable = false, min_length = 1, max_length = 200)]
    title: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable = false, max_length = 2000)]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<kernel::Money>, nullable = false)]
    price: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    starts_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable = false, min_length = 1)]
    color: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<SeatingChange>, nullable = false)]
    seating: Option<Option<SeatingChange>>,
}

/// A musical's new seat map; what is left out stays as it is.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeatingChange {
    #[schema(nullable = false, minimum = 1)]
    rows: Option<i64>,
    #[schema(nullable = false, minimum = 1)]
    seats_per_row: Option<i64>,
    #[schema(nullable = false)]
    sections: Option<Vec<SectionRequest>>,
}

/// A field that is present, `null` or not: `Some(None)` for `null`, so
/// that it can be told from a field left out (`None`, by `default`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A field that may be left out but not be `null`.
fn not_null<T>(field: &str, value: Option<Option<T>>) -> Result<Option<T>, ApiError> {
    match value {
        Some(None) => Err(ApiError::Unprocessable(format!(
            "{field} cannot be null; leave it out to keep it as it is"
        ))),
        Some(Some(value)) => Ok(Some(value)),
        None => Ok(None),
    }
}

#[utoipa::path(patch, path = "/listings/{id}", tag = "catalog", operation_id = "changeListing",
    summary = "Change a listing (admin)",
    description = "Publishes `ListingUpdated` with the listing's whole changeable state; reservation prices new bookings with it, my page shows the new title.",
    security(("bearerAuth" = ["admin"])),
    params(("id" = String, Path)),
    request_body = ChangeListing,
    responses(
        (status = 200, description = "The changed listing.", body = ListingView),
        (status = 404, response = E404),
        (status = 409, description = "The seat-map change would remove held or sold seats (named), or a showing's new time finds its screen taken.",
            body = runtime::http::Problem, content_type = "application/problem+json"),
        (status = 422, response = E422),
    ))]
async fn change(
    State(listings): State<Listings>,
    caller: Caller,
    Path(id): Path<String>,
    Body(request): Body<ChangeListing>,
) -> Result<Json<ListingView>, ApiError> {
    caller.require_admin()?;
    let listing_id = listing_id(&id)?;
    let draft = ListingChangeDraft {
        title: not_null("title", request.title)?,
        description: not_null("description", request.description)?,
        price: not_null("price", request.price)?,
        starts_at: request.starts_at,
        color: not_null("color", request.color)?,
        seating: not_null("seating", request.seating)?.map(|seating| SeatMapPatch {
            rows: seating.rows,
            seats_per_row: seating.seats_per_row,
            sections: section_drafts(seating.sections),
        }),
    };
    let record = listings
        .update(listing_id, draft)
        .await
        .map_err(|error| match error {
            ChangeError::NotFound(_) => unknown_listing(&id),
            ChangeError::Invalid(error) => invalid(error),
            ChangeError::BookedSeats(error) => ApiError::Conflict(error.to_string()),
            ChangeError::ScreenBusy(error) => ApiError::Conflict(error.to_string()),
            ChangeError::Store(error) => ApiError::Internal(error),
        })?;
    tracing::info!(listing = %record.id, title = %record.title, "listing changed");
    Ok(Json(ListingView::from(&record)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct WithdrawQuery {
    /// Cancel and refund every live booking of it (through the saga; each
    /// customer is notified).
    #[serde(rename = "cancelReservations")]
    #[param(value_type = Option<bool>, nullable = false, default = false)]
    cancel_reservations: Option<String>,
}

#[utoipa::path(delete, path = "/listings/{id}", tag = "catalog", operation_id = "deleteListing",
    summary = "Withdraw a listing from sale (admin)", security(("bearerAuth" = ["admin"])),
    params(("id" = String, Path), WithdrawQuery),
    responses(
        (status = 204, description = "Withdrawn: gone from browsing, no new bookings."),
        (status = 400, response = E400),
        (status = 404, response = E404),
        (status = 409, description = "It has live reservations; delete with ?cancelReservations=true to cancel and refund them.",
            body = runtime::http::Problem, content_type = "application/problem+json"),
    ))]
async fn withdraw(
    State(listings): State<Listings>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<WithdrawQuery>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let listing_id = listing_id(&id)?;
    let cancel_reservations = match query.cancel_reservations.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "cancelReservations must be true or false (got {other:?})"
            )))
        }
    };
    listings
        .withdraw(listing_id, cancel_reservations)
        .await
        .map_err(|error| match error {
            WithdrawError::NotFound(_) => unknown_listing(&id),
            error @ WithdrawError::LiveReservations { .. } => ApiError::Conflict(error.to_string()),
            WithdrawError::Store(error) => ApiError::Internal(error),
        })?;
    tracing::info!(listing = %listing_id, cancel_reservations, "listing withdrawn");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only listings of this kind; an unknown kind is answered 400.
    #[param(value_type = Option<ListingKind>, nullable = false)]
    kind: Option<String>,
}

#[utoipa::path(get, path = "/listings", tag = "catalog", operation_id = "listListings",
    summary = "Browse listings", security(()),
    params(ListQuery, Page),
    responses(
        (status = 200, description = "The listings.", body = Vec<ListingView>),
        (status = 400, response = E400),
        (status = 422, response = E422),
    ))]
async fn list(
    State(listings): State<Listings>,
    Query(query): Query<ListQuery>,
    page: Page,
) -> Result<Json<Vec<ListingView>>, ApiError> {
    let kind = match query.kind.as_deref() {
        None | Some("") => None,
        Some(kind) => Some(
            serde_json::from_value::<ListingKind>(serde_json::Value::String(kind.to_owned()))
                .map_err(|_| {
                    ApiError::BadRequest(format!(
                        "kind must be one of movie, musical, bike (got {kind:?})"
                    ))
                })?,
        ),
    };
    let after: Option<ListingId> = page.after_id()?;
    let records = listings
        .list(kind, after, page.limit)
        .await?
        .ok_or_else(|| page.unknown_after("listing"))?;
    Ok(Json(records.iter().map(ListingView::from).collect()))
}

#[utoipa::path(get, path = "/listings/{id}", tag = "catalog", operation_id = "getListing",
    summary = "One listing", security(()),
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The listing.", body = ListingView),
        (status = 404, response = E404),
    ))]
async fn find(
    State(listings): State<Listings>,
    Path(id): Path<String>,
) -> Result<Json<ListingView>, ApiError> {
    let record = find_listing(&listings, &id).await?;
    Ok(Json(ListingView::from(&record)))
}

fn unknown_listing(id: &str) -> ApiError {
    ApiError::NotFound(format!("no listing with id {id:?}"))
}

fn listing_id(id: &str) -> Result<ListingId, ApiError> {
    id.parse().map_err(|_| unknown_listing(id))
}

async fn find_listing(listings: &Listings, id: &str) -> Result<ListingRecord, ApiError> {
    listings
        .find(listing_id(id)?)
        .await?
        .ok_or_else(|| unknown_listing(id))
}

/// A seat and where it stands; on a musical also what it costs and its
/// section (a movie's seats all cost the listing's price).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Seat)]
struct SeatView {
    #[schema(pattern = "^[A-Z]-[1-9][0-9]?$", examples("A-1"))]
    label: String,
    #[schema(schema_with = seat_status)]
    status: &'static str,
    /// A musical seat's price: its section's, or the listing's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = Option<kernel::Money>)]
    price: Option<i64>,
    /// The section a musical seat is in.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    section: Option<String>,
}

fn seat_status() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    use crate::domain::seats::SeatStatus;
    runtime::api::string_enum(
        &[SeatStatus::Available, SeatStatus::Held, SeatStatus::Sold].map(SeatStatus::as_str),
    )
}

#[utoipa::path(get, path = "/listings/{id}/seats", tag = "catalog", operation_id = "getSeatMap",
    summary = "The seat map of a seated showing",
    description = "Every sellable seat of the showing in seat order (A-1, A-2, …, B-1) and whether it is available, held for a pending reservation or sold. A listing sold by quota has no seat map (404).",
    security(()),
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The seats.", body = Vec<SeatView>),
        (status = 404, response = E404),
    ))]
async fn seat_map(
    State(listings): State<Listings>,
    Path(id): Path<String>,
) -> Result<Json<Vec<SeatView>>, ApiError> {
    let record = find_listing(&listings, &id).await?;
    match record.sold_by() {
        SoldBy::Seats => {}
        SoldBy::Tickets => {
            return Err(ApiError::NotFound(format!(
                "listing {id} sells tickets by quota and has no seat map"
            )))
        }
        SoldBy::Unit => {
            return Err(ApiError::NotFound(format!(
                "listing {id} is a bike and has no seat map"
            )))
        }
    }
    let priced = record.kind == ListingKind::Musical;
    let seats = listings.seat_map(record.id).await?;
    Ok(Json(
        seats
            .into_iter()
            .map(|(seat, status)| {
                let (price, section) = seat_map::seat_price(&record.sections, seat, record.price);
                SeatView {
                    label: seat.to_string(),
                    status: status.as_str(),
                    price: priced.then(|| price.minor_units()),
                    section: section.map(str::to_owned),
                }
            })
            .collect(),
    ))
}

/// A screen's seat grid: rows lettered A… from the front, seats numbered
/// from 1. A taken name is answered 409; a bad grid, or blocked seats that
/// are not labels inside it (or are every seat), 422.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegisterScreen {
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    #[schema(minimum = 1, maximum = 26)]
    rows: i64,
    #[schema(minimum = 1, maximum = 99)]
    seats_per_row: i64,
    /// Seats that are never sold, e.g. `["A-1"]`.
    #[serde(default)]
    blocked: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Screen)]
pub struct ScreenView {
    id: String,
    name: String,
    #[schema(minimum = 1, maximum = 26)]
    rows: u8,
    #[schema(minimum = 1, maximum = 99)]
    seats_per_row: u8,
    /// Sellable seats: the grid minus the blocked ones.
    #[schema(minimum = 1)]
    seats: u32,
    /// Seats never sold, in seat order.
    blocked: Vec<String>,
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<&ScreenRecord> for ScreenView {
    fn from(record: &ScreenRecord) -> Self {
        let layout = &record.screen.layout;
        ScreenView {
            id: record.screen.id.to_string(),
            name: record.screen.name.clone(),
            rows: layout.rows(),
            seats_per_row: layout.seats_per_row(),
            seats: layout.sellable(),
            blocked: layout.blocked().iter().map(ToString::to_string).collect(),
            created_at: timestamp(record.created_at),
        }
    }
}

#[utoipa::path(post, path = "/screens", tag = "catalog", operation_id = "registerScreen",
    summary = "Register a screen (admin)", security(("bearerAuth" = ["admin"])),
    request_body = RegisterScreen,
    responses(
        (status = 201, description = "Registered.", body = ScreenView,
            headers(("Location" = String, description = "Where the created resource can be read."))),
        (status = 409, response = E409),
        (status = 422, response = E422),
    ))]
async fn register_screen(
    State(screens): State<Screens>,
    caller: Caller,
    Body(request): Body<RegisterScreen>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_admin()?;
    let screen = NewScreen::parse(ScreenDraft {
        name: request.name,
        rows: request.rows,
        seats_per_row: request.seats_per_row,
        blocked: request.blocked,
    })
    .map_err(|error| ApiError::Unprocessable(error.to_string()))?;
    let record = screens
        .register(screen)
        .await?
        .map_err(|taken| ApiError::Conflict(taken.to_string()))?;
    tracing::info!(screen = %record.screen.id, name = %record.screen.name, "screen registered");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/screens/{}", record.screen.id))],
        Json(ScreenView::from(&record)),
    ))
}

#[utoipa::path(get, path = "/screens", tag = "catalog", operation_id = "listScreens",
    summary = "The screens seated showings play on (admin)", security(("bearerAuth" = ["admin"])),
    params(Page),
    responses(
        (status = 200, description = "The screens, in the order they were registered.", body = Vec<ScreenView>),
        (status = 400, response = E400),
        (status = 422, response = E422),
    ))]
async fn list_screens(
    State(screens): State<Screens>,
    caller: Caller,
    page: Page,
) -> Result<Json<Vec<ScreenView>>, ApiError> {
    caller.require_admin()?;
    let after: Option<ScreenId> = page.after_id()?;
    let records = screens
        .list(after, page.limit)
        .await?
        .ok_or_else(|| page.unknown_after("screen"))?;
    Ok(Json(records.iter().map(ScreenView::from).collect()))
}

#[utoipa::path(get, path = "/screens/{id}", tag = "catalog", operation_id = "getScreen",
    summary = "One screen (admin)", security(("bearerAuth" = ["admin"])),
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The screen.", body = ScreenView),
        (status = 404, response = E404),
    ))]
async fn find_screen(
    State(screens): State<Screens>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ScreenView>, ApiError> {
    caller.require_admin()?;
    let not_found = || ApiError::NotFound(format!("no screen with id {id:?}"));
    let screen_id: ScreenId = id.parse().map_err(|_| not_found())?;
    let record = screens.find(screen_id).await?.ok_or_else(not_found)?;
    Ok(Json(ScreenView::from(&record)))
}

#[cfg(test)]
mod tests {
    use axum::body::Body as Payload;
    use axum::http::{Method, Request};
    use contracts::reservation::{Booking, PaymentMethod, ReservationEvent};
    use contracts::IntegrationEvent;
    use kernel::ids::{ReservationId, UserId};
    use kernel::Money;
    use runtime::http::{ROLE_HEADER, USER_ID_HEADER};
    use runtime::Store;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    use super::*;
    use crate::adapters::sql::{Inventory, MIGRATIONS};
    use crate::Settings;

    struct Api {
        _dir: tempfile::TempDir,
        store: Store,
        listings: Listings,
        router: Router,
    }

    struct Answer {
        status: u16,
        body: Value,
    }

    impl Answer {
        fn detail(&self) -> &str {
            self.body["detail"].as_str().unwrap_or_default()
        }
    }

    impl Api {
        async fn new() -> Api {
            let dir = tempfile::tempdir().unwrap();
            let url = runtime::store::sqlite_url(dir.path(), "catalog");
            let store = Store::connect(&url, MIGRATIONS).await.unwrap();
            let listings = Listings::new(store.clone());
            let screens = Screens::new(store.clone());
            screens
                .ensure(Settings::default().screens().unwrap())
                .await
                .unwrap();
            Api {
                _dir: dir,
                router: router(listings.clone(), screens),
                store,
                listings,
            }
        }

        async fn call(&self, method: Method, uri: &str, role: &str, body: Option<Value>) -> Answer {
            let request = Request::builder()
                .method(method)
                .uri(uri)
                .header(USER_ID_HEADER, UserId::new().to_string())
                .header(ROLE_HEADER, role)
                .header(header::CONTENT_TYPE, "application/json");
            let request = match body {
                Some(body) => request.body(Payload::from(body.to_string())),
                None => request.body(Payload::empty()),
            };
            let response = self.router.clone().oneshot(request.unwrap()).await.unwrap();
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            Answer { status, body }
        }

        async fn admin(&self, method: Method, uri: &str, body: Option<Value>) -> Answer {
            self.call(method, uri, "admin", body).await
        }

        async fn get(&self, uri: &str) -> Answer {
            self.call(Method::GET, uri, "customer", None).await
        }

        /// Registers a listing and answers its id.
        async fn register(&self, listing: Value) -> String {
            let answer = self.admin(Method::POST, "/listings", Some(listing)).await;
            assert_eq!(answer.status, 201, "{}", answer.body);
            answer.body["id"].as_str().unwrap().to_owned()
        }

        /// Holds a booking of `listing` as a placed reservation would.
        async fn hold(&self, listing: &str, seats: &[&str]) {
            let booking = Booking {
                reservation_id: ReservationId::new(),
                user_id: UserId::new(),
                listing_id: listing.parse().unwrap(),
                listing_title: "Booked".into(),
                listing_kind: ListingKind::Movie,
                quantity: seats.len().max(1) as u32,
                seats: seats.iter().map(|seat| seat.parse().unwrap()).collect(),
                amount: Money::parse(1_000).unwrap(),
                payment_method: PaymentMethod::Card,
            };
            let placed = ReservationEvent::ReservationPlaced {
                booking: booking.clone(),
                placed_at: kernel::now(),
            }
            .to_envelope();
            let mut tx = self.store.begin().await.unwrap();
            let mut inventory = Inventory::default();
            self.listings
                .hold(&mut tx, &mut inventory, &booking, &placed)
                .await
                .unwrap();
            inventory.write(&mut tx).await.unwrap();
            self.store.commit(tx).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_bike_is_registered_with_its_number_colour_and_rental_price() {
        let api = Api::new().await;
        let answer = api
            .admin(
                Method::POST,
                "/listings",
                Some(json!({"kind": "bike", "color": "red"})),
            )
            .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        let bike = &answer.body;
        assert_eq!(bike["title"], "Bike 1");
        assert_eq!(bike["number"], 1);
        assert_eq!(bike["color"], "red");
        assert_eq!(bike["price"], 1000);
        assert_eq!(bike["capacity"], json!({"type": "unit", "available": true}));
        assert_eq!(bike["registeredAt"], bike["createdAt"]);
        let second = api
            .register(json!({"kind": "bike", "color": "blue", "title": "Blue", "price": 800}))
            .await;
        let second = api.get(&format!("/listings/{second}")).await.body;
        assert_eq!(
            (&second["number"], &second["title"]),
            (&json!(2), &json!("Blue"))
        );
        assert_eq!(
            api.get("/listings?kind=bike")
                .await
                .body
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert!(api
            .get("/listings?kind=musical")
            .await
            .body
            .as_array()
            .unwrap()
            .is_empty());
        let seats = api
            .get(&format!("/listings/{}/seats", bike["id"].as_str().unwrap()))
            .await;
        assert_eq!(
            (
                seats.status,
                seats.detail().ends_with("is a bike and has no seat map")
            ),
            (404, true)
        );

        let colourless = api
            .admin(Method::POST, "/listings", Some(json!({"kind": "bike"})))
            .await;
        assert_eq!(
            (colourless.status, colourless.detail()),
            (422, "a bike needs a `color`")
        );
        let coloured_movie = api
            .admin(
                Method::POST,
                "/listings",
                Some(json!({"kind": "movie", "title": "T", "price": 1, "tickets": 5, "color": "red"})),
            )
            .await;
        assert_eq!(
            (coloured_movie.status, coloured_movie.detail()),
            (422, "color applies to bikes only, not to a movie")
        );
    }

    #[tokio::test]
    async fn a_musical_shows_its_sections_and_prices_every_seat() {
        let api = Api::new().await;
        let musical = api
            .register(json!({"kind": "musical", "title": "Wicked", "price": 90000,
                "seating": {"rows": 2, "seatsPerRow": 2,
                    "sections": [{"name": "VIP", "price": 150000, "rows": ["A"]}]}}))
            .await;
        let view = api.get(&format!("/listings/{musical}")).await.body;
        assert_eq!(
            view["capacity"],
            json!({"type": "seated", "total": 4, "available": 4,
                   "sections": [{"name": "VIP", "price": 150000, "rows": ["A"]}]})
        );
        assert!(view.get("screen").is_none(), "{view}");
        api.hold(&musical, &["A-2"]).await;
        let seats = api.get(&format!("/listings/{musical}/seats")).await.body;
        assert_eq!(
            seats,
            json!([
                {"label": "A-1", "status": "available", "price": 150000, "section": "VIP"},
                {"label": "A-2", "status": "held", "price": 150000, "section": "VIP"},
                {"label": "B-1", "status": "available", "price": 90000},
                {"label": "B-2", "status": "available", "price": 90000},
            ])
        );
        let overlapping = api
            .admin(
                Method::POST,
                "/listings",
                Some(json!({"kind": "musical", "title": "Cats", "price": 1,
                    "seating": {"rows": 2, "seatsPerRow": 2, "sections": [
                        {"name": "VIP", "price": 5, "rows": ["A"]},
                        {"name": "Stalls", "price": 3, "rows": ["A", "B"]}]}})),
            )
            .await;
        assert_eq!(
            (overlapping.status, overlapping.detail()),
            (422, "sections: row A is in both VIP and Stalls")
        );
    }

    #[tokio::test]
    async fn a_movie_answers_as_it_did() {
        let api = Api::new().await;
        let movie = api
            .register(
                json!({"title": "Dune", "price": 1800, "seating": {"rows": 2, "seatsPerRow": 2}}),
            )
            .await;
        let view = api.get(&format!("/listings/{movie}")).await.body;
        assert_eq!(
            view["capacity"],
            json!({"type": "seated", "total": 48, "available": 48})
        );
        assert_eq!(view["screen"]["name"], "Hall 3");
        for absent in ["color", "number", "registeredAt"] {
            assert!(view.get(absent).is_none(), "{view}");
        }
        let seats = api.get(&format!("/listings/{movie}/seats")).await.body;
        assert_eq!(seats[0], json!({"label": "A-1", "status": "available"}));
        let untitled = api
            .admin(
                Method::POST,
                "/listings",
                Some(json!({"price": 1, "tickets": 5})),
            )
            .await;
        assert_eq!(untitled.status, 400);
        assert!(
            untitled.detail().contains("missing field `title`"),
            "{}",
            untitled.body
        );
    }

    #[tokio::test]
    async fn a_change_is_for_admins_names_unknown_fields_and_changes_nothing_when_refused() {
        let api = Api::new().await;
        let movie = api
            .register(json!({"title": "Dune", "price": 1800, "tickets": 10,
                             "startsAt": "2026-12-24T19:30:00Z"}))
            .await;
        let uri = format!("/listings/{movie}");
        let patch = |body: Value| api.admin(Method::PATCH, &uri, Some(body));

        let customer = api
            .call(
                Method::PATCH,
                &uri,
                "customer",
                Some(json!({"title": "Mine"})),
            )
            .await;
        assert_eq!(customer.status, 403);
        let unknown = api
            .admin(
                Method::PATCH,
                &format!("/listings/{}", ListingId::new()),
                Some(json!({"title": "X"})),
            )
            .await;
        assert_eq!(unknown.status, 404);
        let tickets = patch(json!({"tickets": 5})).await;
        assert_eq!(tickets.status, 400);
        assert!(
            tickets.detail().contains("unknown field `tickets`"),
            "{}",
            tickets.body
        );
        let null = patch(json!({"title": null})).await;
        assert_eq!(
            (null.status, null.detail()),
            (
                422,
                "title cannot be null; leave it out to keep it as it is"
            )
        );
        let negative = patch(json!({"title": "Dune: Part Two", "price": -1})).await;
        assert_eq!(negative.status, 422);
        assert!(
            negative.detail().contains("must not be negative"),
            "{}",
            negative.body
        );
        let seating = patch(json!({"seating": {"rows": 3}})).await;
        assert_eq!(seating.status, 422);
        assert_eq!(api.get(&uri).await.body["title"], "Dune");

        let changed = patch(json!({"title": "Dune: Part Two", "startsAt": null})).await;
        assert_eq!(changed.status, 200, "{}", changed.body);
        assert_eq!(changed.body["title"], "Dune: Part Two");
        assert!(changed.body.get("startsAt").is_none(), "{}", changed.body);
        assert_eq!(api.get(&uri).await.body, changed.body);
    }

    #[tokio::test]
    async fn a_seat_map_change_dropping_a_booked_seat_is_a_conflict_naming_it() {
        let api = Api::new().await;
        let musical = api
            .register(json!({"kind": "musical", "title": "Wicked", "price": 90000,
                "seating": {"rows": 2, "seatsPerRow": 2}}))
            .await;
        api.hold(&musical, &["B-1"]).await;
        let uri = format!("/listings/{musical}");
        let shrink = api
            .admin(Method::PATCH, &uri, Some(json!({"seating": {"rows": 1}})))
            .await;
        assert_eq!(
            (shrink.status, shrink.detail()),
            (409, "seat B-1 is booked and would be removed")
        );
        let nested = api
            .admin(
                Method::PATCH,
                &uri,
                Some(json!({"seating": {"blocked": ["A-1"]}})),
            )
            .await;
        assert_eq!(nested.status, 400);
        assert!(
            nested.detail().contains("unknown field `blocked`"),
            "{}",
            nested.body
        );
        let sections = api
            .admin(
                Method::PATCH,
                &uri,
                Some(json!({"seating": {"seatsPerRow": 3,
                    "sections": [{"name": "Front", "price": 120000, "rows": ["A"]}]}})),
            )
            .await;
        assert_eq!(sections.status, 200, "{}", sections.body);
        assert_eq!(
            sections.body["capacity"],
            json!({"type": "seated", "total": 6, "available": 5,
                   "sections": [{"name": "Front", "price": 120000, "rows": ["A"]}]})
        );
    }

    #[tokio::test]
    async fn a_listing_with_live_bookings_is_deleted_only_with_them_cancelled() {
        let api = Api::new().await;
        let movie = api
            .register(json!({"title": "Dune", "price": 1800, "tickets": 10}))
            .await;
        api.hold(&movie, &[]).await;
        let uri = format!("/listings/{movie}");
        let customer = api.call(Method::DELETE, &uri, "customer", None).await;
        assert_eq!(customer.status, 403);
        let live = api.admin(Method::DELETE, &uri, None).await;
        assert_eq!(live.status, 409);
        assert_eq!(
            live.detail(),
            format!("listing {movie} has 1 live reservation; delete with ?cancelReservations=true to cancel and refund them")
        );
        let unclear = api
            .admin(
                Method::DELETE,
                &format!("{uri}?cancelReservations=maybe"),
                None,
            )
            .await;
        assert_eq!(unclear.status, 400);
        let withdrawn = api
            .admin(
                Method::DELETE,
                &format!("{uri}?cancelReservations=true"),
                None,
            )
            .await;
        assert_eq!((withdrawn.status, withdrawn.body), (204, Value::Null));
        assert_eq!(api.get(&uri).await.status, 404);
        assert!(api
            .get("/listings")
            .await
            .body
            .as_array()
            .unwrap()
            .is_empty());
        assert_eq!(api.admin(Method::DELETE, &uri, None).await.status, 404);
        let patch = api
            .admin(Method::PATCH, &uri, Some(json!({"title": "Back"})))
            .await;
        assert_eq!(patch.status, 404);
    }
}
