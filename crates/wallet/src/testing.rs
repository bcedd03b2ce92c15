//! What the wallet's tests share: a store in a temp dir (or on PostgreSQL),
//! delivering events the way the consumer loop does, reading the outbox,
//! bookings, and a card that answers as it is told.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use contracts::catalog::ListingKind;
use contracts::payment::{Charge, PaymentEvent};
use contracts::reservation::{Booking, PaymentMethod, ReservationEvent};
use contracts::wallet::WalletEvent;
use contracts::IntegrationEvent;
use kernel::ids::{ListingId, PaymentId, ReservationId, UserId};
use kernel::{Envelope, Money};
use runtime::breaker::CallError;
use runtime::consumer::EventHandler;
use runtime::store::sqlite_url;
use runtime::Store;
use sqlx::Row;

use crate::adapters::sql::{Wallets, MIGRATIONS};
use crate::app::Card;

/// A wallet database in a temp dir, kept as long as the value.
pub struct Db {
    pub _dir: Option<tempfile::TempDir>,
    pub store: Store,
    pub wallets: Wallets,
}

pub async fn sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&sqlite_url(dir.path(), "wallet"), MIGRATIONS)
        .await
        .unwrap();
    Db {
        _dir: Some(dir),
        wallets: Wallets::new(store.clone()),
        store,
    }
}

/// A fresh wallet database on the server `BOXOFFICE_TEST_POSTGRES` names;
/// `None` when it names none (and then CI must not be running).
pub fn postgres_url(test: &str) -> Option<String> {
    runtime::store::test_postgres_url("wallet", test)
}

pub async fn on(url: &str) -> Db {
    let store = Store::connect(url, MIGRATIONS).await.unwrap();
    Db {
        _dir: None,
        wallets: Wallets::new(store.clone()),
        store,
    }
}

impl Db {
    /// What the consumer loop does for one event: prepare, handle, commit;
    /// a passing fault (a lost race) is tried again, as the loop would.
    pub async fn deliver(&self, handler: &dyn EventHandler, event: &Envelope) {
        self.deliver_as(handler, &[event], None).await;
    }

    /// What the consumer loop does for a batch of `group`: prepare, handle
    /// the batch, commit; passing faults tried again.
    pub async fn deliver_batch(
        &self,
        handler: &dyn EventHandler,
        events: &[&Envelope],
        group: &str,
    ) {
        self.deliver_as(handler, events, Some(group)).await;
    }

    /// Each event on its own (`group` `None`) or as one batch of `group`.
    async fn deliver_as(
        &self,
        handler: &dyn EventHandler,
        events: &[&Envelope],
        group: Option<&str>,
    ) {
        for _ in 0..20 {
            let mut tx = self.store.begin().await.unwrap();
            let applied = async {
                handler.prepare(&mut tx, events).await?;
                match group {
                    Some(group) => handler.handle_batch(&mut tx, events, group).await,
                    None => {
                        for event in events {
                            handler.handle(&mut tx, event).await?;
                        }
                        Ok(())
                    }
                }
            }
            .await;
            match applied {
                Ok(()) => {
                    self.store.commit(tx).await.unwrap();
                    return;
                }
                Err(error) if runtime::retry::is_transient(&error) => {
                    drop(tx);
                    tokio::task::yield_now().await;
                }
                Err(error) => panic!("{error:#}"),
            }
        }
        panic!("an event kept meeting passing faults");
    }

    pub async fn balance(&self, user: UserId) -> u64 {
        self.wallets.balance(user).await.unwrap().value()
    }

    /// The wallet events in the outbox, oldest first.
    pub async fn published(&self) -> Vec<WalletEvent> {
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
}

pub fn booking(user: UserId, amount: i64, method: PaymentMethod) -> Booking {
    Booking {
        reservation_id: ReservationId::new(),
        user_id: user,
        listing_id: ListingId::new(),
        listing_title: "Bike 7".to_owned(),
        listing_kind: ListingKind::Bike,
        quantity: 1,
        seats: Vec::new(),
        amount: Money::parse(amount).unwrap(),
        payment_method: method,
    }
}

pub fn placed(booking: &Booking) -> Envelope {
    ReservationEvent::ReservationPlaced {
        booking: booking.clone(),
        placed_at: kernel::now(),
    }
    .to_envelope()
}

/// A card that answers charges from a script (approving once it runs
/// out) and records what it was asked.
#[derive(Clone, Default)]
pub struct FakeCard {
    answers: Arc<Mutex<VecDeque<Result<(), CallError>>>>,
    pub charges: Arc<Mutex<Vec<PaymentId>>>,
    pub cancels: Arc<Mutex<Vec<PaymentId>>>,
    /// How long each charge takes to answer.
    pub latency: Arc<Mutex<std::time::Duration>>,
}

impl FakeCard {
    pub fn answer_next(&self, answer: Result<(), CallError>) {
        self.answers.lock().unwrap().push_back(answer);
    }

    pub fn charges(&self) -> Vec<PaymentId> {
        self.charges.lock().unwrap().clone()
    }

    pub fn cancels(&self) -> Vec<PaymentId> {
        self.cancels.lock().unwrap().clone()
    }
}

pub fn unavailable(maybe_done: bool) -> CallError {
    CallError::Unavailable {
        detail: if maybe_done {
            "payment is unavailable, try again later (no answer within 1220 ms)".to_owned()
        } else {
            "payment is unavailable, try again later".to_owned()
        },
        retry_after_secs: 2,
        maybe_done,
    }
}

#[async_trait]
impl Card for FakeCard {
    async fn charge(
        &self,
        payment: PaymentId,
        _user: UserId,
        _amount: Money,
    ) -> Result<(), CallError> {
        let latency = *self.latency.lock().unwrap();
        tokio::time::sleep(latency).await;
        self.charges.lock().unwrap().push(payment);
        self.answers.lock().unwrap().pop_front().unwrap_or(Ok(()))
    }

    async fn cancel(
        &self,
        payment: PaymentId,
        _user: UserId,
        _amount: Money,
    ) -> anyhow::Result<()> {
        self.cancels.lock().unwrap().push(payment);
        Ok(())
    }
}

/// A card payment of `amount` by `user`, for `booking` (`None`: a purchase
/// of points).
pub fn charge(user: UserId, booking: Option<ReservationId>, amount: i64) -> Charge {
    Charge {
        payment_id: PaymentId::new(),
        user_id: user,
        amount: Money::parse(amount).unwrap(),
        reservation_id: booking,
    }
}

/// `charge` captured now.
pub fn captured(charge: &Charge) -> Envelope {
    PaymentEvent::PaymentCaptured {
        charge: charge.clone(),
        captured_at: kernel::now(),
    }
    .to_envelope()
}

/// `charge` refunded now.
pub fn refunded(charge: &Charge) -> Envelope {
    PaymentEvent::PaymentRefunded {
        charge: charge.clone(),
        refunded_at: kernel::now(),
    }
    .to_envelope()
}
