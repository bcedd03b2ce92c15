//! Calls to a service this very process serves, without the network.
//!
//! In `up` every service listens on its own loopback port, and the gateway
//! and the services call each other at those addresses exactly as they do
//! across processes. A call whose address is one this process listens on
//! skips the socket: the request goes straight into the router that
//! listener serves — the same router, with the same middleware (request
//! id, body limit, metrics, the request's trace span) — on the caller's
//! task. Saved: HTTP encoding and parsing on both ends, two loopback
//! sockets and the wake-ups between the tasks on either side. Kept:
//! everything the service does with a request, and everything the caller
//! does with the answer (a `reqwest::Response` either way).
//!
//! An address is offered while its listener accepts ([`App::serve`]
//! offers it when serving starts and withdraws it when the listener
//! closes): from then on a call goes over the network and is refused like
//! any call to a closed port, so callers see a stopping service the same
//! way in one process as across processes. A call already inside the
//! router when the listener closes finishes on its caller's task.
//!
//! What differs: a handler that panics is answered 500 (over the network
//! its connection would have closed and the caller said 502); the
//! caller's own timeout applies (the gateway's deadline, a breaker's
//! wait), not the `reqwest::Client`'s, so callers that rely on a timeout
//! put their own around the call ([`crate::breaker`] does); and a handler
//! reading `ConnectInfo` sees the unspecified loopback address
//! `127.0.0.1:0` (no service behind the gateway reads it).
//!
//! [`App::serve`]: crate::App::serve

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{LazyLock, RwLock};

use axum::extract::connect_info::ConnectInfo;
use axum::http::uri::PathAndQuery;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::Router;
use tower::{Layer, ServiceExt};
use tower_http::catch_panic::CatchPanicLayer;

use crate::http::problem_response;

/// The routers this process serves, by the address their listener took.
static SERVED: LazyLock<RwLock<HashMap<SocketAddr, Router>>> = LazyLock::new(Default::default);

/// Calls to `addr` from this process go into `router` until withdrawn.
/// An address any interface answers on (`0.0.0.0`) is not offered: the
/// address a caller dials is a different one.
pub(crate) fn offer(addr: SocketAddr, router: Router) {
    if addr.ip().is_unspecified() {
        return;
    }
    SERVED.write().expect("never poisoned").insert(addr, router);
}

/// Calls to `addr` go over the network again (its listener closed).
pub(crate) fn withdraw(addr: SocketAddr) {
    SERVED.write().expect("never poisoned").remove(&addr);
}

/// The router serving the address `url` names, if this process serves it.
fn served_at(url: &reqwest::Url) -> Option<Router> {
    if url.scheme() != "http" {
        return None;
    }
    let host = url.host_str()?;
    let ip: IpAddr = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()?;
    let addr = SocketAddr::new(ip, url.port_or_known_default()?);
    SERVED.read().expect("never poisoned").get(&addr).cloned()
}

/// Sends the request `builder` holds: into the router when this process
/// serves its address, over the network otherwise. Either way the answer
/// is the service's, as a `reqwest::Response`.
pub async fn send(builder: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
    let (client, request) = builder.build_split();
    let request = request?;
    match served_at(request.url()) {
        Some(router) => Ok(call(router, request).await?),
        None => client.execute(request).await,
    }
}

/// The request through `router`, as a listener would have passed it: the
/// path and query as its target, the address as its `Host`.
async fn call(router: Router, request: reqwest::Request) -> reqwest::Result<reqwest::Response> {
    let request: axum::http::Request<reqwest::Body> = request.try_into()?;
    let (mut parts, body) = request.into_parts();
    if let Some(host) = parts.uri.authority() {
        if let Ok(host) = HeaderValue::from_str(host.as_str()) {
            parts.headers.insert(header::HOST, host);
        }
    }
    let target = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = Uri::from(target);
    parts
        .extensions
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 0))));
    let request = axum::http::Request::from_parts(parts, axum::body::Body::new(body));
    // A handler that panics fails its request, not its caller's: over the
    // network its connection would have closed; here it is answered 500.
    let service = CatchPanicLayer::custom(panicked).layer(router);
    let response = match service.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let body = reqwest::Body::wrap_stream(axum::body::Body::new(body).into_data_stream());
    Ok(reqwest::Response::from(axum::http::Response::from_parts(
        parts, body,
    )))
}

/// The answer to a request whose handler panicked.
fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    problem_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the service failed while handling this request",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};

    fn echo() -> Router {
        Router::new()
            .route(
                "/internal/echo",
                post(|headers: axum::http::HeaderMap, body: String| async move {
                    let host = headers[header::HOST]
                        .to_str()
                        .unwrap_or_default()
                        .to_owned();
                    format!("{host} {body}")
                }),
            )
            .route(
                "/internal/query",
                get(|uri: Uri| async move { uri.to_string() }),
            )
            .route(
                "/internal/panic",
                get(|| async move {
                    if true {
                        panic!("a bug in a handler");
                    }
                }),
            )
    }

    #[tokio::test]
    async fn a_call_to_an_address_this_process_serves_goes_through_its_router() {
        // No listener on this port: only the router can answer.
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        offer(addr, echo());
        let http = reqwest::Client::new();
        let answer = send(http.post("http://127.0.0.1:9/internal/echo").body("hello"))
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.unwrap(), "127.0.0.1:9 hello");
        let answer = send(http.get("http://127.0.0.1:9/internal/query?a=1&b=2"))
            .await
            .unwrap();
        assert_eq!(answer.text().await.unwrap(), "/internal/query?a=1&b=2");
        let missing = send(http.get("http://127.0.0.1:9/nowhere")).await.unwrap();
        assert_eq!(missing.status(), 404);
        let failed = send(http.get("http://127.0.0.1:9/internal/panic"))
            .await
            .unwrap();
        assert_eq!(failed.status(), 500);

        withdraw(addr);
        let refused = send(http.get("http://127.0.0.1:9/internal/query"))
            .await
            .unwrap_err();
        assert!(refused.is_connect(), "{refused}");
    }

    #[tokio::test]
    async fn an_address_on_every_interface_or_by_name_is_not_taken_in_process() {
        offer("0.0.0.0:10".parse().unwrap(), echo());
        assert!(served_at(&"http://0.0.0.0:10/echo".parse().unwrap()).is_none());
        offer("127.0.0.1:11".parse().unwrap(), echo());
        assert!(served_at(&"http://localhost:11/echo".parse().unwrap()).is_none());
        assert!(served_at(&"https://127.0.0.1:11/echo".parse().unwrap()).is_none());
        assert!(served_at(&"http://127.0.0.1:11/echo".parse().unwrap()).is_some());
        withdraw("127.0.0.1:11".parse().unwrap());
    }
}
