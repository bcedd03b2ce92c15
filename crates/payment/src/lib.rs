//! The payment context: card payments for bookings.
//!
//! `authorise` is synchronous — the reservation service calls it while the
//! customer waits, and no authorisation means no booking. What happens
//! next follows the saga by events: a confirmed booking is captured, a
//! rejected or expired one voided, a cancelled one refunded. Those
//! settlements are recorded at once and carried out with the provider by a
//! background settler, so they wait out a provider outage and are done,
//! once, when it is back. Each step is an event
//! (`PaymentAuthorised/Declined/Captured/Voided/Refunded`).
//!
//! A card sale for no booking (the wallet selling points) is `charge`d:
//! authorised and captured at once, idempotent by the caller's payment id,
//! its events without a reservation. A caller that never got the answer
//! cancels it: refunded if it was taken, refused if it arrives late.
//!
//! # Layout
//! - [`domain`]: statuses, which settlement a booking outcome calls for,
//!   the fake provider's rules (pure).
//! - [`provider`]: the `PaymentProvider` port and the built-in fake.
//! - [`app`]: authorise, charge, request settlements, settle.
//! - `adapters`: REST, SQL, the settlement policy.

mod adapters;
pub mod app;
pub mod domain;
pub mod provider;

use std::sync::Arc;

use contracts::topics;
use kernel::bus::EventBus;
use runtime::consumer::Consumer;
use runtime::{App, Store};
use serde::{Deserialize, Serialize};

pub use adapters::sql::MIGRATIONS;

/// The payment service's public operations and the types they take and
/// answer, for the public API document the gateway serves.
pub fn api() -> utoipa::openapi::OpenApi {
    <adapters::http::Api as utoipa::OpenApi>::openapi()
}
pub use domain::ProviderSettings;

/// How the payment service is configured (`[payment]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The built-in provider's behaviour at start; admins change it at run
    /// time with `PUT /admin/payment-provider`.
    pub provider: ProviderSettings,
}

pub async fn build(
    database_url: &str,
    bus: Arc<dyn EventBus>,
    settings: Settings,
) -> anyhow::Result<App> {
    let store = Store::connect(database_url, MIGRATIONS).await?;
    let provider = provider::FakeProvider::new(settings.provider.validate()?);
    let payments = app::Payments::new(
        adapters::sql::PaymentStore::new(store.clone()),
        Arc::new(provider.clone()),
    );
    let consumer = Consumer {
        group: adapters::policy::GROUP.to_owned(),
        topics: vec![topics::RESERVATION],
        store: store.clone(),
        bus: bus.clone(),
        handler: Arc::new(adapters::policy::SettlementPolicy::new(payments.clone())),
    };
    let relay_store = store.clone();
    let settler = payments.clone();
    Ok(
        App::new("payment", adapters::http::router(payments, provider))
            .ready_when_reachable(store.clone(), bus.clone())
            .consumer("settlement-policy", consumer)
            .worker("settler", move |shutdown| settler.settle(shutdown))
            .worker("outbox-relay", move |shutdown| {
                runtime::outbox::relay(relay_store, bus, shutdown)
            }),
    )
}
