//! S0: movie tickets with a quota, the write-up's walkthrough.

use serde_json::Value;

use crate::common::scenarios::movie_ticket_walkthrough;
use crate::helpers::spawn_app;

#[tokio::test]
async fn the_movie_ticket_walkthrough_reserves_compensates_and_cancels() {
    let mut app = spawn_app().await;
    movie_ticket_walkthrough(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_listing_booked_the_moment_it_is_registered_is_not_refused() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let customer = app.customer("early-bird").await;
    for round in 0..5 {
        let movie = app.movie(&admin, &format!("Premiere {round}"), 10).await;
        // No wait: the reservation service may not have seen the listing's event yet.
        let booked = app.book(&customer, &movie, 2).await;
        assert_eq!(booked.status, 202, "{booked:?}");
        let id = booked.body["id"].as_str().unwrap().to_owned();
        assert_eq!(app.settled(&customer, &id).await, "confirmed");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_customer_sees_and_cancels_only_their_own_reservations() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let owner = app.customer("owner").await;
    let stranger = app.customer("stranger").await;
    let movie = app.movie(&admin, "Private Screening", 10).await;
    let booked = app.book(&owner, &movie, 1).await;
    let id = booked.body["id"].as_str().unwrap().to_owned();
    app.settled(&owner, &id).await;

    let peek = app
        .get(&format!("/reservations/{id}"), Some(&stranger))
        .await;
    assert_eq!(peek.status, 404);
    let cancel = app
        .post(
            &format!("/reservations/{id}/cancel"),
            Some(&stranger),
            Value::Null,
        )
        .await;
    assert_eq!(cancel.status, 404);
    assert!(app.list("/reservations", &stranger).await.is_empty());
    assert_eq!(app.reservation_status(&owner, &id).await, "confirmed");
    // An admin sees everyone's.
    assert_eq!(app.list("/reservations", &admin).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_request_with_the_same_idempotency_key_books_once() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let customer = app.customer("double-clicker").await;
    let movie = app.movie(&admin, "Once Only", 10).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let response = app
            .http
            .post(format!("{}/reservations", app.url))
            .bearer_auth(&customer)
            .header("Idempotency-Key", "click-1")
            .json(&serde_json::json!({"listingId": movie, "quantity": 2}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    assert!(ids.iter().all(|id| id == &ids[0]));
    app.settled(&customer, &ids[0]).await;
    assert_eq!(app.available(&movie).await, 8);
    assert_eq!(app.list("/reservations", &customer).await.len(), 1);
    app.stop().await;
}
