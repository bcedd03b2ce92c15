//! Card payments through the gateway: paid before booked, captured on
//! confirmation, refunded on cancel, declined or unavailable with nothing
//! booked, behind a circuit breaker that opens and closes by itself.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app, spawn_app_with, TestApp};

/// The payment of `reservation`, as its owner (or an admin) sees it.
async fn payment_of(app: &TestApp, token: &str, reservation: &str) -> Option<Value> {
    app.list("/payments", token)
        .await
        .into_iter()
        .find(|p| p["reservationId"] == reservation)
}

async fn payment_status(app: &TestApp, token: &str, reservation: &str) -> Option<String> {
    payment_of(app, token, reservation)
        .await
        .filter(|p| p.get("settling").is_none())
        .and_then(|p| p["status"].as_str().map(str::to_owned))
}

async fn wait_for_payment(app: &TestApp, token: &str, reservation: &str, status: &str) {
    eventually(|| async {
        (payment_status(app, token, reservation).await.as_deref() == Some(status)).then_some(())
    })
    .await;
}

async fn set_provider(app: &TestApp, admin: &str, settings: Value) {
    let answer = app
        .call(
            "PUT",
            "/admin/payment-provider",
            Some(admin),
            Some(settings),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}

fn healthy() -> Value {
    json!({"latencyMs": 0, "failureRate": 0.0, "down": false, "declineAbove": null})
}

/// The breaker's state as the platform's metrics show it (0 closed, 1 half-open, 2 open).
async fn breaker_state(app: &TestApp) -> Option<f64> {
    let metrics = app.get("/metrics", None).await;
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    text.lines()
        .find(|line| {
            line.starts_with("boxoffice_circuit_breaker_state")
                && line.contains("dependency=\"payment\"")
                && line.contains("caller=\"reservation\"")
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Where `caller`'s breaker in front of payment stands, as admins see it
/// (`GET /admin/circuit-breakers`, gathered by the gateway).
async fn breaker_of(app: &TestApp, admin: &str, caller: &str) -> String {
    let answer = app.get("/admin/circuit-breakers", Some(admin)).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let breaker = answer
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["caller"] == caller && b["dependency"] == "payment")
        .unwrap_or_else(|| panic!("{caller} has a breaker in front of payment: {answer:?}"))
        .clone();
    assert_eq!(
        breaker["service"], caller,
        "tagged with the service keeping it"
    );
    breaker["state"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_booking_is_paid_captured_when_confirmed_and_refunded_with_its_points_when_cancelled() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let movie = app.movie(&admin, "LALALand", 100).await;
    let customer = app.customer("mia").await;

    let booked = app.book(&customer, &movie, 2).await;
    assert_eq!(booked.status, StatusCode::ACCEPTED, "{booked:?}");
    let id = booked.body["id"].as_str().unwrap().to_owned();
    assert!(
        booked.body["deadline"].is_string(),
        "a pending booking shows its deadline"
    );
    assert_eq!(app.settled(&customer, &id).await, "confirmed");
    wait_for_payment(&app, &customer, &id, "captured").await;
    let payment = payment_of(&app, &customer, &id).await.unwrap();
    assert_eq!(payment["amount"], 24_000);

    // 10 % of a captured 24000 is 2400 points.
    let points = eventually(|| async {
        let points = app.get("/points", Some(&customer)).await;
        (points.body["balance"] == 2_400).then_some(points)
    })
    .await;
    assert_eq!(points.body["entries"][0]["kind"], "earned");

    let cancelled = app
        .post(
            &format!("/reservations/{id}/cancel"),
            Some(&customer),
            json!({}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::ACCEPTED, "{cancelled:?}");
    wait_for_payment(&app, &customer, &id, "refunded").await;
    eventually(|| async {
        let points = app.get("/points", Some(&customer)).await;
        (points.body["balance"] == 0).then_some(())
    })
    .await;
    eventually(|| async { (app.available(&movie).await == 100).then_some(()) }).await;
    let kinds = eventually(|| async {
        let notes = app.list("/notifications", &customer).await;
        let kinds: Vec<String> = notes
            .iter()
            .map(|n| n["kind"].as_str().unwrap_or_default().to_owned())
            .collect();
        (kinds.contains(&"refunded".to_owned()) && kinds.contains(&"cancelled".to_owned()))
            .then_some(kinds)
    })
    .await;
    assert_eq!(kinds.iter().filter(|k| *k == "refunded").count(), 1);

    // The booking by id, from the read model: payment and points follow it.
    let lookup = eventually(|| async {
        let lookup = app
            .get(&format!("/mypage/reservations/{id}"), Some(&customer))
            .await;
        (lookup.body["payment"]["status"] == "refunded").then_some(lookup)
    })
    .await;
    assert_eq!(lookup.body["title"], "LALALand");
    assert_eq!(lookup.body["status"], "cancelled");
    let history: Vec<&str> = lookup.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["pending", "confirmed", "cancelled"]);
    // Someone else cannot look it up.
    let other = app.customer("sebastian").await;
    let theirs = app
        .get(&format!("/mypage/reservations/{id}"), Some(&other))
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_declined_card_books_nothing_and_says_why() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let movie = app.movie(&admin, "Big Spender", 100).await;
    let customer = app.customer("spender").await;
    set_provider(
        &app,
        &admin,
        json!({"latencyMs": 0, "failureRate": 0.0, "down": false, "declineAbove": 20000}),
    )
    .await;

    let declined = app.book(&customer, &movie, 2).await;
    assert_eq!(
        declined.status,
        StatusCode::PAYMENT_REQUIRED,
        "{declined:?}"
    );
    assert!(
        declined.detail().contains("over its limit of 20000"),
        "{declined:?}"
    );
    assert_eq!(declined.content_type, "application/problem+json");
    assert!(app.list("/reservations", &customer).await.is_empty());
    assert_eq!(app.available(&movie).await, 100);
    let payments = app.list("/payments", &customer).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["status"], "declined");

    // Under the limit the same card goes through.
    let paid = app.book(&customer, &movie, 1).await;
    assert_eq!(paid.status, StatusCode::ACCEPTED, "{paid:?}");
}

#[tokio::test]
async fn payment_down_opens_the_breaker_which_answers_at_once_and_closes_when_payment_recovers() {
    let app = spawn_app_with(|config| {
        config.reservation.payment.timeout_ms = 400;
        config.reservation.payment.failures_to_open = 3;
        config.reservation.payment.open_for_ms = 1_500;
    })
    .await;
    let admin = app.admin_token().await;
    let movie = app.movie(&admin, "Outage", 100).await;
    let customer = app.customer("patient").await;
    assert_eq!(breaker_of(&app, &admin, "reservation").await, "closed");
    assert_eq!(breaker_of(&app, &admin, "wallet").await, "closed");
    let refused = app.get("/admin/circuit-breakers", Some(&customer)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "admins only");
    set_provider(
        &app,
        &admin,
        json!({"latencyMs": 0, "failureRate": 0.0, "down": true}),
    )
    .await;

    // Payment answers "unavailable": each booking is refused, nothing stored.
    for _ in 0..3 {
        let refused = app.book(&customer, &movie, 1).await;
        assert_eq!(
            refused.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{refused:?}"
        );
        assert!(refused
            .detail()
            .starts_with("payment is unavailable, try again later"));
    }
    // Now the breaker is open: the fallback answers without calling
    // payment (no cause in the detail), with Retry-After. (Its state is a
    // gauge; other platforms in this test binary share the process's
    // metrics, so the value is checked where services run alone.)
    assert!(
        breaker_state(&app).await.is_some(),
        "the breaker's state is exported"
    );
    assert_eq!(breaker_of(&app, &admin, "reservation").await, "open");
    assert_eq!(
        breaker_of(&app, &admin, "wallet").await,
        "closed",
        "each caller has its own"
    );
    let started = Instant::now();
    let response = app
        .http
        .post(format!("{}/reservations", app.url))
        .bearer_auth(&customer)
        .json(&json!({"listingId": movie, "quantity": 1}))
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "2");
    let fallback = crate::helpers::answer(response).await;
    assert_eq!(fallback.detail(), "payment is unavailable, try again later");
    assert!(
        elapsed < Duration::from_millis(400),
        "the fallback did not wait for payment: {elapsed:?}"
    );
    assert!(app.list("/reservations", &customer).await.is_empty());
    assert_eq!(app.available(&movie).await, 100);

    // Payment recovers; after the open period the breaker lets a call
    // through and closes on its success.
    set_provider(&app, &admin, healthy()).await;
    let booked = eventually(|| async {
        let answer = app.book(&customer, &movie, 1).await;
        (answer.status == StatusCode::ACCEPTED).then_some(answer)
    })
    .await;
    let id = booked.body["id"].as_str().unwrap();
    assert_eq!(app.settled(&customer, id).await, "confirmed");
    assert_eq!(breaker_of(&app, &admin, "reservation").await, "closed");
}

#[tokio::test]
async fn a_payment_answering_after_the_timeout_leaves_no_charge_behind() {
    let app = spawn_app_with(|config| {
        config.reservation.payment.timeout_ms = 300;
    })
    .await;
    let admin = app.admin_token().await;
    let movie = app.movie(&admin, "Slow Lane", 100).await;
    let customer = app.customer("slowpoke").await;
    set_provider(
        &app,
        &admin,
        json!({"latencyMs": 1000, "failureRate": 0.0, "down": false}),
    )
    .await;

    let refused = app.book(&customer, &movie, 1).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{refused:?}"
    );
    assert!(
        refused.detail().contains("no answer within 300 ms"),
        "{refused:?}"
    );
    // The provider authorised it a little later; the booking that gave up
    // voids it, so the customer is not charged.
    let payments = eventually(|| async {
        let payments = app.list("/payments", &customer).await;
        (payments.len() == 1
            && payments[0]["status"] == "voided"
            && payments[0].get("settling").is_none())
        .then_some(payments)
    })
    .await;
    assert_eq!(payments.len(), 1);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let payments = app.list("/payments", &customer).await;
    assert!(
        payments.iter().all(|p| p["status"] == "voided"),
        "nothing authorised or captured is left: {payments:?}"
    );
    assert!(app.list("/reservations", &customer).await.is_empty());
}

#[tokio::test]
async fn a_cancel_while_payment_is_down_is_accepted_and_refunded_once_payment_is_back() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let movie = app.movie(&admin, "Rainy Day", 10).await;
    let customer = app.customer("changed-mind").await;
    let booked = app.book(&customer, &movie, 3).await;
    let id = booked.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(&customer, &id).await, "confirmed");
    wait_for_payment(&app, &customer, &id, "captured").await;

    set_provider(
        &app,
        &admin,
        json!({"latencyMs": 0, "failureRate": 0.0, "down": true}),
    )
    .await;
    let cancelled = app
        .post(
            &format!("/reservations/{id}/cancel"),
            Some(&customer),
            json!({}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::ACCEPTED, "{cancelled:?}");
    assert_eq!(app.reservation_status(&customer, &id).await, "cancelled");
    // The tickets go back at once; the refund waits for the provider.
    eventually(|| async { (app.available(&movie).await == 10).then_some(()) }).await;
    let waiting = eventually(|| async {
        payment_of(&app, &customer, &id)
            .await
            .filter(|p| p["settling"] == "refund")
    })
    .await;
    assert_eq!(waiting["status"], "captured");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        payment_of(&app, &customer, &id).await.unwrap()["status"],
        "captured"
    );

    set_provider(&app, &admin, healthy()).await;
    wait_for_payment(&app, &customer, &id, "refunded").await;
    let refunds = eventually(|| async {
        let notes = app.list("/notifications", &customer).await;
        let refunds = notes.iter().filter(|n| n["kind"] == "refunded").count();
        (refunds > 0).then_some(refunds)
    })
    .await;
    assert_eq!(refunds, 1);
    assert_eq!(app.list("/payments", &customer).await.len(), 1);
}

#[tokio::test]
async fn without_the_wallet_bookings_are_paid_and_nothing_earns_points() {
    let app = spawn_app_with(|config| config.wallet.enabled = false).await;
    let admin = app.admin_token().await;
    let movie = app.movie(&admin, "No Points", 10).await;
    let customer = app.customer("plain").await;
    let booked = app.book(&customer, &movie, 1).await;
    let id = booked.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(&customer, &id).await, "confirmed");
    wait_for_payment(&app, &customer, &id, "captured").await;
    let points = app.get("/points", Some(&customer)).await;
    assert_eq!(points.status, StatusCode::NOT_FOUND, "{points:?}");
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status, StatusCode::OK, "{ready:?}");
}

#[tokio::test]
async fn provider_settings_are_for_admins_and_checked() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let customer = app.customer("curious").await;
    let forbidden = app.get("/admin/payment-provider", Some(&customer)).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    let bad = app
        .call(
            "PUT",
            "/admin/payment-provider",
            Some(&admin),
            Some(json!({"latencyMs": 0, "failureRate": 2.0, "down": false})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
    assert!(bad.detail().contains("failureRate"));
    let current = app.get("/admin/payment-provider", Some(&admin)).await;
    assert_eq!(
        current.body["failureRate"], 0.0,
        "a refused change changes nothing"
    );
    // Internal routes are not reachable through the gateway.
    let internal = app
        .post("/internal/authorisations", Some(&customer), json!({}))
        .await;
    assert_eq!(internal.status, StatusCode::NOT_FOUND, "{internal:?}");
}
