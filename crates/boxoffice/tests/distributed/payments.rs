//! S1 on Kafka and PostgreSQL: the seat walkthrough with payment and
//! points, a payment service killed while customers cancel, and a booking
//! whose catalog never answers expired at its deadline.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::common::gateway::{eventually, set_patience, Gateway};
use crate::deployment::{Deployment, Servers};

async fn deploy(test: &str, env: &[(&str, &str)]) -> Option<Deployment> {
    set_patience(60);
    let servers = Servers::from_env(test)?;
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Some(Deployment::start_with(servers, env).await)
}

async fn payment_status(gateway: &Gateway, token: &str, reservation: &str) -> Option<String> {
    gateway
        .list("/payments", token)
        .await
        .into_iter()
        .find(|p| p["reservationId"] == reservation && p.get("settling").is_none())
        .and_then(|p| p["status"].as_str().map(str::to_owned))
}

async fn wait_for_payment(gateway: &Gateway, token: &str, reservation: &str, status: &str) {
    eventually(|| async {
        (payment_status(gateway, token, reservation).await.as_deref() == Some(status)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_seat_walkthrough_with_payment_and_points_runs_on_kafka_and_postgres() {
    let Some(deployment) = deploy("the S1 walkthrough on Kafka and PostgreSQL", &[]).await else {
        return;
    };
    let gateway = deployment.gateway.clone();
    let admin = gateway.admin_token().await;
    let customer = gateway.customer("seat-goer").await;
    let registered = gateway
        .post(
            "/listings",
            Some(&admin),
            json!({"title": "Dune", "price": 15000, "seating": {"rows": 5, "seatsPerRow": 8}}),
        )
        .await;
    assert_eq!(registered.status, 201, "{registered:?}");
    assert!(registered.body["screen"]["id"].is_string());
    let dune = registered.body["id"].as_str().unwrap().to_owned();

    let booked = gateway
        .post(
            "/reservations",
            Some(&customer),
            json!({"listingId": dune, "seats": ["A-1"]}),
        )
        .await;
    assert_eq!(booked.status, 202, "{booked:?}");
    let id = booked.body["id"].as_str().unwrap().to_owned();
    assert_eq!(gateway.settled(&customer, &id).await, "confirmed");
    eventually(|| async { (gateway.seat(&dune, "A-1").await == "sold").then_some(()) }).await;
    wait_for_payment(&gateway, &customer, &id, "captured").await;
    eventually(|| async {
        (gateway.get("/points", Some(&customer)).await.body["balance"] == 1500).then_some(())
    })
    .await;
    let lookup = eventually(|| async {
        let lookup = gateway
            .get(&format!("/mypage/reservations/{id}"), Some(&customer))
            .await;
        (lookup.body["payment"]["status"] == "captured").then_some(lookup)
    })
    .await;
    assert_eq!(lookup.body["seats"], json!(["A-1"]));

    let cancelled = gateway
        .post(
            &format!("/reservations/{id}/cancel"),
            Some(&customer),
            Value::Null,
        )
        .await;
    assert_eq!(cancelled.status, 202, "{cancelled:?}");
    wait_for_payment(&gateway, &customer, &id, "refunded").await;
    eventually(|| async { (gateway.seat(&dune, "A-1").await == "available").then_some(()) }).await;
    eventually(|| async {
        (gateway.get("/points", Some(&customer)).await.body["balance"] == 0).then_some(())
    })
    .await;
    deployment.tear_down().await;
}

#[tokio::test]
async fn payment_killed_hard_during_cancels_refunds_every_booking_once_after_its_restart() {
    let Some(mut deployment) = deploy("payment kill -9 during cancels", &[]).await else {
        return;
    };
    let gateway = deployment.gateway.clone();
    let admin = gateway.admin_token().await;
    let customer = gateway.customer("refund-me").await;
    let movie = gateway.movie(&admin, "Interrupted", 100).await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        let booked = gateway.book(&customer, &movie, 1).await;
        assert_eq!(booked.status, 202, "{booked:?}");
        ids.push(booked.body["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        assert_eq!(gateway.settled(&customer, id).await, "confirmed");
        wait_for_payment(&gateway, &customer, id, "captured").await;
    }

    deployment.kill("payment").await;
    // Cancels do not need payment: each is accepted at once.
    for id in &ids {
        let cancelled = gateway
            .post(
                &format!("/reservations/{id}/cancel"),
                Some(&customer),
                Value::Null,
            )
            .await;
        assert_eq!(cancelled.status, 202, "{cancelled:?}");
        assert_eq!(cancelled.body["status"], "cancelled");
    }
    eventually(|| async { (gateway.available(&movie).await == 100).then_some(()) }).await;

    deployment.spawn("payment", "payment").await;
    deployment.wait_ready("payment").await;
    for id in &ids {
        wait_for_payment(&gateway, &customer, id, "refunded").await;
    }
    // Nothing twice: one payment and one refund message per booking.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(gateway.list("/payments", &customer).await.len(), 10);
    let refunds = eventually(|| async {
        let notes = gateway.list("/notifications", &customer).await;
        let refunds = notes.iter().filter(|n| n["kind"] == "refunded").count();
        (refunds >= 10).then_some(refunds)
    })
    .await;
    assert_eq!(refunds, 10);
    assert_eq!(
        deployment
            .count("payment", "payments WHERE status = 'refunded'")
            .await,
        10
    );
    deployment.tear_down().await;
}

#[tokio::test]
async fn a_booking_catalog_never_answers_is_expired_at_its_deadline_and_compensated() {
    let env = [("BOXOFFICE_RESERVATION__DEADLINE_SECS", "3")];
    let Some(mut deployment) = deploy("saga deadline with catalog stopped", &env).await else {
        return;
    };
    let gateway = deployment.gateway.clone();
    let admin = gateway.admin_token().await;
    let customer = gateway.customer("waiting").await;
    let movie = gateway.movie(&admin, "Never Answered", 100).await;
    // Reservation has heard of the listing before catalog stops.
    let warm = gateway.book(&customer, &movie, 1).await;
    let warm = warm.body["id"].as_str().unwrap().to_owned();
    assert_eq!(gateway.settled(&customer, &warm).await, "confirmed");

    deployment.stop("catalog").await;
    // Bookings are accepted while catalog is down...
    let booked = gateway.book(&customer, &movie, 2).await;
    assert_eq!(booked.status, 202, "{booked:?}");
    let id = booked.body["id"].as_str().unwrap().to_owned();
    // ...and one that nobody answers is expired at its deadline: rejected
    // with the reason, its authorisation voided, the customer told.
    assert_eq!(gateway.settled(&customer, &id).await, "rejected");
    let reservation = gateway
        .get(&format!("/reservations/{id}"), Some(&customer))
        .await;
    assert!(
        reservation.body["reason"]
            .as_str()
            .unwrap()
            .contains("not confirmed within 3 seconds"),
        "{reservation:?}"
    );
    wait_for_payment(&gateway, &customer, &id, "voided").await;
    eventually(|| async {
        let notes = gateway.list("/notifications", &customer).await;
        notes
            .iter()
            .any(|n| n["reservationId"] == id.as_str() && n["kind"] == "expired")
            .then_some(())
    })
    .await;

    // Catalog comes back, holds what it missed and releases it again: no
    // ticket stays stuck.
    deployment.spawn("catalog", "catalog").await;
    deployment.wait_ready("catalog").await;
    eventually(|| async {
        (deployment
            .count("catalog", "holds WHERE status = 'released'")
            .await
            == 1)
            .then_some(())
    })
    .await;
    assert_eq!(gateway.available(&movie).await, 99);
    deployment.tear_down().await;
}

#[tokio::test]
async fn bookings_taken_while_catalog_is_down_are_confirmed_when_it_is_back() {
    let Some(mut deployment) = deploy("bookings while catalog is down", &[]).await else {
        return;
    };
    let gateway = deployment.gateway.clone();
    let admin = gateway.admin_token().await;
    let customer = gateway.customer("undeterred").await;
    let showing = gateway.showing(&admin, "Offline", 2, 4).await;
    // Reservation learns the showing (and its seats) from catalog's event.
    eventually(|| async {
        let probe = gateway
            .post(
                "/reservations",
                Some(&customer),
                json!({"listingId": showing, "seats": ["B-4"]}),
            )
            .await;
        (probe.status == 202).then_some(())
    })
    .await;

    deployment.kill("catalog").await;
    let mut ids = Vec::new();
    for seat in ["A-1", "A-2", "A-3"] {
        let booked = gateway
            .post(
                "/reservations",
                Some(&customer),
                json!({"listingId": showing, "seats": [seat]}),
            )
            .await;
        assert_eq!(
            booked.status, 202,
            "accepted while catalog is down: {booked:?}"
        );
        ids.push(booked.body["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        assert_eq!(gateway.reservation_status(&customer, id).await, "pending");
    }
    deployment.spawn("catalog", "catalog").await;
    deployment.wait_ready("catalog").await;
    for id in &ids {
        assert_eq!(gateway.settled(&customer, id).await, "confirmed");
        wait_for_payment(&gateway, &customer, id, "captured").await;
    }
    for label in ["A-1", "A-2", "A-3"] {
        eventually(|| async { (gateway.seat(&showing, label).await == "sold").then_some(()) })
            .await;
    }
    deployment.tear_down().await;
}

/// The payment breaker's state in reservation's own metrics (0 closed,
/// 1 half-open, 2 open).
async fn breaker_state(deployment: &Deployment) -> Option<f64> {
    let url = format!("{}/metrics", deployment.url_of("reservation"));
    let text = deployment
        .gateway
        .http
        .get(url)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|line| {
            line.starts_with(
                "boxoffice_circuit_breaker_state{dependency=\"payment\",caller=\"reservation\"}",
            )
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn the_breaker_state_is_a_gauge_that_opens_with_payment_down_and_closes_when_it_is_back() {
    let env = [
        ("BOXOFFICE_RESERVATION__PAYMENT__FAILURES_TO_OPEN", "3"),
        ("BOXOFFICE_RESERVATION__PAYMENT__OPEN_FOR_MS", "1000"),
    ];
    let Some(deployment) = deploy("the payment breaker's gauge", &env).await else {
        return;
    };
    let gateway = deployment.gateway.clone();
    let admin = gateway.admin_token().await;
    let customer = gateway.customer("gauge-watcher").await;
    let movie = gateway.movie(&admin, "Gauge", 100).await;
    assert_eq!(breaker_state(&deployment).await, Some(0.0));

    let down = json!({"latencyMs": 0, "failureRate": 0.0, "down": true});
    let steered = gateway
        .call("PUT", "/admin/payment-provider", Some(&admin), Some(down))
        .await;
    assert_eq!(steered.status, 200, "{steered:?}");
    for _ in 0..3 {
        assert_eq!(gateway.book(&customer, &movie, 1).await.status, 503);
    }
    assert_eq!(breaker_state(&deployment).await, Some(2.0));
    let fallback = gateway.book(&customer, &movie, 1).await;
    assert_eq!(fallback.detail(), "payment is unavailable, try again later");

    let up = json!({"latencyMs": 0, "failureRate": 0.0, "down": false});
    gateway
        .call("PUT", "/admin/payment-provider", Some(&admin), Some(up))
        .await;
    eventually(|| async { (gateway.book(&customer, &movie, 1).await.status == 202).then_some(()) })
        .await;
    assert_eq!(breaker_state(&deployment).await, Some(0.0));
    deployment.tear_down().await;
}
