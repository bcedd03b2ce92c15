//! The reservation context: the reservation aggregate and the saga it owns.
//!
//! `POST /reservations` authorises a card payment synchronously (payment
//! over HTTP, behind a timeout and a circuit breaker: no payment, no
//! booking), then stores a *pending* reservation with its
//! `ReservationPlaced` event (transactional outbox) and answers 202 without
//! calling catalog; catalog's answer, arriving as an event, confirms or
//! rejects it; a booking paid with points also waits for the wallet to take
//! them. A booking still pending at its deadline is expired. Listings are validated and priced from a local replica built
//! from catalog's events, falling back to one synchronous lookup for a
//! listing the replica has not heard of yet.
//!
//! # Layout
//! - [`domain`]: the aggregate, its commands, events and decisions (pure).
//! - `app`: use cases, one transaction each.
//! - `adapters`: REST, gRPC, SQL, the catalog and payment clients, the saga policy.
//! - [`grpc_api`]: the gRPC API's messages, server and client, generated
//!   from `proto/boxoffice/reservation/v1/reservations.proto`.

mod adapters;
pub mod app;
pub mod domain;

use std::sync::Arc;
use std::time::Duration;

use contracts::topics;
use kernel::bus::EventBus;
use runtime::consumer::Consumer;
use runtime::{App, Store};
use serde::{Deserialize, Serialize};

pub use adapters::grpc::GrpcEndpoint;
pub use adapters::payment_client::PaymentCallSettings;
pub use adapters::sql::MIGRATIONS;

/// The reservation service's operations and the types they take and
/// answer, for the public API document the gateway serves.
pub fn api() -> utoipa::openapi::OpenApi {
    <adapters::http::Api as utoipa::OpenApi>::openapi()
}

/// The gRPC API (package `boxoffice.reservation.v1`): its messages, the
/// server the service runs and the client Rust callers use.
#[allow(clippy::all, missing_docs)]
pub mod grpc_api {
    tonic::include_proto!("boxoffice.reservation.v1");
}

/// How the reservation service is configured (`[reservation]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// How long a booking may stay pending before it is expired.
    pub deadline_secs: u64,
    /// The synchronous call to payment (`[reservation.payment]`).
    pub payment: PaymentCallSettings,
    /// Where the gRPC API listens (on the same host as the REST API);
    /// absent: not served. 0 picks a free port.
    pub grpc_port: Option<u16>,
    /// Whether bookings may be paid with points; set by the platform from
    /// whether the wallet is deployed, not configured here.
    #[serde(skip)]
    pub points_accepted: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            deadline_secs: 120,
            payment: PaymentCallSettings::default(),
            grpc_port: None,
            points_accepted: true,
        }
    }
}

/// Where the services reservation calls answer.
#[derive(Debug, Clone)]
pub struct Peers {
    /// Catalog's REST API, for listings the replica has not seen yet.
    pub catalog: String,
    /// Payment's REST API, to authorise card payments.
    pub payment: String,
}

/// Builds the reservation service; with `grpc`, its gRPC API is served
/// there too, beside REST, and stops with it.
pub async fn build(
    database_url: &str,
    peers: &Peers,
    bus: Arc<dyn EventBus>,
    settings: Settings,
    grpc: Option<GrpcEndpoint>,
) -> anyhow::Result<App> {
    let store = Store::connect(database_url, MIGRATIONS).await?;
    // The metrics recorder must exist before the breaker reports its first
    // state (closed), or that report is lost until the first change.
    runtime::http::metrics_handle();
    let payment = adapters::payment_client::PaymentClient::new(&peers.payment, settings.payment);
    let breakers = runtime::breaker::status_router(vec![payment.guarded()]);
    let reservations = app::Reservations::new(
        adapters::sql::ReservationStore::new(store.clone()),
        adapters::catalog_client::CatalogClient::new(&peers.catalog),
        payment,
        bus.clone(),
        Duration::from_secs(settings.deadline_secs.max(1)),
        settings.points_accepted,
    );
    let router = adapters::http::router(reservations.clone()).merge(breakers);
    let consumer = Consumer {
        group: adapters::policy::GROUP.to_owned(),
        topics: vec![topics::CATALOG, topics::WALLET],
        store: store.clone(),
        bus: bus.clone(),
        handler: Arc::new(adapters::policy::SagaPolicy::new(reservations.clone())),
    };
    let relay_store = store.clone();
    let mut app = App::new("reservation", router);
    if let Some(endpoint) = grpc {
        let reservations = reservations.clone();
        app = app.worker("grpc", move |shutdown| {
            adapters::grpc::serve(endpoint, reservations, shutdown)
        });
    }
    Ok(app
        .ready_when_reachable(store.clone(), bus.clone())
        .consumer("saga-policy", consumer)
        .worker("deadlines", move |shutdown| {
            reservations.expire_overdue(shutdown)
        })
        .worker("outbox-relay", move |shutdown| {
            runtime::outbox::relay(relay_store, bus, shutdown)
        }))
}
