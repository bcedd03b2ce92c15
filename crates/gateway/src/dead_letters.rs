//! Dead letters across services, for admins: the events a consumer gave
//! up on, and replaying one once its cause is fixed.
//!
//! Each service keeps its own (`GET /admin/dead-letters`,
//! `POST /admin/dead-letters/{id}/replay`, admin only). The gateway offers
//! one list over all of them, each item tagged with its `service`, and
//! forwards a replay to the service named in the path.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::Json;
use bytes::Bytes;
use runtime::http::{parse_timestamp, ApiError, Caller};
use runtime::replicas::Replicas;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::proxy::{downstream_headers, Outgoing, Upstream, UPSTREAM_TIMEOUT};

/// How long a service may take to list its dead letters.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct DeadLetters {
    upstream: Upstream,
    /// Service name → its replicas (they share one database: any of them
    /// lists and replays the service's dead letters).
    services: Arc<BTreeMap<String, Arc<Replicas>>>,
}

impl DeadLetters {
    /// `services`: name → base URL, or its replicas' separated by commas.
    pub fn new(upstream: Upstream, services: BTreeMap<String, String>) -> DeadLetters {
        let services = services
            .into_iter()
            .map(|(name, urls)| (name, Arc::new(Replicas::new(&urls))))
            .collect();
        DeadLetters {
            upstream,
            services: Arc::new(services),
        }
    }

    fn service(&self, name: &str) -> Result<&Arc<Replicas>, ApiError> {
        self.services.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.services.keys().map(String::as_str).collect();
            ApiError::NotFound(format!(
                "no service named {name:?} keeps dead letters (there are: {})",
                known.join(", ")
            ))
        })
    }

    async fn list_one(
        &self,
        name: &str,
        replicas: &Replicas,
        headers: HeaderMap,
    ) -> Result<Vec<Map<String, Value>>, ApiError> {
        let unavailable = |why: String| ApiError::Unavailable {
            detail: format!("the dead letters of {name} cannot be read: {why}"),
            retry_after_secs: 1,
        };
        let request = Outgoing {
            method: Method::GET,
            // The most a service lists at once (1000), oldest first.
            path_and_query: "/admin/dead-letters?limit=1000".to_owned(),
            headers,
            body: Bytes::new(),
        };
        let response = self
            .upstream
            .send(replicas, request, LIST_TIMEOUT)
            .await
            .map_err(|error| unavailable(error.to_string()))?;
        if response.status() != StatusCode::OK {
            return Err(unavailable(format!("it answered {}", response.status())));
        }
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map_err(|error| unavailable(error.to_string()))?;
        let mut items: Vec<Map<String, Value>> = serde_json::from_slice(&body)
            .map_err(|error| unavailable(format!("its answer is not a list: {error}")))?;
        for item in &mut items {
            item.insert("service".to_owned(), Value::String(name.to_owned()));
        }
        Ok(items)
    }
}

/// Who is calling, if they may (admins only, as the access policy says).
fn authorize(
    state: &DeadLetters,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    state
        .upstream
        .authorize(method, &[path], headers)?
        .ok_or_else(|| ApiError::Unauthorized("authentication is required".to_owned()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this service's dead letters.
    service: Option<String>,
}

/// `GET /admin/dead-letters[?service=…]`: every service's dead letters,
/// oldest first, each with its `service`. A service that cannot answer
/// makes the whole answer 503 naming it: a partial list would hide what
/// needs attention.
pub async fn list(
    State(state): State<DeadLetters>,
    query: Result<Query<ListQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<Vec<Map<String, Value>>>, ApiError> {
    let caller = authorize(&state, &Method::GET, "/admin/dead-letters", &headers)?;
    let Query(query) = query.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let forwarded = downstream_headers(&headers, Some(&caller));
    let services: Vec<(String, Arc<Replicas>)> = match &query.service {
        Some(name) => vec![(name.clone(), state.service(name)?.clone())],
        None => state
            .services
            .iter()
            .map(|(name, url)| (name.clone(), url.clone()))
            .collect(),
    };
    let mut calls = tokio::task::JoinSet::new();
    for (order, (name, base)) in services.into_iter().enumerate() {
        let (state, headers) = (state.clone(), forwarded.clone());
        calls.spawn(async move { (order, state.list_one(&name, &base, headers).await) });
    }
    let mut answers = Vec::new();
    while let Some(joined) = calls.join_next().await {
        answers.push(joined.map_err(|e| ApiError::Internal(e.into()))?);
    }
    // The first service in name order that failed is the one named.
    answers.sort_by_key(|(order, _)| *order);
    let mut all = Vec::new();
    for (_, answer) in answers {
        all.extend(answer?);
    }
    all.sort_by_cached_key(|item| {
        let at = item.get("at").and_then(Value::as_str).unwrap_or_default();
        (parse_timestamp(at).ok(), at.to_owned())
    });
    Ok(Json(all))
}

/// `POST /admin/dead-letters/{service}/{id}/replay`: forwarded to that
/// service's `/admin/dead-letters/{id}/replay` with the caller's identity;
/// its answer (202, 404, 409) comes back as it is.
pub async fn replay(
    State(state): State<DeadLetters>,
    Path((service, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let path = format!("/admin/dead-letters/{service}/{id}/replay");
    let caller = authorize(&state, &Method::POST, &path, &headers)?;
    let replicas = state.service(&service)?.clone();
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
