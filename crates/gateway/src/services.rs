//! The services the gateway reaches by name, for the admin views that span
//! all of them (dead letters, circuit breakers): each is asked for its own
//! list, and the lists are put together, each item tagged with `service`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;
use runtime::http::{ApiError, Caller};
use runtime::replicas::Replicas;
use serde_json::{Map, Value};

use crate::proxy::{downstream_headers, Outgoing, Upstream};

/// How long a service may take to list what it is asked for.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct Services {
    pub(crate) upstream: Upstream,
    /// Service name → its replicas (they share one database: any of them
    /// answers for the service).
    services: Arc<BTreeMap<String, Arc<Replicas>>>,
}

/// What a service that does not keep a kind of list answers.
pub(crate) enum Missing {
    /// It is an error: the list must be whole (dead letters).
    Fails,
    /// It has none (a service that calls nobody has no breaker).
    Empty,
}

impl Services {
    /// `services`: name → base URL, or its replicas' separated by commas.
    pub fn new(upstream: Upstream, services: BTreeMap<String, String>) -> Services {
        let services = services
            .into_iter()
            .map(|(name, urls)| (name, Arc::new(Replicas::new(&urls))))
            .collect();
        Services {
            upstream,
            services: Arc::new(services),
        }
    }

    /// The replicas of the service called `name`, or 404 naming the known ones.
    pub(crate) fn replicas(&self, name: &str, what: &str) -> Result<Arc<Replicas>, ApiError> {
        self.services.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = self.services.keys().map(String::as_str).collect();
            ApiError::NotFound(format!(
                "no service named {name:?} keeps {what} (there are: {})",
                known.join(", ")
            ))
        })
    }

    pub(crate) fn all(&self) -> Vec<(String, Arc<Replicas>)> {
        self.services
            .iter()
            .map(|(name, replicas)| (name.clone(), replicas.clone()))
            .collect()
    }

    /// Who is calling `path`, if they may (as the access policy says).
    pub(crate) fn authorize(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Caller, ApiError> {
        self.upstream
            .authorize(method, &[path], headers)?
            .ok_or_else(|| ApiError::Unauthorized("authentication is required".to_owned()))
    }

    /// Asks each of `services` for the list at `path` (as `caller`), in
    /// parallel, and puts the answers together in the services' order, each
    /// item tagged with its `service`. A service that cannot answer makes
    /// the whole answer 503 naming it (the first in order).
    pub(crate) async fn gather(
        &self,
        services: Vec<(String, Arc<Replicas>)>,
        path: &str,
        what: &str,
        missing: Missing,
        caller: &Caller,
        headers: &HeaderMap,
    ) -> Result<Vec<Map<String, Value>>, ApiError> {
        let forwarded = downstream_headers(headers, Some(caller));
        let missing_is_empty = matches!(missing, Missing::Empty);
        let mut calls = tokio::task::JoinSet::new();
        for (order, (name, replicas)) in services.into_iter().enumerate() {
            let (services, headers) = (self.clone(), forwarded.clone());
            let (path, what) = (path.to_owned(), what.to_owned());
            calls.spawn(async move {
                let answer = services
                    .list_one(&name, &replicas, path, &what, missing_is_empty, headers)
                    .await;
                (order, answer)
            });
        }
        let mut answers = Vec::new();
        while let Some(joined) = calls.join_next().await {
            answers.push(joined.map_err(|e| ApiError::Internal(e.into()))?);
        }
        answers.sort_by_key(|(order, _)| *order);
        let mut all = Vec::new();
        for (_, answer) in answers {
            all.extend(answer?);
        }
        Ok(all)
    }

    async fn list_one(
        &self,
        name: &str,
        replicas: &Replicas,
        path_and_query: String,
        what: &str,
        missing_is_empty: bool,
        headers: HeaderMap,
    ) -> Result<Vec<Map<String, Value>>, ApiError> {
        let unavailable = |why: String| ApiError::Unavailable {
            detail: format!("the {what} of {name} cannot be read: {why}"),
            retry_after_secs: 1,
        };
        let request = Outgoing {
            method: Method::GET,
            path_and_query,
            headers,
            body: Bytes::new(),
        };
        let response = self
            .upstream
            .send(replicas, request, LIST_TIMEOUT)
            .await
            .map_err(|error| unavailable(error.to_string()))?;
        if response.status() == StatusCode::NOT_FOUND && missing_is_empty {
            return Ok(Vec::new());
        }
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

/// `GET /admin/circuit-breakers`: where every breaker of every service
/// stands (a service that calls nobody synchronously has none), each with
/// its `service`.
#[utoipa::path(get, path = "/admin/circuit-breakers", tag = "operations", operation_id = "listCircuitBreakers",
    summary = "Where every circuit breaker stands (admin)",
    description = "The breakers in front of synchronous calls between services (reservation → payment for card bookings, wallet → payment for purchases of points), each with the `service` that keeps it. An open breaker refuses calls at once; once its pause is over it is half-open: the next call is a trial, and the first success closes it.",
    security(("bearerAuth" = ["admin"])),
    responses(
        (status = 200, description = "Every breaker, by service.", body = Vec<KeptBreaker>),
        (status = 503, response = runtime::api::E503),
    ))]
pub async fn circuit_breakers(
    axum::extract::State(services): axum::extract::State<Services>,
    headers: HeaderMap,
) -> Result<axum::Json<Vec<Map<String, Value>>>, ApiError> {
    let path = "/admin/circuit-breakers";
    let caller = services.authorize(&Method::GET, path, &headers)?;
    let all = services
        .gather(
            services.all(),
            path,
            "circuit breakers",
            Missing::Empty,
            &caller,
            &headers,
        )
        .await?;
    Ok(axum::Json(all))
}

/// An item of a list gathered from every service, as [`Services::gather`]
/// writes it: the service's own item and the `service` that keeps it.
fn kept(item: &str, example: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    runtime::api::from_json(serde_json::json!({"allOf": [
        {"$ref": format!("#/components/schemas/{item}")},
        {"type": "object", "required": ["service"], "properties": {"service": {
            "type": "string", "description": "The service that keeps it.", "examples": [example],
        }}},
    ]}))
}

/// A dead letter in the gateway's list (`GET /admin/dead-letters`).
#[derive(Debug)]
pub struct KeptDeadLetter;

impl utoipa::PartialSchema for KeptDeadLetter {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        kept("DeadLetter", "catalog")
    }
}

impl utoipa::ToSchema for KeptDeadLetter {}

/// A circuit breaker in the gateway's list (`GET /admin/circuit-breakers`).
#[derive(Debug)]
pub struct KeptBreaker;

impl utoipa::PartialSchema for KeptBreaker {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        kept("CircuitBreaker", "reservation")
    }
}

impl utoipa::ToSchema for KeptBreaker {}
