//! Forwarding: what reaches a service and what comes back from it.

mod support;

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::Request;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures::StreamExt;
use gateway::proxy::MAX_UPSTREAM_BODY_BYTES;

use support::{gateway, serve};

/// A catalog that answers too much, and echoes what it was asked.
fn catalog() -> Router {
    Router::new()
        .route(
            "/listings/huge",
            get(|| async { vec![b'x'; MAX_UPSTREAM_BODY_BYTES + 1] }),
        )
        .route(
            "/listings/huge-stream",
            get(|| async {
                // Chunked, without a length: the limit is noticed while reading.
                let chunk = Bytes::from(vec![b'x'; 1024 * 1024]);
                let chunks = (0..17).map(move |_| Ok::<_, Infallible>(chunk.clone()));
                Body::from_stream(futures::stream::iter(chunks))
            }),
        )
        .route(
            "/listings/just-right",
            get(|| async { vec![b'x'; MAX_UPSTREAM_BODY_BYTES] }),
        )
        .route(
            "/listings/events",
            get(|| async {
                // One event now, the next much later: only a proxy that
                // passes chunks on as they come shows the first in time.
                let first = futures::stream::once(async {
                    Ok::<_, Infallible>(Bytes::from_static(b"event: hello\ndata: 1\n\n"))
                });
                let later = futures::stream::once(async {
                    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                    Ok::<_, Infallible>(Bytes::from_static(b"event: late\ndata: 2\n\n"))
                });
                (
                    [
                        ("content-type", "text/event-stream"),
                        ("cache-control", "no-cache"),
                    ],
                    Body::from_stream(first.chain(later)),
                )
            }),
        )
        .route(
            "/listings",
            get(|request: Request| async move {
                let who = request
                    .headers()
                    .get("x-boxoffice-user-id")
                    .map_or("anonymous".to_owned(), |v| v.to_str().unwrap().to_owned());
                format!("{} as {who}", request.uri())
            }),
        )
}

#[tokio::test]
async fn an_answer_larger_than_the_limit_is_a_502_problem() {
    let upstream = serve(catalog()).await;
    let gateway = gateway(&[("catalog", "/listings", &upstream)]).await;
    for path in ["/listings/huge", "/listings/huge-stream"] {
        let answer = gateway
            .http
            .get(format!("{}{path}", gateway.url))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 502, "{path}");
        assert_eq!(
            answer.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let problem: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(problem["type"], "/problems/bad-gateway");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("larger than 16 MiB"),
            "{problem}"
        );
    }
    let fits = gateway
        .http
        .get(format!("{}/listings/just-right", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(fits.status(), 200);
    assert_eq!(fits.bytes().await.unwrap().len(), MAX_UPSTREAM_BODY_BYTES);
}

#[tokio::test]
async fn queries_reach_the_service_unchanged() {
    let upstream = serve(catalog()).await;
    let gateway = gateway(&[("catalog", "/listings", &upstream)]).await;
    let query =
        "/listings?limit=5&after=0196b5c3-1b2a-7000-8000-000000000000&kind=movie&q=a%20b%26c";
    let echoed = gateway
        .http
        .get(format!("{}{query}", gateway.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(echoed, format!("{query} as anonymous"));
}

#[tokio::test]
async fn a_public_read_with_a_bad_token_is_served_as_anonymous() {
    let upstream = serve(catalog()).await;
    let gateway = gateway(&[
        ("catalog", "/listings", &upstream),
        ("reservation", "/reservations", &upstream),
    ])
    .await;
    let customer = gateway.customer("browser").await;
    let mut expired_or_forged: Vec<String> = customer.split('.').map(str::to_owned).collect();
    expired_or_forged[2] = "c2lnbmVkIGJ5IG5vYm9keQ".to_owned();
    for token in ["garbage", &expired_or_forged.join(".")] {
        let answer = gateway
            .http
            .get(format!("{}/listings", gateway.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.unwrap(), "/listings as anonymous");
        let protected = gateway
            .http
            .get(format!("{}/reservations", gateway.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(protected.status(), 401);
    }
    // A good token on a public path still says who is browsing.
    let answer = gateway
        .http
        .get(format!("{}/listings", gateway.url))
        .bearer_auth(&customer)
        .send()
        .await
        .unwrap();
    assert_ne!(answer.text().await.unwrap(), "/listings as anonymous");
}

#[tokio::test]
async fn an_event_stream_is_passed_on_as_it_comes_and_ends_when_the_gateway_stops() {
    let upstream = serve(catalog()).await;
    let gateway = gateway(&[("catalog", "/listings", &upstream)]).await;
    let mut answer = gateway
        .http
        .get(format!("{}/listings/events", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "text/event-stream");
    assert_eq!(answer.headers()["cache-control"], "no-cache");
    let bounded = std::time::Duration::from_secs(5);
    let first = tokio::time::timeout(bounded, answer.chunk())
        .await
        .expect("the first event arrives before the stream ends")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"event: hello\ndata: 1\n\n");

    // Stopping the gateway ends the stream rather than waiting for it.
    gateway.shut_down();
    let end = tokio::time::timeout(bounded, answer.chunk())
        .await
        .expect("the stream ends when the gateway stops");
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
}
