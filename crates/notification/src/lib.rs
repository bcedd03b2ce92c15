//! The notification context: tells customers what happened to their
//! reservations and their refunds, through pluggable channels, and keeps
//! what it sent.
//!
//! # Layout
//! - [`domain`]: which events deserve a message, and its words (pure).
//! - [`channel`]: the `Channel` port and the log adapter.
//! - [`webhook`]: the signed webhook adapter.
//! - `policy`: reservation and payment events become sent messages.
//! - `store`: sent notifications in the service's own database.
//! - `http`: `GET /notifications` (the caller's own).

pub mod channel;
pub mod domain;
mod http;
mod policy;
mod store;
pub mod webhook;

use std::sync::Arc;

use contracts::topics;
use kernel::bus::EventBus;
use runtime::consumer::Consumer;
use runtime::{App, Store};
use serde::{Deserialize, Serialize};

use crate::channel::{Channel, LogChannel};
use crate::webhook::WebhookChannel;

pub use store::MIGRATIONS;

/// The notification service's operations and the types they answer, for
/// the public API document the gateway serves.
pub fn api() -> utoipa::openapi::OpenApi {
    <http::Api as utoipa::OpenApi>::openapi()
}

/// Where messages go besides the log.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Every message is also POSTed here when set.
    pub webhook_url: Option<String>,
    /// Key of the HMAC-SHA256 signature the webhook receives; unsigned
    /// without one.
    pub webhook_secret: Option<String>,
}

/// Hand-written so the secret never reaches a log line.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("webhook_url", &self.webhook_url)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

impl Settings {
    /// The log always, and the webhook when a URL is set.
    pub fn channels(&self) -> anyhow::Result<Vec<Arc<dyn Channel>>> {
        let mut channels: Vec<Arc<dyn Channel>> = vec![Arc::new(LogChannel)];
        if let Some(url) = self.webhook_url.as_deref().filter(|url| !url.is_empty()) {
            if self.webhook_secret.is_none() {
                tracing::warn!(
                    url,
                    "the notification webhook has no secret: its messages are not signed"
                );
            }
            channels.push(Arc::new(WebhookChannel::new(
                url,
                self.webhook_secret.clone(),
            )?));
        }
        Ok(channels)
    }
}

/// Builds the notification service, its channels chosen by `settings`.
pub async fn build(
    database_url: &str,
    bus: Arc<dyn EventBus>,
    settings: Settings,
) -> anyhow::Result<App> {
    build_with_channels(database_url, bus, settings.channels()?).await
}

/// Builds the notification service on the given channels (tests, or a
/// deployment with channels of its own).
pub async fn build_with_channels(
    database_url: &str,
    bus: Arc<dyn EventBus>,
    channels: Vec<Arc<dyn Channel>>,
) -> anyhow::Result<App> {
    let store = Store::connect(database_url, MIGRATIONS).await?;
    let notifications = store::Notifications::new(store.clone());
    let consumer = Consumer {
        group: policy::GROUP.to_owned(),
        topics: vec![topics::RESERVATION, topics::PAYMENT],
        store: store.clone(),
        bus: bus.clone(),
        handler: Arc::new(policy::NotificationPolicy::new(
            notifications.clone(),
            channels,
        )),
    };
    Ok(App::new("notification", http::router(notifications))
        .ready_when_reachable(store.clone(), bus.clone())
        .consumer("notification-policy", consumer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_always_a_channel_and_the_webhook_only_when_configured() {
        let names = |settings: Settings| -> Vec<&'static str> {
            settings
                .channels()
                .unwrap()
                .iter()
                .map(|channel| channel.name())
                .collect()
        };
        assert_eq!(names(Settings::default()), ["log"]);
        assert_eq!(
            names(Settings {
                webhook_url: Some("http://127.0.0.1:9/hook".into()),
                webhook_secret: Some("s3cret".into()),
            }),
            ["log", "webhook"]
        );
    }

    #[test]
    fn the_secret_is_not_in_debug_output() {
        let settings = Settings {
            webhook_url: Some("http://hooks.example/boxoffice".into()),
            webhook_secret: Some("s3cret".into()),
        };
        assert!(!format!("{settings:?}").contains("s3cret"));
    }
}
