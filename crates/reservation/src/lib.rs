//! The reservation context: the reservation aggregate and the saga it owns.
//!
//! `POST /reservations` stores a *pending* reservation with its
//! `ReservationPlaced` event (transactional outbox) and answers 202 without
//! calling catalog; catalog's answer, arriving as an event, confirms or
//! rejects it. Listings are validated and priced from a local replica built
//! from catalog's events, falling back to one synchronous lookup for a
//! listing the replica has not heard of yet.
//!
//! # Layout
//! - [`domain`]: the aggregate, its commands, events and decisions (pure).
//! - `app`: use cases, one transaction each.
//! - `adapters`: REST, SQL, the catalog client, the saga policy.

mod adapters;
pub mod app;
pub mod domain;

use std::sync::Arc;

use contracts::topics;
use kernel::bus::EventBus;
use runtime::consumer::Consumer;
use runtime::{App, Store};

pub use adapters::sql::MIGRATIONS;

/// Builds the reservation service. `catalog_url` is where catalog's REST
/// API answers (for listings the replica has not seen yet).
pub async fn build(
    database_url: &str,
    catalog_url: &str,
    bus: Arc<dyn EventBus>,
) -> anyhow::Result<App> {
    let store = Store::connect(database_url, MIGRATIONS).await?;
    let reservations = app::Reservations::new(
        adapters::sql::ReservationStore::new(store.clone()),
        adapters::catalog_client::CatalogClient::new(catalog_url),
    );
    let router = adapters::http::router(reservations.clone());
    let consumer = Consumer {
        group: "reservation.saga".to_owned(),
        topics: vec![topics::CATALOG],
        store: store.clone(),
        bus: bus.clone(),
        handler: Arc::new(adapters::policy::SagaPolicy::new(reservations)),
    };
    let relay_store = store.clone();
    Ok(App::new("reservation", router)
        .ready_when_reachable(store.clone(), bus.clone())
        .consumer("saga-policy", consumer)
        .worker("outbox-relay", move |shutdown| {
            runtime::outbox::relay(relay_store, bus, shutdown)
        }))
}
