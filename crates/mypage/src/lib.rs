//! The my-page context: read models for customers, built from events alone
//! (it never reads another service's database).
//!
//! # Layout
//! - [`projection`]: how each reservation event changes a customer's list (pure).
//! - `store`: the materialised view in the service's own database.
//! - `http`: `GET /mypage/reservations`.

mod http;
pub mod projection;
mod store;

use std::sync::Arc;

use async_trait::async_trait;
use contracts::reservation::ReservationEvent;
use contracts::{topics, IntegrationEvent};
use kernel::bus::EventBus;
use kernel::Envelope;
use runtime::consumer::{Consumer, EventHandler};
use runtime::{App, Store};
use sqlx::{Any, Transaction};

pub use store::MIGRATIONS;

pub async fn build(database_url: &str, bus: Arc<dyn EventBus>) -> anyhow::Result<App> {
    let store = Store::connect(database_url, MIGRATIONS).await?;
    let view = store::MyReservations::new(store.clone());
    let consumer = Consumer {
        group: "mypage.projection".to_owned(),
        topics: vec![topics::RESERVATION],
        store: store.clone(),
        bus: bus.clone(),
        handler: Arc::new(Projector { view: view.clone() }),
    };
    Ok(App::new("mypage", http::router(view))
        .ready_when_reachable(store.clone(), bus.clone())
        .consumer("mypage-projection", consumer))
}

struct Projector {
    view: store::MyReservations,
}

#[async_trait]
impl EventHandler for Projector {
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Any>,
        event: &Envelope,
    ) -> anyhow::Result<()> {
        let Some(reservation_event) = ReservationEvent::from_envelope(event)? else {
            return Ok(());
        };
        let version = event.subjectversion.unwrap_or(0);
        let row = projection::project(&reservation_event, version);
        self.view.upsert(tx, &row).await
    }
}
