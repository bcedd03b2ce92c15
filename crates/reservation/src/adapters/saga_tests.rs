//! The saga policy applying a batch of answers at once must end exactly
//! where applying them one at a time ends: the same reservations, the same
//! versions, the same events in the same order. On SQLite in a temp dir,
//! and on PostgreSQL when `BOXOFFICE_TEST_POSTGRES` names a server (CI
//! always does).

use contracts::catalog::{CapacityKind, CatalogEvent, InventoryRejection, ListingKind};
use contracts::reservation::PaymentMethod;
use contracts::wallet::WalletEvent;
use contracts::IntegrationEvent;
use kernel::ids::{ListingId, ReservationId, UserId};
use kernel::{Envelope, Money};
use runtime::consumer::EventHandler;
use runtime::Store;
use serde_json::Value;
use sqlx::Row;

use super::policy::SagaPolicy;
use super::sql::{ReservationStore, MIGRATIONS};
use crate::app::Reservations;
use crate::domain::{self, Command, ListingSnapshot, Order, Quantity, Reservation};

struct Service {
    _dir: Option<tempfile::TempDir>,
    _log_dir: tempfile::TempDir,
    store: Store,
    policy: SagaPolicy,
}

impl Service {
    async fn sqlite() -> Service {
        let dir = tempfile::tempdir().unwrap();
        let url = runtime::store::sqlite_url(dir.path(), "reservation");
        Service::on(&url, Some(dir)).await
    }

    async fn on(url: &str, dir: Option<tempfile::TempDir>) -> Service {
        let store = Store::connect(url, MIGRATIONS).await.unwrap();
        let log_dir = tempfile::tempdir().unwrap();
        let bus = bus_embedded::EmbeddedBus::open(&log_dir.path().join("bus.db"))
            .await
            .unwrap();
        // Nothing here calls catalog or payment: the answers are applied,
        // no booking is placed through them.
        let reservations = Reservations::new(
            ReservationStore::new(store.clone()),
            super::catalog_client::CatalogClient::new("http://127.0.0.1:9"),
            super::payment_client::PaymentClient::new("http://127.0.0.1:9", Default::default()),
            std::sync::Arc::new(bus),
            std::time::Duration::from_secs(120),
            true,
        );
        Service {
            _dir: dir,
            _log_dir: log_dir,
            store,
            policy: SagaPolicy::new(reservations),
        }
    }

    async fn insert(&self, reservations: &[Reservation]) {
        let store = ReservationStore::new(self.store.clone());
        let mut tx = self.store.begin().await.unwrap();
        for reservation in reservations {
            assert!(store.insert(&mut tx, reservation, None).await.unwrap());
        }
        tx.commit().await.unwrap();
    }

    /// Every reservation as stored (status, reason, flags, version), and
    /// the outbox's events without their ids and times, in order.
    async fn outcome(&self) -> (Vec<Value>, Vec<Value>) {
        let rows = sqlx::query(
            "SELECT id, status, reason, cancel_requested, held, paid, version
             FROM reservations ORDER BY id",
        )
        .fetch_all(self.store.reader())
        .await
        .unwrap();
        let reservations = rows
            .iter()
            .map(|row| {
                serde_json::json!([
                    row.get::<String, _>("id"),
                    row.get::<String, _>("status"),
                    row.get::<Option<String>, _>("reason"),
                    row.get::<i64, _>("cancel_requested"),
                    row.get::<i64, _>("held"),
                    row.get::<i64, _>("paid"),
                    row.get::<i64, _>("version"),
                ])
            })
            .collect();
        let rows = sqlx::query("SELECT envelope FROM outbox ORDER BY seq")
            .fetch_all(self.store.reader())
            .await
            .unwrap();
        let events = rows
            .iter()
            .map(|row| {
                let envelope: Envelope =
                    serde_json::from_str(&row.get::<String, _>("envelope")).unwrap();
                serde_json::json!([
                    envelope.event_type,
                    envelope.subject,
                    envelope.subjectversion,
                    envelope.causationid.map(|id| id.to_string()),
                    without_times(envelope.data),
                ])
            })
            .collect();
        (reservations, events)
    }
}

/// `value` without the fields that say when (`…At`): they are the moment
/// each run applied the answer.
fn without_times(value: Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .filter(|(name, _)| !name.ends_with("At"))
                .map(|(name, value)| (name, without_times(value)))
                .collect(),
        ),
        other => other,
    }
}

fn listing(id: ListingId) -> ListingSnapshot {
    ListingSnapshot {
        id,
        kind: ListingKind::Movie,
        title: "LALALand".into(),
        price: Money::parse(12_000).unwrap(),
        seats: None,
        sections: Vec::new(),
        withdrawn: false,
    }
}

fn pending(listing_id: ListingId, payment_method: PaymentMethod) -> Reservation {
    let events = domain::decide(
        None,
        Command::Place {
            id: ReservationId::new(),
            user_id: UserId::new(),
            listing: listing(listing_id),
            order: Order::Tickets(Quantity::parse(2).unwrap()),
            payment_method,
            at: kernel::now(),
            deadline: kernel::now() + time::Duration::minutes(2),
        },
    )
    .unwrap();
    events.iter().fold(None, domain::apply).unwrap()
}

fn reserved(r: &Reservation) -> Envelope {
    CatalogEvent::TicketsReserved {
        reservation_id: r.id,
        listing_id: r.listing.id,
        quantity: 2,
        seats: Vec::new(),
        available: 10,
    }
    .to_envelope()
}

fn rejected(r: &Reservation) -> Envelope {
    CatalogEvent::InventoryRejected {
        reservation_id: r.id,
        listing_id: r.listing.id,
        reason: InventoryRejection::SoldOut {
            requested: 2,
            remaining: 1,
        },
    }
    .to_envelope()
}

fn spent(r: &Reservation) -> Envelope {
    WalletEvent::PointsSpent {
        user_id: r.user_id,
        reservation_id: r.id,
        points: 24_000,
        balance: 1_000,
        spent_at: kernel::now(),
    }
    .to_envelope()
}

fn refused(r: &Reservation) -> Envelope {
    WalletEvent::PointsRefused {
        user_id: r.user_id,
        reservation_id: r.id,
        points: 24_000,
        balance: 10,
        reason: "not enough points".into(),
        refused_at: kernel::now(),
    }
    .to_envelope()
}

fn withdrawn(listing_id: ListingId) -> Envelope {
    CatalogEvent::ListingWithdrawn {
        listing_id,
        cancel_reservations: true,
        withdrawn_at: kernel::now(),
    }
    .to_envelope()
}

fn registered(listing_id: ListingId) -> Envelope {
    CatalogEvent::ListingRegistered {
        listing_id,
        kind: ListingKind::Movie,
        title: "Dune".into(),
        description: String::new(),
        price: Money::parse(9_000).unwrap(),
        capacity: CapacityKind::Quota { total: 40 },
        starts_at: None,
        color: None,
        number: None,
        registered_at: kernel::now(),
    }
    .to_envelope()
}

/// Holds confirmed and refused, a points booking held and paid in the same
/// batch (two versions on at once) and one refused its points, an answer
/// about a booking this service never stored, a booking answered twice, a
/// listing withdrawn with a booking the batch just confirmed and one still
/// pending, and a new listing: one at a time into `one`, as one batch
/// into `other`.
async fn a_batch_ends_where_one_answer_at_a_time_ends(one: &Service, other: &Service) {
    let movie = ListingId::new();
    let withdrawn_movie = ListingId::new();
    let card = pending(movie, PaymentMethod::Card);
    let sold_out = pending(movie, PaymentMethod::Card);
    let by_points = pending(movie, PaymentMethod::Points);
    let points_refused = pending(movie, PaymentMethod::Points);
    let kept_pending = pending(withdrawn_movie, PaymentMethod::Card);
    let confirmed_then_withdrawn = pending(withdrawn_movie, PaymentMethod::Card);
    let stored = [
        card.clone(),
        sold_out.clone(),
        by_points.clone(),
        points_refused.clone(),
        kept_pending.clone(),
        confirmed_then_withdrawn.clone(),
    ];
    let never_stored = pending(movie, PaymentMethod::Card);
    let events = [
        reserved(&card),
        rejected(&sold_out),
        reserved(&by_points),
        reserved(&never_stored),
        spent(&by_points),
        reserved(&confirmed_then_withdrawn),
        reserved(&points_refused),
        refused(&points_refused),
        reserved(&card),
        withdrawn(withdrawn_movie),
        registered(ListingId::new()),
    ];
    one.insert(&stored).await;
    other.insert(&stored).await;

    for event in &events {
        let mut tx = one.store.begin().await.unwrap();
        one.policy.handle(&mut tx, event).await.unwrap();
        tx.commit().await.unwrap();
    }
    let batch: Vec<&Envelope> = events.iter().collect();
    let mut tx = other.store.begin().await.unwrap();
    other
        .policy
        .handle_batch(&mut tx, &batch, super::policy::GROUP)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let (reservations, announced) = one.outcome().await;
    assert_eq!(
        (reservations.clone(), announced.clone()),
        other.outcome().await
    );
    let status = |r: &Reservation| {
        reservations
            .iter()
            .find(|row| row[0] == r.id.to_string())
            .map(|row| {
                (
                    row[1].as_str().unwrap().to_owned(),
                    row[6].as_i64().unwrap(),
                )
            })
            .unwrap()
    };
    // The scenario did what it says, so the comparison above means something.
    assert_eq!(status(&card), ("confirmed".into(), 2), "answered twice");
    assert_eq!(status(&sold_out), ("rejected".into(), 2));
    assert_eq!(
        status(&by_points),
        ("confirmed".into(), 3),
        "held, then paid"
    );
    assert_eq!(status(&points_refused), ("rejected".into(), 3));
    assert_eq!(status(&confirmed_then_withdrawn), ("cancelled".into(), 3));
    // Still waiting for catalog: cancelled once catalog answers.
    assert_eq!(status(&kept_pending), ("pending".into(), 2));
    assert_eq!(
        reservations.len(),
        stored.len(),
        "nothing stored for unknown answers"
    );
    let types: Vec<&str> = announced.iter().map(|e| e[0].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "boxoffice.reservation.confirmed",
            "boxoffice.reservation.rejected",
            "boxoffice.reservation.confirmed",
            "boxoffice.reservation.confirmed",
            "boxoffice.reservation.rejected",
            "boxoffice.reservation.cancelled",
        ],
        "{announced:#?}"
    );
}

#[tokio::test]
async fn a_batch_of_saga_answers_ends_where_one_at_a_time_ends_on_sqlite() {
    a_batch_ends_where_one_answer_at_a_time_ends(
        &Service::sqlite().await,
        &Service::sqlite().await,
    )
    .await;
}

#[tokio::test]
async fn a_batch_of_saga_answers_ends_where_one_at_a_time_ends_on_postgres() {
    let (Some(one), Some(other)) = (postgres("one_by_one"), postgres("batched")) else {
        return;
    };
    a_batch_ends_where_one_answer_at_a_time_ends(
        &Service::on(&one, None).await,
        &Service::on(&other, None).await,
    )
    .await;
}

/// New bookings are stored a group at a time: one statement, which tells
/// which were stored. A key used before, or twice within the group (two
/// clicks in one group commit), stores the first booking only.
async fn a_group_of_placements_stores_each_idempotency_key_once(service: &Service) {
    let store = ReservationStore::new(service.store.clone());
    let listing_id = ListingId::new();
    let [first, mut repeated, mut again, mut twice, plain, other] =
        [(); 6].map(|()| pending(listing_id, PaymentMethod::Card));
    for same_customer in [&mut repeated, &mut again, &mut twice] {
        same_customer.user_id = first.user_id;
    }

    let mut tx = service.store.begin().await.unwrap();
    assert!(store
        .insert(&mut tx, &first, Some("click-1"))
        .await
        .unwrap());
    let stored = store
        .insert_all(
            &mut tx,
            &[
                (&repeated, Some("click-1")),
                (&plain, None),
                (&again, Some("click-2")),
                (&other, Some("click-2")),
                (&twice, Some("click-2")),
            ],
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // `other` is another customer's: keys are per customer.
    assert_eq!(stored, [false, true, true, true, false]);
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reservations")
        .fetch_one(service.store.reader())
        .await
        .unwrap();
    assert_eq!(count, 4);
}

#[tokio::test]
async fn a_group_of_placements_stores_each_idempotency_key_once_on_sqlite() {
    a_group_of_placements_stores_each_idempotency_key_once(&Service::sqlite().await).await;
}

#[tokio::test]
async fn a_group_of_placements_stores_each_idempotency_key_once_on_postgres() {
    let Some(url) = postgres("placements") else {
        return;
    };
    a_group_of_placements_stores_each_idempotency_key_once(&Service::on(&url, None).await).await;
}

/// A database of its own on the PostgreSQL server `BOXOFFICE_TEST_POSTGRES`
/// names; `None` without one (CI always has one).
fn postgres(purpose: &str) -> Option<String> {
    runtime::store::test_postgres_url("reservation", purpose)
}
