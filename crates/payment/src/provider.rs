//! The payment provider port, and the built-in fake provider.
//!
//! A real provider (a card acquirer's API) would be one more adapter of
//! [`PaymentProvider`]. Every call names the payment it is about: real
//! providers take that as an idempotency key, so a call repeated after a
//! crash or a lost answer does not charge twice.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use kernel::ids::PaymentId;
use kernel::Money;

use crate::domain::{ProviderSettings, Settlement, Verdict};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The card was refused; trying again will not help.
    #[error("{0}")]
    Declined(String),
    /// The provider could not be reached or failed; try again later.
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    /// Reserves `amount` on the customer's card.
    async fn authorise(&self, payment: PaymentId, amount: Money) -> Result<(), ProviderError>;
    /// Captures, voids or refunds an authorised payment.
    async fn settle(
        &self,
        payment: PaymentId,
        settlement: Settlement,
        amount: Money,
    ) -> Result<(), ProviderError>;
}

/// A provider that answers by its settings: latency, a failure rate, an
/// outage switch and a decline rule. For demos, tests and benchmarks.
#[derive(Debug, Clone)]
pub struct FakeProvider {
    settings: Arc<RwLock<ProviderSettings>>,
}

impl FakeProvider {
    pub fn new(settings: ProviderSettings) -> FakeProvider {
        FakeProvider {
            settings: Arc::new(RwLock::new(settings)),
        }
    }

    pub fn settings(&self) -> ProviderSettings {
        *self.settings.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set(&self, settings: ProviderSettings) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = settings;
        tracing::info!(?settings, "payment provider settings changed");
    }

    async fn respond(&self) -> ProviderSettings {
        let settings = self.settings();
        if settings.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(settings.latency_ms)).await;
        }
        settings
    }
}

fn roll() -> f64 {
    rand::random::<f64>()
}

fn failed(settings: &ProviderSettings) -> ProviderError {
    ProviderError::Unavailable(if settings.down {
        "it is down".to_owned()
    } else {
        "it failed to answer".to_owned()
    })
}

#[async_trait]
impl PaymentProvider for FakeProvider {
    async fn authorise(&self, _payment: PaymentId, amount: Money) -> Result<(), ProviderError> {
        let settings = self.respond().await;
        match settings.judge(amount.minor_units(), roll()) {
            Verdict::Approve => Ok(()),
            Verdict::Decline(reason) => Err(ProviderError::Declined(reason)),
            Verdict::Fail => Err(failed(&settings)),
        }
    }

    async fn settle(
        &self,
        _payment: PaymentId,
        _settlement: Settlement,
        _amount: Money,
    ) -> Result<(), ProviderError> {
        let settings = self.respond().await;
        match settings.judge_settlement(roll()) {
            Verdict::Fail => Err(failed(&settings)),
            Verdict::Approve | Verdict::Decline(_) => Ok(()),
        }
    }
}
