//! S3: public bikes rented with points bought by card — the walkthrough,
//! and the two races that must never go wrong: one bike rented twice at
//! once, and one wallet overdrawn by rentals at once.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::scenarios::bike_rental_walkthrough;
use crate::helpers::{eventually, spawn_app, spawn_app_with};

#[tokio::test]
async fn the_s3_walkthrough_buys_points_rents_cancels_and_returns_a_bike() {
    let app = spawn_app().await;
    bike_rental_walkthrough(&app).await;
}

#[tokio::test]
async fn fifty_riders_racing_for_one_bike_rent_it_once_and_the_others_keep_their_points() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (bike, _) = app.bike(&admin, "yellow").await;
    let mut riders = Vec::new();
    for n in 0..50 {
        let token = app.customer(&format!("racer-{n}")).await;
        assert_eq!(
            app.buy_points(&token, 1000).await.status,
            StatusCode::CREATED
        );
        riders.push(token);
    }
    let rentals = join_all(riders.iter().map(|token| app.rent(token, &bike))).await;
    let mut confirmed = 0;
    for (token, rental) in riders.iter().zip(&rentals) {
        assert_eq!(rental.status, StatusCode::ACCEPTED, "{rental:?}");
        let id = rental.body["id"].as_str().unwrap();
        match app.settled(token, id).await.as_str() {
            "confirmed" => confirmed += 1,
            "rejected" => {
                // Its points come back: nothing stays taken for a bike not had.
                eventually(|| async { (app.balance(token).await == 1000).then_some(()) }).await;
            }
            other => panic!("a rental ended {other}"),
        }
    }
    assert_eq!(confirmed, 1, "one bike, one rental");
    assert!(!app.bike_free(&bike).await);
}

#[tokio::test]
async fn twenty_rentals_at_once_on_five_thousand_points_take_exactly_five_and_never_overdraw() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let mut bikes = Vec::new();
    for _ in 0..20 {
        bikes.push(app.bike(&admin, "blue").await.0);
    }
    let rider = app.customer("busy-rider").await;
    assert_eq!(app.buy_points(&rider, 5000).await.body["balance"], 5000);
    let rentals = join_all(bikes.iter().map(|bike| app.rent(&rider, bike))).await;
    let mut statuses = Vec::new();
    for rental in &rentals {
        assert_eq!(rental.status, StatusCode::ACCEPTED, "{rental:?}");
        let id = rental.body["id"].as_str().unwrap();
        statuses.push(app.settled(&rider, id).await);
    }
    let confirmed = statuses.iter().filter(|s| *s == "confirmed").count();
    assert_eq!(confirmed, 5, "{statuses:?}");
    assert_eq!(app.balance(&rider).await, 0);
    let points = app.get("/points", Some(&rider)).await;
    let spent = points.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "spent")
        .count();
    assert_eq!(spent, 5, "{points:?}");
    // The fifteen refused left their bikes free.
    eventually(|| async {
        let mut free = 0;
        for bike in &bikes {
            free += usize::from(app.bike_free(bike).await);
        }
        (free == 15).then_some(())
    })
    .await;
}

#[tokio::test]
async fn bad_points_and_rental_requests_are_refused_naming_the_problem_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let rider = app.customer("careless-rider").await;
    for amount in [json!(0), json!(-3000), json!("lots"), json!(1.5)] {
        let answer = app
            .post("/points/purchases", Some(&rider), json!({"amount": amount}))
            .await;
        assert!(answer.status.is_client_error(), "{amount}: {answer:?}");
        assert!(answer.detail().contains("amount"), "{amount}: {answer:?}");
    }
    assert_eq!(app.balance(&rider).await, 0);

    // A quota ticket is not returned.
    let movie = app.movie(&admin, "LALALand", 10).await;
    let ticket = app.book(&rider, &movie, 1).await;
    let ticket = ticket.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(&rider, &ticket).await, "confirmed");
    let answer = app
        .post(
            &format!("/reservations/{ticket}/return"),
            Some(&rider),
            Value::Null,
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{answer:?}"
    );
    assert!(answer.detail().contains("only bike rentals"), "{answer:?}");
    assert_eq!(app.reservation_status(&rider, &ticket).await, "confirmed");

    // A bike is rented one at a time, and a bike has no colour-less twin.
    let (bike, _) = app.bike(&admin, "white").await;
    let two = app
        .post(
            "/reservations",
            Some(&rider),
            json!({"listingId": bike, "quantity": 2}),
        )
        .await;
    assert_eq!(two.status, StatusCode::UNPROCESSABLE_ENTITY, "{two:?}");
    let colourless = app
        .post("/listings", Some(&admin), json!({"kind": "bike"}))
        .await;
    assert_eq!(
        colourless.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{colourless:?}"
    );
    assert!(colourless.detail().contains("color"), "{colourless:?}");

    // Points without any (the ticket above earned some: a newcomer has
    // none): rejected with the reason, nothing taken.
    let newcomer = app.customer("newcomer").await;
    let rental = app.rent(&newcomer, &bike).await;
    let rental = rental.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(&newcomer, &rental).await, "rejected");
    let why = app
        .get(&format!("/reservations/{rental}"), Some(&newcomer))
        .await;
    assert!(
        why.body["reason"].as_str().unwrap().contains("buy points"),
        "{why:?}"
    );
    // The hold is let go by the rejection's event, a moment after it.
    eventually(|| async { app.bike_free(&bike).await.then_some(()) }).await;
}

#[tokio::test]
async fn where_no_wallet_is_deployed_points_are_refused_up_front() {
    let app = spawn_app_with(|config| config.wallet.enabled = false).await;
    let admin = app.admin_token().await;
    let rider = app.customer("walletless").await;
    let (bike, _) = app.bike(&admin, "black").await;
    let answer = app.rent(&rider, &bike).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{answer:?}"
    );
    assert!(
        answer.detail().contains("points are not accepted"),
        "{answer:?}"
    );
    // By card it is fine.
    let by_card = app
        .post(
            "/reservations",
            Some(&rider),
            json!({"listingId": bike, "paymentMethod": "card"}),
        )
        .await;
    assert_eq!(by_card.status, StatusCode::ACCEPTED, "{by_card:?}");
    let id = by_card.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(&rider, &id).await, "confirmed");
}
