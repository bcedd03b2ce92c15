//! `GET /notifications`: the caller's own (an admin's: everyone's).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use runtime::http::{ApiError, Caller};

use crate::store::{NotificationView, Notifications};

const LIST_LIMIT: i64 = 1_000;

pub fn router(notifications: Notifications) -> Router {
    Router::new()
        .route("/notifications", get(list))
        .with_state(notifications)
}

async fn list(
    State(notifications): State<Notifications>,
    caller: Caller,
) -> Result<Json<Vec<NotificationView>>, ApiError> {
    let owner = (!caller.is_admin()).then(|| caller.user_id.to_string());
    Ok(Json(notifications.list(owner, LIST_LIMIT).await?))
}
