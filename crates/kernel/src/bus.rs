//! The `EventBus` port: publish keyed events to topics; consume them as a
//! member of a consumer group; commit what has been handled.
//!
//! Delivery is at least once. A consumer commits a batch only after the
//! transaction that applied it (state change + inbox row + outbox rows) has
//! committed, so a crash re-delivers and the inbox turns the repeat into a
//! no-op. Events with the same key (the envelope's subject) on one topic are
//! delivered in the order they were published.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::envelope::Envelope;

/// An event handed to a consumer, with where it came from.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub topic: String,
    /// Partition within the topic (always 0 on the embedded log).
    pub partition: i32,
    /// Position within the partition; commits move past it.
    pub offset: i64,
    /// Shared, not copied: the embedded log hands the same event to every
    /// consumer group that reads its topic.
    pub envelope: Arc<Envelope>,
}

/// A record the bus holds that is not a readable event (corrupted, or
/// written by something that does not speak the envelope). Handed to the
/// consumer so it can keep it as a dead letter and move past it: one bad
/// record must not block everything behind it.
#[derive(Debug, Clone)]
pub struct Malformed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The record's bytes as the bus holds them.
    pub raw: Vec<u8>,
    /// Why it could not be read.
    pub error: String,
}

/// What one read returns: events in order, and the records that could not
/// be read among them.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub deliveries: Vec<Delivery>,
    pub malformed: Vec<Malformed>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty() && self.malformed.is_empty()
    }

    pub fn len(&self) -> usize {
        self.deliveries.len() + self.malformed.len()
    }

    /// Every (topic, partition, offset) in the batch, readable or not.
    pub fn positions(&self) -> impl Iterator<Item = (&str, i32, i64)> {
        self.deliveries
            .iter()
            .map(|d| (d.topic.as_str(), d.partition, d.offset))
            .chain(
                self.malformed
                    .iter()
                    .map(|m| (m.topic.as_str(), m.partition, m.offset)),
            )
    }
}

impl From<Vec<Delivery>> for Batch {
    fn from(deliveries: Vec<Delivery>) -> Self {
        Batch {
            deliveries,
            malformed: Vec::new(),
        }
    }
}

/// A publish that did not complete: the first `delivered` events are on the
/// bus (in order), the rest may or may not be. Re-sending from
/// `delivered` keeps every key's events in publish order.
#[derive(Debug, thiserror::Error)]
#[error("{delivered} of {attempted} events published, then: {reason:#}")]
pub struct PublishError {
    pub delivered: usize,
    pub attempted: usize,
    pub reason: anyhow::Error,
}

impl PublishError {
    /// Nothing of `attempted` events is known to be on the bus.
    pub fn nothing(attempted: usize, reason: anyhow::Error) -> PublishError {
        PublishError {
            delivered: 0,
            attempted,
            reason,
        }
    }
}

/// An event to publish: the envelope and the topic it goes to.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub topic: String,
    pub envelope: Envelope,
}

#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Appends the events durably, in order. Returns once the bus has them,
    /// or says how many of them (from the first) it has.
    async fn publish(&self, events: &[Outgoing]) -> Result<(), PublishError>;

    /// Joins `group` as a consumer of `topics`, resuming after the group's
    /// last committed position.
    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> anyhow::Result<Box<dyn Subscription>>;

    /// Whether the bus can be reached now (for readiness probes).
    async fn is_ready(&self) -> bool;

    /// Moves `group` back to the start of `topics`, so that its next
    /// members read everything the bus still holds (a read model rebuilt
    /// from events). The group's members must be stopped meanwhile.
    async fn rewind(&self, group: &str, topics: &[&str]) -> anyhow::Result<()> {
        let _ = (group, topics);
        anyhow::bail!("this bus cannot rewind a consumer group")
    }

    /// Waits, at most `patience`, while some consumer group is further
    /// behind the newest events than the bus serves them cheaply. For a
    /// producer that may take its time — the front door storing new
    /// bookings — so that under overload it slows to the pace its
    /// consumers keep instead of outrunning them: a booking accepted is
    /// then confirmed and on my page within a bounded time. A bus that
    /// cannot tell how far behind its groups are returns at once.
    async fn until_consumers_keep_up(&self, patience: Duration) {
        let _ = patience;
    }

    /// How many members of each consumer group one process runs. Members
    /// split a group's partitions, so their database round trips overlap;
    /// one key's events still go to one member, in order. A bus that does
    /// not split work between members says 1.
    fn members_per_group(&self) -> usize {
        1
    }
}

#[async_trait]
pub trait Subscription: Send {
    /// The next records after what was already handed out, waiting up to a
    /// short poll interval when there are none (then returns empty).
    async fn next_batch(&mut self, max: usize) -> anyhow::Result<Batch>;

    /// Records that everything in `handled` (and before it on its
    /// partitions) has been dealt with.
    async fn commit(&mut self, handled: &Batch) -> anyhow::Result<()>;

    /// Leaves the group cleanly (commits are already durable).
    async fn close(self: Box<Self>) -> anyhow::Result<()> {
        Ok(())
    }
}
