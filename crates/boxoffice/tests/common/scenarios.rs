//! Scenarios that every deployment must pass, embedded or distributed.

use serde_json::Value;

use crate::common::gateway::{eventually, Gateway};

pub fn kinds_for(notifications: &[Value], reservation: &str) -> Vec<String> {
    notifications
        .iter()
        .filter(|n| n["reservationId"] == reservation)
        .map(|n| n["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// The S0 write-up's walkthrough, against any deployment.
pub async fn movie_ticket_walkthrough(app: &Gateway) {
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
    // The card payment is refunded too, and the customer told so.
    let notifications = eventually(|| async {
        let all = app.list("/notifications", &customer).await;
        (kinds_for(&all, &first).len() == 3).then_some(all)
    })
    .await;
    let mut kinds = kinds_for(&notifications, &first);
    kinds.sort();
    assert_eq!(kinds, vec!["cancelled", "refunded", "reserved"]);

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
}

/// The S3 write-up's walkthrough (public bikes paid with points), against
/// any deployment.
pub async fn bike_rental_walkthrough(app: &Gateway) {
    let admin = app.admin_token().await;
    let (bike1, first) = app.bike(&admin, "green").await;
    let (bike2, second) = app.bike(&admin, "red").await;
    assert_eq!(second, first + 1, "bike numbers follow each other");

    // Points bought by card: the first purchase opens the wallet, the next
    // tops it up.
    let rider = app.customer("rider-10").await;
    let bought = app.buy_points(&rider, 3000).await;
    assert_eq!(bought.status, 201, "{bought:?}");
    assert_eq!(bought.body["balance"], 3000);
    assert_eq!(app.buy_points(&rider, 5000).await.body["balance"], 8000);

    // Renting takes 1000 points; the bike is in use.
    let rented = app.rent(&rider, &bike1).await;
    assert_eq!(rented.status, 202, "{rented:?}");
    assert_eq!(rented.body["paymentMethod"], "points");
    assert_eq!(rented.body["amount"], 1000);
    let rental = rented.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(&rider, &rental).await, "confirmed");
    assert_eq!(app.balance(&rider).await, 7000);
    eventually(|| async { (!app.bike_free(&bike1).await).then_some(()) }).await;
    // The admin's dashboard, built from events only, shows it in use.
    eventually(|| async {
        let dashboard = app.get("/dashboard", Some(&admin)).await;
        let listings = dashboard.body["listings"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        listings
            .iter()
            .any(|l| l["id"] == bike1.as_str() && l["inUse"] == true)
            .then_some(())
    })
    .await;

    // Not enough points: rejected, nothing taken, told why.
    let poor = app.customer("rider-500").await;
    assert_eq!(app.buy_points(&poor, 500).await.body["balance"], 500);
    let refused = app.rent(&poor, &bike2).await;
    assert_eq!(refused.status, 202, "{refused:?}");
    let refused = refused.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(&poor, &refused).await, "rejected");
    let reason = app
        .get(&format!("/reservations/{refused}"), Some(&poor))
        .await;
    assert!(
        reason.body["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("not enough points"),
        "{reason:?}"
    );
    let told = eventually(|| async {
        let all = app.list("/notifications", &poor).await;
        all.into_iter()
            .find(|n| n["reservationId"] == refused.as_str())
    })
    .await;
    assert_eq!(told["kind"], "rejected");
    assert!(told["message"]
        .as_str()
        .unwrap()
        .contains("not enough points"));
    assert_eq!(app.balance(&poor).await, 500);
    eventually(|| async { app.bike_free(&bike2).await.then_some(()) }).await;

    // Cancel before pick-up: the points come back, the bike is free.
    let cancelled = app
        .post(
            &format!("/reservations/{rental}/cancel"),
            Some(&rider),
            Value::Null,
        )
        .await;
    assert_eq!(cancelled.status, 202, "{cancelled:?}");
    eventually(|| async { (app.balance(&rider).await == 8000).then_some(()) }).await;
    eventually(|| async { app.bike_free(&bike1).await.then_some(()) }).await;

    // Rent again and bring it back: the bike is free, the rental paid.
    let again = app.rent(&rider, &bike1).await;
    let again = again.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(&rider, &again).await, "confirmed");
    let returned = app
        .post(
            &format!("/reservations/{again}/return"),
            Some(&rider),
            Value::Null,
        )
        .await;
    assert_eq!(returned.status, 202, "{returned:?}");
    assert_eq!(returned.body["status"], "returned");
    eventually(|| async { app.bike_free(&bike1).await.then_some(()) }).await;
    assert_eq!(app.balance(&rider).await, 7000);
    let twice = app
        .post(
            &format!("/reservations/{again}/return"),
            Some(&rider),
            Value::Null,
        )
        .await;
    assert_eq!(twice.status, 409, "{twice:?}");
    let not_theirs = app
        .post(
            &format!("/reservations/{again}/return"),
            Some(&poor),
            Value::Null,
        )
        .await;
    assert_eq!(not_theirs.status, 404, "{not_theirs:?}");

    // My page shows the rentals as they ended.
    let mine = eventually(|| async {
        let rows = app.list("/mypage/reservations", &rider).await;
        (rows.len() == 2 && rows.iter().all(|r| r["status"] != "pending")).then_some(rows)
    })
    .await;
    let statuses: Vec<&str> = mine.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert!(
        statuses.contains(&"returned") && statuses.contains(&"cancelled"),
        "{mine:?}"
    );
}
