//! `GET /mypage/reservations`: the caller's reservations as the read model has them.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use runtime::http::{ApiError, Caller};

use crate::store::{MyReservationView, MyReservations};

const LIST_LIMIT: i64 = 1_000;

pub fn router(view: MyReservations) -> Router {
    Router::new()
        .route("/mypage/reservations", get(list))
        .with_state(view)
}

async fn list(
    State(view): State<MyReservations>,
    caller: Caller,
) -> Result<Json<Vec<MyReservationView>>, ApiError> {
    Ok(Json(
        view.for_user(&caller.user_id.to_string(), LIST_LIMIT)
            .await?,
    ))
}
