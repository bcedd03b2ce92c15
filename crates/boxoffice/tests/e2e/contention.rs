//! Contention: many customers racing for the last tickets.

use futures::future::join_all;

use crate::helpers::{eventually, spawn_app};

#[tokio::test]
async fn three_hundred_racing_bookings_sell_exactly_one_hundred_tickets() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let movie = app.movie(&admin, "Opening Night", 100).await;
    let mut customers = Vec::new();
    for n in 0..10 {
        customers.push(app.customer(&format!("fan{n}")).await);
    }

    let attempts = (0..300).map(|i| {
        let (app, customer, movie) = (&app, &customers[i % customers.len()], &movie);
        async move { app.book(customer, movie, 1).await }
    });
    let answers = join_all(attempts).await;
    assert!(
        answers.iter().all(|a| a.status == 202),
        "every booking is accepted for processing: {:?}",
        answers
            .iter()
            .filter(|a| a.status != 202)
            .map(|a| (a.status, a.body.to_string()))
            .take(3)
            .collect::<Vec<_>>()
    );
    let ids: Vec<(usize, String)> = answers
        .iter()
        .enumerate()
        .map(|(i, a)| {
            (
                i % customers.len(),
                a.body["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();

    let mut confirmed = 0;
    let mut rejected = 0;
    for (who, id) in &ids {
        match app.settled(&customers[*who], id).await.as_str() {
            "confirmed" => confirmed += 1,
            "rejected" => rejected += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((confirmed, rejected), (100, 200));
    assert_eq!(app.available(&movie).await, 0);

    // The read model converges on the same numbers.
    eventually(|| async {
        let mut rows = Vec::new();
        for customer in &customers {
            rows.extend(app.list("/mypage/reservations", customer).await);
        }
        let confirmed = rows.iter().filter(|r| r["status"] == "confirmed").count();
        let rejected = rows.iter().filter(|r| r["status"] == "rejected").count();
        (confirmed == 100 && rejected == 200).then_some(())
    })
    .await;
    app.stop().await;
}
