//! Where messages go. The port is one method; adapters are a structured
//! log line and a signed webhook ([`crate::webhook`]); a messenger would be
//! one more.

use async_trait::async_trait;

use crate::domain::Message;

#[async_trait]
pub trait Channel: Send + Sync + 'static {
    /// The channel's name, stored with each notification.
    fn name(&self) -> &'static str;
    /// Delivers the message; an error makes the event be retried.
    async fn send(&self, message: &Message) -> anyhow::Result<()>;
}

/// Writes each message as a structured log event.
#[derive(Debug, Default)]
pub struct LogChannel;

#[async_trait]
impl Channel for LogChannel {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn send(&self, message: &Message) -> anyhow::Result<()> {
        tracing::info!(
            target: "boxoffice::notification",
            user = %message.user_id,
            reservation = %message.reservation_id,
            kind = message.kind.as_str(),
            "{}", message.text
        );
        Ok(())
    }
}
