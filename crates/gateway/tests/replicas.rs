//! A service with several replicas behind the gateway: requests spread
//! over them, a replica that refuses connections is passed over, and a
//! request whose connection broke goes to another replica only when
//! repeating it cannot do anything twice.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use support::{gateway, serve, ADMIN_PASSWORD};

/// A replica that answers with its name (and counts what it got).
async fn replica(name: &'static str, got: Arc<AtomicUsize>) -> String {
    let answer = move || {
        let got = got.clone();
        async move {
            got.fetch_add(1, Ordering::SeqCst);
            name
        }
    };
    serve(Router::new().route("/listings", get(answer.clone()).post(answer))).await
}

/// A port nobody listens on.
fn refusing() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// A replica that reads each request and then drops the connection
/// without answering, as one killed mid-request does; counts the requests.
async fn breaking(got: Arc<AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let got = got.clone();
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                if socket.read(&mut buffer).await.unwrap_or(0) > 0 {
                    got.fetch_add(1, Ordering::SeqCst);
                }
                drop(socket);
            });
        }
    });
    url
}

#[tokio::test]
async fn requests_take_the_replicas_in_turn_and_pass_over_one_that_refuses() {
    let (a, b) = (Arc::default(), Arc::default());
    let upstream = format!(
        "{},{},{}",
        replica("a", a).await,
        refusing(),
        replica("b", b).await
    );
    let gateway = gateway(&[("catalog", "/listings", &upstream)]).await;
    let mut answered: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..30 {
        let answer = gateway
            .http
            .get(format!("{}/listings", gateway.url))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        *answered.entry(answer.text().await.unwrap()).or_default() += 1;
    }
    assert_eq!(answered.values().sum::<usize>(), 30);
    // Both live replicas took a fair share; the refusing one cost retries only.
    assert!(
        answered.get("a") >= Some(&10) && answered.get("b") >= Some(&10),
        "{answered:?}"
    );
}

#[tokio::test]
async fn a_post_whose_connection_broke_is_not_sent_again_without_an_idempotency_key() {
    let (broken, good) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let upstream = format!(
        "{},{}",
        breaking(broken.clone()).await,
        replica("good", good.clone()).await
    );
    let gateway = gateway(&[("catalog", "/listings", &upstream)]).await;
    let admin = gateway.token("admin", ADMIN_PASSWORD).await;
    // The first request goes to the first replica, which breaks it.
    let answer = gateway
        .http
        .post(format!("{}/listings", gateway.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 502);
    assert_eq!(answer.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = answer.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("may have been carried out"),
        "{problem}"
    );
    assert_eq!(broken.load(Ordering::SeqCst), 1);
    assert_eq!(good.load(Ordering::SeqCst), 0, "never submitted twice");
}

#[tokio::test]
async fn a_repeatable_request_whose_connection_broke_goes_to_another_replica() {
    for (method, key) in [
        (reqwest::Method::POST, Some("click-1")),
        (reqwest::Method::GET, None),
    ] {
        let (broken, good) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let upstream = format!(
            "{},{}",
            breaking(broken.clone()).await,
            replica("good", good.clone()).await
        );
        let gateway = gateway(&[("catalog", "/listings", &upstream)]).await;
        let admin = gateway.token("admin", ADMIN_PASSWORD).await;
        let mut request = gateway
            .http
            .request(method.clone(), format!("{}/listings", gateway.url))
            .bearer_auth(&admin);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 200, "{method}");
        assert_eq!(answer.text().await.unwrap(), "good");
        assert_eq!(broken.load(Ordering::SeqCst), 1, "{method}: tried first");
        assert_eq!(good.load(Ordering::SeqCst), 1, "{method}: then the other");
    }
}

#[tokio::test]
async fn with_every_replica_refusing_the_answer_is_a_503_problem() {
    let upstream = format!("{},{}", refusing(), refusing());
    let gateway = gateway(&[("catalog", "/listings", &upstream)]).await;
    let admin = gateway.token("admin", ADMIN_PASSWORD).await;
    let answer = gateway
        .http
        .post(format!("{}/listings", gateway.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.headers()["content-type"], "application/problem+json");
}
