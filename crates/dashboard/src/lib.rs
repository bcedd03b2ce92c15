//! The dashboard context: an admin's live view of the platform, a read
//! model built from events alone (it never reads another service's
//! database nor calls one).
//!
//! It reads catalog events (listings, and the inventory each booking holds
//! or bought), reservation events (where each booking stands, what it
//! paid) and wallet events (points issued and spent).
//!
//! # Layout
//! - [`projection`]: what each event changes on the dashboard (pure).
//! - `projector`: the consumer's handler, applying events to the store.
//! - `store`: the materialised view in the service's own database.
//! - `live`: the dashboard pushed to open streams when it changes.
//! - `http`: `GET /dashboard` and `GET /dashboard/stream` (server-sent events).

mod http;
mod live;
pub mod projection;
mod projector;
mod store;

use std::sync::Arc;

use contracts::topics;
use kernel::bus::EventBus;
use runtime::consumer::Consumer;
use runtime::{App, Store};

pub use store::MIGRATIONS;

/// The consumer group that builds the view.
pub const GROUP: &str = "dashboard.projection";
/// The topics it reads (a rebuild replays them all).
pub const TOPICS: &[&str] = &[topics::CATALOG, topics::RESERVATION, topics::WALLET];

/// Empties the view and its inbox, so that replaying the topics from the
/// start builds it anew (`boxoffice rebuild dashboard`). Dead letters stay.
pub async fn clear(database_url: &str) -> anyhow::Result<u64> {
    let store = Store::connect(database_url, MIGRATIONS).await?;
    let removed = store::clear(&store, GROUP).await;
    store.close().await;
    removed
}

/// The dashboard's operations and the types they answer, for the public
/// API document the gateway serves.
pub fn api() -> utoipa::openapi::OpenApi {
    <http::Api as utoipa::OpenApi>::openapi()
}

pub async fn build(database_url: &str, bus: Arc<dyn EventBus>) -> anyhow::Result<App> {
    let store = Store::connect(database_url, MIGRATIONS).await?;
    let view = store::DashboardView::new(store.clone());
    let (live, broadcaster) = live::channel(view.clone());
    let consumer = Consumer {
        group: GROUP.to_owned(),
        topics: TOPICS.to_vec(),
        store: store.clone(),
        bus: bus.clone(),
        handler: Arc::new(projector::Projector::new(view.clone())),
    };
    Ok(App::new("dashboard", http::router(view, live))
        .ready_when_reachable(store.clone(), bus.clone())
        .consumer("dashboard-projection", consumer)
        .worker("dashboard-broadcast", move |shutdown| {
            broadcaster.run(shutdown)
        }))
}
