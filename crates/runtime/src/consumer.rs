//! The one consumer loop every service uses.
//!
//! It takes a batch from the bus, applies it in one transaction (inbox rows +
//! the handler's state changes + their outbox rows), commits, and only then
//! commits the bus position.
//!
//! Failures are of two kinds, and are never confused:
//! - **Passing faults** (the database or the bus cannot be reached, a lost
//!   race, a deadlock): the batch is retried as it is, with capped
//!   exponential backoff and jitter, for as long as the fault lasts. Nothing
//!   is dead-lettered for it and the position does not move.
//! - **Rejections** (the handler refuses an event: it breaks its contract,
//!   or the state cannot take it): the batch is retried event by event, so
//!   the others go through, and an event still rejected after
//!   [`MAX_ATTEMPTS`] tries is parked in `dead_letters` with its error,
//!   loudly. It is not marked as processed, so an admin can replay it once
//!   the cause is fixed ([`crate::dead_letters`]).
//!
//! A record the bus cannot even decode is parked the same way, with its raw
//! bytes, and the loop moves past it.
//!
//! Where a batch is applied is a port, [`UnitOfWork`]: the service's SQL
//! [`Store`] (its transaction holds the inbox rows and the handler's
//! writes), or a key-value store whose unit of work holds inbox markers and
//! the handler's key changes and commits them at once. The loop is the same
//! for both.

use crate::store::Tx;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use kernel::bus::{Batch, Delivery, EventBus, Malformed, Subscription};
use kernel::ids::EventId;
use kernel::shutdown::Shutdown;
use kernel::Envelope;

use tracing::Instrument;

use crate::dead_letters;
use crate::inbox;
use crate::retry::{is_transient, Outage};
use crate::store::Store;
use crate::telemetry;

/// Tries before a rejected event is parked as a dead letter.
pub const MAX_ATTEMPTS: u32 = 5;
/// The most events a consumer asks for when it keeps up.
pub const BATCH: usize = 256;
/// The most it asks for while behind, unless its handler says less
/// ([`EventHandler::batch_while_behind`]). A commit's cost is mostly per
/// page written, not per row, so a consumer catching up (after a restart,
/// a rebuild, a burst) writes fewer pages per event in larger batches;
/// 8,192 measured no faster, and a batch this size read from the log is
/// about 4 MiB in memory.
pub const BATCH_WHILE_BEHIND: usize = 2048;

/// How many events to ask for after a batch of `got` for a request of
/// `asked`: `behind` once a batch comes back full (the consumer is behind
/// — straight there, since the bus hands over what it has without waiting
/// for a batch to fill, and a request of another size would waste the
/// embedded log's read ahead), [`BATCH`] again once one does not.
fn next_batch_size(asked: usize, got: usize, behind: usize) -> usize {
    if got >= asked {
        behind.max(BATCH)
    } else {
        BATCH
    }
}

/// Where a consumer applies its batches: a transaction (or its equivalent)
/// that records the inbox, takes the handler's changes and parks dead
/// letters, all committed together or not at all.
#[async_trait]
pub trait UnitOfWork: Clone + Send + Sync + 'static {
    /// What the handler writes into while a batch is applied.
    type Tx: Send + 'static;

    async fn begin(&self) -> anyhow::Result<Self::Tx>;

    /// Records the events as processed by `consumer` and returns those
    /// that were not processed before (only those may be applied).
    async fn record_new(
        &self,
        tx: &mut Self::Tx,
        consumer: &str,
        events: &[EventId],
    ) -> anyhow::Result<HashSet<EventId>>;

    async fn park_malformed(
        &self,
        tx: &mut Self::Tx,
        consumer: &str,
        record: &Malformed,
    ) -> anyhow::Result<()>;

    async fn park_event(
        &self,
        tx: &mut Self::Tx,
        consumer: &str,
        delivery: &Delivery,
        error: &str,
        attempts: u32,
    ) -> anyhow::Result<()>;

    /// Makes everything in `tx` durable at once. A commit lost to a
    /// concurrent writer is a passing fault (the batch is applied again).
    async fn commit(&self, tx: Self::Tx) -> anyhow::Result<()>;

    /// Lets an admin list and replay this consumer's dead letters, where
    /// the store keeps them where the admin routes look (SQL).
    fn offer_replays(
        &self,
        _replayers: &mut dead_letters::Replayers,
        _group: &str,
        _handler: &Arc<dyn EventHandler<Self::Tx>>,
    ) {
    }
}

#[async_trait]
impl UnitOfWork for Store {
    type Tx = Tx;

    async fn begin(&self) -> anyhow::Result<Self::Tx> {
        Store::begin(self).await
    }

    async fn record_new(
        &self,
        tx: &mut Self::Tx,
        consumer: &str,
        events: &[EventId],
    ) -> anyhow::Result<HashSet<EventId>> {
        inbox::record_new(tx, consumer, events).await
    }

    async fn park_malformed(
        &self,
        tx: &mut Self::Tx,
        consumer: &str,
        record: &Malformed,
    ) -> anyhow::Result<()> {
        dead_letters::park_malformed(tx, consumer, record).await
    }

    async fn park_event(
        &self,
        tx: &mut Self::Tx,
        consumer: &str,
        delivery: &Delivery,
        error: &str,
        attempts: u32,
    ) -> anyhow::Result<()> {
        dead_letters::park_event(tx, consumer, delivery, error, attempts).await
    }

    async fn commit(&self, tx: Self::Tx) -> anyhow::Result<()> {
        Store::commit(self, tx).await
    }

    fn offer_replays(
        &self,
        replayers: &mut dead_letters::Replayers,
        group: &str,
        handler: &Arc<dyn EventHandler<Self::Tx>>,
    ) {
        replayers.add(group, self.clone(), handler.clone());
    }
}

/// A context's reaction to events: its policy or projection. `U` is the
/// unit of work it writes into: a SQL transaction unless it says otherwise.
#[async_trait]
pub trait EventHandler<U: Send + 'static = Tx>: Send + Sync + 'static {
    /// Called once per batch, before any of its events is handled, with
    /// every event of the batch: the place to lock what the batch will
    /// change, in one fixed order, so that two members applying batches at
    /// the same time cannot deadlock.
    async fn prepare(&self, _tx: &mut U, _events: &[&Envelope]) -> anyhow::Result<()> {
        Ok(())
    }

    /// Whether the handler acts on `event` at all. An event it does not
    /// want is passed over without an inbox row or a call to `handle`: on
    /// a topic many contexts share, most events are for someone else, and
    /// recording each one cost every consumer a row per event. The default
    /// wants everything.
    fn wants(&self, _event: &Envelope) -> bool {
        true
    }

    /// The most events a batch may hold while the consumer is behind. A
    /// handler whose events each take a call to another system inside the
    /// batch's transaction says less: all of a batch must fit in the
    /// shutdown's grace, and a batch cut off there is applied again whole.
    fn batch_while_behind(&self) -> usize {
        BATCH_WHILE_BEHIND
    }

    /// Applies one event inside `tx`. Follow-up events go to the outbox in
    /// the same transaction. Events the handler does not care about are
    /// simply ignored (`Ok`). An error rolls the transaction back.
    async fn handle(&self, tx: &mut U, event: &Envelope) -> anyhow::Result<()>;

    /// Applies a batch's new events, in their order, inside `tx`, for
    /// consumer `group`. The default hands each to [`handle`](Self::handle)
    /// in its own span. A projection that can write a batch in fewer
    /// statements (one per table and batch rather than one per event)
    /// overrides it; the result must be the one `handle` would reach, and
    /// each event should still be decoded inside its
    /// [`telemetry::handling_span`] so traces keep every step.
    async fn handle_batch(
        &self,
        tx: &mut U,
        events: &[&Envelope],
        group: &str,
    ) -> anyhow::Result<()> {
        for event in events {
            handling_async(group, event, self.handle(tx, event)).await?;
        }
        Ok(())
    }
}

/// Runs `handle` for `event` of consumer `group` inside the event's
/// [`telemetry::handling_span`], so traces keep every step of a batch; an
/// error names the event. For a batch's events applied in memory.
pub fn handling<T>(
    group: &str,
    event: &Envelope,
    handle: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    telemetry::handling_span(group, event)
        .in_scope(handle)
        .with_context(|| format!("handling {} {}", event.event_type, event.id))
}

/// [`handling`] for work that waits (statements, a channel).
pub async fn handling_async<T>(
    group: &str,
    event: &Envelope,
    handle: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    handle
        .instrument(telemetry::handling_span(group, event))
        .await
        .with_context(|| format!("handling {} {}", event.event_type, event.id))
}

/// A named consumer group reading some topics into one handler.
pub struct Consumer<S: UnitOfWork = Store> {
    pub group: String,
    pub topics: Vec<&'static str>,
    pub store: S,
    pub bus: Arc<dyn EventBus>,
    pub handler: Arc<dyn EventHandler<S::Tx>>,
}

impl<S: UnitOfWork> Consumer<S> {
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
        let mut outage = Outage::new(self.group.clone());
        let mut asking = BATCH;
        while !shutdown.is_fired() {
            let batch = tokio::select! {
                batch = subscription.next_batch(asking) => batch,
                _ = shutdown.wait() => break,
            };
            let batch = match batch {
                Ok(batch) => batch,
                Err(error) => {
                    if !outage.wait(&error, &mut shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            outage.recovered();
            asking = next_batch_size(asking, batch.len(), self.handler.batch_while_behind());
            if batch.is_empty() {
                continue;
            }
            // Interrupted by shutdown: the position stays, the batch comes again.
            if self.process(&batch, &mut outage, &mut shutdown).await {
                self.commit_position(subscription.as_mut(), &batch).await;
            } else {
                break;
            }
        }
        subscription.close().await?;
        tracing::info!(group = %self.group, member, "consumer stopped");
        Ok(())
    }

    /// Applies the batch, waiting out passing faults; `false` if shutdown
    /// came first.
    async fn process(&self, batch: &Batch, outage: &mut Outage, shutdown: &mut Shutdown) -> bool {
        let rejection = loop {
            match self.apply(batch).await {
                Ok(()) => {
                    outage.recovered();
                    return true;
                }
                Err(error) if is_transient(&error) => {
                    if !outage.wait(&error, shutdown).await {
                        return false;
                    }
                }
                Err(error) => break error,
            }
        };
        // Something in the batch is rejected: find it, one event at a time,
        // so the others are not held back by it.
        tracing::warn!(group = %self.group, error = format!("{rejection:#}"), size = batch.len(), "batch rejected; applying one by one");
        if !batch.malformed.is_empty() {
            let malformed_only = Batch {
                deliveries: Vec::new(),
                malformed: batch.malformed.clone(),
            };
            if !self
                .until_done(outage, shutdown, || self.apply(&malformed_only))
                .await
            {
                return false;
            }
        }
        for delivery in &batch.deliveries {
            if !self.apply_one(delivery, outage, shutdown).await {
                return false;
            }
        }
        true
    }

    /// One event: passing faults are waited out; a rejection is tried
    /// [`MAX_ATTEMPTS`] times, then parked. `false` on shutdown.
    async fn apply_one(
        &self,
        delivery: &Delivery,
        outage: &mut Outage,
        shutdown: &mut Shutdown,
    ) -> bool {
        let single = Batch::from(vec![delivery.clone()]);
        let mut attempts = 0;
        loop {
            let error = match self.apply(&single).await {
                Ok(()) => {
                    outage.recovered();
                    return true;
                }
                Err(error) => error,
            };
            if is_transient(&error) {
                if !outage.wait(&error, shutdown).await {
                    return false;
                }
                continue;
            }
            attempts += 1;
            let event = &delivery.envelope;
            if attempts < MAX_ATTEMPTS {
                tracing::warn!(group = %self.group, event = %event.id, attempts, error = format!("{error:#}"), "event rejected; trying again");
                tokio::time::sleep(Duration::from_millis(50 << attempts)).await;
                continue;
            }
            tracing::error!(group = %self.group, event = %event.id, event_type = %event.event_type,
                error = format!("{error:#}"), "event rejected {MAX_ATTEMPTS} times; parked as a dead letter");
            metrics::counter!("boxoffice_events_dead_lettered_total", "consumer" => self.group.clone())
                .increment(1);
            let error = format!("{error:#}");
            return self
                .until_done(outage, shutdown, || async {
                    let mut tx = self.store.begin().await?;
                    self.store
                        .park_event(&mut tx, &self.group, delivery, &error, attempts)
                        .await?;
                    self.store.commit(tx).await.context("parking a dead letter")
                })
                .await;
        }
    }

    /// Runs `work` until it succeeds, waiting out passing faults; a
    /// rejection here (storing a dead letter) is retried the same way,
    /// since losing the record is not an option. `false` on shutdown.
    async fn until_done<F, Fut>(
        &self,
        outage: &mut Outage,
        shutdown: &mut Shutdown,
        work: F,
    ) -> bool
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        loop {
            match work().await {
                Ok(()) => {
                    outage.recovered();
                    return true;
                }
                Err(error) => {
                    if !outage.wait(&error, shutdown).await {
                        return false;
                    }
                }
            }
        }
    }

    async fn apply(&self, batch: &Batch) -> anyhow::Result<()> {
        let mut tx = self.store.begin().await?;
        for record in &batch.malformed {
            tracing::error!(group = %self.group, topic = %record.topic, partition = record.partition,
                offset = record.offset, error = %record.error, "a record that is not an event; kept as a dead letter");
            metrics::counter!("boxoffice_bus_malformed_records_total", "consumer" => self.group.clone())
                .increment(1);
            self.store
                .park_malformed(&mut tx, &self.group, record)
                .await?;
        }
        let ids: Vec<EventId> = batch
            .deliveries
            .iter()
            .map(|d| &*d.envelope)
            .filter(|event| self.handler.wants(event))
            .map(|event| event.id)
            .collect();
        // One statement for the batch's inbox rows rather than one per event.
        let mut fresh = self.store.record_new(&mut tx, &self.group, &ids).await?;
        let events: Vec<&Envelope> = batch
            .deliveries
            .iter()
            .map(|d| &*d.envelope)
            .filter(|event| fresh.contains(&event.id))
            .collect();
        if !events.is_empty() {
            self.handler
                .prepare(&mut tx, &events)
                .await
                .context("preparing a batch")?;
        }
        // `remove`: an event delivered twice in one batch applies once.
        let events: Vec<&Envelope> = events
            .into_iter()
            .filter(|event| fresh.remove(&event.id))
            .collect();
        if !events.is_empty() {
            self.handler
                .handle_batch(&mut tx, &events, &self.group)
                .await?;
        }
        let applied: Vec<_> = events.iter().map(|event| event.time).collect();
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

    async fn commit_position(&self, subscription: &mut dyn Subscription, batch: &Batch) {
        let mut failures = 0;
        // The effects are committed; a lost position only means a redelivery
        // that the inbox absorbs, so retry a few times and then move on.
        while let Err(error) = subscription.commit(batch).await {
            failures += 1;
            tracing::warn!(group = %self.group, error = format!("{error:#}"), failures, "committing the bus position failed");
            if failures >= MAX_ATTEMPTS {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50 << failures)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_asks_for_more_once_a_batch_comes_back_full() {
        let behind = BATCH_WHILE_BEHIND;
        assert_eq!(next_batch_size(BATCH, BATCH, behind), behind);
        assert_eq!(next_batch_size(behind, behind, behind), behind);
        // A handler that keeps its batches small stays at its own size,
        // never below the usual one.
        assert_eq!(next_batch_size(BATCH, BATCH, 64), BATCH);
    }

    #[test]
    fn a_consumer_that_caught_up_asks_for_the_usual_batch_again() {
        let behind = BATCH_WHILE_BEHIND;
        assert_eq!(next_batch_size(behind, 17, behind), BATCH);
        assert_eq!(next_batch_size(BATCH, 0, behind), BATCH);
        assert_eq!(next_batch_size(BATCH, BATCH - 1, behind), BATCH);
    }
}
