//! The my-page context: read models for customers, built from events alone
//! (it never reads another service's database).
//!
//! It reads reservation events (the bookings and their history), catalog
//! events (a listing's start and screen), payment events (where a booking's
//! payment stands) and wallet events (the points a booking earned).
//!
//! # Layout
//! - [`projection`]: what each event changes on a customer's page (pure).
//! - `projector`: the consumer's handler, applying events to the view.
//! - `view`: the view's port, with two adapters: `store` (SQL, the
//!   service's own database) and `kv_view` (a key-value store: redb or
//!   Redis), chosen by configuration.
//! - `http`: `GET /mypage/reservations` and `GET /mypage/reservations/{id}`.

mod http;
mod kv_view;
pub mod projection;
mod projector;
mod store;
mod view;

use std::sync::Arc;

use contracts::topics;
use kernel::bus::EventBus;
use kv::KvStore;
use runtime::consumer::Consumer;
use runtime::{App, Store};

pub use kv_view::KvReservations;
pub use projector::Projector;
pub use store::{MyReservations, MIGRATIONS};
pub use view::{Projection, View};

/// My page's operations and the types they answer, for the public API
/// document the gateway serves.
pub fn api() -> utoipa::openapi::OpenApi {
    <http::Api as utoipa::OpenApi>::openapi()
}

/// The consumer group that builds the view.
pub const GROUP: &str = "mypage.projection";
/// The topics it reads (a rebuild replays them all).
pub const TOPICS: &[&str] = &[
    topics::RESERVATION,
    topics::CATALOG,
    topics::PAYMENT,
    topics::WALLET,
];

/// Where the view is kept: the service's SQL database, or a key-value
/// store (`redb://<file>` or `redis://…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keep {
    Sql,
    KeyValue(String),
}

/// The key-value namespace of the view (its keys start `mypage:`).
pub const NAMESPACE: &str = "mypage";

/// The consumer that keeps `view` up to date, whichever store holds it.
fn projection<S, V>(store: S, view: V, bus: Arc<dyn EventBus>) -> Consumer<S>
where
    S: runtime::consumer::UnitOfWork,
    V: Projection<Tx = S::Tx>,
{
    Consumer {
        group: GROUP.to_owned(),
        topics: TOPICS.to_vec(),
        store,
        bus,
        handler: Arc::new(projector::Projector::new(view)),
    }
}

pub async fn build(database_url: &str, keep: &Keep, bus: Arc<dyn EventBus>) -> anyhow::Result<App> {
    match keep {
        Keep::Sql => {
            let store = Store::connect(database_url, MIGRATIONS).await?;
            let view = store::MyReservations::new(store.clone());
            let consumer = projection(store.clone(), view.clone(), bus.clone());
            Ok(App::new("mypage", http::router(Arc::new(view)))
                .ready_when_reachable(store, bus)
                .consumer("mypage-projection", consumer))
        }
        Keep::KeyValue(url) => {
            let store = KvStore::connect(url, NAMESPACE).await?;
            let view = kv_view::KvReservations::new(store.clone());
            let consumer = projection(store.clone(), view.clone(), bus.clone());
            let ready = store.clone();
            Ok(App::new("mypage", http::router(Arc::new(view)))
                .readiness(move || {
                    let (store, bus) = (ready.clone(), bus.clone());
                    async move {
                        if !store.is_ready().await {
                            return Err("the key-value store does not answer".to_owned());
                        }
                        if !bus.is_ready().await {
                            return Err("the event bus does not answer".to_owned());
                        }
                        Ok(())
                    }
                })
                .consumer("mypage-projection", consumer))
        }
    }
}

/// Empties the view and its inbox, so that replaying the topics from the
/// start builds it anew (`boxoffice rebuild mypage`). Dead letters stay.
pub async fn clear(database_url: &str, keep: &Keep) -> anyhow::Result<u64> {
    match keep {
        Keep::Sql => {
            let store = Store::connect(database_url, MIGRATIONS).await?;
            let removed = store::clear(&store, GROUP).await;
            store.close().await;
            removed
        }
        Keep::KeyValue(url) => KvStore::connect(url, NAMESPACE).await?.clear().await,
    }
}
