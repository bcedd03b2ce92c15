//! My page's read model on each store: events projected per second, and
//! read latency (a customer's list and one booking in full) while events
//! are being projected. Prints numbers; asserts nothing.
//!
//! ```sh
//! cargo run --release -p mypage --example read_model_stores -- \
//!     [redis://127.0.0.1:6379] [postgres://postgres@127.0.0.1:5432/bench_mypage]
//! ```
//!
//! SQLite and redb always run (in a temporary directory); Redis and
//! PostgreSQL when their urls are given.

use std::sync::Arc;
use std::time::{Duration, Instant};

use contracts::catalog::{CapacityKind, CatalogEvent, ListingKind};
use contracts::payment::{Charge, PaymentEvent};
use contracts::reservation::{Booking, PaymentMethod, ReservationEvent};
use contracts::wallet::WalletEvent;
use contracts::IntegrationEvent;
use hdrhistogram::Histogram;
use kernel::ids::{ListingId, PaymentId, ReservationId, UserId};
use kernel::{Envelope, Money};
use mypage::{KvReservations, MyReservations, Projection, Projector, View};
use runtime::consumer::{EventHandler, UnitOfWork};

const USERS: usize = 1_000;
const BOOKINGS_PER_USER: usize = 4;
const LISTINGS: usize = 20;
const BATCH: usize = 256;
const READERS: usize = 8;

struct Customer {
    user: UserId,
    bookings: Vec<ReservationId>,
}

/// Every booking's life: placed, authorised, confirmed, captured, points
/// earned; in rounds, so a customer's bookings interleave with others'.
fn events(customers: &mut Vec<Customer>, listings: &[ListingId], round: usize) -> Vec<Envelope> {
    let mut out = Vec::new();
    if round == 0 {
        for (n, listing) in listings.iter().enumerate() {
            out.push(
                CatalogEvent::ListingRegistered {
                    listing_id: *listing,
                    kind: ListingKind::Movie,
                    title: format!("Movie {n}"),
                    description: String::new(),
                    price: Money::parse(7_500).unwrap(),
                    capacity: CapacityKind::Quota { total: 100_000 },
                    starts_at: None,
                    color: None,
                    number: None,
                    registered_at: kernel::now(),
                }
                .to_envelope(),
            );
        }
        customers.extend((0..USERS).map(|_| Customer {
            user: UserId::new(),
            bookings: Vec::new(),
        }));
    }
    for (n, customer) in customers.iter_mut().enumerate() {
        let booking = Booking {
            reservation_id: ReservationId::new(),
            user_id: customer.user,
            listing_id: listings[(n + round) % listings.len()],
            listing_title: "Movie".into(),
            listing_kind: ListingKind::Movie,
            quantity: 2,
            seats: Vec::new(),
            amount: Money::parse(15_000).unwrap(),
            payment_method: PaymentMethod::Card,
        };
        customer.bookings.push(booking.reservation_id);
        let charge = Charge {
            payment_id: PaymentId::new(),
            user_id: customer.user,
            amount: booking.amount,
            reservation_id: Some(booking.reservation_id),
        };
        let now = kernel::now();
        out.push(
            ReservationEvent::ReservationPlaced {
                booking: booking.clone(),
                placed_at: now,
            }
            .to_envelope()
            .at_version(1),
        );
        out.push(
            PaymentEvent::PaymentAuthorised {
                charge: charge.clone(),
                authorised_at: now,
            }
            .to_envelope(),
        );
        out.push(
            ReservationEvent::ReservationConfirmed {
                booking: booking.clone(),
                confirmed_at: now,
            }
            .to_envelope()
            .at_version(2),
        );
        out.push(
            PaymentEvent::PaymentCaptured {
                charge,
                captured_at: now,
            }
            .to_envelope(),
        );
        out.push(
            WalletEvent::PointsEarned {
                user_id: customer.user,
                reservation_id: booking.reservation_id,
                points: 1_500,
                balance: 1_500,
                earned_at: now,
            }
            .to_envelope(),
        );
    }
    out
}

/// Applies `events` as the consumer does: a unit of work per batch, inbox
/// first, then each fresh event.
async fn project<S, V>(store: &S, projector: &Projector<V>, events: &[Envelope])
where
    S: UnitOfWork,
    V: Projection<Tx = S::Tx>,
{
    for batch in events.chunks(BATCH) {
        let ids: Vec<_> = batch.iter().map(|event| event.id).collect();
        let mut tx = store.begin().await.unwrap();
        let fresh = store
            .record_new(&mut tx, "mypage.projection", &ids)
            .await
            .unwrap();
        for event in batch.iter().filter(|event| fresh.contains(&event.id)) {
            projector.handle(&mut tx, event).await.unwrap();
        }
        store.commit(tx).await.unwrap();
    }
}

async fn run<S, V>(name: &str, store: S, view: V)
where
    S: UnitOfWork,
    V: Projection<Tx = S::Tx>,
{
    let projector = Projector::new(view.clone());
    let listings: Vec<ListingId> = (0..LISTINGS).map(|_| ListingId::new()).collect();
    let mut customers = Vec::new();
    let mut rounds: Vec<Vec<Envelope>> = (0..BOOKINGS_PER_USER)
        .map(|round| events(&mut customers, &listings, round))
        .collect();
    let last = rounds.pop().unwrap();
    let first: Vec<Envelope> = rounds.into_iter().flatten().collect();

    let started = Instant::now();
    project(&store, &projector, &first).await;
    let rate = first.len() as f64 / started.elapsed().as_secs_f64();

    // Readers ask for random customers' pages while the last round is
    // projected (and a while after, if projecting ends first).
    let view: Arc<dyn View> = Arc::new(view);
    let customers = Arc::new(customers);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut readers = tokio::task::JoinSet::new();
    for reader in 0..READERS {
        let (view, customers) = (view.clone(), customers.clone());
        readers.spawn(async move {
            let mut histogram = Histogram::<u64>::new(3).unwrap();
            let mut n = reader * 7919;
            while Instant::now() < deadline {
                n = n.wrapping_mul(31).wrapping_add(17);
                let customer = &customers[n % customers.len()];
                let asked = Instant::now();
                let page = view
                    .for_user(&customer.user.to_string(), None, 20)
                    .await
                    .unwrap()
                    .unwrap();
                let detail = view
                    .find(customer.bookings[n % (BOOKINGS_PER_USER - 1)], None)
                    .await
                    .unwrap();
                histogram
                    .record(asked.elapsed().as_micros() as u64)
                    .unwrap();
                assert!(!page.is_empty() && detail.is_some());
            }
            histogram
        });
    }
    let loaded = Instant::now();
    project(&store, &projector, &last).await;
    let loaded_rate = last.len() as f64 / loaded.elapsed().as_secs_f64();
    let mut reads = Histogram::<u64>::new(3).unwrap();
    while let Some(histogram) = readers.join_next().await {
        reads.add(histogram.unwrap()).unwrap();
    }
    println!(
        "| {name} | {:.0} | {:.0} | {} | {:.2} | {:.2} |",
        rate,
        loaded_rate,
        reads.len(),
        reads.value_at_quantile(0.5) as f64 / 1000.0,
        reads.value_at_quantile(0.99) as f64 / 1000.0,
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    println!(
        "{} events alone, then {} while {READERS} readers read (list + one booking in full)",
        USERS * 5 * (BOOKINGS_PER_USER - 1) + LISTINGS,
        USERS * 5
    );
    println!("| store | events/s | events/s under reads | reads | read p50 ms | read p99 ms |");
    println!("|---|---|---|---|---|---|");
    let sqlite = runtime::Store::connect(
        &runtime::store::sqlite_url(dir.path(), "mypage"),
        mypage::MIGRATIONS,
    )
    .await?;
    run("SQLite", sqlite.clone(), MyReservations::new(sqlite)).await;
    let redb = kv::KvStore::connect(
        &format!("redb://{}", dir.path().join("mypage.redb").display()),
        "mypage",
    )
    .await?;
    run("redb", redb.clone(), KvReservations::new(redb)).await;
    for url in std::env::args().skip(1) {
        if url.starts_with("redis") {
            let redis = kv::KvStore::connect(&url, "mypage-bench").await?;
            redis.clear().await?;
            run("Redis", redis.clone(), KvReservations::new(redis.clone())).await;
            redis.clear().await?;
        } else {
            let postgres = runtime::Store::connect(&url, mypage::MIGRATIONS).await?;
            run(
                "PostgreSQL",
                postgres.clone(),
                MyReservations::new(postgres),
            )
            .await;
        }
    }
    Ok(())
}
