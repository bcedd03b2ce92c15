//! The catalog context: what can be booked and how much of it is left.
//!
//! It owns listings — movies sold by a ticket quota or by assigned seats
//! on a screen, musicals sold by seat on a seat map of their own with
//! priced sections, bikes rented one customer at a time — the screens
//! seated movies play on, and is the single authority on inventory: a
//! reservation is only ever confirmed after catalog has held its tickets,
//! seats or bike.
//!
//! # Layout
//! - [`domain`]: pure rules — validating a new listing, a change to one or
//!   a screen, choosing a screen, a musical's seat map and what changing
//!   it may not remove, holding and releasing tickets against a quota,
//!   what a booking may ask for.
//! - `adapters::http`: the admin and public REST routes.
//! - `adapters::sql`: screens, listings, seats and holds in the service's
//!   own database; a seat is held by inserting its row, unique per
//!   showing, so it can never be sold twice; a bike is a quota of one.
//!   Admins' changes and withdrawals are in `adapters::sql::changes`.
//! - `adapters::policy`: the inventory policy reacting to reservation events.

mod adapters;
pub mod domain;

use std::sync::Arc;

use anyhow::Context;
use contracts::topics;
use kernel::bus::EventBus;
use runtime::consumer::Consumer;
use runtime::{App, Store};
use serde::{Deserialize, Serialize};

use domain::screen::{NewScreen, ScreenDraft};

pub use adapters::sql::MIGRATIONS;

/// The catalog's operations and the types they take and answer, for the
/// public API document the gateway serves.
pub fn api() -> utoipa::openapi::OpenApi {
    <adapters::http::Api as utoipa::OpenApi>::openapi()
}

/// How catalog is set up (`[catalog]` in the platform's configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Screens registered on start when no screen of that name exists yet
    /// (screens added or changed later through the API are left alone).
    pub screens: Vec<ScreenSpec>,
}

/// A screen in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScreenSpec {
    pub name: String,
    pub rows: u8,
    pub seats_per_row: u8,
    /// Seats that are never sold, e.g. `["A-1"]`.
    #[serde(default)]
    pub blocked: Vec<String>,
}

impl ScreenSpec {
    pub fn new(name: &str, rows: u8, seats_per_row: u8) -> ScreenSpec {
        ScreenSpec {
            name: name.to_owned(),
            rows,
            seats_per_row,
            blocked: Vec::new(),
        }
    }
}

impl Default for Settings {
    /// Three halls, so that seated showings can be sold out of the box.
    fn default() -> Self {
        Settings {
            screens: vec![
                ScreenSpec::new("Hall 1", 10, 12),
                ScreenSpec::new("Hall 2", 8, 10),
                ScreenSpec::new("Hall 3", 6, 8),
            ],
        }
    }
}

impl Settings {
    /// The configured screens, validated like screens sent to the API.
    fn screens(&self) -> anyhow::Result<Vec<NewScreen>> {
        self.screens
            .iter()
            .map(|spec| {
                NewScreen::parse(ScreenDraft {
                    name: spec.name.clone(),
                    rows: i64::from(spec.rows),
                    seats_per_row: i64::from(spec.seats_per_row),
                    blocked: spec.blocked.clone(),
                })
                .with_context(|| format!("catalog.screens: screen {:?}", spec.name))
            })
            .collect()
    }
}

/// Builds the catalog service on its database and the bus, registering
/// the configured screens that are missing.
pub async fn build(
    database_url: &str,
    bus: Arc<dyn EventBus>,
    settings: Settings,
) -> anyhow::Result<App> {
    let configured = settings.screens()?;
    let store = Store::connect(database_url, MIGRATIONS).await?;
    let screens = adapters::sql::Screens::new(store.clone());
    for added in screens.ensure(configured).await? {
        tracing::info!(screen = %added.screen.id, name = %added.screen.name, "screen registered from the configuration");
    }
    let listings = adapters::sql::Listings::new(store.clone());
    let router = adapters::http::router(listings.clone(), screens);
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
