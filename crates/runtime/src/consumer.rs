//! The one consumer loop every service uses.
//!
//! It takes a batch from the bus, applies it in one transaction (inbox row +
//! the handler's state change + its outbox rows), commits, and only then
//! commits the bus position. If the batch fails it is retried event by
//! event, so one broken event cannot hold back the others for long; an
//! event that still fails after [`MAX_ATTEMPTS`] is moved to the
//! `dead_letters` table with its error, loudly, never silently skipped.

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use kernel::bus::{Delivery, EventBus, Subscription};
use kernel::ids::EventId;
use kernel::shutdown::Shutdown;
use kernel::Envelope;
use sqlx::{Any, Transaction};

use crate::inbox;
use crate::outbox::backoff;
use crate::store::Store;

pub const MAX_ATTEMPTS: u32 = 5;
const BATCH: usize = 256;

/// A context's reaction to events: its policy or projection.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// Applies one event inside `tx`. Follow-up events go to the outbox in
    /// the same transaction. Events the handler does not care about are
    /// simply ignored (`Ok`). An error rolls the transaction back.
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Any>,
        event: &Envelope,
    ) -> anyhow::Result<()>;
}

/// A named consumer group reading some topics into one handler.
pub struct Consumer {
    pub group: String,
    pub topics: Vec<&'static str>,
    pub store: Store,
    pub bus: Arc<dyn EventBus>,
    pub handler: Arc<dyn EventHandler>,
}

impl Consumer {
    /// Consumes until shutdown, with as many group members as the bus asks
    /// for; each finishes the batch in hand first.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let members = self.bus.members_per_group().max(1);
        let consumer = Arc::new(self);
        let mut running = tokio::task::JoinSet::new();
        for member in 0..members {
            running.spawn(consumer.clone().run_member(member, shutdown.clone()));
        }
        let mut first_error = None;
        while let Some(joined) = running.join_next().await {
            if let Err(error) = joined.map_err(anyhow::Error::from).and_then(|r| r) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn run_member(
        self: Arc<Self>,
        member: usize,
        mut shutdown: Shutdown,
    ) -> anyhow::Result<()> {
        let mut subscription = self
            .bus
            .subscribe(&self.group, &self.topics)
            .await
            .with_context(|| format!("subscribing {}", self.group))?;
        tracing::info!(group = %self.group, member, topics = ?self.topics, "consumer started");
        while !shutdown.is_fired() {
            let batch = tokio::select! {
                batch = subscription.next_batch(BATCH) => batch,
                _ = shutdown.wait() => break,
            };
            let batch = match batch {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(group = %self.group, error = format!("{error:#}"), "bus read failed; retrying");
                    tokio::time::sleep(backoff(3)).await;
                    continue;
                }
            };
            if batch.is_empty() {
                continue;
            }
            if let Err(error) = self.apply(&batch).await {
                tracing::warn!(group = %self.group, error = format!("{error:#}"), size = batch.len(), "batch failed; applying one by one");
                for delivery in &batch {
                    self.apply_with_retries(delivery).await;
                }
            }
            self.commit_position(subscription.as_mut(), &batch).await;
        }
        subscription.close().await?;
        tracing::info!(group = %self.group, member, "consumer stopped");
        Ok(())
    }

    async fn apply(&self, batch: &[Delivery]) -> anyhow::Result<()> {
        let mut tx = self.store.begin().await?;
        let mut applied = Vec::with_capacity(batch.len());
        let ids: Vec<EventId> = batch.iter().map(|d| d.envelope.id).collect();
        // One statement for the batch's inbox rows rather than one per event.
        let mut fresh = inbox::record_new(&mut tx, &self.group, &ids).await?;
        for delivery in batch {
            let event = &delivery.envelope;
            // `remove`: an event delivered twice in one batch applies once.
            if fresh.remove(&event.id) {
                self.handler
                    .handle(&mut tx, event)
                    .await
                    .with_context(|| format!("handling {} {}", event.event_type, event.id))?;
                applied.push(event.time);
            }
        }
        self.store.commit(tx).await?;
        metrics::counter!("boxoffice_events_handled_total", "consumer" => self.group.clone())
            .increment(applied.len() as u64);
        // From the producer's transaction to this consumer's commit: how far
        // behind the read side is, the number to watch in an eventually
        // consistent system.
        let now = time::OffsetDateTime::now_utc();
        let lag =
            metrics::histogram!("boxoffice_event_lag_seconds", "consumer" => self.group.clone());
        for created in applied {
            lag.record((now - created).as_seconds_f64().max(0.0));
        }
        Ok(())
    }

    async fn apply_with_retries(&self, delivery: &Delivery) {
        let mut attempt = 1;
        loop {
            match self.apply(std::slice::from_ref(delivery)).await {
                Ok(()) => return,
                Err(error) if attempt < MAX_ATTEMPTS => {
                    tracing::warn!(group = %self.group, event = %delivery.envelope.id, attempt, error = format!("{error:#}"), "event failed; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(error) => {
                    tracing::error!(group = %self.group, event = %delivery.envelope.id, event_type = %delivery.envelope.event_type, error = format!("{error:#}"), "event failed {MAX_ATTEMPTS} times; dead-lettered");
                    metrics::counter!("boxoffice_events_dead_lettered_total", "consumer" => self.group.clone()).increment(1);
                    // Keep trying to park it: losing it silently is not an option.
                    while let Err(park_error) = self.dead_letter(delivery, &error).await {
                        tracing::error!(
                            error = format!("{park_error:#}"),
                            "could not dead-letter; retrying"
                        );
                        tokio::time::sleep(backoff(6)).await;
                    }
                    return;
                }
            }
        }
    }

    async fn dead_letter(&self, delivery: &Delivery, error: &anyhow::Error) -> anyhow::Result<()> {
        let mut tx = self.store.begin().await?;
        if inbox::record_first(&mut tx, &self.group, delivery.envelope.id).await? {
            sqlx::query(
                "INSERT INTO dead_letters (consumer, event_id, topic, envelope, error, failed_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&self.group)
            .bind(delivery.envelope.id.to_string())
            .bind(&delivery.topic)
            .bind(serde_json::to_string(&delivery.envelope)?)
            .bind(format!("{error:#}"))
            .bind(crate::http::timestamp(kernel::now()))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn commit_position(&self, subscription: &mut dyn Subscription, batch: &[Delivery]) {
        let mut failures = 0;
        // The effects are committed; a lost position only means a redelivery
        // that the inbox absorbs, so retry a few times and then move on.
        while let Err(error) = subscription.commit(batch).await {
            failures += 1;
            tracing::warn!(group = %self.group, error = format!("{error:#}"), failures, "committing the bus position failed");
            if failures >= MAX_ATTEMPTS {
                return;
            }
            tokio::time::sleep(backoff(failures)).await;
        }
    }
}
