//! The route table and request forwarding.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use runtime::http::{
    ApiError, Caller, MAX_BODY_BYTES, ROLE_HEADER, USERNAME_HEADER, USER_ID_HEADER,
};

use crate::access::{self, Access};
use crate::identity::Tokens;
use crate::limits::Limiter;

/// The largest answer from a service the gateway passes on (502 beyond).
pub const MAX_UPSTREAM_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Requests whose path starts with `prefix` go to `upstream`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Route {
    pub prefix: String,
    pub upstream: String,
}

#[derive(Debug)]
pub struct RouteTable {
    /// Longest prefix first, so the most specific route wins.
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new(mut routes: Vec<Route>) -> anyhow::Result<RouteTable> {
        for route in &mut routes {
            anyhow::ensure!(
                route.prefix.starts_with('/'),
                "route prefix {:?} must start with '/'",
                route.prefix
            );
            anyhow::ensure!(
                route.upstream.starts_with("http://") || route.upstream.starts_with("https://"),
                "upstream {:?} must be an http(s) url",
                route.upstream
            );
            route.upstream = route.upstream.trim_end_matches('/').to_owned();
        }
        routes.sort_by_key(|route| std::cmp::Reverse(route.prefix.len()));
        Ok(RouteTable { routes })
    }

    /// The route for a path; a prefix matches whole path segments only.
    pub fn route(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|route| {
            path == route.prefix
                || path.starts_with(&format!("{}/", route.prefix.trim_end_matches('/')))
        })
    }

    /// Distinct upstreams, for readiness.
    fn upstreams(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self.routes.iter().map(|r| r.upstream.as_str()).collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

#[derive(Clone, Debug)]
pub struct Upstream {
    routes: Arc<RouteTable>,
    tokens: Tokens,
    limiter: Limiter,
    http: reqwest::Client,
}

/// Headers that describe one hop, never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

impl Upstream {
    pub fn new(routes: Arc<RouteTable>, tokens: Tokens, limiter: Limiter) -> Upstream {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .pool_max_idle_per_host(256)
            .build()
            .expect("a plain HTTP client always builds");
        Upstream {
            routes,
            tokens,
            limiter,
            http,
        }
    }

    /// Ready when every service behind the gateway says it is.
    pub async fn check_ready(&self) -> Result<(), String> {
        for upstream in self.routes.upstreams() {
            let ready = self
                .http
                .get(format!("{upstream}/health/ready"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if !ready {
                return Err(format!("{upstream} is not ready"));
            }
        }
        Ok(())
    }

    /// Who is calling, as the `Authorization` header proves, and whether
    /// they may do what they ask. On a public path a missing, malformed,
    /// invalid or expired token counts as no token (browsing goes on after
    /// a token expired); elsewhere it is refused. A signed-in caller's
    /// changes count against their rate limit.
    pub fn authorize(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Option<Caller>, ApiError> {
        let access = access::required(method, path);
        let caller = match self.caller(headers) {
            Ok(caller) => caller,
            Err(_) if access == Access::Public => None,
            Err(refused) => return Err(refused),
        };
        match (access, &caller) {
            (Access::Public, _) => {}
            (_, None) => return Err(ApiError::Unauthorized(
                "authentication is required: send Authorization: Bearer <token> (POST /auth/token)"
                    .to_owned(),
            )),
            (Access::Admin, Some(caller)) if !caller.is_admin() => {
                return Err(ApiError::Forbidden(
                    "this action needs the admin role".to_owned(),
                ))
            }
            _ => {}
        }
        if let Some(caller) = &caller {
            self.limiter.check_write(method, &caller.user_id)?;
        }
        Ok(caller)
    }

    fn caller(&self, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "the Authorization header must be 'Bearer <token>'".to_owned(),
                )
            })?;
        self.tokens
            .verify(token.trim())
            .map(Some)
            .map_err(ApiError::Unauthorized)
    }

    /// The HTTP client for calls to services.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends a request to a service and reads its answer, refusing one
    /// larger than [`MAX_UPSTREAM_BODY_BYTES`].
    pub async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<Response, ApiError> {
        let (client, request) = request.build_split();
        let request = request.map_err(|e| ApiError::Internal(e.into()))?;
        let target = request.url().to_string();
        let mut answer = client.execute(request).await.map_err(|error| {
            tracing::warn!(%target, error = %error, "upstream unavailable");
            ApiError::Unavailable {
                detail: "the service behind this path is unavailable; try again shortly".to_owned(),
                retry_after_secs: 1,
            }
        })?;
        let status =
            StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut headers = HeaderMap::with_capacity(answer.headers().len());
        for (name, value) in answer.headers() {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                headers.append(name.clone(), value.clone());
            }
        }
        let too_large = || {
            tracing::warn!(%target, limit = MAX_UPSTREAM_BODY_BYTES, "upstream answer too large");
            ApiError::BadGateway(format!(
                "the service's answer is larger than {} MiB",
                MAX_UPSTREAM_BODY_BYTES / (1024 * 1024)
            ))
        };
        if answer
            .content_length()
            .is_some_and(|length| length > MAX_UPSTREAM_BODY_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = answer
            .chunk()
            .await
            .map_err(|error| ApiError::Unavailable {
                detail: format!("the service's answer was cut off: {error}"),
                retry_after_secs: 1,
            })?
        {
            if body.len() + chunk.len() > MAX_UPSTREAM_BODY_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let mut response = Response::new(Body::from(body.freeze()));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

/// The headers a service receives: the caller's, less the hop-by-hop ones,
/// the token and any `x-boxoffice-*` a client sent, plus the caller's
/// identity as the gateway established it.
pub fn downstream_headers(incoming: &HeaderMap, caller: Option<&Caller>) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(incoming.len() + 3);
    for (name, value) in incoming {
        let spoofable = name.as_str().starts_with("x-boxoffice-");
        if !spoofable && !HOP_BY_HOP.contains(&name.as_str()) && name != header::AUTHORIZATION {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some(caller) = caller {
        let set = |headers: &mut HeaderMap, name: &'static str, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        set(&mut headers, USER_ID_HEADER, &caller.user_id.to_string());
        set(&mut headers, USERNAME_HEADER, &caller.username);
        set(&mut headers, ROLE_HEADER, caller.role.as_str());
    }
    headers
}

/// Refuses paths that normalise into other paths (see
/// [`access::check_path`]) before anything else looks at them.
pub async fn reject_ambiguous_paths(request: Request, next: Next) -> Response {
    match access::check_path(request.uri().path()) {
        Ok(()) => next.run(request).await,
        Err(why) => ApiError::BadRequest(why).into_response(),
    }
}

/// Authorises the request and forwards it to the service that owns its path.
pub async fn forward(State(upstream): State<Upstream>, request: Request) -> Response {
    match forward_checked(upstream, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn forward_checked(upstream: Upstream, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let caller = upstream.authorize(&parts.method, path, &parts.headers)?;
    let route = upstream
        .routes
        .route(path)
        .ok_or_else(|| ApiError::NotFound(format!("no route for {path}")))?;
    // The query goes on as it came (`?limit=…&after=…`).
    let target = match parts.uri.query() {
        Some(query) => format!("{}{path}?{query}", route.upstream),
        None => format!("{}{path}", route.upstream),
    };
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::PayloadTooLarge(format!("the body is larger than {MAX_BODY_BYTES} bytes"))
        })?;
    let headers = downstream_headers(&parts.headers, caller.as_ref());
    upstream
        .exchange(
            upstream
                .http
                .request(parts.method, &target)
                .headers(headers)
                .body(body),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        RouteTable::new(vec![
            Route {
                prefix: "/listings".into(),
                upstream: "http://catalog:1/".into(),
            },
            Route {
                prefix: "/reservations".into(),
                upstream: "http://reservation:2".into(),
            },
            Route {
                prefix: "/mypage".into(),
                upstream: "http://mypage:3".into(),
            },
        ])
        .unwrap()
    }

    #[test]
    fn paths_go_to_the_service_that_owns_their_prefix() {
        let table = table();
        assert_eq!(
            table.route("/listings").unwrap().upstream,
            "http://catalog:1"
        );
        assert_eq!(
            table.route("/listings/abc/seats").unwrap().upstream,
            "http://catalog:1"
        );
        assert_eq!(
            table.route("/reservations/x/cancel").unwrap().upstream,
            "http://reservation:2"
        );
        assert_eq!(
            table.route("/mypage/reservations").unwrap().upstream,
            "http://mypage:3"
        );
    }

    #[test]
    fn unknown_paths_and_partial_segments_have_no_route() {
        let table = table();
        assert!(table.route("/nothing").is_none());
        assert!(table.route("/listingsx").is_none());
    }

    #[test]
    fn a_route_needs_an_absolute_prefix_and_an_http_upstream() {
        assert!(RouteTable::new(vec![Route {
            prefix: "listings".into(),
            upstream: "http://a".into()
        }])
        .is_err());
        assert!(RouteTable::new(vec![Route {
            prefix: "/a".into(),
            upstream: "ftp://a".into()
        }])
        .is_err());
    }
}
