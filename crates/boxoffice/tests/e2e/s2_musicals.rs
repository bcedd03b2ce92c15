//! S2: musicals run by an admin — registered, renamed, re-priced, their
//! seat maps changed and deleted — and a seat that two customers race for
//! sold once.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::scenarios::kinds_for;
use crate::helpers::{eventually, spawn_app, TestApp};

async fn patch(
    app: &TestApp,
    token: &str,
    listing: &str,
    body: Value,
) -> crate::common::gateway::Answer {
    app.call(
        "PATCH",
        &format!("/listings/{listing}"),
        Some(token),
        Some(body),
    )
    .await
}

async fn delete(app: &TestApp, token: &str, path: &str) -> crate::common::gateway::Answer {
    app.call("DELETE", path, Some(token), None).await
}

#[tokio::test]
async fn the_s2_walkthrough_runs_a_musical_and_sells_its_first_seat_once() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let customer = app.customer("musical-fan").await;

    // Only admins manage musicals.
    let refused = app
        .post(
            "/listings",
            Some(&customer),
            json!({"kind": "musical", "title": "Wicked", "price": 90000,
                   "seating": {"rows": 4, "seatsPerRow": 5}}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    let wicked = app.musical(&admin, "Wicked", 4, 5).await;
    let listing = app.get(&format!("/listings/{wicked}"), None).await;
    assert_eq!(listing.body["kind"], "musical");
    assert_eq!(listing.body["capacity"]["total"], 20);
    assert!(listing.body.get("screen").is_none(), "{listing:?}");
    assert_eq!(
        patch(&app, &customer, &wicked, json!({"title": "Mine"}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // Renamed and re-priced; browsing shows it.
    let renamed = patch(
        &app,
        &admin,
        &wicked,
        json!({"title": "Wicked (25th)", "price": 99000}),
    )
    .await;
    assert_eq!(renamed.status, StatusCode::OK, "{renamed:?}");
    assert_eq!(renamed.body["title"], "Wicked (25th)");
    assert_eq!(renamed.body["price"], 99000);
    let musicals = app.get("/listings?kind=musical", None).await;
    assert!(musicals
        .body
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["id"] == wicked.as_str()));

    // Two customers race for A-1: one confirmed, the other rejected with
    // "seat unavailable", told so, and charged nothing.
    let rival = app.customer("musical-rival").await;
    let bookings =
        join_all([&customer, &rival].map(|token| app.book_seats(token, &wicked, &["A-1"]))).await;
    let mut outcomes = Vec::new();
    for (token, booked) in [&customer, &rival].into_iter().zip(&bookings) {
        assert_eq!(booked.status, StatusCode::ACCEPTED, "{booked:?}");
        assert_eq!(booked.body["amount"], 99000, "the new price applies");
        let id = booked.body["id"].as_str().unwrap().to_owned();
        outcomes.push((token.clone(), id.clone(), app.settled(token, &id).await));
    }
    let winners: Vec<_> = outcomes
        .iter()
        .filter(|(_, _, s)| s == "confirmed")
        .collect();
    let losers: Vec<_> = outcomes
        .iter()
        .filter(|(_, _, s)| s == "rejected")
        .collect();
    assert_eq!((winners.len(), losers.len()), (1, 1), "{outcomes:?}");
    let (winner, won, _) = winners[0].clone();
    let (loser, lost, _) = losers[0].clone();
    let rejected = app
        .get(&format!("/reservations/{lost}"), Some(&loser))
        .await;
    assert!(
        rejected.body["reason"]
            .as_str()
            .unwrap()
            .starts_with("seat unavailable"),
        "{rejected:?}"
    );
    eventually(|| async {
        let notes = app.list("/notifications", &loser).await;
        (kinds_for(&notes, &lost) == ["rejected"]).then_some(())
    })
    .await;
    let charged = eventually(|| async {
        let payments = app.list("/payments", &loser).await;
        payments
            .iter()
            .all(|p| p["status"] == "voided")
            .then_some(payments)
    })
    .await;
    assert!(
        charged.iter().all(|p| p["status"] != "captured"),
        "{charged:?}"
    );

    // My page lists the musical under its new title; a rename follows.
    patch(
        &app,
        &admin,
        &wicked,
        json!({"title": "Wicked: the musical"}),
    )
    .await;
    eventually(|| async {
        let mine = app
            .get(&format!("/mypage/reservations/{won}"), Some(&winner))
            .await;
        (mine.body["title"] == "Wicked: the musical" && mine.body["status"] == "confirmed")
            .then_some(())
    })
    .await;

    // A seat-map change that would drop the sold seat is refused, naming it.
    let shrink = patch(
        &app,
        &admin,
        &wicked,
        json!({"seating": {"rows": 4, "seatsPerRow": 5}}),
    )
    .await;
    assert_eq!(
        shrink.status,
        StatusCode::OK,
        "the same map is fine: {shrink:?}"
    );
    let drop_a = app
        .call(
            "PATCH",
            &format!("/listings/{wicked}"),
            Some(&admin),
            Some(json!({"seating": {"rows": 1, "seatsPerRow": 0}})),
        )
        .await;
    assert!(drop_a.status.is_client_error(), "{drop_a:?}");
    let unknown = patch(&app, &admin, &wicked, json!({"colour": "red"})).await;
    assert!(unknown.status.is_client_error(), "{unknown:?}");
    assert!(unknown.detail().contains("colour"), "{unknown:?}");

    // Cancel frees the seat for the other customer.
    let cancelled = app
        .post(
            &format!("/reservations/{won}/cancel"),
            Some(&winner),
            Value::Null,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::ACCEPTED);
    eventually(|| async { (app.seat(&wicked, "A-1").await == "available").then_some(()) }).await;
    let second_try = app.book_seats(&loser, &wicked, &["A-1"]).await;
    let second_try = second_try.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(&loser, &second_try).await, "confirmed");
}

#[tokio::test]
async fn a_seat_map_change_that_would_drop_a_booked_seat_is_refused_naming_it() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let customer = app.customer("back-row").await;
    let show = app.musical(&admin, "Les Mis", 3, 4).await;
    let booked = app.book_seats(&customer, &show, &["C-4"]).await;
    let id = booked.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(&customer, &id).await, "confirmed");

    let smaller = patch(
        &app,
        &admin,
        &show,
        json!({"seating": {"rows": 2, "seatsPerRow": 4}}),
    )
    .await;
    assert_eq!(smaller.status, StatusCode::CONFLICT, "{smaller:?}");
    assert!(smaller.detail().contains("C-4"), "{smaller:?}");
    assert_eq!(
        app.get(&format!("/listings/{show}"), None).await.body["capacity"]["total"],
        12
    );

    // Growing it is fine, and the new seats can be booked.
    let bigger = patch(
        &app,
        &admin,
        &show,
        json!({"seating": {"rows": 4, "seatsPerRow": 4}}),
    )
    .await;
    assert_eq!(bigger.status, StatusCode::OK, "{bigger:?}");
    assert_eq!(bigger.body["capacity"]["total"], 16);
    let new_seat = eventually(|| async {
        let booked = app.book_seats(&customer, &show, &["D-1"]).await;
        (booked.status == StatusCode::ACCEPTED).then_some(booked)
    })
    .await;
    let new_seat = new_seat.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(&customer, &new_seat).await, "confirmed");
}

#[tokio::test]
async fn deleting_a_musical_with_bookings_needs_cancel_reservations_which_refunds_and_tells_each() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let show = app.musical(&admin, "Cats", 2, 5).await;
    let mut booked = Vec::new();
    for (n, seat) in ["A-1", "A-2", "B-3"].into_iter().enumerate() {
        let token = app.customer(&format!("cats-fan-{n}")).await;
        let answer = app.book_seats(&token, &show, &[seat]).await;
        let id = answer.body["id"].as_str().unwrap().to_owned();
        assert_eq!(app.settled(&token, &id).await, "confirmed");
        // Captured, so that the cancel below refunds rather than voids.
        eventually(|| async {
            let payments = app.list("/payments", &token).await;
            payments
                .iter()
                .any(|p| p["status"] == "captured")
                .then_some(())
        })
        .await;
        booked.push((token, id));
    }

    let customer = &booked[0].0;
    assert_eq!(
        delete(&app, customer, &format!("/listings/{show}"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let refused = delete(&app, &admin, &format!("/listings/{show}")).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{refused:?}");
    assert!(
        refused.detail().contains("cancelReservations"),
        "{refused:?}"
    );
    assert_eq!(
        app.get(&format!("/listings/{show}"), None).await.status,
        StatusCode::OK
    );

    let deleted = delete(
        &app,
        &admin,
        &format!("/listings/{show}?cancelReservations=true"),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
    assert_eq!(
        app.get(&format!("/listings/{show}"), None).await.status,
        StatusCode::NOT_FOUND
    );
    let musicals = app.get("/listings?kind=musical", None).await;
    assert!(!musicals
        .body
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["id"] == show.as_str()));

    for (token, id) in &booked {
        eventually(|| async {
            (app.reservation_status(token, id).await == "cancelled").then_some(())
        })
        .await;
        eventually(|| async {
            let notes = app.list("/notifications", token).await;
            let kinds = kinds_for(&notes, id);
            (kinds.contains(&"cancelled".to_owned()) && kinds.contains(&"refunded".to_owned()))
                .then_some(())
        })
        .await;
        let payments = app.list("/payments", token).await;
        let refunded = payments
            .iter()
            .filter(|p| p["status"] == "refunded")
            .count();
        assert_eq!(refunded, 1, "refunded once: {payments:?}");
    }
    // No new bookings of it.
    let late = app.book_seats(&booked[1].0, &show, &["A-5"]).await;
    assert!(late.status.is_client_error(), "{late:?}");
    assert_eq!(
        delete(&app, &admin, &format!("/listings/{show}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}
