//! Use cases of the payment context: authorise while the customer waits,
//! request settlements as the saga decides, and settle them with the
//! provider in the background.

use runtime::store::Tx;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use contracts::payment::PaymentEvent;
use contracts::IntegrationEvent;
use kernel::bus::Outgoing;
use kernel::ids::{PaymentId, ReservationId, UserId};
use kernel::shutdown::Shutdown;
use kernel::Money;
use runtime::group_commit::GroupCommit;
use runtime::retry::{Outage, Unavailable};

use tokio::sync::Notify;
use tracing::{Instrument, Span};

use crate::adapters::sql::{charge, PaymentStore, Request, Settled, Waiting};
use crate::domain::{
    sale_standing, settlement_for, BookingOutcome, Payment, SaleStanding, Settlement, Standing,
    Status,
};
use crate::provider::{PaymentProvider, ProviderError};

/// What the saga decided about a booking, as the settlement policy read it.
#[derive(Debug, Clone)]
pub struct Decision {
    pub reservation: ReservationId,
    pub outcome: BookingOutcome,
    /// The trace of the step that decided it, for the settlement to continue.
    pub traceparent: Option<String>,
}

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

/// A card sale for something other than a booking (points): authorised
/// and captured at once. `payment_id` is the caller's, so asking again
/// after a lost answer never charges twice.
#[derive(Debug, Clone)]
pub struct Sale {
    pub payment_id: PaymentId,
    pub user_id: UserId,
    pub amount: Money,
}

#[derive(Debug, thiserror::Error)]
pub enum ChargeError {
    #[error("{0}")]
    Declined(String),
    #[error("{0}")]
    Unavailable(String),
    /// The charge was cancelled (its caller gave up waiting) before or
    /// after it was made; nothing stays taken.
    #[error("charge {0} was cancelled; nothing was taken. Charge again under a new payment id")]
    Cancelled(PaymentId),
    /// The payment id names another payment.
    #[error("payment {0} is another payment (a booking's, or another user's or amount's charge)")]
    Different(PaymentId),
    #[error(transparent)]
    Infrastructure(#[from] anyhow::Error),
}

#[derive(Clone)]
pub struct Payments {
    store: PaymentStore,
    /// New payments, many to a transaction: authorisations arrive in
    /// bursts and each must be stored before it is answered.
    recorder: GroupCommit<(Payment, Outgoing), bool>,
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
        let span = runtime::business_span!(
            "authorise payment",
            reservation.id = %request.reservation_id
        );
        self.authorise_within(request).instrument(span).await
    }

    async fn authorise_within(&self, request: Authorisation) -> Result<Payment, AuthoriseError> {
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
        // Made here rather than by the writer, so that the event carries
        // this request's trace context.
        let mut outgoing = [event.outgoing(None)];
        runtime::telemetry::stamp(&mut outgoing);
        let [outgoing] = outgoing;
        if !self.recorder.submit((payment.clone(), outgoing)).await? {
            // The booking got a payment meanwhile: a void from a caller that
            // gave up waiting, or a repeated request. Ours must not stand.
            if payment.status == Status::Authorised {
                self.release_orphan(payment.id, Settlement::Void, payment.amount);
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

    /// Charges a card at once (authorise, then capture) for a sale that is
    /// no booking. Idempotent by payment id: asking again answers what the
    /// first request got. A capture the provider fails after authorising
    /// is left to the settler: the amount is reserved on the card already,
    /// so the sale stands and is answered as paid.
    pub async fn charge(&self, sale: Sale) -> Result<Payment, ChargeError> {
        if let Some(existing) = self.store.find(sale.payment_id).await? {
            return answer_sale(existing, &sale);
        }
        let now = kernel::now();
        let mut payment = Payment {
            id: sale.payment_id,
            reservation_id: None,
            user_id: sale.user_id,
            amount: sale.amount,
            status: Status::Authorised,
            pending: None,
            reason: None,
            created_at: now,
            updated_at: now,
        };
        let mut events = Vec::with_capacity(2);
        match self.provider.authorise(payment.id, payment.amount).await {
            Ok(()) => {
                events.push(PaymentEvent::PaymentAuthorised {
                    charge: charge(&payment),
                    authorised_at: now,
                });
                match self
                    .provider
                    .settle(payment.id, Settlement::Capture, payment.amount)
                    .await
                {
                    Ok(()) => {
                        payment.status = Status::Captured;
                        events.push(PaymentEvent::PaymentCaptured {
                            charge: charge(&payment),
                            captured_at: now,
                        });
                    }
                    Err(error) => {
                        tracing::warn!(payment = %payment.id, %error, "capturing a sale failed; the settler captures it when the provider is back");
                        payment.pending = Some(Settlement::Capture);
                    }
                }
            }
            Err(ProviderError::Unavailable(why)) => {
                metrics::counter!("boxoffice_payments_total", "outcome" => "unavailable")
                    .increment(1);
                return Err(ChargeError::Unavailable(why));
            }
            Err(ProviderError::Declined(reason)) => {
                payment.status = Status::Declined;
                payment.reason = Some(reason.clone());
                events.push(PaymentEvent::PaymentDeclined {
                    charge: charge(&payment),
                    reason,
                    declined_at: now,
                });
            }
        }
        if !self.store.insert_sale(&payment, &events).await? {
            let existing = self
                .store
                .find(payment.id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("a payment conflicts but cannot be found"))?;
            // Cancelled while the provider was charging: what it took must
            // go back. (A repeated request that got there first is the
            // same charge at the provider, which knows it by its id.)
            if sale_standing(&existing, sale.user_id, sale.amount) == SaleStanding::Cancelled {
                match payment.status {
                    Status::Captured => {
                        self.release_orphan(payment.id, Settlement::Refund, payment.amount)
                    }
                    Status::Authorised => {
                        self.release_orphan(payment.id, Settlement::Void, payment.amount)
                    }
                    _ => {}
                }
            }
            return answer_sale(existing, &sale);
        }
        metrics::counter!("boxoffice_payments_total", "outcome" => payment.status.as_str())
            .increment(1);
        if payment.pending.is_some() {
            self.settle_now.notify_one();
        }
        answer_sale(payment, &sale)
    }

    /// The caller of a charge never got its answer (it timed out): refund
    /// it if it was taken, void it if only reserved, or, if it has not
    /// arrived yet, make sure it is refused and taken back when it does.
    pub async fn cancel_charge(
        &self,
        id: PaymentId,
        user: UserId,
        amount: Money,
    ) -> Result<(), ChargeError> {
        // Twice at most: a charge recorded between the look-up and the
        // marker is then found and taken back.
        for _ in 0..2 {
            let mut tx = self.store.store().begin().await?;
            match self.store.load(&mut tx, id).await? {
                None => {
                    if self
                        .store
                        .insert_cancel_marker(&mut tx, id, user, amount)
                        .await?
                    {
                        self.store.store().commit(tx).await?;
                        return Ok(());
                    }
                }
                Some((payment, version)) => {
                    if payment.reservation_id.is_some() || payment.user_id != user {
                        return Err(ChargeError::Different(id));
                    }
                    let standing = Standing {
                        status: payment.status,
                        pending: payment.pending,
                    };
                    if let Some(settlement) = settlement_for(standing, BookingOutcome::Cancelled) {
                        self.store
                            .request(&mut tx, &payment, version, settlement)
                            .await?;
                    }
                    self.store.store().commit(tx).await?;
                    self.settle_now.notify_one();
                    return Ok(());
                }
            }
        }
        Err(anyhow::Error::from(runtime::retry::Contention(format!("payment {id}"))).into())
    }

    /// An authorisation the provider granted but nobody will use: void it
    /// with the provider (or refund it, if it was captured), retrying in
    /// the background until it answers.
    fn release_orphan(&self, id: PaymentId, settlement: Settlement, amount: Money) {
        let provider = self.provider.clone();
        tokio::spawn(async move {
            for attempt in 0..20u32 {
                match provider.settle(id, settlement, amount).await {
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

    /// The saga decided bookings' fate: record the settlements they call
    /// for, in the consumer's transaction. The batch's payments are read
    /// at once, each decision moves its payment on in turn (a booking
    /// confirmed then cancelled in one batch is captured, then voided:
    /// the capture never reached the provider), and each payment is
    /// written once. Bookings paid otherwise (or free) have no payment
    /// here and are passed over.
    pub async fn on_bookings(&self, tx: &mut Tx, decisions: &[Decision]) -> anyhow::Result<()> {
        let bookings = decisions.iter().map(|d| d.reservation).collect();
        let mut read = self.store.load_for_bookings(tx, bookings).await?;
        let mut requests: HashMap<PaymentId, Request> = HashMap::new();
        for decision in decisions {
            let Some((payment, read_at)) = read.get_mut(&decision.reservation) else {
                continue;
            };
            let standing = Standing {
                status: payment.status,
                pending: payment.pending,
            };
            let Some(settlement) = settlement_for(standing, decision.outcome) else {
                continue;
            };
            payment.pending = Some(settlement);
            requests
                .entry(payment.id)
                .and_modify(|request| {
                    request.settlement = settlement;
                    request.traceparent = decision.traceparent.clone();
                    request.version += 1;
                })
                .or_insert_with(|| Request {
                    payment: payment.id,
                    settlement,
                    traceparent: decision.traceparent.clone(),
                    read_at: *read_at,
                    version: *read_at + 1,
                });
        }
        if requests.is_empty() {
            return Ok(());
        }
        // One order for every batch's writes.
        let mut requests: Vec<Request> = requests.into_values().collect();
        requests.sort_unstable_by_key(|request| request.payment);
        self.store.request_all(tx, &requests).await?;
        self.settle_now.notify_one();
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
        for Waiting {
            payment,
            version,
            traceparent,
        } in waiting
        {
            let Some(settlement) = payment.pending else {
                continue;
            };
            let span = settlement_span(&payment, settlement, traceparent.as_deref());
            let settling = self
                .provider
                .settle(payment.id, settlement, payment.amount)
                .instrument(span.clone())
                .await;
            match settling {
                Ok(()) => done.push(Settled {
                    traceparent: span.in_scope(runtime::telemetry::traceparent),
                    payment,
                    version,
                    settlement,
                }),
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
        for Settled { settlement, .. } in &done {
            metrics::counter!("boxoffice_payments_total", "outcome" => settlement.outcome().as_str())
                .increment(1);
        }
        match failure {
            Some(error) => Err(Unavailable(format!("the payment provider ({error})")).into()),
            None => Ok(settled),
        }
    }
}

/// The span a settlement is carried out in: under the trace of the step
/// that asked for it (the saga's confirmation, a cancellation), so that it
/// and the event it writes stay in the booking's trace. None at all (not
/// even its name formatted) when traces are off.
fn settlement_span(payment: &Payment, settlement: Settlement, traceparent: Option<&str>) -> Span {
    if !runtime::telemetry::is_on() {
        return Span::none();
    }
    let span = tracing::info_span!(
        "settle",
        otel.name = format!("{} payment", settlement.as_str()),
        payment.id = %payment.id,
        reservation.id = tracing::field::Empty,
    );
    if let Some(reservation) = payment.reservation_id {
        span.record("reservation.id", tracing::field::display(reservation));
    }
    runtime::telemetry::continue_from(&span, traceparent, None);
    span
}

fn answer_sale(payment: Payment, sale: &Sale) -> Result<Payment, ChargeError> {
    match sale_standing(&payment, sale.user_id, sale.amount) {
        SaleStanding::Paid => Ok(payment),
        SaleStanding::Declined(reason) => Err(ChargeError::Declined(reason)),
        SaleStanding::Cancelled => Err(ChargeError::Cancelled(payment.id)),
        SaleStanding::Different => Err(ChargeError::Different(payment.id)),
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
        let decision = Decision {
            reservation,
            outcome,
            traceparent: None,
        };
        payments.on_bookings(&mut tx, &[decision]).await.unwrap();
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

    /// Both may land in one group commit, i.e. one multi-row insert in
    /// which the second row conflicts with the first.
    #[tokio::test]
    async fn two_authorisations_of_one_booking_at_once_answer_one_payment() {
        let dir = tempfile::tempdir().unwrap();
        let (payments, _) = payments(&dir, ProviderSettings::default()).await;
        let request = booking(15_000);
        let (first, second) = tokio::join!(
            payments.authorise(request.clone()),
            payments.authorise(request.clone())
        );
        assert_eq!(first.unwrap().id, second.unwrap().id);
        let reader = payments.store().store().reader();
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payments")
            .fetch_one(reader)
            .await
            .unwrap();
        let announced: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
            .fetch_one(reader)
            .await
            .unwrap();
        assert_eq!((stored, announced), (1, 1));
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

    fn sale(amount: i64) -> Sale {
        Sale {
            payment_id: PaymentId::new(),
            user_id: UserId::new(),
            amount: Money::parse(amount).unwrap(),
        }
    }

    /// The events in payment's outbox, oldest first.
    async fn published(payments: &Payments) -> Vec<PaymentEvent> {
        use contracts::IntegrationEvent;
        use sqlx::Row;
        let rows = sqlx::query("SELECT envelope FROM outbox ORDER BY seq")
            .fetch_all(payments.store().store().reader())
            .await
            .unwrap();
        rows.iter()
            .map(|row| {
                let text: String = row.try_get("envelope").unwrap();
                let envelope: kernel::Envelope = serde_json::from_str(&text).unwrap();
                PaymentEvent::from_envelope(&envelope).unwrap().unwrap()
            })
            .collect()
    }

    async fn sale_status(payments: &Payments, id: PaymentId) -> (Status, Option<Settlement>) {
        let payment = payments.store().find(id).await.unwrap().unwrap();
        (payment.status, payment.pending)
    }

    #[tokio::test]
    async fn a_sale_is_authorised_and_captured_at_once_for_no_booking() {
        let dir = tempfile::tempdir().unwrap();
        let (payments, _) = payments(&dir, ProviderSettings::default()).await;
        let sale = sale(3_000);
        let paid = payments.charge(sale.clone()).await.unwrap();
        assert_eq!(paid.id, sale.payment_id);
        assert_eq!((paid.status, paid.pending), (Status::Captured, None));
        let events = published(&payments).await;
        assert!(
            matches!(
                events.as_slice(),
                [
                    PaymentEvent::PaymentAuthorised { charge: authorised, .. },
                    PaymentEvent::PaymentCaptured { charge: captured, .. },
                ] if authorised == captured
                    && captured.reservation_id.is_none()
                    && captured.payment_id == sale.payment_id
                    && captured.amount.minor_units() == 3_000
            ),
            "{events:#?}"
        );
        let listed = payments
            .store()
            .list(Some(sale.user_id), None, 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(listed, [paid]);
    }

    #[tokio::test]
    async fn charging_again_under_the_same_payment_id_answers_the_first_outcome_and_charges_once() {
        let dir = tempfile::tempdir().unwrap();
        let settings = ProviderSettings {
            decline_above: Some(5_000),
            ..ProviderSettings::default()
        };
        let (payments, provider) = payments(&dir, settings).await;
        let paid = sale(3_000);
        let first = payments.charge(paid.clone()).await.unwrap();
        // Even with the card now refusing everything, the repeat is paid.
        provider.set(ProviderSettings {
            decline_above: Some(0),
            ..ProviderSettings::default()
        });
        let again = payments.charge(paid.clone()).await.unwrap();
        assert_eq!(first, again);

        provider.set(settings);
        let refused = sale(6_000);
        let declined = payments.charge(refused.clone()).await;
        assert!(
            matches!(&declined, Err(ChargeError::Declined(reason)) if reason.contains("5000")),
            "{declined:?}"
        );
        provider.set(ProviderSettings::default());
        let again = payments.charge(refused.clone()).await;
        assert!(matches!(again, Err(ChargeError::Declined(_))), "{again:?}");
        assert_eq!(
            sale_status(&payments, refused.payment_id).await,
            (Status::Declined, None)
        );
        // Authorised + captured once, declined once.
        assert_eq!(published(&payments).await.len(), 3);

        let other_amount = Sale {
            amount: Money::parse(3_001).unwrap(),
            ..paid
        };
        let reused = payments.charge(other_amount).await;
        assert!(
            matches!(reused, Err(ChargeError::Different(_))),
            "{reused:?}"
        );
    }

    #[tokio::test]
    async fn a_sale_while_the_provider_is_down_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let down = ProviderSettings {
            down: true,
            ..ProviderSettings::default()
        };
        let (payments, provider) = payments(&dir, down).await;
        let sale = sale(3_000);
        let refused = payments.charge(sale.clone()).await;
        assert!(
            matches!(refused, Err(ChargeError::Unavailable(_))),
            "{refused:?}"
        );
        assert!(payments
            .store()
            .find(sale.payment_id)
            .await
            .unwrap()
            .is_none());
        assert!(published(&payments).await.is_empty());
        // Asking again once it is back charges, once.
        provider.set(ProviderSettings::default());
        assert_eq!(
            payments.charge(sale.clone()).await.unwrap().status,
            Status::Captured
        );
    }

    /// Fails every capture, approves the rest: a provider that falls over
    /// between the authorisation and the capture.
    struct CaptureFails(FakeProvider, std::sync::atomic::AtomicBool);

    #[async_trait::async_trait]
    impl PaymentProvider for CaptureFails {
        async fn authorise(&self, payment: PaymentId, amount: Money) -> Result<(), ProviderError> {
            self.0.authorise(payment, amount).await
        }

        async fn settle(
            &self,
            payment: PaymentId,
            settlement: Settlement,
            amount: Money,
        ) -> Result<(), ProviderError> {
            if settlement == Settlement::Capture && self.1.load(std::sync::atomic::Ordering::SeqCst)
            {
                return Err(ProviderError::Unavailable("it failed to answer".into()));
            }
            self.0.settle(payment, settlement, amount).await
        }
    }

    #[tokio::test]
    async fn a_sale_whose_capture_fails_is_paid_and_captured_by_the_settler() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&sqlite_url(dir.path(), "payment"), crate::MIGRATIONS)
            .await
            .unwrap();
        let provider = Arc::new(CaptureFails(
            FakeProvider::new(ProviderSettings::default()),
            std::sync::atomic::AtomicBool::new(true),
        ));
        let payments = Payments::new(PaymentStore::new(store), provider.clone());
        let sale = sale(3_000);
        let paid = payments.charge(sale.clone()).await.unwrap();
        assert_eq!(
            (paid.status, paid.pending),
            (Status::Authorised, Some(Settlement::Capture))
        );
        assert!(payments.settle_some().await.is_err());
        provider.1.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(payments.settle_some().await.unwrap(), 1);
        assert_eq!(
            sale_status(&payments, sale.payment_id).await,
            (Status::Captured, None)
        );
        assert!(matches!(
            published(&payments).await.as_slice(),
            [
                PaymentEvent::PaymentAuthorised { .. },
                PaymentEvent::PaymentCaptured { charge, .. }
            ] if charge.reservation_id.is_none()
        ));
    }

    #[tokio::test]
    async fn cancelling_a_captured_sale_refunds_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let (payments, _) = payments(&dir, ProviderSettings::default()).await;
        let sale = sale(3_000);
        payments.charge(sale.clone()).await.unwrap();
        for _ in 0..2 {
            payments
                .cancel_charge(sale.payment_id, sale.user_id, sale.amount)
                .await
                .unwrap();
        }
        assert_eq!(
            sale_status(&payments, sale.payment_id).await,
            (Status::Captured, Some(Settlement::Refund))
        );
        assert_eq!(payments.settle_some().await.unwrap(), 1);
        assert_eq!(
            sale_status(&payments, sale.payment_id).await,
            (Status::Refunded, None)
        );
        payments
            .cancel_charge(sale.payment_id, sale.user_id, sale.amount)
            .await
            .unwrap();
        assert_eq!(payments.settle_some().await.unwrap(), 0);
        assert!(matches!(
            published(&payments).await.last(),
            Some(PaymentEvent::PaymentRefunded { charge, .. }) if charge.reservation_id.is_none()
        ));
        // The charge is asked again: it was taken back, and says so.
        let again = payments.charge(sale).await;
        assert!(matches!(again, Err(ChargeError::Cancelled(_))), "{again:?}");
    }

    #[tokio::test]
    async fn a_cancel_before_the_charge_arrives_refuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let (payments, _) = payments(&dir, ProviderSettings::default()).await;
        let sale = sale(3_000);
        payments
            .cancel_charge(sale.payment_id, sale.user_id, sale.amount)
            .await
            .unwrap();
        let late = payments.charge(sale.clone()).await;
        assert!(matches!(late, Err(ChargeError::Cancelled(_))), "{late:?}");
        assert_eq!(
            sale_status(&payments, sale.payment_id).await,
            (Status::Voided, None)
        );
        assert!(published(&payments).await.is_empty());
    }

    #[tokio::test]
    async fn a_booking_payment_cannot_be_charged_or_cancelled_as_a_sale() {
        let dir = tempfile::tempdir().unwrap();
        let (payments, _) = payments(&dir, ProviderSettings::default()).await;
        let request = booking(15_000);
        let authorised = payments.authorise(request.clone()).await.unwrap();
        let cancel = payments
            .cancel_charge(authorised.id, request.user_id, request.amount)
            .await;
        assert!(
            matches!(cancel, Err(ChargeError::Different(_))),
            "{cancel:?}"
        );
        let charge = payments
            .charge(Sale {
                payment_id: authorised.id,
                user_id: request.user_id,
                amount: request.amount,
            })
            .await;
        assert!(
            matches!(charge, Err(ChargeError::Different(_))),
            "{charge:?}"
        );
        assert_eq!(
            status(&payments, request.reservation_id).await,
            (Status::Authorised, None)
        );
    }

    /// Where each booking's payment stands: status, pending settlement and
    /// version.
    async fn standings(
        payments: &Payments,
        bookings: &[ReservationId],
    ) -> Vec<(Status, Option<Settlement>, i64)> {
        let mut standings = Vec::new();
        for booking in bookings {
            let (status, pending) = status(payments, *booking).await;
            let version: i64 =
                sqlx::query_scalar("SELECT version FROM payments WHERE reservation_id = $1")
                    .bind(booking.to_string())
                    .fetch_one(payments.store().store().reader())
                    .await
                    .unwrap();
            standings.push((status, pending, version));
        }
        standings
    }

    /// Six authorised bookings, one captured before; then the saga's
    /// decisions, one at a time or as one batch. Tells where each ended.
    async fn decisions_applied(
        payments: &Payments,
        as_one_batch: bool,
    ) -> Vec<(Status, Option<Settlement>, i64)> {
        let mut bookings = Vec::new();
        for _ in 0..6 {
            let request = booking(15_000);
            payments.authorise(request.clone()).await.unwrap();
            bookings.push(request.reservation_id);
        }
        let [confirmed, captured_before, abandoned, confirmed_then_cancelled, cancelled, _untouched] =
            bookings[..]
        else {
            unreachable!()
        };
        decide(payments, captured_before, BookingOutcome::Confirmed).await;
        assert_eq!(payments.settle_some().await.unwrap(), 1);
        let decided = |reservation, outcome| Decision {
            reservation,
            outcome,
            traceparent: None,
        };
        let decisions = [
            decided(confirmed, BookingOutcome::Confirmed),
            decided(confirmed, BookingOutcome::Confirmed),
            decided(captured_before, BookingOutcome::Cancelled),
            decided(abandoned, BookingOutcome::Abandoned),
            decided(confirmed_then_cancelled, BookingOutcome::Confirmed),
            decided(confirmed_then_cancelled, BookingOutcome::Cancelled),
            decided(cancelled, BookingOutcome::Cancelled),
            // Paid otherwise: no payment here.
            decided(ReservationId::new(), BookingOutcome::Confirmed),
        ];
        if as_one_batch {
            let mut tx = payments.store().store().begin().await.unwrap();
            payments.on_bookings(&mut tx, &decisions).await.unwrap();
            tx.commit().await.unwrap();
        } else {
            for decision in decisions {
                decide(payments, decision.reservation, decision.outcome).await;
            }
        }
        standings(payments, &bookings).await
    }

    async fn a_batch_of_decisions_settles_as_one_at_a_time_does(
        one: &Payments,
        batched: &Payments,
    ) {
        let expected = decisions_applied(one, false).await;
        assert_eq!(decisions_applied(batched, true).await, expected);
        use Settlement::*;
        use Status::*;
        assert_eq!(
            expected,
            [
                (Authorised, Some(Capture), 2),
                (Captured, Some(Refund), 4),
                (Authorised, Some(Void), 2),
                (Authorised, Some(Void), 3),
                (Authorised, Some(Void), 2),
                (Authorised, None, 1),
            ]
        );
    }

    #[tokio::test]
    async fn a_batch_of_decisions_settles_as_one_at_a_time_does_on_sqlite() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let settings = ProviderSettings::default();
        a_batch_of_decisions_settles_as_one_at_a_time_does(
            &payments(&one, settings).await.0,
            &payments(&two, settings).await.0,
        )
        .await;
    }

    #[tokio::test]
    async fn a_batch_of_decisions_settles_as_one_at_a_time_does_on_postgres() {
        let (Some(one), Some(two)) = (
            runtime::store::test_postgres_url("payment", "one_at_a_time"),
            runtime::store::test_postgres_url("payment", "batched"),
        ) else {
            return;
        };
        let on = |url: String| async move {
            let store = Store::connect(&url, crate::MIGRATIONS).await.unwrap();
            Payments::new(
                PaymentStore::new(store),
                Arc::new(FakeProvider::new(ProviderSettings::default())),
            )
        };
        a_batch_of_decisions_settles_as_one_at_a_time_does(&on(one).await, &on(two).await).await;
    }

    /// Charged, repeated, cancelled and refunded, and a late charge
    /// refused, on PostgreSQL when `BOXOFFICE_TEST_POSTGRES` names a server.
    #[tokio::test]
    async fn sales_hold_on_postgres() {
        let Some(url) = runtime::store::test_postgres_url("payment", "sales") else {
            return;
        };
        let store = Store::connect(&url, crate::MIGRATIONS).await.unwrap();
        let payments = Payments::new(
            PaymentStore::new(store),
            Arc::new(FakeProvider::new(ProviderSettings::default())),
        );
        let paid = sale(3_000);
        let first = payments.charge(paid.clone()).await.unwrap();
        assert_eq!(payments.charge(paid.clone()).await.unwrap(), first);
        payments
            .cancel_charge(paid.payment_id, paid.user_id, paid.amount)
            .await
            .unwrap();
        assert_eq!(payments.settle_some().await.unwrap(), 1);
        assert_eq!(
            sale_status(&payments, paid.payment_id).await,
            (Status::Refunded, None)
        );
        let late = sale(3_000);
        payments
            .cancel_charge(late.payment_id, late.user_id, late.amount)
            .await
            .unwrap();
        assert!(matches!(
            payments.charge(late).await,
            Err(ChargeError::Cancelled(_))
        ));
        assert_eq!(published(&payments).await.len(), 3);
    }
}
