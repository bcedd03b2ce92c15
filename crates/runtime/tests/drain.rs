//! Shutdown drains an instance: readiness says "draining" while requests
//! are still taken, then the listener closes, and requests in flight and
//! the workers' batches finish before `serve` returns.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use kernel::shutdown;
use runtime::App;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};

/// A service whose `/slow` answers only once released, and a worker
/// that takes a while to finish its batch on shutdown.
struct Slow {
    started: tokio::sync::Mutex<Option<oneshot::Sender<()>>>,
    release: Notify,
    batches_finished: AtomicUsize,
}

fn slow_app(slow: Arc<Slow>, drain_for: Duration) -> App {
    let handler = slow.clone();
    let router = Router::new().route(
        "/slow",
        get(move || {
            let slow = handler.clone();
            async move {
                if let Some(started) = slow.started.lock().await.take() {
                    let _ = started.send(());
                }
                slow.release.notified().await;
                "done"
            }
        }),
    );
    App::new("slow", router).draining_for(drain_for).worker(
        "batch",
        move |mut shutdown| async move {
            shutdown.wait().await;
            // The batch in hand is finished and its position committed.
            tokio::time::sleep(Duration::from_millis(200)).await;
            slow.batches_finished.fetch_add(1, Ordering::SeqCst);
            Ok(())
        },
    )
}

async fn status(http: &reqwest::Client, url: &str) -> Result<(u16, String), reqwest::Error> {
    let answer = http.get(url).send().await?;
    Ok((answer.status().as_u16(), answer.text().await?))
}

#[tokio::test]
async fn on_shutdown_it_stops_being_ready_closes_the_door_and_finishes_what_is_in_flight() {
    let (started, has_started) = oneshot::channel();
    let slow = Arc::new(Slow {
        started: tokio::sync::Mutex::new(Some(started)),
        release: Notify::new(),
        batches_finished: AtomicUsize::new(0),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (trigger, shutdown) = shutdown::channel();
    // A window long enough to look at readiness in, however slow the machine.
    let serving =
        tokio::spawn(slow_app(slow.clone(), Duration::from_secs(3)).serve(listener, shutdown));
    // No pooled connections: each check is a new one, as a probe's is.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let ready = format!("{base}/health/ready");
    assert_eq!(status(&http, &ready).await.unwrap().0, 200);

    let in_flight = tokio::spawn({
        let (http, url) = (http.clone(), format!("{base}/slow"));
        async move { status(&http, &url).await }
    });
    has_started.await.unwrap();
    trigger.fire();

    // Not ready from now on, while still answering.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (code, body) = loop {
        let answer = status(&http, &ready).await.unwrap();
        if answer.0 != 200 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("draining"), "{body}");

    // After the window the door closes: new connections are refused,
    // while the slow request is still being served.
    let refused = loop {
        match status(&http, &ready).await {
            Err(error) if error.is_connect() => break error,
            // A connection the kernel accepted just as the listener closed
            // is reset without an answer: the door is closing; ask again.
            other => {
                assert!(
                    Instant::now() < deadline,
                    "the listener never closed: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(refused.is_connect(), "{refused}");
    assert!(
        !in_flight.is_finished(),
        "the request in flight is not cut off"
    );
    assert!(!serving.is_finished(), "serve waits for it");

    slow.release.notify_one();
    let answer = in_flight.await.unwrap().unwrap();
    assert_eq!(answer, (200, "done".to_owned()));
    tokio::time::timeout(Duration::from_secs(30), serving)
        .await
        .expect("serve returns once the request and the batch are done")
        .unwrap()
        .unwrap();
    assert_eq!(
        slow.batches_finished.load(Ordering::SeqCst),
        1,
        "the worker finished its batch before serve returned"
    );
}
