//! Operations under load, with processes standing in for pods: two
//! replicas of each service customers reach (catalog, reservation,
//! payment, mypage, wallet) behind two gateways that balance over them,
//! and the gateways behind a Service the test plays (requests go round
//! robin to the gateways in its endpoints).
//!
//! While customers book without pause, every one of those services and
//! both gateways are restarted one replica at a time (SIGTERM, wait for
//! the new process to be ready, then the next), as a rolling update does;
//! a gateway leaves the Service's endpoints as it is told to stop, as a
//! terminating pod does, and comes back once ready. Then a replica is
//! frozen (SIGSTOP: its sockets stay open, it answers nothing), and the
//! supervisor the test plays, as the kubelet does with a liveness probe,
//! finds it, kills it and starts another. No customer request may fail,
//! and the books must balance exactly afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::gateway::{eventually, set_patience};
use crate::deployment::{Deployment, Servers};

/// The services that get two replicas and are restarted under load, the
/// gateway last.
const REPLICATED: [&str; 6] = [
    "catalog",
    "payment",
    "reservation",
    "wallet",
    "mypage",
    "gateway",
];

/// The gateways' Service, as kube-proxy plays it: each request goes to the
/// next gateway in the endpoints, round robin.
#[derive(Clone)]
struct GatewayService {
    endpoints: Arc<Mutex<Vec<String>>>,
    turn: Arc<AtomicUsize>,
}

impl GatewayService {
    fn new(endpoints: Vec<String>) -> GatewayService {
        GatewayService {
            endpoints: Arc::new(Mutex::new(endpoints)),
            turn: Arc::default(),
        }
    }

    fn url(&self, path: &str) -> String {
        let endpoints = self.endpoints.lock().unwrap();
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        format!("{}{path}", endpoints[turn % endpoints.len()])
    }

    /// A terminating pod leaves the endpoints (while it drains, requests
    /// already sent to it are still answered).
    fn remove(&self, url: &str) {
        self.endpoints.lock().unwrap().retain(|e| e != url);
    }

    /// A ready pod joins them.
    fn add(&self, url: String) {
        self.endpoints.lock().unwrap().push(url);
    }
}

/// Tickets on sale: more than the load can buy, so every booking is
/// confirmed unless something goes wrong.
const CAPACITY: u64 = 100_000;

/// The most bookings one client makes, whatever happens (a bound on the loop).
const MAX_BOOKINGS_PER_CLIENT: usize = 3_000;

/// The liveness probe the supervisor plays: how often, how long it waits
/// for an answer, and how many misses in a row get an instance replaced.
const PROBE_EVERY: Duration = Duration::from_millis(500);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
const MISSES_TO_REPLACE: u32 = 3;

/// What one customer's client saw.
#[derive(Default)]
struct Tally {
    /// Bookings accepted (202), by id.
    booked: Vec<String>,
    /// Requests that did not get the answer they should have: each with
    /// what happened.
    failures: Vec<String>,
    requests: usize,
}

/// A customer booking one ticket after the other, each with its own
/// `Idempotency-Key`, and reading the booking and their page after each,
/// until told to stop.
async fn customer(
    gateways: GatewayService,
    token: String,
    movie: String,
    stop: Arc<AtomicBool>,
) -> Tally {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a client");
    let url = |path: &str| gateways.url(path);
    let mut tally = Tally::default();
    while !stop.load(Ordering::Relaxed) && tally.booked.len() < MAX_BOOKINGS_PER_CLIENT {
        tally.requests += 1;
        let booking = http
            .post(url("/reservations"))
            .bearer_auth(&token)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&json!({"listingId": movie, "quantity": 1}))
            .send()
            .await;
        let id = match booking {
            Ok(answer) if answer.status() == 202 => {
                let body: Value = answer.json().await.unwrap_or_default();
                body["id"].as_str().map(str::to_owned)
            }
            Ok(answer) => {
                let status = answer.status();
                let body = answer.text().await.unwrap_or_default();
                tally
                    .failures
                    .push(format!("POST /reservations: {status} {body}"));
                None
            }
            Err(error) => {
                tally
                    .failures
                    .push(format!("POST /reservations: no answer: {error}"));
                None
            }
        };
        let Some(id) = id else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tally.booked.push(id.clone());
        for path in [
            format!("/reservations/{id}"),
            "/mypage/reservations?limit=20".to_owned(),
        ] {
            tally.requests += 1;
            match http.get(url(&path)).bearer_auth(&token).send().await {
                Ok(answer) if answer.status() == 200 => {}
                Ok(answer) => {
                    let status = answer.status();
                    let body = answer.text().await.unwrap_or_default();
                    tally.failures.push(format!("GET {path}: {status} {body}"));
                }
                Err(error) => tally
                    .failures
                    .push(format!("GET {path}: no answer: {error}")),
            }
        }
    }
    tally
}

/// The supervisor's view of one probe: whether `/health/live` answered
/// 200 within the probe's timeout.
async fn alive(probe: &reqwest::Client, deployment: &Deployment, name: &str) -> bool {
    probe
        .get(format!("{}/health/live", deployment.url_of(name)))
        .send()
        .await
        .is_ok_and(|answer| answer.status() == 200)
}

/// Probes every instance until one has missed [`MISSES_TO_REPLACE`]
/// probes in a row, replaces it (SIGKILL, start, wait until ready) and
/// names it; bounded.
async fn supervise_until_one_is_replaced(deployment: &mut Deployment) -> String {
    let probe = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .pool_max_idle_per_host(0)
        .build()
        .expect("a client");
    let mut misses: BTreeMap<String, u32> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let instances = deployment.instances();
        let answers =
            futures::future::join_all(instances.iter().map(|name| alive(&probe, deployment, name)))
                .await;
        for (name, alive) in instances.iter().zip(answers) {
            let missed = misses.entry(name.clone()).or_insert(0);
            *missed = if alive { 0 } else { *missed + 1 };
        }
        if let Some((name, _)) = misses.iter().find(|(_, n)| **n >= MISSES_TO_REPLACE) {
            let name = name.clone();
            deployment.replace(&name).await;
            return name;
        }
        assert!(
            Instant::now() < deadline,
            "no instance missed {MISSES_TO_REPLACE} probes in a row within 60 s: {misses:?}"
        );
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

#[tokio::test]
async fn a_rolling_restart_and_a_frozen_replica_under_load_fail_no_request_and_lose_no_booking() {
    set_patience(60);
    let Some(servers) = Servers::from_env("rolling restart under load") else {
        return;
    };
    // A short drain window, to see each replica say "draining" on its way
    // out. A short booking deadline: when a replica is killed hard, the
    // broker may hand a partition to the dead member in the next rebalance
    // and leave it there until that member expires; a booking whose answer
    // waits there must still end, confirmed or compensated, within the
    // test's patience (the platform's guarantee is the deadline).
    let settings = BTreeMap::from([
        ("BOXOFFICE_DRAIN_MS".to_owned(), "300".to_owned()),
        (
            "BOXOFFICE_RESERVATION__DEADLINE_SECS".to_owned(),
            "20".to_owned(),
        ),
    ]);
    let mut deployment = Deployment::start_replicated(servers, &REPLICATED, settings).await;
    let gateway = deployment.gateway.clone();
    let admin = gateway.admin_token().await;
    let movie = gateway
        .movie(&admin, "Rolling Thunder", CAPACITY as u32)
        .await;
    let mut tokens = Vec::new();
    for n in 0..4 {
        tokens.push(gateway.customer(&format!("steady-{n}")).await);
    }

    let gateways = GatewayService::new(vec![
        deployment.url_of("gateway"),
        deployment.url_of("gateway-2"),
    ]);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = tokens
        .iter()
        .map(|token| {
            tokio::spawn(customer(
                gateways.clone(),
                token.clone(),
                movie.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The rolling restart: one replica at a time, the next once the new
    // process is ready.
    let started = Instant::now();
    let mut restarted = Vec::new();
    for service in REPLICATED {
        for name in [service.to_owned(), format!("{service}-2")] {
            let url = deployment.url_of(&name);
            if service == "gateway" {
                gateways.remove(&url);
            }
            let drained = deployment.restart(&name).await;
            assert!(drained, "{name} did not answer 503 draining on SIGTERM");
            if service == "gateway" {
                gateways.add(url);
            }
            restarted.push(name);
        }
    }
    eprintln!(
        "rolling restart of {} replicas took {:.1} s",
        restarted.len(),
        started.elapsed().as_secs_f64()
    );

    // Self-healing: a frozen replica is found by its liveness probe and
    // replaced; the traffic it held goes to the other replica.
    let frozen_at = Instant::now();
    deployment.freeze("reservation-2").await;
    let replaced = supervise_until_one_is_replaced(&mut deployment).await;
    assert_eq!(
        replaced, "reservation-2",
        "only the frozen replica is replaced"
    );
    eprintln!(
        "the frozen replica was replaced and ready {:.1} s after SIGSTOP",
        frozen_at.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);

    let mut booked: Vec<(String, String)> = Vec::new();
    let mut failures = Vec::new();
    let mut requests = 0;
    for (client, token) in clients.into_iter().zip(&tokens) {
        let tally = client.await.expect("a client finishes");
        booked.extend(tally.booked.into_iter().map(|id| (token.clone(), id)));
        failures.extend(tally.failures);
        requests += tally.requests;
    }
    eprintln!(
        "{requests} client requests, {} bookings accepted, {} failed",
        booked.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "failed client requests: {failures:#?}");
    assert!(
        booked.len() >= 40,
        "the load ran throughout: {}",
        booked.len()
    );

    // The audit. Every accepted booking ends confirmed (the tickets never
    // run out here) or rejected, once.
    let ids: BTreeSet<&String> = booked.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), booked.len(), "each booking has its own id");
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    let mut status_of: BTreeMap<String, String> = BTreeMap::new();
    for (token, id) in &booked {
        let status = gateway.settled(token, id).await;
        *by_status.entry(status.clone()).or_default() += 1;
        status_of.insert(id.clone(), status);
    }
    eprintln!("bookings by status: {by_status:?}");
    assert!(
        by_status
            .keys()
            .all(|status| status == "confirmed" || status == "rejected"),
        "{by_status:?}"
    );
    let confirmed = by_status.get("confirmed").copied().unwrap_or(0) as u64;
    // No booking was stored twice by a request sent again to another replica.
    assert_eq!(
        deployment.count("reservation", "reservations").await,
        booked.len() as i64,
        "one stored booking per accepted request"
    );
    // Sold is exactly what was confirmed: nothing sold twice, nothing lost.
    eventually(|| async {
        (gateway.available(&movie).await == CAPACITY - confirmed).then_some(())
    })
    .await;
    // Each customer's page converges on their bookings' outcomes.
    for token in &tokens {
        let mine: BTreeMap<String, String> = booked
            .iter()
            .filter(|(owner, _)| owner == token)
            .map(|(_, id)| (id.clone(), status_of[id].clone()))
            .collect();
        eventually(|| async {
            let page: BTreeMap<String, String> = gateway
                .list("/mypage/reservations", token)
                .await
                .into_iter()
                .filter_map(|row| {
                    Some((
                        row["reservationId"].as_str()?.to_owned(),
                        row["status"].as_str()?.to_owned(),
                    ))
                })
                .collect();
            (page == mine).then_some(())
        })
        .await;
    }
    assert_eq!(
        deployment.dead_letters().await.values().sum::<i64>(),
        0,
        "nothing parked: {:?}",
        deployment.dead_letters().await
    );
    deployment.tear_down().await;
}
