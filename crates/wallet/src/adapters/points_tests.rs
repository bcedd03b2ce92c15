//! The points policy applied a batch at a time must end where it ends
//! applied one event at a time, on both databases; and two replicas
//! earning for the same customers at once earn each booking once.

use std::sync::Arc;

use contracts::payment::PaymentEvent;
use contracts::reservation::{Booking, PaymentMethod};
use contracts::wallet::WalletEvent;
use contracts::IntegrationEvent;
use kernel::ids::{ReservationId, UserId};
use kernel::Envelope;
use sqlx::Row;

use super::bookings::BookingsPolicy;
use super::policy::{PointsPolicy, GROUP};
use crate::domain::EarnRate;
use crate::testing::{booking, captured, charge, on, placed, postgres_url, refunded, sqlite, Db};

fn policy(db: &Db) -> PointsPolicy {
    PointsPolicy::new(db.wallets.clone(), EarnRate::percent(10))
}

/// Customers, what happened before the batch, and the batch itself.
struct Scenario {
    customers: Vec<UserId>,
    /// Delivered one at a time before the batch, on either path.
    before: Vec<Envelope>,
    /// A booking paid with points before the batch.
    spent: Booking,
    batch: Vec<Envelope>,
}

fn scenario() -> Scenario {
    let [earns_twice, round_trip, spent_it, nothing] = [(); 4].map(|()| UserId::new());
    let first = charge(earns_twice, Some(ReservationId::new()), 15_000);
    let second = charge(earns_twice, Some(ReservationId::new()), 5_000);
    let captured_then_refunded = charge(round_trip, Some(ReservationId::new()), 10_000);
    let later = charge(round_trip, Some(ReservationId::new()), 3_000);
    let earned_before = charge(spent_it, Some(ReservationId::new()), 15_000);
    let too_small = charge(nothing, Some(ReservationId::new()), 9);
    let never_earned = charge(nothing, Some(ReservationId::new()), 20_000);
    let buying_points = charge(nothing, None, 50_000);
    let first_captured = captured(&first);
    let authorised = PaymentEvent::PaymentAuthorised {
        charge: second.clone(),
        authorised_at: kernel::now(),
    }
    .to_envelope();
    Scenario {
        customers: vec![earns_twice, round_trip, spent_it, nothing],
        before: vec![captured(&earned_before)],
        spent: booking(spent_it, 1_000, PaymentMethod::Points),
        batch: vec![
            first_captured.clone(),
            authorised,
            captured(&second),
            // Redelivered, and the same fact under a new event id.
            first_captured,
            captured(&first),
            refunded(&first),
            refunded(&first),
            captured(&captured_then_refunded),
            refunded(&captured_then_refunded),
            captured(&later),
            // Spent before the batch: what is left is taken, the rest recorded short.
            refunded(&earned_before),
            captured(&too_small),
            refunded(&too_small),
            refunded(&never_earned),
            captured(&buying_points),
        ],
    }
}

/// What a customer's wallet shows: balance and entries (kind, points,
/// shortfall, booking), in the order they were recorded.
type Standing = (u64, Vec<(String, i64, i64, Option<String>)>);

async fn standing(db: &Db, customer: UserId) -> Standing {
    let rows = sqlx::query(
        "SELECT kind, points, shortfall, reservation_id FROM wallet_entries
         WHERE user_id = $1 ORDER BY id",
    )
    .bind(customer.to_string())
    .fetch_all(db.store.reader())
    .await
    .unwrap();
    let entries = rows
        .iter()
        .map(|row| {
            (
                row.get("kind"),
                row.get("points"),
                row.get("shortfall"),
                row.get("reservation_id"),
            )
        })
        .collect();
    (db.balance(customer).await, entries)
}

/// Runs the scenario with its batch delivered one event at a time or as
/// one batch, and tells where every customer ended and what was published.
async fn run(
    db: &Db,
    scenario: &Scenario,
    as_one_batch: bool,
) -> (Vec<Standing>, Vec<WalletEvent>) {
    let points = policy(db);
    for event in &scenario.before {
        db.deliver(&points, event).await;
    }
    let spend = placed(&scenario.spent);
    db.deliver(&BookingsPolicy::new(db.wallets.clone()), &spend)
        .await;
    let batch: Vec<&Envelope> = scenario.batch.iter().collect();
    if as_one_batch {
        db.deliver_batch(&points, &batch, GROUP).await;
    } else {
        for event in batch {
            db.deliver(&points, event).await;
        }
    }
    let mut standings = Vec::new();
    for customer in &scenario.customers {
        standings.push(standing(db, *customer).await);
    }
    let mut published = db.published().await;
    for event in &mut published {
        // Spent before the batch, at the clock's time: not what is compared.
        if let WalletEvent::PointsSpent { spent_at, .. } = event {
            *spent_at = time::OffsetDateTime::UNIX_EPOCH;
        }
    }
    (standings, published)
}

async fn a_batch_ends_where_one_at_a_time_ends(one_at_a_time: &Db, batched: &Db) {
    let scenario = scenario();
    let (expected, expected_events) = run(one_at_a_time, &scenario, false).await;
    let (got, got_events) = run(batched, &scenario, true).await;
    assert_eq!(got, expected);
    assert_eq!(got_events, expected_events);

    // The scenario's outcomes, so the comparison means something.
    let balances: Vec<u64> = expected.iter().map(|(balance, _)| *balance).collect();
    assert_eq!(balances, [500, 300, 0, 0]);
    let kinds = |standing: &Standing| -> Vec<String> {
        standing.1.iter().map(|entry| entry.0.clone()).collect()
    };
    assert_eq!(kinds(&expected[0]), ["earned", "earned", "withdrawn"]);
    assert_eq!(kinds(&expected[1]), ["earned", "withdrawn", "earned"]);
    assert_eq!(kinds(&expected[2]), ["earned", "spent", "withdrawn"]);
    assert_eq!(
        (expected[2].1[2].1, expected[2].1[2].2),
        (500, 1_000),
        "taken, short"
    );
    assert!(expected[3].1.is_empty());
    assert!(matches!(
        expected_events.last(),
        Some(WalletEvent::PointsWithdrawn {
            points: 500,
            shortfall: 1_000,
            balance: 0,
            ..
        })
    ));
}

#[tokio::test]
async fn a_batch_of_payments_earns_what_one_at_a_time_earns_on_sqlite() {
    a_batch_ends_where_one_at_a_time_ends(&sqlite().await, &sqlite().await).await;
}

#[tokio::test]
async fn a_batch_of_payments_earns_what_one_at_a_time_earns_on_postgres() {
    let (Some(one), Some(two)) = (
        postgres_url("points_one_at_a_time"),
        postgres_url("points_batched"),
    ) else {
        return;
    };
    a_batch_ends_where_one_at_a_time_ends(&on(&one).await, &on(&two).await).await;
}

/// Two replicas (two pools on one database) apply batches naming the same
/// customers at once, each batch in its own order, and every capture
/// reaches both (as after a rebalance): each booking earns once, no
/// update is lost, and opposite orders do not deadlock them for good.
#[tokio::test]
async fn two_replicas_batching_the_same_customers_on_postgres_earn_each_booking_once() {
    let Some(url) = postgres_url("points_replicas") else {
        return;
    };
    let replicas = [Arc::new(on(&url).await), Arc::new(on(&url).await)];
    let customers = [(); 5].map(|()| UserId::new());
    let captures: Vec<Envelope> = (0..60)
        .map(|n| {
            let customer = customers[n % customers.len()];
            captured(&charge(customer, Some(ReservationId::new()), 1_000))
        })
        .collect();
    let mut racing = tokio::task::JoinSet::new();
    for (r, replica) in replicas.iter().enumerate() {
        for chunk in 0..6 {
            let replica = replica.clone();
            let mut batch: Vec<Envelope> = captures[chunk * 10..chunk * 10 + 10].to_vec();
            if r == 1 {
                batch.reverse();
            }
            racing.spawn(async move {
                let points = policy(&replica);
                let batch: Vec<&Envelope> = batch.iter().collect();
                replica.deliver_batch(&points, &batch, GROUP).await;
            });
        }
    }
    while let Some(done) = racing.join_next().await {
        done.unwrap();
    }
    let db = &replicas[0];
    for customer in customers {
        let (balance, entries) = standing(db, customer).await;
        assert_eq!((balance, entries.len()), (1_200, 12), "{customer}");
    }
    let earned = db
        .published()
        .await
        .into_iter()
        .filter(|event| matches!(event, WalletEvent::PointsEarned { .. }))
        .count();
    assert_eq!(earned, 60);
}
