//! `GET /mypage/reservations`: the caller's reservations as the read model
//! has them; `GET /mypage/reservations/{id}`: one of them in full.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use runtime::api::{E400, E404, E422};
use runtime::http::{ApiError, Caller, Page};

use kernel::ids::ReservationId;

use std::sync::Arc;

use crate::view::{MyReservationDetail, MyReservationView, View};

type Views = Arc<dyn View>;

/// My page's part of the API document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, find))]
pub struct Api;

pub fn router(view: Views) -> Router {
    Router::new()
        .route("/mypage/reservations", get(list))
        .route("/mypage/reservations/{id}", get(find))
        .with_state(view)
}

#[utoipa::path(get, path = "/mypage/reservations", tag = "mypage", operation_id = "myPageReservations",
    summary = "My reservations (read model)",
    description = "Eventually consistent: it follows the reservation events shortly after they happen.",
    params(Page),
    responses(
        (status = 200, description = "Rows.", body = Vec<MyReservationView>),
        (status = 400, response = E400),
        (status = 422, response = E422),
    ))]
async fn list(
    State(view): State<Views>,
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

/// The caller's booking (an admin's: anyone's). Someone else's booking is
/// answered exactly like an unknown one, so ids cannot be probed.
#[utoipa::path(get, path = "/mypage/reservations/{id}", tag = "mypage", operation_id = "myBooking",
    summary = "One of my bookings by id, from the read model (admin: anyone's)",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The booking: listing, screen, seats, payment, points and every status it went through.", body = MyReservationDetail),
        (status = 404, response = E404),
    ))]
async fn find(
    State(view): State<Views>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MyReservationDetail>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no reservation with id {id:?}"));
    let reservation: ReservationId = id.parse().map_err(|_| not_found())?;
    let owner = (!caller.is_admin()).then(|| caller.user_id.to_string());
    let detail = view.find(reservation, owner).await?.ok_or_else(not_found)?;
    Ok(Json(detail))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use kernel::ids::UserId;
    use runtime::http::{ROLE_HEADER, USER_ID_HEADER};
    use tower::ServiceExt;

    use super::*;
    use crate::projector::tests::given;

    async fn get(
        router: Router,
        user: UserId,
        role: &str,
        uri: &str,
    ) -> (StatusCode, serde_json::Value) {
        let response = router
            .oneshot(
                Request::get(uri)
                    .header(USER_ID_HEADER, user.to_string())
                    .header(ROLE_HEADER, role)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn a_booking_is_shown_to_its_owner_and_admins_and_to_nobody_else() {
        let given = given().await;
        given.deliver(&given.placed()).await;
        let router = router(given.view.clone());
        let owner = given.booking.user_id;
        let id = given.booking.reservation_id;
        let uri = format!("/mypage/reservations/{id}");

        let (status, body) = get(router.clone(), owner, "customer", &uri).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["reservationId"], id.to_string());
        assert_eq!(body["status"], "pending");

        let (status, _) = get(router.clone(), UserId::new(), "admin", &uri).await;
        assert_eq!(status, StatusCode::OK);

        for uri in [
            uri.as_str(),
            "/mypage/reservations/not-an-id",
            &format!("/mypage/reservations/{}", kernel::ids::ReservationId::new()),
        ] {
            let (status, body) = get(router.clone(), UserId::new(), "customer", uri).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
            assert_eq!(body["type"], "/problems/not-found");
        }
    }

    #[tokio::test]
    async fn the_list_shows_each_bookings_seats() {
        let given = given().await;
        given.deliver(&given.placed()).await;
        let router = router(given.view.clone());

        let (status, body) = get(
            router,
            given.booking.user_id,
            "customer",
            "/mypage/reservations",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body[0]["seats"], serde_json::json!(["A-1", "A-2"]));
    }
}
