//! The catalog context: what can be booked and how much of it is left.
//!
//! It owns listings (movies with a ticket quota today; seats and bikes come
//! with their product lines) and is the single authority on inventory: a
//! reservation is only ever confirmed after catalog has held its tickets.
//!
//! # Layout
//! - [`domain`]: pure rules — validating a new listing, holding and
//!   releasing tickets against a quota.
//! - `adapters::http`: the admin and public REST routes.
//! - `adapters::sql`: listings and holds in the service's own database,
//!   with an optimistic guard so a quota can never go below zero.
//! - `adapters::policy`: the inventory policy reacting to reservation events.

mod adapters;
pub mod domain;

use std::sync::Arc;

use contracts::topics;
use kernel::bus::EventBus;
use runtime::consumer::Consumer;
use runtime::{App, Store};

pub use adapters::sql::MIGRATIONS;

/// Builds the catalog service on its database and the bus.
pub async fn build(database_url: &str, bus: Arc<dyn EventBus>) -> anyhow::Result<App> {
    let store = Store::connect(database_url, MIGRATIONS).await?;
    let listings = adapters::sql::Listings::new(store.clone());
    let router = adapters::http::router(listings.clone());
    let consumer = Consumer {
        group: "catalog.inventory".to_owned(),
        topics: vec![topics::RESERVATION],
        store: store.clone(),
        bus: bus.clone(),
        handler: Arc::new(adapters::policy::InventoryPolicy::new(listings)),
    };
    let relay_store = store.clone();
    Ok(App::new("catalog", router)
        .ready_when_reachable(store.clone(), bus.clone())
        .consumer("inventory-policy", consumer)
        .worker("outbox-relay", move |shutdown| {
            runtime::outbox::relay(relay_store, bus, shutdown)
        }))
}
