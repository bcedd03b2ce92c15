//! S0: movie tickets with a quota, the write-up's walkthrough.

use serde_json::Value;

use crate::helpers::{eventually, spawn_app};

fn kinds_for(notifications: &[Value], reservation: &str) -> Vec<String> {
    notifications
        .iter()
        .filter(|n| n["reservationId"] == reservation)
        .map(|n| n["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_movie_ticket_walkthrough_reserves_compensates_and_cancels() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let customer = app.customer("moviegoer").await;
    let lalaland = app.movie(&admin, "LALALand", 100).await;
    assert_eq!(app.available(&lalaland).await, 100);

    // 45 tickets: confirmed, 55 left, a "reserved" notification.
    let booked = app.book(&customer, &lalaland, 45).await;
    assert_eq!(booked.status, 202, "{booked:?}");
    assert_eq!(booked.body["status"], "pending");
    assert_eq!(booked.body["amount"], 45 * 12000);
    let first = booked.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(&customer, &first).await, "confirmed");
    assert_eq!(app.available(&lalaland).await, 55);
    let notifications = eventually(|| async {
        let all = app.list("/notifications", &customer).await;
        (!kinds_for(&all, &first).is_empty()).then_some(all)
    })
    .await;
    assert_eq!(kinds_for(&notifications, &first), vec!["reserved"]);

    // 57 tickets when 55 remain: compensated, the quota unchanged, told why.
    let too_many = app.book(&customer, &lalaland, 57).await;
    assert_eq!(too_many.status, 202);
    let second = too_many.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(&customer, &second).await, "rejected");
    let rejected = app
        .get(&format!("/reservations/{second}"), Some(&customer))
        .await;
    assert!(rejected.body["reason"]
        .as_str()
        .unwrap()
        .contains("57 tickets requested, 55 remaining"));
    assert_eq!(app.available(&lalaland).await, 55);
    let message = eventually(|| async {
        let all = app.list("/notifications", &customer).await;
        all.into_iter()
            .find(|n| n["reservationId"] == second.as_str())
    })
    .await;
    assert_eq!(message["kind"], "rejected");
    assert!(message["message"].as_str().unwrap().contains("sold out"));

    // My page shows the confirmed one (and the rejected one as rejected).
    let mine = eventually(|| async {
        let rows = app.list("/mypage/reservations", &customer).await;
        (rows.len() == 2 && rows.iter().all(|r| r["status"] != "pending")).then_some(rows)
    })
    .await;
    let row = mine
        .iter()
        .find(|r| r["reservationId"] == first.as_str())
        .unwrap();
    assert_eq!(row["status"], "confirmed");
    assert_eq!(row["title"], "LALALand");
    assert_eq!(row["quantity"], 45);
    assert_eq!(row["amount"], 45 * 12000);

    // Cancel: the tickets go back, my page says cancelled, a notification.
    let cancelled = app
        .post(
            &format!("/reservations/{first}/cancel"),
            Some(&customer),
            Value::Null,
        )
        .await;
    assert_eq!(cancelled.status, 202, "{cancelled:?}");
    assert_eq!(cancelled.body["status"], "cancelled");
    eventually(|| async { (app.available(&lalaland).await == 100).then_some(()) }).await;
    eventually(|| async {
        let rows = app.list("/mypage/reservations", &customer).await;
        rows.iter()
            .any(|r| r["reservationId"] == first.as_str() && r["status"] == "cancelled")
            .then_some(())
    })
    .await;
    let notifications = eventually(|| async {
        let all = app.list("/notifications", &customer).await;
        (kinds_for(&all, &first).len() == 2).then_some(all)
    })
    .await;
    let mut kinds = kinds_for(&notifications, &first);
    kinds.sort();
    assert_eq!(kinds, vec!["cancelled", "reserved"]);

    // Cancelling again is a conflict and changes nothing.
    let again = app
        .post(
            &format!("/reservations/{first}/cancel"),
            Some(&customer),
            Value::Null,
        )
        .await;
    assert_eq!(again.status, 409, "{again:?}");
    assert_eq!(app.available(&lalaland).await, 100);
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
