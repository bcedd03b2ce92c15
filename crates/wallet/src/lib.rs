//! The wallet context: customers' points.
//!
//! Points are bought with a card (`POST /points/purchases`: payment charges
//! the card while the customer waits, behind the shared circuit breaker,
//! and only a confirmed charge is credited), earned by bookings paid by
//! card (a share of the amount when the payment is captured, taken back
//! when it is refunded, as far as the balance allows), and spent on
//! bookings paid with points: the wallet is a step of the booking saga,
//! spending or refusing when a booking is placed and giving the points back
//! if it is rejected, expires or is cancelled. The balance never goes below
//! zero. Every change is a wallet event, through the outbox.
//!
//! # Layout
//! - [`domain`]: points, the earn rate, purchases and the wallet's rules (pure).
//! - [`app`]: buying points, and finishing purchases a stopped process left.
//! - `adapters::sql`: wallets, entries and purchases; locked, guarded writes.
//! - `adapters::policy`: the points policy reacting to payment events.
//! - `adapters::bookings`: the bookings policy reacting to reservation events.
//! - `adapters::payment_client`: payment's card sale, behind the breaker.
//! - `adapters::http`: `GET /points` and `POST /points/purchases` (the caller's own).

mod adapters;
pub mod app;
pub mod domain;
#[cfg(test)]
mod testing;

use std::sync::Arc;
use std::time::Duration;

use contracts::topics;
use kernel::bus::EventBus;
use runtime::breaker::CallSettings;
use runtime::consumer::Consumer;
use runtime::{App, Store};
use serde::{Deserialize, Serialize};

pub use adapters::sql::MIGRATIONS;

/// The wallet's operations and the types they take and answer, for the
/// public API document the gateway serves.
pub fn api() -> utoipa::openapi::OpenApi {
    <adapters::http::Api as utoipa::OpenApi>::openapi()
}

/// How the wallet service behaves (`[wallet]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Points a captured card payment earns, in percent of its amount.
    pub earn_rate_percent: u32,
    /// The call to payment that charges a purchase (`[wallet.payment]`:
    /// `timeout_ms`, `failures_to_open`, `open_for_ms`).
    pub payment: CallSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            earn_rate_percent: 10,
            payment: CallSettings {
                // A sale is two provider calls (authorise, then capture),
                // each given what a booking's authorisation gets.
                timeout_ms: 2 * CallSettings::default().timeout_ms,
                ..CallSettings::default()
            },
        }
    }
}

impl Settings {
    /// How long a purchase may stay pending before the recovery takes it
    /// for left behind by a stopped process: well beyond the longest call.
    fn stale_after(&self) -> Duration {
        Duration::from_millis(self.payment.timeout_ms.saturating_mul(2)) + Duration::from_secs(2)
    }
}

/// Builds the wallet service on its database and the bus; `payment_url` is
/// where payment's REST API answers (to charge purchases).
pub async fn build(
    database_url: &str,
    payment_url: &str,
    bus: Arc<dyn EventBus>,
    settings: Settings,
) -> anyhow::Result<App> {
    let store = Store::connect(database_url, MIGRATIONS).await?;
    let wallets = adapters::sql::Wallets::new(store.clone());
    let card = adapters::payment_client::CardSales::new(payment_url, settings.payment);
    let breakers = runtime::breaker::status_router(vec![card.guarded()]);
    let purchases = app::Purchases::new(wallets.clone(), Arc::new(card), settings.stale_after());
    let router = adapters::http::router(wallets.clone(), purchases.clone()).merge(breakers);
    let points = Consumer {
        group: adapters::policy::GROUP.to_owned(),
        topics: vec![topics::PAYMENT],
        store: store.clone(),
        bus: bus.clone(),
        handler: Arc::new(adapters::policy::PointsPolicy::new(
            wallets.clone(),
            domain::EarnRate::percent(settings.earn_rate_percent),
        )),
    };
    let bookings = Consumer {
        group: "wallet.bookings".to_owned(),
        topics: vec![topics::RESERVATION],
        store: store.clone(),
        bus: bus.clone(),
        handler: Arc::new(adapters::bookings::BookingsPolicy::new(wallets)),
    };
    let relay_store = store.clone();
    Ok(App::new("wallet", router)
        .ready_when_reachable(store.clone(), bus.clone())
        .consumer("points-policy", points)
        .consumer("bookings-policy", bookings)
        .worker("purchase-recovery", move |shutdown| {
            purchases.recover(shutdown)
        })
        .worker("outbox-relay", move |shutdown| {
            runtime::outbox::relay(relay_store, bus, shutdown)
        }))
}
