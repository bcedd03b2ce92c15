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
