//! `boxoffice rebuild`: a read model deleted or corrupted, rebuilt from the
//! events, answers as it did before.

use boxoffice::platform::{self, Projection};
use serde_json::Value;

use crate::helpers::{eventually, spawn_app};

/// What a customer's page says: each booking in full (status, payment,
/// points, history), in the list's order.
async fn my_page(app: &crate::helpers::TestApp, token: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    for row in app.list("/mypage/reservations", token).await {
        let id = row["reservationId"].as_str().unwrap();
        let detail = app
            .get(&format!("/mypage/reservations/{id}"), Some(token))
            .await;
        pages.push(serde_json::json!({"row": row, "detail": detail.body}));
    }
    pages
}

/// What the dashboard says per listing.
async fn listings(app: &crate::helpers::TestApp, admin: &str) -> Value {
    app.get("/dashboard", Some(admin)).await.body["listings"].clone()
}

#[tokio::test]
async fn read_models_deleted_or_corrupted_are_rebuilt_from_events_to_the_same_answers() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let customer = app.customer("rebuilt").await;
    let movie = app.movie(&admin, "Second Take", 10).await;
    let mut ids = Vec::new();
    for quantity in [2, 3] {
        let answer = app.book(&customer, &movie, quantity).await;
        let id = answer.body["id"].as_str().unwrap().to_owned();
        assert_eq!(app.settled(&customer, &id).await, "confirmed");
        ids.push(id);
    }
    let cancelled = app
        .post(
            &format!("/reservations/{}/cancel", ids[0]),
            Some(&customer),
            Value::Null,
        )
        .await;
    assert_eq!(cancelled.status, 202, "{:?}", cancelled.body);
    // Settled everywhere: each booking's payment at its last step (my page
    // reads payments and points from different topics, so points alone do
    // not say the payment's last event is in), the points of both shown,
    // the cancelled one's withdrawn, the dashboard counting 3 sold.
    let before = eventually(|| async {
        let page = my_page(&app, &customer).await;
        let done = page.len() == 2
            && page.iter().all(|entry| {
                let detail = &entry["detail"];
                let earned = detail["points"]["earned"].as_i64() > Some(0);
                let payment = &detail["payment"]["status"];
                match detail["status"].as_str() {
                    Some("confirmed") => earned && payment == "captured",
                    Some("cancelled") => {
                        earned
                            && payment == "refunded"
                            && detail["points"]["withdrawn"].as_i64() > Some(0)
                    }
                    _ => false,
                }
            });
        done.then_some(page)
    })
    .await;
    let dashboard_before = eventually(|| async {
        let listings = listings(&app, &admin).await;
        let row = listings
            .as_array()?
            .iter()
            .find(|row| row["id"] == movie.as_str())?
            .clone();
        (row["sold"] == 3 && row["held"] == 0 && row["available"] == 7).then_some(listings)
    })
    .await;
    app.stop().await;

    // My page's bookings deleted; the dashboard's counts corrupted.
    let dir = app.dir.path().to_owned();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.join("mypage.db").display()))
        .await
        .unwrap();
    sqlx::query("DELETE FROM my_reservations")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.join("dashboard.db").display()))
            .await
            .unwrap();
    sqlx::query("UPDATE dashboard_listings SET sold = 99, held = 7")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    platform::rebuild(&app.config, Projection::Mypage)
        .await
        .unwrap();
    let removed = platform::rebuild(&app.config, Projection::Dashboard)
        .await
        .unwrap();
    assert!(removed > 0, "the dashboard's rows and inbox were emptied");

    app.restart().await;
    let customer = app.token("rebuilt", "correct horse").await;
    let admin = app.admin_token().await;
    let after = eventually(|| async {
        let page = my_page(&app, &customer).await;
        (page == before).then_some(page)
    })
    .await;
    assert_eq!(after.len(), 2);
    eventually(|| async { (listings(&app, &admin).await == dashboard_before).then_some(()) }).await;
    app.stop().await;
}
