//! Calls the payment service to authorise a booking, synchronously, with a
//! timeout and behind a circuit breaker.
//!
//! While payment answers, each booking waits at most the timeout for its
//! authorisation. When it stops answering (timeouts, refused connections,
//! 5xx), the breaker opens after a few consecutive failures and bookings
//! are refused at once with "payment is unavailable, try again later"
//! instead of piling up behind a dead dependency; after a pause it lets
//! calls through again (half-open) and closes on the first success. A
//! declined card is an answer, not a failure: it never opens the breaker.
//!
//! The timeout, the breaker and its gauge are the shared
//! [`runtime::breaker`]: the state is
//! `boxoffice_circuit_breaker_state{dependency="payment",caller="reservation"}`
//! (0 closed, 1 half-open, 2 open) and every change is logged.

use std::time::Duration;

use kernel::ids::{ReservationId, UserId};
use kernel::Money;
use runtime::breaker::{CallError, Dependency, GuardedClient};
use serde::Serialize;

/// How the call to payment is guarded (`[reservation.payment]`).
pub use runtime::breaker::CallSettings as PaymentCallSettings;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The card was declined: an answer, with the provider's reason.
    #[error("{0}")]
    Declined(String),
    /// Payment did not answer in time, failed, or the breaker is open.
    #[error("{detail}")]
    Unavailable {
        detail: String,
        retry_after_secs: u32,
        /// The request may have reached payment: an authorisation could
        /// exist and must be voided.
        maybe_authorised: bool,
    },
}

impl From<CallError> for PaymentError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Declined(reason) => PaymentError::Declined(reason),
            CallError::Unavailable {
                detail,
                retry_after_secs,
                maybe_done,
            } => PaymentError::Unavailable {
                detail,
                retry_after_secs,
                maybe_authorised: maybe_done,
            },
        }
    }
}

#[derive(Clone, Debug)]
pub struct PaymentClient {
    calls: GuardedClient,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuthoriseRequest {
    reservation_id: ReservationId,
    user_id: UserId,
    amount: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VoidRequest {
    user_id: UserId,
    amount: i64,
}

impl PaymentClient {
    pub fn new(base_url: &str, settings: PaymentCallSettings) -> PaymentClient {
        let payment = Dependency {
            name: "payment",
            caller: "reservation",
            while_open: "bookings by card are refused at once until payment answers again",
        };
        PaymentClient {
            // Payment answers a repeated authorisation with what the first
            // got (idempotent by reservation): one whose connection broke
            // may go again to another replica.
            calls: GuardedClient::new(base_url, payment, settings).repeatable(),
        }
    }

    /// The guarded client, whose breaker admins may look at.
    pub fn guarded(&self) -> GuardedClient {
        self.calls.clone()
    }

    /// Authorises `amount` for the booking, or says why not.
    pub async fn authorise(
        &self,
        reservation: ReservationId,
        user: UserId,
        amount: Money,
    ) -> Result<(), PaymentError> {
        let request = AuthoriseRequest {
            reservation_id: reservation,
            user_id: user,
            amount: amount.minor_units(),
        };
        // The answer (the payment) is not needed: authorised is enough.
        self.calls
            .post::<_, serde::de::IgnoredAny>("/internal/authorisations", &request)
            .await
            .map(|_| ())
            .map_err(PaymentError::from)
    }

    /// Voids whatever authorisation the booking may have got, retrying in
    /// the background until payment takes the request: a booking that was
    /// never stored must not leave a charge behind. Not through the
    /// breaker: the void must go out whatever its state.
    pub fn abandon(&self, reservation: ReservationId, user: UserId, amount: Money) {
        let calls = self.calls.clone();
        let path = format!("/internal/authorisations/{reservation}/void");
        tokio::spawn(async move {
            let body = VoidRequest {
                user_id: user,
                amount: amount.minor_units(),
            };
            for attempt in 0..30u32 {
                // Each attempt on the replica whose turn it is.
                match calls.http().post(calls.url(&path)).json(&body).send().await {
                    Ok(response) if response.status().is_success() => return,
                    Ok(response) => {
                        tracing::warn!(%reservation, status = %response.status(), attempt, "voiding an abandoned authorisation failed; trying again");
                    }
                    Err(error) => {
                        tracing::warn!(%reservation, %error, attempt, "voiding an abandoned authorisation failed; trying again");
                    }
                }
                tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await;
            }
            tracing::error!(%reservation, "an abandoned authorisation could not be voided; payment keeps it until it expires");
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_fallback_answer_is_the_one_bookings_give() {
        let client = PaymentClient::new("http://127.0.0.1:9/", PaymentCallSettings::default());
        assert_eq!(
            client.calls.unavailable(),
            "payment is unavailable, try again later"
        );
        assert_eq!(client.calls.settings().timeout_ms, 610);
    }
}
