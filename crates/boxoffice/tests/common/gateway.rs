//! A client of the public HTTP API (through the gateway), shared by the
//! embedded and the distributed end-to-end tests.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// What an HTTP call answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

impl Answer {
    pub fn detail(&self) -> &str {
        self.body["detail"].as_str().unwrap_or_default()
    }
}

/// A client of the public API, through the gateway.
#[derive(Clone)]
pub struct Gateway {
    pub url: String,
    pub http: reqwest::Client,
}

impl Gateway {
    pub fn new(url: impl Into<String>) -> Gateway {
        Gateway {
            url: url.into(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request.send().await.expect("the gateway answers")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call("GET", path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.call("POST", path, token, Some(body)).await
    }

    pub async fn token(&self, username: &str, password: &str) -> String {
        let answer = self
            .post(
                "/auth/token",
                None,
                json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        answer.body["accessToken"].as_str().unwrap().to_owned()
    }

    pub async fn admin_token(&self) -> String {
        self.token("admin", ADMIN_PASSWORD).await
    }

    /// Signs a new customer up and returns their token.
    pub async fn customer(&self, username: &str) -> String {
        let answer = self
            .post(
                "/auth/signup",
                None,
                json!({"username": username, "password": "correct horse"}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        self.token(username, "correct horse").await
    }

    /// Registers a movie with a ticket quota; returns its id.
    pub async fn movie(&self, admin: &str, title: &str, tickets: u32) -> String {
        let answer = self
            .post(
                "/listings",
                Some(admin),
                json!({"kind": "movie", "title": title, "price": 12000, "tickets": tickets}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        answer.body["id"].as_str().unwrap().to_owned()
    }

    /// Registers a seated showing of `rows` × `per_row` seats at 15000 a
    /// seat (catalog assigns a screen); returns its id.
    pub async fn showing(&self, admin: &str, title: &str, rows: u32, per_row: u32) -> String {
        let answer = self
            .post(
                "/listings",
                Some(admin),
                json!({"kind": "movie", "title": title, "price": 15000,
                       "seating": {"rows": rows, "seatsPerRow": per_row}}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        assert!(
            answer.body["screen"]["id"].is_string(),
            "a screen is assigned: {answer:?}"
        );
        answer.body["id"].as_str().unwrap().to_owned()
    }

    /// Registers a musical with its own seat map of `rows` × `per_row`
    /// seats at 90000 a seat; returns its id.
    pub async fn musical(&self, admin: &str, title: &str, rows: u32, per_row: u32) -> String {
        let answer = self
            .post(
                "/listings",
                Some(admin),
                json!({"kind": "musical", "title": title, "price": 90000,
                       "seating": {"rows": rows, "seatsPerRow": per_row}}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        answer.body["id"].as_str().unwrap().to_owned()
    }

    /// Registers a bike (1000 points a rental); returns its id and number.
    pub async fn bike(&self, admin: &str, color: &str) -> (String, u64) {
        let answer = self
            .post(
                "/listings",
                Some(admin),
                json!({"kind": "bike", "color": color}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        let number = answer.body["number"].as_u64().expect("a bike has a number");
        (answer.body["id"].as_str().unwrap().to_owned(), number)
    }

    /// Buys points by card; answers the wallet's reply.
    pub async fn buy_points(&self, token: &str, amount: i64) -> Answer {
        self.post("/points/purchases", Some(token), json!({"amount": amount}))
            .await
    }

    /// The caller's points balance.
    pub async fn balance(&self, token: &str) -> u64 {
        let answer = self.get("/points", Some(token)).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        answer.body["balance"].as_u64().unwrap()
    }

    /// Rents a bike, paying with points (a bike's default).
    pub async fn rent(&self, token: &str, bike: &str) -> Answer {
        self.post("/reservations", Some(token), json!({"listingId": bike}))
            .await
    }

    /// Whether a bike is free to rent, from its listing.
    pub async fn bike_free(&self, bike: &str) -> bool {
        let answer = self.get(&format!("/listings/{bike}"), None).await;
        answer.body["capacity"]["available"]
            .as_bool()
            .unwrap_or_else(|| panic!("a bike says whether it is free: {answer:?}"))
    }

    pub async fn book_seats(&self, token: &str, listing: &str, seats: &[&str]) -> Answer {
        self.post(
            "/reservations",
            Some(token),
            json!({"listingId": listing, "seats": seats}),
        )
        .await
    }

    /// A seat's status on the showing's seat map ("" when there is none).
    pub async fn seat(&self, listing: &str, label: &str) -> String {
        let seats = self.get(&format!("/listings/{listing}/seats"), None).await;
        seats
            .body
            .as_array()
            .and_then(|seats| seats.iter().find(|s| s["label"] == label))
            .and_then(|s| s["status"].as_str())
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn book(&self, token: &str, listing: &str, quantity: u32) -> Answer {
        self.post(
            "/reservations",
            Some(token),
            json!({"listingId": listing, "quantity": quantity}),
        )
        .await
    }

    /// Books two tickets of `listing` under a client's W3C `traceparent`
    /// and waits until the booking is confirmed; its id.
    pub async fn book_traced(&self, token: &str, listing: &str, traceparent: &str) -> String {
        let booked = answer(
            self.http
                .post(format!("{}/reservations", self.url))
                .bearer_auth(token)
                .header("traceparent", traceparent)
                .json(&json!({"listingId": listing, "quantity": 2}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(booked.status, 202, "{:?}", booked.body);
        let reservation = booked.body["id"].as_str().unwrap().to_owned();
        assert_eq!(self.settled(token, &reservation).await, "confirmed");
        reservation
    }

    pub async fn available(&self, listing: &str) -> u64 {
        let answer = self.get(&format!("/listings/{listing}"), None).await;
        answer.body["capacity"]["available"].as_u64().unwrap()
    }

    pub async fn reservation_status(&self, token: &str, id: &str) -> String {
        let answer = self.get(&format!("/reservations/{id}"), Some(token)).await;
        answer.body["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the reservation has left `pending`; returns its status.
    pub async fn settled(&self, token: &str, id: &str) -> String {
        eventually(|| async {
            let status = self.reservation_status(token, id).await;
            (status != "pending").then_some(status)
        })
        .await
    }

    /// Every item of a paged list, following `?after=` page by page.
    pub async fn list(&self, path: &str, token: &str) -> Vec<Value> {
        const PAGE: usize = 1000;
        let joiner = if path.contains('?') { '&' } else { '?' };
        let mut items: Vec<Value> = Vec::new();
        loop {
            let cursor = match items.last() {
                None => String::new(),
                // The id of the last item: `id`, or `reservationId` on my page.
                Some(last) => {
                    let id = last.get("id").or_else(|| last.get("reservationId"));
                    format!("&after={}", id.and_then(Value::as_str).unwrap())
                }
            };
            let answer = self
                .get(&format!("{path}{joiner}limit={PAGE}{cursor}"), Some(token))
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
            let page = answer.body.as_array().cloned().unwrap_or_default();
            let full = page.len() == PAGE;
            items.extend(page);
            if !full {
                return items;
            }
        }
    }
}

pub async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        content_type,
        body,
    }
}

/// How long `eventually` waits; a deployment of separate processes on a
/// broker may take longer than one process (group rebalances).
static PATIENCE_SECS: AtomicU64 = AtomicU64::new(15);

/// Lets `eventually` wait up to `secs` in this test binary.
#[allow(dead_code)]
pub fn set_patience(secs: u64) {
    PATIENCE_SECS.store(secs, Ordering::Relaxed);
}

/// Polls `check` until it yields a value, for a bounded time (15 s unless
/// the binary set otherwise).
pub async fn eventually<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let patience = PATIENCE_SECS.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(patience);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "condition not reached within {patience} s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
