//! Dead letters across services, for admins: the events a consumer gave
//! up on, and replaying one once its cause is fixed.
//!
//! Each service keeps its own (`GET /admin/dead-letters`,
//! `POST /admin/dead-letters/{id}/replay`, admin only). The gateway offers
//! one list over all of them, each item tagged with its `service`, and
//! forwards a replay to the service named in the path.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::Json;
use bytes::Bytes;
use runtime::http::{parse_timestamp, ApiError};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::proxy::{downstream_headers, Outgoing, UPSTREAM_TIMEOUT};
use crate::services::{Missing, Services};

const WHAT: &str = "dead letters";

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this service's; an unknown service is answered 404.
    #[param(nullable = false)]
    service: Option<String>,
}

/// `GET /admin/dead-letters[?service=…]`: every service's dead letters,
/// oldest first, each with its `service`. A service that cannot answer
/// makes the whole answer 503 naming it: a partial list would hide what
/// needs attention.
#[utoipa::path(get, path = "/admin/dead-letters", tag = "operations", operation_id = "listDeadLetters",
    summary = "Every service's dead letters (admin)",
    description = "The events each service's consumers gave up on, in one list, oldest first, each with the `service` that keeps it. A service that does not answer makes the whole answer 503, naming it.",
    security(("bearerAuth" = ["admin"])),
    params(ListQuery),
    responses(
        (status = 200, description = "Dead letters, oldest first.", body = Vec<crate::services::KeptDeadLetter>),
        (status = 400, response = runtime::api::E400),
        (status = 404, response = runtime::api::E404),
        (status = 503, response = runtime::api::E503),
    ))]
pub async fn list(
    State(services): State<Services>,
    query: Result<Query<ListQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<Vec<Map<String, Value>>>, ApiError> {
    let caller = services.authorize(&Method::GET, "/admin/dead-letters", &headers)?;
    let Query(query) = query.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let asked = match &query.service {
        Some(name) => vec![(name.clone(), services.replicas(name, WHAT)?)],
        None => services.all(),
    };
    // The most a service lists at once (1000), oldest first.
    let mut all = services
        .gather(
            asked,
            "/admin/dead-letters?limit=1000",
            WHAT,
            Missing::Fails,
            &caller,
            &headers,
        )
        .await?;
    all.sort_by_cached_key(|item| {
        let at = item.get("at").and_then(Value::as_str).unwrap_or_default();
        (parse_timestamp(at).ok(), at.to_owned())
    });
    Ok(Json(all))
}

/// `POST /admin/dead-letters/{service}/{id}/replay`: forwarded to that
/// service's `/admin/dead-letters/{id}/replay` with the caller's identity;
/// its answer (202, 404, 409) comes back as it is.
#[utoipa::path(post, path = "/admin/dead-letters/{service}/{id}/replay", tag = "operations", operation_id = "replayDeadLetter",
    summary = "Replay a dead letter (admin)",
    description = "Hands the event back to its consumer, once the cause of its failures is fixed. Forwarded to the service that keeps it.",
    security(("bearerAuth" = ["admin"])),
    params(("service" = String, Path, description = "The service that keeps it."), ("id" = String, Path)),
    responses(
        (status = 202, description = "Replayed; `status` is `replayed`.", body = runtime::dead_letters::DeadLetterView),
        (status = 404, description = "No such service, or no such dead letter.",
            body = runtime::http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The consumer rejected the event again; `detail` says why.",
            body = runtime::http::Problem, content_type = "application/problem+json"),
        (status = 503, response = runtime::api::E503),
    ))]
pub async fn replay(
    State(state): State<Services>,
    Path((service, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let path = format!("/admin/dead-letters/{service}/{id}/replay");
    let caller = state.authorize(&Method::POST, &path, &headers)?;
    let replicas = state.replicas(&service, WHAT)?;
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ApiError::NotFound(format!("no dead letter with id {id:?}")));
    }
    let request = Outgoing {
        method: Method::POST,
        path_and_query: format!("/admin/dead-letters/{id}/replay"),
        headers: downstream_headers(&headers, Some(&caller)),
        body: Bytes::new(),
    };
    let response = state
        .upstream
        .send(&replicas, request, UPSTREAM_TIMEOUT)
        .await
        .map_err(|error| match error {
            ApiError::Unavailable { .. } => ApiError::Unavailable {
                detail: format!("{service} is unavailable; try again shortly"),
                retry_after_secs: 1,
            },
            other => other,
        })?;
    // A service's own refusals are problem documents; a bare 404 or 405
    // means it does not offer replays (yet: an older version is running).
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if matches!(
        response.status(),
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
    ) && !is_problem
    {
        return Err(ApiError::Unavailable {
            detail: format!("{service} does not offer dead-letter replay"),
            retry_after_secs: 1,
        });
    }
    Ok(response)
}
