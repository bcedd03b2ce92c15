//! The admin's dashboard: a read model of listings, bookings, revenue and
//! points built from events, read whole or followed live (server-sent
//! events) through the gateway.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{eventually, spawn_app, TestApp};

/// The dashboard's row for a listing, once it shows it.
fn listing<'a>(dashboard: &'a Value, id: &str) -> Option<&'a Value> {
    dashboard["listings"]
        .as_array()?
        .iter()
        .find(|listing| listing["id"] == id)
}

/// Points earned in a customer's wallet and still there (a refund took
/// back what its payment earned), as the wallet shows them.
async fn earned(app: &TestApp, customer: &str) -> u64 {
    let points = app.get("/points?limit=1000", Some(customer)).await;
    points.body["balance"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn the_dashboard_counts_tickets_bookings_revenue_and_points_for_admins_only() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let customer = app.customer("dashboard-customer").await;
    let movie = app.movie(&admin, "Dashboard Premiere", 100).await;

    // 45 confirmed, 57 refused (55 left), 10 confirmed and then cancelled.
    let kept = app.book(&customer, &movie, 45).await;
    let kept = kept.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(&customer, &kept).await, "confirmed");
    let refused = app.book(&customer, &movie, 57).await;
    let refused = refused.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(&customer, &refused).await, "rejected");
    let dropped = app.book(&customer, &movie, 10).await;
    let dropped = dropped.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(&customer, &dropped).await, "confirmed");
    let cancelled = app
        .post(
            &format!("/reservations/{dropped}/cancel"),
            Some(&customer),
            Value::Null,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::ACCEPTED, "{cancelled:?}");

    let dashboard = eventually(|| async {
        let answer = app.get("/dashboard", Some(&admin)).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        // Every inventory move has arrived (not only the sale of the kept
        // booking: the cancelled one's sale and release come after it, on
        // catalog's topic, apart from the reservation counts).
        let settled = listing(&answer.body, &movie)
            .is_some_and(|row| row["sold"] == 45 && row["held"] == 0 && row["available"] == 55)
            && answer.body["reservations"]["cancelled"] == 1
            && answer.body["reservations"]["rejected"] == 1;
        settled.then_some(answer.body)
    })
    .await;
    let row = listing(&dashboard, &movie).unwrap();
    assert_eq!(row["title"], "Dashboard Premiere");
    assert_eq!(row["kind"], "movie");
    assert_eq!(
        (&row["total"], &row["held"], &row["sold"], &row["available"]),
        (
            &Value::from(100),
            &Value::from(0),
            &Value::from(45),
            &Value::from(55)
        )
    );
    assert_eq!(app.available(&movie).await, 55, "the catalog agrees");
    assert_eq!(
        dashboard["reservations"],
        serde_json::json!({"pending": 0, "confirmed": 1, "rejected": 1, "cancelled": 1, "returned": 0})
    );
    assert_eq!(
        dashboard["revenue"],
        serde_json::json!({"card": 45 * 12000, "points": 0})
    );
    assert!(dashboard["updatedAt"].is_string(), "{dashboard}");
    // What card payments earned, less what refunds took back, is issued;
    // nothing was paid with points.
    eventually(|| async {
        let issued = app.get("/dashboard", Some(&admin)).await.body["points"].clone();
        let earned = earned(&app, &customer).await;
        (earned >= 45 * 12000 / 10 && issued["issued"] == earned && issued["spent"] == 0)
            .then_some(())
    })
    .await;

    // Customers and strangers are kept out, whole and live.
    for path in ["/dashboard", "/dashboard/stream"] {
        let refused = app.get(path, Some(&customer)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}: {refused:?}");
        let anonymous = app.get(path, None).await;
        assert_eq!(
            anonymous.status,
            StatusCode::UNAUTHORIZED,
            "{path}: {anonymous:?}"
        );
    }
}

/// A dashboard stream read with a bound on how long it may be silent.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(app: &TestApp, token: &str) -> Stream {
        let response = app
            .http
            .get(format!("{}/dashboard/stream", app.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Stream {
            response,
            buffer: String::new(),
        }
    }

    /// The next `dashboard` event's data, within 10 s.
    async fn next(&mut self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if frame.lines().any(|line| line == "event: dashboard") {
                    let data = frame
                        .lines()
                        .find_map(|line| line.strip_prefix("data: "))
                        .expect("a dashboard event has data");
                    return serde_json::from_str(data).unwrap();
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .expect("a dashboard event within 10 s")
                .unwrap()
                .expect("the stream stays open");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

#[tokio::test]
async fn the_dashboard_stream_sends_it_on_connecting_and_again_after_a_booking() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let customer = app.customer("streamed-customer").await;
    let movie = app.movie(&admin, "Streamed", 20).await;
    eventually(|| async {
        let dashboard = app.get("/dashboard", Some(&admin)).await.body;
        listing(&dashboard, &movie).map(|_| ())
    })
    .await;

    let mut stream = Stream::open(&app, &admin).await;
    let first = stream.next().await;
    assert_eq!(listing(&first, &movie).unwrap()["available"], 20);

    let booked = app.book(&customer, &movie, 3).await;
    assert_eq!(booked.status, StatusCode::ACCEPTED, "{booked:?}");
    // Updates follow the booking through its steps; the last shows it sold.
    let mut update = stream.next().await;
    while listing(&update, &movie).unwrap()["sold"] != 3 || update["reservations"]["confirmed"] != 1
    {
        update = stream.next().await;
    }
    assert_eq!(listing(&update, &movie).unwrap()["available"], 17);

    // Stopping the platform ends the stream rather than waiting on it.
    tokio::time::timeout(Duration::from_secs(20), app.stop())
        .await
        .expect("the platform stops while a stream is open");
}
