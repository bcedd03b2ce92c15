//! S1 and S4: a seated showing booked seat by seat, paid by card, earning
//! points, cancelled with a refund — and a seat sold at most once however
//! many customers race for it.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app, TestApp};

async fn wait_for_seat(app: &TestApp, listing: &str, seat: &str, status: &str) {
    eventually(|| async { (app.seat(listing, seat).await == status).then_some(()) }).await;
}

#[tokio::test]
async fn the_s1_walkthrough_books_a_seat_pays_earns_points_and_cancels_with_a_refund() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let customer = app.customer("ji-woo").await;
    let dune = app.showing(&admin, "Dune", 5, 8).await;
    assert_eq!(app.seat(&dune, "A-1").await, "available");

    let booked = app.book_seats(&customer, &dune, &["A-1"]).await;
    assert_eq!(booked.status, StatusCode::ACCEPTED, "{booked:?}");
    assert_eq!(booked.body["seats"], json!(["A-1"]));
    assert_eq!(booked.body["amount"], 15000);
    let id = booked.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(&customer, &id).await, "confirmed");
    wait_for_seat(&app, &dune, "A-1", "sold").await;

    // Paid, 10 % in points, told so; the booking looked up by its id.
    let lookup = eventually(|| async {
        let lookup = app
            .get(&format!("/mypage/reservations/{id}"), Some(&customer))
            .await;
        (lookup.body["payment"]["status"] == "captured" && lookup.body["points"]["earned"] == 1500)
            .then_some(lookup)
    })
    .await;
    assert_eq!(lookup.body["title"], "Dune");
    assert_eq!(lookup.body["seats"], json!(["A-1"]));
    assert!(lookup.body["screen"]["name"].is_string(), "{lookup:?}");
    assert_eq!(lookup.body["status"], "confirmed");
    assert_eq!(
        app.get("/points", Some(&customer)).await.body["balance"],
        1500
    );
    eventually(|| async {
        let notes = app.list("/notifications", &customer).await;
        notes
            .iter()
            .any(|n| n["reservationId"] == id.as_str() && n["kind"] == "reserved")
            .then_some(())
    })
    .await;

    // Cancel: refunded, the seat free again, the points withdrawn, told.
    let cancelled = app
        .post(
            &format!("/reservations/{id}/cancel"),
            Some(&customer),
            json!({}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::ACCEPTED, "{cancelled:?}");
    wait_for_seat(&app, &dune, "A-1", "available").await;
    let lookup = eventually(|| async {
        let lookup = app
            .get(&format!("/mypage/reservations/{id}"), Some(&customer))
            .await;
        (lookup.body["payment"]["status"] == "refunded"
            && lookup.body["points"]["withdrawn"] == 1500)
            .then_some(lookup)
    })
    .await;
    assert_eq!(lookup.body["status"], "cancelled");
    assert_eq!(app.get("/points", Some(&customer)).await.body["balance"], 0);
    let kinds = eventually(|| async {
        let notes = app.list("/notifications", &customer).await;
        let mut kinds: Vec<String> = notes
            .iter()
            .filter(|n| n["reservationId"] == id.as_str())
            .map(|n| n["kind"].as_str().unwrap().to_owned())
            .collect();
        kinds.sort();
        (kinds.len() == 3).then_some(kinds)
    })
    .await;
    assert_eq!(kinds, ["cancelled", "refunded", "reserved"]);
    // The freed seat sells again.
    let again = app.book_seats(&customer, &dune, &["A-1"]).await;
    let again = again.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(&customer, &again).await, "confirmed");
}

#[tokio::test]
async fn two_hundred_customers_racing_for_seat_a1_buy_it_once_and_nobody_else_is_charged() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let showing = app.showing(&admin, "Premiere", 3, 4).await;
    let mut customers = Vec::new();
    for n in 0..20 {
        customers.push(app.customer(&format!("racer{n}")).await);
    }

    let attempts = (0..200).map(|i| {
        let (app, customer, showing) = (&app, &customers[i % customers.len()], &showing);
        async move { (i % 20, app.book_seats(customer, showing, &["A-1"]).await) }
    });
    let answers = join_all(attempts).await;
    assert!(
        answers
            .iter()
            .all(|(_, a)| a.status == StatusCode::ACCEPTED),
        "every booking is taken, none fails: {:?}",
        answers
            .iter()
            .filter(|(_, a)| a.status != StatusCode::ACCEPTED)
            .map(|(_, a)| (a.status, a.detail().to_owned()))
            .take(3)
            .collect::<Vec<_>>()
    );
    let mut confirmed = 0;
    let mut rejected = 0;
    for (who, answer) in &answers {
        let id = answer.body["id"].as_str().unwrap();
        match app.settled(&customers[*who], id).await.as_str() {
            "confirmed" => confirmed += 1,
            "rejected" => {
                rejected += 1;
                let reservation = app
                    .get(&format!("/reservations/{id}"), Some(&customers[*who]))
                    .await;
                assert_eq!(reservation.body["reason"], "seat unavailable: A-1 is taken");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((confirmed, rejected), (1, 199));
    wait_for_seat(&app, &showing, "A-1", "sold").await;

    // Exactly one payment captured; every other authorisation voided.
    let payments = eventually(|| async {
        let payments = app.list("/payments", &admin).await;
        let settled = payments
            .iter()
            .all(|p| p.get("settling").is_none() && p["status"] != "authorised");
        (payments.len() == 200 && settled).then_some(payments)
    })
    .await;
    let count = |status: &str| payments.iter().filter(|p| p["status"] == status).count();
    assert_eq!((count("captured"), count("voided")), (1, 199));
}

#[tokio::test]
async fn overlapping_seat_bookings_are_never_both_confirmed() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let showing = app.showing(&admin, "Overlap", 4, 8).await;
    let left = app.customer("left").await;
    let right = app.customer("right").await;
    for row in ["A", "B", "C", "D"] {
        let (one, two, three) = (format!("{row}-1"), format!("{row}-2"), format!("{row}-3"));
        let (first, second) = ([one.as_str(), two.as_str()], [two.as_str(), three.as_str()]);
        let (a, b) = tokio::join!(
            app.book_seats(&left, &showing, &first),
            app.book_seats(&right, &showing, &second),
        );
        let a = app.settled(&left, a.body["id"].as_str().unwrap()).await;
        let b = app.settled(&right, b.body["id"].as_str().unwrap()).await;
        let outcomes = [a.as_str(), b.as_str()];
        assert!(
            outcomes.contains(&"confirmed") && outcomes.contains(&"rejected"),
            "row {row}: exactly one wins: {outcomes:?}"
        );
        // The loser holds nothing: its other seat is free.
        let free = if a == "confirmed" { three } else { one };
        wait_for_seat(&app, &showing, &free, "available").await;
    }
}

#[tokio::test]
async fn bad_seat_bookings_are_refused_by_name_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let customer = app.customer("careless").await;
    let seated = app.showing(&admin, "Seated", 2, 5).await;
    let quota = app.movie(&admin, "By Quota", 10).await;

    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"listingId": seated, "seats": ["A-1", "Z-9"]}),
            "no seat Z-9",
        ),
        (
            json!({"listingId": seated, "seats": ["A-1", "A-1"]}),
            "seat A-1 is named twice",
        ),
        (
            json!({"listingId": seated, "seats": ["A-1","A-2","A-3","A-4","A-5","B-1","B-2","B-3","B-4","B-5","A-1"]}),
            "at most 10 seats",
        ),
        (
            json!({"listingId": seated, "seats": ["row 1"]}),
            "not a seat label",
        ),
        (
            json!({"listingId": quota, "seats": ["A-1"]}),
            "seats cannot be chosen",
        ),
        (
            json!({"listingId": seated, "quantity": 2}),
            "name them in `seats`",
        ),
        (
            json!({"listingId": seated, "quantity": 3, "seats": ["A-1"]}),
            "disagrees",
        ),
    ];
    for (body, detail) in cases {
        let answer = app
            .post("/reservations", Some(&customer), body.clone())
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {answer:?}"
        );
        assert_eq!(answer.content_type, "application/problem+json");
        assert!(
            answer.detail().contains(detail),
            "{body}: {:?} should say {detail:?}",
            answer.detail()
        );
    }
    assert!(app.list("/reservations", &customer).await.is_empty());
    assert!(
        app.list("/payments", &customer).await.is_empty(),
        "nothing was charged"
    );
    assert_eq!(app.seat(&seated, "A-1").await, "available");
    assert_eq!(app.available(&quota).await, 10);
}
