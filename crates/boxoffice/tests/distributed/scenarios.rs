//! The distributed scenarios: S0, a killed consumer catching up, a scaled
//! out consumer group, and a restart of everything.

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{self, StreamExt};
use serde_json::Value;

use crate::common::gateway::{eventually, set_patience, Gateway};
use crate::common::scenarios::movie_ticket_walkthrough;
use crate::deployment::{Deployment, Servers};

/// Rebalances after a member dies wait out the session timeout (6 s), so
/// convergence here is given a minute rather than the embedded 15 s.
const PATIENCE_SECS: u64 = 60;

async fn deploy(test: &str) -> Option<Deployment> {
    set_patience(PATIENCE_SECS);
    let servers = Servers::from_env(test)?;
    Some(Deployment::start(servers).await)
}

/// Books one ticket `count` times, `parallel` at a time; returns the ids.
async fn book_many(
    gateway: &Gateway,
    token: &str,
    listing: &str,
    count: usize,
    parallel: usize,
) -> Vec<String> {
    stream::iter(0..count)
        .map(|_| async move {
            let answer = gateway.book(token, listing, 1).await;
            assert_eq!(answer.status, 202, "{answer:?}");
            answer.body["id"].as_str().unwrap().to_owned()
        })
        .buffer_unordered(parallel)
        .collect()
        .await
}

/// Waits until every one of `ids` has left `pending`; returns them by status.
async fn settle_all(gateway: &Gateway, token: &str, ids: &[String]) -> BTreeMap<String, usize> {
    let mut statuses = BTreeMap::new();
    for id in ids {
        *statuses
            .entry(gateway.settled(token, id).await)
            .or_insert(0) += 1;
    }
    statuses
}

/// The notifications (as the admin sees them) about `ids`.
async fn notifications_about(gateway: &Gateway, admin: &str, ids: &BTreeSet<String>) -> Vec<Value> {
    gateway
        .list("/notifications", admin)
        .await
        .into_iter()
        .filter(|n| ids.contains(n["reservationId"].as_str().unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn the_movie_ticket_walkthrough_runs_on_kafka_and_postgres() {
    let Some(deployment) = deploy("the S0 walkthrough on Kafka and PostgreSQL").await else {
        return;
    };
    movie_ticket_walkthrough(&deployment.gateway).await;
    deployment.tear_down().await;
}

#[tokio::test]
async fn a_notification_service_killed_hard_catches_up_on_every_booking_once() {
    let Some(mut deployment) = deploy("kill -9 and catch up").await else {
        return;
    };
    let gateway = deployment.gateway.clone();
    let admin = gateway.admin_token().await;
    let customer = gateway.customer("catch-up").await;
    let movie = gateway.movie(&admin, "Catch Me If You Can", 100).await;

    deployment.kill("notification").await;
    let ids = book_many(&gateway, &customer, &movie, 50, 8).await;
    // The saga does not need notification: all 50 are confirmed meanwhile.
    let statuses = settle_all(&gateway, &customer, &ids).await;
    assert_eq!(statuses.get("confirmed"), Some(&50), "{statuses:?}");

    deployment.spawn("notification", "notification").await;
    deployment.wait_ready("notification").await;
    let ids: BTreeSet<String> = ids.into_iter().collect();
    eventually(|| async {
        (notifications_about(&gateway, &admin, &ids).await.len() >= 50).then_some(())
    })
    .await;
    // Anything sent twice would show up by now.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let stored = notifications_about(&gateway, &admin, &ids).await;
    assert_eq!(stored.len(), 50, "one notification per booking");
    let mut sent = deployment.sent_by("notification");
    sent.retain(|id| ids.contains(id));
    sent.sort();
    let distinct: Vec<String> = ids.iter().cloned().collect();
    assert_eq!(sent, distinct, "each booking's message sent exactly once");
    deployment.tear_down().await;
}

/// Whether instance `name` has been given at least one partition of the
/// notification group, and how many it holds now.
fn assigned_partitions(deployment: &Deployment, name: &str) -> Option<u64> {
    deployment
        .log_lines(name)
        .into_iter()
        .filter(|line| line["fields"]["message"] == "partitions assigned")
        .filter(|line| line["fields"]["group"] == "notification.sender")
        .filter_map(|line| line["fields"]["count"].as_u64())
        .next_back()
}

#[tokio::test]
async fn two_notification_replicas_share_the_work_and_send_each_message_once() {
    let Some(mut deployment) = deploy("scale-out of a consumer group").await else {
        return;
    };
    deployment.spawn("notification-2", "notification").await;
    deployment.wait_ready("notification-2").await;
    // Wait for the group to rebalance over both members.
    let shared = eventually(|| async {
        let first = assigned_partitions(&deployment, "notification")?;
        let second = assigned_partitions(&deployment, "notification-2")?;
        (first > 0 && second > 0).then_some((first, second))
    })
    .await;
    assert_eq!(shared.0 + shared.1, 4, "4 partitions split: {shared:?}");

    let gateway = deployment.gateway.clone();
    let admin = gateway.admin_token().await;
    let movie = gateway.movie(&admin, "Scale Out", 500).await;
    let mut ids = BTreeSet::new();
    for customer in 0..4 {
        let token = gateway.customer(&format!("fan-{customer}")).await;
        let booked = book_many(&gateway, &token, &movie, 50, 8).await;
        let statuses = settle_all(&gateway, &token, &booked).await;
        assert_eq!(statuses.get("confirmed"), Some(&50), "{statuses:?}");
        ids.extend(booked);
    }
    assert_eq!(ids.len(), 200);
    eventually(|| async {
        (notifications_about(&gateway, &admin, &ids).await.len() >= 200).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(notifications_about(&gateway, &admin, &ids).await.len(), 200);

    let first = deployment.sent_by("notification");
    let second = deployment.sent_by("notification-2");
    assert!(
        !first.is_empty() && !second.is_empty(),
        "both replicas took part: {} and {}",
        first.len(),
        second.len()
    );
    let mut all: Vec<String> = first.into_iter().chain(second).collect();
    all.sort();
    let expected: Vec<String> = ids.into_iter().collect();
    assert_eq!(
        all, expected,
        "each message sent exactly once, by one replica"
    );
    deployment.tear_down().await;
}

#[tokio::test]
async fn after_restarting_every_service_and_postgres_the_data_is_intact_and_ids_continue() {
    let Some(mut deployment) = deploy("restart everything").await else {
        return;
    };
    let gateway = deployment.gateway.clone();
    let admin = gateway.admin_token().await;
    let customer = gateway.customer("regular").await;
    let movie = gateway.movie(&admin, "Groundhog Day", 10).await;
    let before_ids = book_many(&gateway, &customer, &movie, 5, 1).await;
    settle_all(&gateway, &customer, &before_ids).await;
    let before_ids: BTreeSet<String> = before_ids.into_iter().collect();
    eventually(|| async {
        let mine = gateway.list("/mypage/reservations", &customer).await;
        let told = notifications_about(&gateway, &admin, &before_ids).await;
        (mine.iter().filter(|r| r["status"] == "confirmed").count() == 5 && told.len() == 5)
            .then_some(())
    })
    .await;
    let snapshot = |gateway: Gateway, customer: String, movie: String| async move {
        (
            gateway.get(&format!("/listings/{movie}"), None).await.body,
            gateway.list("/reservations", &customer).await,
            gateway.list("/mypage/reservations", &customer).await,
            gateway.list("/notifications", &customer).await,
        )
    };
    let before = snapshot(gateway.clone(), customer.clone(), movie.clone()).await;
    assert_eq!(before.0["capacity"]["available"], 5);

    deployment.stop_all().await;
    let restarted_postgres = deployment.restart_postgres().await;
    deployment.start_all().await;

    // Everything as it was; the token issued before still works.
    let after = snapshot(gateway.clone(), customer.clone(), movie.clone()).await;
    assert_eq!(after, before, "PostgreSQL restarted: {restarted_postgres}");
    assert!(!gateway.token("regular", "correct horse").await.is_empty());

    // New bookings continue from there: 5 left, then sold out.
    let more = book_many(&gateway, &customer, &movie, 6, 1).await;
    let statuses = settle_all(&gateway, &customer, &more).await;
    assert_eq!(statuses.get("confirmed"), Some(&5), "{statuses:?}");
    assert_eq!(statuses.get("rejected"), Some(&1), "{statuses:?}");
    assert_eq!(gateway.available(&movie).await, 0);
    let newest_before = before_ids.iter().max().unwrap();
    assert!(
        more.iter()
            .all(|id| id > newest_before && !before_ids.contains(id)),
        "new ids come after the old ones"
    );
    // Nothing was re-applied: one notification per reservation, old and new.
    let all_ids: BTreeSet<String> = before_ids.iter().chain(&more).cloned().collect();
    eventually(|| async {
        (notifications_about(&gateway, &admin, &all_ids).await.len() >= 11).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        notifications_about(&gateway, &admin, &all_ids).await.len(),
        11
    );
    deployment.tear_down().await;
}
