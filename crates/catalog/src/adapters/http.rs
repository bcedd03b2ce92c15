//! Catalog REST routes: admins register listings, anyone browses them.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use contracts::catalog::ListingKind;
use kernel::ids::ListingId;
use runtime::http::{timestamp, ApiError, Body, Caller, Page};
use serde::{Deserialize, Serialize};

use super::sql::{ListingRecord, Listings};
use crate::domain::{ListingDraft, NewListing};

pub fn router(listings: Listings) -> Router {
    Router::new()
        .route("/listings", get(list).post(register))
        .route("/listings/{id}", get(find))
        .with_state(listings)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegisterListing {
    kind: Option<ListingKind>,
    title: String,
    description: Option<String>,
    price: i64,
    tickets: Option<i64>,
    seating: Option<serde_json::Value>,
    color: Option<String>,
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
    created_at: String,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum CapacityView {
    Quota { total: u32, available: u32 },
}

impl From<&ListingRecord> for ListingView {
    fn from(record: &ListingRecord) -> Self {
        ListingView {
            id: record.id.to_string(),
            kind: record.kind,
            title: record.title.clone(),
            description: record.description.clone(),
            price: record.price.minor_units(),
            capacity: CapacityView::Quota {
                total: record.quota.total(),
                available: record.quota.available(),
            },
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
        has_seating: request.seating.is_some(),
    })
    .map_err(|error| ApiError::Unprocessable(error.to_string()))?;
    let record = listings.register(listing).await?;
    tracing::info!(listing = %record.id, title = %record.title, "listing registered");
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
    let not_found = || ApiError::NotFound(format!("no listing with id {id:?}"));
    let listing_id: ListingId = id.parse().map_err(|_| not_found())?;
    let record = listings.find(listing_id).await?.ok_or_else(not_found)?;
    Ok(Json(ListingView::from(&record)))
}
