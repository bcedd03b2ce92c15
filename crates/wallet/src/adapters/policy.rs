//! The points policy: a booking's captured card payment earns points, its
//! refund takes them back. Payments that are not for a booking (buying
//! points) and the other payment steps change nothing here; a booking paid
//! with points has no card payment, so it earns nothing either.

use async_trait::async_trait;
use contracts::payment::PaymentEvent;
use contracts::IntegrationEvent;
use kernel::ids::{ReservationId, UserId};
use kernel::Envelope;
use runtime::consumer::{handling, EventHandler};
use runtime::store::Tx;

use time::OffsetDateTime;

use super::sql::{Ledger, Wallets};
use crate::domain::{EarnRate, Points};

pub struct PointsPolicy {
    wallets: Wallets,
    rate: EarnRate,
}

impl PointsPolicy {
    pub fn new(wallets: Wallets, rate: EarnRate) -> PointsPolicy {
        PointsPolicy { wallets, rate }
    }
}

/// The consumer group that earns points.
pub const GROUP: &str = "wallet.points";

/// The events this handler acts on (card payments that earn points or take them back); the others pass it by.
const PAYMENT_STEPS: &[&str] = &["boxoffice.payment.captured", "boxoffice.payment.refunded"];

/// A payment step this policy acts on, as read from its event.
enum Step {
    Earn {
        user: UserId,
        booking: ReservationId,
        points: Points,
        at: OffsetDateTime,
    },
    Withdraw {
        user: UserId,
        booking: ReservationId,
        at: OffsetDateTime,
    },
}

impl PointsPolicy {
    /// What `event` asks of the wallets, if anything: card payments for a
    /// booking earn or give back; buying points and the other payment
    /// steps change nothing here.
    fn step(&self, event: &Envelope) -> anyhow::Result<Option<Step>> {
        Ok(match PaymentEvent::from_envelope(event)? {
            Some(PaymentEvent::PaymentCaptured {
                charge,
                captured_at,
            }) => charge.reservation_id.map(|booking| Step::Earn {
                user: charge.user_id,
                booking,
                points: self.rate.points_for(charge.amount),
                at: captured_at,
            }),
            Some(PaymentEvent::PaymentRefunded {
                charge,
                refunded_at,
            }) => charge.reservation_id.map(|booking| Step::Withdraw {
                user: charge.user_id,
                booking,
                at: refunded_at,
            }),
            Some(
                PaymentEvent::PaymentAuthorised { .. }
                | PaymentEvent::PaymentDeclined { .. }
                | PaymentEvent::PaymentVoided { .. },
            )
            | None => None,
        })
    }

    fn apply(&self, ledger: &mut Ledger, event: &Envelope) -> anyhow::Result<()> {
        match self.step(event)? {
            Some(Step::Earn {
                user,
                booking,
                points,
                at,
            }) => ledger.earn(user, booking, points, at, event),
            Some(Step::Withdraw { user, booking, at }) => ledger.withdraw(user, booking, at, event),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl EventHandler for PointsPolicy {
    fn wants(&self, event: &Envelope) -> bool {
        PAYMENT_STEPS.contains(&event.event_type.as_str())
    }

    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> anyhow::Result<()> {
        self.handle_batch(tx, &[event], GROUP).await
    }

    /// The batch's wallets and entries are read at once, each event moves
    /// them on in memory in its own span, and the batch is written at once.
    async fn handle_batch(
        &self,
        tx: &mut Tx,
        events: &[&Envelope],
        group: &str,
    ) -> anyhow::Result<()> {
        let (mut opening, mut users, mut bookings) = (Vec::new(), Vec::new(), Vec::new());
        // Unreadable events are reported by `apply`, in their turn.
        for step in events
            .iter()
            .filter_map(|event| self.step(event).ok().flatten())
        {
            let (user, booking) = match step {
                Step::Earn {
                    user,
                    booking,
                    points,
                    ..
                } => {
                    // A wallet is opened by the first points earned into it.
                    if !points.is_zero() {
                        opening.push(user);
                    }
                    (user, booking)
                }
                Step::Withdraw { user, booking, .. } => (user, booking),
            };
            users.push(user);
            bookings.push(booking);
        }
        let mut ledger = Ledger::default();
        self.wallets
            .read_into(tx, &mut ledger, opening, users, bookings)
            .await?;
        for event in events {
            handling(group, event, || self.apply(&mut ledger, event))?;
        }
        self.wallets.write(tx, ledger).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_event_it_wants_is_one_that_is_published() {
        for event_type in super::PAYMENT_STEPS {
            assert!(contracts::is_published_type(event_type), "{event_type}");
        }
    }

    /// `contracts/consumers/wallet.json` states what this context reads
    /// from each event it wants, checked against the producers' schemas
    /// by the contracts crate; it must name exactly these events.
    #[test]
    fn its_published_expectations_name_exactly_the_events_it_wants() {
        let expectations = contracts::expectations::Consumer::parse(include_str!(
            "../../../../contracts/consumers/wallet.json"
        ))
        .unwrap();
        assert_eq!(
            expectations.event_types_of("boxoffice.payment"),
            super::PAYMENT_STEPS.iter().copied().collect()
        );
    }

    use contracts::payment::Charge;
    use contracts::wallet::WalletEvent;
    use kernel::ids::{ReservationId, UserId};
    use runtime::store::sqlite_url;
    use runtime::Store;
    use sqlx::Row;

    use super::*;
    use crate::adapters::bookings::BookingsPolicy;
    use crate::adapters::sql::{EntryKind, MIGRATIONS};
    use crate::domain::Points;
    use crate::testing::{captured, refunded};
    use contracts::reservation::PaymentMethod;

    struct Given {
        _dir: tempfile::TempDir,
        store: Store,
        wallets: Wallets,
        policy: PointsPolicy,
        user: UserId,
    }

    async fn given() -> Given {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&sqlite_url(dir.path(), "wallet"), MIGRATIONS)
            .await
            .unwrap();
        let wallets = Wallets::new(store.clone());
        Given {
            _dir: dir,
            policy: PointsPolicy::new(wallets.clone(), EarnRate::percent(10)),
            wallets,
            store,
            user: UserId::new(),
        }
    }

    /// A card payment for a booking.
    fn charge(user: UserId, booking: ReservationId, amount: i64) -> Charge {
        crate::testing::charge(user, Some(booking), amount)
    }

    impl Given {
        /// What the consumer loop does for one event: prepare, handle, commit.
        async fn deliver(&self, event: &Envelope) {
            let mut tx = self.store.begin().await.unwrap();
            self.policy.prepare(&mut tx, &[event]).await.unwrap();
            self.policy.handle(&mut tx, event).await.unwrap();
            self.store.commit(tx).await.unwrap();
        }

        async fn balance(&self) -> u64 {
            self.wallets.balance(self.user).await.unwrap().value()
        }

        async fn published(&self) -> Vec<WalletEvent> {
            let rows = sqlx::query("SELECT envelope FROM outbox ORDER BY seq")
                .fetch_all(self.store.reader())
                .await
                .unwrap();
            rows.iter()
                .map(|row| {
                    let text: String = row.try_get("envelope").unwrap();
                    let envelope: Envelope = serde_json::from_str(&text).unwrap();
                    WalletEvent::from_envelope(&envelope).unwrap().unwrap()
                })
                .collect()
        }

        /// Pays a booking of `points` with points, as the bookings policy does.
        async fn spend(&self, points: i64) {
            let booking = crate::testing::booking(self.user, points, PaymentMethod::Points);
            let policy = BookingsPolicy::new(self.wallets.clone());
            let placed = crate::testing::placed(&booking);
            let mut tx = self.store.begin().await.unwrap();
            policy.prepare(&mut tx, &[&placed]).await.unwrap();
            policy.handle(&mut tx, &placed).await.unwrap();
            self.store.commit(tx).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_captured_payment_earns_ten_percent_and_announces_it() {
        let given = given().await;
        let reservation = ReservationId::new();
        let capture = captured(&charge(given.user, reservation, 15_000));
        given.deliver(&capture).await;

        assert_eq!(given.balance().await, 1_500);
        let published = given.published().await;
        assert!(matches!(
            published.as_slice(),
            [WalletEvent::PointsEarned { points: 1_500, balance: 1_500, reservation_id, .. }]
                if *reservation_id == reservation
        ));
        let entries = given
            .wallets
            .entries(given.user, None, 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].kind, EntryKind::Earned);
        assert_eq!(entries[0].reservation_id, Some(reservation));
    }

    #[tokio::test]
    async fn a_redelivered_capture_earns_once() {
        let given = given().await;
        let charge = charge(given.user, ReservationId::new(), 15_000);
        let capture = captured(&charge);
        given.deliver(&capture).await;
        given.deliver(&capture).await;
        // The same fact re-published under a new event id.
        given.deliver(&captured(&charge)).await;

        assert_eq!(given.balance().await, 1_500);
        assert_eq!(given.published().await.len(), 1);
    }

    #[tokio::test]
    async fn a_payment_too_small_to_earn_a_point_records_nothing() {
        let given = given().await;
        let charge = charge(given.user, ReservationId::new(), 9);
        given.deliver(&captured(&charge)).await;
        given.deliver(&refunded(&charge)).await;

        assert_eq!(given.balance().await, 0);
        assert!(given.published().await.is_empty());
        let entries = given
            .wallets
            .entries(given.user, None, 10)
            .await
            .unwrap()
            .unwrap();
        assert!(entries.is_empty());
    }

    #[tokio::test]
    async fn a_payment_for_no_booking_earns_nothing() {
        let given = given().await;
        let mut charge = charge(given.user, ReservationId::new(), 15_000);
        charge.reservation_id = None;
        given.deliver(&captured(&charge)).await;

        assert_eq!(given.balance().await, 0);
        assert!(given.published().await.is_empty());
    }

    #[tokio::test]
    async fn a_refund_withdraws_what_the_booking_earned_once() {
        let given = given().await;
        let first = charge(given.user, ReservationId::new(), 15_000);
        let second = charge(given.user, ReservationId::new(), 5_000);
        given.deliver(&captured(&first)).await;
        given.deliver(&captured(&second)).await;
        let refund = refunded(&first);
        given.deliver(&refund).await;
        given.deliver(&refund).await;
        given.deliver(&refunded(&first)).await;

        assert_eq!(given.balance().await, 500);
        let withdrawn: Vec<_> = given
            .published()
            .await
            .into_iter()
            .filter(|event| matches!(event, WalletEvent::PointsWithdrawn { .. }))
            .collect();
        assert!(matches!(
            withdrawn.as_slice(),
            [WalletEvent::PointsWithdrawn {
                points: 1_500,
                shortfall: 0,
                balance: 500,
                ..
            }]
        ));
    }

    #[tokio::test]
    async fn a_refund_after_the_points_were_spent_withdraws_what_is_left_and_records_the_shortfall()
    {
        let given = given().await;
        let charge = charge(given.user, ReservationId::new(), 15_000);
        given.deliver(&captured(&charge)).await;
        given.spend(1_000).await;
        given.deliver(&refunded(&charge)).await;

        assert_eq!(given.balance().await, 0);
        assert!(matches!(
            given.published().await.last(),
            Some(WalletEvent::PointsWithdrawn {
                points: 500,
                shortfall: 1_000,
                balance: 0,
                ..
            })
        ));
        let entries = given
            .wallets
            .entries(given.user, None, 10)
            .await
            .unwrap()
            .unwrap();
        let kinds: Vec<_> = entries.iter().map(|entry| entry.kind).collect();
        assert_eq!(
            kinds,
            [EntryKind::Withdrawn, EntryKind::Spent, EntryKind::Earned],
            "newest first"
        );
        assert_eq!(entries[0].shortfall, Points::new(1_000));
    }

    #[tokio::test]
    async fn a_refund_of_a_booking_that_earned_nothing_records_nothing() {
        let given = given().await;
        given
            .deliver(&refunded(&charge(given.user, ReservationId::new(), 15_000)))
            .await;

        assert_eq!(given.balance().await, 0);
        assert!(given.published().await.is_empty());
    }

    #[tokio::test]
    async fn the_database_refuses_a_negative_balance() {
        let given = given().await;
        given
            .deliver(&captured(&charge(given.user, ReservationId::new(), 1_000)))
            .await;
        let written = sqlx::query("UPDATE wallets SET balance = -1 WHERE user_id = $1")
            .bind(given.user.to_string())
            .execute(given.store.reader())
            .await;
        assert!(written.is_err());
        assert_eq!(given.balance().await, 100);
    }
}
