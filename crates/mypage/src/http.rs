//! `GET /mypage/reservations`: the caller's reservations as the read model has them.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use runtime::http::{ApiError, Caller, Page};

use crate::store::{MyReservationView, MyReservations};

pub fn router(view: MyReservations) -> Router {
    Router::new()
        .route("/mypage/reservations", get(list))
        .with_state(view)
}

async fn list(
    State(view): State<MyReservations>,
    caller: Caller,
    page: Page,
) -> Result<Json<Vec<MyReservationView>>, ApiError> {
    let after: Option<kernel::ids::ReservationId> = page.after_id()?;
    let list = view
        .for_user(
            &caller.user_id.to_string(),
            after.map(|id| id.to_string()),
            page.limit,
        )
        .await?
        .ok_or_else(|| page.unknown_after("reservation"))?;
    Ok(Json(list))
}
