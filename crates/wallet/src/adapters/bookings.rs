//! The bookings policy, the wallet's step of the booking saga: a booking
//! placed to be paid with points spends them (`PointsSpent`) or is refused
//! (`PointsRefused`, nothing deducted); one rejected, expired or cancelled
//! after its points were spent gets them back (`PointsRefunded`), once.
//! Bookings paid by card, free ones, confirmations and returns change
//! nothing here.

use async_trait::async_trait;
use contracts::reservation::{Booking, PaymentMethod, ReservationEvent};
use contracts::IntegrationEvent;
use kernel::{Envelope, Money};
use runtime::consumer::EventHandler;
use runtime::store::Tx;

use super::sql::Wallets;
use crate::domain::Points;

pub struct BookingsPolicy {
    wallets: Wallets,
}

impl BookingsPolicy {
    pub fn new(wallets: Wallets) -> BookingsPolicy {
        BookingsPolicy { wallets }
    }
}

/// Whether the booking is paid with points at all.
fn paid_with_points(booking: &Booking) -> bool {
    booking.payment_method == PaymentMethod::Points && booking.amount > Money::ZERO
}

/// Whether the event moves the booking's points.
fn moves_points(event: &ReservationEvent) -> bool {
    match event {
        ReservationEvent::ReservationPlaced { .. }
        | ReservationEvent::ReservationRejected { .. }
        | ReservationEvent::ReservationExpired { .. }
        | ReservationEvent::ReservationCancelled { .. } => paid_with_points(event.booking()),
        ReservationEvent::ReservationConfirmed { .. }
        | ReservationEvent::ReservationReturned { .. } => false,
    }
}

/// The events this handler acts on (bookings to pay with points, and those that did not go ahead); the others pass it by.
const BOOKING_STEPS: &[&str] = &[
    "boxoffice.reservation.placed",
    "boxoffice.reservation.rejected",
    "boxoffice.reservation.expired",
    "boxoffice.reservation.cancelled",
];

#[async_trait]
impl EventHandler for BookingsPolicy {
    fn wants(&self, event: &Envelope) -> bool {
        BOOKING_STEPS.contains(&event.event_type.as_str())
    }

    async fn prepare(&self, tx: &mut Tx, events: &[&Envelope]) -> anyhow::Result<()> {
        let users = events
            .iter()
            // Unreadable ones are reported by `handle`, one at a time.
            .filter_map(|event| ReservationEvent::from_envelope(event).ok().flatten())
            .filter(moves_points)
            .map(|event| event.booking().user_id)
            .collect();
        self.wallets.lock_existing(tx, users).await
    }

    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> anyhow::Result<()> {
        let Some(reservation_event) = ReservationEvent::from_envelope(event)? else {
            return Ok(());
        };
        if !moves_points(&reservation_event) {
            return Ok(());
        }
        let booking = reservation_event.booking();
        match reservation_event {
            ReservationEvent::ReservationPlaced { .. } => {
                self.wallets
                    .pay_for_booking(
                        tx,
                        booking.user_id,
                        booking.reservation_id,
                        Points::for_amount(booking.amount),
                        event,
                    )
                    .await
            }
            ReservationEvent::ReservationRejected { .. }
            | ReservationEvent::ReservationExpired { .. }
            | ReservationEvent::ReservationCancelled { .. } => {
                self.wallets
                    .give_back(tx, booking.user_id, booking.reservation_id, event)
                    .await
            }
            ReservationEvent::ReservationConfirmed { .. }
            | ReservationEvent::ReservationReturned { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_event_it_wants_is_one_that_is_published() {
        for event_type in super::BOOKING_STEPS {
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
            expectations.event_types_of("boxoffice.reservation"),
            super::BOOKING_STEPS.iter().copied().collect()
        );
    }

    use std::sync::Arc;

    use contracts::wallet::WalletEvent;
    use kernel::ids::UserId;

    use super::*;
    use crate::adapters::sql::EntryKind;
    use crate::testing::{booking, on, placed, postgres_url, sqlite, Db};

    fn ended(booking: &Booking, how: &str) -> Envelope {
        let at = kernel::now();
        let reason = "the seat is taken".to_owned();
        match how {
            "rejected" => ReservationEvent::ReservationRejected {
                booking: booking.clone(),
                reason,
                rejected_at: at,
            },
            "expired" => ReservationEvent::ReservationExpired {
                booking: booking.clone(),
                reason,
                expired_at: at,
            },
            "cancelled" => ReservationEvent::ReservationCancelled {
                booking: booking.clone(),
                cancelled_at: at,
            },
            "confirmed" => ReservationEvent::ReservationConfirmed {
                booking: booking.clone(),
                confirmed_at: at,
            },
            _ => ReservationEvent::ReservationReturned {
                booking: booking.clone(),
                returned_at: at,
            },
        }
        .to_envelope()
    }

    /// Gives `user` a wallet holding `points`, as a purchase would.
    async fn holding(db: &Db, user: UserId, points: u64) {
        let opened = db
            .wallets
            .open_purchase(user, None, Points::new(points))
            .await
            .unwrap();
        let crate::adapters::sql::Opened::New(purchase) = opened else {
            panic!("a purchase without a key is always new");
        };
        db.wallets
            .credit_purchase(&purchase)
            .await
            .unwrap()
            .unwrap();
    }

    fn policy(db: &Db) -> BookingsPolicy {
        BookingsPolicy::new(db.wallets.clone())
    }

    fn spent_and_refused(events: &[WalletEvent]) -> (usize, usize) {
        let spent = events
            .iter()
            .filter(|e| matches!(e, WalletEvent::PointsSpent { .. }))
            .count();
        let refused = events
            .iter()
            .filter(|e| matches!(e, WalletEvent::PointsRefused { .. }))
            .count();
        (spent, refused)
    }

    #[tokio::test]
    async fn a_booking_paid_with_points_spends_them_once_however_often_it_is_placed() {
        let db = sqlite().await;
        let user = UserId::new();
        holding(&db, user, 5_000).await;
        let booking = booking(user, 1_000, PaymentMethod::Points);
        let event = placed(&booking);
        db.deliver(&policy(&db), &event).await;
        db.deliver(&policy(&db), &event).await;
        // The same fact re-published under a new event id.
        db.deliver(&policy(&db), &placed(&booking)).await;

        assert_eq!(db.balance(user).await, 4_000);
        let published = db.published().await;
        assert!(
            matches!(
                published.last(),
                Some(WalletEvent::PointsSpent { points: 1_000, balance: 4_000, reservation_id, .. })
                    if *reservation_id == booking.reservation_id
            ),
            "{published:#?}"
        );
        assert_eq!(spent_and_refused(&published), (1, 0));
        let entries = db.wallets.entries(user, None, 10).await.unwrap().unwrap();
        assert_eq!(entries[0].kind, EntryKind::Spent);
        assert_eq!(entries[0].reservation_id, Some(booking.reservation_id));
    }

    #[tokio::test]
    async fn a_booking_beyond_the_balance_is_refused_in_plain_words_and_deducts_nothing() {
        let db = sqlite().await;
        let user = UserId::new();
        holding(&db, user, 500).await;
        let booking = booking(user, 1_000, PaymentMethod::Points);
        db.deliver(&policy(&db), &placed(&booking)).await;

        assert_eq!(db.balance(user).await, 500);
        let published = db.published().await;
        assert!(
            matches!(
                published.last(),
                Some(WalletEvent::PointsRefused { points: 1_000, balance: 500, reason, .. })
                    if reason == "not enough points: 500 available, 1000 needed"
            ),
            "{published:#?}"
        );
        // Bought enough since: the booking was refused, and stays refused.
        holding(&db, user, 5_000).await;
        db.deliver(&policy(&db), &placed(&booking)).await;
        assert_eq!(db.balance(user).await, 5_500);
        assert_eq!(spent_and_refused(&db.published().await), (0, 1));
    }

    #[tokio::test]
    async fn a_booking_by_a_customer_without_points_is_refused_and_opens_no_wallet() {
        let db = sqlite().await;
        let user = UserId::new();
        let booking = booking(user, 1_000, PaymentMethod::Points);
        db.deliver(&policy(&db), &placed(&booking)).await;
        db.deliver(&policy(&db), &placed(&booking)).await;

        let published = db.published().await;
        assert!(
            matches!(
                published.as_slice(),
                [WalletEvent::PointsRefused { balance: 0, reason, .. }]
                    if reason == "no points yet: buy points first (1000 needed)"
            ),
            "{published:#?}"
        );
        let wallets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM wallets")
            .fetch_one(db.store.reader())
            .await
            .unwrap();
        assert_eq!(wallets, 0);
    }

    #[tokio::test]
    async fn spent_points_come_back_once_when_the_booking_does_not_go_ahead() {
        for how in ["rejected", "expired", "cancelled"] {
            let db = sqlite().await;
            let user = UserId::new();
            holding(&db, user, 5_000).await;
            let booking = booking(user, 1_000, PaymentMethod::Points);
            db.deliver(&policy(&db), &placed(&booking)).await;
            let end = ended(&booking, how);
            db.deliver(&policy(&db), &end).await;
            db.deliver(&policy(&db), &end).await;
            db.deliver(&policy(&db), &ended(&booking, how)).await;
            // And a late redelivery of the placement spends nothing again.
            db.deliver(&policy(&db), &placed(&booking)).await;

            assert_eq!(db.balance(user).await, 5_000, "{how}");
            let refunds: Vec<_> = db
                .published()
                .await
                .into_iter()
                .filter(|e| matches!(e, WalletEvent::PointsRefunded { .. }))
                .collect();
            assert!(
                matches!(
                    refunds.as_slice(),
                    [WalletEvent::PointsRefunded {
                        points: 1_000,
                        balance: 5_000,
                        ..
                    }]
                ),
                "{how}: {refunds:#?}"
            );
            let entries = db.wallets.entries(user, None, 10).await.unwrap().unwrap();
            assert_eq!(entries[0].kind, EntryKind::Refunded, "{how}");
        }
    }

    #[tokio::test]
    async fn a_refused_booking_that_ends_gives_back_nothing() {
        let db = sqlite().await;
        let user = UserId::new();
        holding(&db, user, 500).await;
        let booking = booking(user, 1_000, PaymentMethod::Points);
        db.deliver(&policy(&db), &placed(&booking)).await;
        db.deliver(&policy(&db), &ended(&booking, "rejected")).await;
        assert_eq!(db.balance(user).await, 500);
        assert_eq!(db.published().await.len(), 2, "purchased, refused");
    }

    #[tokio::test]
    async fn confirmations_returns_card_bookings_and_free_ones_move_no_points() {
        let db = sqlite().await;
        let user = UserId::new();
        holding(&db, user, 5_000).await;
        let paid = booking(user, 1_000, PaymentMethod::Points);
        db.deliver(&policy(&db), &placed(&paid)).await;
        db.deliver(&policy(&db), &ended(&paid, "confirmed")).await;
        db.deliver(&policy(&db), &ended(&paid, "returned")).await;
        let by_card = booking(user, 1_000, PaymentMethod::Card);
        db.deliver(&policy(&db), &placed(&by_card)).await;
        db.deliver(&policy(&db), &ended(&by_card, "cancelled"))
            .await;
        let free = booking(user, 0, PaymentMethod::Points);
        db.deliver(&policy(&db), &placed(&free)).await;

        assert_eq!(db.balance(user).await, 4_000);
        assert_eq!(spent_and_refused(&db.published().await), (1, 0));
    }

    /// 20 bookings of 1000 points race for a wallet of 5000: exactly 5 are
    /// paid, the others refused, and the balance ends at zero.
    async fn twenty_spends_race_for_five_thousand_points(replicas: &[Arc<Db>]) {
        let user = UserId::new();
        holding(&replicas[0], user, 5_000).await;
        let mut racing = tokio::task::JoinSet::new();
        for n in 0..20 {
            let db = replicas[n % replicas.len()].clone();
            let event = placed(&booking(user, 1_000, PaymentMethod::Points));
            racing.spawn(async move { db.deliver(&policy(&db), &event).await });
        }
        while let Some(done) = racing.join_next().await {
            done.unwrap();
        }
        let db = &replicas[0];
        assert_eq!(db.balance(user).await, 0);
        let published = db.published().await;
        assert_eq!(spent_and_refused(&published), (5, 15));
        for event in &published {
            if let WalletEvent::PointsRefused { reason, .. } = event {
                assert_eq!(reason, "not enough points: 0 available, 1000 needed");
            }
        }
        let spent: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(points), 0) AS BIGINT) FROM wallet_entries WHERE user_id = $1 AND kind = 'spent'",
        )
        .bind(user.to_string())
        .fetch_one(db.store.reader())
        .await
        .unwrap();
        assert_eq!(spent, 5_000);
    }

    #[tokio::test]
    async fn concurrent_spends_never_take_the_balance_below_zero() {
        let db = Arc::new(sqlite().await);
        twenty_spends_race_for_five_thousand_points(&[db]).await;
    }

    /// Two replicas (two pools on one PostgreSQL database) race.
    #[tokio::test]
    async fn concurrent_spends_on_two_replicas_on_postgres_never_take_the_balance_below_zero() {
        let Some(url) = postgres_url("spends") else {
            return;
        };
        let one = Arc::new(on(&url).await);
        let two = Arc::new(on(&url).await);
        twenty_spends_race_for_five_thousand_points(&[one, two]).await;
    }

    /// Spent, refused without a wallet, given back once, on PostgreSQL.
    #[tokio::test]
    async fn the_saga_step_holds_on_postgres() {
        let Some(url) = postgres_url("saga") else {
            return;
        };
        let db = on(&url).await;
        let user = UserId::new();
        let refused = booking(user, 1_000, PaymentMethod::Points);
        db.deliver(&policy(&db), &placed(&refused)).await;
        holding(&db, user, 5_000).await;
        let paid = booking(user, 1_000, PaymentMethod::Points);
        db.deliver(&policy(&db), &placed(&paid)).await;
        db.deliver(&policy(&db), &placed(&paid)).await;
        db.deliver(&policy(&db), &placed(&refused)).await;
        assert_eq!(db.balance(user).await, 4_000);
        db.deliver(&policy(&db), &ended(&paid, "cancelled")).await;
        db.deliver(&policy(&db), &ended(&paid, "cancelled")).await;
        assert_eq!(db.balance(user).await, 5_000);
        let published = db.published().await;
        assert_eq!(spent_and_refused(&published), (1, 1));
        assert!(matches!(
            published.last(),
            Some(WalletEvent::PointsRefunded {
                points: 1_000,
                balance: 5_000,
                ..
            })
        ));
    }
}
