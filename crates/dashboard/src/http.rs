//! `GET /dashboard`: the dashboard now; `GET /dashboard/stream`: the
//! dashboard as server-sent events, once on connecting and again after
//! each change (at most every [`crate::live::REFRESH`]). Admins only.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json, Router};
use futures::Stream;
use runtime::http::{ApiError, Caller};
use serde_json::json;

use crate::live::Live;
use crate::projection::Dashboard;
use crate::store::DashboardView;

/// How often an idle stream says it is still there (a comment line), so
/// that proxies and browsers keep it open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The dashboard's part of the API document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(show, stream))]
pub struct Api;

#[derive(Clone, Debug)]
struct Service {
    view: DashboardView,
    live: Live,
}

pub fn router(view: DashboardView, live: Live) -> Router {
    Router::new()
        .route("/dashboard", get(show))
        .route("/dashboard/stream", get(stream))
        .with_state(Service { view, live })
}

#[utoipa::path(get, path = "/dashboard", tag = "dashboard", operation_id = "getDashboard",
    summary = "The dashboard (admin)",
    description = "Built from catalog, reservation and wallet events alone, so it follows them shortly after they happen.",
    security(("bearerAuth" = ["admin"])),
    responses((status = 200, description = "The dashboard now.", body = Dashboard)))]
async fn show(State(service): State<Service>, caller: Caller) -> Result<Json<Dashboard>, ApiError> {
    caller.require_admin()?;
    Ok(Json(service.view.dashboard().await?))
}

/// One frame of `GET /dashboard/stream`, as [`event`] writes it.
struct DashboardEvent;

impl utoipa::PartialSchema for DashboardEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        runtime::api::from_json(json!({
            "type": "object",
            "description": "One server-sent event: `event: dashboard` and, in `data`, the whole dashboard as JSON.",
            "required": ["event", "data"],
            "properties": {
                "event": {"type": "string", "enum": ["dashboard"]},
                "data": {"type": "string", "contentMediaType": "application/json",
                    "description": "The whole dashboard (`Dashboard`) as JSON."},
                "id": {"type": "string"},
                "retry": {"type": "integer"},
            },
        }))
    }
}

impl utoipa::ToSchema for DashboardEvent {}

fn event(json: &str) -> Event {
    Event::default().event("dashboard").data(json)
}

#[utoipa::path(get, path = "/dashboard/stream", tag = "dashboard", operation_id = "streamDashboard",
    summary = "The dashboard, live (admin, server-sent events)",
    description = "A `dashboard` event carrying the whole dashboard (as `GET /dashboard`) on connecting, and again after events change it, at most every 250 ms. A comment line every 15 s keeps an idle stream open. The gateway passes events on as they come. The stream ends when the service stops; reconnect (EventSource does) to go on.",
    security(("bearerAuth" = ["admin"])),
    responses((status = 200, description = "`event: dashboard` / `data: <Dashboard as JSON>` frames.",
        content((inline(DashboardEvent) = "text/event-stream",
            example = json!("event: dashboard\ndata: {\"listings\":[],\"reservations\":{\"pending\":0,\"confirmed\":0,\"rejected\":0,\"cancelled\":0,\"returned\":0},\"revenue\":{\"card\":0,\"points\":0},\"points\":{\"issued\":0,\"spent\":0},\"updatedAt\":null}\n\n"))))))]
async fn stream(
    State(service): State<Service>,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require_admin()?;
    // Watching first, then reading: a change in between is sent after.
    let subscription = service.live.subscribe();
    let first =
        serde_json::to_string(&service.view.dashboard().await?).map_err(anyhow::Error::from)?;
    let first: Arc<str> = first.into();
    let events = futures::stream::unfold(
        (Some(first), None::<Arc<str>>, subscription),
        |(pending, sent, mut subscription)| async move {
            let json = match pending {
                Some(json) => json,
                // The same dashboard again (read for another stream) is not news.
                None => loop {
                    let json = subscription.next().await?;
                    if sent.as_deref() != Some(&*json) {
                        break json;
                    }
                },
            };
            Some((Ok(event(&json)), (None, Some(json), subscription)))
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use contracts::reservation::PaymentMethod;
    use futures::StreamExt;
    use kernel::ids::UserId;
    use runtime::http::{ROLE_HEADER, USER_ID_HEADER};
    use tower::ServiceExt;

    use super::*;
    use crate::live;
    use crate::projector::tests::{given, movie, Booked};

    fn request(uri: &str, role: &str) -> Request<Body> {
        Request::get(uri)
            .header(USER_ID_HEADER, UserId::new().to_string())
            .header(ROLE_HEADER, role)
            .body(Body::empty())
            .unwrap()
    }

    /// The `data` of the next `dashboard` event on the stream, waiting at
    /// most a few seconds for it.
    async fn next_dashboard(
        body: &mut (impl Stream<Item = Result<axum::body::Bytes, axum::Error>> + Unpin),
    ) -> serde_json::Value {
        let mut text = String::new();
        loop {
            let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
                .await
                .expect("an event within 5 s")
                .expect("the stream goes on")
                .unwrap();
            text.push_str(std::str::from_utf8(&chunk).unwrap());
            if let Some((frame, _)) = text.split_once("\n\n") {
                let data = frame
                    .lines()
                    .find_map(|line| line.strip_prefix("data: "))
                    .expect("a data line");
                assert!(frame.contains("event: dashboard"), "{frame}");
                return serde_json::from_str(data).unwrap();
            }
        }
    }

    #[tokio::test]
    async fn only_admins_see_the_dashboard() {
        let given = given().await;
        let (live, _broadcaster) = live::channel(given.view.clone());
        let router = router(given.view.clone(), live);
        for uri in ["/dashboard", "/dashboard/stream"] {
            let refused = router
                .clone()
                .oneshot(request(uri, "customer"))
                .await
                .unwrap();
            assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{uri}");
            let anonymous = router
                .clone()
                .oneshot(Request::get(uri).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{uri}");
        }
        let shown = router
            .oneshot(request("/dashboard", "admin"))
            .await
            .unwrap();
        assert_eq!(shown.status(), StatusCode::OK);
        let body = axum::body::to_bytes(shown.into_body(), 1 << 20)
            .await
            .unwrap();
        let dashboard: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(dashboard["listings"], serde_json::json!([]));
        assert_eq!(dashboard["reservations"]["pending"], 0);
    }

    #[tokio::test]
    async fn the_stream_sends_the_dashboard_then_each_change_and_ends_at_shutdown() {
        let given = given().await;
        let (live, broadcaster) = live::channel(given.view.clone());
        let (trigger, shutdown) = kernel::shutdown::channel();
        let broadcasting = tokio::spawn(broadcaster.run(shutdown));
        let router = router(given.view.clone(), live);
        let (listing, registered) = movie(10);
        given.deliver(&registered).await;

        let response = router
            .oneshot(request("/dashboard/stream", "admin"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut body = response.into_body().into_data_stream();
        let first = next_dashboard(&mut body).await;
        assert_eq!(first["listings"][0]["available"], 10);

        let booked = Booked::new(listing, 4, PaymentMethod::Card);
        for event in [booked.placed(), booked.reserved()] {
            given.deliver(&event).await;
        }
        // The events may be sent one read apart: wait for the one that has both.
        let mut update = next_dashboard(&mut body).await;
        while update["reservations"]["pending"] != 1 || update["listings"][0]["held"] != 4 {
            update = next_dashboard(&mut body).await;
        }
        assert_eq!(update["listings"][0]["available"], 6);

        trigger.fire();
        let end = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("the stream ends at shutdown");
        assert!(end.is_none(), "{end:?}");
        broadcasting.await.unwrap().unwrap();
    }
}
