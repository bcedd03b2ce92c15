//! The notification context: tells customers what happened to their
//! reservations, through a pluggable channel, and keeps what it sent.
//!
//! # Layout
//! - [`domain`]: which events deserve a message, and its words (pure).
//! - [`channel`]: the `Channel` port and its adapters (the log today).
//! - `store`: sent notifications in the service's own database.
//! - `http`: `GET /notifications` (the caller's own).

pub mod channel;
pub mod domain;
mod http;
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

use crate::channel::Channel;

pub use store::MIGRATIONS;

pub async fn build(
    database_url: &str,
    bus: Arc<dyn EventBus>,
    channel: Arc<dyn Channel>,
) -> anyhow::Result<App> {
    let store = Store::connect(database_url, MIGRATIONS).await?;
    let notifications = store::Notifications::new(store.clone());
    let consumer = Consumer {
        group: "notification.sender".to_owned(),
        topics: vec![topics::RESERVATION],
        store: store.clone(),
        bus: bus.clone(),
        handler: Arc::new(NotificationPolicy {
            notifications: notifications.clone(),
            channel,
        }),
    };
    Ok(App::new("notification", http::router(notifications))
        .ready_when_reachable(store.clone(), bus.clone())
        .consumer("notification-policy", consumer))
}

/// Reservation outcomes become messages: sent through the channel, then
/// recorded in the same transaction as the inbox entry.
struct NotificationPolicy {
    notifications: store::Notifications,
    channel: Arc<dyn Channel>,
}

#[async_trait]
impl EventHandler for NotificationPolicy {
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Any>,
        event: &Envelope,
    ) -> anyhow::Result<()> {
        let Some(reservation_event) = ReservationEvent::from_envelope(event)? else {
            return Ok(());
        };
        let Some(message) = domain::message_for(&reservation_event) else {
            return Ok(());
        };
        self.channel.send(&message).await?;
        self.notifications
            .record(tx, &message, self.channel.name())
            .await
    }
}
