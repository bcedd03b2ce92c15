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
//! The breaker is `failsafe`'s; its state is the gauge
//! `boxoffice_circuit_breaker_state{dependency="payment"}` (0 closed,
//! 1 half-open, 2 open) and every change is logged.

use std::time::Duration;

use failsafe::backoff::{self, Constant};
use failsafe::failure_policy::{consecutive_failures, ConsecutiveFailures};
use failsafe::futures::CircuitBreaker;
use failsafe::{Config, Instrument, StateMachine};
use kernel::ids::{ReservationId, UserId};
use kernel::Money;
use serde::{Deserialize, Serialize};

/// How the call to payment is guarded (`[reservation.payment]`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default)]
pub struct PaymentCallSettings {
    /// Longest wait for an authorisation.
    pub timeout_ms: u64,
    /// Consecutive failures that open the breaker.
    pub failures_to_open: u32,
    /// How long the breaker stays open before letting a call through.
    pub open_for_ms: u64,
}

impl Default for PaymentCallSettings {
    fn default() -> Self {
        PaymentCallSettings {
            timeout_ms: 610,
            failures_to_open: 5,
            open_for_ms: 2_000,
        }
    }
}

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

type Breaker = StateMachine<ConsecutiveFailures<Constant>, BreakerLog>;

#[derive(Clone)]
pub struct PaymentClient {
    http: reqwest::Client,
    base_url: String,
    breaker: Breaker,
    settings: PaymentCallSettings,
}

impl std::fmt::Debug for PaymentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentClient")
            .field("base_url", &self.base_url)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
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

#[derive(Deserialize)]
struct Problem {
    detail: String,
}

/// The fallback answer while payment cannot be used.
pub const UNAVAILABLE: &str = "payment is unavailable, try again later";

impl PaymentClient {
    pub fn new(base_url: &str, settings: PaymentCallSettings) -> PaymentClient {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .build()
            .expect("a plain HTTP client always builds");
        let policy = consecutive_failures(
            settings.failures_to_open.max(1),
            backoff::constant(Duration::from_millis(settings.open_for_ms)),
        );
        let breaker = Config::new()
            .failure_policy(policy)
            .instrument(BreakerLog)
            .build();
        PaymentClient {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            breaker,
            settings,
        }
    }

    fn retry_after_secs(&self) -> u32 {
        u32::try_from(self.settings.open_for_ms.div_ceil(1000))
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// Authorises `amount` for the booking, or says why not.
    pub async fn authorise(
        &self,
        reservation: ReservationId,
        user: UserId,
        amount: Money,
    ) -> Result<(), PaymentError> {
        let call = self.request(reservation, user, amount);
        // Only failures to answer count against payment; a decline is an answer.
        let counts = |error: &PaymentError| matches!(error, PaymentError::Unavailable { .. });
        match self.breaker.call_with(counts, call).await {
            Ok(()) => Ok(()),
            Err(failsafe::Error::Inner(error)) => Err(error),
            Err(failsafe::Error::Rejected) => Err(PaymentError::Unavailable {
                detail: UNAVAILABLE.to_owned(),
                retry_after_secs: self.retry_after_secs(),
                maybe_authorised: false,
            }),
        }
    }

    async fn request(
        &self,
        reservation: ReservationId,
        user: UserId,
        amount: Money,
    ) -> Result<(), PaymentError> {
        let unavailable = |why: String, maybe_authorised: bool| PaymentError::Unavailable {
            detail: format!("{UNAVAILABLE} ({why})"),
            retry_after_secs: 1,
            maybe_authorised,
        };
        let response = self
            .http
            .post(format!("{}/internal/authorisations", self.base_url))
            .json(&AuthoriseRequest {
                reservation_id: reservation,
                user_id: user,
                amount: amount.minor_units(),
            })
            .send()
            .await
            .map_err(|error| {
                // A request that timed out may still be authorised later.
                let maybe = !error.is_connect();
                let why = if error.is_timeout() {
                    format!("no answer within {} ms", self.settings.timeout_ms)
                } else {
                    "it cannot be reached".to_owned()
                };
                unavailable(why, maybe)
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let detail = response
            .json::<Problem>()
            .await
            .map(|p| p.detail)
            .unwrap_or_else(|_| status.to_string());
        match status.as_u16() {
            402 => Err(PaymentError::Declined(detail)),
            // 503 from payment: its provider is down; nothing was authorised.
            503 => Err(unavailable(detail, false)),
            _ => Err(unavailable(format!("it answered {status}: {detail}"), true)),
        }
    }

    /// Voids whatever authorisation the booking may have got, retrying in
    /// the background until payment takes the request: a booking that was
    /// never stored must not leave a charge behind.
    pub fn abandon(&self, reservation: ReservationId, user: UserId, amount: Money) {
        let http = self.http.clone();
        let url = format!(
            "{}/internal/authorisations/{reservation}/void",
            self.base_url
        );
        tokio::spawn(async move {
            let body = VoidRequest {
                user_id: user,
                amount: amount.minor_units(),
            };
            for attempt in 0..30u32 {
                match http.post(&url).json(&body).send().await {
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

/// Logs and measures the breaker's changes of state.
#[derive(Debug, Clone, Copy)]
pub struct BreakerLog;

fn breaker_state(value: f64) {
    metrics::gauge!("boxoffice_circuit_breaker_state", "dependency" => "payment").set(value);
}

impl Instrument for BreakerLog {
    fn on_call_rejected(&self) {
        metrics::counter!("boxoffice_circuit_breaker_rejected_total", "dependency" => "payment")
            .increment(1);
    }

    fn on_open(&self) {
        tracing::warn!(dependency = "payment", "circuit breaker opened: bookings by card are refused at once until payment answers again");
        breaker_state(2.0);
    }

    fn on_half_open(&self) {
        tracing::info!(
            dependency = "payment",
            "circuit breaker half-open: trying payment again"
        );
        breaker_state(1.0);
    }

    fn on_closed(&self) {
        tracing::info!(dependency = "payment", "circuit breaker closed");
        breaker_state(0.0);
    }
}
