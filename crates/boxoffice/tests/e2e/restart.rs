//! Durability: a restart on the same data dir keeps everything, and what was
//! published while consumers were stopped is processed after they start,
//! exactly once, even when their committed positions were lost.

use bus_embedded::EmbeddedBus;
use contracts::catalog::ListingKind;
use contracts::reservation::{Booking, PaymentMethod, ReservationEvent};
use contracts::IntegrationEvent;
use kernel::bus::EventBus;
use kernel::ids::ReservationId;
use kernel::Money;
use serde_json::Value;

use crate::helpers::{eventually, spawn_app};

#[tokio::test]
async fn a_restart_keeps_everything_and_consumers_catch_up_exactly_once() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let customer = app.customer("regular").await;
    let movie = app.movie(&admin, "Persistence of Memory", 20).await;
    let mut booked = Vec::new();
    for _ in 0..3 {
        let answer = app.book(&customer, &movie, 2).await;
        let id = answer.body["id"].as_str().unwrap().to_owned();
        assert_eq!(app.settled(&customer, &id).await, "confirmed");
        booked.push((id, answer.body["userId"].as_str().unwrap().to_owned()));
    }
    eventually(|| async { (app.list("/notifications", &customer).await.len() == 3).then_some(()) })
        .await;
    app.stop().await;

    // While everything is down: an event lands on the log (as if published
    // just before the crash), and the notification and my-page consumers
    // lose their committed positions, so they will see old events again.
    let missed = ReservationId::new();
    let bus_path = app.dir.path().join("bus.db");
    {
        let bus = EmbeddedBus::open(&bus_path).await.unwrap();
        let event = ReservationEvent::ReservationConfirmed {
            booking: Booking {
                reservation_id: missed,
                user_id: booked[0].1.parse().unwrap(),
                listing_id: movie.parse().unwrap(),
                listing_title: "Persistence of Memory".into(),
                listing_kind: ListingKind::Movie,
                quantity: 1,
                seats: Vec::new(),
                amount: Money::parse(12000).unwrap(),
                payment_method: PaymentMethod::Card,
            },
            confirmed_at: kernel::now(),
        };
        bus.publish(&[event.outgoing(None)]).await.unwrap();
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", bus_path.display()))
            .await
            .unwrap();
        let rewound = sqlx::query("UPDATE group_offsets SET committed_seq = 0 WHERE group_name IN ('notification.sender', 'mypage.projection') AND topic = 'boxoffice.reservation'")
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(
            rewound.rows_affected(),
            2,
            "each group had a committed position on the reservation topic"
        );
        pool.close().await;
        bus.close().await;
    }

    app.restart().await;

    // Everything is still there; the same passwords still work.
    let customer = app.token("regular", "correct horse").await;
    assert_eq!(app.available(&movie).await, 14);
    let reservations = app.list("/reservations", &customer).await;
    assert_eq!(reservations.len(), 3);
    assert!(reservations.iter().all(|r| r["status"] == "confirmed"));

    // The missed event is processed; nothing is processed twice.
    let notifications = eventually(|| async {
        let all = app.list("/notifications", &customer).await;
        all.iter()
            .any(|n| n["reservationId"] == missed.to_string().as_str())
            .then_some(all)
    })
    .await;
    // Give a redelivery the chance to show up if the inbox failed.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let notifications_after = app.list("/notifications", &customer).await;
    assert_eq!(notifications_after.len(), notifications.len());
    assert_eq!(
        notifications.len(),
        4,
        "3 before the restart, 1 missed: {notifications:?}"
    );
    let mine = eventually(|| async {
        let rows = app.list("/mypage/reservations", &customer).await;
        (rows.len() == 4).then_some(rows)
    })
    .await;
    assert!(mine.iter().all(|r: &Value| r["status"] == "confirmed"));

    // And the platform keeps working.
    let after = app.book(&customer, &movie, 4).await;
    let id = after.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(&customer, &id).await, "confirmed");
    assert_eq!(app.available(&movie).await, 10);
    app.stop().await;
}

#[tokio::test]
async fn bike_numbers_and_wallets_continue_after_a_restart() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let rider = app.customer("night-rider").await;
    let (_, first) = app.bike(&admin, "green").await;
    assert_eq!(app.buy_points(&rider, 3000).await.body["balance"], 3000);
    app.restart().await;

    let admin = app.admin_token().await;
    let (_, second) = app.bike(&admin, "red").await;
    assert_eq!(second, first + 1, "bike 2 after bike 1");
    assert_eq!(app.buy_points(&rider, 5000).await.body["balance"], 8000);
}
