//! Catalog REST routes: admins register screens and listings, anyone
//! browses listings and their seat maps.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use contracts::catalog::ListingKind;
use kernel::ids::{ListingId, ScreenId};
use runtime::http::{timestamp, ApiError, Body, Caller, Page};
use serde::{Deserialize, Serialize};

use super::sql::screens::ScreenRecord;
use super::sql::{ListingRecord, Listings, RegisterError, Screens};
use crate::domain::screen::{AssignmentError, NewScreen, ScreenDraft};
use crate::domain::{ListingDraft, NewListing, SeatingDraft};

pub fn router(listings: Listings, screens: Screens) -> Router {
    Router::new()
        .route("/listings", get(list).post(register))
        .route("/listings/{id}", get(find))
        .route("/listings/{id}/seats", get(seat_map))
        .with_state(listings)
        .merge(
            Router::new()
                .route("/screens", get(list_screens).post(register_screen))
                .route("/screens/{id}", get(find_screen))
                .with_state(screens),
        )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegisterListing {
    kind: Option<ListingKind>,
    title: String,
    description: Option<String>,
    price: i64,
    tickets: Option<i64>,
    seating: Option<SeatingRequest>,
    starts_at: Option<String>,
    color: Option<String>,
}

/// `{screenId}` or `{rows, seatsPerRow}`; which one is checked by the
/// domain, so that a wrong mix is answered with what is missing.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeatingRequest {
    screen_id: Option<String>,
    rows: Option<i64>,
    seats_per_row: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListingView {
    id: String,
    kind: ListingKind,
    title: String,
    description: String,
    price: i64,
    capacity: CapacityView,
    #[serde(skip_serializing_if = "Option::is_none")]
    screen: Option<ScreenRefView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    starts_at: Option<String>,
    created_at: String,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum CapacityView {
    Quota { total: u32, available: u32 },
    Seated { total: u32, available: u32 },
}

#[derive(Debug, Serialize)]
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
            capacity: match record.screen {
                Some(_) => CapacityView::Seated { total, available },
                None => CapacityView::Quota { total, available },
            },
            screen: record.screen.as_ref().map(|screen| ScreenRefView {
                id: screen.id.to_string(),
                name: screen.name.clone(),
            }),
            starts_at: record.starts_at.map(timestamp),
            created_at: timestamp(record.created_at),
        }
    }
}

async fn register(
    State(listings): State<Listings>,
    caller: Caller,
    Body(request): Body<RegisterListing>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_admin()?;
    if request.color.is_some() {
        return Err(ApiError::Unprocessable(
            "color applies to bikes, which are not on sale yet".to_owned(),
        ));
    }
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
        }),
        starts_at: request.starts_at,
    })
    .map_err(|error| ApiError::Unprocessable(error.to_string()))?;
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
    tracing::info!(listing = %record.id, title = %record.title,
        screen = record.screen.as_ref().map(|s| s.name.as_str()), "listing registered");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/listings/{}", record.id))],
        Json(ListingView::from(&record)),
    ))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    kind: Option<String>,
}

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

async fn find(
    State(listings): State<Listings>,
    Path(id): Path<String>,
) -> Result<Json<ListingView>, ApiError> {
    let record = find_listing(&listings, &id).await?;
    Ok(Json(ListingView::from(&record)))
}

async fn find_listing(listings: &Listings, id: &str) -> Result<ListingRecord, ApiError> {
    let not_found = || ApiError::NotFound(format!("no listing with id {id:?}"));
    let listing_id: ListingId = id.parse().map_err(|_| not_found())?;
    listings.find(listing_id).await?.ok_or_else(not_found)
}

#[derive(Debug, Serialize)]
struct SeatView {
    label: String,
    status: &'static str,
}

async fn seat_map(
    State(listings): State<Listings>,
    Path(id): Path<String>,
) -> Result<Json<Vec<SeatView>>, ApiError> {
    let record = find_listing(&listings, &id).await?;
    if record.screen.is_none() {
        return Err(ApiError::NotFound(format!(
            "listing {id} sells tickets by quota and has no seat map"
        )));
    }
    let seats = listings.seat_map(record.id).await?;
    Ok(Json(
        seats
            .into_iter()
            .map(|(seat, status)| SeatView {
                label: seat.to_string(),
                status: status.as_str(),
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegisterScreen {
    name: String,
    rows: i64,
    seats_per_row: i64,
    #[serde(default)]
    blocked: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScreenView {
    id: String,
    name: String,
    rows: u8,
    seats_per_row: u8,
    /// Sellable seats: the grid minus the blocked ones.
    seats: u32,
    blocked: Vec<String>,
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
