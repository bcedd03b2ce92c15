//! The my-page context: read models for customers, built from events alone
//! (it never reads another service's database).
//!
//! It reads reservation events (the bookings and their history), catalog
//! events (a listing's start and screen), payment events (where a booking's
//! payment stands) and wallet events (the points a booking earned).
//!
//! # Layout
//! - [`projection`]: what each event changes on a customer's page (pure).
//! - `projector`: the consumer's handler, applying events to the store.
//! - `store`: the materialised view in the service's own database.
//! - `http`: `GET /mypage/reservations` and `GET /mypage/reservations/{id}`.

mod http;
pub mod projection;
mod projector;
mod store;

use std::sync::Arc;

use contracts::topics;
use kernel::bus::EventBus;
use runtime::consumer::Consumer;
use runtime::{App, Store};

pub use store::MIGRATIONS;

/// My page's operations and the types they answer, for the public API
/// document the gateway serves.
pub fn api() -> utoipa::openapi::OpenApi {
    <http::Api as utoipa::OpenApi>::openapi()
}

pub async fn build(database_url: &str, bus: Arc<dyn EventBus>) -> anyhow::Result<App> {
    let store = Store::connect(database_url, MIGRATIONS).await?;
    let view = store::MyReservations::new(store.clone());
    let consumer = Consumer {
        group: "mypage.projection".to_owned(),
        topics: vec![
            topics::RESERVATION,
            topics::CATALOG,
            topics::PAYMENT,
            topics::WALLET,
        ],
        store: store.clone(),
        bus: bus.clone(),
        handler: Arc::new(projector::Projector::new(view.clone())),
    };
    Ok(App::new("mypage", http::router(view))
        .ready_when_reachable(store.clone(), bus.clone())
        .consumer("mypage-projection", consumer))
}
