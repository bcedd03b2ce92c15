//! The wallet context: customers' loyalty points.
//!
//! A booking paid by card earns a share of its amount in points when the
//! payment is captured, and gives them back when it is refunded, as far as
//! the balance allows (the balance never goes below zero; what could not
//! be taken back is recorded as a shortfall). Both are announced as wallet
//! events through the outbox. Spending points is in the domain and the
//! store already, for the bike line that pays with them.
//!
//! # Layout
//! - [`domain`]: points, the earn rate and the wallet's rules (pure).
//! - `adapters::sql`: wallets and their entries, locked and guarded writes.
//! - `adapters::policy`: the points policy reacting to payment events.
//! - `adapters::http`: `GET /points` (the caller's own).

mod adapters;
pub mod domain;

use std::sync::Arc;

use contracts::topics;
use kernel::bus::EventBus;
use runtime::consumer::Consumer;
use runtime::{App, Store};
use serde::{Deserialize, Serialize};

pub use adapters::sql::MIGRATIONS;

/// How the wallet service behaves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Points a captured card payment earns, in percent of its amount.
    pub earn_rate_percent: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            earn_rate_percent: 10,
        }
    }
}

/// Builds the wallet service on its database and the bus.
pub async fn build(
    database_url: &str,
    bus: Arc<dyn EventBus>,
    settings: Settings,
) -> anyhow::Result<App> {
    let store = Store::connect(database_url, MIGRATIONS).await?;
    let wallets = adapters::sql::Wallets::new(store.clone());
    let router = adapters::http::router(wallets.clone());
    let consumer = Consumer {
        group: "wallet.points".to_owned(),
        topics: vec![topics::PAYMENT],
        store: store.clone(),
        bus: bus.clone(),
        handler: Arc::new(adapters::policy::PointsPolicy::new(
            wallets,
            domain::EarnRate::percent(settings.earn_rate_percent),
        )),
    };
    let relay_store = store.clone();
    Ok(App::new("wallet", router)
        .ready_when_reachable(store.clone(), bus.clone())
        .consumer("points-policy", consumer)
        .worker("outbox-relay", move |shutdown| {
            runtime::outbox::relay(relay_store, bus, shutdown)
        }))
}
