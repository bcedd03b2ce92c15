//! Buying points with a card.
//!
//! A purchase is recorded (pending, with the payment id its card is charged
//! under) before payment is asked to charge the card; only a charge that
//! payment confirms is credited, in one transaction with its entry and
//! `PointsPurchased`. Payment charges a payment id at most once, so the
//! request may be repeated by anyone holding the purchase: a repeat of the
//! customer's request (same `Idempotency-Key`), or the recovery that
//! finishes purchases a stopped process left pending.
//!
//! What payment's answer means for the purchase:
//! - charged: credited, answered 201 (again to every repeat);
//! - declined: nothing credited, answered 402 (again to every repeat);
//! - unavailable (down, breaker open): nothing was taken or credited,
//!   answered 503; a repeat tries again;
//! - no answer in time: the charge may have happened, so payment is told
//!   to take it back (now, and by the recovery until it confirms) and
//!   nothing is credited; answered 503.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kernel::ids::{PaymentId, UserId};
use kernel::shutdown::Shutdown;
use kernel::Money;
use runtime::breaker::CallError;
use time::OffsetDateTime;

use crate::adapters::sql::{Opened, Purchase, Wallets};
use crate::domain::{on_repeat, Points, PurchaseStatus, Repeat};

/// Payment, as far as buying points goes.
#[async_trait]
pub trait Card: Send + Sync + 'static {
    /// Charges the user's card `amount` under `payment` (at most once per
    /// payment id, however often it is asked).
    async fn charge(
        &self,
        payment: PaymentId,
        user: UserId,
        amount: Money,
    ) -> Result<(), CallError>;
    /// Takes back whatever was charged under `payment`, or makes sure it
    /// is refused if it arrives late. `Err` when payment did not confirm.
    async fn cancel(&self, payment: PaymentId, user: UserId, amount: Money) -> anyhow::Result<()>;
}

/// A credited purchase, as answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub purchase_id: String,
    pub points: Points,
    pub balance: Points,
}

#[derive(Debug, thiserror::Error)]
pub enum PurchaseError {
    /// The card was declined, for this reason; nothing was credited.
    #[error("{0}")]
    Declined(String),
    /// Payment could not be used; nothing was credited.
    #[error("{detail}")]
    Unavailable {
        detail: String,
        retry_after_secs: u32,
    },
    /// The key was used for another purchase.
    #[error("this Idempotency-Key was used for a purchase of {0} points; use a new key for another purchase")]
    KeyReused(Points),
    #[error(transparent)]
    Infrastructure(#[from] anyhow::Error),
}

/// How often the recovery looks for purchases left half done.
const RECOVER_EVERY: Duration = Duration::from_secs(5);
/// Most purchases recovered in one round.
const RECOVER_BATCH: i64 = 64;
/// How often a repeated request looks at the purchase it waits for.
const WAIT_STEP: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct Purchases {
    wallets: Wallets,
    card: Arc<dyn Card>,
    /// How long a purchase may stay pending before it is taken for left
    /// behind: longer than any request charging it takes.
    stale_after: Duration,
}

impl std::fmt::Debug for Purchases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Purchases")
            .field("stale_after", &self.stale_after)
            .finish_non_exhaustive()
    }
}

impl Purchases {
    pub fn new(wallets: Wallets, card: Arc<dyn Card>, stale_after: Duration) -> Purchases {
        Purchases {
            wallets,
            card,
            stale_after,
        }
    }

    /// Buys `points` for `user` with their card. With a `key`, a repeat of
    /// the request answers what the first one got and charges nothing more.
    pub async fn buy(
        &self,
        user: UserId,
        points: Points,
        key: Option<&str>,
    ) -> Result<Receipt, PurchaseError> {
        let mut purchase = match self.wallets.open_purchase(user, key, points).await? {
            Opened::New(purchase) => return self.complete(purchase).await,
            Opened::Existing(purchase) => purchase,
        };
        if purchase.points != points {
            return Err(PurchaseError::KeyReused(purchase.points));
        }
        loop {
            let stale = purchase.status == PurchaseStatus::Pending && self.is_stale(&purchase);
            match on_repeat(purchase.status, stale) {
                Repeat::Answer => return answer(&purchase),
                Repeat::TakingBack => {
                    return Err(PurchaseError::Unavailable {
                        detail: "the last attempt of this purchase timed out and is being taken back; nothing was credited. Try again shortly".to_owned(),
                        retry_after_secs: 1,
                    })
                }
                Repeat::Wait => tokio::time::sleep(WAIT_STEP).await,
                Repeat::TakeOver | Repeat::Retry => {
                    if let Some(taken) = self.wallets.take_purchase(&purchase).await? {
                        return self.complete(taken).await;
                    }
                }
            }
            purchase = self.wallets.purchase(&purchase.id).await?;
        }
    }

    fn is_stale(&self, purchase: &Purchase) -> bool {
        runtime::http::parse_timestamp(&purchase.updated_at)
            .map(|at| at < self.stale_before())
            .unwrap_or(true)
    }

    fn stale_before(&self) -> OffsetDateTime {
        kernel::now() - self.stale_after
    }

    /// Charges a pending purchase this caller holds, and credits it or
    /// records why not.
    async fn complete(&self, purchase: Purchase) -> Result<Receipt, PurchaseError> {
        let amount = purchase
            .points
            .worth()
            .map_err(|error| anyhow::anyhow!("a purchase's price: {error}"))?;
        let charged = self
            .card
            .charge(purchase.payment_id, purchase.user_id, amount)
            .await;
        match charged {
            Ok(()) => match self.wallets.credit_purchase(&purchase).await? {
                Some(balance) => Ok(Receipt {
                    purchase_id: purchase.id,
                    points: purchase.points,
                    balance,
                }),
                // Someone else finished it meanwhile: answer what they did.
                None => answer(&self.wallets.purchase(&purchase.id).await?),
            },
            Err(CallError::Declined(reason)) => {
                self.wallets
                    .mark_purchase(&purchase, PurchaseStatus::Declined, Some(&reason))
                    .await?;
                Err(PurchaseError::Declined(reason))
            }
            Err(CallError::Unavailable {
                detail,
                retry_after_secs,
                maybe_done: false,
            }) => {
                self.wallets
                    .mark_purchase(&purchase, PurchaseStatus::Failed, Some(&detail))
                    .await?;
                Err(PurchaseError::Unavailable {
                    detail: format!("{detail}; nothing was charged or credited"),
                    retry_after_secs,
                })
            }
            Err(CallError::Unavailable {
                detail,
                retry_after_secs,
                maybe_done: true,
            }) => {
                if self
                    .wallets
                    .mark_purchase(&purchase, PurchaseStatus::Cancelling, Some(&detail))
                    .await?
                {
                    let taking_back = Purchase {
                        status: PurchaseStatus::Cancelling,
                        ..purchase
                    };
                    let this = self.clone();
                    // Not waited for: the customer has waited long enough,
                    // and the recovery tries again if this attempt fails.
                    tokio::spawn(async move { this.take_back(&taking_back).await });
                }
                Err(PurchaseError::Unavailable {
                    detail: format!(
                        "{detail}; nothing was credited, and the charge, if it was made, is taken back"
                    ),
                    retry_after_secs,
                })
            }
        }
    }

    /// Asks payment to take back a purchase's charge; once it confirms,
    /// the purchase is cancelled (and may be tried again).
    async fn take_back(&self, purchase: &Purchase) {
        let Ok(amount) = purchase.points.worth() else {
            return;
        };
        match self
            .card
            .cancel(purchase.payment_id, purchase.user_id, amount)
            .await
        {
            Ok(()) => {
                if let Err(error) = self
                    .wallets
                    .mark_purchase(
                        purchase,
                        PurchaseStatus::Cancelled,
                        purchase.reason.as_deref(),
                    )
                    .await
                {
                    tracing::warn!(purchase = %purchase.id, error = format!("{error:#}"), "recording a cancelled purchase failed; the recovery records it");
                }
            }
            Err(error) => {
                tracing::warn!(purchase = %purchase.id, payment = %purchase.payment_id, error = format!("{error:#}"), "taking back a purchase's charge failed; the recovery tries again");
            }
        }
    }

    /// Finishes purchases left half done, until shutdown: at start, then
    /// every few seconds.
    pub async fn recover(self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        while !shutdown.is_fired() {
            if let Err(error) = self.recover_some(self.stale_before()).await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "recovering purchases failed; trying again"
                );
            }
            tokio::select! {
                () = tokio::time::sleep(RECOVER_EVERY) => {}
                () = shutdown.wait() => {}
            }
        }
        Ok(())
    }

    /// One round over purchases untouched since `before`: a pending one is
    /// charged again under its own payment id (payment answers what it did
    /// the first time, if it got that far) and credited or dropped; one
    /// being taken back is asked again to be taken back. How many were
    /// looked at.
    pub async fn recover_some(&self, before: OffsetDateTime) -> anyhow::Result<usize> {
        let left = self
            .wallets
            .purchases_to_recover(before, RECOVER_BATCH)
            .await?;
        for purchase in &left {
            match purchase.status {
                PurchaseStatus::Pending => {
                    let Some(taken) = self.wallets.take_purchase(purchase).await? else {
                        continue;
                    };
                    match self.complete(taken).await {
                        Ok(receipt) => {
                            tracing::info!(purchase = %purchase.id, points = %receipt.points, "a purchase left pending was credited")
                        }
                        Err(PurchaseError::Infrastructure(error)) => return Err(error),
                        Err(error) => {
                            tracing::info!(purchase = %purchase.id, %error, "a purchase left pending was not credited")
                        }
                    }
                }
                PurchaseStatus::Cancelling => self.take_back(purchase).await,
                _ => {}
            }
        }
        Ok(left.len())
    }
}

/// The answer a purchase's recorded outcome gives to a repeat.
fn answer(purchase: &Purchase) -> Result<Receipt, PurchaseError> {
    match (purchase.status, purchase.balance) {
        (PurchaseStatus::Credited, Some(balance)) => Ok(Receipt {
            purchase_id: purchase.id.clone(),
            points: purchase.points,
            balance,
        }),
        (PurchaseStatus::Declined, _) => Err(PurchaseError::Declined(
            purchase
                .reason
                .clone()
                .unwrap_or_else(|| "the card was declined".to_owned()),
        )),
        _ => Err(PurchaseError::Unavailable {
            detail: "this purchase could not be completed; nothing was credited. Try again"
                .to_owned(),
            retry_after_secs: 1,
        }),
    }
}

#[cfg(test)]
mod tests {
    use contracts::wallet::WalletEvent;

    use super::*;
    use crate::testing::{sqlite, unavailable, Db, FakeCard};

    fn purchases(db: &Db, card: &FakeCard) -> Purchases {
        Purchases::new(
            db.wallets.clone(),
            Arc::new(card.clone()),
            Duration::from_millis(300),
        )
    }

    fn points(n: u64) -> Points {
        Points::new(n)
    }

    /// A new purchase of 3,000 points under `key`, left pending.
    async fn opened(db: &Db, user: UserId, key: &str) -> Purchase {
        match db
            .wallets
            .open_purchase(user, Some(key), points(3_000))
            .await
            .unwrap()
        {
            Opened::New(purchase) => purchase,
            _ => panic!("a new purchase under {key:?}"),
        }
    }

    async fn status(db: &Db, user: UserId, key: &str) -> PurchaseStatus {
        match db
            .wallets
            .open_purchase(user, Some(key), points(1))
            .await
            .unwrap()
        {
            Opened::Existing(purchase) => purchase.status,
            Opened::New(_) => panic!("no purchase under {key}"),
        }
    }

    #[tokio::test]
    async fn a_purchase_credits_the_wallet_with_its_event_in_the_same_transaction() {
        let db = sqlite().await;
        let card = FakeCard::default();
        let user = UserId::new();
        let shop = purchases(&db, &card);
        let first = shop.buy(user, points(3_000), None).await.unwrap();
        let second = shop.buy(user, points(5_000), None).await.unwrap();
        assert_eq!(first.balance, points(3_000));
        assert_eq!(second.balance, points(8_000));
        let published = db.published().await;
        let charges = card.charges();
        assert!(
            matches!(
                published.as_slice(),
                [
                    WalletEvent::PointsPurchased { points: 3_000, balance: 3_000, payment_id: one, .. },
                    WalletEvent::PointsPurchased { points: 5_000, balance: 8_000, payment_id: two, .. },
                ] if *one == charges[0] && *two == charges[1]
            ),
            "{published:#?}"
        );
        assert_eq!(published[0].reservation_id(), None);
    }

    #[tokio::test]
    async fn two_requests_with_the_same_key_at_once_charge_once_and_both_get_the_purchase() {
        let db = sqlite().await;
        let card = FakeCard::default();
        *card.latency.lock().unwrap() = Duration::from_millis(100);
        let user = UserId::new();
        let shop = purchases(&db, &card);
        let (one, two) = tokio::join!(
            shop.buy(user, points(3_000), Some("same")),
            shop.buy(user, points(3_000), Some("same")),
        );
        assert_eq!(one.unwrap(), two.unwrap());
        assert_eq!(card.charges().len(), 1);
        assert_eq!(db.balance(user).await, 3_000);
    }

    #[tokio::test]
    async fn payment_unavailable_credits_nothing_and_the_same_key_may_try_again() {
        let db = sqlite().await;
        let card = FakeCard::default();
        let user = UserId::new();
        let shop = purchases(&db, &card);
        card.answer_next(Err(unavailable(false)));
        let refused = shop.buy(user, points(3_000), Some("k")).await;
        assert!(
            matches!(&refused, Err(PurchaseError::Unavailable { retry_after_secs: 2, detail })
                if detail.contains("nothing was charged or credited")),
            "{refused:?}"
        );
        assert_eq!(status(&db, user, "k").await, PurchaseStatus::Failed);
        assert_eq!(db.balance(user).await, 0);

        let bought = shop.buy(user, points(3_000), Some("k")).await.unwrap();
        assert_eq!(bought.balance, points(3_000));
        let charges = card.charges();
        assert_eq!(charges.len(), 2);
        assert_ne!(charges[0], charges[1], "a new attempt, a new payment id");
    }

    #[tokio::test]
    async fn a_charge_that_times_out_is_taken_back_and_credits_nothing() {
        let db = sqlite().await;
        let card = FakeCard::default();
        let user = UserId::new();
        let shop = purchases(&db, &card);
        card.answer_next(Err(unavailable(true)));
        let refused = shop.buy(user, points(3_000), Some("slow")).await;
        assert!(
            matches!(&refused, Err(PurchaseError::Unavailable { detail, .. })
                if detail.contains("is taken back")),
            "{refused:?}"
        );
        // The cancel goes out in the background.
        for _ in 0..100 {
            if status(&db, user, "slow").await == PurchaseStatus::Cancelled {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(status(&db, user, "slow").await, PurchaseStatus::Cancelled);
        assert_eq!(card.cancels(), card.charges());
        assert_eq!(db.balance(user).await, 0);
        assert!(db.published().await.is_empty());
    }

    #[tokio::test]
    async fn the_recovery_takes_back_a_charge_whose_cancel_did_not_get_through() {
        let db = sqlite().await;
        let card = FakeCard::default();
        let user = UserId::new();
        let shop = purchases(&db, &card);
        let purchase = opened(&db, user, "lost").await;
        assert!(db
            .wallets
            .mark_purchase(&purchase, PurchaseStatus::Cancelling, None)
            .await
            .unwrap());
        assert_eq!(
            shop.recover_some(kernel::now() + Duration::from_secs(1))
                .await
                .unwrap(),
            1
        );
        assert_eq!(card.cancels(), [purchase.payment_id]);
        assert_eq!(status(&db, user, "lost").await, PurchaseStatus::Cancelled);
        assert!(card.charges().is_empty());
    }

    #[tokio::test]
    async fn a_purchase_left_pending_by_a_stopped_process_is_charged_again_under_its_id_and_credited_once(
    ) {
        let db = sqlite().await;
        let card = FakeCard::default();
        let user = UserId::new();
        let shop = purchases(&db, &card);
        // The process stopped between recording the purchase (and maybe
        // charging it) and crediting it.
        let purchase = opened(&db, user, "crash").await;
        // Not stale yet: left alone.
        assert_eq!(shop.recover_some(shop.stale_before()).await.unwrap(), 0);
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(shop.recover_some(shop.stale_before()).await.unwrap(), 1);
        assert_eq!(card.charges(), [purchase.payment_id]);
        assert_eq!(db.balance(user).await, 3_000);
        assert_eq!(status(&db, user, "crash").await, PurchaseStatus::Credited);
        assert_eq!(shop.recover_some(kernel::now()).await.unwrap(), 0);

        // The customer repeats the request: the purchase, not a new charge.
        let again = shop.buy(user, points(3_000), Some("crash")).await.unwrap();
        assert_eq!(again.balance, points(3_000));
        assert_eq!(card.charges().len(), 1);
    }

    #[tokio::test]
    async fn a_pending_purchase_whose_card_is_declined_on_recovery_is_dropped() {
        let db = sqlite().await;
        let card = FakeCard::default();
        let user = UserId::new();
        let shop = purchases(&db, &card);
        db.wallets
            .open_purchase(user, Some("crash"), points(60_000))
            .await
            .unwrap();
        card.answer_next(Err(CallError::Declined("the card was declined".into())));
        assert_eq!(
            shop.recover_some(kernel::now() + Duration::from_secs(1))
                .await
                .unwrap(),
            1
        );
        assert_eq!(status(&db, user, "crash").await, PurchaseStatus::Declined);
        assert_eq!(db.balance(user).await, 0);
        assert!(db.published().await.is_empty());
    }

    #[tokio::test]
    async fn a_repeat_finding_the_purchase_left_pending_finishes_it_itself() {
        let db = sqlite().await;
        let card = FakeCard::default();
        let user = UserId::new();
        let shop = purchases(&db, &card);
        let purchase = opened(&db, user, "crash").await;
        // Waits for the first request until the purchase is stale, then
        // charges it under the same payment id.
        let bought = shop.buy(user, points(3_000), Some("crash")).await.unwrap();
        assert_eq!(bought.balance, points(3_000));
        assert_eq!(card.charges(), [purchase.payment_id]);
    }

    /// Buying, topping up, a repeated key, two requests at once, a retry
    /// after payment was down, and the recovery of a purchase left pending.
    async fn purchases_hold_on(db: &Db) {
        let card = FakeCard::default();
        let user = UserId::new();
        let shop = purchases(db, &card);
        shop.buy(user, points(3_000), Some("a")).await.unwrap();
        let topped = shop.buy(user, points(5_000), None).await.unwrap();
        assert_eq!(topped.balance, points(8_000));
        let again = shop.buy(user, points(3_000), Some("a")).await.unwrap();
        assert_eq!(again.balance, points(3_000), "the first answer");

        *card.latency.lock().unwrap() = Duration::from_millis(50);
        let (one, two) = tokio::join!(
            shop.buy(user, points(1_000), Some("b")),
            shop.buy(user, points(1_000), Some("b")),
        );
        assert_eq!(one.unwrap(), two.unwrap());
        *card.latency.lock().unwrap() = Duration::ZERO;

        card.answer_next(Err(unavailable(false)));
        assert!(shop.buy(user, points(500), Some("c")).await.is_err());
        shop.buy(user, points(500), Some("c")).await.unwrap();

        db.wallets
            .open_purchase(user, Some("d"), points(100))
            .await
            .unwrap();
        assert_eq!(
            shop.recover_some(kernel::now() + Duration::from_secs(1))
                .await
                .unwrap(),
            1
        );
        assert_eq!(db.balance(user).await, 9_600);
        assert_eq!(card.charges().len(), 6, "a, top-up, b, c twice, d");
        let purchased = db
            .published()
            .await
            .into_iter()
            .filter(|e| matches!(e, WalletEvent::PointsPurchased { .. }))
            .count();
        assert_eq!(purchased, 5);
    }

    #[tokio::test]
    async fn purchases_hold_on_sqlite() {
        purchases_hold_on(&sqlite().await).await;
    }

    #[tokio::test]
    async fn purchases_hold_on_postgres() {
        let Some(url) = crate::testing::postgres_url("purchases") else {
            return;
        };
        purchases_hold_on(&crate::testing::on(&url).await).await;
    }
}
