//! `GET /notifications`: the caller's own (an admin's: everyone's).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use runtime::api::{E400, E422};
use runtime::http::{ApiError, Caller, Page};

use crate::store::{NotificationView, Notifications};

/// The notification service's part of the API document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list))]
pub struct Api;

pub fn router(notifications: Notifications) -> Router {
    Router::new()
        .route("/notifications", get(list))
        .with_state(notifications)
}

#[utoipa::path(get, path = "/notifications", tag = "notifications", operation_id = "listNotifications",
    summary = "My notifications",
    params(Page),
    responses(
        (status = 200, description = "Notifications.", body = Vec<NotificationView>),
        (status = 400, response = E400),
        (status = 422, response = E422),
    ))]
async fn list(
    State(notifications): State<Notifications>,
    caller: Caller,
    page: Page,
) -> Result<Json<Vec<NotificationView>>, ApiError> {
    let owner = (!caller.is_admin()).then(|| caller.user_id.to_string());
    let after: Option<kernel::ids::NotificationId> = page.after_id()?;
    let list = notifications
        .list(owner, after.map(|id| id.to_string()), page.limit)
        .await?
        .ok_or_else(|| page.unknown_after("notification"))?;
    Ok(Json(list))
}
