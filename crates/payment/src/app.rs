//! Use cases of the payment context: authorise while the customer waits,
//! request settlements as the saga decides, and settle them with the
//! provider in the background.

use std::sync::Arc;
use std::time::Duration;

use contracts::payment::PaymentEvent;
use kernel::ids::{PaymentId, ReservationId, UserId};
use kernel::shutdown::Shutdown;
use kernel::Money;
use runtime::group_commit::GroupCommit;
use runtime::retry::{Outage, Unavailable};
use sqlx::{Any, Transaction};
use tokio::sync::Notify;

use crate::adapters::sql::{charge, PaymentStore};
use crate::domain::{settlement_for, BookingOutcome, Payment, Settlement, Standing, Status};
use crate::provider::{PaymentProvider, ProviderError};

/// An authorisation request for a booking.
#[derive(Debug, Clone)]
pub struct Authorisation {
    pub reservation_id: ReservationId,
    pub user_id: UserId,
    pub amount: Money,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthoriseError {
    #[error("{0}")]
    Declined(String),
    #[error("{0}")]
    Unavailable(String),
    /// The booking's authorisation was already voided (its caller gave up).
    #[error("the payment for reservation {0} was voided; place the booking again")]
    Voided(ReservationId),
    #[error(transparent)]
    Infrastructure(#[from] anyhow::Error),
}

#[derive(Clone)]
pub struct Payments {
    store: PaymentStore,
    /// New payments, many to a transaction: authorisations arrive in
    /// bursts and each must be stored before it is answered.
    recorder: GroupCommit<(Payment, PaymentEvent), bool>,
    provider: Arc<dyn PaymentProvider>,
    /// Wakes the settler when a settlement is requested in this process.
    settle_now: Arc<Notify>,
}

impl std::fmt::Debug for Payments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payments").finish_non_exhaustive()
    }
}

/// Most payments settled in one round.
const SETTLE_BATCH: i64 = 64;
/// How often the settler looks for work another replica requested.
const SETTLE_POLL: Duration = Duration::from_millis(500);

impl Payments {
    /// Needs a Tokio runtime: it starts the task that stores new payments.
    pub fn new(store: PaymentStore, provider: Arc<dyn PaymentProvider>) -> Payments {
        let writer = store.clone();
        let recorder = GroupCommit::start("payments", 256, move |batch| {
            let store = writer.clone();
            async move { store.insert_all(&batch).await }
        });
        Payments {
            store,
            recorder,
            provider,
            settle_now: Arc::new(Notify::new()),
        }
    }

    pub fn store(&self) -> &PaymentStore {
        &self.store
    }

    /// Authorises the booking's amount with the provider. Idempotent by
    /// reservation: asking again answers what the first request got.
    pub async fn authorise(&self, request: Authorisation) -> Result<Payment, AuthoriseError> {
        if let Some(existing) = self.store.find_for_booking(request.reservation_id).await? {
            return answer(existing);
        }
        let now = kernel::now();
        let mut payment = Payment {
            id: PaymentId::new(),
            reservation_id: Some(request.reservation_id),
            user_id: request.user_id,
            amount: request.amount,
            status: Status::Authorised,
            pending: None,
            reason: None,
            created_at: now,
            updated_at: now,
        };
        let event = match self.provider.authorise(payment.id, payment.amount).await {
            Ok(()) => PaymentEvent::PaymentAuthorised {
                charge: charge(&payment),
                authorised_at: now,
            },
            Err(ProviderError::Unavailable(why)) => {
                metrics::counter!("boxoffice_payments_total", "outcome" => "unavailable")
                    .increment(1);
                return Err(AuthoriseError::Unavailable(why));
            }
            Err(ProviderError::Declined(reason)) => {
                payment.status = Status::Declined;
                payment.reason = Some(reason.clone());
                PaymentEvent::PaymentDeclined {
                    charge: charge(&payment),
                    reason,
                    declined_at: now,
                }
            }
        };
        if !self.recorder.submit((payment.clone(), event)).await? {
            // The booking got a payment meanwhile: a void from a caller that
            // gave up waiting, or a repeated request. Ours must not stand.
            if payment.status == Status::Authorised {
                self.release_orphan(payment.id, payment.amount);
            }
            let existing = self
                .store
                .find_for_booking(request.reservation_id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("a payment conflicts but cannot be found"))?;
            return answer(existing);
        }
        metrics::counter!("boxoffice_payments_total", "outcome" => payment.status.as_str())
            .increment(1);
        answer(payment)
    }

    /// An authorisation the provider granted but nobody will use: void it
    /// with the provider, retrying in the background until it answers.
    fn release_orphan(&self, id: PaymentId, amount: Money) {
        let provider = self.provider.clone();
        tokio::spawn(async move {
            for attempt in 0..20u32 {
                match provider.settle(id, Settlement::Void, amount).await {
                    Ok(()) => return,
                    Err(error) => {
                        tracing::warn!(payment = %id, attempt, %error, "voiding an unused authorisation failed; trying again");
                        tokio::time::sleep(Duration::from_millis(250 << attempt.min(5))).await;
                    }
                }
            }
            tracing::error!(payment = %id, "an unused authorisation could not be voided");
        });
    }

    /// The saga decided the booking's fate: record the settlement it calls
    /// for, in the consumer's transaction.
    pub async fn on_booking(
        &self,
        tx: &mut Transaction<'static, Any>,
        reservation: ReservationId,
        outcome: BookingOutcome,
    ) -> anyhow::Result<()> {
        let Some((payment, version)) = self.store.load_for_booking(tx, reservation).await? else {
            // Bookings paid otherwise (or free) have no payment here.
            return Ok(());
        };
        let standing = Standing {
            status: payment.status,
            pending: payment.pending,
        };
        if let Some(settlement) = settlement_for(standing, outcome) {
            self.store
                .request(tx, &payment, version, settlement)
                .await?;
            self.settle_now.notify_one();
        }
        Ok(())
    }

    /// The caller of an authorisation gave up waiting: void whatever it got,
    /// or make sure a late authorisation is refused.
    pub async fn abandon(
        &self,
        reservation: ReservationId,
        user: UserId,
        amount: Money,
    ) -> anyhow::Result<()> {
        let mut tx = self.store.store().begin().await?;
        match self.store.load_for_booking(&mut tx, reservation).await? {
            None => {
                self.store
                    .insert_void_marker(&mut tx, reservation, user, amount)
                    .await?
            }
            Some((payment, version)) => {
                let standing = Standing {
                    status: payment.status,
                    pending: payment.pending,
                };
                if let Some(settlement) = settlement_for(standing, BookingOutcome::Abandoned) {
                    self.store
                        .request(&mut tx, &payment, version, settlement)
                        .await?;
                }
            }
        }
        self.store.store().commit(tx).await?;
        self.settle_now.notify_one();
        Ok(())
    }

    /// Carries out requested settlements with the provider until shutdown;
    /// while the provider is down they wait, and are done when it is back.
    pub async fn settle(self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        let mut outage = Outage::new("payment-settler");
        while !shutdown.is_fired() {
            match self.settle_some().await {
                Ok(0) => {
                    outage.recovered();
                    tokio::select! {
                        () = self.settle_now.notified() => {}
                        () = tokio::time::sleep(SETTLE_POLL) => {}
                        () = shutdown.wait() => {}
                    }
                }
                Ok(_) => outage.recovered(),
                Err(error) => {
                    if !outage.wait(&error, &mut shutdown).await {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// One round: settles what is waiting with the provider, then records
    /// every outcome in one transaction; the number settled. A provider
    /// failure ends the round (what was done is still recorded) and is a
    /// passing fault for the caller to wait out.
    async fn settle_some(&self) -> anyhow::Result<usize> {
        let waiting = self.store.to_settle(SETTLE_BATCH).await?;
        let mut done = Vec::with_capacity(waiting.len());
        let mut failure = None;
        for (payment, version) in waiting {
            let Some(settlement) = payment.pending else {
                continue;
            };
            match self
                .provider
                .settle(payment.id, settlement, payment.amount)
                .await
            {
                Ok(()) => done.push((payment, version, settlement)),
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        let settled = if done.is_empty() {
            0
        } else {
            self.store.settled(&done).await?
        };
        for (_, _, settlement) in &done {
            metrics::counter!("boxoffice_payments_total", "outcome" => settlement.outcome().as_str())
                .increment(1);
        }
        match failure {
            Some(error) => Err(Unavailable(format!("the payment provider ({error})")).into()),
            None => Ok(settled),
        }
    }
}

fn answer(payment: Payment) -> Result<Payment, AuthoriseError> {
    match payment.status {
        Status::Declined => Err(AuthoriseError::Declined(
            payment
                .reason
                .unwrap_or_else(|| "the card was declined".to_owned()),
        )),
        Status::Voided => match payment.reservation_id {
            Some(reservation) => Err(AuthoriseError::Voided(reservation)),
            None => Ok(payment),
        },
        _ => Ok(payment),
    }
}

#[cfg(test)]
mod tests {
    use runtime::store::sqlite_url;
    use runtime::Store;

    use super::*;
    use crate::domain::ProviderSettings;
    use crate::provider::FakeProvider;

    async fn payments(
        dir: &tempfile::TempDir,
        settings: ProviderSettings,
    ) -> (Payments, FakeProvider) {
        let store = Store::connect(&sqlite_url(dir.path(), "payment"), crate::MIGRATIONS)
            .await
            .unwrap();
        let provider = FakeProvider::new(settings);
        let payments = Payments::new(PaymentStore::new(store), Arc::new(provider.clone()));
        (payments, provider)
    }

    fn booking(amount: i64) -> Authorisation {
        Authorisation {
            reservation_id: ReservationId::new(),
            user_id: UserId::new(),
            amount: Money::parse(amount).unwrap(),
        }
    }

    async fn status(
        payments: &Payments,
        reservation: ReservationId,
    ) -> (Status, Option<Settlement>) {
        let payment = payments
            .store()
            .find_for_booking(reservation)
            .await
            .unwrap()
            .unwrap();
        (payment.status, payment.pending)
    }

    async fn decide(payments: &Payments, reservation: ReservationId, outcome: BookingOutcome) {
        let mut tx = payments.store().store().begin().await.unwrap();
        payments
            .on_booking(&mut tx, reservation, outcome)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn authorising_twice_answers_the_first_payment() {
        let dir = tempfile::tempdir().unwrap();
        let (payments, _) = payments(&dir, ProviderSettings::default()).await;
        let request = booking(15_000);
        let first = payments.authorise(request.clone()).await.unwrap();
        let second = payments.authorise(request).await.unwrap();
        assert_eq!(first.id, second.id);
        assert_eq!(first.status, Status::Authorised);
    }

    #[tokio::test]
    async fn a_void_before_the_authorisation_arrives_refuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let (payments, _) = payments(&dir, ProviderSettings::default()).await;
        let request = booking(15_000);
        payments
            .abandon(request.reservation_id, request.user_id, request.amount)
            .await
            .unwrap();
        let late = payments.authorise(request.clone()).await;
        assert!(matches!(late, Err(AuthoriseError::Voided(_))), "{late:?}");
        assert_eq!(
            status(&payments, request.reservation_id).await,
            (Status::Voided, None)
        );
    }

    #[tokio::test]
    async fn settlements_wait_while_the_provider_is_down_and_are_done_once_when_it_is_back() {
        let dir = tempfile::tempdir().unwrap();
        let (payments, provider) = payments(&dir, ProviderSettings::default()).await;
        let request = booking(15_000);
        payments.authorise(request.clone()).await.unwrap();
        decide(&payments, request.reservation_id, BookingOutcome::Confirmed).await;
        // Repeated outcomes request nothing more.
        decide(&payments, request.reservation_id, BookingOutcome::Confirmed).await;
        provider.set(ProviderSettings {
            down: true,
            ..ProviderSettings::default()
        });
        assert!(
            payments.settle_some().await.is_err(),
            "the provider is down"
        );
        assert_eq!(
            status(&payments, request.reservation_id).await,
            (Status::Authorised, Some(Settlement::Capture))
        );
        provider.set(ProviderSettings::default());
        assert_eq!(payments.settle_some().await.unwrap(), 1);
        assert_eq!(payments.settle_some().await.unwrap(), 0);
        assert_eq!(
            status(&payments, request.reservation_id).await,
            (Status::Captured, None)
        );

        decide(&payments, request.reservation_id, BookingOutcome::Cancelled).await;
        assert_eq!(payments.settle_some().await.unwrap(), 1);
        assert_eq!(
            status(&payments, request.reservation_id).await,
            (Status::Refunded, None)
        );
    }

    #[tokio::test]
    async fn a_declined_card_is_recorded_and_answered_the_same_again() {
        let dir = tempfile::tempdir().unwrap();
        let settings = ProviderSettings {
            decline_above: Some(10_000),
            ..ProviderSettings::default()
        };
        let (payments, _) = payments(&dir, settings).await;
        let request = booking(15_000);
        let declined = payments.authorise(request.clone()).await;
        assert!(
            matches!(declined, Err(AuthoriseError::Declined(reason)) if reason.contains("10000"))
        );
        let again = payments.authorise(request.clone()).await;
        assert!(matches!(again, Err(AuthoriseError::Declined(_))));
        assert_eq!(
            status(&payments, request.reservation_id).await,
            (Status::Declined, None)
        );
    }
}
