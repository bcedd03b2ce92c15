//! The route table and request forwarding.
//!
//! A service may have several replicas (its upstream is a comma-separated
//! list of base URLs): requests take them in turn, and a replica that
//! could not be reached is tried last for a while
//! ([`runtime::replicas`]). A request that got no answer goes to another
//! replica when that cannot do anything twice ([`may_resend`]): always when
//! the connection was refused (nothing was sent), and when it broke after
//! sending only for a request that is safe to repeat (GET, HEAD, PUT,
//! DELETE, OPTIONS, or any request carrying an `Idempotency-Key`). Any
//! other request whose connection broke gets a 502 that says it may have
//! been carried out: never a silent second submission.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use bytes::BytesMut;
use runtime::http::{
    ApiError, Caller, MAX_BODY_BYTES, ROLE_HEADER, USERNAME_HEADER, USER_ID_HEADER,
};
use runtime::replicas::Replicas;
use tokio::sync::watch;

use crate::access::{self, Access};
use crate::identity::Tokens;
use crate::limits::Limiter;

/// The largest answer from a service the gateway passes on (502 beyond).
pub const MAX_UPSTREAM_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Requests whose path starts with `prefix` go to `upstream`, the base url
/// of the service named `service`, or the base urls of its replicas
/// separated by commas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub prefix: String,
    /// The service's name, for the start-up log and messages.
    pub service: String,
    pub upstream: String,
    /// The path the service is asked for, when it is not the client's:
    /// `{rest}` stands for what follows the prefix in the client's path
    /// (`/seats/` + `/listings/{rest}/seats`: `/seats/42` asks for
    /// `/listings/42/seats`). A query in it (`/listings?kind=musical`) is
    /// added to the client's, and wins over a parameter of the same name.
    pub rewrite: Option<String>,
}

/// No route leads there, whatever the table says: services call each
/// other on these paths, clients never do.
const SERVICE_ONLY: &str = "/internal";

/// Whether `path` is one for services only, however many slashes it
/// repeats on the way there.
fn is_service_only(path: &str) -> bool {
    let path = collapse_slashes(path);
    path == SERVICE_ONLY || path.starts_with(&format!("{SERVICE_ONLY}/"))
}

/// `path` with each run of slashes made one (`/a//b` → `/a/b`).
fn collapse_slashes(path: &str) -> String {
    let mut collapsed = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && collapsed.ends_with('/')) {
            collapsed.push(c);
        }
    }
    collapsed
}

#[derive(Debug)]
pub struct RouteTable {
    /// Longest prefix first, so the most specific route wins.
    routes: Vec<Route>,
    /// The replicas of each upstream, shared by every route to it (their
    /// turn and what failed lately are the service's, not a route's).
    replicas: BTreeMap<String, Arc<Replicas>>,
}

/// Where a request goes: the route, the service's replicas, and the
/// service's path and query.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub route: &'a Route,
    pub replicas: &'a Arc<Replicas>,
    pub path: String,
    pub query: Option<String>,
}

impl Target<'_> {
    /// The service's path and query.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone(),
        }
    }

    /// The url of the request on the service's first replica.
    pub fn url(&self) -> String {
        format!("{}{}", self.replicas.url(0), self.path_and_query())
    }
}

impl RouteTable {
    /// Checks every route (an absolute prefix, once; an http(s) upstream;
    /// a rewrite that is an absolute path; nothing under `/internal`).
    pub fn new(mut routes: Vec<Route>) -> anyhow::Result<RouteTable> {
        let mut seen = std::collections::BTreeSet::new();
        for route in &mut routes {
            anyhow::ensure!(
                route.prefix.starts_with('/'),
                "gateway route {:?} ({}): a prefix must start with '/'",
                route.prefix,
                route.service
            );
            anyhow::ensure!(
                seen.insert(route.prefix.clone()),
                "gateway route {:?} is in the table twice: each prefix may have one route",
                route.prefix
            );
            let urls = runtime::replicas::check(&route.upstream).map_err(|why| {
                anyhow::anyhow!(
                    "gateway route {:?}: the upstream {:?} of {} must be an http(s) url, or several separated by commas: {why}",
                    route.prefix,
                    route.upstream,
                    route.service
                )
            })?;
            if let Some(rewrite) = &route.rewrite {
                anyhow::ensure!(
                    rewrite.starts_with('/'),
                    "gateway route {:?}: the rewrite {rewrite:?} must be a path starting with '/'",
                    route.prefix
                );
            }
            let leads_inside = is_service_only(&route.prefix)
                || route.rewrite.as_deref().is_some_and(|rewrite| {
                    is_service_only(rewrite.split('?').next().unwrap_or(""))
                });
            anyhow::ensure!(
                !leads_inside,
                "gateway route {:?}: {SERVICE_ONLY}/… is for services only and cannot be routed to",
                route.prefix
            );
            route.upstream = urls.join(",");
        }
        routes.sort_by_key(|route| std::cmp::Reverse(route.prefix.len()));
        let replicas = routes
            .iter()
            .map(|route| {
                let replicas = Arc::new(Replicas::new(&route.upstream));
                (route.upstream.clone(), replicas)
            })
            .collect();
        Ok(RouteTable { routes, replicas })
    }

    /// The route for a path; a prefix matches whole path segments only.
    pub fn route(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|route| {
            path == route.prefix
                || path.starts_with(&format!("{}/", route.prefix.trim_end_matches('/')))
        })
    }

    /// Where a client's `path` and `query` go, if a route takes them and
    /// the service's path is not one for services only.
    pub fn target(&self, path: &str, query: Option<&str>) -> Option<Target<'_>> {
        let route = self.route(path)?;
        let (path, query) = match &route.rewrite {
            None => (path.to_owned(), query.map(str::to_owned)),
            Some(rewrite) => {
                let rest = path.strip_prefix(route.prefix.as_str()).unwrap_or_default();
                let (template, fixed) = match rewrite.split_once('?') {
                    Some((template, fixed)) => (template, Some(fixed)),
                    None => (rewrite.as_str(), None),
                };
                (
                    collapse_slashes(&template.replace("{rest}", rest)),
                    merge_queries(fixed, query),
                )
            }
        };
        if is_service_only(&path) {
            return None;
        }
        let replicas = &self.replicas[&route.upstream];
        Some(Target {
            route,
            replicas,
            path,
            query,
        })
    }

    /// Each upstream's replicas, for readiness.
    fn upstreams(&self) -> impl Iterator<Item = (&String, &Arc<Replicas>)> {
        self.replicas.iter()
    }
}

/// Why a request to a replica got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoAnswer {
    /// The connection was refused or could not be made: the request never
    /// left, so the service cannot have done anything.
    NotSent,
    /// The connection broke after the request went (reset, closed): the
    /// service may have carried it out.
    Broken,
    /// No answer in the time allowed: it may still be carried out, and the
    /// time for another try is spent.
    TimedOut,
}

impl NoAnswer {
    fn of(error: &reqwest::Error) -> NoAnswer {
        if error.is_connect() {
            NoAnswer::NotSent
        } else if error.is_timeout() {
            NoAnswer::TimedOut
        } else {
            NoAnswer::Broken
        }
    }
}

/// The header that makes a repeated request safe: the service answers a
/// repeat with what the first got.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Whether a request whose try ended with `no_answer` may go to another
/// replica: when nothing was sent, or when repeating it cannot do anything
/// twice (a method that is idempotent by definition, or an
/// `Idempotency-Key` the service honours).
pub fn may_resend(no_answer: NoAnswer, method: &Method, headers: &HeaderMap) -> bool {
    match no_answer {
        NoAnswer::NotSent => true,
        NoAnswer::TimedOut => false,
        NoAnswer::Broken => {
            matches!(
                *method,
                Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
            ) || headers.contains_key(IDEMPOTENCY_KEY)
        }
    }
}

/// What the client is told when no replica answered, after `last`.
fn no_answer_problem(last: NoAnswer) -> ApiError {
    match last {
        NoAnswer::NotSent | NoAnswer::TimedOut => ApiError::Unavailable {
            detail: "the service behind this path is unavailable; try again shortly".to_owned(),
            retry_after_secs: 1,
        },
        NoAnswer::Broken => ApiError::BadGateway(
            "the connection to the service broke before it answered: the request may have been \
             carried out. Check before repeating it, or send an Idempotency-Key to make \
             repeating it safe"
                .to_owned(),
        ),
    }
}

/// A rewrite's fixed query followed by the client's, less the client's
/// parameters the fixed query already sets.
fn merge_queries(fixed: Option<&str>, client: Option<&str>) -> Option<String> {
    let name = |pair: &str| pair.split('=').next().unwrap_or_default().to_owned();
    let fixed: Vec<&str> = fixed
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .collect();
    let taken: Vec<String> = fixed.iter().map(|pair| name(pair)).collect();
    let merged: Vec<&str> = fixed
        .iter()
        .copied()
        .chain(
            client
                .unwrap_or_default()
                .split('&')
                .filter(|pair| !pair.is_empty() && !taken.contains(&name(pair))),
        )
        .collect();
    (!merged.is_empty()).then(|| merged.join("&"))
}

#[derive(Clone, Debug)]
pub struct Upstream {
    routes: Arc<RouteTable>,
    tokens: Tokens,
    limiter: Limiter,
    http: reqwest::Client,
    /// Turns true when the gateway shuts down: answers streamed from a
    /// service (server-sent events) end then, so the server can stop.
    closing: Arc<watch::Sender<bool>>,
}

/// How long a service may take to answer (all of it, or for a stream of
/// events, its headers), over every replica tried.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a replica may take to accept a connection before the next is
/// tried: a loaded service accepts in milliseconds; one that does not is
/// gone (its host down, its packets dropped).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

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
        // No total timeout on the client: an event stream lasts as long as
        // its client listens. `exchange` bounds everything else.
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_max_idle_per_host(256)
            .build()
            .expect("a plain HTTP client always builds");
        Upstream {
            routes,
            tokens,
            limiter,
            http,
            closing: Arc::new(watch::channel(false).0),
        }
    }

    /// Ends the event streams in flight (the gateway is shutting down).
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// Ready when every service behind the gateway has a replica that
    /// says it is.
    pub async fn check_ready(&self) -> Result<(), String> {
        for (upstream, replicas) in self.routes.upstreams() {
            let mut ready = false;
            for url in replicas.urls() {
                ready = self
                    .http
                    .get(format!("{url}/health/ready"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ready {
                    break;
                }
            }
            if !ready {
                return Err(format!("{upstream} is not ready"));
            }
        }
        Ok(())
    }

    /// Who is calling, as the `Authorization` header proves, and whether
    /// they may do what they ask: what the path asks for and, when the
    /// route sends it to another path, what that path asks for too (an
    /// alias never opens what its target keeps closed). On a public path a
    /// missing, malformed, invalid or expired token counts as no token
    /// (browsing goes on after a token expired); elsewhere it is refused.
    /// A signed-in caller's changes count against their rate limit.
    pub fn authorize(
        &self,
        method: &Method,
        paths: &[&str],
        headers: &HeaderMap,
    ) -> Result<Option<Caller>, ApiError> {
        let access = paths
            .iter()
            .map(|path| access::required(method, path))
            .max()
            .unwrap_or(Access::SignedIn);
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
            .and_then(|v| runtime::tokens::bearer(v).ok())
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "the Authorization header must be 'Bearer <token>'".to_owned(),
                )
            })?;
        self.tokens
            .verify(token)
            .map(Some)
            .map_err(ApiError::Unauthorized)
    }

    /// The HTTP client for calls to services.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends a request to one of a service's replicas and reads its answer
    /// within `within` (at most [`UPSTREAM_TIMEOUT`]), refusing one larger
    /// than [`MAX_UPSTREAM_BODY_BYTES`]. A replica that gives no answer is
    /// set aside and the request goes to the next when [`may_resend`]
    /// allows. An event stream (`text/event-stream`) is passed on as it
    /// comes, chunk by chunk, for as long as it lasts.
    pub async fn send(
        &self,
        replicas: &Replicas,
        request: Outgoing,
        within: Duration,
    ) -> Result<Response, ApiError> {
        let deadline = tokio::time::Instant::now() + within.min(UPSTREAM_TIMEOUT);
        let resendable = |no_answer| may_resend(no_answer, &request.method, &request.headers);
        let mut last = NoAnswer::NotSent;
        for replica in replicas.plan(std::time::Instant::now()) {
            let target = format!("{}{}", replicas.url(replica), request.path_and_query);
            let attempt = runtime::in_process::send(
                self.http
                    .request(request.method.clone(), &target)
                    .headers(request.headers.clone())
                    .body(request.body.clone()),
            );
            let no_answer = match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(answer)) => {
                    replicas.reached(replica);
                    return self.relay(answer, &target, deadline).await;
                }
                Ok(Err(error)) => {
                    let no_answer = NoAnswer::of(&error);
                    tracing::warn!(%target, error = %error, ?no_answer, "a replica gave no answer");
                    no_answer
                }
                Err(_) => {
                    tracing::warn!(%target, "a replica gave no answer in time");
                    NoAnswer::TimedOut
                }
            };
            last = no_answer;
            if no_answer != NoAnswer::TimedOut {
                replicas.unreachable(replica, std::time::Instant::now());
            }
            if !resendable(no_answer) {
                break;
            }
        }
        Err(no_answer_problem(last))
    }

    /// The service's answer, as the client gets it.
    async fn relay(
        &self,
        answer: reqwest::Response,
        target: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Response, ApiError> {
        let status =
            StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut headers = HeaderMap::with_capacity(answer.headers().len());
        for (name, value) in answer.headers() {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                headers.append(name.clone(), value.clone());
            }
        }
        let body = if is_event_stream(&headers) {
            // Nothing between the service and the client may hold events back.
            headers.insert(
                HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            );
            stream_body(answer, self.closing.subscribe())
        } else {
            match tokio::time::timeout_at(deadline, read_body(answer, target)).await {
                Ok(body) => body?,
                Err(_) => {
                    return Err(ApiError::Unavailable {
                        detail: "the service's answer was cut off: it took too long".to_owned(),
                        retry_after_secs: 1,
                    })
                }
            }
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("text/event-stream"))
}

/// The whole answer, up to [`MAX_UPSTREAM_BODY_BYTES`].
async fn read_body(mut answer: reqwest::Response, target: &str) -> Result<Body, ApiError> {
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
    Ok(Body::from(body.freeze()))
}

/// The answer's chunks as they arrive, until the service ends it, the
/// connection to it breaks, or the gateway shuts down.
fn stream_body(answer: reqwest::Response, closing: watch::Receiver<bool>) -> Body {
    let chunks = futures::stream::unfold(Some((answer, closing)), |state| async move {
        let (mut answer, mut closing) = state?;
        let chunk = tokio::select! {
            chunk = answer.chunk() => chunk,
            _ = async { closing.wait_for(|closing| *closing).await.map(|_| ()) } => Ok(None),
        };
        match chunk {
            Ok(Some(chunk)) => Some((Ok::<_, std::io::Error>(chunk), Some((answer, closing)))),
            Ok(None) => None,
            Err(error) => {
                tracing::debug!(error = %error, "an event stream from a service broke off");
                None
            }
        }
    });
    Body::from_stream(chunks)
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
    let Some(target) = upstream.routes.target(path, parts.uri.query()) else {
        // Who may call what is decided before whether it exists, as for
        // any other path: an anonymous caller learns nothing of routes.
        upstream.authorize(&parts.method, &[path], &parts.headers)?;
        return Err(ApiError::NotFound(format!("no route for {path}")));
    };
    // The gateway's routes are its fallback, so its request span is named
    // after the route that took the request.
    runtime::telemetry::name_request(&parts.method, &target.route.prefix, &target.route.service);
    let caller = upstream.authorize(&parts.method, &[path, &target.path], &parts.headers)?;
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::PayloadTooLarge(format!("the body is larger than {MAX_BODY_BYTES} bytes"))
        })?;
    let mut headers = downstream_headers(&parts.headers, caller.as_ref());
    // The service continues the gateway's span, not the client's.
    runtime::telemetry::inject(&mut headers);
    let request = Outgoing {
        method: parts.method,
        path_and_query: target.path_and_query(),
        headers,
        body,
    };
    upstream
        .send(target.replicas, request, UPSTREAM_TIMEOUT)
        .await
}

/// A request for a service, whichever replica takes it.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub method: Method,
    /// The path (and query) on the service, starting with `/`.
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, upstream: &str, rewrite: Option<&str>) -> Route {
        Route {
            prefix: prefix.into(),
            service: "svc".into(),
            upstream: upstream.into(),
            rewrite: rewrite.map(str::to_owned),
        }
    }

    fn table() -> RouteTable {
        RouteTable::new(vec![
            route("/listings", "http://catalog:1/", None),
            route("/reservations", "http://reservation:2", None),
            route("/mypage", "http://mypage:3", None),
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
        assert!(RouteTable::new(vec![route("listings", "http://a", None)]).is_err());
        assert!(RouteTable::new(vec![route("/a", "ftp://a", None)]).is_err());
        assert!(RouteTable::new(vec![route("/a", "http://a", Some("b/{rest}"))]).is_err());
    }

    #[test]
    fn a_prefix_may_have_one_route() {
        let error = RouteTable::new(vec![
            route("/a", "http://a", None),
            route("/a", "http://b", None),
        ])
        .unwrap_err();
        assert!(
            error.to_string().contains("\"/a\" is in the table twice"),
            "{error}"
        );
    }

    fn url(table: &RouteTable, path: &str, query: Option<&str>) -> Option<String> {
        table.target(path, query).map(|target| target.url())
    }

    #[test]
    fn a_rewrite_puts_what_follows_the_prefix_in_its_place() {
        let table = RouteTable::new(vec![
            route("/listings", "http://catalog", None),
            route("/items", "http://catalog", Some("/listings?kind=musical")),
            route("/items/", "http://catalog", Some("/listings/{rest}")),
            route("/seats/", "http://catalog", Some("/listings/{rest}/seats")),
            route(
                "/myPages",
                "http://mypage",
                Some("/mypage/reservations{rest}"),
            ),
        ])
        .unwrap();
        let cases = [
            ("/items", None, "http://catalog/listings?kind=musical"),
            (
                "/items",
                Some("limit=5&kind=movie&after=x"),
                "http://catalog/listings?kind=musical&limit=5&after=x",
            ),
            ("/items/42", None, "http://catalog/listings/42"),
            ("/items/42", Some("a=b"), "http://catalog/listings/42?a=b"),
            ("/seats/42", None, "http://catalog/listings/42/seats"),
            (
                "/myPages",
                Some("limit=1"),
                "http://mypage/mypage/reservations?limit=1",
            ),
            ("/myPages/7", None, "http://mypage/mypage/reservations/7"),
            (
                "/listings/42",
                Some("q=1"),
                "http://catalog/listings/42?q=1",
            ),
        ];
        for (path, query, expected) in cases {
            assert_eq!(
                url(&table, path, query).as_deref(),
                Some(expected),
                "{path}"
            );
        }
        assert_eq!(url(&table, "/seats", None), None);
    }

    #[test]
    fn a_service_may_have_replicas_which_its_routes_share() {
        let table = RouteTable::new(vec![
            route("/listings", "http://c1:1/, http://c2:1", None),
            route(
                "/items/",
                "http://c1:1,http://c2:1/",
                Some("/listings/{rest}"),
            ),
            route("/mypage", "http://m:3", None),
        ])
        .unwrap();
        let listings = table.target("/listings/7", None).unwrap();
        let items = table.target("/items/7", None).unwrap();
        assert_eq!(listings.route.upstream, "http://c1:1,http://c2:1");
        assert_eq!(listings.replicas.urls(), ["http://c1:1", "http://c2:1"]);
        assert!(
            Arc::ptr_eq(listings.replicas, items.replicas),
            "one turn and one memory of failures per service"
        );
        assert_eq!(listings.path_and_query(), "/listings/7");
        assert_eq!(items.url(), "http://c1:1/listings/7");
        assert_eq!(table.upstreams().count(), 2);
        for bad in ["http://a,ftp://b", "http://a,http://a", " , "] {
            let error = RouteTable::new(vec![route("/a", bad, None)]).unwrap_err();
            assert!(
                error.to_string().contains("several separated by commas"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_request_that_never_left_may_go_to_any_replica() {
        let none = HeaderMap::new();
        for method in [Method::GET, Method::POST, Method::PATCH, Method::DELETE] {
            assert!(may_resend(NoAnswer::NotSent, &method, &none), "{method}");
        }
    }

    #[test]
    fn after_a_broken_connection_only_a_repeatable_request_goes_again() {
        let none = HeaderMap::new();
        let mut keyed = HeaderMap::new();
        keyed.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("click-1"));
        for method in [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ] {
            assert!(may_resend(NoAnswer::Broken, &method, &none), "{method}");
        }
        assert!(!may_resend(NoAnswer::Broken, &Method::POST, &none));
        assert!(!may_resend(NoAnswer::Broken, &Method::PATCH, &none));
        assert!(may_resend(NoAnswer::Broken, &Method::POST, &keyed));
        assert!(may_resend(NoAnswer::Broken, &Method::PATCH, &keyed));
    }

    #[test]
    fn after_a_timeout_nothing_goes_again() {
        let mut keyed = HeaderMap::new();
        keyed.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("click-1"));
        assert!(!may_resend(NoAnswer::TimedOut, &Method::GET, &keyed));
        assert!(!may_resend(NoAnswer::TimedOut, &Method::POST, &keyed));
    }

    #[test]
    fn a_broken_request_is_a_502_that_says_it_may_have_been_done() {
        let broken = no_answer_problem(NoAnswer::Broken).into_response();
        assert_eq!(broken.status(), StatusCode::BAD_GATEWAY);
        for unsent in [NoAnswer::NotSent, NoAnswer::TimedOut] {
            let response = no_answer_problem(unsent).into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
    }

    #[test]
    fn no_route_leads_to_the_paths_for_services_only() {
        for (prefix, rewrite) in [
            ("/internal", None),
            ("/internal/x", None),
            ("/a", Some("/internal/{rest}")),
            ("/a", Some("/internal?x=1")),
        ] {
            let error = RouteTable::new(vec![route(prefix, "http://a", rewrite)]).unwrap_err();
            assert!(error.to_string().contains("for services only"), "{error}");
        }
        // Everything else goes to one service, but still not there.
        let everything = RouteTable::new(vec![
            route("/", "http://a", None),
            route("/x", "http://a", Some("/{rest}")),
        ])
        .unwrap();
        assert_eq!(url(&everything, "/internal/authorisations", None), None);
        assert_eq!(url(&everything, "/x/internal/authorisations", None), None);
        assert_eq!(url(&everything, "/x/internal", None), None);
        assert_eq!(url(&everything, "//internal/x", None), None);
        assert_eq!(
            url(&everything, "/internals", None).as_deref(),
            Some("http://a/internals")
        );
    }
}
