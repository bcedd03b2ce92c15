//! The distributed scenarios: S0, a killed consumer catching up, a scaled
//! out consumer group, a restart of everything, two catalog replicas racing
//! on the same listings, and a PostgreSQL outage under load.

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{self, StreamExt};
use serde_json::Value;

use crate::common::gateway::{eventually, set_patience, Gateway};
use crate::common::scenarios::{bike_rental_walkthrough, movie_ticket_walkthrough};
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
async fn the_movie_ticket_walkthrough_runs_with_my_page_on_redis() {
    const TEST: &str = "the S0 walkthrough with my page on Redis";
    set_patience(PATIENCE_SECS);
    let Some(servers) = Servers::from_env(TEST) else {
        return;
    };
    let Some(redis) = servers.redis.clone() else {
        return;
    };
    let store = BTreeMap::from([("BOXOFFICE_MYPAGE__STORE".to_owned(), redis)]);
    let deployment = Deployment::start_with(servers, store).await;
    movie_ticket_walkthrough(&deployment.gateway).await;
    deployment.tear_down().await;
}

#[tokio::test]
async fn the_bike_rental_walkthrough_runs_on_kafka_and_postgres() {
    let Some(deployment) = deploy("bike rental walkthrough").await else {
        return;
    };
    bike_rental_walkthrough(&deployment.gateway).await;
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

    let killed = std::time::Instant::now();
    deployment.kill("notification").await;
    let ids = book_many(&gateway, &customer, &movie, 50, 8).await;
    // The saga does not need notification: all 50 are confirmed meanwhile.
    let statuses = settle_all(&gateway, &customer, &ids).await;
    assert_eq!(statuses.get("confirmed"), Some(&50), "{statuses:?}");

    // The replacement starts once the broker's session timeout has passed
    // since the kill, as a supervisor's restart back-off has it: a member
    // joining while the dead one still counts may be given none of the
    // partitions, and tansu was seen leaving them with the dead member for
    // more than a minute (docs/operations.md).
    let session = std::time::Duration::from_millis(u64::from(
        bus_kafka::KafkaSettings::default().session_timeout_ms,
    ));
    tokio::time::sleep_until((killed + session + std::time::Duration::from_secs(1)).into()).await;
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

/// How many partitions of consumer `group` instance `name` holds now, once
/// it has been given any.
fn assigned_partitions(deployment: &Deployment, name: &str, group: &str) -> Option<u64> {
    deployment
        .log_lines(name)
        .into_iter()
        .filter(|line| line["fields"]["message"] == "partitions assigned")
        .filter(|line| line["fields"]["group"] == group)
        .filter_map(|line| line["fields"]["count"].as_u64())
        .next_back()
}

/// Starts a second instance of `service` and waits until it and the first
/// share the partitions of `group`.
async fn scale_out(deployment: &mut Deployment, service: &str, group: &str) -> (u64, u64) {
    let second = format!("{service}-2");
    deployment.spawn(&second, service).await;
    deployment.wait_ready(&second).await;
    eventually(|| async {
        let first = assigned_partitions(deployment, service, group)?;
        let other = assigned_partitions(deployment, &second, group)?;
        (first > 0 && other > 0).then_some((first, other))
    })
    .await
}

#[tokio::test]
async fn two_notification_replicas_share_the_work_and_send_each_message_once() {
    let Some(mut deployment) = deploy("scale-out of a consumer group").await else {
        return;
    };
    // Wait for the group to rebalance over both members.
    let shared = scale_out(&mut deployment, "notification", "notification.sender").await;
    // Two topics (reservation and payment events), four partitions each.
    assert_eq!(shared.0 + shared.1, 8, "8 partitions split: {shared:?}");

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
    let (_, first_bike) = gateway.bike(&admin, "green").await;
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

    // Bike numbers continue: the next bike is the one after.
    let (_, next_bike) = gateway.bike(&admin, "red").await;
    assert_eq!(next_bike, first_bike + 1, "bike numbers continue");

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

#[tokio::test]
async fn two_catalog_replicas_racing_on_the_same_listings_lose_no_ticket_and_park_nothing() {
    let Some(mut deployment) = deploy("two catalog replicas racing").await else {
        return;
    };
    let shared = scale_out(&mut deployment, "catalog", "catalog.inventory").await;
    assert_eq!(shared.0 + shared.1, 4, "4 partitions split: {shared:?}");
    let gateway = deployment.gateway.clone();
    let admin = gateway.admin_token().await;
    let movies = [
        gateway.movie(&admin, "Heat", 40).await,
        gateway.movie(&admin, "Ronin", 40).await,
    ];
    let mut fans = Vec::new();
    for n in 0..4 {
        fans.push(gateway.customer(&format!("racer-{n}")).await);
    }

    // Bookings on both listings from every fan at once; each replica holds
    // and releases on the same rows while the other does too.
    let rush = |round: usize| {
        let gateway = gateway.clone();
        let fans = fans.clone();
        let movies = movies.clone();
        async move {
            stream::iter(0..60)
                .map(|n| {
                    let (gateway, token) = (gateway.clone(), fans[n % 4].clone());
                    let movie = movies[(n + round) % 2].clone();
                    async move {
                        let answer = gateway.book(&token, &movie, 1).await;
                        assert_eq!(answer.status, 202, "{answer:?}");
                        (token, answer.body["id"].as_str().unwrap().to_owned())
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<(String, String)>>()
                .await
        }
    };
    let first = rush(0).await;
    // Cancel every booking of the first round that is confirmed while a
    // second round books: releases race holds on the same listings.
    let cancels = stream::iter(first.clone())
        .map(|(token, id)| {
            let gateway = gateway.clone();
            async move {
                if gateway.settled(&token, &id).await == "confirmed" {
                    let answer = gateway
                        .post(
                            &format!("/reservations/{id}/cancel"),
                            Some(&token),
                            serde_json::json!({}),
                        )
                        .await;
                    assert_eq!(answer.status, 202, "{answer:?}");
                }
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>();
    let (second, _) = futures::join!(rush(1), cancels);

    // Once it settles, every ticket is either sold or on sale again.
    let all: Vec<(String, String)> = first.into_iter().chain(second).collect();
    eventually(|| async {
        let mut sold: BTreeMap<String, u64> = BTreeMap::new();
        for (token, id) in &all {
            let answer = gateway
                .get(&format!("/reservations/{id}"), Some(token))
                .await;
            match answer.body["status"].as_str() {
                Some("confirmed") => {
                    *sold
                        .entry(answer.body["listingId"].as_str()?.to_owned())
                        .or_default() += 1
                }
                Some("pending") => return None,
                _ => {}
            }
        }
        for movie in &movies {
            let available = gateway.available(movie).await;
            let sold = sold.get(movie).copied().unwrap_or(0);
            if available + sold != 40 {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert_eq!(
        deployment.dead_letters().await.values().sum::<i64>(),
        0,
        "nothing parked: {:?}",
        deployment.dead_letters().await
    );
    deployment.tear_down().await;
}

#[tokio::test]
async fn a_postgres_outage_under_load_loses_nothing_applies_everything_once_and_parks_nothing() {
    let Some(deployment) = deploy("a PostgreSQL outage under load").await else {
        return;
    };
    let gateway = deployment.gateway.clone();
    let admin = gateway.admin_token().await;
    let movie = gateway.movie(&admin, "Blackout", 5_000).await;
    let mut customers = Vec::new();
    for n in 0..4 {
        customers.push(gateway.customer(&format!("steadfast-{n}")).await);
    }

    // Four clients book one ticket at a time until told to stop; what was
    // accepted (202) must end confirmed, whatever happened meanwhile.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for customer in &customers {
        let (gateway, token, movie, stop) = (
            gateway.clone(),
            customer.clone(),
            movie.clone(),
            stop.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut refused = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let answer = gateway.book(&token, &movie, 1).await;
                if answer.status == 202 {
                    accepted.push(answer.body["id"].as_str().unwrap().to_owned());
                } else {
                    assert!(
                        answer.status.is_server_error(),
                        "only an unavailable store may refuse a booking: {answer:?}"
                    );
                    refused += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
            (accepted, refused)
        }));
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let stopped = deployment.stop_postgres().await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    if stopped {
        deployment.start_postgres().await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut accepted = Vec::new();
    let mut refused = 0;
    for client in clients {
        let (ids, no) = client.await.unwrap();
        accepted.extend(ids);
        refused += no;
    }
    eprintln!(
        "accepted {} bookings, {refused} refused during the outage",
        accepted.len()
    );
    assert!(accepted.len() > 20, "the load ran: {}", accepted.len());

    let statuses = settle_all(&gateway, &admin, &accepted).await;
    assert_eq!(
        statuses.get("confirmed").copied(),
        Some(accepted.len()),
        "{statuses:?}"
    );
    let ids: BTreeSet<String> = accepted.iter().cloned().collect();
    eventually(|| async {
        let told = notifications_about(&gateway, &admin, &ids).await.len();
        let mut shown = 0;
        for customer in &customers {
            let mine = gateway.list("/mypage/reservations", customer).await;
            shown += mine.iter().filter(|r| r["status"] == "confirmed").count();
        }
        (told >= ids.len() && shown == ids.len()).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    // Each effect once: one notification per booking, the quota moved by
    // exactly what was sold, nothing parked anywhere.
    assert_eq!(
        notifications_about(&gateway, &admin, &ids).await.len(),
        ids.len()
    );
    assert_eq!(gateway.available(&movie).await, 5_000 - ids.len() as u64);
    assert_eq!(
        deployment.dead_letters().await.values().sum::<i64>(),
        0,
        "nothing parked: {:?}",
        deployment.dead_letters().await
    );
    deployment.tear_down().await;
}
